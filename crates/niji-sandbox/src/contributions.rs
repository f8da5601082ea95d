//! The two largest single-person contributions to a sum, per output row, for the dominance
//! (N-K) and p-percent rules of output checking.
//!
//! A `sum(x)` or `avg(x)` cell is a magnitude: if one or two persons make up most of it, the
//! cell tells their values. The rewrite of [`crate::check`] adds, beside the persons count, one
//! of these aggregates per magnitude and counted person column over that column and `x` (the
//! strictest result is kept): its value packs the
//! largest and second largest person's sum and the total ([`CONTRIBUTIONS_BYTES`], three
//! little-endian `f64`), all in one pass.
//!
//! They run only in the persons count's fast mode ([`crate::persons`]) and lean on its checks:
//! in that mode the rows of a person reach a group's accumulator as one run (the partition is
//! sorted by person), so a group keeps the running sum of the current person and, when the person
//! changes, puts it among its two largest; partial states of different partitions hold different
//! persons, so merging keeps the two largest of both. Where that order does not hold the persons
//! count fails the whole query, which then runs again with the exact count and without
//! contributions (the magnitude is then checked as one whose contributions are unknown).

use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, AsArray, BooleanArray, FixedSizeBinaryBuilder, Float64Array};
use datafusion::arrow::datatypes::{DataType, Field, FieldRef, Float64Type};
use datafusion::common::{DataFusionError, Result, ScalarValue};
use datafusion::logical_expr::function::{AccumulatorArgs, StateFieldsArgs};
use datafusion::logical_expr::{Accumulator, AggregateUDF, AggregateUDFImpl, EmitTo, Expr, GroupsAccumulator, Signature, Volatility};

use crate::data::{id_at, Id, NO_ID, PERSON_ID_BYTES};

/// Bytes of the aggregate's value: largest, second, total.
pub(crate) const CONTRIBUTIONS_BYTES: i32 = 24;

/// The two largest single-person contributions to `sum(value)` over `person_id`, and the total
/// (not registered in the session: only the rewrite of [`crate::check`] can call it). `value`
/// must be `Float64`.
pub(crate) fn contributions(person_id: Expr, value: Expr) -> Expr {
    AggregateUDF::new_from_impl(TopContributions::default()).call(vec![person_id, value])
}

/// Reads a value of [`contributions`]: `[largest, second, total]`.
pub(crate) fn unpack(bytes: &[u8]) -> Option<[f64; 3]> {
    let f = |i: usize| bytes.get(8 * i..8 * i + 8).map(|b| f64::from_le_bytes(b.try_into().expect("8 bytes")));
    Some([f(0)?, f(1)?, f(2)?])
}

#[derive(Debug, PartialEq, Eq, Hash)]
struct TopContributions {
    signature: Signature,
}

impl Default for TopContributions {
    fn default() -> Self {
        TopContributions { signature: Signature::exact(vec![DataType::FixedSizeBinary(PERSON_ID_BYTES), DataType::Float64], Volatility::Immutable) }
    }
}

impl AggregateUDFImpl for TopContributions {
    fn name(&self) -> &str {
        "niji_contributions"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(DataType::FixedSizeBinary(CONTRIBUTIONS_BYTES))
    }

    fn is_nullable(&self) -> bool {
        false
    }

    fn state_fields(&self, args: StateFieldsArgs) -> Result<Vec<FieldRef>> {
        Ok(vec![
            Arc::new(Field::new(format!("{}[largest]", args.name), DataType::Float64, false)),
            Arc::new(Field::new(format!("{}[second]", args.name), DataType::Float64, false)),
            Arc::new(Field::new(format!("{}[total]", args.name), DataType::Float64, false)),
        ])
    }

    fn accumulator(&self, _args: AccumulatorArgs) -> Result<Box<dyn Accumulator>> {
        Ok(Box::new(OneGroup { group: Group::default() }))
    }

    fn groups_accumulator_supported(&self, _args: AccumulatorArgs) -> bool {
        true
    }

    fn create_groups_accumulator(&self, _args: AccumulatorArgs) -> Result<Box<dyn GroupsAccumulator>> {
        Ok(Box::new(Groups { groups: Vec::new() }))
    }

    fn default_value(&self, _data_type: &DataType) -> Result<ScalarValue> {
        Ok(ScalarValue::FixedSizeBinary(CONTRIBUTIONS_BYTES, Some(pack([0.0; 3]).to_vec())))
    }
}

fn pack(v: [f64; 3]) -> [u8; 24] {
    let mut out = [0u8; 24];
    for (i, x) in v.iter().enumerate() {
        out[8 * i..8 * i + 8].copy_from_slice(&x.to_le_bytes());
    }
    out
}

/// One group: the person of the current run, its running sum, the two largest finished sums,
/// the total.
#[derive(Clone, Copy, Debug)]
struct Group {
    person: Id,
    current: f64,
    top: [f64; 2],
    total: f64,
}

impl Default for Group {
    fn default() -> Self {
        Group { person: NO_ID, current: 0.0, top: [0.0; 2], total: 0.0 }
    }
}

impl Group {
    #[inline(always)]
    fn add(&mut self, person: Id, value: f64) {
        if person != self.person {
            self.finish_run();
            self.person = person;
        }
        self.current += value;
        self.total += value;
    }

    fn finish_run(&mut self) {
        if self.person != NO_ID {
            self.offer(self.current);
        }
        self.person = NO_ID;
        self.current = 0.0;
    }

    /// Takes a person's sum (or a partial state's largest or second) among the two largest. A
    /// negative sum marks the largest as NaN for good: with negative contributions the largest ones
    /// say nothing about dominance, and the output check cannot use them.
    fn offer(&mut self, sum: f64) {
        if sum.is_nan() || sum < 0.0 {
            self.top[0] = f64::NAN;
            return;
        }
        if sum > self.top[0] {
            self.top = [sum, self.top[0]];
        } else if sum > self.top[1] && !self.top[0].is_nan() {
            self.top[1] = sum;
        }
    }

    /// Largest, second and total, the current run included (the group state stays as it is).
    fn finished(&self) -> [f64; 3] {
        let mut g = *self;
        g.finish_run();
        [g.top[0], g.top[1], g.total]
    }

    fn merge(&mut self, largest: f64, second: f64, total: f64) {
        self.offer(largest);
        self.offer(second);
        self.total += total;
    }
}

fn inputs(values: &[ArrayRef]) -> Result<(&datafusion::arrow::array::FixedSizeBinaryArray, &Float64Array)> {
    let bad = || DataFusionError::Internal("contributions over unexpected columns".into());
    let [ids, numbers] = values else { return Err(bad()) };
    let ids = ids.as_fixed_size_binary_opt().filter(|a| a.value_length() == PERSON_ID_BYTES).ok_or_else(bad)?;
    let numbers = numbers.as_primitive_opt::<Float64Type>().ok_or_else(bad)?;
    Ok((ids, numbers))
}

fn states(values: &[ArrayRef]) -> Result<[&Float64Array; 3]> {
    let bad = || DataFusionError::Internal("contributions state".into());
    let [largest, second, total] = values else { return Err(bad()) };
    fn f(a: &ArrayRef) -> Option<&Float64Array> {
        a.as_primitive_opt::<Float64Type>()
    }
    Ok([f(largest).ok_or_else(bad)?, f(second).ok_or_else(bad)?, f(total).ok_or_else(bad)?])
}

fn values_of(finished: impl Iterator<Item = [f64; 3]>) -> Result<ArrayRef> {
    let mut b = FixedSizeBinaryBuilder::new(CONTRIBUTIONS_BYTES);
    for v in finished {
        b.append_value(pack(v))?;
    }
    Ok(Arc::new(b.finish()))
}

fn state_of(finished: &[[f64; 3]]) -> Vec<ArrayRef> {
    (0..3).map(|i| Arc::new(Float64Array::from_iter_values(finished.iter().map(|f| f[i]))) as ArrayRef).collect()
}

#[derive(Debug)]
struct Groups {
    groups: Vec<Group>,
}

impl GroupsAccumulator for Groups {
    fn update_batch(
        &mut self,
        values: &[ArrayRef],
        group_indices: &[usize],
        opt_filter: Option<&BooleanArray>,
        total_num_groups: usize,
    ) -> Result<()> {
        let (ids, numbers) = inputs(values)?;
        self.groups.resize(total_num_groups, Group::default());
        let groups = &mut self.groups[..];
        if ids.null_count() == 0 && numbers.null_count() == 0 && opt_filter.is_none() {
            // The common case over the ids' bytes and the values' slice.
            let width = PERSON_ID_BYTES as usize;
            let bytes = &ids.value_data()[..ids.len() * width];
            for ((chunk, &value), &g) in bytes.chunks_exact(width).zip(numbers.values().iter()).zip(group_indices) {
                groups[g].add(Id::from_le_bytes(chunk.try_into().expect("person id width")), value);
            }
            return Ok(());
        }
        for (row, &g) in group_indices.iter().enumerate() {
            if opt_filter.is_some_and(|f| !f.is_valid(row) || !f.value(row)) {
                continue;
            }
            if ids.is_null(row) {
                // A row with no person (an outer join's unmatched side) would be left out of the
                // contributions: the query runs again with the exact count, without them.
                return Err(crate::persons::broken());
            }
            // A null value adds nothing (as in `sum`), but the person still takes part.
            let value = if numbers.is_null(row) { 0.0 } else { numbers.value(row) };
            groups[g].add(id_at(ids, row), value);
        }
        Ok(())
    }

    fn evaluate(&mut self, emit_to: EmitTo) -> Result<ArrayRef> {
        values_of(emit_to.take_needed(&mut self.groups).iter().map(Group::finished))
    }

    fn state(&mut self, emit_to: EmitTo) -> Result<Vec<ArrayRef>> {
        let finished: Vec<[f64; 3]> = emit_to.take_needed(&mut self.groups).iter().map(Group::finished).collect();
        Ok(state_of(&finished))
    }

    fn merge_batch(&mut self, values: &[ArrayRef], group_indices: &[usize], total_num_groups: usize) -> Result<()> {
        let [largest, second, total] = states(values)?;
        self.groups.resize(total_num_groups, Group::default());
        for (row, &g) in group_indices.iter().enumerate() {
            // Partial states of different partitions hold different persons.
            self.groups[g].merge(largest.value(row), second.value(row), total.value(row));
        }
        Ok(())
    }

    fn convert_to_state(&self, values: &[ArrayRef], opt_filter: Option<&BooleanArray>) -> Result<Vec<ArrayRef>> {
        // Not used (`supports_convert_to_state` is false, as for the persons count): one row, one
        // contribution, by the same rules as a group's.
        let (ids, numbers) = inputs(values)?;
        let finished: Vec<[f64; 3]> = (0..ids.len())
            .map(|row| {
                let mut g = Group::default();
                let counted = !ids.is_null(row) && !numbers.is_null(row) && opt_filter.is_none_or(|f| f.is_valid(row) && f.value(row));
                if counted {
                    g.add(id_at(ids, row), numbers.value(row));
                }
                g.finished()
            })
            .collect();
        Ok(state_of(&finished))
    }

    fn size(&self) -> usize {
        self.groups.capacity() * std::mem::size_of::<Group>()
    }
}

/// The same for an aggregate without groups.
#[derive(Debug)]
struct OneGroup {
    group: Group,
}

impl Accumulator for OneGroup {
    fn update_batch(&mut self, values: &[ArrayRef]) -> Result<()> {
        let (ids, numbers) = inputs(values)?;
        for row in 0..ids.len() {
            if ids.is_null(row) {
                return Err(crate::persons::broken());
            }
            self.group.add(id_at(ids, row), if numbers.is_null(row) { 0.0 } else { numbers.value(row) });
        }
        Ok(())
    }

    fn evaluate(&mut self) -> Result<ScalarValue> {
        Ok(ScalarValue::FixedSizeBinary(CONTRIBUTIONS_BYTES, Some(pack(self.group.finished()).to_vec())))
    }

    fn size(&self) -> usize {
        std::mem::size_of_val(self)
    }

    fn state(&mut self) -> Result<Vec<ScalarValue>> {
        Ok(self.group.finished().iter().map(|v| ScalarValue::Float64(Some(*v))).collect())
    }

    fn merge_batch(&mut self, values: &[ArrayRef]) -> Result<()> {
        let [largest, second, total] = states(values)?;
        for row in 0..largest.len() {
            self.group.merge(largest.value(row), second.value(row), total.value(row));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::data::id_array as ids;

    /// Runs partitions (each one batch of `(person, group, value)`) through partial accumulators
    /// and one merging accumulator; returns `[largest, second, total]` per group.
    fn check(partitions: &[&[(Id, usize, f64)]], groups: usize, expected: &[[f64; 3]]) {
        let mut merged = Groups { groups: Vec::new() };
        for rows in partitions {
            let mut partial = Groups { groups: Vec::new() };
            let people: Vec<Id> = rows.iter().map(|r| r.0).collect();
            let group_indices: Vec<usize> = rows.iter().map(|r| r.1).collect();
            let values: ArrayRef = Arc::new(Float64Array::from_iter_values(rows.iter().map(|r| r.2)));
            partial.update_batch(&[ids(&people), values], &group_indices, None, groups).unwrap();
            let state = partial.state(EmitTo::All).unwrap();
            merged.merge_batch(&state, &(0..groups).collect::<Vec<_>>(), groups).unwrap();
        }
        let out = merged.evaluate(EmitTo::All).unwrap();
        let out = out.as_fixed_size_binary();
        let got: Vec<[f64; 3]> = (0..out.len()).map(|i| unpack(out.value(i)).unwrap()).collect();
        assert_eq!(got, expected);
    }

    #[test]
    fn a_persons_rows_add_up_to_one_contribution() {
        // Group 0: person 1 gives 5 + 7, person 2 gives 3, person 3 gives 20.
        check(&[&[(1, 0, 5.0), (1, 0, 7.0), (2, 0, 3.0), (3, 0, 20.0)]], 1, &[[20.0, 12.0, 35.0]]);
        // A person's rows in two groups contribute to each apart.
        check(&[&[(1, 0, 5.0), (1, 1, 7.0), (1, 0, 1.0), (2, 1, 2.0)]], 2, &[[6.0, 0.0, 6.0], [7.0, 2.0, 9.0]]);
        // A single contributor: the second is 0.
        check(&[&[(4, 0, 9.0), (4, 0, 1.0)]], 1, &[[10.0, 0.0, 10.0]]);
        // A group no row reached.
        check(&[&[(4, 1, 9.0)]], 2, &[[0.0, 0.0, 0.0], [9.0, 0.0, 9.0]]);
    }

    #[test]
    fn a_negative_sum_makes_the_contributions_unusable() {
        for partitions in [&[&[(1, 0, -5.0), (2, 0, 3.0)][..]][..], &[&[(2, 0, 3.0)], &[(1, 0, 2.0), (1, 0, -4.0)]]] {
            let mut merged = Groups { groups: Vec::new() };
            for rows in partitions {
                let mut partial = Groups { groups: Vec::new() };
                let people: Vec<Id> = rows.iter().map(|r| r.0).collect();
                let values: ArrayRef = Arc::new(Float64Array::from_iter_values(rows.iter().map(|r| r.2)));
                partial.update_batch(&[ids(&people), values], &vec![0; rows.len()], None, 1).unwrap();
                merged.merge_batch(&partial.state(EmitTo::All).unwrap(), &[0], 1).unwrap();
            }
            let out = merged.evaluate(EmitTo::All).unwrap();
            assert!(unpack(out.as_fixed_size_binary().value(0)).unwrap()[0].is_nan(), "{partitions:?}");
        }
        // A person whose rows add up to zero or more is fine.
        check(&[&[(1, 0, -5.0), (1, 0, 6.0)]], 1, &[[1.0, 0.0, 1.0]]);
    }

    #[test]
    fn partitions_merge_to_the_two_largest_of_all() {
        check(&[&[(1, 0, 10.0), (2, 0, 4.0)], &[(5, 0, 8.0), (6, 0, 9.0)]], 1, &[[10.0, 9.0, 31.0]]);
    }
}
