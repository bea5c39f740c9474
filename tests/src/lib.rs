//! Harness for sitewatch's end-to-end tests: real processes, real peers.
//!
//! Every peer (mosquitto, the collector, an agent) runs as a child process on
//! `127.0.0.1` with a port chosen at run time, is killed when its handle drops,
//! and keeps its output in a log file that a failing test prints.
//!
//! # Layout
//!
//! - [`process`]: a child process that dies with its handle, with its log.
//! - [`alertmanager`]: a real Alertmanager on a free port.
//! - [`deployment`]: two sites and a witness in network namespaces, agents
//!   dual-homed, a collector per site.
//! - [`curl`]: HTTP requests with TLS, client certificates and basic auth.
//! - [`drill`]: a simulated machine room, its agents and collector, and
//!   `sitewatch-sim drill` run against them.
//! - [`mosquitto`]: a mosquitto broker on a free port, plain or TLS.
//! - [`netns`]: sites as network namespaces joined by veth pairs, links cut at will.
//! - [`prometheus`]: a real Prometheus server configured from the shipped example.
//! - [`receivers`]: recording stand-ins for notification channels (WeChat
//!   API, webhooks, SMTP).
//! - [`sitewatch`]: the collector and agent binaries, configured for a test.
//! - [`sim`]: `sitewatch-sim site`, a simulated machine room, and its control ports.
//! - [`scrape`]: HTTP GET over a bare socket and a Prometheus text parser.
//! - [`observer`]: an MQTT subscriber that records every message it sees.
//! - [`prometheus`]: a real Prometheus server scraping what a test configures.
//! - [`raw_mqtt`]: hand-made MQTT packets over TLS (a wildcard PUBLISH).
//! - [`tls`]: a throwaway CA, server and client certificates made with `openssl`.
//! - [`wait`]: polling for a condition with a deadline instead of sleeping.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test harness: failing loudly is the point

pub mod alertmanager;
pub mod curl;
pub mod deployment;
pub mod drill;
pub mod mosquitto;
pub mod netns;
pub mod observer;
pub mod process;
pub mod prometheus;
pub mod raw_mqtt;
pub mod receivers;
pub mod scrape;
pub mod sim;
pub mod sitewatch;
pub mod tls;
pub mod wait;

use std::net::TcpListener;

/// A TCP port that was free a moment ago on 127.0.0.1.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("cannot bind 127.0.0.1:0")
}

/// Whether a command is on PATH (or at an absolute path).
pub fn have(command: &str) -> bool {
    std::process::Command::new("sh")
        .args(["-c", &format!("command -v {command}")])
        .output()
        .is_ok_and(|o| o.status.success())
}
