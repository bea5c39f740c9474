//! Devices that answer wrongly: a response of the wrong length, from another unit
//! id, or (on RTU) with a bad CRC. Each is counted as a failed poll, its readings
//! are `unknown`, and nothing panics or hangs. The "devices" are hand-written
//! byte-level responders, because no well-behaved peer answers like this.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[path = "support/pty.rs"]
mod pty;

use std::{
    io::{Read, Write},
    net::TcpListener,
    time::{Duration, Instant},
};

use pty::pty_pair;
use sitewatch_agent::{
    source::modbus::config::ModbusSourceConfig,
    source::{Poll, modbus::ModbusSource},
};
use sitewatch_protocol::{Reading, ReadingState};

fn source(toml_text: &str) -> ModbusSource {
    let config: ModbusSourceConfig = toml::from_str(toml_text).unwrap();
    ModbusSource::new(&config).unwrap()
}

fn device_toml(name: &str, address: &str) -> String {
    format!(
        "[[devices]]\nname = \"{name}\"\naddress = \"{address}\"\nprofile = \"generic-xy-md02\"\n\
         interval = \"5s\"\ntimeout = \"500ms\"\n"
    )
}

fn stat(readings: &[Reading], dev: &str, q: &str) -> Option<f64> {
    readings
        .iter()
        .find(|r| r.src == "agent" && r.dev == format!("modbus/{dev}") && r.q == q)
        .and_then(|r| r.value)
}

/// The device's own readings are all unknown and its poll counted as failed:
/// as an error, or as a timeout when the transport discarded the bad frame and
/// went on waiting for a good one (what an RTU codec does with a bad CRC).
fn assert_failed_poll(readings: &[Reading], dev: &str) {
    let own: Vec<&Reading> = readings.iter().filter(|r| r.dev == dev).collect();
    assert!(!own.is_empty(), "no readings for {dev}: {readings:#?}");
    for r in own {
        assert_eq!((r.value, r.state), (None, ReadingState::Unknown), "{r:?}");
    }
    assert_eq!(
        stat(readings, dev, "agent_poll_success"),
        Some(0.0),
        "{readings:#?}"
    );
    let errors = stat(readings, dev, "agent_poll_errors_total").unwrap_or(0.0);
    let timeouts = stat(readings, dev, "agent_poll_timeouts_total").unwrap_or(0.0);
    assert_eq!(errors + timeouts, 1.0, "{readings:#?}");
}

/// A Modbus TCP responder on a free port: every request gets `reply(request)`.
fn tcp_responder(reply: fn(&[u8]) -> Vec<u8>) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { return };
            std::thread::spawn(move || {
                let mut request = [0u8; 12]; // MBAP (7) + read request PDU (5)
                while stream.read_exact(&mut request).is_ok() {
                    if stream.write_all(&reply(&request)).is_err() {
                        return;
                    }
                }
            });
        }
    });
    port
}

/// A well-formed read-holding/input-registers answer to `request`, with the unit
/// id and the number of data bytes given.
fn tcp_answer(request: &[u8], unit: u8, data_bytes: usize) -> Vec<u8> {
    let count = u16::from_be_bytes([request[10], request[11]]) as usize;
    let declared = (2 * count) as u8;
    let pdu_len = 2 + data_bytes; // function, byte count, data
    let mut out = vec![request[0], request[1], 0, 0];
    out.extend_from_slice(&((1 + pdu_len) as u16).to_be_bytes());
    out.push(unit);
    out.push(request[7]);
    out.push(declared);
    out.extend(std::iter::repeat_n(0u8, data_bytes));
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_response_of_the_wrong_length_is_a_failed_poll_with_unknown_readings() {
    let port = tcp_responder(|req| {
        let count = u16::from_be_bytes([req[10], req[11]]) as usize;
        // Declares 2 x count bytes but carries one register fewer.
        tcp_answer(req, req[6], 2 * count.saturating_sub(1))
    });
    let mut src = source(&device_toml("short", &format!("tcp://127.0.0.1:{port}")));
    let started = Instant::now();
    let r = src.poll().await.unwrap().readings;
    assert_failed_poll(&r, "short");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_response_from_another_unit_id_is_a_failed_poll_with_unknown_readings() {
    let port = tcp_responder(|req| {
        let count = u16::from_be_bytes([req[10], req[11]]) as usize;
        tcp_answer(req, req[6].wrapping_add(1), 2 * count)
    });
    let mut src = source(&device_toml("impostor", &format!("tcp://127.0.0.1:{port}")));
    let r = src.poll().await.unwrap().readings;
    assert_failed_poll(&r, "impostor");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_rtu_answer_with_a_bad_crc_is_a_failed_poll_with_unknown_readings() {
    let dir = tempfile::tempdir().unwrap();
    let pty = pty_pair(dir.path());
    // The device end: every 8-byte RTU read request gets a right-sized answer
    // whose CRC is wrong.
    let mut device = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(&pty.device_end)
        .unwrap();
    std::thread::spawn(move || {
        let mut request = [0u8; 8];
        while device.read_exact(&mut request).is_ok() {
            let count = u16::from_be_bytes([request[4], request[5]]) as usize;
            let mut answer = vec![request[0], request[1], (2 * count) as u8];
            answer.extend(std::iter::repeat_n(0u8, 2 * count));
            answer.extend_from_slice(&[0xde, 0xad]); // not the CRC of the above
            if device.write_all(&answer).is_err() {
                return;
            }
        }
    });
    let mut src = source(&device_toml(
        "noisy",
        &format!(
            "rtu://{}?baud=9600&parity=N&stop=1",
            pty.agent_end.display()
        ),
    ));
    let started = Instant::now();
    let r = src.poll().await.unwrap().readings;
    assert_failed_poll(&r, "noisy");
    // Bounded by the device's 500 ms request timeout, not stuck on the line.
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
}
