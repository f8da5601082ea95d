//! Jobs on a real instance: forty patients ingested through the intake, a permit issued by the
//! workflow (a notification within the dataset's consent, Visiting track), jobs run on the real
//! data and checked, two different output checkers releasing one, differencing against it, and
//! the release's download.

use std::sync::Arc;

use niji_analysis::jobs::{release_dir, release_files, sign_off, submit_job, JobError, SignOff};
use niji_applications::Actor;
use niji_core::Role;
use niji_instance::Instance;
use niji_review::{Application, ConsentScope, NamedResearcher, PurposeCategory, Recipient, RecipientKind, RequestedVariable, Software, Track};
use niji_store::NewUser;
use serde_json::Value;
use sha2::{Digest, Sha256};

const HOLDER: &str = "テスト病院";
const DATASET: &str = "test-ehr";

/// Forty patients, twenty of each sex; three born before 1950.
fn patients() -> String {
    let surnames = ["山田", "佐藤", "鈴木", "高橋", "田中", "伊藤", "渡辺", "中村"];
    let given = ["太郎", "花子", "翔", "美咲", "健"];
    let mut out = String::new();
    for i in 0..40 {
        let year = if i < 3 { 1940 + i } else { 1955 + i };
        let (sex, name) = (if i % 2 == 0 { "male" } else { "female" }, format!("{} {}", surnames[i % 8], given[i / 8]));
        out.push_str(&format!(
            r#"{{"resourceType":"Patient","id":"p{i}","identifier":[{{"system":"urn:oid:1.2.392.100495.20.3.51.11234567890","value":"{}"}}],"name":[{{"text":"{name}"}}],"gender":"{sex}","birthDate":"{year}-{:02}-{:02}"}}"#,
            2000 + i,
            1 + i % 12,
            1 + i % 28
        ));
        out.push('\n');
    }
    out
}

struct World {
    _tmp: tempfile::TempDir,
    instance: Instance,
    permit: i64,
    /// Named on the permit; also holds the output-checker role (to show they cannot check their own job).
    researcher: i64,
    /// A researcher not named on the permit.
    stranger: i64,
    operator: i64,
    checkers: [i64; 3],
}

async fn user(instance: &Instance, name: &str, roles: &[Role]) -> i64 {
    instance
        .store
        .create_user_with_roles(
            &NewUser { username: name, display_name: name, organization_id: None, password_hash: "x", totp_secret: None, created_at: 0 },
            roles,
            "test",
        )
        .await
        .unwrap()
}

async fn world() -> World {
    let tmp = tempfile::tempdir().unwrap();
    let instance = Instance::init(&tmp.path().join("i"), "test").await.unwrap();
    instance.store.create_organization(HOLDER, "hospital", 0).await.unwrap();
    let files = tmp.path().join("export");
    std::fs::create_dir_all(&files).unwrap();
    std::fs::write(files.join("Patient.ndjson"), patients()).unwrap();
    let submission = niji_intake::Submission {
        holder: HOLDER.into(),
        dataset: DATASET.into(),
        description: None,
        files: vec![files.join("Patient.ndjson")],
        csv_mapping: None,
        on_reject: niji_intake::OnReject::RefuseSubmission,
        actor: "user:1".into(),
    };
    let options = niji_intake::IntakeOptions::new(niji_ingest::IngestConfig::new(niji_ingest::Date::new(2026, 11, 21).unwrap()));
    match niji_intake::ingest(&instance, submission, &options, Arc::new(niji_intake::NoProgress)).await.unwrap() {
        niji_intake::Outcome::Committed(_) => {}
        niji_intake::Outcome::Refused { .. } => panic!("the export was refused"),
    }

    let operator = user(&instance, "ops", &[Role::Operator]).await;
    let researcher = user(&instance, "res", &[Role::Researcher, Role::OutputChecker]).await;
    let stranger = user(&instance, "other", &[Role::Researcher]).await;
    let checkers = [
        user(&instance, "check1", &[Role::OutputChecker]).await,
        user(&instance, "check2", &[Role::OutputChecker]).await,
        user(&instance, "check3", &[Role::OutputChecker]).await,
    ];

    // A permit at once: a notification within the dataset's consent.
    let today = niji_core::today_jst(time::OffsetDateTime::now_utc());
    let ops = Actor::load(&instance.store, operator).await.unwrap();
    niji_applications::publish_defaults(&instance, &ops).await.unwrap();
    let scope = ConsentScope {
        purposes: vec![PurposeCategory::AcademicResearch],
        diseases: vec![],
        recipient_kinds: vec![RecipientKind::Academia],
        recipients: vec![],
    };
    niji_applications::set_consent_scope(&instance, &ops, DATASET, &scope).await.unwrap();
    instance
        .store
        .add_accreditation(
            &niji_store::NewAccreditation {
                user_id: researcher,
                course: "研究倫理",
                completed_on: &(today - time::Duration::days(30)).to_string(),
                expires_on: &(today + time::Duration::days(300)).to_string(),
                recorded_by: "test",
            },
            0,
        )
        .await
        .unwrap();
    let var =
        |column: &str| RequestedVariable { dataset: DATASET.into(), table: "patients".into(), column: column.into(), justification: "集計".into() };
    let form = Application {
        title: "患者の性別と生年の分布".into(),
        purpose: "受診者の属性を記述する".into(),
        purpose_category: PurposeCategory::AcademicResearch,
        diseases: vec!["E11".into()],
        recipients: vec![Recipient { organization: "東都大学".into(), kind: RecipientKind::Academia, similar_regulation: true }],
        track: Track::Visiting,
        variables: vec![var("sex"), var("birth_year_month")],
        linkage: vec![],
        analysis_plan: "記述統計".into(),
        software: vec![Software { name: "SQL".into(), version: "1".into() }],
        duration_months: 12,
        researchers: vec![NamedResearcher { account_id: researcher, display_name: "研究者".into() }],
        genomic_data: false,
        rare_disease: false,
        expected_population: Some(50_000),
        cohort: None,
    };
    let res = Actor::load(&instance.store, researcher).await.unwrap();
    let draft = niji_applications::create_draft(&instance, &res, &form).await.unwrap();
    let submitted = niji_applications::submit(&instance, &res, draft, today).await.unwrap();
    let permit = submitted.permit.expect("a notification gets its permit at once");
    World { _tmp: tmp, instance, permit, researcher, stranger, operator, checkers }
}

/// The analysis settings with answers paced at 50 ms and nothing per row (tests of what runs, not
/// of when it answers).
fn answering_at_once() -> niji_analysis::AnalysisSettings {
    niji_analysis::AnalysisSettings {
        answer: niji_analysis::AnswerTime { least: std::time::Duration::from_millis(50), per_million_rows: std::time::Duration::ZERO },
        ..niji_analysis::AnalysisSettings::default()
    }
}

fn outputs(list: &[(&str, &str)]) -> Vec<(String, String)> {
    list.iter().map(|(n, s)| (n.to_string(), s.to_string())).collect()
}

fn log_entries(instance: &Instance) -> Vec<Value> {
    let log = niji_log::LogReader::open(&instance.paths.log()).unwrap();
    (0..log.size()).map(|i| serde_json::from_slice(&log.entry(i).unwrap()).unwrap()).collect()
}

fn sha256(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

#[tokio::test(flavor = "multi_thread")]
async fn two_checkers_release_a_job_and_a_differencing_job_is_refused() {
    let w = world().await;
    let i = &w.instance;
    let job = submit_job(
        i,
        w.researcher,
        w.permit,
        &outputs(&[("by_sex", "SELECT sex, count(*) AS n FROM patients GROUP BY sex ORDER BY sex"), ("total", "SELECT count(*) AS n FROM patients")]),
    )
    .await
    .unwrap();
    assert_eq!(job.status, "awaiting_review", "{job:?}");
    assert_eq!(job.outputs.len(), 2);
    for o in &job.outputs {
        assert_eq!(o.status, "passed", "{o:?}");
        let rows = o.checked_table.as_ref().unwrap()["rows"].as_array().unwrap().clone();
        assert!(!rows.is_empty());
        for row in rows {
            for v in row["values"].as_array().unwrap() {
                assert!(v.as_f64().is_some_and(|x| x >= 10.0), "a cell under the threshold was released: {v}");
            }
        }
    }
    let by_sex = &job.outputs[0].checked_table.as_ref().unwrap()["rows"];
    assert_eq!(by_sex[0]["keys"][0], "female");
    assert_eq!(by_sex[0]["values"][0], 20.0);
    // One receipt for the whole job, pending until the review ends; the SQL's text is nowhere.
    let runs = i.store.analysis_runs().await.unwrap();
    assert_eq!(runs.len(), 1);
    assert_eq!((runs[0].kind.as_str(), runs[0].outcome.as_str()), ("job", "pending"));
    assert!(log_entries(i).iter().all(|e| !e.to_string().contains("GROUP BY")));

    // The submitter cannot check their own job; an operator is not a checker.
    assert!(matches!(sign_off(i, w.researcher, job.id, true, "approved").await, Err(JobError::Conflicted)));
    assert!(matches!(sign_off(i, w.operator, job.id, true, "approved").await, Err(JobError::NotAChecker)));
    assert!(matches!(sign_off(i, w.checkers[0], job.id, true, "Looks fine").await, Err(JobError::BadReason)));
    // One checker approving twice does not release.
    assert_eq!(sign_off(i, w.checkers[0], job.id, true, "approved").await.unwrap(), SignOff::Recorded { approvals: 1 });
    assert!(matches!(sign_off(i, w.checkers[0], job.id, true, "approved").await, Err(JobError::AlreadySigned)));
    assert!(i.store.releases().await.unwrap().is_empty());
    assert_eq!(i.store.job(job.id).await.unwrap().unwrap().status, "awaiting_review");
    // A second checker releases it.
    let SignOff::Released { release_id } = sign_off(i, w.checkers[1], job.id, true, "approved").await.unwrap() else { panic!("not released") };
    assert_eq!(i.store.job(job.id).await.unwrap().unwrap().status, "released");
    assert!(matches!(sign_off(i, w.checkers[2], job.id, true, "approved").await, Err(JobError::NotAwaiting)));
    assert_eq!(i.store.analysis_runs().await.unwrap()[0].outcome, "released");

    // The files, and their hashes in the log.
    let dir = release_dir(i, release_id);
    let csv = std::fs::read(dir.join(format!("release-{release_id}.csv"))).unwrap();
    let metadata = std::fs::read(dir.join("metadata.json")).unwrap();
    let text = String::from_utf8(csv.clone()).unwrap();
    assert!(text.starts_with("\u{feff}output,sex,n\r\n"), "{text}");
    assert!(text.contains("by_sex,female,20\r\n") && text.contains("by_sex,male,20\r\n") && text.contains("total,,40\r\n"), "{text}");
    let meta: Value = serde_json::from_slice(&metadata).unwrap();
    assert_eq!((meta["permit"].as_i64(), meta["job"].as_i64(), meta["output_preset"].as_str()), (Some(w.permit), Some(job.id), Some("ndb")));
    assert_eq!(meta["csv"]["sha256"], sha256(&csv));
    assert!(meta["registry_version"].is_i64());
    let entries = log_entries(i);
    let published = entries.iter().find(|e| e["action"] == "release.published").expect("release.published");
    assert_eq!(published["object"], format!("release:{release_id}"));
    assert_eq!(published["data"]["csv_sha256"], sha256(&csv));
    assert_eq!(published["data"]["metadata_sha256"], sha256(&metadata));
    let row = i.store.release(release_id).await.unwrap().unwrap();
    assert_eq!(row.csv_sha256.as_deref(), Some(sha256(&csv).as_str()));

    // Downloads: the named researcher and operators; not another researcher. Each is logged.
    assert!(matches!(release_files(i, w.stranger, release_id).await, Err(JobError::NotAllowed)));
    assert!(matches!(release_files(i, w.checkers[0], release_id).await, Err(JobError::NotAllowed)));
    let files = release_files(i, w.researcher, release_id).await.unwrap();
    assert_eq!((files.csv, files.metadata), (csv.clone(), metadata.clone()));
    release_files(i, w.operator, release_id).await.unwrap();
    let entries = log_entries(i);
    assert_eq!(entries.iter().filter(|e| e["action"] == "release.downloaded").count(), 2);
    assert_eq!(entries.iter().filter(|e| e["action"] == "release.download_refused").count(), 2);

    // The same count without three persons: refused, naming the earlier release.
    let narrow =
        submit_job(i, w.researcher, w.permit, &outputs(&[("recent", "SELECT count(*) AS n FROM patients WHERE birth_year_month >= '1950'")]))
            .await
            .unwrap();
    assert_eq!(narrow.status, "refused");
    assert_eq!(narrow.outputs[0].refusal.as_deref(), Some("differencing"));
    let refused_by = &narrow.outputs[0].differencing.as_ref().unwrap()["refused_by"];
    assert_eq!(refused_by, &serde_json::json!([format!("release-{release_id}:total")]));
    assert!(narrow.outputs[0].checked_table.as_ref().unwrap()["rows"][0]["values"][0] == "refused");
    assert!(matches!(sign_off(i, w.checkers[0], narrow.id, true, "approved").await, Err(JobError::NotAwaiting)));
    // Within one job too: the second output differs from the first by three persons.
    let pair = submit_job(
        i,
        w.researcher,
        w.permit,
        &outputs(&[
            ("women", "SELECT count(*) AS n FROM patients WHERE sex = 'female'"),
            ("recent_women", "SELECT count(*) AS n FROM patients WHERE sex = 'female' AND birth_year_month >= '1950'"),
        ]),
    )
    .await
    .unwrap();
    assert_eq!((pair.status.as_str(), pair.outputs[1].refusal.as_deref()), ("refused", Some("differencing")));
    // By the job's first output, and by the released table's women (the same persons, by their
    // samples, though in a row of another key set).
    assert_eq!(
        pair.outputs[1].differencing.as_ref().unwrap()["refused_by"],
        serde_json::json!([format!("release-{release_id}:by_sex"), format!("job-{}:women", pair.id)])
    );
    // The same query again is the same cohort: it passes; a checker's rejection refuses it.
    let again = submit_job(i, w.researcher, w.permit, &outputs(&[("total", "select count(*) as n\n  from patients;")])).await.unwrap();
    assert_eq!(again.status, "awaiting_review", "{again:?}");
    assert_eq!(sign_off(i, w.checkers[2], again.id, false, "not_needed").await.unwrap(), SignOff::Refused);
    assert_eq!(i.store.job(again.id).await.unwrap().unwrap().status, "refused");
    let outcomes: Vec<String> = i.store.analysis_runs().await.unwrap().into_iter().map(|r| r.outcome).collect();
    assert_eq!(outcomes, ["released", "refused", "refused", "refused"]);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_job_with_one_refused_output_runs_nothing() {
    let w = world().await;
    let i = &w.instance;
    for (bad, code) in [("SELECT sex FROM patients", "not_aggregate"), ("CREATE TABLE t (a INT)", "ddl")] {
        let job = submit_job(i, w.researcher, w.permit, &outputs(&[("ok", "SELECT sex, count(*) AS n FROM patients GROUP BY sex"), ("bad", bad)]))
            .await
            .unwrap();
        assert_eq!(job.status, "refused");
        assert_eq!((job.outputs[0].status.as_str(), job.outputs[0].checked_table.is_none()), ("not_run", true));
        assert_eq!((job.outputs[1].status.as_str(), job.outputs[1].refusal.as_deref()), ("refused", Some(code)), "{bad}");
        assert_eq!(i.store.job(job.id).await.unwrap().unwrap().run_id, None);
    }
    assert!(i.store.analysis_runs().await.unwrap().is_empty(), "nothing read the real data");
    // Malformed jobs and researchers not named on the permit are refused before a job exists.
    assert!(matches!(submit_job(i, w.researcher, w.permit, &[]).await, Err(JobError::BadOutputs)));
    let twice = outputs(&[("a", "SELECT count(*) FROM patients"), ("a", "SELECT count(*) FROM patients")]);
    assert!(matches!(submit_job(i, w.researcher, w.permit, &twice).await, Err(JobError::BadOutputs)));
    assert!(matches!(
        submit_job(i, w.stranger, w.permit, &outputs(&[("a", "SELECT count(*) FROM patients")])).await,
        Err(JobError::Analysis(niji_analysis::AnalysisError::NotNamed))
    ));
    assert_eq!(i.store.jobs().await.unwrap().len(), 2);
}

/// A conditional aggregate over a few persons of a large group: its cells count those few, not the
/// group, so they are suppressed (and the cells of the same row with them, which could give them
/// back by difference). Before the sandbox counted each aggregate's persons, such a count (or a
/// `min(CASE …)`, now refused) was checked with the twenty persons of the sex behind it.
#[tokio::test(flavor = "multi_thread")]
async fn a_conditional_aggregate_over_few_persons_is_suppressed_in_a_large_group() {
    let w = world().await;
    let i = &w.instance;
    let rare = "SELECT sex, count(*) AS n, \
                CAST(count(DISTINCT CASE WHEN birth_year_month < '1950' THEN birth_year_month END) AS VARCHAR) AS months, \
                count(*) FILTER (WHERE birth_year_month < '1950') AS old \
                FROM patients GROUP BY sex ORDER BY sex";
    // Ten of each sex born from 1975, ten before: either side is enough.
    let halves = "SELECT sex, count(*) AS n, count(CASE WHEN birth_year_month >= '1975' THEN 1 END) AS late FROM patients GROUP BY sex ORDER BY sex";
    // Most persons, but the others (born before 1950) are one or two: n minus it would tell them.
    let complement =
        "SELECT sex, count(*) AS n, count(CASE WHEN birth_year_month >= '1950' THEN 1 END) AS recent FROM patients GROUP BY sex ORDER BY sex";
    let job = submit_job(i, w.researcher, w.permit, &outputs(&[("rare", rare), ("halves", halves), ("complement", complement)])).await.unwrap();
    // `months` and `old`: one woman and two men behind them, whatever the group's size.
    let verdicts = job.outputs[0].verdicts.as_ref().expect("verdicts");
    let persons_of = |row: u64, measure: u64| -> Vec<String> {
        let cells = verdicts["cells"].as_array().unwrap();
        let cell = cells.iter().find(|c| c["row"] == row && c["measure"] == measure).unwrap_or_else(|| panic!("{verdicts}"));
        cell["reasons"].as_array().unwrap().iter().map(|r| format!("{} {}", r["code"].as_str().unwrap(), r["en"].as_str().unwrap())).collect()
    };
    for (row, persons) in [(0, 1), (1, 2)] {
        for measure in [1, 2] {
            let reasons = persons_of(row, measure);
            assert!(reasons.iter().any(|r| r.starts_with("below_threshold") && r.contains(&format!("counts {persons} persons"))), "{reasons:?}");
        }
    }
    let rare_table = job.outputs[0].checked_table.as_ref().unwrap();
    assert_eq!(rare_table["dimensions"], serde_json::json!(["sex"]), "an aggregate shown as text is a value, never a key");
    let released_cells: Vec<&Value> = rare_table["rows"].as_array().unwrap().iter().flat_map(|r| r["values"].as_array().unwrap()).collect();
    assert!(released_cells.iter().all(|v| !v.is_number() || v.as_f64().unwrap() >= 10.0), "{rare_table}");
    // The same kind of aggregate is released where both sides of its condition are enough.
    let halves_rows = job.outputs[1].checked_table.as_ref().unwrap()["rows"].clone();
    assert_eq!(halves_rows, serde_json::json!([{"keys": ["female"], "values": [20.0, 10.0]}, {"keys": ["male"], "values": [20.0, 10.0]}]));
    let complement_rows = job.outputs[2].checked_table.as_ref().unwrap()["rows"].clone();
    let suppressed = serde_json::json!(["suppressed", "suppressed"]);
    assert_eq!(complement_rows, serde_json::json!([{"keys": ["female"], "values": suppressed}, {"keys": ["male"], "values": suppressed}]));
}

/// The ACRO rules end to end: the chair amends the permit to ACRO; a job's sum and mean carry the
/// two largest single-person contributions from the sandbox, so dominance and p-percent are
/// checked and the cells pass (forty birth years, none dominant); a median, whose contributions
/// are not computed, cannot pass those rules and is suppressed; zeros are disclosive.
#[tokio::test(flavor = "multi_thread")]
async fn under_acro_sums_carry_their_contributions_and_a_median_without_them_is_suppressed() {
    let w = world().await;
    let i = &w.instance;
    let chair = user(i, "chair", &[Role::CommitteeChair]).await;
    let chair = Actor::load(&i.store, chair).await.unwrap();
    let today = time::OffsetDateTime::now_utc().date();
    let permit = niji_applications::amend_permit(i, &chair, w.permit, None, Some("acro".into()), today).await.unwrap();
    let sql = "SELECT sex, count(*) AS n, sum(TRY_CAST(substr(birth_year_month, 1, 4) AS BIGINT)) AS years, \
               avg(TRY_CAST(substr(birth_year_month, 1, 4) AS BIGINT)) AS mean_year \
               FROM patients GROUP BY sex ORDER BY sex";
    let median = "SELECT sex, median(TRY_CAST(substr(birth_year_month, 1, 4) AS BIGINT)) AS median_year FROM patients GROUP BY sex ORDER BY sex";
    let zero = "SELECT sex, count(*) FILTER (WHERE birth_year_month < '1900') AS none FROM patients GROUP BY sex ORDER BY sex";
    let job = submit_job(i, w.researcher, permit, &outputs(&[("sums", sql), ("median", median), ("zero", zero)])).await.unwrap();
    let rows = |k: usize| job.outputs[k].checked_table.as_ref().unwrap()["rows"].clone();
    let reasons = |k: usize| -> Vec<String> {
        let cells = job.outputs[k].verdicts.as_ref().unwrap()["cells"].as_array().cloned().unwrap_or_default();
        cells.iter().flat_map(|c| c["reasons"].as_array().cloned().unwrap_or_default()).map(|r| r["code"].as_str().unwrap().to_string()).collect()
    };
    // Twenty of each sex (ACRO does not round); sums and means released with their contributions.
    let sums = rows(0);
    assert_eq!(sums.as_array().unwrap().len(), 2, "{sums}");
    for row in sums.as_array().unwrap() {
        let v = row["values"].as_array().unwrap();
        assert_eq!(v[0], 20.0, "{row}");
        assert!(v[1].as_f64().is_some_and(|s| s > 39_000.0) && v[2].as_f64().is_some_and(|m| (1940.0..2000.0).contains(&m)), "{row}");
    }
    assert!(reasons(0).is_empty(), "{:?}", reasons(0));
    // The median: contributions unknown, so ACRO's magnitude rules cannot pass it.
    assert!(rows(1).as_array().unwrap().iter().all(|r| r["values"][0] == "suppressed"), "{}", rows(1));
    assert!(reasons(1).iter().any(|r| r == "missing_contributions"), "{:?}", reasons(1));
    // A zero count is disclosive under ACRO.
    assert!(rows(2).as_array().unwrap().iter().all(|r| r["values"][0] == "suppressed"), "{}", rows(2));
    assert!(reasons(2).iter().any(|r| r == "zero"), "{:?}", reasons(2));
}

/// Runs stopped by a limit spend the permit's stops; with none left nothing more runs on the real
/// data, not even a query that would pass, until an output checker not named on the permit
/// clears them. Static refusals and the whole-table bounds spend nothing, a run that ends gives
/// its place back, a run in progress keeps it through a clearance, and a place taken by a run
/// that never ended (the process died) stays taken until it is older than any run may last.
#[tokio::test(flavor = "multi_thread")]
async fn runs_stopped_by_limits_spend_the_permits_stops_until_a_checker_clears_them() {
    use niji_analysis::stops::{clear_stops, stops, ClearError};
    use niji_analysis::{query_real_with, AnalysisError, AnalysisSettings, Limits};
    use niji_sandbox::{Refusal, SandboxError};

    let w = world().await;
    let i = &w.instance;
    // One byte of memory: any grouping runs out of it.
    let roomy = AnalysisSettings { max_stops: 2, ..AnalysisSettings::default() };
    let starved = AnalysisSettings { limits: Limits { memory_bytes: 1, ..Limits::default() }, ..roomy.clone() };
    let by_sex = "SELECT sex, count(*) AS n FROM patients GROUP BY sex";
    let roomy_ref = &roomy;
    let used = |n: usize| async move {
        let s = stops(i, roomy_ref, w.permit).await.unwrap();
        assert_eq!(s.stops.len(), n, "{:?}", s.stops);
        s
    };

    // A query that passes spends nothing; one refused before it runs spends nothing; nor do the
    // join-size and group bounds, judged on the real tables' statistics before the run.
    query_real_with(i, &roomy, w.researcher, w.permit, by_sex).await.unwrap();
    let refused = query_real_with(i, &starved, w.researcher, w.permit, "SELECT sex FROM patients").await;
    assert!(matches!(refused, Err(AnalysisError::Refused(SandboxError::NotAggregate))), "{refused:?}");
    let few_groups = AnalysisSettings { limits: Limits { max_groups: 2, ..Limits::default() }, ..roomy.clone() };
    let by_birth = "SELECT birth_year_month, count(*) AS n FROM patients GROUP BY birth_year_month";
    let bound = query_real_with(i, &few_groups, w.researcher, w.permit, by_birth).await;
    assert!(matches!(bound, Err(AnalysisError::Refused(SandboxError::NotAllowed(Refusal::TooManyGroups)))), "{bound:?}");
    used(0).await;
    assert_eq!(stops(i, &roomy, w.permit).await.unwrap().runs_since_clear, 2, "the run that passed and the one the bound refused");

    // A run out of memory spends one.
    let stopped = query_real_with(i, &starved, w.researcher, w.permit, by_sex).await;
    assert!(matches!(stopped, Err(AnalysisError::Stopped(SandboxError::MemoryLimit))), "{stopped:?}");
    let s = used(1).await;
    assert_eq!((s.stops[0].kind.as_str(), s.stops[0].reason.as_str(), s.stops[0].user_id), ("query", "memory_limit", w.researcher));
    assert_eq!(s.stops[0].code_sha256, sha256(by_sex.as_bytes()));
    assert_eq!(s.left(), 1);

    // A job's first output spends the last; its second is not run.
    let job = niji_analysis::jobs::submit_job_with(i, &starved, w.researcher, w.permit, &outputs(&[("a", by_sex), ("b", by_sex)])).await.unwrap();
    assert_eq!(job.status, "refused");
    let refusals: Vec<_> = job.outputs.iter().map(|o| o.refusal.as_deref()).collect();
    assert_eq!(refusals, [Some("memory_limit"), Some("stops_spent")]);
    assert_eq!(used(2).await.left(), 0);

    // None left: a query that would pass is refused before it reads anything, and so is a job.
    let runs_before = i.store.analysis_runs().await.unwrap().len();
    let spent = query_real_with(i, &roomy, w.researcher, w.permit, by_sex).await;
    assert!(matches!(spent, Err(AnalysisError::StopsSpent)), "{spent:?}");
    let job = niji_analysis::jobs::submit_job_with(i, &roomy, w.researcher, w.permit, &outputs(&[("a", by_sex)])).await.unwrap();
    assert_eq!((job.status.as_str(), job.outputs[0].refusal.as_deref()), ("refused", Some("stops_spent")));
    assert_eq!(i.store.analysis_runs().await.unwrap().len(), runs_before, "nothing read the real data");
    used(2).await;
    let refused_entries = log_entries(i)
        .into_iter()
        .filter(|e| e["action"] == "analysis.query" && e["data"]["reason"].as_str().is_some_and(|r| r.contains("output checker must clear")))
        .count();
    assert_eq!(refused_entries, 1, "the refusal is logged");

    // Clearing: an output checker not named on the permit, with a reason code.
    const ALL: (i64, Option<i64>) = (i64::MAX, None);
    assert!(matches!(clear_stops(i, &roomy, w.researcher, w.permit, ALL, "reviewed").await, Err(ClearError::Conflicted)), "named on the permit");
    assert!(matches!(clear_stops(i, &roomy, w.stranger, w.permit, ALL, "reviewed").await, Err(ClearError::NotAChecker)));
    assert!(matches!(clear_stops(i, &roomy, w.checkers[0], w.permit, ALL, "Looked at it!").await, Err(ClearError::BadReason)));
    assert!(matches!(clear_stops(i, &roomy, w.checkers[0], 999, ALL, "reviewed").await, Err(ClearError::NoPermit)));
    let shown = used(2).await;
    assert_eq!(shown.runs_since_clear, 4, "a query answered, one bound, one stopped; the job's output that ran");
    // Only stops that had ended when the checker looked; up to the last one looked at.
    assert_eq!(clear_stops(i, &roomy, w.checkers[0], w.permit, (shown.stops[0].id, None), "reviewed").await.unwrap(), 1);
    used(1).await;
    assert_eq!(stops(i, &roomy, w.permit).await.unwrap().runs_since_clear, 1, "runs after the first stop: the job's output");
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    assert_eq!(clear_stops(i, &roomy, w.checkers[0], w.permit, (i64::MAX, Some(now - 60)), "reviewed").await.unwrap(), 0);
    assert_eq!(clear_stops(i, &roomy, w.checkers[0], w.permit, ALL, "reviewed").await.unwrap(), 1);
    let cleared = log_entries(i).into_iter().filter(|e| e["action"] == "permit.stops_cleared").collect::<Vec<_>>();
    assert_eq!(cleared.len(), 3);
    assert_eq!((cleared[0]["data"]["cleared"].as_u64(), cleared[0]["data"]["reason"].as_str()), (Some(1), Some("reviewed")));
    used(0).await;
    assert_eq!(stops(i, &roomy, w.permit).await.unwrap().runs_since_clear, 0);
    query_real_with(i, &roomy, w.researcher, w.permit, by_sex).await.unwrap();
    used(0).await;

    // Two runs at once for the last place: one runs (and stops), the other is turned away.
    let one = AnalysisSettings { max_stops: 1, ..starved.clone() };
    let (a, b) = tokio::join!(query_real_with(i, &one, w.researcher, w.permit, by_sex), query_real_with(i, &one, w.researcher, w.permit, by_sex));
    let ran = [&a, &b].iter().filter(|r| matches!(r, Err(AnalysisError::Stopped(SandboxError::MemoryLimit)))).count();
    let turned = [&a, &b].iter().filter(|r| matches!(r, Err(AnalysisError::RunsBusy | AnalysisError::StopsSpent))).count();
    assert_eq!((ran, turned), (1, 1), "{a:?} {b:?}");
    assert_eq!(clear_stops(i, &roomy, w.checkers[0], w.permit, ALL, "reviewed").await.unwrap(), 1);

    // Places are taken in one statement: of three runs started together with two places, one
    // is turned away.
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let run = niji_store::NewRun { permit_id: w.permit, user_id: w.researcher, kind: "query", code_sha256: "00", started_at: now };
    let (a, b, c) = tokio::join!(i.store.reserve_run(&run, 2), i.store.reserve_run(&run, 2), i.store.reserve_run(&run, 2));
    let taken: Vec<i64> = [a, b, c].into_iter().filter_map(|r| r.unwrap()).collect();
    assert_eq!(taken.len(), 2);
    // Runs in progress hold the places: a query is told to wait, not that stops are spent.
    let busy = query_real_with(i, &roomy, w.researcher, w.permit, by_sex).await;
    assert!(matches!(busy, Err(AnalysisError::RunsBusy)), "{busy:?}");
    i.store.end_run(taken[0], None, now).await.unwrap();
    assert!(i.store.end_run(taken[0], None, now).await.is_err(), "a run ends once");
    // A clearance passes over a run in progress, and a stop it then makes counts.
    assert_eq!(used(1).await.stops[0].reason, "running");
    assert_eq!(clear_stops(i, &roomy, w.checkers[1], w.permit, ALL, "reviewed").await.unwrap(), 0);
    i.store.end_run(taken[1], Some("timeout"), now).await.unwrap();
    assert_eq!(used(1).await.stops[0].reason, "timeout");
    assert_eq!(clear_stops(i, &roomy, w.checkers[1], w.permit, ALL, "reviewed").await.unwrap(), 1);
    // A run that never ended, started longer ago than any run may last: cleared with the stops.
    let abandoned = niji_store::NewRun { started_at: now - 3_600, ..run };
    i.store.reserve_run(&abandoned, 2).await.unwrap().unwrap();
    i.store.reserve_run(&abandoned, 2).await.unwrap().unwrap();
    assert_eq!(used(2).await.stops[0].reason, "running");
    // Two abandoned runs fill the budget: spent, not busy (they will never end).
    let spent = query_real_with(i, &roomy, w.researcher, w.permit, by_sex).await;
    assert!(matches!(spent, Err(AnalysisError::StopsSpent)), "{spent:?}");
    assert_eq!(clear_stops(i, &roomy, w.checkers[1], w.permit, ALL, "interrupted").await.unwrap(), 2);
    used(0).await;

    // A refusal by differencing tells about a few persons: it is a stop too. Everyone by sex was
    // answered above; everyone but one person differs from it by one.
    let but_one = "SELECT sex, count(*) AS n FROM patients WHERE birth_year_month <> (SELECT min(birth_year_month) FROM patients) GROUP BY sex";
    let differs = query_real_with(i, &roomy, w.researcher, w.permit, but_one).await;
    if matches!(differs, Err(AnalysisError::Differencing)) {
        assert_eq!(used(1).await.stops[0].reason, "differencing");
    } else {
        let other = "SELECT sex, count(*) AS n FROM patients WHERE birth_year_month >= '1941' GROUP BY sex";
        let differs = query_real_with(i, &roomy, w.researcher, w.permit, other).await;
        assert!(matches!(differs, Err(AnalysisError::Differencing)), "{differs:?}");
        assert_eq!(used(1).await.stops[0].reason, "differencing");
    }
}

/// An amended permit is a new row with a new id, but the same project: differencing still
/// compares with what its earlier versions released and answered, and their stops stay spent
/// until a checker clears them on the current version. (Before, both started from nothing: a
/// researcher could have an amendment approved and then take the difference with the answers of
/// the version before.)
#[tokio::test(flavor = "multi_thread")]
async fn an_amended_permit_keeps_the_answers_releases_and_stops_of_its_earlier_versions() {
    use niji_analysis::stops::{clear_stops, stops};
    use niji_analysis::{query_real_with, AnalysisError, AnalysisSettings, Limits};
    use niji_sandbox::SandboxError;

    let w = world().await;
    let i = &w.instance;
    let quick = AnalysisSettings { max_stops: 2, ..answering_at_once() };
    let starved = AnalysisSettings { limits: Limits { memory_bytes: 1, ..Limits::default() }, ..quick.clone() };
    let everyone = "SELECT count(*) AS n FROM patients";
    let by_sex = "SELECT sex, count(*) AS n FROM patients GROUP BY sex";
    // Version 1 answers the count of everyone, and one run of it stops.
    let answered = query_real_with(i, &quick, w.researcher, w.permit, everyone).await.unwrap();
    assert_eq!(answered.rows[0].1, vec![niji_sdc::Shown::Value(40.0)], "{answered:?}");
    let stopped = query_real_with(i, &starved, w.researcher, w.permit, by_sex).await;
    assert!(matches!(stopped, Err(AnalysisError::Stopped(SandboxError::MemoryLimit))), "{stopped:?}");

    let chair = user(i, "chair", &[Role::CommitteeChair]).await;
    let chair = Actor::load(&i.store, chair).await.unwrap();
    let today = time::OffsetDateTime::now_utc().date();
    let v2 = niji_applications::amend_permit(i, &chair, w.permit, None, None, today).await.unwrap();
    assert_ne!(v2, w.permit);
    assert!(query_real_with(i, &quick, w.researcher, w.permit, everyone).await.is_err(), "the superseded version runs nothing");

    // The stop of version 1 is version 2's too, and so are its runs.
    let s = stops(i, &quick, v2).await.unwrap();
    assert_eq!((s.stops.len(), s.left(), s.runs_since_clear), (1, 1, 2), "{:?}", s.stops);
    // Everyone born from 1950 on: three persons fewer than version 1's answer. Refused, a stop.
    let recent = "SELECT count(*) AS n FROM patients WHERE birth_year_month >= '1950'";
    let refused = query_real_with(i, &quick, w.researcher, v2, recent).await;
    assert!(matches!(refused, Err(AnalysisError::Differencing)), "{refused:?}");
    // Both stops spent: nothing more runs on version 2 until a checker clears them there.
    let spent = query_real_with(i, &quick, w.researcher, v2, everyone).await;
    assert!(matches!(spent, Err(AnalysisError::StopsSpent)), "{spent:?}");
    let job = niji_analysis::jobs::submit_job_with(i, &quick, w.researcher, v2, &outputs(&[("recent", recent)])).await.unwrap();
    assert_eq!(job.outputs[0].refusal.as_deref(), Some("stops_spent"));
    assert_eq!(clear_stops(i, &quick, w.checkers[0], v2, (i64::MAX, None), "reviewed").await.unwrap(), 2);
    assert_eq!(stops(i, &quick, w.permit).await.unwrap().stops.len(), 0, "cleared on every version");
    assert_eq!(i.store.permits_with_stops(i64::MAX).await.unwrap(), []);

    // The same SQL on version 2 is compared with version 1's answer (another permit version is
    // another cohort); the same persons pass.
    let again = query_real_with(i, &quick, w.researcher, v2, everyone).await.unwrap();
    assert_eq!(again.rows, answered.rows);
    // A job of version 2 is compared with version 1's answers and its releases alike.
    let job = niji_analysis::jobs::submit_job_with(i, &quick, w.researcher, v2, &outputs(&[("recent", recent)])).await.unwrap();
    assert_eq!(job.outputs[0].refusal.as_deref(), Some("differencing"), "{job:?}");
    let refused_by = job.outputs[0].differencing.as_ref().unwrap()["refused_by"].clone();
    assert!(refused_by.as_array().unwrap().iter().any(|r| r.as_str().is_some_and(|r| r.starts_with("answer-"))), "{refused_by}");

    // A stop on version 2 is listed under it, and only once.
    let stopped = query_real_with(i, &starved, w.researcher, v2, by_sex).await;
    assert!(matches!(stopped, Err(AnalysisError::Stopped(_))), "{stopped:?}");
    assert_eq!(i.store.permits_with_stops(i64::MAX).await.unwrap(), [(v2, 2)], "the job's differencing and the memory stop");
}

/// Two jobs awaiting review, each passing alone: the second released is compared once more with
/// the first, refused, and the refusal (which the researcher sees) is a stop of the permit.
#[tokio::test(flavor = "multi_thread")]
async fn a_job_refused_by_differencing_at_its_release_spends_a_stop() {
    use niji_analysis::stops::stops;

    let w = world().await;
    let i = &w.instance;
    let quick = answering_at_once();
    let (quick, w) = (&quick, &w);
    let submit = |sql: &'static str| async move {
        niji_analysis::jobs::submit_job_with(i, quick, w.researcher, w.permit, &outputs(&[("n", sql)])).await.unwrap()
    };
    let everyone = submit("SELECT count(*) AS n FROM patients").await;
    let recent = submit("SELECT count(*) AS n FROM patients WHERE birth_year_month >= '1950'").await;
    assert_eq!((everyone.status.as_str(), recent.status.as_str()), ("awaiting_review", "awaiting_review"));
    for checker in &w.checkers[..2] {
        sign_off(i, *checker, everyone.id, true, "approved").await.unwrap();
    }
    assert_eq!(stops(i, quick, w.permit).await.unwrap().stops.len(), 0);
    sign_off(i, w.checkers[0], recent.id, true, "approved").await.unwrap();
    assert_eq!(sign_off(i, w.checkers[1], recent.id, true, "approved").await.unwrap(), SignOff::Refused);
    assert_eq!(i.store.job(recent.id).await.unwrap().unwrap().reason.as_deref(), Some("differencing"));
    let s = stops(i, quick, w.permit).await.unwrap();
    assert_eq!(s.stops.len(), 1, "{:?}", s.stops);
    assert_eq!((s.stops[0].kind.as_str(), s.stops[0].reason.as_str(), s.stops[0].user_id), ("release", "differencing", w.researcher));
}

/// A table of more axes than the NDB preset allows is refused from its shape, before it reads the
/// real data: no run, no stop, no wait for a slot.
#[tokio::test(flavor = "multi_thread")]
async fn a_table_of_too_many_axes_is_refused_before_it_runs() {
    use niji_analysis::stops::stops;
    use niji_analysis::{query_real_with, AnalysisError, AnalysisSettings};

    let w = world().await;
    let i = &w.instance;
    let slow = AnalysisSettings {
        answer: niji_analysis::AnswerTime { least: std::time::Duration::from_secs(30), per_million_rows: std::time::Duration::ZERO },
        ..AnalysisSettings::default()
    };
    let four = "SELECT sex, birth_year_month, sex AS s, birth_year_month AS b, count(*) AS n FROM patients GROUP BY sex, birth_year_month";
    let started = std::time::Instant::now();
    let refused = query_real_with(i, &slow, w.researcher, w.permit, four).await;
    assert!(matches!(refused, Err(AnalysisError::TooManyDimensions)), "{refused:?}");
    let job = niji_analysis::jobs::submit_job_with(i, &slow, w.researcher, w.permit, &outputs(&[("four", four)])).await.unwrap();
    assert_eq!((job.status.as_str(), job.outputs[0].refusal.as_deref()), ("refused", Some("too_many_dimensions")));
    assert!(started.elapsed() < std::time::Duration::from_secs(30), "no slot was waited for");
    assert!(i.store.analysis_runs().await.unwrap().is_empty(), "nothing read the real data");
    let s = stops(i, &slow, w.permit).await.unwrap();
    assert_eq!((s.stops.len(), s.runs_since_clear), (0, 0));
    // Three axes run.
    let three = "SELECT sex, birth_year_month, sex AS s, count(*) AS n FROM patients GROUP BY sex, birth_year_month";
    let quick = AnalysisSettings { answer: answering_at_once().answer, ..slow };
    query_real_with(i, &quick, w.researcher, w.permit, three).await.unwrap();
}

/// The two cells of a difference in two outputs: `count(*) FILTER (WHERE f)` (those born in the
/// first half of a year), then the same less those born before 1950 (three of them). Each cell and
/// each complement counts many, and the rows count the same persons (everyone):
/// only the cells' samples show that the second counts the first's persons less a few, and it is
/// refused; a count of other persons, as close, is answered.
#[tokio::test(flavor = "multi_thread")]
async fn a_cell_that_counts_an_earlier_cells_persons_less_a_few_is_refused() {
    use niji_analysis::{query_real_with, AnalysisError};

    let w = world().await;
    let i = &w.instance;
    let quick = answering_at_once();
    let q = |sql: &'static str| query_real_with(i, &quick, w.researcher, w.permit, sql);
    let first = q("SELECT count(*) FILTER (WHERE substr(birth_year_month, 6, 2) <= '06') AS n FROM patients").await.unwrap();
    assert_eq!(first.rows[0].1, vec![niji_sdc::Shown::Value(22.0)]);
    // The other half: other persons, their count four apart.
    let other = q("SELECT count(*) FILTER (WHERE substr(birth_year_month, 6, 2) > '06') AS n FROM patients").await.unwrap();
    assert_eq!(other.rows[0].1, vec![niji_sdc::Shown::Value(18.0)]);
    let less = q("SELECT count(*) FILTER (WHERE substr(birth_year_month, 6, 2) <= '06' AND birth_year_month >= '1950') AS n FROM patients").await;
    assert!(matches!(less, Err(AnalysisError::Differencing)), "{less:?}");
    // In a job too, and renamed.
    let job = niji_analysis::jobs::submit_job_with(
        i,
        &quick,
        w.researcher,
        w.permit,
        &outputs(&[(
            "recent",
            "SELECT count(*) FILTER (WHERE birth_year_month >= '1950' AND substr(birth_year_month, 6, 2) <= '06') AS recent FROM patients",
        )]),
    )
    .await
    .unwrap();
    assert_eq!(job.outputs[0].refusal.as_deref(), Some("differencing"), "{job:?}");
}

/// The same query before and after a person opts out: the answers would differ by that one
/// person, who is in the first and not in the second. Another registry version is another
/// cohort, so the second is compared with the first and refused.
#[tokio::test(flavor = "multi_thread")]
async fn the_same_query_after_an_opt_out_is_compared_with_its_earlier_answer() {
    use niji_analysis::{query_real_with, AnalysisError};

    let w = world().await;
    let i = &w.instance;
    let quick = answering_at_once();
    let by_sex = "SELECT sex, count(*) AS n FROM patients GROUP BY sex ORDER BY sex";
    let before = query_real_with(i, &quick, w.researcher, w.permit, by_sex).await.unwrap();
    // The same query again on the same data is the same cohort: answered alike.
    assert_eq!(query_real_with(i, &quick, w.researcher, w.permit, by_sex).await.unwrap().rows, before.rows);
    let holder = niji_registry::HolderActor { holder: HOLDER.into(), audit: "test".into() };
    let author = niji_registry::Author::Holder { actor: holder, patient_id: "2000".into() };
    let choice = niji_consent::Choice::OptOut { scope: niji_consent::OptOutScope::All };
    niji_registry::record_choice(i, &author, choice, time::OffsetDateTime::now_utc()).await.unwrap();
    let after = query_real_with(i, &quick, w.researcher, w.permit, by_sex).await;
    assert!(matches!(after, Err(AnalysisError::Differencing)), "{after:?}");
    // A job too.
    let job = niji_analysis::jobs::submit_job_with(i, &quick, w.researcher, w.permit, &outputs(&[("by_sex", by_sex)])).await.unwrap();
    assert_eq!(job.outputs[0].refusal.as_deref(), Some("differencing"), "{job:?}");
}

/// A run on real data answers at a time fixed before it runs, from the tables' sizes alone:
/// one that ends sooner waits for its slot, answer or stop alike; one that passes its slot
/// answers at the time limit and spends a stop (`late`), its answer kept; jobs' outputs are
/// paced one by one; and the instance's queue lets so many runs go at once.
#[tokio::test(flavor = "multi_thread")]
async fn runs_on_real_data_answer_at_a_time_fixed_before_they_run() {
    use std::time::{Duration, Instant};

    use niji_analysis::stops::{clear_stops, stops};
    use niji_analysis::{query_real_with, AnalysisError, AnalysisSettings, AnswerTime, Limits, RunQueue};
    use niji_sandbox::SandboxError;

    let w = world().await;
    let i = &w.instance;
    let by_sex = "SELECT sex, count(*) AS n FROM patients GROUP BY sex";
    let slot = Duration::from_secs(4);
    // A time limit short enough that a run wrongly late fails the test soon.
    let paced = AnalysisSettings {
        answer: AnswerTime { least: slot, per_million_rows: Duration::ZERO },
        limits: Limits { timeout: Duration::from_secs(20), ..Limits::default() },
        max_stops: 3,
        ..AnalysisSettings::default()
    };
    let reasons = || async { stops(i, &paced, w.permit).await.unwrap().stops.into_iter().map(|s| s.reason).collect::<Vec<_>>() };

    // An answer waits for its slot; so does a stop.
    let t = Instant::now();
    let out = query_real_with(i, &paced, w.researcher, w.permit, by_sex).await.unwrap();
    let took = t.elapsed();
    assert!(!out.late);
    assert!(took >= slot && took < slot * 2, "{took:?}");
    let starved = AnalysisSettings { limits: Limits { memory_bytes: 1, ..paced.limits }, ..paced.clone() };
    let t = Instant::now();
    let stopped = query_real_with(i, &starved, w.researcher, w.permit, by_sex).await;
    assert!(matches!(stopped, Err(AnalysisError::Stopped(SandboxError::MemoryLimit))), "{stopped:?}");
    assert!(t.elapsed() >= slot, "{:?}", t.elapsed());
    assert_eq!(reasons().await, ["memory_limit"]);

    // A slot of nothing: every run passes it, answers at the time limit and a grace (a quarter
    // of it) and spends a stop.
    let limit = Duration::from_secs(6);
    let grace = Duration::from_millis(1_500);
    let hasty = AnalysisSettings {
        answer: AnswerTime { least: Duration::ZERO, per_million_rows: Duration::ZERO },
        limits: Limits { timeout: limit, ..Limits::default() },
        ..paced.clone()
    };
    let t = Instant::now();
    let out = query_real_with(i, &hasty, w.researcher, w.permit, by_sex).await.unwrap();
    assert!(out.late, "the answer is kept, marked late");
    assert!(t.elapsed() >= limit + grace, "{:?}", t.elapsed());
    assert_eq!(reasons().await, ["memory_limit", "late"]);
    assert_eq!(clear_stops(i, &paced, w.checkers[0], w.permit, (i64::MAX, None), "reviewed").await.unwrap(), 2);

    // A job's output, late: it spends a stop and keeps its outcome.
    let t = Instant::now();
    let job = niji_analysis::jobs::submit_job_with(i, &hasty, w.researcher, w.permit, &outputs(&[("a", by_sex)])).await.unwrap();
    assert!(t.elapsed() >= limit + grace, "{:?}", t.elapsed());
    assert_eq!(job.status, "awaiting_review", "{job:?}");
    assert_eq!(reasons().await, ["late"]);
    assert_eq!(clear_stops(i, &paced, w.checkers[0], w.permit, (i64::MAX, None), "reviewed").await.unwrap(), 1);

    // One run at a time: two queries wait for each other's slot.
    let single = AnalysisSettings { queue: RunQueue::new(1), ..paced.clone() };
    let t = Instant::now();
    let (a, b) =
        tokio::join!(query_real_with(i, &single, w.researcher, w.permit, by_sex), query_real_with(i, &single, w.researcher, w.permit, by_sex));
    assert!(a.is_ok() && b.is_ok(), "{a:?} {b:?}");
    assert!(t.elapsed() >= slot * 2, "{:?}", t.elapsed());
    // Two at a time (the default): side by side.
    let t = Instant::now();
    let (a, b) = tokio::join!(query_real_with(i, &paced, w.researcher, w.permit, by_sex), query_real_with(i, &paced, w.researcher, w.permit, by_sex));
    assert!(a.is_ok() && b.is_ok(), "{a:?} {b:?}");
    assert!(t.elapsed() < slot * 2, "{:?}", t.elapsed());
    assert!(reasons().await.is_empty());
}

/// A job recorded but never run to its end (the server running it stopped) is failed as
/// interrupted when a server starts again, and logged; a finished job is left as it was.
#[tokio::test(flavor = "multi_thread")]
async fn a_job_an_interrupted_server_was_running_is_failed_at_start() {
    use niji_analysis::jobs::{job_view, recover_interrupted, run_started, start_job};
    let w = world().await;
    let i = &w.instance;
    let by_sex = "SELECT sex, count(*) AS n FROM patients GROUP BY sex";
    let finished =
        run_started(i, &Default::default(), start_job(i, w.researcher, w.permit, &outputs(&[("a", by_sex)])).await.unwrap()).await.unwrap();
    assert_eq!(finished.status, "awaiting_review");
    let started = start_job(i, w.researcher, w.permit, &outputs(&[("a", by_sex)])).await.unwrap();
    let id = started.job_id();
    // Its output had taken a place in the permit's stops.
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let run = niji_store::NewRun { permit_id: w.permit, user_id: w.researcher, kind: "job", code_sha256: "00", started_at: now };
    i.store.reserve_run(&run, 5).await.unwrap().unwrap();
    assert_eq!(job_view(i, id).await.unwrap().status, "checking");
    drop(started);
    assert_eq!(recover_interrupted(i).await.unwrap(), 1);
    let failed = job_view(i, id).await.unwrap();
    assert_eq!((failed.status.as_str(), failed.reason.as_deref()), ("failed", Some("interrupted")));
    assert_eq!(job_view(i, finished.id).await.unwrap().status, "awaiting_review");
    let entry = log_entries(i).into_iter().rev().find(|e| e["action"] == "job.submitted").unwrap();
    assert_eq!((entry["data"]["job"].as_i64(), entry["data"]["reason"].as_str()), (Some(id), Some("interrupted")));
    assert_eq!(recover_interrupted(i).await.unwrap(), 0, "once");
    // The place is a stop a checker may clear at once.
    let s = niji_analysis::stops::stops(i, &Default::default(), w.permit).await.unwrap();
    assert_eq!(s.stops.iter().map(|s| s.reason.as_str()).collect::<Vec<_>>(), ["interrupted"]);
    assert_eq!(niji_analysis::stops::clear_stops(i, &Default::default(), w.checkers[0], w.permit, (i64::MAX, None), "reviewed").await.unwrap(), 1);
}
