//! Helpers for the integration tests: free ports, the collector binary as a child
//! process, a tiny HTTP client, mosquitto, polling with a deadline.
#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// A port that was free a moment ago (bound to 127.0.0.1:0, then released).
pub fn free_addr() -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap()
}

pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

/// Polls `f` every 50 ms until it returns `Some`, or panics after `timeout` with
/// `what` and the last value seen by `describe`.
pub fn wait_for<T>(what: &str, timeout: Duration, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A minimal HTTP/1.1 GET: (status, body).
pub fn http_get(addr: SocketAddr, path: &str, accept: Option<&str>) -> Option<(u16, String)> {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(2)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(10))).ok()?;
    let accept = accept
        .map(|a| format!("Accept: {a}\r\n"))
        .unwrap_or_default();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\n{accept}Connection: close\r\n\r\n"
    )
    .ok()?;
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).ok()?;
    let text = String::from_utf8(raw).ok()?;
    let (head, body) = text.split_once("\r\n\r\n")?;
    let status = head.split(' ').nth(1)?.parse().ok()?;
    assert!(
        !head
            .to_ascii_lowercase()
            .contains("transfer-encoding: chunked"),
        "chunked responses are not handled by this test client"
    );
    Some((status, body.to_owned()))
}

/// The value of the first sample whose line starts with `prefix` (name and labels).
pub fn sample(text: &str, prefix: &str) -> Option<f64> {
    text.lines()
        .find(|l| l.starts_with(prefix))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

/// Runs `promtool check metrics` on an exposition; (success, output).
pub fn promtool_check(text: &str) -> (bool, String) {
    let mut child = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("promtool (Debian package prometheus) must be installed");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let mut msg = String::from_utf8_lossy(&out.stdout).into_owned();
    msg.push_str(&String::from_utf8_lossy(&out.stderr));
    (out.status.success(), msg)
}

/// The collector binary, killed on drop.
pub struct Collector {
    child: Child,
    pub http: SocketAddr,
    log: PathBuf,
}

impl Collector {
    pub fn start(dir: &Path, name: &str, args: &[String]) -> Collector {
        let http = free_addr();
        let log = dir.join(format!("{name}.log"));
        let child = Command::new(env!("CARGO_BIN_EXE_sitewatch-collector"))
            .arg("--listen")
            .arg(http.to_string())
            .args(args)
            .env("RUST_LOG", "info,sitewatch_collector=debug")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap();
        let c = Collector { child, http, log };
        wait_for(
            &format!("{name} to serve HTTP"),
            Duration::from_secs(20),
            || http_get(c.http, "/healthz", None),
        );
        c
    }

    pub fn get(&self, path: &str) -> (u16, String) {
        http_get(self.http, path, None)
            .unwrap_or_else(|| panic!("GET {path} failed\n{}", self.logs()))
    }

    pub fn metrics(&self) -> String {
        let (status, body) = self.get("/metrics");
        assert_eq!(status, 200);
        body
    }

    /// Waits until a sample with this prefix has a value satisfying `ok`.
    pub fn wait_sample(&self, prefix: &str, ok: impl Fn(f64) -> bool) -> String {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let text = self.metrics();
            if sample(&text, prefix).is_some_and(&ok) {
                return text;
            }
            if Instant::now() > deadline {
                panic!(
                    "timed out waiting for {prefix}; last scrape:\n{text}\nlog:\n{}",
                    self.logs()
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn wait_healthy(&self) {
        let deadline = Instant::now() + Duration::from_secs(20);
        while self.get("/healthz").0 != 200 {
            assert!(Instant::now() < deadline, "never healthy\n{}", self.logs());
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn logs(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Collector {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A mosquitto broker on a free loopback port, killed on drop.
pub struct Mosquitto {
    child: Child,
    pub port: u16,
}

impl Mosquitto {
    pub fn start(dir: &Path) -> Mosquitto {
        let port = free_addr().port();
        let conf = dir.join("mosquitto.conf");
        std::fs::write(
            &conf,
            format!("listener {port} 127.0.0.1\nallow_anonymous true\npersistence false\n"),
        )
        .unwrap();
        let child = Command::new("mosquitto")
            .arg("-c")
            .arg(&conf)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(dir.join("mosquitto.log")).unwrap())
            .spawn()
            .expect("mosquitto must be installed");
        wait_for("mosquitto to listen", Duration::from_secs(10), || {
            TcpStream::connect(("127.0.0.1", port)).ok()
        });
        Mosquitto { child, port }
    }

    pub fn url(&self) -> String {
        format!("mqtt://127.0.0.1:{}", self.port)
    }
}

impl Drop for Mosquitto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Publishes with `mosquitto_pub` (QoS 1), optionally retained.
pub fn mosquitto_pub(port: u16, topic: &str, payload: &str, retain: bool) {
    let mut cmd = Command::new("mosquitto_pub");
    cmd.args([
        "-h",
        "127.0.0.1",
        "-p",
        &port.to_string(),
        "-q",
        "1",
        "-t",
        topic,
    ]);
    if payload.is_empty() {
        cmd.arg("-n");
    } else {
        cmd.args(["-m", payload]);
    }
    if retain {
        cmd.arg("-r");
    }
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "mosquitto_pub: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Publishes one message per line of `lines` over one connection (`mosquitto_pub -l`).
pub fn mosquitto_pub_lines(port: u16, topic: &str, lines: &[String]) {
    let mut child = Command::new("mosquitto_pub")
        .args([
            "-h",
            "127.0.0.1",
            "-p",
            &port.to_string(),
            "-q",
            "1",
            "-t",
            topic,
            "-l",
        ])
        .stdin(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    for l in lines {
        writeln!(stdin, "{l}").unwrap();
    }
    drop(stdin);
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "mosquitto_pub -l: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

pub fn birth(boot: &str, ts: i64) -> String {
    format!(
        r#"{{"v":1,"status":"online","ts":{ts},"boot":"{boot}","agent":"test/1","interval_ms":5000,"sources":{{"host":5000,"ipmi":10000}},"labels":{{"room":"a1"}}}}"#
    )
}

pub fn readings(seq: u64, ts: i64, inlet: f64) -> String {
    format!(
        r#"{{"v":1,"seq":{seq},"ts":{ts},"readings":[{{"src":"ipmi","dev":"bmc","name":"Inlet Temp","q":"inlet_temperature_celsius","value":{inlet},"state":"ok"}},{{"src":"host","dev":"cpu","name":"cpu","q":"cpu_usage_ratio","value":0.5,"state":"ok"}},{{"src":"ipmi","dev":"bmc","name":"PSU2","q":"psu_ok","value":0,"state":"critical","labels":{{"slot":"2"}}}}]}}"#
    )
}
