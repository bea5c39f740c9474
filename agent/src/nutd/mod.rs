//! The upsd facade: the agent answers the read-only subset of the NUT
//! protocol (RFC 9271) that clients use, for the UPSes it reads over any
//! source, with NUT variable names, so that `upsc`, `upsmon` and every NUT
//! client (hypervisors, NAS boxes) work from sitewatch's view.
//!
//! Commands: `VER`, `NETVER` (`PROTVER`), `HELP`, `LIST UPS`, `LIST VAR`,
//! `LIST CMD`, `LIST RW`, `LIST ENUM`, `LIST RANGE`, `LIST CLIENT`, `GET VAR`,
//! `GET UPSDESC`, `GET NUMLOGINS`, `GET TYPE`, `GET DESC`, `USERNAME`,
//! `PASSWORD`, `LOGIN`, `LOGOUT`, `PRIMARY` (`MASTER`), `FSD`, and
//! `STARTTLS` with `[nut_server.tls]` (else `ERR FEATURE-NOT-CONFIGURED`);
//! `SET` and `INSTCMD` answer `ERR ACCESS-DENIED`.
//!
//! The UPS list comes from [`crate::latest::Latest`], the readings the
//! publisher already has: every device with a reading labelled
//! `nut = "ups.status:..."` is a UPS, its variables built by
//! [`crate::source::nut::map::variables`]. Readings older than `stale_after`,
//! or all unknown, answer `ERR DATA-STALE`.
//!
//! - [`config`]: the `[nut_server]` table.
//! - [`users`]: the upsd.users subset.
//! - [`fsd`]: the FSD policy.

pub mod config;
pub mod fsd;
pub mod users;

use std::{
    collections::BTreeMap,
    sync::{
        Arc, Mutex,
        atomic::{AtomicUsize, Ordering},
    },
    time::Duration,
};

use tokio::{
    io::{AsyncWriteExt, BufReader},
    net::{TcpListener, TcpStream},
    sync::watch,
    time::Instant,
};

use crate::{
    latest::{DeviceView, Latest},
    source::nut::{
        map::{self, NUT_LABEL},
        proto, read_line,
    },
};
use config::{NutServerConfig, valid_ups_name};
use users::{Role, Users};

/// What `NETVER` answers: the protocol version of NUT 2.8.
pub const NETVER: &str = "1.3";

/// How often the FSD policy looks at the UPSes.
const POLICY_TICK: Duration = Duration::from_secs(1);

/// Why the facade did not start.
#[derive(Debug, thiserror::Error)]
pub enum FacadeError {
    #[error("nut_server.listen {address}: cannot listen: {source}")]
    Listen {
        address: String,
        source: std::io::Error,
    },
    #[error("nut_server.users_file: {0}")]
    Users(String),
    #[error("nut_server.tls: {0}")]
    Tls(String),
}

/// One UPS as served.
#[derive(Debug, Clone, PartialEq)]
pub struct Ups {
    pub name: String,
    pub description: String,
    /// `None`: stale.
    pub vars: Option<BTreeMap<String, String>>,
}

/// The facade's state, shared by its connections and its policy task.
#[derive(Debug)]
pub struct Facade {
    config: NutServerConfig,
    users: Users,
    latest: Arc<Latest>,
    fsd: Mutex<BTreeMap<String, fsd::Tracker>>,
    logins: Mutex<BTreeMap<String, u32>>,
    clients: AtomicUsize,
    /// Devices left out because another took their name, warned about once.
    shadowed: Mutex<std::collections::BTreeSet<String>>,
    tls: Option<Arc<rustls::ServerConfig>>,
}

impl Facade {
    pub fn new(config: NutServerConfig, latest: Arc<Latest>) -> Result<Arc<Self>, FacadeError> {
        let users = match &config.users_file {
            Some(p) => {
                Users::load(p).map_err(|e| FacadeError::Users(format!("{}: {e}", p.display())))?
            }
            None => Users::default(),
        };
        let tls = match &config.tls {
            None => None,
            Some(t) => Some(
                crate::tls::server_config(&t.cert, &t.key)
                    .map_err(|e| FacadeError::Tls(e.to_string()))?,
            ),
        };
        Ok(Arc::new(Facade {
            tls,
            config,
            users,
            latest,
            fsd: Mutex::new(BTreeMap::new()),
            logins: Mutex::new(BTreeMap::new()),
            clients: AtomicUsize::new(0),
            shadowed: Mutex::new(std::collections::BTreeSet::new()),
        }))
    }

    /// The NUT name of a device: its `[[nut_server.ups]]` entry, else its `dev`
    /// with characters NUT does not take replaced.
    fn name_of(&self, d: &DeviceView) -> (String, String) {
        let key = format!("{}/{}", d.src, d.dev);
        if let Some(u) = self.config.ups.iter().find(|u| u.device == key) {
            return (
                u.name.clone(),
                u.description.clone().unwrap_or_else(|| key.clone()),
            );
        }
        let name: String = d
            .dev
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.') {
                    c
                } else {
                    '_'
                }
            })
            .collect();
        (name, format!("sitewatch {key}"))
    }

    /// Every UPS, by name (a second device taking a name already served is
    /// left out, with a warning in the policy's log).
    pub fn upses(&self) -> Vec<Ups> {
        let now = Instant::now();
        let fsd = self.fsd.lock().map(|f| f.clone()).unwrap_or_default();
        let mut out: Vec<Ups> = Vec::new();
        for d in self.latest.snapshot() {
            let (name, description) = self.name_of(&d);
            if !valid_ups_name(&name) || out.iter().any(|u| u.name == name) {
                continue;
            }
            let extra: &[&str] = if fsd.get(&name).is_some_and(fsd::Tracker::fsd) {
                &["FSD"]
            } else {
                &[]
            };
            let Some(vars) = map::variables(&d.readings, extra) else {
                continue;
            };
            let fresh = now.saturating_duration_since(d.at) <= self.config.stale_after
                && d.readings.iter().any(|r| r.value.is_some());
            out.push(Ups {
                name,
                description,
                vars: fresh.then_some(vars),
            });
        }
        out
    }

    fn ups(&self, name: &str) -> Option<Ups> {
        self.upses().into_iter().find(|u| u.name == name)
    }

    /// One look at every UPS for the FSD policy.
    pub fn apply_policy(&self) {
        let now = Instant::now();
        let views = self.latest.snapshot();
        let mut taken: BTreeMap<String, String> = BTreeMap::new();
        for d in &views {
            let key = format!("{}/{}", d.src, d.dev);
            let (name, _) = self.name_of(d);
            match taken.get(&name) {
                Some(first)
                    if self
                        .shadowed
                        .lock()
                        .is_ok_and(|mut s| s.insert(key.clone())) =>
                {
                    tracing::warn!(ups = %name, served = %first, device = %key, "nut server: two devices take this UPS name; the second is not served (name it in [[nut_server.ups]])");
                }
                Some(_) => {}
                None => {
                    taken.insert(name, key);
                }
            }
        }
        let Ok(mut trackers) = self.fsd.lock() else {
            return;
        };
        for d in &views {
            let (name, _) = self.name_of(d);
            if taken
                .get(&name)
                .is_none_or(|k| *k != format!("{}/{}", d.src, d.dev))
            {
                continue;
            }
            let flag = |nut: &str| {
                d.readings
                    .iter()
                    .find(|r| r.labels.get(NUT_LABEL).is_some_and(|l| l == nut))
                    .and_then(|r| r.value)
            };
            let stale = now.saturating_duration_since(d.at) > self.config.stale_after;
            // Stale readings decide nothing: FSD stays as it is.
            let Some(on_battery) = flag("ups.status:OB").filter(|_| !stale) else {
                continue;
            };
            let runtime = flag("battery.runtime");
            let tracker = trackers.entry(name.clone()).or_default();
            match tracker.observe(&self.config.fsd, now, on_battery == 1.0, runtime) {
                Some(fsd::Change::Raised(reason)) => {
                    tracing::warn!(ups = %name, device = %format!("{}/{}", d.src, d.dev), %reason, "raising FSD: every upsmon watching this UPS shuts its host down now");
                }
                Some(fsd::Change::WouldRaise(reason)) => {
                    tracing::warn!(ups = %name, %reason, "dry run: would raise FSD now (nut_server.fsd.dry_run)");
                }
                Some(fsd::Change::Cleared) => {
                    tracing::info!(ups = %name, "back on mains: FSD cleared");
                }
                None => {}
            }
        }
    }

    fn raise_by_primary(&self, ups: &str) {
        if let Ok(mut t) = self.fsd.lock() {
            t.entry(ups.to_owned()).or_default().set_by_primary();
        }
        tracing::warn!(%ups, "FSD from a primary upsmon: every upsmon watching this UPS shuts its host down now");
    }

    fn numlogins(&self, ups: &str) -> u32 {
        self.logins
            .lock()
            .map(|l| l.get(ups).copied().unwrap_or(0))
            .unwrap_or(0)
    }

    fn login(&self, ups: &str, delta: i32) {
        if let Ok(mut l) = self.logins.lock() {
            let n = l.entry(ups.to_owned()).or_insert(0);
            *n = n.saturating_add_signed(delta);
        }
    }
}

/// Binds every `listen` address now (a taken port stops the agent with a
/// clear message) and serves until `shutdown`.
pub async fn start(
    facade: Arc<Facade>,
    shutdown: watch::Receiver<bool>,
) -> Result<Vec<std::net::SocketAddr>, FacadeError> {
    let mut bound = Vec::new();
    for address in &facade.config.listen {
        let listener = TcpListener::bind(address)
            .await
            .map_err(|source| FacadeError::Listen {
                address: address.clone(),
                source,
            })?;
        let local = listener
            .local_addr()
            .map_err(|source| FacadeError::Listen {
                address: address.clone(),
                source,
            })?;
        // Tests read the port chosen for `:0` here.
        tracing::info!(listen = %local, "nut server listening");
        bound.push(local);
        tokio::spawn(accept(listener, Arc::clone(&facade), shutdown.clone()));
    }
    let policy = Arc::clone(&facade);
    let mut stop = shutdown.clone();
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(POLICY_TICK);
        loop {
            tokio::select! {
                _ = tick.tick() => policy.apply_policy(),
                _ = stop.wait_for(|s| *s) => return,
            }
        }
    });
    Ok(bound)
}

async fn accept(listener: TcpListener, facade: Arc<Facade>, mut shutdown: watch::Receiver<bool>) {
    loop {
        let accepted = tokio::select! {
            a = listener.accept() => a,
            _ = shutdown.wait_for(|s| *s) => return,
        };
        let (stream, peer) = match accepted {
            Ok(a) => a,
            Err(e) => {
                tracing::warn!(error = %e, "nut server: accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        if facade.clients.fetch_add(1, Ordering::SeqCst) >= facade.config.max_clients {
            facade.clients.fetch_sub(1, Ordering::SeqCst);
            tracing::warn!(%peer, max = facade.config.max_clients, "nut server: too many clients, connection refused");
            continue;
        }
        let f = Arc::clone(&facade);
        let stop = shutdown.clone();
        tokio::spawn(async move {
            serve(stream, &f, stop).await;
            f.clients.fetch_sub(1, Ordering::SeqCst);
        });
    }
}

/// One client's session.
#[derive(Debug, Default)]
pub struct Session {
    username: Option<String>,
    password: Option<String>,
    /// The UPS this client logged in to.
    logged_in: Option<String>,
    /// Whether it claimed the UPS as primary.
    primary: bool,
}

impl Session {
    fn role(&self, facade: &Facade) -> Option<Option<Role>> {
        facade
            .users
            .check(self.username.as_deref()?, self.password.as_deref()?)
    }
}

async fn serve(stream: TcpStream, facade: &Facade, mut shutdown: watch::Receiver<bool>) {
    let _ = stream.set_nodelay(true);
    let (r, mut w) = stream.into_split();
    let mut reader = BufReader::new(r);
    let mut session = Session::default();
    let next = lines(
        &mut reader,
        &mut w,
        facade,
        &mut session,
        &mut shutdown,
        true,
    )
    .await;
    if next == Next::StartTls
        && let Some(config) = &facade.tls
        // A client that sent more after STARTTLS is not doing TLS.
        && reader.buffer().is_empty()
        && let Ok(tcp) = reader.into_inner().reunite(w)
    {
        match tokio_rustls::TlsAcceptor::from(Arc::clone(config))
            .accept(tcp)
            .await
        {
            Ok(tls) => {
                let (r, mut w) = tokio::io::split(tls);
                let mut reader = BufReader::new(r);
                lines(
                    &mut reader,
                    &mut w,
                    facade,
                    &mut session,
                    &mut shutdown,
                    false,
                )
                .await;
            }
            Err(e) => tracing::warn!(error = %e, "nut server: TLS handshake failed"),
        }
    }
    if let Some(ups) = session.logged_in.take() {
        facade.login(&ups, -1);
    }
}

/// How a run of lines ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Next {
    Closed,
    /// `OK STARTTLS` was sent: the handshake comes next.
    StartTls,
}

/// Answers commands until the client leaves, idles out, or asks for TLS
/// (`plain`: not in TLS yet).
async fn lines<R, W>(
    reader: &mut R,
    w: &mut W,
    facade: &Facade,
    session: &mut Session,
    shutdown: &mut watch::Receiver<bool>,
    plain: bool,
) -> Next
where
    R: tokio::io::AsyncBufRead + Unpin,
    W: tokio::io::AsyncWrite + Unpin,
{
    let mut line = Vec::new();
    loop {
        let read = tokio::select! {
            r = tokio::time::timeout(facade.config.idle_timeout, read_line(reader, &mut line)) => r,
            _ = shutdown.wait_for(|s| *s) => return Next::Closed,
        };
        let answer = match read {
            // Idle, closed, or a line that cannot be framed (too long, cut
            // short): the conversation is over.
            Err(_) | Ok(Ok(None)) | Ok(Err(_)) => return Next::Closed,
            Ok(Ok(Some(()))) => match proto::split_words(&line) {
                Ok(words) if words.len() == 1 && words[0].eq_ignore_ascii_case("STARTTLS") => {
                    match (plain, facade.tls.is_some()) {
                        (true, true) => {
                            if w.write_all(b"OK STARTTLS\n").await.is_err() {
                                return Next::Closed;
                            }
                            return Next::StartTls;
                        }
                        (false, _) => err("ALREADY-SSL-MODE"),
                        (true, false) => err("FEATURE-NOT-CONFIGURED"),
                    }
                }
                Ok(words) => {
                    let (answer, close) = respond(facade, session, &words);
                    if close {
                        let _ = w.write_all(answer.as_bytes()).await;
                        return Next::Closed;
                    }
                    answer
                }
                Err(_) => err("INVALID-ARGUMENT"),
            },
        };
        if w.write_all(answer.as_bytes()).await.is_err() {
            return Next::Closed;
        }
    }
}

fn err(code: &str) -> String {
    format!("ERR {code}\n")
}

/// The answer to one command, and whether to close the connection after it.
pub fn respond(facade: &Facade, session: &mut Session, words: &[String]) -> (String, bool) {
    let w: Vec<&str> = words.iter().map(String::as_str).collect();
    let upper: Vec<String> = w.iter().take(2).map(|s| s.to_ascii_uppercase()).collect();
    let cmd = upper.first().map_or("", String::as_str);
    let sub = upper.get(1).map_or("", String::as_str);
    let answer = match (cmd, w.len()) {
        ("", _) => err("UNKNOWN-COMMAND"),
        ("VER", 1) => format!(
            "sitewatch-agent {} upsd facade (Network UPS Tools protocol {NETVER})\n",
            env!("CARGO_PKG_VERSION")
        ),
        ("NETVER" | "PROTVER", 1) => format!("{NETVER}\n"),
        ("HELP", 1) => {
            "Commands: HELP VER NETVER GET LIST USERNAME PASSWORD LOGIN LOGOUT PRIMARY FSD\n"
                .to_owned()
        }
        ("STARTTLS", 1) => err("FEATURE-NOT-CONFIGURED"),
        ("LOGOUT", 1) => return ("OK Goodbye\n".to_owned(), true),
        ("USERNAME", 2) => {
            if session.username.is_some() {
                err("ALREADY-SET-USERNAME")
            } else {
                session.username = Some(w[1].to_owned());
                "OK\n".to_owned()
            }
        }
        ("PASSWORD", 2) => {
            if session.password.is_some() {
                err("ALREADY-SET-PASSWORD")
            } else {
                session.password = Some(w[1].to_owned());
                "OK\n".to_owned()
            }
        }
        ("LOGIN", 2) => login(facade, session, w[1]),
        ("PRIMARY" | "MASTER", 2) => {
            let granted = if cmd == "MASTER" {
                "OK MASTER-GRANTED\n"
            } else {
                "OK PRIMARY-GRANTED\n"
            };
            match (facade.ups(w[1]), session.role(facade)) {
                (None, _) => err("UNKNOWN-UPS"),
                (Some(_), Some(Some(Role::Primary))) => {
                    session.primary = true;
                    granted.to_owned()
                }
                _ => err("ACCESS-DENIED"),
            }
        }
        ("FSD", 2) => match (facade.ups(w[1]), session.role(facade)) {
            (None, _) => err("UNKNOWN-UPS"),
            (Some(_), Some(Some(Role::Primary))) => {
                facade.raise_by_primary(w[1]);
                "OK FSD-SET\n".to_owned()
            }
            _ => err("ACCESS-DENIED"),
        },
        ("SET" | "INSTCMD", _) => err("ACCESS-DENIED"),
        ("LIST", _) => list(facade, sub, &w),
        ("GET", _) => get(facade, sub, &w),
        _ => err("UNKNOWN-COMMAND"),
    };
    (answer, false)
}

fn login(facade: &Facade, session: &mut Session, ups: &str) -> String {
    if session.logged_in.is_some() {
        return err("ALREADY-LOGGED-IN");
    }
    if session.username.is_none() {
        return err("USERNAME-REQUIRED");
    }
    if session.password.is_none() {
        return err("PASSWORD-REQUIRED");
    }
    if session.role(facade).is_none() {
        tracing::warn!(user = session.username.as_deref().unwrap_or(""), %ups, "nut server: LOGIN refused (unknown user or wrong password)");
        return err("ACCESS-DENIED");
    }
    if facade.ups(ups).is_none() {
        return err("UNKNOWN-UPS");
    }
    session.logged_in = Some(ups.to_owned());
    facade.login(ups, 1);
    "OK\n".to_owned()
}

fn list(facade: &Facade, sub: &str, w: &[&str]) -> String {
    match (sub, w.len()) {
        ("UPS", 2) => {
            let mut out = proto::list_begin(&["UPS"]);
            for u in facade.upses() {
                out.push_str(&format!(
                    "UPS {} {}\n",
                    u.name,
                    proto::quote(&u.description)
                ));
            }
            out.push_str(&proto::list_end(&["UPS"]));
            out
        }
        ("VAR", 3) => match facade.ups(w[2]) {
            None => err("UNKNOWN-UPS"),
            Some(Ups { vars: None, .. }) => err("DATA-STALE"),
            Some(Ups {
                vars: Some(vars),
                name,
                ..
            }) => {
                let mut out = proto::list_begin(&["VAR", &name]);
                for (k, v) in vars {
                    out.push_str(&format!("VAR {name} {k} {}\n", proto::quote(&v)));
                }
                out.push_str(&proto::list_end(&["VAR", &name]));
                out
            }
        },
        // Nothing writable, no commands, no enumerations: empty lists.
        ("CMD" | "RW" | "CLIENT", 3) => match facade.ups(w[2]) {
            None => err("UNKNOWN-UPS"),
            Some(u) => {
                let what = [w[1], u.name.as_str()];
                format!("{}{}", proto::list_begin(&what), proto::list_end(&what))
            }
        },
        ("ENUM" | "RANGE", 4) => match facade.ups(w[2]) {
            None => err("UNKNOWN-UPS"),
            Some(u) => {
                let what = [w[1], u.name.as_str(), w[3]];
                format!("{}{}", proto::list_begin(&what), proto::list_end(&what))
            }
        },
        _ => err("INVALID-ARGUMENT"),
    }
}

fn get(facade: &Facade, sub: &str, w: &[&str]) -> String {
    let Some(ups) = w.get(2).and_then(|n| facade.ups(n)) else {
        return if w.len() < 3 {
            err("INVALID-ARGUMENT")
        } else {
            err("UNKNOWN-UPS")
        };
    };
    let name = &ups.name;
    match (sub, w.len()) {
        ("UPSDESC", 3) => format!("UPSDESC {name} {}\n", proto::quote(&ups.description)),
        ("NUMLOGINS", 3) => format!("NUMLOGINS {name} {}\n", facade.numlogins(name)),
        ("VAR", 4) => match &ups.vars {
            None => err("DATA-STALE"),
            Some(vars) => match vars.get(w[3]) {
                Some(v) => format!("VAR {name} {} {}\n", w[3], proto::quote(v)),
                None => err("VAR-NOT-SUPPORTED"),
            },
        },
        ("TYPE", 4) => match ups.vars.as_ref().and_then(|v| v.get(w[3])) {
            Some(v) if v.parse::<f64>().is_ok() => format!("TYPE {name} {} NUMBER\n", w[3]),
            Some(_) => format!("TYPE {name} {} STRING:64\n", w[3]),
            None => err("VAR-NOT-SUPPORTED"),
        },
        ("DESC", 4) => format!("DESC {name} {} \"Unavailable\"\n", w[3]),
        _ => err("INVALID-ARGUMENT"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sitewatch_protocol::{Reading, ReadingState};

    fn reading(name: &str, q: &str, nut: &str, v: f64) -> Reading {
        Reading::new("modbus", "ups-a", name, q, Some(v), ReadingState::Ok)
            .with_label(NUT_LABEL, nut)
    }

    fn facade(users: &str) -> (Arc<Facade>, Arc<Latest>) {
        let latest = Latest::new();
        let mut f = Facade::new(NutServerConfig::default(), Arc::clone(&latest)).unwrap();
        Arc::get_mut(&mut f).unwrap().users = Users::parse(users).unwrap();
        latest.update(&[
            reading("online", "ups_online", "ups.status:OL", 1.0),
            reading("on_battery", "ups_on_battery", "ups.status:OB", 0.0),
            reading(
                "battery_charge",
                "ups_battery_charge_ratio",
                "battery.charge",
                0.97,
            ),
            reading(
                "runtime",
                "ups_battery_runtime_seconds",
                "battery.runtime",
                1800.0,
            ),
        ]);
        (f, latest)
    }

    fn say(f: &Facade, s: &mut Session, line: &str) -> String {
        let words = proto::split_words(line.as_bytes()).unwrap();
        respond(f, s, &words).0
    }

    #[tokio::test]
    async fn serves_lists_and_values_with_nut_names() {
        let (f, _) = facade("");
        let mut s = Session::default();
        assert_eq!(
            say(&f, &mut s, "LIST UPS"),
            "BEGIN LIST UPS\nUPS ups-a \"sitewatch modbus/ups-a\"\nEND LIST UPS\n"
        );
        assert_eq!(
            say(&f, &mut s, "LIST VAR ups-a"),
            "BEGIN LIST VAR ups-a\nVAR ups-a battery.charge \"97\"\nVAR ups-a battery.runtime \"1800\"\n\
             VAR ups-a device.type \"ups\"\nVAR ups-a ups.status \"OL\"\nEND LIST VAR ups-a\n"
        );
        assert_eq!(
            say(&f, &mut s, "get var ups-a ups.status"),
            "VAR ups-a ups.status \"OL\"\n"
        );
        assert_eq!(
            say(&f, &mut s, "GET VAR ups-b ups.status"),
            "ERR UNKNOWN-UPS\n"
        );
        assert_eq!(say(&f, &mut s, "NETVER"), "1.3\n");
        assert_eq!(say(&f, &mut s, "SET VAR ups-a x 1"), "ERR ACCESS-DENIED\n");
        assert_eq!(say(&f, &mut s, "FROB"), "ERR UNKNOWN-COMMAND\n");
        assert_eq!(
            respond(&f, &mut s, &["LOGOUT".into()]),
            ("OK Goodbye\n".into(), true)
        );
    }

    #[tokio::test]
    async fn logins_follow_upsd_and_only_a_primary_raises_fsd() {
        let (f, _) =
            facade("[mon]\npassword = s\nupsmon secondary\n[boss]\npassword = b\nupsmon primary\n");
        let mut s = Session::default();
        assert_eq!(say(&f, &mut s, "LOGIN ups-a"), "ERR USERNAME-REQUIRED\n");
        assert_eq!(say(&f, &mut s, "USERNAME mon"), "OK\n");
        assert_eq!(
            say(&f, &mut s, "USERNAME mon"),
            "ERR ALREADY-SET-USERNAME\n"
        );
        assert_eq!(say(&f, &mut s, "PASSWORD s"), "OK\n");
        assert_eq!(say(&f, &mut s, "LOGIN ups-a"), "OK\n");
        assert_eq!(
            say(&f, &mut s, "GET NUMLOGINS ups-a"),
            "NUMLOGINS ups-a 1\n"
        );
        assert_eq!(say(&f, &mut s, "PRIMARY ups-a"), "ERR ACCESS-DENIED\n");
        assert_eq!(say(&f, &mut s, "FSD ups-a"), "ERR ACCESS-DENIED\n");
        let mut p = Session::default();
        say(&f, &mut p, "USERNAME boss");
        say(&f, &mut p, "PASSWORD b");
        assert_eq!(say(&f, &mut p, "MASTER ups-a"), "OK MASTER-GRANTED\n");
        assert_eq!(say(&f, &mut p, "FSD ups-a"), "OK FSD-SET\n");
        assert_eq!(
            say(&f, &mut s, "GET VAR ups-a ups.status"),
            "VAR ups-a ups.status \"OL FSD\"\n"
        );
        let mut wrong = Session::default();
        say(&f, &mut wrong, "USERNAME boss");
        say(&f, &mut wrong, "PASSWORD guess");
        assert_eq!(say(&f, &mut wrong, "LOGIN ups-a"), "ERR ACCESS-DENIED\n");
    }

    #[tokio::test]
    async fn a_second_device_with_a_served_name_is_left_out() {
        let (f, latest) = facade("");
        let mut snmp = reading("online", "ups_online", "ups.status:OL", 0.0);
        snmp.src = "snmp".into();
        latest.update(&[snmp]);
        f.apply_policy();
        let upses = f.upses();
        assert_eq!(upses.len(), 1);
        assert_eq!(upses[0].description, "sitewatch modbus/ups-a");
    }

    #[tokio::test(start_paused = true)]
    async fn old_or_unknown_readings_are_stale() {
        let (f, latest) = facade("");
        let mut s = Session::default();
        tokio::time::advance(Duration::from_secs(31)).await;
        assert_eq!(
            say(&f, &mut s, "GET VAR ups-a ups.status"),
            "ERR DATA-STALE\n"
        );
        assert_eq!(say(&f, &mut s, "LIST VAR ups-a"), "ERR DATA-STALE\n");
        let mut unknown = reading("online", "ups_online", "ups.status:OL", 1.0);
        unknown.value = None;
        latest.update(&[unknown]);
        assert_eq!(
            say(&f, &mut s, "GET VAR ups-a ups.status"),
            "ERR DATA-STALE\n"
        );
    }
}
