//! A simulated agent's messages, encoded once through the protocol crate and
//! patched per message: a readings batch differs from the last only in `seq`
//! and `ts`, so those two numbers are written between a fixed head and tail.

use std::collections::BTreeMap;

use sitewatch_protocol::{
    HostName, Reading, ReadingState, ReadingsPayload, SiteName, StatePayload, Status, Topic, encode,
};

/// What every simulated agent sends under its own name.
#[derive(Debug, Clone)]
pub struct AgentMessages {
    pub client_id: String,
    pub state_topic: String,
    pub readings_topic: String,
    /// The retained will: `{"v":1,"status":"offline","reason":"lost"}`.
    pub will: Vec<u8>,
    /// The retained birth, sent after every CONNACK.
    pub birth: Vec<u8>,
    /// The retained clean-stop state, sent before the final DISCONNECT.
    pub shutdown: Vec<u8>,
    pub batch: BatchTemplate,
}

/// Why the messages could not be built.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    #[error("{0}")]
    Name(#[from] sitewatch_protocol::NameError),
    #[error("encoding: {0}")]
    Encode(#[from] serde_json::Error),
    #[error("the encoder no longer starts a batch with v, seq, ts")]
    Layout,
}

/// The head every encoded batch starts with when `seq` and `ts` are 0.
const HEAD: &[u8] = br#"{"v":1,"seq":0,"ts":0"#;

/// A readings batch encoded once, with `seq` and `ts` to patch.
#[derive(Debug, Clone)]
pub struct BatchTemplate {
    /// Everything after `ts`'s value: `,"readings":[...],"boot":"..."}`.
    tail: Vec<u8>,
    pub readings: usize,
}

impl BatchTemplate {
    /// The batch's readings are `series` host-source gauges, the kind a
    /// real agent's host source sends (a `temperature_celsius` per sensor).
    pub fn new(series: usize, boot: &str) -> Result<BatchTemplate, BuildError> {
        let readings = (0..series)
            .map(|i| {
                Reading::new(
                    "host",
                    "sim",
                    format!("sensor_{i}"),
                    "temperature_celsius",
                    Some(20.0 + (i % 10) as f64 * 0.5),
                    ReadingState::Ok,
                )
            })
            .collect();
        let payload = ReadingsPayload {
            v: sitewatch_protocol::VERSION,
            seq: 0,
            ts: 0,
            readings,
            boot: Some(boot.to_owned()),
            site: None,
            host: None,
        };
        let bytes = encode(&payload)?;
        let tail = bytes.strip_prefix(HEAD).ok_or(BuildError::Layout)?.to_vec();
        Ok(BatchTemplate {
            tail,
            readings: series,
        })
    }

    /// Writes the batch numbered `seq`, taken at `ts_ms`, into `out`.
    pub fn write(&self, seq: u64, ts_ms: i64, out: &mut Vec<u8>) {
        out.clear();
        out.extend_from_slice(br#"{"v":1,"seq":"#);
        push_decimal(u128::from(seq), false, out);
        out.extend_from_slice(br#","ts":"#);
        push_decimal(u128::from(ts_ms.unsigned_abs()), ts_ms < 0, out);
        out.extend_from_slice(&self.tail);
    }

    /// The size of a batch whose numbers have at most 20 digits.
    pub fn max_len(&self) -> usize {
        HEAD.len() + 40 + self.tail.len()
    }
}

fn push_decimal(mut n: u128, negative: bool, out: &mut Vec<u8>) {
    let mut digits = [0u8; 40];
    let mut at = digits.len();
    loop {
        at -= 1;
        digits[at] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    if negative {
        out.push(b'-');
    }
    out.extend_from_slice(&digits[at..]);
}

/// The version string the simulated agents announce in their birth.
pub const AGENT: &str = concat!("sitewatch-sim-load/", env!("CARGO_PKG_VERSION"));

impl AgentMessages {
    /// The messages of host `host` of `site`, whose process started as `boot`
    /// and sends a batch every `interval_ms`.
    pub fn new(
        site: &str,
        host: &str,
        boot: &str,
        interval_ms: u64,
        series: usize,
    ) -> Result<AgentMessages, BuildError> {
        let site_name = SiteName::new(site)?;
        let host_name = HostName::new(host)?;
        let birth = StatePayload {
            v: sitewatch_protocol::VERSION,
            status: Status::Online,
            reason: None,
            ts: None,
            boot: Some(boot.to_owned()),
            agent: Some(AGENT.to_owned()),
            interval_ms: Some(interval_ms),
            sources: BTreeMap::from([("host".to_owned(), interval_ms)]),
            labels: BTreeMap::from([("role".to_owned(), "load".to_owned())]),
            site: None,
            host: None,
        };
        Ok(AgentMessages {
            client_id: format!("{site}:{host}"),
            state_topic: Topic::state(&site_name, &host_name).to_string(),
            readings_topic: Topic::readings(&site_name, &host_name).to_string(),
            will: encode(&StatePayload::will())?,
            birth: encode(&birth)?,
            shutdown: encode(&StatePayload::offline(
                sitewatch_protocol::OfflineReason::Shutdown,
                None,
            ))?,
            batch: BatchTemplate::new(series, boot)?,
        })
    }
}

#[cfg(test)]
mod tests {
    use sitewatch_protocol::{Body, OfflineReason, decode};

    use super::*;

    fn messages() -> AgentMessages {
        AgentMessages::new("load", "load-00001", "b00c", 5000, 3).unwrap()
    }

    #[test]
    fn patched_batches_decode_with_their_seq_ts_boot_and_readings() {
        let m = messages();
        let mut out = Vec::new();
        for (seq, ts) in [(1u64, 1_764_080_000_000i64), (u64::MAX, 0), (42, 7)] {
            m.batch.write(seq, ts, &mut out);
            assert!(out.len() <= m.batch.max_len());
            let Body::Readings(r) = decode(&m.readings_topic, &out).unwrap().body else {
                panic!("not readings");
            };
            assert_eq!((r.seq, r.ts), (seq, ts));
            assert_eq!(r.boot.as_deref(), Some("b00c"));
            assert_eq!(r.readings.len(), 3);
            assert_eq!(r.readings[2].name, "sensor_2");
        }
    }

    #[test]
    fn a_batch_without_series_is_a_valid_heartbeat() {
        let t = BatchTemplate::new(0, "b").unwrap();
        let mut out = Vec::new();
        t.write(9, 10, &mut out);
        let Body::Readings(r) = decode("sitewatch/v1/s/h/readings", &out).unwrap().body else {
            panic!("not readings");
        };
        assert!(r.readings.is_empty());
    }

    #[test]
    fn birth_will_and_shutdown_decode_as_their_states() {
        let m = messages();
        let state = |bytes: &[u8]| match decode(&m.state_topic, bytes).unwrap().body {
            Body::State(s) => s,
            other => panic!("{other:?}"),
        };
        let birth = state(&m.birth);
        assert_eq!(birth.status, Status::Online);
        assert_eq!(birth.boot.as_deref(), Some("b00c"));
        assert_eq!(birth.interval_ms, Some(5000));
        assert_eq!(state(&m.will).reason, Some(OfflineReason::Lost));
        assert_eq!(state(&m.shutdown).reason, Some(OfflineReason::Shutdown));
        assert_eq!(m.state_topic, "sitewatch/v1/load/load-00001/state");
        assert_eq!(m.client_id, "load:load-00001");
    }

    #[test]
    fn an_invalid_host_name_is_refused() {
        assert!(AgentMessages::new("load", "_x", "b", 1000, 1).is_err());
    }
}
