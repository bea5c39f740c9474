//! `config_collector`: see `sitewatch_fuzz_targets::config_collector` (fuzz-targets/src/config_collector.rs).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| sitewatch_fuzz_targets::config_collector::run(data));
