//! Triage: each of the four cases, the conservative cases, escalations and multiple datasets.

mod common;

use common::*;
use niji_review::*;

struct Expected {
    case: Case,
    tier: Tier,
    codes: &'static [ReasonCode],
}

fn check(application: &Application, consents: &[(&str, &ConsentScope)], expected: Expected) {
    let criteria = Criteria::builtin();
    let t = triage(application, consents, &criteria);
    let codes: Vec<ReasonCode> = t.reasons.iter().map(TriageReason::code).collect();
    assert_eq!((t.case, t.tier, codes.as_slice()), (expected.case, expected.tier, expected.codes), "reasons: {:#?}", t.reasons);
    assert_eq!(t.criteria_version, "2026.1");
    for r in &t.reasons {
        assert!(!r.text_ja().is_empty() && !r.text_en().is_empty());
    }
}

#[test]
fn case_1_within_consent_is_a_notification() {
    let scope = consent();
    check(&application(), &[("ndb", &scope)], Expected { case: Case::WithinConsent, tier: Tier::Notification, codes: &[ReasonCode::WithinConsent] });

    // A subcategory of a consented prefix, a named recipient, and a consent without diseases.
    let mut a = application();
    a.diseases = vec!["E11.9".into()];
    a.recipients.push(recipient("株式会社ニジ製薬", RecipientKind::Company, false));
    a.track = Track::StatisticsTables;
    check(&a, &[("ndb", &scope)], Expected { case: Case::WithinConsent, tier: Tier::Notification, codes: &[ReasonCode::WithinConsent] });
    let any_disease = ConsentScope { diseases: vec![], ..consent() };
    let mut a = application();
    a.diseases = vec!["I21".into()];
    check(&a, &[("ndb", &any_disease)], Expected { case: Case::WithinConsent, tier: Tier::Notification, codes: &[ReasonCode::WithinConsent] });
}

#[test]
fn case_2_related_or_other_disease_is_a_review_of_medical_validity() {
    let scope = consent();
    let mut a = application();
    a.diseases = vec!["E14".into()];
    check(&a, &[("ndb", &scope)], Expected { case: Case::DiseaseBeyondConsent, tier: Tier::MedicalValidity, codes: &[ReasonCode::RelatedDisease] });
    a.diseases = vec!["E11".into(), "I21".into()];
    check(&a, &[("ndb", &scope)], Expected { case: Case::DiseaseBeyondConsent, tier: Tier::MedicalValidity, codes: &[ReasonCode::OtherDisease] });
    a.diseases = vec![];
    check(
        &a,
        &[("ndb", &scope)],
        Expected { case: Case::DiseaseBeyondConsent, tier: Tier::MedicalValidity, codes: &[ReasonCode::DiseasesUnrestricted] },
    );

    let t = triage(&application_with_disease("E14"), &[("ndb", &scope)], &Criteria::builtin());
    assert_eq!(t.reasons[0], TriageReason::RelatedDisease { dataset: "ndb".into(), disease: "E14".into(), consented: "E11".into() });
    assert!(t.reasons[0].text_ja().contains("類縁疾患"));
}

fn application_with_disease(code: &str) -> Application {
    Application { diseases: vec![code.into()], ..application() }
}

#[test]
fn case_3_new_recipient_is_light_under_similar_regulation_and_standard_otherwise() {
    let scope = consent();
    let mut a = application();
    a.track = Track::AnonymizedExtract;
    a.recipients.push(recipient("大阪市", RecipientKind::Municipality, true));
    check(&a, &[("ndb", &scope)], Expected { case: Case::NewRecipient, tier: Tier::Light, codes: &[ReasonCode::NewRecipientSimilarRegulation] });
    a.recipients.push(recipient("一般社団法人 X", RecipientKind::Other, false));
    check(
        &a,
        &[("ndb", &scope)],
        Expected { case: Case::NewRecipient, tier: Tier::Standard, codes: &[ReasonCode::NewRecipientSimilarRegulation, ReasonCode::NewRecipient] },
    );
}

#[test]
fn cases_2_and_3_together_take_the_deeper_tier() {
    let scope = consent();
    let mut a = application_with_disease("E14");
    a.track = Track::AnonymizedExtract;
    a.recipients.push(recipient("大阪市", RecipientKind::Municipality, true));
    // Light (7 days) is lighter than medical validity: case 2 wins.
    check(
        &a,
        &[("ndb", &scope)],
        Expected {
            case: Case::DiseaseBeyondConsent,
            tier: Tier::MedicalValidity,
            codes: &[ReasonCode::RelatedDisease, ReasonCode::NewRecipientSimilarRegulation],
        },
    );
    a.recipients[1].similar_regulation = false;
    check(
        &a,
        &[("ndb", &scope)],
        Expected { case: Case::NewRecipient, tier: Tier::Standard, codes: &[ReasonCode::RelatedDisease, ReasonCode::NewRecipient] },
    );
}

#[test]
fn case_4_different_purpose_and_recipient_is_a_full_review() {
    let scope = consent();
    let mut a = application();
    a.purpose_category = PurposeCategory::AiDevelopment;
    a.track = Track::StatisticsTables;
    a.recipients = vec![recipient("株式会社AI", RecipientKind::Company, true)];
    check(&a, &[("ndb", &scope)], Expected { case: Case::DifferentPurpose, tier: Tier::Full, codes: &[ReasonCode::DifferentPurposeAndRecipient] });
    let t = triage(&a, &[("ndb", &scope)], &Criteria::builtin());
    assert_eq!(
        t.reasons[0],
        TriageReason::DifferentPurposeAndRecipient {
            dataset: "ndb".into(),
            purpose: PurposeCategory::AiDevelopment,
            recipients: vec!["株式会社AI".into()]
        }
    );
}

#[test]
fn different_purpose_with_the_same_recipients_is_a_full_review_too() {
    let scope = consent();
    let mut a = application();
    a.purpose_category = PurposeCategory::PublicHealthPolicy;
    check(&a, &[("ndb", &scope)], Expected { case: Case::DifferentPurpose, tier: Tier::Full, codes: &[ReasonCode::DifferentPurposeSameRecipients] });
    let t = triage(&a, &[("ndb", &scope)], &Criteria::builtin());
    assert!(t.reasons[0].text_en().contains("conservative"));
    // "Other" is never within a consent, even one that lists it.
    let scope = ConsentScope { purposes: vec![PurposeCategory::Other], ..consent() };
    a.purpose_category = PurposeCategory::Other;
    check(&a, &[("ndb", &scope)], Expected { case: Case::DifferentPurpose, tier: Tier::Full, codes: &[ReasonCode::DifferentPurposeSameRecipients] });
}

#[test]
fn a_dataset_without_consent_scope_is_a_full_review() {
    check(&application(), &[], Expected { case: Case::DifferentPurpose, tier: Tier::Full, codes: &[ReasonCode::NoConsentScope] });
}

#[test]
fn each_escalation_raises_the_tier_one_step() {
    let scope = consent();
    let consents: &[(&str, &ConsentScope)] = &[("ndb", &scope), ("dpc", &scope)];
    let base = || Application { track: Track::AnonymizedExtract, ..application() };

    let mut a = base();
    a.variables.push(var("dpc", "encounters", "admission_date"));
    a.linkage = vec![LinkagePair::new("ndb", "dpc")];
    check(
        &a,
        consents,
        Expected {
            case: Case::WithinConsent,
            tier: Tier::Light,
            codes: &[ReasonCode::WithinConsent, ReasonCode::WithinConsent, ReasonCode::Linkage],
        },
    );

    let a = Application { rare_disease: true, ..base() };
    check(&a, consents, Expected { case: Case::WithinConsent, tier: Tier::Light, codes: &[ReasonCode::WithinConsent, ReasonCode::RareDisease] });

    let a = Application { expected_population: Some(999), ..base() };
    check(&a, consents, Expected { case: Case::WithinConsent, tier: Tier::Light, codes: &[ReasonCode::WithinConsent, ReasonCode::SmallPopulation] });
    let a = Application { expected_population: Some(1000), ..base() };
    check(&a, consents, Expected { case: Case::WithinConsent, tier: Tier::Notification, codes: &[ReasonCode::WithinConsent] });

    let a = Application { genomic_data: true, ..base() };
    check(&a, consents, Expected { case: Case::WithinConsent, tier: Tier::Light, codes: &[ReasonCode::WithinConsent, ReasonCode::GenomicData] });

    let mut a = application();
    a.recipients.push(recipient("株式会社ニジ製薬", RecipientKind::Company, true));
    check(
        &a,
        consents,
        Expected { case: Case::WithinConsent, tier: Tier::Light, codes: &[ReasonCode::WithinConsent, ReasonCode::CompanyOnVisiting] },
    );
    // The same company on the statistics track does not escalate.
    a.track = Track::StatisticsTables;
    check(&a, consents, Expected { case: Case::WithinConsent, tier: Tier::Notification, codes: &[ReasonCode::WithinConsent] });
}

#[test]
fn escalations_add_up_and_cap_at_full() {
    let scope = consent();
    let mut a = application_with_disease("E14");
    a.rare_disease = true;
    a.genomic_data = true;
    a.expected_population = Some(30);
    // Medical validity + 3 steps = full (standard, full, full).
    check(
        &a,
        &[("ndb", &scope)],
        Expected {
            case: Case::DiseaseBeyondConsent,
            tier: Tier::Full,
            codes: &[ReasonCode::RelatedDisease, ReasonCode::RareDisease, ReasonCode::SmallPopulation, ReasonCode::GenomicData],
        },
    );
    let t = triage(&a, &[("ndb", &scope)], &Criteria::builtin());
    let raised: Vec<Tier> = t
        .reasons
        .iter()
        .filter_map(|r| match r {
            TriageReason::RareDisease { raised_to } | TriageReason::GenomicData { raised_to } => Some(*raised_to),
            TriageReason::SmallPopulation { raised_to, .. } => Some(*raised_to),
            _ => None,
        })
        .collect();
    assert_eq!(raised, [Tier::Standard, Tier::Full, Tier::Full]);
}

#[test]
fn escalations_switched_off_in_the_criteria_do_not_apply() {
    let mut criteria = Criteria::builtin();
    criteria.escalations.rare_disease = false;
    criteria.escalations.small_population_below = None;
    let scope = consent();
    let a = Application { rare_disease: true, expected_population: Some(3), ..application() };
    let t = triage(&a, &[("ndb", &scope)], &criteria);
    assert_eq!(t.tier, Tier::Notification);
}

#[test]
fn multiple_datasets_take_the_strictest() {
    let ndb = consent();
    let registry = ConsentScope { recipient_kinds: vec![RecipientKind::Hospital], recipients: vec![], ..consent() };
    let mut a = application();
    a.variables.push(var("registry", "patients", "birth_year_month"));
    check(
        &a,
        &[("ndb", &ndb), ("registry", &registry)],
        Expected { case: Case::NewRecipient, tier: Tier::Light, codes: &[ReasonCode::WithinConsent, ReasonCode::NewRecipientSimilarRegulation] },
    );
    let dpc = ConsentScope { purposes: vec![PurposeCategory::PublicHealthPolicy], ..consent() };
    a.variables.push(var("dpc", "encounters", "los"));
    let t = triage(&a, &[("ndb", &ndb), ("registry", &registry), ("dpc", &dpc)], &Criteria::builtin());
    assert_eq!((t.case, t.tier), (Case::DifferentPurpose, Tier::Full));
    let datasets: Vec<&str> = t.reasons.iter().filter_map(TriageReason::dataset).collect();
    assert_eq!(datasets, ["dpc", "ndb", "registry"]);
}

#[test]
fn related_disease_rule_is_data() {
    let mut criteria = Criteria::builtin();
    criteria.related_disease = RelatedDiseaseRule::SameChapter;
    let scope = consent();
    let t = triage(&application_with_disease("E78"), &[("ndb", &scope)], &criteria);
    assert_eq!(t.reasons[0].code(), ReasonCode::RelatedDisease);
    let t = triage(&application_with_disease("E78"), &[("ndb", &scope)], &Criteria::builtin());
    assert_eq!(t.reasons[0].code(), ReasonCode::OtherDisease);
}

#[test]
fn triage_is_stored_as_json_with_reason_codes() {
    let scope = consent();
    let t = triage(&Application { genomic_data: true, ..application() }, &[("ndb", &scope)], &Criteria::builtin());
    let json = serde_json::to_string(&t).unwrap();
    assert!(json.contains(r#""code":"genomic_data""#), "{json}");
    assert_eq!(serde_json::from_str::<Triage>(&json).unwrap(), t);
}
