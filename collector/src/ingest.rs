//! Ingest: what the broker links receive, decoded with the protocol crate and
//! applied to the state. Inbound only: connecting, subscribing and publishing
//! are the links' (`link/`), evaluating the outputs' (`signals.rs`, `output/`).
//!
//! A bad message is counted by reason and logged (rate-limited); it never stops
//! the task. Decoding (the expensive part) happens before the state's lock is
//! taken, and in place: a batch's strings are borrowed from its payload until
//! the state has interned them.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use sitewatch_protocol::{Rejection, decode_in_place};
use tokio::sync::{Notify, mpsc};

use crate::Shared;
use crate::link::Inbound;
use crate::liveness::PathId;
use crate::replay::Recorder;
use crate::state::Applied;

/// A rejected message is logged at most once per reason in this period.
pub const REJECTION_LOG_PERIOD: Duration = Duration::from_secs(10);

/// Logs a repeated problem at most once per key and period, with how many
/// occurrences were not logged in between. Pure over the `Instant` passed in.
#[derive(Debug, Default)]
pub struct RateLimiter {
    period: Duration,
    last: HashMap<&'static str, (Instant, u64)>,
}

impl RateLimiter {
    pub fn new(period: Duration) -> Self {
        RateLimiter {
            period,
            last: HashMap::new(),
        }
    }

    /// `Some(suppressed)` when this occurrence should be logged, with the count of
    /// occurrences suppressed since the last logged one; `None` to stay quiet.
    pub fn check(&mut self, key: &'static str, now: Instant) -> Option<u64> {
        match self.last.get_mut(key) {
            Some((at, suppressed)) if now.duration_since(*at) < self.period => {
                *suppressed += 1;
                None
            }
            Some((at, suppressed)) => {
                let n = *suppressed;
                *at = now;
                *suppressed = 0;
                Some(n)
            }
            None => {
                self.last.insert(key, (now, 0));
                Some(0)
            }
        }
    }
}

/// Decodes and applies messages; the part of ingest with no network.
#[derive(Debug)]
pub struct Ingestor {
    shared: Arc<Shared>,
    limiter: RateLimiter,
    hooks: Hooks,
}

/// What ingest does besides applying: wake the signals engine, record the
/// traffic.
#[derive(Debug, Default)]
pub struct Hooks {
    /// Notified after each message, so that the engine runs after an ingest burst.
    pub ingested: Option<Arc<Notify>>,
    /// Writes every message received (`--record FILE`).
    pub recorder: Option<Recorder>,
    /// The links' names, indexed by path: what the recorder writes as `path`
    /// when there are several.
    pub path_names: Vec<String>,
}

impl Ingestor {
    pub fn new(shared: Arc<Shared>) -> Self {
        Ingestor::with_hooks(shared, Hooks::default())
    }

    pub fn with_hooks(shared: Arc<Shared>, hooks: Hooks) -> Self {
        Ingestor {
            shared,
            limiter: RateLimiter::new(REJECTION_LOG_PERIOD),
            hooks,
        }
    }

    /// Handles one publish received now through the only (first) path.
    pub fn handle(&mut self, topic: &str, payload: &[u8], retained: bool) {
        let now = self.shared.clock.now_ms();
        self.handle_at(0, topic, payload, retained, now);
    }

    /// Handles one publish received at `now` (Unix ms: the live clock, or a
    /// replay's simulated one) through broker path `path`.
    pub fn handle_at(
        &mut self,
        path: PathId,
        topic: &str,
        payload: &[u8],
        retained: bool,
        now: i64,
    ) {
        self.record(path, topic, payload, retained, now);
        self.apply_and_notify(path, topic, payload, retained, now);
    }

    /// `--record`: every message as it arrived.
    fn record(&self, path: PathId, topic: &str, payload: &[u8], retained: bool, now: i64) {
        if let Some(r) = &self.hooks.recorder {
            let name = (self.hooks.path_names.len() > 1)
                .then(|| self.hooks.path_names.get(usize::from(path)))
                .flatten()
                .map(String::as_str);
            r.record(topic, payload, retained, name, now);
        }
    }

    fn apply_and_notify(
        &mut self,
        path: PathId,
        topic: &str,
        payload: &[u8],
        retained: bool,
        now: i64,
    ) {
        self.apply(path, topic, payload, retained, now);
        if let Some(n) = &self.hooks.ingested {
            n.notify_one();
        }
    }

    /// An ingestor for a decoding worker: the same state and wake-up, its own
    /// log limiter, no recorder (the dispatcher records, in arrival order).
    fn worker(&self) -> Ingestor {
        Ingestor::with_hooks(
            Arc::clone(&self.shared),
            Hooks {
                ingested: self.hooks.ingested.clone(),
                recorder: None,
                path_names: Vec::new(),
            },
        )
    }

    fn apply(&mut self, path: PathId, topic: &str, payload: &[u8], retained: bool, now: i64) {
        match decode_in_place(topic, payload) {
            Ok(msg) => {
                let applied = self.shared.write().apply_decoded(path, &msg, retained, now);
                log_applied(topic, applied);
            }
            Err(rejection) => {
                self.shared.write().count_rejection(&rejection);
                self.log_rejection(topic, &rejection);
            }
        }
    }

    /// A worker's messages (each with when it was taken), decoded first and
    /// then applied under one taking of the write lock: under load a worker
    /// finds many waiting, and a lock per message would let a reader that
    /// takes the lock again and again (a scrape, an evaluation) in between
    /// each one.
    fn apply_all_and_notify(&mut self, messages: &[(Inbound, i64)]) {
        let decoded: Vec<_> = messages
            .iter()
            .map(|(m, now)| (m, *now, decode_in_place(&m.topic, &m.payload)))
            .collect();
        let outcomes: Vec<Result<Applied, &Rejection>> = {
            let mut state = self.shared.write();
            decoded
                .iter()
                .map(|(m, now, msg)| match msg {
                    Ok(msg) => Ok(state.apply_decoded(m.path, msg, m.retain, *now)),
                    Err(rejection) => {
                        state.count_rejection(rejection);
                        Err(rejection)
                    }
                })
                .collect()
        };
        for ((m, _, _), outcome) in decoded.iter().zip(outcomes) {
            match outcome {
                Ok(applied) => log_applied(&m.topic, applied),
                Err(rejection) => self.log_rejection(&m.topic, rejection),
            }
        }
        if let Some(n) = &self.hooks.ingested {
            n.notify_one();
        }
    }

    fn log_rejection(&mut self, topic: &str, rejection: &Rejection) {
        let reason = rejection.reason();
        if let Some(suppressed) = self.limiter.check(reason, Instant::now()) {
            // The topic is attacker-controlled text; cap what goes in the log.
            let topic: String = topic.chars().take(200).collect();
            tracing::warn!(
                reason,
                topic,
                error = %rejection,
                suppressed,
                "message rejected"
            );
        }
    }
}

/// What an applied message is worth a log line for.
fn log_applied(topic: &str, applied: Applied) {
    match applied {
        Applied::Forgotten => tracing::info!(topic, "retained state cleared: host forgotten"),
        Applied::Restarted => tracing::warn!(
            topic,
            "sequence restarted without a new boot: birth missed or out of order"
        ),
        Applied::Readings { gap, .. } if gap > 0 => tracing::debug!(topic, gap, "sequence gap"),
        _ => {}
    }
}

/// At most this many of a worker's waiting messages are applied under one
/// taking of the state's write lock (a few milliseconds of updates).
pub const APPLY_BATCH: usize = 64;

/// Messages waiting for each decoding worker: with the links' own bounded
/// queue, a slow ingest slows the links (the messages wait at the broker,
/// acknowledged only as they are taken) instead of piling up here.
pub const WORKER_QUEUE: usize = 256;

/// The most decoding workers, whatever the core count: past this the state's
/// lock, not decoding, bounds ingest.
pub const MAX_WORKERS: usize = 8;

/// One worker per core, up to [`MAX_WORKERS`].
pub fn default_workers() -> usize {
    std::thread::available_parallelism()
        .map_or(1, std::num::NonZero::get)
        .min(MAX_WORKERS)
}

/// Ingests what the links hand over until every link has stopped, decoding
/// on [`default_workers`] tasks.
pub async fn run(inbound: mpsc::Receiver<Inbound>, ingestor: Ingestor) {
    run_with_workers(inbound, ingestor, default_workers()).await;
}

/// Ingests on `workers` decoding tasks. Decoding, most of ingest's cost, runs
/// on every core; applying takes the state's lock only for the short update.
/// Each host's messages go to one worker ([`worker_of`]), so they are applied
/// in the order they arrived: its sequence numbers, births and wills keep
/// their meaning. Messages of different hosts may be applied in another
/// order than they arrived, which nothing depends on. With one worker,
/// everything happens on this task.
pub async fn run_with_workers(
    mut inbound: mpsc::Receiver<Inbound>,
    mut ingestor: Ingestor,
    workers: usize,
) {
    if workers <= 1 {
        while let Some(m) = inbound.recv().await {
            let now = ingestor.shared.clock.now_ms();
            ingestor.handle_at(m.path, &m.topic, &m.payload, m.retain, now);
        }
        return;
    }
    let mut queues = Vec::with_capacity(workers);
    let mut tasks = Vec::with_capacity(workers);
    for _ in 0..workers {
        let (tx, mut rx) = mpsc::channel::<(Inbound, i64)>(WORKER_QUEUE);
        let mut worker = ingestor.worker();
        tasks.push(tokio::spawn(async move {
            let mut waiting = Vec::with_capacity(APPLY_BATCH);
            while rx.recv_many(&mut waiting, APPLY_BATCH).await > 0 {
                worker.apply_all_and_notify(&waiting);
                waiting.clear();
            }
        }));
        queues.push(tx);
    }
    'links: while let Some(m) = inbound.recv().await {
        let now = ingestor.shared.clock.now_ms();
        ingestor.record(m.path, &m.topic, &m.payload, m.retain, now);
        let Some(queue) = queues.get(worker_of(&m.topic, workers)) else {
            continue;
        };
        if queue.send((m, now)).await.is_err() {
            // A worker is gone (it cannot panic: decoding returns errors);
            // stop taking messages rather than drop them.
            tracing::error!("an ingest worker stopped; ingest stops");
            break 'links;
        }
    }
    drop(queues);
    for t in tasks {
        let _ = t.await;
    }
}

/// The worker of a topic: by its `sitewatch/v1/<site>/<host>` part (FNV-1a),
/// so that every topic of one host goes to the same worker.
pub fn worker_of(topic: &str, workers: usize) -> usize {
    let host_part = topic
        .match_indices('/')
        .nth(3)
        .map_or(topic, |(i, _)| &topic[..i]);
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in host_part.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    usize::try_from(h % workers.max(1) as u64).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Clock;
    use crate::state::{State, StateConfig};

    #[test]
    fn every_topic_of_a_host_goes_to_the_same_worker() {
        for host in ["web-01", "web-02", "gw-17", "db-3"] {
            let topics =
                ["readings", "state", "events"].map(|k| format!("sitewatch/v1/bj1/{host}/{k}"));
            let w = worker_of(&topics[0], 4);
            assert!(w < 4);
            for t in &topics {
                assert_eq!(worker_of(t, 4), w, "{t}");
            }
        }
        // Hosts spread over the workers.
        let used: std::collections::BTreeSet<usize> = (0..64)
            .map(|i| worker_of(&format!("sitewatch/v1/bj1/host-{i:02}/readings"), 4))
            .collect();
        assert_eq!(used.len(), 4);
        assert_eq!(worker_of("x", 0), 0);
    }

    /// Many hosts through four workers: every batch applied, none counted as
    /// a gap or a restart (each host's order kept), the recorder in arrival
    /// order.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn parallel_ingest_applies_every_batch_of_every_host_in_order() {
        let shared = Arc::new(Shared::new(
            State::new(StateConfig::default()),
            Clock::Fixed(1_764_080_000_000),
        ));
        let (tx, rx) = mpsc::channel(16);
        let ingestor = Ingestor::new(Arc::clone(&shared));
        let run = tokio::spawn(run_with_workers(rx, ingestor, 4));
        let hosts = 41;
        let batches = 50;
        for seq in 1..=batches {
            for h in 0..hosts {
                let payload = format!(
                    r#"{{"v":1,"seq":{seq},"ts":1764080000000,"readings":[{{"src":"host","dev":"cpu","name":"cpu","q":"cpu_usage_ratio","value":0.{seq},"state":"ok"}}]}}"#
                );
                tx.send(Inbound {
                    path: 0,
                    topic: format!("sitewatch/v1/bj1/host-{h:02}/readings"),
                    payload: payload.into_bytes().into(),
                    retain: false,
                })
                .await
                .unwrap();
            }
            // Among them, one a worker cannot decode: counted, the rest applied.
            tx.send(Inbound {
                path: 0,
                topic: format!("sitewatch/v1/bj1/host-{:02}/readings", seq % hosts),
                payload: b"{not json".to_vec().into(),
                retain: false,
            })
            .await
            .unwrap();
        }
        drop(tx);
        run.await.unwrap();
        let state = shared.read();
        let c = state.counters();
        assert_eq!(c.rejected.iter().sum::<u64>(), batches);
        assert_eq!(c.readings, hosts * batches);
        assert_eq!(c.gaps, 0);
        assert_eq!(c.sequence_restarts, 0);
        assert_eq!(c.duplicates, 0);
        assert_eq!(state.series_count(), hosts as usize);
    }

    #[test]
    fn rate_limiter_logs_once_per_period_with_the_suppressed_count() {
        let mut r = RateLimiter::new(Duration::from_secs(10));
        let t0 = Instant::now();
        assert_eq!(r.check("not_json", t0), Some(0));
        assert_eq!(r.check("not_json", t0 + Duration::from_secs(1)), None);
        assert_eq!(r.check("not_json", t0 + Duration::from_secs(2)), None);
        // Another reason has its own budget.
        assert_eq!(r.check("too_large", t0 + Duration::from_secs(2)), Some(0));
        assert_eq!(r.check("not_json", t0 + Duration::from_secs(10)), Some(2));
        assert_eq!(r.check("not_json", t0 + Duration::from_secs(11)), None);
    }

    #[test]
    fn rejected_messages_are_counted_by_reason_and_the_rest_still_ingested() {
        let shared = Arc::new(Shared::new(
            State::new(StateConfig::default()),
            Clock::Fixed(1_000_000),
        ));
        let mut ing = Ingestor::new(Arc::clone(&shared));
        ing.handle("sitewatch/v1/bj1/web-01/readings", b"{not json", false);
        ing.handle("sitewatch/v1/bj1/web-01/readings", b"{not json", false);
        ing.handle("sitewatch/v1/BJ1/web-01/readings", b"{}", false);
        ing.handle(
            "sitewatch/v1/bj1/web-01/readings",
            br#"{"v":2,"seq":1,"ts":1,"readings":[]}"#,
            false,
        );
        ing.handle(
            "sitewatch/v1/bj1/web-01/readings",
            br#"{"v":1,"seq":1,"ts":1,"readings":[{"src":"host","dev":"cpu","name":"cpu","q":"cpu_usage_ratio","value":0.5,"state":"ok"}]}"#,
            false,
        );
        let state = shared.read();
        let c = state.counters();
        let count = |reason: &str| {
            let i = Rejection::REASONS
                .iter()
                .position(|r| *r == reason)
                .unwrap();
            c.rejected[i]
        };
        assert_eq!(count("not_json"), 2);
        assert_eq!(count("bad_topic"), 1);
        assert_eq!(count("wrong_version"), 1);
        assert_eq!(c.rejected.iter().sum::<u64>(), 4);
        assert_eq!(c.readings, 1);
    }
}
