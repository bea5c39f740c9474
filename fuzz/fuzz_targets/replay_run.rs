//! `replay_run`: see `sitewatch_fuzz_targets::replay_run` (fuzz-targets/src/replay_run.rs).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| sitewatch_fuzz_targets::replay_run::run(data));
