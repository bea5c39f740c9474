use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::{OfflineReason, Status, is_empty_map};

/// `sitewatch/v1/_collectors/<name>/state` (retained): a collector's presence.
/// Its will is `{"v":1,"status":"offline","reason":"lost"}` on every broker it
/// uses; a clean stop publishes `offline`/`shutdown`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CollectorStatePayload {
    pub v: u32,
    pub status: Status,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<OfflineReason>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ts: Option<i64>,
    /// Changes each time the collector process starts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub boot: Option<String>,
    /// The site the collector runs in (its failure domain).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub site: Option<String>,
    /// How often it publishes its view: the heartbeat peers judge it by.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interval_ms: Option<u64>,
    /// `sitewatch-collector/<version>`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent: Option<String>,
}

/// `sitewatch/v1/_collectors/<name>/view`: a collector's heartbeat and what it
/// sees, published every `interval_ms` on every broker it uses.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CollectorViewPayload {
    pub v: u32,
    /// +1 per view, per boot.
    pub seq: u64,
    pub ts: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub boot: Option<String>,
    /// Its site.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub site: Option<String>,
    /// Each broker link of the collector, by name: connected now.
    #[serde(default, skip_serializing_if = "is_empty_map")]
    pub brokers: BTreeMap<String, bool>,
    /// Each peer collector it knows: present now.
    #[serde(default, skip_serializing_if = "is_empty_map")]
    pub peers: BTreeMap<String, bool>,
    /// Its own judgement of each site (before any reconciliation with peers).
    #[serde(default, skip_serializing_if = "is_empty_map")]
    pub sites: BTreeMap<String, SiteReport>,
}

/// What one collector sees of one site.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct SiteReport {
    /// Agents it counts there (not shut down, not in maintenance).
    pub counted: u32,
    /// Of those, lost (on every path it has).
    pub lost: u32,
    /// Whether the loss, seen from here alone, is a site-level network loss
    /// (the L3 `network` rule: half and at least two lost within a minute).
    pub down: bool,
}
