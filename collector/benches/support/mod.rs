//! Synthetic but realistically shaped traffic for the benchmarks and the memory
//! measurement: hosts of 100 readings each, spread over sources, devices, sensor
//! names, quantities and a few label sets, like a server fleet.
#![allow(dead_code)]

use sitewatch_protocol::{
    Body, HostName, Message, Reading, ReadingState, ReadingsPayload, SiteName, Topic, quantity,
};

pub const READINGS_PER_HOST: usize = 100;
pub const T0: i64 = 1_764_080_000_000;

/// Sites are named `s00`..; 500 hosts per site.
pub fn host_names(host: usize) -> (SiteName, HostName) {
    let site = SiteName::new(&format!("s{:02}", host / 500)).unwrap_or_else(|_| unreachable!());
    let host = HostName::new(&format!("host-{host:05}")).unwrap_or_else(|_| unreachable!());
    (site, host)
}

/// The 100 readings of one host.
pub fn host_readings(value: f64) -> Vec<Reading> {
    const SOURCES: [(&str, &str); 5] = [
        ("ipmi", "bmc"),
        ("smart", "sda"),
        ("modbus", "ups-a"),
        ("host", "cpu"),
        ("net", "gw"),
    ];
    (0..READINGS_PER_HOST)
        .map(|i| {
            let (src, dev) = SOURCES[i % SOURCES.len()];
            let q = quantity::VOCABULARY[i % quantity::VOCABULARY.len()].0;
            let r = Reading::new(
                src,
                dev,
                format!("sensor {i}"),
                q,
                Some(value + i as f64),
                ReadingState::Ok,
            );
            if src == "smart" {
                r.with_label("model", "ST4000NM0035")
                    .with_label("serial", "ZC1234")
            } else {
                r
            }
        })
        .collect()
}

/// A readings message of host number `host`.
pub fn message(host: usize, seq: u64, value: f64) -> Message {
    let (site, host) = host_names(host);
    Message {
        topic: Topic::readings(&site, &host),
        body: Body::Readings(ReadingsPayload {
            v: 1,
            seq,
            ts: T0,
            readings: host_readings(value),
            boot: None,
            site: None,
            host: None,
        }),
    }
}

/// The same message as it travels: (topic, JSON bytes).
pub fn wire(host: usize, seq: u64, value: f64) -> (String, Vec<u8>) {
    let m = message(host, seq, value);
    let Body::Readings(r) = &m.body else {
        unreachable!()
    };
    (
        m.topic.to_string(),
        sitewatch_protocol::encode(r).unwrap_or_default(),
    )
}
