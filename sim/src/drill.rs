//! Disaster drills against a running stack: inject a fault, time the signal the
//! collector raises against the DR plan's 30 s, restore, wait for the clear.
//!
//! This module is the drill's plan and its judgement, pure: which devices get
//! which command, which signal is expected, which signals are wrong, and the
//! report lines. The I/O is in [`run`] (the drill itself), [`http`] (polling
//! `/api/v1/signals`) and [`inject`] (control ports, agent processes, commands).
//!
//! | scenario | fault | expected |
//! |---|---|---|
//! | `power-loss` | UPS `mains_lost`, generator `generator_fails_to_start` | L3 `power` (critical) |
//! | `power-blip` | UPS and generator `mains_lost`, generator `generator_running` after `--generator-start` | no L3 `power` alarm within grace + margin (the advisory is fine) |
//! | `cooling-failure` | CRAC `cooling_alarm`, environment probes `overheat` (35 °C) | L3 `cooling` (critical) |
//! | `network-cut` | every given agent stopped (SIGSTOP) or killed, or `--fault-cmd` | L3 `network`, the lost hosts' L2s inhibited |
//! | `single-host-loss` | one agent stopped or killed, or `--fault-cmd` | L2 `host_hardware` for it, no L3 |
//! | `disk-failure` | `--fault-cmd` only | L2 `storage` |
//! | `psu-failure` | `--fault-cmd` only | L2 `host_hardware` |
//! | `site-down` | `--fault-cmd` only (a site's power) | L3 for the site from the other collectors |
//! | `site-isolated` | `--fault-cmd` only (every link of the site) | that, and `vantage_isolated` from the site's own collector |
//! | `site-link-cut` | `--fault-cmd` only (the link between two sites) | L2 `site_link` for the pair, no L3 |
//!
//! The site drills watch several collectors at once; their judgement is in
//! [`sites`], their run in [`site_run`].

pub mod http;
pub mod inject;
pub mod run;
pub mod site_run;
pub mod sites;

use std::collections::BTreeSet;
use std::fmt;
use std::time::Duration;

use serde_json::{Value, json};
use sitewatch_protocol::{Cause, Evidence, Level, Severity, Signal};

/// The DR plan's failover budget: a disaster is signalled within this of its start.
pub const TARGET: Duration = Duration::from_secs(30);

/// A drill scenario.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scenario {
    PowerLoss,
    PowerBlip,
    CoolingFailure,
    NetworkCut,
    SingleHostLoss,
    DiskFailure,
    PsuFailure,
    SiteDown,
    SiteLinkCut,
    SiteIsolated,
}

/// How a scenario's fault is put in place.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Injection {
    /// Commands to the simulators' control ports, by device class.
    Devices,
    /// Agent processes signalled (or `--fault-cmd`).
    Agents,
    /// Only an operator's `--fault-cmd` can do it.
    External,
}

impl Scenario {
    pub const ALL: [Scenario; 10] = [
        Scenario::PowerLoss,
        Scenario::PowerBlip,
        Scenario::CoolingFailure,
        Scenario::NetworkCut,
        Scenario::SingleHostLoss,
        Scenario::DiskFailure,
        Scenario::PsuFailure,
        Scenario::SiteDown,
        Scenario::SiteLinkCut,
        Scenario::SiteIsolated,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Scenario::PowerLoss => "power-loss",
            Scenario::PowerBlip => "power-blip",
            Scenario::CoolingFailure => "cooling-failure",
            Scenario::NetworkCut => "network-cut",
            Scenario::SingleHostLoss => "single-host-loss",
            Scenario::DiskFailure => "disk-failure",
            Scenario::PsuFailure => "psu-failure",
            Scenario::SiteDown => "site-down",
            Scenario::SiteLinkCut => "site-link-cut",
            Scenario::SiteIsolated => "site-isolated",
        }
    }

    pub fn parse(name: &str) -> Option<Scenario> {
        Scenario::ALL.into_iter().find(|s| s.name() == name)
    }

    /// The cause whose alarm the fault must raise; `None` for a fault the site
    /// must ride through (`power-blip`).
    pub fn expected(self) -> Option<Cause> {
        match self {
            Scenario::PowerLoss => Some(Cause::Power),
            Scenario::PowerBlip => None,
            Scenario::CoolingFailure => Some(Cause::Cooling),
            Scenario::NetworkCut => Some(Cause::Network),
            Scenario::SingleHostLoss | Scenario::PsuFailure => Some(Cause::HostHardware),
            Scenario::DiskFailure => Some(Cause::Storage),
            Scenario::SiteDown | Scenario::SiteIsolated => Some(Cause::Network),
            Scenario::SiteLinkCut => Some(Cause::SiteLink),
        }
    }

    /// The cause a `power-blip` must not raise as an alarm, and whose advisory is
    /// waited out after the restore.
    pub fn watched(self) -> Cause {
        self.expected().unwrap_or(Cause::Power)
    }

    pub fn injection(self) -> Injection {
        match self {
            Scenario::PowerLoss | Scenario::PowerBlip | Scenario::CoolingFailure => {
                Injection::Devices
            }
            Scenario::NetworkCut | Scenario::SingleHostLoss => Injection::Agents,
            Scenario::DiskFailure
            | Scenario::PsuFailure
            | Scenario::SiteDown
            | Scenario::SiteLinkCut
            | Scenario::SiteIsolated => Injection::External,
        }
    }

    /// The control commands that put the fault in place, per device class
    /// (`class` as the simulator answers it). Every device then gets `healthy`.
    pub fn device_commands(self, class: &str) -> &'static [&'static str] {
        match (self, class) {
            (Scenario::PowerLoss, "ups") => &["mains_lost"],
            (Scenario::PowerLoss, "generator") => &["generator_fails_to_start"],
            // The generator sees the mains go too, and starts later: see
            // `blip_takeover`.
            (Scenario::PowerBlip, "ups" | "generator") => &["mains_lost"],
            (Scenario::CoolingFailure, "cooling") => &["cooling_alarm"],
            (Scenario::CoolingFailure, "environment") => &["overheat"],
            _ => &[],
        }
    }

    /// The device classes the scenario needs at least one of each.
    pub fn needed_classes(self) -> &'static [&'static str] {
        match self {
            Scenario::PowerLoss => &["ups", "generator"],
            Scenario::PowerBlip => &["generator"],
            Scenario::CoolingFailure => &["cooling", "environment"],
            _ => &[],
        }
    }

    /// A drill of a whole site, watched from several collectors ([`sites`]).
    pub fn is_site(self) -> bool {
        matches!(
            self,
            Scenario::SiteDown | Scenario::SiteLinkCut | Scenario::SiteIsolated
        )
    }

    /// What the scenario expects, in words, for the report.
    pub fn expectation(self) -> String {
        match self.expected() {
            Some(cause) => format!("{} {} raised", cause.level(), cause),
            None => String::from("no L3 power alarm"),
        }
    }
}

impl fmt::Display for Scenario {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The command that makes the generator take over in a `power-blip`.
pub const BLIP_TAKEOVER: &str = "generator_running";

/// A signal's identity within its site.
pub type Key = (Level, Cause, String);

pub fn key(s: &Signal) -> Key {
    (s.level, s.cause, s.subject.clone())
}

/// An alarm, not an advisory (`low`): what pages and what counts.
pub fn is_alarm(s: &Signal) -> bool {
    s.severity != Severity::Low
}

/// Decides, from each poll of the collector, whether the expected signal is
/// there and which signals should not be.
#[derive(Debug, Clone)]
pub struct Judge {
    pub scenario: Scenario,
    pub site: String,
    /// With `--host`: the expected L2's subject.
    pub host: Option<String>,
    /// Alarms of the site active before the fault: not the drill's doing.
    baseline: BTreeSet<Key>,
}

impl Judge {
    pub fn new(scenario: Scenario, site: &str, host: Option<&str>, before: &[Signal]) -> Judge {
        let mut judge = Judge {
            scenario,
            site: site.to_owned(),
            host: host.map(str::to_owned),
            baseline: BTreeSet::new(),
        };
        judge.baseline = before
            .iter()
            .filter(|s| judge.of_site(s) && is_alarm(s))
            .map(key)
            .collect();
        judge
    }

    fn of_site(&self, s: &Signal) -> bool {
        s.site == self.site
    }

    fn is_expected(&self, s: &Signal) -> bool {
        let Some(cause) = self.scenario.expected() else {
            return false;
        };
        self.of_site(s)
            && s.cause == cause
            && is_alarm(s)
            && match (&self.host, cause.level()) {
                // An L2 host_hardware subject is the host; storage's is host:disk.
                (Some(h), Level::L2) => s.subject == *h || s.subject.starts_with(&format!("{h}:")),
                _ => true,
            }
    }

    /// The expected alarm, when it is up.
    pub fn expected<'a>(&self, signals: &'a [Signal]) -> Option<&'a Signal> {
        signals.iter().find(|s| self.is_expected(s))
    }

    /// New L2 and L3 alarms of the site that the fault should not raise: an L3
    /// for a single host, an L2 an L3 should have inhibited, any L3 alarm in a
    /// power blip. L1s and L4s are not judged (unrelated load, another site).
    pub fn wrong<'a>(&self, signals: &'a [Signal]) -> Vec<&'a Signal> {
        signals
            .iter()
            .filter(|s| self.of_site(s) && is_alarm(s))
            .filter(|s| matches!(s.level, Level::L2 | Level::L3))
            .filter(|s| !self.is_expected(s) && !self.baseline.contains(&key(s)))
            // One host lost in a psu or disk drill may show as host_hardware too.
            .filter(|s| {
                !(self.scenario.expected().map(Cause::level) == Some(Level::L2)
                    && s.level == Level::L2
                    && self.host.is_none())
            })
            .collect()
    }

    /// Whether any signal of the watched cause (alarm or advisory) is up: the
    /// precheck and the clear want none.
    pub fn still_up(&self, signals: &[Signal]) -> bool {
        let cause = self.scenario.watched();
        signals.iter().any(|s| {
            self.of_site(s)
                && s.cause == cause
                && (self.host.is_none() || cause.level() != Level::L2 || self.is_expected(s))
        })
    }
}

/// The lower-level signals an alarm lists as inhibited.
pub fn inhibited(s: &Signal) -> Vec<String> {
    s.evidence
        .iter()
        .filter_map(|e| match e {
            Evidence::Detail(d) => d.inhibits.as_ref(),
            Evidence::Text(_) => None,
        })
        .map(|i| format!("{} {} {}", i.level, i.cause, i.subject))
        .collect()
}

/// A signal as the report shows it.
pub fn signal_json(s: &Signal) -> Value {
    json!({
        "site": s.site,
        "level": s.level.as_str(),
        "cause": s.cause.as_str(),
        "subject": s.subject,
        "severity": s.severity.as_str(),
        "since": s.since,
    })
}

/// A measured time: one decimal.
pub fn seconds(d: Duration) -> String {
    format!("{:.1} s", d.as_secs_f64())
}

/// A configured time: whole seconds unless it has a fraction.
pub fn limit(d: Duration) -> String {
    if d.subsec_millis() == 0 {
        format!("{} s", d.as_secs())
    } else {
        seconds(d)
    }
}

/// How a drill ended.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// The expected signal came within the target (or, in a blip, none did).
    Pass,
    /// Something the plan promises did not happen.
    Fail(Vec<String>),
}

/// The one human line that ends a drill, e.g.
/// `power-loss: L3 power raised 21.4 s after the fault (target 30 s): PASS`.
pub fn summary(
    scenario: Scenario,
    detected: Option<Duration>,
    observed: Duration,
    target: Duration,
    outcome: &Outcome,
) -> String {
    let what = match (scenario.expected(), detected) {
        (Some(cause), Some(d)) => format!(
            "{} {cause} raised {} after the fault (target {})",
            cause.level(),
            seconds(d),
            limit(target)
        ),
        (Some(cause), None) => format!(
            "{} {cause} not raised within {} of the fault (target {})",
            cause.level(),
            seconds(observed),
            limit(target)
        ),
        (None, _) => format!(
            "{} within {} of the fault",
            scenario.expectation(),
            seconds(observed)
        ),
    };
    match outcome {
        Outcome::Pass => format!("{scenario}: {what}: PASS"),
        Outcome::Fail(why) => format!("{scenario}: {what}: FAIL ({})", why.join("; ")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn signal(level: Level, cause: Cause, subject: &str, severity: Severity) -> Signal {
        Signal {
            site: "bj1".into(),
            level,
            cause,
            subject: subject.into(),
            severity,
            since: 0,
            evidence: Vec::new(),
        }
    }

    #[test]
    fn scenario_names_round_trip() {
        for s in Scenario::ALL {
            assert_eq!(Scenario::parse(s.name()), Some(s));
        }
        assert_eq!(Scenario::parse("meteor"), None);
    }

    #[test]
    fn network_cut_expects_l3_network_and_calls_an_uninhibited_l2_wrong() {
        let j = Judge::new(Scenario::NetworkCut, "bj1", None, &[]);
        let l3 = signal(Level::L3, Cause::Network, "bj1", Severity::Critical);
        let l2 = signal(Level::L2, Cause::HostHardware, "web-01", Severity::High);
        let signals = [l3.clone(), l2.clone()];
        assert_eq!(j.expected(&signals), Some(&l3));
        assert_eq!(j.wrong(&signals), [&l2]);
    }

    #[test]
    fn a_blip_tolerates_the_generator_advisory_but_not_the_alarm() {
        let j = Judge::new(Scenario::PowerBlip, "bj1", None, &[]);
        let advisory = signal(Level::L3, Cause::Power, "bj1", Severity::Low);
        assert!(j.wrong(std::slice::from_ref(&advisory)).is_empty());
        assert!(j.still_up(std::slice::from_ref(&advisory)));
        let alarm = signal(Level::L3, Cause::Power, "bj1", Severity::Critical);
        assert_eq!(j.wrong(std::slice::from_ref(&alarm)).len(), 1);
    }

    #[test]
    fn alarms_up_before_the_fault_and_other_sites_are_not_judged() {
        let old = signal(Level::L2, Cause::Storage, "db-01:sda", Severity::High);
        let j = Judge::new(Scenario::PowerLoss, "bj1", None, std::slice::from_ref(&old));
        let mut elsewhere = signal(Level::L3, Cause::Cooling, "sh2", Severity::Critical);
        elsewhere.site = "sh2".into();
        assert!(j.wrong(&[old, elsewhere]).is_empty());
    }

    #[test]
    fn a_single_host_drill_with_host_wants_that_host() {
        let j = Judge::new(Scenario::SingleHostLoss, "bj1", Some("web-02"), &[]);
        let other = signal(Level::L2, Cause::HostHardware, "web-01", Severity::High);
        let it = signal(Level::L2, Cause::HostHardware, "web-02", Severity::High);
        let l3 = signal(Level::L3, Cause::Network, "bj1", Severity::Critical);
        let signals = [other.clone(), it.clone(), l3.clone()];
        assert_eq!(j.expected(&signals), Some(&it));
        assert_eq!(j.wrong(&signals), [&other, &l3]);
    }

    #[test]
    fn summary_reads_like_the_plan() {
        let line = summary(
            Scenario::PowerLoss,
            Some(Duration::from_millis(21_400)),
            Duration::from_secs(25),
            TARGET,
            &Outcome::Pass,
        );
        assert_eq!(
            line,
            "power-loss: L3 power raised 21.4 s after the fault (target 30 s): PASS"
        );
        let line = summary(
            Scenario::PowerBlip,
            None,
            Duration::from_secs(30),
            TARGET,
            &Outcome::Fail(vec!["wrong signal: L3 power bj1".into()]),
        );
        assert_eq!(
            line,
            "power-blip: no L3 power alarm within 30.0 s of the fault: FAIL (wrong signal: L3 power bj1)"
        );
    }
}
