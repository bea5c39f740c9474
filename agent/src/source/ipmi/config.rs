//! `[sources.ipmi]`: remote BMCs over RMCP+ and the local `/dev/ipmi0`.

use std::{path::PathBuf, time::Duration};

use serde::{Deserialize, Serialize};

use crate::{config::duration, endpoint::Endpoint};

/// `[sources.ipmi]`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IpmiSourceConfig {
    /// Also read this machine's own BMC through `/dev/ipmi0` (in-band; needs
    /// read-write access to the device, usually root or a udev rule). Its
    /// readings have `dev = "local"`.
    #[serde(default)]
    pub local: bool,
    /// How often to sweep every BMC.
    #[serde(default = "default_ipmi_interval", with = "duration")]
    pub interval: Duration,
    /// How long one sweep may take. A BMC whose sweep is not done by then
    /// reads `bmc_up = 0` for this poll; it never delays the others.
    #[serde(default = "default_ipmi_timeout", with = "duration")]
    pub timeout: Duration,
    /// How long one IPMI request may wait for its answer (a UDP datagram; the
    /// session is re-opened after a timeout so that a late answer is never
    /// taken for the next one's).
    #[serde(default = "default_ipmi_command_timeout", with = "duration")]
    pub command_timeout: Duration,
    /// A directory for the SDR cache and the SEL cursor, one file each per BMC,
    /// so that a restart neither re-reads every SDR nor re-sends old SEL
    /// entries. Without it both live in memory only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state_dir: Option<PathBuf>,
    /// Remote BMCs, read over RMCP+ (IPMI 2.0 "lanplus", cipher suite 3).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub bmcs: Vec<BmcConfig>,
}

/// `[[sources.ipmi.bmcs]]`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BmcConfig {
    /// The BMC's name: its readings' `dev` and its state files' name.
    /// `[A-Za-z0-9_.-]`, 1 to 64 characters, unique, not `local`.
    pub name: String,
    /// `host[:port]` or `[v6]:port`; the port defaults to 623.
    pub address: String,
    /// The BMC user (at most 16 bytes). ipmi-rs opens sessions at the
    /// Administrator privilege level, so the user needs that limit.
    pub username: String,
    /// A file holding the password (its first line, at most 20 bytes).
    pub password_file: PathBuf,
}

/// The `[sources.ipmi]` rules serde cannot express: (key, message) on failure.
pub fn validate_ipmi(c: &IpmiSourceConfig) -> Result<(), (&'static str, String)> {
    if !c.local && c.bmcs.is_empty() {
        return Err((
            "sources.ipmi",
            "has neither `local = true` nor any [[sources.ipmi.bmcs]]".into(),
        ));
    }
    if c.command_timeout.is_zero() || c.command_timeout > c.timeout {
        return Err((
            "sources.ipmi.command_timeout",
            "must be above zero and at most sources.ipmi.timeout".into(),
        ));
    }
    let mut names = std::collections::BTreeSet::new();
    for (i, bmc) in c.bmcs.iter().enumerate() {
        let valid_name = (1..=64).contains(&bmc.name.len())
            && bmc
                .name
                .chars()
                .all(|ch| ch.is_ascii_alphanumeric() || matches!(ch, '_' | '.' | '-'))
            && !bmc.name.starts_with('.');
        if !valid_name || bmc.name == "local" {
            return Err((
                "sources.ipmi.bmcs.name",
                format!(
                    "of BMC #{} ({:?}) must be 1 to 64 characters of [A-Za-z0-9_.-], not starting with '.', and not \"local\"",
                    i + 1,
                    bmc.name
                ),
            ));
        }
        if !names.insert(bmc.name.as_str()) {
            return Err((
                "sources.ipmi.bmcs.name",
                format!("{:?} is used by two BMCs", bmc.name),
            ));
        }
        if let Err(e) = parse_bmc_address(&bmc.address) {
            return Err((
                "sources.ipmi.bmcs.address",
                format!("of BMC {:?}: {e}", bmc.name),
            ));
        }
        if bmc.username.len() > 16 {
            return Err((
                "sources.ipmi.bmcs.username",
                format!(
                    "of BMC {:?} is longer than 16 bytes (the IPMI limit)",
                    bmc.name
                ),
            ));
        }
    }
    Ok(())
}

/// `host[:port]` or `[v6]:port` -> (host, port), the port defaulting to 623.
pub fn parse_bmc_address(s: &str) -> Result<(String, u16), String> {
    Endpoint::parse_with_port(s, 623)
        .map_err(|e| format!("{e}; expected host[:port] or [v6-address]:port"))
}

fn default_ipmi_interval() -> Duration {
    Duration::from_secs(10)
}
fn default_ipmi_timeout() -> Duration {
    Duration::from_secs(5)
}
fn default_ipmi_command_timeout() -> Duration {
    Duration::from_secs(1)
}

impl crate::source::Section for IpmiSourceConfig {
    fn schedule(&self) -> crate::config::Schedule {
        crate::config::Schedule {
            interval: self.interval,
            timeout: self.timeout,
        }
    }

    fn validate(&self) -> Result<(), (&'static str, String)> {
        validate_ipmi(self)
    }

    fn check_files(&self) -> Result<(), crate::files::FileError> {
        use crate::files::{FileError, readable_file, writable_dir};
        for (i, bmc) in self.bmcs.iter().enumerate() {
            readable_file(&bmc.password_file).map_err(|p| {
                FileError::new(
                    format!("sources.ipmi.bmcs[{i}].password_file"),
                    &bmc.password_file,
                    p,
                )
            })?;
        }
        if let Some(dir) = &self.state_dir {
            writable_dir(dir).map_err(|p| FileError::new("sources.ipmi.state_dir", dir, p))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bmc_addresses_default_to_port_623() {
        let cases = [
            ("10.1.12.1", "10.1.12.1", 623),
            ("10.1.12.1:6230", "10.1.12.1", 6230),
            ("bmc.r12", "bmc.r12", 623),
            ("[fd00::1]:624", "fd00::1", 624),
            ("fd00::1", "fd00::1", 623),
        ];
        for (s, host, port) in cases {
            assert_eq!(
                parse_bmc_address(s).unwrap(),
                (host.to_owned(), port),
                "{s}"
            );
        }
        for bad in ["", ":623", "h:x", "h:70000", "a b"] {
            assert!(parse_bmc_address(bad).is_err(), "{bad}");
        }
    }
}
