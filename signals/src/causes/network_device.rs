//! L2 `network_device`: a probed switch or router that no agent of the site
//! reaches. Subject = the probe target (`dev`).
//!
//! Only targets whose probe reading carries a `role` in the configured roles
//! count. A target is down when every fresh probe of it at the site reads 0: one
//! agent that cannot reach it has a problem of its own (its NIC, its cable), which
//! is not the device's. "Three consecutive probes" is the cause's `for` (10 s at the
//! default 5 s probe interval) applied to this condition.

use std::collections::BTreeMap;

use sitewatch_protocol::{Cause, Evidence, Severity, quantity as q};

use super::{CauseSet, Condition, Ctx, cap_evidence, reading_evidence};

/// A dead switch also drops the hosts behind it, and a power cut takes the
/// switches down with the servers.
const EXPLAINED_BY: CauseSet = CauseSet::of(&[Cause::Power, Cause::Network]);

pub fn evaluate(ctx: &Ctx<'_>) -> Vec<Condition> {
    let cfg = &ctx.cfg.network_device;
    if !cfg.enabled {
        return Vec::new();
    }
    // target -> (role, every probe is down, evidence)
    let mut targets: BTreeMap<&str, (&str, bool, Vec<Evidence>)> = BTreeMap::new();
    for host in &ctx.site.hosts {
        for r in host.readings_of(q::PROBE_UP) {
            let Some(role) = r.labels.get("role") else {
                continue;
            };
            if !cfg.roles.iter().any(|x| x == role) || r.number().is_none() {
                continue;
            }
            let down = r.is_flag(0.0);
            let entry = targets
                .entry(r.dev.as_str())
                .or_insert((role.as_str(), true, Vec::new()));
            entry.1 &= down;
            if down {
                let summary = format!("{} does not reach {role} {}", host.name(), r.dev);
                entry.2.push(reading_evidence(host.name(), r, summary));
            }
        }
    }
    targets
        .into_iter()
        .filter(|(_, (_, all_down, _))| *all_down)
        .map(|(target, (role, _, evidence))| Condition {
            cause: Cause::NetworkDevice,
            subject: target.to_owned(),
            severity: Severity::High,
            summary: format!("{role} {target} unreachable from every probing agent"),
            evidence: cap_evidence(evidence),
            for_ms: crate::config::ms(cfg.hold_for),
            explained_by: EXPLAINED_BY,
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

    fn prober(host: &str, target: &str, role: &str, up: f64) -> HostSnapshot {
        HostSnapshot::new(host, Liveness::Online).with_reading(
            SeriesSnapshot::ok("net", target, q::PROBE_UP, up, 0).with_label("role", role),
        )
    }

    #[test]
    fn switch_down_from_every_prober_is_a_condition() {
        let cfg = SignalsConfig::default();
        let s = site(vec![
            prober("web-01", "sw-a1", "switch", 0.0),
            prober("web-02", "sw-a1", "switch", 0.0),
        ]);
        let c = with_ctx(&s, &cfg, 0, evaluate);
        assert_eq!(c.len(), 1);
        assert_eq!(c[0].subject, "sw-a1");
        assert_eq!(c[0].evidence.len(), 2);
    }

    #[test]
    fn one_agent_still_reaching_the_switch_clears_it() {
        let cfg = SignalsConfig::default();
        let s = site(vec![
            prober("web-01", "sw-a1", "switch", 0.0),
            prober("web-02", "sw-a1", "switch", 1.0),
        ]);
        assert!(with_ctx(&s, &cfg, 0, evaluate).is_empty());
    }

    #[test]
    fn uplink_and_unlabelled_probes_are_not_devices() {
        let cfg = SignalsConfig::default();
        let s = site(vec![prober("web-01", "isp-gw", "uplink", 0.0)]);
        assert!(with_ctx(&s, &cfg, 0, evaluate).is_empty());
    }
}
