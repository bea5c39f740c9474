//! A Redfish power supply failing, end to end: sushy-static serves a copy of
//! DMTF's rack-server mockup, a real agent reads it over HTTPS, the real
//! collector (embedded broker) judges it. The supply turned `Critical` in the
//! served tree gives `psu_ok` 0 and an L2 `host_hardware` about the agent's
//! host; back to `OK`, the signal clears.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code

#[path = "../../agent/tests/support/sushy.rs"]
mod sushy;

use std::time::Duration;

use serde_json::Value;
use sitewatch_tests::{
    drill::{Stack, agent_config, start_agent},
    scrape, wait,
};

const SITE: &str = "rf1";
const HOST: &str = "gw-rf";

fn signals(stack: &Stack) -> Vec<Value> {
    scrape::get(stack.collector.http_port, "/api/v1/signals")
        .and_then(|r| serde_json::from_str(&r.body).ok())
        .unwrap_or_default()
}

fn host_hardware(stack: &Stack) -> Option<Value> {
    signals(stack)
        .into_iter()
        .find(|s| s["level"] == "L2" && s["cause"] == "host_hardware")
}

#[test]
fn a_redfish_power_supply_turned_critical_raises_l2_host_hardware_at_the_collector() {
    if !sushy::sushy_present() {
        println!("SKIPPED: sushy-static or openssl not installed (scripts/install-test-deps.sh)");
        return;
    }
    let Some(mockups) =
        sitewatch_shared_testdata::dir("redfish/dmtf-mockups-2025.4", "DMTF Redfish mockups")
    else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let tree = dir.path().join("rack");
    sushy::copy_tree(&mockups.join("public-rackmount1"), &tree);
    let certs = sushy::certs();
    let bmc = sushy::sushy(&tree, &certs);
    let stack = Stack::start(dir.path(), "[signals]\nclear_after = \"3s\"\n");
    let redfish = format!(
        "[sources.redfish]\ninterval = \"1s\"\ntimeout = \"1s\"\n\
         [[sources.redfish.endpoints]]\nname = \"r1-bmc\"\nurl = \"https://127.0.0.1:{}\"\n\
         ca_file = \"{}\"\n",
        bmc.port,
        certs.ca.display()
    );
    let _agent = start_agent(
        dir.path(),
        HOST,
        &agent_config(SITE, HOST, stack.mqtt_port, &redfish),
    );
    stack.wait_online(SITE, &[HOST]);
    let psu = [
        ("site", SITE),
        ("host", HOST),
        ("src", "redfish"),
        ("dev", "r1-bmc"),
        ("psu", "Bay1"),
    ];
    // Bay1 predicts a failure (Warning): still a working supply.
    stack
        .collector
        .wait_for_value(Duration::from_secs(20), "sitewatch_psu_ok", &psu, 1.0);
    assert!(host_hardware(&stack).is_none());

    sushy::edit(&tree, "Chassis/1U/PowerSubsystem/PowerSupplies/Bay1", |p| {
        p["Status"]["Health"] = "Critical".into();
    });
    stack
        .collector
        .wait_for_value(Duration::from_secs(20), "sitewatch_psu_ok", &psu, 0.0);
    let l2 = wait::until(Duration::from_secs(30), "L2 host_hardware", || {
        host_hardware(&stack)
    });
    assert_eq!(l2["subject"], HOST, "{l2}");
    let evidence = l2["evidence"].to_string();
    assert!(
        evidence.contains("power supply failed: redfish power_supply (psu_ok)"),
        "{evidence}"
    );

    sushy::edit(&tree, "Chassis/1U/PowerSubsystem/PowerSupplies/Bay1", |p| {
        p["Status"]["Health"] = "OK".into();
    });
    wait::until(Duration::from_secs(30), "the L2 to clear", || {
        host_hardware(&stack).is_none().then_some(())
    });
}
