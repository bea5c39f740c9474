//! The site drills' judgement, pure: `site-down`, `site-link-cut` and
//! `site-isolated` watched from several collectors (the observers), each
//! standing in a site of the topology.
//!
//! | scenario | each observer must show | must not, anywhere |
//! |---|---|---|
//! | `site-down` | outside the site: L3 `network` (or `power`) for it | an L3 or L4 about any other site; `vantage_isolated` outside the site |
//! | `site-isolated` | outside: L3 for it; its own collector, while it answers: L2 `vantage_isolated` | the same, and any L3 or L4 from the isolated collector |
//! | `site-link-cut` | the two sites' collectors: L2 `site_link` `<a><-><b>` | any L3 or L4; `host_hardware`, `collector_lost`, `vantage_isolated` (dual-homed, every host and collector stays observed) |
//!
//! An observer's site is given (`--collector SITE=URL`) or learnt from the
//! peers the others list ([`observer_sites`]).

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use sitewatch_protocol::{Cause, Level, Signal};

use super::{Key, Scenario, is_alarm, key};

/// A collector the drill polls, and the site it stands in when known.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Seat {
    /// How the report names it (its URL).
    pub label: String,
    pub site: Option<String>,
}

/// What one observer has to show for the drill to pass.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Duty {
    /// The L3 of the drilled site.
    SiteLoss,
    /// `vantage_isolated` about itself (the isolated site's own collector),
    /// owed only while it answers.
    Isolated,
    /// `site_link` for the pair.
    Link,
    /// Nothing (a witness in a link cut; the dead site's own collector).
    None,
}

/// The pair's `site_link` subject, as the engine writes it: the two sites in
/// order, whichever end raises it.
pub fn link_subject(a: &str, b: &str) -> String {
    if a <= b {
        format!("{a}<->{b}")
    } else {
        format!("{b}<->{a}")
    }
}

/// Judges every observer's signals during a site drill.
#[derive(Debug, Clone)]
pub struct SiteJudge {
    pub scenario: Scenario,
    /// The site that fails (`site-link-cut`: one end of the link).
    pub site: String,
    /// `site-link-cut`: the other end.
    pub peer: Option<String>,
    pub seats: Vec<Seat>,
    /// Each observer's alarms before the fault: not the drill's doing.
    baseline: Vec<BTreeSet<Key>>,
}

impl SiteJudge {
    /// `before[i]` is observer i's signals at the precheck.
    pub fn new(
        scenario: Scenario,
        site: &str,
        peer: Option<&str>,
        seats: Vec<Seat>,
        before: &[Vec<Signal>],
    ) -> Result<SiteJudge, String> {
        if !scenario.is_site() {
            return Err(format!("{scenario} is not a site drill"));
        }
        match (scenario, peer) {
            (Scenario::SiteLinkCut, None) => {
                return Err(format!(
                    "{scenario} needs the other end of the link: --peer-site"
                ));
            }
            (Scenario::SiteLinkCut, Some(p)) if p == site => {
                return Err(format!("{scenario}: --peer-site must differ from --site"));
            }
            _ => {}
        }
        if seats.is_empty() {
            return Err(format!("{scenario} needs at least one --collector"));
        }
        let baseline = seats
            .iter()
            .enumerate()
            .map(|(i, _)| {
                before
                    .get(i)
                    .map(|b| b.iter().filter(|s| is_alarm(s)).map(key).collect())
                    .unwrap_or_default()
            })
            .collect();
        Ok(SiteJudge {
            scenario,
            site: site.to_owned(),
            peer: if scenario == Scenario::SiteLinkCut {
                peer.map(str::to_owned)
            } else {
                None
            },
            seats,
            baseline,
        })
    }

    fn at(&self, i: usize, site: &str) -> bool {
        self.seats
            .get(i)
            .and_then(|s| s.site.as_deref())
            .is_some_and(|s| s == site)
    }

    /// Whether observer i stands in the failing site (a link cut: at either end).
    fn inside(&self, i: usize) -> bool {
        self.at(i, &self.site) || self.peer.as_deref().is_some_and(|p| self.at(i, p))
    }

    /// What observer i has to show. In a link cut with neither end's collector
    /// known, every observer is asked, and one showing it is enough
    /// (see [`SiteJudge::detected`]).
    pub fn duty(&self, i: usize) -> Duty {
        match self.scenario {
            Scenario::SiteDown if self.inside(i) => Duty::None,
            Scenario::SiteIsolated if self.inside(i) => Duty::Isolated,
            Scenario::SiteDown | Scenario::SiteIsolated => Duty::SiteLoss,
            Scenario::SiteLinkCut if self.inside(i) || !self.any_inside() => Duty::Link,
            _ => Duty::None,
        }
    }

    fn any_inside(&self) -> bool {
        (0..self.seats.len()).any(|i| self.inside(i))
    }

    fn is_site_loss(&self, s: &Signal) -> bool {
        s.site == self.site && matches!(s.cause, Cause::Network | Cause::Power) && is_alarm(s)
    }

    fn is_link(&self, s: &Signal) -> bool {
        self.peer.as_deref().is_some_and(|p| {
            s.cause == Cause::SiteLink && s.subject == link_subject(&self.site, p) && is_alarm(s)
        })
    }

    fn is_isolated(&self, s: &Signal) -> bool {
        s.cause == Cause::VantageIsolated && s.site == self.site && is_alarm(s)
    }

    /// The signal observer i owes, when it shows it.
    pub fn expected<'a>(&self, i: usize, signals: &'a [Signal]) -> Option<&'a Signal> {
        let duty = self.duty(i);
        signals.iter().find(|s| match duty {
            Duty::SiteLoss => self.is_site_loss(s),
            Duty::Isolated => self.is_isolated(s),
            Duty::Link => self.is_link(s),
            Duty::None => false,
        })
    }

    /// The alarms of observer i that the drill's fault must not raise.
    pub fn wrong<'a>(&self, i: usize, signals: &'a [Signal]) -> Vec<&'a Signal> {
        let empty = BTreeSet::new();
        let baseline = self.baseline.get(i).unwrap_or(&empty);
        signals
            .iter()
            .filter(|s| is_alarm(s) && !baseline.contains(&key(s)))
            .filter(|s| self.is_wrong(i, s))
            .collect()
    }

    fn is_wrong(&self, i: usize, s: &Signal) -> bool {
        let high = matches!(s.level, Level::L3 | Level::L4);
        match self.scenario {
            Scenario::SiteLinkCut => {
                high || matches!(
                    s.cause,
                    Cause::HostHardware | Cause::CollectorLost | Cause::VantageIsolated
                )
            }
            // The isolated collector judges no other site, nor its own (it
            // still sees its own agents).
            Scenario::SiteIsolated if self.inside(i) => high,
            _ => {
                (high && !self.is_site_loss(s))
                    || (s.cause == Cause::VantageIsolated && !self.inside(i))
            }
        }
    }

    /// Whether any observer shows a signal the drill would raise: the precheck
    /// wants none, and the clear waits for none.
    pub fn still_up(&self, signals: &[Vec<Signal>]) -> bool {
        signals.iter().any(|sigs| {
            sigs.iter().any(|s| match self.scenario {
                Scenario::SiteLinkCut => self.peer.as_deref().is_some_and(|p| {
                    s.cause == Cause::SiteLink && s.subject == link_subject(&self.site, p)
                }),
                _ => {
                    (s.site == self.site && matches!(s.cause, Cause::Network | Cause::Power))
                        || self.is_isolated(s)
                }
            })
        })
    }

    /// When the drill's signal counts as raised: every observer with a duty
    /// has shown it (`seen[i]`, time from the fault), except the isolated
    /// collector while it has not answered since the fault (`answered[i]`);
    /// in a link cut with neither end known, the first observer to show it.
    /// `None` until then, or when no observer owes anything.
    pub fn detected(&self, seen: &[Option<Duration>], answered: &[bool]) -> Option<Duration> {
        let seen_at = |i: usize| seen.get(i).copied().flatten();
        if self.scenario == Scenario::SiteLinkCut && !self.any_inside() {
            return (0..self.seats.len()).filter_map(seen_at).min();
        }
        let mut last = None;
        let mut owed = 0;
        for i in 0..self.seats.len() {
            match self.duty(i) {
                Duty::None => continue,
                Duty::Isolated if !answered.get(i).copied().unwrap_or(false) => continue,
                _ => {}
            }
            owed += 1;
            let at = seen_at(i)?;
            last = Some(last.map_or(at, |l: Duration| l.max(at)));
        }
        if owed == 0 { None } else { last }
    }

    /// What the drill expects, in words, for the report.
    pub fn expectation(&self) -> String {
        match self.scenario {
            Scenario::SiteLinkCut => format!(
                "L2 site_link {} raised, no L3",
                link_subject(&self.site, self.peer.as_deref().unwrap_or("?"))
            ),
            Scenario::SiteIsolated => format!(
                "L3 for {} from the other observers, vantage_isolated from its own",
                self.site
            ),
            _ => format!("L3 for {} from the other observers", self.site),
        }
    }
}

/// The one human line that ends a site drill, e.g. `site-link-cut: L2
/// site_link a<->b raised, no L3: raised at every observer 7.0 s after the
/// fault (target 30 s): PASS`.
pub fn summary(
    judge: &SiteJudge,
    detected: Option<Duration>,
    timeout: Duration,
    target: Duration,
    outcome: &super::Outcome,
) -> String {
    let when = match detected {
        Some(d) => format!(
            "raised at every observer {} after the fault (target {})",
            super::seconds(d),
            super::limit(target)
        ),
        None => format!(
            "not raised within {} (target {})",
            super::limit(timeout),
            super::limit(target)
        ),
    };
    let verdict = match outcome {
        super::Outcome::Pass => "PASS".to_owned(),
        super::Outcome::Fail(why) => format!("FAIL ({})", why.join("; ")),
    };
    format!(
        "{}: {}: {when}: {verdict}",
        judge.scenario,
        judge.expectation()
    )
}

/// A peer as `/api/v1/peers` lists it: (collector name, its site).
pub type Peer = (String, String);

/// The site of each observer: the one given, or else learnt from the peers'
/// lists: every collector of the topology appears in some observer's list but
/// its own, so the collector missing from observer i's list, when exactly
/// one is, is observer i. `None` where that does not settle it (one observer,
/// or an observer that did not answer).
pub fn observer_sites(
    given: &[Option<String>],
    peers: &[Option<Vec<Peer>>],
) -> Vec<Option<String>> {
    let all: BTreeMap<&str, &str> = peers
        .iter()
        .flatten()
        .flatten()
        .map(|(n, s)| (n.as_str(), s.as_str()))
        .collect();
    given
        .iter()
        .enumerate()
        .map(|(i, g)| {
            if g.is_some() {
                return g.clone();
            }
            let listed: BTreeSet<&str> = peers
                .get(i)?
                .as_ref()?
                .iter()
                .map(|(n, _)| n.as_str())
                .collect();
            let mut missing = all.iter().filter(|(n, _)| !listed.contains(*n));
            match (missing.next(), missing.next()) {
                (Some((_, site)), None) => Some((*site).to_owned()),
                _ => None,
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use sitewatch_protocol::Severity;

    fn sig(site: &str, cause: Cause, subject: &str) -> Signal {
        Signal {
            site: site.into(),
            level: cause.level(),
            cause,
            subject: subject.into(),
            severity: Severity::High,
            since: 0,
            evidence: Vec::new(),
        }
    }

    fn seats(sites: &[Option<&str>]) -> Vec<Seat> {
        sites
            .iter()
            .enumerate()
            .map(|(i, s)| Seat {
                label: format!("o{i}"),
                site: s.map(str::to_owned),
            })
            .collect()
    }

    fn abw() -> Vec<Seat> {
        seats(&[Some("a"), Some("b"), Some("w")])
    }

    fn secs(s: u64) -> Option<Duration> {
        Some(Duration::from_secs(s))
    }

    #[test]
    fn site_down_is_raised_once_every_outside_observer_shows_the_l3() {
        let j = SiteJudge::new(Scenario::SiteDown, "a", None, abw(), &[]).unwrap();
        assert_eq!(j.duty(0), Duty::None);
        assert_eq!(j.duty(1), Duty::SiteLoss);
        let l3 = sig("a", Cause::Network, "a");
        assert_eq!(j.expected(1, std::slice::from_ref(&l3)), Some(&l3));
        // b saw it at 8 s, w not yet: not detected; w at 11 s: detected at 11 s.
        assert_eq!(
            j.detected(&[None, secs(8), None], &[false, true, true]),
            None
        );
        assert_eq!(
            j.detected(&[None, secs(8), secs(11)], &[false, true, true]),
            secs(11)
        );
    }

    #[test]
    fn site_down_calls_an_l3_of_another_site_or_an_l4_wrong_but_not_its_own_l3() {
        let j = SiteJudge::new(Scenario::SiteDown, "a", None, abw(), &[]).unwrap();
        let own = sig("a", Cause::Network, "a");
        let other = sig("b", Cause::Network, "b");
        let region = sig("r1", Cause::Region, "r1");
        let lost = sig("a", Cause::CollectorLost, "collector-a");
        let signals = [own, other.clone(), region.clone(), lost];
        assert_eq!(j.wrong(1, &signals), [&other, &region]);
    }

    #[test]
    fn a_surviving_collector_that_loses_its_quorum_is_wrong() {
        let j = SiteJudge::new(Scenario::SiteDown, "a", None, abw(), &[]).unwrap();
        let iso = sig("b", Cause::VantageIsolated, "collector-b");
        assert_eq!(j.wrong(1, std::slice::from_ref(&iso)), [&iso]);
    }

    #[test]
    fn site_isolated_wants_vantage_isolated_from_its_own_collector_while_it_answers() {
        let j = SiteJudge::new(Scenario::SiteIsolated, "a", None, abw(), &[]).unwrap();
        assert_eq!(j.duty(0), Duty::Isolated);
        let iso = sig("a", Cause::VantageIsolated, "collector-a");
        assert_eq!(j.expected(0, std::slice::from_ref(&iso)), Some(&iso));
        // Its own collector answers but has not said it yet: not detected.
        assert_eq!(
            j.detected(&[None, secs(7), secs(8)], &[true, true, true]),
            None
        );
        assert_eq!(
            j.detected(&[secs(9), secs(7), secs(8)], &[true, true, true]),
            secs(9)
        );
        // Unreachable from the drill: the others decide alone.
        assert_eq!(
            j.detected(&[None, secs(7), secs(8)], &[false, true, true]),
            secs(8)
        );
    }

    #[test]
    fn the_isolated_collector_raising_any_l3_is_wrong_even_of_its_own_site() {
        let j = SiteJudge::new(Scenario::SiteIsolated, "a", None, abw(), &[]).unwrap();
        let own = sig("a", Cause::Network, "a");
        let b = sig("b", Cause::Network, "b");
        assert_eq!(j.wrong(0, &[own.clone(), b.clone()]), [&own, &b]);
        // The same L3 of a from b is what is expected.
        assert_eq!(j.wrong(1, &[own, b.clone()]), [&b]);
    }

    #[test]
    fn site_link_cut_wants_the_pair_from_both_ends_and_nothing_from_the_witness() {
        let j = SiteJudge::new(Scenario::SiteLinkCut, "b", Some("a"), abw(), &[]).unwrap();
        assert_eq!(j.duty(0), Duty::Link);
        assert_eq!(j.duty(1), Duty::Link);
        assert_eq!(j.duty(2), Duty::None);
        let link = sig("a", Cause::SiteLink, "a<->b");
        assert_eq!(j.expected(1, std::slice::from_ref(&link)), Some(&link));
        let other = sig("a", Cause::SiteLink, "a<->w");
        assert_eq!(j.expected(1, std::slice::from_ref(&other)), None);
        assert_eq!(
            j.detected(&[secs(6), None, None], &[true, true, true]),
            None
        );
        assert_eq!(
            j.detected(&[secs(6), secs(7), None], &[true, true, true]),
            secs(7)
        );
    }

    #[test]
    fn site_link_cut_calls_any_l3_and_a_lost_host_or_collector_wrong() {
        let j = SiteJudge::new(Scenario::SiteLinkCut, "a", Some("b"), abw(), &[]).unwrap();
        let l3 = sig("a", Cause::Network, "a");
        let host = sig("a", Cause::HostHardware, "a-1");
        let coll = sig("b", Cause::CollectorLost, "collector-b");
        let link = sig("a", Cause::SiteLink, "a<->b");
        let signals = [l3.clone(), host.clone(), coll.clone(), link];
        assert_eq!(j.wrong(2, &signals), [&l3, &host, &coll]);
    }

    #[test]
    fn a_link_cut_with_no_end_known_takes_the_first_observer_to_show_it() {
        let j = SiteJudge::new(
            Scenario::SiteLinkCut,
            "a",
            Some("b"),
            seats(&[None, None]),
            &[],
        )
        .unwrap();
        assert_eq!(j.duty(0), Duty::Link);
        assert_eq!(j.detected(&[None, secs(5)], &[true, true]), secs(5));
    }

    #[test]
    fn alarms_up_before_the_fault_are_not_the_drills_doing() {
        let old = sig("b", Cause::Network, "b");
        let before = vec![Vec::new(), vec![old.clone()], Vec::new()];
        let j = SiteJudge::new(Scenario::SiteDown, "a", None, abw(), &before).unwrap();
        assert!(j.wrong(1, std::slice::from_ref(&old)).is_empty());
        assert_eq!(j.wrong(2, std::slice::from_ref(&old)), [&old]);
    }

    #[test]
    fn the_precheck_and_the_clear_see_the_drills_signals_at_any_observer() {
        let j = SiteJudge::new(Scenario::SiteIsolated, "a", None, abw(), &[]).unwrap();
        let iso = sig("a", Cause::VantageIsolated, "collector-a");
        assert!(j.still_up(&[vec![], vec![], vec![iso]]));
        assert!(!j.still_up(&[vec![sig("b", Cause::Storage, "b-1:sda")]]));
        let j = SiteJudge::new(Scenario::SiteLinkCut, "a", Some("b"), abw(), &[]).unwrap();
        assert!(j.still_up(&[vec![sig("a", Cause::SiteLink, "a<->b")]]));
    }

    #[test]
    fn a_link_cut_needs_a_distinct_peer_site() {
        assert!(SiteJudge::new(Scenario::SiteLinkCut, "a", None, abw(), &[]).is_err());
        assert!(SiteJudge::new(Scenario::SiteLinkCut, "a", Some("a"), abw(), &[]).is_err());
        assert!(SiteJudge::new(Scenario::PowerLoss, "a", None, abw(), &[]).is_err());
    }

    #[test]
    fn the_summary_says_what_was_expected_and_when_it_came_at_every_observer() {
        let j = SiteJudge::new(Scenario::SiteLinkCut, "a", Some("b"), abw(), &[]).unwrap();
        let t = Duration::from_secs(30);
        assert_eq!(
            summary(
                &j,
                Some(Duration::from_millis(7_040)),
                t,
                t,
                &super::super::Outcome::Pass
            ),
            "site-link-cut: L2 site_link a<->b raised, no L3: raised at every observer \
             7.0 s after the fault (target 30 s): PASS"
        );
        let fail = super::super::Outcome::Fail(vec!["wrong signal: L3 network a".into()]);
        assert_eq!(
            summary(&j, None, Duration::from_secs(45), t, &fail),
            "site-link-cut: L2 site_link a<->b raised, no L3: not raised within 45 s \
             (target 30 s): FAIL (wrong signal: L3 network a)"
        );
    }

    #[test]
    fn observer_sites_come_from_the_one_collector_missing_from_each_peer_list() {
        let p = |v: &[(&str, &str)]| {
            Some(
                v.iter()
                    .map(|(n, s)| ((*n).to_owned(), (*s).to_owned()))
                    .collect::<Vec<_>>(),
            )
        };
        let peers = [
            p(&[("c-b", "b"), ("c-w", "w")]),
            p(&[("c-a", "a"), ("c-w", "w")]),
            None,
        ];
        let given = [None, None, Some("w".to_owned())];
        assert_eq!(
            observer_sites(&given, &peers),
            [Some("a".into()), Some("b".into()), Some("w".into())]
        );
        // One observer alone cannot tell which collector it is.
        assert_eq!(observer_sites(&[None], &peers[..1]), [None]);
    }
}
