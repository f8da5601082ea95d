//! Dummy data over a real instance: a holder's small FHIR NDJSON export ingested into the lake, a
//! permit issued straight in the store, dummy queries run as the named researcher.

use std::sync::Arc;

use niji_analysis::dummy::query_dummy;
use niji_analysis::AnalysisError;
use niji_core::Role;
use niji_instance::Instance;
use niji_review::application::{NamedResearcher, PurposeCategory, Track};
use niji_review::{DatasetGrant, PermitPolicy, TableGrant};
use niji_sandbox::{Refusal, SandboxError};
use niji_store::{NewApplication, NewPermit, NewUser};

const HOLDER: &str = "テスト病院";
const DATASET: &str = "test-ehr";
const ICD: &str = "http://jpfhir.jp/fhir/core/mhlw/CodeSystem/ICD10-2013-full";

/// 40 patients; E119 for patients 0–19 (onsets in 2024-03), J459 for 20–24 (5 persons), C349 for
/// patient 39 only.
/// The first patient's number at the holder.
fn first_patient() -> String {
    "1000".into()
}

fn export() -> (String, String) {
    let mut patients = String::new();
    let mut conditions = String::new();
    for i in 0..40 {
        let sex = if i % 2 == 0 { "male" } else { "female" };
        patients.push_str(&format!(
            r#"{{"resourceType":"Patient","id":"p{i}","identifier":[{{"system":"urn:oid:1.2.392.100495.20.3.51.11234567890","value":"{}"}}],"name":[{{"text":"患者 {i}"}}],"gender":"{sex}","birthDate":"19{:02}-0{}-1{}"}}"#,
            1000 + i,
            40 + i,
            1 + i % 9,
            i % 10
        ));
        patients.push('\n');
        let code = match i {
            0..=19 => "E119",
            20..=24 => "J459",
            39 => "C349",
            _ => continue,
        };
        conditions.push_str(&format!(
            r#"{{"resourceType":"Condition","id":"c{i}","subject":{{"reference":"Patient/p{i}"}},"code":{{"coding":[{{"system":"{ICD}","code":"{code}"}}]}},"onsetDateTime":"2024-03-{:02}"}}"#,
            1 + i % 28
        ));
        conditions.push('\n');
    }
    (patients, conditions)
}

struct World {
    _tmp: tempfile::TempDir,
    instance: Instance,
    researcher: i64,
    other: i64,
    permit: i64,
}

async fn user(instance: &Instance, name: &str) -> i64 {
    instance
        .store
        .create_user_with_roles(
            &NewUser { username: name, display_name: name, organization_id: None, password_hash: "x", totp_secret: None, created_at: 0 },
            &[Role::Researcher],
            "test",
        )
        .await
        .unwrap()
}

async fn world() -> World {
    world_with(None).await
}

async fn world_with(cohort: Option<niji_review::CohortFilter>) -> World {
    let tmp = tempfile::tempdir().unwrap();
    let instance = Instance::init(&tmp.path().join("i"), "test").await.unwrap();
    instance.store.create_organization(HOLDER, "hospital", 0).await.unwrap();
    let files = tmp.path().join("export");
    std::fs::create_dir_all(&files).unwrap();
    let (patients, conditions) = export();
    std::fs::write(files.join("Patient.ndjson"), patients).unwrap();
    std::fs::write(files.join("Condition.ndjson"), conditions).unwrap();
    let submission = niji_intake::Submission {
        holder: HOLDER.into(),
        dataset: DATASET.into(),
        description: None,
        files: vec![files.join("Patient.ndjson"), files.join("Condition.ndjson")],
        csv_mapping: None,
        on_reject: niji_intake::OnReject::RefuseSubmission,
        actor: "user:1".into(),
    };
    let options = niji_intake::IntakeOptions::new(niji_ingest::IngestConfig::new(niji_ingest::Date::new(2026, 11, 21).unwrap()));
    match niji_intake::ingest(&instance, submission, &options, Arc::new(niji_intake::NoProgress)).await.unwrap() {
        niji_intake::Outcome::Committed(_) => {}
        niji_intake::Outcome::Refused { files, .. } => panic!("refused: {:?}", files.iter().flat_map(|f| f.rejected_lines()).collect::<Vec<_>>()),
    }
    let researcher = user(&instance, "res").await;
    let other = user(&instance, "other").await;
    let application = instance
        .store
        .create_application(&NewApplication { applicant_id: researcher, organization_id: None, title: "dummy", form: "{}" }, 0)
        .await
        .unwrap();
    let today = niji_core::today_jst(time::OffsetDateTime::now_utc());
    let grant = |table: &str, columns: &[&str]| TableGrant { table: table.into(), columns: columns.iter().map(|c| c.to_string()).collect() };
    let policy = PermitPolicy {
        application_id: application,
        version: 1,
        datasets: vec![DatasetGrant { dataset: DATASET.into(), tables: vec![grant("conditions", &["code", "onset"]), grant("patients", &["sex"])] }],
        cohort,
        purpose: "test".into(),
        purpose_category: PurposeCategory::AcademicResearch,
        recipients: vec![],
        researchers: vec![NamedResearcher { account_id: researcher, display_name: "研究者".into() }],
        linkage: vec![],
        track: Track::Visiting,
        output_preset: "ndb".into(),
        starts_on: today - time::Duration::days(30),
        expires_on: today + time::Duration::days(365),
        conditions: vec![],
        date_shift_days: None,
    };
    let key_id = "permit:application-1-v1";
    let (permit, _) = instance
        .store
        .create_permit(
            &NewPermit {
                application_id: application,
                status: "active",
                policy: &serde_json::to_string(&policy).unwrap(),
                starts_on: &policy.starts_on.to_string(),
                expires_on: &policy.expires_on.to_string(),
                key_id,
            },
            0,
        )
        .await
        .unwrap();
    instance.data_key(key_id, "test").await.unwrap();
    World { _tmp: tmp, instance, researcher, other, permit }
}

#[tokio::test(flavor = "multi_thread")]
async fn dummy_queries_return_rows_of_safe_values_and_record_a_refresh() {
    let w = world().await;
    let q = |sql: &'static str| query_dummy(&w.instance, w.researcher, w.permit, sql);

    // Only the code held by at least ten persons appears; rows of dummy persons come back.
    let out = q("SELECT code, count(*) AS n FROM test_ehr.conditions GROUP BY code ORDER BY code").await.unwrap();
    assert_eq!(out.columns, ["code", "n"]);
    let codes: Vec<&str> = out.rows.iter().map(|r| r[0].as_str()).collect();
    assert_eq!(codes, ["E119"], "J459 (5 persons) and C349 (1) never appear: {:?}", out.rows);
    let total: i64 = out.rows.iter().map(|r| r[1].parse::<i64>().unwrap()).sum();
    assert_eq!(total, 30, "26 rows rounded to 30");

    let rows = q("SELECT * FROM test_ehr.conditions LIMIT 5").await.unwrap();
    assert_eq!(rows.columns, ["person_id", "code", "onset"]);
    assert_eq!(rows.rows.len(), 5);
    assert!(rows.rows.iter().all(|r| r[0].len() == 8 && r[2].starts_with("2024-03")), "{:?}", rows.rows);
    // Same permit, same rows (in a stated order: partitions answer a bare LIMIT in any order).
    let ordered = "SELECT * FROM test_ehr.conditions ORDER BY person_id, code, onset LIMIT 5";
    assert_eq!(q(ordered).await.unwrap(), q(ordered).await.unwrap());

    // A cohort of the real data finds people in the dummy data, across tables.
    let joined = q("SELECT p.sex, count(*) FROM test_ehr.conditions c JOIN test_ehr.patients p ON c.person_id = p.person_id \
                    WHERE c.code = 'E119' GROUP BY p.sex")
    .await
    .unwrap();
    let found: i64 = joined.rows.iter().map(|r| r[1].parse::<i64>().unwrap()).sum();
    assert!(found > 0, "{joined:?}");

    // Refusals: DDL, a file, a column not granted; another researcher; an unknown permit.
    assert!(matches!(q("DROP TABLE x").await, Err(AnalysisError::Refused(SandboxError::NotAllowed(Refusal::Ddl)))));
    assert!(matches!(q("SELECT * FROM '/etc/passwd'").await, Err(AnalysisError::Refused(SandboxError::UnknownName))));
    assert!(matches!(q("SELECT abatement FROM test_ehr.conditions").await, Err(AnalysisError::Refused(SandboxError::UnknownName))));
    let runs_before = w.instance.store.analysis_runs().await.unwrap().len();
    assert!(matches!(query_dummy(&w.instance, w.other, w.permit, "SELECT 1").await, Err(AnalysisError::NotNamed)));
    assert!(matches!(query_dummy(&w.instance, w.researcher, 999, "SELECT 1").await, Err(AnalysisError::NoPermit)));
    assert_eq!(w.instance.store.analysis_runs().await.unwrap().len(), runs_before, "no data read, no run");

    // The dummy data was refreshed once: every call read the same inputs (dataset versions,
    // registry version); a new opt-out refreshes it, with the new receipt.
    let runs = w.instance.store.analysis_runs().await.unwrap();
    assert_eq!(runs.len(), 1);
    let holder = niji_registry::HolderActor { holder: HOLDER.into(), audit: "test".into() };
    let author = niji_registry::Author::Holder { actor: holder, patient_id: first_patient() };
    let choice = niji_consent::Choice::OptOut { scope: niji_consent::OptOutScope::All };
    let entry = niji_registry::record_choice(&w.instance, &author, choice, time::OffsetDateTime::now_utc()).await.unwrap();
    q("SELECT count(*) FROM test_ehr.conditions").await.unwrap();
    q("SELECT count(*) FROM test_ehr.conditions").await.unwrap();
    let runs = w.instance.store.analysis_runs().await.unwrap();
    assert_eq!(runs.iter().map(|r| (r.registry_version, r.excluded_persons)).collect::<Vec<_>>(), [(0, 0), (entry, 1)]);
    for r in &runs {
        assert_eq!((r.kind.as_str(), r.outcome.as_str(), r.permit_id, r.user_id), ("dummy_refresh", "released", w.permit, w.researcher));
        assert_eq!(r.datasets, r#"[{"dataset":"test-ehr","version":1}]"#);
        assert!(r.log_index.is_some());
    }
    // The log has the SQL's hash, never its text.
    let log = niji_log::LogReader::open(&w.instance.paths.log()).unwrap();
    let entries: Vec<String> = (0..log.size()).map(|i| String::from_utf8(log.entry(i).unwrap()).unwrap()).collect();
    let dummy: Vec<&String> = entries.iter().filter(|e| e.contains("analysis.dummy_query")).collect();
    assert_eq!(dummy.len(), 12);
    assert!(dummy.iter().all(|e| e.contains("sql_sha256") && !e.contains("SELECT") && !e.contains("passwd") && !e.contains("E119")));
}

/// The totals of a `GROUP BY sex` count, as released.
async fn persons_by_sex(w: &World) -> Vec<(Vec<String>, Vec<niji_sdc::Shown>)> {
    niji_analysis::query_real(&w.instance, w.researcher, w.permit, "SELECT sex, count(*) AS n FROM test_ehr.patients GROUP BY sex ORDER BY sex")
        .await
        .unwrap()
        .rows
}

#[tokio::test(flavor = "multi_thread")]
async fn a_permits_cohort_limits_persons_and_rows_in_every_kind_of_run() {
    use niji_review::{CohortFilter, Period};
    use niji_sdc::Shown;
    let everyone = world().await;
    assert_eq!(
        persons_by_sex(&everyone).await,
        [(vec!["female".to_string()], vec![Shown::Value(20.0)]), (vec!["male".to_string()], vec![Shown::Value(20.0)])]
    );

    // Persons with E11 (20 of 40): 10 women and 10 men; their condition rows only.
    let diabetes = world_with(Some(CohortFilter { diseases: vec!["E11".into()], age: None, period: None })).await;
    assert_eq!(
        persons_by_sex(&diabetes).await,
        [(vec!["female".to_string()], vec![Shown::Value(10.0)]), (vec!["male".to_string()], vec![Shown::Value(10.0)])]
    );
    let codes = query_dummy(&diabetes.instance, diabetes.researcher, diabetes.permit, "SELECT DISTINCT code FROM test_ehr.conditions").await.unwrap();
    assert!(codes.rows.iter().all(|r| r[0] == "E119" || r[0].is_empty()), "{:?}", codes.rows);

    // Asthma (5 persons): every count is too small to show.
    let asthma = world_with(Some(CohortFilter { diseases: vec!["J45".into()], age: None, period: None })).await;
    assert!(persons_by_sex(&asthma).await.iter().all(|(_, v)| v.iter().all(|x| !matches!(x, Shown::Value(n) if *n > 0.0))));

    // A period without events: nobody.
    let d = |y, m, day| time::Date::from_calendar_date(y, time::Month::try_from(m).unwrap(), day).unwrap();
    let later =
        world_with(Some(CohortFilter { diseases: vec!["E11".into()], age: None, period: Some(Period { from: d(2025, 1, 1), to: d(2025, 12, 31) }) }))
            .await;
    assert!(persons_by_sex(&later).await.is_empty());
}
