//! Complements for a cell the lines' equations solve, found by linear programming: the cheapest
//! cells to withhold so that a *null vector* of the equations passes through the cell.
//!
//! A suppressed cell is safe from exact recomputation exactly when some vector over the
//! suppressed cells is nonzero at the cell and adds up to zero along every line of two or more
//! cells (a margin cell counted −1): adding it to the true values changes the cell and keeps
//! every total. Hypercubes ([`super::cubes`]) are the simplest such vectors, but a table with
//! combinations missing often has none through a cell, above all through a cell alone in a line
//! (a line of one cell is no equation, so its cell must be balanced in its other lines only). The
//! linear program looks for any vector: one value per cell of the table, the cell's fixed at 1,
//! every line's sum 0, minimising the sum of the absolute values weighted by what withholding
//! each cell costs (a cell suppressed already costs almost nothing). The cells not yet
//! suppressed on which the optimum is nonzero are the complement. Where no vector exists at all
//! the lines determine the cell whatever is withheld, and the table is refused.
//!
//! Soundness does not rest on the solver: the cells it names are withheld and the next round's
//! audit decides by elimination whether the cell is safe.

use microlp::{ComparisonOp, OptimizationDirection, Problem, SolveOutcome};

use super::{DimLines, Lines};
use crate::table::{Table, TOTAL};

/// Tables of more rows than this get no linear program (its size follows the table's).
pub(super) const MAX_ROWS: usize = 500;
/// Linear programs solved for one table at most (each takes 5–30 ms in a table of a few hundred
/// rows): the cells past them get line complements. No time limit: the protection must not depend
/// on how fast the machine is (the same query must withhold the same cells).
pub(super) const PROGRAMS: usize = 16;

/// Values a cell may take in the vector, either sign (the cell's own is 1).
const BOUND: f64 = 16.0;
/// Below this a value of the optimum counts as zero.
const ZERO: f64 = 1e-7;

/// The cells not yet suppressed that make `cell` safe together with those suppressed, cheapest
/// by [`Lines::cost`]'s order, ascending; `None` when no vector passes through the cell (or the
/// table is past [`MAX_ROWS`], or the solver fails): the caller does not ask again for the cell.
pub(super) fn complement(table: &Table, dims: &[DimLines], lines: &Lines, suppressed: &[bool], cell: usize) -> Option<Vec<usize>> {
    let n = table.rows.len();
    if n > MAX_ROWS {
        return None;
    }
    // Variables in key order (rows, then lines), so that the optimum does not depend on the order
    // the rows came in.
    let mut order: Vec<usize> = (0..n).collect();
    order.sort_by(|&a, &b| table.rows[a].keys.cmp(&table.rows[b].keys).then(a.cmp(&b)));
    let most = lines.persons.iter().copied().max().unwrap_or(0) as f64 + 1.0;
    let mut problem = Problem::new(OptimizationDirection::Minimize);
    let mut plus = vec![None; n];
    let mut minus = vec![None; n];
    for &r in &order {
        let weight = if suppressed[r] {
            1e-3
        } else {
            match lines.class(r) {
                0 => 1.0 + lines.persons[r] as f64 / most,
                1 => 4.0,
                _ => 8.0,
            }
        };
        let (up, down) = if r == cell { ((1.0, 1.0), (0.0, 0.0)) } else { ((0.0, BOUND), (0.0, BOUND)) };
        plus[r] = Some(problem.add_var(weight, up));
        minus[r] = Some(problem.add_var(weight, down));
    }
    for (k, along) in dims.iter().enumerate() {
        let mut by_keys: Vec<u32> = (0..along.lines() as u32).filter(|&l| along.members(l).len() >= 2).collect();
        by_keys.sort_by(|&a, &b| {
            let first = |l: u32| &table.rows[along.members(l)[0] as usize].keys;
            let skip = |keys: &[String]| keys.iter().enumerate().filter(|&(j, _)| j != k).map(|(_, key)| key.clone()).collect::<Vec<_>>();
            skip(first(a)).cmp(&skip(first(b)))
        });
        for l in by_keys {
            let mut terms = Vec::new();
            for &r in along.members(l) {
                let r = r as usize;
                let sign = if table.rows[r].keys[k] == TOTAL { -1.0 } else { 1.0 };
                terms.push((plus[r].expect("every row has variables"), sign));
                terms.push((minus[r].expect("every row has variables"), -sign));
            }
            problem.add_constraint(terms.as_slice(), ComparisonOp::Eq, 0.0);
        }
    }
    let SolveOutcome::Solution(solution) = problem.solve().ok()? else { return None };
    let mut chosen: Vec<usize> = order
        .into_iter()
        .filter(|&r| r != cell && !suppressed[r])
        .filter(|&r| (solution[plus[r].expect("variable")] - solution[minus[r].expect("variable")]).abs() > ZERO)
        .collect();
    chosen.sort_unstable();
    Some(chosen)
}
