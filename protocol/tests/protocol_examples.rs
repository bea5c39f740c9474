//! Every JSON example in the wire contract (`docs/protocol.md`) round-trips
//! through the protocol crate: decoded as the message it illustrates, then
//! encoded back to the same JSON.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code

use serde::{Deserialize, Serialize};
use serde_json::Value;
use sitewatch_protocol::{
    Body, Severity, decode, encode,
    replay::{ReplayRecord, TimelineEntry},
};

const PROTOCOL_MD: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/protocol.md");

/// A line of `sitewatch-collector replay`'s timeline: the protocol's entry plus
/// the signal's severity (an additive field the collector writes).
#[derive(Debug, Serialize, Deserialize)]
struct TimelineLine {
    #[serde(flatten)]
    entry: TimelineEntry,
    severity: Severity,
}

/// The JSON values of every ```json block: a block is one value, or JSON lines.
fn examples() -> Vec<Value> {
    let text = std::fs::read_to_string(PROTOCOL_MD)
        .unwrap_or_else(|e| panic!("cannot read {PROTOCOL_MD}: {e}"));
    let mut values = Vec::new();
    let mut lines = text.lines();
    while let Some(line) = lines.next() {
        if line.trim() != "```json" {
            continue;
        }
        let block: Vec<&str> = lines.by_ref().take_while(|l| l.trim() != "```").collect();
        let joined = block.join("\n");
        match serde_json::from_str::<Value>(&joined) {
            Ok(v) => values.push(v),
            Err(_) => {
                for l in block.iter().filter(|l| !l.trim().is_empty()) {
                    values.push(
                        serde_json::from_str(l)
                            .unwrap_or_else(|e| panic!("example line is not JSON: {e}\n{l}")),
                    );
                }
            }
        }
    }
    values
}

fn topic_for(example: &Value) -> &'static str {
    if example.get("readings").is_some() {
        "sitewatch/v1/bj1/web-01/readings"
    } else if example.get("events").is_some() {
        "sitewatch/v1/bj1/web-01/events"
    } else if example.get("signals").is_some() {
        "sitewatch/v1/bj1/_signals"
    } else {
        "sitewatch/v1/bj1/web-01/state"
    }
}

fn round_trip_payload(topic: &str, example: &Value) {
    let bytes = example.to_string();
    let message = decode(topic, bytes.as_bytes())
        .unwrap_or_else(|e| panic!("example rejected ({}): {e}\n{bytes}", e.reason()));
    let encoded = match &message.body {
        Body::State(p) => encode(p),
        Body::Readings(p) => encode(p),
        Body::Events(p) => encode(p),
        Body::Signals(p) => encode(p),
        Body::Cleared => panic!("example decoded as cleared"),
    }
    .unwrap();
    let back: Value = serde_json::from_slice(&encoded).unwrap();
    assert!(
        same_json(&back, example),
        "round trip changed the example:\n{back}\n{example}"
    );
}

/// JSON equality where `0` and `0.0` are the same number, as they are on the wire.
fn same_json(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => x.as_f64() == y.as_f64(),
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(x, y)| same_json(x, y))
        }
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len()
                && x.iter()
                    .all(|(k, v)| y.get(k).is_some_and(|w| same_json(v, w)))
        }
        _ => a == b,
    }
}

#[test]
fn every_example_of_the_contract_round_trips() {
    let examples = examples();
    // state, will, shutdown, readings, events, signals, 3 replay lines, 2 timeline lines.
    assert!(
        examples.len() >= 11,
        "found only {} examples",
        examples.len()
    );
    let mut kinds = std::collections::BTreeSet::new();
    for example in &examples {
        if example.get("t_ms").is_some() && example.get("topic").is_some() {
            let record: ReplayRecord = serde_json::from_value(example.clone()).unwrap();
            round_trip_payload(&record.topic, &record.payload);
            assert_eq!(&serde_json::to_value(&record).unwrap(), example);
            kinds.insert("replay");
        } else if example.get("t_ms").is_some() {
            let line: TimelineLine = serde_json::from_value(example.clone()).unwrap();
            assert_eq!(&serde_json::to_value(&line).unwrap(), example);
            kinds.insert("timeline");
        } else {
            let topic = topic_for(example);
            round_trip_payload(topic, example);
            kinds.insert(topic.rsplit('/').next().unwrap());
        }
    }
    assert_eq!(
        kinds.into_iter().collect::<Vec<_>>(),
        [
            "_signals", "events", "readings", "replay", "state", "timeline"
        ]
    );
}

/// The backquoted names in column `column` (0-based) of the table rows of the
/// section headed `## {heading}`.
fn table_names(heading: &str, column: usize) -> Vec<String> {
    let text = std::fs::read_to_string(PROTOCOL_MD).unwrap();
    let start = text
        .find(&format!("\n## {heading}\n"))
        .unwrap_or_else(|| panic!("no section {heading}"));
    let section = &text[start + 1..];
    let end = section[3..].find("\n## ").map_or(section.len(), |i| i + 3);
    section[..end]
        .lines()
        .filter(|l| l.starts_with("| ") && !l.starts_with("|---"))
        .filter_map(|l| l.split('|').nth(column + 1))
        .flat_map(|cell| {
            cell.split('`')
                .skip(1)
                .step_by(2)
                .map(str::to_owned)
                .collect::<Vec<_>>()
        })
        .collect()
}

#[test]
fn every_cause_is_in_the_levels_table_and_nothing_else() {
    let mut documented: Vec<String> = table_names("Levels and causes", 1);
    documented.sort();
    let mut causes: Vec<String> = sitewatch_protocol::Cause::ALL
        .iter()
        .map(|c| c.as_str().to_owned())
        .collect();
    causes.sort();
    assert_eq!(documented, causes);
}

#[test]
fn every_rejection_reason_is_documented() {
    let documented = table_names("Rejections", 0);
    for reason in sitewatch_protocol::Rejection::REASONS {
        assert!(
            documented.iter().any(|d| d == reason),
            "{reason} missing from the Rejections table"
        );
    }
}

#[test]
fn every_vocabulary_quantity_is_in_the_quantities_table() {
    let documented = table_names("Quantities", 0);
    for (q, _) in sitewatch_protocol::quantity::VOCABULARY {
        assert!(
            documented.iter().any(|d| d == q),
            "{q} missing from the Quantities table"
        );
    }
}
