//! Event-to-reading latency of the Redfish event stream: the tests' server
//! (`tests/support/redfish.rs`, plain HTTP/1.1, session auth) serves a copy
//! of DMTF's rack-server mockup whose EventService names an SSE stream; the
//! bench turns the supply Bay1 Critical (then OK again) in the served copy,
//! writes an event naming it to the stream, and times until the source's
//! poll (woken by the stream) returns the changed `psu_ok`. The interval is
//! 600 s: only the event makes the read happen. In process: the publisher's
//! encoding and the broker hop (well under a millisecond on loopback) are not
//! in the figure.
//!
//! `SITEWATCH_SHARED_TESTDATA=/path/to/shared/testdata cargo bench -p
//! sitewatch-agent --bench redfish_events`

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // bench code

#[path = "../tests/support/redfish.rs"]
mod peers;
#[path = "../tests/support/sushy.rs"]
mod sushy;

use std::time::{Duration, Instant};

use sitewatch_agent::source::{
    Poll,
    redfish::{RedfishSource, config::RedfishSourceConfig, logout_all},
};

const EVENTS: usize = 30;
const USER: &str = "sitewatch";
const PASSWORD: &str = "bench-password";
const SSE: &str = "/redfish/v1/EventService/SSE";

fn psu_ok(readings: &[sitewatch_protocol::Reading]) -> Option<f64> {
    readings
        .iter()
        .find(|r| r.q == "psu_ok" && r.labels.get("psu").map(String::as_str) == Some("Bay1"))
        .and_then(|r| r.value)
}

fn main() {
    let Some(mockups) =
        sitewatch_shared_testdata::dir("redfish/dmtf-mockups-2025.4", "DMTF Redfish mockups")
    else {
        return;
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let dir = tempfile::tempdir().unwrap();
        let tree = dir.path().join("rack");
        sushy::copy_tree(&mockups.join("public-rackmount1"), &tree);
        sushy::edit(&tree, "EventService", |e| {
            e["ServerSentEventUri"] = SSE.into();
        });
        let server = peers::redfish_server(tree.clone(), USER, PASSWORD, true).await;
        server.serve_events(SSE);
        let pw = dir.path().join("pw");
        std::fs::write(&pw, format!("{PASSWORD}\n")).unwrap();
        let config: RedfishSourceConfig = toml::from_str(&format!(
            "interval = \"600s\"\ntimeout = \"20s\"\n[[endpoints]]\nname = \"bench\"\nurl = \"http://127.0.0.1:{}\"\nusername = \"{USER}\"\npassword_file = \"{}\"\n",
            server.port,
            pw.display()
        ))
        .unwrap();
        let mut src = RedfishSource::new(&config).unwrap();
        let wake = src.wake().unwrap();
        assert_eq!(psu_ok(&src.poll().await.unwrap().readings), Some(1.0));
        let deadline = Instant::now() + Duration::from_secs(10);
        while server.sse_opens().is_empty() {
            assert!(Instant::now() < deadline, "no stream opened");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let mut took = Vec::new();
        for i in 0..EVENTS {
            let critical = i % 2 == 0;
            sushy::edit(&tree, "Chassis/1U/PowerSubsystem/PowerSupplies/Bay1", |p| {
                p["Status"]["Health"] = if critical { "Critical" } else { "OK" }.into();
            });
            let data = serde_json::json!({"Events": [{
                "EventId": format!("bench-{i}"),
                "MessageSeverity": if critical { "Critical" } else { "OK" },
                "Message": "power supply status changed",
                "OriginOfCondition": {"@odata.id": "/redfish/v1/Chassis/1U/PowerSubsystem/PowerSupplies/Bay1"}
            }]});
            let t0 = Instant::now();
            server.send_event_bytes(format!("id: {i}\ndata: {data}\n\n").as_bytes());
            tokio::time::timeout(Duration::from_secs(10), wake.notified())
                .await
                .expect("the event wakes the source");
            let r = src.poll().await.unwrap().readings;
            let d = t0.elapsed();
            assert_eq!(psu_ok(&r), Some(if critical { 0.0 } else { 1.0 }), "event {i}");
            took.push(d);
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        took.sort();
        let ms = |d: Duration| d.as_secs_f64() * 1000.0;
        println!(
            "event to changed psu_ok, {EVENTS} events: median {:.2} ms, p90 {:.2} ms, min {:.2} ms, max {:.2} ms",
            ms(took[EVENTS / 2]),
            ms(took[EVENTS * 9 / 10]),
            ms(took[0]),
            ms(took[EVENTS - 1])
        );
        let requests = server.state.lock().unwrap().requests;
        println!("requests served in all (including the first read and the stream): {requests}");
        logout_all(Duration::from_secs(2)).await;
    });
}
