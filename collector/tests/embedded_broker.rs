//! The one-machine setup: the collector with its embedded rumqttd broker, fed by
//! real MQTT clients (mosquitto_pub, rumqttc), scraped over HTTP, checked by promtool.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::*;
use sitewatch_collector::config::{FileConfig, Overrides, Settings};
use sitewatch_collector::run::{link_configs, start_links};
use sitewatch_collector::state::State;
use sitewatch_collector::{Clock, Shared, broker};

fn embedded_args() -> (Vec<String>, u16) {
    let v4 = free_addr();
    let v5 = free_addr();
    (
        vec![
            "--embedded-broker".into(),
            v4.to_string(),
            "--embedded-broker-v5".into(),
            v5.to_string(),
        ],
        v4.port(),
    )
}

#[test]
fn embedded_broker_readings_reach_metrics_that_promtool_accepts() {
    let dir = tempfile::tempdir().unwrap();
    let (args, port) = embedded_args();
    let c = Collector::start(dir.path(), "collector", &args);
    c.wait_healthy();
    // Nothing known yet: still a valid exposition.
    let (ok, out) = promtool_check(&c.metrics());
    assert!(ok, "empty state: {out}");

    let now = now_ms();
    mosquitto_pub(
        port,
        "sitewatch/v1/bj1/web-01/state",
        &birth("b1", now),
        true,
    );
    mosquitto_pub(
        port,
        "sitewatch/v1/bj1/web-01/readings",
        &readings(1, now, 23.5),
        false,
    );

    let text = c.wait_sample(
        r#"sitewatch_inlet_temperature_celsius{site="bj1",host="web-01",src="ipmi",dev="bmc",sensor="Inlet Temp"}"#,
        |v| v == 23.5,
    );
    assert_eq!(
        sample(&text, r#"sitewatch_agent_up{site="bj1",host="web-01"}"#),
        Some(1.0)
    );
    assert_eq!(
        sample(
            &text,
            r#"sitewatch_reading_state{site="bj1",host="web-01",src="ipmi",dev="bmc",sensor="PSU2",quantity="psu_ok",slot="2",state="critical"}"#
        ),
        Some(1.0)
    );
    assert_eq!(
        sample(&text, "sitewatch_collector_broker_connected"),
        Some(1.0)
    );
    assert_eq!(
        sample(&text, "sitewatch_collector_readings_total"),
        Some(3.0)
    );
    let (ok, out) = promtool_check(&text);
    assert!(ok, "promtool check metrics failed:\n{out}\n---\n{text}");

    // OpenMetrics when asked for.
    let (status, om) = http_get(
        c.http,
        "/metrics",
        Some("application/openmetrics-text; version=1.0.0"),
    )
    .unwrap();
    assert_eq!(status, 200);
    assert!(om.ends_with("# EOF\n"));

    // The inventory.
    let (status, body) = c.get("/api/v1/hosts");
    assert_eq!(status, 200);
    let hosts: serde_json::Value = serde_json::from_str(&body).unwrap();
    let h = &hosts[0];
    assert_eq!(h["site"], "bj1");
    assert_eq!(h["host"], "web-01");
    assert_eq!(h["status"], "online");
    assert_eq!(h["boot"], "b1");
    assert_eq!(h["agent"], "test/1");
    assert_eq!(h["labels"]["room"], "a1");
    assert_eq!(h["sources"]["ipmi"], 10000);
    assert!(h["last_seen"].as_i64().unwrap() >= now);

    assert_eq!(c.get("/nope").0, 404);
}

/// Connects an "agent" with its will, publishes a retained birth, then drops the
/// TCP connection without DISCONNECT: the broker must publish the will.
async fn agent_that_dies(port: u16, site: &str, host: &str) {
    use rumqttc::{AsyncClient, Event, LastWill, MqttOptions, Packet, QoS};
    let topic = format!("sitewatch/v1/{site}/{host}/state");
    let mut opts = MqttOptions::new(host, "127.0.0.1", port);
    opts.set_last_will(LastWill::new(
        &topic,
        r#"{"v":1,"status":"offline","reason":"lost"}"#,
        QoS::AtLeastOnce,
        true,
    ));
    let (client, mut eventloop) = AsyncClient::new(opts, 10);
    client
        .publish(&topic, QoS::AtLeastOnce, true, birth("b9", now_ms()))
        .await
        .unwrap();
    loop {
        match tokio::time::timeout(Duration::from_secs(10), eventloop.poll()).await {
            Ok(Ok(Event::Incoming(Packet::PubAck(_)))) => break,
            Ok(Ok(_)) => {}
            other => panic!("agent could not publish its birth: {other:?}"),
        }
    }
    // Dropping the event loop closes the socket with no DISCONNECT packet.
    drop(eventloop);
    drop(client);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn embedded_broker_publishes_the_will_of_a_dead_agent() {
    let dir = tempfile::tempdir().unwrap();
    let (args, port) = embedded_args();
    let c = tokio::task::spawn_blocking(move || {
        let c = Collector::start(dir.path(), "collector", &args);
        c.wait_healthy();
        (c, dir)
    })
    .await
    .unwrap();
    agent_that_dies(port, "bj1", "db-01").await;
    let (c, _dir) = c;
    tokio::task::spawn_blocking(move || {
        let text = c.wait_sample(
            r#"sitewatch_agent_status{site="bj1",host="db-01",status="lost"}"#,
            |v| v == 1.0,
        );
        assert_eq!(
            sample(&text, r#"sitewatch_agent_up{site="bj1",host="db-01"}"#),
            Some(0.0)
        );
        let hosts: serde_json::Value = serde_json::from_str(&c.get("/api/v1/hosts").1).unwrap();
        assert_eq!(hosts[0]["reason"], "will");
    })
    .await
    .unwrap();
}

/// rumqttd replays at most 100 retained messages to a QoS 1 subscription; the
/// collector subscribes to state at QoS 0 on it to get them all (see broker.rs).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn embedded_broker_replays_more_than_100_retained_states_at_subscription() {
    use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};
    const HOSTS: usize = 150;
    let (v4, v5) = (free_addr(), free_addr());
    broker::start(v4, v5, 1000).unwrap();

    let (client, mut eventloop) =
        AsyncClient::new(MqttOptions::new("seeder", "127.0.0.1", v4.port()), 200);
    // The broker comes up on its own thread: retry until connected.
    loop {
        match eventloop.poll().await {
            Ok(Event::Incoming(Packet::ConnAck(_))) => break,
            Ok(_) => {}
            Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    }
    for i in 0..HOSTS {
        client
            .publish(
                format!("sitewatch/v1/bj1/h{i:03}/state"),
                QoS::AtLeastOnce,
                true,
                birth("b1", now_ms()),
            )
            .await
            .unwrap();
    }
    let mut acked = 0;
    while acked < HOSTS {
        if let Event::Incoming(Packet::PubAck(_)) = eventloop.poll().await.unwrap() {
            acked += 1;
        }
    }

    // Only now does a consumer subscribe: everything it learns is retained.
    let overrides = Overrides {
        embedded_v4: Some(v4),
        embedded_v5: Some(v5),
        ..Overrides::default()
    };
    let settings = Settings::resolve(&FileConfig::default(), &overrides, "test").unwrap();
    let shared = Arc::new(Shared::new(State::new(settings.state), Clock::System));
    let _links = start_links(
        link_configs(&settings).unwrap(),
        &shared,
        Default::default(),
    );
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let n = shared.read().hosts().count();
        if n == HOSTS {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "only {n} of {HOSTS} retained states arrived"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
