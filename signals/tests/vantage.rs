#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! Site signals from several vantage points: three collectors (sites a and b,
//! witness w), seen from b's collector, on an explicit clock.

use std::collections::BTreeMap;

use sitewatch_protocol::{Cause, SiteReport};
use sitewatch_signals::config::{CollectorEntry, TopologyConfig};
use sitewatch_signals::{
    Engine, HostSnapshot, Liveness, PeerSnapshot, SignalsConfig, SiteSnapshot, Snapshot, Vantage,
};

const T0: i64 = 1_764_080_000_000;

fn at(s: i64) -> i64 {
    T0 + s * 1000
}

fn config() -> SignalsConfig {
    let c = |name: &str, site: &str, witness| CollectorEntry {
        name: name.into(),
        site: site.into(),
        witness,
    };
    SignalsConfig {
        topology: TopologyConfig {
            collectors: vec![
                c("c-a", "a", false),
                c("c-b", "b", false),
                c("c-w", "w", true),
            ],
            ..TopologyConfig::default()
        },
        ..SignalsConfig::default()
    }
}

fn engine() -> Engine {
    Engine::new(config(), T0 - 3_600_000)
}

fn hosts(site: &str, lost_since: Option<i64>) -> SiteSnapshot {
    SiteSnapshot::new(
        site,
        (1..=4)
            .map(|i| {
                let l = match lost_since {
                    Some(s) => Liveness::Lost { since_ms: at(s) },
                    None => Liveness::Online,
                };
                HostSnapshot::new(format!("{site}-{i}"), l)
            })
            .collect(),
    )
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

fn peer(name: &str, site: &str, online: bool, a: Option<SiteReport>) -> PeerSnapshot {
    PeerSnapshot {
        name: name.into(),
        site: site.into(),
        witness: site == "w",
        liveness: if online {
            Liveness::Online
        } else {
            Liveness::Lost { since_ms: at(0) }
        },
        reports: a
            .into_iter()
            .map(|r| ("a".to_owned(), r))
            .collect::<BTreeMap<_, _>>(),
        // Always newer than the losses of these tests.
        view_at_ms: Some(i64::MAX / 2),
    }
}

/// What b's collector sees: a's agents lost (or not), and its peers.
fn seen_from_b(a_lost: bool, peers: Vec<PeerSnapshot>) -> Snapshot {
    Snapshot::new(vec![hosts("a", a_lost.then_some(0)), hosts("b", None)]).with_vantage(Vantage {
        me: "c-b".into(),
        site: "b".into(),
        peers,
    })
}

/// The active (site, cause, subject) after evaluating every second of [0, to).
fn active_after(
    e: &mut Engine,
    to: i64,
    frame: impl Fn(i64) -> Snapshot,
) -> Vec<(String, Cause, String)> {
    let mut last = None;
    for s in 0..to {
        last = Some(e.evaluate(&frame(s), at(s)));
    }
    last.unwrap()
        .active
        .iter()
        .map(|s| (s.site.clone(), s.cause, s.subject.clone()))
        .collect()
}

#[test]
fn a_site_that_vanished_for_every_vantage_point_is_an_l3_with_its_collector_loss_inhibited() {
    let mut e = engine();
    let frame = |_| {
        seen_from_b(
            true,
            vec![
                peer("c-a", "a", false, None),
                peer("c-w", "w", true, Some(DOWN)),
            ],
        )
    };
    let active = active_after(&mut e, 15, frame);
    assert_eq!(active, [("a".to_owned(), Cause::Network, "a".to_owned())]);
    let eval = e.evaluate(&frame(15), at(15));
    let l3 = &eval.active[0];
    let text = serde_json::to_string(&l3.evidence).unwrap();
    assert!(text.contains("2 vantage points agree (c-w"), "{text}");
    assert!(text.contains("explains L2 collector_lost c-a"), "{text}");
    // b tells its peers what it saw itself.
    assert_eq!(eval.site_reports.get("a"), Some(&DOWN));
}

#[test]
fn a_cut_between_two_sites_is_an_l2_site_link_and_nothing_about_their_hosts() {
    let mut e = engine();
    let frame = |_| {
        seen_from_b(
            true,
            vec![
                peer("c-a", "a", true, Some(UP)),
                peer("c-w", "w", true, Some(UP)),
            ],
        )
    };
    let active = active_after(&mut e, 15, frame);
    assert_eq!(
        active,
        [("a".to_owned(), Cause::SiteLink, "a<->b".to_owned())]
    );
}

#[test]
fn a_collector_cut_off_from_its_peers_raises_vantage_isolated_and_no_l3() {
    let mut e = engine();
    let frame = |_| {
        seen_from_b(
            true,
            vec![peer("c-a", "a", false, None), peer("c-w", "w", false, None)],
        )
    };
    let active = active_after(&mut e, 15, frame);
    // The collectors it cannot see are listed too; its own isolation explains
    // nothing at their sites, but no L3 and no lost-host L2 are raised.
    assert!(active.contains(&("b".to_owned(), Cause::VantageIsolated, "c-b".to_owned())));
    assert!(
        active
            .iter()
            .all(|(_, c, _)| matches!(c, Cause::VantageIsolated | Cause::CollectorLost)),
        "{active:?}"
    );
}

#[test]
fn a_peer_collector_gone_alone_is_collector_lost_never_an_l3() {
    let mut e = engine();
    let frame = |_| {
        seen_from_b(
            false,
            vec![
                peer("c-a", "a", false, None),
                peer("c-w", "w", true, Some(UP)),
            ],
        )
    };
    let active = active_after(&mut e, 15, frame);
    assert_eq!(
        active,
        [("a".to_owned(), Cause::CollectorLost, "c-a".to_owned())]
    );
}

#[test]
fn a_loss_seen_before_the_peers_views_catch_up_is_raised_once_they_agree() {
    let mut e = engine();
    // For 4 s the witness still reports a up (its view is a few seconds old),
    // then down: the L3 follows, no site_link is raised (it must hold 10 s).
    let frame = |s: i64| {
        let w = if s < 4 { UP } else { DOWN };
        seen_from_b(
            true,
            vec![
                peer("c-a", "a", false, None),
                peer("c-w", "w", true, Some(w)),
            ],
        )
    };
    let mut raised = Vec::new();
    for s in 0..20 {
        for c in e.evaluate(&frame(s), at(s)).changes {
            raised.push((s, c.cause, c.kind));
        }
    }
    let first_network = raised
        .iter()
        .find(|(_, c, _)| *c == Cause::Network)
        .unwrap();
    assert_eq!(first_network.0, 4);
    assert!(
        raised.iter().all(|(_, c, _)| *c != Cause::SiteLink),
        "{raised:?}"
    );
}
