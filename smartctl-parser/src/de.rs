//! Lenient deserialisation helpers.
//!
//! smartctl's JSON is not a stable schema: field types changed between releases
//! (numbers printed as strings, 64-bit counters mirrored into `KEY_s` strings, values
//! larger than a double can hold), and one odd field must not cost us the whole disk.
//! Every scalar in this crate therefore goes through these helpers, which turn
//! anything unexpected into `None` instead of an error.

use serde::{Deserialize, Deserializer};
use serde_json::{Map, Value};

/// Any JSON value as a non-negative integer: integers, integral strings
/// (`"535"`, `" 12 "`) and finite non-negative floats (truncated, saturating at
/// `u64::MAX`). Everything else is `None`.
pub(crate) fn value_to_u64(v: &Value) -> Option<u64> {
    match v {
        Value::Number(n) => {
            if let Some(u) = n.as_u64() {
                Some(u)
            } else if n.is_i64() {
                None // negative
            } else {
                n.as_f64().and_then(float_to_u64)
            }
        }
        Value::String(s) => {
            let s = s.trim();
            s.parse::<u64>()
                .ok()
                .or_else(|| s.parse::<f64>().ok().and_then(float_to_u64))
        }
        _ => None,
    }
}

fn float_to_u64(f: f64) -> Option<u64> {
    if f.is_finite() && f >= 0.0 {
        // `as` saturates for floats above u64::MAX, which is what we want for a
        // counter that smartctl could only print approximately.
        Some(f as u64)
    } else {
        None
    }
}

/// Any JSON value as a signed integer (temperatures can be negative).
pub(crate) fn value_to_i64(v: &Value) -> Option<i64> {
    match v {
        Value::Number(n) => n.as_i64().or_else(|| {
            n.as_f64()
                .filter(|f| f.is_finite() && *f >= i64::MIN as f64 && *f <= i64::MAX as f64)
                .map(|f| f as i64)
        }),
        Value::String(s) => s.trim().parse::<i64>().ok(),
        _ => None,
    }
}

pub(crate) fn value_to_f64(v: &Value) -> Option<f64> {
    let f = match v {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => s.trim().parse::<f64>().ok(),
        _ => None,
    }?;
    f.is_finite().then_some(f)
}

pub(crate) fn value_to_string(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

pub(crate) fn u64_opt<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
    Ok(value_to_u64(&Value::deserialize(d)?))
}

pub(crate) fn i64_opt<'de, D: Deserializer<'de>>(d: D) -> Result<Option<i64>, D::Error> {
    Ok(value_to_i64(&Value::deserialize(d)?))
}

pub(crate) fn u8_opt<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u8>, D::Error> {
    Ok(value_to_u64(&Value::deserialize(d)?).and_then(|u| u8::try_from(u).ok()))
}

pub(crate) fn f64_opt<'de, D: Deserializer<'de>>(d: D) -> Result<Option<f64>, D::Error> {
    Ok(value_to_f64(&Value::deserialize(d)?))
}

pub(crate) fn bool_opt<'de, D: Deserializer<'de>>(d: D) -> Result<Option<bool>, D::Error> {
    Ok(match Value::deserialize(d)? {
        Value::Bool(b) => Some(b),
        _ => None,
    })
}

pub(crate) fn string_opt<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    Ok(value_to_string(&Value::deserialize(d)?))
}

/// A list whose malformed elements are dropped one by one instead of failing the list.
pub(crate) fn lenient_vec<'de, D, T>(d: D) -> Result<Vec<T>, D::Error>
where
    D: Deserializer<'de>,
    T: serde::de::DeserializeOwned,
{
    Ok(match Value::deserialize(d)? {
        Value::Array(items) => items
            .into_iter()
            .filter_map(|item| serde_json::from_value(item).ok())
            .collect(),
        _ => Vec::new(),
    })
}

/// `{"value": N, "string": "..."}`, the shape smartctl uses for coded fields
/// (self-test type and status, form factor, ...). Either half may be missing.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Deserialize)]
#[serde(default)]
pub(crate) struct Coded {
    #[serde(deserialize_with = "u64_opt")]
    pub value: Option<u64>,
    #[serde(deserialize_with = "string_opt")]
    pub string: Option<String>,
}

/// Folds smartctl's `KEY_s` string mirrors back into `KEY`, in place, everywhere.
///
/// smartctl writes a 64/128-bit counter as the number `KEY` and, when a JSON double
/// cannot hold it exactly (or with `--json=v`), also as the decimal string `KEY_s`.
/// The string is the exact value, so where it fits a `u64` it replaces `KEY`; where
/// it does not (128-bit NVMe data units), `KEY` keeps smartctl's approximation.
pub(crate) fn fold_string_mirrors(v: &mut Value) {
    match v {
        Value::Object(map) => {
            fold_object(map);
            for child in map.values_mut() {
                fold_string_mirrors(child);
            }
        }
        Value::Array(items) => items.iter_mut().for_each(fold_string_mirrors),
        _ => {}
    }
}

fn fold_object(map: &mut Map<String, Value>) {
    let exact: Vec<(String, u64)> = map
        .iter()
        .filter_map(|(k, v)| {
            let base = k.strip_suffix("_s")?;
            let n = v.as_str()?.trim().parse::<u64>().ok()?;
            Some((base.to_owned(), n))
        })
        .collect();
    for (base, n) in exact {
        map.insert(base, Value::from(n));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn integers_strings_and_floats_become_u64() {
        assert_eq!(value_to_u64(&json!(535)), Some(535));
        assert_eq!(value_to_u64(&json!("535")), Some(535));
        assert_eq!(value_to_u64(&json!(" 7 ")), Some(7));
        assert_eq!(value_to_u64(&json!(1e30)), Some(u64::MAX));
        assert_eq!(value_to_u64(&json!("11523.849")), Some(11523));
    }

    #[test]
    fn negative_and_non_numeric_values_are_none() {
        assert_eq!(value_to_u64(&json!(-1)), None);
        assert_eq!(value_to_u64(&json!("n/a")), None);
        assert_eq!(value_to_u64(&json!(null)), None);
        assert_eq!(value_to_u64(&json!({"value": 1})), None);
        assert_eq!(value_to_u64(&json!(true)), None);
    }

    #[test]
    fn string_mirror_replaces_the_approximate_number() {
        let mut v =
            json!({"a": {"read": {"n": 1.8446744073709552e19, "n_s": "18446744073709551615"}}});
        fold_string_mirrors(&mut v);
        assert_eq!(v["a"]["read"]["n"], json!(u64::MAX));
    }

    #[test]
    fn string_mirror_without_number_creates_the_number() {
        let mut v = json!([{"total_uncorrected_errors_s": "12"}]);
        fold_string_mirrors(&mut v);
        assert_eq!(v[0]["total_uncorrected_errors"], json!(12));
    }

    #[test]
    fn string_mirror_too_large_for_u64_keeps_the_approximation() {
        let mut v = json!({"data_units_read": 3.4e38, "data_units_read_s": "340282366920938463463374607431768211455"});
        fold_string_mirrors(&mut v);
        assert_eq!(v["data_units_read"], json!(3.4e38));
    }
}
