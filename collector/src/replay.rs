//! Recorded traffic (`PROTOCOL.md`, "Recorded traffic"): [`Recorder`] writes what
//! the collector receives as replay-file lines; [`replay`] runs such a file through
//! the same decode, ingest ([`Ingestor::handle_at`]) and engine
//! ([`Signals::tick`]) as the live collector, on a simulated clock, and
//! reports the signal timeline.
//!
//! # The simulated clock
//!
//! Unix time `epoch + t_ms`, where `epoch` is the first record's payload `ts` minus
//! its `t_ms` (so that the agents' timestamps and the collector's clock agree, as
//! they did live), or [`FIXED_EPOCH_MS`] when the first record has no `ts` (a will).
//! The collector "starts" at `t_ms` 0: the engine's startup grace and the heartbeat
//! rule's grace count from there.
//!
//! The engine is evaluated every [`TICK_MS`] of simulated time, as live, and after
//! the records of each `t_ms` have been ingested (live: after an ingest burst):
//! at the union of both sets of instants, each once, from 0 to the last record.
//! Nothing else (no wall clock, no hash order, no thread) enters, so one file
//! always gives the same timeline.

use std::io::{self, BufRead, Write};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, TrySendError, sync_channel};

use serde::{Deserialize, Serialize};
use serde_json::Value;
use sitewatch_protocol::Severity;
use sitewatch_protocol::replay::{ReplayRecord, TimelineEntry};
use sitewatch_signals::SignalsConfig;

use crate::ingest::Ingestor;
use crate::signals::Signals;
use crate::state::{State, StateConfig};
use crate::{Clock, Error, Shared};

/// The simulated clock's epoch when the first record carries no `ts`:
/// 2025-11-25T14:13:20Z, the protocol examples' instant.
pub const FIXED_EPOCH_MS: i64 = 1_764_080_000_000;
/// The engine's tick on the simulated clock, as live ([`crate::signals::TICK`]).
pub const TICK_MS: u64 = 1_000;
/// The longest recording a replay runs: every simulated second is an engine
/// evaluation, so one line years ahead (found by fuzzing) would run for ever.
/// Seven days is `[state] forget_after`'s default, longer than any grace.
pub const MAX_SPAN_MS: u64 = 7 * 86_400_000;

/// A line of the file that could not be replayed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LineError {
    /// 1-based.
    pub line: usize,
    pub reason: String,
}

impl std::fmt::Display for LineError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "line {}: {}", self.line, self.reason)
    }
}

/// One line of the timeline `replay` prints: the contract's [`TimelineEntry`]
/// plus the signal's `severity` (an additive field): an advisory (`low`, e.g. a
/// site on generator) is raised like an alarm, and only this tells them apart.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TimelineLine {
    #[serde(flatten)]
    pub entry: TimelineEntry,
    pub severity: Severity,
}

/// What a replay reports, in order.
#[derive(Debug, Clone, PartialEq)]
pub enum ReplayEvent {
    Timeline(TimelineLine),
    /// A broken line; the replay goes on.
    Skipped(LineError),
}

/// Runs a replay file through ingest and the engine; `emit` gets the timeline and
/// the broken lines as they come. Fails only when the input cannot be read.
pub fn replay<R: BufRead>(
    input: R,
    state: StateConfig,
    signals: &SignalsConfig,
    mut emit: impl FnMut(ReplayEvent),
) -> io::Result<()> {
    let mut run: Option<Run> = None;
    for (i, line) in input.lines().enumerate() {
        let n = i + 1;
        let line = match line {
            Ok(l) => l,
            Err(e) if e.kind() == io::ErrorKind::InvalidData => {
                emit(ReplayEvent::Skipped(LineError {
                    line: n,
                    reason: "not UTF-8".into(),
                }));
                continue;
            }
            Err(e) => return Err(e),
        };
        if line.trim().is_empty() {
            continue;
        }
        let record: ReplayRecord = match serde_json::from_str(&line) {
            Ok(r) => r,
            Err(e) => {
                emit(ReplayEvent::Skipped(LineError {
                    line: n,
                    reason: format!("not a replay record: {e}"),
                }));
                continue;
            }
        };
        let run = run.get_or_insert_with(|| Run::new(epoch_of(&record), state, signals));
        if record.t_ms < run.last_t {
            emit(ReplayEvent::Skipped(LineError {
                line: n,
                reason: format!(
                    "t_ms {} is before the previous record's {}: records must be in time order",
                    record.t_ms, run.last_t
                ),
            }));
            continue;
        }
        if record.t_ms > MAX_SPAN_MS {
            emit(ReplayEvent::Skipped(LineError {
                line: n,
                reason: format!(
                    "t_ms {} is more than 7 days into the recording: a replay evaluates every \
                     simulated second, so a longer span (a broken or hostile line) would run for ever",
                    record.t_ms
                ),
            }));
            continue;
        }
        run.advance_to(record.t_ms, &mut emit);
        run.apply(&record);
    }
    if let Some(mut run) = run {
        run.finish(&mut emit);
    }
    Ok(())
}

/// Replays a whole input and returns what it reported (tests, small files).
pub fn replay_all<R: BufRead>(
    input: R,
    state: StateConfig,
    signals: &SignalsConfig,
) -> io::Result<Vec<ReplayEvent>> {
    let mut out = Vec::new();
    replay(input, state, signals, |e| out.push(e))?;
    Ok(out)
}

/// The simulated clock's epoch (see the module docs).
pub fn epoch_of(first: &ReplayRecord) -> i64 {
    let t = i64::try_from(first.t_ms).unwrap_or(0);
    first
        .payload
        .get("ts")
        .and_then(Value::as_i64)
        .map_or(FIXED_EPOCH_MS, |ts| ts.saturating_sub(t))
}

struct Run {
    epoch: i64,
    /// The `path` names met so far, in order: path ids as the live collector
    /// numbers its links.
    paths: Vec<String>,
    shared: Arc<Shared>,
    ingestor: Ingestor,
    signals: Signals,
    next_tick: u64,
    last_eval: Option<u64>,
    /// Records ingested at `last_t` and not evaluated yet.
    pending: bool,
    last_t: u64,
}

impl Run {
    fn new(epoch: i64, state: StateConfig, signals: &SignalsConfig) -> Self {
        let shared = Arc::new(Shared::with_config(
            State::new(state),
            Clock::Fixed(epoch),
            signals.clone(),
            epoch,
        ));
        Run {
            epoch,
            paths: Vec::new(),
            ingestor: Ingestor::new(Arc::clone(&shared)),
            shared,
            signals: Signals::new(signals.clone(), epoch),
            next_tick: 0,
            last_eval: None,
            pending: false,
            last_t: 0,
        }
    }

    fn now(&self, t: u64) -> i64 {
        self.epoch
            .saturating_add(i64::try_from(t).unwrap_or(i64::MAX))
    }

    /// Evaluates everything due before `t`.
    fn advance_to(&mut self, t: u64, emit: &mut impl FnMut(ReplayEvent)) {
        if self.pending && self.last_t < t {
            self.evaluate(self.last_t, emit);
        }
        while self.next_tick < t {
            if self.last_eval.is_none_or(|e| self.next_tick > e) {
                self.evaluate(self.next_tick, emit);
            }
            self.next_tick += TICK_MS;
        }
    }

    fn apply(&mut self, r: &ReplayRecord) {
        let now = self.now(r.t_ms);
        let path = match &r.path {
            None => 0,
            Some(name) => match self.paths.iter().position(|p| p == name) {
                Some(i) => i,
                None => {
                    self.paths.push(name.clone());
                    self.paths.len() - 1
                }
            },
        };
        let path = u8::try_from(path).unwrap_or(u8::MAX);
        self.ingestor
            .handle_at(path, &r.topic, &r.payload_bytes(), r.retain, now);
        self.pending = true;
        self.last_t = r.t_ms;
    }

    fn finish(&mut self, emit: &mut impl FnMut(ReplayEvent)) {
        if self.pending {
            self.evaluate(self.last_t, emit);
        }
    }

    fn evaluate(&mut self, t: u64, emit: &mut impl FnMut(ReplayEvent)) {
        let now = self.now(t);
        // The recording's brokers were connected throughout (the file says
        // nothing else): no link table, every path up. The live loop's tick:
        // the kept snapshot and the incremental evaluation, which give what a
        // fresh snapshot evaluated in full would (their tests), so a replay
        // also checks them against the recorded timelines.
        let evaluation = self.signals.tick(&self.shared.read(), &[], now);
        for change in &evaluation.changes {
            if let Some(entry) = change.timeline_entry(t) {
                emit(ReplayEvent::Timeline(TimelineLine {
                    entry,
                    severity: change.severity,
                }));
            }
        }
        self.last_eval = Some(t);
        self.pending = false;
    }
}

/// The payload as a replay file holds it: the JSON value when the bytes are a JSON
/// object or array (or number...), else the raw text as a string (a malformed
/// message replays as it arrived; bytes that are not UTF-8 are replaced).
pub fn payload_value(payload: &[u8]) -> Value {
    match serde_json::from_slice::<Value>(payload) {
        // A JSON string would replay as its contents, not its quotes: kept raw.
        Ok(v) if !v.is_string() => v,
        _ => Value::String(String::from_utf8_lossy(payload).into_owned()),
    }
}

/// Records are queued to the writer thread; beyond this many the newest are
/// dropped (and counted) rather than holding up ingest on a slow disk.
pub const RECORD_QUEUE: usize = 65_536;

/// Writes every message the collector receives to a replay file (`--record FILE`),
/// from a thread of its own.
#[derive(Debug)]
pub struct Recorder {
    started_ms: i64,
    tx: SyncSender<ReplayRecord>,
    dropped: AtomicU64,
}

impl Recorder {
    /// Creates (truncates) `path`; `t_ms` counts from `started_ms`.
    pub fn create(path: &Path, started_ms: i64) -> Result<Self, Error> {
        let file = std::fs::File::create(path).map_err(|source| Error::FileRead {
            path: path.to_owned(),
            what: "the record file (--record)",
            source,
        })?;
        let (tx, rx) = sync_channel(RECORD_QUEUE);
        let dropped = AtomicU64::new(0);
        let name = path.display().to_string();
        std::thread::Builder::new()
            .name("record".into())
            .spawn(move || write_records(rx, io::BufWriter::new(file), &name))
            .map_err(|source| Error::FileRead {
                path: path.to_owned(),
                what: "the record file (--record): no writer thread",
                source,
            })?;
        Ok(Recorder {
            started_ms,
            tx,
            dropped,
        })
    }

    /// Queues one received message.
    pub fn record(
        &self,
        topic: &str,
        payload: &[u8],
        retain: bool,
        path: Option<&str>,
        now_ms: i64,
    ) {
        let record = ReplayRecord {
            t_ms: u64::try_from(now_ms.saturating_sub(self.started_ms)).unwrap_or(0),
            topic: topic.to_owned(),
            retain,
            path: path.map(str::to_owned),
            payload: payload_value(payload),
        };
        match self.tx.try_send(record) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) => {
                let n = self.dropped.fetch_add(1, Ordering::Relaxed);
                if n.is_power_of_two() {
                    tracing::warn!(dropped = n + 1, "recording falls behind: messages dropped");
                }
            }
            Err(TrySendError::Disconnected(_)) => {}
        }
    }
}

fn write_records(rx: Receiver<ReplayRecord>, mut out: impl Write, name: &str) {
    let write = |r: &ReplayRecord, out: &mut dyn Write| -> io::Result<()> {
        serde_json::to_writer(&mut *out, r)?;
        out.write_all(b"\n")
    };
    while let Ok(first) = rx.recv() {
        let mut result = write(&first, &mut out);
        // Whatever else is queued, then one flush: a line is on disk soon after it
        // arrived, without a system call per message under load.
        while let Ok(r) = rx.try_recv() {
            result = result.and_then(|()| write(&r, &mut out));
        }
        if let Err(e) = result.and_then(|()| out.flush()) {
            tracing::error!(file = name, error = %e, "cannot write the record file; recording stops");
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Found by the `replay_line` fuzz target: without serde_json's exactly
    /// rounded float parsing, a long number in a payload was recorded as one
    /// float and read back from the file as its neighbour.
    #[test]
    fn a_recorded_payload_with_a_long_number_replays_as_the_same_value() {
        let payload = format!("{{\"\":{}60}}", "1".repeat(112));
        let record = ReplayRecord {
            t_ms: 0,
            topic: "sitewatch/v1/bj1/gw-01/readings".into(),
            retain: false,
            path: None,
            payload: payload_value(payload.as_bytes()),
        };
        let line = serde_json::to_string(&record).unwrap();
        let back: ReplayRecord = serde_json::from_str(&line).unwrap();
        assert_eq!(back, record);
    }

    #[test]
    fn a_record_years_into_the_recording_is_skipped_not_simulated() {
        let input = concat!(
            r#"{"t_ms":0,"topic":"sitewatch/v1/bj1/gw-01/state","payload":{"v":1,"status":"online"}}"#,
            "\n",
            r#"{"t_ms":101064080200,"topic":"sitewatch/v1/bj1/gw-01/state","payload":{"v":1,"status":"online"}}"#,
            "\n",
        );
        let mut skipped = Vec::new();
        replay(
            input.as_bytes(),
            StateConfig::default(),
            &SignalsConfig::default(),
            |e| {
                if let ReplayEvent::Skipped(e) = e {
                    skipped.push(e);
                }
            },
        )
        .unwrap();
        assert_eq!(skipped.len(), 1, "{skipped:?}");
        assert_eq!(skipped[0].line, 2);
        assert!(
            skipped[0].reason.contains("more than 7 days"),
            "{}",
            skipped[0].reason
        );
    }

    #[test]
    fn payloads_that_are_not_json_objects_are_kept_raw() {
        assert_eq!(payload_value(br#"{"v":1}"#), serde_json::json!({"v": 1}));
        assert_eq!(
            payload_value(b"{not json"),
            Value::String("{not json".into())
        );
        assert_eq!(
            payload_value(b"\"quoted\""),
            Value::String("\"quoted\"".into())
        );
        assert_eq!(payload_value(b""), Value::String(String::new()));
    }

    #[test]
    fn epoch_is_the_first_ts_minus_its_offset_or_the_fixed_one() {
        let r: ReplayRecord = serde_json::from_str(
            r#"{"t_ms":5000,"topic":"t","payload":{"v":1,"ts":1764080005000}}"#,
        )
        .unwrap();
        assert_eq!(epoch_of(&r), 1_764_080_000_000);
        let r: ReplayRecord =
            serde_json::from_str(r#"{"t_ms":0,"topic":"t","payload":{"v":1}}"#).unwrap();
        assert_eq!(epoch_of(&r), FIXED_EPOCH_MS);
    }

    #[test]
    fn recorded_lines_replay_to_the_same_bytes() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("rec.jsonl");
        let rec = Recorder::create(&path, 1_000).unwrap();
        rec.record(
            "sitewatch/v1/bj1/web-01/state",
            br#"{"v":1,"status":"online"}"#,
            true,
            None,
            1_000,
        );
        rec.record(
            "sitewatch/v1/bj1/web-01/readings",
            b"{broken",
            false,
            Some("sh1"),
            3_500,
        );
        drop(rec);
        let text = crate::replay::tests::wait_for_lines(&path, 2);
        let records: Vec<ReplayRecord> = text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(records[0].t_ms, 0);
        assert!(records[0].retain);
        assert_eq!(records[1].t_ms, 2_500);
        assert_eq!(records[1].payload_bytes(), b"{broken");
    }

    pub(crate) fn wait_for_lines(path: &Path, n: usize) -> String {
        for _ in 0..200 {
            let text = std::fs::read_to_string(path).unwrap_or_default();
            if text.lines().count() >= n {
                return text;
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        panic!("{} never had {n} lines", path.display());
    }
}
