//! The small Redfish server written for the agent's tests: it counts
//! sessions, checks credentials, answers `$expand`, and breaks answers on
//! request (malformed JSON, a 500, a truncated body, a delay); and a slow TCP
//! proxy. It serves a mockup folder as sushy-static does, and, at the path
//! set with [`RedfishServer::serve_events`], a Server-Sent Events stream the
//! test writes to ([`RedfishServer::send_event_bytes`]) or cuts
//! ([`RedfishServer::drop_streams`]): no Redfish peer at hand serves SSE
//! (sushy-static does not).

#![allow(dead_code)] // each test binary uses a part

use std::{
    collections::{BTreeMap, HashMap},
    path::{Path, PathBuf},
    sync::{Arc, Mutex},
    time::Duration,
};

use tokio::{
    io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader},
    net::{TcpListener, TcpStream},
};

/// How the test server breaks the answer for a path.
#[derive(Debug, Clone, PartialEq)]
pub enum Fault {
    /// `{"Id": ` and nothing more, with a matching Content-Length.
    Malformed,
    /// HTTP 500 with an error body.
    Status500,
    /// A Content-Length larger than the body, then the connection closes.
    Truncated,
    /// The answer after this delay.
    Delay(Duration),
}

/// What the test server saw and how it behaves.
#[derive(Debug, Default)]
pub struct State {
    pub requests: u64,
    pub expand_requests: u64,
    pub sessions_created: u64,
    pub sessions_deleted: u64,
    /// token -> session id
    pub live: BTreeMap<String, u64>,
    pub refused: u64,
    pub faults: HashMap<String, Fault>,
    /// Paths requested, in order.
    pub paths: Vec<String>,
    pub expand: bool,
    /// The SSE path, if any.
    pub sse_path: Option<String>,
    /// The `Last-Event-ID` of every stream opened, in order.
    pub sse_opens: Vec<Option<String>>,
    /// Feeds the open streams: bytes, or `None` to close them.
    pub sse_feed: Option<tokio::sync::broadcast::Sender<Option<Vec<u8>>>>,
}

pub struct RedfishServer {
    pub port: u16,
    pub state: Arc<Mutex<State>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for RedfishServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl RedfishServer {
    /// Forgets every session, as a BMC does on a session timeout or reset:
    /// the next request with an old token gets a 401.
    pub fn expire_sessions(&self) {
        self.state.lock().unwrap().live.clear();
    }

    pub fn fault(&self, path: &str, fault: Option<Fault>) {
        let mut s = self.state.lock().unwrap();
        match fault {
            Some(f) => s.faults.insert(path.to_owned(), f),
            None => s.faults.remove(path),
        };
    }

    /// Serves an SSE stream at `path` (the test also names it in the
    /// EventService's `ServerSentEventUri`).
    pub fn serve_events(&self, path: &str) {
        let mut s = self.state.lock().unwrap();
        s.sse_path = Some(path.to_owned());
        s.sse_feed = Some(tokio::sync::broadcast::channel(64).0);
    }

    /// Writes raw bytes to every open stream.
    pub fn send_event_bytes(&self, bytes: &[u8]) {
        if let Some(f) = &self.state.lock().unwrap().sse_feed {
            let _ = f.send(Some(bytes.to_vec()));
        }
    }

    /// Closes every open stream (the connection ends).
    pub fn drop_streams(&self) {
        if let Some(f) = &self.state.lock().unwrap().sse_feed {
            let _ = f.send(None);
        }
    }

    /// The `Last-Event-ID` of every stream opened so far.
    pub fn sse_opens(&self) -> Vec<Option<String>> {
        self.state.lock().unwrap().sse_opens.clone()
    }

    pub fn snapshot(&self) -> (u64, u64, usize, u64) {
        let s = self.state.lock().unwrap();
        (
            s.sessions_created,
            s.sessions_deleted,
            s.live.len(),
            s.requests,
        )
    }
}

/// Serves `root` (a mockup folder) over plain HTTP/1.1 on a free loopback
/// port; `user`/`password` are the only credentials it accepts (sessions or
/// basic); `$expand=.($levels=1)` works when `expand`.
pub async fn redfish_server(
    root: PathBuf,
    user: &str,
    password: &str,
    expand: bool,
) -> RedfishServer {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let state = Arc::new(Mutex::new(State {
        expand,
        ..State::default()
    }));
    let creds = Arc::new((user.to_owned(), password.to_owned(), root));
    let shared = Arc::clone(&state);
    let task = tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            let state = Arc::clone(&shared);
            let creds = Arc::clone(&creds);
            tokio::spawn(async move {
                let _ = serve(stream, state, creds).await;
            });
        }
    });
    RedfishServer { port, state, task }
}

fn load(root: &Path, path: &str) -> Option<serde_json::Value> {
    let rel = path.strip_prefix("/redfish/v1")?.trim_matches('/');
    let file = if rel.is_empty() {
        root.join("index.json")
    } else {
        root.join(rel).join("index.json")
    };
    serde_json::from_str(&std::fs::read_to_string(file).ok()?).ok()
}

fn basic(user: &str, password: &str) -> String {
    const A: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let input = format!("{user}:{password}").into_bytes();
    let mut out = String::new();
    for c in input.chunks(3) {
        let b = [c[0], *c.get(1).unwrap_or(&0), *c.get(2).unwrap_or(&0)];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            out.push(if i <= c.len() {
                A[((n >> (18 - 6 * i)) & 63) as usize] as char
            } else {
                '='
            });
        }
    }
    format!("Basic {out}")
}

async fn serve(
    stream: TcpStream,
    state: Arc<Mutex<State>>,
    creds: Arc<(String, String, PathBuf)>,
) -> std::io::Result<()> {
    let (user, password, root) = (&creds.0, &creds.1, &creds.2);
    // Each answer goes out in one write, without Nagle: a BMC's latency, not
    // a delayed ACK's, is what the tests and the bench see.
    stream.set_nodelay(true)?;
    let mut conn = BufReader::new(stream);
    loop {
        let mut line = String::new();
        if conn.read_line(&mut line).await? == 0 {
            return Ok(());
        }
        let mut parts = line.split_whitespace();
        let method = parts.next().unwrap_or("").to_owned();
        let target = parts.next().unwrap_or("").to_owned();
        let mut headers = BTreeMap::new();
        loop {
            let mut h = String::new();
            conn.read_line(&mut h).await?;
            let h = h.trim_end();
            if h.is_empty() {
                break;
            }
            if let Some((k, v)) = h.split_once(':') {
                headers.insert(k.trim().to_ascii_lowercase(), v.trim().to_owned());
            }
        }
        let length: usize = headers
            .get("content-length")
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        let mut body = vec![0u8; length];
        conn.read_exact(&mut body).await?;
        let (path, query) = match target.split_once('?') {
            Some((p, q)) => (p.to_owned(), Some(q.to_owned())),
            None => (target.clone(), None),
        };
        let path = if path.len() > 1 {
            path.trim_end_matches('/').to_owned()
        } else {
            path
        };
        let (fault, authorized, expand) = {
            let mut s = state.lock().unwrap();
            s.requests += 1;
            s.paths.push(target.clone());
            let token_ok = headers
                .get("x-auth-token")
                .is_some_and(|t| s.live.contains_key(t));
            let basic_ok = headers.get("authorization") == Some(&basic(user, password));
            (s.faults.get(&path).cloned(), token_ok || basic_ok, s.expand)
        };
        if let Some(Fault::Delay(d)) = &fault {
            tokio::time::sleep(*d).await;
        }
        let feed = {
            let mut s = state.lock().unwrap();
            match (&s.sse_path, &s.sse_feed) {
                (Some(p), Some(f)) if *p == path && method == "GET" && authorized => {
                    let rx = f.subscribe();
                    s.sse_opens.push(headers.get("last-event-id").cloned());
                    Some(rx)
                }
                _ => None,
            }
        };
        if let Some(mut rx) = feed {
            // Delimited by the connection's end, as SSE servers often are.
            let stream = conn.get_mut();
            stream
                .write_all(b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nCache-Control: no-cache\r\n\r\n")
                .await?;
            stream.flush().await?;
            while let Ok(Some(bytes)) = rx.recv().await {
                stream.write_all(&bytes).await?;
                stream.flush().await?;
            }
            return Ok(());
        }
        let sessions = "/redfish/v1/SessionService/Sessions";
        let (status, extra, body): (u16, Vec<(String, String)>, Vec<u8>) = if method == "POST"
            && path == sessions
        {
            let v: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
            if v["UserName"] == user.as_str() && v["Password"] == password.as_str() {
                let mut s = state.lock().unwrap();
                s.sessions_created += 1;
                let id = s.sessions_created;
                let token = format!("token-{id}-{}", rand_part());
                s.live.insert(token.clone(), id);
                let location = format!("{sessions}/{id}");
                let body = serde_json::json!({"@odata.id": location, "Id": id.to_string(), "UserName": user});
                (
                    201,
                    vec![
                        ("X-Auth-Token".into(), token),
                        ("Location".into(), location),
                    ],
                    body.to_string().into_bytes(),
                )
            } else {
                state.lock().unwrap().refused += 1;
                (
                    401,
                    vec![],
                    br#"{"error":{"code":"Base.1.0.NoValidSession"}}"#.to_vec(),
                )
            }
        } else if method == "DELETE" && path.starts_with(sessions) {
            let mut s = state.lock().unwrap();
            let id: u64 = path
                .rsplit('/')
                .next()
                .and_then(|i| i.parse().ok())
                .unwrap_or(0);
            let token = s
                .live
                .iter()
                .find(|(_, v)| **v == id)
                .map(|(k, _)| k.clone());
            match token {
                Some(t) if headers.get("x-auth-token") == Some(&t) => {
                    s.live.remove(&t);
                    s.sessions_deleted += 1;
                    (204, vec![], Vec::new())
                }
                _ => (401, vec![], Vec::new()),
            }
        } else if method != "GET" {
            (405, vec![], Vec::new())
        } else if path != "/redfish/v1" && !authorized {
            (
                401,
                vec![],
                br#"{"error":{"code":"Base.1.0.NoValidSession"}}"#.to_vec(),
            )
        } else {
            match load(root, &path) {
                None => (404, vec![], Vec::new()),
                Some(mut v) => {
                    if query.as_deref().is_some_and(|q| q.contains("$expand")) {
                        if !expand {
                            (400, vec![], Vec::new())
                        } else {
                            state.lock().unwrap().expand_requests += 1;
                            if let Some(members) =
                                v.get_mut("Members").and_then(|m| m.as_array_mut())
                            {
                                for m in members.iter_mut() {
                                    let id = m["@odata.id"].as_str().unwrap_or("").to_owned();
                                    if let Some(full) = load(root, &id) {
                                        *m = full;
                                    }
                                }
                            }
                            (200, vec![], serde_json::to_vec(&v).unwrap())
                        }
                    } else {
                        if path == "/redfish/v1" && !expand {
                            v.as_object_mut()
                                .unwrap()
                                .remove("ProtocolFeaturesSupported");
                        }
                        (200, vec![], serde_json::to_vec(&v).unwrap())
                    }
                }
            }
        };
        let stream = conn.get_mut();
        match fault {
            Some(Fault::Malformed) if status == 200 => {
                let b = br#"{"Id": "#;
                let head = format!(
                    "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
                    b.len()
                );
                stream.write_all(head.as_bytes()).await?;
                stream.write_all(b).await?;
            }
            Some(Fault::Status500) => {
                let b = br#"{"error":{"code":"Base.1.0.InternalError"}}"#;
                let head = format!(
                    "HTTP/1.1 500 Internal Server Error\r\nContent-Length: {}\r\n\r\n",
                    b.len()
                );
                stream.write_all(head.as_bytes()).await?;
                stream.write_all(b).await?;
            }
            Some(Fault::Truncated) if status == 200 => {
                let head = format!(
                    "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
                    body.len()
                );
                stream.write_all(head.as_bytes()).await?;
                stream.write_all(&body[..body.len() / 2]).await?;
                stream.flush().await?;
                return Ok(());
            }
            _ => {
                let reason = match status {
                    200 => "OK",
                    201 => "Created",
                    204 => "No Content",
                    401 => "Unauthorized",
                    404 => "Not Found",
                    _ => "Other",
                };
                let mut head =
                    format!("HTTP/1.1 {status} {reason}\r\nContent-Type: application/json\r\n");
                for (k, v) in &extra {
                    head.push_str(&format!("{k}: {v}\r\n"));
                }
                if status != 204 {
                    head.push_str(&format!("Content-Length: {}\r\n", body.len()));
                }
                head.push_str("\r\n");
                let mut message = head.into_bytes();
                message.extend_from_slice(&body);
                stream.write_all(&message).await?;
            }
        }
        stream.flush().await?;
    }
}

fn rand_part() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(0);
    h.finish()
}

/// A TCP proxy that holds every connection's first bytes for `delay`
/// before forwarding (a BMC that takes seconds to answer).
pub struct SlowProxy {
    pub port: u16,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for SlowProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

pub async fn slow_proxy(upstream: u16, delay: Duration) -> SlowProxy {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let task = tokio::spawn(async move {
        loop {
            let Ok((mut client, _)) = listener.accept().await else {
                return;
            };
            tokio::spawn(async move {
                tokio::time::sleep(delay).await;
                let Ok(mut server) = TcpStream::connect(("127.0.0.1", upstream)).await else {
                    return;
                };
                let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
            });
        }
    });
    SlowProxy { port, task }
}
