use serde::{Deserialize, Serialize};

use super::{Labels, is_empty_map};

/// The DR plan's alert levels.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    Low,
    Medium,
    High,
    Critical,
}

impl Severity {
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Low => "low",
            Severity::Medium => "medium",
            Severity::High => "high",
            Severity::Critical => "critical",
        }
    }
}

/// `sitewatch/v1/<site>/<host>/events`: a batch of discrete events.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EventsPayload {
    pub v: u32,
    /// Events have their own counter, separate from readings.
    pub seq: u64,
    pub ts: i64,
    pub events: Vec<Event>,
    /// The `boot` of the process that noticed these events (see
    /// [`crate::ReadingsPayload::boot`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub boot: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub site: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
}

/// A discrete event: a SEL entry, a UPS transfer, a failed self-test, ...
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Event {
    pub src: String,
    pub dev: String,
    #[serde(rename = "type")]
    pub event_type: String,
    pub severity: Severity,
    pub message: String,
    #[serde(default, skip_serializing_if = "is_empty_map")]
    pub labels: Labels,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ts: Option<i64>,
    /// A stable identity (an extension of v1): the same event read again (a
    /// SEL entry re-read after a crash, before its cursor was saved) carries
    /// the same `id`, so that a collector keeps it once. Unique per host.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
}

impl Event {
    /// An event with no labels, no own timestamp and no id.
    pub fn new(
        src: impl Into<String>,
        dev: impl Into<String>,
        event_type: impl Into<String>,
        severity: Severity,
        message: impl Into<String>,
    ) -> Self {
        Event {
            src: src.into(),
            dev: dev.into(),
            event_type: event_type.into(),
            severity,
            message: message.into(),
            labels: Labels::new(),
            ts: None,
            id: None,
        }
    }
}
