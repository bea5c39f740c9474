//! Redfish peers shared by the agent's and the end-to-end tests (std only):
//! `sushy-static` (sushy-tools) serving a mockup over TLS with a certificate
//! made here by openssl, and copies of mockup trees to change while served.
//! A mockup folder is served as it is: the resource at `/redfish/v1/<path>`
//! is `<dir>/<path>/index.json`.

#![allow(dead_code)] // each test binary uses a part

use std::{
    net::TcpListener as StdListener,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

pub fn free_port() -> u16 {
    StdListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Whether sushy-static and openssl are installed.
pub fn sushy_present() -> bool {
    let ok = |cmd: &str, arg: &str| {
        Command::new(cmd)
            .arg(arg)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    };
    ok("sushy-static", "--help") && ok("openssl", "version")
}

/// A CA and a certificate it signed for 127.0.0.1 and localhost.
pub struct Certs {
    pub dir: tempfile::TempDir,
    pub ca: PathBuf,
    pub cert: PathBuf,
    pub key: PathBuf,
}

pub fn certs() -> Certs {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let run = |args: &[&str]| {
        let out = Command::new("openssl")
            .args(args)
            .current_dir(d)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "openssl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    run(&[
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        "ca.key",
        "-out",
        "ca.pem",
        "-days",
        "2",
        "-subj",
        "/CN=sitewatch test CA",
    ]);
    run(&[
        "req",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        "key.pem",
        "-out",
        "leaf.csr",
        "-subj",
        "/CN=localhost",
    ]);
    std::fs::write(
        d.join("ext"),
        "subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\n",
    )
    .unwrap();
    run(&[
        "x509",
        "-req",
        "-in",
        "leaf.csr",
        "-CA",
        "ca.pem",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-out",
        "cert.pem",
        "-days",
        "2",
        "-extfile",
        "ext",
    ]);
    Certs {
        ca: d.join("ca.pem"),
        cert: d.join("cert.pem"),
        key: d.join("key.pem"),
        dir,
    }
}

/// SHA-256 of a PEM certificate's DER, hex with colons (openssl's form).
pub fn fingerprint(cert: &Path) -> String {
    let out = Command::new("openssl")
        .args(["x509", "-noout", "-fingerprint", "-sha256", "-in"])
        .arg(cert)
        .output()
        .unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    text.trim().split('=').nth(1).unwrap().to_owned()
}

/// A running sushy-static.
pub struct Sushy {
    pub port: u16,
    child: Child,
}

impl Drop for Sushy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Serves `mockup` over TLS on a free loopback port, once it answers.
pub fn sushy(mockup: &Path, certs: &Certs) -> Sushy {
    let port = free_port();
    let child = Command::new("sushy-static")
        .args(["-i", "127.0.0.1", "-p", &port.to_string(), "-m"])
        .arg(mockup)
        .arg("-c")
        .arg(&certs.cert)
        .arg("-k")
        .arg(&certs.key)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            Instant::now() < deadline,
            "sushy-static did not listen on {port}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    Sushy { port, child }
}

/// Copies a mockup tree (to change it while it is served).
pub fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_tree(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}

/// Edits the JSON resource at `path` (below the mockup's root) in place.
pub fn edit(root: &Path, path: &str, f: impl FnOnce(&mut serde_json::Value)) {
    let file = root.join(path).join("index.json");
    let mut v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&file).unwrap()).unwrap();
    f(&mut v);
    // Written whole then renamed: a server never serves half a file.
    let tmp = file.with_extension("tmp");
    std::fs::write(&tmp, serde_json::to_vec_pretty(&v).unwrap()).unwrap();
    std::fs::rename(tmp, file).unwrap();
}
