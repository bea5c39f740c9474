//! L3 `power`, subject = the site; and L2 `power_device`, subject = a device.
//!
//! Mains sensing is corroborated first. Every device that senses the utility
//! (`mains_available`, or a UPS's `ups_on_battery`: on battery means its input
//! is gone) gives a verdict: mains lost, present, or unknown. Devices fed by
//! another (`[signals.sites.<site>.power.devices.<dev>] fed_by`) sense their
//! feeder, not the utility, and give none. Then:
//!
//! - **Contradicted**: some independent sensors lose the mains while others see
//!   it: the site has mains, those devices have a fault (a tripped UPS input
//!   breaker, a failed rectifier, a network card reporting nonsense). L2
//!   `power_device` for each, the contradicting readings as evidence; urgent (a
//!   UPS on battery drains it) but no L3.
//! - **Corroborated** (several agree) or **alone** (one sensor, nothing else to
//!   ask: `corroboration: none` in the evidence): the site lost its mains, and
//!   the L3 follows the generator:
//!   - a generator faulted (`generator_fault == 1`): at once;
//!   - generators present, none running (`generator_running == 1`) for the start
//!     grace: the generator did not start;
//!   - a UPS on battery for the start grace while no generator supplies the site
//!     (no generator readings at all, or none running);
//!   - a generator supplying the site: an advisory (low): fine, but on fuel.
//!
//! PDU feeds read as lost (`power_feed_available == 0`) are listed in the
//! evidence; alone they raise `power_feed` (L2), not this.
//!
//! The grace is this condition's `for`: the engine's temporal machine times it
//! from when the condition first held, so no memory is needed here.

use std::collections::BTreeMap;

use sitewatch_protocol::{Cause, Evidence, Severity, quantity as q};

use super::{CauseSet, Condition, Ctx, cap_evidence, reading_evidence};
use crate::{host_index::Reader, snapshot::SeriesSnapshot};

/// What one device says of the utility.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mains {
    Lost,
    Present,
    /// Input power present, from the utility or a generator.
    Fed,
}

/// A power device: (host, src, dev).
type Device<'a> = (&'a str, &'a str, &'a str);

/// A reading that will be evidence if a condition comes of it: built only
/// then (most sites, most of the time, have the mains and nothing to say).
#[derive(Clone, Copy)]
struct Fact<'a> {
    what: &'static str,
    host: &'a str,
    r: &'a SeriesSnapshot,
}

impl Fact<'_> {
    fn evidence(&self) -> Evidence {
        let r = self.r;
        let summary = format!("{}: {} {} on {}", self.what, r.dev, r.name, self.host);
        reading_evidence(self.host, r, summary)
    }
}

fn evidence_of(facts: &[Fact<'_>]) -> Vec<Evidence> {
    facts.iter().map(Fact::evidence).collect()
}

/// What the loop below reads ([`crate::host_index`]).
pub(crate) fn reads(r: &SeriesSnapshot) -> bool {
    matches!(
        r.q.as_str(),
        q::MAINS_AVAILABLE
            | q::UPS_ON_BATTERY
            | q::UPS_BATTERY_LOW
            | q::POWER_FEED_AVAILABLE
            | q::GENERATOR_RUNNING
            | q::GENERATOR_FAULT
    )
}

/// Whether `r` says the utility is gone: every condition of this cause needs
/// one such reading at the site.
fn senses_a_loss(r: &SeriesSnapshot) -> bool {
    (r.q == q::MAINS_AVAILABLE && r.is_flag(0.0)) || (r.q == q::UPS_ON_BATTERY && r.is_flag(1.0))
}

/// Whether none of a host's `readings` senses a loss of the mains
/// ([`crate::host_index`] keeps the answer per host): a site of such hosts
/// has nothing for this cause, whatever else they read.
pub(crate) fn quiet<'a>(mut readings: impl Iterator<Item = &'a SeriesSnapshot>) -> bool {
    !readings.any(senses_a_loss)
}

pub fn evaluate(ctx: &Ctx<'_>) -> Vec<Condition> {
    let cfg = &ctx.cfg.power;
    if !cfg.enabled {
        return Vec::new();
    }
    // The usual site, mains present everywhere: settled before any device
    // is sorted out.
    if ctx
        .site
        .hosts
        .iter()
        .all(|h| h.known_quiet(Reader::Power) || quiet(h.readings_for(Reader::Power)))
    {
        return Vec::new();
    }
    every_device(ctx)
}

/// [`evaluate`] without its shortcut: every sensing device sorted out.
pub(crate) fn every_device(ctx: &Ctx<'_>) -> Vec<Condition> {
    let cfg = &ctx.cfg.power;
    let site_cfg = ctx.cfg.sites.get(ctx.site.site);
    let independent = |dev: &str| site_cfg.is_none_or(|s| s.senses_utility(dev));
    let feed_of = |dev: &str| {
        site_cfg
            .and_then(|s| s.power.devices.get(dev))
            .and_then(|d| d.feed.as_deref())
    };
    let mut on_battery = false;
    let mut has_generator = false;
    let mut supplying = false;
    let mut faulted = false;
    let mut evidence: Vec<Fact<'_>> = Vec::new();
    // Each sensing device's verdict, and the evidence behind it.
    let mut sensors: BTreeMap<Device<'_>, (Mains, Vec<Fact<'_>>)> = BTreeMap::new();
    for host in &ctx.site.hosts {
        for r in host.readings_for(Reader::Power) {
            let device = (host.name(), r.src.as_str(), r.dev.as_str());
            let (fact, mains) = match r.q.as_str() {
                q::MAINS_AVAILABLE if r.is_flag(0.0) => ("mains lost", Some(Mains::Lost)),
                q::MAINS_AVAILABLE if r.is_flag(1.0) => ("mains present", Some(Mains::Present)),
                q::UPS_ON_BATTERY if r.is_flag(1.0) => ("UPS on battery", Some(Mains::Lost)),
                // A UPS off battery has power at its input: the utility's, or a
                // running generator's (sorted out below).
                q::UPS_ON_BATTERY if r.is_flag(0.0) => ("UPS on mains", Some(Mains::Fed)),
                q::UPS_BATTERY_LOW if r.is_flag(1.0) => ("UPS battery low", None),
                // Evidence only: one feed gone is `power_feed`'s, all of them
                // follow from the mains.
                q::POWER_FEED_AVAILABLE if r.is_flag(0.0) => ("PDU feed lost", None),
                q::GENERATOR_RUNNING => {
                    has_generator = true;
                    if r.is_flag(1.0) {
                        supplying = true;
                        ("generator running", None)
                    } else {
                        ("generator not running", None)
                    }
                }
                q::GENERATOR_FAULT => {
                    has_generator = true;
                    if !r.is_flag(1.0) {
                        continue;
                    }
                    faulted = true;
                    ("generator fault", None)
                }
                _ => continue,
            };
            let ev = Fact {
                what: fact,
                host: host.name(),
                r,
            };
            if r.q == q::UPS_ON_BATTERY && r.is_flag(1.0) {
                on_battery = true;
            }
            match mains {
                Some(m) if independent(&r.dev) => {
                    let entry = sensors.entry(device).or_insert((m, Vec::new()));
                    // One device reading both (a UPS's input flag and its
                    // battery flag): a loss on either is its verdict.
                    if m == Mains::Lost {
                        entry.0 = Mains::Lost;
                    }
                    entry.1.push(ev);
                }
                // What a fed device sees is its feeder's output.
                Some(_) => {}
                None => evidence.push(ev),
            }
        }
    }
    // While a generator supplies the site, a UPS with input power is fed by it
    // and says nothing of the utility; otherwise it is a utility witness.
    if supplying {
        sensors.retain(|_, (m, _)| *m != Mains::Fed);
    }
    for (m, _) in sensors.values_mut() {
        if *m == Mains::Fed {
            *m = Mains::Present;
        }
    }
    let lost: Vec<&Device<'_>> = sensors
        .iter()
        .filter(|(_, (m, _))| *m == Mains::Lost)
        .map(|(d, _)| d)
        .collect();
    if lost.is_empty() {
        return Vec::new();
    }
    let present: Vec<&Device<'_>> = sensors
        .iter()
        .filter(|(_, (m, _))| *m == Mains::Present)
        .map(|(d, _)| d)
        .collect();
    let site = ctx.site.site;
    let name = |d: &Device<'_>| match feed_of(d.2) {
        Some(feed) => format!("{} ({feed})", d.2),
        None => d.2.to_owned(),
    };
    if !present.is_empty() {
        let witnesses: Vec<String> = present.iter().map(|d| name(d)).collect();
        return lost
            .iter()
            .map(|d| {
                let mut ev = sensors
                    .get(*d)
                    .map(|s| evidence_of(&s.1))
                    .unwrap_or_default();
                for p in &present {
                    ev.extend(
                        sensors
                            .get(*p)
                            .map(|s| evidence_of(&s.1))
                            .unwrap_or_default(),
                    );
                }
                Condition {
                    cause: Cause::PowerDevice,
                    subject: d.2.to_owned(),
                    severity: Severity::High,
                    summary: format!(
                        "{site}: {} reports the mains lost while it is present at {}",
                        name(d),
                        witnesses.join(", ")
                    ),
                    evidence: cap_evidence(ev),
                    for_ms: 0,
                    explained_by: CauseSet::EMPTY,
                }
            })
            .collect();
    }
    let corroboration = if lost.len() == 1 {
        format!(
            "corroboration: none ({} is the only device of the site that senses the utility)",
            name(lost[0])
        )
    } else {
        let names: Vec<String> = lost.iter().map(|d| name(d)).collect();
        format!(
            "corroboration: {} of {} independent mains sensors agree ({})",
            lost.len(),
            sensors.len(),
            names.join(", ")
        )
    };
    let mut all = vec![Evidence::Text(corroboration)];
    for (_, (_, ev)) in sensors {
        all.extend(evidence_of(&ev));
    }
    all.extend(evidence_of(&evidence));
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
        evidence: cap_evidence(all),
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

    fn devices(readings: &[(&str, &str, f64)]) -> HostSnapshot {
        HostSnapshot::new("gw-01", Liveness::Online).with_readings(
            readings
                .iter()
                .map(|(dev, quantity, v)| SeriesSnapshot::ok("modbus", *dev, *quantity, *v, 0)),
        )
    }

    fn texts(c: &Condition) -> String {
        serde_json::to_string(&c.evidence).unwrap()
    }

    #[test]
    fn one_ups_on_battery_while_others_see_the_mains_is_an_l2_about_it() {
        let cfg = SignalsConfig::default();
        let s = site(vec![devices(&[
            ("ups-a", q::UPS_ON_BATTERY, 1.0),
            ("ups-b", q::UPS_ON_BATTERY, 0.0),
            ("gen-1", q::MAINS_AVAILABLE, 1.0),
        ])]);
        let c = with_ctx(&s, &cfg, 0, evaluate);
        assert_eq!(c.len(), 1);
        assert_eq!(
            (c[0].cause, c[0].subject.as_str()),
            (Cause::PowerDevice, "ups-a")
        );
        assert_eq!(c[0].severity, Severity::High);
        assert!(
            c[0].summary.contains("present at gen-1, ups-b"),
            "{}",
            c[0].summary
        );
        assert!(texts(&c[0]).contains("UPS on mains: ups-b"));
    }

    #[test]
    fn every_l3_says_how_many_sensors_agree_or_that_none_can() {
        let cfg = SignalsConfig::default();
        let all = site(vec![devices(&[
            ("ups-a", q::UPS_ON_BATTERY, 1.0),
            ("ups-b", q::UPS_ON_BATTERY, 1.0),
            ("gen-1", q::MAINS_AVAILABLE, 0.0),
        ])]);
        let c = with_ctx(&all, &cfg, 0, evaluate);
        assert_eq!(c[0].cause, Cause::Power);
        assert!(texts(&c[0]).contains("3 of 3 independent mains sensors agree"));
        let one = site(vec![devices(&[("ups-a", q::UPS_ON_BATTERY, 1.0)])]);
        let c = with_ctx(&one, &cfg, 0, evaluate);
        assert!(
            texts(&c[0]).contains("corroboration: none"),
            "{}",
            texts(&c[0])
        );
    }

    #[test]
    fn a_device_fed_by_another_neither_confirms_nor_contradicts() {
        let cfg: SignalsConfig =
            toml::from_str("[sites.bj1.power.devices.ups-b]\nfed_by = \"ups-a\"\n").unwrap();
        assert_eq!(cfg.validate(), Ok(()));
        // ups-b on ups-a's output still has power: it is no witness of the utility.
        let s = site(vec![devices(&[
            ("ups-a", q::UPS_ON_BATTERY, 1.0),
            ("ups-b", q::UPS_ON_BATTERY, 0.0),
        ])]);
        let c = with_ctx(&s, &cfg, 0, evaluate);
        assert_eq!(c[0].cause, Cause::Power);
        assert!(texts(&c[0]).contains("corroboration: none"));
        let bad: SignalsConfig =
            toml::from_str("[sites.bj1.power.devices.ups-b]\nfed_by = \"ups-b\"\n").unwrap();
        assert!(bad.validate().is_err());
    }

    #[test]
    fn a_ups_fed_by_the_running_generator_is_no_witness_of_the_utility() {
        let cfg = SignalsConfig::default();
        let s = site(vec![devices(&[
            ("ats", q::MAINS_AVAILABLE, 0.0),
            ("ups-a", q::UPS_ON_BATTERY, 0.0),
            ("genset", q::GENERATOR_RUNNING, 1.0),
        ])]);
        let c = with_ctx(&s, &cfg, 0, evaluate);
        assert_eq!(c.len(), 1);
        assert_eq!((c[0].cause, c[0].severity), (Cause::Power, Severity::Low));
    }
}
