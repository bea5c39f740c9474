//! The collector's configuration file (TOML) and its validation.
//!
//! Every key is optional: an empty file (or none at all) gives the one-machine
//! setup: HTTP on `127.0.0.1:9184`, an embedded broker on `127.0.0.1:1883` (MQTT
//! 3.1.1) and `127.0.0.1:1884` (MQTT 5). Unknown keys are errors, and every error
//! names the file and the key. Durations are written `"5s"`, `"2m"`, `"1h"`.
//!
//! ```toml
//! # HTTP address for /metrics, /healthz and /api/v1/hosts.
//! listen = "127.0.0.1:9184"
//! # TLS and basic auth for the HTTP side: the exporter toolkit's web config (YAML).
//! # web_config_file = "/etc/sitewatch/web-config.yml"
//! # Split the agents' readings with other collectors (MQTT v5 shared subscription).
//! # share_group = "collectors"
//!
//! # An external broker. Without this table the embedded broker runs.
//! [mqtt]
//! url = "mqtts://mqtt.example.net:8883"   # mqtt:// (default port 1883) or mqtts:// (8883)
//! client_id = "collector-bj1"              # default: sitewatch-collector-<hostname>-<http port>
//! username = "collector"
//! password_file = "/etc/sitewatch/mqtt-password"
//! keep_alive = "30s"
//! session_expiry = "1h"                   # MQTT v5 persistent session
//! [mqtt.tls]
//! ca = "/etc/sitewatch/mqtt-ca.pem"        # default: the system's CA roots
//! cert = "/etc/sitewatch/collector.pem"    # client certificate (CN = the collector's identity), with key
//! key = "/etc/sitewatch/collector.key"
//!
//! [http]
//! max_connections = 512                   # more wait in the kernel's backlog
//! header_read_timeout = "10s"             # TLS handshake, request head, idle keep-alive
//! request_timeout = "30s"                 # the whole request; a stalled write
//!
//! # The embedded broker (ignored when [mqtt] is set); every key of it is in
//! # broker/config.rs.
//! [embedded_broker]
//! listen_v4 = "127.0.0.1:1883"
//! listen_v5 = "127.0.0.1:1884"             # default: listen_v4's port + 1
//! max_connections = 10000
//!
//! [state]
//! stale_factor = 3                   # a series expires after 3 intervals of its source
//! lost_after_missed_heartbeats = 3   # an online agent silent this many intervals is lost
//! default_interval = "60s"           # when an agent did not announce its intervals
//! max_series = 5000000               # beyond this, new series are dropped and counted
//! ```
//!
//!
//! # Disaster signals and Alertmanager
//!
//! `[signals]` is the signals engine's table (`sitewatch_signals::SignalsConfig`,
//! every default written out in `signals/example.toml`): thresholds, durations,
//! `[signals.sites.<site>]` (region, expected hosts, host labels) and
//! `[[signals.maintenance]]` windows. `[alertmanager]` pushes the signals to
//! Alertmanager; without it nothing is pushed.
//!
//! ```toml
//! [signals]
//! startup_grace = "30s"               # from the collector's start: no lost agent counts
//! [signals.power]
//! generator_start_grace = "20s"
//! [signals.sites.bj1]
//! region = "cn-north"
//! expected_hosts = ["web-01", "web-02", "db-01"]
//! host_labels = { db-01 = { zone = "b" } }
//! [[signals.maintenance]]
//! site = "bj1"
//! host = "db-01"                      # omit for the whole site
//! start = "2025-11-25T22:00:00+08:00" # RFC 3339 or Unix ms
//! end = "2025-11-26T02:00:00+08:00"
//!
//! [alertmanager]
//! urls = ["http://am-1:9093", "http://am-2:9093"]   # every instance of an HA pair (or url = "...")
//! resend_interval = "30s"             # 30-60 s; endsAt = now + 4 x this
//! timeout = "10s"                     # per POST
//! # username = "sitewatch"            # basic auth, with password_file
//! # password_file = "/etc/sitewatch/am-password"
//! # bearer_token_file = "/etc/sitewatch/am-token"
//! # [alertmanager.tls]
//! # ca = "/etc/sitewatch/am-ca.pem"   # default: the system's CA roots
//! ```

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Deserializer};
use sitewatch_signals::SignalsConfig;

use crate::Error;
use crate::liveness::Rules;
use crate::state::StateConfig;
use crate::tls::ClientCertFiles;

/// The default HTTP address: 9184 sits in the exporters' range of the Prometheus
/// port allocation list, next to the many 91xx exporters, and was free there.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:9184";
/// The embedded broker's first listener.
pub const DEFAULT_EMBEDDED_V4: &str = crate::broker::config::DEFAULT_LISTEN_V4;

/// A duration written as `"5s"`, `"2m"`, `"1h 30m"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HumanDuration(pub Duration);

impl<'de> Deserialize<'de> for HumanDuration {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        humantime::parse_duration(&s)
            .map(HumanDuration)
            .map_err(|e| {
                serde::de::Error::custom(format!(
                    "{s:?} is not a duration ({e}); write e.g. \"5s\""
                ))
            })
    }
}

/// The file, as written.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    /// HTTP listen address.
    pub listen: Option<SocketAddr>,
    /// MQTT v5 shared-subscription group.
    pub share_group: Option<String>,
    /// This collector's name in `[signals.topology]`: the identity of its
    /// presence topics.
    pub name: Option<String>,
    /// TLS, basic authentication and headers for the HTTP side, in the
    /// Prometheus exporter toolkit's web config format (YAML).
    pub web_config_file: Option<PathBuf>,
    /// The HTTP server's limits.
    #[serde(default)]
    pub http: HttpFileConfig,
    /// An external broker; absent: the embedded one.
    pub mqtt: Option<MqttConfig>,
    #[serde(default)]
    pub embedded_broker: EmbeddedBrokerConfig,
    #[serde(default)]
    pub state: StateFileConfig,
    /// The signals engine: thresholds, sites, maintenance windows.
    #[serde(default)]
    pub signals: SignalsConfig,
    /// Where to push the signals as alerts; absent: nowhere.
    pub alertmanager: Option<AlertmanagerFileConfig>,
}

/// `[http]`: the HTTP server's limits (the web config file says who may in).
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpFileConfig {
    /// Connections open at once (default 512, Prometheus' `--web.max-connections`);
    /// more wait in the kernel's backlog.
    pub max_connections: Option<usize>,
    /// The TLS handshake and each request's head must arrive within this, and an
    /// idle keep-alive connection is closed after it (default 10s).
    pub header_read_timeout: Option<HumanDuration>,
    /// A whole request, authentication included, gets a 503 after this, and a
    /// response write that makes no progress for this long closes the
    /// connection (default 30s).
    pub request_timeout: Option<HumanDuration>,
}

/// `[alertmanager]`: the Alertmanager v2 API the signals are pushed to.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AlertmanagerFileConfig {
    /// One Alertmanager (`http://host:9093`, a path prefix allowed).
    pub url: Option<String>,
    /// Several: every instance of an Alertmanager cluster gets every alert (as
    /// Prometheus does), each from its own task.
    #[serde(default)]
    pub urls: Vec<String>,
    /// How often an active alert is sent again (default 30s). Its `endsAt` is four
    /// of these ahead, so a collector that dies lets its alerts resolve by themselves.
    pub resend_interval: Option<HumanDuration>,
    /// Per request (default 10s, at most `resend_interval`).
    pub timeout: Option<HumanDuration>,
    /// Basic authentication, with `password_file`.
    pub username: Option<String>,
    pub password_file: Option<PathBuf>,
    /// A bearer token, read from this file.
    pub bearer_token_file: Option<PathBuf>,
    pub tls: Option<TlsConfig>,
}

/// `[mqtt]`: the broker to consume (`url` and the keys beside it), or several
/// (`[[mqtt.brokers]]`, each with the same keys and a `name`).
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MqttConfig {
    /// `mqtt://host[:port]` or `mqtts://host[:port]`.
    pub url: Option<String>,
    /// The link's name (the `broker` label, `/api/v1/hosts`' `paths`); default:
    /// the URL's host.
    pub name: Option<String>,
    /// `"5"` (default) or `"3.1.1"`. MQTT 5 tells the broker the largest packet
    /// the collector takes, so an oversized retained message cannot blind it.
    pub protocol: Option<MqttProtocol>,
    /// Several brokers (a dual-homed deployment): each is a path of its own.
    #[serde(default)]
    pub brokers: Vec<MqttConfig>,
    /// The MQTT client id of the collector's persistent session (QoS 1 messages
    /// published while it reconnects are kept for it). Default:
    /// `sitewatch-collector-<hostname>-<http port>`, stable across restarts.
    pub client_id: Option<String>,
    pub username: Option<String>,
    /// A file holding the password (so that it is not in the config file).
    pub password_file: Option<PathBuf>,
    pub keep_alive: Option<HumanDuration>,
    /// MQTT v5 session expiry for the persistent session (default 1h).
    pub session_expiry: Option<HumanDuration>,
    pub tls: Option<MqttTlsConfig>,
}

/// The MQTT protocol version of a link.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub enum MqttProtocol {
    #[serde(rename = "5")]
    V5,
    #[serde(rename = "3.1.1")]
    V311,
}

/// `[mqtt.tls]`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MqttTlsConfig {
    /// PEM file of the CA(s) to trust; default: the system's roots.
    pub ca: Option<PathBuf>,
    /// PEM client certificate (chain), for brokers that require one: its
    /// subject CN is the collector's identity (mosquitto's
    /// `use_identity_as_username`). With `key`.
    pub cert: Option<PathBuf>,
    /// PEM private key of `cert` (PKCS#8, PKCS#1 or SEC1).
    pub key: Option<PathBuf>,
}

/// `[alertmanager.tls]`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    /// PEM file of the CA(s) to trust; default: the system's roots.
    pub ca: Option<PathBuf>,
}

/// `[embedded_broker]`: its types live with the broker.
pub use crate::broker::config::EmbeddedBrokerConfig;

/// `[state]`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StateFileConfig {
    /// A series expires after this many intervals of its source (default 3).
    pub stale_factor: Option<u32>,
    /// An online agent silent this many heartbeat intervals is lost (default 3).
    pub lost_after_missed_heartbeats: Option<u32>,
    /// The older spelling of `[signals] startup_grace` (one grace for everything).
    pub startup_grace: Option<HumanDuration>,
    /// The interval assumed when an agent did not announce one (default 60s).
    pub default_interval: Option<HumanDuration>,
    /// Most series held; new ones beyond are dropped and counted (default 5000000).
    pub max_series: Option<usize>,
    /// Most series of one host (default 20000).
    pub max_series_per_host: Option<usize>,
    /// Most hosts known (default 100000), and per site (default 20000).
    pub max_hosts: Option<usize>,
    pub max_hosts_per_site: Option<usize>,
    /// A host not heard from this long is forgotten, unless expected (default 7d).
    pub forget_after: Option<HumanDuration>,
}

/// Loads and parses a config file.
pub fn load(path: &Path) -> Result<FileConfig, Error> {
    let text = std::fs::read_to_string(path).map_err(|source| Error::ConfigRead {
        path: path.to_owned(),
        source,
    })?;
    parse(path, &text)
}

/// Parses config text; `path` only names it in errors.
pub fn parse(path: &Path, text: &str) -> Result<FileConfig, Error> {
    toml::from_str(text).map_err(|e| Error::ConfigParse {
        path: path.to_owned(),
        message: e.to_string().trim_end().to_owned(),
    })
}

/// The embedded broker's listeners.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EmbeddedSettings {
    pub v4: SocketAddr,
    pub v5: SocketAddr,
    pub max_connections: usize,
}

/// The name of the embedded broker's link.
pub const EMBEDDED_LINK: &str = "embedded";

/// One external broker the collector consumes.
#[derive(Debug, Clone, PartialEq)]
pub struct BrokerSettings {
    /// The link's name.
    pub name: String,
    /// Its table in the configuration (`mqtt`, `mqtt.brokers[1]`), for errors.
    pub key: String,
    pub url: BrokerUrl,
    /// MQTT 5 (default) or 3.1.1.
    pub v5: bool,
    pub client_id: Option<String>,
    pub username: Option<String>,
    pub password_file: Option<PathBuf>,
    pub tls_ca: Option<PathBuf>,
    /// `[mqtt.tls] cert` and `key`: the collector's client certificate.
    pub tls_client: Option<ClientCertFiles>,
    pub keep_alive: Duration,
    pub session_expiry: Duration,
}

/// A parsed `mqtt://` / `mqtts://` URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BrokerUrl {
    pub host: String,
    pub port: u16,
    pub tls: bool,
}

impl BrokerUrl {
    /// Parses `mqtt://host[:port]`, `mqtts://host[:port]` (also `tcp://`, `ssl://`).
    pub fn parse(url: &str) -> Result<Self, String> {
        let (scheme, rest) = url.split_once("://").ok_or_else(|| {
            format!("{url:?} has no scheme; write mqtt://host:port or mqtts://host:port")
        })?;
        let tls = match scheme {
            "mqtt" | "tcp" => false,
            "mqtts" | "ssl" => true,
            other => return Err(format!("scheme {other:?} is not mqtt or mqtts")),
        };
        let rest = rest.trim_end_matches('/');
        if rest.contains('/') || rest.contains('@') || rest.contains('?') {
            return Err(format!(
                "{url:?}: only scheme, host and port are allowed (credentials go in username and password_file)"
            ));
        }
        let default_port = if tls { 8883 } else { 1883 };
        let (host, port) = if let Some(v6) = rest.strip_prefix('[') {
            // [::1]:1883
            let (host, after) = v6
                .split_once(']')
                .ok_or_else(|| format!("{url:?}: unclosed '['"))?;
            let port = match after.strip_prefix(':') {
                Some(p) => parse_port(url, p)?,
                None if after.is_empty() => default_port,
                None => return Err(format!("{url:?}: unexpected {after:?} after the host")),
            };
            (host.to_owned(), port)
        } else {
            match rest.rsplit_once(':') {
                Some((host, p)) => (host.to_owned(), parse_port(url, p)?),
                None => (rest.to_owned(), default_port),
            }
        };
        if host.is_empty() {
            return Err(format!("{url:?} has no host"));
        }
        Ok(BrokerUrl { host, port, tls })
    }
}

fn parse_port(url: &str, p: &str) -> Result<u16, String> {
    p.parse()
        .map_err(|_| format!("{url:?}: port {p:?} is not a number from 1 to 65535"))
        .and_then(|n: u16| {
            if n == 0 {
                Err(format!("{url:?}: port 0"))
            } else {
                Ok(n)
            }
        })
}

/// Log output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Text,
    /// One JSON object per line.
    Json,
}

/// Command-line values that override the file.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Overrides {
    pub listen: Option<SocketAddr>,
    pub mqtt_url: Option<String>,
    pub embedded_v4: Option<SocketAddr>,
    pub embedded_v5: Option<SocketAddr>,
    pub share_group: Option<String>,
    pub name: Option<String>,
    pub web_config_file: Option<PathBuf>,
    pub max_connections: Option<usize>,
}

/// The validated settings the collector runs with.
#[derive(Debug, Clone, PartialEq)]
pub struct Settings {
    /// The configuration file the settings came from ("defaults" without one).
    pub origin: String,
    pub listen: SocketAddr,
    /// The web config file, loaded at start (and reloaded when it changes).
    pub web_config_file: Option<PathBuf>,
    /// Where `web_config_file` came from, for errors ("command line" or the file).
    pub web_config_origin: String,
    pub http: crate::web::Limits,
    /// The embedded broker, when it runs (one more path, named
    /// [`EMBEDDED_LINK`], the first).
    pub embedded: Option<EmbeddedSettings>,
    /// The external brokers consumed, each a path.
    pub brokers: Vec<BrokerSettings>,
    /// The embedded broker's whole configuration, when it runs (its listeners
    /// are also in `embedded`, where the link connects).
    pub embedded_broker: Option<crate::broker::BrokerConfig>,
    pub share_group: Option<String>,
    /// This collector's name in the topology (presence, views, vantage).
    pub name: Option<String>,
    pub state: StateConfig,
    /// The signals engine's configuration, validated.
    pub signals: SignalsConfig,
    pub alertmanager: Option<AlertmanagerSettings>,
}

/// `[alertmanager]`, validated.
#[derive(Debug, Clone, PartialEq)]
pub struct AlertmanagerSettings {
    /// Base URLs without a trailing `/`; alerts go to `<url>/api/v2/alerts`.
    pub urls: Vec<String>,
    pub resend_interval: Duration,
    pub timeout: Duration,
    pub auth: AlertmanagerAuth,
    pub tls_ca: Option<PathBuf>,
}

/// How the collector authenticates to Alertmanager.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AlertmanagerAuth {
    None,
    Basic {
        username: String,
        password_file: Option<PathBuf>,
    },
    Bearer {
        token_file: PathBuf,
    },
}

/// Default `[alertmanager] resend_interval`.
pub const DEFAULT_RESEND_INTERVAL: Duration = Duration::from_secs(30);
/// Default `[alertmanager] timeout`.
pub const DEFAULT_ALERTMANAGER_TIMEOUT: Duration = Duration::from_secs(10);

fn alertmanager_settings(
    am: &AlertmanagerFileConfig,
    origin: &str,
) -> Result<AlertmanagerSettings, Error> {
    let invalid = |key: &str, message: String| Error::ConfigInvalid {
        origin: origin.to_owned(),
        key: format!("alertmanager.{key}"),
        message,
    };
    let mut urls = Vec::new();
    for (key, url) in am
        .url
        .iter()
        .map(|u| ("url", u))
        .chain(am.urls.iter().map(|u| ("urls", u)))
    {
        let parsed = reqwest::Url::parse(url).map_err(|e| invalid(key, format!("{url:?}: {e}")))?;
        if !matches!(parsed.scheme(), "http" | "https") || parsed.host_str().is_none() {
            return Err(invalid(
                key,
                format!("{url:?}: write http://host:port or https://host:port"),
            ));
        }
        if !parsed.username().is_empty() || parsed.password().is_some() {
            return Err(invalid(
                key,
                format!("{url:?}: credentials go in username and password_file"),
            ));
        }
        let base = parsed.as_str().trim_end_matches('/').to_owned();
        if !urls.contains(&base) {
            urls.push(base);
        }
    }
    if urls.is_empty() {
        return Err(invalid("url", "set url or urls".into()));
    }
    let resend_interval = am.resend_interval.map_or(DEFAULT_RESEND_INTERVAL, |d| d.0);
    if resend_interval < Duration::from_secs(1) || resend_interval > Duration::from_secs(3600) {
        return Err(invalid(
            "resend_interval",
            "must be 1s to 1h (30s to 60s in production)".into(),
        ));
    }
    let timeout = am.timeout.map_or(DEFAULT_ALERTMANAGER_TIMEOUT, |d| d.0);
    if timeout.is_zero() {
        return Err(invalid("timeout", "must be more than 0".into()));
    }
    // A push that outlives its resend interval would overlap the next one.
    let timeout = timeout.min(resend_interval);
    let auth = match (&am.username, &am.password_file, &am.bearer_token_file) {
        (None, None, None) => AlertmanagerAuth::None,
        (Some(u), p, None) => AlertmanagerAuth::Basic {
            username: u.clone(),
            password_file: p.clone(),
        },
        (None, None, Some(t)) => AlertmanagerAuth::Bearer {
            token_file: t.clone(),
        },
        (None, Some(_), _) => {
            return Err(invalid(
                "password_file",
                "set alertmanager.username too (basic authentication)".into(),
            ));
        }
        (Some(_), _, Some(_)) => {
            return Err(invalid(
                "bearer_token_file",
                "use either basic authentication (username) or a bearer token, not both".into(),
            ));
        }
    };
    Ok(AlertmanagerSettings {
        urls,
        resend_interval,
        timeout,
        auth,
        tls_ca: am.tls.as_ref().and_then(|t| t.ca.clone()),
    })
}

/// `[http]`, and `--web.max-connections` over its `max_connections`.
fn http_limits(
    http: &HttpFileConfig,
    max_connections: Option<usize>,
    origin: &str,
) -> Result<crate::web::Limits, Error> {
    let invalid = |key: &str, message: &str| Error::ConfigInvalid {
        origin: origin.to_owned(),
        key: key.to_owned(),
        message: message.to_owned(),
    };
    let defaults = crate::web::Limits::default();
    let limits = crate::web::Limits {
        max_connections: max_connections
            .or(http.max_connections)
            .unwrap_or(defaults.max_connections),
        header_read_timeout: http
            .header_read_timeout
            .map_or(defaults.header_read_timeout, |d| d.0),
        request_timeout: http
            .request_timeout
            .map_or(defaults.request_timeout, |d| d.0),
    };
    if limits.max_connections == 0 {
        return Err(invalid("http.max_connections", "must be at least 1"));
    }
    if limits.header_read_timeout < Duration::from_millis(100) {
        return Err(invalid(
            "http.header_read_timeout",
            "must be at least 100ms",
        ));
    }
    if limits.request_timeout < Duration::from_secs(1) {
        return Err(invalid("http.request_timeout", "must be at least 1s"));
    }
    Ok(limits)
}

/// `[mqtt.tls] cert` and `key`, both or neither, and only for a TLS broker.
fn mqtt_tls_client(
    m: &MqttConfig,
    url: &BrokerUrl,
    origin: &str,
    key: &str,
) -> Result<Option<ClientCertFiles>, Error> {
    let invalid = |k: &str, message: String| Error::ConfigInvalid {
        origin: origin.to_owned(),
        key: format!("{key}.tls.{k}"),
        message,
    };
    let Some(tls) = &m.tls else {
        return Ok(None);
    };
    let files = match (&tls.cert, &tls.key) {
        (None, None) => return Ok(None),
        (Some(cert), Some(k)) => ClientCertFiles {
            cert: cert.clone(),
            key: k.clone(),
        },
        (Some(_), None) => {
            return Err(invalid(
                "key",
                "is required with tls.cert (the certificate's private key)".into(),
            ));
        }
        (None, Some(_)) => {
            return Err(invalid(
                "cert",
                "is required with tls.key (the client certificate)".into(),
            ));
        }
    };
    if !url.tls {
        return Err(invalid(
            "cert",
            "a client certificate needs a TLS broker: url = \"mqtts://...\"".into(),
        ));
    }
    Ok(Some(files))
}

/// One external broker's settings from its `[mqtt]` (or `[[mqtt.brokers]]`) keys.
fn broker_settings(
    m: &MqttConfig,
    url: BrokerUrl,
    origin: &str,
    key: &str,
) -> Result<BrokerSettings, Error> {
    let invalid = |k: &str, message: String| Error::ConfigInvalid {
        origin: origin.to_owned(),
        key: format!("{key}.{k}"),
        message,
    };
    if let Some(id) = &m.client_id
        && (id.is_empty() || id.len() > 65_535)
    {
        return Err(invalid("client_id", "must be 1 to 65535 bytes".into()));
    }
    if m.password_file.is_some() && m.username.is_none() {
        return Err(invalid(
            "password_file",
            "set username too: MQTT sends a password only with a user name".into(),
        ));
    }
    let keep_alive = m.keep_alive.map_or(Duration::from_secs(30), |d| d.0);
    if keep_alive < Duration::from_secs(1) || keep_alive > Duration::from_secs(65_535) {
        return Err(invalid("keep_alive", "must be 1s to 65535s".into()));
    }
    let session_expiry = m.session_expiry.map_or(Duration::from_secs(3600), |d| d.0);
    if session_expiry.as_secs() > u64::from(u32::MAX) {
        return Err(invalid("session_expiry", "too long".into()));
    }
    let tls_client = mqtt_tls_client(m, &url, origin, key)?;
    let name = m.name.clone().unwrap_or_else(|| url.host.clone());
    if name.is_empty() || name.len() > 64 || name.chars().any(|c| c.is_control()) {
        return Err(invalid(
            "name",
            format!("{name:?}: 1 to 64 printable characters"),
        ));
    }
    Ok(BrokerSettings {
        name,
        key: key.to_owned(),
        v5: m.protocol != Some(MqttProtocol::V311),
        url,
        client_id: m.client_id.clone(),
        username: m.username.clone(),
        password_file: m.password_file.clone(),
        tls_ca: m.tls.as_ref().and_then(|t| t.ca.clone()),
        tls_client,
        keep_alive,
        session_expiry,
    })
}

impl Settings {
    /// Resolves the file plus command-line overrides; `origin` names the file in
    /// errors ("command line" for values that came from there).
    pub fn resolve(file: &FileConfig, o: &Overrides, origin: &str) -> Result<Self, Error> {
        let invalid = |origin: &str, key: &str, message: String| Error::ConfigInvalid {
            origin: origin.to_owned(),
            key: key.to_owned(),
            message,
        };
        let cli = "command line";
        let listen = match (o.listen, file.listen) {
            (Some(l), _) | (None, Some(l)) => l,
            (None, None) => DEFAULT_LISTEN
                .parse()
                .map_err(|e| invalid(origin, "listen", format!("{e}")))?,
        };
        let mqtt = file.mqtt.clone().unwrap_or_default();
        if mqtt.url.is_some() && !mqtt.brokers.is_empty() {
            return Err(invalid(
                origin,
                "mqtt.brokers",
                "set either mqtt.url (one broker) or [[mqtt.brokers]] (several), not both".into(),
            ));
        }
        let mut brokers = Vec::new();
        match (&o.mqtt_url, &mqtt.url) {
            (Some(u), _) => {
                let url = BrokerUrl::parse(u).map_err(|m| invalid(cli, "mqtt.url", m))?;
                brokers.push(broker_settings(&mqtt, url, origin, "mqtt")?);
            }
            (None, Some(u)) => {
                let url = BrokerUrl::parse(u).map_err(|m| invalid(origin, "mqtt.url", m))?;
                brokers.push(broker_settings(&mqtt, url, origin, "mqtt")?);
            }
            (None, None) if mqtt.brokers.is_empty() => {
                // Keys beside a missing url would be silently unused.
                if mqtt != MqttConfig::default() {
                    return Err(invalid(
                        origin,
                        "mqtt.url",
                        "set the broker's url (the other [mqtt] keys describe it)".into(),
                    ));
                }
            }
            (None, None) => {
                for (i, b) in mqtt.brokers.iter().enumerate() {
                    let key = format!("mqtt.brokers[{i}]");
                    if !b.brokers.is_empty() {
                        return Err(invalid(
                            origin,
                            &format!("{key}.brokers"),
                            "not here".into(),
                        ));
                    }
                    let url = b
                        .url
                        .as_deref()
                        .ok_or_else(|| invalid(origin, &format!("{key}.url"), "required".into()))?;
                    let url = BrokerUrl::parse(url)
                        .map_err(|m| invalid(origin, &format!("{key}.url"), m))?;
                    brokers.push(broker_settings(b, url, origin, &key)?);
                }
            }
        }
        let eb = &file.embedded_broker;
        let embedded_broker = if eb.enabled.unwrap_or(brokers.is_empty()) {
            Some(crate::broker::config::resolve(
                eb,
                o.embedded_v4,
                o.embedded_v5,
                origin,
            )?)
        } else {
            None
        };
        let embedded = embedded_broker.as_ref().map(|b| EmbeddedSettings {
            v4: b.listen_v4,
            v5: b.listen_v5,
            max_connections: b.max_connections,
        });
        let mut names: Vec<&str> = brokers.iter().map(|b| b.name.as_str()).collect();
        if embedded.is_some() {
            names.push(EMBEDDED_LINK);
        }
        names.sort_unstable();
        if let Some(w) = names.windows(2).find(|w| w[0] == w[1]) {
            return Err(invalid(
                origin,
                "mqtt.brokers",
                format!("two brokers are named {:?}: give each its own name", w[0]),
            ));
        }
        if embedded.is_none() && brokers.is_empty() {
            return Err(invalid(
                origin,
                "embedded_broker.enabled",
                "no broker to consume: enable the embedded broker or set mqtt.url".into(),
            ));
        }
        if brokers.len() + usize::from(embedded.is_some()) > usize::from(u8::MAX) {
            return Err(invalid(
                origin,
                "mqtt.brokers",
                "at most 255 brokers".into(),
            ));
        }
        let (share_group, group_origin) = match (&o.share_group, &file.share_group) {
            (Some(g), _) => (Some(g.clone()), cli),
            (None, Some(g)) => (Some(g.clone()), origin),
            (None, None) => (None, origin),
        };
        if let Some(g) = &share_group
            && (g.is_empty() || g.contains(['/', '+', '#']))
        {
            return Err(invalid(
                group_origin,
                "share_group",
                format!("{g:?} is not a share name: non-empty, without '/', '+' or '#'"),
            ));
        }
        let s = &file.state;
        let stale_factor = s.stale_factor.unwrap_or(3);
        if stale_factor == 0 {
            return Err(invalid(
                origin,
                "state.stale_factor",
                "must be at least 1".into(),
            ));
        }
        let missed = s.lost_after_missed_heartbeats.unwrap_or(3);
        if missed == 0 {
            return Err(invalid(
                origin,
                "state.lost_after_missed_heartbeats",
                "must be at least 1".into(),
            ));
        }
        let default_interval = s.default_interval.map_or(Duration::from_secs(60), |d| d.0);
        if default_interval.is_zero() {
            return Err(invalid(
                origin,
                "state.default_interval",
                "must be more than 0".into(),
            ));
        }
        // One startup grace: `[signals] startup_grace`. `[state] startup_grace` is
        // its older spelling, taken when the new one is left at its default.
        let mut signals = file.signals.clone();
        if let Some(g) = s.startup_grace {
            if signals.startup_grace != SignalsConfig::default().startup_grace
                && signals.startup_grace != g.0
            {
                return Err(invalid(
                    origin,
                    "state.startup_grace",
                    format!(
                        "is {:?} while signals.startup_grace is {:?}: there is one startup grace, \
                         set it in [signals] only",
                        g.0, signals.startup_grace
                    ),
                ));
            }
            signals.startup_grace = g.0;
        }
        let defaults = StateConfig::default();
        let max_series = s.max_series.unwrap_or(defaults.max_series);
        let positive = |key: &str, v: Option<usize>, default: usize| match v {
            Some(0) => Err(invalid(origin, key, "must be at least 1".into())),
            Some(n) => Ok(n),
            None => Ok(default),
        };
        let max_series_per_host = positive(
            "state.max_series_per_host",
            s.max_series_per_host,
            defaults.max_series_per_host,
        )?;
        let max_hosts = positive("state.max_hosts", s.max_hosts, defaults.max_hosts)?;
        let max_hosts_per_site = positive(
            "state.max_hosts_per_site",
            s.max_hosts_per_site,
            defaults.max_hosts_per_site,
        )?;
        let forget_after = s
            .forget_after
            .map_or(defaults.forget_after_ms, |d| millis(d.0));
        if forget_after < 60_000 {
            return Err(invalid(
                origin,
                "state.forget_after",
                "must be at least 1m".into(),
            ));
        }
        if let Err(errors) = file.signals.validate() {
            let mut errors = errors.into_iter();
            if let Some(first) = errors.next() {
                let more: Vec<String> = errors.map(|e| e.to_string()).collect();
                let message = if more.is_empty() {
                    first.message
                } else {
                    format!("{} (also: {})", first.message, more.join("; "))
                };
                return Err(invalid(origin, &format!("signals.{}", first.key), message));
            }
        }
        let (name, name_origin) = match (&o.name, &file.name) {
            (Some(n), _) => (Some(n.clone()), cli),
            (None, Some(n)) => (Some(n.clone()), origin),
            (None, None) => (None, origin),
        };
        if let Some(n) = &name {
            if let Err(e) = sitewatch_protocol::name::validate_name(n) {
                return Err(invalid(name_origin, "name", format!("{n:?} {e}")));
            }
            if !signals.topology.collectors.is_empty() && signals.topology.collector(n).is_none() {
                return Err(invalid(
                    name_origin,
                    "name",
                    format!("{n:?} is not one of [[signals.topology.collectors]]"),
                ));
            }
        } else if !signals.topology.collectors.is_empty() {
            return Err(invalid(
                origin,
                "name",
                "set this collector's name (or --name): [signals.topology] lists the collectors"
                    .into(),
            ));
        }
        let alertmanager = file
            .alertmanager
            .as_ref()
            .map(|am| alertmanager_settings(am, origin))
            .transpose()?;
        let state = StateConfig {
            stale_factor,
            default_interval_ms: millis(default_interval),
            max_series,
            max_series_per_host,
            max_hosts,
            max_hosts_per_site,
            forget_after_ms: forget_after,
            // Every collector of a share group sees only part of each agent's
            // sequence: a gap there is another collector's message.
            count_gaps: share_group.is_none(),
            rules: Rules {
                lost_after_missed_heartbeats: missed,
                default_interval_ms: millis(default_interval),
                heartbeat_needs_readings: share_group.is_some(),
            },
        };
        let (web_config_file, web_config_origin) = match (&o.web_config_file, &file.web_config_file)
        {
            (Some(p), _) => (Some(p.clone()), cli),
            (None, Some(p)) => (Some(p.clone()), origin),
            (None, None) => (None, origin),
        };
        let http = http_limits(&file.http, o.max_connections, origin)?;
        Ok(Settings {
            origin: origin.to_owned(),
            listen,
            web_config_file,
            web_config_origin: web_config_origin.to_owned(),
            http,
            embedded,
            embedded_broker,
            brokers,
            share_group,
            name,
            state,
            signals,
            alertmanager,
        })
    }

    /// Checks every file the settings name, for `check-config`: each exists, is a
    /// file (or, for a directory, is one and is writable) and can be read; the
    /// TLS files and the web config file (and the files it names) also parse.
    /// The error names the key, the path and what is wrong.
    pub fn check_files(&self) -> Result<(), Error> {
        if let Some(b) = &self.embedded_broker {
            b.check_files()?;
        }
        let mut files: Vec<(String, &Path)> = Vec::new();
        for b in &self.brokers {
            if let Some(p) = &b.password_file {
                files.push((format!("{}.password_file", b.key), p));
            }
            if let Some(p) = &b.tls_ca {
                files.push((format!("{}.tls.ca", b.key), p));
            }
            if let Some(c) = &b.tls_client {
                files.push((format!("{}.tls.cert", b.key), &c.cert));
                files.push((format!("{}.tls.key", b.key), &c.key));
            }
        }
        if let Some(am) = &self.alertmanager {
            match &am.auth {
                AlertmanagerAuth::Basic {
                    password_file: Some(p),
                    ..
                } => files.push(("alertmanager.password_file".into(), p)),
                AlertmanagerAuth::Bearer { token_file } => {
                    files.push(("alertmanager.bearer_token_file".into(), token_file))
                }
                _ => {}
            }
            if let Some(p) = &am.tls_ca {
                files.push(("alertmanager.tls.ca".into(), p));
            }
        }
        if let Some(p) = &self.web_config_file {
            files.push(("web_config_file".into(), p));
        }
        for (key, path) in files {
            crate::files::readable_file(path).map_err(|problem| Error::File {
                origin: if key == "web_config_file" {
                    self.web_config_origin.clone()
                } else {
                    self.origin.clone()
                },
                key: key.clone(),
                path: path.to_owned(),
                problem,
            })?;
        }
        for b in self.brokers.iter().filter(|b| b.url.tls) {
            crate::tls::mqtt_client_config(b.tls_ca.as_deref(), b.tls_client.as_ref()).map_err(
                |e| match e {
                    Error::Tls(m) => Error::Tls(format!("{}: {m}", self.origin)),
                    e => e,
                },
            )?;
        }
        for b in &self.brokers {
            if let Some(p) = &b.password_file {
                read_password(p)?;
            }
        }
        if let Some(am) = &self.alertmanager {
            am.read_secret()?;
        }
        self.web()?;
        Ok(())
    }

    /// The web configuration the HTTP side starts with: the file loaded, or
    /// open (plain HTTP, no credentials) without one.
    pub fn web(&self) -> Result<crate::web::WebSource, Error> {
        match &self.web_config_file {
            Some(path) => crate::web::WebSource::load(path).map_err(|error| Error::WebConfig {
                origin: self.web_config_origin.clone(),
                path: path.clone(),
                error,
            }),
            None => Ok(crate::web::WebSource::open()),
        }
    }
}

impl AlertmanagerSettings {
    /// The `Authorization` header value, secrets read from their files.
    pub fn read_secret(&self) -> Result<Option<String>, Error> {
        match &self.auth {
            AlertmanagerAuth::None => Ok(None),
            AlertmanagerAuth::Basic {
                username,
                password_file,
            } => {
                let password = match password_file {
                    Some(p) => {
                        read_secret_file(p, "the password file (alertmanager.password_file)")?
                    }
                    None => String::new(),
                };
                Ok(Some(format!(
                    "Basic {}",
                    base64(format!("{username}:{password}").as_bytes())
                )))
            }
            AlertmanagerAuth::Bearer { token_file } => {
                let token = read_secret_file(
                    token_file,
                    "the token file (alertmanager.bearer_token_file)",
                )?;
                Ok(Some(format!("Bearer {token}")))
            }
        }
    }
}

fn read_secret_file(path: &Path, what: &'static str) -> Result<String, Error> {
    let text = std::fs::read_to_string(path).map_err(|source| Error::FileRead {
        path: path.to_owned(),
        what,
        source,
    })?;
    Ok(text.trim_end_matches(['\n', '\r']).to_owned())
}

/// Standard base64 with padding (RFC 4648), for one basic-auth header: not worth
/// a dependency.
fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk.first().copied().unwrap_or(0),
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                let idx = (n >> (18 - 6 * i)) & 63;
                out.push(char::from(ALPHABET[idx as usize]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// Reads a password file, without its trailing newline.
pub fn read_password(path: &Path) -> Result<String, Error> {
    let text = std::fs::read_to_string(path).map_err(|source| Error::FileRead {
        path: path.to_owned(),
        what: "the password file (mqtt.password_file)",
        source,
    })?;
    Ok(text.trim_end_matches(['\n', '\r']).to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn resolve(text: &str) -> Result<Settings, Error> {
        let file = parse(Path::new("c.toml"), text)?;
        Settings::resolve(&file, &Overrides::default(), "c.toml")
    }

    #[test]
    fn empty_file_is_the_one_machine_default() {
        let s = resolve("").unwrap();
        assert_eq!(s.listen, "127.0.0.1:9184".parse().unwrap());
        assert_eq!(
            s.embedded,
            Some(EmbeddedSettings {
                v4: "127.0.0.1:1883".parse().unwrap(),
                v5: "127.0.0.1:1884".parse().unwrap(),
                max_connections: 10_000
            })
        );
        assert!(s.brokers.is_empty());
        assert_eq!(s.state.stale_factor, 3);
        assert_eq!(s.state.rules.lost_after_missed_heartbeats, 3);
        assert!(s.state.count_gaps);
    }

    #[test]
    fn the_documented_example_parses() {
        let doc = include_str!("config.rs");
        let example: String = doc
            .lines()
            .skip_while(|l| !l.starts_with("//! ```toml"))
            .skip(1)
            .take_while(|l| !l.starts_with("//! ```"))
            .map(|l| format!("{}\n", l.trim_start_matches("//!").trim_start_matches(' ')))
            .collect();
        let s = resolve(&example).unwrap();
        assert_eq!(s.embedded, None);
        assert_eq!(
            s.brokers[0].url,
            BrokerUrl {
                host: "mqtt.example.net".into(),
                port: 8883,
                tls: true
            }
        );
        assert_eq!(s.brokers[0].client_id.as_deref(), Some("collector-bj1"));
        assert!(s.brokers[0].v5);
        assert_eq!(s.signals.startup_grace, Duration::from_secs(30));
    }

    #[test]
    fn unknown_key_is_an_error_naming_file_and_key() {
        let e = resolve("[state]\nstale_factr = 3\n")
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("c.toml: "), "{e}");
        assert!(e.contains("stale_factr"), "{e}");
        let e = resolve("listen = 5").unwrap_err().to_string();
        assert!(e.contains("listen"), "{e}");
    }

    #[test]
    fn bad_values_name_their_key() {
        let e = resolve("[state]\nstartup_grace = \"soon\"\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("startup_grace") && e.contains("duration"), "{e}");
        let e = resolve("[state]\nstale_factor = 0\n")
            .unwrap_err()
            .to_string();
        assert_eq!(e, "c.toml: state.stale_factor: must be at least 1");
        let e = resolve("share_group = \"a/b\"").unwrap_err().to_string();
        assert!(e.starts_with("c.toml: share_group: "), "{e}");
        let e = resolve("[mqtt]\nurl = \"http://x\"\n")
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("c.toml: mqtt.url: "), "{e}");
    }

    #[test]
    fn signals_and_alertmanager_default_to_the_engine_defaults_and_no_push() {
        let s = resolve("").unwrap();
        assert_eq!(s.signals, SignalsConfig::default());
        assert_eq!(s.alertmanager, None);
    }

    #[test]
    fn signals_table_with_sites_and_maintenance_is_read() {
        let s = resolve(
            "[signals]\nstartup_grace = \"10s\"\n[signals.power]\ngenerator_start_grace = \"5s\"\n\
             [signals.sites.bj1]\nregion = \"cn-north\"\nexpected_hosts = [\"web-01\"]\n\
             [[signals.maintenance]]\nsite = \"bj1\"\nstart = 0\nend = 1\n",
        )
        .unwrap();
        assert_eq!(s.signals.startup_grace, Duration::from_secs(10));
        assert_eq!(
            s.signals.power.generator_start_grace,
            Duration::from_secs(5)
        );
        assert_eq!(s.signals.region_of("bj1"), Some("cn-north"));
        assert_eq!(s.signals.maintenance.len(), 1);
    }

    #[test]
    fn bad_signals_values_name_their_key() {
        // An unknown cause is an unknown key of [signals].
        let e = resolve("[signals.powr]\nenabled = true\n")
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("c.toml: ") && e.contains("powr"), "{e}");
        let e = resolve("[signals]\nclear_after = \"-5s\"\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("clear_after") && e.contains("duration"), "{e}");
        let e = resolve("[signals.network]\nlost_ratio = 2.0\n")
            .unwrap_err()
            .to_string();
        assert_eq!(
            e,
            "c.toml: signals.network.lost_ratio: must be above 0 and at most 1"
        );
    }

    #[test]
    fn alertmanager_table_is_validated_with_its_keys() {
        let s = resolve(
            "[alertmanager]\nurl = \"http://am:9093/\"\nurls = [\"https://am2:9093\"]\nresend_interval = \"45s\"\n",
        )
        .unwrap();
        let am = s.alertmanager.unwrap();
        assert_eq!(am.urls, ["http://am:9093", "https://am2:9093"]);
        assert_eq!(am.resend_interval, Duration::from_secs(45));
        assert_eq!(am.timeout, DEFAULT_ALERTMANAGER_TIMEOUT);
        assert_eq!(am.auth, AlertmanagerAuth::None);
        for (text, key) in [
            ("[alertmanager]\n", "alertmanager.url"),
            ("[alertmanager]\nurl = \"am:9093\"\n", "alertmanager.url"),
            (
                "[alertmanager]\nurls = [\"ftp://am\"]\n",
                "alertmanager.urls",
            ),
            (
                "[alertmanager]\nurl = \"http://am\"\nresend_interval = \"0s\"\n",
                "alertmanager.resend_interval",
            ),
            (
                "[alertmanager]\nurl = \"http://am\"\npassword_file = \"/p\"\n",
                "alertmanager.password_file",
            ),
        ] {
            let e = resolve(text).unwrap_err().to_string();
            assert!(e.starts_with(&format!("c.toml: {key}: ")), "{text}: {e}");
        }
        let e = resolve("[alertmanager]\nurl = \"http://am\"\ntimeout = \"soon\"\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("timeout") && e.contains("duration"), "{e}");
    }

    #[test]
    fn basic_auth_header_is_base64_of_user_and_password() {
        assert_eq!(
            base64(b"Aladdin:open sesame"),
            "QWxhZGRpbjpvcGVuIHNlc2FtZQ=="
        );
        assert_eq!(base64(b"a"), "YQ==");
        assert_eq!(base64(b"ab"), "YWI=");
        assert_eq!(base64(b"abc"), "YWJj");
    }

    #[test]
    fn command_line_overrides_the_file_and_is_named_in_errors() {
        let file = parse(Path::new("c.toml"), "listen = \"127.0.0.1:1\"").unwrap();
        let o = Overrides {
            listen: Some("127.0.0.1:2".parse().unwrap()),
            mqtt_url: Some("mqtt://[::1]".into()),
            share_group: Some("g".into()),
            ..Overrides::default()
        };
        let s = Settings::resolve(&file, &o, "c.toml").unwrap();
        assert_eq!(s.listen.port(), 2);
        assert_eq!(
            s.brokers[0].url,
            BrokerUrl {
                host: "::1".into(),
                port: 1883,
                tls: false
            }
        );
        assert!(!s.state.count_gaps);
        assert!(s.state.rules.heartbeat_needs_readings);
        let o = Overrides {
            mqtt_url: Some("mqtt://x:0".into()),
            ..Overrides::default()
        };
        let e = Settings::resolve(&file, &o, "c.toml")
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("command line: mqtt.url: "), "{e}");
    }

    #[test]
    fn several_brokers_are_paths_of_their_own_and_need_distinct_names() {
        let s = resolve(
            "[[mqtt.brokers]]\nurl = \"mqtts://broker.bj1:8883\"\nname = \"bj1\"\n\
             [[mqtt.brokers]]\nurl = \"mqtt://broker.sh1\"\nprotocol = \"3.1.1\"\n\
             [embedded_broker]\nenabled = true\n",
        )
        .unwrap();
        assert!(s.embedded.is_some());
        let names: Vec<_> = s.brokers.iter().map(|b| b.name.as_str()).collect();
        assert_eq!(names, ["bj1", "broker.sh1"]);
        assert!(s.brokers[0].v5 && !s.brokers[1].v5);
        for (text, key) in [
            (
                "[mqtt]\nurl = \"mqtt://a\"\n[[mqtt.brokers]]\nurl = \"mqtt://b\"\n",
                "mqtt.brokers",
            ),
            (
                "[[mqtt.brokers]]\nurl = \"mqtt://a\"\n[[mqtt.brokers]]\nurl = \"mqtt://a:1999\"\n",
                "mqtt.brokers",
            ),
            ("[[mqtt.brokers]]\nname = \"x\"\n", "mqtt.brokers[0].url"),
            ("[mqtt]\nusername = \"u\"\n", "mqtt.url"),
            (
                "[[mqtt.brokers]]\nurl = \"mqtt://a\"\nkeep_alive = \"0s\"\n",
                "mqtt.brokers[0].keep_alive",
            ),
        ] {
            let e = resolve(text).unwrap_err().to_string();
            assert!(e.starts_with(&format!("c.toml: {key}: ")), "{text}: {e}");
        }
    }

    #[test]
    fn one_startup_grace_with_the_old_spelling_accepted() {
        let s = resolve("[state]\nstartup_grace = \"12s\"\n").unwrap();
        assert_eq!(s.signals.startup_grace, Duration::from_secs(12));
        let e = resolve("[state]\nstartup_grace = \"12s\"\n[signals]\nstartup_grace = \"40s\"\n")
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("c.toml: state.startup_grace: "), "{e}");
    }

    #[test]
    fn a_client_certificate_needs_its_key_and_a_tls_broker() {
        let s = resolve(
            "[mqtt]\nurl = \"mqtts://b\"\n[mqtt.tls]\ncert = \"/c.pem\"\nkey = \"/c.key\"\n",
        )
        .unwrap();
        assert_eq!(
            s.brokers[0].tls_client,
            Some(ClientCertFiles {
                cert: "/c.pem".into(),
                key: "/c.key".into()
            })
        );
        for (text, key) in [
            (
                "[mqtt]\nurl = \"mqtts://b\"\n[mqtt.tls]\ncert = \"/c.pem\"\n",
                "mqtt.tls.key",
            ),
            (
                "[mqtt]\nurl = \"mqtts://b\"\n[mqtt.tls]\nkey = \"/c.key\"\n",
                "mqtt.tls.cert",
            ),
            (
                "[mqtt]\nurl = \"mqtt://b\"\n[mqtt.tls]\ncert = \"/c.pem\"\nkey = \"/c.key\"\n",
                "mqtt.tls.cert",
            ),
        ] {
            let e = resolve(text).unwrap_err().to_string();
            assert!(e.starts_with(&format!("c.toml: {key}: ")), "{text}: {e}");
        }
    }

    #[test]
    fn broker_urls() {
        assert_eq!(
            BrokerUrl::parse("mqtt://broker:1999").unwrap(),
            BrokerUrl {
                host: "broker".into(),
                port: 1999,
                tls: false
            }
        );
        assert_eq!(BrokerUrl::parse("mqtts://b/").unwrap().port, 8883);
        assert!(BrokerUrl::parse("broker:1883").is_err());
        assert!(BrokerUrl::parse("mqtt://u:p@b").is_err());
        assert!(BrokerUrl::parse("mqtt://b:x").is_err());
        assert!(BrokerUrl::parse("mqtt://:1883").is_err());
    }
}
