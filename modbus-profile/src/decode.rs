//! Register image -> point values that map one to one onto wire readings.

use std::collections::BTreeMap;

use sitewatch_protocol::{Reading, ReadingState};

use crate::codec::{Raw, decode_words};
use crate::image::RegisterImage;
use crate::profile::{Extract, Point, Profile};
use crate::types::DataType;

/// The reading `src` of every Modbus value.
pub const SOURCE: &str = "modbus";
/// Label carrying the NUT variable a point corresponds to.
pub const NUT_LABEL: &str = "nut";
/// Label carrying the name of an enum code.
pub const TEXT_LABEL: &str = "text";

/// One decoded point: a reading without its device name.
#[derive(Debug, Clone, PartialEq)]
pub struct PointValue {
    pub name: String,
    pub q: String,
    /// `None` when the registers were not read or hold a "not available" value.
    pub value: Option<f64>,
    pub state: ReadingState,
    pub labels: BTreeMap<String, String>,
}

impl PointValue {
    /// The wire reading of this value for device `dev`.
    pub fn to_reading(&self, dev: &str) -> Reading {
        let mut r = Reading::new(
            SOURCE,
            dev,
            self.name.clone(),
            self.q.clone(),
            self.value,
            self.state,
        );
        r.labels = self.labels.clone();
        r
    }
}

/// Everything decoded from one image.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Decoded {
    /// One per numeric point, in profile order.
    pub values: Vec<PointValue>,
    /// String points (model, serial, firmware) by name; unread ones are absent.
    pub info: BTreeMap<String, String>,
}

impl Decoded {
    pub fn value(&self, name: &str) -> Option<&PointValue> {
        self.values.iter().find(|v| v.name == name)
    }

    /// All values as wire readings of device `dev`.
    pub fn readings(&self, dev: &str) -> Vec<Reading> {
        self.values.iter().map(|v| v.to_reading(dev)).collect()
    }
}

impl Profile {
    /// Decodes every point from `image`.
    pub fn decode(&self, image: &RegisterImage) -> Decoded {
        let mut out = Decoded::default();
        for point in self.points() {
            match read_raw(point, image) {
                Some(Raw::Text(text)) => {
                    out.info.insert(point.name.clone(), text);
                }
                _ if point.data_type == DataType::String => {}
                raw => out.values.push(decode_point(point, raw)),
            }
        }
        out
    }
}

/// The raw value of a point, or `None` when its registers are not in the image.
pub(crate) fn read_raw(point: &Point, image: &RegisterImage) -> Option<Raw> {
    if point.table.is_bits() {
        return image
            .bit(point.table, point.address)
            .map(|b| Raw::Unsigned(u64::from(b)));
    }
    let words = image.words(point.table, point.address, point.width())?;
    Some(decode_words(&words, point.data_type, point.order))
}

/// Bits `lo..=hi` of `raw`.
pub(crate) fn field(raw: u64, lo: u8, hi: u8) -> u64 {
    let width = u32::from(hi - lo) + 1;
    let mask = if width >= 64 {
        u64::MAX
    } else {
        (1u64 << width) - 1
    };
    (raw >> lo) & mask
}

/// The integer bits of a raw value as the register holds them (two's
/// complement for signed types), for bit extraction.
fn raw_bits(raw: &Raw, point: &Point) -> Option<u64> {
    match raw {
        Raw::Unsigned(u) => Some(*u),
        Raw::Signed(i) => {
            let bits = point.data_type.integer_bits()?;
            let mask = if bits >= 64 {
                u64::MAX
            } else {
                (1u64 << bits) - 1
            };
            Some((*i as u64) & mask)
        }
        _ => None,
    }
}

fn is_sentinel(point: &Point, raw: &Raw) -> bool {
    if point.not_available.is_empty() {
        return false;
    }
    // A sentinel matches the signed value or the register bits: 0xFFFF and -1
    // both name the all-ones word of an i16.
    let signed = raw.as_i64();
    let bits = raw_bits(raw, point).map(|b| b as i64);
    point
        .not_available
        .iter()
        .any(|s| Some(*s) == signed || Some(*s) == bits)
}

fn decode_point(point: &Point, raw: Option<Raw>) -> PointValue {
    let mut labels = point.labels.clone();
    if let Some(nut) = &point.nut {
        labels.insert(NUT_LABEL.to_owned(), nut.clone());
    }
    let value = raw.and_then(|raw| engineering(point, &raw, Some(&mut labels)));
    PointValue {
        name: point.name.clone(),
        q: point.q.clone().unwrap_or_default(),
        value,
        state: point.rules.judge(value),
        labels,
    }
}

/// The engineering value of a raw value; enum names go into `labels` if given.
pub(crate) fn engineering(
    point: &Point,
    raw: &Raw,
    labels: Option<&mut BTreeMap<String, String>>,
) -> Option<f64> {
    if is_sentinel(point, raw) {
        return None;
    }
    let mut value = match (&point.extract, raw) {
        (Extract::Bit(b), r) => field(raw_bits(r, point)?, *b, *b) as f64,
        (Extract::Bits(lo, hi), r) => field(raw_bits(r, point)?, *lo, *hi) as f64,
        (Extract::Whole, Raw::Unsigned(u)) => *u as f64,
        (Extract::Whole, Raw::Signed(i)) => *i as f64,
        (Extract::Whole, Raw::Float(f)) => *f,
        (Extract::Whole, Raw::Text(_)) => return None,
    };
    if let (Some(labels), Some(name)) = (labels, point.enum_names.get(&(value as i64))) {
        labels.insert(TEXT_LABEL.to_owned(), name.clone());
    }
    if !point.flag_on.is_empty() {
        value = f64::from(u8::from(point.flag_on.contains(&(value as i64))));
    } else if !point.is_flag() || point.flag_above.is_some() {
        value = apply_scale(
            value / 2f64.powi(i32::from(point.binary_point)),
            point.scale,
        ) + point.offset;
    }
    if let Some(threshold) = point.flag_above {
        value = f64::from(u8::from(value > threshold));
    }
    if point.invert {
        value = 1.0 - value;
    }
    value.is_finite().then_some(value)
}

/// `value * scale`, but dividing by 10, 100, ... when the scale is their
/// inverse: 35 * 0.01 is 0.35000000000000003 in binary floating point, while
/// 35 / 100 is the double nearest 0.35, which is what the device meant.
pub(crate) fn apply_scale(value: f64, scale: f64) -> f64 {
    let inverse = 1.0 / scale;
    if scale.abs() < 1.0 && (inverse - inverse.round()).abs() < 1e-9 {
        value / inverse.round()
    } else {
        value * scale
    }
}
