//! The wire decoder: one MQTT message as the collector receives it. The input
//! is `topic NUL payload` (no NUL: all topic, empty payload), so that the seeds
//! can be real topics and payloads side by side.

use sitewatch_protocol::{Topic, decode};

/// One input, as the fuzzer gives it.
pub fn run(data: &[u8]) {
    let (topic, payload) = match data.iter().position(|b| *b == 0) {
        Some(i) => (&data[..i], &data[i + 1..]),
        None => (data, &[][..]),
    };
    let topic = String::from_utf8_lossy(topic);
    let _ = Topic::parse(&topic);
    if let Ok(message) = decode(&topic, payload) {
        // Whatever was accepted must print (the collector logs and re-publishes it).
        let _ = format!("{message:?}");
    }
}
