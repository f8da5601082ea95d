//! The per-file report: accepted counts per record kind, rejected records and warnings, each
//! located as `file:line` or `file:entry N`, with the field and a reason.
//!
//! Invariant: a [`Reason`] is an enum with fixed messages and at most small numbers (field
//! counts, code system labels) — it cannot quote a value from the input, so a report is safe to
//! show the data holder. Field paths are built from schema names and indices, never from data.

use std::collections::BTreeMap;
use std::fmt;

use crate::codes::CodeSystem;
use crate::dates::DateError;
use crate::model::Location;

/// Kinds of records counted in a report.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum RecordKind {
    Patient,
    Condition,
    Observation,
    AllergyIntolerance,
    MedicationRequest,
    Encounter,
    Organization,
    Practitioner,
    /// A FHIR resource of a type this crate does not ingest (Composition, CarePlan, …): skipped.
    OtherResource,
    Uke(UkeRecord),
    CsvRow,
}

/// UKE record identifiers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum UkeRecord {
    IR,
    RE,
    HO,
    KO,
    SN,
    JD,
    MF,
    SY,
    SI,
    IY,
    TO,
    CO,
    SJ,
    GO,
    Other,
}

impl fmt::Display for RecordKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RecordKind::Uke(r) => write!(f, "{r:?}"),
            other => write!(f, "{other:?}"),
        }
    }
}

/// Why a record or field was refused or warned about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reason {
    Missing,
    Empty,
    NotJson,
    NotAnObject,
    WrongType(&'static str),
    NotShiftJis,
    NotUtf8,
    LineTooLong,
    /// A CSV row longer than the line limit across `lines` lines (a quoted cell with line
    /// breaks), or whose quoted cell is still open at the end of the file: none of its lines
    /// is read as a row.
    UnclosedQuote {
        lines: u64,
    },
    TooFewFields {
        expected: usize,
    },
    UnknownResourceType,
    UnsupportedResourceType,
    BundleType,
    Shape(CodeSystem),
    Date(DateError),
    InsurerCheckDigit,
    InsurerShape,
    PayerCheckDigit,
    MemberIdShape,
    BadValue(&'static str),
    UnknownCodeSystem,
    /// JP_MedicationRequest_eCS: no YJ, 一般名処方 or 標準コードなし coding.
    NoStandardDrugCode,
    /// JP_Observation_LabResult_eCS: no JP_CLINS_ObsLabResult_LocalCode_CS coding.
    NoLocalLabCode,
    NotInMaster(CodeSystem),
    NotCheckedAgainstMaster(CodeSystem),
    UnresolvedContained,
    UnknownRecord,
    RecordOutsideClaim,
    InRejectedClaim,
    BareLf,
    ValueDropped(&'static str),
    ColumnMissing,
    /// A CSV content value equal to an identifier of the same row (a column mapped twice, once
    /// as content): the value would reach the lake.
    RepeatsIdentifier,
    /// A CSV content column whose values are fixed-width and nearly all distinct: it looks like
    /// an identifier mapped as content, and the whole file is refused.
    LooksLikeIdentifier {
        values: u64,
        distinct: u64,
        width: usize,
    },
    /// The record's subject is not a Patient of the same submission (found by the intake, which
    /// sees every file of a submission; a single file cannot tell).
    UnresolvedSubject,
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use Reason::*;
        match self {
            Missing => f.write_str("required element is missing"),
            Empty => f.write_str("value is empty"),
            NotJson => f.write_str("not valid JSON"),
            NotAnObject => f.write_str("not a JSON object"),
            WrongType(t) => write!(f, "must be {t}"),
            NotShiftJis => f.write_str("line is not valid Shift_JIS"),
            NotUtf8 => f.write_str("not valid UTF-8"),
            LineTooLong => f.write_str("line is longer than the limit"),
            UnclosedQuote { lines: 1 } => f.write_str("quoted cell is not closed by the end of the file; the row's line is not read"),
            UnclosedQuote { lines } => write!(
                f,
                "row is longer than the line limit, or its quoted cell is not closed by the end of the file; its {lines} lines are not read as rows"
            ),
            TooFewFields { expected } => write!(f, "record has fewer than {expected} fields"),
            UnknownResourceType => f.write_str("not a FHIR resource type"),
            UnsupportedResourceType => f.write_str("resource type is not ingested; skipped"),
            BundleType => f.write_str("Bundle.type must be collection, document, transaction, batch or searchset"),
            Shape(s) => write!(f, "not a valid {} (wrong shape)", s.label()),
            Date(e) => write!(f, "{e}"),
            InsurerCheckDigit => f.write_str("insurer number check digit is wrong"),
            InsurerShape => f.write_str("insurer number must have 6 or 8 digits"),
            PayerCheckDigit => f.write_str("公費負担者番号 check digit is wrong"),
            MemberIdShape => f.write_str("member id must be 保険者番号:記号:番号:枝番"),
            BadValue(what) => write!(f, "not a valid {what}"),
            UnknownCodeSystem => f.write_str("code system is not known to Niji; code not kept"),
            NoStandardDrugCode => f.write_str("JP_MedicationRequest_eCS needs a YJ code, a 一般名処方コード or the 標準コードなし marker"),
            NoLocalLabCode => f.write_str("JP_Observation_LabResult_eCS needs a local lab code (JP_CLINS_ObsLabResult_LocalCode_CS)"),
            NotInMaster(s) => write!(f, "code is not in the loaded {} master", s.label()),
            NotCheckedAgainstMaster(s) => write!(f, "no {} master loaded; code shape checked only", s.label()),
            UnresolvedContained => f.write_str("reference to a contained resource that is not there"),
            UnknownRecord => f.write_str("unknown record identifier; record not kept"),
            RecordOutsideClaim => f.write_str("record appears before any RE record"),
            InRejectedClaim => f.write_str("belongs to a rejected claim (RE)"),
            BareLf => f.write_str("line ends with LF only (CRLF expected)"),
            ValueDropped(what) => write!(f, "{what} not kept"),
            ColumnMissing => f.write_str("mapped column is not in the header"),
            RepeatsIdentifier => f.write_str("content value repeats an identifier of the same row; map the column as identifier or ignore"),
            LooksLikeIdentifier { values, distinct, width } => write!(
                f,
                "content column looks like an identifier ({distinct} distinct of {values} values, all {width} characters wide); map it as identifier or ignore; file refused"
            ),
            UnresolvedSubject => f.write_str("subject does not refer to a Patient of this submission"),
        }
    }
}

/// One located problem.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub location: Location,
    pub field: String,
    pub reason: Reason,
}

impl Problem {
    pub fn new(location: Location, field: impl Into<String>, reason: Reason) -> Self {
        Self { location, field: field.into(), reason }
    }
}

/// The report of one file.
#[derive(Debug, Clone, Default)]
pub struct FileReport {
    /// The file name as the caller gave it.
    pub file: String,
    pub accepted: BTreeMap<RecordKind, u64>,
    pub skipped: u64,
    /// All problems of rejected records (a record can have several).
    pub rejected: Vec<Problem>,
    /// Number of rejected records.
    pub rejected_records: u64,
    pub warnings: Vec<Problem>,
    /// The whole file is refused (a mapping that would let identifiers into the lake): none of
    /// its records may be stored, whatever the holder chose for rejected records.
    pub file_refused: bool,
}

impl FileReport {
    pub fn new(file: impl Into<String>) -> Self {
        Self { file: file.into(), ..Default::default() }
    }

    pub fn accepted_total(&self) -> u64 {
        self.accepted.values().sum()
    }

    /// `file:line:field: reason` (or `file:entry N:…`).
    pub fn format(&self, p: &Problem) -> String {
        format!("{}:{}:{}: {}", self.file, p.location, p.field, p.reason)
    }

    /// All rejects, formatted.
    pub fn rejected_lines(&self) -> Vec<String> {
        self.rejected.iter().map(|p| self.format(p)).collect()
    }

    /// All warnings, formatted.
    pub fn warning_lines(&self) -> Vec<String> {
        self.warnings.iter().map(|p| self.format(p)).collect()
    }

    pub(crate) fn accept(&mut self, kind: RecordKind) {
        *self.accepted.entry(kind).or_default() += 1;
    }

    /// Counts one rejected record with its problems.
    pub fn reject(&mut self, problems: Vec<Problem>) {
        self.rejected_records += 1;
        self.rejected.extend(problems);
    }
}

/// Problems collected while reading one record.
#[derive(Debug, Default)]
pub(crate) struct Issues {
    pub errors: Vec<Problem>,
    pub warnings: Vec<Problem>,
}

impl Issues {
    pub fn error(&mut self, location: Location, field: impl Into<String>, reason: Reason) {
        self.errors.push(Problem::new(location, field, reason));
    }
    pub fn warn(&mut self, location: Location, field: impl Into<String>, reason: Reason) {
        self.warnings.push(Problem::new(location, field, reason));
    }
}
