//! `/metrics`: a prometheus-client [`Collector`] that encodes the live state at each
//! scrape, and the names of every metric the collector exposes.
//!
//! # What is exposed
//!
//! - `sitewatch_<q>{site,host,src,dev,sensor,<reading labels>}`: the latest
//!   value of every reading not yet expired, one family per quantity `q`: a
//!   counter when `q` ends in `_total` (the contract's mark), a gauge otherwise,
//!   with the unit its name ends in. HELP is the vocabulary's description when
//!   `q` is in it. A reading whose value is `null` has no sample here. A gauge
//!   `q` is not exposed while a counter `q_total` is (one name, two types); its
//!   series are counted in `sitewatch_collector_shadowed_series`.
//! - `sitewatch_reading_state{site,host,src,dev,sensor,quantity,<reading labels>,state}`
//!   (gauge, always 1): one sample per reading whose state is `warning`, `critical`
//!   or `unknown`. An `ok` reading has none: its value sample says it is there and
//!   fine. This keeps the companion's cardinality to the readings in trouble
//!   instead of doubling the exposition, and a state change moves the sample to a
//!   new `state` label. A reading label that is itself named `quantity` or `state`
//!   is written as `label_quantity` / `label_state` here.
//! - `sitewatch_agent_up{site,host}`: 1 online, 0 lost, shut down or in maintenance.
//! - `sitewatch_agent_status{site,host,status}`: one sample per status
//!   (`online|lost|shutdown|maintenance`), 1 for the current one.
//! - `sitewatch_agent_last_seen_timestamp_seconds{site,host}`.
//! - `sitewatch_signal_active{site,level,cause,subject,severity}` (gauge, always 1):
//!   one sample per signal the engine publishes (inhibited L2s are not published:
//!   they are evidence of their L3).
//! - `sitewatch_site_disaster_level{site}`: the engine's level for every known site
//!   (sites with agents, and configured ones), 0 when none. Advisories (severity
//!   low) do not raise it.
//! - `sitewatch_site_info{site,region}` (always 1): each configured site with a
//!   region, for the PromQL mirror's L4 rule to join on.
//! - `sitewatch_collector_*`: the collector's own counters and gauges (below),
//!   among them `alertmanager_alerts_sent_total`, `alertmanager_errors_total{kind}`
//!   and `signal_evaluation_seconds`.

use std::fmt;
use std::sync::Arc;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, NoLabelSet};
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Registry;
use sitewatch_protocol::{ReadingState, Rejection, quantity};

use crate::Shared;
use crate::intern::Id;
use crate::link::{FailureKind, LinkStatus};
use crate::liveness::{AgentStatus, PathState};
use crate::series::{SeriesKey, SeriesValue};
use crate::signals::Published;
use crate::state::{DropReason, HostLimit, Judge, MESSAGE_KINDS, State};

mod text;

/// How much a streamed `/metrics` gathers before sending it on.
pub(crate) use text::FLUSH_AT;
use text::{Prefix, Text};

/// Every metric name in one place. Counter names are given without `_total`: the
/// encoder appends it.
pub mod names {
    /// Each reading's family is this prefix followed by its quantity.
    pub const READING_PREFIX: &str = "sitewatch_";
    pub const READING_STATE: &str = "sitewatch_reading_state";
    pub const AGENT_UP: &str = "sitewatch_agent_up";
    pub const AGENT_STATUS: &str = "sitewatch_agent_status";
    pub const AGENT_LAST_SEEN: &str = "sitewatch_agent_last_seen_timestamp_seconds";
    pub const SITE_DISASTER_LEVEL: &str = "sitewatch_site_disaster_level";
    pub const SIGNAL_ACTIVE: &str = "sitewatch_signal_active";
    pub const SITE_INFO: &str = "sitewatch_site_info";
    pub const SIGNAL_EVALUATION: &str = "sitewatch_collector_signal_evaluation_seconds";
    pub const SITE_EVALUATIONS: &str = "sitewatch_collector_site_evaluations";
    pub const ALERTMANAGER_ALERTS_SENT: &str = "sitewatch_collector_alertmanager_alerts_sent";
    pub const ALERTMANAGER_ERRORS: &str = "sitewatch_collector_alertmanager_errors";
    pub const REJECTED_MESSAGES: &str = "sitewatch_collector_rejected_messages";
    pub const DUPLICATE_MESSAGES: &str = "sitewatch_collector_duplicate_messages";
    pub const DUPLICATE_EVENTS: &str = "sitewatch_collector_duplicate_events";
    pub const SEQUENCE_GAPS: &str = "sitewatch_collector_sequence_gaps";
    pub const SEQUENCE_RESTARTS: &str = "sitewatch_collector_sequence_restarts";
    pub const MESSAGES: &str = "sitewatch_collector_messages";
    pub const READINGS: &str = "sitewatch_collector_readings";
    pub const DROPPED_READINGS: &str = "sitewatch_collector_dropped_readings";
    pub const SERIES: &str = "sitewatch_collector_series";
    pub const REFUSED_HOSTS: &str = "sitewatch_collector_refused_host_messages";
    pub const FORGOTTEN_HOSTS: &str = "sitewatch_collector_forgotten_hosts";
    pub const STRINGS: &str = "sitewatch_collector_interned_strings";
    pub const HOSTS: &str = "sitewatch_collector_hosts";
    pub const BROKER_CONNECTED: &str = "sitewatch_collector_broker_connected";
    pub const BROKER_CONNECTIONS: &str = "sitewatch_collector_broker_connections";
    pub const BROKER_FAILURES: &str = "sitewatch_collector_broker_failures";
    pub const BROKER_MESSAGES: &str = "sitewatch_collector_broker_messages";
    pub const AGENT_PATH_UP: &str = "sitewatch_agent_path_up";
    pub const SIGNALS_PUBLISHED: &str = "sitewatch_collector_signals_published";
    pub const PEER_UP: &str = "sitewatch_collector_peer_up";
    pub const PEER_IGNORED: &str = "sitewatch_collector_peer_messages_ignored";
    pub const SHADOWED_SERIES: &str = "sitewatch_collector_shadowed_series";
    // The HTTP side's own (web::stats).
    pub const HTTP_OPEN_CONNECTIONS: &str = "sitewatch_collector_http_open_connections";
    pub const HTTP_CONNECTIONS: &str = "sitewatch_collector_http_connections";
    pub const HTTP_CONNECTION_ERRORS: &str = "sitewatch_collector_http_connection_errors";
    pub const HTTP_REQUESTS_DENIED: &str = "sitewatch_collector_http_requests_denied";
    pub const HTTP_REQUEST_TIMEOUTS: &str = "sitewatch_collector_http_request_timeouts";
    pub const WEB_CONFIG_RELOADS: &str = "sitewatch_collector_web_config_reloads";

    /// Whether a reading's quantity is reserved: its `sitewatch_<q>` family
    /// could collide with the collector's own metrics, present or future (the
    /// contract's rule, `sitewatch_protocol::quantity::is_reserved`). Such
    /// readings are dropped and counted
    /// (`dropped_readings_total{reason="reserved_quantity"}`).
    pub fn is_reserved_quantity(src: &str, q: &str) -> bool {
        sitewatch_protocol::quantity::is_reserved(src, q)
    }
}

/// The exposition formats `/metrics` speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// Prometheus text format 0.0.4: what `promtool check metrics` validates.
    Prometheus,
    /// OpenMetrics text 1.0.0, when the scraper's `Accept` asks for it.
    OpenMetrics,
}

impl Format {
    /// Picks the format from an `Accept` header.
    pub fn from_accept(accept: Option<&str>) -> Self {
        match accept {
            Some(a) if a.contains("application/openmetrics-text") => Format::OpenMetrics,
            _ => Format::Prometheus,
        }
    }

    pub fn content_type(self) -> &'static str {
        match self {
            Format::Prometheus => prometheus_client::encoding::prometheus_text::CONTENT_TYPE,
            Format::OpenMetrics => "application/openmetrics-text; version=1.0.0; charset=utf-8",
        }
    }
}

/// What `/metrics` encodes: the readings of the shared state, written by hand
/// ([`text`]: a million series a scrape), followed by a prometheus-client
/// registry holding the rest of the state (agents, signals, the collector's
/// own) and whatever the outputs and the broker register there.
#[derive(Debug)]
pub struct Exposition {
    shared: Arc<Shared>,
    registry: Registry,
}

impl Exposition {
    /// The exposition of `shared`, its registry holding the state's own metrics.
    pub fn new(shared: Arc<Shared>) -> Self {
        let mut registry = Registry::default();
        registry.register_collector(Box::new(StateCollector {
            shared: Arc::clone(&shared),
        }));
        Exposition { shared, registry }
    }

    /// Where the outputs, the broker and the HTTP side register their metrics.
    pub fn registry_mut(&mut self) -> &mut Registry {
        &mut self.registry
    }

    /// Encodes everything in a format, handing it to `sink` as it goes, in
    /// chunks of about a megabyte (the last one smaller), each with the
    /// state's lock released: what `/metrics` streams, so that a scrape of a
    /// million series neither builds 100 MB in memory nor waits for the
    /// encoding to end before sending. `sink` returning `false` (the client
    /// went away) stops the encoding; then `Ok(false)`.
    pub fn render_to(
        &self,
        format: Format,
        sink: &mut dyn FnMut(String) -> bool,
    ) -> Result<bool, fmt::Error> {
        let chunk = || String::with_capacity(FLUSH_AT + FLUSH_AT / 2);
        let mut out = chunk();
        let mut going = true;
        {
            let mut hand_on = |buf: &mut String| {
                going = sink(std::mem::replace(buf, chunk()));
                going
            };
            let now = self.shared.clock.now_ms();
            encode_readings_locked(
                &|| self.shared.read(),
                now,
                &mut Text::streaming(&mut out, format, &mut hand_on),
            );
        }
        if !going {
            return Ok(false);
        }
        match format {
            Format::Prometheus => {
                prometheus_client::encoding::prometheus_text::encode(&mut out, &self.registry)?
            }
            Format::OpenMetrics => {
                prometheus_client::encoding::text::encode(&mut out, &self.registry)?
            }
        }
        Ok(sink(out))
    }

    /// Encodes everything in a format, as one string.
    pub fn render(&self, format: Format) -> Result<String, fmt::Error> {
        let mut whole = String::new();
        self.render_to(format, &mut |chunk| {
            if whole.is_empty() {
                whole = chunk;
            } else {
                whole.push_str(&chunk);
            }
            true
        })?;
        Ok(whole)
    }
}

/// Encodes the state but its readings at each scrape.
#[derive(Debug)]
struct StateCollector {
    shared: Arc<Shared>,
}

impl Collector for StateCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), fmt::Error> {
        let now = self.shared.clock.now_ms();
        let links = self.shared.links();
        let (states, names) = self.shared.path_view();
        let judge = Judge {
            policy: self.shared.policy(),
            links: &states,
            names: &names,
        };
        // The readings are written before the registry, by hand, taking the
        // lock in short holds (`encode_readings_locked`); the rest (per host,
        // not per series) takes it once.
        let signals = self.shared.signals();
        let state = self.shared.read();
        encode_hosts_and_self(&state, &signals, &judge, now, &mut encoder)?;
        encode_peers(
            &state,
            &states,
            self.shared.started_at_ms,
            now,
            &mut encoder,
        )?;
        drop(state);
        encode_links(&links, &mut encoder)
    }
}

/// How a quantity's family is described: its name without unit and `_total`,
/// its unit and its type.
///
/// The writer appends `_<unit>` itself (and OpenMetrics gets a `# UNIT` line),
/// and `_total` to a counter's samples (and, in the Prometheus text format, to
/// its HELP/TYPE lines), so both are taken off here: `network_receive_bytes_total`
/// is the counter family `sitewatch_network_receive` with unit bytes, exposed as
/// `sitewatch_network_receive_bytes_total`. A `q` without `_total` is a gauge.
struct FamilyName {
    /// `sitewatch_<q>` without the unit and `_total`.
    base: String,
    unit: Option<&'static str>,
    metric_type: MetricType,
}

impl FamilyName {
    fn of(q: &str) -> Self {
        let (name, metric_type) = match quantity::counter_base(q) {
            Some(base) => (base, MetricType::Counter),
            None => (q, MetricType::Gauge),
        };
        let unit = quantity::unit(q);
        let full = format!("{}{name}", names::READING_PREFIX);
        let base = match unit {
            Some(u) => full
                .strip_suffix(u)
                .and_then(|s| s.strip_suffix('_'))
                .map(str::to_owned)
                .unwrap_or(full),
            None => full,
        };
        FamilyName {
            base,
            unit,
            metric_type,
        }
    }

    /// The OpenMetrics family name (`base` and unit): a gauge `q` and a counter
    /// `q_total` share it, which one exposition cannot hold twice.
    fn family(&self) -> String {
        match self.unit {
            Some(u) => format!("{}_{u}", self.base),
            None => self.base.clone(),
        }
    }
}

/// What follows the readings: the agents, the signals, the collector's own.
fn encode_hosts_and_self(
    state: &State,
    signals: &Published,
    judge: &Judge<'_>,
    now_ms: i64,
    encoder: &mut DescriptorEncoder,
) -> Result<(), fmt::Error> {
    encode_agents(state, judge, now_ms, encoder)?;
    encode_signals(state, signals, encoder)?;
    encode_self(state, signals, encoder)
}

/// How many series a scrape encodes under one hold of the state's read lock:
/// about 10-20 ms of encoding, so that ingest, which needs the write lock,
/// waits at most that long however many series a family has.
const SERIES_PER_HOLD: usize = 16_384;

/// The readings' families, taking the state through `lock` once to list them
/// and then once per [`SERIES_PER_HOLD`] series: a scrape at a million series
/// (one family of them, in a fleet that reports one quantity per server
/// sensor) never holds the lock for the whole encoding, so ingest goes on
/// between holds. A family's series (keys and values, 48 B each, given back
/// after the family) are copied at its first hold, in the map's order (one
/// pass through its memory), and sorted by host outside the lock; the later
/// holds resolve their hosts and names (see [`for_each_exposed`]). So a
/// family is exposed as it was at its first hold, and a series added
/// meanwhile waits for the next scrape, as a value written just after any
/// exporter's scrape does.
fn encode_readings_locked<G: std::ops::Deref<Target = State>>(
    lock: &dyn Fn() -> G,
    now_ms: i64,
    text: &mut Text,
) {
    // Families sorted by name: a stable exposition is easier to read and diff.
    // A gauge `q` and a counter `q_total` (an agent fleet halfway through the
    // counter rename) would make two families of one name, which OpenMetrics
    // forbids: the counter is exposed, the gauge's series are counted as shadowed.
    let (families, counter_families) = {
        let state = lock();
        let strings = state.strings();
        let mut families: Vec<String> = state
            .families()
            .map(|(q, _)| strings.resolve(q).to_owned())
            .collect();
        families.sort_unstable();
        let counter_families: std::collections::HashSet<String> = state
            .families()
            .filter(|(q, f)| {
                quantity::is_counter(strings.resolve(*q)) && has_sample(&state, now_ms, f)
            })
            .map(|(q, _)| FamilyName::of(strings.resolve(q)).family())
            .collect();
        (families, counter_families)
    };
    let mut shadowed = 0u64;
    // The series whose state is not ok, by family: their `sitewatch_reading_state`
    // samples come after every family (a metric's samples must be together).
    let mut troubled: Vec<(&str, Copied)> = Vec::new();
    for q in &families {
        let name = FamilyName::of(q);
        let counter = name.metric_type == MetricType::Counter;
        let listed = {
            let state = lock();
            state.family_named(q).map(|f| {
                let copied = Copied {
                    series: f.series.iter().map(|(k, v)| (*k, *v)).collect(),
                    hosts_generation: state.hosts_generation(),
                };
                (copied, has_sample(&state, now_ms, f))
            })
        };
        let Some((mut copied, sampled)) = listed else {
            continue;
        };
        // By host, outside the lock: a host's series then come together, and
        // its names are read while still in cache instead of one cache miss
        // per label of a series picked at random (the map's order).
        copied.series.sort_unstable_by_key(|(k, _)| *k);
        // A family whose readings are all null or expired has no sample, and then no
        // HELP/TYPE either. (This stops at the first sample in the usual case.)
        let clash = !counter && counter_families.contains(&name.family());
        let sample_name = (!clash && sampled).then(|| {
            let help = quantity::describe(q).map_or_else(
                || {
                    if counter {
                        format!("Counter {q} reported by sitewatch agents.")
                    } else {
                        format!("Reading of quantity {q} reported by sitewatch agents.")
                    }
                },
                str::to_owned,
            );
            text.descriptor(&name.base, &help, name.unit, name.metric_type)
        });
        let mut not_ok = Vec::new();
        // The start of the lines of the last (host, source, device) run; the
        // generation in its key because a sweep may give an id another name.
        let mut prefix: Option<((u64, u32, Id, Id), Prefix)> = None;
        let go_on = for_each_exposed(
            lock,
            q,
            &copied,
            now_ms,
            text,
            |text, state, key, value, host| {
                if value.state != ReadingState::Ok {
                    not_ok.push((*key, *value));
                }
                let Some(v) = value.value() else {
                    return;
                };
                let Some(sample_name) = &sample_name else {
                    shadowed += u64::from(clash);
                    return;
                };
                let strings = state.strings();
                let run = (state.hosts_generation(), key.host, key.src, key.dev);
                let start = match &mut prefix {
                    Some((of, start)) if *of == run => start,
                    slot => {
                        let labels = [
                            ("site", strings.resolve(host.site)),
                            ("host", strings.resolve(host.host)),
                            ("src", strings.resolve(key.src)),
                            ("dev", strings.resolve(key.dev)),
                        ];
                        &mut slot.insert((run, Prefix::new(sample_name, &labels))).1
                    }
                };
                let mut sample = text
                    .sample_after(start)
                    .label("sensor", strings.resolve(key.name));
                for (k, v) in state.labelsets().resolve(key.labels) {
                    sample = sample.label(strings.resolve(*k), strings.resolve(*v));
                }
                sample.value(v);
            },
        );
        if !go_on {
            return;
        }
        if !not_ok.is_empty() {
            troubled.push((
                q,
                Copied {
                    series: not_ok,
                    hosts_generation: copied.hosts_generation,
                },
            ));
        }
    }
    let shadowed_name = text.descriptor(
        names::SHADOWED_SERIES,
        "Series of a gauge quantity not exposed because a counter of the same name (its \
         quantity with _total) is: agents halfway through the counter rename.",
        None,
        MetricType::Gauge,
    );
    text.sample(&shadowed_name)
        .int(i64::try_from(shadowed).unwrap_or(i64::MAX));
    if troubled.is_empty() {
        return;
    }
    let state_name = text.descriptor(
        names::READING_STATE,
        "1 for each reading whose state is warning, critical or unknown (ok readings have no \
         sample here).",
        None,
        MetricType::Gauge,
    );
    for (q, copied) in &troubled {
        let go_on = for_each_exposed(
            lock,
            q,
            copied,
            now_ms,
            text,
            |text, state, key, value, host| {
                // Back to ok since the family was encoded (a host gone meanwhile
                // had it looked up again): no sample.
                if value.state == ReadingState::Ok {
                    return;
                }
                let strings = state.strings();
                let mut sample = text
                    .sample(&state_name)
                    .label("site", strings.resolve(host.site))
                    .label("host", strings.resolve(host.host))
                    .label("src", strings.resolve(key.src))
                    .label("dev", strings.resolve(key.dev))
                    .label("sensor", strings.resolve(key.name))
                    .label("quantity", q);
                for (k, v) in state.labelsets().resolve(key.labels) {
                    // A reading label named like one of this family's own.
                    let k = match strings.resolve(*k) {
                        "state" => "label_state",
                        "quantity" => "label_quantity",
                        k => k,
                    };
                    sample = sample.label(k, strings.resolve(*v));
                }
                sample.label("state", value.state.as_str()).int(1);
            },
        );
        if !go_on {
            return;
        }
    }
}

/// A family's series as they were at a scrape's first hold of it.
struct Copied {
    series: Vec<(SeriesKey, SeriesValue)>,
    /// The state's [`State::hosts_generation`] then: while it has not moved,
    /// every host slot and name id in `series` still means what it meant.
    hosts_generation: u64,
}

/// Calls `f` with each series of family `q` in `copied` that is not expired
/// at `now_ms` and whose host is still there, taking the state through `lock`
/// once per [`SERIES_PER_HOLD`] series and handing what was written on
/// between holds (`false`: its receiver is gone). The values are those copied, unless a
/// host left or the names were swept since: a slot or an id may then mean
/// another host or name, and each series is looked up again (skipped if gone).
fn for_each_exposed<G: std::ops::Deref<Target = State>>(
    lock: &dyn Fn() -> G,
    q: &str,
    copied: &Copied,
    now_ms: i64,
    text: &mut Text,
    mut f: impl FnMut(&mut Text, &State, &SeriesKey, &SeriesValue, &crate::state::Host),
) -> bool {
    for chunk in copied.series.chunks(SERIES_PER_HOLD) {
        let family_gone = {
            let state = lock();
            if state.hosts_generation() == copied.hosts_generation {
                for (key, value) in chunk {
                    if let Some((key, value, host)) = exposed(&state, now_ms, (key, value)) {
                        f(text, &state, key, value, host);
                    }
                }
                false
            } else if let Some(family) = state.family_named(q) {
                for (key, _) in chunk {
                    let Some((key, value)) = family.series.get_key_value(key) else {
                        continue;
                    };
                    if let Some((key, value, host)) = exposed(&state, now_ms, (key, value)) {
                        f(text, &state, key, value, host);
                    }
                }
                false
            } else {
                true
            }
        };
        // The lock is released: handing on may wait for the client.
        if !text.between_holds() {
            return false;
        }
        if family_gone {
            break;
        }
    }
    true
}

/// Whether a family has a value to expose at `now_ms`.
fn has_sample(state: &State, now_ms: i64, family: &crate::series::Family) -> bool {
    family
        .series
        .iter()
        .filter_map(|kv| exposed(state, now_ms, kv))
        .any(|(_, v, _)| v.value().is_some())
}

/// A series with its host, unless it expired at `now_ms`.
fn exposed<'a>(
    state: &'a State,
    now_ms: i64,
    (key, value): (&'a SeriesKey, &'a SeriesValue),
) -> Option<(&'a SeriesKey, &'a SeriesValue, &'a crate::state::Host)> {
    let host = state.host(key.host)?;
    if value.is_stale(state.stale_after_ms(host, key.src), now_ms) {
        return None;
    }
    Some((key, value, host))
}

fn encode_agents(
    state: &State,
    judge: &Judge<'_>,
    now_ms: i64,
    encoder: &mut DescriptorEncoder,
) -> Result<(), fmt::Error> {
    let strings = state.strings();
    let mut hosts: Vec<(&str, &str, AgentStatus, Option<i64>)> = state
        .hosts()
        .map(|(_, h)| {
            (
                strings.resolve(h.site),
                strings.resolve(h.host),
                state.verdict(h, judge, now_ms).status,
                h.last_seen_ms,
            )
        })
        .collect();
    let unseen = state.unseen_expected(judge, now_ms);
    hosts.extend(
        unseen
            .iter()
            .map(|i| (i.site.as_str(), i.host.as_str(), i.status, None)),
    );
    hosts.sort_unstable_by_key(|(site, host, _, _)| (*site, *host));

    let mut up = encoder.encode_descriptor(
        names::AGENT_UP,
        "1 when the agent is online, 0 when lost, shut down or in maintenance.",
        None,
        MetricType::Gauge,
    )?;
    for (site, host, status, _) in &hosts {
        let labels = [("site", *site), ("host", *host)];
        up.encode_family(&labels)?
            .encode_gauge(&i64::from(status.is_up()))?;
    }
    let mut st = encoder.encode_descriptor(
        names::AGENT_STATUS,
        "1 for the agent's current status (online, lost, shutdown, maintenance, unknown), 0 \
         for the others.",
        None,
        MetricType::Gauge,
    )?;
    for (site, host, status, _) in &hosts {
        for s in AgentStatus::ALL {
            let labels = [("site", *site), ("host", *host), ("status", s.as_str())];
            st.encode_family(&labels)?
                .encode_gauge(&i64::from(s == *status))?;
        }
    }
    encode_paths(state, judge, now_ms, encoder)?;
    if hosts.iter().any(|h| h.3.is_some()) {
        let mut seen = encoder.encode_descriptor(
            names::AGENT_LAST_SEEN,
            "When the agent was last heard from (Unix time in seconds).",
            None,
            MetricType::Gauge,
        )?;
        for (site, host, _, last_seen) in &hosts {
            if let Some(ms) = last_seen {
                let labels = [("site", *site), ("host", *host)];
                seen.encode_family(&labels)?
                    .encode_gauge(&(*ms as f64 / 1000.0))?;
            }
        }
    }
    Ok(())
}

fn encode_signals(
    state: &State,
    signals: &Published,
    encoder: &mut DescriptorEncoder,
) -> Result<(), fmt::Error> {
    if !signals.active.is_empty() {
        let mut active = encoder.encode_descriptor(
            names::SIGNAL_ACTIVE,
            "1 for each active disaster signal (L1-L4) of a site.",
            None,
            MetricType::Gauge,
        )?;
        for s in &signals.active {
            let labels = [
                ("site", s.site.as_str()),
                ("level", s.level.as_str()),
                ("cause", s.cause.as_str()),
                ("subject", s.subject.as_str()),
                ("severity", s.severity.as_str()),
            ];
            active.encode_family(&labels)?.encode_gauge(&1i64)?;
        }
    }
    let mut sites = state.sites();
    sites.extend(signals.disaster_level.keys().map(String::as_str));
    sites.extend(signals.regions.keys().map(String::as_str));
    let mut level = encoder.encode_descriptor(
        names::SITE_DISASTER_LEVEL,
        "Highest active disaster level of the site (1-4), 0 when none; advisories (severity \
         low) do not raise it.",
        None,
        MetricType::Gauge,
    )?;
    for site in &sites {
        let value = signals.disaster_level.get(*site).copied().unwrap_or(0);
        level
            .encode_family(&[("site", *site)])?
            .encode_gauge(&i64::from(value))?;
    }
    if !signals.regions.is_empty() {
        let mut info = encoder.encode_descriptor(
            names::SITE_INFO,
            "1 for each configured site, with its region.",
            None,
            MetricType::Gauge,
        )?;
        for (site, region) in &signals.regions {
            info.encode_family(&[("site", site.as_str()), ("region", region.as_str())])?
                .encode_gauge(&1i64)?;
        }
    }
    Ok(())
}

/// `sitewatch_agent_path_up{site,host,broker}`: which broker path sees which
/// agent (only written with more than one link).
fn encode_paths(
    state: &State,
    judge: &Judge<'_>,
    now_ms: i64,
    encoder: &mut DescriptorEncoder,
) -> Result<(), fmt::Error> {
    if judge.links.len() < 2 {
        return Ok(());
    }
    let strings = state.strings();
    let mut rows: Vec<(&str, &str, String, bool)> = Vec::new();
    for (_, h) in state.hosts() {
        for p in &h.paths {
            let link = judge
                .links
                .get(usize::from(p.path))
                .copied()
                .unwrap_or(PathState::ALWAYS);
            let alone = [*p];
            let up = crate::liveness::observe(
                &alone,
                &[link],
                h.interval_ms,
                &state.config().rules,
                now_ms,
            )
            .observed
                == sitewatch_signals::Liveness::Online;
            let name = judge
                .names
                .get(usize::from(p.path))
                .cloned()
                .unwrap_or_default();
            rows.push((strings.resolve(h.site), strings.resolve(h.host), name, up));
        }
    }
    rows.sort_unstable();
    let mut m = encoder.encode_descriptor(
        names::AGENT_PATH_UP,
        "1 when the agent is online as seen through this broker, 0 when lost or unreachable there.",
        None,
        MetricType::Gauge,
    )?;
    for (site, host, broker, up) in &rows {
        m.encode_family(&[
            ("site", *site),
            ("host", *host),
            ("broker", broker.as_str()),
        ])?
        .encode_gauge(&i64::from(*up))?;
    }
    Ok(())
}

/// The peer collectors of a topology: present, and messages ignored.
fn encode_peers(
    state: &State,
    links: &[PathState],
    started_at_ms: i64,
    now_ms: i64,
    encoder: &mut DescriptorEncoder,
) -> fmt::Result {
    let Some(vantage) = state
        .peers()
        .vantage(links, &state.config().rules, started_at_ms, now_ms)
    else {
        return Ok(());
    };
    let mut m = encoder.encode_descriptor(
        names::PEER_UP,
        "1 while the peer collector's presence and views reach this one through some broker.",
        None,
        MetricType::Gauge,
    )?;
    for p in &vantage.peers {
        let up = p.liveness == sitewatch_signals::Liveness::Online;
        m.encode_family(&[("collector", p.name.as_str()), ("site", p.site.as_str())])?
            .encode_gauge(&i64::from(up))?;
    }
    counter(
        encoder,
        names::PEER_IGNORED,
        "Presence and view messages of collectors that are not in the topology.",
        state.peers().ignored,
    )
}

/// The broker links' own metrics.
fn encode_links(links: &[Arc<LinkStatus>], encoder: &mut DescriptorEncoder) -> fmt::Result {
    if links.is_empty() {
        return Ok(());
    }
    let mut m = encoder.encode_descriptor(
        names::BROKER_CONNECTED,
        "1 when the collector is connected to this MQTT broker.",
        None,
        MetricType::Gauge,
    )?;
    for l in links {
        m.encode_family(&[("broker", l.name.as_str())])?
            .encode_gauge(&i64::from(l.is_connected()))?;
    }
    let mut m = encoder.encode_descriptor(
        names::BROKER_CONNECTIONS,
        "Connections made to this broker (CONNACKs received).",
        None,
        MetricType::Counter,
    )?;
    for l in links {
        m.encode_family(&[("broker", l.name.as_str())])?
            .encode_counter::<NoLabelSet, _, u64>(&l.connections(), None)?;
    }
    let mut m = encoder.encode_descriptor(
        names::BROKER_FAILURES,
        "Failed or dropped connections to this broker, by kind.",
        None,
        MetricType::Counter,
    )?;
    for l in links {
        for kind in FailureKind::ALL {
            m.encode_family(&[("broker", l.name.as_str()), ("kind", kind.as_str())])?
                .encode_counter::<NoLabelSet, _, u64>(&l.failures(kind), None)?;
        }
    }
    let mut m = encoder.encode_descriptor(
        names::BROKER_MESSAGES,
        "Messages received from this broker (duplicates across brokers included).",
        None,
        MetricType::Counter,
    )?;
    for l in links {
        m.encode_family(&[("broker", l.name.as_str())])?
            .encode_counter::<NoLabelSet, _, u64>(&l.messages(), None)?;
    }
    Ok(())
}

fn counter(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    value: u64,
) -> Result<(), fmt::Error> {
    encoder
        .encode_descriptor(name, help, None, MetricType::Counter)?
        .encode_counter::<NoLabelSet, _, u64>(&value, None)
}

fn gauge(encoder: &mut DescriptorEncoder, name: &str, help: &str, value: i64) -> fmt::Result {
    encoder
        .encode_descriptor(name, help, None, MetricType::Gauge)?
        .encode_gauge(&value)
}

fn encode_self(
    state: &State,
    signals: &Published,
    encoder: &mut DescriptorEncoder,
) -> Result<(), fmt::Error> {
    let c = state.counters();
    encoder
        .encode_descriptor(
            names::SIGNAL_EVALUATION,
            "How long the last evaluation of the signals engine took, snapshot included.",
            None,
            MetricType::Gauge,
        )?
        .encode_gauge(&signals.evaluation_seconds)?;
    let mut m = encoder.encode_descriptor(
        names::SITE_EVALUATIONS,
        "Sites evaluated by the signals engine: in full, or a quiet look reused because nothing it depends on changed.",
        None,
        MetricType::Counter,
    )?;
    let (full, reused) = signals.site_looks;
    for (look, n) in [("full", full), ("reused", reused)] {
        m.encode_family(&[("look", look)])?
            .encode_counter::<NoLabelSet, _, u64>(&n, None)?;
    }
    let mut m = encoder.encode_descriptor(
        names::REJECTED_MESSAGES,
        "Messages rejected by the protocol decoder, by reason.",
        None,
        MetricType::Counter,
    )?;
    for (reason, n) in Rejection::REASONS.iter().zip(c.rejected) {
        m.encode_family(&[("reason", *reason)])?
            .encode_counter::<NoLabelSet, _, u64>(&n, None)?;
    }
    let mut m = encoder.encode_descriptor(
        names::MESSAGES,
        "Messages ingested, by kind.",
        None,
        MetricType::Counter,
    )?;
    for (kind, n) in MESSAGE_KINDS.iter().zip(c.messages) {
        m.encode_family(&[("kind", *kind)])?
            .encode_counter::<NoLabelSet, _, u64>(&n, None)?;
    }
    let mut m = encoder.encode_descriptor(
        names::DROPPED_READINGS,
        "Readings not stored, by reason.",
        None,
        MetricType::Counter,
    )?;
    for (reason, n) in DropReason::ALL.iter().zip(c.dropped_readings) {
        m.encode_family(&[("reason", reason.as_str())])?
            .encode_counter::<NoLabelSet, _, u64>(&n, None)?;
    }
    counter(encoder, names::READINGS, "Readings ingested.", c.readings)?;
    let mut m = encoder.encode_descriptor(
        names::REFUSED_HOSTS,
        "Messages of hosts not known yet dropped at a host limit, by limit.",
        None,
        MetricType::Counter,
    )?;
    for (limit, n) in HostLimit::ALL.iter().zip(c.refused_hosts) {
        m.encode_family(&[("reason", limit.as_str())])?
            .encode_counter::<NoLabelSet, _, u64>(&n, None)?;
    }
    counter(
        encoder,
        names::FORGOTTEN_HOSTS,
        "Hosts forgotten after [state] forget_after without a message.",
        c.forgotten_hosts,
    )?;
    gauge(
        encoder,
        names::STRINGS,
        "Distinct names held (sites, hosts, devices, sensors, label values).",
        i64::try_from(state.strings().len()).unwrap_or(i64::MAX),
    )?;
    counter(
        encoder,
        names::DUPLICATE_MESSAGES,
        "Messages dropped as duplicates of one already ingested (same boot and seq).",
        c.duplicates,
    )?;
    counter(
        encoder,
        names::DUPLICATE_EVENTS,
        "Events dropped because one with the same id (the same device event read again) was kept.",
        c.duplicate_events,
    )?;
    counter(
        encoder,
        names::SEQUENCE_GAPS,
        "Sequence numbers skipped: messages an agent sent that never arrived.",
        c.gaps,
    )?;
    counter(
        encoder,
        names::SEQUENCE_RESTARTS,
        "Sequences that started again without a new boot announced.",
        c.sequence_restarts,
    )?;
    gauge(
        encoder,
        names::SERIES,
        "Series held in memory.",
        i64::try_from(state.series_count()).unwrap_or(i64::MAX),
    )?;
    gauge(
        encoder,
        names::HOSTS,
        "Agents known.",
        i64::try_from(state.hosts().count()).unwrap_or(i64::MAX),
    )
}

#[cfg(test)]
pub(crate) mod tests;
