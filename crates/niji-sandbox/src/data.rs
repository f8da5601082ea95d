//! Preparing a granted table: granted columns only, `person_key` re-keyed per permit (a 4-byte
//! id, distinct per person within the workspace: [`PersonIds`]), opted-out persons dropped, and —
//! when the permit says so — every date column shifted by the same per-person offset (intervals
//! within a person kept; the offset comes from the permit's secret, so two permits shift
//! differently). Dates held as text (`claims.month`, `birth_year_month`) are coarser and left as
//! they are.

use std::collections::{HashMap, HashSet};
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, BooleanArray, Date32Array, FixedSizeBinaryArray, FixedSizeBinaryBuilder};
use datafusion::arrow::compute::{filter, interleave_record_batch};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::arrow::record_batch::RecordBatch;
use hmac::{Hmac, Mac};
use niji_review::PermitPolicy;
use sha2::Sha256;

use crate::{GrantedTable, Refusal, SandboxError, PERSON_ID};

/// The lake's person column.
pub(crate) const PERSON_KEY: &str = "person_key";
/// Bytes of a re-keyed person id: 4, so that the persons count and joins read a quarter of what a
/// 16-byte id would cost them (the count's loop is bound by reading ids it otherwise never needs).
pub const PERSON_ID_BYTES: i32 = 4;
/// A person id as a number: its 4 bytes read little-endian (no byte swap per row in the persons
/// count). Tables are sorted by this number, not by the bytes.
pub(crate) type Id = u32;
/// The id in row `row` of a person-id column, as the number tables are sorted by (its bytes read
/// little-endian; not the bytes' order).
pub(crate) fn id_at(ids: &FixedSizeBinaryArray, row: usize) -> Id {
    Id::from_le_bytes(ids.value(row).try_into().expect("person id width"))
}

/// The person-id column an aggregate of ours reads (its first argument).
pub(crate) fn person_ids(values: &[ArrayRef]) -> datafusion::common::Result<&FixedSizeBinaryArray> {
    values
        .first()
        .and_then(|a| a.as_any().downcast_ref::<FixedSizeBinaryArray>())
        .filter(|a| a.value_length() == PERSON_ID_BYTES)
        .ok_or_else(|| datafusion::common::DataFusionError::Internal("an aggregate over persons of a non-id column".into()))
}

/// The rows of a batch an aggregate over persons takes: the id not null, within the `FILTER`.
pub(crate) struct RowsTaken {
    /// `None`: all `len` rows.
    taken: Option<datafusion::arrow::buffer::BooleanBuffer>,
    len: usize,
}

impl RowsTaken {
    /// The rows taken, as runs `start..end` of consecutive rows.
    pub(crate) fn runs(&self) -> Box<dyn Iterator<Item = (usize, usize)> + '_> {
        match &self.taken {
            None => Box::new(std::iter::once((0, self.len))),
            Some(rows) => Box::new(rows.set_slices()),
        }
    }
}

/// The rows of `values`' batch an aggregate takes: not null, within its `FILTER`. For person ids,
/// read the ids of a run from `ids.value_data()`, [`PERSON_ID_BYTES`] a row (a sliced array
/// slices its value buffer: no element offset).
pub(crate) fn rows_taken(values: &dyn Array, opt_filter: Option<&BooleanArray>) -> RowsTaken {
    let nulls = values.nulls().filter(|n| n.null_count() > 0);
    let taken = match (opt_filter, nulls) {
        (None, None) => None,
        (Some(f), n) => {
            let within = match f.nulls() {
                Some(unknown) => f.values() & unknown.inner(),
                None => f.values().clone(),
            };
            Some(match n {
                Some(n) => &within & n.inner(),
                None => within,
            })
        }
        (None, Some(n)) => Some(n.inner().clone()),
    };
    RowsTaken { taken, len: values.len() }
}

/// A person-id column of these ids (for tests).
#[cfg(test)]
pub(crate) fn id_array(values: &[Id]) -> ArrayRef {
    let mut b = FixedSizeBinaryBuilder::new(PERSON_ID_BYTES);
    for v in values {
        b.append_value(v.to_le_bytes()).expect("4 bytes");
    }
    Arc::new(b.finish())
}

/// The one 4-byte value no person gets (the persons count's mark for "none yet").
pub(crate) const NO_ID: Id = Id::MAX;

/// HMAC-SHA256 under the permit's secret, keyed once.
pub(crate) struct Rekeyer {
    mac: Hmac<Sha256>,
}

impl Rekeyer {
    pub(crate) fn new(secret: &[u8; 32]) -> Rekeyer {
        Rekeyer { mac: <Hmac<Sha256> as Mac>::new_from_slice(secret).expect("HMAC takes any key length") }
    }

    /// The person's date offset in `[-days, +days]`.
    pub(crate) fn date_offset(&self, key: &[u8], days: u32) -> i32 {
        let mut mac = self.mac.clone();
        mac.update(b"niji-sandbox:date-shift:");
        mac.update(key);
        let full = mac.finalize().into_bytes();
        let n = u64::from_be_bytes(full[..8].try_into().expect("8 bytes"));
        let span = 2 * u64::from(days) + 1;
        (n % span) as i32 - days as i32
    }

    /// Where the person's id is looked for first: the keyed hash's first 4 bytes.
    fn preferred_id(&self, key: &[u8]) -> Id {
        let mut mac = self.mac.clone();
        mac.update(b"niji-sandbox:person-id:");
        mac.update(key);
        let full = mac.finalize().into_bytes();
        Id::from_le_bytes(full[..4].try_into().expect("4 bytes"))
    }
}

/// Hashes a lake person key by its four 8-byte words folded and mixed. Person keys are HMAC outputs
/// under the vault's secret, uniformly distributed and not chosen by anyone who could aim at
/// collisions, so they need no hashing of their own; SipHash over 32 bytes per row was most of
/// opening a workspace.
#[derive(Default)]
pub(crate) struct KeyBytesHasher(u64);

impl Hasher for KeyBytesHasher {
    fn write(&mut self, bytes: &[u8]) {
        // `[u8; 32]` hashes as its length, then its bytes: the bytes replace what came before,
        // their four 8-byte words folded into one.
        if bytes.len() == 32 {
            self.0 = bytes.chunks_exact(8).fold(0, |h, w| h ^ u64::from_le_bytes(w.try_into().expect("8 bytes")));
        } else {
            for &b in bytes {
                self.0 = self.0.rotate_left(8) ^ u64::from(b);
            }
        }
    }

    fn write_usize(&mut self, _length: usize) {}

    fn finish(&self) -> u64 {
        // SplitMix64's finalizer: every bit of the result depends on every bit of the input (the
        // hash table takes its bucket from the low bits and its tags from the high ones), for
        // keys that are not uniform, such as those made by hand in tests.
        let mut x = self.0;
        x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        x ^ (x >> 31)
    }
}

/// A set of lake person keys.
pub(crate) type KeySet = HashSet<[u8; 32], BuildHasherDefault<KeyBytesHasher>>;

/// The person ids of one workspace. 4 bytes are too few for a keyed hash alone (a million persons
/// hold about a hundred colliding pairs), so ids are assigned over the whole set of persons: in
/// the order of `(preferred id, key)`, each person takes its preferred id or, if that is taken, the
/// next free one above; ids past the top wrap to the lowest free ones. [`NO_ID`] is never given.
/// Distinct by construction, and the same for the same permit and persons; the ids of two permits
/// are unrelated because the preferred ids come from the permit's secret.
pub(crate) struct PersonIds {
    ids: HashMap<[u8; 32], Id, BuildHasherDefault<KeyBytesHasher>>,
}

impl PersonIds {
    pub(crate) fn assign(rekey: &Rekeyer, keys: KeySet) -> Result<PersonIds, SandboxError> {
        if keys.len() as u64 > u64::from(NO_ID) {
            return Err(SandboxError::Internal);
        }
        Ok(PersonIds::assign_preferred(keys.into_iter().map(|k| (rekey.preferred_id(&k), k)).collect()))
    }

    fn assign_preferred(mut wanted: Vec<(Id, [u8; 32])>) -> PersonIds {
        wanted.sort_unstable();
        let mut ids = HashMap::with_capacity_and_hasher(wanted.len(), BuildHasherDefault::default());
        let mut taken: Vec<Id> = Vec::with_capacity(wanted.len());
        let mut wrapped = Vec::new();
        let mut next: u64 = 0;
        for (preferred, key) in wanted {
            let id = u64::from(preferred).max(next);
            match Id::try_from(id).ok().filter(|&id| id != NO_ID) {
                Some(id) => {
                    ids.insert(key, id);
                    taken.push(id);
                    next = u64::from(id) + 1;
                }
                None => wrapped.push(key),
            }
        }
        // `taken` ascends: the free ids from 0 are the gaps in it.
        let mut candidate: Id = 0;
        let mut holes = taken.iter().peekable();
        for key in wrapped {
            while holes.peek().is_some_and(|&&t| t == candidate) {
                holes.next();
                candidate += 1;
            }
            ids.insert(key, candidate);
            candidate = candidate.wrapping_add(1);
        }
        PersonIds { ids }
    }

    pub(crate) fn get(&self, key: &[u8; 32]) -> Option<Id> {
        self.ids.get(key).copied()
    }
}

/// The table's person keys, checked: a `person_key` column of `FixedSizeBinary(32)`.
pub(crate) fn person_keys(t: &GrantedTable) -> Result<(usize, Vec<&FixedSizeBinaryArray>), SandboxError> {
    let key_index = t.schema.index_of(PERSON_KEY).map_err(|_| SandboxError::NotAllowed(Refusal::NoPersonKey))?;
    if t.schema.field(key_index).data_type() != &DataType::FixedSizeBinary(32) {
        return Err(SandboxError::NotAllowed(Refusal::NoPersonKey));
    }
    let mut columns = Vec::with_capacity(t.batches.len());
    for batch in &t.batches {
        if batch.schema().fields() != t.schema.fields() {
            return Err(SandboxError::NotAllowed(Refusal::SchemaMismatch));
        }
        columns.push(batch.column(key_index).as_any().downcast_ref::<FixedSizeBinaryArray>().ok_or(SandboxError::NotAllowed(Refusal::NoPersonKey))?);
    }
    Ok((key_index, columns))
}

/// Adds the table's persons that are not excluded to `into`.
pub(crate) fn collect_persons(t: &GrantedTable, excluded: &HashSet<[u8; 32]>, into: &mut KeySet) -> Result<(), SandboxError> {
    for keys in person_keys(t)?.1 {
        let mut last: Option<&[u8]> = None;
        for key in keys.iter().flatten() {
            // The lake lists a person's rows together.
            if last == Some(key) {
                continue;
            }
            last = Some(key);
            if let Ok(k) = <[u8; 32]>::try_from(key) {
                if excluded.is_empty() || !excluded.contains(&k) {
                    into.insert(k);
                }
            }
        }
    }
    Ok(())
}

/// The output schema and batches of one granted table.
///
/// With `hidden` ([`Hidden::Institution`]), a table that has [`crate::INSTITUTION_COLUMN`] keeps
/// it too, numbered, last, as [`crate::institutions::HIDDEN`] (whether the permit grants the code
/// or not); the second value returned says whether it did.
pub(crate) fn prepare(
    t: &GrantedTable,
    policy: &PermitPolicy,
    rekey: &Rekeyer,
    ids_of: &PersonIds,
    hidden: Hidden,
) -> Result<(SchemaRef, bool, Vec<RecordBatch>), SandboxError> {
    let (key_index, key_columns) = person_keys(t)?;
    // Granted columns in the table's order; a granted column named like the person id is not kept.
    let mut kept: Vec<usize> = (0..t.schema.fields().len())
        .filter(|&i| {
            let name = t.schema.field(i).name();
            i != key_index && name != PERSON_ID && policy.allows_column(&t.dataset, &t.table, name)
        })
        .collect();
    let mut fields = vec![Arc::new(Field::new(PERSON_ID, DataType::FixedSizeBinary(PERSON_ID_BYTES), false))];
    fields.extend(kept.iter().map(|&i| Arc::new(t.schema.field(i).clone())));
    // Also when the permit grants the code: the hidden column is what is counted.
    let institution = t.schema.index_of(crate::INSTITUTION_COLUMN).ok().filter(|_| hidden == Hidden::Institution);
    if let Some(i) = institution {
        kept.push(i);
        // A number per distinct code (its place among the table's codes as first met): never
        // shown, only counted, and a number is counted faster than a text.
        fields.push(Arc::new(Field::new(crate::institutions::HIDDEN, DataType::UInt32, true)));
    }
    let out_schema = Arc::new(Schema::new(fields));

    let mut out = Vec::with_capacity(t.batches.len());
    let mut institution_numbers: HashMap<String, u32> = HashMap::new();
    for (batch, keys) in t.batches.iter().zip(key_columns) {
        let mut ids = FixedSizeBinaryBuilder::with_capacity(keys.len(), PERSON_ID_BYTES);
        let mut keep = Vec::with_capacity(keys.len());
        let shift = policy.date_shift_days.filter(|d| *d > 0);
        let mut offsets: Vec<i32> = Vec::new();
        // The lake lists a person's rows together: the previous row's id and offset are reused.
        let mut last: Option<(&[u8], bool, Id, i32)> = None;
        for row in 0..keys.len() {
            if keys.is_null(row) {
                keep.push(false);
                continue;
            }
            let key = keys.value(row);
            let (excluded_row, id, offset) = match last {
                Some((k, x, id, offset)) if k == key => (x, id, offset),
                _ => {
                    // Excluded persons were given no id.
                    let known = <&[u8; 32]>::try_from(key).ok().and_then(|k| ids_of.get(k));
                    let (x, id) = match known {
                        Some(id) => (false, id),
                        None => (true, 0),
                    };
                    let offset = match shift {
                        Some(days) if !x => rekey.date_offset(key, days),
                        _ => 0,
                    };
                    last = Some((key, x, id, offset));
                    (x, id, offset)
                }
            };
            keep.push(!excluded_row);
            if !excluded_row {
                ids.append_value(id.to_le_bytes()).map_err(|_| SandboxError::Internal)?;
                if shift.is_some() {
                    offsets.push(offset);
                }
            }
        }
        let ids: ArrayRef = Arc::new(ids.finish());
        let all_kept = keep.iter().all(|k| *k);
        let mask = BooleanArray::from(keep);
        let mut columns = Vec::with_capacity(kept.len() + 1);
        columns.push(ids);
        for &i in &kept {
            let column = batch.column(i);
            let column = if all_kept { column.clone() } else { filter(column.as_ref(), &mask).map_err(|_| SandboxError::Internal)? };
            if Some(i) == institution && columns.len() == kept.len() {
                columns.push(institution_numbers_of(column.as_ref(), &mut institution_numbers)?);
                continue;
            }
            let column = match (shift, column.as_any().downcast_ref::<Date32Array>()) {
                (Some(_), Some(dates)) => {
                    let shifted: Date32Array = dates.iter().zip(&offsets).map(|(d, o)| d.map(|d| d + o)).collect();
                    Arc::new(shifted) as ArrayRef
                }
                _ => column,
            };
            columns.push(column);
        }
        let prepared = RecordBatch::try_new(out_schema.clone(), columns).map_err(|_| SandboxError::Internal)?;
        if prepared.num_rows() > 0 {
            out.push(prepared);
        }
    }
    Ok((out_schema, institution.is_some(), out))
}

/// The hidden institution column of a batch: each code as its number in `numbers` (given in the
/// order codes are first met), null as null.
fn institution_numbers_of(codes: &dyn Array, numbers: &mut HashMap<String, u32>) -> Result<ArrayRef, SandboxError> {
    let text = datafusion::arrow::compute::cast(codes, &DataType::Utf8).map_err(|_| SandboxError::Internal)?;
    let text = text.as_any().downcast_ref::<datafusion::arrow::array::StringArray>().ok_or(SandboxError::Internal)?;
    let mut out = datafusion::arrow::array::UInt32Builder::with_capacity(text.len());
    for code in text.iter() {
        match code {
            None => out.append_null(),
            Some(code) => {
                let next = u32::try_from(numbers.len()).map_err(|_| SandboxError::Internal)?;
                let number = match numbers.get(code) {
                    Some(&n) => n,
                    None => *numbers.entry(code.to_owned()).or_insert(next),
                };
                out.append_value(number);
            }
        }
    }
    Ok(Arc::new(out.finish()))
}

/// Which column a prepared table keeps beyond those granted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Hidden {
    None,
    /// The institution's code, for counting a cell's institutions (never for the query to read).
    Institution,
}

/// Sorts a prepared table by `person_id` (its first column) and cuts it into `n` partitions (at least
/// one, possibly empty) at person boundaries, each dealt into batches of at most [`BATCH_ROWS`]: every
/// partition then holds an ascending, contiguous range of ids, the order [`crate::persons`] counts by.
/// Also returns the most rows one person has (read from the sorted order, for `worst_case`).
pub(crate) fn by_person(batches: Vec<RecordBatch>, n: usize) -> Result<(Vec<Vec<RecordBatch>>, u64), SandboxError> {
    let n = n.max(1);
    let mut parts = vec![Vec::new(); n];
    if batches.is_empty() {
        return Ok((parts, 0));
    }
    // `id << 32 | row` of every row (rows numbered across the batches), sorted: by id, then in
    // the lake's order. Rows are taken from the prepared batches directly, without a concatenated
    // copy of the whole table first.
    let starts: Vec<usize> = batches
        .iter()
        .scan(0usize, |next, b| {
            let start = *next;
            *next += b.num_rows();
            Some(start)
        })
        .collect();
    let rows: usize = batches.iter().map(RecordBatch::num_rows).sum();
    if u32::try_from(rows).is_err() {
        return Err(SandboxError::Internal);
    }
    let mut order: Vec<u64> = Vec::with_capacity(rows);
    for (batch, &start) in batches.iter().zip(&starts) {
        let ids = batch.column(0).as_any().downcast_ref::<FixedSizeBinaryArray>().ok_or(SandboxError::Internal)?;
        order.extend((0..ids.len()).map(|r| (u64::from(id_at(ids, r)) << 32) | (start + r) as u64));
    }
    order.sort_unstable();
    let id_of = |o: u64| (o >> 32) as Id;
    let most_per_person = order.chunk_by(|a, b| id_of(*a) == id_of(*b)).map(<[u64]>::len).max().unwrap_or(0) as u64;
    let source_of = |o: u64| {
        let row = (o & 0xFFFF_FFFF) as usize;
        let batch = starts.partition_point(|&s| s <= row) - 1;
        (batch, row - starts[batch])
    };
    // Cut at person boundaries.
    let mut cuts = vec![0];
    for p in 1..n {
        let mut end = (rows * p / n).max(cuts[p - 1]);
        while end > 0 && end < rows && id_of(order[end]) == id_of(order[end - 1]) {
            end += 1;
        }
        cuts.push(end);
    }
    cuts.push(rows);
    let sources: Vec<&RecordBatch> = batches.iter().collect();
    // The partitions gathered in parallel. Each batch is built on its own (not a slice of one
    // sorted copy): a slice would report the whole copy's size, and the planner's size estimates
    // (the choice of a join's build side) would be off by the number of batches.
    let gather = |range: &[u64]| -> Result<Vec<RecordBatch>, SandboxError> {
        range
            .chunks(BATCH_ROWS)
            .map(|chunk| {
                let indices: Vec<(usize, usize)> = chunk.iter().map(|&o| source_of(o)).collect();
                interleave_record_batch(&sources, &indices).map_err(|_| SandboxError::Internal)
            })
            .collect()
    };
    let gathered: Vec<Result<Vec<RecordBatch>, SandboxError>> = std::thread::scope(|scope| {
        let handles: Vec<_> = cuts
            .windows(2)
            .map(|w| {
                let range = &order[w[0]..w[1]];
                scope.spawn(move || gather(range))
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap_or(Err(SandboxError::Internal))).collect()
    });
    for (part, batches) in parts.iter_mut().zip(gathered) {
        *part = batches?;
    }
    Ok((parts, most_per_person))
}

/// Rows per batch of a registered table.
pub(crate) const BATCH_ROWS: usize = 8192;

#[cfg(test)]
mod tests {
    use super::*;

    /// Assigns ids to persons whose preferred ids are given (not drawn from a key), and checks
    /// they come out distinct and as expected, in the order of the keys.
    fn check(preferred: &[Id], expected: &[Id]) {
        let keys: Vec<[u8; 32]> = (0..preferred.len()).map(|i| [i as u8; 32]).collect();
        let ids = PersonIds::assign_preferred(keys.iter().zip(preferred).map(|(k, p)| (*p, *k)).collect());
        let got: Vec<Id> = keys.iter().map(|k| ids.get(k).unwrap()).collect();
        assert_eq!(got, expected);
    }

    #[test]
    fn colliding_persons_get_the_next_free_id() {
        check(&[5, 9, 1], &[5, 9, 1]);
        // Two prefer 5: the smaller key keeps it, the other takes 6; 6's owner moves on to 7.
        check(&[5, 5, 6], &[5, 6, 7]);
        check(&[3, 3, 3, 10], &[3, 4, 5, 10]);
        // Past the top, the lowest free ids.
        check(&[NO_ID - 1, NO_ID - 1, NO_ID - 1, 0, 2], &[NO_ID - 1, 1, 3, 0, 2]);
        // The mark is never given: its person takes the lowest free id.
        check(&[NO_ID, 5], &[0, 5]);
    }

    #[test]
    fn ids_are_distinct_for_many_persons_and_follow_the_secret() {
        let keys: KeySet = (0..200_000u32)
            .map(|i| {
                let mut k = [0u8; 32];
                k[..4].copy_from_slice(&i.to_be_bytes());
                k
            })
            .collect();
        let a = PersonIds::assign(&Rekeyer::new(&[1; 32]), keys.clone()).unwrap();
        let b = PersonIds::assign(&Rekeyer::new(&[2; 32]), keys.clone()).unwrap();
        let distinct: HashSet<Id> = keys.iter().map(|k| a.get(k).unwrap()).collect();
        assert_eq!(distinct.len(), keys.len());
        // Two permits agree on a person's id only by chance (about 1 in 2^32 per person).
        let same = keys.iter().filter(|k| a.get(k) == b.get(k)).count();
        assert!(same <= 2, "{same} persons with the same id under two secrets");
        // The same secret and persons give the same ids.
        let again = PersonIds::assign(&Rekeyer::new(&[1; 32]), keys.clone()).unwrap();
        assert!(keys.iter().all(|k| a.get(k) == again.get(k)));
    }
}
