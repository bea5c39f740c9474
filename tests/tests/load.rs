//! `sitewatch-sim load` against a real mosquitto and a real collector: every
//! batch the simulated agents had acknowledged is ingested once, with no
//! sequence gap, also across a broker restart; and through the collector's
//! embedded broker, a burst far beyond what the collector ingests at once
//! loses nothing acknowledged (the broker holds the publishers back instead).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code

use std::{process::Command, time::Duration};

use sitewatch_tests::{
    free_port,
    mosquitto::Mosquitto,
    process::Proc,
    scrape,
    sitewatch::{Broker, Collector, bin},
    wait,
};

const SERIES: u64 = 4;

/// The shape of a load: agents, how often each sends a batch, for how long,
/// and how long it then waits for its last PUBACKs.
struct Shape<'a> {
    agents: usize,
    series: u64,
    interval: &'a str,
    duration: &'a str,
    drain: &'a str,
}

fn start_load(dir: &std::path::Path, url: &str, agents: usize, duration: &str) -> Proc {
    start_shaped(
        dir,
        url,
        &Shape {
            agents,
            series: SERIES,
            interval: "200ms",
            duration,
            drain: "10s",
        },
    )
}

fn start_shaped(dir: &std::path::Path, url: &str, shape: &Shape<'_>) -> Proc {
    let mut cmd = Command::new(bin("sitewatch-sim"));
    cmd.args(["load", "--mqtt", url, "--site", "loadtest"])
        .args([
            "--agents",
            &shape.agents.to_string(),
            "--series",
            &shape.series.to_string(),
        ])
        .args([
            "--interval",
            shape.interval,
            "--duration",
            shape.duration,
            "--ramp",
            "300ms",
        ])
        .args([
            "--drain",
            shape.drain,
            "--backoff-base",
            "50ms",
            "--backoff-max",
            "500ms",
        ])
        .env("RUST_LOG", "warn");
    Proc::spawn("load", cmd, dir)
}

/// Waits for the load to end and returns its JSON summary (its last line).
fn summary(load: &mut Proc) -> serde_json::Value {
    assert_eq!(load.wait(), Some(0), "the load failed:\n{}", load.log());
    let log = load.log();
    let line = log
        .lines()
        .rev()
        .find(|l| l.starts_with('{'))
        .unwrap_or_else(|| panic!("no summary in:\n{log}"));
    serde_json::from_str(line).unwrap()
}

fn metric(collector: &Collector, name: &str) -> Option<f64> {
    scrape::value(&collector.metrics(), name, &[])
}

/// Every acknowledged batch reaches the collector exactly once: its readings
/// counter ends at the acknowledged readings, and no sequence number is missing.
fn assert_all_ingested_without_gaps(collector: &Collector, s: &serde_json::Value) {
    let readings = s["readings_acked"].as_u64().unwrap() as f64;
    // A slow (debug, loaded) collector may take minutes to work through what
    // its broker queued for it: waits while the count moves, fails once it has
    // stood still short of the acknowledged readings for 30 s.
    let mut last = (None, std::time::Instant::now());
    loop {
        let now = metric(collector, "sitewatch_collector_readings_total");
        if now == Some(readings) {
            break;
        }
        if now != last.0 {
            last = (now, std::time::Instant::now());
        }
        assert!(
            last.1.elapsed() < Duration::from_secs(30),
            "readings ingested stuck at {now:?} of {readings} acknowledged"
        );
        std::thread::sleep(Duration::from_millis(250));
    }
    assert_eq!(
        metric(collector, "sitewatch_collector_sequence_gaps_total"),
        Some(0.0)
    );
    let rejected: f64 = scrape::find(
        &collector.metrics(),
        "sitewatch_collector_rejected_messages_total",
        &[],
    )
    .iter()
    .map(|s| s.value)
    .sum();
    assert_eq!(rejected, 0.0, "the collector rejected simulated messages");
}

#[test]
fn simulated_agents_batches_are_all_ingested_without_sequence_gaps() {
    let dir = tempfile::tempdir().unwrap();
    let broker = Mosquitto::start(dir.path(), None);
    let collector = Collector::start(dir.path(), Broker::External(broker.url()), &[]);
    let mut load = start_load(dir.path(), &broker.url(), 20, "3s");
    let s = summary(&mut load);
    let m = &s["messages"];
    assert_eq!(s["first_connects"], 20);
    assert_eq!(s["births_acked"], 20);
    assert_eq!(s["shutdowns_acked"], 20);
    assert!(m["made"].as_u64().unwrap() >= 20 * 10, "{s}");
    assert_eq!(m["acked"], m["made"], "{s}");
    assert_eq!(m["unacked"], 0, "{s}");
    assert_eq!(s["readings_acked"], m["made"].as_u64().unwrap() * SERIES);
    assert_all_ingested_without_gaps(&collector, &s);
    // Every host is known, and stopped cleanly (not lost).
    collector.wait_for_value(
        Duration::from_secs(10),
        "sitewatch_agent_status",
        &[
            ("site", "loadtest"),
            ("host", "load-00020"),
            ("status", "shutdown"),
        ],
        1.0,
    );
}

#[test]
fn a_broker_restart_costs_the_collector_no_sequence_gap() {
    let dir = tempfile::tempdir().unwrap();
    let mut broker = Mosquitto::start(dir.path(), None);
    let collector = Collector::start(dir.path(), Broker::External(broker.url()), &[]);
    let mut load = start_load(dir.path(), &broker.url(), 30, "6s");
    // Every agent is connected and heard before the broker goes away.
    wait::until(Duration::from_secs(10), "all 30 agents up", || {
        let metrics = collector.metrics();
        let up = scrape::find(&metrics, "sitewatch_agent_up", &[("site", "loadtest")])
            .iter()
            .filter(|s| s.value == 1.0)
            .count();
        (up == 30).then_some(())
    });
    broker.stop();
    // The outage: batches keep being made, and wait in each agent.
    std::thread::sleep(Duration::from_secs(1));
    broker.restart();
    let s = summary(&mut load);
    let m = &s["messages"];
    assert_eq!(s["connections_lost"], 30, "{s}");
    assert_eq!(s["reconnects"]["total"], 30, "{s}");
    assert_eq!(m["dropped"], 0, "{s}");
    assert_eq!(m["acked"], m["made"], "{s}");
    assert_all_ingested_without_gaps(&collector, &s);
}

/// The in-process link holds 8,192 messages (`link::local::CAPACITY`) and
/// ingest's channel 4,096 more: a burst of 30,000 batches of 100 readings in
/// 3 s from 1,000 agents (3 M readings; unbounded inflight: each agent sends
/// every batch it has at once) is far more than a debug collector ingests in
/// that time (15,000 no longer was, once ingest workers applied their waiting
/// messages under one lock), so the broker's queue for the collector fills
/// and the publishers' PUBACKs wait. What was acknowledged is then all ingested, in
/// order: 0 dropped at the broker, 0 sequence gaps.
#[test]
fn a_burst_through_the_embedded_broker_loses_no_acknowledged_batch() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let collector = Collector::start(dir.path(), Broker::Embedded(port), &[]);
    let url = format!("mqtt://127.0.0.1:{port}");
    let mut load = start_shaped(
        dir.path(),
        &url,
        &Shape {
            agents: 1000,
            series: 100,
            interval: "100ms",
            duration: "3s",
            drain: "120s",
        },
    );
    // The broker's queue for the collector, while the burst lasts.
    let mut peak = 0.0f64;
    while load.running() {
        if let Some(q) = metric(&collector, "sitewatch_broker_queued_messages") {
            peak = peak.max(q);
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let s = summary(&mut load);
    let m = &s["messages"];
    assert_eq!(s["births_acked"], 1000, "{s}");
    assert_eq!(m["dropped"], 0, "{s}");
    assert_eq!(m["unacked"], 0, "{s}");
    assert_eq!(m["acked"], m["made"], "{s}");
    assert_all_ingested_without_gaps(&collector, &s);
    let metrics = collector.metrics();
    let broker_dropped: f64 =
        scrape::find(&metrics, "sitewatch_broker_dropped_messages_total", &[])
            .iter()
            .map(|s| s.value)
            .sum();
    assert_eq!(broker_dropped, 0.0, "the broker dropped messages");
    eprintln!(
        "burst: {} batches acked, broker queue peak {peak}",
        m["acked"]
    );
    assert!(
        peak >= 8192.0,
        "the burst never filled the collector's queue (peak {peak}): \
         the test did not hold publishers back"
    );
}
