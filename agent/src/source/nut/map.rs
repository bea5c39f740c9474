//! NUT variables <-> the shared vocabulary, both ways. Pure.
//!
//! Reading upsd ([`readings`]): `ups.status` becomes one flag reading per
//! status word the Modbus UPS profiles know (`ups_on_battery`,
//! `ups_battery_low`, ...; 0 when the word is absent), the standard numeric
//! variables their quantity (percentages as 0..1 ratios), each reading
//! carrying its NUT name in the `nut` label exactly as the profiles'
//! readings do, so that signals treat a NUT UPS and a Modbus one alike.
//!
//! Serving upsd ([`variables`]): the other way, from any source's readings
//! that carry a `nut` label (Modbus and SNMP profiles, this source).

use std::collections::BTreeMap;

use sitewatch_protocol::{Reading, ReadingState, quantity as q};

/// The label naming a reading's NUT variable (`ups.status:OB` for a status
/// flag), as the Modbus profiles write it.
pub const NUT_LABEL: &str = "nut";

/// A status word, its reading's name and quantity, and the state it reads
/// when set.
#[derive(Debug)]
pub struct StatusFlag {
    pub word: &'static str,
    pub name: &'static str,
    pub q: &'static str,
    pub when_set: ReadingState,
}

/// The status words read, in the order the facade writes them.
pub const STATUS_FLAGS: &[StatusFlag] = &[
    StatusFlag {
        word: "OL",
        name: "online",
        q: "ups_online",
        when_set: ReadingState::Ok,
    },
    StatusFlag {
        word: "OB",
        name: "on_battery",
        q: q::UPS_ON_BATTERY,
        when_set: ReadingState::Warning,
    },
    StatusFlag {
        word: "LB",
        name: "battery_low",
        q: q::UPS_BATTERY_LOW,
        when_set: ReadingState::Critical,
    },
    StatusFlag {
        word: "RB",
        name: "battery_replace",
        q: "ups_battery_replace",
        when_set: ReadingState::Warning,
    },
    StatusFlag {
        word: "CHRG",
        name: "charging",
        q: "ups_battery_charging",
        when_set: ReadingState::Ok,
    },
    StatusFlag {
        word: "BYPASS",
        name: "on_bypass",
        q: "ups_on_bypass",
        when_set: ReadingState::Warning,
    },
    StatusFlag {
        word: "OVER",
        name: "overload",
        q: "ups_overload",
        when_set: ReadingState::Critical,
    },
    StatusFlag {
        word: "FSD",
        name: "forced_shutdown",
        q: "ups_forced_shutdown",
        when_set: ReadingState::Critical,
    },
];

/// A numeric variable: its quantity, the divisor to it from NUT's unit (100
/// for a percentage: a division keeps 41 % at 0.41, where a product by 0.01
/// gives 0.41000000000000003), and the `part` label the profiles give it.
#[derive(Debug)]
pub struct Numeric {
    pub var: &'static str,
    pub q: &'static str,
    pub per: f64,
    pub part: Option<&'static str>,
}

pub const NUMERIC: &[Numeric] = &[
    Numeric {
        var: "battery.charge",
        q: q::UPS_BATTERY_CHARGE_RATIO,
        per: 100.0,
        part: None,
    },
    Numeric {
        var: "battery.runtime",
        q: q::UPS_BATTERY_RUNTIME_SECONDS,
        per: 1.0,
        part: None,
    },
    Numeric {
        var: "battery.voltage",
        q: q::VOLTAGE_VOLTS,
        per: 1.0,
        part: Some("battery"),
    },
    Numeric {
        var: "battery.temperature",
        q: q::TEMPERATURE_CELSIUS,
        per: 1.0,
        part: Some("battery"),
    },
    Numeric {
        var: "input.voltage",
        q: q::VOLTAGE_VOLTS,
        per: 1.0,
        part: Some("input"),
    },
    Numeric {
        var: "input.frequency",
        q: q::FREQUENCY_HERTZ,
        per: 1.0,
        part: Some("input"),
    },
    Numeric {
        var: "output.voltage",
        q: q::VOLTAGE_VOLTS,
        per: 1.0,
        part: Some("output"),
    },
    Numeric {
        var: "output.frequency",
        q: q::FREQUENCY_HERTZ,
        per: 1.0,
        part: Some("output"),
    },
    Numeric {
        var: "output.current",
        q: q::CURRENT_AMPERES,
        per: 1.0,
        part: Some("output"),
    },
    Numeric {
        var: "ups.load",
        q: q::UPS_LOAD_RATIO,
        per: 100.0,
        part: None,
    },
    Numeric {
        var: "ups.realpower",
        q: q::POWER_WATTS,
        per: 1.0,
        part: Some("output"),
    },
    Numeric {
        var: "ups.temperature",
        q: q::TEMPERATURE_CELSIUS,
        per: 1.0,
        part: Some("ups"),
    },
    Numeric {
        var: "ambient.temperature",
        q: q::TEMPERATURE_CELSIUS,
        per: 1.0,
        part: Some("ambient"),
    },
];

/// Descriptive variables: neither readings nor counted as unknown (the
/// facade serves them again when it has them).
fn descriptive(var: &str) -> bool {
    var.starts_with("device.")
        || var.starts_with("driver.")
        || var.starts_with("ups.mfr")
        || var.starts_with("ups.model")
        || var.starts_with("ups.serial")
        || var.starts_with("ups.firmware")
        || var.starts_with("ups.vendorid")
        || var.starts_with("ups.productid")
        || var.starts_with("ups.id")
        || var.starts_with("ups.type")
        || var.starts_with("ups.beeper")
        || var.ends_with(".nominal")
        // Thresholds and settings (battery.charge.low, input.transfer.high).
        || var.ends_with(".low")
        || var.ends_with(".high")
        || var.ends_with(".warning")
        || var.contains(".date")
        || var.ends_with(".type")
}

/// What one UPS's variables came to.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Mapped {
    pub readings: Vec<Reading>,
    /// Variables neither mapped nor descriptive: skipped.
    pub unknown: u64,
    /// Mapped variables whose value did not read as a number: each an
    /// unknown reading.
    pub malformed: u64,
}

/// The readings of one UPS from its `LIST VAR` (`name -> value`).
pub fn readings(src: &str, dev: &str, vars: &BTreeMap<String, String>) -> Mapped {
    let mut out = Mapped::default();
    for (var, value) in vars {
        if var == "ups.status" {
            let words: Vec<&str> = value.split_whitespace().collect();
            for f in STATUS_FLAGS {
                let set = words.contains(&f.word);
                let state = if set { f.when_set } else { ReadingState::Ok };
                out.readings.push(
                    Reading::new(src, dev, f.name, f.q, Some(f64::from(u8::from(set))), state)
                        .with_label(NUT_LABEL, format!("ups.status:{}", f.word)),
                );
            }
            continue;
        }
        let Some(n) = NUMERIC.iter().find(|n| n.var == var) else {
            if !descriptive(var) {
                out.unknown += 1;
            }
            continue;
        };
        let parsed = value.trim().parse::<f64>().ok().filter(|v| v.is_finite());
        if parsed.is_none() {
            out.malformed += 1;
        }
        let mut r = Reading::new(
            src,
            dev,
            n.var,
            n.q,
            parsed.map(|v| v / n.per),
            ReadingState::Ok,
        )
        .with_label(NUT_LABEL, n.var);
        if let Some(part) = n.part {
            r = r.with_label("part", part);
        }
        out.readings.push(r);
    }
    out
}

/// A NUT number: integers without a fraction, others with at most 2 decimals
/// (what NUT drivers write).
fn number(v: f64) -> String {
    let rounded = (v * 100.0).round() / 100.0;
    if rounded.fract() == 0.0 && rounded.abs() < 1e15 {
        format!("{}", rounded as i64)
    } else {
        format!("{rounded}")
    }
}

/// The NUT variables of one device from its latest readings: every reading
/// with a `nut` label and a value; `ups.status` from the set flags (plus
/// `extra_status`, the facade's FSD). `None` when no reading carries a NUT
/// status flag: not a UPS.
pub fn variables(readings: &[Reading], extra_status: &[&str]) -> Option<BTreeMap<String, String>> {
    let mut vars = BTreeMap::new();
    let mut status: Vec<&str> = Vec::new();
    let mut is_ups = false;
    for r in readings {
        let Some(nut) = r.labels.get(NUT_LABEL) else {
            continue;
        };
        if let Some(word) = nut.strip_prefix("ups.status:") {
            is_ups = true;
            if r.value == Some(1.0) && !status.contains(&word) {
                status.push(word);
            }
            continue;
        }
        let Some(v) = r.value else {
            continue;
        };
        // The vocabulary's ratios are NUT's percentages.
        let v = if r.q.ends_with("_ratio") {
            v * 100.0
        } else {
            v
        };
        vars.insert(nut.clone(), number(v));
    }
    if !is_ups {
        return None;
    }
    for w in extra_status {
        if !status.contains(w) {
            status.push(w);
        }
    }
    // NUT's OL and OB exclude each other; a device whose "online" bit lags
    // its "on battery" bit is on battery.
    if status.contains(&"OB") {
        status.retain(|w| *w != "OL");
    }
    // The canonical order (OL before OB, LB after them, ...).
    status.sort_by_key(|w| {
        STATUS_FLAGS
            .iter()
            .position(|f| f.word == *w)
            .unwrap_or(usize::MAX)
    });
    vars.insert("ups.status".into(), status.join(" "));
    vars.insert("device.type".into(), "ups".into());
    Some(vars)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    fn find<'a>(m: &'a Mapped, q: &str, name: &str) -> &'a Reading {
        m.readings
            .iter()
            .find(|r| r.q == q && r.name == name)
            .unwrap()
    }

    #[test]
    fn status_words_become_flags_with_the_nut_label() {
        let m = readings("nut", "ups1@a", &vars(&[("ups.status", "OB LB")]));
        let ob = find(&m, q::UPS_ON_BATTERY, "on_battery");
        assert_eq!(ob.value, Some(1.0));
        assert_eq!(ob.labels[NUT_LABEL], "ups.status:OB");
        assert_eq!(find(&m, q::UPS_BATTERY_LOW, "battery_low").value, Some(1.0));
        assert_eq!(
            find(&m, q::UPS_BATTERY_LOW, "battery_low").state,
            ReadingState::Critical
        );
        assert_eq!(find(&m, "ups_online", "online").value, Some(0.0));
        assert_eq!(m.readings.len(), STATUS_FLAGS.len());
    }

    #[test]
    fn percentages_become_ratios_and_junk_is_counted() {
        let m = readings(
            "nut",
            "u",
            &vars(&[
                ("battery.charge", "85"),
                ("ups.load", "x"),
                ("ups.realpower", "340"),
                ("ups.frobnication", "1"),
                ("device.model", "Dummy"),
            ]),
        );
        assert_eq!(
            find(&m, q::UPS_BATTERY_CHARGE_RATIO, "battery.charge").value,
            Some(0.85)
        );
        let load = find(&m, q::UPS_LOAD_RATIO, "ups.load");
        assert_eq!((load.value, load.state), (None, ReadingState::Unknown));
        assert_eq!(
            find(&m, q::POWER_WATTS, "ups.realpower").labels["part"],
            "output"
        );
        assert_eq!((m.unknown, m.malformed), (1, 1));
    }

    #[test]
    fn readings_map_back_to_the_same_variables() {
        let original = vars(&[
            ("ups.status", "OL CHRG"),
            ("battery.charge", "85"),
            ("battery.runtime", "1800"),
            ("input.voltage", "230.4"),
            ("ups.load", "23"),
        ]);
        let m = readings("nut", "u", &original);
        let back = variables(&m.readings, &[]).unwrap();
        for (k, v) in &original {
            assert_eq!(&back[k], v, "{k}");
        }
        let fsd = variables(&m.readings, &["FSD"]).unwrap();
        assert_eq!(fsd["ups.status"], "OL CHRG FSD");
        let both = readings("nut", "u", &vars(&[("ups.status", "OL OB LB")]));
        assert_eq!(
            variables(&both.readings, &[]).unwrap()["ups.status"],
            "OB LB"
        );
    }

    #[test]
    fn a_device_without_status_flags_is_no_ups() {
        let r = Reading::new(
            "modbus",
            "crac",
            "t",
            q::TEMPERATURE_CELSIUS,
            Some(20.0),
            ReadingState::Ok,
        )
        .with_label(NUT_LABEL, "ambient.temperature");
        assert_eq!(variables(&[r], &[]), None);
    }
}
