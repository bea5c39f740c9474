//! ATA SMART: the attribute table, the self-test log and the error log count.

use serde::Deserialize;
use serde_json::{Map, Value};

use crate::de::{self, Coded, value_to_u64};

/// Everything ATA-specific in one report.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct AtaSmart {
    /// `ata_smart_attributes.table`, in smartctl's order (by id).
    pub attributes: Vec<AtaAttribute>,
    /// `ata_smart_self_test_log` (the extended log when both are present).
    pub self_test_log: Option<AtaSelfTestLog>,
    /// `ata_smart_data.self_test.status`: the result of the most recent self-test
    /// as the drive reports it in its SMART data, even without `--log=selftest`.
    pub last_self_test_status: Option<SelfTestStatus>,
    /// `ata_smart_error_log`: the number of ATA errors the drive has logged over its
    /// life (the extended log's count when both are present).
    pub error_log_count: Option<u64>,
}

/// Attribute ids this crate gives names to.
pub mod attr {
    /// Reallocated_Sector_Ct.
    pub const REALLOCATED_SECTORS: u8 = 5;
    /// Reported_Uncorrect (Intel/Samsung SSDs: Uncorrectable_Error_Cnt).
    pub const REPORTED_UNCORRECTABLE: u8 = 187;
    /// Command_Timeout (Seagate packs three 16-bit counters into it).
    pub const COMMAND_TIMEOUT: u8 = 188;
    /// Current_Pending_Sector.
    pub const PENDING_SECTORS: u8 = 197;
    /// Offline_Uncorrectable.
    pub const OFFLINE_UNCORRECTABLE: u8 = 198;
    /// UDMA_CRC_Error_Count (interface, not media: cables and backplanes).
    pub const UDMA_CRC_ERRORS: u8 = 199;
}

impl AtaSmart {
    pub(crate) fn from_top_level(map: &Map<String, Value>) -> Option<Self> {
        let attributes: Vec<AtaAttribute> = map
            .get("ata_smart_attributes")
            .and_then(|a| a.get("table"))
            .and_then(Value::as_array)
            .map(|rows| rows.iter().filter_map(AtaAttribute::from_value).collect())
            .unwrap_or_default();
        let self_test_log = map.get("ata_smart_self_test_log").and_then(|log| {
            let part = log.get("extended").or_else(|| log.get("standard"))?;
            AtaSelfTestLog::deserialize(part).ok()
        });
        let last_self_test_status = map
            .get("ata_smart_data")
            .and_then(|d| d.get("self_test"))
            .and_then(|t| t.get("status"))
            .and_then(|s| SelfTestStatus::deserialize(s).ok());
        let error_log_count = map.get("ata_smart_error_log").and_then(|log| {
            log.get("extended")
                .or_else(|| log.get("summary"))
                .and_then(|part| part.get("count"))
                .and_then(value_to_u64)
        });
        let found = !attributes.is_empty()
            || self_test_log.is_some()
            || last_self_test_status.is_some()
            || error_log_count.is_some();
        found.then_some(AtaSmart {
            attributes,
            self_test_log,
            last_self_test_status,
            error_log_count,
        })
    }

    /// The attribute with this id.
    pub fn attribute(&self, id: u8) -> Option<&AtaAttribute> {
        self.attributes.iter().find(|a| a.id == id)
    }

    fn counter(&self, id: u8) -> Option<u64> {
        self.attribute(id).and_then(AtaAttribute::raw_counter)
    }

    /// Attribute 5, reallocated sectors (see [`AtaAttribute::raw_counter`]).
    pub fn reallocated_sectors(&self) -> Option<u64> {
        self.counter(attr::REALLOCATED_SECTORS)
    }
    /// Attribute 197, sectors pending reallocation.
    pub fn pending_sectors(&self) -> Option<u64> {
        self.counter(attr::PENDING_SECTORS)
    }
    /// Attribute 198, sectors found uncorrectable by the offline scan.
    pub fn offline_uncorrectable(&self) -> Option<u64> {
        self.counter(attr::OFFLINE_UNCORRECTABLE)
    }
    /// Attribute 187, errors that could not be recovered by ECC.
    pub fn reported_uncorrectable(&self) -> Option<u64> {
        self.counter(attr::REPORTED_UNCORRECTABLE)
    }
    /// Attribute 199, interface CRC errors.
    pub fn udma_crc_errors(&self) -> Option<u64> {
        self.counter(attr::UDMA_CRC_ERRORS)
    }
    /// Attribute 188, command timeouts, as the whole raw value. Seagate packs three
    /// 16-bit counters into it (a healthy Exos X16 shows 0x000C_000C_000C), so it
    /// is only meaningful compared with itself over time, never with zero.
    pub fn command_timeouts(&self) -> Option<u64> {
        self.attribute(attr::COMMAND_TIMEOUT)
            .and_then(|a| a.raw_value)
    }
}

/// One row of the ATA attribute table.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AtaAttribute {
    /// Attribute id, 1..=255.
    pub id: u8,
    /// smartctl's name for it (from its drive database), e.g. `Reallocated_Sector_Ct`.
    pub name: String,
    /// Normalised value (vendor scale, usually 1..=253, higher is better).
    pub value: Option<u8>,
    /// Worst normalised value seen.
    pub worst: Option<u8>,
    /// Threshold; at or below it the attribute has failed. 0 means "never fails".
    pub thresh: Option<u8>,
    /// When it failed, as smartctl judged it.
    pub when_failed: WhenFailed,
    /// Prefailure (as opposed to old-age/usage) attribute: crossing its threshold
    /// predicts imminent failure.
    pub prefailure: bool,
    /// The 48-bit raw value as one number.
    pub raw_value: Option<u64>,
    /// smartctl's rendering of the raw value, e.g. `26 (Min/Max 25/32)`.
    pub raw_string: Option<String>,
}

/// `when_failed`: `""`, `"now"` or `"past"`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum WhenFailed {
    /// Never at or below threshold.
    #[default]
    Never,
    /// Normalised value is at or below the threshold now.
    Now,
    /// Worst value was at or below the threshold at some time.
    Past,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct RawAttribute {
    #[serde(deserialize_with = "de::u8_opt")]
    id: Option<u8>,
    #[serde(deserialize_with = "de::string_opt")]
    name: Option<String>,
    #[serde(deserialize_with = "de::u8_opt")]
    value: Option<u8>,
    #[serde(deserialize_with = "de::u8_opt")]
    worst: Option<u8>,
    #[serde(deserialize_with = "de::u8_opt")]
    thresh: Option<u8>,
    #[serde(deserialize_with = "de::string_opt")]
    when_failed: Option<String>,
    flags: Option<Value>,
    raw: Option<Value>,
}

impl AtaAttribute {
    fn from_value(v: &Value) -> Option<Self> {
        let raw = RawAttribute::deserialize(v).ok()?;
        let id = raw.id.filter(|id| *id != 0)?;
        // smartctl 7 gives `flags.prefailure`; the bit itself (bit 0 of the flags
        // word) is there in every release, so it is the fallback.
        let prefailure = raw.flags.as_ref().is_some_and(|f| {
            f.get("prefailure")
                .and_then(Value::as_bool)
                .unwrap_or_else(|| {
                    f.get("value")
                        .and_then(value_to_u64)
                        .is_some_and(|b| b & 1 == 1)
                })
        });
        let when_failed = match raw.when_failed.as_deref().map(str::trim) {
            Some("now") => WhenFailed::Now,
            Some("past") => WhenFailed::Past,
            Some(_) => WhenFailed::Never,
            // Not printed (old or trimmed output): judge it the way smartctl does.
            None => match (raw.value, raw.worst, raw.thresh) {
                (Some(v), _, Some(t)) if t > 0 && v <= t => WhenFailed::Now,
                (_, Some(w), Some(t)) if t > 0 && w <= t => WhenFailed::Past,
                _ => WhenFailed::Never,
            },
        };
        let raw_value = raw
            .raw
            .as_ref()
            .and_then(|r| r.get("value"))
            .and_then(value_to_u64);
        let raw_string = raw
            .raw
            .as_ref()
            .and_then(|r| r.get("string"))
            .and_then(de::value_to_string);
        Some(AtaAttribute {
            id,
            name: raw.name.unwrap_or_default(),
            value: raw.value,
            worst: raw.worst,
            thresh: raw.thresh,
            when_failed,
            prefailure,
            raw_value,
            raw_string,
        })
    }

    /// The raw value read as an event or sector count.
    ///
    /// The 48-bit raw field is vendor-defined. For counters most vendors put the
    /// count in the low bytes, but some pack other numbers into the upper words
    /// (Seagate's 188 holds three 16-bit counters: a healthy Exos X16 shows raw
    /// 51540393996 = 0x000C_000C_000C). So, for counters such as 5, 187, 197, 198:
    ///
    /// 1. When smartctl's raw string starts with a number, that number is used:
    ///    smartctl has already split the raw value according to its drive database
    ///    (`"12 (0 3)"` is count 12 with two other words in brackets).
    /// 2. Otherwise `raw.value` is used.
    /// 3. Either way only the low 32 bits are kept: no drive has 2^32 reallocated
    ///    or pending sectors, so anything above is packing, not count.
    pub fn raw_counter(&self) -> Option<u64> {
        let leading = self.raw_string.as_deref().and_then(leading_integer);
        leading.or(self.raw_value).map(|n| n & 0xFFFF_FFFF)
    }

    /// Whether the normalised value is at or below the threshold now.
    pub fn failing_now(&self) -> bool {
        self.when_failed == WhenFailed::Now
    }
}

fn leading_integer(s: &str) -> Option<u64> {
    let s = s.trim_start();
    let end = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    s[..end].parse().ok()
}

/// The ATA self-test log, newest entry first (smartctl's order).
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(default)]
pub struct AtaSelfTestLog {
    /// Entries, newest first. Their `lifetime_hours` is a 16-bit counter that wraps
    /// after 65535 hours, so order, not hours, says which is newest.
    #[serde(rename = "table", deserialize_with = "de::lenient_vec")]
    pub entries: Vec<AtaSelfTestEntry>,
    /// Failed tests smartctl counted in the log.
    #[serde(deserialize_with = "de::u64_opt")]
    pub error_count_total: Option<u64>,
    /// Of those, failures smartctl considers superseded by a later successful test.
    #[serde(deserialize_with = "de::u64_opt")]
    pub error_count_outdated: Option<u64>,
}

/// One self-test log entry.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(default)]
pub struct AtaSelfTestEntry {
    /// Test type: value 1 short, 2 extended, 3 conveyance, 4 selective; vendor
    /// values also occur.
    #[serde(rename = "type", deserialize_with = "coded")]
    test_type: Coded,
    /// Outcome.
    pub status: SelfTestStatus,
    /// Power-on hours when the test ran (16 bits, wraps).
    #[serde(deserialize_with = "de::u64_opt")]
    pub lifetime_hours: Option<u64>,
    /// First failing LBA, for failed read tests.
    #[serde(deserialize_with = "de::u64_opt")]
    pub lba: Option<u64>,
}

fn coded<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Coded, D::Error> {
    Ok(Coded::deserialize(Value::deserialize(d)?).unwrap_or_default())
}

impl AtaSelfTestEntry {
    /// The test type as smartctl names it, e.g. `Short offline`.
    pub fn test_type(&self) -> Option<&str> {
        self.test_type.string.as_deref()
    }

    /// The numeric test type (1 short, 2 extended, 3 conveyance, 4 selective).
    pub fn test_type_code(&self) -> Option<u64> {
        self.test_type.value
    }

    /// An extended (full-surface) test. Offline and captive variants share the
    /// low bits (2 and 130).
    pub fn is_extended(&self) -> bool {
        matches!(self.test_type.value, Some(2) | Some(130))
            || self
                .test_type
                .string
                .as_deref()
                .is_some_and(|s| s.starts_with("Extended"))
    }
}

/// A self-test status: `{"value": 121, "string": "Completed: read failure", "passed": false}`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(default)]
pub struct SelfTestStatus {
    /// The status byte; the upper nibble is the outcome (ATA ACS, self-test log).
    #[serde(deserialize_with = "de::u64_opt")]
    pub value: Option<u64>,
    /// smartctl's text, e.g. `Completed without error`.
    #[serde(deserialize_with = "de::string_opt")]
    pub string: Option<String>,
    /// smartctl's judgement: `true` completed OK, `false` failed, absent for
    /// aborted, interrupted or running tests.
    #[serde(deserialize_with = "de::bool_opt")]
    pub passed: Option<bool>,
    /// Percent left, for a test in progress or one that stopped early.
    #[serde(deserialize_with = "de::u64_opt")]
    pub remaining_percent: Option<u64>,
}

/// What became of a self-test.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SelfTestOutcome {
    /// Completed without error.
    Passed,
    /// Completed with a failure (read, servo, electrical, handling, fatal, unknown).
    Failed,
    /// Aborted by the host or interrupted by a reset: says nothing about the disk.
    Aborted,
    /// Still running.
    InProgress,
    /// A status this crate cannot classify.
    Unknown,
}

impl SelfTestStatus {
    /// The outcome: smartctl's `passed` when given, else the status nibble.
    pub fn outcome(&self) -> SelfTestOutcome {
        match (self.passed, self.value.map(|v| (v >> 4) & 0xF)) {
            (Some(true), _) => SelfTestOutcome::Passed,
            (Some(false), _) => SelfTestOutcome::Failed,
            (None, Some(0)) => SelfTestOutcome::Passed,
            (None, Some(1 | 2)) => SelfTestOutcome::Aborted,
            (None, Some(3..=8)) => SelfTestOutcome::Failed,
            (None, Some(15)) => SelfTestOutcome::InProgress,
            _ => SelfTestOutcome::Unknown,
        }
    }
}

impl AtaSelfTestLog {
    /// The most recent entry.
    pub fn latest(&self) -> Option<&AtaSelfTestEntry> {
        self.entries.first()
    }

    /// Whether the most recent self-test failed.
    pub fn latest_failed(&self) -> bool {
        self.latest()
            .is_some_and(|e| e.status.outcome() == SelfTestOutcome::Failed)
    }

    /// The newest failed test that no later *extended* test has cleared.
    ///
    /// A short test reads only a sample of the surface, so a passing short test
    /// after a failed extended one does not mean the bad sectors are gone; only a
    /// later passing extended test does.
    pub fn unresolved_failure(&self) -> Option<&AtaSelfTestEntry> {
        for entry in &self.entries {
            match entry.status.outcome() {
                SelfTestOutcome::Failed => return Some(entry),
                SelfTestOutcome::Passed if entry.is_extended() => return None,
                _ => {}
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn attribute(v: Value) -> AtaAttribute {
        AtaAttribute::from_value(&v).unwrap_or_default()
    }

    #[test]
    fn plain_raw_counter_is_the_raw_value() {
        let a = attribute(json!({"id": 5, "raw": {"value": 387, "string": "387"}}));
        assert_eq!(a.raw_counter(), Some(387));
    }

    #[test]
    fn packed_raw_counter_uses_smartctls_leading_number() {
        let a = attribute(
            json!({"id": 197, "raw": {"value": 0x0003_0000_000C_u64, "string": "12 (0 3)"}}),
        );
        assert_eq!(a.raw_counter(), Some(12));
    }

    #[test]
    fn raw_counter_above_32_bits_keeps_the_low_word() {
        let a = attribute(
            json!({"id": 197, "raw": {"value": 0x0001_0000_0008_u64, "string": "4294967304"}}),
        );
        assert_eq!(a.raw_counter(), Some(8));
    }

    #[test]
    fn missing_when_failed_is_computed_from_thresholds() {
        let now = attribute(json!({"id": 5, "value": 1, "worst": 1, "thresh": 5}));
        let past = attribute(json!({"id": 5, "value": 100, "worst": 3, "thresh": 5}));
        let zero_thresh = attribute(json!({"id": 5, "value": 0, "worst": 0, "thresh": 0}));
        assert_eq!(now.when_failed, WhenFailed::Now);
        assert_eq!(past.when_failed, WhenFailed::Past);
        assert_eq!(zero_thresh.when_failed, WhenFailed::Never);
    }

    #[test]
    fn prefailure_falls_back_to_flag_bit_0() {
        let a = attribute(json!({"id": 1, "flags": {"value": 47}}));
        let b = attribute(json!({"id": 4, "flags": {"value": 50}}));
        assert!(a.prefailure);
        assert!(!b.prefailure);
    }

    #[test]
    fn attribute_with_out_of_range_id_is_dropped() {
        assert!(AtaAttribute::from_value(&json!({"id": 300})).is_none());
        assert!(AtaAttribute::from_value(&json!({"name": "no id"})).is_none());
    }

    fn entry(test: u64, passed: Option<bool>, value: u64) -> Value {
        let mut status = json!({"value": value, "string": "x"});
        if let Some(p) = passed {
            status["passed"] = json!(p);
        }
        json!({"type": {"value": test, "string": "t"}, "status": status})
    }

    #[test]
    fn failed_extended_test_is_not_cleared_by_later_short_tests() {
        let log: AtaSelfTestLog = serde_json::from_value(json!({"table": [
            entry(1, Some(true), 0), entry(2, Some(false), 121), entry(1, Some(true), 0)
        ]}))
        .unwrap_or_default();
        assert!(!log.latest_failed());
        assert_eq!(
            log.unresolved_failure().and_then(|e| e.status.value),
            Some(121)
        );
    }

    #[test]
    fn failed_test_is_cleared_by_a_later_extended_pass() {
        let log: AtaSelfTestLog = serde_json::from_value(json!({"table": [
            entry(2, Some(true), 0), entry(1, Some(false), 121)
        ]}))
        .unwrap_or_default();
        assert!(log.unresolved_failure().is_none());
    }

    #[test]
    fn aborted_test_is_neither_passed_nor_failed() {
        let s = SelfTestStatus {
            value: Some(25),
            ..SelfTestStatus::default()
        };
        assert_eq!(s.outcome(), SelfTestOutcome::Aborted);
        let running = SelfTestStatus {
            value: Some(249),
            ..SelfTestStatus::default()
        };
        assert_eq!(running.outcome(), SelfTestOutcome::InProgress);
    }
}
