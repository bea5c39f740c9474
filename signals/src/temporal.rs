//! The life of one signal: when a condition that holds is raised, when one that
//! stopped holding clears, and flap damping. Pure: time is passed in.
//!
//! ```text
//!            holds                 held for `for`               false
//!   Idle ─────────────▶ Pending ─────────────────▶ Active ─────────────▶ Clearing
//!    ▲   (for = 0: straight to Active)  │ false      ▲  holds again           │
//!    └──────────────────────────────────┘            └────────────────────────┤
//!    ▲                       false for `clear_after` (`hold` when flapping)   │
//!    └────────────────────────────────────────────────────────────────────────┘
//! ```
//!
//! - `since` is when the condition *first* held in this episode (the start of
//!   Pending), not when the `for` ran out: "UPS on battery since 10:00:00" is the
//!   fact people want, and it is what Prometheus calls `activeAt`. Holding again
//!   while Clearing continues the same episode, so `since` does not move.
//! - A Pending condition that stops holding is forgotten at once: a brief spike
//!   raises nothing and needs no clear delay.
//! - Flapping: a signal raised when it has changed (raised or cleared) more than
//!   `max_changes` times within `window` is damped: it clears only after its
//!   condition has been false for `hold` (if longer than `clear_after`), however
//!   long that takes, so it stays up and pages once.

use std::collections::VecDeque;

/// Flap damping parameters, in milliseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FlapPolicy {
    pub window_ms: i64,
    pub max_changes: usize,
    pub hold_ms: i64,
}

/// Where a signal is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Phase {
    #[default]
    Idle,
    /// The condition holds but not yet for its `for`.
    Pending { first_true_ms: i64 },
    /// Raised.
    Active { since_ms: i64 },
    /// Raised, its condition false since `false_since_ms`, not for long enough yet.
    Clearing { since_ms: i64, false_since_ms: i64 },
}

/// A published change.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transition {
    Raised,
    Cleared,
}

/// The state machine of one signal (one tier of one key).
#[derive(Debug, Clone, Default)]
pub struct Tracker {
    phase: Phase,
    /// When it was raised or cleared, within the flap window.
    changes: VecDeque<i64>,
    /// Found flapping while raised: it clears only after `hold`, even once the
    /// changes that made it flap have left the window.
    damped: bool,
}

impl Tracker {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn phase(&self) -> Phase {
        self.phase
    }

    /// Raised (Active, or Clearing and not cleared yet).
    pub fn is_active(&self) -> bool {
        matches!(self.phase, Phase::Active { .. } | Phase::Clearing { .. })
    }

    /// When the condition first held, for an active signal.
    pub fn since_ms(&self) -> Option<i64> {
        match self.phase {
            Phase::Active { since_ms } | Phase::Clearing { since_ms, .. } => Some(since_ms),
            _ => None,
        }
    }

    /// Whether it has changed more than the policy allows within its window.
    pub fn is_flapping(&self, flap: &FlapPolicy) -> bool {
        self.changes.len() > flap.max_changes
    }

    /// Whether it is held active by flap damping.
    pub fn is_damped(&self) -> bool {
        self.damped
    }

    /// Idle with no flap history: nothing worth keeping.
    pub fn is_forgettable(&self) -> bool {
        self.phase == Phase::Idle && self.changes.is_empty()
    }

    /// Feeds whether the condition holds at `now_ms`; returns the change, if any.
    ///
    /// `for_ms` is the condition's own (only read while it holds); time that goes
    /// backwards counts as no time.
    pub fn observe(
        &mut self,
        holds: bool,
        for_ms: i64,
        clear_after_ms: i64,
        flap: &FlapPolicy,
        now_ms: i64,
    ) -> Option<Transition> {
        while self
            .changes
            .front()
            .is_some_and(|&t| now_ms.saturating_sub(t) >= flap.window_ms)
        {
            self.changes.pop_front();
        }
        let elapsed = |from: i64| now_ms.saturating_sub(from).max(0);
        let was_active = self.is_active();
        self.phase = match (self.phase, holds) {
            (Phase::Idle, false) | (Phase::Pending { .. }, false) => Phase::Idle,
            (Phase::Idle, true) => Self::pending(now_ms, for_ms, now_ms),
            (Phase::Pending { first_true_ms }, true) => {
                Self::pending(first_true_ms, for_ms, now_ms)
            }
            (Phase::Active { since_ms }, true) | (Phase::Clearing { since_ms, .. }, true) => {
                Phase::Active { since_ms }
            }
            (Phase::Active { since_ms }, false) => Phase::Clearing {
                since_ms,
                false_since_ms: now_ms,
            },
            (phase @ Phase::Clearing { .. }, false) => phase,
        };
        if let Phase::Clearing { false_since_ms, .. } = self.phase {
            let delay = if self.damped {
                clear_after_ms.max(flap.hold_ms)
            } else {
                clear_after_ms
            };
            if elapsed(false_since_ms) >= delay {
                self.phase = Phase::Idle;
                self.damped = false;
            }
        }
        let transition = match (was_active, self.is_active()) {
            (false, true) => Transition::Raised,
            (true, false) => Transition::Cleared,
            _ => return None,
        };
        self.changes.push_back(now_ms);
        if transition == Transition::Raised && self.is_flapping(flap) {
            self.damped = true;
        }
        Some(transition)
    }

    fn pending(first_true_ms: i64, for_ms: i64, now_ms: i64) -> Phase {
        if now_ms.saturating_sub(first_true_ms) >= for_ms {
            Phase::Active {
                since_ms: first_true_ms,
            }
        } else {
            Phase::Pending { first_true_ms }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FLAP: FlapPolicy = FlapPolicy {
        window_ms: 600_000,
        max_changes: 4,
        hold_ms: 300_000,
    };

    /// Feeds `holds` every second over [from, to) and collects the transitions.
    fn run(
        t: &mut Tracker,
        holds: bool,
        from: i64,
        to: i64,
        for_ms: i64,
    ) -> Vec<(i64, Transition)> {
        (from..to)
            .step_by(1000)
            .filter_map(|now| {
                t.observe(holds, for_ms, 30_000, &FLAP, now)
                    .map(|x| (now, x))
            })
            .collect()
    }

    #[test]
    fn raised_after_for_with_since_when_first_true() {
        let mut t = Tracker::new();
        assert_eq!(run(&mut t, true, 0, 10_000, 10_000), []);
        assert_eq!(t.phase(), Phase::Pending { first_true_ms: 0 });
        assert_eq!(
            run(&mut t, true, 10_000, 11_000, 10_000),
            [(10_000, Transition::Raised)]
        );
        assert_eq!(t.since_ms(), Some(0));
    }

    #[test]
    fn zero_for_raises_at_once() {
        let mut t = Tracker::new();
        assert_eq!(
            run(&mut t, true, 5_000, 6_000, 0),
            [(5_000, Transition::Raised)]
        );
        assert_eq!(t.since_ms(), Some(5_000));
    }

    #[test]
    fn pending_that_stops_holding_is_forgotten() {
        let mut t = Tracker::new();
        run(&mut t, true, 0, 5_000, 10_000);
        run(&mut t, false, 5_000, 6_000, 10_000);
        assert!(t.is_forgettable());
        // Starts over: 10 s more are needed.
        assert_eq!(run(&mut t, true, 6_000, 16_000, 10_000), []);
        assert_eq!(
            run(&mut t, true, 16_000, 17_000, 10_000),
            [(16_000, Transition::Raised)]
        );
        assert_eq!(t.since_ms(), Some(6_000));
    }

    #[test]
    fn clears_only_after_clear_after_and_a_blip_keeps_the_episode() {
        let mut t = Tracker::new();
        run(&mut t, true, 0, 1_000, 0);
        assert_eq!(run(&mut t, false, 1_000, 20_000, 0), []);
        assert!(matches!(t.phase(), Phase::Clearing { .. }));
        run(&mut t, true, 20_000, 21_000, 0);
        assert_eq!(t.phase(), Phase::Active { since_ms: 0 });
        assert_eq!(
            run(&mut t, false, 21_000, 60_000, 0),
            [(51_000, Transition::Cleared)]
        );
    }

    #[test]
    fn flapping_is_held_until_quiet_for_the_hold() {
        let mut t = Tracker::new();
        let mut changes = Vec::new();
        // 40 s bad, 40 s good, over and over: each cycle raises and clears.
        for cycle in 0..3 {
            let start = cycle * 80_000;
            changes.extend(run(&mut t, true, start, start + 40_000, 0));
            changes.extend(run(&mut t, false, start + 40_000, start + 80_000, 0));
        }
        // Raised at 0, 80, 160 s; cleared at 70 and 150 s; the third clear is held.
        let times: Vec<i64> = changes.iter().map(|c| c.0).collect();
        assert_eq!(times, [0, 70_000, 80_000, 150_000, 160_000]);
        assert!(t.is_active());
        assert!(t.is_flapping(&FLAP));
        // Quiet from 200 s: cleared 300 s later, not 30 s.
        let cleared = run(&mut t, false, 240_000, 600_000, 0);
        assert_eq!(cleared, [(500_000, Transition::Cleared)]);
    }
}
