//! `[sources.smart]`: disk health through smartctl.

use std::{collections::BTreeMap, path::PathBuf, time::Duration};

use serde::{Deserialize, Serialize};

use crate::config::duration;

/// `[sources.smart]`: one `smartctl` run per disk and poll.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SmartSourceConfig {
    /// The smartctl binary (smartmontools 7.0 or later for `--json`); an absolute path.
    #[serde(default = "default_smartctl")]
    pub smartctl: PathBuf,
    /// How often every disk is read. SMART data changes slowly, and each run
    /// costs the disk a few commands.
    #[serde(default = "default_smart_interval", with = "duration")]
    pub interval: Duration,
    /// How long one smartctl run may take; then its whole process group is killed
    /// and the disk's health is `unknown` for this poll. At most half of `interval`.
    #[serde(default = "default_smart_timeout", with = "duration")]
    pub timeout: Duration,
    /// The disks to read. Empty: discover them with `smartctl --scan-open`.
    #[serde(default)]
    pub devices: Vec<SmartDeviceConfig>,
    /// How often discovery runs again (new or replaced disks); unused with `devices`.
    #[serde(default = "default_smart_rescan", with = "duration")]
    pub rescan: Duration,
    /// Read only disks whose name (`sda`, `nvme0`, `megaraid,1@/dev/bus/0`) or path
    /// matches one of these patterns (`*` any run of characters, `?` one). Empty: all.
    #[serde(default)]
    pub include: Vec<String>,
    /// Skip disks whose name or path matches one of these patterns; wins over `include`.
    #[serde(default)]
    pub exclude: Vec<String>,
    /// smartctl processes running at once, at most. Several disks behind one RAID
    /// controller share its firmware's attention: keep this low.
    #[serde(default = "default_smart_max_concurrent")]
    pub max_concurrent: usize,
    /// Skip (do not wake) a disk in this power mode or a lower one:
    /// `never` (always read), `sleep`, `standby` or `idle` (smartctl's `--nocheck`).
    #[serde(default)]
    pub nocheck: NoCheck,
    /// `nocheck` per protocol (`ata`, `nvme`, `scsi`), for disks that misreport
    /// their power mode: `[sources.smart.nocheck_by_protocol] nvme = "never"`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub nocheck_by_protocol: BTreeMap<DiskProtocol, NoCheck>,
}

/// One `[[sources.smart.devices]]` entry (or `{ path = ..., type = ... }`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SmartDeviceConfig {
    /// The device path given to smartctl, e.g. `/dev/sda`, `/dev/nvme0`, `/dev/bus/0`.
    pub path: String,
    /// smartctl's `-d` type, e.g. `sat`, `nvme`, `scsi`, `megaraid,1`. Recommended:
    /// without it smartctl probes the device, which can wake a sleeping disk.
    #[serde(default, rename = "type", skip_serializing_if = "Option::is_none")]
    pub dev_type: Option<String>,
    /// `nocheck` for this disk alone.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nocheck: Option<NoCheck>,
}

/// smartctl's `--nocheck` power modes, lowest-power first.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NoCheck {
    /// Always read the disk (wakes a sleeping one).
    Never,
    /// Skip a disk in SLEEP mode.
    Sleep,
    /// Skip a disk in SLEEP or STANDBY mode (spun down).
    #[default]
    Standby,
    /// Skip a disk in SLEEP, STANDBY or IDLE mode.
    Idle,
}

impl NoCheck {
    /// The `--nocheck` argument.
    pub fn as_str(self) -> &'static str {
        match self {
            NoCheck::Never => "never",
            NoCheck::Sleep => "sleep",
            NoCheck::Standby => "standby",
            NoCheck::Idle => "idle",
        }
    }
}

/// A disk's command set, as a `nocheck_by_protocol` key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DiskProtocol {
    Ata,
    Nvme,
    Scsi,
}

impl SmartSourceConfig {
    /// The rules serde cannot express: the offending key and why.
    pub fn validate(&self) -> Result<(), (&'static str, String)> {
        if !self.smartctl.is_absolute() {
            return Err((
                "sources.smart.smartctl",
                format!(
                    "must be an absolute path, not {:?} (the agent runs it as root)",
                    self.smartctl
                ),
            ));
        }
        if self.timeout.is_zero() || self.timeout.saturating_mul(2) > self.interval {
            return Err((
                "sources.smart.timeout",
                format!(
                    "must be above zero and at most half of sources.smart.interval ({})",
                    humantime::format_duration(self.interval)
                ),
            ));
        }
        if self.rescan < Duration::from_secs(1) {
            return Err(("sources.smart.rescan", "must be at least 1s".into()));
        }
        if !(1..=64).contains(&self.max_concurrent) {
            return Err((
                "sources.smart.max_concurrent",
                "must be between 1 and 64".into(),
            ));
        }
        for (key, patterns) in [
            ("sources.smart.include", &self.include),
            ("sources.smart.exclude", &self.exclude),
        ] {
            if let Some(p) = crate::pattern::invalid_pattern(patterns) {
                return Err((key, format!("has an empty or invalid pattern {p:?}")));
            }
        }
        let mut names = std::collections::BTreeSet::new();
        for (i, d) in self.devices.iter().enumerate() {
            if !d.path.starts_with('/') || d.path.chars().any(|c| c.is_control() || c == ' ') {
                return Err((
                    "sources.smart.devices",
                    format!(
                        "entry {i}: path {:?} must be an absolute device path such as /dev/sda",
                        d.path
                    ),
                ));
            }
            if let Some(t) = &d.dev_type {
                let valid = !t.is_empty()
                    && t.chars().next().is_some_and(|c| c.is_ascii_alphanumeric())
                    && t.chars()
                        .all(|c| c.is_ascii_alphanumeric() || ",+/_.-".contains(c));
                if !valid {
                    return Err((
                        "sources.smart.devices",
                        format!(
                            "entry {i}: type {t:?} is not a smartctl -d type such as sat, nvme or megaraid,1"
                        ),
                    ));
                }
            }
            let name = crate::source::smart::device_name(&d.path, d.dev_type.as_deref());
            if !names.insert(name.clone()) {
                return Err((
                    "sources.smart.devices",
                    format!("entry {i}: names the disk {name} a second time"),
                ));
            }
        }
        Ok(())
    }
}

impl Default for SmartSourceConfig {
    fn default() -> Self {
        SmartSourceConfig {
            smartctl: default_smartctl(),
            interval: default_smart_interval(),
            timeout: default_smart_timeout(),
            devices: Vec::new(),
            rescan: default_smart_rescan(),
            include: Vec::new(),
            exclude: Vec::new(),
            max_concurrent: default_smart_max_concurrent(),
            nocheck: NoCheck::default(),
            nocheck_by_protocol: BTreeMap::new(),
        }
    }
}

fn default_smartctl() -> PathBuf {
    PathBuf::from("/usr/sbin/smartctl")
}
fn default_smart_interval() -> Duration {
    Duration::from_secs(600)
}
fn default_smart_timeout() -> Duration {
    Duration::from_secs(30)
}
fn default_smart_rescan() -> Duration {
    Duration::from_secs(3600)
}
fn default_smart_max_concurrent() -> usize {
    1
}

impl crate::source::Section for SmartSourceConfig {
    // `timeout` bounds each smartctl run; the poll as a whole (discovery
    // and every disk) has one interval, and the source stops starting
    // runs that could not finish within it.
    fn schedule(&self) -> crate::config::Schedule {
        crate::config::Schedule {
            interval: self.interval,
            timeout: self.interval,
        }
    }

    fn validate(&self) -> Result<(), (&'static str, String)> {
        SmartSourceConfig::validate(self)
    }

    fn check_files(&self) -> Result<(), crate::files::FileError> {
        crate::files::executable_file(&self.smartctl)
            .map_err(|p| crate::files::FileError::new("sources.smart.smartctl", &self.smartctl, p))
    }
}
