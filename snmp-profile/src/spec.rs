//! The TOML schema of an SNMP device profile, as written (see
//! `firmware-config/README.md`). [`crate::Profile::from_toml`] checks it.

use std::collections::BTreeMap;

use serde::Deserialize;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProfileSpec {
    pub device: DeviceSpec,
    #[serde(default)]
    pub limits: LimitsSpec,
    #[serde(default)]
    pub scalar: Vec<ScalarSpec>,
    #[serde(default)]
    pub table: Vec<TableSpec>,
    #[serde(default)]
    pub alarm: Vec<AlarmSpec>,
    #[serde(default)]
    pub trap: Vec<TrapSpec>,
}

/// A flag that is 1 while an alarm table lists an alarm: some row of
/// `column` (a column of OBJECT IDENTIFIER values, e.g. `upsAlarmDescr`)
/// holds `value` (the well-known alarm's OID).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AlarmSpec {
    pub name: String,
    pub column: String,
    pub value: String,
    #[serde(flatten)]
    pub rules: RulesSpec,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeviceSpec {
    pub vendor: String,
    pub model: String,
    pub class: Class,
    /// The MIB module(s) the OIDs come from, e.g. `UPS-MIB (RFC 1628)`.
    pub mib: String,
    /// The document the OIDs and their meanings were taken from.
    pub source: String,
    pub verified: bool,
    #[serde(default)]
    pub notes: Option<String>,
}

/// What kind of equipment a profile describes; decides the quantities it must yield.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Class {
    Ups,
    Pdu,
    Environment,
    Switch,
    Cooling,
}

impl Class {
    pub fn as_str(self) -> &'static str {
        match self {
            Class::Ups => "ups",
            Class::Pdu => "pdu",
            Class::Environment => "environment",
            Class::Switch => "switch",
            Class::Cooling => "cooling",
        }
    }
}

/// Hints about the devices' agents (overridable per device).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LimitsSpec {
    /// GETBULK max-repetitions this family is known to handle.
    #[serde(default)]
    pub max_repetitions: Option<u32>,
    /// Varbinds per GET this family is known to handle.
    #[serde(default)]
    pub max_oids: Option<usize>,
}

/// How a raw value becomes a reading: shared by scalars and table columns.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RulesSpec {
    /// The quantity; required unless `q_by` picks it per row.
    #[serde(default)]
    pub q: Option<String>,
    /// What the value must be: `number` (INTEGER, Gauge32, Counter32/64,
    /// TimeTicks, Unsigned32; the default) or `string` (OCTET STRING, a
    /// number in text, as some PDUs send) or `present` (1 while the OID
    /// exists, 0 when the agent has no such instance: an alarm entry).
    #[serde(default, rename = "type")]
    pub value_type: Option<String>,
    /// code -> name, sent as label `text`.
    #[serde(default, rename = "enum")]
    pub enum_names: BTreeMap<String, String>,
    /// 1 when the raw value is one of these, else 0.
    #[serde(default)]
    pub flag_on: Vec<i64>,
    /// 1 when the scaled value is above this, else 0.
    #[serde(default)]
    pub flag_above: Option<f64>,
    /// Flags only: 1 <-> 0.
    #[serde(default)]
    pub invert: bool,
    #[serde(default)]
    pub scale: Option<f64>,
    #[serde(default)]
    pub offset: Option<f64>,
    /// Raw values meaning "not available": value null, state unknown.
    #[serde(default)]
    pub not_available: Vec<i64>,
    #[serde(default)]
    pub critical_if: OneOrMany,
    #[serde(default)]
    pub warning_if: OneOrMany,
    #[serde(default)]
    pub critical_above: Option<f64>,
    #[serde(default)]
    pub warning_above: Option<f64>,
    #[serde(default)]
    pub critical_below: Option<f64>,
    #[serde(default)]
    pub warning_below: Option<f64>,
    /// The NUT variable, sent as label `nut`.
    #[serde(default)]
    pub nut: Option<String>,
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    #[serde(default)]
    pub note: Option<String>,
}

/// A number or a list of numbers.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(untagged)]
pub enum OneOrMany {
    #[default]
    None,
    One(f64),
    Many(Vec<f64>),
}

impl OneOrMany {
    pub fn to_vec(&self) -> Vec<f64> {
        match self {
            OneOrMany::None => Vec::new(),
            OneOrMany::One(x) => vec![*x],
            OneOrMany::Many(v) => v.clone(),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScalarSpec {
    /// The reading's `name`, unique in the profile.
    pub name: String,
    /// The instance OID, `.0` included.
    pub oid: String,
    #[serde(flatten)]
    pub rules: RulesSpec,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TableSpec {
    pub name: String,
    /// The table's entry OID (`...Table.1`): columns are its sub-identifiers.
    pub oid: String,
    /// Names for the index's sub-identifiers, e.g. `["unit", "cord"]`:
    /// labels on every row's readings. Default: one label `index`.
    #[serde(default)]
    pub index: Vec<String>,
    #[serde(default)]
    pub label: Vec<LabelSpec>,
    /// Rows to ignore (an admin-down port, an absent probe).
    #[serde(default)]
    pub skip: Vec<SkipSpec>,
    #[serde(default)]
    pub column: Vec<ColumnSpec>,
}

/// A row label read from a column of this table or of another table with the same index.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LabelSpec {
    pub name: String,
    /// A column of this table.
    #[serde(default)]
    pub column: Option<u32>,
    /// Or a column of another table indexed alike (its full column OID).
    #[serde(default)]
    pub oid: Option<String>,
    /// code -> name for integer columns.
    #[serde(default, rename = "enum")]
    pub enum_names: BTreeMap<String, String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SkipSpec {
    #[serde(default)]
    pub column: Option<u32>,
    #[serde(default)]
    pub oid: Option<String>,
    /// The row is skipped when the column holds one of these.
    pub values: Vec<i64>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ColumnSpec {
    /// The readings' `name` is `<name>.<index>`.
    pub name: String,
    pub column: u32,
    #[serde(flatten)]
    pub rules: RulesSpec,
    /// Pick the quantity per row from another column's code
    /// (ENTITY-SENSOR-MIB's `entPhySensorType`); rows whose code is not
    /// listed are skipped.
    #[serde(default)]
    pub q_by: Option<QBySpec>,
    /// Another quantity for rows whose label contains one of the words
    /// (case-insensitive), e.g. power supply sensors read as `psu_ok`.
    #[serde(default)]
    pub q_if: Vec<QIfSpec>,
    /// RFC 3433 scaling: value x 10^(3 (scale - 9)) / 10^precision, from
    /// these columns of the row.
    #[serde(default)]
    pub entity_scale: Option<EntityScaleSpec>,
    #[serde(default)]
    pub decimals: Option<DecimalsSpec>,
}

/// Where a row's code comes from: a column of the row, or one sub-identifier
/// of its index (1-based; PDU2-MIB puts the sensor type there).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QBySpec {
    #[serde(default)]
    pub column: Option<u32>,
    #[serde(default)]
    pub index: Option<usize>,
    pub map: BTreeMap<String, String>,
}

/// value / 10^digits, the digits read from a column of this table or of another
/// table indexed alike (PDU2-MIB's `...SensorDecimalDigits`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DecimalsSpec {
    #[serde(default)]
    pub column: Option<u32>,
    #[serde(default)]
    pub oid: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QIfSpec {
    pub label: String,
    pub contains: Vec<String>,
    pub q: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EntityScaleSpec {
    pub scale_column: u32,
    pub precision_column: u32,
}

/// A notification the device sends, as an event.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrapSpec {
    /// The event's `type`, snake_case.
    pub name: String,
    /// `snmpTrapOID.0` (v2c/v3), or `enterprise.0.specific` for a v1 trap.
    pub oid: String,
    /// Other OIDs seen in the field for the same notification.
    #[serde(default)]
    pub aliases: Vec<String>,
    /// `critical` | `high` | `medium` | `low`.
    pub severity: String,
    pub message: String,
}
