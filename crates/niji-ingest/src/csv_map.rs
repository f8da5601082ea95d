//! CSV with a mapping that says, per column, whether it is an identifier, a quasi-identifier or
//! content, and its type.
//!
//! The mapping file is TOML:
//!
//! ```toml
//! delimiter = ","          # one ASCII character (default ",")
//! encoding = "utf-8"       # "utf-8" (default) or "shift_jis"
//!
//! [[column]]
//! name = "registry_id"     # header name; columns are matched by name
//! role = "identifier"      # identifier | quasi | content | ignore
//! kind = "patient_id"      # identifier kinds: name_kanji name_kana birth_date sex insurer_number
//!                          # insured_symbol insured_number branch_number patient_id my_number
//!                          # phone address postal_code free_text member_id
//! required = true          # an empty cell rejects the row (default false)
//!
//! [[column]]
//! name = "sex"
//! role = "quasi"
//! type = "sex"             # quasi types: sex | birth_date | prefecture | municipality | date | year_month
//!
//! [[column]]
//! name = "code"
//! role = "content"
//! type = "code"            # content types: code | date | year_month | number
//! system = "icd10"         # the code system, or:
//! system_column = "code_system"  # the column that names each row's code system
//! # unit_column = "unit"   # for numbers: the column holding the unit
//! ```
//!
//! Rules: identifier columns go to identity only, except `birth_date` (content gets the
//! year-month) and `sex` (content gets the sex); `insurer_number` is check-digit verified
//! ([`crate::IngestConfig::member_insurer_check`]); quasi `birth_date` is reduced to year-month;
//! quasi `prefecture` and `municipality` must be JIS X 0401 / 0402 codes; content codes must have
//! their system's shape. A column named in a `system_column`/`unit_column` should itself be mapped
//! as `ignore`. A quoted cell may span lines (RFC 4180: a comment column exported from an EHR
//! holds line breaks); a row is located by the line it starts on. A row longer than
//! [`crate::IngestConfig::max_line_bytes`], or whose quote is still open at the end of the
//! file, is refused at that line with the lines it took ([`Reason::UnclosedQuote`]), and none
//! of them is read as a row. A header that cannot be read stops the file there.
//!
//! Identifiers mapped as content are caught, since content reaches the lake:
//! - a code or number equal to one of the row's person identifiers (patient, insured, member,
//!   My Number, phone, 受給者番号; at least 6 letters or digits) rejects the row
//!   ([`Reason::RepeatsIdentifier`]);
//! - a column of at least [`IDENTIFIER_LIKE_MIN_VALUES`] values, all as wide and at least 90%
//!   distinct (over the first [`IDENTIFIER_LIKE_SAMPLE`] values), refuses the whole file
//!   ([`Reason::LooksLikeIdentifier`]), as patient, insurance and member numbers are. Watched are
//!   codes of the free-form systems (`local`, local lab and drug codes, 用法) or of a system named
//!   per row, at least [`IDENTIFIER_LIKE_MIN_WIDTH`] characters wide, and numbers of at least 8
//!   digits or with a leading zero. Standard codes (fixed-width facility numbers, YJ, JLAC10) are
//!   shape-checked instead; measured quantities and money amounts vary in width.

use std::io::BufRead;

use niji_core::{InsurerNumber, InsurerNumberError};
use serde::Deserialize;

use crate::codes::CodeSystem;
use crate::dates::parse_any;
use crate::model::*;
use crate::report::{FileReport, Issues, Problem, Reason, RecordKind};
use crate::{IngestConfig, IngestError, Severity};

/// A fixed-width content column needs this many values before it can be called identifier-like.
pub const IDENTIFIER_LIKE_MIN_VALUES: u64 = 50;
/// Narrower codes are not taken for identifiers (codes of a few characters repeat anyway).
pub const IDENTIFIER_LIKE_MIN_WIDTH: usize = 6;
/// Distinct values are counted over this many values of a column (memory stays bounded).
pub const IDENTIFIER_LIKE_SAMPLE: u64 = 100_000;

/// A column's role.
#[derive(Debug, Clone, PartialEq)]
pub enum ColumnRole {
    Identifier(IdentifierKind),
    Quasi(QuasiKind),
    Content(ContentType),
    Ignore,
}

/// Types of quasi-identifier columns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QuasiKind {
    Sex,
    BirthDate,
    Prefecture,
    Municipality,
    Date,
    YearMonth,
}

/// Types of content columns.
#[derive(Debug, Clone, PartialEq)]
pub enum ContentType {
    Code(CodeSource),
    Date,
    YearMonth,
    Number { unit_column: Option<String> },
}

/// Where a code column's system comes from.
#[derive(Debug, Clone, PartialEq)]
pub enum CodeSource {
    Fixed(CodeSystem),
    Column(String),
}

/// One mapped column.
#[derive(Debug, Clone, PartialEq)]
pub struct ColumnSpec {
    pub name: String,
    pub role: ColumnRole,
    pub required: bool,
}

/// The mapping of one CSV layout.
#[derive(Debug, Clone, PartialEq)]
pub struct CsvMapping {
    pub delimiter: u8,
    pub shift_jis: bool,
    pub columns: Vec<ColumnSpec>,
}

/// Errors in a mapping file (they name the mapping's own column names, never data).
#[derive(Debug, thiserror::Error)]
pub enum MappingError {
    #[error("mapping is not valid TOML: {0}")]
    Toml(String),
    #[error("column {0}: unknown role (identifier, quasi, content, ignore)")]
    Role(String),
    #[error("column {0}: unknown identifier kind")]
    Kind(String),
    #[error("column {0}: unknown or missing type")]
    Type(String),
    #[error("column {0}: unknown code system, or neither system nor system_column given")]
    System(String),
    #[error("column name {0} must be ASCII letters, digits, _ - . (no run of 4 digits)")]
    Name(String),
    #[error("delimiter must be one ASCII character")]
    Delimiter,
    #[error("encoding must be utf-8 or shift_jis")]
    Encoding,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawMapping {
    delimiter: Option<String>,
    encoding: Option<String>,
    #[serde(default)]
    column: Vec<RawColumn>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawColumn {
    name: String,
    role: String,
    kind: Option<String>,
    #[serde(rename = "type")]
    ty: Option<String>,
    system: Option<String>,
    system_column: Option<String>,
    unit_column: Option<String>,
    #[serde(default)]
    required: bool,
}

impl CsvMapping {
    /// Parses the TOML mapping format described in the module docs.
    pub fn from_toml(text: &str) -> Result<Self, MappingError> {
        let raw: RawMapping = toml::from_str(text).map_err(|e| MappingError::Toml(e.message().to_string()))?;
        let delimiter = match raw.delimiter.as_deref() {
            None => b',',
            Some(d) if d.len() == 1 && d.is_ascii() => d.as_bytes()[0],
            Some("\\t") | Some("tab") => b'\t',
            _ => return Err(MappingError::Delimiter),
        };
        let shift_jis = match raw.encoding.as_deref().map(|e| e.to_ascii_lowercase().replace(['-', '_'], "")) {
            None => false,
            Some(e) if e == "utf8" => false,
            Some(e) if e == "shiftjis" || e == "sjis" || e == "cp932" => true,
            _ => return Err(MappingError::Encoding),
        };
        let mut columns = Vec::new();
        for c in raw.column {
            if VariableName::new(&c.name).is_none() {
                return Err(MappingError::Name(c.name));
            }
            let role = match c.role.as_str() {
                "identifier" => ColumnRole::Identifier(
                    c.kind.as_deref().and_then(IdentifierKind::from_mapping_name).ok_or_else(|| MappingError::Kind(c.name.clone()))?,
                ),
                "quasi" => ColumnRole::Quasi(match c.ty.as_deref() {
                    Some("sex") => QuasiKind::Sex,
                    Some("birth_date") => QuasiKind::BirthDate,
                    Some("prefecture") => QuasiKind::Prefecture,
                    Some("municipality") => QuasiKind::Municipality,
                    Some("date") => QuasiKind::Date,
                    Some("year_month") => QuasiKind::YearMonth,
                    _ => return Err(MappingError::Type(c.name)),
                }),
                "content" => ColumnRole::Content(match c.ty.as_deref() {
                    Some("code") => ContentType::Code(match (c.system.as_deref(), c.system_column) {
                        (Some(s), _) => CodeSource::Fixed(CodeSystem::from_name(s).ok_or_else(|| MappingError::System(c.name.clone()))?),
                        (None, Some(col)) => CodeSource::Column(col),
                        (None, None) => return Err(MappingError::System(c.name)),
                    }),
                    Some("date") => ContentType::Date,
                    Some("year_month") => ContentType::YearMonth,
                    Some("number") => ContentType::Number { unit_column: c.unit_column },
                    _ => return Err(MappingError::Type(c.name)),
                }),
                "ignore" => ColumnRole::Ignore,
                _ => return Err(MappingError::Role(c.name)),
            };
            columns.push(ColumnSpec { name: c.name, role, required: c.required });
        }
        Ok(Self { delimiter, shift_jis, columns })
    }
}

/// Per content column: are its values fixed-width and distinct, as an identifier's are?
struct ColumnWatch {
    /// Numbers (a narrower rule: 8 digits or a leading zero) or codes.
    number: bool,
    /// `None` until the first value; then the width while every value has had it.
    width: Option<usize>,
    fixed: bool,
    /// A value began with `0` (an amount does not; a zero-filled number does).
    leading_zero: bool,
    values: u64,
    /// 64-bit hashes of the values (a collision only makes a column look less distinct).
    seen: std::collections::HashSet<u64>,
}

impl ColumnWatch {
    fn new(number: bool) -> Self {
        Self { number, width: None, fixed: true, leading_zero: false, values: 0, seen: std::collections::HashSet::new() }
    }

    fn observe(&mut self, value: &str) {
        if !self.fixed {
            return;
        }
        let width = value.chars().count();
        match self.width {
            None => self.width = Some(width),
            Some(w) if w != width => {
                self.fixed = false;
                self.seen = std::collections::HashSet::new();
                return;
            }
            Some(_) => {}
        }
        self.values += 1;
        self.leading_zero |= width > 1 && value.starts_with('0');
        if self.values > IDENTIFIER_LIKE_SAMPLE {
            return;
        }
        let mut h = std::collections::hash_map::DefaultHasher::new();
        std::hash::Hash::hash(value, &mut h);
        self.seen.insert(std::hash::Hasher::finish(&h));
    }

    /// `(values, distinct, width)` when the column looks like an identifier.
    fn verdict(&self) -> Option<(u64, u64, usize)> {
        let width = self.width?;
        let distinct = self.seen.len() as u64;
        let sampled = self.values.min(IDENTIFIER_LIKE_SAMPLE);
        let wide = if self.number { width >= 8 || self.leading_zero } else { width >= IDENTIFIER_LIKE_MIN_WIDTH };
        (self.fixed && wide && self.values >= IDENTIFIER_LIKE_MIN_VALUES && distinct * 10 >= sampled * 9).then_some((self.values, distinct, width))
    }
}

/// Letters, digits and decimal points, upper-cased (hyphens and spaces dropped): how a value is
/// compared with the row's identifiers.
fn comparable(value: &str) -> String {
    value.chars().filter(|c| c.is_alphanumeric() || *c == '.').flat_map(char::to_uppercase).collect()
}

/// Identifier kinds that name one person, which a content value must not repeat.
const PERSON_IDENTIFIERS: [IdentifierKind; 6] = [
    IdentifierKind::PatientId,
    IdentifierKind::InsuredNumber,
    IdentifierKind::MemberId,
    IdentifierKind::MyNumber,
    IdentifierKind::Phone,
    IdentifierKind::PublicExpenseRecipient,
];

/// The rows of a CSV file, read from its bytes: a row ends at a line break outside a quoted
/// cell ([`CsvState`]); a line break inside one is part of the cell (CRLF there becomes LF).
/// At most `limit` bytes of a row are kept: a longer row is refused at the line it starts on
/// (one line: [`Reason::LineTooLong`]; a quoted cell across lines: [`Reason::UnclosedQuote`]
/// with the lines it took), and reading goes on after it, wherever its quote closes: its
/// lines are never read as rows. In Shift_JIS the second byte of a character is not read as
/// a delimiter, a quote or a line break.
pub(crate) struct Rows<R> {
    reader: R,
    row: Vec<u8>,
    delimiter: u8,
    shift_jis: bool,
    limit: usize,
    /// Lines read so far.
    lines: u64,
    /// Bytes of a UTF-8 byte order mark matched at the start of the file so far; `None` once
    /// the file's first bytes are known to be one or not (a read may hand out one byte).
    mark: Option<usize>,
}

/// One row of [`Rows`]: located at the line it starts on.
pub(crate) struct Row<'a> {
    pub(crate) number: u64,
    pub(crate) loc: Location,
    pub(crate) bytes: &'a [u8],
}

impl<R: BufRead> Rows<R> {
    pub(crate) fn new(reader: R, delimiter: u8, shift_jis: bool, limit: usize) -> Self {
        Rows { reader, row: Vec::new(), delimiter, shift_jis, limit, lines: 0, mark: (!shift_jis).then_some(0) }
    }

    /// The next row, its line break and the `\r` before it left out; rows refused for their
    /// length are reported and skipped. A header refused ends the file (nothing after it can be
    /// read). A UTF-8 byte order mark at the start is not the first cell's text (a quote after
    /// it opens a cell).
    pub(crate) fn next_row(&mut self, report: &mut FileReport) -> std::io::Result<Option<Row<'_>>> {
        const MARK: &[u8; 3] = b"\xEF\xBB\xBF";
        loop {
            let number = self.lines + 1;
            self.row.clear();
            let (mut state, mut trail, mut lines, mut over, mut any) = (CsvState::FieldStart, false, 1u64, false, false);
            // A line break last, inside quotes, at the end of the file starts no line.
            let mut broke_last = false;
            loop {
                let chunk = self.reader.fill_buf()?;
                if chunk.is_empty() {
                    break;
                }
                any = true;
                let (mut used, mut ended, mut from) = (chunk.len(), false, 0);
                // The row's bytes are copied a run at a time (from `from`), up to one past the
                // limit (a final CR is dropped before the row's length is judged).
                let (row, kept) = (&mut self.row, self.limit.saturating_add(1));
                let mut keep = |row: &mut Vec<u8>, bytes: &[u8]| {
                    let room = kept.saturating_sub(row.len());
                    over |= bytes.len() > room;
                    row.extend_from_slice(&bytes[..bytes.len().min(room)]);
                };
                for (at, &byte) in chunk.iter().enumerate() {
                    if let Some(matched) = self.mark {
                        if byte == MARK[matched] {
                            self.mark = (matched + 1 < MARK.len()).then_some(matched + 1);
                            from = at + 1;
                            continue;
                        }
                        // Not a mark after all: the bytes matched are the first cell's text.
                        self.mark = None;
                        keep(row, &MARK[..matched]);
                        if matched > 0 {
                            state = CsvState::Unquoted;
                        }
                    }
                    // The second byte of a Shift_JIS character (0x40 and above) is text.
                    let seen = if trail && byte >= 0x40 { b'a' } else { byte };
                    trail = self.shift_jis && !trail && matches!(byte, 0x81..=0x9F | 0xE0..=0xFC);
                    let (next, what) = state.step(seen, self.delimiter);
                    state = next;
                    if what == CsvByte::EndRow {
                        keep(row, &chunk[from..at]);
                        (used, ended) = (at + 1, true);
                        break;
                    }
                    broke_last = seen == b'\n';
                    if seen == b'\n' {
                        lines += 1;
                        // CRLF inside a quoted cell is kept as LF (its CR may end the chunk before).
                        let end = if at > from && chunk[at - 1] == b'\r' { at - 1 } else { at };
                        keep(row, &chunk[from..end]);
                        if at == from && row.last() == Some(&b'\r') {
                            row.pop();
                        }
                        keep(row, b"\n");
                        from = at + 1;
                    }
                }
                if !ended {
                    keep(row, &chunk[from..]);
                }
                self.reader.consume(used);
                if ended {
                    break;
                }
            }
            if !any {
                return Ok(None);
            }
            lines -= u64::from(broke_last);
            self.lines += lines;
            if self.row.last() == Some(&b'\r') {
                self.row.pop();
            }
            over |= self.row.len() > self.limit;
            let loc = Location::Line(number);
            let open = matches!(state, CsvState::Quoted);
            if over || open {
                let reason = if lines == 1 && !open { Reason::LineTooLong } else { Reason::UnclosedQuote { lines } };
                report.reject(vec![Problem::new(loc, "", reason)]);
                if number == 1 {
                    return Ok(None);
                }
                continue;
            }
            return Ok(Some(Row { number, loc, bytes: &self.row }));
        }
    }
}

/// Where the reading of a CSV row stands after a byte, as spreadsheets write CSV (RFC 4180): a
/// field that starts with `"` is quoted, and in it `""` is one `"` and a delimiter or a line
/// break is text; a `"` elsewhere is text. Delimiters, quotes and line breaks are ASCII, so the
/// bytes of UTF-8 text are read as they are (Shift_JIS needs its second bytes masked:
/// [`Rows`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum CsvState {
    FieldStart,
    Unquoted,
    Quoted,
    /// A `"` in a quoted field: the end of the quotes, or the first of `""`.
    QuoteInQuoted,
}

/// What a byte is in a row ([`CsvState::step`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum CsvByte {
    /// Part of the field's value.
    Text,
    /// A quote that is not part of the value.
    Quote,
    EndField,
    /// A line break outside quotes.
    EndRow,
}

impl CsvState {
    pub(crate) fn step(self, byte: u8, delimiter: u8) -> (CsvState, CsvByte) {
        use CsvState::*;
        match (self, byte) {
            (FieldStart, b'"') => (Quoted, CsvByte::Quote),
            (Quoted, b'"') => (QuoteInQuoted, CsvByte::Quote),
            (Quoted, _) => (Quoted, CsvByte::Text),
            // `""`: the second is the value's quote.
            (QuoteInQuoted, b'"') => (Quoted, CsvByte::Text),
            (_, b'\n') => (FieldStart, CsvByte::EndRow),
            (_, b) if b == delimiter => (FieldStart, CsvByte::EndField),
            _ => (Unquoted, CsvByte::Text),
        }
    }
}

/// Splits one CSV row (as [`Rows`] gives it, decoded): fields separated by `delim`, optionally
/// in double quotes with `""` escapes (a quoted field may hold the delimiter and line breaks).
/// A line break outside quotes, which a row does not hold, is text in its field. A delimiter
/// that is not ASCII splits nothing (the callers refuse one).
pub(crate) fn split_line(line: &str, delim: char, out: &mut Vec<String>) {
    out.clear();
    let delimiter = match u8::try_from(delim) {
        Ok(d) if d.is_ascii() => d,
        _ => {
            out.push(line.to_string());
            return;
        }
    };
    let (mut state, mut cur) = (CsvState::FieldStart, Vec::new());
    for &byte in line.as_bytes() {
        let (next, what) = state.step(byte, delimiter);
        state = next;
        match what {
            CsvByte::Text => cur.push(byte),
            CsvByte::EndRow => {
                cur.push(byte);
                state = CsvState::Unquoted;
            }
            CsvByte::Quote => {}
            // Split at an ASCII byte of UTF-8 text: both parts are UTF-8.
            CsvByte::EndField => out.push(String::from_utf8_lossy(&std::mem::take(&mut cur)).into_owned()),
        }
    }
    out.push(String::from_utf8_lossy(&cur).into_owned());
}

fn parse_sex(v: &str) -> Option<Sex> {
    match v.trim() {
        "M" | "m" | "male" | "男" | "男性" | "1" => Some(Sex::Male),
        "F" | "f" | "female" | "女" | "女性" | "2" => Some(Sex::Female),
        "O" | "other" | "3" => Some(Sex::Other),
        "U" | "unknown" | "9" | "0" => Some(Sex::Unknown),
        _ => None,
    }
}

/// Ingests a CSV file with `mapping`. Line 1 is the header.
pub fn ingest_csv(
    name: &str,
    reader: impl BufRead,
    mapping: &CsvMapping,
    config: &IngestConfig,
    sink: &mut dyn FnMut(SplitRecord),
) -> Result<FileReport, IngestError> {
    let mut report = FileReport::new(name);
    let delim = mapping.delimiter as char;
    let mut fields = Vec::new();
    let mut index: Vec<Option<usize>> = Vec::new(); // mapping column -> CSV position
    let mut header: Vec<String> = Vec::new();
    let decode = |bytes: &[u8]| -> Option<String> {
        if mapping.shift_jis {
            let (t, bad) = encoding_rs::SHIFT_JIS.decode_without_bom_handling(bytes);
            (!bad).then(|| t.into_owned())
        } else {
            // A byte order mark at the start of the file is left out by `Rows`.
            std::str::from_utf8(bytes).ok().map(str::to_string)
        }
    };
    let mut watches: Vec<Option<ColumnWatch>> = mapping
        .columns
        .iter()
        .map(|c| match &c.role {
            ColumnRole::Content(ContentType::Number { .. }) => Some(ColumnWatch::new(true)),
            ColumnRole::Content(ContentType::Code(CodeSource::Column(_))) => Some(ColumnWatch::new(false)),
            ColumnRole::Content(ContentType::Code(CodeSource::Fixed(system))) => {
                matches!(system, CodeSystem::Token | CodeSystem::LocalLab | CodeSystem::LocalDrug | CodeSystem::Usage)
                    .then(|| ColumnWatch::new(false))
            }
            _ => None,
        })
        .collect();
    if !mapping.delimiter.is_ascii() {
        return Err(IngestError::Mapping(MappingError::Delimiter));
    }
    let mut rows = Rows::new(reader, mapping.delimiter, mapping.shift_jis, config.max_line_bytes);
    while let Some(Row { number: line_no, loc, bytes }) = rows.next_row(&mut report)? {
        let Some(text) = decode(bytes) else {
            report.reject(vec![Problem::new(loc, "", if mapping.shift_jis { Reason::NotShiftJis } else { Reason::NotUtf8 })]);
            // Without its header no row can be read (one refused for its length ends `Rows`).
            if line_no == 1 {
                return Ok(report);
            }
            continue;
        };
        if line_no == 1 {
            split_line(&text, delim, &mut fields);
            header = fields.iter().map(|f| f.trim().to_string()).collect();
            for spec in &mapping.columns {
                let pos = header.iter().position(|h| *h == spec.name);
                if pos.is_none() {
                    report.rejected.push(Problem::new(loc, spec.name.clone(), Reason::ColumnMissing));
                }
                index.push(pos);
            }
            if index.iter().any(Option::is_none) {
                report.rejected_records += 1;
                return Ok(report);
            }
            continue;
        }
        if text.trim().is_empty() {
            continue;
        }
        split_line(&text, delim, &mut fields);
        let mut issues = Issues::default();
        if fields.len() != header.len() {
            issues.error(loc, "", Reason::TooFewFields { expected: header.len() });
            report.reject(issues.errors);
            continue;
        }
        let col = |name: &str| header.iter().position(|h| h == name).map(|i| fields[i].trim());
        let mut identity = Identity::default();
        let mut values = Vec::new();
        for (spec, pos) in mapping.columns.iter().zip(&index) {
            let v = fields[pos.unwrap_or(0)].trim();
            let field = spec.name.as_str();
            let var = VariableName::new(&spec.name).expect("checked when the mapping was parsed");
            if v.is_empty() {
                if spec.required {
                    issues.error(loc, field, Reason::Missing);
                }
                continue;
            }
            let mut push = |value: Value| values.push(RowValue { column: var.clone(), value });
            match &spec.role {
                ColumnRole::Ignore => {}
                ColumnRole::Identifier(kind) => {
                    identity.push(*kind, field, v);
                    match kind {
                        IdentifierKind::BirthDate => match parse_any(v).and_then(|d| d.not_after(config.now)) {
                            Ok(d) => push(Value::YearMonth(d.year_month())),
                            Err(e) => issues.error(loc, field, Reason::Date(e)),
                        },
                        IdentifierKind::Sex => match parse_sex(v) {
                            Some(s) => push(Value::Sex(s)),
                            None => issues.error(loc, field, Reason::BadValue("sex")),
                        },
                        IdentifierKind::InsurerNumber => {
                            let reason = match InsurerNumber::parse(v) {
                                Ok(n) => {
                                    if let Some(p) = n.prefecture().and_then(Prefecture::new) {
                                        push(Value::Prefecture(p));
                                    }
                                    None
                                }
                                Err(InsurerNumberError::CheckDigit { .. }) => Some(Reason::InsurerCheckDigit),
                                Err(_) => Some(Reason::InsurerShape),
                            };
                            if let Some(reason) = reason {
                                match config.member_insurer_check {
                                    Severity::Reject => issues.error(loc, field, reason),
                                    Severity::Warn => issues.warn(loc, field, reason),
                                }
                            }
                        }
                        _ => {}
                    }
                }
                ColumnRole::Quasi(q) => match q {
                    QuasiKind::Sex => match parse_sex(v) {
                        Some(s) => push(Value::Sex(s)),
                        None => issues.error(loc, field, Reason::BadValue("sex")),
                    },
                    QuasiKind::BirthDate | QuasiKind::YearMonth => {
                        match parse_any(v).or_else(|e| parse_any(&format!("{v}-01")).map_err(|_| e)).and_then(|d| d.not_after(config.now)) {
                            Ok(d) => push(Value::YearMonth(d.year_month())),
                            Err(e) => issues.error(loc, field, Reason::Date(e)),
                        }
                    }
                    QuasiKind::Date => match parse_any(v).and_then(|d| d.not_after(config.now)) {
                        Ok(d) => push(Value::Date(d)),
                        Err(e) => issues.error(loc, field, Reason::Date(e)),
                    },
                    QuasiKind::Prefecture => match v.parse::<u8>().ok().filter(|_| v.len() <= 2).and_then(Prefecture::new) {
                        Some(p) => push(Value::Prefecture(p)),
                        None => issues.error(loc, field, Reason::BadValue("JIS X 0401 prefecture code")),
                    },
                    QuasiKind::Municipality => match Municipality::parse(v) {
                        Some(m) => push(Value::Municipality(m)),
                        None => issues.error(loc, field, Reason::BadValue("JIS X 0402 municipality code")),
                    },
                },
                ColumnRole::Content(t) => match t {
                    ContentType::Code(source) => {
                        let system = match source {
                            CodeSource::Fixed(s) => Some(*s),
                            CodeSource::Column(c) => {
                                let s = col(c).and_then(CodeSystem::from_name);
                                if s.is_none() {
                                    issues.error(loc, c.as_str(), Reason::UnknownCodeSystem);
                                }
                                s
                            }
                        };
                        if let Some(system) = system {
                            match Coded::new(system, v) {
                                Ok(c) => {
                                    if config.masters.contains(system, v) == Some(false) {
                                        issues.error(loc, field, Reason::NotInMaster(system));
                                    }
                                    push(Value::Coded(c))
                                }
                                Err(e) => issues.error(loc, field, Reason::Shape(e.0)),
                            }
                        }
                    }
                    ContentType::Date => match parse_any(v).and_then(|d| d.not_after(config.now)) {
                        Ok(d) => push(Value::Date(d)),
                        Err(e) => issues.error(loc, field, Reason::Date(e)),
                    },
                    ContentType::YearMonth => {
                        match parse_any(v).or_else(|e| parse_any(&format!("{v}-01")).map_err(|_| e)).and_then(|d| d.not_after(config.now)) {
                            Ok(d) => push(Value::YearMonth(d.year_month())),
                            Err(e) => issues.error(loc, field, Reason::Date(e)),
                        }
                    }
                    ContentType::Number { unit_column } => match v.parse::<f64>().ok().filter(|x| x.is_finite()) {
                        Some(x) => {
                            let unit_text = unit_column.as_deref().and_then(col).filter(|u| !u.is_empty());
                            match unit_text {
                                Some(u) => {
                                    let unit = Unit::new(u);
                                    if unit.is_none() {
                                        issues.warn(loc, unit_column.as_deref().unwrap_or(field), Reason::ValueDropped("unit"));
                                    }
                                    push(Value::Quantity(Quantity { value: x, unit }))
                                }
                                None => push(Value::Number(x)),
                            }
                        }
                        None => issues.error(loc, field, Reason::BadValue("number")),
                    },
                },
            }
        }
        // The row's person identifiers in comparable form, made once for all its content columns.
        let person_ids: Vec<String> =
            identity.items.iter().filter(|item| PERSON_IDENTIFIERS.contains(&item.kind)).map(|item| comparable(&item.value)).collect();
        for ((spec, pos), watch) in mapping.columns.iter().zip(&index).zip(&mut watches) {
            if !matches!(spec.role, ColumnRole::Content(ContentType::Code(_) | ContentType::Number { .. })) {
                continue;
            }
            let v = fields[pos.unwrap_or(0)].trim();
            if v.is_empty() {
                continue;
            }
            if let Some(watch) = watch {
                watch.observe(v);
            }
            let c = comparable(v);
            let repeats = c.chars().count() >= 6 && person_ids.contains(&c);
            if repeats {
                issues.error(loc, spec.name.as_str(), Reason::RepeatsIdentifier);
            }
        }
        report.warnings.append(&mut issues.warnings);
        if issues.errors.is_empty() {
            report.accept(RecordKind::CsvRow);
            sink(SplitRecord { identity, content: Content { record: RecordRef { location: loc }, body: ContentBody::Row(values) } });
        } else {
            report.reject(issues.errors);
        }
    }
    let refusals: Vec<Problem> = mapping
        .columns
        .iter()
        .zip(&watches)
        .filter_map(|(spec, w)| w.as_ref()?.verdict().map(|(values, distinct, width)| (spec, values, distinct, width)))
        .map(|(spec, values, distinct, width)| {
            Problem::new(Location::Line(1), spec.name.clone(), Reason::LooksLikeIdentifier { values, distinct, width })
        })
        .collect();
    if !refusals.is_empty() {
        // Every record of the file goes: the accepted ones are counted as rejected now.
        report.rejected_records += report.accepted_total();
        report.accepted.clear();
        report.rejected.splice(0..0, refusals);
        report.file_refused = true;
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Date;

    const MAPPING: &str = r#"
[[column]]
name = "id"
role = "identifier"
kind = "patient_id"
[[column]]
name = "member"
role = "content"
type = "code"
system = "local"
[[column]]
name = "amount"
role = "content"
type = "number"
"#;

    /// Ingests `rows` (after the header `id,member,amount`) and gives the file's verdict: the
    /// rejected lines, formatted, and the number of records passed on.
    fn check(rows: &[String], expected_rejects: &[&str], expected_passed: usize) {
        let text = format!("id,member,amount\n{}", rows.iter().map(|r| format!("{r}\n")).collect::<String>());
        let mapping = CsvMapping::from_toml(MAPPING).unwrap();
        let mut passed = 0;
        let report =
            ingest_csv("f.csv", text.as_bytes(), &mapping, &IngestConfig::new(Date::new(2026, 1, 1).unwrap()), &mut |_| passed += 1).unwrap();
        assert_eq!(report.rejected_lines(), expected_rejects, "rows: {rows:?}");
        assert_eq!(report.file_refused, expected_rejects.iter().any(|r| r.contains("looks like an identifier")));
        if report.file_refused {
            assert_eq!(report.accepted_total(), 0);
            assert_eq!(report.rejected_records as usize, rows.len());
        }
        assert_eq!(passed, expected_passed);
    }

    fn rows(n: usize, row: impl Fn(usize) -> String) -> Vec<String> {
        (0..n).map(row).collect()
    }

    const REFUSED: &str = "content column looks like an identifier";

    #[test]
    fn content_that_looks_like_an_identifier_is_refused() {
        // Fixed-width distinct member numbers mapped as a local code: the whole file.
        let refused =
            format!("f.csv:1:member: {REFUSED} (60 distinct of 60 values, all 8 characters wide); map it as identifier or ignore; file refused");
        check(&rows(60, |i| format!("P{i},{:08},1", 31_000_000 + i * 7)), &[refused.as_str()], 60);
        // The same numbers as a number column.
        let amount =
            format!("f.csv:1:amount: {REFUSED} (60 distinct of 60 values, all 9 characters wide); map it as identifier or ignore; file refused");
        check(&rows(60, |i| format!("P{i},A1,{:09}", 12_345_678 + i)), &[amount.as_str()], 60);
        // A few repeats do not save it (54 distinct of 60 is 90%).
        let r = rows(60, |i| format!("P{i},{:08},1", 31_000_000 + i.min(54)));
        let refused =
            format!("f.csv:1:member: {REFUSED} (55 distinct of 60 values, all 8 characters wide); map it as identifier or ignore; file refused");
        check(&r, &[refused.as_str()], 60);
    }

    #[test]
    fn real_content_is_not_taken_for_an_identifier() {
        // Under the minimum number of values.
        check(&rows(49, |i| format!("P{i},{:08},1", 31_000_000 + i)), &[], 49);
        // Widths vary (money amounts).
        check(&rows(200, |i| format!("P{i},A1,{}", 900 + i * 997)), &[], 200);
        // Codes that repeat.
        check(&rows(200, |i| format!("P{i},{:08},1", 31_000_000 + i % 20)), &[], 200);
        // Narrow values.
        check(&rows(200, |i| format!("P{i},{:05},1", i)), &[], 200);
        // Amounts of six digits, all distinct: a number needs 8 digits or a leading zero.
        check(&rows(200, |i| format!("P{i},A1,{}", 100_000 + i * 997)), &[], 200);
    }

    #[test]
    fn a_value_repeating_the_rows_identifier_rejects_the_row() {
        let r = vec![
            "P-00042,P00042,1".to_string(),
            "P-00043,A1,p00043".to_string(),
            "P-00044,A1,44".to_string(),
            // Decimal points count: 1234.56 is not the patient number 123456.
            "123456,A1,1234.56".to_string(),
            // Under six letters and digits: too short to tell.
            "P-0045,P0045,1".to_string(),
        ];
        // `amount` `p00043` is not a number: rejected for that too.
        check(
            &r,
            &[
                "f.csv:2:member: content value repeats an identifier of the same row; map the column as identifier or ignore",
                "f.csv:3:amount: not a valid number",
                "f.csv:3:amount: content value repeats an identifier of the same row; map the column as identifier or ignore",
            ],
            3,
        );
    }

    #[test]
    fn splits_quoted() {
        let mut out = Vec::new();
        split_line(r#"a,"b,c","d""e",,f"#, ',', &mut out);
        assert_eq!(out, vec!["a", "b,c", "d\"e", "", "f"]);
    }
}
