//! Helpers for the embedded broker's tests: the broker in-process on a runtime
//! of its own (ports chosen by the OS), mosquitto_pub/mosquitto_sub as real
//! clients, raw MQTT bytes for what no well-behaved client sends, and the
//! broker's own metrics.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use sitewatch_collector::broker::auth::{Hash, PasswordFile};
use sitewatch_collector::broker::{Broker, BrokerConfig, Delivery, LocalSubscription};

/// The embedded broker, in this process, on its own runtime.
pub struct Running {
    pub rt: tokio::runtime::Runtime,
    pub broker: Broker,
}

pub fn loopback0() -> SocketAddr {
    "127.0.0.1:0".parse().unwrap()
}

/// A configuration with both plain listeners on loopback, OS-chosen ports.
pub fn config() -> BrokerConfig {
    BrokerConfig::new(loopback0(), loopback0())
}

impl Running {
    pub fn start(config: BrokerConfig) -> Running {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let broker = rt.block_on(Broker::start(config)).unwrap();
        Running { rt, broker }
    }

    /// The port of a listener (`listen_v4`, `listen_v5`, `listen_tls`).
    pub fn port(&self, listener: &str) -> u16 {
        self.broker.local_addr(listener).unwrap().port()
    }

    /// The first plain listener's port.
    pub fn p(&self) -> u16 {
        self.port("listen_v4")
    }

    pub fn local(&self, filters: &[&str], capacity: usize) -> Local {
        let _guard = self.rt.enter();
        Local {
            handle: self.rt.handle().clone(),
            sub: self.broker.local_subscriber(filters, capacity).unwrap(),
        }
    }

    /// The broker's metrics, in Prometheus text.
    pub fn metrics(&self) -> String {
        let mut registry = prometheus_client::registry::Registry::default();
        registry.register_collector(Box::new(self.broker.collector()));
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &registry).unwrap();
        text
    }

    /// A sample's value (0 when absent).
    pub fn metric(&self, line_prefix: &str) -> f64 {
        sample(&self.metrics(), line_prefix).unwrap_or(0.0)
    }

    /// Waits until a metric satisfies `ok`.
    pub fn wait_metric(&self, line_prefix: &str, ok: impl Fn(f64) -> bool) {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let v = self.metric(line_prefix);
            if ok(v) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "timed out waiting for {line_prefix} (now {v})\n{}",
                self.metrics()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn stop(self) {
        self.rt.block_on(self.broker.shutdown());
    }
}

/// The value of the first sample whose line starts with `prefix`.
pub fn sample(text: &str, prefix: &str) -> Option<f64> {
    text.lines()
        .find(|l| l.starts_with(prefix))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

/// An in-process subscription, read from synchronous tests.
pub struct Local {
    handle: tokio::runtime::Handle,
    pub sub: LocalSubscription,
}

impl Local {
    pub fn recv(&mut self, timeout: Duration) -> Option<Delivery> {
        let sub = &mut self.sub;
        self.handle.block_on(async {
            tokio::time::timeout(timeout, sub.recv())
                .await
                .ok()
                .flatten()
        })
    }

    /// The next delivery, which must come.
    pub fn next(&mut self) -> Delivery {
        self.recv(Duration::from_secs(10))
            .expect("a delivery within 10 s")
    }

    /// Waits for a delivery on `topic` whose payload is `payload`, skipping others.
    pub fn wait_for(&mut self, topic: &str, payload: &str) -> Delivery {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let d = self
                .recv(left)
                .unwrap_or_else(|| panic!("no {payload:?} on {topic} within 10 s"));
            if &*d.topic == topic && d.payload == payload.as_bytes() {
                return d;
            }
        }
    }

    /// Nothing arrives for `d` (used only where absence is the point).
    pub fn quiet_for(&mut self, d: Duration) -> Option<Delivery> {
        self.recv(d)
    }
}

/// A password file with these users, written by the library (what
/// `sitewatch-collector passwd` writes).
pub fn password_file(dir: &Path, users: &[(&str, &str)]) -> std::path::PathBuf {
    let mut f = PasswordFile::default();
    for (u, p) in users {
        f.set(u, Hash::new(p.as_bytes(), 101));
    }
    let path = dir.join("passwd");
    std::fs::write(&path, f.render()).unwrap();
    path
}

/// `mosquitto_pub` (QoS 1 unless the args say otherwise); (success, stderr+stdout).
pub fn pub_(port: u16, args: &[&str]) -> (bool, String) {
    let out = Command::new("mosquitto_pub")
        .args(["-h", "127.0.0.1", "-p", &port.to_string()])
        .args(args)
        .output()
        .expect("mosquitto_pub (Debian mosquitto-clients) must be installed");
    let mut text = String::from_utf8_lossy(&out.stdout).into_owned();
    text.push_str(&String::from_utf8_lossy(&out.stderr));
    (out.status.success(), text)
}

/// `mosquitto_pub` that must succeed.
pub fn publish(port: u16, args: &[&str]) {
    let (ok, out) = pub_(port, args);
    assert!(ok, "mosquitto_pub {args:?}: {out}");
}

/// A running `mosquitto_sub`, its message lines read by a thread.
pub struct Sub {
    child: Child,
    lines: mpsc::Receiver<String>,
    /// Lines read while waiting for another one, kept for later.
    pending: std::collections::VecDeque<String>,
}

impl Sub {
    /// Starts `mosquitto_sub -d -F 'MSG %r %q %t %p'` with `args` and waits for
    /// its SUBACK (debug output), so that publishing afterwards cannot race it.
    pub fn start(port: u16, args: &[&str]) -> Sub {
        let mut child = Command::new("stdbuf")
            // Line-buffered: mosquitto_sub's stdout is a pipe here.
            .args([
                "-oL",
                "mosquitto_sub",
                "-h",
                "127.0.0.1",
                "-p",
                &port.to_string(),
                "-d",
            ])
            .args(["-F", "MSG %r %q %t %p"])
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("mosquitto_sub must be installed");
        let (tx, rx) = mpsc::channel();
        let stdout = child.stdout.take().unwrap();
        let err_tx = tx.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    return;
                }
            }
        });
        let stderr = child.stderr.take().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if err_tx.send(format!("ERR {line}")).is_err() {
                    return;
                }
            }
        });
        let mut sub = Sub {
            child,
            lines: rx,
            pending: Default::default(),
        };
        sub.wait_line(|l| l.contains("received SUBACK"), "its SUBACK");
        sub
    }

    /// Starts it without waiting for anything (a subscription that may fail).
    pub fn raw(port: u16, args: &[&str]) -> Sub {
        let mut child = Command::new("stdbuf")
            // Line-buffered: mosquitto_sub's stdout is a pipe here.
            .args([
                "-oL",
                "mosquitto_sub",
                "-h",
                "127.0.0.1",
                "-p",
                &port.to_string(),
                "-d",
            ])
            .args(["-F", "MSG %r %q %t %p"])
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let (tx, rx) = mpsc::channel();
        for out in [
            Box::new(child.stdout.take().unwrap()) as Box<dyn Read + Send>,
            Box::new(child.stderr.take().unwrap()),
        ] {
            let tx = tx.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(out).lines().map_while(Result::ok) {
                    if tx.send(line).is_err() {
                        return;
                    }
                }
            });
        }
        Sub {
            child,
            lines: rx,
            pending: Default::default(),
        }
    }

    /// A long-lived `mosquitto_pub -l` (publishes stdin's lines; connected until
    /// stdin closes or it is killed), debug output on.
    pub fn publisher(port: u16, args: &[&str]) -> Sub {
        let mut child = Command::new("stdbuf")
            .args([
                "-oL",
                "mosquitto_pub",
                "-h",
                "127.0.0.1",
                "-p",
                &port.to_string(),
                "-d",
                "-l",
            ])
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let (tx, rx) = mpsc::channel();
        for out in [
            Box::new(child.stdout.take().unwrap()) as Box<dyn Read + Send>,
            Box::new(child.stderr.take().unwrap()),
        ] {
            let tx = tx.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(out).lines().map_while(Result::ok) {
                    if tx.send(line).is_err() {
                        return;
                    }
                }
            });
        }
        Sub {
            child,
            lines: rx,
            pending: Default::default(),
        }
    }

    /// Waits for a line satisfying `ok`; returns it.
    pub fn wait_line(&mut self, ok: impl Fn(&str) -> bool, what: &str) -> String {
        if let Some(i) = self.pending.iter().position(|l| ok(l)) {
            return self.pending.remove(i).unwrap();
        }
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(l) if ok(&l) => return l,
                Ok(l) => self.pending.push_back(l),
                Err(_) => panic!(
                    "mosquitto_sub: no {what} within 10 s; saw:\n{}",
                    Vec::from(self.pending.clone()).join("\n")
                ),
            }
        }
    }

    /// The next message: (retain, qos, topic, payload).
    pub fn message(&mut self) -> (bool, u8, String, String) {
        let l = self.wait_line(|l| l.starts_with("MSG "), "message");
        let mut parts = l.splitn(5, ' ');
        parts.next();
        let retain = parts.next().unwrap() == "1";
        let qos = parts.next().unwrap().parse().unwrap();
        let topic = parts.next().unwrap().to_owned();
        let payload = parts.next().unwrap_or("").to_owned();
        (retain, qos, topic, payload)
    }

    /// Messages that arrive within `d` (where their absence is the point).
    pub fn messages_for(&mut self, d: Duration) -> Vec<String> {
        let deadline = Instant::now() + d;
        let mut out: Vec<String> = self
            .pending
            .drain(..)
            .filter(|l| l.starts_with("MSG "))
            .collect();
        while let Ok(l) = self
            .lines
            .recv_timeout(deadline.saturating_duration_since(Instant::now()))
        {
            if l.starts_with("MSG ") {
                out.push(l);
            }
        }
        out
    }

    /// Lines printed so far (drained).
    pub fn drain(&mut self) -> Vec<String> {
        let mut out: Vec<String> = self.pending.drain(..).collect();
        out.extend(self.lines.try_iter());
        out
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// SIGKILL: the client dies without DISCONNECT.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Waits for the process to exit; its status code.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<i32> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(s) = self.child.try_wait().unwrap() {
                return s.code();
            }
            if Instant::now() > deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Sub {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A raw TCP client speaking bytes.
pub struct Raw {
    pub s: TcpStream,
}

impl Raw {
    pub fn connect(port: u16) -> Raw {
        let s = TcpStream::connect(("127.0.0.1", port)).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        Raw { s }
    }

    pub fn send(&mut self, bytes: &[u8]) {
        self.s.write_all(bytes).unwrap();
    }

    /// Sends, ignoring a connection already closed by the broker.
    pub fn send_lossy(&mut self, bytes: &[u8]) {
        let _ = self.s.write_all(bytes);
    }

    /// Reads exactly `n` bytes.
    pub fn read(&mut self, n: usize) -> Vec<u8> {
        let mut b = vec![0; n];
        self.s.read_exact(&mut b).unwrap();
        b
    }

    /// Reads one packet: (first byte, body).
    pub fn packet(&mut self) -> (u8, Vec<u8>) {
        let b1 = self.read(1)[0];
        let mut len = 0usize;
        for i in 0..4 {
            let b = self.read(1)[0];
            len |= usize::from(b & 0x7f) << (7 * i);
            if b & 0x80 == 0 {
                break;
            }
        }
        (b1, self.read(len))
    }

    /// Reads one packet, `None` if the connection closed first.
    pub fn try_packet(&mut self) -> Option<(u8, Vec<u8>)> {
        let mut b1 = [0u8; 1];
        match self.s.read(&mut b1) {
            Ok(1) => {}
            _ => return None,
        }
        let mut len = 0usize;
        for i in 0..4 {
            let mut b = [0u8; 1];
            self.s.read_exact(&mut b).ok()?;
            len |= usize::from(b[0] & 0x7f) << (7 * i);
            if b[0] & 0x80 == 0 {
                break;
            }
        }
        let mut body = vec![0; len];
        self.s.read_exact(&mut body).ok()?;
        Some((b1[0], body))
    }

    /// Whether the broker closed the connection (EOF or reset), within 10 s.
    pub fn closed(&mut self) -> bool {
        let mut b = [0u8; 256];
        loop {
            match self.s.read(&mut b) {
                Ok(0) => return true,
                Ok(_) => continue,
                Err(e)
                    if e.kind() == std::io::ErrorKind::WouldBlock
                        || e.kind() == std::io::ErrorKind::TimedOut =>
                {
                    return false;
                }
                Err(_) => return true,
            }
        }
    }

    /// Reads until the broker closes; what came before.
    pub fn until_closed(&mut self) -> Vec<u8> {
        let mut all = Vec::new();
        let _ = self.s.read_to_end(&mut all);
        all
    }
}

/// MQTT string: u16 length + bytes.
pub fn mqtt_str(s: &[u8]) -> Vec<u8> {
    let mut v = (s.len() as u16).to_be_bytes().to_vec();
    v.extend_from_slice(s);
    v
}

/// A packet: first byte, remaining length, body.
pub fn packet(byte1: u8, body: &[u8]) -> Vec<u8> {
    let mut v = vec![byte1];
    let mut len = body.len();
    loop {
        let mut b = (len % 128) as u8;
        len /= 128;
        if len > 0 {
            b |= 0x80;
        }
        v.push(b);
        if len == 0 {
            break;
        }
    }
    v.extend_from_slice(body);
    v
}

/// CONNECT, level 4 or 5, clean, with a keepalive, optional user/password and will.
pub fn connect(
    level: u8,
    client_id: &str,
    keep_alive: u16,
    login: Option<(&str, &str)>,
    will: Option<(&str, &str)>,
) -> Vec<u8> {
    let mut flags = 0x02u8;
    if will.is_some() {
        flags |= 0x04 | 0x08 | 0x20; // will, QoS 1, retained
    }
    if login.is_some() {
        flags |= 0xc0;
    }
    let mut body = mqtt_str(b"MQTT");
    body.push(level);
    body.push(flags);
    body.extend_from_slice(&keep_alive.to_be_bytes());
    if level == 5 {
        body.push(0); // no properties
    }
    body.extend(mqtt_str(client_id.as_bytes()));
    if let Some((t, p)) = will {
        if level == 5 {
            body.push(0); // no will properties
        }
        body.extend(mqtt_str(t.as_bytes()));
        body.extend(mqtt_str(p.as_bytes()));
    }
    if let Some((u, p)) = login {
        body.extend(mqtt_str(u.as_bytes()));
        body.extend(mqtt_str(p.as_bytes()));
    }
    packet(0x10, &body)
}

/// PUBLISH QoS 1 with packet id `pkid`; `level` 5 adds an empty property list.
pub fn publish_qos1(level: u8, topic: &[u8], pkid: u16, payload: &[u8]) -> Vec<u8> {
    let mut body = mqtt_str(topic);
    body.extend_from_slice(&pkid.to_be_bytes());
    if level == 5 {
        body.push(0);
    }
    body.extend_from_slice(payload);
    packet(0x32, &body)
}

/// Makes a CA, and certificates it signs, with openssl.
pub struct Pki {
    pub dir: std::path::PathBuf,
}

impl Pki {
    pub fn new(dir: &Path) -> Pki {
        Pki {
            dir: dir.to_owned(),
        }
    }

    fn openssl(&self, args: &[&str]) {
        let out = Command::new("openssl")
            .current_dir(&self.dir)
            .args(args)
            .output()
            .expect("openssl");
        assert!(
            out.status.success(),
            "openssl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// A CA named `name`: `<name>-ca.pem`, `<name>-ca.key`.
    pub fn ca(&self, name: &str) -> String {
        let (key, pem) = (format!("{name}-ca.key"), format!("{name}-ca.pem"));
        self.openssl(&[
            "req",
            "-x509",
            "-nodes",
            "-days",
            "2",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-keyout",
            &key,
            "-out",
            &pem,
            "-subj",
            &format!("/CN={name} test CA"),
        ]);
        self.path(&pem)
    }

    /// A certificate for `subject` (e.g. `/CN=bj1\/web-01`) signed by CA `ca`;
    /// `server` adds SAN 127.0.0.1 and serverAuth. Returns (cert, key) paths.
    pub fn cert(&self, ca: &str, name: &str, subject: &str, server: bool) -> (String, String) {
        let (key, csr, pem, ext) = (
            format!("{name}.key"),
            format!("{name}.csr"),
            format!("{name}.pem"),
            format!("{name}.ext"),
        );
        let usage = if server {
            "subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n"
        } else {
            "extendedKeyUsage=clientAuth\n"
        };
        std::fs::write(
            self.dir.join(&ext),
            format!(
                "basicConstraints=CA:FALSE\nkeyUsage=digitalSignature,keyEncipherment\n{usage}"
            ),
        )
        .unwrap();
        self.openssl(&[
            "req",
            "-nodes",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-keyout",
            &key,
            "-out",
            &csr,
            "-subj",
            subject,
        ]);
        self.openssl(&[
            "x509",
            "-req",
            "-in",
            &csr,
            "-CA",
            &format!("{ca}-ca.pem"),
            "-CAkey",
            &format!("{ca}-ca.key"),
            "-CAcreateserial",
            "-days",
            "2",
            "-out",
            &pem,
            "-extfile",
            &ext,
        ]);
        (self.path(&pem), self.path(&key))
    }

    pub fn path(&self, f: &str) -> String {
        self.dir.join(f).display().to_string()
    }
}

/// Polls `f` until it returns `Some`, for up to 10 s.
pub fn wait_until<T>(what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// What a rumqttc client saw.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Seen {
    ConnAck(bool),
    PubAck,
    Publish(String, Vec<u8>),
    Error(String),
}

/// A real MQTT 3.1.1 client (rumqttc, as the agent uses), on the broker's runtime.
pub struct Agent {
    pub client: rumqttc::AsyncClient,
    events: mpsc::Receiver<Seen>,
    handle: tokio::runtime::Handle,
    pub connacks: usize,
    pub errors: Vec<String>,
}

impl Agent {
    /// Connects (waits for the CONNACK). `will`: (topic, payload), retained QoS 1.
    pub fn connect(
        b: &Running,
        port: u16,
        client_id: &str,
        login: Option<(&str, &str)>,
        will: Option<(&str, &str)>,
        inflight: u16,
    ) -> Agent {
        use rumqttc::{AsyncClient, Event, LastWill, MqttOptions, Packet, QoS};
        let mut opts = MqttOptions::new(client_id, "127.0.0.1", port);
        opts.set_keep_alive(Duration::from_secs(30))
            .set_inflight(inflight)
            .set_clean_session(false);
        if let Some((u, p)) = login {
            opts.set_credentials(u, p);
        }
        if let Some((t, p)) = will {
            opts.set_last_will(LastWill::new(t, p, QoS::AtLeastOnce, true));
        }
        let _guard = b.rt.enter();
        let (client, mut eventloop) = AsyncClient::new(opts, 1000);
        let (tx, rx) = mpsc::channel();
        b.rt.spawn(async move {
            loop {
                let seen = match eventloop.poll().await {
                    Ok(Event::Incoming(Packet::ConnAck(a))) => Seen::ConnAck(a.session_present),
                    Ok(Event::Incoming(Packet::PubAck(_))) => Seen::PubAck,
                    Ok(Event::Incoming(Packet::Publish(p))) => {
                        Seen::Publish(p.topic, p.payload.to_vec())
                    }
                    Ok(_) => continue,
                    Err(e) => {
                        let s = Seen::Error(e.to_string());
                        if tx.send(s).is_err() {
                            return;
                        }
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        continue;
                    }
                };
                if tx.send(seen).is_err() {
                    return;
                }
            }
        });
        let mut a = Agent {
            client,
            events: rx,
            handle: b.rt.handle().clone(),
            connacks: 0,
            errors: Vec::new(),
        };
        a.wait(|s| matches!(s, Seen::ConnAck(_)), "CONNACK");
        a
    }

    fn note(&mut self, s: &Seen) {
        match s {
            Seen::ConnAck(_) => self.connacks += 1,
            Seen::Error(e) => self.errors.push(e.clone()),
            _ => {}
        }
    }

    /// Waits for an event; panics after 10 s.
    pub fn wait(&mut self, ok: impl Fn(&Seen) -> bool, what: &str) -> Seen {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.events.recv_timeout(left) {
                Ok(s) => {
                    self.note(&s);
                    if ok(&s) {
                        return s;
                    }
                }
                Err(_) => panic!("agent: no {what} within 10 s (errors: {:?})", self.errors),
            }
        }
    }

    /// Takes what happened so far without waiting.
    pub fn poll(&mut self) -> Vec<Seen> {
        let seen: Vec<Seen> = self.events.try_iter().collect();
        for s in &seen {
            self.note(s);
        }
        seen
    }

    /// Queues a QoS 1 publish (does not wait for its PUBACK).
    pub fn send(&self, topic: &str, payload: &str, retain: bool) {
        let c = self.client.clone();
        let (t, p) = (topic.to_owned(), payload.to_owned());
        self.handle
            .block_on(async move { c.publish(t, rumqttc::QoS::AtLeastOnce, retain, p).await })
            .unwrap();
    }

    /// Publishes QoS 1 and waits for its PUBACK.
    pub fn publish(&mut self, topic: &str, payload: &str, retain: bool) {
        self.send(topic, payload, retain);
        self.wait(|s| *s == Seen::PubAck, "PUBACK");
    }
}
