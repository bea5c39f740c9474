//! One module per cause: pure functions from a site's picture, the config, the
//! engine memory the cause needs and the time, to the conditions true right now.
//!
//! A condition is not a signal yet: the engine's [`crate::temporal`] machine
//! decides when a condition that holds becomes a raised signal (after its `for`)
//! and when one that stopped holding clears (after `clear_after`).

pub mod cooling;
pub mod host_hardware;
pub mod host_resources;
pub mod network;
pub mod network_device;
pub mod power;
pub mod power_feed;
pub mod region;
pub mod storage;
pub mod vantage;

use std::fmt::Write as _;

use sitewatch_protocol::{Cause, Evidence, Severity, payload::EvidenceDetail};

use crate::{
    config::SignalsConfig,
    host_index::{HostIndex, Reader, Readings},
    incremental::Deadline,
    liveness::{Policy, Status},
    snapshot::{HostSnapshot, Labels, SeriesSnapshot},
};

/// The most evidence entries one signal carries; the rest are counted in a last
/// line, so that a site of 500 lost hosts does not make a 500-entry payload.
pub const MAX_EVIDENCE: usize = 24;

/// A condition true at one instant, about one subject.
#[derive(Debug, Clone, PartialEq)]
pub struct Condition {
    pub cause: Cause,
    /// A host, `<host>:<resource>`, `<host>:<disk>`, a device, the site, a zone, a region.
    pub subject: String,
    /// `low` is an advisory (a warning threshold), tracked apart from the alarm.
    pub severity: Severity,
    /// One line for people: what holds, with the numbers.
    pub summary: String,
    pub evidence: Vec<Evidence>,
    /// How long (ms) the condition must hold before its signal is raised.
    pub for_ms: i64,
    /// The L3 causes that, active at the same site, explain this condition: the
    /// signal is then listed in the L3's evidence and not published by itself.
    pub explained_by: CauseSet,
}

impl Condition {
    /// The tracking tier: an advisory (severity low) and the alarm are separate.
    pub fn tier(&self) -> Tier {
        if self.severity == Severity::Low {
            Tier::Advisory
        } else {
            Tier::Alarm
        }
    }
}

/// A signal key has two independent tiers: the warning-threshold advisory
/// (severity low, never a disaster) and the alarm.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Tier {
    Alarm,
    Advisory,
}

/// A small set of causes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct CauseSet(u16);

impl CauseSet {
    pub const EMPTY: CauseSet = CauseSet(0);

    pub const fn of(causes: &[Cause]) -> CauseSet {
        let mut bits = 0;
        let mut i = 0;
        while i < causes.len() {
            bits |= 1 << causes[i] as u16;
            i += 1;
        }
        CauseSet(bits)
    }

    pub fn contains(self, cause: Cause) -> bool {
        self.0 & (1 << cause as u16) != 0
    }

    pub fn intersection(self, other: CauseSet) -> CauseSet {
        CauseSet(self.0 & other.0)
    }

    pub fn is_empty(self) -> bool {
        self.0 == 0
    }
}

/// Which signals are raised right now, so that a cause can apply its value
/// hysteresis (a limit of 85 % clears below 80 % once raised).
pub trait Held {
    fn is_raised(&self, cause: Cause, subject: &str, tier: Tier) -> bool;
}

/// Nothing is raised: a first evaluation, or a unit test.
#[derive(Debug, Clone, Copy, Default)]
pub struct NothingHeld;

impl Held for NothingHeld {
    fn is_raised(&self, _: Cause, _: &str, _: Tier) -> bool {
        false
    }
}

/// One site as the causes see it: hosts in maintenance are already left out
/// (their signals are suppressed and they never count as lost), and the lost ones
/// are resolved against the startup grace.
#[derive(Debug, Clone)]
pub struct SiteView<'a> {
    pub site: &'a str,
    pub hosts: Vec<HostView<'a>>,
    /// Hosts that count as lost, with when (after the startup grace, ms), sorted
    /// by host, one entry each: reported lost, or expected in config and never
    /// seen. Looked up by [`SiteView::lost_since`]: a site of thousands of
    /// hosts may have thousands lost (a cut), and a scan per host would cost
    /// their product at every evaluation.
    pub lost: Vec<(&'a str, i64)>,
    /// Hosts that count for the L3 `network` share: not shut down, not in
    /// maintenance, reported or expected.
    pub counted: usize,
}

/// One host of a [`SiteView`].
#[derive(Debug, Clone, Copy)]
pub struct HostView<'a> {
    pub snap: &'a HostSnapshot,
    /// Labels from config for this host, used where its own labels lack a key.
    pub config_labels: Option<&'a Labels>,
    /// Which readings each cause reads, when the engine keeps it for this host.
    pub index: Option<&'a HostIndex>,
}

impl<'a> HostView<'a> {
    pub fn name(&self) -> &'a str {
        &self.snap.host
    }

    pub fn label(&self, key: &str) -> Option<&'a str> {
        self.snap
            .labels
            .get(key)
            .or_else(|| self.config_labels.and_then(|l| l.get(key)))
            .map(String::as_str)
    }

    /// Whether the host's index says its readings give `reader`'s cause
    /// nothing to find (the cause's `quiet`); without an index, no.
    pub fn known_quiet(&self, reader: Reader) -> bool {
        self.index.is_some_and(|i| i.quiet(reader))
    }

    /// The readings `reader` reads, in their order: from the host's index
    /// when it has one, else every reading. Either way the cause still checks
    /// each reading it is given: the index only leaves out what it would skip.
    pub fn readings_for(&self, reader: Reader) -> Readings<'a> {
        Readings::of(self.snap, self.index, reader)
    }
}

impl<'a> SiteView<'a> {
    /// Builds the view of one site. `hosts` is the site's snapshot (empty for a
    /// configured site nobody has reported to yet). Liveness is decided by the
    /// [`Policy`] (the same one the collector's metrics and API use).
    ///
    /// `indexes`, when given, is one [`HostIndex`] per host of `hosts`.
    pub fn build(
        site: &'a str,
        hosts: &'a [HostSnapshot],
        indexes: Option<&'a [HostIndex]>,
        policy: &Policy<'a>,
        now_ms: i64,
    ) -> SiteView<'a> {
        let indexes = indexes.filter(|i| i.len() == hosts.len());
        let cfg = policy.config();
        let site_cfg = cfg.sites.get(site);
        let mut view = SiteView {
            site,
            hosts: Vec::with_capacity(hosts.len()),
            lost: Vec::new(),
            counted: 0,
        };
        for (i, h) in hosts.iter().enumerate() {
            let verdict = policy.host(site, &h.host, h.liveness, None, now_ms);
            match verdict.status {
                Status::Maintenance | Status::Unknown => continue,
                Status::Lost | Status::Online => view.counted += 1,
                Status::Shutdown => {}
            }
            if let Some(since) = policy.counts_lost_since(&verdict, now_ms) {
                view.lost.push((&h.host, since));
            }
            view.hosts.push(HostView {
                snap: h,
                config_labels: site_cfg.and_then(|s| s.host_labels.get(&h.host)),
                index: indexes.and_then(|x| x.get(i)),
            });
        }
        // The collector gives hosts sorted by name: then each expected host is
        // found by bisection, not by a scan of the site.
        let sorted = hosts.is_sorted_by(|a, b| a.host <= b.host);
        let seen = |e: &str| {
            if sorted {
                hosts.binary_search_by(|h| h.host.as_str().cmp(e)).is_ok()
            } else {
                hosts.iter().any(|h| h.host == e)
            }
        };
        let unseen: Vec<_> = policy.unseen_expected(site, seen, now_ms).collect();
        for (expected, verdict) in unseen {
            view.counted += 1;
            if let Some(v) = verdict {
                view.lost.push((expected, v.since_ms.unwrap_or(now_ms)));
            }
        }
        view.lost.sort_unstable();
        view.lost.dedup_by(|a, b| a.0 == b.0);
        view
    }

    /// Treats the lost hosts as unobserved: they neither count nor raise anything
    /// (a peer sees them, or this collector is cut off from their site).
    pub fn suppress_lost(&mut self) {
        self.counted = self.counted.saturating_sub(self.lost.len());
        let mut hosts = std::mem::take(&mut self.hosts);
        hosts.retain(|h| !self.is_lost(h.name()));
        self.hosts = hosts;
        self.lost.clear();
    }

    pub fn is_lost(&self, host: &str) -> bool {
        self.lost_since(host).is_some()
    }

    /// Since when `host` counts as lost, if it does.
    pub fn lost_since(&self, host: &str) -> Option<i64> {
        let i = self.lost.binary_search_by(|(h, _)| (*h).cmp(host)).ok()?;
        Some(self.lost[i].1)
    }
}

/// How the other vantage points weigh on a site-level network loss seen here.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Gate {
    /// No topology: this collector judges alone, as a single collector does.
    #[default]
    Alone,
    /// Topology: no present peer contradicts; the peers (by name) whose fresh
    /// view agrees the site is down.
    Corroborated(Vec<String>),
    /// A peer sees the site up, or this collector is cut off: whatever is lost
    /// here is this collector's blindness, not the site's loss.
    Suppressed,
    /// No present peer has sent a view since the loss began: wait for one to
    /// confirm or contradict it (at most one view interval).
    Pending,
}

/// What every cause gets.
#[derive(Clone, Copy)]
pub struct Ctx<'a> {
    pub cfg: &'a SignalsConfig,
    pub now_ms: i64,
    pub site: &'a SiteView<'a>,
    pub held: &'a dyn Held,
    /// The vantage points' say on a network loss of this site.
    pub gate: &'a Gate,
    /// Lowered by a cause whose answer would change with time alone.
    pub deadline: &'a Deadline,
}

impl std::fmt::Debug for Ctx<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ctx")
            .field("now_ms", &self.now_ms)
            .field("site", &self.site.site)
            .finish_non_exhaustive()
    }
}

/// Evidence pointing at one reading.
pub fn reading_evidence(host: &str, r: &SeriesSnapshot, summary: String) -> Evidence {
    Evidence::Detail(EvidenceDetail {
        summary,
        host: Some(host.to_owned()),
        src: Some(r.src.to_string()),
        dev: Some(r.dev.to_string()),
        q: Some(r.q.to_string()),
        value: r.number(),
        inhibits: None,
    })
}

/// Evidence about a host (lost, ...).
pub fn host_evidence(host: &str, summary: String) -> Evidence {
    Evidence::Detail(EvidenceDetail {
        summary,
        host: Some(host.to_owned()),
        src: None,
        dev: None,
        q: None,
        value: None,
        inhibits: None,
    })
}

/// Keeps at most [`MAX_EVIDENCE`] entries, the last saying how many were left out.
pub fn cap_evidence(mut evidence: Vec<Evidence>) -> Vec<Evidence> {
    if evidence.len() > MAX_EVIDENCE {
        let left_out = evidence.len() - (MAX_EVIDENCE - 1);
        evidence.truncate(MAX_EVIDENCE - 1);
        evidence.push(Evidence::Text(format!("and {left_out} more")));
    }
    evidence
}

/// `value` as a percentage for summaries: `0.912` -> `91.2 %`.
pub fn percent(value: f64) -> String {
    let mut s = String::new();
    let _ = write!(s, "{:.1} %", value * 100.0);
    s
}

/// The median of some values (the mean of the middle two for an even count).
pub fn median(values: &mut [f64]) -> Option<f64> {
    if values.is_empty() {
        return None;
    }
    values.sort_unstable_by(f64::total_cmp);
    let mid = values.len() / 2;
    Some(if values.len().is_multiple_of(2) {
        (values[mid - 1] + values[mid]) / 2.0
    } else {
        values[mid]
    })
}

/// A duration in ms for summaries: `45000` -> `45s`.
pub fn human_ms(ms: i64) -> String {
    let ms = u64::try_from(ms).unwrap_or(0);
    // Whole seconds: sub-second precision is noise in a page.
    humantime::format_duration(std::time::Duration::from_secs(ms / 1000)).to_string()
}

#[cfg(test)]
pub(crate) mod test_support {
    use super::*;
    use crate::snapshot::{HostSnapshot, SiteSnapshot};

    /// Builds a view and runs `f` on a context at `now_ms`, with the collector
    /// started long before (no grace in effect).
    pub fn with_ctx<T>(
        site: &SiteSnapshot,
        cfg: &SignalsConfig,
        now_ms: i64,
        f: impl FnOnce(&Ctx<'_>) -> T,
    ) -> T {
        let policy = Policy::new(cfg, i64::MIN / 2);
        let view = SiteView::build(&site.site, &site.hosts, None, &policy, now_ms);
        let ctx = Ctx {
            cfg,
            now_ms,
            site: &view,
            held: &NothingHeld,
            gate: &Gate::Alone,
            deadline: &Deadline::default(),
        };
        f(&ctx)
    }

    pub fn site(hosts: Vec<HostSnapshot>) -> SiteSnapshot {
        SiteSnapshot::new("bj1", hosts)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::snapshot::{HostSnapshot, Liveness};

    #[test]
    fn median_of_even_and_odd_counts() {
        assert_eq!(median(&mut []), None);
        assert_eq!(median(&mut [3.0, 1.0, 2.0]), Some(2.0));
        assert_eq!(median(&mut [4.0, 1.0, 2.0, 3.0]), Some(2.5));
    }

    #[test]
    fn cause_sets_intersect() {
        let a = CauseSet::of(&[Cause::Power, Cause::Network]);
        let b = CauseSet::of(&[Cause::Network, Cause::Cooling]);
        assert!(a.intersection(b).contains(Cause::Network));
        assert!(!a.intersection(b).contains(Cause::Power));
        assert!(a.intersection(CauseSet::EMPTY).is_empty());
    }

    /// The lost hosts and what counts are found by bisection in the sorted
    /// order the collector gives, and by a scan in any other: the same view.
    #[test]
    fn a_site_view_is_the_same_whatever_order_its_hosts_come_in() {
        let cfg: SignalsConfig =
            toml::from_str("[sites.bj1]\nexpected_hosts = [\"h03\", \"h50\", \"h07\", \"zz\"]\n")
                .unwrap();
        let policy = Policy::new(&cfg, 0);
        let now_ms = 1_000_000;
        let sorted: Vec<HostSnapshot> = (0..40)
            .map(|i| {
                let liveness = if i % 3 == 0 {
                    Liveness::Lost {
                        since_ms: 900_000 + i,
                    }
                } else {
                    Liveness::Online
                };
                HostSnapshot::new(format!("h{i:02}"), liveness)
            })
            .collect();
        let mut shuffled = sorted.clone();
        shuffled.reverse();
        shuffled.swap(3, 17);
        let a = SiteView::build("bj1", &sorted, None, &policy, now_ms);
        let b = SiteView::build("bj1", &shuffled, None, &policy, now_ms);
        assert_eq!(a.lost, b.lost);
        assert_eq!(a.counted, b.counted);
        // h03 is seen (and lost), h07 seen (online), h50 and zz never seen.
        let names: Vec<&str> = a.lost.iter().map(|l| l.0).collect();
        assert!(names.contains(&"h03") && names.contains(&"h50") && names.contains(&"zz"));
        assert!(!names.contains(&"h07"));
        assert_eq!(a.counted, 42);
        assert_eq!(a.lost_since("h03"), Some(900_003));
        assert_eq!(a.lost_since("h04"), None);
        let mut c = SiteView::build("bj1", &shuffled, None, &policy, now_ms);
        c.suppress_lost();
        assert!(c.lost.is_empty());
        assert_eq!(c.hosts.len(), 40 - 14);
        assert!(c.hosts.iter().all(|h| !a.is_lost(h.name())));
    }

    #[test]
    fn evidence_is_capped_with_a_count() {
        let ev: Vec<Evidence> = (0..30).map(|i| Evidence::Text(i.to_string())).collect();
        let capped = cap_evidence(ev);
        assert_eq!(capped.len(), MAX_EVIDENCE);
        assert_eq!(capped.last(), Some(&Evidence::Text("and 7 more".into())));
    }
}
