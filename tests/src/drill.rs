//! Drills end to end: a simulated machine room (`sitewatch-sim site`), agents
//! reading it over Modbus TCP, the collector with its embedded broker, and
//! `sitewatch-sim drill` run against them as an operator runs it.

use std::{
    path::Path,
    process::Command,
    time::{Duration, Instant},
};

use serde_json::Value;

use crate::{
    free_port,
    process::Proc,
    sitewatch::{Broker, Collector, bin},
    wait,
};

/// `sitewatch-sim site` on free ports: the devices' Modbus and control ports
/// as it announced them, by device name.
#[derive(Debug)]
pub struct SimSite {
    pub proc: Proc,
    /// (device, modbus port, control port), in `sitewatch-sim site` order.
    pub devices: Vec<(String, u16, u16)>,
}

impl SimSite {
    pub fn start(dir: &Path) -> SimSite {
        let mut cmd = Command::new(bin("sitewatch-sim"));
        cmd.args([
            "site",
            "--listen-base",
            "127.0.0.1:0",
            "--control-base",
            "127.0.0.1:0",
        ]);
        let proc = Proc::spawn("sim-site", cmd, dir);
        let devices = wait::until(Duration::from_secs(10), "the simulated site", || {
            let log = proc.log();
            let port = |name: &str, what: &str| {
                log.lines()
                    .find_map(|l| l.strip_prefix(&format!("{name} {what} listening on ")))
                    .and_then(|a| a.rsplit_once(':'))
                    .and_then(|(_, p)| p.trim().parse::<u16>().ok())
            };
            SITE_DEVICES
                .iter()
                .map(|(name, _)| {
                    Some((
                        (*name).to_owned(),
                        port(name, "modbus")?,
                        port(name, "control")?,
                    ))
                })
                .collect::<Option<Vec<_>>>()
        });
        SimSite { proc, devices }
    }

    /// Sends one control command to `device` (`mains_lost`, `healthy`, ...)
    /// and returns its reply line.
    pub fn control(&self, device: &str, command: &str) -> String {
        let (_, _, port) = self
            .devices
            .iter()
            .find(|(name, _, _)| name == device)
            .unwrap_or_else(|| panic!("no device {device}: {:?}", self.devices));
        crate::sim::control_at(([127, 0, 0, 1], *port).into(), command)
    }

    /// `--control ADDR` for every device.
    pub fn control_args(&self) -> Vec<String> {
        self.devices
            .iter()
            .flat_map(|(_, _, c)| ["--control".to_owned(), format!("127.0.0.1:{c}")])
            .collect()
    }

    /// The gateway agent's `[sources.modbus]`: every device once a second; the
    /// cold-aisle probe measures inlet air.
    pub fn modbus_config(&self) -> String {
        let mut text = String::from("[sources.modbus]\ninterval = \"1s\"\n");
        for (name, port, _) in &self.devices {
            let profile = SITE_DEVICES
                .iter()
                .find(|(n, _)| n == name)
                .map_or("", |(_, p)| p);
            text.push_str(&format!(
                "\n[[sources.modbus.devices]]\nname = \"{name}\"\naddress = \"tcp://127.0.0.1:{port}\"\n\
                 profile = \"{profile}\"\ntimeout = \"500ms\"\n"
            ));
            if name == "probe-cold-aisle" {
                text.push_str("quantities = { temperature = \"inlet_temperature_celsius\" }\n");
            }
        }
        text
    }
}

/// The devices of `sitewatch-sim site` and their profiles (sim/src/site.rs).
const SITE_DEVICES: &[(&str, &str)] = &[
    ("ups-a", "apc-smart-ups"),
    ("genset", "dse-gencomm"),
    ("crac-1", "vertiv-liebert-icom"),
    ("probe-cold-aisle", "generic-xy-md02"),
    ("probe-hot-aisle", "generic-xy-md02"),
];

/// An agent's configuration: heartbeat 1 s and keepalive 2 s (short but
/// realistic: a gateway on a LAN), host readings every second, plus `extra`.
pub fn agent_config(site: &str, host: &str, mqtt_port: u16, extra: &str) -> String {
    format!(
        "site = \"{site}\"\nhost = \"{host}\"\nheartbeat = \"1s\"\n\n\
         [mqtt]\nurl = \"mqtt://127.0.0.1:{mqtt_port}\"\nkeepalive = \"2s\"\n\n\
         [sources.host]\ninterval = \"1s\"\ntimeout = \"2s\"\n\n{extra}"
    )
}

pub fn start_agent(dir: &Path, host: &str, config: &str) -> Proc {
    let path = dir.join(format!("agent-{host}.toml"));
    std::fs::write(&path, config).unwrap();
    let mut cmd = Command::new(bin("sitewatch-agent"));
    cmd.arg("run")
        .arg("--config")
        .arg(&path)
        .env("RUST_LOG", "info");
    Proc::spawn(&format!("agent-{host}"), cmd, dir)
}

/// A collector with its embedded broker on free ports and `signals` as its
/// `[signals]` table body.
#[derive(Debug)]
pub struct Stack {
    pub collector: Collector,
    pub mqtt_port: u16,
    pub started: Instant,
}

impl Stack {
    pub fn start(dir: &Path, collector_toml: &str) -> Stack {
        let mqtt_port = free_port();
        let v5 = free_port();
        let config = dir.join("collector.toml");
        std::fs::write(&config, collector_toml).unwrap();
        let started = Instant::now();
        let collector = Collector::start(
            dir,
            Broker::Embedded(mqtt_port),
            &[
                "--embedded-broker-v5",
                &format!("127.0.0.1:{v5}"),
                "--config",
                config.to_str().unwrap(),
            ],
        );
        Stack {
            collector,
            mqtt_port,
            started,
        }
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.collector.http_port)
    }

    /// Waits until every host is online at the collector.
    pub fn wait_online(&self, site: &str, hosts: &[&str]) {
        for host in hosts {
            self.collector.wait_for_value(
                Duration::from_secs(20),
                "sitewatch_agent_up",
                &[("site", site), ("host", host)],
                1.0,
            );
        }
    }

    /// Waits out the collector's `[signals] startup_grace`, during which no lost
    /// agent counts: a drill of lost agents before it measures nothing.
    pub fn wait_startup_grace(&self, grace: Duration) {
        let past = grace + Duration::from_millis(500);
        if let Some(left) = past.checked_sub(self.started.elapsed()) {
            std::thread::sleep(left);
        }
    }
}

/// What `sitewatch-sim drill` said.
#[derive(Debug)]
pub struct DrillRun {
    pub code: Option<i32>,
    /// One JSON object per step, in order.
    pub steps: Vec<Value>,
    /// The human summary line (stderr).
    pub summary: String,
    pub took: Duration,
}

impl DrillRun {
    pub fn step(&self, name: &str) -> Option<&Value> {
        self.steps.iter().find(|s| s["step"] == name)
    }

    /// The measured time from fault to signal.
    pub fn detected(&self) -> Option<Duration> {
        self.step("raised")
            .and_then(|s| s["detect_ms"].as_u64())
            .map(Duration::from_millis)
    }
}

impl std::fmt::Display for DrillRun {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(f, "exit {:?} after {:?}", self.code, self.took)?;
        for s in &self.steps {
            writeln!(f, "{s}")?;
        }
        write!(f, "{}", self.summary)
    }
}

/// Runs `sitewatch-sim drill <args>` to its end.
pub fn run_drill(args: &[String]) -> DrillRun {
    let started = Instant::now();
    let out = Command::new(bin("sitewatch-sim"))
        .arg("drill")
        .args(args)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let steps = stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();
    DrillRun {
        code: out.status.code(),
        steps,
        summary: String::from_utf8_lossy(&out.stderr).trim().to_owned(),
        took: started.elapsed(),
    }
}
