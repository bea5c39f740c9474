use serde_json::{Value, json};
use sitewatch_protocol::{ReadingState, Severity};

use super::*;

/// A minimal ATA report with attributes 5 and 197 and a self-test log.
fn ata(reallocated: u64, pending: u64, self_tests: Value) -> Vec<u8> {
    let attribute = |id: u64, name: &str, raw: u64| {
        json!({"id": id, "name": name, "value": 100, "worst": 100, "thresh": 10,
               "when_failed": "", "flags": {"value": 51, "prefailure": true},
               "raw": {"value": raw, "string": raw.to_string()}})
    };
    json!({
        "json_format_version": [1, 0],
        "smartctl": {"version": [7, 3], "argv": ["smartctl"], "exit_status": 0},
        "device": {"name": "/dev/sda", "info_name": "/dev/sda [SAT]", "type": "sat", "protocol": "ATA"},
        "model_name": "EXAMPLE HDD", "serial_number": "S1",
        "smart_status": {"passed": true},
        "ata_smart_attributes": {"table": [
            attribute(5, "Reallocated_Sector_Ct", reallocated),
            attribute(197, "Current_Pending_Sector", pending),
        ]},
        "ata_smart_self_test_log": {"standard": {"table": self_tests}},
        "temperature": {"current": 31},
        "power_on_time": {"hours": 10}
    })
    .to_string()
    .into_bytes()
}

fn passed_short() -> Value {
    json!([{"type": {"value": 1, "string": "Short offline"},
            "status": {"value": 0, "string": "Completed without error", "passed": true},
            "lifetime_hours": 9}])
}

fn failed_short_then_passed() -> Value {
    json!([{"type": {"value": 1, "string": "Short offline"},
            "status": {"value": 121, "string": "Completed: read failure", "passed": false},
            "lifetime_hours": 10},
           {"type": {"value": 1, "string": "Short offline"},
            "status": {"value": 0, "string": "Completed without error", "passed": true},
            "lifetime_hours": 9}])
}

fn report(stdout: &[u8]) -> RunResult {
    RunResult::from_output(stdout, Some(0))
}

fn value(polled: &Polled, q: &str) -> Option<f64> {
    polled
        .readings
        .iter()
        .find(|r| r.q == q)
        .unwrap_or_else(|| panic!("no {q} in {:?}", polled.readings))
        .value
}

#[test]
fn disk_names_strip_dev_and_keep_the_controller_address() {
    assert_eq!(device_name("/dev/sda", None), "sda");
    assert_eq!(device_name("/dev/sda", Some("sat")), "sda");
    assert_eq!(device_name("/dev/nvme0", Some("nvme")), "nvme0");
    assert_eq!(
        device_name("/dev/bus/0", Some("megaraid,1")),
        "megaraid,1@/dev/bus/0"
    );
    assert_eq!(
        device_name("/dev/bus/0", Some("sat+megaraid,1")),
        "megaraid,1@/dev/bus/0",
        "the tunnel does not change the disk's name"
    );
    assert_eq!(device_name("/dev/disk/by-id/x", None), "disk/by-id/x");
}

#[test]
fn glob_patterns_match_stars_and_question_marks() {
    assert!(glob_match("sd*", "sda"));
    assert!(glob_match("nvme?", "nvme0"));
    assert!(!glob_match("nvme?", "nvme10"));
    assert!(glob_match(
        "megaraid,*@/dev/bus/0",
        "megaraid,12@/dev/bus/0"
    ));
    assert!(glob_match("*", ""));
    assert!(glob_match("*a*b", "xxaxxb"));
    assert!(!glob_match("sda", "sdab"));
}

#[test]
fn include_and_exclude_filter_by_name_or_path_and_exclude_wins() {
    let config = SmartSourceConfig {
        include: vec!["sd*".into(), "/dev/nvme*".into()],
        exclude: vec!["sdb".into()],
        ..SmartSourceConfig::default()
    };
    let devices = ["/dev/sda", "/dev/sdb", "/dev/nvme0", "/dev/vda", "/dev/sda"]
        .iter()
        .map(|p| Device::new(p, None))
        .collect();
    let names: Vec<String> = filter_devices(&config, devices)
        .into_iter()
        .map(|d| d.name)
        .collect();
    assert_eq!(names, vec!["sda", "nvme0"]);
}

#[test]
fn disk_arguments_carry_nocheck_type_and_path() {
    let d = Device::new("/dev/bus/0", Some("megaraid,1"));
    assert_eq!(
        d.args(NoCheck::Standby)[REPORT_ARGS.len()..],
        ["--nocheck=standby", "-d", "megaraid,1", "/dev/bus/0"]
    );
}

#[test]
fn nocheck_comes_from_the_device_then_its_protocol_then_the_default() {
    let config = SmartSourceConfig {
        devices: vec![
            super::config::SmartDeviceConfig {
                path: "/dev/nvme0".into(),
                dev_type: Some("nvme".into()),
                nocheck: None,
            },
            super::config::SmartDeviceConfig {
                path: "/dev/sda".into(),
                dev_type: Some("sat".into()),
                nocheck: Some(NoCheck::Idle),
            },
            super::config::SmartDeviceConfig {
                path: "/dev/sdb".into(),
                dev_type: None,
                nocheck: None,
            },
        ],
        nocheck_by_protocol: [(DiskProtocol::Nvme, NoCheck::Never)].into(),
        ..SmartSourceConfig::default()
    };
    let source = SmartSource::new(config);
    let modes: Vec<NoCheck> = source
        .devices()
        .iter()
        .map(|d| source.nocheck_of(d))
        .collect();
    assert_eq!(modes, [NoCheck::Never, NoCheck::Idle, NoCheck::Standby]);
}

#[test]
fn a_scan_without_a_devices_list_is_empty_and_megaraid_disks_are_apart() {
    let none = br#"{"json_format_version":[1,0],"smartctl":{"version":[7,3],"exit_status":0}}"#;
    assert_eq!(scanned_devices(none).unwrap(), vec![]);
    assert!(scanned_devices(b"garbage").is_err());
    let two = json!({"json_format_version": [1, 0], "smartctl": {"exit_status": 0}, "devices": [
        {"name": "/dev/bus/0", "type": "megaraid,0", "protocol": "SCSI"},
        {"name": "/dev/bus/0", "type": "megaraid,1", "protocol": "SCSI"},
    ]})
    .to_string();
    let devices = scanned_devices(two.as_bytes()).unwrap();
    assert_eq!(devices[0].name, "megaraid,0@/dev/bus/0");
    assert_eq!(devices[1].name, "megaraid,1@/dev/bus/0");
    assert_eq!(devices[1].protocol, Some(DiskProtocol::Scsi));
}

#[test]
fn garbage_output_is_a_failed_run_not_a_panic() {
    for (stdout, kind) in [
        (&b""[..], "not_json"),
        (b"Segmentation fault", "not_json"),
        (b"[1,2]", "not_object"),
        (b"{\"a\":1}", "no_smartctl_section"),
    ] {
        match RunResult::from_output(stdout, Some(139)) {
            RunResult::Failed { kind: k, .. } => assert_eq!(k, kind),
            other => panic!("{other:?}"),
        }
    }
}

#[test]
fn a_standby_message_is_a_skip_whatever_the_exit_code() {
    let out = json!({"json_format_version": [1, 0],
        "smartctl": {"exit_status": 2, "messages": [
            {"string": "Device is in STANDBY mode, exit(2)", "severity": "information"}]}})
    .to_string();
    assert_eq!(
        RunResult::from_output(out.as_bytes(), Some(2)),
        RunResult::Standby {
            mode: "STANDBY".into()
        }
    );
}

#[test]
fn the_process_exit_code_fills_in_a_missing_json_status() {
    let out = json!({"json_format_version": [1, 0], "smartctl": {},
        "device": {"name": "/dev/sda", "protocol": "ATA"},
        "smart_status": {"passed": false}})
    .to_string();
    let RunResult::Report(r) = RunResult::from_output(out.as_bytes(), Some(8)) else {
        panic!("a report");
    };
    assert!(r.exit_status().disk_failing());
}

#[test]
fn reallocated_growth_between_polls_is_a_high_event_naming_both_counts() {
    let mut t = Tracker::default();
    let first = t.observe("sda", &report(&ata(8, 0, passed_short())));
    assert!(first.events.is_empty(), "nothing to compare with yet");
    assert_eq!(value(&first, "disk_reallocated_sectors"), Some(8.0));
    let same = t.observe("sda", &report(&ata(8, 0, passed_short())));
    assert!(same.events.is_empty());
    let grown = t.observe("sda", &report(&ata(9, 2, passed_short())));
    let kinds: Vec<(&str, &str)> = grown
        .events
        .iter()
        .map(|e| (e.event_type.as_str(), e.message.as_str()))
        .collect();
    assert_eq!(
        kinds,
        [
            (
                "disk_reallocated_sectors_grew",
                "sda: reallocated sectors 8 -> 9"
            ),
            ("disk_pending_sectors_grew", "sda: pending sectors 0 -> 2"),
        ]
    );
    assert!(grown.events.iter().all(|e| e.severity == Severity::High));
    assert_eq!(grown.events[0].labels["serial"], "S1");
}

#[test]
fn growth_is_measured_across_failed_and_sleeping_polls() {
    let mut t = Tracker::default();
    t.observe("sda", &report(&ata(8, 0, passed_short())));
    t.observe(
        "sda",
        &RunResult::Failed {
            kind: "timeout",
            message: "x".into(),
        },
    );
    t.observe(
        "sda",
        &RunResult::Standby {
            mode: "STANDBY".into(),
        },
    );
    let grown = t.observe("sda", &report(&ata(9, 0, passed_short())));
    assert_eq!(grown.events.len(), 1, "{:?}", grown.events);
}

#[test]
fn a_newly_failed_self_test_is_an_event_once() {
    let mut t = Tracker::default();
    t.observe("sda", &report(&ata(0, 0, passed_short())));
    let failed = t.observe("sda", &report(&ata(0, 0, failed_short_then_passed())));
    assert_eq!(failed.events.len(), 1);
    assert_eq!(failed.events[0].event_type, "disk_self_test_failed");
    assert_eq!(
        failed.events[0].message,
        "sda: self-test failed: Short offline: Completed: read failure at 10 h"
    );
    assert_eq!(
        failed
            .readings
            .iter()
            .find(|r| r.q == "disk_smart_passed")
            .unwrap()
            .state,
        ReadingState::Critical
    );
    let again = t.observe("sda", &report(&ata(0, 0, failed_short_then_passed())));
    assert!(again.events.is_empty());
}

#[test]
fn an_old_self_test_failure_after_a_restart_raises_no_event() {
    let mut t = Tracker::default();
    let first = t.observe("sda", &report(&ata(0, 0, failed_short_then_passed())));
    assert!(first.events.is_empty());
}

#[test]
fn a_sleeping_disk_is_counted_and_its_health_not_resent() {
    let mut t = Tracker::default();
    t.observe("sda", &report(&ata(1, 0, passed_short())));
    let asleep = t.observe(
        "sda",
        &RunResult::Standby {
            mode: "STANDBY".into(),
        },
    );
    let qs: Vec<&str> = asleep.readings.iter().map(|r| r.q.as_str()).collect();
    assert_eq!(
        qs,
        ["disk_standby", "smart_standby_skips", "smart_read_errors"]
    );
    assert_eq!(value(&asleep, "disk_standby"), Some(1.0));
    assert_eq!(value(&asleep, "smart_standby_skips"), Some(1.0));
    assert_eq!(asleep.readings[0].labels["serial"], "S1", "series kept");
}

#[test]
fn an_unreadable_disk_is_unknown_and_counted() {
    let mut t = Tracker::default();
    let failed = RunResult::Failed {
        kind: "not_json",
        message: "x".into(),
    };
    t.observe("sda", &failed);
    let polled = t.observe("sda", &failed);
    let passed = polled
        .readings
        .iter()
        .find(|r| r.q == "disk_smart_passed")
        .unwrap();
    assert_eq!((passed.value, passed.state), (None, ReadingState::Unknown));
    assert_eq!(value(&polled, "smart_read_errors"), Some(2.0));
}

#[test]
fn smart_status_turning_failed_is_a_critical_event() {
    let mut t = Tracker::default();
    t.observe("sda", &report(&ata(0, 0, passed_short())));
    let failing = String::from_utf8(ata(0, 0, passed_short()))
        .unwrap()
        .replace(r#""passed":true}"#, r#""passed":false}"#);
    let polled = t.observe("sda", &report(failing.as_bytes()));
    assert_eq!(
        polled
            .events
            .iter()
            .map(|e| (e.event_type.as_str(), e.severity))
            .collect::<Vec<_>>(),
        [("disk_smart_failed", Severity::Critical)]
    );
}
