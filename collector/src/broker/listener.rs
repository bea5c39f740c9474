//! Listeners: TCP accept (plain and TLS), the connection limit, the CONNECT
//! deadline (TLS handshake included), and the client certificate's CN.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::TlsAcceptor;

use super::Core;
use super::cert;
use super::config::TlsFiles;
use super::session::{self, Peer};
use crate::Error;

/// Binds a listener; the error names the address.
pub async fn bind(addr: SocketAddr) -> Result<TcpListener, Error> {
    TcpListener::bind(addr)
        .await
        .map_err(|source| Error::Listen { addr, source })
}

fn tls_error(path: &std::path::Path, what: &str, e: impl std::fmt::Display) -> Error {
    Error::Tls(format!("{}: {what}: {e}", path.display()))
}

/// Builds the TLS listener's configuration (rustls on ring); errors name the file.
pub fn tls_acceptor(files: &TlsFiles) -> Result<TlsAcceptor, Error> {
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&files.cert)
        .map_err(|e| tls_error(&files.cert, "embedded_broker.tls.cert", e))?
        .collect::<Result<_, _>>()
        .map_err(|e| tls_error(&files.cert, "embedded_broker.tls.cert", e))?;
    if certs.is_empty() {
        return Err(tls_error(
            &files.cert,
            "embedded_broker.tls.cert",
            "no certificate in the file",
        ));
    }
    let key = PrivateKeyDer::from_pem_file(&files.key)
        .map_err(|e| tls_error(&files.key, "embedded_broker.tls.key", e))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ServerConfig::builder_with_provider(Arc::clone(&provider))
        .with_safe_default_protocol_versions()
        .map_err(|e| Error::Tls(e.to_string()))?;
    let builder = match &files.client_ca {
        None => builder.with_no_client_auth(),
        Some(ca) => {
            let what = "embedded_broker.tls.client_ca";
            let mut roots = rustls::RootCertStore::empty();
            for c in CertificateDer::pem_file_iter(ca).map_err(|e| tls_error(ca, what, e))? {
                roots
                    .add(c.map_err(|e| tls_error(ca, what, e))?)
                    .map_err(|e| tls_error(ca, what, e))?;
            }
            if roots.is_empty() {
                return Err(tls_error(ca, what, "no CA certificate in the file"));
            }
            let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
                Arc::new(roots),
                provider,
            );
            let verifier = if files.require_certificate {
                verifier
            } else {
                verifier.allow_unauthenticated()
            };
            let verifier = verifier.build().map_err(|e| tls_error(ca, what, e))?;
            builder.with_client_cert_verifier(verifier)
        }
    };
    let config = builder
        .with_single_cert(certs, key)
        .map_err(|e| tls_error(&files.key, "embedded_broker.tls.key", e))?;
    Ok(TlsAcceptor::from(Arc::new(config)))
}

/// Decrements the connection count when a connection's task ends.
struct Counted(Arc<Core>);

impl Drop for Counted {
    fn drop(&mut self) {
        self.0.metrics.connections.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Accepts until the broker shuts down.
pub async fn accept_loop(
    core: Arc<Core>,
    listener: TcpListener,
    name: &'static str,
    tls: Option<TlsAcceptor>,
) {
    let mut shutdown = core.shutdown.subscribe();
    loop {
        let accepted = tokio::select! {
            r = listener.accept() => r,
            _ = shutdown.changed() => return,
        };
        let (stream, addr) = match accepted {
            Ok(x) => x,
            Err(e) => {
                // Out of file descriptors and the like: wait a moment, go on.
                if let Some(suppressed) = core.metrics.should_log("accept_error") {
                    tracing::error!(listener = name, error = %e, suppressed, "cannot accept");
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let open = core.metrics.connections.load(Ordering::Relaxed);
        if usize::try_from(open).unwrap_or(0) >= core.config.max_connections {
            core.metrics.connects.inc("max_connections");
            if let Some(suppressed) = core.metrics.should_log("max_connections") {
                tracing::warn!(
                    listener = name,
                    max_connections = core.config.max_connections,
                    suppressed,
                    "connection refused: max_connections reached"
                );
            }
            continue;
        }
        core.metrics.connections.fetch_add(1, Ordering::Relaxed);
        let _ = stream.set_nodelay(true);
        let core = Arc::clone(&core);
        let tls = tls.clone();
        tokio::spawn(async move {
            let counted = Counted(Arc::clone(&core));
            let deadline = tokio::time::Instant::now() + core.config.connect_timeout;
            let peer = Peer {
                addr,
                listener: name,
                certificate: None,
            };
            match tls {
                None => session::serve(Arc::clone(&core), stream, peer, deadline).await,
                Some(acceptor) => serve_tls(core, acceptor, stream, peer, deadline).await,
            }
            drop(counted);
        });
    }
}

async fn serve_tls(
    core: Arc<Core>,
    acceptor: TlsAcceptor,
    stream: TcpStream,
    mut peer: Peer,
    deadline: tokio::time::Instant,
) {
    let tls = match tokio::time::timeout_at(deadline, acceptor.accept(stream)).await {
        Ok(Ok(s)) => s,
        Ok(Err(e)) => {
            core.metrics.connects.inc("tls_error");
            if let Some(suppressed) = core.metrics.should_log("tls_error") {
                tracing::warn!(peer = %peer.addr, error = %e, suppressed, "TLS handshake failed");
            }
            return;
        }
        Err(_) => {
            core.metrics.connects.inc("timeout");
            return;
        }
    };
    if let Some(end_entity) = tls.get_ref().1.peer_certificates().and_then(|c| c.first()) {
        match cert::subject_common_name(end_entity) {
            Ok(cn) => peer.certificate = Some(cn),
            Err(e) => {
                core.metrics.connects.inc("bad_credentials");
                if let Some(suppressed) = core.metrics.should_log("certificate_identity") {
                    tracing::warn!(peer = %peer.addr, error = %e, suppressed, "client certificate without a usable identity");
                }
                return;
            }
        }
    }
    session::serve(core, tls, peer, deadline).await;
}
