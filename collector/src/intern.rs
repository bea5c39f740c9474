//! String interning: every site, host, source, device, sensor name, quantity and
//! label is stored once and referred to by a 4-byte id.
//!
//! Those strings are highly repetitive (a million series share a few thousand host
//! names and a few hundred sensor names), so a series key of small ids is what keeps
//! the state within its memory budget (see `series.rs`).
//!
//! Nothing is reference-counted on the hot path: the state sweeps the tables
//! ([`Interner::sweep`], [`LabelSets::sweep`]) after pruning expired series, when
//! they have grown well past what was live at the last sweep, so that a flood of
//! one-off names gives its memory back once its series are gone. A swept id is
//! reused by the next new string.

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
    /// What [`Interner::resolve_shared`] gives for an unknown id: the string
    /// of [`EMPTY`] (the same allocation).
    empty: Arc<str>,
    /// `None`: swept, its id free for reuse.
    strings: Vec<Option<Arc<str>>>,
    free: Vec<Id>,
}

impl Default for Interner {
    fn default() -> Self {
        let mut interner = Interner {
            ids: HashMap::new(),
            empty: Arc::from(""),
            strings: Vec::new(),
            free: Vec::new(),
        };
        interner.intern("");
        if let Some(Some(empty)) = interner.strings.get(EMPTY as usize) {
            interner.empty = Arc::clone(empty);
        }
        interner
    }
}

impl Interner {
    /// The id of `s`, adding it when new.
    pub fn intern(&mut self, s: &str) -> Id {
        if let Some(&id) = self.ids.get(s) {
            return id;
        }
        let s: Arc<str> = Arc::from(s);
        let id = match self.free.pop() {
            Some(id) => {
                if let Some(slot) = self.strings.get_mut(id as usize) {
                    *slot = Some(Arc::clone(&s));
                }
                id
            }
            None => {
                // More than 4 billion distinct strings cannot happen within the
                // memory this process can have; saturating keeps the arithmetic
                // total anyway.
                let id = Id::try_from(self.strings.len()).unwrap_or(Id::MAX);
                self.strings.push(Some(Arc::clone(&s)));
                id
            }
        };
        self.ids.insert(s, id);
        id
    }

    /// The id of `s` if it was interned.
    pub fn get(&self, s: &str) -> Option<Id> {
        self.ids.get(s).copied()
    }

    /// The string of an id; the empty string for an id never handed out.
    pub fn resolve(&self, id: Id) -> &str {
        self.strings
            .get(id as usize)
            .and_then(Option::as_deref)
            .unwrap_or("")
    }

    /// The shared string of an id (what the signals snapshot holds: a copy
    /// is a counter increment, not an allocation); the empty string for an id
    /// never handed out.
    pub fn resolve_shared(&self, id: Id) -> &Arc<str> {
        self.strings
            .get(id as usize)
            .and_then(Option::as_ref)
            .unwrap_or(&self.empty)
    }

    /// How many strings are stored.
    pub fn len(&self) -> usize {
        self.ids.len()
    }

    /// Whether only the empty string is stored.
    pub fn is_empty(&self) -> bool {
        self.ids.len() <= 1
    }

    /// The size of the id space (the highest id + 1), for marking live ids.
    pub fn capacity(&self) -> usize {
        self.strings.len()
    }

    /// Drops every string whose id is not marked in `live` (indexed by id; the
    /// empty string always stays). Returns how many were dropped.
    pub fn sweep(&mut self, live: &[bool]) -> usize {
        let mut dropped = 0;
        for (i, slot) in self.strings.iter_mut().enumerate().skip(1) {
            if slot.is_some() && !live.get(i).copied().unwrap_or(false) {
                if let Some(s) = slot.take() {
                    self.ids.remove(&s);
                }
                self.free.push(Id::try_from(i).unwrap_or(Id::MAX));
                dropped += 1;
            }
        }
        // Trailing free ids give their slots back altogether.
        while matches!(self.strings.last(), Some(None)) {
            self.strings.pop();
        }
        let len = self.strings.len();
        self.free.retain(|id| (*id as usize) < len);
        self.ids.shrink_to_fit();
        self.strings.shrink_to_fit();
        self.free.shrink_to_fit();
        dropped
    }
}

/// A reading's extra labels as `(key, value)` ids, sorted by key string.
pub type LabelPairs = Box<[(Id, Id)]>;

/// A table of label sets: a device's labels (`model`, `serial`) repeat on each of
/// its readings, so a whole set is one [`Id`] in the series key.
#[derive(Debug)]
pub struct LabelSets {
    ids: HashMap<LabelPairs, Id, BuildHasherDefault<IdHasher>>,
    /// `None`: swept, its id free for reuse.
    sets: Vec<Option<LabelPairs>>,
    free: Vec<Id>,
}

impl Default for LabelSets {
    fn default() -> Self {
        let empty: LabelPairs = Box::new([]);
        let mut ids = HashMap::default();
        ids.insert(empty.clone(), EMPTY);
        LabelSets {
            ids,
            sets: vec![Some(empty)],
            free: Vec::new(),
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
        let boxed: LabelPairs = pairs.into();
        let id = match self.free.pop() {
            Some(id) => {
                if let Some(slot) = self.sets.get_mut(id as usize) {
                    *slot = Some(boxed.clone());
                }
                id
            }
            None => {
                let id = Id::try_from(self.sets.len()).unwrap_or(Id::MAX);
                self.sets.push(Some(boxed.clone()));
                id
            }
        };
        self.ids.insert(boxed, id);
        id
    }

    /// The pairs of a label set; empty for an id never handed out.
    pub fn resolve(&self, id: Id) -> &[(Id, Id)] {
        self.sets
            .get(id as usize)
            .and_then(Option::as_deref)
            .unwrap_or(&[])
    }

    /// How many distinct label sets are stored, the empty one included.
    pub fn len(&self) -> usize {
        self.ids.len()
    }

    /// Whether only the empty set is stored.
    pub fn is_empty(&self) -> bool {
        self.ids.len() <= 1
    }

    /// The size of the id space, for marking live ids.
    pub fn capacity(&self) -> usize {
        self.sets.len()
    }

    /// Every stored set with its id.
    pub fn iter(&self) -> impl Iterator<Item = (Id, &[(Id, Id)])> {
        self.sets
            .iter()
            .enumerate()
            .filter_map(|(i, s)| Some((Id::try_from(i).ok()?, s.as_deref()?)))
    }

    /// Drops every set whose id is not marked in `live` (the empty set always
    /// stays). Returns how many were dropped.
    pub fn sweep(&mut self, live: &[bool]) -> usize {
        let mut dropped = 0;
        for (i, slot) in self.sets.iter_mut().enumerate().skip(1) {
            if slot.is_some() && !live.get(i).copied().unwrap_or(false) {
                if let Some(s) = slot.take() {
                    self.ids.remove(&s);
                }
                self.free.push(Id::try_from(i).unwrap_or(Id::MAX));
                dropped += 1;
            }
        }
        while matches!(self.sets.last(), Some(None)) {
            self.sets.pop();
        }
        let len = self.sets.len();
        self.free.retain(|id| (*id as usize) < len);
        self.ids.shrink_to_fit();
        self.sets.shrink_to_fit();
        self.free.shrink_to_fit();
        dropped
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
    fn swept_strings_and_sets_are_gone_and_their_ids_reused() {
        let mut i = Interner::default();
        let a = i.intern("keep");
        let b = i.intern("flood-1");
        let c = i.intern("flood-2");
        let mut live = vec![false; i.capacity()];
        live[a as usize] = true;
        assert_eq!(i.sweep(&live), 2);
        assert_eq!(i.len(), 2);
        assert_eq!(i.resolve(a), "keep");
        assert_eq!(i.resolve(b), "");
        assert_eq!(i.get("flood-1"), None);
        // The trailing slots are gone; a new string takes the lowest free id.
        assert!(i.capacity() <= 2);
        let d = i.intern("new");
        assert!(d == b || d == c || d as usize == 2);
        assert_eq!(i.resolve(d), "new");
        assert_eq!(i.intern("keep"), a);

        let mut l = LabelSets::default();
        let s1 = l.intern(&[(1, 2)]);
        let s2 = l.intern(&[(3, 4)]);
        let mut live = vec![false; l.capacity()];
        live[s2 as usize] = true;
        assert_eq!(l.sweep(&live), 1);
        assert_eq!(l.resolve(s1), &[]);
        assert_eq!(l.resolve(s2), &[(3, 4)]);
        assert_eq!(l.intern(&[(3, 4)]), s2);
        assert_eq!(l.intern(&[]), EMPTY);
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
