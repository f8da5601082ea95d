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
//! Limits (documented, not solved):
//! - Two per line is necessary, not sufficient. In 2-D a suppressed cell is safe from exact
//!   recomputation when it lies on a cycle of suppressed cells (rows and columns
//!   alternating); two cycles joined by a single cell ("a bridge") satisfy two-per-line yet
//!   the bridge is determined. In 3 or more dimensions the margins give more equations and
//!   some patterns can be solved by combining lines. An exact guarantee needs the linear
//!   programming of τ-ARGUS's modular or optimal methods.
//! - Intervals: with non-negative counts an attacker bounds a suppressed cell between 0 and
//!   its line's suppressed total; a small complement gives a narrow interval. Preferring
//!   the smallest complement minimises lost information, not the width of that interval
//!   (no protection level is enforced).
//! - A line with a single row (a dimension with one value and no margin row) cannot get a
//!   second suppression; it is left as it is (its implied total is the cell itself).
//! - Tables of more than 2³² rows are not supported (row indexes are `u32`).

use crate::hash::FxBuild;
use crate::table::{Table, TOTAL};
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

/// Adds secondary suppressions to `suppressed` (one flag per row). Returns the rows it
/// suppressed, each with the suppressed row alone in its line that made it necessary, in
/// the order they were added.
pub(crate) fn protect(table: &Table, persons: &[u64], suppressed: &mut [bool]) -> Vec<(usize, usize)> {
    let (n, d) = (table.rows.len(), table.dimensions.len());
    if n == 0 || !suppressed.iter().any(|&s| s) {
        return Vec::new();
    }
    if d == 0 {
        return protect_keyless(table, persons, suppressed);
    }
    let (ids, cardinality, margin) = intern(table);
    let dims: Vec<DimLines> = (0..d).map(|k| lines_along(&ids, n, &cardinality, k)).collect();
    let mut count: Vec<Vec<u32>> = dims.iter().map(|l| vec![0; l.lines()]).collect();
    for row in (0..n).filter(|&r| suppressed[r]) {
        for (k, lines) in dims.iter().enumerate() {
            count[k][lines.line_of[row] as usize] += 1;
        }
    }
    let mut queue: VecDeque<(usize, u32)> = VecDeque::new();
    for (k, counts) in count.iter().enumerate() {
        queue.extend(counts.iter().enumerate().filter(|(_, &c)| c == 1).map(|(l, _)| (k, l as u32)));
    }
    let mut added = Vec::new();
    while let Some((k, line)) = queue.pop_front() {
        if count[k][line as usize] != 1 {
            continue;
        }
        let members = dims[k].members(line);
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
            let class = if margin[row] {
                1
            } else if persons[row] == 0 {
                2
            } else {
                0
            };
            let closes = dims.iter().enumerate().any(|(k2, l2)| k2 != k && count[k2][l2.line_of[row] as usize] == 1);
            let key = (class, !closes, persons[row], table.rows[row].keys.as_slice(), r);
            if best.is_none_or(|b| key < b) {
                best = Some(key);
            }
        }
        let Some((_, _, _, _, chosen)) = best else { continue };
        let chosen = chosen as usize;
        suppressed[chosen] = true;
        for (k2, lines) in dims.iter().enumerate() {
            let l2 = lines.line_of[chosen];
            let c = &mut count[k2][l2 as usize];
            *c += 1;
            if *c == 1 {
                queue.push_back((k2, l2));
            }
        }
        added.push((chosen, trigger as usize));
    }
    added
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

/// Codes every key as a `u32` per dimension (in order of first occurrence): the codes
/// row-major, each dimension's number of distinct keys, and which rows are margins. One pass
/// over the rows (their keys are scattered on the heap); a key equal to the previous row's
/// reuses its code without hashing (query outputs are usually sorted).
fn intern(table: &Table) -> (Vec<u32>, Vec<u64>, Vec<bool>) {
    let (n, d) = (table.rows.len(), table.dimensions.len());
    let mut ids = vec![0u32; n * d];
    let mut margin = vec![false; n];
    let mut codes: Vec<HashMap<&str, u32, FxBuild>> = vec![HashMap::default(); d];
    let mut previous: Vec<(&str, u32)> = vec![("", u32::MAX); d];
    for ((row, ids), margin) in table.rows.iter().zip(ids.chunks_exact_mut(d)).zip(&mut margin) {
        for (k, key) in row.keys.iter().enumerate() {
            let key = key.as_str();
            *margin |= key == TOTAL;
            let (last, last_id) = previous[k];
            ids[k] = if last_id != u32::MAX && last == key {
                last_id
            } else {
                let next = codes[k].len() as u32;
                let id = *codes[k].entry(key).or_insert(next);
                previous[k] = (key, id);
                id
            };
        }
    }
    let cardinality = codes.iter().map(|c| c.len() as u64).collect();
    (ids, cardinality, margin)
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
    let mut start = vec![0u32; lines as usize + 1];
    for &l in &line_of {
        start[l as usize + 1] += 1;
    }
    for l in 0..lines as usize {
        start[l + 1] += start[l];
    }
    let mut fill = start.clone();
    let mut members = vec![0u32; n];
    for (r, &l) in line_of.iter().enumerate() {
        members[fill[l as usize] as usize] = r as u32;
        fill[l as usize] += 1;
    }
    DimLines { line_of, start, members }
}
