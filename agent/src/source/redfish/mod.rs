//! The `redfish` source: server BMCs (iDRAC, iLO, XCC, OpenBMC, Supermicro),
//! rack PDUs and coolant distribution units over Redfish.
//!
//! Each endpoint is a device of the shared device layer ([`crate::device`]):
//! its own task, interval, whole-read budget, backoff and health readings.
//! A read walks the service from its root: the `Chassis` collection, each
//! chassis' `Sensors` (in one request with `$expand` where the service offers
//! it, else one GET per sensor under the endpoint's concurrency limit), its
//! `ThermalSubsystem` and `PowerSubsystem` (fans, power supplies, redundancy)
//! or else the legacy `Thermal` and `Power`, its leak detectors; the
//! `Systems`' health rollup; `PowerEquipment/RackPDUs` (mains, branches,
//! outlets); `ThermalEquipment/CDUs` (pumps, coolant, leak detection). The
//! structure (collections, chassis, links) is kept between reads and
//! discovered again every `rediscover` or after a resource went missing; the
//! values are read every time.
//!
//! - [`config`]: the `[sources.redfish]` table and its checks.
//! - [`http`]: the HTTP/1.1 client and its TLS trust.
//! - [`session`]: authentication, sessions, every request.
//! - [`map`]: resources to readings (pure).
//! - [`sse`]: the EventService's event stream: an event is an agent event
//!   and a read of its endpoint at once.
//! - [`logs`]: LogServices entries as events, once each, across restarts.

pub mod config;
pub mod http;
pub mod logs;
pub mod map;
pub mod session;
pub mod sse;

use std::{collections::HashMap, path::PathBuf, sync::Arc, time::Duration};

use serde_json::Value;
use sitewatch_protocol::{Reading, ReadingState};
use tokio::time::Instant;

use super::{Checkpoint, Poll, Polled, SourceError};
use crate::{
    device::{self, DeviceError, Fleet, Read, Settings},
    selfmetrics,
};
use config::{AuthMode, RedfishEndpointConfig, RedfishSourceConfig};
use session::{Api, Credentials, FetchError};

pub use session::{logout_all, shutdown};

/// The source's name and its readings' `src`.
pub const NAME: &str = "redfish";

/// The longest a dead endpoint goes unread (its points reported unknown meanwhile).
const BACKOFF_MAX: Duration = Duration::from_secs(300);

/// The query asking a collection for its members' bodies.
pub const EXPAND: &str = "$expand=.($levels=1)";

#[derive(Debug)]
pub struct RedfishSource {
    endpoints: Fleet,
    /// What the event streams hand the polls.
    streams: Arc<sse::Shared>,
    any_events: bool,
}

fn read_error(what: &'static str, message: String) -> SourceError {
    SourceError::Read { what, message }
}

/// The trust setting of an endpoint's config.
pub fn trust(e: &RedfishEndpointConfig) -> Result<http::Trust, String> {
    if e.insecure_skip_verify {
        return Ok(http::Trust::Anything);
    }
    if let Some(pin) = &e.pinned_sha256 {
        return config::parse_pin(pin).map(http::Trust::Pinned);
    }
    if let Some(ca) = &e.ca_file {
        return http::roots(ca)
            .map(http::Trust::Roots)
            .map_err(|m| format!("ca_file {}: {m}", ca.display()));
    }
    Ok(http::Trust::System)
}

/// The endpoint's credentials, its password read from its file.
pub fn credentials(e: &RedfishEndpointConfig) -> Result<Credentials, String> {
    match (&e.username, &e.password_file) {
        (Some(user), Some(file)) => {
            let password = config::read_secret(file)?;
            Ok(match e.auth {
                AuthMode::Basic => Credentials::basic(user, &password),
                AuthMode::Session => Credentials::Session {
                    user: user.clone(),
                    password,
                },
            })
        }
        _ => Ok(Credentials::Anonymous),
    }
}

impl RedfishSource {
    /// Builds the endpoints and starts their tasks (within a tokio runtime).
    pub fn new(config: &RedfishSourceConfig) -> Result<Self, SourceError> {
        let mut fleet = Fleet::new(NAME);
        let streams = Arc::new(sse::Shared::default());
        if let Some(dir) = &config.state_dir {
            std::fs::create_dir_all(dir)
                .map_err(|e| read_error("redfish state_dir", format!("{}: {e}", dir.display())))?;
        }
        for e in &config.endpoints {
            let mut e = e.clone();
            e.request_timeout = e.request_timeout.min(config.timeout.mul_f64(0.9));
            let e = &e;
            let mut endpoint = Endpoint::new(e, config.rediscover).map_err(|m| {
                read_error("redfish endpoint", format!("endpoint {:?}: {m}", e.name))
            })?;
            if e.events {
                endpoint.events = Some(Events {
                    shared: Arc::clone(&streams),
                    silence: config.event_silence,
                    stream: None,
                    checked: false,
                    log_interval: e.log_interval.or(e.interval).unwrap_or(config.interval),
                    logs_read_at: None,
                    log_services: None,
                    cursors: HashMap::new(),
                    state_dir: config.state_dir.clone(),
                    per_read: config.log_entries_per_read,
                    last_error: None,
                });
            }
            if e.insecure_skip_verify {
                tracing::warn!(source = NAME, endpoint = %e.name, url = %e.url,
                    "insecure_skip_verify: the endpoint's certificate is not checked; anyone on the path can read its password");
            }
            fleet.add(
                e.name.clone(),
                endpoint,
                Settings {
                    interval: Some(e.interval.unwrap_or(config.interval)),
                    timeout: config.timeout.mul_f64(0.9),
                    backoff_max: Some(BACKOFF_MAX),
                },
            );
        }
        Ok(RedfishSource {
            endpoints: fleet,
            streams,
            any_events: config.endpoints.iter().any(|e| e.events),
        })
    }
}

/// The event streams' counters, as self readings of each endpoint
/// (`dev = "redfish/<endpoint>"`).
fn stream_readings(streams: &sse::Shared) -> Vec<Reading> {
    let mut out = Vec::new();
    for (endpoint, s) in streams.stats() {
        let dev = format!("{NAME}/{endpoint}");
        let r = |q: &str, v: f64| selfmetrics::reading(dev.clone(), q, v);
        out.push(r(
            selfmetrics::q::REDFISH_SSE_OPEN,
            f64::from(u8::from(s.open)),
        ));
        out.push(r(selfmetrics::q::REDFISH_SSE_CONNECTS, s.connects as f64));
        out.push(r(selfmetrics::q::REDFISH_SSE_EVENTS, s.events as f64));
        out.push(r(
            selfmetrics::q::REDFISH_SSE_SILENT_DROPS,
            s.silent_drops as f64,
        ));
        for reason in sse::MALFORMED_REASONS {
            let n = s.malformed.get(reason).copied().unwrap_or(0);
            out.push(
                r(selfmetrics::q::REDFISH_SSE_MALFORMED, n as f64).with_label("reason", *reason),
            );
        }
    }
    out
}

impl Poll for RedfishSource {
    fn name(&self) -> &'static str {
        NAME
    }

    fn wake(&self) -> Option<Arc<tokio::sync::Notify>> {
        self.any_events.then(|| Arc::clone(&self.streams.wake))
    }

    async fn poll(&mut self) -> Result<Polled, SourceError> {
        // Events first: the reads they cause come out in this poll.
        for endpoint in self.streams.take_hurried() {
            self.endpoints.hurry(&endpoint);
        }
        let events = self.streams.take_events();
        let (mut polled, _) = self.endpoints.poll().await;
        polled.events.splice(0..0, events);
        polled.readings.extend(stream_readings(&self.streams));
        Ok(polled)
    }
}

impl super::Build for RedfishSource {
    type Config = RedfishSourceConfig;

    fn build(config: &Self::Config) -> Result<Self, SourceError> {
        RedfishSource::new(config)
    }
}

/// The path of a link (`{"@odata.id": ...}`) or of an absolute URL, without
/// its fragment.
fn link(v: &Value, key: &str) -> Option<String> {
    let id = v.get(key)?.get("@odata.id")?.as_str()?;
    Some(clean(id))
}

fn clean(id: &str) -> String {
    let id = id.split('#').next().unwrap_or(id);
    let rest = id
        .strip_prefix("https://")
        .or_else(|| id.strip_prefix("http://"));
    match rest {
        Some(r) => r
            .find('/')
            .map_or_else(|| "/".to_owned(), |i| r[i..].to_owned()),
        None => id.to_owned(),
    }
}

fn member_paths(collection: &Value) -> Vec<String> {
    collection
        .get("Members")
        .and_then(Value::as_array)
        .map(|m| {
            m.iter()
                .filter_map(|x| x.get("@odata.id").and_then(Value::as_str))
                .map(clean)
                .fold(Vec::new(), |mut seen: Vec<String>, p| {
                    // A member listed twice is read once.
                    if !seen.contains(&p) {
                        seen.push(p);
                    }
                    seen
                })
        })
        .unwrap_or_default()
}

/// Whether a resource's `@odata.type` is `#<name>.v...` (or `#<name>`).
fn type_is(v: &Value, name: &str) -> bool {
    v.get("@odata.type")
        .and_then(Value::as_str)
        .and_then(|t| t.strip_prefix('#'))
        .is_some_and(|t| t == name || t.starts_with(&format!("{name}.")))
}

fn with_query(path: &str, query: &str) -> String {
    if path.contains('?') {
        format!("{path}&{query}")
    } else {
        format!("{path}?{query}")
    }
}

/// Whether the service root says `$expand` with levels works.
pub fn offers_expand(root: &Value) -> bool {
    root.get("ProtocolFeaturesSupported")
        .and_then(|p| p.get("ExpandQuery"))
        .is_some_and(|e| {
            e.get("Levels").and_then(Value::as_bool) == Some(true)
                || e.get("ExpandAll").and_then(Value::as_bool) == Some(true)
        })
}

/// One Redfish service.
pub struct Endpoint {
    name: String,
    api: Arc<Api>,
    labels: std::collections::BTreeMap<String, String>,
    expand: bool,
    /// Set for good when an `$expand` request failed: individual GETs.
    expand_refused: bool,
    rediscover: Duration,
    discovered_at: Option<Instant>,
    /// Resources read for their links only (root, collections, chassis).
    structure: HashMap<String, Value>,
    /// The last read's readings, unknown: reported when a read fails whole.
    template: Vec<Reading>,
    /// The event stream and the logs; `None` with `events = false`.
    events: Option<Events>,
}

/// One endpoint's events: its SSE stream and its LogServices.
struct Events {
    shared: Arc<sse::Shared>,
    silence: Duration,
    /// The stream's task, aborted when the endpoint goes.
    stream: Option<tokio::task::JoinHandle<()>>,
    /// Whether the EventService was looked at (again at each discovery
    /// while no stream runs).
    checked: bool,
    log_interval: Duration,
    logs_read_at: Option<Instant>,
    /// The log services found: (log service path, its Entries path).
    log_services: Option<Vec<(String, String)>>,
    cursors: HashMap<String, logs::LogCursor>,
    state_dir: Option<PathBuf>,
    per_read: usize,
    last_error: Option<String>,
}

impl std::fmt::Debug for Endpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Endpoint")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

impl Drop for Endpoint {
    fn drop(&mut self) {
        if let Some(task) = self.events.as_mut().and_then(|e| e.stream.take()) {
            task.abort();
        }
        if let Some(id) = self.api.held_id() {
            session::logout_in_background(id);
        }
    }
}

/// What a read gathered, and the requests that failed on the way.
#[derive(Default)]
struct Gathered {
    readings: Vec<Reading>,
    errors: Vec<FetchError>,
    /// Sensors and detectors a PDU or CDU reading was made from: not read
    /// again from a chassis (one reading per physical quantity).
    covered: std::collections::HashSet<String>,
}

impl Gathered {
    fn covers(&self, resource: &Value) -> bool {
        resource
            .get("@odata.id")
            .and_then(Value::as_str)
            .is_some_and(|id| self.covered.contains(clean(id).trim_end_matches('/')))
    }
}

impl Endpoint {
    pub fn new(e: &RedfishEndpointConfig, rediscover: Duration) -> Result<Endpoint, String> {
        let url = config::Url::parse(&e.url)?;
        let trust = trust(e)?;
        let client = http::Client::new(url, &trust, e.concurrency, e.request_timeout)?;
        let api = Api::new(e.name.clone(), Arc::new(client), credentials(e)?);
        Ok(Endpoint {
            name: e.name.clone(),
            api: Arc::new(api),
            labels: e.labels.clone(),
            expand: e.expand,
            expand_refused: false,
            rediscover,
            discovered_at: None,
            structure: HashMap::new(),
            template: Vec::new(),
            events: None,
        })
    }

    /// The shared request counters (for tests and benches).
    pub fn requests(&self) -> u64 {
        self.api.client.requests()
    }

    /// Deletes the endpoint's session now.
    pub async fn logout(&self) {
        self.api.logout().await;
    }

    fn ctx(&self) -> map::Ctx<'_> {
        map::Ctx {
            src: NAME,
            dev: &self.name,
            labels: &self.labels,
        }
    }

    /// A structural resource: from the cache, else read (and kept).
    async fn structural(&mut self, path: &str) -> Result<Value, FetchError> {
        if let Some(v) = self.structure.get(path) {
            return Ok(v.clone());
        }
        let v = self.api.get(path).await?;
        self.structure.insert(path.to_owned(), v.clone());
        Ok(v)
    }

    /// Every member of a collection, read now (in parallel, within the
    /// endpoint's concurrency); failures are collected.
    async fn members(&mut self, collection: &str, out: &mut Gathered) -> Vec<Value> {
        let paths = match self.structural(collection).await {
            Ok(c) => member_paths(&c),
            Err(e) => {
                out.errors.push(e);
                return Vec::new();
            }
        };
        self.fetch_all(&paths, out).await
    }

    async fn fetch_all(&self, paths: &[String], out: &mut Gathered) -> Vec<Value> {
        let api = &self.api;
        let results = futures_util::future::join_all(paths.iter().map(|p| api.get(p))).await;
        let mut values = Vec::new();
        for (r, path) in results.into_iter().zip(paths) {
            match r {
                Ok(mut v) => {
                    // Named by where it was found: some services copy a
                    // resource's body, `@odata.id` and all, to a second path.
                    if let Some(o) = v.as_object_mut() {
                        o.insert("@odata.id".into(), Value::String(path.clone()));
                    }
                    values.push(v);
                }
                Err(e) => out.errors.push(e),
            }
        }
        values
    }

    /// A collection's members in one `$expand` request when allowed, else
    /// one by one.
    async fn expanded_members(
        &mut self,
        collection: &str,
        use_expand: bool,
        out: &mut Gathered,
    ) -> Vec<Value> {
        if use_expand && !self.expand_refused {
            match self.api.get(&with_query(collection, EXPAND)).await {
                Ok(c) => {
                    let members: Vec<Value> = c
                        .get("Members")
                        .and_then(Value::as_array)
                        .cloned()
                        .unwrap_or_default();
                    // Bodies, not just links: the expansion worked.
                    if members
                        .iter()
                        .all(|m| m.get("Status").is_some() || m.get("Reading").is_some())
                    {
                        return members;
                    }
                    self.expand_refused = true;
                }
                Err(FetchError::Status { status, .. }) if (400..=599).contains(&status) => {
                    tracing::debug!(source = NAME, endpoint = %self.name, status, "$expand refused; reading members one by one");
                    self.expand_refused = true;
                    // Not a failed read: counted as a failed request only.
                }
                Err(e) => {
                    out.errors.push(e);
                    return Vec::new();
                }
            }
        }
        self.members(collection, out).await
    }

    async fn walk(&mut self) -> Gathered {
        let mut out = Gathered::default();
        let root_path = "/redfish/v1/";
        let root = match self.structural(root_path).await {
            Ok(r) => r,
            Err(e) => {
                out.errors.push(e);
                return out;
            }
        };
        if let Some(sessions) = root.get("Links").and_then(|l| link(l, "Sessions")) {
            self.api.set_sessions_path(&sessions);
        }
        let use_expand = self.expand && offers_expand(&root);
        if let Some(systems) = link(&root, "Systems") {
            for s in self.members(&systems, &mut out).await {
                out.readings
                    .extend(map::health(&self.ctx(), "system", "system", &s));
            }
        }
        if let Some(pe) = link(&root, "PowerEquipment") {
            match self.structural(&pe).await {
                Ok(pe) => {
                    for (key, kind) in [("RackPDUs", "pdu"), ("PowerShelves", "power_shelf")] {
                        if let Some(pdus) = link(&pe, key) {
                            for pdu in self.members(&pdus, &mut out).await {
                                self.pdu(&pdu, kind, &mut out).await;
                            }
                        }
                    }
                }
                Err(e) => out.errors.push(e),
            }
        }
        if let Some(te) = link(&root, "ThermalEquipment") {
            match self.structural(&te).await {
                Ok(te) => {
                    if let Some(cdus) = link(&te, "CDUs") {
                        for cdu in self.members(&cdus, &mut out).await {
                            self.cdu(&cdu, &mut out).await;
                        }
                    }
                }
                Err(e) => out.errors.push(e),
            }
        }
        // After the PDUs and CDUs: the sensors they were read from are known.
        if let Some(chassis) = link(&root, "Chassis") {
            let paths = match self.structural(&chassis).await {
                Ok(c) => member_paths(&c),
                Err(e) => {
                    out.errors.push(e);
                    Vec::new()
                }
            };
            for p in paths {
                match self.structural(&p).await {
                    Ok(c) => self.chassis(&c, use_expand, &mut out).await,
                    Err(e) => out.errors.push(e),
                }
            }
        }
        out
    }

    async fn chassis(&mut self, chassis: &Value, use_expand: bool, out: &mut Gathered) {
        let Some(id) = map::id_of(chassis).map(str::to_owned) else {
            return;
        };
        let base = chassis
            .get("@odata.id")
            .and_then(Value::as_str)
            .map(clean)
            .unwrap_or_default();
        let mut sensors = link(chassis, "Sensors");
        // Some services link a subsystem to the wrong resource (DMTF's power
        // shelf mockup links PowerSubsystem to its Sensors): the resource's
        // type decides, and the standard path is tried for the subsystem.
        let mut subsystems = Vec::new();
        for key in ["ThermalSubsystem", "PowerSubsystem"] {
            let Some(path) = link(chassis, key) else {
                subsystems.push(None);
                continue;
            };
            let found = match self.api.get(&path).await {
                Ok(v) if type_is(&v, key) => Some(v),
                Ok(v) => {
                    if sensors.is_none() && type_is(&v, "SensorCollection") {
                        sensors = Some(path.clone());
                    }
                    let standard = format!("{}/{key}", base.trim_end_matches('/'));
                    match self.api.get(&standard).await {
                        Ok(v) if type_is(&v, key) => Some(v),
                        Ok(_) => None,
                        Err(e) => {
                            out.errors.push(e);
                            None
                        }
                    }
                }
                Err(e) => {
                    out.errors.push(e);
                    None
                }
            };
            subsystems.push(found);
        }
        let power_subsystem = subsystems.pop().flatten();
        let thermal_subsystem = subsystems.pop().flatten();
        let numeric = sensors.is_none();
        if let Some(s) = &sensors {
            for sensor in self.expanded_members(s, use_expand, out).await {
                if out.covers(&sensor) {
                    continue;
                }
                out.readings.extend(map::sensor(&self.ctx(), &id, &sensor));
            }
        }
        if let Some(ts) = thermal_subsystem {
            out.readings.extend(map::redundancy(
                &self.ctx(),
                &id,
                &ts,
                "FanRedundancy",
                "fan_redundancy",
            ));
            if let Some(fans) = link(&ts, "Fans") {
                for f in self.members(&fans, out).await {
                    out.readings.extend(map::fan(&self.ctx(), &id, &f, numeric));
                }
            }
            if let Some(ld) = link(&ts, "LeakDetection") {
                self.leak_detection(&ld, ("chassis", &id), out).await;
            }
        } else if let Some(t) = link(chassis, "Thermal") {
            match self.api.get(&t).await {
                Ok(t) => out
                    .readings
                    .extend(map::legacy_thermal(&self.ctx(), &id, &t, numeric)),
                Err(e) => out.errors.push(e),
            }
        }
        if let Some(ps) = power_subsystem {
            out.readings.extend(map::redundancy(
                &self.ctx(),
                &id,
                &ps,
                "PowerSupplyRedundancy",
                "psu_redundancy",
            ));
            if let Some(supplies) = link(&ps, "PowerSupplies") {
                for p in self.members(&supplies, out).await {
                    out.readings.extend(map::power_supply(&self.ctx(), &id, &p));
                    if numeric
                        && map::status_state(&p, false).is_some()
                        && let (Some(m), Some(psu)) = (link(&p, "Metrics"), map::id_of(&p))
                    {
                        match self.api.get(&m).await {
                            Ok(m) => out.readings.extend(map::power_supply_metrics(
                                &self.ctx(),
                                &id,
                                psu,
                                &m,
                            )),
                            Err(e) => out.errors.push(e),
                        }
                    }
                }
            }
        } else if let Some(p) = link(chassis, "Power") {
            match self.api.get(&p).await {
                Ok(p) => out
                    .readings
                    .extend(map::legacy_power(&self.ctx(), &id, &p, numeric)),
                Err(e) => out.errors.push(e),
            }
        }
        if let Some(ld) = link(chassis, "LeakDetectors") {
            for d in self.members(&ld, out).await {
                if out.covers(&d) {
                    continue;
                }
                out.readings
                    .extend(map::leak_detector(&self.ctx(), ("chassis", &id), &d));
            }
        }
    }

    async fn leak_detection(&mut self, path: &str, owner: (&str, &str), out: &mut Gathered) {
        // Read every time: its groups carry the detectors' states.
        match self.api.get(path).await {
            Ok(ld) => {
                map::detector_sources(&ld, &mut out.covered);
                if let Some(detectors) = link(&ld, "LeakDetectors") {
                    for d in self.members(&detectors, out).await {
                        out.readings
                            .extend(map::leak_detector(&self.ctx(), owner, &d));
                    }
                } else {
                    out.readings
                        .extend(map::leak_detector_groups(&self.ctx(), owner, &ld));
                }
            }
            Err(e) => out.errors.push(e),
        }
    }

    /// A `PowerDistribution` (a rack PDU, a power shelf): `kind` names its
    /// health reading.
    async fn pdu(&mut self, pdu: &Value, kind: &str, out: &mut Gathered) {
        let Some(id) = map::id_of(pdu).map(str::to_owned) else {
            return;
        };
        out.readings
            .extend(map::health(&self.ctx(), kind, "pdu", pdu));
        for (key, circuit_kind) in [
            ("Mains", "mains"),
            ("Feeds", "feed"),
            ("Subfeeds", "subfeed"),
            ("Branches", "branch"),
        ] {
            if let Some(c) = link(pdu, key) {
                for circuit in self.members(&c, out).await {
                    map::excerpt_sources(&circuit, &mut out.covered);
                    out.readings
                        .extend(map::circuit(&self.ctx(), &id, circuit_kind, &circuit));
                }
            }
        }
        if let Some(o) = link(pdu, "Outlets") {
            for outlet in self.members(&o, out).await {
                map::excerpt_sources(&outlet, &mut out.covered);
                out.readings.extend(map::outlet(&self.ctx(), &id, &outlet));
            }
        }
    }

    async fn cdu(&mut self, cdu: &Value, out: &mut Gathered) {
        let Some(id) = map::id_of(cdu).map(str::to_owned) else {
            return;
        };
        out.readings
            .extend(map::health(&self.ctx(), "cdu", "cdu", cdu));
        if let Some(p) = link(cdu, "Pumps") {
            for pump in self.members(&p, out).await {
                out.readings.extend(map::pump(&self.ctx(), &id, &pump));
            }
        }
        for (key, side) in [
            ("PrimaryCoolantConnectors", "primary"),
            ("SecondaryCoolantConnectors", "secondary"),
        ] {
            if let Some(c) = link(cdu, key) {
                for connector in self.members(&c, out).await {
                    map::excerpt_sources(&connector, &mut out.covered);
                    out.readings
                        .extend(map::coolant_connector(&self.ctx(), &id, side, &connector));
                }
            }
        }
        if let Some(ld) = link(cdu, "LeakDetection") {
            self.leak_detection(&ld, ("cdu", &id), out).await;
        }
    }
}

impl Endpoint {
    /// Logs the events' failed requests when what failed changes.
    fn note_event_errors(&mut self, errors: &[FetchError]) {
        let Some(ev) = &mut self.events else { return };
        let now = errors.first().map(ToString::to_string);
        if now.is_some() {
            // Something moved: find the log services again next time.
            ev.log_services = None;
        }
        if now != ev.last_error {
            match &now {
                Some(e) => {
                    tracing::warn!(source = NAME, endpoint = %self.name, error = %e, failed = errors.len(), "cannot read the event service or the logs")
                }
                None => {
                    tracing::info!(source = NAME, endpoint = %self.name, "event service and logs read again")
                }
            }
            ev.last_error = now;
        }
    }

    /// Opens the event stream when the service offers one (`EventService`
    /// enabled, with a `ServerSentEventUri`) and none runs: looked at once
    /// per discovery.
    async fn start_stream(&mut self, out: &mut Gathered) {
        let Some(ev) = &self.events else { return };
        if ev.checked || ev.stream.is_some() {
            return;
        }
        let root = match self.structural("/redfish/v1/").await {
            Ok(r) => r,
            Err(e) => {
                out.errors.push(e);
                return;
            }
        };
        let service = match link(&root, "EventService") {
            None => None,
            Some(path) => match self.api.get(&path).await {
                Ok(v) => Some(v),
                Err(e) => {
                    out.errors.push(e);
                    return;
                }
            },
        };
        let uri = service
            .as_ref()
            .filter(|s| s.get("ServiceEnabled").and_then(Value::as_bool) != Some(false))
            .and_then(|s| s.get("ServerSentEventUri"))
            .and_then(Value::as_str)
            .map(clean);
        let Some(ev) = &mut self.events else { return };
        ev.checked = true;
        match uri {
            None => {
                tracing::debug!(source = NAME, endpoint = %self.name, "no event stream offered (no ServerSentEventUri, or the EventService is disabled)");
            }
            Some(path) => {
                tracing::info!(source = NAME, endpoint = %self.name, path = %path, "reading the event stream");
                ev.stream = Some(tokio::spawn(sse::run(
                    Arc::clone(&self.api),
                    path,
                    ev.silence,
                    Arc::clone(&ev.shared),
                )));
            }
        }
    }

    /// The log services under Systems, Managers and Chassis.
    async fn discover_logs(&mut self, out: &mut Gathered) -> Vec<(String, String)> {
        let mut found = Vec::new();
        let root = match self.structural("/redfish/v1/").await {
            Ok(r) => r,
            Err(e) => {
                out.errors.push(e);
                return found;
            }
        };
        for key in ["Systems", "Managers", "Chassis"] {
            let Some(collection) = link(&root, key) else {
                continue;
            };
            let members = match self.structural(&collection).await {
                Ok(c) => member_paths(&c),
                Err(e) => {
                    out.errors.push(e);
                    continue;
                }
            };
            for m in members {
                let services = match self.structural(&m).await {
                    Ok(v) => link(&v, "LogServices"),
                    Err(e) => {
                        out.errors.push(e);
                        continue;
                    }
                };
                let Some(services) = services else { continue };
                let paths = match self.structural(&services).await {
                    Ok(c) => member_paths(&c),
                    Err(e) => {
                        out.errors.push(e);
                        continue;
                    }
                };
                for svc in paths {
                    match self.structural(&svc).await {
                        Ok(v) => {
                            let enabled =
                                v.get("ServiceEnabled").and_then(Value::as_bool) != Some(false);
                            if let (true, Some(entries)) = (enabled, link(&v, "Entries"))
                                && !found.iter().any(|(s, _)| *s == svc)
                            {
                                found.push((svc, entries));
                            }
                        }
                        Err(e) => out.errors.push(e),
                    }
                }
            }
        }
        found
    }

    /// New entries of every log service, when the log interval is due: their
    /// events, and the cursors to save once those are delivered.
    async fn read_logs(
        &mut self,
        out: &mut Gathered,
        polled: &mut Polled,
        moved: &mut Vec<(String, logs::LogCursor)>,
    ) {
        let Some(ev) = &mut self.events else { return };
        let now = Instant::now();
        let due = ev
            .logs_read_at
            .is_none_or(|t| now + Duration::from_millis(50) >= t + ev.log_interval);
        if !due {
            return;
        }
        ev.logs_read_at = Some(now);
        let services = match ev.log_services.clone() {
            Some(s) => s,
            None => {
                let errors = out.errors.len();
                let found = self.discover_logs(out).await;
                if out.errors.len() == errors
                    && let Some(ev) = &mut self.events
                {
                    ev.log_services = Some(found.clone());
                }
                found
            }
        };
        for (svc, entries) in services {
            self.read_log(&svc, &entries, out, polled, moved).await;
        }
    }

    /// One log service's new entries; the cursor that covers them goes to
    /// `moved`, applied once the read is complete (a read cut off by its
    /// timeout drops its events, and must not have moved the cursor).
    async fn read_log(
        &mut self,
        svc: &str,
        entries: &str,
        out: &mut Gathered,
        polled: &mut Polled,
        moved: &mut Vec<(String, logs::LogCursor)>,
    ) {
        let collection = match self.api.get(entries).await {
            Ok(c) => c,
            Err(e) => {
                out.errors.push(e);
                return;
            }
        };
        let members: Vec<Value> = collection
            .get("Members")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        let present: Vec<(String, String, Option<Value>)> = members
            .iter()
            .filter_map(|m| {
                let path = clean(m.get("@odata.id")?.as_str()?);
                let id = m
                    .get("Id")
                    .and_then(Value::as_str)
                    .unwrap_or_else(|| logs::member_id(&path))
                    .to_owned();
                // Collections often carry their entries' bodies.
                let body = (m.get("Id").is_some()
                    && m.get("Message").or(m.get("MessageId")).is_some())
                .then(|| m.clone());
                Some((id, path, body))
            })
            .collect();
        let Some(ev) = &mut self.events else { return };
        let file = ev
            .state_dir
            .as_ref()
            .map(|d| logs::state_file(d, &self.name, svc));
        let known = ev
            .cursors
            .get(svc)
            .cloned()
            .or_else(|| file.as_ref().and_then(|f| logs::LogCursor::load(f)));
        let per_read = ev.per_read;
        let next = match known {
            None => {
                // First read: the existing entries are history.
                tracing::info!(source = NAME, endpoint = %self.name, log = %svc, entries = present.len(), "log service found; its existing entries are marked seen, not sent");
                logs::LogCursor {
                    seen: present.iter().map(|(id, ..)| id.clone()).collect(),
                }
            }
            Some(cursor) => {
                let new: Vec<&(String, String, Option<Value>)> = present
                    .iter()
                    .filter(|(id, ..)| !cursor.seen.contains(id))
                    .take(per_read)
                    .collect();
                let to_fetch: Vec<String> = new
                    .iter()
                    .filter(|(_, _, body)| body.is_none())
                    .map(|(_, path, _)| path.clone())
                    .collect();
                let fetched = if to_fetch.is_empty() {
                    Vec::new()
                } else {
                    let mut g = Gathered::default();
                    let values = self.fetch_all(&to_fetch, &mut g).await;
                    out.errors.extend(g.errors);
                    values
                };
                let mut seen: std::collections::BTreeSet<String> = cursor
                    .seen
                    .iter()
                    .filter(|id| present.iter().any(|(p, ..)| p == *id))
                    .cloned()
                    .collect();
                for (id, path, body) in new {
                    let body = body.as_ref().or_else(|| {
                        fetched.iter().find(|v| {
                            v.get("@odata.id").and_then(Value::as_str) == Some(path.as_str())
                        })
                    });
                    let Some(body) = body else { continue };
                    match logs::event(&self.name, svc, body) {
                        Some(e) => polled.events.push(e),
                        None => {
                            tracing::debug!(source = NAME, endpoint = %self.name, log = %svc, entry = %path, "a log entry without an Id: skipped");
                        }
                    }
                    seen.insert(id.clone());
                }
                logs::LogCursor { seen }
            }
        };
        let Some(ev) = &mut self.events else { return };
        if ev.cursors.get(svc) != Some(&next) {
            if let Some(path) = file {
                match next.to_bytes() {
                    Ok(contents) => polled.checkpoints.push(Checkpoint { path, contents }),
                    Err(e) => {
                        tracing::warn!(source = NAME, endpoint = %self.name, error = %e, "cannot encode the log cursor")
                    }
                }
            }
            moved.push((svc.to_owned(), next));
        }
    }
}

fn device_error(name: &str, errors: &[FetchError]) -> Option<DeviceError> {
    let first = errors.first()?;
    let more = match errors.len() {
        1 => String::new(),
        n => format!(" (and {} more failed requests)", n - 1),
    };
    Some(DeviceError::new(
        first.kind(),
        format!("endpoint {name:?}: {first}{more}"),
    ))
}

impl device::Device for Endpoint {
    async fn read(&mut self) -> Read {
        let stale = self
            .discovered_at
            .is_none_or(|at| at.elapsed() >= self.rediscover);
        if stale {
            self.structure.clear();
            self.discovered_at = Some(Instant::now());
            if let Some(ev) = &mut self.events {
                ev.checked = ev.stream.is_some();
                ev.log_services = None;
            }
        }
        let gathered = self.walk().await;
        let mut events = Polled::default();
        if self.events.is_some() {
            // Their failures are failed requests, not a failed read: the
            // readings stand whatever the logs do.
            let mut side = Gathered::default();
            let mut moved = Vec::new();
            self.start_stream(&mut side).await;
            self.read_logs(&mut side, &mut events, &mut moved).await;
            self.note_event_errors(&side.errors);
            // No await from here on: the events leave with this read.
            if let Some(ev) = &mut self.events {
                ev.cursors.extend(moved);
            }
        }
        let error = device_error(&self.name, &gathered.errors);
        if error.is_some() {
            // Something moved or broke: discover again next time.
            self.structure.clear();
            self.api.client.close_idle();
        }
        let mut readings = gathered.readings;
        if error.is_none() || self.template.is_empty() {
            self.template = readings
                .iter()
                .map(|r| {
                    let mut t = r.clone();
                    t.value = None;
                    t.state = ReadingState::Unknown;
                    t
                })
                .collect();
        } else {
            // A partial read: what could not be read this time is unknown.
            for t in &self.template {
                let seen = readings
                    .iter()
                    .any(|r| r.name == t.name && r.q == t.q && r.labels == t.labels);
                if !seen {
                    readings.push(t.clone());
                }
            }
        }
        let polled = Polled {
            readings,
            events: events.events,
            checkpoints: events.checkpoints,
        };
        match error {
            None => Read::ok(polled),
            Some(e) => Read::failed(polled, e),
        }
    }

    fn unread(&self, _error: &DeviceError) -> Polled {
        Polled::from(self.template.clone())
    }

    fn counters(&self) -> Vec<(&'static str, f64)> {
        use std::sync::atomic::Ordering::Relaxed;
        vec![
            (
                selfmetrics::q::REDFISH_REQUESTS,
                self.api.client.requests() as f64,
            ),
            (
                selfmetrics::q::REDFISH_FAILED_REQUESTS,
                self.api.failed_requests.load(Relaxed) as f64,
            ),
            (
                selfmetrics::q::REDFISH_SESSIONS_CREATED,
                self.api.sessions_created.load(Relaxed) as f64,
            ),
            (
                selfmetrics::q::REDFISH_CONNECTIONS,
                self.api.client.connects() as f64,
            ),
        ]
    }
}
