//! The binary's command line: check-config, and failing early and clearly.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::net::TcpListener;
use std::process::Command;

fn collector() -> Command {
    Command::new(env!("CARGO_BIN_EXE_sitewatch-collector"))
}

#[test]
fn check_config_accepts_the_shipped_config() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/config/collector.toml");
    let out = collector().args(["check-config", path]).output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).ends_with(": ok\n"));
}

#[test]
fn check_config_names_the_file_and_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.toml");
    std::fs::write(&path, "[state]\nstale_factor = 3\nlost_after = 2\n").unwrap();
    let out = collector().arg("check-config").arg(&path).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("bad.toml") && err.contains("lost_after"),
        "{err}"
    );

    std::fs::write(
        &path,
        "[mqtt]\nurl = \"mqtt://b\"\nusername = \"u\"\npassword_file = \"/nonexistent/pw\"\n",
    )
    .unwrap();
    let out = collector().arg("check-config").arg(&path).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("/nonexistent/pw") && err.contains("password_file"),
        "{err}"
    );
}

#[test]
fn check_config_names_the_key_of_bad_signals_and_alertmanager_values() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.toml");
    for (text, key) in [
        // An unknown cause.
        ("[signals.powr]\nenabled = true\n", "powr"),
        ("[signals]\nstartup_grace = \"-30s\"\n", "startup_grace"),
        (
            "[signals.cooling]\nwarning_celsius = 40.0\n",
            "signals.cooling.warning_celsius",
        ),
        (
            "[alertmanager]\nurl = \"http://am:9093\"\nresend_interval = \"soon\"\n",
            "resend_interval",
        ),
        ("[alertmanager]\nurl = \"am:9093\"\n", "alertmanager.url"),
    ] {
        std::fs::write(&path, text).unwrap();
        let out = collector().arg("check-config").arg(&path).output().unwrap();
        assert_eq!(out.status.code(), Some(2), "{text}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains("bad.toml") && err.contains(key),
            "{text}: {err}"
        );
    }
    std::fs::write(
        &path,
        "[alertmanager]\nurl = \"http://am:9093\"\nusername = \"u\"\npassword_file = \"/nonexistent/am\"\n",
    )
    .unwrap();
    let out = collector().arg("check-config").arg(&path).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("/nonexistent/am") && err.contains("alertmanager.password_file"),
        "{err}"
    );
}

#[test]
fn check_config_accepts_the_signals_example() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("signals.toml");
    // Its topology names the collectors; this one is collector-bj1.
    let example = format!(
        "name = \"collector-bj1\"\n{}",
        include_str!("../../signals/example.toml")
    );
    std::fs::write(&path, &example).unwrap();
    let out = collector().arg("check-config").arg(&path).output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn a_busy_port_is_an_error_naming_the_address() {
    let busy = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = busy.local_addr().unwrap();
    let free = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let free5 = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    // The embedded broker's port is taken.
    let out = collector()
        .args([
            "--listen",
            &free.to_string(),
            "--embedded-broker",
            &addr.to_string(),
        ])
        .args(["--embedded-broker-v5", &free5.to_string()])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains(&addr.to_string()), "{err}");
    // The HTTP port is taken.
    let out = collector()
        .args([
            "--listen",
            &addr.to_string(),
            "--mqtt",
            "mqtt://127.0.0.1:1",
        ])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains(&addr.to_string()), "{err}");
}

#[test]
fn an_embedded_broker_beyond_loopback_without_authentication_refuses_to_start() {
    let free = |ip: &str| {
        TcpListener::bind(format!("{ip}:0"))
            .unwrap()
            .local_addr()
            .unwrap()
            .port()
    };
    let (http, mqtt, mqtt5) = (free("127.0.0.1"), free("0.0.0.0"), free("0.0.0.0"));
    let out = collector()
        .args(["--listen", &format!("127.0.0.1:{http}")])
        .args(["--embedded-broker", &format!("0.0.0.0:{mqtt}")])
        .args(["--embedded-broker-v5", &format!("0.0.0.0:{mqtt5}")])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&format!("listen_v4 = 0.0.0.0:{mqtt}"))
            && err.contains("embedded_broker.auth.password_file")
            && err.contains("allow_anonymous = true"),
        "{err}"
    );
    // The same from a file, caught by check-config.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("exposed.toml");
    std::fs::write(&path, "[embedded_broker]\nlisten_v4 = \"0.0.0.0:1883\"\n").unwrap();
    let out = collector().arg("check-config").arg(&path).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("exposed.toml: embedded_broker.auth: listen_v4"),
        "{err}"
    );
    // Asked for explicitly, it is accepted.
    std::fs::write(
        &path,
        "[embedded_broker]\nlisten_v4 = \"0.0.0.0:1883\"\n[embedded_broker.auth]\nallow_anonymous = true\n",
    )
    .unwrap();
    let out = collector().arg("check-config").arg(&path).output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn check_config_checks_the_embedded_brokers_files_naming_key_and_path() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("broker.toml");
    let not_a_dir = dir.path().join("a-file");
    std::fs::write(&not_a_dir, "").unwrap();
    let bad_pw = dir.path().join("bad.passwd");
    std::fs::write(&bad_pw, "user-without-hash\n").unwrap();
    let missing = dir.path().join("missing");
    for (text, key, shown) in [
        (
            format!(
                "[embedded_broker.auth]\npassword_file = \"{}\"\n",
                missing.display()
            ),
            "embedded_broker.auth.password_file",
            missing.display().to_string(),
        ),
        (
            format!(
                "[embedded_broker.auth]\npassword_file = \"{}\"\n",
                bad_pw.display()
            ),
            "line 1",
            bad_pw.display().to_string(),
        ),
        (
            format!(
                "[embedded_broker]\nlisten_tls = \"127.0.0.1:8883\"\n[embedded_broker.tls]\ncert = \"{0}\"\nkey = \"{0}\"\n",
                missing.display()
            ),
            "embedded_broker.tls.cert",
            missing.display().to_string(),
        ),
        (
            format!(
                "[embedded_broker]\nstate_dir = \"{}/x\"\n",
                not_a_dir.display()
            ),
            "embedded_broker.state_dir",
            "is not a directory".to_owned(),
        ),
    ] {
        std::fs::write(&path, &text).unwrap();
        let out = collector().arg("check-config").arg(&path).output().unwrap();
        assert_eq!(out.status.code(), Some(2), "{text}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(key) && err.contains(&shown), "{text}: {err}");
    }
}

#[test]
fn check_config_refuses_a_topology_without_this_collectors_name_in_it() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("c.toml");
    let topology = "[[signals.topology.collectors]]\nname = \"c-a\"\nsite = \"a\"\n\
                    [[signals.topology.collectors]]\nname = \"c-b\"\nsite = \"b\"\n\
                    [[signals.topology.collectors]]\nname = \"w\"\nsite = \"w\"\nwitness = true\n";
    for (head, expected) in [
        ("", "name: set this collector's name"),
        (
            "name = \"c-x\"\n",
            "is not one of [[signals.topology.collectors]]",
        ),
    ] {
        std::fs::write(&path, format!("{head}{topology}")).unwrap();
        let out = collector().arg("check-config").arg(&path).output().unwrap();
        assert_eq!(out.status.code(), Some(2));
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(expected), "{err}");
    }
    std::fs::write(&path, format!("name = \"c-b\"\n{topology}")).unwrap();
    let out = collector().arg("check-config").arg(&path).output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| o.stdout.starts_with(b"0\n"))
}

/// Every file a collector configuration names, missing, unreadable or of the
/// wrong kind: check-config exits 2 naming the file, the key, the path and what
/// is wrong; the web config file's own files are named by their YAML key too.
#[test]
fn check_config_names_the_key_and_path_of_every_unusable_file() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let present = d.join("present");
    std::fs::write(&present, "x\n").unwrap();
    let p = present.display().to_string();
    let gone = d.join("gone").display().to_string();
    // Unreadable even for root: a path through a file.
    let through = format!("{p}/inside");
    let folder = d.display().to_string();
    let written = std::cell::Cell::new(0);
    let web = |yaml: &str| {
        written.set(written.get() + 1);
        let path = d.join(format!("web-{}.yml", written.get()));
        std::fs::write(&path, yaml).unwrap();
        path.display().to_string()
    };
    let mqtts = "[mqtt]\nurl = \"mqtts://broker\"\n";
    let am = "[alertmanager]\nurl = \"http://am:9093\"\n";
    let cases: Vec<(String, &str, String, &str)> = vec![
        (
            format!("[mqtt]\nurl = \"mqtt://b\"\nusername = \"u\"\npassword_file = \"{gone}\"\n"),
            "mqtt.password_file",
            gone.clone(),
            "missing",
        ),
        (
            format!(
                "[mqtt]\nurl = \"mqtt://b\"\nusername = \"u\"\npassword_file = \"{through}\"\n"
            ),
            "mqtt.password_file",
            through.clone(),
            "unreadable",
        ),
        (
            format!("{mqtts}[mqtt.tls]\nca = \"{folder}\"\n"),
            "mqtt.tls.ca",
            folder.clone(),
            "not a file",
        ),
        (
            format!("{mqtts}[mqtt.tls]\nca = \"{p}\"\ncert = \"{gone}\"\nkey = \"{p}\"\n"),
            "mqtt.tls.cert",
            gone.clone(),
            "missing",
        ),
        (
            format!("{mqtts}[mqtt.tls]\nca = \"{p}\"\ncert = \"{p}\"\nkey = \"{gone}\"\n"),
            "mqtt.tls.key",
            gone.clone(),
            "missing",
        ),
        (
            format!("{am}username = \"u\"\npassword_file = \"{gone}\"\n"),
            "alertmanager.password_file",
            gone.clone(),
            "missing",
        ),
        (
            format!("{am}bearer_token_file = \"{gone}\"\n"),
            "alertmanager.bearer_token_file",
            gone.clone(),
            "missing",
        ),
        (
            format!("{am}[alertmanager.tls]\nca = \"{gone}\"\n"),
            "alertmanager.tls.ca",
            gone.clone(),
            "missing",
        ),
        (
            format!("web_config_file = \"{gone}\"\n"),
            "web_config_file",
            gone.clone(),
            "missing",
        ),
        (
            format!(
                "web_config_file = \"{}\"\n",
                web(&format!(
                    "tls_server_config:\n  cert_file: {gone}\n  key_file: {p}\n"
                ))
            ),
            "tls_server_config.cert_file",
            gone.clone(),
            "missing",
        ),
        (
            format!(
                "web_config_file = \"{}\"\n",
                web(&format!(
                    "tls_server_config:\n  cert_file: {p}\n  key_file: {gone}\n"
                ))
            ),
            "tls_server_config.key_file",
            gone.clone(),
            "missing",
        ),
        (
            format!(
                "web_config_file = \"{}\"\n",
                web(&format!(
                    "tls_server_config:\n  cert_file: {p}\n  key_file: {p}\n  \
                     client_auth_type: RequireAndVerifyClientCert\n  client_ca_file: {gone}\n"
                ))
            ),
            "tls_server_config.client_ca_file",
            gone.clone(),
            "missing",
        ),
        (
            format!(
                "web_config_file = \"{}\"\n",
                web(&format!(
                    "tls_server_config:\n  cert_file: {p}\n  key_file: {p}\n"
                ))
            ),
            "tls_server_config.cert_file",
            p.clone(),
            "holds no PEM certificate",
        ),
        (
            format!(
                "web_config_file = \"{}\"\n",
                web("basic_auth_users:\n  prometheus: plain-text-password\n")
            ),
            "basic_auth_users.prometheus",
            String::new(),
            "is not a bcrypt hash",
        ),
    ];
    let config = d.join("collector.toml");
    for (text, key, path, what) in &cases {
        std::fs::write(&config, text).unwrap();
        let out = collector()
            .arg("check-config")
            .arg(&config)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "{text}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains(&config.display().to_string())
                && err.contains(key)
                && err.contains(path.as_str())
                && err.contains(what),
            "{text}\nwanted {key}, {path}, {what}; got: {err}"
        );
    }
    // Permission bits: only a non-root user is refused by them.
    use std::os::unix::fs::PermissionsExt;
    let secret = d.join("secret");
    std::fs::write(&secret, "pw\n").unwrap();
    std::fs::set_permissions(&secret, std::fs::Permissions::from_mode(0o000)).unwrap();
    if is_root() {
        println!(
            "SKIPPED: mode 000 files are readable by root (the unreadable case above covers it)"
        );
    } else {
        std::fs::write(
            &config,
            format!(
                "[mqtt]\nurl = \"mqtt://b\"\nusername = \"u\"\npassword_file = \"{}\"\n",
                secret.display()
            ),
        )
        .unwrap();
        let out = collector()
            .arg("check-config")
            .arg(&config)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2));
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains("mqtt.password_file") && err.contains("unreadable"),
            "{err}"
        );
    }
}
