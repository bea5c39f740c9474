//! `tls_server_config` to a rustls server configuration: the certificate and
//! key, the five client authentication policies, versions, cipher suites and
//! key exchange groups by their Go names, and the allowed client SANs.
//!
//! rustls speaks TLS 1.2 and 1.3 only, with ECDHE and AEAD suites: a
//! `min_version` of TLS10 or TLS11 still means TLS 1.2 at least, and a Go
//! suite or curve rustls does not implement is refused by name.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::client::danger::HandshakeSignatureValid;
use rustls::crypto::CryptoProvider;
use rustls::crypto::ring::{cipher_suite, kx_group};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::server::WebPkiClientVerifier;
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::{DigitallySignedStruct, DistinguishedName, SignatureScheme, SupportedCipherSuite};

use super::config::{ClientAuthType, TlsServerConfig, TlsVersion, WebConfigError, resolve};

const KEY: &str = "tls_server_config";

/// Builds the server configuration; every file read is added to `files`.
pub fn server_config(
    t: &TlsServerConfig,
    dir: &Path,
    files: &mut Vec<PathBuf>,
) -> Result<Arc<rustls::ServerConfig>, WebConfigError> {
    let cert_pem = pem_source(
        t.cert.as_deref(),
        t.cert_file.as_deref(),
        "cert",
        dir,
        files,
    )?
    .ok_or_else(|| WebConfigError::new(format!("{KEY}.cert_file"), "is required"))?;
    let key_pem = pem_source(t.key.as_deref(), t.key_file.as_deref(), "key", dir, files)?
        .ok_or_else(|| WebConfigError::new(format!("{KEY}.key_file"), "is required"))?;
    let client_ca = pem_source(
        t.client_ca.as_deref(),
        t.client_ca_file.as_deref(),
        "client_ca",
        dir,
        files,
    )?;
    // Every file read first: one that is missing is said before one that
    // does not parse.
    let chain = certificates(&cert_pem)?;
    let key = PrivateKeyDer::from_pem_slice(&key_pem.bytes).map_err(|e| {
        WebConfigError::new(
            key_pem.key.clone(),
            format!("{}no usable private key: {e}", key_pem.shown()),
        )
    })?;

    let policy = t.client_auth_type;
    if client_ca.is_some() && policy == ClientAuthType::NoClientCert {
        return Err(WebConfigError::new(
            format!("{KEY}.client_ca_file"),
            "a client CA is configured but client_auth_type is NoClientCert: \
             set client_auth_type (RequireAndVerifyClientCert to authenticate clients)",
        ));
    }
    if policy.verifies() && client_ca.is_none() {
        return Err(WebConfigError::new(
            format!("{KEY}.client_ca_file"),
            format!("is required with client_auth_type {policy:?}"),
        ));
    }
    let allowed_sans = allowed_sans(&t.client_allowed_sans)?;
    if !allowed_sans.is_empty() && !policy.requires() {
        return Err(WebConfigError::new(
            format!("{KEY}.client_allowed_sans"),
            "needs client_auth_type RequireAnyClientCert or RequireAndVerifyClientCert \
             (the others let a client in without a certificate)",
        ));
    }

    let provider = Arc::new(provider(t)?);
    let versions = versions(t)?;
    let verifier = client_verifier(policy, client_ca.as_ref(), &provider, allowed_sans)?;
    let mut config = rustls::ServerConfig::builder_with_provider(Arc::clone(&provider))
        .with_protocol_versions(&versions)
        .map_err(|e| WebConfigError::new(KEY, e.to_string()))?
        .with_client_cert_verifier(verifier)
        .with_single_cert(chain, key)
        .map_err(|e| {
            WebConfigError::new(
                key_pem.key.clone(),
                format!(
                    "{}does not match the certificate of {}: {e}",
                    key_pem.shown(),
                    cert_pem.key
                ),
            )
        })?;
    config.ignore_client_order = t.prefer_server_cipher_suites.unwrap_or(true);
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// PEM text from an inline key or a file, with what to name in errors.
struct Pem {
    /// The configuration key it came from.
    key: String,
    /// The file, when it came from one.
    path: Option<PathBuf>,
    bytes: Vec<u8>,
}

impl Pem {
    /// `"<path>: "` for a file, nothing for inline PEM.
    fn shown(&self) -> String {
        self.path
            .as_ref()
            .map(|p| format!("{}: ", p.display()))
            .unwrap_or_default()
    }
}

fn pem_source(
    inline: Option<&str>,
    file: Option<&Path>,
    name: &str,
    dir: &Path,
    files: &mut Vec<PathBuf>,
) -> Result<Option<Pem>, WebConfigError> {
    match (inline, file) {
        (Some(_), Some(_)) => Err(WebConfigError::new(
            format!("{KEY}.{name}"),
            format!("{name} and {name}_file are mutually exclusive"),
        )),
        (Some(text), None) => Ok(Some(Pem {
            key: format!("{KEY}.{name}"),
            path: None,
            bytes: text.as_bytes().to_vec(),
        })),
        (None, Some(path)) => {
            let path = resolve(dir, path);
            let key = format!("{KEY}.{name}_file");
            let bytes = std::fs::read(&path).map_err(|e| {
                WebConfigError::new(
                    key.clone(),
                    format!("{}: {}", path.display(), crate::files::describe(&e)),
                )
            })?;
            files.push(path.clone());
            Ok(Some(Pem {
                key,
                path: Some(path),
                bytes,
            }))
        }
        (None, None) => Ok(None),
    }
}

fn certificates(pem: &Pem) -> Result<Vec<CertificateDer<'static>>, WebConfigError> {
    let certs = CertificateDer::pem_slice_iter(&pem.bytes)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| WebConfigError::new(pem.key.clone(), format!("{}{e}", pem.shown())))?;
    if certs.is_empty() {
        return Err(WebConfigError::new(
            pem.key.clone(),
            format!("{}holds no PEM certificate", pem.shown()),
        ));
    }
    Ok(certs)
}

/// The ring provider narrowed to the configured suites and groups.
fn provider(t: &TlsServerConfig) -> Result<CryptoProvider, WebConfigError> {
    let mut provider = rustls::crypto::ring::default_provider();
    if !t.cipher_suites.is_empty() {
        let mut tls12 = Vec::new();
        for name in &t.cipher_suites {
            match go_cipher_suite(name) {
                Some(Some(suite)) => tls12.push(suite),
                // A TLS 1.3 suite: always enabled, as in Go.
                Some(None) => {}
                None => {
                    return Err(WebConfigError::new(
                        format!("{KEY}.cipher_suites"),
                        format!(
                            "{name:?} is not offered (TLS 1.2 suites available: {})",
                            GO_TLS12_SUITES.join(", ")
                        ),
                    ));
                }
            }
        }
        let mut suites: Vec<SupportedCipherSuite> = provider
            .cipher_suites
            .iter()
            .copied()
            .filter(|s| s.tls13().is_some())
            .collect();
        suites.extend(tls12);
        provider.cipher_suites = suites;
    }
    if !t.curve_preferences.is_empty() {
        let mut groups = Vec::new();
        for name in &t.curve_preferences {
            let group = match name.as_str() {
                "X25519" => kx_group::X25519,
                "CurveP256" => kx_group::SECP256R1,
                "CurveP384" => kx_group::SECP384R1,
                other => {
                    return Err(WebConfigError::new(
                        format!("{KEY}.curve_preferences"),
                        format!("{other:?} is not offered (X25519, CurveP256, CurveP384)"),
                    ));
                }
            };
            groups.push(group);
        }
        provider.kx_groups = groups;
    }
    Ok(provider)
}

const GO_TLS12_SUITES: [&str; 6] = [
    "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256",
    "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384",
    "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256",
    "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256",
    "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384",
    "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256",
];

/// A Go cipher suite name: `Some(Some(suite))` for TLS 1.2, `Some(None)` for a
/// TLS 1.3 suite, `None` for one rustls does not implement.
fn go_cipher_suite(name: &str) -> Option<Option<SupportedCipherSuite>> {
    Some(Some(match name {
        "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256" => {
            cipher_suite::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256
        }
        "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384" => {
            cipher_suite::TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384
        }
        // Go has both spellings.
        "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305"
        | "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256" => {
            cipher_suite::TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256
        }
        "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256" => {
            cipher_suite::TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256
        }
        "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384" => {
            cipher_suite::TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384
        }
        "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305" | "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256" => {
            cipher_suite::TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256
        }
        "TLS_AES_128_GCM_SHA256" | "TLS_AES_256_GCM_SHA384" | "TLS_CHACHA20_POLY1305_SHA256" => {
            return Some(None);
        }
        _ => return None,
    }))
}

fn versions(
    t: &TlsServerConfig,
) -> Result<Vec<&'static rustls::SupportedProtocolVersion>, WebConfigError> {
    let min = t.min_version.unwrap_or(TlsVersion::TLS12);
    let max = t.max_version.unwrap_or(TlsVersion::TLS13);
    if max < TlsVersion::TLS12 {
        return Err(WebConfigError::new(
            format!("{KEY}.max_version"),
            "must be TLS12 or TLS13 (TLS 1.0 and 1.1 are not offered)",
        ));
    }
    if min > max {
        return Err(WebConfigError::new(
            format!("{KEY}.min_version"),
            format!("{min:?} is above max_version {max:?}"),
        ));
    }
    let mut versions = Vec::new();
    if min <= TlsVersion::TLS12 {
        versions.push(&rustls::version::TLS12);
    }
    if max == TlsVersion::TLS13 {
        versions.push(&rustls::version::TLS13);
    }
    if t.cipher_suites
        .iter()
        .all(|s| matches!(go_cipher_suite(s), Some(None)))
        && !t.cipher_suites.is_empty()
        && versions.contains(&&rustls::version::TLS12)
    {
        return Err(WebConfigError::new(
            format!("{KEY}.cipher_suites"),
            "names no TLS 1.2 suite while TLS 1.2 is allowed: add one, or set min_version: TLS13",
        ));
    }
    Ok(versions)
}

fn allowed_sans(sans: &[String]) -> Result<Vec<ServerName<'static>>, WebConfigError> {
    sans.iter()
        .map(|s| {
            ServerName::try_from(s.clone()).map_err(|_| {
                WebConfigError::new(
                    format!("{KEY}.client_allowed_sans"),
                    format!("{s:?}: only DNS names and IP addresses are matched"),
                )
            })
        })
        .collect()
}

fn client_verifier(
    policy: ClientAuthType,
    ca: Option<&Pem>,
    provider: &Arc<CryptoProvider>,
    allowed_sans: Vec<ServerName<'static>>,
) -> Result<Arc<dyn ClientCertVerifier>, WebConfigError> {
    let verifying = |ca: Option<&Pem>, optional: bool| {
        let ca =
            ca.ok_or_else(|| WebConfigError::new(format!("{KEY}.client_ca_file"), "is required"))?;
        let mut roots = rustls::RootCertStore::empty();
        for cert in certificates(ca)? {
            roots
                .add(cert)
                .map_err(|e| WebConfigError::new(ca.key.clone(), format!("{}{e}", ca.shown())))?;
        }
        let builder =
            WebPkiClientVerifier::builder_with_provider(Arc::new(roots), Arc::clone(provider));
        let builder = if optional {
            builder.allow_unauthenticated()
        } else {
            builder
        };
        builder
            .build()
            .map_err(|e| WebConfigError::new(ca.key.clone(), format!("{}{e}", ca.shown())))
    };
    let inner: Arc<dyn ClientCertVerifier> = match policy {
        ClientAuthType::NoClientCert => WebPkiClientVerifier::no_client_auth(),
        ClientAuthType::RequestClientCert => Arc::new(AnyCertificate {
            mandatory: false,
            provider: Arc::clone(provider),
        }),
        ClientAuthType::RequireAnyClientCert => Arc::new(AnyCertificate {
            mandatory: true,
            provider: Arc::clone(provider),
        }),
        ClientAuthType::VerifyClientCertIfGiven => verifying(ca, true)?,
        ClientAuthType::RequireAndVerifyClientCert => verifying(ca, false)?,
    };
    if allowed_sans.is_empty() {
        Ok(inner)
    } else {
        Ok(Arc::new(AllowedSans {
            inner,
            allowed: allowed_sans,
        }))
    }
}

/// `RequestClientCert` and `RequireAnyClientCert`: a certificate is asked for
/// and its handshake signature checked (the client holds its key), but its
/// chain is not: these policies authenticate nobody, as in Go.
#[derive(Debug)]
struct AnyCertificate {
    mandatory: bool,
    provider: Arc<CryptoProvider>,
}

impl ClientCertVerifier for AnyCertificate {
    fn client_auth_mandatory(&self) -> bool {
        self.mandatory
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        &[]
    }

    fn verify_client_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        Ok(ClientCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

/// `client_allowed_sans`: the inner policy first, then the end-entity
/// certificate must name one of the allowed DNS names or IP addresses.
#[derive(Debug)]
struct AllowedSans {
    inner: Arc<dyn ClientCertVerifier>,
    allowed: Vec<ServerName<'static>>,
}

impl ClientCertVerifier for AllowedSans {
    fn offer_client_auth(&self) -> bool {
        self.inner.offer_client_auth()
    }

    fn client_auth_mandatory(&self) -> bool {
        self.inner.client_auth_mandatory()
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        self.inner.root_hint_subjects()
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        let verified = self
            .inner
            .verify_client_cert(end_entity, intermediates, now)?;
        let cert = webpki::EndEntityCert::try_from(end_entity).map_err(|_| {
            rustls::Error::InvalidCertificate(rustls::CertificateError::BadEncoding)
        })?;
        if self
            .allowed
            .iter()
            .any(|name| cert.verify_is_valid_for_subject_name(name).is_ok())
        {
            Ok(verified)
        } else {
            Err(rustls::Error::InvalidCertificate(
                rustls::CertificateError::NotValidForName,
            ))
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}
