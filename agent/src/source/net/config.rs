//! `[sources.net]`: reachability probes, one `[[sources.net.targets]]` table each.
//!
//! ```toml
//! [sources.net]
//! [[sources.net.targets]]
//! name = "tor-r12"
//! address = "10.0.12.1"          # ICMP echo
//! role = "switch"
//! [[sources.net.targets]]
//! name = "api"
//! address = "api.internal:443"   # TCP connect
//! role = "service"
//! interval = "10s"
//! ```

use std::time::Duration;

use serde::{Deserialize, Serialize};
use sitewatch_protocol::limits;

use crate::config::{default_true, duration, opt_duration};
pub use crate::endpoint::Endpoint;

/// `[sources.net]`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NetSourceConfig {
    /// Set to false to stop probing (the targets stay in the file).
    #[serde(default = "default_true")]
    pub enabled: bool,
    /// How often the targets' latest results are published (the scheduler tick).
    /// Each target is probed on its own `interval` regardless. Default: the
    /// shortest target interval, so that no probe result goes unpublished.
    #[serde(
        default,
        with = "opt_duration",
        skip_serializing_if = "Option::is_none"
    )]
    pub interval: Option<Duration>,
    /// The targets, at least one.
    #[serde(default)]
    pub targets: Vec<NetTarget>,
}

/// `[[sources.net.targets]]`: one probed device or service.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NetTarget {
    /// The target's name: its readings' `dev` (and `name`). Unique in the source.
    pub name: String,
    /// `host` or IP for ICMP echo; `host:port` (`[v6]:port` for IPv6) for a TCP connect.
    /// A host name is resolved before every probe (the last good address is
    /// reused while resolution fails): prefer IP addresses for infrastructure, so
    /// that a DNS outage does not look like a dead switch.
    pub address: String,
    /// `icmp` or `tcp`. Default: `tcp` when the address has a port, else `icmp`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub method: Option<Method>,
    /// What the target is to the site: decides how bad "unreachable" is, and which
    /// disaster signal its failures feed (`switch`/`router`: L2 `network_device`;
    /// `uplink`/`peer_site`: evidence of an L3 `network` cut).
    pub role: Role,
    /// How often this target is probed.
    #[serde(default = "default_probe_interval", with = "duration")]
    pub interval: Duration,
    /// How long one probe (resolution included) may wait for an answer; at most `interval`.
    #[serde(default = "default_probe_timeout", with = "duration")]
    pub timeout: Duration,
    /// A round-trip time at or above this is `warning`.
    #[serde(default = "default_rtt_warning", with = "duration")]
    pub rtt_warning: Duration,
    /// A round-trip time at or above this is `critical` (the DR plan's 500 ms).
    #[serde(default = "default_rtt_critical", with = "duration")]
    pub rtt_critical: Duration,
    /// A loss ratio (0..1) over the window at or above this is `warning`.
    #[serde(default = "default_loss_warning")]
    pub loss_warning: f64,
    /// A loss ratio (0..1) over the window at or above this is `critical`.
    #[serde(default = "default_loss_critical")]
    pub loss_critical: f64,
    /// The loss window: at most this many of the latest probes...
    #[serde(default = "default_window")]
    pub window: usize,
    /// ...and none older than this.
    #[serde(default = "default_window_duration", with = "duration")]
    pub window_duration: Duration,
}

/// How a target is probed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Method {
    /// ICMP echo (ping): the host's IP stack answers.
    Icmp,
    /// A TCP connect to the address's port: the service accepts connections.
    Tcp,
}

impl Method {
    pub fn as_str(self) -> &'static str {
        match self {
            Method::Icmp => "icmp",
            Method::Tcp => "tcp",
        }
    }
}

/// What a target is to the site.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    Switch,
    Router,
    /// The site's link to the outside world.
    Uplink,
    /// Another site of the DR plan (its gateway, its collector).
    PeerSite,
    /// An application service: unreachable is a warning, not a site emergency.
    Service,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Switch => "switch",
            Role::Router => "router",
            Role::Uplink => "uplink",
            Role::PeerSite => "peer_site",
            Role::Service => "service",
        }
    }

    /// Whether losing the target is critical for the site (network
    /// infrastructure) rather than a warning (a service).
    pub fn is_infrastructure(self) -> bool {
        !matches!(self, Role::Service)
    }
}

/// The address of a target, parsed by the one address grammar ([`Endpoint`]).
pub fn parse_endpoint(address: &str) -> Result<Endpoint, String> {
    Endpoint::parse(address)
        .map_err(|e| format!("{e}; expected host, IP, host:port or [IPv6]:port"))
}

impl NetTarget {
    /// The probe method, explicit or implied by the address.
    pub fn method(&self) -> Method {
        self.method.unwrap_or_else(|| {
            match parse_endpoint(&self.address).map(|e| e.port.is_some()) {
                Ok(true) => Method::Tcp,
                _ => Method::Icmp,
            }
        })
    }

    /// The parsed address (valid once the config is validated).
    pub fn endpoint(&self) -> Result<Endpoint, String> {
        parse_endpoint(&self.address)
    }

    /// A target with every default.
    pub fn new(name: impl Into<String>, address: impl Into<String>, role: Role) -> Self {
        NetTarget {
            name: name.into(),
            address: address.into(),
            method: None,
            role,
            interval: default_probe_interval(),
            timeout: default_probe_timeout(),
            rtt_warning: default_rtt_warning(),
            rtt_critical: default_rtt_critical(),
            loss_warning: default_loss_warning(),
            loss_critical: default_loss_critical(),
            window: default_window(),
            window_duration: default_window_duration(),
        }
    }
}

impl NetSourceConfig {
    /// The scheduler tick: the configured interval or the shortest target interval.
    pub fn tick(&self) -> Duration {
        self.interval.unwrap_or_else(|| {
            self.targets
                .iter()
                .map(|t| t.interval)
                .min()
                .unwrap_or_else(default_probe_interval)
        })
    }

    /// How long the first poll (one probe of every target, at once) may take.
    pub fn poll_timeout(&self) -> Duration {
        let longest = self.targets.iter().map(|t| t.timeout).max();
        // Slack for the task start-up around the probes' own timeouts.
        longest.unwrap_or_default() + Duration::from_secs(1)
    }

    /// The rules serde cannot express: the key and what is wrong.
    pub fn validate(&self) -> Result<(), (&'static str, String)> {
        if self.targets.is_empty() {
            return Err((
                "sources.net.targets",
                "needs at least one [[sources.net.targets]] (or set enabled = false)".into(),
            ));
        }
        let mut names = std::collections::BTreeSet::new();
        for t in &self.targets {
            let name = &t.name;
            if name.trim().is_empty() || name.chars().count() > limits::MAX_DEV_LEN {
                return Err((
                    "sources.net.targets.name",
                    format!("{name:?} must be 1 to {} characters", limits::MAX_DEV_LEN),
                ));
            }
            if !names.insert(name.as_str()) {
                return Err((
                    "sources.net.targets.name",
                    format!("{name:?} names two targets: each target's name is its `dev`"),
                ));
            }
            let endpoint =
                parse_endpoint(&t.address).map_err(|e| ("sources.net.targets.address", e))?;
            if t.address.chars().count() > limits::MAX_LABEL_VALUE_LEN {
                return Err((
                    "sources.net.targets.address",
                    format!(
                        "of target {name:?} is longer than {} characters",
                        limits::MAX_LABEL_VALUE_LEN
                    ),
                ));
            }
            match (t.method(), endpoint.port) {
                (Method::Tcp, None) => {
                    return Err((
                        "sources.net.targets.address",
                        format!("of target {name:?} needs a port for method = \"tcp\" (host:port)"),
                    ));
                }
                (Method::Icmp, Some(_)) => {
                    return Err((
                        "sources.net.targets.address",
                        format!(
                            "of target {name:?} has a port, but ICMP has none: drop the port or use method = \"tcp\""
                        ),
                    ));
                }
                _ => {}
            }
            if t.interval < Duration::from_millis(100) {
                return Err((
                    "sources.net.targets.interval",
                    format!("of target {name:?} must be at least 100ms"),
                ));
            }
            if t.timeout.is_zero() || t.timeout > t.interval {
                return Err((
                    "sources.net.targets.timeout",
                    format!("of target {name:?} must be above zero and at most its interval"),
                ));
            }
            if t.rtt_warning > t.rtt_critical {
                return Err((
                    "sources.net.targets.rtt_warning",
                    format!("of target {name:?} must be at most its rtt_critical"),
                ));
            }
            let ratio = |x: f64| x > 0.0 && x <= 1.0;
            if !ratio(t.loss_warning) || !ratio(t.loss_critical) || t.loss_warning > t.loss_critical
            {
                return Err((
                    "sources.net.targets.loss_warning",
                    format!(
                        "of target {name:?}: loss_warning and loss_critical are ratios above 0, at most 1 (0.2 = 20 %), warning at most critical"
                    ),
                ));
            }
            if t.window == 0 || t.window_duration.is_zero() {
                return Err((
                    "sources.net.targets.window",
                    format!("of target {name:?}: window and window_duration must be above zero"),
                ));
            }
        }
        if let Some(tick) = self.interval
            && tick < Duration::from_millis(100)
        {
            return Err(("sources.net.interval", "must be at least 100ms".into()));
        }
        Ok(())
    }
}

fn default_probe_interval() -> Duration {
    Duration::from_secs(5)
}
fn default_probe_timeout() -> Duration {
    Duration::from_secs(1)
}
fn default_rtt_warning() -> Duration {
    Duration::from_millis(200)
}
fn default_rtt_critical() -> Duration {
    Duration::from_millis(500)
}
fn default_loss_warning() -> f64 {
    0.2
}
fn default_loss_critical() -> f64 {
    0.5
}
fn default_window() -> usize {
    20
}
fn default_window_duration() -> Duration {
    Duration::from_secs(60)
}

impl crate::source::Section for NetSourceConfig {
    fn enabled(&self) -> bool {
        self.enabled
    }

    // Each target is probed on its own interval by the source's own tasks;
    // the schedule only publishes their latest results (see `source::net`).
    fn schedule(&self) -> crate::config::Schedule {
        crate::config::Schedule {
            interval: self.tick(),
            timeout: self.poll_timeout(),
        }
    }

    /// A disabled table may keep its targets half-written.
    fn validate(&self) -> Result<(), (&'static str, String)> {
        if self.enabled {
            NetSourceConfig::validate(self)
        } else {
            Ok(())
        }
    }
}
