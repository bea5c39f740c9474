//! L4 `region`: two or more sites of one region at L3 at once.
//!
//! Its input is not a site snapshot but the L3 signals the engine has raised
//! (after their `for`, not inhibited, severity above low), grouped by site. The
//! L4 is raised at each site of the region that is at L3, subject = the region,
//! and its evidence lists the L3s of every such site. The L3s stay published:
//! they say what happened where, and the DR plan acts on each site.

use std::collections::BTreeMap;

use sitewatch_protocol::{Cause, Evidence, Severity, payload::EvidenceDetail};

use super::{CauseSet, Condition, cap_evidence};
use crate::config::SignalsConfig;

/// An active L3 as the region cause sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct SiteL3 {
    pub cause: Cause,
    pub subject: String,
    pub summary: String,
}

/// `l3` maps each site to its active L3s. Returns (site, condition) pairs.
pub fn evaluate(
    cfg: &SignalsConfig,
    l3: &BTreeMap<String, Vec<SiteL3>>,
) -> Vec<(String, Condition)> {
    if !cfg.region.enabled {
        return Vec::new();
    }
    let mut regions: BTreeMap<&str, Vec<(&str, &[SiteL3])>> = BTreeMap::new();
    for (site, signals) in l3 {
        if signals.is_empty() {
            continue;
        }
        if let Some(region) = cfg.region_of(site) {
            regions.entry(region).or_default().push((site, signals));
        }
    }
    let mut out = Vec::new();
    for (region, sites) in regions {
        if sites.len() < cfg.region.min_sites {
            continue;
        }
        let names: Vec<&str> = sites.iter().map(|s| s.0).collect();
        let evidence: Vec<Evidence> = sites
            .iter()
            .flat_map(|(site, signals)| {
                signals.iter().map(move |s| {
                    Evidence::Detail(EvidenceDetail {
                        summary: format!("{site}: L3 {} ({})", s.cause, s.summary),
                        host: None,
                        src: None,
                        dev: None,
                        q: None,
                        value: None,
                        inhibits: None,
                    })
                })
            })
            .collect();
        let evidence = cap_evidence(evidence);
        let summary = format!(
            "region {region}: {} sites at L3 ({})",
            names.len(),
            names.join(", ")
        );
        for site in names {
            out.push((
                site.to_owned(),
                Condition {
                    cause: Cause::Region,
                    subject: region.to_owned(),
                    severity: Severity::Critical,
                    summary: summary.clone(),
                    evidence: evidence.clone(),
                    for_ms: 0,
                    explained_by: CauseSet::EMPTY,
                },
            ));
        }
    }
    out
}
