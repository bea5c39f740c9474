//! The collector's HTTP side as every Prometheus exporter has it: a web config
//! file in the exporter toolkit's format (TLS, basic auth with bcrypt hashes
//! made by `htpasswd -B`, client certificates), request timeouts and a
//! connection limit, checked with a real Prometheus server, curl and raw
//! sockets, against the real collector binary.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use sitewatch_tests::{
    curl, free_port,
    prometheus::Prometheus,
    scrape,
    sitewatch::{Broker, Collector},
    tls, wait,
};

/// A bcrypt hash as the exporter toolkit's docs make it: `htpasswd -nBC 10 ""`.
fn htpasswd(password: &str) -> String {
    let out = Command::new("htpasswd")
        .args(["-n", "-b", "-B", "-C", "10", "", password])
        .output()
        .expect("htpasswd (Debian package apache2-utils) is required");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .unwrap()
        .trim()
        .trim_start_matches(':')
        .to_owned()
}

fn write(dir: &Path, name: &str, text: &str) -> String {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path.display().to_string()
}

/// A collector on its own embedded broker with `web.yml` as its web config.
fn collector_with_web_config(dir: &Path, web_yml: &str) -> Collector {
    let web = write(dir, "web.yml", web_yml);
    Collector::spawn(
        dir,
        Broker::Embedded(free_port()),
        &["--web.config.file", &web],
    )
}

fn https(c: &Collector, path: &str) -> String {
    format!("https://127.0.0.1:{}{path}", c.http_port)
}

/// Waits for `/healthz` over TLS (it needs no credentials).
fn wait_tls_healthz(c: &Collector, ca: &str, extra: &[&str]) {
    let url = https(c, "/healthz");
    wait::until(Duration::from_secs(20), "/healthz over TLS", || {
        let args: Vec<&str> = ["--cacert", ca].iter().chain(extra).copied().collect();
        (curl::get(&url, &args).status == 200).then_some(())
    });
}

#[test]
fn prometheus_scrapes_the_collector_over_tls_with_basic_auth() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let certs = tls::make(d, "web");
    let collector = collector_with_web_config(
        d,
        &format!(
            "tls_server_config:\n  cert_file: {}\n  key_file: {}\nbasic_auth_users:\n  prometheus: {}\n",
            certs.cert,
            certs.key,
            htpasswd("s3cret")
        ),
    );
    wait_tls_healthz(&collector, &certs.ca, &[]);
    let good = write(d, "good.pw", "s3cret\n");
    let bad = write(d, "bad.pw", "guess\n");
    let target = format!("127.0.0.1:{}", collector.http_port);
    let job = |name: &str, password_file: &str| {
        format!(
            "  - job_name: {name}\n    scheme: https\n    tls_config:\n      ca_file: {}\n    \
             basic_auth:\n      username: prometheus\n      password_file: {password_file}\n    \
             static_configs:\n      - targets: ['{target}']\n",
            certs.ca
        )
    };
    let prometheus = Prometheus::with_scrape_configs(
        d,
        &format!("{}{}", job("sitewatch", &good), job("wrong", &bad)),
    );

    let up = wait::until(
        Duration::from_secs(30),
        "the sitewatch target scraped",
        || {
            prometheus
                .scraped_target("sitewatch")
                .filter(|t| t["health"] == "up")
        },
    );
    assert_eq!(up["scrapeUrl"], format!("https://{target}/metrics"), "{up}");
    let series = wait::until(
        Duration::from_secs(10),
        "a sitewatch series in Prometheus",
        || {
            let r = prometheus.query("sitewatch_collector_broker_connected{job=\"sitewatch\"}");
            (!r.is_empty()).then_some(r)
        },
    );
    assert_eq!(series[0]["value"][1], "1", "{series:?}");
    // The same target with a wrong password: Prometheus is told 401 (bcrypt
    // refusing a password is slow on purpose: an early scrape may time out).
    let refused = wait::until(
        Duration::from_secs(30),
        "the wrong password refused with 401",
        || {
            prometheus
                .scraped_target("wrong")
                .filter(|t| t["lastError"].as_str().unwrap_or("").contains("401"))
        },
    );
    assert_eq!(refused["health"], "down", "{refused}");
}

#[test]
fn without_or_with_a_wrong_password_curl_gets_401_and_healthz_stays_open() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let certs = tls::make(d, "web");
    let collector = collector_with_web_config(
        d,
        &format!(
            "tls_server_config:\n  cert_file: {}\n  key_file: {}\nbasic_auth_users:\n  prometheus: {}\n\
             http_server_config:\n  headers:\n    X-Content-Type-Options: nosniff\n",
            certs.cert,
            certs.key,
            htpasswd("s3cret")
        ),
    );
    wait_tls_healthz(&collector, &certs.ca, &[]);
    let ca = ["--cacert", certs.ca.as_str()];
    for path in ["/metrics", "/api/v1/hosts", "/api/v1/signals", "/nowhere"] {
        let none = curl::get(&https(&collector, path), &ca);
        assert_eq!(none.status, 401, "{path} without credentials: {none:?}");
        let wrong = curl::get(
            &https(&collector, path),
            &[&ca[..], &["-u", "prometheus:guess"]].concat(),
        );
        assert_eq!(wrong.status, 401, "{path} with a wrong password: {wrong:?}");
        let unknown = curl::get(
            &https(&collector, path),
            &[&ca[..], &["-u", "grafana:s3cret"]].concat(),
        );
        assert_eq!(
            unknown.status, 401,
            "{path} with an unknown user: {unknown:?}"
        );
    }
    let right = [&ca[..], &["-u", "prometheus:s3cret"]].concat();
    let metrics = curl::get(&https(&collector, "/metrics"), &right);
    assert_eq!(metrics.status, 200, "{metrics:?}");
    scrape::assert_promtool_accepts(&metrics.body);
    assert!(
        metrics
            .body
            .contains("sitewatch_collector_broker_connected 1")
    );
    let hosts = curl::get(&https(&collector, "/api/v1/hosts"), &right);
    assert_eq!((hosts.status, hosts.body.trim()), (200, "[]"), "{hosts:?}");
    // /healthz needs nothing.
    let health = curl::get(&https(&collector, "/healthz"), &ca);
    assert_eq!((health.status, health.body.as_str()), (200, "ok\n"));
    // The configured header is on every response; a plain-HTTP client on the
    // TLS port gets no answer at all.
    let headers = curl::get(
        &https(&collector, "/healthz"),
        &[&ca[..], &["-D", "-"]].concat(),
    );
    assert!(
        headers
            .body
            .to_ascii_lowercase()
            .contains("x-content-type-options: nosniff"),
        "{headers:?}"
    );
    let plain = curl::get(
        &format!("http://127.0.0.1:{}/metrics", collector.http_port),
        &[],
    );
    assert_eq!(plain.status, 0, "{plain:?}");
    // Every refusal was counted by reason: 4 of each.
    let counted = curl::get(&https(&collector, "/metrics"), &right);
    let samples = scrape::parse(&counted.body);
    let denied = |reason| {
        scrape::value(
            &samples,
            "sitewatch_collector_http_requests_denied_total",
            &[("reason", reason)],
        )
    };
    assert_eq!(denied("missing_credentials"), Some(4.0));
    assert_eq!(denied("wrong_password"), Some(4.0));
    assert_eq!(denied("unknown_user"), Some(4.0));
}

#[test]
fn require_and_verify_client_cert_refuses_a_client_without_a_certificate() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let certs = tls::make(d, "web");
    let client = tls::client(d, &certs, "prometheus", "prometheus");
    let stranger_ca = tls::make(d, "stranger");
    let stranger = tls::client(d, &stranger_ca, "stranger", "prometheus");
    let collector = collector_with_web_config(
        d,
        &format!(
            "tls_server_config:\n  cert_file: {}\n  key_file: {}\n  \
             client_auth_type: RequireAndVerifyClientCert\n  client_ca_file: {}\n",
            certs.cert, certs.key, certs.ca
        ),
    );
    let with_cert = ["--cert", client.cert.as_str(), "--key", client.key.as_str()];
    wait_tls_healthz(&collector, &certs.ca, &with_cert);
    let ca = ["--cacert", certs.ca.as_str()];
    let ok = curl::get(
        &https(&collector, "/metrics"),
        &[&ca[..], &with_cert].concat(),
    );
    assert_eq!(ok.status, 200, "{ok:?}");
    // Without a certificate, and with one from another CA: no TLS session, so
    // no HTTP answer, not even /healthz (the policy is the listener's).
    for path in ["/metrics", "/healthz"] {
        let none = curl::get(&https(&collector, path), &ca);
        assert_eq!(none.status, 0, "{path}: {none:?}");
        assert_ne!(none.exit, 0, "{path}: {none:?}");
    }
    let foreign = curl::get(
        &https(&collector, "/metrics"),
        &[&ca[..], &["--cert", &stranger.cert, "--key", &stranger.key]].concat(),
    );
    assert_eq!(foreign.status, 0, "{foreign:?}");
    let counted = curl::get(
        &https(&collector, "/metrics"),
        &[&ca[..], &with_cert].concat(),
    );
    let handshakes = scrape::value(
        &scrape::parse(&counted.body),
        "sitewatch_collector_http_connection_errors_total",
        &[("kind", "tls_handshake")],
    );
    assert!(handshakes >= Some(3.0), "{handshakes:?}");
}

/// A collector with `[http]` limits and no web config (plain HTTP).
fn collector_with_limits(dir: &Path, http: &str, extra: &[&str]) -> Collector {
    let config = write(dir, "collector.toml", &format!("[http]\n{http}"));
    let mut args = vec!["--config", config.as_str()];
    args.extend_from_slice(extra);
    Collector::spawn(dir, Broker::Embedded(free_port()), &args)
}

#[test]
fn a_client_that_sends_nothing_is_closed_after_the_header_timeout() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let plain = collector_with_limits(d, "header_read_timeout = \"1s\"\n", &[]);
    wait::until(Duration::from_secs(20), "/healthz", || {
        scrape::get(plain.http_port, "/healthz").filter(|r| r.status == 200)
    });
    let mut idle = TcpStream::connect(("127.0.0.1", plain.http_port)).unwrap();
    idle.set_read_timeout(Some(Duration::from_secs(15)))
        .unwrap();
    let opened = Instant::now();
    let mut buf = [0u8; 64];
    let n = idle
        .read(&mut buf)
        .expect("closed, not timed out on our side");
    assert_eq!(n, 0, "no bytes, only the close");
    assert!(
        opened.elapsed() < Duration::from_secs(10),
        "{:?}",
        opened.elapsed()
    );
    let samples = scrape::metrics(plain.http_port).unwrap();
    assert_eq!(
        scrape::value(
            &samples,
            "sitewatch_collector_http_connection_errors_total",
            &[("kind", "header_timeout")]
        ),
        Some(1.0)
    );

    // With TLS, the handshake itself is under the same timeout.
    let tls_dir = d.join("tls");
    std::fs::create_dir(&tls_dir).unwrap();
    let certs = tls::make(&tls_dir, "web");
    let web = write(
        &tls_dir,
        "web.yml",
        &format!(
            "tls_server_config:\n  cert_file: {}\n  key_file: {}\n",
            certs.cert, certs.key
        ),
    );
    let secure = collector_with_limits(
        &tls_dir,
        "header_read_timeout = \"1s\"\n",
        &["--web.config.file", &web],
    );
    wait_tls_healthz(&secure, &certs.ca, &[]);
    let mut silent = TcpStream::connect(("127.0.0.1", secure.http_port)).unwrap();
    silent
        .set_read_timeout(Some(Duration::from_secs(15)))
        .unwrap();
    let opened = Instant::now();
    assert_eq!(silent.read(&mut buf).expect("closed by the collector"), 0);
    assert!(
        opened.elapsed() < Duration::from_secs(10),
        "{:?}",
        opened.elapsed()
    );
}

/// Sends `GET /healthz` on a keep-alive connection and reads the one response.
fn healthz_keep_alive(stream: &mut TcpStream) -> std::io::Result<String> {
    stream.write_all(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")?;
    let mut raw = Vec::new();
    let mut buf = [0u8; 1024];
    loop {
        let n = stream.read(&mut buf)?;
        if n == 0 {
            break;
        }
        raw.extend_from_slice(&buf[..n]);
        let text = String::from_utf8_lossy(&raw);
        if let Some((head, body)) = text.split_once("\r\n\r\n") {
            let length: usize = head
                .lines()
                .find_map(|l| {
                    l.to_ascii_lowercase()
                        .strip_prefix("content-length:")
                        .map(|v| v.trim().parse().unwrap_or(0))
                })
                .unwrap_or(0);
            if body.len() >= length {
                return Ok(text.lines().next().unwrap_or("").to_owned());
            }
        }
    }
    Ok(String::from_utf8_lossy(&raw).into_owned())
}

#[test]
fn the_connection_limit_holds_and_a_closed_connection_frees_a_slot() {
    let dir = tempfile::tempdir().unwrap();
    let collector = collector_with_limits(
        dir.path(),
        "header_read_timeout = \"60s\"\n",
        &["--web.max-connections", "2"],
    );
    wait::until(Duration::from_secs(20), "/healthz", || {
        scrape::get(collector.http_port, "/healthz").filter(|r| r.status == 200)
    });
    // Two keep-alive connections, each answered once (so both hold a slot).
    let mut holders: Vec<TcpStream> = (0..2)
        .map(|_| {
            let mut s = TcpStream::connect(("127.0.0.1", collector.http_port)).unwrap();
            s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
            assert_eq!(healthz_keep_alive(&mut s).unwrap(), "HTTP/1.1 200 OK");
            s
        })
        .collect();
    // A third: the kernel completes its TCP handshake, the collector does not
    // accept it while both slots are held.
    let mut third = TcpStream::connect(("127.0.0.1", collector.http_port)).unwrap();
    third
        .set_read_timeout(Some(Duration::from_secs(2)))
        .unwrap();
    let waiting = healthz_keep_alive(&mut third);
    assert!(
        matches!(&waiting, Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut)),
        "the third connection was served past the limit: {waiting:?}"
    );
    // One holder leaves: the waiting connection is accepted and answered.
    drop(holders.pop());
    third
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut raw = Vec::new();
    let mut buf = [0u8; 256];
    while !String::from_utf8_lossy(&raw).contains("\r\n\r\nok\n") {
        let n = third.read(&mut buf).expect("answered once a slot is free");
        assert!(n > 0, "closed without an answer");
        raw.extend_from_slice(&buf[..n]);
    }
    assert!(String::from_utf8_lossy(&raw).starts_with("HTTP/1.1 200 OK"));
}

#[test]
fn a_changed_web_config_takes_effect_without_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let certs = tls::make(d, "web");
    let yaml = |hash: &str| {
        format!(
            "tls_server_config:\n  cert_file: {}\n  key_file: {}\nbasic_auth_users:\n  prometheus: {hash}\n",
            certs.cert, certs.key
        )
    };
    let collector = collector_with_web_config(d, &yaml(&htpasswd("first")));
    wait_tls_healthz(&collector, &certs.ca, &[]);
    let with = |password: &str| {
        curl::get(
            &https(&collector, "/api/v1/hosts"),
            &[
                "--cacert",
                &certs.ca,
                "-u",
                &format!("prometheus:{password}"),
            ],
        )
        .status
    };
    assert_eq!(with("first"), 200);
    // The password changes in place, as an operator would edit the file.
    std::fs::write(d.join("web.yml"), yaml(&htpasswd("second"))).unwrap();
    wait::until(Duration::from_secs(10), "the new password accepted", || {
        (with("second") == 200).then_some(())
    });
    assert_eq!(with("first"), 401, "the old password is refused");
    // A broken edit is refused and counted; the configuration in force stays.
    std::fs::write(
        d.join("web.yml"),
        "basic_auth_users:\n  prometheus: not-a-hash\n",
    )
    .unwrap();
    let reloads = |result: &str| {
        let m = curl::get(
            &https(&collector, "/metrics"),
            &["--cacert", &certs.ca, "-u", "prometheus:second"],
        );
        scrape::value(
            &scrape::parse(&m.body),
            "sitewatch_collector_web_config_reloads_total",
            &[("result", result)],
        )
    };
    wait::until(Duration::from_secs(10), "the broken edit counted", || {
        (reloads("error") == Some(1.0)).then_some(())
    });
    assert_eq!(with("second"), 200);
    assert_eq!(reloads("ok"), Some(1.0));
}
