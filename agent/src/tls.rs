//! The rustls client configuration for `mqtts://`, and plain words for TLS failures.

use std::{io, path::Path, sync::Arc};

use rustls::{
    ClientConfig, RootCertStore,
    pki_types::{CertificateDer, PrivateKeyDer, pem::PemObject},
};

use crate::config::TlsConfig;

/// Why the TLS files could not be used.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("{path}: cannot read {what}: {source}")]
    Read {
        path: String,
        what: &'static str,
        source: rustls::pki_types::pem::Error,
    },
    #[error("{path}: holds no PEM certificate ({what})")]
    NoCertificate { path: String, what: &'static str },
    #[error("{path}: CA certificate rejected: {source}")]
    BadCa { path: String, source: rustls::Error },
    #[error("client certificate or key rejected: {0}")]
    BadClientAuth(rustls::Error),
    #[error("TLS setup: {0}")]
    Setup(rustls::Error),
}

impl TlsError {
    pub fn kind(&self) -> &'static str {
        match self {
            TlsError::Read { .. } => "read",
            TlsError::NoCertificate { .. } => "no_certificate",
            TlsError::BadCa { .. } => "bad_ca",
            TlsError::BadClientAuth(_) => "bad_client_auth",
            TlsError::Setup(_) => "setup",
        }
    }
}

fn certificates(path: &Path, what: &'static str) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let shown = path.display().to_string();
    let certs = CertificateDer::pem_file_iter(path)
        .and_then(|iter| iter.collect::<Result<Vec<_>, _>>())
        .map_err(|source| TlsError::Read {
            path: shown.clone(),
            what,
            source,
        })?;
    if certs.is_empty() {
        return Err(TlsError::NoCertificate { path: shown, what });
    }
    Ok(certs)
}

/// Builds the client configuration: trust only the configured CA, and present a
/// client certificate when one is configured.
pub fn client_config(tls: &TlsConfig) -> Result<Arc<ClientConfig>, TlsError> {
    let mut roots = RootCertStore::empty();
    for ca in certificates(&tls.ca, "CA certificate")? {
        roots.add(ca).map_err(|source| TlsError::BadCa {
            path: tls.ca.display().to_string(),
            source,
        })?;
    }
    let builder =
        ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .map_err(TlsError::Setup)?
            .with_root_certificates(roots);
    let config = match (&tls.cert, &tls.key) {
        (Some(cert), Some(key)) => {
            let chain = certificates(cert, "client certificate")?;
            let key = PrivateKeyDer::from_pem_file(key).map_err(|source| TlsError::Read {
                path: key.display().to_string(),
                what: "client key",
                source,
            })?;
            builder
                .with_client_auth_cert(chain, key)
                .map_err(TlsError::BadClientAuth)?
        }
        _ => builder.with_no_client_auth(),
    };
    Ok(Arc::new(config))
}

/// A server configuration from a PEM certificate chain and its key (the upsd
/// facade's STARTTLS).
pub fn server_config(cert: &Path, key: &Path) -> Result<Arc<rustls::ServerConfig>, TlsError> {
    let chain = certificates(cert, "server certificate")?;
    let key = PrivateKeyDer::from_pem_file(key).map_err(|source| TlsError::Read {
        path: key.display().to_string(),
        what: "server key",
        source,
    })?;
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(TlsError::Setup)?
    .with_no_client_auth()
    .with_single_cert(chain, key)
    .map_err(TlsError::BadClientAuth)?;
    Ok(Arc::new(config))
}

/// The rustls error behind a connection failure, if TLS is what failed.
pub fn rustls_cause<'a>(error: &'a (dyn std::error::Error + 'static)) -> Option<&'a rustls::Error> {
    let mut current: Option<&'a (dyn std::error::Error + 'static)> = Some(error);
    while let Some(e) = current {
        if let Some(tls) = e.downcast_ref::<rustls::Error>() {
            return Some(tls);
        }
        // tokio-rustls wraps the rustls error in an io::Error without exposing it
        // as `source()`; its payload is reachable through `get_ref`.
        if let Some(io) = e.downcast_ref::<io::Error>()
            && let Some(inner) = io.get_ref()
            && let Some(tls) = inner.downcast_ref::<rustls::Error>()
        {
            return Some(tls);
        }
        current = e.source();
    }
    None
}

/// A hint for the operator about a TLS failure.
pub fn hint(error: &rustls::Error) -> &'static str {
    match error {
        rustls::Error::InvalidCertificate(rustls::CertificateError::UnknownIssuer) => {
            "the broker's certificate is not signed by the CA in mqtt.tls.ca"
        }
        rustls::Error::InvalidCertificate(
            rustls::CertificateError::NotValidForName
            | rustls::CertificateError::NotValidForNameContext { .. },
        ) => "the broker's certificate does not name the host in mqtt.url",
        rustls::Error::InvalidCertificate(
            rustls::CertificateError::Expired | rustls::CertificateError::ExpiredContext { .. },
        ) => "the broker's certificate has expired (or this machine's clock is wrong)",
        rustls::Error::InvalidCertificate(_) => "the broker's certificate was rejected",
        rustls::Error::AlertReceived(_) => {
            "the broker refused the handshake (a client certificate it does not accept?)"
        }
        _ => "TLS handshake failed",
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use super::*;

    #[test]
    fn a_missing_ca_file_is_named_in_the_error() {
        let tls = TlsConfig {
            ca: "/nonexistent/ca.pem".into(),
            cert: None,
            key: None,
        };
        let e = client_config(&tls).unwrap_err();
        assert_eq!(e.kind(), "read");
        assert!(e.to_string().contains("/nonexistent/ca.pem"), "{e}");
    }

    #[test]
    fn a_ca_file_without_certificates_is_refused() {
        let mut f = tempfile::NamedTempFile::new().unwrap();
        writeln!(f, "not a certificate").unwrap();
        let tls = TlsConfig {
            ca: f.path().into(),
            cert: None,
            key: None,
        };
        let e = client_config(&tls).unwrap_err();
        assert_eq!(e.kind(), "no_certificate", "{e}");
        assert!(e.to_string().contains("holds no PEM certificate"), "{e}");
    }

    #[test]
    fn unknown_issuer_gets_a_plain_hint_through_the_io_wrapper() {
        let inner = rustls::Error::InvalidCertificate(rustls::CertificateError::UnknownIssuer);
        let io = io::Error::new(io::ErrorKind::InvalidData, inner);
        let cause = rustls_cause(&io).unwrap();
        assert!(hint(cause).contains("mqtt.tls.ca"));
    }
}
