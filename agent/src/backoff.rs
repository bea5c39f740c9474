//! Retry delays: capped exponential backoff with jitter. Pure.
//!
//! The bound doubles from `min` up to `max` with each failure.
//! [`Backoff::next_delay`] draws uniformly in `[0, bound]` ("full jitter"), so
//! that when a broker comes back, ten thousand agents spread their reconnects
//! over the whole bound instead of arriving in the same second.
//! [`Backoff::next_spaced_delay`] draws in `[bound / 2, bound]` ("equal
//! jitter"), for retrying a dead device: full jitter would retry within a
//! tenth of the bound one time in ten, so a dead device would not reliably be
//! read less often, which is the point of backing off from it.

use std::time::Duration;

use rand::Rng;

#[derive(Debug, Clone)]
pub struct Backoff {
    min: Duration,
    max: Duration,
    failures: u32,
}

impl Backoff {
    pub fn new(min: Duration, max: Duration) -> Self {
        Backoff {
            min,
            max: max.max(min),
            failures: 0,
        }
    }

    /// The upper bound of the next delay: `min * 2^failures`, at most `max`.
    pub fn bound(&self) -> Duration {
        // 2^20 x 1 ms is already past any sensible cap; stopping the shift there
        // keeps the multiplication from overflowing.
        let factor = 1u32 << self.failures.min(20);
        self.min.saturating_mul(factor).min(self.max)
    }

    /// One more failure: the delay to wait before the next attempt.
    pub fn next_delay(&mut self, rng: &mut impl Rng) -> Duration {
        self.draw(rng, false)
    }

    /// One more failure: a delay of at least half the bound, at most the bound.
    pub fn next_spaced_delay(&mut self, rng: &mut impl Rng) -> Duration {
        self.draw(rng, true)
    }

    /// Counts a failure and draws a delay up to the bound: from zero, or
    /// (`spaced`) from half of it.
    fn draw(&mut self, rng: &mut impl Rng, spaced: bool) -> Duration {
        let bound = self.bound();
        self.failures = self.failures.saturating_add(1);
        let nanos = u64::try_from(bound.as_nanos()).unwrap_or(u64::MAX);
        let low = if spaced { nanos / 2 } else { 0 };
        Duration::from_nanos(rng.random_range(low..=nanos))
    }

    /// A connection succeeded: start again from `min`.
    pub fn reset(&mut self) {
        self.failures = 0;
    }

    pub fn failures(&self) -> u32 {
        self.failures
    }
}

#[cfg(test)]
mod tests {
    use rand::{SeedableRng, rngs::StdRng};

    use super::*;

    const MIN: Duration = Duration::from_millis(500);
    const MAX: Duration = Duration::from_secs(30);

    #[test]
    fn bound_doubles_up_to_the_cap() {
        let mut b = Backoff::new(MIN, MAX);
        let mut rng = StdRng::seed_from_u64(1);
        let mut bounds = Vec::new();
        for _ in 0..10 {
            bounds.push(b.bound().as_millis());
            b.next_delay(&mut rng);
        }
        assert_eq!(
            bounds,
            vec![
                500, 1000, 2000, 4000, 8000, 16000, 30000, 30000, 30000, 30000
            ]
        );
    }

    #[test]
    fn delays_never_exceed_the_bound_even_after_many_failures() {
        let mut b = Backoff::new(MIN, MAX);
        let mut rng = StdRng::seed_from_u64(2);
        for _ in 0..1000 {
            let bound = b.bound();
            let d = b.next_delay(&mut rng);
            assert!(d <= bound && d <= MAX, "{d:?} > {bound:?}");
        }
    }

    #[test]
    fn delays_are_spread_over_the_whole_bound() {
        // Ten thousand agents at the cap: their delays must not bunch up.
        let mut rng = StdRng::seed_from_u64(3);
        let mut per_second = [0u32; 30];
        for _ in 0..10_000 {
            let mut b = Backoff::new(MIN, MAX);
            b.failures = 10;
            let d = b.next_delay(&mut rng);
            per_second[(d.as_secs() as usize).min(29)] += 1;
        }
        let busiest = per_second.iter().max().copied().unwrap_or(0);
        assert!(busiest < 500, "{per_second:?}"); // ~333 expected per second
        assert!(per_second.iter().all(|n| *n > 200), "{per_second:?}");
    }

    #[test]
    fn spaced_delays_keep_at_least_half_the_bound_and_still_spread() {
        let mut rng = StdRng::seed_from_u64(5);
        let mut b = Backoff::new(MIN, MAX);
        for _ in 0..1000 {
            let bound = b.bound();
            let d = b.next_spaced_delay(&mut rng);
            assert!(d >= bound / 2 && d <= bound, "{d:?} outside {bound:?}");
        }
        // At the cap: spread over the upper half, 15 s to 30 s.
        let mut per_second = [0u32; 30];
        for _ in 0..10_000 {
            let mut b = Backoff::new(MIN, MAX);
            b.failures = 10;
            per_second[(b.next_spaced_delay(&mut rng).as_secs() as usize).min(29)] += 1;
        }
        assert!(per_second[..15].iter().all(|n| *n == 0), "{per_second:?}");
        assert!(per_second[15..].iter().all(|n| *n > 400), "{per_second:?}");
    }

    #[test]
    fn reset_starts_again_from_min() {
        let mut b = Backoff::new(MIN, MAX);
        let mut rng = StdRng::seed_from_u64(4);
        for _ in 0..5 {
            b.next_delay(&mut rng);
        }
        b.reset();
        assert_eq!(b.bound(), MIN);
        assert!(b.next_delay(&mut rng) <= MIN);
    }
}
