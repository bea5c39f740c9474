//! L2 `power_feed`: one feed of a dual-fed rack is gone. Subject = the rack.
//!
//! Rack PDUs (read over SNMP) report `power_feed_available` per inlet or
//! phase, labelled with the `rack` and `feed` (`a`, `b`) their device is
//! configured with. A rack is dual-fed when its readings name at least two
//! feeds. A feed is lost when none of its readings is 1 and at least one is
//! 0 or unknown (a PDU whose card died with its inlet reads unknown), while
//! another feed of the rack still reads 1: the servers run on one cord, with
//! no redundancy left. Every feed of a rack gone is not this signal's: the
//! rack is dark, and L3 `power` (mains, UPS, generator) says why.

use std::collections::BTreeMap;

use sitewatch_protocol::{Cause, Evidence, Severity, quantity as q};

use super::{CauseSet, Condition, Ctx, cap_evidence, reading_evidence};
use crate::{host_index::Reader, snapshot::SeriesSnapshot};

/// A site on battery or without mains explains its feeds going.
const EXPLAINED_BY: CauseSet = CauseSet::of(&[Cause::Power]);

#[derive(Default)]
struct Feed {
    up: bool,
    down: bool,
    evidence: Vec<Evidence>,
}

/// What the loop below reads ([`crate::host_index`]).
pub(crate) fn reads(r: &SeriesSnapshot) -> bool {
    r.q == q::POWER_FEED_AVAILABLE
}

pub fn evaluate(ctx: &Ctx<'_>) -> Vec<Condition> {
    let cfg = &ctx.cfg.power_feed;
    if !cfg.enabled {
        return Vec::new();
    }
    // rack -> feed -> what its readings say
    let mut racks: BTreeMap<&str, BTreeMap<&str, Feed>> = BTreeMap::new();
    for host in &ctx.site.hosts {
        for r in host
            .readings_for(Reader::PowerFeed)
            .filter(|r| r.q == q::POWER_FEED_AVAILABLE)
        {
            let (Some(rack), Some(feed)) = (r.labels.get("rack"), r.labels.get("feed")) else {
                continue;
            };
            let f = racks.entry(rack).or_default().entry(feed).or_default();
            if r.is_flag(1.0) {
                f.up = true;
            } else {
                f.down = true;
                let how = if r.number().is_some() {
                    "lost"
                } else {
                    "unknown (PDU not answering)"
                };
                f.evidence.push(reading_evidence(
                    host.name(),
                    r,
                    format!("feed {feed} of rack {rack} {how}: {} {}", r.dev, r.name),
                ));
            }
        }
    }
    let mut out = Vec::new();
    for (rack, feeds) in racks {
        if feeds.len() < 2 || !feeds.values().any(|f| f.up) {
            continue;
        }
        let lost: Vec<(&str, Feed)> = feeds.into_iter().filter(|(_, f)| f.down && !f.up).collect();
        if lost.is_empty() {
            continue;
        }
        let names: Vec<&str> = lost.iter().map(|(n, _)| *n).collect();
        let evidence = lost.into_iter().flat_map(|(_, f)| f.evidence).collect();
        out.push(Condition {
            cause: Cause::PowerFeed,
            subject: rack.to_owned(),
            severity: Severity::High,
            summary: format!(
                "rack {rack}: feed {} lost, running on its other feed without redundancy",
                names.join(", ")
            ),
            evidence: cap_evidence(evidence),
            for_ms: crate::config::ms(cfg.hold_for),
            explained_by: EXPLAINED_BY,
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use sitewatch_protocol::ReadingState;

    use super::*;
    use crate::{
        causes::test_support::{site, with_ctx},
        config::SignalsConfig,
        snapshot::{HostSnapshot, Liveness, SeriesSnapshot},
    };

    fn pdu(dev: &str, rack: &str, feed: &str, value: Option<f64>) -> SeriesSnapshot {
        let r = SeriesSnapshot::ok(
            "snmp",
            dev,
            q::POWER_FEED_AVAILABLE,
            value.unwrap_or(0.0),
            0,
        )
        .named("phase_feed.1")
        .with_label("rack", rack)
        .with_label("feed", feed);
        match value {
            Some(_) => r,
            None => SeriesSnapshot {
                value: None,
                ..r.in_state(ReadingState::Unknown)
            },
        }
    }

    fn gateway(readings: Vec<SeriesSnapshot>) -> HostSnapshot {
        HostSnapshot::new("gw-01", Liveness::Online).with_readings(readings)
    }

    #[test]
    fn one_feed_of_a_dual_fed_rack_lost_is_a_condition() {
        let cfg = SignalsConfig::default();
        let s = site(vec![gateway(vec![
            pdu("pdu-r12-a", "r12", "a", Some(0.0)),
            pdu("pdu-r12-b", "r12", "b", Some(1.0)),
        ])]);
        let c = with_ctx(&s, &cfg, 0, evaluate);
        assert_eq!(c.len(), 1);
        assert_eq!(
            (c[0].cause, c[0].subject.as_str()),
            (Cause::PowerFeed, "r12")
        );
        assert_eq!(c[0].severity, Severity::High);
        assert!(c[0].summary.contains("feed a lost"), "{}", c[0].summary);
        assert_eq!(c[0].explained_by, EXPLAINED_BY);
    }

    #[test]
    fn a_pdu_gone_silent_while_its_twin_answers_counts_as_its_feed_lost() {
        let cfg = SignalsConfig::default();
        let s = site(vec![gateway(vec![
            pdu("pdu-r12-a", "r12", "a", None),
            pdu("pdu-r12-b", "r12", "b", Some(1.0)),
        ])]);
        assert_eq!(with_ctx(&s, &cfg, 0, evaluate).len(), 1);
    }

    #[test]
    fn healthy_dark_and_single_fed_racks_are_not_conditions() {
        let cfg = SignalsConfig::default();
        let s = site(vec![gateway(vec![
            // Both feeds fine.
            pdu("pdu-r1-a", "r1", "a", Some(1.0)),
            pdu("pdu-r1-b", "r1", "b", Some(1.0)),
            // Both gone: dark, L3 power's matter.
            pdu("pdu-r2-a", "r2", "a", Some(0.0)),
            pdu("pdu-r2-b", "r2", "b", Some(0.0)),
            // One feed only.
            pdu("pdu-r3-a", "r3", "a", Some(0.0)),
        ])]);
        assert!(with_ctx(&s, &cfg, 0, evaluate).is_empty());
    }
}
