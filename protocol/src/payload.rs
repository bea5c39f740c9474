//! Payload types, one module per topic kind.
//!
//! These are wire types: unknown fields are ignored (forward compatibility), so
//! none of them has `deny_unknown_fields`. Structural problems (a missing field, a
//! wrong type) are caught by serde; the rules serde cannot express (name lengths,
//! finite values, label counts) by [`crate::decode`]'s validation pass.

mod collector;
mod events;
mod readings;
mod signals;
mod state;

use std::collections::BTreeMap;

pub use collector::{CollectorStatePayload, CollectorViewPayload, SiteReport};
pub use events::{Event, EventsPayload, Severity};
pub use readings::{Reading, ReadingState, ReadingView, ReadingsPayload, ReadingsView};
pub use signals::{
    Cause, Evidence, EvidenceDetail, InhibitedSignal, Level, Signal, SignalsPayload,
};
pub use state::{OfflineReason, StatePayload, Status};

/// Extra string labels on a reading or event (at most [`crate::limits::MAX_LABELS`]).
pub type Labels = BTreeMap<String, String>;

fn is_empty_map<K, V>(m: &BTreeMap<K, V>) -> bool {
    m.is_empty()
}
