//! Modbus: the read planner and the decoding of what a device answered, as the
//! agent's modbus source runs them. The input picks a profile (a shipped one,
//! or one written from the input's bytes), the site's limits, then, block by
//! block, the device's answer: words or bits of any length (a device may
//! answer short or long) or an "illegal data address" exception, on which the
//! bus splits the block as it does live.

use std::fmt::Write as _;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use sitewatch_agent::source::modbus::device::Device;
use sitewatch_modbus_profile::codec::decode_words;
use sitewatch_modbus_profile::shipped::SHIPPED;
use sitewatch_modbus_profile::{DataType, Order, Plan, Profile, RegisterImage};

/// The input, read from the front; zeros once it runs out.
struct Bytes<'a>(&'a [u8]);

impl Bytes<'_> {
    fn u8(&mut self) -> u8 {
        match self.0.split_first() {
            Some((b, rest)) => {
                self.0 = rest;
                *b
            }
            None => 0,
        }
    }
    fn u16(&mut self) -> u16 {
        u16::from_be_bytes([self.u8(), self.u8()])
    }
}

fn shipped() -> &'static [Profile] {
    static PROFILES: OnceLock<Vec<Profile>> = OnceLock::new();
    PROFILES.get_or_init(|| {
        SHIPPED
            .iter()
            .filter_map(|s| Profile::from_toml(s.text, s.path).ok())
            .collect()
    })
}

const TABLES: [&str; 4] = ["coil", "discrete", "holding", "input"];
const TYPES: [&str; 10] = [
    "bool", "u16", "i16", "u32", "i32", "u64", "i64", "f32", "f64", "string",
];
const ORDERS: [&str; 4] = ["ABCD", "CDAB", "BADC", "DCBA"];

/// A profile file written from the input: the planner and decoder see every
/// table, type, order, extraction and scaling the validator lets through.
fn written_profile(b: &mut Bytes) -> Option<Profile> {
    let mut text = String::from(
        "[device]\nvendor = \"fuzz\"\nmodel = \"fuzz\"\nclass = \"io\"\nsource = \"fuzz\"\nverified = false\n",
    );
    let limits = b.u8();
    if limits & 1 != 0 {
        let _ = writeln!(
            text,
            "[limits]\nmax_registers = {}\nmax_bits = {}\ngap_fill = {}",
            b.u8(),
            b.u16(),
            b.u8() % 64
        );
    }
    for i in 0..(b.u8() % 12 + 1) {
        let table = TABLES[usize::from(b.u8() % 4)];
        let address = b.u16();
        let kind = b.u8();
        let data_type = TYPES[usize::from(kind % 10)];
        let _ = write!(
            text,
            "[[point]]\nname = \"p{i}\"\ntable = \"{table}\"\naddress = {address}\ntype = \"{data_type}\"\n"
        );
        let extra = b.u8();
        if extra & 1 != 0 {
            let _ = writeln!(text, "order = \"{}\"", ORDERS[usize::from(b.u8() % 4)]);
        }
        if extra & 2 != 0 {
            let _ = writeln!(text, "length = {}", b.u8());
        }
        if extra & 4 != 0 {
            let _ = writeln!(text, "bit = {}", b.u8() % 70);
        }
        if extra & 8 != 0 {
            let _ = writeln!(text, "bits = [{}, {}]", b.u8() % 70, b.u8() % 70);
        }
        if extra & 16 != 0 {
            let _ = writeln!(text, "scale = {:e}", f64::from(b.u16() as i16) / 100.0);
        }
        if extra & 32 != 0 {
            let _ = writeln!(text, "binary_point = {}", b.u8());
        }
        if extra & 64 != 0 {
            let _ = writeln!(text, "flag_on = [{}]", b.u16() as i16);
        }
        if extra & 128 != 0 {
            let _ = writeln!(
                text,
                "not_available = [{}]\nwarning_above = {}\ncritical_below = {}",
                b.u16(),
                b.u8(),
                b.u8() as i8
            );
        }
    }
    Profile::from_toml(&text, "fuzz.toml").ok()
}

/// One input, as the fuzzer gives it.
pub fn run(data: &[u8]) {
    let mut b = Bytes(data);
    let pick = b.u8();
    let profile = if pick < 0x80 {
        let all = shipped();
        match all.get(usize::from(pick) % all.len().max(1)) {
            Some(p) => p.clone(),
            None => return,
        }
    } else {
        match written_profile(&mut b) {
            Some(p) => p,
            None => return,
        }
    };
    // A site may lower the profile's limits (never raise them).
    let mut limits = profile.limits.clone();
    let lower = b.u8();
    if lower & 1 != 0 {
        limits.max_registers = limits.max_registers.min(u16::from(b.u8() % 126).max(1));
    }
    if lower & 2 != 0 {
        limits.gap_fill = limits.gap_fill.min(u16::from(b.u8()));
    }
    let mut plan = Plan::with_limits(&profile, &limits);
    let mut image = RegisterImage::new();
    let mut index = 0;
    let mut answers = 0;
    while index < plan.len() && answers < 512 {
        answers += 1;
        let Some(block) = plan.blocks().get(index).cloned() else {
            break;
        };
        let _ = (block.function_code(), block.end());
        let how = b.u8();
        if how & 0xc0 == 0xc0 {
            // Exception 2: split and read the halves, as the bus does.
            if plan.split(index).is_ok() {
                continue;
            }
            index += 1;
            continue;
        }
        // Mostly the asked count; sometimes short or long.
        let count = match how & 0x30 {
            0x10 => usize::from(block.count).saturating_sub(usize::from(how & 0x0f)),
            0x20 => usize::from(block.count) + usize::from(how & 0x0f),
            _ => usize::from(block.count),
        };
        if block.table.is_bits() {
            let bits: Vec<bool> = (0..count).map(|i| b.u8() >> (i % 8) & 1 == 1).collect();
            image.set_bits(block.table, block.address, &bits);
        } else {
            let words: Vec<u16> = (0..count).map(|_| b.u16()).collect();
            image.set_words(block.table, block.address, &words);
        }
        index += 1;
    }
    let device = Device::new(
        "fuzz".into(),
        1,
        Arc::new(profile.clone()),
        Duration::from_secs(1),
    );
    for r in device.readings(&image) {
        let _ = r.value;
    }
    let _ = profile.decode(&image);
    // The word codec on its own, every type and order over what is left.
    let rest: Vec<u16> =
        b.0.chunks(2)
            .map(|c| u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)]))
            .collect();
    for t in [
        DataType::Bool,
        DataType::U16,
        DataType::I16,
        DataType::U32,
        DataType::I32,
        DataType::U64,
        DataType::I64,
        DataType::F32,
        DataType::F64,
        DataType::String,
    ] {
        for o in [Order::Abcd, Order::Cdab, Order::Badc, Order::Dcba] {
            let _ = decode_words(&rest, t, o);
        }
    }
}
