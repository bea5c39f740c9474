//! The wire decoder: one MQTT message as the collector receives it. The input
//! is `topic NUL payload` (no NUL: all topic, empty payload), so that the seeds
//! can be real topics and payloads side by side. The collector's in-place
//! decoder (the scanner in `protocol/src/decode/scan.rs` first, serde when it
//! gives up) must accept what the owned one accepts, as the same message, and
//! reject the rest for the same reason.

use sitewatch_protocol::{Body, Decoded, Message, Topic, decode, decode_in_place};

/// One input, as the fuzzer gives it.
pub fn run(data: &[u8]) {
    let (topic, payload) = match data.iter().position(|b| *b == 0) {
        Some(i) => (&data[..i], &data[i + 1..]),
        None => (data, &[][..]),
    };
    let topic = String::from_utf8_lossy(topic);
    let _ = Topic::parse(&topic);
    let owned = decode(&topic, payload);
    if let Ok(message) = &owned {
        // Whatever was accepted must print (the collector logs and re-publishes it).
        let _ = format!("{message:?}");
    }
    let in_place = decode_in_place(&topic, payload).map(|d| match d {
        Decoded::Readings(topic, batch) => Message {
            topic,
            body: Body::Readings(batch.to_owned_payload()),
        },
        Decoded::Message(m) => m,
    });
    // NaN cannot come out of either (non-finite values are rejected); Debug
    // rather than `==` so that -0.0 and 0.0 differ too.
    let show = |m: Message| format!("{m:?}");
    assert_eq!(
        owned.map(show).map_err(|e| e.reason()),
        in_place.map(show).map_err(|e| e.reason()),
        "the decoders disagree"
    );
}
