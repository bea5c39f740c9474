//! SCSI/SAS: grown defect list, error counter log pages, start-stop cycle counter.

use std::fmt;

use serde::Deserialize;
use serde_json::{Map, Value};

use crate::de;

/// Everything SCSI-specific in one report.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ScsiHealth {
    /// `scsi_grown_defect_list`: blocks the drive has remapped since leaving the factory.
    pub grown_defect_list: Option<u64>,
    /// `scsi_error_counter_log.read` (log page 03h).
    pub read_errors: Option<ScsiErrorCounter>,
    /// `scsi_error_counter_log.write` (log page 02h).
    pub write_errors: Option<ScsiErrorCounter>,
    /// `scsi_error_counter_log.verify` (log page 05h).
    pub verify_errors: Option<ScsiErrorCounter>,
    /// `scsi_start_stop_cycle_counter` (log page 0Eh).
    pub start_stop: Option<ScsiStartStop>,
    /// `scsi_percentage_used_endurance_indicator` (SSDs, log page 11h).
    pub percentage_used: Option<u64>,
}

/// Which error counter page.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ScsiOperation {
    /// Read error counters.
    Read,
    /// Write error counters.
    Write,
    /// Verify error counters.
    Verify,
}

impl fmt::Display for ScsiOperation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ScsiOperation::Read => "read",
            ScsiOperation::Write => "write",
            ScsiOperation::Verify => "verify",
        })
    }
}

/// One error counter page. Counters arrive as numbers, as strings in some
/// releases, or mirrored as exact `KEY_s` strings when large; all are read.
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(default)]
pub struct ScsiErrorCounter {
    /// Errors corrected by ECC without delay.
    #[serde(deserialize_with = "de::u64_opt")]
    pub errors_corrected_by_eccfast: Option<u64>,
    /// Errors corrected by ECC with delay.
    #[serde(deserialize_with = "de::u64_opt")]
    pub errors_corrected_by_eccdelayed: Option<u64>,
    /// Errors corrected by re-reading or re-writing.
    #[serde(deserialize_with = "de::u64_opt")]
    pub errors_corrected_by_rereads_rewrites: Option<u64>,
    /// All corrected errors.
    #[serde(deserialize_with = "de::u64_opt")]
    pub total_errors_corrected: Option<u64>,
    /// Times the correction algorithm ran.
    #[serde(deserialize_with = "de::u64_opt")]
    pub correction_algorithm_invocations: Option<u64>,
    /// Data processed, in 10^9 bytes (smartctl prints it as a decimal string).
    #[serde(deserialize_with = "de::f64_opt")]
    pub gigabytes_processed: Option<f64>,
    /// Errors the drive could not correct: data was lost or a command failed.
    #[serde(deserialize_with = "de::u64_opt")]
    pub total_uncorrected_errors: Option<u64>,
}

/// The start-stop cycle counter page.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(default)]
pub struct ScsiStartStop {
    /// Spindle start-stop cycles so far.
    #[serde(deserialize_with = "de::u64_opt")]
    pub accumulated_start_stop_cycles: Option<u64>,
    /// Start-stop cycles the drive is specified for.
    #[serde(deserialize_with = "de::u64_opt")]
    pub specified_cycle_count_over_device_lifetime: Option<u64>,
    /// Head load-unload cycles so far.
    #[serde(deserialize_with = "de::u64_opt")]
    pub accumulated_load_unload_cycles: Option<u64>,
    /// Load-unload cycles the drive is specified for.
    #[serde(deserialize_with = "de::u64_opt")]
    pub specified_load_unload_count_over_device_lifetime: Option<u64>,
}

impl ScsiHealth {
    pub(crate) fn from_top_level(map: &Map<String, Value>) -> Option<Self> {
        let log = map.get("scsi_error_counter_log");
        let page = |name: &str| {
            log.and_then(|l| l.get(name))
                .and_then(|p| ScsiErrorCounter::deserialize(p).ok())
        };
        let health = ScsiHealth {
            grown_defect_list: map.get("scsi_grown_defect_list").and_then(de::value_to_u64),
            read_errors: page("read"),
            write_errors: page("write"),
            verify_errors: page("verify"),
            start_stop: map
                .get("scsi_start_stop_cycle_counter")
                .and_then(|s| ScsiStartStop::deserialize(s).ok()),
            percentage_used: map
                .get("scsi_percentage_used_endurance_indicator")
                .and_then(de::value_to_u64),
        };
        (health != ScsiHealth::default()).then_some(health)
    }

    /// The counter page for one operation.
    pub fn errors(&self, op: ScsiOperation) -> Option<&ScsiErrorCounter> {
        match op {
            ScsiOperation::Read => self.read_errors.as_ref(),
            ScsiOperation::Write => self.write_errors.as_ref(),
            ScsiOperation::Verify => self.verify_errors.as_ref(),
        }
    }

    /// Uncorrected errors for one operation.
    pub fn uncorrected(&self, op: ScsiOperation) -> Option<u64> {
        self.errors(op).and_then(|c| c.total_uncorrected_errors)
    }

    /// Read + write + verify uncorrected errors (saturating); `None` when no page
    /// reported a count.
    pub fn uncorrected_total(&self) -> Option<u64> {
        [
            ScsiOperation::Read,
            ScsiOperation::Write,
            ScsiOperation::Verify,
        ]
        .into_iter()
        .filter_map(|op| self.uncorrected(op))
        .reduce(u64::saturating_add)
    }
}
