//! Edge cases from the hand-written fixtures in `tests/fixtures/` (see its README).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code

use smartctl_parser::{
    ExitBit, ParseError, Protocol, Reason, Report, ScsiOperation, Verdict, parse_report, parse_scan,
};

fn fixture(name: &str) -> String {
    let path = format!("{}/tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn report(name: &str) -> Report {
    parse_report(&fixture(name)).unwrap_or_else(|e| panic!("{name}: {e}"))
}

#[test]
fn smartctl6_output_without_when_failed_or_prefailure_is_judged_from_thresholds() {
    let r = report("ata_smartctl6_minimal.json");
    assert_eq!(r.format_version.map(|v| (v.major, v.minor)), Some((0, 1)));
    assert_eq!(r.protocol(), Some(&Protocol::Ata));
    let ata = r.ata.as_ref().expect("ata section");
    let realloc = ata.attribute(5).expect("attribute 5");
    assert!(realloc.prefailure, "flags value 51 has bit 0 set");
    assert!(realloc.failing_now());
    assert_eq!(ata.reallocated_sectors(), Some(3320));
    assert_eq!(
        ata.pending_sectors(),
        Some(2),
        "smartctl's leading number, not the packed raw"
    );
    assert_eq!(
        r.exit_status().iter().collect::<Vec<_>>(),
        vec![ExitBit::DiskFailing, ExitBit::PrefailBelowThreshold]
    );
    assert_eq!(
        r.verdict(),
        Verdict::Failing(vec![
            Reason::SmartStatusFailed,
            Reason::PrefailAttributeAtThreshold {
                id: 5,
                name: "Reallocated_Sector_Ct".into()
            },
            Reason::AttributeFailedInPast {
                id: 190,
                name: "Airflow_Temperature_Cel".into()
            },
            Reason::ReallocatedSectors(3320),
            Reason::PendingSectors(2),
        ])
    );
}

#[test]
fn scsi_counters_given_as_strings_and_key_s_mirrors_are_read_exactly() {
    let r = report("scsi_string_counters.json");
    let scsi = r.scsi.as_ref().expect("scsi section");
    assert_eq!(scsi.grown_defect_list, Some(12));
    assert_eq!(scsi.uncorrected(ScsiOperation::Read), Some(u64::MAX));
    assert_eq!(scsi.uncorrected(ScsiOperation::Write), Some(3));
    assert_eq!(scsi.uncorrected(ScsiOperation::Verify), Some(7));
    assert_eq!(
        scsi.uncorrected_total(),
        Some(u64::MAX),
        "saturates, never overflows"
    );
    let read = scsi.read_errors.as_ref().expect("read page");
    assert_eq!(
        read.total_errors_corrected,
        Some(9_007_199_254_740_993),
        "beyond 2^53, exact"
    );
    assert_eq!(read.gigabytes_processed, Some(123.456));
    assert_eq!(r.identity.model.as_deref(), Some("EXAMPLE SAS9000"));
    assert_eq!(r.identity.firmware.as_deref(), Some("R001"));
    assert_eq!(r.verdict().kind(), "warning");
}

#[test]
fn unknown_fields_wrong_types_and_out_of_range_numbers_become_none() {
    let r = report("nvme_unknown_fields.json");
    assert_eq!(r.smartctl.exit_status, None, "999 is not an exit status");
    assert_eq!(
        r.smartctl.messages.len(),
        1,
        "the message without a string is dropped"
    );
    assert_eq!(r.protocol(), Some(&Protocol::Other("FUTUREBUS".into())));
    assert_eq!(r.identity.model.as_deref(), Some("12345"));
    assert_eq!(r.identity.wwn, None);
    assert_eq!(r.identity.rotation_rate_rpm, None);
    assert_eq!(r.temperature.current, None);
    assert_eq!(r.power_on_time.hours, None);
    assert_eq!(r.power_cycle_count, None);
    assert_eq!(r.smart_passed, None);
    let nvme = r.nvme.as_ref().expect("nvme section");
    assert_eq!(
        nvme.critical_warning, None,
        "300 does not fit the warning byte"
    );
    assert_eq!(nvme.temperature, Some(310));
    assert_eq!(nvme.available_spare, None);
    assert_eq!(nvme.percentage_used, Some(12));
    assert_eq!(nvme.media_errors, None);
    assert_eq!(nvme.num_err_log_entries, None);
    assert_eq!(nvme.temperature_sensors, vec![40, 41]);
    assert_eq!(r.nvme_self_test_log, None);
    assert_eq!(
        r.temperature_celsius(),
        Some(310),
        "falls back to the health log"
    );
    assert_eq!(r.verdict(), Verdict::Passed);
}

#[test]
fn standby_skipped_output_parses_and_reports_low_power_mode() {
    let r = report("ata_standby_skipped.json");
    assert!(r.in_low_power_mode());
    assert_eq!(r.low_power_mode(), Some("STANDBY"));
    assert!(
        r.exit_status().device_open_failed(),
        "smartctl uses bit 1 for the skip"
    );
    assert!(
        !r.device_open_failed(),
        "but the device did not fail to open"
    );
    assert!(!r.has_health_data());
    assert_eq!(
        r.device.as_ref().and_then(|d| d.name.as_deref()),
        Some("/dev/sdb")
    );
    assert_eq!(
        r.verdict(),
        Verdict::Unknown(vec![Reason::LowPowerMode("STANDBY".into())])
    );
}

#[test]
fn nvme_failed_extended_self_test_is_failing_and_wear_over_100_warns() {
    let r = report("nvme_selftest_failed_worn.json");
    let log = r.nvme_self_test_log.as_ref().expect("self-test log");
    assert!(!log.in_progress());
    assert!(log.latest().is_some_and(|e| e.passed()));
    assert_eq!(r.power_on_hours(), Some(40000));
    assert_eq!(r.power_cycles(), Some(50));
    assert_eq!(
        r.verdict(),
        Verdict::Failing(vec![
            Reason::SelfTestFailed {
                test: "Extended".into(),
                status: "Completed: failed segments".into(),
            },
            Reason::PercentageUsedExceeded(104),
        ])
    );
}

#[test]
fn scan_open_keeps_open_errors_and_drops_nameless_entries() {
    let devices = parse_scan(&fixture("scan_open_with_error.json")).expect("scan");
    let names: Vec<&str> = devices.iter().map(|d| d.name()).collect();
    assert_eq!(names, vec!["/dev/sda", "/dev/sdb", "/dev/nvme0"]);
    assert_eq!(devices[1].open_error.as_deref(), Some("INQUIRY failed"));
    assert_eq!(devices[2].protocol, Some(Protocol::Nvme));
    assert_eq!(
        devices[0].smartctl_device_args(),
        vec!["-d", "sat", "/dev/sda"]
    );
}

#[test]
fn truncated_json_is_a_not_json_error() {
    let err = parse_report(&fixture("truncated.json")).unwrap_err();
    assert!(matches!(err, ParseError::NotJson(_)), "{err:?}");
    assert_eq!(err.kind(), "not_json");
}

#[test]
fn text_output_without_json_flag_is_a_not_json_error() {
    let err = parse_report(&fixture("text_output.txt")).unwrap_err();
    assert_eq!(err.kind(), "not_json");
}

#[test]
fn json_without_smartctl_section_is_rejected() {
    let err = parse_report(&fixture("not_smartctl.json")).unwrap_err();
    assert!(matches!(err, ParseError::NoSmartctlSection));
    let err = parse_scan(&fixture("not_smartctl.json")).unwrap_err();
    assert!(matches!(err, ParseError::NoSmartctlSection));
}

#[test]
fn future_format_version_is_rejected() {
    let err = parse_report(&fixture("format_version_2.json")).unwrap_err();
    assert!(matches!(
        err,
        ParseError::UnsupportedFormatVersion { major: 2, minor: 0 }
    ));
}

#[test]
fn device_report_given_to_parse_scan_is_rejected() {
    let err = parse_scan(&fixture("ata_standby_skipped.json")).unwrap_err();
    assert!(matches!(err, ParseError::NoDevicesSection));
}

#[test]
fn non_object_and_empty_inputs_are_errors_not_panics() {
    assert_eq!(parse_report("[1, 2]").unwrap_err().kind(), "not_object");
    assert_eq!(parse_report("").unwrap_err().kind(), "not_json");
    assert_eq!(
        parse_report(r#"{"smartctl": 5}"#).unwrap_err().kind(),
        "no_smartctl_section"
    );
}
