//! Decode and ingest throughput: a 100-reading batch, decoded by the protocol crate
//! and applied to the state (steady state: every series exists already).
//!
//! `decode` and `decode_and_ingest` decode into owned strings (`decode`),
//! `decode_in_place` and `decode_in_place_and_ingest` borrow them from the
//! payload (`decode_in_place`, what the collector's ingest does): the pair
//! shows what the copies cost.
//!
//! `paths/`: the same traffic arriving through one broker path, and through two
//! (a dual-homed deployment: every batch twice, the second copy decoded and
//! dropped by `(boot, seq)`). Throughput counts the distinct readings, so the
//! ratio of the two is the cost of the second path.
//!
//! `cargo bench -p sitewatch-collector --bench ingest`
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::hint::black_box;
use std::time::Duration;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use sitewatch_collector::state::{State, StateConfig};
use sitewatch_protocol::{Body, Decoded, decode, decode_in_place};
use support::*;

const HOSTS: usize = 1000;

fn warm_state() -> State {
    let mut state = State::new(StateConfig::default());
    for h in 0..HOSTS {
        state.apply(&message(h, 1, 1.0), false, T0);
    }
    state
}

fn benches(c: &mut Criterion) {
    let mut g = c.benchmark_group("batch_100_readings");
    g.throughput(Throughput::Elements(READINGS_PER_HOST as u64));
    g.measurement_time(Duration::from_secs(5));

    let (topic, bytes) = wire(7, 1, 20.0);
    g.bench_function("decode", |b| {
        b.iter(|| decode(black_box(&topic), black_box(&bytes)).unwrap())
    });
    g.bench_function("decode_in_place", |b| {
        b.iter(|| decode_in_place(black_box(&topic), black_box(&bytes)).unwrap())
    });

    let mut state = warm_state();
    let mut msgs: Vec<_> = (0..HOSTS).map(|h| message(h, 1, 2.0)).collect();
    let mut i = 0;
    g.bench_function("ingest", |b| {
        b.iter(|| {
            let m = &mut msgs[i % HOSTS];
            i += 1;
            if let Body::Readings(r) = &mut m.body {
                r.seq += 1;
            }
            state.apply(black_box(m), false, T0)
        })
    });

    let mut state = warm_state();
    let wires: Vec<_> = (0..HOSTS).map(|h| wire(h, 1, 3.0)).collect();
    let mut seqs = vec![1u64; HOSTS];
    let mut i = 0;
    g.bench_function("decode_and_ingest", |b| {
        b.iter(|| {
            let h = i % HOSTS;
            i += 1;
            let (topic, bytes) = &wires[h];
            let mut m = decode(topic, bytes).unwrap();
            seqs[h] += 1;
            if let Body::Readings(r) = &mut m.body {
                r.seq = seqs[h];
            }
            state.apply(&m, false, T0)
        })
    });

    let mut state = warm_state();
    let mut i = 0;
    g.bench_function("decode_in_place_and_ingest", |b| {
        b.iter(|| {
            let h = i % HOSTS;
            i += 1;
            let (topic, bytes) = &wires[h];
            let mut d = decode_in_place(topic, bytes).unwrap();
            seqs[h] += 1;
            if let Decoded::Readings(_, r) = &mut d {
                r.seq = seqs[h];
            }
            state.apply_decoded(0, &d, false, T0)
        })
    });
    g.finish();

    let mut g = c.benchmark_group("paths");
    g.throughput(Throughput::Elements(READINGS_PER_HOST as u64));
    g.measurement_time(Duration::from_secs(5));
    for paths in [1u8, 2] {
        let mut state = warm_state();
        let wires: Vec<_> = (0..HOSTS).map(|h| wire(h, 1, 4.0)).collect();
        let mut seqs = vec![1u64; HOSTS];
        let mut i = 0;
        g.bench_function(format!("decode_and_ingest_{paths}"), |b| {
            b.iter(|| {
                let h = i % HOSTS;
                i += 1;
                seqs[h] += 1;
                let (topic, bytes) = &wires[h];
                for path in 0..paths {
                    // Each copy is decoded: the sequence number is inside.
                    let mut d = decode_in_place(topic, bytes).unwrap();
                    if let Decoded::Readings(_, r) = &mut d {
                        r.seq = seqs[h];
                    }
                    black_box(state.apply_decoded(path, &d, false, T0));
                }
            })
        });
    }
    g.finish();
}

criterion_group!(ingest, benches);
criterion_main!(ingest);
