//! Triage: which of the seed's four cases an application is, per dataset, and how deep its
//! review goes.
//!
//! For every dataset the application touches (variables and linkage), its consent scope decides:
//! 1. purpose, diseases and recipients within the consent → [`Case::WithinConsent`],
//!    [`Tier::Notification`] (届出);
//! 2. a related (類縁疾患) or other disease → [`Case::DiseaseBeyondConsent`],
//!    [`Tier::MedicalValidity`]; an application not limited to diseases against a consent that
//!    is, likewise;
//! 3. the same purpose, a recipient not covered → [`Case::NewRecipient`]: [`Tier::Light`] when
//!    every new recipient is under similar regulation, [`Tier::Standard`] otherwise;
//! 4. a different purpose and a different recipient → [`Case::DifferentPurpose`], [`Tier::Full`].
//!
//! A different purpose with the same recipients is not one of the seed's cases; it is reviewed
//! in full too (conservative), with its own reason. A dataset without a recorded consent scope
//! is reviewed in full. When a dataset is in cases 2 and 3 at once, the deeper tier wins (ties:
//! the higher case). Across datasets the strictest dataset gives the case and the tier. Then
//! each escalation of the criteria that applies (linkage, rare disease, small population,
//! genomic data, a company on the Visiting track) raises the tier one step, capped at
//! [`Tier::Full`], and adds its reason even when capped.
//!
//! The consent cases apply on every track: the criteria, not this code, may one day relax the
//! anonymized tracks. Reasons are data ([`TriageReason`], with a stable [`ReasonCode`]) and
//! render in Japanese and English; they name datasets, diseases and recipients as the
//! application and the consent wrote them, because applicants and reviewers must see them.
//! Pure and deterministic.

use serde::{Deserialize, Serialize};

use crate::application::{Application, LinkagePair, PurposeCategory, RecipientKind, Track};
use crate::consent::ConsentScope;
use crate::criteria::{Criteria, Tier};
use crate::disease::{relation, DiseaseRelation};

/// The seed's four cases of re-use beyond consent.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Case {
    /// Case 1: within purpose, diseases and recipients.
    WithinConsent,
    /// Case 2: a related or other disease.
    DiseaseBeyondConsent,
    /// Case 3: same purpose, a recipient not covered.
    NewRecipient,
    /// Case 4: different purpose (and recipient); also: different purpose with the same
    /// recipients, and no consent scope recorded.
    DifferentPurpose,
}

/// The outcome of triage.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Triage {
    pub case: Case,
    pub tier: Tier,
    pub reasons: Vec<TriageReason>,
    pub criteria_version: String,
}

/// Why triage decided as it did; shown to applicants and reviewers.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "code", rename_all = "snake_case")]
pub enum TriageReason {
    /// Case 1 for this dataset.
    WithinConsent { dataset: String },
    /// Case 2: the disease is related to a consented one.
    RelatedDisease { dataset: String, disease: String, consented: String },
    /// Case 2: the disease is neither covered nor related.
    OtherDisease { dataset: String, disease: String },
    /// Case 2: the application is not limited to diseases; the consent is.
    DiseasesUnrestricted { dataset: String },
    /// Case 3, light: a new recipient under similar regulation.
    NewRecipientSimilarRegulation { dataset: String, recipient: String },
    /// Case 3, standard: a new recipient not under similar regulation.
    NewRecipient { dataset: String, recipient: String },
    /// Case 4.
    DifferentPurposeAndRecipient { dataset: String, purpose: PurposeCategory, recipients: Vec<String> },
    /// A different purpose with the recipients consented to: full review (conservative).
    DifferentPurposeSameRecipients { dataset: String, purpose: PurposeCategory },
    /// No consent scope is recorded for the dataset: full review (conservative).
    NoConsentScope { dataset: String },
    /// Escalation: linkage between datasets.
    Linkage { pairs: Vec<LinkagePair>, raised_to: Tier },
    /// Escalation: rare disease.
    RareDisease { raised_to: Tier },
    /// Escalation: expected population below the threshold.
    SmallPopulation { expected: u64, threshold: u64, raised_to: Tier },
    /// Escalation: genomic data.
    GenomicData { raised_to: Tier },
    /// Escalation: a company on the pseudonymized Visiting track.
    CompanyOnVisiting { recipients: Vec<String>, raised_to: Tier },
}

/// The stable code of a [`TriageReason`] (as serialized in its `code` tag).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReasonCode {
    WithinConsent,
    RelatedDisease,
    OtherDisease,
    DiseasesUnrestricted,
    NewRecipientSimilarRegulation,
    NewRecipient,
    DifferentPurposeAndRecipient,
    DifferentPurposeSameRecipients,
    NoConsentScope,
    Linkage,
    RareDisease,
    SmallPopulation,
    GenomicData,
    CompanyOnVisiting,
}

/// Triage of an application against the consent scopes of the datasets (by dataset name).
pub fn triage(application: &Application, consents: &[(&str, &ConsentScope)], criteria: &Criteria) -> Triage {
    let mut case = Case::WithinConsent;
    let mut tier = Tier::Notification;
    let mut reasons = Vec::new();
    for dataset in application.datasets() {
        let scope = consents.iter().find(|(name, _)| *name == dataset).map(|(_, scope)| *scope);
        let (c, t, r) = assess(application, &dataset, scope, criteria);
        if (t, c) > (tier, case) {
            (tier, case) = (t, c);
        }
        reasons.extend(r);
    }

    let e = &criteria.escalations;
    if e.linkage && !application.linkage.is_empty() {
        tier = tier.raised();
        reasons.push(TriageReason::Linkage { pairs: application.linkage.clone(), raised_to: tier });
    }
    if e.rare_disease && application.rare_disease {
        tier = tier.raised();
        reasons.push(TriageReason::RareDisease { raised_to: tier });
    }
    if let (Some(threshold), Some(expected)) = (e.small_population_below, application.expected_population) {
        if expected < threshold {
            tier = tier.raised();
            reasons.push(TriageReason::SmallPopulation { expected, threshold, raised_to: tier });
        }
    }
    if e.genomic_data && application.genomic_data {
        tier = tier.raised();
        reasons.push(TriageReason::GenomicData { raised_to: tier });
    }
    let companies: Vec<String> = application.recipients.iter().filter(|r| r.kind == RecipientKind::Company).map(|r| r.organization.clone()).collect();
    if e.company_on_visiting && application.track == Track::Visiting && !companies.is_empty() {
        tier = tier.raised();
        reasons.push(TriageReason::CompanyOnVisiting { recipients: companies, raised_to: tier });
    }

    Triage { case, tier, reasons, criteria_version: criteria.version.clone() }
}

fn assess(application: &Application, dataset: &str, scope: Option<&ConsentScope>, criteria: &Criteria) -> (Case, Tier, Vec<TriageReason>) {
    let dataset = dataset.to_owned();
    let Some(scope) = scope else {
        return (Case::DifferentPurpose, Tier::Full, vec![TriageReason::NoConsentScope { dataset }]);
    };

    let mut disease_reasons = Vec::new();
    if application.diseases.is_empty() && !scope.diseases.is_empty() {
        disease_reasons.push(TriageReason::DiseasesUnrestricted { dataset: dataset.clone() });
    }
    for disease in &application.diseases {
        match relation(disease, &scope.diseases, criteria.related_disease) {
            DiseaseRelation::Covered => {}
            DiseaseRelation::Related { consented } => {
                disease_reasons.push(TriageReason::RelatedDisease { dataset: dataset.clone(), disease: disease.clone(), consented })
            }
            DiseaseRelation::Other => disease_reasons.push(TriageReason::OtherDisease { dataset: dataset.clone(), disease: disease.clone() }),
        }
    }
    let new_recipients: Vec<_> = application.recipients.iter().filter(|r| !scope.covers_recipient(r)).collect();

    if !scope.covers_purpose(application.purpose_category) {
        let purpose = application.purpose_category;
        let reason = if new_recipients.is_empty() {
            TriageReason::DifferentPurposeSameRecipients { dataset, purpose }
        } else {
            TriageReason::DifferentPurposeAndRecipient {
                dataset,
                purpose,
                recipients: new_recipients.iter().map(|r| r.organization.clone()).collect(),
            }
        };
        let mut reasons = vec![reason];
        reasons.extend(disease_reasons);
        return (Case::DifferentPurpose, Tier::Full, reasons);
    }

    let mut case = Case::WithinConsent;
    let mut tier = Tier::Notification;
    if !disease_reasons.is_empty() {
        (case, tier) = (Case::DiseaseBeyondConsent, Tier::MedicalValidity);
    }
    let mut reasons = disease_reasons;
    if !new_recipients.is_empty() {
        let recipient_tier = if new_recipients.iter().all(|r| r.similar_regulation) { Tier::Light } else { Tier::Standard };
        if (recipient_tier, Case::NewRecipient) > (tier, case) {
            (case, tier) = (Case::NewRecipient, recipient_tier);
        }
        for r in new_recipients {
            let recipient = r.organization.clone();
            reasons.push(if r.similar_regulation {
                TriageReason::NewRecipientSimilarRegulation { dataset: dataset.clone(), recipient }
            } else {
                TriageReason::NewRecipient { dataset: dataset.clone(), recipient }
            });
        }
    }
    if reasons.is_empty() {
        reasons.push(TriageReason::WithinConsent { dataset });
    }
    (case, tier, reasons)
}

impl Case {
    /// The seed's case number (1–4).
    pub fn number(self) -> u8 {
        self as u8 + 1
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Case::WithinConsent => "within_consent",
            Case::DiseaseBeyondConsent => "disease_beyond_consent",
            Case::NewRecipient => "new_recipient",
            Case::DifferentPurpose => "different_purpose",
        }
    }

    pub fn label_ja(self) -> &'static str {
        match self {
            Case::WithinConsent => "同意の範囲内（目的・疾患・提供先）",
            Case::DiseaseBeyondConsent => "類縁疾患または他疾患への利用",
            Case::NewRecipient => "同一目的・同意にない提供先",
            Case::DifferentPurpose => "異なる目的での利用",
        }
    }

    pub fn label_en(self) -> &'static str {
        match self {
            Case::WithinConsent => "within the consented purpose, diseases and recipients",
            Case::DiseaseBeyondConsent => "a related or other disease",
            Case::NewRecipient => "same purpose, a recipient not in the consent",
            Case::DifferentPurpose => "a different purpose",
        }
    }
}

impl ReasonCode {
    pub fn as_str(self) -> &'static str {
        match self {
            ReasonCode::WithinConsent => "within_consent",
            ReasonCode::RelatedDisease => "related_disease",
            ReasonCode::OtherDisease => "other_disease",
            ReasonCode::DiseasesUnrestricted => "diseases_unrestricted",
            ReasonCode::NewRecipientSimilarRegulation => "new_recipient_similar_regulation",
            ReasonCode::NewRecipient => "new_recipient",
            ReasonCode::DifferentPurposeAndRecipient => "different_purpose_and_recipient",
            ReasonCode::DifferentPurposeSameRecipients => "different_purpose_same_recipients",
            ReasonCode::NoConsentScope => "no_consent_scope",
            ReasonCode::Linkage => "linkage",
            ReasonCode::RareDisease => "rare_disease",
            ReasonCode::SmallPopulation => "small_population",
            ReasonCode::GenomicData => "genomic_data",
            ReasonCode::CompanyOnVisiting => "company_on_visiting",
        }
    }

    /// Whether this reason is an escalation (raises the tier one step).
    pub fn is_escalation(self) -> bool {
        matches!(
            self,
            ReasonCode::Linkage | ReasonCode::RareDisease | ReasonCode::SmallPopulation | ReasonCode::GenomicData | ReasonCode::CompanyOnVisiting
        )
    }
}

impl TriageReason {
    pub fn code(&self) -> ReasonCode {
        match self {
            TriageReason::WithinConsent { .. } => ReasonCode::WithinConsent,
            TriageReason::RelatedDisease { .. } => ReasonCode::RelatedDisease,
            TriageReason::OtherDisease { .. } => ReasonCode::OtherDisease,
            TriageReason::DiseasesUnrestricted { .. } => ReasonCode::DiseasesUnrestricted,
            TriageReason::NewRecipientSimilarRegulation { .. } => ReasonCode::NewRecipientSimilarRegulation,
            TriageReason::NewRecipient { .. } => ReasonCode::NewRecipient,
            TriageReason::DifferentPurposeAndRecipient { .. } => ReasonCode::DifferentPurposeAndRecipient,
            TriageReason::DifferentPurposeSameRecipients { .. } => ReasonCode::DifferentPurposeSameRecipients,
            TriageReason::NoConsentScope { .. } => ReasonCode::NoConsentScope,
            TriageReason::Linkage { .. } => ReasonCode::Linkage,
            TriageReason::RareDisease { .. } => ReasonCode::RareDisease,
            TriageReason::SmallPopulation { .. } => ReasonCode::SmallPopulation,
            TriageReason::GenomicData { .. } => ReasonCode::GenomicData,
            TriageReason::CompanyOnVisiting { .. } => ReasonCode::CompanyOnVisiting,
        }
    }

    /// The dataset the reason is about (`None` for escalations).
    pub fn dataset(&self) -> Option<&str> {
        match self {
            TriageReason::WithinConsent { dataset }
            | TriageReason::RelatedDisease { dataset, .. }
            | TriageReason::OtherDisease { dataset, .. }
            | TriageReason::DiseasesUnrestricted { dataset }
            | TriageReason::NewRecipientSimilarRegulation { dataset, .. }
            | TriageReason::NewRecipient { dataset, .. }
            | TriageReason::DifferentPurposeAndRecipient { dataset, .. }
            | TriageReason::DifferentPurposeSameRecipients { dataset, .. }
            | TriageReason::NoConsentScope { dataset } => Some(dataset),
            _ => None,
        }
    }

    /// The reason in Japanese, for applicants and reviewers.
    pub fn text_ja(&self) -> String {
        match self {
            TriageReason::WithinConsent { dataset } => format!("データセット「{dataset}」: 利用目的・対象疾患・提供先が同意の範囲内です（届出）。"),
            TriageReason::RelatedDisease { dataset, disease, consented } => {
                format!("データセット「{dataset}」: 疾患 {disease} は同意された {consented} の類縁疾患です。医学的妥当性の審査が必要です。")
            }
            TriageReason::OtherDisease { dataset, disease } => {
                format!("データセット「{dataset}」: 疾患 {disease} は同意の対象疾患ではありません。医学的妥当性の審査が必要です。")
            }
            TriageReason::DiseasesUnrestricted { dataset } => {
                format!("データセット「{dataset}」: 同意は特定の疾患に限られていますが、申請は疾患を限定していません。医学的妥当性の審査が必要です。")
            }
            TriageReason::NewRecipientSimilarRegulation { dataset, recipient } => format!(
                "データセット「{dataset}」: 提供先「{recipient}」は同意にありませんが、同意された提供先と同等の規律（例: 個人情報取扱事業者）に服します。簡易審査です。"
            ),
            TriageReason::NewRecipient { dataset, recipient } => {
                format!("データセット「{dataset}」: 提供先「{recipient}」は同意になく、同等の規律に服していません。通常審査です。")
            }
            TriageReason::DifferentPurposeAndRecipient { dataset, purpose, recipients } => format!(
                "データセット「{dataset}」: 利用目的（{}）が同意と異なり、提供先（{}）も同意にありません。本審査です。",
                purpose.label_ja(),
                recipients.join("、")
            ),
            TriageReason::DifferentPurposeSameRecipients { dataset, purpose } => format!(
                "データセット「{dataset}」: 提供先は同意の範囲内ですが、利用目的（{}）が同意と異なります。慎重を期して本審査とします。",
                purpose.label_ja()
            ),
            TriageReason::NoConsentScope { dataset } => {
                format!("データセット「{dataset}」: 同意の範囲が登録されていません。慎重を期して本審査とします。")
            }
            TriageReason::Linkage { pairs, raised_to } => format!(
                "データベース間の連結解析（{}）があるため、審査区分を「{}」に引き上げます。",
                pairs.iter().map(|p| format!("{}×{}", p.left, p.right)).collect::<Vec<_>>().join("、"),
                raised_to.label_ja()
            ),
            TriageReason::RareDisease { raised_to } => format!("希少疾患を対象とするため、審査区分を「{}」に引き上げます。", raised_to.label_ja()),
            TriageReason::SmallPopulation { expected, threshold, raised_to } => format!(
                "想定対象者数 {expected} 人が基準 {threshold} 人未満のため、審査区分を「{}」に引き上げます。",
                raised_to.label_ja()
            ),
            TriageReason::GenomicData { raised_to } => format!("ゲノムデータを利用するため、審査区分を「{}」に引き上げます。", raised_to.label_ja()),
            TriageReason::CompanyOnVisiting { recipients, raised_to } => format!(
                "企業（{}）が仮名化情報を Visiting解析環境で利用するため、審査区分を「{}」に引き上げます。",
                recipients.join("、"),
                raised_to.label_ja()
            ),
        }
    }

    /// The reason in English.
    pub fn text_en(&self) -> String {
        match self {
            TriageReason::WithinConsent { dataset } => {
                format!("Dataset \"{dataset}\": purpose, diseases and recipients are within the consent (notification only).")
            }
            TriageReason::RelatedDisease { dataset, disease, consented } => format!(
                "Dataset \"{dataset}\": disease {disease} is related to the consented {consented}; its medical validity must be reviewed."
            ),
            TriageReason::OtherDisease { dataset, disease } => {
                format!("Dataset \"{dataset}\": disease {disease} is not a consented disease; its medical validity must be reviewed.")
            }
            TriageReason::DiseasesUnrestricted { dataset } => format!(
                "Dataset \"{dataset}\": the consent is limited to certain diseases but the application is not; its medical validity must be reviewed."
            ),
            TriageReason::NewRecipientSimilarRegulation { dataset, recipient } => format!(
                "Dataset \"{dataset}\": recipient \"{recipient}\" is not in the consent but is under regulation similar to the consented recipients; light review."
            ),
            TriageReason::NewRecipient { dataset, recipient } => {
                format!("Dataset \"{dataset}\": recipient \"{recipient}\" is not in the consent and not under similar regulation; standard review.")
            }
            TriageReason::DifferentPurposeAndRecipient { dataset, purpose, recipients } => format!(
                "Dataset \"{dataset}\": the purpose ({}) differs from the consent and the recipients ({}) are not in it; full review.",
                purpose.label_en(),
                recipients.join(", ")
            ),
            TriageReason::DifferentPurposeSameRecipients { dataset, purpose } => format!(
                "Dataset \"{dataset}\": the recipients are within the consent but the purpose ({}) is not; full review, to be conservative.",
                purpose.label_en()
            ),
            TriageReason::NoConsentScope { dataset } => {
                format!("Dataset \"{dataset}\": no consent scope is recorded; full review, to be conservative.")
            }
            TriageReason::Linkage { pairs, raised_to } => format!(
                "Linkage between datasets ({}) raises the review to {}.",
                pairs.iter().map(|p| format!("{} × {}", p.left, p.right)).collect::<Vec<_>>().join(", "),
                raised_to.label_en()
            ),
            TriageReason::RareDisease { raised_to } => format!("A rare disease raises the review to {}.", raised_to.label_en()),
            TriageReason::SmallPopulation { expected, threshold, raised_to } => format!(
                "An expected population of {expected} persons, below {threshold}, raises the review to {}.",
                raised_to.label_en()
            ),
            TriageReason::GenomicData { raised_to } => format!("Genomic data raises the review to {}.", raised_to.label_en()),
            TriageReason::CompanyOnVisiting { recipients, raised_to } => format!(
                "A company ({}) analysing pseudonymized data in the Visiting environment raises the review to {}.",
                recipients.join(", "),
                raised_to.label_en()
            ),
        }
    }
}
