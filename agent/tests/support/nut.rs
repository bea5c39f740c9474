//! Network UPS Tools peers for the tests: Debian's `dummy-ups` driver serving
//! `.dev` files, `upsd` on a loopback port chosen at run time, `upsc` and
//! `upsmon`, all in a temporary NUT_CONFPATH/NUT_STATEPATH (the /sbin
//! wrappers refuse to start without /etc/nut/nut.conf's MODE).
#![allow(dead_code)]

use std::{
    fs,
    io::{BufRead, BufReader, Write},
    net::{TcpListener, TcpStream},
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

pub const DUMMY_UPS: &str = "/lib/nut/dummy-ups";
pub const UPSD: &str = "/lib/nut/upsd";
pub const UPSMON: &str = "/lib/nut/upsmon";
pub const UPSC: &str = "/bin/upsc";

/// Whether Debian's nut-server and nut-client are installed.
pub fn peers_present() -> bool {
    [DUMMY_UPS, UPSD, UPSMON, UPSC]
        .iter()
        .all(|p| Path::new(p).exists())
}

/// Skips (passes) when the NUT tools are not installed, unless
/// `SITEWATCH_REQUIRE_SHARED` is set (then a missing tool fails).
#[macro_export]
macro_rules! require_nut {
    () => {
        if !peers::peers_present() {
            assert!(
                std::env::var_os("SITEWATCH_REQUIRE_SHARED").is_none(),
                "nut-server/nut-client not installed (scripts/install-test-deps.sh)"
            );
            println!("SKIPPED: nut-server/nut-client not installed (scripts/install-test-deps.sh)");
            return;
        }
    };
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A child process killed on drop.
pub struct Proc {
    pub child: Child,
    pub log: PathBuf,
}

impl Proc {
    pub fn spawn(mut cmd: Command, log: PathBuf) -> Proc {
        let out = fs::File::create(&log).unwrap();
        let err = out.try_clone().unwrap();
        let child = cmd
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
        Proc { child, log }
    }

    pub fn log_text(&self) -> String {
        fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One UPS of a dummy upsd: its name and its `.dev` file's text.
pub struct DummyUps<'a> {
    pub name: &'a str,
    pub dev: &'a str,
}

/// upsd with dummy-ups drivers.
pub struct Upsd {
    pub dir: tempfile::TempDir,
    pub port: u16,
    drivers: Vec<Proc>,
    upsd: Option<Proc>,
}

fn nut_env(cmd: &mut Command, dir: &Path) {
    cmd.env("NUT_CONFPATH", dir)
        .env("NUT_STATEPATH", dir)
        .env("NUT_ALTPIDPATH", dir);
}

impl Upsd {
    /// Starts a driver per UPS and upsd with `users` (upsd.users text),
    /// and waits until upsd lists every UPS with data.
    pub fn start(upses: &[DummyUps<'_>], users: &str) -> Upsd {
        Upsd::start_with(upses, users, "")
    }

    /// The same, with more upsd.conf lines (`CERTPATH`, `CERTIDENT`).
    pub fn start_with(upses: &[DummyUps<'_>], users: &str, conf: &str) -> Upsd {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let mut ups_conf = String::new();
        for u in upses {
            fs::write(d.join(format!("{}.dev", u.name)), u.dev).unwrap();
            ups_conf.push_str(&format!(
                "[{0}]\n  driver = dummy-ups\n  port = {0}.dev\n  desc = \"test UPS {0}\"\n",
                u.name
            ));
        }
        fs::write(d.join("ups.conf"), ups_conf).unwrap();
        let port = free_port();
        fs::write(
            d.join("upsd.conf"),
            format!("LISTEN 127.0.0.1 {port}\nMAXAGE 15\n{conf}"),
        )
        .unwrap();
        fs::write(d.join("upsd.users"), users).unwrap();
        let mut drivers = Vec::new();
        for u in upses {
            let mut cmd = Command::new(DUMMY_UPS);
            cmd.args(["-a", u.name, "-u", "root", "-F"]);
            nut_env(&mut cmd, d);
            drivers.push(Proc::spawn(cmd, d.join(format!("driver-{}.log", u.name))));
        }
        // The drivers' sockets before upsd, so that it connects at once.
        let deadline = Instant::now() + Duration::from_secs(15);
        for u in upses {
            let socket = d.join(format!("dummy-ups-{}", u.name));
            while !socket.exists() {
                assert!(
                    Instant::now() < deadline,
                    "dummy-ups {} never made its socket",
                    u.name
                );
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        let mut cmd = Command::new(UPSD);
        cmd.args(["-u", "root", "-F"]);
        nut_env(&mut cmd, d);
        let upsd = Proc::spawn(cmd, d.join("upsd.log"));
        let me = Upsd {
            dir,
            port,
            drivers,
            upsd: Some(upsd),
        };
        for u in upses {
            me.wait_for(u.name, "ups.status", |s| !s.is_empty() && s != "WAIT");
        }
        me
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Rewrites a UPS's `.dev` file (dummy-ups re-reads it when it changes).
    pub fn set_dev(&self, ups: &str, text: &str) {
        let tmp = self.path().join(format!("{ups}.dev.tmp"));
        fs::write(&tmp, text).unwrap();
        fs::rename(&tmp, self.path().join(format!("{ups}.dev"))).unwrap();
    }

    /// Waits (15 s at most) until `upsc` reads `var` of `ups` satisfying `ok`.
    pub fn wait_for(&self, ups: &str, var: &str, ok: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            if let Some(v) = upsc_var(self.port, ups, var)
                && ok(&v)
            {
                return v;
            }
            assert!(
                Instant::now() < deadline,
                "upsd on {} never served {ups} {var} as wanted; upsd log: {}",
                self.port,
                self.upsd.as_ref().map(Proc::log_text).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Stops upsd (the drivers keep running): a dead server.
    pub fn stop_upsd(&mut self) {
        self.upsd = None;
    }
}

/// A throwaway CA and a server certificate for 127.0.0.1 and localhost, made
/// with `openssl`: (ca.pem, server.pem, server.key) in `dir`.
pub fn make_certs(dir: &Path, name: &str) -> (PathBuf, PathBuf, PathBuf) {
    let run = |args: &[&str]| {
        let out = Command::new("openssl")
            .current_dir(dir)
            .args(args)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "openssl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    fs::write(
        dir.join(format!("{name}-ext.cnf")),
        "subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\n\
         keyUsage=digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\n",
    )
    .unwrap();
    let ca = format!("{name}-ca.pem");
    let ca_key = format!("{name}-ca.key");
    let key = format!("{name}-server.key");
    let csr = format!("{name}-server.csr");
    let cert = format!("{name}-server.pem");
    run(&[
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        &ca_key,
        "-out",
        &ca,
        "-days",
        "2",
        "-subj",
        &format!("/CN={name} test CA"),
    ]);
    run(&[
        "req",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        &key,
        "-out",
        &csr,
        "-subj",
        "/CN=localhost",
    ]);
    run(&[
        "x509",
        "-req",
        "-in",
        &csr,
        "-CA",
        &ca,
        "-CAkey",
        &ca_key,
        "-CAcreateserial",
        "-out",
        &cert,
        "-days",
        "2",
        "-extfile",
        &format!("{name}-ext.cnf"),
    ]);
    (dir.join(ca), dir.join(cert), dir.join(key))
}

/// Whether NSS's certutil and pk12util are there (Debian `libnss3-tools`):
/// NUT's TLS (upsd's and upsmon's) keeps certificates in an NSS database.
pub fn nss_tools_present() -> bool {
    Path::new("/usr/bin/certutil").exists() && Path::new("/usr/bin/pk12util").exists()
}

/// An NSS database in `dir/nss` trusting `ca`, with `server` (cert, key)
/// under the nickname `upsd` when given; its password is `dbpass`.
pub fn nss_db(dir: &Path, ca: &Path, server: Option<(&Path, &Path)>) -> PathBuf {
    let db = dir.join("nss");
    fs::create_dir_all(&db).unwrap();
    let pw = dir.join("nss.pw");
    fs::write(&pw, "dbpass\n").unwrap();
    let run = |tool: &str, args: &[&str]| {
        let out = Command::new(tool).args(args).output().unwrap();
        assert!(
            out.status.success(),
            "{tool} {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    let sql = format!("sql:{}", db.display());
    let pw_s = pw.display().to_string();
    run("certutil", &["-N", "-d", &sql, "-f", &pw_s]);
    run(
        "certutil",
        &[
            "-A",
            "-d",
            &sql,
            "-n",
            "test-ca",
            "-t",
            "CT,,",
            "-i",
            ca.to_str().unwrap(),
            "-f",
            &pw_s,
        ],
    );
    if let Some((cert, key)) = server {
        let p12 = dir.join("server.p12");
        run(
            "openssl",
            &[
                "pkcs12",
                "-export",
                "-in",
                cert.to_str().unwrap(),
                "-inkey",
                key.to_str().unwrap(),
                "-name",
                "upsd",
                "-out",
                p12.to_str().unwrap(),
                "-passout",
                "pass:p12",
            ],
        );
        run(
            "pk12util",
            &[
                "-i",
                p12.to_str().unwrap(),
                "-d",
                &sql,
                "-k",
                &pw_s,
                "-W",
                "p12",
            ],
        );
    }
    db
}

/// `upsc ups@127.0.0.1:port var`: the value, `None` on an error.
pub fn upsc_var(port: u16, ups: &str, var: &str) -> Option<String> {
    let out = Command::new(UPSC)
        .arg(format!("{ups}@127.0.0.1:{port}"))
        .arg(var)
        .stderr(Stdio::null())
        .output()
        .ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_owned())
}

/// `upsc ups@127.0.0.1:port`: every variable, `(status, name -> value)`.
pub fn upsc_all(
    port: u16,
    ups: &str,
) -> (bool, std::collections::BTreeMap<String, String>, String) {
    let out = Command::new(UPSC)
        .arg(format!("{ups}@127.0.0.1:{port}"))
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let vars = text
        .lines()
        .filter_map(|l| l.split_once(": "))
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
    (
        out.status.success(),
        vars,
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// One command to a NUT server and its answer lines, up to `lines` of them.
pub fn converse(port: u16, commands: &[&str], lines: usize) -> Vec<String> {
    let stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let mut w = stream.try_clone().unwrap();
    for c in commands {
        w.write_all(format!("{c}\n").as_bytes()).unwrap();
    }
    let mut r = BufReader::new(stream);
    let mut out = Vec::new();
    for _ in 0..lines {
        let mut l = String::new();
        if r.read_line(&mut l).unwrap_or(0) == 0 {
            break;
        }
        out.push(l.trim_end().to_owned());
    }
    out
}

/// A TCP server that accepts and never answers.
pub fn silent_server() -> (TcpListener, u16) {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    (l, port)
}

/// A one-shot fake upsd that answers every connection with `script`'s
/// answer to each command it reads (`command prefix -> answer text`):
/// for malformed answers only, which no real upsd sends.
pub fn scripted_server(script: Vec<(&'static str, &'static str)>) -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for stream in l.incoming() {
            let Ok(stream) = stream else { return };
            let mut w = stream.try_clone().unwrap();
            let r = BufReader::new(stream);
            for line in r.lines() {
                let Ok(line) = line else { break };
                match script.iter().find(|(p, _)| line.starts_with(p)) {
                    Some((_, answer)) => {
                        if w.write_all(answer.as_bytes()).is_err() {
                            break;
                        }
                        // An answer without its final LF: the line is cut short.
                        if !answer.ends_with('\n') {
                            break;
                        }
                    }
                    None => {
                        let _ = w.write_all(b"ERR UNKNOWN-COMMAND\n");
                    }
                }
            }
        }
    });
    port
}
