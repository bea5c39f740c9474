//! The few MQTT 3.1.1 packets a simulated agent needs, encoded and parsed
//! without I/O: CONNECT (with a retained QoS 1 will and optional credentials),
//! PUBLISH at QoS 1, PINGREQ and DISCONNECT out; CONNACK, PUBACK and PINGRESP
//! in. A full client (rumqttc) keeps an event loop and channels per
//! connection; ten thousand connections on two cores want less than that.

/// What a simulated agent registers when it connects.
#[derive(Debug, Clone)]
pub struct Connect<'a> {
    pub client_id: &'a str,
    pub keepalive_s: u16,
    pub will_topic: &'a str,
    pub will_payload: &'a [u8],
    pub username: Option<&'a str>,
    pub password: Option<&'a [u8]>,
}

/// The CONNACK return code that means "accepted".
pub const ACCEPTED: u8 = 0;

fn remaining_length(mut n: usize, out: &mut Vec<u8>) {
    loop {
        // Seven bits a byte, the high bit saying another byte follows.
        let mut byte = (n % 128) as u8;
        n /= 128;
        if n > 0 {
            byte |= 0x80;
        }
        out.push(byte);
        if n == 0 {
            break;
        }
    }
}

fn string(bytes: &[u8], out: &mut Vec<u8>) {
    // Every string on the wire is shorter than 64 KiB: topics and names are
    // bounded by the protocol crate, payloads are not strings.
    let len = u16::try_from(bytes.len()).unwrap_or(u16::MAX);
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(&bytes[..usize::from(len)]);
}

/// A CONNECT with a clean session: the simulated agent, like the real one,
/// keeps its own unacknowledged messages and sends them again itself.
pub fn connect(c: &Connect<'_>) -> Vec<u8> {
    let mut body = Vec::with_capacity(64 + c.will_topic.len() + c.will_payload.len());
    string(b"MQTT", &mut body);
    body.push(4); // protocol level 4: 3.1.1
    // clean session, will flag, will QoS 1, will retain
    let mut flags = 0x02 | 0x04 | 0x08 | 0x20;
    if c.username.is_some() {
        flags |= 0x80;
    }
    if c.password.is_some() {
        flags |= 0x40;
    }
    body.push(flags);
    body.extend_from_slice(&c.keepalive_s.to_be_bytes());
    string(c.client_id.as_bytes(), &mut body);
    string(c.will_topic.as_bytes(), &mut body);
    string(c.will_payload, &mut body);
    if let Some(u) = c.username {
        string(u.as_bytes(), &mut body);
    }
    if let Some(p) = c.password {
        string(p, &mut body);
    }
    let mut out = Vec::with_capacity(body.len() + 5);
    out.push(0x10);
    remaining_length(body.len(), &mut out);
    out.extend_from_slice(&body);
    out
}

/// Appends a QoS 1 PUBLISH to `out` (a buffer reused across messages).
pub fn publish(out: &mut Vec<u8>, topic: &str, pkid: u16, payload: &[u8], retain: bool, dup: bool) {
    let first = 0x30 | 0x02 | if dup { 0x08 } else { 0 } | u8::from(retain);
    out.push(first);
    remaining_length(2 + topic.len() + 2 + payload.len(), out);
    string(topic.as_bytes(), out);
    out.extend_from_slice(&pkid.to_be_bytes());
    out.extend_from_slice(payload);
}

pub const PINGREQ: [u8; 2] = [0xc0, 0x00];
pub const DISCONNECT: [u8; 2] = [0xe0, 0x00];

/// A packet from the broker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Incoming {
    /// CONNACK with its return code (0 accepted).
    ConnAck(u8),
    PubAck(u16),
    PingResp,
    /// Anything else (a simulated agent subscribes to nothing): skipped.
    Other(u8),
}

/// The broker broke the protocol: the connection is dropped.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    #[error("remaining length longer than four bytes")]
    BadLength,
    #[error("a {0:#04x} packet of the wrong size")]
    BadPacket(u8),
}

/// Takes one whole packet off the front of `buf`, or `None` until more bytes
/// arrive.
pub fn parse(buf: &mut Vec<u8>) -> Result<Option<Incoming>, FrameError> {
    let Some(&first) = buf.first() else {
        return Ok(None);
    };
    let mut len = 0usize;
    let mut at = 1;
    loop {
        let Some(&b) = buf.get(at) else {
            return Ok(None);
        };
        len |= usize::from(b & 0x7f) << (7 * (at - 1));
        at += 1;
        if b & 0x80 == 0 {
            break;
        }
        if at > 4 {
            return Err(FrameError::BadLength);
        }
    }
    if buf.len() < at + len {
        return Ok(None);
    }
    let body = &buf[at..at + len];
    let kind = first >> 4;
    let packet = match kind {
        2 => match body {
            [_, code] => Incoming::ConnAck(*code),
            _ => return Err(FrameError::BadPacket(first)),
        },
        4 => match body {
            [hi, lo] => Incoming::PubAck(u16::from_be_bytes([*hi, *lo])),
            _ => return Err(FrameError::BadPacket(first)),
        },
        13 => Incoming::PingResp,
        _ => Incoming::Other(first),
    };
    buf.drain(..at + len);
    Ok(Some(packet))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn publish_header_carries_qos1_retain_dup_and_a_multi_byte_length() {
        let payload = vec![b'x'; 300];
        let mut out = Vec::new();
        publish(&mut out, "a/b", 7, &payload, true, true);
        assert_eq!(out[0], 0x3b);
        // 2 + 3 + 2 + 300 = 307 = 0b10_0110011
        assert_eq!(&out[1..3], &[0xb3, 0x02]);
        assert_eq!(&out[3..8], &[0, 3, b'a', b'/', b'b']);
        assert_eq!(&out[8..10], &[0, 7]);
        assert_eq!(out.len(), 10 + 300);
    }

    #[test]
    fn connect_sets_will_qos1_retained_and_credentials() {
        let p = connect(&Connect {
            client_id: "s:h",
            keepalive_s: 30,
            will_topic: "t",
            will_payload: b"w",
            username: Some("u"),
            password: Some(b"p"),
        });
        assert_eq!(p[0], 0x10);
        assert_eq!(&p[2..9], &[0, 4, b'M', b'Q', b'T', b'T', 4]);
        assert_eq!(p[9], 0x80 | 0x40 | 0x20 | 0x08 | 0x04 | 0x02);
        assert_eq!(&p[10..12], &[0, 30]);
        assert_eq!(usize::from(p[1]), p.len() - 2);
    }

    #[test]
    fn parse_waits_for_whole_packets_and_reads_acks_in_order() {
        let mut buf = vec![0x20, 0x02, 0x00];
        assert_eq!(parse(&mut buf), Ok(None));
        buf.extend_from_slice(&[0x00, 0x40, 0x02, 0x01, 0x02, 0xd0, 0x00, 0x40]);
        assert_eq!(parse(&mut buf), Ok(Some(Incoming::ConnAck(0))));
        assert_eq!(parse(&mut buf), Ok(Some(Incoming::PubAck(0x0102))));
        assert_eq!(parse(&mut buf), Ok(Some(Incoming::PingResp)));
        assert_eq!(parse(&mut buf), Ok(None));
        assert_eq!(buf, vec![0x40]);
    }

    #[test]
    fn a_puback_of_the_wrong_size_is_a_protocol_error() {
        let mut buf = vec![0x40, 0x01, 0x00];
        assert_eq!(parse(&mut buf), Err(FrameError::BadPacket(0x40)));
    }
}
