//! The signals evaluation per tick at 10k, 100k and 1M series: what the live
//! loop does every second (`signals::run`), the state read and the engine
//! evaluated at `now`.
//!
//! - `full`: the state copied into a fresh [`Snapshot`] and evaluated (what
//!   every tick cost before issue 18, and what `replay` does).
//! - `idle`: [`Signals::tick`], a tick with nothing ingested since the last one.
//! - `one_host`: [`Signals::tick`] after one host's batch of 100 readings.
//! - `spread`: [`Signals::tick`] after a batch from every 25th host (what
//!   200 ms of a fleet publishing every 5 s brings), every site changed; the
//!   batches' ingest is not in the time.
//!
//! The fleet: hosts of 100 series (500 hosts a site), every value in its
//! normal range, so that no condition holds: the cost of looking, not of
//! alarms.
//!
//! `cargo bench -p sitewatch-collector --bench signals`
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::time::Duration;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use sitewatch_collector::signals::{Signals, snapshot};
use sitewatch_collector::state::{State, StateConfig};
use sitewatch_protocol::{Body, Message, Reading, ReadingState, ReadingsPayload, Topic, quantity};
use sitewatch_signals::SignalsConfig;
use support::{READINGS_PER_HOST, T0, host_names};

/// A value in the normal range of each quantity.
fn normal(q: &str) -> f64 {
    if q.contains("temperature") {
        22.0
    } else if q == "fan_speed_rpm" {
        5000.0
    } else if q.ends_with("_ok")
        || q.ends_with("_passed")
        || q.ends_with("_available")
        || q.ends_with("_up")
        || q == "cooling_unit_running"
    {
        1.0
    } else if q.ends_with("_ratio") {
        0.3
    } else {
        0.0
    }
}

fn message(host: usize, seq: u64, ts: i64) -> Message {
    const SOURCES: [(&str, &str); 5] = [
        ("ipmi", "bmc"),
        ("smart", "sda"),
        ("modbus", "ups-a"),
        ("host", "cpu"),
        ("net", "gw"),
    ];
    let readings = (0..READINGS_PER_HOST)
        .map(|i| {
            let (src, dev) = SOURCES[i % SOURCES.len()];
            let q = quantity::VOCABULARY[i % quantity::VOCABULARY.len()].0;
            Reading::new(
                src,
                dev,
                format!("sensor {i}"),
                q,
                Some(normal(q)),
                ReadingState::Ok,
            )
        })
        .collect();
    let (site, host) = host_names(host);
    Message {
        topic: Topic::readings(&site, &host),
        body: Body::Readings(ReadingsPayload {
            v: 1,
            seq,
            ts,
            readings,
            boot: None,
            site: None,
            host: None,
        }),
    }
}

fn benches(c: &mut Criterion) {
    let mut g = c.benchmark_group("signals_tick");
    g.sample_size(10);
    g.measurement_time(Duration::from_secs(8));
    let now = T0 + 1_000;
    for series in [10_000usize, 100_000, 1_000_000] {
        let hosts = series / READINGS_PER_HOST;
        let mut state = State::new(StateConfig::default());
        for h in 0..hosts {
            state.apply(&message(h, 1, T0), false, T0);
        }
        assert_eq!(state.series_count(), series);
        let config = SignalsConfig::default();
        g.throughput(Throughput::Elements(series as u64));

        let mut signals = Signals::new(config.clone(), T0 - 3_600_000);
        let first = signals.evaluate(&state, &[], now);
        assert!(first.active.is_empty(), "{:?}", first.active);
        g.bench_with_input(BenchmarkId::new("full", series), &state, |b, state| {
            b.iter(|| {
                let snap = snapshot(state, &[], signals.config(), signals.started_at_ms(), now);
                signals.evaluate_snapshot(&snap, now)
            })
        });

        let mut signals = Signals::new(config.clone(), T0 - 3_600_000);
        signals.tick(&state, &[], now);
        g.bench_with_input(BenchmarkId::new("idle", series), &state, |b, state| {
            b.iter(|| signals.tick(state, &[], now))
        });

        let mut signals = Signals::new(config.clone(), T0 - 3_600_000);
        signals.tick(&state, &[], now);
        let mut seq = 1;
        g.bench_function(BenchmarkId::new("one_host", series), |b| {
            b.iter(|| {
                seq += 1;
                state.apply(&message(seq as usize % hosts, seq, T0), false, T0);
                signals.tick(&state, &[], now)
            })
        });

        // What 200 ms of the fleet publishing every 5 s brings: 4 % of the
        // hosts, spread over every site (each site changed at every tick).
        let mut signals = Signals::new(config, T0 - 3_600_000);
        signals.tick(&state, &[], now);
        let step = 25;
        let mut offset = 0;
        // The batches are built and applied outside the timed part: what is
        // measured is the tick that follows them (the evaluation's cost), not
        // the ingest of 40,000 readings, which `pipeline` measures.
        g.bench_function(BenchmarkId::new("spread", series), |b| {
            b.iter_custom(|iters| {
                let mut timed = Duration::ZERO;
                for _ in 0..iters {
                    offset = (offset + 1) % step;
                    for h in (offset..hosts).step_by(step) {
                        seq += 1;
                        state.apply(&message(h, seq, T0), false, T0);
                    }
                    let start = std::time::Instant::now();
                    std::hint::black_box(signals.tick(&state, &[], now));
                    timed += start.elapsed();
                }
                timed
            })
        });
    }
    g.finish();
}

criterion_group!(signals_group, benches);
criterion_main!(signals_group);
