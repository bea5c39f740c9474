//! `modbus`: see `sitewatch_fuzz_targets::modbus` (fuzz-targets/src/modbus.rs).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| sitewatch_fuzz_targets::modbus::run(data));
