//! The sitewatch wire contract, v1 (`docs/protocol.md`), in one place and with no I/O.
//!
//! Agents, the collector and the tests share this crate and nothing else: topics,
//! payload types, the quantity vocabulary, limits, and a [`decode`] that turns a raw
//! MQTT message into a typed [`Message`] or a typed [`Rejection`] whose
//! [`Rejection::reason`] is a bounded metric label.
//!
//! # Layout
//!
//! - [`name`]: `SiteName` / `HostName`, newtypes that cannot hold an invalid name.
//! - [`topic`]: building and parsing `sitewatch/v1/...` topics.
//! - [`payload`]: the state, readings, events and signals payloads.
//! - [`quantity`]: the quantity (`q`) vocabulary the signals engine understands.
//! - [`limits`]: size and count limits every decoder enforces.
//! - [`decode`](mod@decode): raw topic + bytes -> [`Message`], with validation.
//! - [`replay`]: the recorded-traffic (replay file) line format.

pub mod decode;
pub mod limits;
pub mod name;
pub mod payload;
pub mod quantity;
pub mod replay;
pub mod topic;

pub use decode::{
    Body, Decoded, Message, Numbers, Rejection, Shape, decode, decode_in_place,
    decode_in_place_shaped, encode,
};
pub use name::{HostName, NameError, SiteName};
pub use payload::{
    Cause, CollectorStatePayload, CollectorViewPayload, Event, EventsPayload, Evidence, Level,
    OfflineReason, Reading, ReadingState, ReadingView, ReadingsPayload, ReadingsView, Severity,
    Signal, SignalsPayload, SiteReport, StatePayload, Status,
};
pub use topic::{CollectorKind, Topic, TopicError, TopicKind};

/// The protocol version every payload carries in its `v` field.
pub const VERSION: u32 = 1;
