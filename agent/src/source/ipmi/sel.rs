//! The System Event Log: entries added since the previous sweep become events,
//! at least once. A cursor (last record id, its timestamp, and the SEL's
//! addition and erase timestamps) says where the previous sweep stopped. With a
//! `state_dir` it is kept on disk, written (with fsync) only once every broker
//! has acknowledged the events it covers (a checkpoint, see
//! `buffer::checkpoint`): a crash in between makes the restarted agent read
//! those entries again, and each event's stable `id` ([`event_id`]) lets the
//! collector keep it once.
//!
//! Without any cursor (first start), the existing log is history, not news:
//! the cursor is put at its end and nothing is sent.

use std::path::Path;

use serde::{Deserialize, Serialize};
use sitewatch_protocol::{Event, Severity};

use super::{
    commands::{CC_NOT_PRESENT, Cc, GetSelEntry, GetSelInfo, SelEntry, SelInfo},
    sdr::SensorRecord,
    transport::{Link, LinkError, call},
};

/// Entries read at most per sweep; the rest follow in the next sweeps.
pub const MAX_ENTRIES_PER_SWEEP: usize = 256;

/// SEL timestamps at or below this count seconds since the BMC's start
/// ("pre-init"), not since 1970 (IPMI 2.0 section 37).
const PRE_INIT_MAX: u32 = 0x2000_0000;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct SelCursor {
    /// The last entry handed out, if any.
    pub last_record_id: Option<u16>,
    pub last_timestamp: u32,
    /// The SEL's addition timestamp when every entry up to now was handed
    /// out (kept for diagnosis; see [`sweep`] for why it decides nothing).
    pub addition_ts: u32,
    /// The SEL's erase timestamp: when it changes the log was cleared.
    pub erase_ts: u32,
}

impl SelCursor {
    pub fn load(path: &Path) -> Option<SelCursor> {
        serde_json::from_str(&std::fs::read_to_string(path).ok()?).ok()
    }

    /// The cursor as its file holds it.
    pub fn to_bytes(&self) -> Result<Vec<u8>, serde_json::Error> {
        serde_json::to_vec(self)
    }

    /// Writes the cursor file durably (fsync; tests and tools: the agent
    /// saves it through the publisher's checkpoints).
    pub fn save(&self, path: &Path) -> std::io::Result<()> {
        let bytes = self.to_bytes().map_err(std::io::Error::other)?;
        crate::buffer::log::write_durably(path, &bytes)
    }

    fn after(&self, id: u16, ts: u32) -> bool {
        match self.last_record_id {
            None => true,
            Some(last) => ts > self.last_timestamp || (ts == self.last_timestamp && id > last),
        }
    }
}

fn record_id(e: &SelEntry) -> u16 {
    u16::from_le_bytes([e.record[0], e.record[1]])
}

fn timestamp(e: &SelEntry) -> u32 {
    u32::from_le_bytes([e.record[3], e.record[4], e.record[5], e.record[6]])
}

/// What one SEL sweep found.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SelSweep {
    pub info: Option<SelInfo>,
    pub new_entries: Vec<[u8; 16]>,
    pub cursor: SelCursor,
}

/// Reads the entries after `cursor`.
pub fn sweep(
    link: &mut dyn Link,
    cursor: Option<SelCursor>,
) -> Result<Result<SelSweep, Cc>, LinkError> {
    let info = match call(link, &GetSelInfo)? {
        Ok(info) => info,
        Err(cc) => return Ok(Err(cc)),
    };
    let mut out = SelSweep {
        info: Some(info),
        new_entries: vec![],
        cursor: cursor.unwrap_or_default(),
    };
    let Some(cursor) = cursor else {
        // First start: skip the history. FFFFh asks for the last entry.
        out.cursor = match call(link, &GetSelEntry { record_id: 0xffff })? {
            Ok(last) => SelCursor {
                last_record_id: Some(record_id(&last)),
                last_timestamp: timestamp(&last),
                addition_ts: info.addition_ts,
                erase_ts: info.erase_ts,
            },
            Err(_) => SelCursor {
                addition_ts: info.addition_ts,
                erase_ts: info.erase_ts,
                ..SelCursor::default()
            },
        };
        return Ok(Ok(out));
    };
    // The SEL's addition timestamp is not enough to tell "nothing new": it
    // counts whole seconds, and an entry added in the same second as the last
    // one handed out would be missed (seen with ipmi_sim). The last entry's
    // next-record id tells for one more command.
    // Where to start: after the last entry handed out when it is still there;
    // from the first entry when the log was cleared or that entry is gone.
    let mut filter_by_cursor = true;
    let mut start = 0x0000;
    if cursor.erase_ts == info.erase_ts
        && let Some(last) = cursor.last_record_id
    {
        match call(link, &GetSelEntry { record_id: last })? {
            Ok(e) if record_id(&e) == last && timestamp(&e) == cursor.last_timestamp => {
                start = e.next_record_id;
                filter_by_cursor = false;
            }
            _ => {}
        }
    } else if cursor.erase_ts != info.erase_ts {
        // Cleared since: every entry there is new.
        filter_by_cursor = false;
    }
    let mut next = cursor;
    let mut id = start;
    let mut complete = true;
    let mut seen = std::collections::BTreeSet::new();
    while id != 0xffff {
        if out.new_entries.len() >= MAX_ENTRIES_PER_SWEEP {
            complete = false;
            break;
        }
        if !seen.insert(id) {
            break;
        }
        let entry = match call(link, &GetSelEntry { record_id: id }) {
            Ok(Ok(e)) => e,
            Ok(Err(Cc(CC_NOT_PRESENT))) => break, // an empty log, or the end
            Ok(Err(cc)) => return Ok(Err(cc)),
            Err(e) => return Err(e),
        };
        let (rid, ts) = (record_id(&entry), timestamp(&entry));
        if !filter_by_cursor || cursor.after(rid, ts) {
            out.new_entries.push(entry.record);
            next.last_record_id = Some(rid);
            next.last_timestamp = ts;
        }
        id = entry.next_record_id;
    }
    next.erase_ts = info.erase_ts;
    // An unfinished walk keeps the old addition stamp so that the next sweep
    // goes on from the cursor.
    if complete {
        next.addition_ts = info.addition_ts;
    }
    out.cursor = next;
    Ok(Ok(out))
}

/// Threshold offsets (event type 01h): 0-5 lower, 6-11 upper; /2 = NC, C, NR.
fn threshold_text(offset: u8) -> &'static str {
    const T: [&str; 12] = [
        "lower non-critical going low",
        "lower non-critical going high",
        "lower critical going low",
        "lower critical going high",
        "lower non-recoverable going low",
        "lower non-recoverable going high",
        "upper non-critical going low",
        "upper non-critical going high",
        "upper critical going low",
        "upper critical going high",
        "upper non-recoverable going low",
        "upper non-recoverable going high",
    ];
    T.get(usize::from(offset))
        .copied()
        .unwrap_or("threshold event")
}

fn sensor_type_name(t: u8) -> &'static str {
    match t {
        0x01 => "Temperature",
        0x02 => "Voltage",
        0x03 => "Current",
        0x04 => "Fan",
        0x05 => "Physical Security",
        0x07 => "Processor",
        0x08 => "Power Supply",
        0x09 => "Power Unit",
        0x0c => "Memory",
        0x0d => "Drive Slot",
        0x0f => "System Firmware Progress",
        0x10 => "Event Logging Disabled",
        0x12 => "System Event",
        0x13 => "Critical Interrupt",
        0x20 => "OS Critical Stop",
        0x23 => "Watchdog",
        _ => "Sensor",
    }
}

/// Sensor-specific (event type 6Fh) offsets worth a name and a severity.
fn specific(sensor_type: u8, offset: u8) -> (&'static str, Severity) {
    use Severity::*;
    match (sensor_type, offset) {
        (0x08, 0) => ("presence detected", Low),
        (0x08, 1) => ("power supply failure detected", High),
        (0x08, 2) => ("predictive failure", Medium),
        (0x08, 3) => ("power supply input lost (AC/DC)", High),
        (0x08, 4) => ("power supply input lost or out of range", High),
        (0x08, 5) => ("power supply input out of range", Medium),
        (0x08, 6) => ("configuration error", Medium),
        (0x09, 4) => ("AC lost", High),
        (0x09, 5) => ("soft power control failure", High),
        (0x09, 6) => ("power unit failure", High),
        (0x07, 0) => ("IERR", Critical),
        (0x07, 1) => ("thermal trip", Critical),
        (0x0c, 0) => ("correctable ECC", Low),
        (0x0c, 1) => ("uncorrectable ECC", High),
        (0x0d, 1) => ("drive fault", High),
        (0x0d, 2) => ("predictive failure", Medium),
        (0x10, 2) => ("log area reset/cleared", Low),
        (0x10, 4) => ("SEL full", Medium),
        (0x10, 5) => ("SEL almost full", Low),
        (0x20, _) => ("OS critical stop", Critical),
        (0x23, _) => ("watchdog expired", Medium),
        _ => ("state asserted", Low),
    }
}

/// The event of one SEL record; `sensor` is the SDR of its sensor, when known.
pub fn event(bmc: &str, record: &[u8; 16], sensor: Option<&SensorRecord>) -> Event {
    let id = u16::from_le_bytes([record[0], record[1]]);
    let record_type = record[2];
    let ts = u32::from_le_bytes([record[3], record[4], record[5], record[6]]);
    let mut labels = sitewatch_protocol::payload::Labels::new();
    labels.insert("record_id".into(), format!("{id:#06x}"));
    let (message, severity) = if record_type == 0x02 {
        let (sensor_type, number, dir_type) = (record[10], record[11], record[12]);
        let deassert = dir_type & 0x80 != 0;
        let event_type = dir_type & 0x7f;
        let offset = record[13] & 0x0f;
        let name = sensor.map_or_else(|| format!("#{number:#04x}"), |s| s.name.clone());
        let (what, mut severity) = match event_type {
            0x01 => {
                let sev = match offset / 2 {
                    0 | 3 => Severity::Medium,
                    1 | 4 => Severity::High,
                    _ => Severity::Critical,
                };
                (threshold_text(offset).to_owned(), sev)
            }
            0x6f => {
                let (t, s) = specific(sensor_type, offset);
                (t.to_owned(), s)
            }
            t => (
                format!("generic event type {t:#04x} offset {offset}"),
                Severity::Low,
            ),
        };
        let mut message = format!(
            "{} {name}: {what} {}",
            sensor_type_name(sensor_type),
            if deassert { "deasserted" } else { "asserted" }
        );
        // Threshold events may carry the trigger reading and the threshold
        // (event data 2 and 3, flagged by data 1 bits 7:6 and 5:4 = 01b).
        if event_type == 0x01
            && let Some(f) = sensor.and_then(|s| s.factors)
            && record[13] >> 6 == 0b01
            && (record[13] >> 4) & 0b11 == 0b01
            && let (Some(reading), Some(threshold)) = (f.convert(record[14]), f.convert(record[15]))
        {
            message.push_str(&format!(" (reading {reading}, threshold {threshold})"));
        }
        if deassert {
            // The condition went away: news, not an alarm.
            severity = Severity::Low;
        }
        labels.insert("sensor_type".into(), format!("{sensor_type:#04x}"));
        // Not `sensor`: the collector sets that label key itself and refuses
        // events that carry it.
        labels.insert("sensor_name".into(), name);
        (message, severity)
    } else {
        (
            format!("OEM SEL record type {record_type:#04x}"),
            Severity::Low,
        )
    };
    Event {
        src: super::NAME.into(),
        dev: bmc.into(),
        event_type: "sel_entry".into(),
        severity,
        message,
        labels,
        ts: (ts > PRE_INIT_MAX && record_type < 0xe0).then(|| i64::from(ts) * 1000),
        id: Some(event_id(bmc, record)),
    }
}

/// The stable id of a SEL record's event: the same record read again (after a
/// restart whose cursor was not saved yet) gets the same id, so the collector
/// keeps it once. Record ids are reused after a clear; the timestamp and the
/// record's contents tell those apart.
pub fn event_id(bmc: &str, record: &[u8; 16]) -> String {
    let id = u16::from_le_bytes([record[0], record[1]]);
    let ts = u32::from_le_bytes([record[3], record[4], record[5], record[6]]);
    let rest: String = record[7..].iter().map(|b| format!("{b:02x}")).collect();
    format!("sel.{bmc}.{id:04x}.{ts:08x}.{rest}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::source::ipmi::{commands::Request, transport::Reply};

    fn rec(id: u16, ts: u32, sensor_type: u8, number: u8, dir_type: u8, data: [u8; 3]) -> [u8; 16] {
        let [i0, i1] = id.to_le_bytes();
        let [t0, t1, t2, t3] = ts.to_le_bytes();
        [
            i0,
            i1,
            0x02,
            t0,
            t1,
            t2,
            t3,
            0x20,
            0x00,
            0x04,
            sensor_type,
            number,
            dir_type,
            data[0],
            data[1],
            data[2],
        ]
    }

    #[test]
    fn a_decoded_entry_is_an_event_the_collector_accepts() {
        let psu = event(
            "bmc",
            &rec(3, 0x6000_0000, 0x08, 8, 0x6f, [0x01, 0xff, 0xff]),
            None,
        );
        assert!(psu.labels.contains_key("sensor_name"), "{:?}", psu.labels);
        let payload = sitewatch_protocol::payload::EventsPayload {
            v: 1,
            seq: 1,
            ts: 1,
            events: vec![psu],
            boot: Some("b1".into()),
            site: None,
            host: None,
        };
        let text = serde_json::to_vec(&payload).unwrap();
        let decoded = sitewatch_protocol::decode("sitewatch/v1/bj1/web-01/events", &text);
        assert!(decoded.is_ok(), "{decoded:?}");
    }

    #[test]
    fn severities_follow_the_event() {
        let psu = event(
            "bmc",
            &rec(3, 0x6000_0000, 0x08, 8, 0x6f, [0x01, 0xff, 0xff]),
            None,
        );
        assert_eq!(psu.severity, Severity::High);
        assert!(
            psu.message.contains("power supply failure"),
            "{}",
            psu.message
        );
        assert_eq!(psu.ts, Some(0x6000_0000_i64 * 1000));
        let uc = event("bmc", &rec(1, 10, 0x01, 1, 0x01, [0x59, 0x95, 0x90]), None);
        assert_eq!(uc.severity, Severity::High);
        assert_eq!(uc.ts, None); // pre-init time: no wall clock
        let unr = event("bmc", &rec(1, 10, 0x01, 1, 0x01, [0x0b, 0, 0]), None);
        assert_eq!(unr.severity, Severity::Critical);
        let unc = event("bmc", &rec(1, 10, 0x01, 1, 0x01, [0x07, 0, 0]), None);
        assert_eq!(unc.severity, Severity::Medium);
        let gone = event("bmc", &rec(1, 10, 0x01, 1, 0x81, [0x09, 0, 0]), None);
        assert_eq!(gone.severity, Severity::Low);
        assert!(gone.message.ends_with("deasserted"));
    }

    /// A SEL of the given records.
    struct Log {
        records: Vec<[u8; 16]>,
        addition_ts: u32,
        erase_ts: u32,
    }

    impl Link for Log {
        fn exchange(&mut self, r: &Request) -> Result<Reply, LinkError> {
            match r.cmd {
                0x40 => {
                    let mut d = vec![0x51, 0, 0, 0, 0];
                    d.extend_from_slice(&self.addition_ts.to_le_bytes());
                    d.extend_from_slice(&self.erase_ts.to_le_bytes());
                    d.push(0x0a);
                    d[1] = u8::try_from(self.records.len()).unwrap();
                    Ok(Reply { cc: 0, data: d })
                }
                0x43 => {
                    let id = u16::from_le_bytes([r.data[2], r.data[3]]);
                    let pos = match id {
                        0x0000 if !self.records.is_empty() => Some(0),
                        0xffff if !self.records.is_empty() => Some(self.records.len() - 1),
                        _ => self
                            .records
                            .iter()
                            .position(|x| u16::from_le_bytes([x[0], x[1]]) == id),
                    };
                    let Some(pos) = pos else {
                        return Ok(Reply {
                            cc: 0xcb,
                            data: vec![],
                        });
                    };
                    let next = self
                        .records
                        .get(pos + 1)
                        .map_or(0xffff, |x| u16::from_le_bytes([x[0], x[1]]));
                    let mut d = next.to_le_bytes().to_vec();
                    d.extend_from_slice(&self.records[pos]);
                    Ok(Reply { cc: 0, data: d })
                }
                _ => Ok(Reply {
                    cc: 0xc1,
                    data: vec![],
                }),
            }
        }
    }

    #[test]
    fn entries_are_handed_out_once_from_the_cursor_on() {
        let mut log = Log {
            records: vec![rec(1, 100, 1, 1, 1, [0; 3]), rec(2, 101, 1, 1, 1, [0; 3])],
            addition_ts: 101,
            erase_ts: 0,
        };
        // First start: history is skipped.
        let first = sweep(&mut log, None).unwrap().unwrap();
        assert!(first.new_entries.is_empty());
        assert_eq!(first.cursor.last_record_id, Some(2));
        // Nothing new: nothing sent.
        let same = sweep(&mut log, Some(first.cursor)).unwrap().unwrap();
        assert!(same.new_entries.is_empty());
        // Two added: both, once.
        log.records.push(rec(3, 102, 8, 8, 0x6f, [1, 0xff, 0xff]));
        log.records.push(rec(4, 103, 8, 8, 0x6f, [3, 0xff, 0xff]));
        log.addition_ts = 103;
        let new = sweep(&mut log, Some(same.cursor)).unwrap().unwrap();
        assert_eq!(new.new_entries.len(), 2);
        assert_eq!(new.cursor.last_record_id, Some(4));
        let again = sweep(&mut log, Some(new.cursor)).unwrap().unwrap();
        assert!(again.new_entries.is_empty());
        // Cleared, then one added: that one.
        log.records = vec![rec(1, 200, 1, 1, 1, [0; 3])];
        log.erase_ts = 150;
        log.addition_ts = 200;
        let cleared = sweep(&mut log, Some(again.cursor)).unwrap().unwrap();
        assert_eq!(cleared.new_entries.len(), 1);
        // The cursor survives its file.
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.json");
        cleared.cursor.save(&path).unwrap();
        assert_eq!(SelCursor::load(&path), Some(cleared.cursor));
    }

    #[test]
    fn event_ids_are_stable_and_tell_records_apart() {
        let a = rec(3, 0x6000_0000, 0x08, 8, 0x6f, [0x01, 0xff, 0xff]);
        let b = rec(3, 0x6000_0001, 0x08, 8, 0x6f, [0x01, 0xff, 0xff]);
        let ea = event("bmc-1", &a, None);
        assert_eq!(ea.id, event("bmc-1", &a, None).id);
        assert_ne!(ea.id, event("bmc-1", &b, None).id);
        assert_ne!(ea.id, event("bmc-2", &a, None).id);
        let id = ea.id.unwrap();
        assert!(
            id.len() <= sitewatch_protocol::limits::MAX_EVENT_ID_LEN,
            "{id}"
        );
        let long = "b".repeat(64);
        assert!(event_id(&long, &a).len() <= sitewatch_protocol::limits::MAX_EVENT_ID_LEN);
    }

    #[test]
    fn a_vanished_cursor_entry_falls_back_to_timestamps() {
        let mut log = Log {
            records: vec![rec(5, 100, 1, 1, 1, [0; 3]), rec(6, 110, 1, 1, 1, [0; 3])],
            addition_ts: 110,
            erase_ts: 0,
        };
        let cursor = SelCursor {
            last_record_id: Some(4),
            last_timestamp: 105,
            addition_ts: 1,
            erase_ts: 0,
        };
        let s = sweep(&mut log, Some(cursor)).unwrap().unwrap();
        assert_eq!(s.new_entries.len(), 1);
        assert_eq!(s.cursor.last_record_id, Some(6));
    }
}
