//! Issue 11's attacks against the embedded broker bound to 0.0.0.0 (reached
//! through loopback) with authentication on, done as an attacker would, with
//! `mosquitto_pub`/`mosquitto_sub` and raw packets: each is refused or counted,
//! the attacked host's retained state does not change, and a good agent keeps
//! delivering through every one.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod broker_common;

use std::time::Duration;

use broker_common::*;
use sitewatch_collector::broker::BrokerConfig;

const GOOD: (&str, &str) = ("bj1/web-01", "good-secret");
const OTHER: (&str, &str) = ("bj1/web-02", "other-secret");
const STATE: &str = "sitewatch/v1/bj1/web-01/state";
const READINGS: &str = "sitewatch/v1/bj1/web-01/readings";
const BIRTH: &str = r#"{"v":1,"status":"online","ts":1,"boot":"b1","interval_ms":5000}"#;
const LOST: &str = r#"{"v":1,"status":"offline","reason":"lost"}"#;
const MAINTENANCE: &str = r#"{"v":1,"status":"maintenance","ts":2}"#;

/// The broker on 0.0.0.0 with a password file and roles, a good agent
/// (rumqttc, its will set) that has published its birth, and an in-process
/// subscriber standing for the collector.
struct Site {
    _dir: tempfile::TempDir,
    b: Running,
    agent: Agent,
    collector: Local,
    sent: u32,
}

impl Site {
    fn new() -> Site {
        let dir = tempfile::tempdir().unwrap();
        let pw = password_file(
            dir.path(),
            &[
                GOOD,
                OTHER,
                ("col-bj1", "collector-secret"),
                ("grafana", "reader-secret"),
                ("stranger", "stranger-secret"),
            ],
        );
        let any = "0.0.0.0:0".parse().unwrap();
        let mut cfg = BrokerConfig::new(any, any);
        cfg.password_file = Some(pw);
        cfg.allow_anonymous = false;
        cfg.acl.collectors.insert("col-bj1".into());
        cfg.acl.readers.insert("grafana".into());
        let b = Running::start(cfg);
        let mut collector = b.local(&["sitewatch/v1/#"], 1000);
        // The agent's default client id is its host name.
        let mut agent = Agent::connect(&b, b.p(), "web-01", Some(GOOD), Some((STATE, LOST)), 20);
        agent.publish(STATE, BIRTH, true);
        collector.wait_for(STATE, BIRTH);
        Site {
            _dir: dir,
            b,
            agent,
            collector,
            sent: 0,
        }
    }

    fn port(&self) -> u16 {
        self.b.p()
    }

    /// The good agent still delivers, and nothing forged reached the collector
    /// in between: the next message it gets is this one.
    fn agent_still_delivers(&mut self) {
        self.sent += 1;
        let payload = format!(r#"{{"v":1,"seq":{},"ts":1,"readings":[]}}"#, self.sent);
        self.agent.publish(READINGS, &payload, false);
        let d = self.collector.next();
        assert_eq!(
            (&*d.topic, d.payload.as_ref()),
            (READINGS, payload.as_bytes()),
            "the next message is the agent's"
        );
        self.agent.poll();
        assert_eq!(self.agent.connacks, 1, "the agent was never disconnected");
        assert!(self.agent.errors.is_empty(), "{:?}", self.agent.errors);
    }

    /// The retained state of web-01 is still its birth.
    fn state_unchanged(&self) {
        let mut fresh = self.b.local(&[STATE], 10);
        let d = fresh.next();
        assert!(d.retain);
        assert_eq!(d.payload, BIRTH.as_bytes());
    }

    fn denied(&self, action: &str, reason: &str) -> f64 {
        self.b.metric(&format!(
            "sitewatch_broker_denied_total{{action=\"{action}\",reason=\"{reason}\"}}"
        ))
    }

    fn connects(&self, result: &str) -> f64 {
        self.b.metric(&format!(
            "sitewatch_broker_connects_total{{result=\"{result}\"}}"
        ))
    }
}

fn login((u, p): (&'static str, &'static str)) -> [&'static str; 4] {
    ["-u", u, "-P", p]
}

#[test]
fn no_credentials_are_refused_beyond_loopback() {
    let mut s = Site::new();
    for v in ["311", "5"] {
        let (ok, out) = pub_(
            s.port(),
            &["-V", v, "-q", "1", "-r", "-t", STATE, "-m", LOST],
        );
        assert!(!ok && out.to_lowercase().contains("not auth"), "{v}: {out}");
    }
    assert_eq!(s.connects("no_credentials"), 2.0);
    // Not on the second listener either.
    let (ok, _) = pub_(s.b.port("listen_v5"), &["-t", STATE, "-m", LOST]);
    assert!(!ok);
    s.state_unchanged();
    s.agent_still_delivers();
}

#[test]
fn a_wrong_password_or_an_unknown_user_is_refused() {
    let mut s = Site::new();
    for v in ["311", "5"] {
        let (ok, out) = pub_(
            s.port(),
            &[
                "-V", v, "-u", GOOD.0, "-P", "guess", "-r", "-t", STATE, "-m", LOST,
            ],
        );
        assert!(
            !ok && out.to_lowercase().contains("bad user name or password"),
            "{v}: {out}"
        );
        let (ok, _) = pub_(
            s.port(),
            &["-V", v, "-u", "nobody", "-P", "x", "-t", STATE, "-m", LOST],
        );
        assert!(!ok);
    }
    assert_eq!(s.connects("bad_credentials"), 4.0);
    // Authenticated but with no role (not <site>/<host>, not listed): refused.
    let (ok, out) = pub_(
        s.port(),
        &[
            &login(("stranger", "stranger-secret"))[..],
            &["-t", "x", "-m", "y"],
        ]
        .concat(),
    );
    assert!(!ok && out.to_lowercase().contains("not auth"), "{out}");
    assert_eq!(s.connects("not_authorized"), 1.0);
    s.state_unchanged();
    s.agent_still_delivers();
}

#[test]
fn another_agents_credentials_cannot_forge_lost_or_maintenance_for_a_different_host() {
    let mut s = Site::new();
    for payload in [LOST, MAINTENANCE] {
        // MQTT 3.1.1: acknowledged and dropped (as mosquitto does), counted.
        publish(
            s.port(),
            &[
                &login(OTHER)[..],
                &["-V", "311", "-q", "1", "-r", "-t", STATE, "-m", payload],
            ]
            .concat(),
        );
        // MQTT 5: PUBACK with reason 0x87, which mosquitto_pub reports.
        let (_, out) = pub_(
            s.port(),
            &[
                &login(OTHER)[..],
                &["-V", "5", "-q", "1", "-r", "-t", STATE, "-m", payload],
            ]
            .concat(),
        );
        assert!(out.contains("Not authorized"), "{out}");
        s.agent_still_delivers();
    }
    assert_eq!(s.denied("publish", "other_host"), 4.0);
    s.state_unchanged();
    // Its own state it may publish.
    publish(
        s.port(),
        &[
            &login(OTHER)[..],
            &[
                "-q",
                "1",
                "-r",
                "-t",
                "sitewatch/v1/bj1/web-02/state",
                "-m",
                BIRTH,
            ],
        ]
        .concat(),
    );
    s.collector.wait_for("sitewatch/v1/bj1/web-02/state", BIRTH);
}

#[test]
fn readings_of_a_host_that_does_not_exist_are_refused() {
    let mut s = Site::new();
    let ups = r#"{"v":1,"seq":1,"ts":1,"readings":[{"src":"modbus","dev":"ups-a","name":"on_battery","q":"ups_on_battery","value":1,"state":"critical"}]}"#;
    for v in ["311", "5"] {
        let _ = pub_(
            s.port(),
            &[
                &login(OTHER)[..],
                &[
                    "-V",
                    v,
                    "-q",
                    "1",
                    "-t",
                    "sitewatch/v1/bj1/ghost/readings",
                    "-m",
                    ups,
                ],
            ]
            .concat(),
        );
    }
    assert_eq!(s.denied("publish", "other_host"), 2.0);
    // Nor a made-up topic or the collector's own.
    for topic in [
        "sitewatch/v1/bj1/_signals",
        "sitewatch/v1/_collectors/col-bj1/presence",
        "anything",
    ] {
        let _ = pub_(
            s.port(),
            &[&login(OTHER)[..], &["-q", "1", "-t", topic, "-m", "{}"]].concat(),
        );
    }
    assert_eq!(s.denied("publish", "not_permitted"), 3.0);
    s.agent_still_delivers();
}

#[test]
fn a_forged_client_id_does_not_take_the_real_agents_connection() {
    let mut s = Site::new();
    // With valid credentials of its own, the client id sent is ignored: the
    // session is the identity's.
    for id in ["web-01", "bj1/web-01"] {
        let mut forged = Sub::publisher(
            s.port(),
            &[
                &login(OTHER)[..],
                &["-i", id, "-t", "sitewatch/v1/bj1/web-02/readings"],
            ]
            .concat(),
        );
        forged.wait_line(|l| l.contains("received CONNACK (0)"), "CONNACK");
        s.agent_still_delivers();
        assert_eq!(
            s.b.metric("sitewatch_broker_sessions"),
            2.0,
            "the agent's and the other identity's"
        );
    }
    // Without credentials it is refused before that.
    let (ok, _) = pub_(s.port(), &["-i", "web-01", "-t", "x", "-m", "y"]);
    assert!(!ok);
    s.agent_still_delivers();
}

#[test]
fn a_wildcard_publish_is_never_acknowledged_and_closes_the_connection() {
    let mut s = Site::new();
    let mut raw = Raw::connect(s.port());
    raw.send(&connect(4, "w", 60, Some(OTHER), None));
    assert_eq!(raw.packet(), (0x20, vec![0, 0]));
    raw.send(&publish_qos1(4, b"sitewatch/v1/bj1/#", 1, LOST.as_bytes()));
    assert_eq!(raw.until_closed(), Vec::<u8>::new(), "no PUBACK");
    assert_eq!(
        s.b.metric("sitewatch_broker_protocol_errors_total{reason=\"wildcard_topic\"}"),
        1.0
    );
    s.state_unchanged();
    s.agent_still_delivers();
}

#[test]
fn an_oversized_retained_message_is_refused_and_the_collector_keeps_ingesting() {
    let mut s = Site::new();
    let dir = tempfile::tempdir().unwrap();
    let big = dir.path().join("big");
    // The 1.1 MB retained message that blinded the collector behind mosquitto.
    std::fs::write(&big, "x".repeat(1_100_000)).unwrap();
    let (ok, _) = pub_(
        s.port(),
        &[
            &login(OTHER)[..],
            &[
                "-V",
                "311",
                "-q",
                "1",
                "-r",
                "-t",
                "sitewatch/v1/bj1/web-02/state",
                "-f",
                &big.display().to_string(),
            ],
        ]
        .concat(),
    );
    assert!(!ok);
    assert_eq!(
        s.b.metric("sitewatch_broker_protocol_errors_total{reason=\"packet_too_large\"}"),
        1.0
    );
    assert_eq!(
        s.b.metric("sitewatch_broker_retained_messages"),
        1.0,
        "only the agent's birth"
    );
    s.agent_still_delivers();
}

#[test]
fn a_will_on_another_hosts_topic_refuses_the_connection() {
    let mut s = Site::new();
    let (ok, out) = pub_(
        s.port(),
        &[
            &login(OTHER)[..],
            &[
                "-t",
                "sitewatch/v1/bj1/web-02/state",
                "-m",
                BIRTH,
                "--will-topic",
                STATE,
                "--will-payload",
                LOST,
                "--will-retain",
            ],
        ]
        .concat(),
    );
    assert!(!ok && out.to_lowercase().contains("not auth"), "{out}");
    assert_eq!(s.denied("publish", "other_host"), 1.0);
    assert_eq!(s.connects("not_authorized"), 1.0);
    s.state_unchanged();
    s.agent_still_delivers();
}

#[test]
fn roles_agents_do_not_subscribe_readers_do_not_publish_collectors_publish_their_topics() {
    let mut s = Site::new();
    // An agent subscribing: SUBACK failure. (Another agent's identity: with
    // web-01's own, it would take the running agent's session over.)
    let mut sub = Sub::raw(
        s.port(),
        &[&login(OTHER)[..], &["-V", "5", "-t", "sitewatch/#"]].concat(),
    );
    sub.wait_line(
        |l| l.contains("All subscription requests were denied"),
        "the refusal",
    );
    assert_eq!(s.denied("subscribe", "agent_subscribe"), 1.0);
    // A reader sees everything, retained included, and publishes nothing.
    let reader = login(("grafana", "reader-secret"));
    let mut dash = Sub::start(
        s.port(),
        &[&reader[..], &["-q", "1", "-t", "sitewatch/#"]].concat(),
    );
    assert_eq!(dash.message(), (true, 1, STATE.into(), BIRTH.into()));
    let (_, out) = pub_(
        s.port(),
        &[
            &reader[..],
            &["-V", "5", "-q", "1", "-t", STATE, "-m", LOST],
        ]
        .concat(),
    );
    assert!(out.contains("Not authorized"), "{out}");
    assert_eq!(s.denied("publish", "read_only"), 1.0);
    // A collector publishes _signals and below its own prefix, not a host's state.
    let col = login(("col-bj1", "collector-secret"));
    publish(
        s.port(),
        &[
            &col[..],
            &[
                "-q",
                "1",
                "-r",
                "-t",
                "sitewatch/v1/bj1/_signals",
                "-m",
                "{}",
            ],
        ]
        .concat(),
    );
    publish(
        s.port(),
        &[
            &col[..],
            &[
                "-q",
                "1",
                "-t",
                "sitewatch/v1/_collectors/col-bj1/presence",
                "-m",
                "up",
            ],
        ]
        .concat(),
    );
    let _ = pub_(
        s.port(),
        &[&col[..], &["-q", "1", "-t", STATE, "-m", LOST]].concat(),
    );
    let _ = pub_(
        s.port(),
        &[
            &col[..],
            &[
                "-q",
                "1",
                "-t",
                "sitewatch/v1/_collectors/col-sh2/presence",
                "-m",
                "up",
            ],
        ]
        .concat(),
    );
    assert_eq!(s.denied("publish", "not_permitted"), 2.0);
    s.collector.wait_for("sitewatch/v1/bj1/_signals", "{}");
    s.collector
        .wait_for("sitewatch/v1/_collectors/col-bj1/presence", "up");
    s.agent_still_delivers();
    let seen = dash.messages_for(Duration::from_millis(200));
    assert!(
        seen.iter().all(|l| !l.contains(LOST)),
        "no forged state: {seen:?}"
    );
}

#[test]
fn an_authenticated_agents_will_is_published_when_it_is_killed() {
    let mut s = Site::new();
    let will = "sitewatch/v1/bj1/web-02/state";
    // A long-lived mosquitto_pub as web-02's agent process, then SIGKILL.
    let mut victim = Sub::publisher(
        s.port(),
        &[
            &login(OTHER)[..],
            &[
                "-i",
                "web-02",
                "-q",
                "1",
                "-t",
                will,
                "--will-topic",
                will,
                "--will-payload",
                LOST,
                "--will-qos",
                "1",
                "--will-retain",
            ],
        ]
        .concat(),
    );
    victim.wait_line(|l| l.contains("received CONNACK (0)"), "CONNACK");
    victim.kill();
    s.collector.wait_for(will, LOST);
    s.agent_still_delivers();
}

#[test]
fn a_restarted_agent_takes_its_own_session_over_and_the_old_connections_will_marks_the_gap() {
    let mut s = Site::new();
    // The same identity connects again while the broker still holds the old
    // connection (a crash it has not noticed yet): only the credential holder
    // can do this.
    let mut restarted = Agent::connect(
        &s.b,
        s.port(),
        "web-01",
        Some(GOOD),
        Some((STATE, LOST)),
        20,
    );
    s.collector.wait_for(STATE, LOST);
    restarted.publish(STATE, BIRTH, true);
    s.collector.wait_for(STATE, BIRTH);
    s.state_unchanged();
}
