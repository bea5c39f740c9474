//! A real Alertmanager (Debian's prometheus-alertmanager) on a free loopback port.

use std::{path::Path, process::Command, time::Duration};

use crate::{free_port, process::Proc, scrape, wait};

pub const ALERTMANAGER: &str = "/usr/bin/prometheus-alertmanager";

/// A running Alertmanager with a do-nothing receiver.
#[derive(Debug)]
pub struct Alertmanager {
    pub port: u16,
    proc: Proc,
}

impl Alertmanager {
    pub fn start(dir: &Path) -> Alertmanager {
        Alertmanager::start_with(
            dir,
            "route:\n  receiver: nobody\n  group_by: [site, level]\nreceivers:\n  - name: nobody\n",
        )
    }

    /// On another listen address (`0.0.0.0`: reachable from the test's network
    /// namespaces through their management links), the do-nothing receiver.
    pub fn start_on(dir: &Path, host: &str) -> Alertmanager {
        Alertmanager::start_at(
            dir,
            "route:\n  receiver: nobody\n  group_by: [site, level]\nreceivers:\n  - name: nobody\n",
            host,
        )
    }

    /// Starts Alertmanager with this configuration (written to
    /// `<dir>/alertmanager.yml`, so relative template paths resolve in `dir`).
    pub fn start_with(dir: &Path, config: &str) -> Alertmanager {
        Alertmanager::start_at(dir, config, "127.0.0.1")
    }

    fn start_at(dir: &Path, config: &str, host: &str) -> Alertmanager {
        let port = free_port();
        let data = dir.join("alertmanager-data");
        std::fs::create_dir_all(&data).unwrap();
        let conf = dir.join("alertmanager.yml");
        std::fs::write(&conf, config).unwrap();
        let mut cmd = Command::new(ALERTMANAGER);
        cmd.arg(format!("--config.file={}", conf.display()))
            .arg(format!("--storage.path={}", data.display()))
            .arg(format!("--web.listen-address={host}:{port}"))
            // No gossip: a single test instance, and no traffic off loopback.
            .arg("--cluster.listen-address=");
        let proc = Proc::spawn("alertmanager", cmd, dir);
        wait::until(Duration::from_secs(20), "alertmanager to be ready", || {
            scrape::get(port, "/-/ready").filter(|r| r.status == 200)
        });
        Alertmanager { port, proc }
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// The alerts Alertmanager holds now (`GET /api/v2/alerts`), active or not.
    pub fn alerts(&self) -> Vec<serde_json::Value> {
        scrape::get(
            self.port,
            "/api/v2/alerts?active=true&silenced=true&inhibited=true",
        )
        .and_then(|r| serde_json::from_str(&r.body).ok())
        .unwrap_or_default()
    }

    /// Posts alerts (`POST /api/v2/alerts`, a JSON array); the status code.
    pub fn post_alerts(&self, alerts: &serde_json::Value) -> u16 {
        scrape::post_json(self.port, "/api/v2/alerts", &alerts.to_string()).map_or(0, |r| r.status)
    }

    /// The value of one of Alertmanager's own metrics (a sample line's name
    /// and labels as written, e.g. `alertmanager_notifications_total{integration="email"}`).
    pub fn metric(&self, series: &str) -> Option<f64> {
        let body = scrape::get(self.port, "/metrics")?.body;
        body.lines().find_map(|l| {
            l.strip_prefix(series)?
                .strip_prefix(' ')?
                .trim()
                .parse()
                .ok()
        })
    }

    pub fn log(&self) -> String {
        self.proc.log()
    }
}
