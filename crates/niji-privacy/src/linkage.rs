//! Person-level linkage of identity records from several holders (hospitals' FHIR exports and
//! claims, insurers, registries): one [`PersonKey`] per record, the same for every record of
//! one person.
//!
//! The method is deterministic rules over normalized values ([`crate::normalize`]), chosen over
//! Fellegi–Sunter weights because every disagreement that matters here is a hard fact rather
//! than a matter of degree (twins differ by given name, namesakes by where they live), and
//! because the figures of the evaluation (crate docs) show the rules reach the targets with
//! room; rules also say in one sentence why two records were joined.
//!
//! 1. **Identifier links** (any block): records are joined when they share a full member id
//!    (保険者番号・記号・番号・枝番) with the same birth date, a holder's own patient number
//!    (カルテ番号, scoped by holder), or a 公費受給者番号 with the same birth date. This is the
//!    insurance-number chaining of NDB's planned ID5: a hospital's claims carry the patient's
//!    number month after month, so an old and a new 保険者番号 of the same patient meet in one
//!    cluster, and every other record carrying either number joins it. An insurer's history
//!    file (資格履歴) is passed as records too: one record per change, holding the old and the
//!    new id as two `MemberId` items with the birth date and sex.
//! 2. **Blocking**: clusters are compared only within a block of equal birth date and sex.
//! 3. **Name rule**: two clusters are joined when their normalized kanji full names agree, or
//!    their folded kana full names agree and their kanji given names do not disagree.
//! 4. **Surname-change rule** (marriage): joined when the given names agree (kanji; kana if no
//!    kanji is known) and at least one of postal code, phone, member id or address agrees.
//! 5. **Cannot-link constraints** (checked on whole clusters, before every merge, so namesakes
//!    are never chained through a third record): two different patient numbers at the same
//!    holder; different postal codes (or, where a side lacks one, different addresses);
//!    kanji given names that disagree. A merge that would be possible with two clusters that
//!    cannot be linked to each other, with equal evidence, is ambiguous and not made.
//!
//! Person keys ([`Linkage::keys`]) are stable choices: a cluster that contains an anchor
//! (member id, patient number, 受給者番号 — each as a keyed hash) already known from an earlier
//! run ([`PriorKeys`]) keeps that run's key (the smallest one if two earlier persons now
//! merge); otherwise the key is `HMAC(vault key, "person", earliest member id, birth date)`,
//! earliest by the date the number was observed (claim month), then the smallest patient
//! number, then the name. New records that join a person therefore never change its key when
//! the caller stores [`Linkage::anchors`] and passes them back; even without that, the key only
//! changes if a newly arrived record carries an *older* member id than any seen before. A record
//! with nothing identifying (no anchor, no name with a birth date) is a person of its own, keyed
//! by the run ([`LinkageConfig::run_scope`]) and its position among the run's own records (not
//! counting those read back); read back from an earlier run
//! ([`UnitSet::push_stored`]) it keeps the key that run gave it.
//!
//! Invariants: pure (no I/O, clock or randomness; a [`PageStore`] a caller lends does the
//! caller's I/O behind a trait, and where units lie changes nothing); the output depends only on the records, their
//! order of arrival for ties, the key and the prior keys. Within a block the name rules work on
//! groups of clusters that share the last character of some name (no rule can join clusters
//! that share none); groups larger than [`LinkageConfig::max_block_clusters`] get identifier
//! links only (a guard against quadratic cost on degenerate data, reported in
//! [`LinkStats::oversized_blocks`]).
//!
//! Locality: a cluster is decided only with the clusters it shares an identifier or a block
//! and name ending with ([`crate::reach`]), so a later run that reads back just the earlier
//! persons its records reach gives the keys a run over every earlier record would.

use std::collections::hash_map::RandomState;
use std::collections::HashMap;
use std::fmt;
use std::hash::{BuildHasher, DefaultHasher, Hash, Hasher};

use niji_ingest::{Date, IdentifierKind, Identity};
use sha2::{Digest, Sha256};

use crate::normalize::{self, Sex};
use crate::pseudonym::{Domain, PersonKey, Pseudonymizer};

mod chunked;
mod digest_index;
mod unit_keys;
mod unit_list;

use digest_index::DigestIndex;

pub use unit_keys::{number_clusters, UnitKeys};
pub use unit_list::{PageStore, UnitList, UnitStorage, Units, UnitsOfRecords};

/// One identity record to link.
#[derive(Debug, Clone)]
pub struct LinkRecord {
    /// Who submitted it (医療機関コード, insurer, registry): patient numbers are scoped by it.
    pub holder: String,
    /// When its insurance numbers were valid (a claim's month), if known.
    pub observed: Option<Date>,
    pub identity: Identity,
}

/// Settings of a linkage run.
#[derive(Debug, Clone)]
pub struct LinkageConfig {
    /// Name groups of a block (clusters sharing a last character of a name) with more clusters
    /// than this get identifier links only.
    pub max_block_clusters: usize,
    /// Apply the surname-change rule (marriage, adoption).
    pub surname_change: bool,
    /// Apply the cannot-link constraints (turning them off only serves to measure them).
    pub cannot_link: bool,
    /// A name no other run uses (the intake gives the dataset version's tag). A record with
    /// nothing identifying gets a key made from it and the record's position in the run, so
    /// that two runs never give the same key to two such records.
    pub run_scope: String,
}

impl Default for LinkageConfig {
    fn default() -> Self {
        Self { max_block_clusters: 2_000, surname_change: true, cannot_link: true, run_scope: String::new() }
    }
}

/// Person keys assigned by earlier runs, by anchor (a keyed hash of a member id, patient number
/// or 受給者番号).
#[derive(Debug, Clone, Default)]
pub struct PriorKeys {
    map: HashMap<PersonKey, PersonKey>,
}

impl PriorKeys {
    pub fn insert(&mut self, anchor: PersonKey, person: PersonKey) {
        self.map.insert(anchor, person);
    }

    pub fn get(&self, anchor: &PersonKey) -> Option<&PersonKey> {
        self.map.get(anchor)
    }

    pub fn len(&self) -> usize {
        self.map.len()
    }

    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }
}

impl FromIterator<(PersonKey, PersonKey)> for PriorKeys {
    fn from_iter<I: IntoIterator<Item = (PersonKey, PersonKey)>>(iter: I) -> Self {
        Self { map: iter.into_iter().collect() }
    }
}

/// Counts of what the run did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LinkStats {
    pub records: usize,
    /// Records with a full birth date and sex (the others get identifier links only).
    pub blocked_records: usize,
    /// Distinct person keys (clusters that got the same key are one person).
    pub persons: usize,
    pub identifier_links: usize,
    pub name_links: usize,
    pub surname_change_links: usize,
    /// Candidate merges refused because of a cannot-link constraint.
    pub conflicts: usize,
    /// Candidate merges left undone because the evidence pointed at two incompatible clusters.
    pub ambiguous: usize,
    /// Name groups left to identifier links ([`LinkageConfig::max_block_clusters`]).
    pub oversized_blocks: usize,
}

/// The result: a person key per record (or unit), in input order.
#[derive(Debug, Clone)]
pub struct Linkage {
    pub keys: UnitKeys,
    /// Anchor → person key for every anchor seen: store it and pass it back as [`PriorKeys`].
    pub anchors: Vec<(PersonKey, PersonKey)>,
    pub stats: LinkStats,
}

/// Normalizes every record, on all cores for large inputs (each record on its own: the
/// result does not depend on how the work is split): [`LinkUnit::new`] of each, in order.
pub fn prepare_all(records: &[LinkRecord]) -> Vec<LinkUnit> {
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    if threads < 2 || records.len() < 10_000 {
        return records.iter().map(LinkUnit::new).collect();
    }
    let chunk = records.len().div_ceil(threads);
    std::thread::scope(|s| {
        let parts: Vec<_> = records.chunks(chunk).map(|c| s.spawn(move || c.iter().map(LinkUnit::new).collect::<Vec<_>>())).collect();
        parts.into_iter().flat_map(|p| p.join().expect("normalization does not panic")).collect()
    })
}

/// Links `records`; see the module docs. The keys come back one per record, in input order.
pub fn link(records: &[LinkRecord], config: &LinkageConfig, keys: &Pseudonymizer, prior: &PriorKeys) -> Linkage {
    let mut set = UnitSet::default();
    let unit_of: Vec<u32> = prepare_all(records).into_iter().map(|u| set.push(u)).collect();
    let mut linkage = link_set(&set, config, keys, prior);
    linkage.keys = linkage.keys.select(&unit_of);
    linkage
}

/// Link units of many records in order of arrival, each identifying unit held once.
///
/// A patient's monthly claims at one hospital carry the same identity, month after month; only
/// the month differs. Holding each such identity once makes a submission's memory grow with the
/// distinct identities it holds rather than with its records (a year of synthetic claims: about
/// six records a unit). Only units that carry an identifier (member id, patient number, 受給者番号)
/// are merged: those would be joined by the identifier link anyway, so the clusters, the keys
/// and every tie broken by order of arrival come out as if each record were its own unit (units
/// keep the order of their first records, and a merged unit keeps the earliest observation
/// date). A unit with nothing identifying stays one per record: such records are one person each
/// unless a rule joins them.
#[derive(Default)]
pub struct UnitSet {
    units: UnitList,
    /// Records whose unit has a block (a full birth date and sex): what linkage reports as
    /// blocked. Counted as units come in (a merged record has its unit's block), not kept per
    /// unit.
    blocked_records: u64,
    /// Identifying units by a digest of their content ([`digest`]): a unit in the store is not
    /// read back to be compared.
    index: DigestIndex,
    /// [`UnitSet::close`] was called: the index is gone, nothing can be added.
    closed: bool,
    /// The keys earlier runs gave units that nothing identifies (no anchor, no name with a
    /// birth date): kept, since their key came from a position in that run.
    stored: HashMap<u32, PersonKey>,
    records: u32,
    /// Records read back from earlier runs ([`UnitSet::push_stored`]), all before this run's:
    /// a record with nothing identifying is keyed by its position among this run's records
    /// alone, so that its key does not depend on how many earlier records were read back.
    stored_records: u32,
}

impl UnitSet {
    /// An empty set whose units go to `storage` once more than its `held_bytes` are in.
    pub fn with_storage(storage: UnitStorage) -> Self {
        UnitSet { units: UnitList::with_storage(storage), ..UnitSet::default() }
    }

    /// The store's first error, if any ([`UnitList::store_error`]): whatever was made from the
    /// units since (linkage, buckets) is not to be used.
    pub fn store_error(&self) -> Option<std::io::Error> {
        self.units.store_error()
    }

    /// Adds the next record's unit; returns the index of the unit that stands for it.
    pub fn push(&mut self, unit: LinkUnit) -> u32 {
        self.push_next(unit.as_ref())
    }

    /// Adds the next record's unit (one record: the next arrival ordinal).
    fn push_next(&mut self, unit: UnitRef<'_>) -> u32 {
        let ordinal = self.records;
        self.records += 1;
        self.blocked_records += u64::from(unit.block().is_some());
        self.insert(unit, ordinal)
    }

    /// Adds the next record's unit, read back from an earlier run that stored it under `key`.
    pub fn push_stored(&mut self, unit: UnitRef<'_>, key: PersonKey) -> u32 {
        let keyed_by_position = unit.keyed_by_position();
        self.stored_records += 1;
        let at = self.push_next(unit);
        if keyed_by_position {
            self.stored.entry(at).or_insert(key);
        }
        at
    }

    /// Appends every unit of `later` (whose records arrived after all of this set's); returns,
    /// per unit of `later`, the index of the unit that now stands for it.
    pub fn append(&mut self, later: UnitSet) -> Appended {
        assert!(!self.closed, "units appended to a closed set");
        if self.records == 0 && self.units.is_empty() && !self.units.has_storage() {
            // Into nothing: inserting `later`'s units one by one would make the same set again
            // (they were merged by the same rule, in the same order), so it is taken as it is
            // instead of being copied while both are held (a set with a store of its own copies,
            // so that its units go where its owner said).
            let stored_records = self.stored_records;
            *self = later;
            self.stored_records = stored_records;
            return Appended::AsItWas(self.units.len() as u32);
        }
        let offset = self.records;
        self.records += later.records;
        self.blocked_records += later.blocked_records;
        let UnitSet { units: list, stored, index, .. } = later;
        drop(index);
        let mut moved = Vec::with_capacity(list.len());
        // Pages copied are freed as the copy goes: the units are not held twice.
        if let Some(e) = list.drain(|_, unit, first| moved.push(self.insert(unit, offset + first))) {
            self.units.keep_error(e);
        }
        for (u, key) in stored {
            self.stored.entry(moved[u as usize]).or_insert(key);
        }
        Appended::Moved(moved)
    }

    /// Adds `units`, read back from earlier runs that stored the `i`th under `stored_key(i)`, in
    /// their order or in `order` (indices into `units`): [`UnitSet::push_stored`] of each.
    /// Returns the unit each stands for here, in the order added. The records read back are
    /// usually [`UnitsOfRecords`] of a set of their own, which holds identical units once: a
    /// unit read there with its earliest date makes the same set here as each record with its
    /// own.
    pub fn push_stored_units<U: Units + ?Sized>(&mut self, units: &U, stored_key: impl Fn(usize) -> PersonKey, order: Option<&[u32]>) -> Vec<u32> {
        let mut out = Vec::with_capacity(units.count());
        let mut add = |i: usize| {
            let unit = units.unit(i);
            out.push(self.push_stored(LinkUnit::as_ref(&unit), stored_key(i)));
        };
        match order {
            Some(order) => order.iter().for_each(|&i| add(i as usize)),
            None => (0..units.count()).for_each(add),
        }
        out
    }

    /// Frees the index that finds identical units (12 bytes a unit and a table of the newest:
    /// [`DigestIndex`]) once every unit is in: linkage does not need it. Adding a unit
    /// afterwards panics.
    pub fn close(&mut self) {
        self.index = DigestIndex::empty();
        self.closed = true;
        // The room of the open page's entries is not needed either, and the last page can go to
        // the store.
        self.units.finish();
    }

    /// Adds a unit (of records already counted), or finds the identical one held.
    fn insert(&mut self, unit: UnitRef<'_>, first: u32) -> u32 {
        assert!(!self.closed, "a unit added to a closed set");
        // Equal content, equal bytes (`UnitRef`), equal digests.
        let hash = unit.identifying().then(|| digest(unit.bytes));
        if let Some(at) = hash.as_ref().and_then(|h| self.index.get(h)) {
            if date_order(unit.observed, self.units.observed(at as usize)).is_lt() {
                self.units.set_observed(at as usize, unit.observed);
            }
            return at;
        }
        let at = self.add_new(unit, first);
        if let Some(h) = hash {
            self.index.insert_new(h, at);
        }
        at
    }

    /// Adds a unit of its own.
    fn add_new(&mut self, unit: UnitRef<'_>, first: u32) -> u32 {
        self.units.push_with_first(unit, first)
    }

    /// Adds the next record's unit as a unit of its own (what every record was before units
    /// were merged: the reference the merging is tested against).
    #[cfg(test)]
    fn push_unmerged(&mut self, unit: LinkUnit) -> u32 {
        self.records += 1;
        self.blocked_records += u64::from(unit.as_ref().block().is_some());
        self.add_new(unit.as_ref(), self.records - 1)
    }

    /// Distinct units.
    pub fn len(&self) -> usize {
        self.units.len()
    }

    pub fn is_empty(&self) -> bool {
        self.units.is_empty()
    }

    /// Records the units stand for.
    pub fn records(&self) -> u64 {
        u64::from(self.records)
    }

    /// The units, by index.
    pub fn units(&self) -> &UnitList {
        &self.units
    }
}

/// Where [`UnitSet::append`] put the units of the set it took: per unit of that set, the unit
/// that now stands for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Appended {
    /// Taken as it was (appended into an empty set): each of its units kept its number, so no
    /// list of them is held (4 bytes a unit through the whole intake).
    AsItWas(u32),
    /// Per unit, its number now (units identical to one held already were merged with it).
    Moved(Vec<u32>),
}

impl Appended {
    /// The number now of the unit that was `unit`, if the set appended had it.
    pub fn get(&self, unit: usize) -> Option<u32> {
        match self {
            Appended::AsItWas(n) => (unit < *n as usize).then_some(unit as u32),
            Appended::Moved(moved) => moved.get(unit).copied(),
        }
    }

    /// The number now of the unit that was `unit`; panics if the set appended did not have it.
    pub fn of(&self, unit: usize) -> u32 {
        self.get(unit).unwrap_or_else(|| panic!("unit {unit} of {} appended", self.len()))
    }

    /// Units of the set appended.
    pub fn len(&self) -> usize {
        match self {
            Appended::AsItWas(n) => *n as usize,
            Appended::Moved(moved) => moved.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Each unit's number now, in the order of the set appended.
    pub fn iter(&self) -> impl Iterator<Item = u32> + '_ {
        (0..self.len()).map(|u| self.of(u))
    }
}

impl Default for Appended {
    fn default() -> Self {
        Appended::AsItWas(0)
    }
}

// The index holds unkeyed digests of identities: `Debug` shows counts only.
impl fmt::Debug for UnitSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UnitSet")
            .field("units", &self.units)
            .field("records", &self.records)
            .field("stored_records", &self.stored_records)
            .field("closed", &self.closed)
            .finish_non_exhaustive()
    }
}

/// Links the units of `set`; see the module docs. The keys come back one per unit.
pub fn link_set(set: &UnitSet, config: &LinkageConfig, keys: &Pseudonymizer, prior: &PriorKeys) -> Linkage {
    let mut count = 0;
    set.units.for_each(|_, u| count += u.anchor_count());
    let mut anchors = Vec::with_capacity(count);
    let mut linkage = link_set_streaming(set, config, keys, prior, &mut |chunk| anchors.extend(chunk));
    linkage.anchors = anchors;
    linkage
}

/// Anchors [`link_set_streaming`] hands over at a time.
pub const ANCHOR_CHUNK: usize = 16_384;

/// As [`link_set`], but the anchors go to `sink` as they are made, in chunks of at most
/// [`ANCHOR_CHUNK`] and in the order [`Linkage::anchors`] would list them, instead of being
/// kept ([`Linkage::anchors`] comes back empty): 64 bytes an anchor, several a person, they were
/// the largest thing linkage held at a million persons.
pub fn link_set_streaming(
    set: &UnitSet,
    config: &LinkageConfig,
    keys: &Pseudonymizer,
    prior: &PriorKeys,
    sink: &mut dyn FnMut(Vec<(PersonKey, PersonKey)>),
) -> Linkage {
    let mut cluster_keys = Vec::new();
    let Clustered { cluster_of, mut stats, .. } = link_clusters_streaming(set, config, keys, prior, sink, &mut |key, clusters| {
        cluster_keys.reserve_exact(clusters - cluster_keys.len());
        cluster_keys.push(key);
    });
    let keys = UnitKeys::from_clusters(cluster_of, cluster_keys);
    stats.persons = keys.persons();
    Linkage { keys, anchors: Vec::new(), stats }
}

/// What [`link_clusters_streaming`] gives back: per unit its cluster's number (clusters in
/// order of their first unit), and the statistics of the run but its persons (clusters that
/// got the same key are one person: the caller numbers them, as [`number_clusters`] does).
#[derive(Debug)]
pub struct Clustered {
    pub cluster_of: Vec<u32>,
    /// Clusters made: every number in `cluster_of` is below it.
    pub clusters: usize,
    pub stats: LinkStats,
}

/// As [`link_set_streaming`], but each cluster's key goes to `cluster_key`, once a cluster in
/// order of cluster number, with the number of clusters in all (the same in every call, so that
/// the caller can make room once), instead of being held (32 bytes a cluster, the largest thing
/// linkage held at its end): for a caller that keeps them elsewhere (the intake seals them into
/// scratch pages) and numbers the persons itself.
pub fn link_clusters_streaming(
    set: &UnitSet,
    config: &LinkageConfig,
    keys: &Pseudonymizer,
    prior: &PriorKeys,
    sink: &mut dyn FnMut(Vec<(PersonKey, PersonKey)>),
    cluster_key: &mut dyn FnMut(PersonKey, usize),
) -> Clustered {
    let prepared = &set.units;
    let n = prepared.len();
    let mut stats = LinkStats { records: set.records as usize, ..LinkStats::default() };
    // A merged unit's later records would each have been joined by one identifier link: as
    // many as records beyond the units.
    stats.identifier_links = set.records as usize - n;
    let mut uf = UnionFind::new(n);

    // 1. Identifier links. The pairs are counted first, so that they do not grow by doubling,
    // and the blocks' units with them.
    let mut count = 0;
    let mut block_counts: HashMap<u32, u32> = HashMap::new();
    prepared.for_each(|_, u| {
        count += u.identifier_count();
        Blocks::count(&mut block_counts, u);
    });
    stats.identifier_links += identifier_links(prepared, &mut uf, count, ID_PAIRS_A_PASS.max(n / 2));

    // The clusters the identifier links made (chains, 4 bytes a unit: a unit's root is what
    // the union-find gives until the first merge of a block) and the blocks of birth date and
    // sex in key order ([`Blocks`], 4 bytes a blocked unit), where maps of vectors took about
    // 80 bytes a unit.
    let chains = Clusters::new((0..n).map(|i| uf.find(i) as u32).collect()).next;
    let blocks = Blocks::of(prepared, block_counts);
    stats.blocked_records = set.blocked_records as usize;
    // The last block each cluster appears in: its summary is dropped after that block, so the
    // summaries held at once are those of the clusters that span blocks still to come.
    let mut last_block = vec![0u32; n];
    for bi in 0..blocks.len() {
        for &i in blocks.block(bi) {
            last_block[uf.find(i as usize)] = bi as u32;
        }
    }

    // 3–5. Rules within each block. A cluster's summary is made from its units when a block
    // first needs it (no merge has touched it yet: a merged cluster's summary is kept).
    let mut aggs: HashMap<usize, Agg> = HashMap::new();
    for bi in 0..blocks.len() {
        let mut roots: Vec<usize> = blocks.block(bi).iter().map(|&i| uf.find(i as usize)).collect();
        roots.sort_unstable();
        roots.dedup();
        if roots.len() >= 2 {
            for &r in &roots {
                aggs.entry(r).or_insert_with(|| {
                    let mut a = Agg::default();
                    for u in Clusters::chain(&chains, r) {
                        a.add(prepared.unit_at(u as usize).as_ref());
                    }
                    a.tidy();
                    a
                });
            }
            for group in name_groups(&roots, &aggs) {
                if group.len() < 2 {
                    continue;
                }
                if group.len() > config.max_block_clusters {
                    stats.oversized_blocks += 1;
                    continue;
                }
                merge_block(group, &mut uf, &mut aggs, config, &mut stats);
            }
            // A merged cluster lives as long as the longest-lived of its parts.
            for &r in &roots {
                let now = uf.find(r);
                last_block[now] = last_block[now].max(last_block[r]);
            }
        }
        // Also after a block the rules skip: a summary made for an earlier block ends here.
        for r in roots {
            let now = uf.find(r);
            if last_block[now] <= bi as u32 {
                aggs.remove(&now);
            }
        }
    }

    // The summaries are done with: key derivation reads the units.
    drop(aggs);
    drop(blocks);
    drop(last_block);
    drop(chains);

    // Person keys, cluster by cluster in order of their first unit.
    let persons = Clusters::new((0..n).map(|i| uf.find(i) as u32).collect());
    drop(uf);
    let mut clusters = 0u32;
    // Per unit its cluster's number (clusters in order of their first unit); each cluster's
    // key goes to `cluster_key` as it is made. The numbers are written over the roots,
    // cluster by cluster as each is keyed: a number is at most its cluster's root, which is
    // at most each of its units, so a unit not yet reached still tells whether it is a root
    // (only a root is its own root) and nothing reached is read again.
    let Clusters { root: mut cluster_of, next } = persons;
    let all_clusters = (0..n).filter(|&i| cluster_of[i] as usize == i).count();
    let mut members = Vec::new();
    let mut anchors = Chunked::new(ANCHOR_CHUNK, |_| {}, sink);
    for i in 0..n {
        if cluster_of[i] as usize != i {
            continue;
        }
        members.clear();
        members.extend(Clusters::chain(&next, i));
        let members = &members[..];
        let units: Vec<LinkUnit> = members.iter().map(|&u| prepared.unit_at(u as usize)).collect();
        let mut cluster_anchors: Vec<PersonKey> = units.iter().flat_map(|u| u.as_ref().anchors(keys)).collect();
        cluster_anchors.sort_unstable();
        cluster_anchors.dedup();
        // A prior key by anchor, else one made from an id or the name, else the key an earlier
        // run stored for a unit nothing identifies, else one of the run and the first unit's
        // position.
        let key = cluster_anchors
            .iter()
            .filter_map(|a| prior.get(a))
            .min()
            .copied()
            .or_else(|| derive_key(&units, keys))
            .or_else(|| members.iter().filter_map(|u| set.stored.get(u)).min().copied())
            .unwrap_or_else(|| {
                let first = members[0] as usize;
                let position = prepared.first_record(first).saturating_sub(set.stored_records);
                keys.keyed(Domain::Person, &["record", &config.run_scope, units[0].as_ref().holder(), &position.to_string()])
            });
        for &u in members {
            cluster_of[u as usize] = clusters;
        }
        clusters += 1;
        cluster_key(key, all_clusters);
        for a in cluster_anchors {
            anchors.push((a, key));
        }
    }
    anchors.finish();
    drop(next);
    Clustered { cluster_of, clusters: clusters as usize, stats }
}

/// Fewest (fingerprint, unit) pairs [`identifier_links`] makes in one pass (12 MiB), and with
/// more units, half a pair a unit (6 bytes).
const ID_PAIRS_A_PASS: usize = 1 << 20;

/// Joins every unit with the first unit of each identifier it carries; returns how many joins
/// joined two clusters. (fingerprint, unit) pairs are sorted, and each unit joined with the
/// first of its fingerprint (12 bytes a pair, where a map took up to 34 in its slack). A
/// cluster's root is its smallest unit whatever the order of unions, so the result is a map's,
/// and the same however the pairs are split: in passes over the fingerprints whose seeded hash
/// has the pass's leading bits (fingerprints are unkeyed: identifiers chosen to share leading
/// bits would put every pair in one pass), as many as make each pass's pairs about
/// `pairs_a_pass` of the `count`, every unit read once a pass (held whole, the pairs were 12
/// bytes times 2–3 a unit, 600 MB at 20 million units).
fn identifier_links(units: &UnitList, uf: &mut UnionFind, count: usize, pairs_a_pass: usize) -> usize {
    let passes = count.div_ceil(pairs_a_pass.max(1)).max(1).next_power_of_two();
    let bits = passes.trailing_zeros();
    let seed = RandomState::new();
    let pass_of = |fingerprint: u64| if bits == 0 { 0 } else { (seed.hash_one(fingerprint) >> (64 - bits)) as usize };
    // A pass's share, and room for it to come out a little larger (the leading bits of hashes).
    let expected = count / passes + count / passes / 16 + 64;
    let mut links = 0;
    for pass in 0..passes {
        let mut by_id: Vec<IdPair> = Vec::with_capacity(expected.min(count));
        units
            .for_each(|i, p| by_id.extend(p.identifier_fingerprints().into_iter().filter(|&f| pass_of(f) == pass).map(|f| IdPair::new(f, i as u32))));
        by_id.sort_unstable();
        for same in by_id.chunk_by(|a, b| a.fingerprint() == b.fingerprint()) {
            for pair in &same[1..] {
                if uf.union(pair.unit as usize, same[0].unit as usize) {
                    links += 1;
                }
            }
        }
    }
    links
}

/// The units that have a block (birth date and sex), grouped by block: blocks in code order,
/// units ascending within each (what sorting (block, unit) pairs gives, in 4 bytes a unit
/// where the pairs took 8), by a counting sort (`counts`: per block code, its units, from an
/// earlier reading of the units), and 12 bytes a block while it is made (8 after).
struct Blocks {
    /// Where each block's units begin in `units`, and one more: where they all end.
    starts: Vec<u32>,
    units: Vec<u32>,
}

impl Blocks {
    /// Counts `unit` in its block's units, if it has a block (what [`Blocks::of`] takes).
    fn count(counts: &mut HashMap<u32, u32>, unit: UnitRef<'_>) {
        if let Some(b) = unit.block() {
            *counts.entry(block_code(b)).or_default() += 1;
        }
    }

    fn of(units: &UnitList, counts: HashMap<u32, u32>) -> Blocks {
        // Per block its code and, once its start is known, where its next unit goes.
        let mut cursors: Vec<(u32, u32)> = counts.into_iter().collect();
        cursors.sort_unstable();
        let mut starts = Vec::with_capacity(cursors.len() + 1);
        let mut at = 0u32;
        for (_, count) in &mut cursors {
            starts.push(at);
            at += std::mem::replace(count, at);
        }
        starts.push(at);
        let mut placed = vec![0u32; at as usize];
        units.for_each(|i, u| {
            let Some(b) = u.block() else { return };
            let code = block_code(b);
            let bi = cursors.partition_point(|&(c, _)| c < code);
            // A unit the counting did not see (a page the store gave back only this time: its
            // error is kept, and nothing linkage makes is used) is left out; a unit it saw that
            // this reading does not leaves its slot at unit 0, for the same reason harmless.
            if cursors.get(bi).is_some_and(|&(c, next)| c == code && next < starts[bi + 1]) {
                placed[cursors[bi].1 as usize] = i as u32;
                cursors[bi].1 += 1;
            }
        });
        Blocks { starts, units: placed }
    }

    fn len(&self) -> usize {
        self.starts.len() - 1
    }

    /// The units of block `bi`, ascending.
    fn block(&self, bi: usize) -> &[u32] {
        &self.units[self.starts[bi] as usize..self.starts[bi + 1] as usize]
    }
}

/// A block (birth date and sex) as one number, in the blocks' order (date, then sex): what
/// [`Blocks`] counts and sorts by.
fn block_code((date, sex): (u32, Sex)) -> u32 {
    // The date is `YYYYMMDD` (below 2^27).
    assert!(date < 1 << 30, "a block's date is YYYYMMDD");
    date << 2 | sex_index(sex) as u32
}

/// Where `sex` is in [`SEXES`]: how a unit and a block encode it.
fn sex_index(sex: Sex) -> usize {
    SEXES.iter().position(|&s| s == sex).expect("every sex is listed")
}

/// Hands items to a sink in chunks of at most `size` (each made `ready` first: sorted, or left
/// in order), so that a caller streams what would otherwise be held whole.
pub(crate) struct Chunked<'s, T> {
    chunk: Vec<T>,
    size: usize,
    ready: fn(&mut [T]),
    sink: &'s mut dyn FnMut(Vec<T>),
}

impl<'s, T> Chunked<'s, T> {
    pub(crate) fn new(size: usize, ready: fn(&mut [T]), sink: &'s mut dyn FnMut(Vec<T>)) -> Self {
        Chunked { chunk: Vec::with_capacity(size), size, ready, sink }
    }

    pub(crate) fn push(&mut self, item: T) {
        if self.chunk.len() == self.size {
            let mut full = std::mem::replace(&mut self.chunk, Vec::with_capacity(self.size));
            (self.ready)(&mut full);
            (self.sink)(full);
        }
        self.chunk.push(item);
    }

    /// Hands over the last chunk, if any.
    pub(crate) fn finish(mut self) {
        if !self.chunk.is_empty() {
            (self.ready)(&mut self.chunk);
            (self.sink)(self.chunk);
        }
    }
}

/// Items `0..n` grouped by `group_of` (each below `groups`) with a counting sort: the items of
/// group `g`, ascending, are `order[start[g]..start[g + 1]]`. Returns `(start, order)`.
pub(crate) fn group_by_number(n: usize, groups: usize, group_of: impl Fn(usize) -> usize) -> (Vec<u32>, Vec<u32>) {
    let mut start = vec![0u32; groups + 1];
    for i in 0..n {
        start[group_of(i) + 1] += 1;
    }
    for g in 0..groups {
        start[g + 1] += start[g];
    }
    // Each group's start moves on as its items are placed, ending where the next group's
    // begins; shifted back by one, they are the starts again (no copy of them is held).
    let mut order = vec![0u32; n];
    for i in 0..n {
        let g = group_of(i);
        order[start[g] as usize] = i as u32;
        start[g] += 1;
    }
    start.rotate_right(1);
    start[0] = 0;
    (start, order)
}

/// An identifier's fingerprint and a unit that carries it, in 12 bytes (a `(u64, u32)` takes
/// 16), ordered by fingerprint, then unit.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
struct IdPair {
    high: u32,
    low: u32,
    unit: u32,
}

impl IdPair {
    fn new(fingerprint: u64, unit: u32) -> Self {
        IdPair { high: (fingerprint >> 32) as u32, low: fingerprint as u32, unit }
    }

    fn fingerprint(&self) -> u64 {
        (u64::from(self.high) << 32) | u64::from(self.low)
    }
}

/// Units grouped by their cluster's root (its smallest unit, as [`UnionFind`] keeps it): per
/// unit its root and the next unit of its cluster, so that each cluster's units are a chain in
/// ascending order from its root (8 bytes a unit, where a counting sort's groups took 12).
struct Clusters {
    root: Vec<u32>,
    /// Per unit, the next larger unit of its cluster ([`NO_UNIT`] after the last).
    next: Vec<u32>,
}

/// The end of a chain of [`Clusters`].
const NO_UNIT: u32 = u32::MAX;

impl Clusters {
    /// `root`: per unit, its cluster's smallest unit.
    fn new(root: Vec<u32>) -> Self {
        let mut next = vec![NO_UNIT; root.len()];
        // From the last unit down, each unit goes to the front of its cluster's chain, which
        // starts at the root's `next`; the root, met last, is left in front of them all.
        for i in (0..root.len()).rev() {
            let r = root[i] as usize;
            assert!(r <= i && root[r] as usize == r, "a cluster's root is its smallest unit");
            if r != i {
                next[i] = next[r];
                next[r] = i as u32;
            }
        }
        Clusters { root, next }
    }

    /// The chain through `next` from `root`: the units of its cluster, ascending.
    fn chain(next: &[u32], root: usize) -> impl Iterator<Item = u32> + '_ {
        std::iter::successors(Some(root as u32), |&u| Some(next[u as usize]).filter(|&v| v != NO_UNIT))
    }
}

// ---------------------------------------------------------------------------------------------

/// A record reduced to what the rules compare: normalized names, ids and dates, fingerprints of
/// postal codes, phones and addresses; no field names and no other identity items. Made as
/// records arrive ([`LinkUnit::new`]), so a caller need not keep the identities until linkage
/// runs; it is smaller than the [`LinkRecord`] it comes from.
///
/// Units are kept until linkage runs (once per distinct identity, [`UnitSet`]), so they are
/// packed into one run of bytes ([`UnitRef`] reads them where they lie): a [`UnitSet`] keeps them
/// one after another in large pages, about 170 bytes a unit of a claim, where a `String` and a
/// `Vec` per item took about 900 and a struct of boxed parts about 330.
#[derive(Clone, PartialEq, Eq)]
pub struct LinkUnit {
    /// The encoded content: everything but the observation date ([`UnitRef`] says how).
    bytes: Box<[u8]>,
    observed: Option<Date>,
}

/// A unit as the rules read it: its encoded content, borrowed from a [`LinkUnit`] or from a
/// [`UnitList`]'s pages, and its observation date.
///
/// The content is, in order: the block (one byte, 0 for none or 1 + the sex's index, then the
/// birth date as the number `YYYYMMDD` in 4 bytes), per kind of text item ([`Item`]) the index of its first item
/// (one byte each, then the number of items), the same for fingerprints ([`Print`]), then where
/// each text item ends (2 bytes each), the fingerprints (8 bytes each) and the text. A unit holds
/// at most [`MAX_ITEMS_PER_KIND`] items of a kind and 65,535 bytes of text (a record does not
/// have dozens of names). Equal content, equal bytes: units are compared and hashed by them.
#[derive(Clone, Copy)]
pub struct UnitRef<'a> {
    bytes: &'a [u8],
    observed: Option<Date>,
}

/// The kinds of a unit's text items, in the order they are stored.
#[derive(Clone, Copy, Debug)]
enum Item {
    /// Who submitted it: the key of a record with nothing identifying names it.
    Holder,
    Birth,
    KanaFull,
    KanjiFull,
    KanaGiven,
    KanjiGiven,
    /// Normalized `insurer:symbol:number:branch`.
    Member,
    /// Patient numbers at the holder.
    Local,
    Public,
}

const ITEM_KINDS: usize = 9;

/// The kinds of a unit's fingerprints, in the order they are stored.
#[derive(Clone, Copy, Debug)]
enum Print {
    Postal,
    Phone,
    Address,
}

const PRINT_KINDS: usize = 3;

/// Items of one kind a unit keeps (the rest are dropped: the counts fit one byte).
pub const MAX_ITEMS_PER_KIND: usize = u8::MAX as usize / ITEM_KINDS;

const SEXES: [Sex; 4] = [Sex::Male, Sex::Female, Sex::Other, Sex::Unknown];
/// Where the item starts, the print starts, the item ends begin.
const ITEM_STARTS_AT: usize = 5;
const PRINT_STARTS_AT: usize = ITEM_STARTS_AT + ITEM_KINDS + 1;
const HEADER: usize = PRINT_STARTS_AT + PRINT_KINDS + 1;

impl LinkUnit {
    pub fn new(r: &LinkRecord) -> Self {
        let id = &r.identity;
        let birth = id.values(IdentifierKind::BirthDate).find_map(|v| normalize::birth_date(v).ok());
        let sex = id.values(IdentifierKind::Sex).find_map(|v| normalize::sex(v).ok());
        let block: Option<(u32, Sex)> = match (&birth, sex) {
            (Some(b), Some(s)) => b.chars().filter(char::is_ascii_digit).collect::<String>().parse().ok().map(|d| (d, s)),
            _ => None,
        };
        let (mut kanji_full, mut kanji_given, mut kana_full, mut kana_given) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
        names(id, IdentifierKind::NameKanji, normalize::kanji_name, &mut kanji_full, &mut kanji_given);
        names(id, IdentifierKind::NameKana, normalize::kana_name, &mut kana_full, &mut kana_given);
        let postal: Vec<u64> = id.values(IdentifierKind::PostalCode).filter_map(|v| normalize::postal_code(v).ok()).map(|v| fp(&v)).collect();
        let phone: Vec<u64> =
            id.values(IdentifierKind::Phone).filter_map(|v| normalize::phone(v).ok()).filter(|v| v.len() >= 9).map(|v| fp(&v)).collect();
        // The fullest address line (FHIR gives text and parts; CSV one cell).
        let address = id
            .items
            .iter()
            .filter(|i| i.kind == IdentifierKind::Address)
            .max_by_key(|i| (i.field.ends_with(".text"), i.value.chars().count()))
            .map(|i| normalize::address(&i.value));
        let address: Vec<u64> = address.into_iter().filter(|a| !a.is_empty()).map(|a| fp(&a)).collect();
        let mut member = member_ids(id);
        let mut local: Vec<String> = id.values(IdentifierKind::PatientId).map(normalize::insured_number).filter(|v| !v.is_empty()).collect();
        let mut public: Vec<String> =
            id.values(IdentifierKind::PublicExpenseRecipient).map(normalize::insured_number).filter(|v| !v.is_empty()).collect();
        // Without repeats, so that a repeated value does not take the place of another under
        // the cap (`MAX_ITEMS_PER_KIND`); every rule compares them as sets.
        for v in [&mut kana_full, &mut kanji_full, &mut kana_given, &mut kanji_given, &mut member, &mut local, &mut public] {
            v.sort_unstable();
            v.dedup();
        }
        let kinds: [&[String]; ITEM_KINDS] =
            [std::slice::from_ref(&r.holder), birth.as_slice(), &kana_full, &kanji_full, &kana_given, &kanji_given, &member, &local, &public];
        let mut prints: [Vec<u64>; PRINT_KINDS] = [postal, phone, address];
        for v in &mut prints {
            v.sort_unstable();
            v.dedup();
        }
        LinkUnit { bytes: encode(block, &kinds, &prints), observed: r.observed }
    }

    /// A unit with nothing in it (no block, no item).
    pub fn empty() -> Self {
        LinkUnit { bytes: encode(None, &[&[]; ITEM_KINDS], &Default::default()), observed: None }
    }

    /// The unit as the rules read it.
    pub fn as_ref(&self) -> UnitRef<'_> {
        UnitRef { bytes: &self.bytes, observed: self.observed }
    }
}

// Units hold normalized names and numbers: `Debug` (panic messages, logs) shows sizes only.
impl fmt::Debug for LinkUnit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.as_ref().fmt(f)
    }
}

impl fmt::Debug for UnitRef<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LinkUnit").field("bytes", &self.bytes.len()).finish_non_exhaustive()
    }
}

/// The content of a unit ([`UnitRef`] gives the layout). Items past [`MAX_ITEMS_PER_KIND`] of a
/// kind, or past 65,535 bytes of text, are left out.
fn encode(block: Option<(u32, Sex)>, kinds: &[&[String]; ITEM_KINDS], prints: &[Vec<u64>; PRINT_KINDS]) -> Box<[u8]> {
    let mut text = String::new();
    let mut ends: Vec<u16> = Vec::new();
    let mut starts = [0u8; ITEM_KINDS + 1];
    for (k, items) in kinds.iter().enumerate() {
        starts[k] = ends.len() as u8;
        for item in items.iter().take(MAX_ITEMS_PER_KIND) {
            if text.len() + item.len() > usize::from(u16::MAX) {
                break;
            }
            text.push_str(item);
            ends.push(text.len() as u16);
        }
    }
    starts[ITEM_KINDS] = ends.len() as u8;
    let mut print_starts = [0u8; PRINT_KINDS + 1];
    let mut all_prints: Vec<u64> = Vec::new();
    for (k, v) in prints.iter().enumerate() {
        print_starts[k] = all_prints.len() as u8;
        all_prints.extend(v.iter().take(MAX_ITEMS_PER_KIND));
    }
    print_starts[PRINT_KINDS] = all_prints.len() as u8;
    let mut out = Vec::with_capacity(HEADER + 2 * ends.len() + 8 * all_prints.len() + text.len());
    match block {
        Some((day, sex)) => {
            out.push(1 + sex_index(sex) as u8);
            out.extend_from_slice(&day.to_le_bytes());
        }
        None => out.extend_from_slice(&[0; 5]),
    }
    out.extend_from_slice(&starts);
    out.extend_from_slice(&print_starts);
    for e in ends {
        out.extend_from_slice(&e.to_le_bytes());
    }
    for p in all_prints {
        out.extend_from_slice(&p.to_le_bytes());
    }
    out.extend_from_slice(text.as_bytes());
    out.into_boxed_slice()
}

impl<'a> UnitRef<'a> {
    /// When its insurance numbers were valid: of a unit standing for several records, the
    /// earliest.
    pub fn observed(&self) -> Option<Date> {
        self.observed
    }

    /// The normalized birth date (`YYYY-MM-DD`), if the record gave a full one.
    pub fn birth_date(&self) -> Option<&'a str> {
        self.birth()
    }

    /// The last character of each of its names (full and given, kana and kanji): the name
    /// rules only join clusters that share one (`name_groups`).
    pub(crate) fn name_ends(self) -> impl Iterator<Item = char> + 'a {
        [Item::KanaFull, Item::KanjiFull, Item::KanaGiven, Item::KanjiGiven]
            .into_iter()
            .flat_map(move |k| self.items(k))
            .filter_map(|s| s.chars().next_back())
    }

    /// Birth date (the number `YYYYMMDD`) and sex: the block the name rules compare it in.
    pub(crate) fn block(self) -> Option<(u32, Sex)> {
        let b = self.bytes;
        let sex = *SEXES.get(usize::from(b[0]).checked_sub(1)?)?;
        Some((u32::from_le_bytes([b[1], b[2], b[3], b[4]]), sex))
    }

    /// Whether a cluster of this unit alone gets its key from the record's position: no anchor
    /// (member id, patient number, 受給者番号) and no name with a birth date.
    fn keyed_by_position(self) -> bool {
        !self.identifying() && self.name_and_birth().is_none()
    }

    /// The full name (kana first) and birth date a key is made from when no id gives one.
    fn name_and_birth(self) -> Option<(&'a str, &'a str)> {
        Some((self.items(Item::KanaFull).next().or(self.items(Item::KanjiFull).next())?, self.birth()?))
    }

    /// Whether the unit carries a value that identifies a person on its own (member id,
    /// patient number, 受給者番号 with a birth date).
    fn identifying(self) -> bool {
        self.item_start(Item::Member as usize) < self.item_start(Item::Local as usize + 1)
            || (self.birth().is_some() && self.items(Item::Public).next().is_some())
    }

    fn item_start(self, k: usize) -> usize {
        usize::from(self.bytes[ITEM_STARTS_AT + k])
    }

    fn print_start(self, k: usize) -> usize {
        usize::from(self.bytes[PRINT_STARTS_AT + k])
    }

    /// Where the fingerprints begin; the text begins after them.
    fn prints_at(self) -> usize {
        HEADER + 2 * self.item_start(ITEM_KINDS)
    }

    fn item_end(self, i: usize) -> usize {
        let at = HEADER + 2 * i;
        usize::from(u16::from_le_bytes([self.bytes[at], self.bytes[at + 1]]))
    }

    /// The text items of one kind.
    fn items(self, kind: Item) -> impl Iterator<Item = &'a str> + Clone {
        let k = kind as usize;
        let text_at = self.prints_at() + 8 * self.print_start(PRINT_KINDS);
        let bytes = self.bytes;
        (self.item_start(k)..self.item_start(k + 1)).map(move |i| {
            let start = if i == 0 { 0 } else { self.item_end(i - 1) };
            // Each item was a whole `str` (only its own bytes are checked, not the unit's text).
            std::str::from_utf8(&bytes[text_at + start..text_at + self.item_end(i)]).expect("units are made from text")
        })
    }

    /// The fingerprints of one kind.
    fn prints(self, kind: Print) -> impl Iterator<Item = u64> + 'a {
        let k = kind as usize;
        let at = self.prints_at();
        let bytes = self.bytes;
        (self.print_start(k)..self.print_start(k + 1)).map(move |i| {
            let p = at + 8 * i;
            u64::from_le_bytes(bytes[p..p + 8].try_into().expect("eight bytes"))
        })
    }

    fn holder(self) -> &'a str {
        self.items(Item::Holder).next().unwrap_or("")
    }

    fn birth(self) -> Option<&'a str> {
        self.items(Item::Birth).next()
    }

    /// Holder and patient number.
    fn local(self) -> impl Iterator<Item = (&'a str, &'a str)> {
        let holder = self.holder();
        self.items(Item::Local).map(move |l| (holder, l))
    }

    /// Fingerprints of the values that identify a person on their own.
    pub(crate) fn identifier_fingerprints(self) -> Vec<u64> {
        let birth = self.birth().unwrap_or("");
        let mut out = Vec::new();
        for m in self.items(Item::Member) {
            out.push(fp(&("m", m, birth)));
        }
        for (h, pid) in self.local() {
            out.push(fp(&("l", h, pid)));
        }
        if !birth.is_empty() {
            for r in self.items(Item::Public) {
                out.push(fp(&("p", r, birth)));
            }
        }
        out
    }

    /// How many fingerprints [`UnitRef::identifier_fingerprints`] gives: as many as anchors.
    fn identifier_count(self) -> usize {
        self.anchor_count()
    }

    /// How many anchors [`UnitRef::anchors`] gives, without making them.
    fn anchor_count(self) -> usize {
        let public = if self.birth().is_some_and(|b| !b.is_empty()) { self.items(Item::Public).count() } else { 0 };
        self.items(Item::Member).count() + self.items(Item::Local).count() + public
    }

    pub(crate) fn anchors(self, keys: &Pseudonymizer) -> Vec<PersonKey> {
        let birth = self.birth().unwrap_or("");
        let mut out = Vec::new();
        for m in self.items(Item::Member) {
            out.push(keys.keyed(Domain::Anchor, &["member", m, birth]));
        }
        for (h, pid) in self.local() {
            out.push(keys.keyed(Domain::Anchor, &["local", h, pid]));
        }
        if !birth.is_empty() {
            for r in self.items(Item::Public) {
                out.push(keys.keyed(Domain::Anchor, &["public", r, birth]));
            }
        }
        out
    }
}

/// Full names and given names of one script. FHIR gives `.text`, `.family` and `.given`; UKE and
/// CSV one cell, split at its separator when it has one.
fn names(id: &Identity, kind: IdentifierKind, norm: fn(&str) -> String, full: &mut Vec<String>, given: &mut Vec<String>) {
    let mut family = Vec::new();
    for item in id.items.iter().filter(|i| i.kind == kind) {
        let f = item.field.as_str();
        if f.ends_with(".family") {
            family.push(norm(&item.value));
        } else if f.ends_with(".given") {
            given.push(norm(&item.value));
        } else if f.ends_with(".prefix") || f.ends_with(".suffix") {
        } else {
            full.push(norm(&item.value));
            if let Some((_, g)) = normalize::split_name(&item.value) {
                given.push(norm(g));
            }
        }
    }
    if full.is_empty() {
        if let (Some(f), Some(g)) = (family.first(), given.first()) {
            full.push(format!("{f}{g}"));
        }
    }
    full.retain(|s| !s.is_empty());
    given.retain(|s| !s.is_empty());
}

/// Member ids from a CLINS member id item, or from the parts (UKE HO + SN, CSV columns). The
/// first 保険者番号 with a 番号 beside it is the insurer (a KO record's 公費負担者番号 follows).
fn member_ids(id: &Identity) -> Vec<String> {
    let mut out = Vec::new();
    for m in id.values(IdentifierKind::MemberId) {
        let parts: Vec<&str> = m.split([':', '：']).collect();
        if let [ins, sym, num, branch] = parts.as_slice() {
            if let Some(v) = member(ins, sym, num, branch) {
                out.push(v);
            }
        }
    }
    if out.is_empty() {
        let first = |k| id.values(k).next().unwrap_or("");
        if let Some(v) = member(
            first(IdentifierKind::InsurerNumber),
            first(IdentifierKind::InsuredSymbol),
            first(IdentifierKind::InsuredNumber),
            first(IdentifierKind::BranchNumber),
        ) {
            out.push(v);
        }
    }
    out
}

fn member(ins: &str, sym: &str, num: &str, branch: &str) -> Option<String> {
    let ins = normalize::insurer_number(ins).ok()?;
    let num = normalize::insured_number(num);
    if num.is_empty() {
        return None;
    }
    let branch = normalize::branch_number(branch).unwrap_or_default();
    Some(format!("{ins}:{}:{num}:{branch}", normalize::insured_symbol(sym)))
}

/// What identical units are found by: the first 16 bytes of the SHA-256 of their content (the
/// index keeps 80 bits of a seeded hash of it, [`DigestIndex`]; a plain 64-bit hash would have
/// needed the held unit read back to rule out a collision).
fn digest(bytes: &[u8]) -> [u8; 16] {
    let full = Sha256::digest(bytes);
    let mut out = [0u8; 16];
    out.copy_from_slice(&full[..16]);
    out
}

fn fp<T: Hash + ?Sized>(v: &T) -> u64 {
    let mut h = DefaultHasher::new();
    v.hash(&mut h);
    h.finish()
}

/// What a cluster knows, for the rules.
#[derive(Debug, Default, Clone)]
struct Agg {
    /// Names, copied out of the units (which may lie in a store).
    kana_full: Vec<Box<str>>,
    kanji_full: Vec<Box<str>>,
    kana_given: Vec<Box<str>>,
    kanji_given: Vec<Box<str>>,
    postal: Vec<u64>,
    phone: Vec<u64>,
    address: Vec<u64>,
    member: Vec<u64>,
    local: Vec<(u64, u64)>,
}

impl Agg {
    fn add(&mut self, p: UnitRef<'_>) {
        self.kana_full.extend(p.items(Item::KanaFull).map(Box::from));
        self.kanji_full.extend(p.items(Item::KanjiFull).map(Box::from));
        self.kana_given.extend(p.items(Item::KanaGiven).map(Box::from));
        self.kanji_given.extend(p.items(Item::KanjiGiven).map(Box::from));
        self.postal.extend(p.prints(Print::Postal));
        self.phone.extend(p.prints(Print::Phone));
        self.address.extend(p.prints(Print::Address));
        self.member.extend(p.items(Item::Member).map(fp));
        self.local.extend(p.local().map(|(h, l)| (fp(h), fp(l))));
    }

    /// The last character of each name.
    fn name_ends(&self) -> impl Iterator<Item = char> + '_ {
        [&self.kana_full, &self.kanji_full, &self.kana_given, &self.kanji_given].into_iter().flatten().filter_map(|s| s.chars().next_back())
    }

    fn absorb(&mut self, o: Agg) {
        self.kana_full.extend(o.kana_full);
        self.kanji_full.extend(o.kanji_full);
        self.kana_given.extend(o.kana_given);
        self.kanji_given.extend(o.kanji_given);
        self.postal.extend(o.postal);
        self.phone.extend(o.phone);
        self.address.extend(o.address);
        self.member.extend(o.member);
        self.local.extend(o.local);
        self.tidy();
    }

    fn tidy(&mut self) {
        for v in [&mut self.kana_full, &mut self.kanji_full, &mut self.kana_given, &mut self.kanji_given] {
            v.sort_unstable();
            v.dedup();
            v.shrink_to_fit();
        }
        for v in [&mut self.postal, &mut self.phone, &mut self.address, &mut self.member] {
            v.sort_unstable();
            v.dedup();
            v.shrink_to_fit();
        }
        self.local.sort_unstable();
        self.local.dedup();
        self.local.shrink_to_fit();
    }
}

fn meets<T: Ord>(a: &[T], b: &[T]) -> bool {
    // Both sorted.
    let (mut i, mut j) = (0, 0);
    while i < a.len() && j < b.len() {
        match a[i].cmp(&b[j]) {
            std::cmp::Ordering::Less => i += 1,
            std::cmp::Ordering::Greater => j += 1,
            std::cmp::Ordering::Equal => return true,
        }
    }
    false
}

/// Both sides known and no value in common.
fn differ<T: Ord>(a: &[T], b: &[T]) -> bool {
    !a.is_empty() && !b.is_empty() && !meets(a, b)
}

/// Given names of one script: `Some(true)` agree, `Some(false)` disagree, `None` unknown.
fn given_agreement(a_given: &[Box<str>], a_full: &[Box<str>], b_given: &[Box<str>], b_full: &[Box<str>]) -> Option<bool> {
    if meets(a_given, b_given) || meets(a_full, b_full) {
        return Some(true);
    }
    let suffix = |given: &[Box<str>], full: &[Box<str>]| given.iter().any(|g| full.iter().any(|f| f.len() > g.len() && f.ends_with(&**g)));
    if suffix(a_given, b_full) || suffix(b_given, a_full) {
        return Some(true);
    }
    if !a_given.is_empty() && !b_given.is_empty() {
        return Some(false);
    }
    None
}

fn conflict(a: &Agg, b: &Agg) -> bool {
    // Two different patient numbers at the same holder.
    for (h, l) in &a.local {
        if b.local.iter().any(|(h2, l2)| h2 == h && l2 != l) && !b.local.iter().any(|(h2, l2)| h2 == h && l2 == l) {
            return true;
        }
    }
    if differ(&a.postal, &b.postal) {
        return true;
    }
    if (a.postal.is_empty() || b.postal.is_empty()) && differ(&a.address, &b.address) {
        return true;
    }
    given_agreement(&a.kanji_given, &a.kanji_full, &b.kanji_given, &b.kanji_full) == Some(false)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Rule {
    Name,
    SurnameChange,
}

/// Evidence for joining two clusters that do not conflict: (score, rule), or `None`.
fn evidence(a: &Agg, b: &Agg, config: &LinkageConfig) -> Option<(u32, Rule)> {
    let support = [meets(&a.postal, &b.postal), meets(&a.phone, &b.phone), meets(&a.member, &b.member), meets(&a.address, &b.address)]
        .iter()
        .filter(|&&x| x)
        .count() as u32;
    let kanji_full = meets(&a.kanji_full, &b.kanji_full);
    let kana_full = meets(&a.kana_full, &b.kana_full);
    let kanji_given = given_agreement(&a.kanji_given, &a.kanji_full, &b.kanji_given, &b.kanji_full);
    let kana_given = given_agreement(&a.kana_given, &a.kana_full, &b.kana_given, &b.kana_full);
    if kanji_full || (kana_full && kanji_given != Some(false)) {
        return Some((20 + support + (kanji_full && kana_full) as u32, Rule::Name));
    }
    let given = match kanji_given {
        Some(g) => g && kana_given != Some(false),
        None => kana_given == Some(true),
    };
    if config.surname_change && given && support >= 1 {
        return Some((10 + support, Rule::SurnameChange));
    }
    None
}

/// The clusters of a block, split into the groups the name rules work within: each rule needs
/// two clusters to share a full name, a given name, or a given name that ends the other's full
/// name, so the two share the last character of some name. Clusters that share none are never
/// joined, nor weighed against each other (ambiguity looks only at candidate pairs), so each
/// group is decided as it would be inside the whole block. This is what lets a later run read
/// back only the earlier persons it can reach (`reach`), and it is also the unit the guard
/// against quadratic cost counts. Groups in order of their first root; roots ascending.
fn name_groups(roots: &[usize], aggs: &HashMap<usize, Agg>) -> Vec<Vec<usize>> {
    let mut uf = UnionFind::new(roots.len());
    let mut first: HashMap<char, usize> = HashMap::new();
    for (x, r) in roots.iter().enumerate() {
        for c in aggs[r].name_ends() {
            let y = *first.entry(c).or_insert(x);
            uf.union(x, y);
        }
    }
    let mut groups: Vec<Vec<usize>> = Vec::new();
    let mut group_of: HashMap<usize, usize> = HashMap::new();
    for (x, &r) in roots.iter().enumerate() {
        let g = *group_of.entry(uf.find(x)).or_insert_with(|| {
            groups.push(Vec::new());
            groups.len() - 1
        });
        groups[g].push(r);
    }
    groups
}

fn merge_block(mut roots: Vec<usize>, uf: &mut UnionFind, aggs: &mut HashMap<usize, Agg>, config: &LinkageConfig, stats: &mut LinkStats) {
    let mut refused: Vec<(usize, usize)> = Vec::new();
    loop {
        roots = roots.iter().map(|&r| uf.find(r)).collect();
        roots.sort_unstable();
        roots.dedup();
        let mut candidates = Vec::new();
        let mut conflicts = std::collections::HashSet::new();
        for (x, &i) in roots.iter().enumerate() {
            for &j in &roots[x + 1..] {
                let (a, b) = (&aggs[&i], &aggs[&j]);
                if config.cannot_link && conflict(a, b) {
                    conflicts.insert((i, j));
                    continue;
                }
                if refused.contains(&(i, j)) {
                    continue;
                }
                if let Some((score, rule)) = evidence(a, b, config) {
                    candidates.push((score, i, j, rule));
                }
            }
        }
        let conflicting = |x: usize, y: usize| conflicts.contains(&(x.min(y), x.max(y)));
        // Count refusals once per block: pairs that would link by name but conflict.
        candidates.sort_by(|a, b| b.0.cmp(&a.0).then((a.1, a.2).cmp(&(b.1, b.2))));
        let mut touched = std::collections::HashSet::new();
        let mut merged = false;
        for &(score, i, j, rule) in &candidates {
            if touched.contains(&i) || touched.contains(&j) {
                continue;
            }
            let ambiguous = candidates.iter().any(|&(s, x, y, _)| {
                s == score && (x, y) != (i, j) && {
                    let (end, other) = if x == i || y == i {
                        (j, if x == i { y } else { x })
                    } else if x == j || y == j {
                        (i, if x == j { y } else { x })
                    } else {
                        return false;
                    };
                    conflicting(end, other)
                }
            });
            if ambiguous {
                stats.ambiguous += 1;
                refused.push((i, j));
                continue;
            }
            touched.insert(i);
            touched.insert(j);
            let (keep, gone) = (i, j);
            uf.union(keep, gone);
            let root = uf.find(keep);
            let a = aggs.remove(&keep).expect("cluster");
            let b = aggs.remove(&gone).expect("cluster");
            let mut a = a;
            a.absorb(b);
            aggs.insert(root, a);
            merged = true;
            match rule {
                Rule::Name => stats.name_links += 1,
                Rule::SurnameChange => stats.surname_change_links += 1,
            }
        }
        if !merged {
            stats.conflicts += conflicts.len();
            break;
        }
        // Roots that were merged away: refused pairs are re-keyed on the next round.
        refused = refused.iter().map(|&(x, y)| (uf.find(x).min(uf.find(y)), uf.find(x).max(uf.find(y)))).collect();
    }
}

/// The key of a cluster with no prior key: earliest member id, else smallest patient number,
/// else the name (see the module docs).
fn derive_key(members: &[LinkUnit], keys: &Pseudonymizer) -> Option<PersonKey> {
    let mut best: Option<(Option<Date>, &str, &str)> = None;
    for p in members.iter().map(LinkUnit::as_ref) {
        let birth = p.birth().unwrap_or("");
        for m in p.items(Item::Member) {
            let cand = (p.observed, m, birth);
            let better = match &best {
                None => true,
                Some(b) => date_order(cand.0, b.0).then(cand.1.cmp(b.1)).is_lt(),
            };
            if better {
                best = Some(cand);
            }
        }
    }
    if let Some((_, m, birth)) = best {
        return Some(keys.keyed(Domain::Person, &["member", m, birth]));
    }
    if let Some((h, l)) = members.iter().flat_map(|u| u.as_ref().local()).min() {
        return Some(keys.keyed(Domain::Person, &["local", h, l]));
    }
    let p = members[0].as_ref();
    let (name, birth) = p.name_and_birth()?;
    let sex = p.block().map_or("", |b| b.1.code());
    Some(keys.keyed(Domain::Person, &["name", name, birth, sex]))
}

/// Known dates first, earlier first.
fn date_order(a: Option<Date>, b: Option<Date>) -> std::cmp::Ordering {
    match (a, b) {
        (Some(a), Some(b)) => a.cmp(&b),
        (Some(_), None) => std::cmp::Ordering::Less,
        (None, Some(_)) => std::cmp::Ordering::Greater,
        (None, None) => std::cmp::Ordering::Equal,
    }
}

/// Sets of at most `u32::MAX` elements (4 bytes an element: units are counted in `u32`).
pub(crate) struct UnionFind {
    parent: Vec<u32>,
}

impl UnionFind {
    pub(crate) fn new(n: usize) -> Self {
        assert!(n <= u32::MAX as usize, "at most u32::MAX elements");
        Self { parent: (0..n as u32).collect() }
    }

    pub(crate) fn find(&mut self, x: usize) -> usize {
        let mut x = x as u32;
        while self.parent[x as usize] != x {
            self.parent[x as usize] = self.parent[self.parent[x as usize] as usize];
            x = self.parent[x as usize];
        }
        x as usize
    }

    /// Joins the sets; the smaller root stays root. Returns whether they were apart.
    pub(crate) fn union(&mut self, a: usize, b: usize) -> bool {
        let (ra, rb) = (self.find(a), self.find(b));
        if ra == rb {
            return false;
        }
        let (lo, hi) = (ra.min(rb), ra.max(rb));
        self.parent[hi] = lo as u32;
        true
    }
}

#[cfg(test)]
mod tests {
    use niji_ingest::IdentityItem;
    use proptest::prelude::*;

    use super::*;
    use crate::pseudonym::VaultKey;

    fn keys() -> Pseudonymizer {
        Pseudonymizer::new(&VaultKey::from_bytes(&[3; 32]).unwrap())
    }

    /// A record from `(kind, field, value)` triples.
    fn rec(holder: &str, items: &[(IdentifierKind, &str, &str)]) -> LinkRecord {
        LinkRecord {
            holder: holder.to_string(),
            observed: None,
            identity: Identity {
                items: items.iter().map(|(k, f, v)| IdentityItem { kind: *k, field: f.to_string(), value: v.to_string() }).collect(),
            },
        }
    }

    use IdentifierKind::*;

    /// A FHIR-like record: names split, address, postal code, phone, member id.
    #[allow(clippy::too_many_arguments)]
    fn fhir(holder: &str, pid: &str, kanji: (&str, &str), kana: (&str, &str), birth: &str, sex: &str, postal: &str, member: &str) -> LinkRecord {
        let full_kanji = format!("{}　{}", kanji.0, kanji.1);
        let full_kana = format!("{} {}", kana.0, kana.1);
        rec(
            holder,
            &[
                (PatientId, "Patient.identifier[0].value", pid),
                (MemberId, "Patient.identifier[1].value", member),
                (NameKanji, "Patient.name[0].text", &full_kanji),
                (NameKanji, "Patient.name[0].family", kanji.0),
                (NameKanji, "Patient.name[0].given", kanji.1),
                (NameKana, "Patient.name[1].text", &full_kana),
                (NameKana, "Patient.name[1].family", kana.0),
                (NameKana, "Patient.name[1].given", kana.1),
                (BirthDate, "Patient.birthDate", birth),
                (Sex, "Patient.gender", sex),
                (PostalCode, "Patient.address[0].postalCode", postal),
            ],
        )
    }

    /// A UKE-like claim: combined names, compact or 和暦 birth date, HO and SN numbers.
    fn claim(holder: &str, pid: &str, kanji: &str, kana: &str, birth: &str, sex: &str, ins: (&str, &str, &str, &str)) -> LinkRecord {
        rec(
            holder,
            &[
                (NameKanji, "RE.4(氏名)", kanji),
                (NameKana, "RE.36(カタカナ氏名)", kana),
                (PatientId, "RE.13(カルテ番号)", pid),
                (BirthDate, "RE.6(生年月日)", birth),
                (Sex, "RE.5(男女区分)", sex),
                (InsurerNumber, "HO.1(保険者番号)", ins.0),
                (InsuredSymbol, "HO.2(記号)", ins.1),
                (InsuredNumber, "HO.3(番号)", ins.2),
                (BranchNumber, "SN.6(枝番)", ins.3),
            ],
        )
    }

    fn run(records: &[LinkRecord]) -> Linkage {
        link(records, &LinkageConfig::default(), &keys(), &PriorKeys::default())
    }

    /// Appending a set of several pages to one that holds units copies each unit as it was
    /// (freeing the pages behind it), and appending to an empty set takes it as it is.
    #[test]
    fn appended_units_are_the_units_appended() {
        let records: Vec<LinkRecord> = (0..6_000)
            .map(|i| claim("H1", &format!("p{i}"), "山田太郎", "ヤマダタロウ", "1980-01-02", "1", ("06132013", "1", &(i / 2).to_string(), "01")))
            .collect();
        let make = || {
            let mut set = UnitSet::default();
            for r in &records {
                set.push(LinkUnit::new(r));
            }
            set
        };
        let reference = make();
        assert!(reference.units.bytes_held() >= 3 * 256 * 1024, "{} bytes", reference.units.bytes_held());
        let mut into = UnitSet::default();
        into.push(LinkUnit::new(&claim("H9", "x", "佐藤花子", "サトウハナコ", "1990-01-01", "2", ("06132013", "2", "9", "01"))));
        let moved = into.append(make());
        assert_eq!(moved.iter().collect::<Vec<u32>>(), (1..=6_000).collect::<Vec<u32>>());
        for (i, at) in moved.iter().enumerate() {
            assert_eq!(into.units.unit_at(at as usize), reference.units.unit_at(i));
        }
        let mut empty = UnitSet::default();
        assert_eq!(empty.append(make()), Appended::AsItWas(6_000), "taken as it was: no list of numbers");
        assert_eq!((empty.len(), empty.records()), (6_000, 6_000));
    }

    /// The identifier links come out the same (every unit's root, the joins counted) in one
    /// pass or in 2–128 passes over a share of the fingerprints each: units sharing member
    /// numbers, patient numbers and 受給者番号 in chains across the passes' shares.
    #[test]
    fn identifier_links_are_the_same_in_passes() {
        let records: Vec<LinkRecord> = (0..3_000u32)
            .map(|i| {
                let mut r = claim(
                    "H1",
                    &format!("p{}", i % 700),
                    "山田太郎",
                    "ヤマダタロウ",
                    "1980-01-02",
                    "1",
                    ("06132013", "1", &(i % 1_100).to_string(), "01"),
                );
                if i % 3 == 0 {
                    r.identity.items.push(IdentityItem {
                        kind: PublicExpenseRecipient,
                        field: "KO.2(受給者番号)".into(),
                        value: format!("{}", i % 500),
                    });
                }
                r
            })
            .collect();
        let units: UnitList = records.iter().map(LinkUnit::new).collect();
        let mut count = 0;
        units.for_each(|_, u| count += u.identifier_count());
        let roots = |pairs_a_pass: usize| {
            let mut uf = UnionFind::new(units.len());
            let links = identifier_links(&units, &mut uf, count, pairs_a_pass);
            ((0..units.len()).map(|i| uf.find(i)).collect::<Vec<_>>(), links)
        };
        let (one_pass, links) = roots(usize::MAX);
        assert!(links > 2_000 && one_pass.iter().filter(|&&r| r == 0).count() > 10, "{links} links");
        for pairs_a_pass in [count / 2, count / 5, 100] {
            assert_eq!(roots(pairs_a_pass), (one_pass.clone(), links), "{pairs_a_pass} pairs a pass");
        }
    }

    /// Blocks made by counting are those of the (block, unit) pairs sorted: units with and
    /// without a block, births over several years, both sexes.
    #[test]
    fn blocks_are_the_sorted_pairs_grouped() {
        let records: Vec<LinkRecord> = (0..2_000u32)
            .map(|i| {
                let birth = if i % 7 == 0 { String::new() } else { format!("19{:02}-{:02}-{:02}", 40 + i % 13, 1 + i % 12, 1 + i % 28) };
                claim(
                    "H1",
                    &format!("p{i}"),
                    "山田太郎",
                    "ヤマダタロウ",
                    &birth,
                    if i % 2 == 0 { "1" } else { "2" },
                    ("06132013", "1", &i.to_string(), "01"),
                )
            })
            .collect();
        let units: UnitList = records.iter().map(LinkUnit::new).collect();
        let mut pairs = Vec::new();
        units.for_each(|i, u| pairs.extend(u.block().map(|b| (block_code(b), i as u32))));
        pairs.sort_unstable();
        let grouped: Vec<Vec<u32>> = pairs.chunk_by(|a, b| a.0 == b.0).map(|c| c.iter().map(|&(_, u)| u).collect()).collect();
        let mut counts = HashMap::new();
        units.for_each(|_, u| Blocks::count(&mut counts, u));
        let blocks = Blocks::of(&units, counts);
        assert!(grouped.len() > 100 && pairs.len() < 2_000, "{} blocks of {} units", grouped.len(), pairs.len());
        assert_eq!((0..blocks.len()).map(|bi| blocks.block(bi).to_vec()).collect::<Vec<_>>(), grouped);
    }

    /// Each unit's first record, in unit order.
    fn firsts(set: &UnitSet) -> Vec<u32> {
        (0..set.len()).map(|u| set.units.first_record(u)).collect()
    }

    /// Units read back as a list are added as `push_stored` adds them one by one, in list order
    /// or in the order given; and so are records read back into a set of their own (identical
    /// units held once, with their earliest date), read through `UnitsOfRecords`.
    #[test]
    fn a_list_read_back_is_added_as_its_units_one_by_one() {
        let records: Vec<LinkRecord> = (0..5_000)
            .map(|i| {
                // Some with nothing identifying: a unit each, never merged.
                let mut r = if i % 7 == 0 {
                    rec("H1", &[(NameKana, "RE.36(カタカナ氏名)", "ヤマダタロウ")])
                } else {
                    claim(
                        "H1",
                        &format!("p{}", i % 300),
                        "山田太郎",
                        "ヤマダタロウ",
                        "1980-01-02",
                        "1",
                        ("06132013", "1", &(i % 200).to_string(), "01"),
                    )
                };
                // Dates in no order, some missing: a merged unit keeps the earliest.
                r.observed = (i % 5 != 0).then(|| Date::new(2020, 1 + (i * 7 % 12) as u8, 1).unwrap());
                r
            })
            .collect();
        let units: Vec<LinkUnit> = records.iter().map(LinkUnit::new).collect();
        let mut read = UnitSet::default();
        let unit_of: Vec<u32> = units.iter().map(|u| read.push(u.clone())).collect();
        assert!(read.len() < units.len() / 2, "the read set holds identical units once");
        let of_records = UnitsOfRecords { units: read.units(), unit_of: &unit_of };
        let list: UnitList = units.iter().cloned().collect();
        let stored: Vec<PersonKey> = (0..5_000u32).map(|i| PersonKey([(i % 251) as u8; 32])).collect();
        let reversed: Vec<u32> = (0..5_000u32).rev().collect();
        for order in [None, Some(&reversed[..])] {
            let mut one_by_one = UnitSet::default();
            let positions: Vec<usize> = order.map_or_else(|| (0..5_000).collect(), |o| o.iter().map(|&i| i as usize).collect());
            let want: Vec<u32> = positions.iter().map(|&i| one_by_one.push_stored(units[i].as_ref(), stored[i])).collect();
            let sources: [&dyn Units; 2] = [&list, &of_records];
            for source in sources {
                let mut listed = UnitSet::default();
                let got = listed.push_stored_units(source, |i| stored[i], order);
                assert_eq!(got, want);
                assert_eq!(
                    (listed.blocked_records, firsts(&listed), &listed.stored, listed.records, listed.stored_records),
                    (one_by_one.blocked_records, firsts(&one_by_one), &one_by_one.stored, one_by_one.records, one_by_one.stored_records)
                );
                assert!((0..listed.len()).all(|u| listed.units.unit_at(u) == one_by_one.units.unit_at(u)));
            }
        }
    }

    /// A closed set links as before and takes no more units.
    #[test]
    fn a_closed_set_links_as_before_and_takes_no_more_units() {
        let r = claim("H1", "1", "山田太郎", "ヤマダタロウ", "1980-01-02", "1", ("06132013", "1", "5", "01"));
        let mut set = UnitSet::default();
        set.push(LinkUnit::new(&r));
        set.push(LinkUnit::new(&r));
        let before = link_set(&set, &LinkageConfig::default(), &keys(), &PriorKeys::default());
        set.close();
        let after = link_set(&set, &LinkageConfig::default(), &keys(), &PriorKeys::default());
        assert_eq!((after.keys, after.anchors, after.stats), (before.keys, before.anchors, before.stats));
        let added = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| set.push(LinkUnit::new(&r))));
        assert!(added.is_err());
    }

    /// Streamed anchors come in chunks of at most `ANCHOR_CHUNK`, and put together they are the
    /// anchors `link_set` keeps, in its order, beside the same keys.
    #[test]
    fn streamed_anchors_are_the_kept_anchors_in_chunks() {
        let mut set = UnitSet::default();
        for i in 0..9_000 {
            // Two anchors a record (member id, patient number); every tenth shares a member id
            // with the one before (one person, one cluster).
            let number = (i - i % 10 / 9).to_string();
            let r = claim("H1", &format!("p{i}"), "山田太郎", "ヤマダタロウ", "1980-01-02", "1", ("06132013", "1", &number, "01"));
            set.push(LinkUnit::new(&r));
        }
        let config = LinkageConfig::default();
        let kept = link_set(&set, &config, &keys(), &PriorKeys::default());
        let mut chunks: Vec<Vec<(PersonKey, PersonKey)>> = Vec::new();
        let streamed = link_set_streaming(&set, &config, &keys(), &PriorKeys::default(), &mut |c| chunks.push(c));
        assert!(streamed.anchors.is_empty());
        assert_eq!(streamed.keys, kept.keys);
        assert_eq!(streamed.stats, kept.stats);
        assert!(chunks.len() >= 2, "{} chunks", chunks.len());
        assert!(chunks.iter().all(|c| !c.is_empty() && c.len() <= ANCHOR_CHUNK));
        assert_eq!(chunks.concat(), kept.anchors);
        assert_eq!(kept.anchors.len(), 18_000 - 900);
    }

    #[test]
    fn streamed_bucket_rows_are_the_rows_in_sorted_chunks() {
        let mut set = UnitSet::default();
        for i in 0..12_000u32 {
            // Persons of their own (one block each, a day apart), every tenth sent twice under
            // another patient number: its two units are one person with the rows of both.
            let person = i - i % 10 / 9;
            let birth = format!("{}-{:02}-{:02}", 1930 + person / 336, person / 28 % 12 + 1, person % 28 + 1);
            let r = claim("H1", &format!("p{i}"), "山田太郎", "ヤマダタロウ", &birth, "1", ("06132013", "1", &person.to_string(), "01"));
            set.push(LinkUnit::new(&r));
        }
        let linkage = link_set(&set, &LinkageConfig::default(), &keys(), &PriorKeys::default());
        let kept = crate::cluster_buckets(set.units(), &linkage.keys, &keys());
        let mut chunks: Vec<Vec<(crate::LinkBucket, PersonKey)>> = Vec::new();
        let key_of_person = &mut |p| Ok::<_, ()>(*linkage.keys.key_of_person(p));
        let persons = crate::UnitPersons { of_unit: linkage.keys.person_numbers(), persons: linkage.keys.persons(), key_of_person };
        crate::cluster_buckets_streaming(set.units(), persons, &keys(), &mut |c| chunks.push(c)).unwrap();
        assert!(chunks.len() >= 2, "{} chunks", chunks.len());
        assert!(chunks.iter().all(|c| !c.is_empty() && c.len() <= crate::BUCKET_CHUNK && c.is_sorted()));
        let mut streamed = chunks.concat();
        streamed.sort_unstable();
        assert_eq!(streamed, kept);
        // 10,800 persons, each one block crossed with the same name endings (kanji and kana):
        // as many rows each, all under the persons' own keys.
        assert_eq!(linkage.stats.persons, 10_800);
        let mut per_person: HashMap<PersonKey, usize> = HashMap::new();
        for (_, p) in &kept {
            *per_person.entry(*p).or_default() += 1;
        }
        let persons: std::collections::HashSet<PersonKey> = linkage.keys.iter().copied().collect();
        assert_eq!(per_person.keys().copied().collect::<std::collections::HashSet<_>>(), persons);
        let rows: std::collections::HashSet<usize> = per_person.values().copied().collect();
        assert_eq!(rows.len(), 1, "rows per person: {rows:?}");
        assert!(rows.iter().all(|&r| r >= 2), "rows per person: {rows:?}");
    }

    #[test]
    fn the_same_person_across_holders_and_spellings() {
        let records = [
            fhir("H1", "0000000001", ("渡邊", "太郎"), ("ワタナベ", "タロウ"), "1970-03-02", "male", "100-0001", "06132013:あいう:１８７:01"),
            // Another hospital: half-width kana, 和暦, full-width digits, typo ッ.
            claim("H2", "77", "渡辺太郎", "ﾜﾀﾅﾍﾞ ﾀﾛｰ", "3450302", "1", ("06132013", "アイウ", "00187", "1")),
            // The registry: hiragana, 昭和 in kanji, `男`.
            rec(
                "REG",
                &[
                    (NameKanji, "name", "渡邉 太郎"),
                    (NameKana, "name_kana", "わたなべ　たろう"),
                    (BirthDate, "birth_date", "昭和45年3月2日"),
                    (Sex, "sex", "男"),
                    (PostalCode, "postal_code", "1000001"),
                ],
            ),
        ];
        let out = run(&records);
        assert_eq!(out.keys[0], out.keys[1]);
        assert_eq!(out.keys[0], out.keys[2]);
        assert_eq!(out.stats.persons, 1);
    }

    #[test]
    fn twins_stay_apart() {
        // Same surname, birth date, sex, address and 記号・番号; different given names and 枝番.
        let records = [
            fhir("H1", "1", ("佐藤", "陽子"), ("サトウ", "ヨウコ"), "2010-05-05", "female", "150-0001", "06132013:12:345:01"),
            fhir("H1", "2", ("佐藤", "洋子"), ("サトウ", "ヨウコ"), "2010-05-05", "female", "150-0001", "06132013:12:345:02"),
            // A claim of each at another hospital, the name written without a separator.
            claim("H2", "8", "佐藤陽子", "サトウヨウコ", "20100505", "2", ("06132013", "12", "345", "01")),
            claim("H2", "9", "佐藤洋子", "サトウヨウコ", "20100505", "2", ("06132013", "12", "345", "02")),
            // The registry knows one of them by name and kana only: kanji decides.
            rec("REG", &[(NameKanji, "name", "佐藤洋子"), (NameKana, "name_kana", "サトウヨウコ"), (BirthDate, "b", "2010-05-05"), (Sex, "s", "F")]),
        ];
        let out = run(&records);
        assert_ne!(out.keys[0], out.keys[1]);
        assert_eq!(out.keys[0], out.keys[2]);
        assert_eq!(out.keys[1], out.keys[3]);
        assert_eq!(out.keys[1], out.keys[4]);
    }

    #[test]
    fn namesakes_are_not_chained() {
        // Two people with the same name, birth date and sex, living apart; a registry row with
        // no postal code or number could be either: it joins neither.
        let records = [
            fhir("H1", "1", ("田中", "一郎"), ("タナカ", "イチロウ"), "1980-01-01", "male", "100-0001", "01010016:1:11:00"),
            fhir("H2", "5", ("田中", "一郎"), ("タナカ", "イチロウ"), "1980-01-01", "male", "530-0001", "01270016:2:22:00"),
            rec(
                "REG",
                &[(NameKanji, "name", "田中　一郎"), (NameKana, "name_kana", "タナカ イチロウ"), (BirthDate, "b", "1980-01-01"), (Sex, "s", "M")],
            ),
            claim("H1", "1", "田中　一郎", "タナカ　イチロウ", "19800101", "1", ("01010016", "1", "11", "00")),
        ];
        let out = run(&records);
        assert_ne!(out.keys[0], out.keys[1]);
        assert_eq!(out.keys[0], out.keys[3]);
        assert_ne!(out.keys[2], out.keys[0]);
        assert_ne!(out.keys[2], out.keys[1]);
        assert_eq!(out.stats.ambiguous, 2);
        // Without the constraints, all four become one person.
        let loose = link(&records, &LinkageConfig { cannot_link: false, ..Default::default() }, &keys(), &PriorKeys::default());
        assert_eq!(loose.stats.persons, 1);
    }

    #[test]
    fn insurance_change_and_marriage_keep_the_key() {
        let mut old = claim("H1", "42", "山田　花子", "ヤマダ　ハナコ", "19900101", "2", ("01010016", "5", "100", "01"));
        old.observed = Some(Date::new(2024, 1, 1).unwrap());
        // After marriage and a new insurer, the same hospital's patient number chains the claims.
        let mut new = claim("H1", "42", "鈴木　花子", "スズキ　ハナコ", "19900101", "2", ("06132013", "7", "200", "02"));
        new.observed = Some(Date::new(2024, 9, 1).unwrap());
        // Another hospital knows only the new identity.
        let other = fhir("H2", "9", ("鈴木", "花子"), ("スズキ", "ハナコ"), "1990-01-01", "female", "100-0001", "06132013:7:200:02");
        // A registry row under the new name with the phone the second hospital has.
        let mut reg =
            rec("REG", &[(NameKanji, "name", "田中花子"), (NameKana, "name_kana", "タナカハナコ"), (BirthDate, "b", "1990-01-01"), (Sex, "s", "F")]);
        reg.identity.items.push(IdentityItem { kind: PostalCode, field: "postal_code".into(), value: "100-0001".into() });
        let records = [old, new, other, reg];
        let out = run(&records);
        assert!(out.keys.iter().all(|k| *k == out.keys[0]), "{:?}", out.stats);
        assert_eq!(out.stats.surname_change_links, 1);
        // The key comes from the earliest member id.
        let expected = keys().keyed(Domain::Person, &["member", "01010016:5:100:01", "1990-01-01"]);
        assert_eq!(out.keys[0], expected);
        // Records arriving later with an even older number keep the key given prior anchors.
        let prior: PriorKeys = out.anchors.iter().copied().collect();
        let mut older = claim("H1", "42", "山田　花子", "ヤマダ　ハナコ", "19900101", "2", ("01010016", "5", "099", "01"));
        older.observed = Some(Date::new(2020, 1, 1).unwrap());
        let mut more = records.to_vec();
        more.push(older);
        let again = link(&more, &LinkageConfig::default(), &keys(), &prior);
        assert!(again.keys.iter().all(|k| *k == expected));
        // Without them, the key moves to the older number (documented).
        assert_ne!(run(&more).keys[0], expected);
    }

    #[test]
    fn history_file_rows_chain_member_ids() {
        let a = claim("H1", "1", "木村　真由美", "キムラ　マユミ", "20020807", "2", ("01220011", "3293", "3645", "01"));
        let b = fhir("H2", "7", ("西田", "真由美"), ("ニシダ", "マユミ"), "2002-08-07", "female", "438-0217", "01220011:4797:37887:01");
        assert_ne!(run(&[a.clone(), b.clone()]).keys[0], run(&[a.clone(), b.clone()]).keys[1]);
        let history = rec(
            "insurer",
            &[
                (MemberId, "old", "01220011:3293:3645:01"),
                (MemberId, "new", "01220011:4797:37887:01"),
                (BirthDate, "b", "2002-08-07"),
                (Sex, "s", "F"),
            ],
        );
        let out = run(&[a, b, history]);
        assert_eq!(out.keys[0], out.keys[1]);
    }

    #[test]
    fn different_patient_numbers_at_one_holder_are_different_people() {
        let a = claim("H1", "1", "高橋　誠", "タカハシ　マコト", "19750505", "1", ("01010016", "1", "1", "00"));
        let b = claim("H1", "2", "高橋　誠", "タカハシ　マコト", "19750505", "1", ("01010016", "2", "2", "00"));
        let out = run(&[a, b]);
        assert_ne!(out.keys[0], out.keys[1]);
        assert_eq!(out.stats.conflicts, 1);
    }

    /// Records with nothing identifying are keyed by their position in a run. A later run reads
    /// back fewer records than were stored (one per distinct identity), so positions repeat
    /// across runs: the run's scope keeps new keys apart, and records read back keep theirs.
    #[test]
    fn records_with_nothing_identifying_never_share_a_key_across_runs() {
        let phone = |n: &str| rec("H", &[(Phone, "telecom", n)]);
        let id = claim("H", "1", "山田太郎", "ヤマダタロウ", "19700302", "1", ("06132013", "1", "1", "01"));
        let keys = keys();
        let first_run = [id.clone(), id, phone("090-1111-2222"), phone("090-3333-4444")];
        let a = link(&first_run, &LinkageConfig { run_scope: "a/v1".into(), ..LinkageConfig::default() }, &keys, &PriorKeys::default());
        let prior: PriorKeys = a.anchors.iter().copied().collect();
        // Stored: the identity once, and both phone-only records.
        let mut set = UnitSet::default();
        for (r, k) in [(&first_run[0], a.keys[0]), (&first_run[2], a.keys[2]), (&first_run[3], a.keys[3])] {
            set.push_stored(LinkUnit::new(r).as_ref(), k);
        }
        let mut later = UnitSet::default();
        later.push(LinkUnit::new(&phone("090-5555-6666")));
        let moved = set.append(later);
        let b = link_set(&set, &LinkageConfig { run_scope: "b/v1".into(), ..LinkageConfig::default() }, &keys, &prior);
        assert_eq!(&b.keys.to_vec()[..3], &[a.keys[0], a.keys[2], a.keys[3]], "records read back keep their keys");
        let new = b.keys[moved.of(0) as usize];
        // It is keyed by its position among this run's records (0) and the run's scope.
        assert!(!a.keys.to_vec().contains(&new), "a new record with nothing identifying gets a key of its own");
    }

    proptest! {
        /// A person's key does not change with the way a holder writes the same identity:
        /// half-width or hiragana kana, separators, 和暦 or compact dates, sex codes, width of
        /// insurance numbers.
        #[test]
        fn key_stable_under_spelling(given in "[アイウエオカキクケコサシスセソタチツテトナニヌネノ]{2,5}", y in 1930u16..2010, m in 1u8..13, d in 1u8..29, male in any::<bool>()) {
            let iso = format!("{y:04}-{m:02}-{d:02}");
            let compact = format!("{y:04}{m:02}{d:02}");
            let hira: String = given.chars().map(|c| char::from_u32(c as u32 - 0x60).unwrap()).collect();
            let a = fhir("H1", "1", ("山田", "一"), ("ヤマダ", &given), &iso, if male { "male" } else { "female" }, "100-0001", "06132013:1:1:01");
            let b = rec("REG", &[
                (NameKanji, "name", "山田一"),
                (NameKana, "name_kana", &format!("やまだ　{hira}")),
                (BirthDate, "b", &compact),
                (Sex, "s", if male { "男" } else { "女" }),
                (PostalCode, "p", "〒１００－０００１"),
            ]);
            let c = claim("H2", "5", "山田 一", &format!("ヤマダ{given}"), &compact, if male { "1" } else { "2" }, ("０６１３２０１３", "１", "０１", "1"));
            let out = run(&[a.clone(), b, c]);
            prop_assert!(out.keys.iter().all(|k| *k == out.keys[0]));
            // The key of the person alone is the same key.
            prop_assert_eq!(run(&[a]).keys[0], out.keys[0]);
        }

        /// Holding identical units once changes no key and no count: records drawn with
        /// repeats from a pool of namesakes, twins, people without identifiers and people seen
        /// in several months (the earliest month picks the key), linked merged and unmerged, in
        /// one set and in a set appended to another.
        #[test]
        fn merging_identical_units_changes_no_key(picks in proptest::collection::vec((0usize..10, 0u8..12), 1..40), split in 0usize..40) {
            let pool = [
                claim("H1", "1", "山田太郎", "ヤマダタロウ", "19700302", "1", ("06132013", "1", "1", "01")),
                claim("H1", "1", "山田太郎", "ヤマダタロウ", "19700302", "1", ("06132021", "1", "1", "01")),
                claim("H1", "2", "山田太郎", "ヤマダタロウ", "19700302", "1", ("06132013", "1", "2", "01")),
                claim("H2", "7", "山田太郎", "ヤマダタロウ", "19700302", "1", ("06132013", "1", "1", "01")),
                fhir("H1", "3", ("佐藤", "陽子"), ("サトウ", "ヨウコ"), "2010-05-05", "female", "150-0001", "06132013:12:345:01"),
                fhir("H1", "4", ("佐藤", "洋子"), ("サトウ", "ヨウコ"), "2010-05-05", "female", "150-0001", "06132013:12:345:02"),
                rec("REG", &[(NameKanji, "name", "佐藤洋子"), (BirthDate, "b", "20100505"), (Sex, "s", "2")]),
                rec("REG", &[(NameKanji, "name", "田中一郎"), (BirthDate, "b", "19800101"), (Sex, "s", "1")]),
                rec("REG", &[(Sex, "s", "1")]),
                rec("REG", &[(PublicExpenseRecipient, "r", "1234567"), (BirthDate, "b", "19800101")]),
            ];
            let records: Vec<LinkRecord> = picks
                .iter()
                .map(|&(i, month)| LinkRecord { observed: Some(Date::new(2024, month + 1, 1).unwrap()), ..pool[i].clone() })
                .collect();
            let units = prepare_all(&records);
            let (config, keys, prior) = (LinkageConfig::default(), keys(), PriorKeys::default());
            let mut unmerged = UnitSet::default();
            for u in units.iter().cloned() {
                unmerged.push_unmerged(u);
            }
            let reference = link_set(&unmerged, &config, &keys, &prior);
            let merged = link(&records, &config, &keys, &prior);
            prop_assert_eq!(&merged.keys, &reference.keys);
            prop_assert_eq!(&merged.stats, &reference.stats);
            // Earlier records in one set, later ones appended.
            let split = split.min(units.len());
            let (mut earlier, mut later) = (UnitSet::default(), UnitSet::default());
            let mut unit_of: Vec<u32> = units[..split].iter().map(|u| earlier.push(u.clone())).collect();
            let later_of: Vec<u32> = units[split..].iter().map(|u| later.push(u.clone())).collect();
            let moved = earlier.append(later);
            unit_of.extend(later_of.iter().map(|&u| moved.of(u as usize)));
            let appended = link_set(&earlier, &config, &keys, &prior);
            let keys_of: Vec<PersonKey> = unit_of.iter().map(|&u| appended.keys[u as usize]).collect();
            prop_assert_eq!(&keys_of, &reference.keys.to_vec());
            prop_assert_eq!(&appended.stats, &reference.stats);
        }

        /// The keys do not depend on the order records arrive in (for records without ties).
        #[test]
        fn order_does_not_change_the_partition(seed in 0u64..1000) {
            let mut records = vec![
                fhir("H1", "1", ("渡邊", "太郎"), ("ワタナベ", "タロウ"), "1970-03-02", "male", "100-0001", "06132013:あいう:１８７:01"),
                claim("H2", "77", "渡辺太郎", "ﾜﾀﾅﾍﾞ ﾀﾛｰ", "3450302", "1", ("06132013", "アイウ", "00187", "1")),
                fhir("H1", "2", ("佐藤", "陽子"), ("サトウ", "ヨウコ"), "2010-05-05", "female", "150-0001", "06132013:12:345:01"),
                fhir("H1", "3", ("佐藤", "洋子"), ("サトウ", "ヨウコ"), "2010-05-05", "female", "150-0001", "06132013:12:345:02"),
                claim("H2", "9", "佐藤洋子", "サトウヨウコ", "20100505", "2", ("06132013", "12", "345", "02")),
            ];
            let before = run(&records);
            let mut order: Vec<usize> = (0..records.len()).collect();
            let mut s = seed;
            for i in (1..order.len()).rev() {
                s = s.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                order.swap(i, (s >> 33) as usize % (i + 1));
            }
            records = order.iter().map(|&i| records[i].clone()).collect();
            let after = run(&records);
            for (new_pos, &old_pos) in order.iter().enumerate() {
                prop_assert_eq!(after.keys[new_pos], before.keys[old_pos]);
            }
        }

        /// Blocks as one number keep the order of (date, sex), and two blocks are one number only
        /// when they are the same block.
        #[test]
        fn block_codes_keep_the_order_of_blocks(a in (0u32..100_000_000, 0usize..4), b in (0u32..100_000_000, 0usize..4), near in 0u32..3) {
            let a = (a.0, SEXES[a.1]);
            for b in [(b.0, SEXES[b.1]), (a.0 + near, SEXES[b.1])] {
                prop_assert_eq!(block_code(a).cmp(&block_code(b)), a.cmp(&b));
            }
        }

        /// A unit's content reads back as it was made: every item of every kind in order (up to
        /// the cap), every fingerprint, the block; and a list hands back the same bytes and
        /// observation date for every unit, across pages.
        #[test]
        fn units_read_back_as_they_were_made(
            block in proptest::option::of((0u32..30_000_000, 0usize..4)),
            kinds in proptest::collection::vec(proptest::collection::vec("[a-z0-9ア-ン漢字:]{0,12}", 0..MAX_ITEMS_PER_KIND + 3), ITEM_KINDS),
            prints in proptest::collection::vec(proptest::collection::vec(any::<u64>(), 0..MAX_ITEMS_PER_KIND + 3), PRINT_KINDS),
            copies in 1usize..300,
        ) {
            let block = block.map(|(d, s)| (d, SEXES[s]));
            let kinds_ref: [&[String]; ITEM_KINDS] = std::array::from_fn(|k| kinds[k].as_slice());
            let prints_arr: [Vec<u64>; PRINT_KINDS] = std::array::from_fn(|k| prints[k].clone());
            let unit = LinkUnit { bytes: encode(block, &kinds_ref, &prints_arr), observed: Date::new(2024, 5, 1).ok() };
            let r = unit.as_ref();
            prop_assert_eq!(r.block(), block);
            prop_assert_eq!(r.anchor_count(), r.anchors(&keys()).len());
            let all = [Item::Holder, Item::Birth, Item::KanaFull, Item::KanjiFull, Item::KanaGiven, Item::KanjiGiven, Item::Member, Item::Local, Item::Public];
            for (k, kind) in all.into_iter().enumerate() {
                let got: Vec<&str> = r.items(kind).collect();
                let want: Vec<&str> = kinds[k].iter().take(MAX_ITEMS_PER_KIND).map(String::as_str).collect();
                prop_assert_eq!(got, want);
            }
            for (k, kind) in [Print::Postal, Print::Phone, Print::Address].into_iter().enumerate() {
                let got: Vec<u64> = r.prints(kind).collect();
                let want: Vec<u64> = prints[k].iter().take(MAX_ITEMS_PER_KIND).copied().collect();
                prop_assert_eq!(got, want);
            }
            // Many copies with other dates, and one unit larger than a page in the middle.
            let mut list = UnitList::default();
            let big = LinkUnit { bytes: vec![0u8; 256 * 1024 + 10].into_boxed_slice(), observed: None };
            for i in 0..copies {
                let at = list.push(UnitRef { bytes: r.bytes, observed: Date::new(2000 + (i % 50) as u16, 1, 1).ok() });
                prop_assert_eq!(at as usize, 2 * i);
                list.push(if i == copies / 2 { big.as_ref() } else { r });
            }
            for i in 0..copies {
                prop_assert_eq!(&*list.unit_at(2 * i).bytes, r.bytes);
                prop_assert_eq!(list.unit_at(2 * i).observed, Date::new(2000 + (i % 50) as u16, 1, 1).ok());
                let odd = list.unit_at(2 * i + 1);
                prop_assert_eq!(odd.bytes.len(), if i == copies / 2 { 256 * 1024 + 10 } else { r.bytes.len() });
            }
        }
    }

    /// Text past 65,535 bytes is left out item by item (the ends are two bytes), and a small list
    /// stays small.
    #[test]
    fn a_unit_keeps_at_most_its_text_limit_and_a_small_list_is_small() {
        let long: Vec<String> = (0..20).map(|i| format!("{i}{}", "ア".repeat(2_000))).collect();
        let kinds: [&[String]; ITEM_KINDS] = std::array::from_fn(|k| if k == Item::KanaFull as usize { long.as_slice() } else { &[] });
        let unit = LinkUnit { bytes: encode(None, &kinds, &Default::default()), observed: None };
        let kept: Vec<&str> = unit.as_ref().items(Item::KanaFull).collect();
        // 6,001 or 6,002 bytes an item: ten fit in 65,535.
        assert_eq!(kept.len(), 10);
        assert_eq!(kept, long[..10].iter().map(String::as_str).collect::<Vec<_>>());
        let mut list = UnitList::default();
        let small = LinkUnit::new(&claim("H2", "77", "渡辺太郎", "ﾜﾀﾅﾍﾞ ﾀﾛｰ", "3450302", "1", ("06132013", "アイウ", "00187", "1")));
        list.push(small.as_ref());
        assert!(list.bytes_held() < 8_192, "{}", list.bytes_held());
        assert_eq!(list.unit_at(0), small);
        // `Debug` shows sizes, not the names and numbers a unit holds.
        let shown = format!("{small:?} {:?} {list:?}", list.unit_at(0).as_ref());
        assert!(small.as_ref().items(Item::KanjiFull).next().is_some_and(|n| n.contains("渡")));
        for held in ["渡", "ワタナベ", "187", "06132013"] {
            assert!(!shown.contains(held), "{shown}");
        }
        // An empty unit reads as one: no block, nothing identifying, no anchor.
        let empty = LinkUnit::empty();
        let e = empty.as_ref();
        assert_eq!((e.block(), e.birth(), e.identifying(), e.anchor_count(), e.name_ends().count()), (None, None, false, 0, 0));
    }
}
