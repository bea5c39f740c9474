//! `[nut_server]`: the upsd facade and its FSD policy.
//!
//! ```toml
//! [nut_server]
//! listen = ["127.0.0.1:3493"]           # the default: loopback only
//! users_file = "/etc/sitewatch/nut-upsd.users"
//!
//! [[nut_server.ups]]                    # optional: names and descriptions
//! name = "ups"
//! device = "modbus/ups-a"
//! description = "room 1, feed A"
//!
//! [nut_server.fsd]
//! runtime_below = "5m"
//! grace = "30s"
//! dry_run = false
//! ```

use std::{collections::BTreeSet, path::PathBuf, time::Duration};

use serde::{Deserialize, Serialize};

use crate::{
    config::{default_true, duration, opt_duration},
    endpoint::Endpoint,
};

/// `[nut_server]`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NutServerConfig {
    /// Set to false to stop serving.
    #[serde(default = "default_true")]
    pub enabled: bool,
    /// `address:port` to listen on (TCP). Loopback by default: a site's
    /// servers reach the gateway's facade only when this says so
    /// (`0.0.0.0:3493`, or the gateway's address on the server network).
    #[serde(default = "default_listen")]
    pub listen: Vec<String>,
    /// The users `upsmon` logs in as, in upsd.users' format (`[name]`,
    /// `password = ...`, `upsmon primary|secondary`). Without it, clients
    /// read (`upsc`) but nobody can `LOGIN`, so `upsmon` cannot watch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub users_file: Option<PathBuf>,
    /// A UPS whose readings are older than this (its source stopped
    /// answering) reads `ERR DATA-STALE`, which upsmon reports as lost
    /// communication, never as "on line".
    #[serde(default = "default_stale_after", with = "duration")]
    pub stale_after: Duration,
    /// A connection idle this long is closed (upsmon polls every few seconds).
    #[serde(default = "default_idle_timeout", with = "duration")]
    pub idle_timeout: Duration,
    /// At most this many clients at once; more are refused.
    #[serde(default = "default_max_clients")]
    pub max_clients: usize,
    /// Names for the UPSes served. Without an entry a UPS is named after
    /// its device (`ups-a`; characters NUT does not take become `_`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ups: Vec<UpsName>,
    /// When the facade raises FSD by itself.
    #[serde(default)]
    pub fsd: FsdConfig,
    /// STARTTLS for clients that ask (upsmon's `CERTVERIFY`/`FORCESSL`);
    /// absent: `STARTTLS` answers `ERR FEATURE-NOT-CONFIGURED`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<FacadeTls>,
}

/// `[nut_server.tls]`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FacadeTls {
    /// PEM certificate chain the facade presents.
    pub cert: PathBuf,
    /// Its PEM private key (PKCS#8, PKCS#1 or SEC1).
    pub key: PathBuf,
}

/// `[[nut_server.ups]]`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpsName {
    /// The NUT name (`upsc <name>@gateway`).
    pub name: String,
    /// `src/dev` of the readings: `modbus/ups-a`, `snmp/ups-b`, `nut/ups@nas`.
    pub device: String,
    /// `GET UPSDESC`'s answer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
}

/// `[nut_server.fsd]`: the agent's part of an orderly shutdown. Without a
/// threshold, FSD comes only from a primary upsmon (`FSD <ups>`); the UPS's
/// own LB still reaches every upsmon in `ups.status`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FsdConfig {
    /// Raise FSD when the UPS is on battery and its runtime left
    /// (`battery.runtime`) is below this: the servers shut down while the
    /// battery still holds the time they need.
    #[serde(
        default,
        with = "opt_duration",
        skip_serializing_if = "Option::is_none"
    )]
    pub runtime_below: Option<Duration>,
    /// Raise FSD when the UPS has been on battery this long, whatever its
    /// runtime says (a generator that has not come by then will not).
    #[serde(
        default,
        with = "opt_duration",
        skip_serializing_if = "Option::is_none"
    )]
    pub on_battery_for: Option<Duration>,
    /// A condition must hold this long before FSD is raised (a runtime
    /// estimate dips when the load steps up).
    #[serde(default = "default_grace", with = "duration")]
    pub grace: Duration,
    /// Log (and serve nothing) what would raise FSD: for trying thresholds
    /// in a drill without shutting servers down.
    #[serde(default)]
    pub dry_run: bool,
}

impl Default for FsdConfig {
    fn default() -> Self {
        FsdConfig {
            runtime_below: None,
            on_battery_for: None,
            grace: default_grace(),
            dry_run: false,
        }
    }
}

impl Default for NutServerConfig {
    /// Loopback, no users, no FSD policy: what an empty `[nut_server]` says.
    fn default() -> Self {
        NutServerConfig {
            enabled: true,
            listen: default_listen(),
            users_file: None,
            stale_after: default_stale_after(),
            idle_timeout: default_idle_timeout(),
            max_clients: default_max_clients(),
            ups: Vec::new(),
            fsd: FsdConfig::default(),
            tls: None,
        }
    }
}

fn default_listen() -> Vec<String> {
    vec!["127.0.0.1:3493".into()]
}

fn default_stale_after() -> Duration {
    Duration::from_secs(30)
}

fn default_idle_timeout() -> Duration {
    Duration::from_secs(300)
}

fn default_max_clients() -> usize {
    64
}

fn default_grace() -> Duration {
    Duration::from_secs(30)
}

/// A name NUT takes for a UPS: letters, digits, `_`, `-`, `.`.
pub fn valid_ups_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
}

impl NutServerConfig {
    /// The rules serde cannot express: the offending key and why.
    pub fn validate(&self) -> Result<(), (&'static str, String)> {
        if self.listen.is_empty() {
            return Err(("nut_server.listen", "needs at least one address".into()));
        }
        for l in &self.listen {
            Endpoint::parse_host_port(l)
                .map_err(|e| ("nut_server.listen", format!("{l:?}: {e}")))?;
        }
        if self.stale_after.is_zero() {
            return Err(("nut_server.stale_after", "must be above zero".into()));
        }
        if self.max_clients == 0 {
            return Err(("nut_server.max_clients", "must be at least 1".into()));
        }
        let mut names = BTreeSet::new();
        let mut devices = BTreeSet::new();
        for u in &self.ups {
            if !valid_ups_name(&u.name) {
                return Err((
                    "nut_server.ups.name",
                    format!("{:?}: 1-64 of letters, digits, '_', '-' and '.'", u.name),
                ));
            }
            if !names.insert(&u.name) {
                return Err(("nut_server.ups.name", format!("{:?} is used twice", u.name)));
            }
            if u.device
                .split_once('/')
                .is_none_or(|(s, d)| s.is_empty() || d.is_empty())
            {
                return Err((
                    "nut_server.ups.device",
                    format!("{:?}: expected src/dev, e.g. modbus/ups-a", u.device),
                ));
            }
            if !devices.insert(&u.device) {
                return Err((
                    "nut_server.ups.device",
                    format!("{:?} is named twice", u.device),
                ));
            }
        }
        if self.fsd.runtime_below.is_some_and(|d| d.is_zero()) {
            return Err((
                "nut_server.fsd.runtime_below",
                "must be above zero (leave it out for no threshold)".into(),
            ));
        }
        if self.fsd.on_battery_for.is_some_and(|d| d.is_zero()) {
            return Err((
                "nut_server.fsd.on_battery_for",
                "must be above zero (leave it out for no limit)".into(),
            ));
        }
        Ok(())
    }

    /// The users file reads and holds valid users.
    pub fn check_files(&self) -> Result<(), crate::files::FileError> {
        use crate::files::{FileError, FileProblem, readable_file};
        if let Some(t) = &self.tls {
            readable_file(&t.cert)
                .map_err(|e| FileError::new("nut_server.tls.cert", &t.cert, e))?;
            readable_file(&t.key).map_err(|e| FileError::new("nut_server.tls.key", &t.key, e))?;
            crate::tls::server_config(&t.cert, &t.key).map_err(|e| {
                FileError::new(
                    "nut_server.tls.cert",
                    &t.cert,
                    FileProblem::Invalid(e.to_string()),
                )
            })?;
        }
        if let Some(p) = &self.users_file {
            readable_file(p).map_err(|e| FileError::new("nut_server.users_file", p, e))?;
            super::users::Users::load(p)
                .map_err(|e| FileError::new("nut_server.users_file", p, FileProblem::Invalid(e)))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> NutServerConfig {
        toml::from_str(text).unwrap()
    }

    #[test]
    fn listens_on_loopback_by_default_without_a_threshold() {
        let c = parse("");
        assert_eq!(c, NutServerConfig::default());
        assert_eq!(c.listen, ["127.0.0.1:3493"]);
        assert_eq!(c.fsd, FsdConfig::default());
        c.validate().unwrap();
    }

    #[test]
    fn refuses_bad_names_and_devices() {
        let c = parse("[[ups]]\nname = \"a b\"\ndevice = \"modbus/x\"\n");
        assert_eq!(c.validate().unwrap_err().0, "nut_server.ups.name");
        let c = parse("[[ups]]\nname = \"a\"\ndevice = \"x\"\n");
        assert_eq!(c.validate().unwrap_err().0, "nut_server.ups.device");
        let c = parse("listen = [\"127.0.0.1\"]\n");
        assert_eq!(c.validate().unwrap_err().0, "nut_server.listen");
        let c = parse("[fsd]\nruntime_below = \"0s\"\n");
        assert_eq!(c.validate().unwrap_err().0, "nut_server.fsd.runtime_below");
    }
}
