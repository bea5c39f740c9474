//! The embedded broker's MQTT packet decoder, on what a client sends: the
//! first packet's protocol level (CONNECT), then packets one at a time as a
//! connection's reads deliver them. The first byte picks the version and the
//! largest packet accepted; the rest is the stream.

use bytes::BytesMut;
use sitewatch_collector::broker::codec::{Codec, Version, connect_version};

/// One input, as the fuzzer gives it.
pub fn run(input: &[u8]) {
    let Some((&selector, stream)) = input.split_first() else {
        return;
    };
    let max = [16, 256, 4096, 1 << 20][usize::from(selector >> 1 & 3)];
    let _ = connect_version(stream, max);
    let version = if selector & 1 == 0 {
        Version::V311
    } else {
        Version::V5
    };
    let codec = Codec::new(version, max);
    // Arrives in two reads, split where the selector says.
    let cut = usize::from(selector >> 3) * stream.len() / 32;
    let (first, second) = stream.split_at(cut.min(stream.len()));
    let mut buf = BytesMut::from(first);
    for part in [Some(second), None] {
        // Every packet consumes bytes: a stream of n bytes holds at most n.
        for _ in 0..=stream.len() {
            match codec.decode(&mut buf) {
                Ok(Some(packet)) => {
                    let _ = format!("{packet:?}");
                }
                Ok(None) | Err(_) => break,
            }
        }
        if let Some(more) = part {
            buf.extend_from_slice(more);
        }
    }
}
