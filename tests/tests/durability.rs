//! Issue 16 end to end: the agent's disk buffer across a SIGKILL, a torn
//! segment tail and a full disk, with real mosquitto (persistence on), a real
//! agent and collector on loopback ports chosen at run time.
//!
//! A SIGKILL leaves in the kernel every write the agent made, whatever its
//! fsync policy (the policy bounds what a power cut costs, which a test cannot
//! do to its own machine); so "up to the fsync window" is checked as "up to the
//! last message the agent had made", which the window only has to cover for a
//! power cut.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code

// The agent's ipmi_sim rig, shared rather than copied.
#[path = "../../agent/tests/support/ipmisim.rs"]
mod ipmisim;
// The Redfish peers (sushy-static, mockup copies), likewise.
#[path = "../../agent/tests/support/sushy.rs"]
mod sushy;

use std::{
    collections::{BTreeMap, BTreeSet},
    io::Write,
    path::{Path, PathBuf},
    process::Command,
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use sitewatch_tests::{
    mosquitto::Mosquitto,
    observer::{Observer, Received},
    process::Proc,
    scrape,
    sitewatch::{AgentSpec, Broker, Collector, bin},
    wait,
};

const SITE: &str = "e2e";

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

/// An agent reading its host every second, with its disk buffer in `buffer`;
/// reconnects at most 1 s apart so that the test does not wait on backoff.
fn agent_config(host: &str, broker: &Mosquitto, buffer: &Path, fsync: &str) -> String {
    let mut spec = AgentSpec::new(SITE, host, &broker.url());
    spec.extra = format!(
        "\n[buffer]\ndir = \"{}\"\nfsync = \"{fsync}\"\n",
        buffer.display()
    );
    spec.config()
        .replacen("[mqtt]\n", "[mqtt]\nreconnect_max = \"1s\"\n", 1)
}

/// Starts (or starts again: the log is appended) the agent on `config`.
fn start_agent(dir: &Path, host: &str, config: &str) -> Proc {
    let path = dir.join(format!("agent-{host}.toml"));
    std::fs::write(&path, config).unwrap();
    let mut cmd = Command::new(bin("sitewatch-agent"));
    cmd.arg("run")
        .arg("--config")
        .arg(&path)
        .env("RUST_LOG", "info");
    Proc::spawn(&format!("agent-{host}"), cmd, dir)
}

fn sigkill(agent: &mut Proc) {
    agent.signal("KILL");
    agent.wait();
}

fn host_labels(host: &str) -> [(&'static str, &str); 2] {
    [("site", SITE), ("host", host)]
}

/// The readings batches an observer received, once each, by boot: `seq -> ts`.
fn batches_by_boot(received: &[Received]) -> BTreeMap<String, BTreeMap<u64, i64>> {
    let mut out: BTreeMap<String, BTreeMap<u64, i64>> = BTreeMap::new();
    for r in received {
        let j = r.json();
        let (Some(boot), Some(seq), Some(ts)) =
            (j["boot"].as_str(), j["seq"].as_u64(), j["ts"].as_i64())
        else {
            continue;
        };
        out.entry(boot.to_owned()).or_default().insert(seq, ts);
    }
    out
}

/// Every sequence number between a boot's first and last batch arrived.
fn assert_no_gaps(boot: &str, batches: &BTreeMap<u64, i64>) {
    let seqs: Vec<u64> = batches.keys().copied().collect();
    let expected: Vec<u64> = (seqs[0]..=*seqs.last().unwrap()).collect();
    assert_eq!(seqs, expected, "boot {boot}: a readings batch is missing");
}

fn collector_value(collector: &Collector, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    scrape::value(&collector.metrics(), name, labels)
}

/// Waits until the collector has ingested `n` readings batches, then checks it
/// saw no sequence gap.
fn assert_collector_saw_every_batch(collector: &Collector, n: usize) {
    wait::until(
        Duration::from_secs(30),
        "the collector to ingest every batch",
        || {
            (collector_value(
                collector,
                "sitewatch_collector_messages_total",
                &[("kind", "readings")],
            )
            .unwrap_or(0.0)
                >= n as f64)
                .then_some(())
        },
    );
    assert_eq!(
        collector_value(collector, "sitewatch_collector_sequence_gaps_total", &[]),
        Some(0.0),
        "the collector counted a sequence gap"
    );
}

/// Broker stopped, agent killed with SIGKILL during the outage and started
/// again, broker back: every batch the first run made arrives, with its own
/// timestamp, and so do the second run's batches made before the broker came
/// back.
fn sigkill_mid_outage(host: &str, fsync: &str) {
    let dir = tempfile::tempdir().unwrap();
    let mut broker = Mosquitto::start(dir.path(), None);
    let collector = Collector::start(dir.path(), Broker::External(broker.url()), &[]);
    let observer = Observer::start(
        broker.port,
        &format!("observer-{host}"),
        &format!("sitewatch/v1/{SITE}/{host}/readings"),
    );
    let config = agent_config(host, &broker, &dir.path().join("buffer"), fsync);
    let mut agent = start_agent(dir.path(), host, &config);
    collector.wait_for_value(
        Duration::from_secs(15),
        "sitewatch_agent_up",
        &host_labels(host),
        1.0,
    );
    wait::until(Duration::from_secs(10), "two readings batches", || {
        (observer.received().len() >= 2).then_some(())
    });

    broker.stop();
    let stopped_at = now_ms();
    std::thread::sleep(Duration::from_secs(5)); // batches made with no broker
    sigkill(&mut agent);
    let killed_at = now_ms();
    let first_boots: BTreeSet<String> = batches_by_boot(&observer.received()).into_keys().collect();
    assert_eq!(first_boots.len(), 1, "{first_boots:?}");
    let first_boot = first_boots.into_iter().next().unwrap();

    let mut agent = start_agent(dir.path(), host, &config);
    std::thread::sleep(Duration::from_secs(3)); // the second run, still no broker
    let restarted_at = now_ms();
    broker.restart();

    wait::until(
        Duration::from_secs(60),
        "live batches of the second run after the backlog",
        || {
            batches_by_boot(&observer.received())
                .iter()
                .any(|(boot, b)| {
                    *boot != first_boot && b.values().any(|ts| *ts > restarted_at + 3_000)
                })
                .then_some(())
        },
    );
    let by_boot = batches_by_boot(&observer.received());
    assert_eq!(by_boot.len(), 2, "two runs: {:?}", by_boot.keys());
    for (boot, batches) in &by_boot {
        assert_no_gaps(boot, batches);
    }
    let first = &by_boot[&first_boot];
    let outage: Vec<i64> = first
        .values()
        .copied()
        .filter(|ts| *ts > stopped_at + 1_000 && *ts < killed_at)
        .collect();
    assert!(
        outage.len() >= 3,
        "the first run's batches of the outage arrived with their own times: {first:?}"
    );
    let last = *first.values().max().unwrap();
    assert!(
        last >= killed_at - 2_500,
        "the first run's last batch ({last}) is within a poll and the fsync window of the kill ({killed_at})"
    );
    let (_, second) = by_boot.iter().find(|(b, _)| **b != first_boot).unwrap();
    assert!(
        second.values().any(|ts| *ts < restarted_at),
        "the second run's outage batches arrived too: {second:?}"
    );

    let total: usize = by_boot.values().map(BTreeMap::len).sum();
    assert_collector_saw_every_batch(&collector, total);
    let recovered = collector.wait_for(
        Duration::from_secs(10),
        "sitewatch_agent_buffer_recovered_messages_total",
        &host_labels(host),
    );
    assert!(recovered >= 3.0, "recovered {recovered}");
    assert!(agent.running(), "{}", agent.log());
}

#[test]
fn sigkill_mid_outage_loses_no_batch_with_fsync_always() {
    sigkill_mid_outage("crash-always", "always");
}

#[test]
fn sigkill_mid_outage_loses_no_batch_with_fsync_every_200ms() {
    sigkill_mid_outage("crash-every", "200ms");
}

/// The newest segment file of a disk buffer.
fn newest_segment(buffer: &Path) -> PathBuf {
    let mut segments: Vec<PathBuf> = std::fs::read_dir(buffer)
        .unwrap()
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "seg"))
        .collect();
    segments.sort();
    segments.pop().expect("a segment file")
}

#[test]
fn a_torn_segment_tail_left_by_a_killed_agent_is_cut_off_and_counted() {
    let host = "torn";
    let dir = tempfile::tempdir().unwrap();
    let mut broker = Mosquitto::start(dir.path(), None);
    let collector = Collector::start(dir.path(), Broker::External(broker.url()), &[]);
    let observer = Observer::start(
        broker.port,
        "observer-torn",
        &format!("sitewatch/v1/{SITE}/{host}/readings"),
    );
    let buffer = dir.path().join("buffer");
    let config = agent_config(host, &broker, &buffer, "always");
    let mut agent = start_agent(dir.path(), host, &config);
    collector.wait_for_value(
        Duration::from_secs(15),
        "sitewatch_agent_up",
        &host_labels(host),
        1.0,
    );
    broker.stop();
    std::thread::sleep(Duration::from_secs(3));
    sigkill(&mut agent);
    // A SIGKILL almost never tears a record (the kernel completes a write
    // into the page cache, short of a rare multi-page one cut off); a power
    // cut in the middle of one leaves its header and part of its body. That
    // is what is appended here, to the segment the killed process was
    // writing, so that the test does not depend on timing: a record
    // announcing 400 bytes, with 37 of them.
    let segment = newest_segment(&buffer);
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .open(&segment)
        .unwrap();
    f.write_all(&400u32.to_le_bytes()).unwrap();
    f.write_all(&0x1234_5678u32.to_le_bytes()).unwrap();
    f.write_all(&[1u8; 37]).unwrap();
    drop(f);

    let mut agent = start_agent(dir.path(), host, &config);
    broker.restart();
    collector.wait_for_value(
        Duration::from_secs(30),
        "sitewatch_agent_buffer_truncated_segments_total",
        &host_labels(host),
        1.0,
    );
    assert!(
        agent.log().contains("torn or corrupt tail"),
        "{}",
        agent.log()
    );
    wait::until(Duration::from_secs(30), "the second run's batches", || {
        (batches_by_boot(&observer.received()).len() == 2).then_some(())
    });
    let by_boot = batches_by_boot(&observer.received());
    for (boot, batches) in &by_boot {
        assert_no_gaps(boot, batches);
    }
    assert!(agent.running());
}

/// A tmpfs mounted for the test, unmounted when dropped.
struct Tmpfs(PathBuf);

impl Tmpfs {
    /// `None` when this process may not mount (not root, no CAP_SYS_ADMIN).
    fn mount(at: &Path, size: &str) -> Option<Tmpfs> {
        std::fs::create_dir_all(at).unwrap();
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(at)
            .output()
            .ok()?;
        if !out.status.success() {
            eprintln!(
                "SKIPPED: cannot mount a tmpfs at {} ({}): the full-disk test needs root",
                at.display(),
                String::from_utf8_lossy(&out.stderr).trim()
            );
            return None;
        }
        Some(Tmpfs(at.to_path_buf()))
    }

    /// Writes a file until the file system says it is full.
    fn fill(&self) {
        let mut f = std::fs::File::create(self.0.join("filler")).unwrap();
        let chunk = [0u8; 4096];
        while f.write_all(&chunk).and_then(|()| f.flush()).is_ok() {}
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

#[test]
fn a_full_disk_keeps_the_agent_publishing_from_memory() {
    let host = "full";
    let dir = tempfile::tempdir().unwrap();
    let Some(disk) = Tmpfs::mount(&dir.path().join("state"), "256k") else {
        return;
    };
    let buffer = disk.0.join("buffer");
    std::fs::create_dir_all(&buffer).unwrap();
    disk.fill();

    let broker = Mosquitto::start(dir.path(), None);
    let collector = Collector::start(dir.path(), Broker::External(broker.url()), &[]);
    let observer = Observer::start(
        broker.port,
        "observer-full",
        &format!("sitewatch/v1/{SITE}/{host}/readings"),
    );
    let mut agent = start_agent(
        dir.path(),
        host,
        &agent_config(host, &broker, &buffer, "always"),
    );
    collector.wait_for_value(
        Duration::from_secs(15),
        "sitewatch_agent_buffer_on_disk",
        &host_labels(host),
        0.0,
    );
    let errors = collector.wait_for(
        Duration::from_secs(5),
        "sitewatch_agent_buffer_disk_errors_total",
        &host_labels(host),
    );
    assert!(errors >= 1.0, "disk errors {errors}");
    // Still publishing: batches keep coming, none missing.
    let before = observer.received().len();
    wait::until(Duration::from_secs(10), "three more batches", || {
        (observer.received().len() >= before + 3).then_some(())
    });
    let by_boot = batches_by_boot(&observer.received());
    assert_eq!(by_boot.len(), 1);
    for (boot, batches) in &by_boot {
        assert_no_gaps(boot, batches);
    }
    assert!(agent.running(), "{}", agent.log());
}

/// The events messages an observer received: `(boot, event id)` of each event.
fn event_ids(received: &[Received]) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for r in received {
        let j = r.json();
        let boot = j["boot"].as_str().unwrap_or_default().to_owned();
        for e in j["events"].as_array().into_iter().flatten() {
            if let Some(id) = e["id"].as_str() {
                out.push((boot.clone(), id.to_owned()));
            }
        }
    }
    out
}

#[test]
fn a_sel_entry_read_before_a_sigkill_and_never_acknowledged_arrives_once_at_the_collector() {
    use ipmisim::{Board, IpmiSim, PASSWORD, USER, testdata_present};
    if !testdata_present() {
        return;
    }
    let host = "sel";
    let dir = tempfile::tempdir().unwrap();
    let mut sim = IpmiSim::start(Board::Sim1);
    let mut broker = Mosquitto::start(dir.path(), None);
    let collector = Collector::start(dir.path(), Broker::External(broker.url()), &[]);
    let observer = Observer::start(
        broker.port,
        "observer-sel",
        &format!("sitewatch/v1/{SITE}/{host}/events"),
    );
    let password = dir.path().join("bmc.password");
    std::fs::write(&password, format!("{PASSWORD}\n")).unwrap();
    let state = dir.path().join("ipmi-state");
    let mut config = agent_config(host, &broker, &dir.path().join("buffer"), "always");
    config.push_str(&format!(
        "\n[sources.ipmi]\ninterval = \"1s\"\ntimeout = \"5s\"\ncommand_timeout = \"500ms\"\n\
         state_dir = \"{}\"\n\n[[sources.ipmi.bmcs]]\nname = \"bmc\"\naddress = \"{}\"\n\
         username = \"{USER}\"\npassword_file = \"{}\"\n",
        state.display(),
        sim.address(),
        password.display()
    ));
    let mut agent = start_agent(dir.path(), host, &config);
    // The first sweep read the SEL's history (not news) and saved the cursor.
    collector.wait_for_value(
        Duration::from_secs(30),
        "sitewatch_bmc_up",
        &[("host", host), ("dev", "bmc")],
        1.0,
    );
    let cursor = state.join("bmc.sel.json");
    wait::until(Duration::from_secs(10), "the SEL cursor file", || {
        cursor.exists().then_some(())
    });
    let saved = std::fs::read(&cursor).unwrap();

    // With no broker to acknowledge it, a new entry is read and sent for
    // nothing: its cursor must stay where it was.
    broker.stop();
    sim.sel_add(0x08, 0x08, 0x6f, [0x01, 0xff, 0xff]); // a PSU failure
    std::thread::sleep(Duration::from_secs(4)); // several sweeps read it
    sigkill(&mut agent);
    assert_eq!(
        std::fs::read(&cursor).unwrap(),
        saved,
        "the cursor moved before the broker acknowledged the entry"
    );

    let mut agent = start_agent(dir.path(), host, &config);
    std::thread::sleep(Duration::from_secs(3)); // the second run reads it again
    broker.restart();

    // Both runs' copies reach the broker (the first from the disk buffer),
    // with one id; the collector keeps the first and drops the other.
    let copies = wait::until(Duration::from_secs(60), "the entry from both runs", || {
        let ids = event_ids(&observer.received());
        let boots: BTreeSet<&String> = ids.iter().map(|(b, _)| b).collect();
        (boots.len() == 2).then_some(ids)
    });
    let ids: BTreeSet<&String> = copies.iter().map(|(_, id)| id).collect();
    assert_eq!(ids.len(), 1, "one SEL entry, one id: {copies:?}");
    assert!(ids.iter().all(|id| id.starts_with("sel.bmc.")), "{ids:?}");
    let ingested = wait::within(Duration::from_secs(20), || {
        (collector_value(
            &collector,
            "sitewatch_collector_messages_total",
            &[("kind", "events")],
        )
        .unwrap_or(0.0)
            >= copies.len() as f64)
            .then_some(())
    });
    if ingested.is_none() {
        let text = scrape::get(collector.http_port, "/metrics").unwrap().body;
        let own: Vec<&str> = text
            .lines()
            .filter(|l| l.starts_with("sitewatch_collector_"))
            .collect();
        panic!(
            "the collector did not ingest the {} events messages: {copies:?}\n{}",
            copies.len(),
            own.join("\n")
        );
    }
    assert_eq!(
        collector_value(
            &collector,
            "sitewatch_collector_duplicate_events_total",
            &[]
        ),
        Some((copies.len() - 1) as f64),
        "every copy but the first dropped by its id"
    );
    // Delivered now: the second run moves the cursor on.
    wait::until(Duration::from_secs(20), "the cursor to move", || {
        (std::fs::read(&cursor).unwrap() != saved).then_some(())
    });
    assert!(agent.running(), "{}", agent.log());
}

/// Adds log entry `id` to a served copy of the rack-server mockup: its own
/// resource and a member of the Entries collection (body inline, as the
/// mockup's members are).
fn add_redfish_log_entry(tree: &Path, id: &str) {
    let log = "Systems/437XR1138R2/LogServices/Log1/Entries";
    let path = format!("/redfish/v1/{log}/{id}");
    let body = serde_json::json!({
        "@odata.id": path,
        "@odata.type": "#LogEntry.v1_21_0.LogEntry",
        "Id": id,
        "Name": format!("Log Entry {id}"),
        "EntryType": "SEL",
        "Severity": "Critical",
        "Created": "2026-12-03T01:00:00Z",
        "Message": "Power supply Bay1 failed",
        "MessageId": "0x6F0108"
    });
    let dir = tree.join(log).join(id);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("index.json"), body.to_string()).unwrap();
    sushy::edit(tree, log, |c| {
        c["Members"].as_array_mut().unwrap().push(body.clone());
        c["Members@odata.count"] = c["Members"].as_array().unwrap().len().into();
    });
}

#[test]
fn a_redfish_log_entry_read_before_a_sigkill_and_never_acknowledged_arrives_once_at_the_collector()
{
    if !sushy::sushy_present() {
        println!("SKIPPED: sushy-static or openssl not installed (scripts/install-test-deps.sh)");
        return;
    }
    let Some(mockups) =
        sitewatch_shared_testdata::dir("redfish/dmtf-mockups-2025.4", "DMTF Redfish mockups")
    else {
        return;
    };
    let host = "rflog";
    let dir = tempfile::tempdir().unwrap();
    let tree = dir.path().join("rack");
    sushy::copy_tree(&mockups.join("public-rackmount1"), &tree);
    let certs = sushy::certs();
    let bmc = sushy::sushy(&tree, &certs);
    let mut broker = Mosquitto::start(dir.path(), None);
    let collector = Collector::start(dir.path(), Broker::External(broker.url()), &[]);
    let observer = Observer::start(
        broker.port,
        "observer-rflog",
        &format!("sitewatch/v1/{SITE}/{host}/events"),
    );
    let state = dir.path().join("redfish-state");
    let mut config = agent_config(host, &broker, &dir.path().join("buffer"), "always");
    config.push_str(&format!(
        "\n[sources.redfish]\ninterval = \"2s\"\ntimeout = \"2s\"\nstate_dir = \"{}\"\n\
         [[sources.redfish.endpoints]]\nname = \"r1\"\nurl = \"https://127.0.0.1:{}\"\n\
         ca_file = \"{}\"\n",
        state.display(),
        bmc.port,
        certs.ca.display()
    ));
    let mut agent = start_agent(dir.path(), host, &config);
    // The first read marks the log's two entries seen (history, not news)
    // and saves the cursor.
    let cursor = state.join("r1.log.Systems_437XR1138R2_LogServices_Log1.json");
    wait::until(Duration::from_secs(30), "the log cursor file", || {
        cursor.exists().then_some(())
    });
    let saved = std::fs::read(&cursor).unwrap();

    // No broker to acknowledge it: the new entry is read and sent for
    // nothing, and its cursor stays where it was.
    broker.stop();
    add_redfish_log_entry(&tree, "3");
    std::thread::sleep(Duration::from_secs(5)); // reads at 2 s
    sigkill(&mut agent);
    assert_eq!(
        std::fs::read(&cursor).unwrap(),
        saved,
        "the cursor moved before the broker acknowledged the entry"
    );

    let mut agent = start_agent(dir.path(), host, &config);
    std::thread::sleep(Duration::from_secs(4)); // the second run reads it again
    broker.restart();

    let copies = wait::until(Duration::from_secs(60), "the entry from both runs", || {
        let ids = event_ids(&observer.received());
        let boots: BTreeSet<&String> = ids.iter().map(|(b, _)| b).collect();
        (boots.len() == 2).then_some(ids)
    });
    let ids: BTreeSet<&String> = copies.iter().map(|(_, id)| id).collect();
    assert_eq!(ids.len(), 1, "one log entry, one id: {copies:?}");
    assert!(ids.iter().all(|id| id.starts_with("rfl.r1.")), "{ids:?}");
    let ingested = wait::within(Duration::from_secs(20), || {
        (collector_value(
            &collector,
            "sitewatch_collector_messages_total",
            &[("kind", "events")],
        )
        .unwrap_or(0.0)
            >= copies.len() as f64)
            .then_some(())
    });
    assert!(ingested.is_some(), "the collector ingested every copy");
    assert_eq!(
        collector_value(
            &collector,
            "sitewatch_collector_duplicate_events_total",
            &[]
        ),
        Some((copies.len() - 1) as f64),
        "every copy but the first dropped by its id"
    );
    wait::until(Duration::from_secs(20), "the cursor to move", || {
        (std::fs::read(&cursor).unwrap() != saved).then_some(())
    });
    assert!(agent.running(), "{}", agent.log());
}
