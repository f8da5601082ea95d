//! The tables to check: named dimension columns (strings) and measure cells.
//!
//! A [`Table`] is what a researcher's query produced in the analysis environment, with what
//! the sandbox knows about every cell: the number of distinct persons behind it (always),
//! optionally the number of institutions behind it, and for magnitudes (sums, means) the two
//! largest contributions of single persons and the total of all contributions.
//!
//! Margins: a key equal to [`TOTAL`] (`"*"`, as `niji-anon` writes a value generalized to its
//! top) in a dimension marks a total over that dimension: the row `("東京都", "*")` is the
//! total of all `("東京都", …)` rows. Margins need not be present: the checker assumes they
//! are known anyway (implied), because they often are (published elsewhere, or computable
//! from an earlier release).
//!
//! Invariants (checked by [`Table::validate`]): at least one measure; dimension names are
//! distinct; every row has one key per dimension and one cell per measure; top contributions
//! are finite, non-negative, largest first, and (when a total is given) do not exceed the
//! total. Rows are expected to have distinct keys (not checked: the cost would be a second
//! pass over every key).

/// The key that marks a margin (total) in a dimension.
pub const TOTAL: &str = "*";

/// What a measure computes; decides which rules apply to its cells.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MeasureKind {
    /// A count (of persons, or of events such as prescriptions); rounding and the redaction
    /// of small counts apply to its value.
    Count,
    /// A sum of persons' contributions (a magnitude): dominance and p-percent apply; the
    /// cell's value is its total unless [`Cell::total`] says otherwise.
    Sum,
    /// A mean of persons' contributions: dominance and p-percent apply to its underlying sum
    /// ([`Cell::total`]).
    Mean,
    /// Anything else (median, ratio, model coefficient…): only the person and institution
    /// rules apply, and the magnitude rules when contributions are given.
    Other,
}

/// A measure column.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Measure {
    pub name: String,
    pub kind: MeasureKind,
}

impl Measure {
    pub fn new(name: impl Into<String>, kind: MeasureKind) -> Self {
        Measure { name: name.into(), kind }
    }

    pub fn count(name: impl Into<String>) -> Self {
        Self::new(name, MeasureKind::Count)
    }

    pub fn sum(name: impl Into<String>) -> Self {
        Self::new(name, MeasureKind::Sum)
    }

    pub fn mean(name: impl Into<String>) -> Self {
        Self::new(name, MeasureKind::Mean)
    }
}

/// One cell: the value the query output and what the sandbox knows behind it.
#[derive(Debug, Clone, PartialEq)]
pub struct Cell {
    /// The value the researcher's query output (a count, a sum, a mean…).
    pub value: f64,
    /// Distinct persons behind the cell.
    pub persons: u64,
    /// Distinct institutions behind the cell, when they could be identified (NDB's rule);
    /// `None`: not checked.
    pub institutions: Option<u64>,
    /// The largest and second largest contributions of single persons to the magnitude
    /// (`[largest, second]`; the second is 0 for a single contributor).
    pub top: Option<[f64; 2]>,
    /// The total of all contributions (the magnitude). For a [`MeasureKind::Sum`] it defaults
    /// to [`Cell::value`].
    pub total: Option<f64>,
    /// A sample of the persons the cell's aggregate counts, for differencing across outputs
    /// ([`crate::differencing`]); `None`: not known.
    pub sample: Option<CellSample>,
}

/// The persons a cell's aggregate counts and the smallest of their ids (ids drawn from a keyed
/// hash, so the smallest are a uniform sample; all of them when there are no more than the
/// sample holds). Two cells whose samples agree count nearly the same persons.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct CellSample {
    pub persons: u64,
    /// Ascending, distinct.
    pub smallest: Vec<u32>,
}

/// Without the ids: pseudonyms of persons never go to a log or a message, not even a debug one.
impl std::fmt::Debug for CellSample {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CellSample").field("persons", &self.persons).field("ids", &self.smallest.len()).finish()
    }
}

impl Cell {
    /// A cell with a value and its persons, nothing else known.
    pub fn new(value: f64, persons: u64) -> Self {
        Cell { value, persons, institutions: None, top: None, total: None, sample: None }
    }

    /// A count of persons: the value is the number of persons.
    pub fn count(persons: u64) -> Self {
        Self::new(persons as f64, persons)
    }

    pub fn with_institutions(mut self, institutions: u64) -> Self {
        self.institutions = Some(institutions);
        self
    }

    pub fn with_sample(mut self, sample: CellSample) -> Self {
        self.sample = Some(sample);
        self
    }

    /// The two largest single-person contributions and the total of all contributions.
    pub fn with_contributions(mut self, top: [f64; 2], total: f64) -> Self {
        self.top = Some(top);
        self.total = Some(total);
        self
    }

    /// The magnitude the dominance rules compare with: [`Cell::total`], or the value of a sum.
    pub(crate) fn magnitude(&self, kind: MeasureKind) -> Option<f64> {
        self.total.or(if kind == MeasureKind::Sum { Some(self.value) } else { None })
    }
}

/// One row: a key per dimension and a cell per measure.
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    pub keys: Vec<String>,
    pub cells: Vec<Cell>,
    /// The distinct persons behind the row (its group), when known: more than any of its cells
    /// when a cell's aggregate reads only some of the group's rows (`count(*) FILTER (…)`).
    pub persons: Option<u64>,
    /// The distinct institutions behind the row, when known (NDB's rule: a keyed row of fewer
    /// than the rules' minimum is left out, keys and all, since its keys would tell which
    /// institutions treat such patients).
    pub institutions: Option<u64>,
}

impl Row {
    /// Whether the row is a margin (a total over at least one dimension).
    pub fn is_margin(&self) -> bool {
        self.keys.iter().any(|k| k == TOTAL)
    }

    /// The persons behind the row: as given, else the largest of its cells' (a lower bound of
    /// the union).
    pub fn persons(&self) -> u64 {
        let cells = self.cells.iter().map(|c| c.persons).max().unwrap_or(0);
        self.persons.map_or(cells, |p| p.max(cells))
    }
}

/// An aggregate table to check.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Table {
    pub dimensions: Vec<String>,
    pub measures: Vec<Measure>,
    pub rows: Vec<Row>,
}

/// What is wrong with a table's shape. Rows and measures are 0-based indexes; no key or
/// value is quoted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TableError {
    #[error("the table has no measure")]
    NoMeasures,
    #[error("dimension {position} has the same name as an earlier one")]
    DuplicateDimension { position: usize },
    #[error("row {row} has {found} keys, the table has {expected} dimensions")]
    Keys { row: usize, expected: usize, found: usize },
    #[error("row {row} has {found} cells, the table has {expected} measures")]
    Cells { row: usize, expected: usize, found: usize },
    #[error("row {row}, measure {measure}: contributions must be finite, non-negative, largest first and within the total")]
    Contributions { row: usize, measure: usize },
}

impl Table {
    pub fn new<D: Into<String>>(dimensions: impl IntoIterator<Item = D>, measures: Vec<Measure>) -> Self {
        Table { dimensions: dimensions.into_iter().map(Into::into).collect(), measures, rows: Vec::new() }
    }

    /// Appends a row.
    pub fn push<K: Into<String>>(&mut self, keys: impl IntoIterator<Item = K>, cells: Vec<Cell>) {
        self.rows.push(Row { keys: keys.into_iter().map(Into::into).collect(), cells, persons: None, institutions: None });
    }

    /// Appends a row with the persons of its group ([`Row::persons`]).
    pub fn push_with_persons<K: Into<String>>(&mut self, keys: impl IntoIterator<Item = K>, cells: Vec<Cell>, persons: u64) {
        self.push_with_institutions(keys, cells, persons, None);
    }

    /// Appends a row with the persons of its group and, when known, the institutions behind
    /// them ([`Row::institutions`]).
    pub fn push_with_institutions<K: Into<String>>(
        &mut self,
        keys: impl IntoIterator<Item = K>,
        cells: Vec<Cell>,
        persons: u64,
        institutions: Option<u64>,
    ) {
        self.rows.push(Row { keys: keys.into_iter().map(Into::into).collect(), cells, persons: Some(persons), institutions });
    }

    /// Checks the invariants listed in the module documentation.
    pub fn validate(&self) -> Result<(), TableError> {
        self.validate_header()?;
        self.rows.iter().enumerate().try_for_each(|(row, r)| self.validate_row(row, r))
    }

    /// The invariants of the dimensions and measures ([`Table::validate`] without the rows).
    pub(crate) fn validate_header(&self) -> Result<(), TableError> {
        if self.measures.is_empty() {
            return Err(TableError::NoMeasures);
        }
        for (position, name) in self.dimensions.iter().enumerate() {
            if self.dimensions[..position].contains(name) {
                return Err(TableError::DuplicateDimension { position });
            }
        }
        Ok(())
    }

    /// The invariants of row `row`, `r` (checked while the row is read for something else: a
    /// pass over a million rows' cells is a million cache misses).
    pub(crate) fn validate_row(&self, row: usize, r: &Row) -> Result<(), TableError> {
        let (dims, measures) = (self.dimensions.len(), self.measures.len());
        if r.keys.len() != dims {
            return Err(TableError::Keys { row, expected: dims, found: r.keys.len() });
        }
        if r.cells.len() != measures {
            return Err(TableError::Cells { row, expected: measures, found: r.cells.len() });
        }
        match r.cells.iter().position(|cell| !contributions_ok(cell)) {
            Some(measure) => Err(TableError::Contributions { row, measure }),
            None => Ok(()),
        }
    }
}

fn contributions_ok(cell: &Cell) -> bool {
    let total_ok = cell.total.is_none_or(f64::is_finite);
    let Some([first, second]) = cell.top else { return total_ok };
    let ordered = first.is_finite() && second.is_finite() && second >= 0.0 && first >= second;
    // A little slack: totals computed in another order may differ in the last bits.
    let within = cell.total.is_none_or(|t| first + second <= t + 1e-9 * t.abs().max(1.0));
    total_ok && ordered && within
}
