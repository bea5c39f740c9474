//! The Sensor Data Record repository: reading it in small pieces, caching it,
//! and parsing full (type 01h) and compact (type 02h) sensor records.
//!
//! Many BMCs (ipmi_sim among them) refuse to return a whole record in one Get
//! SDR, so records are read as a 5-byte header and then 16-byte chunks under
//! a reservation; when the BMC cancels the reservation (completion code C5h,
//! the repository changed or another client reserved it) the record is read
//! again under a new one.
//!
//! The records are read once and kept; a sweep asks only Get SDR Repository
//! Info and re-reads when its addition or erase timestamp changed. The cache
//! may be kept on disk (raw records, re-parsed on load) so that a restarted
//! agent does not walk the repository again.

use std::path::Path;

use serde::{Deserialize, Serialize};

use super::{
    commands::{
        CC_RESERVATION_CANCELLED, Cc, GetSdr, GetSdrRepositoryInfo, ReserveSdrRepository,
        SdrRepositoryInfo,
    },
    linear::Factors,
    transport::{Link, LinkError, call},
};

/// Bytes per Get SDR after the header: 16 fits every BMC's message buffer.
pub const CHUNK: u8 = 16;
/// Reservation renewals per record before giving the record up.
const MAX_RESERVATION_RETRIES: usize = 5;
/// Records read at most (a repository whose next-record ids loop).
const MAX_RECORDS: usize = 4096;

/// Whether a sensor has thresholds (event/reading type 01h) or discrete states.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReadingKind {
    Threshold,
    Discrete,
}

/// The sensor units of a record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Units {
    pub base: u8,
    pub modifier: u8,
    /// Bits 5:3 rate unit, 2:1 modifier unit use; non-zero means "per second"
    /// or "volts per amp" style compound units.
    pub rate: u8,
    pub modifier_use: u8,
    pub percentage: bool,
}

/// One readable sensor described by the repository.
#[derive(Debug, Clone, PartialEq)]
pub struct SensorRecord {
    pub record_id: u16,
    pub owner: u8,
    pub lun: u8,
    pub number: u8,
    pub entity_id: u8,
    pub entity_instance: u8,
    pub sensor_type: u8,
    pub reading_type: u8,
    pub name: String,
    pub units: Units,
    /// Full records only: the conversion from raw bytes to units.
    pub factors: Option<Factors>,
}

impl SensorRecord {
    pub fn kind(&self) -> ReadingKind {
        if self.reading_type == 0x01 {
            ReadingKind::Threshold
        } else {
            ReadingKind::Discrete
        }
    }
}

/// A record the agent could not use.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("SDR record {record_id:#06x}: {detail}")]
pub struct CorruptSdr {
    pub record_id: u16,
    pub detail: String,
}

/// The ID string: only 8-bit ASCII/Latin-1 (type 11b) is text in practice;
/// others get a name from the sensor number.
fn id_string(type_len: u8, bytes: &[u8], number: u8) -> String {
    let len = usize::from(type_len & 0x1f);
    let raw = &bytes[..len.min(bytes.len())];
    let text: String = if type_len >> 6 == 0b11 {
        raw.iter()
            .take_while(|b| **b != 0)
            .map(|b| char::from(*b))
            .collect()
    } else {
        String::new()
    };
    let text = text.trim().to_owned();
    if text.is_empty() {
        format!("sensor {number:#04x}")
    } else {
        text
    }
}

/// Parses one record; `Ok(vec![])` for records that describe no readable
/// sensor (event-only, locators, OEM). A compact record shared by several
/// sensors yields one entry each, named with a numeric suffix.
pub fn parse_record(bytes: &[u8]) -> Result<Vec<SensorRecord>, CorruptSdr> {
    let record_id = match bytes {
        [a, b, ..] => u16::from_le_bytes([*a, *b]),
        _ => 0xffff,
    };
    let corrupt = |detail: String| CorruptSdr { record_id, detail };
    if bytes.len() < 5 {
        return Err(corrupt(format!(
            "{} bytes, shorter than a header",
            bytes.len()
        )));
    }
    let record_type = bytes[3];
    let declared = 5 + usize::from(bytes[4]);
    if bytes.len() < declared {
        return Err(corrupt(format!(
            "{} bytes, the header declares {declared}",
            bytes.len()
        )));
    }
    let (min, id_at) = match record_type {
        0x01 => (48, 47),
        0x02 => (32, 31),
        _ => return Ok(vec![]),
    };
    if declared < min {
        return Err(corrupt(format!(
            "type {record_type:#04x} record of {declared} bytes, expected at least {min}"
        )));
    }
    let b = &bytes[..declared];
    let units1 = b[20];
    let base = SensorRecord {
        record_id,
        owner: b[5],
        lun: b[6] & 0x03,
        number: b[7],
        entity_id: b[8],
        entity_instance: b[9],
        sensor_type: b[12],
        reading_type: b[13],
        name: id_string(b[id_at], &b[id_at + 1..], b[7]),
        units: Units {
            base: b[21],
            modifier: b[22],
            rate: (units1 >> 3) & 0x07,
            modifier_use: (units1 >> 1) & 0x03,
            percentage: units1 & 0x01 != 0,
        },
        factors: (record_type == 0x01)
            .then(|| Factors::from_sdr(units1, b[23], [b[24], b[25], b[26], b[27], b[28], b[29]])),
    };
    if record_type == 0x02 {
        // Record sharing (byte 24): bits 3:0 sensor count, bits 5:4 the
        // modifier type (0 numeric, 1 alpha), byte 25 bits 6:0 its offset.
        let count = b[23] & 0x0f;
        if count > 1 {
            let alpha = (b[23] >> 4) & 0x03 == 1;
            let first = b[24] & 0x7f;
            return Ok((0..count)
                .map(|i| {
                    let n = u32::from(first) + u32::from(i);
                    let suffix = if alpha {
                        char::from_u32(u32::from(b'A') + n % 26)
                            .map_or_else(String::new, String::from)
                    } else {
                        n.to_string()
                    };
                    SensorRecord {
                        number: base.number.wrapping_add(i),
                        name: format!("{} {suffix}", base.name),
                        ..base.clone()
                    }
                })
                .collect());
        }
    }
    Ok(vec![base])
}

/// The repository as read from one BMC: raw records and the timestamps they match.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct SdrCache {
    pub addition_ts: u32,
    pub erase_ts: u32,
    /// Raw records, hex-encoded on disk.
    #[serde(with = "hex_records")]
    pub records: Vec<Vec<u8>>,
}

impl SdrCache {
    /// Whether the repository changed since this cache was read.
    pub fn matches(&self, info: &SdrRepositoryInfo) -> bool {
        self.addition_ts == info.addition_ts && self.erase_ts == info.erase_ts
    }

    /// The sensors of every record, and the records that could not be parsed.
    pub fn sensors(&self) -> (Vec<SensorRecord>, Vec<CorruptSdr>) {
        let mut sensors = Vec::new();
        let mut corrupt = Vec::new();
        for r in &self.records {
            match parse_record(r) {
                Ok(s) => sensors.extend(s),
                Err(e) => corrupt.push(e),
            }
        }
        (sensors, corrupt)
    }

    pub fn load(path: &Path) -> Option<SdrCache> {
        let text = std::fs::read_to_string(path).ok()?;
        serde_json::from_str(&text).ok()
    }

    pub fn save(&self, path: &Path) -> std::io::Result<()> {
        let text = serde_json::to_string(self).map_err(std::io::Error::other)?;
        write_atomically(path, text.as_bytes())
    }
}

/// Writes through a temporary file and a rename, so that a crash leaves the
/// old file or the new one, never half of one.
pub fn write_atomically(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, bytes)?;
    std::fs::rename(&tmp, path)
}

mod hex_records {
    use serde::{Deserialize, Deserializer, Serializer, de::Error, ser::SerializeSeq};

    pub fn serialize<S: Serializer>(records: &[Vec<u8>], s: S) -> Result<S::Ok, S::Error> {
        let mut seq = s.serialize_seq(Some(records.len()))?;
        for r in records {
            let hex: String = r.iter().map(|b| format!("{b:02x}")).collect();
            seq.serialize_element(&hex)?;
        }
        seq.end()
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<Vec<u8>>, D::Error> {
        let hex: Vec<String> = Vec::deserialize(d)?;
        hex.iter()
            .map(|h| {
                if h.len() % 2 != 0 || !h.is_ascii() {
                    return Err(D::Error::custom("odd hex string"));
                }
                (0..h.len())
                    .step_by(2)
                    .map(|i| u8::from_str_radix(&h[i..i + 2], 16).map_err(D::Error::custom))
                    .collect()
            })
            .collect()
    }
}

/// What reading a repository found besides its records.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReadStats {
    /// Records given up (refused, malformed or cancelled too often).
    pub skipped_records: usize,
    pub reservations: usize,
}

fn reserve(link: &mut dyn Link, stats: &mut ReadStats) -> Result<u16, LinkError> {
    stats.reservations += 1;
    match call(link, &ReserveSdrRepository)? {
        Ok(id) => Ok(id),
        // A BMC without reservations (in-band, some old ones) takes 0000h.
        Err(_) => Ok(0),
    }
}

/// Reads one record: `Ok(None)` when the BMC refused it (skip it).
fn read_record(
    link: &mut dyn Link,
    reservation: &mut u16,
    record_id: u16,
    stats: &mut ReadStats,
) -> Result<(u16, Option<Vec<u8>>), LinkError> {
    let mut next = 0xffff;
    'retry: for _ in 0..MAX_RESERVATION_RETRIES {
        let get = |offset: u8, bytes: u8, reservation: u16| GetSdr {
            reservation,
            record_id,
            offset,
            bytes,
        };
        let header = match call(link, &get(0, 5, *reservation)) {
            Ok(Ok(chunk)) => chunk,
            Ok(Err(Cc(CC_RESERVATION_CANCELLED))) => {
                *reservation = reserve(link, stats)?;
                continue 'retry;
            }
            Ok(Err(_)) | Err(LinkError::Malformed(_)) => return Ok((next, None)),
            Err(e) => return Err(e),
        };
        next = header.next_record_id;
        if header.data.len() < 5 {
            return Ok((next, None));
        }
        let mut record = header.data[..5].to_vec();
        let total = 5 + usize::from(record[4]);
        while record.len() < total {
            let offset = u8::try_from(record.len()).unwrap_or(u8::MAX);
            let want = CHUNK.min(u8::try_from(total - record.len()).unwrap_or(CHUNK));
            match call(link, &get(offset, want, *reservation)) {
                Ok(Ok(chunk)) if !chunk.data.is_empty() => {
                    let take = chunk.data.len().min(total - record.len());
                    record.extend_from_slice(&chunk.data[..take]);
                }
                Ok(Err(Cc(CC_RESERVATION_CANCELLED))) => {
                    // The record may have changed under us: start it again.
                    *reservation = reserve(link, stats)?;
                    continue 'retry;
                }
                Ok(Ok(_)) | Ok(Err(_)) | Err(LinkError::Malformed(_)) => return Ok((next, None)),
                Err(e) => return Err(e),
            }
        }
        return Ok((next, Some(record)));
    }
    Ok((next, None))
}

/// Reads the whole repository.
pub fn read_repository(
    link: &mut dyn Link,
    info: &SdrRepositoryInfo,
    deadline: std::time::Instant,
) -> Result<(SdrCache, ReadStats), LinkError> {
    let mut stats = ReadStats::default();
    let mut reservation = reserve(link, &mut stats)?;
    let mut records = Vec::new();
    let mut id = 0x0000;
    let mut seen = std::collections::BTreeSet::new();
    while id != 0xffff && records.len() + stats.skipped_records < MAX_RECORDS {
        if std::time::Instant::now() > deadline {
            return Err(LinkError::Deadline);
        }
        if !seen.insert(id) {
            break; // next-record ids that loop
        }
        let (next, record) = read_record(link, &mut reservation, id, &mut stats)?;
        match record {
            Some(r) => records.push(r),
            None => stats.skipped_records += 1,
        }
        if next == id {
            break;
        }
        id = next;
    }
    Ok((
        SdrCache {
            addition_ts: info.addition_ts,
            erase_ts: info.erase_ts,
            records,
        },
        stats,
    ))
}

/// Asks for the repository's timestamps.
pub fn repository_info(link: &mut dyn Link) -> Result<Result<SdrRepositoryInfo, Cc>, LinkError> {
    call(link, &GetSdrRepositoryInfo)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::source::ipmi::{commands::Request, transport::Reply};

    /// A full record like ipmisim1's "MBTemp" (owner 0x20, sensor 1, temperature).
    pub fn mbtemp() -> Vec<u8> {
        let mut r = vec![
            0x03, 0x00, 0x51, 0x01, 0x00, // header, length patched below
            0x20, 0x00, 0x01, 0x07, 0x01, // owner, lun, number, entity 7.1
            0x7f, 0x68, 0x01, 0x01, // init, caps, type temperature, threshold
            0x00, 0x00, 0x00, 0x00, 0x00, 0x00, // masks
            0x00, 0x01, 0x00, // units: unsigned, degrees C
            0x00, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00, // linear, M=1, B=0, exps 0
            0x00, 0x00, 0x00, 0x00, 0xff, 0x00, // flags, nominal, max, min, sensor max/min
            0x00, 0x00, 0x00, 0x00, 0x00, 0x00, // thresholds
            0x00, 0x00, 0x00, 0x00, 0x00, // hysteresis, reserved, oem
            0xc6, b'M', b'B', b'T', b'e', b'm', b'p',
        ];
        r[4] = u8::try_from(r.len() - 5).unwrap();
        r
    }

    #[test]
    fn a_full_record_parses_into_a_threshold_sensor() {
        let s = parse_record(&mbtemp()).unwrap();
        assert_eq!(s.len(), 1);
        let s = &s[0];
        assert_eq!((s.record_id, s.owner, s.number), (3, 0x20, 1));
        assert_eq!(s.name, "MBTemp");
        assert_eq!(s.kind(), ReadingKind::Threshold);
        assert_eq!(s.units.base, 1);
        assert_eq!(s.factors.unwrap().convert(0x60), Some(96.0));
    }

    #[test]
    fn short_corrupt_and_foreign_records_are_refused_or_ignored() {
        let full = mbtemp();
        for len in 0..full.len() {
            // Never a panic; a truncated record is corrupt.
            assert!(parse_record(&full[..len]).is_err(), "{len}");
        }
        let mut lying = full.clone();
        lying[4] = 10; // declares a full record of 15 bytes
        assert!(
            parse_record(&lying)
                .unwrap_err()
                .detail
                .contains("expected at least 48")
        );
        let locator = [0x01, 0x00, 0x51, 0x12, 0x02, 0x20, 0x00];
        assert_eq!(parse_record(&locator).unwrap(), vec![]);
    }

    #[test]
    fn a_shared_compact_record_yields_one_sensor_each() {
        let mut r = vec![0u8; 32];
        r[..5].copy_from_slice(&[0x07, 0x00, 0x51, 0x02, 0x00]);
        r[5] = 0x20;
        r[7] = 0x08;
        r[12] = 0x08; // power supply
        r[13] = 0x6f;
        r[23] = 0x02; // two sensors, numeric suffix
        r[24] = 0x01; // starting at 1
        r[31] = 0xc2;
        r.extend_from_slice(b"PS");
        r[4] = u8::try_from(r.len() - 5).unwrap();
        let s = parse_record(&r).unwrap();
        let names: Vec<_> = s.iter().map(|s| (s.name.as_str(), s.number)).collect();
        assert_eq!(names, vec![("PS 1", 8), ("PS 2", 9)]);
        assert!(
            s.iter()
                .all(|s| s.factors.is_none() && s.kind() == ReadingKind::Discrete)
        );
    }

    /// A repository served 16 bytes at a time, cancelling the reservation once.
    struct Repo {
        records: Vec<Vec<u8>>,
        reservation: u16,
        cancel_once: bool,
        requests: Vec<Request>,
    }

    impl Link for Repo {
        fn exchange(&mut self, r: &Request) -> Result<Reply, LinkError> {
            self.requests.push(r.clone());
            let ok = |data: Vec<u8>| Ok(Reply { cc: 0, data });
            match r.cmd {
                0x22 => {
                    self.reservation += 1;
                    ok(self.reservation.to_le_bytes().to_vec())
                }
                0x23 => {
                    let reservation = u16::from_le_bytes([r.data[0], r.data[1]]);
                    let id = usize::from(u16::from_le_bytes([r.data[2], r.data[3]]));
                    let (offset, len) = (usize::from(r.data[4]), usize::from(r.data[5]));
                    assert!(len <= 16, "asked {len} bytes");
                    if offset > 0 && self.cancel_once {
                        self.cancel_once = false;
                        return Ok(Reply {
                            cc: 0xc5,
                            data: vec![],
                        });
                    }
                    if offset > 0 && reservation != self.reservation {
                        return Ok(Reply {
                            cc: 0xc5,
                            data: vec![],
                        });
                    }
                    let Some(rec) = self.records.get(id) else {
                        return Ok(Reply {
                            cc: 0xcb,
                            data: vec![],
                        });
                    };
                    let next: u16 = if id + 1 == self.records.len() {
                        0xffff
                    } else {
                        u16::try_from(id + 1).unwrap()
                    };
                    let mut data = next.to_le_bytes().to_vec();
                    data.extend_from_slice(
                        &rec[offset.min(rec.len())..(offset + len).min(rec.len())],
                    );
                    ok(data)
                }
                _ => Ok(Reply {
                    cc: 0xc1,
                    data: vec![],
                }),
            }
        }
    }

    #[test]
    fn the_repository_is_read_in_chunks_renewing_a_cancelled_reservation() {
        let mut second = mbtemp();
        second[0] = 1;
        let mut repo = Repo {
            records: vec![mbtemp(), second],
            reservation: 0,
            cancel_once: true,
            requests: vec![],
        };
        let info = SdrRepositoryInfo {
            records: 2,
            addition_ts: 7,
            erase_ts: 1,
        };
        let far = std::time::Instant::now() + std::time::Duration::from_secs(60);
        let (cache, stats) = read_repository(&mut repo, &info, far).unwrap();
        assert_eq!(cache.records, repo.records);
        assert_eq!(stats.reservations, 2);
        assert_eq!(stats.skipped_records, 0);
        assert!(cache.matches(&info));
        // The cache survives a trip through its file.
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("bmc.sdr.json");
        cache.save(&path).unwrap();
        assert_eq!(SdrCache::load(&path), Some(cache));
    }
}
