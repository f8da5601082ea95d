//! An anonymized extract end to end on a real instance: synthetic NDJSON ingested, a permit on
//! the anonymized track issued through the application workflow, the extract requested,
//! approved by an operator and downloaded — and every way around that refused.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use niji_accounts::{Accounts, AccountsConfig, NewAccount, TotpSetup};
use niji_applications::{create_draft, publish_defaults, set_consent_scope, submit, Actor};
use niji_core::Role;
use niji_extracts::{decide_extract, download_extract, request_extract, ExtractError};
use niji_instance::Instance;
use niji_review::*;
use time::OffsetDateTime;

const CONFIG: &str = r#"
suppression_limit = 0.05
[privacy]
k = 5
[[attributes]]
column = "age"
role = "quasi-identifier"
hierarchy = { builtin = "age-bands", min = 0, max = 120, widths = [10, 20, 40], top_code = 90 }
[[attributes]]
column = "start"
role = "quasi-identifier"
hierarchy = { builtin = "dates", levels = ["month", "quarter", "year"] }
[[attributes]]
column = "class"
role = "insensitive"
[[attributes]]
column = "status"
role = "insensitive"
"#;

fn synth() -> &'static Path {
    static DIR: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    DIR.get_or_init(|| {
        let dir = niji_testkit::process_temp_dir("niji-extracts-synth");
        let mut config = niji_synth::SynthConfig::new(&dir, 400);
        config.formats = niji_synth::Formats { fhir_bundles: false, fhir_ndjson: true, uke: false, registry_csv: false };
        niji_synth::generate(&config, &mut |_| {}).unwrap();
        dir
    })
}

/// The local patient number of the first Patient of the export.
fn first_patient_id() -> String {
    let file = files_under(&synth().join("ndjson")).into_iter().find(|p| p.ends_with("Patient.ndjson")).unwrap();
    let text = std::fs::read_to_string(file).unwrap();
    let patient: serde_json::Value = serde_json::from_str(text.lines().next().unwrap()).unwrap();
    let id = patient["identifier"].as_array().unwrap().iter().find(|i| i["system"].as_str().unwrap().starts_with("urn:oid:")).unwrap();
    id["value"].as_str().unwrap().to_string()
}

fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.push(p);
            }
        }
    }
    out.sort();
    out
}

struct World {
    _dir: tempfile::TempDir,
    instance: Instance,
    researcher: i64,
    other_researcher: i64,
    operator: i64,
    permit: i64,
}

async fn account(accounts: &Accounts, name: &str, role: Role) -> i64 {
    accounts
        .create_account(
            NewAccount {
                username: name.into(),
                display_name: name.into(),
                organization: Some(("東都大学".into(), "academia".into())),
                roles: vec![role],
                password: "extract-test-password".into(),
                totp: TotpSetup::EnrolNow,
            },
            "test",
            OffsetDateTime::now_utc(),
        )
        .await
        .unwrap()
        .user_id
}

async fn world(track: Track) -> World {
    world_with(track, None).await
}

async fn world_with(track: Track, cohort: Option<CohortFilter>) -> World {
    let dir = tempfile::tempdir().unwrap();
    let instance = Instance::init(&dir.path().join("i"), "test").await.unwrap();
    instance.store.create_organization("hospital", "hospital", 0).await.unwrap();
    let submission = niji_intake::Submission {
        holder: "hospital".into(),
        dataset: "ehr".into(),
        description: None,
        files: files_under(&synth().join("ndjson")),
        csv_mapping: None,
        on_reject: niji_intake::OnReject::Quarantine,
        actor: "test".into(),
    };
    let options = niji_intake::IntakeOptions::new(niji_ingest::IngestConfig::new(niji_ingest::Date::new(2026, 11, 21).unwrap()));
    assert!(matches!(
        niji_intake::ingest(&instance, submission, &options, Arc::new(niji_intake::NoProgress)).await.unwrap(),
        niji_intake::Outcome::Committed(_)
    ));
    let accounts = Accounts::new(instance.store.clone(), instance.audit_sink(), instance.accounts_key(), AccountsConfig::default());
    let operator = account(&accounts, "operator", Role::Operator).await;
    let researcher = account(&accounts, "researcher", Role::Researcher).await;
    let other_researcher = account(&accounts, "other", Role::Researcher).await;
    let ops = Actor::load(&instance.store, operator).await.unwrap();
    publish_defaults(&instance, &ops).await.unwrap();
    let scope = ConsentScope {
        purposes: vec![PurposeCategory::AcademicResearch],
        diseases: vec![],
        recipient_kinds: vec![RecipientKind::Academia],
        recipients: vec![],
    };
    set_consent_scope(&instance, &ops, "ehr", &scope).await.unwrap();
    for user_id in [researcher, other_researcher] {
        instance
            .store
            .add_accreditation(
                &niji_store::NewAccreditation {
                    user_id,
                    course: "研究倫理",
                    completed_on: "2026-01-10",
                    expires_on: "2099-01-09",
                    recorded_by: "test",
                },
                0,
            )
            .await
            .unwrap();
    }
    let me = Actor::load(&instance.store, researcher).await.unwrap();
    let variable =
        |column: &str| RequestedVariable { dataset: "ehr".into(), table: "encounters".into(), column: column.into(), justification: "受診".into() };
    let form = Application {
        title: "受診の季節変動".into(),
        purpose: "年齢階級別の受診時期".into(),
        purpose_category: PurposeCategory::AcademicResearch,
        diseases: vec![],
        recipients: vec![Recipient { organization: "東都大学".into(), kind: RecipientKind::Academia, similar_regulation: true }],
        track,
        variables: ["age", "start", "class", "status"].iter().map(|c| variable(c)).collect(),
        linkage: vec![],
        analysis_plan: "記述統計".into(),
        software: vec![Software { name: "R".into(), version: "4.4".into() }],
        duration_months: 12,
        researchers: vec![NamedResearcher { account_id: researcher, display_name: "研究者".into() }],
        genomic_data: false,
        rare_disease: false,
        expected_population: Some(50_000),
        cohort,
    };
    let id = create_draft(&instance, &me, &form).await.unwrap();
    let today = niji_core::today_jst(OffsetDateTime::now_utc());
    let submitted = submit(&instance, &me, id, today).await.unwrap();
    let permit = submitted.permit.expect("a notified application gets its permit at once");
    World { _dir: dir, instance, researcher, other_researcher, operator, permit }
}

fn now() -> OffsetDateTime {
    OffsetDateTime::now_utc()
}

#[tokio::test(flavor = "multi_thread")]
async fn an_extract_is_anonymized_approved_by_an_operator_and_downloaded_by_the_researcher() {
    let w = world(Track::AnonymizedExtract).await;
    // A patient refused every use yesterday (on paper, recorded by the hospital): the extract
    // leaves them out, and its run says which registry version it applied.
    let patient = first_patient_id();
    let holder = niji_registry::HolderActor { holder: "hospital".into(), audit: "test".into() };
    let author = niji_registry::Author::Holder { actor: holder, patient_id: patient };
    let choice = niji_consent::Choice::OptOut { scope: niji_consent::OptOutScope::All };
    let entry = niji_registry::record_choice(&w.instance, &author, choice, now() - time::Duration::days(1)).await.unwrap();
    let extract = request_extract(&w.instance, w.researcher, w.permit, "ehr", "encounters", CONFIG, now()).await.unwrap();
    let run = w.instance.store.analysis_runs().await.unwrap().pop().unwrap();
    assert_eq!((run.kind.as_str(), run.registry_version, run.excluded_persons), ("extract", entry, 1));
    assert!(extract.rows_out > 100, "{}", extract.rows_out);
    let report = &extract.report;
    assert!(report["check"]["k"].as_u64().unwrap() >= 5, "{report}");
    assert!(report["risk_after"]["prosecutor"]["highest"].as_f64().unwrap() <= 0.2);
    assert_eq!(report["generalization"].as_array().unwrap().len(), 2);

    // Nothing leaves before an operator approves; the requester cannot approve.
    assert!(matches!(download_extract(&w.instance, w.researcher, extract.id, now()).await, Err(ExtractError::NotApproved)));
    assert!(matches!(decide_extract(&w.instance, w.researcher, extract.id, true, None, now()).await, Err(ExtractError::NotADecider)));
    decide_extract(&w.instance, w.operator, extract.id, true, None, now()).await.unwrap();
    assert!(matches!(decide_extract(&w.instance, w.operator, extract.id, false, Some("late"), now()).await, Err(ExtractError::AlreadyDecided)));

    let csv = download_extract(&w.instance, w.researcher, extract.id, now()).await.unwrap();
    let text = String::from_utf8(csv.clone()).unwrap();
    let mut lines = text.trim_start_matches('\u{feff}').lines();
    let header: Vec<&str> = lines.next().unwrap().split(',').collect();
    assert!(!header.contains(&"person_id") && !header.contains(&"person_key"), "the linking code is dropped: {header:?}");
    assert_eq!(lines.count() as u64, extract.rows_out);
    // Every combination of the quasi-identifiers occurs at least k times.
    let table = niji_anon_config::table_from_csv(text.trim_start_matches('\u{feff}').as_bytes(), b',').unwrap();
    let props = niji_anon::check_release(&table, &["age", "start"], &[]).unwrap();
    assert!(props.k >= 5, "k = {}", props.k);
    // Others named nowhere on the permit get nothing; the file is the one logged.
    assert!(matches!(download_extract(&w.instance, w.other_researcher, extract.id, now()).await, Err(ExtractError::NotNamed)));
    let log = w.instance.log();
    let entries: Vec<String> = (0..log.size()).map(|i| String::from_utf8(log.entry(i).unwrap()).unwrap()).collect();
    for action in ["extract.requested", "extract.approved", "extract.downloaded"] {
        assert!(entries.iter().any(|e| e.contains(action) && e.contains(&extract.sha256)), "{action}");
    }
    let run = w.instance.store.analysis_runs().await.unwrap().into_iter().find(|r| r.kind == "extract").expect("the run is recorded");
    assert_eq!(run.permit_id, w.permit);

    // A tampered file is refused.
    let sealed = std::fs::read_dir(w.instance.paths.root.join("extracts").join(w.permit.to_string())).unwrap().next().unwrap().unwrap().path();
    let mut bytes = std::fs::read(&sealed).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 1;
    std::fs::write(&sealed, bytes).unwrap();
    assert!(matches!(download_extract(&w.instance, w.researcher, extract.id, now()).await, Err(ExtractError::Tampered)));
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_requests_are_refused_before_anything_is_written() {
    let w = world(Track::AnonymizedExtract).await;
    let refused = |config: String, table: &'static str, user: i64| {
        let instance = &w.instance;
        let permit = w.permit;
        async move { request_extract(instance, user, permit, "ehr", table, &config, now()).await.unwrap_err() }
    };
    let e = refused(CONFIG.replace("k = 5", "k = 1"), "encounters", w.researcher).await;
    assert!(matches!(e, ExtractError::Config(ref m) if m.contains("at least 2")), "{e}");
    let e = refused(
        CONFIG.replace("role = \"insensitive\"\n[[attributes]]\ncolumn = \"status\"\nrole = \"insensitive\"", "role = \"insensitive\""),
        "encounters",
        w.researcher,
    )
    .await;
    assert!(matches!(e, ExtractError::Config(ref m) if m.contains("\"status\" has no role")), "{e}");
    let e = refused(
        CONFIG.replace("{ builtin = \"age-bands\", min = 0, max = 120, widths = [10, 20, 40], top_code = 90 }", "\"/etc/passwd\""),
        "encounters",
        w.researcher,
    )
    .await;
    assert!(matches!(e, ExtractError::Config(ref m) if m.contains("builtin hierarchy")), "{e}");
    let e = refused(CONFIG.to_string() + "[[attributes]]\ncolumn = \"person_id\"\nrole = \"insensitive\"\n", "encounters", w.researcher).await;
    assert!(matches!(e, ExtractError::Config(ref m) if m.contains("linking-code")), "{e}");
    assert!(matches!(refused(CONFIG.into(), "conditions", w.researcher).await, ExtractError::NotGranted));
    assert!(matches!(refused(CONFIG.into(), "encounters", w.other_researcher).await, ExtractError::NotNamed));
    assert!(matches!(refused("k = ".into(), "encounters", w.researcher).await, ExtractError::Config(_)));
    assert!(w.instance.store.extracts().await.unwrap().is_empty());
    assert!(w.instance.store.analysis_runs().await.unwrap().is_empty());
    assert!(!w.instance.paths.root.join("extracts").exists());

    // A permit on another track gives no extract.
    let v = world(Track::Visiting).await;
    assert!(matches!(request_extract(&v.instance, v.researcher, v.permit, "ehr", "encounters", CONFIG, now()).await, Err(ExtractError::WrongTrack)));
}

#[tokio::test(flavor = "multi_thread")]
async fn the_permits_cohort_limits_the_extract_to_its_age_range() {
    let all = world(Track::AnonymizedExtract).await;
    let everyone = request_extract(&all.instance, all.researcher, all.permit, "ehr", "encounters", CONFIG, now()).await.unwrap();
    let w =
        world_with(Track::AnonymizedExtract, Some(CohortFilter { diseases: vec![], age: Some(AgeRange { min: 40, max: 74 }), period: None })).await;
    let cohort = request_extract(&w.instance, w.researcher, w.permit, "ehr", "encounters", CONFIG, now()).await.unwrap();
    assert!(cohort.report["records_in"].as_u64().unwrap() < everyone.report["records_in"].as_u64().unwrap(), "{} {}", cohort.report, everyone.report);
    decide_extract(&w.instance, w.operator, cohort.id, true, None, now()).await.unwrap();
    let csv = String::from_utf8(download_extract(&w.instance, w.researcher, cohort.id, now()).await.unwrap()).unwrap();
    let mut lines = csv.trim_start_matches('\u{feff}').lines();
    let age = lines.next().unwrap().split(',').position(|c| c == "age").unwrap();
    // Age bands of 10 (or wider) years: every released band lies within 40–74 or is suppressed.
    let mut bands = 0;
    for line in lines {
        let band = line.split(',').nth(age).unwrap();
        if let Some((lo, hi)) = band.split_once('-') {
            let (lo, hi): (u32, u32) = (lo.trim().parse().unwrap(), hi.trim().parse().unwrap());
            assert!(hi >= 40 && lo <= 74, "{band}");
            bands += 1;
        }
    }
    assert!(bands > 0, "no age band in the extract");
}

/// Every file under `dir` (none when it does not exist).
fn files_in(dir: &Path) -> Vec<PathBuf> {
    if dir.exists() {
        files_under(dir)
    } else {
        Vec::new()
    }
}

/// Runs `sql` on the metadata store through a connection of its own (a trigger that makes a
/// step fail, for the tests of partial state).
async fn execute(instance: &Instance, sql: &str) {
    use sqlx::Connection;
    let mut c = sqlx::SqliteConnection::connect(&format!("sqlite://{}", instance.paths.metadata_db().display())).await.unwrap();
    sqlx::query(sql).execute(&mut c).await.unwrap();
    c.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn a_failed_row_insert_leaves_no_sealed_file_and_a_success_leaves_no_temporary_one() {
    let w = world(Track::AnonymizedExtract).await;
    let folder = w.instance.paths.root.join("extracts");
    execute(&w.instance, "CREATE TRIGGER refuse_extracts BEFORE INSERT ON extracts BEGIN SELECT RAISE(ABORT, 'refused by the test'); END").await;
    let e = request_extract(&w.instance, w.researcher, w.permit, "ehr", "encounters", CONFIG, now()).await.unwrap_err();
    assert!(matches!(e, ExtractError::Internal), "{e}");
    assert!(w.instance.store.extracts().await.unwrap().is_empty());
    assert_eq!(files_in(&folder), Vec::<PathBuf>::new(), "a sealed file without its row");

    execute(&w.instance, "DROP TRIGGER refuse_extracts").await;
    let extract = request_extract(&w.instance, w.researcher, w.permit, "ehr", "encounters", CONFIG, now()).await.unwrap();
    let files = files_in(&folder);
    assert_eq!(files.len(), 1, "{files:?}");
    assert!(files[0].ends_with(format!("{}/{}.csv.sealed", w.permit, extract.sha256)), "{files:?}");
    // The same table requested again seals the same CSV: the first extract's file stays whole.
    let again = request_extract(&w.instance, w.researcher, w.permit, "ehr", "encounters", CONFIG, now()).await.unwrap();
    assert_eq!(again.sha256, extract.sha256);
    assert_eq!(files_in(&folder).len(), 1);
    decide_extract(&w.instance, w.operator, extract.id, true, None, now()).await.unwrap();
    assert!(download_extract(&w.instance, w.researcher, extract.id, now()).await.is_ok());
}

#[tokio::test(flavor = "multi_thread")]
async fn the_researchers_view_holds_no_exact_count_until_approved() {
    let w = world(Track::AnonymizedExtract).await;
    let extract = request_extract(&w.instance, w.researcher, w.permit, "ehr", "encounters", CONFIG, now()).await.unwrap();
    let row = w.instance.store.extract(extract.id).await.unwrap().unwrap();
    let roles = |id: i64| {
        let store = w.instance.store.clone();
        async move { store.active_roles(id).await.unwrap() }
    };
    let permit = w.instance.store.permit(w.permit).await.unwrap().unwrap();
    let policy: niji_review::PermitPolicy = serde_json::from_str(&permit.policy).unwrap();
    assert!(niji_extracts::sees_full_report(&row, &policy, w.operator, &roles(w.operator).await));
    assert!(!niji_extracts::sees_full_report(&row, &policy, w.researcher, &roles(w.researcher).await));
    assert!(!niji_extracts::sees_full_report(&row, &policy, w.other_researcher, &roles(w.other_researcher).await));
    // An operator who requested it does not decide it, and does not see the full report.
    assert!(!niji_extracts::sees_full_report(&row, &policy, w.researcher, &[Role::Operator, Role::Researcher]));
    // Nor does an operator named on the permit who did not request it (the checkers' conflict rule).
    let mut naming_other = policy.clone();
    naming_other.researchers.push(NamedResearcher { account_id: w.other_researcher, display_name: "共同研究者".into() });
    assert!(niji_extracts::sees_full_report(&row, &policy, w.other_researcher, &[Role::Operator, Role::Researcher]));
    assert!(!niji_extracts::sees_full_report(&row, &naming_other, w.other_researcher, &[Role::Operator, Role::Researcher]));

    let view = niji_extracts::researcher_view(&row);
    assert_eq!((view.status.as_str(), view.config.as_str()), ("awaiting_approval", CONFIG));
    assert_eq!(view.rows_rounded, niji_core::disclosure::catalog_count(extract.rows_out));
    assert_eq!(view.rows_rounded.unwrap() % 10, 0);
    assert!(view.released.is_none());

    decide_extract(&w.instance, w.operator, extract.id, true, None, now()).await.unwrap();
    let row = w.instance.store.extract(extract.id).await.unwrap().unwrap();
    let released = niji_extracts::researcher_view(&row).released.expect("approved");
    assert_eq!((released.rows, released.sha256.as_str()), (extract.rows_out, extract.sha256.as_str()));
    assert_eq!(released.k, extract.report["check"]["k"].as_u64());
    assert_eq!(released.generalization.len(), 2);
}
