//! ICMP echo (ping) over an unprivileged datagram socket or a raw socket.
//!
//! The packet codec is pure ([`encode_request`], [`decode`], [`checksum`]); one
//! [`ping`] opens its own socket, connected to the target, so that the kernel
//! hands it only packets from that address.
//!
//! Matching a reply to its request differs by socket kind:
//! - a datagram ("ping") socket gets its own identifier from the kernel, which
//!   rewrites the one we send and delivers only replies carrying it: the reply is
//!   ours when its sequence and payload match;
//! - a raw socket sees every ICMP packet from the target (other probes' replies,
//!   and on loopback our own request): identifier, sequence and payload must match.

use std::{
    io,
    net::{IpAddr, SocketAddr},
    time::{Duration, Instant},
};

use socket2::{Domain, Protocol, Socket, Type};

const ECHO_REQUEST_V4: u8 = 8;
const ECHO_REPLY_V4: u8 = 0;
const DEST_UNREACHABLE_V4: u8 = 3;
const ECHO_REQUEST_V6: u8 = 128;
const ECHO_REPLY_V6: u8 = 129;
const DEST_UNREACHABLE_V6: u8 = 1;
/// Type, code, checksum, identifier, sequence.
const HEADER_LEN: usize = 8;
const IPV6_HEADER_LEN: usize = 40;

/// Which kind of ICMP socket this process may open.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SocketKind {
    /// `SOCK_DGRAM, IPPROTO_ICMP`: allowed when `net.ipv4.ping_group_range`
    /// holds one of the process's groups; needs no capability.
    Datagram,
    /// `SOCK_RAW, IPPROTO_ICMP`: needs `CAP_NET_RAW`.
    Raw,
}

impl SocketKind {
    pub fn as_str(self) -> &'static str {
        match self {
            SocketKind::Datagram => "datagram",
            SocketKind::Raw => "raw",
        }
    }
}

/// An ICMP echo message (request or reply).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Echo<'a> {
    pub icmp_type: u8,
    pub identifier: u16,
    pub sequence: u16,
    pub payload: &'a [u8],
}

/// The Internet checksum (RFC 1071): one's complement of the one's complement sum.
pub fn checksum(data: &[u8]) -> u16 {
    let mut sum: u32 = data
        .chunks(2)
        .map(|c| u32::from(u16::from_be_bytes([c[0], c.get(1).copied().unwrap_or(0)])))
        .fold(0u32, u32::wrapping_add);
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

/// An echo request. The ICMPv6 checksum covers a pseudo-header with addresses
/// we do not know here: the kernel fills it in (for datagram and raw ICMPv6
/// sockets alike); ICMPv4 carries ours (a datagram socket recomputes it anyway).
pub fn encode_request(v6: bool, identifier: u16, sequence: u16, payload: &[u8]) -> Vec<u8> {
    let mut packet = Vec::with_capacity(HEADER_LEN + payload.len());
    packet.push(if v6 { ECHO_REQUEST_V6 } else { ECHO_REQUEST_V4 });
    packet.push(0); // code
    packet.extend_from_slice(&[0, 0]); // checksum, below
    packet.extend_from_slice(&identifier.to_be_bytes());
    packet.extend_from_slice(&sequence.to_be_bytes());
    packet.extend_from_slice(payload);
    if !v6 {
        let sum = checksum(&packet);
        packet[2..4].copy_from_slice(&sum.to_be_bytes());
    }
    packet
}

/// Reads an echo header and payload from an ICMP message (no IP header).
pub fn decode(icmp: &[u8]) -> Option<Echo<'_>> {
    if icmp.len() < HEADER_LEN {
        return None;
    }
    Some(Echo {
        icmp_type: icmp[0],
        identifier: u16::from_be_bytes([icmp[4], icmp[5]]),
        sequence: u16::from_be_bytes([icmp[6], icmp[7]]),
        payload: &icmp[HEADER_LEN..],
    })
}

/// The ICMP message inside an IPv4 packet: a raw IPv4 socket receives the IP
/// header too (a datagram socket and any ICMPv6 socket do not).
pub fn strip_ipv4_header(packet: &[u8]) -> Option<&[u8]> {
    let first = *packet.first()?;
    let header_len = usize::from(first & 0x0f) * 4;
    (first >> 4 == 4 && header_len >= 20 && packet.len() >= header_len)
        .then(|| &packet[header_len..])
}

/// Whether `icmp` is the reply to the request we sent.
pub fn is_reply(
    icmp: &[u8],
    v6: bool,
    kind: SocketKind,
    identifier: u16,
    sequence: u16,
    payload: &[u8],
) -> bool {
    let Some(echo) = decode(icmp) else {
        return false;
    };
    let reply = if v6 { ECHO_REPLY_V6 } else { ECHO_REPLY_V4 };
    echo.icmp_type == reply
        && echo.sequence == sequence
        && echo.payload == payload
        && (kind == SocketKind::Datagram || echo.identifier == identifier)
}

/// Whether `icmp` is a destination-unreachable about the request we sent (a raw
/// socket receives the error itself; it quotes our request's IP header and the
/// first 8 bytes of our ICMP header).
pub fn is_unreachable_for(icmp: &[u8], v6: bool, identifier: u16, sequence: u16) -> bool {
    let quoted = match icmp.first() {
        Some(&DEST_UNREACHABLE_V4) if !v6 => icmp.get(HEADER_LEN..).and_then(strip_ipv4_header),
        Some(&DEST_UNREACHABLE_V6) if v6 => icmp.get(HEADER_LEN + IPV6_HEADER_LEN..),
        _ => return false,
    };
    let request = if v6 { ECHO_REQUEST_V6 } else { ECHO_REQUEST_V4 };
    quoted.and_then(decode).is_some_and(|e| {
        e.icmp_type == request && e.identifier == identifier && e.sequence == sequence
    })
}

fn open(kind: SocketKind, v6: bool) -> io::Result<Socket> {
    let (domain, protocol) = if v6 {
        (Domain::IPV6, Protocol::ICMPV6)
    } else {
        (Domain::IPV4, Protocol::ICMPV4)
    };
    let ty = match kind {
        SocketKind::Datagram => Type::DGRAM,
        SocketKind::Raw => Type::RAW,
    };
    Socket::new(domain, ty, Some(protocol))
}

/// Finds the ICMP socket kind this process may open: datagram first (no
/// privilege), raw second; otherwise a message saying what is missing and how
/// to grant it.
pub fn detect() -> Result<SocketKind, String> {
    let datagram = match open(SocketKind::Datagram, false) {
        Ok(_) => return Ok(SocketKind::Datagram),
        Err(e) => e,
    };
    let raw = match open(SocketKind::Raw, false) {
        Ok(_) => return Ok(SocketKind::Raw),
        Err(e) => e,
    };
    let range = std::fs::read_to_string("/proc/sys/net/ipv4/ping_group_range").ok();
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    Err(explain(
        &datagram,
        &raw,
        range.as_deref(),
        &process_groups(&status),
    ))
}

/// The effective group and supplementary groups from `/proc/self/status`
/// (`Gid:` real, effective, saved, fs; `Groups:`): what the kernel checks against
/// `ping_group_range`, the effective group first.
pub fn process_groups(status: &str) -> Vec<u32> {
    let mut groups = Vec::new();
    for line in status.lines() {
        if let Some(gids) = line.strip_prefix("Gid:") {
            groups.extend(
                gids.split_whitespace()
                    .nth(1)
                    .and_then(|g| g.parse::<u32>().ok()),
            );
        } else if let Some(list) = line.strip_prefix("Groups:") {
            groups.extend(
                list.split_whitespace()
                    .filter_map(|g| g.parse::<u32>().ok()),
            );
        }
    }
    // The effective group first: the one the fix hint names.
    let mut seen = std::collections::BTreeSet::new();
    groups.retain(|g| seen.insert(*g));
    groups
}

/// Why neither socket kind opened, in words an operator can act on.
pub fn explain(
    datagram: &io::Error,
    raw: &io::Error,
    range: Option<&str>,
    groups: &[u32],
) -> String {
    let range_part = match range.map(|r| {
        let mut it = r.split_whitespace().map(|x| x.parse::<u64>().ok());
        (it.next().flatten(), it.next().flatten())
    }) {
        Some((Some(lo), Some(hi))) if lo > hi => {
            format!("net.ipv4.ping_group_range is \"{lo} {hi}\": unprivileged ICMP is disabled")
        }
        Some((Some(lo), Some(hi))) => {
            let inside = groups.iter().any(|g| (lo..=hi).contains(&u64::from(*g)));
            if inside {
                format!(
                    "net.ipv4.ping_group_range \"{lo} {hi}\" includes one of this process's groups {groups:?}, yet the kernel refused (a seccomp or LSM policy?)"
                )
            } else {
                format!(
                    "net.ipv4.ping_group_range \"{lo} {hi}\" does not include this process's groups {groups:?}"
                )
            }
        }
        _ => "net.ipv4.ping_group_range is unreadable".to_owned(),
    };
    let gid = groups.first().copied().unwrap_or(0);
    format!(
        "ICMP probes need unprivileged ICMP sockets or CAP_NET_RAW, and this process has neither. \
         Unprivileged ICMP (SOCK_DGRAM) failed ({datagram}): {range_part}. \
         Raw ICMP (SOCK_RAW) failed ({raw}): the process lacks CAP_NET_RAW. \
         Fix one: `sysctl -w net.ipv4.ping_group_range=\"{gid} {gid}\"` (a range holding the agent's group; persist it in /etc/sysctl.d), \
         or grant CAP_NET_RAW (systemd: AmbientCapabilities=CAP_NET_RAW). TCP probes need neither."
    )
}

/// Sends one echo request to `addr` and waits for its reply (the caller bounds
/// the wait). The round-trip time runs from the send to the reply's arrival.
pub async fn ping(
    kind: SocketKind,
    addr: IpAddr,
    identifier: u16,
    sequence: u16,
    payload: &[u8],
) -> io::Result<Duration> {
    let v6 = addr.is_ipv6();
    let socket = open(kind, v6)?;
    socket.set_nonblocking(true)?;
    socket.connect(&SocketAddr::new(addr, 0).into())?;
    // tokio's UdpSocket is a thin wrapper around send(2)/recv(2) on a registered
    // datagram-or-raw fd: it serves an ICMP socket as well, in safe code (an
    // `AsyncFd` of our own would need the deprecated or `unsafe` constructor).
    let socket = tokio::net::UdpSocket::from_std(std::net::UdpSocket::from(socket))?;
    let request = encode_request(v6, identifier, sequence, payload);
    let started = Instant::now();
    socket.send(&request).await?;
    let mut buf = [0u8; 1500];
    loop {
        // A connected socket reports an ICMP error about our request (host or
        // network unreachable) as the read's error.
        let n = socket.recv(&mut buf).await?;
        let rtt = started.elapsed();
        let packet = &buf[..n];
        let icmp = match (kind, v6) {
            (SocketKind::Raw, false) => match strip_ipv4_header(packet) {
                Some(icmp) => icmp,
                None => continue,
            },
            _ => packet,
        };
        if is_reply(icmp, v6, kind, identifier, sequence, payload) {
            return Ok(rtt);
        }
        if kind == SocketKind::Raw && is_unreachable_for(icmp, v6, identifier, sequence) {
            return Err(io::ErrorKind::HostUnreachable.into());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checksum_matches_rfc1071_example() {
        // RFC 1071 section 3: the sum of these words is 0xddf2 (folded), so the
        // checksum is its complement.
        let data = [0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7];
        assert_eq!(checksum(&data), !0xddf2);
        // A packet carrying its checksum sums to zero.
        let packet = encode_request(false, 0x1234, 7, b"odd");
        assert_eq!(checksum(&packet), 0);
    }

    #[test]
    fn request_round_trips_through_decode() {
        let packet = encode_request(false, 0xbeef, 42, b"sitewatch");
        assert_eq!(&packet[..2], &[8, 0]);
        let echo = decode(&packet).unwrap();
        assert_eq!(
            echo,
            Echo {
                icmp_type: 8,
                identifier: 0xbeef,
                sequence: 42,
                payload: b"sitewatch"
            }
        );
        let v6 = encode_request(true, 1, 2, b"x");
        assert_eq!(&v6[..4], &[128, 0, 0, 0]);
    }

    fn reply(v6: bool, identifier: u16, sequence: u16, payload: &[u8]) -> Vec<u8> {
        let mut p = encode_request(v6, identifier, sequence, payload);
        p[0] = if v6 { 129 } else { 0 };
        p
    }

    #[test]
    fn datagram_replies_match_on_sequence_and_payload_not_identifier() {
        // The kernel rewrote our identifier 7 to 999 on a datagram socket.
        let r = reply(false, 999, 5, b"token");
        assert!(is_reply(&r, false, SocketKind::Datagram, 7, 5, b"token"));
        assert!(!is_reply(&r, false, SocketKind::Raw, 7, 5, b"token"));
        assert!(is_reply(&r, false, SocketKind::Raw, 999, 5, b"token"));
        assert!(!is_reply(&r, false, SocketKind::Datagram, 7, 6, b"token"));
        assert!(!is_reply(&r, false, SocketKind::Datagram, 7, 5, b"other"));
        // Our own request seen on loopback by a raw socket is not a reply.
        let request = encode_request(false, 7, 5, b"token");
        assert!(!is_reply(&request, false, SocketKind::Raw, 7, 5, b"token"));
        assert!(is_reply(
            &reply(true, 1, 2, b"p"),
            true,
            SocketKind::Raw,
            1,
            2,
            b"p"
        ));
        assert!(!is_reply(&[0, 0, 0], false, SocketKind::Raw, 0, 0, b""));
    }

    fn ipv4_header() -> Vec<u8> {
        let mut h = vec![0x45, 0, 0, 0, 0, 0, 0, 0, 64, 1, 0, 0];
        h.extend_from_slice(&[127, 0, 0, 1, 127, 0, 0, 1]);
        h
    }

    #[test]
    fn raw_ipv4_packets_lose_their_ip_header() {
        let mut packet = ipv4_header();
        packet.extend_from_slice(&reply(false, 1, 2, b"p"));
        let icmp = strip_ipv4_header(&packet).unwrap();
        assert!(is_reply(icmp, false, SocketKind::Raw, 1, 2, b"p"));
        assert_eq!(strip_ipv4_header(&[0x60; 40]), None); // IPv6
        assert_eq!(strip_ipv4_header(&[0x46, 0, 0]), None); // truncated
    }

    #[test]
    fn unreachable_quoting_our_request_is_recognised() {
        let mut error = vec![3, 1, 0, 0, 0, 0, 0, 0];
        error.extend(ipv4_header());
        error.extend_from_slice(&encode_request(false, 9, 3, b"")[..8]);
        assert!(is_unreachable_for(&error, false, 9, 3));
        assert!(!is_unreachable_for(&error, false, 9, 4));
        assert!(!is_unreachable_for(&reply(false, 9, 3, b""), false, 9, 3));
    }

    #[test]
    fn groups_come_from_proc_status() {
        let status =
            "Name:\tx\nUid:\t0\t0\t0\t0\nGid:\t1000\t1001\t1000\t1000\nGroups:\t4 27 1001 \n";
        assert_eq!(process_groups(status), vec![1001, 4, 27]);
    }

    #[test]
    fn missing_privileges_are_explained() {
        let denied = io::Error::from(io::ErrorKind::PermissionDenied);
        let text = explain(&denied, &denied, Some("1\t0\n"), &[0]);
        assert!(
            text.contains("\"1 0\": unprivileged ICMP is disabled"),
            "{text}"
        );
        assert!(text.contains("lacks CAP_NET_RAW"), "{text}");
        assert!(text.contains("ping_group_range=\"0 0\""), "{text}");
        let text = explain(&denied, &denied, Some("100 200"), &[1000]);
        assert!(
            text.contains("\"100 200\" does not include this process's groups [1000]"),
            "{text}"
        );
        let text = explain(&denied, &denied, None, &[]);
        assert!(text.contains("unreadable"), "{text}");
    }
}
