//! SNMP: what a device or a trap sender hands the agent. Two halves, picked by
//! the first byte:
//!
//! - the bytes are an SNMP v1/v2c message (BER) as the trap receiver and the
//!   poller get it: decoded by async-snmp, its varbinds mapped to profile
//!   values by the agent, decoded against a shipped profile, and the
//!   notification keyed and classified as the receiver does;
//! - the bytes are the values of a poll, laid on the profile's own OIDs
//!   (which random BER rarely hits): every scalar and column answered with
//!   any type, missing, or not at all, then decoded.

use std::net::{IpAddr, Ipv4Addr};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use async_snmp::compatibility::DecodeConfig;
use async_snmp::message::{CommunityMessage, CommunityPdu};
use sitewatch_agent::source::snmp::device::convert;
use sitewatch_agent::source::snmp::traps::{Classifier, Sender, notification_key};
use sitewatch_snmp_profile::shipped::ALL;
use sitewatch_snmp_profile::{Oid, Profile, Value, Walked};

const SNMP_TRAP_OID: [u32; 11] = [1, 3, 6, 1, 6, 3, 1, 1, 4, 1, 0];

fn profiles() -> &'static [Arc<Profile>] {
    static PROFILES: OnceLock<Vec<Arc<Profile>>> = OnceLock::new();
    PROFILES.get_or_init(|| {
        ALL.iter()
            .filter_map(|s| Profile::from_toml(s.text, s.name).ok())
            .map(Arc::new)
            .collect()
    })
}

/// The input, read from the front; zeros once it runs out.
struct Bytes<'a>(&'a [u8]);

impl Bytes<'_> {
    fn u8(&mut self) -> u8 {
        match self.0.split_first() {
            Some((b, rest)) => {
                self.0 = rest;
                *b
            }
            None => 0,
        }
    }
    fn u64(&mut self) -> u64 {
        (0..8).fold(0, |a, _| a << 8 | u64::from(self.u8()))
    }
    fn value(&mut self) -> Option<Value> {
        Some(match self.u8() % 8 {
            0 => return None,
            1 => Value::Int(self.u64() as i64),
            2 => Value::Int(i64::from(self.u8() as i8)),
            3 => Value::Unsigned(self.u64()),
            4 => {
                let n = usize::from(self.u8() % 24).min(self.0.len());
                let (text, rest) = self.0.split_at(n);
                self.0 = rest;
                Value::Text(text.to_vec())
            }
            5 => Value::Oid((0..self.u8() % 12).map(|_| u32::from(self.u8())).collect()),
            6 => Value::Other("IpAddress"),
            _ => Value::Missing,
        })
    }
}

fn ber(profile: &Arc<Profile>, data: &[u8]) {
    let Ok(decoded) =
        CommunityMessage::decode(bytes::Bytes::copy_from_slice(data), DecodeConfig::default())
    else {
        return;
    };
    let (_, _, pdu) = decoded.value.into_parts();
    let (varbinds, trap): (Vec<_>, Option<Oid>) = match &pdu {
        CommunityPdu::Standard(p) => {
            let trap = p.varbinds().iter().find_map(|vb| match &vb.value {
                async_snmp::Value::ObjectIdentifier(o) if vb.oid.arcs() == SNMP_TRAP_OID => {
                    Some(o.arcs().to_vec())
                }
                _ => None,
            });
            (p.varbinds().to_vec(), trap)
        }
        CommunityPdu::TrapV1(t) => (
            t.varbinds().to_vec(),
            t.v2_trap_oid().ok().map(|o| o.arcs().to_vec()),
        ),
    };
    let mut walked = Walked::default();
    for vb in &varbinds {
        walked.insert(vb.oid.arcs().to_vec(), convert(&vb.value));
    }
    let _ = profile.decode(&walked, "snmp", "ups");
    if let Some(trap) = trap {
        let key = notification_key(&varbinds);
        let from = IpAddr::V4(Ipv4Addr::LOCALHOST);
        let sender = Sender {
            device: "ups".into(),
            ips: vec![from],
            profile: Arc::clone(profile),
        };
        let mut classifier = Classifier::new(vec![sender], Duration::from_secs(60));
        let now = tokio::time::Instant::now();
        let _ = classifier.classify(from, &trap, &key, now);
        let _ = classifier.classify(from, &trap, &key, now);
    }
}

fn structured(profile: &Profile, data: &[u8]) {
    let mut b = Bytes(data);
    let mut walked = Walked::default();
    for oid in profile.scalar_oids() {
        if let Some(v) = b.value() {
            walked.insert(oid, v);
        }
    }
    for group in profile.walks() {
        for column in group {
            let rows = b.u8();
            if rows == 0 {
                continue; // not answered at all
            }
            walked.answered(column.clone());
            for _ in 0..(rows % 5) {
                let mut oid = column.clone();
                oid.extend((0..b.u8() % 3).map(|_| u32::from(b.u8())));
                if let Some(v) = b.value() {
                    walked.insert(oid, v);
                }
            }
        }
    }
    let _ = profile.decode(&walked, "snmp", "ups");
}

/// One input, as the fuzzer gives it.
pub fn run(input: &[u8]) {
    let Some((&selector, data)) = input.split_first() else {
        return;
    };
    let all = profiles();
    let Some(profile) = all.get(usize::from(selector >> 1) % all.len().max(1)) else {
        return;
    };
    if selector & 1 == 0 {
        ber(profile, data);
    } else {
        structured(profile, data);
    }
}
