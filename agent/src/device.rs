//! The shared device layer: every source that reads devices over a network or
//! a bus (Modbus units, BMCs, SNMP agents) hands them to a [`Fleet`], which
//!
//! - runs each device in its own task, so one sick device never stalls another;
//! - bounds each read by the device's own timeout (the read is cancelled, and
//!   the device reports its points unknown);
//! - reads a device when its own interval has come round, or at every poll
//!   for devices without one;
//! - backs off from a dead device: after [`BACKOFF_AFTER`] failed reads in a
//!   row, reads are skipped (no I/O, its points reported unknown) for a
//!   doubling delay, jittered within its upper half so that backing off
//!   always means fewer reads, up to [`Settings::backoff_max`];
//! - gives every device the same health readings (`src = "agent"`,
//!   `dev = "<source>/<device>"`): `agent_poll_success` (1 or 0, with an
//!   `error` label naming the error kind when 0), `agent_poll_duration_seconds`,
//!   `agent_polls_total`, `agent_poll_errors_total`, `agent_poll_timeouts_total`,
//!   and the device's own counters (names from [`selfmetrics::q`]);
//! - logs a device's errors when their kind changes, again every
//!   [`REPEAT_LOG_EVERY`] while it persists, and once on recovery.
//!
//! A source implements [`Device`] for the thing it reads and keeps its
//! protocol logic there; the layer owns scheduling, isolation and health.

use std::{future::Future, time::Duration};

use rand::SeedableRng;
use sitewatch_protocol::{Reading, ReadingState};
use tokio::{
    sync::{mpsc, oneshot},
    time::Instant,
};

use crate::{backoff::Backoff, selfmetrics, source::Polled};

/// Consecutive failed reads before the layer starts skipping a device.
pub const BACKOFF_AFTER: u64 = 2;

/// How often a persisting error is logged again.
pub const REPEAT_LOG_EVERY: Duration = Duration::from_secs(600);

/// Why a device read failed: a bounded `kind` (a metric label) and the detail.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct DeviceError {
    pub kind: &'static str,
    pub message: String,
}

impl DeviceError {
    pub fn new(kind: &'static str, message: impl Into<String>) -> Self {
        DeviceError {
            kind,
            message: message.into(),
        }
    }

    /// The read did not finish within the device's timeout.
    pub fn timeout(limit: Duration) -> Self {
        DeviceError::new(
            TIMEOUT,
            format!(
                "no complete read within {}",
                humantime::format_duration(limit)
            ),
        )
    }

    pub fn is_timeout(&self) -> bool {
        self.kind == TIMEOUT
    }
}

/// The error kind of a read cut off by the layer's timeout.
pub const TIMEOUT: &str = "timeout";

/// What one read produced: readings (points that could not be read come out
/// unknown) and events, and whether the read as a whole failed.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Read {
    pub polled: Polled,
    pub error: Option<DeviceError>,
}

impl Read {
    pub fn ok(polled: Polled) -> Self {
        Read {
            polled,
            error: None,
        }
    }

    pub fn failed(polled: Polled, error: DeviceError) -> Self {
        Read {
            polled,
            error: Some(error),
        }
    }
}

/// One device a source reads.
pub trait Device: Send + 'static {
    /// Reads the device once.
    fn read(&mut self) -> impl Future<Output = Read> + Send;

    /// What to report when the device could not be read at all (its read timed
    /// out or was skipped for backoff): usually its points, unknown.
    fn unread(&self, _error: &DeviceError) -> Polled {
        Polled::default()
    }

    /// The device's own counters beyond the shared ones, e.g.
    /// `(selfmetrics::q::MODBUS_EXCEPTIONS, 3.0)`: added to its health readings.
    fn counters(&self) -> Vec<(&'static str, f64)> {
        Vec::new()
    }

    /// Wakes the device before a read when the layer knows it is due early
    /// (a trap arrived): nothing by default.
    fn hurry(&mut self) {}
}

/// How the layer treats one device.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Settings {
    /// Read when this much time has passed since the previous read started;
    /// `None`: at every poll of the source.
    pub interval: Option<Duration>,
    /// The most one read may take.
    pub timeout: Duration,
    /// Whether to skip a device that keeps failing, and for how long at most.
    pub backoff_max: Option<Duration>,
}

/// A device's health counters, since start.
#[derive(Debug, Clone, Default)]
struct Health {
    polls: u64,
    errors: u64,
    timeouts: u64,
    last_duration: Duration,
    last_error: Option<DeviceError>,
    counters: Vec<(&'static str, f64)>,
}

/// What the device's task hands back.
struct Reply {
    read: Read,
    counters: Vec<(&'static str, f64)>,
    duration: Duration,
    skipped: bool,
}

enum Request {
    Read(oneshot::Sender<Reply>),
    /// Report the device unread without touching it (backoff).
    Skip(DeviceError, oneshot::Sender<Reply>),
}

/// One device as the fleet knows it: its task's mailbox and its bookkeeping.
#[derive(Debug)]
struct Member {
    name: String,
    settings: Settings,
    requests: mpsc::Sender<Request>,
    next_due: Option<Instant>,
    retry_at: Option<Instant>,
    consecutive_failures: u64,
    backoff: Option<Backoff>,
    health: Health,
    log: ErrorLog,
}

impl std::fmt::Debug for Request {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Request::Read(_) => "Read",
            Request::Skip(..) => "Skip",
        })
    }
}

/// The outcome of one device in one poll, for sources that decide more from it
/// (the ipmi source fails a poll in which no BMC could be read for a reason
/// other than being unreachable).
#[derive(Debug, Clone)]
pub struct Outcome {
    pub device: String,
    pub error: Option<DeviceError>,
}

/// A source's devices, each in its own task.
#[derive(Debug)]
pub struct Fleet {
    source: &'static str,
    members: Vec<Member>,
    rng: rand::rngs::StdRng,
}

impl Fleet {
    pub fn new(source: &'static str) -> Self {
        Fleet {
            source,
            members: Vec::new(),
            rng: rand::rngs::StdRng::from_os_rng(),
        }
    }

    /// Starts `device`'s task (call within a tokio runtime).
    pub fn add<D: Device>(&mut self, name: impl Into<String>, device: D, settings: Settings) {
        let (requests, rx) = mpsc::channel(1);
        tokio::spawn(run_device(device, settings.timeout, rx));
        let backoff = settings.backoff_max.map(|max| {
            let min = settings.interval.unwrap_or(Duration::from_secs(1));
            Backoff::new(min, max.max(min))
        });
        self.members.push(Member {
            name: name.into(),
            settings,
            requests,
            next_due: None,
            retry_at: None,
            consecutive_failures: 0,
            backoff,
            health: Health::default(),
            log: ErrorLog::default(),
        });
    }

    pub fn is_empty(&self) -> bool {
        self.members.is_empty()
    }

    pub fn len(&self) -> usize {
        self.members.len()
    }

    /// Makes `device` due at the next poll, out of its interval and backoff
    /// (a trap said its state changed). False if there is no such device.
    pub fn hurry(&mut self, device: &str) -> bool {
        match self.members.iter_mut().find(|m| m.name == device) {
            Some(m) => {
                m.next_due = None;
                m.retry_at = None;
                true
            }
            None => false,
        }
    }

    /// Reads every due device at once and waits for them all (each within its
    /// own timeout): their readings and events, then their health readings.
    pub async fn poll(&mut self) -> (Polled, Vec<Outcome>) {
        let now = Instant::now();
        let mut pending = Vec::new();
        for (index, m) in self.members.iter_mut().enumerate() {
            let due = m
                .next_due
                .is_none_or(|due| now + Duration::from_millis(50) >= due);
            if !due {
                continue;
            }
            if let Some(interval) = m.settings.interval {
                m.next_due = Some(now + interval);
            }
            let (tx, rx) = oneshot::channel();
            let request = match (&m.retry_at, &m.health.last_error) {
                (Some(at), Some(e)) if now < *at => Request::Skip(e.clone(), tx),
                _ => Request::Read(tx),
            };
            // A full mailbox: the previous read is somehow still running.
            let sent = m.requests.try_send(request).is_ok();
            pending.push((index, sent.then_some(rx)));
        }
        // Each task bounds its own read; the slack covers a task that could not
        // even answer (it should not happen: the read future is cancelled).
        let waits = pending.into_iter().map(|(index, rx)| {
            let limit = self.members[index].settings.timeout + Duration::from_millis(500);
            async move {
                let reply = match rx {
                    None => None,
                    Some(rx) => tokio::time::timeout(limit, rx)
                        .await
                        .ok()
                        .and_then(Result::ok),
                };
                (index, reply)
            }
        });
        let replies = futures_util::future::join_all(waits).await;
        let mut polled = Polled::default();
        let mut outcomes = Vec::new();
        for (index, reply) in replies {
            let source = self.source;
            let m = &mut self.members[index];
            let reply = reply.unwrap_or_else(|| Reply {
                read: Read::failed(
                    Polled::default(),
                    DeviceError::new("busy", "the previous read is still running"),
                ),
                counters: m.health.counters.clone(),
                duration: Duration::ZERO,
                skipped: false,
            });
            m.record(&reply, now, &mut self.rng);
            m.log_outcome(source, reply.read.error.as_ref(), reply.skipped);
            outcomes.push(Outcome {
                device: m.name.clone(),
                error: reply.read.error.clone(),
            });
            polled.readings.extend(reply.read.polled.readings);
            polled.events.extend(reply.read.polled.events);
            polled.checkpoints.extend(reply.read.polled.checkpoints);
            polled.readings.extend(m.health_readings(source));
        }
        (polled, outcomes)
    }
}

impl Member {
    fn record(&mut self, reply: &Reply, started: Instant, rng: &mut rand::rngs::StdRng) {
        self.health.counters.clone_from(&reply.counters);
        if reply.skipped {
            return;
        }
        let h = &mut self.health;
        h.polls += 1;
        h.last_duration = reply.duration;
        match &reply.read.error {
            None => {
                h.last_error = None;
                self.consecutive_failures = 0;
                self.retry_at = None;
                if let Some(b) = &mut self.backoff {
                    b.reset();
                }
            }
            Some(e) => {
                if e.is_timeout() {
                    h.timeouts += 1;
                } else {
                    h.errors += 1;
                }
                h.last_error = Some(e.clone());
                self.consecutive_failures += 1;
                if self.consecutive_failures >= BACKOFF_AFTER
                    && let Some(b) = &mut self.backoff
                {
                    self.retry_at = Some(started + b.next_spaced_delay(rng));
                }
            }
        }
    }

    fn log_outcome(&mut self, source: &'static str, error: Option<&DeviceError>, skipped: bool) {
        if skipped {
            return;
        }
        let device = self.name.as_str();
        match self.log.observe(error.map(|e| e.kind), Instant::now()) {
            LogAction::Quiet => {}
            LogAction::Failing { failures } => {
                if let Some(e) = error {
                    tracing::warn!(source, device, kind = e.kind, failures, error = %e, "device read failed");
                }
            }
            LogAction::Recovered { failures } => {
                tracing::info!(source, device, failures, "device read recovered");
            }
        }
    }

    fn health_readings(&self, source: &str) -> Vec<Reading> {
        let dev = format!("{source}/{}", self.name);
        let h = &self.health;
        let r = |q: &str, v: f64| selfmetrics::reading(dev.clone(), q, v);
        let mut success = Reading::new(
            selfmetrics::SRC,
            dev.clone(),
            selfmetrics::name(selfmetrics::q::POLL_SUCCESS),
            selfmetrics::q::POLL_SUCCESS,
            Some(f64::from(u8::from(h.last_error.is_none()))),
            if h.last_error.is_none() {
                ReadingState::Ok
            } else {
                ReadingState::Warning
            },
        );
        if let Some(e) = &h.last_error {
            success = success.with_label("error", e.kind);
        }
        let mut out = vec![
            success,
            r(
                selfmetrics::q::POLL_DURATION_SECONDS,
                h.last_duration.as_secs_f64(),
            ),
            r(selfmetrics::q::POLLS, h.polls as f64),
            r(selfmetrics::q::POLL_ERRORS, h.errors as f64),
            r(selfmetrics::q::POLL_TIMEOUTS, h.timeouts as f64),
        ];
        out.extend(h.counters.iter().map(|(q, v)| r(q, *v)));
        out
    }
}

/// A device's task: one read at a time, each under the device's timeout.
async fn run_device<D: Device>(
    mut device: D,
    timeout: Duration,
    mut requests: mpsc::Receiver<Request>,
) {
    while let Some(request) = requests.recv().await {
        let (reply_to, reply) = match request {
            Request::Skip(error, reply_to) => {
                let read = Read::failed(device.unread(&error), error);
                let counters = device.counters();
                (
                    reply_to,
                    Reply {
                        read,
                        counters,
                        duration: Duration::ZERO,
                        skipped: true,
                    },
                )
            }
            Request::Read(reply_to) => {
                let started = Instant::now();
                let read = match tokio::time::timeout(timeout, device.read()).await {
                    Ok(read) => read,
                    Err(_) => {
                        let error = DeviceError::timeout(timeout);
                        Read::failed(device.unread(&error), error)
                    }
                };
                let counters = device.counters();
                (
                    reply_to,
                    Reply {
                        read,
                        counters,
                        duration: started.elapsed(),
                        skipped: false,
                    },
                )
            }
        };
        // The fleet stopped waiting (it gave up on this read): nothing to do.
        let _ = reply_to.send(reply);
    }
}

/// What to log about a read, so that a dead device read every 5 s is logged
/// when its error changes and every [`REPEAT_LOG_EVERY`], not every time (the
/// count is in the health readings).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogAction {
    Quiet,
    /// A first error, an error of another kind than the previous one, or the
    /// same error again after [`REPEAT_LOG_EVERY`].
    Failing {
        failures: u64,
    },
    /// A success after `failures` failed reads.
    Recovered {
        failures: u64,
    },
}

/// Logging on change, rate-limited (pure: time passed in).
#[derive(Debug, Default)]
pub struct ErrorLog {
    last_kind: Option<&'static str>,
    last_logged: Option<Instant>,
    failures: u64,
}

impl ErrorLog {
    pub fn observe(&mut self, error_kind: Option<&'static str>, now: Instant) -> LogAction {
        match error_kind {
            None => {
                let failures = std::mem::take(&mut self.failures);
                self.last_logged = None;
                match self.last_kind.take() {
                    Some(_) => LogAction::Recovered { failures },
                    None => LogAction::Quiet,
                }
            }
            Some(kind) => {
                self.failures += 1;
                let changed = self.last_kind.replace(kind) != Some(kind);
                let stale = self
                    .last_logged
                    .is_none_or(|at| now.duration_since(at) >= REPEAT_LOG_EVERY);
                if changed || stale {
                    self.last_logged = Some(now);
                    LogAction::Failing {
                        failures: self.failures,
                    }
                } else {
                    LogAction::Quiet
                }
            }
        }
    }
}

#[cfg(test)]
mod tests;
