//! `[sources.host]`: this machine's own resources.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::config::{default_true, duration};

/// `[sources.host]`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HostSourceConfig {
    /// Set to false to stop reading host resources.
    #[serde(default = "default_true")]
    pub enabled: bool,
    /// How often to poll.
    #[serde(default = "default_host_interval", with = "duration")]
    pub interval: Duration,
    /// How long one poll may take before it counts as failed.
    #[serde(default = "default_host_timeout", with = "duration")]
    pub timeout: Duration,
}

impl Default for HostSourceConfig {
    fn default() -> Self {
        HostSourceConfig {
            enabled: true,
            interval: default_host_interval(),
            timeout: default_host_timeout(),
        }
    }
}

fn default_host_interval() -> Duration {
    Duration::from_secs(5)
}
fn default_host_timeout() -> Duration {
    Duration::from_secs(3)
}

impl crate::source::Section for HostSourceConfig {
    fn enabled(&self) -> bool {
        self.enabled
    }

    fn schedule(&self) -> crate::config::Schedule {
        crate::config::Schedule {
            interval: self.interval,
            timeout: self.timeout,
        }
    }
}

impl crate::source::Field for HostSourceConfig {
    type Section = Self;
    fn present(&self) -> Option<&Self> {
        Some(self)
    }
}
