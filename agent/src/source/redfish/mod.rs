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

pub mod config;
pub mod http;
pub mod map;
pub mod session;

use std::{collections::HashMap, sync::Arc, time::Duration};

use serde_json::Value;
use sitewatch_protocol::{Reading, ReadingState};
use tokio::time::Instant;

use super::{Poll, Polled, SourceError};
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
        for e in &config.endpoints {
            let mut e = e.clone();
            e.request_timeout = e.request_timeout.min(config.timeout.mul_f64(0.9));
            let e = &e;
            let endpoint = Endpoint::new(e, config.rediscover).map_err(|m| {
                read_error("redfish endpoint", format!("endpoint {:?}: {m}", e.name))
            })?;
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
        Ok(RedfishSource { endpoints: fleet })
    }
}

impl Poll for RedfishSource {
    fn name(&self) -> &'static str {
        NAME
    }

    async fn poll(&mut self) -> Result<Polled, SourceError> {
        let (polled, _) = self.endpoints.poll().await;
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
                out.readings
                    .extend(map::leak_detector(&self.ctx(), ("chassis", &id), &d));
            }
        }
    }

    async fn leak_detection(&mut self, path: &str, owner: (&str, &str), out: &mut Gathered) {
        // Read every time: its groups carry the detectors' states.
        match self.api.get(path).await {
            Ok(ld) => {
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
                    out.readings
                        .extend(map::circuit(&self.ctx(), &id, circuit_kind, &circuit));
                }
            }
        }
        if let Some(o) = link(pdu, "Outlets") {
            for outlet in self.members(&o, out).await {
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
        }
        let gathered = self.walk().await;
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
        let polled = Polled::from(readings);
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
