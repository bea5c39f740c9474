//! One password file for both brokers: a file made by Debian's
//! `mosquitto_passwd` works with the embedded broker, and one made by
//! `sitewatch-collector passwd` works with a real mosquitto.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod broker_common;

use std::io::Write;
use std::net::TcpStream;
use std::os::unix::fs::PermissionsExt;
use std::process::{Command, Stdio};

use broker_common::*;

fn passwd(args: &[&str], stdin: &str) -> (Option<i32>, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_sitewatch-collector"))
        .arg("passwd")
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn a_file_made_by_mosquitto_passwd_is_accepted_by_the_embedded_broker() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("pw");
    for (create, user, pw) in [(true, "bj1/web-01", "s3cret"), (false, "col-bj1", "c0l")] {
        let mut cmd = Command::new("mosquitto_passwd");
        if create {
            cmd.arg("-c");
        }
        let out = cmd
            .arg("-b")
            .arg(&file)
            .args([user, pw])
            .output()
            .expect("mosquitto_passwd");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let mut cfg = config();
    cfg.password_file = Some(file);
    cfg.allow_anonymous = false;
    cfg.acl.collectors.insert("col-bj1".into());
    let b = Running::start(cfg);
    let mut local = b.local(&["sitewatch/#"], 10);
    publish(
        b.p(),
        &[
            "-u",
            "bj1/web-01",
            "-P",
            "s3cret",
            "-q",
            "1",
            "-t",
            "sitewatch/v1/bj1/web-01/state",
            "-m",
            "ok",
        ],
    );
    local.wait_for("sitewatch/v1/bj1/web-01/state", "ok");
    publish(
        b.p(),
        &[
            "-u",
            "col-bj1",
            "-P",
            "c0l",
            "-q",
            "1",
            "-t",
            "sitewatch/v1/bj1/_signals",
            "-m",
            "s",
        ],
    );
    local.wait_for("sitewatch/v1/bj1/_signals", "s");
    let (ok, _) = pub_(
        b.p(),
        &["-u", "bj1/web-01", "-P", "s3cret!", "-t", "x", "-m", "y"],
    );
    assert!(!ok);
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| o.stdout.starts_with(b"0\n"))
}

#[test]
fn a_file_made_by_sitewatch_collector_passwd_is_accepted_by_mosquitto() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("pw");
    let (code, err) = passwd(
        &["--stdin", &file.display().to_string(), "bj1/web-01"],
        "s3cret\n",
    );
    assert_eq!(code, Some(0), "{err}");
    let (code, err) = passwd(
        &["--stdin", &file.display().to_string(), "bj1/web-02"],
        "other\n",
    );
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(
        std::fs::metadata(&file).unwrap().permissions().mode() & 0o777,
        0o600
    );

    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let conf = dir.path().join("mosquitto.conf");
    // Started as root, mosquitto drops to its own user, which cannot read a
    // 0600 file of root's: stay root for the test broker.
    let user = if is_root() { "user root\n" } else { "" };
    std::fs::write(
        &conf,
        format!(
            "{user}listener {port} 127.0.0.1\nallow_anonymous false\npassword_file {}\npersistence false\n",
            file.display()
        ),
    )
    .unwrap();
    let mut mosquitto = Command::new("mosquitto")
        .arg("-c")
        .arg(&conf)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("mosquitto must be installed");
    wait_until("mosquitto to listen", || {
        TcpStream::connect(("127.0.0.1", port)).ok()
    });
    publish(
        port,
        &["-u", "bj1/web-01", "-P", "s3cret", "-t", "t", "-m", "1"],
    );
    publish(
        port,
        &["-u", "bj1/web-02", "-P", "other", "-t", "t", "-m", "1"],
    );
    let (ok, _) = pub_(
        port,
        &["-u", "bj1/web-01", "-P", "wrong", "-t", "t", "-m", "1"],
    );
    assert!(!ok, "mosquitto refuses a wrong password");
    let _ = mosquitto.kill();
    let _ = mosquitto.wait();
}

#[test]
fn passwd_deletes_users_and_the_broker_rereads_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("pw");
    let f = file.display().to_string();
    assert_eq!(passwd(&["--stdin", &f, "bj1/web-01"], "one\n").0, Some(0));
    assert_eq!(passwd(&["--stdin", &f, "bj1/web-02"], "two\n").0, Some(0));
    let mut cfg = config();
    cfg.password_file = Some(file.clone());
    cfg.allow_anonymous = false;
    let b = Running::start(cfg);
    publish(
        b.p(),
        &[
            "-u",
            "bj1/web-01",
            "-P",
            "one",
            "-t",
            "sitewatch/v1/bj1/web-01/state",
            "-m",
            "x",
        ],
    );
    let (code, err) = passwd(&["-D", &f, "bj1/web-01"], "");
    assert_eq!(code, Some(0), "{err}");
    // Changing a password is the same command again.
    assert_eq!(passwd(&["--stdin", &f, "bj1/web-02"], "three\n").0, Some(0));
    assert_eq!(b.broker.reload_passwords().unwrap(), 1);
    let (ok, _) = pub_(
        b.p(),
        &["-u", "bj1/web-01", "-P", "one", "-t", "x", "-m", "y"],
    );
    assert!(!ok, "deleted");
    let (ok, _) = pub_(
        b.p(),
        &["-u", "bj1/web-02", "-P", "two", "-t", "x", "-m", "y"],
    );
    assert!(!ok, "old password");
    publish(
        b.p(),
        &[
            "-u",
            "bj1/web-02",
            "-P",
            "three",
            "-t",
            "sitewatch/v1/bj1/web-02/state",
            "-m",
            "x",
        ],
    );
    let (code, err) = passwd(&["-D", &f, "nobody"], "");
    assert_eq!(code, Some(2));
    assert!(err.contains("no user"), "{err}");
}

#[test]
fn passwd_without_a_terminal_says_to_use_stdin() {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("pw").display().to_string();
    // `setsid` detaches it from any terminal the test runs in.
    let out = Command::new("setsid")
        .arg("-w")
        .arg(env!("CARGO_BIN_EXE_sitewatch-collector"))
        .args(["passwd", &f, "bj1/web-01"])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("--stdin"), "{err}");
    assert!(!std::path::Path::new(&f).exists(), "nothing written");
}
