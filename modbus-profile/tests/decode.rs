#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! Decoding every type, order, scale, bit and sentinel from literal registers,
//! and encoding back (the simulator's direction).

use sitewatch_modbus_profile::{Profile, RegisterImage, SimValue, Table};
use sitewatch_protocol::ReadingState;

fn profile(points: &str) -> Profile {
    let text = format!(
        "[device]\nvendor = \"t\"\nmodel = \"t\"\nclass = \"io\"\nsource = \"test\"\nverified = true\n\n{points}"
    );
    Profile::from_toml(&text, "test.toml").unwrap()
}

fn point(name: &str, address: u16, ty: &str, extra: &str) -> String {
    format!(
        "[[point]]\nname = \"{name}\"\nq = \"x_{name}\"\ntable = \"holding\"\naddress = {address}\ntype = \"{ty}\"\n{extra}\n"
    )
}

fn value(p: &Profile, image: &RegisterImage, name: &str) -> (Option<f64>, ReadingState) {
    let d = p.decode(image);
    let v = d.value(name).unwrap();
    (v.value, v.state)
}

#[test]
fn every_integer_and_float_type_in_every_order() {
    let p = profile(
        &[
            point("u16", 0, "u16", ""),
            point("i16", 1, "i16", ""),
            point("u32_abcd", 2, "u32", "order = \"ABCD\""),
            point("u32_cdab", 4, "u32", "order = \"CDAB\""),
            point("i32_badc", 6, "i32", "order = \"BADC\""),
            point("i32_dcba", 8, "i32", "order = \"DCBA\""),
            point("u64", 10, "u64", ""),
            point("i64_cdab", 14, "i64", "order = \"CDAB\""),
            point("f32", 18, "f32", ""),
            point("f32_cdab", 20, "f32", "order = \"CDAB\""),
            point("f64", 22, "f64", ""),
            point("u16_ba", 26, "u16", "order = \"BADC\""),
        ]
        .concat(),
    );
    let mut img = RegisterImage::new();
    img.set_words(
        Table::Holding,
        0,
        &[
            0xFFFE, // u16 65534
            0xFFFE, // i16 -2
            0x0001, 0x0002, // u32 ABCD 65538
            0x0002, 0x0001, // u32 CDAB 65538
            0xFFFF, 0xF6FF, // i32 BADC: bytes FF FF FF F6 = -10
            0xF6FF, 0xFFFF, // i32 DCBA: -10
            0x0000, 0x0000, 0x0001, 0x0000, // u64 65536
            0xFFF6, 0xFFFF, 0xFFFF, 0xFFFF, // i64 CDAB -10
            0x41BC, 0x0000, // f32 23.5
            0x0000, 0xC1BC, // f32 CDAB -23.5
            0x4037, 0x0000, 0x0000, 0x0000, // f64 23.0
            0x3412, // u16 byte-swapped 0x1234
        ],
    );
    let expect = [
        ("u16", 65534.0),
        ("i16", -2.0),
        ("u32_abcd", 65538.0),
        ("u32_cdab", 65538.0),
        ("i32_badc", -10.0),
        ("i32_dcba", -10.0),
        ("u64", 65536.0),
        ("i64_cdab", -10.0),
        ("f32", 23.5),
        ("f32_cdab", -23.5),
        ("f64", 23.0),
        ("u16_ba", 4660.0),
    ];
    for (name, v) in expect {
        assert_eq!(value(&p, &img, name), (Some(v), ReadingState::Ok), "{name}");
    }
}

#[test]
fn scale_offset_and_binary_point() {
    let p = profile(
        &[
            point("tenths", 0, "i16", "scale = 0.1"),
            point("offset", 1, "u16", "scale = 0.5\noffset = -40.0"),
            // APC battery charge: raw / 2^9 is percent, then to a ratio.
            point("bp", 2, "u16", "binary_point = 9\nscale = 0.01"),
            point("minutes", 3, "u16", "scale = 60.0"),
        ]
        .concat(),
    );
    let mut img = RegisterImage::new();
    img.set_words(Table::Holding, 0, &[0xFF85, 130, 51200, 12]);
    assert_eq!(value(&p, &img, "tenths").0, Some(-12.3));
    assert_eq!(value(&p, &img, "offset").0, Some(25.0));
    assert_eq!(value(&p, &img, "bp").0, Some(1.0));
    assert_eq!(value(&p, &img, "minutes").0, Some(720.0));
}

#[test]
fn bits_fields_and_flags() {
    let p = profile(
        &[
            point("b0", 0, "u32", "bit = 0"),
            point("b17", 0, "u32", "bit = 17"),
            point("b31_inv", 0, "u32", "bit = 31\ninvert = true"),
            point("nibble", 2, "u16", "bits = [8, 11]\nenum = { 3 = \"shutdown\" }"),
            point("nibble_fault", 2, "u16", "bits = [8, 11]\nflag_on = [3, 4]\ncritical_if = 1"),
            point("mode_ob", 3, "u16", "flag_on = [3]"),
            point("rpm", 4, "u16", ""),
            point("running", 4, "u16", "flag_above = 300.0"),
            point("neg_bit", 5, "i16", "bit = 15"),
            "[[point]]\nname = \"flag\"\nq = \"x_flag\"\ntable = \"holding\"\naddress = 6\ntype = \"bool\"\n".into(),
        ]
        .concat(),
    );
    let mut img = RegisterImage::new();
    // u32 0x0002_0001: bits 0 and 17 set, bit 31 clear.
    img.set_words(
        Table::Holding,
        0,
        &[0x0002, 0x0001, 0x1300, 3, 1500, 0x8000, 7],
    );
    assert_eq!(value(&p, &img, "b0").0, Some(1.0));
    assert_eq!(value(&p, &img, "b17").0, Some(1.0));
    assert_eq!(value(&p, &img, "b31_inv").0, Some(1.0));
    assert_eq!(value(&p, &img, "nibble").0, Some(3.0));
    let d = p.decode(&img);
    assert_eq!(d.value("nibble").unwrap().labels["text"], "shutdown");
    assert_eq!(
        value(&p, &img, "nibble_fault"),
        (Some(1.0), ReadingState::Critical)
    );
    assert_eq!(value(&p, &img, "mode_ob").0, Some(1.0));
    assert_eq!(value(&p, &img, "running").0, Some(1.0));
    assert_eq!(value(&p, &img, "neg_bit").0, Some(1.0));
    assert_eq!(value(&p, &img, "flag").0, Some(1.0));
    img.set_words(Table::Holding, 0, &[0x8000, 0x0000, 0x0100, 2, 0]);
    assert_eq!(value(&p, &img, "b0").0, Some(0.0));
    assert_eq!(value(&p, &img, "b31_inv").0, Some(0.0));
    assert_eq!(
        value(&p, &img, "nibble_fault"),
        (Some(0.0), ReadingState::Ok)
    );
    assert_eq!(value(&p, &img, "mode_ob").0, Some(0.0));
    assert_eq!(value(&p, &img, "running").0, Some(0.0));
}

#[test]
fn sentinels_mean_null_and_unknown() {
    let p = profile(
        &[
            point(
                "runtime",
                0,
                "u16",
                "not_available = [0xFFFF]\nscale = 60.0",
            ),
            point("signed", 1, "i16", "not_available = [0xFFFF]"),
            point("signed_neg", 2, "i16", "not_available = [-1, 0x7FFF]"),
            point("u32na", 3, "u32", "not_available = [0xFFFFFFFF]"),
        ]
        .concat(),
    );
    let mut img = RegisterImage::new();
    img.set_words(Table::Holding, 0, &[0xFFFF, 0xFFFF, 0x7FFF, 0xFFFF, 0xFFFF]);
    for name in ["runtime", "signed", "signed_neg", "u32na"] {
        assert_eq!(
            value(&p, &img, name),
            (None, ReadingState::Unknown),
            "{name}"
        );
    }
    img.set_words(Table::Holding, 0, &[30, 0xFFFE, 0xFFFE, 0, 5]);
    assert_eq!(value(&p, &img, "runtime").0, Some(1800.0));
    assert_eq!(value(&p, &img, "signed").0, Some(-2.0));
    assert_eq!(value(&p, &img, "u32na").0, Some(5.0));
}

#[test]
fn registers_not_read_decode_as_unknown() {
    let p = profile(&[point("a", 0, "u32", ""), point("b", 10, "u16", "")].concat());
    let mut img = RegisterImage::new();
    img.set_words(Table::Holding, 0, &[0]); // half of `a` only
    assert_eq!(value(&p, &img, "a"), (None, ReadingState::Unknown));
    assert_eq!(value(&p, &img, "b"), (None, ReadingState::Unknown));
}

#[test]
fn state_rules_judge_the_scaled_value() {
    let p = profile(&point(
        "load",
        0,
        "u16",
        "scale = 0.01\nwarning_above = 0.8\ncritical_above = 1.0",
    ));
    let mut img = RegisterImage::new();
    for (raw, state) in [
        (50, ReadingState::Ok),
        (85, ReadingState::Warning),
        (110, ReadingState::Critical),
    ] {
        img.set_words(Table::Holding, 0, &[raw]);
        assert_eq!(value(&p, &img, "load").1, state, "{raw}");
    }
}

#[test]
fn strings_become_info_and_nut_becomes_a_label() {
    let p = profile(
        &[
            "[[point]]\nname = \"model\"\ntable = \"holding\"\naddress = 0\ntype = \"string\"\nlength = 4\n".to_string(),
            point("charge", 4, "u16", "nut = \"battery.charge\"\nlabels = { part = \"battery\" }"),
        ]
        .concat(),
    );
    let mut img = RegisterImage::new();
    img.set_words(Table::Holding, 0, &[0x534D, 0x5431, 0x3530, 0x3000, 97]);
    let d = p.decode(&img);
    assert_eq!(d.info["model"], "SMT1500");
    assert_eq!(d.values.len(), 1);
    let r = d.readings("ups-a").remove(0);
    assert_eq!(
        (r.src.as_str(), r.dev.as_str(), r.name.as_str()),
        ("modbus", "ups-a", "charge")
    );
    assert_eq!(r.q, "x_charge");
    assert_eq!(r.labels["nut"], "battery.charge");
    assert_eq!(r.labels["part"], "battery");
}

#[test]
fn coils_and_discrete_inputs_decode_as_flags() {
    let p = profile(
        "[[point]]\nname = \"leak\"\nq = \"water_leak\"\ntable = \"discrete\"\naddress = 3\ntype = \"bool\"\ncritical_if = 1\n\
         [[point]]\nname = \"relay\"\nq = \"relay_on\"\ntable = \"coil\"\naddress = 3\ntype = \"bool\"\n",
    );
    let mut img = RegisterImage::new();
    img.set_bits(Table::Discrete, 0, &[false, false, false, true]);
    img.set_bits(Table::Coil, 3, &[false]);
    assert_eq!(value(&p, &img, "leak"), (Some(1.0), ReadingState::Critical));
    assert_eq!(value(&p, &img, "relay"), (Some(0.0), ReadingState::Ok));
}

#[test]
fn encode_is_the_inverse_of_decode() {
    let p = profile(
        &[
            point("i16", 0, "i16", "scale = 0.1"),
            point("u32", 1, "u32", "order = \"CDAB\""),
            point("f32", 3, "f32", "order = \"DCBA\""),
            point("bp", 5, "u16", "binary_point = 8\nscale = 0.01"),
            point("bit3", 6, "u16", "bit = 3"),
            point("bit4_inv", 6, "u16", "bit = 4\ninvert = true"),
            point("field", 6, "u16", "bits = [8, 11]"),
            point("mode", 7, "u16", "flag_on = [2, 5]"),
            point("na", 8, "u16", "not_available = [0xFFFF]"),
            point("sna", 9, "i16", "not_available = [0xFFFF]"),
            point("rpm_running", 10, "u16", "flag_above = 300.0"),
            point("i64", 11, "i64", "order = \"BADC\""),
        ]
        .concat(),
    );
    let mut img = p.default_image().unwrap();
    let cases = [
        ("i16", -12.5),
        ("u32", 70_000.0),
        ("f32", 21.25),
        ("bp", 0.35),
        ("bit3", 1.0),
        ("bit4_inv", 0.0),
        ("field", 9.0),
        ("mode", 1.0),
        ("na", 7.0),
        ("rpm_running", 1.0),
        ("i64", -123_456_789.0),
    ];
    for (name, v) in cases {
        p.encode(name, &SimValue::Number(v), &mut img).unwrap();
    }
    for (name, v) in cases {
        assert_eq!(value(&p, &img, name).0, Some(v), "{name}");
    }
    // Views of register 6 kept each other's bits.
    assert_eq!(img.word(Table::Holding, 6), Some(0x0918));
    for name in ["na", "sna"] {
        p.encode(name, &SimValue::Text("not_available".into()), &mut img)
            .unwrap();
        assert_eq!(
            value(&p, &img, name),
            (None, ReadingState::Unknown),
            "{name}"
        );
    }
    p.encode("mode", &SimValue::Number(0.0), &mut img).unwrap();
    assert_eq!(value(&p, &img, "mode").0, Some(0.0));
    let err = p
        .encode("bp", &SimValue::Number(9999.0), &mut img)
        .unwrap_err();
    assert_eq!(err.kind(), "out_of_range");
    let err = p
        .encode("nope", &SimValue::Number(1.0), &mut img)
        .unwrap_err();
    assert_eq!(err.kind(), "unknown_point");
}
