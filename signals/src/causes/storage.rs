//! L2 `storage`: a disk whose SMART verdict failed, which reports a critical
//! SMART reading (an NVMe critical warning), or whose defect counters grow.
//! Subject `<host>:<disk>`.
//!
//! "Growing" needs memory: the engine keeps each counter's last value per disk and
//! when it last grew. The first value seen is a baseline, never growth (nothing is
//! known of what came before); a smaller value (a replaced disk under the same
//! device name) becomes the new baseline.

use std::collections::BTreeMap;

use sitewatch_protocol::{Cause, ReadingState, Severity, quantity as q};

use super::{CauseSet, Condition, Ctx, cap_evidence, human_ms, reading_evidence};
use crate::{config::SignalsConfig, host_index::Reader, name::Name, snapshot::SeriesSnapshot};

/// Per counter (host, dev, q): what the engine saw last.
///
/// By host, then by (dev, q): a look walks a site host by host, so each host
/// costs one lookup by name and each of its counters one among its own few,
/// whose names are the snapshot's shared ones (equal by pointer at once).
#[derive(Debug, Clone, Default)]
pub struct Memory {
    hosts: BTreeMap<String, BTreeMap<(Name, Name), Counter>>,
}

#[derive(Debug, Clone, Copy)]
struct Counter {
    value: f64,
    seen_ms: i64,
    /// When it last grew, and from what.
    grew: Option<(i64, f64)>,
}

impl Counter {
    /// Records a value; returns when and from what it last grew.
    fn observe(&mut self, value: f64, now_ms: i64) -> Option<(i64, f64)> {
        if value > self.value {
            self.grew = Some((now_ms, self.value));
        } else if value < self.value {
            self.grew = None;
        }
        self.value = value;
        self.seen_ms = now_ms;
        self.grew
    }
}

impl Memory {
    /// How many counters are remembered (for the engine's own metrics).
    pub fn len(&self) -> usize {
        self.hosts.values().map(BTreeMap::len).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.hosts.is_empty()
    }

    /// Counts as seen at `now_ms` the counters the evaluation at `looked_at_ms`
    /// saw: a reused look of an unchanged picture sees the same ones.
    pub fn seen_again(&mut self, looked_at_ms: i64, now_ms: i64) {
        for c in self.hosts.values_mut().flat_map(BTreeMap::values_mut) {
            if c.seen_ms == looked_at_ms {
                c.seen_ms = now_ms;
            }
        }
    }

    /// Forgets counters not seen for `max_age_ms` (removed disks, gone hosts).
    pub fn prune(&mut self, now_ms: i64, max_age_ms: i64) {
        for counters in self.hosts.values_mut() {
            counters.retain(|_, c| now_ms.saturating_sub(c.seen_ms) <= max_age_ms);
        }
        self.hosts.retain(|_, counters| !counters.is_empty());
    }

    /// The counters of `host`, created empty if it has none (looked up by
    /// `&str` first: a host seen before costs no allocation).
    fn of_host(&mut self, host: &str) -> Option<&mut BTreeMap<(Name, Name), Counter>> {
        if !self.hosts.contains_key(host) {
            self.hosts.insert(host.to_owned(), BTreeMap::new());
        }
        self.hosts.get_mut(host)
    }
}

/// Records `value` of (dev, q) among a host's counters; returns when and from
/// what it last grew. The first value is a baseline.
fn observe(
    counters: &mut BTreeMap<(Name, Name), Counter>,
    dev: &Name,
    q: &Name,
    value: f64,
    now_ms: i64,
) -> Option<(i64, f64)> {
    let key = (dev.clone(), q.clone());
    if let Some(c) = counters.get_mut(&key) {
        return c.observe(value, now_ms);
    }
    counters.insert(
        key,
        Counter {
            value,
            seen_ms: now_ms,
            grew: None,
        },
    );
    None
}

/// What the loop below reads ([`crate::host_index`]).
/// `state` is the reading's, or the one it is asked about.
pub(crate) fn reads(r: &SeriesSnapshot, state: ReadingState, cfg: &SignalsConfig) -> bool {
    r.q.starts_with("disk_")
        || r.q == q::DISK_SMART_PASSED
        || (state == ReadingState::Critical && r.src == "smart")
        || cfg.storage.growing.iter().any(|g| r.q == *g)
}

pub fn evaluate(ctx: &Ctx<'_>, memory: &mut Memory) -> Vec<Condition> {
    let cfg = &ctx.cfg.storage;
    if !cfg.enabled {
        return Vec::new();
    }
    let growth_hold = crate::config::ms(cfg.growth_hold);
    let mut disks: BTreeMap<(&str, &str), Vec<_>> = BTreeMap::new();
    for host in &ctx.site.hosts {
        let name = host.name();
        let growing = |r: &SeriesSnapshot| cfg.growing.iter().any(|g| r.q == *g);
        // Looked up once a host, and only for a host with counters.
        let mut counters = host
            .readings_for(Reader::Storage)
            .any(|r| growing(r) && r.number().is_some())
            .then(|| memory.of_host(name))
            .flatten();
        for r in host.readings_for(Reader::Storage) {
            let is_disk_q = r.q.starts_with("disk_");
            let failed = r.q == q::DISK_SMART_PASSED && r.is_flag(0.0);
            let critical = r.state == ReadingState::Critical && (r.src == "smart" || is_disk_q);
            let mut why = None;
            if failed {
                why = Some("SMART overall health failed".to_owned());
            } else if critical {
                why = Some(format!("{} {} critical", r.src, r.name));
            }
            if growing(r)
                && let Some(value) = r.number()
                && let Some(counters) = counters.as_deref_mut()
                && let Some((at, from)) = observe(counters, &r.dev, &r.q, value, ctx.now_ms)
                && ctx.now_ms.saturating_sub(at) < growth_hold
                && why.is_none()
            {
                why = Some(format!(
                    "{} grew from {from} to {value} {} ago",
                    r.q,
                    human_ms(ctx.now_ms - at)
                ));
            }
            if let Some(why) = why {
                disks
                    .entry((name, &r.dev))
                    .or_default()
                    .push(reading_evidence(name, r, why));
            }
        }
    }
    disks
        .into_iter()
        .map(|((host, dev), evidence)| Condition {
            cause: Cause::Storage,
            subject: format!("{host}:{dev}"),
            severity: Severity::High,
            summary: format!("disk {dev} of {host} is failing"),
            evidence: cap_evidence(evidence),
            for_ms: crate::config::ms(cfg.hold_for),
            // A power cut does not wear out a disk: nothing explains this one.
            explained_by: CauseSet::EMPTY,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{
        causes::test_support::{site, with_ctx},
        config::SignalsConfig,
        snapshot::{HostSnapshot, Liveness, SeriesSnapshot},
    };

    fn disk(reallocated: f64) -> crate::snapshot::SiteSnapshot {
        site(vec![
            HostSnapshot::new("db-01", Liveness::Online).with_reading(SeriesSnapshot::ok(
                "smart",
                "sda",
                q::DISK_REALLOCATED_SECTORS,
                reallocated,
                0,
            )),
        ])
    }

    #[test]
    fn first_value_is_a_baseline_and_growth_holds_for_a_while() {
        let cfg = SignalsConfig::default();
        let mut m = Memory::default();
        assert!(with_ctx(&disk(8.0), &cfg, 0, |c| evaluate(c, &mut m)).is_empty());
        assert!(with_ctx(&disk(8.0), &cfg, 1_000, |c| evaluate(c, &mut m)).is_empty());
        let c = with_ctx(&disk(16.0), &cfg, 2_000, |c| evaluate(c, &mut m));
        assert_eq!(c.len(), 1);
        assert_eq!(c[0].subject, "db-01:sda");
        // Still flagged an hour later at the same count...
        let later = 2_000 + 3_600_000;
        assert_eq!(
            with_ctx(&disk(16.0), &cfg, later, |c| evaluate(c, &mut m)).len(),
            1
        );
        // ...but not after the hold.
        let much_later = 2_000 + 25 * 3_600_000;
        assert!(with_ctx(&disk(16.0), &cfg, much_later, |c| evaluate(c, &mut m)).is_empty());
    }

    #[test]
    fn a_smaller_count_is_a_new_disk_not_growth() {
        let cfg = SignalsConfig::default();
        let mut m = Memory::default();
        with_ctx(&disk(100.0), &cfg, 0, |c| evaluate(c, &mut m));
        assert!(with_ctx(&disk(0.0), &cfg, 1_000, |c| evaluate(c, &mut m)).is_empty());
        assert!(with_ctx(&disk(0.0), &cfg, 2_000, |c| evaluate(c, &mut m)).is_empty());
    }
}
