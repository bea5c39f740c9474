//! The `modbus` source: UPS, generator, cooling and environment devices over
//! Modbus TCP, RTU and RTU over TCP, each read through its profile
//! (`sitewatch-modbus-profile`).
//!
//! Each unit is a device of the shared device layer ([`crate::device`]): its
//! own task, interval, timeout, backoff and health readings. Units sharing an
//! address (a serial port, or one RTU/TCP gateway) share one [`bus::Bus`]:
//! one request outstanding, units taking turns. Buses run in parallel. Every request runs under its device's timeout; a Modbus exception
//! leaves that block's readings unknown (and exception 2 splits the block for
//! good); a timeout or transport error leaves the device's readings unknown
//! and reopens the link, after a backoff for transport errors.
//!
//! - [`transport`]: opening links; draining a serial line.
//! - [`bus`]: one link and its units.
//! - [`device`]: one unit: profile, plan, due time, counters, readings.

pub mod bus;
pub mod config;
pub mod device;
pub mod transport;

use std::{path::Path, sync::Arc};

use sitewatch_modbus_profile::{Profile, shipped};

use super::{Poll, Polled, SourceError};
use crate::device::{Fleet, Settings};
use config::ModbusSourceConfig;

/// The source's name and its readings' `src`.
pub const NAME: &str = "modbus";

#[derive(Debug)]
pub struct ModbusSource {
    units: Fleet,
}

/// Loads a profile by shipped name or file path.
pub fn load_profile(name: &str) -> Result<Profile, SourceError> {
    let fail = |message: String| SourceError::Read {
        what: "modbus profile",
        message,
    };
    if let Some(loaded) = shipped::load(name) {
        return loaded.map_err(|e| fail(e.to_string()));
    }
    let text = std::fs::read_to_string(Path::new(name)).map_err(|e| {
        fail(format!(
            "{name}: not a shipped profile, and cannot read it as a file: {e}"
        ))
    })?;
    Profile::from_toml(&text, name).map_err(|e| fail(e.to_string()))
}

impl ModbusSource {
    /// Builds the units and starts their tasks (within a tokio runtime).
    pub fn new(config: &ModbusSourceConfig) -> Result<Self, SourceError> {
        let mut buses: Vec<(config::ModbusAddress, bus::SharedBus)> = Vec::new();
        let mut units = Fleet::new(NAME);
        for d in &config.devices {
            let profile = Arc::new(load_profile(&d.profile)?);
            let unit = d.unit.or(profile.device.default_unit).unwrap_or(1);
            if let Some(point) = d
                .quantities
                .keys()
                .find(|p| !profile.points().iter().any(|x| &x.name == *p))
            {
                return Err(SourceError::Read {
                    what: "modbus profile",
                    message: format!(
                        "device `{}`: `quantities` names `{point}`, which profile `{}` does not have",
                        d.name, d.profile
                    ),
                });
            }
            let bus = match buses.iter().find(|(address, _)| *address == d.address) {
                Some((_, bus)) => Arc::clone(bus),
                None => {
                    let bus = Arc::new(tokio::sync::Mutex::new(bus::Bus::new(d.address.clone())));
                    buses.push((d.address.clone(), Arc::clone(&bus)));
                    bus
                }
            };
            let device = device::Device::new(d.name.clone(), unit, profile, d.timeout)
                .with_quantities(d.quantities.clone())
                .on(bus);
            let settings = Settings {
                interval: Some(d.interval.unwrap_or(config.interval)),
                // The scheduler's limit is the whole poll's: leave it room
                // for the units' health readings.
                timeout: config.timeout.mul_f64(0.9),
                backoff_max: Some(BACKOFF_MAX),
            };
            units.add(d.name.clone(), device, settings);
        }
        Ok(ModbusSource { units })
    }
}

/// The longest a dead unit goes unread (its points reported unknown meanwhile).
const BACKOFF_MAX: std::time::Duration = std::time::Duration::from_secs(60);

impl Poll for ModbusSource {
    fn name(&self) -> &'static str {
        NAME
    }

    async fn poll(&mut self) -> Result<Polled, SourceError> {
        Ok(self.units.poll().await.0)
    }
}

impl super::Build for ModbusSource {
    type Config = ModbusSourceConfig;

    fn build(config: &Self::Config) -> Result<Self, SourceError> {
        ModbusSource::new(config)
    }
}
