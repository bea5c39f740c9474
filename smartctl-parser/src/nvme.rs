//! NVMe: the SMART / Health Information log (log page 02h) and the self-test log.

use std::fmt;

use serde::Deserialize;
use serde_json::Value;

use crate::de::{self, Coded};

/// `nvme_smart_health_information_log`. Counters are as smartctl prints them
/// (temperatures already converted to Celsius).
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(default)]
pub struct NvmeHealth {
    /// Critical warning bits.
    #[serde(deserialize_with = "critical_warning_opt")]
    pub critical_warning: Option<CriticalWarning>,
    /// Composite temperature, Celsius.
    #[serde(deserialize_with = "de::i64_opt")]
    pub temperature: Option<i64>,
    /// Remaining spare capacity, percent.
    #[serde(deserialize_with = "de::u64_opt")]
    pub available_spare: Option<u64>,
    /// Spare level below which the controller raises the spare critical warning.
    #[serde(deserialize_with = "de::u64_opt")]
    pub available_spare_threshold: Option<u64>,
    /// Vendor estimate of life used, percent; may exceed 100 (capped at 255).
    #[serde(deserialize_with = "de::u64_opt")]
    pub percentage_used: Option<u64>,
    /// Units of 1000 512-byte blocks read. The spec field is 128 bits; beyond
    /// `u64` this saturates.
    #[serde(deserialize_with = "de::u64_opt")]
    pub data_units_read: Option<u64>,
    /// Units of 1000 512-byte blocks written.
    #[serde(deserialize_with = "de::u64_opt")]
    pub data_units_written: Option<u64>,
    /// Read commands completed.
    #[serde(deserialize_with = "de::u64_opt")]
    pub host_reads: Option<u64>,
    /// Write commands completed.
    #[serde(deserialize_with = "de::u64_opt")]
    pub host_writes: Option<u64>,
    /// Minutes the controller was busy with I/O.
    #[serde(deserialize_with = "de::u64_opt")]
    pub controller_busy_time: Option<u64>,
    /// Power cycles.
    #[serde(deserialize_with = "de::u64_opt")]
    pub power_cycles: Option<u64>,
    /// Power-on hours.
    #[serde(deserialize_with = "de::u64_opt")]
    pub power_on_hours: Option<u64>,
    /// Shutdowns without a prior shutdown notification (power loss).
    #[serde(deserialize_with = "de::u64_opt")]
    pub unsafe_shutdowns: Option<u64>,
    /// Unrecovered data integrity errors (ECC, CRC, LBA tag mismatch).
    #[serde(deserialize_with = "de::u64_opt")]
    pub media_errors: Option<u64>,
    /// Error information log entries over the controller's life.
    #[serde(deserialize_with = "de::u64_opt")]
    pub num_err_log_entries: Option<u64>,
    /// Minutes above the warning composite temperature threshold.
    #[serde(deserialize_with = "de::u64_opt")]
    pub warning_temp_time: Option<u64>,
    /// Minutes above the critical composite temperature threshold.
    #[serde(deserialize_with = "de::u64_opt")]
    pub critical_comp_time: Option<u64>,
    /// Other temperature sensors, Celsius.
    #[serde(deserialize_with = "temperature_sensors")]
    pub temperature_sensors: Vec<i64>,
}

fn critical_warning_opt<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> Result<Option<CriticalWarning>, D::Error> {
    Ok(de::value_to_u64(&Value::deserialize(d)?)
        .and_then(|u| u8::try_from(u).ok())
        .map(CriticalWarning::from_bits))
}

fn temperature_sensors<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<i64>, D::Error> {
    Ok(match Value::deserialize(d)? {
        Value::Array(items) => items.iter().filter_map(de::value_to_i64).collect(),
        _ => Vec::new(),
    })
}

/// The NVMe critical warning byte (NVMe Base Specification, SMART / Health log,
/// byte 0). Any bit set makes smartctl report the health check as FAILED.
#[derive(Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct CriticalWarning(u8);

impl CriticalWarning {
    const NAMES: [&'static str; 6] = [
        "spare_below_threshold",
        "temperature",
        "reliability_degraded",
        "read_only",
        "volatile_memory_backup_failed",
        "persistent_memory_region_read_only",
    ];

    /// Wraps the raw byte.
    pub const fn from_bits(bits: u8) -> Self {
        CriticalWarning(bits)
    }
    /// The raw byte.
    pub const fn bits(self) -> u8 {
        self.0
    }
    /// No bit set.
    pub const fn is_empty(self) -> bool {
        self.0 == 0
    }
    /// Bit 0: available spare fell below the threshold.
    pub const fn spare_below_threshold(self) -> bool {
        self.0 & 0x01 != 0
    }
    /// Bit 1: a temperature is above an over-temperature or below an
    /// under-temperature threshold.
    pub const fn temperature(self) -> bool {
        self.0 & 0x02 != 0
    }
    /// Bit 2: NVM subsystem reliability degraded (media errors, internal errors).
    pub const fn reliability_degraded(self) -> bool {
        self.0 & 0x04 != 0
    }
    /// Bit 3: media placed in read-only mode.
    pub const fn read_only(self) -> bool {
        self.0 & 0x08 != 0
    }
    /// Bit 4: the volatile memory backup device (power-loss capacitors) failed.
    pub const fn volatile_memory_backup_failed(self) -> bool {
        self.0 & 0x10 != 0
    }
    /// Bit 5: the Persistent Memory Region became read-only or unreliable (NVMe 1.4).
    pub const fn persistent_memory_region_read_only(self) -> bool {
        self.0 & 0x20 != 0
    }
    /// Bits 6-7, reserved by the specification today.
    pub const fn reserved_bits(self) -> u8 {
        self.0 & 0xC0
    }

    /// `snake_case` names of the set bits; reserved bits as `bit6`, `bit7`.
    pub fn names(self) -> Vec<&'static str> {
        let mut names: Vec<&'static str> = Self::NAMES
            .iter()
            .enumerate()
            .filter(|(i, _)| self.0 & (1 << i) != 0)
            .map(|(_, n)| *n)
            .collect();
        if self.0 & 0x40 != 0 {
            names.push("bit6");
        }
        if self.0 & 0x80 != 0 {
            names.push("bit7");
        }
        names
    }
}

impl fmt::Debug for CriticalWarning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "CriticalWarning({})", self.names().join("|"))
    }
}

impl fmt::Display for CriticalWarning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_empty() {
            f.write_str("none")
        } else {
            f.write_str(&self.names().join(", "))
        }
    }
}

/// `nvme_self_test_log` (smartctl 7.3+ with `-l selftest` or `-x`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(default)]
pub struct NvmeSelfTestLog {
    #[serde(deserialize_with = "coded")]
    current_self_test_operation: Coded,
    /// Progress of the running test, percent.
    #[serde(deserialize_with = "de::u64_opt")]
    pub current_self_test_completion_percent: Option<u64>,
    /// Results, newest first.
    #[serde(rename = "table", deserialize_with = "de::lenient_vec")]
    pub entries: Vec<NvmeSelfTestEntry>,
}

fn coded<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Coded, D::Error> {
    Ok(Coded::deserialize(Value::deserialize(d)?).unwrap_or_default())
}

impl NvmeSelfTestLog {
    /// Whether a self-test is running now (operation code non-zero).
    pub fn in_progress(&self) -> bool {
        self.current_self_test_operation
            .value
            .is_some_and(|v| v != 0)
    }
    /// The most recent result.
    pub fn latest(&self) -> Option<&NvmeSelfTestEntry> {
        self.entries.first()
    }
    /// The newest failed test not followed by a passing extended test (the same
    /// rule as for ATA: a short test does not clear a failed extended one).
    pub fn unresolved_failure(&self) -> Option<&NvmeSelfTestEntry> {
        for entry in &self.entries {
            if entry.failed() {
                return Some(entry);
            }
            if entry.passed() && entry.code.value == Some(2) {
                return None;
            }
        }
        None
    }
}

/// One NVMe self-test result.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(default)]
pub struct NvmeSelfTestEntry {
    #[serde(rename = "self_test_code", deserialize_with = "coded")]
    code: Coded,
    #[serde(rename = "self_test_result", deserialize_with = "coded")]
    result: Coded,
    /// Power-on hours when the test ran.
    #[serde(deserialize_with = "de::u64_opt")]
    pub power_on_hours: Option<u64>,
}

impl NvmeSelfTestEntry {
    /// Test kind as smartctl names it (`Short`, `Extended`, ...).
    pub fn test_type(&self) -> Option<&str> {
        self.code.string.as_deref()
    }
    /// Result as smartctl names it.
    pub fn result(&self) -> Option<&str> {
        self.result.string.as_deref()
    }
    /// Result code (NVMe Device Self-test log, status bits 3:0).
    pub fn result_code(&self) -> Option<u64> {
        self.result.value
    }
    /// Completed without error (result 0).
    pub fn passed(&self) -> bool {
        self.result.value == Some(0)
    }
    /// Failed: 5 fatal or unknown error, 6 a segment failed (unknown which),
    /// 7 one or more segments failed. Aborts (1-4, 8, 9) are not failures.
    pub fn failed(&self) -> bool {
        matches!(self.result.value, Some(5..=7))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn critical_warning_bits_have_names() {
        let w = CriticalWarning::from_bits(0x10);
        assert!(w.volatile_memory_backup_failed());
        assert!(!w.spare_below_threshold());
        assert_eq!(w.to_string(), "volatile_memory_backup_failed");
        let all = CriticalWarning::from_bits(0xFF);
        assert_eq!(all.names().len(), 8);
        assert_eq!(all.reserved_bits(), 0xC0);
    }

    #[test]
    fn empty_critical_warning_displays_none() {
        assert_eq!(CriticalWarning::default().to_string(), "none");
    }

    #[test]
    fn nvme_self_test_results_5_to_7_are_failures() {
        let log: NvmeSelfTestLog = serde_json::from_value(serde_json::json!({
            "current_self_test_operation": {"value": 0},
            "table": [
                {"self_test_code": {"value": 1}, "self_test_result": {"value": 0}},
                {"self_test_code": {"value": 2}, "self_test_result": {"value": 7}},
            ]
        }))
        .unwrap_or_default();
        assert!(!log.in_progress());
        assert!(log.latest().is_some_and(NvmeSelfTestEntry::passed));
        assert_eq!(
            log.unresolved_failure().and_then(|e| e.result_code()),
            Some(7)
        );
    }
}
