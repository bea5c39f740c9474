//! The quantity (`q`) vocabulary.
//!
//! A reading's `q` is one of the names below, which the signals engine
//! understands, or any `snake_case` name ending in a Prometheus base unit or
//! naming a plain count or flag. The collector exposes each as `sitewatch_<q>`.

macro_rules! vocabulary {
    ($($konst:ident = $name:literal: $help:literal;)*) => {
        $(#[doc = $help] pub const $konst: &str = $name;)*

        /// Every quantity of the vocabulary with its one-line description.
        pub const VOCABULARY: &[(&str, &str)] = &[$(($name, $help)),*];
    };
}

vocabulary! {
    TEMPERATURE_CELSIUS = "temperature_celsius": "Temperature in degrees Celsius.";
    INLET_TEMPERATURE_CELSIUS = "inlet_temperature_celsius": "Server inlet or rack-front air temperature in degrees Celsius.";
    HUMIDITY_RATIO = "humidity_ratio": "Relative humidity, 0..1.";
    FAN_SPEED_RPM = "fan_speed_rpm": "Fan speed in revolutions per minute.";
    VOLTAGE_VOLTS = "voltage_volts": "Voltage in volts.";
    CURRENT_AMPERES = "current_amperes": "Current in amperes.";
    POWER_WATTS = "power_watts": "Power in watts.";
    FREQUENCY_HERTZ = "frequency_hertz": "Frequency in hertz.";
    PSU_OK = "psu_ok": "1 when the power supply is healthy, 0 when failed or its input is lost.";
    UPS_ON_BATTERY = "ups_on_battery": "1 when the UPS runs from its battery (mains lost).";
    UPS_BATTERY_LOW = "ups_battery_low": "1 when the UPS reports low battery.";
    UPS_BATTERY_CHARGE_RATIO = "ups_battery_charge_ratio": "UPS battery charge, 0..1.";
    UPS_BATTERY_RUNTIME_SECONDS = "ups_battery_runtime_seconds": "Estimated UPS runtime left in seconds.";
    UPS_LOAD_RATIO = "ups_load_ratio": "UPS output load, 0..1 of rated output.";
    MAINS_AVAILABLE = "mains_available": "1 when utility power is present at the UPS, ATS or generator controller.";
    GENERATOR_RUNNING = "generator_running": "1 when the generator is running and supplying.";
    GENERATOR_FAULT = "generator_fault": "1 when the generator controller reports a shutdown or fail-to-start alarm.";
    GENERATOR_FUEL_RATIO = "generator_fuel_ratio": "Generator fuel level, 0..1.";
    COOLING_UNIT_RUNNING = "cooling_unit_running": "1 when the CRAC/CRAH unit is running.";
    COOLING_UNIT_ALARM = "cooling_unit_alarm": "1 when the cooling unit reports a common or critical alarm.";
    SUPPLY_AIR_TEMPERATURE_CELSIUS = "supply_air_temperature_celsius": "Cooling unit supply air temperature in degrees Celsius.";
    RETURN_AIR_TEMPERATURE_CELSIUS = "return_air_temperature_celsius": "Cooling unit return air temperature in degrees Celsius.";
    WATER_LEAK = "water_leak": "1 when a water leak is detected.";
    DISK_SMART_PASSED = "disk_smart_passed": "1 when the disk's SMART overall health passed, 0 when failed.";
    DISK_REALLOCATED_SECTORS = "disk_reallocated_sectors": "Reallocated sector count.";
    DISK_PENDING_SECTORS = "disk_pending_sectors": "Pending (unstable) sector count.";
    DISK_MEDIA_ERRORS = "disk_media_errors": "Media and data integrity errors.";
    DISK_PERCENTAGE_USED_RATIO = "disk_percentage_used_ratio": "NVMe endurance used, 0..1 and beyond.";
    CPU_USAGE_RATIO = "cpu_usage_ratio": "CPU busy time, 0..1.";
    MEMORY_USAGE_RATIO = "memory_usage_ratio": "Memory in use, 0..1.";
    FILESYSTEM_USAGE_RATIO = "filesystem_usage_ratio": "Filesystem space in use, 0..1.";
    PROBE_UP = "probe_up": "1 when the network probe target answered.";
    PROBE_RTT_SECONDS = "probe_rtt_seconds": "Network probe round-trip time in seconds.";
    POWER_FEED_AVAILABLE = "power_feed_available": "1 when a power feed (a PDU's inlet or phase, feed A or B) is energised, 0 when it is lost.";
    INTERFACE_UP = "interface_up": "1 when a network interface is operationally up (IF-MIB ifOperStatus), 0 when down.";
}

/// The one-line description of a vocabulary quantity.
pub fn describe(q: &str) -> Option<&'static str> {
    VOCABULARY
        .iter()
        .find(|(name, _)| *name == q)
        .map(|(_, help)| *help)
}

/// Suffixes naming a Prometheus base unit.
pub const BASE_UNIT_SUFFIXES: [&str; 10] = [
    "_celsius", "_volts", "_amperes", "_watts", "_hertz", "_rpm", "_ratio", "_seconds", "_bytes",
    "_joules",
];

/// The base unit a quantity ends in, if any (`"celsius"` for `temperature_celsius`).
pub fn unit(q: &str) -> Option<&'static str> {
    BASE_UNIT_SUFFIXES
        .iter()
        .find(|suffix| q.ends_with(**suffix) && q.len() > suffix.len())
        .map(|suffix| &suffix[1..])
}

/// Whether `q` is a valid quantity name: `snake_case`, starting with a letter.
///
/// It becomes part of a Prometheus metric name, so this is stricter than the
/// metric-name grammar (no upper case, no colons).
pub fn is_valid(q: &str) -> bool {
    let mut chars = q.chars();
    matches!(chars.next(), Some('a'..='z'))
        && chars.all(|c| matches!(c, 'a'..='z' | '0'..='9' | '_'))
        && !q.ends_with('_')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_vocabulary_entry_is_a_valid_quantity() {
        for (q, help) in VOCABULARY {
            assert!(is_valid(q), "{q}");
            assert!(!help.is_empty());
        }
        assert_eq!(VOCABULARY.len(), 35);
    }

    #[test]
    fn unit_is_taken_from_the_suffix() {
        assert_eq!(unit(TEMPERATURE_CELSIUS), Some("celsius"));
        assert_eq!(unit(PROBE_RTT_SECONDS), Some("seconds"));
        assert_eq!(unit(PSU_OK), None);
        assert_eq!(unit("_ratio"), None);
    }

    #[test]
    fn invalid_quantities_are_refused() {
        for bad in ["", "Temp", "1x", "a-b", "a:b", "a_", "é"] {
            assert!(!is_valid(bad), "{bad}");
        }
        assert!(is_valid("ups_output_voltage_volts"));
    }
}
