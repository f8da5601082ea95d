//! Privacy models: k-anonymity, l-diversity (distinct, entropy, recursive-(c,l)) and
//! t-closeness (equal and hierarchical ground distance), checked class by class.
//!
//! A node of the lattice satisfies the models when the records of the classes that fail any
//! model (too small, not diverse, not close) number at most the suppression limit; those
//! records are suppressed. This is ARX's semantics.
//!
//! Monotonicity (what the search may infer from one node about others):
//! - Without suppression every model here is monotonic under generalization: merging classes
//!   that all satisfy a model gives a class that satisfies it (k and distinct-l trivially,
//!   entropy-l by concavity of entropy, recursive-(c,l) as shown by Machanavajjhala et al.,
//!   t-closeness because the earth mover's distance is convex in the class distribution).
//! - With suppression only models for which "a class merged with a satisfying class
//!   satisfies" stay monotonic: k-anonymity and distinct-l-diversity. Then the records of
//!   failing classes can only shrink as nodes generalize. Entropy-l, recursive-(c,l) and
//!   t-closeness are not: a satisfying class merged with a failing one may fail, so the
//!   suppressed records can grow. For them the search uses only k-anonymity (a necessary
//!   condition, monotonic) for inference and checks each remaining node directly.
//!
//! Invariants: distributions for t-closeness are taken against the whole input (suppressed
//! records included); a class with fewer than `l` distinct sensitive values never passes
//! l-diversity.

use crate::hierarchy::Hierarchy;

/// The privacy models to satisfy.
#[derive(Debug, Clone, PartialEq)]
pub struct PrivacyModel {
    /// Every released class must hold at least `k` records (1 disables the model).
    pub k: u32,
    /// l-diversity requirements, one per sensitive attribute named.
    pub l_diversity: Vec<LDiversity>,
    /// t-closeness requirements, one per sensitive attribute named.
    pub t_closeness: Vec<TCloseness>,
}

/// l-diversity of one sensitive attribute.
#[derive(Debug, Clone, PartialEq)]
pub struct LDiversity {
    /// The sensitive attribute (column name).
    pub attribute: String,
    pub variant: LDiversityVariant,
}

/// The flavours of l-diversity.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum LDiversityVariant {
    /// At least `l` distinct values in every class.
    Distinct { l: u32 },
    /// The entropy of every class's distribution is at least `ln(l)`.
    Entropy { l: f64 },
    /// With the value counts of a class sorted `r1 >= r2 >= … >= rm`: `m >= l` and
    /// `r1 < c · (r_l + … + r_m)`.
    Recursive { c: f64, l: u32 },
}

/// t-closeness of one sensitive attribute.
#[derive(Debug, Clone, PartialEq)]
pub struct TCloseness {
    /// The sensitive attribute (column name).
    pub attribute: String,
    /// The largest distance allowed between a class's distribution and the whole input's.
    pub t: f64,
    pub distance: GroundDistance,
}

/// The ground distance of the earth mover's distance.
#[derive(Debug, Clone, PartialEq)]
pub enum GroundDistance {
    /// All values are at distance 1: EMD is half the L1 distance.
    Equal,
    /// Values are as far apart as their lowest common ancestor in the hierarchy is high
    /// (Li, Li and Venkatasubramanian, 2007).
    Hierarchical(Hierarchy),
}

impl Default for PrivacyModel {
    fn default() -> Self {
        PrivacyModel { k: 1, l_diversity: Vec::new(), t_closeness: Vec::new() }
    }
}

impl PrivacyModel {
    /// k-anonymity alone.
    pub fn k_anonymity(k: u32) -> Self {
        PrivacyModel { k, ..Default::default() }
    }

    /// Whether "at most the suppression limit of records fail" is monotonic under
    /// generalization for these models (see the module documentation).
    pub fn is_monotonic(&self, suppression_allowed: bool) -> bool {
        if !suppression_allowed {
            return true;
        }
        self.t_closeness.is_empty() && self.l_diversity.iter().all(|l| matches!(l.variant, LDiversityVariant::Distinct { .. }))
    }
}

/// Checks one class's distribution (`counts` of its distinct values, in any order) against an
/// l-diversity variant.
pub fn l_diverse(variant: LDiversityVariant, counts: &mut [u32]) -> bool {
    match variant {
        LDiversityVariant::Distinct { l } => counts.len() >= l as usize,
        LDiversityVariant::Entropy { l } => {
            let total: f64 = counts.iter().map(|&c| c as f64).sum();
            if total == 0.0 {
                return false;
            }
            let sum: f64 = counts.iter().map(|&c| (c as f64) * (c as f64).ln()).sum();
            let entropy = total.ln() - sum / total;
            entropy >= l.ln() - 1e-12
        }
        LDiversityVariant::Recursive { c, l } => {
            let l = l as usize;
            if counts.len() < l || l == 0 {
                return l == 0;
            }
            counts.sort_unstable_by(|a, b| b.cmp(a));
            let tail: f64 = counts[l - 1..].iter().map(|&c| c as f64).sum();
            (counts[0] as f64) < c * tail
        }
    }
}

/// Equal-distance EMD between a class distribution and the global one. `touched` lists the
/// values present in the class with their counts; `global[v]` is the global share of `v`.
pub fn emd_equal(touched: &[(u32, u32)], class_size: u32, global: &[f64]) -> f64 {
    let n = class_size as f64;
    let mut abs = 0.0;
    let mut q_touched = 0.0;
    for &(v, c) in touched {
        let q = global[v as usize];
        abs += (c as f64 / n - q).abs();
        q_touched += q;
    }
    0.5 * (abs + (1.0 - q_touched).max(0.0))
}

/// Precomputed data for hierarchical-distance EMD of one sensitive attribute.
#[derive(Debug, Clone)]
pub struct HierarchicalEmd {
    /// `up[level][label]`: the parent label at `level + 1`.
    up: Vec<Vec<u32>>,
    /// `q[level][label]`: the global share under each label.
    q: Vec<Vec<f64>>,
    /// Scratch: `extra[level][label]` for labels touched by the current class.
    extra: Vec<Vec<f64>>,
    pos: Vec<Vec<f64>>,
    neg_touched: Vec<Vec<f64>>,
    q_touched: Vec<Vec<f64>>,
    touched: Vec<Vec<u32>>,
    seen: Vec<Vec<bool>>,
}

impl HierarchicalEmd {
    /// Prepares for a hierarchy and the global share of each leaf.
    pub fn new(h: &Hierarchy, leaf_share: &[f64]) -> Self {
        let levels = h.levels();
        let mut up = Vec::new();
        let mut q: Vec<Vec<f64>> = (0..levels).map(|l| vec![0.0; h.cardinality(l)]).collect();
        for level in 0..levels {
            for leaf in 0..h.domain_size() as u32 {
                q[level][h.label_id(leaf, level) as usize] += leaf_share[leaf as usize];
            }
            if level + 1 < levels {
                let mut parent = vec![0u32; h.cardinality(level)];
                for leaf in 0..h.domain_size() as u32 {
                    parent[h.label_id(leaf, level) as usize] = h.label_id(leaf, level + 1);
                }
                up.push(parent);
            }
        }
        let zeros = |x: f64| -> Vec<Vec<f64>> { (0..levels).map(|l| vec![x; h.cardinality(l)]).collect() };
        HierarchicalEmd {
            up,
            extra: zeros(0.0),
            pos: zeros(0.0),
            neg_touched: zeros(0.0),
            q_touched: zeros(0.0),
            q,
            touched: vec![Vec::new(); levels],
            seen: (0..levels).map(|l| vec![false; h.cardinality(l)]).collect(),
        }
    }

    /// The EMD between a class (its leaves with counts) and the global distribution:
    /// `sum over inner nodes N of level(N)/H · min(pos_extra(N), neg_extra(N))`, where the
    /// extra of a node is the class share minus the global share under it, and
    /// `pos_extra`/`neg_extra` add up the positive/negative extras of its children.
    pub fn distance(&mut self, leaves: &[(u32, u32)], class_size: u32) -> f64 {
        let levels = self.q.len();
        let height = (levels - 1) as f64;
        let n = class_size as f64;
        for &(leaf, c) in leaves {
            self.touch(0, leaf);
            self.extra[0][leaf as usize] += c as f64 / n;
        }
        let mut total = 0.0;
        for level in 0..levels - 1 {
            let touched = std::mem::take(&mut self.touched[level]);
            for &label in &touched {
                let extra = self.extra[level][label as usize] - self.q[level][label as usize];
                let parent = self.up[level][label as usize];
                self.touch(level + 1, parent);
                let (p, pl) = (parent as usize, level + 1);
                self.extra[pl][p] += self.extra[level][label as usize];
                self.q_touched[pl][p] += self.q[level][label as usize];
                if extra > 0.0 {
                    self.pos[pl][p] += extra;
                } else {
                    self.neg_touched[pl][p] -= extra;
                }
            }
            for &label in &touched {
                self.clear(level, label);
            }
            self.touched[level] = touched;
            self.touched[level].clear();
            for &label in &self.touched[level + 1] {
                let l = label as usize;
                // Children not touched by the class have extra = -q.
                let neg = self.neg_touched[level + 1][l] + (self.q[level + 1][l] - self.q_touched[level + 1][l]).max(0.0);
                total += (level + 1) as f64 / height * self.pos[level + 1][l].min(neg);
            }
        }
        let top = std::mem::take(&mut self.touched[levels - 1]);
        for &label in &top {
            self.clear(levels - 1, label);
        }
        self.touched[levels - 1] = top;
        self.touched[levels - 1].clear();
        total
    }

    fn touch(&mut self, level: usize, label: u32) {
        if !self.seen[level][label as usize] {
            self.seen[level][label as usize] = true;
            self.touched[level].push(label);
        }
    }

    fn clear(&mut self, level: usize, label: u32) {
        let l = label as usize;
        self.seen[level][l] = false;
        self.extra[level][l] = 0.0;
        self.pos[level][l] = 0.0;
        self.neg_touched[level][l] = 0.0;
        self.q_touched[level][l] = 0.0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check_l(variant: LDiversityVariant, counts: &[u32], expected: bool) {
        assert_eq!(l_diverse(variant, &mut counts.to_vec()), expected, "{variant:?} {counts:?}");
    }

    #[test]
    fn l_diversity_variants() {
        check_l(LDiversityVariant::Distinct { l: 2 }, &[5, 1], true);
        check_l(LDiversityVariant::Distinct { l: 3 }, &[5, 1], false);
        check_l(LDiversityVariant::Entropy { l: 2.0 }, &[3, 3], true);
        check_l(LDiversityVariant::Entropy { l: 2.0 }, &[5, 1], false);
        check_l(LDiversityVariant::Entropy { l: 3.0 }, &[1, 1, 1], true);
        // r1 < c (r2 + r3): 4 < 2·(2+1)
        check_l(LDiversityVariant::Recursive { c: 2.0, l: 2 }, &[2, 4, 1], true);
        check_l(LDiversityVariant::Recursive { c: 1.0, l: 2 }, &[4, 2, 1], false);
        check_l(LDiversityVariant::Recursive { c: 10.0, l: 3 }, &[4, 2], false);
    }

    #[test]
    fn emd_equal_is_half_l1() {
        let global = [0.5, 0.25, 0.25];
        assert!((emd_equal(&[(0, 2), (1, 1), (2, 1)], 4, &global)).abs() < 1e-12);
        assert!((emd_equal(&[(0, 1)], 1, &global) - 0.5).abs() < 1e-12);
        assert!((emd_equal(&[(1, 1)], 1, &global) - 0.75).abs() < 1e-12);
    }

    #[test]
    fn emd_hierarchical_matches_li_et_al() {
        // Li et al.'s example shape: two groups under the root; moving mass within a group
        // costs 1/2, across groups costs 1.
        let h = Hierarchy::parse("a;x;*\nb;x;*\nc;y;*\nd;y;*\n", ';').unwrap();
        let mut emd = HierarchicalEmd::new(&h, &[0.25; 4]);
        assert!(emd.distance(&[(0, 1), (1, 1), (2, 1), (3, 1)], 4).abs() < 1e-12);
        // All mass on a: 0.25 moves within x (cost 1/2 · 0.25), 0.5 moves across (cost 0.5).
        assert!((emd.distance(&[(0, 4)], 4) - (0.125 + 0.5)).abs() < 1e-12);
        // Half a, half b: only across-group mass (0.5) moves.
        assert!((emd.distance(&[(0, 2), (1, 2)], 4) - 0.5).abs() < 1e-12);
        // The scratch state is clean between calls.
        assert!(emd.distance(&[(0, 1), (1, 1), (2, 1), (3, 1)], 4).abs() < 1e-12);
    }
}
