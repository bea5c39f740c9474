//! What the engine keeps of each site between evaluations, so that a site whose
//! picture has not changed is not looked at again.
//!
//! A site's causes are a pure function of its snapshot, the time, the config, the
//! signals raised there (value hysteresis), the vantage points' ruling and the
//! causes' memory. When the caller numbers each site's content
//! ([`crate::Engine::evaluate_incremental`]: a revision that changes whenever the
//! content does), the engine keeps, per site, what its last full look found and
//! until when that stays true with nothing new:
//!
//! - only a *quiet* look is kept: one whose causes found no condition. A site
//!   where something holds is looked at every time (its summaries carry
//!   durations, its conditions feed the `for` and clear timers), and there the
//!   cost follows what is happening, which is what an evaluation is for;
//! - it is reused while the revision, the raised signals of the site and the
//!   vantage ruling are the same, and the time is before every instant at which
//!   time alone could change the answer: the startup grace's end, a maintenance
//!   window of the site opening or closing, a cooling rise window moving past a
//!   sample (reported by the causes through [`Deadline`]);
//! - a reused look still does what a full one does to the causes' memory
//!   (the cooling medians are sampled again; the storage counters count as
//!   seen), so the next full look finds the memory it would have found.
//!
//! The outcome is the same as a full evaluation at every instant
//! (`an_incremental_evaluation_is_always_what_a_full_one_would_be`).

use std::cell::Cell;

use sitewatch_protocol::{Cause, SiteReport};

use crate::causes::vantage::Ruling;

/// The earliest instant (Unix ms) at which time alone could change what a site's
/// causes find; a cause whose answer depends on the clock lowers it.
#[derive(Debug)]
pub struct Deadline(Cell<i64>);

impl Default for Deadline {
    fn default() -> Self {
        Deadline(Cell::new(i64::MAX))
    }
}

impl Deadline {
    /// Nothing found may hold past `at_ms` unchanged.
    pub fn by(&self, at_ms: i64) {
        self.0.set(self.0.get().min(at_ms));
    }

    pub fn get(&self) -> i64 {
        self.0.get()
    }
}

/// The raised signals of one site as the causes see them (`Held`): key by key,
/// whether its alarm and its advisory are active.
pub type HeldPrint = Vec<(Cause, String, bool, bool)>;

/// A site's last quiet look.
#[derive(Debug, Clone)]
pub struct SiteCache {
    pub revision: u64,
    pub held: HeldPrint,
    pub ruling: Ruling,
    /// What the look made of the site for the peers, and when its loss began.
    pub local: SiteReport,
    pub loss_started_ms: Option<i64>,
    /// When the look was taken, and the first instant it may no longer hold.
    pub taken_at_ms: i64,
    pub valid_until_ms: i64,
    /// When its storage counters last counted as seen.
    pub seen_at_ms: i64,
}

impl SiteCache {
    /// Whether the look still holds for a site at `revision` under `held` at
    /// `now_ms` (the ruling is compared by the caller, who computes it from
    /// `local`).
    pub fn holds(&self, revision: u64, held: &HeldPrint, now_ms: i64) -> bool {
        self.revision == revision
            && (self.taken_at_ms..self.valid_until_ms).contains(&now_ms)
            && self.held == *held
    }
}
