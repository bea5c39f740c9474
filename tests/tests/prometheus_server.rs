//! A real Prometheus server, configured from the shipped example
//! (`packaging/prometheus/prometheus.example.yml`, intervals shortened to 1 s),
//! scraping a live collector fed by `sitewatch-sim site` and its agents, with
//! the PromQL mirror (`sitewatch-rules.yml`) loaded and a real Alertmanager as
//! its alert destination:
//!
//! - a simulated power loss fires the mirror's `SitewatchPower` with the same
//!   site, level, cause, subject and severity as the collector's own signal,
//!   both read through Prometheus' HTTP API, and the alert reaches Alertmanager;
//! - every query of the Grafana dashboard returns data for the simulated site
//!   (a panel may return nothing only if it is for a source the site lacks and
//!   its description says `Needs the <src> source`).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code

use std::{collections::BTreeMap, process::Command, time::Duration};

use serde_json::Value;
use sitewatch_tests::{
    alertmanager::Alertmanager,
    drill::{SimSite, Stack, agent_config, start_agent},
    prometheus::{Prometheus, config_from_example, packaging, percent_encode},
    wait,
};

const SITE: &str = "dr1";
/// The sources the simulated site's agents run (the gateway: modbus; both:
/// host; every agent measures itself).
const SITE_SOURCES: [&str; 3] = ["host", "modbus", "agent"];
/// The labels a signal and its alert share.
const SIGNAL_LABELS: [&str; 5] = ["site", "level", "cause", "subject", "severity"];
/// The DR plan's budget from fault to signal.
const TARGET: Duration = Duration::from_secs(30);

fn promtool(args: &[&str]) {
    let out = Command::new("promtool")
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("promtool is required (scripts/install-test-deps.sh): {e}"));
    assert!(
        out.status.success(),
        "promtool {args:?} failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn the_shipped_scrape_config_passes_promtool_check_config() {
    // Its rule file is where the package installs it, not here: syntax only.
    let example = packaging().join("prometheus/prometheus.example.yml");
    promtool(&[
        "check",
        "config",
        "--syntax-only",
        example.to_str().unwrap(),
    ]);
    // With the repository's rule file, everything is checked (rules included).
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("prometheus.yml");
    std::fs::write(
        &config,
        config_from_example(&["127.0.0.1:9184".into()], &["127.0.0.1:9093".into()]),
    )
    .unwrap();
    promtool(&["check", "config", config.to_str().unwrap()]);
}

/// The labels of a query result or alert, as a map.
fn labels(v: &Value) -> BTreeMap<String, String> {
    v.get("metric")
        .or_else(|| v.get("labels"))
        .and_then(Value::as_object)
        .map(|m| {
            m.iter()
                .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_owned()))
                .collect()
        })
        .unwrap_or_default()
}

fn signal_labels(all: &BTreeMap<String, String>) -> BTreeMap<String, String> {
    all.iter()
        .filter(|(k, _)| SIGNAL_LABELS.contains(&k.as_str()))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

/// One query of the dashboard: its panel and what it asks.
#[derive(Debug)]
struct PanelQuery {
    panel: String,
    description: String,
    expr: String,
}

fn dashboard_queries() -> (Value, Vec<PanelQuery>) {
    let path = packaging().join("grafana/sitewatch-dashboard.json");
    let dashboard: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    fn walk(panels: &[Value], out: &mut Vec<PanelQuery>) {
        for p in panels {
            for t in p["targets"].as_array().into_iter().flatten() {
                if let Some(expr) = t["expr"].as_str() {
                    out.push(PanelQuery {
                        panel: p["title"].as_str().unwrap_or("?").to_owned(),
                        description: p["description"].as_str().unwrap_or("").to_owned(),
                        expr: expr.to_owned(),
                    });
                }
            }
            walk(p["panels"].as_array().map_or(&[], Vec::as_slice), out);
        }
    }
    let mut queries = Vec::new();
    walk(dashboard["panels"].as_array().unwrap(), &mut queries);
    (dashboard, queries)
}

/// Grafana's variables as the dashboard's user sees them for the simulated site.
fn as_grafana_runs_it(expr: &str) -> String {
    expr.replace("${site}", SITE)
        .replace("$site", SITE)
        .replace("$__rate_interval", "15s")
        .replace("$__interval", "5s")
        .replace("$__range", "1m")
}

/// The source a panel says it needs (`Needs the smart source`), if any.
fn needed_source(description: &str) -> Option<String> {
    let rest = description.split("Needs the ").nth(1)?;
    let word = rest.split_whitespace().next()?;
    Some(word.trim_matches('`').to_owned())
}

#[test]
fn a_real_prometheus_fires_the_mirrors_power_alert_like_the_collector_and_every_dashboard_query_has_data()
 {
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path();
    let sim = SimSite::start(dir);
    let stack = Stack::start(dir, "[signals]\nclear_after = \"3s\"\n");
    let _gateway = start_agent(
        dir,
        "gw-01",
        &agent_config(SITE, "gw-01", stack.mqtt_port, &sim.modbus_config()),
    );
    let server = start_agent(
        dir,
        "web-01",
        &agent_config(SITE, "web-01", stack.mqtt_port, ""),
    );
    stack.wait_online(SITE, &["gw-01", "web-01"]);
    let alertmanager = Alertmanager::start(dir);
    let collector = format!("127.0.0.1:{}", stack.collector.http_port);
    let am = format!("127.0.0.1:{}", alertmanager.port);
    let prometheus = Prometheus::start(dir, &config_from_example(&[collector], &[am]));
    // The configuration it runs is the one promtool accepts.
    promtool(&["check", "config", prometheus.config_path.to_str().unwrap()]);
    wait::until(Duration::from_secs(20), "the collector scraped", || {
        prometheus.targets_up().then_some(())
    });
    // A planned stop: the "agents not online" panel has a row to show.
    server.signal("TERM");
    wait::until(
        Duration::from_secs(20),
        "web-01 shut down, seen by Prometheus",
        || {
            (!prometheus
                .query(r#"sitewatch_agent_status{host="web-01",status="shutdown"} == 1"#)
                .is_empty())
            .then_some(())
        },
    );
    for q in [
        "sitewatch_ups_on_battery",
        "sitewatch_generator_running",
        "sitewatch_inlet_temperature_celsius",
    ] {
        wait::until(Duration::from_secs(20), q, || {
            (!prometheus.query(q).is_empty()).then_some(())
        });
    }

    // The power loss: mains gone, the generator fails to start.
    assert!(sim.control("ups-a", "mains_lost").starts_with("ok"));
    assert!(
        sim.control("genset", "generator_fails_to_start")
            .starts_with("ok")
    );
    let mirror = wait::until(TARGET, "the mirror's SitewatchPower firing", || {
        prometheus
            .alerts()
            .into_iter()
            .find(|a| a["labels"]["alertname"] == "SitewatchPower" && a["state"] == "firing")
    });
    let collectors = wait::until(
        Duration::from_secs(10),
        "the collector's power signal in Prometheus",
        || {
            let r = prometheus.query(r#"sitewatch_signal_active{cause="power"} == 1"#);
            (!r.is_empty()).then_some(r)
        },
    );
    assert_eq!(collectors.len(), 1, "{collectors:?}");
    let signal = signal_labels(&labels(&collectors[0]));
    let alert = labels(&mirror);
    assert_eq!(signal.len(), SIGNAL_LABELS.len(), "{signal:?}");
    assert_eq!(signal_labels(&alert), signal, "mirror {alert:?}");
    assert_eq!(signal["subject"], SITE);
    assert_eq!(signal["severity"], "critical");
    // Besides the signal's labels the mirror's alert has only its name and
    // which of its rules fired.
    let mut extra: Vec<&str> = alert
        .keys()
        .map(String::as_str)
        .filter(|k| !SIGNAL_LABELS.contains(k))
        .collect();
    extra.sort_unstable();
    assert_eq!(extra, ["alertname", "condition"], "{alert:?}");
    assert_eq!(alert["condition"], "generator_fault");

    // The example's alerting section delivers it to Alertmanager.
    wait::until(
        Duration::from_secs(15),
        "SitewatchPower at Alertmanager",
        || {
            alertmanager
                .alerts()
                .into_iter()
                .find(|a| signal_labels(&labels(a)) == signal)
        },
    );

    // Every query of the dashboard, with the fault still on.
    let (dashboard, queries) = dashboard_queries();
    assert!(queries.len() >= 10, "{queries:?}");
    let site_values = prometheus
        .api(&format!(
            "label/site/values?match[]={}",
            percent_encode("sitewatch_agent_up")
        ))
        .unwrap();
    assert!(
        site_values.as_array().unwrap().iter().any(|v| v == SITE),
        "the $site variable ({}) lists {site_values}",
        dashboard["templating"]["list"][1]["definition"]
    );
    // Recording rules evaluate every 5 s (their group's own interval), so a
    // query of one may have nothing for a few seconds after Prometheus started.
    let empty_queries = || {
        let mut empty = Vec::new();
        for q in &queries {
            let expr = as_grafana_runs_it(&q.expr);
            let result = prometheus
                .try_query(&expr)
                .unwrap_or_else(|e| panic!("panel {:?}: {expr}: {e}", q.panel));
            let allowed_empty = needed_source(&q.description)
                .is_some_and(|src| !SITE_SOURCES.contains(&src.as_str()));
            if result.is_empty() && !allowed_empty {
                empty.push(format!("{}: {expr}", q.panel));
            }
        }
        empty
    };
    let empty = wait::within(Duration::from_secs(15), || {
        Some(empty_queries()).filter(Vec::is_empty)
    })
    .unwrap_or_else(empty_queries);
    assert!(
        empty.is_empty(),
        "dashboard queries without data for the simulated site:\n{}",
        empty.join("\n")
    );
}
