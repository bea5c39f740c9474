//! Walks every real `smartctl --json` capture in `shared/testdata/smartctl/`,
//! parses it and compares a compact summary with the hand-written
//! `tests/expected/<capture name without .json>.expected.json`.
//!
//! A regression test is a new capture plus a new expected file, not new code.
//! Captures are never copied into this crate; without `../shared/testdata` the
//! capture tests print SKIPPED (and fail under `SITEWATCH_REQUIRE_SHARED=1`).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code: failing loudly is the point

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};

use serde_json::{Value, json};
use smartctl_parser::{Report, ScannedDevice, parse_report, parse_scan};

const EXPECTED: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/expected");
const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures");

/// The shared captures' folder, `None` when absent (the test is skipped).
fn captures() -> Option<PathBuf> {
    sitewatch_shared_testdata::dir("smartctl", "smartctl captures")
}

fn json_files(dir: &Path, suffix: &str) -> Vec<PathBuf> {
    let entries = fs::read_dir(dir).unwrap_or_else(|e| {
        panic!(
            "test data folder {} is missing or unreadable ({e})",
            dir.display()
        )
    });
    let mut files: Vec<PathBuf> = entries
        .map(|e| e.expect("directory entry").path())
        .filter(|p| p.to_string_lossy().ends_with(suffix))
        .collect();
    files.sort();
    files
}

fn file_name(p: &Path) -> String {
    p.file_name()
        .expect("file name")
        .to_string_lossy()
        .into_owned()
}

fn summarize_report(r: &Report) -> Value {
    let ata = r.ata.as_ref().map(|a| {
        let failed: Vec<String> = a
            .attributes
            .iter()
            .filter(|x| x.when_failed != smartctl_parser::WhenFailed::Never)
            .map(|x| format!("{} {} {:?}", x.id, x.name, x.when_failed))
            .collect();
        let self_test = a.self_test_log.as_ref().map(|log| {
            let describe = |e: &smartctl_parser::AtaSelfTestEntry| {
                format!(
                    "{}: {}",
                    e.test_type().unwrap_or("?"),
                    e.status.string.as_deref().unwrap_or("?")
                )
            };
            json!({
                "entries": log.entries.len(),
                "latest": log.latest().map(describe),
                "unresolved_failure": log.unresolved_failure().map(describe),
            })
        });
        json!({
            "attributes": a.attributes.len(),
            "reallocated_sectors": a.reallocated_sectors(),
            "pending_sectors": a.pending_sectors(),
            "offline_uncorrectable": a.offline_uncorrectable(),
            "reported_uncorrectable": a.reported_uncorrectable(),
            "udma_crc_errors": a.udma_crc_errors(),
            "error_log_count": a.error_log_count,
            "failed_attributes": failed,
            "self_test": self_test,
        })
    });
    let nvme = r.nvme.as_ref().map(|n| {
        json!({
            "critical_warning": n.critical_warning.map(|w| w.names()),
            "available_spare": n.available_spare,
            "available_spare_threshold": n.available_spare_threshold,
            "percentage_used": n.percentage_used,
            "media_errors": n.media_errors,
            "num_err_log_entries": n.num_err_log_entries,
            "unsafe_shutdowns": n.unsafe_shutdowns,
        })
    });
    let scsi = r.scsi.as_ref().map(|s| {
        use smartctl_parser::ScsiOperation::{Read, Verify, Write};
        json!({
            "grown_defects": s.grown_defect_list,
            "uncorrected_read": s.uncorrected(Read),
            "uncorrected_write": s.uncorrected(Write),
            "uncorrected_verify": s.uncorrected(Verify),
            "start_stop_cycles": r.start_stop_cycles(),
            "percentage_used": s.percentage_used,
        })
    });
    let device = r.device.as_ref();
    let verdict = r.verdict();
    json!({
        "kind": "report",
        "format_version": r.format_version.map(|v| format!("{}.{}", v.major, v.minor)),
        "smartctl_version": r.smartctl.version.map(|v| format!("{}.{}", v.major, v.minor)),
        "exit_status": r.smartctl.exit_status.map(|s| s.bits()),
        "exit_bits": r.exit_status().iter().map(|b| b.name()).collect::<Vec<_>>(),
        "messages": r.smartctl.messages.iter()
            .map(|m| format!("{:?}: {}", m.severity, m.string)).collect::<Vec<_>>(),
        "low_power_mode": r.low_power_mode(),
        "device_open_failed": r.device_open_failed(),
        "protocol": r.protocol().map(|p| p.as_str().to_owned()),
        "device_name": device.and_then(|d| d.name.clone()),
        "device_type": device.and_then(|d| d.dev_type.clone()),
        "raid_passthrough": device.and_then(|d| d.raid_passthrough())
            .map(|p| format!("{} {}", p.controller, p.target)),
        "model": r.identity.model,
        "serial": r.identity.serial,
        "wwn": r.identity.wwn,
        "firmware": r.identity.firmware,
        "capacity_bytes": r.identity.capacity_bytes,
        "rotation_rate_rpm": r.identity.rotation_rate_rpm,
        "form_factor": r.identity.form_factor,
        "smart_passed": r.smart_passed,
        "temperature_celsius": r.temperature_celsius(),
        "power_on_hours": r.power_on_hours(),
        "power_cycles": r.power_cycles(),
        "ata": ata,
        "nvme": nvme,
        "scsi": scsi,
        "verdict": verdict.kind(),
        "reasons": verdict.reasons().iter().map(|x| format!("{x:?}")).collect::<Vec<_>>(),
    })
}

fn summarize_scan(devices: &[ScannedDevice]) -> Value {
    let devices: Vec<Value> = devices
        .iter()
        .map(|d| {
            json!({
                "name": d.name(),
                "info_name": d.info_name,
                "type": d.dev_type,
                "protocol": d.protocol.as_ref().map(|p| p.as_str().to_owned()),
                "open_error": d.open_error,
                "raid_passthrough": d.raid_passthrough().map(|p| format!("{} {}", p.controller, p.target)),
                "args": d.smartctl_device_args(),
            })
        })
        .collect();
    json!({"kind": "scan", "devices": devices})
}

#[test]
fn every_capture_matches_its_expected_summary() {
    let Some(dir) = captures() else { return };
    let captures = json_files(&dir, ".json");
    assert!(
        captures.len() >= 20,
        "expected the shared smartctl captures in {}, found {}",
        dir.display(),
        captures.len()
    );

    let mut failures = Vec::new();
    for capture in &captures {
        let name = file_name(capture);
        let stem = name.trim_end_matches(".json");
        let expected_path = Path::new(EXPECTED).join(format!("{stem}.expected.json"));
        let Ok(expected_text) = fs::read_to_string(&expected_path) else {
            failures.push(format!(
                "{name}: no expected file {}",
                expected_path.display()
            ));
            continue;
        };
        let expected: Value = serde_json::from_str(&expected_text)
            .unwrap_or_else(|e| panic!("{}: invalid JSON: {e}", expected_path.display()));
        let text = fs::read_to_string(capture).expect("read capture");
        let actual = match expected["kind"].as_str() {
            Some("scan") => parse_scan(&text).map(|d| summarize_scan(&d)),
            _ => parse_report(&text).map(|r| summarize_report(&r)),
        };
        match actual {
            Ok(actual) if actual == expected => {}
            Ok(actual) => failures.push(format!(
                "{name}: summary differs\n--- expected\n{}\n--- actual\n{}",
                serde_json::to_string_pretty(&expected).unwrap_or_default(),
                serde_json::to_string_pretty(&actual).unwrap_or_default(),
            )),
            Err(e) => failures.push(format!("{name}: parse error: {e}")),
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

#[test]
fn every_expected_file_has_a_capture() {
    let Some(dir) = captures() else { return };
    let captures: BTreeSet<String> = json_files(&dir, ".json")
        .iter()
        .map(|p| file_name(p))
        .collect();
    let orphans: Vec<String> = json_files(Path::new(EXPECTED), ".expected.json")
        .iter()
        .map(|p| file_name(p))
        .filter(|n| !captures.contains(&n.replace(".expected.json", ".json")))
        .collect();
    assert!(
        orphans.is_empty(),
        "expected files without a capture: {orphans:?}"
    );
}

/// Replaces every scalar in the tree with `with(scalar)`.
fn mutate(v: &mut Value, with: &dyn Fn(&Value) -> Value) {
    match v {
        Value::Object(map) => map.values_mut().for_each(|c| mutate(c, with)),
        Value::Array(items) => items.iter_mut().for_each(|c| mutate(c, with)),
        scalar => *scalar = with(scalar),
    }
}

/// The hand-written JSON fixtures (always here), and the shared captures when present.
fn every_json_output() -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = json_files(Path::new(FIXTURES), ".json")
        .into_iter()
        .filter(|p| {
            fs::read_to_string(p)
                .ok()
                .and_then(|t| serde_json::from_str::<Value>(&t).ok())
                .is_some_and(|v| v.get("smartctl").is_some())
        })
        .collect();
    if let Some(dir) = captures() {
        files.extend(json_files(&dir, ".json"));
    }
    files
}

#[test]
fn mangled_and_truncated_outputs_never_panic() {
    let mutations: [&dyn Fn(&Value) -> Value; 5] = [
        &|_| Value::Null,
        &|v| Value::String(v.to_string()),
        &|v| if v.is_number() { json!(-1) } else { v.clone() },
        &|v| {
            if v.is_number() {
                json!(1e300)
            } else {
                v.clone()
            }
        },
        &|v| {
            if v.is_number() {
                json!({"value": v})
            } else {
                json!([v])
            }
        },
    ];
    for capture in every_json_output() {
        let text = fs::read_to_string(&capture).expect("read capture");
        for cut in (0..text.len()).step_by(97) {
            if let Some(prefix) = text.get(..cut) {
                let _ = parse_report(prefix).map(|r| r.verdict());
            }
        }
        let original: Value = serde_json::from_str(&text).expect("capture is JSON");
        for mutation in &mutations {
            let mut v = original.clone();
            // Keep the envelope so the mangled body is actually parsed.
            mutate(&mut v, mutation);
            v["smartctl"] = original["smartctl"].clone();
            v["json_format_version"] = json!([1, 0]);
            let mangled = v.to_string();
            let report = parse_report(&mangled)
                .unwrap_or_else(|e| panic!("{}: mangled body rejected: {e}", file_name(&capture)));
            let _ = report.verdict().to_string();
            let _ = parse_scan(&mangled);
        }
    }
}
