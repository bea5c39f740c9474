//! A real mosquitto broker on a free loopback port.

use std::{net::TcpStream, path::Path, process::Command, time::Duration};

use crate::{free_port, process::Proc, wait};

/// Where Debian installs the broker.
pub const MOSQUITTO: &str = "/usr/sbin/mosquitto";

/// TLS listener settings: files made by [`crate::tls`].
#[derive(Debug, Clone)]
pub struct TlsListener {
    pub port: u16,
    pub ca: String,
    pub cert: String,
    pub key: String,
}

/// A mosquitto process with its configuration.
#[derive(Debug)]
pub struct Mosquitto {
    pub port: u16,
    pub tls: Option<TlsListener>,
    proc: Proc,
    conf: std::path::PathBuf,
    dir: std::path::PathBuf,
}

impl Mosquitto {
    /// Starts mosquitto with a plain listener (and a TLS one when given), with
    /// persistence in `dir` so that sessions survive a restart, as they do in a
    /// production broker.
    pub fn start(dir: &Path, tls: Option<TlsListener>) -> Mosquitto {
        let port = free_port();
        let conf = dir.join("mosquitto.conf");
        // Started as root, mosquitto drops to its own user, which cannot write
        // the test's persistence folder: stay root for the test broker.
        let user = if is_root() { "user root\n" } else { "" };
        let mut text = format!(
            "{user}per_listener_settings false\nallow_anonymous true\n\
             persistence true\npersistence_location {}/\nautosave_interval 1\n\
             log_dest stderr\nlog_type error\nlog_type warning\nlog_type notice\n\
             max_queued_messages 100000\n\
             listener {port} 127.0.0.1\n",
            dir.display()
        );
        if let Some(t) = &tls {
            text.push_str(&format!(
                "listener {} 127.0.0.1\ncafile {}\ncertfile {}\nkeyfile {}\n",
                t.port, t.ca, t.cert, t.key
            ));
        }
        std::fs::write(&conf, text).unwrap();
        let proc = spawn(&conf, dir);
        let m = Mosquitto {
            port,
            tls,
            proc,
            conf,
            dir: dir.to_path_buf(),
        };
        m.wait_ready();
        m
    }

    /// Starts mosquitto with a whole configuration written by the test (the
    /// shipped one, rewritten), waiting until `port` accepts connections.
    /// `user root` is added when the test runs as root, as in [`Mosquitto::start`].
    pub fn start_config(dir: &Path, text: &str, port: u16) -> Mosquitto {
        let conf = dir.join("mosquitto.conf");
        let user = if is_root() { "user root\n" } else { "" };
        std::fs::write(&conf, format!("{user}{text}")).unwrap();
        let proc = spawn(&conf, dir);
        let m = Mosquitto {
            port,
            tls: None,
            proc,
            conf,
            dir: dir.to_path_buf(),
        };
        m.wait_ready();
        m
    }

    pub fn url(&self) -> String {
        format!("mqtt://127.0.0.1:{}", self.port)
    }

    /// Stops the broker cleanly (SIGTERM: it saves its sessions) and waits.
    pub fn stop(&mut self) {
        self.proc.signal("TERM");
        self.proc.wait();
    }

    /// Starts the broker again on the same ports with the same persistence.
    pub fn restart(&mut self) {
        self.proc = spawn(&self.conf, &self.dir);
        self.wait_ready();
    }

    pub fn log(&self) -> String {
        self.proc.log()
    }

    fn wait_ready(&self) {
        let port = self.port;
        wait::until(Duration::from_secs(10), "mosquitto to listen", || {
            TcpStream::connect(("127.0.0.1", port)).ok()
        });
    }
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| o.stdout.starts_with(b"0\n"))
}

fn spawn(conf: &Path, dir: &Path) -> Proc {
    let mut cmd = Command::new(MOSQUITTO);
    cmd.arg("-c").arg(conf);
    Proc::spawn("mosquitto", cmd, dir)
}

/// Publishes one message with `mosquitto_pub`, as a third-party publisher would.
pub fn publish(port: u16, topic: &str, payload: &str, retain: bool) {
    let mut cmd = Command::new("mosquitto_pub");
    cmd.args(["-h", "127.0.0.1", "-p", &port.to_string(), "-q", "1"])
        .args(["-t", topic, "-m", payload]);
    if retain {
        cmd.arg("-r");
    }
    let out = cmd.output().expect("mosquitto_pub");
    assert!(
        out.status.success(),
        "mosquitto_pub failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}
