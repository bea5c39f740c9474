//! L3 `network`, subject = the site: at least half of the site's counted agents,
//! and at least two, lost within one minute of each other.
//!
//! "Within one minute" tells a cut from attrition: hosts that died one by one over
//! a week are L2s each. The losses must cluster: some one-minute window holds
//! enough of them. The condition then holds for as long as those hosts stay lost,
//! however long ago the cut was.
//!
//! Counted agents exclude hosts shut down cleanly and hosts in maintenance (see
//! [`super::SiteView`]); expected hosts never seen count once the startup grace is
//! over. During the grace nothing is lost, so a collector restart raises nothing.
//!
//! Evidence: the lost hosts, and the agents still up that cannot reach an uplink or
//! a peer site (`probe_up == 0` with such a role): what the cut looks like from inside.

use sitewatch_protocol::{Cause, Evidence, Severity, SiteReport, quantity as q};

use super::{
    CauseSet, Condition, Ctx, Gate, SiteView, cap_evidence, host_evidence, human_ms,
    reading_evidence,
};
use crate::{config::NetworkConfig, host_index::Reader, snapshot::SeriesSnapshot};

/// What the probe loop below reads ([`crate::host_index`]).
pub(crate) fn reads(r: &SeriesSnapshot) -> bool {
    r.q == q::PROBE_UP
}

/// This collector's own judgement of a site: counted and lost agents, and
/// whether the loss alone meets the rule. Published to peers in the view.
pub fn local_report(view: &SiteView<'_>, cfg: &NetworkConfig) -> SiteReport {
    let counted = u32::try_from(view.counted).unwrap_or(u32::MAX);
    let lost = u32::try_from(view.lost.len()).unwrap_or(u32::MAX);
    SiteReport {
        counted,
        lost,
        down: cfg.enabled && meets_rule(view, cfg),
    }
}

fn meets_rule(view: &SiteView<'_>, cfg: &NetworkConfig) -> bool {
    if view.lost.len() < cfg.min_lost {
        return false;
    }
    let needed = cfg
        .min_lost
        .max((view.counted as f64 * cfg.lost_ratio).ceil() as usize);
    largest_cluster(&view.lost, crate::config::ms(cfg.within)) >= needed
}

pub fn evaluate(ctx: &Ctx<'_>) -> Vec<Condition> {
    let cfg = &ctx.cfg.network;
    let view = ctx.site;
    if !cfg.enabled || !meets_rule(view, cfg) {
        return Vec::new();
    }
    let agreeing = match ctx.gate {
        // Another vantage point sees this site up, or this one is cut off:
        // not a site loss (see `vantage.rs`).
        Gate::Suppressed | Gate::Pending => return Vec::new(),
        Gate::Alone => None,
        Gate::Corroborated(peers) => Some(peers),
    };
    let mut evidence = Vec::new();
    if agreeing.is_none() {
        evidence.push(Evidence::Text(format!(
            "corroboration: {} of {} agents lost, seen from this collector alone",
            view.lost.len(),
            view.counted
        )));
    }
    if let Some(peers) = agreeing {
        let text = if peers.is_empty() {
            "corroboration: none (no other vantage point has a view of this site)".to_owned()
        } else {
            format!(
                "corroboration: {} vantage points agree ({} and this collector)",
                peers.len() + 1,
                peers.join(", ")
            )
        };
        evidence.push(Evidence::Text(text));
    }
    for &(host, since) in &view.lost {
        let summary = format!("{host} lost for {}", human_ms(ctx.now_ms - since));
        evidence.push(host_evidence(host, summary));
    }
    for host in view.hosts.iter().filter(|h| !view.is_lost(h.name())) {
        for r in host
            .readings_for(Reader::Network)
            .filter(|r| r.q == q::PROBE_UP)
        {
            let role = r.labels.get("role").map(String::as_str).unwrap_or_default();
            if r.is_flag(0.0) && cfg.probe_roles.iter().any(|x| x == role) {
                let summary = format!("{} does not reach {role} {}", host.name(), r.dev);
                evidence.push(reading_evidence(host.name(), r, summary));
            }
        }
    }
    let summary = match agreeing {
        Some(peers) if view.hosts.iter().all(|h| view.is_lost(h.name())) => format!(
            "{}: unreachable from every vantage point (power or network): {} of {} agents lost \
             within {}, seen from {} collectors",
            view.site,
            view.lost.len(),
            view.counted,
            humantime::format_duration(cfg.within),
            peers.len() + 1
        ),
        _ => format!(
            "{}: {} of {} agents lost within {}",
            view.site,
            view.lost.len(),
            view.counted,
            humantime::format_duration(cfg.within)
        ),
    };
    vec![Condition {
        cause: Cause::Network,
        subject: view.site.to_owned(),
        severity: Severity::Critical,
        summary,
        evidence: cap_evidence(evidence),
        // The one-minute clustering is the debounce; the DR plan's 30 s budget
        // leaves no room for another.
        for_ms: 0,
        explained_by: CauseSet::EMPTY,
    }]
}

/// The most losses that fall within one window of `within_ms`.
fn largest_cluster(lost: &[(&str, i64)], within_ms: i64) -> usize {
    let mut times: Vec<i64> = lost.iter().map(|l| l.1).collect();
    times.sort_unstable();
    let mut best = 0;
    let mut start = 0;
    for end in 0..times.len() {
        while times[end] - times[start] > within_ms {
            start += 1;
        }
        best = best.max(end - start + 1);
    }
    best
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clusters_are_counted_within_the_window() {
        let lost = [("a", 0), ("b", 30_000), ("c", 60_000), ("d", 200_000)];
        assert_eq!(largest_cluster(&lost, 60_000), 3);
        assert_eq!(largest_cluster(&lost, 10_000), 1);
        assert_eq!(largest_cluster(&[], 60_000), 0);
    }
}
