//! Sources: a closed set, one module each, dispatched through [`Source`].
//!
//! Adding a source is a new module implementing [`Poll`], one [`Source`]
//! variant, one [`crate::config::SourceConfig`] variant and its test data.

pub mod host;
pub mod ipmi;
pub mod modbus;
pub mod net;
pub mod smart;

use std::{future::Future, time::Duration};

use sitewatch_protocol::{Event, Reading};

use crate::config::SourceConfig;

/// What every source does: read its devices once.
///
/// "This hardware is not here" is an empty or shorter `Vec`, not an error; an
/// error means a read that should have worked failed.
pub trait Poll {
    /// The source's name: its readings' `src` and its key in the state's `sources`.
    fn name(&self) -> &'static str;

    fn poll(&mut self) -> impl Future<Output = Result<Polled, SourceError>> + Send;
}

/// What one poll read: values, and discrete events (a SEL entry, a UPS
/// transfer, a growing defect count) noticed since the previous poll.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Polled {
    pub readings: Vec<Reading>,
    pub events: Vec<Event>,
}

impl From<Vec<Reading>> for Polled {
    fn from(readings: Vec<Reading>) -> Self {
        Polled {
            readings,
            events: Vec::new(),
        }
    }
}

/// One configured source.
#[derive(Debug)]
pub enum Source {
    Host(host::HostSource),
    Smart(smart::SmartSource),
    Modbus(modbus::ModbusSource),
    Net(net::NetSource),
    Ipmi(ipmi::IpmiSource),
}

impl Source {
    /// Builds the source a config section describes.
    pub fn build(config: &SourceConfig) -> Result<Source, SourceError> {
        match config {
            SourceConfig::Host(_) => Ok(Source::Host(host::HostSource::new()?)),
            SourceConfig::Smart(c) => Ok(Source::Smart(smart::SmartSource::new(c.clone()))),
            SourceConfig::Modbus(c) => Ok(Source::Modbus(modbus::ModbusSource::new(c)?)),
            SourceConfig::Net(c) => Ok(Source::Net(net::NetSource::new(c)?)),
            SourceConfig::Ipmi(c) => Ok(Source::Ipmi(ipmi::IpmiSource::new(c)?)),
        }
    }
}

impl Poll for Source {
    fn name(&self) -> &'static str {
        match self {
            Source::Host(s) => s.name(),
            Source::Smart(s) => s.name(),
            Source::Modbus(s) => s.name(),
            Source::Net(s) => s.name(),
            Source::Ipmi(s) => s.name(),
        }
    }

    async fn poll(&mut self) -> Result<Polled, SourceError> {
        match self {
            Source::Host(s) => s.poll().await,
            Source::Smart(s) => s.poll().await,
            Source::Modbus(s) => s.poll().await,
            Source::Net(s) => s.poll().await,
            Source::Ipmi(s) => s.poll().await,
        }
    }
}

/// Why a poll produced no readings.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum SourceError {
    #[error("poll took longer than its {0:?} timeout")]
    Timeout(Duration),
    #[error("the previous poll is still running (a hung read)")]
    Busy,
    #[error("cannot read {what}: {message}")]
    Read { what: &'static str, message: String },
    #[error("the poll task failed: {0}")]
    Crashed(String),
}

impl SourceError {
    /// A bounded label for metrics and for logging on change.
    pub fn kind(&self) -> &'static str {
        match self {
            SourceError::Timeout(_) => "timeout",
            SourceError::Busy => "busy",
            SourceError::Read { .. } => "read",
            SourceError::Crashed(_) => "crashed",
        }
    }
}
