//! Several vantage points: one collector cannot tell "site B is down" from "I
//! cannot see B"; several can. With `[signals.topology]`, every collector knows
//! its peers (their presence, and each one's own judgement of every site from
//! its last view) and weighs a site-level loss it sees against them:
//!
//! - **Quorum.** A collector that sees fewer than a majority of all the
//!   collectors (itself included) has lost its outside view: it raises L2
//!   `vantage_isolated` about itself, and no loss of another site counts (its
//!   hosts there are unobserved, not lost). Two collectors cannot outvote each
//!   other, hence a witness (the configuration check insists on three or more).
//! - **Contradiction.** A site whose agents are lost here (the L3 `network`
//!   rule) while a present peer's fresh view counts them up is not down: the
//!   path between here and there is cut. L2 `site_link` for the pair (the same
//!   labels from both ends, so Alertmanager keeps one), and the hosts are
//!   unobserved here. Seen of this collector's own site, it is this collector
//!   that is cut off: `vantage_isolated`.
//! - **Corroboration.** Otherwise the loss stands: L3 `network`, with the peers
//!   that agree in its evidence (a site whose agents, broker and collector all
//!   vanished is raised this way by every other collector).
//! - **Only news counts.** A peer's view confirms or contradicts a loss only if
//!   it arrived after the loss began: a cut-off site's own collector keeps
//!   looking present, with its last word "all fine", until its views are
//!   missed. Until a present peer has spoken since the loss, it is pending (one
//!   view interval, 5 s, at most while the peers are there).
//! - **A peer gone** (its will on every broker, or its views stopped) is L2
//!   `collector_lost` at the peer's site: monitoring there is degraded, never an
//!   L3 by itself (an L3 of that site explains it).

use std::collections::BTreeMap;

use sitewatch_protocol::{Cause, Evidence, Severity, SiteReport};

use super::{CauseSet, Condition, Gate, human_ms};
use crate::config::{SignalsConfig, ms};
use crate::liveness::{Policy, Status, Verdict};
use crate::snapshot::{Liveness, PeerSnapshot, Vantage};

/// An L3 of the peer's site explains its collector's loss (a power cut takes
/// the collector with it).
const SITE_LOSS: CauseSet = CauseSet::of(&[Cause::Network, Cause::Power]);

/// Where this collector stands among its peers at one instant.
#[derive(Debug, Clone)]
pub struct Standing<'a> {
    pub vantage: &'a Vantage,
    /// The peers present now.
    pub present: Vec<&'a PeerSnapshot>,
    /// Fewer than a majority of all collectors visible from here (self included).
    pub isolated: bool,
}

impl<'a> Standing<'a> {
    pub fn of(vantage: &'a Vantage) -> Self {
        let present: Vec<&PeerSnapshot> = vantage
            .peers
            .iter()
            .filter(|p| p.liveness == Liveness::Online)
            .collect();
        let visible = 1 + present.len();
        let total = 1 + vantage.peers.len();
        Standing {
            vantage,
            present,
            isolated: visible * 2 <= total,
        }
    }
}

/// What the vantage points make of one site.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Ruling {
    pub gate: Gate,
    /// Whether the hosts lost here count as unobserved.
    pub suppress_lost: bool,
    /// The peers whose fresh view sees the site up while it is down here.
    pub contradicted_by: Vec<(String, SiteReport)>,
}

/// Weighs this collector's own report of `site` against its peers'; the loss
/// here began at `loss_started_ms` (its most recent host loss).
pub fn rule(
    standing: &Standing<'_>,
    site: &str,
    local: &SiteReport,
    loss_started_ms: Option<i64>,
) -> Ruling {
    let mine = site == standing.vantage.site;
    if standing.isolated {
        // Cut off: nothing lost elsewhere is known to be lost. At home, a lone
        // lost host is still real; a site-level loss is not to be trusted.
        return Ruling {
            gate: Gate::Suppressed,
            suppress_lost: !mine || local.down,
            contradicted_by: Vec::new(),
        };
    }
    if !local.down {
        return Ruling {
            gate: Gate::Corroborated(Vec::new()),
            ..Ruling::default()
        };
    }
    let mut agreeing = Vec::new();
    let mut contradicted_by = Vec::new();
    let mut heard = false;
    let since = loss_started_ms.unwrap_or(i64::MIN);
    for p in &standing.present {
        if p.view_at_ms.is_none_or(|at| at < since) {
            continue;
        }
        heard = true;
        match p.reports.get(site) {
            Some(r) if r.down => agreeing.push(p.name.clone()),
            Some(r) if r.counted > 0 => contradicted_by.push((p.name.clone(), *r)),
            _ => {}
        }
    }
    if !heard && !standing.present.is_empty() {
        return Ruling {
            gate: Gate::Pending,
            ..Ruling::default()
        };
    }
    if contradicted_by.is_empty() {
        Ruling {
            gate: Gate::Corroborated(agreeing),
            ..Ruling::default()
        }
    } else {
        Ruling {
            gate: Gate::Suppressed,
            suppress_lost: true,
            contradicted_by,
        }
    }
}

/// The vantage signals: `collector_lost`, `vantage_isolated`, `site_link`, as
/// (site, condition).
pub fn conditions(
    standing: &Standing<'_>,
    rulings: &BTreeMap<String, (SiteReport, Ruling)>,
    policy: &Policy<'_>,
    cfg: &SignalsConfig,
    now_ms: i64,
) -> Vec<(String, Condition)> {
    if !policy.grace_over(now_ms) {
        return Vec::new();
    }
    let hold = ms(cfg.topology.hold_for);
    let me = &standing.vantage.me;
    let my_site = &standing.vantage.site;
    let mut out = Vec::new();
    for p in &standing.vantage.peers {
        let Liveness::Lost { since_ms } = p.liveness else {
            continue;
        };
        let lost = Verdict {
            status: Status::Lost,
            reason: None,
            since_ms: Some(since_ms),
        };
        let Some(since) = policy.counts_lost_since(&lost, now_ms) else {
            continue;
        };
        let summary = format!(
            "collector {} of site {} lost for {}: monitoring of {} is degraded",
            p.name,
            p.site,
            human_ms(now_ms - since),
            p.site
        );
        out.push((
            p.site.clone(),
            Condition {
                cause: Cause::CollectorLost,
                subject: p.name.clone(),
                severity: Severity::High,
                evidence: vec![Evidence::Text(format!(
                    "{me} receives neither its presence nor its views on any broker"
                ))],
                summary,
                for_ms: hold,
                explained_by: SITE_LOSS,
            },
        ));
    }
    if standing.isolated {
        let missing: Vec<&str> = standing
            .vantage
            .peers
            .iter()
            .filter(|p| p.liveness != Liveness::Online)
            .map(|p| p.name.as_str())
            .collect();
        out.push((
            my_site.clone(),
            Condition {
                cause: Cause::VantageIsolated,
                subject: me.clone(),
                severity: Severity::High,
                summary: format!(
                    "{me} sees {} of {} collectors: cut off, it judges no other site",
                    standing.present.len() + 1,
                    standing.vantage.peers.len() + 1
                ),
                evidence: vec![Evidence::Text(format!("not seen: {}", missing.join(", ")))],
                for_ms: hold,
                explained_by: CauseSet::EMPTY,
            },
        ));
    }
    for (site, (local, ruling)) in rulings {
        if ruling.contradicted_by.is_empty() {
            continue;
        }
        let mut evidence = vec![Evidence::Text(format!(
            "{me} (site {my_site}) sees {site} down: {} of {} agents lost",
            local.lost, local.counted
        ))];
        for (peer, r) in &ruling.contradicted_by {
            evidence.push(Evidence::Text(format!(
                "{peer} sees {site} up: {} of {} agents lost",
                r.lost, r.counted
            )));
        }
        let condition = if site == my_site {
            Condition {
                cause: Cause::VantageIsolated,
                subject: me.clone(),
                severity: Severity::High,
                summary: format!("{me} cannot see its own site's agents, which its peers see"),
                evidence,
                for_ms: hold,
                explained_by: CauseSet::EMPTY,
            }
        } else {
            let (a, b) = if my_site < site {
                (my_site.as_str(), site.as_str())
            } else {
                (site.as_str(), my_site.as_str())
            };
            Condition {
                cause: Cause::SiteLink,
                subject: format!("{a}<->{b}"),
                severity: Severity::High,
                summary: format!(
                    "the path between {a} and {b} is cut: both are up and seen by other collectors"
                ),
                evidence,
                for_ms: hold,
                explained_by: CauseSet::EMPTY,
            }
        };
        let key_site = if condition.cause == Cause::SiteLink {
            condition
                .subject
                .split("<->")
                .next()
                .unwrap_or(site)
                .to_owned()
        } else {
            my_site.clone()
        };
        out.push((key_site, condition));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn peer(name: &str, site: &str, online: bool, reports: &[(&str, SiteReport)]) -> PeerSnapshot {
        PeerSnapshot {
            name: name.into(),
            site: site.into(),
            witness: site == "w",
            liveness: if online {
                Liveness::Online
            } else {
                Liveness::Lost { since_ms: 0 }
            },
            reports: reports.iter().map(|(s, r)| ((*s).into(), *r)).collect(),
            view_at_ms: Some(10_000),
        }
    }

    const DOWN: SiteReport = SiteReport {
        counted: 4,
        lost: 4,
        down: true,
    };
    const UP: SiteReport = SiteReport {
        counted: 4,
        lost: 0,
        down: false,
    };

    fn vantage(peers: Vec<PeerSnapshot>) -> Vantage {
        Vantage {
            me: "c-b".into(),
            site: "b".into(),
            peers,
        }
    }

    #[test]
    fn a_loss_every_present_peer_agrees_on_is_corroborated() {
        let v = vantage(vec![
            peer("c-a", "a", false, &[]),
            peer("c-w", "w", true, &[("a", DOWN)]),
        ]);
        let s = Standing::of(&v);
        assert!(!s.isolated);
        let r = rule(&s, "a", &DOWN, Some(5_000));
        assert_eq!(r.gate, Gate::Corroborated(vec!["c-w".into()]));
        assert!(!r.suppress_lost);
    }

    #[test]
    fn a_peer_that_sees_the_site_up_makes_it_a_link_cut() {
        let v = vantage(vec![
            peer("c-a", "a", true, &[("a", UP)]),
            peer("c-w", "w", true, &[("a", UP)]),
        ]);
        let s = Standing::of(&v);
        let r = rule(&s, "a", &DOWN, Some(5_000));
        assert_eq!(r.gate, Gate::Suppressed);
        assert!(r.suppress_lost);
        let cfg = SignalsConfig::default();
        let policy = Policy::new(&cfg, i64::MIN / 2);
        let rulings = BTreeMap::from([("a".to_owned(), (DOWN, r))]);
        let c = conditions(&s, &rulings, &policy, &cfg, 0);
        assert_eq!(c.len(), 1);
        assert_eq!(c[0].0, "a");
        assert_eq!(c[0].1.cause, Cause::SiteLink);
        assert_eq!(c[0].1.subject, "a<->b");
    }

    #[test]
    fn only_views_newer_than_the_loss_confirm_or_contradict_it() {
        // The cut-off site's own collector still looks present, its last view
        // (from before the loss) saying all is fine; the witness has not spoken
        // since: pending. Then the witness's newer view agrees: corroborated.
        let mut stale = peer("c-a", "a", true, &[("a", UP)]);
        stale.view_at_ms = Some(1_000);
        let mut w = peer("c-w", "w", true, &[("a", UP)]);
        w.view_at_ms = Some(2_000);
        let v = vantage(vec![stale.clone(), w]);
        assert_eq!(
            rule(&Standing::of(&v), "a", &DOWN, Some(5_000)).gate,
            Gate::Pending
        );
        let v = vantage(vec![stale, peer("c-w", "w", true, &[("a", DOWN)])]);
        let r = rule(&Standing::of(&v), "a", &DOWN, Some(5_000));
        assert_eq!(r.gate, Gate::Corroborated(vec!["c-w".into()]));
    }

    #[test]
    fn a_collector_that_sees_no_quorum_is_isolated_and_judges_no_other_site() {
        let v = vantage(vec![
            peer("c-a", "a", false, &[]),
            peer("c-w", "w", false, &[]),
        ]);
        let s = Standing::of(&v);
        assert!(s.isolated);
        let r = rule(&s, "a", &DOWN, Some(5_000));
        assert_eq!(r.gate, Gate::Suppressed);
        assert!(r.suppress_lost);
        // At home, a lone lost host is still real.
        let home = rule(&s, "b", &SiteReport::default(), None);
        assert!(!home.suppress_lost);
        let cfg = SignalsConfig::default();
        let policy = Policy::new(&cfg, i64::MIN / 2);
        let c = conditions(&s, &BTreeMap::new(), &policy, &cfg, 0);
        let causes: Vec<Cause> = c.iter().map(|(_, c)| c.cause).collect();
        assert_eq!(
            causes,
            [
                Cause::CollectorLost,
                Cause::CollectorLost,
                Cause::VantageIsolated
            ]
        );
        assert_eq!(c[2].0, "b");
    }

    #[test]
    fn nothing_is_said_of_peers_during_the_startup_grace() {
        let v = vantage(vec![
            peer("c-a", "a", false, &[]),
            peer("c-w", "w", false, &[]),
        ]);
        let s = Standing::of(&v);
        let cfg = SignalsConfig::default();
        let policy = Policy::new(&cfg, 0);
        assert!(conditions(&s, &BTreeMap::new(), &policy, &cfg, 10_000).is_empty());
    }
}
