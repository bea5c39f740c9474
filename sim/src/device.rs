//! One simulated device: a profile, its live register image, its fault, and
//! the answer to each Modbus request. No I/O here: the servers in
//! [`crate::serve`] call [`SimDevice::answer`].

use std::sync::{Arc, Mutex, MutexGuard};

use sitewatch_modbus_profile::{EncodeError, Profile, RegisterImage, SimValue, Table};
use thiserror::Error;
use tokio_modbus::{ExceptionCode, Request, Response};

use crate::fault::{Fault, scenario};

/// Why a control command failed.
#[derive(Debug, Error)]
pub enum ControlError {
    #[error(transparent)]
    Encode(#[from] EncodeError),
    #[error("unknown scenario `{0}`")]
    UnknownScenario(String),
    #[error("scenario `{scenario}` does not apply to a {class} profile")]
    NotApplicable {
        scenario: String,
        class: &'static str,
    },
}

impl ControlError {
    pub fn kind(&self) -> &'static str {
        match self {
            ControlError::Encode(e) => e.kind(),
            ControlError::UnknownScenario(_) => "unknown_scenario",
            ControlError::NotApplicable { .. } => "not_applicable",
        }
    }
}

#[derive(Debug)]
struct State {
    image: RegisterImage,
    fault: Fault,
}

/// A simulated device, shared by its Modbus server and its control interface.
#[derive(Debug, Clone)]
pub struct SimDevice {
    profile: Arc<Profile>,
    unit: u8,
    state: Arc<Mutex<State>>,
}

impl SimDevice {
    /// A healthy device answering as `unit`.
    pub fn new(profile: Profile, unit: u8) -> Result<SimDevice, EncodeError> {
        let image = profile.default_image()?;
        Ok(SimDevice {
            profile: Arc::new(profile),
            unit,
            state: Arc::new(Mutex::new(State {
                image,
                fault: Fault::None,
            })),
        })
    }

    pub fn profile(&self) -> &Profile {
        &self.profile
    }

    pub fn unit(&self) -> u8 {
        self.unit
    }

    // A poisoned lock only means a panic elsewhere mid-update; the image is
    // still a valid image, so keep serving it.
    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn fault(&self) -> Fault {
        self.state().fault
    }

    pub fn set_fault(&self, fault: Fault) {
        self.state().fault = fault;
    }

    /// A copy of the current image.
    pub fn image(&self) -> RegisterImage {
        self.state().image.clone()
    }

    /// Sets one point by name.
    pub fn set(&self, point: &str, value: &SimValue) -> Result<(), ControlError> {
        let mut state = self.state();
        self.profile.encode(point, value, &mut state.image)?;
        Ok(())
    }

    /// Applies a named scenario, or `healthy` (default image, no fault).
    /// Returns the points changed.
    pub fn apply(&self, name: &str) -> Result<Vec<String>, ControlError> {
        if name == "healthy" {
            let image = self.profile.default_image()?;
            let mut state = self.state();
            state.image = image;
            state.fault = Fault::None;
            return Ok(Vec::new());
        }
        let s = scenario(name).ok_or_else(|| ControlError::UnknownScenario(name.to_owned()))?;
        let mut changed = Vec::new();
        let mut state = self.state();
        for (q, value) in s.sets {
            for p in self
                .profile
                .points()
                .iter()
                .filter(|p| p.q.as_deref() == Some(*q))
            {
                self.profile
                    .encode(&p.name, &SimValue::Number(*value), &mut state.image)?;
                changed.push(p.name.clone());
            }
        }
        if changed.is_empty() {
            return Err(ControlError::NotApplicable {
                scenario: name.to_owned(),
                class: self.profile.device.class.as_str(),
            });
        }
        Ok(changed)
    }

    /// The answer to one request addressed to `unit`: `Ok(None)` means no
    /// answer at all (another unit on the bus, or a silent device).
    pub fn answer(
        &self,
        unit: u8,
        request: &Request<'_>,
    ) -> Result<Option<Response>, ExceptionCode> {
        // Unit 0 is broadcast; TCP gateways often ignore the unit id: answer
        // both, as most devices do.
        if unit != self.unit && unit != 0 && unit != 255 {
            return Ok(None);
        }
        let state = self.state();
        match state.fault {
            Fault::Silent => return Ok(None),
            Fault::Exception(code) => return Err(ExceptionCode::new(code)),
            Fault::None | Fault::Slow(_) => {}
        }
        let image = &state.image;
        let read = |table: Table, address: u16, count: u16| {
            // A device refuses a read that names no register it maps, or runs
            // past the address space: exception 2 (illegal data address).
            if count == 0 || u32::from(address) + u32::from(count) > 65536 {
                return Err(ExceptionCode::IllegalDataAddress);
            }
            if !image.maps_any(table, address, count) {
                return Err(ExceptionCode::IllegalDataAddress);
            }
            Ok(())
        };
        let response = match *request {
            Request::ReadCoils(a, n) => {
                read(Table::Coil, a, n)?;
                Response::ReadCoils(image.bits_or_zero(Table::Coil, a, n))
            }
            Request::ReadDiscreteInputs(a, n) => {
                read(Table::Discrete, a, n)?;
                Response::ReadDiscreteInputs(image.bits_or_zero(Table::Discrete, a, n))
            }
            Request::ReadHoldingRegisters(a, n) => {
                read(Table::Holding, a, n)?;
                Response::ReadHoldingRegisters(image.words_or_zero(Table::Holding, a, n))
            }
            Request::ReadInputRegisters(a, n) => {
                read(Table::Input, a, n)?;
                Response::ReadInputRegisters(image.words_or_zero(Table::Input, a, n))
            }
            _ => return Err(ExceptionCode::IllegalFunction),
        };
        Ok(Some(response))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sitewatch_modbus_profile::shipped;

    fn probe(unit: u8) -> SimDevice {
        SimDevice::new(shipped::load("generic-xy-md02").unwrap().unwrap(), unit).unwrap()
    }

    #[test]
    fn answers_its_unit_and_broadcast_only() {
        let d = probe(7);
        let req = Request::ReadInputRegisters(1, 2);
        assert_eq!(
            d.answer(7, &req),
            Ok(Some(Response::ReadInputRegisters(vec![225, 450])))
        );
        assert_eq!(d.answer(8, &req), Ok(None));
        assert!(d.answer(0, &req).unwrap().is_some());
    }

    #[test]
    fn refuses_unmapped_reads_and_writes() {
        let d = probe(1);
        assert_eq!(
            d.answer(1, &Request::ReadHoldingRegisters(1, 2)),
            Err(ExceptionCode::IllegalDataAddress)
        );
        assert_eq!(
            d.answer(1, &Request::ReadInputRegisters(65535, 2)),
            Err(ExceptionCode::IllegalDataAddress)
        );
        assert_eq!(
            d.answer(1, &Request::WriteSingleRegister(1, 5)),
            Err(ExceptionCode::IllegalFunction)
        );
        // Unmapped registers inside a read that touches a mapped one read 0.
        assert_eq!(
            d.answer(1, &Request::ReadInputRegisters(0, 4)),
            Ok(Some(Response::ReadInputRegisters(vec![0, 225, 450, 0])))
        );
    }

    #[test]
    fn faults_change_the_answer_and_healthy_clears_them() {
        let d = probe(1);
        let req = Request::ReadInputRegisters(1, 1);
        d.set_fault(Fault::Exception(4));
        assert_eq!(d.answer(1, &req), Err(ExceptionCode::ServerDeviceFailure));
        d.set_fault(Fault::Silent);
        assert_eq!(d.answer(1, &req), Ok(None));
        d.set(
            "temperature",
            &sitewatch_modbus_profile::SimValue::Number(-5.5),
        )
        .unwrap();
        d.apply("healthy").unwrap();
        assert_eq!(d.fault(), Fault::None);
        assert_eq!(
            d.answer(1, &req),
            Ok(Some(Response::ReadInputRegisters(vec![225])))
        );
    }

    #[test]
    fn scenarios_that_do_not_apply_are_refused() {
        let err = probe(1).apply("mains_lost").unwrap_err();
        assert_eq!(err.kind(), "not_applicable");
        assert_eq!(
            probe(1).apply("meteor").unwrap_err().kind(),
            "unknown_scenario"
        );
    }
}
