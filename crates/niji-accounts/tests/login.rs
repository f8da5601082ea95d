//! Accounts against a real instance (SQLite store and transparency log on disk).

use niji_accounts::{totp_code, AccountError, Accounts, AccountsConfig, NewAccount, SessionStage, TotpSetup};
use niji_core::{AuditEvent, Role};
use niji_instance::Instance;
use time::{Duration, OffsetDateTime};

const PASSWORD: &str = "kakusareta-aikotoba-2026";

struct Fixture {
    _dir: tempfile::TempDir,
    instance: Instance,
    accounts: Accounts,
}

async fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let instance = Instance::init(dir.path(), "cli:test").await.unwrap();
    let accounts = Accounts::new(instance.store.clone(), instance.audit_sink(), instance.accounts_key(), AccountsConfig::default());
    Fixture { _dir: dir, instance, accounts }
}

fn t0() -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp(1_795_000_000).unwrap()
}

fn account(name: &str, roles: &[Role], totp: TotpSetup) -> NewAccount {
    NewAccount {
        username: name.into(),
        display_name: "山田 花子".into(),
        organization: Some(("東京医科大学".into(), "academia".into())),
        roles: roles.to_vec(),
        password: PASSWORD.into(),
        totp,
    }
}

fn actions(f: &Fixture) -> Vec<String> {
    let log = f.instance.log();
    (0..log.size()).map(|i| AuditEvent::from_bytes(&log.entry(i).unwrap()).unwrap().action).collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn staff_login_needs_password_then_a_fresh_totp_code() {
    let f = fixture().await;
    let created = f.accounts.create_account(account("hanako", &[Role::Researcher], TotpSetup::EnrolNow), "cli:test", t0()).await.unwrap();
    let secret = created.totp.unwrap().secret_base32;

    let pending = f.accounts.login_with_password("hanako", PASSWORD, t0()).await.unwrap();
    assert_eq!(pending.stage, SessionStage::AwaitingTotp);
    let wrong = f.accounts.complete_totp_login(&pending.token, "000000", t0()).await;
    assert!(matches!(wrong, Err(AccountError::InvalidTotp)), "{wrong:?}");
    let stale = totp_code(&secret, t0() - Duration::minutes(3)).unwrap();
    assert!(matches!(f.accounts.complete_totp_login(&pending.token, &stale, t0()).await, Err(AccountError::InvalidTotp)));

    let code = totp_code(&secret, t0()).unwrap();
    let session = f.accounts.complete_totp_login(&pending.token, &code, t0()).await.unwrap();
    assert_eq!(session.stage, SessionStage::SignedIn);
    assert!(f.accounts.session(&pending.token, t0()).await.unwrap().is_none(), "the pre-2FA token must die");
    let s = f.accounts.session(&session.token, t0()).await.unwrap().unwrap();
    assert_eq!(
        (s.user.username.as_str(), s.user.roles.clone(), s.user.organization.as_deref()),
        ("hanako", vec![Role::Researcher], Some("東京医科大学"))
    );

    // The same code cannot be used again, even on a new login.
    let again = f.accounts.login_with_password("hanako", PASSWORD, t0()).await.unwrap();
    assert!(matches!(f.accounts.complete_totp_login(&again.token, &code, t0()).await, Err(AccountError::ReplayedTotp)));

    f.accounts.logout(&session.token, t0()).await.unwrap();
    assert!(f.accounts.session(&session.token, t0()).await.unwrap().is_none());
    let a = actions(&f);
    for want in ["account.created", "auth.password.accepted", "auth.login.failed", "auth.login.succeeded", "auth.logout"] {
        assert!(a.iter().any(|x| x == want), "{want} missing from {a:?}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn staff_without_totp_must_enrol_before_signing_in() {
    let f = fixture().await;
    f.accounts.create_account(account("checker", &[Role::OutputChecker], TotpSetup::AtFirstLogin), "cli:test", t0()).await.unwrap();
    let pending = f.accounts.login_with_password("checker", PASSWORD, t0()).await.unwrap();
    assert_eq!(pending.stage, SessionStage::AwaitingEnrolment);
    let user = f.accounts.session(&pending.token, t0()).await.unwrap().unwrap().user;
    let enrolment = f.accounts.begin_totp_enrolment(user.id, t0()).await.unwrap();
    assert!(enrolment.otpauth_url.starts_with("otpauth://totp/Niji:checker?"), "{}", enrolment.otpauth_url);
    assert!(matches!(f.accounts.confirm_totp_enrolment(&pending.token, "123456", t0()).await, Err(AccountError::InvalidTotp)));
    let code = totp_code(&enrolment.secret_base32, t0()).unwrap();
    let session = f.accounts.confirm_totp_enrolment(&pending.token, &code, t0()).await.unwrap();
    assert_eq!(session.stage, SessionStage::SignedIn);
    assert!(f.accounts.user(user.id).await.unwrap().totp_enabled);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_citizen_signs_in_with_a_password_alone() {
    let f = fixture().await;
    f.accounts.create_account(account("taro", &[Role::Citizen], TotpSetup::AtFirstLogin), "cli:test", t0()).await.unwrap();
    let s = f.accounts.login_with_password("taro", PASSWORD, t0()).await.unwrap();
    assert_eq!(s.stage, SessionStage::SignedIn);
}

#[tokio::test(flavor = "multi_thread")]
async fn repeated_failures_lock_the_account_for_the_window() {
    let f = fixture().await;
    f.accounts.create_account(account("kenji", &[Role::Citizen], TotpSetup::AtFirstLogin), "cli:test", t0()).await.unwrap();
    for i in 0..5 {
        let r = f.accounts.login_with_password("kenji", "wrong-password-123", t0() + Duration::seconds(i)).await;
        assert!(matches!(r, Err(AccountError::InvalidCredentials)));
    }
    let locked = f.accounts.login_with_password("kenji", PASSWORD, t0() + Duration::seconds(10)).await;
    assert!(matches!(locked, Err(AccountError::Throttled { .. })), "{locked:?}");
    let later = f.accounts.login_with_password("kenji", PASSWORD, t0() + Duration::minutes(16)).await;
    assert!(later.is_ok(), "{later:?}");
    // Unknown names fail the same way as wrong passwords.
    assert!(matches!(f.accounts.login_with_password("nobody", PASSWORD, t0()).await, Err(AccountError::InvalidCredentials)));
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_account_requests_change_nothing() {
    let f = fixture().await;
    let before = (f.instance.store.count_users().await.unwrap(), f.instance.log().size());
    let check = |r: Result<niji_accounts::CreatedAccount, AccountError>, want: &str| {
        let e = r.expect_err("must be rejected");
        assert!(e.to_string().contains(want), "{e} does not say {want}");
    };
    let mut a = account("x", &[Role::Researcher], TotpSetup::EnrolNow);
    check(f.accounts.create_account(a.clone(), "cli:test", t0()).await, "user names");
    a.username = "Has Space".into();
    check(f.accounts.create_account(a.clone(), "cli:test", t0()).await, "user names");
    a.username = "valid.name".into();
    a.password = "short".into();
    check(f.accounts.create_account(a.clone(), "cli:test", t0()).await, "at least 12");
    a.password = PASSWORD.into();
    a.display_name = "  ".into();
    check(f.accounts.create_account(a.clone(), "cli:test", t0()).await, "display name");
    assert_eq!((f.instance.store.count_users().await.unwrap(), f.instance.log().size()), before);
    a.display_name = "ok".into();
    f.accounts.create_account(a.clone(), "cli:test", t0()).await.unwrap();
    check(f.accounts.create_account(a, "cli:test", t0()).await, "taken");
}

#[tokio::test(flavor = "multi_thread")]
async fn only_operators_grant_roles_and_every_grant_is_logged() {
    let f = fixture().await;
    let op = f.accounts.create_account(account("ops", &[Role::Operator], TotpSetup::EnrolNow), "cli:test", t0()).await.unwrap();
    let r = f.accounts.create_account(account("res", &[Role::Researcher], TotpSetup::EnrolNow), "cli:test", t0()).await.unwrap();
    let operator = f.accounts.user(op.user_id).await.unwrap();
    let researcher = f.accounts.user(r.user_id).await.unwrap();
    assert!(matches!(f.accounts.grant_role(&researcher, r.user_id, Role::Operator, t0()).await, Err(AccountError::Forbidden(Role::Operator))));
    f.accounts.grant_role(&operator, r.user_id, Role::Reviewer, t0()).await.unwrap();
    assert_eq!(f.accounts.user(r.user_id).await.unwrap().roles, vec![Role::Researcher, Role::Reviewer]);
    f.accounts.revoke_role(&operator, r.user_id, Role::Reviewer, t0()).await.unwrap();
    assert_eq!(f.accounts.user(r.user_id).await.unwrap().roles, vec![Role::Researcher]);
    let a = actions(&f);
    assert!(a.contains(&"role.granted".to_string()) && a.contains(&"role.revoked".to_string()));
    let token = f.accounts.create_api_token(r.user_id, "laptop", "cli:test", t0()).await.unwrap();
    assert_eq!(f.accounts.authenticate_api_token(&token, t0()).await.unwrap().id, r.user_id);
    assert!(f.accounts.authenticate_api_token("niji_forged", t0()).await.is_err());
}

#[tokio::test(flavor = "multi_thread")]
async fn no_password_secret_or_token_lands_on_disk_in_the_clear() {
    let f = fixture().await;
    let created = f.accounts.create_account(account("hidden", &[Role::Operator], TotpSetup::EnrolNow), "cli:test", t0()).await.unwrap();
    let secret = created.totp.unwrap().secret_base32;
    let pending = f.accounts.login_with_password("hidden", PASSWORD, t0()).await.unwrap();
    let _ = f.accounts.login_with_password("hidden", "a-mistyped-password", t0()).await;
    let token = f.accounts.create_api_token(created.user_id, "ci", "cli:test", t0()).await.unwrap();
    f.instance.store.close().await;
    let mut files = Vec::new();
    let mut stack = vec![f.instance.paths.root.clone()];
    while let Some(p) = stack.pop() {
        for e in std::fs::read_dir(&p).unwrap() {
            let path = e.unwrap().path();
            if path.is_dir() {
                stack.push(path)
            } else {
                files.push(path)
            }
        }
    }
    assert!(files.len() >= 4, "{files:?}");
    for path in files {
        let bytes = std::fs::read(&path).unwrap();
        for needle in [PASSWORD, "a-mistyped-password", secret.as_str(), pending.token.as_str(), token.as_str()] {
            assert!(!bytes.windows(needle.len()).any(|w| w == needle.as_bytes()), "{needle} found in {}", path.display());
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn starting_a_new_enrolment_keeps_the_active_secret_until_confirmed() {
    let f = fixture().await;
    let created = f.accounts.create_account(account("rekey", &[Role::Reviewer], TotpSetup::EnrolNow), "cli:test", t0()).await.unwrap();
    let old = created.totp.unwrap().secret_base32;
    let pending = f.accounts.login_with_password("rekey", PASSWORD, t0()).await.unwrap();
    let session = f.accounts.complete_totp_login(&pending.token, &totp_code(&old, t0()).unwrap(), t0()).await.unwrap();

    // Begun but abandoned: the account still needs the old secret's codes.
    let new = f.accounts.begin_totp_enrolment(created.user_id, t0()).await.unwrap();
    assert!(f.accounts.user(created.user_id).await.unwrap().totp_enabled);
    let t1 = t0() + Duration::minutes(2);
    let relogin = f.accounts.login_with_password("rekey", PASSWORD, t1).await.unwrap();
    assert_eq!(relogin.stage, SessionStage::AwaitingTotp);
    assert!(matches!(
        f.accounts.complete_totp_login(&relogin.token, &totp_code(&new.secret_base32, t1).unwrap(), t1).await,
        Err(AccountError::InvalidTotp)
    ));
    let relogin = f.accounts.login_with_password("rekey", PASSWORD, t1).await.unwrap();
    let session2 = f.accounts.complete_totp_login(&relogin.token, &totp_code(&old, t1).unwrap(), t1).await.unwrap();

    // A code of the old secret does not confirm the new one; a code of the new one does.
    let t2 = t0() + Duration::minutes(4);
    assert!(matches!(f.accounts.confirm_totp_enrolment(&session2.token, &totp_code(&old, t2).unwrap(), t2).await, Err(AccountError::InvalidTotp)));
    f.accounts.confirm_totp_enrolment(&session2.token, &totp_code(&new.secret_base32, t2).unwrap(), t2).await.unwrap();
    let t3 = t0() + Duration::minutes(6);
    let relogin = f.accounts.login_with_password("rekey", PASSWORD, t3).await.unwrap();
    assert!(matches!(f.accounts.complete_totp_login(&relogin.token, &totp_code(&old, t3).unwrap(), t3).await, Err(AccountError::InvalidTotp)));
    f.accounts.complete_totp_login(&relogin.token, &totp_code(&new.secret_base32, t3).unwrap(), t3).await.unwrap();
    let _ = session;
}
