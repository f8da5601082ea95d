//! The world of the workspace tests: 300 synthetic persons' NDJSON ingested as `ehr` by
//! `hospital`; an operator, a researcher (also an output checker, so that the library's refusal
//! of their sign-off is exercised), another researcher, two checkers and a citizen, each with a
//! TOTP secret; a Visiting-track permit on `conditions.code` and `patients.sex` issued at once
//! through the application workflow.

use super::staff_sign_in;
use niji_accounts::{Accounts, AccountsConfig, NewAccount, TotpSetup};
use niji_applications::{create_draft, publish_defaults, set_consent_scope, submit, Actor};
use niji_core::Role;
use niji_instance::Instance;
use niji_review::*;
use niji_server::{router, AppState, ServerConfig};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use time::OffsetDateTime;

pub const PASSWORD: &str = "workspace-test-password";

/// Per code, its conditions and those of women: a code's row is shown (at least 10 persons), its
/// women's count is suppressed where they (or the others) are fewer than 10, so the checkers
/// see per-cell verdicts.
pub const BY_CODE_AND_WOMEN: &str = "SELECT c.code, count(*) AS n, count(*) FILTER (WHERE p.sex = 'female') AS women \
     FROM ehr.conditions c JOIN ehr.patients p ON c.person_id = p.person_id GROUP BY c.code";

pub struct App {
    pub _dir: tempfile::TempDir,
    pub operator: i64,
    pub instance: Arc<Instance>,
    pub router: axum::Router,
    pub permit: i64,
    /// user name → TOTP secret
    pub secrets: std::collections::HashMap<&'static str, String>,
}

impl App {
    pub async fn sign_in(&self, name: &str) -> String {
        staff_sign_in(&self.router, name, PASSWORD, &self.secrets[name]).await
    }
}

pub fn files_under(dir: &Path) -> Vec<PathBuf> {
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

pub async fn account(accounts: &Accounts, name: &str, roles: Vec<Role>) -> (i64, String) {
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

pub async fn app() -> App {
    app_with(ServerConfig::default()).await
}

/// The same world served with `config` (other analysis limits, say).
pub async fn app_with(server: ServerConfig) -> App {
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
    let state = AppState::new(instance.clone(), accounts, server);
    App { _dir: dir, operator, instance, router: router(state), permit, secrets }
}

/// A condition code (ICD-10, as the lake keeps it) that fewer than 10 of the synthetic patients
/// have, read from the NDJSON the holder sent: what an attacker may know from elsewhere. The
/// platform itself no longer lists such codes (a released table leaves out rows of fewer than
/// 10 persons, keys and all).
pub fn rare_condition_code(app: &App) -> String {
    let mut persons: std::collections::BTreeMap<String, std::collections::BTreeSet<String>> = Default::default();
    for file in files_under(&app._dir.path().join("synth").join("ndjson")) {
        for line in std::fs::read_to_string(&file).unwrap().lines().filter(|l| l.contains("\"resourceType\":\"Condition\"")) {
            let v: serde_json::Value = serde_json::from_str(line).unwrap();
            let subject = v["subject"]["reference"].as_str().unwrap_or_default().to_string();
            let codings = v["code"]["coding"].as_array().cloned().unwrap_or_default();
            if let Some(icd) = codings.iter().find(|c| c["system"].as_str().is_some_and(|s| s.to_ascii_lowercase().contains("icd"))) {
                persons.entry(icd["code"].as_str().unwrap().to_string()).or_default().insert(subject);
            }
        }
    }
    persons
        .into_iter()
        .find(|(_, p)| (1..10).contains(&p.len()))
        .map(|(code, _)| code)
        .expect("the synthetic data has a code of fewer than 10 persons")
}

/// Waits until a job submitted through the server (it runs in the background) has finished
/// checking, and returns its status.
#[allow(dead_code)]
pub async fn finished_job(app: &App, job_id: i64) -> String {
    // Long enough for an output that passes its slot (answered at the limit and a grace).
    for _ in 0..4_000 {
        let job = app.instance.store.job(job_id).await.unwrap().expect("the job exists");
        if job.status != "checking" {
            return job.status;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    panic!("job {job_id} still checking after 200 s");
}
