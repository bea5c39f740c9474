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

use sitewatch_protocol::Signal;
use sitewatch_signals::{
    ChangeKind, Engine, Evaluation, HostSnapshot, SeriesSnapshot, SignalsConfig, SiteSnapshot,
    Snapshot,
};
use tokio::sync::Notify;

use crate::Shared;
use crate::liveness::PathState;
use crate::output::{Output, Round};
use crate::state::State;

/// The engine is evaluated at least this often.
pub const TICK: Duration = Duration::from_secs(1);
/// ...and after ingest, but not more often than this: a burst of a thousand
/// batches is one evaluation, not a thousand.
pub const MIN_GAP: Duration = Duration::from_millis(200);

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
}

/// A snapshot and what it holds for: taken at `taken_at_ms` from the state at
/// `generation` with these links, it is what [`snapshot`] would give at any
/// `now` in `taken_at_ms..valid_until_ms` as long as neither moves (no message,
/// no prune, no link change). Only the vantage (peers' views age) is taken
/// again at every tick.
#[derive(Debug)]
struct Cached {
    generation: u64,
    links: Vec<PathState>,
    taken_at_ms: i64,
    valid_until_ms: i64,
    snapshot: Snapshot,
}

impl Cached {
    fn holds(&self, state: &State, links: &[PathState], now_ms: i64) -> bool {
        self.generation == state.generation()
            && self.links == links
            && (self.taken_at_ms..self.valid_until_ms).contains(&now_ms)
    }
}

impl Signals {
    /// An engine whose startup grace counts from `started_at_ms` (the collector's
    /// start, or a replay's first instant).
    pub fn new(config: SignalsConfig, started_at_ms: i64) -> Self {
        Signals {
            engine: Engine::new(config, started_at_ms),
            cached: None,
        }
    }

    pub fn config(&self) -> &SignalsConfig {
        self.engine.config()
    }

    /// Evaluates the state as it is at `now_ms`, its paths judged against the
    /// links' states (`links`, by path; empty: always up).
    pub fn evaluate(&mut self, state: &State, links: &[PathState], now_ms: i64) -> Evaluation {
        let snapshot = snapshot(state, links, self.engine.started_at_ms(), now_ms);
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
            Some(c) if c.holds(state, links, now_ms) => {
                c.snapshot.vantage =
                    state
                        .peers()
                        .vantage(links, &state.config().rules, started, now_ms);
            }
            _ => {
                let (snapshot, valid_until_ms) = snapshot_until(state, links, started, now_ms);
                self.cached = Some(Cached {
                    generation: state.generation(),
                    links: links.to_vec(),
                    taken_at_ms: now_ms,
                    valid_until_ms,
                    snapshot,
                });
            }
        }
    }

    /// Evaluates the snapshot [`Signals::refresh`] brought to `now_ms` (outside
    /// the state's lock). Before any refresh: an empty snapshot.
    pub fn evaluate_refreshed(&mut self, now_ms: i64) -> Evaluation {
        match &self.cached {
            Some(c) => self.engine.evaluate(&c.snapshot, now_ms),
            None => self.engine.evaluate(&Snapshot::default(), now_ms),
        }
    }

    /// The vantage of the snapshot last refreshed.
    pub fn vantage(&self) -> Option<&sitewatch_signals::Vantage> {
        self.cached
            .as_ref()
            .and_then(|c| c.snapshot.vantage.as_ref())
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
/// labels, and its series not expired at `now_ms`; with a topology, where this
/// collector stands among its peers.
pub fn snapshot(state: &State, links: &[PathState], started_at_ms: i64, now_ms: i64) -> Snapshot {
    snapshot_until(state, links, started_at_ms, now_ms).0
}

/// [`snapshot`], and the first instant at which time alone makes it untrue:
/// a host's heartbeat deadline passing, or a series going stale (`i64::MAX`
/// when none can).
fn snapshot_until(
    state: &State,
    links: &[PathState],
    started_at_ms: i64,
    now_ms: i64,
) -> (Snapshot, i64) {
    let mut valid_until = i64::MAX;
    let strings = state.strings();
    // (site, host) -> host; BTreeMaps so that the snapshot's order, and with it
    // everything downstream, does not depend on hash or slot order.
    let mut sites: BTreeMap<&str, BTreeMap<&str, HostSnapshot>> = BTreeMap::new();
    for (_, h) in state.hosts() {
        let site = strings.resolve(h.site);
        let host = strings.resolve(h.host);
        let liveness = state.observed(h, links, now_ms).observed;
        if let Some(at) = state.observed_changes_at(h, links, now_ms) {
            valid_until = valid_until.min(at);
        }
        let mut snap = HostSnapshot::new(host, liveness);
        snap.labels.clone_from(&h.labels);
        sites.entry(site).or_default().insert(host, snap);
    }
    for r in state.readings(now_ms) {
        valid_until = valid_until.min(r.stale_at_ms);
        let Some(host) = sites.get_mut(r.site).and_then(|s| s.get_mut(r.host)) else {
            continue;
        };
        host.readings.push(SeriesSnapshot {
            src: r.src.to_owned(),
            dev: r.dev.to_owned(),
            name: r.name.to_owned(),
            q: r.q.to_owned(),
            value: r.value,
            state: r.state,
            ts_ms: r.ts_ms,
            labels: r
                .labels
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
        });
    }
    let vantage = state
        .peers()
        .vantage(links, &state.config().rules, started_at_ms, now_ms);
    let mut snapshot = Snapshot::new(
        sites
            .into_iter()
            .map(|(site, hosts)| {
                let mut hosts: Vec<HostSnapshot> = hosts.into_values().collect();
                for h in &mut hosts {
                    h.readings.sort_by(|a, b| {
                        (&a.q, &a.src, &a.dev, &a.name).cmp(&(&b.q, &b.src, &b.dev, &b.name))
                    });
                }
                SiteSnapshot::new(site, hosts)
            })
            .collect(),
    );
    snapshot.vantage = vantage;
    (snapshot, valid_until)
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
    let mut last_run: Option<Instant> = None;
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            () = ingested.notified() => {}
        }
        if let Some(at) = last_run {
            let since = at.elapsed();
            if since < MIN_GAP {
                tokio::time::sleep(MIN_GAP - since).await;
            }
        }
        last_run = Some(Instant::now());
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
        let snap = snapshot(&state, &[], t0, t0 + 2000);
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
        let later = snapshot(&state, &[], t0, t0 + 16_000);
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
                snapshot(&state, links, t0, now),
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

    #[test]
    fn regions_come_from_configured_sites_that_have_one() {
        let c: SignalsConfig =
            toml::from_str("[sites.bj1]\nregion = \"cn-north\"\n[sites.sh1]\n").unwrap();
        let r = regions(&c);
        assert_eq!(r.len(), 1);
        assert_eq!(r.get("bj1").map(String::as_str), Some("cn-north"));
    }
}
