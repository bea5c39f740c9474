//! The engine's input: a plain picture of every site at one instant.
//!
//! These types are independent of the collector's storage (interned names, ring
//! buffers, ...): the collector copies what the engine needs into them at each
//! evaluation. They are cheap to build (shared strings, no indexes) and serde-able,
//! so scenario files and replays can hold them as they are.
//!
//! Only fresh series belong in a snapshot: the collector drops a series once it is
//! stale (three poll intervals without a value), so "no reading" means "nothing
//! known", never "the last value, however old".

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use sitewatch_protocol::{ReadingState, SiteReport};

use crate::name::Name;

/// Extra string labels, as on the wire.
pub type Labels = BTreeMap<String, String>;

/// Every site the collector knows, at one instant.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Snapshot {
    #[serde(default)]
    pub sites: Vec<SiteSnapshot>,
    /// Where this collector stands among its peers, when a topology is
    /// configured (`[signals.topology]`); `None`: one collector judging alone.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vantage: Option<Vantage>,
}

/// This collector and what it knows of its peers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Vantage {
    /// This collector's name and site.
    pub me: String,
    pub site: String,
    /// Every other collector of the topology.
    #[serde(default)]
    pub peers: Vec<PeerSnapshot>,
}

/// A peer collector: whether it is present (its presence and views reach this
/// collector through some broker) and, while its last view is fresh, what it
/// sees of each site.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PeerSnapshot {
    pub name: String,
    pub site: String,
    #[serde(default)]
    pub witness: bool,
    /// Online, lost (will or missed views on every broker), shut down, or
    /// unobserved (every broker it was seen through is unreachable).
    pub liveness: Liveness,
    /// Its own judgement of each site, from its last view if fresh.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub reports: BTreeMap<String, SiteReport>,
    /// When that view arrived (Unix ms, this collector's clock): only a view
    /// newer than a loss can confirm or contradict it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub view_at_ms: Option<i64>,
}

/// One site: the hosts (agents) that have reported to it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SiteSnapshot {
    pub site: String,
    #[serde(default)]
    pub hosts: Vec<HostSnapshot>,
}

/// One host (an agent) with its liveness and its fresh series.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HostSnapshot {
    pub host: String,
    pub liveness: Liveness,
    /// The labels of the agent's state message (`room`, `rack`, `zone`, `role`, ...).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: Labels,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub readings: Vec<SeriesSnapshot>,
}

/// What the collector concluded about an agent's liveness.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Liveness {
    /// Reporting (or known from its readings only).
    Online,
    /// Its will arrived, or it missed three heartbeats.
    Lost {
        /// Unix milliseconds when the collector marked it lost.
        since_ms: i64,
    },
    /// It stopped cleanly: a planned stop is not a disaster.
    Shutdown,
    /// Planned downtime set by an operator: suppressed, never lost.
    Maintenance,
    /// The collector cannot observe it now: every broker it was seen through is
    /// unreachable. Neither up nor lost, and not counted.
    Unobserved,
}

/// The latest value of one series (`src`, `dev`, `name`, `q` of a host).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SeriesSnapshot {
    pub src: Name,
    pub dev: Name,
    pub name: Name,
    pub q: Name,
    /// `None` when the sensor could not be read (then `state` is `unknown`).
    pub value: Option<f64>,
    pub state: ReadingState,
    /// Unix milliseconds when the value was read.
    #[serde(default)]
    pub ts_ms: i64,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: Labels,
}

impl Snapshot {
    /// A snapshot of these sites.
    pub fn new(sites: Vec<SiteSnapshot>) -> Self {
        Snapshot {
            sites,
            vantage: None,
        }
    }

    /// The same snapshot seen from a collector among peers.
    pub fn with_vantage(mut self, vantage: Vantage) -> Self {
        self.vantage = Some(vantage);
        self
    }

    /// The site of this name, if present.
    pub fn site(&self, site: &str) -> Option<&SiteSnapshot> {
        self.sites.iter().find(|s| s.site == site)
    }
}

impl SiteSnapshot {
    /// A site with these hosts.
    pub fn new(site: impl Into<String>, hosts: Vec<HostSnapshot>) -> Self {
        SiteSnapshot {
            site: site.into(),
            hosts,
        }
    }
}

impl HostSnapshot {
    /// A host with no labels and no readings.
    pub fn new(host: impl Into<String>, liveness: Liveness) -> Self {
        HostSnapshot {
            host: host.into(),
            liveness,
            labels: Labels::new(),
            readings: Vec::new(),
        }
    }

    /// Adds a label (as the agent's state message would carry it).
    pub fn with_label(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.labels.insert(key.into(), value.into());
        self
    }

    /// Adds a series.
    pub fn with_reading(mut self, reading: SeriesSnapshot) -> Self {
        self.readings.push(reading);
        self
    }

    /// Adds several series.
    pub fn with_readings(mut self, readings: impl IntoIterator<Item = SeriesSnapshot>) -> Self {
        self.readings.extend(readings);
        self
    }
}

impl SeriesSnapshot {
    /// A readable value in state `ok`, read at `ts_ms`; `name` is taken from `dev`.
    pub fn ok(
        src: impl Into<Name>,
        dev: impl Into<Name>,
        q: impl Into<Name>,
        value: f64,
        ts_ms: i64,
    ) -> Self {
        let dev = dev.into();
        SeriesSnapshot {
            src: src.into(),
            name: dev.clone(),
            dev,
            q: q.into(),
            value: Some(value),
            state: ReadingState::Ok,
            ts_ms,
            labels: Labels::new(),
        }
    }

    /// Sets the sensor's own name.
    pub fn named(mut self, name: impl Into<Name>) -> Self {
        self.name = name.into();
        self
    }

    /// Sets the state (the device's or the agent's judgement).
    pub fn in_state(mut self, state: ReadingState) -> Self {
        self.state = state;
        self
    }

    /// Adds a label.
    pub fn with_label(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.labels.insert(key.into(), value.into());
        self
    }

    /// The value when the sensor was readable and it is finite.
    pub(crate) fn number(&self) -> Option<f64> {
        self.value.filter(|v| v.is_finite())
    }

    /// Whether this is a readable flag equal to `flag` (`1` or `0`).
    ///
    /// Flags come from Modbus registers and IPMI discrete sensors as numbers; a
    /// value within 0.5 of the flag counts, so 0.999 from a scaled register is 1.
    pub(crate) fn is_flag(&self, flag: f64) -> bool {
        self.number().is_some_and(|v| (v - flag).abs() < 0.5)
    }
}
