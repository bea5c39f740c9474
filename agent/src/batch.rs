//! Readings -> encoded readings messages with their `seq`. Pure.
//!
//! The `seq` is given when a message is made, at read time, so that messages kept
//! through an outage keep their order and a dropped one shows as a gap to the
//! collector. A poll's readings become one message, or several when they would
//! exceed [`MAX_MESSAGE_BYTES`].

use std::sync::Arc;

use sitewatch_protocol::{Reading, ReadingsPayload, encode};

use crate::buffer::Message;

/// Largest message the agent makes: well under the collector's 256 KiB limit,
/// and small enough to buffer many on a 256 MB gateway.
pub const MAX_MESSAGE_BYTES: usize = 64 * 1024;

/// The JSON around the readings (`{"v":1,"seq":..,"ts":..,"readings":[]}`) is under this.
const ENVELOPE_BYTES: usize = 96;

/// Numbers readings messages for one boot.
#[derive(Debug)]
pub struct Batcher {
    topic: Arc<str>,
    next_seq: u64,
    max_bytes: usize,
}

impl Batcher {
    pub fn new(topic: Arc<str>) -> Self {
        Self::with_max_bytes(topic, MAX_MESSAGE_BYTES)
    }

    pub fn with_max_bytes(topic: Arc<str>, max_bytes: usize) -> Self {
        Batcher {
            topic,
            next_seq: 1,
            max_bytes,
        }
    }

    /// Encodes readings taken at `ts_ms` as one message, or several if large;
    /// no readings make one empty message (a heartbeat).
    pub fn encode(
        &mut self,
        ts_ms: i64,
        readings: Vec<Reading>,
    ) -> Result<Vec<Message>, serde_json::Error> {
        let mut chunks: Vec<Vec<Reading>> = vec![Vec::new()];
        let mut size = ENVELOPE_BYTES;
        for reading in readings {
            // +1 for the comma between readings.
            let len = serde_json::to_vec(&reading)?.len() + 1;
            if size + len > self.max_bytes && chunks.last().is_some_and(|c| !c.is_empty()) {
                chunks.push(Vec::new());
                size = ENVELOPE_BYTES;
            }
            size += len;
            if let Some(chunk) = chunks.last_mut() {
                chunk.push(reading);
            }
        }
        chunks
            .into_iter()
            .map(|readings| {
                let count = readings.len();
                let payload = ReadingsPayload {
                    v: sitewatch_protocol::VERSION,
                    seq: self.next_seq,
                    ts: ts_ms,
                    readings,
                    site: None,
                    host: None,
                };
                let message = Message {
                    topic: Arc::clone(&self.topic),
                    seq: self.next_seq,
                    payload: encode(&payload)?,
                    readings: count,
                };
                self.next_seq += 1;
                Ok(message)
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use sitewatch_protocol::{Body, ReadingState, decode};

    use super::*;

    const TOPIC: &str = "sitewatch/v1/bj1/web-01/readings";

    fn reading(i: usize) -> Reading {
        Reading::new(
            "host",
            format!("dev{i}"),
            "x",
            "cpu_usage_ratio",
            Some(0.5),
            ReadingState::Ok,
        )
    }

    fn decoded(m: &Message) -> sitewatch_protocol::ReadingsPayload {
        match decode(TOPIC, &m.payload).unwrap().body {
            Body::Readings(r) => r,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn seq_starts_at_one_and_increases_per_message() {
        let mut b = Batcher::new(Arc::from(TOPIC));
        let first = b.encode(1000, vec![reading(1)]).unwrap();
        let heartbeat = b.encode(2000, vec![]).unwrap();
        assert_eq!(first.len(), 1);
        assert_eq!(first[0].seq, 1);
        assert_eq!(heartbeat[0].seq, 2);
        let payload = decoded(&heartbeat[0]);
        assert_eq!(
            (payload.seq, payload.ts, payload.readings.len()),
            (2, 2000, 0)
        );
        assert_eq!(decoded(&first[0]).readings, vec![reading(1)]);
    }

    #[test]
    fn large_polls_are_split_under_the_size_limit_without_losing_readings() {
        let mut b = Batcher::with_max_bytes(Arc::from(TOPIC), 1000);
        let readings: Vec<Reading> = (0..100).map(reading).collect();
        let messages = b.encode(5, readings.clone()).unwrap();
        assert!(messages.len() > 1);
        let mut all = Vec::new();
        for (i, m) in messages.iter().enumerate() {
            assert!(m.payload.len() <= 1000, "{}", m.payload.len());
            let p = decoded(m);
            assert_eq!((p.seq, p.ts), (i as u64 + 1, 5));
            assert_eq!(m.readings, p.readings.len());
            all.extend(p.readings);
        }
        assert_eq!(all, readings);
    }
}
