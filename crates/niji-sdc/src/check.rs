//! Checking a table: primary rules per cell, suppression of whole rows, secondary
//! suppression, differencing against earlier releases, rounding, and the released table.
//!
//! Steps, in order:
//! 1. Whole table: more dimensions than [`Rules::max_dimensions`] refuses the table
//!    ([`Checked::table_reasons`]); the cells are still checked so that the researcher sees
//!    everything at once.
//! 2. Primary rules on each cell's own values, in this order: zero persons ([`Reason::Zero`]
//!    when zeros are disclosive; nothing else is checked on an empty cell), redaction of
//!    small counts (persons, and the value of a count measure), the person threshold,
//!    institutions, then for magnitudes N-K dominance and p-percent (a [`MeasureKind::Sum`]
//!    or [`MeasureKind::Mean`] without contributions gets
//!    [`Reason::MissingContributions`] when those rules are on).
//! 3. The unit of suppression is the row: when one cell of a row is suppressed, the other
//!    measures of the row are suppressed with it ([`Reason::SameRow`]), because measures of
//!    one row often reveal each other (a sum is a mean times a count).
//! 4. Secondary suppression ([`crate::secondary`]) when [`Rules::secondary`] is on.
//! 5. Differencing ([`crate::differencing`]) of the rows still to be released, when earlier
//!    releases are given: a refusal ([`Reason::Differencing`]); so is a row with a cell of the
//!    persons of a cell an earlier release suppressed ([`Reason::RevealsWithheld`]).
//! 6. Released values ([`Checked::shown`]): suppressed and refused cells become markers
//!    ([`Shown`]), the values of count measures are rounded when [`Rules::rounding`] is set.
//!
//! A table passes when nothing refuses it: suppressed cells are released as marked.

use crate::differencing::{self, Release};
use crate::rules::{Dominance, Rules, RulesError};
use crate::secondary;
use crate::table::{Cell, Measure, MeasureKind, Table, TableError};
use crate::verdict::{CellRef, Outcome, Reason, Verdict};

/// A released cell.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Shown {
    /// The value, rounded when the rules round.
    Value(f64),
    /// Shown as "suppressed" (秘匿).
    Suppressed,
    /// Not releasable: the table does not pass.
    Refused,
}

/// How many cells ended how.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Summary {
    pub cells: usize,
    pub released: usize,
    /// Suppressed by a rule on the cell's own values.
    pub primary: usize,
    /// Suppressed only because of other cells (same row or secondary suppression).
    pub secondary: usize,
    pub refused: usize,
    /// Released values that were rounded.
    pub rounded: usize,
}

/// The result of a check.
///
/// Storage: suppression, secondary suppression and differencing act on whole rows, so a row
/// is either released entirely or withheld entirely. Only withheld rows keep verdicts of
/// their own (a million-row table with a few per cent withheld needs no million small
/// vectors); released rows share one verdict per measure. Values are not copied: the
/// released values are read from the checked table ([`Checked::shown`]).
#[derive(Debug, Clone, PartialEq)]
pub struct Checked {
    measures: Vec<MeasureKind>,
    rounding: Option<u64>,
    /// Per row: the index in `withheld` of its first verdict, or [`RELEASED_ROW`].
    slot: Vec<u32>,
    /// The verdicts of withheld rows, `measures.len()` per row.
    withheld: Vec<Verdict>,
    /// One released verdict per measure (what released rows answer).
    released: Vec<Verdict>,
    /// Reasons that refuse the whole table (too many dimensions).
    pub table_reasons: Vec<Reason>,
    /// Per row: whether it is left out of the released table ([`Checked::shows_keys`]).
    keys_withheld: Vec<bool>,
    /// Counts over the rows whose keys are shown.
    pub summary: Summary,
}

const RELEASED_ROW: u32 = u32::MAX;

/// The released table: the checked table's keys with [`Shown`] values.
#[derive(Debug, Clone, PartialEq)]
pub struct ReleasedTable {
    pub dimensions: Vec<String>,
    pub measures: Vec<Measure>,
    pub rows: Vec<ReleasedRow>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ReleasedRow {
    pub keys: Vec<String>,
    pub values: Vec<Shown>,
}

/// Why a table could not be checked at all.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SdcError {
    #[error(transparent)]
    Rules(#[from] RulesError),
    #[error(transparent)]
    Table(#[from] TableError),
    #[error("tables of more than 4,294,967,294 rows are not supported")]
    TooManyRows,
}

impl Checked {
    /// Whether the table may be released (with its suppressed cells marked).
    pub fn passes(&self) -> bool {
        self.table_reasons.is_empty() && self.summary.refused == 0
    }

    /// The number of rows checked.
    pub fn rows(&self) -> usize {
        self.slot.len()
    }

    /// Whether a row is released (all its cells are) rather than withheld (none is).
    pub fn is_released(&self, row: usize) -> bool {
        self.slot[row] == RELEASED_ROW
    }

    /// Whether a row appears in the released table. A row of fewer persons than the rules allow
    /// is left out, keys and all (`keys_disclose`; or outside a query's window,
    /// [`Checked::keep_window`]): its keys come from the data, and `… WHERE <a rare combination>
    /// GROUP BY code` would otherwise list the codes of a few persons with only their counts
    /// suppressed. Its cells still count for secondary suppression; it is never compared with
    /// earlier releases.
    pub fn shows_keys(&self, row: usize) -> bool {
        !self.keys_withheld[row]
    }

    /// Whether a row is withheld by secondary suppression (to protect another).
    pub fn protects(&self, row: usize) -> bool {
        !self.is_released(row) && self.row_verdicts(row).iter().any(|v| v.reasons.iter().any(|r| matches!(r, Reason::SecondarySuppression { .. })))
    }

    pub fn verdict(&self, row: usize, measure: usize) -> &Verdict {
        &self.row_verdicts(row)[measure]
    }

    /// The verdicts of a row's cells, one per measure.
    pub fn row_verdicts(&self, row: usize) -> &[Verdict] {
        match self.slot[row] {
            RELEASED_ROW => &self.released,
            first => &self.withheld[first as usize..first as usize + self.measures.len()],
        }
    }

    /// Every verdict, row-major.
    pub fn verdicts(&self) -> impl Iterator<Item = &Verdict> + '_ {
        (0..self.rows()).flat_map(|r| self.row_verdicts(r))
    }

    /// The verdicts as a grid (`[row][measure]`).
    pub fn verdict_grid(&self) -> Vec<Vec<Verdict>> {
        (0..self.rows()).map(|r| self.row_verdicts(r).to_vec()).collect()
    }

    /// What is released for a cell of `table` (the table that was checked): its value,
    /// rounded for count measures when the rules round, or a marker. Every cell of a table
    /// refused as a whole ([`Checked::table_reasons`]) is the refusal marker: nothing of it is
    /// released, and a stored copy of what would be shown holds no value either.
    pub fn shown(&self, table: &Table, row: usize, measure: usize) -> Shown {
        if !self.table_reasons.is_empty() {
            return Shown::Refused;
        }
        match self.verdict(row, measure).outcome {
            Outcome::Released => {
                let value = table.rows[row].cells[measure].value;
                match self.rounding {
                    Some(base) if self.measures[measure] == MeasureKind::Count => Shown::Value(round_to(value, base)),
                    _ => Shown::Value(value),
                }
            }
            Outcome::Suppressed => Shown::Suppressed,
            Outcome::Refused => Shown::Refused,
        }
    }

    /// What is released for a row of `table` (the table that was checked).
    pub fn released_row(&self, table: &Table, row: usize) -> Vec<Shown> {
        (0..self.measures.len()).map(|j| self.shown(table, row, j)).collect()
    }

    /// The released table, for the `table` that was checked: the rows whose keys are shown
    /// ([`Checked::shows_keys`]), in the order of [`Checked::shown_order`].
    pub fn released_table(&self, table: &Table) -> ReleasedTable {
        let rows = self
            .shown_order(table)
            .into_iter()
            .map(|r| ReleasedRow { keys: table.rows[r].keys.clone(), values: self.released_row(table, r) })
            .collect();
        ReleasedTable { dimensions: table.dimensions.clone(), measures: table.measures.clone(), rows }
    }

    /// The rows whose keys are shown, in the order they are released: rows whose every cell is
    /// released keep the table's order (the query's `ORDER BY`), then come the rows with a
    /// cell withheld, by their keys. In the query's order a withheld cell's place would bound
    /// the value it hides (between its neighbours' counts under `ORDER BY count(*)`), and with
    /// it the primary cell that the secondary suppression protects. Where the rules round
    /// counts, released rows next to each other whose counts show the same are put in the order
    /// of their keys: the query's order among them would tell their exact counts apart.
    pub fn shown_order(&self, table: &Table) -> Vec<usize> {
        let (mut order, mut withheld): (Vec<usize>, Vec<usize>) =
            (0..self.rows()).filter(|&r| self.shows_keys(r)).partition(|&r| self.is_released(r));
        let by_keys = |a: &usize, b: &usize| table.rows[*a].keys.cmp(&table.rows[*b].keys).then(a.cmp(b));
        if self.rounding.is_some() {
            let counts: Vec<usize> = (0..self.measures.len()).filter(|&m| self.measures[m] == MeasureKind::Count).collect();
            let same_counts = |a: usize, b: usize| counts.iter().all(|&m| self.shown(table, a, m) == self.shown(table, b, m));
            let mut start = 0;
            while start < order.len() {
                let end = start + order[start..].iter().take_while(|&&r| same_counts(order[start], r)).count();
                order[start..end].sort_by(by_keys);
                start = end;
            }
        }
        withheld.sort_by(by_keys);
        order.extend(withheld);
        order
    }
}

/// Checks a table against rules.
pub fn check(table: &Table, rules: &Rules) -> Result<Checked, SdcError> {
    run(table, rules, None)
}

/// Checks a table against rules and against the project's earlier releases
/// ([`crate::differencing`]).
pub fn check_against_earlier(table: &Table, rules: &Rules, earlier: &[Release]) -> Result<Checked, SdcError> {
    run(table, rules, Some(earlier))
}

fn run(table: &Table, rules: &Rules, earlier: Option<&[Release]>) -> Result<Checked, SdcError> {
    rules.validate()?;
    table.validate_header()?;
    let (n, m) = (table.rows.len(), table.measures.len());
    if n >= RELEASED_ROW as usize || n.saturating_mul(m) >= RELEASED_ROW as usize {
        return Err(SdcError::TooManyRows);
    }
    let mut table_reasons = Vec::new();
    if let Some(maximum) = rules.max_dimensions {
        if table.dimensions.len() > maximum {
            table_reasons.push(Reason::TooManyDimensions { dimensions: table.dimensions.len(), maximum });
        }
    }
    let blank = Verdict { outcome: Outcome::Released, reasons: Vec::new() };
    let mut checked = Checked {
        measures: table.measures.iter().map(|measure| measure.kind).collect(),
        rounding: rules.rounding,
        slot: vec![RELEASED_ROW; n],
        withheld: Vec::new(),
        released: vec![blank.clone(); m],
        table_reasons,
        keys_withheld: Vec::with_capacity(n),
        summary: Summary::default(),
    };

    // The rows' invariants, whether their keys are shown, the primary rules, then whole rows:
    // one pass over the rows (each row's cells are an allocation of their own, and a pass over
    // them all was a tenth of the time of a two-way table of a million rows).
    let mut suppressed = vec![false; n];
    let mut persons = vec![0u64; n];
    let mut own: Vec<Vec<Reason>> = vec![Vec::new(); m];
    for (r, row) in table.rows.iter().enumerate() {
        table.validate_row(r, row)?;
        persons[r] = row.persons();
        checked.keys_withheld.push(keys_disclose(table, row, persons[r], rules));
        for ((cell, kind), reasons) in row.cells.iter().zip(&checked.measures).zip(&mut own) {
            primary(cell, *kind, rules, row.institutions, reasons);
        }
        let Some(cause) = own.iter().position(|reasons| !reasons.is_empty()) else { continue };
        suppressed[r] = true;
        checked.slot[r] = checked.withheld.len() as u32;
        for reasons in &mut own {
            let reasons =
                if reasons.is_empty() { vec![Reason::SameRow { because_of: CellRef { row: r, measure: cause } }] } else { std::mem::take(reasons) };
            checked.withheld.push(Verdict { outcome: Outcome::Suppressed, reasons });
        }
    }

    if rules.secondary {
        let protection = secondary::protect(table, &persons, &mut suppressed);
        for (row, trigger) in protection.added {
            let cause = checked.row_verdicts(trigger).iter().position(Verdict::is_primary).unwrap_or(0);
            let because_of = CellRef { row: trigger, measure: cause };
            checked.withhold(row, Reason::SecondarySuppression { because_of });
        }
        if protection.solvable > 0 {
            checked.table_reasons.push(Reason::SolvableSuppression { cells: protection.solvable });
        }
    }

    if let Some(releases) = earlier {
        // Rows left out are not released, whatever their cells: no differencing refusal may tell
        // that one exists.
        let to_release: Vec<bool> = suppressed.iter().zip(&checked.keys_withheld).map(|(s, w)| !s && !w).collect();
        for (row, index, isolated) in differencing::find(table, &persons, &to_release, releases, rules.min_persons()) {
            checked.withhold(row, Reason::Differencing { earlier_release: releases[index].id.clone(), isolated });
        }
        let samples = differencing::EarlierSamples::of(releases);
        let mut reveal = samples.reveals_withheld(table, &to_release);
        // A cell suppressed here to protect another whose value an earlier release showed.
        for row in (0..n).filter(|&r| checked.protects(r)) {
            if let Some(index) = samples.shown_before(table.rows[row].cells.iter().filter_map(|c| c.sample.as_ref())) {
                reveal.push((row, index));
            }
        }
        for (row, index) in reveal {
            checked.withhold(row, Reason::RevealsWithheld { earlier_release: releases[index].id.clone() });
        }
    }

    for verdict in &mut checked.withheld {
        *verdict = Verdict::from_reasons(std::mem::take(&mut verdict.reasons));
    }
    checked.summary = checked.summarize();
    Ok(checked)
}

impl Checked {
    /// Counts over the rows shown: how many rows went with their keys is itself a count of
    /// small groups.
    fn summarize(&self) -> Summary {
        let m = self.measures.len();
        let mut summary = Summary::default();
        let counts = self.measures.iter().filter(|&&k| k == MeasureKind::Count).count();
        for r in (0..self.rows()).filter(|&r| self.shows_keys(r)) {
            summary.cells += m;
            if self.is_released(r) {
                summary.released += m;
                summary.rounded += if self.rounding.is_some() { counts } else { 0 };
                continue;
            }
            for verdict in self.row_verdicts(r) {
                match verdict.outcome {
                    Outcome::Released => summary.released += 1,
                    Outcome::Suppressed if verdict.is_primary() => summary.primary += 1,
                    Outcome::Suppressed => summary.secondary += 1,
                    Outcome::Refused => summary.refused += 1,
                }
            }
        }
        summary
    }

    /// Keeps, of the rows shown, those from the `skip`-th on, at most `fetch` of them (a query's
    /// `LIMIT … OFFSET …`, applied here so that a row left out takes no place); the others are
    /// left out too, and the summary counts the rows kept.
    pub fn keep_window(&mut self, table: &Table, skip: usize, fetch: Option<usize>) {
        for (place, r) in self.shown_order(table).into_iter().enumerate() {
            if place < skip || fetch.is_some_and(|f| place >= skip + f) {
                self.keys_withheld[r] = true;
            }
        }
        self.summary = self.summarize();
    }

    /// Adds a reason to every cell of a row, withholding it if it was released.
    fn withhold(&mut self, row: usize, reason: Reason) {
        let m = self.measures.len();
        if self.slot[row] == RELEASED_ROW {
            self.slot[row] = self.withheld.len() as u32;
            self.withheld.extend((0..m).map(|_| Verdict { outcome: Outcome::Suppressed, reasons: Vec::new() }));
        }
        let first = self.slot[row] as usize;
        for verdict in &mut self.withheld[first..first + m] {
            verdict.reasons.push(reason.clone());
        }
    }
}

/// Whether showing a row would tell that a few persons (fewer than `minimum`) have its keys. A
/// keyed row of no persons is one whose persons could not be counted (a group exists only when
/// rows do): it goes too. A margin's `*` is no exemption: it can be a data value, and a total of
/// a few persons tells that they exist. A row without keys is shown when it counts no one (an
/// aggregate over no rows: a zero), so that `GROUP BY` on a column left out of the output does
/// not list one suppressed row per rare group. Under a minimum of institutions, a keyed row known
/// to come from fewer goes too (its keys, a facility code or a rare code in a small area, point
/// at the institutions). `persons` is the row's ([`crate::table::Row::persons`]).
fn keys_disclose(table: &Table, row: &crate::table::Row, persons: u64, rules: &Rules) -> bool {
    let minimum = rules.min_persons();
    let few_institutions = matches!((rules.min_institutions, row.institutions), (Some(least), Some(n)) if n < least);
    if table.dimensions.is_empty() {
        persons > 0 && persons < minimum
    } else {
        persons < minimum || few_institutions
    }
}

/// The rules on a cell's own values; a cell comes from no more institutions than its row.
fn primary(cell: &Cell, kind: MeasureKind, rules: &Rules, row_institutions: Option<u64>, out: &mut Vec<Reason>) {
    if cell.persons == 0 {
        // No one behind a value that is not zero (nor missing): its persons were not counted.
        if cell.value != 0.0 && !cell.value.is_nan() {
            out.push(Reason::BelowThreshold { persons: 0, threshold: rules.threshold });
        } else if rules.zeros_disclosive {
            out.push(Reason::Zero);
        }
        return;
    }
    let small_value = kind == MeasureKind::Count && cell.value > 0.0;
    match rules.redact_at_or_below {
        Some(at_or_below) if cell.persons <= at_or_below || (small_value && cell.value <= at_or_below as f64) => {
            out.push(Reason::SmallCount { at_or_below });
        }
        _ => {}
    }
    if cell.persons < rules.threshold {
        out.push(Reason::BelowThreshold { persons: cell.persons, threshold: rules.threshold });
    }
    let institutions = match (cell.institutions, row_institutions) {
        (Some(c), Some(r)) => Some(c.min(r)),
        (c, r) => c.or(r),
    };
    if let (Some(minimum), Some(institutions)) = (rules.min_institutions, institutions) {
        if institutions < minimum {
            out.push(Reason::FewInstitutions { institutions, minimum });
        }
    }
    if rules.dominance.is_none() && rules.p_percent.is_none() {
        return;
    }
    let magnitude = matches!(kind, MeasureKind::Sum | MeasureKind::Mean);
    let (Some([first, second]), Some(total)) = (cell.top, cell.magnitude(kind)) else {
        if magnitude || cell.top.is_some() {
            out.push(Reason::MissingContributions);
        }
        return;
    };
    if let Some(Dominance { n, k }) = rules.dominance {
        let largest = if n >= 2 { first + second } else { first };
        if total > 0.0 && largest > k * total {
            out.push(Reason::Dominance { n, k });
        }
    }
    if let Some(p) = rules.p_percent {
        if first > 0.0 && total - first - second < p * first {
            out.push(Reason::PPercent { p });
        }
    }
}

/// Rounds to the nearest multiple of `base`, halves away from zero.
fn round_to(value: f64, base: u64) -> f64 {
    let base = base as f64;
    (value / base).round() * base
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rounding_to_five() {
        let r: Vec<f64> = [8.0, 10.0, 12.0, 12.5, 13.0, 100.0, 0.0].iter().map(|&v| round_to(v, 5)).collect();
        assert_eq!(r, [10.0, 10.0, 10.0, 15.0, 15.0, 100.0, 0.0]);
    }
}
