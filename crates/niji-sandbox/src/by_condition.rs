//! The persons and the institutions of a row and of each of its conditions, counted by one
//! aggregate for all of them instead of one aggregate a condition.
//!
//! The rewrite ([`crate::check`]) counts, for each cell, the persons (and under the NDB rules the
//! institutions) of its rows and of each condition its aggregates tell apart, and for every two
//! conditions those meeting exactly one of them (differencing). A "Table 1" of six conditional
//! columns has fourteen conditions of its own and fifteen differences: one persons count and one
//! institutions count each meant sixty aggregates going over every row, each with its own
//! filter, 16.8 to 17.8 times the plain query's time (`cargo bench -p niji-sandbox --bench
//! overhead`, `NIJI_BENCH_QUERY=table1`). From three conditions on, one aggregate per person
//! column (in the fast count, [`crate::check`]'s `PersonsCount::InOrder`) and one per institution
//! column, each for up to [`MAX_OUTPUTS`] outputs, take the conditions as arguments and make, per
//! row, a mask of the outputs the row counts in (bit `k`: output `k`; a difference is the
//! exclusive or of its two conditions). Then
//! - persons are counted as [`crate::persons`] counts them, in person order: a group keeps the last
//!   person it counted and the outputs that person was counted in, so a row costs a comparison and
//!   a few bit operations. The same order checks hold (an id going down in a stream, or two merged
//!   states of a group whose id ranges overlap, fail the query with
//!   [`crate::persons::PersonsOrderBroken`], and it is counted again exactly);
//! - institutions are counted as [`crate::institution_count`] counts them, up to its cap, per
//!   output; a group keeps a mask of the outputs that reached the cap, so a row of a group whose
//!   outputs all did costs one AND.
//!
//! The result is a struct of one `Int64` per output, named `"0"`, `"1"`, …, which the rewrite
//! reads into the hidden columns it had before ([`output`]). At most [`MAX_OUTPUTS`] outputs an
//! aggregate.

use std::fmt::Debug;
use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, AsArray, BinaryArray, BinaryBuilder, BooleanArray, FixedSizeBinaryBuilder, Int64Array, StructArray};
use datafusion::arrow::buffer::BooleanBuffer;
use datafusion::arrow::datatypes::{DataType, Field, FieldRef, Fields};
use datafusion::common::{DataFusionError, Result, ScalarValue};
use datafusion::logical_expr::function::{AccumulatorArgs, StateFieldsArgs};
use datafusion::logical_expr::{Accumulator, AggregateUDF, AggregateUDFImpl, EmitTo, Expr, GroupsAccumulator, Signature, Volatility};

use crate::data::{id_at, person_ids, Id, NO_ID, PERSON_ID_BYTES};
use crate::institution_count::{numbers_of, Seen, COUNTED_UP_TO};
use crate::persons::{broken, Ranges};

/// The most outputs one aggregate counts (a bit each in a `u64` mask).
pub(crate) const MAX_OUTPUTS: usize = 64;

/// The rows one output counts.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) enum Counted {
    /// All of them.
    Rows,
    /// Those meeting condition `k` (the aggregate's argument `1 + k`).
    Condition(usize),
    /// Those meeting exactly one of the two conditions.
    Differ(usize, usize),
}

/// The distinct persons of `person` (a person-id column, in person order) over the rows each of
/// `outputs` counts, `conditions` being boolean expressions (true: met; false or null: not).
pub(crate) fn persons_by_condition(person: Expr, conditions: &[Expr], outputs: Vec<Counted>) -> Expr {
    by_condition(What::Persons, person, conditions, outputs)
}

/// The distinct institutions of `numbers` (an institution-number column), up to
/// [`COUNTED_UP_TO`], over the rows each of `outputs` counts.
pub(crate) fn institutions_by_condition(numbers: Expr, conditions: &[Expr], outputs: Vec<Counted>) -> Expr {
    by_condition(What::Institutions, numbers, conditions, outputs)
}

/// Output `k` of a count by condition.
pub(crate) fn output(counts: Expr, k: usize) -> Expr {
    datafusion::functions::core::expr_fn::get_field(counts, k.to_string())
}

fn by_condition(what: What, column: Expr, conditions: &[Expr], outputs: Vec<Counted>) -> Expr {
    assert!(!outputs.is_empty() && outputs.len() <= MAX_OUTPUTS, "one to {MAX_OUTPUTS} outputs");
    let udf = ByCondition { what, outputs, signature: Signature::variadic_any(Volatility::Immutable) };
    AggregateUDF::new_from_impl(udf).call(std::iter::once(column).chain(conditions.iter().cloned()).collect())
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum What {
    Persons,
    Institutions,
}

#[derive(Debug, PartialEq, Eq, Hash)]
struct ByCondition {
    what: What,
    outputs: Vec<Counted>,
    signature: Signature,
}

fn bad() -> DataFusionError {
    DataFusionError::Internal("count by condition".into())
}

/// The struct type of the result: one non-null `Int64` per output.
fn fields(width: usize) -> Fields {
    (0..width).map(|k| Field::new(k.to_string(), DataType::Int64, false)).collect()
}

/// A struct array of `rows` rows whose output `k` in row `r` is `value(r, k)`.
fn counts_array(width: usize, rows: usize, value: impl Fn(usize, usize) -> i64) -> ArrayRef {
    let columns: Vec<ArrayRef> = (0..width).map(|k| Arc::new(Int64Array::from_iter_values((0..rows).map(|r| value(r, k)))) as ArrayRef).collect();
    Arc::new(StructArray::new(fields(width), columns, None))
}

impl AggregateUDFImpl for ByCondition {
    fn name(&self) -> &str {
        match self.what {
            What::Persons => "niji_persons_by_condition",
            What::Institutions => "niji_institutions_by_condition",
        }
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, arg_types: &[DataType]) -> Result<DataType> {
        let column = match self.what {
            What::Persons => DataType::FixedSizeBinary(PERSON_ID_BYTES),
            What::Institutions => DataType::UInt32,
        };
        let conditions_ok = arg_types.iter().skip(1).all(|t| matches!(t, DataType::Boolean | DataType::Null));
        let referenced = self.outputs.iter().all(|o| match *o {
            Counted::Rows => true,
            Counted::Condition(k) => k + 1 < arg_types.len(),
            Counted::Differ(a, b) => a + 1 < arg_types.len() && b + 1 < arg_types.len(),
        });
        if arg_types.first() != Some(&column) || !conditions_ok || !referenced {
            return Err(bad());
        }
        Ok(DataType::Struct(fields(self.outputs.len())))
    }

    fn is_nullable(&self) -> bool {
        false
    }

    fn state_fields(&self, args: StateFieldsArgs) -> Result<Vec<FieldRef>> {
        let name = args.name;
        Ok(match self.what {
            What::Persons => vec![
                Arc::new(Field::new(format!("{name}[counts]"), DataType::Binary, false)),
                Arc::new(Field::new(format!("{name}[first]"), DataType::FixedSizeBinary(PERSON_ID_BYTES), true)),
                Arc::new(Field::new(format!("{name}[last]"), DataType::FixedSizeBinary(PERSON_ID_BYTES), true)),
            ],
            What::Institutions => vec![Arc::new(Field::new(format!("{name}[institutions]"), DataType::Binary, false))],
        })
    }

    fn accumulator(&self, _args: AccumulatorArgs) -> Result<Box<dyn Accumulator>> {
        Ok(match self.what {
            What::Persons => Box::new(OneGroup::new(PersonsGroups::new(self.outputs.clone()))),
            What::Institutions => Box::new(OneGroup::new(InstitutionsGroups::new(self.outputs.clone()))),
        })
    }

    fn default_value(&self, _data_type: &DataType) -> Result<ScalarValue> {
        ScalarValue::try_from_array(&counts_array(self.outputs.len(), 1, |_, _| 0), 0)
    }

    fn groups_accumulator_supported(&self, _args: AccumulatorArgs) -> bool {
        true
    }

    fn create_groups_accumulator(&self, _args: AccumulatorArgs) -> Result<Box<dyn GroupsAccumulator>> {
        Ok(match self.what {
            What::Persons => Box::new(PersonsGroups::new(self.outputs.clone())),
            What::Institutions => Box::new(InstitutionsGroups::new(self.outputs.clone())),
        })
    }
}

/// Per row of a batch, the outputs it counts in (bit `k`: output `k`); 0 for a row outside the
/// aggregate's `FILTER`. `conditions` are the aggregate's arguments after its column.
///
/// Made 64 rows at a time: each output's bits of the 64 rows as a word (an operation on words for
/// a difference), then the 64 × 64 bits transposed into the rows' masks.
fn masks(conditions: &[ArrayRef], outputs: &[Counted], rows: usize, opt_filter: Option<&BooleanArray>) -> Result<Vec<u64>> {
    let blocks = rows.div_ceil(64);
    // Where a boolean column is true (not null), 64 rows a word.
    let true_words = |b: &BooleanArray| -> Result<Vec<u64>> {
        if b.len() != rows {
            return Err(bad());
        }
        let words = |buffer: &BooleanBuffer| {
            let chunks = buffer.bit_chunks();
            let mut w: Vec<u64> = chunks.iter().collect();
            if chunks.remainder_len() > 0 {
                w.push(chunks.remainder_bits());
            }
            w
        };
        let mut values = words(b.values());
        if let Some(known) = b.nulls() {
            values.iter_mut().zip(words(known.inner())).for_each(|(v, k)| *v &= k);
        }
        Ok(values)
    };
    // Where each condition holds (`None`: nowhere, a column of nulls).
    let holds: Vec<Option<Vec<u64>>> = conditions
        .iter()
        .map(|c| match c.data_type() {
            DataType::Null => Ok(None),
            DataType::Boolean => true_words(c.as_boolean()).map(Some),
            _ => Err(bad()),
        })
        .collect::<Result<_>>()?;
    let held = |k: usize| holds.get(k).ok_or_else(bad).map(Option::as_ref);
    let within = opt_filter.map(true_words).transpose()?;
    let all = |i: usize| if i + 1 == blocks && !rows.is_multiple_of(64) { (1u64 << (rows % 64)) - 1 } else { u64::MAX };
    // Per output, the word of each block.
    let words: Vec<Vec<u64>> = outputs
        .iter()
        .map(|counted| {
            Ok(match *counted {
                Counted::Rows => (0..blocks).map(all).collect(),
                Counted::Condition(k) => held(k)?.cloned().unwrap_or_else(|| vec![0; blocks]),
                Counted::Differ(a, b) => match (held(a)?, held(b)?) {
                    (Some(x), Some(y)) => x.iter().zip(y).map(|(x, y)| x ^ y).collect(),
                    (Some(x), None) | (None, Some(x)) => x.clone(),
                    (None, None) => vec![0; blocks],
                },
            })
        })
        .collect::<Result<_>>()?;
    let mut masks = vec![0u64; rows];
    let mut block = [0u64; 64];
    for (i, out) in masks.chunks_mut(64).enumerate() {
        for (j, w) in words.iter().enumerate() {
            block[j] = w[i] & within.as_ref().map_or(u64::MAX, |f| f[i]);
        }
        block[words.len()..].fill(0);
        transpose(&mut block);
        out.copy_from_slice(&block[..out.len()]);
    }
    Ok(masks)
}

/// Transposes a 64 × 64 bit matrix in place: bit `j` of word `i` becomes bit `i` of word `j`
/// (blocks of 32, 16, … 1 bits swapped across the diagonal).
fn transpose(a: &mut [u64; 64]) {
    const MASKS: [u64; 6] =
        [0x0000_0000_FFFF_FFFF, 0x0000_FFFF_0000_FFFF, 0x00FF_00FF_00FF_00FF, 0x0F0F_0F0F_0F0F_0F0F, 0x3333_3333_3333_3333, 0x5555_5555_5555_5555];
    let mut width = 32;
    for m in MASKS {
        for i in 0..64 {
            if i & width == 0 {
                let t = ((a[i] >> width) ^ a[i + width]) & m;
                a[i] ^= t << width;
                a[i + width] ^= t;
            }
        }
        width >>= 1;
    }
}

/// The first `emit_to` groups of a vector holding `width` values a group, taken out of it.
fn take_groups<T>(values: &mut Vec<T>, emit_to: EmitTo, width: usize) -> Vec<T> {
    match emit_to {
        EmitTo::All => std::mem::take(values),
        EmitTo::First(n) => {
            let rest = values.split_off((n * width).min(values.len()));
            std::mem::replace(values, rest)
        }
    }
}

/// Counts persons in person order (see the module). One accumulator per partition and phase:
/// it either updates (`last`, `counted`, `counts`) or merges (`merged`, `merged_counts`), never both.
struct PersonsGroups {
    outputs: Vec<Counted>,
    /// Per group, the last person counted in it ([`NO_ID`]: none yet).
    last: Vec<Id>,
    /// Per group, the outputs its last person was counted in.
    counted: Vec<u64>,
    /// Per group and output (`outputs.len()` a group), its distinct persons.
    counts: Vec<u32>,
    /// The first and the last id counted in the accumulator's stream.
    stream_first: Option<Id>,
    stream_last: Option<Id>,
    /// Merging: per group the id ranges of the states merged, and per group and output the sums.
    merged: Vec<Ranges>,
    merged_counts: Vec<u64>,
    ranges: usize,
}

/// Without the ids it holds (person ids never go to a message: `persons.rs`).
impl Debug for PersonsGroups {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PersonsGroups")
            .field("outputs", &self.outputs.len())
            .field("groups", &self.last.len().max(self.merged.len()))
            .field("ranges", &self.ranges)
            .finish_non_exhaustive()
    }
}

impl PersonsGroups {
    fn new(outputs: Vec<Counted>) -> Self {
        PersonsGroups {
            outputs,
            last: Vec::new(),
            counted: Vec::new(),
            counts: Vec::new(),
            stream_first: None,
            stream_last: None,
            merged: Vec::new(),
            merged_counts: Vec::new(),
            ranges: 0,
        }
    }

    fn width(&self) -> usize {
        self.outputs.len()
    }

    fn resize(&mut self, groups: usize) {
        let width = self.width();
        self.last.resize(groups, NO_ID);
        self.counted.resize(groups, 0);
        self.counts.resize(groups * width, 0);
    }

    /// Partial states: per row its counts (`width` little-endian `u64`), a lower bound of its
    /// ids and its last id (both null where it counted no one: `last` is [`NO_ID`]).
    fn state_arrays(
        width: usize,
        rows: usize,
        first: impl Fn(usize) -> Id,
        last: impl Fn(usize) -> Id,
        count: impl Fn(usize, usize) -> u64,
    ) -> Result<Vec<ArrayRef>> {
        let mut counts = BinaryBuilder::with_capacity(rows, rows * width * 8);
        let mut firsts = FixedSizeBinaryBuilder::with_capacity(rows, PERSON_ID_BYTES);
        let mut lasts = FixedSizeBinaryBuilder::with_capacity(rows, PERSON_ID_BYTES);
        let mut bytes = Vec::with_capacity(width * 8);
        for r in 0..rows {
            bytes.clear();
            bytes.extend((0..width).flat_map(|k| count(r, k).to_le_bytes()));
            counts.append_value(&bytes);
            match last(r) {
                NO_ID => {
                    firsts.append_null();
                    lasts.append_null();
                }
                l => {
                    firsts.append_value(first(r).to_le_bytes())?;
                    lasts.append_value(l.to_le_bytes())?;
                }
            }
        }
        Ok(vec![Arc::new(counts.finish()), Arc::new(firsts.finish()), Arc::new(lasts.finish())])
    }
}

impl GroupsAccumulator for PersonsGroups {
    fn update_batch(
        &mut self,
        values: &[ArrayRef],
        group_indices: &[usize],
        opt_filter: Option<&BooleanArray>,
        total_num_groups: usize,
    ) -> Result<()> {
        let ids = person_ids(values)?;
        let masks = masks(&values[1..], &self.outputs, ids.len(), opt_filter)?;
        self.resize(total_num_groups);
        let width = self.width();
        let bytes = ids.value_data();
        let id_width = PERSON_ID_BYTES as usize;
        let (mut down, mut previous) = (false, self.stream_last.unwrap_or(0));
        let mut first = None;
        let mut any = false;
        let known = ids.nulls().filter(|n| n.null_count() > 0);
        for (row, (&mask, &g)) in masks.iter().zip(group_indices).enumerate() {
            if mask == 0 || known.is_some_and(|n| n.is_null(row)) {
                continue;
            }
            let id = Id::from_le_bytes(bytes[row * id_width..(row + 1) * id_width].try_into().expect("person id width"));
            down |= id < previous;
            previous = id;
            any = true;
            first = first.or(Some(id));
            if self.last[g] != id {
                self.last[g] = id;
                self.counted[g] = 0;
            }
            let mut new = mask & !self.counted[g];
            self.counted[g] |= new;
            let counts = &mut self.counts[g * width..(g + 1) * width];
            while new != 0 {
                counts[new.trailing_zeros() as usize] += 1;
                new &= new - 1;
            }
        }
        // Ascending, so the last id is the largest: none may be the "none yet" mark.
        if down || (any && previous == NO_ID) {
            return Err(broken());
        }
        if any {
            self.stream_first = self.stream_first.or(first);
            self.stream_last = Some(previous);
        }
        Ok(())
    }

    fn evaluate(&mut self, emit_to: EmitTo) -> Result<ArrayRef> {
        let width = self.width();
        if self.merged.is_empty() {
            let counts = take_groups(&mut self.counts, emit_to, width);
            take_groups(&mut self.last, emit_to, 1);
            take_groups(&mut self.counted, emit_to, 1);
            Ok(counts_array(width, counts.len() / width, |r, k| i64::from(counts[r * width + k])))
        } else {
            let emitted = take_groups(&mut self.merged, emit_to, 1);
            self.ranges -= emitted.iter().map(Ranges::len).sum::<usize>();
            let counts = take_groups(&mut self.merged_counts, emit_to, width);
            Ok(counts_array(width, emitted.len(), |r, k| counts[r * width + k] as i64))
        }
    }

    fn state(&mut self, emit_to: EmitTo) -> Result<Vec<ArrayRef>> {
        if !self.merged.is_empty() {
            // A merged state has several ranges; it cannot be passed on as one.
            return Err(broken());
        }
        let width = self.width();
        let last = take_groups(&mut self.last, emit_to, 1);
        take_groups(&mut self.counted, emit_to, 1);
        let counts = take_groups(&mut self.counts, emit_to, width);
        // The stream's first id: a lower bound of every group's ids that costs nothing a row.
        let first = self.stream_first.unwrap_or(0);
        Self::state_arrays(width, last.len(), |_| first, |r| last[r], |r, k| u64::from(counts[r * width + k]))
    }

    fn merge_batch(&mut self, values: &[ArrayRef], group_indices: &[usize], total_num_groups: usize) -> Result<()> {
        let [counts, first, last] = values else { return Err(bad()) };
        let counts = counts.as_any().downcast_ref::<BinaryArray>().ok_or_else(bad)?;
        let first = first.as_fixed_size_binary_opt().ok_or_else(bad)?;
        let last = last.as_fixed_size_binary_opt().ok_or_else(bad)?;
        let width = self.width();
        self.merged.resize(total_num_groups, Ranges::default());
        self.merged_counts.resize(total_num_groups * width, 0);
        for (row, &g) in group_indices.iter().enumerate() {
            if counts.is_null(row) || first.is_null(row) || last.is_null(row) {
                continue;
            }
            let these = counts.value(row);
            if these.len() != width * 8 || first.value_length() != PERSON_ID_BYTES || last.value_length() != PERSON_ID_BYTES {
                return Err(bad());
            }
            self.merged[g].admit(id_at(first, row), id_at(last, row))?;
            self.ranges += 1;
            for (sum, c) in self.merged_counts[g * width..(g + 1) * width].iter_mut().zip(these.chunks_exact(8)) {
                *sum += u64::from_le_bytes(c.try_into().expect("eight bytes"));
            }
        }
        Ok(())
    }

    /// (DataFusion calls it only for an aggregate that `supports_convert_to_state`, which these
    /// do not say; kept correct, and tested, as `persons.rs`'s.)
    fn convert_to_state(&self, values: &[ArrayRef], opt_filter: Option<&BooleanArray>) -> Result<Vec<ArrayRef>> {
        let ids = person_ids(values)?;
        let masks = masks(&values[1..], &self.outputs, ids.len(), opt_filter)?;
        let taken = |r: usize| masks[r] != 0 && !ids.is_null(r);
        let id = |r: usize| if taken(r) { id_at(ids, r) } else { NO_ID };
        // Each row is its own state: its range is its id alone.
        Self::state_arrays(self.width(), ids.len(), id, id, |r, k| u64::from(taken(r) && masks[r] >> k & 1 == 1))
    }

    fn size(&self) -> usize {
        self.last.capacity() * 4
            + self.counted.capacity() * 8
            + self.counts.capacity() * 4
            + self.merged.capacity() * std::mem::size_of::<Ranges>()
            + self.merged_counts.capacity() * 8
            + self.ranges * 48
    }
}

/// Counts institutions up to [`COUNTED_UP_TO`] per output (see the module).
#[derive(Debug)]
struct InstitutionsGroups {
    outputs: Vec<Counted>,
    /// Per group and output (`outputs.len()` a group), the institutions seen.
    seen: Vec<Seen>,
    /// Per group, the outputs that hold [`COUNTED_UP_TO`] institutions.
    full: Vec<u64>,
}

impl InstitutionsGroups {
    fn new(outputs: Vec<Counted>) -> Self {
        InstitutionsGroups { outputs, seen: Vec::new(), full: Vec::new() }
    }

    fn width(&self) -> usize {
        self.outputs.len()
    }

    fn resize(&mut self, groups: usize) {
        let width = self.width();
        self.seen.resize(groups * width, Seen::default());
        self.full.resize(groups, 0);
    }

    /// Group `g` sees `number` in the outputs of `mask`.
    #[inline]
    fn see(&mut self, g: usize, number: u32, mask: u64) {
        let width = self.outputs.len();
        let mut open = mask & !self.full[g];
        while open != 0 {
            let k = open.trailing_zeros() as usize;
            let seen = &mut self.seen[g * width + k];
            seen.see(number);
            if seen.is_full() {
                self.full[g] |= 1 << k;
            }
            open &= open - 1;
        }
    }
}

/// A partial state: per output, its count of numbers (one byte) and the numbers (little-endian).
fn pack(seen: &[Seen], out: &mut Vec<u8>) {
    out.clear();
    for s in seen {
        out.push(s.numbers().len() as u8);
        out.extend(s.numbers().iter().flat_map(|n| n.to_le_bytes()));
    }
}

impl GroupsAccumulator for InstitutionsGroups {
    fn update_batch(
        &mut self,
        values: &[ArrayRef],
        group_indices: &[usize],
        opt_filter: Option<&BooleanArray>,
        total_num_groups: usize,
    ) -> Result<()> {
        let numbers = numbers_of(values)?;
        let masks = masks(&values[1..], &self.outputs, numbers.len(), opt_filter)?;
        self.resize(total_num_groups);
        let known = numbers.nulls().filter(|n| n.null_count() > 0);
        for (row, ((&mask, &g), &number)) in masks.iter().zip(group_indices).zip(numbers.values().iter()).enumerate() {
            if mask & !self.full[g] == 0 || known.is_some_and(|n| n.is_null(row)) {
                continue;
            }
            self.see(g, number, mask);
        }
        Ok(())
    }

    fn evaluate(&mut self, emit_to: EmitTo) -> Result<ArrayRef> {
        let width = self.width();
        let seen = take_groups(&mut self.seen, emit_to, width);
        take_groups(&mut self.full, emit_to, 1);
        Ok(counts_array(width, seen.len() / width, |r, k| seen[r * width + k].numbers().len() as i64))
    }

    fn state(&mut self, emit_to: EmitTo) -> Result<Vec<ArrayRef>> {
        let width = self.width();
        let seen = take_groups(&mut self.seen, emit_to, width);
        take_groups(&mut self.full, emit_to, 1);
        let mut out = BinaryBuilder::with_capacity(seen.len() / width, seen.len() * 5);
        let mut bytes = Vec::new();
        for group in seen.chunks_exact(width) {
            pack(group, &mut bytes);
            out.append_value(&bytes);
        }
        Ok(vec![Arc::new(out.finish())])
    }

    fn merge_batch(&mut self, values: &[ArrayRef], group_indices: &[usize], total_num_groups: usize) -> Result<()> {
        let states = values.first().and_then(|a| a.as_any().downcast_ref::<BinaryArray>()).ok_or_else(bad)?;
        self.resize(total_num_groups);
        let width = self.width();
        for (row, &g) in group_indices.iter().enumerate() {
            if states.is_null(row) {
                continue;
            }
            let mut packed = states.value(row);
            for k in 0..width {
                let (&n, rest) = packed.split_first().ok_or_else(bad)?;
                let n = n as usize;
                if n > COUNTED_UP_TO || rest.len() < n * 4 {
                    return Err(bad());
                }
                let seen = &mut self.seen[g * width + k];
                seen.merge(&rest[..n * 4])?;
                if seen.is_full() {
                    self.full[g] |= 1 << k;
                }
                packed = &rest[n * 4..];
            }
            if !packed.is_empty() {
                return Err(bad());
            }
        }
        Ok(())
    }

    fn convert_to_state(&self, values: &[ArrayRef], opt_filter: Option<&BooleanArray>) -> Result<Vec<ArrayRef>> {
        let numbers = numbers_of(values)?;
        let masks = masks(&values[1..], &self.outputs, numbers.len(), opt_filter)?;
        let width = self.width();
        let mut out = BinaryBuilder::with_capacity(numbers.len(), numbers.len() * width * 5);
        let mut bytes = Vec::new();
        let mut one = vec![Seen::default(); width];
        for (row, &mask) in masks.iter().enumerate() {
            one.iter_mut().for_each(|s| *s = Seen::default());
            if numbers.is_valid(row) {
                for (k, s) in one.iter_mut().enumerate() {
                    if mask >> k & 1 == 1 {
                        s.see(numbers.value(row));
                    }
                }
            }
            pack(&one, &mut bytes);
            out.append_value(&bytes);
        }
        Ok(vec![Arc::new(out.finish())])
    }

    fn size(&self) -> usize {
        self.seen.capacity() * std::mem::size_of::<Seen>() + self.full.capacity() * 8
    }
}

/// A groups accumulator of this module.
trait CountsByCondition: GroupsAccumulator + Debug + Sync {
    /// Makes it hold one group if it holds none (a state or a result of no rows: nothing counted).
    fn hold_one_group(&mut self);
}

impl CountsByCondition for PersonsGroups {
    fn hold_one_group(&mut self) {
        if self.merged.is_empty() && self.last.is_empty() {
            self.resize(1);
        }
    }
}

impl CountsByCondition for InstitutionsGroups {
    fn hold_one_group(&mut self) {
        if self.full.is_empty() {
            self.resize(1);
        }
    }
}

/// An aggregate without groups: a groups accumulator of one group.
#[derive(Debug)]
struct OneGroup<G>(G);

impl<G: CountsByCondition> OneGroup<G> {
    fn new(groups: G) -> Self {
        OneGroup(groups)
    }

    fn first_row(arrays: Vec<ArrayRef>) -> Result<Vec<ScalarValue>> {
        arrays.iter().map(|a| ScalarValue::try_from_array(a, 0)).collect()
    }
}

impl<G: CountsByCondition> Accumulator for OneGroup<G> {
    fn update_batch(&mut self, values: &[ArrayRef]) -> Result<()> {
        let rows = values.first().map_or(0, |v| v.len());
        self.0.update_batch(values, &vec![0; rows], None, 1)
    }

    fn evaluate(&mut self) -> Result<ScalarValue> {
        self.0.hold_one_group();
        Self::first_row(vec![self.0.evaluate(EmitTo::All)?]).map(|mut v| v.remove(0))
    }

    fn size(&self) -> usize {
        std::mem::size_of_val(self) + self.0.size()
    }

    fn state(&mut self) -> Result<Vec<ScalarValue>> {
        self.0.hold_one_group();
        Self::first_row(self.0.state(EmitTo::All)?)
    }

    fn merge_batch(&mut self, states: &[ArrayRef]) -> Result<()> {
        let rows = states.first().map_or(0, |v| v.len());
        self.0.merge_batch(states, &vec![0; rows], 1)
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use datafusion::arrow::array::AsArray;
    use datafusion::arrow::datatypes::Int64Type;
    use proptest::prelude::*;

    use super::*;
    use crate::data::id_array;

    /// A row: person, group, institution number, three conditions (null: unknown).
    type Row = (Id, usize, Option<u32>, [Option<bool>; 3]);

    const OUTPUTS: [Counted; 7] = [
        Counted::Rows,
        Counted::Condition(0),
        Counted::Condition(1),
        Counted::Condition(2),
        Counted::Differ(0, 1),
        Counted::Differ(1, 2),
        Counted::Differ(0, 2),
    ];

    fn counts(row: &Row, counted: Counted) -> bool {
        let holds = |k: usize| row.3[k] == Some(true);
        match counted {
            Counted::Rows => true,
            Counted::Condition(k) => holds(k),
            Counted::Differ(a, b) => holds(a) != holds(b),
        }
    }

    /// Per group and output: distinct persons, and distinct institutions up to the cap.
    fn expected(rows: &[Row], groups: usize) -> (Vec<Vec<i64>>, Vec<Vec<i64>>) {
        let of = |g: usize, k: usize| rows.iter().filter(move |r| r.1 == g && counts(r, OUTPUTS[k]));
        let persons =
            (0..groups).map(|g| (0..OUTPUTS.len()).map(|k| of(g, k).map(|r| r.0).collect::<BTreeSet<_>>().len() as i64).collect()).collect();
        let institutions = (0..groups)
            .map(|g| (0..OUTPUTS.len()).map(|k| of(g, k).filter_map(|r| r.2).collect::<BTreeSet<_>>().len().min(COUNTED_UP_TO) as i64).collect())
            .collect();
        (persons, institutions)
    }

    fn arguments(rows: &[Row], what: What) -> Vec<ArrayRef> {
        let column: ArrayRef = match what {
            What::Persons => id_array(&rows.iter().map(|r| r.0).collect::<Vec<_>>()),
            What::Institutions => Arc::new(datafusion::arrow::array::UInt32Array::from(rows.iter().map(|r| r.2).collect::<Vec<_>>())),
        };
        let conditions = (0..3).map(|k| Arc::new(BooleanArray::from(rows.iter().map(|r| r.3[k]).collect::<Vec<_>>())) as ArrayRef);
        std::iter::once(column).chain(conditions).collect()
    }

    fn read(counts: ArrayRef) -> Vec<Vec<i64>> {
        let s = counts.as_struct();
        (0..s.len()).map(|r| (0..OUTPUTS.len()).map(|k| s.column(k).as_primitive::<Int64Type>().value(r)).collect()).collect()
    }

    fn groups_of(what: What) -> Box<dyn GroupsAccumulator> {
        match what {
            What::Persons => Box::new(PersonsGroups::new(OUTPUTS.to_vec())),
            What::Institutions => Box::new(InstitutionsGroups::new(OUTPUTS.to_vec())),
        }
    }

    /// Counts `rows` (sorted by person) in one accumulator, in two partitions of disjoint persons
    /// merged through their states, and per group through the accumulator without groups; each
    /// must give the expected counts.
    fn check(rows: &[Row], groups: usize) {
        let (persons, institutions) = expected(rows, groups);
        let indices: Vec<usize> = rows.iter().map(|r| r.1).collect();
        for (what, want) in [(What::Persons, persons), (What::Institutions, institutions)] {
            let mut one = groups_of(what);
            one.update_batch(&arguments(rows, what), &indices, None, groups).unwrap();
            assert_eq!(read(one.evaluate(EmitTo::All).unwrap()), want, "{what:?} in one accumulator");

            // A `FILTER` of every third row (null for some of the others): only those counted.
            let filter = BooleanArray::from((0..rows.len()).map(|i| (i % 5 != 1).then_some(i % 3 == 0)).collect::<Vec<_>>());
            let kept: Vec<Row> = rows.iter().enumerate().filter(|(i, _)| i % 3 == 0 && i % 5 != 1).map(|(_, r)| *r).collect();
            let want_kept = match what {
                What::Persons => expected(&kept, groups).0,
                What::Institutions => expected(&kept, groups).1,
            };
            let mut filtered = groups_of(what);
            filtered.update_batch(&arguments(rows, what), &indices, Some(&filter), groups).unwrap();
            assert_eq!(read(filtered.evaluate(EmitTo::All).unwrap()), want_kept, "{what:?} within a filter");

            // Partitions cut between two persons.
            let cut = rows.iter().position(|r| r.0 >= rows.get(rows.len() / 2).map_or(0, |m| m.0)).unwrap_or(0);
            let mut merged = groups_of(what);
            for part in [&rows[..cut], &rows[cut..]] {
                let mut partial = groups_of(what);
                let part_indices: Vec<usize> = part.iter().map(|r| r.1).collect();
                partial.update_batch(&arguments(part, what), &part_indices, None, groups).unwrap();
                let states = partial.state(EmitTo::All).unwrap();
                merged.merge_batch(&states, &(0..groups).collect::<Vec<_>>(), groups).unwrap();
            }
            assert_eq!(read(merged.evaluate(EmitTo::All).unwrap()), want, "{what:?} merged");

            for (g, want) in want.iter().enumerate() {
                let mine: Vec<Row> = rows.iter().filter(|r| r.1 == g).cloned().collect();
                let mut whole: Box<dyn Accumulator> = match what {
                    What::Persons => Box::new(OneGroup::new(PersonsGroups::new(OUTPUTS.to_vec()))),
                    What::Institutions => Box::new(OneGroup::new(InstitutionsGroups::new(OUTPUTS.to_vec()))),
                };
                if !mine.is_empty() {
                    whole.update_batch(&arguments(&mine, what)).unwrap();
                }
                let ScalarValue::Struct(s) = whole.evaluate().unwrap() else { panic!("a struct") };
                assert_eq!(&read(s)[0], want, "{what:?} without groups, group {g}");
            }
        }
    }

    fn row(person: Id, group: usize, institution: u32, conditions: [Option<bool>; 3]) -> Row {
        (person, group, Some(institution), conditions)
    }

    #[test]
    fn debug_of_the_states_shows_no_id_and_no_institution() {
        let rows = [row(987_654, 0, 1, [Some(true); 3]), row(987_655, 0, 1, [None; 3])];
        let mut g = PersonsGroups::new(OUTPUTS.to_vec());
        g.update_batch(&arguments(&rows, What::Persons), &[0, 0], None, 1).unwrap();
        let mut merged = PersonsGroups::new(OUTPUTS.to_vec());
        merged.merge_batch(&g.state(EmitTo::All).unwrap(), &[0], 1).unwrap();
        for shown in [format!("{g:?}"), format!("{merged:?}"), format!("{:?}", OneGroup::new(PersonsGroups::new(OUTPUTS.to_vec())))] {
            assert!(!shown.contains("98765"), "{shown}");
        }
        assert!(format!("{merged:?}").contains("ranges: 1"));
        // Nor the institutions' numbers, nor a count before the rules.
        let rows = [row(1, 0, 4_242_421, [Some(true); 3])];
        let mut g = InstitutionsGroups::new(OUTPUTS.to_vec());
        g.update_batch(&arguments(&rows, What::Institutions), &[0], None, 1).unwrap();
        let shown = format!("{g:?}");
        assert!(!shown.contains("4242421") && shown.contains("Seen"), "{shown}");
    }

    #[test]
    fn transposed_bits_change_places() {
        let mut state: u64 = 0x9E37_79B9_7F4A_7C15;
        let mut a = [0u64; 64];
        for w in &mut a {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            *w = state;
        }
        let mut t = a;
        transpose(&mut t);
        for (i, word) in a.iter().enumerate() {
            for (j, column) in t.iter().enumerate() {
                assert_eq!(column >> i & 1, word >> j & 1, "bit {j} of word {i}");
            }
        }
    }

    #[test]
    fn masks_read_sliced_columns_from_their_offset() {
        // 150 rows (two blocks and a part), conditions sliced from longer columns at odd offsets.
        let value = |k: usize, i: usize| match (i * (k + 3)) % 7 {
            0 => None,
            r => Some(r % 2 == 0),
        };
        let rows = 150;
        let conditions: Vec<ArrayRef> = (0..3)
            .map(|k| {
                let long = BooleanArray::from((0..rows + 20).map(|i| value(k, i)).collect::<Vec<_>>());
                Arc::new(long.slice(5 + k, rows)) as ArrayRef
            })
            .collect();
        let filter = BooleanArray::from((0..rows + 9).map(|i| i % 4 != 0).collect::<Vec<_>>()).slice(9, rows);
        let masks = masks(&conditions, &OUTPUTS, rows, Some(&filter)).unwrap();
        for (i, &mask) in masks.iter().enumerate() {
            let holds = |k: usize| value(k, i + 5 + k) == Some(true);
            let want = OUTPUTS.iter().enumerate().fold(0u64, |m, (j, o)| {
                let counted = match *o {
                    Counted::Rows => true,
                    Counted::Condition(k) => holds(k),
                    Counted::Differ(a, b) => holds(a) != holds(b),
                };
                m | (u64::from(counted && (i + 9) % 4 != 0) << j)
            });
            assert_eq!(mask, want, "row {i}");
        }
    }

    #[test]
    fn each_output_counts_its_rows() {
        let (t, f, n) = (Some(true), Some(false), None);
        let rows = [
            row(1, 0, 10, [t, f, n]),
            row(1, 0, 11, [f, t, n]),
            row(1, 1, 10, [t, t, t]),
            row(2, 0, 12, [t, n, f]),
            row(3, 1, 13, [n, n, n]),
            (3, 1, None, [t, t, f]),
            row(4, 0, 10, [f, f, t]),
        ];
        // Group 0: persons 1, 2, 4; condition 0 by 1 and 2; condition 1 by 1; condition 2 by 4;
        // 0 ≠ 1 by 1 (both rows) and 2; 1 ≠ 2 by 1 and 4; 0 ≠ 2 by 1, 2, 4. Institutions: 10,
        // 11, 12 in all; 0 ≠ 1 by rows of 10, 11, 12; 1 ≠ 2 of 11 and 10; 0 ≠ 2 of 10 and 12.
        let (persons, institutions) = expected(&rows, 2);
        assert_eq!(persons[0], [3, 2, 1, 1, 2, 2, 3]);
        assert_eq!(institutions[0], [3, 2, 1, 1, 3, 2, 2]);
        check(&rows, 2);
    }

    #[test]
    fn institutions_stop_at_the_cap_per_output() {
        let rows: Vec<Row> = (0..20).map(|p| row(p, 0, p, [Some(p % 2 == 0), Some(p < 3), None])).collect();
        let (_, institutions) = expected(&rows, 1);
        // Condition 2 never holds: 1 ≠ 2 is condition 1 (three).
        assert_eq!(institutions[0], [8, 8, 3, 0, 8, 3, 8]);
        check(&rows, 1);
    }

    #[test]
    fn ids_going_down_or_overlapping_states_ask_for_the_exact_count() {
        let rows = [row(2, 0, 1, [None; 3]), row(1, 0, 1, [None; 3])];
        let mut g = PersonsGroups::new(OUTPUTS.to_vec());
        let err = g.update_batch(&arguments(&rows, What::Persons), &[0, 0], None, 1).unwrap_err();
        assert!(crate::persons::is_order_broken(&err));
        // One state per row (partial aggregation given up): the same person twice overlaps.
        let rows = [row(1, 0, 1, [None; 3]), row(1, 0, 1, [None; 3])];
        let g = PersonsGroups::new(OUTPUTS.to_vec());
        let states = g.convert_to_state(&arguments(&rows, What::Persons), None).unwrap();
        let mut merged = PersonsGroups::new(OUTPUTS.to_vec());
        let err = merged.merge_batch(&states, &[0, 0], 1).unwrap_err();
        assert!(crate::persons::is_order_broken(&err));
        // Two different persons, one state each, count as two.
        let rows = [row(1, 0, 1, [None; 3]), row(2, 0, 1, [None; 3])];
        let states = g.convert_to_state(&arguments(&rows, What::Persons), None).unwrap();
        let mut merged = PersonsGroups::new(OUTPUTS.to_vec());
        merged.merge_batch(&states, &[0, 0], 1).unwrap();
        assert_eq!(read(merged.evaluate(EmitTo::All).unwrap())[0], [2, 0, 0, 0, 0, 0, 0]);
    }

    #[test]
    fn institutions_from_one_state_a_row_merge_to_the_same_counts() {
        let rows: Vec<Row> = (0..30).map(|p| row(p / 3, (p % 2) as usize, p % 11, [Some(p % 3 == 0), None, Some(p > 10)])).collect();
        let (_, want) = expected(&rows, 2);
        let g = InstitutionsGroups::new(OUTPUTS.to_vec());
        let states = g.convert_to_state(&arguments(&rows, What::Institutions), None).unwrap();
        let mut merged = InstitutionsGroups::new(OUTPUTS.to_vec());
        merged.merge_batch(&states, &rows.iter().map(|r| r.1).collect::<Vec<_>>(), 2).unwrap();
        assert_eq!(read(merged.evaluate(EmitTo::All).unwrap()), want);
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

        #[test]
        fn counts_equal_distinct_counts_per_output(
            mut rows in prop::collection::vec(
                (0u32..30, 0usize..4, prop::option::of(0u32..12), prop::array::uniform3(prop::option::of(any::<bool>()))),
                0..200,
            ),
        ) {
            rows.sort_by_key(|r| r.0);
            check(&rows, 4);
        }
    }
}
