//! Preparing a granted table: granted columns only, `person_key` re-keyed per permit, opted-out
//! persons dropped, and — when the permit says so — every date column shifted by the same
//! per-person offset (intervals within a person kept; the offset comes from the permit's secret,
//! so two permits shift differently). Dates held as text (`claims.month`, `birth_year_month`)
//! are coarser and left as they are.

use std::collections::HashSet;
use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, BooleanArray, Date32Array, FixedSizeBinaryArray, FixedSizeBinaryBuilder};
use datafusion::arrow::compute::filter;
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
        for row in 0..keys.len() {
            if keys.is_null(row) {
                keep.push(false);
                continue;
            }
            let key = keys.value(row);
            let excluded_row = <&[u8; 32]>::try_from(key).map(|k| excluded.contains(k)).unwrap_or(true);
            keep.push(!excluded_row);
            if !excluded_row {
                ids.append_value(rekey.person_id(key)).map_err(|_| SandboxError::Internal)?;
                if let Some(days) = shift {
                    offsets.push(rekey.date_offset(key, days));
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

/// Deals batches round-robin into `n` partitions (at least one, possibly empty).
pub(crate) fn split(batches: Vec<RecordBatch>, n: usize) -> Vec<Vec<RecordBatch>> {
    let n = n.max(1);
    let mut parts = vec![Vec::new(); n];
    for (i, b) in batches.into_iter().enumerate() {
        parts[i % n].push(b);
    }
    parts
}
