//! The web configuration in force, reloaded when its file or a file it names
//! changes, so that a renewed certificate or a new user takes effect without a
//! restart (the exporter toolkit reads its file at every request). Files are
//! looked at most once per [`CHECK_EVERY`]; a change that does not load is
//! logged and counted, and the previous configuration stays. Switching TLS on
//! or off needs a restart (the listener would change protocol under its
//! clients).

use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant, SystemTime};

use super::config::{self, Web, WebConfigError};
use super::stats::WebStats;

/// How often the files are looked at, at most.
pub const CHECK_EVERY: Duration = Duration::from_secs(1);

/// What a file looked like when it was last read.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Stamp {
    path: PathBuf,
    seen: Option<(SystemTime, u64)>,
}

fn stamp(path: &Path) -> Stamp {
    let seen = std::fs::metadata(path)
        .ok()
        .and_then(|m| Some((m.modified().ok()?, m.len())));
    Stamp {
        path: path.to_owned(),
        seen,
    }
}

#[derive(Debug)]
struct Loaded {
    web: Arc<Web>,
    stamps: Vec<Stamp>,
    checked: Instant,
}

/// The configuration source the server and the guard read.
#[derive(Debug)]
pub struct WebSource {
    path: Option<PathBuf>,
    loaded: Mutex<Loaded>,
    pub stats: Arc<WebStats>,
}

impl WebSource {
    /// No web config file: plain HTTP, no authentication.
    pub fn open() -> Self {
        WebSource {
            path: None,
            loaded: Mutex::new(Loaded {
                web: Arc::new(Web::open()),
                stamps: Vec::new(),
                checked: Instant::now(),
            }),
            stats: Arc::new(WebStats::default()),
        }
    }

    /// Loads `path` (and everything it names) now; errors are the caller's to
    /// report (the collector refuses to start on them).
    pub fn load(path: &Path) -> Result<Self, WebConfigError> {
        let web = config::load(path)?;
        let stamps = web.files.iter().map(|p| stamp(p)).collect();
        Ok(WebSource {
            path: Some(path.to_owned()),
            loaded: Mutex::new(Loaded {
                web: Arc::new(web),
                stamps,
                checked: Instant::now(),
            }),
            stats: Arc::new(WebStats::default()),
        })
    }

    /// The configuration in force, reloaded first if a file changed.
    pub fn current(&self) -> Arc<Web> {
        let mut loaded = self.loaded.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(path) = &self.path
            && loaded.checked.elapsed() >= CHECK_EVERY
        {
            loaded.checked = Instant::now();
            let now: Vec<Stamp> = loaded.stamps.iter().map(|s| stamp(&s.path)).collect();
            if now != loaded.stamps {
                // Remembered even when the reload fails: the next attempt waits
                // for the next change instead of failing every second.
                loaded.stamps = now;
                match config::load(path) {
                    Ok(web) if web.tls.is_some() != loaded.web.tls.is_some() => {
                        self.stats.reloads_failed.fetch_add(1, Ordering::Relaxed);
                        tracing::error!(
                            file = %path.display(),
                            "web config changed TLS on or off: restart the collector to apply it; \
                             the previous configuration stays"
                        );
                    }
                    Ok(web) => {
                        loaded.stamps = web.files.iter().map(|p| stamp(p)).collect();
                        loaded.web = Arc::new(web);
                        self.stats.reloads_ok.fetch_add(1, Ordering::Relaxed);
                        tracing::info!(file = %path.display(), "web config reloaded");
                    }
                    Err(e) => {
                        self.stats.reloads_failed.fetch_add(1, Ordering::Relaxed);
                        tracing::error!(
                            file = %path.display(),
                            error = %e,
                            "web config changed but does not load; the previous configuration stays"
                        );
                    }
                }
            }
        }
        Arc::clone(&loaded.web)
    }

    /// Whether TLS is on (fixed for the life of the process).
    pub fn tls(&self) -> bool {
        self.loaded
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .web
            .tls
            .is_some()
    }
}
