//! `sitewatch-sim site`: a simulated machine room (UPS, generator, CRAC, two
//! probes) on free ports, with each device's control port.

use std::{
    collections::BTreeMap,
    io::{BufRead, BufReader, Write},
    net::{SocketAddr, TcpStream},
    path::Path,
    process::Command,
    time::Duration,
};

use crate::{process::Proc, sitewatch::bin, wait};

/// A running simulated site.
#[derive(Debug)]
pub struct Sim {
    pub proc: Proc,
    /// The agent's `[[sources.modbus.devices]]` tables for the site.
    devices_toml: String,
    /// Device name -> its control address.
    controls: BTreeMap<String, SocketAddr>,
}

impl Sim {
    /// Starts `sitewatch-sim site` with every device and control port on a
    /// free port, and waits until all of them listen.
    pub fn start(dir: &Path) -> Sim {
        let tables = dir.join("site-devices.toml");
        let mut cmd = Command::new(bin("sitewatch-sim"));
        cmd.args([
            "site",
            "--listen-base",
            "127.0.0.1:0",
            "--control-base",
            "127.0.0.1:0",
            "--agent-config",
        ])
        .arg(&tables)
        .env("RUST_LOG", "info");
        let mut proc = Proc::spawn("sim", cmd, dir);
        // The tables are written (whole, by a rename) once every device listens.
        let devices_toml = wait::until(Duration::from_secs(10), "the simulated site", || {
            assert!(proc.running(), "sitewatch-sim exited:\n{}", proc.log());
            std::fs::read_to_string(&tables).ok()
        });
        // Announced on stdout before the tables were written:
        // "<device> control listening on <address>".
        let controls = proc
            .log()
            .lines()
            .filter_map(|line| {
                let (name, address) = line.split_once(" control listening on ")?;
                Some((name.to_owned(), address.trim().parse().ok()?))
            })
            .collect();
        Sim {
            proc,
            devices_toml,
            controls,
        }
    }

    pub fn agent_devices_toml(&self) -> &str {
        &self.devices_toml
    }

    /// Sends one control command to `device` (`mains_lost`, `set x 1`, ...)
    /// and returns its reply line.
    pub fn control(&self, device: &str, command: &str) -> String {
        let address = self
            .controls
            .get(device)
            .unwrap_or_else(|| panic!("no control port for {device}: {:?}", self.controls));
        control_at(*address, command)
    }
}

/// Sends one control command to a simulated device's control port and
/// returns its reply line.
pub fn control_at(address: SocketAddr, command: &str) -> String {
    let mut stream = TcpStream::connect(address).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    stream.write_all(format!("{command}\n").as_bytes()).unwrap();
    let mut reply = String::new();
    BufReader::new(stream).read_line(&mut reply).unwrap();
    reply.trim_end().to_owned()
}
