//! Recorded traffic: replay files are JSON lines, one MQTT message each.
//!
//! ```json
//! {"t_ms":0,"topic":"sitewatch/v1/bj1/web-01/state","retain":true,"payload":{"v":1,"status":"online"}}
//! ```

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// One recorded MQTT message.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReplayRecord {
    /// Milliseconds since the start of the recording: the simulated clock.
    pub t_ms: u64,
    pub topic: String,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub retain: bool,
    /// The broker the message came through, for a collector with several
    /// (absent: the only one). Liveness is judged per broker, so a replay keeps
    /// them apart.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// A JSON value, or a string holding the raw payload as received (so that
    /// malformed messages replay as they arrived).
    pub payload: Value,
}

impl ReplayRecord {
    /// The payload bytes as they were published.
    pub fn payload_bytes(&self) -> Vec<u8> {
        match &self.payload {
            Value::String(raw) => raw.as_bytes().to_vec(),
            other => other.to_string().into_bytes(),
        }
    }
}

/// A change in the signal timeline printed by `sitewatch-collector replay`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TimelineEntry {
    pub t_ms: u64,
    pub event: TimelineEvent,
    pub site: String,
    pub level: crate::Level,
    pub cause: crate::Cause,
    pub subject: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TimelineEvent {
    Raised,
    Cleared,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn string_payload_replays_raw_bytes() {
        let r: ReplayRecord =
            serde_json::from_str(r#"{"t_ms":1,"topic":"t","payload":"{not json"}"#).unwrap();
        assert_eq!(r.payload_bytes(), b"{not json");
        assert!(!r.retain);
    }
}
