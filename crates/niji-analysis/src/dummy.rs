//! Dummy data per permit workspace (issue 5): rows with the schema of the permit's granted
//! columns, drawn from disclosure-safe marginals of the real data, that researchers may see freely.
//!
//! # Marginals ([`marginals`])
//! Computed from a granted table after the consent registry's exclusions, per granted column:
//! - text, small integers (`Int8`–`Int32`: codes like prefectures, ages) and booleans: the
//!   frequency of each value counted in **distinct persons**; values held by fewer than
//!   [`MIN_PERSONS`] persons are left out (pooled into nothing: they never appear);
//! - other numbers (`Int64`, floats): histograms over fixed bins that do not depend on the data
//!   (`0`, then `±[1, 2, 5] × 10^k`, k ≥ −3; see [`bin_of`]), bins with fewer than [`MIN_PERSONS`]
//!   persons dropped;
//! - dates: months, with the same rule;
//! - the share of nulls (to 1/100).
//!
//! Table sizes are rounded: rows to 10 (at least 10 when there are any), persons to 100 (at least
//! 100). Nothing else of the real data is kept, so generation ([`generate`]) can only ever show
//! values, bins or months held by at least [`MIN_PERSONS`] real persons.
//!
//! # Generation ([`generate`])
//! One dummy population per permit, as many persons as the largest table's rounded persons; a
//! table's rows belong to its first `persons` dummy persons (each of them has a row when there are
//! enough rows), so joins on `person_id` across tables find people. Every cell is drawn on its own:
//! null with the column's null share, otherwise a value with probability proportional to its
//! persons (a number uniformly within its bin, a date uniformly within its month). Deterministic:
//! the same marginals and seed give the same batches ([`seed_of`] derives the seed from the permit
//! id).
//!
//! # Queries ([`query_dummy`])
//! The same permit and researcher checks as [`crate::query_real`]; the dummy tables are generated
//! on each call (deterministic, so the same permit sees the same rows while the real data and the
//! registry do not change) and queried in a [`Workspace::open_dummy`] session, whose queries may
//! return rows. Reading the real data for the marginals is an `analysis_runs` row of kind
//! `dummy_refresh` (released, with the datasets read and the registry version applied: the
//! receipt), and the query is logged as `analysis.dummy_query` with the SQL's hash only.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use niji_core::{AuditEvent, AuditSink};
use niji_instance::Instance;
use niji_review::PermitPolicy;
use niji_sandbox::arrow::array::{
    Array, ArrayRef, BooleanArray, BooleanBuilder, Date32Array, Date32Builder, FixedSizeBinaryArray, FixedSizeBinaryBuilder, Float32Array,
    Float64Array, Float64Builder, Int16Array, Int32Array, Int32Builder, Int64Array, Int64Builder, Int8Array, LargeStringArray, StringArray,
    StringBuilder, UInt32Array, UInt64Array,
};
use niji_sandbox::arrow::datatypes::{DataType, Field, Schema};
use niji_sandbox::arrow::record_batch::RecordBatch;
use niji_sandbox::{GrantedTable, Limits, Workspace};
use sha2::{Digest, Sha256};

use crate::{AnalysisError, Receipt};

/// The fewest distinct real persons a value, bin or month must have to appear in dummy data.
pub const MIN_PERSONS: u64 = 10;
/// The lake's person column.
const PERSON_KEY: &str = "person_key";
/// Rows per generated batch.
const BATCH_ROWS: usize = 65_536;
/// What `analysis_runs.code_sha256` names for a refresh: the generator, not the query.
const GENERATOR: &str = "niji-analysis:dummy:v1";

/// A value of a column's marginal.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Value {
    Text(String),
    Int(i64),
    Bool(bool),
    /// A fixed bin of a number ([`bin_of`]).
    Bin(i32),
    /// A month: `year * 12 + month - 1`.
    Month(i32),
}

/// The disclosure-safe marginal of one granted column.
#[derive(Clone, Debug, PartialEq)]
pub struct ColumnMarginal {
    pub name: String,
    pub data_type: DataType,
    /// Share of the rows without a value, to 1/100.
    pub null_rate: f64,
    /// Values held by at least [`MIN_PERSONS`] distinct persons, with their number of persons, in order.
    pub values: Vec<(Value, u64)>,
}

/// The disclosure-safe marginals of one granted table.
#[derive(Clone, Debug, PartialEq)]
pub struct TableMarginals {
    pub dataset: String,
    pub table: String,
    /// Rows, rounded to 10 (at least 10 when there are any).
    pub rows: u64,
    /// Distinct persons, rounded to 100 (at least 100 when there are rows).
    pub persons: u64,
    /// The granted columns, in the table's order.
    pub columns: Vec<ColumnMarginal>,
}

/// What the researcher sees of a dummy query: column names and rows as text (null as empty text,
/// person ids in hex).
#[derive(Clone, Debug, PartialEq)]
pub struct DummyOutput {
    pub columns: Vec<String>,
    pub rows: Vec<Vec<String>>,
}

/// The seed of a permit's dummy data.
pub fn seed_of(permit_id: i64) -> [u8; 32] {
    Sha256::new().chain_update(b"niji-analysis:dummy-seed\0").chain_update(permit_id.to_le_bytes()).finalize().into()
}

/// The fixed bin of a number: 0 for |v| < 0.001 (and non-finite values), otherwise ± the index of
/// `[1, 2) · 10^k`, `[2, 5) · 10^k`, `[5, 10) · 10^k` counted from k = −3 (k at most 15).
pub fn bin_of(v: f64) -> i32 {
    let a = v.abs();
    if !a.is_finite() || a < 1e-3 {
        return 0;
    }
    let mut m = a.log10().floor() as i32;
    let mut mant = a / 10f64.powi(m);
    if mant >= 10.0 {
        m += 1;
        mant /= 10.0;
    } else if mant < 1.0 {
        m -= 1;
        mant *= 10.0;
    }
    let (m, sub) = if m > 15 {
        (15, 2)
    } else {
        (
            m.max(-3),
            if mant < 2.0 {
                0
            } else if mant < 5.0 {
                1
            } else {
                2
            },
        )
    };
    let idx = (m + 3) * 3 + sub + 1;
    if v < 0.0 {
        -idx
    } else {
        idx
    }
}

/// The magnitudes `[lo, hi)` of a bin (its sign aside).
pub fn bin_bounds(bin: i32) -> (f64, f64) {
    if bin == 0 {
        return (0.0, 0.0);
    }
    let i = bin.abs() - 1;
    let scale = 10f64.powi(i / 3 - 3);
    let (lo, hi) = [(1.0, 2.0), (2.0, 5.0), (5.0, 10.0)][(i % 3) as usize];
    (lo * scale, hi * scale)
}

/// Days from 1970-01-01 to the Julian day number.
const UNIX_EPOCH_JULIAN: i32 = 2_440_588;

fn month_of(days: i32) -> Option<i32> {
    let d = time::Date::from_julian_day(days.checked_add(UNIX_EPOCH_JULIAN)?).ok()?;
    Some(d.year() * 12 + d.month() as i32 - 1)
}

/// The first day (days since 1970-01-01) and the length of a month.
fn month_days(month: i32) -> Option<(i32, i32)> {
    let m = time::Month::try_from((month.rem_euclid(12) + 1) as u8).ok()?;
    let year = month.div_euclid(12);
    let first = time::Date::from_calendar_date(year, m, 1).ok()?;
    Some((first.to_julian_day() - UNIX_EPOCH_JULIAN, m.length(year) as i32))
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Text,
    Int,
    Bool,
    Binned,
    Month,
    /// Not summarized: always null in dummy data.
    Other,
}

fn kind_of(t: &DataType) -> Kind {
    match t {
        DataType::Utf8 | DataType::LargeUtf8 => Kind::Text,
        DataType::Int8 | DataType::Int16 | DataType::Int32 => Kind::Int,
        DataType::Boolean => Kind::Bool,
        DataType::Int64 | DataType::UInt32 | DataType::UInt64 | DataType::Float32 | DataType::Float64 => Kind::Binned,
        DataType::Date32 => Kind::Month,
        _ => Kind::Other,
    }
}

/// The value of row `row` of a column of kind `kind`, or `None` for a null (or a type not summarized).
fn value_at(column: &dyn Array, kind: Kind, row: usize) -> Option<Value> {
    if column.is_null(row) {
        return None;
    }
    let any = column.as_any();
    macro_rules! num {
        ($($t:ty),*) => {{
            $(if let Some(a) = any.downcast_ref::<$t>() { return Some(a.value(row) as f64); })*
            None::<f64>
        }};
    }
    let number = || -> Option<f64> { num!(Int64Array, UInt32Array, UInt64Array, Float32Array, Float64Array) };
    let int = || -> Option<i64> {
        if let Some(a) = any.downcast_ref::<Int32Array>() {
            return Some(a.value(row) as i64);
        }
        if let Some(a) = any.downcast_ref::<Int16Array>() {
            return Some(a.value(row) as i64);
        }
        any.downcast_ref::<Int8Array>().map(|a| a.value(row) as i64)
    };
    match kind {
        Kind::Text => match any.downcast_ref::<StringArray>() {
            Some(a) => Some(Value::Text(a.value(row).to_owned())),
            None => any.downcast_ref::<LargeStringArray>().map(|a| Value::Text(a.value(row).to_owned())),
        },
        Kind::Int => int().map(Value::Int),
        Kind::Bool => any.downcast_ref::<BooleanArray>().map(|a| Value::Bool(a.value(row))),
        Kind::Binned => number().map(|v| Value::Bin(bin_of(v))),
        Kind::Month => any.downcast_ref::<Date32Array>().and_then(|a| month_of(a.value(row))).map(Value::Month),
        Kind::Other => None,
    }
}

fn round_rows(n: u64) -> u64 {
    match n {
        0 => 0,
        1..=9 => 10,
        _ => (n + 5) / 10 * 10,
    }
}

fn round_persons(n: u64) -> u64 {
    if n == 0 {
        0
    } else {
        ((n + 50) / 100 * 100).max(100)
    }
}

/// The disclosure-safe marginals of a granted table's granted columns, after leaving out the rows
/// of `excluded` persons.
pub fn marginals(t: &GrantedTable, policy: &PermitPolicy, excluded: &HashSet<[u8; 32]>) -> Result<TableMarginals, AnalysisError> {
    let key_index = t.schema.index_of(PERSON_KEY).map_err(|_| AnalysisError::Internal)?;
    let granted: Vec<usize> = (0..t.schema.fields().len())
        .filter(|&i| {
            let name = t.schema.field(i).name();
            i != key_index && name != niji_sandbox::PERSON_ID && policy.allows_column(&t.dataset, &t.table, name)
        })
        .collect();
    let kinds: Vec<Kind> = granted.iter().map(|&i| kind_of(t.schema.field(i).data_type())).collect();
    let mut persons: HashMap<[u8; 32], u32> = HashMap::new();
    let mut rows = 0u64;
    let mut nulls = vec![0u64; granted.len()];
    let mut holders: Vec<HashMap<Value, HashSet<u32>>> = vec![HashMap::new(); granted.len()];
    for batch in &t.batches {
        if batch.schema().fields() != t.schema.fields() {
            return Err(AnalysisError::Internal);
        }
        let keys = batch.column(key_index).as_any().downcast_ref::<FixedSizeBinaryArray>().ok_or(AnalysisError::Internal)?;
        for row in 0..batch.num_rows() {
            if keys.is_null(row) {
                continue;
            }
            let Ok(key) = <[u8; 32]>::try_from(keys.value(row)) else { return Err(AnalysisError::Internal) };
            if excluded.contains(&key) {
                continue;
            }
            let next = persons.len() as u32;
            let person = *persons.entry(key).or_insert(next);
            rows += 1;
            for (c, (&i, &kind)) in granted.iter().zip(&kinds).enumerate() {
                match value_at(batch.column(i).as_ref(), kind, row) {
                    Some(v) => {
                        holders[c].entry(v).or_default().insert(person);
                    }
                    None => nulls[c] += 1,
                }
            }
        }
    }
    let columns = granted
        .iter()
        .zip(holders)
        .zip(nulls)
        .map(|((&i, holders), nulls)| {
            let field = t.schema.field(i);
            let mut values: Vec<(Value, u64)> = holders.into_iter().map(|(v, p)| (v, p.len() as u64)).filter(|(_, n)| *n >= MIN_PERSONS).collect();
            values.sort();
            let null_rate = if rows == 0 { 1.0 } else { (nulls as f64 / rows as f64 * 100.0).round() / 100.0 };
            ColumnMarginal { name: field.name().clone(), data_type: field.data_type().clone(), null_rate, values }
        })
        .collect();
    Ok(TableMarginals {
        dataset: t.dataset.clone(),
        table: t.table.clone(),
        rows: round_rows(rows),
        persons: round_persons(persons.len() as u64),
        columns,
    })
}

/// SplitMix64: small, fast, and the same on every platform.
struct Rng(u64);

impl Rng {
    fn new(seed: &[u8; 32], parts: &[&str]) -> Rng {
        let mut h = Sha256::new().chain_update(b"niji-analysis:dummy-rng\0").chain_update(seed);
        for p in parts {
            h.update(p.as_bytes());
            h.update([0]);
        }
        let d = h.finalize();
        Rng(u64::from_le_bytes(d[..8].try_into().expect("8 bytes")))
    }

    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in [0, 1).
    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }

    fn below(&mut self, n: u64) -> u64 {
        if n == 0 {
            0
        } else {
            self.next() % n
        }
    }
}

/// The key of dummy person `i` of a population.
fn dummy_key(seed: &[u8; 32], i: u64) -> [u8; 32] {
    Sha256::new().chain_update(b"niji-analysis:dummy-person\0").chain_update(seed).chain_update(i.to_le_bytes()).finalize().into()
}

/// Draws the cells of one column.
struct Sampler<'a> {
    marginal: &'a ColumnMarginal,
    /// Cumulative persons of `marginal.values`.
    cumulative: Vec<u64>,
    rng: Rng,
}

impl Sampler<'_> {
    fn draw(&mut self) -> Option<&Value> {
        let total = *self.cumulative.last()?;
        if self.rng.unit() < self.marginal.null_rate {
            return None;
        }
        let x = self.rng.below(total);
        let i = self.cumulative.partition_point(|&c| c <= x);
        self.marginal.values.get(i).map(|(v, _)| v)
    }

    /// A magnitude within a bin, signed like the bin.
    fn number(&mut self, bin: i32, integer: bool) -> f64 {
        let (lo, hi) = bin_bounds(bin);
        let mut m = lo + (hi - lo) * self.rng.unit();
        if integer {
            m = m.floor().max(lo);
        } else {
            m = (m * 1000.0).round() / 1000.0;
            if m >= hi {
                m = lo;
            }
        }
        if bin < 0 {
            -m
        } else {
            m
        }
    }
}

/// Dummy tables with the schemas of the granted columns (`person_key` of dummy persons first, then
/// the granted columns in the table's order), drawn from `marginals` with `seed`.
pub fn generate(marginals: &[TableMarginals], seed: &[u8; 32]) -> Result<Vec<GrantedTable>, AnalysisError> {
    let population = marginals.iter().map(|m| m.persons).max().unwrap_or(0);
    let mut out = Vec::with_capacity(marginals.len());
    for m in marginals {
        let mut fields = vec![Field::new(PERSON_KEY, DataType::FixedSizeBinary(32), false)];
        fields.extend(m.columns.iter().map(|c| Field::new(c.name.clone(), c.data_type.clone(), true)));
        let schema = Arc::new(Schema::new(fields));
        let persons = m.persons.min(population).max(1);
        let keys: Vec<[u8; 32]> = (0..persons.min(m.rows)).map(|i| dummy_key(seed, i)).collect();
        let mut rows_rng = Rng::new(seed, &[&m.dataset, &m.table, PERSON_KEY]);
        let mut samplers: Vec<Sampler> = m
            .columns
            .iter()
            .map(|c| {
                // Values are drawn by their persons counts rounded to 10 (as the catalog shows
                // them): the dummy data is regenerated when anyone opts out, and exact weights would
                // show that person's values as the difference between two refreshes.
                let mut acc = 0;
                let cumulative = c.values.iter().map(|(_, n)| {
                    acc += niji_core::disclosure::catalog_count(*n).unwrap_or(0);
                    acc
                });
                Sampler { marginal: c, cumulative: cumulative.collect(), rng: Rng::new(seed, &[&m.dataset, &m.table, &c.name]) }
            })
            .collect();
        let mut batches = Vec::new();
        let mut done = 0u64;
        while done < m.rows {
            let n = (m.rows - done).min(BATCH_ROWS as u64) as usize;
            let mut key_column = FixedSizeBinaryBuilder::with_capacity(n, 32);
            for r in 0..n as u64 {
                let row = done + r;
                let person = if row < keys.len() as u64 { row } else { rows_rng.below(keys.len() as u64) };
                key_column.append_value(keys[person as usize]).map_err(|_| AnalysisError::Internal)?;
            }
            let mut columns: Vec<ArrayRef> = vec![Arc::new(key_column.finish())];
            for s in samplers.iter_mut() {
                columns.push(column(s, n)?);
            }
            batches.push(RecordBatch::try_new(schema.clone(), columns).map_err(|_| AnalysisError::Internal)?);
            done += n as u64;
        }
        out.push(GrantedTable { dataset: m.dataset.clone(), table: m.table.clone(), schema, batches });
    }
    Ok(out)
}

/// `n` cells of one column.
fn column(s: &mut Sampler, n: usize) -> Result<ArrayRef, AnalysisError> {
    let t = s.marginal.data_type.clone();
    macro_rules! build {
        ($builder:expr, $pick:expr) => {{
            let mut b = $builder;
            for _ in 0..n {
                let v = s.draw().cloned();
                b.append_option(v.and_then(|v| ($pick)(&mut *s, v)));
            }
            Arc::new(b.finish()) as ArrayRef
        }};
    }
    let array = match t {
        DataType::Utf8 => build!(StringBuilder::new(), |_: &mut Sampler, v| match v {
            Value::Text(x) => Some(x),
            _ => None,
        }),
        DataType::Int32 => build!(Int32Builder::with_capacity(n), |_: &mut Sampler, v| match v {
            Value::Int(x) => i32::try_from(x).ok(),
            _ => None,
        }),
        DataType::Boolean => build!(BooleanBuilder::with_capacity(n), |_: &mut Sampler, v| match v {
            Value::Bool(x) => Some(x),
            _ => None,
        }),
        DataType::Int64 => build!(Int64Builder::with_capacity(n), |s: &mut Sampler, v| match v {
            Value::Bin(b) => Some(s.number(b, true) as i64),
            _ => None,
        }),
        DataType::Float64 => build!(Float64Builder::with_capacity(n), |s: &mut Sampler, v| match v {
            Value::Bin(b) => Some(s.number(b, false)),
            _ => None,
        }),
        DataType::Date32 => build!(Date32Builder::with_capacity(n), |s: &mut Sampler, v| match v {
            Value::Month(m) => month_days(m).map(|(first, len)| first + s.rng.below(len as u64) as i32),
            _ => None,
        }),
        // Other types (none in the lake today) stay null.
        other => niji_sandbox::arrow::array::new_null_array(&other, n),
    };
    Ok(array)
}

/// Runs `sql` for `user_id` on the dummy data of permit `permit_id`: rows may come back.
pub async fn query_dummy(instance: &Instance, user_id: i64, permit_id: i64, sql: &str) -> Result<DummyOutput, AnalysisError> {
    let started = time::OffsetDateTime::now_utc();
    let mut receipt = None;
    let result = run(instance, user_id, permit_id, sql, started, &mut receipt).await;
    let mut data = match &result {
        Ok(out) => serde_json::json!({"outcome": "answered", "rows": out.rows.len()}),
        Err(e) => serde_json::json!({"outcome": "refused", "reason": e.to_string()}),
    };
    data["sql_sha256"] = hex::encode(Sha256::digest(sql.as_bytes())).into();
    let mut run_id = None;
    if let Some(r) = receipt {
        let r: Receipt = r;
        let datasets = serde_json::to_string(&r.datasets).map_err(|_| AnalysisError::Internal)?;
        let generator = hex::encode(Sha256::digest(GENERATOR.as_bytes()));
        // A refresh is recorded when the dummy data changes: new dataset versions or a new
        // registry version since the permit's last refresh (the same inputs give the same rows).
        let runs = instance.store.analysis_runs().await.map_err(|_| AnalysisError::Internal)?;
        let last = runs.iter().rev().find(|x| x.permit_id == permit_id && x.kind == "dummy_refresh");
        if let Some(last) = last.filter(|x| x.registry_version == r.registry_version && x.datasets == datasets && x.code_sha256 == generator) {
            data["run"] = last.id.into();
            data["registry_version"] = r.registry_version.into();
            let event =
                AuditEvent::new(format!("user:{user_id}"), time::OffsetDateTime::now_utc(), "analysis.dummy_query", format!("permit:{permit_id}"))
                    .with_data(data);
            instance.record(&event).map_err(|_| AnalysisError::Internal)?;
            return result;
        }
        let id = instance
            .store
            .insert_analysis_run(&niji_store::NewAnalysisRun {
                permit_id,
                user_id,
                kind: "dummy_refresh",
                code_sha256: &generator,
                outcome: "released",
                registry_version: r.registry_version,
                excluded_persons: r.excluded as i64,
                datasets: &datasets,
                started_at: started.unix_timestamp(),
                finished_at: time::OffsetDateTime::now_utc().unix_timestamp(),
            })
            .await
            .map_err(|_| AnalysisError::Internal)?;
        data["run"] = id.into();
        data["registry_version"] = r.registry_version.into();
        run_id = Some(id);
    }
    let event = AuditEvent::new(format!("user:{user_id}"), time::OffsetDateTime::now_utc(), "analysis.dummy_query", format!("permit:{permit_id}"))
        .with_data(data);
    let index = instance.record(&event).map_err(|_| AnalysisError::Internal)?;
    if let Some(id) = run_id {
        instance.store.set_analysis_run_log_index(id, index as i64).await.map_err(|_| AnalysisError::Internal)?;
    }
    result
}

async fn run(
    instance: &Instance,
    user_id: i64,
    permit_id: i64,
    sql: &str,
    started: time::OffsetDateTime,
    receipt: &mut Option<Receipt>,
) -> Result<DummyOutput, AnalysisError> {
    let crate::permit::PermitContext { policy, .. } = crate::permit::permit_context(instance, user_id, permit_id).await?;
    let (tables, excluded, read) = crate::permit::read_real(instance, &policy, None, started).await?;

    // Marginals, then dummy rows: the real rows are dropped before any query runs.
    let seed = seed_of(permit_id);
    let policy_for_marginals = policy.clone();
    let dummy = tokio::task::spawn_blocking(move || -> Result<Vec<GrantedTable>, AnalysisError> {
        let marginals = tables.iter().map(|t| marginals(t, &policy_for_marginals, &excluded)).collect::<Result<Vec<_>, _>>()?;
        drop(tables);
        generate(&marginals, &seed)
    })
    .await
    .map_err(|_| AnalysisError::Internal)??;
    *receipt = Some(read);

    let secret: [u8; 32] = Sha256::new().chain_update(b"niji-analysis:dummy-person-ids\0").chain_update(seed).finalize().into();
    let workspace = Workspace::open_dummy(dummy, &policy, secret, Limits::default()).map_err(AnalysisError::Refused)?;
    let result = workspace.run(sql).await.map_err(AnalysisError::Refused)?;
    let rows = result.rows.iter().map(|row| row.iter().map(text_of).collect()).collect();
    Ok(DummyOutput { columns: result.columns, rows })
}

fn text_of(v: &niji_sandbox::Scalar) -> String {
    use niji_sandbox::Scalar;
    match v {
        v if v.is_null() => String::new(),
        Scalar::FixedSizeBinary(_, Some(bytes)) | Scalar::Binary(Some(bytes)) => hex::encode(bytes),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use niji_review::application::{PurposeCategory, Track};
    use niji_review::{DatasetGrant, TableGrant};
    use niji_sandbox::arrow::array::new_null_array;

    const DS: &str = "test-ehr";

    fn policy(tables: &[(&str, &[&str])]) -> PermitPolicy {
        PermitPolicy {
            application_id: 1,
            version: 1,
            datasets: vec![DatasetGrant {
                dataset: DS.into(),
                tables: tables
                    .iter()
                    .map(|(t, cols)| TableGrant { table: t.to_string(), columns: cols.iter().map(|c| c.to_string()).collect() })
                    .collect(),
            }],
            cohort: None,
            purpose: "test".into(),
            purpose_category: PurposeCategory::AcademicResearch,
            recipients: vec![],
            researchers: vec![],
            linkage: vec![],
            track: Track::Visiting,
            output_preset: "ndb".into(),
            starts_on: time::macros::date!(2026 - 01 - 01),
            expires_on: time::macros::date!(2026 - 12 - 31),
            conditions: vec![],
            date_shift_days: None,
        }
    }

    fn key(p: u32) -> [u8; 32] {
        let mut k = [0u8; 32];
        k[..4].copy_from_slice(&p.to_le_bytes());
        k
    }

    /// A lake table: rows as (person, column values by name); other columns null.
    fn lake_table(table: &str, persons: &[u32], columns: Vec<(&str, ArrayRef)>) -> GrantedTable {
        let schema = niji_lake::table_schema(table).unwrap();
        let arrays: Vec<ArrayRef> = schema
            .fields()
            .iter()
            .map(|f| {
                if f.name() == PERSON_KEY {
                    Arc::new(FixedSizeBinaryArray::try_from_iter(persons.iter().map(|p| key(*p))).unwrap()) as ArrayRef
                } else if let Some((_, a)) = columns.iter().find(|(n, _)| n == f.name()) {
                    a.clone()
                } else {
                    new_null_array(f.data_type(), persons.len())
                }
            })
            .collect();
        let batch = RecordBatch::try_new(schema.clone(), arrays).unwrap();
        let half = persons.len() / 2;
        GrantedTable { dataset: DS.into(), table: table.into(), schema, batches: vec![batch.slice(0, half), batch.slice(half, persons.len() - half)] }
    }

    fn date(y: i32, m: u8, d: u8) -> i32 {
        time::Date::from_calendar_date(y, time::Month::try_from(m).unwrap(), d).unwrap().to_julian_day() - UNIX_EPOCH_JULIAN
    }

    /// conditions of 60 persons: COMMON held by 15 persons (3 rows each), RARE by 9 persons (20
    /// rows each), SOLO by one, EDGE by 10 of whom person 59 is excluded; onsets in 2024-03 for
    /// 15 persons, 2023-01 for 3; ages 40 (40 persons) and 101 (2); claim numbers 100–199
    /// (12 persons) and 7,000,000 (1).
    fn conditions() -> GrantedTable {
        let mut persons = Vec::new();
        let mut codes = Vec::new();
        let mut onsets = Vec::new();
        let mut ages = Vec::new();
        let mut claims = Vec::new();
        let mut push = |p: u32, code: &str, onset: Option<i32>, age: Option<i32>, claim: Option<i64>| {
            persons.push(p);
            codes.push(Some(code.to_string()));
            onsets.push(onset);
            ages.push(age);
            claims.push(claim);
        };
        for p in 0..15 {
            for _ in 0..3 {
                push(p, "COMMON", Some(date(2024, 3, 1 + p as u8)), Some(40), Some(100 + p as i64));
            }
        }
        for p in 15..24 {
            for _ in 0..20 {
                push(p, "RARE", Some(date(2023, 1, 5)), Some(40), None);
            }
        }
        push(24, "SOLO", Some(date(2022, 7, 7)), Some(101), Some(7_000_000));
        push(25, "SOLO2", None, Some(101), None);
        for p in 50..60 {
            push(p, "EDGE", None, Some(40), None);
        }
        for p in 26..40 {
            push(p, "COMMON", None, Some(40), None);
        }
        lake_table(
            "conditions",
            &persons,
            vec![
                ("code", Arc::new(StringArray::from(codes)) as ArrayRef),
                ("onset", Arc::new(Date32Array::from(onsets))),
                ("age", Arc::new(Int32Array::from(ages))),
                ("claim", Arc::new(Int64Array::from(claims))),
                ("source", Arc::new(StringArray::from(vec![Some("ehr"); persons.len()]))),
                ("alt_codes", Arc::new(StringArray::from(vec![Some("SECRET"); persons.len()]))),
            ],
        )
    }

    fn patients() -> GrantedTable {
        let persons: Vec<u32> = (0..60).collect();
        let sex: Vec<&str> = persons.iter().map(|p| if p % 2 == 0 { "male" } else { "female" }).collect();
        lake_table("patients", &persons, vec![("sex", Arc::new(StringArray::from(sex)) as ArrayRef)])
    }

    const GRANT: &[(&str, &[&str])] = &[("conditions", &["code", "onset", "age", "claim", "source"]), ("patients", &["sex"])];

    fn excluded() -> HashSet<[u8; 32]> {
        HashSet::from([key(59)])
    }

    fn texts(t: &GrantedTable, column: &str) -> Vec<Option<String>> {
        let mut out = Vec::new();
        for b in &t.batches {
            let a = b.column(b.schema().index_of(column).unwrap()).as_any().downcast_ref::<StringArray>().unwrap().clone();
            out.extend(a.iter().map(|v| v.map(str::to_owned)));
        }
        out
    }

    #[test]
    fn marginals_keep_only_values_of_ten_persons_or_more() {
        let m = marginals(&conditions(), &policy(GRANT), &excluded()).unwrap();
        let names: Vec<&str> = m.columns.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(names, ["source", "code", "onset", "claim", "age"], "granted columns in the table's order");
        let code = &m.columns[1];
        assert_eq!(code.values, [(Value::Text("COMMON".into()), 29)], "RARE (9 persons, 180 rows), SOLO and EDGE (10 - 1 excluded) are left out");
        assert_eq!(m.columns[2].values, [(Value::Month(2024 * 12 + 2), 15)]);
        assert_eq!(m.columns[3].values, [(Value::Bin(bin_of(150.0)), 15)]);
        assert_eq!(m.columns[4].values, [(Value::Int(40), 47)]);
        // 45 + 180 + 2 + 9 + 14 rows = 250 rows (the excluded person's row left out), 57 persons.
        assert_eq!((m.rows, m.persons), (250, 100));
        assert_eq!(m.columns[0].null_rate, 0.0);
        assert!(m.columns[3].null_rate > 0.8);
    }

    #[test]
    fn dummy_tables_have_the_granted_schema_safe_values_and_joinable_persons() {
        let p = policy(GRANT);
        let ms: Vec<TableMarginals> = [conditions(), patients()].iter().map(|t| marginals(t, &p, &excluded()).unwrap()).collect();
        let seed = seed_of(7);
        let dummy = generate(&ms, &seed).unwrap();
        assert_eq!(dummy.len(), 2);
        let c = &dummy[0];
        let names: Vec<&str> = c.schema.fields().iter().map(|f| f.name().as_str()).collect();
        assert_eq!(names, ["person_key", "source", "code", "onset", "claim", "age"]);
        let rows: usize = c.batches.iter().map(|b| b.num_rows()).sum();
        assert_eq!(rows, 250);
        assert_eq!(dummy[1].batches.iter().map(|b| b.num_rows()).sum::<usize>(), 60);
        let codes = texts(c, "code");
        assert!(codes.iter().all(|v| v.as_deref() == Some("COMMON")), "only the common code, never null here");
        for b in &c.batches {
            let onset = b.column(3).as_any().downcast_ref::<Date32Array>().unwrap();
            for d in onset.iter().flatten() {
                assert_eq!(month_of(d), Some(2024 * 12 + 2));
            }
            let claim = b.column(4).as_any().downcast_ref::<Int64Array>().unwrap();
            for v in claim.iter().flatten() {
                assert!((100..200).contains(&v), "{v}");
            }
            let age = b.column(5).as_any().downcast_ref::<Int32Array>().unwrap();
            assert!(age.iter().flatten().all(|a| a == 40));
        }
        // Every person of a table is a person of the population; the conditions' persons have
        // patients rows (joins find people).
        let persons = |t: &GrantedTable| -> HashSet<Vec<u8>> {
            t.batches
                .iter()
                .flat_map(|b| {
                    let a = b.column(0).as_any().downcast_ref::<FixedSizeBinaryArray>().unwrap().clone();
                    (0..a.len()).map(move |i| a.value(i).to_vec())
                })
                .collect()
        };
        let (cp, pp) = (persons(c), persons(&dummy[1]));
        assert!(cp.intersection(&pp).count() >= 50, "{} {}", cp.len(), pp.len());
        assert!(!cp.iter().any(|k| k[..4] == 0u32.to_le_bytes() && k[4..].iter().all(|b| *b == 0)), "no real person key");
        // Same seed, same tables; another seed, other rows.
        let again = generate(&ms, &seed).unwrap();
        for (a, b) in dummy.iter().zip(&again) {
            assert_eq!(a.batches, b.batches);
        }
        let other = generate(&ms, &seed_of(8)).unwrap();
        assert_ne!(other[0].batches, dummy[0].batches);
    }

    #[test]
    fn bins_are_fixed_and_hold_their_values() {
        for (v, lo, hi) in [
            (1.0, 1.0, 2.0),
            (1.99, 1.0, 2.0),
            (2.0, 2.0, 5.0),
            (9.5, 5.0, 10.0),
            (10.0, 10.0, 20.0),
            (0.004, 0.002, 0.005),
            (1000.0, 1000.0, 2000.0),
        ] {
            assert_eq!(bin_bounds(bin_of(v)), (lo, hi), "{v}");
            assert_eq!(bin_bounds(bin_of(-v)), (lo, hi), "{v}");
            assert!(bin_of(-v) < 0);
        }
        assert_eq!(bin_of(0.0), 0);
        assert_eq!(bin_of(f64::NAN), 0);
        let mut s = Sampler {
            marginal: &ColumnMarginal { name: "x".into(), data_type: DataType::Int64, null_rate: 0.0, values: vec![] },
            cumulative: vec![],
            rng: Rng(1),
        };
        for bin in [-7, -1, 1, 5, 12, 40] {
            for integer in [true, false] {
                for _ in 0..200 {
                    let v = s.number(bin, integer);
                    assert_eq!(bin_of(v), bin, "{bin} {v} {integer}");
                }
            }
        }
    }

    /// The property over many random tables: no value held by fewer than ten real persons ever
    /// appears in dummy data; a value held by ten or more does, given enough rows.
    #[test]
    fn property_rare_values_never_appear_and_common_ones_do() {
        for case in 0..40u64 {
            let mut rng = Rng(case);
            let n_rows = 200 + rng.below(1500) as usize;
            let n_persons = 20 + rng.below(200) as u32;
            let n_values = 2 + rng.below(60);
            let mut persons = Vec::with_capacity(n_rows);
            let mut codes = Vec::with_capacity(n_rows);
            let mut holders: HashMap<String, HashSet<u32>> = HashMap::new();
            for _ in 0..n_rows {
                let p = rng.below(n_persons as u64) as u32;
                // Skewed: low values common, high ones rare.
                let spread = 1 + rng.below(n_values);
                let v = rng.below(spread);
                let code = if rng.below(10) == 0 { None } else { Some(format!("V{v}")) };
                if let Some(c) = &code {
                    holders.entry(c.clone()).or_default().insert(p);
                }
                persons.push(p);
                codes.push(code);
            }
            let t = lake_table("conditions", &persons, vec![("code", Arc::new(StringArray::from(codes)) as ArrayRef)]);
            let p = policy(&[("conditions", &["code"])]);
            let m = marginals(&t, &p, &HashSet::new()).unwrap();
            let mut big = m.clone();
            big.rows = 20_000;
            for (marg, expected_rows) in [(m, round_rows(n_rows as u64) as usize), (big, 20_000)] {
                let dummy = generate(&[marg], &seed_of(case as i64)).unwrap();
                let rows: usize = dummy[0].batches.iter().map(|b| b.num_rows()).sum();
                assert_eq!(rows, expected_rows);
                let seen: HashSet<String> = texts(&dummy[0], "code").into_iter().flatten().collect();
                for v in &seen {
                    assert!(holders[v].len() as u64 >= MIN_PERSONS, "case {case}: {v} held by {} persons appeared", holders[v].len());
                }
                if rows == 20_000 {
                    let total: usize = holders.values().filter(|h| h.len() >= 10).map(|h| h.len()).sum();
                    for (v, h) in &holders {
                        // Common enough to be drawn 20,000 × share ≥ a few times.
                        if h.len() >= 10 && h.len() * 200 >= total {
                            assert!(seen.contains(v), "case {case}: {v} held by {} persons is missing", h.len());
                        }
                    }
                }
            }
        }
    }
}
