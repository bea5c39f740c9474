//! The agent's configuration: one typed tree, read from TOML.
//!
//! Every section rejects unknown keys, durations are written `"5s"`, `"500ms"`, `"1m"`,
//! and every field has a default that works except `site`. Command-line flags
//! ([`Overrides`]) win over the file. Errors name the file, the key path and what
//! was expected.
//!
//! Sources live under `[sources.<name>]` (the top-level `host` key is the host's
//! name, so a `[host]` table would collide with it). Each source's table, its
//! defaults and its validation live in its own folder (`source/<name>/config.rs`);
//! this module keeps the tree, the loading and the error reporting. Adding a
//! source is one field in [`SourcesConfig`] and one variant in [`SourceConfig`]
//! (see the crate's Layout).

use std::{
    borrow::Cow,
    collections::BTreeMap,
    fmt, fs, io,
    path::{Path, PathBuf},
    str::FromStr,
    time::Duration,
};

use serde::{Deserialize, Serialize};
use sitewatch_protocol::{HostName, SiteName, limits};

use crate::endpoint::Endpoint;
pub use crate::source::{SourceConfig, SourcesConfig};

pub use crate::buffer::store::FsyncPolicy;

/// The whole configuration of one agent.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// The site (datacenter or machine room) this agent belongs to, e.g. `bj1`.
    /// Required: in the file or with `--site`.
    pub site: SiteName,
    /// This host's name within the site. Default: the machine's hostname,
    /// lowercased, with characters outside `[a-z0-9_.-]` replaced by `-`.
    #[serde(default = "default_host")]
    pub host: HostName,
    /// The heartbeat: a readings message (carrying the agent's self-metrics) is
    /// sent at least this often; announced as the state's `interval_ms`.
    #[serde(default = "default_heartbeat", with = "duration")]
    pub heartbeat: Duration,
    /// Operator labels announced in the state message: `room`, `rack`, `role`, ...
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// The MQTT broker and how to reach it.
    #[serde(default)]
    pub mqtt: MqttConfig,
    /// The store-and-forward buffer that keeps readings while the broker is away.
    #[serde(default)]
    pub buffer: BufferConfig,
    /// The sources, one table each.
    #[serde(default)]
    pub sources: SourcesConfig,
    /// `[nut_server]`: the upsd facade serving the UPSes the agent reads to
    /// `upsmon`, `upsc` and other NUT clients. Absent = not served.
    #[cfg(feature = "nut")]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nut_server: Option<crate::nutd::config::NutServerConfig>,
}

/// `[mqtt]`: one broker (`url` and its credentials here), or several
/// (`[[mqtt.brokers]]`, each with its own URL, TLS and credentials); the
/// timings apply to every broker.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(from = "RawMqttConfig", into = "RawMqttConfig")]
pub struct MqttConfig {
    /// `mqtt://host[:port]` (plain, default port 1883) or `mqtts://host[:port]`
    /// (TLS, default port 8883). The one broker, when `brokers` is empty.
    pub url: BrokerUrl,
    /// Whether `url` was written in the file (it may not be, with `brokers`).
    url_set: UrlWritten,
    /// `[[mqtt.brokers]]`: several brokers, each message to every one of them.
    pub brokers: Vec<BrokerConfig>,
    /// How long a stop (SIGTERM, SIGINT) waits for the brokers to take what
    /// is buffered and the offline state, reconnecting if need be; then what
    /// is left stays in the disk buffer (or is lost, in memory mode). The
    /// systemd unit's `TimeoutStopSec` (20 s) leaves room for the default.
    pub stop_timeout: Duration,
    /// The MQTT client id. Default: `<site>:<host>`, the agent's identity with
    /// `:` (which no site or host name holds, so two agents never share an id:
    /// `web-01` of two sites do not take over each other's connection) in
    /// place of its `/`, which some brokers refuse in a client id (rumqttd) and
    /// which would split a `%c` ACL pattern across topic levels. A broker that
    /// replaces client ids with the authenticated identity (mosquitto's
    /// `use_username_as_clientid`, the embedded broker with authentication)
    /// uses `<site>/<host>` whatever is sent. Authorization never rests on it:
    /// a client id is not an identity.
    pub client_id: Option<String>,
    /// MQTT keepalive, whole seconds, at least 1 s. The broker publishes the
    /// agent's will about 1.5 x this after the link dies; the 10 s default puts
    /// that at 15 s, three heartbeats, inside the DR plan's 30 s.
    pub keepalive: Duration,
    /// How long one connection attempt (TCP, TLS and CONNACK) may take.
    pub connect_timeout: Duration,
    /// First reconnect delay bound; each failure doubles it up to `reconnect_max`,
    /// and the actual delay is drawn uniformly below the bound (full jitter).
    pub reconnect_min: Duration,
    /// Upper bound of the reconnect delay.
    pub reconnect_max: Duration,
    /// User name, if the broker wants one.
    pub username: Option<String>,
    /// A file holding the password (its first line). Kept out of this file so
    /// that the config can be world-readable.
    pub password_file: Option<PathBuf>,
    /// TLS files; required with `mqtts://`.
    pub tls: Option<TlsConfig>,
}

/// How `[mqtt]` was written, not what it configures: equal whatever it holds,
/// so that a configuration printed by `check-config` loads back equal.
#[derive(Debug, Clone, Copy, Default)]
struct UrlWritten(bool);

impl PartialEq for UrlWritten {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}

/// `[mqtt]` as written: `url` optional, so that `[[mqtt.brokers]]` beside
/// an explicit `url` is caught.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawMqttConfig {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    url: Option<BrokerUrl>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    client_id: Option<String>,
    #[serde(default = "default_keepalive", with = "duration")]
    keepalive: Duration,
    #[serde(default = "default_connect_timeout", with = "duration")]
    connect_timeout: Duration,
    #[serde(default = "default_reconnect_min", with = "duration")]
    reconnect_min: Duration,
    #[serde(default = "default_reconnect_max", with = "duration")]
    reconnect_max: Duration,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    username: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    password_file: Option<PathBuf>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    tls: Option<TlsConfig>,
    #[serde(default = "default_stop_timeout", with = "duration")]
    stop_timeout: Duration,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    brokers: Vec<BrokerConfig>,
}

impl From<RawMqttConfig> for MqttConfig {
    fn from(r: RawMqttConfig) -> Self {
        MqttConfig {
            url_set: UrlWritten(r.url.is_some()),
            url: r.url.unwrap_or_default(),
            brokers: r.brokers,
            stop_timeout: r.stop_timeout,
            client_id: r.client_id,
            keepalive: r.keepalive,
            connect_timeout: r.connect_timeout,
            reconnect_min: r.reconnect_min,
            reconnect_max: r.reconnect_max,
            username: r.username,
            password_file: r.password_file,
            tls: r.tls,
        }
    }
}

impl From<MqttConfig> for RawMqttConfig {
    fn from(m: MqttConfig) -> Self {
        RawMqttConfig {
            url: m.brokers.is_empty().then_some(m.url),
            client_id: m.client_id,
            keepalive: m.keepalive,
            connect_timeout: m.connect_timeout,
            reconnect_min: m.reconnect_min,
            reconnect_max: m.reconnect_max,
            stop_timeout: m.stop_timeout,
            username: m.username,
            password_file: m.password_file,
            tls: m.tls,
            brokers: m.brokers,
        }
    }
}

/// `[[mqtt.brokers]]`: one of several brokers, typically this site's and the
/// other site's. Each has its own connection, will, birth, backoff and share
/// of the buffer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BrokerConfig {
    /// The broker's name: the `broker` label of its self-metrics and its
    /// cursor in the disk buffer. 1 to 64 characters of `[A-Za-z0-9_.:-]`,
    /// unique. Default: the URL's `host:port`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// `mqtt://host[:port]` or `mqtts://host[:port]`.
    pub url: BrokerUrl,
    /// Default: the host name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    /// A file holding the password (its first line).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password_file: Option<PathBuf>,
    /// TLS files; required with `mqtts://`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<TlsConfig>,
}

/// One broker as the publisher uses it: [`Config::brokers`] resolves both forms.
#[derive(Debug, Clone, PartialEq)]
pub struct Broker {
    pub name: String,
    pub url: BrokerUrl,
    pub client_id: String,
    pub username: Option<String>,
    pub password_file: Option<PathBuf>,
    pub tls: Option<TlsConfig>,
}

/// Brokers one agent may publish to.
pub const MAX_BROKERS: usize = 8;

/// `[mqtt.tls]`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    /// PEM file with the CA certificate(s) that signed the broker's certificate.
    pub ca: PathBuf,
    /// PEM client certificate chain, for brokers that require client certificates.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cert: Option<PathBuf>,
    /// PEM private key of `cert` (PKCS#8, PKCS#1 or SEC1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<PathBuf>,
}

/// `[buffer]`: the store-and-forward buffer. In memory unless `dir` is set;
/// when a bound is reached the oldest message is dropped (and counted).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BufferConfig {
    /// A directory for the disk buffer: every message is written there as it
    /// is made, survives a crash or a restart, and is sent to each broker that
    /// lacks it after the restart. Absent: memory only (read-only gateways).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dir: Option<PathBuf>,
    /// When the disk buffer reaches stable storage: `"always"` (after every
    /// write) or a duration such as `"1s"` (at most that long after a write:
    /// the readings a power cut can cost). A crash of the process alone loses
    /// nothing either way: the kernel has the writes.
    #[serde(default = "default_fsync", with = "fsync_policy")]
    pub fsync: FsyncPolicy,
    /// Messages kept at most (readings and events).
    #[serde(default = "default_max_messages")]
    pub max_messages: usize,
    /// Bytes kept at most: in memory, or of the disk buffer's files (at least
    /// 262144, the largest message).
    #[serde(default = "default_max_bytes")]
    pub max_bytes: usize,
    /// With `dir`: bytes kept in memory while the disk cannot be written (a
    /// full disk), at least 262144.
    #[serde(default = "default_max_bytes")]
    pub max_memory_bytes: usize,
}

/// When a source polls and how long a poll may take.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Schedule {
    pub interval: Duration,
    pub timeout: Duration,
}

/// Where the broker is: parsed from `mqtt://host[:port]` or `mqtts://host[:port]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct BrokerUrl {
    pub tls: bool,
    pub host: String,
    pub port: u16,
}

impl Default for BrokerUrl {
    fn default() -> Self {
        BrokerUrl {
            tls: false,
            host: "127.0.0.1".into(),
            port: 1883,
        }
    }
}

impl FromStr for BrokerUrl {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let expected = "expected mqtt://host[:port] or mqtts://host[:port]";
        let (tls, rest) = if let Some(rest) = s.strip_prefix("mqtt://") {
            (false, rest)
        } else if let Some(rest) = s.strip_prefix("mqtts://") {
            (true, rest)
        } else {
            return Err(format!(
                "{s:?} has no mqtt:// or mqtts:// scheme; {expected}"
            ));
        };
        let rest = rest.strip_suffix('/').unwrap_or(rest);
        let default_port = if tls { 8883 } else { 1883 };
        let (host, port) = Endpoint::parse_with_port(rest, default_port)
            .map_err(|e| format!("{s:?}: {e}; {expected}"))?;
        Ok(BrokerUrl { tls, host, port })
    }
}

impl TryFrom<String> for BrokerUrl {
    type Error = String;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        s.parse()
    }
}

impl From<BrokerUrl> for String {
    fn from(u: BrokerUrl) -> String {
        u.to_string()
    }
}

impl fmt::Display for BrokerUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let scheme = if self.tls { "mqtts" } else { "mqtt" };
        if self.host.contains(':') {
            write!(f, "{scheme}://[{}]:{}", self.host, self.port)
        } else {
            write!(f, "{scheme}://{}:{}", self.host, self.port)
        }
    }
}

/// Values given on the command line; they win over the file.
#[derive(Debug, Clone, Default)]
pub struct Overrides {
    pub site: Option<SiteName>,
    pub host: Option<HostName>,
    pub mqtt_url: Option<BrokerUrl>,
}

/// Why a configuration could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{path}: cannot read: {source}")]
    Read { path: PathBuf, source: io::Error },
    #[error("{path}: at `{key}`: {detail}")]
    Parse {
        path: PathBuf,
        /// The dotted key path the error is about, e.g. `mqtt.keepalive`.
        key: String,
        /// toml's message with the offending line.
        detail: String,
    },
    #[error("{origin}: `{key}` {message}")]
    Invalid {
        /// The file, or `command line` without one.
        origin: String,
        key: &'static str,
        message: String,
    },
    #[error("no site: set `site` in the config file or pass --site")]
    MissingSite,
    /// The packaged configuration's placeholder site, left as shipped.
    #[error(
        "{path}: at `site`: {site:?} is the packaged placeholder: set this machine's site \
         (e.g. site = \"bj1\") before starting the agent"
    )]
    Placeholder { path: PathBuf, site: String },
    /// A file the configuration names cannot be used.
    #[error("{origin}: {error}")]
    File {
        origin: String,
        error: crate::files::FileError,
    },
}

impl ConfigError {
    /// A bounded label for metrics and tests.
    pub fn kind(&self) -> &'static str {
        match self {
            ConfigError::Read { .. } => "read",
            ConfigError::Parse { .. } => "parse",
            ConfigError::Invalid { .. } => "invalid",
            ConfigError::MissingSite => "missing_site",
            ConfigError::Placeholder { .. } => "placeholder",
            ConfigError::File { .. } => "file",
        }
    }
}

impl Config {
    /// A configuration with every default and the given site.
    pub fn with_site(site: SiteName) -> Self {
        Config {
            site,
            host: default_host(),
            heartbeat: default_heartbeat(),
            labels: BTreeMap::new(),
            mqtt: MqttConfig::default(),
            buffer: BufferConfig::default(),
            sources: SourcesConfig::default(),
            #[cfg(feature = "nut")]
            nut_server: None,
        }
    }

    /// Loads the file (if any), applies the overrides and validates the result.
    pub fn load(path: Option<&Path>, overrides: &Overrides) -> Result<Config, ConfigError> {
        match path {
            None => {
                let site = overrides.site.clone().ok_or(ConfigError::MissingSite)?;
                let mut config = Config::with_site(site);
                config.apply(overrides);
                config.validate("command line")?;
                Ok(config)
            }
            Some(path) => {
                let text = fs::read_to_string(path).map_err(|source| ConfigError::Read {
                    path: path.to_owned(),
                    source,
                })?;
                Config::parse(&text, path, overrides)
            }
        }
    }

    /// Parses `text` (the contents of `path`), applies the overrides and validates.
    pub fn parse(text: &str, path: &Path, overrides: &Overrides) -> Result<Config, ConfigError> {
        let parse_error = |mut e: toml::de::Error| {
            let key = e.span().map_or_else(
                || "(top level)".to_owned(),
                |s| key_path_at(text, s, e.message().starts_with("missing field")),
            );
            e.set_input(Some(text));
            ConfigError::Parse {
                path: path.to_owned(),
                key,
                detail: e.to_string().trim_end().to_owned(),
            }
        };
        if overrides.site.is_none()
            && let Some(site) = placeholder_site(text)
        {
            return Err(ConfigError::Placeholder {
                path: path.to_owned(),
                site,
            });
        }
        let mut doc = toml::de::DeTable::parse(text).map_err(parse_error)?;
        if let Some(site) = &overrides.site {
            // Inserted before deserializing so that a file without `site` is
            // complete with `--site`; the flag wins over the file either way.
            doc.get_mut().insert(
                toml::Spanned::new(0..0, Cow::Borrowed("site")),
                toml::Spanned::new(0..0, toml::de::DeValue::String(site.to_string().into())),
            );
        }
        let mut config =
            Config::deserialize(toml::de::Deserializer::from(doc)).map_err(parse_error)?;
        config.apply(overrides);
        config.validate(&path.display().to_string())?;
        Ok(config)
    }

    fn apply(&mut self, overrides: &Overrides) {
        if let Some(site) = &overrides.site {
            self.site = site.clone();
        }
        if let Some(host) = &overrides.host {
            self.host = host.clone();
        }
        if let Some(url) = &overrides.mqtt_url {
            self.mqtt.url = url.clone();
            self.mqtt.url_set = UrlWritten(true);
        }
    }

    /// The brokers to publish to: `[[mqtt.brokers]]`, or the one `[mqtt] url`.
    pub fn brokers(&self) -> Vec<Broker> {
        let name_of = |url: &BrokerUrl| {
            if url.host.contains(':') {
                format!("[{}]:{}", url.host, url.port)
            } else {
                format!("{}:{}", url.host, url.port)
            }
        };
        if self.mqtt.brokers.is_empty() {
            return vec![Broker {
                name: name_of(&self.mqtt.url),
                url: self.mqtt.url.clone(),
                client_id: self.client_id(),
                username: self.mqtt.username.clone(),
                password_file: self.mqtt.password_file.clone(),
                tls: self.mqtt.tls.clone(),
            }];
        }
        self.mqtt
            .brokers
            .iter()
            .map(|b| Broker {
                name: b.name.clone().unwrap_or_else(|| name_of(&b.url)),
                url: b.url.clone(),
                client_id: b
                    .client_id
                    .clone()
                    .unwrap_or_else(|| self.default_client_id()),
                username: b.username.clone(),
                password_file: b.password_file.clone(),
                tls: b.tls.clone(),
            })
            .collect()
    }

    /// The MQTT client id: the configured one or `<site>:<host>`.
    pub fn client_id(&self) -> String {
        self.mqtt
            .client_id
            .clone()
            .unwrap_or_else(|| self.default_client_id())
    }

    /// `<site>:<host>` (see [`MqttConfig::client_id`]).
    fn default_client_id(&self) -> String {
        format!("{}:{}", self.site, self.host)
    }

    /// The identity a broker authenticates this agent as: `<site>/<host>`, the
    /// certificate's CN or the password file's user name (see
    /// packaging/mosquitto/).
    pub fn identity(&self) -> String {
        format!("{}/{}", self.site, self.host)
    }

    /// The effective configuration as TOML, for `check-config`.
    pub fn to_toml(&self) -> Result<String, toml::ser::Error> {
        toml::to_string_pretty(self)
    }

    /// Every file and directory the configuration names can be used: the MQTT
    /// password and TLS files (which must also make a TLS configuration), and
    /// each enabled source's ([`crate::source::Section::check_files`]).
    /// `origin` names the configuration in errors.
    pub fn check_files(&self, origin: &str) -> Result<(), ConfigError> {
        use crate::files::{FileError, FileProblem, readable_file};
        let fail = |error: FileError| ConfigError::File {
            origin: origin.to_owned(),
            error,
        };
        let mut files: Vec<(&str, &Path)> = Vec::new();
        if let Some(p) = &self.mqtt.password_file {
            files.push(("mqtt.password_file", p));
        }
        if let Some(tls) = &self.mqtt.tls {
            files.push(("mqtt.tls.ca", &tls.ca));
            if let Some(p) = &tls.cert {
                files.push(("mqtt.tls.cert", p));
            }
            if let Some(p) = &tls.key {
                files.push(("mqtt.tls.key", p));
            }
        }
        for (key, path) in files {
            readable_file(path).map_err(|p| fail(FileError::new(key, path, p)))?;
        }
        if let Some(tls) = &self.mqtt.tls {
            use crate::tls::TlsError;
            crate::tls::client_config(tls).map_err(|e| {
                let key_of = |what: &str| match what {
                    "CA certificate" => "mqtt.tls.ca",
                    "client key" => "mqtt.tls.key",
                    _ => "mqtt.tls.cert",
                };
                let (key, path, message) = match &e {
                    TlsError::Read { path, what, source } => (
                        key_of(what),
                        PathBuf::from(path),
                        format!("not a {what}: {source}"),
                    ),
                    TlsError::NoCertificate { path, what } => (
                        key_of(what),
                        PathBuf::from(path),
                        "holds no PEM certificate".to_owned(),
                    ),
                    TlsError::BadCa { path, source } => (
                        "mqtt.tls.ca",
                        PathBuf::from(path),
                        format!("CA certificate rejected: {source}"),
                    ),
                    TlsError::BadClientAuth(source) => (
                        "mqtt.tls.key",
                        tls.key.clone().unwrap_or_default(),
                        format!("does not make a client certificate with mqtt.tls.cert: {source}"),
                    ),
                    TlsError::Setup(source) => ("mqtt.tls", tls.ca.clone(), source.to_string()),
                };
                fail(FileError::new(key, &path, FileProblem::Invalid(message)))
            })?;
        }
        self.sources.check_files().map_err(fail)?;
        #[cfg(feature = "nut")]
        if let Some(n) = self.nut_server.as_ref().filter(|n| n.enabled) {
            n.check_files().map_err(fail)?;
        }
        Ok(())
    }

    /// The rules serde cannot express.
    fn validate(&self, origin: &str) -> Result<(), ConfigError> {
        let invalid = |key: &'static str, message: String| ConfigError::Invalid {
            origin: origin.to_owned(),
            key,
            message,
        };
        if self.labels.len() > limits::MAX_LABELS {
            return Err(invalid(
                "labels",
                format!(
                    "has {} labels, at most {}",
                    self.labels.len(),
                    limits::MAX_LABELS
                ),
            ));
        }
        for (k, v) in &self.labels {
            let valid_key = k.len() <= limits::MAX_LABEL_KEY_LEN
                && k.starts_with(|c: char| c.is_ascii_lowercase())
                && k.chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
            if !valid_key || limits::RESERVED_LABEL_KEYS.contains(&k.as_str()) {
                return Err(invalid(
                    "labels",
                    format!(
                        "key {k:?} is invalid: expected snake_case up to {} characters, not one of {:?}",
                        limits::MAX_LABEL_KEY_LEN,
                        limits::RESERVED_LABEL_KEYS
                    ),
                ));
            }
            if v.chars().count() > limits::MAX_LABEL_VALUE_LEN {
                return Err(invalid(
                    "labels",
                    format!(
                        "value of {k:?} is longer than {} characters",
                        limits::MAX_LABEL_VALUE_LEN
                    ),
                ));
            }
        }
        if self.heartbeat < Duration::from_secs(1) {
            return Err(invalid("heartbeat", "must be at least 1s".into()));
        }
        let keepalive = self.mqtt.keepalive;
        if keepalive < Duration::from_secs(1)
            || keepalive.subsec_nanos() != 0
            || keepalive.as_secs() > u64::from(u16::MAX)
        {
            return Err(invalid(
                "mqtt.keepalive",
                "must be whole seconds between 1s and 65535s (MQTT counts it in seconds)".into(),
            ));
        }
        if self.mqtt.connect_timeout < Duration::from_secs(1) {
            return Err(invalid(
                "mqtt.connect_timeout",
                "must be at least 1s".into(),
            ));
        }
        if self.mqtt.reconnect_min.is_zero() || self.mqtt.reconnect_min > self.mqtt.reconnect_max {
            return Err(invalid(
                "mqtt.reconnect_min",
                "must be above zero and at most mqtt.reconnect_max".into(),
            ));
        }
        self.validate_brokers()
            .map_err(|(key, message)| invalid(key, message))?;
        if self.mqtt.stop_timeout > Duration::from_secs(600) {
            return Err(invalid(
                "mqtt.stop_timeout",
                "must be at most 10m (a stop that waits longer looks hung)".into(),
            ));
        }
        if let FsyncPolicy::Every(d) = self.buffer.fsync
            && (d.is_zero() || d > Duration::from_secs(60))
        {
            return Err(invalid(
                "buffer.fsync",
                "must be \"always\" or a duration between 1ms and 1m".into(),
            ));
        }
        if self.buffer.max_memory_bytes < limits::MAX_PAYLOAD_BYTES {
            return Err(invalid(
                "buffer.max_memory_bytes",
                format!(
                    "must be at least {} (one message of the largest size)",
                    limits::MAX_PAYLOAD_BYTES
                ),
            ));
        }
        if self.buffer.max_messages == 0 {
            return Err(invalid("buffer.max_messages", "must be at least 1".into()));
        }
        if self.buffer.max_bytes < limits::MAX_PAYLOAD_BYTES {
            return Err(invalid(
                "buffer.max_bytes",
                format!(
                    "must be at least {} (one message of the largest size)",
                    limits::MAX_PAYLOAD_BYTES
                ),
            ));
        }
        self.sources
            .validate()
            .map_err(|(key, message)| invalid(key, message))?;
        #[cfg(feature = "nut")]
        if let Some(n) = &self.nut_server {
            n.validate()
                .map_err(|(key, message)| invalid(key, message))?;
        }
        for source in self.sources.enabled() {
            let s = source.schedule();
            if s.interval < Duration::from_millis(100) {
                return Err(invalid(
                    "sources.*.interval",
                    format!("of source {} must be at least 100ms", source.name()),
                ));
            }
            if s.timeout.is_zero() {
                return Err(invalid(
                    "sources.*.timeout",
                    format!("of source {} must be above zero", source.name()),
                ));
            }
        }
        Ok(())
    }
}

impl Config {
    /// The `[mqtt]` rules serde cannot express: (key, message) on failure.
    fn validate_brokers(&self) -> Result<(), (&'static str, String)> {
        let m = &self.mqtt;
        let many = !m.brokers.is_empty();
        if many
            && (m.url_set.0
                || m.client_id.is_some()
                || m.username.is_some()
                || m.password_file.is_some()
                || m.tls.is_some())
        {
            return Err((
                "mqtt.brokers",
                "replaces mqtt.url, client_id, username, password_file and tls: give them in each [[mqtt.brokers]] table (and no --mqtt flag)".into(),
            ));
        }
        if m.brokers.len() > MAX_BROKERS {
            return Err((
                "mqtt.brokers",
                format!("has {} brokers, at most {MAX_BROKERS}", m.brokers.len()),
            ));
        }
        let (key_client_id, key_tls, key_ca) = if many {
            (
                "mqtt.brokers.client_id",
                "mqtt.brokers.tls",
                "mqtt.brokers.tls.ca",
            )
        } else {
            ("mqtt.client_id", "mqtt.tls", "mqtt.tls.ca")
        };
        let mut names = std::collections::BTreeSet::new();
        for b in self.brokers() {
            let which = if many {
                format!(" (broker {:?})", b.name)
            } else {
                String::new()
            };
            let valid_name = (1..=64).contains(&b.name.len())
                && b.name.chars().all(|c| {
                    c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | ':' | '-' | '[' | ']')
                });
            if !valid_name {
                return Err((
                    "mqtt.brokers.name",
                    format!("{:?} must be 1 to 64 characters of [A-Za-z0-9_.:-]", b.name),
                ));
            }
            if !names.insert(b.name.clone()) {
                return Err((
                    "mqtt.brokers.name",
                    format!(
                        "{:?} names two brokers (give each a distinct `name`)",
                        b.name
                    ),
                ));
            }
            if b.client_id.is_empty() || b.client_id.len() > 256 {
                return Err((key_client_id, format!("must be 1 to 256 characters{which}")));
            }
            match (&b.tls, b.url.tls) {
                (None, true) => {
                    return Err((
                        key_ca,
                        format!(
                            "is required with mqtts:// (the CA that signed the broker's certificate){which}"
                        ),
                    ));
                }
                (Some(_), false) => {
                    return Err((
                        key_tls,
                        format!("is set but the url {} is not mqtts://{which}", b.url),
                    ));
                }
                (Some(tls), true) if tls.cert.is_some() != tls.key.is_some() => {
                    return Err((
                        key_tls,
                        format!(
                            "needs both `cert` and `key` for a client certificate, or neither{which}"
                        ),
                    ));
                }
                _ => {}
            }
        }
        Ok(())
    }
}

/// The site the packaged configuration ships with (packaging/config/agent.toml):
/// an agent nobody configured refuses to start instead of publishing under it.
pub const PLACEHOLDER_SITE: &str = "CHANGE-ME";

/// The file's `site` when it is the placeholder (in any case: lowercased, it
/// would pass as a name).
fn placeholder_site(text: &str) -> Option<String> {
    #[derive(Deserialize)]
    struct SiteOnly {
        site: Option<String>,
    }
    toml::from_str::<SiteOnly>(text)
        .ok()
        .and_then(|s| s.site)
        .filter(|s| s.eq_ignore_ascii_case(PLACEHOLDER_SITE))
}

/// The dotted key path at byte `span` of a TOML document: the last table header
/// before it joined with the key on the span's line (toml's errors point at the
/// offending key or value but do not print the path when they show the line).
///
/// A `whole_table` error (a missing field) names the table, not the first key in it.
fn key_path_at(text: &str, span: std::ops::Range<usize>, whole_table: bool) -> String {
    let start = span.start.min(text.len());
    let mut table = String::new();
    let mut offset = 0;
    for line in text.split_inclusive('\n') {
        let end = offset + line.len();
        let trimmed = line.trim();
        let is_header = trimmed.starts_with('[');
        let header = trimmed
            .trim_start_matches('[')
            .split(']')
            .next()
            .unwrap_or("")
            .trim();
        if start < end || end == text.len() {
            if is_header {
                return header.to_owned();
            }
            if whole_table {
                return if table.is_empty() {
                    "(top level)".to_owned()
                } else {
                    table
                };
            }
            let key = match trimmed.split_once('=') {
                Some((key, _)) => key.trim().trim_matches('"'),
                // The span's line holds no key (a value spanning lines, or the whole
                // table): name the table.
                None => "",
            };
            return match (table.is_empty(), key.is_empty()) {
                (_, true) if table.is_empty() => "(top level)".to_owned(),
                (_, true) => table,
                (true, false) => key.to_owned(),
                (false, false) => format!("{table}.{key}"),
            };
        }
        if is_header {
            table = header.to_owned();
        }
        offset = end;
    }
    table
}
/// `"5s"`-style durations (humantime) in and out: `#[serde(with = "duration")]`.
pub(crate) mod duration {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer, de::Error};

    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&humantime::format_duration(*d).to_string())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        let s = String::deserialize(d)?;
        humantime::parse_duration(&s).map_err(|e| {
            D::Error::custom(format_args!(
                "invalid duration {s:?} ({e}), expected e.g. \"5s\", \"500ms\" or \"1m\""
            ))
        })
    }
}

/// An optional `"5s"`-style duration: `#[serde(default, with = "opt_duration")]`.
// For the sources' tables: unused in a build with none of those that need it.
#[allow(dead_code)]
pub(crate) mod opt_duration {
    use std::time::Duration;

    use serde::{Deserializer, Serializer};

    pub fn serialize<S: Serializer>(d: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
        match d {
            Some(d) => super::duration::serialize(d, s),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
        super::duration::deserialize(d).map(Some)
    }
}

/// `"always"` or `"1s"`-style durations, in and out.
mod fsync_policy {
    use serde::{Deserialize, Deserializer, Serializer, de::Error};

    use super::FsyncPolicy;

    pub fn serialize<S: Serializer>(p: &FsyncPolicy, s: S) -> Result<S::Ok, S::Error> {
        match p {
            FsyncPolicy::Always => s.serialize_str("always"),
            FsyncPolicy::Every(d) => s.serialize_str(&humantime::format_duration(*d).to_string()),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<FsyncPolicy, D::Error> {
        let s = String::deserialize(d)?;
        if s == "always" {
            return Ok(FsyncPolicy::Always);
        }
        humantime::parse_duration(&s).map(FsyncPolicy::Every).map_err(|e| {
            D::Error::custom(format_args!(
                "invalid fsync policy {s:?} ({e}), expected \"always\" or a duration such as \"1s\" or \"200ms\""
            ))
        })
    }
}

impl Default for MqttConfig {
    fn default() -> Self {
        MqttConfig {
            url: BrokerUrl::default(),
            url_set: UrlWritten(false),
            brokers: Vec::new(),
            stop_timeout: default_stop_timeout(),
            client_id: None,
            keepalive: default_keepalive(),
            connect_timeout: default_connect_timeout(),
            reconnect_min: default_reconnect_min(),
            reconnect_max: default_reconnect_max(),
            username: None,
            password_file: None,
            tls: None,
        }
    }
}

impl Default for BufferConfig {
    fn default() -> Self {
        BufferConfig {
            dir: None,
            fsync: default_fsync(),
            max_messages: default_max_messages(),
            max_bytes: default_max_bytes(),
            max_memory_bytes: default_max_bytes(),
        }
    }
}

/// The machine's hostname made into a valid [`HostName`].
pub fn default_host() -> HostName {
    let raw = nix::unistd::gethostname()
        .ok()
        .and_then(|h| h.into_string().ok())
        .unwrap_or_default();
    sanitize_host(&raw)
}

/// Lowercases, replaces characters outside `[a-z0-9_.-]` with `-`, drops a
/// leading `_` and truncates to 64 characters; `localhost` if nothing is left.
pub fn sanitize_host(raw: &str) -> HostName {
    let cleaned: String = raw
        .trim()
        .to_lowercase()
        .chars()
        .map(|c| match c {
            'a'..='z' | '0'..='9' | '_' | '.' | '-' => c,
            _ => '-',
        })
        .skip_while(|c| *c == '_')
        .take(limits::MAX_SITE_HOST_LEN)
        .collect();
    HostName::new(&cleaned).unwrap_or_else(|_| localhost())
}

// The one literal name the agent falls back to; serde defaults cannot fail, so
// this is the single place where an invalid name would be a programming error.
#[allow(clippy::expect_used)]
fn localhost() -> HostName {
    HostName::new("localhost").expect("\"localhost\" is a valid host name")
}

// For the sources' tables: unused in a build with none of those that need it.
#[allow(dead_code)]
pub(crate) fn default_true() -> bool {
    true
}
fn default_heartbeat() -> Duration {
    Duration::from_secs(5)
}
fn default_keepalive() -> Duration {
    Duration::from_secs(10)
}
fn default_connect_timeout() -> Duration {
    Duration::from_secs(10)
}
fn default_reconnect_min() -> Duration {
    Duration::from_millis(500)
}
fn default_reconnect_max() -> Duration {
    Duration::from_secs(30)
}
fn default_stop_timeout() -> Duration {
    Duration::from_secs(10)
}
fn default_fsync() -> FsyncPolicy {
    FsyncPolicy::Every(Duration::from_secs(1))
}
fn default_max_messages() -> usize {
    10_000
}
fn default_max_bytes() -> usize {
    16 * 1024 * 1024
}
#[cfg(test)]
mod tests;
