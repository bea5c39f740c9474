//! Ingest: what the broker links receive, decoded with the protocol crate and
//! applied to the state. Inbound only: connecting, subscribing and publishing
//! are the links' (`link/`), evaluating the outputs' (`signals.rs`, `output/`).
//!
//! A bad message is counted by reason and logged (rate-limited); it never stops
//! the task. Decoding (the expensive part) happens before the state's lock is
//! taken.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use sitewatch_protocol::{Rejection, decode};
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
        if let Some(r) = &self.hooks.recorder {
            let name = (self.hooks.path_names.len() > 1)
                .then(|| self.hooks.path_names.get(usize::from(path)))
                .flatten()
                .map(String::as_str);
            r.record(topic, payload, retained, name, now);
        }
        self.apply(path, topic, payload, retained, now);
        if let Some(n) = &self.hooks.ingested {
            n.notify_one();
        }
    }

    fn apply(&mut self, path: PathId, topic: &str, payload: &[u8], retained: bool, now: i64) {
        match decode(topic, payload) {
            Ok(msg) => {
                let applied = self.shared.write().apply_from(path, &msg, retained, now);
                match applied {
                    Applied::Forgotten => {
                        tracing::info!(topic, "retained state cleared: host forgotten")
                    }
                    Applied::Restarted => tracing::warn!(
                        topic,
                        "sequence restarted without a new boot: birth missed or out of order"
                    ),
                    Applied::Readings { gap, .. } if gap > 0 => {
                        tracing::debug!(topic, gap, "sequence gap")
                    }
                    _ => {}
                }
            }
            Err(rejection) => {
                self.shared.write().count_rejection(&rejection);
                self.log_rejection(topic, &rejection);
            }
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

/// Ingests what the links hand over until every link has stopped.
pub async fn run(mut inbound: mpsc::Receiver<Inbound>, mut ingestor: Ingestor) {
    while let Some(m) = inbound.recv().await {
        let now = ingestor.shared.clock.now_ms();
        ingestor.handle_at(m.path, &m.topic, &m.payload, m.retain, now);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Clock;
    use crate::state::{State, StateConfig};

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
