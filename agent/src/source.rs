//! Sources: a closed set, one folder each, registered in one `sources!` table.
//!
//! A source is a folder `source/<name>/`: `mod.rs` (the source, implementing
//! [`Poll`] and [`Build`]), `config.rs` (its `[sources.<name>]` table,
//! implementing [`Section`]: defaults, validation, schedule), its quantities,
//! and its tests and test data. Devices it reads over a network or a bus go
//! through the shared device layer ([`crate::device`]). Registering it is one
//! entry in the table at the end of this file: the [`Source`] variant and the
//! [`SourcesConfig`] field come from it together.

#[cfg(feature = "host")]
pub mod host;
#[cfg(feature = "ipmi")]
pub mod ipmi;
#[cfg(feature = "modbus")]
pub mod modbus;
#[cfg(feature = "net")]
pub mod net;
#[cfg(feature = "nut")]
pub mod nut;
#[cfg(feature = "redfish")]
pub mod redfish;
#[cfg(feature = "smart")]
pub mod smart;
#[cfg(feature = "snmp")]
pub mod snmp;

use std::{future::Future, time::Duration};

use sitewatch_protocol::{Event, Reading};

use crate::config::Schedule;
use crate::files::FileError;

/// What every source does: read its devices once.
///
/// "This hardware is not here" is an empty or shorter `Vec`, not an error; an
/// error means a read that should have worked failed.
pub trait Poll {
    /// The source's name: its readings' `src` and its key in the state's `sources`.
    fn name(&self) -> &'static str;

    fn poll(&mut self) -> impl Future<Output = Result<Polled, SourceError>> + Send;

    /// Notified when the source wants a poll before its next tick (an SNMP
    /// trap said a device's state changed). `None`: ticks only.
    fn wake(&self) -> Option<std::sync::Arc<tokio::sync::Notify>> {
        None
    }
}

/// What one poll read: values, and discrete events (a SEL entry, a UPS
/// transfer, a growing defect count) noticed since the previous poll.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Polled {
    pub readings: Vec<Reading>,
    pub events: Vec<Event>,
    /// Source state to save once these events are delivered (a SEL cursor):
    /// see `buffer::checkpoint`.
    pub checkpoints: Vec<Checkpoint>,
}

/// A file a source wants written, durably, once the events of the same poll
/// have been acknowledged by every broker (or dropped from the buffer).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checkpoint {
    pub path: std::path::PathBuf,
    pub contents: Vec<u8>,
}

impl From<Vec<Reading>> for Polled {
    fn from(readings: Vec<Reading>) -> Self {
        Polled {
            readings,
            ..Polled::default()
        }
    }
}

/// What a source's `[sources.<name>]` table tells the source layer.
pub trait Section {
    /// Whether the table asks for the source (it may say `enabled = false`).
    fn enabled(&self) -> bool {
        true
    }

    /// When the source polls and how long a poll may take.
    fn schedule(&self) -> Schedule;

    /// The rules serde cannot express: the offending key and why.
    fn validate(&self) -> Result<(), (&'static str, String)> {
        Ok(())
    }

    /// Every file and directory the table names can be used (password files,
    /// profiles, programs, state directories): for `check-config`, and before
    /// `run` starts anything. Looks at the file system, unlike `validate`.
    fn check_files(&self) -> Result<(), FileError> {
        Ok(())
    }
}

/// A [`SourcesConfig`] field: a table that is always there (`host`) or an
/// optional one (absent = disabled).
pub trait Field {
    type Section: Section;
    fn present(&self) -> Option<&Self::Section>;
}

impl<T: Section> Field for Option<T> {
    type Section = T;
    fn present(&self) -> Option<&T> {
        self.as_ref()
    }
}

/// How a source comes from its table.
pub trait Build: Poll + Sized {
    type Config: Section + Clone + std::fmt::Debug + PartialEq;

    /// Builds the source (within a tokio runtime: device tasks start here).
    fn build(config: &Self::Config) -> Result<Self, SourceError>;
}

/// The registry: each entry is a source's `[sources]` field (with its docs and
/// serde attributes) and its [`Source`] variant.
macro_rules! sources {
    ($(
        $(@feature $feature:literal)?
        $(#[$field_meta:meta])*
        $field:ident: $field_ty:ty => $variant:ident($source:ty),
    )*) => {
        /// `[sources]`: one table per source.
        #[derive(Debug, Clone, PartialEq, Default, serde::Serialize, serde::Deserialize)]
        #[serde(deny_unknown_fields)]
        pub struct SourcesConfig {
            $( $(#[cfg(feature = $feature)])? $(#[$field_meta])* pub $field: $field_ty, )*
        }

        /// One enabled source's configuration: what [`Source::build`] dispatches on.
        #[derive(Debug, Clone, PartialEq)]
        pub enum SourceConfig {
            $( $(#[cfg(feature = $feature)])? $variant(<$source as Build>::Config), )*
        }

        /// One configured source.
        #[derive(Debug)]
        pub enum Source {
            $( $(#[cfg(feature = $feature)])? $variant($source), )*
        }

        impl SourcesConfig {
            /// The enabled sources, in a stable order.
            pub fn enabled(&self) -> Vec<SourceConfig> {
                let mut out = Vec::new();
                $(
                    $(#[cfg(feature = $feature)])?
                    if let Some(c) = Field::present(&self.$field).filter(|c| Section::enabled(*c)) {
                        out.push(SourceConfig::$variant(c.clone()));
                    }
                )*
                out
            }

            /// Every enabled table's files ([`Section::check_files`]).
            pub fn check_files(&self) -> Result<(), FileError> {
                $(
                    $(#[cfg(feature = $feature)])?
                    if let Some(c) = Field::present(&self.$field).filter(|c| Section::enabled(*c)) {
                        Section::check_files(c)?;
                    }
                )*
                Ok(())
            }

            /// Every present table's own rules (enabled or not).
            pub fn validate(&self) -> Result<(), (&'static str, String)> {
                $(
                    $(#[cfg(feature = $feature)])?
                    if let Some(c) = Field::present(&self.$field) {
                        Section::validate(c)?;
                    }
                )*
                Ok(())
            }
        }

        impl SourceConfig {
            /// The source's name, as in `src` and in the state's `sources`.
            pub fn name(&self) -> &'static str {
                match self {
                    $( $(#[cfg(feature = $feature)])? SourceConfig::$variant(_) => stringify!($field), )*
                }
            }

            pub fn schedule(&self) -> Schedule {
                match self {
                    $( $(#[cfg(feature = $feature)])? SourceConfig::$variant(c) => Section::schedule(c), )*
                }
            }
        }

        impl Source {
            /// Builds the source a config section describes.
            pub fn build(config: &SourceConfig) -> Result<Source, SourceError> {
                match config {
                    $( $(#[cfg(feature = $feature)])? SourceConfig::$variant(c) => Ok(Source::$variant(<$source as Build>::build(c)?)), )*
                }
            }
        }

        impl Poll for Source {
            fn name(&self) -> &'static str {
                match self {
                    $( $(#[cfg(feature = $feature)])? Source::$variant(s) => s.name(), )*
                }
            }

            fn wake(&self) -> Option<std::sync::Arc<tokio::sync::Notify>> {
                match self {
                    $( $(#[cfg(feature = $feature)])? Source::$variant(s) => s.wake(), )*
                }
            }

            async fn poll(&mut self) -> Result<Polled, SourceError> {
                match self {
                    $( $(#[cfg(feature = $feature)])? Source::$variant(s) => s.poll().await, )*
                }
            }
        }
    };
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

#[cfg(not(any(
    feature = "host",
    feature = "smart",
    feature = "modbus",
    feature = "net",
    feature = "ipmi",
    feature = "snmp",
    feature = "nut",
    feature = "redfish"
)))]
compile_error!("sitewatch-agent needs at least one source feature (Cargo.toml [features])");

// Every source is behind a cargo feature of the same name, named first.
sources! {
    @feature "host"
    /// `[sources.host]`: this machine's CPU, memory, filesystems, network, load,
    /// uptime and temperatures. Enabled by default.
    #[serde(default)]
    host: host::config::HostSourceConfig => Host(host::HostSource),
    @feature "smart"
    /// `[sources.smart]`: disk health through smartctl. Absent = disabled.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    smart: Option<smart::config::SmartSourceConfig> => Smart(smart::SmartSource),
    @feature "modbus"
    /// `[sources.modbus]`: UPS, generator, cooling and environment devices over
    /// Modbus TCP/RTU, each read through a profile. Absent = disabled.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    modbus: Option<modbus::config::ModbusSourceConfig> => Modbus(modbus::ModbusSource),
    @feature "net"
    /// `[sources.net]`: ICMP echo and TCP connect probes to switches, routers,
    /// uplinks, peer sites and services. Absent = disabled.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    net: Option<net::config::NetSourceConfig> => Net(net::NetSource),
    @feature "ipmi"
    /// `[sources.ipmi]`: BMC sensors, SEL, chassis status and DCMI power over
    /// RMCP+ and/or the local `/dev/ipmi0`. Absent = disabled.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    ipmi: Option<ipmi::config::IpmiSourceConfig> => Ipmi(ipmi::IpmiSource),
    @feature "snmp"
    /// `[sources.snmp]`: UPS network cards, rack PDUs, environment monitors
    /// and switches over SNMP v1/v2c/v3, each read through a profile
    /// (`firmware-config/snmp/`), and a trap receiver. Absent = disabled.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    snmp: Option<snmp::config::SnmpSourceConfig> => Snmp(snmp::SnmpSource),
    @feature "nut"
    /// `[sources.nut]`: UPSes served by Network UPS Tools' upsd (RFC 9271),
    /// as hosts, hypervisors and NAS boxes read them. Absent = disabled.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    nut: Option<nut::config::NutSourceConfig> => Nut(nut::NutSource),
    @feature "redfish"
    /// `[sources.redfish]`: server BMCs, rack PDUs and coolant distribution
    /// units over Redfish (HTTPS), many endpoints per agent. Absent = disabled.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    redfish: Option<redfish::config::RedfishSourceConfig> => Redfish(redfish::RedfishSource),
}
