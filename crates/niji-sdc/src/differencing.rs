//! Differencing: two releases whose difference isolates a few people.
//!
//! A researcher publishes the persons with a diagnosis per prefecture (release A, cohort X),
//! then the same table for "cohort X without those over 90" (release B). Each table passes
//! the threshold, but a cell that counted 120 in A and 118 in B reveals 2 persons over 90.
//!
//! What the checker knows: the sets of persons behind earlier cells are not kept (that
//! would be a list of pseudonyms per published cell); an earlier [`Release`] keeps only its
//! id, its cohort definition (`cohort_key`, e.g. the normalised SQL `WHERE` clause; the
//! caller decides what "the same cohort" means), its dimension names and the persons of
//! every row it published.
//!
//! Rule: a row about to be released whose keys match a row of an earlier release with the
//! same dimensions (in any order) but a *different* cohort key, and whose persons differ
//! from that row's by 1 to `min_persons − 1` ([`crate::Rules::min_persons`]), is refused
//! with [`crate::Reason::Differencing`] naming the earlier release. Matching keys include
//! margins (`*`).
//!
//! Limits: counts only (two cohorts can differ by swapping people and still have equal
//! counts: no verdict); only rows with identical keys are compared (a new table grouped
//! differently, e.g. age bands 0-9/10-19 against 0-4/5-14, is not compared, nor are sums
//! of several cells against one); the same cohort key is assumed to hold the same persons
//! (a data refresh under the same key is not compared); implied margins of tables without
//! total rows are not compared; differences of three or more releases (A − B − C) are not
//! searched; persons of a row are the largest of its cells' persons.

use crate::check::Checked;
use crate::table::Table;
use std::collections::HashMap;

/// An earlier release, as the output checker remembers it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Release {
    /// The release's id (named in refusals).
    pub id: String,
    /// The cohort definition, normalised by the caller.
    pub cohort_key: String,
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
    pub fn from_checked(id: impl Into<String>, cohort_key: impl Into<String>, table: &Table, checked: &Checked) -> Self {
        let rows = table
            .rows
            .iter()
            .enumerate()
            .filter(|(r, _)| checked.is_released(*r) && checked.shows_keys(*r))
            .map(|(_, row)| ReleaseRow { keys: row.keys.clone(), persons: row.persons() })
            .collect();
        Release { id: id.into(), cohort_key: cohort_key.into(), dimensions: table.dimensions.clone(), rows }
    }
}

/// For every row to release (`released[r]`), the earlier releases it differs from by a few
/// persons: `(row, release index, isolated persons)`.
pub(crate) fn find(
    table: &Table,
    persons: &[u64],
    released: &[bool],
    cohort_key: &str,
    earlier: &[Release],
    min_persons: u64,
) -> Vec<(usize, usize, u64)> {
    let mut found = Vec::new();
    if min_persons < 2 {
        return found;
    }
    for (index, release) in earlier.iter().enumerate() {
        if release.cohort_key == cohort_key {
            continue;
        }
        // Where each of our dimensions sits in the release's keys.
        let Some(order) = reorder(&table.dimensions, &release.dimensions) else { continue };
        let mut published: HashMap<Vec<&str>, u64> = HashMap::with_capacity(release.rows.len());
        for row in release.rows.iter().filter(|row| row.keys.len() == order.len()) {
            published.entry(order.iter().map(|&j| row.keys[j].as_str()).collect()).or_insert(row.persons);
        }
        for (r, row) in table.rows.iter().enumerate().filter(|(r, _)| released[*r]) {
            let keys: Vec<&str> = row.keys.iter().map(String::as_str).collect();
            if let Some(&before) = published.get(&keys) {
                let isolated = before.abs_diff(persons[r]);
                if (1..min_persons).contains(&isolated) {
                    found.push((r, index, isolated));
                }
            }
        }
    }
    found
}

/// `order[i]` = the position of `ours[i]` in `theirs`, if both name the same dimensions.
fn reorder(ours: &[String], theirs: &[String]) -> Option<Vec<usize>> {
    if ours.len() != theirs.len() {
        return None;
    }
    ours.iter().map(|name| theirs.iter().position(|t| t == name)).collect()
}
