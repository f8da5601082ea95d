//! Application validation (located, fixed-text problems), storage as JSON, and accreditation.

mod common;

use common::*;
use niji_review::*;
use time::macros::date;

fn problems(a: &Application) -> Vec<(String, ProblemReason)> {
    a.validate().err().unwrap_or_default().into_iter().map(|p| (p.field, p.reason)).collect()
}

fn check(a: &Application, expected: &[(&str, ProblemReason)]) {
    let got = problems(a);
    let expected: Vec<(String, ProblemReason)> = expected.iter().map(|(f, r)| (f.to_string(), *r)).collect();
    assert_eq!(got, expected);
}

#[test]
fn a_valid_application_has_no_problem() {
    check(&application(), &[]);
    let json = serde_json::to_string(&application()).unwrap();
    assert_eq!(serde_json::from_str::<Application>(&json).unwrap(), application());
}

#[test]
fn problems_are_located_with_fixed_reasons() {
    use ProblemReason::*;
    let mut a = application();
    a.title = "  ".into();
    a.variables[1].justification = String::new();
    a.variables.push(var("ndb", "conditions", "icd10"));
    a.diseases = vec!["E11".into(), "糖尿病SECRET".into(), "e11".into()];
    a.duration_months = 0;
    a.researchers.push(NamedResearcher { account_id: 7, display_name: "重複".into() });
    a.linkage = vec![LinkagePair::new("ndb", "ndb"), LinkagePair::new("ndb", "registry")];
    a.expected_population = Some(0);
    a.cohort = Some(CohortFilter {
        diseases: vec!["X".into(), "C50.".into()],
        age: Some(AgeRange { min: 80, max: 20 }),
        period: Some(Period { from: date!(2025 - 01 - 01), to: date!(2024 - 01 - 01) }),
    });
    check(
        &a,
        &[
            ("title", Required),
            ("diseases[1]", NotIcd10),
            ("diseases[2]", Duplicate),
            ("variables[1].justification", Required),
            ("variables[2]", Duplicate),
            ("linkage[0]", LinkageToItself),
            ("linkage[1]", LinkageDatasetNotRequested),
            ("duration_months", DurationOutOfRange),
            ("researchers[1].account_id", Duplicate),
            ("expected_population", ZeroPopulation),
            ("cohort.diseases[1]", NotIcd10),
            ("cohort.age", InvertedRange),
            ("cohort.period", InvertedRange),
        ],
    );
    for p in a.validate().unwrap_err() {
        assert!(!p.to_string().contains("SECRET") && !p.reason.text_ja().contains("SECRET"));
    }
}

#[test]
fn empty_lists_and_long_texts() {
    let a = Application { recipients: vec![], variables: vec![], researchers: vec![], ..application() };
    check(&a, &[("recipients", ProblemReason::Required), ("variables", ProblemReason::Required), ("researchers", ProblemReason::Required)]);
    let a = Application { title: "あ".repeat(201), analysis_plan: "計画\u{0}".into(), duration_months: 61, ..application() };
    check(
        &a,
        &[
            ("title", ProblemReason::TooLong),
            ("analysis_plan", ProblemReason::ControlCharacters),
            ("duration_months", ProblemReason::DurationOutOfRange),
        ],
    );
}

#[test]
fn researchers_without_valid_accreditation_are_reported() {
    let mut a = application();
    a.researchers = vec![
        NamedResearcher { account_id: 1, display_name: "有効".into() },
        NamedResearcher { account_id: 2, display_name: "期限切れ".into() },
        NamedResearcher { account_id: 3, display_name: "未受講".into() },
        NamedResearcher { account_id: 4, display_name: "更新済み".into() },
    ];
    let acc = |researcher, completed_on, expires_on| Accreditation { researcher, course: "Niji 利用者講習".into(), completed_on, expires_on };
    let accreditations = [
        acc(1, date!(2025 - 04 - 01), date!(2026 - 05 - 01)),
        acc(2, date!(2023 - 04 - 01), date!(2024 - 03 - 31)),
        acc(2, date!(2024 - 04 - 01), date!(2025 - 03 - 31)),
        acc(4, date!(2023 - 04 - 01), date!(2024 - 03 - 31)),
        acc(4, date!(2026 - 01 - 01), date!(2027 - 12 - 31)),
        acc(3, date!(2026 - 06 - 01), date!(2027 - 06 - 01)),
    ];
    let today = date!(2026 - 05 - 01);
    assert_eq!(
        check_researchers(&a, &accreditations, today),
        Err(vec![
            ResearcherProblem::Expired { researcher: 2, expired_on: date!(2025 - 03 - 31) },
            ResearcherProblem::NotAccredited { researcher: 3 }
        ])
    );
    assert!(accreditations[0].valid_on(today));
    assert!(!accreditations[0].valid_on(date!(2026 - 05 - 02)));
    a.researchers.truncate(1);
    assert_eq!(check_researchers(&a, &accreditations, today), Ok(()));
}
