//! The health verdict: a pure function from a [`Report`] to [`Verdict`].
//!
//! The policy (which findings fail a disk and which only warn) is documented on
//! [`evaluate`] and in the crate docs; [`Reason::severity`] is its single source.

use std::fmt;

use crate::ata::{AtaSmart, SelfTestOutcome};
use crate::nvme::{CriticalWarning, NvmeHealth};
use crate::report::Report;
use crate::scsi::{ScsiHealth, ScsiOperation};

/// How bad a [`Reason`] is. Ordered: `Unknown < Warning < Failing`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Severity {
    /// No judgement possible (device skipped, unreadable, or no data).
    Unknown,
    /// Worth watching: wear, grown defects, logged errors, past threshold crossings.
    Warning,
    /// Replace the disk: the drive or smartctl says it is failing.
    Failing,
}

/// One finding behind a verdict.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Reason {
    // -- Failing --------------------------------------------------------------
    /// The drive's overall health self-assessment failed (`smart_status.passed`
    /// false, or exit bit 3 when the status itself was not printed).
    SmartStatusFailed,
    /// A prefailure attribute is at or below its threshold now (exit bit 4).
    PrefailAttributeAtThreshold {
        /// Attribute id.
        id: u8,
        /// Attribute name.
        name: String,
    },
    /// NVMe critical warning bits are set.
    NvmeCriticalWarning(CriticalWarning),
    /// NVMe available spare fell below the controller's threshold.
    SpareBelowThreshold {
        /// Available spare, percent.
        spare: u64,
        /// Threshold, percent.
        threshold: u64,
    },
    /// A self-test failed and no later extended self-test passed.
    SelfTestFailed {
        /// Test kind, e.g. `Extended offline`.
        test: String,
        /// smartctl's status text, e.g. `Completed: read failure`.
        status: String,
    },
    // -- Warning --------------------------------------------------------------
    /// A usage (old-age) attribute is at or below its threshold now.
    UsageAttributeAtThreshold {
        /// Attribute id.
        id: u8,
        /// Attribute name.
        name: String,
    },
    /// An attribute was at or below its threshold in the past (exit bit 5).
    AttributeFailedInPast {
        /// Attribute id.
        id: u8,
        /// Attribute name.
        name: String,
    },
    /// ATA 5: sectors already remapped to spares.
    ReallocatedSectors(u64),
    /// ATA 197: unreadable sectors waiting to be remapped.
    PendingSectors(u64),
    /// ATA 198: sectors the offline scan could not read.
    OfflineUncorrectable(u64),
    /// ATA 187: reads ECC could not recover.
    ReportedUncorrectable(u64),
    /// ATA error log entries (exit bit 6).
    ErrorLogEntries(u64),
    /// NVMe media and data integrity errors.
    MediaErrors(u64),
    /// NVMe/SCSI percentage used at or above 100.
    PercentageUsedExceeded(u64),
    /// SCSI grown defect list entries.
    GrownDefects(u64),
    /// SCSI uncorrected errors in an error counter page.
    UncorrectedErrors {
        /// Which page.
        operation: ScsiOperation,
        /// Total uncorrected errors.
        count: u64,
    },
    // -- Unknown --------------------------------------------------------------
    /// smartctl skipped the device because it was in this power mode.
    LowPowerMode(String),
    /// smartctl could not open the device; its first error message, if any.
    DeviceOpenFailed(Option<String>),
    /// The output holds nothing to judge health by (info-only run, RAID volume).
    NoHealthData,
}

impl Reason {
    /// The policy: how bad this finding is.
    pub fn severity(&self) -> Severity {
        match self {
            Reason::SmartStatusFailed
            | Reason::PrefailAttributeAtThreshold { .. }
            | Reason::NvmeCriticalWarning(_)
            | Reason::SpareBelowThreshold { .. }
            | Reason::SelfTestFailed { .. } => Severity::Failing,
            Reason::UsageAttributeAtThreshold { .. }
            | Reason::AttributeFailedInPast { .. }
            | Reason::ReallocatedSectors(_)
            | Reason::PendingSectors(_)
            | Reason::OfflineUncorrectable(_)
            | Reason::ReportedUncorrectable(_)
            | Reason::ErrorLogEntries(_)
            | Reason::MediaErrors(_)
            | Reason::PercentageUsedExceeded(_)
            | Reason::GrownDefects(_)
            | Reason::UncorrectedErrors { .. } => Severity::Warning,
            Reason::LowPowerMode(_) | Reason::DeviceOpenFailed(_) | Reason::NoHealthData => {
                Severity::Unknown
            }
        }
    }

    /// A stable `snake_case` code, usable as a bounded metric label.
    pub fn code(&self) -> &'static str {
        match self {
            Reason::SmartStatusFailed => "smart_status_failed",
            Reason::PrefailAttributeAtThreshold { .. } => "prefail_attribute_at_threshold",
            Reason::NvmeCriticalWarning(_) => "nvme_critical_warning",
            Reason::SpareBelowThreshold { .. } => "spare_below_threshold",
            Reason::SelfTestFailed { .. } => "self_test_failed",
            Reason::UsageAttributeAtThreshold { .. } => "usage_attribute_at_threshold",
            Reason::AttributeFailedInPast { .. } => "attribute_failed_in_past",
            Reason::ReallocatedSectors(_) => "reallocated_sectors",
            Reason::PendingSectors(_) => "pending_sectors",
            Reason::OfflineUncorrectable(_) => "offline_uncorrectable",
            Reason::ReportedUncorrectable(_) => "reported_uncorrectable",
            Reason::ErrorLogEntries(_) => "error_log_entries",
            Reason::MediaErrors(_) => "media_errors",
            Reason::PercentageUsedExceeded(_) => "percentage_used_exceeded",
            Reason::GrownDefects(_) => "grown_defects",
            Reason::UncorrectedErrors { .. } => "uncorrected_errors",
            Reason::LowPowerMode(_) => "low_power_mode",
            Reason::DeviceOpenFailed(_) => "device_open_failed",
            Reason::NoHealthData => "no_health_data",
        }
    }
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Reason::SmartStatusFailed => f.write_str("SMART overall-health self-assessment failed"),
            Reason::PrefailAttributeAtThreshold { id, name } => {
                write!(f, "prefail attribute {id} {name} at or below threshold")
            }
            Reason::NvmeCriticalWarning(w) => write!(f, "NVMe critical warning: {w}"),
            Reason::SpareBelowThreshold { spare, threshold } => {
                write!(f, "available spare {spare}% below threshold {threshold}%")
            }
            Reason::SelfTestFailed { test, status } => {
                write!(f, "self-test failed: {test}: {status}")
            }
            Reason::UsageAttributeAtThreshold { id, name } => {
                write!(f, "usage attribute {id} {name} at or below threshold")
            }
            Reason::AttributeFailedInPast { id, name } => {
                write!(
                    f,
                    "attribute {id} {name} was at or below threshold in the past"
                )
            }
            Reason::ReallocatedSectors(n) => write!(f, "{n} reallocated sectors"),
            Reason::PendingSectors(n) => write!(f, "{n} sectors pending reallocation"),
            Reason::OfflineUncorrectable(n) => write!(f, "{n} offline uncorrectable sectors"),
            Reason::ReportedUncorrectable(n) => write!(f, "{n} reported uncorrectable errors"),
            Reason::ErrorLogEntries(n) => write!(f, "{n} errors in the device error log"),
            Reason::MediaErrors(n) => write!(f, "{n} media errors"),
            Reason::PercentageUsedExceeded(p) => write!(f, "{p}% of rated endurance used"),
            Reason::GrownDefects(n) => write!(f, "{n} grown defects"),
            Reason::UncorrectedErrors { operation, count } => {
                write!(f, "{count} uncorrected {operation} errors")
            }
            Reason::LowPowerMode(mode) => write!(f, "skipped: device in {mode} mode"),
            Reason::DeviceOpenFailed(Some(msg)) => write!(f, "device open failed: {msg}"),
            Reason::DeviceOpenFailed(None) => f.write_str("device open failed"),
            Reason::NoHealthData => f.write_str("no health data in smartctl output"),
        }
    }
}

/// The verdict on one disk. Each list holds every reason found, the most severe
/// first, so a failing disk's warnings are not lost.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Health data present and nothing found.
    Passed,
    /// Only warning-level findings.
    Warning(Vec<Reason>),
    /// At least one failing-level finding.
    Failing(Vec<Reason>),
    /// Nothing could be judged: the device was asleep, could not be opened, or the
    /// output held no health data. Kept apart from the other three because "no
    /// data" is not "healthy" and not "broken" either.
    Unknown(Vec<Reason>),
}

impl Verdict {
    /// `passed`, `warning`, `failing` or `unknown`: a bounded label.
    pub fn kind(&self) -> &'static str {
        match self {
            Verdict::Passed => "passed",
            Verdict::Warning(_) => "warning",
            Verdict::Failing(_) => "failing",
            Verdict::Unknown(_) => "unknown",
        }
    }

    /// The reasons (empty for `Passed`).
    pub fn reasons(&self) -> &[Reason] {
        match self {
            Verdict::Passed => &[],
            Verdict::Warning(r) | Verdict::Failing(r) | Verdict::Unknown(r) => r,
        }
    }
}

impl fmt::Display for Verdict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.kind())?;
        let reasons: Vec<String> = self.reasons().iter().map(Reason::to_string).collect();
        if !reasons.is_empty() {
            write!(f, ": {}", reasons.join("; "))?;
        }
        Ok(())
    }
}

/// Judges a report. Pure: same report, same verdict.
///
/// **Failing** (replace the disk): the drive's own SMART status failed; a
/// prefailure attribute is at or below its threshold now; any NVMe critical
/// warning bit (spare, temperature, reliability, read-only, volatile memory
/// backup, PMR); NVMe spare below its threshold; a self-test failure not cleared by
/// a later passing extended test.
///
/// **Warning** (watch it, plan a replacement): non-zero ATA 5 reallocated, 197
/// pending, 198 offline uncorrectable or 187 reported uncorrectable (Backblaze's
/// failure predictors); a usage attribute at threshold now, or any attribute at
/// threshold in the past; entries in the ATA error log; NVMe media errors;
/// percentage used at or above 100; SCSI grown defects or uncorrected
/// read/write/verify errors.
///
/// **Not judged**, deliberately: exit bit 2 (a SMART command failed: says
/// something about the path to the disk, e.g. an unsupported log behind a RAID
/// controller, not about the disk); ATA 188 command timeouts (vendor-packed, see
/// [`AtaSmart::command_timeouts`]); ATA 199 and other interface CRC counters (cables
/// and backplanes; a rate over time, not a lifetime total, is the signal); NVMe
/// `num_err_log_entries` (counts any command error, including benign ones from
/// host probing; smartctl itself does not set exit bit 6 for it); NVMe unsafe
/// shutdowns.
///
/// **Unknown**: no finding and no health data, because the device was skipped in
/// a low-power mode, could not be opened, or the output held nothing to judge.
pub fn evaluate(report: &Report) -> Verdict {
    let mut reasons = Vec::new();

    if report.smart_passed == Some(false)
        || (report.smart_passed.is_none() && report.exit_status().disk_failing())
    {
        reasons.push(Reason::SmartStatusFailed);
    }
    if let Some(ata) = &report.ata {
        ata_reasons(ata, &mut reasons);
    }
    if let Some(nvme) = &report.nvme {
        nvme_reasons(nvme, &mut reasons);
    }
    if let Some(failed) = report
        .nvme_self_test_log
        .as_ref()
        .and_then(|log| log.unresolved_failure())
    {
        reasons.push(Reason::SelfTestFailed {
            test: failed.test_type().unwrap_or("NVMe self-test").to_owned(),
            status: failed.result().unwrap_or("failed").to_owned(),
        });
    }
    if let Some(scsi) = &report.scsi {
        scsi_reasons(scsi, &mut reasons);
    }

    // Stable: within a severity, reasons keep the order they were found in.
    reasons.sort_by_key(|r| std::cmp::Reverse(r.severity()));
    match reasons.first().map(Reason::severity) {
        Some(Severity::Failing) => Verdict::Failing(reasons),
        Some(_) => Verdict::Warning(reasons),
        None if report.has_health_data() => Verdict::Passed,
        None => Verdict::Unknown(vec![unknown_reason(report)]),
    }
}

fn unknown_reason(report: &Report) -> Reason {
    if let Some(mode) = report.low_power_mode() {
        Reason::LowPowerMode(mode.to_owned())
    } else if report.device_open_failed() {
        Reason::DeviceOpenFailed(report.smartctl.errors().next().map(|m| m.string.clone()))
    } else {
        Reason::NoHealthData
    }
}

fn ata_reasons(ata: &AtaSmart, reasons: &mut Vec<Reason>) {
    use crate::ata::WhenFailed;
    for a in &ata.attributes {
        let (id, name) = (a.id, a.name.clone());
        match (&a.when_failed, a.prefailure) {
            (WhenFailed::Now, true) => {
                reasons.push(Reason::PrefailAttributeAtThreshold { id, name })
            }
            (WhenFailed::Now, false) => {
                reasons.push(Reason::UsageAttributeAtThreshold { id, name })
            }
            (WhenFailed::Past, _) => reasons.push(Reason::AttributeFailedInPast { id, name }),
            (WhenFailed::Never, _) => {}
        }
    }
    type MakeReason = fn(u64) -> Reason;
    let counters: [(Option<u64>, MakeReason); 4] = [
        (ata.reallocated_sectors(), Reason::ReallocatedSectors),
        (ata.pending_sectors(), Reason::PendingSectors),
        (ata.offline_uncorrectable(), Reason::OfflineUncorrectable),
        (ata.reported_uncorrectable(), Reason::ReportedUncorrectable),
    ];
    for (value, reason) in counters {
        if let Some(n) = value.filter(|n| *n > 0) {
            reasons.push(reason(n));
        }
    }

    let log_failure = ata
        .self_test_log
        .as_ref()
        .and_then(|l| l.unresolved_failure());
    if let Some(entry) = log_failure {
        reasons.push(Reason::SelfTestFailed {
            test: entry.test_type().unwrap_or("self-test").to_owned(),
            status: entry
                .status
                .string
                .clone()
                .unwrap_or_else(|| "failed".to_owned()),
        });
    } else if let Some(status) = ata
        .last_self_test_status
        .as_ref()
        .filter(|s| s.outcome() == SelfTestOutcome::Failed)
    {
        // No log printed (`-a` without `-l selftest` on some builds), but the SMART
        // data's self-test byte says the last test failed.
        reasons.push(Reason::SelfTestFailed {
            test: "last self-test".to_owned(),
            status: status.string.clone().unwrap_or_else(|| "failed".to_owned()),
        });
    }

    if let Some(n) = ata.error_log_count.filter(|n| *n > 0) {
        reasons.push(Reason::ErrorLogEntries(n));
    }
}

fn nvme_reasons(h: &NvmeHealth, reasons: &mut Vec<Reason>) {
    if let Some(w) = h.critical_warning.filter(|w| !w.is_empty()) {
        reasons.push(Reason::NvmeCriticalWarning(w));
    }
    if let (Some(spare), Some(threshold)) = (h.available_spare, h.available_spare_threshold)
        && spare < threshold
    {
        reasons.push(Reason::SpareBelowThreshold { spare, threshold });
    }
    if let Some(p) = h.percentage_used.filter(|p| *p >= 100) {
        reasons.push(Reason::PercentageUsedExceeded(p));
    }
    if let Some(n) = h.media_errors.filter(|n| *n > 0) {
        reasons.push(Reason::MediaErrors(n));
    }
}

fn scsi_reasons(s: &ScsiHealth, reasons: &mut Vec<Reason>) {
    if let Some(n) = s.grown_defect_list.filter(|n| *n > 0) {
        reasons.push(Reason::GrownDefects(n));
    }
    for operation in [
        ScsiOperation::Read,
        ScsiOperation::Write,
        ScsiOperation::Verify,
    ] {
        if let Some(count) = s.uncorrected(operation).filter(|n| *n > 0) {
            reasons.push(Reason::UncorrectedErrors { operation, count });
        }
    }
    if let Some(p) = s.percentage_used.filter(|p| *p >= 100) {
        reasons.push(Reason::PercentageUsedExceeded(p));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ata::{AtaAttribute, AtaSelfTestLog, WhenFailed};
    use crate::exit_status::ExitStatus;
    use crate::smartctl::{Message, MessageSeverity, Smartctl};

    fn passed() -> Report {
        Report {
            smart_passed: Some(true),
            ..Report::default()
        }
    }

    fn ata_attribute(id: u8, prefailure: bool, when_failed: WhenFailed, raw: u64) -> AtaAttribute {
        AtaAttribute {
            id,
            name: format!("attr_{id}"),
            prefailure,
            when_failed,
            raw_value: Some(raw),
            raw_string: Some(raw.to_string()),
            ..AtaAttribute::default()
        }
    }

    fn with_ata(attributes: Vec<AtaAttribute>) -> Report {
        Report {
            ata: Some(AtaSmart {
                attributes,
                ..AtaSmart::default()
            }),
            ..passed()
        }
    }

    fn with_nvme(health: NvmeHealth) -> Report {
        Report {
            nvme: Some(health),
            ..passed()
        }
    }

    #[test]
    fn healthy_status_with_clean_attributes_is_passed() {
        let r = with_ata(vec![ata_attribute(5, true, WhenFailed::Never, 0)]);
        assert_eq!(evaluate(&r), Verdict::Passed);
    }

    #[test]
    fn smart_status_failed_is_failing() {
        let r = Report {
            smart_passed: Some(false),
            ..Report::default()
        };
        assert_eq!(
            evaluate(&r),
            Verdict::Failing(vec![Reason::SmartStatusFailed])
        );
    }

    #[test]
    fn exit_bit_3_without_status_is_smart_status_failed() {
        let r = Report {
            smartctl: Smartctl {
                exit_status: Some(ExitStatus::from_bits(8)),
                ..Smartctl::default()
            },
            ..Report::default()
        };
        assert_eq!(
            evaluate(&r),
            Verdict::Failing(vec![Reason::SmartStatusFailed])
        );
    }

    #[test]
    fn reallocated_sectors_alone_are_a_warning() {
        let r = with_ata(vec![ata_attribute(5, true, WhenFailed::Never, 387)]);
        assert_eq!(
            evaluate(&r),
            Verdict::Warning(vec![Reason::ReallocatedSectors(387)])
        );
    }

    #[test]
    fn pending_offline_and_reported_uncorrectable_are_warnings() {
        let r = with_ata(vec![
            ata_attribute(187, false, WhenFailed::Never, 2),
            ata_attribute(197, false, WhenFailed::Never, 8),
            ata_attribute(198, false, WhenFailed::Never, 1),
        ]);
        assert_eq!(
            evaluate(&r),
            Verdict::Warning(vec![
                Reason::PendingSectors(8),
                Reason::OfflineUncorrectable(1),
                Reason::ReportedUncorrectable(2),
            ])
        );
    }

    #[test]
    fn prefail_attribute_at_threshold_now_is_failing_and_keeps_warnings() {
        let r = with_ata(vec![ata_attribute(5, true, WhenFailed::Now, 1975)]);
        assert_eq!(
            evaluate(&r),
            Verdict::Failing(vec![
                Reason::PrefailAttributeAtThreshold {
                    id: 5,
                    name: "attr_5".into()
                },
                Reason::ReallocatedSectors(1975),
            ])
        );
    }

    #[test]
    fn usage_attribute_at_threshold_now_is_a_warning() {
        let r = with_ata(vec![ata_attribute(190, false, WhenFailed::Now, 0)]);
        assert_eq!(evaluate(&r).kind(), "warning");
    }

    #[test]
    fn attribute_failed_in_past_is_a_warning() {
        let r = with_ata(vec![ata_attribute(1, true, WhenFailed::Past, 0)]);
        assert_eq!(
            evaluate(&r),
            Verdict::Warning(vec![Reason::AttributeFailedInPast {
                id: 1,
                name: "attr_1".into()
            }])
        );
    }

    #[test]
    fn udma_crc_errors_and_command_timeouts_do_not_change_the_verdict() {
        let r = with_ata(vec![
            ata_attribute(188, false, WhenFailed::Never, 51_540_393_996),
            ata_attribute(199, false, WhenFailed::Never, 108),
        ]);
        assert_eq!(evaluate(&r), Verdict::Passed);
    }

    #[test]
    fn ata_error_log_entries_are_a_warning() {
        let r = Report {
            ata: Some(AtaSmart {
                error_log_count: Some(1),
                ..AtaSmart::default()
            }),
            ..passed()
        };
        assert_eq!(
            evaluate(&r),
            Verdict::Warning(vec![Reason::ErrorLogEntries(1)])
        );
    }

    #[test]
    fn failed_self_test_is_failing() {
        let log: AtaSelfTestLog = serde_json::from_value(serde_json::json!({"table": [
            {"type": {"value": 2, "string": "Extended offline"},
             "status": {"value": 121, "string": "Completed: read failure", "passed": false}}
        ]}))
        .unwrap_or_default();
        let r = Report {
            ata: Some(AtaSmart {
                self_test_log: Some(log),
                ..AtaSmart::default()
            }),
            ..passed()
        };
        assert_eq!(
            evaluate(&r),
            Verdict::Failing(vec![Reason::SelfTestFailed {
                test: "Extended offline".into(),
                status: "Completed: read failure".into(),
            }])
        );
    }

    #[test]
    fn nvme_critical_warning_is_failing() {
        let r = with_nvme(NvmeHealth {
            critical_warning: Some(CriticalWarning::from_bits(0x10)),
            ..NvmeHealth::default()
        });
        assert_eq!(
            evaluate(&r),
            Verdict::Failing(vec![Reason::NvmeCriticalWarning(
                CriticalWarning::from_bits(0x10)
            )])
        );
    }

    #[test]
    fn nvme_spare_below_threshold_is_failing() {
        let r = with_nvme(NvmeHealth {
            available_spare: Some(5),
            available_spare_threshold: Some(10),
            ..NvmeHealth::default()
        });
        assert_eq!(
            evaluate(&r),
            Verdict::Failing(vec![Reason::SpareBelowThreshold {
                spare: 5,
                threshold: 10
            }])
        );
    }

    #[test]
    fn nvme_wear_and_media_errors_are_warnings() {
        let r = with_nvme(NvmeHealth {
            percentage_used: Some(100),
            media_errors: Some(3),
            num_err_log_entries: Some(22),
            ..NvmeHealth::default()
        });
        assert_eq!(
            evaluate(&r),
            Verdict::Warning(vec![
                Reason::PercentageUsedExceeded(100),
                Reason::MediaErrors(3)
            ])
        );
    }

    #[test]
    fn nvme_percentage_used_99_is_passed() {
        let r = with_nvme(NvmeHealth {
            percentage_used: Some(99),
            ..NvmeHealth::default()
        });
        assert_eq!(evaluate(&r), Verdict::Passed);
    }

    #[test]
    fn scsi_grown_defects_and_uncorrected_errors_are_warnings() {
        let r = Report {
            scsi: Some(ScsiHealth {
                grown_defect_list: Some(260),
                write_errors: Some(crate::scsi::ScsiErrorCounter {
                    total_uncorrected_errors: Some(535),
                    ..Default::default()
                }),
                ..ScsiHealth::default()
            }),
            ..passed()
        };
        assert_eq!(
            evaluate(&r),
            Verdict::Warning(vec![
                Reason::GrownDefects(260),
                Reason::UncorrectedErrors {
                    operation: ScsiOperation::Write,
                    count: 535
                },
            ])
        );
    }

    #[test]
    fn standby_skip_is_unknown_not_failing() {
        let r = Report {
            smartctl: Smartctl {
                exit_status: Some(ExitStatus::from_bits(2)),
                messages: vec![Message {
                    string: "Device is in STANDBY mode, exit(2)".into(),
                    severity: MessageSeverity::Information,
                }],
                ..Smartctl::default()
            },
            ..Report::default()
        };
        assert_eq!(
            evaluate(&r),
            Verdict::Unknown(vec![Reason::LowPowerMode("STANDBY".into())])
        );
    }

    #[test]
    fn open_failure_is_unknown_with_the_error_message() {
        let r = Report {
            smartctl: Smartctl {
                exit_status: Some(ExitStatus::from_bits(2)),
                messages: vec![Message {
                    string: "open failed".into(),
                    severity: MessageSeverity::Error,
                }],
                ..Smartctl::default()
            },
            ..Report::default()
        };
        assert_eq!(
            evaluate(&r),
            Verdict::Unknown(vec![Reason::DeviceOpenFailed(Some("open failed".into()))])
        );
    }

    #[test]
    fn no_health_data_is_unknown() {
        assert_eq!(
            evaluate(&Report::default()),
            Verdict::Unknown(vec![Reason::NoHealthData])
        );
    }

    #[test]
    fn every_reason_has_display_and_a_code() {
        let reasons = [
            Reason::SmartStatusFailed,
            Reason::NvmeCriticalWarning(CriticalWarning::from_bits(1)),
            Reason::UncorrectedErrors {
                operation: ScsiOperation::Read,
                count: 1,
            },
            Reason::DeviceOpenFailed(None),
        ];
        for r in reasons {
            assert!(!r.to_string().is_empty());
            assert!(r.code().chars().all(|c| c.is_ascii_lowercase() || c == '_'));
        }
        assert_eq!(
            Verdict::Warning(vec![Reason::ReallocatedSectors(387)]).to_string(),
            "warning: 387 reallocated sectors"
        );
    }
}
