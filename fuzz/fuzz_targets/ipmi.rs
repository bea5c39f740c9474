//! `ipmi`: see `sitewatch_fuzz_targets::ipmi` (fuzz-targets/src/ipmi.rs).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| sitewatch_fuzz_targets::ipmi::run(data));
