//! Walked values -> readings (pure). A missing value is an unknown reading; a
//! value of the wrong type is an unknown reading and a counted malformed value,
//! never a failed poll.

use std::collections::{BTreeMap, BTreeSet};

use sitewatch_protocol::{Reading, ReadingState, limits};

use crate::profile::{CodeFrom, Oid, Profile, Rules, Table, oid_string};

/// One varbind's value, as the profile cares about it.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// INTEGER.
    Int(i64),
    /// Gauge32, Counter32, Counter64, TimeTicks, Unsigned32.
    Unsigned(u64),
    /// OCTET STRING.
    Text(Vec<u8>),
    /// OBJECT IDENTIFIER.
    Oid(Oid),
    /// IpAddress, Opaque and the like: never a number.
    Other(&'static str),
    /// noSuchObject, noSuchInstance, endOfMibView.
    Missing,
}

/// Everything one poll read: OID -> value, and which scalars and columns
/// were answered (an empty alarm table reads "no alarm"; an unread one is
/// unknown).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Walked {
    pub values: BTreeMap<Oid, Value>,
    pub answered: BTreeSet<Oid>,
}

impl Walked {
    pub fn insert(&mut self, oid: Oid, value: Value) {
        self.answered.insert(oid.clone());
        self.values.insert(oid, value);
    }

    /// Records that the agent answered for `oid` (a walked column, even an
    /// empty one).
    pub fn answered(&mut self, oid: Oid) {
        self.answered.insert(oid);
    }

    /// The rows under a column: (index suffix, value).
    fn column<'a>(
        &'a self,
        column: &'a [u32],
    ) -> impl Iterator<Item = (&'a [u32], &'a Value)> + 'a {
        self.values
            .range(column.to_vec()..)
            .take_while(move |(oid, _)| oid.starts_with(column))
            .map(move |(oid, v)| (&oid[column.len()..], v))
            .filter(|(suffix, _)| !suffix.is_empty())
    }

    fn at(&self, column: &[u32], suffix: &[u32]) -> Option<&Value> {
        let mut oid = column.to_vec();
        oid.extend_from_slice(suffix);
        self.values.get(&oid)
    }
}

/// What a poll's values became.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Decoded {
    pub readings: Vec<Reading>,
    /// Values of the wrong type, one line each (point and what came).
    pub malformed: Vec<String>,
}

/// A raw value, as a number and (for integers) a code.
struct Raw {
    number: f64,
    code: Option<i64>,
}

fn raw(value: &Value, rules: &Rules, answered: bool) -> Result<Option<Raw>, String> {
    if rules.present {
        if !answered {
            return Ok(None);
        }
        let present = !matches!(value, Value::Missing);
        return Ok(Some(Raw {
            number: f64::from(u8::from(present)),
            code: Some(i64::from(present)),
        }));
    }
    match value {
        Value::Missing => Ok(None),
        Value::Int(i) => Ok(Some(Raw {
            number: *i as f64,
            code: Some(*i),
        })),
        Value::Unsigned(u) => Ok(Some(Raw {
            number: *u as f64,
            code: i64::try_from(*u).ok(),
        })),
        Value::Text(bytes) if rules.text => {
            let text = String::from_utf8_lossy(bytes);
            let number: f64 = text
                .trim()
                .parse()
                .map_err(|_| format!("the text {:?} is not a number", truncate(&text, 32)))?;
            if !number.is_finite() {
                return Err("a non-finite number".into());
            }
            Ok(Some(Raw {
                number,
                code: (number.fract() == 0.0).then_some(number as i64),
            }))
        }
        Value::Text(_) => Err("an OCTET STRING where a number was expected".into()),
        Value::Oid(_) => Err("an OBJECT IDENTIFIER where a number was expected".into()),
        Value::Other(kind) => Err(format!(
            "a value of type {kind} where a number was expected"
        )),
    }
}

fn truncate(s: &str, n: usize) -> String {
    s.chars().take(n).collect()
}

impl Rules {
    /// `unknown` without a value; otherwise critical before warning, else ok.
    pub fn judge(&self, value: Option<f64>) -> ReadingState {
        let Some(v) = value else {
            return ReadingState::Unknown;
        };
        let critical = self.critical_if.contains(&v)
            || self.critical_above.is_some_and(|t| v > t)
            || self.critical_below.is_some_and(|t| v < t);
        let warning = self.warning_if.contains(&v)
            || self.warning_above.is_some_and(|t| v > t)
            || self.warning_below.is_some_and(|t| v < t);
        match (critical, warning) {
            (true, _) => ReadingState::Critical,
            (false, true) => ReadingState::Warning,
            _ => ReadingState::Ok,
        }
    }

    /// The final value and the enum text, from a raw value; `exponent` is the
    /// RFC 3433 power of ten for entity sensors (0 otherwise).
    fn evaluate(&self, raw: &Raw, exponent: i32) -> (Option<f64>, Option<String>) {
        if raw.code.is_some_and(|c| self.not_available.contains(&c)) {
            return (None, None);
        }
        let text = raw.code.and_then(|c| self.enum_names.get(&c).cloned());
        let mut v = if self.flag_on.is_empty() {
            raw.number * 10f64.powi(exponent) * self.scale + self.offset
        } else {
            f64::from(u8::from(
                raw.code.is_some_and(|c| self.flag_on.contains(&c)),
            ))
        };
        if let Some(t) = self.flag_above {
            v = f64::from(u8::from(v > t));
        }
        if self.invert {
            v = 1.0 - v;
        }
        (v.is_finite().then_some(v), text)
    }
}

/// Adds labels while the reading has room for them (the protocol's limit).
fn label(mut r: Reading, key: &str, value: impl Into<String>) -> Reading {
    if r.labels.len() < limits::MAX_LABELS {
        let v: String = value.into();
        r = r.with_label(key, truncate(&v, limits::MAX_LABEL_VALUE_LEN));
    }
    r
}

fn reading(
    src: &str,
    dev: &str,
    name: String,
    q: &str,
    rules: &Rules,
    value: Option<f64>,
    text: Option<String>,
) -> Reading {
    let mut r = Reading::new(src, dev, name, q, value, rules.judge(value));
    if let Some(t) = text {
        r = label(r, "text", t);
    }
    if let Some(nut) = &rules.nut {
        r = label(r, "nut", nut.clone());
    }
    for (k, v) in &rules.labels {
        r = label(r, k, v.clone());
    }
    r
}

impl Profile {
    /// The readings of one poll's values, `dev` being the device's name.
    pub fn decode(&self, walked: &Walked, src: &str, dev: &str) -> Decoded {
        let mut out = Decoded::default();
        for s in &self.scalars {
            let Some(q) = &s.rules.q else { continue };
            let value = walked.values.get(&s.oid).unwrap_or(&Value::Missing);
            let (v, text) = match raw(value, &s.rules, walked.answered.contains(&s.oid)) {
                Ok(Some(r)) => s.rules.evaluate(&r, 0),
                Ok(None) => (None, None),
                Err(e) => {
                    out.malformed
                        .push(format!("{} ({}): {e}", s.name, oid_string(&s.oid)));
                    (None, None)
                }
            };
            out.readings
                .push(reading(src, dev, s.name.clone(), q, &s.rules, v, text));
        }
        for t in &self.tables {
            decode_table(t, walked, src, dev, &mut out);
        }
        for a in &self.alarms {
            let Some(q) = &a.rules.q else { continue };
            let listed = walked
                .column(&a.column)
                .any(|(_, v)| matches!(v, Value::Oid(o) if *o == a.value));
            let raw = Raw {
                number: f64::from(u8::from(listed)),
                code: Some(i64::from(listed)),
            };
            let (v, text) = if walked.answered.contains(&a.column) {
                a.rules.evaluate(&raw, 0)
            } else {
                (None, None)
            };
            out.readings
                .push(reading(src, dev, a.name.clone(), q, &a.rules, v, text));
        }
        out
    }
}

fn index_labels(t: &Table, suffix: &[u32]) -> Vec<(String, String)> {
    if t.index.len() == suffix.len() && !t.index.is_empty() {
        t.index
            .iter()
            .zip(suffix)
            .map(|(k, v)| (k.clone(), v.to_string()))
            .collect()
    } else {
        vec![("index".to_owned(), oid_string(suffix))]
    }
}

fn label_text(value: &Value, enum_names: &BTreeMap<i64, String>) -> Option<String> {
    match value {
        Value::Text(b) => Some(
            String::from_utf8_lossy(b)
                .trim_matches(|c: char| c.is_whitespace() || c == '\0')
                .to_owned(),
        ),
        Value::Int(i) => Some(enum_names.get(i).cloned().unwrap_or_else(|| i.to_string())),
        Value::Unsigned(u) => Some(u.to_string()),
        _ => None,
    }
}

fn code(value: Option<&Value>) -> Option<i64> {
    match value? {
        Value::Int(i) => Some(*i),
        Value::Unsigned(u) => i64::try_from(*u).ok(),
        _ => None,
    }
}

fn decode_table(t: &Table, walked: &Walked, src: &str, dev: &str, out: &mut Decoded) {
    let rows: BTreeSet<Vec<u32>> = t
        .columns
        .iter()
        .flat_map(|c| walked.column(&c.oid).map(|(s, _)| s.to_vec()))
        .collect();
    for suffix in rows {
        let skipped = t
            .skip
            .iter()
            .any(|s| code(walked.at(&s.oid, &suffix)).is_some_and(|c| s.values.contains(&c)));
        if skipped {
            continue;
        }
        let mut labels = index_labels(t, &suffix);
        for l in &t.labels {
            if let Some(text) = walked
                .at(&l.oid, &suffix)
                .and_then(|v| label_text(v, &l.enum_names))
            {
                labels.push((l.name.clone(), text));
            }
        }
        let index = oid_string(&suffix);
        for c in &t.columns {
            let q = match &c.q_by {
                None => c.rules.q.clone(),
                Some((from, map)) => {
                    let k = match from {
                        CodeFrom::Column(oid) => code(walked.at(oid, &suffix)),
                        CodeFrom::Index(i) => suffix.get(*i).map(|x| i64::from(*x)),
                    };
                    k.and_then(|k| map.get(&k).cloned())
                }
            };
            let q = c
                .q_if
                .iter()
                .find(|qi| {
                    labels.iter().any(|(k, v)| {
                        *k == qi.label && {
                            let v = v.to_lowercase();
                            qi.contains.iter().any(|w| v.contains(w.as_str()))
                        }
                    })
                })
                .map(|qi| qi.q.clone())
                .or(q);
            let Some(q) = q else { continue };
            let value = walked.at(&c.oid, &suffix).unwrap_or(&Value::Missing);
            let exponent = c.entity_scale.as_ref().map_or(Some(0), |(s, p)| {
                let scale = code(walked.at(s, &suffix))?;
                let precision = code(walked.at(p, &suffix))?;
                // Any INTEGER on the wire: a lying agent's extremes are no number, not an overflow.
                let exponent = scale
                    .checked_sub(9)?
                    .checked_mul(3)?
                    .checked_sub(precision)?;
                i32::try_from(exponent).ok()
            });
            let exponent = match (&c.decimals, exponent) {
                (Some(d), Some(e)) => code(walked.at(d, &suffix))
                    .and_then(|digits| i32::try_from(digits).ok())
                    .and_then(|digits| e.checked_sub(digits)),
                (_, e) => e,
            };
            let (v, text) = match (raw(value, &c.rules, true), exponent) {
                (Ok(Some(r)), Some(e)) => c.rules.evaluate(&r, e),
                (Ok(_), _) => (None, None),
                (Err(e), _) => {
                    out.malformed
                        .push(format!("{}.{index} ({}): {e}", c.name, oid_string(&c.oid)));
                    (None, None)
                }
            };
            let mut r = reading(
                src,
                dev,
                format!("{}.{index}", c.name),
                &q,
                &c.rules,
                v,
                text,
            );
            for (k, val) in &labels {
                r = label(r, k, val.clone());
            }
            out.readings.push(r);
        }
    }
}
