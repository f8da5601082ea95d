//! A sample of the persons behind a cell, for differencing across outputs.
//!
//! Two outputs whose rows count the same persons can still differ in a cell by a few:
//! `count(*) FILTER (WHERE f)` in one and `count(*) FILTER (WHERE f AND NOT rare)` in the next.
//! Output checking compares released counts, not persons, so it needs to tell two cells of
//! nearly the same persons from two cells of different persons whose counts happen to be close.
//! A cell's sample is the [`SAMPLE_SIZE`] smallest of its persons' ids: ids are drawn from an HMAC
//! under the permit's secret, so the smallest are a uniform sample of the cell's persons, the
//! same for two cells wherever their persons are the same (a bottom-k sketch; all of them when a
//! cell has no more persons). It never leaves the platform: `niji-analysis` keeps it with a
//! released output for later comparisons, and `niji-sdc` compares.
//!
//! Order-free (unlike [`crate::persons`]): partial states merge by keeping the smallest of both.

use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, BinaryArray, BinaryBuilder, BooleanArray};
use datafusion::arrow::datatypes::{DataType, Field, FieldRef};
use datafusion::common::{DataFusionError, Result, ScalarValue};
use datafusion::logical_expr::function::{AccumulatorArgs, StateFieldsArgs};
use datafusion::logical_expr::{Accumulator, AggregateUDF, AggregateUDFImpl, EmitTo, Expr, GroupsAccumulator, Signature, Volatility};

use crate::data::{id_at, person_ids, rows_taken, Id, PERSON_ID_BYTES};

/// How many of a cell's persons are kept.
pub const SAMPLE_SIZE: usize = 16;

/// The sample aggregate over a `person_id` column (only the rewrite calls it).
pub(crate) fn sample_persons(person_id: Expr) -> Expr {
    AggregateUDF::new_from_impl(SamplePersons::default()).call(vec![person_id])
}

/// Whether an output's samples are taken: they take [`SAMPLE_SIZE`] ids and a length a group each,
/// in the partial and the final aggregation, so not for an output whose worst case (`worst`
/// rows, judged from whole-table statistics as the group bound) would need more than a quarter of
/// the memory limit for them; its cells are then compared by rows only.
pub(crate) fn fit(worst: u128, sampled: usize, memory_bytes: usize) -> crate::check::Samples {
    let per_group = 2 * std::mem::size_of::<Sample>() as u128;
    if worst.saturating_mul(sampled as u128).saturating_mul(per_group) <= (memory_bytes / 4) as u128 {
        crate::check::Samples::Taken
    } else {
        crate::check::Samples::Left
    }
}

/// Reads a sample column's value: the ids, ascending.
pub(crate) fn unpack(bytes: &[u8]) -> Option<Vec<u32>> {
    (bytes.len().is_multiple_of(4) && bytes.len() / 4 <= SAMPLE_SIZE)
        .then(|| bytes.chunks_exact(4).map(|c| u32::from_le_bytes(c.try_into().expect("four bytes"))).collect())
}

#[derive(Debug, PartialEq, Eq, Hash)]
struct SamplePersons {
    signature: Signature,
}

impl Default for SamplePersons {
    fn default() -> Self {
        SamplePersons { signature: Signature::exact(vec![DataType::FixedSizeBinary(PERSON_ID_BYTES)], Volatility::Immutable) }
    }
}

impl AggregateUDFImpl for SamplePersons {
    fn name(&self) -> &str {
        "niji_sample_persons"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(DataType::Binary)
    }

    fn is_nullable(&self) -> bool {
        false
    }

    fn state_fields(&self, args: StateFieldsArgs) -> Result<Vec<FieldRef>> {
        Ok(vec![Arc::new(Field::new(format!("{}[smallest]", args.name), DataType::Binary, false))])
    }

    fn accumulator(&self, _args: AccumulatorArgs) -> Result<Box<dyn Accumulator>> {
        Ok(Box::new(Smallest::default()))
    }

    fn default_value(&self, _data_type: &DataType) -> Result<ScalarValue> {
        Ok(ScalarValue::Binary(Some(Vec::new())))
    }

    fn groups_accumulator_supported(&self, _args: AccumulatorArgs) -> bool {
        true
    }

    fn create_groups_accumulator(&self, _args: AccumulatorArgs) -> Result<Box<dyn GroupsAccumulator>> {
        Ok(Box::new(GroupSamples::default()))
    }
}

fn states_of(values: &[ArrayRef]) -> Result<&BinaryArray> {
    values.first().and_then(|a| a.as_any().downcast_ref::<BinaryArray>()).ok_or_else(|| DataFusionError::Internal("persons sample state".into()))
}

/// One group's smallest ids, ascending, distinct: `ids[..len]`.
#[derive(Clone, Copy, Default)]
struct Sample {
    len: u8,
    ids: [Id; SAMPLE_SIZE],
}

/// Without the ids (an accumulator is `Debug`; pseudonyms never go to a message).
impl std::fmt::Debug for Sample {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sample").field("len", &self.len).finish_non_exhaustive()
    }
}

impl Sample {
    #[inline]
    fn see(&mut self, id: Id) {
        let len = self.len as usize;
        if len == SAMPLE_SIZE && id >= self.ids[SAMPLE_SIZE - 1] {
            return;
        }
        if let Err(at) = self.ids[..len].binary_search(&id) {
            let end = (len + 1).min(SAMPLE_SIZE);
            self.ids.copy_within(at..end - 1, at + 1);
            self.ids[at] = id;
            self.len = end as u8;
        }
    }

    fn packed(&self) -> impl Iterator<Item = u8> + '_ {
        self.ids[..self.len as usize].iter().flat_map(|id| id.to_le_bytes())
    }
}

/// Samples per group (the aggregate's fast path), and per group the id from which on a row is
/// not taken (the largest of a full sample; [`Id::MAX`], never an id, until then): most rows of a
/// large group stop at that one comparison in a small array.
#[derive(Debug, Default)]
struct GroupSamples {
    groups: Vec<Sample>,
    bar: Vec<Id>,
}

impl GroupSamples {
    fn emit(&mut self, emit_to: EmitTo) -> ArrayRef {
        emit_to.take_needed(&mut self.bar);
        let emitted = emit_to.take_needed(&mut self.groups);
        let mut out = BinaryBuilder::with_capacity(emitted.len(), emitted.iter().map(|s| s.len as usize * 4).sum());
        for s in &emitted {
            out.append_value(s.packed().collect::<Vec<u8>>());
        }
        Arc::new(out.finish())
    }
}

impl GroupsAccumulator for GroupSamples {
    fn update_batch(
        &mut self,
        values: &[ArrayRef],
        group_indices: &[usize],
        opt_filter: Option<&BooleanArray>,
        total_num_groups: usize,
    ) -> Result<()> {
        let ids = person_ids(values)?;
        self.groups.resize(total_num_groups, Sample::default());
        self.bar.resize(total_num_groups, Id::MAX);
        let taken = rows_taken(ids, opt_filter);
        let runs = taken.runs();
        let width = PERSON_ID_BYTES as usize;
        let bytes = ids.value_data();
        let (groups, bar) = (&mut self.groups[..], &mut self.bar[..]);
        for (start, end) in runs {
            for (chunk, &g) in bytes[start * width..end * width].chunks_exact(width).zip(&group_indices[start..end]) {
                let id = Id::from_le_bytes(chunk.try_into().expect("person id width"));
                if id >= bar[g] {
                    continue;
                }
                let sample = &mut groups[g];
                sample.see(id);
                if sample.len as usize == SAMPLE_SIZE {
                    bar[g] = sample.ids[SAMPLE_SIZE - 1];
                }
            }
        }
        Ok(())
    }

    fn evaluate(&mut self, emit_to: EmitTo) -> Result<ArrayRef> {
        Ok(self.emit(emit_to))
    }

    fn state(&mut self, emit_to: EmitTo) -> Result<Vec<ArrayRef>> {
        Ok(vec![self.emit(emit_to)])
    }

    fn merge_batch(&mut self, values: &[ArrayRef], group_indices: &[usize], total_num_groups: usize) -> Result<()> {
        let states = states_of(values)?;
        self.groups.resize(total_num_groups, Sample::default());
        // Left as it is: a bar only ever comes down, and one above a sample's largest rejects
        // nothing it should take.
        self.bar.resize(total_num_groups, Id::MAX);
        for (row, &g) in group_indices.iter().enumerate() {
            if states.is_null(row) {
                continue;
            }
            let ids = unpack(states.value(row)).ok_or_else(|| DataFusionError::Internal("persons sample state".into()))?;
            for id in ids {
                self.groups[g].see(id);
            }
        }
        Ok(())
    }

    fn convert_to_state(&self, values: &[ArrayRef], opt_filter: Option<&BooleanArray>) -> Result<Vec<ArrayRef>> {
        let ids = person_ids(values)?;
        let mut out = BinaryBuilder::with_capacity(ids.len(), ids.len() * 4);
        for row in 0..ids.len() {
            if ids.is_null(row) || opt_filter.is_some_and(|f| !f.is_valid(row) || !f.value(row)) {
                out.append_value([]);
            } else {
                out.append_value(id_at(ids, row).to_le_bytes());
            }
        }
        Ok(vec![Arc::new(out.finish())])
    }

    fn size(&self) -> usize {
        self.groups.capacity() * std::mem::size_of::<Sample>() + self.bar.capacity() * std::mem::size_of::<Id>()
    }
}

/// The sample of an aggregate without groups: one [`Sample`].
#[derive(Debug, Default)]
struct Smallest(Sample);

impl Smallest {
    fn see(&mut self, id: Id) {
        self.0.see(id);
    }

    #[cfg(test)]
    fn ids(&self) -> &[Id] {
        &self.0.ids[..self.0.len as usize]
    }

    fn packed(&self) -> Vec<u8> {
        self.0.packed().collect()
    }
}

impl Accumulator for Smallest {
    fn update_batch(&mut self, values: &[ArrayRef]) -> Result<()> {
        let ids = person_ids(values)?;
        for row in 0..ids.len() {
            if !ids.is_null(row) {
                self.see(id_at(ids, row));
            }
        }
        Ok(())
    }

    fn merge_batch(&mut self, states: &[ArrayRef]) -> Result<()> {
        let bad = || DataFusionError::Internal("persons sample state".into());
        let smallest = states_of(states)?;
        for row in 0..smallest.len() {
            if smallest.is_null(row) {
                continue;
            }
            for id in unpack(smallest.value(row)).ok_or_else(bad)? {
                self.see(id);
            }
        }
        Ok(())
    }

    fn state(&mut self) -> Result<Vec<ScalarValue>> {
        Ok(vec![ScalarValue::Binary(Some(self.packed()))])
    }

    fn evaluate(&mut self) -> Result<ScalarValue> {
        Ok(ScalarValue::Binary(Some(self.packed())))
    }

    fn size(&self) -> usize {
        std::mem::size_of_val(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(worst: u128, sampled: usize, memory_bytes: usize, expected: crate::check::Samples) {
        assert_eq!(fit(worst, sampled, memory_bytes), expected, "{worst} rows, {sampled} samples, {memory_bytes} bytes");
    }

    #[test]
    fn samples_are_left_out_where_their_worst_case_would_not_fit() {
        use crate::check::Samples::{Left, Taken};
        const GIB: usize = 1 << 30;
        check(2_000, 7, 2 * GIB, Taken);
        check(1 << 20, 2, 2 * GIB, Taken);
        check(1 << 21, 7, 2 * GIB, Left);
        check(1 << 21, 1, 64 << 20, Left);
        check(u128::MAX, 1, 2 * GIB, Left);
        check(u128::MAX, 0, 2 * GIB, Taken);
    }

    #[test]
    fn groups_keep_what_one_accumulator_per_group_keeps() {
        use datafusion::arrow::array::FixedSizeBinaryBuilder;
        // 300 rows of three groups, ids in no order, every
        // third row filtered out, a null id; in two batches, then merged from two accumulators.
        let ids: Vec<Option<Id>> = (0..300u32).map(|i| (i != 17).then_some(i * 13 % 1000 + i)).collect();
        let groups: Vec<usize> = (0..300).map(|i| (i / 7) % 3).collect();
        let filter = BooleanArray::from((0..300).map(|i| i % 3 != 0).collect::<Vec<_>>());
        let array = |range: std::ops::Range<usize>| -> ArrayRef {
            let mut b = FixedSizeBinaryBuilder::new(PERSON_ID_BYTES);
            for id in &ids[range] {
                match id {
                    Some(id) => b.append_value(id.to_le_bytes()).unwrap(),
                    None => b.append_null(),
                }
            }
            Arc::new(b.finish())
        };
        let (mut first, mut second) = (GroupSamples::default(), GroupSamples::default());
        first.update_batch(&[array(0..150)], &groups[..150], Some(&filter.slice(0, 150)), 3).unwrap();
        second.update_batch(&[array(150..300)], &groups[150..], Some(&filter.slice(150, 150)), 3).unwrap();
        let mut merged = GroupSamples::default();
        for mut part in [first, second] {
            merged.merge_batch(&part.state(EmitTo::All).unwrap(), &[0, 1, 2], 3).unwrap();
        }
        let out = merged.evaluate(EmitTo::All).unwrap();
        let out = out.as_any().downcast_ref::<BinaryArray>().unwrap();
        for g in 0..3 {
            let mut want = Smallest::default();
            for i in (0..300).filter(|&i| groups[i] == g && i % 3 != 0) {
                if let Some(id) = ids[i] {
                    want.see(id);
                }
            }
            assert_eq!(unpack(out.value(g)), Some(want.ids().to_vec()), "group {g}");
            assert_eq!(want.ids().len(), SAMPLE_SIZE);
        }
    }

    #[test]
    fn the_smallest_distinct_ids_are_kept_in_order() {
        let mut s = Smallest::default();
        for id in (0..100u32).rev().chain(0..100) {
            s.see(id * 7 % 101);
        }
        let mut want: Vec<u32> = (0..100u32).map(|id| id * 7 % 101).collect();
        want.sort_unstable();
        want.dedup();
        want.truncate(SAMPLE_SIZE);
        assert_eq!(s.ids(), want.as_slice());
        assert_eq!(unpack(&s.packed()), Some(want.clone()));
        assert_eq!(unpack(&[0; 3]), None);
        // The groups' way keeps the same.
        let mut g = Sample::default();
        for id in (0..100u32).rev().chain(0..100) {
            g.see(id * 7 % 101);
        }
        assert_eq!(&g.ids[..g.len as usize], want.as_slice());
        let mut few = Sample::default();
        for id in [5, 3, 5, 9, 3] {
            few.see(id);
        }
        assert_eq!(&few.ids[..few.len as usize], &[3, 5, 9]);
    }
}
