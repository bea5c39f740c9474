//! One SNMP agent as a device of the shared device layer: its client, its
//! profile, how it walks tables (GETBULK, or GETNEXT after a device broke on
//! bulk), and its counters. Decoding is the profile's (pure).

use std::{collections::BTreeMap, sync::Arc, time::Duration};

use async_snmp::{Auth, Client, Retry, UdpHandle, UdpTransport, UsmConfig, Value as SnmpValue};
use sitewatch_protocol::Reading;
use sitewatch_snmp_profile::{Oid, Profile, Value, Walked, oid_string};

use super::{
    NAME,
    config::{AuthProtocol, PrivProtocol, SnmpDeviceConfig, Version, read_secret},
};
use crate::{
    device::{self, DeviceError, Read},
    selfmetrics,
    source::Polled,
};

/// The most requests one table walk may take: a device looping on the same
/// OIDs cannot hold a poll for ever.
const MAX_REQUESTS_PER_WALK: usize = 1000;

/// A UDP transport for several devices (async-snmp's has no Debug).
#[derive(Clone, Default)]
pub struct SharedTransport(Arc<tokio::sync::OnceCell<UdpTransport>>);

impl std::fmt::Debug for SharedTransport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.0.initialized() {
            "SharedTransport(bound)"
        } else {
            "SharedTransport"
        })
    }
}

/// What a device is told to read with.
#[derive(Debug, Clone)]
pub struct Settings {
    pub host: String,
    pub port: u16,
    pub version: Version,
    pub auth: Auth,
    pub timeout: Duration,
    pub retries: u32,
    pub max_repetitions: u32,
    pub bulk: bool,
    pub max_oids: usize,
    pub labels: BTreeMap<String, String>,
    pub uplinks: Vec<String>,
    /// The source's one IPv4 socket, shared by its devices (bound on first use).
    pub shared: SharedTransport,
}

/// The credentials of a device's config, secrets read from their files.
pub fn auth(d: &SnmpDeviceConfig) -> Result<Auth, String> {
    match d.version {
        Version::V1 | Version::V2c => {
            let community = match &d.community_file {
                Some(f) => read_secret("community file", f)?,
                None => "public".to_owned(),
            };
            Ok(if d.version == Version::V1 {
                Auth::v1(community)
            } else {
                Auth::v2c(community)
            })
        }
        Version::V3 => {
            let user = d.user.clone().unwrap_or_default();
            let usm = UsmConfig::new(user.into_bytes());
            let secret = |f: &Option<std::path::PathBuf>, what: &str| match f {
                Some(f) => read_secret(what, f),
                None => Err(format!("{what} is not set")),
            };
            let usm = match (d.auth, d.privacy) {
                (None, _) => usm,
                (Some(a), None) => usm
                    .auth(
                        auth_protocol(a),
                        secret(&d.auth_password_file, "auth password file")?,
                    )
                    .map_err(|e| format!("auth: {e}"))?,
                (Some(a), Some(p)) => usm
                    .auth_priv(
                        auth_protocol(a),
                        secret(&d.auth_password_file, "auth password file")?,
                        priv_protocol(p),
                        secret(&d.privacy_password_file, "privacy password file")?,
                    )
                    .map_err(|e| format!("privacy: {e}"))?,
            };
            Ok(usm.into())
        }
    }
}

pub fn auth_protocol(a: AuthProtocol) -> async_snmp::AuthProtocol {
    match a {
        AuthProtocol::Md5 => async_snmp::AuthProtocol::Md5,
        AuthProtocol::Sha => async_snmp::AuthProtocol::Sha1,
        AuthProtocol::Sha224 => async_snmp::AuthProtocol::Sha224,
        AuthProtocol::Sha256 => async_snmp::AuthProtocol::Sha256,
        AuthProtocol::Sha384 => async_snmp::AuthProtocol::Sha384,
        AuthProtocol::Sha512 => async_snmp::AuthProtocol::Sha512,
    }
}

pub fn priv_protocol(p: PrivProtocol) -> async_snmp::PrivProtocol {
    match p {
        PrivProtocol::Des => async_snmp::PrivProtocol::Des,
        PrivProtocol::Aes => async_snmp::PrivProtocol::Aes128,
        PrivProtocol::Aes192 => async_snmp::PrivProtocol::Aes192Blumenthal,
        PrivProtocol::Aes256 => async_snmp::PrivProtocol::Aes256Blumenthal,
        PrivProtocol::Aes192c => async_snmp::PrivProtocol::Aes192Reeder,
        PrivProtocol::Aes256c => async_snmp::PrivProtocol::Aes256Reeder,
    }
}

/// One SNMP agent.
pub struct SnmpDevice {
    pub name: String,
    profile: Arc<Profile>,
    settings: Settings,
    client: Option<Client<UdpHandle>>,
    /// Cleared for good when the device fails a bulk walk that GETNEXT reads.
    bulk: bool,
    requests: u64,
    malformed: u64,
    fallbacks: u64,
    /// The readings of the last read, as a template: when the device cannot
    /// be read its table rows (PDU phases, ports) are reported unknown rather
    /// than vanishing.
    last: Vec<Reading>,
}

impl std::fmt::Debug for SnmpDevice {
    // async-snmp's Client has no Debug; whether one is open is enough.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SnmpDevice")
            .field("name", &self.name)
            .field("host", &self.settings.host)
            .field("port", &self.settings.port)
            .field("connected", &self.client.is_some())
            .field("bulk", &self.bulk)
            .finish_non_exhaustive()
    }
}

/// A failed request, as the device layer reports it.
fn failed(name: &str, v3: bool, what: &str, e: &async_snmp::Error) -> DeviceError {
    let kind = match e.kind().as_str() {
        // Bounded: async-snmp's kinds are a closed, snake_case set.
        k @ ("network" | "timeout" | "auth" | "report" | "decode" | "malformed_response"
        | "snmp" | "privacy" | "config" | "response_shape") => k,
        _ => "snmp_other",
    };
    let kind = if kind == "timeout" {
        device::TIMEOUT
    } else {
        kind
    };
    // async-snmp drops a v3 answer it cannot authenticate (the agent's
    // wrongDigest Report is unauthenticated): wrong credentials look like
    // silence, so say both.
    let hint = if kind == device::TIMEOUT && v3 {
        " (a v3 agent that answers discovery but not the request: check the user, the passphrases and the protocols)"
    } else {
        ""
    };
    DeviceError::new(kind, format!("device {name:?}: {what}: {e}{hint}"))
}

fn arcs(oid: &async_snmp::Oid) -> Oid {
    oid.arcs().to_vec()
}

/// The value as the profile sees it.
pub fn convert(v: &SnmpValue) -> Value {
    match v {
        SnmpValue::Integer(i) => Value::Int(i64::from(*i)),
        SnmpValue::Counter32(u)
        | SnmpValue::Gauge32(u)
        | SnmpValue::UInteger32(u)
        | SnmpValue::TimeTicks(u) => Value::Unsigned(u64::from(*u)),
        SnmpValue::Counter64(u) => Value::Unsigned(*u),
        SnmpValue::OctetString(b) => Value::Text(b.to_vec()),
        SnmpValue::ObjectIdentifier(o) => Value::Oid(arcs(o)),
        SnmpValue::Null
        | SnmpValue::NoSuchObject
        | SnmpValue::NoSuchInstance
        | SnmpValue::EndOfMibView => Value::Missing,
        SnmpValue::IpAddress(_) => Value::Other("IpAddress"),
        _ => Value::Other("opaque"),
    }
}

/// How a walk asks for the next rows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Bulk(u32),
    Next,
}

impl SnmpDevice {
    pub fn new(name: String, profile: Arc<Profile>, settings: Settings) -> Self {
        let bulk = settings.bulk && settings.version != Version::V1;
        SnmpDevice {
            name,
            profile,
            settings,
            client: None,
            bulk,
            requests: 0,
            malformed: 0,
            fallbacks: 0,
            last: Vec::new(),
        }
    }

    async fn client(&mut self) -> Result<Client<UdpHandle>, DeviceError> {
        if let Some(c) = &self.client {
            return Ok(c.clone());
        }
        let s = &self.settings;
        let retry = Retry::fixed(s.retries, Duration::ZERO)
            .map_err(|e| DeviceError::new("config", format!("device {:?}: {e}", self.name)))?;
        let client = Client::builder((s.host.as_str(), s.port), s.auth.clone())
            .request_timeout(s.timeout)
            .construction_timeout(s.timeout)
            .retry(retry)
            .connect()
            .await
            .map_err(|e| {
                failed(
                    &self.name,
                    self.settings.version == Version::V3,
                    "cannot open the client",
                    &e,
                )
            })?;
        self.client = Some(client.clone());
        Ok(client)
    }

    /// GETs every scalar, a chunk at a time.
    async fn get_scalars(
        &mut self,
        client: &Client<UdpHandle>,
        walked: &mut Walked,
    ) -> Result<(), DeviceError> {
        let oids: Vec<async_snmp::Oid> = self
            .profile
            .scalar_oids()
            .iter()
            .map(|o| async_snmp::Oid::from_slice(o))
            .collect();
        for chunk in oids.chunks(self.settings.max_oids.max(1)) {
            self.requests += 1;
            let response = client
                .get_many(chunk)
                .await
                .map_err(|e| failed(&self.name, self.settings.version == Version::V3, "GET", &e))?;
            for o in chunk {
                walked.answered(arcs(o));
            }
            for vb in response.varbinds {
                walked.insert(arcs(&vb.oid), convert(&vb.value));
            }
        }
        Ok(())
    }

    /// Walks `columns` side by side: each request asks for the next rows of
    /// every column not finished yet.
    async fn walk(
        &mut self,
        client: &Client<UdpHandle>,
        columns: &[Oid],
        mode: Mode,
        walked: &mut Walked,
    ) -> async_snmp::Result<()> {
        if self.settings.version == Version::V1 {
            // v1 has no endOfMibView: the end of the MIB is a noSuchName
            // error for the whole request. One column at a time.
            for c in columns {
                self.walk_group(client, std::slice::from_ref(c), Mode::Next, walked, true)
                    .await?;
            }
            return Ok(());
        }
        self.walk_group(client, columns, mode, walked, false).await
    }

    async fn walk_group(
        &mut self,
        client: &Client<UdpHandle>,
        columns: &[Oid],
        mode: Mode,
        walked: &mut Walked,
        v1: bool,
    ) -> async_snmp::Result<()> {
        // (column, cursor): the last OID read in that column.
        let mut cursors: Vec<(usize, Oid)> = columns.iter().cloned().enumerate().collect();
        let mut requests = 0;
        while !cursors.is_empty() && requests < MAX_REQUESTS_PER_WALK {
            requests += 1;
            self.requests += 1;
            let asked: Vec<async_snmp::Oid> = cursors
                .iter()
                .map(|(_, o)| async_snmp::Oid::from_slice(o))
                .collect();
            let answer = match mode {
                Mode::Bulk(r) => client.get_bulk(&asked, 0, r).await,
                Mode::Next => client.get_next_many(&asked).await.map(|r| r.varbinds),
            };
            let varbinds = match answer {
                Ok(v) => v,
                Err(e) if v1 && e.kind().as_str() == "snmp" => return Ok(()),
                Err(e) => return Err(e),
            };
            let n = cursors.len();
            let mut done = vec![false; n];
            let mut advanced = vec![false; n];
            let mut next: Vec<Oid> = cursors.iter().map(|(_, o)| o.clone()).collect();
            // Bulk answers come row by row: varbind k continues column k % n.
            for (k, vb) in varbinds.iter().enumerate() {
                let c = k % n;
                if done[c] {
                    continue;
                }
                let column = &columns[cursors[c].0];
                let oid = arcs(&vb.oid);
                let past = matches!(vb.value, SnmpValue::EndOfMibView) || !oid.starts_with(column);
                // An agent answering an OID not after the one asked would
                // loop the walk: that column ends here.
                if past || oid <= next[c] {
                    done[c] = true;
                    continue;
                }
                walked.insert(oid.clone(), convert(&vb.value));
                next[c] = oid;
                advanced[c] = true;
            }
            for (col, _) in &cursors {
                walked.answered(columns[*col].clone());
            }
            cursors = cursors
                .into_iter()
                .enumerate()
                .filter(|(c, _)| !done[*c] && advanced[*c])
                .map(|(c, (col, _))| (col, next[c].clone()))
                .collect();
        }
        Ok(())
    }

    async fn read_all(&mut self, walked: &mut Walked) -> Result<(), DeviceError> {
        let client = self.client().await?;
        self.get_scalars(&client, walked).await?;
        for group in self.profile.walks() {
            let mode = if self.bulk {
                Mode::Bulk(self.settings.max_repetitions)
            } else {
                Mode::Next
            };
            match self.walk(&client, &group, mode, walked).await {
                Ok(()) => {}
                Err(e)
                    if mode != Mode::Next && !matches!(e.kind().as_str(), "auth" | "network") =>
                {
                    // The GETs of this poll were answered: the device breaks
                    // on GETBULK (a timeout, genErr, tooBig or a garbled
                    // answer). Walk with GETNEXT from now on.
                    tracing::warn!(source = NAME, device = %self.name, error = %e, "GETBULK failed; walking with GETNEXT from now on");
                    self.bulk = false;
                    self.fallbacks += 1;
                    self.walk(&client, &group, Mode::Next, walked)
                        .await
                        .map_err(|e| {
                            failed(
                                &self.name,
                                self.settings.version == Version::V3,
                                "GETNEXT walk",
                                &e,
                            )
                        })?;
                }
                Err(e) => {
                    return Err(failed(
                        &self.name,
                        self.settings.version == Version::V3,
                        "walk",
                        &e,
                    ));
                }
            }
        }
        Ok(())
    }

    /// The device's readings from what was read, with its own labels.
    fn readings(&mut self, walked: &Walked) -> Vec<Reading> {
        let decoded = self.profile.decode(walked, NAME, &self.name);
        if !decoded.malformed.is_empty() {
            self.malformed += decoded.malformed.len() as u64;
            tracing::debug!(source = NAME, device = %self.name, malformed = ?decoded.malformed, "malformed values");
        }
        decoded
            .readings
            .into_iter()
            .map(|r| self.label(r))
            .collect()
    }

    /// Adds the device's labels (they win over the profile's when the
    /// reading is full) and marks uplinks.
    fn label(&self, mut r: Reading) -> Reading {
        let s = &self.settings;
        let uplink = r.q == sitewatch_protocol::quantity::INTERFACE_UP
            && s.uplinks.iter().any(|u| {
                ["port", "alias", "if_index"]
                    .iter()
                    .any(|k| r.labels.get(*k).is_some_and(|v| v == u))
            });
        let mut own: Vec<(String, String)> = s
            .labels
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        if uplink {
            own.push(("port_role".into(), "uplink".into()));
        }
        for (k, v) in own {
            if r.labels.len() >= sitewatch_protocol::limits::MAX_LABELS
                && !r.labels.contains_key(&k)
            {
                // Make room: drop the profile's least telling labels first.
                for drop in ["alias", "descr", "text", "nut"] {
                    if r.labels.remove(drop).is_some() {
                        break;
                    }
                }
            }
            if r.labels.len() < sitewatch_protocol::limits::MAX_LABELS || r.labels.contains_key(&k)
            {
                r.labels.insert(k, v);
            }
        }
        r
    }
}

impl device::Device for SnmpDevice {
    async fn read(&mut self) -> Read {
        let mut walked = Walked::default();
        let result = self.read_all(&mut walked).await;
        if let Err(e) = &result
            && matches!(e.kind, "network" | "config")
        {
            // Open a fresh client (a fresh socket) on the next read.
            self.client = None;
        }
        let mut readings = self.readings(&walked);
        match result {
            Ok(()) => {
                self.last.clone_from(&readings);
                Read::ok(readings.into())
            }
            Err(e) => {
                // Rows the failed read did not reach are unknown, not gone.
                let missing: Vec<Reading> = unknown(&self.last)
                    .into_iter()
                    .filter(|t| !readings.iter().any(|r| r.name == t.name))
                    .collect();
                readings.extend(missing);
                Read::failed(readings.into(), e)
            }
        }
    }

    fn unread(&self, _: &DeviceError) -> Polled {
        if !self.last.is_empty() {
            return unknown(&self.last).into();
        }
        self.profile
            .decode(&Walked::default(), NAME, &self.name)
            .readings
            .into_iter()
            .map(|r| self.label(r))
            .collect::<Vec<_>>()
            .into()
    }

    fn counters(&self) -> Vec<(&'static str, f64)> {
        vec![
            (selfmetrics::q::SNMP_REQUESTS, self.requests as f64),
            (selfmetrics::q::SNMP_MALFORMED_VALUES, self.malformed as f64),
            (selfmetrics::q::SNMP_BULK_FALLBACKS, self.fallbacks as f64),
        ]
    }
}

/// `readings` with their values unknown (labels kept, the enum text dropped).
fn unknown(readings: &[Reading]) -> Vec<Reading> {
    readings
        .iter()
        .map(|r| {
            let mut u = r.clone();
            u.value = None;
            u.state = sitewatch_protocol::ReadingState::Unknown;
            u.labels.remove("text");
            u
        })
        .collect()
}

/// `1.3.6...` of an async-snmp OID, for logs and events.
pub fn oid_text(oid: &async_snmp::Oid) -> String {
    oid_string(oid.arcs())
}
