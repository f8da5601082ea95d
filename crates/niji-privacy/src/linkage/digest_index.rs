//! The index that finds a unit identical to one coming in, by a 16-byte digest of its content:
//! the largest thing the intake's first pass holds. Its first 12 bytes decide (96 bits of
//! SHA-256: two distinct units among 20 million share them with a chance near 10^-15; a holder
//! who wanted two identities merged would have to know both, and could send one under the
//! other anyway), kept with the unit's number in 16 bytes an entry, where the whole digest
//! took 20.
//!
//! One table of millions doubled all at once, holding its old and new arrays together (three
//! times the entries' bytes: at a million units the first pass's peak, and 0.8 GB at 20
//! million). Here the entries are split into shards by the leading bits of a hash of their key
//! (extendible hashing): a shard that holds [`SPLIT_AT`] entries when another comes is split in
//! two by its next bit, so no more than one shard's entries are ever moved at once, and every
//! shard past its first split is large enough (1 MiB or more) to be mapped on its own, given
//! back whole when the index is dropped (hundreds of small tables, freed, left the heap
//! fragmented through the intake's later phases). That hash, and the tables', is the standard
//! randomly seeded one, so that units made to share leading bits or a bucket cannot make an
//! intake slower or larger.

use std::collections::hash_map::RandomState;
use std::collections::HashMap;
use std::hash::BuildHasher;

/// Entries a shard takes before it is split: its table (65,536 buckets of 17 bytes, 1.1 MB) is
/// then full, and would double with one more; each half gets a table of that size again (the
/// standard map's tables hold 7/8 of their buckets).
const SPLIT_AT: usize = 65_536 / 8 * 7;
/// The directory's leading bits at most (65,536 entries, 256 KiB): past them a shard's table
/// grows on its own.
const MAX_DEPTH: u32 = 16;

/// Digest → the unit that has it.
pub(crate) struct DigestIndex {
    /// By the first `depth` bits of a key's hash ([`DigestIndex::spread`]), the shard that
    /// holds it (2^`depth` entries).
    directory: Vec<u32>,
    depth: u32,
    shards: Vec<Shard>,
    split_at: usize,
    seed: RandomState,
}

struct Shard {
    /// How many leading bits of their hash all its keys share.
    depth: u32,
    table: HashMap<[u8; 12], u32>,
}

/// A digest's key: its first 12 bytes.
fn key_of(digest: &[u8; 16]) -> [u8; 12] {
    digest[..12].try_into().expect("12 bytes")
}

/// A hash's first `bits` bits (0 for none).
fn leading(hash: u64, bits: u32) -> usize {
    if bits == 0 {
        return 0;
    }
    (hash >> (64 - bits)) as usize
}

impl Default for DigestIndex {
    fn default() -> Self {
        DigestIndex::with_split_at(SPLIT_AT)
    }
}

impl DigestIndex {
    fn with_split_at(split_at: usize) -> Self {
        DigestIndex { directory: vec![0], depth: 0, shards: vec![Shard { depth: 0, table: HashMap::new() }], split_at, seed: RandomState::new() }
    }

    /// An index that holds nothing and takes nothing: what a closed set keeps.
    pub(crate) fn empty() -> Self {
        DigestIndex { directory: Vec::new(), depth: 0, shards: Vec::new(), split_at: SPLIT_AT, seed: RandomState::new() }
    }

    /// The hash whose leading bits pick a key's shard.
    fn spread(&self, key: &[u8; 12]) -> u64 {
        self.seed.hash_one(key)
    }

    /// The unit with `digest`, if any.
    pub(crate) fn get(&self, digest: &[u8; 16]) -> Option<u32> {
        let key = key_of(digest);
        let shard = *self.directory.get(leading(self.spread(&key), self.depth))?;
        self.shards[shard as usize].table.get(&key).copied()
    }

    /// Records `unit` under `digest` unless a unit has it already. Panics on [`DigestIndex::empty`].
    pub(crate) fn insert_new(&mut self, digest: [u8; 16], unit: u32) {
        let key = key_of(&digest);
        let spread = self.spread(&key);
        let mut at = self.directory[leading(spread, self.depth)] as usize;
        if self.shards[at].table.contains_key(&key) {
            return;
        }
        if self.shards[at].table.len() >= self.split_at && self.shards[at].depth < MAX_DEPTH {
            self.split(at);
            at = self.directory[leading(spread, self.depth)] as usize;
        }
        self.shards[at].table.insert(key, unit);
    }

    /// Splits shard `at` in two by its next leading bit: the keys with a 0 stay, those with a 1
    /// go to a new shard (the directory doubled first if the shard is as deep as it).
    fn split(&mut self, at: usize) {
        let depth = self.shards[at].depth;
        if depth == self.depth {
            self.directory = self.directory.iter().flat_map(|&s| [s, s]).collect();
            self.depth += 1;
        }
        let old = std::mem::take(&mut self.shards[at].table);
        let half = old.len() / 2 + old.len() / 8;
        let (mut zeros, mut ones) = (HashMap::with_capacity(half), HashMap::with_capacity(half));
        for (key, unit) in old {
            if leading(self.spread(&key), depth + 1) & 1 == 0 {
                zeros.insert(key, unit);
            } else {
                ones.insert(key, unit);
            }
        }
        let new = self.shards.len() as u32;
        self.shards[at] = Shard { depth: depth + 1, table: zeros };
        self.shards.push(Shard { depth: depth + 1, table: ones });
        // The directory entries of the old shard whose next bit is 1 now lead to the new one.
        let span = 1usize << (self.depth - depth - 1);
        for (i, s) in self.directory.iter_mut().enumerate() {
            if *s as usize == at && (i / span) & 1 == 1 {
                *s = new;
            }
        }
    }

    /// Digests held.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.shards.iter().map(|s| s.table.len()).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A digest from `i`: its leading bytes from `i / 4`, so that four digests share them and
    /// differ only at byte 11, the last that counts; bytes 12–15 vary and do not count.
    fn digest(i: u32) -> [u8; 16] {
        let mut d = [0u8; 16];
        d[..4].copy_from_slice(&(i / 4).wrapping_mul(2_654_435_761).to_be_bytes());
        d[11] = (i % 4) as u8;
        d[12..].copy_from_slice(&[i as u8, 7, 9, (i >> 8) as u8]);
        d
    }

    /// Each digest finds the first unit recorded under it, whether the index is one table or
    /// split into hundreds of shards (a shard split every 64 entries here).
    #[test]
    fn each_digest_finds_the_first_unit_recorded_under_it() {
        for split_at in [SPLIT_AT, 64] {
            let mut index = DigestIndex::with_split_at(split_at);
            for i in 0..40_000 {
                index.insert_new(digest(i), i);
                // Found at once, and again after every split since.
                assert_eq!(index.get(&digest(i / 2)), Some(i / 2));
            }
            for i in 0..40_000 {
                index.insert_new(digest(i), i + 1_000_000);
            }
            assert_eq!(index.len(), 40_000);
            for i in 0..40_000 {
                assert_eq!(index.get(&digest(i)), Some(i));
                // Bytes past the 12th do not count.
                let mut tail = digest(i);
                tail[15] ^= 0xFF;
                assert_eq!(index.get(&tail), Some(i));
            }
            let mut other = digest(7);
            other[11] = 9;
            assert_eq!(index.get(&other), None);
            other = digest(7);
            other[0] ^= 0x80;
            assert_eq!(index.get(&other), None);
            // No shard past its split size, none empty, each shard's keys in the shard their
            // hash's leading bits lead to.
            if split_at == 64 {
                assert!(index.shards.len() > 400, "{} shards", index.shards.len());
                for (n, shard) in index.shards.iter().enumerate() {
                    assert!(shard.table.len() <= 64 && !shard.table.is_empty(), "shard {n}: {}", shard.table.len());
                    for key in shard.table.keys() {
                        assert_eq!(index.directory[leading(index.spread(key), index.depth)] as usize, n);
                    }
                }
            }
        }
        assert_eq!(DigestIndex::empty().get(&digest(7)), None);
    }

    /// A shard is split when its table is full, before it would double; both halves get a
    /// table of the same size (so that, below the directory's depth limit and with keys spread
    /// as hashes spread them, no shard's table is more than 65,536 buckets).
    #[test]
    fn a_shard_splits_when_its_table_is_full() {
        let mut index = DigestIndex::default();
        for i in 0..SPLIT_AT as u32 {
            index.insert_new(digest(i * 4), i);
        }
        assert_eq!((index.shards.len(), index.shards[0].table.capacity()), (1, SPLIT_AT));
        index.insert_new(digest(u32::MAX - 3), 0);
        assert_eq!(index.shards.len(), 2);
        assert!(
            index.shards.iter().all(|s| s.table.capacity() == SPLIT_AT),
            "{:?}",
            index.shards.iter().map(|s| s.table.capacity()).collect::<Vec<_>>()
        );
        assert_eq!(index.len(), SPLIT_AT + 1);
    }
}
