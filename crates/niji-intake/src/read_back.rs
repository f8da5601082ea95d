//! Earlier linkable records read back from the vault for a linkage run (every one, or only those
//! of the persons the submission can reach: [`crate::ReadBack`]), reduced to linkage units.
//!
//! What is held grows with the records read back, so each is held in as few bytes as it can
//! be: identical units once, in a set of their own whose pages past the held bytes go to a
//! sealed scratch file (the same identity comes back from every monthly version that holds
//! it), and per record its unit's index and the numbers of two keys ([`KeyNumbers`]). Boxed
//! units and 32-byte keys per record were 173 MB of live Rust heap at the peak of a small
//! submission that read back 365,718 records; 109 MB now (`NIJI_BENCH_AGAIN=1`, UKE, 1M persons).

use std::collections::{HashMap, HashSet};

use niji_privacy::{LinkBucket, LinkRecord, LinkUnit, PersonKey, Pseudonymizer, UnitKeys, UnitSet, UnitsOfRecords};
use niji_vault::Vault;

use crate::{scan, IntakeError};

/// Earlier linkable records read back for a linkage run, reduced to units.
pub(crate) struct ReadBackUnits {
    /// Their units, identical ones held once.
    pub(crate) set: UnitSet,
    /// Per record, in the order read: its unit in `set`.
    pub(crate) unit_of: Vec<u32>,
    /// The key each was stored under.
    pub(crate) stored: KeyNumbers,
    /// The order they were stored in, where they were read in another (`None`: as read).
    pub(crate) order: Option<Vec<u32>>,
    /// The current key of the person each belongs to (the vault's link index), where the read
    /// gave it.
    pub(crate) current: Option<KeyNumbers>,
    /// The anchors the run needs prior keys of (`None`: every stored anchor).
    pub(crate) anchors: Option<Vec<PersonKey>>,
}

/// Keys of records, numbered in order of their first record: 4 bytes a record, not 32 (a
/// person's records share a key, month after month and version after version).
#[derive(Default)]
pub(crate) struct KeyNumbers {
    of_record: Vec<u32>,
    keys: Vec<PersonKey>,
    /// Key → number while records come in ([`KeyNumbers::finish`] frees it).
    numbers: HashMap<PersonKey, u32>,
}

impl KeyNumbers {
    /// The next record's key.
    pub(crate) fn push(&mut self, key: PersonKey) {
        assert!(self.of_record.is_empty() || !self.numbers.is_empty(), "a key pushed after finish");
        let keys = &mut self.keys;
        let number = *self.numbers.entry(key).or_insert_with(|| {
            keys.push(key);
            (keys.len() - 1) as u32
        });
        self.of_record.push(number);
    }

    /// No more records: the lookup from key to number goes (about 50 bytes a distinct key).
    pub(crate) fn finish(&mut self) {
        self.numbers = HashMap::new();
    }

    /// The key of record `i`.
    pub(crate) fn key(&self, i: usize) -> PersonKey {
        self.keys[self.of_record[i] as usize]
    }

    /// Per record, the number of its key.
    pub(crate) fn numbers(&self) -> &[u32] {
        &self.of_record
    }

    /// The distinct keys, by number.
    pub(crate) fn keys(&self) -> &[PersonKey] {
        &self.keys
    }

    /// Per record the number of its key, and the keys by number.
    pub(crate) fn into_parts(self) -> (Vec<u32>, Vec<PersonKey>) {
        (self.of_record, self.keys)
    }

    /// As linkage's keys of units (a record a unit): numbered in order of their first record,
    /// as [`UnitKeys::from_clusters`] takes them.
    pub(crate) fn into_unit_keys(self) -> UnitKeys {
        UnitKeys::from_clusters(self.of_record, self.keys)
    }
}

impl ReadBackUnits {
    /// Nothing read yet; units will go into `set`.
    fn new(set: UnitSet) -> Self {
        ReadBackUnits { set, unit_of: Vec::new(), stored: KeyNumbers::default(), order: None, current: None, anchors: None }
    }

    /// The records' units, by record in the order read.
    pub(crate) fn units(&self) -> UnitsOfRecords<'_> {
        UnitsOfRecords { units: self.set.units(), unit_of: &self.unit_of }
    }

    /// Adds the units of records just read (their keys are pushed by the caller).
    fn push_units(&mut self, units: Vec<LinkUnit>) {
        self.unit_of.extend(units.into_iter().map(|u| self.set.push(u)));
    }
}

/// Every linkable record of the `committed` versions, their units into `set`. Normalized in
/// batches of 16,384 (`prepare_all` uses all cores from 10,000 records on), off the async
/// runtime, as the vault's pages of 4,096 arrive.
pub(crate) async fn read_everything(vault: &Vault, committed: &[String], set: UnitSet) -> Result<ReadBackUnits, IntakeError> {
    const BATCH: usize = 16_384;
    let mut out = ReadBackUnits::new(set);
    let mut pages = vault.link_pages(committed).await?;
    let mut batch: Vec<LinkRecord> = Vec::with_capacity(BATCH);
    loop {
        let page = pages.next().await?;
        let last = page.is_none();
        for r in page.into_iter().flatten() {
            out.stored.push(r.person);
            batch.push(LinkRecord { holder: r.holder, observed: r.observed, identity: scan::linkage_identity(r.identity) });
        }
        if batch.len() >= BATCH || (last && !batch.is_empty()) {
            let records = std::mem::replace(&mut batch, Vec::with_capacity(BATCH));
            out = tokio::task::spawn_blocking(move || {
                out.push_units(niji_privacy::prepare_all(&records));
                out
            })
            .await
            .expect("normalizing does not panic");
        }
        if last {
            break;
        }
    }
    out.stored.finish();
    out.set.close();
    Ok(out)
}

/// The current key of the person of each record stored under `stored` (a stored key shared by
/// two persons: the smaller).
pub(crate) async fn current_keys_of(vault: &Vault, stored: &KeyNumbers) -> Result<KeyNumbers, IntakeError> {
    let current: Vec<PersonKey> = vault.current_keys(stored.keys()).await?.into_iter().map(|c| c[0]).collect();
    let mut out = KeyNumbers::default();
    for &n in stored.numbers() {
        out.push(current[n as usize]);
    }
    out.finish();
    Ok(out)
}

/// The linkable records of the `committed` versions that the `submitted` units reach, read
/// back round by round until a round reaches no one new (`niji_privacy::reach`), their units
/// into `set`.
pub(crate) async fn read_reached(
    vault: &Vault,
    committed: &[String],
    mut submitted: UnitSet,
    hasher: &Pseudonymizer,
    set: UnitSet,
) -> Result<(ReadBackUnits, UnitSet), IntakeError> {
    let mut read = ReadBackUnits::new(set);
    if committed.is_empty() {
        // Nothing to read back: the run needs only the prior keys of whatever anchors are kept.
        return Ok((read, submitted));
    }
    read.current = Some(KeyNumbers::default());
    let mut ids: Vec<i64> = Vec::new();
    let mut asked_buckets: HashSet<LinkBucket> = HashSet::new();
    // Every anchor met (of this submission's units and of those read back): the run needs
    // their prior keys.
    let mut asked_anchors: HashSet<PersonKey> = HashSet::new();
    // Anchors do not depend on grouping: made once a unit, asked for once each.
    let h = hasher.clone();
    let (s, mut fresh_anchors) = tokio::task::spawn_blocking(move || {
        let a = niji_privacy::unit_anchors(submitted.units(), &h);
        (submitted, a)
    })
    .await
    .expect("anchoring does not panic");
    submitted = s;
    let mut persons_read: HashSet<PersonKey> = HashSet::new();
    // A record whose stored key is shared by two persons comes with both.
    let mut ids_read: HashSet<i64> = HashSet::new();
    const PERSONS_PAGE: usize = 2_048;
    loop {
        let h = hasher.clone();
        let (r, s, reached) = tokio::task::spawn_blocking(move || {
            let current = read.current.as_ref().expect("kept while reading");
            let reached = niji_privacy::reach(&read.units(), current.numbers(), submitted.units(), &h);
            // Reaching's tables (grouping every record read back so far) are freed on a
            // blocking-pool thread, into that thread's arena: back to the system before the next
            // page of records comes (197 → 189 MB at the small submission's peak).
            crate::return_freed_memory();
            (read, submitted, reached)
        })
        .await
        .expect("reaching does not panic");
        (read, submitted) = (r, s);
        let buckets: Vec<LinkBucket> = reached.into_iter().filter(|b| asked_buckets.insert(*b)).collect();
        let new_anchors: Vec<PersonKey> = fresh_anchors.drain(..).filter(|a| asked_anchors.insert(*a)).collect();
        if buckets.is_empty() && new_anchors.is_empty() {
            break;
        }
        let persons: Vec<PersonKey> = vault.persons_reached(&buckets, &new_anchors).await?.into_iter().filter(|p| persons_read.insert(*p)).collect();
        // A page of persons at a time: their identities are unsealed, reduced to units and
        // dropped before the next page's.
        let mut found_any = false;
        for page in persons.chunks(PERSONS_PAGE) {
            let found = vault.reached_records(page, committed).await?;
            let mut records = Vec::with_capacity(found.len());
            for r in found {
                if !ids_read.insert(r.id) {
                    continue;
                }
                ids.push(r.id);
                read.stored.push(r.record.person);
                read.current.as_mut().expect("kept while reading").push(r.person);
                records.push(LinkRecord {
                    holder: r.record.holder,
                    observed: r.record.observed,
                    identity: scan::linkage_identity(r.record.identity),
                });
            }
            found_any |= !records.is_empty();
            let h = hasher.clone();
            let (r, a) = tokio::task::spawn_blocking(move || {
                let prepared = niji_privacy::prepare_all(&records);
                let a = niji_privacy::unit_anchors(&prepared[..], &h);
                read.push_units(prepared);
                (read, a)
            })
            .await
            .expect("normalizing does not panic");
            read = r;
            // Identical units read back from several versions have the same anchors.
            fresh_anchors.extend(a.into_iter().filter(|a| !asked_anchors.contains(a)));
        }
        if !found_any {
            break;
        }
    }
    let mut anchors: Vec<PersonKey> = asked_anchors.into_iter().chain(fresh_anchors).collect();
    anchors.sort_unstable();
    anchors.dedup();
    // The order stored, as a run over every record would meet them (the units are not copied
    // into it: the run's set takes them in that order).
    let mut order: Vec<u32> = (0..ids.len() as u32).collect();
    order.sort_unstable_by_key(|&i| ids[i as usize]);
    read.order = Some(order);
    read.anchors = Some(anchors);
    read.stored.finish();
    if let Some(current) = read.current.as_mut() {
        current.finish();
    }
    read.set.close();
    Ok((read, submitted))
}
