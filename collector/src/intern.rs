//! String interning: every site, host, source, device, sensor name, quantity and
//! label is stored once and referred to by a 4-byte id.
//!
//! Those strings are highly repetitive (a million series share a few thousand host
//! names and a few hundred sensor names), so a series key of small ids is what keeps
//! the state within its memory budget (see `series.rs`).
//!
//! The tables only grow: a string that no series uses any more stays. Their size is
//! bounded by the cardinality of names ever seen, which is far below the series
//! count; reclaiming them would need reference counts on the hot path.

use std::{
    collections::HashMap,
    hash::{BuildHasherDefault, Hasher},
    sync::Arc,
};

/// An interned string.
pub type Id = u32;

/// The id of the empty string and of the empty label set: always present.
pub const EMPTY: Id = 0;

/// A fast hasher for keys made of small integer ids (FxHash's multiply-rotate).
///
/// Only for keys built from ids the collector assigns itself; strings from the
/// wire go through the standard SipHash map, which resists hash flooding.
#[derive(Debug, Default, Clone, Copy)]
pub struct IdHasher(u64);

const SEED: u64 = 0x51_7c_c1_b7_27_22_0a_95;

impl IdHasher {
    #[inline]
    fn add(&mut self, word: u64) {
        self.0 = (self.0.rotate_left(5) ^ word).wrapping_mul(SEED);
    }
}

impl Hasher for IdHasher {
    #[inline]
    fn finish(&self) -> u64 {
        // hashbrown takes its control bits from the top 7 bits: fold the well mixed
        // high half down so that they vary with every word.
        self.0 ^ (self.0 >> 29)
    }

    #[inline]
    fn write(&mut self, bytes: &[u8]) {
        for chunk in bytes.chunks(8) {
            let mut word = [0u8; 8];
            word[..chunk.len()].copy_from_slice(chunk);
            self.add(u64::from_le_bytes(word));
        }
    }

    #[inline]
    fn write_u8(&mut self, i: u8) {
        self.add(u64::from(i));
    }

    #[inline]
    fn write_u32(&mut self, i: u32) {
        self.add(u64::from(i));
    }

    #[inline]
    fn write_u64(&mut self, i: u64) {
        self.add(i);
    }

    #[inline]
    fn write_usize(&mut self, i: usize) {
        self.add(i as u64);
    }
}

/// `HashMap` keyed by ids, with [`IdHasher`].
pub type IdMap<K, V> = HashMap<K, V, BuildHasherDefault<IdHasher>>;

/// A string table: string <-> [`Id`].
#[derive(Debug)]
pub struct Interner {
    ids: HashMap<Arc<str>, Id>,
    strings: Vec<Arc<str>>,
}

impl Default for Interner {
    fn default() -> Self {
        let mut interner = Interner {
            ids: HashMap::new(),
            strings: Vec::new(),
        };
        interner.intern("");
        interner
    }
}

impl Interner {
    /// The id of `s`, adding it when new.
    pub fn intern(&mut self, s: &str) -> Id {
        if let Some(&id) = self.ids.get(s) {
            return id;
        }
        // More than 4 billion distinct strings cannot happen within the memory this
        // process can have; saturating keeps the arithmetic total anyway.
        let id = Id::try_from(self.strings.len()).unwrap_or(Id::MAX);
        let s: Arc<str> = Arc::from(s);
        self.strings.push(Arc::clone(&s));
        self.ids.insert(s, id);
        id
    }

    /// The id of `s` if it was interned.
    pub fn get(&self, s: &str) -> Option<Id> {
        self.ids.get(s).copied()
    }

    /// The string of an id; the empty string for an id never handed out.
    pub fn resolve(&self, id: Id) -> &str {
        self.strings.get(id as usize).map_or("", |s| s)
    }

    /// The shared string of an id.
    pub fn resolve_arc(&self, id: Id) -> Option<&Arc<str>> {
        self.strings.get(id as usize)
    }

    /// How many strings are stored.
    pub fn len(&self) -> usize {
        self.strings.len()
    }

    /// Whether only the empty string is stored.
    pub fn is_empty(&self) -> bool {
        self.strings.len() <= 1
    }
}

/// A reading's extra labels as `(key, value)` ids, sorted by key string.
pub type LabelPairs = Box<[(Id, Id)]>;

/// A table of label sets: a device's labels (`model`, `serial`) repeat on each of
/// its readings, so a whole set is one [`Id`] in the series key.
#[derive(Debug)]
pub struct LabelSets {
    ids: HashMap<LabelPairs, Id, BuildHasherDefault<IdHasher>>,
    sets: Vec<LabelPairs>,
}

impl Default for LabelSets {
    fn default() -> Self {
        let empty: LabelPairs = Box::new([]);
        let mut ids = HashMap::default();
        ids.insert(empty.clone(), EMPTY);
        LabelSets {
            ids,
            sets: vec![empty],
        }
    }
}

impl LabelSets {
    /// The id of a label set given as id pairs in key order.
    pub fn intern(&mut self, pairs: &[(Id, Id)]) -> Id {
        if pairs.is_empty() {
            return EMPTY;
        }
        if let Some(&id) = self.ids.get(pairs) {
            return id;
        }
        let id = Id::try_from(self.sets.len()).unwrap_or(Id::MAX);
        let pairs: LabelPairs = pairs.into();
        self.sets.push(pairs.clone());
        self.ids.insert(pairs, id);
        id
    }

    /// The pairs of a label set; empty for an id never handed out.
    pub fn resolve(&self, id: Id) -> &[(Id, Id)] {
        self.sets.get(id as usize).map_or(&[], |p| p)
    }

    /// How many distinct label sets are stored, the empty one included.
    pub fn len(&self) -> usize {
        self.sets.len()
    }

    /// Whether only the empty set is stored.
    pub fn is_empty(&self) -> bool {
        self.sets.len() <= 1
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interning_the_same_string_twice_gives_the_same_id() {
        let mut i = Interner::default();
        let a = i.intern("web-01");
        let b = i.intern("web-02");
        assert_ne!(a, b);
        assert_eq!(i.intern("web-01"), a);
        assert_eq!(i.resolve(a), "web-01");
        assert_eq!(i.resolve(b), "web-02");
        assert_eq!(i.get("web-02"), Some(b));
        assert_eq!(i.get("nope"), None);
        // The empty string is always id 0; 3 strings in all.
        assert_eq!(i.intern(""), EMPTY);
        assert_eq!(i.len(), 3);
        assert_eq!(i.resolve(12345), "");
    }

    #[test]
    fn label_sets_are_shared_and_the_empty_set_is_zero() {
        let mut l = LabelSets::default();
        assert_eq!(l.intern(&[]), EMPTY);
        let a = l.intern(&[(1, 2), (3, 4)]);
        assert_ne!(a, EMPTY);
        assert_eq!(l.intern(&[(1, 2), (3, 4)]), a);
        assert_ne!(l.intern(&[(1, 2)]), a);
        assert_eq!(l.resolve(a), &[(1, 2), (3, 4)]);
        assert_eq!(l.resolve(999), &[]);
        assert_eq!(l.len(), 3);
    }

    #[test]
    fn id_hasher_spreads_consecutive_ids() {
        use std::hash::{BuildHasher, BuildHasherDefault};
        let b = BuildHasherDefault::<IdHasher>::default();
        let top: std::collections::HashSet<u64> =
            (0u32..64).map(|i| b.hash_one((i, 7u32)) >> 57).collect();
        // The 7 control bits hashbrown uses must not collapse to a few values.
        assert!(top.len() > 20, "{}", top.len());
    }
}
