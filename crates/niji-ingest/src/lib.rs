//! Intake of what data holders submit: CLINS FHIR `Bundle` JSON and single resources, FHIR Bulk
//! Data NDJSON, UKE レセプト電算 files and CSV with a mapping. Each file is parsed and validated
//! record by record; every accepted record is split into an identity part (names, numbers,
//! addresses, free text — for the identity vault) and a content part (codes, values, dates — for
//! the lake) and handed to the caller's sink; the caller gets a [`FileReport`].
//!
//! Invariants:
//! - Streaming: NDJSON, UKE and CSV are read line by line with a bounded line length
//!   ([`IngestConfig::max_line_bytes`]); only a single JSON file (a Bundle) is parsed whole, up to
//!   [`IngestConfig::max_json_bytes`].
//! - The content part cannot hold an identifying value by construction (see [`model`]).
//! - Reports never quote input values (see [`report`]); locations are `file:line` or
//!   `file:entry N`.
//! - No clock reads: "not in the future" is relative to [`IngestConfig::now`].
//! - No I/O besides reading the caller's readers / files; no HTTP, no JSON types in the API.

pub mod codes;
pub mod csv_map;
pub mod dates;
pub mod fhir;
pub mod masters;
pub mod model;
pub mod report;
pub mod uke;

use std::io::{self, BufRead, BufReader, Read};
use std::path::Path;

pub use codes::CodeSystem;
pub use csv_map::{ColumnRole, ColumnSpec, CsvMapping, MappingError, QuasiKind};
pub use dates::{Date, DateError, PackedDate};
pub use masters::{CodeMasters, LoadedMaster, MasterError, MastersCache, MastersLoaded};
pub use model::*;
pub use report::{FileReport, Problem, Reason, RecordKind, UkeRecord};

/// How a finding is treated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Severity {
    /// The record is rejected.
    Reject,
    /// The record is accepted with a warning.
    Warn,
}

/// Settings of one intake run.
#[derive(Debug, Clone)]
pub struct IngestConfig {
    /// Today (JST calendar date) for "not in the future" checks.
    pub now: Date,
    /// CLINS rules beyond JP Core (default `true`): JP_Observation_LabResult_eCS needs a local
    /// lab code, JP_MedicationRequest_eCS needs a YJ / 一般名処方 / 標準コードなし coding. `false`
    /// accepts lab results with JLAC codes only and medications coded otherwise or by text only
    /// (as `niji synth` currently writes them).
    pub clins_strict: bool,
    /// A wrong check digit of the 保険者番号 inside a FHIR member id or a CSV insurer column.
    /// (UKE HO records are always rejected: a claim with a wrong payer cannot be paid.)
    pub member_insurer_check: Severity,
    pub masters: CodeMasters,
    /// Longest accepted line of NDJSON, UKE or CSV.
    pub max_line_bytes: usize,
    /// Largest single JSON file (Bundle) parsed whole.
    pub max_json_bytes: u64,
}

impl IngestConfig {
    pub fn new(now: Date) -> Self {
        Self {
            now,
            clins_strict: true,
            member_insurer_check: Severity::Warn,
            masters: CodeMasters::default(),
            max_line_bytes: 8 << 20,
            max_json_bytes: 512 << 20,
        }
    }
}

/// Submission formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// One JSON document: a Bundle or a single resource.
    FhirJson,
    FhirNdjson,
    Uke,
    Csv,
}

impl Format {
    /// From the file extension (`.json`, `.ndjson`, `.uke`, `.csv`; case-insensitive).
    pub fn from_path(path: &Path) -> Option<Self> {
        let ext = path.extension()?.to_str()?.to_ascii_lowercase();
        Some(match ext.as_str() {
            "json" => Format::FhirJson,
            "ndjson" | "jsonl" => Format::FhirNdjson,
            "uke" => Format::Uke,
            "csv" => Format::Csv,
            _ => return None,
        })
    }
}

/// Errors that stop a whole file (everything else is a located problem in the report).
#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    #[error("cannot read the file: {0}")]
    Io(#[from] io::Error),
    #[error("JSON file is larger than the limit")]
    TooLarge,
    #[error("unknown file format (expected .json, .ndjson, .uke or .csv)")]
    UnknownFormat,
    #[error("a CSV file needs a mapping")]
    NoMapping,
    #[error(transparent)]
    Mapping(#[from] MappingError),
}

/// Ingests one file, choosing the parser by extension. CSV needs `mapping`.
pub fn ingest_path(
    path: &Path,
    config: &IngestConfig,
    mapping: Option<&CsvMapping>,
    sink: &mut dyn FnMut(SplitRecord),
) -> Result<FileReport, IngestError> {
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let format = Format::from_path(path).ok_or(IngestError::UnknownFormat)?;
    let file = std::fs::File::open(path)?;
    match format {
        Format::FhirJson => {
            if file.metadata()?.len() > config.max_json_bytes {
                return Err(IngestError::TooLarge);
            }
            let mut bytes = Vec::new();
            BufReader::new(file).read_to_end(&mut bytes)?;
            Ok(fhir::ingest_json(&name, &bytes, config, sink))
        }
        Format::FhirNdjson => fhir::ingest_ndjson(&name, BufReader::with_capacity(1 << 16, file), config, sink),
        Format::Uke => uke::ingest_uke(&name, BufReader::with_capacity(1 << 16, file), config, sink),
        Format::Csv => csv_map::ingest_csv(&name, BufReader::with_capacity(1 << 16, file), mapping.ok_or(IngestError::NoMapping)?, config, sink),
    }
}

/// A file read line by line under the line-length limit, as every line-based parser reads it:
/// lines are numbered from 1, an over-long line is rejected into the report and skipped, and
/// the CR of a CRLF ending is stripped (and said, for formats that require CRLF).
pub(crate) struct Lines<R> {
    reader: R,
    buf: Vec<u8>,
    limit: usize,
    number: u64,
}

/// One line of a [`Lines`].
pub(crate) struct Line<'a> {
    pub number: u64,
    pub loc: Location,
    /// The line without its `\n` and without the `\r` of CRLF.
    pub bytes: &'a [u8],
    /// Whether the line ended in CRLF.
    pub crlf: bool,
}

impl<R: BufRead> Lines<R> {
    pub(crate) fn new(reader: R, limit: usize) -> Self {
        Self { reader, buf: Vec::with_capacity(4096), limit, number: 0 }
    }

    pub(crate) fn next_line(&mut self, report: &mut FileReport) -> io::Result<Option<Line<'_>>> {
        self.next_line_noting(report, |_, _| {})
    }

    /// As [`Lines::next_line`], and `too_long` sees the number and first bytes of each line
    /// rejected for its length (a UKE claim rejected that way still opens a claim).
    pub(crate) fn next_line_noting(&mut self, report: &mut FileReport, mut too_long_line: impl FnMut(u64, &[u8])) -> io::Result<Option<Line<'_>>> {
        loop {
            let Some(too_long) = read_line_limited(&mut self.reader, &mut self.buf, self.limit)? else { return Ok(None) };
            self.number += 1;
            let loc = Location::Line(self.number);
            if too_long {
                report.reject(vec![Problem::new(loc, "", Reason::LineTooLong)]);
                too_long_line(self.number, &self.buf);
                continue;
            }
            let (bytes, crlf) = match self.buf.strip_suffix(b"\r") {
                Some(b) => (b, true),
                None => (&self.buf[..], false),
            };
            return Ok(Some(Line { number: self.number, loc, bytes, crlf }));
        }
    }
}

/// Reads one line (up to and excluding `\n`) into `buf`, keeping at most `limit` bytes.
/// Returns `None` at end of input, else whether the line was longer than `limit`.
pub(crate) fn read_line_limited(reader: &mut impl BufRead, buf: &mut Vec<u8>, limit: usize) -> io::Result<Option<bool>> {
    buf.clear();
    let mut too_long = false;
    let mut any = false;
    loop {
        let chunk = reader.fill_buf()?;
        if chunk.is_empty() {
            return Ok(if any { Some(too_long) } else { None });
        }
        any = true;
        let (take, done) = match chunk.iter().position(|&b| b == b'\n') {
            Some(i) => (i, true),
            None => (chunk.len(), false),
        };
        let room = limit.saturating_sub(buf.len());
        if take > room {
            too_long = true;
        }
        buf.extend_from_slice(&chunk[..take.min(room)]);
        reader.consume(if done { take + 1 } else { take });
        if done {
            return Ok(Some(too_long));
        }
    }
}
