//! The store: the shared [`Queue`] over its payloads, its bounds, and the
//! fsync policy of its disk log.
//!
//! - **Memory** (no `buffer.dir`): payloads in memory, bounded by
//!   `max_messages` and `max_bytes`; gone with the process.
//! - **Disk**: every message is written to the disk log ([`super::log`]) as
//!   it is made, and read back when it is sent. `max_bytes` bounds the log's
//!   files (whole segments are dropped, oldest first); `max_messages` the
//!   messages. What the log held at start is sent again, oldest first, to each
//!   broker that had not acknowledged it.
//! - **Disk, fallen back**: when a write fails (a full disk, an I/O error, a
//!   directory that cannot be opened), messages are kept in memory instead,
//!   bounded by `max_memory_bytes`, and the disk is tried again
//!   [`RETRY_DISK_AFTER`] later. Counted and logged; never a stop.
//!
//! The fsync itself runs off the publisher's task ([`SyncJob::run`] on a
//! blocking thread): one job at a time, covering every segment written since
//! the previous one, and the brokers' cursors when they moved.

use std::{
    collections::BTreeMap,
    path::PathBuf,
    sync::Arc,
    time::{Duration, Instant},
};

use super::{
    Message,
    log::{Cursors, DiskLog, LogError, SyncFiles, write_durably},
    queue::{Payload, Queue, QueueStats, Record},
};

/// How long a fallen-back store waits before it tries the disk again.
pub const RETRY_DISK_AFTER: Duration = Duration::from_secs(10);
/// The brokers' cursors are persisted at most this often (and at a stop).
pub const CURSORS_EVERY: Duration = Duration::from_secs(1);

/// When the disk log is flushed to stable storage.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FsyncPolicy {
    /// After every write (grouped: one fsync covers what was written while the
    /// previous one ran).
    Always,
    /// At most this long after a write.
    Every(Duration),
}

/// How the store is set up.
#[derive(Debug, Clone, PartialEq)]
pub struct StoreConfig {
    /// The disk log's directory; `None` keeps everything in memory.
    pub dir: Option<PathBuf>,
    pub fsync: FsyncPolicy,
    pub max_messages: usize,
    /// Memory mode: payload bytes in memory. Disk mode: bytes of the log's files.
    pub max_bytes: usize,
    /// Disk mode: payload bytes kept in memory while the disk fails.
    pub max_memory_bytes: usize,
    /// The brokers' names, in configuration order (the queue's broker ids).
    pub brokers: Vec<String>,
    /// Messages in flight per broker.
    pub window: usize,
}

/// The store's counters and gauges, for the self-metrics.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct StoreStats {
    pub queue: QueueStats,
    /// Bytes held: the log's files plus payloads in memory.
    pub bytes: u64,
    /// Whether new messages go to disk now.
    pub on_disk: bool,
    /// Disk writes, reads and syncs that failed, and a log that could not be opened.
    pub disk_errors: u64,
    /// Times the store fell back to memory.
    pub fallbacks: u64,
    /// Messages found in the log at start and still due to some broker.
    pub recovered_messages: u64,
    /// Records cut off at start (torn tails, corruption), counted per segment.
    pub truncated_segments: u64,
    /// The last fsync's duration.
    pub last_fsync: Duration,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Memory,
    Disk,
    Fallback { retry_at: Instant },
}

/// One fsync round, run on a blocking thread.
#[derive(Debug)]
pub struct SyncJob {
    files: SyncFiles,
    cursors: Option<(PathBuf, Vec<u8>, Cursors)>,
    /// When the oldest write it covers was made.
    since: Option<Instant>,
}

/// What a [`SyncJob`] did.
#[derive(Debug)]
pub struct SyncOutcome {
    pub result: std::io::Result<()>,
    pub duration: Duration,
    since: Option<Instant>,
    cursors: Option<Cursors>,
}

impl SyncJob {
    /// fsyncs the files, then writes the cursors (blocking).
    pub fn run(self) -> SyncOutcome {
        let started = Instant::now();
        let mut result = self.files.run();
        let mut written = None;
        if result.is_ok()
            && let Some((path, bytes, cursors)) = self.cursors
        {
            result = write_durably(&path, &bytes);
            if result.is_ok() {
                written = Some(cursors);
            }
        }
        SyncOutcome {
            result,
            duration: started.elapsed(),
            since: self.since,
            cursors: written,
        }
    }
}

/// The store; see the module documentation.
#[derive(Debug)]
pub struct Store {
    queue: Queue,
    disk: Option<DiskLog>,
    config: StoreConfig,
    mode: Mode,
    stats: StoreStats,
    /// Topics, shared by the records that carry them.
    topics: Vec<Arc<str>>,
    /// The oldest write not covered by a finished or running sync.
    unsynced_since: Option<Instant>,
    cursors_written: Option<Cursors>,
    cursors_at: Option<Instant>,
    /// The last disk error's text, to log on change only.
    last_error: Option<String>,
}

impl Store {
    /// Opens the store; a disk log that cannot be opened is logged and counted,
    /// and the store starts in memory (retrying the disk later).
    pub fn open(config: StoreConfig, now: Instant) -> Store {
        let brokers = config.brokers.len().max(1);
        let mut store = Store {
            queue: Queue::new(brokers, config.window, 0),
            disk: None,
            mode: Mode::Memory,
            stats: StoreStats::default(),
            topics: Vec::new(),
            unsynced_since: None,
            cursors_written: None,
            cursors_at: None,
            last_error: None,
            config,
        };
        if store.config.dir.is_some() {
            store.open_disk(now);
        }
        store
    }

    /// Segments roll over at an eighth of the bound, so that dropping the
    /// oldest one frees a useful share without dropping too much at once.
    fn segment_bytes(&self) -> u64 {
        (self.config.max_bytes as u64 / 8).clamp(64 * 1024, 16 * 1024 * 1024)
    }

    fn open_disk(&mut self, now: Instant) {
        let Some(dir) = self.config.dir.clone() else {
            return;
        };
        let late = self.stats.fallbacks > 0;
        match DiskLog::open(&dir, self.segment_bytes()) {
            Ok((_, recovery)) if late && !recovery.entries.is_empty() => {
                // Messages of an earlier run appeared since the first attempt
                // (this process's are in memory, numbered already): leave them
                // for the next start rather than mixing the two.
                tracing::error!(
                    dir = %dir.display(),
                    messages = recovery.entries.len(),
                    "buffer: the disk log holds earlier messages now; staying in memory until the next start"
                );
                self.mode = Mode::Memory;
            }
            Ok((log, recovery)) if late => {
                self.queue.reserve_to(recovery.cursors.next_index);
                self.disk = Some(log);
                self.mode = Mode::Disk;
                self.stats.on_disk = true;
            }
            Ok((log, recovery)) => {
                for t in &recovery.truncations {
                    tracing::warn!(
                        segment = %t.path.display(),
                        at = t.at,
                        lost_bytes = t.lost_bytes,
                        reason = t.reason,
                        "buffer: cut off a torn or corrupt tail (a crash while writing)"
                    );
                }
                if recovery.cursors_unreadable {
                    tracing::warn!(dir = %dir.display(), "buffer: unreadable cursors.json; every broker gets the whole log again");
                }
                self.stats.truncated_segments += recovery.truncations.len() as u64;
                self.disk = Some(log);
                self.recover(recovery.entries, &recovery.cursors);
                self.mode = Mode::Disk;
                self.stats.on_disk = true;
                if self.stats.recovered_messages > 0 {
                    tracing::info!(
                        dir = %dir.display(),
                        messages = self.stats.recovered_messages,
                        "buffer: messages kept from before the restart will be sent, oldest first"
                    );
                }
            }
            Err(e) => self.fall_back(&e, now),
        }
    }

    /// Puts the log's records back in the queue, pending for each broker whose
    /// cursor is at or below them.
    fn recover(&mut self, entries: Vec<super::log::Entry>, cursors: &Cursors) {
        let floors: Vec<u64> = self
            .config
            .brokers
            .iter()
            .map(|name| cursors.brokers.get(name).copied().unwrap_or(0))
            .collect();
        let first = entries.first().map_or(0, |e| e.index);
        let next = entries
            .last()
            .map_or(0, |e| e.index + 1)
            .max(cursors.next_index)
            .max(cursors.brokers.values().copied().max().unwrap_or(0));
        self.queue = Queue::new(self.config.brokers.len().max(1), self.config.window, first);
        for e in entries {
            let mut pending = 0u16;
            for (b, floor) in floors.iter().enumerate() {
                if e.index >= *floor {
                    pending |= 1 << b;
                }
            }
            if pending == 0 {
                continue;
            }
            let topic = self.topic(&e.topic);
            let record = Record::new(
                e.index,
                topic,
                e.seq,
                e.readings,
                e.len,
                Payload::Disk {
                    segment: e.segment,
                    offset: e.offset,
                },
            );
            if let Some(log) = self.disk.as_mut() {
                log.hold(e.segment);
            }
            self.queue.push_recovered(record, pending);
            self.stats.recovered_messages += 1;
        }
        self.queue.reserve_to(next);
        if let Some(Err(e)) = self.disk.as_mut().map(DiskLog::remove_unheld) {
            self.disk_error(&e);
        }
        self.enforce_bounds();
    }

    fn topic(&mut self, topic: &str) -> Arc<str> {
        if let Some(t) = self.topics.iter().find(|t| &***t == topic) {
            return Arc::clone(t);
        }
        let t: Arc<str> = Arc::from(topic);
        // A handful of topics per agent (readings, events); bounded anyway.
        if self.topics.len() < 64 {
            self.topics.push(Arc::clone(&t));
        }
        t
    }

    fn fall_back(&mut self, error: &LogError, now: Instant) {
        self.stats.disk_errors += 1;
        if !matches!(self.mode, Mode::Fallback { .. }) {
            self.stats.fallbacks += 1;
            tracing::error!(
                kind = error.kind(),
                error = %error,
                retry_in = ?RETRY_DISK_AFTER,
                "buffer: the disk log failed; keeping messages in memory (lost if the process dies)"
            );
        }
        self.last_error = Some(error.to_string());
        self.mode = Mode::Fallback {
            retry_at: now + RETRY_DISK_AFTER,
        };
        self.stats.on_disk = false;
    }

    fn disk_error(&mut self, error: &LogError) {
        self.stats.disk_errors += 1;
        let text = error.to_string();
        if self.last_error.as_deref() != Some(text.as_str()) {
            tracing::warn!(kind = error.kind(), error = %error, "buffer: disk log error");
            self.last_error = Some(text);
        }
    }

    /// Adds a message for every broker; returns its queue index.
    pub fn push(&mut self, message: Message, now: Instant) -> u64 {
        let len = u32::try_from(message.payload.len()).unwrap_or(u32::MAX);
        let readings = u32::try_from(message.readings).unwrap_or(u32::MAX);
        let topic = self.topic(&message.topic);
        if let Mode::Fallback { retry_at } = self.mode
            && now >= retry_at
        {
            self.retry_disk(now);
        }
        let index = self.queue.next_index();
        let payload = match self.mode {
            Mode::Disk => match self.append(index, &message, now) {
                Ok(payload) => payload,
                Err(e) => {
                    self.fall_back(&e, now);
                    Payload::Memory(Arc::from(message.payload))
                }
            },
            Mode::Memory | Mode::Fallback { .. } => Payload::Memory(Arc::from(message.payload)),
        };
        let index = self.queue.push(topic, message.seq, readings, len, payload);
        self.enforce_bounds();
        index
    }

    fn retry_disk(&mut self, now: Instant) {
        if self.disk.is_none() {
            self.open_disk(now);
        } else {
            self.mode = Mode::Disk;
            self.stats.on_disk = true;
        }
        if self.mode == Mode::Disk {
            tracing::info!("buffer: writing to the disk log again");
            self.last_error = None;
        }
    }

    fn append(&mut self, index: u64, message: &Message, now: Instant) -> Result<Payload, LogError> {
        // Room first: whole segments go, oldest first.
        let record_bytes = message.payload.len() as u64 + message.topic.len() as u64 + 64;
        while let Some(log) = self.disk.as_ref()
            && log.disk_bytes() + record_bytes > self.config.max_bytes as u64
            && let Some((segment, first, last)) = log.oldest()
        {
            self.queue.drop_range(
                first,
                last,
                |r| matches!(r.payload, Payload::Disk { segment: s, .. } if s == segment),
            );
            if let Some(log) = self.disk.as_mut() {
                log.remove_segment(segment)?;
            }
            self.settle();
        }
        let Some(log) = self.disk.as_mut() else {
            return Err(LogError::Locked(PathBuf::new()));
        };
        let (segment, offset) = log.append(
            index,
            message.seq,
            u32::try_from(message.readings).unwrap_or(u32::MAX),
            &message.topic,
            &message.payload,
        )?;
        log.hold(segment);
        self.unsynced_since.get_or_insert(now);
        Ok(Payload::Disk { segment, offset })
    }

    fn enforce_bounds(&mut self) {
        while self.queue.stats().messages > self.config.max_messages {
            if !self.queue.drop_oldest(|_| true) {
                break;
            }
        }
        let memory_limit = if self.config.dir.is_some() {
            self.config.max_memory_bytes
        } else {
            self.config.max_bytes
        };
        while self.queue.stats().memory_bytes > memory_limit {
            if !self
                .queue
                .drop_oldest(|r| matches!(r.payload, Payload::Memory(_)))
            {
                break;
            }
        }
        self.settle();
    }

    /// Deletes segments whose records are all done. Call after acknowledgements.
    pub fn settle(&mut self) {
        let released = self.queue.take_released();
        if released.is_empty() {
            return;
        }
        let mut errors = Vec::new();
        if let Some(log) = self.disk.as_mut() {
            for segment in released {
                if let Err(e) = log.release(segment) {
                    errors.push(e);
                }
            }
        }
        for e in errors {
            self.disk_error(&e);
        }
    }

    /// The payload of a record, to publish it; `None` when it is gone. A disk
    /// read that fails drops the record (counted).
    pub fn payload(&mut self, index: u64) -> Option<Vec<u8>> {
        let record = self.queue.get(index)?;
        let read = match &record.payload {
            Payload::Memory(bytes) => return Some(bytes.to_vec()),
            Payload::Gone => return None,
            Payload::Disk { segment, offset } => {
                let (segment, offset, len) = (*segment, *offset, record.len);
                self.disk.as_ref().map(|log| log.read(segment, offset, len))
            }
        };
        match read {
            Some(Ok(bytes)) => Some(bytes),
            Some(Err(e)) => {
                self.disk_error(&e);
                self.queue.drop_record(index);
                self.settle();
                None
            }
            None => {
                self.queue.drop_record(index);
                None
            }
        }
    }

    pub fn queue(&self) -> &Queue {
        &self.queue
    }

    pub fn queue_mut(&mut self) -> &mut Queue {
        &mut self.queue
    }

    pub fn fsync_policy(&self) -> FsyncPolicy {
        self.config.fsync
    }

    pub fn is_disk(&self) -> bool {
        self.disk.is_some()
    }

    /// The brokers' cursors as they would be persisted now.
    fn cursors(&mut self) -> Cursors {
        let brokers = self
            .config
            .brokers
            .iter()
            .enumerate()
            .map(|(b, name)| (name.clone(), self.queue.floor(b)))
            .collect::<BTreeMap<_, _>>();
        Cursors {
            next_index: self.queue.next_index(),
            brokers,
        }
    }

    /// The fsync round due now, if any. `flush`: flush what was written
    /// (`Always`: every turn; `Every(d)`: every `d`). Cursors go along when they
    /// moved and were last written [`CURSORS_EVERY`] ago, or at once with `stop`.
    pub fn sync_job(&mut self, now: Instant, flush: bool, stop: bool) -> Option<SyncJob> {
        let cursors_path = self.disk.as_ref()?.cursors_path();
        let cursors_due = stop
            || self
                .cursors_at
                .is_none_or(|at| now.duration_since(at) >= CURSORS_EVERY);
        let cursors = if cursors_due {
            let c = self.cursors();
            (self.cursors_written.as_ref() != Some(&c)).then_some(c)
        } else {
            None
        };
        let flush = (flush || stop) && self.unsynced_since.is_some();
        if !flush && cursors.is_none() {
            return None;
        }
        let (files, since) = match self.disk.as_mut() {
            Some(log) if flush => (log.take_sync(), self.unsynced_since.take()),
            _ => (SyncFiles::default(), None),
        };
        if cursors.is_some() {
            self.cursors_at = Some(now);
        }
        let cursors = cursors.and_then(|c| {
            let bytes = serde_json::to_vec(&c).ok()?;
            Some((cursors_path, bytes, c))
        });
        Some(SyncJob {
            files,
            cursors,
            since,
        })
    }

    /// A sync round finished.
    pub fn sync_finished(&mut self, outcome: SyncOutcome, now: Instant) {
        self.stats.last_fsync = outcome.duration;
        match outcome.result {
            Ok(()) => {
                if let Some(c) = outcome.cursors {
                    self.cursors_written = Some(c);
                }
            }
            Err(e) => {
                // What it covered may not be on disk: the next round retries
                // from the oldest write it covered.
                if let Some(since) = outcome.since {
                    self.unsynced_since = Some(self.unsynced_since.map_or(since, |s| s.min(since)));
                }
                let dir = self.config.dir.clone().unwrap_or_default();
                self.fall_back(
                    &LogError::Io {
                        what: "cannot fsync",
                        path: dir,
                        source: e,
                    },
                    now,
                );
            }
        }
    }

    /// How long the oldest write not yet on stable storage has waited.
    pub fn unsynced_for(&self, now: Instant) -> Option<Duration> {
        self.unsynced_since.map(|s| now.duration_since(s))
    }

    pub fn stats(&self) -> StoreStats {
        let queue = self.queue.stats();
        StoreStats {
            queue,
            bytes: self.disk.as_ref().map_or(0, DiskLog::disk_bytes) + queue.memory_bytes as u64,
            ..self.stats
        }
    }
}

#[cfg(test)]
mod tests;
