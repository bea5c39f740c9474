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
    // One check for the whole payload: every string below is cut at ASCII
    // quotes, so each is valid UTF-8 too.
    let text = std::str::from_utf8(payload).ok()?;
    let mut s = Scanner { text, at: 0 };
    let batch = s.batch()?;
    s.space();
    (s.at == text.len()).then_some(batch)
}

struct Scanner<'a> {
    text: &'a str,
    at: usize,
}

/// Which fields of an object were seen, to refuse a repeated one (serde
/// refuses it) and to know the required ones are there.
#[derive(Default)]
struct Seen(u16);

impl Seen {
    fn first(&mut self, bit: u16) -> Option<()> {
        if self.0 & bit != 0 {
            return None;
        }
        self.0 |= bit;
        Some(())
    }

    fn all(&self, bits: u16) -> bool {
        self.0 & bits == bits
    }
}

impl<'a> Scanner<'a> {
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

    fn null(&mut self) -> bool {
        self.space();
        let rest = self.text.as_bytes().get(self.at..).unwrap_or(&[]);
        if rest.starts_with(b"null") {
            self.at += 4;
            true
        } else {
            false
        }
    }

    /// A number token, checked against JSON's grammar
    /// (`-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?`); whether it is a
    /// plain integer.
    fn number(&mut self) -> Option<(&'a str, bool)> {
        self.space();
        let start = self.at;
        let bytes = self.text.as_bytes();
        let digits = |at: &mut usize| {
            let from = *at;
            while bytes.get(*at).is_some_and(u8::is_ascii_digit) {
                *at += 1;
            }
            *at > from
        };
        let mut at = self.at;
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
        self.at = at;
        Some((self.text.get(start..at)?, integer))
    }

    fn unsigned(&mut self) -> Option<u64> {
        match self.number()? {
            (n, true) if !n.starts_with('-') => n.parse().ok(),
            _ => None,
        }
    }

    fn signed(&mut self) -> Option<i64> {
        match self.number()? {
            // serde_json reads `-0` as the float -0.0, which is not an i64.
            (n, true) if n != "-0" => n.parse().ok(),
            _ => None,
        }
    }

    /// A finite number as serde_json (with `float_roundtrip`, correctly
    /// rounded like `str::parse`) reads it into an `f64`.
    fn float(&mut self) -> Option<f64> {
        let (n, integer) = self.number()?;
        // `-0` is a float to serde_json but an integer to this grammar: left
        // to serde. Out of range, serde refuses the number for its own reason.
        if integer && n.starts_with("-0") {
            return None;
        }
        let f: f64 = n.parse().ok()?;
        f.is_finite().then_some(f)
    }

    fn batch(&mut self) -> Option<ReadingsView<'a>> {
        const V: u16 = 1;
        const SEQ: u16 = 2;
        const TS: u16 = 4;
        const READINGS: u16 = 8;
        const BOOT: u16 = 16;
        const SITE: u16 = 32;
        const HOST: u16 = 64;
        let mut seen = Seen::default();
        let (mut v, mut seq, mut ts) = (0, 0, 0);
        let mut readings = Vec::new();
        let (mut boot, mut site, mut host) = (None, None, None);
        let mut more = self.open(b'{', b'}')?;
        while more {
            match self.key()? {
                "v" => {
                    seen.first(V)?;
                    v = u32::try_from(self.unsigned()?).ok()?;
                }
                "seq" => {
                    seen.first(SEQ)?;
                    seq = self.unsigned()?;
                }
                "ts" => {
                    seen.first(TS)?;
                    ts = self.signed()?;
                }
                "readings" => {
                    seen.first(READINGS)?;
                    readings = self.readings()?;
                }
                "boot" => {
                    seen.first(BOOT)?;
                    boot = self.optional_text()?;
                }
                "site" => {
                    seen.first(SITE)?;
                    site = self.optional_text()?;
                }
                "host" => {
                    seen.first(HOST)?;
                    host = self.optional_text()?;
                }
                _ => return None,
            }
            more = self.more(b'}')?;
        }
        seen.all(V | SEQ | TS | READINGS).then_some(ReadingsView {
            v,
            seq,
            ts,
            readings,
            boot,
            site,
            host,
        })
    }

    fn optional_text(&mut self) -> Option<Option<Cow<'a, str>>> {
        if self.null() {
            return Some(None);
        }
        Some(Some(Cow::Borrowed(self.string()?)))
    }

    fn readings(&mut self) -> Option<Vec<ReadingView<'a>>> {
        // Sized once from what the rest of the payload can hold, instead of
        // growing (and copying 160-byte views) by doubling.
        let room = (self.text.len() - self.at) / MIN_READING_BYTES + 1;
        let mut readings = Vec::with_capacity(room);
        let mut more = self.open(b'[', b']')?;
        while more {
            readings.push(self.reading()?);
            more = self.more(b']')?;
        }
        Some(readings)
    }

    fn reading(&mut self) -> Option<ReadingView<'a>> {
        const SRC: u16 = 1;
        const DEV: u16 = 2;
        const NAME: u16 = 4;
        const Q: u16 = 8;
        const VALUE: u16 = 16;
        const STATE: u16 = 32;
        const LABELS: u16 = 64;
        const TS: u16 = 128;
        let mut seen = Seen::default();
        let (mut src, mut dev, mut name, mut q) = ("", "", "", "");
        let mut value = None;
        let mut state = ReadingState::Unknown;
        let mut labels = BTreeMap::new();
        let mut ts = None;
        let mut more = self.open(b'{', b'}')?;
        while more {
            match self.key()? {
                "src" => {
                    seen.first(SRC)?;
                    src = self.string()?;
                }
                "dev" => {
                    seen.first(DEV)?;
                    dev = self.string()?;
                }
                "name" => {
                    seen.first(NAME)?;
                    name = self.string()?;
                }
                "q" => {
                    seen.first(Q)?;
                    q = self.string()?;
                }
                "value" => {
                    seen.first(VALUE)?;
                    value = if self.null() {
                        None
                    } else {
                        Some(self.float()?)
                    };
                }
                "state" => {
                    seen.first(STATE)?;
                    state = match self.string()? {
                        "ok" => ReadingState::Ok,
                        "warning" => ReadingState::Warning,
                        "critical" => ReadingState::Critical,
                        "unknown" => ReadingState::Unknown,
                        _ => return None,
                    };
                }
                "labels" => {
                    seen.first(LABELS)?;
                    labels = self.labels()?;
                }
                "ts" => {
                    seen.first(TS)?;
                    ts = if self.null() {
                        None
                    } else {
                        Some(self.signed()?)
                    };
                }
                _ => return None,
            }
            more = self.more(b'}')?;
        }
        if !seen.all(SRC | DEV | NAME | Q | VALUE | STATE) {
            return None;
        }
        Some(ReadingView {
            src: Cow::Borrowed(src),
            dev: Cow::Borrowed(dev),
            name: Cow::Borrowed(name),
            q: Cow::Borrowed(q),
            value,
            state,
            labels,
            ts,
        })
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
