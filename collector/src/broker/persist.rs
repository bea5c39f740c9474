//! The retained store on disk (`state_dir/retained.db`), so that what agents
//! left retained (their births and, above all, their wills) survives a restart
//! or a crash of the collector.
//!
//! Written whole, at most once a second while something changed and once more
//! at shutdown: a temporary file, fsync, rename over the old one, fsync of the
//! directory. A crash therefore leaves the previous or the new file, never half
//! of one; what changed in the last second (plus the write's own time) before a
//! SIGKILL or a power cut is lost. Read once at start; a file that is corrupt
//! or unreadable is logged and counted and the broker starts empty (it never
//! refuses to start over it).
//!
//! Format, big-endian: `SWRETv1\n`, a u32 count, then per message a u16 topic
//! length, the topic, a u8 QoS, a u32 payload length and the payload; then the
//! SHA-256 of everything before. MQTT 5 properties are not kept.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use bytes::Bytes;
use sha2::{Digest, Sha256};

use super::metrics::Metrics;
use super::router::{Message, Origin, Router};

const MAGIC: &[u8; 8] = b"SWRETv1\n";
const FILE: &str = "retained.db";
const TEMP: &str = "retained.db.tmp";
/// How often the store is written while it changes.
pub const INTERVAL: std::time::Duration = std::time::Duration::from_secs(1);

/// Why the file could not be read.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("{path}: cannot read: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: corrupt: {reason}")]
    Corrupt { path: PathBuf, reason: String },
}

impl LoadError {
    /// The `reason` label of `persist_errors_total`.
    pub fn kind(&self) -> &'static str {
        match self {
            LoadError::Io { .. } => "load_io",
            LoadError::Corrupt { .. } => "load_corrupt",
        }
    }
}

/// Serializes retained messages.
pub fn encode(messages: &[Arc<Message>]) -> Vec<u8> {
    let size: usize = messages
        .iter()
        .map(|m| 2 + m.topic.len() + 1 + 4 + m.payload.len())
        .sum();
    let mut out = Vec::with_capacity(MAGIC.len() + 4 + size + 32);
    out.extend_from_slice(MAGIC);
    let kept: Vec<&Arc<Message>> = messages
        .iter()
        .filter(|m| u16::try_from(m.topic.len()).is_ok() && u32::try_from(m.payload.len()).is_ok())
        .collect();
    out.extend_from_slice(&u32::try_from(kept.len()).unwrap_or(u32::MAX).to_be_bytes());
    for m in kept {
        out.extend_from_slice(&u16::try_from(m.topic.len()).unwrap_or(0).to_be_bytes());
        out.extend_from_slice(m.topic.as_bytes());
        out.push(m.qos);
        out.extend_from_slice(&u32::try_from(m.payload.len()).unwrap_or(0).to_be_bytes());
        out.extend_from_slice(&m.payload);
    }
    let digest = Sha256::digest(&out);
    out.extend_from_slice(&digest);
    out
}

/// Parses what [`encode`] wrote.
pub fn decode(bytes: &[u8]) -> Result<Vec<Message>, String> {
    if bytes.len() < MAGIC.len() + 4 + 32 {
        return Err("too short".into());
    }
    let (body, digest) = bytes.split_at(bytes.len() - 32);
    if Sha256::digest(body).as_slice() != digest {
        return Err("checksum mismatch".into());
    }
    let Some(rest) = body.strip_prefix(MAGIC.as_slice()) else {
        return Err("not a sitewatch retained store (or another version)".into());
    };
    let mut r = Reader(rest);
    let count = r.u32()?;
    let mut out = Vec::new();
    for _ in 0..count {
        let topic_len = usize::from(r.u16()?);
        let topic = std::str::from_utf8(r.take(topic_len)?)
            .map_err(|_| "a topic is not UTF-8".to_owned())?;
        let qos = r.u8()?;
        let payload_len = usize::try_from(r.u32()?).map_err(|_| "payload length".to_owned())?;
        let payload = Bytes::copy_from_slice(r.take(payload_len)?);
        out.push(Message {
            topic: Arc::from(topic),
            payload,
            qos: qos.min(2),
            retain: true,
            properties: None,
            origin: Origin::Broker,
        });
    }
    if !r.0.is_empty() {
        return Err("trailing bytes".into());
    }
    Ok(out)
}

struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], String> {
        if self.0.len() < n {
            return Err("truncated".into());
        }
        let (head, tail) = self.0.split_at(n);
        self.0 = tail;
        Ok(head)
    }

    fn u8(&mut self) -> Result<u8, String> {
        Ok(self.take(1)?[0])
    }

    fn u16(&mut self) -> Result<u16, String> {
        let b = self.take(2)?;
        Ok(u16::from_be_bytes([b[0], b[1]]))
    }

    fn u32(&mut self) -> Result<u32, String> {
        let b = self.take(4)?;
        Ok(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }
}

/// Reads the store in `dir`; no file is an empty store.
pub fn load(dir: &Path) -> Result<Vec<Message>, LoadError> {
    let path = dir.join(FILE);
    let bytes = match std::fs::read(&path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(source) => return Err(LoadError::Io { path, source }),
    };
    decode(&bytes).map_err(|reason| LoadError::Corrupt { path, reason })
}

/// Writes the store in `dir`, atomically.
pub fn save(dir: &Path, messages: &[Arc<Message>]) -> std::io::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    let bytes = encode(messages);
    let temp = dir.join(TEMP);
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&temp)?;
    f.write_all(&bytes)?;
    f.sync_all()?;
    drop(f);
    std::fs::rename(&temp, dir.join(FILE))?;
    // The rename itself must reach the disk.
    std::fs::File::open(dir)?.sync_all()
}

/// Writes the router's retained store when it changed.
#[derive(Debug)]
pub struct Persister {
    dir: PathBuf,
    router: Arc<Router>,
    metrics: Arc<Metrics>,
    written: AtomicU64,
    /// One write at a time (the periodic one and the one at shutdown).
    writing: tokio::sync::Mutex<()>,
}

impl Persister {
    /// Creates the directory if needed and loads the store into the router.
    pub fn open(
        dir: &Path,
        router: Arc<Router>,
        metrics: Arc<Metrics>,
    ) -> Result<Self, crate::Error> {
        use std::os::unix::fs::DirBuilderExt;
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(|e| crate::Error::StateDir {
                path: dir.to_owned(),
                key: "embedded_broker.state_dir",
                message: format!("cannot create: {e}"),
            })?;
        match load(dir) {
            Ok(messages) => {
                let n = messages.len();
                router.restore_retained(messages);
                tracing::info!(dir = %dir.display(), retained = n, "retained messages loaded");
            }
            Err(e) => {
                metrics.persist_errors.inc(e.kind());
                tracing::error!(error = %e, "retained store unusable: starting with none");
            }
        }
        let written = router.retained_changes();
        Ok(Persister {
            dir: dir.to_owned(),
            router,
            metrics,
            written: AtomicU64::new(written),
            writing: tokio::sync::Mutex::new(()),
        })
    }

    /// Writes the store if it changed since the last write.
    pub async fn flush(&self) {
        let _one = self.writing.lock().await;
        let changes = self.router.retained_changes();
        if changes == self.written.load(Ordering::Acquire) {
            return;
        }
        let snapshot = self.router.retained();
        let dir = self.dir.clone();
        let result = tokio::task::spawn_blocking(move || save(&dir, &snapshot)).await;
        match result {
            Ok(Ok(())) => self.written.store(changes, Ordering::Release),
            Ok(Err(e)) => {
                self.metrics.persist_errors.inc("write_io");
                if let Some(suppressed) = self.metrics.should_log("persist_write") {
                    tracing::error!(dir = %self.dir.display(), error = %e, suppressed, "cannot write the retained store");
                }
            }
            Err(e) => {
                self.metrics.persist_errors.inc("write_io");
                tracing::error!(error = %e, "retained store writer failed");
            }
        }
    }

    /// Flushes every [`INTERVAL`] until shutdown.
    pub async fn run(self: Arc<Self>, mut shutdown: tokio::sync::watch::Receiver<bool>) {
        let mut tick = tokio::time::interval(INTERVAL);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = tick.tick() => self.flush().await,
                _ = shutdown.changed() => return,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg(topic: &str, payload: &[u8], qos: u8) -> Arc<Message> {
        Arc::new(Message {
            topic: Arc::from(topic),
            payload: Bytes::copy_from_slice(payload),
            qos,
            retain: true,
            properties: None,
            origin: Origin::Broker,
        })
    }

    #[test]
    fn a_store_round_trips() {
        let messages = vec![
            msg(
                "sitewatch/v1/bj1/web-01/state",
                br#"{"v":1,"status":"offline","reason":"lost"}"#,
                1,
            ),
            msg("a/b", &[0, 255, 10], 0),
            msg("big", &vec![7u8; 300_000], 2),
        ];
        let back = decode(&encode(&messages)).unwrap();
        assert_eq!(back.len(), 3);
        for (a, b) in messages.iter().zip(&back) {
            assert_eq!((&a.topic, &a.payload, a.qos), (&b.topic, &b.payload, b.qos));
            assert!(b.retain);
        }
    }

    #[test]
    fn corruption_of_any_byte_is_detected() {
        let good = encode(&[msg("t/1", b"payload", 1)]);
        for i in 0..good.len() {
            let mut bad = good.clone();
            bad[i] ^= 0x40;
            assert!(decode(&bad).is_err(), "byte {i}");
        }
        for n in 0..good.len() {
            assert!(decode(&good[..n]).is_err(), "truncated to {n}");
        }
    }

    #[test]
    fn save_replaces_the_file_and_load_reads_it() {
        let dir = tempfile::tempdir().unwrap();
        assert!(load(dir.path()).unwrap().is_empty(), "no file: empty");
        save(dir.path(), &[msg("a", b"1", 1)]).unwrap();
        save(dir.path(), &[msg("b", b"2", 1), msg("c", b"3", 1)]).unwrap();
        let back = load(dir.path()).unwrap();
        assert_eq!(back.len(), 2);
        assert!(!dir.path().join(TEMP).exists());
        std::fs::write(
            dir.path().join(FILE),
            b"garbage that is long enough to be checked for a digest",
        )
        .unwrap();
        assert!(matches!(load(dir.path()), Err(LoadError::Corrupt { .. })));
    }

    #[tokio::test]
    async fn the_persister_writes_only_changes_and_a_corrupt_file_starts_empty() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(FILE), b"corrupt").unwrap();
        let router = Arc::new(Router::new());
        let metrics = Arc::new(Metrics::default());
        let p = Persister::open(dir.path(), Arc::clone(&router), Arc::clone(&metrics)).unwrap();
        assert_eq!(metrics.persist_errors.get("load_corrupt"), 1);
        assert_eq!(router.retained_len(), 0);
        p.flush().await;
        assert_eq!(
            std::fs::read(dir.path().join(FILE)).unwrap(),
            b"corrupt",
            "nothing changed: not written"
        );
        router.publish(msg("sitewatch/v1/bj1/web-01/state", b"lost", 1));
        p.flush().await;
        let router2 = Arc::new(Router::new());
        Persister::open(
            dir.path(),
            Arc::clone(&router2),
            Arc::new(Metrics::default()),
        )
        .unwrap();
        assert_eq!(router2.retained_len(), 1);
    }
}
