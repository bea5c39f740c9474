//! PEM files to rustls (ring, as everywhere in the workspace): the client
//! configuration of `mqtts://` links (`[mqtt.tls]`: the CA to trust and, for
//! brokers that require one, the collector's client certificate) and the certificate and key readers the HTTP side
//! (`web::tls`) shares. Every error names the configuration key and the file.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

use crate::Error;

/// A client certificate chain and its private key (PEM files).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientCertFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
}

/// The certificates of a PEM file; `key` names the configuration key in errors.
/// A file with no certificate in it is an error, not an empty list.
pub fn read_certs(path: &Path, key: &str) -> Result<Vec<CertificateDer<'static>>, Error> {
    let certs = CertificateDer::pem_file_iter(path)
        .and_then(|iter| iter.collect::<Result<Vec<_>, _>>())
        .map_err(|e| Error::Tls(format!("{key}: {}: {e}", path.display())))?;
    if certs.is_empty() {
        return Err(Error::Tls(format!(
            "{key}: {}: holds no PEM certificate",
            path.display()
        )));
    }
    Ok(certs)
}

/// The private key of a PEM file (PKCS#8, PKCS#1 or SEC1).
pub fn read_key(path: &Path, key: &str) -> Result<PrivateKeyDer<'static>, Error> {
    PrivateKeyDer::from_pem_file(path).map_err(|e| {
        Error::Tls(format!(
            "{key}: {}: no usable private key: {e}",
            path.display()
        ))
    })
}

/// A root store of the CAs in a PEM file.
pub fn read_roots(path: &Path, key: &str) -> Result<rustls::RootCertStore, Error> {
    let mut roots = rustls::RootCertStore::empty();
    for cert in read_certs(path, key)? {
        roots
            .add(cert)
            .map_err(|e| Error::Tls(format!("{key}: {}: {e}", path.display())))?;
    }
    Ok(roots)
}

/// The ring provider, as everywhere in the workspace.
pub fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// The consumer's TLS client configuration: trust `ca` (default: the system's
/// roots) and present `client` when the broker asks for a certificate (mosquitto
/// with `require_certificate true`, where the certificate's CN is the collector's
/// identity for the ACL).
pub fn mqtt_client_config(
    ca: Option<&Path>,
    client: Option<&ClientCertFiles>,
) -> Result<Arc<rustls::ClientConfig>, Error> {
    let roots = match ca {
        Some(path) => read_roots(path, "mqtt.tls.ca")?,
        None => {
            let mut roots = rustls::RootCertStore::empty();
            for cert in rustls_native_certs::load_native_certs().certs {
                // One unusable system certificate must not prevent using the others.
                let _ = roots.add(cert);
            }
            roots
        }
    };
    if roots.is_empty() {
        return Err(Error::Tls(
            "no CA certificate to trust: set mqtt.tls.ca".into(),
        ));
    }
    let builder = rustls::ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| Error::Tls(e.to_string()))?
        .with_root_certificates(roots);
    let config = match client {
        Some(files) => {
            let chain = read_certs(&files.cert, "mqtt.tls.cert")?;
            let key = read_key(&files.key, "mqtt.tls.key")?;
            builder.with_client_auth_cert(chain, key).map_err(|e| {
                Error::Tls(format!(
                    "mqtt.tls.cert/key: {} and {} do not make a client certificate: {e}",
                    files.cert.display(),
                    files.key.display()
                ))
            })?
        }
        None => builder.with_no_client_auth(),
    };
    Ok(Arc::new(config))
}

/// The transport of a TLS link: [`mqtt_client_config`] for rumqttc.
pub fn transport(
    ca: Option<&Path>,
    client: Option<&ClientCertFiles>,
) -> Result<rumqttc::Transport, Error> {
    Ok(rumqttc::Transport::tls_with_config(
        rumqttc::TlsConfiguration::Rustls(mqtt_client_config(ca, client)?),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_client_certificate_names_its_key_and_file() {
        let dir = tempfile::tempdir().unwrap();
        let ca = dir.path().join("ca.pem");
        std::fs::write(&ca, "not a certificate\n").unwrap();
        let e = mqtt_client_config(Some(&ca), None).unwrap_err().to_string();
        assert!(
            e.contains("mqtt.tls.ca") && e.contains("holds no PEM certificate"),
            "{e}"
        );
        let files = ClientCertFiles {
            cert: dir.path().join("missing.pem"),
            key: dir.path().join("missing.key"),
        };
        let e = read_certs(&files.cert, "mqtt.tls.cert")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("mqtt.tls.cert") && e.contains("missing.pem"),
            "{e}"
        );
        let e = read_key(&files.key, "mqtt.tls.key")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("mqtt.tls.key") && e.contains("missing.key"),
            "{e}"
        );
    }
}
