//! Redfish resources -> readings (pure): one function per resource type, each
//! taking the resource's JSON as the service sent it. Nothing here fails: a
//! property that is missing, mistyped or out of range gives no reading (or an
//! unknown one), never a panic, never a zero.
//!
//! The rules (README, "Redfish"):
//!
//! - `Status.State` `Absent` or `Disabled`: no reading at all.
//! - `Status.Health` (or `HealthRollup` for a whole system or unit) gives the
//!   state: `OK` ok, `Warning` warning, `Critical` critical; a sensor's own
//!   `Thresholds` crossed make it worse, never better.
//! - Quantities are the shared vocabulary's where one fits
//!   (`inlet_temperature_celsius` for `PhysicalContext` `Intake`, `psu_ok`,
//!   `fan_speed_rpm`, `water_leak`, `power_feed_available`, the electrical
//!   ones), in base units (kWh to joules, kPa to pascals, % to a ratio).

use std::collections::BTreeMap;

use serde_json::Value;
use sitewatch_protocol::{Reading, ReadingState, quantity};

/// Quantities this source adds to the shared vocabulary.
pub mod q {
    /// Also the ipmi source's.
    pub const ENERGY_JOULES: &str = "energy_joules";
    /// Also the snmp source's (entity-sensor profile).
    pub const FAN_OK: &str = "fan_ok";
    pub const FAN_SPEED_RATIO: &str = "fan_speed_ratio";
    pub const REDUNDANCY_OK: &str = "redundancy_ok";
    pub const HEALTH_OK: &str = "health_ok";
    pub const BREAKER_OK: &str = "breaker_ok";
    pub const OUTLET_POWER_ON: &str = "outlet_power_on";
    pub const PUMP_OK: &str = "pump_ok";
    pub const PUMP_SPEED_RATIO: &str = "pump_speed_ratio";
    pub const PRESSURE_PASCALS: &str = "pressure_pascals";
    pub const LIQUID_FLOW_LITERS_PER_MINUTE: &str = "liquid_flow_liters_per_minute";
    pub const HEAT_LOAD_WATTS: &str = "heat_load_watts";
}

/// Label keys this source sets itself (an endpoint's own labels may not use them).
pub const LABEL_KEYS: [&str; 13] = [
    "chassis",
    "psu",
    "fan",
    "group",
    "system",
    "pdu",
    "circuit",
    "outlet",
    "phase",
    "cdu",
    "pump",
    "connector",
    "detector",
];

/// Where the readings of one endpoint go.
#[derive(Debug, Clone, Copy)]
pub struct Ctx<'a> {
    pub src: &'a str,
    pub dev: &'a str,
    pub labels: &'a BTreeMap<String, String>,
}

impl Ctx<'_> {
    fn reading(
        &self,
        name: &str,
        q: &str,
        value: Option<f64>,
        state: ReadingState,
        labels: &[(&str, &str)],
    ) -> Reading {
        let mut r = Reading::new(self.src, self.dev, name, q, value, state);
        for (k, v) in self.labels {
            r.labels.insert(k.clone(), v.clone());
        }
        for (k, v) in labels {
            r.labels.insert((*k).to_owned(), (*v).to_owned());
        }
        r
    }
}

fn str_of<'a>(v: &'a Value, key: &str) -> Option<&'a str> {
    v.get(key).and_then(Value::as_str)
}

fn num(v: &Value, key: &str) -> Option<f64> {
    v.get(key).and_then(Value::as_f64).filter(|x| x.is_finite())
}

/// `{"Reading": x}` excerpts (`Voltage`, `CurrentAmps`, ...).
fn excerpt(v: &Value, key: &str) -> Option<f64> {
    v.get(key).and_then(|e| num(e, "Reading"))
}

/// The resource's identifier for a reading's name or label: the last segment
/// of its `@odata.id` (unique within its collection, which `Id` is not in
/// every service), else `Id`, `MemberId`, `Name`.
pub fn id_of(v: &Value) -> Option<&str> {
    let from_path = str_of(v, "@odata.id")
        .filter(|p| !p.contains('#'))
        .and_then(|p| p.trim_end_matches('/').rsplit('/').next())
        .filter(|s| !s.is_empty());
    from_path
        .or_else(|| str_of(v, "Id"))
        .or_else(|| str_of(v, "MemberId"))
        .or_else(|| str_of(v, "Name"))
        .filter(|s| !s.is_empty())
}

fn worse(a: ReadingState, b: ReadingState) -> ReadingState {
    fn rank(s: ReadingState) -> u8 {
        match s {
            ReadingState::Ok => 0,
            ReadingState::Unknown => 1,
            ReadingState::Warning => 2,
            ReadingState::Critical => 3,
        }
    }
    if rank(b) > rank(a) { b } else { a }
}

/// The reading state of a `Status`, or `None` when the resource is absent or
/// disabled (no reading). `rollup`: prefer `HealthRollup` (a system, a unit).
pub fn status_state(resource: &Value, rollup: bool) -> Option<ReadingState> {
    let status = resource.get("Status");
    let state = status.and_then(|s| str_of(s, "State"));
    if matches!(state, Some("Absent" | "Disabled")) {
        return None;
    }
    let health = status.and_then(|s| {
        let r = if rollup {
            str_of(s, "HealthRollup")
        } else {
            None
        };
        r.or_else(|| str_of(s, "Health"))
    });
    Some(match health {
        Some("OK") | None => ReadingState::Ok,
        Some("Warning") => ReadingState::Warning,
        Some("Critical") => ReadingState::Critical,
        Some(_) => ReadingState::Unknown,
    })
}

fn flag(b: bool) -> Option<f64> {
    Some(if b { 1.0 } else { 0.0 })
}

/// The state a `Sensor`'s `Thresholds` give its reading (raw units).
fn threshold_state(sensor: &Value, reading: f64) -> ReadingState {
    let Some(t) = sensor.get("Thresholds") else {
        return ReadingState::Ok;
    };
    let at = |key: &str| t.get(key).and_then(|x| num(x, "Reading"));
    let above = |key: &str| at(key).is_some_and(|limit| reading >= limit);
    let below = |key: &str| at(key).is_some_and(|limit| reading <= limit);
    if above("UpperFatal")
        || above("UpperCritical")
        || below("LowerFatal")
        || below("LowerCritical")
    {
        ReadingState::Critical
    } else if above("UpperCaution") || below("LowerCaution") {
        ReadingState::Warning
    } else {
        ReadingState::Ok
    }
}

/// The same for a legacy `Thermal`/`Power` member's `*Threshold*` properties.
fn legacy_threshold_state(member: &Value, reading: f64) -> ReadingState {
    let above = |key: &str| num(member, key).is_some_and(|limit| reading >= limit);
    let below = |key: &str| num(member, key).is_some_and(|limit| reading <= limit);
    if above("UpperThresholdFatal")
        || above("UpperThresholdCritical")
        || below("LowerThresholdFatal")
        || below("LowerThresholdCritical")
    {
        ReadingState::Critical
    } else if above("UpperThresholdNonCritical") || below("LowerThresholdNonCritical") {
        ReadingState::Warning
    } else {
        ReadingState::Ok
    }
}

fn mentions_fan(sensor: &Value) -> bool {
    str_of(sensor, "PhysicalContext") == Some("Fan")
        || [str_of(sensor, "Id"), str_of(sensor, "Name")]
            .into_iter()
            .flatten()
            .any(|s| s.to_ascii_lowercase().contains("fan"))
}

/// The quantity and scale of a `Sensor`, from its `ReadingType` (else its
/// `ReadingUnits`). `None`: a kind of sensor the source does not map.
fn sensor_kind(sensor: &Value) -> Option<(&'static str, f64)> {
    let units = str_of(sensor, "ReadingUnits").unwrap_or("");
    let kind = str_of(sensor, "ReadingType").unwrap_or(match units {
        "Cel" | "C" => "Temperature",
        "V" => "Voltage",
        "A" => "Current",
        "W" => "Power",
        "Hz" => "Frequency",
        "kW.h" => "EnergykWh",
        "J" => "EnergyJoules",
        "{rev}/min" | "RPM" => "Rotational",
        "%" => "Percent",
        "kPa" => "PressurekPa",
        "Pa" => "PressurePa",
        "L/min" => "LiquidFlowLPM",
        _ => "",
    });
    let intake = str_of(sensor, "PhysicalContext") == Some("Intake");
    Some(match kind {
        "Temperature" if intake => (quantity::INLET_TEMPERATURE_CELSIUS, 1.0),
        "Temperature" => (quantity::TEMPERATURE_CELSIUS, 1.0),
        "Humidity" => (quantity::HUMIDITY_RATIO, 0.01),
        "Voltage" => (quantity::VOLTAGE_VOLTS, 1.0),
        "Current" => (quantity::CURRENT_AMPERES, 1.0),
        "Power" => (quantity::POWER_WATTS, 1.0),
        "Frequency" => (quantity::FREQUENCY_HERTZ, 1.0),
        "EnergykWh" => (q::ENERGY_JOULES, 3.6e6),
        "EnergyWh" => (q::ENERGY_JOULES, 3600.0),
        "EnergyJoules" => (q::ENERGY_JOULES, 1.0),
        "Rotational" => (quantity::FAN_SPEED_RPM, 1.0),
        "Percent" if mentions_fan(sensor) => (q::FAN_SPEED_RATIO, 0.01),
        "PressurekPa" => (q::PRESSURE_PASCALS, 1000.0),
        "PressurePa" | "Pressure" => (q::PRESSURE_PASCALS, 1.0),
        "LiquidFlowLPM" => (q::LIQUID_FLOW_LITERS_PER_MINUTE, 1.0),
        "Heat" => (q::HEAT_LOAD_WATTS, 1000.0),
        _ => return None,
    })
}

/// A `Sensor` (`/Chassis/{id}/Sensors/{id}`): one reading named by its `Id`.
pub fn sensor(ctx: &Ctx<'_>, chassis: &str, sensor: &Value) -> Option<Reading> {
    let health = status_state(sensor, false)?;
    let id = id_of(sensor)?;
    let (q, scale) = sensor_kind(sensor)?;
    let raw = num(sensor, "Reading");
    // A fan read in percent that also says its speed: the speed, in rpm.
    let (q, value) = match (q, num(sensor, "SpeedRPM")) {
        (q::FAN_SPEED_RATIO, Some(rpm)) => (quantity::FAN_SPEED_RPM, Some(rpm)),
        _ => (q, raw.map(|r| r * scale)),
    };
    let state = match raw {
        Some(r) => worse(health, threshold_state(sensor, r)),
        None => ReadingState::Unknown,
    };
    Some(ctx.reading(id, q, value, state, &[("chassis", chassis)]))
}

/// `psu_ok` of a `PowerSupply` (or a legacy `PowerSupplies` member): 1 while
/// healthy (a predicted failure is 1 in state warning), 0 when critical or
/// when its input is lost.
pub fn power_supply(ctx: &Ctx<'_>, chassis: &str, psu: &Value) -> Option<Reading> {
    let state = status_state(psu, false)?;
    let id = id_of(psu)?;
    let input_lost = matches!(
        str_of(psu, "LineInputStatus"),
        Some("LossOfInput" | "OutOfRange")
    );
    let (value, state) = match state {
        ReadingState::Critical => (flag(false), ReadingState::Critical),
        _ if input_lost => (flag(false), ReadingState::Critical),
        ReadingState::Unknown => (None, ReadingState::Unknown),
        s => (flag(true), s),
    };
    Some(ctx.reading(
        "power_supply",
        quantity::PSU_OK,
        value,
        state,
        &[("chassis", chassis), ("psu", id)],
    ))
}

/// A `PowerSupplyMetrics` (read only for a chassis without `Sensors`).
pub fn power_supply_metrics(
    ctx: &Ctx<'_>,
    chassis: &str,
    psu: &str,
    metrics: &Value,
) -> Vec<Reading> {
    let Some(state) = status_state(metrics, false) else {
        return Vec::new();
    };
    let labels = [("chassis", chassis), ("psu", psu)];
    [
        (
            "psu_input_voltage",
            "InputVoltage",
            quantity::VOLTAGE_VOLTS,
            1.0,
        ),
        (
            "psu_input_current",
            "InputCurrentAmps",
            quantity::CURRENT_AMPERES,
            1.0,
        ),
        (
            "psu_input_power",
            "InputPowerWatts",
            quantity::POWER_WATTS,
            1.0,
        ),
        (
            "psu_output_power",
            "OutputPowerWatts",
            quantity::POWER_WATTS,
            1.0,
        ),
        ("psu_energy", "EnergykWh", q::ENERGY_JOULES, 3.6e6),
    ]
    .into_iter()
    .filter_map(|(name, key, q, scale)| {
        excerpt(metrics, key).map(|v| ctx.reading(name, q, Some(v * scale), state, &labels))
    })
    .collect()
}

/// A `Fan`: `fan_ok`, and its speed when the chassis has no `Sensors`.
pub fn fan(ctx: &Ctx<'_>, chassis: &str, fan: &Value, with_speed: bool) -> Vec<Reading> {
    let (Some(state), Some(id)) = (status_state(fan, false), id_of(fan)) else {
        return Vec::new();
    };
    let labels = [("chassis", chassis), ("fan", id)];
    let ok = match state {
        ReadingState::Critical => flag(false),
        ReadingState::Unknown => None,
        _ => flag(true),
    };
    let mut out = vec![ctx.reading("fan", q::FAN_OK, ok, state, &labels)];
    if with_speed && let Some(speed) = fan.get("SpeedPercent") {
        if let Some(rpm) = num(speed, "SpeedRPM") {
            out.push(ctx.reading(
                "fan_speed",
                quantity::FAN_SPEED_RPM,
                Some(rpm),
                state,
                &labels,
            ));
        } else if let Some(pct) = num(speed, "Reading") {
            out.push(ctx.reading(
                "fan_speed",
                q::FAN_SPEED_RATIO,
                Some(pct / 100.0),
                state,
                &labels,
            ));
        }
    }
    out
}

/// The `PowerSupplyRedundancy` or `FanRedundancy` groups of a subsystem.
pub fn redundancy(
    ctx: &Ctx<'_>,
    chassis: &str,
    subsystem: &Value,
    key: &str,
    name: &str,
) -> Vec<Reading> {
    let Some(groups) = subsystem.get(key).and_then(Value::as_array) else {
        return Vec::new();
    };
    groups
        .iter()
        .enumerate()
        .filter_map(|(i, g)| {
            let state = status_state(g, false)?;
            let value = match state {
                ReadingState::Critical => flag(false),
                ReadingState::Unknown => None,
                _ => flag(true),
            };
            let group = i.to_string();
            Some(ctx.reading(
                name,
                q::REDUNDANCY_OK,
                value,
                state,
                &[("chassis", chassis), ("group", group.as_str())],
            ))
        })
        .collect()
}

fn members<'a>(v: &'a Value, key: &str) -> impl Iterator<Item = &'a Value> {
    v.get(key)
        .and_then(Value::as_array)
        .map(|a| a.as_slice())
        .unwrap_or(&[])
        .iter()
}

/// The legacy `Thermal` resource: fans' health always; temperatures and fan
/// speeds only when `numeric` (a chassis without `Sensors`).
pub fn legacy_thermal(
    ctx: &Ctx<'_>,
    chassis: &str,
    thermal: &Value,
    numeric: bool,
) -> Vec<Reading> {
    let mut out = Vec::new();
    if numeric {
        for t in members(thermal, "Temperatures") {
            let (Some(health), Some(id)) = (status_state(t, false), id_of(t)) else {
                continue;
            };
            let name = str_of(t, "Name").unwrap_or(id);
            let q = if str_of(t, "PhysicalContext") == Some("Intake") {
                quantity::INLET_TEMPERATURE_CELSIUS
            } else {
                quantity::TEMPERATURE_CELSIUS
            };
            let raw = num(t, "ReadingCelsius");
            let state = raw.map_or(ReadingState::Unknown, |r| {
                worse(health, legacy_threshold_state(t, r))
            });
            out.push(ctx.reading(name, q, raw, state, &[("chassis", chassis)]));
        }
    }
    for f in members(thermal, "Fans") {
        let (Some(health), Some(id)) = (status_state(f, false), id_of(f)) else {
            continue;
        };
        let name = str_of(f, "Name")
            .or_else(|| str_of(f, "FanName"))
            .unwrap_or(id);
        let labels = [("chassis", chassis), ("fan", name)];
        let ok = match health {
            ReadingState::Critical => flag(false),
            ReadingState::Unknown => None,
            _ => flag(true),
        };
        out.push(ctx.reading("fan", q::FAN_OK, ok, health, &labels));
        if numeric && let Some(raw) = num(f, "Reading") {
            let state = worse(health, legacy_threshold_state(f, raw));
            let (q, value) = match str_of(f, "ReadingUnits") {
                Some("Percent") => (q::FAN_SPEED_RATIO, raw / 100.0),
                _ => (quantity::FAN_SPEED_RPM, raw),
            };
            out.push(ctx.reading("fan_speed", q, Some(value), state, &labels));
        }
    }
    out
}

/// The legacy `Power` resource: supplies' `psu_ok` always; voltages and
/// consumed power only when `numeric`.
pub fn legacy_power(ctx: &Ctx<'_>, chassis: &str, power: &Value, numeric: bool) -> Vec<Reading> {
    let mut out: Vec<Reading> = members(power, "PowerSupplies")
        .filter_map(|p| power_supply(ctx, chassis, p))
        .collect();
    if numeric {
        for v in members(power, "Voltages") {
            let (Some(health), Some(id)) = (status_state(v, false), id_of(v)) else {
                continue;
            };
            let name = str_of(v, "Name").unwrap_or(id);
            let raw = num(v, "ReadingVolts");
            let state = raw.map_or(ReadingState::Unknown, |r| {
                worse(health, legacy_threshold_state(v, r))
            });
            out.push(ctx.reading(
                name,
                quantity::VOLTAGE_VOLTS,
                raw,
                state,
                &[("chassis", chassis)],
            ));
        }
        for c in members(power, "PowerControl") {
            let (Some(health), Some(id)) = (status_state(c, false), id_of(c)) else {
                continue;
            };
            let name = str_of(c, "Name").unwrap_or(id);
            if let Some(w) = num(c, "PowerConsumedWatts") {
                out.push(ctx.reading(
                    name,
                    quantity::POWER_WATTS,
                    Some(w),
                    health,
                    &[("chassis", chassis)],
                ));
            }
        }
    }
    out
}

/// A unit's health rollup (`ComputerSystem`, `PowerDistribution`, a CDU):
/// `health_ok` named `kind`, labelled `label_key = Id`.
pub fn health(ctx: &Ctx<'_>, kind: &str, label_key: &str, resource: &Value) -> Option<Reading> {
    let state = status_state(resource, true)?;
    let id = id_of(resource)?;
    let value = match state {
        ReadingState::Critical => flag(false),
        ReadingState::Unknown => None,
        _ => flag(true),
    };
    Some(ctx.reading(kind, q::HEALTH_OK, value, state, &[(label_key, id)]))
}

const CURRENT_PHASES: [(&str, &str); 4] = [
    ("Line1", "L1"),
    ("Line2", "L2"),
    ("Line3", "L3"),
    ("Neutral", "N"),
];
const VOLTAGE_PHASES: [(&str, &str); 6] = [
    ("Line1ToNeutral", "L1-N"),
    ("Line2ToNeutral", "L2-N"),
    ("Line3ToNeutral", "L3-N"),
    ("Line1ToLine2", "L1-L2"),
    ("Line2ToLine3", "L2-L3"),
    ("Line3ToLine1", "L3-L1"),
];

/// The electrical readings shared by a `Circuit` and an `Outlet`: current and
/// voltage per phase (or the single value), power, energy, frequency.
fn electrical(
    ctx: &Ctx<'_>,
    prefix: &str,
    v: &Value,
    state: ReadingState,
    labels: &[(&str, &str)],
) -> Vec<Reading> {
    let mut out = Vec::new();
    fn with_phase<'l>(labels: &[(&'l str, &'l str)], phase: &'l str) -> Vec<(&'l str, &'l str)> {
        let mut l = labels.to_vec();
        l.push(("phase", phase));
        l
    }
    let mut phased = |key: &str, single: &str, what: &str, q: &str, phases: &[(&str, &str)]| {
        let name = format!("{prefix}_{what}");
        let poly = v.get(key);
        let mut any = false;
        for (k, phase) in phases {
            if let Some(x) = poly.and_then(|p| excerpt(p, k)) {
                out.push(ctx.reading(&name, q, Some(x), state, &with_phase(labels, phase)));
                any = true;
            }
        }
        if !any && let Some(x) = excerpt(v, single) {
            out.push(ctx.reading(&name, q, Some(x), state, labels));
        }
    };
    phased(
        "PolyPhaseCurrentAmps",
        "CurrentAmps",
        "current",
        quantity::CURRENT_AMPERES,
        &CURRENT_PHASES,
    );
    phased(
        "PolyPhaseVoltage",
        "Voltage",
        "voltage",
        quantity::VOLTAGE_VOLTS,
        &VOLTAGE_PHASES,
    );
    for (key, what, q, scale) in [
        ("PowerWatts", "power", quantity::POWER_WATTS, 1.0),
        ("EnergykWh", "energy", q::ENERGY_JOULES, 3.6e6),
        ("FrequencyHz", "frequency", quantity::FREQUENCY_HERTZ, 1.0),
    ] {
        if let Some(x) = excerpt(v, key) {
            out.push(ctx.reading(
                &format!("{prefix}_{what}"),
                q,
                Some(x * scale),
                state,
                labels,
            ));
        }
    }
    out
}

fn max_voltage(v: &Value) -> Option<f64> {
    let poly = v.get("PolyPhaseVoltage");
    VOLTAGE_PHASES
        .iter()
        .filter_map(|(k, _)| poly.and_then(|p| excerpt(p, k)))
        .chain(excerpt(v, "Voltage"))
        .reduce(f64::max)
}

/// A feed is lost below this voltage (as the snmp PDU profiles read it).
pub const FEED_LOST_BELOW_VOLTS: f64 = 80.0;

/// A PDU's `Circuit` (`Mains`, `Branches`, `Feeds`, `Subfeeds`): `kind` is
/// `mains`, `branch`, `feed` or `subfeed`.
pub fn circuit(ctx: &Ctx<'_>, pdu: &str, kind: &str, circuit: &Value) -> Vec<Reading> {
    let (Some(state), Some(id)) = (status_state(circuit, false), id_of(circuit)) else {
        return Vec::new();
    };
    let labels = [("pdu", pdu), ("circuit", id)];
    let mut out = electrical(ctx, kind, circuit, state, &labels);
    if let Some(breaker) = str_of(circuit, "BreakerState") {
        let (value, s) = match breaker {
            "Normal" => (flag(true), ReadingState::Ok),
            "Tripped" => (flag(false), ReadingState::Critical),
            "Off" => (flag(false), ReadingState::Warning),
            _ => (None, ReadingState::Unknown),
        };
        out.push(ctx.reading(&format!("{kind}_breaker"), q::BREAKER_OK, value, s, &labels));
    }
    if kind == "mains"
        && let Some(volts) = max_voltage(circuit)
    {
        let on = volts >= FEED_LOST_BELOW_VOLTS;
        let s = if on {
            ReadingState::Ok
        } else {
            ReadingState::Critical
        };
        out.push(ctx.reading(
            "mains_feed",
            quantity::POWER_FEED_AVAILABLE,
            flag(on),
            s,
            &labels,
        ));
    }
    out
}

/// A PDU's `Outlet`: its electrical readings and whether it is switched on.
pub fn outlet(ctx: &Ctx<'_>, pdu: &str, outlet: &Value) -> Vec<Reading> {
    let (Some(state), Some(id)) = (status_state(outlet, false), id_of(outlet)) else {
        return Vec::new();
    };
    let labels = [("pdu", pdu), ("outlet", id)];
    let mut out = electrical(ctx, "outlet", outlet, state, &labels);
    match str_of(outlet, "PowerState") {
        Some("On") => out.push(ctx.reading(
            "outlet_state",
            q::OUTLET_POWER_ON,
            flag(true),
            state,
            &labels,
        )),
        Some("Off") => out.push(ctx.reading(
            "outlet_state",
            q::OUTLET_POWER_ON,
            flag(false),
            state,
            &labels,
        )),
        _ => {}
    }
    out
}

/// A CDU's `Pump`: `pump_ok` and its speed.
pub fn pump(ctx: &Ctx<'_>, cdu: &str, pump: &Value) -> Vec<Reading> {
    let (Some(state), Some(id)) = (status_state(pump, false), id_of(pump)) else {
        return Vec::new();
    };
    let labels = [("cdu", cdu), ("pump", id)];
    let ok = match state {
        ReadingState::Critical => flag(false),
        ReadingState::Unknown => None,
        _ => flag(true),
    };
    let mut out = vec![ctx.reading("pump", q::PUMP_OK, ok, state, &labels)];
    if let Some(pct) = excerpt(pump, "PumpSpeedPercent") {
        out.push(ctx.reading(
            "pump_speed",
            q::PUMP_SPEED_RATIO,
            Some(pct / 100.0),
            state,
            &labels,
        ));
    }
    out
}

/// A CDU's coolant connector: supply and return temperature and flow.
pub fn coolant_connector(ctx: &Ctx<'_>, cdu: &str, side: &str, connector: &Value) -> Vec<Reading> {
    let (Some(state), Some(id)) = (status_state(connector, false), id_of(connector)) else {
        return Vec::new();
    };
    let labels = [("cdu", cdu), ("connector", id)];
    [
        (
            "supply_temperature",
            "SupplyTemperatureCelsius",
            quantity::TEMPERATURE_CELSIUS,
            1.0,
        ),
        (
            "return_temperature",
            "ReturnTemperatureCelsius",
            quantity::TEMPERATURE_CELSIUS,
            1.0,
        ),
        (
            "flow",
            "FlowLitersPerMinute",
            q::LIQUID_FLOW_LITERS_PER_MINUTE,
            1.0,
        ),
        (
            "supply_pressure",
            "SupplyPressurekPa",
            q::PRESSURE_PASCALS,
            1000.0,
        ),
        (
            "return_pressure",
            "ReturnPressurekPa",
            q::PRESSURE_PASCALS,
            1000.0,
        ),
    ]
    .into_iter()
    .filter_map(|(what, key, q, scale)| {
        excerpt(connector, key).map(|x| {
            ctx.reading(
                &format!("{side}_coolant_{what}"),
                q,
                Some(x * scale),
                state,
                &labels,
            )
        })
    })
    .collect()
}

/// A `LeakDetector`: `water_leak` 1 when its `DetectorState` is not `OK`.
pub fn leak_detector(ctx: &Ctx<'_>, owner: (&str, &str), detector: &Value) -> Option<Reading> {
    status_state(detector, false)?;
    let id = id_of(detector)?;
    let (value, state) = match str_of(detector, "DetectorState") {
        Some("OK") => (flag(false), ReadingState::Ok),
        Some("Warning") => (flag(true), ReadingState::Warning),
        Some("Critical") => (flag(true), ReadingState::Critical),
        _ => (None, ReadingState::Unknown),
    };
    Some(ctx.reading(
        "leak_detector",
        quantity::WATER_LEAK,
        value,
        state,
        &[owner, ("detector", id)],
    ))
}

/// The detector excerpts of a `LeakDetection`'s `LeakDetectorGroups`
/// (`DetectorState` and the detector's link), for a service that links no
/// `LeakDetectors` collection.
pub fn leak_detector_groups(ctx: &Ctx<'_>, owner: (&str, &str), detection: &Value) -> Vec<Reading> {
    let mut out = Vec::new();
    for group in members(detection, "LeakDetectorGroups") {
        for d in members(group, "Detectors") {
            let id = str_of(d, "DataSourceUri")
                .and_then(|u| u.trim_end_matches('/').rsplit('/').next())
                .or_else(|| str_of(d, "DeviceName"))
                .filter(|s| !s.is_empty());
            let Some(id) = id else { continue };
            let mut as_detector = serde_json::Map::new();
            as_detector.insert("Id".into(), Value::String(id.to_owned()));
            if let Some(state) = d.get("DetectorState") {
                as_detector.insert("DetectorState".into(), state.clone());
            }
            out.extend(leak_detector(ctx, owner, &Value::Object(as_detector)));
        }
    }
    out
}

/// The excerpt properties the PDU, outlet and coolant mappings read.
const MAPPED_EXCERPTS: &[&str] = &[
    "CurrentAmps",
    "Voltage",
    "PowerWatts",
    "EnergykWh",
    "FrequencyHz",
    "SupplyTemperatureCelsius",
    "ReturnTemperatureCelsius",
    "FlowLitersPerMinute",
    "SupplyPressurekPa",
    "ReturnPressurekPa",
];

/// The sensors behind the excerpts a PDU circuit, an outlet or a coolant
/// connector reading was made from (their `DataSourceUri`): the same
/// physical quantity a chassis' `Sensors` list again, read once (as the
/// circuit's or connector's reading, which says which circuit it is).
pub fn excerpt_sources(v: &Value, out: &mut std::collections::HashSet<String>) {
    let mut take = |e: &Value| {
        if num(e, "Reading").is_some()
            && let Some(u) = str_of(e, "DataSourceUri")
        {
            out.insert(u.trim_end_matches('/').to_owned());
        }
    };
    for key in MAPPED_EXCERPTS {
        if let Some(e) = v.get(*key) {
            take(e);
        }
    }
    for (key, phases) in [
        ("PolyPhaseCurrentAmps", &CURRENT_PHASES[..]),
        ("PolyPhaseVoltage", &VOLTAGE_PHASES[..]),
    ] {
        if let Some(poly) = v.get(key) {
            for (k, _) in phases {
                if let Some(e) = poly.get(*k) {
                    take(e);
                }
            }
        }
    }
}

/// The detectors a `LeakDetection`'s groups name (`DataSourceUri`): a
/// chassis' `LeakDetectors` listing them again are the same detectors.
pub fn detector_sources(detection: &Value, out: &mut std::collections::HashSet<String>) {
    for group in members(detection, "LeakDetectorGroups") {
        for d in members(group, "Detectors") {
            if let Some(u) = str_of(d, "DataSourceUri") {
                out.insert(u.trim_end_matches('/').to_owned());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use serde_json::json;

    fn ctx(labels: &BTreeMap<String, String>) -> Ctx<'_> {
        Ctx {
            src: "redfish",
            dev: "bmc",
            labels,
        }
    }

    #[test]
    fn an_intake_sensor_is_the_inlet_temperature_and_its_thresholds_raise_its_state() {
        let l = BTreeMap::new();
        let s = json!({"Id": "Intake", "ReadingUnits": "Cel", "PhysicalContext": "Intake",
            "Reading": 46.0, "Status": {"State": "Enabled", "Health": "OK"},
            "Thresholds": {"UpperCaution": {"Reading": 40}, "UpperCritical": {"Reading": 45}}});
        let r = sensor(&ctx(&l), "1U", &s).unwrap();
        assert_eq!(r.q, quantity::INLET_TEMPERATURE_CELSIUS);
        assert_eq!(r.value, Some(46.0));
        assert_eq!(r.state, ReadingState::Critical);
        assert_eq!(r.labels.get("chassis").map(String::as_str), Some("1U"));
    }

    #[test]
    fn an_absent_or_disabled_resource_gives_no_reading_never_a_zero() {
        let l = BTreeMap::new();
        for state in ["Absent", "Disabled"] {
            let s = json!({"Id": "PS2", "ReadingType": "Power", "Status": {"State": state}});
            assert!(sensor(&ctx(&l), "1U", &s).is_none());
            assert!(power_supply(&ctx(&l), "1U", &s).is_none());
        }
    }

    #[test]
    fn a_critical_power_supply_is_psu_ok_0_and_a_warning_one_stays_1() {
        let l = BTreeMap::new();
        let crit = json!({"Id": "Bay1", "Status": {"State": "Enabled", "Health": "Critical"}});
        let r = power_supply(&ctx(&l), "1U", &crit).unwrap();
        assert_eq!((r.value, r.state), (Some(0.0), ReadingState::Critical));
        let warn = json!({"Id": "Bay1", "Status": {"State": "Enabled", "Health": "Warning"}});
        let r = power_supply(&ctx(&l), "1U", &warn).unwrap();
        assert_eq!((r.value, r.state), (Some(1.0), ReadingState::Warning));
        let lost =
            json!({"Id": "Bay1", "LineInputStatus": "LossOfInput", "Status": {"Health": "OK"}});
        assert_eq!(
            power_supply(&ctx(&l), "1U", &lost).unwrap().value,
            Some(0.0)
        );
    }

    #[test]
    fn mistyped_properties_give_no_value_rather_than_a_panic() {
        let l = BTreeMap::new();
        let s = json!({"Id": 5, "Reading": "hot", "Status": "fine", "Thresholds": [1]});
        assert!(sensor(&ctx(&l), "c", &s).is_none());
        let s = json!({"Id": "T", "ReadingUnits": "Cel", "Reading": "hot", "Thresholds": 3});
        let r = sensor(&ctx(&l), "c", &s).unwrap();
        assert_eq!((r.value, r.state), (None, ReadingState::Unknown));
        assert!(circuit(&ctx(&l), "1", "mains", &json!([])).is_empty());
        assert!(outlet(&ctx(&l), "1", &json!(null)).is_empty());
    }
}
