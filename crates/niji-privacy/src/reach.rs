//! Which earlier persons a linkage run can reach, so that a run reads back only those from the
//! vault instead of every identity the instance holds.
//!
//! [`crate::link_set`] decides a cluster only with clusters it shares an identifier with, or a
//! block (birth date and sex) and the last character of a name (its name groups). A *bucket*
//! is a keyed hash of a block and a last character. The vault keeps, per person, the buckets of
//! every block the person's records are in crossed with every name ending they carry
//! ([`cluster_buckets`], written after each run), and the anchors of their identifiers.
//!
//! [`reach`] says what a run must look up: the records it holds are grouped by every relation
//! that could put them in one cluster (a shared identifier, the same stored key, and, until
//! nothing more joins, a block both groups are in with a name ending both carry: a merge in one
//! block carries a cluster's names into the others it is in), and each group asks for its
//! blocks crossed with its name endings, and for its anchors.
//! The caller reads back the persons found, asks again with them included, and stops when
//! nothing new comes back. Then every cluster the full run would make from a record read back
//! is made of records read back, and every person left out would be decided as before (the
//! proof is in `ARCHITECTURE.md`; the intake's tests compare both runs key by key).
//!
//! Pure: no I/O. Buckets are 8 bytes of a keyed hash: a collision only reads back more.

use std::collections::HashMap;

use crate::linkage::{LinkUnit, UnionFind};
use crate::normalize::Sex;
use crate::pseudonym::{Domain, PersonKey, Pseudonymizer};

/// The format of what the vault's link index keeps (buckets from blocks and name endings,
/// anchors from normalized numbers): raise it with any change to normalization, name endings,
/// blocks, anchors or buckets, so that an index made before is rebuilt by reading back every
/// record once.
pub const LINK_INDEX_FORMAT: u32 = 1;

/// A block (birth date and sex) with the last character of a name, as a keyed hash.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct LinkBucket(pub [u8; 8]);

/// What a run must look up in the vault: the buckets and the anchors its records reach.
#[derive(Debug, Clone, Default)]
pub struct Reach {
    /// Sorted, without repeats.
    pub buckets: Vec<LinkBucket>,
    /// Sorted, without repeats.
    pub anchors: Vec<PersonKey>,
}

/// The buckets and anchors reached from `earlier` units (read back, with the current key of the
/// person each belongs to, `earlier_keys`) and `later` ones (this run's), grouped as the module
/// docs say.
pub fn reach(earlier: &[LinkUnit], earlier_keys: &[PersonKey], later: &[LinkUnit], keys: &Pseudonymizer) -> Reach {
    assert_eq!(earlier.len(), earlier_keys.len(), "one key per earlier unit");
    let unit = |i: usize| if i < earlier.len() { &earlier[i] } else { &later[i - earlier.len()] };
    let n = earlier.len() + later.len();
    let mut uf = UnionFind::new(n);
    {
        let mut by_id: HashMap<u64, usize> = HashMap::new();
        let mut by_bucket: HashMap<(u32, Sex, char), usize> = HashMap::new();
        let mut by_key: HashMap<PersonKey, usize> = HashMap::new();
        for i in 0..n {
            let u = unit(i);
            for id in u.identifier_fingerprints() {
                let j = *by_id.entry(id).or_insert(i);
                uf.union(i, j);
            }
            if let Some((day, sex)) = u.block() {
                for c in u.name_ends() {
                    let j = *by_bucket.entry((day, sex, c)).or_insert(i);
                    uf.union(i, j);
                }
            }
            if let Some(key) = earlier_keys.get(i) {
                let j = *by_key.entry(*key).or_insert(i);
                uf.union(i, j);
            }
        }
    }
    // Two groups whose clusters could meet in a block's name group (a block both are in, a name
    // ending both carry, from any of their units) are one group: after a merge in one block, a
    // cluster carries its new names into every other block it is in. Until nothing joins.
    loop {
        let mut order: Vec<(u32, u32)> = (0..n).map(|i| (uf.find(i) as u32, i as u32)).collect();
        order.sort_unstable();
        let mut by_bucket: HashMap<(u32, Sex, char), usize> = HashMap::new();
        let mut joined = false;
        for group in order.chunk_by(|a, b| a.0 == b.0) {
            let (blocks, ends) = blocks_and_ends(group.iter().map(|&(_, i)| unit(i as usize)));
            let at = group[0].1 as usize;
            for &(day, sex) in &blocks {
                for &c in &ends {
                    let j = *by_bucket.entry((day, sex, c)).or_insert(at);
                    joined |= uf.union(at, j);
                }
            }
        }
        if !joined {
            break;
        }
    }
    let mut order: Vec<(u32, u32)> = (0..n).map(|i| (uf.find(i) as u32, i as u32)).collect();
    drop(uf);
    order.sort_unstable();
    let mut out = Reach::default();
    for group in order.chunk_by(|a, b| a.0 == b.0) {
        out.buckets.extend(group_buckets(group.iter().map(|&(_, i)| unit(i as usize)), keys));
        for &(_, i) in group {
            out.anchors.extend(unit(i as usize).anchors(keys));
        }
    }
    out.buckets.sort_unstable();
    out.buckets.dedup();
    out.anchors.sort_unstable();
    out.anchors.dedup();
    out
}

/// Per person of a run (`unit_keys`: the key linkage gave each of `units`), the buckets the vault
/// keeps for it: every block its units are in crossed with every name ending they carry. Sorted
/// by bucket, without repeats.
pub fn cluster_buckets(units: &[LinkUnit], unit_keys: &[PersonKey], keys: &Pseudonymizer) -> Vec<(LinkBucket, PersonKey)> {
    assert_eq!(units.len(), unit_keys.len(), "one key per unit");
    let mut order: Vec<u32> = (0..units.len() as u32).collect();
    order.sort_unstable_by_key(|&i| unit_keys[i as usize]);
    let mut out = Vec::new();
    for group in order.chunk_by(|&a, &b| unit_keys[a as usize] == unit_keys[b as usize]) {
        let person = unit_keys[group[0] as usize];
        out.extend(group_buckets(group.iter().map(|&i| &units[i as usize]), keys).into_iter().map(|b| (b, person)));
    }
    out.sort_unstable();
    out.dedup();
    out
}

/// The blocks `units` are in and the name endings they carry, sorted, without repeats.
fn blocks_and_ends<'a>(units: impl Iterator<Item = &'a LinkUnit> + Clone) -> (Vec<(u32, Sex)>, Vec<char>) {
    let mut blocks: Vec<(u32, Sex)> = units.clone().filter_map(LinkUnit::block).collect();
    let mut ends: Vec<char> = units.flat_map(LinkUnit::name_ends).collect();
    blocks.sort_unstable();
    blocks.dedup();
    ends.sort_unstable();
    ends.dedup();
    (blocks, ends)
}

/// The blocks of `units` crossed with their name endings.
fn group_buckets<'a>(units: impl Iterator<Item = &'a LinkUnit> + Clone, keys: &Pseudonymizer) -> Vec<LinkBucket> {
    let (blocks, ends) = blocks_and_ends(units);
    let mut out = Vec::with_capacity(blocks.len() * ends.len());
    for &(day, sex) in &blocks {
        let day = day.to_string();
        for &c in &ends {
            out.push(bucket(keys, &day, sex, c));
        }
    }
    out
}

fn bucket(keys: &Pseudonymizer, day: &str, sex: Sex, end: char) -> LinkBucket {
    let mut buf = [0u8; 4];
    let key = keys.keyed(Domain::LinkBucket, &[day, sex.code(), end.encode_utf8(&mut buf)]);
    let mut b = [0u8; 8];
    b.copy_from_slice(&key.0[..8]);
    LinkBucket(b)
}
