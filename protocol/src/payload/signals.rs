use std::fmt;

use serde::{Deserialize, Serialize};

use super::Severity;

/// The DR plan's failure classes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Level {
    /// One service.
    L1,
    /// Infrastructure: a server's hardware, a network device, storage.
    L2,
    /// A whole datacenter: power, network or cooling.
    L3,
    /// A region.
    L4,
}

impl Level {
    /// 1 to 4, as in `sitewatch_site_disaster_level`.
    pub fn number(self) -> u8 {
        match self {
            Level::L1 => 1,
            Level::L2 => 2,
            Level::L3 => 3,
            Level::L4 => 4,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Level::L1 => "L1",
            Level::L2 => "L2",
            Level::L3 => "L3",
            Level::L4 => "L4",
        }
    }
}

impl fmt::Display for Level {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What a signal is about; each cause belongs to one level.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Cause {
    HostResources,
    HostHardware,
    Storage,
    NetworkDevice,
    /// A peer collector is gone: monitoring of its site is degraded.
    CollectorLost,
    /// This collector has lost its outside view: it sees fewer than a quorum of
    /// the vantage points, so it judges no other site.
    VantageIsolated,
    /// The path between two sites is cut while both still reach the others.
    SiteLink,
    /// One power device reports a utility loss the site's other independent
    /// power sensors contradict: the device's fault, not the site's.
    PowerDevice,
    /// One feed of a dual-fed rack lost (a PDU's inlet dead or its card gone).
    PowerFeed,
    Power,
    Cooling,
    Network,
    Region,
}

impl Cause {
    pub const ALL: [Cause; 13] = [
        Cause::HostResources,
        Cause::HostHardware,
        Cause::Storage,
        Cause::NetworkDevice,
        Cause::CollectorLost,
        Cause::VantageIsolated,
        Cause::SiteLink,
        Cause::PowerDevice,
        Cause::PowerFeed,
        Cause::Power,
        Cause::Cooling,
        Cause::Network,
        Cause::Region,
    ];

    pub fn level(self) -> Level {
        match self {
            Cause::HostResources => Level::L1,
            Cause::HostHardware
            | Cause::Storage
            | Cause::NetworkDevice
            | Cause::CollectorLost
            | Cause::VantageIsolated
            | Cause::SiteLink
            | Cause::PowerDevice
            | Cause::PowerFeed => Level::L2,
            Cause::Power | Cause::Cooling | Cause::Network => Level::L3,
            Cause::Region => Level::L4,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Cause::HostResources => "host_resources",
            Cause::HostHardware => "host_hardware",
            Cause::Storage => "storage",
            Cause::NetworkDevice => "network_device",
            Cause::CollectorLost => "collector_lost",
            Cause::VantageIsolated => "vantage_isolated",
            Cause::SiteLink => "site_link",
            Cause::PowerDevice => "power_device",
            Cause::PowerFeed => "power_feed",
            Cause::Power => "power",
            Cause::Cooling => "cooling",
            Cause::Network => "network",
            Cause::Region => "region",
        }
    }
}

impl fmt::Display for Cause {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// `sitewatch/v1/<site>/_signals` (retained): the site's active signals.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SignalsPayload {
    pub v: u32,
    pub ts: i64,
    /// The highest active level, 0 when none.
    pub level: u8,
    pub signals: Vec<Signal>,
}

/// One active disaster signal.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Signal {
    pub site: String,
    pub level: Level,
    pub cause: Cause,
    /// What the signal is about: a host, a device, the site itself, a region.
    pub subject: String,
    pub severity: Severity,
    /// Unix milliseconds when the signal was raised.
    pub since: i64,
    #[serde(default)]
    pub evidence: Vec<Evidence>,
}

/// One fact behind a signal: a reading, a lost agent, a lower-level signal it explains.
///
/// On the wire either a plain string or an object with at least `summary`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Evidence {
    Text(String),
    Detail(EvidenceDetail),
}

/// A structured piece of evidence.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EvidenceDetail {
    pub summary: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub src: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dev: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub q: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<f64>,
    /// A lower-level signal this one explains, and which it therefore inhibits.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub inhibits: Option<InhibitedSignal>,
}

/// A reference to a signal by its identity.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InhibitedSignal {
    pub level: Level,
    pub cause: Cause,
    pub subject: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_cause_has_its_documented_level() {
        assert_eq!(Cause::HostResources.level(), Level::L1);
        for c in [
            Cause::HostHardware,
            Cause::Storage,
            Cause::NetworkDevice,
            Cause::CollectorLost,
            Cause::VantageIsolated,
            Cause::SiteLink,
            Cause::PowerDevice,
            Cause::PowerFeed,
        ] {
            assert_eq!(c.level(), Level::L2);
        }
        for c in [Cause::Power, Cause::Cooling, Cause::Network] {
            assert_eq!(c.level(), Level::L3);
        }
        assert_eq!(Cause::Region.level(), Level::L4);
    }
}
