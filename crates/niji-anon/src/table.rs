//! The data model: a table of categorical columns, each dictionary-encoded to `u32` codes.
//!
//! Every value is kept as text (numbers and dates too: the engine generalizes them through
//! hierarchies, it never computes with them). A column stores each distinct value once in its
//! dictionary and one `u32` code per row, so grouping rows compares integers, not strings.
//!
//! Invariants: all columns have the same number of rows; every code indexes its column's
//! dictionary; dictionary entries are distinct and appear in order of first occurrence (so the
//! same input always gives the same codes); column names are distinct.

use std::collections::HashMap;

/// A dictionary-encoded column.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Column {
    name: String,
    dictionary: Vec<String>,
    codes: Vec<u32>,
}

/// A table of dictionary-encoded columns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Table {
    columns: Vec<Column>,
    rows: usize,
}

/// Builds a [`Table`] row by row.
#[derive(Debug)]
pub struct TableBuilder {
    columns: Vec<Column>,
    lookup: Vec<HashMap<String, u32>>,
    rows: usize,
}

/// What is wrong with a table's shape.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TableError {
    #[error("row {row} has {found} values, the header has {expected}")]
    Ragged { row: usize, expected: usize, found: usize },
    #[error("column {0:?} appears twice in the header")]
    DuplicateColumn(String),
    #[error("no column named {0:?}")]
    UnknownColumn(String),
    #[error("a column has {found} rows, the table has {expected}")]
    Length { expected: usize, found: usize },
}

impl Column {
    /// Encodes a column from its values.
    pub fn from_values<S: AsRef<str>>(name: impl Into<String>, values: impl IntoIterator<Item = S>) -> Self {
        let mut lookup = HashMap::new();
        let mut column = Column { name: name.into(), dictionary: Vec::new(), codes: Vec::new() };
        for value in values {
            column.push(&mut lookup, value.as_ref());
        }
        column
    }

    /// The column's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Distinct values in order of first occurrence; a code indexes this slice.
    pub fn dictionary(&self) -> &[String] {
        &self.dictionary
    }

    /// One code per row.
    /// The first data row (1-based) holding dictionary entry `code`: how errors point at a
    /// value without quoting it.
    pub fn first_row_of(&self, code: usize) -> usize {
        self.codes().iter().position(|&c| c as usize == code).map_or(0, |r| r + 1)
    }

    pub fn codes(&self) -> &[u32] {
        &self.codes
    }

    /// The value of one row.
    pub fn value(&self, row: usize) -> &str {
        &self.dictionary[self.codes[row] as usize]
    }

    /// Number of rows.
    pub fn len(&self) -> usize {
        self.codes.len()
    }

    /// Whether the column has no rows.
    pub fn is_empty(&self) -> bool {
        self.codes.is_empty()
    }

    /// Occurrences of each dictionary entry, indexed by code.
    pub fn frequencies(&self) -> Vec<u32> {
        let mut counts = vec![0u32; self.dictionary.len()];
        for &code in &self.codes {
            counts[code as usize] += 1;
        }
        counts
    }

    /// A copy with a new name.
    pub fn renamed(&self, name: impl Into<String>) -> Column {
        Column { name: name.into(), ..self.clone() }
    }

    /// A column whose value in each row is `f(old value)`; equal old values map to equal new
    /// values, so the work is per distinct value, not per row.
    pub fn map_values(&self, mut f: impl FnMut(&str) -> String) -> Column {
        let mapped: Vec<String> = self.dictionary.iter().map(|v| f(v)).collect();
        let mut lookup = HashMap::new();
        let mut dictionary = Vec::new();
        let recode: Vec<u32> = mapped
            .into_iter()
            .map(|v| {
                *lookup.entry(v.clone()).or_insert_with(|| {
                    dictionary.push(v);
                    (dictionary.len() - 1) as u32
                })
            })
            .collect();
        let mut out = Column { name: self.name.clone(), dictionary: Vec::new(), codes: Vec::with_capacity(self.len()) };
        // Re-encode in order of first occurrence so the invariant holds after the merge.
        let mut order = vec![u32::MAX; dictionary.len()];
        for &code in &self.codes {
            let merged = recode[code as usize] as usize;
            if order[merged] == u32::MAX {
                order[merged] = out.dictionary.len() as u32;
                out.dictionary.push(dictionary[merged].clone());
            }
            out.codes.push(order[merged]);
        }
        out
    }

    /// A column with only the rows for which `keep` is true.
    pub fn filter_rows(&self, keep: &[bool]) -> Column {
        Column::from_values(self.name.clone(), (0..self.len()).filter(|&r| keep[r]).map(|r| self.value(r)))
    }

    fn push(&mut self, lookup: &mut HashMap<String, u32>, value: &str) {
        let code = match lookup.get(value) {
            Some(&code) => code,
            None => {
                let code = self.dictionary.len() as u32;
                self.dictionary.push(value.to_owned());
                lookup.insert(value.to_owned(), code);
                code
            }
        };
        self.codes.push(code);
    }
}

impl Table {
    /// Encodes a table from a header and rows of text values.
    pub fn from_rows<H, R, S>(header: &[H], rows: impl IntoIterator<Item = R>) -> Result<Table, TableError>
    where
        H: AsRef<str>,
        R: AsRef<[S]>,
        S: AsRef<str>,
    {
        let mut builder = TableBuilder::new(header)?;
        for row in rows {
            let row = row.as_ref();
            let values: Vec<&str> = row.iter().map(|s| s.as_ref()).collect();
            builder.push_row(&values)?;
        }
        Ok(builder.finish())
    }

    /// Assembles a table from columns of equal length.
    pub fn from_columns(columns: Vec<Column>) -> Result<Table, TableError> {
        let rows = columns.first().map_or(0, Column::len);
        let mut seen = std::collections::HashSet::new();
        for column in &columns {
            if column.len() != rows {
                return Err(TableError::Length { expected: rows, found: column.len() });
            }
            if !seen.insert(column.name.as_str()) {
                return Err(TableError::DuplicateColumn(column.name.clone()));
            }
        }
        Ok(Table { columns, rows })
    }

    /// Number of rows.
    pub fn num_rows(&self) -> usize {
        self.rows
    }

    /// Number of columns.
    pub fn num_columns(&self) -> usize {
        self.columns.len()
    }

    /// Column names in order.
    pub fn header(&self) -> Vec<&str> {
        self.columns.iter().map(|c| c.name.as_str()).collect()
    }

    /// All columns in order.
    pub fn columns(&self) -> &[Column] {
        &self.columns
    }

    /// The column at `index`.
    pub fn column_at(&self, index: usize) -> &Column {
        &self.columns[index]
    }

    /// The position of a column by name.
    pub fn column_index(&self, name: &str) -> Result<usize, TableError> {
        self.columns.iter().position(|c| c.name == name).ok_or_else(|| TableError::UnknownColumn(name.to_owned()))
    }

    /// A column by name.
    pub fn column(&self, name: &str) -> Result<&Column, TableError> {
        Ok(&self.columns[self.column_index(name)?])
    }

    /// One row's values, in column order.
    pub fn row(&self, row: usize) -> Vec<&str> {
        self.columns.iter().map(|c| c.value(row)).collect()
    }
}

impl TableBuilder {
    /// Starts a table with the given column names.
    pub fn new<H: AsRef<str>>(header: &[H]) -> Result<Self, TableError> {
        let mut columns = Vec::with_capacity(header.len());
        let mut seen = std::collections::HashSet::new();
        for name in header {
            let name = name.as_ref();
            if !seen.insert(name.to_owned()) {
                return Err(TableError::DuplicateColumn(name.to_owned()));
            }
            columns.push(Column { name: name.to_owned(), dictionary: Vec::new(), codes: Vec::new() });
        }
        let lookup = vec![HashMap::new(); columns.len()];
        Ok(TableBuilder { columns, lookup, rows: 0 })
    }

    /// Appends one row; rows are numbered from 1 in errors.
    pub fn push_row(&mut self, values: &[&str]) -> Result<(), TableError> {
        if values.len() != self.columns.len() {
            return Err(TableError::Ragged { row: self.rows + 1, expected: self.columns.len(), found: values.len() });
        }
        for ((column, lookup), value) in self.columns.iter_mut().zip(&mut self.lookup).zip(values) {
            column.push(lookup, value);
        }
        self.rows += 1;
        Ok(())
    }

    /// The finished table.
    pub fn finish(self) -> Table {
        Table { columns: self.columns, rows: self.rows }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodes_in_order_of_first_occurrence() {
        let t = Table::from_rows(&["a", "b"], [["x", "1"], ["y", "1"], ["x", "2"]]).unwrap();
        assert_eq!(t.column("a").unwrap().dictionary(), ["x", "y"]);
        assert_eq!(t.column("a").unwrap().codes(), [0, 1, 0]);
        assert_eq!(t.column("b").unwrap().frequencies(), [2, 1]);
        assert_eq!(t.row(2), ["x", "2"]);
    }

    #[test]
    fn rejects_ragged_rows_and_duplicate_names() {
        let ragged = Table::from_rows(&["a", "b"], [vec!["x", "1"], vec!["y"]]);
        assert_eq!(ragged, Err(TableError::Ragged { row: 2, expected: 2, found: 1 }));
        let dup = Table::from_rows(&["a", "a"], Vec::<Vec<&str>>::new());
        assert_eq!(dup, Err(TableError::DuplicateColumn("a".into())));
    }

    #[test]
    fn map_values_merges_equal_results() {
        let c = Column::from_values("n", ["3", "10", "4", "10"]);
        let m = c.map_values(|v| if v.len() > 1 { "9+".into() } else { v.into() });
        assert_eq!(m.dictionary(), ["3", "9+", "4"]);
        assert_eq!(m.codes(), [0, 1, 2, 1]);
    }
}
