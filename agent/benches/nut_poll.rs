//! NUT: one `LIST VAR` poll of the `nut` source against `upsc` on the same
//! upsd in the same run, and the facade's answer time to `upsc`.
//!
//! Debian's upsd serves one `dummy-ups` UPS (a `.dev` file of 20 variables).
//! Measured, `POLLS` times each, wall time on loopback:
//!
//! 1. the source's poll of that server (connect, `LIST UPS`, `LIST VAR`,
//!    `LOGOUT`, mapping), through the device layer;
//! 2. `upsc ups1@127.0.0.1:port` (a process: exec, connect, `LIST VAR`);
//! 3. the same `upsc` against the agent's facade serving the UPS the source
//!    read (in this process);
//! 4. the source reading the facade, which is the facade's own answer time
//!    without upsc's process start.
//!
//! `cargo bench -p sitewatch-agent --bench nut_poll` (needs nut-server and
//! nut-client: scripts/install-test-deps.sh). `POLLS` (default 200) sets the
//! count.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // bench code

#[path = "../tests/support/nut.rs"]
mod peers;

use std::{
    process::Command,
    time::{Duration, Instant},
};

use peers::{DummyUps, UPSC, Upsd};
use sitewatch_agent::{
    latest::Latest,
    nutd::{self, Facade, config::NutServerConfig},
    source::{Poll, nut::NutSource},
};

const DEV: &str = "ups.status: OL CHRG\nbattery.charge: 97\nbattery.runtime: 1850\n\
battery.voltage: 27.3\ninput.voltage: 230.4\ninput.frequency: 50.0\noutput.voltage: 229.8\n\
output.frequency: 50.0\noutput.current: 1.6\nups.load: 23\nups.realpower: 340\n\
ups.temperature: 31.5\nbattery.temperature: 25.0\nups.mfr: Dummy\ndevice.model: Smart 1500\n";

fn stats(name: &str, mut samples: Vec<Duration>) -> String {
    samples.sort();
    let n = samples.len();
    let mean = samples.iter().sum::<Duration>() / n as u32;
    let at = |p: f64| samples[((n as f64 * p) as usize).min(n - 1)];
    format!(
        "| {name} | {n} | {:.3} | {:.3} | {:.3} |",
        mean.as_secs_f64() * 1e3,
        at(0.5).as_secs_f64() * 1e3,
        at(0.95).as_secs_f64() * 1e3
    )
}

fn source(port: u16) -> NutSource {
    let config = toml::from_str(&format!(
        "interval = \"1s\"\ntimeout = \"1s\"\n[[servers]]\nname = \"b\"\naddress = \"127.0.0.1:{port}\"\ninterval = \"100ms\"\n"
    ))
    .unwrap();
    NutSource::new(&config).unwrap()
}

/// One poll each time: the server's interval (100 ms) has passed.
async fn polls(src: &mut NutSource, n: usize) -> (Vec<Duration>, Vec<sitewatch_protocol::Reading>) {
    let mut out = Vec::new();
    let mut last = Vec::new();
    for _ in 0..n {
        tokio::time::sleep(Duration::from_millis(110)).await;
        let t = Instant::now();
        last = src.poll().await.unwrap().readings;
        out.push(t.elapsed());
    }
    (out, last)
}

fn upsc(port: u16, n: usize) -> Vec<Duration> {
    (0..n)
        .map(|_| {
            let t = Instant::now();
            let out = Command::new(UPSC)
                .arg(format!("ups1@127.0.0.1:{port}"))
                .output()
                .unwrap();
            let d = t.elapsed();
            assert!(
                out.status.success(),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
            d
        })
        .collect()
}

fn main() {
    if !peers::peers_present() {
        println!("SKIPPED: nut-server/nut-client not installed (scripts/install-test-deps.sh)");
        return;
    }
    let n: usize = std::env::var("POLLS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(200);
    let upsd = Upsd::start(
        &[DummyUps {
            name: "ups1",
            dev: DEV,
        }],
        "",
    );
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let mut src = source(upsd.port);
        let (source_polls, readings) = polls(&mut src, n).await;
        let upsc_upsd = tokio::task::spawn_blocking(move || upsc(upsd.port, n)).await.unwrap();

        // The facade, serving what the source read (the UPS is `ups1@b`:
        // named `ups1` below).
        let latest = Latest::new();
        latest.update(&readings);
        let config: NutServerConfig = toml::from_str(
            "listen = [\"127.0.0.1:0\"]\nstale_after = \"1h\"\n[[ups]]\nname = \"ups1\"\ndevice = \"nut/ups1@b\"\n",
        )
        .unwrap();
        let facade = Facade::new(config, latest).unwrap();
        let (_stop_tx, stop) = tokio::sync::watch::channel(false);
        let bound = nutd::start(facade, stop).await.unwrap();
        let port = bound[0].port();
        let upsc_facade = tokio::task::spawn_blocking(move || upsc(port, n)).await.unwrap();
        let mut via_facade = source(port);
        let (source_facade, _) = polls(&mut via_facade, n).await;

        println!("| what | polls | mean ms | median ms | p95 ms |");
        println!("|---|---|---|---|---|");
        println!("{}", stats("nut source, one poll of upsd (LIST UPS + LIST VAR)", source_polls));
        println!("{}", stats("`upsc ups1@upsd` (process start included)", upsc_upsd));
        println!("{}", stats("`upsc ups1@facade` (process start included)", upsc_facade));
        println!("{}", stats("nut source reading the facade", source_facade));
    });
}
