//! The disk buffer's loss window, measured: a child process writes readings
//! batches to the disk log at a known rate under one fsync policy, the way the
//! agent does (each fsync on another thread, one at a time), and tells its
//! parent after every write and every finished fsync. The parent kills it with
//! SIGKILL at a random moment, opens the log again and counts what it recovers.
//!
//! Two windows come out of it:
//! - **process crash** (kill -9, an OOM kill, a panic): the log is written
//!   with `pwrite` as each message is made, so what the kernel has is kept
//!   whatever the policy: recovered should equal written.
//! - **power loss / kernel crash**: only what an fsync covered survives. The
//!   child reports how many messages, and how old the oldest, were written
//!   but not yet covered by a finished fsync at the moment of the kill: what a
//!   power cut at that moment would have lost. The policy bounds it: at most
//!   `N ms` plus one fsync's duration of messages under `every N ms`.
//!
//! Run with `cargo bench -p sitewatch-agent --bench buffer_loss`
//! (`SITEWATCH_BENCH_DIR` chooses the disk; `LOSS_RATE` messages per second,
//! default 200; `LOSS_KILLS` kills per policy, default 5).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::{
    io::{BufRead, BufReader, Write},
    path::Path,
    process::{Command, Stdio},
    sync::{Arc, mpsc},
    time::{Duration, Instant},
};

use sitewatch_agent::buffer::{
    Message,
    store::{FsyncPolicy, Store, StoreConfig, SyncOutcome},
};

const CHILD: &str = "SITEWATCH_LOSS_CHILD";

fn config(dir: &Path, fsync: FsyncPolicy) -> StoreConfig {
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

fn parse_policy(s: &str) -> FsyncPolicy {
    match s {
        "always" => FsyncPolicy::Always,
        ms => FsyncPolicy::Every(Duration::from_millis(ms.parse().unwrap())),
    }
}

/// The child: write at `rate` per second until killed. Prints `w <seq>` after
/// each write returned and `s <seq> <micros>` when an fsync covering up to
/// `seq` finished (its duration).
fn child(dir: &Path, policy: FsyncPolicy, rate: u64) {
    let mut store = Store::open(config(dir, policy), Instant::now());
    assert!(store.is_disk());
    let topic: Arc<str> = Arc::from("sitewatch/v1/bj1/web-01/readings");
    let body = vec![b'x'; 3_000];
    let (done_tx, done_rx) = mpsc::channel();
    let mut running: Option<u64> = None;
    let mut last_start = Instant::now();
    let out = std::io::stdout();
    let mut out = out.lock();
    let period = Duration::from_nanos(1_000_000_000 / rate);
    let started = Instant::now();
    for seq in 1u64.. {
        let at = started + period * (seq as u32);
        if let Some(wait) = at.checked_duration_since(Instant::now()) {
            std::thread::sleep(wait);
        }
        store.push(
            Message {
                topic: Arc::clone(&topic),
                seq,
                payload: body.clone(),
                readings: 30,
            },
            Instant::now(),
        );
        writeln!(out, "w {seq}").unwrap();
        if let Ok(outcome) = done_rx.try_recv() {
            let (covered, outcome): (u64, SyncOutcome) = outcome;
            let micros = outcome.duration.as_micros();
            store.sync_finished(outcome, Instant::now());
            writeln!(out, "s {covered} {micros}").unwrap();
            running = None;
        }
        let due = match policy {
            FsyncPolicy::Always => true,
            FsyncPolicy::Every(d) => last_start.elapsed() >= d,
        };
        if running.is_none()
            && due
            && let Some(job) = store.sync_job(Instant::now(), true, false)
        {
            let tx = done_tx.clone();
            running = Some(seq);
            last_start = Instant::now();
            std::thread::spawn(move || {
                let _ = tx.send((seq, job.run()));
            });
        }
        out.flush().unwrap();
    }
}

#[derive(Debug, Default)]
struct Kill {
    written: u64,
    synced: u64,
    recovered: u64,
    /// Messages written but not under a finished fsync at the kill.
    unsynced: u64,
    unsynced_ms: f64,
}

fn one_kill(policy: &str, rate: u64, run_for: Duration) -> Kill {
    let base = std::env::var_os("SITEWATCH_BENCH_DIR")
        .map(Into::into)
        .unwrap_or_else(std::env::temp_dir);
    let dir = tempfile::tempdir_in(base).unwrap();
    let mut child = Command::new(std::env::current_exe().unwrap())
        .env(CHILD, format!("{policy},{rate},{}", dir.path().display()))
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send((Instant::now(), line)).is_err() {
                break;
            }
        }
    });
    let mut k = Kill::default();
    let mut written_at = std::collections::BTreeMap::new();
    let deadline = Instant::now() + run_for;
    while Instant::now() < deadline {
        while let Ok((at, line)) = rx.try_recv() {
            record(&mut k, &mut written_at, at, &line);
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    child.kill().unwrap(); // SIGKILL
    let killed_at = Instant::now();
    child.wait().unwrap();
    // What the child said before it died (the pipe holds the rest).
    while let Ok((at, line)) = rx.recv_timeout(Duration::from_millis(200)) {
        record(&mut k, &mut written_at, at, &line);
    }
    k.unsynced = k.written - k.synced;
    k.unsynced_ms = written_at
        .range(k.synced + 1..)
        .next()
        .map_or(0.0, |(_, at): (_, &Instant)| {
            killed_at.duration_since(*at).as_secs_f64() * 1000.0
        });
    let store = Store::open(config(dir.path(), FsyncPolicy::Always), Instant::now());
    k.recovered = store
        .queue()
        .live_records()
        .map(|r| r.seq)
        .max()
        .unwrap_or(0);
    let count = store.queue().live_records().count() as u64;
    assert_eq!(count, k.recovered, "recovered records are not 1..=max");
    k
}

fn record(
    k: &mut Kill,
    written_at: &mut std::collections::BTreeMap<u64, Instant>,
    at: Instant,
    line: &str,
) {
    let mut parts = line.split(' ');
    match (
        parts.next(),
        parts.next().and_then(|s| s.parse::<u64>().ok()),
    ) {
        (Some("w"), Some(seq)) => {
            k.written = seq;
            written_at.insert(seq, at);
        }
        (Some("s"), Some(seq)) => k.synced = k.synced.max(seq),
        _ => {}
    }
}

fn main() {
    if let Ok(spec) = std::env::var(CHILD) {
        let mut parts = spec.splitn(3, ',');
        let policy = parse_policy(parts.next().unwrap());
        let rate = parts.next().unwrap().parse().unwrap();
        child(Path::new(parts.next().unwrap()), policy, rate);
        return;
    }
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let rate: u64 = std::env::var("LOSS_RATE")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(200);
    let kills: u32 = std::env::var("LOSS_KILLS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(5);
    println!("rate {rate} messages/s, {kills} kills per policy, 3 kB messages");
    println!(
        "| policy | written | recovered after kill -9 | lost to the kill | unsynced at the kill: messages (max) | oldest unsynced, ms (max) |"
    );
    println!("|---|---|---|---|---|---|");
    for policy in ["always", "10", "100", "1000"] {
        let mut all = Vec::new();
        for i in 0..kills {
            // 1.5 to 3.5 s of writing: the kill falls anywhere in an fsync period.
            let run_for = Duration::from_millis(
                1500 + u64::from(i) * 2000 / u64::from(kills.max(1)) + rand_ms(),
            );
            all.push(one_kill(policy, rate, run_for));
        }
        let written: u64 = all.iter().map(|k| k.written).sum();
        let recovered: u64 = all.iter().map(|k| k.recovered).sum();
        let lost: u64 = all
            .iter()
            .map(|k| k.written.saturating_sub(k.recovered))
            .sum();
        let unsynced = all.iter().map(|k| k.unsynced).max().unwrap_or(0);
        let unsynced_ms = all.iter().map(|k| k.unsynced_ms).fold(0.0, f64::max);
        let name = if policy == "always" {
            "always".to_owned()
        } else {
            format!("{policy}ms")
        };
        println!("| {name} | {written} | {recovered} | {lost} | {unsynced} | {unsynced_ms:.0} |");
    }
}

/// A few milliseconds of jitter from the clock, so that kills do not line up
/// with the child's fsync period.
fn rand_ms() -> u64 {
    u64::from(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .subsec_nanos()
            % 97,
    )
}
