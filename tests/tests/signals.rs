//! Disaster signals end to end: readings published with `mosquitto_pub` to a real
//! mosquitto -> the collector's engine -> a real Alertmanager, the retained
//! `_signals` topic, `/api/v1/signals` and `/metrics`.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code

use std::{
    collections::BTreeSet,
    path::Path,
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use serde_json::Value;
use sitewatch_tests::{
    alertmanager::Alertmanager,
    mosquitto::{self, Mosquitto},
    observer::Observer,
    scrape,
    sitewatch::{Broker, Collector},
    wait,
};

const SITE: &str = "e2e";

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

/// A UPS gateway as a third-party publisher would report it: a retained birth with
/// a long heartbeat (so that it is never lost during the test), then its readings.
fn publish_birth(broker: &Mosquitto) {
    let birth = format!(
        r#"{{"v":1,"status":"online","ts":{},"boot":"b1","interval_ms":600000,"sources":{{"modbus":600000}}}}"#,
        now_ms()
    );
    mosquitto::publish(
        broker.port,
        &format!("sitewatch/v1/{SITE}/gw-01/state"),
        &birth,
        true,
    );
}

fn publish_ups(broker: &Mosquitto, seq: u64, on_battery: bool) {
    let batch = format!(
        r#"{{"v":1,"seq":{seq},"ts":{},"readings":[{{"src":"modbus","dev":"ups-a","name":"on_battery","q":"ups_on_battery","value":{},"state":"{}"}}]}}"#,
        now_ms(),
        u8::from(on_battery),
        if on_battery { "critical" } else { "ok" },
    );
    mosquitto::publish(
        broker.port,
        &format!("sitewatch/v1/{SITE}/gw-01/readings"),
        &batch,
        false,
    );
}

/// The collector's configuration: short durations so that the test takes seconds.
fn write_config(dir: &Path, alertmanager: Option<&str>) -> String {
    let mut text = format!(
        "[signals]\nclear_after = \"2s\"\n[signals.power]\ngenerator_start_grace = \"2s\"\n\
         [signals.sites.{SITE}]\nregion = \"test-region\"\n"
    );
    if let Some(url) = alertmanager {
        text.push_str(&format!(
            "[alertmanager]\nurl = \"{url}\"\nresend_interval = \"2s\"\ntimeout = \"2s\"\n"
        ));
    }
    let path = dir.join("collector.toml");
    std::fs::write(&path, text).unwrap();
    path.display().to_string()
}

fn power_alerts(am: &Alertmanager) -> Vec<Value> {
    am.alerts()
        .into_iter()
        .filter(|a| a["labels"]["alertname"] == "SitewatchPower")
        .collect()
}

fn ends_at_ms(alert: &Value) -> i64 {
    let ends = alert["endsAt"].as_str().unwrap();
    let t = humantime::parse_rfc3339(ends).unwrap();
    t.duration_since(UNIX_EPOCH).unwrap().as_millis() as i64
}

#[test]
fn ups_on_battery_past_grace_is_pushed_to_alertmanager_and_resolved_when_mains_return() {
    let dir = tempfile::tempdir().unwrap();
    let am = Alertmanager::start(dir.path());
    let broker = Mosquitto::start(dir.path(), None);
    let config = write_config(dir.path(), Some(&am.url()));
    let collector = Collector::start(
        dir.path(),
        Broker::External(broker.url()),
        &["--config", &config],
    );
    publish_birth(&broker);
    publish_ups(&broker, 1, true);

    let alert = wait::until(
        Duration::from_secs(20),
        "SitewatchPower in Alertmanager",
        || power_alerts(&am).into_iter().next(),
    );
    let labels = &alert["labels"];
    assert_eq!(labels["site"], SITE);
    assert_eq!(labels["level"], "L3");
    assert_eq!(labels["cause"], "power");
    assert_eq!(labels["subject"], SITE);
    assert_eq!(labels["severity"], "critical");
    assert_eq!(labels["region"], "test-region");
    assert_eq!(
        alert["annotations"]["summary"],
        format!("{SITE}: UPS on battery past the grace with no generator")
    );
    let description = alert["annotations"]["description"].as_str().unwrap();
    assert!(
        description.contains("UPS on battery: ups-a on_battery on gw-01"),
        "{description}"
    );
    assert_eq!(alert["status"]["state"], "active", "{alert}");
    // Beside it, the collector's always-firing watchdog (a dead-man's switch).
    let watchdog = am
        .alerts()
        .into_iter()
        .find(|a| a["labels"]["alertname"] == "SitewatchWatchdog")
        .expect("the SitewatchWatchdog alert");
    assert_eq!(watchdog["labels"]["severity"], "none");
    assert_eq!(watchdog["status"]["state"], "active", "{watchdog}");
    // endsAt is four resend intervals (2 s) ahead of the push.
    let ahead = ends_at_ms(&alert) - now_ms();
    assert!((4_000..=9_000).contains(&ahead), "endsAt {ahead} ms ahead");
    let metrics = collector.metrics();
    assert!(
        scrape::value(
            &metrics,
            "sitewatch_collector_alertmanager_alerts_sent_total",
            &[]
        )
        .unwrap()
            >= 1.0
    );

    // It is re-sent: its endsAt moves on.
    let first_ends = ends_at_ms(&alert);
    wait::until(Duration::from_secs(10), "the alert re-sent", || {
        power_alerts(&am)
            .into_iter()
            .find(|a| ends_at_ms(a) > first_ends)
    });

    // Mains back: cleared 2 s later, and pushed once more with endsAt = now.
    publish_ups(&broker, 2, false);
    wait::until(Duration::from_secs(15), "the alert resolved", || {
        let open: Vec<Value> = power_alerts(&am)
            .into_iter()
            .filter(|a| ends_at_ms(a) > now_ms() + 1_000)
            .collect();
        open.is_empty().then_some(())
    });
    assert_eq!(
        scrape::value(
            &collector.metrics(),
            "sitewatch_collector_alertmanager_errors_total",
            &[("kind", "connect")]
        ),
        Some(0.0),
        "collector log:\n{}",
        collector.proc.log()
    );
}

fn signal_set_from_api(collector: &Collector) -> BTreeSet<Vec<String>> {
    let body = scrape::get(collector.http_port, "/api/v1/signals")
        .unwrap()
        .body;
    let signals: Vec<Value> = serde_json::from_str(&body).unwrap();
    signals
        .iter()
        .map(|s| {
            ["site", "level", "cause", "subject", "severity"]
                .iter()
                .map(|k| s[*k].as_str().unwrap().to_owned())
                .collect()
        })
        .collect()
}

fn signal_set_from_metrics(collector: &Collector) -> BTreeSet<Vec<String>> {
    scrape::find(&collector.metrics(), "sitewatch_signal_active", &[])
        .into_iter()
        .map(|s| {
            assert_eq!(s.value, 1.0);
            ["site", "level", "cause", "subject", "severity"]
                .iter()
                .map(|k| s.labels[*k].clone())
                .collect()
        })
        .collect()
}

#[test]
fn signals_are_published_retained_and_agree_with_the_api_and_metrics() {
    let dir = tempfile::tempdir().unwrap();
    let broker = Mosquitto::start(dir.path(), None);
    let config = write_config(dir.path(), None);
    let collector = Collector::start(
        dir.path(),
        Broker::External(broker.url()),
        &["--config", &config],
    );
    publish_birth(&broker);
    publish_ups(&broker, 1, true);
    collector.wait_for_value(
        Duration::from_secs(15),
        "sitewatch_site_disaster_level",
        &[("site", SITE)],
        3.0,
    );
    let from_metrics = signal_set_from_metrics(&collector);
    let from_api = signal_set_from_api(&collector);
    let power: Vec<String> = [SITE, "L3", "power", SITE, "critical"]
        .map(str::to_owned)
        .to_vec();
    assert!(from_metrics.contains(&power), "{from_metrics:?}");
    assert_eq!(from_api, from_metrics);
    sitewatch_tests::scrape::assert_promtool_accepts(
        &scrape::get(collector.http_port, "/metrics").unwrap().body,
    );
    assert_eq!(
        scrape::value(
            &collector.metrics(),
            "sitewatch_site_info",
            &[("site", SITE), ("region", "test-region")]
        ),
        Some(1.0)
    );

    // A subscriber that comes later gets the site's signals: retained.
    let topic = format!("sitewatch/v1/{SITE}/_signals");
    let late = Observer::start(broker.port, "late-observer", &topic);
    let message = wait::until(Duration::from_secs(10), "a retained _signals", || {
        late.received()
            .into_iter()
            .rev()
            .find(|m| m.topic == topic && m.json()["level"] == 3)
    });
    assert!(message.retain, "_signals is published retained");
    let payload = message.json();
    assert_eq!(payload["v"], 1);
    assert!(payload["ts"].as_i64().unwrap() > 0);
    let signals = payload["signals"].as_array().unwrap();
    assert_eq!(signals.len(), 1, "{payload}");
    assert_eq!(signals[0]["cause"], "power");
    assert_eq!(signals[0]["severity"], "critical");
    assert!(signals[0]["since"].as_i64().unwrap() > 0);
    assert!(!signals[0]["evidence"].as_array().unwrap().is_empty());

    // Mains back: the site's retained message goes to level 0 with no signal, and
    // the API and the metrics agree again.
    publish_ups(&broker, 2, false);
    collector.wait_for_value(
        Duration::from_secs(15),
        "sitewatch_site_disaster_level",
        &[("site", SITE)],
        0.0,
    );
    wait::until(Duration::from_secs(10), "_signals at level 0", || {
        late.saw(|m| {
            m.topic == topic
                && m.json()["level"] == 0
                && m.json()["signals"] == serde_json::json!([])
        })
        .then_some(())
    });
    assert!(signal_set_from_api(&collector).is_empty());
    assert!(signal_set_from_metrics(&collector).is_empty());
}

#[test]
fn recorded_live_traffic_replays_to_the_signal_it_raised() {
    let dir = tempfile::tempdir().unwrap();
    let broker = Mosquitto::start(dir.path(), None);
    let config = write_config(dir.path(), None);
    let record = dir.path().join("live.jsonl");
    let collector = Collector::start(
        dir.path(),
        Broker::External(broker.url()),
        &["--config", &config, "--record", record.to_str().unwrap()],
    );
    publish_birth(&broker);
    publish_ups(&broker, 1, true);
    collector.wait_for_value(
        Duration::from_secs(15),
        "sitewatch_site_disaster_level",
        &[("site", SITE)],
        3.0,
    );
    // The replay ends at the last record: one more batch after the grace lets it
    // reach the instant the live collector raised the signal.
    std::thread::sleep(Duration::from_secs(3));
    publish_ups(&broker, 2, true);
    let recorded = wait::until(Duration::from_secs(5), "three recorded lines", || {
        let text = std::fs::read_to_string(&record).unwrap_or_default();
        (text.lines().count() >= 3).then_some(text)
    });
    for line in recorded.lines() {
        let v: Value = serde_json::from_str(line).unwrap();
        assert!(
            v["topic"]
                .as_str()
                .unwrap()
                .starts_with("sitewatch/v1/e2e/gw-01/")
        );
    }
    let out = std::process::Command::new(sitewatch_tests::sitewatch::bin("sitewatch-collector"))
        .args(["replay", record.to_str().unwrap(), "--config", &config])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let timeline: Vec<Value> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(timeline.len(), 1, "{timeline:?}");
    assert_eq!(timeline[0]["event"], "raised");
    assert_eq!(timeline[0]["cause"], "power");
    assert_eq!(timeline[0]["site"], SITE);
}
