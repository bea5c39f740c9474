//! The replay file's line parser, and the recorder's writing of a line: each
//! line of the input is parsed as a record (`sitewatch-collector replay`'s
//! first step) and its message decoded as ingest decodes it; the whole input,
//! taken as a received payload, is written as the recorder writes it and must
//! read back as the same record. The engine run behind a replay is
//! [`crate::replay_run`]'s (slower) target.

use sitewatch_collector::replay::payload_value;
use sitewatch_protocol::replay::ReplayRecord;
use sitewatch_protocol::{Topic, decode};

/// One input, as the fuzzer gives it.
#[allow(
    clippy::panic,
    reason = "a broken round trip is a finding: the fuzzer stops on the panic"
)]
pub fn run(data: &[u8]) {
    for line in data.split(|b| *b == b'\n') {
        let Ok(record) = serde_json::from_slice::<ReplayRecord>(line) else {
            continue;
        };
        let payload = record.payload_bytes();
        let _ = Topic::parse(&record.topic);
        let _ = decode(&record.topic, &payload);
    }
    // The recorder's side: whatever arrives is recorded, and a recorded line
    // replays as what was recorded.
    let record = ReplayRecord {
        t_ms: data.len() as u64,
        topic: String::from_utf8_lossy(data.get(..data.len().min(64)).unwrap_or_default())
            .into_owned(),
        retain: data.first().is_some_and(|b| b & 1 == 1),
        path: None,
        payload: payload_value(data),
    };
    let line = match serde_json::to_string(&record) {
        Ok(line) => line,
        Err(e) => panic!("a recorded message could not be written: {e}"),
    };
    assert!(!line.contains('\n'), "a record spans lines: {line}");
    match serde_json::from_str::<ReplayRecord>(&line) {
        Ok(back) => assert_eq!(back, record, "a recorded line reads back differently"),
        Err(e) => panic!("a recorded line does not parse: {e}: {line}"),
    }
}
