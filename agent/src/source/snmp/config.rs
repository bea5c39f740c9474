//! `[sources.snmp]`: UPS network cards, rack PDUs, environment monitors and
//! switches over SNMP v1, v2c and v3, each read through a profile
//! (`firmware-config/snmp/`), and an optional trap/inform receiver.
//!
//! ```toml
//! [sources.snmp]
//! interval = "10s"
//! [sources.snmp.traps]
//! listen = "0.0.0.0:1162"
//!
//! [[sources.snmp.devices]]
//! name = "ups-a"
//! address = "10.1.2.10"                 # port 161 by default
//! profile = "ups-mib"                   # a shipped profile or a file path
//! version = "v3"
//! user = "sitewatch"
//! auth = "sha256"
//! auth_password_file = "/etc/sitewatch/snmp-auth"
//! privacy = "aes"
//! privacy_password_file = "/etc/sitewatch/snmp-priv"
//! ```

use std::{
    collections::{BTreeMap, BTreeSet},
    path::{Path, PathBuf},
    time::Duration,
};

use serde::{Deserialize, Serialize};
use sitewatch_protocol::limits;

use crate::{
    config::{Schedule, default_true, duration, opt_duration},
    endpoint::Endpoint,
};

/// The agent's default trap port: unprivileged, so no capability is needed.
pub const DEFAULT_TRAP_LISTEN: &str = "0.0.0.0:1162";

/// `[sources.snmp]`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SnmpSourceConfig {
    /// Set to false to stop reading SNMP devices.
    #[serde(default = "default_true")]
    pub enabled: bool,
    /// How often the source runs; a device is read when its own interval is due.
    #[serde(default = "default_interval", with = "duration")]
    pub interval: Duration,
    /// How long one poll of every device may take; each device's read gets
    /// 90 % of it, and a device whose read is not done by then reads
    /// `agent_poll_success 0` (`error="timeout"`) without delaying the others.
    #[serde(default = "default_poll_timeout", with = "duration")]
    pub timeout: Duration,
    /// The trap and inform receiver; absent = no receiver.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub traps: Option<TrapsConfig>,
    #[serde(default)]
    pub devices: Vec<SnmpDeviceConfig>,
}

/// `[sources.snmp.traps]`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrapsConfig {
    /// `address:port` to listen on (UDP). Port 162, the standard one, needs
    /// `CAP_NET_BIND_SERVICE` or a port mapping (README, "SNMP").
    #[serde(default = "default_trap_listen")]
    pub listen: String,
    /// Files holding the v1/v2c communities traps must carry (first line of
    /// each). Empty: the communities of the configured v1/v2c devices.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub community_files: Vec<PathBuf>,
    /// The same notification from the same device within this window is one
    /// event (devices and informs repeat themselves).
    #[serde(default = "default_dedup", with = "duration")]
    pub dedup: Duration,
}

/// SNMP version.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Version {
    V1,
    #[default]
    V2c,
    V3,
}

/// USM authentication protocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AuthProtocol {
    Md5,
    Sha,
    Sha224,
    Sha256,
    Sha384,
    Sha512,
}

/// USM privacy protocol. `aes192`/`aes256` use the Blumenthal key extension
/// (net-snmp's AES-192/AES-256); `aes192c`/`aes256c` the Reeder one (Cisco).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PrivProtocol {
    Des,
    Aes,
    Aes192,
    Aes256,
    Aes192c,
    Aes256c,
}

/// `[[sources.snmp.devices]]`: one SNMP agent.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SnmpDeviceConfig {
    /// The readings' `dev`, unique within the source.
    pub name: String,
    /// `host[:port]` or `[v6]:port`; the port defaults to 161.
    pub address: String,
    /// A shipped profile's name (`ups-mib`) or a profile file's path.
    pub profile: String,
    #[serde(default)]
    pub version: Version,
    /// v1/v2c: a file holding the community (its first line). Without it the
    /// community is `public`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub community_file: Option<PathBuf>,
    /// v3: the USM user.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    /// v3: authentication; without it the user is noAuthNoPriv.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth: Option<AuthProtocol>,
    /// v3: a file holding the authentication passphrase (at least 8 characters).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth_password_file: Option<PathBuf>,
    /// v3: privacy (encryption); needs `auth`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub privacy: Option<PrivProtocol>,
    /// v3: a file holding the privacy passphrase (at least 8 characters).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub privacy_password_file: Option<PathBuf>,
    /// Poll interval; default the source's.
    #[serde(
        default,
        with = "opt_duration",
        skip_serializing_if = "Option::is_none"
    )]
    pub interval: Option<Duration>,
    /// Each request's timeout.
    #[serde(default = "default_request_timeout", with = "duration")]
    pub timeout: Duration,
    /// Retransmissions of a request that got no answer.
    #[serde(default = "default_retries")]
    pub retries: u32,
    /// GETBULK max-repetitions (1-127); default the profile's, else 10. Some
    /// PDUs garble large bulk answers (4 is the usual cure), some switches
    /// break above 23.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_repetitions: Option<u32>,
    /// Walk tables with GETBULK (v2c and v3). `false` uses GETNEXT; a device
    /// whose bulk requests fail is switched to GETNEXT by itself.
    #[serde(default = "default_true")]
    pub bulk: bool,
    /// Labels on every reading of the device (at most 3): `rack`, `feed`
    /// (`a`/`b` for a PDU of a dual-fed rack), `role` (`switch`, `router`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    /// Interfaces (ifName, ifDescr alias or ifIndex) that are this switch's
    /// uplinks: their `interface_up` carries `port_role = "uplink"`, which the
    /// `network_device` signal watches.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub uplinks: Vec<String>,
}

impl SnmpDeviceConfig {
    /// (host, port) of the agent.
    pub fn endpoint(&self) -> Result<(String, u16), String> {
        Endpoint::parse_with_port(&self.address, 161)
            .map_err(|e| format!("{e}; expected host[:port] or [v6-address]:port"))
    }
}

/// The first line of a secret file, named in errors by `what` and its path.
pub fn read_secret(what: &str, path: &Path) -> Result<String, String> {
    let text =
        std::fs::read_to_string(path).map_err(|e| format!("{what} {}: {e}", path.display()))?;
    let line = text
        .lines()
        .next()
        .unwrap_or("")
        .trim_end_matches('\r')
        .to_owned();
    if line.is_empty() {
        return Err(format!("{what} {} is empty", path.display()));
    }
    Ok(line)
}

impl SnmpSourceConfig {
    /// The rules serde cannot express, the profiles and the credential files.
    pub fn validate(&self) -> Result<(), (&'static str, String)> {
        if self.timeout.is_zero() || self.timeout > self.interval {
            return Err((
                "sources.snmp.timeout",
                "must be above zero and at most sources.snmp.interval".into(),
            ));
        }
        let mut names = BTreeSet::new();
        for d in &self.devices {
            let name = &d.name;
            if name.is_empty() || name.len() > limits::MAX_DEV_LEN || name.contains('/') {
                return Err((
                    "sources.snmp.devices.name",
                    format!("{name:?} must be 1-128 characters without '/'"),
                ));
            }
            if !names.insert(name.as_str()) {
                return Err((
                    "sources.snmp.devices.name",
                    format!("{name:?} is used twice"),
                ));
            }
            d.endpoint()
                .map_err(|e| ("sources.snmp.devices.address", format!("of {name:?}: {e}")))?;
            super::load_profile(&d.profile)
                .map_err(|e| ("sources.snmp.devices.profile", format!("of {name:?}: {e}")))?;
            if d.timeout.is_zero() {
                return Err((
                    "sources.snmp.devices.timeout",
                    format!("of {name:?} must be above zero"),
                ));
            }
            if d.retries > 5 {
                return Err((
                    "sources.snmp.devices.retries",
                    format!("of {name:?} must be at most 5"),
                ));
            }
            if let Some(r) = d.max_repetitions.filter(|r| !(1..=127).contains(r)) {
                return Err((
                    "sources.snmp.devices.max_repetitions",
                    format!("{r} of {name:?} is outside 1..=127"),
                ));
            }
            if d.interval.is_some_and(|i| i < self.interval) {
                return Err((
                    "sources.snmp.devices.interval",
                    format!("of {name:?} is shorter than the source's interval"),
                ));
            }
            if d.labels.len() > 3 {
                return Err((
                    "sources.snmp.devices.labels",
                    format!("of {name:?}: at most 3 labels"),
                ));
            }
            for (k, v) in &d.labels {
                let valid = k.starts_with(|c: char| c.is_ascii_lowercase())
                    && k.chars()
                        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
                    && !limits::RESERVED_LABEL_KEYS.contains(&k.as_str())
                    && v.len() <= limits::MAX_LABEL_VALUE_LEN;
                if !valid {
                    return Err((
                        "sources.snmp.devices.labels",
                        format!(
                            "of {name:?}: {k:?} is not a snake_case label key outside {:?}",
                            limits::RESERVED_LABEL_KEYS
                        ),
                    ));
                }
            }
            check_credentials(d)?;
        }
        if let Some(t) = &self.traps {
            t.listen.parse::<std::net::SocketAddr>().map_err(|_| {
                (
                    "sources.snmp.traps.listen",
                    format!("{:?} is not an address:port such as 0.0.0.0:1162", t.listen),
                )
            })?;
            for f in &t.community_files {
                read_secret("community file", f)
                    .map_err(|e| ("sources.snmp.traps.community_files", e))?;
            }
        }
        Ok(())
    }
}

fn check_credentials(d: &SnmpDeviceConfig) -> Result<(), (&'static str, String)> {
    let name = &d.name;
    match d.version {
        Version::V1 | Version::V2c => {
            if d.user.is_some() || d.auth.is_some() || d.privacy.is_some() {
                return Err((
                    "sources.snmp.devices.version",
                    format!("{name:?} sets v3 credentials but version is not \"v3\""),
                ));
            }
            if let Some(f) = &d.community_file {
                read_secret("community file", f).map_err(|e| {
                    (
                        "sources.snmp.devices.community_file",
                        format!("of {name:?}: {e}"),
                    )
                })?;
            }
        }
        Version::V3 => {
            if d.user.as_deref().is_none_or(str::is_empty) {
                return Err((
                    "sources.snmp.devices.user",
                    format!("{name:?} is v3 and needs a user"),
                ));
            }
            if d.community_file.is_some() {
                return Err((
                    "sources.snmp.devices.community_file",
                    format!("of {name:?}: v3 has no community"),
                ));
            }
            if d.privacy.is_some() && d.auth.is_none() {
                return Err((
                    "sources.snmp.devices.privacy",
                    format!("of {name:?} needs `auth` too (authPriv)"),
                ));
            }
            for (set, file, key, what) in [
                (
                    d.auth.is_some(),
                    &d.auth_password_file,
                    "sources.snmp.devices.auth_password_file",
                    "auth password file",
                ),
                (
                    d.privacy.is_some(),
                    &d.privacy_password_file,
                    "sources.snmp.devices.privacy_password_file",
                    "privacy password file",
                ),
            ] {
                match (set, file) {
                    (true, None) => return Err((key, format!("of {name:?} is required"))),
                    (false, Some(_)) => {
                        return Err((key, format!("of {name:?} is set without its protocol")));
                    }
                    (true, Some(f)) => {
                        let secret =
                            read_secret(what, f).map_err(|e| (key, format!("of {name:?}: {e}")))?;
                        if secret.len() < 8 {
                            return Err((
                                key,
                                format!(
                                    "of {name:?}: {} holds fewer than 8 characters (the USM minimum)",
                                    f.display()
                                ),
                            ));
                        }
                    }
                    (false, None) => {}
                }
            }
        }
    }
    Ok(())
}

impl crate::source::Section for SnmpSourceConfig {
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
        SnmpSourceConfig::validate(self)
    }
}

fn default_interval() -> Duration {
    Duration::from_secs(10)
}
fn default_poll_timeout() -> Duration {
    Duration::from_secs(8)
}
fn default_request_timeout() -> Duration {
    Duration::from_secs(2)
}
fn default_retries() -> u32 {
    1
}
fn default_trap_listen() -> String {
    DEFAULT_TRAP_LISTEN.to_owned()
}
fn default_dedup() -> Duration {
    Duration::from_secs(60)
}
