//! Registers <-> raw values: word and byte order, integer widths, floats and
//! strings. Engineering units are [`crate::decode`]'s and [`crate::encode`]'s job.

use crate::types::{DataType, Order};

/// A value as the device holds it, before scaling.
#[derive(Debug, Clone, PartialEq)]
pub enum Raw {
    Unsigned(u64),
    Signed(i64),
    Float(f64),
    Text(String),
}

impl Raw {
    /// The value as a plain integer, for sentinels, enums and flags.
    pub fn as_i64(&self) -> Option<i64> {
        match self {
            Raw::Unsigned(u) => i64::try_from(*u).ok(),
            Raw::Signed(i) => Some(*i),
            _ => None,
        }
    }
}

/// The bytes of the value, most significant first, from registers in the
/// given order.
fn to_be_bytes(words: &[u16], order: Order, words_matter: bool) -> Vec<u8> {
    let mut ws: Vec<u16> = words.to_vec();
    if words_matter && order.words_swapped() {
        ws.reverse();
    }
    let mut bytes = Vec::with_capacity(ws.len() * 2);
    for w in ws {
        let [hi, lo] = w.to_be_bytes();
        if order.bytes_swapped() {
            bytes.extend([lo, hi]);
        } else {
            bytes.extend([hi, lo]);
        }
    }
    bytes
}

/// The inverse of [`to_be_bytes`]: both swaps are their own inverse.
fn from_be_bytes(bytes: &[u8], order: Order, words_matter: bool) -> Vec<u16> {
    let mut ws: Vec<u16> = bytes
        .chunks(2)
        .map(|c| {
            let (a, b) = (c[0], c.get(1).copied().unwrap_or(0));
            if order.bytes_swapped() {
                u16::from_be_bytes([b, a])
            } else {
                u16::from_be_bytes([a, b])
            }
        })
        .collect();
    if words_matter && order.words_swapped() {
        ws.reverse();
    }
    ws
}

fn be_u64(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0u64, |acc, b| (acc << 8) | u64::from(*b))
}

/// Reads a raw value from exactly the point's registers.
pub fn decode_words(words: &[u16], data_type: DataType, order: Order) -> Raw {
    if data_type == DataType::String {
        // Word order does not apply to text: characters run from the first
        // register on; only the byte order within a register varies.
        let bytes = to_be_bytes(words, order, false);
        let text: String = bytes
            .iter()
            .map(|b| char::from(*b))
            .collect::<String>()
            .trim_matches(|c: char| c == '\0' || c.is_whitespace())
            .to_owned();
        return Raw::Text(text);
    }
    let bytes = to_be_bytes(words, order, true);
    let bits = be_u64(&bytes);
    match data_type {
        DataType::Bool => Raw::Unsigned(u64::from(bits != 0)),
        DataType::U16 | DataType::U32 | DataType::U64 => Raw::Unsigned(bits),
        DataType::I16 => Raw::Signed(i64::from(bits as u16 as i16)),
        DataType::I32 => Raw::Signed(i64::from(bits as u32 as i32)),
        DataType::I64 => Raw::Signed(bits as i64),
        DataType::F32 => Raw::Float(f64::from(f32::from_bits(bits as u32))),
        DataType::F64 => Raw::Float(f64::from_bits(bits)),
        DataType::String => Raw::Text(String::new()),
    }
}

/// Writes a raw value into `width` registers; `None` when it does not fit
/// the type.
pub fn encode_words(raw: &Raw, data_type: DataType, order: Order, width: u16) -> Option<Vec<u16>> {
    let n = usize::from(width);
    if let Raw::Text(text) = raw {
        if data_type != DataType::String {
            return None;
        }
        let mut bytes: Vec<u8> = text.bytes().filter(u8::is_ascii).take(n * 2).collect();
        bytes.resize(n * 2, b' ');
        return Some(from_be_bytes(&bytes, order, false));
    }
    let bits: u64 = match (data_type, raw) {
        (DataType::Bool, r) => u64::from(r.as_i64()? != 0),
        (DataType::U16, r) => u64::from(u16::try_from(r.as_i64()?).ok()?),
        (DataType::U32, r) => u64::from(u32::try_from(r.as_i64()?).ok()?),
        (DataType::U64, Raw::Unsigned(u)) => *u,
        (DataType::U64, r) => u64::try_from(r.as_i64()?).ok()?,
        (DataType::I16, r) => u64::from(i16::try_from(r.as_i64()?).ok()? as u16),
        (DataType::I32, r) => u64::from(i32::try_from(r.as_i64()?).ok()? as u32),
        (DataType::I64, r) => r.as_i64()? as u64,
        (DataType::F32, Raw::Float(f)) => u64::from((*f as f32).to_bits()),
        (DataType::F64, Raw::Float(f)) => f.to_bits(),
        _ => return None,
    };
    let all = bits.to_be_bytes();
    let bytes = &all[8 - n * 2..];
    Some(from_be_bytes(bytes, order, true))
}

#[cfg(test)]
mod tests {
    use super::*;

    // 0x1234_5678 as it arrives in each order (Telegraf's examples use the same).
    const ORDERS: [(Order, [u16; 2]); 4] = [
        (Order::Abcd, [0x1234, 0x5678]),
        (Order::Cdab, [0x5678, 0x1234]),
        (Order::Badc, [0x3412, 0x7856]),
        (Order::Dcba, [0x7856, 0x3412]),
    ];

    #[test]
    fn u32_reads_in_every_order() {
        for (order, words) in ORDERS {
            assert_eq!(
                decode_words(&words, DataType::U32, order),
                Raw::Unsigned(0x1234_5678),
                "{order:?}"
            );
            assert_eq!(
                encode_words(&Raw::Unsigned(0x1234_5678), DataType::U32, order, 2),
                Some(words.to_vec())
            );
        }
    }

    #[test]
    fn u64_and_f64_swap_four_words() {
        let words = [0x0102, 0x0304, 0x0506, 0x0708];
        assert_eq!(
            decode_words(&words, DataType::U64, Order::Abcd),
            Raw::Unsigned(0x0102_0304_0506_0708)
        );
        assert_eq!(
            decode_words(&words, DataType::U64, Order::Cdab),
            Raw::Unsigned(0x0708_0506_0304_0102)
        );
        assert_eq!(
            decode_words(&words, DataType::U64, Order::Dcba),
            Raw::Unsigned(0x0807_0605_0403_0201)
        );
        let pi = std::f64::consts::PI.to_bits();
        let w: Vec<u16> = (0..4).map(|i| (pi >> (48 - 16 * i)) as u16).collect();
        assert_eq!(
            decode_words(&w, DataType::F64, Order::Abcd),
            Raw::Float(std::f64::consts::PI)
        );
    }

    #[test]
    fn signed_types_are_twos_complement() {
        assert_eq!(
            decode_words(&[0xFFFF], DataType::I16, Order::Abcd),
            Raw::Signed(-1)
        );
        assert_eq!(
            decode_words(&[0xFF85], DataType::I16, Order::Abcd),
            Raw::Signed(-123)
        );
        assert_eq!(
            decode_words(&[0xFFFF, 0xFFFE], DataType::I32, Order::Abcd),
            Raw::Signed(-2)
        );
        assert_eq!(
            decode_words(&[0xFFFE, 0xFFFF], DataType::I32, Order::Cdab),
            Raw::Signed(-2)
        );
        assert_eq!(
            decode_words(
                &[0xFFFF, 0xFFFF, 0xFFFF, 0xFFF6],
                DataType::I64,
                Order::Abcd
            ),
            Raw::Signed(-10)
        );
        assert_eq!(
            encode_words(&Raw::Signed(-123), DataType::I16, Order::Abcd, 1),
            Some(vec![0xFF85])
        );
    }

    #[test]
    fn u16_byte_swap() {
        assert_eq!(
            decode_words(&[0x3412], DataType::U16, Order::Badc),
            Raw::Unsigned(0x1234)
        );
        assert_eq!(
            decode_words(&[0x3412], DataType::U16, Order::Cdab),
            Raw::Unsigned(0x3412)
        );
    }

    #[test]
    fn f32_reads_ieee754() {
        // 23.5 = 0x41BC0000
        assert_eq!(
            decode_words(&[0x41BC, 0x0000], DataType::F32, Order::Abcd),
            Raw::Float(23.5)
        );
        assert_eq!(
            decode_words(&[0x0000, 0x41BC], DataType::F32, Order::Cdab),
            Raw::Float(23.5)
        );
        assert_eq!(
            decode_words(&[0xBC41, 0x0000], DataType::F32, Order::Badc),
            Raw::Float(23.5)
        );
    }

    #[test]
    fn strings_trim_nul_and_spaces_and_swap_bytes() {
        // "SMT1500 " high byte first, as APC sends it.
        let words = [0x534D, 0x5431, 0x3530, 0x3020, 0x0000];
        assert_eq!(
            decode_words(&words, DataType::String, Order::Abcd),
            Raw::Text("SMT1500".into())
        );
        // Socomec sends the low byte first.
        let words = [0x4241, 0x4443];
        assert_eq!(
            decode_words(&words, DataType::String, Order::Badc),
            Raw::Text("ABCD".into())
        );
        assert_eq!(
            encode_words(&Raw::Text("ABCD".into()), DataType::String, Order::Badc, 2),
            Some(words.to_vec())
        );
    }

    #[test]
    fn out_of_range_values_do_not_encode() {
        assert_eq!(
            encode_words(&Raw::Signed(70_000), DataType::U16, Order::Abcd, 1),
            None
        );
        assert_eq!(
            encode_words(&Raw::Signed(-1), DataType::U32, Order::Abcd, 2),
            None
        );
        assert_eq!(
            encode_words(&Raw::Signed(40_000), DataType::I16, Order::Abcd, 1),
            None
        );
    }
}
