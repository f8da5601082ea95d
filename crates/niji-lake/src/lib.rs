//! The encrypted lake: the content half of ingested records as standard tables, one folder per
//! dataset version, each table one Parquet file with Parquet modular encryption (AES-GCM, footer
//! encrypted too) under the version's data key.
//!
//! Layout: `<lake_dir>/<version>/<table>.parquet` for every table of [`TABLES`] (a table without
//! rows is still written, so readers always find its schema). A version is written by a
//! [`LakeWriter`] into a staging folder `<lake_dir>/.staging-…` and made visible by [`commit`];
//! [`recover`] removes staging folders left by a crash.
//!
//! Invariants:
//! - Rows are keyed by `person_key` (`FixedSizeBinary(32)`, the [`PersonKey`] of `niji-privacy`);
//!   no identifier of a person is ever written: rows are built only from [`Content`], which holds
//!   codes, units, enums, numbers and dates by construction.
//! - Every file is encrypted and authenticated: pages, page headers, column metadata and the footer
//!   (AES-GCM; no plaintext footer). The AAD prefix binds a file to its table name
//!   (`niji-lake:<table>`), so swapping two tables' files is detected; it is not stored in the file.
//! - Reading with another key, or a file with any changed byte, fails with
//!   [`LakeError::Unreadable`]; nothing of a damaged file is returned as data.
//! - Memory is bounded: rows are buffered per table up to [`LakeOptions::batch_rows`], then handed to
//!   the Parquet writer, which flushes a row group every [`LakeOptions::row_group_rows`] rows.
//! - A version appears whole or not at all: [`commit`] fsyncs every file and the staging folder,
//!   renames it to its final name (refusing an existing one) and fsyncs the parent.
//!
//! # Statistics
//!
//! [`LakeWriter::finish`] returns a [`LakeSummary`] computed while writing, without reading the
//! tables back: per table ([`LakeSummary::table`], [`TableStats`]) the rows, the distinct persons
//! and the coverage (earliest and latest event date), and over all tables the distinct persons
//! ([`LakeSummary::persons`]) and the coverage ([`LakeSummary::coverage`]). Event dates are:
//! `encounters` `start`/`end`, `conditions` `onset`/`recorded`, `medications` `authored`,
//! `lab_results` `effective`, `allergies` `onset`/`recorded`, `claims` `month` (its first day) and
//! `admitted_on`, `registry_values` its `date` values; `patients` and `claim_lines` have none. Dates outside the years
//! [`COVERAGE_YEARS`] (1900–2100) are ignored for coverage as implausible (the lake has no clock;
//! `niji-ingest` already refuses dates after its caller's `now`).
//!
//! Memory: everything is a counter except the distinct persons. A caller that numbers its
//! persons (0, 1, 2, … as the intake does after linkage, [`LakeWriter::push_numbered`]) costs 2
//! bytes a person: a bit per table the person has rows in, at the person's number. Otherwise
//! ([`LakeWriter::push_with_birth`]) each person takes a hash map entry: the person key's first
//! 16 bytes (keys are HMAC outputs; two persons sharing 16 bytes is a 2^-128 chance) and the
//! bits, 18 B, about 21–42 B with the hash table's control byte, load factor and power-of-two
//! growth (~ 21–42 MB for a million persons; one set of full keys per table took up to 0.7 GB).
//!
//! # Catalog
//!
//! [`catalog`] describes every table and column in Japanese and English (titles, descriptions,
//! source records, code systems) for the data catalog; a test keeps it equal to the schemas.
//!
//! # Tables
//!
//! Common column types: `person_key` `FixedSizeBinary(32)` (never null); dates `Date32` (a date known
//! only to the year or month is stored as its first day); year-months `Utf8` `YYYY-MM`; code system
//! columns hold the `niji-ingest` [`CodeSystem`](niji_ingest::CodeSystem) variant name (`Icd10`,
//! `ReceiptDisease`, `Yj`, `ReceiptDrug`, `Hot`, `GeneralDrugName`, `NoStandardDrugCode`, `Jlac10`,
//! `Jlac11`, `LocalLab`, `LocalDrug`, `ReceiptProcedure`, `ReceiptMaterial`, `ReceiptComment`, …);
//! list-like values (`alt_codes`, `categories`, …) are `Utf8` joined with `;`, codings as
//! `System:code`. All columns but `person_key` are nullable.
//!
//! | table | source | columns |
//! |---|---|---|
//! | `patients` | FHIR Patient | `person_key`, `sex` (`male`/`female`/`other`/`unknown`), `birth_year_month`, `prefecture` Int32 (JIS X 0401), `municipality` Int32 (JIS X 0402, 5 digits), `deceased` Boolean, `deceased_on` |
//! | `encounters` | FHIR Encounter | `person_key`, `status`, `class` (v3 ActCode: AMB, IMP, EMER, …), `start`, `end` |
//! | `conditions` | FHIR Condition, UKE SY | `person_key`, `source` (`ehr`/`claim`), `code_system`, `code` (ICD-10, 病名管理番号, レセ電傷病名コード), `alt_codes`, `clinical_status`, `verification_status`, `categories`, `onset`, `abatement`, `recorded`, `file` Int32 and `claim` Int64 (claim rows: the RE of this disease), `modifiers` (修飾語コード), `outcome` Int32 (転帰区分), `main` Boolean (主病), `facility_code` (claim rows: the IR's 医療機関コード) |
//! | `medications` | FHIR MedicationRequest | `person_key`, `status`, `intent`, `categories`, `code_system`, `code` (YJ, HOT, 一般名処方, レセ電医薬品, local), `alt_codes`, `authored`, `dose_value` Float64, `dose_unit`, `duration_days` Float64, `dispense_value` Float64, `dispense_unit`, `usage_codes` (用法コード) |
//! | `lab_results` | FHIR Observation | `person_key`, `component` Int32 (null for the observation, 1.. for its components, one row each), `status`, `categories`, `code_system`, `code` (JLAC10/11, local lab code, LOINC-shaped tokens), `alt_codes`, `effective`, `value` Float64, `unit` (UCUM or a fixed Japanese unit word), `value_codes`, `interpretation` |
//! | `allergies` | FHIR AllergyIntolerance | `person_key`, `code_system`, `code`, `alt_codes`, `categories`, `criticality`, `clinical_status`, `verification_status`, `onset`, `recorded` |
//! | `claims` | UKE RE (with the IR before it) | `person_key`, `file` Int32, `claim` Int64 (line of the RE in its file), `receipt_no` Int64, `receipt_kind` (レセプト種別), `month` (診療年月), `sex`, `birth_year_month`, `benefit_ratio` Int32, `admitted_on`, `facility_code` (医療機関コード, a facility), `facility_prefecture` Int32, `fee_table` Int32 (点数表), `billing_month` (請求年月) |
//! | `claim_lines` | UKE SI/IY/TO/CO | `person_key`, `file` Int32, `claim` Int64 (joins `claims`), `kind` (`procedure`/`drug`/`material`/`comment`), `category` Int32 (診療識別), `burden`, `code_system`, `code` (診療行為/医薬品/特定器材/コメントコード), `quantity` Float64, `points` Int64, `times` Int32, `comment_codes`, `facility_code` (the IR's 医療機関コード, so that a line's institution is its own) |
//! | `registry_values` | CSV with a mapping (`Content::Row`) | long form, one row per non-empty mapped value of a CSV row: `person_key`, `file` Int32, `line` Int64 (line of the row in its file), `variable` (the mapping's column name), `value_type` (`code`/`number`/`date`/`year_month`/`sex`/`prefecture`/`municipality`), `code_system` (codes), `value_text` (the code; `YYYY-MM`; the sex; the JIS X 0401 / 0402 code as 2 / 5 digits), `value_number` Float64 (numbers), `unit` (numbers with a unit column), `value_date` (dates) |
//!
//! Every event table but `claim_lines` ends in `age` Int32: whole years from the person's full
//! birth date (which only the identity vault holds; the caller passes it to
//! [`LakeWriter::push_with_birth`]) to the event's first date; null without a birth date.
//!
//! `file` is a number the caller gives with [`LakeWriter::set_file`] (the position of the
//! submitted file in the batch), so that claims and their lines join within a version.
//! `registry_values` holds only what `niji-ingest` put in a CSV row's content: content columns and
//! quasi-identifiers, already generalized there (a birth date, as quasi-identifier or as the
//! `birth_date` identifier, as its year-month; prefectures and municipalities as validated JIS
//! codes, never address text; the sex of a `sex` identifier; the prefecture digits of an
//! `insurer_number` identifier). Identifier columns themselves never reach it. Its `date` values
//! count for coverage.
//!
//! Not stored (yet): organizations, practitioners, UKE payers (HO/KO/SN) and totals (GO).

use std::borrow::Cow;
use std::collections::HashMap;
use std::fs::{self, File};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow_array::builder::{BooleanBuilder, Date32Builder, FixedSizeBinaryBuilder, Float64Builder, Int32Builder, Int64Builder, StringBuilder};
use arrow_array::{ArrayRef, RecordBatch};
use arrow_schema::{DataType, Field, Schema, SchemaRef};
use niji_ingest::dates::Precision;
use niji_ingest::{ClaimLineKind, Code, Coded, Content, ContentBody, Date, Location, Quantity, RowValue, Sex, Value, YearMonth};
use niji_privacy::PersonKey;
use parquet::arrow::arrow_reader::{ArrowReaderOptions, ParquetRecordBatchReader, ParquetRecordBatchReaderBuilder};
use parquet::arrow::ArrowWriter;
use parquet::encryption::decrypt::FileDecryptionProperties;
use parquet::encryption::encrypt::FileEncryptionProperties;
use parquet::file::properties::WriterProperties;

pub mod catalog;
pub mod cohort;

/// The standard tables, in file order.
pub const TABLES: [&str; 9] =
    ["patients", "encounters", "conditions", "medications", "lab_results", "allergies", "claims", "claim_lines", "registry_values"];

// A person's tables are bits of a u16 in the writer's persons map.
const _: () = assert!(TABLES.len() <= 16);

/// Name prefix of staging folders inside a lake folder; [`recover`] removes such folders.
pub const STAGING_PREFIX: &str = ".staging-";

/// Errors of the lake. Messages never quote data.
#[derive(Debug, thiserror::Error)]
pub enum LakeError {
    #[error("lake I/O failed: {0}")]
    Io(#[from] io::Error),
    #[error("staging folder must be named {STAGING_PREFIX}… and must not exist yet")]
    BadStaging,
    #[error("dataset version folder already exists")]
    VersionExists,
    #[error("unknown table")]
    UnknownTable,
    #[error("cannot decrypt or authenticate table {table}: wrong key or damaged file")]
    Unreadable { table: String, source: parquet::errors::ParquetError },
    #[error("cannot write table {table}")]
    Write { table: String, source: parquet::errors::ParquetError },
}

/// The 32-byte AES key of one dataset version (`niji-instance` `DataKey` bytes).
#[derive(Clone)]
pub struct LakeKey(pub [u8; 32]);

impl std::fmt::Debug for LakeKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("LakeKey(…)")
    }
}

/// Buffer sizes of a [`LakeWriter`].
#[derive(Debug, Clone, Copy)]
pub struct LakeOptions {
    /// Rows buffered per table before they go to the Parquet writer as one batch.
    pub batch_rows: usize,
    /// Rows per Parquet row group.
    pub row_group_rows: usize,
}

impl Default for LakeOptions {
    fn default() -> Self {
        Self { batch_rows: 8192, row_group_rows: 128 * 1024 }
    }
}

/// Years of event dates that count for coverage ([`TableStats::first`], [`TableStats::last`]):
/// dates outside are kept in the table but ignored as implausible (a typo like 1019 or 2091
/// must not stretch the coverage of a version). The lake has no clock; `niji-ingest` already
/// refuses dates after its caller's `now`, so this is a fixed sanity range only.
pub const COVERAGE_YEARS: std::ops::RangeInclusive<u16> = 1900..=2100;

/// Statistics of one table of a version, computed while writing.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TableStats {
    /// Rows written.
    pub rows: u64,
    /// Distinct `person_key` values among the rows.
    pub persons: u64,
    /// Earliest event date of the table within [`COVERAGE_YEARS`] (full precision: a partial date
    /// counts as its first day, as stored); `None` if the table has no event date (`patients`,
    /// `claim_lines`) or no row has one.
    pub first: Option<Date>,
    /// Latest event date, like [`TableStats::first`].
    pub last: Option<Date>,
}

impl TableStats {
    fn add_date(&mut self, d: Date) {
        if !COVERAGE_YEARS.contains(&d.year) {
            return;
        }
        let d = Date { precision: Precision::Day, ..d };
        self.first = Some(self.first.map_or(d, |f| f.min(d)));
        self.last = Some(self.last.map_or(d, |l| l.max(d)));
    }
}

/// What a [`LakeWriter`] wrote: rows, persons and coverage per table, in [`TABLES`] order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LakeSummary {
    /// Rows per table (the same numbers as [`TableStats::rows`]).
    pub rows: [u64; TABLES.len()],
    /// Records that have no standard table (organizations, payers, totals, …).
    pub skipped: u64,
    tables: [TableStats; TABLES.len()],
    persons: u64,
}

impl LakeSummary {
    /// Rows of one table by name (0 for an unknown name).
    pub fn rows_of(&self, table: &str) -> u64 {
        TABLES.iter().position(|t| *t == table).map_or(0, |i| self.rows[i])
    }

    /// Statistics of one table by name (`None` for an unknown name).
    pub fn table(&self, table: &str) -> Option<&TableStats> {
        TABLES.iter().position(|t| *t == table).map(|i| &self.tables[i])
    }

    /// Statistics of every table, in [`TABLES`] order.
    pub fn tables(&self) -> impl Iterator<Item = (&'static str, &TableStats)> {
        TABLES.into_iter().zip(self.tables.iter())
    }

    /// Distinct persons over all tables.
    pub fn persons(&self) -> u64 {
        self.persons
    }

    /// Earliest and latest event date over all tables (see [`TableStats::first`]).
    pub fn coverage(&self) -> Option<(Date, Date)> {
        let first = self.tables.iter().filter_map(|t| t.first).min()?;
        let last = self.tables.iter().filter_map(|t| t.last).max()?;
        Some((first, last))
    }
}

/// Writes one dataset version into a staging folder. Dropping it without [`LakeWriter::finish`]
/// leaves unreadable partial files that [`recover`] removes.
pub struct LakeWriter {
    staging: PathBuf,
    tables: Vec<TableWriter>,
    options: LakeOptions,
    file: i32,
    facility: FacilityContext,
    summary: LakeSummary,
    /// Distinct persons pushed by key: the key's first 16 bytes → a bit per table they have rows
    /// in (see the crate doc).
    persons: HashMap<[u8; 16], u16>,
    /// Persons pushed by number ([`LakeWriter::push_numbered`]): the same bits, at the number.
    numbered: Vec<u16>,
}

impl LakeWriter {
    /// Creates `staging` (a new folder named `.staging-…`) and one encrypted file per table.
    pub fn create(staging: &Path, key: &LakeKey, options: LakeOptions) -> Result<Self, LakeError> {
        let named = staging.file_name().and_then(|n| n.to_str()).is_some_and(|n| n.starts_with(STAGING_PREFIX));
        if !named {
            return Err(LakeError::BadStaging);
        }
        fs::create_dir(staging).map_err(|e| if e.kind() == io::ErrorKind::AlreadyExists { LakeError::BadStaging } else { e.into() })?;
        let mut tables = Vec::with_capacity(TABLES.len());
        for (i, name) in TABLES.iter().enumerate() {
            tables.push(TableWriter::create(staging, name, schema(i), key, options)?);
        }
        Ok(Self {
            staging: staging.to_path_buf(),
            tables,
            options,
            file: 0,
            facility: FacilityContext::default(),
            summary: LakeSummary::default(),
            persons: HashMap::new(),
            numbered: Vec::new(),
        })
    }

    /// Sets the number of the submitted file the next rows come from (`file` column of claims).
    pub fn set_file(&mut self, file: i32) {
        self.file = file;
        self.facility = FacilityContext::default();
    }

    /// Adds the rows of one record's content, without the person's birth date (`age` is null).
    pub fn push(&mut self, person: &PersonKey, content: &Content) -> Result<(), LakeError> {
        self.push_with_birth(person, None, content)
    }

    /// Adds the rows of one record's content; `birth` (the person's full birth date, which only
    /// the vault holds) gives the `age` column: whole years at the event.
    pub fn push_with_birth(&mut self, person: &PersonKey, birth: Option<Date>, content: &Content) -> Result<(), LakeError> {
        if let Some(table) = self.push_rows(person, birth, content)? {
            debug_assert!(self.numbered.is_empty(), "a writer's persons are numbered or by key, not both");
            let head: [u8; 16] = person.as_bytes()[..16].try_into().expect("32-byte key");
            *self.persons.entry(head).or_insert(0) |= 1 << table;
        }
        Ok(())
    }

    /// As [`LakeWriter::push_with_birth`], for a caller that numbers its persons 0, 1, 2, … (one
    /// number a key, the same key always the same number): persons are then counted in 2 bytes
    /// a number up to the largest pushed (the intake numbers the persons of its linkage run,
    /// read back ones included) instead of a hash map entry. A writer's pushes that make rows
    /// are all numbered or all by key (a person pushed both ways would count twice); content
    /// that makes no row (a claim's facility, totals) may come by key to a numbered writer.
    pub fn push_numbered(&mut self, person: &PersonKey, number: u32, birth: Option<Date>, content: &Content) -> Result<(), LakeError> {
        if let Some(table) = self.push_rows(person, birth, content)? {
            debug_assert!(self.persons.is_empty(), "a writer's persons are numbered or by key, not both");
            let at = number as usize;
            if at >= self.numbered.len() {
                self.numbered.resize(at + 1, 0);
            }
            self.numbered[at] |= 1 << table;
        }
        Ok(())
    }

    /// Adds the rows of one record's content; returns the table they went to, if any.
    fn push_rows(&mut self, person: &PersonKey, birth: Option<Date>, content: &Content) -> Result<Option<usize>, LakeError> {
        let k = person.as_bytes();
        let line = match content.record.location {
            Location::Line(n) | Location::Entry(n) => Some(n as i64),
            Location::File => None,
        };
        let file = Some(self.file as i64);
        let (table, rows): (usize, Vec<Vec<V>>) = match &content.body {
            ContentBody::Patient(p) => (
                0,
                vec![vec![
                    V::K(k),
                    V::S(p.sex.map(sex)),
                    ym(p.birth),
                    V::I(p.prefecture.map(|x| x.code() as i64)),
                    V::I(p.municipality.map(|x| x.code() as i64)),
                    V::B(p.deceased),
                    V::D(p.deceased_on),
                ]],
            ),
            ContentBody::Encounter(e) => (1, vec![vec![V::K(k), code(&e.status), code(&e.class), V::D(e.start), V::D(e.end)]]),
            ContentBody::Condition(c) => {
                let (sys, cd, alt) = codings(&c.codes);
                (
                    2,
                    vec![vec![
                        V::K(k),
                        V::S(Some("ehr".into())),
                        sys,
                        cd,
                        alt,
                        code(&c.clinical_status),
                        code(&c.verification_status),
                        list(&c.categories),
                        V::D(c.onset),
                        V::D(c.abatement),
                        V::D(c.recorded),
                        V::I(None),
                        V::I(None),
                        V::S(None),
                        V::I(None),
                        V::B(None),
                        V::S(None),
                    ]],
                )
            }
            ContentBody::ClaimDisease(c) => (
                2,
                vec![vec![
                    V::K(k),
                    V::S(Some("claim".into())),
                    V::S(Some(system(&c.code).into())),
                    V::S(Some(c.code.code.as_str().into())),
                    V::S(None),
                    V::S(None),
                    V::S(None),
                    V::S(None),
                    V::D(c.started),
                    V::D(None),
                    V::D(None),
                    V::I(file),
                    V::I(c.claim.map(|n| n as i64)),
                    list(&c.modifiers),
                    V::I(c.outcome.map(i64::from)),
                    V::B(Some(c.main)),
                    V::S(self.facility.code.as_deref().map(Cow::Borrowed)),
                ]],
            ),
            ContentBody::Medication(m) => {
                let (sys, cd, alt) = codings(&m.codes);
                let (dv, du) = qty(&m.dose);
                let (pv, pu) = qty(&m.dispense);
                (
                    3,
                    vec![vec![
                        V::K(k),
                        code(&m.status),
                        code(&m.intent),
                        list(&m.categories),
                        sys,
                        cd,
                        alt,
                        V::D(m.authored),
                        dv,
                        du,
                        V::F(m.duration_days),
                        pv,
                        pu,
                        list(&m.usage_codes),
                    ]],
                )
            }
            ContentBody::Observation(o) => {
                let mut rows = Vec::with_capacity(1 + o.components.len());
                let (sys, cd, alt) = codings(&o.codes);
                let (v, u) = qty(&o.value);
                rows.push(vec![
                    V::K(k),
                    V::I(None),
                    code(&o.status),
                    list(&o.categories),
                    sys,
                    cd,
                    alt,
                    V::D(o.effective),
                    v,
                    u,
                    coded_list(&o.value_codes),
                    list(&o.interpretation),
                ]);
                for (i, comp) in o.components.iter().enumerate() {
                    let (sys, cd, alt) = codings(&comp.codes);
                    let (v, u) = qty(&comp.value);
                    rows.push(vec![
                        V::K(k),
                        V::I(Some(i as i64 + 1)),
                        code(&o.status),
                        list(&o.categories),
                        sys,
                        cd,
                        alt,
                        V::D(o.effective),
                        v,
                        u,
                        coded_list(&comp.value_codes),
                        V::S(None),
                    ]);
                }
                (4, rows)
            }
            ContentBody::Allergy(a) => {
                let (sys, cd, alt) = codings(&a.codes);
                (
                    5,
                    vec![vec![
                        V::K(k),
                        sys,
                        cd,
                        alt,
                        list(&a.categories),
                        code(&a.criticality),
                        code(&a.clinical_status),
                        code(&a.verification_status),
                        V::D(a.onset),
                        V::D(a.recorded),
                    ]],
                )
            }
            ContentBody::ClaimFacility(f) => {
                self.facility = FacilityContext {
                    code: f.facility.as_ref().map(|c| c.code.as_str().to_string()),
                    prefecture: f.prefecture.map(|p| p.code() as i64),
                    fee_table: f.fee_table.map(i64::from),
                    billing_month: f.billing_month,
                };
                self.summary.skipped += 1;
                return Ok(None);
            }
            ContentBody::Claim(c) => (
                6,
                vec![vec![
                    V::K(k),
                    V::I(file),
                    V::I(line),
                    V::I(c.receipt_no.map(i64::from)),
                    code(&c.receipt_kind),
                    ym(c.month),
                    V::S(c.sex.map(sex)),
                    ym(c.birth),
                    V::I(c.benefit_ratio.map(i64::from)),
                    V::D(c.admitted_on),
                    V::S(self.facility.code.as_deref().map(Cow::Borrowed)),
                    V::I(self.facility.prefecture),
                    V::I(self.facility.fee_table),
                    ym(self.facility.billing_month),
                ]],
            ),
            ContentBody::ClaimLine(l) => (
                7,
                vec![vec![
                    V::K(k),
                    V::I(file),
                    V::I(l.claim.map(|n| n as i64)),
                    V::S(Some(line_kind(l.kind).into())),
                    V::I(l.category.map(i64::from)),
                    code(&l.burden),
                    V::S(Some(system(&l.code).into())),
                    V::S(Some(l.code.code.as_str().into())),
                    V::F(l.quantity),
                    V::I(l.points.map(|p| p as i64)),
                    V::I(l.times.map(i64::from)),
                    list(&l.comment_codes),
                    V::S(self.facility.code.as_deref().map(Cow::Borrowed)),
                ]],
            ),
            ContentBody::Row(values) => (8, values.iter().map(|v| registry_row(k, file, line, v)).collect()),
            _ => {
                self.summary.skipped += 1;
                return Ok(None);
            }
        };
        // Tables 1–6 end in `age`: whole years from the birth date to the event (its first date).
        let age = if (1..=6).contains(&table) {
            let event = event_dates(&content.body).into_iter().flatten().next();
            V::I(birth.zip(event).and_then(|(b, e)| age_at(b, e)).map(i64::from))
        } else {
            V::I(None)
        };
        // Passed as the row's last cell, not pushed onto it (which would reallocate every row).
        let tail = (1..=6).contains(&table).then_some(&age);
        for row in rows {
            self.tables[table].push(&row, tail);
            self.summary.rows[table] += 1;
            if self.tables[table].rows >= self.options.batch_rows {
                self.tables[table].flush()?;
            }
        }
        for d in event_dates(&content.body).into_iter().flatten() {
            self.summary.tables[table].add_date(d);
        }
        if let ContentBody::Row(values) = &content.body {
            for v in values {
                if let Value::Date(d) = v.value {
                    self.summary.tables[table].add_date(d);
                }
            }
        }
        Ok(Some(table))
    }

    /// Writes the remaining rows and every file's encrypted footer. The caller then [`commit`]s.
    pub fn finish(mut self) -> Result<LakeSummary, LakeError> {
        for t in self.tables.drain(..) {
            t.close()?;
        }
        let mut summary = std::mem::take(&mut self.summary);
        for (i, t) in summary.tables.iter_mut().enumerate() {
            t.rows = summary.rows[i];
            let has_rows = |&&tables: &&u16| tables & (1 << i) != 0;
            t.persons = (self.persons.values().filter(has_rows).count() + self.numbered.iter().filter(has_rows).count()) as u64;
        }
        summary.persons = (self.persons.len() + self.numbered.iter().filter(|&&tables| tables != 0).count()) as u64;
        Ok(summary)
    }

    /// The staging folder being written.
    pub fn staging(&self) -> &Path {
        &self.staging
    }
}

/// Makes a finished staging folder the version folder `final_dir`: fsyncs every file and the
/// folder, renames (refusing an existing `final_dir`) and fsyncs the parent folder.
pub fn commit(staging: &Path, final_dir: &Path) -> Result<(), LakeError> {
    for entry in fs::read_dir(staging)? {
        let entry = entry?;
        if entry.file_type()?.is_file() {
            File::open(entry.path())?.sync_all()?;
        }
    }
    File::open(staging)?.sync_all()?;
    if final_dir.exists() {
        return Err(LakeError::VersionExists);
    }
    fs::rename(staging, final_dir)?;
    if let Some(parent) = final_dir.parent() {
        File::open(if parent.as_os_str().is_empty() { Path::new(".") } else { parent })?.sync_all()?;
    }
    Ok(())
}

/// Removes staging folders (`.staging-…`) left in `lake_dir` by an interrupted write. Returns how
/// many were removed. Call it before writing, with no writer running.
pub fn recover(lake_dir: &Path) -> Result<usize, LakeError> {
    let mut removed = 0;
    if !lake_dir.exists() {
        return Ok(0);
    }
    for entry in fs::read_dir(lake_dir)? {
        let entry = entry?;
        if entry.file_name().to_str().is_some_and(|n| n.starts_with(STAGING_PREFIX)) {
            fs::remove_dir_all(entry.path())?;
            removed += 1;
        }
    }
    if removed > 0 {
        File::open(lake_dir)?.sync_all()?;
    }
    Ok(removed)
}

/// Opens one table of a version folder as a stream of decrypted batches. A wrong key or damaged
/// footer fails here; damaged pages fail when their batch is read ([`read_table`] maps that).
pub fn open_table(version_dir: &Path, table: &str, key: &LakeKey) -> Result<ParquetRecordBatchReader, LakeError> {
    if !TABLES.contains(&table) {
        return Err(LakeError::UnknownTable);
    }
    let unreadable = |source| LakeError::Unreadable { table: table.to_string(), source };
    let file = File::open(version_dir.join(format!("{table}.parquet")))?;
    let decryption = FileDecryptionProperties::builder(key.0.to_vec()).with_aad_prefix(aad(table)).build().map_err(unreadable)?;
    let options = ArrowReaderOptions::new().with_file_decryption_properties(decryption);
    ParquetRecordBatchReaderBuilder::try_new_with_options(file, options).and_then(|b| b.build()).map_err(unreadable)
}

/// Reads a whole table (tests, small tables). Any authentication failure is [`LakeError::Unreadable`].
///
/// Batches come in the table's current schema ([`table_schema`]): a version written before a
/// column was added (`facility_code` of `claim_lines` and `conditions`) reads it as nulls.
pub fn read_table(version_dir: &Path, table: &str, key: &LakeKey) -> Result<Vec<RecordBatch>, LakeError> {
    let reader = open_table(version_dir, table, key)?;
    let unreadable = |e: arrow_schema::ArrowError| LakeError::Unreadable {
        table: table.to_string(),
        source: parquet::errors::ParquetError::ArrowError(e.to_string()),
    };
    let schema = table_schema(table).ok_or(LakeError::UnknownTable)?;
    reader.map(|b| b.and_then(|b| conform(&schema, b)).map_err(unreadable)).collect()
}

/// `batch` in `schema`: its columns by name, a column it lacks as nulls.
fn conform(schema: &SchemaRef, batch: RecordBatch) -> Result<RecordBatch, arrow_schema::ArrowError> {
    if batch.schema().fields() == schema.fields() {
        return Ok(batch);
    }
    let columns = schema
        .fields()
        .iter()
        .map(|f| batch.column_by_name(f.name()).cloned().unwrap_or_else(|| arrow_array::new_null_array(f.data_type(), batch.num_rows())))
        .collect();
    RecordBatch::try_new(schema.clone(), columns)
}

/// The Arrow schema of a table (by its index in [`TABLES`]).
pub fn table_schema(table: &str) -> Option<SchemaRef> {
    TABLES.iter().position(|t| *t == table).map(schema)
}

// ---------------------------------------------------------------------------------------------

#[derive(Default)]
struct FacilityContext {
    code: Option<String>,
    prefecture: Option<i64>,
    fee_table: Option<i64>,
    billing_month: Option<YearMonth>,
}

/// One cell of a row being pushed.
#[derive(Clone)]
enum V<'a> {
    K(&'a [u8; 32]),
    S(Option<Cow<'a, str>>),
    I(Option<i64>),
    F(Option<f64>),
    B(Option<bool>),
    D(Option<Date>),
}

#[derive(Clone, Copy)]
enum T {
    Key,
    Str,
    I32,
    I64,
    F64,
    Bool,
    Date,
}

fn columns(table: usize) -> &'static [(&'static str, T)] {
    use T::*;
    match table {
        0 => &[
            ("person_key", Key),
            ("sex", Str),
            ("birth_year_month", Str),
            ("prefecture", I32),
            ("municipality", I32),
            ("deceased", Bool),
            ("deceased_on", Date),
        ],
        1 => &[("person_key", Key), ("status", Str), ("class", Str), ("start", Date), ("end", Date), ("age", I32)],
        2 => &[
            ("person_key", Key),
            ("source", Str),
            ("code_system", Str),
            ("code", Str),
            ("alt_codes", Str),
            ("clinical_status", Str),
            ("verification_status", Str),
            ("categories", Str),
            ("onset", Date),
            ("abatement", Date),
            ("recorded", Date),
            ("file", I32),
            ("claim", I64),
            ("modifiers", Str),
            ("outcome", I32),
            ("main", Bool),
            ("facility_code", Str),
            ("age", I32),
        ],
        3 => &[
            ("person_key", Key),
            ("status", Str),
            ("intent", Str),
            ("categories", Str),
            ("code_system", Str),
            ("code", Str),
            ("alt_codes", Str),
            ("authored", Date),
            ("dose_value", F64),
            ("dose_unit", Str),
            ("duration_days", F64),
            ("dispense_value", F64),
            ("dispense_unit", Str),
            ("usage_codes", Str),
            ("age", I32),
        ],
        4 => &[
            ("person_key", Key),
            ("component", I32),
            ("status", Str),
            ("categories", Str),
            ("code_system", Str),
            ("code", Str),
            ("alt_codes", Str),
            ("effective", Date),
            ("value", F64),
            ("unit", Str),
            ("value_codes", Str),
            ("interpretation", Str),
            ("age", I32),
        ],
        5 => &[
            ("person_key", Key),
            ("code_system", Str),
            ("code", Str),
            ("alt_codes", Str),
            ("categories", Str),
            ("criticality", Str),
            ("clinical_status", Str),
            ("verification_status", Str),
            ("onset", Date),
            ("recorded", Date),
            ("age", I32),
        ],
        6 => &[
            ("person_key", Key),
            ("file", I32),
            ("claim", I64),
            ("receipt_no", I64),
            ("receipt_kind", Str),
            ("month", Str),
            ("sex", Str),
            ("birth_year_month", Str),
            ("benefit_ratio", I32),
            ("admitted_on", Date),
            ("facility_code", Str),
            ("facility_prefecture", I32),
            ("fee_table", I32),
            ("billing_month", Str),
            ("age", I32),
        ],
        7 => &[
            ("person_key", Key),
            ("file", I32),
            ("claim", I64),
            ("kind", Str),
            ("category", I32),
            ("burden", Str),
            ("code_system", Str),
            ("code", Str),
            ("quantity", F64),
            ("points", I64),
            ("times", I32),
            ("comment_codes", Str),
            ("facility_code", Str),
        ],
        _ => &[
            ("person_key", Key),
            ("file", I32),
            ("line", I64),
            ("variable", Str),
            ("value_type", Str),
            ("code_system", Str),
            ("value_text", Str),
            ("value_number", F64),
            ("unit", Str),
            ("value_date", Date),
        ],
    }
}

/// One `registry_values` row: a CSV row's value in the long form (see the crate doc).
fn registry_row<'a>(k: &'a [u8; 32], file: Option<i64>, line: Option<i64>, v: &'a RowValue) -> Vec<V<'a>> {
    let text = |s: Cow<'a, str>| V::S(Some(s));
    let (ty, system, value, number, unit, date) = match &v.value {
        Value::Coded(c) => ("code", V::S(Some(system(c).into())), text(c.code.as_str().into()), None, V::S(None), None),
        Value::Number(x) => ("number", V::S(None), V::S(None), Some(*x), V::S(None), None),
        Value::Quantity(q) => {
            let (n, u) = qty_ref(q);
            ("number", V::S(None), V::S(None), n, u, None)
        }
        Value::Date(d) => ("date", V::S(None), V::S(None), None, V::S(None), Some(*d)),
        Value::YearMonth(m) => ("year_month", V::S(None), ym(Some(*m)), None, V::S(None), None),
        Value::Sex(s) => ("sex", V::S(None), V::S(Some(sex(*s))), None, V::S(None), None),
        Value::Prefecture(p) => ("prefecture", V::S(None), text(format!("{:02}", p.code()).into()), None, V::S(None), None),
        Value::Municipality(m) => ("municipality", V::S(None), text(format!("{:05}", m.code()).into()), None, V::S(None), None),
    };
    vec![V::K(k), V::I(file), V::I(line), V::S(Some(v.column.as_str().into())), V::S(Some(ty.into())), system, value, V::F(number), unit, V::D(date)]
}

fn qty_ref<'a>(q: &'a Quantity) -> (Option<f64>, V<'a>) {
    (Some(q.value), V::S(q.unit.as_ref().map(|u| Cow::Borrowed(u.as_str()))))
}

fn schema(table: usize) -> SchemaRef {
    let fields: Vec<Field> = columns(table)
        .iter()
        .map(|(name, t)| match t {
            T::Key => Field::new(*name, DataType::FixedSizeBinary(32), false),
            T::Str => Field::new(*name, DataType::Utf8, true),
            T::I32 => Field::new(*name, DataType::Int32, true),
            T::I64 => Field::new(*name, DataType::Int64, true),
            T::F64 => Field::new(*name, DataType::Float64, true),
            T::Bool => Field::new(*name, DataType::Boolean, true),
            T::Date => Field::new(*name, DataType::Date32, true),
        })
        .collect();
    Arc::new(Schema::new(fields))
}

fn aad(table: &str) -> Vec<u8> {
    format!("niji-lake:{table}").into_bytes()
}

enum Col {
    Key(FixedSizeBinaryBuilder),
    Str(StringBuilder),
    I32(Int32Builder),
    I64(Int64Builder),
    F64(Float64Builder),
    Bool(BooleanBuilder),
    Date(Date32Builder),
}

struct TableWriter {
    name: &'static str,
    schema: SchemaRef,
    cols: Vec<Col>,
    rows: usize,
    writer: ArrowWriter<File>,
}

impl TableWriter {
    fn create(dir: &Path, name: &'static str, schema: SchemaRef, key: &LakeKey, options: LakeOptions) -> Result<Self, LakeError> {
        let werr = |source| LakeError::Write { table: name.to_string(), source };
        let encryption =
            FileEncryptionProperties::builder(key.0.to_vec()).with_aad_prefix(aad(name)).with_aad_prefix_storage(false).build().map_err(werr)?;
        let props = WriterProperties::builder()
            .set_max_row_group_row_count(Some(options.row_group_rows.max(1)))
            .with_file_encryption_properties(encryption)
            .build();
        let file = File::create_new(dir.join(format!("{name}.parquet")))?;
        let writer = ArrowWriter::try_new(file, schema.clone(), Some(props)).map_err(werr)?;
        let mut t = Self { name, schema, cols: Vec::new(), rows: 0, writer };
        t.reset_builders();
        Ok(t)
    }

    fn reset_builders(&mut self) {
        self.cols = self
            .schema
            .fields()
            .iter()
            .map(|f| match f.data_type() {
                DataType::FixedSizeBinary(n) => Col::Key(FixedSizeBinaryBuilder::new(*n)),
                DataType::Utf8 => Col::Str(StringBuilder::new()),
                DataType::Int32 => Col::I32(Int32Builder::new()),
                DataType::Int64 => Col::I64(Int64Builder::new()),
                DataType::Float64 => Col::F64(Float64Builder::new()),
                DataType::Boolean => Col::Bool(BooleanBuilder::new()),
                _ => Col::Date(Date32Builder::new()),
            })
            .collect();
    }

    /// Appends one row; cells must match the table's columns (checked in debug builds).
    /// Appends `row` followed by `tail` (if any).
    fn push(&mut self, row: &[V], tail: Option<&V>) {
        debug_assert_eq!(row.len() + usize::from(tail.is_some()), self.cols.len(), "row shape of {}", self.name);
        for (col, cell) in self.cols.iter_mut().zip(row.iter().chain(tail)) {
            match (col, cell) {
                (Col::Key(b), V::K(k)) => b.append_value(k).expect("32-byte key"),
                (Col::Str(b), V::S(s)) => b.append_option(s.as_deref()),
                (Col::I32(b), V::I(i)) => b.append_option(i.and_then(|i| i32::try_from(i).ok())),
                (Col::I64(b), V::I(i)) => b.append_option(*i),
                (Col::F64(b), V::F(f)) => b.append_option(*f),
                (Col::Bool(b), V::B(x)) => b.append_option(*x),
                (Col::Date(b), V::D(d)) => b.append_option(d.map(days)),
                _ => unreachable!("cell type does not match column of {}", self.name),
            }
        }
        self.rows += 1;
    }

    fn flush(&mut self) -> Result<(), LakeError> {
        if self.rows == 0 {
            return Ok(());
        }
        let arrays: Vec<ArrayRef> = self
            .cols
            .iter_mut()
            .map(|c| -> ArrayRef {
                match c {
                    Col::Key(b) => Arc::new(b.finish()),
                    Col::Str(b) => Arc::new(b.finish()),
                    Col::I32(b) => Arc::new(b.finish()),
                    Col::I64(b) => Arc::new(b.finish()),
                    Col::F64(b) => Arc::new(b.finish()),
                    Col::Bool(b) => Arc::new(b.finish()),
                    Col::Date(b) => Arc::new(b.finish()),
                }
            })
            .collect();
        self.rows = 0;
        let name = self.name;
        let batch = RecordBatch::try_new(self.schema.clone(), arrays).map_err(|e| LakeError::Write { table: name.to_string(), source: e.into() })?;
        self.writer.write(&batch).map_err(|source| LakeError::Write { table: name.to_string(), source })
    }

    fn close(mut self) -> Result<(), LakeError> {
        self.flush()?;
        let name = self.name;
        self.writer.close().map_err(|source| LakeError::Write { table: name.to_string(), source })?;
        Ok(())
    }
}

/// The event dates of a record for coverage (see [`TableStats::first`]): encounters start/end,
/// conditions onset/recorded (claim diseases: 診療開始日), medications authored, lab results
/// effective, allergies onset/recorded, claims 診療年月 (first day) and admission date.
fn event_dates(body: &ContentBody) -> [Option<Date>; 2] {
    match body {
        ContentBody::Encounter(e) => [e.start, e.end],
        ContentBody::Condition(c) => [c.onset, c.recorded],
        ContentBody::ClaimDisease(c) => [c.started, None],
        ContentBody::Medication(m) => [m.authored, None],
        ContentBody::Observation(o) => [o.effective, None],
        ContentBody::Allergy(a) => [a.onset, a.recorded],
        ContentBody::Claim(c) => [c.month.and_then(|m| Date::new(m.year, m.month, 1).ok()), c.admitted_on],
        _ => [None, None],
    }
}

/// Whole years from `birth` to `event`; `None` for an event before the birth or past 150
/// years (a date error, not an age).
fn age_at(birth: Date, event: Date) -> Option<i32> {
    let mut years = event.year as i32 - birth.year as i32;
    if (event.month, event.day) < (birth.month, birth.day) {
        years -= 1;
    }
    (0..=150).contains(&years).then_some(years)
}

/// Days since 1970-01-01 (proleptic Gregorian).
fn days(d: Date) -> i32 {
    let (y, m, dd) = (d.year as i64, d.month.max(1) as i64, d.day.max(1) as i64);
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + dd - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    (era * 146097 + doe - 719468) as i32
}

fn sex<'a>(s: Sex) -> Cow<'a, str> {
    Cow::Borrowed(match s {
        Sex::Male => "male",
        Sex::Female => "female",
        Sex::Other => "other",
        Sex::Unknown => "unknown",
    })
}

/// The `kind` column of a claim line: the variant's name in lower case (a test checks it
/// against `Debug`).
fn line_kind(k: ClaimLineKind) -> &'static str {
    match k {
        ClaimLineKind::Procedure => "procedure",
        ClaimLineKind::Drug => "drug",
        ClaimLineKind::Material => "material",
        ClaimLineKind::Comment => "comment",
    }
}

fn ym<'a>(v: Option<YearMonth>) -> V<'a> {
    V::S(v.map(|v| format!("{:04}-{:02}", v.year, v.month).into()))
}

fn code<'a>(c: &'a Option<Code>) -> V<'a> {
    V::S(c.as_ref().map(|c| Cow::Borrowed(c.as_str())))
}

fn list<'a>(codes: &'a [Code]) -> V<'a> {
    V::S(match codes {
        [] => None,
        [one] => Some(Cow::Borrowed(one.as_str())),
        _ => Some(codes.iter().map(Code::as_str).collect::<Vec<_>>().join(";").into()),
    })
}

/// The `system` column: the code system's variant name (`CodeSystem::name`).
fn system(c: &Coded) -> &'static str {
    c.system.name()
}

fn coded_list<'a>(codes: &[Coded]) -> V<'a> {
    V::S((!codes.is_empty()).then(|| codes.iter().map(|c| format!("{}:{}", system(c), c.code.as_str())).collect::<Vec<_>>().join(";").into()))
}

/// Primary coding (first) and the others.
fn codings<'a>(codes: &'a [Coded]) -> (V<'a>, V<'a>, V<'a>) {
    match codes.split_first() {
        Some((first, rest)) => (V::S(Some(system(first).into())), V::S(Some(first.code.as_str().into())), coded_list(rest)),
        None => (V::S(None), V::S(None), V::S(None)),
    }
}

fn qty<'a>(q: &'a Option<Quantity>) -> (V<'a>, V<'a>) {
    match q {
        Some(q) => (V::F(Some(q.value)), V::S(q.unit.as_ref().map(|u| Cow::Borrowed(u.as_str())))),
        None => (V::F(None), V::S(None)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_version_written_before_a_column_was_added_reads_it_as_nulls() {
        let schema = table_schema("claim_lines").unwrap();
        let old: Vec<usize> = (0..schema.fields().len()).filter(|&i| schema.field(i).name() != "facility_code").collect();
        let old_schema = Arc::new(schema.project(&old).unwrap());
        let columns: Vec<ArrayRef> = old_schema
            .fields()
            .iter()
            .map(|f| match f.data_type() {
                DataType::FixedSizeBinary(32) => {
                    Arc::new(arrow_array::FixedSizeBinaryArray::try_from_iter([[1u8; 32]; 3].iter()).unwrap()) as ArrayRef
                }
                t => arrow_array::new_null_array(t, 3),
            })
            .collect();
        let batch = RecordBatch::try_new(old_schema, columns).unwrap();
        let read = conform(&schema, batch).unwrap();
        assert_eq!(read.schema(), schema);
        assert_eq!(read.column_by_name("facility_code").unwrap().null_count(), 3);
    }

    #[test]
    fn static_names_match_debug() {
        for k in [ClaimLineKind::Procedure, ClaimLineKind::Drug, ClaimLineKind::Material, ClaimLineKind::Comment] {
            assert_eq!(line_kind(k), format!("{k:?}").to_ascii_lowercase());
        }
    }

    #[test]
    fn epoch_days() {
        let d = |y, m, dd| days(Date::new(y, m, dd).unwrap());
        assert_eq!(d(1970, 1, 1), 0);
        assert_eq!(d(2000, 3, 1), 11017);
        assert_eq!(d(2024, 2, 29), 19782);
    }

    /// Coverage ignores implausible years, counts partial dates as their first day and a claim's
    /// 診療年月 as its first day; persons are distinct per table and over all tables.
    #[test]
    fn statistics_of_hand_built_records() {
        use niji_ingest::{ClaimContent, EncounterContent, PatientContent, RecordRef};
        use niji_privacy::{Domain, Pseudonymizer, VaultKey};
        let pseudo = Pseudonymizer::new(&VaultKey::from_bytes(&[7; 32]).unwrap());
        let (a, b) = (pseudo.keyed(Domain::Person, &["a"]), pseudo.keyed(Domain::Person, &["b"]));
        let content = |body| Content { record: RecordRef { location: Location::Line(1) }, body };
        let date = |y, m, d| Date::new(y, m, d).unwrap();
        let year_only = Date { precision: Precision::Year, ..date(2015, 1, 1) };
        // Persons pushed by key, or numbered as the intake numbers them: the same statistics.
        for numbered in [false, true] {
            let dir = tempfile::tempdir().unwrap();
            let mut w = LakeWriter::create(&dir.path().join(".staging-x"), &LakeKey([1; 32]), LakeOptions::default()).unwrap();
            let push = |w: &mut LakeWriter, person: &PersonKey, c: &Content| match numbered {
                true => w.push_numbered(person, u32::from(person == &b), None, c),
                false => w.push(person, c),
            };
            push(&mut w, &a, &content(ContentBody::Patient(PatientContent::default()))).unwrap();
            let enc = |start, end| content(ContentBody::Encounter(EncounterContent { start, end, ..Default::default() }));
            push(&mut w, &a, &enc(Some(date(1850, 6, 1)), Some(date(2020, 3, 4)))).unwrap();
            push(&mut w, &b, &enc(Some(year_only), Some(date(2101, 1, 1)))).unwrap();
            push(&mut w, &a, &enc(None, None)).unwrap();
            let claim = ClaimContent { month: Some(YearMonth { year: 2019, month: 7 }), admitted_on: Some(date(2019, 6, 20)), ..Default::default() };
            push(&mut w, &b, &content(ContentBody::Claim(claim))).unwrap();
            let s = w.finish().unwrap();
            let enc = s.table("encounters").unwrap();
            assert_eq!((enc.rows, enc.persons), (3, 2));
            assert_eq!(enc.first, Some(date(2015, 1, 1)));
            assert_eq!(enc.last, Some(date(2020, 3, 4)));
            let claims = s.table("claims").unwrap();
            assert_eq!((claims.rows, claims.persons, claims.first, claims.last), (1, 1, Some(date(2019, 6, 20)), Some(date(2019, 7, 1))));
            assert_eq!(*s.table("patients").unwrap(), TableStats { rows: 1, persons: 1, first: None, last: None });
            assert_eq!(s.table("claim_lines"), Some(&TableStats::default()));
            assert_eq!(s.persons(), 2);
            assert_eq!(s.coverage(), Some((date(2015, 1, 1), date(2020, 3, 4))));
            assert_eq!(s.rows, [1, 3, 0, 0, 0, 0, 1, 0, 0]);
        }
        assert_eq!(LakeSummary::default().coverage(), None);
    }

    #[test]
    fn schemas_match_tables() {
        for t in TABLES {
            assert_eq!(table_schema(t).unwrap().field(0).name(), "person_key");
        }
    }
}
