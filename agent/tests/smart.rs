//! The `smart` source end to end: real smartctl captures through the mapping
//! (data-driven, expected outputs in `tests/smart/expected/`), and the process
//! handling against a fake smartctl (a shell script, fed the hand-written
//! outputs of `tests/smart/fixtures/`) and the real one.
//!
//! The captures live in `../shared/testdata/smartctl/`: without that folder the
//! tests that need them print SKIPPED and pass (and fail under
//! `SITEWATCH_REQUIRE_SHARED=1`, as in CI).
//!
//! Re-generate the expected files after a deliberate change with
//! `SITEWATCH_BLESS=1 cargo test -p sitewatch-agent --test smart`, then review the diff.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::{
    fs,
    path::{Path, PathBuf},
    sync::{Arc, OnceLock},
    time::Duration,
};

use serde_json::{Value, json};
use sitewatch_agent::{
    batch::Batcher,
    source::smart::config::{NoCheck, SmartDeviceConfig, SmartSourceConfig},
    source::{
        Poll, Polled,
        smart::{RunResult, SmartSource, Tracker, device_name, scanned_devices},
    },
};
use sitewatch_protocol::{Reading, ReadingState, Severity};

const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/smart/fixtures");
const EXPECTED: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/smart/expected");
const PARSER_FIXTURES: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../smartctl-parser/tests/fixtures"
);

/// The shared captures' folder, `None` (and a SKIPPED line) when absent.
fn captures() -> Option<PathBuf> {
    sitewatch_shared_testdata::dir("smartctl", "smartctl captures")
}

fn capture(dir: &Path, name: &str) -> Vec<u8> {
    let path = dir.join(name);
    fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// A hand-written output of `tests/smart/fixtures/`.
fn fixture(name: &str) -> Vec<u8> {
    let path = format!("{FIXTURES}/{name}");
    fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

// -- data-driven: captures -> readings ----------------------------------------

/// The collector accepts every reading and event: names, labels, values.
fn assert_valid_on_the_wire(polled: &Polled) {
    let mut batcher = Batcher::new(
        Arc::from("sitewatch/v1/bj1/web-01/readings"),
        Arc::from("sitewatch/v1/bj1/web-01/events"),
    );
    let readings = batcher.encode(1, polled.readings.clone()).unwrap();
    let events = batcher.encode_events(1, polled.events.clone()).unwrap();
    for m in readings.iter().chain(&events) {
        sitewatch_protocol::decode(&m.topic, &m.payload)
            .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&m.payload)));
    }
}

fn reading_line(r: &Reading) -> String {
    let value = match r.value {
        Some(v) if v.fract() == 0.0 && v.abs() < 1e15 => format!("{}", v as i64),
        Some(v) => format!("{v}"),
        None => "null".into(),
    };
    let extra: Vec<String> = r
        .labels
        .iter()
        .filter(|(k, _)| !["model", "serial", "wwn", "protocol"].contains(&k.as_str()))
        .map(|(k, v)| format!(" {k}={v}"))
        .collect();
    format!(
        "{} {}={} {}{}",
        r.q,
        r.name,
        value,
        r.state.as_str(),
        extra.concat()
    )
}

fn summarize_report(stdout: &[u8]) -> Value {
    let result = RunResult::from_output(stdout, None);
    let (outcome, dev) = match &result {
        RunResult::Report(r) => {
            let dev = r
                .device
                .as_ref()
                .and_then(|d| Some(device_name(d.name.as_deref()?, d.dev_type.as_deref())));
            ("report".to_owned(), dev)
        }
        RunResult::Standby { mode } => (format!("standby {mode}"), None),
        RunResult::Failed { kind, .. } => (format!("failed {kind}"), None),
    };
    let dev = dev.unwrap_or_else(|| "disk".into());
    let polled = Tracker::default().observe(&dev, &result);
    assert!(polled.events.is_empty(), "a first report raises no events");
    assert_valid_on_the_wire(&polled);
    let labels = polled
        .readings
        .first()
        .map(|r| json!(r.labels))
        .unwrap_or(json!({}));
    for r in &polled.readings {
        assert_eq!(r.src, "smart");
        assert_eq!(r.dev, dev);
        if r.value.is_none() {
            assert_eq!(r.state, ReadingState::Unknown, "{r:?}");
        }
    }
    json!({
        "outcome": outcome,
        "dev": dev,
        "labels": labels,
        "readings": polled.readings.iter().map(reading_line).collect::<Vec<_>>(),
    })
}

fn summarize_scan(stdout: &[u8]) -> Value {
    let devices = scanned_devices(stdout).unwrap();
    json!(
        devices
            .iter()
            .map(|d| format!("{} <- {}", d.name, d.args(NoCheck::Standby)[7..].join(" ")))
            .collect::<Vec<_>>()
    )
}

#[test]
fn every_capture_maps_to_its_expected_readings() {
    let Some(dir) = captures() else { return };
    let mut names: Vec<String> = fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".json"))
        .collect();
    names.sort();
    assert!(names.len() >= 20, "{names:?}");
    let bless = std::env::var_os("SITEWATCH_BLESS").is_some();
    let mut mismatches = Vec::new();
    for name in &names {
        let stdout = capture(&dir, name);
        let actual = if name.starts_with("scan_") {
            summarize_scan(&stdout)
        } else {
            summarize_report(&stdout)
        };
        let path = PathBuf::from(EXPECTED).join(name.replace(".json", ".expected.json"));
        let pretty = serde_json::to_string_pretty(&actual).unwrap() + "\n";
        if bless {
            fs::create_dir_all(EXPECTED).unwrap();
            fs::write(&path, &pretty).unwrap();
            continue;
        }
        let expected = fs::read_to_string(&path).unwrap_or_else(|e| {
            panic!(
                "{}: {e} (a new capture needs its expected file)",
                path.display()
            )
        });
        let expected: Value = serde_json::from_str(&expected).unwrap();
        if expected != actual {
            mismatches.push(format!("{name}:\n{pretty}"));
        }
    }
    assert!(mismatches.is_empty(), "{}", mismatches.join("\n"));
    // Every expected file has its capture: none left behind after a rename.
    for entry in fs::read_dir(EXPECTED).unwrap() {
        let file = entry.unwrap().file_name().to_string_lossy().into_owned();
        let capture = file.replace(".expected.json", ".json");
        assert!(names.contains(&capture), "{file} has no capture");
    }
}

// -- a fake smartctl ----------------------------------------------------------

/// One script for the whole test binary, written once before any test spawns
/// anything (a file open for writing in one thread while another forks and
/// execs fails with ETXTBSY). Each test links to it from its own folder; the
/// script reads what to do from files next to the link.
fn fake_script() -> &'static Path {
    static SCRIPT: OnceLock<(tempfile::TempDir, PathBuf)> = OnceLock::new();
    let (_, path) = SCRIPT.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("fake-smartctl");
        fs::write(
            &path,
            r#"#!/bin/sh
# A stand-in for smartctl, driven by files next to the link it was run as.
dir=$(dirname "$0")
echo "$*" >> "$dir/argv"
case "$*" in
  *--scan-open*) cat "$dir/scan.json"; exit 0 ;;
esac
for dev; do :; done
echo "start $dev $(date +%s%N)" >> "$dir/log"
if [ -f "$dir/hang" ]; then
  sleep 1000 &
  echo $! > "$dir/child.pid"
  wait
fi
if [ -f "$dir/delay" ]; then sleep "$(cat "$dir/delay")"; fi
echo "end $dev $(date +%s%N)" >> "$dir/log"
cat "$dir/stdout" 2>/dev/null
exit "$(cat "$dir/exit" 2>/dev/null || echo 0)"
"#,
        )
        .unwrap();
        use std::os::unix::fs::PermissionsExt;
        fs::set_permissions(&path, fs::Permissions::from_mode(0o755)).unwrap();
        (dir, path)
    });
    path
}

struct Fake {
    dir: tempfile::TempDir,
}

impl Fake {
    fn new() -> Fake {
        let script = fake_script();
        let dir = tempfile::tempdir().unwrap();
        std::os::unix::fs::symlink(script, dir.path().join("smartctl")).unwrap();
        Fake { dir }
    }

    fn smartctl(&self) -> PathBuf {
        self.dir.path().join("smartctl")
    }

    fn set(&self, file: &str, contents: impl AsRef<[u8]>) -> &Fake {
        fs::write(self.dir.path().join(file), contents).unwrap();
        self
    }

    fn read(&self, file: &str) -> String {
        fs::read_to_string(self.dir.path().join(file)).unwrap_or_default()
    }

    fn config(&self, paths: &[&str]) -> SmartSourceConfig {
        SmartSourceConfig {
            smartctl: self.smartctl(),
            interval: Duration::from_secs(20),
            timeout: Duration::from_secs(10),
            devices: paths
                .iter()
                .map(|p| SmartDeviceConfig {
                    path: (*p).into(),
                    dev_type: Some("sat".into()),
                    nocheck: None,
                })
                .collect(),
            ..SmartSourceConfig::default()
        }
    }
}

fn find<'a>(polled: &'a Polled, dev: &str, q: &str) -> &'a Reading {
    polled
        .readings
        .iter()
        .find(|r| r.dev == dev && r.q == q)
        .unwrap_or_else(|| panic!("no {q} for {dev} in {:#?}", polled.readings))
}

/// Whether a process is gone (or a zombie waiting for init to reap it).
fn process_gone(pid: &str) -> bool {
    match fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => true,
        Ok(stat) => stat
            .rsplit_once(") ")
            .is_some_and(|(_, rest)| rest.starts_with('Z')),
    }
}

async fn wait_until_gone(pid: &str) -> bool {
    for _ in 0..100 {
        if process_gone(pid) {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    false
}

#[tokio::test]
async fn a_capture_and_its_exit_code_become_readings_and_smartctl_gets_the_right_arguments() {
    let Some(dir) = captures() else { return };
    let fake = Fake::new();
    fake.set(
        "stdout",
        capture(&dir, "megaraid_WD4000FYYX_reallocated387_exit4.json"),
    )
    .set("exit", "4");
    let mut config = fake.config(&[]);
    config.devices = vec![SmartDeviceConfig {
        path: "/dev/bus/0".into(),
        dev_type: Some("sat+megaraid,1".into()),
        nocheck: None,
    }];
    let mut source = SmartSource::new(config);
    let polled = source.poll().await.unwrap();
    let dev = "megaraid,1@/dev/bus/0";
    let realloc = find(&polled, dev, "disk_reallocated_sectors");
    assert_eq!(realloc.value, Some(387.0));
    assert_eq!(realloc.state, ReadingState::Warning);
    assert!(realloc.labels.contains_key("serial"), "{realloc:?}");
    assert_eq!(find(&polled, dev, "smart_read_errors").value, Some(0.0));
    assert_eq!(
        fake.read("argv").trim(),
        "--json=c --info --health --attributes --log=error --log=selftest \
         --nocheck=standby -d sat+megaraid,1 /dev/bus/0"
    );
}

#[tokio::test]
async fn a_hung_smartctl_is_killed_with_its_whole_process_group_at_the_timeout() {
    let fake = Fake::new();
    fake.set("hang", "");
    let mut config = fake.config(&["/dev/sda"]);
    config.timeout = Duration::from_millis(500);
    config.interval = Duration::from_secs(2);
    let mut source = SmartSource::new(config);
    let started = std::time::Instant::now();
    let polled = source.poll().await.unwrap();
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
    let passed = find(&polled, "sda", "disk_smart_passed");
    assert_eq!((passed.value, passed.state), (None, ReadingState::Unknown));
    assert_eq!(find(&polled, "sda", "smart_read_errors").value, Some(1.0));
    let child = fake.read("child.pid");
    assert!(!child.trim().is_empty(), "the fake started its child");
    assert!(
        wait_until_gone(child.trim()).await,
        "the fake's child {child} outlived the timeout"
    );
}

#[tokio::test]
async fn a_poll_cancelled_mid_run_kills_the_smartctl_process_group() {
    let fake = Fake::new();
    fake.set("hang", "");
    let mut source = SmartSource::new(fake.config(&["/dev/sda"]));
    let poll = tokio::time::timeout(Duration::from_millis(300), source.poll()).await;
    assert!(poll.is_err(), "the poll was cut short");
    // The fake may not have written its child's pid yet when the poll was
    // cancelled; wait for the file only as long as the fake could live.
    let mut child = String::new();
    for _ in 0..50 {
        child = fake.read("child.pid");
        if !child.trim().is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    if !child.trim().is_empty() {
        assert!(wait_until_gone(child.trim()).await, "{child} survived");
    }
    // Either way, the script itself is gone: no "end" line will ever come.
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(!fake.read("log").contains("end "), "{}", fake.read("log"));
}

#[tokio::test]
async fn garbage_output_is_counted_and_leaves_the_disk_unknown() {
    let fake = Fake::new();
    fake.set("stdout", "smartctl: Segmentation fault\n")
        .set("exit", "139");
    let mut source = SmartSource::new(fake.config(&["/dev/sda"]));
    for poll in 1..=2 {
        let polled = source.poll().await.unwrap();
        let verdict = find(&polled, "sda", "disk_verdict");
        assert_eq!(
            (verdict.value, verdict.state),
            (None, ReadingState::Unknown)
        );
        assert_eq!(
            find(&polled, "sda", "smart_read_errors").value,
            Some(f64::from(poll))
        );
        assert!(polled.events.is_empty());
    }
}

#[tokio::test]
async fn a_missing_smartctl_is_counted_per_disk_and_a_failed_scan_fails_the_poll() {
    let fake = Fake::new();
    let mut config = fake.config(&["/dev/sda"]);
    config.smartctl = fake.dir.path().join("no-such-smartctl");
    let polled = SmartSource::new(config.clone()).poll().await.unwrap();
    assert_eq!(find(&polled, "sda", "smart_read_errors").value, Some(1.0));
    config.devices.clear();
    let e = SmartSource::new(config).poll().await.unwrap_err();
    assert_eq!(e.kind(), "read");
}

fn overlap(log: &str) -> usize {
    let mut marks: Vec<(u128, i32)> = log
        .lines()
        .map(|l| {
            let parts: Vec<&str> = l.split_whitespace().collect();
            let delta = if parts[0] == "start" { 1 } else { -1 };
            (parts[2].parse().unwrap(), delta)
        })
        .collect();
    // An end and a start at the same instant: the end first.
    marks.sort();
    let (mut running, mut max) = (0i32, 0i32);
    for (_, delta) in marks {
        running += delta;
        max = max.max(running);
    }
    usize::try_from(max).unwrap()
}

#[tokio::test]
async fn no_more_than_max_concurrent_smartctl_runs_at_once() {
    let fake = Fake::new();
    fake.set("delay", "0.3")
        .set("stdout", fixture("sata_healthy.json"));
    let disks = ["/dev/sda", "/dev/sdb", "/dev/sdc", "/dev/sdd", "/dev/sde"];
    let mut config = fake.config(&disks);
    config.max_concurrent = 2;
    let polled = SmartSource::new(config).poll().await.unwrap();
    for disk in ["sda", "sdb", "sdc", "sdd", "sde"] {
        assert_eq!(
            find(&polled, disk, "disk_smart_passed").value,
            Some(1.0),
            "{disk}"
        );
    }
    let log = fake.read("log");
    assert_eq!(log.lines().count(), 10, "{log}");
    assert_eq!(overlap(&log), 2, "{log}");

    let serial = Fake::new();
    serial.set("delay", "0.1");
    SmartSource::new(serial.config(&disks[..3]))
        .poll()
        .await
        .unwrap();
    assert_eq!(
        overlap(&serial.read("log")),
        1,
        "the default is one at a time"
    );
}

#[tokio::test]
async fn a_disk_in_standby_is_skipped_counted_and_not_woken() {
    let fake = Fake::new();
    let standby = fs::read(format!("{PARSER_FIXTURES}/ata_standby_skipped.json")).unwrap();
    fake.set("stdout", fixture("sata_healthy.json"));
    let mut source = SmartSource::new(fake.config(&["/dev/sdb"]));
    source.poll().await.unwrap();
    fake.set("stdout", standby).set("exit", "2");
    for skips in 1..=2 {
        let polled = source.poll().await.unwrap();
        assert_eq!(
            find(&polled, "sdb", "smart_standby_skips").value,
            Some(f64::from(skips))
        );
        assert_eq!(find(&polled, "sdb", "disk_standby").value, Some(1.0));
        assert_eq!(find(&polled, "sdb", "smart_read_errors").value, Some(0.0));
        assert!(
            !polled
                .readings
                .iter()
                .any(|r| r.q == "disk_smart_passed" || r.q == "temperature_celsius"),
            "no stale health re-sent as fresh: {:#?}",
            polled.readings
        );
        assert!(polled.events.is_empty());
    }
    // smartctl was told, every time, to leave a sleeping disk alone.
    let argv = fake.read("argv");
    assert_eq!(argv.lines().count(), 3);
    assert!(
        argv.lines().all(|l| l.contains("--nocheck=standby")),
        "{argv}"
    );
}

#[tokio::test]
async fn nocheck_by_protocol_applies_once_the_protocol_is_known() {
    let fake = Fake::new();
    fake.set("stdout", fixture("nvme_healthy.json"));
    let mut config = fake.config(&[]);
    config.devices = vec![SmartDeviceConfig {
        path: "/dev/nvme0".into(),
        dev_type: None,
        nocheck: None,
    }];
    config.nocheck_by_protocol = [(
        sitewatch_agent::source::smart::config::DiskProtocol::Nvme,
        NoCheck::Never,
    )]
    .into();
    let mut source = SmartSource::new(config);
    source.poll().await.unwrap();
    source.poll().await.unwrap();
    let argv = fake.read("argv");
    let modes: Vec<&str> = argv
        .lines()
        .map(|l| {
            l.split_whitespace()
                .find(|a| a.starts_with("--nocheck="))
                .unwrap()
        })
        .collect();
    assert_eq!(modes, ["--nocheck=standby", "--nocheck=never"]);
}

/// The healthy disk with attribute 5 set to `count`.
fn with_reallocated(count: u64) -> Vec<u8> {
    let mut report: Value = serde_json::from_slice(&fixture("sata_healthy.json")).unwrap();
    let table = report["ata_smart_attributes"]["table"]
        .as_array_mut()
        .unwrap();
    let attribute = table.iter_mut().find(|a| a["id"] == 5).unwrap();
    attribute["raw"] = json!({"value": count, "string": count.to_string()});
    serde_json::to_vec(&report).unwrap()
}

#[tokio::test]
async fn reallocated_sectors_growing_between_polls_is_a_high_event() {
    let fake = Fake::new();
    fake.set("stdout", with_reallocated(8));
    let mut source = SmartSource::new(fake.config(&["/dev/sda"]));
    let first = source.poll().await.unwrap();
    assert_eq!(
        find(&first, "sda", "disk_reallocated_sectors").value,
        Some(8.0)
    );
    assert!(first.events.is_empty());
    fake.set("stdout", with_reallocated(9));
    let second = source.poll().await.unwrap();
    assert_eq!(second.events.len(), 1, "{:?}", second.events);
    let event = &second.events[0];
    assert_eq!(event.event_type, "disk_reallocated_sectors_grew");
    assert_eq!(event.severity, Severity::High);
    assert_eq!(event.message, "sda: reallocated sectors 8 -> 9");
    assert_eq!(event.src, "smart");
    assert_eq!(event.dev, "sda");
    assert_valid_on_the_wire(&second);
    let third = source.poll().await.unwrap();
    assert!(third.events.is_empty(), "no growth, no event");
}

#[tokio::test]
async fn discovered_disks_are_each_read_with_their_controller_address() {
    let fake = Fake::new();
    fake.set("scan.json", fixture("scan_megaraid_two_disks.json"))
        .set("stdout", fixture("sata_healthy.json"));
    let mut config = fake.config(&[]);
    config.exclude = vec!["megaraid,0@*".into()];
    let mut source = SmartSource::new(config);
    let polled = source.poll().await.unwrap();
    let names: Vec<&str> = source.devices().iter().map(|d| d.name.as_str()).collect();
    assert_eq!(names, ["megaraid,1@/dev/bus/0"]);
    assert!(
        polled
            .readings
            .iter()
            .all(|r| r.dev == "megaraid,1@/dev/bus/0")
    );
    let argv = fake.read("argv");
    let lines: Vec<&str> = argv.lines().collect();
    assert_eq!(lines[0], "--scan-open --json=c");
    assert!(lines[1].ends_with("-d megaraid,1 /dev/bus/0"), "{argv}");
    // The next poll within `rescan` does not scan again.
    source.poll().await.unwrap();
    assert_eq!(fake.read("argv").matches("--scan-open").count(), 1);
}

// -- the real smartctl --------------------------------------------------------

#[tokio::test]
async fn the_real_smartctl_is_run_on_whatever_this_machine_has() {
    let smartctl = Path::new("/usr/sbin/smartctl");
    assert!(
        smartctl.exists(),
        "smartmontools is a test dependency (scripts/install-test-deps.sh)"
    );
    let config = SmartSourceConfig {
        timeout: Duration::from_secs(20),
        ..SmartSourceConfig::default()
    };
    let mut source = SmartSource::new(config.clone());
    let polled = source.poll().await.unwrap();
    for device in source.devices() {
        let verdict = find(&polled, &device.name, "disk_verdict");
        let counted = find(&polled, &device.name, "smart_read_errors")
            .value
            .unwrap()
            + find(&polled, &device.name, "smart_standby_skips")
                .value
                .unwrap();
        // A disk without SMART (virtio) is unknown and counted; a real one has a verdict.
        assert!(
            verdict.value.is_some() || counted == 1.0,
            "{device:?}: {verdict:?}"
        );
    }
    // Every block device this machine has, named explicitly, whatever it is.
    let disks: Vec<String> = fs::read_dir("/sys/block")
        .map(|dir| {
            dir.filter_map(Result::ok)
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| {
                    !n.starts_with("loop") && !n.starts_with("ram") && !n.starts_with("zram")
                })
                .map(|n| format!("/dev/{n}"))
                .filter(|p| Path::new(p).exists())
                .collect()
        })
        .unwrap_or_default();
    let mut explicit = config;
    explicit.devices = disks
        .iter()
        .map(|p| SmartDeviceConfig {
            path: p.clone(),
            dev_type: None,
            nocheck: None,
        })
        .collect();
    let mut source = SmartSource::new(explicit);
    let polled = source.poll().await.unwrap();
    for device in source.devices() {
        let passed = find(&polled, &device.name, "disk_smart_passed");
        if passed.value.is_none() {
            assert_eq!(passed.state, ReadingState::Unknown);
        }
    }
    eprintln!(
        "real smartctl on {disks:?}: {:#?}",
        polled
            .readings
            .iter()
            .map(|r| format!("{} {} {:?} {}", r.dev, r.q, r.value, r.state.as_str()))
            .collect::<Vec<_>>()
    );
}
