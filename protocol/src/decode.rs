//! Raw MQTT message -> typed [`Message`], or a typed [`Rejection`].
//!
//! Decoding happens in two passes: serde checks the structure (required fields,
//! types, closed choices), then [`validate`] checks what serde cannot (the
//! protocol version, identity against the topic, lengths, finite values, label
//! counts and names). Every rejection has a bounded [`Rejection::reason`] for the
//! collector's `sitewatch_collector_rejected_messages_total{reason}`.

use serde::{Deserialize, Serialize};

use crate::{
    limits::*,
    name::SiteName,
    payload::{
        CollectorStatePayload, CollectorViewPayload, EventsPayload, Labels, ReadingsPayload,
        ReadingsView, SignalsPayload, StatePayload,
    },
    quantity,
    topic::{CollectorKind, Topic, TopicError, TopicKind},
};

mod scan;
mod shape;

pub use shape::{Numbers, Shape};

/// A decoded, validated message.
#[derive(Debug, Clone, PartialEq)]
pub struct Message {
    pub topic: Topic,
    pub body: Body,
}

/// The payload, typed by the topic it arrived on.
#[derive(Debug, Clone, PartialEq)]
pub enum Body {
    State(StatePayload),
    Readings(ReadingsPayload),
    Events(EventsPayload),
    Signals(SignalsPayload),
    /// A collector's presence.
    CollectorState(CollectorStatePayload),
    /// A collector's heartbeat and view.
    CollectorView(CollectorViewPayload),
    /// An empty payload on a retained topic: MQTT's way of deleting the retained
    /// message (an operator removing a decommissioned host, say).
    Cleared,
}

/// Why a message was rejected.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum Rejection {
    #[error("bad topic: {0}")]
    BadTopic(#[from] TopicError),
    #[error("payload is {size} bytes, larger than the {max} allowed")]
    TooLarge { size: usize, max: usize },
    #[error("payload is not JSON: {0}")]
    NotJson(String),
    #[error("protocol version {found}, expected 1")]
    WrongVersion { found: String },
    #[error("missing field `{0}`")]
    MissingField(String),
    #[error("wrong type: {0}")]
    WrongType(String),
    #[error("invalid value for {field}: {detail}")]
    InvalidValue { field: String, detail: String },
    #[error("{field} is not a finite number")]
    NonFinite { field: String },
    #[error("{field} is {len} characters long, at most {max} allowed")]
    NameTooLong {
        field: String,
        len: usize,
        max: usize,
    },
    #[error("{field} {value:?} is not a valid name: {expected}")]
    InvalidName {
        field: String,
        value: String,
        expected: &'static str,
    },
    #[error("{field} has {count} labels, at most {max} allowed")]
    TooManyLabels {
        field: String,
        count: usize,
        max: usize,
    },
    #[error("payload names {field} {payload:?} but the topic names {topic:?}")]
    IdentityMismatch {
        field: &'static str,
        topic: String,
        payload: String,
    },
}

impl Rejection {
    /// Every value [`Rejection::reason`] can return, to pre-register metric series.
    pub const REASONS: [&'static str; 12] = [
        "bad_topic",
        "too_large",
        "not_json",
        "wrong_version",
        "missing_field",
        "wrong_type",
        "invalid_value",
        "non_finite",
        "name_too_long",
        "invalid_name",
        "too_many_labels",
        "identity_mismatch",
    ];

    /// A bounded label naming the kind of rejection.
    pub fn reason(&self) -> &'static str {
        match self {
            Rejection::BadTopic(_) => "bad_topic",
            Rejection::TooLarge { .. } => "too_large",
            Rejection::NotJson(_) => "not_json",
            Rejection::WrongVersion { .. } => "wrong_version",
            Rejection::MissingField(_) => "missing_field",
            Rejection::WrongType(_) => "wrong_type",
            Rejection::InvalidValue { .. } => "invalid_value",
            Rejection::NonFinite { .. } => "non_finite",
            Rejection::NameTooLong { .. } => "name_too_long",
            Rejection::InvalidName { .. } => "invalid_name",
            Rejection::TooManyLabels { .. } => "too_many_labels",
            Rejection::IdentityMismatch { .. } => "identity_mismatch",
        }
    }
}

/// Decodes and validates one MQTT message.
pub fn decode(topic: &str, payload: &[u8]) -> Result<Message, Rejection> {
    let topic = Topic::parse(topic)?;
    owned(topic, payload)
}

/// A message decoded by [`decode_in_place`].
#[derive(Debug, Clone, PartialEq)]
pub enum Decoded<'a> {
    /// A readings batch, its strings borrowed from the payload.
    Readings(Topic, ReadingsView<'a>),
    /// Any other message, as [`decode`] gives it.
    Message(Message),
}

/// [`decode`], with a readings batch (by far the most frequent message)
/// decoded in place: its strings borrow from `payload` instead of being
/// copied. It accepts exactly what [`decode`] does, and rejects the rest for
/// the same [`Rejection::reason`] (the `wire_decode` fuzz target holds them
/// to it; a serde message may name `ReadingsView` where the other names
/// `ReadingsPayload`).
pub fn decode_in_place<'a>(topic: &str, payload: &'a [u8]) -> Result<Decoded<'a>, Rejection> {
    in_place(topic, payload, None)
}

/// [`decode_in_place`], and for a readings batch written the plain way its
/// [`Shape`]: what the next batch on this topic can be read against.
pub fn decode_in_place_shaped<'a>(
    topic: &str,
    payload: &'a [u8],
) -> Result<(Decoded<'a>, Option<Shape>), Rejection> {
    let mut holes = Vec::new();
    let decoded = in_place(topic, payload, Some(&mut holes))?;
    let shape = match &decoded {
        // No holes: serde read it (or the scanner gave up), so it has no shape.
        Decoded::Readings(_, batch) if !holes.is_empty() => Some(Shape::new(
            topic,
            payload,
            &holes,
            batch.readings.len(),
            |i| {
                batch
                    .readings
                    .get(i)
                    .is_some_and(|r| quantity::is_counter(&r.q))
            },
        )),
        _ => None,
    };
    Ok((decoded, shape))
}

fn in_place<'a>(
    topic: &str,
    payload: &'a [u8],
    holes: Option<&mut Vec<scan::Hole>>,
) -> Result<Decoded<'a>, Rejection> {
    let topic = Topic::parse(topic)?;
    if !matches!(
        topic,
        Topic::Host {
            kind: TopicKind::Readings,
            ..
        }
    ) || payload.is_empty()
    {
        return owned(topic, payload).map(Decoded::Message);
    }
    check_size(payload)?;
    // The plain shape agents write is read by the scanner; anything it is not
    // sure of goes to serde, which accepts or rejects it as always.
    let scanned = match holes {
        Some(holes) => scan::readings_with_holes(payload, holes).or_else(|| {
            // What the scanner noted before it gave up is not a shape.
            holes.clear();
            None
        }),
        None => scan::readings(payload),
    };
    let batch: ReadingsView<'a> = match scanned {
        Some(batch) => batch,
        None => parse(payload)?,
    };
    check_version(batch.v)?;
    check_identity(&topic, batch.site.as_deref(), batch.host.as_deref())?;
    validate_readings(&batch)?;
    Ok(Decoded::Readings(topic, batch))
}

fn check_size(payload: &[u8]) -> Result<(), Rejection> {
    if payload.len() > MAX_PAYLOAD_BYTES {
        return Err(Rejection::TooLarge {
            size: payload.len(),
            max: MAX_PAYLOAD_BYTES,
        });
    }
    Ok(())
}

fn owned(topic: Topic, payload: &[u8]) -> Result<Message, Rejection> {
    check_size(payload)?;
    let retained = matches!(
        topic,
        Topic::Signals { .. }
            | Topic::Host {
                kind: TopicKind::State,
                ..
            }
            | Topic::Collector {
                kind: CollectorKind::State,
                ..
            }
    );
    if payload.is_empty() {
        return if retained {
            Ok(Message {
                topic,
                body: Body::Cleared,
            })
        } else {
            Err(Rejection::NotJson("empty payload".into()))
        };
    }
    let body = match &topic {
        Topic::Host { kind, .. } => match kind {
            TopicKind::State => Body::State(parse(payload)?),
            TopicKind::Readings => Body::Readings(parse(payload)?),
            TopicKind::Events => Body::Events(parse(payload)?),
        },
        Topic::Signals { .. } => Body::Signals(parse(payload)?),
        Topic::Collector { kind, .. } => match kind {
            CollectorKind::State => Body::CollectorState(parse(payload)?),
            CollectorKind::View => Body::CollectorView(parse(payload)?),
        },
    };
    validate(&topic, &body)?;
    Ok(Message { topic, body })
}

/// Encodes a payload as the compact JSON that goes on the wire.
pub fn encode<T: Serialize>(payload: &T) -> Result<Vec<u8>, serde_json::Error> {
    serde_json::to_vec(payload)
}

fn parse<'a, T: Deserialize<'a>>(bytes: &'a [u8]) -> Result<T, Rejection> {
    serde_json::from_slice(bytes).map_err(|e| classify(bytes, &e))
}

/// Just the version, to tell "another version's shape" from "a broken v1".
#[derive(Deserialize)]
struct VersionOnly {
    #[serde(default)]
    v: Option<serde_json::Value>,
}

fn classify(bytes: &[u8], error: &serde_json::Error) -> Rejection {
    use serde_json::error::Category;
    let text = error.to_string();
    match error.classify() {
        Category::Syntax | Category::Eof | Category::Io => {
            // serde_json refuses 1e400 as a syntax error; to the contract it is a
            // value that is not finite.
            if text.starts_with("number out of range") {
                Rejection::NonFinite {
                    field: "a number".into(),
                }
            } else {
                Rejection::NotJson(text)
            }
        }
        Category::Data => {
            // A payload of another version may fail on structure before its `v`
            // is looked at; its version is the better reason.
            if let Ok(VersionOnly { v: Some(v) }) = serde_json::from_slice(bytes)
                && v != crate::VERSION
            {
                return Rejection::WrongVersion {
                    found: v.to_string(),
                };
            }
            let detail = text
                .rsplit_once(" at line ")
                .map_or(text.as_str(), |(head, _)| head);
            if let Some(rest) = detail.strip_prefix("missing field `") {
                Rejection::MissingField(rest.trim_end_matches('`').to_owned())
            } else if detail.starts_with("unknown variant") || detail.starts_with("invalid value") {
                Rejection::InvalidValue {
                    field: "a field".into(),
                    detail: detail.to_owned(),
                }
            } else {
                Rejection::WrongType(detail.to_owned())
            }
        }
    }
}

fn validate(topic: &Topic, body: &Body) -> Result<(), Rejection> {
    let (v, site, host) = match body {
        Body::State(s) => (s.v, &s.site, &s.host),
        Body::Readings(r) => (r.v, &r.site, &r.host),
        Body::Events(e) => (e.v, &e.site, &e.host),
        Body::Signals(s) => (s.v, &None, &None),
        Body::CollectorState(c) => (c.v, &None, &None),
        Body::CollectorView(c) => (c.v, &None, &None),
        Body::Cleared => return Ok(()),
    };
    check_version(v)?;
    check_identity(topic, site.as_deref(), host.as_deref())?;
    match body {
        Body::State(s) => validate_state(s),
        Body::Readings(r) => validate_readings(&r.view()),
        Body::Events(e) => validate_events(e),
        Body::Signals(s) => validate_signals(topic, s),
        Body::CollectorState(c) => validate_collector_state(c),
        Body::CollectorView(c) => validate_collector_view(c),
        Body::Cleared => Ok(()),
    }
}

fn check_version(v: u32) -> Result<(), Rejection> {
    if v != crate::VERSION {
        return Err(Rejection::WrongVersion {
            found: v.to_string(),
        });
    }
    Ok(())
}

/// What a site name must look like, for rejections.
const SITE_NAME_RULE: &str = "1-64 characters of a-z, 0-9, '_', '.', '-', not starting with '_'";

fn validate_collector_state(c: &CollectorStatePayload) -> Result<(), Rejection> {
    if let Some(site) = &c.site {
        SiteName::new(site).map_err(|_| Rejection::InvalidName {
            field: "site".into(),
            value: site.chars().take(64).collect(),
            expected: SITE_NAME_RULE,
        })?;
    }
    if let Some(ms) = c.interval_ms
        && !(MIN_INTERVAL_MS..=MAX_INTERVAL_MS).contains(&ms)
    {
        return Err(Rejection::InvalidValue {
            field: "interval_ms".into(),
            detail: format!("must be {MIN_INTERVAL_MS} ms to {MAX_INTERVAL_MS} ms (one day)"),
        });
    }
    Ok(())
}

fn validate_collector_view(c: &CollectorViewPayload) -> Result<(), Rejection> {
    for (field, n) in [
        ("sites", c.sites.len()),
        ("brokers", c.brokers.len()),
        ("peers", c.peers.len()),
    ] {
        if n > MAX_VIEW_ENTRIES {
            return Err(Rejection::InvalidValue {
                field: field.into(),
                detail: format!("{n} entries, at most {MAX_VIEW_ENTRIES}"),
            });
        }
    }
    for site in c.sites.keys() {
        SiteName::new(site).map_err(|_| Rejection::InvalidName {
            field: "sites".into(),
            value: site.chars().take(64).collect(),
            expected: SITE_NAME_RULE,
        })?;
    }
    for name in c.brokers.keys().chain(c.peers.keys()) {
        if name.chars().count() > MAX_DEV_LEN {
            return Err(Rejection::NameTooLong {
                field: "brokers/peers".into(),
                len: name.chars().count(),
                max: MAX_DEV_LEN,
            });
        }
    }
    Ok(())
}

fn check_identity(topic: &Topic, site: Option<&str>, host: Option<&str>) -> Result<(), Rejection> {
    if let Some(site) = site
        && let Some(topic_site) = topic.site()
        && site != topic_site.as_str()
    {
        return Err(Rejection::IdentityMismatch {
            field: "site",
            topic: topic_site.to_string(),
            payload: site.to_owned(),
        });
    }
    if let (
        Some(host),
        Topic::Host {
            host: topic_host, ..
        },
    ) = (host, topic)
        && host != topic_host.as_str()
    {
        return Err(Rejection::IdentityMismatch {
            field: "host",
            topic: topic_host.to_string(),
            payload: host.to_owned(),
        });
    }
    Ok(())
}

fn validate_state(s: &StatePayload) -> Result<(), Rejection> {
    let in_range = |ms: u64| (MIN_INTERVAL_MS..=MAX_INTERVAL_MS).contains(&ms);
    let range = || format!("must be {MIN_INTERVAL_MS} ms to {MAX_INTERVAL_MS} ms (one day)");
    if let Some(ms) = s.interval_ms
        && !in_range(ms)
    {
        return Err(Rejection::InvalidValue {
            field: "interval_ms".into(),
            detail: range(),
        });
    }
    if s.sources.len() > MAX_SOURCES {
        return Err(Rejection::InvalidValue {
            field: "sources".into(),
            detail: format!("{} sources, at most {MAX_SOURCES}", s.sources.len()),
        });
    }
    for (src, interval) in &s.sources {
        check_source_name(|| format!("sources.{src}"), src)?;
        if !in_range(*interval) {
            return Err(Rejection::InvalidValue {
                field: format!("sources.{src}"),
                detail: range(),
            });
        }
    }
    check_labels(|| "labels".into(), s.labels.len(), pairs(&s.labels))
}

fn validate_readings(r: &ReadingsView<'_>) -> Result<(), Rejection> {
    check_boot(r.boot.as_deref())?;
    for (i, reading) in r.readings.iter().enumerate() {
        let field = |name: &str| format!("readings[{i}].{name}");
        check_source_name(|| field("src"), &reading.src)?;
        check_text(|| field("dev"), &reading.dev, MAX_DEV_LEN)?;
        check_text(|| field("name"), &reading.name, MAX_SENSOR_NAME_LEN)?;
        check_len(|| field("q"), &reading.q, MAX_QUANTITY_LEN)?;
        if !quantity::is_valid(&reading.q) {
            return Err(Rejection::InvalidName {
                field: field("q"),
                value: reading.q.to_string(),
                expected: "snake_case: a-z, 0-9 and '_', starting with a letter",
            });
        }
        if let Some(value) = reading.value {
            if !value.is_finite() {
                return Err(Rejection::NonFinite {
                    field: field("value"),
                });
            }
            if value < 0.0 && quantity::is_counter(&reading.q) {
                return Err(Rejection::InvalidValue {
                    field: field("value"),
                    detail: format!(
                        "{value} for the counter {}: a counter (q ending in _total) is never \
                         negative",
                        reading.q
                    ),
                });
            }
        }
        check_labels(
            || field("labels"),
            reading.labels.len(),
            reading.labels.iter().map(|(k, v)| (&**k, &**v)),
        )?;
    }
    Ok(())
}

fn validate_events(e: &EventsPayload) -> Result<(), Rejection> {
    check_boot(e.boot.as_deref())?;
    for (i, event) in e.events.iter().enumerate() {
        let field = |name: &str| format!("events[{i}].{name}");
        check_source_name(|| field("src"), &event.src)?;
        check_text(|| field("dev"), &event.dev, MAX_DEV_LEN)?;
        check_len(|| field("type"), &event.event_type, MAX_EVENT_TYPE_LEN)?;
        if !quantity::is_valid(&event.event_type) {
            return Err(Rejection::InvalidName {
                field: field("type"),
                value: event.event_type.clone(),
                expected: "snake_case: a-z, 0-9 and '_', starting with a letter",
            });
        }
        check_len(|| field("message"), &event.message, MAX_EVENT_MESSAGE_LEN)?;
        check_labels(|| field("labels"), event.labels.len(), pairs(&event.labels))?;
        if let Some(id) = &event.id {
            check_text(|| field("id"), id, MAX_EVENT_ID_LEN)?;
        }
    }
    Ok(())
}

fn check_boot(boot: Option<&str>) -> Result<(), Rejection> {
    match boot {
        Some(boot) => check_text(|| "boot".into(), boot, MAX_BOOT_LEN),
        None => Ok(()),
    }
}

fn validate_signals(topic: &Topic, s: &SignalsPayload) -> Result<(), Rejection> {
    for signal in &s.signals {
        check_identity(topic, Some(&signal.site), None)?;
    }
    Ok(())
}

fn check_len(field: impl Fn() -> String, value: &str, max: usize) -> Result<(), Rejection> {
    // Byte length first: cheap, and a string within the limit in bytes is within
    // it in characters too.
    if value.len() > max {
        let len = value.chars().count();
        if len > max {
            return Err(Rejection::NameTooLong {
                field: field(),
                len,
                max,
            });
        }
    }
    Ok(())
}

/// Free text that becomes a label value: non-empty, bounded, no control characters.
fn check_text(field: impl Fn() -> String, value: &str, max: usize) -> Result<(), Rejection> {
    check_len(&field, value, max)?;
    if value.is_empty() || has_control(value) {
        return Err(Rejection::InvalidName {
            field: field(),
            value: value.to_owned(),
            expected: "non-empty text without control characters",
        });
    }
    Ok(())
}

/// Whether `s` holds a control character (Unicode's Cc: U+0000-U+001F,
/// U+007F-U+009F). Names are checked by the hundred thousand a second and are
/// nearly always ASCII: a byte scan finds the candidates (the last 32 are
/// 0xC2 0x80-0x9F in UTF-8) and only then are characters decoded.
fn has_control(s: &str) -> bool {
    s.bytes().any(|b| b < 0x20 || b == 0x7f || b == 0xc2) && s.chars().any(char::is_control)
}

fn check_source_name(field: impl Fn() -> String, value: &str) -> Result<(), Rejection> {
    check_len(&field, value, MAX_SRC_LEN)?;
    if !quantity::is_valid(value) {
        return Err(Rejection::InvalidName {
            field: field(),
            value: value.to_owned(),
            expected: "a source name: a-z, 0-9 and '_', starting with a letter",
        });
    }
    Ok(())
}

fn pairs(labels: &Labels) -> impl Iterator<Item = (&str, &str)> {
    labels.iter().map(|(k, v)| (k.as_str(), v.as_str()))
}

/// `count` labels, given as key-value pairs in key order.
fn check_labels<'l>(
    field: impl Fn() -> String,
    count: usize,
    labels: impl Iterator<Item = (&'l str, &'l str)>,
) -> Result<(), Rejection> {
    if count > MAX_LABELS {
        return Err(Rejection::TooManyLabels {
            field: field(),
            count,
            max: MAX_LABELS,
        });
    }
    for (key, value) in labels {
        let key_field = || format!("{}.{key}", field());
        check_len(key_field, key, MAX_LABEL_KEY_LEN)?;
        if !is_label_name(key) || RESERVED_LABEL_KEYS.contains(&key) {
            return Err(Rejection::InvalidName {
                field: field(),
                value: key.to_owned(),
                expected: "a Prometheus label name ([a-zA-Z_][a-zA-Z0-9_]*, not starting with \
                           __) other than site, host, src, dev and sensor",
            });
        }
        check_len(key_field, value, MAX_LABEL_VALUE_LEN)?;
    }
    Ok(())
}

fn is_label_name(key: &str) -> bool {
    let mut chars = key.chars();
    matches!(chars.next(), Some('a'..='z' | 'A'..='Z' | '_'))
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
        && !key.starts_with("__")
}

#[cfg(test)]
mod scan_tests;
#[cfg(test)]
mod shape_tests;
#[cfg(test)]
mod tests;
