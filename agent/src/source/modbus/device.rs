//! One configured Modbus unit: its profile, its read plan, when it is due,
//! and its own counters. Turning what was read into readings is pure.

use std::{collections::BTreeMap, sync::Arc, time::Duration};

use sitewatch_modbus_profile::{Plan, Profile, RegisterImage};
use sitewatch_protocol::{Reading, ReadingState};
use tokio::time::Instant;

use crate::selfmetrics;

/// Quantities of the per-device self-metrics beyond the agent's shared ones.
pub mod q {
    /// Requests answered with a Modbus exception since start.
    pub const MODBUS_EXCEPTIONS: &str = "modbus_exceptions";
}

/// How one read of a device ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Every request answered (some perhaps with an exception).
    Read,
    /// A request got no answer in time.
    Timeout,
    /// The link failed (refused, reset, serial port gone, garbled frame).
    Transport,
    /// The bus is waiting out its reconnect backoff.
    Backoff,
}

#[derive(Debug, Clone, Default)]
struct Stats {
    polls: u64,
    errors: u64,
    timeouts: u64,
    exceptions: u64,
    last_duration: Duration,
    last_success: bool,
}

/// A Modbus unit as the source knows it.
#[derive(Debug)]
pub struct Device {
    pub name: String,
    pub unit: u8,
    pub profile: Arc<Profile>,
    pub plan: Plan,
    pub interval: Duration,
    pub timeout: Duration,
    /// Point name -> quantity, overriding the profile's (config `quantities`).
    quantities: BTreeMap<String, String>,
    next_due: Option<Instant>,
    stats: Stats,
}

impl Device {
    pub fn new(
        name: String,
        unit: u8,
        profile: Arc<Profile>,
        interval: Duration,
        timeout: Duration,
    ) -> Self {
        let plan = Plan::new(&profile);
        Device {
            name,
            unit,
            profile,
            plan,
            interval,
            timeout,
            quantities: BTreeMap::new(),
            next_due: None,
            stats: Stats::default(),
        }
    }

    pub fn with_quantities(mut self, quantities: BTreeMap<String, String>) -> Self {
        self.quantities = quantities;
        self
    }

    /// Whether the device's own interval has come round. A little slack keeps a
    /// device on the source's tick from skipping every other one by jitter.
    pub fn is_due(&self, now: Instant) -> bool {
        self.next_due
            .is_none_or(|due| now + Duration::from_millis(50) >= due)
    }

    pub fn exception(&mut self) {
        self.stats.exceptions += 1;
    }

    /// Records a read that started at `started`.
    pub fn record(&mut self, started: Instant, outcome: Outcome) {
        self.next_due = Some(started + self.interval);
        let s = &mut self.stats;
        s.polls += 1;
        s.last_duration = started.elapsed();
        s.last_success = outcome == Outcome::Read;
        match outcome {
            Outcome::Read => {}
            Outcome::Timeout => s.timeouts += 1,
            Outcome::Transport | Outcome::Backoff => s.errors += 1,
        }
    }

    /// The device's readings from what was read: points whose registers are
    /// missing (exception, timeout, no link) come out null with state unknown.
    pub fn readings(&self, image: &RegisterImage) -> Vec<Reading> {
        let mut readings = self.profile.decode(image).readings(&self.name);
        for r in &mut readings {
            if let Some(q) = self.quantities.get(&r.name) {
                r.q.clone_from(q);
            }
        }
        readings
    }

    /// Per-device self-metrics: `src = "agent"`, `dev = "modbus/<name>"`.
    pub fn stats_readings(&self) -> Vec<Reading> {
        let dev = format!("modbus/{}", self.name);
        let s = &self.stats;
        let r = |q: &str, v: f64| {
            Reading::new(
                selfmetrics::SRC,
                dev.clone(),
                q,
                q,
                Some(v),
                ReadingState::Ok,
            )
        };
        let success = Reading::new(
            selfmetrics::SRC,
            dev.clone(),
            selfmetrics::q::POLL_SUCCESS,
            selfmetrics::q::POLL_SUCCESS,
            Some(f64::from(u8::from(s.last_success))),
            if s.last_success {
                ReadingState::Ok
            } else {
                ReadingState::Warning
            },
        );
        vec![
            success,
            r(
                selfmetrics::q::POLL_DURATION_SECONDS,
                s.last_duration.as_secs_f64(),
            ),
            r(selfmetrics::q::POLLS, s.polls as f64),
            r(selfmetrics::q::POLL_ERRORS, s.errors as f64),
            r(selfmetrics::q::POLL_TIMEOUTS, s.timeouts as f64),
            r(q::MODBUS_EXCEPTIONS, s.exceptions as f64),
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sitewatch_modbus_profile::shipped;

    #[test]
    fn configured_quantities_override_the_profile_by_point_name() {
        let profile = Arc::new(shipped::load("generic-xy-md02").unwrap().unwrap());
        let image = profile.default_image().unwrap();
        let quantities = [("temperature".into(), "inlet_temperature_celsius".into())].into();
        let cold = Device::new(
            "probe-cold-aisle".into(),
            1,
            Arc::clone(&profile),
            Duration::from_secs(5),
            Duration::from_secs(1),
        )
        .with_quantities(quantities);
        let q_of = |readings: &[Reading], name: &str| {
            readings.iter().find(|r| r.name == name).unwrap().q.clone()
        };
        let readings = cold.readings(&image);
        assert_eq!(q_of(&readings, "temperature"), "inlet_temperature_celsius");
        assert_eq!(q_of(&readings, "relative_humidity"), "humidity_ratio");
        let hot = Device::new(
            "probe-hot-aisle".into(),
            1,
            profile,
            Duration::from_secs(5),
            Duration::from_secs(1),
        );
        assert_eq!(
            q_of(&hot.readings(&image), "temperature"),
            "temperature_celsius"
        );
    }
}
