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
    Body, Decoded, Event, EventsPayload, Message, ReadingState, ReadingsView, Rejection,
    StatePayload, Topic,
};

use crate::dedup::{EventIds, Sequences, Stream, Verdict};
use crate::intern::{EMPTY, Id, IdMap, Interner, LabelSets};
use crate::liveness::{self, AgentStatus, Liveness, PathFacts, PathId, PathState, Reported, Rules};
use crate::metrics::names;
use crate::series::{Family, HostSeries, SeriesKey, SeriesValue};

mod cursor;
use cursor::SeriesCursor;

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
    /// must not take the collector's memory. At the limit, a host still under its
    /// fair share (`max_series` / hosts) may add series: the flooder's share fills
    /// first, so one host's flood never drops another host's reading.
    pub max_series: usize,
    /// New series of one host beyond this many are dropped (and counted).
    pub max_series_per_host: usize,
    /// Hosts known at most, in all and per site; messages from a new host beyond
    /// either are dropped (and counted).
    pub max_hosts: usize,
    pub max_hosts_per_site: usize,
    /// A host not heard from (no message at all) for this long is forgotten, its
    /// series with it, unless it is an expected host.
    pub forget_after_ms: u64,
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
            max_series_per_host: 20_000,
            max_hosts: 100_000,
            max_hosts_per_site: 20_000,
            forget_after_ms: 7 * 86_400_000,
            count_gaps: true,
            rules: Rules::default(),
        }
    }
}

/// Message kinds counted in `sitewatch_collector_messages_total{kind}`.
pub const MESSAGE_KINDS: [&str; 4] = ["state", "readings", "events", "collector"];

/// Why a reading was dropped (`sitewatch_collector_dropped_readings_total{reason}`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DropReason {
    /// Its `sitewatch_<q>` would collide with a metric the collector owns.
    ReservedQuantity,
    /// The state holds `max_series` series already and the host has its share.
    SeriesLimit,
    /// The host holds `max_series_per_host` series already.
    HostSeriesLimit,
}

impl DropReason {
    pub const ALL: [DropReason; 3] = [
        DropReason::ReservedQuantity,
        DropReason::SeriesLimit,
        DropReason::HostSeriesLimit,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            DropReason::ReservedQuantity => "reserved_quantity",
            DropReason::SeriesLimit => "series_limit",
            DropReason::HostSeriesLimit => "host_series_limit",
        }
    }

    pub(crate) fn index(self) -> usize {
        match self {
            DropReason::ReservedQuantity => 0,
            DropReason::SeriesLimit => 1,
            DropReason::HostSeriesLimit => 2,
        }
    }
}

/// Why a message from a host the state does not know yet was dropped
/// (`sitewatch_collector_refused_hosts_total{reason}`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HostLimit {
    /// `max_hosts` hosts are known already.
    Hosts,
    /// `max_hosts_per_site` hosts of its site are known already.
    SiteHosts,
}

impl HostLimit {
    pub const ALL: [HostLimit; 2] = [HostLimit::Hosts, HostLimit::SiteHosts];

    pub fn as_str(self) -> &'static str {
        match self {
            HostLimit::Hosts => "host_limit",
            HostLimit::SiteHosts => "site_host_limit",
        }
    }
}

/// The collector's own counters, exposed as `sitewatch_collector_*`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Counters {
    /// Indexed like [`MESSAGE_KINDS`].
    pub messages: [u64; 4],
    pub readings: u64,
    /// Indexed like [`Rejection::REASONS`].
    pub rejected: [u64; Rejection::REASONS.len()],
    pub duplicates: u64,
    pub gaps: u64,
    /// Indexed like [`DropReason::ALL`].
    pub dropped_readings: [u64; 3],
    /// Messages of unknown hosts dropped at a host limit, indexed like
    /// [`HostLimit::ALL`].
    pub refused_hosts: [u64; 2],
    /// Hosts forgotten after `forget_after` of silence.
    pub forgotten_hosts: u64,
    /// Sequences that started again without a new boot (see `dedup.rs`).
    pub sequence_restarts: u64,
    /// Events dropped because an event with the same `id` was kept already.
    pub duplicate_events: u64,
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
    /// Every series held for this host, in the order they arrived: its quota,
    /// and how [`State::readings_of_host`] finds them.
    own: Vec<HostSeries>,
    /// The collector's clock when any message of it last arrived (for
    /// `forget_after`).
    pub last_message_ms: i64,
    /// When the agent was last seen alive, Unix ms: receipt of a live message, or
    /// the `ts` of a retained one. `None` when only a will without `ts` was seen.
    pub last_seen_ms: Option<i64>,
    /// Readings and events windows per boot (see `dedup.rs`).
    seqs: Sequences,
    /// Ids of the last events with one, to keep a redelivered event once.
    event_ids: EventIds,
    /// The last [`RECENT_EVENTS`] events, oldest first, with their receipt time.
    pub recent_events: VecDeque<(i64, Event)>,
    /// The state's [`State::generation`] when a message last touched this host:
    /// what a reader saw of it before is still true while this has not moved
    /// (and no deadline of time fell due).
    pub changed_at: u64,
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
            own: Vec::new(),
            last_message_ms: 0,
            last_seen_ms: None,
            seqs: Sequences::default(),
            event_ids: EventIds::default(),
            recent_events: VecDeque::new(),
            changed_at: 0,
        }
    }

    /// How many series the state holds for this host (expired ones included
    /// until [`State::prune`]).
    pub fn series(&self) -> usize {
        self.own.len()
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

/// Why a new series may not be stored: the host's own quota first; at the
/// global limit, only a host that already holds its fair share is refused.
fn quota_exceeded(
    cfg: &StateConfig,
    total: usize,
    hosts: usize,
    host_series: usize,
) -> Option<DropReason> {
    if host_series >= cfg.max_series_per_host {
        return Some(DropReason::HostSeriesLimit);
    }
    // Past the limit nobody adds: the margin below it is for hosts under their
    // share, so that a flood that filled the state cannot starve a real reading.
    let hard = cfg.max_series.saturating_add(cfg.max_series / 2);
    let fair = cfg.max_series / hosts.max(1);
    if total >= hard || (total >= cfg.max_series && host_series >= fair) {
        return Some(DropReason::SeriesLimit);
    }
    None
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
    /// From a host the state does not know, beyond a host limit: dropped.
    Refused,
    /// A peer collector's presence or view.
    Collector,
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
    pub src: &'a Arc<str>,
    pub dev: &'a Arc<str>,
    pub name: &'a Arc<str>,
    pub q: &'a Arc<str>,
    pub labels: Vec<(&'a str, &'a str)>,
    pub value: Option<f64>,
    pub state: ReadingState,
    pub ts_ms: i64,
    /// The first instant at which the series is stale (hidden from readers)
    /// unless a new value arrives.
    pub stale_at_ms: i64,
}

impl<'a> ReadingView<'a> {
    /// Its names, as [`State::readings_of_host_named`] asks about them.
    pub fn names(&self) -> SeriesNames<'a> {
        SeriesNames {
            src: self.src,
            dev: self.dev,
            name: self.name,
            q: self.q,
        }
    }
}

/// The names of one series of a host, before its value is looked up.
#[derive(Debug, Clone, Copy)]
pub struct SeriesNames<'a> {
    pub src: &'a Arc<str>,
    pub dev: &'a Arc<str>,
    pub name: &'a Arc<str>,
    pub q: &'a Arc<str>,
}

/// Everything the collector knows.
#[derive(Debug, Default)]
pub struct State {
    cfg: StateConfig,
    strings: Interner,
    labelsets: LabelSets,
    host_index: IdMap<(Id, Id), u32>,
    /// Hosts known per site id (for `max_hosts_per_site`).
    site_hosts: IdMap<Id, usize>,
    /// Strings and label sets stored after the last sweep (see `compact`).
    swept_at: (usize, usize),
    hosts: Vec<Option<Host>>,
    free_hosts: Vec<u32>,
    families: IdMap<Id, Family>,
    series_count: usize,
    counters: Counters,
    /// Reused per batch to build label sets without allocating.
    scratch: Vec<(Id, Id)>,
    /// Reused per batch: the series it added, for its host's list.
    fresh: Vec<HostSeries>,
    /// The other collectors of the topology.
    peers: crate::topology::Peers,
    /// +1 at every change that a reader may see (a message applied, a host
    /// forgotten, series or hosts pruned): see [`State::generation`].
    generation: u64,
    /// +1 whenever a host slot is emptied or its names re-interned (a slot
    /// filled is a new host: readers see it in [`State::hosts`]).
    hosts_generation: u64,
}

impl State {
    pub fn new(cfg: StateConfig) -> Self {
        State {
            cfg,
            ..State::default()
        }
    }

    /// A state that also follows the peer collectors of a topology.
    pub fn with_peers(cfg: StateConfig, peers: crate::topology::Peers) -> Self {
        State {
            cfg,
            peers,
            ..State::default()
        }
    }

    pub fn config(&self) -> &StateConfig {
        &self.cfg
    }

    /// The peer collectors.
    pub fn peers(&self) -> &crate::topology::Peers {
        &self.peers
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
        self.generation = self.generation.wrapping_add(1);
        let (site, host) = match &msg.topic {
            Topic::Host { site, host, .. } => (site.as_str(), host.as_str()),
            Topic::Signals { .. } => return Applied::Ignored,
            Topic::Collector { name, .. } => {
                self.counters.messages[3] += 1;
                match &msg.body {
                    Body::CollectorState(s) => {
                        self.peers.apply_state(path, name.as_str(), s, now_ms)
                    }
                    Body::CollectorView(v) => self.peers.apply_view(path, name.as_str(), v, now_ms),
                    Body::Cleared => self.peers.clear(path, name.as_str()),
                    _ => {}
                }
                return Applied::Collector;
            }
        };
        match &msg.body {
            Body::State(s) => {
                let applied = self.apply_state(path, site, host, s, retained, now_ms);
                if applied != Applied::Refused {
                    self.counters.messages[0] += 1;
                }
                applied
            }
            Body::Cleared => {
                self.counters.messages[0] += 1;
                self.forget(site, host);
                Applied::Forgotten
            }
            Body::Readings(r) => {
                self.apply_counted_readings(path, site, host, &r.view(), retained, now_ms)
            }
            Body::Events(e) => {
                let applied = self.apply_events(site, host, e, retained, now_ms);
                if !matches!(applied, Applied::Duplicate | Applied::Refused) {
                    self.counters.messages[2] += 1;
                }
                applied
            }
            Body::Signals(_) | Body::CollectorState(_) | Body::CollectorView(_) => Applied::Ignored,
        }
    }

    /// [`State::apply_from`] for what [`decode_in_place`] gives: a readings
    /// batch that borrows from its payload, or any other message.
    pub fn apply_decoded(
        &mut self,
        path: PathId,
        decoded: &Decoded<'_>,
        retained: bool,
        now_ms: i64,
    ) -> Applied {
        match decoded {
            Decoded::Message(msg) => self.apply_from(path, msg, retained, now_ms),
            Decoded::Readings(topic, batch) => {
                let Topic::Host { site, host, .. } = topic else {
                    // decode_in_place gives a batch only for a host's readings topic.
                    return Applied::Ignored;
                };
                self.generation = self.generation.wrapping_add(1);
                self.apply_counted_readings(
                    path,
                    site.as_str(),
                    host.as_str(),
                    batch,
                    retained,
                    now_ms,
                )
            }
        }
    }

    /// A readings batch, counted as a message ingested unless it was a
    /// duplicate (counted apart) or refused.
    fn apply_counted_readings(
        &mut self,
        path: PathId,
        site: &str,
        host: &str,
        batch: &ReadingsView<'_>,
        retained: bool,
        now_ms: i64,
    ) -> Applied {
        let applied = self.apply_readings(path, site, host, batch, retained, now_ms);
        if !matches!(applied, Applied::Duplicate | Applied::Refused) {
            self.counters.messages[1] += 1;
        }
        applied
    }

    /// The slot of a host, created when new unless a host limit says no (then
    /// counted, and nothing is interned for it).
    fn host_slot(&mut self, site: &str, host: &str, now_ms: i64) -> Option<u32> {
        if let (Some(s), Some(h)) = (self.strings.get(site), self.strings.get(host))
            && let Some(&slot) = self.host_index.get(&(s, h))
        {
            let generation = self.generation;
            if let Some(entry) = self.host_mut(slot) {
                entry.last_message_ms = now_ms;
                entry.changed_at = generation;
            }
            return Some(slot);
        }
        let in_site = self
            .strings
            .get(site)
            .and_then(|s| self.site_hosts.get(&s))
            .copied()
            .unwrap_or(0);
        let refused = if self.host_index.len() >= self.cfg.max_hosts {
            Some(HostLimit::Hosts)
        } else if in_site >= self.cfg.max_hosts_per_site {
            Some(HostLimit::SiteHosts)
        } else {
            None
        };
        if let Some(limit) = refused {
            let i = HostLimit::ALL.iter().position(|l| *l == limit).unwrap_or(0);
            self.counters.refused_hosts[i] += 1;
            return None;
        }
        let site = self.strings.intern(site);
        let host = self.strings.intern(host);
        let mut entry = Host::new(site, host);
        entry.last_message_ms = now_ms;
        entry.changed_at = self.generation;
        let slot = match self.free_hosts.pop() {
            Some(slot) => {
                if let Some(s) = self.hosts.get_mut(slot as usize) {
                    *s = Some(entry);
                }
                slot
            }
            None => {
                self.hosts.push(Some(entry));
                u32::try_from(self.hosts.len() - 1).unwrap_or(u32::MAX)
            }
        };
        self.host_index.insert((site, host), slot);
        *self.site_hosts.entry(site).or_default() += 1;
        Some(slot)
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
    ) -> Applied {
        let Some(slot) = self.host_slot(site, host, now) else {
            return Applied::Refused;
        };
        let sources: Vec<(Id, u64)> = s
            .sources
            .iter()
            .map(|(src, interval)| (self.strings.intern(src), *interval))
            .collect();
        let Some(h) = self.host_mut(slot) else {
            return Applied::Ignored;
        };
        if let Some(boot) = &s.boot
            && h.boot.as_deref() != Some(boot.as_str())
        {
            // A new process: its sequences start again (in windows of their
            // own: the previous boot's buffered batches may still come).
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
        Applied::State
    }

    fn apply_readings(
        &mut self,
        path: PathId,
        site: &str,
        host: &str,
        r: &ReadingsView<'_>,
        retained: bool,
        now: i64,
    ) -> Applied {
        let Some(slot) = self.host_slot(site, host, now) else {
            return Applied::Refused;
        };
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
        let boot = r.boot.as_deref().or(h.boot.as_deref());
        let verdict = h.seqs.check(boot, Stream::Readings, r.seq);
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
        let mut host_series = self.host(slot).map_or(0, Host::series);
        self.fresh.clear();
        let mut taken = 0;
        let mut cursor = SeriesCursor::default();
        for reading in &r.readings {
            let own = self.host(slot).map_or(&[][..], |h| h.own.as_slice());
            let (q, key) = match cursor.guess(own, reading, &self.strings, &self.labelsets) {
                // A held series passed the reserved-name check when it was made.
                Some(known) => (known.q, known.key(slot)),
                None => {
                    if names::is_reserved_quantity(&reading.src, &reading.q) {
                        self.counters.dropped_readings[0] += 1;
                        continue;
                    }
                    let (q, key) = self.intern_series(slot, reading);
                    let own = self.host(slot).map_or(&[][..], |h| h.own.as_slice());
                    cursor.resync(own, &HostSeries::new(q, &key));
                    (q, key)
                }
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
                    if let Some(reason) = quota_exceeded(
                        &self.cfg,
                        self.series_count,
                        self.host_index.len(),
                        host_series,
                    ) {
                        self.counters.dropped_readings[reason.index()] += 1;
                        continue;
                    }
                    family.series.insert(key, value);
                    self.fresh.push(HostSeries::new(q, &key));
                    self.series_count += 1;
                    host_series += 1;
                }
            }
            taken += 1;
        }
        self.counters.readings += taken as u64;
        if !self.fresh.is_empty()
            && let Some(Some(h)) = self.hosts.get_mut(slot as usize)
        {
            h.own.extend_from_slice(&self.fresh);
        }
        if verdict == Verdict::Restarted {
            Applied::Restarted
        } else {
            Applied::Readings {
                readings: taken,
                gap,
            }
        }
    }

    /// The quantity and key of a reading of host `slot`, its names interned.
    fn intern_series(
        &mut self,
        slot: u32,
        reading: &sitewatch_protocol::ReadingView<'_>,
    ) -> (Id, SeriesKey) {
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
        (q, key)
    }

    fn apply_events(
        &mut self,
        site: &str,
        host: &str,
        e: &EventsPayload,
        retained: bool,
        now: i64,
    ) -> Applied {
        let Some(slot) = self.host_slot(site, host, now) else {
            return Applied::Refused;
        };
        let count_gaps = self.cfg.count_gaps;
        let Some(h) = self.host_mut(slot) else {
            return Applied::Ignored;
        };
        let boot = e.boot.as_deref().or(h.boot.as_deref());
        let gap = match h.seqs.check(boot, Stream::Events, e.seq) {
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
        let mut repeated = 0;
        for event in &e.events {
            if let Some(id) = &event.id
                && !h.event_ids.first_time(&event.src, &event.dev, id)
            {
                // Read again by an agent that restarted before saving its cursor.
                repeated += 1;
                continue;
            }
            if h.recent_events.len() >= RECENT_EVENTS {
                h.recent_events.pop_front();
            }
            let mut event = event.clone();
            event.ts = Some(event.ts.unwrap_or(e.ts));
            h.recent_events.push_back((now, event));
        }
        self.counters.duplicate_events += repeated;
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
        let Some(&slot) = self.host_index.get(&(site, host)) else {
            return;
        };
        self.generation = self.generation.wrapping_add(1);
        self.forget_slots(&[slot]);
    }

    fn forget_slots(&mut self, slots: &[u32]) {
        if slots.is_empty() {
            return;
        }
        self.hosts_generation = self.hosts_generation.wrapping_add(1);
        let mut removed = 0;
        for family in self.families.values_mut() {
            let before = family.series.len();
            family.series.retain(|k, _| !slots.contains(&k.host));
            removed += before - family.series.len();
        }
        self.families.retain(|_, f| !f.series.is_empty());
        self.series_count -= removed;
        for &slot in slots {
            let Some(h) = self.hosts.get_mut(slot as usize).and_then(Option::take) else {
                continue;
            };
            self.host_index.remove(&(h.site, h.host));
            if let Some(n) = self.site_hosts.get_mut(&h.site) {
                *n = n.saturating_sub(1);
                if *n == 0 {
                    self.site_hosts.remove(&h.site);
                }
            }
            self.free_hosts.push(slot);
        }
    }

    /// How long a series of `host` from `src` lives without an update.
    pub fn stale_after_ms(&self, host: &Host, src: Id) -> u64 {
        host.source_interval_ms(src, self.cfg.default_interval_ms)
            .saturating_mul(u64::from(self.cfg.stale_factor))
    }

    /// Drops series expired at `now_ms` (memory housekeeping: expired series are
    /// already hidden from every reader) and hosts silent for `forget_after`.
    /// Returns how many series were dropped.
    pub fn prune(&mut self, now_ms: i64) -> usize {
        self.prune_keeping(now_ms, |_, _| false)
    }

    /// [`State::prune`], never forgetting the hosts `keep(site, host)` says (the
    /// expected hosts: a server gone for a week is still a lost server).
    pub fn prune_keeping(&mut self, now_ms: i64, keep: impl Fn(&str, &str) -> bool) -> usize {
        let forget_after = i64::try_from(self.cfg.forget_after_ms).unwrap_or(i64::MAX);
        let silent: Vec<u32> = self
            .hosts()
            .filter(|(_, h)| now_ms.saturating_sub(h.last_message_ms) > forget_after)
            .filter(|(_, h)| !keep(self.strings.resolve(h.site), self.strings.resolve(h.host)))
            .map(|(slot, _)| slot)
            .collect();
        self.counters.forgotten_hosts += silent.len() as u64;
        self.forget_slots(&silent);

        let mut removed = 0;
        let hosts = &self.hosts;
        let factor = u64::from(self.cfg.stale_factor);
        let default = self.cfg.default_interval_ms;
        // By slot: whether the host lost a series (its list is mended below).
        let mut lost = vec![false; hosts.len()];
        for family in self.families.values_mut() {
            let before = family.series.len();
            family.series.retain(|k, v| {
                let Some(h) = hosts.get(k.host as usize).and_then(Option::as_ref) else {
                    return false;
                };
                let after = h.source_interval_ms(k.src, default).saturating_mul(factor);
                let stale = v.is_stale(after, now_ms);
                if stale && let Some(l) = lost.get_mut(k.host as usize) {
                    *l = true;
                }
                !stale
            });
            removed += before - family.series.len();
            // A table that emptied after a flood gives its memory back.
            if family.series.capacity() > 64 && family.series.len() < family.series.capacity() / 4 {
                family.series.shrink_to_fit();
            }
        }
        self.families.retain(|_, f| !f.series.is_empty());
        self.series_count -= removed;
        let families = &self.families;
        for (slot, h) in self.hosts.iter_mut().enumerate() {
            let (Some(h), true) = (h, lost.get(slot).copied().unwrap_or(false)) else {
                continue;
            };
            let slot = slot as u32;
            h.own.retain(|s| {
                families
                    .get(&s.q)
                    .is_some_and(|f| f.series.contains_key(&s.key(slot)))
            });
            if h.own.capacity() > 16 && h.own.len() < h.own.capacity() / 4 {
                h.own.shrink_to_fit();
            }
        }
        if removed > 0 || !silent.is_empty() {
            self.generation = self.generation.wrapping_add(1);
            self.compact();
        }
        removed
    }

    /// Changes so far: two reads at the same generation saw the same hosts and
    /// series (what is fresh at a given `now` still depends on `now`). The
    /// signals tick reuses its snapshot while it has not moved.
    pub fn generation(&self) -> u64 {
        self.generation
    }

    /// Hosts gone (a slot emptied, names swept): a reader that placed hosts by
    /// slot places them again when this moves. A host added does not move it:
    /// it is in a slot such a reader has not placed.
    pub fn hosts_generation(&self) -> u64 {
        self.hosts_generation
    }

    /// The first instant after `now_ms` at which what `observed` says of this
    /// host may change by time alone (a heartbeat deadline passing), or `None`
    /// if only a message or a link can change it.
    pub fn observed_changes_at(
        &self,
        host: &Host,
        links: &[PathState],
        now_ms: i64,
    ) -> Option<i64> {
        liveness::next_change_ms(
            &host.paths,
            links,
            host.interval_ms,
            &self.cfg.rules,
            now_ms,
        )
    }

    /// Sweeps the string and label-set tables when they have grown well past what
    /// was live at the last sweep: a flood of one-off names gives its memory back
    /// once its series are gone. O(series), so not at every prune.
    fn compact(&mut self) {
        let grown = |now: usize, then: usize| now > then + then / 4 + 1024;
        if !grown(self.strings.len(), self.swept_at.0)
            && !grown(self.labelsets.len(), self.swept_at.1)
        {
            return;
        }
        self.hosts_generation = self.hosts_generation.wrapping_add(1);
        let mut live_sets = vec![false; self.labelsets.capacity()];
        let mut live = vec![false; self.strings.capacity()];
        let mut mark = |id: Id| {
            if let Some(m) = live.get_mut(id as usize) {
                *m = true;
            }
        };
        for (_, h) in self.hosts() {
            mark(h.site);
            mark(h.host);
            for (src, _) in &h.sources {
                mark(*src);
            }
        }
        for (q, family) in &self.families {
            mark(*q);
            for k in family.series.keys() {
                mark(k.src);
                mark(k.dev);
                mark(k.name);
                if let Some(m) = live_sets.get_mut(k.labels as usize) {
                    *m = true;
                }
            }
        }
        for (id, pairs) in self.labelsets.iter() {
            if live_sets.get(id as usize).copied().unwrap_or(false) {
                for (k, v) in pairs {
                    mark(*k);
                    mark(*v);
                }
            }
        }
        let sets = self.labelsets.sweep(&live_sets);
        let strings = self.strings.sweep(&live);
        self.swept_at = (self.strings.len(), self.labelsets.len());
        self.host_index.shrink_to_fit();
        self.families.shrink_to_fit();
        tracing::debug!(strings, sets, "string tables swept");
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

    /// The family of quantity `q`, by name.
    pub fn family_named(&self, q: &str) -> Option<&Family> {
        self.families.get(&self.strings.get(q)?)
    }

    /// The quantity families, as (q id, family), in no particular order.
    pub fn families(&self) -> impl Iterator<Item = (Id, &Family)> {
        self.families.iter().map(|(q, f)| (*q, f))
    }

    /// Every reading not expired at `now_ms`, names resolved: what the signals
    /// engine's `evaluate(&state, now)` will read.
    pub fn readings(&self, now_ms: i64) -> impl Iterator<Item = ReadingView<'_>> {
        self.readings_with_slots(now_ms).map(|(_, r)| r)
    }

    /// [`State::readings`], each with its host's slot. A walk over every
    /// series: for one host, [`State::readings_of_host`].
    pub fn readings_with_slots(&self, now_ms: i64) -> impl Iterator<Item = (u32, ReadingView<'_>)> {
        self.families.iter().flat_map(move |(q, family)| {
            family.series.iter().filter_map(move |(k, v)| {
                let view = self.view(self.host(k.host)?, *q, k, v, now_ms)?;
                Some((k.host, view))
            })
        })
    }

    /// The readings of the host in `slot` not expired at `now_ms`, in the
    /// order its series arrived: found through its own list, whatever the
    /// number of other series.
    pub fn readings_of_host(
        &self,
        slot: u32,
        now_ms: i64,
    ) -> impl Iterator<Item = ReadingView<'_>> {
        self.readings_of_host_named(slot, now_ms, |_| true)
    }

    /// [`State::readings_of_host`], of the series whose names `wanted`
    /// accepts: asked before the series' value is looked up (a lookup in a
    /// table of every series of its quantity, most of a reading's cost at a
    /// million series), so that what the reader would drop costs no lookup.
    pub fn readings_of_host_named(
        &self,
        slot: u32,
        now_ms: i64,
        wanted: impl Fn(SeriesNames<'_>) -> bool,
    ) -> impl Iterator<Item = ReadingView<'_>> {
        let h = self.host(slot);
        let own = h.map_or(&[][..], |h| h.own.as_slice());
        own.iter().filter_map(move |s| {
            let names = SeriesNames {
                src: self.strings.resolve_shared(s.src),
                dev: self.strings.resolve_shared(s.dev),
                name: self.strings.resolve_shared(s.name),
                q: self.strings.resolve_shared(s.q),
            };
            if !wanted(names) {
                return None;
            }
            let key = s.key(slot);
            let v = self.families.get(&s.q)?.series.get(&key)?;
            self.view(h?, s.q, &key, v, now_ms)
        })
    }

    /// One series with its names resolved; `None` when it is expired at
    /// `now_ms`.
    fn view(
        &self,
        h: &Host,
        q: Id,
        k: &SeriesKey,
        v: &SeriesValue,
        now_ms: i64,
    ) -> Option<ReadingView<'_>> {
        let stale_after = self.stale_after_ms(h, k.src);
        if v.is_stale(stale_after, now_ms) {
            return None;
        }
        Some(ReadingView {
            site: self.strings.resolve(h.site),
            host: self.strings.resolve(h.host),
            src: self.strings.resolve_shared(k.src),
            dev: self.strings.resolve_shared(k.dev),
            name: self.strings.resolve_shared(k.name),
            q: self.strings.resolve_shared(q),
            labels: self
                .labelsets
                .resolve(k.labels)
                .iter()
                .map(|(k, v)| (self.strings.resolve(*k), self.strings.resolve(*v)))
                .collect(),
            value: v.value(),
            state: v.state,
            ts_ms: v.ts_ms,
            stale_at_ms: v.stale_at_ms(stale_after),
        })
    }
}

#[cfg(test)]
pub(crate) mod tests;
