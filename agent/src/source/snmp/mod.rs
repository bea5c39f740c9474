//! The `snmp` source: UPS network cards, rack PDUs, environment monitors and
//! switches over SNMP v1, v2c and v3 (USM with SHA-2 and AES), each read
//! through a profile (`sitewatch-snmp-profile`, `firmware-config/snmp/`).
//!
//! Each agent is a device of the shared device layer ([`crate::device`]): its
//! own task, interval, timeout, backoff and health readings. A poll GETs the
//! profile's scalars and walks its tables, every column of a table side by
//! side in one GETBULK stream (or GETNEXT, for v1, for `bulk = false`, and for
//! a device that broke on bulk). Requests have their own timeout and retries
//! (async-snmp). A malformed or mistyped value is an unknown reading of that
//! point and a counted `snmp_malformed_values`, never a failed poll.
//!
//! With `[sources.snmp.traps]`, a receiver turns notifications from the
//! configured devices into events (once per repeat window) and polls the
//! sending device at once.
//!
//! - [`config`]: the `[sources.snmp]` table and its checks.
//! - [`device`]: one agent: client, walks, counters.
//! - [`traps`]: the receiver and the pure notification classifier.

pub mod config;
pub mod device;
pub mod traps;

use std::{net::ToSocketAddrs, path::Path, sync::Arc};

use sitewatch_protocol::Reading;
use sitewatch_snmp_profile::{Profile, shipped};
use tokio::sync::Notify;

use super::{Poll, Polled, SourceError};
use crate::{
    device::{Fleet, Settings},
    selfmetrics,
};
use config::{SnmpSourceConfig, Version};

/// The source's name and its readings' `src`.
pub const NAME: &str = "snmp";

/// The longest a dead agent goes unread (its points reported unknown meanwhile).
const BACKOFF_MAX: std::time::Duration = std::time::Duration::from_secs(60);

/// Loads a profile by shipped name or file path.
pub fn load_profile(name: &str) -> Result<Profile, String> {
    if let Some(loaded) = shipped::load(name) {
        return loaded.map_err(|e| e.to_string());
    }
    let text = std::fs::read_to_string(Path::new(name))
        .map_err(|e| format!("{name}: not a shipped profile, and cannot read it as a file: {e}"))?;
    Profile::from_toml(&text, name).map_err(|e| e.to_string())
}

#[derive(Debug)]
pub struct SnmpSource {
    devices: Fleet,
    traps: Option<Arc<traps::Shared>>,
    wake: Arc<Notify>,
}

fn read_error(what: &'static str, message: String) -> SourceError {
    SourceError::Read { what, message }
}

impl SnmpSource {
    /// Builds the devices and starts their tasks and the trap receiver
    /// (within a tokio runtime).
    pub fn new(config: &SnmpSourceConfig) -> Result<Self, SourceError> {
        let mut fleet = Fleet::new(NAME);
        let shared = device::SharedTransport::default();
        let mut senders = Vec::new();
        let mut accepted = traps::Accepted::default();
        for d in &config.devices {
            let profile =
                Arc::new(load_profile(&d.profile).map_err(|e| {
                    read_error("snmp profile", format!("device {:?}: {e}", d.name))
                })?);
            let (host, port) = d.endpoint().map_err(|e| {
                read_error("snmp device address", format!("device {:?}: {e}", d.name))
            })?;
            let auth = device::auth(d)
                .map_err(|e| read_error("snmp credentials", format!("device {:?}: {e}", d.name)))?;
            match d.version {
                Version::V1 | Version::V2c => {
                    if let Some(f) = &d.community_file {
                        let c = config::read_secret("community file", f).map_err(|e| {
                            read_error("snmp credentials", format!("device {:?}: {e}", d.name))
                        })?;
                        accepted.communities.push(c);
                    } else {
                        accepted.communities.push("public".into());
                    }
                }
                Version::V3 => accepted.users.push(v3_user(d)?),
            }
            // The receiver matches a sender by address: resolved once here.
            let ips: Vec<std::net::IpAddr> = (host.as_str(), port)
                .to_socket_addrs()
                .map(|a| a.map(|s| s.ip().to_canonical()).collect())
                .unwrap_or_default();
            if ips.is_empty() {
                tracing::warn!(source = NAME, device = %d.name, host = %host, "cannot resolve the device's address; its traps will not be matched");
            }
            senders.push(traps::Sender {
                device: d.name.clone(),
                ips,
                profile: Arc::clone(&profile),
            });
            let settings = device::Settings {
                host,
                port,
                version: d.version,
                auth,
                timeout: d.timeout,
                retries: d.retries,
                max_repetitions: d
                    .max_repetitions
                    .or(profile.limits.max_repetitions)
                    .unwrap_or(10),
                bulk: d.bulk,
                max_oids: profile.limits.max_oids.unwrap_or(16),
                labels: d.labels.clone(),
                uplinks: d.uplinks.clone(),
                shared: shared.clone(),
            };
            let snmp = device::SnmpDevice::new(d.name.clone(), profile, settings);
            fleet.add(
                d.name.clone(),
                snmp,
                Settings {
                    interval: Some(d.interval.unwrap_or(config.interval)),
                    timeout: config.timeout.mul_f64(0.9),
                    backoff_max: Some(BACKOFF_MAX),
                },
            );
        }
        let wake = Arc::new(Notify::new());
        let traps = match &config.traps {
            None => None,
            Some(t) => {
                // Bound now so that a taken or privileged port stops the agent
                // with a clear message rather than a silent receiver.
                std::net::UdpSocket::bind(&t.listen).map_err(|e| {
                    read_error(
                        "snmp trap receiver",
                        format!(
                            "cannot listen on {}: {e} (port 162 needs CAP_NET_BIND_SERVICE; see the README)",
                            t.listen
                        ),
                    )
                })?;
                if !t.community_files.is_empty() {
                    accepted.communities = t
                        .community_files
                        .iter()
                        .map(|f| config::read_secret("community file", f))
                        .collect::<Result<_, _>>()
                        .map_err(|e| read_error("snmp trap receiver", e))?;
                }
                accepted.communities.sort();
                accepted.communities.dedup();
                let shared = Arc::new(traps::Shared {
                    wake: Arc::clone(&wake),
                    ..traps::Shared::default()
                });
                let classifier = traps::Classifier::new(senders, t.dedup);
                tokio::spawn(traps::run(
                    t.listen.clone(),
                    accepted,
                    classifier,
                    Arc::clone(&shared),
                ));
                Some(shared)
            }
        };
        Ok(SnmpSource {
            devices: fleet,
            traps,
            wake,
        })
    }
}

fn v3_user(d: &config::SnmpDeviceConfig) -> Result<traps::V3User, SourceError> {
    let secret = |f: &Option<std::path::PathBuf>, what: &str| -> Result<String, SourceError> {
        match f {
            Some(f) => config::read_secret(what, f)
                .map_err(|e| read_error("snmp credentials", format!("device {:?}: {e}", d.name))),
            None => Ok(String::new()),
        }
    };
    Ok(traps::V3User {
        name: d.user.clone().unwrap_or_default(),
        auth: match d.auth {
            Some(a) => Some((
                device::auth_protocol(a),
                secret(&d.auth_password_file, "auth password file")?,
            )),
            None => None,
        },
        privacy: match d.privacy {
            Some(p) => Some((
                device::priv_protocol(p),
                secret(&d.privacy_password_file, "privacy password file")?,
            )),
            None => None,
        },
    })
}

fn trap_readings(stats: &traps::TrapStats) -> Vec<Reading> {
    let dev = format!("{NAME}/traps");
    [
        (selfmetrics::q::SNMP_TRAPS_RECEIVED, stats.received),
        (
            selfmetrics::q::SNMP_TRAPS_UNKNOWN_SENDER,
            stats.unknown_sender,
        ),
        (selfmetrics::q::SNMP_TRAPS_REJECTED, stats.rejected),
        (selfmetrics::q::SNMP_TRAPS_REPEATED, stats.repeated),
    ]
    .into_iter()
    .map(|(q, v)| selfmetrics::reading(dev.clone(), q, v as f64))
    .collect()
}

impl Poll for SnmpSource {
    fn name(&self) -> &'static str {
        NAME
    }

    fn wake(&self) -> Option<Arc<Notify>> {
        self.traps.as_ref().map(|_| Arc::clone(&self.wake))
    }

    async fn poll(&mut self) -> Result<Polled, SourceError> {
        let mut events = Vec::new();
        if let Some(t) = &self.traps {
            for device in t.take_hurried() {
                self.devices.hurry(&device);
            }
            events = t.take_events();
        }
        let (mut polled, _) = self.devices.poll().await;
        if let Some(t) = &self.traps {
            polled.readings.extend(trap_readings(&t.stats()));
        }
        polled.events.splice(0..0, events);
        Ok(polled)
    }
}

impl super::Build for SnmpSource {
    type Config = SnmpSourceConfig;

    fn build(config: &Self::Config) -> Result<Self, SourceError> {
        SnmpSource::new(config)
    }
}
