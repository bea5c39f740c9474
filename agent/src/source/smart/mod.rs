//! The `smart` source: disk health through `smartctl --json` (smartmontools 7+).
//!
//! Each poll runs, for every disk, at most `max_concurrent` at a time:
//!
//! ```text
//! smartctl --json=c --info --health --attributes --log=error --log=selftest \
//!          --nocheck=standby [-d TYPE] PATH
//! ```
//!
//! That is `--all` without the capabilities and selective-test logs: identity,
//! overall health, the ATA attribute table / NVMe SMART-health log / SCSI grown
//! defects and temperature, the ATA error-log count and SCSI error counter pages,
//! and the self-test log. `-x` is not used: its extra logs (SCT, device
//! statistics, PHY counters) take long or fail behind some RAID controllers and
//! nothing here reads them.
//!
//! Each run is [`run::run`]: its own process group, killed as a whole on
//! `timeout`. Its stdout is parsed first ([`smartctl_parser`]), whatever the exit
//! code, because smartctl prints JSON for its own failures too; the result is a
//! [`RunResult`] and [`Tracker::observe`] turns it into readings and events.
//!
//! Disks are listed in `devices`, or discovered with `smartctl --scan-open` on
//! the first poll and every `rescan`; `include`/`exclude` patterns filter both.
//! A disk's `dev` is its path without `/dev/` (`sda`, `nvme0`), or
//! `TYPE@PATH` for a disk addressed through a controller (`megaraid,1@/dev/bus/0`),
//! since several of those share one path.
//!
//! # Readings (per disk)
//!
//! | q | name | state |
//! |---|---|---|
//! | `disk_smart_passed` | `smart_status` | verdict (null when not reported) |
//! | `disk_verdict` (0 passed, 1 warning, 2 failing) | `verdict` | verdict |
//! | `disk_reallocated_sectors` | `reallocated_sectors` (ATA 5), `grown_defect_list` (SCSI) | verdict |
//! | `disk_pending_sectors` | `pending_sectors` (ATA 197) | verdict |
//! | `disk_offline_uncorrectable` | `offline_uncorrectable` (ATA 198) | verdict |
//! | `disk_media_errors` | `media_errors` (NVMe), `uncorrected_errors` (SCSI) | verdict |
//! | `disk_percentage_used_ratio` | `percentage_used` (NVMe, SCSI) | verdict |
//! | `disk_available_spare_ratio` | `available_spare` (NVMe) | verdict |
//! | `disk_critical_warning` (bits) | `critical_warning` (NVMe) | critical when non-zero |
//! | `temperature_celsius`, label `kind=disk` | `temperature` | critical at the drive's trip point |
//! | `disk_power_on_seconds` | `power_on_time` | ok |
//! | `disk_standby` (1 skipped asleep) | `standby` | ok |
//! | `smart_standby_skips`, `smart_read_errors` (since start) | | ok |
//!
//! The verdict is [`smartctl_parser::evaluate`]'s: failing -> `critical`,
//! warning -> `warning`, unknown -> `unknown`. Labels: `model`, `serial`, `wwn`,
//! `protocol`, kept from the last report that had them.
//!
//! A disk that cannot be read (no JSON, timeout, open failed) gives
//! `disk_smart_passed` and `disk_verdict` null/`unknown` and counts in
//! `smart_read_errors`.
//!
//! # Standby
//!
//! A disk in (or below) its `nocheck` power mode is not woken: smartctl exits
//! before sending it any command. The skip counts in `smart_standby_skips`, sets
//! `disk_standby` to 1, and sends **no** health readings: the previous values are
//! not re-sent as fresh, they age out at the collector (stale after 3 intervals).
//!
//! # Events
//!
//! Compared with the disk's previous report (none after a restart):
//! `disk_reallocated_sectors_grew`, `disk_pending_sectors_grew`,
//! `disk_media_errors_grew` (high), `disk_self_test_failed` (high, a new
//! unresolved self-test failure), `disk_smart_failed` (critical, overall health
//! went from passed to failed).

pub mod config;
mod map;
pub mod run;

use std::{path::PathBuf, sync::Arc};

use smartctl_parser::{ParseError, parse_scan};
use tokio::{sync::Semaphore, task::JoinSet, time::Instant};

pub use map::{
    Counters, DiskMemory, RunResult, Tracker, disk_protocol, identity_labels, report_readings,
    self_test_failure, verdict_state,
};

use super::{Poll, Polled, SourceError};
use config::{DiskProtocol, NoCheck, SmartSourceConfig};

/// The source's name and its readings' `src`.
pub const NAME: &str = "smart";

/// Quantities and event types this source emits beyond the shared vocabulary.
pub mod q {
    pub const DISK_VERDICT: &str = "disk_verdict";
    pub const DISK_OFFLINE_UNCORRECTABLE: &str = "disk_offline_uncorrectable";
    pub const DISK_AVAILABLE_SPARE_RATIO: &str = "disk_available_spare_ratio";
    pub const DISK_CRITICAL_WARNING: &str = "disk_critical_warning";
    pub const DISK_POWER_ON_SECONDS: &str = "disk_power_on_seconds";
    pub const DISK_STANDBY: &str = "disk_standby";
    pub const SMART_STANDBY_SKIPS: &str = "smart_standby_skips";
    pub const SMART_READ_ERRORS: &str = "smart_read_errors";

    pub const EVENT_REALLOCATED_GREW: &str = "disk_reallocated_sectors_grew";
    pub const EVENT_PENDING_GREW: &str = "disk_pending_sectors_grew";
    pub const EVENT_MEDIA_ERRORS_GREW: &str = "disk_media_errors_grew";
    pub const EVENT_SELF_TEST_FAILED: &str = "disk_self_test_failed";
    pub const EVENT_SMART_FAILED: &str = "disk_smart_failed";
}

/// The options of every disk run, before `--nocheck` and the device.
pub const REPORT_ARGS: [&str; 6] = [
    "--json=c",
    "--info",
    "--health",
    "--attributes",
    "--log=error",
    "--log=selftest",
];

/// The share of the interval a poll may use; the scheduler cancels it at one interval.
const POLL_BUDGET_SHARE: f64 = 0.9;

/// A disk's `dev`: the path without `/dev/`, or `TYPE@PATH` when the `-d` type
/// addresses one disk among several behind the path (`megaraid,1`, `sat+cciss,0`,
/// `usbjmicron,1`). A tunnel prefix (`sat+`) is dropped: `--scan` and the
/// report do not always agree on it, and it does not tell disks apart.
pub fn device_name(path: &str, dev_type: Option<&str>) -> String {
    let addressed = dev_type
        .map(|t| t.split_once('+').map_or(t, |(_, rest)| rest))
        .filter(|t| t.contains(','));
    let name = match addressed {
        Some(t) => format!("{t}@{path}"),
        None => path
            .strip_prefix("/dev/")
            .filter(|rest| !rest.is_empty())
            .unwrap_or(path)
            .to_owned(),
    };
    name.chars()
        .take(sitewatch_protocol::limits::MAX_DEV_LEN)
        .collect()
}

/// `*` matches any run of characters, `?` any one; everything else itself.
pub fn glob_match(pattern: &str, text: &str) -> bool {
    let p: Vec<char> = pattern.chars().collect();
    let t: Vec<char> = text.chars().collect();
    let (mut pi, mut ti) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while ti < t.len() {
        match p.get(pi) {
            Some('*') => {
                star = Some((pi, ti));
                pi += 1;
            }
            Some(c) if *c == '?' || *c == t[ti] => {
                pi += 1;
                ti += 1;
            }
            _ => match star {
                Some((sp, st)) => {
                    pi = sp + 1;
                    ti = st + 1;
                    star = Some((sp, st + 1));
                }
                None => return false,
            },
        }
    }
    p[pi..].iter().all(|c| *c == '*')
}

/// One disk to read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Device {
    /// The readings' `dev`, see [`device_name`].
    pub name: String,
    pub path: String,
    /// smartctl's `-d` type.
    pub dev_type: Option<String>,
    /// The protocol, when the scan or the type tells it before the first report.
    pub protocol: Option<DiskProtocol>,
    /// The device's own `nocheck`, from `devices`.
    pub nocheck: Option<NoCheck>,
}

impl Device {
    pub fn new(path: &str, dev_type: Option<&str>) -> Device {
        let protocol = dev_type.and_then(|t| match t {
            "nvme" => Some(DiskProtocol::Nvme),
            "scsi" => Some(DiskProtocol::Scsi),
            t if t.starts_with("sat") || t == "ata" || t.starts_with("usb") => {
                Some(DiskProtocol::Ata)
            }
            _ => None,
        });
        Device {
            name: device_name(path, dev_type),
            path: path.to_owned(),
            dev_type: dev_type.map(str::to_owned),
            protocol,
            nocheck: None,
        }
    }

    /// smartctl's arguments for this disk.
    pub fn args(&self, nocheck: NoCheck) -> Vec<String> {
        let mut args: Vec<String> = REPORT_ARGS.iter().map(|a| (*a).to_owned()).collect();
        args.push(format!("--nocheck={}", nocheck.as_str()));
        if let Some(t) = &self.dev_type {
            args.push("-d".into());
            args.push(t.clone());
        }
        args.push(self.path.clone());
        args
    }
}

/// Which disks the patterns let through (exclude wins), without duplicates.
pub fn filter_devices(config: &SmartSourceConfig, devices: Vec<Device>) -> Vec<Device> {
    let matches = |patterns: &[String], d: &Device| {
        patterns
            .iter()
            .any(|p| glob_match(p, &d.name) || glob_match(p, &d.path))
    };
    let mut seen = std::collections::BTreeSet::new();
    devices
        .into_iter()
        .filter(|d| config.include.is_empty() || matches(&config.include, d))
        .filter(|d| !matches(&config.exclude, d))
        .filter(|d| seen.insert(d.name.clone()))
        .collect()
}

/// The disks of a `--scan-open --json` output.
pub fn scanned_devices(stdout: &[u8]) -> Result<Vec<Device>, ParseError> {
    let scanned = match parse_scan(&String::from_utf8_lossy(stdout)) {
        Ok(scanned) => scanned,
        // smartctl 7.3 prints no `devices` list at all when it finds none (a VM
        // with virtio disks only): an empty scan, not a broken one.
        Err(ParseError::NoDevicesSection) => Vec::new(),
        Err(e) => return Err(e),
    };
    Ok(scanned
        .iter()
        .map(|s| {
            let mut d = Device::new(s.name(), s.dev_type.as_deref());
            if let Some(p) = s.protocol.as_ref().and_then(disk_protocol) {
                d.protocol = Some(p);
            }
            d
        })
        .collect())
}

/// The `smart` source.
#[derive(Debug)]
pub struct SmartSource {
    config: Arc<SmartSourceConfig>,
    /// The disks of the last successful scan, or the configured ones.
    devices: Vec<Device>,
    scanned_at: Option<Instant>,
    tracker: Tracker,
    semaphore: Arc<Semaphore>,
}

impl SmartSource {
    pub fn new(config: SmartSourceConfig) -> SmartSource {
        let configured = config
            .devices
            .iter()
            .map(|d| Device {
                nocheck: d.nocheck,
                ..Device::new(&d.path, d.dev_type.as_deref())
            })
            .collect();
        let devices = filter_devices(&config, configured);
        SmartSource {
            semaphore: Arc::new(Semaphore::new(config.max_concurrent)),
            config: Arc::new(config),
            devices,
            scanned_at: None,
            tracker: Tracker::default(),
        }
    }

    /// The disks polled now.
    pub fn devices(&self) -> &[Device] {
        &self.devices
    }

    /// What the source remembers about its disks.
    pub fn tracker(&self) -> &Tracker {
        &self.tracker
    }

    /// The `nocheck` of a disk: its own, its protocol's, or the default.
    fn nocheck_of(&self, device: &Device) -> NoCheck {
        let protocol = self
            .tracker
            .disks
            .get(&device.name)
            .and_then(|m| m.protocol)
            .or(device.protocol);
        device
            .nocheck
            .or_else(|| protocol.and_then(|p| self.config.nocheck_by_protocol.get(&p).copied()))
            .unwrap_or(self.config.nocheck)
    }

    /// Discovers the disks when due (first poll, then every `rescan`). A failed
    /// rescan keeps the previous list.
    async fn discover(&mut self) -> Result<(), SourceError> {
        if !self.config.devices.is_empty()
            || self
                .scanned_at
                .is_some_and(|at| at.elapsed() < self.config.rescan)
        {
            return Ok(());
        }
        let args = ["--scan-open".to_owned(), "--json=c".to_owned()];
        let scanned = run::run(&self.config.smartctl, &args, self.config.timeout)
            .await
            .map_err(|e| e.to_string())
            .and_then(|out| scanned_devices(&out.stdout).map_err(|e| e.to_string()));
        match scanned {
            Ok(devices) => {
                let devices = filter_devices(&self.config, devices);
                if devices != self.devices {
                    let names: Vec<&str> = devices.iter().map(|d| d.name.as_str()).collect();
                    tracing::info!(src = NAME, disks = ?names, "disks discovered");
                }
                self.devices = devices;
                self.scanned_at = Some(Instant::now());
                Ok(())
            }
            Err(message) if self.scanned_at.is_none() => Err(SourceError::Read {
                what: "disks (smartctl --scan-open)",
                message,
            }),
            Err(message) => {
                tracing::warn!(src = NAME, error = %message, "rescan failed: keeping the previous disks");
                Ok(())
            }
        }
    }
}

impl Poll for SmartSource {
    fn name(&self) -> &'static str {
        NAME
    }

    async fn poll(&mut self) -> Result<Polled, SourceError> {
        let started = Instant::now();
        self.discover().await?;
        let budget = self.config.interval.mul_f64(POLL_BUDGET_SHARE);
        // A run started after this could outlast the poll: such disks wait for
        // the next poll (and say so) rather than getting the poll cancelled.
        let start_by = started + budget.saturating_sub(self.config.timeout);
        let mut runs = JoinSet::new();
        for (i, device) in self.devices.iter().enumerate() {
            let args = device.args(self.nocheck_of(device));
            let program: PathBuf = self.config.smartctl.clone();
            let timeout = self.config.timeout;
            let semaphore = Arc::clone(&self.semaphore);
            runs.spawn(async move {
                let Ok(Ok(_permit)) =
                    tokio::time::timeout_at(start_by, semaphore.acquire_owned()).await
                else {
                    return (
                        i,
                        RunResult::Failed {
                            kind: "no_time",
                            message: format!(
                                "not started: the poll's other disks took its {budget:?}"
                            ),
                        },
                    );
                };
                let result = match run::run(&program, &args, timeout).await {
                    Ok(out) => RunResult::from_output(&out.stdout, out.code),
                    Err(e) => RunResult::from_run_error(&e),
                };
                (i, result)
            });
        }
        let mut results: Vec<Option<RunResult>> = vec![None; self.devices.len()];
        while let Some(joined) = runs.join_next().await {
            match joined {
                Ok((i, result)) => {
                    if let Some(slot) = results.get_mut(i) {
                        *slot = Some(result);
                    }
                }
                Err(e) => return Err(SourceError::Crashed(e.to_string())),
            }
        }
        let mut polled = Polled::default();
        for (device, result) in self.devices.iter().zip(results) {
            let result = result.unwrap_or_else(|| RunResult::Failed {
                kind: "lost",
                message: "no result".into(),
            });
            let one = self.tracker.observe(&device.name, &result);
            polled.readings.extend(one.readings);
            polled.events.extend(one.events);
        }
        Ok(polled)
    }
}

impl super::Build for SmartSource {
    type Config = SmartSourceConfig;

    fn build(config: &Self::Config) -> Result<Self, SourceError> {
        Ok(SmartSource::new(config.clone()))
    }
}

#[cfg(test)]
mod tests;
