//! The two-site deployment with a witness, the shape of
//! `packaging/examples/two-sites/` (without its TLS), in network namespaces
//! (see [`crate::netns`]): sites `a` and `b` with three agents each,
//! dual-homed to their own site's broker and the other site's, and a witness
//! `w` with no agents; a collector in each site consuming every site's
//! broker. Site `a`'s broker is a mosquitto of its own (so that it can die
//! alone); `b`'s and `w`'s are their collectors' embedded brokers. Every
//! collector pushes to one real Alertmanager in the test's namespace.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use serde_json::Value;

use crate::alertmanager::Alertmanager;
use crate::netns::Net;
use crate::process::Proc;
use crate::sitewatch::bin;
use crate::{mosquitto, scrape, wait};

/// The sites with agents.
pub const AGENT_SITES: [&str; 2] = ["a", "b"];
/// Agents per agent site.
pub const AGENTS: usize = 3;
/// The collectors' HTTP port, inside each site.
pub const HTTP_PORT: u16 = 9184;
/// Every broker listens here, inside its site.
pub const MQTT_PORT: u16 = 1883;
/// The startup grace the collectors are given (short, for the test's sake).
pub const GRACE: Duration = Duration::from_secs(5);

/// A running deployment.
#[derive(Debug)]
pub struct Deployment {
    pub dir: PathBuf,
    pub net: Net,
    pub am: Alertmanager,
    pub broker_a: Option<Proc>,
    pub collectors: BTreeMap<String, Proc>,
    pub agents: Vec<(String, Proc)>,
}

fn collector_name(site: &str) -> String {
    format!("collector-{site}")
}

impl Deployment {
    /// Builds the namespaces and starts everything; returns once every
    /// collector sees every agent online and both its peers present.
    pub fn start(dir: &Path) -> Deployment {
        let mut net = Net::new(&["a", "b", "w"]);
        net.join("a", "b");
        net.join("a", "w");
        net.join("b", "w");
        let am = Alertmanager::start_on(dir, "0.0.0.0");
        let mut d = Deployment {
            dir: dir.to_path_buf(),
            net,
            am,
            broker_a: None,
            collectors: BTreeMap::new(),
            agents: Vec::new(),
        };
        d.start_broker_a();
        for site in ["a", "b", "w"] {
            d.start_collector(site);
        }
        for site in AGENT_SITES {
            for i in 1..=AGENTS {
                d.start_agent(site, i);
            }
        }
        d.wait_settled(Duration::from_secs(40));
        d
    }

    /// (Re)starts site a's mosquitto.
    pub fn start_broker_a(&mut self) {
        let conf = self.dir.join("mosquitto-a.conf");
        std::fs::write(
            &conf,
            format!(
                "user root\nallow_anonymous true\npersistence false\nlog_dest stderr\n\
                 log_type error\nlog_type warning\nmax_queued_messages 100000\n\
                 listener {MQTT_PORT} 0.0.0.0\n"
            ),
        )
        .unwrap();
        let mut cmd = self.net.command("a", mosquitto::MOSQUITTO);
        cmd.arg("-c").arg(&conf);
        self.broker_a = Some(Proc::spawn("mosquitto-a", cmd, &self.dir));
    }

    /// The URL of `broker_site`'s broker as seen from `from`.
    fn broker_url(&self, from: &str, broker_site: &str) -> String {
        if from == broker_site {
            format!("mqtt://127.0.0.1:{MQTT_PORT}")
        } else {
            format!("mqtt://{}:{MQTT_PORT}", self.net.addr(broker_site, from))
        }
    }

    /// The collector configuration of a site, as an operator writes it.
    pub fn collector_config(&self, site: &str) -> String {
        let mut c = format!(
            "name = \"{}\"\nlisten = \"{}:{HTTP_PORT}\"\n\n",
            collector_name(site),
            self.net.mgmt(site)
        );
        if site != "a" {
            c.push_str(&format!(
                "[embedded_broker]\nenabled = true\nlisten_v4 = \"0.0.0.0:{MQTT_PORT}\"\n\
                 listen_v5 = \"0.0.0.0:{}\"\n\
                 # Test namespaces only: a real deployment authenticates (README).\n\
                 [embedded_broker.auth]\nallow_anonymous = true\n\n",
                MQTT_PORT + 1
            ));
        }
        for other in ["a", "b", "w"] {
            if other == site && site != "a" {
                continue;
            }
            c.push_str(&format!(
                "[[mqtt.brokers]]\nname = \"{other}\"\nurl = \"{}\"\nkeep_alive = \"5s\"\n\n",
                self.broker_url(site, other)
            ));
        }
        c.push_str(&format!(
            "[signals]\nstartup_grace = \"{}s\"\nclear_after = \"5s\"\n\n\
             [signals.sites.a]\nregion = \"r1\"\n[signals.sites.b]\nregion = \"r1\"\n\n\
             [signals.topology]\n\
             [[signals.topology.collectors]]\nname = \"collector-a\"\nsite = \"a\"\n\
             [[signals.topology.collectors]]\nname = \"collector-b\"\nsite = \"b\"\n\
             [[signals.topology.collectors]]\nname = \"collector-w\"\nsite = \"w\"\nwitness = true\n\n\
             [alertmanager]\nurl = \"http://{}:{}\"\nresend_interval = \"2s\"\n",
            GRACE.as_secs(),
            self.net.mgmt_root(site),
            self.am.port
        ));
        c
    }

    /// (Re)starts a site's collector.
    pub fn start_collector(&mut self, site: &str) {
        let path = self.dir.join(format!("collector-{site}.toml"));
        std::fs::write(&path, self.collector_config(site)).unwrap();
        let mut cmd = self.net.command(site, bin("sitewatch-collector"));
        cmd.arg("--config")
            .arg(&path)
            .env("RUST_LOG", "info,sitewatch_collector=debug");
        let proc = Proc::spawn(&collector_name(site), cmd, &self.dir);
        self.collectors.insert(site.to_owned(), proc);
    }

    /// Starts agent `i` of a site, dual-homed to its site's broker and the
    /// other agent site's.
    pub fn start_agent(&mut self, site: &str, i: usize) {
        let host = format!("{site}-{i}");
        let other = if site == "a" { "b" } else { "a" };
        let config = format!(
            "site = \"{site}\"\nhost = \"{host}\"\nheartbeat = \"1s\"\n\n\
             [mqtt]\nkeepalive = \"2s\"\n\
             [[mqtt.brokers]]\nname = \"{site}\"\nurl = \"{}\"\n\
             [[mqtt.brokers]]\nname = \"{other}\"\nurl = \"{}\"\n\n\
             [sources.host]\ninterval = \"1s\"\ntimeout = \"2s\"\n",
            self.broker_url(site, site),
            self.broker_url(site, other)
        );
        let path = self.dir.join(format!("agent-{host}.toml"));
        std::fs::write(&path, config).unwrap();
        let mut cmd = self.net.command(site, bin("sitewatch-agent"));
        cmd.arg("run")
            .arg("--config")
            .arg(&path)
            .env("RUST_LOG", "info");
        let proc = Proc::spawn(&format!("agent-{host}"), cmd, &self.dir);
        self.agents.push((site.to_owned(), proc));
    }

    fn http(&self, site: &str) -> SocketAddr {
        SocketAddr::from((self.net.mgmt(site), HTTP_PORT))
    }

    /// `GET path` on a site's collector, as JSON.
    pub fn api(&self, site: &str, path: &str) -> Option<Value> {
        let r = scrape::get_at(self.http(site), path, &[])?;
        (r.status == 200).then(|| serde_json::from_str(&r.body).ok())?
    }

    /// The active signals at a site's collector as (site, level, cause, subject).
    pub fn signals(&self, observer: &str) -> Vec<(String, String, String, String)> {
        let Some(Value::Array(list)) = self.api(observer, "/api/v1/signals") else {
            return Vec::new();
        };
        list.iter()
            .map(|s| {
                let f = |k: &str| s[k].as_str().unwrap_or_default().to_owned();
                (f("site"), f("level"), f("cause"), f("subject"))
            })
            .collect()
    }

    /// Whether an observer shows `host` with this status.
    pub fn host_status(&self, observer: &str, host: &str) -> Option<String> {
        let Some(Value::Array(list)) = self.api(observer, "/api/v1/hosts") else {
            return None;
        };
        list.iter()
            .find(|h| h["host"] == host)
            .and_then(|h| h["status"].as_str().map(str::to_owned))
    }

    /// Peers an observer sees present.
    pub fn present_peers(&self, observer: &str) -> usize {
        let Some(Value::Array(list)) = self.api(observer, "/api/v1/peers") else {
            return 0;
        };
        list.iter().filter(|p| p["liveness"] == "online").count()
    }

    fn settled(&self) -> bool {
        for observer in ["a", "b", "w"] {
            if self.present_peers(observer) != 2 {
                return false;
            }
            for site in AGENT_SITES {
                for i in 1..=AGENTS {
                    let host = format!("{site}-{i}");
                    if self.host_status(observer, &host).as_deref() != Some("online") {
                        return false;
                    }
                }
            }
        }
        true
    }

    /// Waits until every collector sees every agent online and both its peers,
    /// and its grace is over.
    pub fn wait_settled(&self, limit: Duration) {
        let started = std::time::Instant::now();
        wait::until(limit, "the deployment to settle", || {
            self.settled().then_some(())
        });
        if let Some(rest) = GRACE.checked_sub(started.elapsed()) {
            std::thread::sleep(rest + Duration::from_secs(1));
        }
    }

    /// Kills (SIGKILL) every process of a site.
    pub fn kill_site(&mut self, site: &str) {
        if let Some(mut c) = self.collectors.remove(site) {
            c.kill();
        }
        if site == "a"
            && let Some(mut b) = self.broker_a.take()
        {
            b.kill();
        }
        for (s, p) in &mut self.agents {
            if s == site {
                p.kill();
            }
        }
    }

    /// Kills a site's collector alone.
    pub fn kill_collector(&mut self, site: &str) {
        if let Some(mut c) = self.collectors.remove(site) {
            c.kill();
        }
    }

    /// The logs of every process, for a failing test.
    pub fn logs(&self) -> String {
        let mut out = String::new();
        for (name, p) in &self.collectors {
            out.push_str(&format!(
                "----- collector-{name} -----\n{}\n",
                tail(&p.log())
            ));
        }
        out
    }

    /// `--collector SITE=URL` for every running collector: a site drill's observers.
    pub fn observer_args(&self) -> Vec<String> {
        ["a", "b", "w"]
            .iter()
            .flat_map(|site| {
                [
                    "--collector".to_owned(),
                    format!("{site}=http://{}", self.http(site)),
                ]
            })
            .collect()
    }

    /// The process ids of everything running in a site (collector, broker,
    /// agents), for a `kill` in an operator's fault command.
    pub fn site_pids(&self, site: &str) -> Vec<u32> {
        let mut pids: Vec<u32> = self
            .collectors
            .get(site)
            .map(Proc::pid)
            .into_iter()
            .collect();
        if site == "a"
            && let Some(b) = &self.broker_a
        {
            pids.push(b.pid());
        }
        pids.extend(
            self.agents
                .iter()
                .filter(|(s, _)| s == site)
                .map(|(_, p)| p.pid()),
        );
        pids
    }

    /// A command inside a site, for an operator's fault.
    pub fn command(&self, site: &str, program: &str) -> Command {
        self.net.command(site, program)
    }
}

fn tail(log: &str) -> String {
    let lines: Vec<&str> = log.lines().collect();
    lines[lines.len().saturating_sub(60)..].join("\n")
}
