//! Red-team tests of the analysis workspace, the output checkers' queue and job releases
//! (code added since 3492b39). Each test states the attack; a failing test is a finding.

mod common;
use common::*;

use axum::http::StatusCode;
use niji_accounts::{Accounts, AccountsConfig, NewAccount, TotpSetup};
use niji_applications::{create_draft, publish_defaults, set_consent_scope, submit, Actor};
use niji_core::Role;
use niji_instance::Instance;
use niji_review::*;
use niji_server::{router, AppState, ServerConfig};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use time::OffsetDateTime;

const PASSWORD: &str = "workspace-test-password";
const BY_CODE: &str = "SELECT code, count(*) AS n FROM ehr.conditions GROUP BY code";
const BY_SEX: &str = "SELECT sex, count(*) AS n FROM ehr.patients GROUP BY sex";

struct App {
    _dir: tempfile::TempDir,
    operator: i64,
    instance: Arc<Instance>,
    router: axum::Router,
    permit: i64,
    /// user name → TOTP secret
    secrets: std::collections::HashMap<&'static str, String>,
}

impl App {
    async fn sign_in(&self, name: &str) -> String {
        staff_sign_in(&self.router, name, PASSWORD, &self.secrets[name]).await
    }
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

async fn account(accounts: &Accounts, name: &str, roles: Vec<Role>) -> (i64, String) {
    let created = accounts
        .create_account(
            NewAccount {
                username: name.into(),
                display_name: name.into(),
                organization: Some(("東都大学".into(), "academia".into())),
                roles,
                password: PASSWORD.into(),
                totp: TotpSetup::EnrolNow,
            },
            "test",
            OffsetDateTime::now_utc(),
        )
        .await
        .unwrap();
    (created.user_id, created.totp.unwrap().secret_base32)
}

async fn app() -> App {
    let dir = tempfile::tempdir().unwrap();
    let synth = dir.path().join("synth");
    let mut config = niji_synth::SynthConfig::new(&synth, 300);
    config.formats = niji_synth::Formats { fhir_bundles: false, fhir_ndjson: true, uke: false, registry_csv: false };
    niji_synth::generate(&config, &mut |_| {}).unwrap();
    let instance = Arc::new(Instance::init(&dir.path().join("i"), "test").await.unwrap());
    instance.store.create_organization("hospital", "hospital", 0).await.unwrap();
    let submission = niji_intake::Submission {
        holder: "hospital".into(),
        dataset: "ehr".into(),
        description: None,
        files: files_under(&synth.join("ndjson")),
        csv_mapping: None,
        on_reject: niji_intake::OnReject::Quarantine,
        actor: "test".into(),
    };
    let options = niji_intake::IntakeOptions::new(niji_ingest::IngestConfig::new(niji_ingest::Date::new(2026, 11, 21).unwrap()));
    niji_intake::ingest(&instance, submission, &options, Arc::new(niji_intake::NoProgress)).await.unwrap();
    let accounts = Arc::new(Accounts::new(instance.store.clone(), instance.audit_sink(), instance.accounts_key(), AccountsConfig::default()));
    let mut secrets = std::collections::HashMap::new();
    let (operator, s) = account(&accounts, "operator", vec![Role::Operator]).await;
    secrets.insert("operator", s);
    // The researcher is an output checker too: the library must still refuse their sign-off.
    let (researcher, s) = account(&accounts, "researcher", vec![Role::Researcher, Role::OutputChecker]).await;
    secrets.insert("researcher", s);
    for (name, roles) in [
        ("other", vec![Role::Researcher]),
        ("checker1", vec![Role::OutputChecker]),
        ("checker2", vec![Role::OutputChecker]),
        ("citizen", vec![Role::Citizen]),
    ] {
        let (_, s) = account(&accounts, name, roles).await;
        secrets.insert(name, s);
    }
    let ops = Actor::load(&instance.store, operator).await.unwrap();
    publish_defaults(&instance, &ops).await.unwrap();
    let scope = ConsentScope {
        purposes: vec![PurposeCategory::AcademicResearch],
        diseases: vec![],
        recipient_kinds: vec![RecipientKind::Academia],
        recipients: vec![],
    };
    set_consent_scope(&instance, &ops, "ehr", &scope).await.unwrap();
    instance
        .store
        .add_accreditation(
            &niji_store::NewAccreditation {
                user_id: researcher,
                course: "研究倫理",
                completed_on: "2026-01-10",
                expires_on: "2099-01-09",
                recorded_by: "test",
            },
            0,
        )
        .await
        .unwrap();
    let variable = |table: &str, column: &str| RequestedVariable {
        dataset: "ehr".into(),
        table: table.into(),
        column: column.into(),
        justification: "集計".into(),
    };
    let form = Application {
        title: "傷病の分布".into(),
        purpose: "傷病名と性別の記述統計".into(),
        purpose_category: PurposeCategory::AcademicResearch,
        diseases: vec![],
        recipients: vec![Recipient { organization: "東都大学".into(), kind: RecipientKind::Academia, similar_regulation: true }],
        track: Track::Visiting,
        variables: vec![variable("conditions", "code"), variable("patients", "sex")],
        linkage: vec![],
        analysis_plan: "記述統計".into(),
        software: vec![Software { name: "R".into(), version: "4.4".into() }],
        duration_months: 12,
        researchers: vec![NamedResearcher { account_id: researcher, display_name: "研究者".into() }],
        genomic_data: false,
        rare_disease: false,
        expected_population: Some(50_000),
        cohort: None,
    };
    let me = Actor::load(&instance.store, researcher).await.unwrap();
    let id = create_draft(&instance, &me, &form).await.unwrap();
    let permit = submit(&instance, &me, id, niji_core::today_jst(OffsetDateTime::now_utc())).await.unwrap().permit.unwrap();
    let state = AppState::new(instance.clone(), accounts, ServerConfig::default());
    App { _dir: dir, operator, instance, router: router(state), permit, secrets }
}

async fn user_id(app: &App, name: &str) -> i64 {
    app.instance.store.user_by_username(name).await.unwrap().unwrap().id
}

/// A condition code held by fewer than 10 persons, found through the permit's own checked
/// output (the keys of suppressed rows are shown).
async fn rare_code(app: &App, researcher: i64) -> String {
    let sql = "SELECT code, count(*) AS n FROM ehr.conditions GROUP BY code HAVING count(DISTINCT person_id) < 10";
    let out = niji_analysis::query_real(&app.instance, researcher, app.permit, sql).await.expect("the rare-code query runs");
    out.rows.first().map(|(keys, _)| keys[0].clone()).expect("the synthetic data has a code of fewer than 10 persons")
}

/// Attack: a researcher who also holds the output-checker role (the fixture's own set-up, and
/// one `sign_off` explicitly anticipates) opens `/checks` and reads the per-cell verdicts of
/// their OWN job. The verdict text of a primary suppression quotes the cell's exact person count
/// ("対象者が3人で、…"), so the named researcher learns every suppressed small count.
/// Expected: the queue hides jobs the checker may not sign (submitter / named on the permit), or
/// at least never shows a suppressed cell's count to them.
#[tokio::test(flavor = "multi_thread")]
async fn named_researcher_with_checker_role_reads_exact_small_counts_of_own_job() {
    let app = app().await;
    let p = app.permit;
    let researcher = app.sign_in("researcher").await;
    let page = send_to(&app.router, get(&format!("/permits/{p}/workspace"), &researcher)).await;
    let csrf = hidden_csrf(&page.body);
    let r = send_to(
        &app.router,
        post_form(&format!("/permits/{p}/workspace/jobs"), &researcher, &[("csrf", &csrf), ("name", "by_code"), ("sql", BY_CODE)]),
    )
    .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);

    let queue = send_to(&app.router, get("/checks", &researcher)).await;
    let leaked: Vec<String> = (1..10).map(|n| format!("対象者が{n}人で")).filter(|needle| queue.body.contains(needle.as_str())).collect();
    assert!(leaked.is_empty(), "the researcher named on the permit reads suppressed counts of their own job in /checks: {leaked:?}");
}

/// Attack (differencing): two outputs whose cells differ by a handful of persons (the persons
/// with a rare code removed). With the same dimension name the job is refused ("differencing");
/// renaming the dimension with an alias (`sex AS s`) makes the differencing rule compare nothing,
/// and the job passes to the checkers with both tables: their difference isolates the persons.
#[tokio::test(flavor = "multi_thread")]
async fn differencing_is_bypassed_by_renaming_the_dimension() {
    let app = app().await;
    let researcher = user_id(&app, "researcher").await;
    let code = rare_code(&app, researcher).await;
    let all = "SELECT sex, count(*) AS n FROM ehr.patients GROUP BY sex".to_string();
    let without = |dim: &str| {
        format!(
            "SELECT sex AS {dim}, count(*) AS n FROM ehr.patients WHERE person_id NOT IN (SELECT person_id FROM ehr.conditions WHERE code = '{code}') GROUP BY sex"
        )
    };
    // Control: same dimension name → refused by differencing.
    let control =
        niji_analysis::jobs::submit_job(&app.instance, researcher, app.permit, &[("all".into(), all.clone()), ("without".into(), without("sex"))])
            .await
            .unwrap();
    assert_eq!((control.status.as_str(), control.reason.as_deref()), ("refused", Some("differencing")), "control: {control:?}");
    // Attack: the same cohorts, the dimension renamed.
    let attack = niji_analysis::jobs::submit_job(&app.instance, researcher, app.permit, &[("all".into(), all), ("without".into(), without("s"))])
        .await
        .unwrap();
    assert_eq!(
        attack.status,
        "refused",
        "renaming the dimension bypasses differencing: {:?}",
        attack.outputs.iter().map(|o| (&o.name, &o.status, &o.checked_table)).collect::<Vec<_>>()
    );
}

/// Attack: a job awaits review; the permit is revoked (key destroyed, deletion certificate);
/// the second checker approves anyway. Expected: nothing is released under a closed permit.
#[tokio::test(flavor = "multi_thread")]
async fn a_job_is_released_after_its_permit_was_revoked() {
    let app = app().await;
    let researcher = user_id(&app, "researcher").await;
    let job = niji_analysis::jobs::submit_job(&app.instance, researcher, app.permit, &[("by_sex".into(), BY_SEX.into())]).await.unwrap();
    assert_eq!(job.status, "awaiting_review", "{job:?}");
    let c1 = user_id(&app, "checker1").await;
    let c2 = user_id(&app, "checker2").await;
    niji_analysis::jobs::sign_off(&app.instance, c1, job.id, true, "approved").await.unwrap();

    let ops = Actor::load(&app.instance.store, app.operator).await.unwrap();
    niji_applications::revoke_permit(&app.instance, &ops, app.permit, "breach").await.unwrap();
    assert_eq!(app.instance.store.permit(app.permit).await.unwrap().unwrap().status, "revoked");

    let second = niji_analysis::jobs::sign_off(&app.instance, c2, job.id, true, "approved").await;
    let releases = app.instance.store.releases().await.unwrap();
    assert!(
        releases.iter().all(|r| r.job_id != job.id),
        "a release was published under a revoked permit: {second:?}, files in {:?}",
        niji_analysis::jobs::release_dir(&app.instance, releases.last().map(|r| r.id).unwrap_or(0))
    );
}
