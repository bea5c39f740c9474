use std::borrow::Cow;
use std::collections::BTreeMap;

use serde::{Deserialize, Deserializer, Serialize};

use super::{Labels, is_empty_map};

/// A reading's judgement: the device's own or the agent's.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReadingState {
    Ok,
    Warning,
    Critical,
    /// The sensor could not be read; `value` is null.
    Unknown,
}

impl ReadingState {
    pub fn as_str(self) -> &'static str {
        match self {
            ReadingState::Ok => "ok",
            ReadingState::Warning => "warning",
            ReadingState::Critical => "critical",
            ReadingState::Unknown => "unknown",
        }
    }
}

/// `sitewatch/v1/<site>/<host>/readings`: a batch of readings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReadingsPayload {
    pub v: u32,
    /// Per boot, +1 for every readings message.
    pub seq: u64,
    pub ts: i64,
    /// Empty is a heartbeat.
    pub readings: Vec<Reading>,
    /// The `boot` of the process that took these readings, when the agent says
    /// (an extension of v1): a batch kept on disk across a restart arrives
    /// after the new boot's birth, and `(boot, seq)` still names it. Absent:
    /// the boot of the host's last state message.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub boot: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub site: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
}

/// One sensor value.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Reading {
    /// The source: `ipmi`, `smart`, `modbus`, `host`, `net`, ...
    pub src: String,
    /// The device within the source: a BMC, a disk, a Modbus unit, a probe target.
    pub dev: String,
    /// The sensor's own name on the device.
    pub name: String,
    /// The quantity, see [`crate::quantity`].
    pub q: String,
    /// Required but nullable: `null` when the sensor could not be read.
    #[serde(deserialize_with = "nullable")]
    pub value: Option<f64>,
    pub state: ReadingState,
    #[serde(default, skip_serializing_if = "is_empty_map")]
    pub labels: Labels,
    /// When this reading was taken, if not the batch's `ts`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ts: Option<i64>,
}

// A plain `Option` field would let a missing `value` pass as null; the contract
// says the field is required, so it must be present even when it is null.
fn nullable<'de, D: Deserializer<'de>>(d: D) -> Result<Option<f64>, D::Error> {
    Option::<f64>::deserialize(d)
}

/// A readings batch decoded in place: its strings borrow from the payload
/// (owned only where the JSON escapes a character), so that decoding a batch
/// of a hundred readings allocates its list and not four hundred strings.
/// The same fields and rules as [`ReadingsPayload`]; what the collector's
/// ingest decodes, where batches arrive by the hundred thousand a second.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct ReadingsView<'a> {
    pub v: u32,
    pub seq: u64,
    pub ts: i64,
    #[serde(borrow)]
    pub readings: Vec<ReadingView<'a>>,
    #[serde(default, borrow, deserialize_with = "optional_text")]
    pub boot: Option<Cow<'a, str>>,
    #[serde(default, borrow, deserialize_with = "optional_text")]
    pub site: Option<Cow<'a, str>>,
    #[serde(default, borrow, deserialize_with = "optional_text")]
    pub host: Option<Cow<'a, str>>,
}

/// One reading of a [`ReadingsView`].
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct ReadingView<'a> {
    #[serde(borrow)]
    pub src: Cow<'a, str>,
    #[serde(borrow)]
    pub dev: Cow<'a, str>,
    #[serde(borrow)]
    pub name: Cow<'a, str>,
    #[serde(borrow)]
    pub q: Cow<'a, str>,
    #[serde(deserialize_with = "nullable")]
    pub value: Option<f64>,
    pub state: ReadingState,
    #[serde(default, borrow, deserialize_with = "text_map")]
    pub labels: BTreeMap<Cow<'a, str>, Cow<'a, str>>,
    #[serde(default)]
    pub ts: Option<i64>,
}

// serde borrows a `Cow<str>` only where it is the field's own type; inside an
// `Option` or a map it would copy every string. Through this newtype it borrows
// there too.
#[derive(Deserialize, PartialEq, Eq, PartialOrd, Ord)]
struct Text<'a>(#[serde(borrow)] Cow<'a, str>);

fn optional_text<'de: 'a, 'a, D: Deserializer<'de>>(
    d: D,
) -> Result<Option<Cow<'a, str>>, D::Error> {
    Ok(Option::<Text<'a>>::deserialize(d)?.map(|t| t.0))
}

fn text_map<'de: 'a, 'a, D: Deserializer<'de>>(
    d: D,
) -> Result<BTreeMap<Cow<'a, str>, Cow<'a, str>>, D::Error> {
    // Labels are rare and few (at most `MAX_LABELS` are accepted): the second
    // map costs less than an allocation per string.
    Ok(BTreeMap::<Text<'a>, Text<'a>>::deserialize(d)?
        .into_iter()
        .map(|(k, v)| (k.0, v.0))
        .collect())
}

impl ReadingsPayload {
    /// This batch as a view borrowing from it: what the collector's state
    /// applies, whichever way the batch was decoded.
    pub fn view(&self) -> ReadingsView<'_> {
        fn borrow(s: &Option<String>) -> Option<Cow<'_, str>> {
            s.as_deref().map(Cow::Borrowed)
        }
        ReadingsView {
            v: self.v,
            seq: self.seq,
            ts: self.ts,
            readings: self.readings.iter().map(Reading::view).collect(),
            boot: borrow(&self.boot),
            site: borrow(&self.site),
            host: borrow(&self.host),
        }
    }
}

impl ReadingsView<'_> {
    /// The batch with owned strings.
    pub fn to_owned_payload(&self) -> ReadingsPayload {
        let own = |s: &Option<Cow<'_, str>>| s.as_deref().map(str::to_owned);
        ReadingsPayload {
            v: self.v,
            seq: self.seq,
            ts: self.ts,
            readings: self
                .readings
                .iter()
                .map(ReadingView::to_owned_reading)
                .collect(),
            boot: own(&self.boot),
            site: own(&self.site),
            host: own(&self.host),
        }
    }
}

impl ReadingView<'_> {
    /// The reading with owned strings.
    pub fn to_owned_reading(&self) -> Reading {
        Reading {
            src: self.src.clone().into_owned(),
            dev: self.dev.clone().into_owned(),
            name: self.name.clone().into_owned(),
            q: self.q.clone().into_owned(),
            value: self.value,
            state: self.state,
            labels: self
                .labels
                .iter()
                .map(|(k, v)| (k.clone().into_owned(), v.clone().into_owned()))
                .collect(),
            ts: self.ts,
        }
    }
}

impl Reading {
    /// A reading; a missing or non-finite value (a sensor's NaN) becomes an
    /// unreadable one (`null`, state `unknown`), so that encoding never emits a
    /// number the contract forbids.
    pub fn new(
        src: impl Into<String>,
        dev: impl Into<String>,
        name: impl Into<String>,
        q: impl Into<String>,
        value: Option<f64>,
        state: ReadingState,
    ) -> Self {
        let (value, state) = match value {
            Some(v) if v.is_finite() => (Some(v), state),
            _ => (None, ReadingState::Unknown),
        };
        Reading {
            src: src.into(),
            dev: dev.into(),
            name: name.into(),
            q: q.into(),
            value,
            state,
            labels: Labels::new(),
            ts: None,
        }
    }

    /// Adds a label.
    pub fn with_label(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.labels.insert(key.into(), value.into());
        self
    }

    /// Sets the time the value was read, when it differs from the batch's.
    pub fn at(mut self, ts_ms: i64) -> Self {
        self.ts = Some(ts_ms);
        self
    }

    /// This reading as a view borrowing from it.
    pub fn view(&self) -> ReadingView<'_> {
        ReadingView {
            src: Cow::Borrowed(&self.src),
            dev: Cow::Borrowed(&self.dev),
            name: Cow::Borrowed(&self.name),
            q: Cow::Borrowed(&self.q),
            value: self.value,
            state: self.state,
            labels: self
                .labels
                .iter()
                .map(|(k, v)| (Cow::Borrowed(k.as_str()), Cow::Borrowed(v.as_str())))
                .collect(),
            ts: self.ts,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn non_finite_value_becomes_unknown_null() {
        let r = Reading::new(
            "host",
            "cpu",
            "cpu",
            "cpu_usage_ratio",
            Some(f64::NAN),
            ReadingState::Ok,
        );
        assert_eq!((r.value, r.state), (None, ReadingState::Unknown));
        let r = Reading::new(
            "host",
            "cpu",
            "cpu",
            "cpu_usage_ratio",
            Some(0.5),
            ReadingState::Ok,
        );
        assert_eq!((r.value, r.state), (Some(0.5), ReadingState::Ok));
    }
}
