//! Messages per second through the embedded broker, against mosquitto on the
//! same traffic in the same run.
//!
//! `cargo bench -p sitewatch-collector --bench broker`
//!
//! Publishers are raw MQTT 3.1.1 clients, one connection each, sending
//! pre-built QoS 1 PUBLISH packets of a real 100-reading batch (`support::wire`)
//! with a window of unacknowledged ones, as fast as PUBACKs come back. A run
//! ends when the subscriber has every message:
//!
//! - `embedded -> local link`: the collector's in-process subscription;
//! - `embedded -> mosquitto_sub`, `mosquitto -> mosquitto_sub`: `mosquitto_sub
//!   -q 1 -C N >/dev/null` (its session made first with `-E`, so it cannot miss
//!   the start);
//! - `embedded +auth`, `embedded +auth+TLS -> local link`: each publisher an
//!   agent with its own password (PBKDF2 at connect), over TLS 1.3 for the last.
//!
//! The embedded broker, the publishers and the local subscriber share this
//! process's runtime (as many worker threads as cores); mosquitto is its own
//! single-threaded process. Environment: `BENCH_MESSAGES` (default 50000),
//! `BENCH_PUBLISHERS` (8), `BENCH_WINDOW` (100), `BENCH_RUNS` (3, the median is
//! reported).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::net::{SocketAddr, TcpListener as StdListener};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use sitewatch_collector::broker::auth::{Hash, PasswordFile};
use sitewatch_collector::broker::config::TlsFiles;
use sitewatch_collector::broker::{Broker, BrokerConfig};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::{Barrier, Semaphore};

fn env(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn mqtt_str(s: &[u8]) -> Vec<u8> {
    let mut v = (s.len() as u16).to_be_bytes().to_vec();
    v.extend_from_slice(s);
    v
}

fn packet(byte1: u8, body: &[u8]) -> Vec<u8> {
    let mut v = vec![byte1];
    let mut len = body.len();
    loop {
        let mut b = (len % 128) as u8;
        len /= 128;
        if len > 0 {
            b |= 0x80;
        }
        v.push(b);
        if len == 0 {
            break;
        }
    }
    v.extend_from_slice(body);
    v
}

fn connect_packet(id: &str, login: Option<(&str, &str)>) -> Vec<u8> {
    let mut body = mqtt_str(b"MQTT");
    body.extend_from_slice(&[4, if login.is_some() { 0xc2 } else { 0x02 }, 0, 60]);
    body.extend(mqtt_str(id.as_bytes()));
    if let Some((u, p)) = login {
        body.extend(mqtt_str(u.as_bytes()));
        body.extend(mqtt_str(p.as_bytes()));
    }
    packet(0x10, &body)
}

/// A QoS 1 PUBLISH and the offset of its packet id.
fn publish_packet(topic: &str, payload: &[u8]) -> (Vec<u8>, usize) {
    let mut body = mqtt_str(topic.as_bytes());
    let at = body.len();
    body.extend_from_slice(&[0, 1]);
    body.extend_from_slice(payload);
    let p = packet(0x32, &body);
    let header = p.len() - body.len();
    (p, header + at)
}

/// What one publisher sends.
struct Job {
    id: String,
    login: Option<(String, String)>,
    topic: String,
    payload: Arc<Vec<u8>>,
    n: usize,
    window: usize,
    start: Arc<Barrier>,
}

/// One publisher: connect, wait at the barrier, send `n` messages.
async fn publisher<S>(mut s: S, job: Job)
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let Job {
        id,
        login,
        topic,
        payload,
        n,
        window,
        start,
    } = job;
    s.write_all(&connect_packet(
        &id,
        login.as_ref().map(|(u, p)| (u.as_str(), p.as_str())),
    ))
    .await
    .unwrap();
    let mut connack = [0u8; 4];
    s.read_exact(&mut connack).await.unwrap();
    assert_eq!(connack[3], 0, "{id}: CONNACK {connack:?}");
    let (template, at) = publish_packet(&topic, &payload);
    let (mut rd, mut wr) = tokio::io::split(s);
    let permits = Arc::new(Semaphore::new(window));
    let reader = {
        let permits = Arc::clone(&permits);
        tokio::spawn(async move {
            let mut acked = 0;
            let mut buf = vec![0u8; 64 * 1024];
            let mut partial = 0usize;
            while acked < n {
                let got = rd.read(&mut buf).await.unwrap();
                assert!(got > 0, "connection closed");
                // PUBACKs are 4 bytes each.
                let total = partial + got;
                let acks = total / 4;
                partial = total % 4;
                acked += acks;
                permits.add_permits(acks);
            }
        })
    };
    start.wait().await;
    let mut out = Vec::with_capacity(template.len() * 32);
    let mut sent = 0usize;
    let mut pkid: u16 = 0;
    while sent < n {
        let k = (n - sent).min(32);
        permits.acquire_many(k as u32).await.unwrap().forget();
        out.clear();
        for _ in 0..k {
            pkid = pkid.checked_add(1).unwrap_or(1);
            let from = out.len();
            out.extend_from_slice(&template);
            out[from + at..from + at + 2].copy_from_slice(&pkid.to_be_bytes());
        }
        wr.write_all(&out).await.unwrap();
        sent += k;
    }
    reader.await.unwrap();
}

/// How publishers connect.
#[derive(Clone)]
enum Transport {
    Plain,
    Tls(tokio_rustls::TlsConnector),
}

#[derive(Clone)]
struct Load {
    messages: usize,
    publishers: usize,
    window: usize,
    payload: Arc<Vec<u8>>,
}

/// Starts the publishers; returns when all are connected, with the barrier
/// that starts them and their tasks.
async fn publishers(
    load: &Load,
    addr: SocketAddr,
    transport: &Transport,
    logins: bool,
) -> (Arc<Barrier>, Vec<tokio::task::JoinHandle<()>>) {
    let start = Arc::new(Barrier::new(load.publishers + 1));
    let per = load.messages / load.publishers;
    let mut tasks = Vec::new();
    for i in 0..load.publishers {
        let name = format!("s00/host-{i:05}");
        let topic = format!("sitewatch/v1/{name}/readings");
        let login = logins.then(|| (name.clone(), format!("secret-{i}")));
        let tcp = TcpStream::connect(addr).await.unwrap();
        tcp.set_nodelay(true).unwrap();
        let payload = Arc::clone(&load.payload);
        let start = Arc::clone(&start);
        let window = load.window;
        let job = Job {
            id: name,
            login,
            topic,
            payload,
            n: per,
            window,
            start,
        };
        tasks.push(match transport {
            Transport::Plain => tokio::spawn(publisher(tcp, job)),
            Transport::Tls(c) => {
                let server = rustls::pki_types::ServerName::try_from("127.0.0.1").unwrap();
                let tls = c.connect(server, tcp).await.unwrap();
                tokio::spawn(publisher(tls, job))
            }
        });
    }
    (start, tasks)
}

fn free() -> SocketAddr {
    StdListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
}

/// The embedded broker to its in-process link.
async fn embedded_local(load: &Load, config: BrokerConfig, transport: &Transport) -> Duration {
    let logins = config.password_file.is_some();
    let broker = Broker::start(config).await.unwrap();
    let addr = broker
        .local_addr(if matches!(transport, Transport::Tls(_)) {
            "listen_tls"
        } else {
            "listen_v4"
        })
        .unwrap();
    let mut sub = broker
        .local_subscriber(&["sitewatch/v1/+/+/readings"], 10_000)
        .unwrap();
    let total = load.messages / load.publishers * load.publishers;
    let (start, tasks) = publishers(load, addr, transport, logins).await;
    let t0 = Instant::now();
    start.wait().await;
    for _ in 0..total {
        sub.recv().await.unwrap();
    }
    let elapsed = t0.elapsed();
    for t in tasks {
        t.await.unwrap();
    }
    drop(sub);
    broker.shutdown().await;
    elapsed
}

/// Any broker to `mosquitto_sub >/dev/null`.
async fn to_mosquitto_sub(load: &Load, addr: SocketAddr) -> Duration {
    let total = load.messages / load.publishers * load.publishers;
    let port = addr.port().to_string();
    let id = format!("bench-{}", rand::random::<u32>());
    let common = [
        "-h",
        "127.0.0.1",
        "-p",
        port.as_str(),
        "-q",
        "1",
        "-c",
        "-i",
        id.as_str(),
        "-t",
        "sitewatch/v1/+/+/readings",
    ];
    // The session and its subscription first, so nothing published is missed.
    let made = Command::new("mosquitto_sub")
        .args(common)
        .arg("-E")
        .status()
        .unwrap();
    assert!(made.success());
    let mut sub = tokio::process::Command::new("mosquitto_sub")
        .args(common)
        .args(["-C", &total.to_string()])
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let (start, tasks) = publishers(load, addr, &Transport::Plain, false).await;
    let t0 = Instant::now();
    start.wait().await;
    let status = tokio::time::timeout(Duration::from_secs(300), sub.wait())
        .await
        .expect("mosquitto_sub got every message within 300 s")
        .unwrap();
    let elapsed = t0.elapsed();
    assert!(status.success());
    for t in tasks {
        t.await.unwrap();
    }
    elapsed
}

fn mosquitto(dir: &Path) -> Option<(std::process::Child, SocketAddr)> {
    let addr = free();
    let conf = dir.join("mosquitto.conf");
    std::fs::write(
        &conf,
        format!(
            "listener {} 127.0.0.1\nallow_anonymous true\npersistence false\n\
             max_queued_messages 0\nmax_inflight_messages 100\nlog_type error\n",
            addr.port()
        ),
    )
    .unwrap();
    let child = Command::new("/usr/sbin/mosquitto")
        .arg("-c")
        .arg(&conf)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .ok()?;
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::net::TcpStream::connect(addr).is_err() {
        assert!(Instant::now() < deadline, "mosquitto did not listen");
        std::thread::sleep(Duration::from_millis(20));
    }
    Some((child, addr))
}

fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl")
        .current_dir(dir)
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A CA and a server certificate for 127.0.0.1; the client's TLS connector.
fn pki(dir: &Path) -> (TlsFiles, tokio_rustls::TlsConnector) {
    let ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1"];
    openssl(
        dir,
        &[
            &["req", "-x509", "-nodes", "-days", "2"][..],
            &ec,
            &[
                "-keyout",
                "ca.key",
                "-out",
                "ca.pem",
                "-subj",
                "/CN=bench CA",
            ],
        ]
        .concat(),
    );
    openssl(
        dir,
        &[
            &["req", "-nodes"][..],
            &ec,
            &[
                "-keyout",
                "server.key",
                "-out",
                "server.csr",
                "-subj",
                "/CN=127.0.0.1",
            ],
        ]
        .concat(),
    );
    std::fs::write(dir.join("ext"), "subjectAltName=IP:127.0.0.1\n").unwrap();
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-days",
            "2",
            "-out",
            "server.pem",
            "-extfile",
            "ext",
        ],
    );
    use rustls::pki_types::{CertificateDer, pem::PemObject};
    let mut roots = rustls::RootCertStore::empty();
    for c in CertificateDer::pem_file_iter(dir.join("ca.pem")).unwrap() {
        roots.add(c.unwrap()).unwrap();
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let client = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    (
        TlsFiles {
            cert: dir.join("server.pem"),
            key: dir.join("server.key"),
            client_ca: None,
            require_certificate: false,
        },
        tokio_rustls::TlsConnector::from(Arc::new(client)),
    )
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn main() {
    // `cargo bench` passes `--bench`; `cargo test --benches` runs it with no
    // argument: then one quick round, so that the build is checked, not timed.
    let quick = !std::env::args().any(|a| a == "--bench");
    let load = Load {
        messages: if quick {
            2000
        } else {
            env("BENCH_MESSAGES", 50_000)
        },
        publishers: env("BENCH_PUBLISHERS", 8),
        window: env("BENCH_WINDOW", 100),
        payload: Arc::new(support::wire(1, 1, 20.0).1),
    };
    let runs = if quick { 1 } else { env("BENCH_RUNS", 3) };
    let dir = tempfile::tempdir().unwrap();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let loopback = || BrokerConfig::new(free(), free());
    let mut passwords = PasswordFile::default();
    for i in 0..load.publishers {
        passwords.set(
            &format!("s00/host-{i:05}"),
            Hash::new(format!("secret-{i}").as_bytes(), 101),
        );
    }
    let pw = dir.path().join("passwd");
    std::fs::write(&pw, passwords.render()).unwrap();
    let (tls_files, connector) = pki(dir.path());
    let with_auth = || {
        let mut c = loopback();
        c.password_file = Some(pw.clone());
        c.allow_anonymous = false;
        c
    };
    let with_tls = || {
        let mut c = with_auth();
        c.listen_tls = Some(free());
        c.tls = Some(tls_files.clone());
        c
    };
    let deep = || {
        let mut c = loopback();
        // The subscriber's session waits offline for a moment: queue it all.
        c.max_queued_messages = 10_000_000;
        c
    };
    let mosq = mosquitto(dir.path());

    let mut results: Vec<(&str, Duration)> = Vec::new();
    let scenarios: Vec<&str> = vec![
        "embedded -> local link",
        "embedded -> mosquitto_sub",
        "mosquitto -> mosquitto_sub",
        "embedded +auth -> local link",
        "embedded +auth+TLS -> local link",
    ];
    for name in &scenarios {
        if name.starts_with("mosquitto") && mosq.is_none() {
            println!("{name}: SKIPPED (no /usr/sbin/mosquitto)");
            continue;
        }
        let mut times = Vec::new();
        for _ in 0..runs {
            let t = rt.block_on(async {
                match *name {
                    "embedded -> local link" => {
                        embedded_local(&load, loopback(), &Transport::Plain).await
                    }
                    "embedded -> mosquitto_sub" => {
                        let b = Broker::start(deep()).await.unwrap();
                        let t = to_mosquitto_sub(&load, b.local_addr("listen_v4").unwrap()).await;
                        b.shutdown().await;
                        t
                    }
                    "mosquitto -> mosquitto_sub" => {
                        to_mosquitto_sub(&load, mosq.as_ref().unwrap().1).await
                    }
                    "embedded +auth -> local link" => {
                        embedded_local(&load, with_auth(), &Transport::Plain).await
                    }
                    _ => {
                        embedded_local(&load, with_tls(), &Transport::Tls(connector.clone())).await
                    }
                }
            });
            times.push(t);
        }
        let t = median(times);
        results.push((name, t));
    }
    let total = load.messages / load.publishers * load.publishers;
    println!(
        "{} messages of {} bytes (a 100-reading batch), {} publishers, window {}, median of {runs}:",
        total,
        load.payload.len(),
        load.publishers,
        load.window
    );
    let rate = |t: Duration| total as f64 / t.as_secs_f64();
    for (name, t) in &results {
        println!(
            "  {name:34} {:>9.0} msg/s  ({:.0} readings/s)",
            rate(*t),
            rate(*t) * 100.0
        );
    }
    let find = |n: &str| results.iter().find(|(m, _)| *m == n).map(|(_, t)| rate(*t));
    if let (Some(e), Some(m)) = (
        find("embedded -> local link"),
        find("mosquitto -> mosquitto_sub"),
    ) {
        println!("  embedded local link / mosquitto: {:.2}", e / m);
    }
    if let (Some(e), Some(m)) = (
        find("embedded -> mosquitto_sub"),
        find("mosquitto -> mosquitto_sub"),
    ) {
        println!(
            "  embedded / mosquitto, both to mosquitto_sub: {:.2}",
            e / m
        );
    }
    if let (Some(off), Some(on)) = (
        find("embedded -> local link"),
        find("embedded +auth+TLS -> local link"),
    ) {
        println!("  auth+TLS on / off: {:.2}", on / off);
    }
    if let Some((mut child, _)) = mosq {
        let _ = child.kill();
        let _ = child.wait();
    }
}
