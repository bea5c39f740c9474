//! L3 `cooling`, per cooling zone.
//!
//! Inlet air is what the servers breathe, so the site's health is the median
//! inlet temperature: one hot rack (a blanking panel missing) moves it little, a
//! failed CRAC moves all of it. Each measuring point (host, dev) contributes one
//! value (the median of its inlet sensors), so a gateway with ten rack-front probes
//! and a server with one BMC sensor are weighed by point, not by reading.
//!
//! Inlet readings are `inlet_temperature_celsius`, and `temperature_celsius`
//! whose sensor name says "inlet" (IPMI's `Inlet Temp`).
//!
//! Zones: points whose reading (or host) carries the zone label share a median,
//! subject `<site>:<zone>`; points without one form the site's group, subject =
//! the site. Sites without zones (the usual case) have one group.
//!
//! - Median above the critical limit (32 °C), with at least two points above it
//!   when the group has two or more: L3, critical. One lying probe (60 °C in a
//!   cool room) cannot raise it, whatever the median of two says; a group of one
//!   point raises it on that point's word, marked `corroboration: none`.
//! - A cooling unit alarm (`cooling_unit_alarm == 1`) in the zone (or without a
//!   zone, or in a zone no inlet point has) while the median rose by at least
//!   `rise_celsius` over `rise_window`: L3 at once of the rise; once raised it holds
//!   while the alarm lasts and the median stays above the warning limit (or keeps
//!   rising).
//! - Median above the warning limit (27 °C): an advisory (low).

use std::collections::{BTreeMap, VecDeque};

use sitewatch_protocol::{Cause, Evidence, Severity, quantity as q};

use super::{CauseSet, Condition, Ctx, Tier, cap_evidence, median, reading_evidence};
use crate::{host_index::Reader, snapshot::SeriesSnapshot};

/// Samples are kept at most this often: enough to see a rise over minutes.
const SAMPLE_EVERY_MS: i64 = 10_000;

/// Per group subject: the median's recent history.
#[derive(Debug, Clone, Default)]
pub struct Memory {
    history: BTreeMap<String, VecDeque<(i64, f64)>>,
    /// What the last evaluation sampled (subject, median, how long it keeps
    /// samples): an evaluation that reuses a quiet look samples it again.
    last: Vec<(String, f64, i64)>,
}

impl Memory {
    /// Samples again what the last evaluation sampled, at `now_ms`: what an
    /// evaluation of the same picture would record.
    pub fn sample_again(&mut self, now_ms: i64) {
        let last = std::mem::take(&mut self.last);
        for (subject, value, keep_ms) in &last {
            self.record(subject, now_ms, *value, *keep_ms);
        }
        self.last = last;
    }

    /// When the reference of [`Memory::reference`] next moves: the oldest
    /// sample younger than `window_ms` comes of age.
    fn next_reference_change(&self, subject: &str, now_ms: i64, window_ms: i64) -> Option<i64> {
        self.history
            .get(subject)?
            .iter()
            .find(|&&(t, _)| now_ms - t < window_ms)
            .map(|&(t, _)| t.saturating_add(window_ms))
    }

    fn record(&mut self, subject: &str, now_ms: i64, value: f64, keep_ms: i64) {
        let h = self.history.entry(subject.to_owned()).or_default();
        if h.back().is_none_or(|&(t, _)| now_ms - t >= SAMPLE_EVERY_MS) {
            h.push_back((now_ms, value));
        }
        while h.front().is_some_and(|&(t, _)| now_ms - t > keep_ms) {
            h.pop_front();
        }
    }

    /// The median at about `window_ms` ago: the newest sample at least that old.
    fn reference(&self, subject: &str, now_ms: i64, window_ms: i64) -> Option<f64> {
        self.history
            .get(subject)?
            .iter()
            .rev()
            .find(|&&(t, _)| now_ms - t >= window_ms)
            .map(|&(_, v)| v)
    }

    pub fn is_empty(&self) -> bool {
        self.history.is_empty()
    }

    /// Forgets groups that produced nothing for `max_age_ms`.
    pub fn prune(&mut self, now_ms: i64, max_age_ms: i64) {
        self.history
            .retain(|_, h| h.back().is_some_and(|&(t, _)| now_ms - t <= max_age_ms));
    }
}

#[derive(Default)]
struct Group {
    /// One value per measuring point (host, dev): the median of its inlets.
    per_point: Vec<f64>,
    hottest: Option<(f64, Evidence)>,
}

/// What the loop below reads ([`crate::host_index`]): unit alarms and inlet
/// temperatures. The name test is here, not only in the loop, because it is
/// the costly part: a fleet of servers carries dozens of temperature sensors a
/// host (CPU, DIMM, VRM) and one inlet, and the index is built once per
/// content of a host while the loop runs at every look of its site.
pub(crate) fn reads(r: &SeriesSnapshot) -> bool {
    r.q == q::COOLING_UNIT_ALARM || is_inlet(r)
}

/// An inlet temperature: what the medians are made of.
fn is_inlet(r: &SeriesSnapshot) -> bool {
    r.q == q::INLET_TEMPERATURE_CELSIUS
        || (r.q == q::TEMPERATURE_CELSIUS && names_an_inlet(&r.name))
}

/// Whether a temperature sensor's name says it measures an inlet, in any case
/// (`Inlet Temp`, `INLET`): without lowering a copy of every name.
fn names_an_inlet(name: &str) -> bool {
    name.as_bytes()
        .windows(5)
        .any(|w| w.eq_ignore_ascii_case(b"inlet"))
}

pub fn evaluate(ctx: &Ctx<'_>, memory: &mut Memory) -> Vec<Condition> {
    let cfg = &ctx.cfg.cooling;
    memory.last.clear();
    if !cfg.enabled {
        return Vec::new();
    }
    let site = ctx.site.site;
    let mut groups: BTreeMap<Option<&str>, Group> = BTreeMap::new();
    // (zone, evidence) of every cooling unit in alarm.
    let mut alarms: Vec<(Option<&str>, Evidence)> = Vec::new();
    // One host's inlets as (zone, dev, value): its points are its own, so
    // they are made host by host, not in a map of the whole site's.
    let mut inlets: Vec<(Option<&str>, &str, f64)> = Vec::new();
    let mut values: Vec<f64> = Vec::new();
    for host in &ctx.site.hosts {
        inlets.clear();
        for r in host.readings_for(Reader::Cooling) {
            let zone = || {
                r.labels
                    .get(&cfg.zone_label)
                    .map(String::as_str)
                    .or_else(|| host.label(&cfg.zone_label))
            };
            if r.q == q::COOLING_UNIT_ALARM && r.is_flag(1.0) {
                let summary = format!("cooling unit {} in alarm", r.dev);
                alarms.push((zone(), reading_evidence(host.name(), r, summary)));
                continue;
            }
            let Some(value) = r.number().filter(|_| is_inlet(r)) else {
                continue;
            };
            let zone = zone();
            inlets.push((zone, &r.dev, value));
            let g = groups.entry(zone).or_default();
            if g.hottest.as_ref().is_none_or(|(v, _)| value > *v) {
                let summary = format!("hottest inlet: {} {} at {value} °C", host.name(), r.name);
                g.hottest = Some((value, reading_evidence(host.name(), r, summary)));
            }
        }
        // Each (zone, dev) run is one point of the zone's group.
        inlets.sort_by(|a, b| (a.0, a.1).cmp(&(b.0, b.1)));
        for point in inlets.chunk_by_mut(|a, b| (a.0, a.1) == (b.0, b.1)) {
            let zone = point[0].0;
            values.clear();
            values.extend(point.iter().map(|p| p.2));
            if let (Some(m), Some(g)) = (median(&mut values), groups.get_mut(&zone)) {
                g.per_point.push(m);
            }
        }
    }
    let for_ms = crate::config::ms(cfg.hold_for);
    let window_ms = crate::config::ms(cfg.rise_window);
    let mut out = Vec::new();
    for (zone, group) in &groups {
        let mut per_point = group.per_point.clone();
        let points = per_point.len();
        let Some(now_median) = median(&mut per_point) else {
            continue;
        };
        let subject = zone.map_or_else(|| site.to_owned(), |z| format!("{site}:{z}"));
        let reference = memory.reference(&subject, ctx.now_ms, window_ms);
        let keep_ms = window_ms + 2 * SAMPLE_EVERY_MS;
        memory.record(&subject, ctx.now_ms, now_median, keep_ms);
        memory.last.push((subject.clone(), now_median, keep_ms));
        let rise = reference.map(|r| now_median - r);
        let rising = rise.is_some_and(|d| d >= cfg.rise_celsius);
        let where_ = zone.map_or_else(|| site.to_owned(), |z| format!("{site} zone {z}"));
        let mut evidence = vec![Evidence::Text(format!(
            "median inlet {now_median:.1} °C over {points} points{}",
            rise.map_or_else(String::new, |d| format!(
                ", {d:+.1} °C over {}",
                humantime::format_duration(cfg.rise_window)
            ))
        ))];
        if let Some((_, hottest)) = &group.hottest {
            evidence.push(hottest.clone());
        }
        let known_zone = |z: &Option<&str>| z.is_some() && groups.contains_key(z);
        let zone_alarms: Vec<Evidence> = alarms
            .iter()
            .filter(|(az, _)| az == zone || az.is_none() || !known_zone(az))
            .map(|(_, e)| e.clone())
            .collect();

        // With a unit in alarm, a rise may come of the window moving on alone.
        if !zone_alarms.is_empty()
            && let Some(at) = memory.next_reference_change(&subject, ctx.now_ms, window_ms)
        {
            ctx.deadline.by(at);
        }
        let raised = |tier| ctx.held.is_raised(Cause::Cooling, &subject, tier);
        let over = |limit: f64, tier| {
            if raised(tier) {
                now_median >= limit - cfg.hysteresis_celsius
            } else {
                now_median > limit
            }
        };
        let warm = cfg.warning_celsius.is_some_and(|w| now_median > w);
        // Points above the critical limit: the median's independent witnesses.
        let limit = if raised(Tier::Alarm) {
            cfg.critical_celsius - cfg.hysteresis_celsius
        } else {
            cfg.critical_celsius
        };
        let hot_points = per_point.iter().filter(|v| **v > limit).count();
        let corroborated = hot_points >= points.min(2);
        let critical = over(cfg.critical_celsius, Tier::Alarm) && corroborated;
        let alarm_and_rising = !zone_alarms.is_empty() && (rising || (raised(Tier::Alarm) && warm));
        if critical || alarm_and_rising {
            let summary = if critical {
                format!(
                    "{where_}: median inlet {now_median:.1} °C above {} °C",
                    cfg.critical_celsius
                )
            } else {
                format!("{where_}: cooling unit alarm with inlet temperatures rising")
            };
            let mut ev = evidence.clone();
            if critical {
                ev.insert(
                    0,
                    Evidence::Text(if points == 1 {
                        "corroboration: none (one inlet point in this group)".to_owned()
                    } else {
                        format!(
                            "corroboration: {hot_points} of {points} inlet points above {} °C",
                            cfg.critical_celsius
                        )
                    }),
                );
            }
            ev.extend(zone_alarms);
            out.push(Condition {
                cause: Cause::Cooling,
                subject: subject.clone(),
                severity: Severity::Critical,
                summary,
                evidence: cap_evidence(ev),
                for_ms,
                explained_by: CauseSet::EMPTY,
            });
        }
        let warm_points = cfg.warning_celsius.map_or(0, |w| {
            let limit = if raised(Tier::Advisory) {
                w - cfg.hysteresis_celsius
            } else {
                w
            };
            per_point.iter().filter(|v| **v > limit).count()
        });
        if let Some(w) = cfg.warning_celsius
            && over(w, Tier::Advisory)
            && warm_points >= points.min(2)
        {
            out.push(Condition {
                cause: Cause::Cooling,
                subject,
                severity: Severity::Low,
                summary: format!("{where_}: median inlet {now_median:.1} °C above {w} °C"),
                evidence,
                for_ms,
                explained_by: CauseSet::EMPTY,
            });
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{
        causes::test_support::{site, with_ctx},
        config::SignalsConfig,
        snapshot::{HostSnapshot, Liveness, SeriesSnapshot, SiteSnapshot},
    };

    #[test]
    fn an_inlet_is_named_in_any_case_anywhere_in_the_name() {
        for name in ["Inlet Temp", "INLET", "front inlet", "Système inlEt 1"] {
            assert!(names_an_inlet(name), "{name}");
        }
        for name in ["Exhaust Temp", "inle", "", "CPU1 Temp", "ïnlet"] {
            assert!(!names_an_inlet(name), "{name}");
        }
    }

    fn room(inlets: &[f64], alarm: bool) -> SiteSnapshot {
        let mut hosts: Vec<HostSnapshot> = inlets
            .iter()
            .enumerate()
            .map(|(i, t)| {
                HostSnapshot::new(format!("web-{i:02}"), Liveness::Online).with_reading(
                    SeriesSnapshot::ok("ipmi", "bmc", q::TEMPERATURE_CELSIUS, *t, 0)
                        .named("Inlet Temp"),
                )
            })
            .collect();
        hosts.push(
            HostSnapshot::new("gw-01", Liveness::Online).with_reading(SeriesSnapshot::ok(
                "modbus",
                "crac-1",
                q::COOLING_UNIT_ALARM,
                if alarm { 1.0 } else { 0.0 },
                0,
            )),
        );
        site(hosts)
    }

    fn severities(c: &[Condition]) -> Vec<Severity> {
        c.iter().map(|c| c.severity).collect()
    }

    #[test]
    fn median_ignores_one_hot_rack() {
        let cfg = SignalsConfig::default();
        let mut m = Memory::default();
        let c = with_ctx(&room(&[22.0, 23.0, 45.0], false), &cfg, 0, |c| {
            evaluate(c, &mut m)
        });
        assert!(c.is_empty());
    }

    #[test]
    fn median_above_limits_is_critical_and_advisory() {
        let cfg = SignalsConfig::default();
        let mut m = Memory::default();
        let c = with_ctx(&room(&[33.0, 34.0, 20.0], false), &cfg, 0, |c| {
            evaluate(c, &mut m)
        });
        assert_eq!(severities(&c), [Severity::Critical, Severity::Low]);
        assert_eq!(c[0].subject, "bj1");
    }

    #[test]
    fn alarm_without_a_rise_is_nothing_and_with_one_is_critical() {
        let cfg = SignalsConfig::default();
        let mut m = Memory::default();
        let mut run =
            |t, temps: &[f64]| with_ctx(&room(temps, true), &cfg, t, |c| evaluate(c, &mut m));
        assert!(run(0, &[22.0, 22.0]).is_empty());
        assert!(run(60_000, &[22.5, 22.5]).is_empty());
        // 3 minutes after the first sample, 1.5 °C warmer.
        assert_eq!(
            severities(&run(180_000, &[23.5, 23.5])),
            [Severity::Critical]
        );
    }

    #[test]
    fn zones_have_their_own_medians() {
        let cfg = SignalsConfig::default();
        let mut m = Memory::default();
        let hot = |h: &str| {
            HostSnapshot::new(h, Liveness::Online)
                .with_label("zone", "b")
                .with_reading(SeriesSnapshot::ok(
                    "env",
                    "rack",
                    q::INLET_TEMPERATURE_CELSIUS,
                    35.0,
                    0,
                ))
        };
        let cool = |h: &str| {
            HostSnapshot::new(h, Liveness::Online).with_reading(SeriesSnapshot::ok(
                "env",
                "rack",
                q::INLET_TEMPERATURE_CELSIUS,
                21.0,
                0,
            ))
        };
        let s = site(vec![
            cool("a1"),
            cool("a2"),
            cool("a3"),
            hot("b1"),
            hot("b2"),
        ]);
        let c = with_ctx(&s, &cfg, 0, |c| evaluate(c, &mut m));
        let subjects: Vec<_> = c.iter().map(|c| (c.subject.as_str(), c.severity)).collect();
        assert_eq!(
            subjects,
            [("bj1:b", Severity::Critical), ("bj1:b", Severity::Low)]
        );
    }
}
