use super::*;
use crate::Clock;
use crate::state::StateConfig;
use crate::state::tests::{CPU, DISK, T0, apply, birth, readings};

fn shared_at(now: i64) -> Arc<Shared> {
    Arc::new(Shared::new(
        State::new(StateConfig::default()),
        Clock::Fixed(now),
    ))
}

fn scrape(shared: &Arc<Shared>, format: Format) -> String {
    Exposition::new(Arc::clone(shared)).render(format).unwrap()
}

fn lines_of<'a>(text: &'a str, family: &str) -> Vec<&'a str> {
    text.lines()
        .filter(|l| {
            l.strip_prefix("# HELP ")
                .or_else(|| l.strip_prefix("# TYPE "))
                .unwrap_or(l)
                .split(['{', ' '])
                .next()
                == Some(family)
        })
        .collect()
}

#[test]
fn readings_are_exposed_as_gauges_with_their_labels_and_help() {
    let shared = shared_at(T0);
    {
        let mut s = shared.write();
        apply(
            &mut s,
            "sitewatch/v1/bj1/web-01/state",
            &birth("b1"),
            false,
            T0,
        );
        apply(
            &mut s,
            "sitewatch/v1/bj1/web-01/readings",
            &readings(1, &format!("{CPU},{DISK}")),
            false,
            T0,
        );
    }
    let text = scrape(&shared, Format::Prometheus);
    assert_eq!(
        lines_of(&text, "sitewatch_cpu_usage_ratio"),
        [
            "# HELP sitewatch_cpu_usage_ratio CPU busy time, 0..1.",
            "# TYPE sitewatch_cpu_usage_ratio gauge",
            r#"sitewatch_cpu_usage_ratio{site="bj1",host="web-01",src="host",dev="cpu",sensor="cpu"} 0.25"#,
        ]
    );
    assert_eq!(
        lines_of(&text, "sitewatch_disk_reallocated_sectors"),
        [
            "# HELP sitewatch_disk_reallocated_sectors Reallocated sector count.",
            "# TYPE sitewatch_disk_reallocated_sectors gauge",
            r#"sitewatch_disk_reallocated_sectors{site="bj1",host="web-01",src="smart",dev="sda",sensor="reallocated_sectors",model="ST4000",serial="Z1"} 3.0"#,
        ]
    );
    // Only the reading in trouble has a state sample.
    assert_eq!(
        lines_of(&text, "sitewatch_reading_state")[2..],
        [
            r#"sitewatch_reading_state{site="bj1",host="web-01",src="smart",dev="sda",sensor="reallocated_sectors",quantity="disk_reallocated_sectors",model="ST4000",serial="Z1",state="warning"} 1"#
        ]
    );
    assert_eq!(
        lines_of(&text, "sitewatch_agent_up")[2..],
        [r#"sitewatch_agent_up{site="bj1",host="web-01"} 1"#]
    );
    assert_eq!(
        lines_of(&text, "sitewatch_agent_status")[2..],
        [
            r#"sitewatch_agent_status{site="bj1",host="web-01",status="online"} 1"#,
            r#"sitewatch_agent_status{site="bj1",host="web-01",status="lost"} 0"#,
            r#"sitewatch_agent_status{site="bj1",host="web-01",status="shutdown"} 0"#,
            r#"sitewatch_agent_status{site="bj1",host="web-01",status="maintenance"} 0"#,
            r#"sitewatch_agent_status{site="bj1",host="web-01",status="unknown"} 0"#,
        ]
    );
    assert_eq!(
        lines_of(&text, "sitewatch_site_disaster_level")[2..],
        [r#"sitewatch_site_disaster_level{site="bj1"} 0"#]
    );
    assert_eq!(
        lines_of(&text, "sitewatch_agent_last_seen_timestamp_seconds")[2..],
        ["sitewatch_agent_last_seen_timestamp_seconds{site=\"bj1\",host=\"web-01\"} 1764080000.0"]
    );
}

#[test]
fn self_metrics_are_always_there_with_every_reason_at_zero() {
    let shared = shared_at(T0);
    shared.set_links(vec![std::sync::Arc::new(crate::link::LinkStatus::new(
        "embedded",
        "127.0.0.1:1883",
    ))]);
    let text = scrape(&shared, Format::Prometheus);
    let rejected = lines_of(&text, "sitewatch_collector_rejected_messages_total");
    assert_eq!(rejected.len(), 2 + Rejection::REASONS.len());
    assert!(
        rejected.contains(&r#"sitewatch_collector_rejected_messages_total{reason="not_json"} 0"#)
    );
    for line in [
        "sitewatch_collector_duplicate_messages_total 0",
        "sitewatch_collector_sequence_gaps_total 0",
        "sitewatch_collector_readings_total 0",
        r#"sitewatch_collector_messages_total{kind="readings"} 0"#,
        r#"sitewatch_collector_dropped_readings_total{reason="series_limit"} 0"#,
        "sitewatch_collector_series 0",
        r#"sitewatch_collector_broker_connected{broker="embedded"} 0"#,
    ] {
        assert!(
            text.lines().any(|l| l == line),
            "{line} missing from\n{text}"
        );
    }
    // No reading, no agent: their families are absent or empty, never malformed.
    assert!(!text.contains("sitewatch_reading_state"));
}

#[test]
fn null_and_expired_readings_have_no_value_sample() {
    let shared = shared_at(T0 + 16_000);
    {
        let mut s = shared.write();
        apply(
            &mut s,
            "sitewatch/v1/bj1/web-01/state",
            &birth("b1"),
            false,
            T0,
        );
        let null = r#"{"src":"smart","dev":"sdb","name":"temp","q":"temperature_celsius","value":null,"state":"unknown"}"#;
        apply(
            &mut s,
            "sitewatch/v1/bj1/web-01/readings",
            &readings(1, &format!("{CPU},{null}")),
            false,
            T0,
        );
    }
    let text = scrape(&shared, Format::Prometheus);
    // cpu (host source, 5 s) expired at T0 + 15 s; the null temperature never had one.
    assert!(!text.contains("sitewatch_cpu_usage_ratio"), "{text}");
    assert!(!text.contains("sitewatch_temperature_celsius"), "{text}");
    assert!(
        text.contains(r#"quantity="temperature_celsius",state="unknown"} 1"#),
        "{text}"
    );
}

#[test]
fn openmetrics_has_units_and_eof() {
    let shared = shared_at(T0);
    {
        let mut s = shared.write();
        let t = r#"{"src":"ipmi","dev":"bmc","name":"Inlet \"Temp\"","q":"temperature_celsius","value":23.5,"state":"ok","labels":{"state":"x"}}"#;
        apply(
            &mut s,
            "sitewatch/v1/bj1/web-01/readings",
            &readings(1, t),
            false,
            T0,
        );
    }
    let om = scrape(&shared, Format::OpenMetrics);
    assert!(om.ends_with("# EOF\n"), "{om}");
    assert!(
        om.contains("# UNIT sitewatch_temperature_celsius celsius\n"),
        "{om}"
    );
    assert!(
        om.contains(r#"sensor="Inlet \"Temp\"",state="x"} 23.5"#),
        "{om}"
    );
    let prom = scrape(&shared, Format::Prometheus);
    assert!(!prom.contains("# EOF"));
    assert!(!prom.contains("# UNIT"));
    assert!(prom.contains("sitewatch_temperature_celsius{"));
    assert_eq!(
        Format::from_accept(Some("application/openmetrics-text;version=1.0.0")),
        Format::OpenMetrics
    );
    assert_eq!(Format::from_accept(Some("text/plain")), Format::Prometheus);
    assert_eq!(Format::from_accept(None), Format::Prometheus);
}

#[test]
fn reading_labels_named_like_companion_labels_are_renamed_there() {
    let shared = shared_at(T0);
    {
        let mut s = shared.write();
        let r = r#"{"src":"x","dev":"d","name":"n","q":"psu_ok","value":0,"state":"critical","labels":{"quantity":"a","state":"b"}}"#;
        apply(
            &mut s,
            "sitewatch/v1/bj1/web-01/readings",
            &readings(1, r),
            false,
            T0,
        );
    }
    let text = scrape(&shared, Format::Prometheus);
    assert!(
        text.contains(
            r#"quantity="psu_ok",label_quantity="a",label_state="b",state="critical"} 1"#
        ),
        "{text}"
    );
}

#[test]
fn every_family_is_written_once() {
    let shared = shared_at(T0);
    {
        let mut s = shared.write();
        for host in ["a", "b", "c"] {
            apply(
                &mut s,
                &format!("sitewatch/v1/bj1/{host}/state"),
                &birth("b1"),
                false,
                T0,
            );
            apply(
                &mut s,
                &format!("sitewatch/v1/bj1/{host}/readings"),
                &readings(1, &format!("{CPU},{DISK}")),
                false,
                T0,
            );
        }
    }
    let text = scrape(&shared, Format::Prometheus);
    let mut seen = std::collections::HashSet::new();
    for l in text.lines().filter(|l| l.starts_with("# TYPE ")) {
        assert!(seen.insert(l.to_owned()), "family written twice: {l}");
    }
    // And its samples are contiguous.
    let names: Vec<&str> = text
        .lines()
        .filter(|l| !l.starts_with('#'))
        .map(|l| l.split(['{', ' ']).next().unwrap())
        .collect();
    let mut runs = names.clone();
    runs.dedup();
    let unique: std::collections::HashSet<_> = runs.iter().collect();
    assert_eq!(runs.len(), unique.len(), "{text}");
}

#[test]
fn signals_are_exposed_with_levels_per_site_and_the_configured_regions() {
    use sitewatch_protocol::{Cause, Evidence, Level, Severity, Signal};
    let shared = shared_at(T0);
    {
        let mut s = shared.write();
        apply(
            &mut s,
            "sitewatch/v1/bj1/web-01/state",
            &birth("b1"),
            false,
            T0,
        );
    }
    let signal = |cause: Cause, subject: &str, severity| Signal {
        site: "bj1".into(),
        level: cause.level(),
        cause,
        subject: subject.into(),
        severity,
        since: T0,
        evidence: vec![Evidence::Text("why".into())],
    };
    shared.set_signals(std::sync::Arc::new(Published {
        evaluated_at_ms: Some(T0),
        active: vec![
            signal(Cause::Power, "bj1", Severity::Critical),
            signal(Cause::Cooling, "bj1", Severity::Low),
        ],
        disaster_level: [("bj1".to_owned(), 3), ("sh1".to_owned(), 0)].into(),
        regions: [("bj1".to_owned(), "cn-north".to_owned())].into(),
        evaluation_seconds: 0.001,
        site_looks: (3, 40),
    }));
    assert_eq!(Level::L3.as_str(), "L3");
    let text = scrape(&shared, Format::Prometheus);
    assert_eq!(
        lines_of(&text, "sitewatch_signal_active")[2..],
        [
            r#"sitewatch_signal_active{site="bj1",level="L3",cause="power",subject="bj1",severity="critical"} 1"#,
            r#"sitewatch_signal_active{site="bj1",level="L3",cause="cooling",subject="bj1",severity="low"} 1"#,
        ]
    );
    // A configured site nobody reports to yet has its level too.
    assert_eq!(
        lines_of(&text, "sitewatch_site_disaster_level")[2..],
        [
            r#"sitewatch_site_disaster_level{site="bj1"} 3"#,
            r#"sitewatch_site_disaster_level{site="sh1"} 0"#,
        ]
    );
    assert_eq!(
        lines_of(&text, "sitewatch_site_info")[2..],
        [r#"sitewatch_site_info{site="bj1",region="cn-north"} 1"#]
    );
    // The Alertmanager output registers its own counters, only when configured.
    assert!(!text.contains("sitewatch_collector_alertmanager_alerts_sent_total"));
    let mut reg = Exposition::new(std::sync::Arc::clone(&shared));
    let (output, _rx) = crate::output::alerts::Alerts::new(Default::default());
    crate::output::Output::register(&output, reg.registry_mut());
    let text = reg.render(Format::Prometheus).unwrap();
    assert!(text.contains("sitewatch_collector_alertmanager_alerts_sent_total 0"));
    assert!(text.contains(r#"sitewatch_collector_alertmanager_errors_total{kind="timeout"} 0"#));
    assert!(text.contains("sitewatch_collector_signal_evaluation_seconds 0.001"));
    assert!(text.contains("sitewatch_collector_site_evaluations_total{look=\"full\"} 3"));
    assert!(text.contains("sitewatch_collector_site_evaluations_total{look=\"reused\"} 40"));
    // OpenMetrics too.
    let om = reg.render(Format::OpenMetrics).unwrap();
    assert!(om.contains("sitewatch_collector_alertmanager_alerts_sent_total 0"));
    assert!(om.ends_with("# EOF\n"));
}

const RX_TOTAL: &str = r#"{"src":"host","dev":"eth0","name":"eth0","q":"network_receive_bytes_total","value":123456,"state":"ok"}"#;
const POLLS_TOTAL: &str =
    r#"{"src":"agent","dev":"host","name":"polls","q":"agent_polls_total","value":7,"state":"ok"}"#;

fn shared_with(readings_json: &str) -> Arc<Shared> {
    let shared = shared_at(T0);
    {
        let mut s = shared.write();
        apply(
            &mut s,
            "sitewatch/v1/bj1/web-01/state",
            &birth("b1"),
            false,
            T0,
        );
        apply(
            &mut s,
            "sitewatch/v1/bj1/web-01/readings",
            &readings(1, readings_json),
            false,
            T0,
        );
    }
    shared
}

#[test]
fn a_total_quantity_is_a_counter_with_its_unit() {
    let shared = shared_with(&format!("{RX_TOTAL},{POLLS_TOTAL}"));
    let text = scrape(&shared, Format::Prometheus);
    assert_eq!(
        lines_of(&text, "sitewatch_network_receive_bytes_total"),
        [
            "# HELP sitewatch_network_receive_bytes_total Counter network_receive_bytes_total \
             reported by sitewatch agents.",
            "# TYPE sitewatch_network_receive_bytes_total counter",
            r#"sitewatch_network_receive_bytes_total{site="bj1",host="web-01",src="host",dev="eth0",sensor="eth0"} 123456.0"#,
        ]
    );
    assert_eq!(
        lines_of(&text, "sitewatch_agent_polls_total")[1..],
        [
            "# TYPE sitewatch_agent_polls_total counter",
            r#"sitewatch_agent_polls_total{site="bj1",host="web-01",src="agent",dev="host",sensor="polls"} 7.0"#,
        ]
    );

    let om = scrape(&shared, Format::OpenMetrics);
    for line in [
        "# TYPE sitewatch_network_receive_bytes counter",
        "# UNIT sitewatch_network_receive_bytes bytes",
        r#"sitewatch_network_receive_bytes_total{site="bj1",host="web-01",src="host",dev="eth0",sensor="eth0"} 123456.0"#,
        "# TYPE sitewatch_agent_polls counter",
    ] {
        assert!(om.lines().any(|l| l == line), "{line} missing from\n{om}");
    }
    assert!(!om.contains("# UNIT sitewatch_agent_polls "), "{om}");
}

#[test]
fn a_gauge_is_shadowed_by_the_counter_of_its_name_and_counted() {
    // An old agent's gauge and a new agent's counter of the same quantity.
    let old = RX_TOTAL
        .replace("network_receive_bytes_total", "network_receive_bytes")
        .replace("eth0", "eth1");
    let shared = shared_with(&format!("{RX_TOTAL},{old},{CPU}"));
    for format in [Format::Prometheus, Format::OpenMetrics] {
        let text = scrape(&shared, format);
        let types: Vec<&str> = text
            .lines()
            .filter(|l| l.starts_with("# TYPE sitewatch_network_receive"))
            .collect();
        assert_eq!(types.len(), 1, "{types:?}\n{text}");
        assert!(types[0].ends_with(" counter"), "{types:?}");
        assert!(!text.contains(r#"dev="eth1""#), "{text}");
        assert!(
            text.lines()
                .any(|l| l == "sitewatch_collector_shadowed_series 1"),
            "{text}"
        );
        assert!(text.contains("sitewatch_cpu_usage_ratio{"), "{text}");
    }
    // Without the counter, the gauge is exposed again and nothing is shadowed.
    let shared = shared_with(&old);
    let text = scrape(&shared, Format::Prometheus);
    assert!(
        text.contains("# TYPE sitewatch_network_receive_bytes gauge"),
        "{text}"
    );
    assert!(text.contains("sitewatch_collector_shadowed_series 0"));
}

#[test]
fn an_agents_self_metrics_are_exposed_under_sitewatch_agent_and_others_may_not_use_it() {
    let own = r#"{"src":"agent","dev":"buffer","name":"buffer_bytes","q":"agent_buffer_bytes","value":2048,"state":"ok"}"#;
    let squatter = own.replace(r#""src":"agent""#, r#""src":"host""#);
    let fake_up = own.replace("agent_buffer_bytes", "agent_up");
    let shared = shared_with(&format!("{own},{squatter},{fake_up}"));
    let text = scrape(&shared, Format::Prometheus);
    assert_eq!(
        lines_of(&text, "sitewatch_agent_buffer_bytes")[1..],
        [
            "# TYPE sitewatch_agent_buffer_bytes gauge",
            r#"sitewatch_agent_buffer_bytes{site="bj1",host="web-01",src="agent",dev="buffer",sensor="buffer_bytes"} 2048.0"#,
        ]
    );
    // agent_up is the collector's, from liveness, whoever publishes the name.
    assert_eq!(
        lines_of(&text, "sitewatch_agent_up")[2..],
        [r#"sitewatch_agent_up{site="bj1",host="web-01"} 1"#]
    );
    assert!(
        text.lines()
            .any(|l| l
                == r#"sitewatch_collector_dropped_readings_total{reason="reserved_quantity"} 2"#),
        "{text}"
    );
}

#[test]
fn the_collectors_own_agent_metrics_are_reserved_even_for_an_agent() {
    for name in [
        names::AGENT_UP,
        names::AGENT_STATUS,
        names::AGENT_LAST_SEEN,
        names::AGENT_PATH_UP,
    ] {
        let q = name.strip_prefix(names::READING_PREFIX).unwrap();
        assert!(names::is_reserved_quantity("agent", q), "{q}");
    }
}

/// Encodes the readings, a batch (`batch(n)` for the n-th taking) applied
/// to host `bj1/a` before each taking of the state's lock.
fn interleaved(
    shared: &Arc<Shared>,
    takes: &std::sync::atomic::AtomicU64,
    batch: fn(u64) -> String,
) -> String {
    interleaved_with(shared, takes, |s, n| {
        apply(s, "sitewatch/v1/bj1/a/readings", &batch(n), false, T0);
    })
}

/// Encodes the readings, `change(state, n)` made before the n-th taking of
/// the state's lock.
fn interleaved_with(
    shared: &Arc<Shared>,
    takes: &std::sync::atomic::AtomicU64,
    change: impl Fn(&mut State, u64),
) -> String {
    let lock = || {
        let n = takes.fetch_add(1, std::sync::atomic::Ordering::SeqCst) + 1;
        change(&mut shared.write(), n);
        shared.read()
    };
    let mut out = String::new();
    encode_readings_locked(&lock, T0, &mut Text::new(&mut out, Format::Prometheus));
    out
}

/// The readings take the state's lock one family at a time at most: ingest
/// applied between two holds (here at every taking of the lock) gets in,
/// and the exposition stays well formed, each family once.
#[test]
fn a_scrape_lets_ingest_in_between_families() {
    use std::sync::atomic::{AtomicU64, Ordering};

    let shared = shared_at(T0);
    {
        let mut s = shared.write();
        apply(&mut s, "sitewatch/v1/bj1/a/state", &birth("b1"), false, T0);
        apply(
            &mut s,
            "sitewatch/v1/bj1/a/readings",
            &readings(1, &format!("{CPU},{DISK}")),
            false,
            T0,
        );
    }
    let takes = AtomicU64::new(0);
    let text = interleaved(&shared, &takes, |n| {
        readings(n + 1, &format!("{CPU},{DISK}"))
    });
    // Once to list the families, twice per family (cpu, disk: its keys, then
    // its series), and once for the reading states of the one family with a
    // series not ok (the disk's is warning): each time a batch got in.
    assert_eq!(takes.load(Ordering::SeqCst), 6);
    assert_eq!(shared.read().counters().messages.iter().sum::<u64>(), 8);
    assert_eq!(
        lines_of(&text, "sitewatch_reading_state").len(),
        3,
        "{text}"
    );
    let mut seen = std::collections::HashSet::new();
    for l in text.lines().filter(|l| l.starts_with("# TYPE ")) {
        assert!(seen.insert(l.to_owned()), "family written twice: {l}");
    }
    assert_eq!(
        lines_of(&text, "sitewatch_cpu_usage_ratio").len(),
        3,
        "{text}"
    );
}

/// A family larger than one hold is encoded over several, ingest getting in
/// between; each of its series once, those added during the scrape left for
/// the next one.
#[test]
fn a_family_larger_than_one_hold_lets_ingest_in_between_its_series() {
    use std::sync::atomic::{AtomicU64, Ordering};

    let held = 2 * SERIES_PER_HOLD + 10;
    let shared = shared_at(T0);
    {
        let mut s = shared.write();
        for h in 0..held / 1000 + 1 {
            let topic = format!("sitewatch/v1/bj1/h{h}/state");
            apply(&mut s, &topic, &birth("b1"), false, T0);
            let n = (held - h * 1000).min(1000);
            let topic = format!("sitewatch/v1/bj1/h{h}/readings");
            apply(
                &mut s,
                &topic,
                &crate::state::tests::readings_of(n, "t", 1),
                false,
                T0,
            );
        }
        assert_eq!(s.series_count(), held);
    }
    let takes = AtomicU64::new(0);
    // A new series of the same family at every taking.
    let text = interleaved(&shared, &takes, |n| {
        readings(
            n + 1,
            &format!(
                r#"{{"src":"host","dev":"d","name":"new{n}","q":"temperature_celsius","value":1,"state":"ok"}}"#
            ),
        )
    });
    // Listed once, its keys once, then three holds of its series.
    assert_eq!(takes.load(Ordering::SeqCst), 5);
    assert_eq!(shared.read().series_count(), held + 5);
    let samples = lines_of(&text, "sitewatch_temperature_celsius");
    // HELP, TYPE, and the series there were when its keys were copied (the
    // first two batches were in by then).
    assert_eq!(samples.len(), 2 + held + 2, "{}", samples.len());
    let unique: std::collections::HashSet<&&str> = samples.iter().collect();
    assert_eq!(unique.len(), samples.len());
}

/// Host `bj1/<host>`'s batch `seq` of `n` temperatures (`t0`..), all at `value`.
fn publish_temperatures(s: &mut State, host: &str, n: usize, seq: u64, value: u32) {
    let batch = crate::state::tests::readings_of(n, "t", seq)
        .replace(r#""value":1"#, &format!(r#""value":{value}"#));
    let topic = format!("sitewatch/v1/bj1/{host}/readings");
    apply(s, &topic, &batch, false, T0);
}

/// A state of `hosts` hosts (`h0`..) of `per_host` series of one family.
pub(crate) fn one_family_of(hosts: usize, per_host: usize) -> Arc<Shared> {
    let shared = shared_at(T0);
    {
        let mut s = shared.write();
        for h in 0..hosts {
            let topic = format!("sitewatch/v1/bj1/h{h}/state");
            apply(&mut s, &topic, &birth("b1"), false, T0);
            publish_temperatures(&mut s, &format!("h{h}"), per_host, 1, 1);
        }
    }
    shared
}

/// A family is exposed with the values it had at its first hold, so that its
/// samples make one consistent view, even when ingest changes them in
/// between; a series read again later shows the new value at the next scrape.
#[test]
fn a_family_is_exposed_as_it_was_at_its_first_hold() {
    use std::sync::atomic::AtomicU64;

    let shared = one_family_of(40, 1000);
    let takes = AtomicU64::new(0);
    // After the family was copied (the second taking), every host's
    // temperatures move to 2.
    let text = interleaved_with(&shared, &takes, |s, n| {
        if n == 3 {
            for h in 0..40 {
                publish_temperatures(s, &format!("h{h}"), 1000, 2, 2);
            }
        }
    });
    let samples = lines_of(&text, "sitewatch_temperature_celsius");
    assert_eq!(samples.len(), 2 + 40_000);
    assert!(
        samples[2..].iter().all(|l| l.ends_with(" 1.0")),
        "{}",
        samples[2]
    );
    let again = scrape(&shared, Format::Prometheus);
    let samples = lines_of(&again, "sitewatch_temperature_celsius");
    assert!(
        samples[2..].iter().all(|l| l.ends_with(" 2.0")),
        "{}",
        samples[2]
    );
}

/// A host forgotten while its family is being written (between two holds),
/// its slot taken by a new host at once: none of the old host's series are
/// exposed, under either name, and the other hosts' series are each exposed
/// once. The slot no longer names what it named when the family was copied,
/// so the scrape looks every series up again instead of trusting the copy.
#[test]
fn a_host_forgotten_during_a_scrape_is_not_exposed_from_the_copy() {
    use std::sync::atomic::AtomicU64;

    let shared = one_family_of(40, 1000);
    let takes = AtomicU64::new(0);
    let text = interleaved_with(&shared, &takes, |s, n| {
        // After the family was copied (the second taking).
        if n == 3 {
            s.forget("bj1", "h9");
            apply(s, "sitewatch/v1/bj1/new/state", &birth("b1"), false, T0);
            publish_temperatures(s, "new", 1000, 1, 5);
        }
    });
    let samples = lines_of(&text, "sitewatch_temperature_celsius");
    assert!(
        !text.contains(r#"host="h9""#),
        "the forgotten host was exposed"
    );
    let new: Vec<&&str> = samples
        .iter()
        .filter(|l| l.contains(r#"host="new""#))
        .collect();
    // Its series have the keys the old host's had: found again, with its values.
    assert_eq!(new.len(), 1000);
    assert!(new.iter().all(|l| l.ends_with(" 5.0")), "{}", new[0]);
    assert_eq!(samples.len(), 2 + 40_000);
    let unique: std::collections::HashSet<&&str> = samples.iter().collect();
    assert_eq!(unique.len(), samples.len());
}
