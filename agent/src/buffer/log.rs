//! The disk log: the store's messages in segment files, crash-safe.
//!
//! A segment is a file `<first index, 20 digits>.seg` of records appended one
//! after the other, each
//!
//! ```text
//! u32 LE  body length
//! u32 LE  CRC-32C of the body
//! body:   u8 format (1) | u64 LE index | u64 LE seq | u32 LE readings |
//!         u16 LE topic length | topic | payload
//! ```
//!
//! Records are written with one `pwrite` each, at the end of the active segment;
//! what reaches the disk when is the fsync policy's business (the store's). A
//! process killed at any point leaves whole records and at most one partial one
//! at the end: [`DiskLog::open`] reads every segment, checks each record's length
//! and checksum, and truncates a segment at its first bad record (a torn tail, or
//! corruption: either way nothing after it can be trusted). A segment is deleted
//! once none of its records is waiting for any broker.
//!
//! `cursors.json` holds, per broker name, the lowest index that broker may still
//! need, and the next index to use, so that a restart neither resends what a
//! broker acknowledged nor reuses an index. It is replaced atomically (temporary
//! file, fsync, rename, fsync of the directory). Losing an update only means a
//! few messages sent twice, which the collector drops by `(boot, seq)`.
//!
//! A `lock` file, locked for the process's life, keeps a second agent out.

use std::{
    collections::BTreeMap,
    fs::{self, File, OpenOptions},
    io,
    os::unix::fs::FileExt,
    path::{Path, PathBuf},
    sync::Arc,
};

use serde::{Deserialize, Serialize};
use sitewatch_protocol::limits;

/// The record format written by this version.
pub const FORMAT: u8 = 1;
/// Length and checksum.
const HEADER: usize = 8;
/// Format, index, seq, readings, topic length.
const BODY_FIXED: usize = 1 + 8 + 8 + 4 + 2;
/// A body longer than this is corruption, not a message.
const MAX_BODY: usize = BODY_FIXED + u16::MAX as usize + limits::MAX_PAYLOAD_BYTES + 1024;
const CURSORS: &str = "cursors.json";
const LOCK: &str = "lock";
const SEGMENT_SUFFIX: &str = ".seg";

static CRC: crc::Crc<u32> = crc::Crc::<u32>::new(&crc::CRC_32_ISCSI);

/// Why the log could not do something.
#[derive(Debug, thiserror::Error)]
pub enum LogError {
    #[error("{what} {path}: {source}")]
    Io {
        what: &'static str,
        path: PathBuf,
        source: io::Error,
    },
    #[error("{0} is used by another process (its lock is held)")]
    Locked(PathBuf),
    #[error("topic of {0} bytes is too long for a record")]
    TopicTooLong(usize),
}

impl LogError {
    /// A bounded label for metrics and logs.
    pub fn kind(&self) -> &'static str {
        match self {
            LogError::Io { source, .. } if source.kind() == io::ErrorKind::StorageFull => {
                "disk_full"
            }
            LogError::Io { .. } => "io",
            LogError::Locked(_) => "locked",
            LogError::TopicTooLong(_) => "topic_too_long",
        }
    }

    fn io(what: &'static str, path: &Path, source: io::Error) -> Self {
        LogError::Io {
            what,
            path: path.to_owned(),
            source,
        }
    }
}

/// One record found on disk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub index: u64,
    pub seq: u64,
    pub readings: u32,
    pub topic: String,
    pub len: u32,
    /// The segment's id (its first index) and the payload's offset in it.
    pub segment: u64,
    pub offset: u64,
}

/// A segment cut short when it was opened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Truncation {
    pub path: PathBuf,
    /// Where the segment now ends.
    pub at: u64,
    /// Bytes cut off.
    pub lost_bytes: u64,
    pub reason: &'static str,
}

/// The brokers' positions, as persisted.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cursors {
    /// No index below this one may be used again.
    pub next_index: u64,
    /// Per broker name: every record below this index was acknowledged.
    pub brokers: BTreeMap<String, u64>,
}

/// What [`DiskLog::open`] found.
#[derive(Debug, Default)]
pub struct Recovery {
    /// Every intact record, oldest first.
    pub entries: Vec<Entry>,
    pub truncations: Vec<Truncation>,
    pub cursors: Cursors,
    /// `cursors.json` was there but unreadable (a fresh one replaces it).
    pub cursors_unreadable: bool,
}

#[derive(Debug)]
struct Segment {
    path: PathBuf,
    file: Arc<File>,
    len: u64,
    first_index: u64,
    last_index: u64,
    /// Records still waiting for some broker.
    live: usize,
    /// Written since the last sync.
    dirty: bool,
}

/// Files to fsync, and the directory when entries were added or removed.
#[derive(Debug, Default)]
pub struct SyncFiles {
    pub files: Vec<Arc<File>>,
    pub dir: Option<PathBuf>,
}

/// The log; see the module documentation.
#[derive(Debug)]
pub struct DiskLog {
    dir: PathBuf,
    /// By id (first index).
    segments: BTreeMap<u64, Segment>,
    /// The segment appends go to; `None` until the first append, and after an
    /// error (the next append starts a fresh file).
    active: Option<u64>,
    segment_bytes: u64,
    disk_bytes: u64,
    dir_dirty: bool,
    scratch: Vec<u8>,
    /// Held for the process's life.
    _lock: File,
}

impl DiskLog {
    /// Opens (creating) the log in `dir`, checks every segment and truncates
    /// torn or corrupt tails. New segments roll over at `segment_bytes`.
    pub fn open(dir: &Path, segment_bytes: u64) -> Result<(DiskLog, Recovery), LogError> {
        fs::create_dir_all(dir).map_err(|e| LogError::io("cannot create", dir, e))?;
        let lock_path = dir.join(LOCK);
        let lock = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .map_err(|e| LogError::io("cannot open", &lock_path, e))?;
        match lock.try_lock() {
            Ok(()) => {}
            Err(fs::TryLockError::WouldBlock) => return Err(LogError::Locked(dir.to_owned())),
            Err(fs::TryLockError::Error(e)) => {
                return Err(LogError::io("cannot lock", &lock_path, e));
            }
        }
        let mut recovery = Recovery::default();
        let cursors_path = dir.join(CURSORS);
        match fs::read(&cursors_path) {
            Ok(bytes) => match serde_json::from_slice::<Cursors>(&bytes) {
                Ok(c) => recovery.cursors = c,
                Err(_) => recovery.cursors_unreadable = true,
            },
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(LogError::io("cannot read", &cursors_path, e)),
        }
        let mut ids = Vec::new();
        for entry in fs::read_dir(dir).map_err(|e| LogError::io("cannot list", dir, e))? {
            let entry = entry.map_err(|e| LogError::io("cannot list", dir, e))?;
            let name = entry.file_name();
            let Some(name) = name.to_str() else { continue };
            if let Some(id) = name
                .strip_suffix(SEGMENT_SUFFIX)
                .and_then(|n| n.parse::<u64>().ok())
            {
                ids.push(id);
            }
        }
        ids.sort_unstable();
        let mut log = DiskLog {
            dir: dir.to_owned(),
            segments: BTreeMap::new(),
            active: None,
            segment_bytes: segment_bytes.max(4096),
            disk_bytes: 0,
            dir_dirty: false,
            scratch: Vec::new(),
            _lock: lock,
        };
        let mut last_index = None;
        for id in ids {
            log.recover_segment(id, &mut last_index, &mut recovery)?;
        }
        Ok((log, recovery))
    }

    fn recover_segment(
        &mut self,
        id: u64,
        last_index: &mut Option<u64>,
        recovery: &mut Recovery,
    ) -> Result<(), LogError> {
        let path = segment_path(&self.dir, id);
        let bytes = fs::read(&path).map_err(|e| LogError::io("cannot read", &path, e))?;
        let (entries, end, reason) = scan(&bytes, id, *last_index);
        if let Some(reason) = reason {
            let file = OpenOptions::new()
                .write(true)
                .open(&path)
                .map_err(|e| LogError::io("cannot open", &path, e))?;
            file.set_len(end)
                .and_then(|()| file.sync_all())
                .map_err(|e| LogError::io("cannot truncate", &path, e))?;
            recovery.truncations.push(Truncation {
                path: path.clone(),
                at: end,
                lost_bytes: bytes.len() as u64 - end,
                reason,
            });
        }
        let Some(last) = entries.last().map(|e| e.index) else {
            // Nothing left in it.
            fs::remove_file(&path).map_err(|e| LogError::io("cannot remove", &path, e))?;
            self.dir_dirty = true;
            return Ok(());
        };
        *last_index = Some(last);
        let file = File::open(&path).map_err(|e| LogError::io("cannot open", &path, e))?;
        let first_index = entries.first().map_or(id, |e| e.index);
        self.segments.insert(
            id,
            Segment {
                path,
                file: Arc::new(file),
                len: end,
                first_index,
                last_index: last,
                live: 0,
                dirty: false,
            },
        );
        self.disk_bytes += end;
        recovery.entries.extend(entries);
        Ok(())
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Bytes of every segment file.
    pub fn disk_bytes(&self) -> u64 {
        self.disk_bytes
    }

    pub fn segment_count(&self) -> usize {
        self.segments.len()
    }

    /// A recovered record is still needed: its segment stays.
    pub fn hold(&mut self, segment: u64) {
        if let Some(s) = self.segments.get_mut(&segment) {
            s.live += 1;
        }
    }

    /// Deletes recovered segments none of whose records is needed.
    pub fn remove_unheld(&mut self) -> Result<(), LogError> {
        let unheld: Vec<u64> = self
            .segments
            .iter()
            .filter(|(id, s)| s.live == 0 && Some(**id) != self.active)
            .map(|(id, _)| *id)
            .collect();
        for id in unheld {
            self.remove_segment(id)?;
        }
        Ok(())
    }

    /// Appends a record; returns its segment and the payload's offset.
    pub fn append(
        &mut self,
        index: u64,
        seq: u64,
        readings: u32,
        topic: &str,
        payload: &[u8],
    ) -> Result<(u64, u64), LogError> {
        let topic_len =
            u16::try_from(topic.len()).map_err(|_| LogError::TopicTooLong(topic.len()))?;
        let mut buf = std::mem::take(&mut self.scratch);
        encode(&mut buf, index, seq, readings, topic_len, topic, payload);
        let result = self.write_record(index, &buf);
        self.scratch = buf;
        let (segment, at) = result?;
        let offset = at + (HEADER + BODY_FIXED + topic.len()) as u64;
        Ok((segment, offset))
    }

    fn write_record(&mut self, index: u64, record: &[u8]) -> Result<(u64, u64), LogError> {
        let roll = match self.active.and_then(|id| self.segments.get(&id)) {
            None => true,
            Some(s) => s.len > 0 && s.len + record.len() as u64 > self.segment_bytes,
        };
        if roll {
            self.seal()?;
            let path = segment_path(&self.dir, index);
            let file = OpenOptions::new()
                .create_new(true)
                .read(true)
                .write(true)
                .open(&path)
                .map_err(|e| LogError::io("cannot create", &path, e))?;
            self.segments.insert(
                index,
                Segment {
                    path,
                    file: Arc::new(file),
                    len: 0,
                    first_index: index,
                    last_index: index,
                    live: 0,
                    dirty: true,
                },
            );
            self.active = Some(index);
            self.dir_dirty = true;
        }
        let Some(id) = self.active else {
            return Err(LogError::io(
                "no active segment in",
                &self.dir,
                io::ErrorKind::NotFound.into(),
            ));
        };
        let Some(s) = self.segments.get_mut(&id) else {
            return Err(LogError::io(
                "no active segment in",
                &self.dir,
                io::ErrorKind::NotFound.into(),
            ));
        };
        let at = s.len;
        if let Err(e) = s.file.write_all_at(record, at) {
            // Whatever part of it was written goes; the next append starts a
            // new file, so a failed truncation leaves only a torn tail that the
            // next open cuts off.
            let _ = s.file.set_len(at);
            let path = s.path.clone();
            self.active = None;
            self.release_if_unused(id)?;
            return Err(LogError::io("cannot write", &path, e));
        }
        s.len += record.len() as u64;
        s.last_index = index;
        s.live += 1;
        s.dirty = true;
        self.disk_bytes += record.len() as u64;
        Ok((id, at))
    }

    /// No more appends to the active segment; the next one starts a new file.
    pub fn seal(&mut self) -> Result<(), LogError> {
        if let Some(id) = self.active.take() {
            self.release_if_unused(id)?;
        }
        Ok(())
    }

    fn release_if_unused(&mut self, id: u64) -> Result<(), LogError> {
        if self.segments.get(&id).is_some_and(|s| s.live == 0) && self.active != Some(id) {
            self.remove_segment(id)?;
        }
        Ok(())
    }

    /// Reads `len` payload bytes at `offset` of `segment`.
    pub fn read(&self, segment: u64, offset: u64, len: u32) -> Result<Vec<u8>, LogError> {
        let Some(s) = self.segments.get(&segment) else {
            return Err(LogError::io(
                "no segment",
                &segment_path(&self.dir, segment),
                io::ErrorKind::NotFound.into(),
            ));
        };
        let mut buf = vec![0; len as usize];
        s.file
            .read_exact_at(&mut buf, offset)
            .map_err(|e| LogError::io("cannot read", &s.path, e))?;
        Ok(buf)
    }

    /// A record of `segment` is no longer needed by anybody.
    pub fn release(&mut self, segment: u64) -> Result<(), LogError> {
        if let Some(s) = self.segments.get_mut(&segment) {
            s.live = s.live.saturating_sub(1);
        }
        self.release_if_unused(segment)
    }

    /// The oldest segment: its id and the indices it spans.
    pub fn oldest(&self) -> Option<(u64, u64, u64)> {
        self.segments
            .iter()
            .next()
            .map(|(id, s)| (*id, s.first_index, s.last_index))
    }

    /// Deletes a segment file.
    pub fn remove_segment(&mut self, id: u64) -> Result<(), LogError> {
        if self.active == Some(id) {
            self.active = None;
        }
        if let Some(s) = self.segments.remove(&id) {
            self.disk_bytes -= s.len;
            self.dir_dirty = true;
            fs::remove_file(&s.path).map_err(|e| LogError::io("cannot remove", &s.path, e))?;
        }
        Ok(())
    }

    /// What a sync must flush now; marks it clean. Empty when nothing changed.
    pub fn take_sync(&mut self) -> SyncFiles {
        let files = self
            .segments
            .values_mut()
            .filter_map(|s| std::mem::take(&mut s.dirty).then(|| Arc::clone(&s.file)))
            .collect();
        let dir = std::mem::take(&mut self.dir_dirty).then(|| self.dir.clone());
        SyncFiles { files, dir }
    }

    pub fn cursors_path(&self) -> PathBuf {
        self.dir.join(CURSORS)
    }
}

impl SyncFiles {
    pub fn is_empty(&self) -> bool {
        self.files.is_empty() && self.dir.is_none()
    }

    /// fsyncs the files, then the directory (blocking).
    pub fn run(&self) -> io::Result<()> {
        for f in &self.files {
            f.sync_data()?;
        }
        if let Some(dir) = &self.dir {
            File::open(dir)?.sync_all()?;
        }
        Ok(())
    }
}

/// Replaces `path` with `bytes` durably: temporary file, fsync, rename, fsync
/// of the directory (blocking).
pub fn write_durably(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = PathBuf::from(tmp);
    {
        let f = File::create(&tmp)?;
        f.write_all_at(bytes, 0)?;
        f.sync_all()?;
    }
    fs::rename(&tmp, path)?;
    if let Some(dir) = path.parent() {
        let dir = if dir.as_os_str().is_empty() {
            Path::new(".")
        } else {
            dir
        };
        File::open(dir)?.sync_all()?;
    }
    Ok(())
}

fn segment_path(dir: &Path, id: u64) -> PathBuf {
    dir.join(format!("{id:020}{SEGMENT_SUFFIX}"))
}

fn encode(
    buf: &mut Vec<u8>,
    index: u64,
    seq: u64,
    readings: u32,
    topic_len: u16,
    topic: &str,
    payload: &[u8],
) {
    buf.clear();
    let body_len = BODY_FIXED + topic.len() + payload.len();
    buf.extend_from_slice(&u32::try_from(body_len).unwrap_or(u32::MAX).to_le_bytes());
    buf.extend_from_slice(&[0; 4]);
    buf.push(FORMAT);
    buf.extend_from_slice(&index.to_le_bytes());
    buf.extend_from_slice(&seq.to_le_bytes());
    buf.extend_from_slice(&readings.to_le_bytes());
    buf.extend_from_slice(&topic_len.to_le_bytes());
    buf.extend_from_slice(topic.as_bytes());
    buf.extend_from_slice(payload);
    let crc = CRC.checksum(&buf[HEADER..]);
    buf[4..8].copy_from_slice(&crc.to_le_bytes());
}

/// The intact records of a segment's bytes, where they end, and why the rest
/// (if any) was refused. `after`: the last index of the previous segment.
pub(crate) fn scan(
    bytes: &[u8],
    segment: u64,
    after: Option<u64>,
) -> (Vec<Entry>, u64, Option<&'static str>) {
    let mut entries = Vec::new();
    let mut at = 0usize;
    let mut last = after;
    while at < bytes.len() {
        let end_ok = at as u64;
        let Some(header) = bytes.get(at..at + HEADER) else {
            return (entries, end_ok, Some("torn header"));
        };
        let body_len = u32::from_le_bytes([header[0], header[1], header[2], header[3]]) as usize;
        let crc = u32::from_le_bytes([header[4], header[5], header[6], header[7]]);
        if !(BODY_FIXED..=MAX_BODY).contains(&body_len) {
            return (entries, end_ok, Some("bad length"));
        }
        let Some(body) = bytes.get(at + HEADER..at + HEADER + body_len) else {
            return (entries, end_ok, Some("torn record"));
        };
        if CRC.checksum(body) != crc {
            return (entries, end_ok, Some("bad checksum"));
        }
        let u64_at = |i: usize| {
            let mut b = [0; 8];
            b.copy_from_slice(&body[i..i + 8]);
            u64::from_le_bytes(b)
        };
        if body[0] != FORMAT {
            return (entries, end_ok, Some("unknown format"));
        }
        let index = u64_at(1);
        let seq = u64_at(9);
        let readings = u32::from_le_bytes([body[17], body[18], body[19], body[20]]);
        let topic_len = u16::from_le_bytes([body[21], body[22]]) as usize;
        let Some(topic) = body
            .get(BODY_FIXED..BODY_FIXED + topic_len)
            .and_then(|t| std::str::from_utf8(t).ok())
        else {
            return (entries, end_ok, Some("bad topic"));
        };
        if last.is_some_and(|l| index <= l)
            || (last.is_none() && entries.is_empty() && index < segment)
        {
            return (entries, end_ok, Some("index out of order"));
        }
        let payload_at = at + HEADER + BODY_FIXED + topic_len;
        let len = body_len - BODY_FIXED - topic_len;
        entries.push(Entry {
            index,
            seq,
            readings,
            topic: topic.to_owned(),
            len: u32::try_from(len).unwrap_or(u32::MAX),
            segment,
            offset: payload_at as u64,
        });
        last = Some(index);
        at += HEADER + body_len;
    }
    (entries, at as u64, None)
}

#[cfg(test)]
mod tests;
