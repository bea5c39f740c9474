#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code
//! The shipped profiles load, bad profiles are refused naming file and point,
//! and walked values decode with missing and mistyped values tolerated.

use sitewatch_protocol::ReadingState;
use sitewatch_snmp_profile::{Profile, Value, Walked, parse_oid, shipped};

#[test]
fn every_shipped_profile_loads() {
    assert_eq!(shipped::ALL.len(), 9);
    for s in shipped::ALL {
        let p = shipped::load(s.name).unwrap().unwrap();
        assert!(
            !p.walks().is_empty() || !p.scalar_oids().is_empty(),
            "{}",
            s.name
        );
    }
    assert!(shipped::load("no-such").is_none());
}

const BASE: &str = r#"
[device]
vendor = "v"
model = "m"
class = "environment"
mib = "X-MIB"
source = "doc"
verified = true
"#;

fn refused(body: &str) -> String {
    let e = Profile::from_toml(&format!("{BASE}{body}"), "probe.toml").unwrap_err();
    e.to_string()
}

#[test]
fn bad_profiles_are_refused_naming_the_file_and_the_point() {
    let cases = [
        (
            "[[scalar]]\nname = \"t\"\noid = \"1.3.x\"\nq = \"temperature_celsius\"\n",
            "point `t`",
            "numeric OID",
        ),
        (
            "[[scalar]]\nname = \"t\"\noid = \"1.3.6\"\n",
            "point `t`",
            "needs a `q`",
        ),
        (
            "[[scalar]]\nname = \"t\"\noid = \"1.3.6\"\nq = \"Temp\"\n",
            "point `t`",
            "not a quantity",
        ),
        (
            "[[scalar]]\nname = \"t\"\noid = \"1.3.6\"\nq = \"temperature_celsius\"\n[[scalar]]\nname = \"t\"\noid = \"1.3.7\"\nq = \"temperature_celsius\"\n",
            "point `t`",
            "named twice",
        ),
        (
            "[[scalar]]\nname = \"t\"\noid = \"1.3.6\"\nq = \"temperature_celsius\"\nflag_on = [1]\nscale = 2\n",
            "point `t`",
            "scales a flag",
        ),
        (
            "[[scalar]]\nname = \"t\"\noid = \"1.3.6\"\nq = \"temperature_celsius\"\nsclae = 2\n",
            "probe.toml",
            "unknown field",
        ),
        (
            "[[scalar]]\nname = \"t\"\noid = \"1.3.6\"\nq = \"x_ratio\"\n",
            "probe.toml",
            "must yield temperature_celsius",
        ),
        (
            "[[table]]\nname = \"p\"\noid = \"1.3.6.1\"\nlabel = [{ name = \"host\", column = 2 }]\n[[table.column]]\nname = \"t\"\ncolumn = 3\nq = \"temperature_celsius\"\n",
            "point `p`",
            "label \"host\"",
        ),
    ];
    for (body, point, what) in cases {
        let e = refused(body);
        assert!(e.starts_with("probe.toml: "), "{e}");
        assert!(e.contains(point), "{e}");
        assert!(e.contains(what), "{e}");
    }
}

fn oid(s: &str) -> Vec<u32> {
    parse_oid(s).unwrap()
}

#[test]
fn tables_decode_with_labels_skipped_rows_and_tolerated_bad_values() {
    let p = shipped::load("if-mib").unwrap().unwrap();
    let mut w = Walked::default();
    let at = |col: u32, i: u32| {
        let mut o = oid("1.3.6.1.2.1.2.2.1");
        o.extend([col, i]);
        o
    };
    // Port 1: up; port 2: down; port 3: admin down (skipped); port 4: a
    // string where ifOperStatus's INTEGER belongs.
    for (i, admin, oper) in [(1, 1, 1), (2, 1, 2), (3, 2, 2)] {
        w.insert(at(3, i), Value::Int(6));
        w.insert(at(7, i), Value::Int(admin));
        w.insert(at(8, i), Value::Int(oper));
        w.insert(at(14, i), Value::Unsigned(u64::from(i) * 10));
    }
    w.insert(at(7, 4), Value::Int(1));
    w.insert(at(8, 4), Value::Text(b"up".to_vec()));
    let mut name = oid("1.3.6.1.2.1.31.1.1.1.1");
    name.push(1);
    w.insert(name, Value::Text(b"Gi1/0/1".to_vec()));
    let d = p.decode(&w, "snmp", "sw1");
    let find = |n: &str| d.readings.iter().find(|r| r.name == n);
    let up = find("oper_status.1").unwrap();
    assert_eq!((up.value, up.q.as_str()), (Some(1.0), "interface_up"));
    assert_eq!(up.labels["port"], "Gi1/0/1");
    assert_eq!(up.labels["if_index"], "1");
    let down = find("oper_status.2").unwrap();
    assert_eq!((down.value, down.state), (Some(0.0), ReadingState::Warning));
    assert_eq!(down.labels["text"], "down");
    assert!(find("oper_status.3").is_none(), "admin-down port read");
    let bad = find("oper_status.4").unwrap();
    assert_eq!((bad.value, bad.state), (None, ReadingState::Unknown));
    assert_eq!(d.malformed.len(), 1, "{:?}", d.malformed);
    assert!(
        d.malformed[0].contains("oper_status.4"),
        "{:?}",
        d.malformed
    );
    assert_eq!(find("in_errors.2").unwrap().value, Some(20.0));
    // A column the port lacks is unknown, not absent.
    assert_eq!(find("out_errors.1").unwrap().state, ReadingState::Unknown);
}

#[test]
fn entity_sensors_are_scaled_and_named_by_their_type_and_parts() {
    let p = shipped::load("entity-sensor").unwrap().unwrap();
    let mut w = Walked::default();
    let s = |col: u32, i: u32| {
        let mut o = oid("1.3.6.1.2.1.99.1.1.1");
        o.extend([col, i]);
        o
    };
    let e = |col: u32, i: u32| {
        let mut o = oid("1.3.6.1.2.1.47.1.1.1.1");
        o.extend([col, i]);
        o
    };
    // 1: a temperature of 41.5 C (units, precision 1); 2: a PSU input of
    // 230 V AC given in millivolts; its status nonoperational.
    for (i, kind, scale, precision, value, status, name) in [
        (1, 8, 9, 1, 415, 1, "Inlet temperature"),
        (2, 3, 8, 0, 230_000, 3, "Power Supply 2 Input"),
    ] {
        w.insert(s(1, i), Value::Int(kind));
        w.insert(s(2, i), Value::Int(scale));
        w.insert(s(3, i), Value::Int(precision));
        w.insert(s(4, i), Value::Int(value));
        w.insert(s(5, i), Value::Int(status));
        w.insert(e(7, i), Value::Text(name.as_bytes().to_vec()));
    }
    let d = p.decode(&w, "snmp", "sw1");
    let find = |n: &str| d.readings.iter().find(|r| r.name == n).unwrap();
    let t = find("sensor_value.1");
    assert_eq!(t.q, "temperature_celsius");
    assert!((t.value.unwrap() - 41.5).abs() < 1e-9);
    let v = find("sensor_value.2");
    assert_eq!(v.q, "voltage_volts");
    assert!((v.value.unwrap() - 230.0).abs() < 1e-9);
    let psu = find("sensor_status.2");
    assert_eq!(
        (psu.q.as_str(), psu.value, psu.state),
        ("psu_ok", Some(0.0), ReadingState::Critical)
    );
    assert_eq!(find("sensor_status.1").q, "entity_sensor_ok");
    assert!(d.malformed.is_empty());
}

/// Found by `fuzz/` (target `snmp`): entPhySensorScale and Precision are any
/// INTEGER on the wire, and `3 * (scale - 9) - precision` overflowed on an
/// agent's extreme values. Such a sensor has no number; the decode goes on.
#[test]
fn entity_sensor_scales_out_of_range_are_no_value_not_an_overflow() {
    let p = shipped::load("entity-sensor").unwrap().unwrap();
    let s = |col: u32| {
        let mut o = oid("1.3.6.1.2.1.99.1.1.1");
        o.extend([col, 1]);
        o
    };
    for (scale, precision) in [
        (i64::MIN, 0),
        (i64::MAX, 0),
        (9, i64::MIN),
        (i64::from(i32::MAX), -i64::from(i32::MAX)),
    ] {
        let mut w = Walked::default();
        w.insert(s(1), Value::Int(8)); // celsius
        w.insert(s(2), Value::Int(scale));
        w.insert(s(3), Value::Int(precision));
        w.insert(s(4), Value::Int(415));
        w.insert(s(5), Value::Int(1));
        let d = p.decode(&w, "snmp", "sw1");
        let t = d
            .readings
            .iter()
            .find(|r| r.q == "temperature_celsius")
            .unwrap();
        assert_eq!(t.value, None, "scale {scale}, precision {precision}");
    }
}

#[test]
fn alarm_tables_and_present_flags_become_flags() {
    let ups = shipped::load("ups-mib").unwrap().unwrap();
    let mut w = Walked::default();
    w.insert(
        oid("1.3.6.1.2.1.33.1.6.2.1.2.7"),
        Value::Oid(oid("1.3.6.1.2.1.33.1.6.3.8")),
    );
    w.answered(oid("1.3.6.1.2.1.33.1.6.2.1.2"));
    w.insert(oid("1.3.6.1.2.1.33.1.4.1.0"), Value::Int(5));
    let d = ups.decode(&w, "snmp", "ups");
    let find = |n: &str| d.readings.iter().find(|r| r.name == n).unwrap();
    assert_eq!(find("alarm_output_overload").value, Some(1.0));
    assert_eq!(find("alarm_battery_bad").value, Some(0.0));
    assert_eq!(find("output_source").value, Some(1.0));
    assert_eq!(find("mains_available").value, Some(0.0));
    assert_eq!(find("output_source").labels["nut"], "ups.status:OB");
    // Not read at all: unknown.
    assert_eq!(find("battery_charge").state, ReadingState::Unknown);
    let liebert = shipped::load("liebert-gp").unwrap().unwrap();
    let mut w = Walked::default();
    w.insert(
        oid("1.3.6.1.4.1.476.1.42.3.9.20.1.10.1.2.100.4162"),
        Value::Int(1),
    );
    let d = liebert.decode(&w, "snmp", "ups");
    let low = d
        .readings
        .iter()
        .find(|r| r.name == "alarm_battery_low")
        .unwrap();
    assert_eq!((low.value, low.state), (Some(1.0), ReadingState::Critical));
    let over = d
        .readings
        .iter()
        .find(|r| r.name == "alarm_overload")
        .unwrap();
    assert_eq!(over.value, None, "not answered: unknown, not absent");
    w.answered(oid("1.3.6.1.4.1.476.1.42.3.9.20.1.10.1.2.100.5806"));
    let d = liebert.decode(&w, "snmp", "ups");
    let over = d
        .readings
        .iter()
        .find(|r| r.name == "alarm_overload")
        .unwrap();
    assert_eq!(over.value, Some(0.0));
    // An alarm table not read at all is unknown.
    let d = ups.decode(&Walked::default(), "snmp", "ups");
    assert_eq!(
        d.readings
            .iter()
            .find(|r| r.name == "alarm_battery_bad")
            .unwrap()
            .value,
        None
    );
}
