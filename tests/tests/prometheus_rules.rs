//! The PromQL mirror of the signals engine and the Alertmanager example, checked
//! by the real tools: `promtool check rules`, `promtool test rules` (one test
//! file per cause) and `amtool check-config`.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code

use std::{path::PathBuf, process::Command};

fn packaging() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../packaging")
}

fn run(tool: &str, args: &[&str]) {
    let out = Command::new(tool)
        .args(args)
        .current_dir(packaging())
        .output()
        .unwrap_or_else(|e| panic!("{tool} is required (scripts/install-test-deps.sh): {e}"));
    assert!(
        out.status.success(),
        "{tool} {args:?} failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn sitewatch_rules_pass_promtool_check_rules() {
    run(
        "promtool",
        &["check", "rules", "prometheus/sitewatch-rules.yml"],
    );
}

fn rule_test(cause: &str) {
    run(
        "promtool",
        &["test", "rules", &format!("prometheus/tests/{cause}.yml")],
    );
}

#[test]
fn power_rules_pass_their_promtool_tests() {
    rule_test("power");
}

#[test]
fn cooling_rules_pass_their_promtool_tests() {
    rule_test("cooling");
}

#[test]
fn network_rules_pass_their_promtool_tests() {
    rule_test("network");
}

#[test]
fn host_hardware_rules_pass_their_promtool_tests() {
    rule_test("host_hardware");
}

#[test]
fn storage_rules_pass_their_promtool_tests() {
    rule_test("storage");
}

#[test]
fn network_device_rules_pass_their_promtool_tests() {
    rule_test("network_device");
}

#[test]
fn power_feed_rules_pass_their_promtool_tests() {
    rule_test("power_feed");
}

#[test]
fn host_resources_rules_pass_their_promtool_tests() {
    rule_test("host_resources");
}

#[test]
fn region_rules_pass_their_promtool_tests() {
    rule_test("region");
}

#[test]
fn collector_rules_pass_their_promtool_tests() {
    rule_test("collectors");
}

#[test]
fn every_rule_test_file_has_a_test_here() {
    let mut files: Vec<String> = std::fs::read_dir(packaging().join("prometheus/tests"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    files.sort();
    let named = [
        "collectors.yml",
        "cooling.yml",
        "host_hardware.yml",
        "host_resources.yml",
        "network.yml",
        "network_device.yml",
        "power.yml",
        "power_feed.yml",
        "region.yml",
        "storage.yml",
    ];
    assert_eq!(files, named, "add a test above for each new rule test file");
}

#[test]
fn alertmanager_example_passes_amtool_check_config() {
    run("amtool", &["check-config", "alertmanager/alertmanager.yml"]);
}
