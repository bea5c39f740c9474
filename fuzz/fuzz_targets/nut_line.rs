//! `nut_line`: see `sitewatch_fuzz_targets::nut_line` (fuzz-targets/src/nut_line.rs).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| sitewatch_fuzz_targets::nut_line::run(data));
