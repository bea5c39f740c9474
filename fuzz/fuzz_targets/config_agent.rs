//! `config_agent`: see `sitewatch_fuzz_targets::config_agent` (fuzz-targets/src/config_agent.rs).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| sitewatch_fuzz_targets::config_agent::run(data));
