//! Ingest as the live collector runs it: raw messages handed over by a link
//! (`link::Inbound` through the bounded channel), decoded and applied by
//! `ingest::run_with_workers` with one worker (everything on one task, as
//! before issue 18) and with one per core. 2,000 batches of 100 readings from
//! 1,000 hosts (steady state: the series exist already) per iteration.
//!
//! `cargo bench -p sitewatch-collector --bench pipeline`
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::sync::Arc;
use std::time::Duration;

use criterion::{BatchSize, BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use sitewatch_collector::ingest::{Ingestor, default_workers, run_with_workers};
use sitewatch_collector::link::{INBOUND_QUEUE, Inbound};
use sitewatch_collector::state::{State, StateConfig};
use sitewatch_collector::{Clock, Shared};
use support::*;
use tokio::sync::mpsc;

const HOSTS: usize = 1000;
const BATCHES: usize = 2000;

fn warm_shared() -> Arc<Shared> {
    let mut state = State::new(StateConfig::default());
    for h in 0..HOSTS {
        state.apply(&message(h, 1, 1.0), false, T0);
    }
    Arc::new(Shared::new(state, Clock::Fixed(T0)))
}

fn inbound() -> Vec<Inbound> {
    (0..BATCHES)
        .map(|i| {
            let (topic, payload) = wire(i % HOSTS, 2 + (i / HOSTS) as u64, 2.0);
            Inbound {
                path: 0,
                topic,
                payload: payload.into(),
                retain: false,
            }
        })
        .collect()
}

fn benches(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let mut g = c.benchmark_group("ingest_pipeline");
    g.throughput(Throughput::Elements((BATCHES * READINGS_PER_HOST) as u64));
    g.sample_size(10);
    g.measurement_time(Duration::from_secs(10));
    let mut counts = vec![1, default_workers()];
    counts.dedup();
    for workers in counts {
        g.bench_with_input(BenchmarkId::new("workers", workers), &workers, |b, &w| {
            b.iter_batched(
                || (warm_shared(), inbound()),
                |(shared, messages)| {
                    runtime.block_on(async {
                        let (tx, rx) = mpsc::channel(INBOUND_QUEUE);
                        let run = tokio::spawn(run_with_workers(
                            rx,
                            Ingestor::new(Arc::clone(&shared)),
                            w,
                        ));
                        for m in messages {
                            tx.send(m).await.unwrap();
                        }
                        drop(tx);
                        run.await.unwrap();
                    });
                    assert_eq!(
                        shared.read().counters().readings as usize,
                        (HOSTS + BATCHES) * READINGS_PER_HOST
                    );
                },
                BatchSize::PerIteration,
            )
        });
    }
    g.finish();
}

criterion_group!(pipeline_group, benches);
criterion_main!(pipeline_group);
