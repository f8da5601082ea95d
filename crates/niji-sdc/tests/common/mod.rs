//! Shared by the integration tests: the verdict-grid helper and the line-peeling attack.
#![allow(dead_code)]

use niji_sdc::{Checked, Outcome, Rules, Shown, Table, TOTAL};
use std::collections::BTreeMap;

/// One string per row, one character per measure: `.` released, `P` suppressed by a rule on
/// its own values, `S` suppressed because of other cells, `X` refused.
pub fn grid(checked: &Checked) -> Vec<String> {
    (0..checked.rows())
        .map(|r| {
            checked
                .row_verdicts(r)
                .iter()
                .map(|v| match v.outcome {
                    Outcome::Released => '.',
                    Outcome::Suppressed if v.is_primary() => 'P',
                    Outcome::Suppressed => 'S',
                    Outcome::Refused => 'X',
                })
                .collect()
        })
        .collect()
}

/// Checks `table` under `rules` and compares the verdict grid with `expected`.
pub fn check(table: &Table, rules: &Rules, expected: &[&str]) -> Checked {
    let checked = niji_sdc::check(table, rules).expect("check");
    assert_eq!(grid(&checked), expected, "verdict grid");
    checked
}

/// The lines of a table: for each dimension, rows grouped by their keys in every other
/// dimension (an independent, naive implementation).
pub fn lines(table: &Table) -> Vec<Vec<usize>> {
    (0..table.dimensions.len()).flat_map(|k| lines_along(table, k)).collect()
}

/// The lines along dimension `k`: rows agreeing on every other dimension.
pub fn lines_along(table: &Table, k: usize) -> Vec<Vec<usize>> {
    let d = table.dimensions.len();
    let mut groups: BTreeMap<Vec<&str>, Vec<usize>> = BTreeMap::new();
    for (r, row) in table.rows.iter().enumerate() {
        let key = (0..d).filter(|&j| j != k).map(|j| row.keys[j].as_str()).collect();
        groups.entry(key).or_default().push(r);
    }
    groups.into_values().collect()
}

/// Whether a row's cells are all withheld.
pub fn hidden(table: &Table, checked: &Checked, row: usize) -> bool {
    checked.released_row(table, row).iter().all(|s| !matches!(s, Shown::Value(_)))
}

/// The attacker of a table with margins: every line whose cells add up to its margin cell
/// and that has exactly one unknown gives that unknown away; repeat until nothing changes.
/// Returns the withheld rows recovered (measure 0).
pub fn peel(table: &Table, checked: &Checked) -> Vec<usize> {
    let d = table.dimensions.len();
    let mut known: Vec<Option<f64>> = (0..table.rows.len()).map(|r| (!hidden(table, checked, r)).then(|| table.rows[r].cells[0].value)).collect();
    let mut recovered = Vec::new();
    loop {
        let mut progress = false;
        for k in 0..d {
            for line in lines_along(table, k) {
                // Only lines whose margin (key `*` in k) is present.
                let Some(&total) = line.iter().find(|&&r| table.rows[r].keys[k] == TOTAL) else { continue };
                if line.len() < 2 {
                    continue;
                }
                let unknown: Vec<usize> = line.iter().copied().filter(|&r| known[r].is_none()).collect();
                if unknown.len() != 1 {
                    continue;
                }
                let u = unknown[0];
                let parts: f64 = line.iter().filter(|&&r| r != total && r != u).map(|&r| known[r].unwrap_or(0.0)).sum();
                known[u] = Some(if u == total { parts } else { known[total].unwrap_or(0.0) - parts });
                recovered.push(u);
                progress = true;
            }
        }
        if !progress {
            return recovered;
        }
    }
}

/// A 2-D table of persons counts with both margins and the grand total; `cells[i][j]`.
pub fn two_way(cells: &[&[u64]]) -> Table {
    let mut t = Table::new(["row", "column"], vec![niji_sdc::Measure::count("persons")]);
    let cols = cells.first().map_or(0, |r| r.len());
    let name = |prefix: char, i: usize| format!("{prefix}{i}");
    for (i, row) in cells.iter().enumerate() {
        for (j, &v) in row.iter().enumerate() {
            t.push([name('r', i), name('c', j)], vec![niji_sdc::Cell::count(v)]);
        }
        t.push([name('r', i), TOTAL.to_string()], vec![niji_sdc::Cell::count(row.iter().sum())]);
    }
    for j in 0..cols {
        t.push([TOTAL.to_string(), name('c', j)], vec![niji_sdc::Cell::count(cells.iter().map(|r| r[j]).sum())]);
    }
    t.push([TOTAL, TOTAL], vec![niji_sdc::Cell::count(cells.iter().flat_map(|r| r.iter()).sum())]);
    t
}

/// The attacker who solves every line equation at once (exact linear algebra, not line by
/// line): each line whose total is in the table says its cells add up to it. A withheld row is
/// recovered when its value follows from those equations whatever the other withheld values
/// are, i.e. when its unit vector lies in the row space of the equations over the withheld rows
/// (one row of the reduced echelon form is that unit vector). Returns the rows recovered.
pub fn solve(table: &Table, checked: &Checked) -> Vec<usize> {
    let d = table.dimensions.len();
    let unknown: Vec<usize> = (0..table.rows.len()).filter(|&r| hidden(table, checked, r)).collect();
    let column = |r: usize| unknown.iter().position(|&u| u == r);
    let mut equations: Vec<Vec<f64>> = Vec::new();
    for k in 0..d {
        for line in lines_along(table, k) {
            let Some(&total) = line.iter().find(|&&r| table.rows[r].keys[k] == TOTAL) else { continue };
            if line.len() < 2 {
                continue;
            }
            let mut eq = vec![0.0; unknown.len()];
            for &r in &line {
                if let Some(c) = column(r) {
                    eq[c] += if r == total { -1.0 } else { 1.0 };
                }
            }
            if eq.iter().any(|&x| x != 0.0) {
                equations.push(eq);
            }
        }
    }
    // Reduced row echelon form, partial pivoting (the entries are small integers).
    let (mut at, n) = (0, unknown.len());
    for c in 0..n {
        let Some(p) = (at..equations.len()).max_by(|&a, &b| equations[a][c].abs().total_cmp(&equations[b][c].abs())) else { break };
        if equations[p][c].abs() < 1e-9 {
            continue;
        }
        equations.swap(at, p);
        let pivot = equations[at][c];
        equations[at].iter_mut().for_each(|x| *x /= pivot);
        for e in 0..equations.len() {
            if e != at && equations[e][c].abs() > 1e-12 {
                let f = equations[e][c];
                let (a, b) = if e < at {
                    let (l, r) = equations.split_at_mut(at);
                    (&mut l[e], &r[0])
                } else {
                    let (l, r) = equations.split_at_mut(e);
                    (&mut r[0], &l[at])
                };
                a.iter_mut().zip(b).for_each(|(x, y)| *x -= f * y);
            }
        }
        at += 1;
    }
    let mut out: Vec<usize> = equations
        .iter()
        .filter_map(|eq| {
            let nonzero: Vec<usize> = (0..n).filter(|&c| eq[c].abs() > 1e-9).collect();
            (nonzero.len() == 1).then(|| unknown[nonzero[0]])
        })
        .collect();
    out.sort_unstable();
    out
}

/// A 3-D table of persons counts with every margin (each key may be the total `*`);
/// `cells[i][j][l]`.
pub fn three_way(cells: &[Vec<Vec<u64>>]) -> Table {
    let mut t = Table::new(["a", "b", "c"], vec![niji_sdc::Measure::count("persons")]);
    let (ni, nj, nl) = (cells.len(), cells[0].len(), cells[0][0].len());
    let key = |prefix: char, i: Option<usize>| i.map_or(TOTAL.to_string(), |i| format!("{prefix}{i}"));
    let opts = |n: usize| (0..n).map(Some).chain([None]).collect::<Vec<_>>();
    for i in opts(ni) {
        for j in opts(nj) {
            for l in opts(nl) {
                let mut sum = 0;
                for (ii, plane) in cells.iter().enumerate() {
                    for (jj, line) in plane.iter().enumerate() {
                        for (ll, &v) in line.iter().enumerate() {
                            if i.is_none_or(|x| x == ii) && j.is_none_or(|x| x == jj) && l.is_none_or(|x| x == ll) {
                                sum += v;
                            }
                        }
                    }
                }
                t.push([key('a', i), key('b', j), key('c', l)], vec![niji_sdc::Cell::count(sum)]);
            }
        }
    }
    t
}
