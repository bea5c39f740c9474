use super::*;
use sitewatch_protocol::decode;

pub(crate) const T0: i64 = 1_764_080_000_000;

pub(crate) fn birth(boot: &str) -> String {
    format!(
        r#"{{"v":1,"status":"online","ts":{T0},"boot":"{boot}","agent":"sitewatch-agent/0.1.0",
        "interval_ms":5000,"sources":{{"host":5000,"smart":600000}},"labels":{{"room":"a1"}}}}"#
    )
}

pub(crate) fn readings(seq: u64, body: &str) -> String {
    format!(r#"{{"v":1,"seq":{seq},"ts":{T0},"readings":[{body}]}}"#)
}

pub(crate) const CPU: &str =
    r#"{"src":"host","dev":"cpu","name":"cpu","q":"cpu_usage_ratio","value":0.25,"state":"ok"}"#;
pub(crate) const DISK: &str = r#"{"src":"smart","dev":"sda","name":"reallocated_sectors","q":"disk_reallocated_sectors","value":3,"state":"warning","labels":{"model":"ST4000","serial":"Z1"}}"#;

pub(crate) fn apply(
    state: &mut State,
    topic: &str,
    payload: &str,
    retained: bool,
    now: i64,
) -> Applied {
    let msg = decode(topic, payload.as_bytes()).unwrap();
    state.apply(&msg, retained, now)
}

const STATE: &str = "sitewatch/v1/bj1/web-01/state";
const READINGS: &str = "sitewatch/v1/bj1/web-01/readings";

/// The inventory as the API shows it, judged with the default policy and a
/// collector started long ago (no grace in effect), one broker always up.
pub(crate) fn infos(state: &State, now: i64) -> Vec<HostInfo> {
    let cfg = sitewatch_signals::SignalsConfig::default();
    let judge = Judge {
        policy: sitewatch_signals::Policy::new(&cfg, i64::MIN / 2),
        links: &[],
        names: &[],
    };
    state.host_infos(&judge, now)
}

fn status(state: &State, now: i64) -> (AgentStatus, Option<&'static str>) {
    let i = &infos(state, now)[0];
    (i.status, i.reason)
}

#[test]
fn readings_become_series_keyed_by_host_source_device_name_and_labels() {
    let mut s = State::new(StateConfig::default());
    apply(&mut s, STATE, &birth("b1"), false, T0);
    let applied = apply(
        &mut s,
        READINGS,
        &readings(1, &format!("{CPU},{DISK}")),
        false,
        T0,
    );
    assert_eq!(
        applied,
        Applied::Readings {
            readings: 2,
            gap: 0
        }
    );
    assert_eq!(s.series_count(), 2);
    let mut views: Vec<_> = s.readings(T0).collect();
    views.sort_by_key(|v| v.q);
    assert_eq!(views[0].q, "cpu_usage_ratio");
    assert_eq!(views[0].value, Some(0.25));
    assert_eq!(views[1].labels, [("model", "ST4000"), ("serial", "Z1")]);
    assert_eq!(views[1].state, ReadingState::Warning);
    assert_eq!((views[1].site, views[1].host), ("bj1", "web-01"));
    // The same reading again replaces the value, no new series.
    let cpu2 = CPU.replace("0.25", "0.5");
    apply(&mut s, READINGS, &readings(2, &cpu2), false, T0 + 5_000);
    assert_eq!(s.series_count(), 2);
    let cpu = s
        .readings(T0 + 5_000)
        .find(|v| v.q == "cpu_usage_ratio")
        .unwrap();
    assert_eq!(cpu.value, Some(0.5));
    assert_eq!(s.counters().readings, 3);
    assert_eq!(s.counters().messages, [1, 2, 0]);
}

#[test]
fn duplicate_batches_are_dropped_and_gaps_counted() {
    let mut s = State::new(StateConfig::default());
    apply(&mut s, STATE, &birth("b1"), false, T0);
    for seq in [1, 2, 3] {
        apply(&mut s, READINGS, &readings(seq, CPU), false, T0);
    }
    assert_eq!(
        apply(&mut s, READINGS, &readings(2, CPU), false, T0),
        Applied::Duplicate
    );
    assert_eq!(
        apply(&mut s, READINGS, &readings(7, CPU), false, T0),
        Applied::Readings {
            readings: 1,
            gap: 3
        }
    );
    assert_eq!(s.counters().duplicates, 1);
    assert_eq!(s.counters().gaps, 3);
    assert_eq!(s.counters().readings, 4);
    // A new boot starts a new sequence: 1 is new again.
    apply(&mut s, STATE, &birth("b2"), false, T0);
    assert_eq!(
        apply(&mut s, READINGS, &readings(1, CPU), false, T0),
        Applied::Readings {
            readings: 1,
            gap: 0
        }
    );
    // The will does not carry a boot: the sequence goes on.
    apply(
        &mut s,
        STATE,
        r#"{"v":1,"status":"offline","reason":"lost"}"#,
        true,
        T0,
    );
    assert_eq!(
        apply(&mut s, READINGS, &readings(1, CPU), false, T0),
        Applied::Duplicate
    );
}

#[test]
fn gaps_are_not_counted_when_sharing_the_load() {
    let mut s = State::new(StateConfig {
        count_gaps: false,
        ..StateConfig::default()
    });
    apply(&mut s, READINGS, &readings(1, CPU), false, T0);
    apply(&mut s, READINGS, &readings(9, CPU), false, T0);
    assert_eq!(s.counters().gaps, 0);
}

#[test]
fn series_expire_after_three_intervals_of_their_source() {
    let mut s = State::new(StateConfig::default());
    apply(&mut s, STATE, &birth("b1"), false, T0);
    // host: 5 s -> 15 s; smart: 600 s -> 30 min.
    apply(
        &mut s,
        READINGS,
        &readings(1, &format!("{CPU},{DISK}")),
        false,
        T0,
    );
    let qs = |s: &State, now| {
        let mut v: Vec<String> = s.readings(now).map(|r| r.q.to_owned()).collect();
        v.sort();
        v
    };
    assert_eq!(
        qs(&s, T0 + 15_000),
        ["cpu_usage_ratio", "disk_reallocated_sectors"]
    );
    assert_eq!(qs(&s, T0 + 15_001), ["disk_reallocated_sectors"]);
    assert_eq!(qs(&s, T0 + 1_800_001), Vec::<String>::new());
    // Housekeeping removes only what readers no longer see.
    assert_eq!(s.prune(T0 + 15_001), 1);
    assert_eq!(s.series_count(), 1);
    assert_eq!(s.prune(T0 + 1_800_001), 1);
    assert_eq!(s.series_count(), 0);
}

#[test]
fn source_without_announced_interval_uses_heartbeat_then_default() {
    let mut s = State::new(StateConfig::default());
    // No birth at all: the default interval (60 s) x 3.
    apply(&mut s, READINGS, &readings(1, CPU), false, T0);
    assert_eq!(s.readings(T0 + 180_000).count(), 1);
    assert_eq!(s.readings(T0 + 180_001).count(), 0);
    let (_, h) = s.hosts().next().unwrap();
    assert_eq!(h.source_interval_ms(999, 60_000), 60_000);
}

#[test]
fn older_reading_does_not_replace_a_newer_one() {
    let mut s = State::new(StateConfig::default());
    let new = CPU.replace(r#""state":"ok""#, r#""state":"ok","ts":2000"#);
    let old = CPU
        .replace("0.25", "0.9")
        .replace(r#""state":"ok""#, r#""state":"ok","ts":1000"#);
    apply(&mut s, READINGS, &readings(2, &new), false, T0);
    apply(&mut s, READINGS, &readings(1, &old), false, T0);
    let r = s.readings(T0).next().unwrap();
    assert_eq!((r.value, r.ts_ms), (Some(0.25), 2000));
}

#[test]
fn liveness_follows_birth_will_shutdown_maintenance_and_heartbeats() {
    let mut s = State::new(StateConfig::default());
    apply(&mut s, STATE, &birth("b1"), false, T0);
    assert_eq!(status(&s, T0), (AgentStatus::Online, None));
    apply(&mut s, READINGS, &readings(1, CPU), false, T0 + 5_000);
    // Heartbeat 5 s: lost 15 s after the last readings message.
    assert_eq!(status(&s, T0 + 20_000).0, AgentStatus::Online);
    assert_eq!(
        status(&s, T0 + 20_001),
        (AgentStatus::Lost, Some("heartbeat"))
    );
    apply(&mut s, READINGS, &readings(2, CPU), false, T0 + 21_000);
    assert_eq!(status(&s, T0 + 21_000).0, AgentStatus::Online);
    apply(
        &mut s,
        STATE,
        r#"{"v":1,"status":"offline","reason":"lost"}"#,
        false,
        T0 + 22_000,
    );
    assert_eq!(status(&s, T0 + 22_000), (AgentStatus::Lost, Some("will")));
    apply(
        &mut s,
        STATE,
        &format!(r#"{{"v":1,"status":"offline","reason":"shutdown","ts":{T0}}}"#),
        false,
        T0 + 23_000,
    );
    assert_eq!(
        status(&s, T0 + 99_000),
        (AgentStatus::Shutdown, Some("shutdown"))
    );
    apply(
        &mut s,
        STATE,
        r#"{"v":1,"status":"maintenance"}"#,
        false,
        T0 + 24_000,
    );
    assert_eq!(status(&s, T0 + 999_000).0, AgentStatus::Maintenance);
    // What the birth said survives the will, the shutdown and maintenance.
    let info = &infos(&s, T0)[0];
    assert_eq!(info.interval_ms, Some(5000));
    assert_eq!(info.sources.get("smart"), Some(&600_000));
    assert_eq!(info.labels.get("room").map(String::as_str), Some("a1"));
    assert_eq!(info.boot.as_deref(), Some("b1"));
    assert_eq!(info.last_seen, Some(T0 + 24_000));
}

#[test]
fn retained_will_does_not_count_as_a_sign_of_life() {
    let mut s = State::new(StateConfig::default());
    apply(
        &mut s,
        STATE,
        r#"{"v":1,"status":"offline","reason":"lost"}"#,
        true,
        T0,
    );
    let info = &infos(&s, T0)[0];
    assert_eq!(info.status, AgentStatus::Lost);
    assert_eq!(info.last_seen, None);
    // A retained birth gives its own ts, not the time of replay.
    apply(&mut s, STATE, &birth("b1"), true, T0 + 60_000);
    assert_eq!(infos(&s, T0)[0].last_seen, Some(T0));
}

#[test]
fn cleared_retained_state_forgets_the_host_and_its_series() {
    let mut s = State::new(StateConfig::default());
    apply(&mut s, STATE, &birth("b1"), false, T0);
    apply(
        &mut s,
        READINGS,
        &readings(1, &format!("{CPU},{DISK}")),
        false,
        T0,
    );
    apply(
        &mut s,
        "sitewatch/v1/bj1/web-02/readings",
        &readings(1, CPU),
        false,
        T0,
    );
    assert_eq!(s.series_count(), 3);
    assert_eq!(apply(&mut s, STATE, "", true, T0), Applied::Forgotten);
    assert_eq!(s.series_count(), 1);
    let hosts: Vec<_> = infos(&s, T0).into_iter().map(|h| h.host).collect();
    assert_eq!(hosts, ["web-02"]);
    // The slot is reused by the next new host without mixing series up.
    apply(
        &mut s,
        "sitewatch/v1/bj2/db-01/readings",
        &readings(1, DISK),
        false,
        T0,
    );
    let mut owners: Vec<_> = s
        .readings(T0)
        .map(|r| (r.host.to_owned(), r.q.to_owned()))
        .collect();
    owners.sort();
    assert_eq!(
        owners,
        [
            ("db-01".to_owned(), "disk_reallocated_sectors".to_owned()),
            ("web-02".to_owned(), "cpu_usage_ratio".to_owned())
        ]
    );
}

#[test]
fn reserved_quantities_and_the_series_limit_drop_readings_with_a_count() {
    let mut s = State::new(StateConfig {
        max_series: 2,
        ..StateConfig::default()
    });
    let reserved = CPU.replace("cpu_usage_ratio", "agent_up");
    let other = CPU.replace(r#""dev":"cpu""#, r#""dev":"cpu1""#);
    let third = CPU.replace(r#""dev":"cpu""#, r#""dev":"cpu2""#);
    apply(
        &mut s,
        READINGS,
        &readings(1, &format!("{reserved},{CPU},{other},{third}")),
        false,
        T0,
    );
    assert_eq!(s.series_count(), 2);
    assert_eq!(s.counters().dropped_readings, [1, 1]);
    assert_eq!(s.counters().readings, 2);
}

#[test]
fn null_value_is_kept_with_its_unknown_state() {
    let mut s = State::new(StateConfig::default());
    let null = r#"{"src":"ipmi","dev":"bmc","name":"Fan 1","q":"fan_speed_rpm","value":null,"state":"unknown"}"#;
    apply(&mut s, READINGS, &readings(1, null), false, T0);
    let r = s.readings(T0).next().unwrap();
    assert_eq!((r.value, r.state), (None, ReadingState::Unknown));
}

#[test]
fn events_are_deduplicated_and_kept_per_host() {
    let mut s = State::new(StateConfig::default());
    let ev = |seq| {
        format!(
            r#"{{"v":1,"seq":{seq},"ts":{T0},"events":[{{"src":"modbus","dev":"ups-a","type":"ups_on_battery","severity":"critical","message":"mains lost"}}]}}"#
        )
    };
    let topic = "sitewatch/v1/bj1/web-01/events";
    assert_eq!(apply(&mut s, topic, &ev(1), false, T0), Applied::Events);
    assert_eq!(apply(&mut s, topic, &ev(1), false, T0), Applied::Duplicate);
    let (_, h) = s.hosts().next().unwrap();
    assert_eq!(h.recent_events.len(), 1);
    assert_eq!(h.recent_events[0].1.ts, Some(T0));
    assert_eq!(s.counters().messages, [0, 0, 1]);
    assert_eq!(s.counters().duplicates, 1);
}
