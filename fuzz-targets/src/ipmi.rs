//! IPMI: every command's response parser, the SDR record parser with the
//! sensor plan and reading conversion behind it, and the SEL record decoder,
//! as the agent's ipmi source runs them on a BMC's answers.
//!
//! The input is `selector, data`: the selector picks the completion code of
//! the reading (0: answered) and which SDR record the SEL entry names; the
//! data is handed to every parser, and its tail serves as the sensor reading
//! and thresholds, so one input exercises the whole path.

use sitewatch_agent::source::ipmi::commands::{
    Cc, CloseSessionByHandle, Command, DcmiGetPowerReading, GetChassisStatus, GetOwnSessionHandle,
    GetSdr, GetSdrRepositoryInfo, GetSelEntry, GetSelInfo, GetSensorReading, GetSensorThresholds,
    ReserveSdrRepository,
};
use sitewatch_agent::source::ipmi::sensor::{self, Thresholds};
use sitewatch_agent::source::ipmi::{chassis, sdr, sel};

/// One input, as the fuzzer gives it.
pub fn run(input: &[u8]) {
    let Some((&selector, data)) = input.split_first() else {
        return;
    };
    let _ = GetSdrRepositoryInfo::parse(data);
    let _ = ReserveSdrRepository::parse(data);
    let _ = GetSdr::parse(data);
    let _ = GetSelInfo::parse(data);
    let _ = GetOwnSessionHandle::parse(data);
    let _ = CloseSessionByHandle::parse(data);
    if let Ok(status) = GetChassisStatus::parse(data) {
        let _ = chassis::readings("bmc", &status);
    }
    if let Ok(power) = DcmiGetPowerReading::parse(data) {
        let _ = chassis::power("bmc", &power);
    }

    // The record's tail, past a full record's 64 bytes at most, is the reading.
    let tail = data.get(data.len().min(64)..).unwrap_or(&[]);
    let reading = if selector & 1 == 0 {
        GetSensorReading::parse(tail).map_err(|_| Cc(0xcb))
    } else {
        Err(Cc(selector))
    };
    let raw_thresholds = GetSensorThresholds::parse(tail.get(4..).unwrap_or(&[])).ok();
    let sensors = sdr::parse_record(data).unwrap_or_default();
    for s in &sensors {
        let thresholds = raw_thresholds.as_ref().map(|t| Thresholds::convert(t, s));
        if let Ok(plan) = sensor::plan(s) {
            let _ = sensor::readings("bmc", s, &plan, reading, thresholds.as_ref());
        }
    }

    // A SEL entry: Get SEL Entry's answer, then the record as an event.
    if let Ok(entry) = GetSelEntry::parse(data) {
        let named = sensors.get(usize::from(selector >> 1) % sensors.len().max(1));
        let _ = sel::event("bmc", &entry.record, named);
        let _ = sel::event_id("bmc", &entry.record);
    }
    if let Some(record) = data.get(..16).and_then(|d| <&[u8; 16]>::try_from(d).ok()) {
        let _ = sel::event("bmc", record, sensors.first());
    }
}
