use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::{Labels, is_empty_map};

/// `status` of a state message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    Online,
    Offline,
    /// Planned downtime set by an operator: never counted as lost.
    Maintenance,
}

/// Why an agent is offline.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OfflineReason {
    /// The broker published the agent's will: the connection died.
    Lost,
    /// The agent stopped cleanly: a planned stop, not a disaster.
    Shutdown,
}

impl OfflineReason {
    pub fn as_str(self) -> &'static str {
        match self {
            OfflineReason::Lost => "lost",
            OfflineReason::Shutdown => "shutdown",
        }
    }
}

/// `sitewatch/v1/<site>/<host>/state` (retained): birth, will, shutdown, maintenance.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StatePayload {
    pub v: u32,
    pub status: Status,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<OfflineReason>,
    /// Absent in the will, which is fixed when the agent connects.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ts: Option<i64>,
    /// Changes each time the agent process starts; `seq` restarts with it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub boot: Option<String>,
    /// `sitewatch-agent/<version>` or another publisher's name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent: Option<String>,
    /// The heartbeat: a readings message at least this often.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interval_ms: Option<u64>,
    /// Each source's poll interval in milliseconds, to tell when a series is stale.
    #[serde(default, skip_serializing_if = "is_empty_map")]
    pub sources: BTreeMap<String, u64>,
    #[serde(default, skip_serializing_if = "is_empty_map")]
    pub labels: Labels,
    /// Optional identity; when present it must match the topic.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub site: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
}

impl StatePayload {
    /// The will every agent registers: `{"v":1,"status":"offline","reason":"lost"}`.
    pub fn will() -> Self {
        Self::offline(OfflineReason::Lost, None)
    }

    /// An offline message, e.g. the clean-shutdown one with its timestamp.
    pub fn offline(reason: OfflineReason, ts: Option<i64>) -> Self {
        StatePayload {
            v: crate::VERSION,
            status: Status::Offline,
            reason: Some(reason),
            ts,
            boot: None,
            agent: None,
            interval_ms: None,
            sources: BTreeMap::new(),
            labels: Labels::new(),
            site: None,
            host: None,
        }
    }
}
