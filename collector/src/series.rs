//! The compact per-series storage: a key of small ids, a 24-byte value.
//!
//! Series are grouped by quantity (one [`Family`] per `q`) because that is how they
//! are exposed: every sample of `sitewatch_<q>` must be written together, and
//! grouping at ingest spares a sort of a million keys at each scrape.
//!
//! Budget: key 20 bytes + value 24 bytes = a 48-byte hash-table slot plus one
//! control byte; at hashbrown's load factor (between 7/16 and 7/8 full) that is 56
//! to 112 bytes per series, and 20 (to 40, as a `Vec` grows) in its host's list
//! ([`HostSeries`]). `examples/memory.rs` measures about 112 bytes of RSS per
//! series at a million series, all included, against a budget of 200.

use sitewatch_protocol::ReadingState;

use crate::intern::{Id, IdMap};

/// Which series within a quantity's family. The site and host are the host's slot
/// in the state's host table (see `state.rs`), which names both in 4 bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SeriesKey {
    pub host: u32,
    pub src: Id,
    pub dev: Id,
    pub name: Id,
    /// The reading's extra labels as one label-set id.
    pub labels: Id,
}

/// A series as its host lists it: its quantity and its key without the host
/// (the list's owner). The state's tables are grouped by quantity for the
/// scrape; this list is the other way in, so that what one host holds is found
/// without a walk over every series of every host (the signals snapshot takes
/// a host again each time it speaks). 20 bytes a series.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HostSeries {
    pub q: Id,
    pub src: Id,
    pub dev: Id,
    pub name: Id,
    pub labels: Id,
}

impl HostSeries {
    pub fn new(q: Id, key: &SeriesKey) -> Self {
        HostSeries {
            q,
            src: key.src,
            dev: key.dev,
            name: key.name,
            labels: key.labels,
        }
    }

    /// Its key in its family's table, `host` being its owner's slot.
    pub fn key(&self, host: u32) -> SeriesKey {
        SeriesKey {
            host,
            src: self.src,
            dev: self.dev,
            name: self.name,
            labels: self.labels,
        }
    }
}

/// The latest reading of a series.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SeriesValue {
    /// NaN stands for `null` (the sensor could not be read): the wire never carries
    /// a non-finite number, so NaN is free to mean "no value" and saves an `Option`'s
    /// 8 bytes.
    value: f64,
    /// When the value was read (the reading's `ts`, else its batch's), Unix ms on
    /// the agent's clock.
    pub ts_ms: i64,
    /// When the collector last received it, Unix seconds rounded up, on the
    /// collector's clock: expiry is measured from here so that an agent whose
    /// clock is off still has its series exposed.
    pub seen_s: u32,
    pub state: ReadingState,
}

impl SeriesValue {
    pub fn new(value: Option<f64>, state: ReadingState, ts_ms: i64, now_ms: i64) -> Self {
        SeriesValue {
            value: value.filter(|v| v.is_finite()).unwrap_or(f64::NAN),
            ts_ms,
            seen_s: seen_seconds(now_ms),
            state,
        }
    }

    /// The value, `None` when the sensor could not be read.
    pub fn value(&self) -> Option<f64> {
        if self.value.is_nan() {
            None
        } else {
            Some(self.value)
        }
    }

    /// Whether the series has not been refreshed for `stale_after_ms` at `now_ms`.
    pub fn is_stale(&self, stale_after_ms: u64, now_ms: i64) -> bool {
        let seen_ms = i64::from(self.seen_s) * 1000;
        let age = now_ms.saturating_sub(seen_ms);
        age > i64::try_from(stale_after_ms).unwrap_or(i64::MAX)
    }

    /// The first instant at which [`Self::is_stale`] holds.
    pub fn stale_at_ms(&self, stale_after_ms: u64) -> i64 {
        let seen_ms = i64::from(self.seen_s) * 1000;
        seen_ms
            .saturating_add(i64::try_from(stale_after_ms).unwrap_or(i64::MAX))
            .saturating_add(1)
    }
}

/// Unix seconds, rounded up so that a series expires late rather than early, and
/// held in a `u32` (enough until 2106).
pub fn seen_seconds(now_ms: i64) -> u32 {
    let ms = now_ms.max(0);
    let s = ms / 1000 + i64::from(ms % 1000 != 0);
    u32::try_from(s).unwrap_or(u32::MAX)
}

/// All series of one quantity.
#[derive(Debug, Default)]
pub struct Family {
    pub series: IdMap<SeriesKey, SeriesValue>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slot_stays_within_the_memory_budget() {
        assert_eq!(std::mem::size_of::<SeriesKey>(), 20);
        assert_eq!(std::mem::size_of::<SeriesValue>(), 24);
        assert_eq!(std::mem::size_of::<(SeriesKey, SeriesValue)>(), 48);
        assert_eq!(std::mem::size_of::<HostSeries>(), 20);
    }

    #[test]
    fn null_is_kept_as_nan_and_read_back_as_none() {
        let v = SeriesValue::new(None, ReadingState::Unknown, 1, 1);
        assert_eq!(v.value(), None);
        let v = SeriesValue::new(Some(23.5), ReadingState::Ok, 1, 1);
        assert_eq!(v.value(), Some(23.5));
    }

    #[test]
    fn series_expires_after_its_window_measured_from_receipt() {
        // Received at 100.2 s: recorded as 101 s (rounded up).
        let v = SeriesValue::new(Some(1.0), ReadingState::Ok, 0, 100_200);
        assert_eq!(v.seen_s, 101);
        assert!(!v.is_stale(15_000, 116_000));
        assert!(v.is_stale(15_000, 116_001));
        assert_eq!(seen_seconds(5_000), 5);
        assert_eq!(seen_seconds(-5), 0);
    }
}
