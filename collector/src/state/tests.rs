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
    assert_eq!(&**views[0].q, "cpu_usage_ratio");
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
        .find(|v| &**v.q == "cpu_usage_ratio")
        .unwrap();
    assert_eq!(cpu.value, Some(0.5));
    assert_eq!(s.counters().readings, 3);
    assert_eq!(s.counters().messages, [1, 2, 0, 0]);
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
        let mut v: Vec<String> = s.readings(now).map(|r| r.q.to_string()).collect();
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
        .map(|r| (r.host.to_owned(), r.q.to_string()))
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
    assert_eq!(s.counters().dropped_readings, [1, 1, 0]);
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
    assert_eq!(s.counters().messages, [0, 0, 1, 0]);
    assert_eq!(s.counters().duplicates, 1);
}

pub(crate) fn readings_of(n: usize, prefix: &str, seq: u64) -> String {
    let body: Vec<String> = (0..n)
        .map(|i| {
            format!(
                r#"{{"src":"host","dev":"d","name":"{prefix}{i}","q":"temperature_celsius","value":1,"state":"ok"}}"#
            )
        })
        .collect();
    readings(seq, &body.join(","))
}

#[test]
fn a_flooding_host_fills_its_own_quota_and_never_drops_another_hosts_reading() {
    let mut s = State::new(StateConfig {
        max_series: 1_000,
        max_series_per_host: 600,
        ..StateConfig::default()
    });
    let flood = "sitewatch/v1/bj1/flood/readings";
    for (seq, chunk) in (1..=5).zip(0..) {
        apply(
            &mut s,
            flood,
            &readings_of(200, &format!("x{chunk}-"), seq),
            false,
            T0,
        );
    }
    assert_eq!(s.series_count(), 600);
    let c = s.counters();
    assert_eq!(c.dropped_readings[DropReason::HostSeriesLimit.index()], 400);
    // Another host fills the state to its limit...
    let other = "sitewatch/v1/bj1/other/readings";
    apply(&mut s, other, &readings_of(400, "y", 1), false, T0);
    assert_eq!(s.series_count(), 1_000);
    // ...and a third host's real UPS reading still gets in: it is under its share.
    let ups = r#"{"src":"modbus","dev":"ups-a","name":"on_battery","q":"ups_on_battery","value":1,"state":"critical"}"#;
    apply(
        &mut s,
        "sitewatch/v1/bj1/gw-01/readings",
        &readings(1, ups),
        false,
        T0,
    );
    assert!(
        s.readings(T0)
            .any(|r| &**r.q == "ups_on_battery" && r.host == "gw-01")
    );
    // The flooder, over its share, still cannot add.
    let before = s.counters().dropped_readings[DropReason::SeriesLimit.index()];
    apply(&mut s, other, &readings_of(1, "z", 2), false, T0);
    assert_eq!(
        s.counters().dropped_readings[DropReason::SeriesLimit.index()],
        before + 1
    );
}

#[test]
fn hosts_beyond_the_site_and_total_limits_are_refused_without_interning_them() {
    let mut s = State::new(StateConfig {
        max_hosts: 3,
        max_hosts_per_site: 2,
        ..StateConfig::default()
    });
    for h in ["a", "b", "c"] {
        apply(
            &mut s,
            &format!("sitewatch/v1/bj1/{h}/state"),
            &birth("b1"),
            true,
            T0,
        );
    }
    assert_eq!(s.hosts().count(), 2);
    assert_eq!(s.counters().refused_hosts, [0, 1]);
    assert_eq!(s.strings().get("c"), None);
    for h in ["d", "e"] {
        apply(
            &mut s,
            &format!("sitewatch/v1/sh1/{h}/state"),
            &birth("b1"),
            true,
            T0,
        );
    }
    assert_eq!(s.hosts().count(), 3);
    assert_eq!(s.counters().refused_hosts, [1, 1]);
    // A known host keeps being heard; forgetting one makes room again.
    s.forget("bj1", "a");
    apply(&mut s, "sitewatch/v1/bj1/c/state", &birth("b1"), true, T0);
    assert!(s.host_slot_of("bj1", "c").is_some());
}

#[test]
fn names_of_an_expired_flood_are_swept_and_silent_hosts_forgotten() {
    let mut s = State::new(StateConfig {
        forget_after_ms: 3_600_000,
        ..StateConfig::default()
    });
    apply(&mut s, STATE, &birth("b1"), false, T0);
    apply(&mut s, READINGS, &readings(1, CPU), false, T0);
    let baseline = s.strings().len();
    let flood = "sitewatch/v1/bj1/flood/readings";
    for seq in 1..=10 {
        apply(
            &mut s,
            flood,
            &readings_of(500, &format!("n{seq}-"), seq),
            false,
            T0,
        );
    }
    assert!(s.strings().len() > baseline + 5_000);
    // The agent keeps reporting; the flood's series (host source, 60 s default
    // interval) expire after 3 minutes.
    let later = T0 + 200_000;
    apply(&mut s, READINGS, &readings(2, CPU), false, later);
    assert_eq!(s.prune(later), 5_000);
    assert!(
        s.strings().len() <= baseline + 2,
        "{} strings left of {baseline}",
        s.strings().len()
    );
    assert!(s.readings(later).any(|r| r.host == "web-01"));
    // An hour of silence later the flooder is forgotten; web-01, heard, stays.
    let much_later = T0 + 3_700_000;
    apply(&mut s, READINGS, &readings(3, CPU), false, much_later);
    s.prune(much_later);
    assert!(s.host_slot_of("bj1", "flood").is_none());
    assert!(s.host_slot_of("bj1", "web-01").is_some());
    assert_eq!(s.counters().forgotten_hosts, 1);
    // ...unless the caller keeps it (an expected host).
    let mut s2 = State::new(StateConfig {
        forget_after_ms: 3_600_000,
        ..StateConfig::default()
    });
    apply(&mut s2, STATE, &birth("b1"), false, T0);
    s2.prune_keeping(much_later, |_, h| h == "web-01");
    assert!(s2.host_slot_of("bj1", "web-01").is_some());
}

#[test]
fn a_previous_boots_buffered_batches_after_a_new_birth_are_ingested_not_refused() {
    let mut s = State::new(StateConfig::default());
    let tagged = |boot: &str, seq: u64, value: f64, ts: i64| {
        format!(
            r#"{{"v":1,"seq":{seq},"ts":{ts},"boot":"{boot}","readings":[{}]}}"#,
            CPU.replace("0.25", &value.to_string())
        )
    };
    apply(&mut s, STATE, &birth("old"), false, T0);
    apply(&mut s, READINGS, &tagged("old", 1, 0.1, T0), false, T0);
    // The agent was killed; its disk buffer kept seq 2..=4 of boot "old". The
    // new process announces itself and sends its own seq 1 and 2 first.
    apply(&mut s, STATE, &birth("new"), false, T0 + 60_000);
    for seq in 1..=2 {
        let a = apply(
            &mut s,
            READINGS,
            &tagged("new", seq, 0.9, T0 + 60_000),
            false,
            T0 + 60_000,
        );
        assert_eq!(
            a,
            Applied::Readings {
                readings: 1,
                gap: 0
            }
        );
    }
    for seq in 2..=4 {
        let ts = T0 + 1_000 * seq as i64;
        let a = apply(
            &mut s,
            READINGS,
            &tagged("old", seq, 0.2, ts),
            false,
            T0 + 61_000,
        );
        assert_eq!(
            a,
            Applied::Readings {
                readings: 1,
                gap: 0
            },
            "old seq {seq}"
        );
    }
    // A repeat of either boot is a duplicate; no gap and no restart was counted.
    assert_eq!(
        apply(
            &mut s,
            READINGS,
            &tagged("old", 3, 0.2, T0),
            false,
            T0 + 62_000
        ),
        Applied::Duplicate
    );
    assert_eq!(
        apply(
            &mut s,
            READINGS,
            &tagged("new", 2, 0.9, T0),
            false,
            T0 + 62_000
        ),
        Applied::Duplicate
    );
    let c = s.counters();
    assert_eq!((c.gaps, c.sequence_restarts, c.duplicates), (0, 0, 2));
    // The old readings are older than the new one: the latest value stays.
    let cpu = s
        .readings(T0 + 62_000)
        .find(|v| &**v.q == "cpu_usage_ratio")
        .unwrap();
    assert_eq!(cpu.value, Some(0.9));
    // Without a `boot` in the payload, the birth's boot names the batch, as before.
    assert_eq!(
        apply(&mut s, READINGS, &readings(3, CPU), false, T0 + 63_000),
        Applied::Readings {
            readings: 1,
            gap: 0
        }
    );
    assert_eq!(
        apply(&mut s, READINGS, &readings(3, CPU), false, T0 + 63_000),
        Applied::Duplicate
    );
}

#[test]
fn an_event_read_again_with_the_same_id_is_kept_once() {
    let mut s = State::new(StateConfig::default());
    let ev = |boot: &str, seq: u64, id: &str| {
        format!(
            r#"{{"v":1,"seq":{seq},"ts":{T0},"boot":"{boot}","events":[{{"src":"ipmi","dev":"bmc","type":"sel_entry","severity":"high","message":"psu failure","id":"{id}"}}]}}"#
        )
    };
    let topic = "sitewatch/v1/bj1/web-01/events";
    assert_eq!(
        apply(&mut s, topic, &ev("a", 1, "sel.bmc.0001"), false, T0),
        Applied::Events
    );
    // After a crash the new boot reads the same SEL entry again: a new message,
    // the same event.
    assert_eq!(
        apply(&mut s, topic, &ev("b", 1, "sel.bmc.0001"), false, T0),
        Applied::Events
    );
    assert_eq!(
        apply(&mut s, topic, &ev("b", 2, "sel.bmc.0002"), false, T0),
        Applied::Events
    );
    let (_, h) = s.hosts().next().unwrap();
    let ids: Vec<_> = h
        .recent_events
        .iter()
        .map(|(_, e)| e.id.clone().unwrap())
        .collect();
    assert_eq!(ids, ["sel.bmc.0001", "sel.bmc.0002"]);
    assert_eq!(s.counters().duplicate_events, 1);
    assert_eq!(s.counters().duplicates, 0);
}

/// What one host holds, found through its own list, is what a walk over every
/// series finds for it: through new series, values replaced, series expiring
/// and pruned at different times, a host forgotten and its slot given to a new
/// one, and series refused at the host's quota.
#[test]
fn a_hosts_own_list_finds_what_a_walk_over_every_series_finds() {
    let cfg = StateConfig {
        max_series_per_host: 30,
        ..StateConfig::default()
    };
    let mut s = State::new(cfg);
    let sorted = |mut v: Vec<(String, String, String, f64)>| {
        v.sort_by(|a, b| a.partial_cmp(b).unwrap());
        v
    };
    let flat = |r: ReadingView<'_>| {
        (
            r.q.to_string(),
            r.dev.to_string(),
            format!("{:?}", r.labels),
            r.value.unwrap_or(f64::NAN),
        )
    };
    let mut checked = 0;
    for step in 0..40i64 {
        let now = T0 + step * 1_000;
        for h in 0..6 {
            if (step + h) % 3 == 0 {
                continue;
            }
            let host = format!("sitewatch/v1/bj1/h{h}");
            if step == 0 {
                apply(&mut s, &format!("{host}/state"), &birth("b1"), false, now);
            }
            // A few series every time, others only early (they expire), and
            // more than the quota allows for host 5.
            let mut body = Vec::new();
            let width = if h == 5 { 40 } else { 3 + (step % 4) };
            for i in 0..width {
                let src = if step < 10 || i < 2 { "host" } else { "smart" };
                body.push(format!(
                    r#"{{"src":"{src}","dev":"d{i}","name":"n","q":"q_{}","value":{step},"state":"ok","labels":{{"k":"{}"}}}}"#,
                    i % 3,
                    i % 2
                ));
            }
            let seq = u64::try_from(step + 1).unwrap();
            apply(
                &mut s,
                &format!("{host}/readings"),
                &readings(seq, &body.join(",")),
                false,
                now,
            );
        }
        if step == 20 {
            s.forget("bj1", "h2");
        }
        if step % 7 == 0 {
            s.prune(now);
        }
        for (slot, h) in s.hosts() {
            let own = sorted(s.readings_of_host(slot, now).map(flat).collect());
            let walked = sorted(
                s.readings_with_slots(now)
                    .filter(|(x, _)| *x == slot)
                    .map(|(_, r)| flat(r))
                    .collect(),
            );
            assert_eq!(own, walked, "step {step}, slot {slot}");
            assert!(h.series() <= 30, "step {step}: {} series", h.series());
            checked += own.len();
        }
        let held: usize = s.hosts().map(|(_, h)| h.series()).sum();
        assert_eq!(held, s.series_count(), "step {step}");
    }
    assert!(checked > 1_000, "{checked}");
}

/// A batch's series are found by guessing the next one in the host's list
/// (`cursor.rs`); whatever the order, whatever changed, each value lands on
/// the series its names say. Random batches from a few hosts (shuffled,
/// subsets, repeated readings, names that differ from a neighbour's in one
/// field only, labels that come and go) are applied in place, as ingest does,
/// and what the state holds is compared with a plain map of every reading by
/// its names.
#[test]
fn every_reading_lands_on_the_series_its_names_say_whatever_the_batch_order() {
    use sitewatch_protocol::{Decoded, decode_in_place};
    let mut seed: u64 = 0x2545_f491_4f6c_dd1d;
    let mut rand = move |n: usize| {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        (seed % n as u64) as usize
    };
    // Groups of series, each differing from its group's first in one field
    // only, listed side by side: a reading skipped in a batch puts its
    // neighbour where the guess looks.
    let mut universe: Vec<(&str, String, String, &str, &str)> = Vec::new();
    for k in 0..4 {
        let (dev, name) = (format!("d{k}"), format!("n{k}"));
        universe.push(("host", dev.clone(), name.clone(), "q_a", ""));
        universe.push(("smart", dev.clone(), name.clone(), "q_a", ""));
        universe.push(("host", format!("{dev}x"), name.clone(), "q_a", ""));
        universe.push(("host", dev.clone(), format!("{name}x"), "q_a", ""));
        universe.push(("host", dev.clone(), name.clone(), "q_b", ""));
        for labels in [
            r#","labels":{"k":"1"}"#,
            r#","labels":{"k":"2"}"#,
            r#","labels":{"j":"1"}"#,
            r#","labels":{"k":"1","m":"x"}"#,
        ] {
            universe.push(("host", dev.clone(), name.clone(), "q_a", labels));
        }
    }
    let labels_json = |l: &[(&str, &str)]| {
        if l.is_empty() {
            String::new()
        } else {
            let pairs: Vec<String> = l.iter().map(|(k, v)| format!(r#""{k}":"{v}""#)).collect();
            format!(r#","labels":{{{}}}"#, pairs.join(","))
        }
    };
    let held = |s: &State| -> BTreeMap<String, f64> {
        s.readings(T0)
            .map(|r| {
                (
                    format!(
                        "{} {} {} {} {} {}",
                        r.host,
                        r.src,
                        r.dev,
                        r.name,
                        r.q,
                        labels_json(&r.labels)
                    ),
                    r.value.unwrap(),
                )
            })
            .collect()
    };
    let mut s = State::new(StateConfig::default());
    let mut model: BTreeMap<String, f64> = BTreeMap::new();
    let mut seqs = [0u64; 3];
    let mut guessed_orders = 0;
    for step in 0..600 {
        let h = rand(3);
        // Mostly the same order as before (what agents do), sometimes a
        // shuffle, a subset or a reading twice.
        let mut order: Vec<usize> = (0..universe.len()).collect();
        match rand(5) {
            0 => {
                for i in (1..order.len()).rev() {
                    order.swap(i, rand(i + 1));
                }
            }
            1 => order.retain(|_| rand(3) != 0),
            2 => {
                let i = rand(order.len());
                order.insert(rand(order.len()), order[i]);
            }
            _ => guessed_orders += 1,
        }
        let mut body = Vec::new();
        for &i in &order {
            let (src, dev, name, q, labels) = &universe[i];
            let value = (step * 100 + i) as f64;
            body.push(format!(
                r#"{{"src":"{src}","dev":"{dev}","name":"{name}","q":"{q}","value":{value},"state":"ok"{labels}}}"#
            ));
            model.insert(format!("h{h} {src} {dev} {name} {q} {labels}"), value);
        }
        seqs[h] += 1;
        let payload = readings(seqs[h], &body.join(","));
        let topic = format!("sitewatch/v1/bj1/h{h}/readings");
        let decoded = decode_in_place(&topic, payload.as_bytes()).unwrap();
        assert!(matches!(decoded, Decoded::Readings(..)));
        s.apply_decoded(0, &decoded, false, T0);
        // After every batch, not only at the end: a value put on the wrong
        // series is overwritten by the next batch that guesses right.
        assert_eq!(held(&s), model, "after batch {step}, order {order:?}");
    }
    assert_eq!(s.series_count(), 3 * universe.len());
    assert!(guessed_orders > 200, "{guessed_orders}");
}
