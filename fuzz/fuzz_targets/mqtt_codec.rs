//! `mqtt_codec`: see `sitewatch_fuzz_targets::mqtt_codec` (fuzz-targets/src/mqtt_codec.rs).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| sitewatch_fuzz_targets::mqtt_codec::run(data));
