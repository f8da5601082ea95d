//! The index that finds a unit identical to one coming in, by a 16-byte digest of its content:
//! the largest thing that grows with the units in the intake's first pass, kept in 12 bytes an
//! entry.
//!
//! A digest is held as 80 bits of a randomly seeded hash of it (a 16-bit prefix and a 64-bit
//! rest): two distinct units among 20 million share them with a chance near 10^-10, and since
//! the seed is new each run, no one can make two units share them on purpose (a holder who
//! wanted two identities merged could send one under the other anyway). The entries (the rest
//! and the unit, 12 bytes) are sorted in 8 segments by the prefix's first 3 bits; in a segment,
//! a table of where each of the prefix's other 13 bits' entries begin (8,193 numbers) leads to
//! a few hundred entries at 20 million, searched by halving. The newest entries wait in a small
//! hash table; when it holds a sixteenth of the sorted ones (at least [`RECENT_AT_LEAST`]), its
//! entries are sorted and merged in, one segment at a time into an array of the exact size, so
//! that no more than an eighth of the sorted entries is ever held twice (besides, during a
//! merge, the waiting table, whose room is kept for the next entries, and the waiting entries
//! sorted, 24 bytes each: together about 2 bytes a sorted entry). A segment is one array, so that
//! from about 700,000 entries each is a mapping of its own, given back whole when it is
//! replaced (`niji_intake::map_large_allocations`): smaller arrays, replaced merge after merge
//! by larger ones, leave the heap with holes.
//!
//! The earlier forms of this index were hash tables of 16-byte entries: one that doubled all at
//! once (holding its old and new arrays together, three times its entries' bytes) and then
//! shards that split as they filled; either took 20–40 bytes an entry with the tables' slack
//! (3M persons: 35.6 MB for 1,155,622 units, now 14 MB and the waiting table's).

use std::collections::hash_map::RandomState;
use std::collections::HashMap;
use std::hash::BuildHasher;

/// Fewest entries the waiting table takes before they are merged in (a set of fewer units, such
/// as most files' own, never builds the sorted segments).
const RECENT_AT_LEAST: usize = 16_384;
/// Segments, by the prefix's leading bits.
const SEGMENT_BITS: u32 = 3;
/// Ranges within a segment, by the prefix's other bits.
const RANGE_BITS: u32 = 16 - SEGMENT_BITS;
const RANGES: usize = 1 << RANGE_BITS;

/// Digest → the unit that has it.
pub(crate) struct DigestIndex {
    segments: Vec<Segment>,
    /// Entries not merged into the segments yet, by their key's bytes.
    recent: HashMap<[u8; 10], u32>,
    /// Entries in the segments.
    merged: usize,
    recent_at_least: usize,
    seed: RandomState,
}

/// The entries whose prefix begins with one segment's bits.
#[derive(Default)]
struct Segment {
    /// Per value of the prefix's other bits, where its entries begin in `entries` (one more at
    /// the end: where they all end); empty while the segment has no entries.
    starts: Vec<u32>,
    /// Sorted by rest within each range.
    entries: Vec<Entry>,
}

/// A key's rest (in two halves, so that an entry takes 12 bytes, not 16) and its unit.
#[derive(Clone, Copy)]
struct Entry {
    rest: [u32; 2],
    unit: u32,
}

impl Entry {
    fn new(rest: u64, unit: u32) -> Entry {
        Entry { rest: [(rest >> 32) as u32, rest as u32], unit }
    }

    fn rest(self) -> u64 {
        u64::from(self.rest[0]) << 32 | u64::from(self.rest[1])
    }
}

/// A digest as the index holds it.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
struct Key {
    prefix: u16,
    rest: u64,
}

impl Key {
    fn bytes(self) -> [u8; 10] {
        let mut out = [0u8; 10];
        out[..2].copy_from_slice(&self.prefix.to_be_bytes());
        out[2..].copy_from_slice(&self.rest.to_be_bytes());
        out
    }

    fn from_bytes(bytes: [u8; 10]) -> Key {
        Key { prefix: u16::from_be_bytes([bytes[0], bytes[1]]), rest: u64::from_be_bytes(bytes[2..].try_into().expect("8 bytes")) }
    }

    fn segment(self) -> usize {
        usize::from(self.prefix >> RANGE_BITS)
    }

    fn range(self) -> usize {
        usize::from(self.prefix) & (RANGES - 1)
    }
}

impl Default for DigestIndex {
    fn default() -> Self {
        DigestIndex::with_recent_at_least(RECENT_AT_LEAST)
    }
}

impl DigestIndex {
    fn with_recent_at_least(recent_at_least: usize) -> Self {
        DigestIndex { segments: Vec::new(), recent: HashMap::new(), merged: 0, recent_at_least, seed: RandomState::new() }
    }

    /// An index that holds nothing: what a closed set keeps.
    pub(crate) fn empty() -> Self {
        DigestIndex::default()
    }

    /// The key `digest` is held under: two seeded hashes of it, the first's leading 16 bits and
    /// the second whole.
    fn key(&self, digest: &[u8; 16]) -> Key {
        Key { prefix: (self.seed.hash_one((0u8, digest)) >> 48) as u16, rest: self.seed.hash_one((1u8, digest)) }
    }

    /// The unit with `digest`, if any.
    pub(crate) fn get(&self, digest: &[u8; 16]) -> Option<u32> {
        self.find(self.key(digest))
    }

    fn find(&self, key: Key) -> Option<u32> {
        if let Some(&unit) = self.recent.get(&key.bytes()) {
            return Some(unit);
        }
        let segment = self.segments.get(key.segment())?;
        let r = key.range();
        let (start, end) = (*segment.starts.get(r)? as usize, segment.starts[r + 1] as usize);
        let at = segment.entries[start..end].binary_search_by(|e| e.rest().cmp(&key.rest)).ok()?;
        Some(segment.entries[start + at].unit)
    }

    /// Records `unit` under `digest` unless a unit has it already.
    pub(crate) fn insert_new(&mut self, digest: [u8; 16], unit: u32) {
        let key = self.key(&digest);
        if self.find(key).is_some() {
            return;
        }
        self.recent.insert(key.bytes(), unit);
        if self.recent.len() >= self.recent_at_least.max(self.merged / 16) {
            self.merge_recent();
        }
    }

    /// Merges the waiting entries into the segments, segment by segment: each gets an array of
    /// its new size, filled range by range from its old entries and the new ones (never the
    /// same key: a key is added only when it is in neither), and its old arrays are freed.
    fn merge_recent(&mut self) {
        let mut fresh: Vec<(Key, u32)> = self.recent.drain().map(|(bytes, unit)| (Key::from_bytes(bytes), unit)).collect();
        fresh.sort_unstable_by_key(|&(key, _)| key);
        if self.segments.is_empty() {
            self.segments.resize_with(1 << SEGMENT_BITS, Segment::default);
        }
        let mut rest_of = &fresh[..];
        for (s, segment) in self.segments.iter_mut().enumerate() {
            let split = rest_of.partition_point(|(key, _)| key.segment() == s);
            let (new, later) = rest_of.split_at(split);
            rest_of = later;
            if new.is_empty() {
                continue;
            }
            let old = std::mem::take(segment);
            let size = old.entries.len() + new.len();
            let mut merged = Segment { starts: Vec::with_capacity(RANGES + 1), entries: Vec::with_capacity(size) };
            let mut new = new.iter().peekable();
            for r in 0..RANGES {
                merged.starts.push(merged.entries.len() as u32);
                let old_range = if old.starts.is_empty() { &[][..] } else { &old.entries[old.starts[r] as usize..old.starts[r + 1] as usize] };
                let mut old_entries = old_range.iter().copied().peekable();
                loop {
                    let next_new = new.peek().filter(|(key, _)| key.range() == r).map(|&&(key, unit)| Entry::new(key.rest, unit));
                    let take_new = match (old_entries.peek(), next_new) {
                        (None, None) => break,
                        (Some(_), None) => false,
                        (None, Some(_)) => true,
                        (Some(o), Some(n)) => n.rest() < o.rest(),
                    };
                    let entry = if take_new {
                        new.next();
                        next_new.expect("peeked")
                    } else {
                        old_entries.next().expect("peeked")
                    };
                    merged.entries.push(entry);
                }
            }
            merged.starts.push(merged.entries.len() as u32);
            *segment = merged;
        }
        self.merged += fresh.len();
    }

    /// Digests held.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.merged + self.recent.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use sha2::{Digest, Sha256};

    /// The digest of `i`.
    fn digest(i: u32) -> [u8; 16] {
        Sha256::digest(i.to_le_bytes())[..16].try_into().expect("16 bytes")
    }

    /// Each digest finds the first unit recorded under it (compared with a map of whole
    /// digests), whether it waits in the table or was merged, through many merges.
    fn check(inserts: &[u32], recent_at_least: usize) {
        let mut index = DigestIndex::with_recent_at_least(recent_at_least);
        let mut expected: HashMap<[u8; 16], u32> = HashMap::new();
        for (unit, &i) in inserts.iter().enumerate() {
            index.insert_new(digest(i), unit as u32);
            expected.entry(digest(i)).or_insert(unit as u32);
            assert_eq!(index.get(&digest(i)), expected.get(&digest(i)).copied());
        }
        assert_eq!(index.len(), expected.len());
        for i in 0..=inserts.iter().copied().max().unwrap_or(0) + 10 {
            assert_eq!(index.get(&digest(i)), expected.get(&digest(i)).copied(), "digest of {i}");
        }
        // Every segment's ranges in order and sorted within, together holding what was merged.
        let mut merged = 0;
        for segment in &index.segments {
            if segment.starts.is_empty() {
                continue;
            }
            assert_eq!((segment.starts.len(), *segment.starts.last().unwrap() as usize), (RANGES + 1, segment.entries.len()));
            assert!(segment.starts.windows(2).all(|w| w[0] <= w[1]));
            for r in 0..RANGES {
                let range = &segment.entries[segment.starts[r] as usize..segment.starts[r + 1] as usize];
                assert!(range.windows(2).all(|w| w[0].rest() < w[1].rest()), "range {r} sorted");
            }
            merged += segment.entries.len();
        }
        assert_eq!(merged, index.merged);
    }

    proptest! {
        // Each merge rewrites every range's start (65,536 of them): fewer cases than the default.
        #![proptest_config(ProptestConfig::with_cases(64))]
        #[test]
        fn each_digest_finds_the_first_unit_recorded_under_it(inserts in proptest::collection::vec(0u32..300, 0..600), at_least in 4usize..40) {
            check(&inserts, at_least);
        }
    }

    #[test]
    fn a_large_index_merges_a_sixteenth_at_a_time() {
        // 60,000 digests, each met twice (the second time with another unit), merged first
        // every 500 then every sixteenth of what is merged.
        let inserts: Vec<u32> = (0..60_000).chain(0..60_000).collect();
        check(&inserts, 500);
        let mut index = DigestIndex::with_recent_at_least(500);
        for i in 0..60_000 {
            index.insert_new(digest(i), i);
            assert!(index.recent.len() < 500.max(index.merged / 16));
        }
        assert!(index.merged > 50_000, "{} merged", index.merged);
        // Exact arrays: a segment holds no room beyond its entries.
        assert!(index.segments.iter().all(|s| s.entries.capacity() == s.entries.len()));
        assert_eq!(std::mem::size_of::<Entry>(), 12);
    }

    /// The whole digest counts: digests that differ in any one byte are different entries.
    #[test]
    fn digests_differing_in_one_byte_are_different() {
        let mut index = DigestIndex::with_recent_at_least(4);
        let base = digest(1);
        index.insert_new(base, 0);
        for byte in 0..16 {
            let mut other = base;
            other[byte] ^= 1;
            assert_eq!(index.get(&other), None, "byte {byte}");
            index.insert_new(other, byte as u32 + 1);
        }
        assert_eq!(index.get(&base), Some(0));
        for byte in 0..16 {
            let mut other = base;
            other[byte] ^= 1;
            assert_eq!(index.get(&other), Some(byte as u32 + 1));
        }
        assert_eq!(DigestIndex::empty().get(&base), None);
    }
}
