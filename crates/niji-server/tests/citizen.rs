//! The citizen portal over HTTP (in-process, through the real router, store, vault and log):
//! sign-in with an access code and birth date, the citizen's page, choices — and access control
//! on every citizen endpoint.

mod common;
use common::*;

use axum::body::Body;
use axum::http::{header, Request, StatusCode};
use niji_accounts::{Accounts, AccountsConfig, NewAccount, TotpSetup};
use niji_core::Role;
use niji_instance::Instance;
use niji_registry::{ActingAs, HolderActor};
use niji_server::{router, AppState, ServerConfig};
use std::sync::Arc;
use time::OffsetDateTime;

const PASSWORD: &str = "http-test-password-1";
const HOLDER: &str = "テスト病院";
const PATIENTS: &str = r#"{"resourceType":"Patient","id":"a","identifier":[{"system":"urn:oid:1.2.392.100495.20.3.51.11234567890","value":"1001"}],"name":[{"text":"山田 太郎"}],"gender":"male","birthDate":"1980-04-01"}
{"resourceType":"Patient","id":"b","identifier":[{"system":"urn:oid:1.2.392.100495.20.3.51.11234567890","value":"1002"}],"name":[{"text":"佐藤 花子"}],"gender":"female","birthDate":"1975-11-30"}
"#;

struct App {
    _dir: tempfile::TempDir,
    router: axum::Router,
    instance: Arc<Instance>,
    accounts: Arc<Accounts>,
    staff_secret: String,
    a_code: String,
    b_code: String,
}

async fn app() -> App {
    let dir = tempfile::tempdir().unwrap();
    let instance = Arc::new(Instance::init(&dir.path().join("i"), "cli:test").await.unwrap());
    let accounts = Arc::new(Accounts::new(instance.store.clone(), instance.audit_sink(), instance.accounts_key(), AccountsConfig::default()));
    let now = OffsetDateTime::now_utc();
    let staff = accounts
        .create_account(
            NewAccount {
                username: "suzuki".into(),
                display_name: "鈴木 一郎".into(),
                organization: Some(("東都大学".into(), "academia".into())),
                roles: vec![Role::Researcher],
                password: PASSWORD.into(),
                totp: TotpSetup::EnrolNow,
            },
            "cli:test",
            now,
        )
        .await
        .unwrap();
    instance.store.create_organization(HOLDER, "hospital", 0).await.unwrap();
    let export = dir.path().join("Patient.ndjson");
    std::fs::write(&export, PATIENTS).unwrap();
    let submission = niji_intake::Submission {
        holder: HOLDER.into(),
        dataset: "test-ehr".into(),
        description: None,
        files: vec![export],
        csv_mapping: None,
        on_reject: niji_intake::OnReject::RefuseSubmission,
        actor: "cli:test".into(),
    };
    let options = niji_intake::IntakeOptions::new(niji_ingest::IngestConfig::new(niji_ingest::Date::new(2026, 11, 21).unwrap()));
    assert!(matches!(
        niji_intake::ingest(&instance, submission, &options, Arc::new(niji_intake::NoProgress)).await.unwrap(),
        niji_intake::Outcome::Committed(_)
    ));
    let holder = HolderActor { holder: HOLDER.into(), audit: "cli:test".into() };
    let a = niji_registry::issue_credential(&instance, &accounts, &holder, "1001", ActingAs::Person, now).await.unwrap();
    let b = niji_registry::issue_credential(&instance, &accounts, &holder, "1002", ActingAs::Person, now).await.unwrap();
    let state = AppState::new(instance.clone(), accounts.clone(), ServerConfig::default());
    App {
        _dir: dir,
        router: router(state),
        instance,
        accounts,
        staff_secret: staff.totp.unwrap().secret_base32,
        a_code: a.access_code,
        b_code: b.access_code,
    }
}

async fn send(app: &App, req: Request<Body>) -> Reply {
    send_to(&app.router, req).await
}

async fn citizen_login(app: &App, code: &str, birth: &str) -> Reply {
    let page = send(app, get("/citizen/login", "")).await;
    assert_eq!(page.status, StatusCode::OK);
    let csrf = page.cookie("niji_login_csrf").unwrap();
    send(app, post_form("/citizen/login", &format!("niji_login_csrf={csrf}"), &[("csrf", &csrf), ("access_code", code), ("birth_date", birth)])).await
}

async fn signed_in(app: &App, code: &str, birth: &str) -> String {
    let r = citizen_login(app, code, birth).await;
    assert_eq!((r.status, r.location()), (StatusCode::SEE_OTHER, "/citizen"), "{}", r.body);
    format!("niji_session={}", r.cookie("niji_session").unwrap())
}

async fn staff_session(app: &App) -> String {
    session_of(app, "suzuki", &app.staff_secret).await
}

async fn session_of(app: &App, username: &str, secret: &str) -> String {
    staff_sign_in(&app.router, username, PASSWORD, secret).await
}

/// The registry's version: changes exactly when an entry is recorded.
async fn registry_version(app: &App) -> i64 {
    let use_ = niji_consent::Use {
        purpose: niji_review::PurposeCategory::AcademicResearch,
        recipients: vec![],
        diseases: vec![],
        at: OffsetDateTime::now_utc(),
    };
    niji_registry::exclusions(&app.instance, &use_).await.unwrap().1
}

#[tokio::test(flavor = "multi_thread")]
async fn a_citizen_signs_in_sees_their_page_and_changes_a_choice() {
    let app = app().await;
    // Wrong birth date or code: refused, no session.
    for (code, birth) in [(app.a_code.as_str(), "1980-04-02"), ("AAAA-BBBB-CCCC-DDDD-EEEE", "1980-04-01"), (app.a_code.as_str(), "")] {
        let r = citizen_login(&app, code, birth).await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{code} {birth}");
        assert!(r.cookie("niji_session").is_none());
        assert!(r.body.contains("アクセスコードまたは生年月日が正しくありません"));
    }
    let a = signed_in(&app, &app.a_code, "1980-04-01").await;
    let page = send(&app, get("/citizen", &a)).await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(page.body.contains("わたしのデータ") && page.body.contains("id=\"no-choice\"") && page.body.contains("id=\"no-uses\""));
    let en = send(&app, get("/citizen", &format!("{a}; niji_lang=en"))).await;
    assert!(en.body.contains("My data") && en.body.contains("Stop every use"));

    let csrf = hidden_csrf(&page.body);
    let r =
        send(&app, post_form("/citizen/choices", &a, &[("csrf", &csrf), ("action", "opt_out_purpose"), ("purpose", "drug_and_device_development")]))
            .await;
    assert_eq!((r.status, r.location()), (StatusCode::SEE_OTHER, "/citizen?saved=1"));
    let page = send(&app, get("/citizen?saved=1", &a)).await;
    assert!(page.body.contains("id=\"saved\"") && page.body.contains("この目的の利用を停止: 創薬"), "{}", page.body);
    // A consent with a scope, then its withdrawal.
    let r = send(
        &app,
        post_form(
            "/citizen/choices",
            &a,
            &[
                ("csrf", &csrf),
                ("action", "consent"),
                ("purposes", "academic_research"),
                ("recipients", "academia"),
                ("recipients", "hospital"),
                ("diseases", "E11, c50"),
            ],
        ),
    )
    .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    let page = send(&app, get("/citizen", &a)).await;
    assert!(page.body.contains("id=\"withdraw-consent\"") && page.body.contains("E11, C50"), "{}", page.body);
    // A bad disease code is refused with a message, and nothing is recorded.
    let version = registry_version(&app).await;
    let r = send(
        &app,
        post_form(
            "/citizen/choices",
            &a,
            &[("csrf", &csrf), ("action", "consent"), ("purposes", "academic_research"), ("recipients", "academia"), ("diseases", "diabetes")],
        ),
    )
    .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(!r.body.contains("diabetes"), "input is not echoed in the message");
    assert_eq!(registry_version(&app).await, version);
}

#[tokio::test(flavor = "multi_thread")]
async fn every_citizen_endpoint_acts_only_for_the_signed_in_citizen() {
    let app = app().await;
    let a = signed_in(&app, &app.a_code, "1980-04-01").await;
    let b = signed_in(&app, &app.b_code, "1975-11-30").await;
    let b_page = send(&app, get("/citizen", &b)).await;
    let b_csrf = hidden_csrf(&b_page.body);
    let r = send(&app, post_form("/citizen/choices", &b, &[("csrf", &b_csrf), ("action", "opt_out_all")])).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    let b_page = send(&app, get("/citizen", &b)).await;
    let b_entry = b_page.body.split("id=\"withdraw-").nth(1).unwrap().split('"').next().unwrap().to_string();

    // A sees none of B's choices, and cannot withdraw B's entry.
    let a_page = send(&app, get("/citizen", &a)).await;
    assert!(a_page.body.contains("id=\"no-choice\"") && !a_page.body.contains("withdraw-"));
    let version = registry_version(&app).await;
    let a_csrf = hidden_csrf(&a_page.body);
    let r = send(&app, post_form("/citizen/choices", &a, &[("csrf", &a_csrf), ("action", "withdraw"), ("entry", &b_entry)])).await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(registry_version(&app).await, version);
    assert!(send(&app, get("/citizen", &b)).await.body.contains(&format!("id=\"withdraw-{b_entry}\"")), "B's opt-out still stands");
    // A's session with B's form token (or none) records nothing.
    for csrf in [b_csrf.as_str(), ""] {
        let r = send(&app, post_form("/citizen/choices", &a, &[("csrf", csrf), ("action", "opt_out_all")])).await;
        assert_eq!(r.status, StatusCode::FORBIDDEN);
    }
    assert_eq!(registry_version(&app).await, version);

    // Without a session: the sign-in page; a staff session: forbidden. Nothing recorded.
    let staff = staff_session(&app).await;
    for cookies in ["", staff.as_str(), "niji_session=forged"] {
        let page = send(&app, get("/citizen", cookies)).await;
        let post = send(&app, post_form("/citizen/choices", cookies, &[("csrf", ""), ("action", "opt_out_all")])).await;
        for r in [&page, &post] {
            if cookies == staff {
                assert_eq!(r.status, StatusCode::FORBIDDEN);
            } else {
                assert_eq!((r.status, r.location()), (StatusCode::SEE_OTHER, "/citizen/login"));
            }
            assert!(!r.body.contains("佐藤") && !r.body.contains("1975"));
        }
    }
    assert_eq!(registry_version(&app).await, version);
    // A citizen reaches no staff page.
    for path in ["/applications", "/permits", "/review/queue", "/datasets/upload", "/admin/users"] {
        let r = send(&app, get(path, &a)).await;
        assert!(matches!(r.status, StatusCode::FORBIDDEN | StatusCode::SEE_OTHER | StatusCode::NOT_FOUND), "{path}: {}", r.status);
        assert!(!r.body.contains("suzuki"), "{path}");
    }
}

/// An account with a role and an organization, and an API token for it.
async fn token_for(app: &App, username: &str, role: Role, organization: &str) -> String {
    let created = app
        .accounts
        .create_account(
            NewAccount {
                username: username.into(),
                display_name: username.into(),
                organization: Some((organization.into(), "hospital".into())),
                roles: vec![role],
                password: PASSWORD.into(),
                totp: TotpSetup::EnrolNow,
            },
            "cli:test",
            OffsetDateTime::now_utc(),
        )
        .await
        .unwrap();
    app.accounts.create_api_token(created.user_id, "test", "cli:test", OffsetDateTime::now_utc()).await.unwrap()
}

fn api(method: &str, uri: &str, token: &str, content_type: &str, body: String) -> Request<Body> {
    let mut r = Request::builder().method(method).uri(uri).header(header::CONTENT_TYPE, content_type);
    if !token.is_empty() {
        r = r.header(header::AUTHORIZATION, format!("Bearer {token}"));
    }
    r.body(Body::from(body)).unwrap()
}

fn json(r: &Reply) -> serde_json::Value {
    serde_json::from_str(&r.body).unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_holder_issues_codes_records_paper_choices_and_imports_lists_through_the_api() {
    let app = app().await;
    let holder = token_for(&app, "holder", Role::DataHolder, HOLDER).await;
    let other_holder = token_for(&app, "other", Role::DataHolder, "別の病院").await;
    let researcher = token_for(&app, "researcher", Role::Researcher, HOLDER).await;
    let issue = |token: &str, body: &str| api("POST", "/api/v1/registry/credentials", token, "application/json", body.to_string());

    let r = send(&app, issue(&holder, r#"{"patient_id": "1001"}"#)).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    let code = json(&r)["access_code"].as_str().unwrap().to_string();
    assert_eq!(json(&r)["acting_as"], "self");
    signed_in(&app, &code, "1980-04-01").await;
    for (token, body, status, error) in [
        ("", r#"{"patient_id": "1001"}"#, StatusCode::UNAUTHORIZED, "unauthorized"),
        (researcher.as_str(), r#"{"patient_id": "1001"}"#, StatusCode::FORBIDDEN, "forbidden"),
        (other_holder.as_str(), r#"{"patient_id": "1001"}"#, StatusCode::NOT_FOUND, "not_found"),
        (holder.as_str(), r#"{"patient_id": "9999"}"#, StatusCode::NOT_FOUND, "not_found"),
        (holder.as_str(), r#"{"patient_id": "1001", "acting_as": "parent"}"#, StatusCode::CONFLICT, "conflict"),
        (holder.as_str(), r#"{"patient_id": "1001", "acting_as": "cousin"}"#, StatusCode::BAD_REQUEST, "bad_request"),
        (holder.as_str(), r#"{"patient": 1001}"#, StatusCode::BAD_REQUEST, "bad_request"),
    ] {
        let r = send(&app, issue(token, body)).await;
        assert_eq!(r.status, status, "{body}: {}", r.body);
        assert_eq!(json(&r)["error"]["code"], error);
        assert!(!r.body.contains("1001") && !r.body.contains("cousin"), "nothing echoed: {}", r.body);
    }

    // A paper opt-out, then a list; a bad list changes nothing and names its lines.
    let version = registry_version(&app).await;
    let record = |token: &str, body: &str| api("POST", "/api/v1/registry/choices", token, "application/json", body.to_string());
    let r = send(&app, record(&holder, r#"{"patient_id": "1002", "opt_out": "recipient:company"}"#)).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    let entry = json(&r)["entry"].as_i64().unwrap();
    assert!(entry > version);
    for (body, status) in [
        (r#"{"patient_id": "1002", "opt_out": "sometimes"}"#, StatusCode::BAD_REQUEST),
        (r#"{"patient_id": "1002", "opt_out": "all", "withdraw": 1}"#, StatusCode::BAD_REQUEST),
        (r#"{"patient_id": "1001", "withdraw": 999}"#, StatusCode::CONFLICT),
    ] {
        assert_eq!(send(&app, record(&holder, body)).await.status, status, "{body}");
    }
    assert_eq!(send(&app, record(&other_holder, &format!(r#"{{"patient_id": "1002", "withdraw": {entry}}}"#))).await.status, StatusCode::NOT_FOUND);
    let version = registry_version(&app).await;
    let bad = "patient_id,choice,scope,date\n1001,notice,,2026-04-01\n1002,opt_out,all,\n1003,opt_out,all,\n1001,opt_out,never,\n";
    let r = send(&app, api("POST", "/api/v1/registry/import", &holder, "text/csv", bad.into())).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    let problems: Vec<(u64, String)> =
        json(&r)["problems"].as_array().unwrap().iter().map(|p| (p["line"].as_u64().unwrap(), p["field"].as_str().unwrap().to_string())).collect();
    assert_eq!(problems, [(5, "scope".to_string())]);
    assert_eq!(registry_version(&app).await, version, "a refused list writes nothing");
    let unknown = "patient_id,choice,scope,date\n1001,notice,,2026-04-01\n1003,opt_out,all,\n";
    let r = send(&app, api("POST", "/api/v1/registry/import", &holder, "text/csv", unknown.into())).await;
    assert_eq!(json(&r)["problems"][0]["line"], 3);
    assert_eq!(registry_version(&app).await, version);
    let good = "patient_id,choice,scope,date\n1001,notice,,2026-04-01\n1002,notice,,2026-04-01\n";
    let r = send(&app, api("POST", "/api/v1/registry/import", &holder, "text/csv", good.into())).await;
    assert_eq!((r.status, json(&r)["imported"].as_u64()), (StatusCode::OK, Some(2)), "{}", r.body);
    assert_eq!(send(&app, api("POST", "/api/v1/registry/import", &researcher, "text/csv", good.into())).await.status, StatusCode::FORBIDDEN);

    // The patient sees the holder's paper choice and the notice on their page.
    let b = signed_in(&app, &app.b_code, "1975-11-30").await;
    let page = send(&app, get("/citizen", &b)).await;
    assert!(
        page.body.contains("医療機関等（書面）") && page.body.contains("2026-04-01") && page.body.contains(&format!("id=\"withdraw-{entry}\"")),
        "{}",
        page.body
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_holder_uses_the_registry_page_and_others_cannot() {
    let app = app().await;
    let created = app
        .accounts
        .create_account(
            NewAccount {
                username: "holder.staff".into(),
                display_name: "受付".into(),
                organization: Some((HOLDER.into(), "hospital".into())),
                roles: vec![Role::DataHolder],
                password: PASSWORD.into(),
                totp: TotpSetup::EnrolNow,
            },
            "cli:test",
            OffsetDateTime::now_utc(),
        )
        .await
        .unwrap();
    let holder = session_of(&app, "holder.staff", &created.totp.unwrap().secret_base32).await;
    let page = send(&app, get("/registry", &holder)).await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(page.body.contains(HOLDER) && page.body.contains("id=\"nav-holder-registry\""));
    let csrf = hidden_csrf(&page.body);
    let r = send(&app, post_form("/registry/credentials", &holder, &[("csrf", &csrf), ("patient_id", "1002"), ("acting_as", "self")])).await;
    assert_eq!(r.status, StatusCode::OK);
    let code = r.body.split("id=\"access-code\">").nth(1).unwrap().split('<').next().unwrap().to_string();
    signed_in(&app, &code, "1975-11-30").await;
    let r = send(&app, post_form("/registry/credentials", &holder, &[("csrf", "wrong"), ("patient_id", "1002"), ("acting_as", "self")])).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    assert!(!r.body.contains("id=\"access-code\""));

    // A list with a bad line: the page names the line, nothing is imported.
    let version = registry_version(&app).await;
    let boundary = "XBOUNDARYX";
    let body = format!(
        "--{boundary}\r\nContent-Disposition: form-data; name=\"csrf\"\r\n\r\n{csrf}\r\n--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"list.csv\"\r\nContent-Type: text/csv\r\n\r\npatient_id,choice,scope,date\n1001,opt_out,all,\n1002,opt_out,all,yesterday\n\r\n--{boundary}--\r\n"
    );
    let req = Request::post("/registry/import")
        .header(header::COOKIE, &holder)
        .header(header::CONTENT_TYPE, format!("multipart/form-data; boundary={boundary}"))
        .body(Body::from(body.clone()))
        .unwrap();
    let r = send(&app, req).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert!(r.body.contains("id=\"problems\"") && r.body.contains("<td>3</td><td>date</td>"), "{}", r.body);
    assert!(!r.body.contains("yesterday"));
    assert_eq!(registry_version(&app).await, version);

    // Researchers, citizens and visitors without a session have no registry page.
    let staff = staff_session(&app).await;
    let citizen = signed_in(&app, &app.a_code, "1980-04-01").await;
    for cookies in [staff.as_str(), citizen.as_str()] {
        assert_eq!(send(&app, get("/registry", cookies)).await.status, StatusCode::FORBIDDEN);
        let r = send(&app, post_form("/registry/choices", cookies, &[("csrf", ""), ("patient_id", "1001"), ("opt_out", "all")])).await;
        assert_eq!(r.status, StatusCode::FORBIDDEN);
    }
    assert_eq!(send(&app, get("/registry", "")).await.location(), "/login");
    assert_eq!(registry_version(&app).await, version);
}
