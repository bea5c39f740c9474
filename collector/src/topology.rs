//! The other collectors of a multi-site deployment, as this one sees them.
//!
//! Each collector announces itself on every broker it uses: a retained presence
//! (`sitewatch/v1/_collectors/<name>/state`, with a will on each broker) and a
//! view every `interval_ms` (`.../view`: its links, its peers, and its own
//! judgement of every site). This module keeps, per configured peer and per
//! broker path, what arrived, and turns it into the engine's
//! [`PeerSnapshot`]s: present when any path carries it (the same per-path rule
//! as agents, `liveness.rs`, the views being its heartbeat), and its reports
//! while its last view is fresh. Messages of collectors not in the topology are
//! counted and ignored: an unknown collector gets no vote.

use std::collections::BTreeMap;

use sitewatch_protocol::{CollectorStatePayload, CollectorViewPayload};
use sitewatch_signals::config::TopologyConfig;
use sitewatch_signals::{Liveness as Observed, PeerSnapshot, Vantage};

use crate::liveness::{self, PathFacts, PathId, PathState, Reported, Rules};

/// The default view interval: the DR plan's 5 s health check.
pub const VIEW_INTERVAL_MS: u64 = 5_000;

/// One peer collector.
#[derive(Debug, Clone)]
struct Peer {
    site: String,
    witness: bool,
    paths: Vec<PathFacts>,
    interval_ms: Option<u64>,
    /// Its last view and when it arrived (the collector's clock).
    view: Option<(CollectorViewPayload, i64)>,
}

/// Every configured peer of this collector.
#[derive(Debug, Clone, Default)]
pub struct Peers {
    me: Option<(String, String)>,
    peers: BTreeMap<String, Peer>,
    view_max_age_ms: i64,
    /// Messages of collectors that are not in the topology (or are this one).
    pub ignored: u64,
}

impl Peers {
    /// The peers of collector `me` in `topology`; none when `me` is not in it.
    pub fn new(topology: &TopologyConfig, me: Option<&str>) -> Self {
        let Some(entry) = me.and_then(|m| topology.collector(m)) else {
            return Peers::default();
        };
        let peers = topology
            .collectors
            .iter()
            .filter(|c| c.name != entry.name)
            .map(|c| {
                (
                    c.name.clone(),
                    Peer {
                        site: c.site.clone(),
                        witness: c.witness,
                        paths: Vec::new(),
                        interval_ms: None,
                        view: None,
                    },
                )
            })
            .collect();
        Peers {
            me: Some((entry.name.clone(), entry.site.clone())),
            peers,
            view_max_age_ms: i64::try_from(topology.view_max_age.as_millis()).unwrap_or(i64::MAX),
            ignored: 0,
        }
    }

    /// Whether a topology is in effect.
    pub fn is_active(&self) -> bool {
        self.me.is_some()
    }

    fn peer_mut(&mut self, name: &str) -> Option<&mut Peer> {
        match self.peers.get_mut(name) {
            Some(p) => Some(p),
            None => {
                self.ignored += 1;
                None
            }
        }
    }

    /// A presence message of `name` through `path` at `now_ms`.
    pub fn apply_state(
        &mut self,
        path: PathId,
        name: &str,
        s: &CollectorStatePayload,
        now_ms: i64,
    ) {
        let Some(p) = self.peer_mut(name) else {
            return;
        };
        let facts = path_mut(&mut p.paths, path, now_ms);
        facts.reported = Reported::from_state(s.status, s.reason);
        facts.reported_at_ms = now_ms;
        facts.last_heard_ms = now_ms;
        facts.readings_heard = false;
        if s.interval_ms.is_some() {
            p.interval_ms = s.interval_ms;
        }
    }

    /// A retained presence deleted: forget what that path said.
    pub fn clear(&mut self, path: PathId, name: &str) {
        if let Some(p) = self.peer_mut(name) {
            p.paths.retain(|f| f.path != path);
        }
    }

    /// A view of `name` through `path` at `now_ms`: its heartbeat and reports.
    pub fn apply_view(&mut self, path: PathId, name: &str, v: &CollectorViewPayload, now_ms: i64) {
        let Some(p) = self.peer_mut(name) else {
            return;
        };
        let facts = path_mut(&mut p.paths, path, now_ms);
        facts.last_heard_ms = now_ms;
        facts.readings_heard = true;
        // The same view through two brokers, or an older one late: keep the newest.
        if p.view.as_ref().is_none_or(|(old, _)| v.ts >= old.ts) {
            p.view = Some((v.clone(), now_ms));
        }
    }

    /// This collector among its peers at `now_ms`, for the engine; `None`
    /// without a topology. A peer never heard from counts as lost since the
    /// collector started (the engine's grace dates it at the grace's end).
    pub fn vantage(
        &self,
        links: &[PathState],
        rules: &Rules,
        started_at_ms: i64,
        now_ms: i64,
    ) -> Option<Vantage> {
        let (me, site) = self.me.clone()?;
        let peers = self
            .peers
            .iter()
            .map(|(name, p)| {
                let liveness = if p.paths.is_empty() {
                    Observed::Lost {
                        since_ms: started_at_ms,
                    }
                } else {
                    let interval = p.interval_ms.or(Some(VIEW_INTERVAL_MS));
                    liveness::observe(&p.paths, links, interval, rules, now_ms).observed
                };
                let (reports, view_at_ms) = match &p.view {
                    Some((v, at)) if now_ms - at <= self.view_max_age_ms => {
                        (v.sites.clone(), Some(*at))
                    }
                    _ => (BTreeMap::new(), None),
                };
                PeerSnapshot {
                    name: name.clone(),
                    site: p.site.clone(),
                    witness: p.witness,
                    liveness,
                    reports,
                    view_at_ms,
                }
            })
            .collect();
        Some(Vantage { me, site, peers })
    }
}

fn path_mut(paths: &mut Vec<PathFacts>, path: PathId, now_ms: i64) -> &mut PathFacts {
    let i = match paths.iter().position(|p| p.path == path) {
        Some(i) => i,
        None => {
            paths.push(PathFacts::new(path, now_ms));
            paths.len() - 1
        }
    };
    &mut paths[i]
}

#[cfg(test)]
mod tests {
    use super::*;
    use sitewatch_protocol::{OfflineReason, SiteReport, Status};
    use sitewatch_signals::config::CollectorEntry;

    fn topology() -> TopologyConfig {
        let c = |name: &str, site: &str| CollectorEntry {
            name: name.into(),
            site: site.into(),
            witness: false,
        };
        TopologyConfig {
            collectors: vec![c("c-a", "a"), c("c-b", "b"), c("c-w", "w")],
            ..TopologyConfig::default()
        }
    }

    fn state(status: Status, reason: Option<OfflineReason>) -> CollectorStatePayload {
        CollectorStatePayload {
            v: 1,
            status,
            reason,
            ts: Some(0),
            boot: None,
            site: None,
            interval_ms: Some(5_000),
            agent: None,
        }
    }

    fn view(ts: i64, a: SiteReport) -> CollectorViewPayload {
        CollectorViewPayload {
            v: 1,
            seq: 1,
            ts,
            boot: None,
            site: None,
            brokers: BTreeMap::new(),
            peers: BTreeMap::new(),
            sites: BTreeMap::from([("a".to_owned(), a)]),
        }
    }

    const UP: [PathState; 2] = [PathState::ALWAYS, PathState::ALWAYS];

    #[test]
    fn a_peer_is_present_while_any_path_carries_its_views_and_its_reports_go_stale() {
        let mut p = Peers::new(&topology(), Some("c-b"));
        let report = SiteReport {
            counted: 3,
            lost: 0,
            down: false,
        };
        p.apply_state(0, "c-a", &state(Status::Online, None), 0);
        p.apply_view(1, "c-a", &view(1_000, report), 1_000);
        // Its will on path 0; path 1 still carries its views.
        p.apply_state(
            0,
            "c-a",
            &state(Status::Offline, Some(OfflineReason::Lost)),
            2_000,
        );
        let v = p.vantage(&UP, &Rules::default(), 0, 10_000).unwrap();
        let a = v.peers.iter().find(|x| x.name == "c-a").unwrap();
        assert_eq!(a.liveness, Observed::Online);
        assert_eq!(a.reports.get("a"), Some(&report));
        // 16 s without a view: lost, and its reports no longer count.
        let v = p.vantage(&UP, &Rules::default(), 0, 17_000).unwrap();
        let a = v.peers.iter().find(|x| x.name == "c-a").unwrap();
        assert!(matches!(a.liveness, Observed::Lost { .. }));
        assert!(a.reports.is_empty());
        // The witness was never heard: lost since the start.
        let w = v.peers.iter().find(|x| x.name == "c-w").unwrap();
        assert_eq!(w.liveness, Observed::Lost { since_ms: 0 });
    }

    #[test]
    fn unknown_collectors_and_no_topology_are_ignored() {
        let mut p = Peers::new(&topology(), Some("c-b"));
        p.apply_state(0, "intruder", &state(Status::Online, None), 0);
        assert_eq!(p.ignored, 1);
        assert_eq!(
            p.vantage(&UP, &Rules::default(), 0, 0).unwrap().peers.len(),
            2
        );
        let none = Peers::new(&topology(), Some("not-listed"));
        assert!(!none.is_active());
        assert!(none.vantage(&UP, &Rules::default(), 0, 0).is_none());
    }
}
