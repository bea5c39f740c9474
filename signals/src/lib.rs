//! The disaster-signals engine: from a snapshot of every site's state and the time,
//! the DR plan's L1-L4 signals (`docs/protocol.md`, "Levels and causes").
//!
//! Pure: no I/O, no clock, no async. The collector builds a [`Snapshot`] from its
//! state at every evaluation tick (and after ingest) and calls
//! [`Engine::evaluate`]`(&snapshot, now_ms)`; it exposes the [`Evaluation`] as
//! `sitewatch_signal_active`, `sitewatch_site_disaster_level`, `GET /api/v1/signals`,
//! the retained `sitewatch/v1/<site>/_signals` ([`Evaluation::signals_for_site`]) and
//! Alertmanager alerts. `sitewatch-collector replay` drives the same engine on a
//! simulated clock and prints [`Evaluation::changes`] as the timeline
//! ([`Change::timeline_entry`]), so a drill replays exactly as it ran.
//!
//! # Layout
//!
//! - [`snapshot`]: the input, plain owned data independent of the collector's storage.
//! - [`config`]: [`SignalsConfig`], the `[signals]` table: thresholds, durations,
//!   sites (region, expected hosts, host labels), maintenance windows.
//! - [`causes`]: one module per cause, each a function from a site's view, the
//!   config, the memory it needs and the time to the [`Condition`]s true now.
//! - [`temporal`]: the per-signal state machine (pending, active, clearing), with
//!   `for`, `clear_after` and flap damping.
//! - [`engine`]: [`Engine`] ties them together: tracking, L4, inhibition, changes.
//! - [`liveness`]: the one liveness truth ([`Policy`]): startup grace,
//!   maintenance windows and expected hosts, shared with the collector's metrics
//!   and API.
//!
//! # Policy
//!
//! Defaults (every one configurable). "for" is how long the condition must hold
//! before the signal is raised; every signal clears once its condition has been
//! false for `clear_after` (30 s), or for the flap `hold` (5 min) when it has
//! changed more than 4 times in 10 min. Value limits have a hysteresis margin.
//!
//! | level | cause | condition (subject) | default limit / for | severity |
//! |---|---|---|---|---|
//! | L1 | `host_resources` | `cpu_usage_ratio` (`<host>:cpu`) | > 85 % for 5 min, clears < 80 % | medium |
//! | L1 | `host_resources` | `memory_usage_ratio` (`<host>:memory`) | > 90 % for 3 min, clears < 85 % | medium |
//! | L1 | `host_resources` | `filesystem_usage_ratio` (`<host>:<mount>`) | > 95 % for 1 min, clears < 93 % | medium |
//! | L1 | `host_resources` | warning variants | > 70 / 80 / 85 %, same for | low |
//! | L2 | `host_hardware` | an `ipmi` or `redfish` reading critical, `psu_ok == 0`, `fan_speed_rpm == 0` not ok, host lost (`<host>`) | for 10 s | high |
//! | L2 | `storage` | `disk_smart_passed == 0`, a `smart` reading critical (NVMe critical warning), reallocated/pending sectors grown in the last 24 h (`<host>:<disk>`) | at once | high |
//! | L2 | `network_device` | `probe_up == 0` from every agent probing a `role` = switch/router target (`<target>`) | for 10 s (3 probes at 5 s) | high |
//! | L3 | `power` | mains lost and `generator_fault == 1` (`<site>`) | at once | critical |
//! | L3 | `power` | mains lost, generators present, none running | for 20 s (start grace) | critical |
//! | L3 | `power` | `ups_on_battery == 1`, no generator supplying | for 20 s | critical |
//! | L3 | `power` | mains lost, generator running | at once | low |
//! | L3 | `cooling` | median inlet per zone (`<site>` or `<site>:<zone>`) | > 32 °C for 10 s, clears < 31.5 °C | critical |
//! | L3 | `cooling` | `cooling_unit_alarm == 1` and median inlet up ≥ 1 °C over 3 min | for 10 s | critical |
//! | L3 | `cooling` | median inlet | > 27 °C for 10 s | low |
//! | L3 | `network` | ≥ half of the counted agents, and ≥ 2, lost within 1 min (`<site>`) | at once | critical |
//! | L4 | `region` | ≥ 2 sites of a region with an L3 alarm (`<region>`, at each such site) | at once | critical |
//!
//! - **Advisories**: severity `low` signals (warning limits, a site on generator)
//!   are published but do not raise [`Evaluation::disaster_level`]: an advisory,
//!   not a disaster. A key's advisory and alarm are tracked apart; the published
//!   signal is the alarm when raised, else the advisory ([`ChangeKind::Escalated`],
//!   [`ChangeKind::Deescalated`]).
//! - **Inhibition**: an L3 alarm at a site hides the L2s of that site it explains
//!   (a power cut explains failed PSUs, lost hosts and dead switches; a network cut
//!   lost hosts and switches; a cooling failure lost hosts and critical temperature
//!   sensors) and lists them as evidence with `inhibits`. One power cut pages once,
//!   not once per server. Storage and L1 are never inhibited.
//! - **Liveness**: hosts shut down cleanly or in maintenance (their own status or a
//!   configured window) never count as lost, and their signals are suppressed. For
//!   `startup_grace` (30 s) after the collector starts nothing counts as lost, so
//!   retained state rebuilding the picture raises no false L3; losses seen during
//!   the grace are dated at its end. Expected hosts never seen count as lost after it.
//! - **`since`** is when the condition first held (the start of `for`), not when the
//!   signal was raised: see [`temporal`].
//! - **DR budget**: with 5 s heartbeats the collector marks an agent lost within
//!   15 s (three missed) or at once (its will); the L2 `host_hardware` for (10 s)
//!   and the L3 `network` for (0) keep the signal within the plan's 30 s.

pub mod causes;
pub mod config;
pub mod engine;
pub mod host_index;
pub mod incremental;
pub mod liveness;
pub mod name;
pub mod snapshot;
pub mod temporal;

pub use causes::{CauseSet, Condition, Tier};
pub use config::{ConfigError, SignalsConfig};
pub use engine::{Change, ChangeKind, Engine, Evaluation, SignalKey};
pub use host_index::{is_read, may_be_read};
pub use liveness::{Policy, Status, Verdict};
pub use name::Name;
pub use snapshot::{
    HostSnapshot, Liveness, PeerSnapshot, SeriesSnapshot, SiteSnapshot, Snapshot, Vantage,
};
