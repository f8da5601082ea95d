//! Anonymized extracts over HTTP: a named researcher requests one through the API, an operator
//! approves it in the portal after reading its report, the researcher downloads it; others get
//! stable error codes and nothing.

mod common;
use common::*;

use axum::body::Body;
use axum::http::{header, Request, StatusCode};
use niji_accounts::{Accounts, AccountsConfig, NewAccount, TotpSetup};
use niji_applications::{create_draft, publish_defaults, set_consent_scope, submit, Actor};
use niji_core::Role;
use niji_instance::Instance;
use niji_review::*;
use niji_server::{router, AppState, ServerConfig};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use time::OffsetDateTime;

const PASSWORD: &str = "extracts-test-password";
const CONFIG: &str = "suppression_limit = 0.05\n[privacy]\nk = 5\n[[attributes]]\ncolumn = \"age\"\nrole = \"quasi-identifier\"\nhierarchy = { builtin = \"age-bands\", min = 0, max = 120, widths = [10, 20, 40], top_code = 90 }\n[[attributes]]\ncolumn = \"start\"\nrole = \"quasi-identifier\"\nhierarchy = { builtin = \"dates\", levels = [\"month\", \"quarter\", \"year\"] }\n";

struct App {
    _dir: tempfile::TempDir,
    router: axum::Router,
    permit: i64,
    researcher_token: String,
    other_token: String,
    operator_token: String,
    operator_secret: String,
    researcher_secret: String,
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

async fn account(accounts: &Accounts, name: &str, role: Role) -> (i64, String) {
    let created = accounts
        .create_account(
            NewAccount {
                username: name.into(),
                display_name: name.into(),
                organization: Some(("東都大学".into(), "academia".into())),
                roles: vec![role],
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
    let (operator, operator_secret) = account(&accounts, "operator", Role::Operator).await;
    let (researcher, researcher_secret) = account(&accounts, "researcher", Role::Researcher).await;
    let (other, _) = account(&accounts, "other", Role::Researcher).await;
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
    let variable =
        |column: &str| RequestedVariable { dataset: "ehr".into(), table: "encounters".into(), column: column.into(), justification: "受診".into() };
    let form = Application {
        title: "受診の季節変動".into(),
        purpose: "年齢階級別の受診時期".into(),
        purpose_category: PurposeCategory::AcademicResearch,
        diseases: vec![],
        recipients: vec![Recipient { organization: "東都大学".into(), kind: RecipientKind::Academia, similar_regulation: true }],
        track: Track::AnonymizedExtract,
        variables: vec![variable("age"), variable("start")],
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
    let now = OffsetDateTime::now_utc();
    let researcher_token = accounts.create_api_token(researcher, "t", "test", now).await.unwrap();
    let other_token = accounts.create_api_token(other, "t", "test", now).await.unwrap();
    let operator_token = accounts.create_api_token(operator, "t", "test", now).await.unwrap();
    let state = AppState::new(instance, accounts, ServerConfig::default());
    App { _dir: dir, router: router(state), permit, researcher_token, other_token, operator_token, operator_secret, researcher_secret }
}

fn api(method: &str, uri: &str, token: &str, body: Option<serde_json::Value>) -> Request<Body> {
    let r = Request::builder().method(method).uri(uri).header(header::AUTHORIZATION, format!("Bearer {token}"));
    match body {
        Some(b) => r.header(header::CONTENT_TYPE, "application/json").body(Body::from(b.to_string())).unwrap(),
        None => r.body(Body::empty()).unwrap(),
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_researcher_requests_an_operator_approves_and_the_researcher_downloads() {
    let app = app().await;
    let send = |req| send_to(&app.router, req);
    let body = |config: &str, table: &str| Some(serde_json::json!({"dataset": "ehr", "table": table, "config": config}));
    let path = format!("/api/v1/permits/{}/extracts", app.permit);

    for (token, b, status, code) in [
        (app.other_token.as_str(), body(CONFIG, "encounters"), StatusCode::FORBIDDEN, "forbidden"),
        (app.researcher_token.as_str(), body(CONFIG, "conditions"), StatusCode::BAD_REQUEST, "bad_request"),
        (app.researcher_token.as_str(), body(&CONFIG.replace("k = 5", "k = 1"), "encounters"), StatusCode::BAD_REQUEST, "bad_request"),
        (app.researcher_token.as_str(), Some(serde_json::json!({"dataset": "ehr"})), StatusCode::BAD_REQUEST, "bad_request"),
    ] {
        let r = send(api("POST", &path, token, b)).await;
        assert_eq!((r.status, r.json()["error"]["code"].as_str()), (status, Some(code)), "{}", r.body);
    }
    let r = send(api("POST", &path, &app.researcher_token, body(CONFIG, "encounters"))).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    let extract = r.json();
    let id = extract["id"].as_i64().unwrap();
    assert_eq!(extract["status"], "awaiting_approval");
    // The requester sees no report before approval; the operator does.
    assert!(extract.get("report").is_none() && extract["released"].is_null(), "{extract}");
    let full = send(api("GET", &format!("/api/v1/extracts/{id}"), &app.operator_token, None)).await.json();
    assert!(full["report"]["check"]["k"].as_u64().unwrap() >= 5);

    // Before approval: nothing to download; the other researcher sees nothing at all.
    let file = format!("/api/v1/extracts/{id}/file");
    assert_eq!(send(api("GET", &file, &app.researcher_token, None)).await.status, StatusCode::CONFLICT);
    assert_eq!(send(api("GET", &format!("/api/v1/extracts/{id}"), &app.other_token, None)).await.status, StatusCode::FORBIDDEN);
    // The researcher cannot approve their own extract.
    let decision = api("POST", &format!("/api/v1/extracts/{id}/decision"), &app.researcher_token, Some(serde_json::json!({"approve": true})));
    assert_eq!(send(decision).await.status, StatusCode::FORBIDDEN);

    // The operator reads the report in the portal and approves.
    let operator = staff_sign_in(&app.router, "operator", PASSWORD, &app.operator_secret).await;
    let list = send(get("/extracts", &operator)).await;
    assert!(list.body.contains(&format!("href=\"/extracts/{id}\"")) && list.body.contains("承認待ち"), "{}", list.body);
    let page = send(get(&format!("/extracts/{id}"), &operator)).await;
    assert!(page.body.contains("id=\"approve\"") && page.body.contains("id=\"k\"") && !page.body.contains("id=\"download\""));
    let r = send(post_form(&format!("/extracts/{id}/decision"), &operator, &[("csrf", "forged"), ("verdict", "approve")])).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    let r = send(post_form(&format!("/extracts/{id}/decision"), &operator, &[("csrf", &hidden_csrf(&page.body)), ("verdict", "approve")])).await;
    assert_eq!((r.status, r.location()), (StatusCode::SEE_OTHER, format!("/extracts/{id}").as_str()));
    assert!(send(get(&format!("/extracts/{id}"), &operator)).await.body.contains("承認済み"));
    // The operator is not a recipient.
    assert_eq!(send(get(&format!("/extracts/{id}/file"), &operator)).await.status, StatusCode::FORBIDDEN);

    let r = send(api("GET", &file, &app.researcher_token, None)).await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(r.headers[header::CONTENT_TYPE].to_str().unwrap().starts_with("text/csv"));
    let header_line = r.body.trim_start_matches('\u{feff}').lines().next().unwrap().to_string();
    assert!(!header_line.contains("person"), "{header_line}");
    assert_eq!(r.body.lines().count() as i64 - 1, full["rows"].as_i64().unwrap());
    assert_eq!(send(api("GET", &file, &app.other_token, None)).await.status, StatusCode::FORBIDDEN);
    // Once approved, the researcher sees the released table's figures (no input counts).
    let seen = send(api("GET", &format!("/api/v1/extracts/{id}"), &app.researcher_token, None)).await;
    let released = &seen.json()["released"];
    assert_eq!(released["rows"], full["rows"]);
    assert_eq!(released["k"], full["report"]["check"]["k"]);
    assert_eq!(released["sha256"], full["sha256"]);
    assert!(!seen.body.contains("records_in") && !seen.body.contains("suppressed_records") && !seen.body.contains("risk_before"), "{}", seen.body);
}

/// The exact figures of an extract's full report (as the operator's API gives them), by the
/// name each has in it.
fn exact_counts(full: &serde_json::Value) -> Vec<(&'static str, u64)> {
    let report = &full["report"];
    vec![
        ("rows", full["rows"].as_u64().unwrap()),
        ("records_in", report["records_in"].as_u64().unwrap()),
        ("records_out", report["records_out"].as_u64().unwrap()),
        ("suppressed_records", report["suppressed_records"].as_u64().unwrap()),
        ("released_classes", report["released_classes"].as_u64().unwrap()),
        ("k", report["check"]["k"].as_u64().unwrap()),
        ("classes", report["check"]["classes"].as_u64().unwrap()),
    ]
}

/// Whether the raw JSON holds `"name":value` anywhere.
fn holds(body: &str, name: &str, value: u64) -> bool {
    body.contains(&format!("\"{name}\":{value}"))
}

/// The operator's API gives extract `id`'s exact counts; the researcher's API, portal page and
/// list give none of them (only the status, the configuration and rounded rows).
async fn researcher_sees_no_exact_count(app: &App, researcher: &str, id: i64, status: &str) {
    let send = |req| send_to(&app.router, req);
    let full = send(api("GET", &format!("/api/v1/extracts/{id}"), &app.operator_token, None)).await;
    assert_eq!(full.status, StatusCode::OK);
    let exact = exact_counts(&full.json());
    for (name, value) in &exact {
        assert!(holds(&full.body, name, *value), "the operator sees {name}: {}", full.body);
    }
    assert!(full.body.contains("risk_before"));

    let seen = send(api("GET", &format!("/api/v1/extracts/{id}"), &app.researcher_token, None)).await;
    assert_eq!(seen.status, StatusCode::OK);
    for (name, value) in &exact {
        assert!(!holds(&seen.body, name, *value), "{name} = {value} reached the researcher: {}", seen.body);
    }
    for name in ["report", "records_in", "records_out", "suppressed_records", "risk_before", "risk_after", "generalization", "sha256"] {
        assert!(!seen.body.contains(&format!("\"{name}\"")), "{name} reached the researcher: {}", seen.body);
    }
    let body = seen.json();
    assert_eq!(body["status"], status);
    assert_eq!(body["config"], CONFIG);
    let rows = exact[0].1;
    assert_eq!(body["rows_rounded"].as_u64(), niji_core::disclosure::catalog_count(rows));
    assert!(body["released"].is_null());

    // The portal: no report, and the rows only rounded.
    let page = send(get(&format!("/extracts/{id}"), researcher)).await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(page.body.contains("id=\"report-withheld\"") && !page.body.contains("id=\"k\""), "{}", page.body);
    assert!(!page.body.contains(&format!("<dd>{rows}</dd>")) && !page.body.contains(&full.json()["sha256"].as_str().unwrap().to_string()));
    let list = send(get("/extracts", researcher)).await;
    assert!(list.body.contains(&format!("href=\"/extracts/{id}\"")), "{}", list.body);
    assert!(!list.body.contains(&format!("<td class=\"count\">{rows}</td>")), "{}", list.body);
}

#[tokio::test(flavor = "multi_thread")]
async fn the_researcher_sees_no_exact_count_before_approval_or_after_rejection() {
    let app = app().await;
    let send = |req| send_to(&app.router, req);
    let path = format!("/api/v1/permits/{}/extracts", app.permit);
    let request = serde_json::json!({"dataset": "ehr", "table": "encounters", "config": CONFIG});
    let researcher = staff_sign_in(&app.router, "researcher", PASSWORD, &app.researcher_secret).await;

    let pending = send(api("POST", &path, &app.researcher_token, Some(request.clone()))).await;
    assert_eq!(pending.status, StatusCode::CREATED, "{}", pending.body);
    let pending_id = pending.json()["id"].as_i64().unwrap();
    researcher_sees_no_exact_count(&app, &researcher, pending_id, "awaiting_approval").await;
    let full = send(api("GET", &format!("/api/v1/extracts/{pending_id}"), &app.operator_token, None)).await;
    for (name, value) in exact_counts(&full.json()) {
        assert!(!holds(&pending.body, name, value), "{name} = {value} reached the requester: {}", pending.body);
    }

    let rejected = send(api("POST", &path, &app.researcher_token, Some(request))).await.json()["id"].as_i64().unwrap();
    let decision = serde_json::json!({"approve": false, "reason": "risk_too_high"});
    let r = send(api("POST", &format!("/api/v1/extracts/{rejected}/decision"), &app.operator_token, Some(decision))).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert!(r.json()["report"]["records_in"].is_u64(), "the deciding operator sees the full report: {}", r.body);
    researcher_sees_no_exact_count(&app, &researcher, rejected, "rejected").await;
}
