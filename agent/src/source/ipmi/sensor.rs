//! Sensor readings -> protocol readings (pure): the quantity from the SDR's
//! unit, the state from the threshold status bits (or the thresholds), and the
//! discrete sensors that matter for the DR plan (power supplies, drive slots,
//! fan faults).

use sitewatch_protocol::{Reading, ReadingState, quantity};

use super::{
    commands::{Cc, RawReading, RawThresholds},
    sdr::{ReadingKind, SensorRecord},
};

/// Quantities this source adds to the shared vocabulary.
pub mod q {
    pub const BMC_UP: &str = "bmc_up";
    pub const PSU_PRESENT: &str = "psu_present";
    pub const DRIVE_FAULT: &str = "drive_fault";
    pub const FAN_FAULT: &str = "fan_fault";
    pub const ENERGY_JOULES: &str = "energy_joules";
    pub const SEL_FULL: &str = "sel_full";
    pub const SEL_ENTRIES: &str = "sel_entries";
    pub const CHASSIS_POWER_ON: &str = "chassis_power_on";
    pub const CHASSIS_POWER_FAULT: &str = "chassis_power_fault";
    pub const CHASSIS_POWER_OVERLOAD: &str = "chassis_power_overload";
    pub const CHASSIS_POWER_CONTROL_FAULT: &str = "chassis_power_control_fault";
    pub const CHASSIS_COOLING_FAULT: &str = "chassis_cooling_fault";
    pub const CHASSIS_DRIVE_FAULT: &str = "chassis_drive_fault";
    pub const CHASSIS_INTRUSION: &str = "chassis_intrusion";
}

// IPMI sensor type codes (table 42-3).
const TYPE_TEMPERATURE: u8 = 0x01;
const TYPE_VOLTAGE: u8 = 0x02;
const TYPE_CURRENT: u8 = 0x03;
const TYPE_FAN: u8 = 0x04;
const TYPE_POWER_SUPPLY: u8 = 0x08;
const TYPE_DRIVE_SLOT: u8 = 0x0d;

// Entity IDs (table 43-13) that mean intake air: 37h "air inlet", and 40h,
// DCMI's "inlet temperature" entity.
const ENTITY_AIR_INLET: u8 = 0x37;
const ENTITY_DCMI_INLET: u8 = 0x40;

/// How a sensor becomes readings, decided once per SDR read.
#[derive(Debug, Clone, PartialEq)]
pub enum Plan {
    /// A number in a unit: quantity and the scale to apply after conversion.
    Analog { q: String, to_base: Scale },
    /// A power supply status sensor (type 08h, sensor-specific offsets).
    PowerSupply,
    /// A drive slot (type 0Dh): offset 1 is "drive fault".
    DriveSlot,
    /// A fan with discrete states: digital (03h), limit (05h) or severity (07h).
    FanDiscrete,
}

/// Unit conversions to the protocol's base units.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Scale {
    Identity,
    FahrenheitToCelsius,
    KelvinToCelsius,
    PercentToRatio,
}

impl Scale {
    fn apply(self, v: f64) -> f64 {
        match self {
            Scale::Identity => v,
            Scale::FahrenheitToCelsius => (v - 32.0) * 5.0 / 9.0,
            Scale::KelvinToCelsius => v - 273.15,
            Scale::PercentToRatio => v / 100.0,
        }
    }
}

fn is_inlet(s: &SensorRecord) -> bool {
    let name = s.name.to_ascii_lowercase();
    matches!(s.entity_id, ENTITY_AIR_INLET | ENTITY_DCMI_INLET)
        || name.contains("inlet")
        || name.contains("ambient")
}

/// How to read `s`, or why it is skipped.
pub fn plan(s: &SensorRecord) -> Result<Plan, String> {
    match s.kind() {
        ReadingKind::Threshold => {
            let Some(factors) = s.factors else {
                return Err(
                    "threshold sensor in a compact record has no conversion factors".into(),
                );
            };
            factors.check().map_err(|e| e.to_string())?;
            if s.units.rate != 0 || s.units.modifier_use != 0 {
                return Err(format!(
                    "compound unit (base {}, modifier {}, rate {}) not mapped",
                    s.units.base, s.units.modifier, s.units.rate
                ));
            }
            if s.units.percentage {
                let what = match s.sensor_type {
                    TYPE_FAN => "fan_speed",
                    TYPE_CURRENT => "current",
                    TYPE_VOLTAGE => "voltage",
                    TYPE_TEMPERATURE => "temperature",
                    _ => "sensor",
                };
                return Ok(Plan::Analog {
                    q: format!("{what}_ratio"),
                    to_base: Scale::PercentToRatio,
                });
            }
            let temperature = |scale| {
                let q = if is_inlet(s) {
                    quantity::INLET_TEMPERATURE_CELSIUS
                } else {
                    quantity::TEMPERATURE_CELSIUS
                };
                Ok(Plan::Analog {
                    q: q.into(),
                    to_base: scale,
                })
            };
            let plain = |q: &str| {
                Ok(Plan::Analog {
                    q: q.into(),
                    to_base: Scale::Identity,
                })
            };
            // Base unit codes, table 43-15.
            match s.units.base {
                1 => temperature(Scale::Identity),
                2 => temperature(Scale::FahrenheitToCelsius),
                3 => temperature(Scale::KelvinToCelsius),
                4 => plain(quantity::VOLTAGE_VOLTS),
                5 => plain(quantity::CURRENT_AMPERES),
                6 => plain(quantity::POWER_WATTS),
                7 => plain(q::ENERGY_JOULES),
                18 => plain(quantity::FAN_SPEED_RPM),
                19 => plain(quantity::FREQUENCY_HERTZ),
                other => Err(format!("unit {other} not mapped")),
            }
        }
        ReadingKind::Discrete => match (s.sensor_type, s.reading_type) {
            (TYPE_POWER_SUPPLY, 0x6f) => Ok(Plan::PowerSupply),
            (TYPE_DRIVE_SLOT, 0x6f) => Ok(Plan::DriveSlot),
            (TYPE_FAN, 0x03 | 0x05 | 0x07) => Ok(Plan::FanDiscrete),
            (t, r) => Err(format!(
                "discrete sensor type {t:#04x} (reading type {r:#04x}) not mapped"
            )),
        },
    }
}

/// Converted thresholds, for BMCs that do not send the threshold status bits.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Thresholds {
    pub lnc: Option<f64>,
    pub lc: Option<f64>,
    pub lnr: Option<f64>,
    pub unc: Option<f64>,
    pub uc: Option<f64>,
    pub unr: Option<f64>,
}

impl Thresholds {
    pub fn convert(raw: &RawThresholds, s: &SensorRecord) -> Thresholds {
        let c = |b: Option<u8>| b.and_then(|b| s.factors.and_then(|f| f.convert(b)));
        Thresholds {
            lnc: c(raw.lnc),
            lc: c(raw.lc),
            lnr: c(raw.lnr),
            unc: c(raw.unc),
            uc: c(raw.uc),
            unr: c(raw.unr),
        }
    }

    fn state(&self, v: f64) -> ReadingState {
        let above = |t: Option<f64>| t.is_some_and(|t| v >= t);
        let below = |t: Option<f64>| t.is_some_and(|t| v <= t);
        if above(self.uc) || above(self.unr) || below(self.lc) || below(self.lnr) {
            ReadingState::Critical
        } else if above(self.unc) || below(self.lnc) {
            ReadingState::Warning
        } else {
            ReadingState::Ok
        }
    }
}

/// The state of a threshold sensor: from the reading's status bits (what the
/// BMC itself judged, as `ipmitool sensor` shows it), else by comparing with
/// the thresholds.
pub fn threshold_state(
    states: Option<u16>,
    value: f64,
    thresholds: Option<&Thresholds>,
) -> ReadingState {
    match states {
        Some(bits) if bits & 0b11_0110 != 0 => ReadingState::Critical, // LC, LNR, UC, UNR
        Some(bits) if bits & 0b00_1001 != 0 => ReadingState::Warning,  // LNC, UNC
        Some(_) => ReadingState::Ok,
        None => thresholds.map_or(ReadingState::Ok, |t| t.state(value)),
    }
}

fn flag(v: bool) -> Option<f64> {
    Some(if v { 1.0 } else { 0.0 })
}

/// The readings of one sensor. `reading` is the Get Sensor Reading outcome:
/// a refusal or an unavailable reading is a reading with no value.
pub fn readings(
    bmc: &str,
    s: &SensorRecord,
    plan: &Plan,
    reading: Result<RawReading, Cc>,
    thresholds: Option<&Thresholds>,
) -> Vec<Reading> {
    let src = super::NAME;
    let entity = format!("{}.{}", s.entity_id, s.entity_instance);
    let unknown = |q: &str| {
        Reading::new(src, bmc, s.name.clone(), q, None, ReadingState::Unknown)
            .with_label("entity", entity.clone())
    };
    let usable = reading
        .ok()
        .filter(|r| !r.unavailable && !r.scanning_disabled);
    let one = |q: &str, value: Option<f64>, state: ReadingState| {
        Reading::new(src, bmc, s.name.clone(), q, value, state).with_label("entity", entity.clone())
    };
    match plan {
        Plan::Analog { q, to_base } => {
            let Some(r) = usable else {
                return vec![unknown(q)];
            };
            let Some(value) = s.factors.and_then(|f| f.convert(r.raw)) else {
                return vec![unknown(q)];
            };
            let state = threshold_state(r.states, value, thresholds);
            vec![one(q, Some(to_base.apply(value)), state)]
        }
        Plan::PowerSupply => {
            let Some(bits) = usable.and_then(|r| r.states) else {
                return vec![unknown(quantity::PSU_OK)];
            };
            let present = bits & 0x01 != 0;
            // Offsets 1 failure, 3 input lost, 4 input lost or out of range,
            // 5 input out of range but present.
            let fault = bits & 0b11_1010 != 0;
            let mut out = vec![one(q::PSU_PRESENT, flag(present), ReadingState::Ok)];
            // An empty bay that never had a supply is not a failed one: psu_ok
            // only for a supply that is there or reports a fault.
            if present || fault {
                let state = if fault {
                    ReadingState::Critical
                } else {
                    ReadingState::Ok
                };
                out.push(one(quantity::PSU_OK, flag(!fault), state));
            }
            out
        }
        Plan::DriveSlot => {
            let Some(bits) = usable.and_then(|r| r.states) else {
                return vec![unknown(q::DRIVE_FAULT)];
            };
            let fault = bits & 0x02 != 0;
            let state = if fault {
                ReadingState::Critical
            } else {
                ReadingState::Ok
            };
            vec![one(q::DRIVE_FAULT, flag(fault), state)]
        }
        Plan::FanDiscrete => {
            let Some(bits) = usable.and_then(|r| r.states) else {
                return vec![unknown(q::FAN_FAULT)];
            };
            let fault = match s.reading_type {
                // Digital: state asserted; limit: exceeded.
                0x03 | 0x05 => bits & 0x02 != 0,
                // Severity: critical or non-recoverable from any side.
                _ => bits & 0b110_1100 != 0,
            };
            let state = if fault {
                ReadingState::Critical
            } else {
                ReadingState::Ok
            };
            vec![one(q::FAN_FAULT, flag(fault), state)]
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::source::ipmi::{linear::Factors, sdr::Units};

    fn record(name: &str, sensor_type: u8, reading_type: u8, base: u8) -> SensorRecord {
        SensorRecord {
            record_id: 1,
            owner: 0x20,
            lun: 0,
            number: 1,
            entity_id: 7,
            entity_instance: 1,
            sensor_type,
            reading_type,
            name: name.into(),
            units: Units {
                base,
                modifier: 0,
                rate: 0,
                modifier_use: 0,
                percentage: false,
            },
            factors: Some(Factors::from_sdr(0, 0, [1, 0, 0, 0, 0, 0])),
        }
    }

    fn raw(raw: u8, states: Option<u16>) -> Result<RawReading, Cc> {
        Ok(RawReading {
            raw,
            scanning_disabled: false,
            unavailable: false,
            states,
        })
    }

    #[test]
    fn quantities_follow_the_unit_and_inlet_is_recognised() {
        let cases = [
            (record("CPU Temp", 1, 1, 1), "temperature_celsius"),
            (record("Inlet Temp", 1, 1, 1), "inlet_temperature_celsius"),
            (record("Ambient", 1, 1, 1), "inlet_temperature_celsius"),
            (
                SensorRecord {
                    entity_id: 0x37,
                    ..record("Temp", 1, 1, 1)
                },
                "inlet_temperature_celsius",
            ),
            (
                SensorRecord {
                    entity_id: 0x40,
                    ..record("Temp", 1, 1, 1)
                },
                "inlet_temperature_celsius",
            ),
            (record("12V", 2, 1, 4), "voltage_volts"),
            (record("PSU1 current", 3, 1, 5), "current_amperes"),
            (record("PSU1 power", 3, 1, 6), "power_watts"),
            (record("fan 1", 4, 1, 18), "fan_speed_rpm"),
        ];
        for (s, expected) in cases {
            match plan(&s).unwrap() {
                Plan::Analog { q, .. } => assert_eq!(q, expected, "{}", s.name),
                other => panic!("{other:?}"),
            }
        }
        let pct = SensorRecord {
            units: Units {
                percentage: true,
                ..record("x", 3, 1, 0).units
            },
            ..record("PS1 Curr Out %", 3, 1, 0)
        };
        let p = plan(&pct).unwrap();
        assert_eq!(
            p,
            Plan::Analog {
                q: "current_ratio".into(),
                to_base: Scale::PercentToRatio
            }
        );
        assert!(
            plan(&record("odd", 1, 1, 42))
                .unwrap_err()
                .contains("unit 42")
        );
        assert!(plan(&record("memory", 0x0c, 0x6f, 0)).is_err());
    }

    #[test]
    fn threshold_state_follows_the_status_bits_then_the_thresholds() {
        assert_eq!(threshold_state(Some(0x00), 1.0, None), ReadingState::Ok);
        assert_eq!(
            threshold_state(Some(0x08), 1.0, None),
            ReadingState::Warning
        ); // UNC
        assert_eq!(
            threshold_state(Some(0x18), 1.0, None),
            ReadingState::Critical
        ); // UNC+UC
        assert_eq!(
            threshold_state(Some(0x02), 1.0, None),
            ReadingState::Critical
        ); // LC
        let t = Thresholds {
            unc: Some(112.0),
            uc: Some(144.0),
            lc: Some(5.0),
            ..Thresholds::default()
        };
        assert_eq!(threshold_state(None, 96.0, Some(&t)), ReadingState::Ok);
        assert_eq!(
            threshold_state(None, 120.0, Some(&t)),
            ReadingState::Warning
        );
        assert_eq!(
            threshold_state(None, 149.0, Some(&t)),
            ReadingState::Critical
        );
        assert_eq!(threshold_state(None, 4.0, Some(&t)), ReadingState::Critical);
    }

    #[test]
    fn unavailable_or_unscanned_readings_are_null_never_zero() {
        let s = record("MBTemp", 1, 1, 1);
        let p = plan(&s).unwrap();
        for r in [
            Ok(RawReading {
                raw: 0,
                scanning_disabled: false,
                unavailable: true,
                states: None,
            }),
            Ok(RawReading {
                raw: 0,
                scanning_disabled: true,
                unavailable: false,
                states: None,
            }),
            Err(Cc(0xcb)),
        ] {
            let out = readings("bmc", &s, &p, r, None);
            assert_eq!(out.len(), 1);
            assert_eq!((out[0].value, out[0].state), (None, ReadingState::Unknown));
        }
        let out = readings("bmc", &s, &p, raw(0x95, Some(0x18)), None);
        assert_eq!(
            (out[0].value, out[0].state),
            (Some(149.0), ReadingState::Critical)
        );
        assert_eq!(out[0].labels["entity"], "7.1");
    }

    #[test]
    fn power_supplies_report_ok_failed_and_absent() {
        let s = record("PSU1 status", 8, 0x6f, 0);
        let p = plan(&s).unwrap();
        let get = |states| readings("bmc", &s, &p, raw(0, Some(states)), None);
        let present = get(0x01);
        assert_eq!(present[1].q, "psu_ok");
        assert_eq!(
            (present[1].value, present[1].state),
            (Some(1.0), ReadingState::Ok)
        );
        let failed = get(0x03);
        assert_eq!(
            (failed[1].value, failed[1].state),
            (Some(0.0), ReadingState::Critical)
        );
        let ac_lost = get(0x09);
        assert_eq!(ac_lost[1].value, Some(0.0));
        let absent = get(0x00);
        assert_eq!(absent.len(), 1);
        assert_eq!(
            (absent[0].q.as_str(), absent[0].value),
            ("psu_present", Some(0.0))
        );
    }
}
