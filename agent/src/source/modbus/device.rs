//! One configured Modbus unit: its profile, its read plan and its exception
//! count, read through its bus by the shared device layer
//! ([`crate::device`]). Turning what was read into readings is pure.

use std::{collections::BTreeMap, sync::Arc, time::Duration};

use sitewatch_modbus_profile::{Plan, Profile, RegisterImage};
use sitewatch_protocol::Reading;

use super::bus::SharedBus;
use crate::{
    device::{self, DeviceError, Read},
    selfmetrics,
    source::Polled,
};

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

impl Outcome {
    /// The device layer's error for a read that did not complete.
    fn error(self, timeout: Duration) -> Option<DeviceError> {
        match self {
            Outcome::Read => None,
            Outcome::Timeout => Some(DeviceError::new(
                device::TIMEOUT,
                format!(
                    "a request got no answer within {}",
                    humantime::format_duration(timeout)
                ),
            )),
            Outcome::Transport => Some(DeviceError::new(
                "transport",
                "the link failed (refused, reset, gone or a garbled frame)",
            )),
            Outcome::Backoff => Some(DeviceError::new(
                "backoff",
                "the bus is waiting out its reconnect backoff",
            )),
        }
    }
}

/// A Modbus unit as the source knows it.
#[derive(Debug)]
pub struct Device {
    pub name: String,
    pub unit: u8,
    pub profile: Arc<Profile>,
    pub plan: Plan,
    /// Each request's timeout.
    pub timeout: Duration,
    /// Point name -> quantity, overriding the profile's (config `quantities`).
    quantities: BTreeMap<String, String>,
    exceptions: u64,
    bus: Option<SharedBus>,
}

impl Device {
    pub fn new(name: String, unit: u8, profile: Arc<Profile>, timeout: Duration) -> Self {
        let plan = Plan::new(&profile);
        Device {
            name,
            unit,
            profile,
            plan,
            timeout,
            quantities: BTreeMap::new(),
            exceptions: 0,
            bus: None,
        }
    }

    pub fn with_quantities(mut self, quantities: BTreeMap<String, String>) -> Self {
        self.quantities = quantities;
        self
    }

    /// The bus the unit is reached through.
    pub fn on(mut self, bus: SharedBus) -> Self {
        self.bus = Some(bus);
        self
    }

    pub fn exception(&mut self) {
        self.exceptions += 1;
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
}

impl device::Device for Device {
    async fn read(&mut self) -> Read {
        let mut image = RegisterImage::new();
        let outcome = match self.bus.clone() {
            Some(bus) => bus.lock().await.read_device(self, &mut image).await,
            None => Outcome::Transport,
        };
        if outcome != Outcome::Read {
            tracing::debug!(device = %self.name, ?outcome, "modbus read incomplete");
        }
        let polled = Polled::from(self.readings(&image));
        match outcome.error(self.timeout) {
            None => Read::ok(polled),
            Some(e) => Read::failed(polled, e),
        }
    }

    fn unread(&self, _: &DeviceError) -> Polled {
        self.readings(&RegisterImage::new()).into()
    }

    fn counters(&self) -> Vec<(&'static str, f64)> {
        vec![(selfmetrics::q::MODBUS_EXCEPTIONS, self.exceptions as f64)]
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
            Duration::from_secs(1),
        )
        .with_quantities(quantities);
        let q_of = |readings: &[Reading], name: &str| {
            readings.iter().find(|r| r.name == name).unwrap().q.clone()
        };
        let readings = cold.readings(&image);
        assert_eq!(q_of(&readings, "temperature"), "inlet_temperature_celsius");
        assert_eq!(q_of(&readings, "relative_humidity"), "humidity_ratio");
        let hot = Device::new("probe-hot-aisle".into(), 1, profile, Duration::from_secs(1));
        assert_eq!(
            q_of(&hot.readings(&image), "temperature"),
            "temperature_celsius"
        );
    }
}
