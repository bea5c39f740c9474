//! L2 `network_device`: a probed switch or router that no agent of the site
//! reaches, or a switch read over SNMP whose uplink is down or whose power
//! supply failed. Subject = the probe target or the switch (`dev`).
//!
//! - Probes: see below.
//! - Uplinks: an `interface_up` of 0 labelled `port_role = "uplink"` (the
//!   agent's `uplinks` setting marks them; admin-down ports are never read).
//! - Power supplies: a `psu_ok` of 0 on a device whose readings carry a
//!   `role` in the configured roles (`labels = { role = "switch" }` in its
//!   `[[sources.snmp.devices]]` table): a server's PSU is `host_hardware`'s.
//!
//! Only targets whose probe reading carries a `role` in the configured roles
//! count. A target is down when every fresh probe of it at the site reads 0: one
//! agent that cannot reach it has a problem of its own (its NIC, its cable), which
//! is not the device's. "Three consecutive probes" is the cause's `for` (10 s at the
//! default 5 s probe interval) applied to this condition.

use std::collections::BTreeMap;

use sitewatch_protocol::{Cause, Evidence, Severity, quantity as q};

use super::{CauseSet, Condition, Ctx, cap_evidence, reading_evidence};
use crate::{host_index::Reader, snapshot::SeriesSnapshot};

/// A dead switch also drops the hosts behind it, and a power cut takes the
/// switches down with the servers.
const EXPLAINED_BY: CauseSet = CauseSet::of(&[Cause::Power, Cause::Network]);

/// What the loops below read ([`crate::host_index`]).
pub(crate) fn reads(r: &SeriesSnapshot) -> bool {
    matches!(r.q.as_str(), q::PROBE_UP | q::INTERFACE_UP | q::PSU_OK)
}

pub fn evaluate(ctx: &Ctx<'_>) -> Vec<Condition> {
    let cfg = &ctx.cfg.network_device;
    if !cfg.enabled {
        return Vec::new();
    }
    // target -> (role, every probe is down, evidence)
    let mut targets: BTreeMap<&str, (&str, bool, Vec<Evidence>)> = BTreeMap::new();
    for host in &ctx.site.hosts {
        for r in host
            .readings_for(Reader::NetworkDevice)
            .filter(|r| r.q == q::PROBE_UP)
        {
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
    // device -> (what is wrong, evidence)
    let mut faults: BTreeMap<&str, (Vec<String>, Vec<Evidence>)> = BTreeMap::new();
    for (target, (role, all_down, evidence)) in targets {
        if all_down {
            faults.insert(
                target,
                (
                    vec![format!(
                        "{role} {target} unreachable from every probing agent"
                    )],
                    evidence,
                ),
            );
        }
    }
    for host in &ctx.site.hosts {
        for r in host.readings_for(Reader::NetworkDevice) {
            let fault = match r.q.as_str() {
                q::INTERFACE_UP
                    if r.is_flag(0.0)
                        && r.labels.get("port_role").is_some_and(|p| p == "uplink") =>
                {
                    let port = r.labels.get("port").map_or(r.name.as_str(), String::as_str);
                    format!("uplink {port} of {} down", r.dev)
                }
                q::PSU_OK
                    if r.is_flag(0.0)
                        && r.labels
                            .get("role")
                            .is_some_and(|role| cfg.roles.iter().any(|x| x == role)) =>
                {
                    format!("power supply {} of {} failed", r.name, r.dev)
                }
                _ => continue,
            };
            let entry = faults.entry(r.dev.as_str()).or_default();
            entry.1.push(reading_evidence(
                host.name(),
                r,
                format!("{fault} (read by {})", host.name()),
            ));
            entry.0.push(fault);
        }
    }
    faults
        .into_iter()
        .map(|(device, (what, evidence))| Condition {
            cause: Cause::NetworkDevice,
            subject: device.to_owned(),
            severity: Severity::High,
            summary: what.join("; "),
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

    fn switch(readings: Vec<SeriesSnapshot>) -> HostSnapshot {
        HostSnapshot::new("gw-01", Liveness::Online).with_readings(readings)
    }

    #[test]
    fn a_switch_uplink_down_is_a_condition_and_an_ordinary_port_is_not() {
        let cfg = SignalsConfig::default();
        let port = |name: &str, up: f64, uplink: bool| {
            let r = SeriesSnapshot::ok("snmp", "sw-r12", q::INTERFACE_UP, up, 0)
                .named(name)
                .with_label("port", name)
                .with_label("role", "switch");
            if uplink {
                r.with_label("port_role", "uplink")
            } else {
                r
            }
        };
        let s = site(vec![switch(vec![
            port("Gi1/0/7", 0.0, false),
            port("Te1/1/1", 1.0, true),
        ])]);
        assert!(with_ctx(&s, &cfg, 0, evaluate).is_empty());
        let s = site(vec![switch(vec![
            port("Gi1/0/7", 0.0, false),
            port("Te1/1/1", 0.0, true),
        ])]);
        let c = with_ctx(&s, &cfg, 0, evaluate);
        assert_eq!(c.len(), 1);
        assert_eq!(
            (c[0].subject.as_str(), c[0].severity),
            ("sw-r12", Severity::High)
        );
        assert!(
            c[0].summary.contains("uplink Te1/1/1 of sw-r12 down"),
            "{}",
            c[0].summary
        );
    }

    #[test]
    fn a_switch_power_supply_failed_is_a_condition_and_a_servers_is_not() {
        let cfg = SignalsConfig::default();
        let psu = |dev: &str, role: Option<&str>| {
            let r = SeriesSnapshot::ok("snmp", dev, q::PSU_OK, 0.0, 0).named("sensor_status.1003");
            match role {
                Some(role) => r.with_label("role", role),
                None => r,
            }
        };
        let s = site(vec![switch(vec![
            psu("sw-r12", Some("switch")),
            psu("web-01-bmc", None),
        ])]);
        let c = with_ctx(&s, &cfg, 0, evaluate);
        assert_eq!(c.len(), 1, "{c:?}");
        assert_eq!(c[0].subject, "sw-r12");
        assert!(c[0].summary.contains("power supply"), "{}", c[0].summary);
    }

    #[test]
    fn uplink_and_unlabelled_probes_are_not_devices() {
        let cfg = SignalsConfig::default();
        let s = site(vec![prober("web-01", "isp-gw", "uplink", 0.0)]);
        assert!(with_ctx(&s, &cfg, 0, evaluate).is_empty());
    }
}
