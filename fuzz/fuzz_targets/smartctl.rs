//! `smartctl`: see `sitewatch_fuzz_targets::smartctl` (fuzz-targets/src/smartctl.rs).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| sitewatch_fuzz_targets::smartctl::run(data));
