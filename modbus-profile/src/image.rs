//! A sparse register image: what was read from a device (agent side) or what
//! a simulated device holds (simulator side).

use std::collections::BTreeMap;

use crate::types::Table;

/// Registers and bits by table and 0-based address. Absent entries were not
/// read (or the device refused them), and points over them decode as unknown.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RegisterImage {
    words: BTreeMap<(Table, u16), u16>,
    bits: BTreeMap<(Table, u16), bool>,
}

impl RegisterImage {
    pub fn new() -> Self {
        Self::default()
    }

    /// Stores registers read from `table` starting at `address`.
    pub fn set_words(&mut self, table: Table, address: u16, words: &[u16]) {
        for (i, w) in words.iter().enumerate() {
            if let Some(a) = u16::try_from(i).ok().and_then(|i| address.checked_add(i)) {
                self.words.insert((table, a), *w);
            }
        }
    }

    /// Stores bits read from `table` starting at `address`.
    pub fn set_bits(&mut self, table: Table, address: u16, bits: &[bool]) {
        for (i, b) in bits.iter().enumerate() {
            if let Some(a) = u16::try_from(i).ok().and_then(|i| address.checked_add(i)) {
                self.bits.insert((table, a), *b);
            }
        }
    }

    pub fn word(&self, table: Table, address: u16) -> Option<u16> {
        self.words.get(&(table, address)).copied()
    }

    pub fn bit(&self, table: Table, address: u16) -> Option<bool> {
        self.bits.get(&(table, address)).copied()
    }

    /// `count` registers from `address`, or `None` if any is missing.
    pub fn words(&self, table: Table, address: u16, count: u16) -> Option<Vec<u16>> {
        (0..count)
            .map(|i| address.checked_add(i).and_then(|a| self.word(table, a)))
            .collect()
    }

    /// `count` registers from `address`, zero where the image has none: what a
    /// simulated device answers for unmapped addresses inside a read.
    pub fn words_or_zero(&self, table: Table, address: u16, count: u16) -> Vec<u16> {
        (0..count)
            .map(|i| {
                address
                    .checked_add(i)
                    .and_then(|a| self.word(table, a))
                    .unwrap_or(0)
            })
            .collect()
    }

    /// `count` bits from `address`, false where the image has none.
    pub fn bits_or_zero(&self, table: Table, address: u16, count: u16) -> Vec<bool> {
        (0..count)
            .map(|i| {
                address
                    .checked_add(i)
                    .and_then(|a| self.bit(table, a))
                    .unwrap_or(false)
            })
            .collect()
    }

    /// Whether any register or bit of the range is in the image: a simulated
    /// device answers exception 2 (illegal data address) for a read that
    /// touches nothing it maps.
    pub fn maps_any(&self, table: Table, address: u16, count: u16) -> bool {
        let end = u32::from(address) + u32::from(count);
        let hit_words = self
            .words
            .range((table, address)..)
            .next()
            .is_some_and(|((t, a), _)| *t == table && u32::from(*a) < end);
        let hit_bits = self
            .bits
            .range((table, address)..)
            .next()
            .is_some_and(|((t, a), _)| *t == table && u32::from(*a) < end);
        hit_words || hit_bits
    }

    /// Every mapped register, for dumping an image to a peer (pymodbus) or a file.
    pub fn all_words(&self) -> impl Iterator<Item = (Table, u16, u16)> + '_ {
        self.words.iter().map(|((t, a), w)| (*t, *a, *w))
    }

    /// Every mapped bit.
    pub fn all_bits(&self) -> impl Iterator<Item = (Table, u16, bool)> + '_ {
        self.bits.iter().map(|((t, a), b)| (*t, *a, *b))
    }
}
