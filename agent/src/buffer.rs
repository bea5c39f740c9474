//! The store-and-forward buffer: every readings and events message is kept until
//! each broker it goes to has acknowledged it (or a bound drops it, counted).
//!
//! rumqttc forgets in-flight messages when it reconnects without a resumed
//! session, so the buffer, not rumqttc, owns delivery: a message leaves only on
//! its PUBACK, per broker.
//!
//! # Layout
//!
//! - [`queue`]: the shared queue, one record per message with a pending bit per
//!   broker, and each broker's in-flight window and pkid bookkeeping (pure).
//! - [`log`]: the disk log: segment files of checksummed records, recovered
//!   after a crash by truncating a torn tail, and the brokers' cursors.
//! - [`store`]: the queue over its payloads (memory, or the disk log with a
//!   memory fallback), the bounds and the fsync policy.
//! - [`checkpoint`]: source state (a SEL cursor) written, with fsync, only once
//!   the messages it covers are done.
//!
//! # Why one queue for every broker
//!
//! A message goes to each broker once, so the natural disk layout is one log
//! with a cursor per broker (what a Kafka consumer group does), not one copy per
//! broker: the disk and memory cost of a second broker is two bits per message
//! and its cursor, and a message leaves when the last broker has it. The bounds
//! apply to the one log; when they drop the oldest message, it is the one the
//! slowest (usually a dead) broker was waiting for, never one a live broker has
//! not sent yet unless it is as far behind as the dead one.

pub mod checkpoint;
pub mod log;
pub mod queue;
pub mod store;

use std::sync::Arc;

/// One encoded message waiting for delivery.
#[derive(Debug, Clone, PartialEq)]
pub struct Message {
    pub topic: Arc<str>,
    /// The message's `seq` (readings and events count separately).
    pub seq: u64,
    pub payload: Vec<u8>,
    /// How many readings it carries, for the published-readings counter.
    pub readings: usize,
}

/// A publish that is not buffered: acknowledged or lost with the connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Control {
    /// The retained online state sent after each CONNACK.
    Birth,
    /// The retained offline/shutdown state sent on a clean stop.
    Shutdown,
}

/// What a PUBACK acknowledged.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Acked {
    Message {
        /// The queue's index of the record.
        index: u64,
        seq: u64,
        readings: usize,
    },
    Control(Control),
    /// A pkid this broker's queue does not know (a PUBACK from before a reconnect).
    Unknown,
}
