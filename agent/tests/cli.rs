//! The binary's commands that need no broker: `check-config`, `once`, `--version`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::process::{Command, Output};

fn agent(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_sitewatch-agent"))
        .args(args)
        .output()
        .unwrap()
}

#[test]
fn check_config_prints_the_effective_config_of_the_shipped_example() {
    let example = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/agent.toml");
    let out = agent(&["check-config", example]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let printed = String::from_utf8(out.stdout).unwrap();
    assert!(printed.contains("site = \"bj1\""), "{printed}");
    assert!(printed.contains("[sources.host]"), "{printed}");
}

#[test]
fn check_config_exits_2_naming_the_file_and_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("agent.toml");
    std::fs::write(&path, "site = \"bj1\"\n[buffer]\nmax_mesages = 5\n").unwrap();
    let out = agent(&["check-config", path.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(stderr.contains(path.to_str().unwrap()), "{stderr}");
    assert!(stderr.contains("`buffer.max_mesages`"), "{stderr}");
    assert!(
        stderr.contains("expected `max_messages` or `max_bytes`"),
        "{stderr}"
    );
}

#[test]
fn once_prints_host_readings_as_json_lines() {
    let out = agent(&["once"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let lines: Vec<serde_json::Value> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert!(lines.iter().all(|r| r["src"] == "host" && r["ts"].is_i64()));
    assert!(lines.iter().any(|r| r["q"] == "memory_usage_ratio"));
}

#[test]
fn once_with_smart_enabled_runs_the_real_smartctl_and_prints_its_readings() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("agent.toml");
    // A disk that does not exist: smartctl answers with JSON saying so, on any
    // machine, and the disk's health is unknown and counted, not a failed poll.
    std::fs::write(
        &path,
        "site = \"bj1\"\n[sources.host]\nenabled = false\n\
         [sources.smart]\ndevices = [{ path = \"/dev/sitewatch-no-such-disk\" }]\n",
    )
    .unwrap();
    let out = agent(&["once", "--config", path.to_str().unwrap()]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let lines: Vec<serde_json::Value> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert!(
        lines
            .iter()
            .all(|r| r["src"] == "smart" && r["dev"] == "sitewatch-no-such-disk"),
        "{lines:?}"
    );
    let passed = lines
        .iter()
        .find(|r| r["q"] == "disk_smart_passed")
        .unwrap();
    assert_eq!(
        (&passed["value"], &passed["state"]),
        (&serde_json::Value::Null, &serde_json::json!("unknown"))
    );
    let errors = lines
        .iter()
        .find(|r| r["q"] == "smart_read_errors_total")
        .unwrap();
    assert_eq!(errors["value"], 1.0);
}

#[test]
fn run_without_config_or_site_is_a_config_error() {
    let out = agent(&["run"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--site"));
}

#[test]
fn version_names_the_binary() {
    let out = agent(&["--version"]);
    assert!(out.status.success());
    assert_eq!(
        String::from_utf8(out.stdout).unwrap().trim(),
        concat!("sitewatch-agent ", env!("CARGO_PKG_VERSION"))
    );
}
