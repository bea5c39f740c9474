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

use std::{collections::BTreeMap, time::Duration};

use sitewatch_protocol::{Reading, ReadingState};

use super::{Poll, Polled, SourceError};
use config::{IpmiSourceConfig, parse_bmc_address};
use worker::{Bmc, BmcSweep, Refused, Target, Worker};

/// The source's name and its readings' `src`.
pub const NAME: &str = "ipmi";

/// The `dev` of the in-band BMC.
pub const LOCAL_DEV: &str = "local";

/// The `ipmi` source: one worker per BMC.
#[derive(Debug)]
pub struct IpmiSource {
    workers: Vec<Worker>,
    timeout: Duration,
    command_timeout: Duration,
    /// Each BMC's last error kind, to log on change only.
    last_errors: BTreeMap<String, &'static str>,
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

    /// A source over prepared BMCs (tests use scripted links).
    pub fn from_bmcs(
        bmcs: Vec<Bmc>,
        timeout: Duration,
        command_timeout: Duration,
    ) -> Result<IpmiSource, SourceError> {
        let workers = bmcs
            .into_iter()
            .map(Worker::spawn)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| {
                SourceError::Crashed(format!("cannot start an ipmi worker thread: {e}"))
            })?;
        Ok(IpmiSource {
            workers,
            timeout,
            command_timeout,
            last_errors: BTreeMap::new(),
        })
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

    fn observe(&mut self, bmc: &str, error: Option<(&'static str, String)>) {
        match error {
            Some((kind, message)) => {
                if self.last_errors.insert(bmc.to_owned(), kind) != Some(kind) {
                    tracing::warn!(source = NAME, bmc, kind, error = %message, "BMC sweep failed");
                }
            }
            None => {
                if self.last_errors.remove(bmc).is_some() {
                    tracing::info!(source = NAME, bmc, "BMC sweep recovered");
                }
            }
        }
    }
}

impl Poll for IpmiSource {
    fn name(&self) -> &'static str {
        NAME
    }

    async fn poll(&mut self) -> Result<Polled, SourceError> {
        // Answer within the scheduler's timeout: wait at most 90 % of it, and
        // ask the workers to stop one command earlier than that.
        let started = tokio::time::Instant::now();
        let wait_until = started + self.timeout.mul_f64(0.9);
        let work_budget = self
            .timeout
            .mul_f64(0.9)
            .checked_sub(self.command_timeout)
            .filter(|d| !d.is_zero())
            .unwrap_or(self.timeout / 2);
        let deadline = std::time::Instant::now() + work_budget;
        let started_sweeps: Vec<_> = self
            .workers
            .iter()
            .map(|w| (w.name().to_owned(), w.start(deadline)))
            .collect();
        let mut polled = Polled::default();
        let mut swept_any = false;
        let mut failures = Vec::new();
        for (bmc, sweep) in started_sweeps {
            let outcome: Result<BmcSweep, (&'static str, String)> = match sweep {
                Err(Refused::Busy) => Err(("busy", "still sweeping since an earlier poll".into())),
                Err(Refused::Gone) => Err(("crashed", "its worker thread is gone".into())),
                Ok(rx) => match tokio::time::timeout_at(wait_until, rx).await {
                    Ok(Ok(s)) => Ok(s),
                    Ok(Err(_)) => Err(("crashed", "its worker dropped the sweep".into())),
                    Err(_) => Err(("timeout", format!("no sweep within {:?}", self.timeout))),
                },
            };
            match outcome {
                Ok(s) => {
                    let error = s.error.as_ref().map(|e| (e.kind(), e.to_string()));
                    if let Some(e) = &s.error {
                        if !e.is_unreachable() {
                            failures.push(format!("BMC {bmc:?}: {e}"));
                        }
                    } else {
                        swept_any = true;
                    }
                    self.observe(&bmc, error);
                    polled.readings.extend(s.readings);
                    polled.events.extend(s.events);
                }
                Err((kind, message)) => {
                    self.observe(&bmc, Some((kind, message)));
                    polled.readings.push(Self::down(&bmc, kind));
                }
            }
        }
        if !swept_any && !failures.is_empty() {
            return Err(SourceError::Read {
                what: "ipmi",
                message: failures.join("; "),
            });
        }
        Ok(polled)
    }
}
