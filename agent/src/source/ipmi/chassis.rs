//! Chassis Status bits and the DCMI power reading as readings (pure).

use sitewatch_protocol::{Reading, ReadingState, quantity};

use super::{
    commands::{ChassisStatus, PowerReading},
    sensor::q,
};

fn flag(bmc: &str, name: &str, q: &str, on: bool, when_on: ReadingState) -> Reading {
    let state = if on { when_on } else { ReadingState::Ok };
    Reading::new(
        super::NAME,
        bmc,
        name,
        q,
        Some(if on { 1.0 } else { 0.0 }),
        state,
    )
}

/// The chassis bits that tell of a hardware problem. Power off is a state,
/// not a fault (planned downtime is common); the fault bits are critical.
pub fn readings(bmc: &str, s: &ChassisStatus) -> Vec<Reading> {
    use ReadingState::{Critical, Ok, Warning};
    vec![
        flag(bmc, "chassis power", q::CHASSIS_POWER_ON, s.power_on, Ok),
        flag(
            bmc,
            "main power fault",
            q::CHASSIS_POWER_FAULT,
            s.power_fault,
            Critical,
        ),
        flag(
            bmc,
            "power overload",
            q::CHASSIS_POWER_OVERLOAD,
            s.power_overload,
            Critical,
        ),
        flag(
            bmc,
            "power control fault",
            q::CHASSIS_POWER_CONTROL_FAULT,
            s.power_control_fault,
            Critical,
        ),
        flag(
            bmc,
            "cooling/fan fault",
            q::CHASSIS_COOLING_FAULT,
            s.cooling_fault,
            Critical,
        ),
        flag(
            bmc,
            "drive fault",
            q::CHASSIS_DRIVE_FAULT,
            s.drive_fault,
            Critical,
        ),
        flag(
            bmc,
            "chassis intrusion",
            q::CHASSIS_INTRUSION,
            s.intrusion,
            Warning,
        ),
    ]
}

/// The system's power draw; a reading the BMC marks inactive has no value.
pub fn power(bmc: &str, p: &PowerReading) -> Reading {
    let value = p.active.then_some(f64::from(p.current_watts));
    Reading::new(
        super::NAME,
        bmc,
        "DCMI system power",
        quantity::POWER_WATTS,
        value,
        ReadingState::Ok,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fault_bits_are_critical_and_power_off_is_not() {
        let s = ChassisStatus {
            power_on: false,
            power_overload: false,
            power_fault: false,
            power_control_fault: false,
            intrusion: false,
            drive_fault: false,
            cooling_fault: true,
        };
        let r = readings("bmc", &s);
        let get = |q: &str| r.iter().find(|r| r.q == q).unwrap();
        assert_eq!(
            (get("chassis_power_on").value, get("chassis_power_on").state),
            (Some(0.0), ReadingState::Ok)
        );
        assert_eq!(get("chassis_cooling_fault").state, ReadingState::Critical);
        assert_eq!(get("chassis_drive_fault").state, ReadingState::Ok);
        let p = power(
            "bmc",
            &PowerReading {
                current_watts: 412,
                active: true,
            },
        );
        assert_eq!((p.q.as_str(), p.value), ("power_watts", Some(412.0)));
        let idle = power(
            "bmc",
            &PowerReading {
                current_watts: 0,
                active: false,
            },
        );
        assert_eq!((idle.value, idle.state), (None, ReadingState::Unknown));
    }
}
