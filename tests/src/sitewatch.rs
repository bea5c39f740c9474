//! The sitewatch binaries, started the way a user starts them.

use std::{
    path::{Path, PathBuf},
    process::Command,
    time::Duration,
};

use crate::{free_port, process::Proc, scrape, wait};

/// Where cargo put the workspace's binaries: next to this test's `deps/` folder.
pub fn bin(name: &str) -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("test binary is in target/<profile>/deps");
    let path = dir.join(name);
    assert!(
        path.exists(),
        "{} is missing: build the binaries first (`cargo build --workspace --bins`, \
         which scripts/test.sh does)",
        path.display()
    );
    path
}

/// Where a collector takes its messages from.
#[derive(Debug, Clone)]
pub enum Broker {
    /// An external broker URL (`mqtt://127.0.0.1:1883`).
    External(String),
    /// The collector's own embedded broker, on this port.
    Embedded(u16),
}

/// A running collector.
#[derive(Debug)]
pub struct Collector {
    pub http_port: u16,
    pub proc: Proc,
}

impl Collector {
    pub fn start(dir: &Path, broker: Broker, extra: &[&str]) -> Collector {
        let c = Collector::spawn(dir, broker, extra);
        wait::until(Duration::from_secs(20), "the collector's /healthz", || {
            scrape::get(c.http_port, "/healthz").filter(|r| r.status == 200)
        });
        c
    }

    /// Starts the collector without waiting for it (a test with TLS on the HTTP
    /// side waits its own way).
    pub fn spawn(dir: &Path, broker: Broker, extra: &[&str]) -> Collector {
        let http_port = free_port();
        let mut cmd = Command::new(bin("sitewatch-collector"));
        cmd.args(["--listen", &format!("127.0.0.1:{http_port}")]);
        match &broker {
            Broker::External(url) => cmd.args(["--mqtt", url]),
            Broker::Embedded(port) => {
                cmd.args(["--embedded-broker", &format!("127.0.0.1:{port}")]);
                // Its MQTT 5 listener defaults to the next port, which may be
                // anyone's: give it one that was free too.
                if !extra.contains(&"--embedded-broker-v5") {
                    let v5 = free_port();
                    cmd.args(["--embedded-broker-v5", &format!("127.0.0.1:{v5}")]);
                }
                &mut cmd
            }
        };
        cmd.args(extra).env("RUST_LOG", "info");
        let proc = Proc::spawn("collector", cmd, dir);
        Collector { http_port, proc }
    }

    pub fn metrics(&self) -> Vec<scrape::Sample> {
        scrape::metrics(self.http_port).unwrap_or_default()
    }

    /// Waits until a sample with these labels is present and returns its value.
    pub fn wait_for(&self, limit: Duration, name: &str, labels: &[(&str, &str)]) -> f64 {
        wait::until(limit, &format!("{name}{labels:?} on /metrics"), || {
            scrape::value(&self.metrics(), name, labels)
        })
    }

    /// Waits until the sample has exactly `want`.
    pub fn wait_for_value(&self, limit: Duration, name: &str, labels: &[(&str, &str)], want: f64) {
        wait::until(limit, &format!("{name}{labels:?} == {want}"), || {
            (scrape::value(&self.metrics(), name, labels) == Some(want)).then_some(())
        })
    }
}

/// What an agent under test is told.
#[derive(Debug, Clone)]
pub struct AgentSpec {
    pub site: String,
    pub host: String,
    pub mqtt_url: String,
    pub keepalive: String,
    pub heartbeat: String,
    pub host_interval: String,
    pub tls_ca: Option<String>,
    /// A client certificate and key (with `tls_ca`), for brokers that require one.
    pub tls_client: Option<(String, String)>,
    /// Appended to the configuration (more source tables).
    pub extra: String,
}

impl AgentSpec {
    pub fn new(site: &str, host: &str, mqtt_url: &str) -> AgentSpec {
        AgentSpec {
            site: site.into(),
            host: host.into(),
            mqtt_url: mqtt_url.into(),
            keepalive: "2s".into(),
            heartbeat: "1s".into(),
            host_interval: "1s".into(),
            tls_ca: None,
            tls_client: None,
            extra: String::new(),
        }
    }

    /// The agent's TOML configuration, as a user would write it.
    pub fn config(&self) -> String {
        let client = self
            .tls_client
            .as_ref()
            .map(|(cert, key)| format!("cert = \"{cert}\"\nkey = \"{key}\"\n"))
            .unwrap_or_default();
        let tls = self
            .tls_ca
            .as_ref()
            .map(|ca| format!("[mqtt.tls]\nca = \"{ca}\"\n{client}"))
            .unwrap_or_default();
        format!(
            "site = \"{}\"\nhost = \"{}\"\nheartbeat = \"{}\"\n\n[labels]\nroom = \"a1\"\nrack = \"r12\"\n\n\
             [mqtt]\nurl = \"{}\"\nkeepalive = \"{}\"\n{tls}\n\
             [sources.host]\ninterval = \"{}\"\ntimeout = \"2s\"\n{}",
            self.site,
            self.host,
            self.heartbeat,
            self.mqtt_url,
            self.keepalive,
            self.host_interval,
            self.extra,
        )
    }
}

/// A running agent.
#[derive(Debug)]
pub struct Agent {
    pub proc: Proc,
    pub config_path: PathBuf,
}

impl Agent {
    pub fn start(dir: &Path, spec: &AgentSpec) -> Agent {
        let config_path = dir.join(format!("agent-{}.toml", spec.host));
        std::fs::write(&config_path, spec.config()).unwrap();
        let mut cmd = Command::new(bin("sitewatch-agent"));
        cmd.arg("run")
            .arg("--config")
            .arg(&config_path)
            .env("RUST_LOG", "info");
        let proc = Proc::spawn(&format!("agent-{}", spec.host), cmd, dir);
        Agent { proc, config_path }
    }
}
