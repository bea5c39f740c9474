//! Authentication and every request of one endpoint: basic auth, or one
//! Redfish session (`POST .../SessionService/Sessions`, then `X-Auth-Token`)
//! created on first use, reused, created again after a 401, and deleted on
//! shutdown ([`logout_all`]) or when the endpoint goes away. Live sessions
//! are kept in a process-wide list so that a stop deletes them whatever the
//! endpoints' tasks are doing at the time.

use std::{
    sync::{
        Arc, Mutex,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use serde_json::Value;

use super::http::{BodyStream, Client, HttpError, Response, base64};

/// Where sessions are created when the service root does not say.
pub const DEFAULT_SESSIONS: &str = "/redfish/v1/SessionService/Sessions";

/// Why a resource could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FetchError {
    #[error("{0}")]
    Http(#[from] HttpError),
    #[error("HTTP {status} for {path}")]
    Status { status: u16, path: String },
    #[error(
        "the service refused the credentials of user {user:?} (HTTP {status}): check the username and the password file"
    )]
    Refused { user: String, status: u16 },
    #[error("{path}: the answer is not JSON: {message}")]
    Json { path: String, message: String },
    #[error("session creation answered {status} without an X-Auth-Token")]
    NoToken { status: u16 },
}

impl FetchError {
    pub fn kind(&self) -> &'static str {
        match self {
            FetchError::Http(e) => e.kind(),
            FetchError::Status { .. } => "status",
            FetchError::Refused { .. } => "auth",
            FetchError::Json { .. } => "malformed",
            FetchError::NoToken { .. } => "auth",
        }
    }
}

/// How requests are authenticated.
#[derive(Debug, Clone)]
pub enum Credentials {
    Anonymous,
    Basic { user: String, header: String },
    Session { user: String, password: String },
}

impl Credentials {
    pub fn basic(user: &str, password: &str) -> Credentials {
        Credentials::Basic {
            user: user.to_owned(),
            header: format!("Basic {}", base64(format!("{user}:{password}").as_bytes())),
        }
    }
}

/// A session the agent holds.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Held {
    token: String,
    /// The session resource's path, for the DELETE.
    location: String,
}

struct Live {
    id: u64,
    endpoint: String,
    client: Arc<Client>,
    held: Held,
}

static LIVE: Mutex<Vec<Live>> = Mutex::new(Vec::new());
static NEXT_ID: AtomicU64 = AtomicU64::new(1);
/// Set by [`logout_all`]: no session is created after it (a read still in
/// flight at the stop would otherwise leave one behind).
static CLOSING: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// The process is stopping: no new session from now on, and every session
/// held is deleted ([`logout_all`]).
pub async fn shutdown(limit: Duration) {
    CLOSING.store(true, Ordering::SeqCst);
    logout_all(limit).await;
}

/// Deletes every session the process holds (on shutdown), each within
/// `limit`; logs the ones that could not be deleted.
pub async fn logout_all(limit: Duration) {
    let live: Vec<Live> = LIVE
        .lock()
        .map(|mut l| l.drain(..).collect())
        .unwrap_or_default();
    let deletes = live.into_iter().map(|l| async move {
        match tokio::time::timeout(limit, delete(&l.client, &l.held)).await {
            Ok(Ok(())) => tracing::debug!(endpoint = %l.endpoint, "redfish session deleted"),
            Ok(Err(e)) => tracing::warn!(endpoint = %l.endpoint, error = %e, "cannot delete the redfish session"),
            Err(_) => tracing::warn!(endpoint = %l.endpoint, "the redfish session delete timed out"),
        }
    });
    futures_util::future::join_all(deletes).await;
}

async fn delete(client: &Client, held: &Held) -> Result<(), FetchError> {
    let r = client
        .send_unlimited(
            "DELETE",
            &held.location,
            &[("X-Auth-Token", &held.token)],
            None,
        )
        .await?;
    match r.status {
        200..=299 | 404 | 401 => Ok(()),
        status => Err(FetchError::Status {
            status,
            path: held.location.clone(),
        }),
    }
}

/// One endpoint's requests.
pub struct Api {
    pub endpoint: String,
    pub client: Arc<Client>,
    credentials: Credentials,
    sessions_path: Mutex<String>,
    /// The session in use and its id in [`LIVE`]; the async lock makes
    /// concurrent requests wait for one creation rather than make several.
    session: tokio::sync::Mutex<Option<(u64, Held)>>,
    pub sessions_created: AtomicU64,
    pub failed_requests: AtomicU64,
}

impl std::fmt::Debug for Api {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Api")
            .field("endpoint", &self.endpoint)
            .finish_non_exhaustive()
    }
}

fn path_of(location: &str) -> String {
    // An absolute URL: keep its path.
    let rest = location
        .strip_prefix("https://")
        .or_else(|| location.strip_prefix("http://"));
    match rest {
        Some(r) => r
            .find('/')
            .map_or_else(|| "/".to_owned(), |i| r[i..].to_owned()),
        None => location.to_owned(),
    }
}

impl Api {
    pub fn new(endpoint: String, client: Arc<Client>, credentials: Credentials) -> Api {
        Api {
            endpoint,
            client,
            credentials,
            sessions_path: Mutex::new(DEFAULT_SESSIONS.to_owned()),
            session: tokio::sync::Mutex::new(None),
            sessions_created: AtomicU64::new(0),
            failed_requests: AtomicU64::new(0),
        }
    }

    /// The service root names where sessions are created.
    pub fn set_sessions_path(&self, path: &str) {
        if let Ok(mut p) = self.sessions_path.lock() {
            *p = path.to_owned();
        }
    }

    async fn create(&self, user: &str, password: &str) -> Result<Held, FetchError> {
        let path = self
            .sessions_path
            .lock()
            .map(|p| p.clone())
            .unwrap_or_else(|_| DEFAULT_SESSIONS.to_owned());
        // Two strings, JSON-escaped (serde_json's string encoder, without
        // building a Value).
        let quoted = |v: &str| serde_json::to_string(v).unwrap_or_else(|_| "\"\"".to_owned());
        let body = format!(
            "{{\"UserName\":{},\"Password\":{}}}",
            quoted(user),
            quoted(password)
        );
        let r = self
            .client
            .send("POST", &path, &[], Some(body.as_bytes()))
            .await?;
        match r.status {
            200..=299 => {}
            401 | 403 => {
                return Err(FetchError::Refused {
                    user: user.to_owned(),
                    status: r.status,
                });
            }
            status => return Err(FetchError::Status { status, path }),
        }
        let token = r
            .header("X-Auth-Token")
            .filter(|t| !t.is_empty())
            .ok_or(FetchError::NoToken { status: r.status })?
            .to_owned();
        let location = r
            .header("Location")
            .map(path_of)
            .or_else(|| {
                serde_json::from_slice::<Value>(&r.body)
                    .ok()
                    .and_then(|v| v.get("@odata.id").and_then(Value::as_str).map(path_of))
            })
            .unwrap_or_else(|| path.clone());
        self.sessions_created.fetch_add(1, Ordering::Relaxed);
        Ok(Held { token, location })
    }

    /// The session's token, creating the session when there is none, or
    /// replacing `stale` (the token a request was refused with).
    async fn token(
        &self,
        user: &str,
        password: &str,
        stale: Option<&str>,
    ) -> Result<String, FetchError> {
        let mut session = self.session.lock().await;
        if let Some((id, held)) = session.as_ref() {
            if stale != Some(held.token.as_str()) {
                return Ok(held.token.clone());
            }
            // Refused: the service dropped it (timeout, reset). Delete it
            // anyway in case only this request was refused.
            let (id, held) = (*id, held.clone());
            forget(id);
            *session = None;
            let _ = delete(&self.client, &held).await;
        }
        if CLOSING.load(Ordering::SeqCst) {
            return Err(FetchError::Http(HttpError::Io(
                "the agent is stopping".into(),
            )));
        }
        let held = self.create(user, password).await?;
        if CLOSING.load(Ordering::SeqCst) {
            let _ = delete(&self.client, &held).await;
            return Err(FetchError::Http(HttpError::Io(
                "the agent is stopping".into(),
            )));
        }
        let id = NEXT_ID.fetch_add(1, Ordering::Relaxed);
        if let Ok(mut live) = LIVE.lock() {
            live.push(Live {
                id,
                endpoint: self.endpoint.clone(),
                client: Arc::clone(&self.client),
                held: held.clone(),
            });
        }
        let token = held.token.clone();
        *session = Some((id, held));
        Ok(token)
    }

    async fn send_once(
        &self,
        method: &str,
        path: &str,
        stale: Option<&str>,
    ) -> Result<(Response, Option<String>), FetchError> {
        match &self.credentials {
            Credentials::Anonymous => Ok((self.client.send(method, path, &[], None).await?, None)),
            Credentials::Basic { header, .. } => Ok((
                self.client
                    .send(method, path, &[("Authorization", header)], None)
                    .await?,
                None,
            )),
            Credentials::Session { user, password } => {
                let token = self.token(user, password, stale).await?;
                let r = self
                    .client
                    .send(method, path, &[("X-Auth-Token", &token)], None)
                    .await?;
                Ok((r, Some(token)))
            }
        }
    }

    /// GETs a resource as JSON; a 401 with a session is retried once with a
    /// new session.
    pub async fn get(&self, path: &str) -> Result<Value, FetchError> {
        let result = self.get_inner(path).await;
        if result.is_err() {
            self.failed_requests.fetch_add(1, Ordering::Relaxed);
        }
        result
    }

    async fn get_inner(&self, path: &str) -> Result<Value, FetchError> {
        let (mut r, token) = self.send_once("GET", path, None).await?;
        if r.status == 401 && token.is_some() {
            r = self.send_once("GET", path, token.as_deref()).await?.0;
        }
        match r.status {
            200..=299 => serde_json::from_slice(&r.body).map_err(|e| FetchError::Json {
                path: path.to_owned(),
                message: e.to_string(),
            }),
            401 | 403 => Err(FetchError::Refused {
                user: match &self.credentials {
                    Credentials::Anonymous => String::new(),
                    Credentials::Basic { user, .. } | Credentials::Session { user, .. } => {
                        user.clone()
                    }
                },
                status: r.status,
            }),
            status => Err(FetchError::Status {
                status,
                path: path.to_owned(),
            }),
        }
    }

    /// Opens a long-lived GET (the EventService's SSE stream) with the
    /// endpoint's credentials, `extra` headers added; a 401 with a session is
    /// retried once with a new session. Any status but 2xx is an error.
    pub async fn open_stream(
        &self,
        path: &str,
        extra: &[(&str, &str)],
    ) -> Result<BodyStream, FetchError> {
        let mut stale: Option<String> = None;
        for _ in 0..2 {
            let mut headers: Vec<(&str, &str)> = extra.to_vec();
            let token;
            match &self.credentials {
                Credentials::Anonymous => {}
                Credentials::Basic { header, .. } => headers.push(("Authorization", header)),
                Credentials::Session { user, password } => {
                    token = self.token(user, password, stale.as_deref()).await?;
                    headers.push(("X-Auth-Token", &token));
                }
            }
            let body = self.client.open_stream(path, &headers).await?;
            match body.status {
                200..=299 => return Ok(body),
                401 if matches!(self.credentials, Credentials::Session { .. })
                    && stale.is_none() =>
                {
                    stale = headers
                        .iter()
                        .find(|(k, _)| *k == "X-Auth-Token")
                        .map(|(_, v)| (*v).to_owned());
                }
                401 | 403 => {
                    return Err(FetchError::Refused {
                        user: self.user().to_owned(),
                        status: body.status,
                    });
                }
                status => {
                    return Err(FetchError::Status {
                        status,
                        path: path.to_owned(),
                    });
                }
            }
        }
        Err(FetchError::Refused {
            user: self.user().to_owned(),
            status: 401,
        })
    }

    fn user(&self) -> &str {
        match &self.credentials {
            Credentials::Anonymous => "",
            Credentials::Basic { user, .. } | Credentials::Session { user, .. } => user,
        }
    }

    /// Deletes this endpoint's session now (the endpoint is going away).
    pub async fn logout(&self) {
        let mut session = self.session.lock().await;
        if let Some((id, held)) = session.take() {
            forget(id);
            let _ = delete(&self.client, &held).await;
        }
    }

    /// The live-list id of the session held, if any (for a drop without a
    /// runtime to delete it in).
    pub fn held_id(&self) -> Option<u64> {
        self.session
            .try_lock()
            .ok()
            .and_then(|s| s.as_ref().map(|(id, _)| *id))
    }
}

fn forget(id: u64) {
    if let Ok(mut live) = LIVE.lock() {
        live.retain(|l| l.id != id);
    }
}

/// Deletes one live session in the background (an endpoint dropped while the
/// runtime runs on).
pub fn logout_in_background(id: u64) {
    let Ok(handle) = tokio::runtime::Handle::try_current() else {
        return;
    };
    let taken = LIVE.lock().ok().and_then(|mut live| {
        let i = live.iter().position(|l| l.id == id)?;
        Some(live.remove(i))
    });
    if let Some(l) = taken {
        handle.spawn(async move {
            let _ = tokio::time::timeout(Duration::from_secs(5), delete(&l.client, &l.held)).await;
        });
    }
}
