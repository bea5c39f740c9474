//! L1 `host_resources`: CPU, memory and filesystems above their limits.
//!
//! Subjects are `<host>:cpu`, `<host>:memory` and `<host>:<mount>`: each resource
//! has its own `for` and clears on its own, so they cannot share the host as key.
//! Mount points start with `/`, so they never collide with `cpu` or `memory`.

use std::collections::BTreeMap;

use sitewatch_protocol::{Cause, Severity, quantity as q};

use super::{CauseSet, Condition, Ctx, HostView, Tier, percent, reading_evidence};
use crate::{
    config::{HostResourcesConfig, SignalsConfig, UsageThreshold},
    host_index::Reader,
    snapshot::SeriesSnapshot,
};

/// What the loop below reads ([`crate::host_index`]).
pub(crate) fn reads(r: &SeriesSnapshot) -> bool {
    matches!(
        r.q.as_str(),
        q::CPU_USAGE_RATIO | q::MEMORY_USAGE_RATIO | q::FILESYSTEM_USAGE_RATIO
    )
}

/// The limits a reading is held against, if this cause reads it.
fn limits_of<'a>(cfg: &'a HostResourcesConfig, r: &SeriesSnapshot) -> Option<&'a UsageThreshold> {
    match r.q.as_str() {
        q::CPU_USAGE_RATIO => Some(&cfg.cpu),
        q::MEMORY_USAGE_RATIO => Some(&cfg.memory),
        q::FILESYSTEM_USAGE_RATIO => Some(&cfg.filesystem),
        _ => None,
    }
}

/// Whether `value` is close enough to a limit of `limits` that a condition
/// may hold, raised or not: above a limit less its hysteresis.
fn could_hold(value: f64, limits: &UsageThreshold) -> bool {
    let near = |limit: f64| value > limit || value >= limit - limits.hysteresis;
    near(limits.critical) || limits.warning.is_some_and(near)
}

/// Whether a host's `readings` give this cause nothing to find, whatever is
/// raised ([`crate::host_index`] keeps the answer per host): every value
/// below every limit less its hysteresis.
pub(crate) fn quiet<'a>(
    cfg: &SignalsConfig,
    mut readings: impl Iterator<Item = &'a SeriesSnapshot>,
) -> bool {
    let cfg = &cfg.host_resources;
    !cfg.enabled
        || readings.all(|r| {
            let (Some(limits), Some(value)) = (limits_of(cfg, r), r.number()) else {
                return true;
            };
            !could_hold(value, limits)
        })
}

pub fn evaluate(ctx: &Ctx<'_>) -> Vec<Condition> {
    let cfg = &ctx.cfg.host_resources;
    if !cfg.enabled {
        return Vec::new();
    }
    let mut out = Vec::new();
    for host in &ctx.site.hosts {
        if host.known_quiet(Reader::HostResources) {
            continue;
        }
        // One value per resource: the highest, should a host report several.
        let mut worst: BTreeMap<(&str, &str), &SeriesSnapshot> = BTreeMap::new();
        for r in host.readings_for(Reader::HostResources) {
            let resource = match r.q.as_str() {
                q::CPU_USAGE_RATIO => "cpu",
                q::MEMORY_USAGE_RATIO => "memory",
                q::FILESYSTEM_USAGE_RATIO => r.dev.as_str(),
                _ => continue,
            };
            let Some(value) = r.number() else { continue };
            worst
                .entry((r.q.as_str(), resource))
                .and_modify(|w| {
                    if w.number().is_some_and(|wv| value > wv) {
                        *w = r;
                    }
                })
                .or_insert(r);
        }
        for ((_, resource), r) in worst {
            if let Some(limits) = limits_of(cfg, r) {
                check(ctx, host, resource, r, limits, &mut out);
            }
        }
    }
    out
}

fn check(
    ctx: &Ctx<'_>,
    host: &HostView<'_>,
    resource: &str,
    r: &SeriesSnapshot,
    limits: &UsageThreshold,
    out: &mut Vec<Condition>,
) {
    let Some(value) = r.number() else { return };
    // Below every limit less its hysteresis nothing holds, raised or not: the
    // usual case, settled without building the subject.
    if !could_hold(value, limits) {
        return;
    }
    let subject = format!("{}:{resource}", host.name());
    let tiers = [
        (Tier::Alarm, Severity::Medium, Some(limits.critical)),
        (Tier::Advisory, Severity::Low, limits.warning),
    ];
    for (tier, severity, limit) in tiers {
        let Some(limit) = limit else { continue };
        let raised = ctx.held.is_raised(Cause::HostResources, &subject, tier);
        let holds = if raised {
            value >= limit - limits.hysteresis
        } else {
            value > limit
        };
        if !holds {
            continue;
        }
        let summary = format!(
            "{resource} of {} at {} (limit {})",
            host.name(),
            percent(value),
            percent(limit)
        );
        out.push(Condition {
            cause: Cause::HostResources,
            subject: subject.clone(),
            severity,
            evidence: vec![reading_evidence(host.name(), r, summary.clone())],
            summary,
            for_ms: crate::config::ms(limits.hold_for),
            // A host's own load is not explained by a site disaster.
            explained_by: CauseSet::EMPTY,
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{
        causes::test_support::{site, with_ctx},
        config::SignalsConfig,
        snapshot::{HostSnapshot, Liveness},
    };

    fn host(cpu: f64, root: f64) -> HostSnapshot {
        HostSnapshot::new("web-01", Liveness::Online)
            .with_reading(SeriesSnapshot::ok(
                "host",
                "cpu",
                q::CPU_USAGE_RATIO,
                cpu,
                0,
            ))
            .with_reading(SeriesSnapshot::ok(
                "host",
                "/",
                q::FILESYSTEM_USAGE_RATIO,
                root,
                0,
            ))
    }

    #[test]
    fn cpu_above_limit_is_an_alarm_and_an_advisory() {
        let cfg = SignalsConfig::default();
        let s = site(vec![host(0.9, 0.1)]);
        let c = with_ctx(&s, &cfg, 0, evaluate);
        let got: Vec<_> = c.iter().map(|c| (c.subject.as_str(), c.severity)).collect();
        assert_eq!(
            got,
            [
                ("web-01:cpu", Severity::Medium),
                ("web-01:cpu", Severity::Low)
            ]
        );
        assert_eq!(c[0].for_ms, 300_000);
    }

    #[test]
    fn filesystem_warning_only_is_an_advisory_per_mount() {
        let cfg = SignalsConfig::default();
        let s = site(vec![host(0.1, 0.9)]);
        let c = with_ctx(&s, &cfg, 0, evaluate);
        assert_eq!(c.len(), 1);
        assert_eq!(c[0].subject, "web-01:/");
        assert_eq!(c[0].severity, Severity::Low);
    }
}
