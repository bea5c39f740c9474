//! `/metrics` rendering (Prometheus text 0.0.4) at 10k, 100k and 1M series.
//!
//! `cargo bench -p sitewatch-collector --bench render`
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::sync::Arc;
use std::time::Duration;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use sitewatch_collector::metrics::{Exposition, Format};
use sitewatch_collector::state::{State, StateConfig};
use sitewatch_collector::{Clock, Shared};
use support::*;

fn benches(c: &mut Criterion) {
    let mut g = c.benchmark_group("render_prometheus_text");
    g.sample_size(10);
    g.measurement_time(Duration::from_secs(10));
    for series in [10_000usize, 100_000, 1_000_000] {
        let mut state = State::new(StateConfig::default());
        for h in 0..series / READINGS_PER_HOST {
            state.apply(&message(h, 1, 1.5), false, T0);
        }
        assert_eq!(state.series_count(), series);
        let shared = Arc::new(Shared::new(state, Clock::Fixed(T0)));
        let reg = Exposition::new(shared);
        let bytes = reg.render(Format::Prometheus).unwrap().len();
        eprintln!("{series} series: {bytes} bytes of exposition");
        g.throughput(Throughput::Elements(series as u64));
        g.bench_with_input(BenchmarkId::from_parameter(series), &reg, |b, reg| {
            b.iter(|| {
                // As `/metrics` streams it: chunk by chunk, none kept.
                let mut bytes = 0;
                reg.render_to(Format::Prometheus, &mut |chunk| {
                    bytes += chunk.len();
                    true
                })
                .unwrap();
                bytes
            })
        });
    }
    g.finish();
}

criterion_group!(render_group, benches);
criterion_main!(render_group);
