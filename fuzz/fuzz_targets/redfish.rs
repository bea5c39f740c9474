//! `redfish`: see `sitewatch_fuzz_targets::redfish` (fuzz-targets/src/redfish.rs).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| sitewatch_fuzz_targets::redfish::run(data));
