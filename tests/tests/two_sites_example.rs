//! The shipped two-site example (`packaging/examples/two-sites/`) is loadable
//! as shipped: every collector file passes `sitewatch-collector check-config`,
//! every agent file `sitewatch-agent check-config`, and the sites' broker
//! (the shipped `packaging/mosquitto/sitewatch.conf` with the example's ACL)
//! starts in mosquitto, where each collector of the topology reads what the
//! agents of both sites publish. The files name `/etc/sitewatch/...` and
//! `/var/lib/sitewatch/...`: the test points those at a temporary directory
//! holding certificates made with `openssl` (check-config opens every file).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use sitewatch_tests::mosquitto::Mosquitto;
use sitewatch_tests::sitewatch::bin;
use sitewatch_tests::{free_port, tls, wait};

fn example_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../packaging/examples/two-sites")
}

fn example(name: &str) -> String {
    let path = example_dir().join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The example's files of one kind, by name.
fn files(prefix: &str) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(example_dir())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with(prefix) && n.ends_with(".toml"))
        .collect();
    names.sort();
    names
}

/// `/etc/sitewatch/<file>` and `/var/lib/sitewatch/<dir>` made real under
/// `root`: keys and certificates from a throwaway CA, anything else a
/// one-line placeholder secret; returns the text with the paths rewritten.
fn localize(text: &str, root: &Path, certs: &tls::Certs) -> String {
    let etc = root.join("etc");
    let var = root.join("var");
    std::fs::create_dir_all(&etc).unwrap();
    for line in text.lines() {
        for (prefix, _) in [("/etc/sitewatch/", ()), ("/var/lib/sitewatch/", ())] {
            let Some(at) = line.find(prefix) else {
                continue;
            };
            let rest = &line[at + prefix.len()..];
            let name: String = rest
                .chars()
                .take_while(|c| !matches!(c, '"' | '\'' | ' '))
                .collect();
            if prefix.starts_with("/var") {
                std::fs::create_dir_all(var.join(&name)).unwrap();
                continue;
            }
            let source = if name == "ca.pem" {
                Some(&certs.ca)
            } else if name.ends_with(".key") {
                Some(&certs.key)
            } else if name.ends_with(".pem") {
                Some(&certs.cert)
            } else {
                None
            };
            let dest = etc.join(&name);
            match source {
                Some(src) => {
                    std::fs::copy(src, &dest).unwrap();
                }
                None => std::fs::write(&dest, "placeholder-secret\n").unwrap(),
            }
        }
    }
    text.replace("/etc/sitewatch/", &format!("{}/", etc.display()))
        .replace("/var/lib/sitewatch/", &format!("{}/", var.display()))
}

fn check_config(program: &str, root: &Path, certs: &tls::Certs, name: &str) {
    let path = root.join(name);
    std::fs::write(&path, localize(&example(name), root, certs)).unwrap();
    let out = Command::new(bin(program))
        .arg("check-config")
        .arg(&path)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{program} check-config {name}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn every_collector_file_of_the_two_site_example_passes_check_config() {
    let dir = tempfile::tempdir().unwrap();
    let certs = tls::make(dir.path(), "example");
    let names = files("collector-");
    assert_eq!(
        names,
        [
            "collector-bj1.toml",
            "collector-sh1.toml",
            "collector-witness.toml"
        ]
    );
    for name in &names {
        check_config("sitewatch-collector", dir.path(), &certs, name);
    }
}

#[test]
fn every_agent_file_of_the_two_site_example_passes_check_config_and_is_dual_homed() {
    let dir = tempfile::tempdir().unwrap();
    let certs = tls::make(dir.path(), "example");
    let names = files("agent-");
    assert_eq!(names, ["agent-bj1-web-01.toml", "agent-sh1-web-01.toml"]);
    for name in &names {
        check_config("sitewatch-agent", dir.path(), &certs, name);
        let text = example(name);
        assert_eq!(text.matches("[[mqtt.brokers]]").count(), 2, "{name}");
    }
}

#[test]
fn the_three_collectors_agree_on_one_topology() {
    let topology = |name: &str| {
        let text = example(name);
        let at = text.find("[signals.topology]").unwrap();
        let end = text[at..].find("\n\n").map_or(text.len(), |e| at + e);
        text[at..end].to_owned()
    };
    let bj1 = topology("collector-bj1.toml");
    assert_eq!(bj1, topology("collector-sh1.toml"));
    assert_eq!(bj1, topology("collector-witness.toml"));
}

/// One `key value` line of the shipped mosquitto configuration replaced; the
/// line must be there (the test fails if the shipped file changes shape).
fn rewrite(conf: &str, rewrites: &[(&str, String)]) -> String {
    let mut found = vec![false; rewrites.len()];
    let mut out = String::new();
    for line in conf.lines() {
        let hit = rewrites
            .iter()
            .enumerate()
            .find(|(i, (k, _))| !found[*i] && line.starts_with(k));
        match hit {
            Some((i, (_, value))) => {
                found[i] = true;
                out.push_str(value);
            }
            None => out.push_str(line),
        }
        out.push('\n');
    }
    assert!(found.iter().all(|f| *f), "{rewrites:?} not all in the conf");
    out
}

#[test]
fn the_sites_broker_with_the_example_acl_lets_every_collector_read_the_agents() {
    if !sitewatch_tests::have("mosquitto") {
        eprintln!("SKIPPED: mosquitto is not installed");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let certs = tls::make(d, "broker");
    let acl = d.join("sitewatch.acl");
    std::fs::write(&acl, example("mosquitto-sitewatch.acl")).unwrap();
    let passwd = d.join("sitewatch.passwd");
    std::fs::write(&passwd, "").unwrap();
    let (tls_port, password_port) = (free_port(), free_port());
    let shipped = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../packaging/mosquitto/sitewatch.conf"),
    )
    .unwrap();
    let conf = rewrite(
        &shipped,
        &[
            ("acl_file", format!("acl_file {}", acl.display())),
            (
                "password_file",
                format!("password_file {}", passwd.display()),
            ),
            (
                "persistence true",
                format!(
                    "persistence true\npersistence_location {}/\nlog_dest stderr",
                    d.display()
                ),
            ),
            ("listener 8883", format!("listener {tls_port} 127.0.0.1")),
            ("cafile", format!("cafile {}", certs.ca)),
            ("certfile", format!("certfile {}", certs.cert)),
            ("keyfile", format!("keyfile {}", certs.key)),
            (
                "listener 8884",
                format!("listener {password_port} 127.0.0.1"),
            ),
            ("certfile", format!("certfile {}", certs.cert)),
            ("keyfile", format!("keyfile {}", certs.key)),
        ],
    );
    let _broker = Mosquitto::start_config(d, &conf, tls_port);
    let client = |stem: &str, cn: &str| tls::client(d, &certs, stem, cn);
    let tls_args = |c: &tls::ClientCert| {
        vec![
            "-h".to_owned(),
            "127.0.0.1".to_owned(),
            "-p".to_owned(),
            tls_port.to_string(),
            "--cafile".to_owned(),
            certs.ca.clone(),
            "--cert".to_owned(),
            c.cert.clone(),
            "--key".to_owned(),
            c.key.clone(),
        ]
    };
    // An agent of each site publishes its retained state.
    for host in ["bj1/web-01", "sh1/web-01"] {
        let c = client(&host.replace('/', "-"), host);
        let out = Command::new("mosquitto_pub")
            .args(tls_args(&c))
            .args(["-q", "1", "-r", "-t", &format!("sitewatch/v1/{host}/state")])
            .args(["-m", "{\"status\":\"online\"}"])
            .output()
            .unwrap();
        assert!(out.status.success(), "{host}: {:?}", out);
    }
    // Each collector of the topology (its certificate's CN) reads both.
    for name in ["collector-bj1", "collector-sh1", "collector-witness"] {
        let c = client(name, name);
        let seen = wait::until(Duration::from_secs(10), "the retained states", || {
            let out = Command::new("mosquitto_sub")
                .args(tls_args(&c))
                .args(["-t", "sitewatch/v1/+/+/state", "-C", "2", "-W", "3", "-v"])
                .output()
                .ok()?;
            let text = String::from_utf8_lossy(&out.stdout).into_owned();
            (text.lines().count() == 2).then_some(text)
        });
        assert!(
            seen.contains("bj1/web-01") && seen.contains("sh1/web-01"),
            "{name}: {seen}"
        );
    }
}
