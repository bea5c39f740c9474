//! Redfish: what a BMC, PDU or CDU answers, mapped to readings. The input is
//! a JSON document (a resource as a service sends it, any shape); every
//! mapping function of `source::redfish::map` runs on it as every kind of
//! resource, and the service-root check on it as a root. A panic, an overflow
//! or a non-finite value in a reading is a finding.

use std::collections::BTreeMap;

use serde_json::Value;
use sitewatch_agent::source::redfish::{map, offers_expand};
use sitewatch_protocol::Reading;

fn check(readings: &[Reading]) {
    for r in readings {
        assert!(r.value.is_none_or(f64::is_finite), "{r:?}");
        assert!(!r.name.is_empty(), "{r:?}");
    }
}

/// One input, as the fuzzer gives it.
pub fn run(data: &[u8]) {
    let Ok(v) = serde_json::from_slice::<Value>(data) else {
        return;
    };
    let labels = BTreeMap::from([("rack".to_owned(), "r1".to_owned())]);
    let ctx = map::Ctx {
        src: "redfish",
        dev: "fuzz",
        labels: &labels,
    };
    let mut out: Vec<Reading> = Vec::new();
    out.extend(map::sensor(&ctx, "1U", &v));
    out.extend(map::power_supply(&ctx, "1U", &v));
    out.extend(map::power_supply_metrics(&ctx, "1U", "Bay1", &v));
    for numeric in [false, true] {
        out.extend(map::fan(&ctx, "1U", &v, numeric));
        out.extend(map::legacy_thermal(&ctx, "1U", &v, numeric));
        out.extend(map::legacy_power(&ctx, "1U", &v, numeric));
    }
    out.extend(map::redundancy(
        &ctx,
        "1U",
        &v,
        "PowerSupplyRedundancy",
        "psu_redundancy",
    ));
    out.extend(map::redundancy(
        &ctx,
        "1U",
        &v,
        "FanRedundancy",
        "fan_redundancy",
    ));
    out.extend(map::health(&ctx, "system", "system", &v));
    for kind in ["mains", "branch", "feed", "subfeed"] {
        out.extend(map::circuit(&ctx, "1", kind, &v));
    }
    out.extend(map::outlet(&ctx, "1", &v));
    out.extend(map::pump(&ctx, "1", &v));
    out.extend(map::coolant_connector(&ctx, "1", "primary", &v));
    out.extend(map::leak_detector(&ctx, ("cdu", "1"), &v));
    out.extend(map::leak_detector_groups(&ctx, ("cdu", "1"), &v));
    check(&out);
    let _ = offers_expand(&v);
    let _ = map::status_state(&v, true);
    // A collection's members, each mapped as a sensor (an expanded collection).
    if let Some(members) = v.get("Members").and_then(Value::as_array) {
        let sensors: Vec<Reading> = members
            .iter()
            .filter_map(|m| map::sensor(&ctx, "1U", m))
            .collect();
        check(&sensors);
    }
}
