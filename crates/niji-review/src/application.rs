//! The application (利用申請): one form for every dataset (ワンストップ), and its validation.
//!
//! An application says what data (dataset, table, column — each with a justification: data
//! minimization), for what (purpose in words and a [`PurposeCategory`], diseases in scope as
//! ICD-10 codes or prefixes), for whom ([`Recipient`]s and named researchers), how (the
//! [`Track`], linkage between datasets, the analysis plan and the software brought in) and for
//! how long.
//!
//! Invariants: [`Application::validate`] reports every problem at once, each located by a field
//! path (`variables[2].justification`) with a fixed reason; a problem never quotes what the
//! applicant typed. Applications are stored as JSON by the caller (serde derive); nothing here
//! does I/O.

use std::collections::BTreeSet;
use std::fmt;

use serde::{Deserialize, Serialize};
use time::Date;

/// An account id (the `id` of an account in the metadata store).
pub type AccountId = i64;

/// Longest title, in characters.
pub const MAX_TITLE_CHARS: usize = 200;
/// Longest free text (purpose, analysis plan, justification), in characters.
pub const MAX_TEXT_CHARS: usize = 20_000;
/// Longest duration of a project, in months.
pub const MAX_DURATION_MONTHS: u32 = 60;

/// A 利用申請.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Application {
    pub title: String,
    /// The purpose in the applicant's words.
    pub purpose: String,
    pub purpose_category: PurposeCategory,
    /// ICD-10 codes or prefixes (`E11`, `E11.9`, `C`); empty = the project is not limited to
    /// diseases (which a consent limited to diseases does not cover).
    pub diseases: Vec<String>,
    pub recipients: Vec<Recipient>,
    pub track: Track,
    pub variables: Vec<RequestedVariable>,
    /// Linkage between datasets (連結解析); both datasets must be requested.
    pub linkage: Vec<LinkagePair>,
    pub analysis_plan: String,
    /// Analysis software brought into the analysis environment (reviewed too).
    pub software: Vec<Software>,
    pub duration_months: u32,
    pub researchers: Vec<NamedResearcher>,
    pub genomic_data: bool,
    pub rare_disease: bool,
    /// Expected number of persons in the study population, if known.
    pub expected_population: Option<u64>,
    pub cohort: Option<CohortFilter>,
}

/// Purpose categories, as consents name them (e.g. 「創薬等の目的で活用し…」 = drug development).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PurposeCategory {
    /// 学術研究.
    AcademicResearch,
    /// 治療方法等の研究開発.
    TreatmentDevelopment,
    /// 創薬・医療機器開発.
    DrugAndDeviceDevelopment,
    /// 医薬品等の安全性評価.
    DrugSafety,
    /// 公衆衛生・行政施策.
    PublicHealthPolicy,
    /// 医療の質の向上・医療提供体制.
    HealthcareQuality,
    /// AI・アルゴリズム開発.
    AiDevelopment,
    /// その他: never within a consent scope, whatever the scope says.
    Other,
}

/// Kinds of recipients (利活用者).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RecipientKind {
    Academia,
    Company,
    Hospital,
    Municipality,
    Government,
    Other,
}

/// An organization that receives or uses the data.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Recipient {
    pub organization: String,
    pub kind: RecipientKind,
    /// Under regulation similar to the consented recipients (e.g. both 個人情報取扱事業者);
    /// makes a case-3 review light.
    pub similar_regulation: bool,
}

/// How the data is used.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Track {
    /// Pseudonymized analysis in the Visiting analysis environment (no download).
    Visiting,
    /// An anonymized extract (匿名加工情報).
    AnonymizedExtract,
    /// Statistics tables produced by the platform.
    StatisticsTables,
}

/// A variable asked for, with why it is needed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RequestedVariable {
    pub dataset: String,
    pub table: String,
    pub column: String,
    pub justification: String,
}

/// A dataset, table and column (no justification).
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct VariableRef {
    pub dataset: String,
    pub table: String,
    pub column: String,
}

/// Linkage of two datasets; unordered (`a–b` is `b–a`).
#[derive(Clone, Debug, Eq, Serialize, Deserialize)]
pub struct LinkagePair {
    pub left: String,
    pub right: String,
}

/// Software brought into the analysis environment.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Software {
    pub name: String,
    pub version: String,
}

/// A researcher named on the application.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NamedResearcher {
    pub account_id: AccountId,
    pub display_name: String,
}

/// Which persons the project may see.
#[derive(Clone, Debug, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct CohortFilter {
    /// ICD-10 codes or prefixes; empty = no disease filter.
    pub diseases: Vec<String>,
    /// Age in whole years, inclusive bounds.
    pub age: Option<AgeRange>,
    pub period: Option<Period>,
}

/// Inclusive age range in whole years.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AgeRange {
    pub min: u32,
    pub max: u32,
}

/// Inclusive period of dates.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Period {
    #[serde(with = "crate::date::iso")]
    pub from: Date,
    #[serde(with = "crate::date::iso")]
    pub to: Date,
}

/// A located validation problem: the field path and a fixed reason.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApplicationProblem {
    /// E.g. `title`, `variables[2].justification`, `linkage[0]`.
    pub field: String,
    pub reason: ProblemReason,
}

/// Why a field is refused (fixed texts; never the value).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ProblemReason {
    /// Required and empty (or only spaces); for lists: at least one entry is required.
    Required,
    /// Longer than allowed.
    TooLong,
    /// Not an ICD-10 code or prefix.
    NotIcd10,
    /// The same entry appears twice.
    Duplicate,
    /// Duration is 0 or more than [`MAX_DURATION_MONTHS`].
    DurationOutOfRange,
    /// Linkage of a dataset with itself.
    LinkageToItself,
    /// Linkage names a dataset with no requested variable.
    LinkageDatasetNotRequested,
    /// A range whose lower bound is above its upper bound.
    InvertedRange,
    /// A population of zero persons.
    ZeroPopulation,
    /// Contains control characters.
    ControlCharacters,
}

impl ProblemReason {
    pub fn text_ja(self) -> &'static str {
        match self {
            ProblemReason::Required => "入力が必要です",
            ProblemReason::TooLong => "長すぎます",
            ProblemReason::NotIcd10 => "ICD-10 コードまたはその前方一致（例: E11, E11.9）ではありません",
            ProblemReason::Duplicate => "同じ内容が重複しています",
            ProblemReason::DurationOutOfRange => "期間は 1〜60 か月で指定してください",
            ProblemReason::LinkageToItself => "同じデータセット同士は連結できません",
            ProblemReason::LinkageDatasetNotRequested => "連結するデータセットの項目が申請されていません",
            ProblemReason::InvertedRange => "下限が上限を超えています",
            ProblemReason::ZeroPopulation => "対象人数が 0 です",
            ProblemReason::ControlCharacters => "制御文字が含まれています",
        }
    }

    pub fn text_en(self) -> &'static str {
        match self {
            ProblemReason::Required => "is required",
            ProblemReason::TooLong => "is too long",
            ProblemReason::NotIcd10 => "is not an ICD-10 code or prefix (e.g. E11, E11.9)",
            ProblemReason::Duplicate => "is a duplicate",
            ProblemReason::DurationOutOfRange => "must be between 1 and 60 months",
            ProblemReason::LinkageToItself => "links a dataset with itself",
            ProblemReason::LinkageDatasetNotRequested => "links a dataset none of whose variables is requested",
            ProblemReason::InvertedRange => "has its lower bound above its upper bound",
            ProblemReason::ZeroPopulation => "is zero",
            ProblemReason::ControlCharacters => "contains control characters",
        }
    }
}

impl fmt::Display for ApplicationProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.field, self.reason.text_en())
    }
}

impl PurposeCategory {
    pub const ALL: [PurposeCategory; 8] = [
        PurposeCategory::AcademicResearch,
        PurposeCategory::TreatmentDevelopment,
        PurposeCategory::DrugAndDeviceDevelopment,
        PurposeCategory::DrugSafety,
        PurposeCategory::PublicHealthPolicy,
        PurposeCategory::HealthcareQuality,
        PurposeCategory::AiDevelopment,
        PurposeCategory::Other,
    ];

    /// Stable identifier (as serialized).
    pub fn as_str(self) -> &'static str {
        match self {
            PurposeCategory::AcademicResearch => "academic_research",
            PurposeCategory::TreatmentDevelopment => "treatment_development",
            PurposeCategory::DrugAndDeviceDevelopment => "drug_and_device_development",
            PurposeCategory::DrugSafety => "drug_safety",
            PurposeCategory::PublicHealthPolicy => "public_health_policy",
            PurposeCategory::HealthcareQuality => "healthcare_quality",
            PurposeCategory::AiDevelopment => "ai_development",
            PurposeCategory::Other => "other",
        }
    }

    pub fn label_ja(self) -> &'static str {
        match self {
            PurposeCategory::AcademicResearch => "学術研究",
            PurposeCategory::TreatmentDevelopment => "治療方法等の研究開発",
            PurposeCategory::DrugAndDeviceDevelopment => "創薬・医療機器開発",
            PurposeCategory::DrugSafety => "医薬品等の安全性評価",
            PurposeCategory::PublicHealthPolicy => "公衆衛生・行政施策",
            PurposeCategory::HealthcareQuality => "医療の質の向上",
            PurposeCategory::AiDevelopment => "AI開発",
            PurposeCategory::Other => "その他",
        }
    }

    pub fn label_en(self) -> &'static str {
        match self {
            PurposeCategory::AcademicResearch => "academic research",
            PurposeCategory::TreatmentDevelopment => "development of treatments",
            PurposeCategory::DrugAndDeviceDevelopment => "drug and device development",
            PurposeCategory::DrugSafety => "drug safety assessment",
            PurposeCategory::PublicHealthPolicy => "public health and policy",
            PurposeCategory::HealthcareQuality => "quality of healthcare",
            PurposeCategory::AiDevelopment => "AI development",
            PurposeCategory::Other => "other",
        }
    }
}

impl RecipientKind {
    pub const ALL: [RecipientKind; 6] = [
        RecipientKind::Academia,
        RecipientKind::Company,
        RecipientKind::Hospital,
        RecipientKind::Municipality,
        RecipientKind::Government,
        RecipientKind::Other,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            RecipientKind::Academia => "academia",
            RecipientKind::Company => "company",
            RecipientKind::Hospital => "hospital",
            RecipientKind::Municipality => "municipality",
            RecipientKind::Government => "government",
            RecipientKind::Other => "other",
        }
    }

    pub fn label_ja(self) -> &'static str {
        match self {
            RecipientKind::Academia => "大学・研究機関",
            RecipientKind::Company => "企業",
            RecipientKind::Hospital => "医療機関",
            RecipientKind::Municipality => "自治体",
            RecipientKind::Government => "国の行政機関",
            RecipientKind::Other => "その他",
        }
    }

    pub fn label_en(self) -> &'static str {
        match self {
            RecipientKind::Academia => "academia",
            RecipientKind::Company => "company",
            RecipientKind::Hospital => "hospital",
            RecipientKind::Municipality => "municipality",
            RecipientKind::Government => "government",
            RecipientKind::Other => "other",
        }
    }
}

impl Track {
    pub fn as_str(self) -> &'static str {
        match self {
            Track::Visiting => "visiting",
            Track::AnonymizedExtract => "anonymized_extract",
            Track::StatisticsTables => "statistics_tables",
        }
    }

    pub fn label_ja(self) -> &'static str {
        match self {
            Track::Visiting => "仮名化情報の解析（Visiting解析環境）",
            Track::AnonymizedExtract => "匿名加工情報の提供",
            Track::StatisticsTables => "統計表の作成",
        }
    }

    pub fn label_en(self) -> &'static str {
        match self {
            Track::Visiting => "pseudonymized analysis (Visiting environment)",
            Track::AnonymizedExtract => "anonymized extract",
            Track::StatisticsTables => "statistics tables",
        }
    }
}

impl LinkagePair {
    pub fn new(left: impl Into<String>, right: impl Into<String>) -> Self {
        LinkagePair { left: left.into(), right: right.into() }
    }

    /// The two names in sorted order (the pair's identity).
    pub fn key(&self) -> (&str, &str) {
        if self.left <= self.right {
            (&self.left, &self.right)
        } else {
            (&self.right, &self.left)
        }
    }

    /// Whether this pair links `a` and `b`, in either order.
    pub fn links(&self, a: &str, b: &str) -> bool {
        (self.left == a && self.right == b) || (self.left == b && self.right == a)
    }
}

impl PartialEq for LinkagePair {
    fn eq(&self, other: &Self) -> bool {
        self.key() == other.key()
    }
}

impl RequestedVariable {
    pub fn to_ref(&self) -> VariableRef {
        VariableRef { dataset: self.dataset.clone(), table: self.table.clone(), column: self.column.clone() }
    }
}

impl VariableRef {
    pub fn new(dataset: impl Into<String>, table: impl Into<String>, column: impl Into<String>) -> Self {
        VariableRef { dataset: dataset.into(), table: table.into(), column: column.into() }
    }
}

impl Application {
    /// The datasets the application touches (variables and linkage), sorted, once each.
    pub fn datasets(&self) -> Vec<String> {
        let mut set: BTreeSet<&str> = self.variables.iter().map(|v| v.dataset.as_str()).collect();
        for pair in &self.linkage {
            set.insert(&pair.left);
            set.insert(&pair.right);
        }
        set.into_iter().map(str::to_owned).collect()
    }

    /// Whether this variable was requested.
    pub fn requests(&self, dataset: &str, table: &str, column: &str) -> bool {
        self.variables.iter().any(|v| v.dataset == dataset && v.table == table && v.column == column)
    }

    /// Every problem of the application, located; `Ok` when there is none.
    pub fn validate(&self) -> Result<(), Vec<ApplicationProblem>> {
        let mut p = Problems::default();
        p.text("title", &self.title, MAX_TITLE_CHARS);
        p.text("purpose", &self.purpose, MAX_TEXT_CHARS);
        p.text("analysis_plan", &self.analysis_plan, MAX_TEXT_CHARS);
        p.diseases("diseases", &self.diseases);

        p.non_empty_list("recipients", self.recipients.len());
        let mut seen = BTreeSet::new();
        for (i, r) in self.recipients.iter().enumerate() {
            let field = format!("recipients[{i}].organization");
            p.text(&field, &r.organization, MAX_TITLE_CHARS);
            if !seen.insert(r.organization.trim()) {
                p.push(field, ProblemReason::Duplicate);
            }
        }

        p.non_empty_list("variables", self.variables.len());
        let mut seen = BTreeSet::new();
        for (i, v) in self.variables.iter().enumerate() {
            p.text(&format!("variables[{i}].dataset"), &v.dataset, MAX_TITLE_CHARS);
            p.text(&format!("variables[{i}].table"), &v.table, MAX_TITLE_CHARS);
            p.text(&format!("variables[{i}].column"), &v.column, MAX_TITLE_CHARS);
            p.text(&format!("variables[{i}].justification"), &v.justification, MAX_TEXT_CHARS);
            if !seen.insert((&v.dataset, &v.table, &v.column)) {
                p.push(format!("variables[{i}]"), ProblemReason::Duplicate);
            }
        }

        let requested: BTreeSet<&str> = self.variables.iter().map(|v| v.dataset.as_str()).collect();
        let mut seen = BTreeSet::new();
        for (i, pair) in self.linkage.iter().enumerate() {
            let field = format!("linkage[{i}]");
            if pair.left == pair.right {
                p.push(field, ProblemReason::LinkageToItself);
            } else if !requested.contains(pair.left.as_str()) || !requested.contains(pair.right.as_str()) {
                p.push(field, ProblemReason::LinkageDatasetNotRequested);
            } else if !seen.insert(pair.key()) {
                p.push(field, ProblemReason::Duplicate);
            }
        }

        for (i, s) in self.software.iter().enumerate() {
            p.text(&format!("software[{i}].name"), &s.name, MAX_TITLE_CHARS);
            p.optional_text(&format!("software[{i}].version"), &s.version, MAX_TITLE_CHARS);
        }

        if self.duration_months == 0 || self.duration_months > MAX_DURATION_MONTHS {
            p.push("duration_months".into(), ProblemReason::DurationOutOfRange);
        }

        p.non_empty_list("researchers", self.researchers.len());
        let mut seen = BTreeSet::new();
        for (i, r) in self.researchers.iter().enumerate() {
            p.text(&format!("researchers[{i}].display_name"), &r.display_name, MAX_TITLE_CHARS);
            if !seen.insert(r.account_id) {
                p.push(format!("researchers[{i}].account_id"), ProblemReason::Duplicate);
            }
        }

        if self.expected_population == Some(0) {
            p.push("expected_population".into(), ProblemReason::ZeroPopulation);
        }

        if let Some(cohort) = &self.cohort {
            p.diseases("cohort.diseases", &cohort.diseases);
            if cohort.age.is_some_and(|a| a.min > a.max) {
                p.push("cohort.age".into(), ProblemReason::InvertedRange);
            }
            if cohort.period.is_some_and(|r| r.from > r.to) {
                p.push("cohort.period".into(), ProblemReason::InvertedRange);
            }
        }
        p.finish()
    }
}

#[derive(Default)]
struct Problems(Vec<ApplicationProblem>);

impl Problems {
    fn push(&mut self, field: String, reason: ProblemReason) {
        self.0.push(ApplicationProblem { field, reason });
    }

    fn text(&mut self, field: &str, value: &str, max_chars: usize) {
        if value.trim().is_empty() {
            self.push(field.to_owned(), ProblemReason::Required);
        } else {
            self.optional_text(field, value, max_chars);
        }
    }

    fn optional_text(&mut self, field: &str, value: &str, max_chars: usize) {
        if value.chars().count() > max_chars {
            self.push(field.to_owned(), ProblemReason::TooLong);
        } else if value.chars().any(|c| c.is_control() && c != '\n' && c != '\r' && c != '\t') {
            self.push(field.to_owned(), ProblemReason::ControlCharacters);
        }
    }

    fn non_empty_list(&mut self, field: &str, len: usize) {
        if len == 0 {
            self.push(field.to_owned(), ProblemReason::Required);
        }
    }

    fn diseases(&mut self, field: &str, diseases: &[String]) {
        let mut seen = BTreeSet::new();
        for (i, d) in diseases.iter().enumerate() {
            match crate::disease::normalize(d) {
                None => self.push(format!("{field}[{i}]"), ProblemReason::NotIcd10),
                Some(n) => {
                    if !seen.insert(n) {
                        self.push(format!("{field}[{i}]"), ProblemReason::Duplicate);
                    }
                }
            }
        }
    }

    fn finish(self) -> Result<(), Vec<ApplicationProblem>> {
        if self.0.is_empty() {
            Ok(())
        } else {
            Err(self.0)
        }
    }
}
