//! Differencing: two releases whose difference isolates a few people.
//!
//! A researcher publishes the persons with a diagnosis per prefecture (release A, cohort X),
//! then the same table for "cohort X without those over 90" (release B). Each table passes
//! the threshold, but a cell that counted 120 in A and 118 in B reveals 2 persons over 90.
//!
//! What the checker knows: the sets of persons behind earlier cells are not kept (that
//! would be a list of pseudonyms per published cell); an earlier [`Release`] keeps only its
//! id, its dimension names and the persons of every row it published.
//!
//! Rule: a row about to be released whose keys match a row of an earlier release, and whose
//! persons differ from that row's by 1 to `min_persons − 1` ([`crate::Rules::min_persons`]), is
//! refused with [`crate::Reason::Differencing`] naming the earlier release. Every earlier release
//! is compared, whatever it was computed from: the same query over a newer dataset version, after
//! an opt-out or under an amended permit holds other persons, and nothing but the counts tells
//! whether two outputs' persons are the same (equal counts refuse nothing).
//!
//! Keys match as sets of distinct values, whatever the dimensions are named and in whatever
//! order (`sex, prefecture` against `prefecture, sex`, or `sex, sex AS s`; callers may know only
//! positions). Each row is matched by all its keys and also by the keys of the dimensions that
//! vary over the rows of its table (published or to be released), so that a constant column
//! added to a query, or a dimension pinned by its `WHERE`, does not make another table: a
//! one-row table is compared with every earlier one-row table and with the earlier row of its
//! keys. Matching keys include margins (`*`). Two values of different dimensions that happen to
//! be equal can match rows that are not the same cell: a refusal then is one too many, never one
//! too few.
//!
//! Limits: counts only (two cohorts can differ by swapping people and still have equal
//! counts: no verdict); persons of a row are the largest of its cells' persons, so two outputs
//! whose rows count the same persons but whose cells differ (`count(*) FILTER (WHERE …)` with
//! and without a rare condition) are not compared cell by cell; only rows with the same keys
//! are compared (a new table grouped differently, e.g. age bands 0-9/10-19 against 0-4/5-14, is
//! not, nor a cell against the margin of another table, nor sums of several cells against
//! one); implied margins of tables without total rows are not compared; differences of three
//! or more releases (A − B − C) are not searched.

use crate::check::Checked;
use crate::table::Table;
use std::collections::HashMap;

/// An earlier release, as the output checker remembers it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Release {
    /// The release's id (named in refusals).
    pub id: String,
    pub dimensions: Vec<String>,
    /// The rows that were published (suppressed rows are left out).
    pub rows: Vec<ReleaseRow>,
}

/// A published row: its keys (in the release's dimension order) and its persons.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReleaseRow {
    pub keys: Vec<String>,
    pub persons: u64,
}

impl Release {
    /// What to remember of a checked table once it is released: its released rows (shown, not
    /// left out).
    pub fn from_checked(id: impl Into<String>, table: &Table, checked: &Checked) -> Self {
        let rows = table
            .rows
            .iter()
            .enumerate()
            .filter(|(r, _)| checked.is_released(*r) && checked.shows_keys(*r))
            .map(|(_, row)| ReleaseRow { keys: row.keys.clone(), persons: row.persons() })
            .collect();
        Release { id: id.into(), dimensions: table.dimensions.clone(), rows }
    }
}

/// For every row to release (`released[r]`), the earlier releases it differs from by a few
/// persons: `(row, release index, isolated persons)`.
pub(crate) fn find(table: &Table, persons: &[u64], released: &[bool], earlier: &[Release], min_persons: u64) -> Vec<(usize, usize, u64)> {
    let mut found = Vec::new();
    if min_persons < 2 {
        return found;
    }
    // Judged over the rows to release, as an earlier release's over the rows it published.
    let ours = || table.rows.iter().enumerate().filter(|(r, _)| released[*r]);
    let ours_vary = varying(table.dimensions.len(), ours().map(|(_, row)| row.keys.as_slice()));
    let all = vec![true; table.dimensions.len()];
    for (index, release) in earlier.iter().enumerate() {
        let width = release.dimensions.len();
        let rows = || release.rows.iter().filter(|row| row.keys.len() == width);
        let theirs_vary = varying(width, rows().map(|row| row.keys.as_slice()));
        let theirs_all = vec![true; width];
        // Each earlier row under its whole set of keys and under the set of those that vary.
        let mut published: HashMap<Vec<&str>, Vec<u64>> = HashMap::with_capacity(2 * release.rows.len());
        for row in rows() {
            let (whole, varying) = (key_set(&row.keys, &theirs_all), key_set(&row.keys, &theirs_vary));
            if varying != whole {
                published.entry(varying).or_default().push(row.persons);
            }
            published.entry(whole).or_default().push(row.persons);
        }
        for (r, row) in ours() {
            let (whole, varying) = (key_set(&row.keys, &all), key_set(&row.keys, &ours_vary));
            let before = published.get(&whole).into_iter().chain((varying != whole).then(|| published.get(&varying)).flatten()).flatten();
            if let Some(isolated) = before.map(|b| b.abs_diff(persons[r])).find(|d| (1..min_persons).contains(d)) {
                found.push((r, index, isolated));
            }
        }
    }
    found
}

/// For each of `width` dimensions, whether it holds more than one value over `rows`.
fn varying<'a>(width: usize, rows: impl Iterator<Item = &'a [String]>) -> Vec<bool> {
    let mut first: Option<&[String]> = None;
    let mut vary = vec![false; width];
    for keys in rows {
        match first {
            None => first = Some(keys),
            Some(f) => {
                for (v, (a, b)) in vary.iter_mut().zip(f.iter().zip(keys)) {
                    *v |= a != b;
                }
            }
        }
    }
    vary
}

/// A row's keys of the dimensions `keep` names, as a sorted list of distinct values (a dimension
/// repeated under another name is one key).
fn key_set<'a>(keys: &'a [String], keep: &[bool]) -> Vec<&'a str> {
    let mut set: Vec<&str> = keys.iter().zip(keep).filter(|(_, k)| **k).map(|(k, _)| k.as_str()).collect();
    set.sort_unstable();
    set.dedup();
    set
}
