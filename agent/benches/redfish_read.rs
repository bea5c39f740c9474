//! What a Redfish read of DMTF's rack-server mockup costs: requests and wall
//! time, cold (a new endpoint: service root, discovery, session) and warm
//! (the structure kept), with and without `$expand`; over the tests' own
//! server (HTTP/1.1 keep-alive, `$expand` on or off) and over sushy-static
//! (TLS, HTTP/1.0: a connection per request, no `$expand`). Then the release
//! agent's RSS with 0 and 50 endpoints.
//!
//! `SITEWATCH_SHARED_TESTDATA=/path/to/shared/testdata cargo bench -p
//! sitewatch-agent --bench redfish_read` (needs ../shared/testdata, sushy-tools
//! and openssl for the sushy part, mosquitto for the RSS part, and the release
//! agent binary: `cargo build --release -p sitewatch-agent`).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // bench code

#[path = "../tests/support/redfish.rs"]
mod peers;
#[path = "../tests/support/sushy.rs"]
mod sushy;

use std::{
    fmt::Write as _,
    fs,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    sync::Arc,
    time::{Duration, Instant},
};

use sitewatch_agent::{
    device::Device,
    source::redfish::{Endpoint, config::RedfishSourceConfig, logout_all},
};

const READS: u32 = 10;
const USER: &str = "sitewatch";
const PASSWORD: &str = "bench-password";

struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn endpoint(url: &str, extra: &str) -> Endpoint {
    let config: RedfishSourceConfig = toml::from_str(&format!(
        "[[endpoints]]\nname = \"bench\"\nurl = \"{url}\"\n{extra}\n"
    ))
    .unwrap();
    Endpoint::new(&config.endpoints[0], config.rediscover).unwrap()
}

/// Mean ms and requests of a cold and a warm read, `READS` times each.
async fn measure(
    url: &str,
    extra: &str,
    requests: impl Fn() -> u64,
) -> ((f64, f64), (f64, f64), usize) {
    let (mut cold_ms, mut cold_req, mut warm_ms, mut warm_req) = (0.0, 0, 0.0, 0);
    let mut readings = 0;
    for _ in 0..READS {
        let mut e = endpoint(url, extra);
        let before = requests();
        let t = Instant::now();
        let read = e.read().await;
        cold_ms += t.elapsed().as_secs_f64() * 1000.0;
        cold_req += requests() - before;
        assert!(read.error.is_none(), "{:?}", read.error);
        readings = read.polled.readings.len();
        let before = requests();
        let t = Instant::now();
        let read = e.read().await;
        warm_ms += t.elapsed().as_secs_f64() * 1000.0;
        warm_req += requests() - before;
        assert!(read.error.is_none(), "{:?}", read.error);
        e.logout().await;
    }
    let n = f64::from(READS);
    (
        (cold_ms / n, cold_req as f64 / n),
        (warm_ms / n, warm_req as f64 / n),
        readings,
    )
}

fn rss_kib(pid: u32) -> u64 {
    let status = fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}

fn release_agent() -> Option<PathBuf> {
    let bin = std::env::var_os("CARGO_TARGET_DIR")
        .map(|t| PathBuf::from(t).join("release/sitewatch-agent"))
        .unwrap_or_else(|| {
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/release/sitewatch-agent")
        });
    bin.exists().then_some(bin)
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let Some(shared) = std::env::var_os("SITEWATCH_SHARED_TESTDATA")
        .map(PathBuf::from)
        .or_else(|| Some(Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/testdata")))
        .filter(|p| p.is_dir())
    else {
        println!("SKIPPED: ../shared/testdata not present (DMTF Redfish mockups)");
        return;
    };
    let rack = shared.join("redfish/dmtf-mockups-2025.4/public-rackmount1");
    let dir = tempfile::tempdir().unwrap();
    let pw = dir.path().join("pw");
    fs::write(&pw, format!("{PASSWORD}\n")).unwrap();
    let auth = format!(
        "username = \"{USER}\"\npassword_file = \"{}\"",
        pw.display()
    );

    let mut table = String::from(
        "| server | `$expand` | cold requests | cold ms | warm requests | warm ms | readings |\n|---|---|---|---|---|---|---|\n",
    );
    for expand in [true, false] {
        let server = peers::redfish_server(rack.clone(), USER, PASSWORD, expand).await;
        let state = Arc::clone(&server.state);
        let count = move || state.lock().unwrap().requests;
        let url = format!("http://127.0.0.1:{}", server.port);
        let (cold, warm, readings) = measure(&url, &auth, count).await;
        let _ = writeln!(
            table,
            "| tests' server (HTTP/1.1 keep-alive, session auth) | {} | {:.0} | {:.1} | {:.0} | {:.1} | {readings} |",
            if expand { "yes" } else { "no" },
            cold.1,
            cold.0,
            warm.1,
            warm.0
        );
        logout_all(Duration::from_secs(2)).await;
    }
    if sushy::sushy_present() {
        let certs = sushy::certs();
        let server = sushy::sushy(&rack, &certs);
        let url = format!("https://127.0.0.1:{}", server.port);
        // sushy counts nothing: the endpoint's own request counter.
        let ca = format!("ca_file = \"{}\"", certs.ca.display());
        let mut cold_ms = 0.0;
        let mut warm_ms = 0.0;
        let (mut cold_req, mut warm_req) = (0, 0);
        let mut readings = 0;
        for _ in 0..READS {
            let mut e = endpoint(&url, &ca);
            let t = Instant::now();
            let r = e.read().await;
            cold_ms += t.elapsed().as_secs_f64() * 1000.0;
            cold_req += e.requests();
            assert!(r.error.is_none(), "{:?}", r.error);
            readings = r.polled.readings.len();
            let before = e.requests();
            let t = Instant::now();
            let r = e.read().await;
            warm_ms += t.elapsed().as_secs_f64() * 1000.0;
            warm_req += e.requests() - before;
            assert!(r.error.is_none(), "{:?}", r.error);
        }
        let n = f64::from(READS);
        let _ = writeln!(
            table,
            "| sushy-static 2.2.0 (TLS, HTTP/1.0, no credentials) | offered, refused (404) | {:.0} | {:.1} | {:.0} | {:.1} | {readings} |",
            cold_req as f64 / n,
            cold_ms / n,
            warm_req as f64 / n,
            warm_ms / n
        );
    } else {
        println!("(sushy-static not installed: its row skipped)");
    }
    println!("{table}");

    let (Some(bin), true) = (
        release_agent(),
        Command::new("mosquitto")
            .arg("-h")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok(),
    ) else {
        println!("(no release agent binary or no mosquitto: RSS skipped)");
        return;
    };
    let server = peers::redfish_server(rack.clone(), USER, PASSWORD, true).await;
    let mqtt_port = sushy::free_port();
    let _broker = Killed(
        Command::new("mosquitto")
            .args(["-p", &mqtt_port.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
    println!(
        "| Redfish endpoints (rack-server mockup, every 10 s) | VmRSS after 30 s |\n|---|---|"
    );
    for n in [0usize, 1, 50] {
        let mut config = format!(
            "site = \"bench\"\nhost = \"gw\"\n[mqtt]\nurl = \"mqtt://127.0.0.1:{mqtt_port}\"\n[sources.host]\nenabled = false\n"
        );
        if n > 0 {
            config.push_str("[sources.redfish]\ninterval = \"10s\"\ntimeout = \"9s\"\n");
            for i in 0..n {
                let _ = write!(
                    config,
                    "[[sources.redfish.endpoints]]\nname = \"bmc-{i}\"\nurl = \"http://127.0.0.1:{}\"\n{auth}\n",
                    server.port
                );
            }
        }
        let path = dir.path().join(format!("agent-{n}.toml"));
        fs::write(&path, config).unwrap();
        let child = Killed(
            Command::new(&bin)
                .arg("run")
                .arg("--config")
                .arg(&path)
                .env("RUST_LOG", "warn")
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap(),
        );
        tokio::time::sleep(Duration::from_secs(30)).await;
        println!("| {n} | {} KiB |", rss_kib(child.0.id()));
    }
    let s = server.state.lock().unwrap();
    println!(
        "(test server: {} requests, {} sessions created, {} deleted)",
        s.requests, s.sessions_created, s.sessions_deleted
    );
}
