//! `check-config` on the NUT keys and files: the shipped gateway example
//! (`packaging/examples/nut/`) passes with its users file; every unusable
//! file and invalid key is named with its path and what is wrong; the
//! shipped upsmon.conf logs in as a user the shipped users file has.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::{
    path::{Path, PathBuf},
    process::{Command, Output},
};

fn agent(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_sitewatch-agent"))
        .args(args)
        .output()
        .unwrap()
}

fn example(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../packaging/examples/nut")
        .join(name)
}

#[test]
fn the_shipped_gateway_example_passes_check_config_with_its_users_file() {
    let dir = tempfile::tempdir().unwrap();
    let text = std::fs::read_to_string(example("gateway-agent.toml"))
        .unwrap()
        .replace(
            "/etc/sitewatch/nut-upsd.users",
            example("gateway-upsd.users").to_str().unwrap(),
        );
    let path = dir.path().join("agent.toml");
    std::fs::write(&path, text).unwrap();
    let out = agent(&["check-config", path.to_str().unwrap()]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for key in [
        "[nut_server]",
        "runtime_below = \"5m\"",
        "[[nut_server.ups]]",
    ] {
        assert!(stdout.contains(key), "{key} not in:\n{stdout}");
    }
}

#[test]
fn the_shipped_upsmon_conf_logs_in_as_a_secondary_of_the_shipped_users_file() {
    let upsmon = std::fs::read_to_string(example("upsmon.conf")).unwrap();
    let monitor: Vec<&str> = upsmon
        .lines()
        .find(|l| l.starts_with("MONITOR "))
        .unwrap()
        .split_whitespace()
        .collect();
    // MONITOR <ups>@<host>:<port> <powervalue> <user> <password> <role>
    assert_eq!(monitor.len(), 6, "{monitor:?}");
    assert_eq!(monitor[1], "ups-a@gw-01.bj1.example:3493");
    assert_eq!(monitor[5], "secondary");
    let users = std::fs::read_to_string(example("gateway-upsd.users")).unwrap();
    let section = users
        .split(&format!("[{}]", monitor[3]))
        .nth(1)
        .unwrap_or_else(|| panic!("no [{}] in the users file", monitor[3]));
    let section = section.split('[').next().unwrap();
    assert!(section.contains("upsmon secondary"), "{section}");
    assert!(
        section.contains(&format!("password = {}", monitor[4])),
        "{section}"
    );
    // The example names the UPS the gateway example serves.
    let gateway = std::fs::read_to_string(example("gateway-agent.toml")).unwrap();
    assert!(gateway.contains("name = \"ups-a\"\ndevice = \"modbus/ups-a\""));
}

#[test]
fn check_config_names_every_unusable_nut_file_and_invalid_key() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let gone = d.join("gone").display().to_string();
    let empty = d.join("empty");
    std::fs::write(&empty, "").unwrap();
    let empty = empty.display().to_string();
    let writable = d.join("writable.users");
    std::fs::write(&writable, "[a]\npassword = x\nactions = SET\n").unwrap();
    let writable = writable.display().to_string();
    let not_pem = d.join("not.pem");
    std::fs::write(&not_pem, "not a certificate\n").unwrap();
    let not_pem = not_pem.display().to_string();
    let site = "site = \"bj1\"\n";
    let server = |extra: &str| {
        format!(
            "{site}[sources.nut]\n[[sources.nut.servers]]\nname = \"nas\"\naddress = \"10.0.0.9\"\n{extra}"
        )
    };
    let files: Vec<(String, &str, String, &str)> = vec![
        (
            format!("{site}[nut_server]\nusers_file = \"{gone}\"\n"),
            "nut_server.users_file",
            gone.clone(),
            "missing",
        ),
        (
            format!("{site}[nut_server]\nusers_file = \"{writable}\"\n"),
            "nut_server.users_file",
            writable.clone(),
            "read-only",
        ),
        (
            server(&format!("username = \"u\"\npassword_file = \"{gone}\"\n")),
            "sources.nut.servers[0].password_file",
            gone.clone(),
            "missing",
        ),
        (
            server(&format!("username = \"u\"\npassword_file = \"{empty}\"\n")),
            "sources.nut.servers[0].password_file",
            empty.clone(),
            "is empty",
        ),
        (
            server(&format!("tls_ca = \"{gone}\"\n")),
            "sources.nut.servers[0].tls_ca",
            gone.clone(),
            "missing",
        ),
        (
            server(&format!("tls_ca = \"{not_pem}\"\n")),
            "sources.nut.servers[0].tls_ca",
            not_pem.clone(),
            "no PEM certificate",
        ),
        (
            format!("{site}[nut_server.tls]\ncert = \"{not_pem}\"\nkey = \"{gone}\"\n"),
            "nut_server.tls.key",
            gone.clone(),
            "missing",
        ),
        (
            format!("{site}[nut_server.tls]\ncert = \"{not_pem}\"\nkey = \"{not_pem}\"\n"),
            "nut_server.tls.cert",
            not_pem.clone(),
            "no PEM certificate",
        ),
    ];
    let path = d.join("agent.toml");
    let shown = path.display().to_string();
    for (text, key, file, what) in &files {
        std::fs::write(&path, text).unwrap();
        let out = agent(&["check-config", &shown]);
        assert_eq!(out.status.code(), Some(2), "{text}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains(&format!("`{key}`")) && err.contains(file.as_str()) && err.contains(what),
            "{text}\nwanted {key}, {file}, {what}; got: {err}"
        );
    }
    let keys: Vec<(String, &str)> = vec![
        (
            format!("{site}[nut_server]\nlisten = [\"127.0.0.1\"]\n"),
            "nut_server.listen",
        ),
        (
            format!("{site}[[nut_server.ups]]\nname = \"ups a\"\ndevice = \"modbus/ups-a\"\n"),
            "nut_server.ups.name",
        ),
        (
            format!("{site}[[nut_server.ups]]\nname = \"ups\"\ndevice = \"ups-a\"\n"),
            "nut_server.ups.device",
        ),
        (
            format!("{site}[nut_server.fsd]\non_battery_for = \"0s\"\n"),
            "nut_server.fsd.on_battery_for",
        ),
        (
            server("username = \"u\"\n"),
            "sources.nut.servers.password_file",
        ),
        (server("address = \"x\"\n"), "address"),
        (
            server("tls_server_name = \"nas\"\n"),
            "sources.nut.servers.tls_server_name",
        ),
        (
            format!("{site}[sources.nut]\ninterval = \"1s\"\ntimeout = \"2s\"\n"),
            "sources.nut.timeout",
        ),
    ];
    for (text, key) in &keys {
        std::fs::write(&path, text).unwrap();
        let out = agent(&["check-config", &shown]);
        assert_eq!(out.status.code(), Some(2), "{text}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(key), "{text}\nwanted {key}; got: {err}");
    }
}
