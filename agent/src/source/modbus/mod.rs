//! The `modbus` source: UPS, generator, cooling and environment devices over
//! Modbus TCP, RTU and RTU over TCP, each read through its profile
//! (`sitewatch-modbus-profile`).
//!
//! Devices sharing an address (a serial port, or one RTU/TCP gateway) share one
//! [`bus::Bus`]: one request outstanding, units polled in turn. Buses run in
//! parallel. Every request runs under its device's timeout; a Modbus exception
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
use config::ModbusSourceConfig;

/// The source's name and its readings' `src`.
pub const NAME: &str = "modbus";

#[derive(Debug)]
pub struct ModbusSource {
    buses: Vec<bus::Bus>,
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
    pub fn new(config: &ModbusSourceConfig) -> Result<Self, SourceError> {
        let mut buses: Vec<bus::Bus> = Vec::new();
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
            let device = device::Device::new(
                d.name.clone(),
                unit,
                profile,
                d.interval.unwrap_or(config.interval),
                d.timeout,
            )
            .with_quantities(d.quantities.clone());
            match buses.iter_mut().find(|b| b.address == d.address) {
                Some(bus) => bus.devices.push(device),
                None => buses.push(bus::Bus::new(d.address.clone(), vec![device])),
            }
        }
        Ok(ModbusSource { buses })
    }
}

impl Poll for ModbusSource {
    fn name(&self) -> &'static str {
        NAME
    }

    async fn poll(&mut self) -> Result<Polled, SourceError> {
        let per_bus = futures_util::future::join_all(self.buses.iter_mut().map(|b| b.poll())).await;
        Ok(per_bus.into_iter().flatten().collect::<Vec<_>>().into())
    }
}
