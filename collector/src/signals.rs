//! The collector's side of the disaster signals: a [`Snapshot`] of the state for
//! the pure engine (`sitewatch-signals`), and the live evaluation loop that turns
//! each [`Evaluation`] into the collector's outputs.
//!
//! The same [`Signals::evaluate`] serves the live loop and `replay`: the state
//! read at a `now`, the engine evaluated at that `now`.
//!
//! Each evaluation goes to the [`crate::output`]s: what `/metrics` and
//! `/api/v1/signals` read, the retained `sitewatch/v1/<site>/_signals`, and the
//! Alertmanager push tasks.
//!
//! With a share group (`share_group`), each collector knows every agent's
//! liveness but only its share of the readings: its signals are partial (a power
//! cut seen through another collector's share of the UPS readings is missed here),
//! and every collector of the group publishes `_signals` and pushes alerts for the
//! sites it sees. The PromQL mirror (`packaging/prometheus/sitewatch-rules.yml`),
//! evaluated by Prometheus over every collector's metrics, is then the site-wide
//! truth; route its alerts, not the collectors' own.
//!
//! While the collector is connected to no broker at all the engine is not
//! evaluated: silence then is the collector's own blindness, not the agents'
//! (every agent would miss its heartbeats at once and look like a network cut).
//! The published signals stay as they were. With several links, a host seen only
//! through links that are down is `unobserved` (see `liveness.rs`), not lost.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use sitewatch_protocol::{ReadingState, Signal};
use sitewatch_signals::{
    ChangeKind, Engine, Evaluation, HostSnapshot, Name, SeriesSnapshot, SignalsConfig,
    SiteSnapshot, Snapshot, is_read, may_be_read,
};
use tokio::sync::Notify;

use crate::Shared;
use crate::liveness::PathState;
use crate::output::{Output, Round};
use crate::state::{SeriesNames, State};

/// The engine is evaluated at least this often.
pub const TICK: Duration = Duration::from_secs(1);
/// ...and after ingest, but not more often than this: a burst of a thousand
/// batches is one evaluation, not a thousand.
pub const MIN_GAP: Duration = Duration::from_millis(200);
/// ...nor sooner after the last evaluation than this many times what it cost
/// (at most [`TICK`]): under a load that changes every host all the time, an
/// evaluation after each burst would keep a core busy and hold the state's
/// lock for its refresh again and again, starving ingest. Spacing by cost keeps
/// evaluation to about a quarter of a core whatever the load, and an idle or
/// small collector (an evaluation well under 70 ms) keeps the 200 ms cadence.
pub const COST_FACTOR: u32 = 3;

/// The shortest wait after an evaluation that took `cost` before the next.
pub fn gap_after(cost: Duration) -> Duration {
    cost.saturating_mul(COST_FACTOR).clamp(MIN_GAP, TICK)
}

/// What the last evaluation published: what `/metrics` and the API read.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Published {
    /// When the engine last ran (Unix ms); `None` before its first evaluation.
    pub evaluated_at_ms: Option<i64>,
    /// Active signals, by site, then level (highest first), cause, subject.
    pub active: Vec<Signal>,
    /// Each site's disaster level (advisories do not raise it).
    pub disaster_level: BTreeMap<String, u8>,
    /// Site -> region, from `[signals.sites]` (`sitewatch_site_info`).
    pub regions: BTreeMap<String, String>,
    /// How long the last evaluation took (snapshot included).
    pub evaluation_seconds: f64,
    /// Site evaluations since the start: looked at in full, and quiet looks
    /// reused because nothing the site's causes depend on changed.
    pub site_looks: (u64, u64),
}

impl Published {
    /// Before any evaluation: no signal, the configured regions.
    pub fn initial(config: &SignalsConfig) -> Self {
        Published {
            regions: regions(config),
            ..Published::default()
        }
    }
}

/// Site -> region of the configured sites that have one.
pub fn regions(config: &SignalsConfig) -> BTreeMap<String, String> {
    config
        .sites
        .iter()
        .filter_map(|(site, c)| Some((site.clone(), c.region.clone()?)))
        .collect()
}

/// The engine, fed from the collector's state.
#[derive(Debug)]
pub struct Signals {
    engine: Engine,
    /// The last snapshot of the live loop, reused while it is still true.
    cached: Option<Cached>,
    /// The last site revision handed out (see [`Cached::revisions`]).
    revision: u64,
}

/// The live loop's snapshot, kept between ticks and brought up to date host
/// by host: a host is taken again only when a message touched it
/// ([`crate::state::Host::changed_at`]) or time alone changed what it shows
/// (its heartbeat deadline, one of its series going stale), and a new host is
/// placed among the others. Taken whole again when a host left or the links
/// changed. At every `now` it is what
/// [`snapshot`] would give (`the_kept_snapshot_is_always_what_a_fresh_one_would_be`);
/// only the vantage (peers' views age) is taken again at every tick.
#[derive(Debug)]
struct Cached {
    /// The state's generation and host-set generation it was brought to.
    generation: u64,
    hosts_generation: u64,
    links: Vec<PathState>,
    taken_at_ms: i64,
    /// The earliest `valid_until_ms` of its hosts.
    valid_until_ms: i64,
    snapshot: Snapshot,
    /// By host slot: where the host sits in `snapshot` and what it was taken from.
    placed: Vec<Option<Placed>>,
    /// By site of `snapshot`: a number that changes whenever one of its hosts
    /// is taken again, never reused ([`Engine::evaluate_incremental`]).
    revisions: Vec<u64>,
    /// By site and host of `snapshot`: the same for each host
    /// ([`Engine::evaluate_revised`]).
    host_revisions: Vec<Vec<u64>>,
    /// By site and host of `snapshot`: the host's slot in the state.
    slots: Vec<Vec<u32>>,
}

/// A host the state gained since the snapshot was taken, taken on its own.
struct Arrival<'a> {
    site: &'a str,
    slot: u32,
    changed_at: u64,
    snap: HostSnapshot,
    valid_until_ms: i64,
}

/// A host of the kept snapshot.
#[derive(Debug, Clone, Copy)]
struct Placed {
    site: usize,
    host: usize,
    changed_at: u64,
    /// The first instant at which time alone makes it untrue.
    valid_until_ms: i64,
}

impl Cached {
    /// Nothing moved: the whole snapshot holds at `now_ms`.
    fn holds(&self, state: &State, links: &[PathState], now_ms: i64) -> bool {
        self.generation == state.generation()
            && self.links == links
            && (self.taken_at_ms..self.valid_until_ms).contains(&now_ms)
    }

    /// The same hosts in the same slots under the same links, perhaps with
    /// more: it can be brought up to date host by host.
    fn same_hosts(&self, state: &State, links: &[PathState], now_ms: i64) -> bool {
        self.hosts_generation == state.hosts_generation()
            && self.links == links
            && now_ms >= self.taken_at_ms
    }

    /// Takes again the hosts a message touched or whose deadline fell due,
    /// and places the new ones, giving their sites new revisions from
    /// `revision`. Each through its own series list: the cost follows the
    /// hosts taken, not the series held.
    fn update(
        &mut self,
        state: &State,
        links: &[PathState],
        cfg: &SignalsConfig,
        now_ms: i64,
        revision: &mut u64,
    ) {
        let mut arrivals = Vec::new();
        for (slot, h) in state.hosts() {
            let Some(Some(p)) = self.placed.get(slot as usize) else {
                let (snap, valid_until_ms) = host_taken(state, slot, h, links, cfg, now_ms);
                arrivals.push(Arrival {
                    site: state.strings().resolve(h.site),
                    slot,
                    changed_at: h.changed_at,
                    snap,
                    valid_until_ms,
                });
                continue;
            };
            if p.changed_at == h.changed_at && now_ms < p.valid_until_ms {
                continue;
            }
            let p = *p;
            let (fresh, until) = host_taken(state, slot, h, links, cfg, now_ms);
            if let Some(r) = self.revisions.get_mut(p.site) {
                *revision += 1;
                *r = *revision;
            }
            if let Some(r) = self
                .host_revisions
                .get_mut(p.site)
                .and_then(|hosts| hosts.get_mut(p.host))
            {
                *revision += 1;
                *r = *revision;
            }
            if let Some(snap) = host_at(&mut self.snapshot, p) {
                *snap = fresh;
            }
            if let Some(Some(p)) = self.placed.get_mut(slot as usize) {
                p.changed_at = h.changed_at;
                p.valid_until_ms = until;
            }
        }
        self.place(arrivals, revision);
        self.valid_until_ms = self
            .placed
            .iter()
            .flatten()
            .map(|p| p.valid_until_ms)
            .min()
            .unwrap_or(i64::MAX);
        self.generation = state.generation();
        self.taken_at_ms = now_ms;
    }

    /// Places new hosts where a fresh snapshot would have them (sites and
    /// hosts by name), every host already placed kept with its number. While
    /// a fleet arrives, hosts come at every tick: taking the whole snapshot
    /// again each time would walk every series under the state's read lock
    /// and rebuild every host's index, for a few new hosts.
    fn place(&mut self, arrivals: Vec<Arrival<'_>>, revision: &mut u64) {
        if arrivals.is_empty() {
            return;
        }
        let mut next = || {
            *revision += 1;
            *revision
        };
        let mut by_site: BTreeMap<&str, Vec<Arrival<'_>>> = BTreeMap::new();
        for a in arrivals {
            let slot = a.slot as usize;
            if self.placed.len() <= slot {
                self.placed.resize(slot + 1, None);
            }
            // Its site and host are set below, once every position is known.
            self.placed[slot] = Some(Placed {
                site: 0,
                host: 0,
                changed_at: a.changed_at,
                valid_until_ms: a.valid_until_ms,
            });
            by_site.entry(a.site).or_default().push(a);
        }
        let mut first_moved_site = usize::MAX;
        let mut grown = Vec::new();
        for (site, mut incoming) in by_site {
            let sites = &mut self.snapshot.sites;
            let si = match sites.binary_search_by(|s| s.site.as_str().cmp(site)) {
                Ok(i) => i,
                Err(i) => {
                    sites.insert(i, SiteSnapshot::new(site, Vec::new()));
                    self.revisions.insert(i, 0);
                    self.host_revisions.insert(i, Vec::new());
                    self.slots.insert(i, Vec::new());
                    // Every site from here on moved one place.
                    first_moved_site = first_moved_site.min(i);
                    for g in &mut grown {
                        if *g >= i {
                            *g += 1;
                        }
                    }
                    i
                }
            };
            incoming.sort_by(|a, b| a.snap.host.cmp(&b.snap.host));
            let hosts = std::mem::take(&mut sites[si].hosts);
            let numbers = std::mem::take(&mut self.host_revisions[si]);
            let slots = std::mem::take(&mut self.slots[si]);
            let total = hosts.len() + incoming.len();
            let (mut merged_hosts, mut merged_numbers, mut merged_slots) = (
                Vec::with_capacity(total),
                Vec::with_capacity(total),
                Vec::with_capacity(total),
            );
            let mut incoming = incoming.into_iter().peekable();
            for ((h, n), slot) in hosts.into_iter().zip(numbers).zip(slots) {
                while let Some(a) = incoming.next_if(|a| a.snap.host < h.host) {
                    merged_hosts.push(a.snap);
                    merged_numbers.push(next());
                    merged_slots.push(a.slot);
                }
                merged_hosts.push(h);
                merged_numbers.push(n);
                merged_slots.push(slot);
            }
            for a in incoming {
                merged_hosts.push(a.snap);
                merged_numbers.push(next());
                merged_slots.push(a.slot);
            }
            sites[si].hosts = merged_hosts;
            self.host_revisions[si] = merged_numbers;
            self.slots[si] = merged_slots;
            self.revisions[si] = next();
            grown.push(si);
        }
        let moved = first_moved_site..self.slots.len();
        let unmoved = grown.into_iter().filter(|si| !moved.contains(si));
        for si in unmoved.chain(moved.clone()) {
            for (hi, &slot) in self.slots[si].iter().enumerate() {
                if let Some(Some(p)) = self.placed.get_mut(slot as usize) {
                    p.site = si;
                    p.host = hi;
                }
            }
        }
    }
}

impl Signals {
    /// An engine whose startup grace counts from `started_at_ms` (the collector's
    /// start, or a replay's first instant).
    pub fn new(config: SignalsConfig, started_at_ms: i64) -> Self {
        Signals {
            engine: Engine::new(config, started_at_ms),
            cached: None,
            revision: 0,
        }
    }

    pub fn config(&self) -> &SignalsConfig {
        self.engine.config()
    }

    /// Evaluates the state as it is at `now_ms`, its paths judged against the
    /// links' states (`links`, by path; empty: always up).
    pub fn evaluate(&mut self, state: &State, links: &[PathState], now_ms: i64) -> Evaluation {
        let snapshot = snapshot(
            state,
            links,
            self.engine.config(),
            self.engine.started_at_ms(),
            now_ms,
        );
        self.engine.evaluate(&snapshot, now_ms)
    }

    /// One tick of the live loop: [`Signals::evaluate`]'s result, without
    /// copying the state again when nothing it shows has changed since the
    /// last tick ([`Signals::refresh`], then [`Signals::evaluate_refreshed`]).
    pub fn tick(&mut self, state: &State, links: &[PathState], now_ms: i64) -> Evaluation {
        self.refresh(state, links, now_ms);
        self.evaluate_refreshed(now_ms)
    }

    /// Brings the kept snapshot to `now_ms` (under the state's read lock): taken
    /// again only if a message, a prune or a link changed the state since, or a
    /// heartbeat deadline or a series' staleness fell due; the vantage always.
    pub fn refresh(&mut self, state: &State, links: &[PathState], now_ms: i64) {
        let started = self.engine.started_at_ms();
        match &mut self.cached {
            Some(c) if c.holds(state, links, now_ms) => {}
            Some(c) if c.same_hosts(state, links, now_ms) => {
                c.update(
                    state,
                    links,
                    self.engine.config(),
                    now_ms,
                    &mut self.revision,
                );
            }
            _ => {
                let mut c = snapshot_placed(state, links, self.engine.config(), started, now_ms);
                let mut next = || {
                    self.revision += 1;
                    self.revision
                };
                c.revisions = c.snapshot.sites.iter().map(|_| next()).collect();
                c.host_revisions = c
                    .snapshot
                    .sites
                    .iter()
                    .map(|s| s.hosts.iter().map(|_| next()).collect())
                    .collect();
                self.cached = Some(c);
                return;
            }
        }
        if let Some(c) = &mut self.cached {
            c.snapshot.vantage =
                state
                    .peers()
                    .vantage(links, &state.config().rules, started, now_ms);
        }
    }

    /// Evaluates the snapshot [`Signals::refresh`] brought to `now_ms` (outside
    /// the state's lock). Before any refresh: an empty snapshot.
    pub fn evaluate_refreshed(&mut self, now_ms: i64) -> Evaluation {
        match &self.cached {
            Some(c) => {
                self.engine
                    .evaluate_revised(&c.snapshot, &c.revisions, &c.host_revisions, now_ms)
            }
            None => self.engine.evaluate(&Snapshot::default(), now_ms),
        }
    }

    /// The vantage of the snapshot last refreshed.
    pub fn vantage(&self) -> Option<&sitewatch_signals::Vantage> {
        self.cached
            .as_ref()
            .and_then(|c| c.snapshot.vantage.as_ref())
    }

    /// Site evaluations in full and reused ([`Engine::looks`]).
    pub fn looks(&self) -> (u64, u64) {
        self.engine.looks()
    }

    /// When the collector (or replay) started: the grace counts from there.
    pub fn started_at_ms(&self) -> i64 {
        self.engine.started_at_ms()
    }

    /// Evaluates a snapshot already taken (so that the state's lock is not held
    /// while the engine runs).
    pub fn evaluate_snapshot(&mut self, snapshot: &Snapshot, now_ms: i64) -> Evaluation {
        self.engine.evaluate(snapshot, now_ms)
    }
}

/// The engine's picture of the state at `now_ms`: every host with its observed
/// liveness (the engine applies the same policy as the metrics and the API) and
/// labels, and those of its series not expired at `now_ms` that some cause
/// reads (`cfg` says which); with a topology, where this collector stands
/// among its peers.
pub fn snapshot(
    state: &State,
    links: &[PathState],
    cfg: &SignalsConfig,
    started_at_ms: i64,
    now_ms: i64,
) -> Snapshot {
    snapshot_placed(state, links, cfg, started_at_ms, now_ms).snapshot
}

/// One host without its readings, and the first instant at which time alone
/// changes what it shows (its heartbeat deadline; `i64::MAX`: none).
fn host_snapshot(
    state: &State,
    h: &crate::state::Host,
    links: &[PathState],
    now_ms: i64,
) -> (HostSnapshot, i64) {
    let host = state.strings().resolve(h.host);
    let liveness = state.observed(h, links, now_ms).observed;
    let mut snap = HostSnapshot::new(host, liveness);
    snap.labels.clone_from(&h.labels);
    let until = state
        .observed_changes_at(h, links, now_ms)
        .unwrap_or(i64::MAX);
    (snap, until)
}

/// One host with the readings some cause reads, and the first instant at which
/// time alone changes what it shows.
fn host_taken(
    state: &State,
    slot: u32,
    h: &crate::state::Host,
    links: &[PathState],
    cfg: &SignalsConfig,
    now_ms: i64,
) -> (HostSnapshot, i64) {
    let (mut snap, mut until) = host_snapshot(state, h, links, now_ms);
    // What no cause reads in any state is not even looked up.
    let wanted = |n: SeriesNames<'_>| may_be_read(&named(n), cfg);
    for r in state.readings_of_host_named(slot, now_ms, wanted) {
        if let Some(taken) = series_snapshot(&r, cfg) {
            until = until.min(r.stale_at_ms);
            snap.readings.push(taken);
        }
    }
    sort_readings(&mut snap);
    (snap, until)
}

/// A reading as the engine is given it, if any cause reads it
/// ([`sitewatch_signals::is_read`]): the rest would be copied for nothing.
fn series_snapshot(
    r: &crate::state::ReadingView<'_>,
    cfg: &SignalsConfig,
) -> Option<SeriesSnapshot> {
    let mut taken = SeriesSnapshot {
        value: r.value,
        state: r.state,
        ts_ms: r.ts_ms,
        ..named(r.names())
    };
    // Asked before the labels are copied: `is_read` does not look at them.
    if !is_read(&taken, cfg) {
        return None;
    }
    taken.labels = r
        .labels
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    Some(taken)
}

/// A series with its names only (shared with the state's string table): no
/// value, state unknown, no labels.
fn named(n: SeriesNames<'_>) -> SeriesSnapshot {
    SeriesSnapshot {
        src: Name::from(n.src),
        dev: Name::from(n.dev),
        name: Name::from(n.name),
        q: Name::from(n.q),
        value: None,
        state: ReadingState::Unknown,
        ts_ms: 0,
        labels: Default::default(),
    }
}

fn host_at(snapshot: &mut Snapshot, p: Placed) -> Option<&mut HostSnapshot> {
    snapshot.sites.get_mut(p.site)?.hosts.get_mut(p.host)
}

/// A host's readings in a fixed order (by quantity, source, device, name, then
/// labels), whatever order the state's tables gave them in.
fn sort_readings(h: &mut HostSnapshot) {
    h.readings.sort_by(|a, b| {
        (&a.q, &a.src, &a.dev, &a.name, &a.labels).cmp(&(&b.q, &b.src, &b.dev, &b.name, &b.labels))
    });
}

/// The whole snapshot, with where each host sits in it.
fn snapshot_placed(
    state: &State,
    links: &[PathState],
    cfg: &SignalsConfig,
    started_at_ms: i64,
    now_ms: i64,
) -> Cached {
    let strings = state.strings();
    // (site, host) -> (slot, host); BTreeMaps so that the snapshot's order, and
    // with it everything downstream, does not depend on hash or slot order.
    let mut sites: BTreeMap<&str, BTreeMap<&str, (u32, HostSnapshot, i64)>> = BTreeMap::new();
    let mut slots = 0;
    for (slot, h) in state.hosts() {
        let site = strings.resolve(h.site);
        let host = strings.resolve(h.host);
        let (snap, until) = host_snapshot(state, h, links, now_ms);
        sites
            .entry(site)
            .or_default()
            .insert(host, (slot, snap, until));
        slots = slots.max(slot as usize + 1);
    }
    let mut placed: Vec<Option<Placed>> = vec![None; slots];
    let mut site_snaps = Vec::with_capacity(sites.len());
    let mut site_slots = Vec::with_capacity(sites.len());
    for (si, (site, hosts)) in sites.into_iter().enumerate() {
        let mut host_snaps = Vec::with_capacity(hosts.len());
        let mut host_slots = Vec::with_capacity(hosts.len());
        for (hi, (slot, snap, until)) in hosts.into_values().enumerate() {
            host_slots.push(slot);
            if let Some(p) = placed.get_mut(slot as usize) {
                *p = Some(Placed {
                    site: si,
                    host: hi,
                    changed_at: state.host(slot).map_or(0, |h| h.changed_at),
                    valid_until_ms: until,
                });
            }
            host_snaps.push(snap);
        }
        site_snaps.push(SiteSnapshot::new(site, host_snaps));
        site_slots.push(host_slots);
    }
    let mut snapshot = Snapshot::new(site_snaps);
    for (slot, r) in state.readings_with_slots(now_ms) {
        let Some(Some(p)) = placed.get_mut(slot as usize) else {
            continue;
        };
        let Some(taken) = series_snapshot(&r, cfg) else {
            continue;
        };
        p.valid_until_ms = p.valid_until_ms.min(r.stale_at_ms);
        let p = *p;
        if let Some(h) = host_at(&mut snapshot, p) {
            h.readings.push(taken);
        }
    }
    for site in &mut snapshot.sites {
        for h in &mut site.hosts {
            sort_readings(h);
        }
    }
    snapshot.vantage = state
        .peers()
        .vantage(links, &state.config().rules, started_at_ms, now_ms);
    let valid_until_ms = placed
        .iter()
        .flatten()
        .map(|p| p.valid_until_ms)
        .min()
        .unwrap_or(i64::MAX);
    Cached {
        generation: state.generation(),
        hosts_generation: state.hosts_generation(),
        links: links.to_vec(),
        taken_at_ms: now_ms,
        valid_until_ms,
        snapshot,
        placed,
        revisions: Vec::new(),
        host_revisions: Vec::new(),
        slots: site_slots,
    }
}

/// The input of the Alertmanager tasks: the active signals at an instant.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ActiveSignals {
    pub now_ms: i64,
    pub signals: Arc<Vec<Signal>>,
}

/// Runs the engine every [`TICK`] and after ingest (woken by `ingested`), until
/// the process stops, handing each evaluation to every output.
pub async fn run(
    shared: Arc<Shared>,
    mut signals: Signals,
    ingested: Arc<Notify>,
    mut outputs: Vec<Box<dyn Output>>,
) {
    let regions = regions(signals.config());
    let mut tick = tokio::time::interval(TICK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    // When the last evaluation started, and how long to wait from there.
    let mut last_run: Option<(Instant, Duration)> = None;
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            () = ingested.notified() => {}
        }
        if let Some((at, gap)) = last_run {
            let since = at.elapsed();
            if since < gap {
                tokio::time::sleep(gap - since).await;
            }
        }
        last_run = Some((Instant::now(), MIN_GAP));
        if !shared.connected() {
            continue;
        }
        let started = Instant::now();
        let now = shared.clock.now_ms();
        let (links, _) = shared.path_view();
        // The lock is held only to bring the snapshot up to date (nothing
        // copied when nothing changed); the engine runs without it.
        signals.refresh(&shared.read(), &links, now);
        let evaluation = signals.evaluate_refreshed(now);
        log_changes(&evaluation);
        let published = Arc::new(Published {
            evaluated_at_ms: Some(now),
            active: evaluation.active.clone(),
            disaster_level: evaluation.disaster_level.clone(),
            regions: regions.clone(),
            evaluation_seconds: started.elapsed().as_secs_f64(),
            site_looks: signals.looks(),
        });
        let round = Round {
            now_ms: now,
            evaluation: &evaluation,
            published: &published,
            vantage: signals.vantage(),
        };
        for output in &mut outputs {
            output.publish(&round);
        }
        last_run = Some((started, gap_after(started.elapsed())));
    }
}

fn log_changes(evaluation: &Evaluation) {
    for c in &evaluation.changes {
        let kind = match c.kind {
            ChangeKind::Raised => "raised",
            ChangeKind::Escalated => "escalated",
            ChangeKind::Deescalated => "deescalated",
            ChangeKind::Inhibited => "inhibited",
            ChangeKind::Released => "released",
            ChangeKind::Cleared => "cleared",
        };
        tracing::warn!(
            kind,
            site = c.site,
            level = %c.level,
            cause = %c.cause,
            subject = c.subject,
            severity = c.severity.as_str(),
            summary = c.summary,
            "signal {kind}"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::StateConfig;
    use sitewatch_protocol::decode;

    fn apply(state: &mut State, topic: &str, payload: &str, now: i64) {
        let msg = decode(topic, payload.as_bytes()).unwrap();
        state.apply(&msg, false, now);
    }

    #[test]
    fn snapshot_holds_fresh_series_and_lost_since() {
        let t0 = 1_764_080_000_000;
        let mut state = State::new(StateConfig::default());
        apply(
            &mut state,
            "sitewatch/v1/bj1/web-01/state",
            r#"{"v":1,"status":"online","ts":1764080000000,"interval_ms":5000,"sources":{"modbus":5000},"labels":{"zone":"a"}}"#,
            t0,
        );
        apply(
            &mut state,
            "sitewatch/v1/bj1/web-01/readings",
            r#"{"v":1,"seq":1,"ts":1764080000000,"readings":[{"src":"modbus","dev":"ups-a","name":"on_battery","q":"ups_on_battery","value":1,"state":"critical","labels":{"model":"x"}}]}"#,
            t0,
        );
        apply(
            &mut state,
            "sitewatch/v1/bj1/web-02/state",
            r#"{"v":1,"status":"offline","reason":"lost"}"#,
            t0 + 1000,
        );
        let snap = snapshot(&state, &[], &SignalsConfig::default(), t0, t0 + 2000);
        let site = snap.site("bj1").unwrap();
        assert_eq!(site.hosts.len(), 2);
        let web1 = &site.hosts[0];
        assert_eq!(web1.host, "web-01");
        assert_eq!(web1.liveness, sitewatch_signals::Liveness::Online);
        assert_eq!(web1.labels.get("zone").map(String::as_str), Some("a"));
        assert_eq!(web1.readings.len(), 1);
        assert_eq!(web1.readings[0].q, "ups_on_battery");
        assert_eq!(web1.readings[0].value, Some(1.0));
        assert_eq!(
            web1.readings[0].labels.get("model").map(String::as_str),
            Some("x")
        );
        assert_eq!(
            site.hosts[1].liveness,
            sitewatch_signals::Liveness::Lost {
                since_ms: t0 + 1000
            }
        );
        // Three modbus intervals later the series has expired: not in the snapshot.
        let later = snapshot(&state, &[], &SignalsConfig::default(), t0, t0 + 16_000);
        assert!(later.site("bj1").unwrap().hosts[0].readings.is_empty());
    }

    /// The kept snapshot is, at every instant, what a fresh one would be: over
    /// a heartbeat deadline, a series going stale, a new message and a link
    /// going down.
    #[test]
    fn the_kept_snapshot_is_always_what_a_fresh_one_would_be() {
        let t0 = 1_764_080_000_000;
        let mut state = State::new(StateConfig::default());
        apply(
            &mut state,
            "sitewatch/v1/bj1/web-01/state",
            r#"{"v":1,"status":"online","ts":1764080000000,"interval_ms":5000,"sources":{"modbus":2000}}"#,
            t0,
        );
        apply(
            &mut state,
            "sitewatch/v1/bj1/web-01/readings",
            r#"{"v":1,"seq":1,"ts":1764080000000,"readings":[{"src":"modbus","dev":"ups-a","name":"on_battery","q":"ups_on_battery","value":0,"state":"ok"}]}"#,
            t0,
        );
        apply(
            &mut state,
            "sitewatch/v1/bj1/web-02/state",
            r#"{"v":1,"status":"online","ts":1764080000000,"interval_ms":1000}"#,
            t0 + 300,
        );
        let mut signals = Signals::new(SignalsConfig::default(), t0);
        let up = [PathState::ALWAYS];
        let down = [PathState {
            connected: false,
            since_ms: 0,
        }];
        let mut rebuilt = 0;
        let mut last_taken = None;
        for step in 0..100 {
            let now = t0 + step * 250;
            if step == 40 {
                apply(
                    &mut state,
                    "sitewatch/v1/bj1/web-02/state",
                    r#"{"v":1,"status":"online","ts":1764080010000,"interval_ms":1000}"#,
                    now,
                );
            }
            let links: &[PathState] = if (60..70).contains(&step) { &down } else { &up };
            signals.refresh(&state, links, now);
            let kept = signals.cached.as_ref().unwrap();
            assert_eq!(
                kept.snapshot,
                snapshot(&state, links, &SignalsConfig::default(), t0, now),
                "at +{} ms",
                now - t0
            );
            if last_taken != Some(kept.taken_at_ms) {
                rebuilt += 1;
                last_taken = Some(kept.taken_at_ms);
            }
        }
        // Taken again only when something fell due or changed, not 100 times.
        assert!((4..30).contains(&rebuilt), "{rebuilt} snapshots");
    }

    /// Host by host: 30 hosts on 3 sites, a few touched at each step (new
    /// values, a will, a clean stop, a host forgotten, a new one), some series
    /// going stale, the links flapping; the kept snapshot equals a fresh one
    /// at every step.
    #[test]
    fn the_kept_snapshot_follows_each_host_it_was_told_about() {
        let t0 = 1_764_080_000_000;
        let mut state = State::new(StateConfig::default());
        let readings = |seq: u64, v: f64, extra: bool| {
            let more = if extra {
                r#",{"src":"ipmi","dev":"bmc","name":"Inlet Temp","q":"temperature_celsius","value":24,"state":"ok"}"#
            } else {
                ""
            };
            format!(
                r#"{{"v":1,"seq":{seq},"ts":1764080000000,"readings":[{{"src":"modbus","dev":"ups-a","name":"load","q":"ups_on_battery","value":{v},"state":"ok","labels":{{"phase":"a"}}}},{{"src":"modbus","dev":"ups-a","name":"load","q":"ups_on_battery","value":{v},"state":"ok","labels":{{"phase":"b"}}}}{more}]}}"#
            )
        };
        for h in 0..30 {
            let topic = format!("sitewatch/v1/s{}/h{h:02}/state", h % 3);
            let interval = 1000 * (1 + h % 4);
            apply(
                &mut state,
                &topic,
                &format!(
                    r#"{{"v":1,"status":"online","ts":1764080000000,"interval_ms":{interval},"sources":{{"modbus":{interval},"ipmi":500}}}}"#
                ),
                t0,
            );
            let topic = format!("sitewatch/v1/s{}/h{h:02}/readings", h % 3);
            apply(&mut state, &topic, &readings(1, 0.1, h % 2 == 0), t0);
        }
        let mut signals = Signals::new(SignalsConfig::default(), t0);
        let up = [PathState::ALWAYS];
        let down = [PathState {
            connected: false,
            since_ms: 0,
        }];
        let mut seq = 1;
        let mut given: BTreeMap<u64, HostSnapshot> = BTreeMap::new();
        for step in 0..160i64 {
            let now = t0 + step * 200;
            seq += 1;
            // Every step some hosts speak: which ones moves with the step.
            for h in (0..30).filter(|h| (h * 7 + step) % 11 == 0) {
                let topic = format!("sitewatch/v1/s{}/h{h:02}/readings", h % 3);
                apply(
                    &mut state,
                    &topic,
                    &readings(seq, step as f64 / 100.0, step % 3 == 0),
                    now,
                );
            }
            match step {
                20 => apply(
                    &mut state,
                    "sitewatch/v1/s1/h04/state",
                    r#"{"v":1,"status":"offline","reason":"lost"}"#,
                    now,
                ),
                35 => apply(
                    &mut state,
                    "sitewatch/v1/s2/h05/state",
                    r#"{"v":1,"status":"offline","reason":"shutdown"}"#,
                    now,
                ),
                50 => state.forget("s0", "h03"),
                // Arrivals: after the last host of a site, before the first,
                // several at once in new sites sorting first, last and between.
                70 => arrive(&mut state, &["s0/h99"], now),
                75 => arrive(&mut state, &["s1/a00", "s1/h50"], now),
                80 => arrive(&mut state, &["r9/x1", "t1/x2", "s05/x3", "r9/x0"], now),
                _ => {}
            }
            let links: &[PathState] = if (90..95).contains(&step) { &down } else { &up };
            let numbers_before = numbers_by_host(signals.cached.as_ref());
            signals.refresh(&state, links, now);
            let cached = signals.cached.as_ref().unwrap();
            if [70, 75, 80].contains(&step) {
                // Placed among the others: only the hosts that spoke or fell
                // due this step were taken again, not the whole snapshot.
                let numbers_after = numbers_by_host(Some(cached));
                let kept = numbers_before
                    .iter()
                    .filter(|(host, n)| numbers_after.get(*host) == Some(*n))
                    .count();
                assert!(
                    kept * 2 > numbers_before.len(),
                    "step {step}: {kept} of {} hosts kept their number",
                    numbers_before.len()
                );
            }
            let kept = &cached.snapshot;
            let fresh = snapshot(&state, links, &SignalsConfig::default(), t0, now);
            assert_eq!(kept, &fresh, "step {step} (+{} ms)", now - t0);
            // The engine's promise: a host's number comes back only with the
            // same content (its index is kept under it).
            assert_eq!(cached.host_revisions.len(), kept.sites.len());
            for (site, numbers) in kept.sites.iter().zip(&cached.host_revisions) {
                assert_eq!(numbers.len(), site.hosts.len(), "step {step}");
                for (host, number) in site.hosts.iter().zip(numbers) {
                    let before = given.entry(*number).or_insert_with(|| host.clone());
                    assert_eq!(before, host, "step {step}: number {number} reused");
                }
            }
        }
        // Most steps gave a host again under the number it had.
        assert!(given.len() < 30 * 160 / 2, "{} numbers", given.len());
    }

    /// New hosts (`site/host`) saying they are online.
    fn arrive(state: &mut State, hosts: &[&str], now: i64) {
        for h in hosts {
            apply(
                state,
                &format!("sitewatch/v1/{h}/state"),
                r#"{"v":1,"status":"online","ts":1764080014000,"interval_ms":1000}"#,
                now,
            );
        }
    }

    /// By `site/host`: the number the kept snapshot gives the host.
    fn numbers_by_host(cached: Option<&Cached>) -> BTreeMap<String, u64> {
        let Some(c) = cached else {
            return BTreeMap::new();
        };
        c.snapshot
            .sites
            .iter()
            .zip(&c.host_revisions)
            .flat_map(|(site, numbers)| {
                site.hosts
                    .iter()
                    .zip(numbers)
                    .map(|(h, n)| (format!("{}/{}", site.site, h.host), *n))
            })
            .collect()
    }

    #[test]
    fn evaluations_are_spaced_by_their_cost_between_the_min_gap_and_the_tick() {
        assert_eq!(gap_after(Duration::from_millis(5)), MIN_GAP);
        assert_eq!(
            gap_after(Duration::from_millis(100)),
            Duration::from_millis(300)
        );
        assert_eq!(gap_after(Duration::from_millis(900)), TICK);
    }

    #[test]
    fn regions_come_from_configured_sites_that_have_one() {
        let c: SignalsConfig =
            toml::from_str("[sites.bj1]\nregion = \"cn-north\"\n[sites.sh1]\n").unwrap();
        let r = regions(&c);
        assert_eq!(r.len(), 1);
        assert_eq!(r.get("bj1").map(String::as_str), Some("cn-north"));
    }
}
