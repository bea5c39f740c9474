//! The scanner against serde: on payloads built from tokens serde and the
//! scanner could disagree on, whatever the scanner returns must be what serde
//! returns, to the sign of a zero; and what agents write must be read by the
//! scanner, not fall through to serde.

use super::scan;
use crate::payload::{Reading, ReadingState, ReadingsPayload, ReadingsView};

pub(super) struct Rng(pub u64);

impl Rng {
    pub(super) fn below(&mut self, n: usize) -> usize {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 % n as u64) as usize
    }

    pub(super) fn pick<'a>(&mut self, from: &[&'a str]) -> &'a str {
        from[self.below(from.len())]
    }

    /// Mostly from the first `valid` of `from` (what a valid batch holds),
    /// sometimes from any: so that whole batches are valid often enough.
    fn mostly<'a>(&mut self, from: &[&'a str], valid: usize) -> &'a str {
        if self.below(8) == 0 {
            self.pick(from)
        } else {
            self.pick(&from[..valid])
        }
    }
}

/// Spaces between tokens, as a hand-written or pretty-printed payload has.
pub(super) const SPACES: [&str; 6] = ["", "", "", " ", "\n  ", "\t\r\n"];

/// Strings: plain, multi-byte, escaped (serde unescapes, the scanner gives
/// up), with a raw control character (serde refuses).
/// Long ones too, with what ends or spoils them far from their start.
const TEXTS: [&str; 15] = [
    r#""ipmi""#,
    r#""Inlet Temp""#,
    r#""""#,
    r#""dé日本""#,
    r#""temperature_celsius""#,
    r#""PSU2 Input Voltage (AC) ~ 0x7f: é""#,
    r#""0123456""#,
    r#""01234567""#,
    r#""a\"b""#,
    r#""a\\b""#,
    r#""\u00e9""#,
    "\"a\u{1}b\"",
    r#""0123456789abcdef\"x""#,
    "\"0123456789abcd\u{1f}x\"",
    "\"01234567\u{7f}\u{9f}\\n\"",
];
const VALID_TEXTS: usize = 8;

/// Numbers where an `f64` reader could go wrong: signs of zero, integers past
/// `u64` and `i64`, exponents out of range, subnormals, shortest round-trip
/// forms, and what JSON does not allow (from `VALID_VALUES` on, roughly).
const VALID_VALUES: usize = 21;
pub(super) const VALUES: [&str; 30] = [
    "0",
    "-0",
    "-0.0",
    "0.0",
    "23.5",
    "-40.25",
    "1e3",
    "1E-3",
    "2.5e+2",
    "1e400",
    "-1e400",
    "1e-400",
    "4.9e-324",
    "2.2250738585072011e-308",
    "0.30000000000000004",
    "9007199254740993",
    "18446744073709551615",
    "18446744073709551616",
    "-9223372036854775809",
    "123456789012345678901234567890",
    "null",
    "01",
    "1.",
    ".5",
    "+1",
    "-",
    "1e",
    "true",
    r#""1""#,
    "NaN",
];

/// Integers for `v`, `seq` and `ts`.
pub(super) const INTEGERS: [&str; 14] = [
    "1",
    "0",
    "1764080000000",
    "2",
    "-1",
    "-0",
    "1.0",
    "1e3",
    "4294967296",
    "18446744073709551615",
    "18446744073709551616",
    "-9223372036854775808",
    "null",
    r#""1""#,
];

const STATES: [&str; 6] = [
    r#""ok""#,
    r#""warning""#,
    r#""critical""#,
    r#""unknown""#,
    r#""OK""#,
    r#""o\u006b""#,
];

const LABELS: [&str; 9] = [
    "{}",
    r#"{"k":"v"}"#,
    r#"{"b":"2","a":"1"}"#,
    r#"{ "k" : "v" , "j":"w" }"#,
    r#"{"k":"v","k":"w"}"#,
    r#"{"k":1}"#,
    "null",
    r#"{"k":"v",}"#,
    r#"{"d\u00e9":"v"}"#,
];

fn object(rng: &mut Rng, mut fields: Vec<(String, String)>) -> String {
    // Any order, now and then a field twice or one serde would ignore.
    for i in (1..fields.len()).rev() {
        fields.swap(i, rng.below(i + 1));
    }
    match rng.below(40) {
        0 if !fields.is_empty() => {
            let i = rng.below(fields.len());
            fields.push(fields[i].clone());
        }
        1 => fields.push(("extra".into(), "1".into())),
        2 if !fields.is_empty() => {
            fields.remove(rng.below(fields.len()));
        }
        _ => {}
    }
    let mut out = String::from("{");
    for (i, (k, v)) in fields.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        let sp = |rng: &mut Rng| rng.pick(&SPACES);
        out.push_str(&format!(
            "{}\"{k}\"{}:{}{v}{}",
            sp(rng),
            sp(rng),
            sp(rng),
            sp(rng)
        ));
    }
    out.push('}');
    out
}

fn reading(rng: &mut Rng) -> String {
    let mut fields: Vec<(String, String)> = ["src", "dev", "name", "q"]
        .iter()
        .map(|k| (k.to_string(), rng.mostly(&TEXTS, VALID_TEXTS).to_string()))
        .collect();
    fields.push(("value".into(), rng.mostly(&VALUES, VALID_VALUES).into()));
    fields.push(("state".into(), rng.mostly(&STATES, 4).into()));
    if rng.below(3) == 0 {
        fields.push(("labels".into(), rng.mostly(&LABELS, 4).into()));
    }
    if rng.below(4) == 0 {
        fields.push(("ts".into(), rng.mostly(&INTEGERS, 3).into()));
    }
    object(rng, fields)
}

fn batch(rng: &mut Rng) -> Vec<u8> {
    let n = rng.below(4);
    let readings: Vec<String> = (0..n).map(|_| reading(rng)).collect();
    let mut fields = vec![
        ("v".to_string(), rng.pick(&INTEGERS[..3]).to_string()),
        ("seq".into(), rng.mostly(&INTEGERS, 3).into()),
        ("ts".into(), rng.mostly(&INTEGERS, 3).into()),
        ("readings".into(), format!("[{}]", readings.join(","))),
    ];
    for k in ["boot", "site", "host"] {
        if rng.below(4) == 0 {
            let v = if rng.below(3) == 0 {
                "null"
            } else {
                rng.mostly(&TEXTS, VALID_TEXTS)
            };
            fields.push((k.into(), v.into()));
        }
    }
    let mut out = object(rng, fields).into_bytes();
    // Cut anywhere, a multi-byte character too.
    match rng.below(20) {
        0 => out.truncate(rng.below(out.len() + 1)),
        1 => out.extend_from_slice(b" \n"),
        2 => out.push(b'x'),
        3 => out.insert(0, b' '),
        _ => {}
    }
    out
}

#[test]
fn what_the_scanner_reads_is_what_serde_reads() {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let (mut scanned, mut serde_only, mut readings_scanned) = (0, 0, 0);
    for _ in 0..100_000 {
        let payload = batch(&mut rng);
        let serde: Result<ReadingsView<'_>, _> = serde_json::from_slice(&payload);
        let text = String::from_utf8_lossy(&payload);
        match scan::readings(&payload) {
            Some(fast) => {
                let Ok(slow) = serde else {
                    panic!("the scanner read what serde refuses: {text}");
                };
                // Debug, not `==`: it tells -0.0 from 0.0.
                assert_eq!(format!("{fast:?}"), format!("{slow:?}"), "{text}");
                scanned += 1;
                readings_scanned += fast.readings.len();
            }
            None if serde.is_ok() => serde_only += 1,
            None => {}
        }
    }
    // Both ways are exercised: batches the scanner reads (with readings in
    // them), and valid batches it leaves to serde.
    assert!(scanned > 5_000, "{scanned}");
    assert!(readings_scanned > 5_000, "{readings_scanned}");
    assert!(serde_only > 5_000, "{serde_only}");
}

#[test]
fn the_scanner_reads_what_agents_write() {
    let mut rng = Rng(0xd1b5_4a32_d192_ed03);
    let states = [
        ReadingState::Ok,
        ReadingState::Warning,
        ReadingState::Critical,
        ReadingState::Unknown,
    ];
    for seq in 0..2_000u64 {
        let readings = (0..rng.below(120))
            .map(|i| {
                let bits = (rng.below(usize::MAX) as u64) ^ ((rng.below(usize::MAX) as u64) << 32);
                let value = f64::from_bits(bits);
                Reading {
                    src: "ipmi".into(),
                    dev: format!("bmc{}", i % 3),
                    name: format!("Fan {i} é"),
                    q: "fan_rpm".into(),
                    value: (value.is_finite() && rng.below(10) != 0).then_some(value),
                    state: states[rng.below(4)],
                    labels: match rng.below(3) {
                        0 => [("slot".to_string(), i.to_string())].into(),
                        _ => Default::default(),
                    },
                    ts: (rng.below(2) == 0).then_some(1_764_080_000_000 + i as i64),
                }
            })
            .collect();
        let payload = ReadingsPayload {
            v: 1,
            seq,
            ts: 1_764_080_000_000,
            readings,
            boot: Some("b-1".into()),
            site: None,
            host: (seq % 2 == 0).then(|| "web-01".into()),
        };
        let bytes = serde_json::to_vec(&payload).unwrap();
        let Some(fast) = scan::readings(&bytes) else {
            panic!(
                "the scanner left an agent's batch to serde: {}",
                String::from_utf8_lossy(&bytes)
            );
        };
        assert_eq!(
            format!("{:?}", fast.to_owned_payload()),
            format!("{payload:?}")
        );
    }
}
