//! One client connection, MQTT 3.1.1 or 5 (decided by CONNECT): CONNECT and
//! its checks, then a reader and a writer until the connection ends, then the
//! will and the session's fate.
//!
//! The reader handles what the client sends, in order: it routes a PUBLISH,
//! waits if an in-process subscriber asked it to (see `queue.rs`), and only then
//! queues the PUBACK, so the client's own inflight window is the backpressure.
//! The writer sends control packets and deliveries from the session's queue,
//! within the inflight window (`max_inflight`, at most the client's Receive
//! Maximum). Two tasks, so that a client that stops reading can never stop the
//! broker from reading it, and the other way round.
//!
//! The reader ends the connection on anything malformed or forbidden by the
//! protocol (a wildcard or non-UTF-8 topic, a packet over the limit, a second
//! CONNECT, a topic alias we did not allow...), counting it by reason; MQTT 5
//! clients get a DISCONNECT with the reason code first.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use bytes::BytesMut;
use rumqttc::v5::mqttbytes::v5::PublishProperties;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;

use super::Core;
use super::acl::{self, Role};
use super::auth::{Identity, Refusal};
use super::codec::{
    AckReason, Codec, ConnectCode, ConnectIn, Control, DecodeError, DisconnectReason, EncodeError,
    Incoming, PublishIn, SubCode, Version, WillIn,
};
use super::metrics::DropReason;
use super::queue::{Overflow, Queue};
use super::router::{Message, Origin, Queued, RetainHandling, SubOptions, Subscriber};
use super::sessions::{Attached, ClientKey, Session, Stop, StopReason};
use super::topic::{self, TopicNameError};

/// Control packets queued for the writer; the reader waits beyond that.
const CONTROL_QUEUE: usize = 256;
/// Deliveries taken from the queue per round of the writer.
const WRITE_BATCH: usize = 256;
/// Bytes gathered before a write.
const WRITE_CHUNK: usize = 64 * 1024;
/// How long the end of a connection waits for its writer to flush.
const FLUSH_TIMEOUT: Duration = Duration::from_secs(5);

/// Where a connection came from.
#[derive(Debug, Clone)]
pub struct Peer {
    pub addr: SocketAddr,
    /// `listen_v4`, `listen_v5` or `listen_tls`.
    pub listener: &'static str,
    /// A verified client certificate's CN (TLS listener).
    pub certificate: Option<String>,
}

/// How a connection ended, from the reader's side.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum End {
    /// DISCONNECT; MQTT 5 reason 0x04 asks for the will anyway.
    Disconnect {
        will: bool,
    },
    /// The socket closed or failed.
    Closed,
    /// Something the client sent: counted by reason.
    Protocol {
        reason: &'static str,
        code: DisconnectReason,
    },
    KeepAlive,
    Stopped(StopReason),
}

impl End {
    fn publishes_will(self) -> bool {
        match self {
            End::Disconnect { will } => will,
            End::Stopped(StopReason::Shutdown) => false,
            End::Closed | End::Protocol { .. } | End::KeepAlive | End::Stopped(_) => true,
        }
    }

    fn label(self) -> &'static str {
        match self {
            End::Disconnect { .. } => "disconnect",
            End::Closed => "closed",
            End::Protocol { reason, .. } => reason,
            End::KeepAlive => "keepalive_timeout",
            End::Stopped(StopReason::TakenOver) => "taken_over",
            End::Stopped(StopReason::Shutdown) => "shutdown",
            End::Stopped(StopReason::WriteFailed) => "write_failed",
        }
    }
}

fn protocol(reason: &'static str, code: DisconnectReason) -> End {
    End::Protocol { reason, code }
}

/// Serves one connection until it ends. `deadline`: when CONNECT must be in.
pub async fn serve<S>(core: Arc<Core>, stream: S, peer: Peer, deadline: Instant)
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let (mut rd, mut wr) = tokio::io::split(stream);
    let mut buf = BytesMut::with_capacity(4096);
    let max = core.config.max_packet_bytes;
    let connect = match read_connect(&core, &mut rd, &mut buf, deadline).await {
        Ok(c) => c,
        Err(Some((version, code))) => {
            // A refusal the client can read (unsupported version, malformed v5).
            let mut out = BytesMut::new();
            let _ = Codec::new(version, max).encode_control(&refusal(code), &mut out);
            let _ = tokio::time::timeout(FLUSH_TIMEOUT, wr.write_all(&out)).await;
            return;
        }
        Err(None) => return,
    };
    let mut codec = Codec::new(connect.version, max);
    codec.max_outgoing = connect.max_packet_size;
    let accepted = match accept(&core, &connect, &peer) {
        Ok(a) => a,
        Err((code, result)) => {
            core.metrics.connects.inc(result);
            if let Some(suppressed) = core.metrics.should_log(result) {
                tracing::warn!(
                    peer = %peer.addr,
                    listener = peer.listener,
                    client_id = truncate(&connect.client_id),
                    user = connect.username.as_deref().map(truncate),
                    result,
                    suppressed,
                    "MQTT connection refused"
                );
            }
            let mut out = BytesMut::new();
            let _ = codec.encode_control(&refusal(code), &mut out);
            let _ = tokio::time::timeout(FLUSH_TIMEOUT, wr.write_all(&out)).await;
            return;
        }
    };

    let stop: Stop = Arc::new(watch::channel(None).0);
    let id = core.next_id();
    let capacity = core.config.max_queued_messages;
    let queued = Arc::clone(&core.metrics.queued);
    let name = accepted.key.client_id().to_owned();
    let make = move || {
        Arc::new(Subscriber::new(
            id,
            &name,
            Queue::new(capacity, Overflow::Drop, queued),
            false,
        ))
    };
    let attached = core
        .sessions
        .attach(
            accepted.key.clone(),
            connect.clean_start,
            make,
            &core.router,
            Arc::clone(&stop),
        )
        .await;
    let Some(attached) = attached else {
        core.metrics.connects.inc("takeover_timeout");
        tracing::warn!(
            client_id = truncate(accepted.key.client_id()),
            "takeover timed out: the previous connection did not let go"
        );
        return;
    };
    if *core.shutdown.borrow() {
        core.metrics.connects.inc("shutting_down");
        core.sessions
            .detach(attached, &core.router, u32::MAX, &core.metrics);
        return;
    }
    core.metrics.connects.inc("accepted");
    tracing::debug!(
        peer = %peer.addr,
        listener = peer.listener,
        client_id = truncate(accepted.key.client_id()),
        role = accepted.role.kind(),
        version = connect.version.as_str(),
        session_present = attached.present,
        "MQTT client connected"
    );
    let window = usize::from(connect.receive_maximum.clamp(1, core.config.max_inflight));
    let mut first = BytesMut::new();
    let connack = Control::ConnAck {
        session_present: attached.present,
        code: ConnectCode::Accepted,
        assigned_client_id: accepted.assigned.clone(),
        receive_maximum: core.config.max_inflight,
        max_packet_size: u32::try_from(max).unwrap_or(u32::MAX),
    };
    if codec.encode_control(&connack, &mut first).is_err() {
        core.sessions
            .detach(attached, &core.router, u32::MAX, &core.metrics);
        return;
    }

    let (ctl_tx, ctl_rx) = mpsc::channel(CONTROL_QUEUE);
    let writer = tokio::spawn(write_loop(
        wr,
        codec.clone(),
        Arc::clone(&attached.session),
        ctl_rx,
        Arc::clone(&stop),
        window,
        Arc::clone(&core),
        first,
    ));
    let mut conn = Connection {
        core: Arc::clone(&core),
        codec,
        role: accepted.role,
        session: Arc::clone(&attached.session),
        ctl: ctl_tx,
        stop: stop.subscribe(),
        session_expiry: connect.session_expiry,
    };
    let keep_alive = Duration::from_millis(u64::from(connect.keep_alive) * 1500);
    let end = conn.read_loop(&mut rd, &mut buf, keep_alive).await;
    if let End::Protocol { reason, code } = end {
        core.metrics.protocol_errors.inc(reason);
        if let Some(suppressed) = core.metrics.should_log(reason) {
            tracing::warn!(
                peer = %peer.addr,
                client_id = truncate(accepted.key.client_id()),
                reason,
                suppressed,
                "MQTT client disconnected for a protocol error"
            );
        }
        let _ = conn.ctl.send(Control::Disconnect(code)).await;
    }
    if end == End::KeepAlive {
        core.metrics.protocol_errors.inc("keepalive_timeout");
        let _ = conn
            .ctl
            .send(Control::Disconnect(DisconnectReason::KeepAliveTimeout))
            .await;
    }
    let session_expiry = conn.session_expiry;
    // The writer flushes and ends once the reader's channel is gone; one stuck
    // on a peer that stopped reading is stopped.
    drop(conn);
    if tokio::time::timeout(FLUSH_TIMEOUT, writer).await.is_err() {
        stop.send_replace(Some(StopReason::WriteFailed));
    }
    tracing::debug!(
        client_id = truncate(accepted.key.client_id()),
        end = end.label(),
        "MQTT client gone"
    );
    let session = Arc::clone(&attached.session);
    if end.publishes_will()
        && let Some(will) = accepted.will
    {
        publish_will(&core, &session, &attached, will, session_expiry);
    }
    core.sessions
        .detach(attached, &core.router, session_expiry, &core.metrics);
}

/// What CONNECT was accepted as.
#[derive(Debug)]
struct Accepted {
    key: ClientKey,
    role: Role,
    /// A client id the broker made up (MQTT 5 tells the client).
    assigned: Option<String>,
    will: Option<Will>,
}

/// A will, checked.
#[derive(Debug)]
struct Will {
    msg: Message,
    delay: u32,
}

fn refusal(code: ConnectCode) -> Control {
    Control::ConnAck {
        session_present: false,
        code,
        assigned_client_id: None,
        receive_maximum: 0,
        max_packet_size: 0,
    }
}

fn truncate(s: &str) -> String {
    // Client-controlled text: keep the logs bounded.
    s.chars().take(128).collect()
}

/// Reads the first packet: CONNECT, within the deadline. `Err(Some(..))` when
/// the client should be told (in the version it spoke).
async fn read_connect<R: AsyncRead + Unpin>(
    core: &Core,
    rd: &mut R,
    buf: &mut BytesMut,
    deadline: Instant,
) -> Result<Box<ConnectIn>, Option<(Version, ConnectCode)>> {
    let max = core.config.max_packet_bytes;
    let version = loop {
        match super::codec::connect_version(buf, max) {
            Ok(Some(v)) => break v,
            Ok(None) => {}
            Err(DecodeError::UnsupportedVersion(level)) => {
                core.metrics.connects.inc("unsupported_version");
                tracing::debug!(level, "MQTT CONNECT with an unsupported protocol level");
                return Err(Some((Version::V311, ConnectCode::UnsupportedVersion)));
            }
            Err(e) => {
                core.metrics.connects.inc("malformed");
                core.metrics.protocol_errors.inc(e.kind());
                return Err(None);
            }
        }
        buf.reserve(4096);
        match tokio::time::timeout_at(deadline, rd.read_buf(buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return Err(None),
            Ok(Ok(n)) => {
                core.metrics
                    .bytes_received
                    .fetch_add(n as u64, Ordering::Relaxed);
            }
            Err(_) => {
                core.metrics.connects.inc("timeout");
                return Err(None);
            }
        }
    };
    let codec = Codec::new(version, max);
    match codec.decode(buf) {
        Ok(Some(Incoming::Connect(c))) => Ok(c),
        _ => {
            core.metrics.connects.inc("malformed");
            core.metrics.protocol_errors.inc("malformed");
            Err(Some((version, ConnectCode::Malformed)).filter(|_| version == Version::V5))
        }
    }
}

/// Checks CONNECT: credentials, client id, role, will.
fn accept(
    core: &Core,
    c: &ConnectIn,
    peer: &Peer,
) -> Result<Accepted, (ConnectCode, &'static str)> {
    if c.auth_method.is_some() {
        return Err((ConnectCode::BadAuthMethod, "bad_credentials"));
    }
    let identity = core
        .auth
        .authenticate(
            c.username.as_deref(),
            c.password.as_deref().map(str::as_bytes),
            peer.certificate.as_deref(),
        )
        .map_err(|r| match r {
            Refusal::BadCredentials => (ConnectCode::BadCredentials, "bad_credentials"),
            Refusal::NoCredentials => (ConnectCode::NotAuthorized, "no_credentials"),
        })?;
    let (key, role, assigned) = match &identity {
        Identity::User(name) | Identity::Certificate(name) => {
            let role = acl::role_of(name, &core.config.acl)
                .ok_or((ConnectCode::NotAuthorized, "not_authorized"))?;
            (ClientKey::Identity(Arc::from(name.as_str())), role, None)
        }
        Identity::Internal => (
            ClientKey::Identity(Arc::from(super::auth::INTERNAL_USER)),
            Role::Full,
            None,
        ),
        Identity::Anonymous => {
            if c.client_id.is_empty() {
                // MQTT 3.1.1 3.1.3.1: an empty id needs a clean session.
                if c.version == Version::V311 && !c.clean_start {
                    return Err((ConnectCode::BadClientId, "bad_client_id"));
                }
                let random: u64 = rand::random();
                let id = format!("auto-{random:016x}");
                (
                    ClientKey::Anonymous(Arc::from(id.as_str())),
                    Role::Full,
                    Some(id),
                )
            } else {
                (
                    ClientKey::Anonymous(Arc::from(c.client_id.as_str())),
                    Role::Full,
                    None,
                )
            }
        }
    };
    // MQTT 5: the assigned id is told only when the client sent none.
    let assigned = assigned.filter(|_| c.version == Version::V5);
    let will = match &c.will {
        None => None,
        Some(w) => Some(check_will(core, w, &role)?),
    };
    Ok(Accepted {
        key,
        role,
        assigned,
        will,
    })
}

/// A will is a publish made later: the same checks, at CONNECT.
fn check_will(core: &Core, w: &WillIn, role: &Role) -> Result<Will, (ConnectCode, &'static str)> {
    let Ok(topic) = &w.topic else {
        core.metrics
            .protocol_errors
            .inc(TopicNameError::NotUtf8.kind());
        return Err((ConnectCode::TopicNameInvalid, "malformed"));
    };
    if let Err(e) = topic::validate_name(topic) {
        core.metrics.protocol_errors.inc(e.kind());
        return Err((ConnectCode::TopicNameInvalid, "malformed"));
    }
    if let Err(d) = acl::may_publish(role, topic) {
        core.metrics.denied_publish.inc(d.kind());
        return Err((ConnectCode::NotAuthorized, "not_authorized"));
    }
    Ok(Will {
        msg: Message {
            topic: Arc::from(topic.as_str()),
            payload: w.payload.clone(),
            qos: w.qos,
            retain: w.retain,
            properties: forwarded(w.properties.clone()),
            origin: Origin::Broker,
        },
        delay: w.delay,
    })
}

/// MQTT 5 properties passed on to subscribers: not the topic alias or
/// subscription identifiers (per connection), nor the message expiry (not
/// implemented here, so it is not passed on unchanged either).
fn forwarded(p: Option<PublishProperties>) -> Option<Arc<PublishProperties>> {
    let mut p = p?;
    p.topic_alias = None;
    p.subscription_identifiers.clear();
    p.message_expiry_interval = None;
    (p != PublishProperties::default()).then(|| Arc::new(p))
}

/// Publishes a will now, or after its MQTT 5 delay unless the client is back
/// by then (a new connection to the session) or the session ends first.
fn publish_will(
    core: &Arc<Core>,
    session: &Arc<Session>,
    attached: &Attached,
    will: Will,
    expiry: u32,
) {
    let delay = will.delay.min(expiry);
    if delay == 0 {
        route(core, Arc::new(will.msg));
        return;
    }
    let core = Arc::clone(core);
    let session = Arc::clone(session);
    let generation = attached.generation;
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_secs(u64::from(delay))).await;
        if session.generation() == generation && !session.subscriber.is_online() {
            route(&core, Arc::new(will.msg));
        }
    });
}

/// Routes a message the broker publishes itself (a will), without waiting.
fn route(core: &Core, msg: Arc<Message>) {
    let routed = core.router.publish(msg);
    core.metrics.count_routed(&routed);
}

/// The reader's side of a connection.
struct Connection {
    core: Arc<Core>,
    codec: Codec,
    role: Role,
    session: Arc<Session>,
    ctl: mpsc::Sender<Control>,
    stop: watch::Receiver<Option<StopReason>>,
    session_expiry: u32,
}

/// What handling one packet leads to.
enum Next {
    Go,
    End(End),
}

impl Connection {
    async fn read_loop<R: AsyncRead + Unpin>(
        &mut self,
        rd: &mut R,
        buf: &mut BytesMut,
        keep_alive: Duration,
    ) -> End {
        let mut heard = Instant::now();
        loop {
            loop {
                match self.codec.decode(buf) {
                    Ok(Some(packet)) => {
                        match self.handle(packet).await {
                            Next::Go => {}
                            Next::End(end) => return end,
                        }
                        // Heard from now, not from when the packet arrived:
                        // waiting for a local subscriber is not the client's
                        // silence.
                        heard = Instant::now();
                    }
                    Ok(None) => break,
                    Err(DecodeError::TooLarge(_)) => {
                        return protocol("packet_too_large", DisconnectReason::PacketTooLarge);
                    }
                    Err(_) => return protocol("malformed", DisconnectReason::Malformed),
                }
            }
            if buf.capacity() - buf.len() < 4096 {
                buf.reserve(16 * 1024);
            }
            let expired = heard + keep_alive;
            tokio::select! {
                r = rd.read_buf(buf) => match r {
                    Ok(0) | Err(_) => return End::Closed,
                    Ok(n) => {
                        self.core.metrics.bytes_received.fetch_add(n as u64, Ordering::Relaxed);
                    }
                },
                () = tokio::time::sleep_until(expired), if !keep_alive.is_zero() => return End::KeepAlive,
                r = self.stop.changed() => return End::Stopped(stopped(r.ok().and(*self.stop.borrow()))),
            }
        }
    }

    async fn send(&self, c: Control) -> Next {
        match self.ctl.send(c).await {
            Ok(()) => Next::Go,
            Err(_) => Next::End(End::Closed),
        }
    }

    async fn handle(&mut self, packet: Incoming) -> Next {
        match packet {
            Incoming::Publish(p) => self.publish(p).await,
            Incoming::PubAck(pkid) => {
                if self.session.state().inflight.remove(&pkid).is_some() {
                    self.session.window.notify_one();
                }
                Next::Go
            }
            Incoming::PubRel(pkid) => {
                let found = self.session.state().incoming_qos2.remove(&pkid);
                self.send(Control::PubComp { pkid, found }).await
            }
            // The broker delivers at QoS 1 at most: nothing of ours to complete.
            Incoming::PubRec(_) | Incoming::PubComp(_) => Next::Go,
            Incoming::Subscribe { pkid, filters } => {
                let mut codes = Vec::with_capacity(filters.len());
                for f in filters {
                    codes.push(self.subscribe(f));
                }
                self.send(Control::SubAck { pkid, codes }).await
            }
            Incoming::Unsubscribe { pkid, filters } => {
                let found = filters
                    .iter()
                    .map(|f| {
                        self.session.state().subscriptions.remove(f);
                        self.core.router.unsubscribe(self.session.subscriber.id, f)
                    })
                    .collect();
                self.send(Control::UnsubAck { pkid, found }).await
            }
            Incoming::PingReq => self.send(Control::PingResp).await,
            Incoming::Disconnect {
                reason,
                session_expiry,
            } => {
                // MQTT 5 3.14.2.2.2: an expiry set at 0 by CONNECT stays 0.
                if let Some(e) = session_expiry
                    && self.session_expiry != 0
                {
                    self.session_expiry = e;
                }
                Next::End(End::Disconnect {
                    will: reason == 0x04,
                })
            }
            Incoming::Connect(_) | Incoming::Unexpected(_) => Next::End(protocol(
                "protocol_violation",
                DisconnectReason::ProtocolError,
            )),
        }
    }

    async fn publish(&mut self, p: PublishIn) -> Next {
        let Ok(topic) = p.topic else {
            return Next::End(protocol(
                TopicNameError::NotUtf8.kind(),
                DisconnectReason::TopicNameInvalid,
            ));
        };
        // CONNACK announced no topic aliases (Topic Alias Maximum absent = 0).
        if p.topic_alias.is_some() {
            return Next::End(protocol("topic_alias", DisconnectReason::TopicAliasInvalid));
        }
        if let Err(e) = topic::validate_name(&topic) {
            return Next::End(protocol(e.kind(), DisconnectReason::TopicNameInvalid));
        }
        let metrics = &self.core.metrics;
        metrics.messages_received.fetch_add(1, Ordering::Relaxed);
        if p.qos == 2 && self.session.state().incoming_qos2.contains(&p.pkid) {
            // A resent QoS 2 PUBLISH we have: delivered once already.
            return self
                .send(Control::PubRec {
                    pkid: p.pkid,
                    reason: AckReason::Success,
                })
                .await;
        }
        if let Err(denial) = acl::may_publish(&self.role, &topic) {
            metrics.denied_publish.inc(denial.kind());
            if let Some(suppressed) = metrics.should_log(denial.kind()) {
                tracing::warn!(
                    client_id = truncate(self.session.key.client_id()),
                    topic = truncate(&topic),
                    reason = denial.kind(),
                    suppressed,
                    "MQTT publish denied"
                );
            }
            return self.deny(p.qos, p.pkid).await;
        }
        let msg = Arc::new(Message {
            topic: Arc::from(topic),
            payload: p.payload,
            qos: p.qos,
            retain: p.retain,
            properties: forwarded(p.properties),
            origin: Origin::Session(self.session.subscriber.id),
        });
        let routed = self.core.router.publish(msg);
        metrics.count_routed(&routed);
        for slow in routed.waits {
            tokio::select! {
                () = slow.queue.wait_for_space() => {}
                r = self.stop.changed() => {
                    return Next::End(End::Stopped(stopped(r.ok().and(*self.stop.borrow()))));
                }
            }
        }
        match p.qos {
            0 => Next::Go,
            1 => {
                self.send(Control::PubAck {
                    pkid: p.pkid,
                    reason: AckReason::Success,
                })
                .await
            }
            _ => {
                self.session.state().incoming_qos2.insert(p.pkid);
                self.send(Control::PubRec {
                    pkid: p.pkid,
                    reason: AckReason::Success,
                })
                .await
            }
        }
    }

    /// A refused publish. MQTT 5 says why (0x87). MQTT 3.1.1 has no way to: the
    /// message is acknowledged and dropped, as mosquitto does. Disconnecting
    /// instead would make a misconfigured agent reconnect and resend the same
    /// buffered batch for ever (it keeps a message until its PUBACK); the refusal
    /// is counted and logged here, where the operator looks.
    async fn deny(&mut self, qos: u8, pkid: u16) -> Next {
        let v5 = self.codec.version == Version::V5;
        let reason = if v5 {
            AckReason::NotAuthorized
        } else {
            AckReason::Success
        };
        match qos {
            0 => Next::Go,
            1 => self.send(Control::PubAck { pkid, reason }).await,
            _ => {
                if !v5 {
                    // The exchange goes on to PUBREL/PUBCOMP.
                    self.session.state().incoming_qos2.insert(pkid);
                }
                self.send(Control::PubRec { pkid, reason }).await
            }
        }
    }

    fn subscribe(&mut self, f: super::codec::FilterIn) -> SubCode {
        if topic::parse_subscription(&f.filter).is_err() {
            return SubCode::FilterInvalid;
        }
        if let Err(denial) = acl::may_subscribe(&self.role, &f.filter) {
            let metrics = &self.core.metrics;
            metrics.denied_subscribe.inc(denial.kind());
            if let Some(suppressed) = metrics.should_log("subscribe_denied") {
                tracing::warn!(
                    client_id = truncate(self.session.key.client_id()),
                    filter = truncate(&f.filter),
                    reason = denial.kind(),
                    suppressed,
                    "MQTT subscribe denied"
                );
            }
            return SubCode::NotAuthorized;
        }
        let opts = SubOptions {
            // QoS 2 deliveries are not implemented: granted QoS 1 at most.
            qos: f.qos.min(1),
            no_local: f.no_local,
            retain_as_published: f.retain_as_published,
            retain_handling: match f.retain_handling {
                1 => RetainHandling::IfNew,
                2 => RetainHandling::Never,
                _ => RetainHandling::Always,
            },
        };
        match self
            .core
            .router
            .subscribe(&self.session.subscriber, &f.filter, opts)
        {
            Ok(_) => {
                self.session.state().subscriptions.insert(f.filter, opts);
                SubCode::Granted(opts.qos)
            }
            Err(_) => SubCode::FilterInvalid,
        }
    }
}

fn stopped(reason: Option<StopReason>) -> StopReason {
    reason.unwrap_or(StopReason::WriteFailed)
}

/// The writer: control packets first, then deliveries within the window.
#[allow(clippy::too_many_arguments)]
async fn write_loop<W: AsyncWrite + Unpin>(
    mut wr: W,
    codec: Codec,
    session: Arc<Session>,
    mut ctl: mpsc::Receiver<Control>,
    stop: Stop,
    window: usize,
    core: Arc<Core>,
    mut out: BytesMut,
) {
    let metrics = Arc::clone(&core.metrics);
    let mut stopped_rx = stop.subscribe();
    // Unacknowledged deliveries of a resumed session go first, marked DUP.
    {
        let st = session.state();
        for (pkid, q) in &st.inflight {
            let mut q = q.clone();
            q.dup = true;
            if codec.encode_publish(&q, *pkid, &mut out).is_ok() {
                metrics.messages_sent.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
    let mut batch: Vec<Queued> = Vec::with_capacity(WRITE_BATCH);
    let mut closing = false;
    loop {
        while out.len() < WRITE_CHUNK {
            match ctl.try_recv() {
                Ok(Control::Disconnect(reason)) => {
                    let _ = codec.encode_control(&Control::Disconnect(reason), &mut out);
                    closing = true;
                    break;
                }
                Ok(c) => {
                    let _ = codec.encode_control(&c, &mut out);
                }
                Err(mpsc::error::TryRecvError::Empty) => break,
                Err(mpsc::error::TryRecvError::Disconnected) => {
                    closing = true;
                    break;
                }
            }
        }
        let room = window.saturating_sub(session.inflight_len());
        if !closing && room > 0 && out.len() < WRITE_CHUNK {
            session
                .subscriber
                .queue
                .pop_into(room.min(WRITE_BATCH), &mut batch);
            for q in batch.drain(..) {
                deliver(&codec, &session, &metrics, q, &mut out);
            }
        }
        if !out.is_empty() {
            let n = out.len();
            tokio::select! {
                r = wr.write_all(&out) => {
                    if r.is_err() {
                        stop.send_if_modified(|s| s.is_none() && { *s = Some(StopReason::WriteFailed); true });
                        return;
                    }
                }
                _ = stopped_rx.changed() => {
                    let reason = *stopped_rx.borrow();
                    finish(&mut wr, &codec, reason).await;
                    return;
                }
            }
            metrics.bytes_sent.fetch_add(n as u64, Ordering::Relaxed);
            out.clear();
            continue;
        }
        if closing {
            // Stopped from outside (takeover, shutdown): the client is told why.
            let reason = *stopped_rx.borrow();
            finish(&mut wr, &codec, reason).await;
            return;
        }
        let room = window.saturating_sub(session.inflight_len());
        tokio::select! {
            c = ctl.recv() => match c {
                Some(Control::Disconnect(reason)) => {
                    let _ = codec.encode_control(&Control::Disconnect(reason), &mut out);
                    closing = true;
                }
                Some(c) => {
                    let _ = codec.encode_control(&c, &mut out);
                }
                None => closing = true,
            },
            () = session.subscriber.queue.readable(), if room > 0 => {}
            () = session.window.notified(), if room == 0 => {}
            _ = stopped_rx.changed() => {
                let reason = *stopped_rx.borrow();
                    finish(&mut wr, &codec, reason).await;
                return;
            }
        }
    }
}

/// Tells an MQTT 5 client stopped from outside why, and closes.
async fn finish<W: AsyncWrite + Unpin>(wr: &mut W, codec: &Codec, reason: Option<StopReason>) {
    let code = match reason {
        Some(StopReason::TakenOver) => Some(DisconnectReason::SessionTakenOver),
        Some(StopReason::Shutdown) => Some(DisconnectReason::ServerShuttingDown),
        Some(StopReason::WriteFailed) | None => None,
    };
    let mut out = BytesMut::new();
    if let Some(code) = code
        && codec
            .encode_control(&Control::Disconnect(code), &mut out)
            .is_ok()
        && !out.is_empty()
    {
        let _ = tokio::time::timeout(Duration::from_secs(1), wr.write_all(&out)).await;
    }
    let _ = tokio::time::timeout(Duration::from_secs(1), wr.shutdown()).await;
}

/// Encodes one delivery; QoS 1 goes inflight under a fresh packet id.
fn deliver(
    codec: &Codec,
    session: &Session,
    metrics: &super::metrics::Metrics,
    q: Queued,
    out: &mut BytesMut,
) {
    let result = if q.qos == 0 {
        codec.encode_publish(&q, 0, out)
    } else {
        let mut st = session.state();
        let Some(pkid) = st.next_pkid() else {
            // 65535 inflight: the window (at most 65535) prevents it.
            drop(st);
            session.subscriber.queue.push_unbounded(q);
            return;
        };
        let r = codec.encode_publish(&q, pkid, out);
        if r.is_ok() {
            st.inflight.insert(pkid, q);
        }
        r
    };
    match result {
        Ok(()) => {
            metrics.messages_sent.fetch_add(1, Ordering::Relaxed);
        }
        Err(EncodeError::TooLarge) => {
            metrics.dropped.inc(DropReason::TooLargeForClient.as_str());
            session
                .subscriber
                .count_drop(DropReason::TooLargeForClient, 1);
        }
        Err(EncodeError::Other(e)) => {
            if let Some(suppressed) = metrics.should_log("encode_error") {
                tracing::error!(error = e, suppressed, "cannot encode a delivery");
            }
        }
    }
}
