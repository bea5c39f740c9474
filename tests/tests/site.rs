//! End to end with a simulated machine room, as `scripts/run.sh --with-site`
//! runs it: `sitewatch-sim site` -> agent (modbus source) -> the collector's
//! embedded broker -> /metrics, and a drill through the simulator's control
//! port.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code

use std::time::{Duration, Instant};

use sitewatch_tests::{
    free_port,
    sim::Sim,
    sitewatch::{Agent, AgentSpec, Broker, Collector},
};

const SITE: &str = "sim";
const HOST: &str = "room";
/// The agent's modbus poll interval in this test.
const INTERVAL: Duration = Duration::from_secs(1);

fn device(dev: &str) -> [(&'static str, &str); 4] {
    [
        ("site", SITE),
        ("host", HOST),
        ("src", "modbus"),
        ("dev", dev),
    ]
}

#[test]
fn simulated_site_reaches_metrics_and_mains_lost_puts_the_ups_on_battery() {
    let dir = tempfile::tempdir().unwrap();
    let mqtt_port = free_port();
    let collector = Collector::start(dir.path(), Broker::Embedded(mqtt_port), &[]);
    let sim = Sim::start(dir.path());
    let mut spec = AgentSpec::new(SITE, HOST, &format!("mqtt://127.0.0.1:{mqtt_port}"));
    spec.extra = format!(
        "\n[sources.modbus]\ninterval = \"{}s\"\n\n{}",
        INTERVAL.as_secs(),
        sim.agent_devices_toml()
    );
    let _agent = Agent::start(dir.path(), &spec);

    // Every device's healthy readings, as the profiles' simulator defaults say.
    let startup = Duration::from_secs(20);
    collector.wait_for_value(startup, "sitewatch_ups_on_battery", &device("ups-a"), 0.0);
    collector.wait_for_value(startup, "sitewatch_mains_available", &device("ups-a"), 1.0);
    collector.wait_for_value(startup, "sitewatch_mains_available", &device("genset"), 1.0);
    collector.wait_for_value(
        startup,
        "sitewatch_generator_running",
        &device("genset"),
        0.0,
    );
    collector.wait_for(
        startup,
        "sitewatch_supply_air_temperature_celsius",
        &device("crac-1"),
    );
    for probe in ["probe-cold-aisle", "probe-hot-aisle"] {
        collector.wait_for(startup, "sitewatch_temperature_celsius", &device(probe));
        collector.wait_for(startup, "sitewatch_humidity_ratio", &device(probe));
    }

    let reply = sim.control("ups-a", "mains_lost");
    assert!(reply.starts_with("ok"), "mains_lost: {reply}");
    let injected = Instant::now();
    let budget = INTERVAL * 4;
    collector.wait_for_value(budget, "sitewatch_ups_on_battery", &device("ups-a"), 1.0);
    collector.wait_for_value(
        budget.saturating_sub(injected.elapsed()),
        "sitewatch_mains_available",
        &device("ups-a"),
        0.0,
    );
    // And back.
    assert_eq!(sim.control("ups-a", "healthy"), "ok");
    collector.wait_for_value(budget, "sitewatch_ups_on_battery", &device("ups-a"), 0.0);
}
