//! Duplicate and gap detection on a per-boot sequence number. Pure: no I/O, no clock.
//!
//! An agent numbers its readings messages (and, separately, its events messages)
//! `seq` = 1, 2, 3, ... per `boot`. QoS 1 means "at least once": after a reconnect
//! the broker or the agent may deliver a batch again, so the collector remembers
//! which of the last [`WINDOW`] sequence numbers it has seen and drops repeats. A
//! jump forward counts the numbers skipped as gaps (lost batches).
//!
//! A sequence is named by `(boot, seq)`, not by `seq` alone: an agent with a
//! disk buffer sends, after a restart, what its previous boot kept (its
//! payloads carry that boot), interleaved with its new boot's messages. So
//! [`Sequences`] keeps one pair of windows per boot, for the last [`BOOTS`]
//! boots seen, and a batch of an earlier boot arriving after the new boot's
//! birth is new data, not a stale repeat. Events may also carry a stable `id`
//! (a SEL entry read again after a crash): [`EventIds`] remembers the last
//! [`EVENT_IDS`] of them per host.

use std::collections::{HashSet, VecDeque};
use std::hash::{DefaultHasher, Hash, Hasher};
use std::sync::Arc;

/// How many sequence numbers below the highest one are remembered.
pub const WINDOW: u64 = 128;

/// What to do with a message carrying a sequence number.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// New: ingest it. `gap` numbers were skipped since the highest seen
    /// (0 when in order, or when the message fills an earlier gap).
    Fresh { gap: u64 },
    /// Seen before: drop it.
    Duplicate,
    /// Far behind the highest number seen: the agent restarted its sequence without
    /// the collector seeing its new boot (a birth lost or arriving out of order).
    /// The window restarts from this number; ingest it.
    Restarted,
}

/// The sequence window of one stream (a host's readings or events).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SeqWindow {
    /// Highest sequence number seen, `None` before the first.
    high: Option<u64>,
    /// Bit `i` set: `high - i` was seen (bit 0 is `high` itself).
    seen: u128,
}

impl SeqWindow {
    /// Forgets everything: a new boot starts a new sequence.
    pub fn reset(&mut self) {
        *self = SeqWindow::default();
    }

    /// The highest sequence number seen.
    pub fn high(&self) -> Option<u64> {
        self.high
    }

    /// Records `seq` and says whether it is new.
    pub fn check(&mut self, seq: u64) -> Verdict {
        let Some(high) = self.high else {
            // The first number of a stream: nothing to compare with, so no gap (the
            // collector may have started in the middle of the boot).
            self.high = Some(seq);
            self.seen = 1;
            return Verdict::Fresh { gap: 0 };
        };
        if seq > high {
            let ahead = seq - high;
            self.seen = if ahead >= WINDOW {
                1
            } else {
                (self.seen << ahead) | 1
            };
            self.high = Some(seq);
            return Verdict::Fresh { gap: ahead - 1 };
        }
        let behind = high - seq;
        if behind >= WINDOW {
            // Redeliveries are of the last few in-flight batches, never of hundreds;
            // this far behind, the sequence itself started again.
            self.high = Some(seq);
            self.seen = 1;
            return Verdict::Restarted;
        }
        let bit = 1u128 << behind;
        if self.seen & bit != 0 {
            Verdict::Duplicate
        } else {
            // A late arrival within the window: new data, and the gap it fills was
            // already counted when the jump happened (counters only go up).
            self.seen |= bit;
            Verdict::Fresh { gap: 0 }
        }
    }
}

/// Boots remembered per host: the current one and a few before it, whose
/// buffered batches may still be on their way.
pub const BOOTS: usize = 4;

/// The sequence windows of one boot.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct BootWindows {
    boot: Option<Arc<str>>,
    readings: SeqWindow,
    events: SeqWindow,
}

/// The readings and events windows of one host, per boot.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Sequences {
    /// Least recently used first.
    boots: VecDeque<BootWindows>,
}

/// Which stream of a host.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stream {
    Readings,
    Events,
}

impl Sequences {
    /// Records `seq` of `stream` for `boot` (the payload's own boot, else the
    /// host's last announced one; `None` when neither is known).
    pub fn check(&mut self, boot: Option<&str>, stream: Stream, seq: u64) -> Verdict {
        let found = self.boots.iter().position(|w| w.boot.as_deref() == boot);
        let mut windows = match found.and_then(|i| self.boots.remove(i)) {
            Some(w) => w,
            None => {
                if self.boots.len() >= BOOTS {
                    self.boots.pop_front();
                }
                BootWindows {
                    boot: boot.map(Arc::from),
                    ..BootWindows::default()
                }
            }
        };
        let verdict = match stream {
            Stream::Readings => windows.readings.check(seq),
            Stream::Events => windows.events.check(seq),
        };
        self.boots.push_back(windows);
        verdict
    }
}

/// Event ids remembered per host.
pub const EVENT_IDS: usize = 256;

/// The last [`EVENT_IDS`] event ids of one host, as 64-bit hashes (8 bytes
/// each, allocated only for hosts that send ids).
#[derive(Debug, Clone, Default)]
pub struct EventIds {
    order: VecDeque<u64>,
    seen: HashSet<u64>,
}

impl EventIds {
    /// Whether this is the first time `(src, dev, id)` is seen; remembers it.
    pub fn first_time(&mut self, src: &str, dev: &str, id: &str) -> bool {
        // std's SipHash with fixed keys: the same on every run, and a collision
        // is a 2^-64 chance among a host's last few hundred events.
        let mut h = DefaultHasher::new();
        (src, dev, id).hash(&mut h);
        let key = h.finish();
        if !self.seen.insert(key) {
            return false;
        }
        self.order.push_back(key);
        if self.order.len() > EVENT_IDS
            && let Some(old) = self.order.pop_front()
        {
            self.seen.remove(&old);
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_earlier_boots_batches_after_the_new_boots_are_fresh() {
        let mut s = Sequences::default();
        // The new boot's first heartbeats arrive first...
        for seq in 1..=3 {
            assert_eq!(
                s.check(Some("new"), Stream::Readings, seq),
                Verdict::Fresh { gap: 0 }
            );
        }
        // ...then the old boot's buffered batches, which reuse those numbers.
        for seq in 1..=200 {
            assert_eq!(
                s.check(Some("old"), Stream::Readings, seq),
                Verdict::Fresh { gap: 0 },
                "{seq}"
            );
        }
        assert_eq!(
            s.check(Some("old"), Stream::Readings, 200),
            Verdict::Duplicate
        );
        assert_eq!(
            s.check(Some("new"), Stream::Readings, 3),
            Verdict::Duplicate
        );
        assert_eq!(
            s.check(Some("new"), Stream::Readings, 4),
            Verdict::Fresh { gap: 0 }
        );
        // Events count apart.
        assert_eq!(
            s.check(Some("old"), Stream::Events, 1),
            Verdict::Fresh { gap: 0 }
        );
    }

    #[test]
    fn only_the_last_boots_are_remembered() {
        let mut s = Sequences::default();
        for boot in ["a", "b", "c", "d", "e"] {
            s.check(Some(boot), Stream::Readings, 1);
        }
        assert_eq!(s.boots.len(), BOOTS);
        // "a" was forgotten: its number is new again.
        assert_eq!(
            s.check(Some("a"), Stream::Readings, 1),
            Verdict::Fresh { gap: 0 }
        );
        assert_eq!(s.check(Some("e"), Stream::Readings, 1), Verdict::Duplicate);
        // No boot at all is a stream of its own.
        assert_eq!(
            s.check(None, Stream::Readings, 1),
            Verdict::Fresh { gap: 0 }
        );
        assert_eq!(s.check(None, Stream::Readings, 1), Verdict::Duplicate);
    }

    #[test]
    fn a_redelivered_event_id_is_seen_once_and_old_ids_are_forgotten() {
        let mut ids = EventIds::default();
        assert!(ids.first_time("ipmi", "bmc", "sel.bmc.0001"));
        assert!(!ids.first_time("ipmi", "bmc", "sel.bmc.0001"));
        assert!(
            ids.first_time("ipmi", "bmc2", "sel.bmc.0001"),
            "another device"
        );
        for i in 0..EVENT_IDS {
            ids.first_time("ipmi", "bmc", &format!("x{i}"));
        }
        assert!(ids.order.len() <= EVENT_IDS && ids.seen.len() <= EVENT_IDS);
        assert!(ids.first_time("ipmi", "bmc", "sel.bmc.0001"), "forgotten");
    }

    #[test]
    fn in_order_sequence_has_no_gaps_and_no_duplicates() {
        let mut w = SeqWindow::default();
        for seq in 1..=500 {
            assert_eq!(w.check(seq), Verdict::Fresh { gap: 0 }, "{seq}");
        }
        assert_eq!(w.high(), Some(500));
    }

    #[test]
    fn redelivered_batch_after_reconnect_is_a_duplicate() {
        let mut w = SeqWindow::default();
        for seq in 1..=10 {
            w.check(seq);
        }
        // The broker redelivers 8, 9, 10 after a reconnect, then 11 follows.
        assert_eq!(w.check(8), Verdict::Duplicate);
        assert_eq!(w.check(9), Verdict::Duplicate);
        assert_eq!(w.check(10), Verdict::Duplicate);
        assert_eq!(w.check(11), Verdict::Fresh { gap: 0 });
        assert_eq!(w.check(11), Verdict::Duplicate);
    }

    #[test]
    fn a_jump_counts_the_missing_numbers_once() {
        let mut w = SeqWindow::default();
        w.check(41);
        assert_eq!(w.check(42), Verdict::Fresh { gap: 0 });
        assert_eq!(w.check(46), Verdict::Fresh { gap: 3 });
        // 44 arrives late: new data, the gap was already counted.
        assert_eq!(w.check(44), Verdict::Fresh { gap: 0 });
        assert_eq!(w.check(44), Verdict::Duplicate);
        assert_eq!(w.check(43), Verdict::Fresh { gap: 0 });
        assert_eq!(w.check(47), Verdict::Fresh { gap: 0 });
    }

    #[test]
    fn the_window_slides_past_old_numbers() {
        let mut w = SeqWindow::default();
        w.check(1);
        assert_eq!(w.check(1 + WINDOW - 1), Verdict::Fresh { gap: WINDOW - 2 });
        // 1 is still exactly at the window's edge.
        assert_eq!(w.check(1), Verdict::Duplicate);
        // A jump beyond the window clears it.
        assert_eq!(
            w.check(1000),
            Verdict::Fresh {
                gap: 1000 - WINDOW - 1
            }
        );
        assert_eq!(w.check(999), Verdict::Fresh { gap: 0 });
        assert_eq!(w.check(1000), Verdict::Duplicate);
    }

    #[test]
    fn far_behind_means_the_sequence_restarted() {
        let mut w = SeqWindow::default();
        for seq in 1..=1000 {
            w.check(seq);
        }
        assert_eq!(w.check(1), Verdict::Restarted);
        assert_eq!(w.check(2), Verdict::Fresh { gap: 0 });
        assert_eq!(w.check(1), Verdict::Duplicate);
    }

    #[test]
    fn reset_forgets_the_boot() {
        let mut w = SeqWindow::default();
        w.check(5);
        w.reset();
        assert_eq!(w.high(), None);
        assert_eq!(w.check(5), Verdict::Fresh { gap: 0 });
    }
}
