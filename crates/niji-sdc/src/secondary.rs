//! Secondary (complementary) suppression: after the primary rules, more cells are suppressed
//! so that no suppressed cell can be recomputed from the totals of its row or column.
//!
//! The unit is the row of the table (one combination of keys, all its measures together;
//! see [`crate::check`]). A *line* along dimension `d` is the set of rows whose keys agree on
//! every dimension but `d`: in a 2-D table the lines are its rows and its columns; the margin
//! row and column (keys [`TOTAL`]) are lines too, and a margin cell belongs to the lines it
//! totals. A line's cells add up to its total, whether the total is in the table or only
//! implied (published elsewhere, or computable), so one suppressed cell alone in a line
//! equals the total minus the visible cells.
//!
//! Method: the classic "at least two per line" heuristic of hypercube-style suppression.
//! Every line holding exactly one suppressed cell gets a second one: the smallest
//! candidate, preferring (in this order) an ordinary cell with persons over a margin cell
//! over an empty cell, then a cell that also completes another line holding a single
//! suppression, then the fewest persons, then the smallest keys, then the earliest row (so the
//! result does not depend on the order of the rows). A table without keys is one line
//! (`protect_keyless`: ties by persons sample, the rows having no keys). The new suppression may
//! leave other lines with a single suppression; they are queued, and the process repeats until
//! every line holds 0 or ≥ 2 suppressed cells. It terminates because suppressions are only added.
//!
//! In 2-D, two per line is then made sufficient against solving the line equations together:
//! a suppressed cell is safe from exact recomputation exactly when it lies on a cycle of
//! suppressed cells (rows and columns alternating), and two cycles joined by a single cell
//! ("a bridge") satisfy two-per-line yet the bridge is determined; every bridge gets a
//! complement that puts it on a cycle ([`break_bridges`]).
//!
//! In 3 or more dimensions each cell lies in 3 or more lines, and patterns that pass
//! two-per-line can be solved by combining lines (about one random three-way table with
//! margins in sixteen). The suppressed cells are audited by linear algebra instead
//! ([`solved_cells`], per group of suppressed cells sharing lines):
//! - a group of up to [`AUDITED_CELLS`] cells, unless every one of them is on a suppressed cube
//!   (below), by the reduced echelon form of the lines' equations (a cell is solved when its
//!   unit vector is in their row space; the elimination is cubic in the cells); each solved
//!   cell gets a cube through it completed as below, or where none can be made (combinations
//!   missing from the table) the cheapest cells that put it on any null vector of the equations,
//!   found by a linear program ([`null_vector`]; tables of up to 500 rows, 16 programs a table),
//!   or else a complement in one of its lines (the best by the order above);
//! - a larger group (a large table with many small cells makes one of tens of thousands) by
//!   certificates ([`cubes`]): in three dimensions, a cell on a cycle of positions in its
//!   slice (of some dimension) that the other half of that dimension's slices *glues*
//!   ([`Cubes::certify_glued_cycles`]: the cycle is then a sum of cycles of those slices, and
//!   the difference is a null vector; a few passes over the slices' bits); a cell that is a
//!   corner of a suppressed hypercube (two values per dimension, all 2^d cells suppressed), or
//!   one on two cubes one cell short of the same cell; in three dimensions, one on a cycle
//!   between two slices (two values of one dimension, a cycle of positions in the other two
//!   where both slices' cells are suppressed: [`Cubes::certify_slice_pairs`]; a cube is such a
//!   cycle of four). Each certified cell is not solved, whatever else is suppressed. Each cell
//!   without a certificate gets the cube of fewest new cells completed (the hypercube method of
//!   statistical offices, GHMITER in τ-ARGUS), and as the pattern grows denser the slices are
//!   compared again (at most twice a round, each after at least 2,000 cells searched). Where
//!   the glued cycles do not reach (sparser patterns, more dimensions), this protects more than
//!   needed: many cells of a large scattered group are safe through larger combinations no
//!   cheap search finds.
//!
//! Then lines are brought back to two, and again, for up to [`SOLVE_ROUNDS`] rounds. Cells
//! still solved, or of a large group and on no cube (none can be made where combinations are
//! missing from the table; none is sought in more than 12 dimensions), then refuse the table
//! (`Reason::SolvableSuppression`).
//!
//! Limits (documented, not solved):
//! - A cell of a large group may be solved when its lines, together, make it so; the
//!   certificates are the glued cycle, the cube and the cycle between two slices, and a cell
//!   that has one is safe. Where they do not reach, the price is cells suppressed beyond need.
//!   On the benchmark's 100³ table, 97,101 suppressed cells form one group, 90,029 of them on
//!   no cube; with glued cycles every cell gets a certificate (no cube is completed), and secondary
//!   suppression withholds 355 of the table's 1,806,494 cells, those of two per line (28,503
//!   with cubes completed and cycles between two slices, before glued cycles; 38,693 with cubes
//!   alone).
//! - In 2-D, a bridge whose two sides no cells not yet suppressed join, one after another
//!   (a table with combinations missing), refuses the table (`Reason::SolvableSuppression`),
//!   as do bridges past the first 1,000.
//! - Two cells that are the only link between two groups of suppressed cells (a cut of two
//!   edges) are each safe, but their sum is determined; rows with equal keys likewise (and in
//!   a large group, which of them the cubes and the slices' cycles see, the first, depends on
//!   the rows' order).
//! - Intervals: with non-negative counts an attacker bounds a suppressed cell between 0 and
//!   its line's suppressed total; a small complement gives a narrow interval. Preferring
//!   the smallest complement minimises lost information, not the width of that interval
//!   (no protection level is enforced).
//! - A line with a single row (a dimension with one value and no margin row) cannot get a
//!   second suppression; it is left as it is (its implied total is the cell itself).
//! - In sparse tables many small cells are determined by the lines' totals whatever is
//!   withheld (on 1,000 random three-way tables without margins, 3–7 values a side, 60–100% of
//!   the combinations present, a quarter of the cells small: 383 of the 460 refused hold such a
//!   cell, in 272 of them only cells alone in a line): those tables are refused, and only fewer
//!   dimensions or coarser categories make them publishable.
//! - Tables of more than 2³² rows are not supported (row indexes are `u32`).

mod cubes;
mod null_vector;

use crate::hash::FxBuild;
use crate::table::{Table, TOTAL};
use cubes::{Cost, Cubes};
pub use null_vector::solver_running;
use std::collections::{HashMap, VecDeque};

/// The lines along one dimension, as compressed rows: `line_of[row]`, and the rows of line
/// `l` in `members[start[l]..start[l + 1]]`, in row order.
struct DimLines {
    line_of: Vec<u32>,
    start: Vec<u32>,
    members: Vec<u32>,
}

impl DimLines {
    fn lines(&self) -> usize {
        self.start.len() - 1
    }

    fn members(&self, line: u32) -> &[u32] {
        &self.members[self.start[line as usize] as usize..self.start[line as usize + 1] as usize]
    }
}

/// What secondary suppression did.
pub(crate) struct Protection {
    /// The rows it suppressed, each with the suppressed row that made it necessary, in the
    /// order they were added.
    pub added: Vec<(usize, usize)>,
    /// Suppressed cells that the lines' equations still solve after the complements tried (in
    /// 2-D, bridges nothing joins; in 3-D or more, after [`SOLVE_ROUNDS`] rounds, and cells of
    /// large groups on no suppressed cube where none can be made): the table is refused.
    pub solvable: usize,
}

/// Rounds of complements for suppressed cells the equations solve (three or more dimensions).
const SOLVE_ROUNDS: usize = 16;
/// Comparisons of slices again while cubes are completed, per round at most (each compares every
/// pair of slices: 50–90 ms on the benchmark's table of 100³).
const SLICE_PASSES: usize = 2;
/// Cells searched for a cube to complete, at least, between two comparisons of slices.
const MIN_SEARCHES_BETWEEN_PASSES: usize = 2_000;
/// Suppressed cells of one connected group audited by elimination at most (it is cubic in
/// them); a larger group is audited by hypercubes.
const AUDITED_CELLS: usize = 400;

/// Adds secondary suppressions to `suppressed` (one flag per row); see the module docs. Rows
/// with the same keys (the table does not check they are distinct) are two cells between the
/// same lines: their sum is not protected by the cycle they make (a documented limit).
pub(crate) fn protect(table: &Table, persons: &[u64], suppressed: &mut [bool]) -> Protection {
    protect_with(table, persons, suppressed, Effort::default())
}

/// How much [`protect`] does in three dimensions or more (the tests lower it to reach each path
/// in small tables).
#[derive(Clone, Copy)]
struct Effort {
    /// Groups of up to this many suppressed cells are audited by elimination, larger ones by
    /// hypercube certificates.
    exact_cells: usize,
    /// Linear programs solved for one table at most ([`null_vector`]).
    programs: usize,
    /// Cells searched for a cube to complete, at least, between two comparisons of slices.
    searches_between_passes: usize,
    /// The work of the comparisons of slices for one table ([`Cubes::certify_slice_pairs`]).
    slice_pair_work: usize,
}

impl Default for Effort {
    fn default() -> Self {
        Effort {
            exact_cells: AUDITED_CELLS,
            programs: null_vector::PROGRAMS,
            searches_between_passes: MIN_SEARCHES_BETWEEN_PASSES,
            slice_pair_work: cubes::SLICE_PAIR_WORK,
        }
    }
}

/// [`protect`] with groups of up to `exact_cells` suppressed cells audited by elimination, and
/// slices compared again with no least number of cells searched between (small tables reach
/// that path).
#[cfg(test)]
fn protect_audited(table: &Table, persons: &[u64], suppressed: &mut [bool], exact_cells: usize) -> Protection {
    protect_with(table, persons, suppressed, Effort { exact_cells, searches_between_passes: 1, ..Effort::default() })
}

/// [`protect`] with `effort`.
fn protect_with(table: &Table, persons: &[u64], suppressed: &mut [bool], effort: Effort) -> Protection {
    let Effort { programs, searches_between_passes, slice_pair_work, .. } = effort;
    let mut slice_work = slice_pair_work;
    let (n, d) = (table.rows.len(), table.dimensions.len());
    if n == 0 || !suppressed.iter().any(|&s| s) {
        return Protection { added: Vec::new(), solvable: 0 };
    }
    if d == 0 {
        return Protection { added: protect_keyless(table, persons, suppressed), solvable: 0 };
    }
    let Interned { ids, cardinality, margin, key_order } = intern(table);
    let dims: Vec<DimLines> = (0..d).map(|k| lines_along(&ids, n, &cardinality, k)).collect();
    let mut count: Vec<Vec<u32>> = dims.iter().map(|l| vec![0; l.lines()]).collect();
    for row in (0..n).filter(|&r| suppressed[r]) {
        for (k, lines) in dims.iter().enumerate() {
            count[k][lines.line_of[row] as usize] += 1;
        }
    }
    // Lines by their keys (every dimension but theirs), not by the order their rows came in:
    // each choice changes the later ones, and the same query must protect the same way.
    let mut singles: Vec<(usize, Vec<&str>, u32)> = Vec::new();
    for (k, counts) in count.iter().enumerate() {
        for l in (0..counts.len()).filter(|&l| counts[l] == 1) {
            let first = dims[k].members(l as u32)[0] as usize;
            singles.push((k, line_keys(table, first, k), l as u32));
        }
    }
    singles.sort();
    let queue: VecDeque<(usize, u32)> = singles.into_iter().map(|(k, _, l)| (k, l)).collect();
    let mut added = Vec::new();
    let mut lines = Lines { table, persons, dims: &dims, margin: &margin, count: &mut count };
    lines.two_per_line(suppressed, queue, &mut added);
    let solvable = if d == 2 {
        let (joined, unjoined) = break_bridges(&mut lines, suppressed);
        added.extend(joined);
        unjoined
    } else {
        // Two per line is not enough in three dimensions or more (in one, the audit finds
        // nothing): each cell the equations still solve gets a cube completed (or a complement in
        // one of its lines), and so does each cell of a large group on no suppressed cube (nor
        // on two one cell short of the same cell); then every line is brought back to two.
        let mut cubes = Cubes::new(&ids, &cardinality, key_order, &dims, suppressed);
        let mut certified = vec![false; n];
        // Linear programs left to solve (none past the size the programs take), and cells found
        // on no null vector at all (whatever is withheld: the table's shape decides it, so no
        // later round asks again).
        let mut programs = if null_vector::small_enough(n) { programs } else { 0 };
        let mut on_no_vector = vec![false; n];
        let mut audit = solved_cells(table, suppressed, &dims, (&cubes, &mut certified), (effort.exact_cells, &mut slice_work));
        for _ in 0..SOLVE_ROUNDS {
            if audit.solved.is_empty() && audit.uncovered.is_empty() {
                break;
            }
            let before = added.len();
            let mut queue = VecDeque::new();
            let mut touched: std::collections::HashSet<(usize, u32), FxBuild> = Default::default();
            // Every cell withheld here goes through this: the lines' counts and the cubes' copy of
            // what is suppressed.
            let mut withhold = |lines: &mut Lines, cubes: &mut Cubes, suppressed: &mut [bool], row: usize, because: usize| {
                lines.suppress(suppressed, row, &mut queue);
                cubes.hide(row);
                added.push((row, because));
            };
            for &cell in &audit.solved {
                if (0..d).any(|k| touched.contains(&(k, dims[k].line_of[cell]))) {
                    continue;
                }
                // A cube through the cell makes it safe at once; where none can be made, the
                // cheapest cells that put it on any null vector of the equations (a linear
                // program, in tables of up to `null_vector::MAX_ROWS` rows), else a complement in
                // one of its lines.
                let chosen = match cubes.complete(cell, suppressed, &mut certified, &|r| lines.cost(r)) {
                    Some(corners) => corners,
                    None => match (!on_no_vector[cell] && programs > 0).then(|| {
                        programs -= 1;
                        null_vector::complement(table, &dims, &lines, suppressed, cell)
                    }) {
                        Some(null_vector::Outcome::Withhold(cells)) if !cells.is_empty() => cells,
                        outcome => {
                            on_no_vector[cell] |= matches!(outcome, Some(null_vector::Outcome::NoVector));
                            let its_lines: Vec<(usize, u32)> = (0..d).map(|k| (k, dims[k].line_of[cell])).collect();
                            lines.best_complement(suppressed, &its_lines).into_iter().collect()
                        }
                    },
                };
                for row in chosen {
                    withhold(&mut lines, &mut cubes, suppressed, row, cell);
                    touched.extend((0..d).map(|k| (k, dims[k].line_of[row])));
                }
            }
            // Cubes completed make the pattern denser, and cycles between two slices then certify
            // most of the cells left (three dimensions): the slices are compared again after a
            // quarter of those still ahead at the last comparison have had a cube searched (and
            // at least `searches_between_passes`: a comparison reads every pair of slices).
            let (mut searched, mut passes) = (0, 0);
            let mut next_pass = audit.uncovered.iter().filter(|&&r| !certified[r]).count() / 4;
            for (at, &cell) in audit.uncovered.iter().enumerate() {
                if d == 3 && !certified[cell] && searched >= next_pass.max(searches_between_passes) && passes < SLICE_PASSES {
                    let hidden: Vec<usize> = (0..n).filter(|&r| suppressed[r]).collect();
                    cubes.certify_glued_cycles(&hidden, &mut certified);
                    cubes.certify_slice_pairs(&hidden, &mut certified, &mut slice_work);
                    (searched, passes) = (0, passes + 1);
                    next_pass = audit.uncovered[at..].iter().filter(|&&r| !certified[r]).count() / 4;
                }
                // A cube completed for an earlier cell may have covered this one.
                if certified[cell] {
                    continue;
                }
                searched += 1;
                for corner in cubes.complete(cell, suppressed, &mut certified, &|r| lines.cost(r)).unwrap_or_default() {
                    withhold(&mut lines, &mut cubes, suppressed, corner, cell);
                }
            }
            if added.len() == before {
                // No complement found for any of them: another round would find none either.
                break;
            }
            let from = added.len();
            lines.two_per_line(suppressed, queue, &mut added);
            // The cubes are told of these too (not a new copy of every row's flag each round).
            added[from..].iter().for_each(|&(row, _)| cubes.hide(row));
            audit = solved_cells(table, suppressed, &dims, (&cubes, &mut certified), (effort.exact_cells, &mut slice_work));
        }
        audit.solved.len() + audit.uncovered.iter().filter(|&&r| !certified[r]).count()
    };
    Protection { added, solvable }
}

/// Rows in the order of their keys, then their place (rows with equal keys): what the choices
/// follow, so that they do not depend on the order the rows came in.
fn by_keys(table: &Table) -> impl Fn(&usize, &usize) -> std::cmp::Ordering + '_ {
    |&a, &b| table.rows[a].keys.cmp(&table.rows[b].keys).then(a.cmp(&b))
}

/// The keys of the line along dimension `k` through `row`: its keys but the `k`-th. Lines are
/// ordered by them, not by the order their rows came in.
fn line_keys(table: &Table, row: usize, k: usize) -> Vec<&str> {
    table.rows[row].keys.iter().enumerate().filter(|&(j, _)| j != k).map(|(_, key)| key.as_str()).collect()
}

/// How good a complement a cell is ([`Lines::rank`]), the smallest best: its class, persons,
/// keys, then row.
type Rank<'a> = (u8, u64, &'a [String], usize);

/// The lines of a keyed table and how many suppressed cells each holds.
struct Lines<'a> {
    table: &'a Table,
    persons: &'a [u64],
    dims: &'a [DimLines],
    margin: &'a [bool],
    count: &'a mut Vec<Vec<u32>>,
}

impl Lines<'_> {
    /// Every line of `queue` holding exactly one suppressed cell gets a second (the module
    /// docs say which); lines the new ones leave with one are queued in turn.
    fn two_per_line(&mut self, suppressed: &mut [bool], mut queue: VecDeque<(usize, u32)>, added: &mut Vec<(usize, usize)>) {
        while let Some((k, line)) = queue.pop_front() {
            if self.count[k][line as usize] != 1 {
                continue;
            }
            let members = self.dims[k].members(line);
            let Some(&trigger) = members.iter().find(|&&r| suppressed[r as usize]) else { continue };
            // Ties go to the smallest keys, then the earliest row: the choice must not depend on the
            // order the rows came in (a query without `ORDER BY`), or the same query run twice could
            // protect with one cell and then the other, and show both.
            let mut best: Option<(u8, bool, u64, &[String], u32)> = None;
            for &r in members {
                let row = r as usize;
                if suppressed[row] {
                    continue;
                }
                let closes = self.dims.iter().enumerate().any(|(k2, l2)| k2 != k && self.count[k2][l2.line_of[row] as usize] == 1);
                let key = (self.class(row), !closes, self.persons[row], self.table.rows[row].keys.as_slice(), r);
                if best.is_none_or(|b| key < b) {
                    best = Some(key);
                }
            }
            let Some((_, _, _, _, chosen)) = best else { continue };
            self.suppress(suppressed, chosen as usize, &mut queue);
            added.push((chosen as usize, trigger as usize));
        }
    }

    /// An ordinary cell with persons before a margin cell before an empty cell.
    fn class(&self, row: usize) -> u8 {
        if self.margin[row] {
            1
        } else if self.persons[row] == 0 {
            2
        } else {
            0
        }
    }

    /// Suppresses `row`, queueing the lines it leaves with one suppressed cell.
    fn suppress(&mut self, suppressed: &mut [bool], row: usize, queue: &mut VecDeque<(usize, u32)>) {
        suppressed[row] = true;
        for (k, lines) in self.dims.iter().enumerate() {
            let l = lines.line_of[row];
            let c = &mut self.count[k][l as usize];
            *c += 1;
            if *c == 1 {
                queue.push_back((k, l));
            }
        }
    }

    /// What suppressing `row` adds to a cube's [`Cost`]: by its class, with its persons.
    fn cost(&self, row: usize) -> Cost {
        let class = self.class(row);
        (u32::from(class == 2), u32::from(class == 1), self.persons[row])
    }

    /// What withholding `row` weighs in a linear program ([`null_vector`]): the order of
    /// [`Lines::cost`] as a number (an ordinary cell 1 and under 2 by its persons out of
    /// `most`, a margin 4, an empty cell 8).
    fn weight(&self, row: usize, most: u64) -> f64 {
        match self.class(row) {
            0 => 1.0 + self.persons[row] as f64 / (most as f64 + 1.0),
            1 => 4.0,
            _ => 8.0,
        }
    }

    /// How good a complement `row` is, the smallest best: its class, persons, keys, then row.
    fn rank(&self, row: usize) -> Rank<'_> {
        (self.class(row), self.persons[row], self.table.rows[row].keys.as_slice(), row)
    }

    /// The best cell not yet suppressed in any of `lines`, by [`Lines::rank`].
    fn best_complement(&self, suppressed: &[bool], lines: &[(usize, u32)]) -> Option<usize> {
        let mut best: Option<Rank> = None;
        for &(k, line) in lines {
            for &r in self.dims[k].members(line) {
                let row = r as usize;
                if suppressed[row] {
                    continue;
                }
                let key = self.rank(row);
                if best.is_none_or(|b| key < b) {
                    best = Some(key);
                }
            }
        }
        best.map(|b| b.3)
    }
}

/// The suppressed rows whose value the equations of the lines (each line of two or more rows:
/// its cells add up to its total, a margin cell in it or a total implied) give, whatever the
/// other suppressed values are: the row's unit vector is in the row space of the equations over
/// the suppressed rows. Audited per connected group of suppressed rows (rows sharing a line):
/// a group whose rows are all corners of suppressed cubes is safe as it is; another of up to
/// `exact_cells` rows by elimination; a larger one by certificates alone (cubes, and in three
/// dimensions cycles between two slices), its rows without any `uncovered`. Both lists sorted
/// by keys, then row.
fn solved_cells(
    table: &Table,
    suppressed: &[bool],
    dims: &[DimLines],
    (cubes, certified): (&Cubes, &mut [bool]),
    (exact_cells, slice_work): (usize, &mut usize),
) -> Audit {
    let rows: Vec<usize> = (0..suppressed.len()).filter(|&r| suppressed[r]).collect();
    let mut index = vec![u32::MAX; suppressed.len()];
    for (i, &r) in rows.iter().enumerate() {
        index[r] = i as u32;
    }
    // Groups: rows joined through the lines they share.
    let mut group = UnionFind::new(rows.len());
    for lines in dims {
        for l in 0..lines.lines() as u32 {
            let members = lines.members(l);
            if members.len() < 2 {
                continue;
            }
            let mut first = None;
            for &r in members.iter().filter(|&&r| suppressed[r as usize]) {
                let i = index[r as usize] as usize;
                match first {
                    None => first = Some(i),
                    Some(f) => {
                        group.union(f, i);
                    }
                }
            }
        }
    }
    let roots: Vec<u32> = (0..rows.len()).map(|i| group.find(i) as u32).collect();
    let by_group = buckets(&roots, rows.len());
    let (mut out, mut uncovered, mut large_groups) = (Vec::new(), Vec::new(), Vec::new());
    for members in (0..rows.len() as u32).map(|g| by_group.members(g)).filter(|m| !m.is_empty()) {
        let members: Vec<usize> = members.iter().map(|&i| i as usize).collect();
        if members.len() > exact_cells {
            large_groups.push(members.iter().map(|&i| rows[i]).collect::<Vec<usize>>());
            continue;
        }
        // Every member searched (not up to the first without a cube): the cells marked are then
        // those with one, whatever the rows' order (the marks choose between cubes later).
        let on_cubes = members.iter().filter(|&&i| cubes.certify(rows[i], suppressed, certified)).count();
        if on_cubes == members.len() {
            continue;
        }
        let column: HashMap<usize, usize, FxBuild> = members.iter().enumerate().map(|(c, &i)| (rows[i], c)).collect();
        let mut seen: std::collections::HashSet<(usize, u32), FxBuild> = Default::default();
        let mut equations: Vec<Vec<f64>> = Vec::new();
        for &i in &members {
            for (k, lines) in dims.iter().enumerate() {
                let l = lines.line_of[rows[i]];
                if lines.members(l).len() < 2 || !seen.insert((k, l)) {
                    continue;
                }
                let mut eq = vec![0.0; members.len()];
                for &r in lines.members(l).iter().filter(|&&r| suppressed[r as usize]) {
                    eq[column[&(r as usize)]] = if table.rows[r as usize].keys[k] == TOTAL { -1.0 } else { 1.0 };
                }
                equations.push(eq);
            }
        }
        out.extend(determined(equations, members.len()).into_iter().map(|c| rows[members[c]]));
    }
    // Large groups, over all their cells at once: cycles glued by half the slices first (a few
    // passes over the slices' bits certify most cells of a dense pattern), then cubes (searched
    // from the cells left), then cycles between two slices with the work left for the table.
    // Each certifies cells whatever the others marked, so what is marked in the end does not
    // depend on the order.
    let large: Vec<usize> = large_groups.concat();
    if !large.is_empty() {
        cubes.certify_glued_cycles(&large, certified);
    }
    for group in &large_groups {
        cubes.certify_group(group, suppressed, certified);
        uncovered.extend(group.iter().copied().filter(|&r| !certified[r]));
    }
    if !uncovered.is_empty() {
        cubes.certify_slice_pairs(&large, certified, slice_work);
        uncovered.retain(|&r| !certified[r]);
    }
    out.sort_unstable_by(by_keys(table));
    uncovered.sort_unstable_by(by_keys(table));
    Audit { solved: out, uncovered }
}

/// What [`solved_cells`] found.
struct Audit {
    /// Suppressed rows the equations solve, by keys.
    solved: Vec<usize>,
    /// Suppressed rows of groups too large for elimination that are corners of no suppressed
    /// cube, by keys: they may be solved.
    uncovered: Vec<usize>,
}

/// The unknowns `equations` (rows of coefficients over `unknowns` columns) determine: those
/// whose unit vector is a row of the reduced row echelon form. The coefficients are small
/// integers; elimination is in `f64` with partial pivoting.
fn determined(mut equations: Vec<Vec<f64>>, unknowns: usize) -> Vec<usize> {
    const EPSILON: f64 = 1e-9;
    let mut at = 0;
    for c in 0..unknowns {
        let Some(p) = (at..equations.len()).max_by(|&a, &b| equations[a][c].abs().total_cmp(&equations[b][c].abs())) else { break };
        if equations[p][c].abs() < EPSILON {
            continue;
        }
        equations.swap(at, p);
        let pivot_row = std::mem::take(&mut equations[at]);
        let pivot = pivot_row[c];
        let pivot_row: Vec<f64> = pivot_row.iter().map(|x| x / pivot).collect();
        for eq in equations.iter_mut() {
            let f = eq.get(c).copied().unwrap_or(0.0);
            if f.abs() > EPSILON {
                eq.iter_mut().zip(&pivot_row).for_each(|(x, y)| *x -= f * y);
            }
        }
        equations[at] = pivot_row;
        at += 1;
    }
    equations
        .iter()
        .take(at)
        .filter_map(|eq| {
            let mut nonzero = (0..unknowns).filter(|&c| eq[c].abs() > EPSILON);
            match (nonzero.next(), nonzero.next()) {
                (Some(c), None) => Some(c),
                _ => None,
            }
        })
        .collect()
}

/// Union-find (over suppressed rows, or lines).
#[derive(Default)]
struct UnionFind {
    parent: Vec<usize>,
}

impl UnionFind {
    fn new(n: usize) -> Self {
        UnionFind { parent: (0..n).collect() }
    }

    /// Makes this `n` sets of one, keeping its buffer (one is made a pair of slices).
    fn reset(&mut self, n: usize) {
        self.parent.clear();
        self.parent.extend(0..n);
    }

    fn find(&mut self, mut x: usize) -> usize {
        while self.parent[x] != x {
            self.parent[x] = self.parent[self.parent[x]];
            x = self.parent[x];
        }
        x
    }

    /// Joins the sets of `a` and `b`; false when they were one already.
    fn union(&mut self, a: usize, b: usize) -> bool {
        let (a, b) = (self.find(a), self.find(b));
        if a != b {
            self.parent[a.max(b)] = a.min(b);
        }
        a != b
    }
}

/// Makes every suppressed cell of a 2-D table lie on a cycle of suppressed cells.
///
/// In two dimensions each cell lies in two lines, so the suppressed cells are the edges of a
/// graph whose nodes are the lines they lie in; the line equations over the suppressed cells
/// are that graph's incidence matrix (a margin cell is its line's total: with the sign of a
/// node changed, every column has one +1 and one −1). A cell is then determined by the
/// equations exactly when its edge is a *bridge*, on no cycle: "two per line" leaves such a
/// cell where two cycles of suppressed cells are joined by it. Each bridge (the one with the
/// smallest keys first) gets a complement that joins its two sides: a cell whose one line is
/// on one side and whose other line is on the other, the best by `protect`'s order. The
/// bridge, and every bridge on the way between the two, then lies on a cycle, and the new cell
/// is in two lines that already hold suppressions. Where no cell joins the sides (a table with
/// combinations missing), the fewest cells that do one after another ([`path_between`]).
/// Returns the complements and the number of bridges left that nothing joins, or that were not
/// reached within [`MAX_BRIDGE_ROUNDS`]: they are solvable, and refuse the table. A bridge in a
/// line of one row is the documented limit of such lines, not counted. The property tests
/// solve every line equation of full tables at once and find no suppressed cell.
fn break_bridges(lines: &mut Lines, suppressed: &mut [bool]) -> (Vec<(usize, usize)>, usize) {
    let (table, dims) = (lines.table, lines.dims);
    let nodes = LineNodes { dims };
    // A cell alone in a line is that line's total: nothing can join it to a cycle, and it is
    // the documented limit of lines of one row.
    let alone = |row: usize| (0..2).any(|k| dims[k].members(dims[k].line_of[row]).len() == 1);
    let mut added = Vec::new();
    let mut left: std::collections::HashSet<usize, FxBuild> = Default::default();
    let mut unjoined = 0;
    for round in 0.. {
        let edges: Vec<usize> = (0..suppressed.len()).filter(|&r| suppressed[r]).collect();
        let mut graph = LineGraph::new(nodes.count(), edges.iter().map(|&r| (nodes.of(r, 0), nodes.of(r, 1))));
        let all: Vec<usize> = graph.bridges().into_iter().map(|e| edges[e]).filter(|&r| !alone(r)).collect();
        let bridges = all.iter().copied().filter(|r| !left.contains(r));
        let bridge = bridges.min_by(by_keys(table));
        let Some(bridge) = bridge.filter(|_| round < MAX_BRIDGE_ROUNDS) else {
            // The bridges still there (nothing joins them, or past the rounds allowed: each
            // reads the whole table) are solvable; one a later complement joined is not.
            unjoined = all.len();
            break;
        };
        match path_between(lines, suppressed, bridge) {
            Some(path) => {
                let mut singles = VecDeque::new();
                for &cell in &path {
                    lines.suppress(suppressed, cell, &mut singles);
                    added.push((cell, bridge));
                }
                debug_assert!(
                    path.iter().all(|&cell| (0..2).all(|k| lines.count[k][dims[k].line_of[cell] as usize] != 1)),
                    "a path joining a bridge's sides leaves no line with one suppressed cell"
                );
            }
            None => {
                left.insert(bridge);
            }
        }
    }
    (added, unjoined)
}

/// The lines of a 2-D table as one numbering (graph nodes): those along the first dimension,
/// then those along the second.
struct LineNodes<'a> {
    dims: &'a [DimLines],
}

impl LineNodes<'_> {
    fn count(&self) -> usize {
        self.dims[0].lines() + self.dims[1].lines()
    }

    /// The node of `row`'s line along `k`.
    fn of(&self, row: usize, k: usize) -> usize {
        let line = self.dims[k].line_of[row] as usize;
        if k == 0 {
            line
        } else {
            self.dims[0].lines() + line
        }
    }

    /// The rows of node `x`'s line, and the dimension it runs along.
    fn members(&self, x: usize) -> (usize, &[u32]) {
        let off = self.dims[0].lines();
        if x < off {
            (0, self.dims[0].members(x as u32))
        } else {
            (1, self.dims[1].members((x - off) as u32))
        }
    }
}

/// The fewest cells not suppressed of a 2-D table that join the two sides of `bridge`: lines
/// are grouped as the suppressed cells but the bridge join them (the two sides are two of the
/// groups), and the cells lead from group to group, breadth first from the side of the
/// bridge's line along the first dimension. Chosen back from the other side, at each step the
/// best cell by [`Lines::rank`] among those from a group one step nearer: where one cell joins
/// the sides, the best such cell. `None` when no cells lead there: the bridge's value then
/// follows from the lines' totals whatever is suppressed. A line the path passes through gets
/// two more suppressed cells, or one or two where it holds some already.
fn path_between(lines: &Lines, suppressed: &[bool], bridge: usize) -> Option<Vec<usize>> {
    let nodes = &LineNodes { dims: lines.dims };
    let mut groups = UnionFind::new(nodes.count());
    for r in (0..suppressed.len()).filter(|&r| suppressed[r] && r != bridge) {
        groups.union(nodes.of(r, 0), nodes.of(r, 1));
    }
    // A group is numbered by its root; its lines are `of_group.members(root)`.
    let group: &[u32] = &(0..nodes.count()).map(|x| groups.find(x) as u32).collect::<Vec<u32>>();
    let of_group = buckets(group, nodes.count());
    // The cells not suppressed of node `x`'s line, each with the group at its other end.
    let cells_of = |x: u32| {
        let (k, members) = nodes.members(x as usize);
        members.iter().map(|&r| r as usize).filter(|&r| !suppressed[r]).map(move |r| (r, group[nodes.of(r, 1 - k)]))
    };
    let (from, to) = (group[nodes.of(bridge, 0)], group[nodes.of(bridge, 1)]);
    let mut distance = vec![u32::MAX; nodes.count()];
    distance[from as usize] = 0;
    let mut frontier = vec![from];
    let mut steps = 0;
    while distance[to as usize] == u32::MAX {
        if frontier.is_empty() {
            return None;
        }
        let mut next = Vec::new();
        for &g in &frontier {
            for (_, h) in of_group.members(g).iter().flat_map(|&x| cells_of(x)) {
                if distance[h as usize] == u32::MAX {
                    distance[h as usize] = steps + 1;
                    next.push(h);
                }
            }
        }
        steps += 1;
        frontier = next;
    }
    // Back to `from`, one group nearer each time.
    let mut path = Vec::with_capacity(steps as usize);
    let mut at = to;
    for step in (0..steps).rev() {
        let mut best: Option<(Rank, u32)> = None;
        for (r, h) in of_group.members(at).iter().flat_map(|&x| cells_of(x)) {
            if distance[h as usize] == step && best.as_ref().is_none_or(|(b, _)| lines.rank(r) < *b) {
                best = Some((lines.rank(r), h));
            }
        }
        let ((_, _, _, cell), h) = best.expect("a group one step nearer leads on");
        path.push(cell);
        at = h;
    }
    Some(path)
}

/// Bridges repaired one at a time in a 2-D table at most (each repair reads the table again).
const MAX_BRIDGE_ROUNDS: usize = 1_000;

/// Lines as nodes, suppressed cells as edges (numbered in the order given). Its buffers are
/// kept from one graph to the next ([`LineGraph::refill`]): the slices' comparison makes one a
/// pair of slices, thousands a table.
#[derive(Default)]
struct LineGraph {
    /// Per node, its edges as (other node, edge) in `adjacent[start[n]..start[n + 1]]`.
    start: Vec<u32>,
    adjacent: Vec<(u32, u32)>,
    /// Where each node's next edge goes while filling.
    fill: Vec<u32>,
    /// The search's: per node its order of discovery and low link, and its stack.
    order: Vec<u32>,
    low: Vec<u32>,
    stack: Vec<(usize, u32, usize)>,
}

impl LineGraph {
    fn new(nodes: usize, edges: impl Iterator<Item = (usize, usize)> + Clone) -> Self {
        let mut graph = LineGraph::default();
        graph.refill(nodes, edges);
        graph
    }

    /// Makes this the graph of `edges` over `nodes`.
    fn refill(&mut self, nodes: usize, edges: impl Iterator<Item = (usize, usize)> + Clone) {
        let start = &mut self.start;
        start.clear();
        start.resize(nodes + 1, 0);
        let mut count = 0;
        for (a, b) in edges.clone() {
            start[a + 1] += 1;
            start[b + 1] += 1;
            count += 2;
        }
        for n in 0..nodes {
            start[n + 1] += start[n];
        }
        self.adjacent.clear();
        self.adjacent.resize(count, (0, 0));
        let fill = &mut self.fill;
        fill.clear();
        fill.extend_from_slice(&start[..nodes]);
        for (e, (a, b)) in edges.enumerate() {
            self.adjacent[fill[a] as usize] = (b as u32, e as u32);
            fill[a] += 1;
            self.adjacent[fill[b] as usize] = (a as u32, e as u32);
            fill[b] += 1;
        }
    }

    fn edges_of(&self, n: usize) -> &[(u32, u32)] {
        &self.adjacent[self.start[n] as usize..self.start[n + 1] as usize]
    }

    /// The edges on no cycle (Tarjan's low-link, without recursion; an edge is not its own way
    /// back, so two cells between the same lines make a cycle).
    fn bridges(&mut self) -> Vec<usize> {
        let nodes = self.start.len() - 1;
        let (mut order, mut low, mut stack) = (std::mem::take(&mut self.order), std::mem::take(&mut self.low), std::mem::take(&mut self.stack));
        order.clear();
        order.resize(nodes, u32::MAX);
        low.clear();
        low.resize(nodes, 0);
        stack.clear();
        let mut out = Vec::new();
        let mut next = 0u32;
        // (node, edge it was reached by, position in its edges)
        for root in 0..nodes {
            if order[root] != u32::MAX || self.edges_of(root).is_empty() {
                continue;
            }
            order[root] = next;
            low[root] = next;
            next += 1;
            stack.push((root, u32::MAX, 0));
            while let Some(&mut (n, via, ref mut at)) = stack.last_mut() {
                if let Some(&(m, e)) = self.edges_of(n).get(*at) {
                    *at += 1;
                    if e == via {
                        continue;
                    }
                    let m = m as usize;
                    if order[m] == u32::MAX {
                        order[m] = next;
                        low[m] = next;
                        next += 1;
                        stack.push((m, e, 0));
                    } else {
                        low[n] = low[n].min(order[m]);
                    }
                } else {
                    stack.pop();
                    if let Some(&(parent, _, _)) = stack.last() {
                        low[parent] = low[parent].min(low[n]);
                        if low[n] > order[parent] {
                            out.push(via as usize);
                        }
                    }
                }
            }
        }
        (self.order, self.low, self.stack) = (order, low, stack);
        out
    }
}

/// A table without keys (`SELECT count(*) … GROUP BY code`) is one line: its rows add up to a
/// total asked apart, so one suppressed row alone is that total less the others. The second is
/// the row of fewest persons (an empty one last), ties going to the smallest persons sample (the
/// rows have no keys to order them by, and their order is the query's), then the earliest row.
fn protect_keyless(table: &Table, persons: &[u64], suppressed: &mut [bool]) -> Vec<(usize, usize)> {
    let mut hidden = (0..suppressed.len()).filter(|&r| suppressed[r]);
    let (Some(trigger), None) = (hidden.next(), hidden.next()) else { return Vec::new() };
    let sample = |r: usize| table.rows[r].cells.iter().find_map(|c| c.sample.as_ref()).map(|s| s.smallest.as_slice());
    let Some(chosen) = (0..suppressed.len()).filter(|&r| !suppressed[r]).min_by_key(|&r| (persons[r] == 0, persons[r], sample(r), r)) else {
        return Vec::new();
    };
    suppressed[chosen] = true;
    vec![(chosen, trigger)]
}

/// A keyed table's keys as codes ([`intern`]).
struct Interned {
    /// The codes of each row's keys, row-major.
    ids: Vec<u32>,
    /// Per dimension, its number of distinct keys.
    cardinality: Vec<u64>,
    /// Which rows are margins (a key [`TOTAL`]).
    margin: Vec<bool>,
    /// Per dimension, the place of each code's key in the keys' order.
    key_order: Vec<Vec<u32>>,
}

/// Codes every key as a `u32` per dimension (in order of first occurrence). One pass over the
/// rows (their keys are scattered on the heap); a key equal to the previous row's reuses its
/// code without hashing (query outputs are usually sorted). A large table's rows are coded in
/// parts on threads of their own ([`INTERN_ROWS_PER_THREAD`], up to [`worker_threads`]),
/// each part's codes then renumbered into the whole's: the same codes as one pass gives.
fn intern(table: &Table) -> Interned {
    intern_in_parts(table, (table.rows.len() / INTERN_ROWS_PER_THREAD).clamp(1, worker_threads()))
}

/// [`intern`] with the rows in `parts` parts.
fn intern_in_parts(table: &Table, parts: usize) -> Interned {
    let (n, d) = (table.rows.len(), table.dimensions.len());
    let mut ids = vec![0u32; n * d];
    let mut margin = vec![false; n];
    let parts = parts.clamp(1, n.max(1));
    let rows_per_part = n.div_ceil(parts).max(1);
    // Per part and dimension, its keys in the order of its codes.
    let inputs: Vec<_> = table.rows.chunks(rows_per_part).zip(ids.chunks_mut(rows_per_part * d)).zip(margin.chunks_mut(rows_per_part)).collect();
    let part_keys: Vec<Vec<Vec<&str>>> = on_threads(inputs, &|((rows, ids), margin)| intern_part(rows, d, ids, margin));
    // The whole's codes: the first part's, then each later part's new keys in its order.
    let mut codes: Vec<HashMap<&str, u32, FxBuild>> = vec![HashMap::default(); d];
    let mut keys: Vec<Vec<&str>> = vec![Vec::new(); d];
    for (part, these) in part_keys.into_iter().enumerate() {
        let renumber: Vec<Vec<u32>> = these
            .into_iter()
            .enumerate()
            .map(|(k, local)| {
                local
                    .into_iter()
                    .map(|key| {
                        let next = keys[k].len() as u32;
                        *codes[k].entry(key).or_insert_with(|| {
                            keys[k].push(key);
                            next
                        })
                    })
                    .collect()
            })
            .collect();
        if part > 0 {
            for row_ids in ids[part * rows_per_part * d..(n * d).min((part + 1) * rows_per_part * d)].chunks_exact_mut(d) {
                for (k, id) in row_ids.iter_mut().enumerate() {
                    *id = renumber[k][*id as usize];
                }
            }
        }
    }
    let cardinality = keys.iter().map(|k| k.len() as u64).collect();
    let key_order = keys
        .iter()
        .map(|keys| {
            let mut by_key: Vec<(&str, u32)> = keys.iter().enumerate().map(|(code, &key)| (key, code as u32)).collect();
            by_key.sort_unstable();
            let mut order = vec![0u32; by_key.len()];
            for (place, (_, code)) in by_key.into_iter().enumerate() {
                order[code as usize] = place as u32;
            }
            order
        })
        .collect();
    Interned { ids, cardinality, margin, key_order }
}

/// Threads output checking works on at most.
const MAX_WORKER_THREADS: usize = 4;

/// The threads output checking works on: the machine's, up to [`MAX_WORKER_THREADS`].
fn worker_threads() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get()).min(MAX_WORKER_THREADS)
}

/// `work` done on each of `inputs`, the first on this thread and each other on a scoped thread
/// of its own (one the system refuses is done on this thread after), the results in the
/// inputs' order. A panic in a thread is this thread's.
fn on_threads<I: Send, T: Send>(inputs: Vec<I>, work: &(dyn Fn(I) -> T + Sync)) -> Vec<T> {
    if inputs.len() <= 1 {
        return inputs.into_iter().map(work).collect();
    }
    // Each input in a slot the thread takes it from, so that a thread not started loses none.
    let slots: Vec<std::sync::Mutex<Option<I>>> = inputs.into_iter().map(|input| std::sync::Mutex::new(Some(input))).collect();
    let take =
        |slot: &std::sync::Mutex<Option<I>>| slot.lock().unwrap_or_else(std::sync::PoisonError::into_inner).take().expect("an input is taken once");
    std::thread::scope(|scope| {
        let running: Vec<_> = slots[1..].iter().map(|slot| std::thread::Builder::new().spawn_scoped(scope, move || work(take(slot))).ok()).collect();
        let mut done = vec![work(take(&slots[0]))];
        for (slot, thread) in slots[1..].iter().zip(running) {
            done.push(match thread {
                Some(thread) => thread.join().unwrap_or_else(|panic| std::panic::resume_unwind(panic)),
                None => work(take(slot)),
            });
        }
        done
    })
}

/// Rows a thread codes at least in [`intern`].
const INTERN_ROWS_PER_THREAD: usize = 250_000;

/// Codes the keys of `rows` into `ids` (row-major) in order of first occurrence among them, and
/// marks the margins; returns per dimension the keys in the order of their codes.
fn intern_part<'t>(rows: &'t [crate::table::Row], d: usize, ids: &mut [u32], margin: &mut [bool]) -> Vec<Vec<&'t str>> {
    let mut codes: Vec<HashMap<&str, u32, FxBuild>> = vec![HashMap::default(); d];
    let mut keys: Vec<Vec<&str>> = vec![Vec::new(); d];
    let mut previous: Vec<(&str, u32)> = vec![("", u32::MAX); d];
    for ((row, ids), margin) in rows.iter().zip(ids.chunks_exact_mut(d)).zip(margin) {
        for (k, key) in row.keys.iter().enumerate() {
            let key = key.as_str();
            *margin |= key == TOTAL;
            let (last, last_id) = previous[k];
            ids[k] = if last_id != u32::MAX && last == key {
                last_id
            } else {
                let next = keys[k].len() as u32;
                let id = *codes[k].entry(key).or_insert_with(|| {
                    keys[k].push(key);
                    next
                });
                previous[k] = (key, id);
                id
            };
        }
    }
    keys
}

/// Groups the rows by their codes in every dimension but `k`.
fn lines_along(ids: &[u32], n: usize, cardinality: &[u64], k: usize) -> DimLines {
    let d = cardinality.len();
    let others = || (0..d).filter(move |&j| j != k);
    let product = others().try_fold(1u64, |acc, j| acc.checked_mul(cardinality[j]));
    let radix = |r: usize| others().fold(0u64, |acc, j| acc * cardinality[j] + u64::from(ids[r * d + j]));
    let mut line_of = vec![0u32; n];
    let mut lines = 0u32;
    let mut assign = |slot: &mut u32| {
        if *slot == u32::MAX {
            *slot = lines;
            lines += 1;
        }
        *slot
    };
    match product {
        // Dense: the keys index an array directly.
        Some(p) if p <= (4 * n as u64).max(1024) => {
            let mut slots = vec![u32::MAX; p as usize];
            for (r, line) in line_of.iter_mut().enumerate() {
                *line = assign(&mut slots[radix(r) as usize]);
            }
        }
        Some(_) => {
            let mut slots: HashMap<u64, u32, FxBuild> = HashMap::default();
            for (r, line) in line_of.iter_mut().enumerate() {
                *line = assign(slots.entry(radix(r)).or_insert(u32::MAX));
            }
        }
        None => {
            let mut slots: HashMap<Vec<u32>, u32, FxBuild> = HashMap::default();
            for (r, line) in line_of.iter_mut().enumerate() {
                let key: Vec<u32> = others().map(|j| ids[r * d + j]).collect();
                *line = assign(slots.entry(key).or_insert(u32::MAX));
            }
        }
    }
    let Buckets { start, members } = buckets(&line_of, lines as usize);
    DimLines { line_of, start, members }
}

/// Indexes `0..of.len()` by their bucket `of[i]` (below `count`): the indexes of bucket `b`
/// are `members[start[b]..start[b + 1]]`, in increasing order.
struct Buckets {
    start: Vec<u32>,
    members: Vec<u32>,
}

impl Buckets {
    fn members(&self, bucket: u32) -> &[u32] {
        &self.members[self.start[bucket as usize] as usize..self.start[bucket as usize + 1] as usize]
    }
}

fn buckets(of: &[u32], count: usize) -> Buckets {
    let mut start = vec![0u32; count + 1];
    for &b in of {
        start[b as usize + 1] += 1;
    }
    for b in 0..count {
        start[b + 1] += start[b];
    }
    let mut fill = start.clone();
    let mut members = vec![0u32; of.len()];
    for (i, &b) in of.iter().enumerate() {
        members[fill[b as usize] as usize] = i as u32;
        fill[b as usize] += 1;
    }
    Buckets { start, members }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(equations: &[&[f64]], unknowns: usize, expected: &[usize]) {
        assert_eq!(determined(equations.iter().map(|e| e.to_vec()).collect(), unknowns), expected, "{equations:?}");
    }

    #[test]
    fn determined_unknowns_are_the_unit_rows_of_the_echelon_form() {
        // x0 + x1 = a, x0 + x2 = b: nothing determined (one degree of freedom).
        check(&[&[1.0, 1.0, 0.0], &[1.0, 0.0, 1.0]], 3, &[]);
        // and x1 + x2 = c: three independent equations, all determined.
        check(&[&[1.0, 1.0, 0.0], &[1.0, 0.0, 1.0], &[0.0, 1.0, 1.0]], 3, &[0, 1, 2]);
        // A cycle of four (x0 + x1, x2 + x3, x0 + x2, x1 + x3): rank 3, none determined.
        check(&[&[1.0, 1.0, 0.0, 0.0], &[0.0, 0.0, 1.0, 1.0], &[1.0, 0.0, 1.0, 0.0], &[0.0, 1.0, 0.0, 1.0]], 4, &[]);
        // A margin enters its line with the opposite sign: x0 + x1 − x2 = 0 with x0 + x1 = a
        // gives x2.
        check(&[&[1.0, 1.0, -1.0], &[1.0, 1.0, 0.0]], 3, &[2]);
        check(&[], 2, &[]);
    }

    /// A 3-D table of `cells[i][j][l]` persons, with every margin when `margins` (`*` keys).
    fn three_way(cells: &[Vec<Vec<u64>>], margins: bool) -> Table {
        use crate::table::{Cell, Measure};
        let mut table = Table::new(["a", "b", "c"], vec![Measure::count("persons")]);
        let values = |n: usize| (0..n).map(Some).chain(margins.then_some(None)).collect::<Vec<_>>();
        let key = |prefix: char, i: Option<usize>| i.map_or(TOTAL.to_string(), |i| format!("{prefix}{i}"));
        for i in values(cells.len()) {
            for j in values(cells[0].len()) {
                for l in values(cells[0][0].len()) {
                    let mut sum = 0;
                    for (_, plane) in cells.iter().enumerate().filter(|(ii, _)| i.is_none_or(|x| x == *ii)) {
                        for (_, line) in plane.iter().enumerate().filter(|(jj, _)| j.is_none_or(|x| x == *jj)) {
                            sum += line.iter().enumerate().filter(|(ll, _)| l.is_none_or(|x| x == *ll)).map(|(_, v)| v).sum::<u64>();
                        }
                    }
                    table.push([key('a', i), key('b', j), key('c', l)], vec![Cell::count(sum)]);
                }
            }
        }
        table
    }

    /// The suppressed rows every line equation (each line of two or more rows, its total known)
    /// solves together: the exact attacker, by elimination over all of them at once.
    fn solved_by_all_lines(table: &Table, suppressed: &[bool]) -> Vec<usize> {
        let Interned { ids, cardinality, .. } = intern(table);
        let rows: Vec<usize> = (0..suppressed.len()).filter(|&r| suppressed[r]).collect();
        let mut equations = Vec::new();
        for k in 0..table.dimensions.len() {
            let lines = lines_along(&ids, table.rows.len(), &cardinality, k);
            for l in 0..lines.lines() as u32 {
                if lines.members(l).len() < 2 {
                    continue;
                }
                let eq: Vec<f64> = rows
                    .iter()
                    .map(|&r| match lines.line_of[r] == l {
                        true if table.rows[r].keys[k] == TOTAL => -1.0,
                        true => 1.0,
                        false => 0.0,
                    })
                    .collect();
                equations.push(eq);
            }
        }
        determined(equations, rows.len()).into_iter().map(|c| rows[c]).collect()
    }

    /// A sparse three-way table (34 of 48 combinations, no margins) whose small cells no cube
    /// protects: the cells the equations solve are put on null vectors by the linear program
    /// (`null_vector`), and the exact attacker then recovers nothing, whatever the rows' order.
    /// With line complements alone (no program) the table is refused.
    #[test]
    fn a_sparse_table_no_cube_protects_is_protected_through_null_vectors() {
        use crate::table::{Cell, Measure};
        let cells = "a0b0c0 35 a0b0c1 6 a0b1c0 21 a0b1c2 7 a0b2c1 3 a0b2c2 210 a0b3c0 242 a0b3c2 125 a1b0c1 178 a1b0c2 233 \
            a1b1c1 73 a1b1c2 189 a1b2c0 246 a1b2c1 165 a1b2c2 6 a1b3c0 5 a1b3c1 43 a2b0c0 98 a2b0c1 257 a2b1c0 7 a2b1c1 221 \
            a2b1c2 75 a2b2c0 136 a2b2c2 10 a2b3c2 191 a3b0c0 4 a3b0c2 136 a3b1c0 7 a3b1c1 280 a3b2c0 75 a3b2c1 245 \
            a3b2c2 112 a3b3c1 113 a3b3c2 260";
        let words: Vec<&str> = cells.split_whitespace().collect();
        let rows: Vec<([String; 3], u64)> =
            words.chunks(2).map(|w| ([w[0][0..2].to_string(), w[0][2..4].to_string(), w[0][4..6].to_string()], w[1].parse().unwrap())).collect();
        let mut protected = Vec::new();
        for reversed in [false, true] {
            let mut ordered = rows.clone();
            if reversed {
                ordered.reverse();
            }
            let mut table = Table::new(["a", "b", "c"], vec![Measure::count("persons")]);
            for (keys, persons) in &ordered {
                table.push(keys.clone(), vec![Cell::count(*persons)]);
            }
            let persons: Vec<u64> = ordered.iter().map(|(_, p)| *p).collect();
            let mut suppressed: Vec<bool> = persons.iter().map(|&p| p < 10).collect();
            let primary = suppressed.clone();
            let Interned { ids, cardinality, key_order, .. } = intern(&table);
            let dims: Vec<DimLines> = (0..3).map(|k| lines_along(&ids, table.rows.len(), &cardinality, k)).collect();
            let cubes = Cubes::new(&ids, &cardinality, key_order, &dims, &suppressed);
            let mut certified = vec![false; persons.len()];
            let no_cube = (0..persons.len()).filter(|&r| primary[r] && cubes.complete(r, &suppressed, &mut certified, &|_| (0, 0, 0)).is_none());
            assert!(no_cube.count() > 0, "some small cell has no cube to complete");
            let mut without = primary.clone();
            let refused = protect_with(&table, &persons, &mut without, Effort { programs: 0, ..Effort::default() });
            assert!(refused.solvable > 0, "line complements alone leave a solved cell");
            let protection = protect_with(&table, &persons, &mut suppressed, Effort::default());
            assert_eq!(protection.solvable, 0);
            assert!(primary.iter().zip(&suppressed).all(|(p, s)| !p || *s));
            assert_eq!(solved_by_all_lines(&table, &suppressed), Vec::<usize>::new());
            let mut withheld: Vec<&[String]> = (0..persons.len()).filter(|&r| suppressed[r]).map(|r| table.rows[r].keys.as_slice()).collect();
            withheld.sort();
            protected.push(withheld.into_iter().map(<[String]>::to_vec).collect::<Vec<_>>());
        }
        assert_eq!(protected[0], protected[1], "the same cells whatever the rows' order");
    }

    /// Two blocks of small cells joined by one (a bridge), in a table where no cell joins their
    /// rows and columns directly: a row of two other cells does, and both are suppressed.
    #[test]
    fn a_bridge_is_joined_through_cells_of_another_line() {
        use crate::table::{Cell, Measure};
        let mut table = Table::new(["row", "column"], vec![Measure::count("persons")]);
        let cells = [("r0", "c0", 3), ("r0", "c1", 4), ("r1", "c0", 5), ("r1", "c1", 6), ("r1", "c2", 7), ("r2", "c2", 2), ("r2", "c3", 3)];
        let cells =
            cells.into_iter().chain([("r3", "c2", 4), ("r3", "c3", 5), ("r4", "c0", 40), ("r4", "c3", 50), ("r5", "c1", 60), ("r5", "c4", 70)]);
        for (r, c, n) in cells {
            table.push([r, c], vec![Cell::count(n)]);
        }
        let persons: Vec<u64> = table.rows.iter().map(|row| row.persons()).collect();
        let mut suppressed: Vec<bool> = persons.iter().map(|&p| p < 10).collect();
        assert_eq!(solved_by_all_lines(&table, &suppressed), [4], "r1c2 is the bridge");
        let protection = protect_audited(&table, &persons, &mut suppressed, AUDITED_CELLS);
        assert_eq!(protection.solvable, 0);
        assert_eq!(protection.added, [(9, 4), (10, 4)], "r4c0 and r4c3, for r1c2");
        assert_eq!(solved_by_all_lines(&table, &suppressed), Vec::<usize>::new());
    }

    /// Two-way tables with combinations missing: what protection leaves is unsolvable by the
    /// exact attacker, or the table is refused (but for cells alone in a line, whose line's
    /// total is the cell: the documented limit); rows reversed choose the same cells.
    #[test]
    fn sparse_two_way_tables_leave_no_cell_solved() {
        use crate::table::{Cell, Measure};
        use proptest::prelude::*;
        let tables = (3usize..8, 3usize..8, 5u32..10).prop_flat_map(|(r, c, kept)| {
            (prop::collection::vec((prop::bool::weighted(f64::from(kept) / 10.0), prop_oneof![3 => 10u64..300, 1 => 1u64..10]), r * c), Just(c))
        });
        proptest::test_runner::TestRunner::new(ProptestConfig::with_cases(300))
            .run(&tables, |(cells, c)| {
                let mut table = Table::new(["row", "column"], vec![Measure::count("persons")]);
                for (i, &(present, n)) in cells.iter().enumerate() {
                    if present {
                        table.push([format!("r{}", i / c), format!("c{}", i % c)], vec![Cell::count(n)]);
                    }
                }
                let persons: Vec<u64> = table.rows.iter().map(|row| row.persons()).collect();
                let mut suppressed: Vec<bool> = persons.iter().map(|&p| p < 10).collect();
                let protection = protect_audited(&table, &persons, &mut suppressed, AUDITED_CELLS);
                if protection.solvable == 0 {
                    let Interned { ids, cardinality, .. } = intern(&table);
                    let dims: Vec<DimLines> = (0..2).map(|k| lines_along(&ids, table.rows.len(), &cardinality, k)).collect();
                    let alone = |r: usize| dims.iter().any(|lines| lines.members(lines.line_of[r]).len() == 1);
                    let solved: Vec<usize> = solved_by_all_lines(&table, &suppressed).into_iter().filter(|&r| !alone(r)).collect();
                    prop_assert_eq!(solved, Vec::<usize>::new());
                }
                let mut reversed = table.clone();
                reversed.rows.reverse();
                let persons_reversed: Vec<u64> = persons.iter().rev().copied().collect();
                let mut backward: Vec<bool> = persons_reversed.iter().map(|&p| p < 10).collect();
                protect_audited(&reversed, &persons_reversed, &mut backward, AUDITED_CELLS);
                backward.reverse();
                prop_assert_eq!(backward, suppressed);
                Ok(())
            })
            .expect("every table protected");
    }

    /// A dimension in which the cell's lines have no other cell is left out of its cubes, but
    /// only if every corner's line along it has no other cell either: (1, 1, 1) below is alone
    /// along `a` and `b`, yet {(1, 1, 1), (1, 1, 0)} is no certificate, since (1, 1, 0) has a
    /// line along `a` (and `b`) of two cells; the lines' equations solve (1, 1, 1).
    #[test]
    fn a_dimension_left_out_of_a_cube_must_be_one_for_every_corner() {
        use crate::table::{Cell, Measure};
        let mut table = Table::new(["a", "b", "c"], vec![Measure::count("persons")]);
        let mut cells: Vec<(usize, usize, usize)> = Vec::new();
        for i in 0..2 {
            for j in 0..2 {
                for l in [0, 2] {
                    cells.push((i, j, l));
                }
            }
        }
        cells.extend([(0, 0, 1), (1, 1, 1)]);
        for &(i, j, l) in &cells {
            table.push([format!("a{i}"), format!("b{j}"), format!("c{l}")], vec![Cell::count(20)]);
        }
        let alone = cells.iter().position(|&c| c == (1, 1, 1)).expect("a row");
        let suppressed: Vec<bool> = cells.iter().map(|&(i, j, l)| l != 1 || (i, j) == (1, 1)).collect();
        assert_eq!(solved_by_all_lines(&table, &suppressed), [alone]);
        let Interned { ids, cardinality, key_order, .. } = intern(&table);
        let dims: Vec<DimLines> = (0..3).map(|k| lines_along(&ids, table.rows.len(), &cardinality, k)).collect();
        let cubes = Cubes::new(&ids, &cardinality, key_order, &dims, &suppressed);
        assert!(!cubes.certify(alone, &suppressed, &mut vec![false; cells.len()]));
        let persons: Vec<u64> = table.rows.iter().map(|row| row.persons()).collect();
        for exact_cells in [0, AUDITED_CELLS] {
            let mut protected = suppressed.clone();
            let protection = protect_audited(&table, &persons, &mut protected, exact_cells);
            assert!(protection.solvable > 0 || solved_by_all_lines(&table, &protected).is_empty(), "{exact_cells}");
        }
    }

    /// Equal cells everywhere: every cube costs the same, and the smallest keys choose, not the
    /// order of the rows (the same query run twice must not show both choices).
    #[test]
    fn ties_between_cubes_go_to_the_smallest_keys() {
        for margins in [false, true] {
            let table = three_way(&vec![vec![vec![20; 5]; 5]; 5], margins);
            let persons: Vec<u64> = table.rows.iter().map(|row| row.persons()).collect();
            let side = 5 + usize::from(margins);
            let at = |i: usize, j: usize, l: usize| i * side * side + j * side + l;
            // The centre and two more cells in each of its lines: cubes through it of two values
            // in each dimension to choose from, all as cheap.
            let start = [at(2, 2, 2), at(0, 2, 2), at(4, 2, 2), at(2, 0, 2), at(2, 4, 2), at(2, 2, 0), at(2, 2, 4)];
            let mut suppressed = vec![false; table.rows.len()];
            start.iter().for_each(|&r| suppressed[r] = true);
            let mut reversed = table.clone();
            reversed.rows.reverse();
            let last = table.rows.len() - 1;
            let keys = |table: &Table, rows: Vec<usize>| {
                let mut keys: Vec<String> = rows.into_iter().map(|r| table.rows[r].keys.join(",")).collect();
                keys.sort();
                keys
            };
            let mut chosen = Vec::new();
            for (table, flip) in [(&table, false), (&reversed, true)] {
                let row = |r: usize| if flip { last - r } else { r };
                let mut suppressed = vec![false; table.rows.len()];
                start.iter().for_each(|&r| suppressed[row(r)] = true);
                let Interned { ids, cardinality, key_order, .. } = intern(table);
                let dims: Vec<DimLines> = (0..3).map(|k| lines_along(&ids, table.rows.len(), &cardinality, k)).collect();
                let cubes = Cubes::new(&ids, &cardinality, key_order, &dims, &suppressed);
                let mut certified = vec![false; table.rows.len()];
                assert!(!cubes.certify(row(start[0]), &suppressed, &mut certified));
                let cost = |r: usize| (0, 0, persons[row(r)]);
                let new = cubes.complete(row(start[0]), &suppressed, &mut certified, &cost).expect("a cube");
                chosen.push(keys(table, new));
            }
            // Four new corners (each value the smallest of its two), whatever the rows' order.
            assert_eq!(chosen[0], chosen[1]);
            assert_eq!(chosen[0], ["a0,b0,c0", "a0,b0,c2", "a0,b2,c0", "a2,b0,c0"]);
            let protection = protect_audited(&table, &persons, &mut suppressed, 0);
            assert_eq!(protection.solvable, 0);
            assert_eq!(solved_by_all_lines(&table, &suppressed), Vec::<usize>::new());
        }
    }

    /// A row with the keys of another (the table does not check they are distinct) in a group
    /// audited by cubes: the two are suppressed together, their difference changes no line, and
    /// neither is solved (their sum is, the documented limit); the table is not refused.
    #[test]
    fn a_row_repeated_in_a_group_audited_by_cubes() {
        let mut table = three_way(&vec![vec![vec![20; 4]; 4]; 4], false);
        let repeated = table.rows[21].clone();
        table.rows.push(repeated);
        let persons: Vec<u64> = table.rows.iter().map(|row| row.persons()).collect();
        let at = |i: usize, j: usize, l: usize| i * 16 + j * 4 + l;
        let mut suppressed = vec![false; table.rows.len()];
        // (1, 1, 1) is row 21: a cube of it and (2, 2, 2), and the repeated row.
        for (i, j, l) in [1, 2].into_iter().flat_map(|i| [1, 2].into_iter().flat_map(move |j| [1, 2].into_iter().map(move |l| (i, j, l)))) {
            suppressed[at(i, j, l)] = true;
        }
        suppressed[64] = true;
        let before = suppressed.clone();
        let protection = protect_audited(&table, &persons, &mut suppressed, 0);
        assert_eq!((protection.solvable, protection.added.len()), (0, 0));
        assert_eq!(suppressed, before);
        // The repeated row alone, its twin shown: it is its line's total less the others.
        let mut suppressed = vec![false; table.rows.len()];
        suppressed[64] = true;
        let protection = protect_audited(&table, &persons, &mut suppressed, 0);
        assert!(protection.solvable == 0 && protection.added.len() >= 2, "two per line, then a cube: {:?}", protection.added);
        assert_eq!(solved_by_all_lines(&table, &suppressed), Vec::<usize>::new());
    }

    /// A cell whose one cube is found from a corner with more cubes than are enumerated from one
    /// cell: the search from the cell itself still finds it.
    #[test]
    fn a_cube_enumerated_past_the_bound_is_found() {
        let table = three_way(&vec![vec![vec![20; 6]; 6]; 6], false);
        let at = |i: usize, j: usize, l: usize| i * 36 + j * 6 + l;
        let mut pattern = vec![false; table.rows.len()];
        // A full block of 5³ (each cell the smallest corner of up to 64 cubes), and the cube
        // {0, 5}³ sharing only its corner (0, 0, 0) with the block: (5, 5, 5) is on no other.
        for (i, j, l) in (0..5).flat_map(|i| (0..5).flat_map(move |j| (0..5).map(move |l| (i, j, l)))) {
            pattern[at(i, j, l)] = true;
        }
        for (i, j, l) in [0, 5].into_iter().flat_map(|i| [0, 5].into_iter().flat_map(move |j| [0, 5].into_iter().map(move |l| (i, j, l)))) {
            pattern[at(i, j, l)] = true;
        }
        let Interned { ids, cardinality, key_order, .. } = intern(&table);
        let dims: Vec<DimLines> = (0..3).map(|k| lines_along(&ids, table.rows.len(), &cardinality, k)).collect();
        let cubes = Cubes::new(&ids, &cardinality, key_order, &dims, &pattern);
        let hidden: Vec<usize> = (0..pattern.len()).filter(|&r| pattern[r]).collect();
        let mut certified = vec![false; pattern.len()];
        cubes.certify_group(&hidden, &pattern, &mut certified);
        assert!(certified[at(5, 5, 5)] && certified[at(5, 0, 0)] && certified[at(0, 5, 5)]);
        assert_eq!(hidden.iter().filter(|&&r| !certified[r]).count(), 0);
        // Without the cube's far corner, nothing certifies its other corners outside the block.
        pattern[at(5, 5, 5)] = false;
        let cubes = Cubes::new(&ids, &cardinality, intern(&table).key_order, &dims, &pattern);
        let mut certified = vec![false; pattern.len()];
        cubes.certify_group(&hidden[..hidden.len() - 1], &pattern, &mut certified);
        assert!(!certified[at(5, 0, 0)] && !certified[at(0, 5, 5)] && certified[at(0, 0, 0)]);
    }

    /// Two slices suppressed at the same six positions, a cycle of six (no cube among them: no
    /// two values of each of the other dimensions are all suppressed): the slice pairs certify
    /// all twelve cells, the cubes none, and the exact attacker solves none of them. Without one
    /// of the six in one slice, the cycle is broken and nothing is certified. In a plane of 10 × 10
    /// the cycle crosses from one word of bits to the next (positions 23 to 87).
    #[test]
    fn a_cycle_of_six_between_two_slices_is_a_certificate() {
        check_cycle(3, &[(0, 0), (0, 1), (1, 1), (1, 2), (2, 2), (2, 0)]);
        check_cycle(10, &[(6, 3), (6, 5), (8, 5), (8, 7), (2, 7), (2, 3)]);
    }

    fn check_cycle(side: usize, cycle: &[(usize, usize)]) {
        let table = three_way(&vec![vec![vec![20; side]; side]; 2], false);
        let at = |i: usize, j: usize, l: usize| (i * side + j) * side + l;
        let mut pattern = vec![false; table.rows.len()];
        for (i, &(j, l)) in [0, 1].iter().flat_map(|i| cycle.iter().map(move |c| (i, c))) {
            pattern[at(*i, j, l)] = true;
        }
        let Interned { ids, cardinality, key_order, .. } = intern(&table);
        let dims: Vec<DimLines> = (0..3).map(|k| lines_along(&ids, table.rows.len(), &cardinality, k)).collect();
        let hidden: Vec<usize> = (0..pattern.len()).filter(|&r| pattern[r]).collect();
        let cubes = Cubes::new(&ids, &cardinality, key_order, &dims, &pattern);
        let mut by_cubes = vec![false; pattern.len()];
        cubes.certify_group(&hidden, &pattern, &mut by_cubes);
        assert_eq!(by_cubes.iter().filter(|&&c| c).count(), 0);
        let mut by_pairs = vec![false; pattern.len()];
        cubes.certify_slice_pairs(&hidden, &mut by_pairs, &mut cubes::SLICE_PAIR_WORK.clone());
        assert_eq!((0..pattern.len()).filter(|&r| by_pairs[r]).collect::<Vec<_>>(), hidden);
        assert_eq!(solved_by_all_lines(&table, &pattern), Vec::<usize>::new());
        // Without work enough for the pairs of the first dimension, nothing.
        let mut by_pairs = vec![false; pattern.len()];
        cubes.certify_slice_pairs(&hidden, &mut by_pairs, &mut 1);
        assert_eq!(by_pairs.iter().filter(|&&c| c).count(), 0);
        let (j, l) = cycle[2];
        pattern[at(1, j, l)] = false;
        let hidden: Vec<usize> = (0..pattern.len()).filter(|&r| pattern[r]).collect();
        let cubes = Cubes::new(&ids, &cardinality, intern(&table).key_order, &dims, &pattern);
        let mut by_pairs = vec![false; pattern.len()];
        cubes.certify_slice_pairs(&hidden, &mut by_pairs, &mut cubes::SLICE_PAIR_WORK.clone());
        assert_eq!(by_pairs.iter().filter(|&&c| c).count(), 0);
        assert!(!solved_by_all_lines(&table, &pattern).is_empty(), "a broken cycle leaves cells solved");
    }

    /// Work shared among threads comes back in the inputs' order, each input done once, a
    /// panic in a thread raised here.
    #[test]
    fn work_on_threads_comes_back_in_order() {
        for n in 0..6 {
            let inputs: Vec<usize> = (0..n).collect();
            let done = on_threads(inputs, &|i| (i, std::thread::current().id()));
            assert_eq!(done.iter().map(|d| d.0).collect::<Vec<_>>(), (0..n).collect::<Vec<_>>());
            if n > 1 {
                assert!(done[1..].iter().all(|d| d.1 != std::thread::current().id()), "the others on threads of their own");
            }
        }
        let panicked = std::panic::catch_unwind(|| on_threads(vec![0, 1, 2], &|i| assert_ne!(i, 2, "the third input")));
        assert!(panicked.is_err());
    }

    /// Coding the keys in parts (on threads) gives the codes one pass gives, with rows repeating
    /// keys in and across parts, margins among them.
    #[test]
    fn keys_coded_in_parts_are_coded_as_in_one_pass() {
        let table = three_way(&vec![vec![vec![20; 4]; 3]; 5], true);
        let mut shuffled = table.clone();
        shuffled.rows.rotate_left(7);
        shuffled.rows.swap(3, 50);
        for table in [table, shuffled] {
            let one = intern_in_parts(&table, 1);
            for parts in [2, 3, 4, 7, table.rows.len(), table.rows.len() + 5] {
                let these = intern_in_parts(&table, parts);
                assert_eq!(
                    (&these.ids, &these.cardinality, &these.margin, &these.key_order),
                    (&one.ids, &one.cardinality, &one.margin, &one.key_order),
                    "{parts} parts"
                );
            }
        }
    }

    /// A fixed-seed xorshift: the same random tables every run.
    fn xorshift(mut state: u64) -> impl FnMut() -> u64 {
        move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        }
    }

    /// Cycles glued by the other half of the slices, in three-way tables of 8 values a side
    /// (with and without margins, a fifth to two fifths of the cells suppressed at random): the
    /// exact attacker solves none of the cells they certify, and they certify cells that no
    /// suppressed cube and no cycle between two slices does (the certificate is needed, and
    /// reached by these tables).
    #[test]
    fn cells_on_glued_cycles_are_never_solved() {
        let mut next = xorshift(0x676c_7565_645f_6379);
        let (mut glued_only, mut certified_cells) = (0, 0);
        for case in 0..12 {
            let margins = case % 2 == 0;
            let table = three_way(&vec![vec![vec![20; 8]; 8]; 8], margins);
            let density = 20 + (case as u64 % 3) * 10;
            let pattern: Vec<bool> = (0..table.rows.len()).map(|_| next() % 100 < density).collect();
            let Interned { ids, cardinality, key_order, .. } = intern(&table);
            let dims: Vec<DimLines> = (0..3).map(|k| lines_along(&ids, table.rows.len(), &cardinality, k)).collect();
            let cubes = Cubes::new(&ids, &cardinality, key_order, &dims, &pattern);
            let hidden: Vec<usize> = (0..pattern.len()).filter(|&r| pattern[r]).collect();
            let mut glued = vec![false; pattern.len()];
            cubes.certify_glued_cycles(&hidden, &mut glued);
            let solved = solved_by_all_lines(&table, &pattern);
            for &r in solved.iter() {
                assert!(!glued[r], "case {case}: row {r} on a glued cycle but solved");
            }
            let mut others = vec![false; pattern.len()];
            cubes.certify_group(&hidden, &pattern, &mut others);
            cubes.certify_slice_pairs(&hidden, &mut others, &mut cubes::SLICE_PAIR_WORK.clone());
            certified_cells += glued.iter().filter(|&&g| g).count();
            glued_only += (0..pattern.len()).filter(|&r| glued[r] && !others[r]).count();
        }
        assert!(glued_only > 0 && certified_cells > glued_only, "{glued_only} of {certified_cells} certified only by glued cycles");
    }

    /// Whole protection with every group audited by certificates, on tables of 8 values a side
    /// (where glued cycles certify many cells; the property tests' tables are smaller): no
    /// suppression lifted, the rows reversed protect the same cells, and a table accepted has no
    /// cell the exact attacker solves. Most of these tables are accepted.
    #[test]
    fn eight_a_side_tables_audited_by_certificates_leave_no_cell_solved() {
        let mut next = xorshift(0x7072_6f74_6563_7438);
        let mut accepted = 0;
        for case in 0..8 {
            let cells: Vec<Vec<Vec<u64>>> = (0..8).map(|_| (0..8).map(|_| (0..8).map(|_| 10 + next() % 90).collect()).collect()).collect();
            let table = three_way(&cells, case % 2 == 0);
            let density = 15 + (case as u64 % 4) * 5;
            let pattern: Vec<bool> = (0..table.rows.len()).map(|_| next() % 100 < density).collect();
            let persons: Vec<u64> = table.rows.iter().map(|row| row.persons()).collect();
            let mut forward = pattern.clone();
            let protection = protect_audited(&table, &persons, &mut forward, 0);
            assert!(pattern.iter().zip(&forward).all(|(&before, &after)| !before || after), "case {case}: a suppression was lifted");
            let mut reversed = table.clone();
            reversed.rows.reverse();
            let persons_reversed: Vec<u64> = persons.iter().rev().copied().collect();
            let mut backward: Vec<bool> = pattern.iter().rev().copied().collect();
            let again = protect_audited(&reversed, &persons_reversed, &mut backward, 0);
            backward.reverse();
            assert_eq!((&backward, again.solvable), (&forward, protection.solvable), "case {case}: the rows' order changed the protection");
            if protection.solvable == 0 {
                accepted += 1;
                assert_eq!(solved_by_all_lines(&table, &forward), Vec::<usize>::new(), "case {case}");
            }
        }
        assert!(accepted >= 4, "{accepted} of 8 accepted");
    }

    /// The cells on a cycle between two slices, found otherwise than by the bridges of a graph:
    /// for each pair of values of one dimension and each position both suppress, whether the
    /// two lines of that position are still joined (breadth first) by the others.
    fn on_cycles_by_search(table: &Table, pattern: &[bool]) -> Vec<bool> {
        let mut on = vec![false; pattern.len()];
        let hidden: Vec<usize> = (0..pattern.len()).filter(|&r| pattern[r]).collect();
        let keys = |r: usize| &table.rows[r].keys;
        for i in 0..3 {
            let (y, z) = ((i + 1) % 3, (i + 2) % 3);
            let mut values: Vec<&String> = hidden.iter().map(|&r| &keys(r)[i]).collect();
            values.sort();
            values.dedup();
            for (x, &a) in values.iter().enumerate() {
                for &b in &values[x + 1..] {
                    // Positions (keys but the `i`-th) suppressed in both slices (these tables
                    // have no rows with equal keys).
                    let both: Vec<(usize, usize)> = hidden
                        .iter()
                        .filter(|&&r| &keys(r)[i] == a)
                        .filter_map(|&r| {
                            hidden.iter().find(|&&s| &keys(s)[i] == b && keys(s)[y] == keys(r)[y] && keys(s)[z] == keys(r)[z]).map(|&s| (r, s))
                        })
                        .collect();
                    for (e, &(r, s)) in both.iter().enumerate() {
                        // Lines as (dimension whose key names them, key): from r's line named by
                        // its `y` key to the one named by its `z` key, through the other positions.
                        let mut reached = vec![(y, keys(r)[y].clone())];
                        let mut next = 0;
                        while next < reached.len() {
                            let (named, key) = reached[next].clone();
                            next += 1;
                            let other = if named == y { z } else { y };
                            for &(t, _) in both.iter().enumerate().filter(|&(f, _)| f != e).map(|(_, p)| p) {
                                let line = (other, keys(t)[other].clone());
                                if keys(t)[named] == key && !reached.contains(&line) {
                                    reached.push(line);
                                }
                            }
                        }
                        if reached.contains(&(z, keys(r)[z].clone())) {
                            on[r] = true;
                            on[s] = true;
                        }
                    }
                }
            }
        }
        on
    }

    /// A three-way table, with or without margins, often with combinations missing (some of its
    /// lines then of one cell), and a pattern of suppressed cells from sparse to dense.
    fn table_and_pattern() -> impl proptest::strategy::Strategy<Value = (Table, Vec<bool>)> {
        use proptest::prelude::*;
        ((2usize..6, 2usize..6, 2usize..6), any::<bool>(), 1u32..10, prop_oneof![Just(10u32), 6u32..10]).prop_flat_map(
            |((a, b, c), margins, density, kept)| {
                let rows = (a + usize::from(margins)) * (b + usize::from(margins)) * (c + usize::from(margins));
                let cells = prop::collection::vec(prop::collection::vec(prop::collection::vec(prop_oneof![4 => 10u64..300, 1 => 0u64..10], c), b), a);
                let pattern = prop::collection::vec(prop::bool::weighted(f64::from(density) / 10.0), rows);
                let present = prop::collection::vec(prop::bool::weighted(f64::from(kept) / 10.0), rows);
                (cells, pattern, present).prop_map(move |(cells, pattern, present)| {
                    let mut table = three_way(&cells, margins);
                    let mut kept = present.iter();
                    table.rows.retain(|_| *kept.next().expect("a flag a row"));
                    let pattern = pattern.into_iter().zip(&present).filter(|(_, &p)| p).map(|(s, _)| s).collect();
                    (table, pattern)
                })
            },
        )
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(300))]

        /// A cell the cubes certify is never one the equations solve, whatever else is
        /// suppressed (with and without margins, sparse and dense patterns).
        #[test]
        fn a_cell_with_a_suppressed_cube_is_never_solved((table, pattern) in table_and_pattern()) {
            let Interned { ids, cardinality, key_order, .. } = intern(&table);
            let dims: Vec<DimLines> = (0..3).map(|k| lines_along(&ids, table.rows.len(), &cardinality, k)).collect();
            let cubes = Cubes::new(&ids, &cardinality, key_order, &dims, &pattern);
            let solved = solved_by_all_lines(&table, &pattern);
            let mut certified = vec![false; pattern.len()];
            for r in (0..pattern.len()).filter(|&r| pattern[r] && cubes.certify(r, &pattern, &mut certified)) {
                proptest::prop_assert!(!solved.contains(&r), "row {} certified but solved", r);
            }
            // A cell on no cube that needs nothing suppressed is on two cubes one cell short.
            let cost = |r: usize| (0, 0, table.rows[r].persons());
            for r in (0..pattern.len()).filter(|&r| pattern[r] && !certified[r]) {
                if cubes.complete(r, &pattern, &mut certified.clone(), &cost) == Some(Vec::new()) {
                    proptest::prop_assert!(!solved.contains(&r), "row {} on two cubes but solved", r);
                }
            }
            // Enumerating every cube from its smallest corner marks the same cells.
            let mut by_group = vec![false; pattern.len()];
            let hidden: Vec<usize> = (0..pattern.len()).filter(|&r| pattern[r]).collect();
            cubes.certify_group(&hidden, &pattern, &mut by_group);
            proptest::prop_assert_eq!(&by_group, &certified);
            // A cell on a cycle between two slices is never solved either, and the hash map grid
            // finds the same cycles.
            let mut on_cycles = vec![false; pattern.len()];
            cubes.certify_slice_pairs(&hidden, &mut on_cycles, &mut cubes::SLICE_PAIR_WORK.clone());
            for r in (0..pattern.len()).filter(|&r| on_cycles[r]) {
                proptest::prop_assert!(pattern[r] && !solved.contains(&r), "row {} on a cycle of two slices but solved", r);
            }
            // And they are the cells a plain search finds on such cycles.
            proptest::prop_assert_eq!(&on_cycles, &on_cycles_by_search(&table, &pattern));
            // A cell on a cycle glued by the other half of the slices is never solved either; the
            // hash map grid and the rows in reverse order (every key coded otherwise) mark the
            // same cells.
            let mut glued = vec![false; pattern.len()];
            cubes.certify_glued_cycles(&hidden, &mut glued);
            for r in (0..pattern.len()).filter(|&r| glued[r]) {
                proptest::prop_assert!(pattern[r] && !solved.contains(&r), "row {} on a glued cycle but solved", r);
            }
            let sparse = Cubes::new(&ids, &cardinality, intern(&table).key_order, &dims, &pattern).with_sparse_grid(&pattern);
            let mut by_map = vec![false; pattern.len()];
            sparse.certify_glued_cycles(&hidden, &mut by_map);
            proptest::prop_assert_eq!(&by_map, &glued);
            let mut reversed = table.clone();
            reversed.rows.reverse();
            let back: Vec<bool> = pattern.iter().rev().copied().collect();
            let Interned { ids: back_ids, cardinality: back_cardinality, key_order: back_order, .. } = intern(&reversed);
            let back_dims: Vec<DimLines> = (0..3).map(|k| lines_along(&back_ids, reversed.rows.len(), &back_cardinality, k)).collect();
            let back_cubes = Cubes::new(&back_ids, &back_cardinality, back_order, &back_dims, &back);
            let back_hidden: Vec<usize> = (0..back.len()).filter(|&r| back[r]).collect();
            let mut by_reversed = vec![false; back.len()];
            back_cubes.certify_glued_cycles(&back_hidden, &mut by_reversed);
            by_reversed.reverse();
            proptest::prop_assert_eq!(&by_reversed, &glued);
            // The hash map grid (no words of bits) finds the same cubes, and completes the same.
            let sparse = Cubes::new(&ids, &cardinality, intern(&table).key_order, &dims, &pattern).with_sparse_grid(&pattern);
            let mut by_map = vec![false; pattern.len()];
            sparse.certify_group(&hidden, &pattern, &mut by_map);
            proptest::prop_assert_eq!(&by_map, &certified);
            let mut by_map = vec![false; pattern.len()];
            sparse.certify_slice_pairs(&hidden, &mut by_map, &mut cubes::SLICE_PAIR_WORK.clone());
            proptest::prop_assert_eq!(&by_map, &on_cycles);
            // Pairs of slices shared among threads mark the same cells.
            for threads in [2, 3] {
                let threaded = Cubes::new(&ids, &cardinality, intern(&table).key_order, &dims, &pattern).with_pair_threads(threads);
                let mut by_threads = vec![false; pattern.len()];
                threaded.certify_slice_pairs(&hidden, &mut by_threads, &mut cubes::SLICE_PAIR_WORK.clone());
                proptest::prop_assert_eq!(&by_threads, &on_cycles);
            }
            for &r in hidden.iter().filter(|&&r| !certified[r]) {
                let (mut a, mut b) = (certified.clone(), certified.clone());
                proptest::prop_assert_eq!(cubes.complete(r, &pattern, &mut a, &cost), sparse.complete(r, &pattern, &mut b, &cost));
                proptest::prop_assert_eq!(a, b);
            }
        }

        /// Every group audited by cubes alone (the elimination bound set to nothing): what
        /// the cubes leave is unsolvable by the exact attacker, or the table is refused; and
        /// every line holding a suppressed cell holds two.
        #[test]
        fn groups_audited_by_cubes_leave_no_cell_solved((table, pattern) in table_and_pattern()) {
            let persons: Vec<u64> = table.rows.iter().map(|row| row.persons()).collect();
            let mut suppressed = pattern.clone();
            let protection = protect_audited(&table, &persons, &mut suppressed, 0);
            proptest::prop_assert!(pattern.iter().zip(&suppressed).all(|(&before, &after)| !before || after), "a suppression was lifted");
            // The rows in reverse order (every key coded otherwise) suppress the same cells, with
            // the groups audited by cubes, by elimination, and both in one table.
            let mut reversed = table.clone();
            reversed.rows.reverse();
            let persons_reversed: Vec<u64> = persons.iter().rev().copied().collect();
            let efforts = [0, 6, AUDITED_CELLS].map(|exact_cells| Effort { exact_cells, searches_between_passes: 1, ..Effort::default() });
            // With little work for the slices (some dimensions compared, some not) too, and then
            // still nothing solved once accepted.
            let little = [0, 40, 400].map(|slice_pair_work| Effort { exact_cells: 0, searches_between_passes: 1, slice_pair_work, ..Effort::default() });
            for effort in efforts.into_iter().chain(little) {
                let mut forward = pattern.clone();
                let protection = protect_with(&table, &persons, &mut forward, effort);
                let mut backward: Vec<bool> = pattern.iter().rev().copied().collect();
                let again = protect_with(&reversed, &persons_reversed, &mut backward, effort);
                backward.reverse();
                proptest::prop_assert_eq!(&backward, &forward);
                proptest::prop_assert_eq!(again.solvable, protection.solvable);
                if protection.solvable == 0 {
                    proptest::prop_assert_eq!(solved_by_all_lines(&table, &forward), Vec::<usize>::new());
                }
            }
            if protection.solvable == 0 {
                proptest::prop_assert_eq!(solved_by_all_lines(&table, &suppressed), Vec::<usize>::new());
            }
            let Interned { ids, cardinality, .. } = intern(&table);
            for k in 0..3 {
                let lines = lines_along(&ids, table.rows.len(), &cardinality, k);
                for l in 0..lines.lines() as u32 {
                    let hidden = lines.members(l).iter().filter(|&&r| suppressed[r as usize]).count();
                    proptest::prop_assert!(hidden != 1 || lines.members(l).len() == 1, "a line with one suppressed cell");
                }
            }
        }
    }
}
