//! SNMP poll cost per shipped profile, the agent beside
//! prometheus-snmp-exporter, against the same peer in the same run; and the
//! agent's RSS with 50 SNMP devices.
//!
//! For each profile, snmpsimd serves its recording (`tests/snmp/<profile>/`)
//! behind a counting UDP relay (`tests/peers/snmp_shim.py --mode relay`), so
//! both clients' requests are counted on the wire. snmp_exporter gets a module
//! generated from the profile: the same scalar OIDs (`get`) and the same table
//! columns (`walk`), v2c, the same max-repetitions, so that both read the same
//! objects. Each client polls `POLLS` times; the mean wall time of one poll
//! (request to last answer, loopback) and the requests per poll are printed as
//! a Markdown table.
//!
//! `cargo bench -p sitewatch-agent --bench snmp_poll` (needs snmpsim, snmp,
//! prometheus-snmp-exporter: scripts/install-test-deps.sh; and the release
//! agent binary for the RSS part: `cargo build --release -p sitewatch-agent`).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // bench code

#[path = "../tests/support/snmp.rs"]
mod peers;

use std::{
    fmt::Write as _,
    fs,
    io::{Read, Write},
    net::TcpStream,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use sitewatch_agent::source::{
    Poll,
    snmp::{SnmpSource, config::SnmpSourceConfig},
};
use sitewatch_snmp_profile::{Profile, oid_string, shipped};

const POLLS: u32 = 20;

fn recordings() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/snmp")
}

struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A counting relay in front of `upstream`; the count is in `count_file`.
fn relay(upstream: u16, count_file: &Path) -> (Killed, u16) {
    let port = peers::free_udp_port();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/peers/snmp_shim.py");
    let mut child = Command::new("python3")
        .arg(script)
        .args([
            "--listen",
            &port.to_string(),
            "--upstream",
            &upstream.to_string(),
            "--mode",
            "relay",
        ])
        .arg("--count-file")
        .arg(count_file)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(child.stdout.take().unwrap()),
        &mut line,
    )
    .unwrap();
    assert_eq!(line.trim(), "ready");
    (Killed(child), port)
}

fn count(file: &Path) -> u64 {
    fs::read_to_string(file)
        .ok()
        .and_then(|t| t.trim().parse().ok())
        .unwrap_or(0)
}

/// snmp_exporter's module for a profile: the same OIDs.
fn exporter_module(name: &str, profile: &Profile, max_repetitions: u32) -> String {
    let mut m = format!(
        "{name}:\n  version: 2\n  max_repetitions: {max_repetitions}\n  retries: 0\n  timeout: 2s\n  auth:\n    community: public\n"
    );
    let scalars: Vec<String> = profile
        .scalar_oids()
        .iter()
        .map(|o| oid_string(o))
        .collect();
    let walks: Vec<String> = profile
        .walks()
        .iter()
        .flatten()
        .map(|o| oid_string(o))
        .collect();
    if !scalars.is_empty() {
        m.push_str("  get:\n");
        for s in &scalars {
            let _ = writeln!(m, "  - {s}");
        }
    }
    if !walks.is_empty() {
        m.push_str("  walk:\n");
        for w in &walks {
            let _ = writeln!(m, "  - {w}");
        }
    }
    m.push_str("  metrics:\n");
    for (i, s) in scalars.iter().enumerate() {
        let _ = writeln!(
            m,
            "  - name: s{i}\n    oid: {s}\n    type: gauge\n    help: x"
        );
    }
    for (i, w) in walks.iter().enumerate() {
        let _ = writeln!(
            m,
            "  - name: w{i}\n    oid: {w}\n    type: gauge\n    help: x\n    indexes:\n    - labelname: idx\n      type: OctetString\n      implied: true"
        );
    }
    m
}

fn http_get(port: u16, path: &str) -> String {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    write!(s, "GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n").unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    out
}

fn wait_http(port: u16) {
    let deadline = Instant::now() + Duration::from_secs(15);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "snmp_exporter never listened");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn max_repetitions(profile: &Profile) -> u32 {
    profile.limits.max_repetitions.unwrap_or(10)
}

async fn agent_side(profile_name: &str, port: u16, count_file: &Path, dir: &Path) -> (f64, f64) {
    let community = dir.join("community");
    fs::write(&community, "public\n").unwrap();
    let config: SnmpSourceConfig = toml::from_str(&format!(
        "interval = \"100ms\"\ntimeout = \"100ms\"\n[[devices]]\nname = \"d\"\naddress = \"127.0.0.1:{port}\"\nprofile = \"{profile_name}\"\ncommunity_file = \"{}\"\nretries = 0\n",
        community.display()
    ))
    .unwrap();
    let mut src = SnmpSource::new(&config).unwrap();
    // Warm up: the client's socket, snmpsim's recording index.
    src.poll().await.unwrap();
    let before = count(count_file);
    let mut total = Duration::ZERO;
    for _ in 0..POLLS {
        // Due again once its 100 ms interval is over.
        tokio::time::sleep(Duration::from_millis(110)).await;
        let started = Instant::now();
        let polled = src.poll().await.unwrap();
        total += started.elapsed();
        assert!(
            polled
                .readings
                .iter()
                .any(|r| r.src == "snmp" && r.value.is_some())
        );
    }
    let requests = (count(count_file) - before) as f64 / f64::from(POLLS);
    (total.as_secs_f64() * 1000.0 / f64::from(POLLS), requests)
}

fn exporter_side(
    exporter_port: u16,
    module: &str,
    target_port: u16,
    count_file: &Path,
) -> (f64, f64) {
    let path = format!("/snmp?target=127.0.0.1:{target_port}&module={module}");
    let first = http_get(exporter_port, &path);
    assert!(
        first.starts_with("HTTP/1.0 200") || first.starts_with("HTTP/1.1 200"),
        "{first}"
    );
    let before = count(count_file);
    let started = Instant::now();
    for _ in 0..POLLS {
        let body = http_get(exporter_port, &path);
        assert!(body.contains("snmp_scrape_duration_seconds"), "{body}");
    }
    let ms = started.elapsed().as_secs_f64() * 1000.0 / f64::from(POLLS);
    (ms, (count(count_file) - before) as f64 / f64::from(POLLS))
}

fn rss_kib(pid: u32) -> u64 {
    let status = fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}

/// The release agent's RSS after 20 s with `devices` SNMP devices (all on one
/// snmpsim), publishing to a mosquitto on loopback.
fn agent_rss(port: u16, devices: usize, dir: &Path, mqtt_port: u16) -> Option<u64> {
    let bin = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/release/sitewatch-agent");
    let bin = std::env::var_os("CARGO_TARGET_DIR")
        .map(|t| PathBuf::from(t).join("release/sitewatch-agent"))
        .filter(|p| p.exists())
        .unwrap_or(bin);
    if !bin.exists() {
        println!(
            "(no release agent binary at {}: RSS skipped)",
            bin.display()
        );
        return None;
    }
    let mut config = format!(
        "site = \"bench\"\nhost = \"gw\"\n[mqtt]\nurl = \"mqtt://127.0.0.1:{mqtt_port}\"\n[sources.host]\nenabled = false\n"
    );
    if devices > 0 {
        config.push_str("[sources.snmp]\ninterval = \"5s\"\ntimeout = \"4s\"\n");
        for i in 0..devices {
            let _ = write!(
                config,
                "[[sources.snmp.devices]]\nname = \"ups-{i}\"\naddress = \"127.0.0.1:{port}\"\nprofile = \"ups-mib\"\n"
            );
        }
    }
    let path = dir.join(format!("agent-{devices}.toml"));
    fs::write(&path, config).unwrap();
    let child = Command::new(bin)
        .arg("run")
        .arg("--config")
        .arg(&path)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let child = Killed(child);
    std::thread::sleep(Duration::from_secs(20));
    Some(rss_kib(child.0.id()))
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    if !peers::peers_present() || !Path::new("/usr/bin/prometheus-snmp-exporter").exists() {
        println!("SKIPPED: snmpsim, snmp or prometheus-snmp-exporter not installed");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let mut modules = String::new();
    for s in shipped::ALL {
        let p = shipped::load(s.name).unwrap().unwrap();
        modules.push_str(&exporter_module(s.name, &p, max_repetitions(&p)));
    }
    let exporter_config = dir.path().join("snmp.yml");
    fs::write(&exporter_config, &modules).unwrap();
    let exporter_port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let _exporter = Killed(
        Command::new("prometheus-snmp-exporter")
            .arg(format!("--config.file={}", exporter_config.display()))
            .arg(format!("--web.listen-address=127.0.0.1:{exporter_port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    wait_http(exporter_port);
    println!(
        "| profile | agent requests/poll | agent ms/poll | snmp_exporter requests/poll | snmp_exporter ms/poll |"
    );
    println!("|---|---|---|---|---|");
    for s in shipped::ALL {
        let sim = peers::snmpsim(&[(
            "public".into(),
            recordings().join(s.name).join("device.snmprec"),
        )]);
        let agent_count = dir.path().join(format!("{}-agent.count", s.name));
        let exporter_count = dir.path().join(format!("{}-exporter.count", s.name));
        let (_a, agent_port) = relay(sim.port, &agent_count);
        let (_e, exporter_target) = relay(sim.port, &exporter_count);
        let (agent_ms, agent_requests) =
            agent_side(s.name, agent_port, &agent_count, dir.path()).await;
        let (exp_ms, exp_requests) =
            exporter_side(exporter_port, s.name, exporter_target, &exporter_count);
        println!(
            "| `{}` | {agent_requests:.0} | {agent_ms:.1} | {exp_requests:.0} | {exp_ms:.1} |",
            s.name
        );
    }
    let sim = peers::snmpsim(&[("public".into(), recordings().join("ups-mib/device.snmprec"))]);
    let mqtt_port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let _mosquitto = Killed(
        Command::new("mosquitto")
            .args(["-p", &mqtt_port.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    wait_http(mqtt_port);
    println!();
    for n in [0, 10, 50] {
        if let Some(kib) = agent_rss(sim.port, n, dir.path(), mqtt_port) {
            println!(
                "agent VmRSS after 20 s publishing, {n} SNMP devices (ups-mib, every 5 s): {kib} KiB"
            );
        }
    }
}
