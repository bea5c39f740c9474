//! A real Prometheus server (Debian's `prometheus`) on a free loopback port,
//! configured from the shipped example, and its HTTP API.

use std::{
    path::{Path, PathBuf},
    process::Command,
    time::Duration,
};

use serde_json::Value;

use crate::{free_port, process::Proc, scrape, wait};

pub const PROMETHEUS: &str = "/usr/bin/prometheus";

/// The repository's `packaging/` folder.
pub fn packaging() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../packaging")
}

/// The shipped scrape configuration made to run here: 1 s intervals, the
/// repository's rule file, loopback targets. Every replaced text must be in
/// the example, so that an edit of the example cannot silently leave the test
/// running something else.
pub fn config_from_example(collectors: &[String], alertmanagers: &[String]) -> String {
    let example =
        std::fs::read_to_string(packaging().join("prometheus/prometheus.example.yml")).unwrap();
    let rules = packaging().join("prometheus/sitewatch-rules.yml");
    let list = |targets: &[String]| {
        let quoted: Vec<String> = targets.iter().map(|t| format!("\"{t}\"")).collect();
        format!("[{}]", quoted.join(", "))
    };
    let replacements = [
        ("scrape_interval: 5s", "scrape_interval: 1s".to_owned()),
        ("scrape_timeout: 4s", "scrape_timeout: 900ms".to_owned()),
        (
            "evaluation_interval: 5s",
            "evaluation_interval: 1s".to_owned(),
        ),
        (
            "/usr/share/sitewatch/prometheus/sitewatch-rules.yml",
            rules.display().to_string(),
        ),
        (
            r#"["alertmanager-1.example.net:9093", "alertmanager-2.example.net:9093"]"#,
            list(alertmanagers),
        ),
        (
            r#"["collector-1.example.net:9184", "collector-2.example.net:9184"]"#,
            list(collectors),
        ),
    ];
    let mut config = example;
    for (from, to) in replacements {
        assert!(
            config.contains(from),
            "prometheus.example.yml no longer contains {from:?}"
        );
        config = config.replace(from, &to);
    }
    config
}

/// A running Prometheus.
#[derive(Debug)]
pub struct Prometheus {
    pub port: u16,
    pub config_path: PathBuf,
    proc: Proc,
}

impl Prometheus {
    pub fn start(dir: &Path, config: &str) -> Prometheus {
        let port = free_port();
        let data = dir.join("prometheus-data");
        std::fs::create_dir_all(&data).unwrap();
        let config_path = dir.join("prometheus.yml");
        std::fs::write(&config_path, config).unwrap();
        let mut cmd = Command::new(PROMETHEUS);
        cmd.arg(format!("--config.file={}", config_path.display()))
            .arg(format!("--storage.tsdb.path={}", data.display()))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"));
        let proc = Proc::spawn("prometheus", cmd, dir);
        wait::until(Duration::from_secs(30), "prometheus to be ready", || {
            scrape::get(port, "/-/ready").filter(|r| r.status == 200)
        });
        Prometheus {
            port,
            config_path,
            proc,
        }
    }

    /// `GET /api/v1/<path>`; the `data` of a successful answer.
    pub fn api(&self, path_and_query: &str) -> Option<Value> {
        let r = scrape::get(self.port, &format!("/api/v1/{path_and_query}"))?;
        let v: Value = serde_json::from_str(&r.body).ok()?;
        (v["status"] == "success").then(|| v["data"].clone())
    }

    /// An instant query's result vector (empty when nothing matches).
    pub fn query(&self, expr: &str) -> Vec<Value> {
        self.try_query(expr)
            .unwrap_or_else(|e| panic!("query {expr:?} failed: {e}"))
    }

    /// An instant query's result vector, or Prometheus' error.
    pub fn try_query(&self, expr: &str) -> Result<Vec<Value>, String> {
        let r = scrape::get(
            self.port,
            &format!("/api/v1/query?query={}", percent_encode(expr)),
        )
        .ok_or("no answer")?;
        let v: Value = serde_json::from_str(&r.body).map_err(|e| format!("{e}: {}", r.body))?;
        if v["status"] != "success" {
            return Err(format!("{}: {}", v["errorType"], v["error"]));
        }
        Ok(v["data"]["result"].as_array().cloned().unwrap_or_default())
    }

    /// The alerts of the loaded rules (`GET /api/v1/alerts`): pending and firing.
    pub fn alerts(&self) -> Vec<Value> {
        self.api("alerts")
            .and_then(|d| d["alerts"].as_array().cloned())
            .unwrap_or_default()
    }

    /// Whether every scrape target is up.
    pub fn targets_up(&self) -> bool {
        self.api("targets").is_some_and(|d| {
            d["activeTargets"]
                .as_array()
                .is_some_and(|t| !t.is_empty() && t.iter().all(|t| t["health"] == "up"))
        })
    }

    /// Starts Prometheus with `scrape_configs` (the YAML list, indented as a
    /// top-level key's value) and a 1 s scrape interval.
    pub fn with_scrape_configs(dir: &Path, scrape_configs: &str) -> Prometheus {
        Prometheus::start(
            dir,
            &format!(
                "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n\
                 scrape_configs:\n{scrape_configs}"
            ),
        )
    }

    /// `GET /api/v1/targets`: the active targets.
    pub fn targets(&self) -> Vec<Value> {
        self.api("targets?state=active")
            .and_then(|d| d["activeTargets"].as_array().cloned())
            .unwrap_or_default()
    }

    /// The active target of `job`, once it has been scraped at least once.
    pub fn scraped_target(&self, job: &str) -> Option<Value> {
        self.targets()
            .into_iter()
            .find(|t| t["labels"]["job"] == job && t["health"] != "unknown")
    }

    pub fn log(&self) -> String {
        self.proc.log()
    }
}

/// Percent-encodes everything but RFC 3986's unreserved characters.
pub fn percent_encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                char::from(b).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}
