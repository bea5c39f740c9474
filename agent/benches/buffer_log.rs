//! The disk buffer's throughput: messages per second written to the log
//! (`Store::push`, with the fsync of each policy run where the agent would
//! run it) and replayed after a restart (`Store::open`'s recovery plus reading
//! every payload back). Run with
//! `cargo bench -p sitewatch-agent --bench buffer_log`.
//!
//! The broker is away in this bench (nothing is acknowledged): that is when
//! the buffer fills, and the log's bound then drops its oldest segments, as it
//! does in the field.
//!
//! The agent runs each fsync on a blocking thread while the publisher goes
//! on; here it runs inline, on the thread that writes, so the figures for
//! `always` are a floor (one fsync per message, none grouped).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use sitewatch_agent::buffer::{
    Message,
    store::{FsyncPolicy, Store, StoreConfig},
};
use sitewatch_protocol::{Reading, ReadingState, ReadingsPayload, encode};

/// Messages written per measured iteration.
const BATCH: u64 = 200;
/// Messages in the log replayed per iteration.
const REPLAYED: u64 = 5_000;

/// A readings batch as the agent makes it: `n` readings of one poll.
fn payload(n: usize, seq: u64) -> Vec<u8> {
    let readings = (0..n)
        .map(|i| {
            Reading::new(
                "ipmi",
                "bmc",
                format!("Temp {i}"),
                "temperature_celsius",
                Some(21.0 + i as f64 / 10.0),
                ReadingState::Ok,
            )
            .with_label("entity", "system_board")
        })
        .collect();
    encode(&ReadingsPayload {
        v: 1,
        seq,
        ts: 1_764_080_000_000 + seq as i64,
        readings,
        boot: None,
        site: None,
        host: None,
    })
    .unwrap()
}

fn config(dir: &std::path::Path, fsync: FsyncPolicy) -> StoreConfig {
    StoreConfig {
        dir: Some(dir.to_path_buf()),
        fsync,
        max_messages: 1_000_000,
        max_bytes: 256 * 1024 * 1024,
        max_memory_bytes: 8 * 1024 * 1024,
        brokers: vec!["main".into()],
        window: 100,
    }
}

/// Pushes `count` messages, running the policy's fsync where it falls due.
fn write(
    store: &mut Store,
    topic: &Arc<str>,
    body: &[u8],
    seq: &mut u64,
    last_sync: &mut Instant,
    count: u64,
) {
    for _ in 0..count {
        *seq += 1;
        let now = Instant::now();
        store.push(
            Message {
                topic: Arc::clone(topic),
                seq: *seq,
                payload: body.to_vec(),
                readings: 30,
            },
            now,
        );
        let due = match store.fsync_policy() {
            FsyncPolicy::Always => true,
            FsyncPolicy::Every(d) => now.duration_since(*last_sync) >= d,
        };
        if due {
            if let Some(job) = store.sync_job(now, true, false) {
                let outcome = job.run();
                store.sync_finished(outcome, Instant::now());
            }
            *last_sync = now;
        }
    }
}

const POLICIES: [(&str, FsyncPolicy); 4] = [
    ("always", FsyncPolicy::Always),
    ("every_10ms", FsyncPolicy::Every(Duration::from_millis(10))),
    (
        "every_100ms",
        FsyncPolicy::Every(Duration::from_millis(100)),
    ),
    (
        "every_1000ms",
        FsyncPolicy::Every(Duration::from_millis(1000)),
    ),
];

fn bench_write(c: &mut Criterion) {
    let topic: Arc<str> = Arc::from("sitewatch/v1/bj1/web-01/readings");
    for readings in [30usize, 300] {
        let body = payload(readings, 1);
        let mut group =
            c.benchmark_group(format!("buffer_write_{readings}_readings_{}B", body.len()));
        group.throughput(Throughput::Elements(BATCH));
        for (name, policy) in POLICIES {
            let dir = tempfile::tempdir_in(bench_dir()).unwrap();
            let mut store = Store::open(config(dir.path(), policy), Instant::now());
            assert!(store.is_disk());
            let mut seq = 0;
            let mut last_sync = Instant::now();
            group.bench_function(name, |b| {
                b.iter(|| write(&mut store, &topic, &body, &mut seq, &mut last_sync, BATCH));
            });
        }
        group.finish();
    }
}

fn bench_replay(c: &mut Criterion) {
    let topic: Arc<str> = Arc::from("sitewatch/v1/bj1/web-01/readings");
    let body = payload(30, 1);
    let dir = tempfile::tempdir_in(bench_dir()).unwrap();
    {
        let mut store = Store::open(config(dir.path(), FsyncPolicy::Always), Instant::now());
        let mut seq = 0;
        let mut last = Instant::now();
        write(&mut store, &topic, &body, &mut seq, &mut last, REPLAYED);
        if let Some(job) = store.sync_job(Instant::now(), true, true) {
            store.sync_finished(job.run(), Instant::now());
        }
    }
    let mut group = c.benchmark_group(format!("buffer_replay_30_readings_{}B", body.len()));
    group.throughput(Throughput::Elements(REPLAYED));
    group.bench_function("open_and_read_all", |b| {
        b.iter_batched(
            || (),
            |()| {
                let mut store =
                    Store::open(config(dir.path(), FsyncPolicy::Always), Instant::now());
                let indices: Vec<u64> = store.queue().live_records().map(|r| r.index).collect();
                assert_eq!(indices.len() as u64, REPLAYED);
                let mut bytes = 0;
                for i in indices {
                    bytes += store.payload(i).map_or(0, |p| p.len());
                }
                bytes
            },
            BatchSize::PerIteration,
        );
    });
    group.finish();
}

/// Where the logs go: `SITEWATCH_BENCH_DIR`, else the system's temp folder
/// (a tmpfs there would make fsync free: say which disk a figure is from).
fn bench_dir() -> std::path::PathBuf {
    std::env::var_os("SITEWATCH_BENCH_DIR")
        .map(Into::into)
        .unwrap_or_else(std::env::temp_dir)
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(4));
    targets = bench_write, bench_replay
}
criterion_main!(benches);
