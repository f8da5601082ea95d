//! Generalization hierarchies: for each original value, its label at every level.
//!
//! Level 0 is the original value, each next level is coarser, and the last level holds a single
//! value for every row (conventionally `*`, meaning "suppressed"). The text format is the one
//! ARX uses and `../shared/datasets/adult/adult_hierarchy_*.csv` holds: one row per original
//! value, levels separated by `;` (or another separator), no header:
//!
//! ```text
//! Bachelors;Undergraduate;Higher education;*
//! Masters;Graduate;Higher education;*
//! ```
//!
//! Invariants of a [`Hierarchy`] (checked by [`Hierarchy::from_rows`] and [`Hierarchy::parse`]):
//! every row has the same number of levels (at least two); no value is empty; an original value
//! appears once; the hierarchy is a tree (a label at level `l` always has the same label at level
//! `l + 1`); the last level holds one value. Labels are numbered per level in order of first
//! appearance. The *domain* of a hierarchy is its set of original values (its rows), which is
//! what ARX's Loss metric measures shares against.

use std::collections::HashMap;

/// A validated generalization hierarchy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hierarchy {
    /// `labels[level][id]`: the distinct labels of each level.
    labels: Vec<Vec<String>>,
    /// `map[level][leaf]`: label id at `level` of original value `leaf` (`map[0][leaf] == leaf`).
    map: Vec<Vec<u32>>,
    /// `leaves[level][id]`: how many original values generalize to label `id` at `level`.
    leaves: Vec<Vec<u32>>,
    /// Original value to leaf index.
    index: HashMap<String, u32>,
}

/// Where a hierarchy's text or rows are wrong: 1-based line (row) and column (level + 1).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("hierarchy line {line}, column {column}: {kind}")]
pub struct HierarchyError {
    pub line: usize,
    pub column: usize,
    pub kind: HierarchyErrorKind,
}

/// The kinds of [`HierarchyError`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HierarchyErrorKind {
    #[error("the hierarchy has no rows")]
    Empty,
    #[error("a hierarchy needs at least two levels (the value and its top, e.g. `*`)")]
    TooFewLevels,
    #[error("row has {found} levels, the first row has {expected}")]
    Ragged { expected: usize, found: usize },
    #[error("empty value")]
    EmptyValue,
    #[error("value {value:?} already has a row (line {first_line})")]
    DuplicateValue { value: String, first_line: usize },
    #[error("{label:?} generalizes to {found:?} here but to {expected:?} on line {first_line}")]
    Inconsistent { label: String, expected: String, found: String, first_line: usize },
    #[error("the last level must hold one value for every row: {found:?} here, {expected:?} on line 1")]
    MultipleRoots { expected: String, found: String },
}

impl Hierarchy {
    /// Parses the text format (one row per original value, `separator` between levels).
    /// Empty lines are skipped; line numbers in errors count every line of `text`.
    pub fn parse(text: &str, separator: char) -> Result<Hierarchy, HierarchyError> {
        let mut rows = Vec::new();
        let mut lines = Vec::new();
        for (i, line) in text.lines().enumerate() {
            let line = line.strip_suffix('\r').unwrap_or(line);
            if line.trim().is_empty() {
                continue;
            }
            rows.push(line.split(separator).map(str::to_owned).collect::<Vec<_>>());
            lines.push(i + 1);
        }
        Self::build(rows, &lines)
    }

    /// Builds a hierarchy from rows (row `i` is reported as line `i + 1`).
    pub fn from_rows(rows: Vec<Vec<String>>) -> Result<Hierarchy, HierarchyError> {
        let lines: Vec<usize> = (1..=rows.len()).collect();
        Self::build(rows, &lines)
    }

    /// Number of levels, the original values included (Adult's `age` has 5: `39`, `35-39`,
    /// `30-39`, `20-39`, `*`). The top level index is `levels() - 1`.
    pub fn levels(&self) -> usize {
        self.labels.len()
    }

    /// Number of original values (rows): the domain size ARX's Loss metric uses.
    pub fn domain_size(&self) -> usize {
        self.map[0].len()
    }

    /// The original values in row order.
    pub fn values(&self) -> &[String] {
        &self.labels[0]
    }

    /// The leaf index of an original value.
    pub fn leaf(&self, value: &str) -> Option<u32> {
        self.index.get(value).copied()
    }

    /// Number of distinct labels at `level`.
    pub fn cardinality(&self, level: usize) -> usize {
        self.labels[level].len()
    }

    /// Label id at `level` of the leaf `leaf`.
    pub fn label_id(&self, leaf: u32, level: usize) -> u32 {
        self.map[level][leaf as usize]
    }

    /// The text of label `id` at `level`.
    pub fn label(&self, level: usize, id: u32) -> &str {
        &self.labels[level][id as usize]
    }

    /// The generalization of an original value at `level`, if the value is in the domain.
    pub fn generalize(&self, value: &str, level: usize) -> Option<&str> {
        self.leaf(value).map(|leaf| self.label(level, self.label_id(leaf, level)))
    }

    /// How many original values generalize to label `id` at `level`.
    pub fn leaves_under(&self, level: usize, id: u32) -> u32 {
        self.leaves[level][id as usize]
    }

    /// The table `leaf -> label id` at `level`.
    pub fn level_map(&self, level: usize) -> &[u32] {
        &self.map[level]
    }

    /// The label at the top level (e.g. `*`).
    pub fn root(&self) -> &str {
        &self.labels[self.levels() - 1][0]
    }

    /// The rows of the hierarchy, as they would be written in the text format.
    pub fn rows(&self) -> Vec<Vec<&str>> {
        (0..self.domain_size() as u32).map(|leaf| (0..self.levels()).map(|l| self.label(l, self.label_id(leaf, l))).collect()).collect()
    }

    /// Writes the text format with `separator` (the inverse of [`Hierarchy::parse`]).
    pub fn to_text(&self, separator: char) -> String {
        let mut out = String::new();
        for row in self.rows() {
            out.push_str(&row.join(&separator.to_string()));
            out.push('\n');
        }
        out
    }

    fn build(rows: Vec<Vec<String>>, lines: &[usize]) -> Result<Hierarchy, HierarchyError> {
        let err = |i: usize, column: usize, kind| HierarchyError { line: lines.get(i).copied().unwrap_or(1), column, kind };
        let Some(first) = rows.first() else {
            return Err(err(0, 1, HierarchyErrorKind::Empty));
        };
        let levels = first.len();
        if levels < 2 {
            return Err(err(0, levels + 1, HierarchyErrorKind::TooFewLevels));
        }
        let mut labels: Vec<Vec<String>> = vec![Vec::new(); levels];
        let mut ids: Vec<HashMap<String, u32>> = vec![HashMap::new(); levels];
        let mut map: Vec<Vec<u32>> = vec![Vec::with_capacity(rows.len()); levels];
        // parent[level][id] = (label id at level + 1, row index that fixed it)
        let mut parent: Vec<Vec<(u32, usize)>> = vec![Vec::new(); levels];
        let mut first_row: Vec<usize> = Vec::new();
        for (i, row) in rows.iter().enumerate() {
            if row.len() != levels {
                let column = row.len().min(levels) + 1;
                return Err(err(i, column, HierarchyErrorKind::Ragged { expected: levels, found: row.len() }));
            }
            if let Some(col) = row.iter().position(|v| v.trim().is_empty()) {
                return Err(err(i, col + 1, HierarchyErrorKind::EmptyValue));
            }
            if let Some(&leaf) = ids[0].get(&row[0]) {
                let first_line = lines[first_row[leaf as usize]];
                return Err(err(i, 1, HierarchyErrorKind::DuplicateValue { value: row[0].clone(), first_line }));
            }
            if row[levels - 1] != first[levels - 1] {
                return Err(err(
                    i,
                    levels,
                    HierarchyErrorKind::MultipleRoots { expected: first[levels - 1].clone(), found: row[levels - 1].clone() },
                ));
            }
            let mut row_ids = Vec::with_capacity(levels);
            for (level, value) in row.iter().enumerate() {
                let id = match ids[level].get(value) {
                    Some(&id) => id,
                    None => {
                        let id = labels[level].len() as u32;
                        labels[level].push(value.clone());
                        ids[level].insert(value.clone(), id);
                        parent[level].push((u32::MAX, i));
                        id
                    }
                };
                row_ids.push(id);
            }
            first_row.push(i);
            for level in 0..levels - 1 {
                let (id, up) = (row_ids[level] as usize, row_ids[level + 1]);
                let (known, fixed_by) = parent[level][id];
                if known == u32::MAX {
                    parent[level][id] = (up, i);
                } else if known != up {
                    return Err(err(
                        i,
                        level + 2,
                        HierarchyErrorKind::Inconsistent {
                            label: row[level].clone(),
                            expected: labels[level + 1][known as usize].clone(),
                            found: row[level + 1].clone(),
                            first_line: lines[fixed_by],
                        },
                    ));
                }
            }
            for (level, id) in row_ids.into_iter().enumerate() {
                map[level].push(id);
            }
        }
        let mut leaves: Vec<Vec<u32>> = labels.iter().map(|l| vec![0u32; l.len()]).collect();
        for level in 0..levels {
            for &id in &map[level] {
                leaves[level][id as usize] += 1;
            }
        }
        Ok(Hierarchy { labels, map, leaves, index: ids.swap_remove(0) })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(text: &str, expected: Result<(usize, usize), (usize, usize, &str)>) {
        match (Hierarchy::parse(text, ';'), expected) {
            (Ok(h), Ok((levels, domain))) => {
                assert_eq!((h.levels(), h.domain_size()), (levels, domain), "{text}");
                assert_eq!(Hierarchy::parse(&h.to_text(';'), ';').unwrap(), h);
            }
            (Err(e), Err((line, column, message))) => {
                assert_eq!((e.line, e.column), (line, column), "{e}");
                assert!(e.to_string().contains(message), "{e} should contain {message}");
            }
            (got, want) => panic!("{text:?}: got {got:?}, want {want:?}"),
        }
    }

    #[test]
    fn parses_and_validates() {
        check("a;x;*\nb;x;*\nc;y;*\n", Ok((3, 3)));
        check("a;x;*\r\n\r\nb;y;*\r\n", Ok((3, 2)));
        check("", Err((1, 1, "no rows")));
        check("a\nb\n", Err((1, 2, "at least two levels")));
        check("a;x;*\nb;x\n", Err((2, 3, "2 levels, the first row has 3")));
        check("a;x;*\nb;x;*;+\n", Err((2, 4, "4 levels")));
        check("a;x;*\nb;;*\n", Err((2, 2, "empty value")));
        check("a;x;*\n\na;y;*\n", Err((3, 1, "already has a row (line 1)")));
        check("a;x;p;*\nb;x;q;*\n", Err((2, 3, "\"x\" generalizes to \"q\" here but to \"p\" on line 1")));
        check("a;x;*\nb;y;ALL\n", Err((2, 3, "one value for every row")));
    }

    #[test]
    fn answers_shares_and_labels() {
        let h = Hierarchy::parse("a;x;*\nb;x;*\nc;y;*\n", ';').unwrap();
        assert_eq!(h.generalize("b", 1), Some("x"));
        assert_eq!(h.generalize("c", 2), Some("*"));
        assert_eq!(h.generalize("d", 1), None);
        assert_eq!(h.leaves_under(1, h.label_id(0, 1)), 2);
        assert_eq!(h.leaves_under(2, 0), 3);
        assert_eq!(h.cardinality(1), 2);
        assert_eq!(h.root(), "*");
    }
}
