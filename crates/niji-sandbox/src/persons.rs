//! The persons count of an output row without a hash set per group.
//!
//! [`crate::Workspace::open`] sorts every table by `person_id` and cuts it into partitions at
//! person boundaries, so a partition holds a contiguous range of ids in ascending order. While that
//! order survives up to the top aggregate (scans, filters, projections, a join that keeps its probe
//! side's order), the rows of a person arrive together, and a group counts a person when the row's
//! id (4 bytes) differs from the last id the group saw. That costs a comparison per row instead of
//! a hash-set insert, and the partial states are plain counts with a lower bound of the group's
//! ids and its last id.
//!
//! The order is an assumption about DataFusion's physical plan, so it is checked, never trusted:
//! - within one accumulator (one partition), an id smaller than the one before it means the rows
//!   were not in order;
//! - when partial states are merged, two states of the same group whose `[first, last]` ranges
//!   overlap may share persons.
//!
//! Either case fails the query with [`PersonsOrderBroken`]; the workspace then runs the same query
//! again with the exact `count(DISTINCT person_id)`. When neither case occurs the count is exact:
//! ids in a partition's stream only ascend, so each person is one run and is counted once per group,
//! and disjoint ranges hold disjoint persons.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, AsArray, BooleanArray, FixedSizeBinaryArray, FixedSizeBinaryBuilder, Int64Array, UInt64Array};
use datafusion::arrow::datatypes::{DataType, Field, FieldRef, UInt64Type};
use datafusion::common::{DataFusionError, Result, ScalarValue};
use datafusion::logical_expr::function::{AccumulatorArgs, StateFieldsArgs};
use datafusion::logical_expr::{Accumulator, AggregateUDF, AggregateUDFImpl, EmitTo, Expr, GroupsAccumulator, Signature, Volatility};

use crate::data::{id_at, person_ids, rows_taken, Id, NO_ID, PERSON_ID_BYTES};

/// The persons-count aggregate over a `person_id` column (not registered in the session: only the
/// rewrite of [`crate::check`] can call it).
pub(crate) fn count_persons(person_id: Expr) -> Expr {
    AggregateUDF::new_from_impl(CountPersonsInOrder::default()).call(vec![person_id])
}

/// The ids did not arrive in the order the fast count needs.
#[derive(Debug)]
pub(crate) struct PersonsOrderBroken;

impl fmt::Display for PersonsOrderBroken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("person ids out of order")
    }
}

impl std::error::Error for PersonsOrderBroken {}

/// Whether a DataFusion error is (or wraps) [`PersonsOrderBroken`].
pub(crate) fn is_order_broken(e: &DataFusionError) -> bool {
    match e {
        DataFusionError::External(ext) => ext.is::<PersonsOrderBroken>() || ext.downcast_ref::<DataFusionError>().is_some_and(is_order_broken),
        DataFusionError::ArrowError(inner, _) => match inner.as_ref() {
            datafusion::arrow::error::ArrowError::ExternalError(ext) => {
                ext.is::<PersonsOrderBroken>() || ext.downcast_ref::<DataFusionError>().is_some_and(is_order_broken)
            }
            _ => false,
        },
        DataFusionError::Context(_, inner) | DataFusionError::Diagnostic(_, inner) => is_order_broken(inner),
        DataFusionError::Shared(inner) => is_order_broken(inner),
        DataFusionError::Collection(errors) => errors.iter().any(is_order_broken),
        _ => false,
    }
}

/// The error that makes the workspace run the query again with the exact count.
pub(crate) fn broken() -> DataFusionError {
    DataFusionError::External(Box::new(PersonsOrderBroken))
}

#[derive(Debug, PartialEq, Eq, Hash)]
struct CountPersonsInOrder {
    signature: Signature,
}

impl Default for CountPersonsInOrder {
    fn default() -> Self {
        CountPersonsInOrder { signature: Signature::exact(vec![DataType::FixedSizeBinary(PERSON_ID_BYTES)], Volatility::Immutable) }
    }
}

impl AggregateUDFImpl for CountPersonsInOrder {
    fn name(&self) -> &str {
        "niji_count_persons"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(DataType::Int64)
    }

    fn is_nullable(&self) -> bool {
        false
    }

    fn state_fields(&self, args: StateFieldsArgs) -> Result<Vec<FieldRef>> {
        Ok(vec![
            Arc::new(Field::new(format!("{}[count]", args.name), DataType::UInt64, false)),
            Arc::new(Field::new(format!("{}[first]", args.name), DataType::FixedSizeBinary(PERSON_ID_BYTES), true)),
            Arc::new(Field::new(format!("{}[last]", args.name), DataType::FixedSizeBinary(PERSON_ID_BYTES), true)),
        ])
    }

    fn accumulator(&self, _args: AccumulatorArgs) -> Result<Box<dyn Accumulator>> {
        Ok(Box::new(OneGroup::default()))
    }

    fn groups_accumulator_supported(&self, _args: AccumulatorArgs) -> bool {
        true
    }

    fn create_groups_accumulator(&self, _args: AccumulatorArgs) -> Result<Box<dyn GroupsAccumulator>> {
        Ok(Box::new(Groups::default()))
    }

    fn default_value(&self, _data_type: &DataType) -> Result<ScalarValue> {
        Ok(ScalarValue::Int64(Some(0)))
    }
}

/// The state of one group.
#[derive(Clone, Copy, Default)]
struct Run {
    count: u64,
    first: Id,
    last: Id,
}

impl Run {
    /// Counts `id` if it is new to the group; fails if it is smaller than the last one.
    fn see(&mut self, id: Id) -> Result<()> {
        if self.count == 0 {
            *self = Run { count: 1, first: id, last: id };
        } else if id > self.last {
            self.count += 1;
            self.last = id;
        } else if id < self.last {
            return Err(broken());
        }
        Ok(())
    }
}

/// The id ranges (`first → last`) of the partial states merged into one group, which must not
/// overlap. A map, as a partial aggregation that gives up on grouping passes one state per row.
#[derive(Clone, Default)]
pub(crate) struct Ranges(BTreeMap<Id, Id>);

// Person ids (pseudonyms, even per permit) never go to a message or a log, not even a debug one
// (as `samples.rs`'s samples), nor a group's count before the rules: the `Debug` of the states that hold them shows only how many ranges they hold.

impl fmt::Debug for Ranges {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Ranges").field("ranges", &self.0.len()).finish()
    }
}

impl fmt::Debug for Run {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Run").finish_non_exhaustive()
    }
}

impl fmt::Debug for Groups {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Groups").field("groups", &self.seen.len().max(self.merged.len())).field("ranges", &self.ranges).finish_non_exhaustive()
    }
}

impl Ranges {
    /// Takes a state's range; fails if it overlaps one taken before (they may share persons).
    pub(crate) fn admit(&mut self, first: Id, last: Id) -> Result<()> {
        let before = self.0.range(..=first).next_back();
        let after = self.0.range(first..).next();
        if first > last || before.is_some_and(|(_, &l)| l >= first) || after.is_some_and(|(&f, _)| f <= last) {
            return Err(broken());
        }
        self.0.insert(first, last);
        Ok(())
    }

    pub(crate) fn len(&self) -> usize {
        self.0.len()
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// Merged partial states of one group.
#[derive(Clone, Default)]
struct Merged {
    count: u64,
    ranges: Ranges,
}

impl Merged {
    fn merge(&mut self, count: u64, first: Id, last: Id) -> Result<()> {
        if count == 0 {
            return Ok(());
        }
        self.ranges.admit(first, last)?;
        self.count += count;
        Ok(())
    }
}

// A group's count of persons before the rules is not shown either.
impl fmt::Debug for Merged {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Merged").field("ranges", &self.ranges).finish_non_exhaustive()
    }
}

fn state_arrays(runs: &[Run]) -> Result<Vec<ArrayRef>> {
    let counts = UInt64Array::from_iter_values(runs.iter().map(|r| r.count));
    let mut first = FixedSizeBinaryBuilder::with_capacity(runs.len(), PERSON_ID_BYTES);
    let mut last = FixedSizeBinaryBuilder::with_capacity(runs.len(), PERSON_ID_BYTES);
    for r in runs {
        if r.count == 0 {
            first.append_null();
            last.append_null();
        } else {
            first.append_value(r.first.to_le_bytes())?;
            last.append_value(r.last.to_le_bytes())?;
        }
    }
    Ok(vec![Arc::new(counts), Arc::new(first.finish()), Arc::new(last.finish())])
}

/// Reads partial states: `(count, first, last)` per row.
fn states(values: &[ArrayRef]) -> Result<(&UInt64Array, &FixedSizeBinaryArray, &FixedSizeBinaryArray)> {
    let bad = || DataFusionError::Internal("persons count state".into());
    let [counts, first, last] = values else { return Err(bad()) };
    let counts = counts.as_primitive_opt::<UInt64Type>().ok_or_else(bad)?;
    let first = first.as_any().downcast_ref::<FixedSizeBinaryArray>().ok_or_else(bad)?;
    let last = last.as_any().downcast_ref::<FixedSizeBinaryArray>().ok_or_else(bad)?;
    Ok((counts, first, last))
}

/// One accumulator per partition and phase. Used either to update (partial or single phase) or to
/// merge (final phase: `merged`), never both.
///
/// Updating checks that ids do not go down in the accumulator's stream; a group then only compares
/// the row's id with the last id it saw. Per group one `u64` holds both (`last id << 32 | count`;
/// ids are 4 bytes and never [`NO_ID`]): one load and one store a row, no branch, in an array
/// small enough for the CPU's first cache.
///
/// A partial state's range starts at the accumulator's first id, not the group's: a valid lower
/// bound that costs nothing per row. Partitions hold disjoint ranges of ids, so states of two
/// partitions still never overlap; two states of one partition (an aggregation that emits groups
/// early) do, and the query is counted again exactly.
#[derive(Default)]
struct Groups {
    /// Per group (update phase): the last id it saw ([`NO_ID`]: none) in the high half, its
    /// distinct persons in the low half.
    seen: Vec<u64>,
    /// The first and the last id of the accumulator's stream.
    first: Option<Id>,
    last: Option<Id>,
    merged: Vec<Merged>,
    /// Ranges held in `merged`, for [`GroupsAccumulator::size`].
    ranges: usize,
}

/// A group's state before it saw anyone.
const UNSEEN: u64 = (NO_ID as u64) << 32;

/// Counts `id` for group `g` if the group has not seen it last.
#[inline(always)]
fn count_id(seen: &mut [u64], g: usize, id: Id) {
    let s = seen[g];
    let new = u64::from((s >> 32) as Id != id);
    seen[g] = (u64::from(id) << 32) | ((s & 0xFFFF_FFFF) + new);
}

impl GroupsAccumulator for Groups {
    fn update_batch(
        &mut self,
        values: &[ArrayRef],
        group_indices: &[usize],
        opt_filter: Option<&BooleanArray>,
        total_num_groups: usize,
    ) -> Result<()> {
        let ids = person_ids(values)?;
        self.seen.resize(total_num_groups, UNSEEN);
        // The rows to count (the persons of a conditional aggregate: within its filter), in runs
        // of consecutive rows.
        let taken = rows_taken(ids, opt_filter);
        let runs = taken.runs();
        // Written out over the ids' bytes: the order check folded into a flag, then one load and
        // one store of the group's state.
        let width = PERSON_ID_BYTES as usize;
        let bytes = ids.value_data();
        let seen = &mut self.seen[..];
        let mut previous = self.last;
        let mut first = None;
        let mut down = false;
        let mut last = previous.unwrap_or(0);
        for (start, end) in runs {
            if start == end {
                continue;
            }
            for (chunk, &g) in bytes[start * width..end * width].chunks_exact(width).zip(&group_indices[start..end]) {
                let id = Id::from_le_bytes(chunk.try_into().expect("person id width"));
                down |= id < last;
                last = id;
                count_id(seen, g, id);
            }
            first = first.or(Some(Id::from_le_bytes(bytes[start * width..(start + 1) * width].try_into().expect("person id width"))));
            previous = Some(last);
        }
        // Ascending, so the last id is the largest: none may be the "unseen" mark.
        if down || previous == Some(NO_ID) {
            return Err(broken());
        }
        self.first = self.first.or(first);
        self.last = previous;
        Ok(())
    }

    fn evaluate(&mut self, emit_to: EmitTo) -> Result<ArrayRef> {
        // An accumulator either updated (`seen`) or merged (`merged`), never both; only the one
        // in use is emitted from (`EmitTo::First` on the empty one would panic).
        let out: Vec<u64> = if self.merged.is_empty() {
            emit_to.take_needed(&mut self.seen).into_iter().map(|s| s & 0xFFFF_FFFF).collect()
        } else {
            let emitted = emit_to.take_needed(&mut self.merged);
            self.ranges -= emitted.iter().map(|m| m.ranges.len()).sum::<usize>();
            emitted.iter().map(|m| m.count).collect()
        };
        Ok(Arc::new(Int64Array::from_iter_values(out.into_iter().map(|c| c as i64))))
    }

    fn state(&mut self, emit_to: EmitTo) -> Result<Vec<ArrayRef>> {
        if !self.merged.is_empty() {
            // A merged state has several ranges; it cannot be passed on as one.
            return Err(broken());
        }
        let seen = emit_to.take_needed(&mut self.seen);
        let first = self.first.unwrap_or(0);
        let runs: Vec<Run> = seen
            .iter()
            .map(|&s| match s & 0xFFFF_FFFF {
                0 => Run::default(),
                count => Run { count, first, last: (s >> 32) as Id },
            })
            .collect();
        state_arrays(&runs)
    }

    fn merge_batch(&mut self, values: &[ArrayRef], group_indices: &[usize], total_num_groups: usize) -> Result<()> {
        let (counts, first, last) = states(values)?;
        self.merged.resize(total_num_groups, Merged::default());
        for (row, &g) in group_indices.iter().enumerate() {
            let count = counts.value(row);
            if count == 0 || first.is_null(row) || last.is_null(row) {
                continue;
            }
            self.merged[g].merge(count, id_at(first, row), id_at(last, row))?;
            self.ranges += 1;
        }
        Ok(())
    }

    fn convert_to_state(&self, values: &[ArrayRef], opt_filter: Option<&BooleanArray>) -> Result<Vec<ArrayRef>> {
        let ids = person_ids(values)?;
        let runs: Vec<Run> = (0..ids.len())
            .map(|row| {
                let counted = !ids.is_null(row) && opt_filter.is_none_or(|f| f.is_valid(row) && f.value(row));
                if counted {
                    let id = id_at(ids, row);
                    Run { count: 1, first: id, last: id }
                } else {
                    Run::default()
                }
            })
            .collect();
        state_arrays(&runs)
    }

    fn size(&self) -> usize {
        self.seen.capacity() * 8 + self.merged.capacity() * std::mem::size_of::<Merged>() + self.ranges * 48
    }
}

/// The same count for an aggregate without groups.
#[derive(Debug, Default)]
struct OneGroup {
    run: Run,
    merged: Merged,
}

impl Accumulator for OneGroup {
    fn update_batch(&mut self, values: &[ArrayRef]) -> Result<()> {
        let ids = person_ids(values)?;
        for row in 0..ids.len() {
            if !ids.is_null(row) {
                self.run.see(id_at(ids, row))?;
            }
        }
        Ok(())
    }

    fn evaluate(&mut self) -> Result<ScalarValue> {
        Ok(ScalarValue::Int64(Some((self.run.count + self.merged.count) as i64)))
    }

    fn size(&self) -> usize {
        std::mem::size_of_val(self) + self.merged.ranges.len() * 48
    }

    fn state(&mut self) -> Result<Vec<ScalarValue>> {
        if !self.merged.ranges.is_empty() {
            return Err(broken());
        }
        let id = |v: Id| ScalarValue::FixedSizeBinary(PERSON_ID_BYTES, (self.run.count > 0).then(|| v.to_le_bytes().to_vec()));
        Ok(vec![ScalarValue::UInt64(Some(self.run.count)), id(self.run.first), id(self.run.last)])
    }

    fn merge_batch(&mut self, values: &[ArrayRef]) -> Result<()> {
        let (counts, first, last) = states(values)?;
        for row in 0..counts.len() {
            let count = counts.value(row);
            if count == 0 || first.is_null(row) || last.is_null(row) {
                continue;
            }
            self.merged.merge(count, id_at(first, row), id_at(last, row))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::data::id_array as ids;

    fn check(partitions: &[(&[Id], &[usize])], groups: usize, expected: Option<Vec<i64>>) {
        check_encoded(partitions, groups, expected.clone(), None);
        // The path taken with a filter (runs of the rows it keeps), with one that keeps every row.
        check_encoded(partitions, groups, expected, Some(true));
    }

    /// One partition's stream in several batches (a person may go on in the next batch); the
    /// counts, or `None` if the order was refused. `filter`: pass a filter of that value.
    fn batches(batches: &[(&[Id], &[usize])], groups: usize, filter: Option<bool>) -> Option<Vec<i64>> {
        let mut g = Groups::default();
        for (values, group_indices) in batches {
            let f = filter.map(|f| BooleanArray::from(vec![f; values.len()]));
            if g.update_batch(&[ids(values)], group_indices, f.as_ref(), groups).is_err() {
                return None;
            }
        }
        let out = g.evaluate(EmitTo::All).unwrap();
        Some(out.as_primitive::<datafusion::arrow::datatypes::Int64Type>().values().to_vec())
    }

    #[test]
    fn a_person_going_on_in_the_next_batch_is_one_person() {
        for filter in [None, Some(true)] {
            // Person 2 in both batches and both groups; person 5 only in the second.
            assert_eq!(batches(&[(&[1, 2, 2], &[0, 0, 1]), (&[2, 2, 5], &[0, 1, 1])], 2, filter), Some(vec![2, 2]));
            // The second batch going back below the first one's last id is refused.
            assert_eq!(batches(&[(&[1, 3], &[0, 0]), (&[2, 4], &[0, 0])], 1, filter), None);
            // Id 0 is an id like any other.
            assert_eq!(batches(&[(&[0, 0], &[0, 0]), (&[0, 1], &[0, 0])], 1, filter), Some(vec![2]));
            // The "none yet" mark is no id: a stream holding it is counted again exactly.
            assert_eq!(batches(&[(&[1, NO_ID], &[0, 0])], 1, filter), None);
        }
        // Both paths in one stream.
        let mut g = Groups::default();
        g.update_batch(&[ids(&[1, 2])], &[0, 0], None, 1).unwrap();
        g.update_batch(&[ids(&[2, 3])], &[0, 0], Some(&BooleanArray::from(vec![true, true])), 1).unwrap();
        g.update_batch(&[ids(&[3, 4])], &[0, 0], None, 1).unwrap();
        assert_eq!(g.evaluate(EmitTo::All).unwrap().as_primitive::<datafusion::arrow::datatypes::Int64Type>().values(), &[4]);
    }

    #[test]
    fn a_merging_accumulator_emits_its_first_groups() {
        let mut partial = Groups::default();
        partial.update_batch(&[ids(&[1, 2, 3])], &[0, 1, 2], None, 3).unwrap();
        let state = partial.state(EmitTo::All).unwrap();
        let mut merged = Groups::default();
        merged.merge_batch(&state, &[0, 1, 2], 3).unwrap();
        let first = merged.evaluate(EmitTo::First(2)).unwrap();
        assert_eq!(first.as_primitive::<datafusion::arrow::datatypes::Int64Type>().values(), &[1, 1]);
        assert_eq!(merged.evaluate(EmitTo::All).unwrap().len(), 1);
    }

    #[test]
    fn a_group_that_counted_nobody_passes_an_empty_state() {
        // Every row filtered out: the groups exist, no id was seen.
        let mut g = Groups::default();
        g.update_batch(&[ids(&[1, 2])], &[0, 1], Some(&BooleanArray::from(vec![false, false])), 2).unwrap();
        let state = g.state(EmitTo::All).unwrap();
        let (counts, first, last) = states(&state).unwrap();
        assert_eq!(counts.values(), &[0, 0]);
        assert_eq!((first.null_count(), last.null_count()), (2, 2));
    }

    fn check_encoded(partitions: &[(&[Id], &[usize])], groups: usize, expected: Option<Vec<i64>>, filter: Option<bool>) {
        let mut merged = Groups::default();
        let mut result = Ok(());
        for (values, group_indices) in partitions {
            let mut partial = Groups::default();
            let f = filter.map(|f| BooleanArray::from(vec![f; values.len()]));
            let states = partial.update_batch(&[ids(values)], group_indices, f.as_ref(), groups).and_then(|_| partial.state(EmitTo::All));
            result = states.and_then(|s| {
                let indices: Vec<usize> = (0..groups).collect();
                merged.merge_batch(&s, &indices, groups)
            });
            if result.is_err() {
                break;
            }
        }
        match (result, expected) {
            (Ok(()), Some(expected)) => {
                let out = merged.evaluate(EmitTo::All).unwrap();
                assert_eq!(out.as_primitive::<datafusion::arrow::datatypes::Int64Type>().values().to_vec(), expected);
            }
            (Err(e), None) => assert!(is_order_broken(&e)),
            (r, e) => panic!("got {r:?}, expected {e:?}"),
        }
    }

    #[test]
    fn counts_ascending_ids_exactly() {
        // Group 0 sees persons 1, 1, 3; group 1 sees 1, 2, 2.
        check(&[(&[1, 1, 1, 2, 2, 3], &[0, 0, 1, 1, 1, 0])], 2, Some(vec![2, 2]));
        // Two partitions holding disjoint ranges add up.
        check(&[(&[1, 2], &[0, 0]), (&[5, 6, 6], &[0, 1, 1])], 2, Some(vec![3, 1]));
        // A group no row reached counts 0.
        check(&[(&[4], &[1])], 3, Some(vec![0, 1, 0]));
    }

    #[test]
    fn counts_only_the_rows_within_a_filter() {
        // A conditional aggregate's persons: rows outside the filter (or with a null filter
        // value) are not counted, in runs of any length.
        let filter = BooleanArray::from(vec![Some(false), Some(true), None, Some(true), Some(true), Some(false), Some(true)]);
        let mut g = Groups::default();
        g.update_batch(&[ids(&[1, 1, 2, 3, 4, 4, 5])], &[0, 0, 0, 1, 1, 1, 0], Some(&filter), 3).unwrap();
        let out = g.evaluate(EmitTo::All).unwrap();
        assert_eq!(out.as_primitive::<datafusion::arrow::datatypes::Int64Type>().values().to_vec(), vec![2, 2, 0]);
        // Out of order among the counted rows is still refused.
        let mut g = Groups::default();
        let filter = BooleanArray::from(vec![true, false, true]);
        assert!(g.update_batch(&[ids(&[3, 2, 1])], &[0, 0, 0], Some(&filter), 1).is_err());
    }

    #[test]
    fn refuses_ids_out_of_order() {
        check(&[(&[3, 1], &[0, 0])], 1, None);
        // The partition's stream must not go down, whatever the groups.
        check(&[(&[3, 1, 2], &[0, 1, 1])], 2, None);
        check(&[(&[1, 2, 2, 3], &[1, 0, 1, 1])], 2, Some(vec![1, 3]));
    }

    #[test]
    fn refuses_overlapping_partitions() {
        // Person 2 in both partitions' group 0: counting 2 + 2 would be wrong.
        check(&[(&[1, 2], &[0, 0]), (&[2, 3], &[0, 0])], 1, None);
        // Overlapping ranges in different groups do not matter.
        check(&[(&[1, 5], &[0, 0]), (&[2, 3], &[1, 1])], 2, Some(vec![2, 2]));
    }
}
