//! The engine's configuration: thresholds, durations, sites and maintenance windows.
//!
//! Every field has a default (the DR plan's values, `docs/protocol.md` "Levels and
//! causes"), so an empty table is a working configuration. Durations are written
//! as humantime strings (`"30s"`, `"5m"`, `"1h 30m"`). The collector embeds this
//! as its `[signals]` table; `example.toml` at the crate's root writes out every
//! default (a test keeps it true). In short:
//!
//! ```toml
//! [signals]
//! startup_grace = "30s"
//! clear_after = "30s"
//!
//! [signals.host_resources.cpu]
//! critical = 0.85
//! warning = 0.70
//! hysteresis = 0.05
//! for = "5m"
//!
//! [signals.power]
//! generator_start_grace = "20s"
//!
//! [signals.sites.bj1]
//! region = "cn-north"
//! expected_hosts = ["web-01", "web-02", "db-01"]
//! host_labels = { db-01 = { zone = "b" } }
//!
//! [[signals.maintenance]]
//! site = "bj1"
//! host = "db-01"                      # omit for the whole site
//! start = "2025-11-25T22:00:00+08:00" # RFC 3339, or Unix milliseconds
//! end = "2025-11-26T02:00:00+08:00"
//! reason = "disk swap"
//! ```

use std::{
    collections::BTreeMap,
    fmt,
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use serde::{Deserialize, Deserializer, Serialize, Serializer, de};
use sitewatch_protocol::{name::validate_name, quantity as q};

/// The whole `[signals]` table.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SignalsConfig {
    /// After the collector starts, lost agents do not count for this long: retained
    /// state messages are still rebuilding the picture, and a restart must not raise
    /// a false L3. Expected hosts never seen count as lost only after it.
    #[serde(with = "duration")]
    pub startup_grace: Duration,
    /// Hysteresis on clear: a condition must have been false this long before its
    /// signal clears, so that one good sample in a bad minute does not clear it.
    #[serde(with = "duration")]
    pub clear_after: Duration,
    /// Flap damping.
    pub flap: FlapConfig,
    /// L1 `host_resources`.
    pub host_resources: HostResourcesConfig,
    /// L2 `host_hardware`.
    pub host_hardware: HostHardwareConfig,
    /// L2 `storage`.
    pub storage: StorageConfig,
    /// L2 `network_device`.
    pub network_device: NetworkDeviceConfig,
    /// L2 `power_feed`.
    pub power_feed: PowerFeedConfig,
    /// L3 `power`.
    pub power: PowerConfig,
    /// L3 `cooling`.
    pub cooling: CoolingConfig,
    /// L3 `network`.
    pub network: NetworkConfig,
    /// L4 `region`.
    pub region: RegionConfig,
    /// Per site: its region, the hosts expected there, labels for hosts.
    /// Sites not listed still get every L1-L3 signal; they only lack a region (no
    /// L4) and expected hosts.
    pub sites: BTreeMap<String, SiteConfig>,
    /// Planned maintenance windows (`[[maintenance]]`).
    pub maintenance: Vec<MaintenanceWindow>,
    /// The collectors of a multi-site deployment, so that a site's loss is judged
    /// from more than one vantage point (`[signals.topology]`). Empty: one
    /// collector, judging alone as before.
    pub topology: TopologyConfig,
}

/// `[signals.topology]`: every collector of the deployment (the same table on
/// each), and how peers' views are weighed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TopologyConfig {
    /// Every collector, this one included (`[[signals.topology.collectors]]`).
    pub collectors: Vec<CollectorEntry>,
    /// A peer's view counts while it is at most this old (three views at 5 s).
    #[serde(with = "duration")]
    pub view_max_age: Duration,
    /// How long `collector_lost`, `vantage_isolated` and `site_link` must hold
    /// before they are raised.
    #[serde(rename = "for", with = "duration")]
    pub hold_for: Duration,
}

impl Default for TopologyConfig {
    fn default() -> Self {
        TopologyConfig {
            collectors: Vec::new(),
            view_max_age: Duration::from_secs(15),
            // Presence is already debounced (a will, or three missed views):
            // a short hold keeps these inside the DR plan's 30 s.
            hold_for: Duration::from_secs(5),
        }
    }
}

/// One collector of the topology.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CollectorEntry {
    /// Its name (`--name`): the identity of its presence topics.
    pub name: String,
    /// The site it runs in: its failure domain. A witness's site (a cloud
    /// region, say) has no agents.
    pub site: String,
    /// A collector with no agents of its own, there to break ties.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub witness: bool,
}

impl TopologyConfig {
    /// The entry of a collector.
    pub fn collector(&self, name: &str) -> Option<&CollectorEntry> {
        self.collectors.iter().find(|c| c.name == name)
    }
}

impl Default for SignalsConfig {
    fn default() -> Self {
        SignalsConfig {
            startup_grace: Duration::from_secs(30),
            clear_after: Duration::from_secs(30),
            flap: FlapConfig::default(),
            host_resources: HostResourcesConfig::default(),
            host_hardware: HostHardwareConfig::default(),
            storage: StorageConfig::default(),
            network_device: NetworkDeviceConfig::default(),
            power_feed: PowerFeedConfig::default(),
            power: PowerConfig::default(),
            cooling: CoolingConfig::default(),
            network: NetworkConfig::default(),
            region: RegionConfig::default(),
            sites: BTreeMap::new(),
            maintenance: Vec::new(),
            topology: TopologyConfig::default(),
        }
    }
}

/// A signal that changes (is raised or cleared) more than `max_changes` times within
/// `window` is flapping: it is then held active until its condition has been false
/// for `hold`, so that a loose sensor pages once, not every minute.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FlapConfig {
    /// How far back changes are counted.
    #[serde(with = "duration")]
    pub window: Duration,
    /// More changes than this within `window` is flapping (4 = two raise/clear cycles
    /// are tolerated, the third raise is damped).
    pub max_changes: usize,
    /// How long a flapping signal's condition must stay false before it clears.
    #[serde(with = "duration")]
    pub hold: Duration,
}

impl Default for FlapConfig {
    fn default() -> Self {
        FlapConfig {
            window: Duration::from_secs(10 * 60),
            max_changes: 4,
            hold: Duration::from_secs(5 * 60),
        }
    }
}

/// A usage ratio (0..1) with its limits.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UsageThreshold {
    /// Above this for `for`: the cause's signal (L1, severity medium).
    pub critical: f64,
    /// Above this for `for`: an advisory (severity low); omit to have none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub warning: Option<f64>,
    /// Once raised, the signal holds until the value falls below the limit minus
    /// this margin (0.85 raised, cleared below 0.80), so a value hovering at the
    /// limit does not flap.
    #[serde(default)]
    pub hysteresis: f64,
    /// How long the value must stay above the limit.
    #[serde(rename = "for", with = "duration")]
    pub hold_for: Duration,
}

/// L1 `host_resources`: CPU, memory and filesystems of each host.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HostResourcesConfig {
    pub enabled: bool,
    /// `cpu_usage_ratio`; subject `<host>:cpu`.
    pub cpu: UsageThreshold,
    /// `memory_usage_ratio`; subject `<host>:memory`.
    pub memory: UsageThreshold,
    /// `filesystem_usage_ratio` per mount point (`dev`); subject `<host>:<mount>`.
    pub filesystem: UsageThreshold,
}

impl Default for HostResourcesConfig {
    fn default() -> Self {
        HostResourcesConfig {
            enabled: true,
            cpu: UsageThreshold {
                critical: 0.85,
                warning: Some(0.70),
                hysteresis: 0.05,
                hold_for: Duration::from_secs(5 * 60),
            },
            memory: UsageThreshold {
                critical: 0.90,
                warning: Some(0.80),
                hysteresis: 0.05,
                hold_for: Duration::from_secs(3 * 60),
            },
            filesystem: UsageThreshold {
                critical: 0.95,
                warning: Some(0.85),
                hysteresis: 0.02,
                hold_for: Duration::from_secs(60),
            },
        }
    }
}

/// L2 `host_hardware`: critical hardware sensors, failed PSUs, stopped fans, lost hosts.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HostHardwareConfig {
    pub enabled: bool,
    /// How long a fault must hold. 10 s also gives the L3 `network` signal time to
    /// form when a whole site drops, agent by agent, so that the lost hosts are
    /// inhibited by it rather than paged one by one first.
    #[serde(rename = "for", with = "duration")]
    pub hold_for: Duration,
    /// Sources whose readings in state `critical` are hardware faults.
    pub hardware_sources: Vec<String>,
    /// Whether a lost host (while its site is otherwise fine) is a signal.
    pub lost_hosts: bool,
}

impl Default for HostHardwareConfig {
    fn default() -> Self {
        HostHardwareConfig {
            enabled: true,
            hold_for: Duration::from_secs(10),
            hardware_sources: vec!["ipmi".to_owned(), "redfish".to_owned()],
            lost_hosts: true,
        }
    }
}

/// L2 `storage`: SMART verdicts and growing defect counts, per disk.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct StorageConfig {
    pub enabled: bool,
    /// How long a fault must hold. SMART is polled every few minutes and its
    /// verdicts do not flicker, so at once.
    #[serde(rename = "for", with = "duration")]
    pub hold_for: Duration,
    /// Counters whose growth (since the previous value the engine saw) is a fault.
    pub growing: Vec<String>,
    /// How long a disk stays flagged after its counter last grew: growth is seen
    /// once per SMART poll, but a disk that is remapping sectors stays suspect.
    #[serde(with = "duration")]
    pub growth_hold: Duration,
}

impl Default for StorageConfig {
    fn default() -> Self {
        StorageConfig {
            enabled: true,
            hold_for: Duration::ZERO,
            growing: vec![
                q::DISK_REALLOCATED_SECTORS.to_owned(),
                q::DISK_PENDING_SECTORS.to_owned(),
            ],
            growth_hold: Duration::from_secs(24 * 60 * 60),
        }
    }
}

/// L2 `network_device`: a probed switch or router that no agent of the site reaches.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct NetworkDeviceConfig {
    pub enabled: bool,
    /// How long `probe_up` must stay 0: 10 s spans three probes at the default 5 s
    /// interval (the failures at 0, 5 and 10 s), the DR plan's "three in a row".
    #[serde(rename = "for", with = "duration")]
    pub hold_for: Duration,
    /// Values of the probe reading's `role` label that name a network device of
    /// the site. `uplink` and `peer_site` probes are not devices the site runs:
    /// they are evidence for the L3 `network` signal instead.
    pub roles: Vec<String>,
}

impl Default for NetworkDeviceConfig {
    fn default() -> Self {
        NetworkDeviceConfig {
            enabled: true,
            hold_for: Duration::from_secs(10),
            roles: vec!["switch".to_owned(), "router".to_owned()],
        }
    }
}

/// L2 `power_feed`: one feed of a dual-fed rack lost (PDUs' `power_feed_available`
/// labelled `rack` and `feed`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PowerFeedConfig {
    pub enabled: bool,
    /// How long the feed must stay lost: two polls of a PDU at the default 10 s.
    #[serde(rename = "for", with = "duration")]
    pub hold_for: Duration,
}

impl Default for PowerFeedConfig {
    fn default() -> Self {
        PowerFeedConfig {
            enabled: true,
            hold_for: Duration::from_secs(20),
        }
    }
}

/// L3 `power`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PowerConfig {
    pub enabled: bool,
    /// How long mains may be lost (or a UPS on battery) before a generator must
    /// be supplying the site. Standby generators start and take the load in 10-15 s.
    #[serde(with = "duration")]
    pub generator_start_grace: Duration,
}

impl Default for PowerConfig {
    fn default() -> Self {
        PowerConfig {
            enabled: true,
            generator_start_grace: Duration::from_secs(20),
        }
    }
}

/// L3 `cooling`: inlet temperatures, by cooling zone.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CoolingConfig {
    pub enabled: bool,
    /// Median inlet above this: L3 (32 °C, the ASHRAE A1 allowable maximum).
    pub critical_celsius: f64,
    /// Median inlet above this: an advisory of severity low (27 °C, the ASHRAE
    /// recommended maximum); omit to have none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub warning_celsius: Option<f64>,
    /// Once raised, a limit holds until the median falls this far below it.
    pub hysteresis_celsius: f64,
    /// How long the median must stay above a limit. The median already ignores a
    /// single bad sensor, so this only rides out one noisy evaluation.
    #[serde(rename = "for", with = "duration")]
    pub hold_for: Duration,
    /// A cooling unit alarm counts as a site fault only when the median inlet
    /// temperature rose by at least `rise_celsius` over this window.
    #[serde(with = "duration")]
    pub rise_window: Duration,
    /// See `rise_window`.
    pub rise_celsius: f64,
    /// The label (on the reading, else on the host) naming a cooling zone; hosts
    /// with the same value share a median. Hosts without it form the site's zone.
    pub zone_label: String,
}

impl Default for CoolingConfig {
    fn default() -> Self {
        CoolingConfig {
            enabled: true,
            critical_celsius: 32.0,
            warning_celsius: Some(27.0),
            hysteresis_celsius: 0.5,
            hold_for: Duration::from_secs(10),
            rise_window: Duration::from_secs(3 * 60),
            rise_celsius: 1.0,
            zone_label: "zone".to_owned(),
        }
    }
}

/// L3 `network`: a site whose agents drop together.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct NetworkConfig {
    pub enabled: bool,
    /// At least this share of the site's counted agents lost...
    pub lost_ratio: f64,
    /// ...and at least this many...
    pub min_lost: usize,
    /// ...all lost within this window of each other (a cut, not attrition).
    #[serde(with = "duration")]
    pub within: Duration,
    /// `role` values of `probe_up` readings whose failures, seen from the agents
    /// still up, are listed as evidence.
    pub probe_roles: Vec<String>,
}

impl Default for NetworkConfig {
    fn default() -> Self {
        NetworkConfig {
            enabled: true,
            lost_ratio: 0.5,
            min_lost: 2,
            within: Duration::from_secs(60),
            probe_roles: vec!["uplink".to_owned(), "peer_site".to_owned()],
        }
    }
}

/// L4 `region`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RegionConfig {
    pub enabled: bool,
    /// This many sites of one region at L3 at once is a regional disaster.
    pub min_sites: usize,
}

impl Default for RegionConfig {
    fn default() -> Self {
        RegionConfig {
            enabled: true,
            min_sites: 2,
        }
    }
}

/// One site.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SiteConfig {
    /// The region the site belongs to, for L4.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    /// Hosts that should report here. One that has never been seen counts as lost
    /// once the startup grace is over (a server that died while the collector was
    /// down is still a lost server).
    pub expected_hosts: Vec<String>,
    /// Labels for hosts (e.g. `zone`), used where the host's own state message
    /// does not carry the key: host -> label -> value.
    pub host_labels: BTreeMap<String, BTreeMap<String, String>>,
    /// The site's power topology, for corroborating a power loss
    /// (`[signals.sites.<site>.power]`). Without it, every device that senses
    /// the utility (a UPS's input, an ATS, a generator controller) counts as an
    /// independent witness.
    pub power: SitePowerConfig,
}

/// `[signals.sites.<site>.power]`: which power devices depend on which.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SitePowerConfig {
    /// By device name (`dev` as the agents report it).
    pub devices: BTreeMap<String, PowerDeviceConfig>,
}

/// One power device of a site.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PowerDeviceConfig {
    /// The device feeding this one (a UPS downstream of another, a PDU on a
    /// UPS's output): it then neither confirms nor contradicts a utility loss,
    /// since what it senses is its feeder's output, not the utility.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fed_by: Option<String>,
    /// The utility feed it senses (`utility-a`), named in the evidence.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub feed: Option<String>,
}

impl SiteConfig {
    /// Whether a power device senses the utility itself.
    pub fn senses_utility(&self, dev: &str) -> bool {
        self.power
            .devices
            .get(dev)
            .is_none_or(|d| d.fed_by.is_none())
    }
}

/// A planned maintenance window: the host's (or, without `host`, the whole site's)
/// signals are suppressed and it never counts as lost.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MaintenanceWindow {
    pub site: String,
    /// One host; omitted: the whole site.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
    /// Inclusive.
    pub start: Timestamp,
    /// Exclusive.
    pub end: Timestamp,
    /// Free text for the operators.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

impl MaintenanceWindow {
    /// Whether the window is open at `now_ms`.
    pub fn is_open(&self, now_ms: i64) -> bool {
        self.start.0 <= now_ms && now_ms < self.end.0
    }
}

/// A point in time as Unix milliseconds. In config, either an integer (Unix ms)
/// or a quoted RFC 3339 string with `Z` or a `+hh:mm`/`-hh:mm` offset.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Timestamp(pub i64);

impl Timestamp {
    /// Parses RFC 3339 (`2025-11-25T22:00:00Z`, `2025-11-25T22:00:00.5+08:00`).
    pub fn parse_rfc3339(s: &str) -> Result<Self, String> {
        // humantime only knows `Z`; an offset is applied here.
        let (utc, offset_min) = split_offset(s)?;
        let t = humantime::parse_rfc3339(&format!("{utc}Z")).map_err(|e| e.to_string())?;
        let ms = system_time_ms(t) - offset_min * 60_000;
        Ok(Timestamp(ms))
    }
}

fn split_offset(s: &str) -> Result<(&str, i64), String> {
    if let Some(utc) = s.strip_suffix('Z').or_else(|| s.strip_suffix('z')) {
        return Ok((utc, 0));
    }
    // The offset is the last six characters: `+hh:mm`.
    let split = s.len().checked_sub(6).filter(|&i| s.is_char_boundary(i));
    let Some((utc, offset)) = split.map(|i| s.split_at(i)) else {
        return Err("no time zone: end with Z or an offset like +08:00".to_owned());
    };
    let bytes = offset.as_bytes();
    let sign = match bytes.first() {
        Some(b'+') => 1,
        Some(b'-') => -1,
        _ => return Err("no time zone: end with Z or an offset like +08:00".to_owned()),
    };
    let field = |range: std::ops::Range<usize>| {
        offset
            .get(range)
            .and_then(|d| d.parse::<i64>().ok())
            .ok_or_else(|| format!("invalid offset {offset:?}"))
    };
    if bytes.get(3) != Some(&b':') {
        return Err(format!("invalid offset {offset:?}"));
    }
    let (hours, minutes) = (field(1..3)?, field(4..6)?);
    if hours > 23 || minutes > 59 {
        return Err(format!("invalid offset {offset:?}"));
    }
    Ok((utc, sign * (hours * 60 + minutes)))
}

fn system_time_ms(t: SystemTime) -> i64 {
    match t.duration_since(UNIX_EPOCH) {
        Ok(d) => i64::try_from(d.as_millis()).unwrap_or(i64::MAX),
        Err(before) => i64::try_from(before.duration().as_millis()).map_or(i64::MIN, |ms| -ms),
    }
}

impl Serialize for Timestamp {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match u64::try_from(self.0) {
            Ok(ms) => {
                let t = UNIX_EPOCH + Duration::from_millis(ms);
                s.collect_str(&humantime::format_rfc3339_millis(t))
            }
            Err(_) => s.serialize_i64(self.0),
        }
    }
}

impl<'de> Deserialize<'de> for Timestamp {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl de::Visitor<'_> for Visitor {
            type Value = Timestamp;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("Unix milliseconds or a quoted RFC 3339 time such as \"2025-11-25T22:00:00+08:00\"")
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Timestamp, E> {
                Ok(Timestamp(v))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Timestamp, E> {
                i64::try_from(v)
                    .map(Timestamp)
                    .map_err(|_| E::custom("time out of range"))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Timestamp, E> {
                Timestamp::parse_rfc3339(v)
                    .map_err(|e| E::custom(format!("invalid RFC 3339 time {v:?}: {e}")))
            }
        }
        d.deserialize_any(Visitor)
    }
}

/// `"30s"`-style durations (humantime) for serde.
pub(crate) mod duration {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer, de::Error};

    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(&humantime::format_duration(*d))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        let text = String::deserialize(d)?;
        humantime::parse_duration(&text).map_err(|e| {
            D::Error::custom(format!(
                "invalid duration {text:?}: {e} (write e.g. \"10s\", \"5m\", \"1h\")"
            ))
        })
    }
}

/// A configuration value that parses but makes no sense.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("signals.{key}: {message}")]
pub struct ConfigError {
    /// The dotted path of the offending key below `signals`.
    pub key: String,
    pub message: String,
}

impl ConfigError {
    fn new(key: impl Into<String>, message: impl Into<String>) -> Self {
        ConfigError {
            key: key.into(),
            message: message.into(),
        }
    }

    /// A bounded label for metrics.
    pub fn kind(&self) -> &'static str {
        "invalid_value"
    }
}

impl SignalsConfig {
    /// Checks what serde cannot: ranges, orderings and names. Returns every problem.
    pub fn validate(&self) -> Result<(), Vec<ConfigError>> {
        let mut errors = Vec::new();
        let hr = &self.host_resources;
        for (key, t) in [
            ("cpu", &hr.cpu),
            ("memory", &hr.memory),
            ("filesystem", &hr.filesystem),
        ] {
            let key = format!("host_resources.{key}");
            check_usage(&key, t, &mut errors);
        }
        let c = &self.cooling;
        if !c.critical_celsius.is_finite() {
            errors.push(ConfigError::new(
                "cooling.critical_celsius",
                "must be a number",
            ));
        }
        if let Some(w) = c.warning_celsius
            && !(w.is_finite() && w < c.critical_celsius)
        {
            errors.push(ConfigError::new(
                "cooling.warning_celsius",
                "must be below critical_celsius",
            ));
        }
        for (key, v) in [
            ("cooling.hysteresis_celsius", c.hysteresis_celsius),
            ("cooling.rise_celsius", c.rise_celsius),
        ] {
            if !(v.is_finite() && v >= 0.0) {
                errors.push(ConfigError::new(key, "must be zero or more"));
            }
        }
        if !(self.network.lost_ratio > 0.0 && self.network.lost_ratio <= 1.0) {
            errors.push(ConfigError::new(
                "network.lost_ratio",
                "must be above 0 and at most 1",
            ));
        }
        if self.network.min_lost == 0 {
            errors.push(ConfigError::new("network.min_lost", "must be at least 1"));
        }
        if self.region.min_sites < 2 {
            errors.push(ConfigError::new(
                "region.min_sites",
                "must be at least 2 (one site at L3 is an L3)",
            ));
        }
        let mut names: Vec<&str> = Vec::new();
        for (i, c) in self.topology.collectors.iter().enumerate() {
            let key = format!("topology.collectors[{i}]");
            if let Err(e) = validate_name(&c.name) {
                errors.push(ConfigError::new(format!("{key}.name"), e.to_string()));
            }
            if let Err(e) = validate_name(&c.site) {
                errors.push(ConfigError::new(format!("{key}.site"), e.to_string()));
            }
            if names.contains(&c.name.as_str()) {
                errors.push(ConfigError::new(
                    format!("{key}.name"),
                    format!("{:?} is listed twice", c.name),
                ));
            }
            names.push(&c.name);
        }
        if self.topology.collectors.len() == 2 {
            // Two vantage points cannot outvote each other: a lone survivor
            // could not tell the other site down from itself cut off.
            errors.push(ConfigError::new(
                "topology.collectors",
                "two collectors cannot form a quorum: add a witness (a third collector, e.g. in a cloud region)",
            ));
        }
        for (site, sc) in &self.sites {
            if let Err(e) = validate_name(site) {
                errors.push(ConfigError::new(format!("sites.{site}"), e.to_string()));
            }
            for (dev, d) in &sc.power.devices {
                if d.fed_by.as_deref() == Some(dev.as_str()) {
                    errors.push(ConfigError::new(
                        format!("sites.{site}.power.devices.{dev}.fed_by"),
                        "a device cannot feed itself",
                    ));
                }
            }
            for host in sc.expected_hosts.iter().chain(sc.host_labels.keys()) {
                if let Err(e) = validate_name(host) {
                    errors.push(ConfigError::new(
                        format!("sites.{site}: host {host:?}"),
                        e.to_string(),
                    ));
                }
            }
        }
        for (i, w) in self.maintenance.iter().enumerate() {
            let key = format!("maintenance[{i}]");
            if let Err(e) = validate_name(&w.site) {
                errors.push(ConfigError::new(format!("{key}.site"), e.to_string()));
            }
            if let Some(Err(e)) = w.host.as_deref().map(validate_name) {
                errors.push(ConfigError::new(format!("{key}.host"), e.to_string()));
            }
            if w.end <= w.start {
                errors.push(ConfigError::new(
                    format!("{key}.end"),
                    "must be after start",
                ));
            }
        }
        if errors.is_empty() {
            Ok(())
        } else {
            Err(errors)
        }
    }

    /// The region of a site, if configured.
    pub fn region_of(&self, site: &str) -> Option<&str> {
        self.sites.get(site).and_then(|s| s.region.as_deref())
    }

    /// Whether a maintenance window covers this host (or, with `None`, the whole
    /// site) at `now_ms`. A site-wide window covers every host of the site.
    pub fn in_maintenance(&self, site: &str, host: Option<&str>, now_ms: i64) -> bool {
        self.maintenance.iter().any(|w| {
            w.site == site
                && w.is_open(now_ms)
                && match (&w.host, host) {
                    (None, _) => true,
                    (Some(wh), Some(h)) => wh == h,
                    (Some(_), None) => false,
                }
        })
    }

    /// The next instant after `now_ms` at which a maintenance window of `site`
    /// opens or closes (`None`: none will).
    pub fn next_maintenance_change(&self, site: &str, now_ms: i64) -> Option<i64> {
        self.maintenance
            .iter()
            .filter(|w| w.site == site)
            .flat_map(|w| [w.start.0, w.end.0])
            .filter(|&t| t > now_ms)
            .min()
    }
}

fn check_usage(key: &str, t: &UsageThreshold, errors: &mut Vec<ConfigError>) {
    let in_range = |v: f64| v.is_finite() && (0.0..=1.0).contains(&v);
    if !in_range(t.critical) {
        errors.push(ConfigError::new(
            format!("{key}.critical"),
            "must be a ratio between 0 and 1",
        ));
    }
    if let Some(w) = t.warning
        && !(in_range(w) && w < t.critical)
    {
        errors.push(ConfigError::new(
            format!("{key}.warning"),
            "must be a ratio below critical",
        ));
    }
    if !(t.hysteresis.is_finite() && t.hysteresis >= 0.0) {
        errors.push(ConfigError::new(
            format!("{key}.hysteresis"),
            "must be zero or more",
        ));
    }
}

/// Milliseconds of a duration, saturating (durations in config are small).
pub(crate) fn ms(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_table_is_the_default() {
        let c: SignalsConfig = toml::from_str("").unwrap();
        assert_eq!(c, SignalsConfig::default());
        assert_eq!(c.validate(), Ok(()));
    }

    #[test]
    fn defaults_are_the_dr_plan_values() {
        let c = SignalsConfig::default();
        assert_eq!(c.host_resources.cpu.critical, 0.85);
        assert_eq!(c.host_resources.cpu.hold_for, Duration::from_secs(300));
        assert_eq!(c.host_resources.memory.critical, 0.90);
        assert_eq!(c.host_resources.memory.hold_for, Duration::from_secs(180));
        assert_eq!(c.host_resources.filesystem.critical, 0.95);
        assert_eq!(
            c.host_resources.filesystem.hold_for,
            Duration::from_secs(60)
        );
        assert_eq!(c.power.generator_start_grace, Duration::from_secs(20));
        assert_eq!(c.cooling.critical_celsius, 32.0);
        assert_eq!(c.cooling.warning_celsius, Some(27.0));
        assert_eq!(c.network.lost_ratio, 0.5);
        assert_eq!(c.network.min_lost, 2);
        assert_eq!(c.network.within, Duration::from_secs(60));
        assert_eq!(c.region.min_sites, 2);
    }

    #[test]
    fn shipped_example_is_the_default_plus_its_examples() {
        #[derive(serde::Deserialize)]
        struct Root {
            signals: SignalsConfig,
        }
        let text = include_str!("../example.toml");
        let mut c = toml::from_str::<Root>(text).unwrap().signals;
        assert_eq!(c.validate(), Ok(()));
        assert_eq!(c.region_of("bj1"), Some("cn-north"));
        assert_eq!(c.maintenance.len(), 1);
        assert_eq!(c.topology.collectors.len(), 3);
        let power = &c.sites["bj1"].power;
        assert_eq!(power.devices.len(), 5);
        assert!(c.sites["bj1"].senses_utility("ats-1"));
        assert!(!c.sites["bj1"].senses_utility("pdu-r12"));
        c.sites.clear();
        c.maintenance.clear();
        c.topology.collectors.clear();
        assert_eq!(c, SignalsConfig::default());
    }

    #[test]
    fn documented_example_parses() {
        let text = r#"
            startup_grace = "45s"
            clear_after = "1m"
            [flap]
            max_changes = 6
            [host_resources.cpu]
            critical = 0.9
            for = "10m"
            [power]
            generator_start_grace = "30s"
            [sites.bj1]
            region = "cn-north"
            expected_hosts = ["web-01", "web-02", "db-01"]
            host_labels = { db-01 = { zone = "b" } }
            [[maintenance]]
            site = "bj1"
            host = "db-01"
            start = "2025-11-25T22:00:00+08:00"
            end = 1764093600000
            reason = "disk swap"
        "#;
        let c: SignalsConfig = toml::from_str(text).unwrap();
        assert_eq!(c.startup_grace, Duration::from_secs(45));
        assert_eq!(c.flap.max_changes, 6);
        assert_eq!(c.flap.hold, FlapConfig::default().hold);
        assert_eq!(c.host_resources.cpu.warning, None);
        assert_eq!(c.host_resources.cpu.hold_for, Duration::from_secs(600));
        assert_eq!(c.region_of("bj1"), Some("cn-north"));
        // 22:00 at +08:00 is 14:00 UTC.
        assert_eq!(c.maintenance[0].start, Timestamp(1_764_079_200_000));
        assert!(c.in_maintenance("bj1", Some("db-01"), 1_764_080_000_000));
        assert!(!c.in_maintenance("bj1", Some("web-01"), 1_764_080_000_000));
        assert!(!c.in_maintenance("bj1", None, 1_764_080_000_000));
        assert_eq!(c.validate(), Ok(()));
    }

    #[test]
    fn unknown_keys_and_bad_durations_are_refused_with_the_key() {
        let e = toml::from_str::<SignalsConfig>("startup_grase = \"30s\"").unwrap_err();
        assert!(e.to_string().contains("startup_grase"), "{e}");
        let e = toml::from_str::<SignalsConfig>("clear_after = \"soon\"").unwrap_err();
        assert!(e.to_string().contains("invalid duration"), "{e}");
        let e = toml::from_str::<SignalsConfig>(
            "[[maintenance]]\nsite = \"bj1\"\nstart = \"tomorrow\"\nend = 1",
        )
        .unwrap_err();
        assert!(e.to_string().contains("RFC 3339"), "{e}");
    }

    #[test]
    fn nonsense_values_are_reported_by_validate() {
        let mut c = SignalsConfig::default();
        c.host_resources.cpu.warning = Some(0.9);
        c.network.lost_ratio = 0.0;
        c.maintenance.push(MaintenanceWindow {
            site: "BJ1".into(),
            host: None,
            start: Timestamp(10),
            end: Timestamp(5),
            reason: None,
        });
        let keys: Vec<String> = c
            .validate()
            .unwrap_err()
            .into_iter()
            .map(|e| e.key)
            .collect();
        assert_eq!(
            keys,
            [
                "host_resources.cpu.warning",
                "network.lost_ratio",
                "maintenance[0].site",
                "maintenance[0].end"
            ]
        );
    }

    #[test]
    fn timestamps_round_trip_through_rfc3339() {
        let t = Timestamp::parse_rfc3339("2025-11-25T14:13:20Z").unwrap();
        assert_eq!(t, Timestamp(1_764_080_000_000));
        assert_eq!(
            Timestamp::parse_rfc3339("2025-11-25T09:13:20-05:00").unwrap(),
            t
        );
        assert!(Timestamp::parse_rfc3339("2025-11-25T14:13:20").is_err());
        let json = serde_json::to_string(&t).unwrap();
        assert_eq!(json, "\"2025-11-25T14:13:20.000Z\"");
        assert_eq!(serde_json::from_str::<Timestamp>(&json).unwrap(), t);
    }

    #[test]
    fn default_config_serializes_to_toml_and_back() {
        let c = SignalsConfig::default();
        let text = toml::to_string(&c).unwrap();
        assert_eq!(toml::from_str::<SignalsConfig>(&text).unwrap(), c);
    }
}
