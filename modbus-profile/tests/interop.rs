#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! The shipped profiles agree with the register facts transcribed from the
//! vendors' documents in `../shared/testdata/modbus/` (read at test time;
//! the project keeps no copy). Every point of the profile must be checked.
//! Without `../shared/testdata` each test prints SKIPPED and passes (and fails
//! under `SITEWATCH_REQUIRE_SHARED=1`, as in CI).

use sitewatch_modbus_profile::{DataType, Extract, Profile, Table, shipped};

struct Facts {
    registers: Vec<toml::Table>,
}

impl Facts {
    /// The facts of one document, `None` when the shared test data is absent.
    fn load(file: &str) -> Option<Facts> {
        let path = sitewatch_shared_testdata::dir("modbus", "Modbus register facts")?.join(file);
        let text =
            std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let mut doc: toml::Table = toml::from_str(&text).unwrap();
        let registers = match doc.remove("register") {
            Some(toml::Value::Array(a)) => a
                .into_iter()
                .map(|v| match v {
                    toml::Value::Table(t) => t,
                    other => panic!("{other:?}"),
                })
                .collect(),
            other => panic!("{other:?}"),
        };
        Some(Facts { registers })
    }

    fn get(&self, name: &str) -> &toml::Table {
        self.registers
            .iter()
            .find(|r| r.get("name").and_then(|n| n.as_str()) == Some(name))
            .unwrap_or_else(|| panic!("no register {name} in the facts"))
    }
}

fn int(t: &toml::Table, key: &str) -> Option<i64> {
    t.get(key).and_then(|v| v.as_integer())
}

fn float(t: &toml::Table, key: &str) -> Option<f64> {
    t.get(key)
        .and_then(|v| v.as_float().or_else(|| v.as_integer().map(|i| i as f64)))
}

/// Checks one point against the fact `register` (and its bit, if any).
fn check(profile: &Profile, point: &str, facts: &Facts, register: &str, bit: Option<(u8, &str)>) {
    let p = profile
        .point(point)
        .unwrap_or_else(|| panic!("no point {point}"));
    let f = facts.get(register);
    assert_eq!(
        i64::from(p.address),
        int(f, "address").unwrap(),
        "{point}: address"
    );
    let count = int(f, "count").unwrap_or(1);
    assert_eq!(i64::from(p.width()), count, "{point}: width");
    if let Some(table) = f.get("table").and_then(|t| t.as_str()) {
        assert_eq!(p.table, Table::parse(table).unwrap(), "{point}: table");
    } else {
        assert_eq!(p.table, Table::Holding, "{point}: the facts read with FC 3");
    }
    let fact_type = f.get("type").and_then(|t| t.as_str()).unwrap_or("");
    if fact_type.starts_with("string") {
        assert_eq!(p.data_type, DataType::String, "{point}");
    } else if fact_type.starts_with('i') {
        assert!(p.data_type.is_signed(), "{point}: signed");
    }
    match bit {
        Some((n, meaning)) => {
            assert_eq!(p.extract, Extract::Bit(n), "{point}: bit");
            let bits = f.get("bits").and_then(|b| b.as_table()).unwrap();
            let name = bits
                .get(&n.to_string())
                .and_then(|v| v.as_str())
                .unwrap_or("");
            assert!(
                name.starts_with(meaning),
                "{point}: bit {n} is `{name}`, not `{meaning}`"
            );
        }
        None => {
            assert_eq!(p.extract, Extract::Whole, "{point}");
            assert_eq!(
                i64::from(p.binary_point),
                int(f, "scale_shift").unwrap_or(0),
                "{point}: binary point"
            );
            if p.data_type != DataType::String {
                // Percent becomes a ratio and minutes seconds on our side.
                let unit = f.get("unit").and_then(|u| u.as_str()).unwrap_or("");
                let to_base = if unit.starts_with('%') {
                    0.01
                } else if unit == "min" {
                    60.0
                } else {
                    1.0
                };
                let expected = float(f, "scale").unwrap_or(1.0) * to_base;
                assert!(
                    (p.scale - expected).abs() < 1e-12,
                    "{point}: scale {} vs {expected}",
                    p.scale
                );
            }
            if let Some(na) = int(f, "not_available") {
                assert!(p.not_available.contains(&na), "{point}: not_available");
            }
        }
    }
}

/// (profile point, fact register, (bit, meaning the fact gives that bit))
type Mapping<'a> = (&'a str, &'a str, Option<(u8, &'a str)>);

fn check_all(profile: &Profile, facts: &Facts, map: &[Mapping]) {
    for (point, register, bit) in map {
        check(profile, point, facts, register, *bit);
    }
    for p in profile.points() {
        assert!(
            map.iter().any(|(name, _, _)| *name == p.name),
            "point {} is not checked against the facts",
            p.name
        );
    }
}

#[test]
fn apc_profile_matches_the_apc_register_facts() {
    let Some(facts) = Facts::load("apc_smart_ups_modbus.toml") else {
        return;
    };
    let profile = shipped::load("apc-smart-ups").unwrap().unwrap();
    let st = "ups_status_bf";
    check_all(
        &profile,
        &facts,
        &[
            ("online", st, Some((1, "online"))),
            ("on_battery", st, Some((2, "on_battery"))),
            ("on_bypass", st, Some((3, "bypass"))),
            ("general_fault", st, Some((5, "general_fault"))),
            ("input_acceptable", st, Some((6, "input_not_acceptable"))),
            ("overload", st, Some((21, "overload"))),
            (
                "shutdown_imminent",
                "simple_signaling_status_bf",
                Some((1, "shutdown_imminent")),
            ),
            (
                "battery_needs_replacement",
                "battery_system_error_bf",
                Some((2, "needs_replacement")),
            ),
            (
                "battery_runtime_remaining",
                "battery_runtime_remaining",
                None,
            ),
            ("battery_charge", "battery_charge", None),
            ("battery_voltage", "battery_voltage", None),
            ("battery_temperature", "battery_temperature", None),
            ("output_real_power_pct", "output_real_power_pct", None),
            ("output_current", "output_current", None),
            ("output_voltage", "output_voltage", None),
            ("output_frequency", "output_frequency", None),
            ("input_voltage", "input_voltage", None),
            ("firmware_version", "firmware_version", None),
            ("model", "model", None),
            ("serial_number", "serial_number", None),
        ],
    );
    // The inverted bit: mains is available when "input not acceptable" is clear.
    assert!(profile.point("input_acceptable").unwrap().invert);
}

#[test]
fn socomec_profile_matches_the_socomec_register_facts() {
    let Some(facts) = Facts::load("socomec_delphys_jbus.toml") else {
        return;
    };
    let profile = shipped::load("socomec-delphys").unwrap().unwrap();
    check_all(
        &profile,
        &facts,
        &[
            ("serial_number", "serial_number", None),
            (
                "rectifier_input_supply_present",
                "status_word_0",
                Some((0, "rectifier_input_supply_present")),
            ),
            (
                "load_on_automatic_bypass",
                "status_word_0",
                Some((4, "load_on_automatic_bypass")),
            ),
            (
                "load_on_battery",
                "status_word_0",
                Some((5, "load_on_battery")),
            ),
            (
                "battery_near_end_of_backup_time",
                "status_word_0",
                Some((15, "battery_near_end_of_backup_time")),
            ),
            ("general_alarm", "alarm_word_0", Some((0, "general_alarm"))),
            (
                "battery_failure",
                "alarm_word_0",
                Some((1, "battery_failure")),
            ),
            ("load_total", "load_total_pct", None),
            ("battery_charge", "battery_charge", None),
            ("output_voltage_l1n", "output_voltage_l1n", None),
            ("output_frequency", "output_frequency", None),
            ("battery_voltage", "battery_voltage", None),
            ("ambient_temperature", "ambient_temperature", None),
            (
                "battery_runtime_remaining",
                "battery_runtime_remaining",
                None,
            ),
        ],
    );
}

#[test]
fn xy_md02_profile_matches_the_probe_register_facts() {
    let Some(facts) = Facts::load("xy_md02_sht20_temp_humidity.toml") else {
        return;
    };
    let profile = shipped::load("generic-xy-md02").unwrap().unwrap();
    check_all(
        &profile,
        &facts,
        &[
            ("temperature", "temperature", None),
            ("relative_humidity", "relative_humidity", None),
        ],
    );
}
