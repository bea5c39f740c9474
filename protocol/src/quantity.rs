//! The quantity (`q`) vocabulary.
//!
//! A reading's `q` is one of the names below, which the signals engine
//! understands, or any `snake_case` name ending in a Prometheus base unit or
//! naming a plain count or flag. The collector exposes each as `sitewatch_<q>`.
//!
//! A `q` ending in [`COUNTER_SUFFIX`] (`_total`) is a counter: a count that
//! only grows from some start (the agent's boot, a device's reset), exposed
//! with the Prometheus type `counter`. A unit goes before the suffix
//! (`network_receive_bytes_total`). See [`is_counter`].

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
    DISK_MEDIA_ERRORS_TOTAL = "disk_media_errors_total": "Media and data integrity errors since the disk was made (a counter).";
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

/// The `src` of an agent's readings about itself (poll outcomes, publishing,
/// its buffer).
pub const SELF_SRC: &str = "agent";

/// Quantity prefixes of the collector's own metric names (`sitewatch_agent_up`,
/// `sitewatch_collector_*`, `sitewatch_reading_state`, `sitewatch_signal_active`,
/// `sitewatch_site_*`): readings may not use them, except [`SELF_PREFIX`] below.
pub const RESERVED_PREFIXES: [&str; 5] = ["agent_", "collector_", "reading_", "signal_", "site_"];

/// The prefix of an agent's self-metrics, allowed with `src = "agent"` only.
pub const SELF_PREFIX: &str = "agent_";

/// The collector's own `agent_` metrics (about agents, from their liveness),
/// which no reading may take even with `src = "agent"`.
pub const COLLECTOR_AGENT_QUANTITIES: [&str; 5] = [
    "agent_up",
    "agent_status",
    "agent_last_seen_timestamp_seconds",
    "agent_path_up",
    "agent_info",
];

/// Whether a reading of source `src` may not use quantity `q`: the name would
/// collide with one of the collector's own metrics, present or future.
pub fn is_reserved(src: &str, q: &str) -> bool {
    if src == SELF_SRC && q.starts_with(SELF_PREFIX) {
        return COLLECTOR_AGENT_QUANTITIES.contains(&q);
    }
    RESERVED_PREFIXES.iter().any(|p| q.starts_with(p))
}

/// Suffixes naming a Prometheus base unit.
pub const BASE_UNIT_SUFFIXES: [&str; 10] = [
    "_celsius", "_volts", "_amperes", "_watts", "_hertz", "_rpm", "_ratio", "_seconds", "_bytes",
    "_joules",
];

/// The suffix that marks a quantity as a counter.
pub const COUNTER_SUFFIX: &str = "_total";

/// Whether `q` is a counter: it ends in `_total` after at least one character.
///
/// A counter's value is a count since some start, never negative; a smaller
/// value than the last one is a reset (a new boot, a device's counter cleared),
/// which Prometheus' `rate()` and `increase()` handle. v1 always allowed such
/// names; what the suffix adds is the type the collector exposes.
pub fn is_counter(q: &str) -> bool {
    counter_base(q).is_some()
}

/// A counter's name without `_total` (`network_receive_bytes` for
/// `network_receive_bytes_total`), `None` when `q` is not a counter.
pub fn counter_base(q: &str) -> Option<&str> {
    q.strip_suffix(COUNTER_SUFFIX)
        .filter(|base| !base.is_empty())
}

/// The base unit a quantity measures in, if any: `"celsius"` for
/// `temperature_celsius`, `"bytes"` for the counter `network_receive_bytes_total`.
pub fn unit(q: &str) -> Option<&'static str> {
    let name = counter_base(q).unwrap_or(q);
    BASE_UNIT_SUFFIXES
        .iter()
        .find(|suffix| name.ends_with(**suffix) && name.len() > suffix.len())
        .map(|suffix| &suffix[1..])
}

/// Whether `q` is a valid quantity name: `snake_case`, starting with a letter.
///
/// It becomes part of a Prometheus metric name, so this is stricter than the
/// metric-name grammar (no upper case, no colons).
pub fn is_valid(q: &str) -> bool {
    // Bytes, not chars: every allowed character is ASCII, and any byte of a
    // multi-byte character is outside the set.
    let bytes = q.as_bytes();
    matches!(bytes.first(), Some(b'a'..=b'z'))
        && bytes
            .iter()
            .all(|b| matches!(b, b'a'..=b'z' | b'0'..=b'9' | b'_'))
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
        assert_eq!(unit("network_receive_bytes_total"), Some("bytes"));
        assert_eq!(unit("cpu_seconds_total"), Some("seconds"));
        assert_eq!(unit("polls_total"), None);
    }

    #[test]
    fn agent_quantities_are_the_agents_own_and_the_rest_is_the_collectors() {
        assert!(!is_reserved("agent", "agent_buffer_bytes"));
        assert!(!is_reserved("agent", "agent_polls_total"));
        assert!(is_reserved("agent", "agent_up"));
        assert!(is_reserved("agent", "agent_status"));
        assert!(is_reserved("host", "agent_buffer_bytes"));
        for q in [
            "collector_series",
            "reading_state",
            "signal_active",
            "site_info",
        ] {
            assert!(is_reserved("agent", q), "{q}");
            assert!(is_reserved("ipmi", q), "{q}");
        }
        assert!(!is_reserved("host", CPU_USAGE_RATIO));
        assert!(!is_reserved("agent", "polls"));
    }

    #[test]
    fn a_total_suffix_marks_a_counter() {
        assert!(is_counter("network_receive_bytes_total"));
        assert!(is_counter("polls_total"));
        assert_eq!(counter_base("polls_total"), Some("polls"));
        for not_counter in ["polls", "total", "_total", "total_bytes", UPS_LOAD_RATIO] {
            assert!(!is_counter(not_counter), "{not_counter}");
        }
    }

    #[test]
    fn invalid_quantities_are_refused() {
        for bad in ["", "Temp", "1x", "a-b", "a:b", "a_", "é", "aé", "temp_°c"] {
            assert!(!is_valid(bad), "{bad}");
        }
        assert!(is_valid("ups_output_voltage_volts"));
    }
}
