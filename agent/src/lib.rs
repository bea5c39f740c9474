//! `sitewatch-agent`: runs on every server and machine-room gateway, reads host
//! and device sensors, and publishes them over MQTT to `sitewatch-collector`
//! following the v1 wire contract (`sitewatch-protocol`).
//!
//! It keeps readings while the broker is unreachable (a bounded buffer, oldest
//! dropped first) and sends them afterwards in order with their original
//! timestamps; it announces itself with a retained state message, an MQTT will
//! for a lost connection and an offline/shutdown state on a clean stop.
//!
//! # Layout
//!
//! - [`cli`]: the `run`, `check-config` and `once` commands.
//! - [`config`]: the typed TOML configuration, its defaults and validation.
//! - [`source`]: the [`source::Poll`] trait and the [`source::Source`] enum;
//!   one module per source ([`source::host`], [`source::smart`],
//!   [`source::modbus`], [`source::net`], [`source::ipmi`]).
//! - [`scheduler`]: one task per source, each poll under its own timeout.
//! - [`batch`]: readings -> numbered, size-capped readings messages (pure).
//! - [`buffer`]: the store-and-forward buffer and in-flight window (pure).
//! - [`backoff`]: reconnect delays with full jitter (pure).
//! - [`publisher`]: the task that owns the MQTT event loop.
//! - [`selfmetrics`]: the agent's own readings (`src = "agent"`).
//! - [`tls`]: rustls configuration for `mqtts://`.
//! - [`logging`]: `tracing` to stderr, text or JSON.

pub mod backoff;
pub mod batch;
pub mod buffer;
pub mod cli;
pub mod config;
pub mod endpoint;
pub mod logging;
pub mod publisher;
pub mod scheduler;
pub mod selfmetrics;
pub mod source;
pub mod tls;

/// Now, in Unix milliseconds: the `ts` of readings and states.
pub fn unix_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}
