#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! Every refusal names the profile file and, where one is at fault, the point.

use sitewatch_modbus_profile::{Profile, ProfileError};

const HEAD: &str = r#"
[device]
vendor = "Acme"
model = "X1"
class = "ups"
source = "Acme X1 manual rev 3"
verified = true
"#;

fn load(points: &str) -> Result<Profile, ProfileError> {
    Profile::from_toml(&format!("{HEAD}\n{points}"), "ups/acme-x1.toml")
}

fn refused(points: &str, kind: &str, point: &str) -> String {
    let err = load(points).expect_err("profile should be refused");
    assert_eq!(err.kind(), kind, "{err}");
    assert_eq!(err.point(), Some(point), "{err}");
    let text = err.to_string();
    assert!(text.starts_with("ups/acme-x1.toml: point `"), "{text}");
    text
}

#[test]
fn a_valid_profile_loads() {
    let p = load(
        r#"
[[point]]
name = "charge"
q = "ups_battery_charge_ratio"
table = "holding"
address = 10
type = "u16"
scale = 0.01
"#,
    )
    .unwrap();
    assert_eq!(p.points().len(), 1);
    assert_eq!(p.limits.max_registers, 125);
    assert_eq!(p.limits.max_bits, 2000);
}

#[test]
fn overlapping_points_are_refused() {
    let text = refused(
        r#"
[[point]]
name = "runtime"
q = "ups_battery_runtime_seconds"
table = "holding"
address = 10
type = "u32"

[[point]]
name = "charge"
q = "ups_battery_charge_ratio"
table = "holding"
address = 11
type = "u16"
"#,
        "overlap",
        "charge",
    );
    assert!(text.contains("`runtime`"), "{text}");
}

#[test]
fn bits_of_one_status_word_may_share_it_but_not_repeat() {
    let word = |name: &str, bit: u8| {
        format!(
            "[[point]]\nname = \"{name}\"\nq = \"ups_on_battery\"\ntable = \"holding\"\naddress = 0\ntype = \"u32\"\nbit = {bit}\n"
        )
    };
    load(&(word("a", 1) + &word("b", 2))).unwrap();
    refused(&(word("a", 1) + &word("b", 1)), "duplicate", "b");
}

#[test]
fn the_same_register_in_two_tables_is_not_an_overlap() {
    load(
        r#"
[[point]]
name = "a"
q = "x_volts"
table = "holding"
address = 0
type = "u16"

[[point]]
name = "b"
q = "x_volts"
table = "input"
address = 0
type = "u16"
"#,
    )
    .unwrap();
}

#[test]
fn addresses_past_65535_are_refused() {
    refused(
        "[[point]]\nname = \"far\"\nq = \"x_volts\"\ntable = \"holding\"\naddress = 65535\ntype = \"u32\"\n",
        "address_out_of_range",
        "far",
    );
    refused(
        "[[point]]\nname = \"farther\"\nq = \"x_volts\"\ntable = \"holding\"\naddress = 70000\ntype = \"u16\"\n",
        "address_out_of_range",
        "farther",
    );
}

#[test]
fn unknown_type_and_order_are_named() {
    let t = refused(
        "[[point]]\nname = \"t\"\nq = \"x_volts\"\ntable = \"holding\"\naddress = 0\ntype = \"u17\"\n",
        "unknown_type",
        "t",
    );
    assert!(t.contains("u17"));
    let o = refused(
        "[[point]]\nname = \"o\"\nq = \"x_volts\"\ntable = \"holding\"\naddress = 0\ntype = \"u32\"\norder = \"BCDA\"\n",
        "unknown_order",
        "o",
    );
    assert!(o.contains("BCDA"));
    refused(
        "[[point]]\nname = \"tb\"\nq = \"x_volts\"\ntable = \"registers\"\naddress = 0\ntype = \"u16\"\n",
        "unknown_table",
        "tb",
    );
}

#[test]
fn a_bit_past_the_register_width_is_refused() {
    let text = refused(
        "[[point]]\nname = \"b16\"\nq = \"ups_on_battery\"\ntable = \"holding\"\naddress = 0\ntype = \"u16\"\nbit = 16\n",
        "bit_past_width",
        "b16",
    );
    assert!(text.contains("16-bit"), "{text}");
    refused(
        "[[point]]\nname = \"f\"\nq = \"x\"\ntable = \"holding\"\naddress = 0\ntype = \"u32\"\nbits = [28, 32]\n",
        "bit_past_width",
        "f",
    );
    refused(
        "[[point]]\nname = \"fl\"\nq = \"x\"\ntable = \"holding\"\naddress = 0\ntype = \"f32\"\nbit = 1\n",
        "conflict",
        "fl",
    );
}

#[test]
fn a_string_needs_a_length() {
    refused(
        "[[point]]\nname = \"model\"\ntable = \"holding\"\naddress = 0\ntype = \"string\"\n",
        "string_without_length",
        "model",
    );
}

#[test]
fn q_must_be_snake_case() {
    let text = refused(
        "[[point]]\nname = \"v\"\nq = \"Output-Voltage\"\ntable = \"holding\"\naddress = 0\ntype = \"u16\"\n",
        "bad_quantity",
        "v",
    );
    assert!(text.contains("Output-Voltage"));
    refused(
        "[[point]]\nname = \"noq\"\ntable = \"holding\"\naddress = 0\ntype = \"u16\"\n",
        "missing_quantity",
        "noq",
    );
}

#[test]
fn bit_tables_hold_only_bools() {
    refused(
        "[[point]]\nname = \"c\"\nq = \"x\"\ntable = \"coil\"\naddress = 0\ntype = \"u16\"\n",
        "type_not_in_table",
        "c",
    );
}

#[test]
fn unknown_fields_name_the_point() {
    let text = refused(
        "[[point]]\nname = \"typo\"\nq = \"x\"\ntable = \"holding\"\naddress = 0\ntype = \"u16\"\nscael = 0.1\n",
        "invalid",
        "typo",
    );
    assert!(text.contains("scael"), "{text}");
}

#[test]
fn a_point_on_a_function_the_device_lacks_is_refused() {
    refused(
        "[limits]\nfunctions = [3]\n\n[[point]]\nname = \"in\"\nq = \"x\"\ntable = \"input\"\naddress = 0\ntype = \"u16\"\n",
        "function_not_allowed",
        "in",
    );
}

#[test]
fn duplicate_names_are_refused() {
    refused(
        "[[point]]\nname = \"a\"\nq = \"x\"\ntable = \"holding\"\naddress = 0\ntype = \"u16\"\n[[point]]\nname = \"a\"\nq = \"x\"\ntable = \"holding\"\naddress = 1\ntype = \"u16\"\n",
        "duplicate_name",
        "a",
    );
}

#[test]
fn scaling_a_flag_is_refused() {
    refused(
        "[[point]]\nname = \"s\"\nq = \"x\"\ntable = \"holding\"\naddress = 0\ntype = \"u16\"\nbit = 2\nscale = 0.1\n",
        "conflict",
        "s",
    );
}

#[test]
fn limits_beyond_modbus_are_refused() {
    let err = load("[limits]\nmax_registers = 126\n").unwrap_err();
    assert_eq!(err.kind(), "limits");
    assert!(err.to_string().starts_with("ups/acme-x1.toml: [limits]"));
    let err = load("[limits]\nmax_bits = 2001\n").unwrap_err();
    assert_eq!(err.kind(), "limits");
}

#[test]
fn broken_toml_names_the_file() {
    let err = Profile::from_toml("[device\n", "ups/broken.toml").unwrap_err();
    assert_eq!(err.kind(), "syntax");
    assert!(err.to_string().starts_with("ups/broken.toml: "));
    let err = Profile::from_toml(&HEAD.replace("\"ups\"", "\"toaster\""), "x.toml").unwrap_err();
    assert_eq!(err.kind(), "syntax");
}
