//! The `nut` source: UPSes served by Network UPS Tools' `upsd` (RFC 9271),
//! the way most Linux hosts, hypervisors and NAS boxes already read their
//! USB or serial UPS.
//!
//! Each server is a device of the shared device layer ([`crate::device`]):
//! its own task, interval, timeout and backoff, so a server that never
//! answers never delays another. A read connects, sends `USERNAME` and
//! `PASSWORD` when configured (and `LOGIN` on the first UPS, where upsd checks
//! them), `LIST UPS`, `LIST VAR` for each UPS, and `LOGOUT`. The variables are
//! mapped into the shared vocabulary ([`map`]); unknown variables are skipped
//! and counted, a value that is no number is an unknown reading and counted,
//! and an answer that does not decode (a line cut short, an unknown `ERR`, a
//! list that does not close) is counted and fails the read, never a panic.
//!
//! - [`config`]: the `[sources.nut]` table.
//! - [`proto`]: the line codec, shared with the upsd facade ([`crate::nutd`]).
//! - [`map`]: NUT variables <-> readings, both ways.

pub mod config;
pub mod map;
pub mod proto;

use std::{collections::BTreeMap, path::Path, sync::Arc, time::Duration};

use sitewatch_protocol::Reading;
use tokio::{
    io::{
        AsyncBufRead, AsyncBufReadExt, AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt,
        BufReader, ReadHalf, WriteHalf,
    },
    net::TcpStream,
};

use super::{Poll, Polled, SourceError};
use crate::{
    device::{Device, DeviceError, Fleet, Read, Settings},
    selfmetrics,
};
use config::NutSourceConfig;
use proto::{Answer, LineError};

/// The source's name and its readings' `src`.
pub const NAME: &str = "nut";

/// The longest a dead server goes unread (its UPSes reported unknown meanwhile).
const BACKOFF_MAX: Duration = Duration::from_secs(60);

/// The first line of a password file.
pub fn read_secret(path: &Path) -> Result<String, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let line = text.lines().next().unwrap_or("").trim_end_matches('\r');
    if line.is_empty() {
        return Err(format!("{} is empty", path.display()));
    }
    Ok(line.to_owned())
}

/// Reads one LF-terminated line of at most [`proto::MAX_LINE`] bytes.
/// `Ok(None)`: the peer closed before a new line began; a line cut short by
/// the close is [`ReadLineError::CutShort`].
pub async fn read_line<R: AsyncBufRead + Unpin>(
    reader: &mut R,
    line: &mut Vec<u8>,
) -> Result<Option<()>, ReadLineError> {
    line.clear();
    loop {
        let buf = reader.fill_buf().await.map_err(ReadLineError::Io)?;
        if buf.is_empty() {
            return if line.is_empty() {
                Ok(None)
            } else {
                Err(ReadLineError::CutShort)
            };
        }
        let (take, done) = match buf.iter().position(|b| *b == b'\n') {
            Some(i) => (i + 1, true),
            None => (buf.len(), false),
        };
        line.extend_from_slice(&buf[..take]);
        reader.consume(take);
        // The limit, plus the LF.
        if line.len() > proto::MAX_LINE + 1 {
            return Err(ReadLineError::Line(LineError::TooLong));
        }
        if done {
            line.pop();
            return Ok(Some(()));
        }
    }
}

/// Why a line could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ReadLineError {
    #[error("{0}")]
    Io(std::io::Error),
    #[error("the connection closed in the middle of a line")]
    CutShort,
    #[error("{0}")]
    Line(LineError),
}

/// A connection, plain or TLS.
pub trait Io: AsyncRead + AsyncWrite + Send + Unpin {}
impl<T: AsyncRead + AsyncWrite + Send + Unpin> Io for T {}

/// Reads one line without reading past it (before a TLS handshake nothing
/// after the line may be taken from the socket).
pub async fn read_line_unbuffered<R: AsyncRead + Unpin>(
    reader: &mut R,
) -> Result<Vec<u8>, ReadLineError> {
    let mut line = Vec::new();
    loop {
        let mut byte = [0u8; 1];
        let n = reader.read(&mut byte).await.map_err(ReadLineError::Io)?;
        if n == 0 {
            return Err(ReadLineError::CutShort);
        }
        if byte[0] == b'\n' {
            return Ok(line);
        }
        line.push(byte[0]);
        if line.len() > proto::MAX_LINE {
            return Err(ReadLineError::Line(LineError::TooLong));
        }
    }
}

/// The device kinds of a failed read (`agent_poll_success{error=...}`).
mod kind {
    pub const CONNECT: &str = "connect";
    pub const IO: &str = "io";
    pub const CREDENTIALS: &str = "credentials";
    pub const SERVER: &str = "server_error";
    pub const MALFORMED: &str = "malformed";
    pub const TLS: &str = "tls";
}

/// One upsd server.
#[derive(Debug)]
pub struct NutServer {
    name: String,
    host: String,
    port: u16,
    credentials: Option<(String, String)>,
    /// STARTTLS: the client configuration and the name to check.
    tls: Option<(
        Arc<rustls::ClientConfig>,
        rustls::pki_types::ServerName<'static>,
    )>,
    only: Vec<String>,
    /// The latest readings of each UPS, reported unknown when unread.
    last: BTreeMap<String, Vec<Reading>>,
    malformed_answers: u64,
    malformed_values: u64,
    unknown_variables: u64,
    server_errors: u64,
}

/// A conversation with one upsd.
struct Session {
    reader: BufReader<ReadHalf<Box<dyn Io>>>,
    writer: WriteHalf<Box<dyn Io>>,
    line: Vec<u8>,
}

/// Why one exchange failed.
enum Failure {
    Connect(String),
    Tls(String),
    Io(String),
    /// `ERR <code>` from the server, with the command.
    Server(String, String),
    Malformed(String),
}

impl Session {
    async fn send(&mut self, words: &[&str]) -> Result<(), Failure> {
        self.writer
            .write_all(proto::command(words).as_bytes())
            .await
            .map_err(|e| Failure::Io(format!("sending {}: {e}", words[0])))
    }

    async fn next(&mut self, what: &str) -> Result<Answer, Failure> {
        match read_line(&mut self.reader, &mut self.line).await {
            Ok(Some(())) => proto::answer(&self.line)
                .map_err(|e| Failure::Malformed(format!("answer to {what}: {e}"))),
            Ok(None) => Err(Failure::Malformed(format!(
                "the server closed the connection before answering {what}"
            ))),
            Err(ReadLineError::Io(e)) => {
                Err(Failure::Io(format!("reading the answer to {what}: {e}")))
            }
            Err(e) => Err(Failure::Malformed(format!("answer to {what}: {e}"))),
        }
    }

    /// A command answered by `OK ...`.
    async fn ok(&mut self, words: &[&str]) -> Result<(), Failure> {
        self.send(words).await?;
        let what = words[0];
        match self.next(what).await? {
            Answer::Ok(_) => Ok(()),
            Answer::Err(code) => Err(Failure::Server(code, what.to_owned())),
            Answer::Line(l) => Err(Failure::Malformed(format!(
                "{what} answered {:?}",
                l.join(" ")
            ))),
        }
    }

    /// A `LIST <what...>` command: the items between its BEGIN and END lines.
    async fn list(&mut self, what: &[&str]) -> Result<Vec<Vec<String>>, Failure> {
        let mut cmd = vec!["LIST"];
        cmd.extend_from_slice(what);
        self.send(&cmd).await?;
        let label = cmd.join(" ");
        let expect = |head: &str, l: &[String]| {
            l.len() == what.len() + 2
                && l[0] == head
                && l[1] == "LIST"
                && l[2..].iter().zip(what).all(|(a, b)| a == b)
        };
        match self.next(&label).await? {
            Answer::Line(l) if expect("BEGIN", &l) => {}
            Answer::Err(code) => return Err(Failure::Server(code, label)),
            other => {
                return Err(Failure::Malformed(format!(
                    "{label} answered {other:?} instead of BEGIN"
                )));
            }
        }
        let mut items = Vec::new();
        loop {
            match self.next(&label).await? {
                Answer::Line(l) if expect("END", &l) => return Ok(items),
                Answer::Line(l) => items.push(l),
                other => {
                    return Err(Failure::Malformed(format!(
                        "{label}: {other:?} inside the list"
                    )));
                }
            }
        }
    }
}

impl NutServer {
    pub fn new(config: &config::NutServerConfig) -> Result<Self, SourceError> {
        let (host, port) = config.endpoint().map_err(|e| SourceError::Read {
            what: "nut server address",
            message: format!("server {:?}: {e}", config.name),
        })?;
        let credentials = match (&config.username, &config.password_file) {
            (Some(u), Some(p)) => Some((
                u.clone(),
                read_secret(p).map_err(|e| SourceError::Read {
                    what: "nut credentials",
                    message: format!("server {:?}: {e}", config.name),
                })?,
            )),
            _ => None,
        };
        let tls = match &config.tls_ca {
            None => None,
            Some(ca) => {
                let client = crate::tls::client_config(&crate::config::TlsConfig {
                    ca: ca.clone(),
                    cert: None,
                    key: None,
                })
                .map_err(|e| SourceError::Read {
                    what: "nut tls_ca",
                    message: format!("server {:?}: {e}", config.name),
                })?;
                let name = config
                    .tls_server_name
                    .clone()
                    .unwrap_or_else(|| host.clone());
                let name = rustls::pki_types::ServerName::try_from(name.clone()).map_err(|e| {
                    SourceError::Read {
                        what: "nut tls_server_name",
                        message: format!("server {:?}: {name:?}: {e}", config.name),
                    }
                })?;
                Some((client, name))
            }
        };
        Ok(NutServer {
            name: config.name.clone(),
            host,
            port,
            credentials,
            tls,
            only: config.ups.clone(),
            last: BTreeMap::new(),
            malformed_answers: 0,
            malformed_values: 0,
            unknown_variables: 0,
            server_errors: 0,
        })
    }

    fn dev(&self, ups: &str) -> String {
        format!("{ups}@{}", self.name)
    }

    fn unknown_all(&self) -> Vec<Reading> {
        self.last.values().flat_map(|r| unknown(r)).collect()
    }

    fn error(&mut self, failure: Failure) -> DeviceError {
        match failure {
            Failure::Connect(m) => DeviceError::new(kind::CONNECT, m),
            Failure::Tls(m) => DeviceError::new(kind::TLS, m),
            Failure::Io(m) => DeviceError::new(kind::IO, m),
            Failure::Malformed(m) => {
                self.malformed_answers += 1;
                DeviceError::new(kind::MALFORMED, m)
            }
            Failure::Server(code, what) => {
                if !proto::KNOWN_ERRORS.contains(&code.as_str()) {
                    self.malformed_answers += 1;
                    return DeviceError::new(
                        kind::MALFORMED,
                        format!("{what} answered an unknown error ERR {code:?}"),
                    );
                }
                self.server_errors += 1;
                let k = match code.as_str() {
                    "ACCESS-DENIED" | "INVALID-PASSWORD" | "INVALID-USERNAME"
                    | "USERNAME-REQUIRED" | "PASSWORD-REQUIRED" => kind::CREDENTIALS,
                    _ => kind::SERVER,
                };
                DeviceError::new(k, format!("{what} answered ERR {code}"))
            }
        }
    }

    /// `STARTTLS`, then the handshake: a server that does not offer TLS is an
    /// error, never a fall back to the clear.
    async fn starttls(
        mut stream: TcpStream,
        config: &Arc<rustls::ClientConfig>,
        name: &rustls::pki_types::ServerName<'static>,
    ) -> Result<tokio_rustls::client::TlsStream<TcpStream>, Failure> {
        stream
            .write_all(b"STARTTLS\n")
            .await
            .map_err(|e| Failure::Io(format!("sending STARTTLS: {e}")))?;
        let line = read_line_unbuffered(&mut stream)
            .await
            .map_err(|e| match e {
                ReadLineError::Io(e) => Failure::Io(format!("reading the answer to STARTTLS: {e}")),
                e => Failure::Malformed(format!("answer to STARTTLS: {e}")),
            })?;
        match proto::answer(&line) {
            Ok(Answer::Ok(_)) => {}
            Ok(Answer::Err(code)) => {
                return Err(Failure::Tls(format!(
                    "the server refused STARTTLS (ERR {code}): it offers no TLS"
                )));
            }
            Ok(Answer::Line(l)) => {
                return Err(Failure::Malformed(format!(
                    "STARTTLS answered {:?}",
                    l.join(" ")
                )));
            }
            Err(e) => return Err(Failure::Malformed(format!("answer to STARTTLS: {e}"))),
        }
        tokio_rustls::TlsConnector::from(Arc::clone(config))
            .connect(name.clone(), stream)
            .await
            .map_err(|e| {
                let hint = crate::tls::rustls_cause(&e)
                    .map(crate::tls::hint)
                    .unwrap_or("");
                Failure::Tls(format!("TLS handshake: {e} {hint}").trim_end().to_owned())
            })
    }

    /// The readings, and a UPS's failure that did not stop the others.
    async fn converse(&mut self) -> Result<(Vec<Reading>, Option<Failure>), Failure> {
        let stream = TcpStream::connect((self.host.as_str(), self.port))
            .await
            .map_err(|e| Failure::Connect(format!("connecting: {e}")))?;
        let _ = stream.set_nodelay(true);
        let io: Box<dyn Io> = match &self.tls {
            None => Box::new(stream),
            Some((config, name)) => Box::new(Self::starttls(stream, config, name).await?),
        };
        let (r, w) = tokio::io::split(io);
        let mut s = Session {
            reader: BufReader::new(r),
            writer: w,
            line: Vec::new(),
        };
        if let Some((user, password)) = self.credentials.clone() {
            s.ok(&["USERNAME", &user]).await?;
            s.ok(&["PASSWORD", &password]).await?;
        }
        let mut names = Vec::new();
        for item in s.list(&["UPS"]).await? {
            match item.as_slice() {
                [ups, name, _desc] if ups == "UPS" => names.push(name.clone()),
                _ => {
                    self.malformed_answers += 1;
                    tracing::debug!(server = %self.name, line = ?item, "LIST UPS: malformed item skipped");
                }
            }
        }
        if !self.only.is_empty() {
            names.retain(|n| self.only.contains(n));
        }
        if self.credentials.is_some()
            && let Some(first) = names.first().cloned()
        {
            s.ok(&["LOGIN", &first]).await?;
        }
        let mut readings = Vec::new();
        let mut failed = None;
        for ups in names {
            let dev = self.dev(&ups);
            match s.list(&["VAR", &ups]).await {
                Ok(items) => {
                    let mut vars = BTreeMap::new();
                    for item in items {
                        match item.as_slice() {
                            [var, u, name, value] if var == "VAR" && *u == ups => {
                                vars.insert(name.clone(), value.clone());
                            }
                            _ => self.malformed_answers += 1,
                        }
                    }
                    let mapped = map::readings(NAME, &dev, &vars);
                    self.unknown_variables += mapped.unknown;
                    self.malformed_values += mapped.malformed;
                    self.last.insert(ups, mapped.readings.clone());
                    readings.extend(mapped.readings);
                }
                // A stale or driverless UPS: its readings unknown, the others read.
                Err(Failure::Server(code, what)) => {
                    if let Some(prev) = self.last.get(&ups) {
                        readings.extend(unknown(prev));
                    }
                    failed.get_or_insert(Failure::Server(code, what));
                }
                Err(f) => return Err(f),
            }
        }
        let _ = s.send(&["LOGOUT"]).await;
        Ok((readings, failed))
    }
}

/// `readings` with their values unknown.
fn unknown(readings: &[Reading]) -> Vec<Reading> {
    readings
        .iter()
        .map(|r| {
            let mut u = r.clone();
            u.value = None;
            u.state = sitewatch_protocol::ReadingState::Unknown;
            u
        })
        .collect()
}

impl Device for NutServer {
    async fn read(&mut self) -> Read {
        match self.converse().await {
            Ok((readings, None)) => Read::ok(readings.into()),
            Ok((readings, Some(f))) => {
                let e = self.error(f);
                Read::failed(readings.into(), e)
            }
            Err(f) => {
                let e = self.error(f);
                Read::failed(self.unknown_all().into(), e)
            }
        }
    }

    fn unread(&self, _: &DeviceError) -> Polled {
        self.unknown_all().into()
    }

    fn counters(&self) -> Vec<(&'static str, f64)> {
        vec![
            (
                selfmetrics::q::NUT_MALFORMED_ANSWERS,
                self.malformed_answers as f64,
            ),
            (
                selfmetrics::q::NUT_MALFORMED_VALUES,
                self.malformed_values as f64,
            ),
            (
                selfmetrics::q::NUT_UNKNOWN_VARIABLES,
                self.unknown_variables as f64,
            ),
            (selfmetrics::q::NUT_SERVER_ERRORS, self.server_errors as f64),
        ]
    }
}

#[derive(Debug)]
pub struct NutSource {
    servers: Fleet,
}

impl NutSource {
    /// Builds the servers and starts their tasks (within a tokio runtime).
    pub fn new(config: &NutSourceConfig) -> Result<Self, SourceError> {
        let mut fleet = Fleet::new(NAME);
        for s in &config.servers {
            fleet.add(
                s.name.clone(),
                NutServer::new(s)?,
                Settings {
                    interval: Some(s.interval.unwrap_or(config.interval)),
                    timeout: s.timeout.unwrap_or(config.timeout.mul_f64(0.9)),
                    backoff_max: Some(BACKOFF_MAX),
                },
            );
        }
        Ok(NutSource { servers: fleet })
    }
}

impl Poll for NutSource {
    fn name(&self) -> &'static str {
        NAME
    }

    async fn poll(&mut self) -> Result<Polled, SourceError> {
        let (polled, _) = self.servers.poll().await;
        Ok(polled)
    }
}

impl super::Build for NutSource {
    type Config = NutSourceConfig;

    fn build(config: &Self::Config) -> Result<Self, SourceError> {
        NutSource::new(config)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn reads_lines_and_tells_a_cut_line_from_a_close() {
        let mut input: &[u8] = b"OK\nVAR u x \"1\"\r\nEND LI";
        let mut r = BufReader::new(&mut input);
        let mut line = Vec::new();
        assert!(read_line(&mut r, &mut line).await.unwrap().is_some());
        assert_eq!(line, b"OK");
        assert!(read_line(&mut r, &mut line).await.unwrap().is_some());
        assert_eq!(line, b"VAR u x \"1\"\r");
        assert!(matches!(
            read_line(&mut r, &mut line).await,
            Err(ReadLineError::CutShort)
        ));
        let mut empty: &[u8] = b"";
        assert!(
            read_line(&mut BufReader::new(&mut empty), &mut line)
                .await
                .unwrap()
                .is_none()
        );
    }

    #[tokio::test]
    async fn refuses_a_line_longer_than_the_limit() {
        let long = vec![b'a'; proto::MAX_LINE + 10];
        let mut input: &[u8] = &long;
        let mut line = Vec::new();
        assert!(matches!(
            read_line(&mut BufReader::new(&mut input), &mut line).await,
            Err(ReadLineError::Line(LineError::TooLong))
        ));
    }
}
