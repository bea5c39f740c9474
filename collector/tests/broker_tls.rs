//! The embedded broker's TLS listener with client certificates made by
//! `openssl` in the test: the CN is the identity, a certificate from another CA
//! or none at all is refused, and a password still works where certificates
//! are optional.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod broker_common;

use broker_common::*;
use sitewatch_collector::broker::config::TlsFiles;

const STATE: &str = "sitewatch/v1/bj1/web-01/state";

struct Certs {
    ca: String,
    server: (String, String),
    agent: (String, String),
    other_agent: (String, String),
    rogue: (String, String),
}

fn certs(dir: &std::path::Path) -> Certs {
    let pki = Pki::new(dir);
    let ca = pki.ca("site");
    pki.ca("rogue");
    Certs {
        ca,
        server: pki.cert("site", "server", "/CN=127.0.0.1", true),
        // openssl's -subj escapes the '/' inside a value.
        agent: pki.cert("site", "agent", "/O=sitewatch/CN=bj1\\/web-01", false),
        other_agent: pki.cert("site", "other", "/CN=bj1\\/web-02", false),
        rogue: pki.cert("rogue", "rogue", "/CN=bj1\\/web-01", false),
    }
}

fn tls_args<'a>(
    c: &'a Certs,
    client: Option<&'a (String, String)>,
    rest: &[&'a str],
) -> Vec<&'a str> {
    let mut v = vec!["--cafile", c.ca.as_str()];
    if let Some((cert, key)) = client {
        v.extend(["--cert", cert.as_str(), "--key", key.as_str()]);
    }
    v.extend_from_slice(rest);
    v
}

#[test]
fn client_certificates_are_the_identity_and_those_of_another_ca_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let c = certs(dir.path());
    let mut cfg = config();
    cfg.listen_tls = Some(loopback0());
    cfg.tls = Some(TlsFiles {
        cert: c.server.0.clone().into(),
        key: c.server.1.clone().into(),
        client_ca: Some(c.ca.clone().into()),
        require_certificate: true,
    });
    cfg.allow_anonymous = false;
    let b = Running::start(cfg);
    let tls = b.port("listen_tls");
    let mut collector = b.local(&["sitewatch/v1/#"], 100);

    // CN bj1/web-01 is the agent bj1/web-01, in both versions.
    for (v, payload) in [("311", "birth-311"), ("5", "birth-5")] {
        publish(
            tls,
            &tls_args(
                &c,
                Some(&c.agent),
                &["-V", v, "-q", "1", "-r", "-t", STATE, "-m", payload],
            ),
        );
        collector.wait_for(STATE, payload);
    }
    // A user name sent with a certificate changes nothing (the CN is used).
    let (_, out) = pub_(
        tls,
        &tls_args(
            &c,
            Some(&c.other_agent),
            &[
                "-V",
                "5",
                "-u",
                "bj1/web-01",
                "-P",
                "x",
                "-q",
                "1",
                "-t",
                STATE,
                "-m",
                "forged",
            ],
        ),
    );
    assert!(out.contains("Not authorized"), "{out}");
    assert_eq!(
        b.metric("sitewatch_broker_denied_total{action=\"publish\",reason=\"other_host\"}"),
        1.0
    );

    // The same CN from another CA, or no certificate: the handshake fails.
    let (ok, out) = pub_(
        tls,
        &tls_args(&c, Some(&c.rogue), &["-t", STATE, "-m", "rogue"]),
    );
    assert!(!ok, "{out}");
    let (ok, out) = pub_(tls, &tls_args(&c, None, &["-t", STATE, "-m", "anonymous"]));
    assert!(!ok, "{out}");
    b.wait_metric(
        "sitewatch_broker_connects_total{result=\"tls_error\"}",
        |v| v == 2.0,
    );
    // Nor plain and anonymous on the other listeners.
    let (ok, _) = pub_(b.p(), &["-t", STATE, "-m", "plain"]);
    assert!(!ok);
    assert_eq!(
        b.metric("sitewatch_broker_connects_total{result=\"no_credentials\"}"),
        1.0
    );

    // The retained state is the agent's own.
    let mut fresh = b.local(&[STATE], 10);
    assert_eq!(fresh.next().payload, "birth-5".as_bytes());
}

#[test]
fn where_certificates_are_optional_a_password_works_over_tls() {
    let dir = tempfile::tempdir().unwrap();
    let c = certs(dir.path());
    let mut cfg = config();
    cfg.listen_tls = Some(loopback0());
    cfg.tls = Some(TlsFiles {
        cert: c.server.0.clone().into(),
        key: c.server.1.clone().into(),
        client_ca: Some(c.ca.clone().into()),
        require_certificate: false,
    });
    cfg.password_file = Some(password_file(dir.path(), &[("bj1/web-03", "pw3")]));
    cfg.allow_anonymous = false;
    let b = Running::start(cfg);
    let tls = b.port("listen_tls");
    let mut collector = b.local(&["sitewatch/v1/#"], 100);
    publish(
        tls,
        &tls_args(
            &c,
            None,
            &[
                "-u",
                "bj1/web-03",
                "-P",
                "pw3",
                "-q",
                "1",
                "-t",
                "sitewatch/v1/bj1/web-03/state",
                "-m",
                "pw",
            ],
        ),
    );
    collector.wait_for("sitewatch/v1/bj1/web-03/state", "pw");
    publish(
        tls,
        &tls_args(&c, Some(&c.agent), &["-q", "1", "-t", STATE, "-m", "cert"]),
    );
    collector.wait_for(STATE, "cert");
    let (ok, _) = pub_(tls, &tls_args(&c, None, &["-t", STATE, "-m", "nobody"]));
    assert!(!ok);
}

#[test]
fn tls_file_errors_name_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config();
    cfg.listen_tls = Some(loopback0());
    let missing = dir.path().join("missing.pem");
    cfg.tls = Some(TlsFiles {
        cert: missing.clone(),
        key: missing.clone(),
        client_ca: None,
        require_certificate: false,
    });
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let e = rt
        .block_on(sitewatch_collector::broker::Broker::start(cfg))
        .unwrap_err()
        .to_string();
    assert!(
        e.contains(&missing.display().to_string()) && e.contains("embedded_broker.tls.cert"),
        "{e}"
    );
}
