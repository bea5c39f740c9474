//! L2 `host_hardware`: a hardware sensor in critical state, a failed PSU, a
//! stopped fan, or a lost host. One condition per host (subject = host), listing
//! every fault found on it.
//!
//! A lost host is raised "while its site is otherwise fine": when the site is
//! at L3 (a power or network cut, a cooling failure that tripped servers), the
//! engine lists it in the L3's evidence instead of paging it. Each fault says
//! which L3 causes would explain it; a host's condition is explained only by a
//! cause that explains all of its faults.

use std::collections::BTreeSet;

use sitewatch_protocol::{Cause, ReadingState, Severity, quantity as q};

use super::{CauseSet, Condition, Ctx, cap_evidence, host_evidence, human_ms, reading_evidence};
use crate::{
    config::{HostHardwareConfig, SignalsConfig},
    host_index::Reader,
    snapshot::SeriesSnapshot,
};

const LOST: CauseSet = CauseSet::of(&[Cause::Power, Cause::Network, Cause::Cooling]);
const ELECTRICAL: CauseSet = CauseSet::of(&[Cause::Power]);
const THERMAL: CauseSet = CauseSet::of(&[Cause::Cooling]);

/// What the loop below reads ([`crate::host_index`]).
/// `state` is the reading's, or the one it is asked about.
pub(crate) fn reads(r: &SeriesSnapshot, state: ReadingState, cfg: &SignalsConfig) -> bool {
    r.q == q::PSU_OK
        || r.q == q::FAN_SPEED_RPM
        || (state == ReadingState::Critical
            && cfg
                .host_hardware
                .hardware_sources
                .iter()
                .any(|s| r.src == *s))
}

/// What is wrong with one reading, if anything.
struct Fault {
    hardware_critical: bool,
    psu_failed: bool,
    fan_stopped: bool,
}

impl Fault {
    fn of(r: &SeriesSnapshot, cfg: &HostHardwareConfig) -> Self {
        Fault {
            hardware_critical: r.state == ReadingState::Critical
                && cfg.hardware_sources.iter().any(|s| r.src == *s),
            psu_failed: r.q == q::PSU_OK && r.is_flag(0.0),
            // Absent fans read 0 rpm in state ok; a stopped one is flagged.
            fan_stopped: r.q == q::FAN_SPEED_RPM
                && r.is_flag(0.0)
                && matches!(r.state, ReadingState::Warning | ReadingState::Critical),
        }
    }

    fn any(&self) -> bool {
        self.hardware_critical || self.psu_failed || self.fan_stopped
    }
}

/// Whether none of a host's `readings` is a fault ([`crate::host_index`]
/// keeps the answer per host): then only its being lost can raise this cause.
pub(crate) fn quiet<'a>(
    cfg: &SignalsConfig,
    mut readings: impl Iterator<Item = &'a SeriesSnapshot>,
) -> bool {
    let cfg = &cfg.host_hardware;
    !cfg.enabled || readings.all(|r| !Fault::of(r, cfg).any())
}

pub fn evaluate(ctx: &Ctx<'_>) -> Vec<Condition> {
    let cfg = &ctx.cfg.host_hardware;
    if !cfg.enabled {
        return Vec::new();
    }
    let mut out = Vec::new();
    let for_ms = crate::config::ms(cfg.hold_for);
    for host in &ctx.site.hosts {
        let name = host.name();
        let mut evidence = Vec::new();
        let mut explained_by: Option<CauseSet> = None;
        let mut add = |ev, by: CauseSet| {
            evidence.push(ev);
            explained_by = Some(explained_by.map_or(by, |e| e.intersection(by)));
        };
        // A sensor can match several rules (a critical IPMI fan at 0 rpm); once is enough.
        let mut seen = BTreeSet::new();
        // A host known to have no fault costs only its lost check.
        let readings = (!host.known_quiet(Reader::HostHardware))
            .then(|| host.readings_for(Reader::HostHardware));
        for r in readings.into_iter().flatten() {
            let fault = Fault::of(r, cfg);
            if !fault.any() {
                continue;
            }
            if !seen.insert((&r.src, &r.dev, &r.name, &r.q)) {
                continue;
            }
            let (what, by) = if fault.psu_failed {
                ("power supply failed", ELECTRICAL)
            } else if fault.fan_stopped {
                // A stopped fan is a part failure whatever the room does.
                ("fan stopped", CauseSet::EMPTY)
            } else {
                ("sensor critical", domain_of(&r.q))
            };
            let value = r
                .number()
                .map_or_else(|| "unreadable".to_owned(), |v| v.to_string());
            let summary = format!("{what}: {} {} ({}) = {value}", r.src, r.name, r.q);
            add(reading_evidence(name, r, summary), by);
        }
        let lost_since = ctx.site.lost_since(name);
        if cfg.lost_hosts
            && let Some(since) = lost_since
        {
            let summary = format!("agent lost for {}", human_ms(ctx.now_ms - since));
            add(host_evidence(name, summary), LOST);
        }
        let Some(explained_by) = explained_by else {
            continue;
        };
        let summary = match (evidence.len(), lost_since.is_some()) {
            (1, true) => format!("{name} lost"),
            (1, false) => format!("hardware fault on {name}"),
            (n, _) => format!("{n} hardware faults on {name}"),
        };
        out.push(Condition {
            cause: Cause::HostHardware,
            subject: name.to_owned(),
            severity: Severity::High,
            summary,
            evidence: cap_evidence(evidence),
            for_ms,
            explained_by,
        });
    }
    // Expected hosts never seen have no snapshot entry: they are lost hosts too.
    if cfg.lost_hosts && !ctx.site.lost.is_empty() {
        let seen: BTreeSet<&str> = ctx.site.hosts.iter().map(|h| h.name()).collect();
        for &(host, since) in &ctx.site.lost {
            if seen.contains(host) {
                continue;
            }
            out.push(Condition {
                cause: Cause::HostHardware,
                subject: host.to_owned(),
                severity: Severity::High,
                summary: format!("{host} lost"),
                evidence: vec![host_evidence(
                    host,
                    format!(
                        "expected host never reported (counted lost for {})",
                        human_ms(ctx.now_ms - since)
                    ),
                )],
                for_ms,
                explained_by: LOST,
            });
        }
    }
    out
}

/// Which site-wide failure would explain a critical sensor of this quantity.
fn domain_of(quantity: &str) -> CauseSet {
    if quantity.contains("temperature") || quantity == q::FAN_SPEED_RPM {
        THERMAL
    } else if matches!(
        quantity,
        q::VOLTAGE_VOLTS | q::CURRENT_AMPERES | q::POWER_WATTS | q::FREQUENCY_HERTZ | q::PSU_OK
    ) {
        ELECTRICAL
    } else {
        CauseSet::EMPTY
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{
        causes::test_support::{site, with_ctx},
        config::SignalsConfig,
        snapshot::{HostSnapshot, Liveness, SeriesSnapshot},
    };

    #[test]
    fn psu_failure_and_hot_cpu_make_one_condition_explained_by_nothing_common() {
        let cfg = SignalsConfig::default();
        let h = HostSnapshot::new("db-01", Liveness::Online)
            .with_reading(SeriesSnapshot::ok("ipmi", "bmc", q::PSU_OK, 0.0, 0).named("PSU1"))
            .with_reading(
                SeriesSnapshot::ok("ipmi", "bmc", q::TEMPERATURE_CELSIUS, 96.0, 0)
                    .named("CPU Temp")
                    .in_state(ReadingState::Critical),
            );
        let c = with_ctx(&site(vec![h]), &cfg, 0, evaluate);
        assert_eq!(c.len(), 1);
        assert_eq!(c[0].subject, "db-01");
        assert_eq!(c[0].evidence.len(), 2);
        assert!(c[0].explained_by.is_empty());
    }

    #[test]
    fn absent_fan_reading_zero_in_state_ok_is_no_fault() {
        let cfg = SignalsConfig::default();
        let h = HostSnapshot::new("db-01", Liveness::Online).with_reading(SeriesSnapshot::ok(
            "ipmi",
            "bmc",
            q::FAN_SPEED_RPM,
            0.0,
            0,
        ));
        assert!(with_ctx(&site(vec![h]), &cfg, 0, evaluate).is_empty());
    }

    #[test]
    fn lost_host_is_explained_by_power_network_or_cooling() {
        let cfg = SignalsConfig::default();
        let h = HostSnapshot::new("web-01", Liveness::Lost { since_ms: 1_000 });
        let c = with_ctx(&site(vec![h]), &cfg, 5_000, evaluate);
        assert_eq!(c.len(), 1);
        assert_eq!(c[0].summary, "web-01 lost");
        assert!(c[0].explained_by.contains(Cause::Network));
        assert!(c[0].explained_by.contains(Cause::Power));
    }
}
