//! A host's readings batch read against the one before it.
//!
//! An agent sends the same series in the same order every time, so two of its
//! batches differ only in their numbers: `seq`, `ts`, each reading's `value`
//! (and `ts` when it has one). A [`Shape`] is a batch that was decoded and
//! validated, with those numbers cut out. The next batch on the same topic is
//! read by comparing its bytes with the shape's between the holes and parsing
//! only the numbers: no field names matched, no strings cut, no names
//! validated again. A caller that kept what the first batch's names resolved
//! to (the collector keeps where each reading's series is) needs nothing else.
//!
//! What [`Shape::read`] accepts, [`decode_in_place`](super::decode_in_place)
//! accepts too, with the same strings and these numbers: every byte outside
//! the holes is the shape's, and the scanner's path through a payload depends
//! only on its bytes, so it would take the same path, and each hole is parsed
//! by the same functions as the scanner's. The checks that depend on a number
//! are made again: finite values (by the parse), and no negative value for a
//! counter. Anything else (a changed name or state, a `null` for a number, a
//! number where `null` was, other whitespace) is refused, and the
//! caller decodes the batch in full. `shape_tests.rs` holds the two to it.

use super::scan::{self, Hole, HoleKind};
use crate::limits::MAX_PAYLOAD_BYTES;

/// The layout of one topic's readings batch: its bytes with the numbers cut
/// out, and what each hole holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Shape {
    topic: Box<str>,
    /// The payload without its holes.
    text: Box<[u8]>,
    holes: Box<[ShapeHole]>,
    readings: usize,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct ShapeHole {
    /// Where in `text` the hole was cut.
    at: usize,
    kind: HoleKind,
    /// A value of a counter (`q` ending in `_total`): never negative.
    counter: bool,
}

/// The numbers of a batch read against a [`Shape`]: what differs from the
/// shape's own batch. A reading whose `value` (or `ts`) was `null` or absent
/// in the shape's batch has `None` here, as it had there.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Numbers {
    pub seq: u64,
    pub ts: i64,
    /// One per reading, in the batch's order.
    pub values: Vec<Option<f64>>,
    /// One per reading: its own `ts`, if it has one.
    pub reading_ts: Vec<Option<i64>>,
}

impl Shape {
    /// The shape of `payload`, a batch the scanner read with these `holes`
    /// (from `scan::readings_with_holes`) and that passed validation on
    /// `topic`; `counter(i)` says whether reading `i` is of a counter.
    pub(super) fn new(
        topic: &str,
        payload: &[u8],
        holes: &[Hole],
        readings: usize,
        counter: impl Fn(usize) -> bool,
    ) -> Shape {
        let mut text = Vec::with_capacity(payload.len());
        let mut shaped = Vec::with_capacity(holes.len());
        let mut from = 0;
        for hole in holes {
            text.extend_from_slice(payload.get(from..hole.start).unwrap_or_default());
            from = hole.end;
            let counter = matches!(hole.kind, HoleKind::Value(i) if counter(i));
            shaped.push(ShapeHole {
                at: text.len(),
                kind: hole.kind,
                counter,
            });
        }
        text.extend_from_slice(payload.get(from..).unwrap_or_default());
        Shape {
            topic: topic.into(),
            text: text.into_boxed_slice(),
            holes: shaped.into_boxed_slice(),
            readings,
        }
    }

    /// How many readings a batch of this shape has.
    pub fn readings(&self) -> usize {
        self.readings
    }

    /// The memory this shape holds, about: what a cache of shapes counts
    /// against its budget.
    pub fn bytes(&self) -> usize {
        std::mem::size_of::<Shape>()
            + self.topic.len()
            + self.text.len()
            + self.holes.len() * std::mem::size_of::<ShapeHole>()
    }

    /// Reads `payload`, received on `topic`, into `out` if it is a batch of
    /// this shape; `false` (and `out` unspecified) if it is not, and then it
    /// must be decoded in full.
    pub fn read(&self, topic: &str, payload: &[u8], out: &mut Numbers) -> bool {
        if topic != &*self.topic || payload.len() > MAX_PAYLOAD_BYTES {
            return false;
        }
        out.values.clear();
        out.values.resize(self.readings, None);
        out.reading_ts.clear();
        out.reading_ts.resize(self.readings, None);
        let mut at = 0;
        let mut from = 0;
        for hole in &self.holes {
            let literal = self.text.get(from..hole.at).unwrap_or_default();
            if payload.get(at..at + literal.len()) != Some(literal) {
                return false;
            }
            at += literal.len();
            from = hole.at;
            let Some((end, integer)) = scan::number_end(payload, at) else {
                return false;
            };
            // A number token is ASCII: this check never fails on one.
            let Some(token) = payload
                .get(at..end)
                .and_then(|t| std::str::from_utf8(t).ok())
            else {
                return false;
            };
            at = end;
            if !fill(out, hole, token, integer) {
                return false;
            }
        }
        payload.get(at..) == self.text.get(from..)
    }
}

/// Puts the number `token` where `hole` says; `false` if the scanner would
/// not have read it, or validation would refuse it.
fn fill(out: &mut Numbers, hole: &ShapeHole, token: &str, integer: bool) -> bool {
    match hole.kind {
        HoleKind::Seq => scan::unsigned(token, integer).map(|n| out.seq = n),
        HoleKind::Ts => scan::signed(token, integer).map(|n| out.ts = n),
        HoleKind::Value(i) => scan::float(token, integer)
            .filter(|v| !(hole.counter && *v < 0.0))
            .and_then(|v| out.values.get_mut(i).map(|slot| *slot = Some(v))),
        HoleKind::ReadingTs(i) => scan::signed(token, integer)
            .and_then(|n| out.reading_ts.get_mut(i).map(|slot| *slot = Some(n))),
    }
    .is_some()
}
