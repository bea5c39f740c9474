//! `replay_line`: see `sitewatch_fuzz_targets::replay_line` (fuzz-targets/src/replay_line.rs).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| sitewatch_fuzz_targets::replay_line::run(data));
