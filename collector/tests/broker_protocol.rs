//! The embedded broker speaking MQTT with real clients (mosquitto_pub and
//! mosquitto_sub in both 3.1.1 and 5, raw bytes for what no polite client
//! sends), started in-process on ports the OS picks.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod broker_common;

use std::time::{Duration, Instant};

use broker_common::*;

const V311: &[&str] = &["-V", "311"];
const V5: &[&str] = &["-V", "5"];

fn args<'a>(version: &[&'a str], rest: &[&'a str]) -> Vec<&'a str> {
    let mut v = version.to_vec();
    v.extend_from_slice(rest);
    v
}

#[test]
fn both_listeners_speak_both_versions_and_route_through_wildcards() {
    let b = Running::start(config());
    let (p4, p5) = (b.port("listen_v4"), b.port("listen_v5"));
    // A 3.1.1 client on the second listener, an MQTT 5 one on the first.
    let mut state_only = Sub::start(
        p5,
        &args(V311, &["-q", "1", "-t", "sitewatch/v1/+/+/state"]),
    );
    let mut everything = Sub::start(p4, &args(V5, &["-q", "1", "-t", "sitewatch/#"]));
    publish(
        p4,
        &args(
            V5,
            &["-q", "1", "-t", "sitewatch/v1/bj1/web-01/state", "-m", "s1"],
        ),
    );
    publish(
        p5,
        &args(
            V311,
            &["-q", "1", "-t", "sitewatch/v1/bj1/_signals", "-m", "sig"],
        ),
    );
    assert_eq!(
        state_only.message(),
        (
            false,
            1,
            "sitewatch/v1/bj1/web-01/state".into(),
            "s1".into()
        )
    );
    assert_eq!(everything.message().3, "s1");
    assert_eq!(
        everything.message(),
        (false, 1, "sitewatch/v1/bj1/_signals".into(), "sig".into())
    );
    // `+/+/+` after the prefix does not match `<site>/_signals`.
    publish(
        p4,
        &["-q", "1", "-t", "sitewatch/v1/bj1/web-02/state", "-m", "s2"],
    );
    assert_eq!(
        state_only.message().3,
        "s2",
        "the _signals message never came first"
    );
    b.wait_metric("sitewatch_broker_messages_received_total", |v| v == 3.0);
    b.wait_metric(
        "sitewatch_broker_connects_total{result=\"accepted\"}",
        |v| v >= 5.0,
    );
}

/// Seeds `n` retained states over one raw connection (QoS 1, all acknowledged).
fn seed_retained(port: u16, n: usize) {
    let mut raw = Raw::connect(port);
    raw.send(&connect(4, "seeder", 60, None, None));
    assert_eq!(raw.packet(), (0x20, vec![0, 0]));
    let mut bytes = Vec::new();
    for i in 0..n {
        let mut p = publish_qos1(
            4,
            format!("sitewatch/v1/bj1/h{i:04}/state").as_bytes(),
            (i + 1) as u16,
            b"birth",
        );
        p[0] |= 0x01; // retained
        bytes.extend(p);
    }
    raw.send(&bytes);
    for _ in 0..n {
        assert_eq!(raw.packet().0, 0x40, "PUBACK");
    }
}

#[test]
fn more_than_100_retained_messages_reach_a_qos1_subscriber_in_both_versions() {
    const N: usize = 300;
    let b = Running::start(config());
    seed_retained(b.p(), N);
    b.wait_metric("sitewatch_broker_retained_messages", |v| v == N as f64);
    for version in [V311, V5] {
        let mut sub = Sub::start(
            b.p(),
            &args(version, &["-q", "1", "-t", "sitewatch/v1/+/+/state"]),
        );
        let mut topics = std::collections::BTreeSet::new();
        for _ in 0..N {
            let (retain, qos, topic, payload) = sub.message();
            assert!(retain && qos == 1 && payload == "birth", "{version:?}");
            topics.insert(topic);
        }
        assert_eq!(topics.len(), N, "{version:?}: every retained state, once");
    }
}

#[test]
fn the_will_of_a_sigkilled_client_is_published_and_retained() {
    let b = Running::start(config());
    for (i, version) in [V311, V5].into_iter().enumerate() {
        let topic = format!("sitewatch/v1/bj1/victim{i}/state");
        let mut watcher = Sub::start(b.p(), &args(version, &["-q", "1", "-t", &topic]));
        let mut victim = Sub::start(
            b.p(),
            &args(
                version,
                &[
                    "-i",
                    &format!("victim{i}"),
                    "-t",
                    "unrelated",
                    "--will-topic",
                    &topic,
                    "--will-payload",
                    "lost",
                    "--will-qos",
                    "1",
                    "--will-retain",
                ],
            ),
        );
        victim.kill();
        let (retain, qos, t, payload) = watcher.message();
        assert_eq!(
            (retain, qos, t.as_str(), payload.as_str()),
            (false, 1, topic.as_str(), "lost")
        );
        // And it is the retained state now.
        let mut later = Sub::start(b.p(), &args(version, &["-q", "1", "-t", &topic]));
        assert_eq!(later.message(), (true, 1, topic.clone(), "lost".into()));
    }
}

#[test]
fn a_clean_disconnect_publishes_no_will() {
    let b = Running::start(config());
    let mut local = b.local(&["w/#", "marker"], 100);
    for version in [V311, V5] {
        // mosquitto_pub disconnects cleanly after publishing.
        publish(
            b.p(),
            &args(
                version,
                &[
                    "-t",
                    "x",
                    "-m",
                    "1",
                    "--will-topic",
                    "w/t",
                    "--will-payload",
                    "lost",
                ],
            ),
        );
    }
    publish(b.p(), &["-t", "marker", "-m", "m"]);
    let first = local.next();
    assert_eq!(&*first.topic, "marker", "no will before the marker");
}

#[test]
fn a_persistent_session_keeps_qos1_messages_while_its_client_is_away_within_the_bound() {
    let mut cfg = config();
    cfg.max_queued_messages = 5;
    let b = Running::start(cfg);
    for (id, version, keep) in [
        ("keeper311", V311, &["-c"][..]),
        ("keeper5", V5, &["-c", "-x", "60"][..]),
    ] {
        let filter = format!("q/{id}/#");
        let mut first = Sub::start(
            b.p(),
            &args(
                version,
                &[&["-i", id, "-q", "1", "-t", &filter][..], keep].concat(),
            ),
        );
        first.kill();
        b.wait_metric("sitewatch_broker_connections", |v| v == 0.0);
        for i in 0..8 {
            publish(
                b.p(),
                &[
                    "-q",
                    "1",
                    "-t",
                    &format!("q/{id}/x"),
                    "-m",
                    &format!("m{i}"),
                ],
            );
        }
        publish(
            b.p(),
            &["-q", "0", "-t", &format!("q/{id}/x"), "-m", "qos0"],
        );
        let mut back = Sub::start(
            b.p(),
            &args(
                version,
                &[&["-i", id, "-q", "1", "-t", &filter][..], keep].concat(),
            ),
        );
        let got: Vec<String> = (0..5).map(|_| back.message().3).collect();
        assert_eq!(
            got,
            ["m0", "m1", "m2", "m3", "m4"],
            "{id}: the first 5, in order"
        );
        assert!(
            back.messages_for(Duration::from_millis(300)).is_empty(),
            "{id}: 3 dropped, no QoS 0"
        );
        back.kill();
        b.wait_metric("sitewatch_broker_connections", |v| v == 0.0);
    }
    assert_eq!(
        b.metric("sitewatch_broker_dropped_messages_total{reason=\"queue_full\"}"),
        6.0
    );
    assert_eq!(
        b.metric("sitewatch_broker_dropped_messages_total{reason=\"offline_qos0\"}"),
        2.0
    );
    // Two sessions kept for clients that are away.
    assert_eq!(b.metric("sitewatch_broker_sessions"), 2.0);
}

#[test]
fn shared_subscriptions_deliver_round_robin_in_both_versions() {
    let b = Running::start(config());
    let mut a = Sub::start(b.p(), &args(V5, &["-q", "1", "-t", "$share/g/work/+"]));
    let mut c = Sub::start(b.p(), &args(V311, &["-q", "1", "-t", "$share/g/work/+"]));
    let mut all = Sub::start(b.p(), &["-q", "1", "-t", "work/+"]);
    let lines: Vec<String> = (0..10).map(|i| format!("job{i}")).collect();
    for l in &lines {
        publish(b.p(), &["-q", "1", "-t", "work/1", "-m", l]);
    }
    let to_a: Vec<String> = (0..5).map(|_| a.message().3).collect();
    let to_c: Vec<String> = (0..5).map(|_| c.message().3).collect();
    let mut shared: Vec<String> = to_a.iter().chain(&to_c).cloned().collect();
    shared.sort();
    let mut expected = lines.clone();
    expected.sort();
    assert_eq!(shared, expected, "each job once to the group");
    assert!(a.messages_for(Duration::from_millis(200)).is_empty());
    assert_eq!((0..10).map(|_| all.message().3).collect::<Vec<_>>(), lines);
}

#[test]
fn qos2_publishes_are_delivered_exactly_once() {
    let b = Running::start(config());
    let mut local = b.local(&["q2/#"], 100);
    let mut raw = Raw::connect(b.p());
    raw.send(&connect(4, "q2", 60, None, None));
    assert_eq!(raw.packet(), (0x20, vec![0, 0]));
    let mut p = publish_qos1(4, b"q2/a", 7, b"once");
    p[0] = 0x34; // QoS 2
    raw.send(&p);
    assert_eq!(raw.packet(), (0x50, vec![0, 7]), "PUBREC");
    p[0] = 0x3c; // QoS 2, DUP: the client did not see our PUBREC
    raw.send(&p);
    assert_eq!(raw.packet(), (0x50, vec![0, 7]), "PUBREC again");
    raw.send(&[0x62, 2, 0, 7]);
    assert_eq!(raw.packet(), (0x70, vec![0, 7]), "PUBCOMP");
    assert_eq!(local.next().payload, "once".as_bytes());
    for version in [V311, V5] {
        publish(
            b.p(),
            &args(version, &["-q", "2", "-t", "q2/b", "-m", "two"]),
        );
        assert_eq!(local.next().payload, "two".as_bytes());
    }
    publish(b.p(), &["-t", "q2/end", "-m", "end"]);
    assert_eq!(&*local.next().topic, "q2/end", "nothing delivered twice");
}

#[test]
fn an_empty_retained_message_deletes_the_retained_one() {
    let b = Running::start(config());
    publish(b.p(), &["-r", "-t", "gone/1", "-m", "x"]);
    b.wait_metric("sitewatch_broker_retained_messages", |v| v == 1.0);
    publish(b.p(), &["-r", "-t", "gone/1", "-n"]);
    b.wait_metric("sitewatch_broker_retained_messages", |v| v == 0.0);
    let mut sub = Sub::start(b.p(), &["-t", "gone/#"]);
    publish(b.p(), &["-t", "gone/marker", "-m", "m"]);
    assert_eq!(
        sub.message().2,
        "gone/marker",
        "no retained message came first"
    );
}

/// Opens a connection with `level`'s CONNECT and checks the CONNACK.
fn connected(port: u16, level: u8, id: &str) -> Raw {
    let mut raw = Raw::connect(port);
    raw.send(&connect(level, id, 60, None, None));
    let (b1, body) = raw.packet();
    assert_eq!((b1, body[1]), (0x20, 0), "accepted");
    raw
}

#[test]
fn malformed_and_forbidden_packets_close_the_connection_and_are_counted() {
    let b = Running::start(config());
    let mut local = b.local(&["good/#"], 100);
    let good = |n: u32| {
        publish(b.p(), &["-q", "1", "-t", "good/p", "-m", &n.to_string()]);
    };
    let mut cases = 0;
    let mut check = |b: &Running, local: &mut Local, label: &str, n: f64| {
        cases += 1;
        b.wait_metric(
            &format!("sitewatch_broker_protocol_errors_total{{reason=\"{label}\"}}"),
            |v| v == n,
        );
        good(cases);
        assert_eq!(
            local.next().payload,
            cases.to_string().as_bytes(),
            "after {label}"
        );
    };

    // A packet of type 0 does not exist.
    let mut raw = connected(b.p(), 4, "m1");
    raw.send(&[0x00, 0x00]);
    assert!(raw.closed());
    check(&b, &mut local, "malformed", 1.0);

    // The issue 11 finding: a PUBLISH to a wildcard topic is never acknowledged.
    let mut raw = connected(b.p(), 4, "m2");
    raw.send(&publish_qos1(4, b"sitewatch/v1/s9/#", 1, b"{}"));
    assert_eq!(raw.until_closed(), Vec::<u8>::new(), "no PUBACK");
    check(&b, &mut local, "wildcard_topic", 1.0);

    // MQTT 5: a topic that is not UTF-8 gets DISCONNECT 0x90 (Topic Name invalid).
    let mut raw = connected(b.p(), 5, "m3");
    raw.send(&publish_qos1(5, b"bad/\xff\xfe", 1, b"x"));
    let (b1, body) = raw.packet();
    assert_eq!((b1, body[0]), (0xe0, 0x90));
    assert!(raw.closed());
    check(&b, &mut local, "invalid_utf8", 1.0);

    // A topic alias, which CONNACK did not allow: 0x94.
    let mut raw = connected(b.p(), 5, "m4");
    let mut body = mqtt_str(b"alias/t");
    body.extend_from_slice(&1u16.to_be_bytes());
    body.extend_from_slice(&[3, 0x23, 0, 1]); // properties: Topic Alias 1
    body.extend_from_slice(b"x");
    raw.send(&packet(0x32, &body));
    let (b1, body) = raw.packet();
    assert_eq!((b1, body[0]), (0xe0, 0x94));
    check(&b, &mut local, "topic_alias", 1.0);

    // A second CONNECT.
    let mut raw = connected(b.p(), 4, "m5");
    raw.send(&connect(4, "m5", 60, None, None));
    assert!(raw.closed());
    check(&b, &mut local, "protocol_violation", 1.0);

    // A first packet that is not CONNECT.
    let mut raw = Raw::connect(b.p());
    raw.send(&[0xc0, 0x00]);
    assert!(raw.closed());
    check(&b, &mut local, "protocol_violation", 2.0);

    // MQTT 3.1 (level 3) is refused with CONNACK 0x01.
    let mut raw = Raw::connect(b.p());
    let mut body = mqtt_str(b"MQIsdp");
    body.extend_from_slice(&[3, 2, 0, 60]);
    body.extend(mqtt_str(b"old"));
    raw.send(&packet(0x10, &body));
    assert_eq!(raw.packet(), (0x20, vec![0, 1]));
    assert_eq!(
        b.metric("sitewatch_broker_connects_total{result=\"unsupported_version\"}"),
        1.0
    );

    // A CONNECT body that lies about its lengths.
    let mut raw = Raw::connect(b.p());
    raw.send(&packet(
        0x10,
        &[0, 4, b'M', b'Q', b'T', b'T', 4, 2, 0, 60, 0, 200, b'x'],
    ));
    assert!(raw.closed());
    // (The CONNECT-less connection above counted here too.)
    assert_eq!(
        b.metric("sitewatch_broker_connects_total{result=\"malformed\"}"),
        2.0
    );
    drop(raw);
    good(99);
    assert_eq!(local.next().payload, "99".as_bytes());
}

#[test]
fn an_oversized_packet_closes_the_connection_with_v5_reason_0x95() {
    let b = Running::start(config());
    let mut local = b.local(&["big/#"], 10);
    let mut raw = connected(b.p(), 5, "big5");
    // Only the fixed header of a 300 KiB PUBLISH: refused before its body.
    let announced = packet(0x30, &vec![0u8; 300 * 1024]);
    raw.send(&announced[..5]);
    let (b1, body) = raw.packet();
    assert_eq!((b1, body[0]), (0xe0, 0x95), "DISCONNECT Packet too large");
    assert!(raw.closed());
    // MQTT 3.1.1 clients are just closed; mosquitto_pub reports a failure.
    let dir = tempfile::tempdir().unwrap();
    let big = dir.path().join("big");
    std::fs::write(&big, "x".repeat(300 * 1024)).unwrap();
    let big = big.display().to_string();
    let (ok, out) = pub_(
        b.p(),
        &args(V311, &["-q", "1", "-r", "-t", "big/r", "-f", &big]),
    );
    assert!(!ok, "{out}");
    // An MQTT 5 client does not even send it: CONNACK gave the limit
    // (mosquitto_pub then drops the message and exits 0).
    let _ = pub_(
        b.p(),
        &args(V5, &["-q", "1", "-r", "-t", "big/r", "-f", &big]),
    );
    b.wait_metric(
        "sitewatch_broker_protocol_errors_total{reason=\"packet_too_large\"}",
        |v| v == 2.0,
    );
    assert_eq!(
        b.metric("sitewatch_broker_retained_messages"),
        0.0,
        "nothing retained"
    );
    // 256 KiB of payload, the contract's limit, still passes.
    let limit = dir.path().join("limit");
    std::fs::write(&limit, "y".repeat(256 * 1024)).unwrap();
    publish(
        b.p(),
        &[
            "-q",
            "1",
            "-t",
            "big/ok",
            "-f",
            &limit.display().to_string(),
        ],
    );
    assert_eq!(local.next().payload.len(), 256 * 1024);
}

#[test]
fn v5_clients_never_get_packets_above_their_maximum_packet_size() {
    let b = Running::start(config());
    let mut raw = Raw::connect(b.p());
    // CONNECT v5 with Maximum Packet Size (0x27) = 200.
    let mut body = mqtt_str(b"MQTT");
    body.extend_from_slice(&[5, 2, 0, 60, 5, 0x27, 0, 0, 0, 200]);
    body.extend(mqtt_str(b"small"));
    raw.send(&packet(0x10, &body));
    assert_eq!(raw.packet().0, 0x20);
    // SUBSCRIBE v5 to lim/#, QoS 1.
    let mut sub = vec![0, 1, 0];
    sub.extend(mqtt_str(b"lim/#"));
    sub.push(1);
    raw.send(&packet(0x82, &sub));
    assert_eq!(
        raw.packet(),
        (0x90, vec![0, 1, 0, 1]),
        "SUBACK granted QoS 1"
    );
    publish(
        b.p(),
        &["-q", "1", "-t", "lim/big", "-m", &"z".repeat(1000)],
    );
    publish(b.p(), &["-q", "1", "-t", "lim/small", "-m", "ok"]);
    let (b1, body) = raw.packet();
    assert_eq!(b1 & 0xf0, 0x30);
    assert!(body.ends_with(b"ok"), "only the small one came");
    assert_eq!(
        b.metric("sitewatch_broker_dropped_messages_total{reason=\"too_large_for_client\"}"),
        1.0
    );
}

#[test]
fn a_silent_client_is_closed_after_one_and_a_half_keepalives_and_its_will_published() {
    let b = Running::start(config());
    let mut local = b.local(&["ka/#"], 10);
    let mut raw = Raw::connect(b.p());
    raw.send(&connect(4, "sleepy", 1, None, Some(("ka/state", "lost"))));
    assert_eq!(raw.packet(), (0x20, vec![0, 0]));
    let started = Instant::now();
    let will = local.next();
    assert_eq!(
        (&*will.topic, &will.payload[..]),
        ("ka/state", &b"lost"[..])
    );
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_millis(1400),
        "not before 1.5 x keepalive: {waited:?}"
    );
    assert!(raw.closed());
    assert_eq!(
        b.metric("sitewatch_broker_protocol_errors_total{reason=\"keepalive_timeout\"}"),
        1.0
    );
    // A client that pings in time stays.
    let mut raw = Raw::connect(b.p());
    raw.send(&connect(4, "awake", 1, None, None));
    assert_eq!(raw.packet(), (0x20, vec![0, 0]));
    for _ in 0..3 {
        std::thread::sleep(Duration::from_millis(700));
        raw.send(&[0xc0, 0]);
        assert_eq!(raw.packet(), (0xd0, vec![]), "PINGRESP");
    }
}

#[test]
fn connections_without_connect_in_time_or_beyond_the_limit_are_closed_and_counted() {
    let mut cfg = config();
    cfg.connect_timeout = Duration::from_millis(300);
    cfg.max_connections = 2;
    let b = Running::start(cfg);
    let mut silent = Raw::connect(b.p());
    assert_eq!(silent.until_closed(), Vec::<u8>::new());
    assert_eq!(
        b.metric("sitewatch_broker_connects_total{result=\"timeout\"}"),
        1.0
    );
    b.wait_metric("sitewatch_broker_connections", |v| v == 0.0);
    let _one = connected(b.p(), 4, "one");
    let _two = connected(b.p(), 4, "two");
    let mut three = Raw::connect(b.p());
    assert_eq!(three.until_closed(), Vec::<u8>::new());
    assert_eq!(
        b.metric("sitewatch_broker_connects_total{result=\"max_connections\"}"),
        1.0
    );
}

#[test]
fn a_second_connection_with_the_same_client_id_takes_over_the_first() {
    let b = Running::start(config());
    let mut first = connected(b.p(), 5, "same");
    let _second = connected(b.p(), 5, "same");
    let (b1, body) = first.packet();
    assert_eq!((b1, body[0]), (0xe0, 0x8e), "DISCONNECT Session taken over");
    assert!(first.closed());
}

#[test]
fn shutdown_tells_v5_clients_publishes_no_will_and_ends_the_local_link() {
    let b = Running::start(config());
    let mut local = b.local(&["sd/#"], 10);
    let mut raw = Raw::connect(b.p());
    raw.send(&connect(5, "bye", 60, None, Some(("sd/state", "lost"))));
    assert_eq!(raw.packet().0, 0x20);
    let Running { rt, broker } = b;
    rt.block_on(broker.shutdown());
    let (b1, body) = raw.packet();
    assert_eq!(
        (b1, body[0]),
        (0xe0, 0x8b),
        "DISCONNECT Server shutting down"
    );
    assert_eq!(
        local.recv(Duration::from_secs(5)),
        None,
        "no will, and the link ends"
    );
}
