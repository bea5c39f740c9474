//! Real SNMP peers for the tests, on loopback ports chosen at run time:
//! Debian's `snmpsimd` serving `.snmprec` recordings, net-snmp's `snmpd`
//! (with a `pass_persist` script serving a recording the test can rewrite),
//! and `snmpget`/`snmptrap` as the cross-check and the trap sender.

#![allow(dead_code)]

use std::{
    fs,
    net::UdpSocket,
    os::unix::fs::PermissionsExt,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

/// A UDP port free right now on 127.0.0.1.
pub fn free_udp_port() -> u16 {
    UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Whether the peers are installed (scripts/install-test-deps.sh).
pub fn peers_present() -> bool {
    [
        "/usr/bin/snmpsimd",
        "/usr/sbin/snmpd",
        "/usr/bin/snmpget",
        "/usr/bin/snmptrap",
    ]
    .iter()
    .all(|p| Path::new(p).exists())
}

/// A child process killed on drop.
pub struct Peer {
    child: Child,
    pub port: u16,
    pub dir: tempfile::TempDir,
}

impl Drop for Peer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Polls `snmpget` until the peer answers `oid` for `community`, at most 15 s.
pub fn wait_until_answering(port: u16, community: &str, oid: &str) {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        if let Some(out) = snmpget(port, community, oid)
            && !out.contains("No Such")
        {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "SNMP peer on {port} never answered {oid}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// `snmpget -v2c` of one OID: its value text (`-Oqv`), `None` on no answer.
pub fn snmpget(port: u16, community: &str, oid: &str) -> Option<String> {
    let out = Command::new("snmpget")
        .args([
            "-v2c", "-c", community, "-t", "0.3", "-r", "0", "-On", "-Oqv", "-Oe",
        ])
        .arg(format!("127.0.0.1:{port}"))
        .arg(oid)
        .stderr(Stdio::null())
        .output()
        .ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_owned())
}

/// Makes a directory and its files readable by everyone (snmpsimd drops to
/// `nobody`; tempfile makes 0700 directories).
fn open_up(dir: &Path) {
    fs::set_permissions(dir, fs::Permissions::from_mode(0o755)).unwrap();
    for e in fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        let mode = if p.is_dir() { 0o777 } else { 0o644 };
        fs::set_permissions(&p, fs::Permissions::from_mode(mode)).unwrap();
    }
}

/// snmpsimd serving `recordings` (community name -> .snmprec path).
pub fn snmpsim(recordings: &[(String, PathBuf)]) -> Peer {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let cache = dir.path().join("cache");
    fs::create_dir_all(&data).unwrap();
    fs::create_dir_all(&cache).unwrap();
    for (community, path) in recordings {
        fs::copy(path, data.join(format!("{community}.snmprec"))).unwrap();
    }
    open_up(dir.path());
    open_up(&data);
    let port = free_udp_port();
    let child = Command::new("snmpsimd")
        .arg(format!("--data-dir={}", data.display()))
        .arg(format!("--agent-udpv4-endpoint=127.0.0.1:{port}"))
        .args(["--process-user=nobody", "--process-group=nogroup"])
        .arg(format!("--cache-dir={}", cache.display()))
        .arg(format!(
            "--logging-method=file:{}",
            dir.path().join("snmpsim.log").display()
        ))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("snmpsimd");
    let peer = Peer { child, port, dir };
    if let Some((community, _)) = recordings.first() {
        wait_until_answering(port, community, "1.3.6.1.2.1.1.1.0");
    }
    peer
}

/// What an snmpd serves besides its own MIBs.
pub struct SnmpdSetup<'a> {
    /// Extra snmpd.conf lines (users, communities).
    pub conf: &'a str,
    /// (subtree, recording): a pass_persist script serves the recording
    /// under the subtree, re-reading it when it changes.
    pub pass: Vec<(&'a str, PathBuf)>,
}

/// net-snmp's snmpd on a free loopback port, `rocommunity public` plus `setup`.
pub fn snmpd(setup: SnmpdSetup<'_>) -> Peer {
    let dir = tempfile::tempdir().unwrap();
    let port = free_udp_port();
    let persist = dir.path().join("persist");
    fs::create_dir_all(&persist).unwrap();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/peers/snmprec_pass.py");
    let mut conf = format!(
        "agentAddress udp:127.0.0.1:{port}\nrocommunity public 127.0.0.1\n{}\n",
        setup.conf
    );
    for (subtree, recording) in &setup.pass {
        conf.push_str(&format!(
            "pass_persist {subtree} /usr/bin/python3 {} {}\n",
            script.display(),
            recording.display()
        ));
    }
    let conf_path = dir.path().join("snmpd.conf");
    fs::write(&conf_path, conf).unwrap();
    let child = Command::new("snmpd")
        .args(["-f", "-Lf"])
        .arg(dir.path().join("snmpd.log"))
        .args(["-C", "-c"])
        .arg(&conf_path)
        .arg("-p")
        .arg(dir.path().join("snmpd.pid"))
        .env("SNMP_PERSISTENT_DIR", &persist)
        .env("MIBS", "")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("snmpd");
    let peer = Peer { child, port, dir };
    wait_until_answering(port, "public", "1.3.6.1.2.1.1.1.0");
    if let Some((subtree, _)) = setup.pass.first() {
        // The pass_persist script starts on the first request under it.
        let deadline = Instant::now() + Duration::from_secs(15);
        while snmpgetnext(port, subtree)
            .is_none_or(|o| !o.starts_with(subtree.trim_start_matches('.')))
        {
            assert!(
                Instant::now() < deadline,
                "pass_persist under {subtree} never answered"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
    peer
}

/// `snmpgetnext`: the next OID after `oid`, numeric.
pub fn snmpgetnext(port: u16, oid: &str) -> Option<String> {
    let out = Command::new("snmpgetnext")
        .args(["-v2c", "-c", "public", "-t", "0.3", "-r", "0", "-On"])
        .arg(format!("127.0.0.1:{port}"))
        .arg(oid)
        .stderr(Stdio::null())
        .output()
        .ok()?;
    let text = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    (out.status.success() && !text.is_empty()).then(|| text.trim_start_matches('.').to_owned())
}

/// Writes a recording atomically (the pass_persist script may be reading it).
pub fn write_recording(path: &Path, lines: &str) {
    let tmp = path.with_extension("tmp");
    fs::write(&tmp, lines).unwrap();
    fs::rename(&tmp, path).unwrap();
}

/// `snmptrap -v2c` to the receiver on `port`.
pub fn snmptrap_v2c(port: u16, community: &str, trap_oid: &str, varbinds: &[&str]) {
    let status = Command::new("snmptrap")
        .args(["-v2c", "-c", community, "-On"])
        .arg(format!("127.0.0.1:{port}"))
        .arg("")
        .arg(trap_oid)
        .args(varbinds)
        .env("MIBS", "")
        .stderr(Stdio::null())
        .status()
        .unwrap();
    assert!(status.success());
}

/// A UDP shim in front of an agent that misbehaves as told
/// (`tests/peers/snmp_shim.py`): `drop-bulk` or `corrupt`.
pub fn shim(upstream: u16, mode: &str) -> Peer {
    let dir = tempfile::tempdir().unwrap();
    let port = free_udp_port();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/peers/snmp_shim.py");
    let mut child = Command::new("python3")
        .arg(script)
        .args([
            "--listen",
            &port.to_string(),
            "--upstream",
            &upstream.to_string(),
            "--mode",
            mode,
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // It prints "ready" once bound (EOF if it died).
    let mut line = String::new();
    let stdout = child.stdout.take().unwrap();
    std::io::BufRead::read_line(&mut std::io::BufReader::new(stdout), &mut line).unwrap();
    assert_eq!(line.trim(), "ready", "the shim did not start");
    Peer { child, port, dir }
}

/// `snmptrap -v3` authPriv (SHA-256, AES) to the receiver on `port`.
pub fn snmptrap_v3(port: u16, user: &str, auth: &str, privacy: &str, trap_oid: &str) {
    let status = Command::new("snmptrap")
        .args([
            "-v3", "-l", "authPriv", "-u", user, "-a", "SHA-256", "-A", auth, "-x", "AES", "-X",
            privacy,
        ])
        .args(["-e", "0x8000000001020304", "-On"])
        .arg(format!("127.0.0.1:{port}"))
        .arg("")
        .arg(trap_oid)
        .env("MIBS", "")
        .stderr(Stdio::null())
        .status()
        .unwrap();
    assert!(status.success());
}
