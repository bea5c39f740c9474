#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code
//! The snmp source against real agents: snmpsimd serving the recordings of
//! `tests/snmp/<profile>/`, net-snmp's snmpd (v3 USM, pass_persist values
//! changed at run time), snmpget as the cross-check, snmptrap as the sender.

#[path = "support/snmp.rs"]
mod peers;

use std::{
    collections::BTreeMap,
    fs,
    path::{Path, PathBuf},
    time::{Duration, Instant},
};

use peers::{SnmpdSetup, peers_present, snmpd, snmpget, snmpsim, snmptrap_v2c, write_recording};
use sitewatch_agent::{
    config::Schedule,
    scheduler,
    source::{
        Poll,
        snmp::{SnmpSource, config::SnmpSourceConfig},
    },
};
use sitewatch_protocol::{Reading, ReadingState};
use sitewatch_snmp_profile::shipped;

fn recordings() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/snmp")
}

/// Skips (passes) when the Debian peers are not installed.
macro_rules! require_peers {
    () => {
        if !peers_present() {
            println!("SKIPPED: snmpd/snmpsim/snmp not installed (scripts/install-test-deps.sh)");
            return;
        }
    };
}

fn source(toml_text: &str) -> SnmpSource {
    let config: SnmpSourceConfig = toml::from_str(toml_text).unwrap();
    config.validate().unwrap();
    SnmpSource::new(&config).unwrap()
}

/// A community file holding `community`.
fn community_file(dir: &Path, community: &str) -> PathBuf {
    let path = dir.join(format!("{community}.community"));
    fs::write(&path, format!("{community}\n")).unwrap();
    path
}

fn device(name: &str, port: u16, profile: &str, community: &Path, extra: &str) -> String {
    format!(
        "[[devices]]\nname = \"{name}\"\naddress = \"127.0.0.1:{port}\"\nprofile = \"{profile}\"\n\
         community_file = \"{}\"\n{extra}\n",
        community.display()
    )
}

fn find<'a>(readings: &'a [Reading], dev: &str, name: &str) -> Option<&'a Reading> {
    readings.iter().find(|r| r.dev == dev && r.name == name)
}

fn stat<'a>(readings: &'a [Reading], dev: &str, q: &str) -> Option<&'a Reading> {
    readings
        .iter()
        .find(|r| r.src == "agent" && r.dev == format!("snmp/{dev}") && r.q == q)
}

/// Polls until `ready` holds of the latest reading of every series, at most 15 s.
async fn poll_until(source: &mut SnmpSource, ready: impl Fn(&[Reading]) -> bool) -> Vec<Reading> {
    let deadline = Instant::now() + Duration::from_secs(15);
    let mut latest: BTreeMap<(String, String, String), Reading> = BTreeMap::new();
    loop {
        for r in source.poll().await.unwrap().readings {
            latest.insert((r.src.clone(), r.dev.clone(), r.name.clone()), r);
        }
        let readings: Vec<Reading> = latest.values().cloned().collect();
        if ready(&readings) {
            return readings;
        }
        assert!(Instant::now() < deadline, "never ready: {readings:#?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Waits until something listens on UDP `port` of 127.0.0.1 (binding it
/// ourselves fails).
async fn wait_udp_bound(port: u16) {
    for _ in 0..200 {
        if std::net::UdpSocket::bind(("127.0.0.1", port)).is_err() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("nothing bound UDP port {port} within 5 s");
}

fn state(s: &str) -> ReadingState {
    serde_json::from_value(serde_json::Value::String(s.into())).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_shipped_profile_reads_its_recording_as_expected() {
    require_peers!();
    let mut folders: Vec<String> = fs::read_dir(recordings())
        .unwrap()
        .filter_map(|e| {
            let e = e.unwrap();
            e.path()
                .is_dir()
                .then(|| e.file_name().to_string_lossy().into_owned())
        })
        .collect();
    folders.sort();
    let mut shipped_names: Vec<String> = shipped::ALL.iter().map(|s| s.name.to_owned()).collect();
    shipped_names.sort();
    assert_eq!(
        folders, shipped_names,
        "one recording folder per shipped profile"
    );
    let sim = snmpsim(
        &folders
            .iter()
            .map(|f| (f.clone(), recordings().join(f).join("device.snmprec")))
            .collect::<Vec<_>>(),
    );
    let mut toml_text = String::from("interval = \"1s\"\ntimeout = \"1s\"\n");
    for f in &folders {
        let extra =
            fs::read_to_string(recordings().join(f).join("device.toml")).unwrap_or_default();
        toml_text.push_str(&device(
            f,
            sim.port,
            f,
            &community_file(sim.dir.path(), f),
            &extra,
        ));
    }
    let mut src = source(&toml_text);
    let readings = src.poll().await.unwrap().readings;
    for f in &folders {
        let dir = recordings().join(f);
        let expected: BTreeMap<String, (Option<f64>, String)> =
            serde_json::from_str(&fs::read_to_string(dir.join("expected.json")).unwrap()).unwrap();
        let own: Vec<&Reading> = readings
            .iter()
            .filter(|r| r.src == "snmp" && r.dev == *f)
            .collect();
        let got: BTreeMap<String, (Option<f64>, ReadingState)> = own
            .iter()
            .map(|r| {
                (
                    r.name.clone(),
                    (r.value.map(|v| (v * 1e6).round() / 1e6), r.state),
                )
            })
            .collect();
        let want: BTreeMap<String, (Option<f64>, ReadingState)> = expected
            .iter()
            .map(|(k, (v, s))| (k.clone(), (*v, state(s))))
            .collect();
        assert_eq!(got, want, "{f}");
        assert_eq!(
            stat(&readings, f, "agent_poll_success").unwrap().value,
            Some(1.0),
            "{f}"
        );
        assert_eq!(
            stat(&readings, f, "agent_snmp_malformed_values_total")
                .unwrap()
                .value,
            Some(0.0),
            "{f}"
        );
        for (file, check) in [("labels.json", true), ("quantities.json", false)] {
            let Ok(text) = fs::read_to_string(dir.join(file)) else {
                continue;
            };
            if check {
                let labels: BTreeMap<String, BTreeMap<String, String>> =
                    serde_json::from_str(&text).unwrap();
                for (name, want) in labels {
                    let r = find(&readings, f, &name).unwrap();
                    for (k, v) in want {
                        assert_eq!(r.labels.get(&k), Some(&v), "{f} {name} {k}: {r:?}");
                    }
                }
            } else {
                let qs: BTreeMap<String, String> = serde_json::from_str(&text).unwrap();
                for (name, q) in qs {
                    assert_eq!(find(&readings, f, &name).unwrap().q, q, "{f} {name}");
                }
            }
        }
        // snmpget on the same peer: every scalar's raw value, through the
        // profile's scale, is what the source reported.
        let profile = shipped::load(f).unwrap().unwrap();
        for s in profile
            .scalars
            .iter()
            .filter(|s| !s.rules.is_flag() && !s.rules.present)
        {
            let oid = sitewatch_snmp_profile::oid_string(&s.oid);
            let Some(raw) = snmpget(sim.port, f, &oid) else {
                continue;
            };
            let Ok(raw) = raw.parse::<f64>() else {
                continue;
            };
            let r = find(&readings, f, &s.name).unwrap();
            let want = raw * s.rules.scale + s.rules.offset;
            assert!(
                (r.value.unwrap() - want).abs() < 1e-9,
                "{f} {}: snmpget {raw} -> {want}, source {:?}",
                s.name,
                r.value
            );
        }
    }
}

const UPS_ON_MAINS: &str = "1.3.6.1.2.1.33.1.2.1.0|2|2
1.3.6.1.2.1.33.1.2.3.0|2|30
1.3.6.1.2.1.33.1.2.4.0|2|100
1.3.6.1.2.1.33.1.4.1.0|2|3
";

fn on_battery(minutes: u32, charge: &str) -> String {
    format!(
        "1.3.6.1.2.1.33.1.2.1.0|2|2\n1.3.6.1.2.1.33.1.2.3.0|2|{minutes}\n1.3.6.1.2.1.33.1.2.4.0|{charge}\n1.3.6.1.2.1.33.1.4.1.0|2|5\n"
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ups_going_on_battery_is_followed_and_a_mistyped_value_is_one_unknown_point() {
    require_peers!();
    let dir = tempfile::tempdir().unwrap();
    let recording = dir.path().join("ups.snmprec");
    write_recording(&recording, UPS_ON_MAINS);
    let agent = snmpd(SnmpdSetup {
        conf: "",
        pass: vec![(".1.3.6.1.2.1.33", recording.clone())],
    });
    let public = community_file(dir.path(), "public");
    let mut src = source(&format!(
        "interval = \"200ms\"\ntimeout = \"200ms\"\n{}",
        device("ups", agent.port, "ups-mib", &public, "")
    ));
    let on = |r: &[Reading]| find(r, "ups", "output_source").and_then(|x| x.value);
    let r = poll_until(&mut src, |r| on(r) == Some(0.0)).await;
    assert_eq!(find(&r, "ups", "mains_available").unwrap().value, Some(1.0));
    assert_eq!(
        find(&r, "ups", "battery_runtime").unwrap().value,
        Some(1800.0)
    );
    // Mains lost: the UPS says so; and its charge comes as a string.
    write_recording(&recording, &on_battery(12, "4|ninety"));
    let r = poll_until(&mut src, |r| on(r) == Some(1.0)).await;
    let battery = find(&r, "ups", "output_source").unwrap();
    assert_eq!(
        (battery.state, battery.labels["text"].as_str()),
        (ReadingState::Warning, "battery")
    );
    assert_eq!(find(&r, "ups", "mains_available").unwrap().value, Some(0.0));
    assert_eq!(
        find(&r, "ups", "battery_runtime").unwrap().value,
        Some(720.0)
    );
    // snmpget sees the same device.
    assert_eq!(
        snmpget(agent.port, "public", "1.3.6.1.2.1.33.1.4.1.0").as_deref(),
        Some("5")
    );
    let charge = find(&r, "ups", "battery_charge").unwrap();
    assert_eq!((charge.value, charge.state), (None, ReadingState::Unknown));
    assert!(
        stat(&r, "ups", "agent_snmp_malformed_values_total")
            .unwrap()
            .value
            >= Some(1.0)
    );
    assert_eq!(
        stat(&r, "ups", "agent_poll_success").unwrap().value,
        Some(1.0),
        "a bad value is not a failed poll"
    );
}

fn v3_device(port: u16, dir: &Path, user: &str, auth_pass: &str) -> String {
    let auth = dir.join(format!("{user}-{auth_pass}.auth"));
    let privacy = dir.join(format!("{user}.priv"));
    fs::write(&auth, auth_pass).unwrap();
    fs::write(&privacy, "privpass123").unwrap();
    format!(
        "[[devices]]\nname = \"sw-{auth_pass}\"\naddress = \"127.0.0.1:{port}\"\nprofile = \"if-mib\"\nversion = \"v3\"\n\
         user = \"{user}\"\nauth = \"sha256\"\nauth_password_file = \"{}\"\nprivacy = \"aes\"\n\
         privacy_password_file = \"{}\"\ntimeout = \"300ms\"\nretries = 0\n",
        auth.display(),
        privacy.display()
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn v3_auth_priv_reads_with_the_right_keys_and_fails_clearly_with_wrong_ones() {
    require_peers!();
    let dir = tempfile::tempdir().unwrap();
    // net-snmp's own IF-MIB of this machine, over authPriv SHA-256 + AES.
    let agent = snmpd(SnmpdSetup {
        conf: "createUser sitewatch SHA-256 authpass123 AES privpass123\nrouser sitewatch priv\n",
        pass: vec![],
    });
    let mut src = source(&format!(
        "interval = \"200ms\"\ntimeout = \"200ms\"\n{}{}",
        v3_device(agent.port, dir.path(), "sitewatch", "authpass123"),
        v3_device(agent.port, dir.path(), "sitewatch", "wrongpass99"),
    ));
    let r = poll_until(&mut src, |r| {
        stat(r, "sw-authpass123", "agent_poll_success").is_some_and(|x| x.value == Some(1.0))
            && stat(r, "sw-wrongpass99", "agent_polls_total").is_some_and(|x| x.value >= Some(3.0))
    })
    .await;
    // The loopback is skipped (softwareLoopback); the VM's own NIC is read.
    let up: Vec<&Reading> = r
        .iter()
        .filter(|x| x.dev == "sw-authpass123" && x.q == "interface_up")
        .collect();
    assert!(!up.is_empty(), "no interface read over v3: {r:#?}");
    assert!(
        up.iter()
            .all(|x| x.labels.get("port").is_none_or(|p| p != "lo"))
    );
    let wrong = stat(&r, "sw-wrongpass99", "agent_poll_success").unwrap();
    assert_eq!(wrong.value, Some(0.0));
    assert!(
        // async-snmp drops the agent's unauthenticated wrongDigest Report, so
        // the request times out (the logged error says what to check).
        ["auth", "report", "timeout"].contains(&wrong.labels["error"].as_str()),
        "{wrong:?}"
    );
    // Backed off: after the first failures, polls go on without requests.
    // Each read is one request; retry delays keep at least half their doubling
    // bound (200, 400, 800 ms ...), so at most four reads fit in ten polls.
    let requests = |r: &[Reading]| {
        stat(r, "sw-wrongpass99", "agent_snmp_requests_total")
            .unwrap()
            .value
            .unwrap()
    };
    let before = requests(&r);
    let mut later = r.clone();
    for _ in 0..10 {
        later = src.poll().await.unwrap().readings;
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let after = stat(&later, "sw-wrongpass99", "agent_snmp_requests_total")
        .map_or(before, |x| x.value.unwrap());
    assert!(
        after - before <= 4.0,
        "not backed off: {before} -> {after} requests in 10 polls"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_agent_never_delays_another() {
    require_peers!();
    let sim = snmpsim(&[(
        "ups-mib".into(),
        recordings().join("ups-mib/device.snmprec"),
    )]);
    let silent = peers::shim(sim.port, "silent");
    let community = community_file(sim.dir.path(), "ups-mib");
    let mut src = source(&format!(
        "interval = \"2s\"\ntimeout = \"2s\"\n{}{}",
        device("alive", sim.port, "ups-mib", &community, ""),
        device("silent", silent.port, "ups-mib", &community, "retries = 1"),
    ));
    let started = Instant::now();
    let r = src.poll().await.unwrap().readings;
    // The poll waited for the silent one's requests, the alive one did not.
    assert!(
        started.elapsed() < Duration::from_millis(1900),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(
        find(&r, "alive", "battery_charge").unwrap().value,
        Some(0.97)
    );
    assert!(
        stat(&r, "alive", "agent_poll_duration_seconds")
            .unwrap()
            .value
            < Some(0.4)
    );
    let dead = stat(&r, "silent", "agent_poll_success").unwrap();
    assert_eq!(
        (dead.value, dead.labels["error"].as_str()),
        (Some(0.0), "timeout")
    );
    assert_eq!(
        find(&r, "silent", "battery_charge").unwrap().state,
        ReadingState::Unknown
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_device_breaking_on_getbulk_is_read_through_getnext() {
    require_peers!();
    let sim = snmpsim(&[("if-mib".into(), recordings().join("if-mib/device.snmprec"))]);
    let no_bulk = peers::shim(sim.port, "drop-bulk");
    let community = community_file(sim.dir.path(), "if-mib");
    let mut src = source(&format!(
        "interval = \"1s\"\ntimeout = \"1s\"\n{}",
        device(
            "sw",
            no_bulk.port,
            "if-mib",
            &community,
            "timeout = \"200ms\"\nretries = 0"
        ),
    ));
    let r = src.poll().await.unwrap().readings;
    assert_eq!(
        find(&r, "sw", "oper_status.1").unwrap().value,
        Some(1.0),
        "{r:#?}"
    );
    assert_eq!(find(&r, "sw", "in_errors.4").unwrap().value, Some(1402.0));
    assert_eq!(
        stat(&r, "sw", "agent_snmp_bulk_fallbacks_total")
            .unwrap()
            .value,
        Some(1.0)
    );
    assert_eq!(
        stat(&r, "sw", "agent_poll_success").unwrap().value,
        Some(1.0)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_malformed_response_is_a_counted_failed_read() {
    require_peers!();
    let sim = snmpsim(&[(
        "ups-mib".into(),
        recordings().join("ups-mib/device.snmprec"),
    )]);
    let garbled = peers::shim(sim.port, "corrupt");
    let community = community_file(sim.dir.path(), "ups-mib");
    let mut src = source(&format!(
        "interval = \"1s\"\ntimeout = \"1s\"\n{}",
        device(
            "ups",
            garbled.port,
            "ups-mib",
            &community,
            "timeout = \"200ms\"\nretries = 0"
        ),
    ));
    let r = src.poll().await.unwrap().readings;
    let up = stat(&r, "ups", "agent_poll_success").unwrap();
    assert_eq!(up.value, Some(0.0));
    // async-snmp drops an undecodable datagram and waits for a good one: the
    // request then times out.
    assert!(
        ["decode", "timeout", "malformed_response"].contains(&up.labels["error"].as_str()),
        "{up:?}"
    );
    let failed = stat(&r, "ups", "agent_poll_errors_total")
        .unwrap()
        .value
        .unwrap()
        + stat(&r, "ups", "agent_poll_timeouts_total")
            .unwrap()
            .value
            .unwrap();
    assert_eq!(failed, 1.0);
    assert!(
        r.iter()
            .filter(|x| x.dev == "ups" && x.src == "snmp")
            .all(|x| x.value.is_none())
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_trap_is_one_event_and_the_device_is_polled_within_a_second() {
    require_peers!();
    let dir = tempfile::tempdir().unwrap();
    let recording = dir.path().join("ups.snmprec");
    write_recording(&recording, UPS_ON_MAINS);
    let agent = snmpd(SnmpdSetup {
        conf: "",
        pass: vec![(".1.3.6.1.2.1.33", recording.clone())],
    });
    let trap_port = peers::free_udp_port();
    let public = community_file(dir.path(), "public");
    // A minute between polls: only the trap can make the second one come soon.
    let src = source(&format!(
        "interval = \"60s\"\ntimeout = \"5s\"\n[traps]\nlisten = \"127.0.0.1:{trap_port}\"\n{}",
        device("ups", agent.port, "ups-mib", &public, "")
    ));
    let (tx, mut rx) = tokio::sync::mpsc::channel(16);
    let (_stop, stop_rx) = tokio::sync::watch::channel(false);
    let schedule = Schedule {
        interval: Duration::from_secs(60),
        timeout: Duration::from_secs(5),
    };
    let _tasks = scheduler::spawn(vec![(src, schedule)], tx, stop_rx);
    let first = rx.recv().await.unwrap().result.unwrap();
    assert_eq!(
        find(&first.readings, "ups", "output_source").unwrap().value,
        Some(0.0)
    );
    write_recording(&recording, &on_battery(20, "2|91"));
    // The receiver binds as the source starts; send until it has counted one.
    let sent = Instant::now();
    snmptrap_v2c(trap_port, "public", "1.3.6.1.2.1.33.2.1", &[]);
    let polled = tokio::time::timeout(Duration::from_secs(1), rx.recv())
        .await
        .expect("no poll within a second of the trap")
        .unwrap()
        .result
        .unwrap();
    assert!(sent.elapsed() < Duration::from_secs(1));
    assert_eq!(polled.events.len(), 1, "{:?}", polled.events);
    assert_eq!(polled.events[0].event_type, "ups_on_battery");
    assert_eq!(polled.events[0].dev, "ups");
    assert_eq!(
        find(&polled.readings, "ups", "output_source")
            .unwrap()
            .value,
        Some(1.0)
    );
    // The same trap again: polled again, no second event.
    snmptrap_v2c(trap_port, "public", "1.3.6.1.2.1.33.2.1", &[]);
    let again = tokio::time::timeout(Duration::from_secs(1), rx.recv())
        .await
        .unwrap()
        .unwrap()
        .result
        .unwrap();
    assert!(again.events.is_empty(), "{:?}", again.events);
    let repeated = again
        .readings
        .iter()
        .find(|r| r.dev == "snmp/traps" && r.q == "agent_snmp_traps_repeated_total")
        .unwrap();
    assert_eq!(repeated.value, Some(1.0));
    // From a community the receiver does not accept: nothing.
    snmptrap_v2c(trap_port, "not-ours", "1.3.6.1.2.1.33.2.1", &[]);
    assert!(
        tokio::time::timeout(Duration::from_millis(500), rx.recv())
            .await
            .is_err()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pdu_that_stops_answering_reports_its_rows_unknown_with_its_labels() {
    require_peers!();
    let sim = snmpsim(&[(
        "apc-rpdu2".into(),
        recordings().join("apc-rpdu2/device.snmprec"),
    )]);
    let community = community_file(sim.dir.path(), "apc-rpdu2");
    let mut src = source(&format!(
        "interval = \"200ms\"\ntimeout = \"200ms\"\n{}",
        device(
            "pdu-r12-a",
            sim.port,
            "apc-rpdu2",
            &community,
            "timeout = \"100ms\"\nretries = 0\nlabels = { rack = \"r12\", feed = \"a\" }"
        ),
    ));
    let r = src.poll().await.unwrap().readings;
    let feed = find(&r, "pdu-r12-a", "phase_feed.1").unwrap();
    assert_eq!(
        (
            feed.value,
            feed.labels["rack"].as_str(),
            feed.labels["feed"].as_str()
        ),
        (Some(1.0), "r12", "a")
    );
    // The PDU's card dies with its inlet.
    drop(sim);
    let r = poll_until(&mut src, |r| {
        stat(r, "pdu-r12-a", "agent_poll_success").is_some_and(|x| x.value == Some(0.0))
    })
    .await;
    let feed = find(&r, "pdu-r12-a", "phase_feed.1").unwrap();
    assert_eq!((feed.value, feed.state), (None, ReadingState::Unknown));
    assert_eq!(feed.labels["feed"], "a");
    assert_eq!(
        find(&r, "pdu-r12-a", "outlet_current.1").unwrap().value,
        None
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_v3_trap_is_accepted_with_the_devices_keys_and_refused_with_others() {
    require_peers!();
    let dir = tempfile::tempdir().unwrap();
    let agent = snmpd(SnmpdSetup {
        conf: "createUser sitewatch SHA-256 authpass123 AES privpass123\nrouser sitewatch priv\n",
        pass: vec![],
    });
    let trap_port = peers::free_udp_port();
    let src = source(&format!(
        "interval = \"60s\"\ntimeout = \"5s\"\n[traps]\nlisten = \"127.0.0.1:{trap_port}\"\n{}",
        v3_device(agent.port, dir.path(), "sitewatch", "authpass123")
    ));
    let (tx, mut rx) = tokio::sync::mpsc::channel(16);
    let (_stop, stop_rx) = tokio::sync::watch::channel(false);
    let schedule = Schedule {
        interval: Duration::from_secs(60),
        timeout: Duration::from_secs(5),
    };
    let _tasks = scheduler::spawn(vec![(src, schedule)], tx, stop_rx);
    rx.recv().await.unwrap().result.unwrap();
    // The receiver binds as the source starts, possibly after the first poll:
    // a trap sent before would be lost, not refused.
    wait_udp_bound(trap_port).await;
    // Wrong passphrase: refused, no poll.
    peers::snmptrap_v3(
        trap_port,
        "sitewatch",
        "wrongpass99",
        "privpass123",
        "1.3.6.1.6.3.1.1.5.3",
    );
    assert!(
        tokio::time::timeout(Duration::from_millis(500), rx.recv())
            .await
            .is_err()
    );
    peers::snmptrap_v3(
        trap_port,
        "sitewatch",
        "authpass123",
        "privpass123",
        "1.3.6.1.6.3.1.1.5.3",
    );
    let polled = tokio::time::timeout(Duration::from_secs(1), rx.recv())
        .await
        .expect("no poll within a second of the v3 trap")
        .unwrap()
        .result
        .unwrap();
    assert_eq!(polled.events.len(), 1, "{:?}", polled.events);
    assert_eq!(polled.events[0].event_type, "link_down");
    let rejected = polled
        .readings
        .iter()
        .find(|r| r.dev == "snmp/traps" && r.q == "agent_snmp_traps_rejected_total")
        .unwrap();
    assert!(rejected.value >= Some(1.0), "{rejected:?}");
}
