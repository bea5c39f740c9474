//! The FSD policy: when the facade raises "forced shutdown" for a UPS by
//! itself. Pure: fed the UPS's state and the time, it says what changed.
//!
//! A condition (on battery with the runtime left below `runtime_below`, or on
//! battery for `on_battery_for`) must hold for `grace` before FSD is raised.
//! FSD stays raised (the servers are already going down) until the UPS is back
//! on mains; a primary upsmon's `FSD` is kept the same way, and one sent while
//! the UPS is on mains (a planned shutdown) until the agent restarts or the
//! next battery episode ends. In a dry run the
//! policy says what it would raise and the status stays as it is.

use std::time::Duration;

use tokio::time::Instant;

use super::config::FsdConfig;

/// What one observation changed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    Raised(String),
    /// Dry run: what would have been raised.
    WouldRaise(String),
    /// Back on mains: FSD cleared.
    Cleared,
}

/// One UPS's FSD state.
#[derive(Debug, Clone, Default)]
pub struct Tracker {
    on_battery_since: Option<Instant>,
    /// When the current condition first held.
    condition_since: Option<Instant>,
    raised: bool,
    /// A dry run said so already (once per battery episode).
    reported: bool,
    by_primary: bool,
}

impl Tracker {
    /// Whether `ups.status` carries FSD.
    pub fn fsd(&self) -> bool {
        self.raised || self.by_primary
    }

    /// A primary upsmon sent `FSD`.
    pub fn set_by_primary(&mut self) {
        self.by_primary = true;
    }

    /// One observation: `on_battery` and the runtime left, in seconds.
    pub fn observe(
        &mut self,
        policy: &FsdConfig,
        now: Instant,
        on_battery: bool,
        runtime: Option<f64>,
    ) -> Option<Change> {
        if !on_battery {
            let was = self.fsd();
            // A primary's FSD sent while on mains (a planned shutdown) stays;
            // one of a battery episode ends with it.
            let by_primary = self.by_primary && self.on_battery_since.is_none();
            *self = Tracker {
                by_primary,
                ..Tracker::default()
            };
            return (was && !self.fsd()).then_some(Change::Cleared);
        }
        let since = *self.on_battery_since.get_or_insert(now);
        let low_runtime = match (policy.runtime_below, runtime) {
            (Some(limit), Some(r)) if r < limit.as_secs_f64() => Some(format!(
                "runtime left {} below {}",
                humantime::format_duration(Duration::from_secs(r.max(0.0) as u64)),
                humantime::format_duration(limit)
            )),
            _ => None,
        };
        let too_long = policy
            .on_battery_for
            .filter(|limit| now.saturating_duration_since(since) >= *limit)
            .map(|limit| {
                format!(
                    "on battery for {} or more",
                    humantime::format_duration(limit)
                )
            });
        let Some(reason) = low_runtime.or(too_long) else {
            self.condition_since = None;
            return None;
        };
        let held = *self.condition_since.get_or_insert(now);
        if self.raised || now.saturating_duration_since(held) < policy.grace {
            return None;
        }
        if policy.dry_run {
            if self.reported {
                return None;
            }
            self.reported = true;
            return Some(Change::WouldRaise(reason));
        }
        self.raised = true;
        Some(Change::Raised(reason))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(runtime_below: u64, grace: u64, dry_run: bool) -> FsdConfig {
        FsdConfig {
            runtime_below: Some(Duration::from_secs(runtime_below)),
            on_battery_for: None,
            grace: Duration::from_secs(grace),
            dry_run,
        }
    }

    #[tokio::test(start_paused = true)]
    async fn raises_after_the_grace_and_clears_on_mains() {
        let p = policy(300, 30, false);
        let mut t = Tracker::default();
        let t0 = Instant::now();
        assert_eq!(t.observe(&p, t0, true, Some(600.0)), None);
        assert_eq!(
            t.observe(&p, t0 + Duration::from_secs(10), true, Some(200.0)),
            None
        );
        // A dip that recovers restarts the grace.
        assert_eq!(
            t.observe(&p, t0 + Duration::from_secs(20), true, Some(400.0)),
            None
        );
        assert_eq!(
            t.observe(&p, t0 + Duration::from_secs(30), true, Some(200.0)),
            None
        );
        assert_eq!(
            t.observe(&p, t0 + Duration::from_secs(59), true, Some(190.0)),
            None
        );
        assert!(!t.fsd());
        assert!(matches!(
            t.observe(&p, t0 + Duration::from_secs(60), true, Some(180.0)),
            Some(Change::Raised(_))
        ));
        assert!(t.fsd());
        assert_eq!(
            t.observe(&p, t0 + Duration::from_secs(61), true, Some(500.0)),
            None
        );
        assert!(t.fsd(), "FSD stays until the mains return");
        assert_eq!(
            t.observe(&p, t0 + Duration::from_secs(70), false, Some(500.0)),
            Some(Change::Cleared)
        );
        assert!(!t.fsd());
    }

    #[tokio::test(start_paused = true)]
    async fn a_dry_run_says_so_once_and_raises_nothing() {
        let p = policy(300, 0, true);
        let mut t = Tracker::default();
        let t0 = Instant::now();
        assert!(matches!(
            t.observe(&p, t0, true, Some(100.0)),
            Some(Change::WouldRaise(_))
        ));
        assert_eq!(
            t.observe(&p, t0 + Duration::from_secs(1), true, Some(90.0)),
            None
        );
        assert!(!t.fsd());
    }

    #[tokio::test(start_paused = true)]
    async fn on_battery_for_raises_whatever_the_runtime() {
        let p = FsdConfig {
            on_battery_for: Some(Duration::from_secs(600)),
            grace: Duration::ZERO,
            ..FsdConfig::default()
        };
        let mut t = Tracker::default();
        let t0 = Instant::now();
        assert_eq!(t.observe(&p, t0, true, None), None);
        assert!(matches!(
            t.observe(&p, t0 + Duration::from_secs(600), true, None),
            Some(Change::Raised(_))
        ));
    }

    #[test]
    fn without_a_policy_only_a_primary_raises() {
        let mut t = Tracker::default();
        let now = Instant::now();
        assert_eq!(t.observe(&FsdConfig::default(), now, true, Some(1.0)), None);
        t.set_by_primary();
        assert!(t.fsd());
        assert_eq!(
            t.observe(&FsdConfig::default(), now, false, None),
            Some(Change::Cleared)
        );
        // Sent on mains: it stays.
        t.set_by_primary();
        assert_eq!(t.observe(&FsdConfig::default(), now, false, None), None);
        assert!(t.fsd());
    }
}
