//! Differencing: two releases whose difference isolates a few people.
//!
//! A researcher publishes the persons with a diagnosis per prefecture (release A, cohort X),
//! then the same table for "cohort X without those over 90" (release B). Each table passes
//! the threshold, but a cell that counted 120 in A and 118 in B reveals 2 persons over 90.
//!
//! What the checker knows: the whole sets of persons behind earlier cells are not kept (that
//! would be a list of pseudonyms per published cell); an earlier [`Release`] keeps its id, its
//! dimension names, the persons of every row it published and, per shown cell, a
//! [`CellSample`]: how many persons its aggregate counts and the smallest of their ids (16 at
//! most), which tells two cells of nearly the same persons from two of different persons.
//!
//! Rule: a row about to be released whose keys match a row of an earlier release, and whose
//! persons differ from that row's by 1 to `min_persons − 1` ([`crate::Rules::min_persons`]), or
//! one of whose cells counts the persons of any earlier shown cell plus or less 1 to
//! `min_persons − 1` (their samples agree: [`isolated_by_samples`]; whatever the rows' keys and
//! persons, as for `count(*) FILTER (WHERE f)` by sex and `… FILTER (WHERE f AND sex = 'F' AND
//! NOT rare)`), is refused with [`crate::Reason::Differencing`] naming the earlier release. A
//! cell whose sample is that of an earlier shown cell (the same persons: a query run again) is
//! not compared. Every earlier release is compared, whatever it was computed from: the same
//! query over a newer dataset version, after an opt-out or under an amended permit holds other
//! persons, and nothing but the counts tells whether two outputs' persons are the same (equal
//! counts refuse nothing).
//!
//! Linked tables: a release also keeps the samples of the cells of the rows it withheld by
//! secondary suppression ([`Release::withheld`], [`withheld_samples`]); a row about to be
//! released with a cell of the same persons as one of them (equal samples) is refused with
//! [`crate::Reason::RevealsWithheld`] naming that release (persons by prefecture with one small
//! cell and a second suppressed to protect it, then the second asked alone: it and the first
//! release's total, in the table or asked apart, would give the small cell). The other way round
//! too: a table whose secondary suppression picks a cell an earlier release showed is refused
//! ([`EarlierSamples::shown_before`]), and so is a job at its release when a cell it withheld
//! was shown since it ran. A cell some earlier
//! release showed is public and refuses nothing when it is released again. Not caught: the
//! protecting cell as a difference of two released cells of other persons (`IN ('島根', '岡山')`
//! less `岡山`), which would need auditing linear combinations that samples cannot support; nor
//! the protecting cell's persons with a few more the researcher knows (nearly equal samples
//! matched too refused ordinary tables whose cells contain a withheld cell's persons and a few
//! others; samples cannot tell known persons from unknown ones).
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
//! counts: no verdict); samples are of per-permit ids, so cells of two versions of a permit
//! (each with its own key) look like cells of different persons, and only their rows' persons
//! are compared; a sample agrees when at most the count difference of its ids differ, so a
//! cell that adds some persons and drops as many others is not caught; only rows with the same
//! keys are compared (a new table grouped differently, e.g. age bands 0-9/10-19 against 0-4/5-14, is
//! not, nor a cell against the margin of another table, nor sums of several cells against
//! one); implied margins of tables without total rows are not compared; differences of three
//! or more releases (A − B − C) are not searched.

use crate::check::Checked;
use crate::table::{CellSample, Table};
use std::collections::HashMap;

/// An earlier release, as the output checker remembers it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Release {
    /// The release's id (named in refusals).
    pub id: String,
    pub dimensions: Vec<String>,
    /// The rows that were published (suppressed rows are left out).
    pub rows: Vec<ReleaseRow>,
    /// The samples of the cells of its rows suppressed to protect others (secondary suppression):
    /// a later cell of their persons would give the value the release withheld, and with the
    /// release's totals its primary cell (linked tables: persons by prefecture with P suppressed
    /// and P2 suppressed to protect it, then P2 asked alone).
    pub withheld: Vec<CellSample>,
}

/// A published row: its keys (in the release's dimension order), its persons, and the samples
/// of the persons behind its shown cells (`None` for a cell not shown or not sampled).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReleaseRow {
    pub keys: Vec<String>,
    pub persons: u64,
    pub cells: Vec<Option<CellSample>>,
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
            .map(|(r, row)| ReleaseRow {
                keys: row.keys.clone(),
                persons: row.persons(),
                cells: row
                    .cells
                    .iter()
                    .enumerate()
                    .map(|(j, cell)| cell.sample.clone().filter(|_| checked.verdict(r, j).outcome == crate::Outcome::Released))
                    .collect(),
            })
            .collect();
        let withheld = withheld_samples(table, checked).cloned().collect();
        Release { id: id.into(), dimensions: table.dimensions.clone(), rows, withheld }
    }
}

/// The samples of the cells of a checked table's rows withheld by secondary suppression: the
/// cells that protect another by leaving its line two unknowns. (A row withheld for its own
/// values is suppressed again whenever its persons are asked, and the cells withheld with it
/// tell nothing of it: a count of all women beside a small count of old women.)
pub fn withheld_samples<'a>(table: &'a Table, checked: &'a Checked) -> impl Iterator<Item = &'a CellSample> + 'a {
    table
        .rows
        .iter()
        .enumerate()
        .filter(move |(r, _)| checked.protects(*r))
        .flat_map(|(_, row)| row.cells.iter().filter_map(|cell| cell.sample.as_ref()))
}

/// The samples of earlier releases, by what became of their cells: shown, or withheld to protect
/// another. Each maps to the first release that holds it. Made once per check and compared with
/// every row (equal samples only).
pub struct EarlierSamples<'a> {
    shown: HashMap<&'a CellSample, usize>,
    withheld: HashMap<&'a CellSample, usize>,
}

impl<'a> EarlierSamples<'a> {
    pub fn of(earlier: &'a [Release]) -> Self {
        let (mut shown, mut withheld) = (HashMap::new(), HashMap::new());
        for (index, release) in earlier.iter().enumerate() {
            for sample in release.rows.iter().flat_map(|row| row.cells.iter().flatten()) {
                shown.entry(sample).or_insert(index);
            }
            for sample in &release.withheld {
                withheld.entry(sample).or_insert(index);
            }
        }
        EarlierSamples { shown, withheld }
    }

    /// The first earlier release that showed a cell of the persons of one of `withheld`: a cell
    /// withheld now to protect another protects nothing if its value is out already.
    pub fn shown_before<'b>(&self, withheld: impl IntoIterator<Item = &'b CellSample>) -> Option<usize> {
        withheld.into_iter().find_map(|ours| self.shown.get(ours).copied())
    }

    /// For every row to release (`released[r]`), the first earlier release one of whose withheld
    /// cells one of the row's cells would reveal (`(row, release index)`). A cell whose sample
    /// some earlier release showed is public already and reveals nothing.
    pub(crate) fn reveals_withheld(&self, table: &Table, released: &[bool]) -> Vec<(usize, usize)> {
        if self.withheld.is_empty() {
            return Vec::new();
        }
        table
            .rows
            .iter()
            .enumerate()
            .filter(|(r, _)| released[*r])
            .filter_map(|(r, row)| {
                row.cells
                    .iter()
                    .filter_map(|c| c.sample.as_ref())
                    .filter(|s| !self.shown.contains_key(s))
                    .find_map(|ours| self.withheld.get(ours))
                    .map(|&i| (r, i))
            })
            .collect()
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
    // Every earlier shown cell's sample, by the persons it counts: a cell is compared with all of
    // them, whatever their rows' keys (a key moved into a filter makes a row of other keys over
    // the same persons), unless the very same cell was shown before (a query run again).
    let mut by_persons: HashMap<u64, Vec<(usize, &CellSample)>> = HashMap::new();
    let mut shown: std::collections::HashSet<&CellSample> = std::collections::HashSet::new();
    for (index, release) in earlier.iter().enumerate() {
        for sample in release.rows.iter().flat_map(|row| row.cells.iter().flatten()) {
            by_persons.entry(sample.persons).or_default().push((index, sample));
            shown.insert(sample);
        }
    }
    for (r, row) in ours() {
        let by_cells = row.cells.iter().filter_map(|c| c.sample.as_ref()).filter(|s| !shown.contains(s)).find_map(|ours| {
            (ours.persons.saturating_sub(min_persons - 1)..=ours.persons + (min_persons - 1))
                .filter_map(|p| by_persons.get(&p))
                .flatten()
                .find_map(|&(index, theirs)| isolated_by_samples(ours, theirs, min_persons).map(|d| (index, d)))
        });
        if let Some((index, isolated)) = by_cells {
            found.push((r, index, isolated));
        }
    }
    for (index, release) in earlier.iter().enumerate() {
        let width = release.dimensions.len();
        let rows = || release.rows.iter().filter(|row| row.keys.len() == width);
        let theirs_vary = varying(width, rows().map(|row| row.keys.as_slice()));
        let theirs_all = vec![true; width];
        // Each earlier row under its whole set of keys and under the set of those that vary.
        let mut published: HashMap<Vec<&str>, Vec<&ReleaseRow>> = HashMap::with_capacity(2 * release.rows.len());
        for row in rows() {
            let (whole, varying) = (key_set(&row.keys, &theirs_all), key_set(&row.keys, &theirs_vary));
            if varying != whole {
                published.entry(varying).or_default().push(row);
            }
            published.entry(whole).or_default().push(row);
        }
        for (r, row) in ours() {
            let (whole, varying) = (key_set(&row.keys, &all), key_set(&row.keys, &ours_vary));
            let before: Vec<&ReleaseRow> =
                published.get(&whole).into_iter().chain((varying != whole).then(|| published.get(&varying)).flatten()).flatten().copied().collect();
            if let Some(isolated) = before.iter().map(|b| b.persons.abs_diff(persons[r])).find(|d| (1..min_persons).contains(d)) {
                found.push((r, index, isolated));
            }
        }
    }
    found
}

/// How many persons two cells' difference isolates, when one counts the other's persons and a few
/// more: their counts differ by `d`, 1 to `min_persons − 1`, and among the ids both samples can
/// tell about (all, or those below the smaller of their largest) the smaller cell has none the
/// larger lacks and the larger at most `d` the smaller lacks. Two cells of different persons
/// whose counts are close have ids of their own on both sides.
pub(crate) fn isolated_by_samples(a: &CellSample, b: &CellSample, min_persons: u64) -> Option<u64> {
    let d = a.persons.abs_diff(b.persons);
    if !(1..min_persons).contains(&d) {
        return None;
    }
    let complete = |s: &CellSample| s.smallest.len() as u64 >= s.persons;
    let bound = match (complete(a), complete(b)) {
        (true, true) => u32::MAX,
        (true, false) => *b.smallest.last()?,
        (false, true) => *a.smallest.last()?,
        (false, false) => (*a.smallest.last()?).min(*b.smallest.last()?),
    };
    let (xs, ys): (Vec<u32>, Vec<u32>) =
        (a.smallest.iter().copied().filter(|&x| x <= bound).collect(), b.smallest.iter().copied().filter(|&y| y <= bound).collect());
    let only_a = xs.iter().filter(|x| ys.binary_search(x).is_err()).count();
    let only_b = ys.iter().filter(|y| xs.binary_search(y).is_err()).count();
    let agree = xs.len() + ys.len() > 0 && only_a.min(only_b) == 0 && (only_a.max(only_b) as u64) <= d;
    agree.then_some(d)
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

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(persons: u64, smallest: impl IntoIterator<Item = u32>) -> CellSample {
        CellSample { persons, smallest: smallest.into_iter().collect() }
    }

    /// `isolated_by_samples` with a threshold of 10.
    fn check(a: CellSample, b: CellSample, expected: Option<u64>) {
        assert_eq!(isolated_by_samples(&a, &b, 10), expected, "{a:?} {b:?}");
        assert_eq!(isolated_by_samples(&b, &a, 10), expected, "the other way: {a:?} {b:?}");
    }

    fn table(dimensions: &[&str], rows: &[(&[&str], Vec<CellSample>)]) -> Table {
        let measures = (0..rows[0].1.len()).map(|j| crate::Measure::count(format!("m{j}"))).collect();
        let mut t = Table::new(dimensions.iter().copied(), measures);
        for (keys, samples) in rows {
            let cells = samples.iter().map(|s| crate::Cell::count(s.persons).with_sample(s.clone())).collect();
            t.push(keys.iter().copied(), cells);
        }
        t
    }

    fn refused(t: &Table, earlier: &Release) -> Vec<bool> {
        let rules = crate::Rules::preset(crate::Preset::Ndb);
        let c = crate::check_against_earlier(t, &rules, std::slice::from_ref(earlier)).unwrap();
        (0..t.rows.len()).map(|r| c.verdict(r, 0).outcome == crate::Outcome::Refused).collect()
    }

    #[test]
    fn a_query_run_again_is_not_refused_by_its_own_cells() {
        // Everyone (40) and those with an age (37) side by side: a query run again shows the same
        // cells; only a cell new to the project is compared.
        let (row, aged) = (sample(40, (0..16).map(|i| i * 10)), sample(37, (0..16).map(|i| i * 10).filter(|&x| x != 50)));
        let t = table(&["g"], &[(&["a"], vec![row.clone(), aged.clone()]), (&["b"], vec![sample(50, 1000..1016), sample(50, 1000..1016)])]);
        let rules = crate::Rules::preset(crate::Preset::Ndb);
        let release = Release::from_checked("A", &t, &crate::check(&t, &rules).unwrap());
        assert_eq!(refused(&t, &release), [false, false]);
        // (Under another key, so that only the cells are compared.)
        let new = table(&["g"], &[(&["z"], vec![aged.clone(), sample(38, (0..16).map(|i| i * 10).filter(|&x| x != 70))])]);
        assert_eq!(refused(&new, &release), [true]);
    }

    #[test]
    fn a_cell_is_compared_with_earlier_cells_whatever_their_keys() {
        // Women (30) in a table by sex; then, in a table of no keys, women less two.
        let women = sample(30, (0..16).map(|i| i * 10));
        let t = table(&["sex"], &[(&["F"], vec![women.clone()]), (&["M"], vec![sample(30, (0..16).map(|i| i * 10 + 5))])]);
        let rules = crate::Rules::preset(crate::Preset::Ndb);
        let release = Release::from_checked("A", &t, &crate::check(&t, &rules).unwrap());
        let less = table(&[], &[(&[], vec![sample(28, women.smallest.iter().copied().filter(|&x| x != 20 && x != 40).chain([160, 170]))])]);
        assert_eq!(refused(&less, &release), [true]);
        // Other persons, as many: answered.
        let other = table(&[], &[(&[], vec![sample(28, (0..16).map(|i| i * 10 + 7))])]);
        assert_eq!(refused(&other, &release), [false]);
    }

    #[test]
    fn a_sample_is_debugged_without_its_ids() {
        assert_eq!(format!("{:?}", sample(3, [70_123, 80_456, 90_789])), "CellSample { persons: 3, ids: 3 }");
    }

    #[test]
    fn samples_tell_nearly_the_same_persons_from_others() {
        // Whole sets: one within the other by three; the same count apart but not within.
        check(sample(8, [1, 5, 9, 12, 20, 31, 40, 41]), sample(5, [1, 9, 20, 31, 41]), Some(3));
        check(sample(8, [1, 5, 9, 12, 20, 31, 40, 41]), sample(5, [1, 9, 20, 31, 42]), None);
        // Equal counts, or ten apart: nothing to tell.
        check(sample(5, [1, 9, 20, 31, 41]), sample(5, [1, 9, 20, 31, 41]), None);
        check(sample(15, 0..15), sample(5, 0..5), None);
        // Sampled: a cell and the same less one person, whose id is among the smallest or not.
        let many: Vec<u32> = (0..16).map(|i| i * 100).collect();
        check(sample(500, many.clone()), sample(499, many.iter().copied().filter(|&x| x != 300).chain([1600])), Some(1));
        check(sample(500, many.clone()), sample(499, many.clone()), Some(1));
        // Three fewer, two of them among the smallest.
        check(sample(500, many.clone()), sample(497, many.iter().copied().filter(|&x| x != 300 && x != 800).chain([1600, 1700])), Some(3));
        // Sampled cells of other persons with close counts.
        check(sample(500, many.clone()), sample(496, many.iter().map(|x| x + 50)), None);
        check(sample(500, many.clone()), sample(496, many.iter().map(|&x| if x % 300 == 0 { x + 1 } else { x })), None);
        // One whole, one sampled: compared below the sampled one's largest id.
        check(sample(12, (0..12).map(|i| i * 10)), sample(40, (0..16).map(|i| i * 10)), None);
        check(sample(15, (0..15).map(|i| i * 10)), sample(17, (0..16).map(|i| i * 10)), Some(2));
    }
}
