//! LogServices: the event logs under `Systems/*/LogServices`,
//! `Managers/*/LogServices` and `Chassis/*/LogServices`. New `Entries`
//! become events, once each, across restarts: a cursor per endpoint and log
//! service (the keys of the entries already handled) lives in the source's
//! `state_dir`, written with fsync by the publisher's checkpoint machinery
//! only after the message carrying the events was acknowledged (the IPMI
//! SEL cursor's way, `buffer::checkpoint`). Until then a restart reads the
//! same entries again, with the same event ids, and the collector keeps them
//! once.
//!
//! First read of a log without a cursor: its entries are history, not news;
//! they are marked seen and nothing is sent (the SEL's precedent).

use std::{
    collections::BTreeSet,
    path::{Path, PathBuf},
};

use serde::{Deserialize, Serialize};
use serde_json::Value;
use sitewatch_protocol::Event;

use super::{NAME, clean, sse};

/// The `Id`s of the entries handled (of those still in the log), as the
/// cursor file holds them.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogCursor {
    pub seen: BTreeSet<String>,
}

impl LogCursor {
    pub fn load(path: &Path) -> Option<LogCursor> {
        let text = std::fs::read(path).ok()?;
        serde_json::from_slice(&text).ok()
    }

    pub fn to_bytes(&self) -> Result<Vec<u8>, serde_json::Error> {
        serde_json::to_vec(self)
    }
}

/// An entry's identity in its event id: its `Id` and its `Created` time, so
/// that an id reused after the log was cleared is another event. (The cursor
/// holds `Id`s only: it is built from the collection's links, before any body
/// is read.)
pub fn entry_key(entry: &Value) -> Option<String> {
    let id = entry.get("Id").and_then(Value::as_str)?;
    let created = entry.get("Created").and_then(Value::as_str).unwrap_or("");
    Some(format!("{id}@{created}"))
}

/// The key of a member link before its body is read (the path's last
/// segment): the body is read only for entries not seen yet.
pub fn member_id(path: &str) -> &str {
    path.trim_end_matches('/')
        .rsplit('/')
        .next()
        .unwrap_or(path)
}

/// The state file of one log service of one endpoint:
/// `<dir>/<endpoint>.log.<path with / as _>.json`.
pub fn state_file(dir: &Path, endpoint: &str, log_path: &str) -> PathBuf {
    let flat: String = log_path
        .trim_start_matches("/redfish/v1/")
        .trim_matches('/')
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '.' {
                c
            } else {
                '_'
            }
        })
        .collect();
    dir.join(format!("{endpoint}.log.{flat}.json"))
}

/// One log entry as an agent event.
pub fn event(endpoint: &str, log_path: &str, entry: &Value) -> Option<Event> {
    let key = entry_key(entry)?;
    let text = |k: &str| entry.get(k).and_then(Value::as_str);
    let message_id = text("MessageId").unwrap_or("");
    let mut message = text("Message").unwrap_or(message_id).to_owned();
    if message.is_empty() {
        message = format!("log entry {}", member_id(log_path));
    }
    let origin = entry
        .get("Links")
        .and_then(|l| l.get("OriginOfCondition"))
        .or_else(|| entry.get("OriginOfCondition"))
        .and_then(|o| o.get("@odata.id"))
        .and_then(Value::as_str)
        .map(clean);
    let mut labels = std::collections::BTreeMap::new();
    labels.insert("log".into(), short(log_path));
    if !message_id.is_empty() {
        labels.insert("message_id".into(), short(message_id));
    }
    if let Some(o) = &origin {
        labels.insert("origin".into(), short(o));
    }
    if let Some(t) = text("EntryType") {
        labels.insert("entry_type".into(), short(t));
    }
    Some(Event {
        src: NAME.into(),
        dev: endpoint.into(),
        event_type: "redfish_log_entry".into(),
        severity: sse::severity_of(text("Severity").or(text("MessageSeverity"))),
        message: message
            .chars()
            .filter(|c| !c.is_control())
            .take(1024)
            .collect(),
        labels,
        ts: text("Created").and_then(sse::parse_timestamp),
        id: Some(sse::event_id(
            "rfl",
            endpoint,
            &format!("{}.{key}", log_path.trim_start_matches("/redfish/v1/")),
        )),
    })
}

fn short(s: &str) -> String {
    s.chars().filter(|c| !c.is_control()).take(256).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn an_entry_is_an_event_with_an_id_that_survives_a_reread() {
        let entry = json!({"Id": "1", "Created": "2012-03-07T14:44:00Z", "Severity": "Critical",
            "Message": "Temperature threshold exceeded", "MessageId": "Event.1.0.TempAssert",
            "EntryType": "Event",
            "Links": {"OriginOfCondition": {"@odata.id": "/redfish/v1/Chassis/1U/Thermal"}}});
        let log = "/redfish/v1/Systems/437XR1138R2/LogServices/Log1";
        let e = event("r1", log, &entry).unwrap();
        assert_eq!(e, event("r1", log, &entry).unwrap());
        assert_eq!(
            e.id.as_deref(),
            Some("rfl.r1.Systems/437XR1138R2/LogServices/Log1.1@2012-03-07T14:44:00Z")
        );
        assert_eq!(e.ts, Some(1_331_131_440_000));
        assert_eq!(e.labels["origin"], "/redfish/v1/Chassis/1U/Thermal");
        assert_eq!(event("r1", log, &json!({"Message": "no id"})), None);
    }

    #[test]
    fn the_state_file_is_one_flat_name_per_endpoint_and_log() {
        let p = state_file(
            Path::new("/var/lib/sw"),
            "pdu1",
            "/redfish/v1/Managers/BMC/LogServices/Log",
        );
        assert_eq!(
            p,
            Path::new("/var/lib/sw/pdu1.log.Managers_BMC_LogServices_Log.json")
        );
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.json");
        let c = LogCursor {
            seen: ["1@x".to_owned()].into(),
        };
        std::fs::write(&path, c.to_bytes().unwrap()).unwrap();
        assert_eq!(LogCursor::load(&path), Some(c));
    }
}
