//! A checked profile: OIDs parsed, names unique, rules consistent, the class's
//! quantities present. Errors name the file and the point.

use std::collections::{BTreeMap, BTreeSet};

use sitewatch_protocol::{Severity, limits, quantity};

use crate::spec::{Class, ColumnSpec, DeviceSpec, ProfileSpec, RulesSpec};

/// An OID as its arcs.
pub type Oid = Vec<u32>;

/// Parses `1.3.6.1...` (a leading `.` allowed).
pub fn parse_oid(s: &str) -> Result<Oid, String> {
    let body = s.strip_prefix('.').unwrap_or(s);
    let arcs: Result<Vec<u32>, _> = body.split('.').map(str::parse::<u32>).collect();
    match arcs {
        Ok(a) if a.len() >= 2 && a[0] <= 2 => Ok(a),
        _ => Err(format!(
            "{s:?} is not a numeric OID such as 1.3.6.1.2.1.33.1.2.1.0"
        )),
    }
}

/// `1.3.6.1...` text of an OID.
pub fn oid_string(oid: &[u32]) -> String {
    oid.iter().map(u32::to_string).collect::<Vec<_>>().join(".")
}

/// Why a profile was refused: the file, the point and what is wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{origin}: {}{message}", point.as_ref().map(|p| format!("point `{p}`: ")).unwrap_or_default())]
pub struct ProfileError {
    pub origin: String,
    pub point: Option<String>,
    pub message: String,
}

/// How a raw value becomes a reading.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Rules {
    pub q: Option<String>,
    /// The value comes as text (a number in an OCTET STRING).
    pub text: bool,
    /// The value is 1 when the OID exists, 0 when the agent has no such instance.
    pub present: bool,
    pub enum_names: BTreeMap<i64, String>,
    pub flag_on: Vec<i64>,
    pub flag_above: Option<f64>,
    pub invert: bool,
    pub scale: f64,
    pub offset: f64,
    pub not_available: Vec<i64>,
    pub critical_if: Vec<f64>,
    pub warning_if: Vec<f64>,
    pub critical_above: Option<f64>,
    pub warning_above: Option<f64>,
    pub critical_below: Option<f64>,
    pub warning_below: Option<f64>,
    pub nut: Option<String>,
    pub labels: BTreeMap<String, String>,
}

impl Rules {
    /// Whether the value is a 0/1 flag.
    pub fn is_flag(&self) -> bool {
        !self.flag_on.is_empty() || self.flag_above.is_some()
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Scalar {
    pub name: String,
    pub oid: Oid,
    pub rules: Rules,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Label {
    pub name: String,
    /// The full column OID the label is read from.
    pub oid: Oid,
    pub enum_names: BTreeMap<i64, String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Skip {
    pub oid: Oid,
    pub values: Vec<i64>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct QIf {
    pub label: String,
    /// Lower-cased.
    pub contains: Vec<String>,
    pub q: String,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Column {
    pub name: String,
    /// The full column OID (entry + column).
    pub oid: Oid,
    pub rules: Rules,
    pub q_by: Option<(CodeFrom, BTreeMap<i64, String>)>,
    pub q_if: Vec<QIf>,
    /// (scale column, precision column), RFC 3433.
    pub entity_scale: Option<(Oid, Oid)>,
    /// A column (indexed alike) holding the value's decimal digits.
    pub decimals: Option<Oid>,
}

/// Where a row's quantity code is read.
#[derive(Debug, Clone, PartialEq)]
pub enum CodeFrom {
    Column(Oid),
    /// 0-based position in the row's index.
    Index(usize),
}

#[derive(Debug, Clone, PartialEq)]
pub struct Alarm {
    pub name: String,
    pub column: Oid,
    pub value: Oid,
    pub rules: Rules,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Table {
    pub name: String,
    pub entry: Oid,
    pub index: Vec<String>,
    pub labels: Vec<Label>,
    pub skip: Vec<Skip>,
    pub columns: Vec<Column>,
}

impl Table {
    /// Every column OID a poll must walk for this table (values, labels,
    /// skips, quantity pickers, scales), each once.
    pub fn walked_columns(&self) -> Vec<Oid> {
        let mut out: Vec<Oid> = Vec::new();
        let mut push = |o: &Oid| {
            if !out.contains(o) {
                out.push(o.clone());
            }
        };
        for c in &self.columns {
            push(&c.oid);
            if let Some((CodeFrom::Column(o), _)) = &c.q_by {
                push(o);
            }
            if let Some(o) = &c.decimals {
                push(o);
            }
            if let Some((s, p)) = &c.entity_scale {
                push(s);
                push(p);
            }
        }
        for l in &self.labels {
            push(&l.oid);
        }
        for s in &self.skip {
            push(&s.oid);
        }
        out
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Trap {
    pub name: String,
    pub oids: Vec<Oid>,
    pub severity: Severity,
    pub message: String,
}

/// Device-family limits from the profile.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Limits {
    pub max_repetitions: Option<u32>,
    pub max_oids: Option<usize>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Profile {
    /// The shipped name or the file path.
    pub origin: String,
    pub class: Class,
    pub vendor: String,
    pub model: String,
    pub mib: String,
    pub verified: bool,
    pub limits: Limits,
    pub scalars: Vec<Scalar>,
    pub tables: Vec<Table>,
    pub alarms: Vec<Alarm>,
    pub traps: Vec<Trap>,
}

/// The quantities every profile of a class must yield (at least one of each group).
fn required(class: Class) -> &'static [&'static [&'static str]] {
    match class {
        Class::Ups => &[
            &[quantity::UPS_ON_BATTERY],
            &[quantity::UPS_BATTERY_LOW],
            &[quantity::UPS_BATTERY_CHARGE_RATIO],
            &[quantity::UPS_BATTERY_RUNTIME_SECONDS],
            &[quantity::UPS_LOAD_RATIO],
            &[quantity::MAINS_AVAILABLE],
        ],
        Class::Pdu => &[
            &[quantity::POWER_FEED_AVAILABLE],
            &[quantity::CURRENT_AMPERES],
        ],
        Class::Environment => &[&[
            quantity::TEMPERATURE_CELSIUS,
            quantity::INLET_TEMPERATURE_CELSIUS,
        ]],
        Class::Switch => &[&[
            quantity::INTERFACE_UP,
            quantity::PSU_OK,
            quantity::TEMPERATURE_CELSIUS,
        ]],
        Class::Cooling => &[&[quantity::COOLING_UNIT_RUNNING, quantity::COOLING_UNIT_ALARM]],
    }
}

impl Profile {
    /// Parses and checks a profile; `origin` names it in errors.
    pub fn from_toml(text: &str, origin: &str) -> Result<Profile, ProfileError> {
        let fail = |point: Option<&str>, message: String| ProfileError {
            origin: origin.to_owned(),
            point: point.map(str::to_owned),
            message,
        };
        let spec: ProfileSpec =
            toml::from_str(text).map_err(|e| fail(None, e.to_string().trim_end().to_owned()))?;
        let DeviceSpec {
            vendor,
            model,
            class,
            mib,
            source,
            verified,
            notes: _,
        } = spec.device;
        if vendor.is_empty() || model.is_empty() || mib.is_empty() || source.is_empty() {
            return Err(fail(
                None,
                "[device] needs vendor, model, mib and source".into(),
            ));
        }
        let mut names = BTreeSet::new();
        let mut unique = |name: &str| -> Result<(), ProfileError> {
            let valid = !name.is_empty()
                && name.len() <= 96
                && name
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
            if !valid {
                return Err(fail(
                    Some(name),
                    "names are 1-96 characters of [a-z0-9_]".into(),
                ));
            }
            if !names.insert(name.to_owned()) {
                return Err(fail(Some(name), "is named twice".into()));
            }
            Ok(())
        };
        let mut scalars = Vec::new();
        for s in &spec.scalar {
            unique(&s.name)?;
            let oid = parse_oid(&s.oid).map_err(|e| fail(Some(&s.name), e))?;
            let rules = rules(&s.rules, false).map_err(|e| fail(Some(&s.name), e))?;
            scalars.push(Scalar {
                name: s.name.clone(),
                oid,
                rules,
            });
        }
        let mut tables = Vec::new();
        for t in &spec.table {
            unique(&t.name)?;
            let entry = parse_oid(&t.oid).map_err(|e| fail(Some(&t.name), e))?;
            let at = |column: u32| {
                let mut o = entry.clone();
                o.push(column);
                o
            };
            let column_or_oid = |what: &str,
                                 column: Option<u32>,
                                 oid: &Option<String>|
             -> Result<Oid, ProfileError> {
                match (column, oid) {
                    (Some(c), None) if c > 0 => Ok(at(c)),
                    (None, Some(o)) => parse_oid(o).map_err(|e| fail(Some(&t.name), e)),
                    _ => Err(fail(
                        Some(&t.name),
                        format!("{what} needs either `column` (1 and up) or `oid`"),
                    )),
                }
            };
            let mut labels = Vec::new();
            for l in &t.label {
                check_label_key(&l.name).map_err(|e| fail(Some(&t.name), e))?;
                labels.push(crate::profile::Label {
                    name: l.name.clone(),
                    oid: column_or_oid(&format!("label {:?}", l.name), l.column, &l.oid)?,
                    enum_names: codes(&l.enum_names).map_err(|e| fail(Some(&t.name), e))?,
                });
            }
            for i in &t.index {
                check_label_key(i).map_err(|e| fail(Some(&t.name), e))?;
            }
            let mut skip = Vec::new();
            for s in &t.skip {
                skip.push(Skip {
                    oid: column_or_oid("skip", s.column, &s.oid)?,
                    values: s.values.clone(),
                });
            }
            if t.column.is_empty() {
                return Err(fail(Some(&t.name), "has no [[table.column]]".into()));
            }
            let mut columns = Vec::new();
            for c in &t.column {
                unique(&c.name)?;
                columns.push(column(c, &at).map_err(|e| fail(Some(&c.name), e))?);
            }
            let label_count = t.index.len().max(1) + t.label.len();
            if label_count > 5 {
                return Err(fail(
                    Some(&t.name),
                    format!(
                        "gives its rows {label_count} labels; at most 5 (a reading carries at most {} with the device's own)",
                        limits::MAX_LABELS
                    ),
                ));
            }
            tables.push(Table {
                name: t.name.clone(),
                entry,
                index: t.index.clone(),
                labels,
                skip,
                columns,
            });
        }
        let mut alarms = Vec::new();
        for a in &spec.alarm {
            unique(&a.name)?;
            alarms.push(Alarm {
                name: a.name.clone(),
                column: parse_oid(&a.column).map_err(|e| fail(Some(&a.name), e))?,
                value: parse_oid(&a.value).map_err(|e| fail(Some(&a.name), e))?,
                rules: rules(&a.rules, false).map_err(|e| fail(Some(&a.name), e))?,
            });
        }
        let mut traps = Vec::new();
        for t in &spec.trap {
            unique(&t.name)?;
            let mut oids = vec![parse_oid(&t.oid).map_err(|e| fail(Some(&t.name), e))?];
            for a in &t.aliases {
                oids.push(parse_oid(a).map_err(|e| fail(Some(&t.name), e))?);
            }
            let severity = match t.severity.as_str() {
                "critical" => Severity::Critical,
                "high" => Severity::High,
                "medium" => Severity::Medium,
                "low" => Severity::Low,
                other => {
                    return Err(fail(
                        Some(&t.name),
                        format!("severity {other:?} is not critical, high, medium or low"),
                    ));
                }
            };
            traps.push(Trap {
                name: t.name.clone(),
                oids,
                severity,
                message: t.message.clone(),
            });
        }
        let profile = Profile {
            origin: origin.to_owned(),
            class,
            vendor,
            model,
            mib,
            verified,
            limits: Limits {
                max_repetitions: spec.limits.max_repetitions,
                max_oids: spec.limits.max_oids,
            },
            scalars,
            tables,
            alarms,
            traps,
        };
        let yielded = profile.quantities();
        for group in required(class) {
            if !group.iter().any(|q| yielded.contains(*q)) {
                return Err(fail(
                    None,
                    format!(
                        "a {} profile must yield {}",
                        class.as_str(),
                        group.join(" or ")
                    ),
                ));
            }
        }
        if let Some(r) = profile
            .limits
            .max_repetitions
            .filter(|r| !(1..=127).contains(r))
        {
            return Err(fail(
                None,
                format!("limits.max_repetitions {r} is outside 1..=127"),
            ));
        }
        Ok(profile)
    }

    /// Every quantity the profile can yield.
    pub fn quantities(&self) -> BTreeSet<String> {
        let mut out = BTreeSet::new();
        for s in &self.scalars {
            out.extend(s.rules.q.clone());
        }
        for a in &self.alarms {
            out.extend(a.rules.q.clone());
        }
        for t in &self.tables {
            for c in &t.columns {
                out.extend(c.rules.q.clone());
                if let Some((_, map)) = &c.q_by {
                    out.extend(map.values().cloned());
                }
                out.extend(c.q_if.iter().map(|q| q.q.clone()));
            }
        }
        out
    }

    /// The scalar OIDs, for GET.
    pub fn scalar_oids(&self) -> Vec<Oid> {
        self.scalars.iter().map(|s| s.oid.clone()).collect()
    }

    /// The column groups to walk, one per table (its columns walked side by
    /// side), then the alarm columns.
    pub fn walks(&self) -> Vec<Vec<Oid>> {
        let mut out: Vec<Vec<Oid>> = self.tables.iter().map(Table::walked_columns).collect();
        let mut alarm_columns: Vec<Oid> = Vec::new();
        for a in &self.alarms {
            if !alarm_columns.contains(&a.column) {
                alarm_columns.push(a.column.clone());
            }
        }
        if !alarm_columns.is_empty() {
            out.push(alarm_columns);
        }
        out
    }

    /// The trap a notification OID names, if the profile knows it.
    pub fn trap(&self, oid: &[u32]) -> Option<&Trap> {
        self.traps.iter().find(|t| t.oids.iter().any(|o| o == oid))
    }
}

fn check_label_key(key: &str) -> Result<(), String> {
    let valid = key.len() <= limits::MAX_LABEL_KEY_LEN
        && key.starts_with(|c: char| c.is_ascii_lowercase())
        && key
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
        && !limits::RESERVED_LABEL_KEYS.contains(&key)
        && !["nut", "text"].contains(&key);
    if valid {
        Ok(())
    } else {
        Err(format!(
            "label {key:?} must be snake_case and not one of {:?}, nut or text",
            limits::RESERVED_LABEL_KEYS
        ))
    }
}

fn codes(map: &BTreeMap<String, String>) -> Result<BTreeMap<i64, String>, String> {
    map.iter()
        .map(|(k, v)| {
            k.parse::<i64>()
                .map(|k| (k, v.clone()))
                .map_err(|_| format!("enum key {k:?} is not an integer"))
        })
        .collect()
}

fn rules(spec: &RulesSpec, q_optional: bool) -> Result<Rules, String> {
    let (text, present) = match spec.value_type.as_deref() {
        None | Some("number") => (false, false),
        Some("string") => (true, false),
        Some("present") => (false, true),
        Some(other) => return Err(format!("type {other:?} is not number, string or present")),
    };
    match &spec.q {
        Some(q) if !quantity::is_valid(q) => {
            return Err(format!("q {q:?} is not a quantity name (snake_case)"));
        }
        None if !q_optional => return Err("needs a `q` (the quantity)".into()),
        _ => {}
    }
    let flag = !spec.flag_on.is_empty() || spec.flag_above.is_some();
    if flag && !spec.flag_on.is_empty() && (spec.scale.is_some() || spec.offset.is_some()) {
        return Err("scales a flag: flag_on looks at the raw value, drop scale/offset".into());
    }
    if spec.invert && !flag {
        return Err("invert is for flags (flag_on or flag_above)".into());
    }
    if spec.labels.len() > 2 {
        return Err("has more than 2 extra labels".into());
    }
    for k in spec.labels.keys() {
        check_label_key(k)?;
    }
    Ok(Rules {
        q: spec.q.clone(),
        text,
        present,
        enum_names: codes(&spec.enum_names)?,
        flag_on: spec.flag_on.clone(),
        flag_above: spec.flag_above,
        invert: spec.invert,
        scale: spec.scale.unwrap_or(1.0),
        offset: spec.offset.unwrap_or(0.0),
        not_available: spec.not_available.clone(),
        critical_if: spec.critical_if.to_vec(),
        warning_if: spec.warning_if.to_vec(),
        critical_above: spec.critical_above,
        warning_above: spec.warning_above,
        critical_below: spec.critical_below,
        warning_below: spec.warning_below,
        nut: spec.nut.clone(),
        labels: spec.labels.clone(),
    })
}

fn column(c: &ColumnSpec, at: &dyn Fn(u32) -> Oid) -> Result<Column, String> {
    if c.column == 0 {
        return Err("column numbers start at 1".into());
    }
    let rules = rules(&c.rules, c.q_by.is_some())?;
    let q_by = match &c.q_by {
        None => None,
        Some(q) => {
            let map = codes(&q.map)?;
            if let Some(bad) = map.values().find(|q| !quantity::is_valid(q)) {
                return Err(format!("q_by names {bad:?}, not a quantity name"));
            }
            let from = match (q.column, q.index) {
                (Some(c), None) if c > 0 => CodeFrom::Column(at(c)),
                (None, Some(i)) if i > 0 => CodeFrom::Index(i - 1),
                _ => return Err("q_by needs either `column` or `index` (both 1 and up)".into()),
            };
            Some((from, map))
        }
    };
    let decimals = match &c.decimals {
        None => None,
        Some(d) => Some(match (d.column, &d.oid) {
            (Some(col), None) if col > 0 => at(col),
            (None, Some(o)) => parse_oid(o)?,
            _ => return Err("decimals needs either `column` or `oid`".into()),
        }),
    };
    let mut q_if = Vec::new();
    for q in &c.q_if {
        if !quantity::is_valid(&q.q) || q.contains.is_empty() {
            return Err(format!(
                "q_if needs words to look for and a quantity name, not {:?}",
                q.q
            ));
        }
        q_if.push(QIf {
            label: q.label.clone(),
            contains: q.contains.iter().map(|w| w.to_lowercase()).collect(),
            q: q.q.clone(),
        });
    }
    Ok(Column {
        name: c.name.clone(),
        oid: at(c.column),
        rules,
        q_by,
        q_if,
        entity_scale: c
            .entity_scale
            .as_ref()
            .map(|e| (at(e.scale_column), at(e.precision_column))),
        decimals,
    })
}
