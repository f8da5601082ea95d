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
//! blocks crossed with its name endings. The anchors of every unit ([`unit_anchors`]) are asked
//! for too.
//! The caller reads back the persons found, asks again with them included, and stops when
//! nothing new comes back. Then every cluster the full run would make from a record read back
//! is made of records read back, and every person left out would be decided as before (the
//! proof is in `ARCHITECTURE.md`; the intake's tests compare both runs key by key).
//!
//! Pure: no I/O. Buckets are 8 bytes of a keyed hash: a collision only reads back more.

use std::collections::HashMap;

use crate::linkage::{group_by_number, Chunked, LinkUnit, UnionFind, UnitKeys, UnitRef, Units};
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

/// The buckets the vault must be asked for, from `earlier` units (read back, with the current
/// key of the person each belongs to, `earlier_keys`: a key or anything that stands for one,
/// such as its number) and `later` ones (this run's), grouped as the module docs say. Sorted,
/// without repeats.
pub fn reach<E: Units + ?Sized, L: Units + ?Sized, K: Eq + std::hash::Hash>(
    earlier: &E,
    earlier_keys: &[K],
    later: &L,
    keys: &Pseudonymizer,
) -> Vec<LinkBucket> {
    assert_eq!(earlier.count(), earlier_keys.len(), "one key per earlier unit");
    let unit = |i: usize| if i < earlier.count() { earlier.unit(i) } else { later.unit(i - earlier.count()) };
    let n = earlier.count() + later.count();
    let mut uf = UnionFind::new(n);
    {
        let mut by_id: HashMap<u64, usize> = HashMap::new();
        let mut by_key: HashMap<&K, usize> = HashMap::new();
        for i in 0..n {
            for id in LinkUnit::as_ref(&unit(i)).identifier_fingerprints() {
                let j = *by_id.entry(id).or_insert(i);
                uf.union(i, j);
            }
            if let Some(key) = earlier_keys.get(i) {
                let j = *by_key.entry(key).or_insert(i);
                uf.union(i, j);
            }
        }
    }
    // Two groups whose clusters could meet in a block's name group (a block both are in, a name
    // ending both carry, from any of their units) are one group: after a merge in one block, a
    // cluster carries its new names into every other block it is in. Until nothing joins; the
    // groups of the pass that joins nothing are the ones asked for.
    loop {
        let mut order: Vec<(u32, u32)> = (0..n).map(|i| (uf.find(i) as u32, i as u32)).collect();
        order.sort_unstable();
        // Groups in order of their first unit, so that units are read mostly in the order they
        // lie (a list whose pages are in a store reads that fastest); the groups that come out
        // do not depend on the order they are joined in.
        let mut by_first: Vec<&[(u32, u32)]> = order.chunk_by(|a, b| a.0 == b.0).collect();
        by_first.sort_unstable_by_key(|group| group[0].1);
        let groups: Vec<(usize, BlocksAndEnds)> = by_first
            .into_iter()
            .map(|group| {
                let units: Vec<_> = group.iter().map(|&(_, i)| unit(i as usize)).collect();
                (group[0].1 as usize, blocks_and_ends(units.iter().map(|u| LinkUnit::as_ref(u))))
            })
            .collect();
        drop(order);
        let mut by_bucket: HashMap<(u32, Sex, char), usize> = HashMap::new();
        let mut joined = false;
        for (at, (blocks, ends)) in &groups {
            for &(day, sex) in blocks {
                for &c in ends {
                    let j = *by_bucket.entry((day, sex, c)).or_insert(*at);
                    joined |= uf.union(*at, j);
                }
            }
        }
        if !joined {
            let mut out: Vec<LinkBucket> = groups.iter().flat_map(|(_, (blocks, ends))| crossed(blocks, ends, keys)).collect();
            out.sort_unstable();
            out.dedup();
            return out;
        }
    }
}

/// The anchors of `units` (the vault's anchors table leads from each to its person), sorted,
/// without repeats. They do not depend on how units are grouped: a caller makes them once a unit.
pub fn unit_anchors<U: Units + ?Sized>(units: &U, keys: &Pseudonymizer) -> Vec<PersonKey> {
    let mut out: Vec<PersonKey> = (0..units.count()).flat_map(|i| LinkUnit::as_ref(&units.unit(i)).anchors(keys)).collect();
    out.sort_unstable();
    out.dedup();
    out
}

/// Per person of a run (`unit_keys`: the key linkage gave each of `units`), the buckets the vault
/// keeps for it: every block its units are in crossed with every name ending they carry. Sorted
/// by bucket, without repeats.
pub fn cluster_buckets<U: Units + ?Sized>(units: &U, unit_keys: &UnitKeys, keys: &Pseudonymizer) -> Vec<(LinkBucket, PersonKey)> {
    let mut out = Vec::new();
    let key_of_person = &mut |p| Ok::<_, std::convert::Infallible>(*unit_keys.key_of_person(p));
    let persons = UnitPersons { of_unit: unit_keys.person_numbers(), persons: unit_keys.persons(), key_of_person };
    let Ok(()) = cluster_buckets_streaming(units, persons, keys, &mut |chunk| out.extend(chunk));
    out.sort_unstable();
    out.dedup();
    out
}

/// Bucket rows [`cluster_buckets_streaming`] hands over at a time.
pub const BUCKET_CHUNK: usize = 16_384;

/// Each unit's person as [`cluster_buckets_streaming`] reads it: per unit its person's number
/// (persons numbered `0..persons`), and each person's key, asked for once, in order of number.
/// A caller that keeps the keys elsewhere (the intake's sealed scratch pages) reads them there;
/// a key it cannot read is its error, which ends the rows.
pub struct UnitPersons<'a, E> {
    pub of_unit: &'a [u32],
    pub persons: usize,
    pub key_of_person: &'a mut dyn FnMut(u32) -> Result<PersonKey, E>,
}

/// The rows of [`cluster_buckets`], handed to `sink` as they are made, in chunks of at most
/// [`BUCKET_CHUNK`], each sorted by bucket, instead of being held: 40 bytes
/// a row and about two a person, they were the largest thing an intake held after linkage.
/// Stops at the first key `persons` cannot give, with its error (the rows handed over before
/// are then incomplete: the caller abandons them).
pub fn cluster_buckets_streaming<U: Units + ?Sized, E>(
    units: &U,
    persons: UnitPersons<'_, E>,
    keys: &Pseudonymizer,
    sink: &mut dyn FnMut(Vec<(LinkBucket, PersonKey)>),
) -> Result<(), E> {
    let UnitPersons { of_unit, persons, key_of_person } = persons;
    assert_eq!(units.count(), of_unit.len(), "one person per unit");
    // Units by person (a counting sort), persons by number: in order of their first unit, so
    // units are read mostly in the order they lie, which is what a list whose pages are in a
    // store reads fastest.
    let (start, order) = group_by_number(of_unit.len(), persons, |u| of_unit[u] as usize);
    let mut rows = Chunked::new(BUCKET_CHUNK, <[_]>::sort_unstable, sink);
    for p in 0..persons {
        let group = &order[start[p] as usize..start[p + 1] as usize];
        let members: Vec<_> = group.iter().map(|&i| units.unit(i as usize)).collect();
        let person = key_of_person(p as u32)?;
        // Blocks and endings without repeats, one person a group: no row is made twice.
        for bucket in group_buckets(members.iter().map(|u| LinkUnit::as_ref(u)), keys) {
            rows.push((bucket, person));
        }
    }
    rows.finish();
    Ok(())
}

/// Blocks (birth date in days, sex) and name endings.
type BlocksAndEnds = (Vec<(u32, Sex)>, Vec<char>);

/// The blocks `units` are in and the name endings they carry, sorted, without repeats.
fn blocks_and_ends<'a>(units: impl Iterator<Item = UnitRef<'a>> + Clone) -> BlocksAndEnds {
    let mut blocks: Vec<(u32, Sex)> = units.clone().filter_map(UnitRef::block).collect();
    let mut ends: Vec<char> = units.flat_map(UnitRef::name_ends).collect();
    blocks.sort_unstable();
    blocks.dedup();
    ends.sort_unstable();
    ends.dedup();
    (blocks, ends)
}

/// The blocks of `units` crossed with their name endings.
fn group_buckets<'a>(units: impl Iterator<Item = UnitRef<'a>> + Clone, keys: &Pseudonymizer) -> Vec<LinkBucket> {
    let (blocks, ends) = blocks_and_ends(units);
    crossed(&blocks, &ends, keys)
}

/// Each block crossed with each name ending, as buckets.
fn crossed(blocks: &[(u32, Sex)], ends: &[char], keys: &Pseudonymizer) -> Vec<LinkBucket> {
    let mut out = Vec::with_capacity(blocks.len() * ends.len());
    for &(day, sex) in blocks {
        let day = day.to_string();
        for &c in ends {
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
