//! Issue 11, item 5: the collector with its embedded broker SIGKILLed and
//! started again keeps a host that was lost before as lost (the retained will
//! was on disk), instead of forgetting it.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use common::*;

const STATE: &str = "sitewatch/v1/bj1/db-01/state";
const LOST: &str = r#"{"v":1,"status":"offline","reason":"lost"}"#;

fn mqtt_str(s: &str) -> Vec<u8> {
    let mut v = (s.len() as u16).to_be_bytes().to_vec();
    v.extend_from_slice(s.as_bytes());
    v
}

fn packet(byte1: u8, body: &[u8]) -> Vec<u8> {
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

/// An agent with a retained will publishes its retained birth, then its
/// socket closes without DISCONNECT (the process died).
fn agent_that_dies(port: u16) {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut body = mqtt_str("MQTT");
    body.extend_from_slice(&[4, 0x02 | 0x04 | 0x08 | 0x20, 0, 60]);
    body.extend(mqtt_str("db-01"));
    body.extend(mqtt_str(STATE));
    body.extend(mqtt_str(LOST));
    s.write_all(&packet(0x10, &body)).unwrap();
    let mut connack = [0u8; 4];
    s.read_exact(&mut connack).unwrap();
    assert_eq!(connack, [0x20, 2, 0, 0]);
    let mut p = mqtt_str(STATE);
    p.extend_from_slice(&1u16.to_be_bytes());
    p.extend_from_slice(birth("b1", now_ms()).as_bytes());
    s.write_all(&packet(0x33, &p)).unwrap();
    let mut puback = [0u8; 4];
    s.read_exact(&mut puback).unwrap();
    assert_eq!(puback, [0x40, 2, 0, 1]);
}

#[test]
fn a_host_lost_before_a_sigkill_of_the_collector_is_still_lost_after_it() {
    let dir = tempfile::tempdir().unwrap();
    let state_dir = dir.path().join("broker");
    let broker = free_addr();
    let config = dir.path().join("collector.toml");
    std::fs::write(
        &config,
        format!(
            "[embedded_broker]\nlisten_v4 = \"{broker}\"\nlisten_v5 = \"{}\"\nstate_dir = \"{}\"\n",
            free_addr(),
            state_dir.display()
        ),
    )
    .unwrap();
    let args = ["--config".to_owned(), config.display().to_string()];
    let c = Collector::start(dir.path(), "collector", &args);
    c.wait_healthy();
    agent_that_dies(broker.port());
    c.wait_sample(
        r#"sitewatch_agent_status{site="bj1",host="db-01",status="lost"}"#,
        |v| v == 1.0,
    );
    // On disk within the store's one-second window.
    wait_for("the will on disk", Duration::from_secs(10), || {
        sitewatch_collector::broker::persist::load(&state_dir)
            .ok()?
            .iter()
            .any(|m| &*m.topic == STATE && m.payload == LOST.as_bytes())
            .then_some(())
    });
    // Dropping the child SIGKILLs it: no shutdown, no last write.
    drop(c);

    let c = Collector::start(dir.path(), "collector-again", &args);
    c.wait_healthy();
    let text = c.wait_sample(
        r#"sitewatch_agent_status{site="bj1",host="db-01",status="lost"}"#,
        |v| v == 1.0,
    );
    assert_eq!(
        sample(&text, r#"sitewatch_agent_up{site="bj1",host="db-01"}"#),
        Some(0.0)
    );
    // The will, and maybe the collector's own retained _signals.
    assert!(sample(&text, "sitewatch_broker_retained_messages").is_some_and(|n| n >= 1.0));
    let hosts: serde_json::Value = serde_json::from_str(&c.get("/api/v1/hosts").1).unwrap();
    assert_eq!(hosts[0]["host"], "db-01");
    assert_eq!(hosts[0]["reason"], "will");
}
