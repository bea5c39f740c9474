//! The top level: one `smartctl --json` device output as a [`Report`].

use serde::Deserialize;
use serde_json::{Map, Value};

use crate::ata::AtaSmart;
use crate::de::{self, value_to_u64};
use crate::device::{DeviceInfo, Identity, Protocol};
use crate::error::ParseError;
use crate::exit_status::ExitStatus;
use crate::nvme::{NvmeHealth, NvmeSelfTestLog};
use crate::scsi::ScsiHealth;
use crate::smartctl::{FormatVersion, Smartctl, parse_envelope};
use crate::verdict::{self, Verdict};

/// One device as `smartctl --json` described it.
///
/// Sections smartctl did not print are `None`/empty: an info-only run, a device
/// that could not be opened and a disk skipped in standby all parse, and say so
/// through [`Report::smartctl`], [`Report::in_low_power_mode`] and
/// [`Report::has_health_data`].
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Report {
    /// `json_format_version`, when printed.
    pub format_version: Option<FormatVersion>,
    /// The `smartctl` section: version, argv, messages, exit status.
    pub smartctl: Smartctl,
    /// The `device` section; absent when the device could not be opened.
    pub device: Option<DeviceInfo>,
    /// Model, serial, WWN, firmware, capacity, rotation rate, form factor.
    pub identity: Identity,
    /// `smart_support.available`.
    pub smart_available: Option<bool>,
    /// `smart_support.enabled`.
    pub smart_enabled: Option<bool>,
    /// `smart_status.passed`: the drive's own overall health assessment.
    /// `None` when smartctl could not tell (not asked, not supported, RAID volume).
    pub smart_passed: Option<bool>,
    /// The `temperature` section.
    pub temperature: Temperature,
    /// `power_on_time.hours` (+ `minutes` for SCSI).
    pub power_on_time: PowerOnTime,
    /// `power_cycle_count`.
    pub power_cycle_count: Option<u64>,
    /// ATA attributes and logs, for ATA devices.
    pub ata: Option<AtaSmart>,
    /// NVMe SMART / Health log, for NVMe devices.
    pub nvme: Option<NvmeHealth>,
    /// NVMe self-test log, when smartctl was asked for it.
    pub nvme_self_test_log: Option<NvmeSelfTestLog>,
    /// SCSI defect and error counters, for SCSI/SAS devices.
    pub scsi: Option<ScsiHealth>,
}

/// The `temperature` section, Celsius.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(default)]
pub struct Temperature {
    /// Current temperature.
    #[serde(deserialize_with = "de::i64_opt")]
    pub current: Option<i64>,
    /// SCSI trip point.
    #[serde(deserialize_with = "de::i64_opt")]
    pub drive_trip: Option<i64>,
    /// ATA SCT: lifetime maximum.
    #[serde(deserialize_with = "de::i64_opt")]
    pub lifetime_max: Option<i64>,
}

/// The `power_on_time` section.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(default)]
pub struct PowerOnTime {
    /// Hours.
    #[serde(deserialize_with = "de::u64_opt")]
    pub hours: Option<u64>,
    /// Minutes past the hour (SCSI).
    #[serde(deserialize_with = "de::u64_opt")]
    pub minutes: Option<u64>,
}

/// Parses the output of `smartctl --json [--all|--xall|--info|...] DEVICE`.
///
/// Fails only when the text is not smartctl JSON at all; see [`ParseError`].
/// Everything inside is read leniently: unknown fields are ignored, a field of an
/// unexpected type or out of range becomes `None`, a malformed table row is
/// skipped, and nothing panics.
pub fn parse_report(text: &str) -> Result<Report, ParseError> {
    let envelope = parse_envelope(text)?;
    Ok(Report::from_sections(
        &envelope.map,
        envelope.format_version,
        envelope.smartctl,
    ))
}

fn section<T: for<'de> Deserialize<'de> + Default>(map: &Map<String, Value>, key: &str) -> T {
    map.get(key)
        .and_then(|v| T::deserialize(v).ok())
        .unwrap_or_default()
}

fn flag(map: &Map<String, Value>, section: &str, key: &str) -> Option<bool> {
    map.get(section)?.get(key)?.as_bool()
}

impl Report {
    fn from_sections(
        map: &Map<String, Value>,
        format_version: Option<FormatVersion>,
        smartctl: Smartctl,
    ) -> Self {
        Report {
            format_version,
            smartctl,
            device: map
                .get("device")
                .and_then(|d| DeviceInfo::deserialize(d).ok()),
            identity: Identity::from_top_level(map),
            smart_available: flag(map, "smart_support", "available"),
            smart_enabled: flag(map, "smart_support", "enabled"),
            smart_passed: flag(map, "smart_status", "passed"),
            temperature: section(map, "temperature"),
            power_on_time: section(map, "power_on_time"),
            power_cycle_count: map.get("power_cycle_count").and_then(value_to_u64),
            ata: AtaSmart::from_top_level(map),
            nvme: map
                .get("nvme_smart_health_information_log")
                .and_then(|h| NvmeHealth::deserialize(h).ok()),
            nvme_self_test_log: map
                .get("nvme_self_test_log")
                .and_then(|l| NvmeSelfTestLog::deserialize(l).ok()),
            scsi: ScsiHealth::from_top_level(map),
        }
    }

    /// `device.protocol`.
    pub fn protocol(&self) -> Option<&Protocol> {
        self.device.as_ref()?.protocol.as_ref()
    }

    /// smartctl's exit status; a missing one reads as 0.
    pub fn exit_status(&self) -> ExitStatus {
        self.smartctl.exit_status.unwrap_or_default()
    }

    /// smartctl skipped the device because it was asleep (`--nocheck=standby` and
    /// similar): no health data, and not a fault.
    pub fn in_low_power_mode(&self) -> bool {
        self.low_power_mode().is_some()
    }

    /// The power mode smartctl found the device in when it skipped it, e.g. `STANDBY`.
    pub fn low_power_mode(&self) -> Option<&str> {
        self.smartctl.low_power_mode()
    }

    /// smartctl could not open or identify the device (exit bit 1), as opposed to
    /// skipping it because it was asleep.
    pub fn device_open_failed(&self) -> bool {
        self.exit_status().device_open_failed() && !self.in_low_power_mode()
    }

    /// Whether the output holds anything to judge health by: an overall status,
    /// ATA attributes or logs, an NVMe health log, or SCSI defect/error counters.
    pub fn has_health_data(&self) -> bool {
        self.smart_passed.is_some()
            || self.ata.is_some()
            || self.nvme.is_some()
            || self.scsi.as_ref().is_some_and(|s| {
                s.grown_defect_list.is_some()
                    || s.read_errors.is_some()
                    || s.write_errors.is_some()
                    || s.verify_errors.is_some()
                    || s.percentage_used.is_some()
            })
    }

    /// Current temperature, Celsius: `temperature.current`, else the NVMe health
    /// log's composite temperature.
    ///
    /// A SCSI device without a temperature log page (RAID logical volumes) is
    /// printed as `current: 0, drive_trip: 0`; that pair means "unknown", not 0 °C.
    pub fn temperature_celsius(&self) -> Option<i64> {
        let t = &self.temperature;
        let placeholder = t.current == Some(0) && t.drive_trip == Some(0);
        t.current
            .filter(|_| !placeholder)
            .or_else(|| self.nvme.as_ref().and_then(|n| n.temperature))
    }

    /// Power-on hours: `power_on_time.hours`, else the NVMe health log's.
    pub fn power_on_hours(&self) -> Option<u64> {
        self.power_on_time
            .hours
            .or_else(|| self.nvme.as_ref().and_then(|n| n.power_on_hours))
    }

    /// Power cycles: `power_cycle_count`, else the NVMe health log's.
    pub fn power_cycles(&self) -> Option<u64> {
        self.power_cycle_count
            .or_else(|| self.nvme.as_ref().and_then(|n| n.power_cycles))
    }

    /// SCSI accumulated start-stop cycles.
    pub fn start_stop_cycles(&self) -> Option<u64> {
        self.scsi
            .as_ref()?
            .start_stop
            .as_ref()?
            .accumulated_start_stop_cycles
    }

    /// The health verdict under this crate's policy; see [`verdict::evaluate`].
    pub fn verdict(&self) -> Verdict {
        verdict::evaluate(self)
    }
}
