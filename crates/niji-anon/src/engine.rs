//! The anonymization engine: attribute roles, the prepared problem, node evaluation and the
//! released table.
//!
//! [`Anonymizer::new`] encodes the quasi-identifiers through their hierarchies, groups the
//! records once into the classes of the bottom node (all original values), and precomputes
//! the metric's tables; [`Anonymizer::search`] finds the optimal node (see [`crate::search`]);
//! [`Anonymizer::release`] produces the anonymized table for a node.
//!
//! Invariants: identifying columns never reach a release; in a release every class of
//! quasi-identifier values either satisfies every privacy model or is suppressed, and the
//! suppressed records number at most `floor(suppression_limit · n)` (ARX's limit); suppressed
//! rows are removed or have every quasi-identifier set to its hierarchy's top (`*`), as
//! configured; sensitive and insensitive columns are released unchanged; the same input and
//! configuration always give the same release.

use crate::groupify::{KeyLayout, PackedKey, UpTables};
use crate::hierarchy::Hierarchy;
use crate::lattice::{Lattice, MAX_NODES};
use crate::metric::{InfoLoss, Metric, MetricTables};
use crate::privacy::{GroundDistance, HierarchicalEmd, LDiversityVariant, PrivacyModel};
use crate::risk::{self, RiskMeasures};
use crate::search::{Engine, SearchOutcome};
use crate::table::{Column, Table, TableError};
use std::collections::HashMap;

/// How to anonymize a table.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct AnonymizationConfig {
    /// A role for every column of the table. Quasi-identifiers are ordered as listed here
    /// (the order of levels in nodes and reports).
    pub attributes: Vec<Attribute>,
    /// The privacy model and how it is applied.
    pub model: ModelSettings,
}

/// The privacy model and how it is applied: suppression, the information-loss metric, the
/// search, and the risk threshold. Shared by [`AnonymizationConfig`] and
/// [`crate::ppc::PpcConfig`].
#[derive(Debug, Clone, PartialEq)]
pub struct ModelSettings {
    pub privacy: PrivacyModel,
    /// Share of records that may be suppressed, in `[0, 1]` (ARX's suppression limit).
    pub suppression_limit: f64,
    pub metric: Metric,
    pub strategy: SearchStrategy,
    pub suppressed_rows: SuppressedRows,
    /// Record risk above which a record counts as at risk in the risk measures.
    pub risk_threshold: f64,
    /// The population (identification) table the journalist and marketer risks are measured
    /// against: a table with every quasi-identifier's column (by name) holding raw values.
    /// `None`: the data is its own population. A population row whose value is not in the
    /// quasi-identifier's hierarchy matches no class (the risk is then over-, never
    /// under-estimated).
    pub population: Option<Table>,
}

/// A column and its role.
#[derive(Debug, Clone, PartialEq)]
pub struct Attribute {
    pub column: String,
    pub role: AttributeRole,
}

/// What a column is, for anonymization.
#[derive(Debug, Clone, PartialEq)]
pub enum AttributeRole {
    /// Identifies a person by itself: removed.
    Identifying,
    /// Could identify in combination: generalized through its hierarchy.
    QuasiIdentifying(Hierarchy),
    /// Released unchanged, protected by l-diversity and t-closeness when configured.
    Sensitive,
    /// Released unchanged.
    Insensitive,
}

/// How the optimum is found.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SearchStrategy {
    /// Globally optimal search with predictive tagging, lower-bound pruning and roll-up.
    #[default]
    Optimal,
    /// Evaluates every node from the records, without pruning or roll-up (the baseline, and
    /// the oracle the tests compare with).
    Exhaustive,
}

/// What happens to suppressed rows in the released table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SuppressedRows {
    /// They are left out.
    #[default]
    Remove,
    /// They stay, every quasi-identifier set to its hierarchy's top value (`*`), as ARX does.
    Mask,
}

/// Why the engine cannot run.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum AnonError {
    #[error(transparent)]
    Table(#[from] TableError),
    #[error("column {0:?} has no role")]
    UnassignedColumn(String),
    #[error("column {0:?} is given a role twice")]
    DuplicateRole(String),
    /// Names the first data row holding the value, never the value itself: errors may be
    /// shown where cell values must not be.
    #[error("quasi-identifier {column:?}: the value in data row {row} is not in its hierarchy")]
    ValueNotInHierarchy { column: String, row: usize },
    #[error("sensitive attribute {column:?}: the value in data row {row} is not in the t-closeness hierarchy")]
    ValueNotInSensitiveHierarchy { column: String, row: usize },
    #[error("{model} names {attribute:?}, which is not a sensitive attribute")]
    NotSensitive { model: &'static str, attribute: String },
    #[error("invalid parameter: {0}")]
    Parameter(String),
    #[error("the quasi-identifiers need {bits} bits per class key, more than 128")]
    KeyTooWide { bits: u32 },
    #[error("the generalization lattice would have more than {max} nodes")]
    LatticeTooLarge { max: u64 },
    #[error("a node needs {expected} levels within the hierarchies, got {found:?}")]
    Levels { expected: usize, found: Vec<u32> },
    #[error("no generalization satisfies the privacy model within the suppression limit")]
    NoSolution,
}

/// The evaluation of one node.
#[derive(Debug, Clone, PartialEq)]
pub struct NodeEvaluation {
    /// One level per quasi-identifier.
    pub levels: Vec<u32>,
    /// Whether the node satisfies the privacy model within the suppression limit.
    pub anonymous: bool,
    /// Number of equivalence classes (released and suppressed).
    pub classes: u64,
    /// Classes released (not suppressed).
    pub released_classes: u64,
    /// Records suppressed (meaningful when `anonymous`; otherwise the records failing).
    pub suppressed_records: u64,
    pub loss: InfoLoss,
}

/// An anonymized table and what it took.
#[derive(Debug, Clone, PartialEq)]
pub struct Release {
    pub table: Table,
    pub evaluation: NodeEvaluation,
    /// Per quasi-identifier: column name, chosen level, number of levels.
    pub generalization: Vec<QiLevel>,
    pub risk_before: RiskMeasures,
    pub risk_after: RiskMeasures,
    /// Rows (0-based, of the input) suppressed.
    pub suppressed_rows: Vec<usize>,
}

/// The chosen level of one quasi-identifier.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QiLevel {
    pub column: String,
    pub level: u32,
    pub levels: u32,
}

impl Default for ModelSettings {
    /// 2-anonymity, no suppression, Loss, the optimal search, suppressed rows removed, risk
    /// threshold 0.2.
    fn default() -> Self {
        ModelSettings {
            privacy: PrivacyModel::k_anonymity(2),
            suppression_limit: 0.0,
            metric: Metric::Loss,
            strategy: SearchStrategy::Optimal,
            suppressed_rows: SuppressedRows::Remove,
            risk_threshold: 0.2,
            population: None,
        }
    }
}

/// A quasi-identifier, encoded.
#[derive(Debug)]
pub(crate) struct Qi {
    pub column: usize,
    pub name: String,
    pub hierarchy: Hierarchy,
    /// Leaf index of each record's value.
    pub leaf: Vec<u32>,
}

/// A sensitive attribute with checks.
#[derive(Debug)]
pub(crate) struct Sensitive {
    /// Column code of each record.
    pub codes: Vec<u32>,
    pub cardinality: usize,
    pub checks: Vec<ClassCheck>,
}

/// One per-class check on a sensitive attribute.
#[derive(Debug, Clone)]
pub(crate) enum ClassCheck {
    L(LDiversityVariant),
    TEqual { t: f64, global: Vec<f64> },
    THierarchical { t: f64, leaf_of_code: Vec<u32>, emd: Box<HierarchicalEmd> },
}

/// The bottom node's classes, computed once.
#[derive(Debug)]
pub(crate) struct Bottom<K> {
    pub keys: Vec<K>,
    pub counts: Vec<u32>,
    /// Bottom class of each record.
    pub record_class: Vec<u32>,
    /// Per sensitive attribute: for each bottom class, its (value code, count) pairs.
    pub sensitive: Vec<Csr>,
}

/// Compressed rows of (value, count) pairs.
#[derive(Debug, Default)]
pub(crate) struct Csr {
    pub offsets: Vec<u32>,
    pub entries: Vec<(u32, u32)>,
}

#[derive(Debug)]
pub(crate) enum Bottoms {
    Narrow(Bottom<u64>),
    Wide(Bottom<u128>),
}

/// A table prepared for anonymization under one configuration.
#[derive(Debug)]
pub struct Anonymizer<'t> {
    pub(crate) table: &'t Table,
    pub(crate) config: AnonymizationConfig,
    pub(crate) qis: Vec<Qi>,
    pub(crate) sensitive: Vec<Sensitive>,
    pub(crate) identifying: Vec<usize>,
    pub(crate) lattice: Lattice,
    pub(crate) layout: KeyLayout,
    pub(crate) up: UpTables,
    pub(crate) metric: MetricTables,
    pub(crate) max_outliers: u64,
    pub(crate) bottom: Bottoms,
    /// Per quasi-identifier, the leaf of each population row's value (`None`: not in the
    /// hierarchy); `None` without a population table.
    pub(crate) population: Option<Vec<Vec<Option<u32>>>>,
}

/// Anonymizes `table`: searches for the optimal node and releases it.
pub fn anonymize(table: &Table, config: &AnonymizationConfig) -> Result<(Release, SearchOutcome), AnonError> {
    let anonymizer = Anonymizer::new(table, config)?;
    let outcome = anonymizer.search();
    let best = outcome.optimum.as_ref().ok_or(AnonError::NoSolution)?;
    let release = anonymizer.release(&best.levels)?;
    Ok((release, outcome))
}

impl<'t> Anonymizer<'t> {
    /// Validates the configuration against the table and prepares the search.
    pub fn new(table: &'t Table, config: &AnonymizationConfig) -> Result<Self, AnonError> {
        validate(config)?;
        let mut roles: HashMap<&str, &AttributeRole> = HashMap::new();
        for a in &config.attributes {
            table.column_index(&a.column)?;
            if roles.insert(a.column.as_str(), &a.role).is_some() {
                return Err(AnonError::DuplicateRole(a.column.clone()));
            }
        }
        let mut identifying = Vec::new();
        let mut sensitive_columns: Vec<(usize, &str)> = Vec::new();
        for (index, column) in table.columns().iter().enumerate() {
            match roles.get(column.name()) {
                None => return Err(AnonError::UnassignedColumn(column.name().to_owned())),
                Some(AttributeRole::Identifying) => identifying.push(index),
                Some(AttributeRole::Sensitive) => sensitive_columns.push((index, column.name())),
                Some(AttributeRole::QuasiIdentifying(_)) | Some(AttributeRole::Insensitive) => {}
            }
        }
        // Quasi-identifiers in the order the configuration lists them: the lattice's order.
        let mut qis = Vec::new();
        for a in &config.attributes {
            if let AttributeRole::QuasiIdentifying(h) = &a.role {
                let index = table.column_index(&a.column)?;
                qis.push(encode_qi(index, table.column_at(index), h)?);
            }
        }
        let n = table.num_rows();
        let sensitive = prepare_sensitive(table, config, &sensitive_columns)?;
        let heights: Vec<u32> = qis.iter().map(|q| q.hierarchy.levels() as u32).collect();
        let lattice = Lattice::new(&heights).ok_or(AnonError::LatticeTooLarge { max: MAX_NODES })?;
        let layout = KeyLayout::new(&qis.iter().map(|q| q.hierarchy.domain_size()).collect::<Vec<_>>());
        if layout.total_bits > 128 {
            return Err(AnonError::KeyTooWide { bits: layout.total_bits });
        }
        let up = qis.iter().map(|q| up_tables(&q.hierarchy)).collect();
        let freq: Vec<Vec<u64>> = qis
            .iter()
            .map(|q| {
                let mut f = vec![0u64; q.hierarchy.domain_size()];
                for &leaf in &q.leaf {
                    f[leaf as usize] += 1;
                }
                f
            })
            .collect();
        let hierarchies: Vec<Hierarchy> = qis.iter().map(|q| q.hierarchy.clone()).collect();
        let metric = MetricTables::new(config.model.metric, n as u64, &freq, &hierarchies);
        let max_outliers = (config.model.suppression_limit * n as f64).floor() as u64;
        let population = match &config.model.population {
            None => None,
            Some(pop) => Some(
                qis.iter()
                    .map(|q| {
                        let column =
                            pop.column(&q.name).map_err(|_| AnonError::Parameter(format!("the population table has no column {:?}", q.name)))?;
                        Ok((0..pop.num_rows()).map(|r| q.hierarchy.leaf(column.value(r))).collect())
                    })
                    .collect::<Result<Vec<Vec<Option<u32>>>, AnonError>>()?,
            ),
        };
        let mut anonymizer = Anonymizer {
            table,
            config: config.clone(),
            qis,
            sensitive,
            identifying,
            lattice,
            layout,
            up,
            metric,
            max_outliers,
            population,
            bottom: Bottoms::Narrow(Bottom { keys: Vec::new(), counts: Vec::new(), record_class: Vec::new(), sensitive: Vec::new() }),
        };
        anonymizer.bottom = if anonymizer.layout.total_bits <= 64 {
            Bottoms::Narrow(anonymizer.bottom_classes())
        } else {
            Bottoms::Wide(anonymizer.bottom_classes())
        };
        Ok(anonymizer)
    }

    /// The generalization lattice.
    pub fn lattice(&self) -> &Lattice {
        &self.lattice
    }

    /// Names of the quasi-identifiers, in lattice order.
    pub fn quasi_identifiers(&self) -> Vec<&str> {
        self.qis.iter().map(|q| q.name.as_str()).collect()
    }

    /// Records that may be suppressed.
    pub fn max_suppressed(&self) -> u64 {
        self.max_outliers
    }

    /// Finds the optimal node with the configured strategy.
    pub fn search(&self) -> SearchOutcome {
        self.search_with(self.config.model.strategy)
    }

    /// Finds the optimal node with the given strategy.
    pub fn search_with(&self, strategy: SearchStrategy) -> SearchOutcome {
        match &self.bottom {
            Bottoms::Narrow(b) => Engine::new(self, b).search(strategy),
            Bottoms::Wide(b) => Engine::new(self, b).search(strategy),
        }
    }

    /// Evaluates one node (levels in quasi-identifier order).
    pub fn evaluate(&self, levels: &[u32]) -> Result<NodeEvaluation, AnonError> {
        let node = self.node(levels)?;
        Ok(match &self.bottom {
            Bottoms::Narrow(b) => Engine::new(self, b).evaluate(node, false).0,
            Bottoms::Wide(b) => Engine::new(self, b).evaluate(node, false).0,
        })
    }

    /// Evaluates every node of the lattice (classes, whether anonymous, suppressed records,
    /// loss), in node order (`lattice().levels(i)` are the levels of entry `i`). Each node's
    /// classes are rolled up from a predecessor's (see [`crate::search`]), so the sweep costs
    /// a pass over the classes of each node's parent, not over the records.
    pub fn evaluate_all(&self) -> Vec<NodeEvaluation> {
        match &self.bottom {
            Bottoms::Narrow(b) => Engine::new(self, b).sweep(),
            Bottoms::Wide(b) => Engine::new(self, b).sweep(),
        }
    }

    /// Evaluates one node by grouping the records directly (no roll-up): the oracle the
    /// tests compare [`Anonymizer::evaluate_all`] with.
    #[doc(hidden)]
    pub fn evaluate_from_records(&self, levels: &[u32]) -> Result<NodeEvaluation, AnonError> {
        let node = self.node(levels)?;
        Ok(match &self.bottom {
            Bottoms::Narrow(b) => Engine::new(self, b).evaluate_from_records(node),
            Bottoms::Wide(b) => Engine::new(self, b).evaluate_from_records(node),
        })
    }

    /// The classes of a node as `(labels per quasi-identifier, count)`, sorted; computed by
    /// roll-up when `rollup`, else directly from the records (for tests).
    pub fn classes(&self, levels: &[u32], rollup: bool) -> Result<Vec<(Vec<u32>, u32)>, AnonError> {
        let node = self.node(levels)?;
        Ok(match &self.bottom {
            Bottoms::Narrow(b) => Engine::new(self, b).classes_of(node, rollup),
            Bottoms::Wide(b) => Engine::new(self, b).classes_of(node, rollup),
        })
    }

    /// The classes of `levels` computed by roll-up after the nodes in `warm` were computed
    /// (so that the roll-up may start from their cached snapshots); for tests of roll-up.
    #[doc(hidden)]
    pub fn classes_after(&self, warm: &[Vec<u32>], levels: &[u32]) -> Result<Vec<(Vec<u32>, u32)>, AnonError> {
        let node = self.node(levels)?;
        let warm: Vec<u32> = warm.iter().map(|l| self.node(l)).collect::<Result<_, _>>()?;
        Ok(match &self.bottom {
            Bottoms::Narrow(b) => Engine::new(self, b).classes_after(&warm, node),
            Bottoms::Wide(b) => Engine::new(self, b).classes_after(&warm, node),
        })
    }

    /// Risk of the input as it is (every quasi-identifier at level 0).
    pub fn risk_before(&self) -> RiskMeasures {
        if let Some(population) = &self.population {
            let levels = vec![0; self.qis.len()];
            return self.population_risk(population, &levels, (0..self.table.num_rows()).map(|r| (r, false)));
        }
        let counts = match &self.bottom {
            Bottoms::Narrow(b) => &b.counts,
            Bottoms::Wide(b) => &b.counts,
        };
        risk::measure(counts, None, self.config.model.risk_threshold)
    }

    /// Risk of the released `rows` (input row, suppressed) at `levels` against the population:
    /// classes keyed by each quasi-identifier's label at its level (a suppressed row by the
    /// hierarchies' roots), the population's rows generalized the same way.
    fn population_risk(&self, population: &[Vec<Option<u32>>], levels: &[u32], rows: impl Iterator<Item = (usize, bool)>) -> RiskMeasures {
        let top: Vec<usize> = self.qis.iter().map(|q| q.hierarchy.levels() - 1).collect();
        let key = |leaves: &mut dyn Iterator<Item = (usize, u32)>, suppressed: bool| -> Vec<u32> {
            leaves
                .map(|(qi, leaf)| {
                    let level = if suppressed { top[qi] } else { levels[qi] as usize };
                    self.qis[qi].hierarchy.label_id(leaf, level)
                })
                .collect()
        };
        let mut sample: HashMap<Vec<u32>, u32> = HashMap::new();
        for (r, suppressed) in rows {
            let k = key(&mut self.qis.iter().enumerate().map(|(i, q)| (i, q.leaf[r])), suppressed);
            *sample.entry(k).or_default() += 1;
        }
        let mut counts: HashMap<Vec<u32>, u32> = HashMap::new();
        let population_rows = population.first().map_or(0, Vec::len);
        'rows: for r in 0..population_rows {
            let mut leaves = Vec::with_capacity(self.qis.len());
            for (qi, column) in population.iter().enumerate() {
                match column[r] {
                    Some(leaf) => leaves.push((qi, leaf)),
                    None => continue 'rows,
                }
            }
            let k = key(&mut leaves.into_iter(), false);
            if sample.contains_key(&k) {
                *counts.entry(k).or_default() += 1;
            }
        }
        let (f, big_f): (Vec<u32>, Vec<u32>) = sample.iter().map(|(k, &n)| (n, counts.get(k).copied().unwrap_or(0))).unzip();
        risk::measure(&f, Some(&big_f), self.config.model.risk_threshold)
    }

    /// The anonymized table for a node.
    pub fn release(&self, levels: &[u32]) -> Result<Release, AnonError> {
        let node = self.node(levels)?;
        let (evaluation, suppressed) = match &self.bottom {
            Bottoms::Narrow(b) => Engine::new(self, b).evaluate(node, true),
            Bottoms::Wide(b) => Engine::new(self, b).evaluate(node, true),
        };
        let keep: Vec<bool> = match self.config.model.suppressed_rows {
            SuppressedRows::Remove => suppressed.iter().map(|s| !s).collect(),
            SuppressedRows::Mask => vec![true; suppressed.len()],
        };
        let mut columns = Vec::new();
        let mut qi_columns = Vec::new();
        for (index, column) in self.table.columns().iter().enumerate() {
            if self.identifying.contains(&index) {
                continue;
            }
            if let Some((qi, q)) = self.qis.iter().enumerate().find(|(_, q)| q.column == index) {
                let level = levels[qi] as usize;
                let h = &q.hierarchy;
                let root = h.root();
                let values = (0..self.table.num_rows()).filter(|&r| keep[r]).map(|r| {
                    if suppressed[r] {
                        root
                    } else {
                        h.label(level, h.label_id(q.leaf[r], level))
                    }
                });
                qi_columns.push(columns.len());
                columns.push(Column::from_values(column.name(), values));
            } else {
                columns.push(column.filter_rows(&keep));
            }
        }
        let table = Table::from_columns(columns)?;
        let risk_after = match &self.population {
            Some(population) => {
                let rows = (0..self.table.num_rows()).filter(|&r| keep[r]).map(|r| (r, suppressed[r]));
                self.population_risk(population, levels, rows)
            }
            None => risk::measure(&class_sizes(&table, &qi_columns), None, self.config.model.risk_threshold),
        };
        Ok(Release {
            table,
            evaluation,
            generalization: self
                .qis
                .iter()
                .zip(levels)
                .map(|(q, &level)| QiLevel { column: q.name.clone(), level, levels: q.hierarchy.levels() as u32 })
                .collect(),
            risk_before: self.risk_before(),
            risk_after,
            suppressed_rows: suppressed.iter().enumerate().filter(|(_, &s)| s).map(|(r, _)| r).collect(),
        })
    }

    fn node(&self, levels: &[u32]) -> Result<u32, AnonError> {
        self.lattice.node(levels).ok_or_else(|| AnonError::Levels { expected: self.qis.len(), found: levels.to_vec() })
    }

    fn bottom_classes<K: PackedKey>(&self) -> Bottom<K> {
        let n = self.table.num_rows();
        let mut grouper = crate::groupify::Grouper::<K>::default();
        grouper.begin(n);
        let mut record_class = Vec::with_capacity(n);
        for r in 0..n {
            let mut key = K::default();
            for (i, q) in self.qis.iter().enumerate() {
                key = key.or(K::field_value(q.leaf[r], self.layout.shifts[i]));
            }
            record_class.push(grouper.add(key, 1));
        }
        let classes = grouper.len();
        let sensitive = self
            .sensitive
            .iter()
            .map(|s| {
                // Sort records by class, then count values within each class.
                let mut offsets = vec![0u32; classes + 1];
                for &c in &record_class {
                    offsets[c as usize + 1] += 1;
                }
                for c in 0..classes {
                    offsets[c + 1] += offsets[c];
                }
                let mut next = offsets.clone();
                let mut order = vec![0u32; n];
                for (r, &c) in record_class.iter().enumerate() {
                    order[next[c as usize] as usize] = r as u32;
                    next[c as usize] += 1;
                }
                let mut csr = Csr { offsets: Vec::with_capacity(classes + 1), entries: Vec::new() };
                let mut hist = vec![0u32; s.cardinality];
                let mut touched = Vec::new();
                csr.offsets.push(0);
                for c in 0..classes {
                    for &r in &order[offsets[c] as usize..offsets[c + 1] as usize] {
                        let v = s.codes[r as usize];
                        if hist[v as usize] == 0 {
                            touched.push(v);
                        }
                        hist[v as usize] += 1;
                    }
                    touched.sort_unstable();
                    for &v in &touched {
                        csr.entries.push((v, hist[v as usize]));
                        hist[v as usize] = 0;
                    }
                    touched.clear();
                    csr.offsets.push(csr.entries.len() as u32);
                }
                csr
            })
            .collect();
        Bottom { keys: grouper.keys, counts: grouper.counts, record_class, sensitive }
    }
}

fn validate(config: &AnonymizationConfig) -> Result<(), AnonError> {
    let bad = |m: String| Err(AnonError::Parameter(m));
    if config.model.privacy.k == 0 {
        return bad("k must be at least 1".into());
    }
    if !(0.0..=1.0).contains(&config.model.suppression_limit) {
        return bad(format!("suppression limit {} is not in [0, 1]", config.model.suppression_limit));
    }
    if !(config.model.risk_threshold > 0.0 && config.model.risk_threshold <= 1.0) {
        return bad(format!("risk threshold {} is not in (0, 1]", config.model.risk_threshold));
    }
    for l in &config.model.privacy.l_diversity {
        let ok = match l.variant {
            LDiversityVariant::Distinct { l } => l >= 1,
            LDiversityVariant::Entropy { l } => l >= 1.0,
            LDiversityVariant::Recursive { c, l } => c > 0.0 && l >= 1,
        };
        if !ok {
            return bad(format!("l-diversity of {:?}: l must be at least 1 and c positive", l.attribute));
        }
    }
    for t in &config.model.privacy.t_closeness {
        if !(0.0..=1.0).contains(&t.t) {
            return bad(format!("t-closeness of {:?}: t must be in [0, 1]", t.attribute));
        }
    }
    Ok(())
}

fn encode_qi(index: usize, column: &Column, h: &Hierarchy) -> Result<Qi, AnonError> {
    let mut leaf_of_code = Vec::with_capacity(column.dictionary().len());
    for (code, value) in column.dictionary().iter().enumerate() {
        let leaf =
            h.leaf(value).ok_or_else(|| AnonError::ValueNotInHierarchy { column: column.name().to_owned(), row: column.first_row_of(code) })?;
        leaf_of_code.push(leaf);
    }
    Ok(Qi {
        column: index,
        name: column.name().to_owned(),
        hierarchy: h.clone(),
        leaf: column.codes().iter().map(|&c| leaf_of_code[c as usize]).collect(),
    })
}

fn prepare_sensitive(table: &Table, config: &AnonymizationConfig, columns: &[(usize, &str)]) -> Result<Vec<Sensitive>, AnonError> {
    let n = table.num_rows().max(1) as f64;
    let mut out = Vec::new();
    for &(index, name) in columns {
        let column = table.column_at(index);
        let freq = column.frequencies();
        let mut checks = Vec::new();
        for l in config.model.privacy.l_diversity.iter().filter(|l| l.attribute == name) {
            checks.push(ClassCheck::L(l.variant));
        }
        for t in config.model.privacy.t_closeness.iter().filter(|t| t.attribute == name) {
            match &t.distance {
                GroundDistance::Equal => {
                    checks.push(ClassCheck::TEqual { t: t.t, global: freq.iter().map(|&f| f as f64 / n).collect() });
                }
                GroundDistance::Hierarchical(h) => {
                    let mut leaf_of_code = Vec::new();
                    let mut share = vec![0.0; h.domain_size()];
                    for (code, value) in column.dictionary().iter().enumerate() {
                        let leaf = h
                            .leaf(value)
                            .ok_or_else(|| AnonError::ValueNotInSensitiveHierarchy { column: name.to_owned(), row: column.first_row_of(code) })?;
                        share[leaf as usize] += freq[code] as f64 / n;
                        leaf_of_code.push(leaf);
                    }
                    checks.push(ClassCheck::THierarchical { t: t.t, leaf_of_code, emd: Box::new(HierarchicalEmd::new(h, &share)) });
                }
            }
        }
        if !checks.is_empty() {
            out.push(Sensitive { codes: column.codes().to_vec(), cardinality: column.dictionary().len(), checks });
        }
    }
    let names: Vec<&str> = columns.iter().map(|c| c.1).collect();
    for l in &config.model.privacy.l_diversity {
        if !names.contains(&l.attribute.as_str()) {
            return Err(AnonError::NotSensitive { model: "l-diversity", attribute: l.attribute.clone() });
        }
    }
    for t in &config.model.privacy.t_closeness {
        if !names.contains(&t.attribute.as_str()) {
            return Err(AnonError::NotSensitive { model: "t-closeness", attribute: t.attribute.clone() });
        }
    }
    Ok(out)
}

/// `up[from][to][label at from] -> label at to`, for `from <= to`.
fn up_tables(h: &Hierarchy) -> Vec<Vec<Vec<u32>>> {
    let levels = h.levels();
    (0..levels)
        .map(|from| {
            (0..levels)
                .map(|to| {
                    if to < from {
                        return Vec::new();
                    }
                    let mut t = vec![0u32; h.cardinality(from)];
                    for leaf in 0..h.domain_size() as u32 {
                        t[h.label_id(leaf, from) as usize] = h.label_id(leaf, to);
                    }
                    t
                })
                .collect()
        })
        .collect()
}

/// Sizes of the classes formed by the given columns of a table.
pub fn class_sizes(table: &Table, columns: &[usize]) -> Vec<u32> {
    let mut groups: HashMap<Vec<u32>, u32> = HashMap::new();
    for r in 0..table.num_rows() {
        let key: Vec<u32> = columns.iter().map(|&c| table.column_at(c).codes()[r]).collect();
        *groups.entry(key).or_insert(0) += 1;
    }
    let mut sizes: Vec<u32> = groups.into_values().collect();
    sizes.sort_unstable();
    sizes
}
