//! Resident memory per series: ingests N series (default 1,000,000: 10,000 hosts of
//! 100 readings) and reports the growth of the process's RSS (/proc/self/statm)
//! divided by N.
//!
//! `cargo run --release -p sitewatch-collector --example memory [-- SERIES]`
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[path = "../benches/support/mod.rs"]
mod support;

use sitewatch_collector::state::{State, StateConfig};
use support::*;

fn rss_bytes() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap();
    let resident: u64 = statm.split_whitespace().nth(1).unwrap().parse().unwrap();
    // Linux pages are 4 KiB on the machines this runs on (x86-64, arm64 defaults).
    resident * 4096
}

fn main() {
    let series: usize = std::env::args()
        .nth(1)
        .map(|s| s.parse().unwrap())
        .unwrap_or(1_000_000);
    let hosts = series / READINGS_PER_HOST;
    let before = rss_bytes();
    let mut state = State::new(StateConfig::default());
    for h in 0..hosts {
        // Each message is built, applied and dropped, as ingest does.
        state.apply(&message(h, 1, 1.0), false, T0);
    }
    let after = rss_bytes();
    let n = state.series_count();
    println!(
        "{n} series, {} hosts, {} strings, {} label sets: RSS {:.1} MiB -> {:.1} MiB, {:.1} bytes per series",
        state.hosts().count(),
        state.strings().len(),
        state.labelsets().len(),
        before as f64 / 1048576.0,
        after as f64 / 1048576.0,
        (after - before) as f64 / n as f64
    );
    std::hint::black_box(&state);
}
