//! Checking a released table: the k, l and t it actually achieves, measured from the table
//! alone (what a recipient or an auditor can verify with nothing but the file), as pycanon
//! measures them.
//!
//! [`check_release`] groups the rows by their quasi-identifier values (bit-packed keys, one
//! pass) and, for each sensitive attribute, builds every class's histogram once (rows sorted
//! by class with a counting sort), from which it reads:
//! - **k**: the smallest class;
//! - **distinct l**: the fewest distinct sensitive values in a class;
//! - **entropy l**: the smallest `exp(H)` of a class's distribution (natural logarithm), so
//!   the table is entropy-l-diverse for every `l` up to it;
//! - **recursive (c,l)**: for a given `l`, the largest `r1 / (r_l + … + r_m)` over classes
//!   (counts sorted decreasingly); the table is recursive-(c,l)-diverse for every `c` above
//!   it (infinite when a class has fewer than `l` values);
//! - **t-closeness**: the largest earth mover's distance between a class's distribution and
//!   the whole released table's, with equal ground distance and, when a hierarchy is given,
//!   hierarchical ground distance.
//!
//! Invariants: pure and deterministic; classes are exactly the distinct combinations of
//! quasi-identifier values (as text); the t reference distribution is the released table's
//! own (a checker cannot see suppressed rows), which is what pycanon computes, while the
//! engine's t-closeness is measured against the input. An empty table has `k = 0` and no
//! class.

use crate::groupify::{Grouper, KeyLayout, PackedKey};
use crate::hierarchy::Hierarchy;
use crate::privacy::{emd_equal, HierarchicalEmd};
use crate::table::{Table, TableError};

/// A sensitive attribute to measure.
#[derive(Debug, Clone, PartialEq)]
pub struct SensitiveSpec {
    /// The column.
    pub column: String,
    /// The `l` of recursive (c,l)-diversity to compute `c` for (none: not computed).
    pub recursive_l: Option<u32>,
    /// A hierarchy of the attribute's values for hierarchical t-closeness (none: not
    /// computed).
    pub hierarchy: Option<Hierarchy>,
}

/// What a released table achieves.
#[derive(Debug, Clone, PartialEq)]
pub struct ReleaseProperties {
    pub records: u64,
    pub classes: u64,
    /// The smallest class (0 for an empty table).
    pub k: u32,
    pub sensitive: Vec<SensitiveProperties>,
}

/// What a released table achieves for one sensitive attribute.
#[derive(Debug, Clone, PartialEq)]
pub struct SensitiveProperties {
    pub column: String,
    /// The fewest distinct values in a class.
    pub distinct_l: u32,
    /// The smallest `exp(entropy)` of a class.
    pub entropy_l: f64,
    /// For the requested `l`: the largest `r1 / (r_l + … + r_m)` over classes.
    pub recursive_c: Option<(u32, f64)>,
    /// The largest equal-distance EMD to the table's distribution.
    pub t_equal: f64,
    /// The largest hierarchical-distance EMD, when a hierarchy was given.
    pub t_hierarchical: Option<f64>,
}

/// Why a table cannot be checked.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum CheckError {
    #[error(transparent)]
    Table(#[from] TableError),
    #[error("{column:?}: the value in data row {row} is not in the hierarchy given for it")]
    NotInHierarchy { column: String, row: usize },
    #[error("recursive (c,l)-diversity of {0:?} needs l >= 1")]
    RecursiveL(String),
}

/// Measures k, l and t of `table` with the given quasi-identifier and sensitive columns.
pub fn check_release(table: &Table, quasi_identifiers: &[&str], sensitive: &[SensitiveSpec]) -> Result<ReleaseProperties, CheckError> {
    let qi: Vec<usize> = quasi_identifiers.iter().map(|q| table.column_index(q)).collect::<Result<_, _>>()?;
    let layout = KeyLayout::new(&qi.iter().map(|&c| table.column_at(c).dictionary().len()).collect::<Vec<_>>());
    let (record_class, counts) = if layout.total_bits <= 64 {
        group::<u64>(table, &qi, &layout)
    } else if layout.total_bits <= 128 {
        group::<u128>(table, &qi, &layout)
    } else {
        group_wide(table, &qi)
    };
    let classes = counts.len();
    // Rows sorted by class (counting sort).
    let mut offsets = vec![0u32; classes + 1];
    for &c in &record_class {
        offsets[c as usize + 1] += 1;
    }
    for c in 0..classes {
        offsets[c + 1] += offsets[c];
    }
    let mut order = vec![0u32; record_class.len()];
    let mut next = offsets[..classes].to_vec();
    for (r, &c) in record_class.iter().enumerate() {
        order[next[c as usize] as usize] = r as u32;
        next[c as usize] += 1;
    }
    let n = table.num_rows();
    let mut out = Vec::new();
    for spec in sensitive {
        let column = table.column(&spec.column)?;
        let codes = column.codes();
        let freq = column.frequencies();
        let global: Vec<f64> = freq.iter().map(|&f| f as f64 / n.max(1) as f64).collect();
        let mut hierarchical = match &spec.hierarchy {
            None => None,
            Some(h) => {
                let mut leaf_of_code = Vec::with_capacity(column.dictionary().len());
                let mut share = vec![0.0; h.domain_size()];
                for (code, value) in column.dictionary().iter().enumerate() {
                    let leaf =
                        h.leaf(value).ok_or_else(|| CheckError::NotInHierarchy { column: spec.column.clone(), row: column.first_row_of(code) })?;
                    share[leaf as usize] += global[code];
                    leaf_of_code.push(leaf);
                }
                Some((leaf_of_code, HierarchicalEmd::new(h, &share)))
            }
        };
        if spec.recursive_l == Some(0) {
            return Err(CheckError::RecursiveL(spec.column.clone()));
        }
        let mut p = SensitiveProperties {
            column: spec.column.clone(),
            distinct_l: if classes == 0 { 0 } else { u32::MAX },
            entropy_l: if classes == 0 { 0.0 } else { f64::INFINITY },
            recursive_c: spec.recursive_l.map(|l| (l, 0.0)),
            t_equal: 0.0,
            t_hierarchical: hierarchical.as_ref().map(|_| 0.0),
        };
        let mut hist = vec![0u32; column.dictionary().len()];
        let mut touched: Vec<u32> = Vec::new();
        let mut pairs: Vec<(u32, u32)> = Vec::new();
        let mut values: Vec<u32> = Vec::new();
        let mut leaves: Vec<(u32, u32)> = Vec::new();
        for c in 0..classes {
            for &r in &order[offsets[c] as usize..offsets[c + 1] as usize] {
                let v = codes[r as usize];
                if hist[v as usize] == 0 {
                    touched.push(v);
                }
                hist[v as usize] += 1;
            }
            pairs.clear();
            pairs.extend(touched.iter().map(|&v| (v, hist[v as usize])));
            for &v in &touched {
                hist[v as usize] = 0;
            }
            touched.clear();
            let size = counts[c];
            p.distinct_l = p.distinct_l.min(pairs.len() as u32);
            let total = size as f64;
            let sum: f64 = pairs.iter().map(|&(_, k)| k as f64 * (k as f64).ln()).sum();
            p.entropy_l = p.entropy_l.min((total.ln() - sum / total).exp());
            if let Some((l, worst)) = &mut p.recursive_c {
                values.clear();
                values.extend(pairs.iter().map(|p| p.1));
                values.sort_unstable_by(|a, b| b.cmp(a));
                let l = *l as usize;
                let ratio = if values.len() < l { f64::INFINITY } else { values[0] as f64 / values[l - 1..].iter().map(|&x| x as f64).sum::<f64>() };
                *worst = worst.max(ratio);
            }
            p.t_equal = p.t_equal.max(emd_equal(&pairs, size, &global));
            if let (Some((leaf_of_code, emd)), Some(t)) = (&mut hierarchical, &mut p.t_hierarchical) {
                leaves.clear();
                leaves.extend(pairs.iter().map(|&(v, k)| (leaf_of_code[v as usize], k)));
                *t = t.max(emd.distance(&leaves, size));
            }
        }
        out.push(p);
    }
    Ok(ReleaseProperties { records: n as u64, classes: classes as u64, k: counts.iter().copied().min().unwrap_or(0), sensitive: out })
}

/// Class of each row and class sizes, with packed keys.
fn group<K: PackedKey>(table: &Table, qi: &[usize], layout: &KeyLayout) -> (Vec<u32>, Vec<u32>) {
    let n = table.num_rows();
    let columns: Vec<&[u32]> = qi.iter().map(|&c| table.column_at(c).codes()).collect();
    let mut grouper = Grouper::<K>::default();
    grouper.begin(n);
    let mut record_class = Vec::with_capacity(n);
    for r in 0..n {
        let mut key = K::default();
        for (i, codes) in columns.iter().enumerate() {
            key = key.or(K::field_value(codes[r], layout.shifts[i]));
        }
        record_class.push(grouper.add(key, 1));
    }
    (record_class, grouper.counts)
}

/// Class of each row and class sizes, for keys wider than 128 bits.
fn group_wide(table: &Table, qi: &[usize]) -> (Vec<u32>, Vec<u32>) {
    let mut ids: std::collections::HashMap<Vec<u32>, u32> = std::collections::HashMap::new();
    let mut counts = Vec::new();
    let record_class = (0..table.num_rows())
        .map(|r| {
            let key: Vec<u32> = qi.iter().map(|&c| table.column_at(c).codes()[r]).collect();
            let id = *ids.entry(key).or_insert_with(|| {
                counts.push(0);
                counts.len() as u32 - 1
            });
            counts[id as usize] += 1;
            id
        })
        .collect();
    (record_class, counts)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table(rows: &[[&str; 3]]) -> Table {
        Table::from_rows(&["a", "b", "s"], rows.iter()).unwrap()
    }

    fn spec(recursive_l: Option<u32>, hierarchy: Option<&str>) -> SensitiveSpec {
        SensitiveSpec { column: "s".into(), recursive_l, hierarchy: hierarchy.map(|h| Hierarchy::parse(h, ';').unwrap()) }
    }

    #[test]
    fn measures_k_l_and_t() {
        // Classes (x,1): s = p,p,q ; (y,1): s = q,r.
        let t = table(&[["x", "1", "p"], ["x", "1", "p"], ["y", "1", "q"], ["x", "1", "q"], ["y", "1", "r"]]);
        let got = check_release(&t, &["a", "b"], &[spec(Some(2), Some("p;A;*\nq;A;*\nr;B;*\n"))]).unwrap();
        assert_eq!((got.records, got.classes, got.k), (5, 2, 2));
        let s = &got.sensitive[0];
        assert_eq!(s.distinct_l, 2);
        // exp(H) of (2/3, 1/3) is below exp(ln 2) = 2 of (1/2, 1/2).
        let h = -(2.0 / 3.0 * (2.0f64 / 3.0).ln() + 1.0 / 3.0 * (1.0f64 / 3.0).ln());
        assert!((s.entropy_l - h.exp()).abs() < 1e-12);
        // r1 / r2: 2/1 for (x,1), 1/1 for (y,1).
        assert_eq!(s.recursive_c, Some((2, 2.0)));
        // Global (p .4, q .4, r .2). (x,1) = (2/3, 1/3, 0): EMD = (0.2667 + 0.0667 + 0.2) / 2.
        // (y,1) = (0, .5, .5): EMD = (0.4 + 0.1 + 0.3) / 2 = 0.4.
        assert!((s.t_equal - 0.4).abs() < 1e-12, "{}", s.t_equal);
        // Hierarchical: (y,1) moves 0.3 from r (B) into A across the root (cost 1) and
        // 0.1 within A (cost 1/2): 0.35.
        assert!((s.t_hierarchical.unwrap() - 0.35).abs() < 1e-12, "{:?}", s.t_hierarchical);
    }

    #[test]
    fn edge_cases() {
        let empty = table(&[]);
        let got = check_release(&empty, &["a"], &[spec(None, None)]).unwrap();
        assert_eq!((got.k, got.classes, got.sensitive[0].distinct_l), (0, 0, 0));
        let one = table(&[["x", "1", "p"], ["x", "1", "p"]]);
        let got = check_release(&one, &["a", "b"], &[spec(Some(2), None)]).unwrap();
        assert_eq!(got.sensitive[0].recursive_c, Some((2, f64::INFINITY)));
        assert!((got.sensitive[0].entropy_l - 1.0).abs() < 1e-12);
        assert_eq!(check_release(&one, &["zz"], &[]), Err(CheckError::Table(TableError::UnknownColumn("zz".into()))));
        let err = check_release(&one, &["a"], &[spec(None, Some("q;*\n"))]).unwrap_err();
        // The error points at the row and never quotes the cell.
        assert!(err.to_string().contains("\"s\": the value in data row 1"), "{err}");
        assert!(!err.to_string().contains("\"p\""), "{err}");
    }
}
