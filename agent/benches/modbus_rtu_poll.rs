//! Wall time of one poll of each shipped profile over Modbus RTU at 9600 baud,
//! through a socat pty pair to `sitewatch-sim modbus --rtu`, next to the bus
//! time the same plan takes on a real line (computed by
//! `sitewatch_modbus_profile::wire`, as in the `wire_budget` example).
//!
//! ```sh
//! cargo build --release -p sitewatch-sim
//! cargo bench -p sitewatch-agent --bench modbus_rtu_poll
//! ```
//!
//! A pty is not a UART: the baud rate set on it is accepted and ignored, bytes
//! pass as fast as the kernel moves them. So the measured figure is the
//! software's share (agent, tokio-modbus, the simulator, two pty hops through
//! socat) and not the line's; on RS-485 the computed bus time comes on top.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[path = "../tests/support/pty.rs"]
mod pty;

use pty::pty_pair;
use std::{
    io::{BufRead, BufReader},
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use sitewatch_agent::{
    source::modbus::config::ModbusSourceConfig,
    source::{Poll, modbus::ModbusSource},
};
use sitewatch_modbus_profile::{
    Plan, shipped,
    wire::{Cost, Framing, SerialTiming, plan_reads},
};

const ROUNDS: usize = 50;
const TURNAROUND: Duration = Duration::from_millis(10);

struct Peer(Child);

impl Drop for Peer {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `sitewatch-sim`, built with `cargo build --release -p sitewatch-sim`: next
/// to this bench's `deps/` folder.
fn sim_binary() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let path = exe
        .parent()
        .unwrap()
        .parent()
        .unwrap()
        .join("sitewatch-sim");
    assert!(
        path.exists(),
        "{} is missing: run `cargo build --release -p sitewatch-sim` first",
        path.display()
    );
    path
}

fn start_sim(profile: &str, tty: &Path) -> Peer {
    let mut child = Command::new(sim_binary())
        .args(["modbus", "--profile", profile, "--baud", "9600", "--rtu"])
        .arg(tty)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    assert!(line.contains("rtu serving"), "sim said {line:?}");
    Peer(child)
}

fn success(source: &mut ModbusSource, runtime: &tokio::runtime::Runtime) -> bool {
    let polled = runtime.block_on(source.poll()).unwrap();
    polled
        .readings
        .iter()
        .any(|r| r.dev == "modbus/dut" && r.q == "agent_poll_success" && r.value == Some(1.0))
}

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let timing = SerialTiming::baud_9600(TURNAROUND);
    println!(
        "| profile | requests | measured wall time per poll (pty, median / p90 of {ROUNDS}) | computed bus time at 9600 baud (turnaround {} ms) |",
        TURNAROUND.as_millis()
    );
    println!("|---|---:|---:|---:|");
    for s in shipped::SHIPPED {
        let dir = tempfile::tempdir().unwrap();
        let pty = pty_pair(dir.path());
        let (agent_end, device_end) = (pty.agent_end.clone(), pty.device_end.clone());
        let _sim = start_sim(s.name, &device_end);
        let config: ModbusSourceConfig = toml::from_str(&format!(
            "interval = \"1ms\"\n[[devices]]\nname = \"dut\"\naddress = \"rtu://{}?baud=9600&parity=N&stop=1\"\nprofile = \"{}\"\ntimeout = \"1s\"\n",
            agent_end.display(),
            s.name
        ))
        .unwrap();
        let mut source = ModbusSource::new(&config).unwrap();
        // The first poll opens the line (and drains it for 20 ms): not timed.
        let deadline = Instant::now() + Duration::from_secs(10);
        while !success(&mut source, &runtime) {
            assert!(Instant::now() < deadline, "{} never answered", s.name);
            std::thread::sleep(Duration::from_millis(50));
        }
        let mut times: Vec<Duration> = (0..ROUNDS)
            .map(|_| {
                let started = Instant::now();
                assert!(success(&mut source, &runtime), "{} failed a poll", s.name);
                started.elapsed()
            })
            .collect();
        times.sort();
        let profile = shipped::load(s.name).unwrap().unwrap();
        let cost = Cost::of(&plan_reads(&Plan::new(&profile)), Framing::Rtu);
        println!(
            "| {} | {} | {:.2} ms / {:.2} ms | {:.0} ms |",
            s.name,
            cost.transactions,
            times[ROUNDS / 2].as_secs_f64() * 1e3,
            times[ROUNDS * 9 / 10].as_secs_f64() * 1e3,
            cost.bus_time(&timing).as_secs_f64() * 1e3,
        );
    }
}
