//! A real Prometheus server (Debian's `prometheus`) on a free loopback port,
//! scraping what the test's scrape configuration says, and its HTTP API.

use std::{path::Path, process::Command, time::Duration};

use crate::{free_port, process::Proc, scrape, wait};

pub const PROMETHEUS: &str = "/usr/bin/prometheus";

/// A running Prometheus.
#[derive(Debug)]
pub struct Prometheus {
    pub port: u16,
    proc: Proc,
}

impl Prometheus {
    /// Starts Prometheus with `scrape_configs` (the YAML list, indented as a
    /// top-level key's value) and a 1 s scrape interval.
    pub fn start(dir: &Path, scrape_configs: &str) -> Prometheus {
        let port = free_port();
        let data = dir.join("prometheus-data");
        std::fs::create_dir_all(&data).unwrap();
        let conf = dir.join("prometheus.yml");
        std::fs::write(
            &conf,
            format!(
                "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n\
                 scrape_configs:\n{scrape_configs}"
            ),
        )
        .unwrap();
        let mut cmd = Command::new(PROMETHEUS);
        cmd.arg(format!("--config.file={}", conf.display()))
            .arg(format!("--storage.tsdb.path={}", data.display()))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"));
        let proc = Proc::spawn("prometheus", cmd, dir);
        wait::until(Duration::from_secs(30), "prometheus to be ready", || {
            scrape::get(port, "/-/ready").filter(|r| r.status == 200)
        });
        Prometheus { port, proc }
    }

    /// `GET /api/v1/targets`: the active targets.
    pub fn targets(&self) -> Vec<serde_json::Value> {
        scrape::get(self.port, "/api/v1/targets?state=active")
            .and_then(|r| serde_json::from_str::<serde_json::Value>(&r.body).ok())
            .and_then(|v| v["data"]["activeTargets"].as_array().cloned())
            .unwrap_or_default()
    }

    /// The active target of `job`, once it has been scraped at least once.
    pub fn scraped_target(&self, job: &str) -> Option<serde_json::Value> {
        self.targets()
            .into_iter()
            .find(|t| t["labels"]["job"] == job && t["health"] != "unknown")
    }

    /// An instant query (`GET /api/v1/query`): the result vector.
    pub fn query(&self, promql: &str) -> Vec<serde_json::Value> {
        let encoded: String = promql
            .bytes()
            .map(|b| match b {
                b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'_' | b'-' | b'.' => {
                    char::from(b).to_string()
                }
                _ => format!("%{b:02X}"),
            })
            .collect();
        scrape::get(self.port, &format!("/api/v1/query?query={encoded}"))
            .and_then(|r| serde_json::from_str::<serde_json::Value>(&r.body).ok())
            .and_then(|v| v["data"]["result"].as_array().cloned())
            .unwrap_or_default()
    }

    pub fn log(&self) -> String {
        self.proc.log()
    }
}
