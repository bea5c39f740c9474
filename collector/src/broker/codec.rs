//! The wire: rumqttc's public codec (`mqttbytes::v4` for MQTT 3.1.1,
//! `v5::mqttbytes::v5` for MQTT 5) frames and parses packets; this module maps
//! both versions onto one set of types, so the session logic is written once.
//!
//! The version is decided by the first packet: CONNECT's protocol level (4 or 5)
//! picks the codec for the rest of the connection. Framing errors are bounded:
//! a length over `max_packet_bytes` is refused from the fixed header alone,
//! before the body is read; anything the codec cannot parse is `Malformed`.

use bytes::{Bytes, BytesMut};
use rumqttc::mqttbytes::v4;
use rumqttc::v5::mqttbytes::v5;

use super::router::Queued;

/// The MQTT version of a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Version {
    V311,
    V5,
}

impl Version {
    pub fn as_str(self) -> &'static str {
        match self {
            Version::V311 => "3.1.1",
            Version::V5 => "5",
        }
    }
}

/// Why bytes from a client are not a usable packet.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    #[error("packet of {0} bytes is over the limit")]
    TooLarge(usize),
    #[error("malformed packet: {0}")]
    Malformed(String),
    #[error("the first packet is not CONNECT")]
    NotConnect,
    /// CONNECT with a protocol level other than 4 (3.1.1) or 5.
    #[error("unsupported protocol level {0}")]
    UnsupportedVersion(u8),
}

impl DecodeError {
    /// The `reason` label when it ends a connection.
    pub fn kind(&self) -> &'static str {
        match self {
            DecodeError::TooLarge(_) => "packet_too_large",
            DecodeError::Malformed(_) => "malformed",
            DecodeError::NotConnect => "protocol_violation",
            DecodeError::UnsupportedVersion(_) => "unsupported_version",
        }
    }
}

/// A will, as CONNECT carries it.
#[derive(Debug, Clone, PartialEq)]
pub struct WillIn {
    /// Not yet validated as a topic name (the session does, like a PUBLISH's).
    pub topic: Result<String, ()>,
    pub payload: Bytes,
    pub qos: u8,
    pub retain: bool,
    /// MQTT 5 Will Delay Interval, seconds.
    pub delay: u32,
    pub properties: Option<v5::PublishProperties>,
}

/// CONNECT, either version.
#[derive(Debug, Clone, PartialEq)]
pub struct ConnectIn {
    pub version: Version,
    pub client_id: String,
    pub clean_start: bool,
    pub keep_alive: u16,
    pub username: Option<String>,
    pub password: Option<String>,
    pub will: Option<WillIn>,
    /// Seconds the session outlives the connection: MQTT 5's Session Expiry
    /// Interval; for 3.1.1, 0 with a clean session and "never" without.
    pub session_expiry: u32,
    /// How many QoS 1/2 deliveries the client takes unacknowledged.
    pub receive_maximum: u16,
    /// The largest packet the client accepts (MQTT 5).
    pub max_packet_size: Option<u32>,
    /// MQTT 5 enhanced authentication, which is not supported.
    pub auth_method: Option<String>,
}

/// PUBLISH from a client.
#[derive(Debug, Clone, PartialEq)]
pub struct PublishIn {
    /// `Err` when a v5 topic is not UTF-8.
    pub topic: Result<String, ()>,
    pub payload: Bytes,
    pub qos: u8,
    pub retain: bool,
    pub pkid: u16,
    pub topic_alias: Option<u16>,
    pub properties: Option<v5::PublishProperties>,
}

/// One filter of a SUBSCRIBE.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FilterIn {
    pub filter: String,
    pub qos: u8,
    pub no_local: bool,
    pub retain_as_published: bool,
    /// 0 always, 1 if new, 2 never (MQTT 5 Retain Handling).
    pub retain_handling: u8,
}

/// A packet from a client, either version.
#[derive(Debug, Clone, PartialEq)]
pub enum Incoming {
    Connect(Box<ConnectIn>),
    Publish(PublishIn),
    PubAck(u16),
    PubRec(u16),
    PubRel(u16),
    PubComp(u16),
    Subscribe {
        pkid: u16,
        filters: Vec<FilterIn>,
    },
    Unsubscribe {
        pkid: u16,
        filters: Vec<String>,
    },
    PingReq,
    /// `reason` is MQTT 5's (0 normal, 4 with will); `session_expiry` an update.
    Disconnect {
        reason: u8,
        session_expiry: Option<u32>,
    },
    /// MQTT 5 AUTH (enhanced authentication), or a packet only servers send.
    Unexpected(&'static str),
}

/// CONNACK outcomes, mapped to each version's codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConnectCode {
    Accepted,
    UnsupportedVersion,
    BadClientId,
    ServerUnavailable,
    BadCredentials,
    NotAuthorized,
    BadAuthMethod,
    TopicNameInvalid,
    Malformed,
}

/// MQTT 5 PUBACK/PUBREC reasons we send.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AckReason {
    Success,
    NotAuthorized,
}

/// A SUBACK code per filter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SubCode {
    Granted(u8),
    NotAuthorized,
    FilterInvalid,
}

/// MQTT 5 DISCONNECT reasons the broker sends (3.1.1 clients are just closed).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DisconnectReason {
    Malformed,
    ProtocolError,
    ServerShuttingDown,
    KeepAliveTimeout,
    SessionTakenOver,
    TopicNameInvalid,
    TopicAliasInvalid,
    PacketTooLarge,
}

/// A packet to a client, other than PUBLISH.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Control {
    ConnAck {
        session_present: bool,
        code: ConnectCode,
        assigned_client_id: Option<String>,
        receive_maximum: u16,
        max_packet_size: u32,
    },
    PubAck {
        pkid: u16,
        reason: AckReason,
    },
    PubRec {
        pkid: u16,
        reason: AckReason,
    },
    PubComp {
        pkid: u16,
        found: bool,
    },
    SubAck {
        pkid: u16,
        codes: Vec<SubCode>,
    },
    UnsubAck {
        pkid: u16,
        found: Vec<bool>,
    },
    PingResp,
    Disconnect(DisconnectReason),
}

/// Why a packet was not written.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EncodeError {
    /// Over the client's Maximum Packet Size: skipped (MQTT 5 3.1.2.25).
    #[error("packet over the client's maximum packet size")]
    TooLarge,
    #[error("cannot encode: {0}")]
    Other(String),
}

/// The fixed header: (first byte, its own length, remaining length), or `None`
/// while incomplete.
fn fixed_header(buf: &[u8]) -> Result<Option<(u8, usize, usize)>, DecodeError> {
    let Some(&byte1) = buf.first() else {
        return Ok(None);
    };
    let mut len = 0usize;
    for (i, b) in buf.iter().skip(1).take(4).enumerate() {
        len |= usize::from(b & 0x7f) << (7 * i);
        if b & 0x80 == 0 {
            return Ok(Some((byte1, i + 2, len)));
        }
    }
    if buf.len() >= 5 {
        return Err(DecodeError::Malformed(
            "remaining length over 4 bytes".into(),
        ));
    }
    Ok(None)
}

/// Reads the protocol level of a complete first packet, which must be CONNECT.
/// `None` while the packet is incomplete.
pub fn connect_version(buf: &[u8], max: usize) -> Result<Option<Version>, DecodeError> {
    let Some((byte1, header, remaining)) = fixed_header(buf)? else {
        return Ok(None);
    };
    if byte1 >> 4 != 1 {
        return Err(DecodeError::NotConnect);
    }
    if remaining > max {
        return Err(DecodeError::TooLarge(remaining + header));
    }
    if buf.len() < header + remaining {
        return Ok(None);
    }
    let body = &buf[header..header + remaining];
    let short = || DecodeError::Malformed("CONNECT too short".into());
    let name_len = usize::from(u16::from_be_bytes([
        *body.first().ok_or_else(short)?,
        *body.get(1).ok_or_else(short)?,
    ]));
    let level = *body.get(2 + name_len).ok_or_else(short)?;
    match level {
        4 => Ok(Some(Version::V311)),
        5 => Ok(Some(Version::V5)),
        other => Err(DecodeError::UnsupportedVersion(other)),
    }
}

/// One connection's codec.
#[derive(Debug, Clone)]
pub struct Codec {
    pub version: Version,
    /// Largest packet accepted from the client.
    pub max_incoming: usize,
    /// Largest packet the client accepts (MQTT 5), once known.
    pub max_outgoing: Option<u32>,
}

impl Codec {
    pub fn new(version: Version, max_incoming: usize) -> Self {
        Codec {
            version,
            max_incoming,
            max_outgoing: None,
        }
    }

    /// The next complete packet in `buf` (consumed), or `None` until more bytes
    /// arrive.
    pub fn decode(&self, buf: &mut BytesMut) -> Result<Option<Incoming>, DecodeError> {
        // Framing first, by hand: the codec's own "insufficient bytes" would be
        // indistinguishable from a body that lies about its lengths.
        let Some((byte1, header, remaining)) = fixed_header(buf)? else {
            return Ok(None);
        };
        if self.version == Version::V5 && byte1 == 0xe0 && remaining < 2 {
            // MQTT 5 allows a DISCONNECT without properties, or without even its
            // reason code (3.14.2.1); rumqttc's reader wants both.
            if buf.len() < header + remaining {
                return Ok(None);
            }
            let frame = buf.split_to(header + remaining);
            return Ok(Some(Incoming::Disconnect {
                reason: frame.get(header).copied().unwrap_or(0),
                session_expiry: None,
            }));
        }
        if remaining > self.max_incoming {
            return Err(DecodeError::TooLarge(remaining + header));
        }
        if buf.len() < header + remaining {
            // Room for the rest of this packet, so reads fill it in one go.
            buf.reserve(header + remaining - buf.len());
            return Ok(None);
        }
        let malformed = |e: &dyn std::fmt::Display| DecodeError::Malformed(e.to_string());
        match self.version {
            Version::V311 => {
                let packet = v4::Packet::read(buf, self.max_incoming).map_err(|e| malformed(&e))?;
                Ok(Some(from_v4(packet)))
            }
            Version::V5 => {
                let max = u32::try_from(self.max_incoming).unwrap_or(u32::MAX);
                let packet = v5::Packet::read(buf, Some(max)).map_err(|e| malformed(&e))?;
                Ok(Some(from_v5(packet)))
            }
        }
    }

    /// Writes a control packet. Nothing for a 3.1.1 DISCONNECT: only clients
    /// send it in 3.1.1, the server just closes.
    pub fn encode_control(&self, c: &Control, out: &mut BytesMut) -> Result<(), EncodeError> {
        let other = |e: &dyn std::fmt::Display| EncodeError::Other(e.to_string());
        match self.version {
            Version::V311 => {
                let Some(p) = to_v4(c) else {
                    return Ok(());
                };
                p.write(out, usize::MAX).map_err(|e| other(&e))?;
            }
            Version::V5 => {
                to_v5(c)
                    .write(out, self.max_outgoing)
                    .map_err(|e| match e {
                        rumqttc::v5::mqttbytes::Error::OutgoingPacketTooLarge { .. } => {
                            EncodeError::TooLarge
                        }
                        e => other(&e),
                    })?;
            }
        }
        Ok(())
    }

    /// Writes a delivery with its packet id (0 for QoS 0).
    pub fn encode_publish(
        &self,
        q: &Queued,
        pkid: u16,
        out: &mut BytesMut,
    ) -> Result<(), EncodeError> {
        let qos = qos_v4(q.qos);
        match self.version {
            Version::V311 => {
                let p = v4::Publish {
                    dup: q.dup,
                    qos,
                    retain: q.retain,
                    topic: q.msg.topic.to_string(),
                    pkid,
                    payload: q.msg.payload.clone(),
                };
                v4::Packet::Publish(p)
                    .write(out, usize::MAX)
                    .map_err(|e| EncodeError::Other(e.to_string()))?;
            }
            Version::V5 => {
                let p = v5::Publish {
                    dup: q.dup,
                    qos: qos_v5(q.qos),
                    retain: q.retain,
                    topic: Bytes::copy_from_slice(q.msg.topic.as_bytes()),
                    pkid,
                    payload: q.msg.payload.clone(),
                    properties: q.msg.properties.as_deref().cloned(),
                };
                v5::Packet::Publish(p)
                    .write(out, self.max_outgoing)
                    .map_err(|e| match e {
                        rumqttc::v5::mqttbytes::Error::OutgoingPacketTooLarge { .. } => {
                            EncodeError::TooLarge
                        }
                        e => EncodeError::Other(e.to_string()),
                    })?;
            }
        }
        Ok(())
    }
}

fn qos_v4(q: u8) -> rumqttc::mqttbytes::QoS {
    match q {
        0 => rumqttc::mqttbytes::QoS::AtMostOnce,
        1 => rumqttc::mqttbytes::QoS::AtLeastOnce,
        _ => rumqttc::mqttbytes::QoS::ExactlyOnce,
    }
}

fn qos_v5(q: u8) -> rumqttc::v5::mqttbytes::QoS {
    match q {
        0 => rumqttc::v5::mqttbytes::QoS::AtMostOnce,
        1 => rumqttc::v5::mqttbytes::QoS::AtLeastOnce,
        _ => rumqttc::v5::mqttbytes::QoS::ExactlyOnce,
    }
}

fn non_empty(s: String) -> Option<String> {
    (!s.is_empty()).then_some(s)
}

fn from_v4(p: v4::Packet) -> Incoming {
    match p {
        v4::Packet::Connect(c) => {
            let (username, password) = match c.login {
                Some(l) => (non_empty(l.username), non_empty(l.password)),
                None => (None, None),
            };
            Incoming::Connect(Box::new(ConnectIn {
                version: Version::V311,
                session_expiry: if c.clean_session { 0 } else { u32::MAX },
                client_id: c.client_id,
                clean_start: c.clean_session,
                keep_alive: c.keep_alive,
                username,
                password,
                will: c.last_will.map(|w| WillIn {
                    topic: Ok(w.topic),
                    payload: w.message,
                    qos: w.qos as u8,
                    retain: w.retain,
                    delay: 0,
                    properties: None,
                }),
                receive_maximum: u16::MAX,
                max_packet_size: None,
                auth_method: None,
            }))
        }
        v4::Packet::Publish(p) => Incoming::Publish(PublishIn {
            topic: Ok(p.topic),
            payload: p.payload,
            qos: p.qos as u8,
            retain: p.retain,
            pkid: p.pkid,
            topic_alias: None,
            properties: None,
        }),
        v4::Packet::PubAck(a) => Incoming::PubAck(a.pkid),
        v4::Packet::PubRec(a) => Incoming::PubRec(a.pkid),
        v4::Packet::PubRel(a) => Incoming::PubRel(a.pkid),
        v4::Packet::PubComp(a) => Incoming::PubComp(a.pkid),
        v4::Packet::Subscribe(s) => Incoming::Subscribe {
            pkid: s.pkid,
            filters: s
                .filters
                .into_iter()
                .map(|f| FilterIn {
                    filter: f.path,
                    qos: f.qos as u8,
                    no_local: false,
                    retain_as_published: false,
                    retain_handling: 0,
                })
                .collect(),
        },
        v4::Packet::Unsubscribe(u) => Incoming::Unsubscribe {
            pkid: u.pkid,
            filters: u.topics,
        },
        v4::Packet::PingReq => Incoming::PingReq,
        v4::Packet::Disconnect => Incoming::Disconnect {
            reason: 0,
            session_expiry: None,
        },
        v4::Packet::ConnAck(_) => Incoming::Unexpected("CONNACK"),
        v4::Packet::SubAck(_) => Incoming::Unexpected("SUBACK"),
        v4::Packet::UnsubAck(_) => Incoming::Unexpected("UNSUBACK"),
        v4::Packet::PingResp => Incoming::Unexpected("PINGRESP"),
    }
}

fn from_v5(p: v5::Packet) -> Incoming {
    match p {
        v5::Packet::Connect(c, will, login) => {
            let props = c.properties.unwrap_or_default();
            let (username, password) = match login {
                Some(l) => (non_empty(l.username), non_empty(l.password)),
                None => (None, None),
            };
            Incoming::Connect(Box::new(ConnectIn {
                version: Version::V5,
                client_id: c.client_id,
                clean_start: c.clean_start,
                keep_alive: c.keep_alive,
                username,
                password,
                will: will.map(|w| {
                    let wp = w.properties;
                    let delay = wp.as_ref().and_then(|p| p.delay_interval).unwrap_or(0);
                    WillIn {
                        topic: String::from_utf8(w.topic.to_vec()).map_err(|_| ()),
                        payload: w.message,
                        qos: w.qos as u8,
                        retain: w.retain,
                        delay,
                        properties: wp.map(|p| v5::PublishProperties {
                            payload_format_indicator: p.payload_format_indicator,
                            content_type: p.content_type,
                            response_topic: p.response_topic,
                            correlation_data: p.correlation_data,
                            user_properties: p.user_properties,
                            ..v5::PublishProperties::default()
                        }),
                    }
                }),
                session_expiry: props.session_expiry_interval.unwrap_or(0),
                receive_maximum: props.receive_maximum.unwrap_or(u16::MAX),
                max_packet_size: props.max_packet_size,
                auth_method: props.authentication_method,
            }))
        }
        v5::Packet::Publish(p) => Incoming::Publish(PublishIn {
            topic: String::from_utf8(p.topic.to_vec()).map_err(|_| ()),
            payload: p.payload,
            qos: p.qos as u8,
            retain: p.retain,
            pkid: p.pkid,
            topic_alias: p.properties.as_ref().and_then(|p| p.topic_alias),
            properties: p.properties,
        }),
        v5::Packet::PubAck(a) => Incoming::PubAck(a.pkid),
        v5::Packet::PubRec(a) => Incoming::PubRec(a.pkid),
        v5::Packet::PubRel(a) => Incoming::PubRel(a.pkid),
        v5::Packet::PubComp(a) => Incoming::PubComp(a.pkid),
        v5::Packet::Subscribe(s) => Incoming::Subscribe {
            pkid: s.pkid,
            filters: s
                .filters
                .into_iter()
                .map(|f| FilterIn {
                    filter: f.path,
                    qos: f.qos as u8,
                    no_local: f.nolocal,
                    retain_as_published: f.preserve_retain,
                    retain_handling: match f.retain_forward_rule {
                        v5::RetainForwardRule::OnEverySubscribe => 0,
                        v5::RetainForwardRule::OnNewSubscribe => 1,
                        v5::RetainForwardRule::Never => 2,
                    },
                })
                .collect(),
        },
        v5::Packet::Unsubscribe(u) => Incoming::Unsubscribe {
            pkid: u.pkid,
            filters: u.filters,
        },
        v5::Packet::PingReq(_) => Incoming::PingReq,
        v5::Packet::Disconnect(d) => Incoming::Disconnect {
            reason: d.reason_code as u8,
            session_expiry: d.properties.and_then(|p| p.session_expiry_interval),
        },
        v5::Packet::Auth(_) => Incoming::Unexpected("AUTH"),
        v5::Packet::ConnAck(_) => Incoming::Unexpected("CONNACK"),
        v5::Packet::SubAck(_) => Incoming::Unexpected("SUBACK"),
        v5::Packet::UnsubAck(_) => Incoming::Unexpected("UNSUBACK"),
        v5::Packet::PingResp(_) => Incoming::Unexpected("PINGRESP"),
    }
}

fn to_v4(c: &Control) -> Option<v4::Packet> {
    use v4::ConnectReturnCode as R;
    Some(match c {
        Control::ConnAck {
            session_present,
            code,
            ..
        } => {
            let code = match code {
                ConnectCode::Accepted => R::Success,
                ConnectCode::UnsupportedVersion => R::RefusedProtocolVersion,
                ConnectCode::BadClientId => R::BadClientId,
                ConnectCode::ServerUnavailable => R::ServiceUnavailable,
                ConnectCode::BadCredentials => R::BadUserNamePassword,
                // 3.1.1 has no finer codes: authorization refusals, a bad
                // authentication method and a refused will all read "not
                // authorized"; malformed CONNECTs are just closed.
                ConnectCode::NotAuthorized
                | ConnectCode::BadAuthMethod
                | ConnectCode::TopicNameInvalid => R::NotAuthorized,
                ConnectCode::Malformed => return None,
            };
            v4::Packet::ConnAck(v4::ConnAck::new(code, *session_present))
        }
        Control::PubAck { pkid, .. } => v4::Packet::PubAck(v4::PubAck::new(*pkid)),
        Control::PubRec { pkid, .. } => v4::Packet::PubRec(v4::PubRec::new(*pkid)),
        Control::PubComp { pkid, .. } => v4::Packet::PubComp(v4::PubComp::new(*pkid)),
        Control::SubAck { pkid, codes } => v4::Packet::SubAck(v4::SubAck::new(
            *pkid,
            codes
                .iter()
                .map(|c| match c {
                    SubCode::Granted(q) => v4::SubscribeReasonCode::Success(qos_v4(*q)),
                    SubCode::NotAuthorized | SubCode::FilterInvalid => {
                        v4::SubscribeReasonCode::Failure
                    }
                })
                .collect(),
        )),
        Control::UnsubAck { pkid, .. } => v4::Packet::UnsubAck(v4::UnsubAck::new(*pkid)),
        Control::PingResp => v4::Packet::PingResp,
        Control::Disconnect(_) => return None,
    })
}

fn to_v5(c: &Control) -> v5::Packet {
    use v5::ConnectReturnCode as R;
    match c {
        Control::ConnAck {
            session_present,
            code,
            assigned_client_id,
            receive_maximum,
            max_packet_size,
        } => {
            let accepted = *code == ConnectCode::Accepted;
            let code = match code {
                ConnectCode::Accepted => R::Success,
                ConnectCode::UnsupportedVersion => R::UnsupportedProtocolVersion,
                ConnectCode::BadClientId => R::ClientIdentifierNotValid,
                ConnectCode::ServerUnavailable => R::ServerUnavailable,
                ConnectCode::BadCredentials => R::BadUserNamePassword,
                ConnectCode::NotAuthorized => R::NotAuthorized,
                ConnectCode::BadAuthMethod => R::BadAuthenticationMethod,
                ConnectCode::TopicNameInvalid => R::TopicNameInvalid,
                ConnectCode::Malformed => R::MalformedPacket,
            };
            let properties = accepted.then(|| v5::ConnAckProperties {
                session_expiry_interval: None,
                receive_max: Some(*receive_maximum),
                max_qos: None,
                retain_available: None,
                max_packet_size: Some(*max_packet_size),
                assigned_client_identifier: assigned_client_id.clone(),
                topic_alias_max: None,
                reason_string: None,
                user_properties: Vec::new(),
                wildcard_subscription_available: None,
                subscription_identifiers_available: Some(0),
                shared_subscription_available: None,
                server_keep_alive: None,
                response_information: None,
                server_reference: None,
                authentication_method: None,
                authentication_data: None,
            });
            v5::Packet::ConnAck(v5::ConnAck {
                session_present: *session_present,
                code,
                properties,
            })
        }
        Control::PubAck { pkid, reason } => v5::Packet::PubAck(v5::PubAck {
            pkid: *pkid,
            reason: match reason {
                AckReason::Success => v5::PubAckReason::Success,
                AckReason::NotAuthorized => v5::PubAckReason::NotAuthorized,
            },
            properties: None,
        }),
        Control::PubRec { pkid, reason } => v5::Packet::PubRec(v5::PubRec {
            pkid: *pkid,
            reason: match reason {
                AckReason::Success => v5::PubRecReason::Success,
                AckReason::NotAuthorized => v5::PubRecReason::NotAuthorized,
            },
            properties: None,
        }),
        Control::PubComp { pkid, found } => v5::Packet::PubComp(v5::PubComp {
            pkid: *pkid,
            reason: if *found {
                v5::PubCompReason::Success
            } else {
                v5::PubCompReason::PacketIdentifierNotFound
            },
            properties: None,
        }),
        Control::SubAck { pkid, codes } => v5::Packet::SubAck(v5::SubAck {
            pkid: *pkid,
            return_codes: codes
                .iter()
                .map(|c| match c {
                    SubCode::Granted(q) => v5::SubscribeReasonCode::Success(qos_v5(*q)),
                    SubCode::NotAuthorized => v5::SubscribeReasonCode::NotAuthorized,
                    SubCode::FilterInvalid => v5::SubscribeReasonCode::TopicFilterInvalid,
                })
                .collect(),
            properties: None,
        }),
        Control::UnsubAck { pkid, found } => v5::Packet::UnsubAck(v5::UnsubAck {
            pkid: *pkid,
            reasons: found
                .iter()
                .map(|f| {
                    if *f {
                        v5::UnsubAckReason::Success
                    } else {
                        v5::UnsubAckReason::NoSubscriptionExisted
                    }
                })
                .collect(),
            properties: None,
        }),
        Control::PingResp => v5::Packet::PingResp(v5::PingResp),
        Control::Disconnect(r) => {
            use v5::DisconnectReasonCode as D;
            v5::Packet::Disconnect(v5::Disconnect::new(match r {
                DisconnectReason::Malformed => D::MalformedPacket,
                DisconnectReason::ProtocolError => D::ProtocolError,
                DisconnectReason::ServerShuttingDown => D::ServerShuttingDown,
                DisconnectReason::KeepAliveTimeout => D::KeepAliveTimeout,
                DisconnectReason::SessionTakenOver => D::SessionTakenOver,
                DisconnectReason::TopicNameInvalid => D::TopicNameInvalid,
                DisconnectReason::TopicAliasInvalid => D::TopicAliasInvalid,
                DisconnectReason::PacketTooLarge => D::PacketTooLarge,
            }))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::broker::router::{Message, Origin};
    use std::sync::Arc;

    fn v4_bytes(p: v4::Packet) -> BytesMut {
        let mut b = BytesMut::new();
        p.write(&mut b, usize::MAX).unwrap();
        b
    }

    #[test]
    fn the_connect_level_picks_the_version() {
        let c = v4::Connect::new("c1");
        let buf = v4_bytes(v4::Packet::Connect(c));
        assert_eq!(connect_version(&buf, 1024), Ok(Some(Version::V311)));
        assert_eq!(connect_version(&buf[..buf.len() - 1], 1024), Ok(None));
        let mut b5 = BytesMut::new();
        v5::Packet::Connect(
            v5::Connect {
                keep_alive: 10,
                client_id: "c".into(),
                clean_start: true,
                properties: None,
            },
            None,
            None,
        )
        .write(&mut b5, None)
        .unwrap();
        assert_eq!(connect_version(&b5, 1024), Ok(Some(Version::V5)));
        // MQTT 3.1 ("MQIsdp", level 3).
        let mut v31 = vec![0x10, 12, 0, 6];
        v31.extend_from_slice(b"MQIsdp");
        v31.extend_from_slice(&[3, 2, 0, 10]);
        assert_eq!(
            connect_version(&v31, 1024),
            Err(DecodeError::UnsupportedVersion(3))
        );
        let ping = v4_bytes(v4::Packet::PingReq);
        assert_eq!(connect_version(&ping, 1024), Err(DecodeError::NotConnect));
        assert!(matches!(
            connect_version(&buf, 4),
            Err(DecodeError::TooLarge(_))
        ));
    }

    #[test]
    fn packets_decode_one_at_a_time_and_wait_for_the_rest() {
        let codec = Codec::new(Version::V311, 1024);
        let mut p = v4::Publish::new("a/b", rumqttc::mqttbytes::QoS::AtLeastOnce, "hi");
        p.pkid = 7;
        let mut buf = v4_bytes(v4::Packet::Publish(p));
        buf.extend_from_slice(&v4_bytes(v4::Packet::PingReq));
        let tail = buf.split_off(buf.len() - 1);
        let Ok(Some(Incoming::Publish(got))) = codec.decode(&mut buf) else {
            panic!("publish expected");
        };
        assert_eq!(got.topic, Ok("a/b".to_owned()));
        assert_eq!((got.qos, got.pkid, &got.payload[..]), (1, 7, &b"hi"[..]));
        assert_eq!(codec.decode(&mut buf), Ok(None), "half a PINGREQ");
        buf.extend_from_slice(&tail);
        assert_eq!(codec.decode(&mut buf), Ok(Some(Incoming::PingReq)));
        assert!(buf.is_empty());
    }

    #[test]
    fn a_bare_v5_disconnect_is_a_normal_one() {
        let codec = Codec::new(Version::V5, 1024);
        let mut buf = BytesMut::from(&[0xe0u8, 0][..]);
        assert_eq!(
            codec.decode(&mut buf),
            Ok(Some(Incoming::Disconnect {
                reason: 0,
                session_expiry: None
            }))
        );
        let mut buf = BytesMut::from(&[0xe0u8, 1, 4][..]);
        assert!(matches!(
            codec.decode(&mut buf),
            Ok(Some(Incoming::Disconnect { reason: 4, .. }))
        ));
    }

    #[test]
    fn oversized_packets_are_refused_from_the_header_alone() {
        let codec = Codec::new(Version::V5, 100);
        // PUBLISH announcing 1 MB, with only its header arrived.
        let mut buf = BytesMut::from(&[0x30u8, 0x80, 0x80, 0x40][..]);
        assert!(matches!(
            codec.decode(&mut buf),
            Err(DecodeError::TooLarge(_))
        ));
    }

    #[test]
    fn random_bytes_never_panic() {
        // A tiny deterministic generator: no dependency for a fuzz loop.
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut next = move || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        for version in [Version::V311, Version::V5] {
            let codec = Codec::new(version, 4096);
            for _ in 0..20_000 {
                let len = (next() % 64) as usize;
                let mut bytes: Vec<u8> = (0..len).map(|_| next() as u8).collect();
                // Mostly well-framed: a real type and a remaining length that fits.
                if len >= 2 {
                    bytes[0] = ((next() % 15 + 1) << 4) as u8 | (bytes[0] & 0x0f);
                    bytes[1] = (len - 2).min(127) as u8;
                }
                let mut buf = BytesMut::from(&bytes[..]);
                while let Ok(Some(_)) = codec.decode(&mut buf) {}
                let _ = connect_version(&bytes, 4096);
            }
        }
    }

    #[test]
    fn v5_publishes_respect_the_clients_maximum_packet_size() {
        let mut codec = Codec::new(Version::V5, 1024);
        codec.max_outgoing = Some(64);
        let msg = |n: usize| {
            Queued::new(
                Arc::new(Message {
                    topic: Arc::from("t"),
                    payload: Bytes::from(vec![b'x'; n]),
                    qos: 1,
                    retain: false,
                    properties: None,
                    origin: Origin::Broker,
                }),
                1,
                false,
            )
        };
        let mut out = BytesMut::new();
        assert_eq!(codec.encode_publish(&msg(10), 1, &mut out), Ok(()));
        let written = out.len();
        assert_eq!(
            codec.encode_publish(&msg(100), 2, &mut out),
            Err(EncodeError::TooLarge)
        );
        assert_eq!(out.len(), written, "nothing written for a skipped packet");
    }

    #[test]
    fn v311_has_no_server_disconnect_and_maps_refusals() {
        let codec = Codec::new(Version::V311, 1024);
        let mut out = BytesMut::new();
        codec
            .encode_control(
                &Control::Disconnect(DisconnectReason::PacketTooLarge),
                &mut out,
            )
            .unwrap();
        assert!(out.is_empty());
        codec
            .encode_control(
                &Control::ConnAck {
                    session_present: false,
                    code: ConnectCode::NotAuthorized,
                    assigned_client_id: None,
                    receive_maximum: 10,
                    max_packet_size: 10,
                },
                &mut out,
            )
            .unwrap();
        assert_eq!(&out[..], &[0x20, 2, 0, 5]);
    }
}
