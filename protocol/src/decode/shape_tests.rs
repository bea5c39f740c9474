//! A batch read against a shape against the same batch decoded in full:
//! whatever [`Shape::read`] accepts, `decode_in_place` accepts with the
//! shape's strings and the numbers read, to the sign of a zero; and a host's
//! next batch with only its numbers changed is always read by the shape.

use super::scan_tests::{INTEGERS, Rng, SPACES, VALUES};
use super::{Decoded, Numbers, Shape, decode_in_place, decode_in_place_shaped};
use crate::payload::ReadingsView;

const TOPIC: &str = "sitewatch/v1/bj1/web-01/readings";

/// A batch with its numbers left out: literal text, and where each number
/// goes (`true`: a float, `false`: an integer).
#[derive(Clone)]
enum Piece {
    Text(String),
    Number { float: bool, counter: bool },
}

/// Numbers the scanner reads (a counter's too: none negative).
const PLAIN_VALUES: [&str; 10] = [
    "0",
    "0.0",
    "23.5",
    "1e3",
    "1E-3",
    "2.5e+2",
    "4.9e-324",
    "0.30000000000000004",
    "9007199254740993",
    "1e-400",
];
const PLAIN_INTEGERS: [&str; 4] = ["0", "1", "42", "1764080000000"];

fn text(pieces: &mut Vec<Piece>, s: &str) {
    match pieces.last_mut() {
        Some(Piece::Text(t)) => t.push_str(s),
        _ => pieces.push(Piece::Text(s.into())),
    }
}

/// An object of `fields` in any order with any spacing; each field's value
/// written by its closure.
fn object(rng: &mut Rng, pieces: &mut Vec<Piece>, mut fields: Vec<(&str, Vec<Piece>)>) {
    for i in (1..fields.len()).rev() {
        fields.swap(i, rng.below(i + 1));
    }
    text(pieces, "{");
    for (i, (k, v)) in fields.into_iter().enumerate() {
        if i > 0 {
            text(pieces, ",");
        }
        let sp = rng.pick(&SPACES);
        text(pieces, &format!("{sp}\"{k}\"{sp}:{sp}"));
        for p in v {
            match p {
                Piece::Text(t) => text(pieces, &t),
                n => pieces.push(n),
            }
        }
        text(pieces, rng.pick(&SPACES));
    }
    text(pieces, "}");
}

fn quoted(s: &str) -> Vec<Piece> {
    vec![Piece::Text(format!("\"{s}\""))]
}

fn skeleton(rng: &mut Rng) -> Vec<Piece> {
    let mut readings = vec![Piece::Text("[".into())];
    for i in 0..rng.below(6) {
        if i > 0 {
            text(&mut readings, ",");
        }
        let q = rng.pick(&["fan_rpm", "temperature_celsius", "energy_joules_total"]);
        let counter = q.ends_with("_total");
        let mut fields = vec![
            ("src", quoted(rng.pick(&["ipmi", "host", "modbus"]))),
            ("dev", quoted(rng.pick(&["bmc0", "Inlet é", "sda"]))),
            ("name", quoted(rng.pick(&["Fan 1", "Inlet Temp", "cpu"]))),
            ("q", quoted(q)),
            (
                "value",
                if rng.below(5) == 0 {
                    vec![Piece::Text("null".into())]
                } else {
                    vec![Piece::Number {
                        float: true,
                        counter,
                    }]
                },
            ),
            (
                "state",
                quoted(rng.pick(&["ok", "warning", "critical", "unknown"])),
            ),
        ];
        if rng.below(3) == 0 {
            fields.push((
                "labels",
                vec![Piece::Text(r#"{"slot":"3","bay":"é"}"#.into())],
            ));
        }
        match rng.below(4) {
            0 => fields.push((
                "ts",
                vec![Piece::Number {
                    float: false,
                    counter: false,
                }],
            )),
            1 => fields.push(("ts", vec![Piece::Text("null".into())])),
            _ => {}
        }
        let mut reading = Vec::new();
        object(rng, &mut reading, fields);
        for p in reading {
            match p {
                Piece::Text(t) => text(&mut readings, &t),
                n => readings.push(n),
            }
        }
    }
    text(&mut readings, "]");
    let integer = || {
        vec![Piece::Number {
            float: false,
            counter: false,
        }]
    };
    let mut fields = vec![
        ("v", vec![Piece::Text("1".into())]),
        ("seq", integer()),
        ("ts", integer()),
        ("readings", readings),
    ];
    if rng.below(3) == 0 {
        fields.push(("boot", quoted("b-1")));
    }
    if rng.below(3) == 0 {
        fields.push(("host", quoted("web-01")));
    }
    let mut pieces = Vec::new();
    object(rng, &mut pieces, fields);
    pieces
}

/// The skeleton written out, each number drawn by `number(float, counter)`.
fn render(pieces: &[Piece], mut number: impl FnMut(bool, bool) -> String) -> Vec<u8> {
    let mut out = String::new();
    for p in pieces {
        match p {
            Piece::Text(t) => out.push_str(t),
            Piece::Number { float, counter } => out.push_str(&number(*float, *counter)),
        }
    }
    out.into_bytes()
}

/// The shape's batch with `numbers` in it: what a batch read against the
/// shape stands for.
fn with_numbers<'a>(shaped: &ReadingsView<'a>, numbers: &Numbers) -> ReadingsView<'a> {
    let mut want = shaped.clone();
    want.seq = numbers.seq;
    want.ts = numbers.ts;
    for (i, r) in want.readings.iter_mut().enumerate() {
        r.value = numbers.values[i];
        r.ts = numbers.reading_ts[i];
    }
    want
}

/// One byte of the batch spoilt: changed, doubled or removed.
fn spoil(rng: &mut Rng, payload: &mut Vec<u8>) {
    if payload.is_empty() {
        return;
    }
    let at = rng.below(payload.len());
    match rng.below(4) {
        0 => {
            payload[at] = *rng
                .pick(&[" ", "0", "-", "\"", ".", "e", "n", "}"])
                .as_bytes()
                .first()
                .unwrap()
        }
        1 => payload.insert(at, payload[at]),
        2 => {
            payload.remove(at);
        }
        _ => payload.insert(at, b' '),
    }
}

#[test]
fn what_a_shape_reads_is_what_the_full_decode_reads() {
    let mut rng = Rng(0x2545_f491_4f6c_dd1d);
    let (mut read, mut refused, mut plain) = (0, 0, 0);
    for _ in 0..20_000 {
        let pieces = skeleton(&mut rng);
        let first = render(&pieces, |float, _| {
            rng.pick(if float {
                &PLAIN_VALUES
            } else {
                &PLAIN_INTEGERS
            })
            .into()
        });
        let (decoded, shape) = decode_in_place_shaped(TOPIC, &first).unwrap();
        let Decoded::Readings(_, shaped) = decoded else {
            panic!("not a batch");
        };
        let shape = shape.expect("a plain batch has a shape");
        assert_eq!(shape.readings(), shaped.readings.len());
        let mut numbers = Numbers::default();
        for variant in 0..8 {
            let mut next = render(&pieces, |float, counter| {
                let pool: &[&str] = match (variant, float) {
                    (0, true) => &PLAIN_VALUES,
                    (0, false) => &PLAIN_INTEGERS,
                    (_, true) => &VALUES,
                    (_, false) => &INTEGERS,
                };
                let n = rng.pick(pool);
                if variant == 0 && counter {
                    n.trim_start_matches('-').into()
                } else {
                    n.into()
                }
            });
            if variant >= 4 {
                spoil(&mut rng, &mut next);
            }
            let text = String::from_utf8_lossy(&next).into_owned();
            if shape.read(TOPIC, &next, &mut numbers) {
                let Ok(Decoded::Readings(_, full)) = decode_in_place(TOPIC, &next) else {
                    panic!("the shape read what the full decode refuses: {text}");
                };
                // Debug, not `==`: it tells -0.0 from 0.0.
                assert_eq!(
                    format!("{full:?}"),
                    format!("{:?}", with_numbers(&shaped, &numbers)),
                    "{text}"
                );
                if variant > 0 {
                    read += 1;
                }
            } else {
                assert_ne!(variant, 0, "a plain next batch was not read: {text}");
                refused += 1;
            }
            if variant == 0 {
                plain += 1;
            }
        }
        // Another topic is another host: never its shape.
        assert!(!shape.read("sitewatch/v1/bj1/web-02/readings", &first, &mut numbers));
    }
    assert!(plain == 20_000);
    // Hostile and spoilt batches both read and refused, many of each.
    assert!(read > 3_000, "{read}");
    assert!(refused > 20_000, "{refused}");
}

#[test]
fn a_batch_serde_reads_has_no_shape() {
    // An escaped string: the scanner leaves it to serde.
    let payload = br#"{"v":1,"seq":1,"ts":1,"readings":[{"src":"ipmi","dev":"a\u00e9","name":"n","q":"fan_rpm","value":1,"state":"ok"}]}"#;
    let (decoded, shape) = decode_in_place_shaped(TOPIC, payload).unwrap();
    assert!(matches!(decoded, Decoded::Readings(..)));
    assert_eq!(shape, None::<Shape>);
}

#[test]
fn a_negative_counter_is_refused_by_the_shape_as_by_validation() {
    let batch = |v: &str| {
        format!(
            r#"{{"v":1,"seq":1,"ts":1,"readings":[{{"src":"host","dev":"eth0","name":"rx","q":"energy_joules_total","value":{v},"state":"ok"}}]}}"#
        )
    };
    let (_, shape) = decode_in_place_shaped(TOPIC, batch("5").as_bytes()).unwrap();
    let shape = shape.unwrap();
    let mut numbers = Numbers::default();
    assert!(shape.read(TOPIC, batch("7.5").as_bytes(), &mut numbers));
    assert_eq!(numbers.values, [Some(7.5)]);
    assert!(!shape.read(TOPIC, batch("-1").as_bytes(), &mut numbers));
    assert!(decode_in_place(TOPIC, batch("-1").as_bytes()).is_err());
}
