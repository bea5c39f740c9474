//! `wire_decode`: see `sitewatch_fuzz_targets::wire_decode` (fuzz-targets/src/wire_decode.rs).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| sitewatch_fuzz_targets::wire_decode::run(data));
