//! The API and portal over HTTP (in-process, through the real router, store and log).

mod common;
use common::*;

use axum::body::Body;
use axum::http::{header, Request, StatusCode};
use http_body_util::BodyExt;
use niji_accounts::{totp_code, Accounts, AccountsConfig, NewAccount, TotpSetup};
use niji_core::Role;
use niji_instance::Instance;
use niji_server::{router, AppState, ServerConfig};
use std::sync::Arc;
use time::OffsetDateTime;
use tower::ServiceExt;

const PASSWORD: &str = "http-test-password-1";

struct App {
    _dir: tempfile::TempDir,
    router: axum::Router,
    accounts: Arc<Accounts>,
    instance: Arc<Instance>,
    secret: String,
}

async fn app() -> App {
    let dir = tempfile::tempdir().unwrap();
    let instance = Arc::new(Instance::init(dir.path(), "cli:test").await.unwrap());
    let accounts = Arc::new(Accounts::new(instance.store.clone(), instance.audit_sink(), instance.accounts_key(), AccountsConfig::default()));
    let created = accounts
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
            OffsetDateTime::now_utc(),
        )
        .await
        .unwrap();
    let state = AppState::new(instance.clone(), accounts.clone(), ServerConfig::default());
    App { _dir: dir, router: router(state), accounts, instance, secret: created.totp.unwrap().secret_base32 }
}

async fn send(app: &App, req: Request<Body>) -> Reply {
    send_to(&app.router, req).await
}

/// Signs in the test researcher through the portal and returns the session cookie.
async fn sign_in(app: &App) -> String {
    sign_in_as(app, "suzuki", &app.secret).await
}

async fn sign_in_as(app: &App, username: &str, secret: &str) -> String {
    staff_sign_in(&app.router, username, PASSWORD, secret).await
}

#[tokio::test(flavor = "multi_thread")]
async fn health_and_openapi_describe_the_api() {
    let app = app().await;
    let r = send(&app, get("/api/v1/health", "")).await;
    assert_eq!(r.status, StatusCode::OK);
    insta::assert_json_snapshot!("health", r.json(), {".log_size" => "[size]"});
    let doc = send(&app, get("/api/v1/openapi.json", "")).await.json();
    let paths: Vec<&String> = doc["paths"].as_object().unwrap().keys().collect();
    insta::assert_json_snapshot!("openapi_paths", paths);
    assert!(doc["openapi"].as_str().unwrap().starts_with("3."));
}

#[tokio::test(flavor = "multi_thread")]
async fn api_errors_are_stable_codes() {
    let app = app().await;
    let r = send(&app, get("/api/v1/me", "")).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    insta::assert_json_snapshot!("error_unauthorized", r.json());
    let r = send(&app, Request::get("/api/v1/me").header(header::AUTHORIZATION, "Bearer niji_nope").body(Body::empty()).unwrap()).await;
    assert_eq!(r.json()["error"]["code"], "unauthorized");
    let r = send(&app, get("/api/v1/log/proof/99", "")).await;
    assert_eq!((r.status, r.json()["error"]["code"].as_str()), (StatusCode::BAD_REQUEST, Some("bad_request")));
    let r = send(&app, get("/api/v1/log/proof/abc", "")).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert!(!r.body.contains("abc"), "input echoed: {}", r.body);
    let r = send(&app, get("/api/v1/nothing-here", "")).await;
    assert_eq!(r.json()["error"]["code"], "not_found");
}

#[tokio::test(flavor = "multi_thread")]
async fn an_api_token_identifies_its_account() {
    let app = app().await;
    let user = app.accounts.user_by_username("suzuki").await.unwrap();
    let token = app.accounts.create_api_token(user.id, "test", "cli:test", OffsetDateTime::now_utc()).await.unwrap();
    let r = send(&app, Request::get("/api/v1/me").header(header::AUTHORIZATION, format!("Bearer {token}")).body(Body::empty()).unwrap()).await;
    assert_eq!(r.status, StatusCode::OK);
    insta::assert_json_snapshot!("me", r.json(), {".id" => "[id]"});
}

#[tokio::test(flavor = "multi_thread")]
async fn served_proofs_verify_against_the_signed_head() {
    let app = app().await;
    let head = send(&app, get("/api/v1/log/head", "")).await.json();
    let size = head["tree_size"].as_u64().unwrap();
    assert!(size >= 2);
    let key = ed25519_dalek_key(&head["public_key"]);
    let msg = hex(&head["signed_message"]);
    assert_eq!(&msg[18..], hex(&head["root_hash"]).as_slice());
    use niji_instance::ed25519_dalek::Verifier;
    key.verify(&msg, &niji_instance::ed25519_dalek::Signature::from_slice(&hex(&head["signature"])).unwrap()).unwrap();
    for index in 0..size {
        let p = send(&app, get(&format!("/api/v1/log/proof/{index}"), "")).await.json();
        let leaf = niji_log::leaf_hash(&app.instance.log().entry(index).unwrap());
        assert_eq!(hex(&p["leaf_hash"]), leaf.to_vec());
        let path: Vec<[u8; 32]> = p["audit_path"].as_array().unwrap().iter().map(|h| hex(h).try_into().unwrap()).collect();
        let root: [u8; 32] = hex(&p["root_hash"]).try_into().unwrap();
        assert_eq!(root.to_vec(), hex(&head["root_hash"]));
        assert!(niji_log::verify_inclusion(&leaf, index, size, &path, &root));
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn consistency_proofs_link_an_old_head_to_the_new_one() {
    let app = app().await;
    let old = send(&app, get("/api/v1/log/head", "")).await.json();
    let user = app.accounts.user_by_username("suzuki").await.unwrap();
    for i in 0..5 {
        app.accounts.create_api_token(user.id, &format!("t{i}"), "cli:test", OffsetDateTime::now_utc()).await.unwrap();
    }
    let new = send(&app, get("/api/v1/log/head", "")).await.json();
    let (m, n) = (old["tree_size"].as_u64().unwrap(), new["tree_size"].as_u64().unwrap());
    assert_eq!(n, m + 5);
    let p = send(&app, get(&format!("/api/v1/log/consistency?first={m}"), "")).await.json();
    assert_eq!(p["second"].as_u64(), Some(n));
    let path: Vec<[u8; 32]> = p["consistency_path"].as_array().unwrap().iter().map(|h| hex(h).try_into().unwrap()).collect();
    let (old_root, new_root): ([u8; 32], [u8; 32]) = (hex(&old["root_hash"]).try_into().unwrap(), hex(&new["root_hash"]).try_into().unwrap());
    assert!(niji_log::verify_consistency(m, n, &old_root, &new_root, &path));
    let r = send(&app, get(&format!("/api/v1/log/consistency?first={}", n + 1), "")).await;
    assert_eq!(r.json()["error"]["code"], "bad_request");
    let r = send(&app, get("/api/v1/log/consistency?first=x", "")).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
}

fn hex(v: &serde_json::Value) -> Vec<u8> {
    ::hex::decode(v.as_str().unwrap()).unwrap()
}

fn ed25519_dalek_key(v: &serde_json::Value) -> niji_instance::ed25519_dalek::VerifyingKey {
    niji_instance::ed25519_dalek::VerifyingKey::from_bytes(&hex(v).try_into().unwrap()).unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn portal_login_needs_csrf_password_and_totp_and_logout_needs_csrf() {
    let app = app().await;
    // No CSRF cookie: refused before the password is even looked at.
    let r = send(&app, post_form("/login", "", &[("csrf", "x"), ("username", "suzuki"), ("password", PASSWORD)])).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    assert!(r.cookie("niji_session").is_none());

    let page = send(&app, get("/login", "")).await;
    assert!(page.body.contains("<html lang=\"ja\">") && page.body.contains("パスワード"));
    let c = page.cookie("niji_login_csrf").unwrap();
    let r = send(
        &app,
        post_form("/login", &format!("niji_login_csrf={c}"), &[("csrf", &c), ("username", "<script>alert(1)</script>"), ("password", "nope")]),
    )
    .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    assert!(r.body.contains("ユーザー名またはパスワードが正しくありません"));
    assert!(!r.body.contains("<script>alert"), "username must be escaped");
    assert!(r.cookie("niji_session").is_none());

    // A session that has only passed the password cannot see the account page.
    let c = send(&app, get("/login", "")).await.cookie("niji_login_csrf").unwrap();
    let r = send(&app, post_form("/login", &format!("niji_login_csrf={c}"), &[("csrf", &c), ("username", "suzuki"), ("password", PASSWORD)])).await;
    let pending = format!("niji_session={}", r.cookie("niji_session").unwrap());
    let r = send(&app, get("/account", &pending)).await;
    assert_eq!((r.status, r.location()), (StatusCode::SEE_OTHER, "/login"));
    let csrf = hidden_csrf(&send(&app, get("/login/totp", &pending)).await.body);
    let r = send(&app, post_form("/login/totp", &pending, &[("csrf", &csrf), ("code", "000000")])).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    assert!(r.body.contains("確認コードが正しくない"));

    let session = sign_in(&app).await;
    let account = send(&app, get("/account", &session)).await;
    assert_eq!(account.status, StatusCode::OK);
    assert!(account.body.contains("suzuki") && account.body.contains("利活用者（研究者）") && account.body.contains("東都大学"));
    let en = send(&app, get("/account", &format!("{session}; niji_lang=en"))).await;
    assert!(en.body.contains("<html lang=\"en\">") && en.body.contains("Researcher"));

    let csrf = hidden_csrf(&account.body);
    let r = send(&app, post_form("/logout", &session, &[("csrf", "forged")])).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    assert_eq!(send(&app, get("/account", &session)).await.status, StatusCode::OK, "a forged logout must not end the session");
    let r = send(&app, post_form("/logout", &session, &[("csrf", &csrf)])).await;
    assert_eq!((r.status, r.location()), (StatusCode::SEE_OTHER, "/"));
    assert_eq!(send(&app, get("/account", &session)).await.location(), "/login");
}

#[tokio::test(flavor = "multi_thread")]
async fn language_switch_sets_a_cookie_and_never_redirects_off_site() {
    let app = app().await;
    let r = send(&app, get("/lang/en?next=/status", "")).await;
    assert_eq!((r.status, r.location(), r.cookie("niji_lang").as_deref()), (StatusCode::SEE_OTHER, "/status", Some("en")));
    for evil in ["//evil.example/", "https://evil.example/", "/\\evil.example"] {
        let r = send(&app, get(&format!("/lang/ja?next={}", urlencode(evil)), "")).await;
        assert_eq!(r.location(), "/", "{evil}");
    }
    let status = send(&app, get("/status", "niji_lang=en")).await;
    assert!(status.body.contains("Transparency log entries"));
    assert_eq!(status.headers.get("x-frame-options").unwrap(), "DENY");
    assert!(status.headers.get("content-security-policy").unwrap().to_str().unwrap().contains("default-src 'self'"));
}

#[tokio::test(flavor = "multi_thread")]
async fn staff_without_totp_enrol_through_the_portal() {
    let app = app().await;
    app.accounts
        .create_account(
            NewAccount {
                username: "checker".into(),
                display_name: "確認 健".into(),
                organization: None,
                roles: vec![Role::OutputChecker],
                password: PASSWORD.into(),
                totp: TotpSetup::AtFirstLogin,
            },
            "cli:test",
            OffsetDateTime::now_utc(),
        )
        .await
        .unwrap();
    let c = send(&app, get("/login", "")).await.cookie("niji_login_csrf").unwrap();
    let r = send(&app, post_form("/login", &format!("niji_login_csrf={c}"), &[("csrf", &c), ("username", "checker"), ("password", PASSWORD)])).await;
    assert_eq!(r.location(), "/account/2fa");
    let pending = format!("niji_session={}", r.cookie("niji_session").unwrap());
    let page = send(&app, get("/account/2fa", &pending)).await;
    assert!(page.body.contains("<svg"), "QR code missing");
    let i = page.body.find("id=\"totp-secret\">").unwrap() + 17;
    let secret = page.body[i..].split('<').next().unwrap().to_string();
    let csrf = hidden_csrf(&page.body);
    let code = totp_code(&secret, OffsetDateTime::now_utc()).unwrap();
    let r = send(&app, post_form("/account/2fa", &pending, &[("csrf", &csrf), ("code", &code)])).await;
    assert_eq!((r.status, r.location()), (StatusCode::SEE_OTHER, "/account"), "{}", r.body);
    let session = format!("niji_session={}", r.cookie("niji_session").unwrap());
    assert!(send(&app, get("/account", &session)).await.body.contains("有効"));
}

#[tokio::test(flavor = "multi_thread")]
async fn only_an_operator_grants_roles_in_the_portal_and_each_grant_is_logged() {
    let app = app().await;
    let op = app
        .accounts
        .create_account(
            NewAccount {
                username: "ops".into(),
                display_name: "運用 太郎".into(),
                organization: None,
                roles: vec![Role::Operator],
                password: PASSWORD.into(),
                totp: TotpSetup::EnrolNow,
            },
            "cli:test",
            OffsetDateTime::now_utc(),
        )
        .await
        .unwrap();
    let researcher = sign_in(&app).await;
    let r = send(&app, get("/admin/users", &researcher)).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    let csrf = hidden_csrf(&send(&app, get("/account", &researcher)).await.body);
    let suzuki = app.accounts.user_by_username("suzuki").await.unwrap().id.to_string();
    let r =
        send(&app, post_form("/admin/users/roles", &researcher, &[("csrf", &csrf), ("user_id", &suzuki), ("role", "operator"), ("change", "grant")]))
            .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    assert_eq!(app.accounts.user_by_username("suzuki").await.unwrap().roles, vec![Role::Researcher]);

    let operator = sign_in_as(&app, "ops", &op.totp.unwrap().secret_base32).await;
    let page = send(&app, get("/admin/users", &operator)).await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(page.body.contains("suzuki") && page.body.contains("id=\"nav-admin\""));
    let csrf = hidden_csrf(&page.body);
    let size_before = app.instance.log().size();
    let r = send(
        &app,
        post_form("/admin/users/roles", &operator, &[("csrf", "forged"), ("user_id", &suzuki), ("role", "reviewer"), ("change", "grant")]),
    )
    .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    let r =
        send(&app, post_form("/admin/users/roles", &operator, &[("csrf", &csrf), ("user_id", &suzuki), ("role", "superuser"), ("change", "grant")]))
            .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    let r =
        send(&app, post_form("/admin/users/roles", &operator, &[("csrf", &csrf), ("user_id", "9999"), ("role", "reviewer"), ("change", "grant")]))
            .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    assert_eq!((app.instance.log().size(), app.accounts.user_by_username("suzuki").await.unwrap().roles), (size_before, vec![Role::Researcher]));

    let r =
        send(&app, post_form("/admin/users/roles", &operator, &[("csrf", &csrf), ("user_id", &suzuki), ("role", "reviewer"), ("change", "grant")]))
            .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert!(r.body.contains("役割を付与しました"));
    assert_eq!(app.accounts.user_by_username("suzuki").await.unwrap().roles, vec![Role::Researcher, Role::Reviewer]);
    let last = niji_core::AuditEvent::from_bytes(&app.instance.log().entry(app.instance.log().size() - 1).unwrap()).unwrap();
    assert_eq!(
        (last.action.as_str(), last.actor.clone(), last.object.clone()),
        ("role.granted", format!("user:{}", op.user_id), format!("user:{suzuki}"))
    );
}

// ---------------------------------------------------------------------------------------
// Data submissions and the catalog.

const CLINS_ERROR: &str =
    concat!(env!("CARGO_MANIFEST_DIR"), "/../../../shared/datasets/clins/MedicationRequest-ErrorExample-JP-MedReq-ExtEye-Total1.json");

/// A small synthetic population, generated once per test binary.
fn synth() -> &'static std::path::Path {
    static DIR: std::sync::OnceLock<std::path::PathBuf> = std::sync::OnceLock::new();
    DIR.get_or_init(|| {
        let dir = niji_testkit::process_temp_dir("niji-server-synth");
        niji_synth::generate(&niji_synth::SynthConfig::new(&dir, 60), &mut |_| {}).unwrap();
        dir
    })
}

/// The first three FHIR Bundles of the first facility (by name) that has at least three.
fn hospital_bundles() -> Vec<(String, Vec<u8>)> {
    let mut facilities: Vec<std::path::PathBuf> = std::fs::read_dir(synth().join("fhir")).unwrap().map(|e| e.unwrap().path()).collect();
    facilities.sort();
    for facility in facilities {
        let mut files: Vec<std::path::PathBuf> = std::fs::read_dir(&facility).unwrap().map(|e| e.unwrap().path()).filter(|p| p.is_file()).collect();
        files.sort();
        if files.len() >= 3 {
            return files.iter().take(3).map(|p| (p.file_name().unwrap().to_string_lossy().into_owned(), std::fs::read(p).unwrap())).collect();
        }
    }
    panic!("no facility with three bundles");
}

fn clins_error_file() -> (String, Vec<u8>) {
    ("MedicationRequest-ErrorExample-JP-MedReq-ExtEye-Total1.json".into(), std::fs::read(CLINS_ERROR).unwrap())
}

const BOUNDARY: &str = "niji-test-boundary-7d1f0c";

fn multipart_body(texts: &[(&str, &str)], files: &[(String, Vec<u8>)]) -> Vec<u8> {
    let mut body = Vec::new();
    for (name, value) in texts {
        body.extend_from_slice(format!("--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\r\n{value}\r\n").as_bytes());
    }
    for (file, bytes) in files {
        body.extend_from_slice(
            format!("--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"files\"; filename=\"{file}\"\r\nContent-Type: application/json\r\n\r\n")
                .as_bytes(),
        );
        body.extend_from_slice(bytes);
        body.extend_from_slice(b"\r\n");
    }
    body.extend_from_slice(format!("--{BOUNDARY}--\r\n").as_bytes());
    body
}

fn api_upload(uri: &str, token: &str, texts: &[(&str, &str)], files: &[(String, Vec<u8>)]) -> Request<Body> {
    Request::post(uri)
        .header(header::AUTHORIZATION, format!("Bearer {token}"))
        .header(header::CONTENT_TYPE, format!("multipart/form-data; boundary={BOUNDARY}"))
        .body(Body::from(multipart_body(texts, files)))
        .unwrap()
}

fn portal_upload(cookies: &str, texts: &[(&str, &str)], files: &[(String, Vec<u8>)]) -> Request<Body> {
    Request::post("/datasets/upload")
        .header(header::COOKIE, cookies)
        .header(header::CONTENT_TYPE, format!("multipart/form-data; boundary={BOUNDARY}"))
        .body(Body::from(multipart_body(texts, files)))
        .unwrap()
}

/// An account with a role and an organization; returns (user id, TOTP secret, API token).
async fn member(app: &App, username: &str, role: Role, organization: Option<&str>) -> (i64, String, String) {
    let created = app
        .accounts
        .create_account(
            NewAccount {
                username: username.into(),
                display_name: "試験 太郎".into(),
                organization: organization.map(|o| (o.to_string(), "hospital".to_string())),
                roles: vec![role],
                password: PASSWORD.into(),
                totp: TotpSetup::EnrolNow,
            },
            "cli:test",
            OffsetDateTime::now_utc(),
        )
        .await
        .unwrap();
    let token = app.accounts.create_api_token(created.user_id, "test", "cli:test", OffsetDateTime::now_utc()).await.unwrap();
    (created.user_id, created.totp.unwrap().secret_base32, token)
}

fn uploads_left(app: &App) -> usize {
    std::fs::read_dir(app.instance.paths.root.join("uploads")).map(|d| d.count()).unwrap_or(0)
}

/// Every string value of a JSON document (not keys), for "nothing of the file is echoed" checks.
fn string_values(v: &serde_json::Value, out: &mut Vec<String>) {
    match v {
        serde_json::Value::String(s) => out.push(s.clone()),
        serde_json::Value::Array(a) => a.iter().for_each(|x| string_values(x, out)),
        serde_json::Value::Object(o) => o.iter().filter(|(k, _)| k.as_str() != "resourceType").for_each(|(_, x)| string_values(x, out)),
        _ => {}
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_data_holder_submits_through_the_api_and_the_public_catalog_rounds_counts() {
    let app = app().await;
    let (_, _, token_a) = member(&app, "holder-a", Role::DataHolder, Some("hospital-a")).await;
    let (_, _, token_b) = member(&app, "holder-b", Role::DataHolder, Some("hospital-b")).await;
    let (_, _, token_none) = member(&app, "holder-none", Role::DataHolder, None).await;
    let researcher = app.accounts.user_by_username("suzuki").await.unwrap();
    let token_r = app.accounts.create_api_token(researcher.id, "test", "cli:test", OffsetDateTime::now_utc()).await.unwrap();
    let bundles = hospital_bundles();

    // Refusals before anything is stored.
    let r = send(&app, api_upload("/api/v1/datasets/hosp-a-ehr/versions", &token_r, &[], &bundles)).await;
    assert_eq!((r.status, r.json()["error"]["code"].as_str()), (StatusCode::FORBIDDEN, Some("forbidden")));
    let r = send(&app, api_upload("/api/v1/datasets/hosp-a-ehr/versions", &token_none, &[], &bundles)).await;
    assert_eq!((r.status, r.json()["error"]["code"].as_str()), (StatusCode::FORBIDDEN, Some("forbidden")));
    let r = send(&app, api_upload("/api/v1/datasets/Bad_Name/versions", &token_a, &[], &bundles)).await;
    assert_eq!((r.status, r.json()["error"]["code"].as_str()), (StatusCode::BAD_REQUEST, Some("bad_request")));
    assert!(!r.body.contains("Bad_Name"));
    let r = send(&app, api_upload("/api/v1/datasets/hosp-a-ehr/versions", &token_a, &[], &[])).await;
    assert_eq!((r.status, r.json()["error"]["code"].as_str()), (StatusCode::BAD_REQUEST, Some("bad_request")));
    let r = send(&app, api_upload("/api/v1/datasets/hosp-a-ehr/versions", "niji_nope", &[], &bundles)).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    let r = send(&app, api_upload("/api/v1/datasets/hosp-a-ehr/versions", &token_a, &[], &[("notes.txt".into(), b"hello".to_vec())])).await;
    assert_eq!((r.status, r.json()["error"]["code"].as_str()), (StatusCode::BAD_REQUEST, Some("bad_request")));
    assert!(!r.body.contains("hello") && !r.body.contains("notes"));

    // A body over the configured limit: payload_too_large, and nothing left behind.
    let small = router(AppState::new(app.instance.clone(), app.accounts.clone(), ServerConfig { max_upload_bytes: 4096, ..ServerConfig::default() }));
    let resp = small.oneshot(api_upload("/api/v1/datasets/hosp-a-ehr/versions", &token_a, &[], &bundles)).await.unwrap();
    assert_eq!(resp.status(), StatusCode::PAYLOAD_TOO_LARGE);
    let body: serde_json::Value = serde_json::from_slice(&resp.into_body().collect().await.unwrap().to_bytes()).unwrap();
    assert_eq!(body["error"]["code"], "payload_too_large");
    assert_eq!(uploads_left(&app), 0);

    // Three Bundles: committed.
    let r = send(
        &app,
        api_upload("/api/v1/datasets/hosp-a-ehr/versions", &token_a, &[("title_ja", "病院A 診療記録"), ("title_en", "Hospital A EHR")], &bundles),
    )
    .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    let v1 = r.json();
    assert_eq!((v1["outcome"].as_str(), v1["dataset"].as_str(), v1["version"].as_i64()), (Some("committed"), Some("hosp-a-ehr"), Some(1)));
    assert!(v1["records_accepted"].as_u64().unwrap() > 3, "{v1}");
    let persons = v1["persons"].as_u64().unwrap();
    assert!((1..10).contains(&persons), "three Bundles, few persons: {persons}");
    assert_eq!((v1["records_quarantined"].as_u64(), v1["problems"].as_array().map(Vec::len)), (Some(0), Some(0)));
    assert_eq!(uploads_left(&app), 0, "the upload folder is removed");

    // Another holder may not add to it.
    let r = send(&app, api_upload("/api/v1/datasets/hosp-a-ehr/versions", &token_b, &[], &bundles)).await;
    assert_eq!((r.status, r.json()["error"]["code"].as_str()), (StatusCode::FORBIDDEN, Some("forbidden")));

    // A CLINS error example: refused with fixed reasons, and nothing of the file echoed.
    let bad = clins_error_file();
    let r = send(&app, api_upload("/api/v1/datasets/hosp-a-ehr/versions", &token_a, &[], std::slice::from_ref(&bad))).await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", r.body);
    let refused = r.json();
    assert_eq!((refused["outcome"].as_str(), refused.get("version")), (Some("refused"), None));
    let problems = refused["problems"].as_array().unwrap();
    assert!(
        problems.iter().any(|p| p["file"] == bad.0.as_str()
            && p["field"] == "MedicationRequest.medicationCodeableConcept.coding"
            && p["reason"] == "JP_MedicationRequest_eCS needs a YJ code, a 一般名処方コード or the 標準コードなし marker"),
        "{refused}"
    );
    let mut values = Vec::new();
    string_values(&serde_json::from_slice(&bad.1).unwrap(), &mut values);
    for v in values.iter().filter(|v| v.chars().count() >= 4 && !bad.0.contains(v.as_str())) {
        assert!(!r.body.contains(v.as_str()), "the answer echoes {v:?} from the file");
    }
    assert_eq!(uploads_left(&app), 0);

    // The same with quarantine: version 2 without the rejected record.
    let mut files = bundles.clone();
    files.push(bad.clone());
    let r = send(&app, api_upload("/api/v1/datasets/hosp-a-ehr/versions?quarantine=true", &token_a, &[], &files)).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    let v2 = r.json();
    assert_eq!(v2["version"].as_i64(), Some(2));
    assert!(v2["records_quarantined"].as_u64().unwrap() >= 1 && !v2["problems"].as_array().unwrap().is_empty());

    // The public catalog: no sign-in, Japanese and English, counts below 10 suppressed.
    let page = send(&app, get("/catalog", "")).await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(page.body.contains("<html lang=\"ja\">") && page.body.contains("病院A 診療記録") && page.body.contains("hospital-a"));
    assert!(page.body.contains("10未満"), "persons below 10 are suppressed");
    assert!(!page.body.contains(&format!("<td class=\"count\">{persons}</td>")));
    let en = send(&app, get("/catalog", "niji_lang=en")).await;
    assert!(en.body.contains("<html lang=\"en\">") && en.body.contains("Hospital A EHR") && en.body.contains("&#60;10"));
    // Search over names, titles, tables and variables, case-insensitive.
    for (q, found) in [("HOSP-A", true), ("person_key", true), ("medications", true), ("no-such-thing", false)] {
        let r = send(&app, get(&format!("/catalog?q={}", urlencode(q)), "")).await;
        assert_eq!(r.body.contains("data-name=\"hosp-a-ehr\""), found, "{q}");
    }
    let detail = send(&app, get("/catalog/hosp-a-ehr", "")).await;
    assert_eq!(detail.status, StatusCode::OK);
    assert!(detail.body.contains("患者") && detail.body.contains("person_key") && detail.body.contains("ICD-10 (MHLW)"), "{}", detail.body);
    assert!(detail.body.contains("<dd id=\"dataset-persons\" class=\"count\">10未満</dd>"));
    assert!(!detail.body.contains("operator-linkage"), "linkage figures are for operators only");
    let en = send(&app, get("/catalog/hosp-a-ehr", "niji_lang=en")).await;
    assert!(en.body.contains("Patients") && en.body.contains("Variables"));
    assert_eq!(send(&app, get("/catalog/nothing-here", "")).await.status, StatusCode::NOT_FOUND);

    // The catalog as data: the list and the JSON-LD document.
    let list = send(&app, get("/api/v1/catalog", "")).await;
    assert_eq!(list.status, StatusCode::OK);
    insta::assert_json_snapshot!("catalog_list", list.json());
    let doc = send(&app, get("/api/v1/catalog/hosp-a-ehr", "")).await;
    assert_eq!((doc.status, doc.headers.get(header::CONTENT_TYPE).unwrap().to_str().unwrap()), (StatusCode::OK, "application/ld+json"));
    let doc = doc.json();
    assert!(doc.get("healthdcatap:numberOfUniqueIndividuals").is_none(), "a suppressed count is left out");
    // So is the period: the earliest and latest event of fewer than 10 persons are their dates.
    assert!(doc.get("dct:temporal").is_none(), "a period of fewer than 10 persons is left out");
    assert!(list.json()[0]["coverage_from"].is_null());
    insta::assert_json_snapshot!("catalog_dataset_jsonld", doc, {
        r#"["dct:issued"]["@value"]"# => "[time]",
        r#"["dct:modified"]["@value"]"# => "[time]",
    });
    let r = send(&app, get("/api/v1/catalog/nothing-here", "")).await;
    assert_eq!(r.json()["error"]["code"], "not_found");
}

#[tokio::test(flavor = "multi_thread")]
async fn portal_upload_needs_the_role_and_csrf_and_operators_see_linkage() {
    let app = app().await;
    let (_, secret, _) = member(&app, "holder-a", Role::DataHolder, Some("hospital-a")).await;
    let (_, op_secret, _) = member(&app, "ops", Role::Operator, None).await;
    let bundles = hospital_bundles();

    // Not signed in: to the login page. A researcher: forbidden.
    assert_eq!(send(&app, get("/datasets/upload", "")).await.location(), "/login");
    let researcher = sign_in(&app).await;
    assert_eq!(send(&app, get("/datasets/upload", &researcher)).await.status, StatusCode::FORBIDDEN);
    assert!(!send(&app, get("/catalog", &researcher)).await.body.contains("nav-upload"));

    let holder = sign_in_as(&app, "holder-a", &secret).await;
    let form = send(&app, get("/datasets/upload", &holder)).await;
    assert_eq!(form.status, StatusCode::OK);
    assert!(form.body.contains("enctype=\"multipart/form-data\"") && form.body.contains("id=\"nav-upload\"") && form.body.contains("hospital-a"));
    let csrf = hidden_csrf(&form.body);

    // A forged token: refused before a file is written.
    let r = send(&app, portal_upload(&holder, &[("csrf", "forged"), ("dataset", "portal-ehr")], &bundles)).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    assert_eq!(uploads_left(&app), 0);
    // A bad name: the form again with a Japanese message.
    let r = send(&app, portal_upload(&holder, &[("csrf", &csrf), ("dataset", "Bad Name")], &bundles)).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert!(r.body.contains("データセット名は"));

    // Refused: the problem lines, fixed texts only.
    let bad = clins_error_file();
    let r = send(&app, portal_upload(&holder, &[("csrf", &csrf), ("dataset", "portal-ehr")], std::slice::from_ref(&bad))).await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", r.body);
    assert!(r.body.contains(
        "MedicationRequest-ErrorExample-JP-MedReq-ExtEye-Total1.json:entry 0:MedicationRequest.medicationCodeableConcept.coding: JP_MedicationRequest_eCS needs a YJ code"
    ) || r.body.contains("MedicationRequest.medicationCodeableConcept.coding: JP_MedicationRequest_eCS needs a YJ code"), "{}", r.body);
    assert!(!r.body.contains("両眼点眼") && !r.body.contains("1318814790"));

    // With the 一般名処方マスタ in the instance's masters folder (read at each intake), a code of
    // the right shape that is not in it is rejected; a file that names no code system is an
    // operator's mistake: the upload fails as internal, nothing is stored or left behind.
    let masters = app.instance.paths.masters();
    std::fs::create_dir_all(&masters).unwrap();
    std::fs::write(masters.join("general-drug-name.csv"), "区分,一般名コード\n内用薬,1124030F2ZZZ\n").unwrap();
    let wrong = (
        "MedicationRequest-ErrorExample-JP-MedReq-PO-SID-28days.json".to_string(),
        std::fs::read(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../../shared/datasets/clins/MedicationRequest-ErrorExample-JP-MedReq-PO-SID-28days.json"
        ))
        .unwrap(),
    );
    let r = send(&app, portal_upload(&holder, &[("csrf", &csrf), ("dataset", "portal-ehr")], std::slice::from_ref(&wrong))).await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", r.body);
    assert!(r.body.contains("coding[0].code: code is not in the loaded 一般名処方コード master"), "{}", r.body);
    std::fs::write(masters.join("yj.csv"), "name\n4987123456789\n").unwrap();
    let r = send(&app, portal_upload(&holder, &[("csrf", &csrf), ("dataset", "portal-ehr")], &bundles)).await;
    assert_eq!(r.status, StatusCode::INTERNAL_SERVER_ERROR, "{}", r.body);
    assert!(!r.body.contains("yj.csv") && !r.body.contains("4987123456789"));
    assert_eq!(uploads_left(&app), 0);
    std::fs::remove_dir_all(&masters).unwrap();

    // Committed with quarantine.
    let mut files = bundles.clone();
    files.push(bad);
    let r = send(&app, portal_upload(&holder, &[("csrf", &csrf), ("dataset", "portal-ehr"), ("quarantine", "on")], &files)).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert!(r.body.contains("登録しました") && r.body.contains("<dd id=\"upload-version\">1</dd>"), "{}", r.body);
    assert_eq!(uploads_left(&app), 0);

    // The operator sees the linkage figures and the quarantined problems; others do not.
    let public = send(&app, get("/catalog/portal-ehr", &holder)).await;
    assert!(!public.body.contains("operator-linkage"));
    let operator = sign_in_as(&app, "ops", &op_secret).await;
    let page = send(&app, get("/catalog/portal-ehr", &operator)).await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(page.body.contains("id=\"operator-linkage\"") && page.body.contains("連結率"), "{}", page.body);
    // Only one dataset: nobody is shared yet, and the live figure says so.
    assert!(page.body.contains("<p id=\"current-linkage\">") && page.body.contains("<strong>0.0 %</strong>"), "{}", page.body);
    assert!(!public.body.contains("current-linkage"));
    assert!(page.body.contains("JP_MedicationRequest_eCS needs a YJ code"));
    assert!(page.body.contains("MedicationRequest-ErrorExample-JP-MedReq-ExtEye-Total1.json"));
}

// ---------------------------------------------------------------------------------------
// Applications, review and permits.

use niji_applications::{publish_defaults, set_consent_scope, Actor};
use niji_review::{ConsentScope, PurposeCategory, RecipientKind};

/// Accounts of the review: (user id, TOTP secret, API token) each.
struct Review {
    researcher: i64,
    operator: (i64, String, String),
    chair: (i64, String, String),
    /// Committee members other than the chair (all reviewers).
    reviewers: Vec<(i64, String, String)>,
}

/// A committed dataset `ehr` (consent: academic research on diabetes, academia and
/// hospitals), published criteria and tariff, an accredited researcher (`suzuki`) and a
/// committee of six (the chair and five reviewers) that meets every rule.
async fn review_world(app: &App) -> Review {
    let store = &app.instance.store;
    let holder = store.create_organization("病院", "hospital", 0).await.unwrap();
    let dataset = store
        .create_dataset(
            &niji_store::NewDataset {
                name: "ehr",
                holder_id: holder,
                kind: "ehr",
                title_ja: "電子カルテ",
                title_en: "EHR",
                description_ja: "",
                description_en: "",
            },
            0,
        )
        .await
        .unwrap();
    let (version, _) = store.begin_dataset_version(dataset, "test", 0).await.unwrap();
    store.commit_dataset_version(&niji_store::VersionCommit { version_id: version, committed_at: 1, ..Default::default() }).await.unwrap();
    let operator = member(app, "ops", Role::Operator, None).await;
    let op = Actor::load(store, operator.0).await.unwrap();
    publish_defaults(&app.instance, &op).await.unwrap();
    let scope = ConsentScope {
        purposes: vec![PurposeCategory::AcademicResearch],
        diseases: vec!["E11".into()],
        recipient_kinds: vec![RecipientKind::Academia, RecipientKind::Hospital],
        recipients: vec![],
    };
    set_consent_scope(&app.instance, &op, "ehr", &scope).await.unwrap();
    let researcher = app.accounts.user_by_username("suzuki").await.unwrap().id;
    store
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
    let committee = store.create_committee("中央審査委員会", 0).await.unwrap();
    let composition = [
        ("medicine_science", false, "male"),
        ("medicine_science", true, "female"),
        ("humanities_law", true, "male"),
        ("humanities_law", false, "female"),
        ("general_public", true, "female"),
        ("general_public", false, "male"),
    ];
    let chair = member(app, "chair", Role::CommitteeChair, None).await;
    let mut reviewers = Vec::new();
    for (i, (field, external, gender)) in composition.iter().enumerate() {
        let account = if i == 0 { chair.clone() } else { member(app, &format!("rev{i}"), Role::Reviewer, None).await };
        let name = format!("委員{i}");
        store
            .add_committee_member(
                &niji_store::NewCommitteeMember {
                    committee_id: committee,
                    user_id: Some(account.0),
                    display_name: &name,
                    field,
                    external: *external,
                    gender,
                },
                0,
            )
            .await
            .unwrap();
        if i > 0 {
            reviewers.push(account);
        }
    }
    Review { researcher, operator, chair, reviewers }
}

fn api_json(method: &str, uri: &str, token: &str, body: &serde_json::Value) -> Request<Body> {
    Request::builder()
        .method(method)
        .uri(uri)
        .header(header::AUTHORIZATION, format!("Bearer {token}"))
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(body.to_string()))
        .unwrap()
}

fn api_get(uri: &str, token: &str) -> Request<Body> {
    Request::get(uri).header(header::AUTHORIZATION, format!("Bearer {token}")).body(Body::empty()).unwrap()
}

fn application_json(researcher: i64) -> serde_json::Value {
    serde_json::json!({
        "title": "2型糖尿病の治療経過",
        "purpose": "治療薬の切替えと予後",
        "purpose_category": "academic_research",
        "diseases": ["E11"],
        "recipients": [{"organization": "東都大学", "kind": "academia", "similar_regulation": true}],
        "track": "visiting",
        "variables": [
            {"dataset": "ehr", "table": "conditions", "column": "code", "justification": "病名"},
            {"dataset": "ehr", "table": "medications", "column": "code", "justification": "処方"}
        ],
        "analysis_plan": "Cox 比例ハザードモデル",
        "software": [{"name": "R", "version": "4.4"}],
        "duration_months": 12,
        "researchers": [researcher],
        "expected_population": 50000
    })
}

#[tokio::test(flavor = "multi_thread")]
async fn a_researcher_applies_through_the_api_and_case_1_gets_a_permit_at_once() {
    let app = app().await;
    let w = review_world(&app).await;
    let token = app.accounts.create_api_token(w.researcher, "test", "cli:test", OffsetDateTime::now_utc()).await.unwrap();
    let (_, _, other) = member(&app, "tanaka", Role::Researcher, Some("西都大学")).await;

    // A form with problems: located, fixed reasons, nothing of it echoed.
    let mut bad = application_json(w.researcher);
    bad["title"] = "  ".into();
    bad["diseases"] = serde_json::json!(["XYZ-secret-9"]);
    bad["purpose_category"] = "nonsense-purpose".into();
    let r = send(&app, api_json("POST", "/api/v1/applications", &token, &bad)).await;
    assert_eq!((r.status, r.json()["error"]["code"].as_str()), (StatusCode::BAD_REQUEST, Some("bad_request")), "{}", r.body);
    assert_eq!(r.json()["error"]["problems"], serde_json::json!([{"field": "purpose_category", "reason": "unknown_value"}]));
    assert!(!r.body.contains("nonsense-purpose"));
    bad["purpose_category"] = "academic_research".into();
    let r = send(&app, api_json("POST", "/api/v1/applications", &token, &bad)).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    let problems = r.json()["error"]["problems"].clone();
    assert!(problems.as_array().unwrap().contains(&serde_json::json!({"field": "title", "reason": "required"})), "{problems}");
    assert!(problems.as_array().unwrap().contains(&serde_json::json!({"field": "diseases[0]", "reason": "not_icd10"})), "{problems}");
    assert!(!r.body.contains("XYZ-secret-9"), "{}", r.body);
    let r = send(
        &app,
        Request::post("/api/v1/applications")
            .header(header::AUTHORIZATION, format!("Bearer {token}"))
            .header(header::CONTENT_TYPE, "application/json")
            .body(Body::from("{\"title\": \"secret-typo"))
            .unwrap(),
    )
    .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert!(!r.body.contains("secret-typo"));
    // Only researchers apply.
    let r = send(&app, api_json("POST", "/api/v1/applications", &w.operator.2, &application_json(w.researcher))).await;
    assert_eq!((r.status, r.json()["error"]["code"].as_str()), (StatusCode::FORBIDDEN, Some("forbidden")));

    // A draft, then the submission: case 1, notification, a permit at once.
    let r = send(&app, api_json("POST", "/api/v1/applications", &token, &application_json(w.researcher))).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    let created = r.json();
    let id = created["id"].as_i64().unwrap();
    assert_eq!((created["status"].as_str(), created["form"]["variables"].as_array().map(Vec::len)), (Some("draft"), Some(2)));

    // Another researcher sees nothing of it and cannot submit it.
    let r = send(&app, api_get(&format!("/api/v1/applications/{id}"), &other)).await;
    assert_eq!((r.status, r.json()["error"]["code"].as_str()), (StatusCode::NOT_FOUND, Some("not_found")));
    assert!(!r.body.contains("糖尿病"));
    assert_eq!(send(&app, api_get("/api/v1/applications", &other)).await.json(), serde_json::json!([]));
    let r = send(&app, api_json("POST", &format!("/api/v1/applications/{id}/submit"), &other, &serde_json::json!({}))).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);

    let r = send(&app, api_json("POST", &format!("/api/v1/applications/{id}/submit"), &token, &serde_json::json!({}))).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let triage = r.json();
    assert_eq!((triage["case"].as_u64(), triage["tier"].as_str(), triage["status"].as_str()), (Some(1), Some("notification"), Some("notified")));
    assert!(triage["permit"].as_i64().is_some());
    insta::assert_json_snapshot!("application_triage_case_1", triage, {
        ".application_id" => "[id]",
        ".permit" => "[id]",
        ".deadline" => "[date]",
    });
    // Once notified, no second submission.
    let r = send(&app, api_json("POST", &format!("/api/v1/applications/{id}/submit"), &token, &serde_json::json!({}))).await;
    assert_eq!((r.status, r.json()["error"]["code"].as_str()), (StatusCode::CONFLICT, Some("conflict")));

    // The application and its permit, for the applicant and the operators only.
    let detail = send(&app, api_get(&format!("/api/v1/applications/{id}"), &token)).await.json();
    assert_eq!((detail["case"].as_u64(), detail["criteria_version"].as_str()), (Some(1), Some("2026.1")));
    assert_eq!(detail["reasons"][0]["code"], "within_consent");
    let all = send(&app, api_get("/api/v1/applications", &w.operator.2)).await.json();
    assert_eq!(all.as_array().unwrap().len(), 1);
    let permits = send(&app, api_get("/api/v1/permits", &token)).await.json();
    assert_eq!(permits.as_array().unwrap().len(), 1, "{permits}");
    let p = &permits[0];
    assert_eq!((p["application_id"].as_i64(), p["status"].as_str(), p["key_present"].as_bool()), (Some(id), Some("active"), Some(true)));
    assert_eq!(p["datasets"][0]["dataset"], "ehr");
    assert_eq!(p["datasets"][0]["tables"].as_array().unwrap().len(), 2);
    assert_eq!(send(&app, api_get("/api/v1/permits", &other)).await.json(), serde_json::json!([]));

    // The portal shows the same, in Japanese and English, with the notifications.
    let session = sign_in(&app).await;
    let page = send(&app, get("/applications", &session)).await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(page.body.contains("2型糖尿病の治療経過") && page.body.contains("届出受理") && page.body.contains("受け付けました"), "{}", page.body);
    assert!(page.body.contains("id=\"nav-applications\"") && page.body.contains("id=\"nav-permits\""));
    let en = send(&app, get("/applications", &format!("{session}; niji_lang=en"))).await;
    assert!(en.body.contains("<html lang=\"en\">") && en.body.contains("accepted by notification"), "{}", en.body);
    let page = send(&app, get(&format!("/applications/{id}"), &session)).await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(page.body.contains("同意の範囲内") && page.body.contains("2026.1") && page.body.contains("ehr.conditions.code"), "{}", page.body);
    let permits = send(&app, get("/permits", &session)).await;
    assert!(permits.body.contains(&format!("id=\"permit-{}\"", triage["permit"])) && permits.body.contains("有効"));
    assert!(!permits.body.contains("/revoke"), "researchers do not revoke");
}

#[tokio::test(flavor = "multi_thread")]
async fn reviewers_vote_in_the_portal_a_recused_member_cannot_and_the_chair_decides() {
    let app = app().await;
    let w = review_world(&app).await;
    let researcher = sign_in(&app).await;

    // The form: a problem is shown at its field, the form kept; then a draft is saved.
    let form = send(&app, get("/applications/new", &researcher)).await;
    assert_eq!(form.status, StatusCode::OK);
    assert!(form.body.contains("id=\"catalog-hints\"") && form.body.contains("ehr.conditions"), "the catalog's tables are offered");
    let csrf = hidden_csrf(&form.body);
    let mut fields = vec![
        ("csrf", csrf.as_str()),
        ("title", "1型糖尿病との比較"),
        ("purpose", "類縁疾患との比較"),
        ("purpose_category", "academic_research"),
        ("diseases", "E10, QQQ"),
        ("recipient0_organization", "東都大学"),
        ("recipient0_kind", "academia"),
        ("recipient0_similar", "on"),
        ("track", "visiting"),
        ("variables", "ehr.conditions.code: 病名\nehr.medications.code: 処方"),
        ("analysis_plan", "記述統計"),
        ("software", "R 4.4"),
        ("duration_months", "12"),
        ("researchers", "suzuki"),
        ("expected_population", "5000"),
    ];
    let r = send(&app, post_form("/applications", &researcher, &fields)).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.body);
    assert!(r.body.contains("diseases[1]") && r.body.contains("ICD-10 コード"), "{}", r.body);
    assert!(r.body.contains("value=\"1型糖尿病との比較\""), "the form is kept");
    fields[4] = ("diseases", "E10");
    let r = send(&app, post_form("/applications", &researcher, &[&[("csrf", "forged")], &fields[1..]].concat())).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    let r = send(&app, post_form("/applications", &researcher, &fields)).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
    let location = r.location().to_string();
    let id: i64 = location.trim_start_matches("/applications/").split('?').next().unwrap().parse().unwrap();
    let page = send(&app, get(&location, &researcher)).await;
    assert!(page.body.contains("下書きを保存しました") && page.body.contains("data-status=\"draft\""), "{}", page.body);

    // Submitted: case 2 (a related disease), under review by the committee.
    let r = send(&app, post_form(&format!("/applications/{id}/submit"), &researcher, &[("csrf", &csrf)])).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
    let page = send(&app, get(&format!("/applications/{id}"), &researcher)).await;
    assert!(page.body.contains("data-status=\"under_review\"") && page.body.contains("医学的妥当性"), "{}", page.body);
    assert!(!page.body.contains("id=\"review\""), "the applicant does not see the deliberation");

    // The secretariat's queue: by tier, with the deadline and the counts.
    let operator = sign_in_as(&app, "ops", &w.operator.1).await;
    let queue = send(&app, get("/review/queue", &operator)).await;
    assert_eq!(queue.status, StatusCode::OK);
    assert!(
        queue.body.contains("id=\"tier-medical_validity\"") && queue.body.contains("1型糖尿病との比較") && queue.body.contains("中央審査委員会"),
        "{}",
        queue.body
    );
    let en = send(&app, get("/review/queue", &format!("{operator}; niji_lang=en"))).await;
    assert!(en.body.contains("Review queue") && en.body.contains("under review"));
    assert_eq!(send(&app, get("/review/queue", &researcher)).await.status, StatusCode::FORBIDDEN);

    // A reviewer votes through the form (CSRF checked) and sees the opinions.
    let rev1 = sign_in_as(&app, "rev1", &w.reviewers[0].1).await;
    let page = send(&app, get(&format!("/applications/{id}"), &rev1)).await;
    assert!(page.body.contains("id=\"vote-form\""), "{}", page.body);
    let csrf1 = hidden_csrf(&page.body);
    let r = send(&app, post_form(&format!("/applications/{id}/vote"), &rev1, &[("csrf", "forged"), ("vote", "approve"), ("opinion", "妥当")])).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    let r = send(&app, post_form(&format!("/applications/{id}/vote"), &rev1, &[("csrf", &csrf1), ("vote", "approve"), ("opinion", "医学的に妥当")]))
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
    let page = send(&app, get(&format!("/applications/{id}"), &rev1)).await;
    assert!(page.body.contains("医学的に妥当") && page.body.contains("id=\"voted\""), "{}", page.body);

    // A recused member's vote is refused with a message.
    let rev2 = sign_in_as(&app, "rev2", &w.reviewers[1].1).await;
    let csrf2 = hidden_csrf(&send(&app, get(&format!("/applications/{id}"), &rev2)).await.body);
    let r = send(&app, post_form(&format!("/applications/{id}/conflict"), &rev2, &[("csrf", &csrf2)])).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    let r = send(&app, post_form(&format!("/applications/{id}/vote"), &rev2, &[("csrf", &csrf2), ("vote", "approve"), ("opinion", "")])).await;
    assert_eq!(r.status, StatusCode::CONFLICT);
    assert!(r.body.contains("利益相反を申告した委員は投票できません"), "{}", r.body);

    // The others vote (directly); the chair decides through the form.
    for account in w.reviewers.iter().skip(2) {
        let actor = Actor::load(&app.instance.store, account.0).await.unwrap();
        niji_applications::cast_vote(&app.instance, &actor, id, niji_review::Vote::ApproveWithConditions, "条件付きで妥当").await.unwrap();
    }
    let chair = sign_in_as(&app, "chair", &w.chair.1).await;
    let page = send(&app, get(&format!("/applications/{id}"), &chair)).await;
    assert!(page.body.contains("id=\"decide-form\"") && page.body.contains("条件付きで妥当"), "{}", page.body);
    let csrf_c = hidden_csrf(&page.body);
    let r = send(
        &app,
        post_form(
            &format!("/applications/{id}/decide"),
            &chair,
            &[("csrf", &csrf_c), ("verdict", "approve_with_conditions"), ("conditions", ""), ("reasons", "妥当")],
        ),
    )
    .await;
    assert_eq!(r.status, StatusCode::CONFLICT);
    assert!(r.body.contains("条件付き承認には条件を1つ以上"), "{}", r.body);
    let r = send(
        &app,
        post_form(
            &format!("/applications/{id}/decide"),
            &chair,
            &[
                ("csrf", &csrf_c),
                ("verdict", "approve_with_conditions"),
                ("conditions", "成果物は事前確認"),
                ("reasons", "医学的に妥当\n類縁疾患として適切"),
            ],
        ),
    )
    .await;
    assert_eq!((r.status, r.location()), (StatusCode::SEE_OTHER, format!("/applications/{id}?done=permit").as_str()), "{}", r.body);
    let en = send(&app, get(&format!("/applications/{id}?done=permit"), &format!("{chair}; niji_lang=en"))).await;
    assert!(en.body.contains("approved with conditions") && en.body.contains("A data permit was issued"), "{}", en.body);

    // The applicant sees the decision and the permit; the operator revokes it.
    let page = send(&app, get(&format!("/applications/{id}"), &researcher)).await;
    assert!(page.body.contains("条件付き承認") && page.body.contains("類縁疾患として適切"), "{}", page.body);
    let permits = send(&app, get("/permits", &researcher)).await;
    assert!(permits.body.contains("成果物は事前確認") && permits.body.contains("ehr.conditions: code"), "{}", permits.body);
    let permits = send(&app, get("/permits", &operator)).await;
    let permit = niji_applications::list_permits(&app.instance.store).await.unwrap()[0].id;
    assert!(permits.body.contains(&format!("action=\"/permits/{permit}/revoke\"")));
    let csrf_o = hidden_csrf(&permits.body);
    let r = send(&app, post_form(&format!("/permits/{permit}/revoke"), &researcher, &[("csrf", &csrf), ("reason", "違反")])).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    let r = send(&app, post_form(&format!("/permits/{permit}/revoke"), &operator, &[("csrf", &csrf_o), ("reason", "利用規約違反")])).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert!(r.body.contains("id=\"certificate\"") && r.body.contains("削除証明書") && r.body.contains("取消"), "{}", r.body);
    assert!(app.instance.store.data_key(&niji_applications::permit_key_id(id, 1)).await.unwrap().is_none());
}

/// Committee members vote and the chair decides through the API; a recused member's vote and a
/// non-member's are refused; the applicant withdraws another application.
#[tokio::test(flavor = "multi_thread")]
async fn committee_votes_and_decisions_through_the_api() {
    let app = app().await;
    let w = review_world(&app).await;
    let token = app.accounts.create_api_token(w.researcher, "test", "cli:test", OffsetDateTime::now_utc()).await.unwrap();
    let mut form = application_json(w.researcher);
    form["diseases"] = serde_json::json!(["E10"]);
    let create = |form: serde_json::Value| {
        let (app, token) = (&app, token.clone());
        async move {
            let id = send(app, api_json("POST", "/api/v1/applications", &token, &form)).await.json()["id"].as_i64().unwrap();
            let r = send(app, api_json("POST", &format!("/api/v1/applications/{id}/submit"), &token, &serde_json::json!({}))).await;
            assert_eq!(r.json()["status"], "under_review", "{}", r.body);
            id
        }
    };
    let id = create(form.clone()).await;
    let vote = |who: &str, vote: &str| {
        api_json("POST", &format!("/api/v1/applications/{id}/votes"), who, &serde_json::json!({"vote": vote, "opinion": "妥当"}))
    };
    // The applicant is no member; an unknown vote is a bad request (not echoed).
    assert_eq!(send(&app, vote(&token, "approve")).await.status, StatusCode::FORBIDDEN);
    let r = send(&app, vote(&w.reviewers[0].2, "maybe-secret")).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert!(!r.body.contains("maybe-secret"));
    for rev in &w.reviewers[..4] {
        let r = send(&app, vote(&rev.2, "approve")).await;
        assert_eq!((r.status, r.json()["status"].as_str()), (StatusCode::OK, Some("under_review")), "{}", r.body);
    }
    // A second vote is a conflict.
    assert_eq!(send(&app, vote(&w.reviewers[0].2, "reject")).await.status, StatusCode::CONFLICT);
    // Only the chair decides.
    let decision = serde_json::json!({"verdict": "approve", "reasons": ["医学的に妥当"]});
    let path = format!("/api/v1/applications/{id}/decision");
    assert_eq!(send(&app, api_json("POST", &path, &w.reviewers[0].2, &decision)).await.status, StatusCode::FORBIDDEN);
    let r = send(&app, api_json("POST", &path, &w.chair.2, &decision)).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.json()["status"], "approved");
    assert!(r.json()["permit"].as_i64().is_some());

    // The applicant withdraws a second application under review; a decided one cannot be.
    let second = create(form).await;
    let r = send(&app, api_json("POST", &format!("/api/v1/applications/{second}/withdraw"), &token, &serde_json::json!({}))).await;
    assert_eq!((r.status, r.json()["status"].as_str()), (StatusCode::OK, Some("withdrawn")));
    let r = send(&app, api_json("POST", &format!("/api/v1/applications/{id}/withdraw"), &token, &serde_json::json!({}))).await;
    assert_eq!(r.status, StatusCode::CONFLICT);
}

/// The chair's portal form offers what the API's decision accepts (one conversion for both):
/// a subset of the requested variables and an output preset become the permit's policy; a
/// decision with an unknown preset, nothing approved or a variable that was not requested is
/// refused naming the field, and nothing changes.
#[tokio::test(flavor = "multi_thread")]
async fn the_chair_approves_part_of_the_variables_with_a_preset_in_the_portal() {
    let app = app().await;
    let w = review_world(&app).await;
    let token = app.accounts.create_api_token(w.researcher, "test", "cli:test", OffsetDateTime::now_utc()).await.unwrap();
    let mut form = application_json(w.researcher);
    form["diseases"] = serde_json::json!(["E10"]);
    let id = send(&app, api_json("POST", "/api/v1/applications", &token, &form)).await.json()["id"].as_i64().unwrap();
    let r = send(&app, api_json("POST", &format!("/api/v1/applications/{id}/submit"), &token, &serde_json::json!({}))).await;
    assert_eq!(r.json()["status"], "under_review", "{}", r.body);
    for rev in &w.reviewers[..4] {
        let r = send(&app, api_json("POST", &format!("/api/v1/applications/{id}/votes"), &rev.2, &serde_json::json!({"vote": "approve"}))).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    }
    let unchanged = async || {
        let detail = send(&app, api_get(&format!("/api/v1/applications/{id}"), &token)).await.json();
        assert_eq!(detail["status"], "under_review", "{detail}");
        assert_eq!(send(&app, api_get("/api/v1/permits", &token)).await.json(), serde_json::json!([]));
        assert!(app.instance.store.review_decision(id).await.unwrap().is_none());
    };

    // The API refuses an unknown preset with the field named (not echoed).
    let path = format!("/api/v1/applications/{id}/decision");
    let bad = serde_json::json!({"verdict": "approve", "reasons": ["妥当"], "output_preset": "secret-preset"});
    let r = send(&app, api_json("POST", &path, &w.chair.2, &bad)).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.body);
    assert_eq!(r.json()["error"]["problems"], serde_json::json!([{"field": "output_preset", "reason": "unknown_value"}]));
    assert!(!r.body.contains("secret-preset"));
    unchanged().await;

    // The chair's form: a checkbox per requested variable (checked) and the presets.
    let chair = sign_in_as(&app, "chair", &w.chair.1).await;
    let page = send(&app, get(&format!("/applications/{id}"), &chair)).await;
    assert!(page.body.contains("id=\"decide-variables\""), "{}", page.body);
    assert!(page.body.contains("name=\"variable\" id=\"variable-0\" value=\"ehr.conditions.code\" checked"), "{}", page.body);
    assert!(page.body.contains("name=\"variable\" id=\"variable-1\" value=\"ehr.medications.code\" checked"), "{}", page.body);
    for preset in ["ndb", "acro", "opensafely"] {
        assert!(page.body.contains(&format!("<option value=\"{preset}\">")), "{preset}: {}", page.body);
    }
    let csrf = hidden_csrf(&page.body);
    let decide = |extra: &[(&'static str, &'static str)]| {
        let mut fields = vec![("csrf", csrf.clone()), ("verdict", "approve".to_string()), ("scope", "explicit".to_string())];
        fields.extend(extra.iter().map(|(k, v)| (*k, v.to_string())));
        fields.push(("reasons", "医学的に妥当".to_string()));
        fields
    };
    let post = |fields: Vec<(&'static str, String)>| {
        let pairs: Vec<(&str, &str)> = fields.iter().map(|(k, v)| (*k, v.as_str())).collect();
        post_form(&format!("/applications/{id}/decide"), &chair, &pairs)
    };

    // Refused, naming the field with a fixed text; nothing changes.
    let r = send(&app, post(decide(&[("variable", "ehr.conditions.code"), ("output_preset", "secret-preset")]))).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.body);
    assert!(r.body.contains("決定の内容に不備") && r.body.contains("<code>output_preset</code>: 選択肢にありません"), "{}", r.body);
    assert!(!r.body.contains("secret-preset"));
    let r = send(&app, post(decide(&[("output_preset", "acro")]))).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.body);
    assert!(r.body.contains("<code>variables</code>: 入力が必要です"), "nothing approved: {}", r.body);
    let r = send(&app, post(decide(&[("variable", "ehr.claims.amount"), ("output_preset", "acro")]))).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.body);
    assert!(r.body.contains("<code>variables[0]</code>: 申請されていません"), "not requested: {}", r.body);
    let r = send(&app, post(decide(&[("variable", "ehr"), ("output_preset", "acro")]))).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.body);
    assert!(r.body.contains("<code>variables[0]</code>: 書式が正しくありません"), "{}", r.body);
    unchanged().await;

    // The cohort and date-shift fields: a half-given age range, a bad date, a bad code, a shift of
    // zero days are each refused with their field.
    for (extra, field) in [
        (&[("cohort_age_min", "40")][..], "cohort.age"),
        (&[("cohort_from", "2024-01-01"), ("cohort_to", "someday")][..], "cohort.period"),
        (&[("cohort_diseases", "diabetes")][..], "cohort.diseases"),
        (&[("date_shift_days", "0")][..], "date_shift_days"),
        (&[("date_shift_days", "a week")][..], "date_shift_days"),
    ] {
        let mut fields = vec![("variable", "ehr.conditions.code"), ("output_preset", "acro")];
        fields.extend_from_slice(extra);
        let r = send(&app, post(decide(&fields))).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{extra:?}: {}", r.body);
        assert!(r.body.contains(&format!("<code>{field}</code>")), "{field}: {}", r.body);
    }
    unchanged().await;

    // Approved: the permit grants the checked variable only, with the chosen preset, the narrowed
    // cohort and the date shift.
    let r = send(
        &app,
        post(decide(&[
            ("variable", "ehr.conditions.code"),
            ("output_preset", "acro"),
            ("cohort_diseases", "E10, E10.9"),
            ("cohort_age_min", "20"),
            ("cohort_age_max", "64"),
            ("date_shift_days", "14"),
        ])),
    )
    .await;
    assert_eq!((r.status, r.location()), (StatusCode::SEE_OTHER, format!("/applications/{id}?done=permit").as_str()), "{}", r.body);
    let permits = send(&app, api_get("/api/v1/permits", &token)).await.json();
    assert_eq!(permits.as_array().unwrap().len(), 1, "{permits}");
    assert_eq!(permits[0]["output_preset"], "acro");
    assert_eq!(permits[0]["datasets"], serde_json::json!([{"dataset": "ehr", "tables": [{"table": "conditions", "columns": ["code"]}]}]));
    let stored = niji_applications::list_permits(&app.instance.store).await.unwrap();
    let policy = &stored[0].policy;
    assert_eq!(policy.date_shift_days, Some(14));
    assert_eq!(
        policy.cohort.as_ref().map(|c| (c.diseases.clone(), c.age.map(|a| (a.min, a.max)))),
        Some((vec!["E10".to_string(), "E10.9".to_string()], Some((20, 64))))
    );
    assert!(policy.allows_column("ehr", "conditions", "code") && !policy.allows_column("ehr", "medications", "code"));
    assert_eq!(policy.output_preset, "acro");
}

#[tokio::test(flavor = "multi_thread")]
async fn the_chair_narrows_the_cohort_and_shifts_dates_through_the_api() {
    let app = app().await;
    let w = review_world(&app).await;
    let token = app.accounts.create_api_token(w.researcher, "test", "cli:test", OffsetDateTime::now_utc()).await.unwrap();
    let mut form = application_json(w.researcher);
    form["diseases"] = serde_json::json!(["E10"]);
    let id = send(&app, api_json("POST", "/api/v1/applications", &token, &form)).await.json()["id"].as_i64().unwrap();
    let r = send(&app, api_json("POST", &format!("/api/v1/applications/{id}/submit"), &token, &serde_json::json!({}))).await;
    assert_eq!(r.json()["status"], "under_review", "{}", r.body);
    for rev in &w.reviewers[..4] {
        send(&app, api_json("POST", &format!("/api/v1/applications/{id}/votes"), &rev.2, &serde_json::json!({"vote": "approve"}))).await;
    }
    let path = format!("/api/v1/applications/{id}/decision");
    let decide = |extra: serde_json::Value| {
        let mut body = serde_json::json!({"verdict": "approve", "reasons": ["妥当"]});
        for (k, v) in extra.as_object().unwrap() {
            body[k] = v.clone();
        }
        api_json("POST", &path, &w.chair.2, &body)
    };
    // Refused, with the field named and nothing stored.
    for (extra, field) in [
        (serde_json::json!({"cohort": {"diseases": ["diabetes"]}}), "cohort.diseases"),
        (serde_json::json!({"cohort": {"age_min": 70, "age_max": 40}}), "cohort.age"),
        (serde_json::json!({"cohort": {"age_min": 40}}), "cohort.age"),
        (serde_json::json!({"cohort": {"period_from": "2024-01-01", "period_to": "someday"}}), "cohort.period"),
        (serde_json::json!({"date_shift_days": 0}), "date_shift_days"),
    ] {
        let r = send(&app, decide(extra.clone())).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{extra}: {}", r.body);
        assert_eq!(r.json()["error"]["problems"][0]["field"], field, "{}", r.body);
        assert!(app.instance.store.review_decision(id).await.unwrap().is_none());
    }
    let r = send(&app, decide(serde_json::json!({"cohort": {"diseases": ["E11"], "age_min": 40, "age_max": 74}, "date_shift_days": 30}))).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let permit = app.instance.store.permits().await.unwrap().pop().unwrap();
    let policy: niji_review::PermitPolicy = serde_json::from_str(&permit.policy).unwrap();
    let cohort = policy.cohort.unwrap();
    assert_eq!((cohort.diseases, cohort.age.map(|a| (a.min, a.max))), (vec!["E11".to_string()], Some((40, 74))));
    assert_eq!(policy.date_shift_days, Some(30));
}
