//! Finding a reading's series without hashing its names.
//!
//! An agent sends the same series in the same order batch after batch, and a
//! host's list of series ([`HostSeries`], in the order they arrived) is in that
//! order too. So the series of a batch's next reading is most likely the one
//! after the previous reading's in that list. Checking it costs four string
//! comparisons against the interned names; the way round it (interning the
//! four names and the labels, then looking the key up) costs five or more
//! SipHash lookups in tables of every name. That is most of what applying a
//! reading cost.
//!
//! A guess is only taken when every name and label compares equal, which is
//! exactly when interning would have given the same ids (the interner is a
//! bijection): what is applied never depends on the guess, only how fast the
//! series is found.

use sitewatch_protocol::ReadingView;

use crate::intern::{EMPTY, Interner, LabelSets};
use crate::series::HostSeries;

/// How far past the expected position a series found the slow way is looked
/// for, after the first miss of a batch (which looks through the whole list).
/// Bounded so that a host whose batches come in a new order each time costs one
/// scan of its list per batch and a short one per reading, not one per reading.
const RESYNC_WINDOW: usize = 64;

/// Where a batch of one host has got to in that host's list of series.
#[derive(Debug, Default)]
pub(super) struct SeriesCursor {
    next: usize,
    /// Whether this batch already looked through the whole list once.
    scanned: bool,
}

impl SeriesCursor {
    /// The series of `reading` if it is the one expected next in `own`.
    pub(super) fn guess(
        &mut self,
        own: &[HostSeries],
        reading: &ReadingView<'_>,
        strings: &Interner,
        labelsets: &LabelSets,
    ) -> Option<HostSeries> {
        let candidate = own.get(self.next)?;
        if !names_match(candidate, reading, strings, labelsets) {
            return None;
        }
        self.next += 1;
        Some(*candidate)
    }

    /// After a miss: `found` is the series the reading has (found by its
    /// names); the next reading is expected after it in `own`. A series not in
    /// `own` (new in this batch) leaves the cursor where it was.
    pub(super) fn resync(&mut self, own: &[HostSeries], found: &HostSeries) {
        let (start, end) = if self.scanned {
            (self.next, self.next.saturating_add(RESYNC_WINDOW))
        } else {
            self.scanned = true;
            (0, own.len())
        };
        let window = own.get(start..end.min(own.len())).unwrap_or(&[]);
        if let Some(i) = window.iter().position(|s| s == found) {
            self.next = start + i + 1;
        }
    }
}

/// Whether `reading` names series `s`: its four names and its labels equal
/// the interned ones.
fn names_match(
    s: &HostSeries,
    reading: &ReadingView<'_>,
    strings: &Interner,
    labelsets: &LabelSets,
) -> bool {
    // The sensor name first: of the four, the one that differs between a
    // host's neighbouring series.
    strings.resolve(s.name) == reading.name
        && strings.resolve(s.q) == reading.q
        && strings.resolve(s.dev) == reading.dev
        && strings.resolve(s.src) == reading.src
        && labels_match(s, reading, strings, labelsets)
}

fn labels_match(
    s: &HostSeries,
    reading: &ReadingView<'_>,
    strings: &Interner,
    labelsets: &LabelSets,
) -> bool {
    if reading.labels.is_empty() {
        return s.labels == EMPTY;
    }
    // A label set holds its pairs in key order, as the reading's map iterates.
    let pairs = labelsets.resolve(s.labels);
    pairs.len() == reading.labels.len()
        && pairs
            .iter()
            .zip(&reading.labels)
            .all(|((k, v), (rk, rv))| strings.resolve(*k) == rk && strings.resolve(*v) == rv)
}
