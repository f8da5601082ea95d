//! The index that finds a unit identical to one coming in, by a 16-byte digest of its content:
//! the largest thing the intake's first pass holds, kept in 256 tables by the digest's first
//! byte, each keyed by the next 12 bytes (13 bytes of SHA-256 decide that two units are the
//! same: two distinct units among 20 million share them with a chance near 10^-17; a holder who
//! wanted two identities merged would have to know both, and could send one under the other
//! anyway), 16 bytes an entry with the unit's number, where a 16-byte key took 20. One table of
//! millions doubled all at once, holding its old and new arrays together (three times the
//! entries' bytes: the first pass's peak); a shard doubles on its own, 1/256 of that. The tables
//! hash their keys with the standard randomly seeded hasher, so that units made to share a
//! bucket cannot slow an intake down.

use std::collections::HashMap;

const SHARDS: usize = 256;

/// Digest → the unit that has it.
pub(crate) struct DigestIndex {
    shards: Vec<HashMap<[u8; 12], u32>>,
}

/// A digest's shard and its key there.
fn split(digest: &[u8; 16]) -> (usize, [u8; 12]) {
    (usize::from(digest[0]), digest[1..13].try_into().expect("12 bytes"))
}

impl Default for DigestIndex {
    fn default() -> Self {
        DigestIndex { shards: (0..SHARDS).map(|_| HashMap::new()).collect() }
    }
}

impl DigestIndex {
    /// An index that holds nothing and takes nothing (not even its empty shards' 12 KiB): what
    /// a closed set keeps.
    pub(crate) fn empty() -> Self {
        DigestIndex { shards: Vec::new() }
    }

    /// The unit with `digest`, if any.
    pub(crate) fn get(&self, digest: &[u8; 16]) -> Option<u32> {
        let (shard, key) = split(digest);
        self.shards.get(shard)?.get(&key).copied()
    }

    /// Records `unit` under `digest` unless a unit has it already. Panics on [`DigestIndex::empty`].
    pub(crate) fn insert_new(&mut self, digest: [u8; 16], unit: u32) {
        let (shard, key) = split(&digest);
        self.shards[shard].entry(key).or_insert(unit);
    }

    /// Digests held.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.shards.iter().map(HashMap::len).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A digest from `i`: its shard and first bytes from `i / 4`, so that four digests share
    /// them and differ only at byte 12, the last that counts; bytes 13–15 vary and do not count.
    fn digest(i: u32) -> [u8; 16] {
        let mut d = [0u8; 16];
        d[..4].copy_from_slice(&(i / 4).wrapping_mul(2_654_435_761).to_le_bytes());
        d[12] = (i % 4) as u8;
        d[13..].copy_from_slice(&[i as u8, 7, 9]);
        d
    }

    #[test]
    fn each_digest_finds_the_first_unit_recorded_under_it() {
        let mut index = DigestIndex::default();
        for i in 0..40_000 {
            index.insert_new(digest(i), i);
        }
        for i in 0..40_000 {
            index.insert_new(digest(i), i + 1_000_000);
        }
        assert_eq!(index.len(), 40_000);
        for i in 0..40_000 {
            assert_eq!(index.get(&digest(i)), Some(i));
            // Bytes past the 13th do not count.
            let mut tail = digest(i);
            tail[15] ^= 0xFF;
            assert_eq!(index.get(&tail), Some(i));
        }
        let mut other = digest(7);
        other[12] = 9;
        assert_eq!(index.get(&other), None);
        // Another shard: the first byte counts.
        other = digest(7);
        other[0] ^= 1;
        assert_eq!(index.get(&other), None);
        assert_eq!(DigestIndex::empty().get(&digest(7)), None);
    }
}
