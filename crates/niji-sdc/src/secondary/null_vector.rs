//! Complements for a cell the lines' equations solve, found by linear programming: cells to
//! withhold so that a *null vector* of the equations passes through the cell.
//!
//! A suppressed cell is safe from exact recomputation exactly when some vector over the
//! suppressed cells is nonzero at the cell and adds up to zero along every line of two or more
//! cells (a margin cell counted −1): adding it to the true values changes the cell and keeps
//! every total. Hypercubes ([`super::cubes`]) are the simplest such vectors, but a table with
//! combinations missing often has none through a cell, above all through a cell alone in a line
//! (a line of one cell is no equation, so its cell must be balanced in its other lines only). The
//! linear program looks for any vector: one value per cell of the table, the cell's fixed at 1,
//! every line's sum 0, minimising the sum of the absolute values weighted by what withholding
//! each cell costs (by its class and persons as complements are ranked; a cell suppressed
//! already costs almost nothing). The cells not yet suppressed on which the optimum is nonzero
//! are the complement. A program with no solution at all means that the lines determine the
//! cell whatever is withheld: no complement can save it.
//!
//! Soundness does not rest on the solver: the cells it names are withheld and the next round's
//! audit decides by elimination whether the cell is safe.

use std::cell::Cell;

use microlp::{ComparisonOp, Error, OptimizationDirection, Problem, SolveOutcome};

use super::{by_keys, line_keys, DimLines, Lines};
use crate::table::{Table, TOTAL};

/// Tables of more rows than this get no linear program (its size follows the table's).
pub(super) const MAX_ROWS: usize = 500;
/// Linear programs solved for one table at most (5–30 ms each in a sparse table of 359 rows,
/// measured with a timed count that was not kept):
/// the cells past them get line complements. No time limit: the protection must not depend on
/// how fast the machine is (the same query must withhold the same cells).
pub(super) const PROGRAMS: usize = 16;

/// The tolerance below which a value of the optimum counts as zero (the solver's own).
const TOLERANCE: f64 = 1e-7;

thread_local! {
    /// Whether this thread is inside the solver ([`solver_running`]).
    static SOLVING: Cell<bool> = const { Cell::new(false) };
}

/// Whether this thread is inside the linear-programming solver: a panic hook asks it, so that
/// the message of a panic there (in the solver or in what it calls; it may show values made
/// from persons counts) is not written. Output checking catches such a panic and goes on.
pub fn solver_running() -> bool {
    SOLVING.with(Cell::get)
}

/// What the linear program says of a cell.
pub(super) enum Outcome {
    /// The cells not yet suppressed, by keys, that put it on a null vector with the suppressed
    /// ones (none: it is on one already, which the audit did not find).
    Withhold(Vec<usize>),
    /// No null vector passes through it: the lines determine it, whatever is withheld.
    NoVector,
    /// Not solved: the table is past [`MAX_ROWS`], or the solver failed.
    Unsolved,
}

/// Whether a table of `rows` rows is small enough for linear programs ([`MAX_ROWS`]).
pub(super) fn small_enough(rows: usize) -> bool {
    rows <= MAX_ROWS
}

/// Solves the linear program for `cell` (see the module docs).
pub(super) fn complement(table: &Table, dims: &[DimLines], lines: &Lines, suppressed: &[bool], cell: usize) -> Outcome {
    let n = table.rows.len();
    if !small_enough(n) {
        return Outcome::Unsolved;
    }
    // Variables in key order (rows, then lines), so that the optimum does not depend on the order
    // the rows came in.
    let mut order: Vec<usize> = (0..n).collect();
    order.sort_by(by_keys(table));
    let most = lines.persons.iter().copied().max().unwrap_or(0);
    let mut problem = Problem::new(OptimizationDirection::Minimize);
    let mut plus = vec![None; n];
    let mut minus = vec![None; n];
    for &r in &order {
        let weight = if suppressed[r] { 1e-3 } else { lines.weight(r, most) };
        // Unbounded above: the cell's value is fixed, so a vector that needs large values
        // elsewhere cannot be scaled down; the positive weights keep the minimum finite.
        let (up, down) = if r == cell { ((1.0, 1.0), (0.0, 0.0)) } else { ((0.0, f64::INFINITY), (0.0, f64::INFINITY)) };
        plus[r] = Some(problem.add_var(weight, up));
        minus[r] = Some(problem.add_var(weight, down));
    }
    for (k, along) in dims.iter().enumerate() {
        let mut by_keys: Vec<u32> = (0..along.lines() as u32).filter(|&l| along.members(l).len() >= 2).collect();
        by_keys.sort_by_cached_key(|&l| line_keys(table, along.members(l)[0] as usize, k));
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
    // The solver panics on what it takes for its own bugs: output checking must not go down with
    // it (the cell then gets a line complement, and the audit decides as ever). A panic hook
    // leaves the message of a panic inside it unwritten ([`solver_running`]).
    SOLVING.with(|s| s.set(true));
    let solved = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| problem.solve()));
    SOLVING.with(|s| s.set(false));
    let solution = match solved {
        Ok(Ok(SolveOutcome::Solution(solution))) => solution,
        Ok(Err(Error::Infeasible)) => return Outcome::NoVector,
        _ => return Outcome::Unsolved,
    };
    Outcome::Withhold(
        order
            .into_iter()
            .filter(|&r| r != cell && !suppressed[r])
            .filter(|&r| (solution[plus[r].expect("variable")] - solution[minus[r].expect("variable")]).abs() > TOLERANCE)
            .collect(),
    )
}
