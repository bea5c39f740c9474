//! Corroboration end to end: no L3 on one device's word. A simulated machine
//! room with two UPSes and a generator controller that all sense the utility,
//! read over Modbus TCP by a real gateway agent, judged by the real collector.
//!
//! - One UPS on battery while the other UPS and the generator's mains sensing
//!   still see the mains: the site has power, that UPS has a fault. L2
//!   `power_device` about it, never an L3.
//! - Every sensor loses the mains and the generator fails: L3 `power`, its
//!   evidence saying that the independent sensors agree.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code

use std::{net::SocketAddr, path::Path, process::Command, time::Duration};

use serde_json::Value;
use sitewatch_tests::{
    drill::{SimSite, Stack, agent_config, start_agent},
    process::Proc,
    scrape,
    sim::control_at,
    sitewatch::bin,
    wait,
};

const SITE: &str = "bj1";

/// A second UPS on its own `sitewatch-sim modbus`: (process, modbus port,
/// control address).
fn second_ups(dir: &Path) -> (Proc, u16, SocketAddr) {
    let mut cmd = Command::new(bin("sitewatch-sim"));
    cmd.args([
        "modbus",
        "--profile",
        "apc-smart-ups",
        "--listen",
        "127.0.0.1:0",
        "--control",
        "127.0.0.1:0",
    ]);
    let proc = Proc::spawn("sim-ups-b", cmd, dir);
    let (port, control) = wait::until(Duration::from_secs(10), "the second UPS", || {
        let log = proc.log();
        let address = |what: &str| {
            log.lines()
                .find_map(|l| l.strip_prefix(&format!("{what} listening on ")))
                .and_then(|a| a.trim().parse::<SocketAddr>().ok())
        };
        Some((address("modbus")?.port(), address("control")?))
    });
    (proc, port, control)
}

fn signals(stack: &Stack) -> Vec<Value> {
    scrape::get(stack.collector.http_port, "/api/v1/signals")
        .and_then(|r| serde_json::from_str(&r.body).ok())
        .unwrap_or_default()
}

fn find<'a>(signals: &'a [Value], level: &str, cause: &str) -> Option<&'a Value> {
    signals
        .iter()
        .find(|s| s["level"] == level && s["cause"] == cause)
}

fn evidence_text(signal: &Value) -> String {
    signal["evidence"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|e| e.as_str().or(e["summary"].as_str()).unwrap_or_default())
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn one_ups_on_battery_while_the_others_see_the_mains_is_an_l2_and_all_losing_it_is_the_l3() {
    let dir = tempfile::tempdir().unwrap();
    let sim = SimSite::start(dir.path());
    let (_ups_b, ups_b_port, ups_b_control) = second_ups(dir.path());
    // The 2 s generator grace keeps the test short; the two UPSes feed the
    // site from two utility feeds (the power topology names them).
    let stack = Stack::start(
        dir.path(),
        "[signals]\nclear_after = \"3s\"\n[signals.power]\ngenerator_start_grace = \"2s\"\n\
         [signals.sites.bj1.power.devices]\nups-a = { feed = \"utility-a\" }\n\
         ups-b = { feed = \"utility-b\" }\ngenset = {}\n",
    );
    let modbus = format!(
        "{}\n[[sources.modbus.devices]]\nname = \"ups-b\"\naddress = \"tcp://127.0.0.1:{ups_b_port}\"\n\
         profile = \"apc-smart-ups\"\ntimeout = \"500ms\"\n",
        sim.modbus_config()
    );
    let _gateway = start_agent(
        dir.path(),
        "gw-01",
        &agent_config(SITE, "gw-01", stack.mqtt_port, &modbus),
    );
    stack.wait_online(SITE, &["gw-01"]);
    for q in ["ups_on_battery", "mains_available"] {
        stack.collector.wait_for(
            Duration::from_secs(15),
            &format!("sitewatch_{q}"),
            &[("site", SITE), ("host", "gw-01"), ("dev", "ups-b")],
        );
    }

    // ups-a alone says the mains are gone.
    sim.control("ups-a", "mains_lost");
    let l2 = wait::until(Duration::from_secs(20), "L2 power_device", || {
        find(&signals(&stack), "L2", "power_device").cloned()
    });
    assert_eq!(l2["subject"], "ups-a", "{l2}");
    // The engine's summary is the first evidence, then the readings of both
    // sides: ups-a's loss and the other UPS's mains.
    let evidence = evidence_text(&l2);
    assert!(
        evidence.contains("bj1: ups-a (utility-a) reports the mains lost while it is present at")
            && evidence.contains("ups-b (utility-b)"),
        "{evidence}"
    );
    // Well past the 2 s generator grace: still no L3 on one UPS's word.
    std::thread::sleep(Duration::from_secs(5));
    let now = signals(&stack);
    assert!(
        now.iter().all(|s| s["level"] != "L3"),
        "an L3 on one UPS's word: {now:?}"
    );

    // Now everything loses the utility and the generator fails to start.
    control_at(ups_b_control, "mains_lost");
    sim.control("genset", "generator_fails_to_start");
    let l3 = wait::until(Duration::from_secs(20), "L3 power", || {
        find(&signals(&stack), "L3", "power").cloned()
    });
    assert_eq!(l3["severity"], "critical", "{l3}");
    let evidence = evidence_text(&l3);
    assert!(
        evidence.contains("corroboration: 3 of 3 independent mains sensors agree"),
        "{evidence}"
    );
    assert!(
        evidence.contains("ups-a (utility-a)") && evidence.contains("ups-b (utility-b)"),
        "{evidence}"
    );
    // The device fault is no longer a fault: with nothing contradicting the
    // loss there is no L2 power_device.
    wait::until(Duration::from_secs(10), "the L2 resolved", || {
        find(&signals(&stack), "L2", "power_device")
            .is_none()
            .then_some(())
    });
}
