//! The institutions behind a cell, counted up to [`COUNTED_UP_TO`].
//!
//! Output checking only asks whether a cell comes from fewer institutions than a minimum (three
//! under the NDB rules), and says how many when it does. So a group keeps at most
//! [`COUNTED_UP_TO`] distinct institution numbers (the hidden column of [`crate::institutions`])
//! in a small array, one comparison each per row: `count(DISTINCT …)` kept a hash set per group
//! and took twenty times as long as the query it guarded. A count of [`COUNTED_UP_TO`] reads "at
//! least that many".

use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, BinaryArray, BinaryBuilder, BooleanArray, Int64Array, UInt32Array};
use datafusion::arrow::datatypes::{DataType, Field, FieldRef};
use datafusion::common::{DataFusionError, Result, ScalarValue};
use datafusion::logical_expr::function::{AccumulatorArgs, StateFieldsArgs};
use datafusion::logical_expr::{Accumulator, AggregateUDF, AggregateUDFImpl, EmitTo, Expr, GroupsAccumulator, Signature, Volatility};

/// The most institutions a cell is counted to: more than any rule's minimum.
pub(crate) const COUNTED_UP_TO: usize = 8;

/// The count over an institution-number column (only the rewrite calls it).
pub(crate) fn count_institutions(numbers: Expr) -> Expr {
    AggregateUDF::new_from_impl(CountInstitutions::default()).call(vec![numbers])
}

#[derive(Debug, PartialEq, Eq, Hash)]
struct CountInstitutions {
    signature: Signature,
}

impl Default for CountInstitutions {
    fn default() -> Self {
        CountInstitutions { signature: Signature::exact(vec![DataType::UInt32], Volatility::Immutable) }
    }
}

impl AggregateUDFImpl for CountInstitutions {
    fn name(&self) -> &str {
        "niji_count_institutions"
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
        Ok(vec![Arc::new(Field::new(format!("{}[institutions]", args.name), DataType::Binary, false))])
    }

    fn accumulator(&self, _args: AccumulatorArgs) -> Result<Box<dyn Accumulator>> {
        Ok(Box::new(Whole::default()))
    }

    fn default_value(&self, _data_type: &DataType) -> Result<ScalarValue> {
        Ok(ScalarValue::Int64(Some(0)))
    }

    fn groups_accumulator_supported(&self, _args: AccumulatorArgs) -> bool {
        true
    }

    fn create_groups_accumulator(&self, _args: AccumulatorArgs) -> Result<Box<dyn GroupsAccumulator>> {
        Ok(Box::new(Groups::default()))
    }
}

fn bad_state() -> DataFusionError {
    DataFusionError::Internal("institutions state".into())
}

pub(crate) fn numbers_of(values: &[ArrayRef]) -> Result<&UInt32Array> {
    values.first().and_then(|a| a.as_any().downcast_ref::<UInt32Array>()).ok_or_else(bad_state)
}

fn states_of(values: &[ArrayRef]) -> Result<&BinaryArray> {
    values.first().and_then(|a| a.as_any().downcast_ref::<BinaryArray>()).ok_or_else(bad_state)
}

/// One group's distinct institution numbers: `seen[..len]`.
#[derive(Clone, Copy, Default)]
pub(crate) struct Seen {
    len: u8,
    seen: [u32; COUNTED_UP_TO],
}

impl Seen {
    /// The distinct numbers seen, at most [`COUNTED_UP_TO`].
    pub(crate) fn numbers(&self) -> &[u32] {
        &self.seen[..self.len as usize]
    }

    /// Whether it holds [`COUNTED_UP_TO`] numbers (it takes no more).
    pub(crate) fn is_full(&self) -> bool {
        self.len as usize == COUNTED_UP_TO
    }

    #[inline]
    pub(crate) fn see(&mut self, number: u32) {
        let len = self.len as usize;
        if len < COUNTED_UP_TO && !self.seen[..len].contains(&number) {
            self.seen[len] = number;
            self.len += 1;
        }
    }

    fn packed(&self) -> Vec<u8> {
        self.seen[..self.len as usize].iter().flat_map(|n| n.to_le_bytes()).collect()
    }

    /// Adds the numbers of a packed state (four little-endian bytes each).
    pub(crate) fn merge(&mut self, packed: &[u8]) -> Result<()> {
        if !packed.len().is_multiple_of(4) || packed.len() / 4 > COUNTED_UP_TO {
            return Err(bad_state());
        }
        for c in packed.chunks_exact(4) {
            self.see(u32::from_le_bytes(c.try_into().expect("four bytes")));
        }
        Ok(())
    }
}

// Institution numbers (per permit) and how many a cell has before the rules: `Debug` (panics,
// logs) shows neither, and with it no state that holds a `Seen`.
impl std::fmt::Debug for Seen {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Seen").finish_non_exhaustive()
    }
}

fn taken(filter: Option<&BooleanArray>, row: usize) -> bool {
    filter.is_none_or(|f| f.is_valid(row) && f.value(row))
}

#[derive(Debug, Default)]
struct Groups {
    groups: Vec<Seen>,
}

impl GroupsAccumulator for Groups {
    fn update_batch(
        &mut self,
        values: &[ArrayRef],
        group_indices: &[usize],
        opt_filter: Option<&BooleanArray>,
        total_num_groups: usize,
    ) -> Result<()> {
        let numbers = numbers_of(values)?;
        self.groups.resize(total_num_groups, Seen::default());
        let raw = numbers.values();
        // The rows taken (number not null, within the filter), as runs of consecutive rows: no
        // per-row reading of the filter's and the nulls' bits.
        let taken = crate::data::rows_taken(numbers, opt_filter);
        let groups = &mut self.groups[..];
        for (start, end) in taken.runs() {
            for (&number, &g) in raw[start..end].iter().zip(&group_indices[start..end]) {
                groups[g].see(number);
            }
        }
        Ok(())
    }

    fn evaluate(&mut self, emit_to: EmitTo) -> Result<ArrayRef> {
        let emitted = emit_to.take_needed(&mut self.groups);
        Ok(Arc::new(Int64Array::from_iter_values(emitted.iter().map(|s| i64::from(s.len)))))
    }

    fn state(&mut self, emit_to: EmitTo) -> Result<Vec<ArrayRef>> {
        let emitted = emit_to.take_needed(&mut self.groups);
        let mut out = BinaryBuilder::with_capacity(emitted.len(), emitted.iter().map(|s| s.len as usize * 4).sum());
        for s in &emitted {
            out.append_value(s.packed());
        }
        Ok(vec![Arc::new(out.finish())])
    }

    fn merge_batch(&mut self, values: &[ArrayRef], group_indices: &[usize], total_num_groups: usize) -> Result<()> {
        let states = states_of(values)?;
        self.groups.resize(total_num_groups, Seen::default());
        for (row, &g) in group_indices.iter().enumerate() {
            if states.is_valid(row) {
                self.groups[g].merge(states.value(row))?;
            }
        }
        Ok(())
    }

    fn convert_to_state(&self, values: &[ArrayRef], opt_filter: Option<&BooleanArray>) -> Result<Vec<ArrayRef>> {
        let numbers = numbers_of(values)?;
        let mut out = BinaryBuilder::with_capacity(numbers.len(), numbers.len() * 4);
        for row in 0..numbers.len() {
            if numbers.is_valid(row) && taken(opt_filter, row) {
                out.append_value(numbers.value(row).to_le_bytes());
            } else {
                out.append_value([]);
            }
        }
        Ok(vec![Arc::new(out.finish())])
    }

    fn size(&self) -> usize {
        self.groups.capacity() * std::mem::size_of::<Seen>()
    }
}

/// Without groups: one [`Seen`].
#[derive(Debug, Default)]
struct Whole(Seen);

impl Accumulator for Whole {
    fn update_batch(&mut self, values: &[ArrayRef]) -> Result<()> {
        let numbers = numbers_of(values)?;
        for row in 0..numbers.len() {
            if numbers.is_valid(row) {
                self.0.see(numbers.value(row));
            }
        }
        Ok(())
    }

    fn merge_batch(&mut self, states: &[ArrayRef]) -> Result<()> {
        let states = states_of(states)?;
        for row in 0..states.len() {
            if states.is_valid(row) {
                self.0.merge(states.value(row))?;
            }
        }
        Ok(())
    }

    fn state(&mut self) -> Result<Vec<ScalarValue>> {
        Ok(vec![ScalarValue::Binary(Some(self.0.packed()))])
    }

    fn evaluate(&mut self) -> Result<ScalarValue> {
        Ok(ScalarValue::Int64(Some(i64::from(self.0.len))))
    }

    fn size(&self) -> usize {
        std::mem::size_of_val(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Counts `numbers` (None: null) grouped by `groups` through the groups accumulator, in two
    /// halves merged through their states, and through the plain accumulator.
    fn check(numbers: &[Option<u32>], groups: &[usize], expected: &[i64]) {
        let n = expected.len();
        let array: ArrayRef = Arc::new(UInt32Array::from(numbers.to_vec()));
        let mut whole = Groups::default();
        whole.update_batch(&[array.clone()], groups, None, n).unwrap();
        let got = whole.evaluate(EmitTo::All).unwrap();
        assert_eq!(got.as_any().downcast_ref::<Int64Array>().unwrap().values(), expected);
        let half = numbers.len() / 2;
        let (mut a, mut b) = (Groups::default(), Groups::default());
        a.update_batch(&[array.slice(0, half)], &groups[..half], None, n).unwrap();
        b.update_batch(&[array.slice(half, numbers.len() - half)], &groups[half..], None, n).unwrap();
        let state = b.state(EmitTo::All).unwrap();
        a.merge_batch(&state, &(0..n).collect::<Vec<_>>(), n).unwrap();
        let merged = a.evaluate(EmitTo::All).unwrap();
        assert_eq!(merged.as_any().downcast_ref::<Int64Array>().unwrap().values(), expected);
        for g in 0..n {
            let mut one = Whole::default();
            let mine: Vec<Option<u32>> = numbers.iter().zip(groups).filter(|(_, &x)| x == g).map(|(v, _)| *v).collect();
            one.update_batch(&[Arc::new(UInt32Array::from(mine)) as ArrayRef]).unwrap();
            assert_eq!(one.evaluate().unwrap(), ScalarValue::Int64(Some(expected[g])));
        }
    }

    #[test]
    fn distinct_institutions_are_counted_up_to_the_cap() {
        // Group 0: 1, 2, 1, null → 2; group 1: ten distinct → capped; group 2: none → 0.
        let mut numbers = vec![Some(1), Some(2), Some(1), None];
        let mut groups = vec![0, 0, 0, 0];
        numbers.extend((10..20).map(Some));
        groups.extend([1; 10]);
        numbers.push(None);
        groups.push(2);
        check(&numbers, &groups, &[2, COUNTED_UP_TO as i64, 0]);
        // Across the halves: the same numbers counted once.
        check(&[Some(5), Some(6), Some(5), Some(6)], &[0, 0, 0, 0], &[2]);
    }

    #[test]
    fn a_sliced_column_with_nulls_under_a_filter_takes_its_own_rows() {
        // Numbers 0..20, every fifth null; sliced from row 3; the filter keeps odd positions of
        // the slice, null for every seventh.
        let all = UInt32Array::from((0..20u32).map(|n| (n % 5 != 0).then_some(n)).collect::<Vec<_>>());
        let slice: ArrayRef = Arc::new(all.slice(3, 12));
        let filter = BooleanArray::from((0..12).map(|i| (i % 7 != 6).then_some(i % 2 == 1)).collect::<Vec<_>>());
        // Rows 1, 3, 5, 7, 9, 11 of the slice (numbers 4, 6, 8, 10, 12, 14; the filter's null is
        // at row 6, not taken anyway); 10 is null: 4, 6, 8, 12, 14 are counted.
        let mut g = Groups::default();
        g.update_batch(&[slice], &[0; 12], Some(&filter), 1).unwrap();
        assert_eq!(g.evaluate(EmitTo::All).unwrap().as_any().downcast_ref::<Int64Array>().unwrap().values(), &[5]);
    }

    #[test]
    fn a_filter_takes_only_its_rows() {
        let array: ArrayRef = Arc::new(UInt32Array::from(vec![1, 2, 3, 4]));
        let filter = BooleanArray::from(vec![Some(true), Some(false), None, Some(true)]);
        let mut g = Groups::default();
        g.update_batch(&[array.clone()], &[0, 0, 0, 0], Some(&filter), 1).unwrap();
        assert_eq!(g.evaluate(EmitTo::All).unwrap().as_any().downcast_ref::<Int64Array>().unwrap().values(), &[2]);
        let states = g.convert_to_state(&[array], Some(&filter)).unwrap();
        let states = states[0].as_any().downcast_ref::<BinaryArray>().unwrap();
        assert_eq!((0..4).map(|r| states.value(r).len()).collect::<Vec<_>>(), [4, 0, 0, 4]);
    }
}
