//! `[sources.redfish]`: BMCs (iDRAC, iLO, XCC, OpenBMC), rack PDUs and
//! coolant distribution units over Redfish (HTTPS and JSON).
//!
//! ```toml
//! [sources.redfish]
//! interval = "60s"                      # Redfish is the slow path
//! timeout = "50s"                       # the whole read of one endpoint
//!
//! [[sources.redfish.endpoints]]
//! name = "r1-bmc-01"
//! url = "https://10.1.2.21"             # /redfish/v1 is appended
//! username = "sitewatch"                # a read-only account
//! password_file = "/etc/sitewatch/redfish-r1-bmc-01"
//! auth = "session"                      # or "basic"
//! ca_file = "/etc/sitewatch/bmc-ca.pem" # or pinned_sha256, or insecure_skip_verify
//! ```

use std::{
    collections::{BTreeMap, BTreeSet},
    path::{Path, PathBuf},
    time::Duration,
};

use serde::{Deserialize, Serialize};
use sitewatch_protocol::limits;

use crate::config::{Schedule, default_true, duration, opt_duration};

/// `[sources.redfish]`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RedfishSourceConfig {
    /// Set to false to stop reading Redfish services.
    #[serde(default = "default_true")]
    pub enabled: bool,
    /// How often the source runs; an endpoint is read when its own interval is due.
    #[serde(default = "default_interval", with = "duration")]
    pub interval: Duration,
    /// The whole-read budget: an endpoint whose read is not done within 90 %
    /// of it reads `agent_poll_success 0` (`error="timeout"`), and its points
    /// unknown, without delaying the other endpoints.
    #[serde(default = "default_poll_timeout", with = "duration")]
    pub timeout: Duration,
    /// How often the structure of a service (its chassis, their sensors,
    /// supplies, fans, outlets) is discovered again; the values are read at
    /// every interval.
    #[serde(default = "default_rediscover", with = "duration")]
    pub rediscover: Duration,
    /// A directory for the LogServices cursors, one file per endpoint and
    /// log service, so that a restart sends no entry twice and misses none.
    /// Without it the cursors live in memory only (a restart marks the logs'
    /// entries seen again).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state_dir: Option<PathBuf>,
    /// An event stream that carried nothing (not even a keep-alive comment)
    /// for this long is dropped and reopened.
    #[serde(default = "default_event_silence", with = "duration")]
    pub event_silence: Duration,
    /// The most new log entries read from one log service per read (the
    /// rest come with the next reads).
    #[serde(default = "default_log_entries_per_read")]
    pub log_entries_per_read: usize,
    #[serde(default)]
    pub endpoints: Vec<RedfishEndpointConfig>,
}

/// How the agent authenticates to a service.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AuthMode {
    /// One Redfish session per endpoint (`X-Auth-Token`): created once,
    /// reused, created again after a 401, deleted on shutdown.
    #[default]
    Session,
    /// HTTP basic authentication on every request (no session to leak, but
    /// the password crosses the wire with every request, and some BMCs log
    /// every request as a login).
    Basic,
}

/// `[[sources.redfish.endpoints]]`: one Redfish service.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RedfishEndpointConfig {
    /// The readings' `dev`, unique within the source.
    pub name: String,
    /// `https://host[:port]` (or `http://` for a service behind a local
    /// proxy); the service root `/redfish/v1/` is below it.
    pub url: String,
    /// The account; without it requests carry no credentials (a service
    /// that allows anonymous reads).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    /// A file holding the password (its first line).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password_file: Option<PathBuf>,
    #[serde(default)]
    pub auth: AuthMode,
    /// PEM file of the CA (or the self-signed certificate) that signed the
    /// service's certificate. The certificate must name the URL's host.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_file: Option<PathBuf>,
    /// SHA-256 of the service's certificate (DER), hex with or without
    /// colons (`openssl x509 -noout -fingerprint -sha256`): that certificate
    /// is accepted whatever its name and dates, and no other.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pinned_sha256: Option<String>,
    /// Accept any certificate. Logged as a warning at start; for a first
    /// look at a BMC with its factory certificate, not for production.
    #[serde(default)]
    pub insecure_skip_verify: bool,
    /// Each request's timeout (connect, send, the whole answer); at most the
    /// endpoint's share of `timeout`.
    #[serde(default = "default_request_timeout", with = "duration")]
    pub request_timeout: Duration,
    /// Requests in flight at once to this endpoint (BMCs are small).
    #[serde(default = "default_concurrency")]
    pub concurrency: usize,
    /// Read a collection's members in one request with `$expand` when the
    /// service says it supports it (`ProtocolFeaturesSupported`).
    #[serde(default = "default_true")]
    pub expand: bool,
    /// Poll interval; default the source's.
    #[serde(
        default,
        with = "opt_duration",
        skip_serializing_if = "Option::is_none"
    )]
    pub interval: Option<Duration>,
    /// Events: the EventService's SSE stream where the service offers it
    /// (`ServerSentEventUri`), and new LogServices entries. `false` turns
    /// both off.
    #[serde(default = "default_true")]
    pub events: bool,
    /// How often the LogServices are read for new entries; default the
    /// endpoint's interval.
    #[serde(
        default,
        with = "opt_duration",
        skip_serializing_if = "Option::is_none"
    )]
    pub log_interval: Option<Duration>,
    /// Labels on every reading of the endpoint (at most 3).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
}

/// A parsed endpoint URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Url {
    pub tls: bool,
    pub host: String,
    pub port: u16,
}

impl Url {
    /// `https://host[:port][/]` or `http://...`; IPv6 in brackets.
    pub fn parse(url: &str) -> Result<Url, String> {
        let (tls, rest) = if let Some(r) = url.strip_prefix("https://") {
            (true, r)
        } else if let Some(r) = url.strip_prefix("http://") {
            (false, r)
        } else {
            return Err(format!("{url:?} does not start with https:// or http://"));
        };
        let authority = rest.trim_end_matches('/');
        if authority.contains('/') || authority.contains('?') || authority.contains('@') {
            return Err(format!(
                "{url:?}: give the service's scheme, host and port only (the agent adds /redfish/v1/)"
            ));
        }
        let default_port = if tls { 443 } else { 80 };
        let (host, port) = crate::endpoint::Endpoint::parse_with_port(authority, default_port)
            .map_err(|e| format!("{url:?}: {e}"))?;
        if host.is_empty() {
            return Err(format!("{url:?} has no host"));
        }
        Ok(Url { tls, host, port })
    }

    /// `host:port` with an IPv6 address in brackets.
    pub fn authority(&self) -> String {
        crate::endpoint::join(&self.host, self.port)
    }
}

/// A pin as 32 bytes, from hex with or without `:`.
pub fn parse_pin(pin: &str) -> Result<[u8; 32], String> {
    let hex: String = pin.chars().filter(|c| *c != ':').collect();
    if hex.len() != 64 || !hex.chars().all(|c| c.is_ascii_hexdigit()) {
        return Err(format!(
            "{pin:?} is not a SHA-256 in hex (64 hex digits, colons allowed)"
        ));
    }
    let mut out = [0u8; 32];
    for (i, byte) in out.iter_mut().enumerate() {
        *byte =
            u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).map_err(|e| format!("{pin:?}: {e}"))?;
    }
    Ok(out)
}

/// The first line of a secret file, named in errors by its path.
pub fn read_secret(path: &Path) -> Result<String, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("password file {}: {e}", path.display()))?;
    let line = text
        .lines()
        .next()
        .unwrap_or("")
        .trim_end_matches('\r')
        .to_owned();
    if line.is_empty() {
        return Err(format!("password file {} is empty", path.display()));
    }
    Ok(line)
}

impl RedfishSourceConfig {
    /// The rules serde cannot express.
    pub fn validate(&self) -> Result<(), (&'static str, String)> {
        if self.timeout.is_zero() || self.timeout > self.interval {
            return Err((
                "sources.redfish.timeout",
                "must be above zero and at most sources.redfish.interval".into(),
            ));
        }
        if self.rediscover < self.interval {
            return Err((
                "sources.redfish.rediscover",
                "must be at least sources.redfish.interval".into(),
            ));
        }
        if self.event_silence < Duration::from_secs(10) {
            return Err((
                "sources.redfish.event_silence",
                "must be at least 10s (services send keep-alives every few seconds to minutes)"
                    .into(),
            ));
        }
        if !(1..=1000).contains(&self.log_entries_per_read) {
            return Err((
                "sources.redfish.log_entries_per_read",
                "must be 1..=1000".into(),
            ));
        }
        let mut names = BTreeSet::new();
        for e in &self.endpoints {
            let name = &e.name;
            if name.is_empty() || name.len() > limits::MAX_DEV_LEN || name.contains('/') {
                return Err((
                    "sources.redfish.endpoints.name",
                    format!("{name:?} must be 1-128 characters without '/'"),
                ));
            }
            if !names.insert(name.as_str()) {
                return Err((
                    "sources.redfish.endpoints.name",
                    format!("{name:?} is used twice"),
                ));
            }
            let url = Url::parse(&e.url)
                .map_err(|m| ("sources.redfish.endpoints.url", format!("of {name:?}: {m}")))?;
            let trust = [
                e.ca_file.is_some(),
                e.pinned_sha256.is_some(),
                e.insecure_skip_verify,
            ]
            .into_iter()
            .filter(|b| *b)
            .count();
            if trust > 1 {
                return Err((
                    "sources.redfish.endpoints.ca_file",
                    format!(
                        "of {name:?}: set one of ca_file, pinned_sha256 and insecure_skip_verify"
                    ),
                ));
            }
            if !url.tls && trust > 0 {
                return Err((
                    "sources.redfish.endpoints.url",
                    format!("of {name:?} is http://: certificate settings need https://"),
                ));
            }
            if let Some(pin) = &e.pinned_sha256 {
                parse_pin(pin).map_err(|m| {
                    (
                        "sources.redfish.endpoints.pinned_sha256",
                        format!("of {name:?}: {m}"),
                    )
                })?;
            }
            match (&e.username, &e.password_file) {
                (Some(u), Some(_)) if !u.is_empty() => {}
                (None, None) => {}
                (Some(_), None) => {
                    return Err((
                        "sources.redfish.endpoints.password_file",
                        format!("of {name:?} is required with a username"),
                    ));
                }
                _ => {
                    return Err((
                        "sources.redfish.endpoints.username",
                        format!("of {name:?} is required with a password file"),
                    ));
                }
            }
            if e.request_timeout.is_zero() {
                return Err((
                    "sources.redfish.endpoints.request_timeout",
                    format!("of {name:?} must be above zero"),
                ));
            }
            if !(1..=16).contains(&e.concurrency) {
                return Err((
                    "sources.redfish.endpoints.concurrency",
                    format!("of {name:?} must be 1..=16"),
                ));
            }
            if e.interval.is_some_and(|i| i < self.interval) {
                return Err((
                    "sources.redfish.endpoints.interval",
                    format!("of {name:?} is shorter than the source's interval"),
                ));
            }
            if e.log_interval.is_some_and(|i| i < self.interval) {
                return Err((
                    "sources.redfish.endpoints.log_interval",
                    format!("of {name:?} is shorter than the source's interval"),
                ));
            }
            if e.labels.len() > 3 {
                return Err((
                    "sources.redfish.endpoints.labels",
                    format!("of {name:?}: at most 3 labels"),
                ));
            }
            for (k, v) in &e.labels {
                let valid = k.starts_with(|c: char| c.is_ascii_lowercase())
                    && k.chars()
                        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
                    && !limits::RESERVED_LABEL_KEYS.contains(&k.as_str())
                    && !super::map::LABEL_KEYS.contains(&k.as_str())
                    && v.len() <= limits::MAX_LABEL_VALUE_LEN;
                if !valid {
                    return Err((
                        "sources.redfish.endpoints.labels",
                        format!(
                            "of {name:?}: {k:?} is not a snake_case label key outside {:?} and {:?}",
                            limits::RESERVED_LABEL_KEYS,
                            super::map::LABEL_KEYS
                        ),
                    ));
                }
            }
        }
        Ok(())
    }
}

impl crate::source::Section for RedfishSourceConfig {
    fn enabled(&self) -> bool {
        self.enabled
    }

    fn schedule(&self) -> Schedule {
        Schedule {
            interval: self.interval,
            timeout: self.timeout,
        }
    }

    fn validate(&self) -> Result<(), (&'static str, String)> {
        RedfishSourceConfig::validate(self)
    }

    fn check_files(&self) -> Result<(), crate::files::FileError> {
        use crate::files::{FileError, FileProblem, readable_file};
        if let Some(dir) = &self.state_dir {
            crate::files::writable_dir(dir)
                .map_err(|p| FileError::new("sources.redfish.state_dir", dir, p))?;
        }
        for (i, e) in self.endpoints.iter().enumerate() {
            if let Some(f) = &e.password_file {
                let key = format!("sources.redfish.endpoints[{i}].password_file");
                readable_file(f).map_err(|p| FileError::new(key.clone(), f, p))?;
                read_secret(f).map_err(|m| FileError::new(key, f, FileProblem::Invalid(m)))?;
            }
            if let Some(f) = &e.ca_file {
                let key = format!("sources.redfish.endpoints[{i}].ca_file");
                readable_file(f).map_err(|p| FileError::new(key.clone(), f, p))?;
                super::http::roots(f)
                    .map_err(|m| FileError::new(key, f, FileProblem::Invalid(m)))?;
            }
        }
        Ok(())
    }
}

fn default_interval() -> Duration {
    Duration::from_secs(60)
}
fn default_event_silence() -> Duration {
    Duration::from_secs(600)
}
fn default_log_entries_per_read() -> usize {
    100
}
fn default_poll_timeout() -> Duration {
    Duration::from_secs(50)
}
fn default_rediscover() -> Duration {
    Duration::from_secs(3600)
}
fn default_request_timeout() -> Duration {
    Duration::from_secs(10)
}
fn default_concurrency() -> usize {
    4
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn config(endpoint: &str) -> Result<(), (&'static str, String)> {
        let c: RedfishSourceConfig =
            toml::from_str(&format!("[[endpoints]]\nname = \"bmc\"\n{endpoint}\n")).unwrap();
        c.validate()
    }

    #[test]
    fn a_url_is_scheme_host_and_port_only() {
        assert_eq!(
            Url::parse("https://10.1.2.3").unwrap(),
            Url {
                tls: true,
                host: "10.1.2.3".into(),
                port: 443
            }
        );
        assert_eq!(Url::parse("http://[::1]:8000/").unwrap().port, 8000);
        for bad in [
            "10.1.2.3",
            "ftp://bmc",
            "https://bmc/redfish/v1",
            "https://user@bmc",
            "https://",
        ] {
            assert!(Url::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn one_trust_setting_at_most_and_pins_are_64_hex_digits() {
        assert!(config("url = \"https://bmc\"").is_ok());
        let pin = "ab".repeat(32);
        assert!(config(&format!("url = \"https://bmc\"\npinned_sha256 = \"{pin}\"")).is_ok());
        let colons = vec!["AB"; 32].join(":");
        assert!(
            config(&format!(
                "url = \"https://bmc\"\npinned_sha256 = \"{colons}\""
            ))
            .is_ok()
        );
        assert_eq!(
            config("url = \"https://bmc\"\npinned_sha256 = \"abc\"")
                .unwrap_err()
                .0,
            "sources.redfish.endpoints.pinned_sha256"
        );
        assert_eq!(
            config(&format!(
                "url = \"https://bmc\"\npinned_sha256 = \"{pin}\"\ninsecure_skip_verify = true"
            ))
            .unwrap_err()
            .0,
            "sources.redfish.endpoints.ca_file"
        );
        assert_eq!(
            config("url = \"http://bmc\"\ninsecure_skip_verify = true")
                .unwrap_err()
                .0,
            "sources.redfish.endpoints.url"
        );
    }

    #[test]
    fn a_username_needs_a_password_file_and_labels_keep_clear_of_the_sources_own() {
        assert_eq!(
            config("url = \"https://bmc\"\nusername = \"ro\"")
                .unwrap_err()
                .0,
            "sources.redfish.endpoints.password_file"
        );
        assert_eq!(
            config("url = \"https://bmc\"\nlabels = { chassis = \"x\" }")
                .unwrap_err()
                .0,
            "sources.redfish.endpoints.labels"
        );
        assert!(config("url = \"https://bmc\"\nlabels = { rack = \"r1\" }").is_ok());
    }

    #[test]
    fn events_default_on_and_their_bounds_are_checked() {
        let c: RedfishSourceConfig =
            toml::from_str("[[endpoints]]\nname = \"bmc\"\nurl = \"https://bmc\"\n").unwrap();
        assert!(c.endpoints[0].events);
        assert_eq!(c.event_silence, Duration::from_secs(600));
        assert_eq!(c.log_entries_per_read, 100);
        assert_eq!(c.state_dir, None);
        let source = |top: &str, endpoint: &str| {
            let c: RedfishSourceConfig = toml::from_str(&format!(
                "{top}\n[[endpoints]]\nname = \"bmc\"\nurl = \"https://bmc\"\n{endpoint}\n"
            ))
            .unwrap();
            c.validate().map_err(|e| e.0)
        };
        assert_eq!(
            source("event_silence = \"1s\"", ""),
            Err("sources.redfish.event_silence")
        );
        assert_eq!(
            source("log_entries_per_read = 0", ""),
            Err("sources.redfish.log_entries_per_read")
        );
        assert_eq!(
            source("", "log_interval = \"10s\""),
            Err("sources.redfish.endpoints.log_interval")
        );
        assert_eq!(source("", "events = false\nlog_interval = \"5m\""), Ok(()));
    }

    #[test]
    fn the_pin_parses_to_its_bytes() {
        let pin = parse_pin(&vec!["0F"; 32].join(":")).unwrap();
        assert_eq!(pin, [0x0f; 32]);
    }
}
