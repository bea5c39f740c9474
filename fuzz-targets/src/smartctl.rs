//! smartctl's JSON (`smartctl --json -a`, `--scan-open`) through the parser,
//! the verdict and the agent's mapping to readings, as the smart source runs it.

use sitewatch_agent::source::smart::{RunResult, Tracker};

/// One input, as the fuzzer gives it.
pub fn run(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    if let Ok(report) = smartctl_parser::parse_report(&text) {
        let _ = smartctl_parser::evaluate(&report);
        let _ = report.temperature_celsius();
        let _ = report.power_on_hours();
        let _ = report.power_cycles();
        let _ = report.start_stop_cycles();
    }
    if let Ok(devices) = smartctl_parser::parse_scan(&text) {
        for d in &devices {
            let _ = d.smartctl_device_args();
        }
    }
    // The exit code rides along in the last byte, as the process hands it over.
    let code = data.last().map(|b| i32::from(*b));
    let result = RunResult::from_output(data, code);
    let mut tracker = Tracker::default();
    let _ = tracker.observe("sda", &result);
    let _ = tracker.observe("sda", &result);
}
