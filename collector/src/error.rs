//! The library's error type. Each variant has a bounded [`Error::kind`].

use std::path::PathBuf;

/// What can go wrong outside of message handling (messages are never errors: a bad
/// one is counted and dropped, see `ingest.rs`).
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{path}: cannot read: {source}")]
    ConfigRead {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// TOML syntax or shape; `toml`'s message names the key and shows the line.
    #[error("{path}: {message}")]
    ConfigParse { path: PathBuf, message: String },
    /// A value that parses but is not acceptable.
    #[error("{origin}: {key}: {message}")]
    ConfigInvalid {
        /// The config file, or "command line".
        origin: String,
        key: String,
        message: String,
    },
    #[error("{path}: cannot read {what}: {source}")]
    FileRead {
        path: PathBuf,
        what: &'static str,
        #[source]
        source: std::io::Error,
    },
    /// A state directory that cannot be used.
    #[error("{path}: {key}: {message}")]
    StateDir {
        path: PathBuf,
        key: &'static str,
        message: String,
    },
    #[error("TLS setup: {0}")]
    Tls(String),
    /// The web config file (`web_config_file`, `--web.config.file`) or a file
    /// it names.
    #[error("{origin}: web_config_file: {}: {}", path.display(), web_error(error))]
    WebConfig {
        origin: String,
        path: PathBuf,
        error: crate::web::WebConfigError,
    },
    /// A file a configuration key names cannot be used.
    #[error("{origin}: {key}: {}: {problem}", path.display())]
    File {
        origin: String,
        key: String,
        path: PathBuf,
        problem: crate::files::FileProblem,
    },
    #[error("embedded broker: {0}")]
    Broker(String),
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        addr: std::net::SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("HTTP server: {0}")]
    Http(#[source] std::io::Error),
}

impl Error {
    /// A bounded label naming the kind of error.
    pub fn kind(&self) -> &'static str {
        match self {
            Error::ConfigRead { .. } => "config_read",
            Error::ConfigParse { .. } => "config_parse",
            Error::ConfigInvalid { .. } => "config_invalid",
            Error::FileRead { .. } => "file_read",
            Error::StateDir { .. } => "state_dir",
            Error::Tls(_) => "tls",
            Error::WebConfig { .. } => "web_config",
            Error::File { .. } => "file",
            Error::Broker(_) => "broker",
            Error::Listen { .. } => "listen",
            Error::Http(_) => "http",
        }
    }
}

/// `key: message`, or the message alone for the file as a whole.
fn web_error(e: &crate::web::WebConfigError) -> String {
    if e.key.is_empty() {
        e.message.clone()
    } else {
        format!("{}: {}", e.key, e.message)
    }
}
