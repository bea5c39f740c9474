#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! Every shipped profile loads, yields its class's quantities, decodes a
//! healthy register image, and polls in the fewest requests.

use std::path::Path;

use sitewatch_modbus_profile::{Plan, Profile, SimValue, shipped};
use sitewatch_protocol::ReadingState;

fn all() -> Vec<(&'static str, Profile)> {
    shipped::SHIPPED
        .iter()
        .map(|s| (s.name, Profile::from_toml(s.text, s.path).unwrap()))
        .collect()
}

#[test]
fn every_shipped_profile_loads_into_its_class_folder() {
    assert_eq!(shipped::SHIPPED.len(), 7);
    for s in shipped::SHIPPED {
        let p = Profile::from_toml(s.text, s.path).unwrap();
        let folder = s.path.split('/').next().unwrap();
        assert_eq!(p.device.class.as_str(), folder, "{}", s.name);
        assert!(!p.device.source.is_empty(), "{}", s.name);
        // The header comment cites the source document too.
        assert!(s.text.starts_with('#'), "{}", s.name);
        if !p.device.verified {
            assert!(
                s.text.contains("VERIFICATION"),
                "{}: say what is unverified",
                s.name
            );
        }
    }
}

#[test]
fn every_profile_file_is_shipped() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../firmware-config/profiles");
    let mut on_disk = Vec::new();
    for class in std::fs::read_dir(&root).unwrap() {
        let class = class.unwrap().path();
        for file in std::fs::read_dir(&class).unwrap() {
            let file = file.unwrap().path();
            let rel = file
                .strip_prefix(&root)
                .unwrap()
                .to_string_lossy()
                .into_owned();
            on_disk.push(rel);
        }
    }
    on_disk.sort();
    let mut shipped: Vec<String> = shipped::SHIPPED.iter().map(|s| s.path.to_owned()).collect();
    shipped.sort();
    assert_eq!(on_disk, shipped);
}

#[test]
fn every_profile_yields_the_quantities_of_its_class() {
    for (name, p) in all() {
        assert_eq!(p.missing_quantities(), Vec::<&str>::new(), "{name}");
    }
}

#[test]
fn a_healthy_image_of_every_profile_decodes_ok() {
    for (name, p) in all() {
        let image = p.default_image().unwrap();
        let decoded = p.decode(&image);
        assert!(!decoded.values.is_empty(), "{name}");
        for v in &decoded.values {
            let deliberately_unknown = p.point(&v.name).and_then(|pt| pt.sim_default.as_ref())
                == Some(&SimValue::Text("not_available".into()));
            if deliberately_unknown {
                assert_eq!(
                    (v.value, v.state),
                    (None, ReadingState::Unknown),
                    "{name}/{}",
                    v.name
                );
            } else {
                assert!(v.value.is_some(), "{name}/{} has no value", v.name);
                assert_eq!(
                    v.state,
                    ReadingState::Ok,
                    "{name}/{} = {:?}",
                    v.name,
                    v.value
                );
            }
            let reading = v.to_reading("dev");
            assert!(
                sitewatch_protocol::quantity::is_valid(&reading.q),
                "{}",
                reading.q
            );
        }
        let required = p.device.class.required_quantities();
        for q in required {
            assert!(decoded.values.iter().any(|v| v.q == *q), "{name}: {q}");
        }
    }
}

#[test]
fn healthy_ups_profiles_report_mains_on_full_battery() {
    for (name, p) in all() {
        if p.device.class.as_str() != "ups" {
            continue;
        }
        let d = p.decode(&p.default_image().unwrap());
        let by_q = |q: &str| d.values.iter().find(|v| v.q == q).unwrap().value;
        assert_eq!(by_q("ups_on_battery"), Some(0.0), "{name}");
        assert_eq!(by_q("mains_available"), Some(1.0), "{name}");
        assert_eq!(by_q("ups_battery_low"), Some(0.0), "{name}");
        assert_eq!(by_q("ups_battery_charge_ratio"), Some(1.0), "{name}");
        assert_eq!(by_q("ups_load_ratio"), Some(0.35), "{name}");
    }
}

#[test]
fn shipped_profiles_poll_in_the_fewest_requests() {
    let expected = [
        // status 0..23, dynamic 128..151, inventory strings 516..571
        ("apc-smart-ups", 3),
        // identification, status word, alarm word, measurements 0x1063..0x1077
        ("socomec-delphys", 4),
        // 11000..11027, 11043 alone (as NUT reads it), 12000..12005
        ("huawei-ups2000", 3),
        // page 3 control mode, page 4 (one read), page 154 alarms
        ("dse-gencomm", 3),
        // discrete 24..38, input 101..129
        ("vertiv-liebert-icom", 2),
        ("generic-xy-md02", 1),
        ("generic-di8-leak", 1),
    ];
    for (name, count) in expected {
        let p = shipped::load(name).unwrap().unwrap();
        let plan = Plan::new(&p);
        assert_eq!(plan.len(), count, "{name}: {:#?}", plan.blocks());
        let mut covered: Vec<usize> = plan
            .blocks()
            .iter()
            .flat_map(|b| b.points.clone())
            .collect();
        covered.sort();
        assert_eq!(covered, (0..p.points().len()).collect::<Vec<_>>(), "{name}");
        for b in plan.blocks() {
            let max = if b.table.is_bits() {
                p.limits.max_bits
            } else {
                p.limits.max_registers
            };
            assert!(b.count <= max, "{name}");
        }
    }
}
