//! The split record: an [`Identity`] part (everything that names or points at a person) and a
//! [`Content`] part (codes, values, dates) that cannot hold an identifying value.
//!
//! Invariants:
//! - `Content` and everything inside it is built only from enums, numbers, dates and the
//!   validated newtypes [`Code`], [`Unit`] and [`VariableName`]. A `Code` is short ASCII
//!   without spaces and matches the shape of its [`CodeSystem`]; a `Unit` is short ASCII or a
//!   fixed Japanese unit word; a `VariableName` comes from the caller's mapping, not the data.
//!   No free text, name, address, phone or identifier string can be stored in content.
//! - Birth dates reach content only as [`YearMonth`]; full birth dates stay in the identity part.
//! - The two parts of one record share a [`RecordRef`] (numbers only: position in the file).

use std::fmt;

use crate::codes::{self, CodeSystem};
use crate::dates::Date;

/// Where a record sits in its file: a line (NDJSON, UKE, CSV) or a Bundle entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Location {
    /// The file as a whole (unreadable, not JSON, wrong top-level type).
    File,
    /// 1-based line number.
    Line(u64),
    /// 0-based `Bundle.entry` index, or 0 for a single-resource JSON file.
    Entry(u64),
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Location::File => f.write_str("file"),
            Location::Line(n) => write!(f, "{n}"),
            Location::Entry(n) => write!(f, "entry {n}"),
        }
    }
}

/// Local reference of a record: its position in the submitted file. Both halves of a split
/// record carry it, so a later stage can join them without any identifier in the lake.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct RecordRef {
    pub location: Location,
}

/// One accepted record, split.
#[derive(Debug, Clone)]
pub struct SplitRecord {
    pub identity: Identity,
    pub content: Content,
}

/// Identifying values of one record, bound for the identity vault. Its `Debug` shows each
/// value's kind, field and length only: a `{:?}` in a panic, a log line or a test failure must not
/// carry a name or a number.
#[derive(Clone, Default)]
pub struct Identity {
    pub items: Vec<IdentityItem>,
}

impl Identity {
    pub(crate) fn push(&mut self, kind: IdentifierKind, field: impl Into<String>, value: &str) {
        let value = value.trim();
        if !value.is_empty() {
            self.items.push(IdentityItem { kind, field: field.into(), value: value.to_string() });
        }
    }

    /// Values of one kind.
    pub fn values(&self, kind: IdentifierKind) -> impl Iterator<Item = &str> {
        self.items.iter().filter(move |i| i.kind == kind).map(|i| i.value.as_str())
    }
}

/// One identifying value, with the field it came from (a schema path, never data). `Debug`
/// without the value, as [`Identity`]'s.
#[derive(Clone, PartialEq, Eq)]
pub struct IdentityItem {
    pub kind: IdentifierKind,
    pub field: String,
    pub value: String,
}

impl fmt::Debug for IdentityItem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IdentityItem").field("kind", &self.kind).field("field", &self.field).field("value_bytes", &self.value.len()).finish()
    }
}

impl fmt::Debug for Identity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Identity").field("items", &self.items).finish()
    }
}

/// Kinds of identifying values. The first fourteen are the kinds a CSV mapping may name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum IdentifierKind {
    NameKanji,
    NameKana,
    BirthDate,
    Sex,
    InsurerNumber,
    InsuredSymbol,
    InsuredNumber,
    BranchNumber,
    PatientId,
    MyNumber,
    Phone,
    Address,
    PostalCode,
    FreeText,
    /// Full CLINS member id `保険者番号:記号:番号:枝番`.
    MemberId,
    /// FHIR narrative `text.div`.
    Narrative,
    /// 公費 受給者番号.
    PublicExpenseRecipient,
    /// Reference to the record's subject (`Patient/…`, `urn:uuid:…`) as the holder wrote it.
    SubjectReference,
    /// The holder's id of this resource (`Resource.id`, `fullUrl`, business identifiers).
    RecordIdentifier,
    /// Names and identifiers of practitioners and organizations named in the record.
    OtherPartyIdentifier,
}

impl IdentifierKind {
    /// Parses the mapping-file name (`name_kanji`, `insurer_number`, …).
    pub fn from_mapping_name(name: &str) -> Option<Self> {
        use IdentifierKind::*;
        Some(match name {
            "name_kanji" => NameKanji,
            "name_kana" => NameKana,
            "birth_date" => BirthDate,
            "sex" => Sex,
            "insurer_number" => InsurerNumber,
            "insured_symbol" => InsuredSymbol,
            "insured_number" => InsuredNumber,
            "branch_number" => BranchNumber,
            "patient_id" => PatientId,
            "my_number" => MyNumber,
            "phone" => Phone,
            "address" => Address,
            "postal_code" => PostalCode,
            "free_text" => FreeText,
            "member_id" => MemberId,
            _ => return None,
        })
    }
}

/// The content half of a record.
#[derive(Debug, Clone)]
pub struct Content {
    pub record: RecordRef,
    pub body: ContentBody,
}

/// Typed content per record kind.
#[derive(Debug, Clone)]
pub enum ContentBody {
    Patient(PatientContent),
    Condition(ConditionContent),
    Observation(ObservationContent),
    Allergy(AllergyContent),
    Medication(MedicationContent),
    Encounter(EncounterContent),
    Organization(OrganizationContent),
    Practitioner,
    /// UKE IR: the facility submitting claims.
    ClaimFacility(ClaimFacilityContent),
    /// UKE RE: one claim (レセプト).
    Claim(ClaimContent),
    /// UKE HO/KO/SN: a payer of the claim (numbers go to identity).
    ClaimPayer(ClaimPayerContent),
    /// UKE SY.
    ClaimDisease(ClaimDiseaseContent),
    /// UKE SI/IY/TO/CO.
    ClaimLine(ClaimLineContent),
    /// UKE GO.
    ClaimTotal {
        claims: Option<u32>,
        points: Option<u64>,
    },
    /// One CSV row: the mapped content and quasi-identifier columns.
    Row(Vec<RowValue>),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sex {
    Male,
    Female,
    Other,
    Unknown,
}

/// Year and month (birth dates in content, 診療年月).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct YearMonth {
    pub year: u16,
    pub month: u8,
}

/// JIS X 0401 prefecture code 1..=47.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Prefecture(u8);

impl Prefecture {
    pub fn new(code: u8) -> Option<Self> {
        (1..=47).contains(&code).then_some(Self(code))
    }
    pub fn code(self) -> u8 {
        self.0
    }
}

/// JIS X 0402 municipality code: 5 digits (prefecture 2 + municipality 3), check digit dropped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Municipality(u32);

impl Municipality {
    /// Accepts 5 digits, or 6 digits with the JIS X 0402 check digit (verified, then dropped).
    pub fn parse(text: &str) -> Option<Self> {
        let t = text.trim();
        if !t.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        let body = match t.len() {
            5 => t,
            6 => {
                let d: Vec<u32> = t.bytes().map(|b| (b - b'0') as u32).collect();
                let s: u32 = d[..5].iter().zip([6, 5, 4, 3, 2]).map(|(a, w)| a * w).sum();
                let check = (11 - s % 11) % 10;
                if check != d[5] {
                    return None;
                }
                &t[..5]
            }
            _ => return None,
        };
        let n: u32 = body.parse().ok()?;
        Prefecture::new((n / 1000) as u8)?;
        Some(Self(n))
    }
    pub fn code(self) -> u32 {
        self.0
    }
}

/// A code, validated against the shape of its code system at construction.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Code(String);

impl Code {
    /// Builds a code if `text` has the shape `system` requires (see [`codes::check_shape`]).
    pub fn new(system: CodeSystem, text: &str) -> Result<Self, codes::ShapeError> {
        codes::check_shape(system, text)?;
        Ok(Self(text.to_string()))
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Code {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", self.0)
    }
}

/// A code with its system.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Coded {
    pub system: CodeSystem,
    pub code: Code,
}

impl Coded {
    pub fn new(system: CodeSystem, text: &str) -> Result<Self, codes::ShapeError> {
        Ok(Self { system, code: Code::new(system, text)? })
    }
}

/// A unit of measure: short printable ASCII (UCUM and the like, `μ` allowed) or one of a fixed list of
/// Japanese unit words.
#[derive(Clone, PartialEq, Eq)]
pub struct Unit(String);

/// Japanese unit words accepted in [`Unit`].
pub const JAPANESE_UNITS: &[&str] = &[
    "錠",
    "カプセル",
    "包",
    "本",
    "枚",
    "瓶",
    "個",
    "管",
    "袋",
    "滴",
    "日",
    "回",
    "単位",
    "筒",
    "キット",
    "シート",
    "缶",
    "容器",
    "回分",
    "日分",
    "噴霧",
    "吸入",
    "ｇ",
    "ｍＬ",
    "ｍｌ",
    "ｍｇ",
    "μｇ",
    "μg",
    "ｍＬ",
    "Ｌ",
    "％",
    "分",
    "時間",
    "週",
    "月",
    "年",
    "歳",
    "ブリスター",
    "パック",
    "ｍ",
    "ｃｍ",
    "ｍｍ",
    "ｋｇ",
    "点",
    "件",
];

impl Unit {
    pub fn new(text: &str) -> Option<Self> {
        let t = text.trim();
        let ascii_ok = !t.is_empty() && t.chars().count() <= 24 && t.chars().all(|c| c.is_ascii_graphic() || c == 'μ' || c == 'µ');
        let digit_run = t.as_bytes().windows(4).any(|w| w.iter().all(u8::is_ascii_digit));
        if (ascii_ok && !digit_run) || JAPANESE_UNITS.contains(&t) {
            Some(Self(t.to_string()))
        } else {
            None
        }
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Unit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", self.0)
    }
}

/// A numeric value with an optional unit.
#[derive(Debug, Clone, PartialEq)]
pub struct Quantity {
    pub value: f64,
    pub unit: Option<Unit>,
}

/// A column name from the caller's mapping file (ASCII identifier, ≤ 64 bytes).
#[derive(Clone, PartialEq, Eq)]
pub struct VariableName(String);

impl VariableName {
    pub fn new(text: &str) -> Option<Self> {
        let ok = !text.is_empty()
            && text.len() <= 64
            && text.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-' || b == b'.')
            && !text.as_bytes().windows(4).any(|w| w.iter().all(u8::is_ascii_digit));
        ok.then(|| Self(text.to_string()))
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for VariableName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", self.0)
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct RowValue {
    pub column: VariableName,
    pub value: Value,
}

/// A content value of a CSV column.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Coded(Coded),
    Date(Date),
    YearMonth(YearMonth),
    Number(f64),
    Quantity(Quantity),
    Sex(Sex),
    Prefecture(Prefecture),
    Municipality(Municipality),
}

#[derive(Debug, Clone, Default)]
pub struct PatientContent {
    pub sex: Option<Sex>,
    pub birth: Option<YearMonth>,
    /// From `address.state` (a prefecture name mapped to its JIS X 0401 code), the address text's
    /// leading prefecture name, or the 都道府県 digits of an 8-digit 保険者番号 — in that order.
    pub prefecture: Option<Prefecture>,
    /// Only when the data itself carries a JIS X 0402 code (never derived from address text).
    pub municipality: Option<Municipality>,
    pub deceased: Option<bool>,
    pub deceased_on: Option<Date>,
}

#[derive(Debug, Clone, Default)]
pub struct ConditionContent {
    pub codes: Vec<Coded>,
    pub clinical_status: Option<Code>,
    pub verification_status: Option<Code>,
    pub categories: Vec<Code>,
    pub onset: Option<Date>,
    pub abatement: Option<Date>,
    pub recorded: Option<Date>,
}

#[derive(Debug, Clone, Default)]
pub struct ObservationContent {
    pub status: Option<Code>,
    pub categories: Vec<Code>,
    pub codes: Vec<Coded>,
    pub effective: Option<Date>,
    pub value: Option<Quantity>,
    pub value_codes: Vec<Coded>,
    pub interpretation: Vec<Code>,
    pub components: Vec<ObservationComponent>,
}

/// One `Observation.component` (blood pressure and the like).
#[derive(Debug, Clone, Default)]
pub struct ObservationComponent {
    pub codes: Vec<Coded>,
    pub value: Option<Quantity>,
    pub value_codes: Vec<Coded>,
}

#[derive(Debug, Clone, Default)]
pub struct AllergyContent {
    pub codes: Vec<Coded>,
    pub categories: Vec<Code>,
    pub criticality: Option<Code>,
    pub clinical_status: Option<Code>,
    pub verification_status: Option<Code>,
    pub onset: Option<Date>,
    pub recorded: Option<Date>,
}

#[derive(Debug, Clone, Default)]
pub struct MedicationContent {
    pub status: Option<Code>,
    pub intent: Option<Code>,
    pub categories: Vec<Code>,
    pub codes: Vec<Coded>,
    pub authored: Option<Date>,
    pub dose: Option<Quantity>,
    pub duration_days: Option<f64>,
    pub dispense: Option<Quantity>,
    pub usage_codes: Vec<Code>,
}

#[derive(Debug, Clone, Default)]
pub struct EncounterContent {
    pub status: Option<Code>,
    pub class: Option<Code>,
    pub start: Option<Date>,
    pub end: Option<Date>,
}

#[derive(Debug, Clone, Default)]
pub struct OrganizationContent {
    /// 保険医療機関番号 (10 digits) — a facility, not a person.
    pub facility: Option<Coded>,
    pub prefecture: Option<Prefecture>,
    pub types: Vec<Code>,
}

#[derive(Debug, Clone, Default)]
pub struct ClaimFacilityContent {
    pub payer_kind: Option<u8>,
    pub prefecture: Option<Prefecture>,
    pub fee_table: Option<u8>,
    /// 医療機関コード (7 digits) — a facility, not a person.
    pub facility: Option<Coded>,
    pub billing_month: Option<YearMonth>,
}

#[derive(Debug, Clone, Default)]
pub struct ClaimContent {
    pub receipt_no: Option<u32>,
    pub receipt_kind: Option<Code>,
    pub month: Option<YearMonth>,
    pub sex: Option<Sex>,
    pub birth: Option<YearMonth>,
    pub benefit_ratio: Option<u32>,
    pub admitted_on: Option<Date>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PayerKind {
    /// HO: 医療保険.
    Insurance,
    /// KO: 公費.
    PublicExpense,
    /// SN: 資格確認.
    Eligibility,
}

#[derive(Debug, Clone)]
pub struct ClaimPayerContent {
    /// RE line this record belongs to.
    pub claim: Option<u64>,
    pub kind: PayerKind,
    /// Prefecture of an 8-digit 保険者番号 (digits 3-4).
    pub prefecture: Option<Prefecture>,
    /// 法別番号 (first two digits of an 8-digit payer number).
    pub law: Option<u8>,
    pub days: Option<u32>,
    pub points: Option<u64>,
}

#[derive(Debug, Clone)]
pub struct ClaimDiseaseContent {
    pub claim: Option<u64>,
    pub code: Coded,
    pub modifiers: Vec<Code>,
    pub started: Option<Date>,
    pub outcome: Option<u8>,
    pub main: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClaimLineKind {
    Procedure,
    Drug,
    Material,
    Comment,
}

#[derive(Debug, Clone)]
pub struct ClaimLineContent {
    pub claim: Option<u64>,
    pub kind: ClaimLineKind,
    pub category: Option<u8>,
    pub burden: Option<Code>,
    pub code: Coded,
    pub quantity: Option<f64>,
    pub points: Option<u64>,
    pub times: Option<u32>,
    pub comment_codes: Vec<Code>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_of_an_identity_shows_no_value() {
        let mut identity = Identity::default();
        identity.push(IdentifierKind::NameKanji, "Patient.name", "山田 太郎");
        identity.push(IdentifierKind::InsuredNumber, "HO.3", "12345678");
        identity.push(IdentifierKind::Phone, "Patient.telecom", "090-1234-5678");
        let shown = format!("{identity:?} {:?} {identity:#?}", identity.items[0]);
        for value in ["山田", "太郎", "12345678", "090-1234-5678", "1234"] {
            assert!(!shown.contains(value), "{value} in {shown}");
        }
        // What it does show: kinds, fields and lengths.
        assert!(shown.contains("NameKanji") && shown.contains("HO.3") && shown.contains("value_bytes: 13"), "{shown}");
    }
}
