//! The web configuration file, in the Prometheus exporter toolkit's format
//! (`--web.config.file`, YAML): `tls_server_config`, `http_server_config`,
//! `basic_auth_users` (bcrypt hashes) and `rate_limit`. Unknown keys are errors,
//! as with the toolkit; relative paths are relative to the file's folder.
//!
//! [`load`] reads and checks everything the file names (certificates, keys, CA
//! files, every hash) and returns the [`Web`] the server runs with.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use axum::http::{HeaderName, HeaderValue};
use serde::Deserialize;

use super::auth::BasicAuth;

/// The file, as written.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebConfigFile {
    pub tls_server_config: Option<TlsServerConfig>,
    #[serde(default)]
    pub http_server_config: HttpServerConfig,
    /// User name -> bcrypt hash (`htpasswd -nBC 10 "" | tr -d ':\n'`).
    #[serde(default)]
    pub basic_auth_users: BTreeMap<String, String>,
    pub rate_limit: Option<RateLimitConfig>,
}

/// `tls_server_config`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsServerConfig {
    /// The server certificate (chain), inline PEM; or `cert_file`.
    pub cert: Option<String>,
    /// Its private key, inline PEM; or `key_file`.
    pub key: Option<String>,
    /// The CA(s) that sign client certificates, inline PEM; or `client_ca_file`.
    pub client_ca: Option<String>,
    pub cert_file: Option<PathBuf>,
    pub key_file: Option<PathBuf>,
    #[serde(default)]
    pub client_auth_type: ClientAuthType,
    pub client_ca_file: Option<PathBuf>,
    /// A verified client certificate must carry one of these DNS names or IP
    /// addresses among its subject alternative names.
    #[serde(default)]
    pub client_allowed_sans: Vec<String>,
    pub min_version: Option<TlsVersion>,
    pub max_version: Option<TlsVersion>,
    /// TLS 1.2 cipher suites by their Go names; TLS 1.3 suites are always on.
    #[serde(default)]
    pub cipher_suites: Vec<String>,
    /// Pick the suite by the server's order (default) rather than the client's.
    pub prefer_server_cipher_suites: Option<bool>,
    /// Key exchange groups by their Go names, in preference order.
    #[serde(default)]
    pub curve_preferences: Vec<String>,
}

/// `client_auth_type`: Go's `tls.ClientAuthType` names.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
pub enum ClientAuthType {
    /// No client certificate asked for.
    #[default]
    NoClientCert,
    /// Asked for, not required, not verified.
    RequestClientCert,
    /// Required, not verified.
    RequireAnyClientCert,
    /// Not required; verified against `client_ca_file` when given.
    VerifyClientCertIfGiven,
    /// Required and verified against `client_ca_file`: the one that authenticates.
    RequireAndVerifyClientCert,
}

impl ClientAuthType {
    /// Whether a presented certificate is checked against the client CA.
    pub fn verifies(self) -> bool {
        matches!(
            self,
            ClientAuthType::VerifyClientCertIfGiven | ClientAuthType::RequireAndVerifyClientCert
        )
    }

    /// Whether a client without a certificate is refused.
    pub fn requires(self) -> bool {
        matches!(
            self,
            ClientAuthType::RequireAnyClientCert | ClientAuthType::RequireAndVerifyClientCert
        )
    }
}

/// `min_version` / `max_version`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Deserialize)]
pub enum TlsVersion {
    TLS10,
    TLS11,
    TLS12,
    TLS13,
}

/// `http_server_config`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpServerConfig {
    /// Accepted for compatibility; the collector speaks HTTP/1.1 only (what
    /// Prometheus scrapes with), so `true` changes nothing.
    pub http2: Option<bool>,
    /// Security headers added to every response (the toolkit's five).
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
}

/// `rate_limit`: a token bucket over every request of the endpoint.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RateLimitConfig {
    /// Between two requests (a Go duration, `"1s"`); `"0s"` disables it.
    pub interval: String,
    pub burst: u32,
}

/// The headers `http_server_config.headers` may set, as the toolkit allows.
pub const ALLOWED_HEADERS: [&str; 5] = [
    "Content-Security-Policy",
    "X-Frame-Options",
    "X-Content-Type-Options",
    "X-XSS-Protection",
    "Strict-Transport-Security",
];

/// Something wrong in a web configuration file: the key and what.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{key}: {message}")]
pub struct WebConfigError {
    /// The YAML key path (`tls_server_config.cert_file`); empty for the file.
    pub key: String,
    pub message: String,
}

impl WebConfigError {
    pub fn new(key: impl Into<String>, message: impl Into<String>) -> Self {
        WebConfigError {
            key: key.into(),
            message: message.into(),
        }
    }
}

/// What the server runs with, everything read and checked.
#[derive(Debug, Clone)]
pub struct Web {
    /// TLS for every connection; `None`: plain HTTP.
    pub tls: Option<Arc<rustls::ServerConfig>>,
    /// Basic authentication for everything but the open paths; `None`: off.
    pub auth: Option<Arc<BasicAuth>>,
    /// Added to every response.
    pub headers: Vec<(HeaderName, HeaderValue)>,
    /// One request per `interval`, bursts of `burst`.
    pub rate_limit: Option<(Duration, u32)>,
    /// Every file read, for reloading when one changes.
    pub files: Vec<PathBuf>,
}

impl Web {
    /// No TLS, no authentication: what runs without a web config file.
    pub fn open() -> Self {
        Web {
            tls: None,
            auth: None,
            headers: Vec::new(),
            rate_limit: None,
            files: Vec::new(),
        }
    }
}

/// Reads, parses and checks a web configuration file and everything it names.
pub fn load(path: &Path) -> Result<Web, WebConfigError> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        WebConfigError::new("", format!("cannot read: {}", crate::files::describe(&e)))
    })?;
    let file = parse(&text)?;
    let dir = path.parent().unwrap_or(Path::new("."));
    let mut web = build(&file, dir)?;
    web.files.insert(0, path.to_owned());
    Ok(web)
}

/// Parses the YAML; an empty file is an empty configuration (no TLS, no auth).
pub fn parse(text: &str) -> Result<WebConfigFile, WebConfigError> {
    if text.lines().all(|l| {
        let l = l.trim();
        l.is_empty() || l.starts_with('#') || l == "---"
    }) {
        return Ok(WebConfigFile::default());
    }
    // serde-saphyr, not a libyaml binding: it is pure Rust, and a translated
    // libyaml in the binary is an embedded copy of a C library (lintian's
    // embedded-library error). Its messages name the field and the line and column.
    serde_saphyr::from_str(text).map_err(|e| WebConfigError::new("", e.to_string()))
}

/// Checks the parsed file and reads what it names (relative to `dir`).
pub fn build(file: &WebConfigFile, dir: &Path) -> Result<Web, WebConfigError> {
    let mut files = Vec::new();
    let tls = match &file.tls_server_config {
        Some(t) => Some(super::tls::server_config(t, dir, &mut files)?),
        None => None,
    };
    let auth = if file.basic_auth_users.is_empty() {
        None
    } else {
        Some(Arc::new(BasicAuth::new(&file.basic_auth_users)?))
    };
    let headers = headers(&file.http_server_config.headers)?;
    let rate_limit = match &file.rate_limit {
        None => None,
        Some(r) => {
            let interval = go_duration(&r.interval)
                .map_err(|m| WebConfigError::new("rate_limit.interval", m))?;
            if interval.is_zero() {
                None
            } else {
                if r.burst == 0 {
                    return Err(WebConfigError::new(
                        "rate_limit.burst",
                        "must be at least 1 (or set interval to 0 to turn rate limiting off)",
                    ));
                }
                Some((interval, r.burst))
            }
        }
    };
    Ok(Web {
        tls,
        auth,
        headers,
        rate_limit,
        files,
    })
}

/// A path from the file: relative ones are relative to its folder.
pub fn resolve(dir: &Path, path: &Path) -> PathBuf {
    if path.is_absolute() {
        path.to_owned()
    } else {
        dir.join(path)
    }
}

fn headers(
    configured: &BTreeMap<String, String>,
) -> Result<Vec<(HeaderName, HeaderValue)>, WebConfigError> {
    let mut out = Vec::new();
    for (name, value) in configured {
        let key = format!("http_server_config.headers.{name}");
        let Some(canonical) = ALLOWED_HEADERS
            .iter()
            .find(|h| h.eq_ignore_ascii_case(name))
        else {
            return Err(WebConfigError::new(
                key,
                format!("is not a header that may be set: one of {ALLOWED_HEADERS:?}"),
            ));
        };
        if value.is_empty() {
            // The toolkit leaves a blank header unset.
            continue;
        }
        let allowed: &[&str] = match *canonical {
            "X-Frame-Options" => &["deny", "sameorigin"],
            "X-Content-Type-Options" => &["nosniff"],
            _ => &[],
        };
        if !allowed.is_empty() && !allowed.iter().any(|a| a.eq_ignore_ascii_case(value)) {
            return Err(WebConfigError::new(
                key,
                format!("{value:?} is not one of {allowed:?}"),
            ));
        }
        let header_value = HeaderValue::from_str(value)
            .map_err(|_| WebConfigError::new(key.clone(), "is not a valid header value"))?;
        out.push((HeaderName::from_static(lower(canonical)), header_value));
    }
    Ok(out)
}

/// The lower-case form of one of [`ALLOWED_HEADERS`] (what `HeaderName` wants).
fn lower(canonical: &str) -> &'static str {
    match canonical {
        "Content-Security-Policy" => "content-security-policy",
        "X-Frame-Options" => "x-frame-options",
        "X-Content-Type-Options" => "x-content-type-options",
        "X-XSS-Protection" => "x-xss-protection",
        _ => "strict-transport-security",
    }
}

/// A Go duration (`"1s"`, `"500ms"`, `"1m30s"`, `"0"`).
fn go_duration(text: &str) -> Result<Duration, String> {
    if text.trim() == "0" {
        return Ok(Duration::ZERO);
    }
    humantime::parse_duration(text)
        .map_err(|e| format!("{text:?} is not a duration ({e}); write e.g. \"1s\""))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_shipped_example_parses_and_its_hash_is_bcrypt() {
        let f = parse(include_str!("../../config/web-config.example.yml")).unwrap();
        let tls = f.tls_server_config.as_ref().unwrap();
        assert_eq!(
            tls.cert_file.as_deref(),
            Some(Path::new("/etc/sitewatch/tls/collector.pem"))
        );
        assert_eq!(tls.client_auth_type, ClientAuthType::NoClientCert);
        assert_eq!(tls.min_version, Some(TlsVersion::TLS12));
        // Everything but the files it names checks out.
        let without_tls = WebConfigFile {
            tls_server_config: None,
            ..f
        };
        let web = build(&without_tls, Path::new(".")).unwrap();
        assert!(web.auth.is_some());
        assert_eq!(web.headers.len(), 2);
    }

    #[test]
    fn an_empty_file_is_no_tls_and_no_auth() {
        assert_eq!(parse("").unwrap(), WebConfigFile::default());
        assert_eq!(
            parse("# nothing yet\n---\n").unwrap(),
            WebConfigFile::default()
        );
        let web = build(&WebConfigFile::default(), Path::new(".")).unwrap();
        assert!(web.tls.is_none() && web.auth.is_none());
    }

    #[test]
    fn unknown_keys_are_refused_with_their_name() {
        let e = parse("tls_server_config:\n  cert_fil: x\n").unwrap_err();
        assert!(e.message.contains("cert_fil"), "{e}");
        let e = parse("basic_auth_user:\n  a: b\n").unwrap_err();
        assert!(e.message.contains("basic_auth_user"), "{e}");
        let e = parse("tls_server_config:\n  client_auth_type: RequireClientCert\n").unwrap_err();
        assert!(e.message.contains("RequireClientCert"), "{e}");
    }

    #[test]
    fn every_client_auth_type_parses() {
        for (name, verifies, requires) in [
            ("NoClientCert", false, false),
            ("RequestClientCert", false, false),
            ("RequireAnyClientCert", false, true),
            ("VerifyClientCertIfGiven", true, false),
            ("RequireAndVerifyClientCert", true, true),
        ] {
            let f = parse(&format!("tls_server_config:\n  client_auth_type: {name}\n")).unwrap();
            let t = f.tls_server_config.unwrap().client_auth_type;
            assert_eq!((t.verifies(), t.requires()), (verifies, requires), "{name}");
        }
    }

    #[test]
    fn headers_are_the_toolkits_five_with_their_values_checked() {
        let f = parse(
            "http_server_config:\n  headers:\n    X-Frame-Options: deny\n    \
             Strict-Transport-Security: max-age=31536000\n    X-XSS-Protection: ''\n",
        )
        .unwrap();
        let web = build(&f, Path::new(".")).unwrap();
        let names: Vec<&str> = web.headers.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names, ["strict-transport-security", "x-frame-options"]);
        let f = parse("http_server_config:\n  headers:\n    X-Frame-Options: allow\n").unwrap();
        let e = build(&f, Path::new(".")).unwrap_err();
        assert_eq!(e.key, "http_server_config.headers.X-Frame-Options");
        let f = parse("http_server_config:\n  headers:\n    Server: sitewatch\n").unwrap();
        let e = build(&f, Path::new(".")).unwrap_err();
        assert!(e.message.contains("not a header that may be set"), "{e}");
    }

    #[test]
    fn rate_limit_takes_go_durations_and_zero_turns_it_off() {
        let f = parse("rate_limit:\n  interval: 1m30s\n  burst: 20\n").unwrap();
        let web = build(&f, Path::new(".")).unwrap();
        assert_eq!(web.rate_limit, Some((Duration::from_secs(90), 20)));
        let f = parse("rate_limit:\n  interval: 0s\n  burst: 0\n").unwrap();
        assert_eq!(build(&f, Path::new(".")).unwrap().rate_limit, None);
        let f = parse("rate_limit:\n  interval: soon\n  burst: 1\n").unwrap();
        assert_eq!(
            build(&f, Path::new(".")).unwrap_err().key,
            "rate_limit.interval"
        );
    }

    #[test]
    fn a_bad_hash_names_its_user() {
        let f = parse("basic_auth_users:\n  alice: not-a-hash\n").unwrap();
        let e = build(&f, Path::new(".")).unwrap_err();
        assert_eq!(e.key, "basic_auth_users.alice");
    }
}
