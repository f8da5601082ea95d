//! The citizen portal over HTTP (in-process, through the real router, store, vault and log):
//! sign-in with an access code and birth date, the citizen's page, choices — and access control
//! on every citizen endpoint.

use axum::body::Body;
use axum::http::{header, Request, StatusCode};
use http_body_util::BodyExt;
use niji_accounts::{totp_code, Accounts, AccountsConfig, NewAccount, TotpSetup};
use niji_core::Role;
use niji_instance::Instance;
use niji_registry::{ActingAs, HolderActor};
use niji_server::{router, AppState, ServerConfig};
use std::sync::Arc;
use time::OffsetDateTime;
use tower::ServiceExt;

const PASSWORD: &str = "http-test-password-1";
const HOLDER: &str = "テスト病院";
const PATIENTS: &str = r#"{"resourceType":"Patient","id":"a","identifier":[{"system":"urn:oid:1.2.392.100495.20.3.51.11234567890","value":"1001"}],"name":[{"text":"山田 太郎"}],"gender":"male","birthDate":"1980-04-01"}
{"resourceType":"Patient","id":"b","identifier":[{"system":"urn:oid:1.2.392.100495.20.3.51.11234567890","value":"1002"}],"name":[{"text":"佐藤 花子"}],"gender":"female","birthDate":"1975-11-30"}
"#;

struct App {
    _dir: tempfile::TempDir,
    router: axum::Router,
    instance: Arc<Instance>,
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
    let state = AppState::new(instance.clone(), accounts, ServerConfig::default());
    App { _dir: dir, router: router(state), instance, staff_secret: staff.totp.unwrap().secret_base32, a_code: a.access_code, b_code: b.access_code }
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
    let page = send(app, get("/login", "")).await;
    let csrf = page.cookie("niji_login_csrf").unwrap();
    let r =
        send(app, post_form("/login", &format!("niji_login_csrf={csrf}"), &[("csrf", &csrf), ("username", "suzuki"), ("password", PASSWORD)])).await;
    let pending = format!("niji_session={}", r.cookie("niji_session").unwrap());
    let totp_page = send(app, get("/login/totp", &pending)).await;
    let code = totp_code(&app.staff_secret, OffsetDateTime::now_utc()).unwrap();
    let r = send(app, post_form("/login/totp", &pending, &[("csrf", &hidden_csrf(&totp_page.body)), ("code", &code)])).await;
    assert_eq!(r.location(), "/account");
    format!("niji_session={}", r.cookie("niji_session").unwrap())
}

/// The registry's version: changes exactly when an entry is recorded.
async fn registry_version(app: &App) -> i64 {
    let use_ = niji_consent::Use {
        purpose: niji_review::PurposeCategory::AcademicResearch,
        recipients: vec![],
        diseases: vec![],
        at: OffsetDateTime::now_utc(),
    };
    niji_registry::exclusions(&app.instance, "test", &use_).await.unwrap().1
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
