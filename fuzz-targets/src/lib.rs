//! What each fuzz target runs on one input. The libFuzzer binaries in
//! `fuzz/fuzz_targets/` are one line each around these functions, so that
//! `cargo test` (tests/corpus.rs) replays the committed corpus through the
//! very same code without building libFuzzer. See FUZZING.md.
//!
//! A target returns normally on any input: a panic (including an arithmetic
//! overflow, since the fuzz build keeps overflow checks) is a finding.

pub mod config_agent;
pub mod config_collector;
pub mod ipmi;
pub mod modbus;
pub mod mqtt_codec;
pub mod nut_line;
pub mod profiles_toml;
pub mod redfish;
pub mod replay_line;
pub mod replay_run;
pub mod smartctl;
pub mod snmp;
pub mod wire_decode;

/// What a target runs on one input.
pub type Target = fn(&[u8]);

/// Every target by name, as `fuzz/corpus/<name>/` and the fuzz binaries name them.
pub const TARGETS: &[(&str, Target)] = &[
    ("config_agent", config_agent::run),
    ("config_collector", config_collector::run),
    ("ipmi", ipmi::run),
    ("modbus", modbus::run),
    ("mqtt_codec", mqtt_codec::run),
    ("nut_line", nut_line::run),
    ("profiles_toml", profiles_toml::run),
    ("redfish", redfish::run),
    ("replay_line", replay_line::run),
    ("replay_run", replay_run::run),
    ("smartctl", smartctl::run),
    ("snmp", snmp::run),
    ("wire_decode", wire_decode::run),
];
