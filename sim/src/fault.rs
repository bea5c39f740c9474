//! How a simulated device misbehaves, and the named scenarios that move its
//! values the way a real incident would.

use std::time::Duration;

use sitewatch_protocol::quantity as q;

/// How the device answers requests.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Fault {
    /// Answers at once.
    #[default]
    None,
    /// Answers after a delay (a slow gateway, a busy serial bus).
    Slow(Duration),
    /// Never answers (a dead device, a cut RS-485 pair).
    Silent,
    /// Answers every request with this exception code.
    Exception(u8),
}

/// A named incident: quantities set to values, on every point that has them.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Scenario {
    pub name: &'static str,
    pub sets: &'static [(&'static str, f64)],
}

/// The scenarios the control interface knows. `healthy` is not among them: it
/// restores the default image and clears faults.
pub const SCENARIOS: &[Scenario] = &[
    Scenario {
        name: "mains_lost",
        sets: &[
            (q::MAINS_AVAILABLE, 0.0),
            (q::UPS_ON_BATTERY, 1.0),
            (q::UPS_BATTERY_RUNTIME_SECONDS, 1200.0),
        ],
    },
    Scenario {
        name: "battery_low",
        sets: &[
            (q::UPS_BATTERY_LOW, 1.0),
            (q::UPS_BATTERY_CHARGE_RATIO, 0.08),
            (q::UPS_BATTERY_RUNTIME_SECONDS, 120.0),
        ],
    },
    Scenario {
        name: "generator_fails_to_start",
        sets: &[
            (q::MAINS_AVAILABLE, 0.0),
            (q::GENERATOR_RUNNING, 0.0),
            (q::GENERATOR_FAULT, 1.0),
        ],
    },
    Scenario {
        name: "generator_running",
        sets: &[
            (q::MAINS_AVAILABLE, 0.0),
            (q::GENERATOR_FAULT, 0.0),
            (q::GENERATOR_RUNNING, 1.0),
        ],
    },
    Scenario {
        name: "cooling_alarm",
        sets: &[
            (q::COOLING_UNIT_ALARM, 1.0),
            (q::SUPPLY_AIR_TEMPERATURE_CELSIUS, 29.5),
            (q::RETURN_AIR_TEMPERATURE_CELSIUS, 38.0),
        ],
    },
    // What a temperature probe in the cold aisle reads once the cooling has
    // been gone a few minutes: above ASHRAE A1's allowable 32 degC.
    Scenario {
        name: "overheat",
        sets: &[
            (q::TEMPERATURE_CELSIUS, 35.0),
            (q::INLET_TEMPERATURE_CELSIUS, 35.0),
        ],
    },
];

pub fn scenario(name: &str) -> Option<&'static Scenario> {
    SCENARIOS.iter().find(|s| s.name == name)
}
