//! A small HTTP/1.1 client for Redfish services: keep-alive connections (one
//! per request in flight, up to the endpoint's concurrency), TLS through
//! rustls, `Content-Length` and chunked bodies, bounded header and body sizes,
//! a timeout on every request. Redfish needs nothing more (no redirects, no
//! compression, no HTTP/2), and this costs the agent far less than a general
//! client would.
//!
//! Trust: a CA file, a pinned certificate (SHA-256 of its DER), the system's
//! roots (no setting), or nothing checked (`insecure_skip_verify`).

use std::{
    path::Path,
    pin::Pin,
    sync::{
        Arc, Mutex,
        atomic::{AtomicU64, Ordering},
    },
    task::{Context, Poll},
    time::Duration,
};

use rustls::{
    ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme,
    client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier},
    crypto::{CryptoProvider, WebPkiSupportedAlgorithms},
    pki_types::{CertificateDer, ServerName, UnixTime, pem::PemObject},
};
use tokio::{
    io::{AsyncBufReadExt, AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufReader, ReadBuf},
    net::TcpStream,
    sync::Semaphore,
};

use super::config::Url;

/// The largest answer accepted (an expanded sensor collection of a big
/// chassis is a few hundred kB).
pub const MAX_BODY: usize = 16 * 1024 * 1024;
const MAX_HEADER_LINE: usize = 16 * 1024;
const MAX_HEADERS: usize = 100;

/// Why a request got no answer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HttpError {
    #[error("cannot connect: {0}")]
    Connect(String),
    #[error("TLS: {0}")]
    Tls(String),
    #[error("connection: {0}")]
    Io(String),
    #[error("no answer within {0:?}")]
    Timeout(Duration),
    #[error("malformed HTTP answer: {0}")]
    Malformed(String),
}

impl HttpError {
    pub fn kind(&self) -> &'static str {
        match self {
            HttpError::Connect(_) => "connect",
            HttpError::Tls(_) => "tls",
            HttpError::Io(_) => "io",
            HttpError::Timeout(_) => "timeout",
            HttpError::Malformed(_) => "malformed",
        }
    }
}

/// One answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Response {
    /// The first header of that name (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// The certificates of a PEM file, as trust roots.
pub fn roots(path: &Path) -> Result<RootCertStore, String> {
    let certs = CertificateDer::pem_file_iter(path)
        .and_then(|iter| iter.collect::<Result<Vec<_>, _>>())
        .map_err(|e| format!("cannot read PEM certificates: {e}"))?;
    if certs.is_empty() {
        return Err("holds no PEM certificate".into());
    }
    let mut store = RootCertStore::empty();
    for c in certs {
        store
            .add(c)
            .map_err(|e| format!("certificate rejected: {e}"))?;
    }
    Ok(store)
}

/// How the service's certificate is checked.
#[derive(Debug, Clone)]
pub enum Trust {
    /// The system's CA roots.
    System,
    /// The roots of a CA file.
    Roots(RootCertStore),
    /// Exactly this certificate (SHA-256 of its DER).
    Pinned([u8; 32]),
    /// Anything (`insecure_skip_verify`).
    Anything,
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Accepts the pinned certificate or, for [`Trust::Anything`], any; the
/// handshake's signature is still checked against the presented key.
#[derive(Debug)]
struct PinVerifier {
    pin: Option<[u8; 32]>,
    algorithms: WebPkiSupportedAlgorithms,
}

impl ServerCertVerifier for PinVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        match self.pin {
            None => Ok(ServerCertVerified::assertion()),
            Some(pin) => {
                let seen = ring::digest::digest(&ring::digest::SHA256, end_entity.as_ref());
                if seen.as_ref() == pin {
                    Ok(ServerCertVerified::assertion())
                } else {
                    Err(rustls::Error::General(format!(
                        "the certificate's SHA-256 is {}, not the pinned one",
                        hex(seen.as_ref())
                    )))
                }
            }
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

/// Lower-case hex with colons, as `openssl x509 -fingerprint` shows it.
pub fn hex(bytes: &[u8]) -> String {
    bytes
        .iter()
        .map(|b| format!("{b:02X}"))
        .collect::<Vec<_>>()
        .join(":")
}

/// The rustls configuration for a trust setting.
pub fn tls_config(trust: &Trust) -> Result<Arc<ClientConfig>, String> {
    let provider = provider();
    let algorithms = provider.signature_verification_algorithms;
    let builder = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS setup: {e}"))?;
    let config = match trust {
        Trust::System => {
            let mut store = RootCertStore::empty();
            let found = rustls_native_certs::load_native_certs();
            for c in found.certs {
                let _ = store.add(c);
            }
            if store.is_empty() {
                return Err(
                    "no system CA certificates found: set ca_file, pinned_sha256 or insecure_skip_verify"
                        .into(),
                );
            }
            builder.with_root_certificates(store).with_no_client_auth()
        }
        Trust::Roots(store) => builder
            .with_root_certificates(store.clone())
            .with_no_client_auth(),
        Trust::Pinned(pin) => builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(PinVerifier {
                pin: Some(*pin),
                algorithms,
            }))
            .with_no_client_auth(),
        Trust::Anything => builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(PinVerifier {
                pin: None,
                algorithms,
            }))
            .with_no_client_auth(),
    };
    Ok(Arc::new(config))
}

enum Stream {
    Plain(TcpStream),
    Tls(Box<tokio_rustls::client::TlsStream<TcpStream>>),
}

impl AsyncRead for Stream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_read(cx, buf),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Stream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_write(cx, buf),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_flush(cx),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_shutdown(cx),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }
}

type Conn = BufReader<Stream>;

/// The connections to one service.
pub struct Client {
    url: Url,
    authority: String,
    tls: Option<(tokio_rustls::TlsConnector, ServerName<'static>)>,
    idle: Mutex<Vec<Conn>>,
    permits: Semaphore,
    timeout: Duration,
    requests: AtomicU64,
    connects: AtomicU64,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("url", &self.url)
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

impl Client {
    pub fn new(
        url: Url,
        trust: &Trust,
        concurrency: usize,
        timeout: Duration,
    ) -> Result<Client, String> {
        let tls = if url.tls {
            let config = tls_config(trust)?;
            let name = ServerName::try_from(url.host.clone())
                .map_err(|e| format!("{:?} is not a TLS server name: {e}", url.host))?;
            Some((tokio_rustls::TlsConnector::from(config), name))
        } else {
            None
        };
        Ok(Client {
            authority: url.authority(),
            url,
            tls,
            idle: Mutex::new(Vec::new()),
            permits: Semaphore::new(concurrency.max(1)),
            timeout,
            requests: AtomicU64::new(0),
            connects: AtomicU64::new(0),
        })
    }

    /// Requests sent since start.
    pub fn requests(&self) -> u64 {
        self.requests.load(Ordering::Relaxed)
    }

    /// Connections opened since start.
    pub fn connects(&self) -> u64 {
        self.connects.load(Ordering::Relaxed)
    }

    async fn connect(&self) -> Result<Conn, HttpError> {
        self.connects.fetch_add(1, Ordering::Relaxed);
        let tcp = TcpStream::connect((self.url.host.as_str(), self.url.port))
            .await
            .map_err(|e| HttpError::Connect(format!("{}: {e}", self.authority)))?;
        let _ = tcp.set_nodelay(true);
        let stream = match &self.tls {
            None => Stream::Plain(tcp),
            Some((connector, name)) => {
                let tls = connector
                    .connect(name.clone(), tcp)
                    .await
                    .map_err(|e| HttpError::Tls(tls_words(&e)))?;
                Stream::Tls(Box::new(tls))
            }
        };
        Ok(BufReader::with_capacity(16 * 1024, stream))
    }

    /// Sends one request and reads its answer, within the request timeout
    /// and the endpoint's concurrency. A kept-alive connection the service
    /// closed meanwhile is replaced once.
    pub async fn send(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: Option<&[u8]>,
    ) -> Result<Response, HttpError> {
        let _permit = self
            .permits
            .acquire()
            .await
            .map_err(|_| HttpError::Io("client closed".into()))?;
        self.send_unlimited(method, path, headers, body).await
    }

    /// [`Client::send`] outside the concurrency limit: for the session
    /// deletes at shutdown, which must not wait for reads still in flight.
    pub async fn send_unlimited(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: Option<&[u8]>,
    ) -> Result<Response, HttpError> {
        let limit = self.timeout;
        tokio::time::timeout(limit, async {
            let reused = self.idle.lock().ok().and_then(|mut idle| idle.pop());
            if let Some(mut conn) = reused {
                self.requests.fetch_add(1, Ordering::Relaxed);
                match exchange(&mut conn, &self.authority, method, path, headers, body).await {
                    Ok((response, keep)) => {
                        self.put_back(conn, keep);
                        return Ok(response);
                    }
                    // The service closed the idle connection: try a new one.
                    Err(Failure::Stale) => {}
                    Err(Failure::Http(e)) => return Err(e),
                }
            }
            let mut conn = self.connect().await?;
            self.requests.fetch_add(1, Ordering::Relaxed);
            match exchange(&mut conn, &self.authority, method, path, headers, body).await {
                Ok((response, keep)) => {
                    self.put_back(conn, keep);
                    Ok(response)
                }
                Err(Failure::Stale) => Err(HttpError::Io(
                    "the service closed the connection without answering".into(),
                )),
                Err(Failure::Http(e)) => Err(e),
            }
        })
        .await
        .map_err(|_| HttpError::Timeout(limit))?
    }

    fn put_back(&self, conn: Conn, keep: bool) {
        if keep && let Ok(mut idle) = self.idle.lock() {
            idle.push(conn);
        }
    }

    /// Closes the idle connections (the next request opens a new one).
    pub fn close_idle(&self) {
        if let Ok(mut idle) = self.idle.lock() {
            idle.clear();
        }
    }
}

/// A long-lived answer read as it comes (an SSE stream): its status, its
/// headers, and its body in pieces.
pub struct BodyStream {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    conn: Conn,
    chunked: bool,
    /// Bytes left in the current chunk (chunked), or of the whole body
    /// (`Content-Length`); `None`: until the connection ends.
    left: Option<usize>,
    done: bool,
}

impl std::fmt::Debug for BodyStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BodyStream")
            .field("status", &self.status)
            .finish_non_exhaustive()
    }
}

impl BodyStream {
    /// The first header of that name (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The next bytes of the body, at most 16 KiB at a time; `None` at its end.
    pub async fn next(&mut self) -> Result<Option<Vec<u8>>, HttpError> {
        let r = self.next_inner().await;
        r.map_err(|f| match f {
            Failure::Stale => HttpError::Io("the service closed the stream".into()),
            Failure::Http(e) => e,
        })
    }

    async fn next_inner(&mut self) -> Result<Option<Vec<u8>>, Failure> {
        if self.done {
            return Ok(None);
        }
        if self.chunked && self.left.is_none_or(|n| n == 0) {
            if self.left == Some(0) {
                // The CRLF after a chunk's data.
                let end = read_line(&mut self.conn)
                    .await?
                    .ok_or_else(|| malformed("the chunked body ends early"))?;
                if !end.is_empty() {
                    return Err(malformed("a chunk longer than its size"));
                }
            }
            let line = read_line(&mut self.conn)
                .await?
                .ok_or_else(|| malformed("the chunked body ends early"))?;
            let size_text = line.split(';').next().unwrap_or("").trim();
            let size = usize::from_str_radix(size_text, 16)
                .map_err(|_| malformed(format!("chunk size {:?}", truncate(&line))))?;
            if size == 0 {
                self.done = true;
                return Ok(None);
            }
            self.left = Some(size);
        }
        if self.left == Some(0) {
            self.done = true;
            return Ok(None);
        }
        let available = match self.conn.fill_buf().await {
            Ok(a) => a,
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof && self.left.is_none() => {
                self.done = true;
                return Ok(None);
            }
            Err(e) => return Err(io(e)),
        };
        if available.is_empty() {
            self.done = true;
            return match self.left {
                None => Ok(None),
                Some(_) => Err(malformed("the stream ends inside a chunk")),
            };
        }
        let mut n = available.len().min(16 * 1024);
        if let Some(left) = self.left {
            n = n.min(left);
        }
        let bytes = available[..n].to_vec();
        self.conn.consume(n);
        if let Some(left) = &mut self.left {
            *left -= n;
        }
        Ok(Some(bytes))
    }
}

impl Client {
    /// Opens a long-lived GET on a connection of its own (outside the pool
    /// and the concurrency limit: it stays open), sending `headers`; the
    /// connection, the request and the answer's headers within the request
    /// timeout. The body is then read with [`BodyStream::next`].
    pub async fn open_stream(
        &self,
        path: &str,
        headers: &[(&str, &str)],
    ) -> Result<BodyStream, HttpError> {
        let limit = self.timeout;
        tokio::time::timeout(limit, async {
            let mut conn = self.connect().await?;
            self.requests.fetch_add(1, Ordering::Relaxed);
            let mut head = format!(
                "GET {path} HTTP/1.1\r\nHost: {}\r\nUser-Agent: sitewatch-agent\r\nAccept: text/event-stream\r\nCache-Control: no-cache\r\nOData-Version: 4.0\r\n",
                self.authority
            );
            for (k, v) in headers {
                head.push_str(&format!("{k}: {v}\r\n"));
            }
            head.push_str("\r\n");
            let stream = conn.get_mut();
            stream
                .write_all(head.as_bytes())
                .await
                .map_err(|e| HttpError::Io(e.to_string()))?;
            stream
                .flush()
                .await
                .map_err(|e| HttpError::Io(e.to_string()))?;
            let fail = |f: Failure| match f {
                Failure::Stale => HttpError::Io("the service closed the connection without answering".into()),
                Failure::Http(e) => e,
            };
            let status_line = read_line(&mut conn)
                .await
                .map_err(fail)?
                .ok_or_else(|| HttpError::Io("the service closed the connection without answering".into()))?;
            let mut parts = status_line.splitn(3, ' ');
            let version = parts.next().unwrap_or("");
            let status: u16 = parts
                .next()
                .and_then(|s| s.parse().ok())
                .filter(|s| (100..1000).contains(s) && version.starts_with("HTTP/1."))
                .ok_or_else(|| HttpError::Malformed(format!("status line {:?}", truncate(&status_line))))?;
            let mut response_headers = Vec::new();
            loop {
                let line = read_line(&mut conn)
                    .await
                    .map_err(fail)?
                    .ok_or_else(|| HttpError::Malformed("the headers end early".into()))?;
                if line.is_empty() {
                    break;
                }
                if response_headers.len() >= MAX_HEADERS {
                    return Err(HttpError::Malformed("too many headers".into()));
                }
                let (k, v) = line
                    .split_once(':')
                    .ok_or_else(|| HttpError::Malformed(format!("header line {:?}", truncate(&line))))?;
                response_headers.push((k.trim().to_owned(), v.trim().to_owned()));
            }
            let mut body = BodyStream {
                status,
                headers: response_headers,
                conn,
                chunked: false,
                left: None,
                done: false,
            };
            body.chunked = body
                .header("transfer-encoding")
                .is_some_and(|v| v.to_ascii_lowercase().contains("chunked"));
            if !body.chunked
                && let Some(v) = body.header("content-length")
            {
                let n = v
                    .parse::<usize>()
                    .map_err(|_| HttpError::Malformed(format!("Content-Length {v:?}")))?;
                body.left = Some(n);
            }
            Ok(body)
        })
        .await
        .map_err(|_| HttpError::Timeout(limit))?
    }
}

/// Plain words for the TLS failures an operator meets with BMCs.
fn tls_words(e: &std::io::Error) -> String {
    let text = e.to_string();
    if text.contains("UnknownIssuer") {
        format!(
            "{text} (the certificate is not signed by the configured CA: set ca_file to the BMC's CA or certificate, or pin it with pinned_sha256)"
        )
    } else if text.contains("CaUsedAsEndEntity") {
        format!(
            "{text} (the service presents a CA certificate as its own, as self-signed BMC certificates often do: pin it with pinned_sha256 instead of ca_file)"
        )
    } else if text.contains("NotValidForName") {
        format!(
            "{text} (the certificate does not name this host: use the name it was issued for, or pin it with pinned_sha256)"
        )
    } else if text.contains("Expired") {
        format!("{text} (the certificate has expired: renew it or pin it with pinned_sha256)")
    } else {
        text
    }
}

enum Failure {
    /// Nothing came back on a reused connection (closed by the peer).
    Stale,
    Http(HttpError),
}

fn io(e: std::io::Error) -> Failure {
    Failure::Http(HttpError::Io(e.to_string()))
}

fn malformed(what: impl Into<String>) -> Failure {
    Failure::Http(HttpError::Malformed(what.into()))
}

async fn exchange(
    conn: &mut Conn,
    authority: &str,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: Option<&[u8]>,
) -> Result<(Response, bool), Failure> {
    let mut head = format!(
        "{method} {path} HTTP/1.1\r\nHost: {authority}\r\nUser-Agent: sitewatch-agent\r\nAccept: application/json\r\nOData-Version: 4.0\r\n"
    );
    for (k, v) in headers {
        head.push_str(k);
        head.push_str(": ");
        head.push_str(v);
        head.push_str("\r\n");
    }
    if let Some(b) = body {
        head.push_str("Content-Type: application/json\r\n");
        head.push_str(&format!("Content-Length: {}\r\n", b.len()));
    }
    head.push_str("\r\n");
    let stream = conn.get_mut();
    let mut message = head.into_bytes();
    if let Some(b) = body {
        message.extend_from_slice(b);
    }
    if let Err(e) = stream.write_all(&message).await {
        return Err(match e.kind() {
            std::io::ErrorKind::BrokenPipe | std::io::ErrorKind::ConnectionReset => Failure::Stale,
            _ => io(e),
        });
    }
    stream.flush().await.map_err(io)?;
    let status_line = match read_line(conn).await {
        Ok(Some(line)) => line,
        Ok(None) => return Err(Failure::Stale),
        Err(Failure::Http(HttpError::Io(_))) => return Err(Failure::Stale),
        Err(e) => return Err(e),
    };
    let mut parts = status_line.splitn(3, ' ');
    let version = parts.next().unwrap_or("");
    let status: u16 = parts
        .next()
        .and_then(|s| s.parse().ok())
        .filter(|s| (100..1000).contains(s))
        .ok_or_else(|| malformed(format!("status line {:?}", truncate(&status_line))))?;
    if !version.starts_with("HTTP/1.") {
        return Err(malformed(format!(
            "status line {:?}",
            truncate(&status_line)
        )));
    }
    let mut keep = version == "HTTP/1.1";
    let mut response_headers = Vec::new();
    loop {
        let line = read_line(conn)
            .await?
            .ok_or_else(|| malformed("the headers end early"))?;
        if line.is_empty() {
            break;
        }
        if response_headers.len() >= MAX_HEADERS {
            return Err(malformed("too many headers"));
        }
        let (k, v) = line
            .split_once(':')
            .ok_or_else(|| malformed(format!("header line {:?}", truncate(&line))))?;
        response_headers.push((k.trim().to_owned(), v.trim().to_owned()));
    }
    let header = |name: &str| {
        response_headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    };
    if header("connection").is_some_and(|v| v.eq_ignore_ascii_case("close")) {
        keep = false;
    }
    let chunked =
        header("transfer-encoding").is_some_and(|v| v.to_ascii_lowercase().contains("chunked"));
    let length = match header("content-length") {
        Some(v) => Some(
            v.parse::<usize>()
                .map_err(|_| malformed(format!("Content-Length {v:?}")))?,
        ),
        None => None,
    };
    let no_body =
        method == "HEAD" || status == 204 || status == 304 || (100..200).contains(&status);
    let body = if no_body {
        Vec::new()
    } else if chunked {
        read_chunked(conn).await?
    } else if let Some(n) = length {
        if n > MAX_BODY {
            return Err(malformed(format!(
                "a body of {n} bytes (at most {MAX_BODY})"
            )));
        }
        let mut body = vec![0u8; n];
        conn.read_exact(&mut body).await.map_err(|e| {
            malformed(format!(
                "the body ends before its Content-Length of {n}: {e}"
            ))
        })?;
        body
    } else {
        // Delimited by the end of the connection (HTTP/1.0 servers). Many
        // close without TLS close_notify: that end is the end too (a cut
        // body shows as malformed JSON).
        keep = false;
        let mut body = Vec::new();
        let mut buf = [0u8; 16 * 1024];
        loop {
            match conn.read(&mut buf).await {
                Ok(0) => break,
                Ok(n) => body.extend_from_slice(&buf[..n]),
                Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => break,
                Err(e) => return Err(io(e)),
            }
            if body.len() > MAX_BODY {
                return Err(malformed(format!("a body over {MAX_BODY} bytes")));
            }
        }
        body
    };
    Ok((
        Response {
            status,
            headers: response_headers,
            body,
        },
        keep,
    ))
}

fn truncate(s: &str) -> String {
    s.chars().take(80).collect()
}

/// A CRLF (or LF) terminated line without its terminator; `None` at a clean
/// end of stream before any byte.
async fn read_line(conn: &mut Conn) -> Result<Option<String>, Failure> {
    let mut line = Vec::new();
    loop {
        let available = conn.fill_buf().await.map_err(io)?;
        if available.is_empty() {
            if line.is_empty() {
                return Ok(None);
            }
            return Err(malformed("the answer ends inside a line"));
        }
        match available.iter().position(|b| *b == b'\n') {
            Some(i) => {
                line.extend_from_slice(&available[..i]);
                conn.consume(i + 1);
                break;
            }
            None => {
                let n = available.len();
                line.extend_from_slice(available);
                conn.consume(n);
            }
        }
        if line.len() > MAX_HEADER_LINE {
            return Err(malformed("a header line over 16 KiB"));
        }
    }
    if line.last() == Some(&b'\r') {
        line.pop();
    }
    String::from_utf8(line)
        .map(Some)
        .map_err(|_| malformed("a header line that is not UTF-8"))
}

async fn read_chunked(conn: &mut Conn) -> Result<Vec<u8>, Failure> {
    let mut body = Vec::new();
    loop {
        let line = read_line(conn)
            .await?
            .ok_or_else(|| malformed("the chunked body ends early"))?;
        let size_text = line.split(';').next().unwrap_or("").trim();
        let size = usize::from_str_radix(size_text, 16)
            .map_err(|_| malformed(format!("chunk size {:?}", truncate(&line))))?;
        if size == 0 {
            // Trailers, then the empty line.
            loop {
                let t = read_line(conn)
                    .await?
                    .ok_or_else(|| malformed("the chunked body ends early"))?;
                if t.is_empty() {
                    return Ok(body);
                }
            }
        }
        if body.len() + size > MAX_BODY {
            return Err(malformed(format!("a body over {MAX_BODY} bytes")));
        }
        let start = body.len();
        body.resize(start + size, 0);
        conn.read_exact(&mut body[start..])
            .await
            .map_err(|e| malformed(format!("a chunk ends early: {e}")))?;
        let end = read_line(conn)
            .await?
            .ok_or_else(|| malformed("the chunked body ends early"))?;
        if !end.is_empty() {
            return Err(malformed("a chunk longer than its size"));
        }
    }
}

/// Standard base64 (RFC 4648, with padding), for the basic auth header.
pub fn base64(input: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(input.len().div_ceil(3) * 4);
    for chunk in input.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(char::from(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_matches_rfc_4648_vectors() {
        for (input, expected) in [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("fooba", "Zm9vYmE="),
            ("foobar", "Zm9vYmFy"),
        ] {
            assert_eq!(base64(input.as_bytes()), expected);
        }
    }
}
