//! Data permits: derivation, refusals, amendment, and the property that a permit never allows
//! what was not approved (nor what was not requested).

mod common;

use common::*;
use niji_review::*;
use proptest::prelude::*;
use time::macros::date;

fn terms() -> PermitTerms {
    PermitTerms { starts_on: date!(2026 - 04 - 01), months: 12, output_preset: "standard".into(), date_shift_days: None }
}

fn linked_application() -> Application {
    let mut a = application();
    a.variables.push(var("dpc", "encounters", "admission_date"));
    a.linkage = vec![LinkagePair::new("ndb", "dpc")];
    a
}

#[test]
fn a_permit_allows_exactly_what_was_approved() {
    let a = linked_application();
    let approved = ApprovedScope {
        variables: vec![VariableRef::new("ndb", "conditions", "icd10"), VariableRef::new("dpc", "encounters", "admission_date")],
        linkage: vec![LinkagePair::new("dpc", "ndb")],
        conditions: vec!["成果物は公表前に確認を受けること".into()],
        cohort: None,
    };
    let p = PermitPolicy::grant(42, &a, &approved, &terms()).unwrap();
    assert_eq!((p.application_id, p.version), (42, 1));
    assert!(p.allows_column("ndb", "conditions", "icd10"));
    assert!(!p.allows_column("ndb", "medications", "yj_code"), "requested but not approved");
    assert!(p.allows_dataset("dpc") && !p.allows_dataset("registry"));
    assert!(p.allows_table("ndb", "conditions") && !p.allows_table("ndb", "medications"));
    assert!(p.allows_linkage("ndb", "dpc") && p.allows_linkage("dpc", "ndb"));
    assert_eq!(p.datasets.iter().map(|d| d.dataset.as_str()).collect::<Vec<_>>(), ["dpc", "ndb"]);
    assert_eq!(p.expires_on, date!(2027 - 03 - 31));
    assert!(p.active_on(date!(2026 - 04 - 01)) && p.active_on(date!(2027 - 03 - 31)));
    assert!(!p.active_on(date!(2026 - 03 - 31)) && !p.active_on(date!(2027 - 04 - 01)));
    assert_eq!(p.conditions, approved.conditions);

    let json = serde_json::to_string(&p).unwrap();
    assert!(json.contains(r#""starts_on":"2026-04-01""#), "{json}");
    assert_eq!(serde_json::from_str::<PermitPolicy>(&json).unwrap(), p);
}

#[test]
fn refusals() {
    let a = linked_application();
    let ok_vars = vec![VariableRef::new("ndb", "conditions", "icd10"), VariableRef::new("dpc", "encounters", "admission_date")];
    let grant = |approved: &ApprovedScope, terms: &PermitTerms| PermitPolicy::grant(1, &a, approved, terms);
    let scope = |variables: Vec<VariableRef>, linkage: Vec<LinkagePair>| ApprovedScope { variables, linkage, conditions: vec![], cohort: None };

    assert_eq!(grant(&scope(vec![], vec![]), &terms()), Err(PermitError::NothingApproved));
    let mut vars = ok_vars.clone();
    vars.push(VariableRef::new("ndb", "patients", "name_kana"));
    assert_eq!(grant(&scope(vars, vec![]), &terms()), Err(PermitError::VariableNotRequested { index: 2 }));
    assert_eq!(
        grant(&scope(ok_vars.clone(), vec![LinkagePair::new("ndb", "registry")]), &terms()),
        Err(PermitError::LinkageNotRequested { index: 0 })
    );
    assert_eq!(
        grant(&scope(ok_vars[..1].to_vec(), vec![LinkagePair::new("ndb", "dpc")]), &terms()),
        Err(PermitError::LinkageDatasetNotApproved { index: 0 })
    );
    let s = scope(ok_vars.clone(), vec![]);
    assert_eq!(grant(&s, &PermitTerms { months: 0, ..terms() }), Err(PermitError::ZeroMonths));
    assert_eq!(grant(&s, &PermitTerms { months: 13, ..terms() }), Err(PermitError::LongerThanRequested { months: 13, requested: 12 }));
    assert_eq!(grant(&s, &PermitTerms { output_preset: "Strict!".into(), ..terms() }), Err(PermitError::BadPreset));
    assert_eq!(grant(&ApprovedScope { conditions: vec![" ".into()], ..s.clone() }, &terms()), Err(PermitError::EmptyCondition { index: 0 }));
    let invalid = Application { title: String::new(), ..a.clone() };
    assert!(matches!(PermitPolicy::grant(1, &invalid, &s, &terms()), Err(PermitError::InvalidApplication(_))));
}

#[test]
fn amendment_makes_the_next_version() {
    let mut a = application();
    let approved = ApprovedScope { variables: vec![VariableRef::new("ndb", "conditions", "icd10")], ..ApprovedScope::default() };
    let v1 = PermitPolicy::grant(9, &a, &approved, &terms()).unwrap();
    a.variables.push(var("ndb", "lab_results", "hba1c"));
    a.duration_months = 24;
    let approved = ApprovedScope {
        variables: vec![VariableRef::new("ndb", "conditions", "icd10"), VariableRef::new("ndb", "lab_results", "hba1c")],
        ..ApprovedScope::default()
    };
    let v2 = v1.amend(&a, &approved, &PermitTerms { months: 24, output_preset: "strict".into(), ..terms() }).unwrap();
    assert_eq!((v2.application_id, v2.version), (9, 2));
    assert!(v2.allows_column("ndb", "lab_results", "hba1c") && !v1.allows_column("ndb", "lab_results", "hba1c"));
    assert_eq!(v2.expires_on, date!(2028 - 03 - 31));
    assert_eq!(v2.output_preset, "strict");
}

fn requested_strategy() -> impl Strategy<Value = Vec<(u8, u8, u8)>> {
    prop::collection::btree_set((0u8..3, 0u8..3, 0u8..4), 1..20).prop_map(|s| s.into_iter().collect())
}

fn variable((d, t, c): (u8, u8, u8)) -> VariableRef {
    VariableRef::new(format!("d{d}"), format!("t{t}"), format!("c{c}"))
}

proptest! {
    #[test]
    fn a_permit_never_allows_what_was_not_approved(
        requested in requested_strategy(),
        mask in prop::collection::vec(any::<bool>(), 20),
        probes in prop::collection::vec((0u8..4, 0u8..4, 0u8..5), 1..40),
    ) {
        let mut a = application();
        a.variables = requested.iter().map(|&(d, t, c)| {
            let v = variable((d, t, c));
            RequestedVariable { dataset: v.dataset, table: v.table, column: v.column, justification: "必要".into() }
        }).collect();
        let approved: Vec<VariableRef> = requested.iter().zip(&mask).filter(|(_, keep)| **keep).map(|(v, _)| variable(*v)).collect();
        let scope = ApprovedScope { variables: approved.clone(), ..ApprovedScope::default() };
        match PermitPolicy::grant(1, &a, &scope, &terms()) {
            Err(e) => prop_assert!(approved.is_empty() && e == PermitError::NothingApproved),
            Ok(p) => {
                for probe in probes {
                    let v = variable(probe);
                    let allowed = p.allows_column(&v.dataset, &v.table, &v.column);
                    prop_assert_eq!(allowed, approved.contains(&v));
                    if allowed {
                        prop_assert!(a.requests(&v.dataset, &v.table, &v.column));
                    }
                    prop_assert_eq!(p.allows_dataset(&v.dataset), approved.iter().any(|x| x.dataset == v.dataset));
                }
                let mut columns = p.columns();
                let mut expected = approved.clone();
                columns.sort();
                expected.sort();
                prop_assert_eq!(columns, expected);
            }
        }
    }

    #[test]
    fn approving_something_not_requested_fails(
        requested in requested_strategy(),
        extra in (0u8..4, 0u8..4, 0u8..5),
        at in 0usize..20,
    ) {
        let extra_ref = variable(extra);
        prop_assume!(!requested.iter().any(|r| variable(*r) == extra_ref));
        let mut a = application();
        a.variables = requested.iter().map(|&r| {
            let v = variable(r);
            RequestedVariable { dataset: v.dataset, table: v.table, column: v.column, justification: "必要".into() }
        }).collect();
        let mut approved: Vec<VariableRef> = requested.iter().map(|r| variable(*r)).collect();
        let index = at.min(approved.len());
        approved.insert(index, extra_ref);
        let scope = ApprovedScope { variables: approved, ..ApprovedScope::default() };
        prop_assert_eq!(PermitPolicy::grant(1, &a, &scope, &terms()), Err(PermitError::VariableNotRequested { index }));
    }
}

#[test]
fn the_chair_narrows_the_cohort_and_may_shift_dates() {
    let mut a = application();
    a.cohort = Some(CohortFilter {
        diseases: vec!["E11".into()],
        age: Some(AgeRange { min: 20, max: 80 }),
        period: Some(Period { from: date!(2020 - 01 - 01), to: date!(2025 - 12 - 31) }),
    });
    let vars = vec![VariableRef::new("ndb", "conditions", "icd10")];
    let cohort = |diseases: &[&str], age: Option<(u32, u32)>, period: Option<(time::Date, time::Date)>| CohortFilter {
        diseases: diseases.iter().map(|d| d.to_string()).collect(),
        age: age.map(|(min, max)| AgeRange { min, max }),
        period: period.map(|(from, to)| Period { from, to }),
    };
    let check = |a: &Application, c: Option<CohortFilter>, shift: Option<u32>, expected: Result<(), PermitError>| {
        let approved = ApprovedScope { variables: vars.clone(), cohort: c.clone(), ..ApprovedScope::default() };
        let got = PermitPolicy::grant(1, a, &approved, &PermitTerms { date_shift_days: shift, ..terms() });
        match (got, expected) {
            (Ok(p), Ok(())) => {
                assert_eq!(p.cohort, c.or(a.cohort.clone()));
                assert_eq!(p.date_shift_days, shift);
            }
            (Err(e), Err(x)) => assert_eq!(e, x),
            (got, x) => panic!("{got:?} vs {x:?}"),
        }
    };
    let inside = Some((date!(2021 - 01 - 01), date!(2022 - 12 - 31)));
    check(&a, None, None, Ok(()));
    check(&a, Some(cohort(&["E11.9"], Some((40, 74)), inside)), Some(30), Ok(()));
    check(&a, Some(cohort(&["E10"], Some((40, 74)), inside)), None, Err(PermitError::WiderCohort("diseases")));
    check(&a, Some(cohort(&[], Some((40, 74)), inside)), None, Err(PermitError::WiderCohort("diseases")));
    check(&a, Some(cohort(&["E11"], Some((10, 74)), inside)), None, Err(PermitError::WiderCohort("age")));
    check(&a, Some(cohort(&["E11"], None, inside)), None, Err(PermitError::WiderCohort("age")));
    check(
        &a,
        Some(cohort(&["E11"], Some((40, 74)), Some((date!(2019 - 01 - 01), date!(2021 - 01 - 01))))),
        None,
        Err(PermitError::WiderCohort("period")),
    );
    check(&a, Some(cohort(&["diabetes"], Some((40, 74)), inside)), None, Err(PermitError::BadCohort("diseases")));
    check(&a, Some(cohort(&["E11"], Some((74, 40)), inside)), None, Err(PermitError::BadCohort("age")));
    check(
        &a,
        Some(cohort(&["E11"], Some((40, 74)), Some((date!(2022 - 01 - 01), date!(2021 - 01 - 01))))),
        None,
        Err(PermitError::BadCohort("period")),
    );
    check(&a, None, Some(0), Err(PermitError::BadDateShift));
    check(&a, None, Some(400), Err(PermitError::BadDateShift));
    // Without a cohort in the application, any valid cohort narrows it.
    a.cohort = None;
    check(&a, Some(cohort(&["C50"], None, None)), None, Ok(()));
}
