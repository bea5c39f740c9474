//! How long a scrape holds ingest up: N series (default 1,000,000: 10,000 hosts
//! of 100 readings), one thread scraping `/metrics` (the registry rendered as
//! Prometheus text) again and again, the main thread applying batches as
//! ingest does, each taking the state's write lock. Prints the scrape times
//! and the waits for the write lock while scrapes ran: the longest is how long
//! a scrape blocked ingest.
//!
//! `cargo run --release -p sitewatch-collector --example scrape_wait [-- SERIES SCRAPES]`
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[path = "../benches/support/mod.rs"]
mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use sitewatch_collector::metrics::{Exposition, Format};
use sitewatch_collector::state::{State, StateConfig};
use sitewatch_collector::{Clock, Shared};
use support::*;

fn main() {
    let mut args = std::env::args().skip(1);
    let series: usize = args.next().map_or(1_000_000, |s| s.parse().unwrap());
    let scrapes: usize = args.next().map_or(5, |s| s.parse().unwrap());
    let hosts = series / READINGS_PER_HOST;
    let mut state = State::new(StateConfig::default());
    for h in 0..hosts {
        state.apply(&message(h, 1, 1.0), false, T0);
    }
    let shared = Arc::new(Shared::new(state, Clock::Fixed(T0)));
    let done = Arc::new(AtomicBool::new(false));
    let scraper = {
        let shared = Arc::clone(&shared);
        let done = Arc::clone(&done);
        std::thread::spawn(move || {
            let reg = Exposition::new(shared);
            let mut times = Vec::new();
            for _ in 0..scrapes {
                let t = Instant::now();
                // As `/metrics` streams it: chunk by chunk, none kept.
                let mut bytes = 0;
                reg.render_to(Format::Prometheus, &mut |chunk| {
                    bytes += chunk.len();
                    true
                })
                .unwrap();
                times.push((t.elapsed(), bytes));
            }
            done.store(true, Ordering::SeqCst);
            times
        })
    };
    let mut waits: Vec<Duration> = Vec::new();
    let mut seq = 2;
    let mut h = 0;
    while !done.load(Ordering::SeqCst) {
        let msg = message(h, seq, 2.0);
        let t = Instant::now();
        let mut s = shared.write();
        waits.push(t.elapsed());
        s.apply(&msg, false, T0);
        drop(s);
        h = (h + 1) % hosts;
        if h == 0 {
            seq += 1;
        }
    }
    let times = scraper.join().unwrap();
    waits.sort_unstable();
    let pct = |p: f64| waits[((waits.len() - 1) as f64 * p) as usize];
    for (t, len) in &times {
        println!(
            "scrape: {:.0} ms, {:.1} MB",
            t.as_secs_f64() * 1e3,
            *len as f64 / 1e6
        );
    }
    println!(
        "{} batches applied during the scrapes; write-lock wait: median {:.3} ms, p99 {:.3} ms, max {:.1} ms",
        waits.len(),
        pct(0.5).as_secs_f64() * 1e3,
        pct(0.99).as_secs_f64() * 1e3,
        waits.last().unwrap().as_secs_f64() * 1e3,
    );
}
