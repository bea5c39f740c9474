//! The collector's state: every known host and the latest value of every series.
//!
//! Ingest writes it through [`State::apply`]; scrapes, the API and (later) the
//! signals engine read it through accessors that take `now` as an argument. Nothing
//! in here looks at a clock: whether an agent is lost or a series expired is
//! decided at read time, so that the same state read at the same `now` always says
//! the same thing (a replay on a simulated clock included).
//!
//! Memory: strings are interned (`intern.rs`), a series is a 48-byte slot
//! (`series.rs`), hosts live in a slab whose index is the series key's `host`.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::sync::Arc;

use serde::Serialize;
use sitewatch_protocol::{
    Body, Event, EventsPayload, Message, ReadingState, ReadingsPayload, Rejection, StatePayload,
    Topic,
};

use crate::dedup::{SeqWindow, Verdict};
use crate::intern::{EMPTY, Id, IdMap, Interner, LabelSets};
use crate::liveness::{self, AgentStatus, Liveness, PathFacts, PathId, PathState, Reported, Rules};
use crate::metrics::names;
use crate::series::{Family, SeriesKey, SeriesValue};

/// Events kept per host for the signals engine and the API.
pub const RECENT_EVENTS: usize = 64;

/// How the state judges staleness and bounds itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StateConfig {
    /// A series expires after this many intervals of its source without an update.
    pub stale_factor: u32,
    /// The interval assumed for a source whose interval is unknown (no birth, or a
    /// source missing from the birth's `sources` and no `interval_ms`).
    pub default_interval_ms: u64,
    /// New series beyond this many are dropped (and counted): a runaway publisher
    /// must not take the collector's memory.
    pub max_series: usize,
    /// Whether sequence gaps are counted. Off with a shared subscription, where
    /// each collector sees only part of every agent's sequence.
    pub count_gaps: bool,
    /// Liveness parameters.
    pub rules: Rules,
}

impl Default for StateConfig {
    fn default() -> Self {
        StateConfig {
            stale_factor: 3,
            default_interval_ms: 60_000,
            max_series: 5_000_000,
            count_gaps: true,
            rules: Rules::default(),
        }
    }
}

/// Message kinds counted in `sitewatch_collector_messages_total{kind}`.
pub const MESSAGE_KINDS: [&str; 3] = ["state", "readings", "events"];

/// Why a reading was dropped (`sitewatch_collector_dropped_readings_total{reason}`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DropReason {
    /// Its `sitewatch_<q>` would collide with a metric the collector owns.
    ReservedQuantity,
    /// The state holds `max_series` series already.
    SeriesLimit,
}

impl DropReason {
    pub const ALL: [DropReason; 2] = [DropReason::ReservedQuantity, DropReason::SeriesLimit];

    pub fn as_str(self) -> &'static str {
        match self {
            DropReason::ReservedQuantity => "reserved_quantity",
            DropReason::SeriesLimit => "series_limit",
        }
    }
}

/// The collector's own counters, exposed as `sitewatch_collector_*`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Counters {
    /// Indexed like [`MESSAGE_KINDS`].
    pub messages: [u64; 3],
    pub readings: u64,
    /// Indexed like [`Rejection::REASONS`].
    pub rejected: [u64; Rejection::REASONS.len()],
    pub duplicates: u64,
    pub gaps: u64,
    /// Indexed like [`DropReason::ALL`].
    pub dropped_readings: [u64; 2],
    /// Sequences that started again without a new boot (see `dedup.rs`).
    pub sequence_restarts: u64,
}

/// One known agent.
#[derive(Debug, Clone)]
pub struct Host {
    pub site: Id,
    pub host: Id,
    /// What each broker path last carried of this agent (one entry per path it
    /// was heard on; see `liveness.rs`).
    pub paths: Vec<PathFacts>,
    /// `ts` of the last state message.
    pub reported_ts: Option<i64>,
    pub boot: Option<Arc<str>>,
    pub agent: Option<String>,
    pub interval_ms: Option<u64>,
    /// Each source's poll interval from the birth, by source-name id.
    pub sources: Vec<(Id, u64)>,
    pub labels: BTreeMap<String, String>,
    /// When the agent was last seen alive, Unix ms: receipt of a live message, or
    /// the `ts` of a retained one. `None` when only a will without `ts` was seen.
    pub last_seen_ms: Option<i64>,
    readings_seq: SeqWindow,
    events_seq: SeqWindow,
    /// The last [`RECENT_EVENTS`] events, oldest first, with their receipt time.
    pub recent_events: VecDeque<(i64, Event)>,
}

impl Host {
    fn new(site: Id, host: Id) -> Self {
        Host {
            site,
            host,
            paths: Vec::new(),
            reported_ts: None,
            boot: None,
            agent: None,
            interval_ms: None,
            sources: Vec::new(),
            labels: BTreeMap::new(),
            last_seen_ms: None,
            readings_seq: SeqWindow::default(),
            events_seq: SeqWindow::default(),
            recent_events: VecDeque::new(),
        }
    }

    /// The facts of one path, created on first use.
    fn path_mut(&mut self, path: PathId, now_ms: i64) -> &mut PathFacts {
        let i = match self.paths.iter().position(|p| p.path == path) {
            Some(i) => i,
            None => {
                self.paths.push(PathFacts::new(path, now_ms));
                self.paths.len() - 1
            }
        };
        &mut self.paths[i]
    }

    /// What the agent last said of itself, on the most recent path.
    pub fn reported(&self) -> Reported {
        self.paths
            .iter()
            .filter(|p| p.reported != Reported::Nothing)
            .max_by_key(|p| p.reported_at_ms)
            .map_or(Reported::Nothing, |p| p.reported)
    }

    /// The paths it was heard on.
    pub fn path_ids(&self) -> impl Iterator<Item = PathId> + '_ {
        self.paths.iter().map(|p| p.path)
    }

    /// The poll interval of a source: from the birth's `sources`, else the
    /// heartbeat, else the configured default.
    pub fn source_interval_ms(&self, src: Id, default_ms: u64) -> u64 {
        self.sources
            .iter()
            .find(|(s, _)| *s == src)
            .map(|(_, i)| *i)
            .or(self.interval_ms)
            .unwrap_or(default_ms)
    }
}

/// What [`State::apply`] did with a message, for the ingest's logs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Applied {
    State,
    /// A retained empty payload: the host and its series are forgotten.
    Forgotten,
    Readings {
        readings: usize,
        gap: u64,
    },
    Events,
    Duplicate,
    /// The message restarted its host's sequence without a new boot.
    Restarted,
    /// Not for the collector (its own `_signals` output).
    Ignored,
}

/// A host as the API shows it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct HostInfo {
    pub site: String,
    pub host: String,
    pub status: AgentStatus,
    pub reason: Option<&'static str>,
    /// When lost: since when (Unix ms).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lost_since: Option<i64>,
    /// Unix ms.
    pub last_seen: Option<i64>,
    pub labels: BTreeMap<String, String>,
    pub sources: BTreeMap<String, u64>,
    pub interval_ms: Option<u64>,
    pub boot: Option<String>,
    pub agent: Option<String>,
    /// The brokers (the collector's links, by name) it was heard through.
    pub paths: Vec<String>,
}

/// How liveness is judged at a read: the policy (startup grace, maintenance,
/// expected hosts) and the state of each broker link.
#[derive(Debug, Clone, Copy)]
pub struct Judge<'a> {
    pub policy: sitewatch_signals::Policy<'a>,
    pub links: &'a [PathState],
    /// The links' names, indexed like `links` (for the API).
    pub names: &'a [String],
}

impl Judge<'_> {
    fn path_name(&self, path: PathId) -> String {
        self.names
            .get(usize::from(path))
            .cloned()
            .unwrap_or_else(|| path.to_string())
    }
}

/// One exposed reading, with its names resolved.
#[derive(Debug, Clone, PartialEq)]
pub struct ReadingView<'a> {
    pub site: &'a str,
    pub host: &'a str,
    pub src: &'a str,
    pub dev: &'a str,
    pub name: &'a str,
    pub q: &'a str,
    pub labels: Vec<(&'a str, &'a str)>,
    pub value: Option<f64>,
    pub state: ReadingState,
    pub ts_ms: i64,
}

/// Everything the collector knows.
#[derive(Debug, Default)]
pub struct State {
    cfg: StateConfig,
    strings: Interner,
    labelsets: LabelSets,
    host_index: IdMap<(Id, Id), u32>,
    hosts: Vec<Option<Host>>,
    free_hosts: Vec<u32>,
    families: IdMap<Id, Family>,
    series_count: usize,
    counters: Counters,
    /// Reused per batch to build label sets without allocating.
    scratch: Vec<(Id, Id)>,
}

impl State {
    pub fn new(cfg: StateConfig) -> Self {
        State {
            cfg,
            ..State::default()
        }
    }

    pub fn config(&self) -> &StateConfig {
        &self.cfg
    }

    pub fn counters(&self) -> &Counters {
        &self.counters
    }

    /// How many series are stored (expired ones included until [`State::prune`]).
    pub fn series_count(&self) -> usize {
        self.series_count
    }

    pub fn strings(&self) -> &Interner {
        &self.strings
    }

    pub fn labelsets(&self) -> &LabelSets {
        &self.labelsets
    }

    /// Counts a message the protocol rejected.
    pub fn count_rejection(&mut self, rejection: &Rejection) {
        let reason = rejection.reason();
        if let Some(i) = Rejection::REASONS.iter().position(|r| *r == reason) {
            self.counters.rejected[i] += 1;
        }
    }

    /// Applies a decoded message received at `now_ms` (Unix ms, the collector's
    /// clock). `retained` is the MQTT retain flag as delivered: a retained message is
    /// old news replayed at subscription, not a sign of life now.
    pub fn apply(&mut self, msg: &Message, retained: bool, now_ms: i64) -> Applied {
        self.apply_from(0, msg, retained, now_ms)
    }

    /// [`State::apply`] for a message that arrived through broker path `path`.
    pub fn apply_from(
        &mut self,
        path: PathId,
        msg: &Message,
        retained: bool,
        now_ms: i64,
    ) -> Applied {
        let (site, host) = match &msg.topic {
            Topic::Host { site, host, .. } => (site.as_str(), host.as_str()),
            Topic::Signals { .. } => return Applied::Ignored,
        };
        match &msg.body {
            Body::State(s) => {
                self.counters.messages[0] += 1;
                self.apply_state(path, site, host, s, retained, now_ms);
                Applied::State
            }
            Body::Cleared => {
                self.counters.messages[0] += 1;
                self.forget(site, host);
                Applied::Forgotten
            }
            // Duplicates are counted apart, not as messages ingested.
            Body::Readings(r) => {
                let applied = self.apply_readings(path, site, host, r, retained, now_ms);
                if applied != Applied::Duplicate {
                    self.counters.messages[1] += 1;
                }
                applied
            }
            Body::Events(e) => {
                let applied = self.apply_events(site, host, e, retained, now_ms);
                if applied != Applied::Duplicate {
                    self.counters.messages[2] += 1;
                }
                applied
            }
            Body::Signals(_) => Applied::Ignored,
        }
    }

    fn host_slot(&mut self, site: &str, host: &str) -> u32 {
        let site = self.strings.intern(site);
        let host = self.strings.intern(host);
        if let Some(&slot) = self.host_index.get(&(site, host)) {
            return slot;
        }
        let entry = Some(Host::new(site, host));
        let slot = match self.free_hosts.pop() {
            Some(slot) => {
                if let Some(s) = self.hosts.get_mut(slot as usize) {
                    *s = entry;
                }
                slot
            }
            None => {
                self.hosts.push(entry);
                u32::try_from(self.hosts.len() - 1).unwrap_or(u32::MAX)
            }
        };
        self.host_index.insert((site, host), slot);
        slot
    }

    fn host_mut(&mut self, slot: u32) -> Option<&mut Host> {
        self.hosts.get_mut(slot as usize).and_then(Option::as_mut)
    }

    /// The host in a slot.
    pub fn host(&self, slot: u32) -> Option<&Host> {
        self.hosts.get(slot as usize).and_then(Option::as_ref)
    }

    fn apply_state(
        &mut self,
        path: PathId,
        site: &str,
        host: &str,
        s: &StatePayload,
        retained: bool,
        now: i64,
    ) {
        let slot = self.host_slot(site, host);
        let sources: Vec<(Id, u64)> = s
            .sources
            .iter()
            .map(|(src, interval)| (self.strings.intern(src), *interval))
            .collect();
        let Some(h) = self.host_mut(slot) else {
            return;
        };
        if let Some(boot) = &s.boot
            && h.boot.as_deref() != Some(boot.as_str())
        {
            // A new process: its sequences start again.
            h.readings_seq.reset();
            h.events_seq.reset();
            h.boot = Some(Arc::from(boot.as_str()));
        }
        h.reported_ts = s.ts;
        {
            // The heartbeat window restarts at every state message, a retained one
            // too: an agent known only from a retained birth gets its full window
            // after the collector starts.
            let p = h.path_mut(path, now);
            p.reported = Reported::from_state(s.status, s.reason);
            p.reported_at_ms = now;
            p.last_heard_ms = now;
            p.readings_heard = false;
        }
        // A birth describes the agent completely; the will and the shutdown message
        // carry none of this, so what the birth said stays.
        if s.status == sitewatch_protocol::Status::Online {
            h.interval_ms = s.interval_ms;
            h.sources = sources;
            h.labels.clone_from(&s.labels);
            h.agent.clone_from(&s.agent);
        } else {
            if s.interval_ms.is_some() {
                h.interval_ms = s.interval_ms;
            }
            if !sources.is_empty() {
                h.sources = sources;
            }
            if !s.labels.is_empty() {
                h.labels.clone_from(&s.labels);
            }
            if s.agent.is_some() {
                h.agent.clone_from(&s.agent);
            }
        }
        h.last_seen_ms = if retained {
            match (h.last_seen_ms, s.ts) {
                (Some(a), Some(b)) => Some(a.max(b)),
                (a, b) => a.or(b),
            }
        } else {
            Some(now)
        };
    }

    fn apply_readings(
        &mut self,
        path: PathId,
        site: &str,
        host: &str,
        r: &ReadingsPayload,
        retained: bool,
        now: i64,
    ) -> Applied {
        let slot = self.host_slot(site, host);
        let count_gaps = self.cfg.count_gaps;
        let Some(h) = self.host_mut(slot) else {
            return Applied::Ignored;
        };
        // A copy that already came through another path is still this path's
        // heartbeat: it is the path that is judged, not the message.
        {
            let p = h.path_mut(path, now);
            p.last_heard_ms = now;
            p.readings_heard = true;
        }
        let verdict = h.readings_seq.check(r.seq);
        let gap = match verdict {
            Verdict::Duplicate => {
                self.counters.duplicates += 1;
                return Applied::Duplicate;
            }
            Verdict::Fresh { gap } => gap,
            Verdict::Restarted => 0,
        };
        if !retained {
            h.last_seen_ms = Some(now);
        }
        if count_gaps {
            self.counters.gaps += gap;
        }
        if verdict == Verdict::Restarted {
            self.counters.sequence_restarts += 1;
        }
        let mut taken = 0;
        for reading in &r.readings {
            if names::is_reserved_quantity(&reading.q) {
                self.counters.dropped_readings[0] += 1;
                continue;
            }
            let q = self.strings.intern(&reading.q);
            let labels = if reading.labels.is_empty() {
                EMPTY
            } else {
                self.scratch.clear();
                // `Labels` is a BTreeMap: already in key order, so equal sets give
                // equal pair lists.
                for (k, v) in &reading.labels {
                    let k = self.strings.intern(k);
                    let v = self.strings.intern(v);
                    self.scratch.push((k, v));
                }
                self.labelsets.intern(&self.scratch)
            };
            let key = SeriesKey {
                host: slot,
                src: self.strings.intern(&reading.src),
                dev: self.strings.intern(&reading.dev),
                name: self.strings.intern(&reading.name),
                labels,
            };
            let ts = reading.ts.unwrap_or(r.ts);
            let value = SeriesValue::new(reading.value, reading.state, ts, now);
            let family = self.families.entry(q).or_default();
            match family.series.get_mut(&key) {
                Some(old) => {
                    // A reading older than the one held (a late batch) does not
                    // replace it: the latest value wins, not the latest arrival.
                    if ts >= old.ts_ms {
                        *old = value;
                    }
                }
                None => {
                    if self.series_count >= self.cfg.max_series {
                        self.counters.dropped_readings[1] += 1;
                        continue;
                    }
                    family.series.insert(key, value);
                    self.series_count += 1;
                }
            }
            taken += 1;
        }
        self.counters.readings += taken as u64;
        if verdict == Verdict::Restarted {
            Applied::Restarted
        } else {
            Applied::Readings {
                readings: taken,
                gap,
            }
        }
    }

    fn apply_events(
        &mut self,
        site: &str,
        host: &str,
        e: &EventsPayload,
        retained: bool,
        now: i64,
    ) -> Applied {
        let slot = self.host_slot(site, host);
        let count_gaps = self.cfg.count_gaps;
        let Some(h) = self.host_mut(slot) else {
            return Applied::Ignored;
        };
        let gap = match h.events_seq.check(e.seq) {
            Verdict::Duplicate => {
                self.counters.duplicates += 1;
                return Applied::Duplicate;
            }
            Verdict::Fresh { gap } => gap,
            Verdict::Restarted => 0,
        };
        if !retained {
            h.last_seen_ms = Some(now);
        }
        for event in &e.events {
            if h.recent_events.len() >= RECENT_EVENTS {
                h.recent_events.pop_front();
            }
            let mut event = event.clone();
            event.ts = Some(event.ts.unwrap_or(e.ts));
            h.recent_events.push_back((now, event));
        }
        if count_gaps {
            self.counters.gaps += gap;
        }
        Applied::Events
    }

    /// Forgets a host and all its series (a retained empty state: decommissioned).
    pub fn forget(&mut self, site: &str, host: &str) {
        let (Some(site), Some(host)) = (self.strings.get(site), self.strings.get(host)) else {
            return;
        };
        let Some(slot) = self.host_index.remove(&(site, host)) else {
            return;
        };
        let mut removed = 0;
        for family in self.families.values_mut() {
            let before = family.series.len();
            family.series.retain(|k, _| k.host != slot);
            removed += before - family.series.len();
        }
        self.families.retain(|_, f| !f.series.is_empty());
        self.series_count -= removed;
        if let Some(entry) = self.hosts.get_mut(slot as usize) {
            *entry = None;
            self.free_hosts.push(slot);
        }
    }

    /// How long a series of `host` from `src` lives without an update.
    pub fn stale_after_ms(&self, host: &Host, src: Id) -> u64 {
        host.source_interval_ms(src, self.cfg.default_interval_ms)
            .saturating_mul(u64::from(self.cfg.stale_factor))
    }

    /// Drops series expired at `now_ms` (memory housekeeping: expired series are
    /// already hidden from every reader). Returns how many were dropped.
    pub fn prune(&mut self, now_ms: i64) -> usize {
        let mut removed = 0;
        let hosts = &self.hosts;
        let factor = u64::from(self.cfg.stale_factor);
        let default = self.cfg.default_interval_ms;
        for family in self.families.values_mut() {
            let before = family.series.len();
            family.series.retain(|k, v| {
                let Some(h) = hosts.get(k.host as usize).and_then(Option::as_ref) else {
                    return false;
                };
                let after = h.source_interval_ms(k.src, default).saturating_mul(factor);
                !v.is_stale(after, now_ms)
            });
            removed += before - family.series.len();
        }
        self.families.retain(|_, f| !f.series.is_empty());
        self.series_count -= removed;
        removed
    }

    /// The observed liveness of a host at `now_ms`, its paths judged against the
    /// state of the broker links (`links`, indexed by path).
    pub fn observed(&self, host: &Host, links: &[PathState], now_ms: i64) -> Liveness {
        liveness::observe(
            &host.paths,
            links,
            host.interval_ms,
            &self.cfg.rules,
            now_ms,
        )
    }

    /// What sitewatch says of a host at `now_ms`: observed, then judged by the
    /// policy (startup grace, maintenance windows).
    pub fn verdict(&self, host: &Host, judge: &Judge<'_>, now_ms: i64) -> liveness::Verdict {
        let site = self.strings.resolve(host.site);
        let name = self.strings.resolve(host.host);
        self.observed(host, judge.links, now_ms)
            .verdict(&judge.policy, site, name, now_ms)
    }

    /// Every known host with its slot, in no particular order.
    pub fn hosts(&self) -> impl Iterator<Item = (u32, &Host)> {
        self.hosts
            .iter()
            .enumerate()
            .filter_map(|(i, h)| Some((u32::try_from(i).ok()?, h.as_ref()?)))
    }

    /// The distinct sites of the known hosts, sorted.
    pub fn sites(&self) -> BTreeSet<&str> {
        self.hosts()
            .map(|(_, h)| self.strings.resolve(h.site))
            .collect()
    }

    /// The inventory, sorted by site and host: every known host, and the
    /// expected ones never seen once the startup grace is over.
    pub fn host_infos(&self, judge: &Judge<'_>, now_ms: i64) -> Vec<HostInfo> {
        let mut out: Vec<HostInfo> = self
            .hosts()
            .map(|(_, h)| {
                let v = self.verdict(h, judge, now_ms);
                HostInfo {
                    site: self.strings.resolve(h.site).to_owned(),
                    host: self.strings.resolve(h.host).to_owned(),
                    status: v.status,
                    reason: v.reason,
                    lost_since: v.since_ms,
                    last_seen: h.last_seen_ms,
                    labels: h.labels.clone(),
                    sources: h
                        .sources
                        .iter()
                        .map(|(s, i)| (self.strings.resolve(*s).to_owned(), *i))
                        .collect(),
                    interval_ms: h.interval_ms,
                    boot: h.boot.as_deref().map(str::to_owned),
                    agent: h.agent.clone(),
                    paths: h.path_ids().map(|p| judge.path_name(p)).collect(),
                }
            })
            .collect();
        out.extend(self.unseen_expected(judge, now_ms));
        out.sort_by(|a, b| (&a.site, &a.host).cmp(&(&b.site, &b.host)));
        out
    }

    /// The expected hosts (`[signals.sites]`) this collector has never heard of,
    /// with their verdict, once the startup grace is over.
    pub fn unseen_expected(&self, judge: &Judge<'_>, now_ms: i64) -> Vec<HostInfo> {
        let mut out = Vec::new();
        for site in judge.policy.config().sites.keys() {
            let seen = |host: &str| self.host_slot_of(site, host).is_some();
            for (host, verdict) in judge.policy.unseen_expected(site, seen, now_ms) {
                let Some(v) = verdict else { continue };
                out.push(HostInfo {
                    site: site.clone(),
                    host: host.to_owned(),
                    status: v.status,
                    reason: v.reason,
                    lost_since: v.since_ms,
                    last_seen: None,
                    labels: BTreeMap::new(),
                    sources: BTreeMap::new(),
                    interval_ms: None,
                    boot: None,
                    agent: None,
                    paths: Vec::new(),
                });
            }
        }
        out
    }

    /// The slot of a host, if known.
    pub fn host_slot_of(&self, site: &str, host: &str) -> Option<u32> {
        let site = self.strings.get(site)?;
        let host = self.strings.get(host)?;
        self.host_index.get(&(site, host)).copied()
    }

    /// The quantity families, as (q id, family), in no particular order.
    pub fn families(&self) -> impl Iterator<Item = (Id, &Family)> {
        self.families.iter().map(|(q, f)| (*q, f))
    }

    /// Every reading not expired at `now_ms`, names resolved: what the signals
    /// engine's `evaluate(&state, now)` will read.
    pub fn readings(&self, now_ms: i64) -> impl Iterator<Item = ReadingView<'_>> {
        self.families.iter().flat_map(move |(q, family)| {
            family.series.iter().filter_map(move |(k, v)| {
                let h = self.host(k.host)?;
                if v.is_stale(self.stale_after_ms(h, k.src), now_ms) {
                    return None;
                }
                Some(ReadingView {
                    site: self.strings.resolve(h.site),
                    host: self.strings.resolve(h.host),
                    src: self.strings.resolve(k.src),
                    dev: self.strings.resolve(k.dev),
                    name: self.strings.resolve(k.name),
                    q: self.strings.resolve(*q),
                    labels: self
                        .labelsets
                        .resolve(k.labels)
                        .iter()
                        .map(|(k, v)| (self.strings.resolve(*k), self.strings.resolve(*v)))
                        .collect(),
                    value: v.value(),
                    state: v.state,
                    ts_ms: v.ts_ms,
                })
            })
        })
    }
}

#[cfg(test)]
pub(crate) mod tests;
