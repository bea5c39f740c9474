//! A readings batch read straight from its bytes, without serde, when it is
//! written the plain way agents write it.
//!
//! Decoding readings is most of what the collector's ingest costs, and of that
//! most goes to serde's generic machinery: a visitor per field, a UTF-8 check
//! per string, a map collected twice for labels, a list grown by doubling. This
//! scanner knows the one shape and reads it in a single pass.
//!
//! It never decides anything serde would decide differently: it gives up
//! (returns `None`) on whatever it is not certain of (an escaped or control
//! character in a string, an unknown or repeated field, a number it would
//! convert otherwise than serde_json does, a missing field, anything that is
//! not the expected token) and the caller then parses the payload with serde
//! as before, which accepts or rejects it for its usual reason. What the
//! scanner returns is exactly what serde would have built; the validation after
//! it is the same either way. The `wire_decode` fuzz target and the tests in
//! `tests.rs` hold the two to that.

use std::borrow::Cow;
use std::collections::BTreeMap;

use crate::payload::{ReadingState, ReadingView, ReadingsView};

/// The fewest bytes one reading takes:
/// `{"src":"","dev":"","name":"","q":"","value":0,"state":"ok"},`.
const MIN_READING_BYTES: usize = 59;

/// `payload` as a readings batch, or `None` when serde must decide.
pub(super) fn readings(payload: &[u8]) -> Option<ReadingsView<'_>> {
    scan(payload, None)
}

/// [`readings`], noting where each number the shape cuts out lies (see
/// `shape.rs`), in the order they come.
pub(super) fn readings_with_holes<'a>(
    payload: &'a [u8],
    holes: &mut Vec<Hole>,
) -> Option<ReadingsView<'a>> {
    scan(payload, Some(holes))
}

fn scan<'a>(payload: &'a [u8], holes: Option<&mut Vec<Hole>>) -> Option<ReadingsView<'a>> {
    // One check for the whole payload: every string below is cut at ASCII
    // quotes, so each is valid UTF-8 too.
    let text = std::str::from_utf8(payload).ok()?;
    let mut s = Scanner { text, at: 0, holes };
    let batch = s.batch()?;
    s.space();
    (s.at == text.len()).then_some(batch)
}

/// A number of a batch that changes from one batch to the next: where its
/// token lies in the payload, and what it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Hole {
    pub start: usize,
    pub end: usize,
    pub kind: HoleKind,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum HoleKind {
    /// The batch's `seq`.
    Seq,
    /// The batch's `ts`.
    Ts,
    /// Reading `i`'s `value`.
    Value(usize),
    /// Reading `i`'s `ts`.
    ReadingTs(usize),
}

struct Scanner<'a, 'h> {
    text: &'a str,
    at: usize,
    /// Where the holes go, when they are wanted.
    holes: Option<&'h mut Vec<Hole>>,
}

/// The end of the JSON number token at `at` in `bytes`, checked against JSON's
/// grammar (`-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?`), and whether it
/// is a plain integer.
pub(super) fn number_end(bytes: &[u8], at: usize) -> Option<(usize, bool)> {
    let digits = |at: &mut usize| {
        let from = *at;
        while bytes.get(*at).is_some_and(u8::is_ascii_digit) {
            *at += 1;
        }
        *at > from
    };
    let mut at = at;
    if bytes.get(at) == Some(&b'-') {
        at += 1;
    }
    let int_start = at;
    if !digits(&mut at) {
        return None;
    }
    // A leading zero is not JSON (serde refuses it).
    if bytes.get(int_start) == Some(&b'0') && at - int_start > 1 {
        return None;
    }
    let mut integer = true;
    if bytes.get(at) == Some(&b'.') {
        at += 1;
        integer = false;
        if !digits(&mut at) {
            return None;
        }
    }
    if let Some(b'e' | b'E') = bytes.get(at) {
        at += 1;
        integer = false;
        if let Some(b'+' | b'-') = bytes.get(at) {
            at += 1;
        }
        if !digits(&mut at) {
            return None;
        }
    }
    Some((at, integer))
}

/// A number token as serde_json reads it into a `u64`, if it does.
pub(super) fn unsigned(token: &str, integer: bool) -> Option<u64> {
    (integer && !token.starts_with('-'))
        .then(|| token.parse().ok())
        .flatten()
}

/// A number token as serde_json reads it into an `i64`, if it does.
pub(super) fn signed(token: &str, integer: bool) -> Option<i64> {
    // serde_json reads `-0` as the float -0.0, which is not an i64.
    (integer && token != "-0")
        .then(|| token.parse().ok())
        .flatten()
}

/// A number token as serde_json (with `float_roundtrip`, correctly rounded
/// like `str::parse`) reads it into a finite `f64`.
pub(super) fn float(token: &str, integer: bool) -> Option<f64> {
    // `-0` is a float to serde_json but an integer to this grammar: left to
    // serde. Out of range, serde refuses the number for its own reason.
    if integer && token.starts_with("-0") {
        return None;
    }
    let f: f64 = token.parse().ok()?;
    f.is_finite().then_some(f)
}

/// Keeps a field's value, refusing a second one (serde refuses a repeated
/// field): each field is an `Option`, `None` until seen, so what was seen and
/// what is missing need no other record.
fn once<T>(field: &mut Option<T>, value: Option<T>) -> Option<()> {
    if field.is_some() {
        return None;
    }
    *field = Some(value?);
    Some(())
}

impl<'a> Scanner<'a, '_> {
    fn peek(&self) -> Option<u8> {
        self.text.as_bytes().get(self.at).copied()
    }

    /// JSON's insignificant whitespace.
    fn space(&mut self) {
        while let Some(b' ' | b'\t' | b'\n' | b'\r') = self.peek() {
            self.at += 1;
        }
    }

    fn byte(&mut self, want: u8) -> Option<()> {
        self.space();
        (self.peek()? == want).then(|| self.at += 1)
    }

    /// After an object's or array's item: whether another follows.
    fn more(&mut self, close: u8) -> Option<bool> {
        self.space();
        match self.peek()? {
            b',' => {
                self.at += 1;
                Some(true)
            }
            b if b == close => {
                self.at += 1;
                Some(false)
            }
            _ => None,
        }
    }

    /// Opens an object or array: whether it has any item.
    fn open(&mut self, open: u8, close: u8) -> Option<bool> {
        self.byte(open)?;
        self.space();
        if self.peek()? == close {
            self.at += 1;
            return Some(false);
        }
        Some(true)
    }

    /// A string with nothing escaped, borrowed.
    fn string(&mut self) -> Option<&'a str> {
        self.byte(b'"')?;
        let start = self.at;
        let rest = self.text.as_bytes().get(start..)?;
        let len = rest
            .iter()
            .position(|b| matches!(b, b'"' | b'\\' | 0..=0x1f))?;
        // An escape needs unescaping (serde's job); a control character is
        // refused by serde for its own reason.
        if rest.get(len) != Some(&b'"') {
            return None;
        }
        self.at = start + len + 1;
        self.text.get(start..start + len)
    }

    /// A field's name and the colon after it.
    fn key(&mut self) -> Option<&'a str> {
        let key = self.string()?;
        self.byte(b':')?;
        Some(key)
    }

    /// `null` as `None`, else what `read` reads.
    fn nullable<T>(&mut self, read: impl FnOnce(&mut Self) -> Option<T>) -> Option<Option<T>> {
        self.space();
        if self.text.as_bytes().get(self.at..)?.starts_with(b"null") {
            self.at += 4;
            return Some(None);
        }
        read(self).map(Some)
    }

    /// A number token and whether it is a plain integer; noted as a hole of
    /// `kind` when holes are wanted.
    fn number(&mut self, kind: HoleKind) -> Option<(&'a str, bool)> {
        self.space();
        let start = self.at;
        let (end, integer) = number_end(self.text.as_bytes(), start)?;
        self.at = end;
        if let Some(holes) = self.holes.as_deref_mut() {
            holes.push(Hole { start, end, kind });
        }
        Some((self.text.get(start..end)?, integer))
    }

    fn unsigned(&mut self, kind: HoleKind) -> Option<u64> {
        let (token, integer) = self.number(kind)?;
        unsigned(token, integer)
    }

    fn signed(&mut self, kind: HoleKind) -> Option<i64> {
        let (token, integer) = self.number(kind)?;
        signed(token, integer)
    }

    fn float(&mut self, kind: HoleKind) -> Option<f64> {
        let (token, integer) = self.number(kind)?;
        float(token, integer)
    }

    fn batch(&mut self) -> Option<ReadingsView<'a>> {
        let (mut v, mut seq, mut ts, mut readings) = (None, None, None, None);
        let (mut boot, mut site, mut host) = (None, None, None);
        let mut more = self.open(b'{', b'}')?;
        while more {
            match self.key()? {
                // The version is no hole: a batch of another is no batch of
                // this shape.
                "v" => once(&mut v, self.version())?,
                "seq" => once(&mut seq, self.unsigned(HoleKind::Seq))?,
                "ts" => once(&mut ts, self.signed(HoleKind::Ts))?,
                "readings" => once(&mut readings, self.readings())?,
                "boot" => once(&mut boot, self.optional_text())?,
                "site" => once(&mut site, self.optional_text())?,
                "host" => once(&mut host, self.optional_text())?,
                _ => return None,
            }
            more = self.more(b'}')?;
        }
        Some(ReadingsView {
            v: v?,
            seq: seq?,
            ts: ts?,
            readings: readings?,
            boot: boot.flatten(),
            site: site.flatten(),
            host: host.flatten(),
        })
    }

    fn version(&mut self) -> Option<u32> {
        self.space();
        let (end, integer) = number_end(self.text.as_bytes(), self.at)?;
        let token = self.text.get(self.at..end)?;
        self.at = end;
        unsigned(token, integer).and_then(|v| u32::try_from(v).ok())
    }

    fn optional_text(&mut self) -> Option<Option<Cow<'a, str>>> {
        self.nullable(|s| s.string().map(Cow::Borrowed))
    }

    fn readings(&mut self) -> Option<Vec<ReadingView<'a>>> {
        // Sized once from what the rest of the payload can hold, instead of
        // growing (and copying 160-byte views) by doubling.
        let room = (self.text.len() - self.at) / MIN_READING_BYTES + 1;
        let mut readings = Vec::with_capacity(room);
        let mut more = self.open(b'[', b']')?;
        while more {
            let i = readings.len();
            readings.push(self.reading(i)?);
            more = self.more(b']')?;
        }
        Some(readings)
    }

    /// Reading `i` of its batch.
    fn reading(&mut self, i: usize) -> Option<ReadingView<'a>> {
        let (mut src, mut dev, mut name, mut q) = (None, None, None, None);
        let (mut value, mut state, mut labels, mut ts) = (None, None, None, None);
        let mut more = self.open(b'{', b'}')?;
        while more {
            match self.key()? {
                "src" => once(&mut src, self.string())?,
                "dev" => once(&mut dev, self.string())?,
                "name" => once(&mut name, self.string())?,
                "q" => once(&mut q, self.string())?,
                "value" => once(&mut value, self.nullable(|s| s.float(HoleKind::Value(i))))?,
                "state" => once(&mut state, self.state())?,
                "labels" => once(&mut labels, self.labels())?,
                "ts" => once(&mut ts, self.nullable(|s| s.signed(HoleKind::ReadingTs(i))))?,
                _ => return None,
            }
            more = self.more(b'}')?;
        }
        Some(ReadingView {
            src: Cow::Borrowed(src?),
            dev: Cow::Borrowed(dev?),
            name: Cow::Borrowed(name?),
            q: Cow::Borrowed(q?),
            value: value?,
            state: state?,
            labels: labels.unwrap_or_default(),
            ts: ts.flatten(),
        })
    }

    fn state(&mut self) -> Option<ReadingState> {
        match self.string()? {
            "ok" => Some(ReadingState::Ok),
            "warning" => Some(ReadingState::Warning),
            "critical" => Some(ReadingState::Critical),
            "unknown" => Some(ReadingState::Unknown),
            _ => None,
        }
    }

    fn labels(&mut self) -> Option<BTreeMap<Cow<'a, str>, Cow<'a, str>>> {
        let mut labels = BTreeMap::new();
        let mut more = self.open(b'{', b'}')?;
        while more {
            let k = self.key()?;
            let v = self.string()?;
            // A repeated key: the last one wins, as serde's map has it.
            labels.insert(Cow::Borrowed(k), Cow::Borrowed(v));
            more = self.more(b'}')?;
        }
        Some(labels)
    }
}
