//! Shared fixtures: a valid application on two datasets and consent scopes.
#![allow(dead_code)]

use niji_review::*;

pub fn var(dataset: &str, table: &str, column: &str) -> RequestedVariable {
    RequestedVariable {
        dataset: dataset.into(), table: table.into(), column: column.into(), justification: "主要評価項目の算出に必要".into()
    }
}

pub fn recipient(organization: &str, kind: RecipientKind, similar_regulation: bool) -> Recipient {
    Recipient { organization: organization.into(), kind, similar_regulation }
}

/// A valid application: academic research on type 2 diabetes (E11) by 東京大学, on `ndb`.
pub fn application() -> Application {
    Application {
        title: "2型糖尿病の治療経過に関する研究".into(),
        purpose: "2型糖尿病患者の治療薬の切替えと予後の関係を明らかにする".into(),
        purpose_category: PurposeCategory::AcademicResearch,
        diseases: vec!["E11".into()],
        recipients: vec![recipient("東京大学", RecipientKind::Academia, true)],
        track: Track::Visiting,
        variables: vec![var("ndb", "conditions", "icd10"), var("ndb", "medications", "yj_code")],
        linkage: vec![],
        analysis_plan: "Cox 比例ハザードモデル".into(),
        software: vec![Software { name: "R".into(), version: "4.4".into() }],
        duration_months: 12,
        researchers: vec![NamedResearcher { account_id: 7, display_name: "山田 花子".into() }],
        genomic_data: false,
        rare_disease: false,
        expected_population: Some(50_000),
        cohort: None,
    }
}

/// Consent: academic research and treatment development on E11, academia and hospitals, plus
/// a named company.
pub fn consent() -> ConsentScope {
    ConsentScope {
        purposes: vec![PurposeCategory::AcademicResearch, PurposeCategory::TreatmentDevelopment],
        diseases: vec!["E11".into()],
        recipient_kinds: vec![RecipientKind::Academia, RecipientKind::Hospital],
        recipients: vec!["株式会社ニジ製薬".into()],
    }
}

pub fn member(id: i64, field: Field, external: bool, gender: Gender) -> Member {
    Member { id, field, external, gender }
}

/// A validly composed committee of six.
pub fn committee() -> Vec<Member> {
    vec![
        member(1, Field::MedicineScience, false, Gender::Male),
        member(2, Field::MedicineScience, true, Gender::Female),
        member(3, Field::HumanitiesLaw, true, Gender::Female),
        member(4, Field::HumanitiesLaw, false, Gender::Male),
        member(5, Field::GeneralPublic, true, Gender::Female),
        member(6, Field::GeneralPublic, false, Gender::Male),
    ]
}
