//! The binary's commands that need no broker: `check-config`, `once`, `--version`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::process::{Command, Output};

fn agent(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_sitewatch-agent"))
        .args(args)
        .output()
        .unwrap()
}

// The shipped example and the file checks name every source.
#[cfg(all(
    feature = "host",
    feature = "smart",
    feature = "modbus",
    feature = "ipmi",
    feature = "redfish"
))]
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
        stderr.contains("expected one of `dir`, `fsync`, `max_messages`, `max_bytes`"),
        "{stderr}"
    );
}

#[cfg(feature = "host")]
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
    // A CPU share needs two samples 200 ms apart: `once` does not wait for
    // the second, it leaves the share out (`run` has it from the first batch).
    assert!(
        !lines.iter().any(|r| r["q"] == "cpu_usage_ratio"),
        "once waited for a CPU sample: {lines:?}"
    );
}

#[cfg(all(feature = "host", feature = "smart"))]
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

/// Every file a configuration names, unusable in each way: check-config exits 2
/// naming the file, the key, the path and what is wrong; `run` refuses the same
/// configuration with exit 2 before it starts anything.
#[cfg(all(
    feature = "host",
    feature = "smart",
    feature = "modbus",
    feature = "ipmi",
    feature = "redfish"
))]
#[test]
fn check_config_names_the_key_and_path_of_every_unusable_file() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let present = d.join("present");
    std::fs::write(&present, "not a certificate\n").unwrap();
    let p = present.display().to_string();
    let gone = d.join("gone").display().to_string();
    let not_exec = d.join("smartctl");
    std::fs::write(&not_exec, "#!/bin/sh\n").unwrap();
    std::fs::set_permissions(&not_exec, std::fs::Permissions::from_mode(0o644)).unwrap();
    let not_exec = not_exec.display().to_string();
    let bad_profile = d.join("ups.toml");
    std::fs::write(&bad_profile, "[device]\nname = 1\n").unwrap();
    let bad_profile = bad_profile.display().to_string();
    let site = "site = \"bj1\"\n";
    let tls = "[mqtt]\nurl = \"mqtts://broker\"\n[mqtt.tls]\n";
    let bmc = |password: &str, state: &str| {
        format!(
            "{site}[sources.ipmi]\n{state}[[sources.ipmi.bmcs]]\nname = \"r1\"\n\
             address = \"10.0.0.1\"\nusername = \"u\"\npassword_file = \"{password}\"\n"
        )
    };
    let modbus = |profile: &str| {
        format!(
            "{site}[sources.modbus]\n[[sources.modbus.devices]]\nname = \"ups-a\"\n\
             address = \"tcp://10.0.0.2:502\"\nprofile = \"{profile}\"\n"
        )
    };
    let redfish = |extra: &str| {
        format!(
            "{site}[sources.redfish]\n[[sources.redfish.endpoints]]\nname = \"bmc\"\n\
             url = \"https://10.0.0.3\"\n{extra}"
        )
    };
    let cases: Vec<(String, &str, String, &str)> = vec![
        (
            format!("{site}[mqtt]\nusername = \"u\"\npassword_file = \"{gone}\"\n"),
            "mqtt.password_file",
            gone.clone(),
            "missing",
        ),
        (
            format!("{site}{tls}ca = \"{gone}\"\n"),
            "mqtt.tls.ca",
            gone.clone(),
            "missing",
        ),
        (
            format!("{site}{tls}ca = \"{}\"\n", d.display()),
            "mqtt.tls.ca",
            d.display().to_string(),
            "not a file",
        ),
        (
            format!("{site}{tls}ca = \"{p}\"\ncert = \"{gone}\"\nkey = \"{p}\"\n"),
            "mqtt.tls.cert",
            gone.clone(),
            "missing",
        ),
        (
            format!("{site}{tls}ca = \"{p}\"\ncert = \"{p}\"\nkey = \"{gone}\"\n"),
            "mqtt.tls.key",
            gone.clone(),
            "missing",
        ),
        (
            format!("{site}{tls}ca = \"{p}\"\n"),
            "mqtt.tls.ca",
            p.clone(),
            "holds no PEM certificate",
        ),
        (
            bmc(&gone, ""),
            "sources.ipmi.bmcs[0].password_file",
            gone.clone(),
            "missing",
        ),
        (
            bmc(&p, &format!("state_dir = \"{p}/ipmi\"\n")),
            "sources.ipmi.state_dir",
            format!("{p}/ipmi"),
            "not a directory",
        ),
        (
            modbus(&gone),
            "sources.modbus.devices[0].profile",
            gone.clone(),
            "missing",
        ),
        (
            modbus(&bad_profile),
            "sources.modbus.devices[0].profile",
            bad_profile.clone(),
            "modbus profile",
        ),
        (
            format!("{site}[sources.smart]\nsmartctl = \"{gone}\"\n"),
            "sources.smart.smartctl",
            gone.clone(),
            "missing",
        ),
        (
            format!("{site}[sources.smart]\nsmartctl = \"{not_exec}\"\n"),
            "sources.smart.smartctl",
            not_exec.clone(),
            "not executable",
        ),
        (
            redfish(&format!("username = \"ro\"\npassword_file = \"{gone}\"\n")),
            "sources.redfish.endpoints[0].password_file",
            gone.clone(),
            "missing",
        ),
        (
            redfish(&format!("ca_file = \"{p}\"\n")),
            "sources.redfish.endpoints[0].ca_file",
            p.clone(),
            "holds no PEM certificate",
        ),
    ];
    let path = d.join("agent.toml");
    let shown = path.display().to_string();
    for (text, key, file, what) in &cases {
        std::fs::write(&path, text).unwrap();
        let out = agent(&["check-config", &shown]);
        assert_eq!(out.status.code(), Some(2), "{text}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains(&shown)
                && err.contains(&format!("`{key}`"))
                && err.contains(file.as_str())
                && err.contains(what),
            "{text}\nwanted {key}, {file}, {what}; got: {err}"
        );
    }
    // `run` says the same and does not start.
    std::fs::write(&path, &cases[0].0).unwrap();
    let out = agent(&["run", "--config", &shown]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("mqtt.password_file"));
    // A state directory that does not exist yet, under a writable one, is fine:
    // the agent creates it.
    std::fs::write(
        &path,
        bmc(&p, &format!("state_dir = \"{}/state/ipmi\"\n", d.display())),
    )
    .unwrap();
    let out = agent(&["check-config", &shown]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn check_config_refuses_the_packaged_placeholder_site_saying_so() {
    let packaged = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../packaging/config/agent.toml"
    );
    let out = agent(&["check-config", packaged]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("\"CHANGE-ME\" is the packaged placeholder") && err.contains("`site`"),
        "{err}"
    );
}

#[cfg(feature = "redfish")]
#[test]
fn check_config_refuses_a_redfish_url_with_a_path_naming_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("agent.toml");
    std::fs::write(
        &path,
        "site = \"bj1\"\n[sources.redfish]\n[[sources.redfish.endpoints]]\nname = \"bmc\"\n\
         url = \"https://10.0.0.3/redfish/v1\"\n",
    )
    .unwrap();
    let out = agent(&["check-config", path.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(
        stderr.contains("sources.redfish.endpoints.url") && stderr.contains("adds /redfish/v1/"),
        "{stderr}"
    );
}
