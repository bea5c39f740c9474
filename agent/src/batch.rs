//! Readings and events -> encoded messages with their `seq`. Pure.
//!
//! The `seq` is given when a message is made, at read time, so that messages kept
//! through an outage keep their order and a dropped one shows as a gap to the
//! collector. A poll's readings become one message, or several when they would
//! exceed [`MAX_MESSAGE_BYTES`].

use std::sync::Arc;

use serde::Serialize;
use sitewatch_protocol::{Event, EventsPayload, Reading, ReadingsPayload, encode};

use crate::buffer::Message;

/// Largest message the agent makes: well under the collector's 256 KiB limit,
/// and small enough to buffer many on a 256 MB gateway.
pub const MAX_MESSAGE_BYTES: usize = 64 * 1024;

/// The JSON around the readings (`{"v":1,"seq":..,"ts":..,"readings":[]}`) is under this.
const ENVELOPE_BYTES: usize = 96;

/// Numbers readings and events messages for one boot (each kind has its own
/// `seq` counter, as the contract says).
#[derive(Debug)]
pub struct Batcher {
    readings_topic: Arc<str>,
    events_topic: Arc<str>,
    /// This process's boot, written in every payload: a message kept on disk
    /// across a restart stays named by `(boot, seq)`.
    boot: Option<String>,
    next_seq: u64,
    next_event_seq: u64,
    max_bytes: usize,
}

impl Batcher {
    pub fn new(readings_topic: Arc<str>, events_topic: Arc<str>) -> Self {
        Self::with_max_bytes(readings_topic, events_topic, MAX_MESSAGE_BYTES)
    }

    pub fn with_max_bytes(
        readings_topic: Arc<str>,
        events_topic: Arc<str>,
        max_bytes: usize,
    ) -> Self {
        Batcher {
            readings_topic,
            events_topic,
            boot: None,
            next_seq: 1,
            next_event_seq: 1,
            max_bytes,
        }
    }

    /// Names every message with this boot (`boot` in the payload), and gives
    /// events without an id of their own one made of it.
    pub fn with_boot(mut self, boot: impl Into<String>) -> Self {
        self.boot = Some(boot.into());
        self
    }

    /// Encodes readings taken at `ts_ms` as one message, or several if large;
    /// no readings make one empty message (a heartbeat).
    pub fn encode(
        &mut self,
        ts_ms: i64,
        readings: Vec<Reading>,
    ) -> Result<Vec<Message>, serde_json::Error> {
        chunk(readings, self.max_bytes)?
            .into_iter()
            .map(|readings| {
                let count = readings.len();
                let seq = self.next_seq;
                self.next_seq += 1;
                let payload = ReadingsPayload {
                    v: sitewatch_protocol::VERSION,
                    seq,
                    ts: ts_ms,
                    readings,
                    boot: self.boot.clone(),
                    site: None,
                    host: None,
                };
                Ok(Message {
                    topic: Arc::clone(&self.readings_topic),
                    seq,
                    payload: encode(&payload)?,
                    readings: count,
                })
            })
            .collect()
    }

    /// Encodes events noticed at `ts_ms`; no events make no message (events have
    /// no heartbeat).
    pub fn encode_events(
        &mut self,
        ts_ms: i64,
        events: Vec<Event>,
    ) -> Result<Vec<Message>, serde_json::Error> {
        if events.is_empty() {
            return Ok(Vec::new());
        }
        chunk(events, self.max_bytes)?
            .into_iter()
            .map(|mut events| {
                let seq = self.next_event_seq;
                self.next_event_seq += 1;
                if let Some(boot) = &self.boot {
                    // Stable across redelivery: the payload is kept as encoded.
                    for (i, e) in events.iter_mut().enumerate() {
                        e.id.get_or_insert_with(|| format!("{boot}.{seq}.{i}"));
                    }
                }
                let payload = EventsPayload {
                    v: sitewatch_protocol::VERSION,
                    seq,
                    ts: ts_ms,
                    events,
                    boot: self.boot.clone(),
                    site: None,
                    host: None,
                };
                Ok(Message {
                    topic: Arc::clone(&self.events_topic),
                    seq,
                    payload: encode(&payload)?,
                    readings: 0,
                })
            })
            .collect()
    }
}

/// Splits items into runs whose encoded size stays under `max_bytes` (a single
/// item larger than that still goes alone rather than being lost); no items
/// make one empty run.
fn chunk<T: Serialize>(items: Vec<T>, max_bytes: usize) -> Result<Vec<Vec<T>>, serde_json::Error> {
    let mut chunks: Vec<Vec<T>> = vec![Vec::new()];
    let mut size = ENVELOPE_BYTES;
    for item in items {
        // +1 for the comma between items.
        let len = serde_json::to_vec(&item)?.len() + 1;
        if size + len > max_bytes && chunks.last().is_some_and(|c| !c.is_empty()) {
            chunks.push(Vec::new());
            size = ENVELOPE_BYTES;
        }
        size += len;
        if let Some(chunk) = chunks.last_mut() {
            chunk.push(item);
        }
    }
    Ok(chunks)
}

#[cfg(test)]
mod tests {
    use sitewatch_protocol::{Body, ReadingState, decode};

    use super::*;

    const TOPIC: &str = "sitewatch/v1/bj1/web-01/readings";
    const EVENTS: &str = "sitewatch/v1/bj1/web-01/events";

    fn batcher() -> Batcher {
        Batcher::new(Arc::from(TOPIC), Arc::from(EVENTS))
    }

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
        let mut b = batcher();
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
        let mut b = Batcher::with_max_bytes(Arc::from(TOPIC), Arc::from(EVENTS), 1000);
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

    #[test]
    fn every_message_names_its_boot_and_events_get_an_id_unless_they_have_one() {
        let mut b = batcher().with_boot("9f2c41d0");
        let m = b.encode(1, vec![reading(1)]).unwrap();
        assert_eq!(decoded(&m[0]).boot.as_deref(), Some("9f2c41d0"));
        let mut own = Event::new(
            "ipmi",
            "bmc",
            "sel_entry",
            sitewatch_protocol::Severity::Low,
            "m",
        );
        own.id = Some("sel.bmc.1".into());
        let plain = Event::new(
            "smart",
            "sda",
            "disk_pending_sectors_grew",
            sitewatch_protocol::Severity::High,
            "1 -> 2",
        );
        let m = b.encode_events(2, vec![own, plain]).unwrap();
        match decode(EVENTS, &m[0].payload).unwrap().body {
            Body::Events(p) => {
                assert_eq!(p.boot.as_deref(), Some("9f2c41d0"));
                let ids: Vec<_> = p.events.iter().map(|e| e.id.clone().unwrap()).collect();
                assert_eq!(ids, ["sel.bmc.1", "9f2c41d0.1.1"]);
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn events_have_their_own_seq_and_topic_and_no_heartbeat() {
        let mut b = batcher();
        b.encode(1, vec![reading(1)]).unwrap();
        assert!(b.encode_events(2, vec![]).unwrap().is_empty());
        let event = Event {
            src: "smart".into(),
            dev: "sda".into(),
            event_type: "disk_reallocated_sectors_grew".into(),
            severity: sitewatch_protocol::Severity::High,
            message: "8 -> 9".into(),
            labels: Default::default(),
            ts: None,
            id: None,
        };
        let messages = b.encode_events(3, vec![event.clone()]).unwrap();
        assert_eq!(messages.len(), 1);
        assert_eq!((&*messages[0].topic, messages[0].seq), (EVENTS, 1));
        match decode(EVENTS, &messages[0].payload).unwrap().body {
            Body::Events(p) => assert_eq!((p.seq, p.ts, p.events), (1, 3, vec![event])),
            other => panic!("{other:?}"),
        }
        assert_eq!(b.encode(4, vec![]).unwrap()[0].seq, 2);
    }
}
