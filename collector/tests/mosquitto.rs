//! The collector against a real mosquitto started by the test: retained state,
//! malformed input, duplicates and gaps, will, shutdown, forgetting a host,
//! reconnection, and shared subscriptions across two collectors.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::time::Duration;

use common::*;

#[test]
fn against_mosquitto_liveness_rejections_and_sequence_accounting() {
    let dir = tempfile::tempdir().unwrap();
    let broker = Mosquitto::start(dir.path());
    let now = now_ms();
    // Published before the collector exists: it must learn it as a retained message.
    mosquitto_pub(
        broker.port,
        "sitewatch/v1/bj1/web-01/state",
        &birth("b1", now),
        true,
    );

    let c = Collector::start(dir.path(), "collector", &["--mqtt".into(), broker.url()]);
    c.wait_healthy();
    c.wait_sample(r#"sitewatch_agent_up{site="bj1",host="web-01"}"#, |v| {
        v == 1.0
    });

    mosquitto_pub(
        broker.port,
        "sitewatch/v1/bj1/web-01/readings",
        &readings(1, now, 23.5),
        false,
    );
    c.wait_sample(
        r#"sitewatch_inlet_temperature_celsius{site="bj1",host="web-01""#,
        |v| v == 23.5,
    );

    // Malformed input is counted by reason and changes nothing else.
    mosquitto_pub(
        broker.port,
        "sitewatch/v1/bj1/web-01/readings",
        "{not json",
        false,
    );
    mosquitto_pub(
        broker.port,
        "sitewatch/v1/BJ1/web-01/readings",
        &readings(1, now, 1.0),
        false,
    );
    mosquitto_pub(
        broker.port,
        "sitewatch/v1/bj1/web-01/readings",
        r#"{"v":1,"seq":9,"ts":1,"readings":[{"src":"x","dev":"d","name":"n","q":"Bad-Q","value":1,"state":"ok"}]}"#,
        false,
    );
    c.wait_sample(
        r#"sitewatch_collector_rejected_messages_total{reason="not_json"}"#,
        |v| v == 1.0,
    );
    c.wait_sample(
        r#"sitewatch_collector_rejected_messages_total{reason="bad_topic"}"#,
        |v| v == 1.0,
    );
    c.wait_sample(
        r#"sitewatch_collector_rejected_messages_total{reason="invalid_name"}"#,
        |v| v == 1.0,
    );

    // Still serving and ingesting.
    mosquitto_pub(
        broker.port,
        "sitewatch/v1/bj1/web-01/readings",
        &readings(2, now + 5000, 24.0),
        false,
    );
    c.wait_sample(
        r#"sitewatch_inlet_temperature_celsius{site="bj1",host="web-01""#,
        |v| v == 24.0,
    );

    // A redelivered batch is dropped; a jump counts the missing batches.
    mosquitto_pub(
        broker.port,
        "sitewatch/v1/bj1/web-01/readings",
        &readings(2, now + 5000, 99.0),
        false,
    );
    c.wait_sample("sitewatch_collector_duplicate_messages_total", |v| v == 1.0);
    mosquitto_pub(
        broker.port,
        "sitewatch/v1/bj1/web-01/readings",
        &readings(5, now + 6000, 25.0),
        false,
    );
    let text = c.wait_sample("sitewatch_collector_sequence_gaps_total", |v| v == 2.0);
    assert_eq!(
        sample(
            &text,
            r#"sitewatch_inlet_temperature_celsius{site="bj1",host="web-01""#
        ),
        Some(25.0),
        "the duplicate's 99 must not have been applied"
    );

    // Another agent dies: its will arrives.
    mosquitto_pub(
        broker.port,
        "sitewatch/v1/bj1/web-02/state",
        &birth("c1", now),
        true,
    );
    c.wait_sample(r#"sitewatch_agent_up{site="bj1",host="web-02"}"#, |v| {
        v == 1.0
    });
    mosquitto_pub(
        broker.port,
        "sitewatch/v1/bj1/web-02/state",
        r#"{"v":1,"status":"offline","reason":"lost"}"#,
        true,
    );
    let text = c.wait_sample(r#"sitewatch_agent_up{site="bj1",host="web-02"}"#, |v| {
        v == 0.0
    });
    assert_eq!(
        sample(
            &text,
            r#"sitewatch_agent_status{site="bj1",host="web-02",status="lost"}"#
        ),
        Some(1.0)
    );

    // The first one stops cleanly: down, but shut down, not lost.
    mosquitto_pub(
        broker.port,
        "sitewatch/v1/bj1/web-01/state",
        &format!(
            r#"{{"v":1,"status":"offline","reason":"shutdown","ts":{}}}"#,
            now_ms()
        ),
        true,
    );
    let text = c.wait_sample(r#"sitewatch_agent_up{site="bj1",host="web-01"}"#, |v| {
        v == 0.0
    });
    assert_eq!(
        sample(
            &text,
            r#"sitewatch_agent_status{site="bj1",host="web-01",status="shutdown"}"#
        ),
        Some(1.0)
    );
    assert_eq!(
        sample(
            &text,
            r#"sitewatch_agent_status{site="bj1",host="web-01",status="lost"}"#
        ),
        Some(0.0)
    );
    let hosts: serde_json::Value = serde_json::from_str(&c.get("/api/v1/hosts").1).unwrap();
    assert_eq!(hosts[0]["host"], "web-01");
    assert_eq!(hosts[0]["status"], "shutdown");
    assert_eq!(hosts[0]["reason"], "shutdown");
    assert_eq!(hosts[1]["reason"], "will");

    let (ok, out) = promtool_check(&text);
    assert!(ok, "promtool check metrics failed:\n{out}\n---\n{text}");

    // Clearing the retained state forgets the host.
    mosquitto_pub(broker.port, "sitewatch/v1/bj1/web-02/state", "", true);
    wait_for("web-02 to be forgotten", Duration::from_secs(20), || {
        let hosts: serde_json::Value = serde_json::from_str(&c.get("/api/v1/hosts").1).unwrap();
        (hosts.as_array().unwrap().len() == 1).then_some(())
    });
}

#[test]
fn reconnects_after_the_broker_restarts_and_reports_health_meanwhile() {
    let dir = tempfile::tempdir().unwrap();
    let broker = Mosquitto::start(dir.path());
    let port = broker.port;
    let c = Collector::start(dir.path(), "collector", &["--mqtt".into(), broker.url()]);
    c.wait_healthy();
    drop(broker);
    wait_for("/healthz to say 503", Duration::from_secs(20), || {
        (c.get("/healthz").0 == 503).then_some(())
    });
    c.wait_sample("sitewatch_collector_broker_connected", |v| v == 0.0);

    // Same port again; the collector retries with backoff and resubscribes.
    let conf = dir.path().join("again.conf");
    std::fs::write(
        &conf,
        format!("listener {port} 127.0.0.1\nallow_anonymous true\n"),
    )
    .unwrap();
    let mut again = std::process::Command::new("mosquitto")
        .arg("-c")
        .arg(&conf)
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    c.wait_healthy();
    mosquitto_pub(
        port,
        "sitewatch/v1/bj2/x-1/readings",
        &readings(1, now_ms(), 20.0),
        false,
    );
    c.wait_sample(
        r#"sitewatch_inlet_temperature_celsius{site="bj2",host="x-1""#,
        |v| v == 20.0,
    );
    let _ = again.kill();
    let _ = again.wait();
}

#[test]
fn shared_subscription_splits_readings_between_two_collectors() {
    const BATCHES: u64 = 40;
    let dir = tempfile::tempdir().unwrap();
    let broker = Mosquitto::start(dir.path());
    let now = now_ms();
    mosquitto_pub(
        broker.port,
        "sitewatch/v1/bj1/web-01/state",
        &birth("b1", now),
        true,
    );
    let args = |_: u8| -> Vec<String> {
        vec![
            "--mqtt".into(),
            broker.url(),
            "--share-group".into(),
            "collectors".into(),
        ]
    };
    let a = Collector::start(dir.path(), "a", &args(0));
    let b = Collector::start(dir.path(), "b", &args(1));
    // The state subscription is made last, so once the retained birth is in, the
    // shared subscriptions are in place too.
    for c in [&a, &b] {
        c.wait_healthy();
        c.wait_sample(r#"sitewatch_agent_up{site="bj1",host="web-01"}"#, |v| {
            v == 1.0
        });
    }

    let lines: Vec<String> = (1..=BATCHES)
        .map(|seq| readings(seq, now, 20.0 + seq as f64))
        .collect();
    mosquitto_pub_lines(broker.port, "sitewatch/v1/bj1/web-01/readings", &lines);

    let count = |c: &Collector| {
        sample(
            &c.metrics(),
            r#"sitewatch_collector_messages_total{kind="readings"}"#,
        )
        .unwrap_or(0.0) as u64
    };
    let (na, nb) = wait_for(
        "all batches between the two collectors",
        Duration::from_secs(20),
        || {
            let (na, nb) = (count(&a), count(&b));
            (na + nb == BATCHES).then_some((na, nb))
        },
    );
    eprintln!("shared subscription split: {na} + {nb}");
    assert!(
        na > 0 && nb > 0,
        "one collector got everything: {na} + {nb}"
    );
    for c in [&a, &b] {
        let text = c.metrics();
        // Each sees part of the sequence: gaps there are the other's, not counted.
        assert_eq!(
            sample(&text, "sitewatch_collector_sequence_gaps_total"),
            Some(0.0)
        );
        assert_eq!(
            sample(&text, "sitewatch_collector_duplicate_messages_total"),
            Some(0.0)
        );
        let (ok, out) = promtool_check(&text);
        assert!(ok, "{out}");
    }
}

/// Publishes the contents of `file` (`mosquitto_pub -f`), retained, QoS 1.
fn mosquitto_pub_retained_file(port: u16, topic: &str, file: &std::path::Path) {
    let out = std::process::Command::new("mosquitto_pub")
        .args(["-h", "127.0.0.1", "-p", &port.to_string(), "-q", "1", "-r"])
        .args(["-t", topic, "-f"])
        .arg(file)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "mosquitto_pub: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn poisoned_broker(dir: &std::path::Path) -> Mosquitto {
    // mosquitto as installed: no message size limit.
    let broker = Mosquitto::start(dir);
    let poison = dir.join("poison.json");
    std::fs::write(&poison, vec![b'x'; 1_100_000]).unwrap();
    mosquitto_pub_retained_file(broker.port, "sitewatch/v1/bj1/poison/state", &poison);
    broker
}

#[test]
fn an_oversized_retained_message_leaves_the_collector_healthy_and_ingesting() {
    let dir = tempfile::tempdir().unwrap();
    let broker = poisoned_broker(dir.path());
    let c = Collector::start(dir.path(), "collector", &["--mqtt".into(), broker.url()]);
    c.wait_healthy();
    let now = now_ms();
    mosquitto_pub(
        broker.port,
        "sitewatch/v1/bj1/web-01/state",
        &birth("b1", now),
        true,
    );
    mosquitto_pub(
        broker.port,
        "sitewatch/v1/bj1/web-01/readings",
        &readings(1, now, 21.5),
        false,
    );
    c.wait_sample(
        r#"sitewatch_inlet_temperature_celsius{site="bj1",host="web-01""#,
        |v| v == 21.5,
    );
    // Still on its first connection: MQTT 5 told mosquitto the largest packet the
    // collector takes, and mosquitto dropped the poison for it.
    let text = c.metrics();
    assert_eq!(
        sample(
            &text,
            r#"sitewatch_collector_broker_connections_total{broker="127.0.0.1"}"#
        ),
        Some(1.0),
        "{text}"
    );
    assert_eq!(c.get("/healthz").0, 200);
}

#[test]
fn over_mqtt_3_1_1_the_poison_is_retried_with_a_growing_backoff_not_a_loop() {
    let dir = tempfile::tempdir().unwrap();
    let broker = poisoned_broker(dir.path());
    let conf = dir.path().join("c.toml");
    std::fs::write(
        &conf,
        format!("[mqtt]\nurl = \"{}\"\nprotocol = \"3.1.1\"\n", broker.url()),
    )
    .unwrap();
    let c = Collector::start(
        dir.path(),
        "collector",
        &["--config".into(), conf.display().to_string()],
    );
    // Each connection is accepted, then cut when the poison arrives.
    c.wait_sample(
        r#"sitewatch_collector_broker_failures_total{broker="127.0.0.1",kind="protocol"}"#,
        |v| v >= 1.0,
    );
    std::thread::sleep(Duration::from_secs(8));
    let text = c.metrics();
    let connections = sample(
        &text,
        r#"sitewatch_collector_broker_connections_total{broker="127.0.0.1"}"#,
    )
    .unwrap();
    // 100 ms doubling to 5 s: at most about 7 attempts in 8 s (a backoff reset on
    // every CONNACK made about 80).
    assert!(
        (2.0..=8.0).contains(&connections),
        "{connections} connections\n{text}"
    );
}
