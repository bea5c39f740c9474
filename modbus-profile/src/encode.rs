//! Engineering values -> registers: how the simulator builds a live image of a
//! device from its profile. The exact inverse of [`crate::decode`] for every
//! value the device could hold.

use sitewatch_protocol::quantity as q;

use crate::codec::{Raw, encode_words};
use crate::decode::{field, read_raw};
use crate::error::EncodeError;
use crate::image::RegisterImage;
use crate::profile::{Extract, Point, Profile};
use crate::spec::SimValue;
use crate::types::DataType;

/// The text of a [`SimValue`] that writes the point's first "not available" value.
pub const NOT_AVAILABLE: &str = "not_available";

impl Profile {
    /// Writes `value` (engineering units; 0/1 for flags) into the point's
    /// registers, leaving other views of the same registers intact.
    pub fn encode(
        &self,
        name: &str,
        value: &SimValue,
        image: &mut RegisterImage,
    ) -> Result<(), EncodeError> {
        let point = self
            .point(name)
            .ok_or_else(|| EncodeError::UnknownPoint(name.to_owned()))?;
        encode_point(point, value, image)
    }

    /// An image of the device in good health: each point at its `sim_default`,
    /// or at a healthy value derived from its quantity.
    pub fn default_image(&self) -> Result<RegisterImage, EncodeError> {
        let mut image = RegisterImage::new();
        // Zero every register first so that views of one register (bits of a
        // status word) start from a defined word.
        for p in self.points() {
            if p.table.is_bits() {
                image.set_bits(p.table, p.address, &[false]);
            } else {
                image.set_words(p.table, p.address, &vec![0; usize::from(p.width())]);
            }
        }
        for p in self.points() {
            encode_point(p, &healthy_value(p), &mut image)?;
        }
        Ok(image)
    }
}

/// The point's `sim_default`, or a value a healthy device of its kind reports.
pub fn healthy_value(point: &Point) -> SimValue {
    if let Some(v) = &point.sim_default {
        return v.clone();
    }
    if point.data_type == DataType::String {
        return SimValue::Text(format!("SIM-{}", point.name.to_uppercase()));
    }
    let v = match point.q.as_deref().unwrap_or_default() {
        q::MAINS_AVAILABLE | q::COOLING_UNIT_RUNNING | q::PSU_OK => 1.0,
        q::UPS_BATTERY_CHARGE_RATIO => 1.0,
        q::UPS_BATTERY_RUNTIME_SECONDS => 1800.0,
        q::UPS_LOAD_RATIO => 0.35,
        q::GENERATOR_FUEL_RATIO => 0.9,
        q::SUPPLY_AIR_TEMPERATURE_CELSIUS => 18.0,
        q::RETURN_AIR_TEMPERATURE_CELSIUS => 28.0,
        q::TEMPERATURE_CELSIUS | q::INLET_TEMPERATURE_CELSIUS => 22.5,
        q::HUMIDITY_RATIO => 0.45,
        q::VOLTAGE_VOLTS => 230.0,
        q::FREQUENCY_HERTZ => 50.0,
        _ => 0.0,
    };
    SimValue::Number(v)
}

fn wrong(point: &Point, expected: &'static str) -> EncodeError {
    EncodeError::WrongKind {
        point: point.name.clone(),
        expected,
    }
}

fn encode_point(
    point: &Point,
    value: &SimValue,
    image: &mut RegisterImage,
) -> Result<(), EncodeError> {
    let out_of_range = |value: f64| EncodeError::OutOfRange {
        point: point.name.clone(),
        value,
    };
    let raw_value: i128 = match value {
        SimValue::Text(t) if point.data_type == DataType::String => {
            let words = encode_words(
                &Raw::Text(t.clone()),
                point.data_type,
                point.order,
                point.width(),
            )
            .ok_or_else(|| wrong(point, "text"))?;
            image.set_words(point.table, point.address, &words);
            return Ok(());
        }
        SimValue::Text(t) if t == NOT_AVAILABLE => {
            let sentinel = *point
                .not_available
                .first()
                .ok_or_else(|| EncodeError::NoSentinel {
                    point: point.name.clone(),
                })?;
            return write_whole(point, Raw::Signed(sentinel), image).or_else(|_| {
                // A sentinel written as register bits (0xFFFF for an i16).
                let bits = point.data_type.integer_bits().unwrap_or(64);
                let signed = if bits < 64 && sentinel >= 1 << (bits - 1) {
                    sentinel - (1 << bits)
                } else {
                    sentinel
                };
                write_whole(point, Raw::Signed(signed), image)
            });
        }
        SimValue::Text(_) => return Err(wrong(point, "a number")),
        SimValue::Number(_) if point.data_type == DataType::String => {
            return Err(wrong(point, "text"));
        }
        SimValue::Number(v) if !v.is_finite() => return Err(out_of_range(*v)),
        SimValue::Number(v) => {
            let mut v = *v;
            if point.invert {
                v = 1.0 - v;
            }
            let on = v >= 0.5;
            if let Some(threshold) = point.flag_above {
                // The flag is all the simulator is told; it writes a value
                // plainly on the right side of the threshold.
                let current = current_flag(point, image);
                if current == Some(on) {
                    return Ok(());
                }
                v = if on {
                    threshold + threshold.abs().max(1.0)
                } else {
                    0.0_f64.min(threshold - 1.0)
                };
            } else if !point.flag_on.is_empty() {
                if current_flag(point, image) == Some(on) {
                    return Ok(());
                }
                let code = if on {
                    point.flag_on[0]
                } else {
                    (0..).find(|c| !point.flag_on.contains(c)).unwrap_or(0)
                };
                return write_extracted(point, code as i128, image);
            } else if point.is_flag() {
                return write_extracted(point, i128::from(on), image);
            }
            if point.data_type.is_float() {
                let raw =
                    (v - point.offset) / point.scale * 2f64.powi(i32::from(point.binary_point));
                return write_whole(point, Raw::Float(raw), image);
            }
            let raw = ((v - point.offset) / point.scale * 2f64.powi(i32::from(point.binary_point)))
                .round();
            if !(raw >= i128::MIN as f64 && raw <= i128::MAX as f64) {
                return Err(out_of_range(v));
            }
            raw as i128
        }
    };
    write_extracted(point, raw_value, image).map_err(|_| out_of_range(raw_value as f64))
}

/// The point's current flag value in the image (before `invert`), if it reads.
fn current_flag(point: &Point, image: &RegisterImage) -> Option<bool> {
    let raw = read_raw(point, image)?;
    let value = crate::decode::engineering(point, &raw, None)?;
    let value = if point.invert { 1.0 - value } else { value };
    Some(value >= 0.5)
}

/// Writes an integer into the point's bit, bit field or whole value.
fn write_extracted(
    point: &Point,
    value: i128,
    image: &mut RegisterImage,
) -> Result<(), EncodeError> {
    let range = || EncodeError::OutOfRange {
        point: point.name.clone(),
        value: value as f64,
    };
    if point.table.is_bits() {
        image.set_bits(point.table, point.address, &[value != 0]);
        return Ok(());
    }
    let (lo, hi) = match point.extract {
        Extract::Whole => {
            let raw = if point.data_type.is_signed() {
                Raw::Signed(i64::try_from(value).map_err(|_| range())?)
            } else if value < 0 {
                return Err(range());
            } else {
                Raw::Unsigned(u64::try_from(value).map_err(|_| range())?)
            };
            return write_whole(point, raw, image);
        }
        Extract::Bit(b) => (b, b),
        Extract::Bits(lo, hi) => (lo, hi),
    };
    let field_max = field(u64::MAX, lo, hi);
    let value = u64::try_from(value)
        .ok()
        .filter(|v| *v <= field_max)
        .ok_or_else(range)?;
    let current = match read_raw(point, image) {
        Some(Raw::Unsigned(u)) => u,
        Some(Raw::Signed(i)) => {
            let bits = point.data_type.integer_bits().unwrap_or(64);
            (i as u64) & field(u64::MAX, 0, bits - 1)
        }
        _ => 0,
    };
    let mask = field_max << lo;
    let bits = (current & !mask) | (value << lo);
    let raw = if point.data_type.is_signed() {
        let width = point.data_type.integer_bits().unwrap_or(64);
        let signed = if width < 64 && bits >= 1 << (width - 1) {
            bits as i64 - (1i64 << width)
        } else {
            bits as i64
        };
        Raw::Signed(signed)
    } else {
        Raw::Unsigned(bits)
    };
    write_whole(point, raw, image)
}

fn write_whole(point: &Point, raw: Raw, image: &mut RegisterImage) -> Result<(), EncodeError> {
    let words =
        encode_words(&raw, point.data_type, point.order, point.width()).ok_or_else(|| {
            EncodeError::OutOfRange {
                point: point.name.clone(),
                value: match raw {
                    Raw::Unsigned(u) => u as f64,
                    Raw::Signed(i) => i as f64,
                    Raw::Float(f) => f,
                    Raw::Text(_) => f64::NAN,
                },
            }
        })?;
    image.set_words(point.table, point.address, &words);
    Ok(())
}
