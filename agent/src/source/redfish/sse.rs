//! The EventService's Server-Sent Events stream (`ServerSentEventUri`): one
//! long-lived GET per endpoint, parsed here ([`Parser`], pure), each Redfish
//! `Event` record becoming an agent event and a re-read of the endpoint at
//! once ([`Shared`]: the source's next poll, which the stream wakes, reads
//! the endpoint out of its interval).
//!
//! The stream is reopened after an error or an end, with `Last-Event-ID`,
//! after a capped, jittered delay (never less than [`RECONNECT_MIN`], nor
//! less than the server's `retry:`); a stream silent for longer than
//! `silence` (keep-alive comments count as traffic) is dropped and reopened.
//! Malformed events are counted by reason and logged at most once a minute.

use std::{
    collections::{BTreeMap, BTreeSet},
    sync::{Arc, Mutex},
    time::Duration,
};

use rand::SeedableRng;
use serde_json::Value;
use sitewatch_protocol::{Event, Severity};
use tokio::{sync::Notify, time::Instant};

use super::{NAME, clean, session::Api};
use crate::backoff::Backoff;

/// The longest line accepted; a longer one is skipped to its end and its
/// event dropped (`line_too_long`).
pub const MAX_LINE: usize = 64 * 1024;
/// The most data one event may carry (`event_too_large`).
pub const MAX_EVENT: usize = 256 * 1024;
/// The shortest wait before reopening a stream, whatever the jitter drew.
pub const RECONNECT_MIN: Duration = Duration::from_secs(1);
/// The longest wait before reopening a stream.
pub const RECONNECT_MAX: Duration = Duration::from_secs(120);
/// How often a malformed event is logged at most (all are counted).
const LOG_EVERY: Duration = Duration::from_secs(60);
/// At most this many events are held for the next poll (a flood is counted).
const MAX_PENDING: usize = 1000;

/// The reasons a stream event is dropped, as the `reason` label says.
pub const MALFORMED_REASONS: &[&str] = &[
    "line_too_long",
    "event_too_large",
    "not_utf8",
    "not_json",
    "no_events",
];

/// One dispatched SSE event, or a reason it was dropped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Item {
    Event {
        id: Option<String>,
        kind: Option<String>,
        data: String,
    },
    Malformed(&'static str),
}

/// An incremental SSE parser (the WHATWG EventSource format): lines end in
/// CRLF, LF or CR; `data:` lines are joined with LF; `id:`, `event:` and
/// `retry:` fields; lines starting with `:` are comments; a blank line
/// dispatches the event.
#[derive(Debug, Default)]
pub struct Parser {
    line: Vec<u8>,
    /// The line being read is over [`MAX_LINE`]: skipped to its end.
    skipping: bool,
    /// The previous byte was a CR (a following LF is the same line end).
    after_cr: bool,
    data: String,
    has_data: bool,
    kind: Option<String>,
    /// The event being read is dropped at its dispatch, for this reason.
    spoiled: Option<&'static str>,
    /// The last event id seen (kept across events, as the format says).
    pub last_id: Option<String>,
    /// The server's `retry:` in milliseconds.
    pub retry: Option<u64>,
}

impl Parser {
    pub fn new() -> Parser {
        Parser::default()
    }

    /// Feeds bytes; returns the events they completed.
    pub fn feed(&mut self, bytes: &[u8]) -> Vec<Item> {
        let mut out = Vec::new();
        for &b in bytes {
            if self.after_cr {
                self.after_cr = false;
                if b == b'\n' {
                    continue;
                }
            }
            match b {
                b'\n' | b'\r' => {
                    self.after_cr = b == b'\r';
                    let line = std::mem::take(&mut self.line);
                    if std::mem::take(&mut self.skipping) {
                        continue;
                    }
                    self.line_done(&line, &mut out);
                }
                _ if self.skipping => {}
                _ => {
                    if self.line.len() >= MAX_LINE {
                        self.skipping = true;
                        self.line.clear();
                        self.spoiled = Some("line_too_long");
                    } else {
                        self.line.push(b);
                    }
                }
            }
        }
        out
    }

    fn line_done(&mut self, line: &[u8], out: &mut Vec<Item>) {
        if line.is_empty() {
            self.dispatch(out);
            return;
        }
        if line[0] == b':' {
            return; // a comment (keep-alive)
        }
        let Ok(line) = std::str::from_utf8(line) else {
            self.spoiled = Some("not_utf8");
            return;
        };
        let (field, value) = match line.find(':') {
            Some(i) => {
                let v = &line[i + 1..];
                (&line[..i], v.strip_prefix(' ').unwrap_or(v))
            }
            None => (line, ""),
        };
        match field {
            "data" => {
                if self.data.len() + value.len() + 1 > MAX_EVENT {
                    self.spoiled = Some("event_too_large");
                    self.data.clear();
                } else if self.spoiled.is_none() {
                    if self.has_data {
                        self.data.push('\n');
                    }
                    self.data.push_str(value);
                }
                self.has_data = true;
            }
            "id" if !value.contains('\0') => self.last_id = Some(value.to_owned()),
            "event" => self.kind = Some(value.to_owned()),
            "retry" => {
                if let Ok(ms) = value.parse::<u64>() {
                    self.retry = Some(ms);
                }
            }
            _ => {} // unknown fields are ignored
        }
    }

    fn dispatch(&mut self, out: &mut Vec<Item>) {
        let data = std::mem::take(&mut self.data);
        let kind = self.kind.take();
        let had = std::mem::take(&mut self.has_data);
        if let Some(reason) = self.spoiled.take() {
            out.push(Item::Malformed(reason));
            return;
        }
        if had {
            out.push(Item::Event {
                id: self.last_id.clone(),
                kind,
                data,
            });
        }
    }
}

/// The Redfish `Event` records of one SSE event's data, as agent events, and
/// the resources they name (`OriginOfCondition`).
pub fn records(
    endpoint: &str,
    sse_id: Option<&str>,
    data: &str,
) -> Result<(Vec<Event>, Vec<String>), &'static str> {
    let v: Value = serde_json::from_str(data).map_err(|_| "not_json")?;
    let Some(list) = v.get("Events").and_then(Value::as_array) else {
        // A MetricReport or another payload: not an event.
        return if v.get("MetricValues").is_some() {
            Ok((Vec::new(), Vec::new()))
        } else {
            Err("no_events")
        };
    };
    let mut events = Vec::new();
    let mut origins = Vec::new();
    for (n, r) in list.iter().enumerate() {
        let text = |k: &str| r.get(k).and_then(Value::as_str);
        let origin = r
            .get("OriginOfCondition")
            .and_then(|o| o.get("@odata.id").or(Some(o)))
            .and_then(Value::as_str)
            .map(clean);
        let severity = text("MessageSeverity").or(text("Severity"));
        let message_id = text("MessageId").unwrap_or("");
        let mut message = text("Message").unwrap_or(message_id).to_owned();
        if message.is_empty() {
            message = "Redfish event".into();
        }
        if let Some(o) = &origin {
            message = format!("{message} ({o})");
        }
        let id = match (text("EventId"), sse_id) {
            (Some(e), _) if !e.is_empty() => Some(event_id("rfe", endpoint, e)),
            (_, Some(s)) if !s.is_empty() => Some(event_id("rfe", endpoint, &format!("{s}.{n}"))),
            _ => None,
        };
        let mut labels = BTreeMap::new();
        if !message_id.is_empty() {
            labels.insert("message_id".into(), truncate(message_id, 256));
        }
        if let Some(o) = &origin {
            labels.insert("origin".into(), truncate(o, 256));
        }
        events.push(Event {
            src: NAME.into(),
            dev: endpoint.into(),
            event_type: "redfish_event".into(),
            severity: severity_of(severity),
            message: truncate(&message, 1024),
            labels,
            ts: text("EventTimestamp").and_then(parse_timestamp),
            id,
        });
        if let Some(o) = origin {
            origins.push(o);
        }
    }
    Ok((events, origins))
}

/// Redfish `Health`-style severities to the DR plan's levels (the SEL's
/// precedent: a critical condition is `high`).
pub fn severity_of(s: Option<&str>) -> Severity {
    match s {
        Some("Critical") => Severity::High,
        Some("Warning") => Severity::Medium,
        _ => Severity::Low,
    }
}

/// A stable event id within the protocol's 128 characters: `<kind>.<endpoint>.<key>`,
/// the key hashed when the whole would be longer.
pub fn event_id(kind: &str, endpoint: &str, key: &str) -> String {
    let id = format!("{kind}.{endpoint}.{key}");
    if id.chars().count() <= 128 && !id.chars().any(char::is_control) {
        return id;
    }
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in key.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    let head: String = format!("{kind}.{endpoint}").chars().take(100).collect();
    format!("{head}.{h:016x}")
}

fn truncate(s: &str, n: usize) -> String {
    s.chars().filter(|c| !c.is_control()).take(n).collect()
}

/// An RFC 3339 timestamp (`2025-04-01T12:00:00+00:00`, `...Z`, fractions) to
/// Unix milliseconds.
pub fn parse_timestamp(s: &str) -> Option<i64> {
    let b = s.as_bytes();
    if b.len() < 19 || b[4] != b'-' || b[7] != b'-' || (b[10] != b'T' && b[10] != b' ') {
        return None;
    }
    let num = |r: std::ops::Range<usize>| s.get(r)?.parse::<i64>().ok();
    let (y, mo, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (h, mi, se) = (num(11..13)?, num(14..16)?, num(17..19)?);
    if !(1..=12).contains(&mo) || !(1..=31).contains(&d) || h > 23 || mi > 59 || se > 60 {
        return None;
    }
    let mut rest = &s[19..];
    let mut ms = 0;
    if let Some(f) = rest.strip_prefix('.') {
        let digits: String = f.chars().take_while(char::is_ascii_digit).collect();
        rest = &f[digits.len()..];
        let three: String = digits.chars().chain("000".chars()).take(3).collect();
        ms = three.parse::<i64>().ok()?;
    }
    let offset = match rest {
        "Z" | "z" | "" => 0,
        o if o.len() == 6 && (o.starts_with('+') || o.starts_with('-')) => {
            let oh = o.get(1..3)?.parse::<i64>().ok()?;
            let om = o.get(4..6)?.parse::<i64>().ok()?;
            let sign = if o.starts_with('-') { -1 } else { 1 };
            sign * (oh * 3600 + om * 60)
        }
        _ => return None,
    };
    // Days from the civil date (Howard Hinnant's algorithm).
    let (yy, mm) = if mo <= 2 {
        (y - 1, mo + 9)
    } else {
        (y, mo - 3)
    };
    let era = yy.div_euclid(400);
    let yoe = yy - era * 400;
    let doy = (153 * mm + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    Some((days * 86_400 + h * 3600 + mi * 60 + se - offset) * 1000 + ms)
}

/// What the streams hand the source's poll, and their counters.
#[derive(Debug, Default)]
pub struct Shared {
    pub wake: Arc<Notify>,
    events: Mutex<Vec<Event>>,
    hurry: Mutex<BTreeSet<String>>,
    stats: Mutex<BTreeMap<String, Stats>>,
}

/// One endpoint's stream counters since start.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Stats {
    pub connects: u64,
    pub events: u64,
    /// By reason: `line_too_long`, `event_too_large`, `not_utf8`,
    /// `not_json`, `no_events`.
    pub malformed: BTreeMap<&'static str, u64>,
    pub silent_drops: u64,
    pub dropped_overflow: u64,
    /// Whether a stream is open now.
    pub open: bool,
}

impl Shared {
    fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
        m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    pub fn take_events(&self) -> Vec<Event> {
        std::mem::take(&mut *Self::lock(&self.events))
    }

    pub fn take_hurried(&self) -> BTreeSet<String> {
        std::mem::take(&mut *Self::lock(&self.hurry))
    }

    pub fn stats(&self) -> BTreeMap<String, Stats> {
        Self::lock(&self.stats).clone()
    }

    fn with_stats(&self, endpoint: &str, f: impl FnOnce(&mut Stats)) {
        f(Self::lock(&self.stats)
            .entry(endpoint.to_owned())
            .or_default());
    }

    fn deliver(&self, endpoint: &str, events: Vec<Event>) {
        let n = events.len() as u64;
        {
            let mut pending = Self::lock(&self.events);
            let room = MAX_PENDING.saturating_sub(pending.len());
            let over = events.len().saturating_sub(room) as u64;
            pending.extend(events.into_iter().take(room));
            drop(pending);
            self.with_stats(endpoint, |s| {
                s.events += n;
                s.dropped_overflow += over;
            });
        }
        Self::lock(&self.hurry).insert(endpoint.to_owned());
        self.wake.notify_one();
    }
}

/// Runs one endpoint's stream until the task is aborted.
pub async fn run(api: Arc<Api>, path: String, silence: Duration, shared: Arc<Shared>) {
    let endpoint = api.endpoint.clone();
    let mut backoff = Backoff::new(RECONNECT_MIN, RECONNECT_MAX);
    let mut rng = rand::rngs::StdRng::from_os_rng();
    let mut parser = Parser::new();
    let mut last_log: Option<Instant> = None;
    loop {
        let last_id = parser.last_id.clone();
        let mut headers = Vec::new();
        if let Some(id) = &last_id {
            headers.push(("Last-Event-ID", id.as_str()));
        }
        let opened = api.open_stream(&path, &headers).await;
        let mut got_bytes = false;
        match opened {
            Err(e) => {
                api.failed_requests
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                tracing::debug!(source = NAME, endpoint = %endpoint, error = %e, "cannot open the event stream");
            }
            Ok(mut body) => {
                shared.with_stats(&endpoint, |s| {
                    s.connects += 1;
                    s.open = true;
                });
                tracing::debug!(source = NAME, endpoint = %endpoint, path = %path, last_event_id = ?last_id, "event stream open");
                // A fresh stream starts a fresh event (not the last id).
                let id = parser.last_id.take();
                let retry = parser.retry.take();
                parser = Parser::new();
                parser.last_id = id;
                parser.retry = retry;
                loop {
                    let next = tokio::time::timeout(silence, body.next()).await;
                    let bytes = match next {
                        Err(_) => {
                            shared.with_stats(&endpoint, |s| s.silent_drops += 1);
                            tracing::debug!(source = NAME, endpoint = %endpoint, "event stream silent: reopened");
                            break;
                        }
                        Ok(Ok(Some(b))) => b,
                        Ok(Ok(None)) => break,
                        Ok(Err(e)) => {
                            tracing::debug!(source = NAME, endpoint = %endpoint, error = %e, "event stream broke");
                            break;
                        }
                    };
                    got_bytes = true;
                    for item in parser.feed(&bytes) {
                        let outcome = match item {
                            Item::Malformed(reason) => Err(reason),
                            Item::Event { id, data, .. } => {
                                records(&endpoint, id.as_deref(), &data)
                            }
                        };
                        match outcome {
                            Ok((events, origins)) => {
                                if !origins.is_empty() {
                                    tracing::debug!(source = NAME, endpoint = %endpoint, ?origins, "event: reading the endpoint now");
                                }
                                if !events.is_empty() {
                                    shared.deliver(&endpoint, events);
                                }
                            }
                            Err(reason) => {
                                shared.with_stats(&endpoint, |s| {
                                    *s.malformed.entry(reason).or_default() += 1;
                                });
                                if last_log.is_none_or(|t| t.elapsed() >= LOG_EVERY) {
                                    last_log = Some(Instant::now());
                                    tracing::warn!(source = NAME, endpoint = %endpoint, reason, "malformed event on the event stream (dropped; counted in agent_redfish_sse_malformed_total)");
                                }
                            }
                        }
                    }
                }
                shared.with_stats(&endpoint, |s| s.open = false);
            }
        }
        if got_bytes {
            backoff.reset();
        }
        let floor = parser.retry.map_or(RECONNECT_MIN, |ms| {
            Duration::from_millis(ms).clamp(RECONNECT_MIN, RECONNECT_MAX)
        });
        let delay = backoff.next_delay(&mut rng).max(floor);
        tokio::time::sleep(delay).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn events(items: &[Item]) -> Vec<(Option<String>, String)> {
        items
            .iter()
            .filter_map(|i| match i {
                Item::Event { id, data, .. } => Some((id.clone(), data.clone())),
                Item::Malformed(_) => None,
            })
            .collect()
    }

    #[test]
    fn data_lines_join_and_ids_carry_over_whatever_the_line_ends() {
        let mut p = Parser::new();
        let items = p.feed(b": keep-alive\r\nid: 7\r\ndata: {\"a\":\r\ndata: 1}\r\n\r\ndata:x\rdata: y\r\rretry: 5000\n\ndata: z\n\n");
        assert_eq!(
            events(&items),
            vec![
                (Some("7".into()), "{\"a\":\n1}".into()),
                (Some("7".into()), "x\ny".into()),
                (Some("7".into()), "z".into()),
            ]
        );
        assert_eq!(p.retry, Some(5000));
        assert_eq!(p.last_id.as_deref(), Some("7"));
    }

    #[test]
    fn bytes_split_anywhere_give_the_same_events() {
        let text = b"id: 1\r\ndata: abc\r\n\r\nid: 2\r\ndata: def\r\n\r\n";
        let whole = Parser::new().feed(text);
        let mut p = Parser::new();
        let mut split = Vec::new();
        for b in text.chunks(1) {
            split.extend(p.feed(b));
        }
        assert_eq!(whole, split);
        assert_eq!(whole.len(), 2);
    }

    #[test]
    fn an_oversized_line_or_event_is_dropped_and_the_next_event_reads() {
        let mut p = Parser::new();
        let mut text = b"data: ".to_vec();
        text.extend(std::iter::repeat_n(b'x', MAX_LINE + 10));
        text.extend(b"\n\ndata: ok\n\n");
        let items = p.feed(&text);
        assert_eq!(
            items,
            vec![
                Item::Malformed("line_too_long"),
                Item::Event {
                    id: None,
                    kind: None,
                    data: "ok".into()
                }
            ]
        );
        let mut big = Vec::new();
        let line = format!("data: {}\n", "y".repeat(60 * 1024));
        for _ in 0..5 {
            big.extend(line.as_bytes());
        }
        big.extend(b"\ndata: next\n\n");
        let items = p.feed(&big);
        assert_eq!(items[0], Item::Malformed("event_too_large"));
        assert_eq!(events(&items[1..]), vec![(None, "next".into())]);
    }

    #[test]
    fn a_redfish_event_becomes_an_agent_event_naming_its_origin() {
        let data = r##"{"@odata.type":"#Event.v1_7_0.Event","Id":"5","Events":[{"EventId":"4711","EventTimestamp":"2025-04-01T12:00:00.250+02:00","MessageId":"ResourceEvent.1.0.ResourceStatusChangedCritical","MessageSeverity":"Critical","Message":"PSU 1 failed","OriginOfCondition":{"@odata.id":"/redfish/v1/Chassis/1U/PowerSubsystem/PowerSupplies/Bay1"}}]}"##;
        let (events, origins) = records("bmc1", Some("5"), data).unwrap();
        assert_eq!(
            origins,
            vec!["/redfish/v1/Chassis/1U/PowerSubsystem/PowerSupplies/Bay1"]
        );
        let e = &events[0];
        assert_eq!(e.id.as_deref(), Some("rfe.bmc1.4711"));
        assert_eq!(e.severity, Severity::High);
        assert_eq!(e.ts, Some(1_743_501_600_250));
        assert_eq!(e.event_type, "redfish_event");
        assert!(e.message.starts_with("PSU 1 failed"));
        assert_eq!(records("bmc1", None, "{not json"), Err("not_json"));
        assert_eq!(records("bmc1", None, "{}"), Err("no_events"));
    }

    #[test]
    fn timestamps_parse_to_unix_milliseconds() {
        assert_eq!(parse_timestamp("1970-01-01T00:00:00Z"), Some(0));
        assert_eq!(
            parse_timestamp("2012-03-07T14:44:00-05:00"),
            Some(1_331_149_440_000)
        );
        assert_eq!(parse_timestamp("yesterday"), None);
    }

    #[test]
    fn long_ids_are_hashed_within_the_protocol_limit() {
        let id = event_id("rfe", "bmc", &"k".repeat(300));
        assert!(id.len() <= 128);
        assert_eq!(id, event_id("rfe", "bmc", &"k".repeat(300)));
    }
}
