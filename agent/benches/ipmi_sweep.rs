//! Full sweep time of one simulated BMC (the Marvell board of
//! `shared/testdata/ipmi/openipmi_sim`) through the agent, against
//! `ipmitool -I lanplus sdr elist` and `ipmitool -I lanplus sensor` on the
//! same simulator. Run with `cargo bench -p sitewatch-agent --bench ipmi_sweep`.
//!
//! The agent keeps its session and its SDR cache between sweeps, so a warm
//! sweep is one Get SDR Repository Info plus one Get Sensor Reading per
//! sensor, SEL info, chassis status; ipmitool opens a session and walks the
//! whole repository every time.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[path = "../tests/support/ipmisim.rs"]
mod ipmisim;

use std::{
    path::Path,
    time::{Duration, Instant},
};

use ipmisim::{Board, IpmiSim, PASSWORD, USER};
use sitewatch_agent::{
    config::{Config, Overrides},
    source::{Poll, ipmi::IpmiSource},
};

const ROUNDS: u32 = 20;

fn time_ipmitool(sim: &IpmiSim, args: &[&str]) -> Duration {
    let started = Instant::now();
    for _ in 0..ROUNDS {
        sim.ipmitool(args);
    }
    started.elapsed() / ROUNDS
}

fn main() {
    if !ipmisim::testdata_present() {
        return;
    }
    let sim = IpmiSim::start(Board::Marvell);
    let pw = sim.dir().join("bench.password");
    std::fs::write(&pw, PASSWORD).unwrap();
    let toml = format!(
        "site = \"b\"\n[sources.ipmi]\ntimeout = \"30s\"\n[[sources.ipmi.bmcs]]\nname = \"bench\"\naddress = \"{}\"\nusername = \"{USER}\"\npassword_file = {:?}\n",
        sim.address(),
        pw.display().to_string()
    );
    let config = Config::parse(&toml, Path::new("bench.toml"), &Overrides::default()).unwrap();
    let mut source = IpmiSource::new(config.sources.ipmi.as_ref().unwrap()).unwrap();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let cold_started = Instant::now();
    let first = runtime.block_on(source.poll()).unwrap();
    let cold = cold_started.elapsed();
    let started = Instant::now();
    for _ in 0..ROUNDS {
        runtime.block_on(source.poll()).unwrap();
    }
    let warm = started.elapsed() / ROUNDS;
    let elist = time_ipmitool(&sim, &["sdr", "elist"]);
    let sensor = time_ipmitool(&sim, &["sensor"]);
    println!("readings per sweep: {}", first.readings.len());
    println!("agent cold sweep (session + SDR walk): {cold:?}");
    println!("agent warm sweep (cached SDRs):        {warm:?}");
    println!(
        "ipmitool -I lanplus sdr elist:         {elist:?}  ({:.1}x the warm sweep)",
        elist.as_secs_f64() / warm.as_secs_f64()
    );
    println!(
        "ipmitool -I lanplus sensor:            {sensor:?}  ({:.1}x the warm sweep)",
        sensor.as_secs_f64() / warm.as_secs_f64()
    );
}
