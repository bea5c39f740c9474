//! `snmp`: see `sitewatch_fuzz_targets::snmp` (fuzz-targets/src/snmp.rs).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| sitewatch_fuzz_targets::snmp::run(data));
