//! The engine: causes -> conditions -> temporal machine -> inhibition -> signals.
//!
//! At each evaluation:
//!
//! 1. Each site (of the snapshot, and configured ones nobody reported to yet) is
//!    viewed through the startup grace and maintenance windows, and every L1-L3
//!    cause lists its conditions. A site-wide maintenance window drops them all.
//! 2. Each signal key (site, cause, subject) feeds its two [`Tracker`]s, the alarm
//!    and the advisory (severity low); keys with no condition feed "false".
//! 3. The raised L3 alarms give the L4 `region` conditions, tracked the same way.
//! 4. Inhibition: an L2 whose condition an active L3 of its site explains is not
//!    published; the L3 lists it as evidence (`inhibits`). It stays tracked, so it
//!    reappears if the L3 clears while it still holds. An inhibited L2 whose own
//!    condition has stopped holding stays hidden while it clears, so the end of a
//!    power cut does not release a burst of L2s that are on their way out anyway.
//! 5. What is published is compared with the previous evaluation: the changes.

use std::{
    cmp::Reverse,
    collections::{BTreeMap, BTreeSet},
};

use serde::{Deserialize, Serialize};
use sitewatch_protocol::{
    Cause, Evidence, Level, Severity, Signal, SignalsPayload,
    payload::{EvidenceDetail, InhibitedSignal},
    replay::{TimelineEntry, TimelineEvent},
};

use crate::{
    causes::{
        self, Condition, Ctx, Held, SiteView, Tier, cooling, host_hardware, host_resources,
        network, network_device, power, power_feed, region, storage, vantage,
    },
    config::{SignalsConfig, ms},
    host_index::IndexCache,
    incremental::{Deadline, HeldPrint, SiteCache},
    liveness::Policy,
    snapshot::Snapshot,
    temporal::{FlapPolicy, Phase, Tracker, Transition},
};

/// Engine memory is pruned at most this often.
const PRUNE_EVERY_MS: i64 = 60_000;

/// The identity of a signal.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct SignalKey {
    pub site: String,
    pub cause: Cause,
    pub subject: String,
}

impl SignalKey {
    pub fn level(&self) -> Level {
        self.cause.level()
    }
}

/// How a published signal changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ChangeKind {
    /// Published, newly.
    Raised,
    /// Published already, now at a higher severity (an advisory became an alarm).
    Escalated,
    /// Published already, now at a lower severity (the alarm cleared, the advisory holds).
    Deescalated,
    /// No longer published because an L3 of its site explains it (still tracked).
    Inhibited,
    /// Published again because the L3 that inhibited it cleared while it holds.
    Released,
    /// No longer published: its condition has been false for `clear_after`.
    Cleared,
}

/// One change of the published signals.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Change {
    /// The evaluation's time (Unix ms, or the simulated clock of a replay).
    pub t_ms: i64,
    pub kind: ChangeKind,
    pub site: String,
    pub level: Level,
    pub cause: Cause,
    pub subject: String,
    /// The severity after the change (before it, for `cleared` and `inhibited`).
    pub severity: Severity,
    /// The condition's one-line summary, for logs and notifications.
    pub summary: String,
}

impl Change {
    /// The line `sitewatch-collector replay` prints, with `t_ms` on its clock.
    ///
    /// An escalation and a release print as `raised` (the signal is paged again),
    /// an inhibition as `cleared` (it is no longer published); a de-escalation
    /// prints nothing: the signal is still up.
    pub fn timeline_entry(&self, t_ms: u64) -> Option<TimelineEntry> {
        let event = match self.kind {
            ChangeKind::Raised | ChangeKind::Escalated | ChangeKind::Released => {
                TimelineEvent::Raised
            }
            ChangeKind::Cleared | ChangeKind::Inhibited => TimelineEvent::Cleared,
            ChangeKind::Deescalated => return None,
        };
        Some(TimelineEntry {
            t_ms,
            event,
            site: self.site.clone(),
            level: self.level,
            cause: self.cause,
            subject: self.subject.clone(),
        })
    }
}

/// The result of one evaluation.
#[derive(Debug, Clone, PartialEq)]
pub struct Evaluation {
    pub now_ms: i64,
    /// Published signals, by site, then level (highest first), cause, subject.
    /// Each one's first evidence entry is its one-line summary.
    pub active: Vec<Signal>,
    /// What changed since the previous evaluation, in the same order as `active`.
    pub changes: Vec<Change>,
    /// Per site (every site of the snapshot or the config): the highest level of
    /// its published signals of severity above low, 0 when none. An advisory
    /// (severity low) is not a disaster.
    pub disaster_level: BTreeMap<String, u8>,
    /// This collector's own judgement of each site before weighing it against
    /// its peers: what its view tells them (`docs/protocol.md`, collector view).
    pub site_reports: BTreeMap<String, sitewatch_protocol::SiteReport>,
}

impl Evaluation {
    /// A site's disaster level (0 for a site never seen).
    pub fn level_of(&self, site: &str) -> u8 {
        self.disaster_level.get(site).copied().unwrap_or(0)
    }

    /// A site's published signals.
    pub fn site_signals<'a>(&'a self, site: &'a str) -> impl Iterator<Item = &'a Signal> + 'a {
        self.active.iter().filter(move |s| s.site == site)
    }

    /// The retained `sitewatch/v1/<site>/_signals` payload of a site.
    pub fn signals_for_site(&self, site: &str) -> SignalsPayload {
        SignalsPayload {
            v: sitewatch_protocol::VERSION,
            ts: self.now_ms,
            level: self.level_of(site),
            signals: self.site_signals(site).cloned().collect(),
        }
    }

    /// Sites with a change in this evaluation: the ones whose retained payload must
    /// be republished.
    pub fn changed_sites(&self) -> BTreeSet<&str> {
        self.changes.iter().map(|c| c.site.as_str()).collect()
    }
}

/// Both tiers of one key.
#[derive(Debug, Clone, Default)]
struct KeyState {
    alarm: Tracker,
    advisory: Tracker,
    /// The last condition that held, per tier: the evidence of a clearing signal.
    alarm_condition: Option<Condition>,
    advisory_condition: Option<Condition>,
    shown: Shown,
}

/// What the previous evaluation made of a key.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Shown {
    /// Raised (either tier), at this severity.
    severity: Option<Severity>,
    /// Raised but hidden by an L3.
    inhibited: bool,
}

impl Shown {
    fn published(self) -> Option<Severity> {
        self.severity.filter(|_| !self.inhibited)
    }
}

impl KeyState {
    fn observe(&mut self, conditions: Tiered, timing: &Timing, now_ms: i64) {
        let Tiered { alarm, advisory } = conditions;
        for (tracker, slot, cond) in [
            (&mut self.alarm, &mut self.alarm_condition, alarm),
            (&mut self.advisory, &mut self.advisory_condition, advisory),
        ] {
            let for_ms = cond.as_ref().map_or(0, |c| c.for_ms);
            // The transition is read from `shown` later, once inhibition is known.
            let _: Option<Transition> = tracker.observe(
                cond.is_some(),
                for_ms,
                timing.clear_after_ms,
                &timing.flap,
                now_ms,
            );
            // Kept after it stops holding: the evidence of a clearing signal and
            // the summary of its `cleared` change. Dropped with the key.
            if cond.is_some() {
                *slot = cond;
            }
        }
    }

    /// The tier that is published, with its condition and `since`.
    fn current(&self) -> Option<(&Condition, Severity, i64)> {
        fn pick<'a>(
            tracker: &Tracker,
            cond: &'a Option<Condition>,
        ) -> Option<(&'a Condition, Severity, i64)> {
            let since = tracker.since_ms()?;
            let cond = cond.as_ref()?;
            Some((cond, cond.severity, since))
        }
        pick(&self.alarm, &self.alarm_condition)
            .or_else(|| pick(&self.advisory, &self.advisory_condition))
    }

    /// The summary of the tier last shown, for a change that has no current one.
    fn last_summary(&self) -> String {
        let cond = match self.shown.severity {
            Some(Severity::Low) => &self.advisory_condition,
            _ => &self.alarm_condition,
        };
        cond.as_ref().map(|c| c.summary.clone()).unwrap_or_default()
    }

    fn is_forgettable(&self) -> bool {
        self.alarm.is_forgettable()
            && self.advisory.is_forgettable()
            && self.shown == Shown::default()
    }
}

/// Conditions of one key, by tier.
#[derive(Debug, Default)]
struct Tiered {
    alarm: Option<Condition>,
    advisory: Option<Condition>,
}

impl Tiered {
    fn put(&mut self, c: Condition) {
        let slot = match c.tier() {
            Tier::Alarm => &mut self.alarm,
            Tier::Advisory => &mut self.advisory,
        };
        // One condition per key and tier; a cause never makes two, keep the first.
        if slot.is_none() {
            *slot = Some(c);
        }
    }
}

#[derive(Debug, Clone, Copy)]
struct Timing {
    clear_after_ms: i64,
    flap: FlapPolicy,
}

/// Per site memory of the causes that need one.
#[derive(Debug, Clone, Default)]
struct SiteMemory {
    storage: storage::Memory,
    cooling: cooling::Memory,
}

/// The disaster-signals engine. One per collector; not shared between threads
/// (the collector owns it in its evaluation task).
#[derive(Debug, Clone)]
pub struct Engine {
    config: SignalsConfig,
    started_at_ms: i64,
    keys: BTreeMap<SignalKey, KeyState>,
    memory: BTreeMap<String, SiteMemory>,
    last_prune_ms: i64,
    /// Per site, its last quiet look ([`crate::incremental`]).
    looks: BTreeMap<String, SiteCache>,
    /// The previous evaluation's time.
    last_evaluated_ms: Option<i64>,
    /// Sites looked at in full, and looks reused, since the engine started.
    full_looks: u64,
    reused_looks: u64,
    /// The hosts' indexes ([`Engine::evaluate_revised`]).
    indexes: IndexCache,
}

/// What [`Held`] answers for one site: its raised keys, from the same print
/// the site's cached look is compared with (sorted by cause and subject, as the
/// keys are). A lookup allocates nothing, and a site with nothing raised (the
/// usual case) answers at once.
struct PrintHeld<'a>(&'a HeldPrint);

impl Held for PrintHeld<'_> {
    fn is_raised(&self, cause: Cause, subject: &str, tier: Tier) -> bool {
        self.0
            .binary_search_by(|(c, s, _, _)| (*c, s.as_str()).cmp(&(cause, subject)))
            .is_ok_and(|i| {
                let (_, _, alarm, advisory) = self.0[i];
                match tier {
                    Tier::Alarm => alarm,
                    Tier::Advisory => advisory,
                }
            })
    }
}

impl Engine {
    /// An engine for a collector that started at `started_at_ms` (the startup grace
    /// counts from there).
    pub fn new(config: SignalsConfig, started_at_ms: i64) -> Self {
        Engine {
            config,
            started_at_ms,
            keys: BTreeMap::new(),
            memory: BTreeMap::new(),
            last_prune_ms: started_at_ms,
            looks: BTreeMap::new(),
            last_evaluated_ms: None,
            full_looks: 0,
            reused_looks: 0,
            indexes: IndexCache::default(),
        }
    }

    /// Site evaluations done in full, and quiet looks reused
    /// ([`Engine::evaluate_incremental`]), since the engine started.
    pub fn looks(&self) -> (u64, u64) {
        (self.full_looks, self.reused_looks)
    }

    pub fn config(&self) -> &SignalsConfig {
        &self.config
    }

    pub fn started_at_ms(&self) -> i64 {
        self.started_at_ms
    }

    /// Signal keys tracked (raised, pending, clearing or remembered for flap
    /// damping): a gauge for the collector's own metrics.
    pub fn tracked(&self) -> usize {
        self.keys.len()
    }

    /// Evaluates a snapshot at `now_ms`. Call it at every tick and after ingest;
    /// `now_ms` should not go backwards (if it does, that time counts as none).
    ///
    /// A site listed twice in the snapshot is evaluated from its first entry.
    pub fn evaluate(&mut self, snapshot: &Snapshot, now_ms: i64) -> Evaluation {
        self.evaluate_incremental(snapshot, &[], now_ms)
    }

    /// [`Engine::evaluate`], looking again only at the sites whose picture
    /// changed or whose last look time alone may have changed
    /// ([`crate::incremental`]). `revisions` numbers each site of the snapshot
    /// (by its index in `snapshot.sites`): the caller promises that a site
    /// given the same number as at an earlier call has the same content. A
    /// snapshot without them (empty, or not one per site) is looked at in full.
    pub fn evaluate_incremental(
        &mut self,
        snapshot: &Snapshot,
        revisions: &[u64],
        now_ms: i64,
    ) -> Evaluation {
        self.evaluate_revised(snapshot, revisions, &[], now_ms)
    }

    /// [`Engine::evaluate_incremental`], the hosts numbered too: by site and
    /// host of the snapshot, a number the caller promises to give again only
    /// to the same content of a host. A site looked at in full then visits,
    /// of a host seen before under that number, only the readings each cause
    /// reads ([`crate::host_index`]). A site without one number per host is
    /// looked at without indexes.
    pub fn evaluate_revised(
        &mut self,
        snapshot: &Snapshot,
        revisions: &[u64],
        host_revisions: &[Vec<u64>],
        now_ms: i64,
    ) -> Evaluation {
        let revisions = (revisions.len() == snapshot.sites.len()).then_some(revisions);
        let timing = Timing {
            clear_after_ms: ms(self.config.clear_after),
            flap: FlapPolicy {
                window_ms: ms(self.config.flap.window),
                max_changes: self.config.flap.max_changes,
                hold_ms: ms(self.config.flap.hold),
            },
        };
        let sites = self.site_names(snapshot);
        let policy = Policy::new(&self.config, self.started_at_ms);

        // 1. L1-L3 conditions. With a topology, each site's network loss seen
        //    here is first weighed against the other vantage points.
        let standing = snapshot.vantage.as_ref().map(vantage::Standing::of);
        let mut conditions: BTreeMap<SignalKey, Tiered> = BTreeMap::new();
        let mut site_reports = BTreeMap::new();
        let mut rulings = BTreeMap::new();
        let mut held_prints = held_prints(&self.keys);
        for site in &sites {
            let index = snapshot.sites.iter().position(|s| s.site == *site);
            let hosts = index.map_or(&[][..], |i| &snapshot.sites[i].hosts[..]);
            // A configured site nobody reported to has one content: none.
            let revision = revisions.map(|r| index.map_or(u64::MAX, |i| r[i]));
            let held_print = held_prints.remove(site.as_str()).unwrap_or_default();
            if let Some(revision) = revision
                && let Some(look) = self.looks.get(site)
                && look.holds(revision, &held_print, now_ms)
            {
                let ruling = match &standing {
                    Some(st) => vantage::rule(st, site, &look.local, look.loss_started_ms),
                    None => vantage::Ruling::default(),
                };
                if ruling == look.ruling {
                    self.reused_looks += 1;
                    site_reports.insert(site.clone(), look.local);
                    rulings.insert(site.clone(), (look.local, ruling));
                    if let Some(m) = self.memory.get_mut(site) {
                        m.cooling.sample_again(now_ms);
                    }
                    continue;
                }
            }
            // Looked at in full: the counters a reused look saw were seen at
            // every evaluation until the last one.
            if let (Some(look), Some(m), Some(last)) = (
                self.looks.remove(site),
                self.memory.get_mut(site),
                self.last_evaluated_ms,
            ) {
                m.storage.seen_again(look.seen_at_ms, last);
            }
            self.full_looks += 1;
            let deadline = Deadline::default();
            let numbered = index
                .and_then(|i| host_revisions.get(i))
                .filter(|r| revisions.is_some() && r.len() == hosts.len());
            let indexes = numbered.map(|n| self.indexes.take(site, hosts, n, &self.config));
            let mut view = SiteView::build(site, hosts, indexes.as_deref(), &policy, now_ms);
            let local = network::local_report(&view, &self.config.network);
            site_reports.insert(site.clone(), local);
            let loss_started = view.lost.iter().map(|l| l.1).max();
            let ruling = match &standing {
                Some(st) => vantage::rule(st, site, &local, loss_started),
                None => vantage::Ruling::default(),
            };
            if ruling.suppress_lost {
                view.suppress_lost();
            }
            let held = PrintHeld(&held_print);
            let ctx = Ctx {
                cfg: &self.config,
                now_ms,
                site: &view,
                held: &held,
                gate: &ruling.gate,
                deadline: &deadline,
            };
            let memory = self.memory.entry(site.clone()).or_default();
            let mut found = host_resources::evaluate(&ctx);
            found.extend(host_hardware::evaluate(&ctx));
            found.extend(storage::evaluate(&ctx, &mut memory.storage));
            found.extend(network_device::evaluate(&ctx));
            found.extend(power_feed::evaluate(&ctx));
            found.extend(power::evaluate(&ctx));
            found.extend(cooling::evaluate(&ctx, &mut memory.cooling));
            found.extend(network::evaluate(&ctx));
            if let (Some(numbers), Some(indexes)) = (numbered, indexes) {
                self.indexes.put(site, numbers, indexes);
            }
            if let Some(revision) = revision
                && found.is_empty()
            {
                // What the view depends on besides its picture: the grace and
                // the site's maintenance windows.
                if !policy.grace_over(now_ms) {
                    deadline.by(policy.grace_until_ms());
                }
                if let Some(at) = self.config.next_maintenance_change(site, now_ms) {
                    deadline.by(at);
                }
                self.looks.insert(
                    site.clone(),
                    SiteCache {
                        revision,
                        held: held_print,
                        ruling: ruling.clone(),
                        local,
                        loss_started_ms: loss_started,
                        taken_at_ms: now_ms,
                        valid_until_ms: deadline.get(),
                        seen_at_ms: now_ms,
                    },
                );
            }
            rulings.insert(site.clone(), (local, ruling));
            // The causes still ran, so that their memory stays current.
            if self.config.in_maintenance(site, None, now_ms) {
                continue;
            }
            for c in found {
                let key = SignalKey {
                    site: site.clone(),
                    cause: c.cause,
                    subject: c.subject.clone(),
                };
                conditions.entry(key).or_default().put(c);
            }
        }
        if let Some(st) = &standing {
            for (site, c) in vantage::conditions(st, &rulings, &policy, &self.config, now_ms) {
                if self.config.in_maintenance(&site, None, now_ms) {
                    continue;
                }
                let key = SignalKey {
                    site,
                    cause: c.cause,
                    subject: c.subject.clone(),
                };
                conditions.entry(key).or_default().put(c);
            }
        }

        // 2. Track them.
        self.track(conditions, |k| k.cause != Cause::Region, &timing, now_ms);

        // 3. L4 from the raised L3 alarms.
        let mut l3: BTreeMap<String, Vec<region::SiteL3>> = BTreeMap::new();
        for (key, state) in &self.keys {
            if key.level() == Level::L3
                && state.alarm.is_active()
                && let Some(c) = &state.alarm_condition
            {
                l3.entry(key.site.clone())
                    .or_default()
                    .push(region::SiteL3 {
                        cause: key.cause,
                        subject: key.subject.clone(),
                        summary: c.summary.clone(),
                    });
            }
        }
        let mut regional: BTreeMap<SignalKey, Tiered> = BTreeMap::new();
        for (site, c) in region::evaluate(&self.config, &l3) {
            let key = SignalKey {
                site,
                cause: c.cause,
                subject: c.subject.clone(),
            };
            regional.entry(key).or_default().put(c);
        }
        // The L4 follows its L3s, which already carry the hysteresis and flap
        // damping: a second clear delay would keep a region at L4 after its sites
        // are back.
        let region_timing = Timing {
            clear_after_ms: 0,
            ..timing
        };
        self.track(
            regional,
            |k| k.cause == Cause::Region,
            &region_timing,
            now_ms,
        );

        // 4-5. Inhibition, publication, changes.
        let mut evaluation = self.publish(&sites, now_ms);
        evaluation.site_reports = site_reports;
        if revisions.is_none() {
            self.looks.clear();
            self.indexes = IndexCache::default();
        } else {
            if self.looks.len() > sites.len() {
                self.looks
                    .retain(|site, _| sites.binary_search(site).is_ok());
            }
            self.indexes.keep_sites(&sites);
        }
        self.prune(now_ms);
        self.last_evaluated_ms = Some(now_ms);
        evaluation
    }

    /// Host indexes built and reused ([`Engine::evaluate_revised`]), since the
    /// engine started.
    pub fn host_indexes(&self) -> (u64, u64) {
        (self.indexes.built, self.indexes.reused)
    }

    fn site_names(&self, snapshot: &Snapshot) -> Vec<String> {
        let mut sites: BTreeSet<&str> = snapshot.sites.iter().map(|s| s.site.as_str()).collect();
        sites.extend(self.config.sites.keys().map(String::as_str));
        // Every site of the topology has a disaster level, agents or not.
        sites.extend(
            self.config
                .topology
                .collectors
                .iter()
                .map(|c| c.site.as_str()),
        );
        sites.into_iter().map(str::to_owned).collect()
    }

    /// Feeds the conditions to the keys `selects` picks; other keys are untouched.
    fn track(
        &mut self,
        mut conditions: BTreeMap<SignalKey, Tiered>,
        selects: impl Fn(&SignalKey) -> bool,
        timing: &Timing,
        now_ms: i64,
    ) {
        for (key, state) in self.keys.iter_mut().filter(|(k, _)| selects(k)) {
            let tiered = conditions.remove(key).unwrap_or_default();
            state.observe(tiered, timing, now_ms);
        }
        for (key, tiered) in conditions {
            let mut state = KeyState::default();
            state.observe(tiered, timing, now_ms);
            self.keys.insert(key, state);
        }
    }

    fn publish(&mut self, sites: &[String], now_ms: i64) -> Evaluation {
        // The active L3 alarms of each site: what may inhibit.
        let mut l3_causes: BTreeMap<&str, Vec<Cause>> = BTreeMap::new();
        for (key, state) in &self.keys {
            if key.level() == Level::L3 && state.alarm.is_active() {
                l3_causes
                    .entry(key.site.as_str())
                    .or_default()
                    .push(key.cause);
            }
        }
        // In key order, like `self.keys`.
        let mut next: Vec<Shown> = Vec::with_capacity(self.keys.len());
        // (site, L3 cause) -> evidence of the L2s it inhibits.
        let mut inhibited: BTreeMap<(&str, Cause), Vec<Evidence>> = BTreeMap::new();
        for (key, state) in &self.keys {
            let Some((cond, severity, _)) = state.current() else {
                next.push(Shown::default());
                continue;
            };
            let explaining: Vec<Cause> = if key.level() == Level::L2 {
                l3_causes
                    .get(key.site.as_str())
                    .into_iter()
                    .flatten()
                    .copied()
                    .filter(|c| cond.explained_by.contains(*c))
                    .collect()
            } else {
                Vec::new()
            };
            let on_its_way_out = matches!(state.alarm.phase(), Phase::Clearing { .. });
            let hidden = !explaining.is_empty() || (state.shown.inhibited && on_its_way_out);
            for cause in explaining {
                inhibited
                    .entry((key.site.as_str(), cause))
                    .or_default()
                    .push(Evidence::Detail(EvidenceDetail {
                        summary: format!(
                            "explains L2 {} {}: {}",
                            key.cause, key.subject, cond.summary
                        ),
                        host: (key.cause == Cause::HostHardware).then(|| key.subject.clone()),
                        src: None,
                        dev: None,
                        q: None,
                        value: None,
                        inhibits: Some(InhibitedSignal {
                            level: key.level(),
                            cause: key.cause,
                            subject: key.subject.clone(),
                        }),
                    }));
            }
            next.push(Shown {
                severity: Some(severity),
                inhibited: hidden,
            });
        }

        let mut active = Vec::new();
        let mut changes = Vec::new();
        let mut disaster_level: BTreeMap<String, u8> =
            sites.iter().map(|s| (s.clone(), 0)).collect();
        for ((key, state), &shown) in self.keys.iter().zip(&next) {
            let current = state.current();
            if let Some(kind) = change_kind(state.shown, shown) {
                let severity = match kind {
                    ChangeKind::Cleared | ChangeKind::Inhibited => state.shown.severity,
                    _ => shown.severity,
                };
                let summary = match current {
                    Some((c, _, _)) => c.summary.clone(),
                    None => state.last_summary(),
                };
                changes.push(Change {
                    t_ms: now_ms,
                    kind,
                    site: key.site.clone(),
                    level: key.level(),
                    cause: key.cause,
                    subject: key.subject.clone(),
                    severity: severity.unwrap_or(Severity::Low),
                    summary,
                });
            }
            let (Some(severity), Some((cond, _, since))) = (shown.published(), current) else {
                continue;
            };
            if severity > Severity::Low {
                let level = disaster_level.entry(key.site.clone()).or_default();
                *level = (*level).max(key.level().number());
            }
            let mut evidence = Vec::with_capacity(cond.evidence.len() + 1);
            evidence.push(Evidence::Text(cond.summary.clone()));
            evidence.extend(cond.evidence.iter().cloned());
            if let Some(explained) = inhibited.get(&(key.site.as_str(), key.cause)) {
                evidence.extend(causes::cap_evidence(explained.clone()));
            }
            active.push(Signal {
                site: key.site.clone(),
                level: key.level(),
                cause: key.cause,
                subject: key.subject.clone(),
                severity,
                since,
                evidence,
            });
        }
        for (state, shown) in self.keys.values_mut().zip(next) {
            state.shown = shown;
        }
        // Most severe first within a site: an L3 raised before the L2s it inhibits.
        active.sort_by(|a, b| {
            (&a.site, Reverse(a.level), a.cause, &a.subject).cmp(&(
                &b.site,
                Reverse(b.level),
                b.cause,
                &b.subject,
            ))
        });
        changes.sort_by(|a, b| {
            (&a.site, Reverse(a.level), a.cause, &a.subject).cmp(&(
                &b.site,
                Reverse(b.level),
                b.cause,
                &b.subject,
            ))
        });
        Evaluation {
            now_ms,
            active,
            changes,
            disaster_level,
            site_reports: BTreeMap::new(),
        }
    }

    fn prune(&mut self, now_ms: i64) {
        if now_ms.saturating_sub(self.last_prune_ms) < PRUNE_EVERY_MS {
            return;
        }
        self.last_prune_ms = now_ms;
        self.keys.retain(|_, s| !s.is_forgettable());
        // A reused look saw its counters again (see `evaluate_incremental`).
        for (site, look) in &mut self.looks {
            if let Some(m) = self.memory.get_mut(site) {
                m.storage.seen_again(look.seen_at_ms, now_ms);
                look.seen_at_ms = now_ms;
            }
        }
        // A disk keeps its counters for a day past its growth hold: SMART is slow.
        let storage_age = ms(self.config.storage.growth_hold).saturating_add(86_400_000);
        let cooling_age = ms(self.config.cooling.rise_window).saturating_mul(2);
        for m in self.memory.values_mut() {
            m.storage.prune(now_ms, storage_age);
            m.cooling.prune(now_ms, cooling_age);
        }
        let configured = &self.config.sites;
        self.memory.retain(|site, m| {
            !m.storage.is_empty() || !m.cooling.is_empty() || configured.contains_key(site)
        });
    }
}

/// Per site, what [`Held`] answers: each raised key's active tiers, in key
/// order.
fn held_prints(keys: &BTreeMap<SignalKey, KeyState>) -> BTreeMap<&str, HeldPrint> {
    let mut prints: BTreeMap<&str, HeldPrint> = BTreeMap::new();
    for (key, state) in keys {
        let (alarm, advisory) = (state.alarm.is_active(), state.advisory.is_active());
        if alarm || advisory {
            prints.entry(key.site.as_str()).or_default().push((
                key.cause,
                key.subject.clone(),
                alarm,
                advisory,
            ));
        }
    }
    prints
}

fn change_kind(before: Shown, after: Shown) -> Option<ChangeKind> {
    match (before.published(), after.published()) {
        (None, None) => None,
        (None, Some(_)) if before.severity.is_some() => Some(ChangeKind::Released),
        (None, Some(_)) => Some(ChangeKind::Raised),
        (Some(_), None) if after.severity.is_some() => Some(ChangeKind::Inhibited),
        (Some(_), None) => Some(ChangeKind::Cleared),
        (Some(a), Some(b)) if b > a => Some(ChangeKind::Escalated),
        (Some(a), Some(b)) if b < a => Some(ChangeKind::Deescalated),
        (Some(_), Some(_)) => None,
    }
}
