//! L3 `power`, subject = the site.
//!
//! - Mains lost (`mains_available == 0` or `ups_on_battery == 1` anywhere at the
//!   site) and a generator faulted (`generator_fault == 1`): at once.
//! - Mains lost at a site with generators, and none of them running
//!   (`generator_running == 1`) for the start grace: the generator did not start.
//! - A UPS on battery for the start grace while no generator supplies the site
//!   (no generator readings at all, or none running).
//! - Mains lost while a generator supplies the site: an advisory (low): the site
//!   is fine but on fuel.
//!
//! PDU feeds read as lost (`power_feed_available == 0`) are listed in the
//! evidence; alone they raise `power_feed` (L2), not this.
//!
//! The grace is this condition's `for`: the engine's temporal machine times it
//! from when the condition first held, so no memory is needed here.

use sitewatch_protocol::{Cause, Evidence, Severity, quantity as q};

use super::{CauseSet, Condition, Ctx, cap_evidence, reading_evidence};

pub fn evaluate(ctx: &Ctx<'_>) -> Vec<Condition> {
    let cfg = &ctx.cfg.power;
    if !cfg.enabled {
        return Vec::new();
    }
    let mut mains_lost = false;
    let mut on_battery = false;
    let mut has_generator = false;
    let mut supplying = false;
    let mut faulted = false;
    let mut evidence: Vec<Evidence> = Vec::new();
    for host in &ctx.site.hosts {
        for r in host.readings() {
            let fact = match r.q.as_str() {
                q::MAINS_AVAILABLE if r.is_flag(0.0) => {
                    mains_lost = true;
                    "mains lost"
                }
                q::UPS_ON_BATTERY if r.is_flag(1.0) => {
                    mains_lost = true;
                    on_battery = true;
                    "UPS on battery"
                }
                q::UPS_BATTERY_LOW if r.is_flag(1.0) => "UPS battery low",
                // Evidence only: one feed gone is `power_feed`'s, all of them
                // follow from the mains.
                q::POWER_FEED_AVAILABLE if r.is_flag(0.0) => "PDU feed lost",
                q::GENERATOR_RUNNING => {
                    has_generator = true;
                    if r.is_flag(1.0) {
                        supplying = true;
                        "generator running"
                    } else {
                        "generator not running"
                    }
                }
                q::GENERATOR_FAULT => {
                    has_generator = true;
                    if !r.is_flag(1.0) {
                        continue;
                    }
                    faulted = true;
                    "generator fault"
                }
                _ => continue,
            };
            let summary = format!("{fact}: {} {} on {}", r.dev, r.name, host.name());
            evidence.push(reading_evidence(host.name(), r, summary));
        }
    }
    if !mains_lost {
        return Vec::new();
    }
    let site = ctx.site.site;
    let grace_ms = crate::config::ms(cfg.generator_start_grace);
    let (severity, summary, for_ms) = if faulted {
        (
            Severity::Critical,
            format!("{site}: mains lost and the generator faulted"),
            0,
        )
    } else if supplying {
        (
            Severity::Low,
            format!("{site}: mains lost, running on generator"),
            0,
        )
    } else if has_generator {
        (
            Severity::Critical,
            format!("{site}: mains lost and no generator running after the start grace"),
            grace_ms,
        )
    } else if on_battery {
        (
            Severity::Critical,
            format!("{site}: UPS on battery past the grace with no generator"),
            grace_ms,
        )
    } else {
        // Mains lost at one controller, no UPS on battery and no generator: the
        // other feed carries the site.
        return Vec::new();
    };
    vec![Condition {
        cause: Cause::Power,
        subject: site.to_owned(),
        severity,
        summary,
        evidence: cap_evidence(evidence),
        for_ms,
        explained_by: CauseSet::EMPTY,
    }]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{
        causes::test_support::{site, with_ctx},
        config::SignalsConfig,
        snapshot::{HostSnapshot, Liveness, SeriesSnapshot},
    };

    fn gateway(readings: &[(&str, f64)]) -> HostSnapshot {
        HostSnapshot::new("gw-01", Liveness::Online).with_readings(
            readings
                .iter()
                .map(|(quantity, v)| SeriesSnapshot::ok("modbus", "ups-a", *quantity, *v, 0)),
        )
    }

    #[test]
    fn on_battery_without_generator_waits_for_the_grace() {
        let cfg = SignalsConfig::default();
        let s = site(vec![gateway(&[(q::UPS_ON_BATTERY, 1.0)])]);
        let c = with_ctx(&s, &cfg, 0, evaluate);
        assert_eq!(c.len(), 1);
        assert_eq!((c[0].severity, c[0].for_ms), (Severity::Critical, 20_000));
    }

    #[test]
    fn generator_fault_is_at_once_and_running_generator_is_an_advisory() {
        let cfg = SignalsConfig::default();
        let s = site(vec![gateway(&[
            (q::MAINS_AVAILABLE, 0.0),
            (q::GENERATOR_FAULT, 1.0),
        ])]);
        let c = with_ctx(&s, &cfg, 0, evaluate);
        assert_eq!((c[0].severity, c[0].for_ms), (Severity::Critical, 0));
        let s = site(vec![gateway(&[
            (q::MAINS_AVAILABLE, 0.0),
            (q::GENERATOR_RUNNING, 1.0),
        ])]);
        assert_eq!(with_ctx(&s, &cfg, 0, evaluate)[0].severity, Severity::Low);
    }

    #[test]
    fn mains_present_is_nothing() {
        let cfg = SignalsConfig::default();
        let s = site(vec![gateway(&[
            (q::MAINS_AVAILABLE, 1.0),
            (q::UPS_ON_BATTERY, 0.0),
            (q::GENERATOR_RUNNING, 0.0),
        ])]);
        assert!(with_ctx(&s, &cfg, 0, evaluate).is_empty());
    }
}
