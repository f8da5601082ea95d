//! Red-team tests of the consent registry's citizen and holder sides (code added since
//! 3492b39). A failing test is a finding.

mod common;
use common::*;

use axum::body::Body;
use axum::http::{Request, StatusCode};
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

#[allow(dead_code)]
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

/// Attack: a data holder (any holder that has the patient in its data, through
/// `POST /api/v1/registry/choices {"withdraw": <id>}` or the `/registry` form) withdraws the
/// opt-out the citizen recorded THEMSELVES on the citizen portal. Entry ids are small sequential
/// integers, so the holder can simply try them; `niji_consent::validate` checks only that the
/// entry is the person's, not who recorded it. The person is silently back in every use.
/// Expected: a holder may withdraw only what it recorded on paper (or the citizen's own choice
/// is not the holder's to undo).
#[tokio::test(flavor = "multi_thread")]
async fn a_holder_withdraws_the_citizens_own_opt_out() {
    let app = app().await;
    let a = signed_in(&app, &app.a_code, "1980-04-01").await;
    let page = send(&app, get("/citizen", &a)).await;
    let r = send(&app, post_form("/citizen/choices", &a, &[("csrf", &hidden_csrf(&page.body)), ("action", "opt_out_all")])).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
    let own = registry_version(&app).await;
    assert!(is_excluded(&app).await, "the opt-out applies");

    // The holder guesses entry ids: the citizen's own entry is accepted.
    let holder = niji_registry::Author::Holder { actor: HolderActor { holder: HOLDER.into(), audit: "user:99".into() }, patient_id: "1001".into() };
    let withdrawn =
        niji_registry::record_choice(&app.instance, &holder, niji_consent::Choice::Withdraw { entry: own as u64 }, OffsetDateTime::now_utc()).await;
    assert!(
        withdrawn.is_err() && is_excluded(&app).await,
        "the holder withdrew the opt-out the citizen recorded online ({withdrawn:?}); the person is included again"
    );
}

/// The registry's version (its last entry id).
async fn registry_version(app: &App) -> i64 {
    let use_ = niji_consent::Use {
        purpose: niji_review::PurposeCategory::AcademicResearch,
        recipients: vec![],
        diseases: vec![],
        at: OffsetDateTime::now_utc(),
    };
    niji_registry::exclusions(&app.instance, &use_).await.unwrap().1
}

/// Whether patient 1001 (the only male, born 1980) is excluded from an academic use now.
async fn is_excluded(app: &App) -> bool {
    let use_ = niji_consent::Use {
        purpose: niji_review::PurposeCategory::AcademicResearch,
        recipients: vec![niji_review::RecipientKind::Academia],
        diseases: vec![],
        at: OffsetDateTime::now_utc(),
    };
    !niji_registry::exclusions(&app.instance, &use_).await.unwrap().0.is_empty()
}

/// Attack (enumeration): with only the first 8 characters of an access code (the account part;
/// the other 12 and the birth date wrong), the sign-in tells "expired or revoked" apart from
/// "wrong code or birth date". The check runs before the password (no argon2: a timing
/// difference too), counts no failure and writes no log entry.
/// Expected: the same reply as any wrong code unless the secret and birth date are right.
#[tokio::test(flavor = "multi_thread")]
async fn an_ended_code_is_recognizable_without_its_secret_or_the_birth_date() {
    let app = app().await;
    let user = app.instance.store.user_by_username(&format!("citizen-{}", app.a_code.replace('-', "")[..8].to_lowercase())).await.unwrap().unwrap();
    app.instance.store.revoke_citizen_credential(user.id, OffsetDateTime::now_utc().unix_timestamp()).await.unwrap();
    let guessed = format!("{}-ZZZZ-ZZZZ-ZZZZ", &app.a_code[..9]);
    let before = app.instance.log().size();
    let r = citizen_login(&app, &guessed, "1999-01-01").await;
    let unknown = citizen_login(&app, "AAAA-BBBB-CCCC-DDDD-EEEE", "1999-01-01").await;
    assert_eq!(r.status, unknown.status, "status tells an ended code apart");
    assert!(r.body.contains("アクセスコードまたは生年月日が正しくありません"), "the reply tells the account part exists and was revoked");
    assert!(app.instance.log().size() >= before + 2, "a refused sign-in on an ended credential is not logged");
}
