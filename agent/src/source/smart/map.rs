//! Pure: smartctl's output -> a [`RunResult`] -> readings and events, with the
//! per-disk memory ([`Tracker`]) that growth and "newly failed" need.

use std::collections::BTreeMap;

use sitewatch_protocol::{
    Event, Reading, ReadingState, Severity as EventSeverity, limits, payload::Labels, quantity,
};
use smartctl_parser::{ExitStatus, Protocol, Report, Verdict, parse_report};

use super::config::DiskProtocol;
use super::{NAME, q, run::RunError};
use crate::source::Polled;

/// What one smartctl run told about a disk.
#[derive(Debug, Clone, PartialEq)]
pub enum RunResult {
    /// smartctl described the disk (its health may still be unknown: a RAID
    /// volume, a disk without SMART).
    Report(Box<Report>),
    /// smartctl skipped the disk because it was in this low-power mode.
    Standby { mode: String },
    /// Nothing usable: smartctl could not run, hung, printed no JSON, or could
    /// not open the disk.
    Failed { kind: &'static str, message: String },
}

impl RunResult {
    /// Judges smartctl's stdout and exit code. The JSON comes first: smartctl
    /// prints it for its own failures too, with the exit status inside; the
    /// process's code only fills in a status the JSON lacks.
    pub fn from_output(stdout: &[u8], exit_code: Option<i32>) -> RunResult {
        let text = String::from_utf8_lossy(stdout);
        let mut report = match parse_report(&text) {
            Ok(report) => report,
            Err(e) => {
                return RunResult::Failed {
                    kind: e.kind(),
                    message: match exit_code {
                        Some(code) => format!("{e} (exit status {code})"),
                        None => format!("{e} (killed by a signal)"),
                    },
                };
            }
        };
        if report.smartctl.exit_status.is_none()
            && let Some(code) = exit_code.and_then(|c| u8::try_from(c).ok())
        {
            report.smartctl.exit_status = Some(ExitStatus::from_bits(code));
        }
        if let Some(mode) = report.low_power_mode() {
            return RunResult::Standby {
                mode: mode.to_owned(),
            };
        }
        let first_error = || {
            report
                .smartctl
                .errors()
                .next()
                .map(|m| m.string.clone())
                .unwrap_or_else(|| format!("exit status {}", report.exit_status()))
        };
        if report.has_health_data() {
            return RunResult::Report(Box::new(report));
        }
        // Bit 0 is also how smartctl says "Unable to detect device type" (a
        // virtio disk, a device without a SCSI/ATA/NVMe interface).
        if report.exit_status().command_line_did_not_parse() {
            return RunResult::Failed {
                kind: "command_line",
                message: first_error(),
            };
        }
        if report.device_open_failed() {
            return RunResult::Failed {
                kind: "open_failed",
                message: first_error(),
            };
        }
        RunResult::Report(Box::new(report))
    }

    /// A run that produced no output to judge.
    pub fn from_run_error(e: &RunError) -> RunResult {
        RunResult::Failed {
            kind: e.kind(),
            message: e.to_string(),
        }
    }
}

/// The reading state of a verdict.
pub fn verdict_state(v: &Verdict) -> ReadingState {
    match v {
        Verdict::Passed => ReadingState::Ok,
        Verdict::Warning(_) => ReadingState::Warning,
        Verdict::Failing(_) => ReadingState::Critical,
        Verdict::Unknown(_) => ReadingState::Unknown,
    }
}

/// `disk_verdict`'s value: 0 passed, 1 warning, 2 failing; none when unknown.
fn verdict_value(v: &Verdict) -> Option<f64> {
    match v {
        Verdict::Passed => Some(0.0),
        Verdict::Warning(_) => Some(1.0),
        Verdict::Failing(_) => Some(2.0),
        Verdict::Unknown(_) => None,
    }
}

/// The `nocheck_by_protocol` key of smartctl's protocol.
pub fn disk_protocol(p: &Protocol) -> Option<DiskProtocol> {
    match p {
        Protocol::Ata => Some(DiskProtocol::Ata),
        Protocol::Nvme => Some(DiskProtocol::Nvme),
        Protocol::Scsi => Some(DiskProtocol::Scsi),
        Protocol::Other(_) => None,
    }
}

fn truncate(s: &str, max: usize) -> String {
    s.trim().chars().take(max).collect()
}

/// The labels that keep a disk's series apart from a replacement in the same
/// slot: model, serial, WWN, protocol.
pub fn identity_labels(report: &Report) -> Labels {
    let id = &report.identity;
    let mut labels = Labels::new();
    for (key, value) in [
        ("model", id.model.as_deref()),
        ("serial", id.serial.as_deref()),
        ("wwn", id.wwn.as_deref()),
    ] {
        if let Some(v) = value.filter(|v| !v.trim().is_empty()) {
            labels.insert(key.into(), truncate(v, limits::MAX_LABEL_VALUE_LEN));
        }
    }
    if let Some(p) = report.protocol() {
        labels.insert("protocol".into(), p.as_str().to_ascii_lowercase());
    }
    labels
}

/// The counters whose growth is an event.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counters {
    /// ATA 5, or the SCSI grown defect list (the SCSI name for remapped sectors).
    pub reallocated: Option<u64>,
    /// ATA 197.
    pub pending: Option<u64>,
    /// NVMe media and data integrity errors, or SCSI uncorrected read/write/verify errors.
    pub media_errors: Option<u64>,
}

impl Counters {
    pub fn of(report: &Report) -> Counters {
        let ata = report.ata.as_ref();
        let scsi = report.scsi.as_ref();
        Counters {
            reallocated: ata
                .and_then(|a| a.reallocated_sectors())
                .or_else(|| scsi.and_then(|s| s.grown_defect_list)),
            pending: ata.and_then(|a| a.pending_sectors()),
            media_errors: report
                .nvme
                .as_ref()
                .and_then(|n| n.media_errors)
                .or_else(|| scsi.and_then(|s| s.uncorrected_total())),
        }
    }
}

/// The newest self-test failure not cleared by a later extended test, as text
/// that changes when a new failure is logged.
pub fn self_test_failure(report: &Report) -> Option<String> {
    if let Some(e) = report
        .ata
        .as_ref()
        .and_then(|a| a.self_test_log.as_ref())
        .and_then(|l| l.unresolved_failure())
    {
        return Some(format!(
            "{}: {} at {} h",
            e.test_type().unwrap_or("self-test"),
            e.status.string.as_deref().unwrap_or("failed"),
            e.lifetime_hours
                .map_or_else(|| "?".into(), |h| h.to_string()),
        ));
    }
    let e = report.nvme_self_test_log.as_ref()?.unresolved_failure()?;
    Some(format!(
        "{}: {} at {} h",
        e.test_type().unwrap_or("self-test"),
        e.result().unwrap_or("failed"),
        e.power_on_hours
            .map_or_else(|| "?".into(), |h| h.to_string()),
    ))
}

/// The readings of one disk's report: health (state from the verdict) and
/// facts (temperature, power-on time; their own state).
pub fn report_readings(dev: &str, report: &Report, labels: &Labels) -> Vec<Reading> {
    let verdict = report.verdict();
    let health = verdict_state(&verdict);
    let counters = Counters::of(report);
    let mut out = Vec::new();
    let mut push = |name: &str, q: &str, value: Option<f64>, state: ReadingState| {
        let mut r = Reading::new(NAME, dev, name, q, value, state);
        r.labels = labels.clone();
        out.push(r);
    };
    push(
        "smart_status",
        quantity::DISK_SMART_PASSED,
        report.smart_passed.map(|p| if p { 1.0 } else { 0.0 }),
        health,
    );
    push("verdict", q::DISK_VERDICT, verdict_value(&verdict), health);
    let is_scsi = report.ata.is_none() && report.scsi.is_some();
    if let Some(n) = counters.reallocated {
        let name = if is_scsi {
            "grown_defect_list"
        } else {
            "reallocated_sectors"
        };
        push(
            name,
            quantity::DISK_REALLOCATED_SECTORS,
            Some(n as f64),
            health,
        );
    }
    if let Some(n) = counters.pending {
        push(
            "pending_sectors",
            quantity::DISK_PENDING_SECTORS,
            Some(n as f64),
            health,
        );
    }
    if let Some(n) = report.ata.as_ref().and_then(|a| a.offline_uncorrectable()) {
        push(
            "offline_uncorrectable",
            q::DISK_OFFLINE_UNCORRECTABLE,
            Some(n as f64),
            health,
        );
    }
    if let Some(n) = counters.media_errors {
        let name = if report.nvme.is_some() {
            "media_errors"
        } else {
            "uncorrected_errors"
        };
        push(name, quantity::DISK_MEDIA_ERRORS, Some(n as f64), health);
    }
    let percentage_used = report
        .nvme
        .as_ref()
        .and_then(|n| n.percentage_used)
        .or_else(|| report.scsi.as_ref().and_then(|s| s.percentage_used));
    if let Some(p) = percentage_used {
        push(
            "percentage_used",
            quantity::DISK_PERCENTAGE_USED_RATIO,
            Some(p as f64 / 100.0),
            health,
        );
    }
    if let Some(nvme) = &report.nvme {
        if let Some(spare) = nvme.available_spare {
            push(
                "available_spare",
                q::DISK_AVAILABLE_SPARE_RATIO,
                Some(spare as f64 / 100.0),
                health,
            );
        }
        if let Some(w) = nvme.critical_warning {
            let state = if w.is_empty() {
                ReadingState::Ok
            } else {
                ReadingState::Critical
            };
            push(
                "critical_warning",
                q::DISK_CRITICAL_WARNING,
                Some(f64::from(w.bits())),
                state,
            );
        }
    }
    if let Some(t) = report.temperature_celsius() {
        // The drive's own trip point (SCSI) is the only limit smartctl reports;
        // site-wide limits belong to the collector.
        let state = match report.temperature.drive_trip {
            Some(trip) if trip > 0 && t >= trip => ReadingState::Critical,
            _ => ReadingState::Ok,
        };
        let mut r = Reading::new(
            NAME,
            dev,
            "temperature",
            quantity::TEMPERATURE_CELSIUS,
            Some(t as f64),
            state,
        );
        r.labels = labels.clone();
        r.labels.insert("kind".into(), "disk".into());
        out.push(r);
    }
    if let Some(hours) = report.power_on_hours() {
        let minutes = report.power_on_time.minutes.unwrap_or(0).min(59);
        let seconds = hours.saturating_mul(3600).saturating_add(minutes * 60);
        let mut r = Reading::new(
            NAME,
            dev,
            "power_on_time",
            q::DISK_POWER_ON_SECONDS,
            Some(seconds as f64),
            ReadingState::Ok,
        );
        r.labels = labels.clone();
        out.push(r);
    }
    out
}

/// What the source remembers about one disk between polls.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct DiskMemory {
    /// Identity labels of the last report that had any, so that a disk that
    /// cannot be read keeps its series.
    pub labels: Labels,
    /// smartctl's protocol for the disk, once known: picks its `nocheck`.
    pub protocol: Option<DiskProtocol>,
    /// Counters of the last report; `None` before the first one.
    pub counters: Option<Counters>,
    /// SMART overall status of the last report that had one.
    pub smart_passed: Option<bool>,
    /// The self-test failure of the last report (`Some(None)`: none).
    pub self_test_failure: Option<Option<String>>,
    /// Polls skipped because the disk was asleep, since start.
    pub standby_skips: u64,
    /// Runs that gave nothing usable, since start.
    pub read_errors: u64,
    /// The kind of the last failed run, to log a failure on change only.
    pub last_error: Option<&'static str>,
}

/// Per-disk memory, keyed by `dev`.
#[derive(Debug, Clone, Default)]
pub struct Tracker {
    pub disks: BTreeMap<String, DiskMemory>,
}

impl Tracker {
    /// The readings and events of one disk's run, updating its memory.
    pub fn observe(&mut self, dev: &str, result: &RunResult) -> Polled {
        let memory = self.disks.entry(dev.to_owned()).or_default();
        let mut polled = Polled::default();
        match result {
            RunResult::Report(report) => {
                if memory.last_error.take().is_some() {
                    tracing::info!(src = NAME, dev, "disk readable again");
                }
                let labels = identity_labels(report);
                if labels.contains_key("serial") || labels.contains_key("model") {
                    memory.labels = labels;
                }
                if let Some(p) = report.protocol().and_then(disk_protocol) {
                    memory.protocol = Some(p);
                }
                polled.events = events(dev, memory, report);
                polled.readings = report_readings(dev, report, &memory.labels);
                polled
                    .readings
                    .push(counter(dev, q::DISK_STANDBY, "standby", 0, memory));
            }
            RunResult::Standby { mode } => {
                memory.standby_skips += 1;
                tracing::debug!(src = NAME, dev, mode = %mode, "disk asleep: not woken, not read");
                // No health readings: the last ones stay the last ones, and age
                // out at the collector, rather than being re-sent as if read now.
                polled
                    .readings
                    .push(counter(dev, q::DISK_STANDBY, "standby", 1, memory));
            }
            RunResult::Failed { kind, message } => {
                memory.read_errors += 1;
                if memory.last_error.replace(kind) != Some(kind) {
                    tracing::warn!(src = NAME, dev, kind, error = %message, "cannot read disk");
                }
                for (name, q) in [
                    ("smart_status", quantity::DISK_SMART_PASSED),
                    ("verdict", q::DISK_VERDICT),
                ] {
                    let mut r = Reading::new(NAME, dev, name, q, None, ReadingState::Unknown);
                    r.labels = memory.labels.clone();
                    polled.readings.push(r);
                }
            }
        }
        let (skips, errors) = (memory.standby_skips, memory.read_errors);
        polled.readings.push(counter(
            dev,
            q::SMART_STANDBY_SKIPS,
            "standby_skips",
            skips,
            memory,
        ));
        polled.readings.push(counter(
            dev,
            q::SMART_READ_ERRORS,
            "read_errors",
            errors,
            memory,
        ));
        polled
    }
}

fn counter(dev: &str, q: &str, name: &str, value: u64, memory: &DiskMemory) -> Reading {
    let mut r = Reading::new(NAME, dev, name, q, Some(value as f64), ReadingState::Ok);
    r.labels = memory.labels.clone();
    r
}

fn event(
    dev: &str,
    event_type: &str,
    severity: EventSeverity,
    message: String,
    labels: &Labels,
) -> Event {
    Event {
        src: NAME.into(),
        dev: dev.into(),
        event_type: event_type.into(),
        severity,
        message: truncate(&message, limits::MAX_EVENT_MESSAGE_LEN),
        labels: labels.clone(),
        ts: None,
    }
}

/// Changes since the disk's previous report worth an event. The first report
/// after start has nothing to compare with, so it raises none: a restart does
/// not repeat old news (the readings' state still carries it).
fn events(dev: &str, memory: &mut DiskMemory, report: &Report) -> Vec<Event> {
    let mut out = Vec::new();
    let now = Counters::of(report);
    if let Some(before) = memory.counters {
        for (event_type, what, was, is) in [
            (
                q::EVENT_REALLOCATED_GREW,
                "reallocated sectors",
                before.reallocated,
                now.reallocated,
            ),
            (
                q::EVENT_PENDING_GREW,
                "pending sectors",
                before.pending,
                now.pending,
            ),
            (
                q::EVENT_MEDIA_ERRORS_GREW,
                "media errors",
                before.media_errors,
                now.media_errors,
            ),
        ] {
            if let (Some(was), Some(is)) = (was, is)
                && is > was
            {
                out.push(event(
                    dev,
                    event_type,
                    EventSeverity::High,
                    format!("{dev}: {what} {was} -> {is}"),
                    &memory.labels,
                ));
            }
        }
    }
    // Keep the last known value of a counter a run did not print (a log page
    // that failed once), so that growth is still measured against it.
    let merged = match memory.counters {
        Some(before) => Counters {
            reallocated: now.reallocated.or(before.reallocated),
            pending: now.pending.or(before.pending),
            media_errors: now.media_errors.or(before.media_errors),
        },
        None => now,
    };
    memory.counters = Some(merged);

    if let Some(passed) = report.smart_passed {
        if memory.smart_passed == Some(true) && !passed {
            out.push(event(
                dev,
                q::EVENT_SMART_FAILED,
                EventSeverity::Critical,
                format!("{dev}: SMART overall-health self-assessment failed"),
                &memory.labels,
            ));
        }
        memory.smart_passed = Some(passed);
    }

    let failure = self_test_failure(report);
    if let (Some(before), Some(now)) = (&memory.self_test_failure, &failure)
        && before.as_ref() != Some(now)
    {
        out.push(event(
            dev,
            q::EVENT_SELF_TEST_FAILED,
            EventSeverity::High,
            format!("{dev}: self-test failed: {now}"),
            &memory.labels,
        ));
    }
    // A run without a self-test log (it failed to read) says nothing new.
    let has_log = report
        .ata
        .as_ref()
        .is_some_and(|a| a.self_test_log.is_some())
        || report.nvme_self_test_log.is_some();
    if has_log {
        memory.self_test_failure = Some(failure);
    }
    out
}
