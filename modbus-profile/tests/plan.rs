#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! Request planning: coalescing within limits, gap fill, and splitting a block
//! the device refuses.

use sitewatch_modbus_profile::{Limits, Plan, Profile, SplitError, Table};

fn profile(limits: &str, points: &[(&str, &str, u16, &str)]) -> Profile {
    let mut text = String::from(
        "[device]\nvendor = \"t\"\nmodel = \"t\"\nclass = \"io\"\nsource = \"t\"\nverified = true\n",
    );
    text.push_str(limits);
    for (name, table, address, ty) in points {
        text.push_str(&format!(
            "\n[[point]]\nname = \"{name}\"\nq = \"x\"\ntable = \"{table}\"\naddress = {address}\ntype = \"{ty}\"\n"
        ));
    }
    Profile::from_toml(&text, "t.toml").unwrap()
}

fn spans(plan: &Plan) -> Vec<(Table, u16, u16)> {
    plan.blocks()
        .iter()
        .map(|b| (b.table, b.address, b.count))
        .collect()
}

#[test]
fn contiguous_points_share_one_request_and_gaps_split_unless_filled() {
    let points = [
        ("a", "holding", 0, "u16"),
        ("b", "holding", 1, "u32"),
        ("c", "holding", 10, "u16"),
        ("d", "input", 0, "u16"),
    ];
    let p = profile("", &points);
    assert_eq!(
        spans(&Plan::new(&p)),
        vec![
            (Table::Holding, 0, 3),
            (Table::Holding, 10, 1),
            (Table::Input, 0, 1)
        ]
    );
    let p = profile("[limits]\ngap_fill = 7\n", &points);
    assert_eq!(
        spans(&Plan::new(&p)),
        vec![(Table::Holding, 0, 11), (Table::Input, 0, 1)]
    );
    // A gap one register wider than the fill stays a separate request.
    let p = profile("[limits]\ngap_fill = 6\n", &points);
    assert_eq!(Plan::new(&p).len(), 3);
}

#[test]
fn requests_never_exceed_the_register_or_bit_limit() {
    let many: Vec<(String, u16)> = (0..300u16).map(|i| (format!("p{i}"), i)).collect();
    let points: Vec<(&str, &str, u16, &str)> = many
        .iter()
        .map(|(n, a)| (n.as_str(), "holding", *a, "u16"))
        .collect();
    let p = profile("", &points);
    // 300 registers at 125 a request: 125 + 125 + 50.
    assert_eq!(
        spans(&Plan::new(&p)),
        vec![
            (Table::Holding, 0, 125),
            (Table::Holding, 125, 125),
            (Table::Holding, 250, 50)
        ]
    );
    let limits = Limits {
        max_registers: 100,
        ..p.limits.clone()
    };
    assert_eq!(Plan::with_limits(&p, &limits).len(), 3);
    let bits: Vec<(&str, &str, u16, &str)> = many
        .iter()
        .map(|(n, a)| (n.as_str(), "coil", *a, "bool"))
        .collect();
    let p = profile("[limits]\nmax_bits = 128\n", &bits);
    assert_eq!(
        spans(&Plan::new(&p)),
        vec![
            (Table::Coil, 0, 128),
            (Table::Coil, 128, 128),
            (Table::Coil, 256, 44)
        ]
    );
}

#[test]
fn a_multi_register_value_is_never_cut_between_requests() {
    let p = profile(
        "[limits]\nmax_registers = 4\n",
        &[
            ("a", "holding", 0, "u16"),
            ("b", "holding", 1, "u16"),
            ("c", "holding", 2, "u64"),
        ],
    );
    // c (4 registers) does not fit after a and b: it starts its own request.
    assert_eq!(
        spans(&Plan::new(&p)),
        vec![(Table::Holding, 0, 2), (Table::Holding, 2, 4)]
    );
}

#[test]
fn views_of_one_register_are_read_once() {
    let text = "[device]\nvendor = \"t\"\nmodel = \"t\"\nclass = \"io\"\nsource = \"t\"\nverified = true\n\
        [[point]]\nname = \"a\"\nq = \"x\"\ntable = \"holding\"\naddress = 5\ntype = \"u32\"\nbit = 1\n\
        [[point]]\nname = \"b\"\nq = \"x\"\ntable = \"holding\"\naddress = 5\ntype = \"u32\"\nbit = 2\n";
    let p = Profile::from_toml(text, "t.toml").unwrap();
    let plan = Plan::new(&p);
    assert_eq!(spans(&plan), vec![(Table::Holding, 5, 2)]);
    assert_eq!(plan.blocks()[0].points, vec![0, 1]);
    assert_eq!(plan.blocks()[0].function_code(), 3);
}

#[test]
fn a_refused_block_splits_down_to_the_refused_point() {
    let p = profile(
        "[limits]\ngap_fill = 10\n",
        &[
            ("a", "holding", 0, "u16"),
            ("b", "holding", 3, "u16"),
            ("c", "holding", 6, "u32"),
            ("d", "holding", 9, "u16"),
        ],
    );
    let mut plan = Plan::new(&p);
    assert_eq!(spans(&plan), vec![(Table::Holding, 0, 10)]);
    assert_eq!(plan.split(0), Ok((0, 1)));
    assert_eq!(
        spans(&plan),
        vec![(Table::Holding, 0, 4), (Table::Holding, 6, 4)]
    );
    assert_eq!(plan.split(1), Ok((1, 2)));
    assert_eq!(
        spans(&plan),
        vec![
            (Table::Holding, 0, 4),
            (Table::Holding, 6, 2),
            (Table::Holding, 9, 1)
        ]
    );
    assert_eq!(plan.split(1), Err(SplitError::Atomic(1)));
    assert_eq!(plan.split(7), Err(SplitError::NoSuchBlock(7)));
    assert_eq!(plan.split(1).unwrap_err().kind(), "atomic");
}
