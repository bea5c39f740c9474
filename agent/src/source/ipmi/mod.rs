//! The `ipmi` source: BMC sensors, SEL events, chassis status and DCMI power,
//! from remote BMCs over RMCP+ (IPMI 2.0 "lanplus", cipher suite 3) and from
//! this machine's own BMC through `/dev/ipmi0`.
//!
//! # Layout
//!
//! - [`commands`]: the IPMI requests and response parsers (pure).
//! - [`transport`]: the [`transport::Link`] to a BMC through ipmi-rs, and its errors.
//! - [`sdr`]: the SDR repository read in 16-byte chunks, its cache, record parsing.
//! - [`linear`]: raw bytes -> numbers with the SDR's M, B and exponents.
//! - [`sensor`]: sensor readings -> protocol readings (quantity, state).
//! - [`sel`]: new SEL entries -> events, once each, with a persisted cursor.
//! - [`chassis`]: chassis status bits and the DCMI power reading.
//! - [`worker`]: one thread per BMC running its sweeps.
//!
//! Each BMC is a device of the shared device layer ([`crate::device`]): its
//! own task (around its worker thread), timeout and health readings.
//! A BMC that does not answer is a fact (`bmc_up 0`, state warning, with the
//! error kind as a label), not a failed poll: the poll fails only when no BMC
//! could be swept and a cause other than unreachability (credentials, protocol)
//! is involved.

pub mod chassis;
pub mod commands;
pub mod config;
pub mod linear;
pub mod sdr;
pub mod sel;
pub mod sensor;
pub mod transport;
pub mod worker;

use std::time::Duration;

use sitewatch_protocol::{Reading, ReadingState};

use super::{Poll, Polled, SourceError};
use crate::device::{Device, DeviceError, Fleet, Read, Settings};
use config::{IpmiSourceConfig, parse_bmc_address};
use worker::{Bmc, BmcSweep, Refused, Target, Worker};

/// The source's name and its readings' `src`.
pub const NAME: &str = "ipmi";

/// The `dev` of the in-band BMC.
pub const LOCAL_DEV: &str = "local";

/// The `ipmi` source: one worker thread per BMC, each a device of the shared
/// device layer.
#[derive(Debug)]
pub struct IpmiSource {
    bmcs: Fleet,
}

/// One BMC for the device layer: its worker thread and the time a sweep gets.
#[derive(Debug)]
struct BmcDevice {
    name: String,
    worker: Worker,
    /// How long a sweep may work: the poll's share minus one command, so that
    /// the worker stops before the layer stops waiting.
    work_budget: Duration,
}

impl Device for BmcDevice {
    async fn read(&mut self) -> Read {
        let deadline = std::time::Instant::now() + self.work_budget;
        let failed = |kind: &'static str, message: &str| {
            let e = DeviceError::new(kind, message);
            Read::failed(vec![IpmiSource::down(&self.name, kind)].into(), e)
        };
        let rx = match self.worker.start(deadline) {
            Ok(rx) => rx,
            Err(Refused::Busy) => return failed("busy", "still sweeping since an earlier poll"),
            Err(Refused::Gone) => return failed("crashed", "its worker thread is gone"),
        };
        let Ok(sweep) = rx.await else {
            return failed("crashed", "its worker dropped the sweep");
        };
        let BmcSweep {
            readings,
            events,
            error,
        } = sweep;
        let polled = Polled { readings, events };
        match error {
            None => Read::ok(polled),
            Some(e) => Read::failed(polled, DeviceError::new(e.kind(), e.to_string())),
        }
    }

    fn unread(&self, error: &DeviceError) -> Polled {
        vec![IpmiSource::down(&self.name, error.kind)].into()
    }
}

/// Error kinds that mean the BMC did not answer (a fact, reported as
/// `bmc_up 0`) rather than a configuration or protocol problem; the worker's
/// own `busy` and `crashed` included.
fn is_unreachable(kind: &str) -> bool {
    matches!(kind, "timeout" | "io" | "deadline" | "busy" | "crashed")
}

/// The first line of a password file.
fn read_password(bmc: &str, path: &std::path::Path) -> Result<Vec<u8>, SourceError> {
    let text = std::fs::read_to_string(path).map_err(|e| SourceError::Read {
        what: "ipmi password file",
        message: format!("BMC {bmc:?}: {}: {e}", path.display()),
    })?;
    let password = text.lines().next().unwrap_or("").as_bytes().to_vec();
    if password.len() > 20 {
        return Err(SourceError::Read {
            what: "ipmi password file",
            message: format!(
                "BMC {bmc:?}: {}: the password is longer than 20 bytes (the RMCP+ limit)",
                path.display()
            ),
        });
    }
    Ok(password)
}

impl IpmiSource {
    pub fn new(config: &IpmiSourceConfig) -> Result<IpmiSource, SourceError> {
        if let Some(dir) = &config.state_dir {
            std::fs::create_dir_all(dir).map_err(|e| SourceError::Read {
                what: "ipmi state_dir",
                message: format!("{}: {e}", dir.display()),
            })?;
        }
        let mut bmcs = Vec::new();
        if config.local {
            bmcs.push(Bmc::new(
                LOCAL_DEV,
                Target::Local,
                config.command_timeout,
                config.state_dir.clone(),
            ));
        }
        for b in &config.bmcs {
            let (host, port) =
                parse_bmc_address(&b.address).map_err(|message| SourceError::Read {
                    what: "ipmi bmc address",
                    message,
                })?;
            let target = Target::Lan {
                host,
                port,
                username: b.username.clone(),
                password: read_password(&b.name, &b.password_file)?,
            };
            bmcs.push(Bmc::new(
                &b.name,
                target,
                config.command_timeout,
                config.state_dir.clone(),
            ));
        }
        Self::from_bmcs(bmcs, config.timeout, config.command_timeout)
    }

    /// A source over prepared BMCs (tests use scripted links). Starts their
    /// tasks (within a tokio runtime).
    pub fn from_bmcs(
        bmcs: Vec<Bmc>,
        timeout: Duration,
        command_timeout: Duration,
    ) -> Result<IpmiSource, SourceError> {
        // Answer within the scheduler's timeout: wait at most 90 % of it, and
        // ask the workers to stop one command earlier than that.
        let wait = timeout.mul_f64(0.9);
        let work_budget = wait
            .checked_sub(command_timeout)
            .filter(|d| !d.is_zero())
            .unwrap_or(timeout / 2);
        let mut fleet = Fleet::new(NAME);
        for bmc in bmcs {
            let name = bmc.name().to_owned();
            let worker = Worker::spawn(bmc).map_err(|e| {
                SourceError::Crashed(format!("cannot start an ipmi worker thread: {e}"))
            })?;
            let device = BmcDevice {
                name: name.clone(),
                worker,
                work_budget,
            };
            // Swept at every poll; a hung BMC is skipped by its worker
            // (`busy`) rather than backed off.
            let settings = Settings {
                interval: None,
                timeout: wait,
                backoff_max: None,
            };
            fleet.add(name, device, settings);
        }
        Ok(IpmiSource { bmcs: fleet })
    }

    fn down(bmc: &str, kind: &'static str) -> Reading {
        Reading::new(
            NAME,
            bmc,
            "bmc",
            sensor::q::BMC_UP,
            Some(0.0),
            ReadingState::Warning,
        )
        .with_label("error", kind)
    }
}

impl Poll for IpmiSource {
    fn name(&self) -> &'static str {
        NAME
    }

    async fn poll(&mut self) -> Result<Polled, SourceError> {
        let (polled, outcomes) = self.bmcs.poll().await;
        let swept_any = outcomes.iter().any(|o| o.error.is_none());
        let failures: Vec<String> = outcomes
            .iter()
            .filter_map(|o| {
                let e = o.error.as_ref()?;
                (!is_unreachable(e.kind)).then(|| format!("BMC {:?}: {e}", o.device))
            })
            .collect();
        if !swept_any && !failures.is_empty() {
            return Err(SourceError::Read {
                what: "ipmi",
                message: failures.join("; "),
            });
        }
        Ok(polled)
    }
}

impl super::Build for IpmiSource {
    type Config = IpmiSourceConfig;

    fn build(config: &Self::Config) -> Result<Self, SourceError> {
        IpmiSource::new(config)
    }
}
