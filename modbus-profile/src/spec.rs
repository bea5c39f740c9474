//! The profile file as written: serde types that mirror the TOML one to one.
//! [`crate::profile`] turns them into a checked [`crate::Profile`].

use std::collections::BTreeMap;

use serde::Deserialize;

use crate::types::Class;

/// A whole profile file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct FileSpec {
    pub device: DeviceSpec,
    #[serde(default)]
    pub limits: LimitsSpec,
    /// Kept as raw tables so that an error in one point can name it.
    #[serde(default)]
    pub point: Vec<toml::Table>,
}

/// `[device]`: what the profile describes and where its facts come from.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeviceSpec {
    pub vendor: String,
    pub model: String,
    pub class: Class,
    /// The document the addresses were transcribed from.
    pub source: String,
    /// False when the addresses could not be checked against a public
    /// document; the file header then says which are in doubt.
    pub verified: bool,
    /// The unit id the device answers to out of the box.
    #[serde(default)]
    pub default_unit: Option<u8>,
    #[serde(default)]
    pub notes: Option<String>,
}

/// `[limits]`: what one request to this device may ask for.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct LimitsSpec {
    pub max_registers: Option<u16>,
    pub max_bits: Option<u16>,
    pub gap_fill: Option<u16>,
    pub functions: Option<Vec<u8>>,
}

/// A number or a list of numbers (`critical_if = 1` or `critical_if = [3, 4]`).
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub(crate) enum OneOrMany {
    One(f64),
    Many(Vec<f64>),
}

impl OneOrMany {
    pub fn into_vec(self) -> Vec<f64> {
        match self {
            OneOrMany::One(v) => vec![v],
            OneOrMany::Many(v) => v,
        }
    }
}

/// A simulator value: a number (engineering units), a text for string points,
/// or `"not_available"` for the point's first sentinel.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(untagged)]
pub enum SimValue {
    Number(f64),
    Text(String),
}

/// One `[[point]]` as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct PointSpec {
    pub name: String,
    pub q: Option<String>,
    pub table: String,
    pub address: u32,
    #[serde(rename = "type")]
    pub data_type: String,
    pub order: Option<String>,
    pub length: Option<u16>,
    pub bit: Option<u8>,
    pub bits: Option<[u8; 2]>,
    pub flag_on: Option<Vec<i64>>,
    pub flag_above: Option<f64>,
    #[serde(default)]
    pub invert: bool,
    pub scale: Option<f64>,
    pub offset: Option<f64>,
    pub binary_point: Option<u8>,
    #[serde(rename = "enum")]
    pub enum_names: Option<BTreeMap<String, String>>,
    pub not_available: Option<Vec<i64>>,
    pub critical_if: Option<OneOrMany>,
    pub warning_if: Option<OneOrMany>,
    pub critical_above: Option<f64>,
    pub critical_below: Option<f64>,
    pub warning_above: Option<f64>,
    pub warning_below: Option<f64>,
    pub nut: Option<String>,
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    pub sim_default: Option<SimValue>,
    pub note: Option<String>,
}
