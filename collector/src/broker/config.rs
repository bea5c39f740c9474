//! `[embedded_broker]`: the file's types and their validation into a
//! [`BrokerConfig`]. Errors name the file and the key.
//!
//! ```toml
//! [embedded_broker]
//! enabled = true                        # default: when no external broker is set
//! listen_v4 = "127.0.0.1:1883"          # MQTT 3.1.1 and 5 (the name is historical)
//! listen_v5 = "127.0.0.1:1884"          # MQTT 3.1.1 and 5; default: listen_v4's port + 1
//! listen_tls = "0.0.0.0:8883"           # TLS, MQTT 3.1.1 and 5; needs [embedded_broker.tls]
//! state_dir = "/var/lib/sitewatch/broker"   # retained messages survive a restart
//! max_connections = 10000
//! max_packet_bytes = 266240             # 256 KiB payload + 4 KiB headroom
//! max_queued_messages = 10000           # per network subscriber; more are dropped and counted
//! max_inflight = 100                    # unacknowledged QoS 1 deliveries per client
//!
//! [embedded_broker.tls]
//! cert = "/etc/sitewatch/broker.pem"
//! key = "/etc/sitewatch/broker.key"
//! client_ca = "/etc/sitewatch/agents-ca.pem"   # client certificates; the CN is the identity
//! require_certificate = true
//!
//! [embedded_broker.auth]
//! password_file = "/etc/sitewatch/broker.passwd"   # sitewatch-collector passwd / mosquitto_passwd
//! allow_anonymous = false               # default: true only while every listener is loopback
//! collectors = ["collector-bj1"]        # subscribe to anything, publish _signals and their own topics
//! readers = ["grafana"]                 # subscribe to anything, publish nothing
//! ```

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use super::acl::AclConfig;
use crate::Error;

/// The default MQTT listener.
pub const DEFAULT_LISTEN_V4: &str = "127.0.0.1:1883";
/// The contract's 256 KiB payload plus room for the topic and headers.
pub const DEFAULT_MAX_PACKET_BYTES: usize = 256 * 1024 + 4 * 1024;
pub const DEFAULT_MAX_CONNECTIONS: usize = 10_000;
pub const DEFAULT_MAX_QUEUED_MESSAGES: usize = 10_000;
pub const DEFAULT_MAX_INFLIGHT: u16 = 100;
/// Time from TCP accept (TLS handshake included) to a complete CONNECT.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// `[embedded_broker]` as written.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EmbeddedBrokerConfig {
    /// Run the embedded broker. Default: when no external broker is configured.
    /// With external brokers too, it is one more path (a collector that is its
    /// site's broker and also consumes the other site's).
    pub enabled: Option<bool>,
    /// A listener (default 127.0.0.1:1883); MQTT 3.1.1 and 5.
    pub listen_v4: Option<SocketAddr>,
    /// Another listener (default: `listen_v4`'s port + 1); MQTT 3.1.1 and 5.
    pub listen_v5: Option<SocketAddr>,
    /// A TLS listener (needs `[embedded_broker.tls]`).
    pub listen_tls: Option<SocketAddr>,
    /// Concurrent connections (default 10000).
    pub max_connections: Option<usize>,
    /// Largest packet accepted (default 266240).
    pub max_packet_bytes: Option<usize>,
    /// Messages queued per network subscriber before new ones are dropped
    /// (default 10000).
    pub max_queued_messages: Option<usize>,
    /// Unacknowledged QoS 1 deliveries per client (default 100).
    pub max_inflight: Option<u16>,
    /// Where the retained store is kept across restarts (default: nowhere).
    pub state_dir: Option<PathBuf>,
    pub tls: Option<BrokerTlsConfig>,
    #[serde(default)]
    pub auth: BrokerAuthConfig,
}

/// `[embedded_broker.tls]`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BrokerTlsConfig {
    /// The server certificate chain (PEM).
    pub cert: Option<PathBuf>,
    /// Its private key (PEM).
    pub key: Option<PathBuf>,
    /// CA(s) client certificates are verified against (PEM).
    pub client_ca: Option<PathBuf>,
    /// Refuse clients without a certificate (default false: they may use a
    /// password instead).
    pub require_certificate: Option<bool>,
}

/// `[embedded_broker.auth]`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BrokerAuthConfig {
    /// mosquitto_passwd's format.
    pub password_file: Option<PathBuf>,
    /// Let clients without credentials in, with full access.
    pub allow_anonymous: Option<bool>,
    #[serde(default)]
    pub collectors: Vec<String>,
    #[serde(default)]
    pub readers: Vec<String>,
}

/// The TLS listener's files.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
    pub client_ca: Option<PathBuf>,
    pub require_certificate: bool,
}

/// The embedded broker's validated configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BrokerConfig {
    pub listen_v4: SocketAddr,
    pub listen_v5: SocketAddr,
    pub listen_tls: Option<SocketAddr>,
    pub tls: Option<TlsFiles>,
    pub password_file: Option<PathBuf>,
    pub allow_anonymous: bool,
    pub acl: AclConfig,
    pub state_dir: Option<PathBuf>,
    pub max_connections: usize,
    pub max_packet_bytes: usize,
    pub max_queued_messages: usize,
    pub max_inflight: u16,
    pub connect_timeout: Duration,
}

impl BrokerConfig {
    /// Two plain listeners, anonymous access, every limit at its default: the
    /// one-machine setup (and a start for tests, which may use port 0).
    pub fn new(listen_v4: SocketAddr, listen_v5: SocketAddr) -> Self {
        BrokerConfig {
            listen_v4,
            listen_v5,
            listen_tls: None,
            tls: None,
            password_file: None,
            allow_anonymous: true,
            acl: AclConfig::default(),
            state_dir: None,
            max_connections: DEFAULT_MAX_CONNECTIONS,
            max_packet_bytes: DEFAULT_MAX_PACKET_BYTES,
            max_queued_messages: DEFAULT_MAX_QUEUED_MESSAGES,
            max_inflight: DEFAULT_MAX_INFLIGHT,
            connect_timeout: CONNECT_TIMEOUT,
        }
    }

    /// Every listener with its key name.
    pub fn listeners(&self) -> Vec<(&'static str, SocketAddr)> {
        let mut v = vec![("listen_v4", self.listen_v4), ("listen_v5", self.listen_v5)];
        if let Some(a) = self.listen_tls {
            v.push(("listen_tls", a));
        }
        v
    }

    /// Whether any listener is reachable from beyond this host.
    pub fn exposed(&self) -> Option<(&'static str, SocketAddr)> {
        self.listeners()
            .into_iter()
            .find(|(_, a)| !a.ip().is_loopback())
    }

    /// Checks what the configuration points at: the password file parses, the
    /// TLS files load, the state directory is (or can be made) writable.
    pub fn check_files(&self) -> Result<(), Error> {
        if let Some(p) = &self.password_file {
            super::auth::load(p)?;
        }
        if let Some(tls) = &self.tls {
            super::listener::tls_acceptor(tls)?;
        }
        if let Some(dir) = &self.state_dir {
            check_writable_dir(dir)?;
        }
        Ok(())
    }
}

/// The state directory: writable if it exists, else creatable (its nearest
/// existing ancestor writable). Named by key and path.
pub fn check_writable_dir(dir: &Path) -> Result<(), Error> {
    use nix::unistd::{AccessFlags, access};
    let fail = |message: String| Error::StateDir {
        path: dir.to_owned(),
        key: "embedded_broker.state_dir",
        message,
    };
    let mut probe = dir;
    loop {
        match std::fs::metadata(probe) {
            Ok(m) if m.is_dir() => {
                return access(probe, AccessFlags::W_OK | AccessFlags::X_OK).map_err(|e| {
                    if probe == dir {
                        fail(format!("not writable: {e}"))
                    } else {
                        fail(format!(
                            "does not exist and cannot be created: {} is not writable ({e})",
                            probe.display()
                        ))
                    }
                });
            }
            Ok(_) => {
                return Err(fail(format!("{} is not a directory", probe.display())));
            }
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::NotFound | std::io::ErrorKind::NotADirectory
                ) =>
            {
                probe = match probe.parent() {
                    Some(p) if !p.as_os_str().is_empty() => p,
                    _ => Path::new("."),
                };
            }
            Err(e) => return Err(fail(format!("cannot be read: {e}"))),
        }
    }
}

/// Validates `[embedded_broker]`, with the command line's listeners over the
/// file's. `origin` names the file in errors.
pub fn resolve(
    file: &EmbeddedBrokerConfig,
    v4_override: Option<SocketAddr>,
    v5_override: Option<SocketAddr>,
    origin: &str,
) -> Result<BrokerConfig, Error> {
    let invalid = |key: &str, message: String| Error::ConfigInvalid {
        origin: origin.to_owned(),
        key: format!(
            "embedded_broker{}{key}",
            if key.is_empty() { "" } else { "." }
        ),
        message,
    };
    let v4 = match (v4_override, file.listen_v4) {
        (Some(a), _) | (None, Some(a)) => a,
        (None, None) => DEFAULT_LISTEN_V4
            .parse()
            .map_err(|e| invalid("listen_v4", format!("{e}")))?,
    };
    let v5 = match (v5_override, file.listen_v5) {
        (Some(a), _) | (None, Some(a)) => a,
        (None, None) => {
            let port = v4.port().checked_add(1).ok_or_else(|| {
                invalid(
                    "listen_v5",
                    "listen_v4's port + 1 is past 65535: set listen_v5".into(),
                )
            })?;
            SocketAddr::new(v4.ip(), port)
        }
    };
    if v4.port() == 0 || v5.port() == 0 || file.listen_tls.is_some_and(|a| a.port() == 0) {
        return Err(invalid(
            "",
            "port 0 is not supported: the collector must know the port to connect to".into(),
        ));
    }
    if v4 == v5 {
        return Err(invalid("listen_v5", format!("{v5} is also listen_v4")));
    }
    if let Some(t) = file.listen_tls
        && (t == v4 || t == v5)
    {
        return Err(invalid(
            "listen_tls",
            format!("{t} is also a plain listener"),
        ));
    }
    let tls = match (&file.listen_tls, &file.tls) {
        (None, None) => None,
        (None, Some(_)) => {
            return Err(invalid(
                "listen_tls",
                "[embedded_broker.tls] is set but no listen_tls address to use it on".into(),
            ));
        }
        (Some(_), None) => {
            return Err(invalid(
                "tls",
                "listen_tls needs [embedded_broker.tls] cert and key".into(),
            ));
        }
        (Some(_), Some(t)) => {
            let cert = t.cert.clone().ok_or_else(|| {
                invalid("tls.cert", "the TLS listener needs a certificate".into())
            })?;
            let key = t
                .key
                .clone()
                .ok_or_else(|| invalid("tls.key", "the TLS listener needs a private key".into()))?;
            let require_certificate = t.require_certificate.unwrap_or(false);
            if require_certificate && t.client_ca.is_none() {
                return Err(invalid(
                    "tls.require_certificate",
                    "set tls.client_ca: client certificates are verified against it".into(),
                ));
            }
            Some(TlsFiles {
                cert,
                key,
                client_ca: t.client_ca.clone(),
                require_certificate,
            })
        }
    };
    let auth = &file.auth;
    let mut acl = AclConfig::default();
    for (key, names, set) in [
        ("auth.collectors", &auth.collectors, &mut acl.collectors),
        ("auth.readers", &auth.readers, &mut acl.readers),
    ] {
        for n in names {
            super::auth::check_user_name(n).map_err(|m| invalid(key, format!("{n:?}: {m}")))?;
            set.insert(n.clone());
        }
    }
    if let Some(both) = acl.collectors.intersection(&acl.readers).next() {
        return Err(invalid(
            "auth.readers",
            format!("{both:?} is also in collectors: one role per identity"),
        ));
    }
    let mut config = BrokerConfig {
        listen_v4: v4,
        listen_v5: v5,
        listen_tls: file.listen_tls,
        tls,
        password_file: auth.password_file.clone(),
        allow_anonymous: false,
        acl,
        state_dir: file.state_dir.clone(),
        max_connections: file.max_connections.unwrap_or(DEFAULT_MAX_CONNECTIONS),
        max_packet_bytes: file.max_packet_bytes.unwrap_or(DEFAULT_MAX_PACKET_BYTES),
        max_queued_messages: file
            .max_queued_messages
            .unwrap_or(DEFAULT_MAX_QUEUED_MESSAGES),
        max_inflight: file.max_inflight.unwrap_or(DEFAULT_MAX_INFLIGHT),
        connect_timeout: CONNECT_TIMEOUT,
    };
    if config.max_connections == 0 {
        return Err(invalid("max_connections", "must be at least 1".into()));
    }
    // MQTT's own limit is 268435455 (a 4-byte remaining length).
    if !(1024..=268_435_455).contains(&config.max_packet_bytes) {
        return Err(invalid(
            "max_packet_bytes",
            "must be 1024 to 268435455".into(),
        ));
    }
    if config.max_queued_messages == 0 {
        return Err(invalid("max_queued_messages", "must be at least 1".into()));
    }
    if config.max_inflight == 0 {
        return Err(invalid("max_inflight", "must be 1 to 65535".into()));
    }
    let authenticated = config.password_file.is_some()
        || config.tls.as_ref().is_some_and(|t| t.client_ca.is_some());
    config.allow_anonymous = match (auth.allow_anonymous, config.exposed()) {
        (Some(allow), _) => allow,
        (None, None) => !authenticated,
        (None, Some(_)) if authenticated => false,
        (None, Some((key, addr))) => {
            return Err(invalid(
                "auth",
                format!(
                    "{key} = {addr} is reachable beyond this host and no authentication is \
                     configured: set embedded_broker.auth.password_file (or listen_tls with \
                     embedded_broker.tls.client_ca), or allow_anonymous = true to let anyone \
                     who reaches it publish anything"
                ),
            ));
        }
    };
    if !config.allow_anonymous && !authenticated {
        return Err(invalid(
            "auth.allow_anonymous",
            "false with no password_file and no tls.client_ca: nobody could connect".into(),
        ));
    }
    Ok(config)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;

    fn names(set: &BTreeSet<String>) -> Vec<&str> {
        set.iter().map(String::as_str).collect()
    }

    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    struct F {
        embedded_broker: EmbeddedBrokerConfig,
    }

    fn parse_file(text: &str) -> Result<BrokerConfig, Error> {
        let f: F = toml::from_str(text).map_err(|e| Error::ConfigParse {
            path: "c.toml".into(),
            message: e.to_string(),
        })?;
        resolve(&f.embedded_broker, None, None, "c.toml")
    }

    fn parse(text: &str) -> Result<BrokerConfig, Error> {
        // The tests write [auth] for [embedded_broker.auth].
        let text = format!("\n{text}").replace("\n[", "\n[embedded_broker.");
        parse_file(&format!("[embedded_broker]{text}"))
    }

    #[test]
    fn defaults_are_the_loopback_one_machine_setup() {
        let c = parse("").unwrap();
        assert_eq!(c.listen_v4, "127.0.0.1:1883".parse().unwrap());
        assert_eq!(c.listen_v5, "127.0.0.1:1884".parse().unwrap());
        assert!(c.allow_anonymous, "loopback only: anonymous by default");
        assert_eq!(c.max_packet_bytes, 266_240);
        assert_eq!(c.state_dir, None);
        assert_eq!(c.exposed(), None);
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
        let c = parse_file(&example).unwrap();
        assert_eq!(c.listen_tls, Some("0.0.0.0:8883".parse().unwrap()));
        assert!(c.tls.as_ref().unwrap().require_certificate);
        assert!(!c.allow_anonymous);
        assert_eq!(names(&c.acl.collectors), ["collector-bj1"]);
        assert_eq!(names(&c.acl.readers), ["grafana"]);
    }

    #[test]
    fn anonymous_beyond_loopback_needs_to_be_asked_for() {
        let e = parse("listen_v4 = \"0.0.0.0:1883\"\n")
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with("c.toml: embedded_broker.auth: listen_v4 = 0.0.0.0:1883"),
            "{e}"
        );
        assert!(
            e.contains("password_file") && e.contains("allow_anonymous"),
            "{e}"
        );
        let c = parse("listen_v4 = \"0.0.0.0:1883\"\n[auth]\nallow_anonymous = true\n").unwrap();
        assert!(c.allow_anonymous);
        let c = parse("listen_v4 = \"0.0.0.0:1883\"\n[auth]\npassword_file = \"/p\"\n").unwrap();
        assert!(
            !c.allow_anonymous,
            "authentication configured: no anonymous"
        );
        let c = parse("[auth]\npassword_file = \"/p\"\n").unwrap();
        assert!(
            !c.allow_anonymous,
            "even on loopback once credentials exist"
        );
        let c = parse("[auth]\npassword_file = \"/p\"\nallow_anonymous = true\n").unwrap();
        assert!(c.allow_anonymous);
    }

    #[test]
    fn bad_values_name_their_key() {
        for (text, key) in [
            ("listen_tls = \"127.0.0.1:8883\"\n", "embedded_broker.tls"),
            (
                "[tls]\ncert = \"/c\"\nkey = \"/k\"\n",
                "embedded_broker.listen_tls",
            ),
            (
                "listen_tls = \"127.0.0.1:8883\"\n[tls]\nkey = \"/k\"\n",
                "embedded_broker.tls.cert",
            ),
            (
                "listen_tls = \"127.0.0.1:8883\"\n[tls]\ncert = \"/c\"\nkey = \"/k\"\nrequire_certificate = true\n",
                "embedded_broker.tls.require_certificate",
            ),
            (
                "listen_tls = \"127.0.0.1:1883\"\n[tls]\ncert = \"/c\"\nkey = \"/k\"\n",
                "embedded_broker.listen_tls",
            ),
            (
                "max_packet_bytes = 10\n",
                "embedded_broker.max_packet_bytes",
            ),
            ("max_inflight = 0\n", "embedded_broker.max_inflight"),
            (
                "max_queued_messages = 0\n",
                "embedded_broker.max_queued_messages",
            ),
            ("max_connections = 0\n", "embedded_broker.max_connections"),
            (
                "[auth]\ncollectors = [\"a:b\"]\n",
                "embedded_broker.auth.collectors",
            ),
            (
                "[auth]\ncollectors = [\"x\"]\nreaders = [\"x\"]\n",
                "embedded_broker.auth.readers",
            ),
            (
                "[auth]\nallow_anonymous = false\n",
                "embedded_broker.auth.allow_anonymous",
            ),
            ("listen_v4 = \"127.0.0.1:0\"\n", "embedded_broker"),
        ] {
            let e = parse(text).unwrap_err().to_string();
            assert!(e.starts_with(&format!("c.toml: {key}: ")), "{text}: {e}");
        }
        let e = parse("max_queued = 1\n").unwrap_err().to_string();
        assert!(e.contains("max_queued"), "{e}");
    }

    #[test]
    fn the_state_dir_check_names_what_is_wrong() {
        let dir = tempfile::tempdir().unwrap();
        assert!(check_writable_dir(dir.path()).is_ok());
        assert!(
            check_writable_dir(&dir.path().join("a/b")).is_ok(),
            "creatable"
        );
        let file = dir.path().join("f");
        std::fs::write(&file, "").unwrap();
        let e = check_writable_dir(&file.join("x")).unwrap_err().to_string();
        assert!(
            e.contains("embedded_broker.state_dir") && e.contains("not a directory"),
            "{e}"
        );
    }
}
