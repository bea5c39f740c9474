//! `profiles_toml`: see `sitewatch_fuzz_targets::profiles_toml` (fuzz-targets/src/profiles_toml.rs).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| sitewatch_fuzz_targets::profiles_toml::run(data));
