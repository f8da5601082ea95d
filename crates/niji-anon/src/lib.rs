//! Niji's anonymization engine (匿名加工): full-domain generalization with suppression under
//! k-anonymity, l-diversity and t-closeness, the globally optimal search over the
//! generalization lattice, re-identification risk, and the PPC processing standard
//! (個人情報保護法施行規則 第34条) as a pipeline on top.
//!
//! The pieces, bottom up:
//! - [`table`]: dictionary-encoded categorical tables.
//! - [`hierarchy`]: generalization hierarchies in ARX's text format; [`builtin`]: age bands,
//!   dates, municipalities (JIS X 0402) and ICD-10.
//! - [`privacy`]: the privacy models and what is monotonic; [`metric`]: information loss as ARX
//!   defines it (Loss, Precision, Discernibility, AECS, non-uniform entropy); [`risk`]:
//!   prosecutor, journalist and marketer risk.
//! - [`lattice`], [`groupify`], [`search`]: the lattice, bit-packed class keys with roll-up,
//!   and the optimal search (Flash-style predictive tagging with lower-bound pruning).
//! - [`engine`]: roles, configuration, [`Anonymizer`] and the released table.
//! - [`check`]: what a released table achieves (k, distinct/entropy/recursive l, t),
//!   measured from the table alone, as an independent checker would.
//! - [`ppc`]: the 第34条 pipeline (identifiers, linking codes, rare values, outliers, date
//!   shifting, then the privacy model) and its report.
//!
//! Adult (the standard benchmark, as ARX ships it): ARX's lattice of 4,320 nodes comes from
//! the eight quasi-identifiers `age, education, marital-status, native-country, race,
//! salary-class, sex, workclass` (hierarchy levels 5·4·3·3·2·2·2·3 = 4,320); taking all columns
//! but `salary-class` instead (occupation has 3 levels) would give 6,480. Levels are reported
//! in that (alphabetical) order: the 5-anonymous optimum under Loss is (4,3,2,2,1,0,0,0), Loss
//! 0.542, 26 classes; with 5% suppression (3,2,0,1,0,0,0,1), Loss 0.170, 1,346 records
//! suppressed, as ARX publishes.
//!
//! Invariants: the crate does no I/O (no files, no clock, no randomness; keys and data come in
//! as arguments), so the same input and configuration always give the same output; errors are
//! [`thiserror`] enums that say what and where.

pub mod builtin;
pub mod check;
pub mod engine;
pub mod groupify;
pub mod hierarchy;
pub mod lattice;
pub mod metric;
pub mod ppc;
pub mod privacy;
pub mod risk;
pub mod search;
pub mod table;

pub use check::{check_release, CheckError, ReleaseProperties, SensitiveProperties, SensitiveSpec};
pub use engine::{
    anonymize, AnonError, AnonymizationConfig, Anonymizer, Attribute, AttributeRole, ModelSettings, NodeEvaluation, QiLevel, Release, SearchStrategy,
    SuppressedRows,
};
pub use hierarchy::{Hierarchy, HierarchyError, HierarchyErrorKind};
pub use lattice::Lattice;
pub use metric::{InfoLoss, Metric};
pub use privacy::{GroundDistance, LDiversity, LDiversityVariant, PrivacyModel, TCloseness};
pub use risk::{AttackerRisk, RiskMeasures};
pub use search::{SearchOutcome, SearchStats};
pub use table::{Column, Table, TableBuilder, TableError};
