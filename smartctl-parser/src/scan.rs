//! `smartctl --scan --json` / `--scan-open --json`: the devices smartctl can see.

use serde::Deserialize;
use serde_json::Value;

use crate::de;
use crate::device::{DeviceInfo, Protocol, RaidPassthrough, raid_passthrough};
use crate::error::ParseError;
use crate::smartctl::parse_envelope;

/// One entry of `devices[]`.
///
/// Identify a device by `name` *and* `dev_type`: disks behind one RAID controller
/// share a name (`/dev/bus/0` as `megaraid,0`, `megaraid,1`, ...).
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(default)]
pub struct ScannedDevice {
    /// Path to pass to smartctl, e.g. `/dev/sda`, `/dev/bus/0`.
    #[serde(deserialize_with = "de::string_opt")]
    name: Option<String>,
    /// Annotated path, e.g. `/dev/bus/0 [megaraid_disk_01]`; unique per disk.
    #[serde(deserialize_with = "de::string_opt")]
    pub info_name: Option<String>,
    /// The `-d` type, e.g. `sat`, `nvme`, `megaraid,1`.
    #[serde(rename = "type", deserialize_with = "de::string_opt")]
    pub dev_type: Option<String>,
    /// The command set.
    #[serde(deserialize_with = "crate::device::protocol_opt")]
    pub protocol: Option<Protocol>,
    /// `--scan-open` only: why the device could not be opened.
    #[serde(deserialize_with = "de::string_opt")]
    pub open_error: Option<String>,
}

impl ScannedDevice {
    /// The device path (never empty: entries without one are dropped).
    pub fn name(&self) -> &str {
        self.name.as_deref().unwrap_or_default()
    }

    /// The RAID controller and target, when the disk sits behind one.
    pub fn raid_passthrough(&self) -> Option<RaidPassthrough> {
        raid_passthrough(self.dev_type.as_deref()?)
    }

    /// Arguments that address this device: `["-d", TYPE, NAME]` or `[NAME]`.
    pub fn smartctl_device_args(&self) -> Vec<String> {
        DeviceInfo {
            name: self.name.clone(),
            info_name: self.info_name.clone(),
            dev_type: self.dev_type.clone(),
            protocol: self.protocol.clone(),
        }
        .smartctl_device_args()
    }
}

/// Parses `smartctl --scan --json` or `smartctl --scan-open --json`.
///
/// Entries without a device name are dropped; an output without a `devices` list
/// is [`ParseError::NoDevicesSection`] (an empty list is a valid, empty scan).
pub fn parse_scan(text: &str) -> Result<Vec<ScannedDevice>, ParseError> {
    let envelope = parse_envelope(text)?;
    let Some(Value::Array(items)) = envelope.map.get("devices") else {
        return Err(ParseError::NoDevicesSection);
    };
    Ok(items
        .iter()
        .filter_map(|item| ScannedDevice::deserialize(item).ok())
        .filter(|d| d.name.as_deref().is_some_and(|n| !n.is_empty()))
        .collect())
}
