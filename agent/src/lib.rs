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
//! - [`config`]: the typed TOML tree, its loading and error reporting; each
//!   source's own table lives in its folder.
//! - [`source`]: the [`source::Poll`] trait, the [`source::Source`] enum and
//!   the `sources!` registry; one folder per source ([`source::host`],
//!   [`source::smart`], [`source::modbus`], [`source::net`], [`source::ipmi`],
//!   `source::snmp`, `source::nut`).
//! - [`device`]: the shared device layer: one task per device, its timeout,
//!   interval, backoff from dead devices, health readings and rate-limited
//!   error logs.
//! - [`endpoint`]: the one `host[:port]` / `[v6]:port` grammar.
//! - [`pattern`]: the one name-pattern grammar (`*`, `?`; include/exclude).
//! - [`scheduler`]: one task per source, each poll under its own timeout.
//! - [`batch`]: readings -> numbered, size-capped readings messages (pure).
//! - [`buffer`]: the store-and-forward buffer and in-flight window (pure).
//! - [`backoff`]: reconnect delays with full jitter (pure).
//! - [`publisher`]: the task that owns the MQTT event loop.
//! - [`selfmetrics`]: the agent's own readings (`src = "agent"`).
//! - [`latest`]: the latest readings with a `nut` label, shared with the facade.
//! - `nutd` (feature `nut`): the upsd facade (`[nut_server]`) and its FSD policy.
//! - [`tls`]: rustls configuration for `mqtts://`.
//! - [`files`]: what check-config says about a file the configuration names.
//! - [`logging`]: `tracing` to stderr, text or JSON.
//!
//! # Adding a source
//!
//! A source is one folder, one registry entry, nothing else:
//!
//! 1. `src/source/<name>/config.rs`: the `[sources.<name>]` table
//!    (`#[serde(deny_unknown_fields)]`, every field documented and defaulted,
//!    durations through `crate::config::duration`, addresses through
//!    [`endpoint::Endpoint`]) implementing [`source::Section`]: `enabled`,
//!    `schedule` and `validate` (errors name the key).
//! 2. `src/source/<name>/mod.rs`: `pub const NAME`, the source implementing
//!    [`source::Poll`] and [`source::Build`]. Each device it reads over a
//!    network or a bus implements [`device::Device`] (`read`, `unread`,
//!    `counters`) and is added to a [`device::Fleet`], which gives it its own
//!    task, timeout, interval, backoff and the shared health readings. Its
//!    quantities come from `sitewatch_protocol::quantity` (add new shared ones
//!    there) or its own `pub mod q`.
//! 3. One entry in the `sources!` table at the end of `src/source.rs`: the
//!    `[sources]` field (docs and serde attributes) and the [`source::Source`]
//!    variant, which also gives `SourceConfig`, `enabled()`, validation,
//!    `check-config` and dispatch.
//! 4. Its tests in `tests/<name>.rs` against a real peer, its captures and
//!    expected values in `tests/<name>/`, and a README section.
//!
//! A source behind a cargo feature starts its entry with `@feature "name"`.
//! The `snmp` source (`src/source/snmp/`, feature `snmp`) is the example:
//! config, devices on the device layer, a trap receiver that asks the
//! scheduler for an early poll ([`source::Poll::wake`]).

pub mod backoff;
pub mod batch;
pub mod buffer;
pub mod cli;
pub mod config;
pub mod device;
pub mod endpoint;
pub mod files;
pub mod latest;
pub mod logging;
#[cfg(feature = "nut")]
pub mod nutd;
pub mod pattern;
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
