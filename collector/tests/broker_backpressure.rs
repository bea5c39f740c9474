//! Nothing acknowledged is lost (issue 18): an in-process subscriber that stops
//! reading holds its publishers back (their PUBACKs stop) and gets everything
//! once it reads again; a network subscriber that falls behind is dropped and
//! counted instead, and slows nobody.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod broker_common;

use std::time::Duration;

use broker_common::*;

const N: usize = 200;

#[test]
fn a_local_subscriber_that_stops_reading_holds_the_publisher_back_and_loses_nothing() {
    let b = Running::start(config());
    let mut local = b.local(&["bp/#"], 10);
    let mut publisher = Agent::connect(&b, b.p(), "busy", None, None, 50);
    for i in 0..N {
        publisher.send("bp/readings", &format!("m{i}"), false);
    }
    // Ten fit in the queue and are acknowledged; the eleventh is queued and its
    // PUBACK waits, so the publisher's inflight window fills and it stops.
    let mut acked = 0;
    while acked < 10 {
        publisher.wait(|s| *s == Seen::PubAck, "PUBACK");
        acked += 1;
    }
    b.wait_metric("sitewatch_broker_queued_messages", |v| v == 11.0);
    std::thread::sleep(Duration::from_millis(300));
    acked += publisher
        .poll()
        .iter()
        .filter(|s| **s == Seen::PubAck)
        .count();
    assert_eq!(acked, 10, "no PUBACK while the subscriber is not reading");
    assert_eq!(b.metric("sitewatch_broker_queued_messages"), 11.0);

    // Reading again: every message, in order, and every PUBACK.
    for i in 0..N {
        let d = local.next();
        assert_eq!(d.payload, format!("m{i}").as_bytes());
        assert!(!d.retain);
    }
    while acked < N {
        publisher.wait(|s| *s == Seen::PubAck, "PUBACK");
        acked += 1;
    }
    assert_eq!(
        b.metric("sitewatch_broker_dropped_messages_total{reason=\"queue_full\"}"),
        0.0
    );
}

#[test]
fn a_network_subscriber_that_falls_behind_is_dropped_and_counted_and_slows_nobody() {
    let mut cfg = config();
    cfg.max_queued_messages = 20;
    cfg.max_inflight = 5;
    let b = Running::start(cfg);
    let mut collector = b.local(&["bp/#"], 1000);
    // Subscribes at QoS 1, then never reads nor acknowledges again.
    let mut stuck = Raw::connect(b.p());
    stuck.send(&connect(4, "stuck", 0, None, None));
    assert_eq!(stuck.packet(), (0x20, vec![0, 0]));
    let mut sub = vec![0, 1];
    sub.extend(mqtt_str(b"bp/#"));
    sub.push(1);
    stuck.send(&packet(0x82, &sub));
    assert_eq!(stuck.packet(), (0x90, vec![0, 1, 1]));

    let mut publisher = Agent::connect(&b, b.p(), "busy", None, None, 100);
    for i in 0..N {
        publisher.publish("bp/readings", &format!("m{i}"), false);
    }
    for i in 0..N {
        assert_eq!(collector.next().payload, format!("m{i}").as_bytes());
    }
    // 5 inflight to the stuck client, 20 queued for it, the rest dropped.
    let dropped = b.metric("sitewatch_broker_dropped_messages_total{reason=\"queue_full\"}");
    assert!((175.0..=180.0).contains(&dropped), "{dropped}");
    assert!(b.metric("sitewatch_broker_queued_messages") <= 20.0);
    // Counted for that subscriber, by reason; the publisher lost nothing.
    let metrics = b.metrics();
    let mine = |reason: &str| {
        sample(
            &metrics,
            &format!(
                "sitewatch_broker_subscriber_dropped_messages_total{{client_id=\"stuck\",reason=\"{reason}\"}}"
            ),
        )
    };
    assert_eq!(mine("queue_full"), Some(dropped), "{metrics}");
    assert_eq!(mine("offline_qos0"), Some(0.0));
    assert!(
        !metrics.contains("client_id=\"busy\""),
        "a subscriber that lost nothing is not listed:\n{metrics}"
    );
}

#[test]
fn a_session_that_expires_with_messages_queued_counts_them_as_dropped() {
    let b = Running::start(config());
    // MQTT 5, clean start 0, Session Expiry Interval 1 s.
    let mut body = mqtt_str(b"MQTT");
    body.extend([5, 0x00, 0, 0]);
    body.extend([5, 0x11, 0, 0, 0, 1]);
    body.extend(mqtt_str(b"away"));
    let mut away = Raw::connect(b.p());
    away.send(&packet(0x10, &body));
    assert_eq!(away.packet().0, 0x20);
    let mut sub = vec![0, 1, 0];
    sub.extend(mqtt_str(b"ex/#"));
    sub.push(1);
    away.send(&packet(0x82, &sub));
    assert_eq!(away.packet(), (0x90, vec![0, 1, 0, 1]));
    drop(away);
    b.wait_metric("sitewatch_broker_connections", |v| v == 0.0);
    // QoS 1 is queued for the session while its client is away ...
    let mut publisher = Agent::connect(&b, b.p(), "busy", None, None, 100);
    for i in 0..7 {
        publisher.publish("ex/readings", &format!("m{i}"), false);
    }
    assert_eq!(b.metric("sitewatch_broker_queued_messages"), 7.0);
    // ... and dropped, counted, when the session expires without it.
    b.wait_metric(
        "sitewatch_broker_dropped_messages_total{reason=\"session_expired\"}",
        |v| v == 7.0,
    );
    assert_eq!(b.metric("sitewatch_broker_queued_messages"), 0.0);
}
