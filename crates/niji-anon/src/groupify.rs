//! Equivalence classes of a lattice node: bit-packed keys, an open-addressing hash table
//! reused from node to node, and roll-up from a finer node's classes.
//!
//! A class key packs the label id of every quasi-identifier into one integer (`u64`, or `u128`
//! when the attributes need more than 64 bits), each attribute in a fixed bit field wide
//! enough for its original values. Rolling a finer node's classes up to a coarser node maps
//! each field through the hierarchy (`label at level a -> label at level b`) and merges the
//! classes whose new keys are equal: the work is proportional to the finer node's number of
//! classes, not to the number of records (ARX's "rollup" and snapshot optimisation).
//!
//! Invariants: a [`Grouper`] never holds more than half its slots (it is sized from an upper
//! bound of the classes to come); class ids are dense, in order of first appearance; counts
//! are exact; rolling up from any finer node gives the same classes (as a set of
//! `(key, count)`) as grouping the records directly.

use std::fmt::Debug;

/// An integer key holding one bit field per quasi-identifier.
pub trait PackedKey: Copy + Eq + Default + Debug + Send + Sync + 'static {
    /// Bits available.
    const BITS: u32;
    /// `value << shift`.
    fn field_value(value: u32, shift: u32) -> Self;
    /// The field at `shift`, `bits` wide.
    fn field(self, shift: u32, bits: u32) -> u32;
    /// Bitwise and.
    fn and(self, other: Self) -> Self;
    /// Bitwise or.
    fn or(self, other: Self) -> Self;
    /// A mask with ones in the field at `shift`, `bits` wide.
    fn mask(shift: u32, bits: u32) -> Self;
    /// A well-mixed hash.
    fn hash(self) -> usize;
}

/// Implements [`PackedKey`] for an unsigned integer type; `$hash` is the body of `hash`,
/// with the key bound to `$key`.
macro_rules! packed_key {
    ($t:ty, |$key:ident| $hash:expr) => {
        impl PackedKey for $t {
            const BITS: u32 = <$t>::BITS;
            #[inline]
            fn field_value(value: u32, shift: u32) -> Self {
                (value as $t) << shift
            }
            #[inline]
            fn field(self, shift: u32, bits: u32) -> u32 {
                let one: $t = 1;
                ((self >> shift) & ((one << bits) - 1)) as u32
            }
            #[inline]
            fn and(self, other: Self) -> Self {
                self & other
            }
            #[inline]
            fn or(self, other: Self) -> Self {
                self | other
            }
            fn mask(shift: u32, bits: u32) -> Self {
                let one: $t = 1;
                ((one << bits) - 1) << shift
            }
            #[inline]
            fn hash(self) -> usize {
                let $key = self;
                $hash
            }
        }
    };
}

packed_key!(u64, |key| {
    let h = key.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    (h ^ (h >> 29)) as usize
});
packed_key!(u128, |key| ((key as u64) ^ ((key >> 64) as u64).rotate_left(31)).hash());

/// Where each attribute's field sits in a key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyLayout {
    pub shifts: Vec<u32>,
    pub bits: Vec<u32>,
    pub total_bits: u32,
}

impl KeyLayout {
    /// A layout for attributes with the given numbers of original values.
    pub fn new(cardinalities: &[usize]) -> KeyLayout {
        let mut shifts = Vec::new();
        let mut bits = Vec::new();
        let mut total = 0;
        for &c in cardinalities {
            let b = (usize::BITS - c.saturating_sub(1).leading_zeros()).max(1);
            shifts.push(total);
            bits.push(b);
            total += b;
        }
        KeyLayout { shifts, bits, total_bits: total }
    }
}

/// Groups keys into classes with counts; reused across nodes to avoid allocation.
#[derive(Debug, Default)]
pub struct Grouper<K> {
    slots: Vec<u32>,
    mask: usize,
    pub keys: Vec<K>,
    pub counts: Vec<u32>,
}

impl<K: PackedKey> Grouper<K> {
    /// Starts a new grouping of at most `upper_bound` classes.
    pub fn begin(&mut self, upper_bound: usize) {
        let cap = (upper_bound * 2).next_power_of_two().max(16);
        if self.slots.len() < cap {
            self.slots.resize(cap, 0);
        }
        self.slots[..cap].fill(0);
        self.mask = cap - 1;
        self.keys.clear();
        self.counts.clear();
    }

    /// Adds `count` records with `key`; returns the class id.
    #[inline]
    pub fn add(&mut self, key: K, count: u32) -> u32 {
        let mut i = key.hash() & self.mask;
        loop {
            let slot = self.slots[i];
            if slot == 0 {
                self.keys.push(key);
                self.counts.push(count);
                let id = self.keys.len() as u32;
                self.slots[i] = id;
                return id - 1;
            }
            let id = (slot - 1) as usize;
            if self.keys[id] == key {
                self.counts[id] += count;
                return id as u32;
            }
            i = (i + 1) & self.mask;
        }
    }

    /// Number of classes so far.
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    /// Whether no class was added.
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }
}

/// A precomputed way to map keys from one node's levels to a coarser node's levels.
#[derive(Debug, Default)]
pub struct RollupPlan<K> {
    keep: K,
    /// Per changed attribute: (shift, bits, offset of its label table in `tables`).
    changed: Vec<(u32, u32, usize)>,
    /// The label tables of the changed attributes, one after the other (source label ->
    /// target label), copied so that mapping a key reads one flat, small array.
    tables: Vec<u32>,
    /// An upper bound of the target node's classes: the product of its attributes' numbers
    /// of labels (so coarse nodes get a small, cache-resident hash table).
    bound: usize,
}

/// Per attribute, the tables `up[from][to][label] -> label`.
pub type UpTables = Vec<Vec<Vec<Vec<u32>>>>;

/// The product of the numbers of labels of each attribute at `levels` (saturating): no node
/// has more classes.
pub fn target_classes_bound(up: &UpTables, levels: &[u32]) -> usize {
    // `up[i][l][l]` is the identity table of level `l`: one entry per label.
    up.iter().zip(levels).fold(1usize, |acc, (u, &l)| acc.saturating_mul(u[l as usize][l as usize].len()))
}

impl<K: PackedKey> RollupPlan<K> {
    /// Prepares the mapping `from -> to` (`from <= to` in every attribute).
    pub fn prepare(&mut self, layout: &KeyLayout, up: &UpTables, from: &[u32], to: &[u32]) {
        self.keep = K::default();
        self.changed.clear();
        self.tables.clear();
        self.bound = target_classes_bound(up, to);
        for i in 0..from.len() {
            debug_assert!(from[i] <= to[i]);
            if from[i] == to[i] {
                self.keep = self.keep.or(K::mask(layout.shifts[i], layout.bits[i]));
            } else {
                self.changed.push((layout.shifts[i], layout.bits[i], self.tables.len()));
                self.tables.extend_from_slice(&up[i][from[i] as usize][to[i] as usize]);
            }
        }
    }

    /// The key at the target node of a key at the source node.
    #[inline]
    pub fn map(&self, key: K) -> K {
        let mut out = key.and(self.keep);
        for &(shift, bits, offset) in &self.changed {
            let label = key.field(shift, bits);
            out = out.or(K::field_value(self.tables[offset + label as usize], shift));
        }
        out
    }

    /// Rolls `keys`/`counts` up into `grouper` (which is restarted); when `class_map` is
    /// given it receives, for each source class, its target class.
    pub fn rollup(&self, keys: &[K], counts: &[u32], grouper: &mut Grouper<K>, class_map: Option<&mut Vec<u32>>) {
        let complete = self.rollup_at_most(keys, counts, grouper, class_map, usize::MAX);
        debug_assert!(complete);
    }

    /// [`RollupPlan::rollup`], abandoned (returning `false`, the grouper then holding part of
    /// the classes) as soon as the target has more than `limit` classes.
    pub fn rollup_at_most(&self, keys: &[K], counts: &[u32], grouper: &mut Grouper<K>, class_map: Option<&mut Vec<u32>>, limit: usize) -> bool {
        grouper.begin(keys.len().min(self.bound));
        // Check the limit once per chunk: the grouper may pass it by at most a chunk.
        const CHUNK: usize = 4096;
        match class_map {
            Some(map) => {
                map.clear();
                for (keys, counts) in keys.chunks(CHUNK).zip(counts.chunks(CHUNK)) {
                    for (&k, &c) in keys.iter().zip(counts) {
                        map.push(grouper.add(self.map(k), c));
                    }
                    if grouper.len() > limit {
                        return false;
                    }
                }
            }
            None => {
                for (keys, counts) in keys.chunks(CHUNK).zip(counts.chunks(CHUNK)) {
                    for (&k, &c) in keys.iter().zip(counts) {
                        grouper.add(self.map(k), c);
                    }
                    if grouper.len() > limit {
                        return false;
                    }
                }
            }
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layout_packs_fields() {
        let layout = KeyLayout::new(&[74, 2, 1, 41]);
        assert_eq!(layout.bits, [7, 1, 1, 6]);
        assert_eq!(layout.shifts, [0, 7, 8, 9]);
        let key = u64::field_value(73, 0) | u64::field_value(1, 7) | u64::field_value(40, 9);
        assert_eq!(key.field(0, 7), 73);
        assert_eq!(key.field(7, 1), 1);
        assert_eq!(key.field(9, 6), 40);
        let wide: u128 = u128::field_value(5, 100);
        assert_eq!(wide.field(100, 3), 5);
    }

    #[test]
    fn grouper_counts_and_restarts() {
        let mut g = Grouper::<u64>::default();
        g.begin(3);
        assert_eq!(g.add(7, 1), 0);
        assert_eq!(g.add(9, 2), 1);
        assert_eq!(g.add(7, 3), 0);
        assert_eq!((g.keys.clone(), g.counts.clone()), (vec![7, 9], vec![4, 2]));
        g.begin(100);
        assert!(g.is_empty());
        for k in 0..100u64 {
            g.add(k * 1024, 1);
        }
        assert_eq!(g.len(), 100);
    }
}
