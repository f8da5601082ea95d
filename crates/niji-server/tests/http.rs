//! The API and portal over HTTP (in-process, through the real router, store and log).

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

struct Reply {
    status: StatusCode,
    headers: axum::http::HeaderMap,
    body: String,
}

impl Reply {
    fn cookie(&self, name: &str) -> Option<String> {
        self.headers
            .get_all(header::SET_COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .find_map(|v| v.strip_prefix(&format!("{name}=")).map(|rest| rest.split(';').next().unwrap().to_string()))
    }
    fn location(&self) -> &str {
        self.headers.get(header::LOCATION).map(|v| v.to_str().unwrap()).unwrap_or("")
    }
    fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).unwrap()
    }
}

async fn send(app: &App, req: Request<Body>) -> Reply {
    let resp = app.router.clone().oneshot(req).await.unwrap();
    let status = resp.status();
    let headers = resp.headers().clone();
    let body = String::from_utf8(resp.into_body().collect().await.unwrap().to_bytes().to_vec()).unwrap();
    Reply { status, headers, body }
}

fn get(uri: &str, cookies: &str) -> Request<Body> {
    Request::get(uri).header(header::COOKIE, cookies).body(Body::empty()).unwrap()
}

fn post_form(uri: &str, cookies: &str, form: &[(&str, &str)]) -> Request<Body> {
    let body = form.iter().map(|(k, v)| format!("{k}={}", urlencode(v))).collect::<Vec<_>>().join("&");
    Request::post(uri)
        .header(header::COOKIE, cookies)
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body(Body::from(body))
        .unwrap()
}

fn urlencode(s: &str) -> String {
    s.bytes().map(|b| if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) { (b as char).to_string() } else { format!("%{b:02X}") }).collect()
}

fn hidden_csrf(html: &str) -> String {
    let i = html.find("name=\"csrf\" value=\"").expect("form has a csrf field") + 19;
    html[i..].split('"').next().unwrap().to_string()
}

/// Signs in the test researcher through the portal and returns the session cookie.
async fn sign_in(app: &App) -> String {
    sign_in_as(app, "suzuki", &app.secret).await
}

async fn sign_in_as(app: &App, username: &str, secret: &str) -> String {
    let page = send(app, get("/login", "")).await;
    let csrf_cookie = page.cookie("niji_login_csrf").unwrap();
    let r = send(
        app,
        post_form("/login", &format!("niji_login_csrf={csrf_cookie}"), &[("csrf", &csrf_cookie), ("username", username), ("password", PASSWORD)]),
    )
    .await;
    assert_eq!((r.status, r.location()), (StatusCode::SEE_OTHER, "/login/totp"));
    let pending = format!("niji_session={}", r.cookie("niji_session").unwrap());
    let totp_page = send(app, get("/login/totp", &pending)).await;
    let csrf = hidden_csrf(&totp_page.body);
    let code = totp_code(secret, OffsetDateTime::now_utc()).unwrap();
    let r = send(app, post_form("/login/totp", &pending, &[("csrf", &csrf), ("code", &code)])).await;
    assert_eq!((r.status, r.location()), (StatusCode::SEE_OTHER, "/account"), "{}", r.body);
    format!("niji_session={}", r.cookie("niji_session").unwrap())
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
        let dir = std::env::temp_dir().join(format!("niji-server-synth-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
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
