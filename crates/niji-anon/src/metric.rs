//! Information-loss metrics, defined as ARX defines them (with ARX's default weighting of
//! generalization and suppression, 0.5: a suppressed value counts as generalized to `*`).
//!
//! - **Loss** (ARX's "Loss", Iyengar's LM): per attribute, the average over records of
//!   `(share - 1/D) / (1 - 1/D)`, where `share` is the fraction of the hierarchy's `D` original
//!   values that the released label covers (1 for a suppressed record). The attributes are
//!   combined with ARX's geometric mean: `(Π (1 + L_i))^(1/m) - 1`. Adult's 5-anonymous
//!   optimum without suppression generalizes five of eight attributes to `*`, giving
//!   `2^(5/8) - 1 = 0.542`.
//! - **Precision** (Sweeney): per attribute `level / (levels - 1)` per record (1 when
//!   suppressed), averaged over records, then the arithmetic mean over attributes.
//! - **Discernibility**: `Σ |E|²` over released classes plus `n · |E|` per suppressed class.
//! - **AECS**: records / classes, the suppressed records counting as one class.
//! - **Non-uniform entropy**: per attribute `Σ over records of log2(f(label) / f(value))`, the
//!   frequencies taken in the input (a suppressed record's label is `*`, frequency `n`),
//!   summed over attributes.
//!
//! Invariants: every metric is computed from integers in a fixed order (fixed point for the
//! logarithms), so the same node always gets bit-identical values whatever path the search
//! took to it; each metric comes with lower bounds that the search may prune with: a bound
//! for the node computed without its classes (generalization only, valid for the node and all
//! its successors), and one valid for all successors once the node's classes are known.

use crate::groupify::{KeyLayout, PackedKey};

/// Which information-loss metric to minimize.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Metric {
    /// ARX's Loss (geometric mean over attributes).
    #[default]
    Loss,
    /// Precision (arithmetic mean over attributes).
    Precision,
    /// Discernibility (DM).
    Discernibility,
    /// Average equivalence class size.
    Aecs,
    /// Non-uniform entropy (sum over attributes, in bits).
    NonUniformEntropy,
}

/// A node's information loss.
#[derive(Debug, Clone, PartialEq)]
pub struct InfoLoss {
    pub metric: Metric,
    /// The value minimized.
    pub value: f64,
    /// Per quasi-identifier, in their order, for Loss, Precision and non-uniform entropy
    /// (empty for the others).
    pub per_attribute: Vec<f64>,
}

impl Metric {
    /// A stable lowercase name (`loss`, `precision`, `discernibility`, `aecs`, `entropy`).
    pub fn name(self) -> &'static str {
        match self {
            Metric::Loss => "loss",
            Metric::Precision => "precision",
            Metric::Discernibility => "discernibility",
            Metric::Aecs => "aecs",
            Metric::NonUniformEntropy => "entropy",
        }
    }

    /// Parses [`Metric::name`].
    pub fn from_name(name: &str) -> Option<Metric> {
        [Metric::Loss, Metric::Precision, Metric::Discernibility, Metric::Aecs, Metric::NonUniformEntropy].into_iter().find(|m| m.name() == name)
    }
}

const FIXED: f64 = (1u64 << 32) as f64;

fn fixed(x: f64) -> i64 {
    (x * FIXED).round() as i64
}

/// What a metric needs to know about the quasi-identifiers, precomputed once.
#[derive(Debug, Clone)]
pub(crate) struct MetricTables {
    pub metric: Metric,
    pub n: u64,
    /// Per attribute: domain size `D`.
    domain: Vec<u64>,
    /// Per attribute and level: `Σ_records leaves_under(label)` (Loss, generalization only).
    gen_leaves: Vec<Vec<u64>>,
    /// Per attribute, level and label: leaves under the label.
    leaves: Vec<Vec<Vec<u64>>>,
    /// Per attribute: levels - 1.
    top: Vec<u32>,
    /// Per attribute and level: fixed-point entropy of generalization only.
    gen_entropy: Vec<Vec<i128>>,
    /// Per attribute, level and label: fixed-point `log2 n - log2 f(label)`.
    supp_entropy: Vec<Vec<Vec<i64>>>,
}

/// What the metric needs from a node's classes: outlier classes' labels and counts, and
/// class-size statistics.
#[derive(Debug, Clone, Default)]
pub(crate) struct ClassSummary {
    pub classes: u64,
    pub released_classes: u64,
    pub suppressed_records: u64,
    /// Σ |E|² over all classes.
    pub sum_squares: u128,
    /// Σ |E|² over released classes + n·|E| over suppressed ones.
    pub discernibility: u128,
    /// Per attribute: Σ over suppressed classes of count · (D - leaves_under(label)).
    pub supp_loss: Vec<u64>,
    /// Per attribute: Σ over suppressed classes of count · supp_entropy(label).
    pub supp_entropy: Vec<i128>,
}

impl ClassSummary {
    pub fn reset(&mut self, dims: usize) {
        *self = ClassSummary { supp_loss: vec![0; dims], supp_entropy: vec![0; dims], ..Default::default() };
    }
}

impl MetricTables {
    /// `freq[i][leaf]`: occurrences of each original value of attribute `i` in the input;
    /// `hierarchies[i]`: `(map[level][leaf] -> label, leaves_under[level][label])`.
    pub fn new(metric: Metric, n: u64, freq: &[Vec<u64>], hierarchies: &[crate::hierarchy::Hierarchy]) -> Self {
        let mut t = MetricTables {
            metric,
            n,
            domain: Vec::new(),
            gen_leaves: Vec::new(),
            leaves: Vec::new(),
            top: Vec::new(),
            gen_entropy: Vec::new(),
            supp_entropy: Vec::new(),
        };
        let log_n = fixed((n.max(1) as f64).log2());
        for (f, h) in freq.iter().zip(hierarchies) {
            t.domain.push(h.domain_size() as u64);
            t.top.push(h.levels() as u32 - 1);
            let mut gen_leaves = Vec::new();
            let mut leaves = Vec::new();
            let mut gen_entropy = Vec::new();
            let mut supp_entropy = Vec::new();
            let log_f0: Vec<i64> = f.iter().map(|&c| if c > 0 { fixed((c as f64).log2()) } else { 0 }).collect();
            for level in 0..h.levels() {
                let map = h.level_map(level);
                let under: Vec<u64> = (0..h.cardinality(level) as u32).map(|id| h.leaves_under(level, id) as u64).collect();
                let mut label_freq = vec![0u64; h.cardinality(level)];
                for (leaf, &c) in f.iter().enumerate() {
                    label_freq[map[leaf] as usize] += c;
                }
                let log_fl: Vec<i64> = label_freq.iter().map(|&c| if c > 0 { fixed((c as f64).log2()) } else { 0 }).collect();
                let mut gl = 0u64;
                let mut ge = 0i128;
                for (leaf, &c) in f.iter().enumerate() {
                    let label = map[leaf] as usize;
                    gl += c * under[label];
                    ge += c as i128 * (log_fl[label] - log_f0[leaf]) as i128;
                }
                gen_leaves.push(gl);
                gen_entropy.push(ge);
                supp_entropy.push(log_fl.iter().map(|&l| log_n - l).collect());
                leaves.push(under);
            }
            t.gen_leaves.push(gen_leaves);
            t.leaves.push(leaves);
            t.gen_entropy.push(gen_entropy);
            t.supp_entropy.push(supp_entropy);
        }
        t
    }

    /// Adds a node's suppressed classes (those with `outlier[c]`) to `summary`: their records
    /// and, for Loss and non-uniform entropy, the cost of each attribute's label at `levels`.
    /// Column by column, so each pass reads one attribute's small table; integer sums, so
    /// the result does not depend on the order of the classes.
    pub fn add_suppressed_classes<K: PackedKey>(
        &self,
        summary: &mut ClassSummary,
        levels: &[u32],
        layout: &KeyLayout,
        keys: &[K],
        counts: &[u32],
        outlier: &[bool],
    ) {
        let records: u64 = counts.iter().zip(outlier).filter(|(_, &o)| o).map(|(&c, _)| c as u64).sum();
        summary.suppressed_records += records;
        if records == 0 {
            return;
        }
        for (i, &level) in levels.iter().enumerate() {
            let (shift, bits) = (layout.shifts[i], layout.bits[i]);
            let suppressed = keys.iter().zip(counts).zip(outlier).filter(|(_, &o)| o).map(|((k, &c), _)| (k.field(shift, bits) as usize, c));
            match self.metric {
                Metric::Loss => {
                    let table = &self.leaves[i][level as usize];
                    let under: u64 = suppressed.map(|(label, c)| c as u64 * table[label]).sum();
                    summary.supp_loss[i] += self.domain[i] * records - under;
                }
                Metric::NonUniformEntropy => {
                    let table = &self.supp_entropy[i][level as usize];
                    summary.supp_entropy[i] += suppressed.map(|(label, c)| c as i128 * table[label] as i128).sum::<i128>();
                }
                _ => return,
            }
        }
    }

    /// The information loss of a node from its summary.
    pub fn loss(&self, levels: &[u32], s: &ClassSummary) -> InfoLoss {
        let n = self.n as f64;
        let (value, per_attribute) = match self.metric {
            Metric::Loss => {
                let per: Vec<f64> = (0..levels.len()).map(|i| self.attribute_loss(i, levels[i], s.supp_loss[i])).collect();
                (geometric_mean_plus_one(&per), per)
            }
            Metric::Precision => {
                let per: Vec<f64> = (0..levels.len())
                    .map(|i| {
                        let g = if self.top[i] == 0 { 0.0 } else { levels[i] as f64 / self.top[i] as f64 };
                        if self.n == 0 {
                            0.0
                        } else {
                            ((self.n - s.suppressed_records) as f64 * g + s.suppressed_records as f64) / n
                        }
                    })
                    .collect();
                (arithmetic_mean(&per), per)
            }
            Metric::NonUniformEntropy => {
                let per: Vec<f64> = (0..levels.len()).map(|i| (self.gen_entropy[i][levels[i] as usize] + s.supp_entropy[i]) as f64 / FIXED).collect();
                (per.iter().sum(), per)
            }
            Metric::Discernibility => (s.discernibility as f64, Vec::new()),
            Metric::Aecs => {
                let groups = s.released_classes + u64::from(s.suppressed_records > 0);
                (if groups == 0 { 0.0 } else { n / groups as f64 }, Vec::new())
            }
        };
        InfoLoss { metric: self.metric, value, per_attribute }
    }

    /// A lower bound of the loss of the node and of every successor, without its classes.
    pub fn static_bound(&self, levels: &[u32]) -> f64 {
        match self.metric {
            Metric::Loss => {
                let per: Vec<f64> = (0..levels.len()).map(|i| self.attribute_loss(i, levels[i], 0)).collect();
                geometric_mean_plus_one(&per)
            }
            Metric::Precision => {
                let per: Vec<f64> = (0..levels.len()).map(|i| if self.top[i] == 0 { 0.0 } else { levels[i] as f64 / self.top[i] as f64 }).collect();
                arithmetic_mean(&per)
            }
            Metric::NonUniformEntropy => (0..levels.len()).map(|i| self.gen_entropy[i][levels[i] as usize] as f64 / FIXED).sum(),
            Metric::Discernibility | Metric::Aecs => 0.0,
        }
    }

    /// Whether, with no record suppressed, the loss equals [`MetricTables::static_bound`].
    pub fn static_when_unsuppressed(&self) -> bool {
        matches!(self.metric, Metric::Loss | Metric::Precision | Metric::NonUniformEntropy)
    }

    /// A lower bound of the loss of every successor of a node whose classes are summarized.
    pub fn successor_bound(&self, levels: &[u32], s: &ClassSummary) -> f64 {
        match self.metric {
            Metric::Discernibility => s.sum_squares as f64,
            Metric::Aecs => {
                if s.classes == 0 {
                    0.0
                } else {
                    self.n as f64 / s.classes as f64
                }
            }
            _ => self.static_bound(levels),
        }
    }

    fn attribute_loss(&self, i: usize, level: u32, supp: u64) -> f64 {
        let d = self.domain[i];
        if d <= 1 || self.n == 0 {
            return 0.0;
        }
        // (S/D - n/D) / (n - n/D) = (S - n) / (n (D - 1)), S = Σ leaves under the label.
        let s = self.gen_leaves[i][level as usize] + supp;
        let num = s.saturating_sub(self.n) as f64;
        (num / (self.n as f64 * (d - 1) as f64)).max(0.0)
    }
}

fn geometric_mean_plus_one(values: &[f64]) -> f64 {
    if values.is_empty() {
        return 0.0;
    }
    let m = values.len() as f64;
    values.iter().fold(1.0, |acc, v| acc * (v + 1.0).powf(1.0 / m)) - 1.0
}

fn arithmetic_mean(values: &[f64]) -> f64 {
    if values.is_empty() {
        0.0
    } else {
        values.iter().sum::<f64>() / values.len() as f64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn geometric_mean_as_arx() {
        let per = [1.0, 1.0, 1.0, 1.0, 1.0, 0.0, 0.0, 0.0];
        assert!((geometric_mean_plus_one(&per) - (2f64.powf(5.0 / 8.0) - 1.0)).abs() < 1e-12);
        assert_eq!(Metric::from_name("aecs"), Some(Metric::Aecs));
        assert_eq!(Metric::from_name("nope"), None);
    }
}
