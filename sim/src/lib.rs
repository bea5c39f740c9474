//! Device simulators for sitewatch: a Modbus device served live from its
//! profile (TCP or RTU), with a control interface to change values and inject
//! faults, so that the agent and the whole pipeline can be tested and drilled
//! without hardware.
//!
//! # Layout
//!
//! - [`device`]: [`SimDevice`]: a profile, its live register image and fault,
//!   and the answer to each Modbus request (pure).
//! - [`fault`]: [`Fault`] (slow, silent, exception) and the named
//!   [`Scenario`](fault::Scenario)s (`mains_lost`, `battery_low`, ...).
//! - [`serve`]: [`SimService`] over tokio-modbus's TCP and RTU servers.
//! - [`control`]: the line protocol on `--control`.
//! - [`site`]: a simulated machine room on consecutive ports.
//! - [`drill`]: disaster drills against a running stack: inject, time the
//!   signal against the DR plan's 30 s, restore, wait for the clear.
//! - [`load`]: many simulated agents publishing v1 traffic to a broker
//!   (`sitewatch-sim load`), for load tests, soaks and reconnect storms.
//! - `main.rs`: the `sitewatch-sim` command line.

pub mod control;
pub mod device;
pub mod drill;
pub mod fault;
pub mod load;
pub mod serve;
pub mod site;

pub use device::{ControlError, SimDevice};
pub use fault::{Fault, SCENARIOS, Scenario};
pub use serve::SimService;
