//! Runs each source on its own interval, in its own task, every poll under its
//! own timeout, so that one slow source never delays another. Outcomes go to the
//! publisher through a bounded channel.

use std::time::Duration;

use tokio::{
    sync::{mpsc, watch},
    task::JoinHandle,
    time::MissedTickBehavior,
};

use crate::{
    config::Schedule,
    source::{Poll, Polled, SourceError},
    unix_ms,
};

/// The result of one poll.
#[derive(Debug, Clone)]
pub struct PollOutcome {
    pub source: &'static str,
    /// When the poll started: the readings' timestamp.
    pub ts_ms: i64,
    pub duration: Duration,
    pub result: Result<Polled, SourceError>,
}

/// Polls once under the schedule's timeout.
pub async fn poll_once(source: &mut impl Poll, timeout: Duration) -> PollOutcome {
    let ts_ms = unix_ms();
    // tokio's clock, so that tests with paused time measure it too.
    let started = tokio::time::Instant::now();
    let result = match tokio::time::timeout(timeout, source.poll()).await {
        Ok(result) => result,
        Err(_) => Err(SourceError::Timeout(timeout)),
    };
    PollOutcome {
        source: source.name(),
        ts_ms,
        duration: started.elapsed(),
        result,
    }
}

/// Starts one task per source; each stops when `shutdown` becomes true.
pub fn spawn<S: Poll + Send + 'static>(
    sources: Vec<(S, Schedule)>,
    outcomes: mpsc::Sender<PollOutcome>,
    shutdown: watch::Receiver<bool>,
) -> Vec<JoinHandle<()>> {
    sources
        .into_iter()
        .map(|(source, schedule)| {
            tokio::spawn(run_source(
                source,
                schedule,
                outcomes.clone(),
                shutdown.clone(),
            ))
        })
        .collect()
}

async fn run_source<S: Poll + Send>(
    mut source: S,
    schedule: Schedule,
    outcomes: mpsc::Sender<PollOutcome>,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut ticks = tokio::time::interval(schedule.interval);
    // A poll that overran its interval is followed by the next one a full
    // interval later, not by a burst of catch-up polls.
    ticks.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let mut errors = ErrorLog::default();
    let wake = source.wake();
    loop {
        tokio::select! {
            _ = ticks.tick() => {}
            // A trap: poll now (the devices not due are not read).
            _ = async {
                match &wake {
                    Some(w) => w.notified().await,
                    None => std::future::pending().await,
                }
            } => {}
            _ = shutdown.wait_for(|stop| *stop) => return,
        }
        let outcome = poll_once(&mut source, schedule.timeout).await;
        match errors.observe(outcome.result.as_ref().err()) {
            LogAction::Quiet => {}
            LogAction::Failing => {
                if let Err(e) = &outcome.result {
                    tracing::warn!(source = outcome.source, kind = e.kind(), error = %e, "poll failed");
                }
            }
            LogAction::Recovered { failures } => {
                tracing::info!(source = outcome.source, failures, "poll recovered");
            }
        }
        if outcomes.send(outcome).await.is_err() {
            return; // the publisher is gone: shutting down
        }
    }
}

/// What to log about a poll, so that a dead device polled every 5 s is logged
/// when its error changes, not every time (the count is in the self-metrics).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogAction {
    Quiet,
    /// A first error, or an error of another kind than the previous one.
    Failing,
    /// A success after `failures` failed polls.
    Recovered {
        failures: u64,
    },
}

#[derive(Debug, Default)]
pub struct ErrorLog {
    last_kind: Option<&'static str>,
    failures: u64,
}

impl ErrorLog {
    pub fn observe(&mut self, error: Option<&SourceError>) -> LogAction {
        match error {
            None => {
                let failures = std::mem::take(&mut self.failures);
                match self.last_kind.take() {
                    Some(_) => LogAction::Recovered { failures },
                    None => LogAction::Quiet,
                }
            }
            Some(e) => {
                self.failures += 1;
                if self.last_kind.replace(e.kind()) == Some(e.kind()) {
                    LogAction::Quiet
                } else {
                    LogAction::Failing
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use sitewatch_protocol::{Reading, ReadingState};

    use super::*;

    /// A source whose every poll takes `delay`.
    struct Fake {
        name: &'static str,
        delay: Duration,
    }

    impl Poll for Fake {
        fn name(&self) -> &'static str {
            self.name
        }

        async fn poll(&mut self) -> Result<Polled, SourceError> {
            tokio::time::sleep(self.delay).await;
            Ok(vec![Reading::new(
                self.name,
                "d",
                "n",
                "x_ratio",
                Some(0.5),
                ReadingState::Ok,
            )]
            .into())
        }
    }

    fn every(interval_ms: u64, timeout_ms: u64) -> Schedule {
        Schedule {
            interval: Duration::from_millis(interval_ms),
            timeout: Duration::from_millis(timeout_ms),
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_hung_source_times_out_without_delaying_another() {
        let (tx, mut rx) = mpsc::channel(64);
        let (_stop_tx, stop_rx) = watch::channel(false);
        let sources = vec![
            (
                Fake {
                    name: "hung",
                    delay: Duration::from_secs(3600),
                },
                every(1000, 2000),
            ),
            (
                Fake {
                    name: "fast",
                    delay: Duration::from_millis(10),
                },
                every(1000, 2000),
            ),
        ];
        let _tasks = spawn(sources, tx, stop_rx);
        let started = tokio::time::Instant::now();
        let mut fast = 0;
        let mut hung = Vec::new();
        while started.elapsed() < Duration::from_millis(4500) {
            let outcome = rx.recv().await.unwrap();
            match outcome.source {
                "fast" => {
                    assert!(outcome.result.is_ok());
                    fast += 1;
                }
                _ => hung.push(outcome),
            }
        }
        // The fast source kept its 1 s rhythm while the other hung.
        assert!(fast >= 4, "{fast} fast polls");
        assert!(!hung.is_empty());
        for outcome in hung {
            assert_eq!(
                outcome.result.unwrap_err(),
                SourceError::Timeout(Duration::from_secs(2))
            );
            assert_eq!(outcome.duration, Duration::from_secs(2));
        }
    }

    #[test]
    fn errors_are_logged_on_change_and_recovery() {
        let mut log = ErrorLog::default();
        let timeout = SourceError::Timeout(Duration::from_secs(1));
        assert_eq!(log.observe(None), LogAction::Quiet);
        assert_eq!(log.observe(Some(&timeout)), LogAction::Failing);
        assert_eq!(log.observe(Some(&timeout)), LogAction::Quiet);
        assert_eq!(log.observe(Some(&timeout)), LogAction::Quiet);
        assert_eq!(log.observe(Some(&SourceError::Busy)), LogAction::Failing);
        assert_eq!(log.observe(None), LogAction::Recovered { failures: 4 });
        assert_eq!(log.observe(None), LogAction::Quiet);
    }
}
