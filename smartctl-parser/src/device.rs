//! Which disk this is: the `device` section (path, type, protocol) and the
//! identity fields smartctl prints at the top level (model, serial, WWN, ...).

use serde::Deserialize;
use serde_json::{Map, Value};

use crate::de::{self, value_to_string, value_to_u64};

/// The command set smartctl used to talk to the device (`device.protocol`).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Protocol {
    /// ATA/SATA, including SAT, USB bridges and RAID pass-through to SATA disks.
    Ata,
    /// NVMe.
    Nvme,
    /// SCSI/SAS, including RAID logical volumes seen as SCSI disks.
    Scsi,
    /// Anything else, as written.
    Other(String),
}

impl Protocol {
    /// The name as smartctl writes it: `ATA`, `NVMe`, `SCSI`.
    pub fn as_str(&self) -> &str {
        match self {
            Protocol::Ata => "ATA",
            Protocol::Nvme => "NVMe",
            Protocol::Scsi => "SCSI",
            Protocol::Other(s) => s,
        }
    }

    fn from_name(s: &str) -> Self {
        // Case-insensitive: older builds and scan outputs have not always agreed on
        // the capitalisation of "NVMe".
        match s.to_ascii_uppercase().as_str() {
            "ATA" => Protocol::Ata,
            "NVME" => Protocol::Nvme,
            "SCSI" => Protocol::Scsi,
            _ => Protocol::Other(s.to_owned()),
        }
    }
}

impl std::fmt::Display for Protocol {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

pub(crate) fn protocol_opt<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> Result<Option<Protocol>, D::Error> {
    Ok(value_to_string(&Value::deserialize(d)?).map(|s| Protocol::from_name(&s)))
}

/// The `device` section (also the shape of each `--scan` entry).
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(default)]
pub struct DeviceInfo {
    /// The path given to smartctl, e.g. `/dev/sda` or `/dev/bus/0`.
    #[serde(deserialize_with = "de::string_opt")]
    pub name: Option<String>,
    /// The path with smartctl's annotations, e.g. `/dev/sda [megaraid_disk_01] [SAT]`.
    #[serde(deserialize_with = "de::string_opt")]
    pub info_name: Option<String>,
    /// The `-d` device type, e.g. `sat`, `nvme`, `scsi`, `sat+megaraid,1`, `usbjmicron`.
    #[serde(rename = "type", deserialize_with = "de::string_opt")]
    pub dev_type: Option<String>,
    /// The command set.
    #[serde(deserialize_with = "protocol_opt")]
    pub protocol: Option<Protocol>,
}

/// A disk reached through a RAID controller rather than directly, parsed from a
/// device type such as `sat+megaraid,1` or `megaraid,0`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RaidPassthrough {
    /// The controller family: `megaraid`, `cciss`, `areca`, `3ware`, `aacraid`,
    /// `hpt`, `sssraid` or `jmb39x`.
    pub controller: String,
    /// The disk's address on the controller as smartctl spells it (`1`, `2/1`, `0,0,1`).
    pub target: String,
    /// The tunnelled protocol before the `+`, if given (`sat` in `sat+megaraid,1`).
    pub tunnel: Option<String>,
}

/// Controller families whose `-d TYPE,N` addresses a physical disk behind a RAID
/// controller (smartctl(8), `-d`). USB bridges also take arguments
/// (`usbjmicron,0`) but are not RAID, so they are not listed.
const RAID_CONTROLLERS: &[&str] = &[
    "megaraid", "cciss", "areca", "3ware", "aacraid", "hpt", "sssraid", "jmb39x",
];

impl DeviceInfo {
    /// The RAID controller and target, when this disk sits behind one.
    pub fn raid_passthrough(&self) -> Option<RaidPassthrough> {
        raid_passthrough(self.dev_type.as_deref()?)
    }

    /// Arguments that make smartctl address this same device again:
    /// `["-d", TYPE, NAME]`, or `[NAME]` when the type is unknown. The type matters:
    /// several disks behind one controller share the same `name`.
    pub fn smartctl_device_args(&self) -> Vec<String> {
        let mut args = Vec::with_capacity(3);
        if let Some(t) = &self.dev_type {
            args.push("-d".to_owned());
            args.push(t.clone());
        }
        if let Some(n) = &self.name {
            args.push(n.clone());
        }
        args
    }
}

pub(crate) fn raid_passthrough(dev_type: &str) -> Option<RaidPassthrough> {
    let (tunnel, controller_part) = match dev_type.split_once('+') {
        Some((t, rest)) => (Some(t.to_owned()), rest),
        None => (None, dev_type),
    };
    let (controller, target) = controller_part.split_once(',')?;
    RAID_CONTROLLERS
        .contains(&controller)
        .then(|| RaidPassthrough {
            controller: controller.to_owned(),
            target: target.to_owned(),
            tunnel,
        })
}

/// What the disk is, gathered from smartctl's top-level identity fields.
///
/// ATA and NVMe use `model_name`/`firmware_version`; SCSI uses
/// `scsi_model_name`/`scsi_revision` since smartctl 7.3 and
/// `model_name`/`revision` (or `vendor` + `product`) before; both are read.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Identity {
    /// smartctl drive database family, e.g. `Seagate Exos X16` (ATA only).
    pub model_family: Option<String>,
    /// Model, e.g. `ST16000NM001G-2KK103` or `SEAGATE ST1200MM0088`.
    pub model: Option<String>,
    /// Serial number (may be `REDACTED` in shared captures).
    pub serial: Option<String>,
    /// World Wide Name as 16 lowercase hex digits, e.g. `5000c500a1b2c3d4`:
    /// from ATA `wwn {naa, oui, id}` or SCSI `logical_unit_id`.
    pub wwn: Option<String>,
    /// Firmware version (SCSI: revision).
    pub firmware: Option<String>,
    /// User capacity in bytes (NVMe: total capacity when no namespace size is given).
    pub capacity_bytes: Option<u64>,
    /// Rotation rate in rpm; `Some(0)` is how smartctl says "solid state".
    pub rotation_rate_rpm: Option<u32>,
    /// Form factor, e.g. `3.5 inches`.
    pub form_factor: Option<String>,
}

impl Identity {
    pub(crate) fn from_top_level(map: &Map<String, Value>) -> Self {
        let s = |key: &str| {
            map.get(key)
                .and_then(value_to_string)
                .filter(|s| !s.trim().is_empty())
        };
        let model = s("model_name")
            .or_else(|| s("scsi_model_name"))
            .or_else(|| {
                match (
                    s("scsi_vendor").or_else(|| s("vendor")),
                    s("scsi_product").or_else(|| s("product")),
                ) {
                    (Some(v), Some(p)) => Some(format!("{v} {p}")),
                    (None, p) => p,
                    (v, None) => v,
                }
            });
        let capacity_bytes = map
            .get("user_capacity")
            .and_then(|c| c.get("bytes"))
            .and_then(value_to_u64)
            .or_else(|| map.get("nvme_total_capacity").and_then(value_to_u64));
        Identity {
            model_family: s("model_family"),
            model,
            serial: s("serial_number"),
            wwn: map
                .get("wwn")
                .and_then(wwn_from_parts)
                .or_else(|| map.get("logical_unit_id").and_then(wwn_from_lu_id)),
            firmware: s("firmware_version")
                .or_else(|| s("scsi_revision"))
                .or_else(|| s("revision")),
            capacity_bytes,
            rotation_rate_rpm: map
                .get("rotation_rate")
                .and_then(value_to_u64)
                .and_then(|r| u32::try_from(r).ok()),
            form_factor: map
                .get("form_factor")
                .and_then(|f| f.get("name"))
                .and_then(value_to_string),
        }
    }
}

/// ATA `wwn {naa, oui, id}`: NAA (4 bits), IEEE OUI (24 bits) and vendor id
/// (36 bits) packed into 64 bits, the way `LU WWN Device Id: 5 000c50 0f67ac4ba`
/// reads. Out-of-range parts are masked rather than rejected.
fn wwn_from_parts(v: &Value) -> Option<String> {
    let naa = v.get("naa").and_then(value_to_u64)?;
    let oui = v.get("oui").and_then(value_to_u64)?;
    let id = v.get("id").and_then(value_to_u64)?;
    let packed = ((naa & 0xF) << 60) | ((oui & 0xFF_FFFF) << 36) | (id & 0xF_FFFF_FFFF);
    Some(format!("{packed:016x}"))
}

/// SCSI `logical_unit_id` is already the NAA identifier, as `"0x5000cca..."`.
fn wwn_from_lu_id(v: &Value) -> Option<String> {
    let s = v.as_str()?.trim();
    let hex = s
        .strip_prefix("0x")
        .or_else(|| s.strip_prefix("0X"))
        .unwrap_or(s);
    (!hex.is_empty() && hex.chars().all(|c| c.is_ascii_hexdigit()))
        .then(|| hex.to_ascii_lowercase())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn wwn_is_packed_from_naa_oui_and_id() {
        let w = wwn_from_parts(&json!({"naa": 5, "oui": 3152, "id": 1234567890}));
        assert_eq!(w.as_deref(), Some("5000c500499602d2"));
    }

    #[test]
    fn wwn_with_missing_part_is_none() {
        assert_eq!(wwn_from_parts(&json!({"naa": 5, "oui": 3152})), None);
    }

    #[test]
    fn scsi_logical_unit_id_is_the_wwn() {
        let w = wwn_from_lu_id(&json!("0x5000CCA01234ABCD"));
        assert_eq!(w.as_deref(), Some("5000cca01234abcd"));
        assert_eq!(wwn_from_lu_id(&json!("not hex")), None);
    }

    #[test]
    fn megaraid_sat_type_is_a_raid_passthrough() {
        let p = raid_passthrough("sat+megaraid,1");
        assert_eq!(
            p,
            Some(RaidPassthrough {
                controller: "megaraid".into(),
                target: "1".into(),
                tunnel: Some("sat".into()),
            })
        );
        assert_eq!(
            raid_passthrough("megaraid,0").map(|p| p.target),
            Some("0".into())
        );
    }

    #[test]
    fn plain_and_usb_bridge_types_are_not_raid() {
        assert_eq!(raid_passthrough("sat"), None);
        assert_eq!(raid_passthrough("usbjmicron,0"), None);
        assert_eq!(raid_passthrough("nvme"), None);
    }

    #[test]
    fn device_args_include_the_type() {
        let d = DeviceInfo {
            name: Some("/dev/bus/0".into()),
            dev_type: Some("megaraid,1".into()),
            ..DeviceInfo::default()
        };
        assert_eq!(
            d.smartctl_device_args(),
            vec!["-d", "megaraid,1", "/dev/bus/0"]
        );
    }
}
