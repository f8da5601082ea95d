//! Preparing a granted table: granted columns only, `person_key` re-keyed per permit, opted-out
//! persons dropped, and — when the permit says so — every date column shifted by the same
//! per-person offset (intervals within a person kept; the offset comes from the permit's secret,
//! so two permits shift differently). Dates held as text (`claims.month`, `birth_year_month`)
//! are coarser and left as they are.

use std::collections::HashSet;
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
/// Bytes of a re-keyed person id.
pub const PERSON_ID_BYTES: i32 = 16;

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

    pub(crate) fn person_id(&self, key: &[u8]) -> [u8; 16] {
        let mut mac = self.mac.clone();
        mac.update(b"niji-sandbox:person-id:");
        mac.update(key);
        let full = mac.finalize().into_bytes();
        let mut out = [0u8; 16];
        out.copy_from_slice(&full[..16]);
        out
    }
}

/// The output schema and batches of one granted table.
pub(crate) fn prepare(
    t: &GrantedTable,
    policy: &PermitPolicy,
    rekey: &Rekeyer,
    excluded: &HashSet<[u8; 32]>,
) -> Result<(SchemaRef, Vec<RecordBatch>), SandboxError> {
    let key_index = t.schema.index_of(PERSON_KEY).map_err(|_| SandboxError::NotAllowed(Refusal::NoPersonKey))?;
    if t.schema.field(key_index).data_type() != &DataType::FixedSizeBinary(32) {
        return Err(SandboxError::NotAllowed(Refusal::NoPersonKey));
    }
    // Granted columns in the table's order; a granted column named like the person id is not kept.
    let kept: Vec<usize> = (0..t.schema.fields().len())
        .filter(|&i| {
            let name = t.schema.field(i).name();
            i != key_index && name != PERSON_ID && policy.allows_column(&t.dataset, &t.table, name)
        })
        .collect();
    let mut fields = vec![Arc::new(Field::new(PERSON_ID, DataType::FixedSizeBinary(PERSON_ID_BYTES), false))];
    fields.extend(kept.iter().map(|&i| Arc::new(t.schema.field(i).clone())));
    let out_schema = Arc::new(Schema::new(fields));

    let mut out = Vec::with_capacity(t.batches.len());
    for batch in &t.batches {
        if batch.schema().fields() != t.schema.fields() {
            return Err(SandboxError::NotAllowed(Refusal::SchemaMismatch));
        }
        let keys = batch.column(key_index).as_any().downcast_ref::<FixedSizeBinaryArray>().ok_or(SandboxError::NotAllowed(Refusal::NoPersonKey))?;
        let mut ids = FixedSizeBinaryBuilder::with_capacity(keys.len(), PERSON_ID_BYTES);
        let mut keep = Vec::with_capacity(keys.len());
        let shift = policy.date_shift_days.filter(|d| *d > 0);
        let mut offsets: Vec<i32> = Vec::new();
        // The lake lists a person's rows together: the previous row's id and offset are reused.
        let mut last: Option<(&[u8], bool, [u8; 16], i32)> = None;
        for row in 0..keys.len() {
            if keys.is_null(row) {
                keep.push(false);
                continue;
            }
            let key = keys.value(row);
            let (excluded_row, id, offset) = match last {
                Some((k, x, id, offset)) if k == key => (x, id, offset),
                _ => {
                    let x = <&[u8; 32]>::try_from(key).map(|k| excluded.contains(k)).unwrap_or(true);
                    let id = if x { [0; 16] } else { rekey.person_id(key) };
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
                ids.append_value(id).map_err(|_| SandboxError::Internal)?;
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
    Ok((out_schema, out))
}

/// Sorts a prepared table by `person_id` (its first column) and cuts it into `n` partitions (at least
/// one, possibly empty) at person boundaries, each dealt into batches of at most [`BATCH_ROWS`]: every
/// partition then holds an ascending, contiguous range of ids, the order [`crate::persons`] counts by.
pub(crate) fn by_person(batches: Vec<RecordBatch>, n: usize) -> Result<Vec<Vec<RecordBatch>>, SandboxError> {
    let n = n.max(1);
    let mut parts = vec![Vec::new(); n];
    if batches.is_empty() {
        return Ok(parts);
    }
    // (id, batch, row) of every row, sorted by id; rows are taken from the prepared batches
    // directly, without a concatenated copy of the whole table first.
    let mut order: Vec<(u128, u32, u32)> = Vec::with_capacity(batches.iter().map(RecordBatch::num_rows).sum());
    for (b, batch) in batches.iter().enumerate() {
        let ids = batch.column(0).as_any().downcast_ref::<FixedSizeBinaryArray>().ok_or(SandboxError::Internal)?;
        order.extend((0..ids.len()).map(|r| (u128::from_be_bytes(ids.value(r).try_into().expect("16-byte id")), b as u32, r as u32)));
    }
    order.sort_unstable();
    let rows = order.len();
    let sources: Vec<&RecordBatch> = batches.iter().collect();
    let mut start = 0;
    for (p, part) in parts.iter_mut().enumerate() {
        let mut end = if p + 1 == n { rows } else { (rows * (p + 1) / n).max(start) };
        while end > 0 && end < rows && order[end].0 == order[end - 1].0 {
            end += 1;
        }
        // Each batch built on its own (not a slice of one sorted copy): a slice would report the
        // whole copy's size, and the planner's size estimates (the choice of a join's build side)
        // would be off by the number of batches.
        for chunk in order[start..end].chunks(BATCH_ROWS) {
            let indices: Vec<(usize, usize)> = chunk.iter().map(|&(_, b, r)| (b as usize, r as usize)).collect();
            part.push(interleave_record_batch(&sources, &indices).map_err(|_| SandboxError::Internal)?);
        }
        start = end;
    }
    Ok(parts)
}

/// Rows per batch of a registered table.
pub(crate) const BATCH_ROWS: usize = 8192;
