//! The cost of trust on the HTTP side: one `/metrics` scrape over plain HTTP,
//! over TLS, and over TLS with basic authentication (the bcrypt check cached, as
//! after the first scrape), each on a kept-alive connection (what Prometheus
//! does) and on a new connection per scrape (a TLS handshake every time); and
//! one uncached bcrypt check at cost 10, what the cache saves per scrape.
//!
//! The peer, in the same run: Prometheus' node_exporter (Debian
//! `prometheus-node-exporter`, the exporter toolkit's own implementation of the
//! same web config) with its default collectors off, so that its scrape is as
//! small as the collector's 100-series one and the TLS and auth overhead shows.
//!
//! `cargo bench -p sitewatch-collector --bench scrape` (needs `openssl` for the
//! test certificates; node_exporter is skipped, and said so, when missing)
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use sitewatch_collector::http::{App, register_web, serve};
use sitewatch_collector::metrics::Exposition;
use sitewatch_collector::state::{State, StateConfig};
use sitewatch_collector::web::{Limits, WebSource};
use sitewatch_collector::{Clock, Shared};
use support::*;

const SIZES: [usize; 2] = [100, 10_000];
const NODE_EXPORTER: &str = "/usr/bin/prometheus-node-exporter";
const PASSWORD: &str = "bench-password";

fn openssl(dir: &Path, args: &[&str]) {
    let ok = Command::new("openssl")
        .current_dir(dir)
        .args(args)
        .output()
        .unwrap()
        .status
        .success();
    assert!(ok, "openssl {args:?}");
}

/// A CA and a server certificate for 127.0.0.1 (P-256, as the tests make).
fn certificates(dir: &Path) {
    std::fs::write(
        dir.join("ext.cnf"),
        "subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\n",
    )
    .unwrap();
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
            "ext.cnf",
        ],
    );
}

/// Starts a collector HTTP side over a state of `series` series with the web
/// config `yaml` (none: plain HTTP); returns its port.
fn start(
    rt: &tokio::runtime::Runtime,
    dir: &Path,
    series: usize,
    name: &str,
    yaml: Option<String>,
) -> u16 {
    let mut state = State::new(StateConfig::default());
    for h in 0..series.div_ceil(READINGS_PER_HOST) {
        state.apply(&message(h, 1, 1.5), false, T0);
    }
    let shared = Arc::new(Shared::new(state, Clock::Fixed(T0)));
    let web = match yaml {
        Some(text) => {
            let path = dir.join(format!("{name}.yml"));
            std::fs::write(&path, text).unwrap();
            WebSource::load(&path).unwrap()
        }
        None => WebSource::open(),
    };
    let web = Arc::new(web);
    let mut reg = Exposition::new(Arc::clone(&shared));
    register_web(reg.registry_mut(), &web);
    let listener = rt
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .unwrap();
    let port = listener.local_addr().unwrap().port();
    rt.spawn(serve(
        listener,
        App::new(shared, reg),
        web,
        Limits::default(),
        std::future::pending(),
    ));
    port
}

/// A node_exporter with only its own process metrics, on a free port.
fn node_exporter(dir: &Path, name: &str, yaml: Option<&str>) -> (std::process::Child, u16) {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut cmd = Command::new(NODE_EXPORTER);
    cmd.arg(format!("--web.listen-address=127.0.0.1:{port}"))
        .arg("--collector.disable-defaults")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null());
    if let Some(text) = yaml {
        let path = dir.join(format!("node-{name}.yml"));
        std::fs::write(&path, text).unwrap();
        cmd.arg(format!("--web.config.file={}", path.display()));
    }
    let child = cmd.spawn().unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            std::time::Instant::now() < deadline,
            "node_exporter did not listen"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    (child, port)
}

fn client(ca: &[u8], keep_alive: bool) -> reqwest::Client {
    let mut b = reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(ca).unwrap())
        .timeout(Duration::from_secs(10));
    if !keep_alive {
        b = b.pool_max_idle_per_host(0);
    }
    b.build().unwrap()
}

fn benches(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    certificates(d);
    let ca = std::fs::read(d.join("ca.pem")).unwrap();
    let tls = format!(
        "tls_server_config:\n  cert_file: {0}/server.pem\n  key_file: {0}/server.key\n",
        d.display()
    );
    let hash = bcrypt::hash(PASSWORD, 10).unwrap();
    let auth_yaml = format!("{tls}basic_auth_users:\n  prometheus: {hash}\n");
    let mut targets: Vec<(String, String, bool)> = Vec::new();
    for series in SIZES {
        let plain = start(&rt, d, series, &format!("plain-{series}"), None);
        let secure = start(&rt, d, series, &format!("tls-{series}"), Some(tls.clone()));
        let authed = start(
            &rt,
            d,
            series,
            &format!("auth-{series}"),
            Some(auth_yaml.clone()),
        );
        for (mode, url, auth) in [
            ("plain", format!("http://127.0.0.1:{plain}/metrics"), false),
            ("tls", format!("https://127.0.0.1:{secure}/metrics"), false),
            (
                "tls_basic_auth",
                format!("https://127.0.0.1:{authed}/metrics"),
                true,
            ),
        ] {
            targets.push((format!("sitewatch_{series}_series/{mode}"), url, auth));
        }
    }
    let mut peers = Vec::new();
    if Path::new(NODE_EXPORTER).exists() {
        for (mode, yaml, auth) in [
            ("plain", None, false),
            ("tls", Some(tls.clone()), false),
            ("tls_basic_auth", Some(auth_yaml.clone()), true),
        ] {
            let (child, port) = node_exporter(d, mode, yaml.as_deref());
            let scheme = if yaml.is_some() { "https" } else { "http" };
            targets.push((
                format!("node_exporter/{mode}"),
                format!("{scheme}://127.0.0.1:{port}/metrics"),
                auth,
            ));
            peers.push(child);
        }
    } else {
        eprintln!("SKIPPED: node_exporter ({NODE_EXPORTER}) not installed: no peer figures");
    }

    let mut g = c.benchmark_group("scrape");
    g.sample_size(30);
    g.measurement_time(Duration::from_secs(8));
    for keep_alive in [true, false] {
        let http = client(&ca, keep_alive);
        for (name, url, auth) in &targets {
            let scrape = || {
                let mut req = http.get(url);
                if *auth {
                    req = req.basic_auth("prometheus", Some(PASSWORD));
                }
                rt.block_on(async {
                    let r = req.send().await.unwrap();
                    assert_eq!(r.status(), 200, "{url}");
                    r.bytes().await.unwrap().len()
                })
            };
            let bytes = scrape(); // the first one pays for bcrypt
            eprintln!("{name}: {bytes} bytes");
            let id = format!(
                "{name}/{}",
                if keep_alive {
                    "keep_alive"
                } else {
                    "new_connection"
                }
            );
            g.bench_function(BenchmarkId::from_parameter(id), |b| b.iter(scrape));
        }
    }
    g.finish();
    for mut p in peers {
        let _ = p.kill();
        let _ = p.wait();
    }

    let mut g = c.benchmark_group("bcrypt");
    g.sample_size(10);
    g.bench_function("verify_cost_10_uncached", |b| {
        b.iter(|| assert!(bcrypt::verify(PASSWORD, &hash).unwrap()))
    });
    g.finish();
}

criterion_group!(scrape_group, benches);
criterion_main!(scrape_group);
