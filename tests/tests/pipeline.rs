//! End to end: agent -> real mosquitto (or the embedded broker) -> collector ->
//! /metrics, with real processes on loopback ports chosen at run time.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use sitewatch_tests::{
    free_port, have,
    mosquitto::{self, Mosquitto, TlsListener},
    observer::Observer,
    scrape,
    sitewatch::{Agent, AgentSpec, Broker, Collector},
    tls, wait,
};

const SITE: &str = "e2e";

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

fn up(host: &str) -> [(&'static str, String); 2] {
    [("site", SITE.to_owned()), ("host", host.to_owned())]
}

fn labels<'a>(pairs: &'a [(&'static str, String)]) -> Vec<(&'static str, &'a str)> {
    pairs.iter().map(|(k, v)| (*k, v.as_str())).collect()
}

fn wait_online(collector: &Collector, host: &str, limit: Duration) {
    collector.wait_for_value(limit, "sitewatch_agent_up", &labels(&up(host)), 1.0);
}

#[test]
fn host_readings_reach_metrics_within_two_intervals_of_connecting() {
    let dir = tempfile::tempdir().unwrap();
    let broker = Mosquitto::start(dir.path(), None);
    let collector = Collector::start(dir.path(), Broker::External(broker.url()), &[]);
    let mut spec = AgentSpec::new(SITE, "fresh", &broker.url());
    spec.host_interval = "2s".into();
    let _agent = Agent::start(dir.path(), &spec);
    wait_online(&collector, "fresh", Duration::from_secs(15));
    let online_at = Instant::now();
    collector.wait_for(
        Duration::from_secs(4),
        "sitewatch_cpu_usage_ratio",
        &[("site", SITE), ("host", "fresh"), ("src", "host")],
    );
    let ratio = collector.wait_for(
        Duration::from_secs(4).saturating_sub(online_at.elapsed()),
        "sitewatch_memory_usage_ratio",
        &[("site", SITE), ("host", "fresh")],
    );
    assert!((0.0..=1.0).contains(&ratio), "memory ratio {ratio}");
}

#[test]
fn scrape_passes_promtool_check_metrics() {
    assert!(
        have("promtool"),
        "promtool (Debian package prometheus) is required"
    );
    let dir = tempfile::tempdir().unwrap();
    let broker = Mosquitto::start(dir.path(), None);
    let collector = Collector::start(dir.path(), Broker::External(broker.url()), &[]);
    let _agent = Agent::start(dir.path(), &AgentSpec::new(SITE, "lint", &broker.url()));
    collector.wait_for(
        Duration::from_secs(15),
        "sitewatch_cpu_usage_ratio",
        &[("host", "lint")],
    );
    // The agent's own readings come as `sitewatch_agent_*`, counters typed so.
    collector.wait_for(
        Duration::from_secs(15),
        "sitewatch_agent_polls_total",
        &[("host", "lint"), ("src", "agent"), ("dev", "host")],
    );
    let body = scrape::get(collector.http_port, "/metrics").unwrap().body;
    assert!(body.contains("# TYPE sitewatch_agent_polls_total counter"));
    assert!(body.contains("sitewatch_agent_buffer_bytes{"));
    assert!(
        !body.contains("sitewatch_polls{"),
        "an old self-metric name"
    );
    scrape::assert_promtool_accepts(&body);
}

#[test]
fn agent_killed_with_sigkill_is_lost_within_keepalive_budget() {
    let dir = tempfile::tempdir().unwrap();
    let broker = Mosquitto::start(dir.path(), None);
    let collector = Collector::start(dir.path(), Broker::External(broker.url()), &[]);
    let spec = AgentSpec::new(SITE, "killed", &broker.url()); // keepalive 2 s
    let mut agent = Agent::start(dir.path(), &spec);
    wait_online(&collector, "killed", Duration::from_secs(15));
    agent.proc.signal("KILL");
    agent.proc.wait();
    // 1.5 x keepalive for the broker to publish the will, plus 5 s.
    collector.wait_for_value(
        Duration::from_secs_f64(1.5 * 2.0 + 5.0),
        "sitewatch_agent_up",
        &labels(&up("killed")),
        0.0,
    );
    let samples = collector.metrics();
    assert_eq!(
        scrape::value(
            &samples,
            "sitewatch_agent_status",
            &[("host", "killed"), ("status", "lost")]
        ),
        Some(1.0),
        "a killed agent is lost, not shut down"
    );
}

#[test]
fn agent_stopped_with_sigterm_is_down_with_reason_shutdown() {
    let dir = tempfile::tempdir().unwrap();
    let broker = Mosquitto::start(dir.path(), None);
    let collector = Collector::start(dir.path(), Broker::External(broker.url()), &[]);
    let mut agent = Agent::start(dir.path(), &AgentSpec::new(SITE, "stopped", &broker.url()));
    wait_online(&collector, "stopped", Duration::from_secs(15));
    agent.proc.signal("TERM");
    assert_eq!(agent.proc.wait(), Some(0), "a clean stop exits 0");
    collector.wait_for_value(
        Duration::from_secs(5),
        "sitewatch_agent_status",
        &[("host", "stopped"), ("status", "shutdown")],
        1.0,
    );
    assert_eq!(
        scrape::value(
            &collector.metrics(),
            "sitewatch_agent_up",
            &labels(&up("stopped"))
        ),
        Some(0.0)
    );
}

#[test]
fn broker_outage_of_30s_loses_no_readings() {
    let dir = tempfile::tempdir().unwrap();
    let mut broker = Mosquitto::start(dir.path(), None);
    let collector = Collector::start(dir.path(), Broker::External(broker.url()), &[]);
    let observer = Observer::start(
        broker.port,
        "e2e-observer",
        "sitewatch/v1/e2e/outage/readings",
    );
    let _agent = Agent::start(dir.path(), &AgentSpec::new(SITE, "outage", &broker.url()));
    wait_online(&collector, "outage", Duration::from_secs(15));
    wait::until(Duration::from_secs(10), "two readings batches", || {
        (observer.received().len() >= 2).then_some(())
    });

    broker.stop();
    let stopped_at = now_ms();
    std::thread::sleep(Duration::from_secs(30)); // the outage under test
    let restarted_at = now_ms();
    broker.restart();

    // Readings taken during the outage arrive afterwards, with their own times.
    let taken_during_outage = |r: &sitewatch_tests::observer::Received| {
        let batch = r.json();
        batch["readings"].as_array().is_some_and(|readings| {
            readings.iter().any(|reading| {
                let ts = reading["ts"].as_i64().or(batch["ts"].as_i64()).unwrap_or(0);
                ts > stopped_at + 2_000 && ts < restarted_at - 2_000
            })
        })
    };
    wait::until(
        Duration::from_secs(60),
        "readings taken during the outage",
        || observer.saw(taken_during_outage).then_some(()),
    );
    // Let the rest of the backlog and a few live batches through.
    let backlog_done = |obs: &Observer| {
        obs.received()
            .iter()
            .any(|r| r.json()["ts"].as_i64().unwrap_or(0) > restarted_at + 3_000)
    };
    wait::until(
        Duration::from_secs(60),
        "live batches after the backlog",
        || backlog_done(&observer).then_some(()),
    );

    let mut seqs: Vec<u64> = observer
        .received()
        .iter()
        .filter_map(|r| r.json()["seq"].as_u64())
        .collect();
    seqs.sort_unstable();
    seqs.dedup();
    let expected: Vec<u64> = (seqs[0]..=*seqs.last().unwrap()).collect();
    assert_eq!(seqs, expected, "every readings batch arrived at the broker");

    // The collector, back on its persistent session, ingests every one of them.
    let ingested = || {
        scrape::value(
            &collector.metrics(),
            "sitewatch_collector_messages_total",
            &[("kind", "readings")],
        )
        .unwrap_or(0.0)
    };
    wait::until(
        Duration::from_secs(30),
        "the collector to ingest every batch",
        || (ingested() >= seqs.len() as f64).then_some(()),
    );
    let samples = collector.metrics();
    assert_eq!(
        scrape::value(&samples, "sitewatch_collector_sequence_gaps_total", &[]),
        Some(0.0),
        "the collector saw every batch"
    );
    assert_eq!(
        scrape::value(&samples, "sitewatch_agent_up", &labels(&up("outage"))),
        Some(1.0),
        "the agent is online again: {:?}",
        scrape::get(collector.http_port, "/api/v1/hosts").map(|r| r.body)
    );
}

#[test]
fn malformed_payload_is_counted_by_reason_and_collector_keeps_serving() {
    let dir = tempfile::tempdir().unwrap();
    let broker = Mosquitto::start(dir.path(), None);
    let collector = Collector::start(dir.path(), Broker::External(broker.url()), &[]);
    let reason = |r: &str| {
        scrape::value(
            &collector.metrics(),
            "sitewatch_collector_rejected_messages_total",
            &[("reason", r)],
        )
    };
    assert_eq!(reason("not_json"), Some(0.0), "reasons are pre-registered");

    mosquitto::publish(
        broker.port,
        "sitewatch/v1/e2e/bad/readings",
        "{not json",
        false,
    );
    mosquitto::publish(broker.port, "sitewatch/v1/E2E/bad/readings", "{}", false);
    mosquitto::publish(
        broker.port,
        "sitewatch/v1/e2e/bad/readings",
        r#"{"v":1,"seq":1,"ts":1,"readings":[{"src":"x","dev":"d","name":"n","q":"power_watts","value":"high","state":"ok"}]}"#,
        false,
    );
    collector.wait_for_value(
        Duration::from_secs(10),
        "sitewatch_collector_rejected_messages_total",
        &[("reason", "not_json")],
        1.0,
    );
    collector.wait_for_value(
        Duration::from_secs(10),
        "sitewatch_collector_rejected_messages_total",
        &[("reason", "bad_topic")],
        1.0,
    );
    collector.wait_for_value(
        Duration::from_secs(10),
        "sitewatch_collector_rejected_messages_total",
        &[("reason", "wrong_type")],
        1.0,
    );

    // Still serving, still ingesting.
    assert_eq!(
        scrape::get(collector.http_port, "/healthz").unwrap().status,
        200
    );
    let ts = now_ms();
    mosquitto::publish(
        broker.port,
        "sitewatch/v1/e2e/good/readings",
        &format!(
            r#"{{"v":1,"seq":1,"ts":{ts},"readings":[{{"src":"modbus","dev":"ups-a","name":"on_battery","q":"ups_on_battery","value":1,"state":"critical"}}]}}"#
        ),
        false,
    );
    collector.wait_for_value(
        Duration::from_secs(10),
        "sitewatch_ups_on_battery",
        &[("site", SITE), ("host", "good"), ("dev", "ups-a")],
        1.0,
    );
}

#[test]
fn embedded_broker_carries_the_whole_pipeline() {
    let dir = tempfile::tempdir().unwrap();
    let mqtt_port = free_port();
    let collector = Collector::start(dir.path(), Broker::Embedded(mqtt_port), &[]);
    let url = format!("mqtt://127.0.0.1:{mqtt_port}");
    let mut agent = Agent::start(dir.path(), &AgentSpec::new(SITE, "embedded", &url));
    wait_online(&collector, "embedded", Duration::from_secs(15));
    collector.wait_for(
        Duration::from_secs(10),
        "sitewatch_cpu_usage_ratio",
        &[("site", SITE), ("host", "embedded")],
    );
    // The embedded broker delivers the will too.
    agent.proc.signal("KILL");
    agent.proc.wait();
    collector.wait_for_value(
        Duration::from_secs(10),
        "sitewatch_agent_up",
        &labels(&up("embedded")),
        0.0,
    );
}

fn tls_broker(dir: &std::path::Path) -> (Mosquitto, tls::Certs) {
    let certs = tls::make(dir, "good");
    let tls = TlsListener {
        port: free_port(),
        ca: certs.ca.clone(),
        cert: certs.cert.clone(),
        key: certs.key.clone(),
    };
    (Mosquitto::start(dir, Some(tls)), certs)
}

#[test]
fn agent_over_tls_reaches_the_collector() {
    let dir = tempfile::tempdir().unwrap();
    let (broker, certs) = tls_broker(dir.path());
    let collector = Collector::start(dir.path(), Broker::External(broker.url()), &[]);
    let tls_port = broker.tls.as_ref().unwrap().port;
    let mut spec = AgentSpec::new(SITE, "tls", &format!("mqtts://127.0.0.1:{tls_port}"));
    spec.tls_ca = Some(certs.ca);
    let _agent = Agent::start(dir.path(), &spec);
    wait_online(&collector, "tls", Duration::from_secs(15));
    collector.wait_for(
        Duration::from_secs(10),
        "sitewatch_cpu_usage_ratio",
        &[("host", "tls")],
    );
}

#[test]
fn agent_with_wrong_ca_is_refused_with_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let (broker, _certs) = tls_broker(dir.path());
    let other = tls::make(dir.path(), "other");
    let tls_port = broker.tls.as_ref().unwrap().port;
    let mut spec = AgentSpec::new(SITE, "wrongca", &format!("mqtts://127.0.0.1:{tls_port}"));
    spec.tls_ca = Some(other.ca);
    let mut agent = Agent::start(dir.path(), &spec);
    let log = wait::until(
        Duration::from_secs(15),
        "a certificate error in the log",
        || {
            let log = agent.proc.log();
            log.to_lowercase().contains("certificate").then_some(log)
        },
    );
    assert!(agent.proc.running(), "the agent keeps retrying:\n{log}");
    let observer = Observer::start(
        broker.port,
        "wrongca-observer",
        "sitewatch/v1/e2e/wrongca/#",
    );
    assert!(
        wait::within(Duration::from_secs(3), || observer
            .saw(|r| r.json()["status"] == "online")
            .then_some(()))
        .is_none(),
        "an agent that does not trust the broker never publishes"
    );
}
