#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code
//! Redfish events: LogServices entries read from sushy-static serving a copy
//! of DMTF's rack-server mockup (changed while served), and the
//! EventService's SSE stream. No Redfish peer at hand serves SSE
//! (sushy-static does not), so the stream comes from the small test server
//! of `support/redfish.rs`, which serves the mockup's JSON for every GET and
//! an event stream the test writes to at the path the copy's EventService
//! names in `ServerSentEventUri`.

#[path = "support/redfish.rs"]
mod peers;
#[path = "support/sushy.rs"]
mod sushy;

use std::{
    path::{Path, PathBuf},
    time::{Duration, Instant},
};

use peers::redfish_server;
use sitewatch_agent::source::{
    Poll, Polled,
    redfish::{RedfishSource, config::RedfishSourceConfig, logout_all},
};
use sitewatch_protocol::{Event, Reading};
use sushy::{certs, copy_tree, edit, sushy, sushy_present};

macro_rules! require_sushy {
    () => {
        if !sushy_present() {
            println!(
                "SKIPPED: sushy-static or openssl not installed (scripts/install-test-deps.sh)"
            );
            return;
        }
    };
}

fn mockups() -> Option<PathBuf> {
    sitewatch_shared_testdata::dir("redfish/dmtf-mockups-2025.4", "DMTF Redfish mockups")
}

fn source(toml_text: &str) -> RedfishSource {
    let config: RedfishSourceConfig = toml::from_str(toml_text).unwrap();
    config.validate().unwrap();
    RedfishSource::new(&config).unwrap()
}

fn log_events(p: &Polled) -> Vec<&Event> {
    p.events
        .iter()
        .filter(|e| e.event_type == "redfish_log_entry")
        .collect()
}

/// What the publisher does once the events' message is acknowledged.
fn apply_checkpoints(p: &Polled) {
    for c in &p.checkpoints {
        std::fs::write(&c.path, &c.contents).unwrap();
    }
}

const LOG: &str = "Systems/437XR1138R2/LogServices/Log1/Entries";

/// Adds entry `id` to the served copy: its own resource and a member of the
/// collection (with its body inline, as the mockup's members are).
fn add_entry(tree: &Path, id: &str) {
    let path = format!("/redfish/v1/{LOG}/{id}");
    let body = serde_json::json!({
        "@odata.id": path,
        "@odata.type": "#LogEntry.v1_21_0.LogEntry",
        "Id": id,
        "Name": format!("Log Entry {id}"),
        "EntryType": "SEL",
        "Severity": "Critical",
        "Created": "2026-12-03T01:00:00Z",
        "Message": "Power supply Bay1 failed",
        "MessageId": "0x6F0108",
        "Links": {"OriginOfCondition": {"@odata.id": "/redfish/v1/Chassis/1U/PowerSubsystem/PowerSupplies/Bay1"}}
    });
    let dir = tree.join(LOG).join(id);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("index.json"), body.to_string()).unwrap();
    edit(tree, LOG, |c| {
        c["Members"].as_array_mut().unwrap().push(body.clone());
        c["Members@odata.count"] = c["Members"].as_array().unwrap().len().into();
    });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn existing_log_entries_are_marked_seen_and_an_added_one_arrives_once_across_restarts() {
    require_sushy!();
    let Some(mockups) = mockups() else { return };
    let certs = certs();
    let dir = tempfile::tempdir().unwrap();
    let tree = dir.path().join("rack");
    copy_tree(&mockups.join("public-rackmount1"), &tree);
    let state = dir.path().join("state");
    let server = sushy(&tree, &certs);
    let config = format!(
        "interval = \"3s\"\ntimeout = \"3s\"\nstate_dir = \"{}\"\n[[endpoints]]\nname = \"r1\"\nurl = \"https://127.0.0.1:{}\"\nca_file = \"{}\"\n",
        state.display(),
        server.port,
        certs.ca.display()
    );
    let mut src = source(&config);
    // First start: the two entries there are history, marked seen.
    let first = src.poll().await.unwrap();
    assert!(log_events(&first).is_empty(), "{:?}", first.events);
    let cursor = state.join("r1.log.Systems_437XR1138R2_LogServices_Log1.json");
    assert!(
        first.checkpoints.iter().any(|c| c.path == cursor),
        "{:?}",
        first.checkpoints
    );
    apply_checkpoints(&first);

    add_entry(&tree, "3");
    tokio::time::sleep(Duration::from_millis(3050)).await;
    let second = src.poll().await.unwrap();
    let new = log_events(&second);
    assert_eq!(new.len(), 1, "{:?}", second.events);
    let id = new[0].id.clone().unwrap();
    assert_eq!(
        id,
        "rfl.r1.Systems/437XR1138R2/LogServices/Log1.3@2026-12-03T01:00:00Z"
    );
    assert_eq!(
        new[0].labels["origin"],
        "/redfish/v1/Chassis/1U/PowerSubsystem/PowerSupplies/Bay1"
    );
    // Not acknowledged yet: the file still holds the old cursor.
    tokio::time::sleep(Duration::from_millis(3050)).await;
    assert!(log_events(&src.poll().await.unwrap()).is_empty());
    logout_all(Duration::from_secs(2)).await;
    drop(src);

    // A restart before the acknowledgement: the entry again, same id.
    let mut again = source(&config);
    let p = again.poll().await.unwrap();
    let ids: Vec<_> = log_events(&p)
        .iter()
        .map(|e| e.id.clone().unwrap())
        .collect();
    assert_eq!(ids, vec![id.clone()]);
    apply_checkpoints(&p);
    drop(again);

    // Acknowledged, then restarted: nothing again.
    let mut third = source(&config);
    let p = third.poll().await.unwrap();
    assert!(log_events(&p).is_empty(), "{:?}", p.events);
}

const USER: &str = "sitewatch";
const PASSWORD: &str = "s3cret-ro";
const SSE: &str = "/redfish/v1/EventService/SSE";

fn sse_config(dir: &Path, port: u16) -> String {
    let pw = dir.join("pw");
    std::fs::write(&pw, format!("{PASSWORD}\n")).unwrap();
    format!(
        "interval = \"600s\"\ntimeout = \"20s\"\n[[endpoints]]\nname = \"r1\"\nurl = \"http://127.0.0.1:{port}\"\nusername = \"{USER}\"\npassword_file = \"{}\"\n",
        pw.display()
    )
}

fn psu_ok(readings: &[Reading]) -> Option<f64> {
    readings
        .iter()
        .find(|r| {
            r.src == "redfish"
                && r.q == "psu_ok"
                && r.labels.get("psu").map(String::as_str) == Some("Bay1")
        })
        .and_then(|r| r.value)
}

fn malformed(readings: &[Reading], reason: &str) -> f64 {
    readings
        .iter()
        .find(|r| {
            r.q == "agent_redfish_sse_malformed_total"
                && r.labels.get("reason").map(String::as_str) == Some(reason)
        })
        .and_then(|r| r.value)
        .unwrap_or_else(|| panic!("no malformed count for {reason}"))
}

async fn wait_for(what: &str, limit: Duration, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn event_bytes(sse_id: &str, event_id: &str) -> Vec<u8> {
    let data = serde_json::json!({
        "@odata.type": "#Event.v1_7_0.Event",
        "Id": sse_id,
        "Events": [{
            "EventId": event_id,
            "EventTimestamp": "2026-12-03T01:00:00Z",
            "MessageId": "ResourceEvent.1.0.ResourceStatusChangedCritical",
            "MessageSeverity": "Critical",
            "Message": "The power supply Bay1 failed",
            "OriginOfCondition": {"@odata.id": "/redfish/v1/Chassis/1U/PowerSubsystem/PowerSupplies/Bay1"}
        }]
    });
    // Split over two data: lines, CRLF line ends, a keep-alive comment first.
    let text = data.to_string();
    // (Joined with a newline: split between two members, not in a string.)
    let (a, b) = text.split_at(text.find(",\"Events\"").unwrap());
    format!(": keep-alive\r\nid: {sse_id}\r\ndata: {a}\r\ndata: {b}\r\n\r\n").into_bytes()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_sse_event_rereads_its_endpoint_at_once_survives_malformed_events_and_reconnects_with_last_event_id()
 {
    let Some(mockups) = mockups() else { return };
    let dir = tempfile::tempdir().unwrap();
    let tree = dir.path().join("rack");
    copy_tree(&mockups.join("public-rackmount1"), &tree);
    edit(&tree, "EventService", |e| {
        e["ServerSentEventUri"] = SSE.into();
    });
    let server = redfish_server(tree.clone(), USER, PASSWORD, true).await;
    server.serve_events(SSE);
    let mut src = source(&sse_config(dir.path(), server.port));
    let wake = src.wake().expect("a source with events has a wake");
    let r = src.poll().await.unwrap().readings;
    assert_eq!(psu_ok(&r), Some(1.0));
    wait_for("the stream to open", Duration::from_secs(5), || {
        server.sse_opens().len() == 1
    })
    .await;
    assert_eq!(server.sse_opens(), vec![None]);

    // The supply fails; the service says so on the stream. The interval is
    // 600 s: only the event can make the agent read it now.
    edit(&tree, "Chassis/1U/PowerSubsystem/PowerSupplies/Bay1", |p| {
        p["Status"]["Health"] = "Critical".into();
    });
    let sent = Instant::now();
    server.send_event_bytes(&event_bytes("1", "e-1"));
    tokio::time::timeout(Duration::from_secs(5), wake.notified())
        .await
        .expect("the event wakes the source");
    let p = src.poll().await.unwrap();
    let took = sent.elapsed();
    assert_eq!(psu_ok(&p.readings), Some(0.0), "re-read at once");
    assert!(took < Duration::from_secs(5), "{took:?}");
    let e: Vec<_> = p
        .events
        .iter()
        .filter(|e| e.event_type == "redfish_event")
        .collect();
    assert_eq!(e.len(), 1, "{:?}", p.events);
    assert_eq!(e[0].id.as_deref(), Some("rfe.r1.e-1"));
    assert_eq!(e[0].severity, sitewatch_protocol::Severity::High);

    // An oversized line and a non-JSON event are counted; the stream goes on.
    let mut bad = b"data: ".to_vec();
    bad.extend(std::iter::repeat_n(b'x', 70 * 1024));
    bad.extend(b"\n\ndata: {not json\n\n");
    server.send_event_bytes(&bad);
    server.send_event_bytes(&event_bytes("2", "e-2"));
    tokio::time::timeout(Duration::from_secs(5), wake.notified())
        .await
        .expect("the next good event wakes the source");
    // The events of the stream are taken at the poll.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let p = src.poll().await.unwrap();
    assert!(
        p.events
            .iter()
            .any(|e| e.id.as_deref() == Some("rfe.r1.e-2")),
        "{:?}",
        p.events
    );
    assert_eq!(malformed(&p.readings, "line_too_long"), 1.0);
    assert_eq!(malformed(&p.readings, "not_json"), 1.0);
    assert_eq!(server.sse_opens().len(), 1, "one stream all along");

    // The service drops the stream: reopened with the last id, not in a loop.
    server.drop_streams();
    wait_for("the stream to reopen", Duration::from_secs(10), || {
        server.sse_opens().len() >= 2
    })
    .await;
    assert_eq!(server.sse_opens()[1].as_deref(), Some("2"));
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(server.sse_opens().len(), 2, "{:?}", server.sse_opens());
    logout_all(Duration::from_secs(2)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_service_without_a_server_sent_event_uri_is_read_without_a_stream() {
    let Some(mockups) = mockups() else { return };
    let dir = tempfile::tempdir().unwrap();
    let tree = dir.path().join("rack");
    copy_tree(&mockups.join("public-rackmount1"), &tree);
    let server = redfish_server(tree.clone(), USER, PASSWORD, true).await;
    // The server could stream, but the EventService does not name it.
    server.serve_events(SSE);
    let mut src = source(&sse_config(dir.path(), server.port));
    let p = src.poll().await.unwrap();
    assert_eq!(psu_ok(&p.readings), Some(1.0));
    assert!(p.events.is_empty(), "{:?}", p.events);
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert!(server.sse_opens().is_empty());
    assert!(
        !p.readings
            .iter()
            .any(|r| r.q.starts_with("agent_redfish_sse")),
        "no stream, no stream readings"
    );
    logout_all(Duration::from_secs(2)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_false_opens_no_stream_and_reads_no_log() {
    let Some(mockups) = mockups() else { return };
    let dir = tempfile::tempdir().unwrap();
    let tree = dir.path().join("rack");
    copy_tree(&mockups.join("public-rackmount1"), &tree);
    edit(&tree, "EventService", |e| {
        e["ServerSentEventUri"] = SSE.into();
    });
    let server = redfish_server(tree.clone(), USER, PASSWORD, true).await;
    server.serve_events(SSE);
    let mut src = source(&(sse_config(dir.path(), server.port) + "events = false\n"));
    assert!(src.wake().is_none());
    src.poll().await.unwrap();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert!(server.sse_opens().is_empty());
    let paths = server.state.lock().unwrap().paths.clone();
    assert!(
        !paths
            .iter()
            .any(|p| p.contains("LogServices") || p.contains("EventService")),
        "{paths:?}"
    );
    logout_all(Duration::from_secs(2)).await;
}
