//! A checked profile: loading a TOML text and validating every point.

use std::collections::{BTreeMap, HashSet};

use sitewatch_protocol::quantity;

use crate::error::{PointProblem, ProfileError};
use crate::spec::{DeviceSpec, FileSpec, LimitsSpec, PointSpec, SimValue};
use crate::types::{DataType, Order, Table};

/// The Modbus maxima for one read (Modbus Application Protocol 1.1b3, 6.1-6.4).
pub const MAX_READ_REGISTERS: u16 = 125;
pub const MAX_READ_BITS: u16 = 2000;

/// What one request to a device may ask for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    /// Registers per read request (FC 3/4), 1..=125.
    pub max_registers: u16,
    /// Bits per read request (FC 1/2), 1..=2000.
    pub max_bits: u16,
    /// Unmapped registers (or bits) the planner may read over to save a request.
    /// Zero never reads an address the profile does not name.
    pub gap_fill: u16,
    /// Read function codes the device implements.
    pub functions: Vec<u8>,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_registers: MAX_READ_REGISTERS,
            max_bits: MAX_READ_BITS,
            gap_fill: 0,
            functions: vec![1, 2, 3, 4],
        }
    }
}

/// How a flag or a sub-field is taken out of an integer register value.
#[derive(Debug, Clone, PartialEq)]
pub enum Extract {
    /// The whole value.
    Whole,
    /// Bit N (0 = least significant) as 0/1.
    Bit(u8),
    /// Bits lo..=hi as an unsigned integer (e.g. a GenComm alarm nibble).
    Bits(u8, u8),
}

/// How the judgement (`state`) of a value is made. Checked in order:
/// critical before warning; a value matching nothing is `ok`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct StateRules {
    pub critical_if: Vec<f64>,
    pub warning_if: Vec<f64>,
    pub critical_above: Option<f64>,
    pub critical_below: Option<f64>,
    pub warning_above: Option<f64>,
    pub warning_below: Option<f64>,
}

/// One checked point.
#[derive(Debug, Clone, PartialEq)]
pub struct Point {
    pub name: String,
    /// The quantity; `None` only for string points, which decode into
    /// [`crate::Decoded::info`] rather than into readings.
    pub q: Option<String>,
    pub table: Table,
    /// 0-based protocol address.
    pub address: u16,
    pub data_type: DataType,
    pub order: Order,
    /// String length in registers.
    pub length: u16,
    pub extract: Extract,
    /// The value is 1 when the (extracted) raw integer is one of these.
    pub flag_on: Vec<i64>,
    /// The value is 1 when the engineering value is above this.
    pub flag_above: Option<f64>,
    /// 1 becomes 0 and 0 becomes 1 (for "fault" bits that mean "ok" when set).
    pub invert: bool,
    /// Engineering value = raw / 2^binary_point * scale + offset.
    pub scale: f64,
    pub offset: f64,
    pub binary_point: u8,
    pub enum_names: BTreeMap<i64, String>,
    /// Raw values meaning "not available": the value is null, state unknown.
    pub not_available: Vec<i64>,
    pub rules: StateRules,
    pub nut: Option<String>,
    pub labels: BTreeMap<String, String>,
    pub sim_default: Option<SimValue>,
    /// Free text from the profile (e.g. why an address is in doubt).
    pub note: Option<String>,
}

impl Point {
    /// Registers (or bits) the point occupies.
    pub fn width(&self) -> u16 {
        match self.data_type {
            DataType::String => self.length,
            _ if self.table.is_bits() => 1,
            t => t.registers(),
        }
    }

    /// The last address the point occupies.
    pub fn end(&self) -> u16 {
        self.address.saturating_add(self.width().saturating_sub(1))
    }

    /// Whether the value is a 0/1 flag (then `invert` applies and no scaling).
    pub fn is_flag(&self) -> bool {
        self.data_type == DataType::Bool
            || matches!(self.extract, Extract::Bit(_))
            || !self.flag_on.is_empty()
            || self.flag_above.is_some()
    }

    fn same_view(&self, other: &Point) -> bool {
        self.extract == other.extract
            && self.flag_on == other.flag_on
            && self.flag_above == other.flag_above
            && self.invert == other.invert
    }
}

/// A device profile: metadata, request limits and points, all checked.
#[derive(Debug, Clone, PartialEq)]
pub struct Profile {
    pub device: DeviceSpec,
    pub limits: Limits,
    points: Vec<Point>,
    origin: String,
}

impl Profile {
    /// Parses and checks a profile. `origin` names it in errors (the file path,
    /// or the shipped profile's name).
    pub fn from_toml(text: &str, origin: &str) -> Result<Profile, ProfileError> {
        let file: FileSpec = toml::from_str(text).map_err(|e| ProfileError::Syntax {
            file: origin.to_owned(),
            message: e.to_string().trim_end().to_owned(),
        })?;
        let limits = check_limits(file.limits, origin)?;
        let mut points = Vec::with_capacity(file.point.len());
        let mut names = HashSet::new();
        for (index, table) in file.point.into_iter().enumerate() {
            let label = match table.get("name").and_then(|v| v.as_str()) {
                Some(name) => name.to_owned(),
                None => format!("#{}", index + 1),
            };
            let fail = |problem| ProfileError::Point {
                file: origin.to_owned(),
                point: label.clone(),
                problem,
            };
            let spec: PointSpec =
                toml::Value::Table(table)
                    .try_into()
                    .map_err(|e: toml::de::Error| {
                        fail(PointProblem::Invalid(e.message().to_owned()))
                    })?;
            let point = check_point(spec, &limits).map_err(fail)?;
            if !names.insert(point.name.clone()) {
                return Err(fail(PointProblem::DuplicateName));
            }
            points.push(point);
        }
        check_overlaps(&points).map_err(|(point, problem)| ProfileError::Point {
            file: origin.to_owned(),
            point,
            problem,
        })?;
        Ok(Profile {
            device: file.device,
            limits,
            points,
            origin: origin.to_owned(),
        })
    }

    pub fn points(&self) -> &[Point] {
        &self.points
    }

    pub fn point(&self, name: &str) -> Option<&Point> {
        self.points.iter().find(|p| p.name == name)
    }

    /// Where the profile came from, as given to [`Profile::from_toml`].
    pub fn origin(&self) -> &str {
        &self.origin
    }

    /// The class's required quantities that no point of this profile yields.
    pub fn missing_quantities(&self) -> Vec<&'static str> {
        self.device
            .class
            .required_quantities()
            .iter()
            .filter(|q| !self.points.iter().any(|p| p.q.as_deref() == Some(**q)))
            .copied()
            .collect()
    }
}

fn check_limits(spec: LimitsSpec, origin: &str) -> Result<Limits, ProfileError> {
    let fail = |message: String| ProfileError::Limits {
        file: origin.to_owned(),
        message,
    };
    let d = Limits::default();
    let limits = Limits {
        max_registers: spec.max_registers.unwrap_or(d.max_registers),
        max_bits: spec.max_bits.unwrap_or(d.max_bits),
        gap_fill: spec.gap_fill.unwrap_or(d.gap_fill),
        functions: spec.functions.unwrap_or(d.functions),
    };
    if !(1..=MAX_READ_REGISTERS).contains(&limits.max_registers) {
        return Err(fail(format!(
            "max_registers {} is outside 1..={MAX_READ_REGISTERS}",
            limits.max_registers
        )));
    }
    if !(1..=MAX_READ_BITS).contains(&limits.max_bits) {
        return Err(fail(format!(
            "max_bits {} is outside 1..={MAX_READ_BITS}",
            limits.max_bits
        )));
    }
    if let Some(bad) = limits.functions.iter().find(|f| !(1..=4).contains(*f)) {
        return Err(fail(format!(
            "function {bad} is not a read function (1, 2, 3 or 4)"
        )));
    }
    Ok(limits)
}

fn check_point(spec: PointSpec, limits: &Limits) -> Result<Point, PointProblem> {
    use PointProblem as P;
    if spec.name.is_empty() || spec.name.len() > sitewatch_protocol::limits::MAX_SENSOR_NAME_LEN {
        return Err(P::Invalid("name must be 1-128 characters".into()));
    }
    let table = Table::parse(&spec.table).ok_or_else(|| P::UnknownTable(spec.table.clone()))?;
    let data_type =
        DataType::parse(&spec.data_type).ok_or_else(|| P::UnknownType(spec.data_type.clone()))?;
    let order = match &spec.order {
        Some(o) => Order::parse(o).ok_or_else(|| P::UnknownOrder(o.clone()))?,
        None => Order::default(),
    };
    if table.is_bits() && data_type != DataType::Bool {
        return Err(P::TypeNotInTable {
            data_type: data_type.as_str(),
            table: table.as_str(),
        });
    }
    if !limits.functions.contains(&table.read_function()) {
        return Err(P::FunctionNotAllowed(table.read_function()));
    }
    let length = match (data_type, spec.length) {
        (DataType::String, Some(n)) if n > 0 => n,
        (DataType::String, _) => return Err(P::StringWithoutLength),
        (_, Some(_)) => return Err(P::LengthWithoutString),
        (_, None) => 0,
    };
    let q = match (spec.q, data_type) {
        (Some(q), _) if quantity::is_valid(&q) => Some(q),
        (Some(q), _) => return Err(P::BadQuantity(q)),
        (None, DataType::String) => None,
        (None, _) => return Err(P::MissingQuantity),
    };
    let extract = match (spec.bit, spec.bits) {
        (Some(_), Some(_)) => return Err(P::Conflict("`bit` and `bits` exclude each other")),
        (Some(b), None) => Extract::Bit(b),
        (None, Some([lo, hi])) if lo <= hi => Extract::Bits(lo, hi),
        (None, Some(_)) => return Err(P::Invalid("`bits` is [low, high] with low <= high".into())),
        (None, None) => Extract::Whole,
    };
    if extract != Extract::Whole {
        let width = data_type
            .integer_bits()
            .ok_or(P::Conflict("bit extraction needs an integer type"))?;
        let top = match extract {
            Extract::Bit(b) | Extract::Bits(_, b) => b,
            Extract::Whole => 0,
        };
        if top >= width {
            return Err(P::BitPastWidth { bit: top, width });
        }
    }
    let flag_on = spec.flag_on.unwrap_or_default();
    if !flag_on.is_empty() && (spec.flag_above.is_some() || matches!(extract, Extract::Bit(_))) {
        return Err(P::Conflict(
            "`flag_on` excludes `flag_above` and `bit` (use `bits` for a field)",
        ));
    }
    let not_available = spec.not_available.unwrap_or_default();
    let integer = data_type.integer_bits().is_some();
    if !flag_on.is_empty() && !integer && data_type != DataType::Bool {
        return Err(P::Conflict("`flag_on` needs an integer type"));
    }
    if !not_available.is_empty() && !integer {
        return Err(P::Conflict("`not_available` needs an integer type"));
    }
    let mut enum_names = BTreeMap::new();
    for (code, name) in spec.enum_names.unwrap_or_default() {
        let parsed = code
            .trim()
            .parse::<i64>()
            .map_err(|_| P::BadEnumCode(code.clone()))?;
        enum_names.insert(parsed, name);
    }
    if !enum_names.is_empty() && !integer {
        return Err(P::Conflict("`enum` needs an integer type"));
    }
    let scaled = spec.scale.is_some() || spec.offset.is_some() || spec.binary_point.is_some();
    let mut point = Point {
        name: spec.name,
        q,
        table,
        address: 0,
        data_type,
        order,
        length,
        extract,
        flag_on,
        flag_above: spec.flag_above,
        invert: spec.invert,
        scale: spec.scale.unwrap_or(1.0),
        offset: spec.offset.unwrap_or(0.0),
        binary_point: spec.binary_point.unwrap_or(0),
        enum_names,
        not_available,
        rules: StateRules {
            critical_if: spec.critical_if.map(|v| v.into_vec()).unwrap_or_default(),
            warning_if: spec.warning_if.map(|v| v.into_vec()).unwrap_or_default(),
            critical_above: spec.critical_above,
            critical_below: spec.critical_below,
            warning_above: spec.warning_above,
            warning_below: spec.warning_below,
        },
        nut: spec.nut,
        labels: spec.labels,
        sim_default: spec.sim_default,
        note: spec.note,
    };
    // flag_above judges the scaled value, so scaling stays allowed there.
    let plain_flag = point.is_flag() && point.flag_above.is_none();
    if scaled && (plain_flag || data_type == DataType::String) {
        return Err(P::Conflict(
            "scale, offset and binary_point do not apply to flags or strings",
        ));
    }
    if point.invert && !point.is_flag() {
        return Err(P::Conflict("`invert` applies only to flags"));
    }
    if !point.scale.is_finite() || point.scale == 0.0 || !point.offset.is_finite() {
        return Err(P::Invalid(
            "scale must be finite and non-zero, offset finite".into(),
        ));
    }
    if point.binary_point > 63 {
        return Err(P::Invalid("binary_point must be 0..=63".into()));
    }
    if spec.address > u32::from(u16::MAX) {
        return Err(P::AddressOutOfRange {
            address: spec.address,
            width: point.width(),
        });
    }
    point.address = spec.address as u16;
    let width = point.width();
    if spec.address + u32::from(width) - 1 > u32::from(u16::MAX) {
        return Err(P::AddressOutOfRange {
            address: spec.address,
            width,
        });
    }
    let max = if table.is_bits() {
        limits.max_bits
    } else {
        limits.max_registers
    };
    if width > max {
        return Err(P::TooWide { width, max });
    }
    Ok(point)
}

/// Two points may share registers only as views of the very same span (same
/// table, address, type and order: e.g. several bits of one status word, or a
/// speed and a "running" flag derived from it). A partial overlap is almost
/// always a transcription slip, so it is refused.
fn check_overlaps(points: &[Point]) -> Result<(), (String, PointProblem)> {
    let mut sorted: Vec<&Point> = points.iter().collect();
    sorted.sort_by_key(|p| (p.table, p.address, p.end()));
    for (i, a) in sorted.iter().enumerate() {
        for b in sorted[i + 1..].iter() {
            if b.table != a.table || b.address > a.end() {
                break;
            }
            let same_span = a.address == b.address
                && a.width() == b.width()
                && a.data_type == b.data_type
                && a.order == b.order;
            if !same_span {
                return Err((b.name.clone(), PointProblem::Overlap(a.name.clone())));
            }
            if a.same_view(b) {
                return Err((b.name.clone(), PointProblem::Duplicate(a.name.clone())));
            }
        }
    }
    Ok(())
}
