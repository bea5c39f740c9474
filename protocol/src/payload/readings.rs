use serde::{Deserialize, Deserializer, Serialize};

use super::{Labels, is_empty_map};

/// A reading's judgement: the device's own or the agent's.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReadingState {
    Ok,
    Warning,
    Critical,
    /// The sensor could not be read; `value` is null.
    Unknown,
}

impl ReadingState {
    pub fn as_str(self) -> &'static str {
        match self {
            ReadingState::Ok => "ok",
            ReadingState::Warning => "warning",
            ReadingState::Critical => "critical",
            ReadingState::Unknown => "unknown",
        }
    }
}

/// `sitewatch/v1/<site>/<host>/readings`: a batch of readings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReadingsPayload {
    pub v: u32,
    /// Per boot, +1 for every readings message.
    pub seq: u64,
    pub ts: i64,
    /// Empty is a heartbeat.
    pub readings: Vec<Reading>,
    /// The `boot` of the process that took these readings, when the agent says
    /// (an extension of v1): a batch kept on disk across a restart arrives
    /// after the new boot's birth, and `(boot, seq)` still names it. Absent:
    /// the boot of the host's last state message.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub boot: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub site: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
}

/// One sensor value.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Reading {
    /// The source: `ipmi`, `smart`, `modbus`, `host`, `net`, ...
    pub src: String,
    /// The device within the source: a BMC, a disk, a Modbus unit, a probe target.
    pub dev: String,
    /// The sensor's own name on the device.
    pub name: String,
    /// The quantity, see [`crate::quantity`].
    pub q: String,
    /// Required but nullable: `null` when the sensor could not be read.
    #[serde(deserialize_with = "nullable")]
    pub value: Option<f64>,
    pub state: ReadingState,
    #[serde(default, skip_serializing_if = "is_empty_map")]
    pub labels: Labels,
    /// When this reading was taken, if not the batch's `ts`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ts: Option<i64>,
}

// A plain `Option` field would let a missing `value` pass as null; the contract
// says the field is required, so it must be present even when it is null.
fn nullable<'de, D: Deserializer<'de>>(d: D) -> Result<Option<f64>, D::Error> {
    Option::<f64>::deserialize(d)
}

impl Reading {
    /// A reading; a missing or non-finite value (a sensor's NaN) becomes an
    /// unreadable one (`null`, state `unknown`), so that encoding never emits a
    /// number the contract forbids.
    pub fn new(
        src: impl Into<String>,
        dev: impl Into<String>,
        name: impl Into<String>,
        q: impl Into<String>,
        value: Option<f64>,
        state: ReadingState,
    ) -> Self {
        let (value, state) = match value {
            Some(v) if v.is_finite() => (Some(v), state),
            _ => (None, ReadingState::Unknown),
        };
        Reading {
            src: src.into(),
            dev: dev.into(),
            name: name.into(),
            q: q.into(),
            value,
            state,
            labels: Labels::new(),
            ts: None,
        }
    }

    /// Adds a label.
    pub fn with_label(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.labels.insert(key.into(), value.into());
        self
    }

    /// Sets the time the value was read, when it differs from the batch's.
    pub fn at(mut self, ts_ms: i64) -> Self {
        self.ts = Some(ts_ms);
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn non_finite_value_becomes_unknown_null() {
        let r = Reading::new(
            "host",
            "cpu",
            "cpu",
            "cpu_usage_ratio",
            Some(f64::NAN),
            ReadingState::Ok,
        );
        assert_eq!((r.value, r.state), (None, ReadingState::Unknown));
        let r = Reading::new(
            "host",
            "cpu",
            "cpu",
            "cpu_usage_ratio",
            Some(0.5),
            ReadingState::Ok,
        );
        assert_eq!((r.value, r.state), (Some(0.5), ReadingState::Ok));
    }
}
