//! Safe people: accounts in organizations, roles granted by recorded operator actions,
//! passwords (argon2id), TOTP two-factor authentication, sessions, API tokens and login
//! throttling (3省2ガイドライン 第6.0版: authenticate every user, two factors for staff,
//! rights granted through a recorded approval, passwords stored irreversibly).
//!
//! Invariants:
//! - Every login, failure, logout, enrolment and role change is written to the audit sink
//!   before the call returns; if the sink fails, the call fails.
//! - A rejected call changes nothing but the failed-login counter.
//! - Passwords, TOTP codes and session tokens never reach the store or the log in the
//!   clear: passwords as argon2id hashes, TOTP seeds sealed with XChaCha20-Poly1305,
//!   tokens as SHA-256 hashes. Audit events name users by id, never by what was typed.
//! - A TOTP code is accepted at most once (the highest used time step is kept).

mod secrets;

use niji_core::{AuditEvent, AuditSink, Role};
use niji_store::{NewUser, SessionRow, Store, StoreError};
use secrets::{hash_token, random_token, Sealer};
use std::sync::Arc;
use std::time::Duration;
use time::OffsetDateTime;

pub use secrets::{hash_password, verify_password};

/// Tunables, with defaults that follow the 3省2 guideline's spirit.
#[derive(Clone, Debug)]
pub struct AccountsConfig {
    /// Shown in authenticator apps.
    pub totp_issuer: String,
    /// Failed logins allowed per account name within `failure_window` before it is locked.
    pub max_failed_logins: i64,
    pub failure_window: Duration,
    pub session_lifetime: Duration,
    /// Lifetime of a session that has passed the password but not yet the second factor.
    pub pending_session_lifetime: Duration,
    pub min_password_len: usize,
}

impl Default for AccountsConfig {
    fn default() -> Self {
        Self {
            totp_issuer: "Niji".into(),
            max_failed_logins: 5,
            failure_window: Duration::from_secs(15 * 60),
            session_lifetime: Duration::from_secs(8 * 3600),
            pending_session_lifetime: Duration::from_secs(5 * 60),
            min_password_len: 12,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum AccountError {
    #[error("unknown account or wrong password")]
    InvalidCredentials,
    #[error("too many failed logins; try again in {retry_after_secs} s")]
    Throttled { retry_after_secs: u64 },
    #[error("the two-factor code is wrong or expired")]
    InvalidTotp,
    #[error("this two-factor code was already used")]
    ReplayedTotp,
    #[error("two-factor authentication is not set up for this account")]
    TotpNotEnrolled,
    #[error("password must have at least {min_len} characters")]
    WeakPassword { min_len: usize },
    #[error("user names are 3-64 characters of a-z, 0-9, '.', '_' or '-'")]
    InvalidUsername,
    #[error("display name must not be empty")]
    InvalidDisplayName,
    #[error("this action needs the {0} role with a completed two-factor login")]
    Forbidden(Role),
    #[error("no such user")]
    NoSuchUser,
    #[error("that user name is taken")]
    UsernameTaken,
    #[error("the session has expired or was ended")]
    NoSession,
    #[error(transparent)]
    Store(StoreError),
    #[error(transparent)]
    Audit(#[from] niji_core::AuditError),
    #[error("internal error: {0}")]
    Internal(String),
}

impl From<StoreError> for AccountError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Conflict { what: "user" } => AccountError::UsernameTaken,
            e => AccountError::Store(e),
        }
    }
}

/// How far a login has got.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SessionStage {
    /// Password accepted; the TOTP code is still due.
    AwaitingTotp,
    /// Password accepted; the account holds a staff role and must enrol TOTP first.
    AwaitingEnrolment,
    /// Fully signed in.
    SignedIn,
}

impl SessionStage {
    fn as_str(self) -> &'static str {
        match self {
            SessionStage::AwaitingTotp => "awaiting_totp",
            SessionStage::AwaitingEnrolment => "awaiting_enrolment",
            SessionStage::SignedIn => "signed_in",
        }
    }
    fn parse(s: &str) -> Option<Self> {
        [SessionStage::AwaitingTotp, SessionStage::AwaitingEnrolment, SessionStage::SignedIn].into_iter().find(|x| x.as_str() == s)
    }
}

/// A new account request.
#[derive(Clone, Debug)]
pub struct NewAccount {
    pub username: String,
    pub display_name: String,
    /// Organization name and kind (created if it does not exist).
    pub organization: Option<(String, String)>,
    pub roles: Vec<Role>,
    pub password: String,
    pub totp: TotpSetup,
}

/// Whether a new account is enrolled in TOTP at creation (the secret is handed out once)
/// or enrols at its first login.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TotpSetup {
    EnrolNow,
    AtFirstLogin,
}

/// A TOTP secret to show once, as text and as an `otpauth://` URL for a QR code.
#[derive(Clone, Debug)]
pub struct TotpEnrolment {
    pub secret_base32: String,
    pub otpauth_url: String,
}

#[derive(Clone, Debug)]
pub struct CreatedAccount {
    pub user_id: i64,
    pub totp: Option<TotpEnrolment>,
}

/// What a caller may know about a user.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UserSummary {
    pub id: i64,
    pub username: String,
    pub display_name: String,
    pub organization: Option<String>,
    pub roles: Vec<Role>,
    pub totp_enabled: bool,
}

impl UserSummary {
    pub fn has_role(&self, role: Role) -> bool {
        self.roles.contains(&role)
    }
    pub fn needs_two_factor(&self) -> bool {
        self.roles.iter().any(|r| r.requires_two_factor())
    }
}

/// A new session's secrets: the token goes into a cookie, only its hash is stored.
#[derive(Clone, Debug)]
pub struct NewSession {
    pub token: String,
    pub csrf_token: String,
    pub stage: SessionStage,
    pub expires_at: OffsetDateTime,
}

#[derive(Clone, Debug)]
pub struct Session {
    pub user: UserSummary,
    pub stage: SessionStage,
    pub csrf_token: String,
    pub expires_at: OffsetDateTime,
}

pub struct Accounts {
    store: Store,
    audit: Arc<dyn AuditSink>,
    sealer: Sealer,
    config: AccountsConfig,
}

const TOTP_STEP: u64 = 30;

/// Which of an account's TOTP secrets a code is checked against.
#[derive(Clone, Copy)]
enum SecretSlot {
    Active,
    Pending,
}

impl Accounts {
    pub fn new(store: Store, audit: Arc<dyn AuditSink>, sealing_key: &[u8; 32], config: AccountsConfig) -> Self {
        Self { store, audit, sealer: Sealer::new(sealing_key), config }
    }

    pub fn config(&self) -> &AccountsConfig {
        &self.config
    }

    /// Creates an account with its roles. `actor` is who did it (`user:<id>` of an
    /// operator, or `cli:<os user>` for the command line on the server).
    pub async fn create_account(&self, req: NewAccount, actor: &str, now: OffsetDateTime) -> Result<CreatedAccount, AccountError> {
        validate_username(&req.username)?;
        if req.display_name.trim().is_empty() {
            return Err(AccountError::InvalidDisplayName);
        }
        if req.password.chars().count() < self.config.min_password_len {
            return Err(AccountError::WeakPassword { min_len: self.config.min_password_len });
        }
        if self.store.user_by_username(&req.username).await?.is_some() {
            return Err(AccountError::UsernameTaken);
        }
        let password_hash = hash_password(&req.password)?;
        let totp = match req.totp {
            TotpSetup::EnrolNow => Some(secrets::new_totp_secret()),
            TotpSetup::AtFirstLogin => None,
        };
        let sealed = totp.as_ref().map(|s| self.sealer.seal(s, req.username.as_bytes()));
        let organization_id = match &req.organization {
            Some((name, kind)) => Some(match self.store.organization_by_name(name).await? {
                Some(org) => org.id,
                None => self.store.create_organization(name, kind, now.unix_timestamp()).await?,
            }),
            None => None,
        };
        let new_user = NewUser {
            username: &req.username,
            display_name: req.display_name.trim(),
            organization_id,
            password_hash: &password_hash,
            totp_secret: sealed.as_deref(),
            created_at: now.unix_timestamp(),
        };
        let user_id = self.store.create_user_with_roles(&new_user, &req.roles, actor).await?;
        let roles: Vec<&str> = req.roles.iter().map(|r| r.as_str()).collect();
        self.record(AuditEvent::new(actor, now, "account.created", user_ref(user_id)).with_data(serde_json::json!({
            "roles": roles, "organization_id": organization_id, "totp_enrolled": totp.is_some()
        })))?;
        let totp = totp.map(|secret| self.enrolment(&req.username, secret)).transpose()?;
        Ok(CreatedAccount { user_id, totp })
    }

    pub async fn user(&self, user_id: i64) -> Result<UserSummary, AccountError> {
        let row = self.store.user(user_id).await?.ok_or(AccountError::NoSuchUser)?;
        let organization = match row.organization_id {
            Some(id) => self.store.organization(id).await?.map(|o| o.name),
            None => None,
        };
        Ok(UserSummary {
            id: row.id,
            username: row.username,
            display_name: row.display_name,
            organization,
            roles: self.store.active_roles(user_id).await?,
            totp_enabled: row.totp_enabled,
        })
    }

    pub async fn user_by_username(&self, username: &str) -> Result<UserSummary, AccountError> {
        let row = self.store.user_by_username(username).await?.ok_or(AccountError::NoSuchUser)?;
        self.user(row.id).await
    }

    /// First factor. On success returns a session at the stage the account needs next.
    pub async fn login_with_password(&self, username: &str, password: &str, now: OffsetDateTime) -> Result<NewSession, AccountError> {
        let key = username_key(username);
        let since = now.unix_timestamp() - self.config.failure_window.as_secs() as i64;
        let failures = self.store.login_failures_since(&key, since).await?;
        if failures >= self.config.max_failed_logins {
            self.record(AuditEvent::new("anonymous", now, "auth.login.throttled", "account").with_data(serde_json::json!({"failures": failures})))?;
            return Err(AccountError::Throttled { retry_after_secs: self.config.failure_window.as_secs() });
        }
        let user = self.store.user_by_username(username).await?;
        let ok = match &user {
            Some(u) if !u.disabled => verify_password(password, &u.password_hash),
            _ => {
                // Spend the same time as a real check so that timing does not reveal names.
                let _ = verify_password(password, secrets::DUMMY_HASH);
                false
            }
        };
        let Some(user) = user.filter(|_| ok) else {
            self.store.record_login_failure(&key, now.unix_timestamp()).await?;
            let object = match self.store.user_by_username(username).await? {
                Some(u) => user_ref(u.id),
                None => "unknown-account".into(),
            };
            self.record(AuditEvent::new("anonymous", now, "auth.login.failed", object).with_data(serde_json::json!({"factor": "password"})))?;
            return Err(AccountError::InvalidCredentials);
        };
        self.store.clear_login_failures(&key).await?;
        let roles = self.store.active_roles(user.id).await?;
        let stage = if user.totp_enabled {
            SessionStage::AwaitingTotp
        } else if roles.iter().any(|r| r.requires_two_factor()) {
            SessionStage::AwaitingEnrolment
        } else {
            SessionStage::SignedIn
        };
        let action = if stage == SessionStage::SignedIn { "auth.login.succeeded" } else { "auth.password.accepted" };
        self.record(AuditEvent::new(user_ref(user.id), now, action, user_ref(user.id)))?;
        self.new_session(user.id, stage, now).await
    }

    /// Second factor for a session awaiting it. Returns a new, fully signed-in session
    /// (the token changes whenever privileges do) and ends the old one.
    pub async fn complete_totp_login(&self, session_token: &str, code: &str, now: OffsetDateTime) -> Result<NewSession, AccountError> {
        let session = self.session(session_token, now).await?.ok_or(AccountError::NoSession)?;
        if session.stage != SessionStage::AwaitingTotp {
            return Err(AccountError::NoSession);
        }
        let user_id = session.user.id;
        let key = username_key(&session.user.username);
        let since = now.unix_timestamp() - self.config.failure_window.as_secs() as i64;
        if self.store.login_failures_since(&key, since).await? >= self.config.max_failed_logins {
            self.end_session_quietly(session_token).await?;
            return Err(AccountError::Throttled { retry_after_secs: self.config.failure_window.as_secs() });
        }
        if let Err(e) = self.check_totp(user_id, code, now).await {
            self.store.record_login_failure(&key, now.unix_timestamp()).await?;
            let reason = if matches!(e, AccountError::ReplayedTotp) { "replayed" } else { "wrong" };
            self.record(
                AuditEvent::new("anonymous", now, "auth.login.failed", user_ref(user_id))
                    .with_data(serde_json::json!({"factor": "totp", "reason": reason})),
            )?;
            return Err(e);
        }
        self.store.clear_login_failures(&key).await?;
        self.end_session_quietly(session_token).await?;
        self.record(
            AuditEvent::new(user_ref(user_id), now, "auth.login.succeeded", user_ref(user_id))
                .with_data(serde_json::json!({"factors": ["password", "totp"]})),
        )?;
        self.new_session(user_id, SessionStage::SignedIn, now).await
    }

    /// Starts (or restarts) TOTP enrolment: a new secret is stored sealed, not yet active.
    pub async fn begin_totp_enrolment(&self, user_id: i64, now: OffsetDateTime) -> Result<TotpEnrolment, AccountError> {
        let user = self.store.user(user_id).await?.ok_or(AccountError::NoSuchUser)?;
        let secret = secrets::new_totp_secret();
        self.store.set_pending_totp_secret(user_id, &self.sealer.seal(&secret, user.username.as_bytes())).await?;
        self.record(AuditEvent::new(user_ref(user_id), now, "auth.totp.enrolment_started", user_ref(user_id)))?;
        self.enrolment(&user.username, secret)
    }

    /// Confirms enrolment with a code from the new secret; for a session awaiting
    /// enrolment, returns a fully signed-in session in its place.
    pub async fn confirm_totp_enrolment(&self, session_token: &str, code: &str, now: OffsetDateTime) -> Result<NewSession, AccountError> {
        let session = self.session(session_token, now).await?.ok_or(AccountError::NoSession)?;
        if session.stage == SessionStage::AwaitingTotp {
            return Err(AccountError::NoSession);
        }
        let user_id = session.user.id;
        let step = self.matching_step(user_id, code, now, SecretSlot::Pending).await?;
        self.store.activate_pending_totp(user_id, step as i64).await?;
        self.end_session_quietly(session_token).await?;
        self.record(AuditEvent::new(user_ref(user_id), now, "auth.totp.enrolled", user_ref(user_id)))?;
        if session.stage == SessionStage::AwaitingEnrolment {
            self.record(
                AuditEvent::new(user_ref(user_id), now, "auth.login.succeeded", user_ref(user_id))
                    .with_data(serde_json::json!({"factors": ["password", "totp"]})),
            )?;
        }
        self.new_session(user_id, SessionStage::SignedIn, now).await
    }

    /// The live session for a cookie token.
    pub async fn session(&self, token: &str, now: OffsetDateTime) -> Result<Option<Session>, AccountError> {
        let Some(row) = self.store.live_session(&hash_token(token), now.unix_timestamp()).await? else { return Ok(None) };
        let stage = SessionStage::parse(&row.stage).ok_or_else(|| AccountError::Internal(format!("unknown session stage {}", row.stage)))?;
        let user = self.user(row.user_id).await?;
        let expires_at = OffsetDateTime::from_unix_timestamp(row.expires_at).map_err(|e| AccountError::Internal(e.to_string()))?;
        Ok(Some(Session { user, stage, csrf_token: row.csrf_token, expires_at }))
    }

    /// Ends a session (logout) and records it.
    pub async fn logout(&self, token: &str, now: OffsetDateTime) -> Result<(), AccountError> {
        if let Some(s) = self.session(token, now).await? {
            self.end_session_quietly(token).await?;
            self.record(AuditEvent::new(user_ref(s.user.id), now, "auth.logout", user_ref(s.user.id)))?;
        }
        Ok(())
    }

    /// Grants a role. Only an operator may, and the grant is recorded with who made it.
    pub async fn grant_role(&self, operator: &UserSummary, user_id: i64, role: Role, now: OffsetDateTime) -> Result<(), AccountError> {
        if !operator.has_role(Role::Operator) {
            return Err(AccountError::Forbidden(Role::Operator));
        }
        self.store.user(user_id).await?.ok_or(AccountError::NoSuchUser)?;
        self.store.grant_role(user_id, role, &user_ref(operator.id), now.unix_timestamp()).await?;
        self.record(
            AuditEvent::new(user_ref(operator.id), now, "role.granted", user_ref(user_id)).with_data(serde_json::json!({"role": role.as_str()})),
        )?;
        Ok(())
    }

    /// Grants a role from the command line on the server (an operator's shell action).
    pub async fn grant_role_from_cli(&self, cli_actor: &str, user_id: i64, role: Role, now: OffsetDateTime) -> Result<(), AccountError> {
        self.store.user(user_id).await?.ok_or(AccountError::NoSuchUser)?;
        self.store.grant_role(user_id, role, cli_actor, now.unix_timestamp()).await?;
        self.record(AuditEvent::new(cli_actor, now, "role.granted", user_ref(user_id)).with_data(serde_json::json!({"role": role.as_str()})))?;
        Ok(())
    }

    pub async fn revoke_role(&self, operator: &UserSummary, user_id: i64, role: Role, now: OffsetDateTime) -> Result<(), AccountError> {
        if !operator.has_role(Role::Operator) {
            return Err(AccountError::Forbidden(Role::Operator));
        }
        if self.store.revoke_role(user_id, role, &user_ref(operator.id), now.unix_timestamp()).await? == 0 {
            return Err(AccountError::NoSuchUser);
        }
        self.record(
            AuditEvent::new(user_ref(operator.id), now, "role.revoked", user_ref(user_id)).with_data(serde_json::json!({"role": role.as_str()})),
        )?;
        Ok(())
    }

    /// Creates an API token for the command line; the token is shown once.
    pub async fn create_api_token(&self, user_id: i64, label: &str, actor: &str, now: OffsetDateTime) -> Result<String, AccountError> {
        self.store.user(user_id).await?.ok_or(AccountError::NoSuchUser)?;
        let token = format!("niji_{}", random_token());
        self.store.create_api_token(user_id, &hash_token(&token), label, now.unix_timestamp(), None).await?;
        self.record(AuditEvent::new(actor, now, "auth.api_token.created", user_ref(user_id)))?;
        Ok(token)
    }

    pub async fn authenticate_api_token(&self, token: &str, now: OffsetDateTime) -> Result<UserSummary, AccountError> {
        let row = self.store.live_api_token(&hash_token(token), now.unix_timestamp()).await?.ok_or(AccountError::InvalidCredentials)?;
        self.user(row.user_id).await
    }

    /// Checks a code against the active secret and claims its time step (a code is
    /// accepted once).
    async fn check_totp(&self, user_id: i64, code: &str, now: OffsetDateTime) -> Result<(), AccountError> {
        let step = self.matching_step(user_id, code, now, SecretSlot::Active).await?;
        if !self.store.claim_totp_step(user_id, step as i64).await? {
            return Err(AccountError::ReplayedTotp);
        }
        Ok(())
    }

    /// The time step (now, or one either side for clock skew) whose code equals `code`.
    async fn matching_step(&self, user_id: i64, code: &str, now: OffsetDateTime, slot: SecretSlot) -> Result<u64, AccountError> {
        let user = self.store.user(user_id).await?.ok_or(AccountError::NoSuchUser)?;
        let sealed = match slot {
            SecretSlot::Active => user.totp_secret.filter(|_| user.totp_enabled),
            SecretSlot::Pending => user.totp_pending_secret,
        }
        .ok_or(AccountError::TotpNotEnrolled)?;
        let secret = self.sealer.open(&sealed, user.username.as_bytes()).map_err(|_| AccountError::Internal("TOTP secret does not unseal".into()))?;
        let code: String = code.chars().filter(|c| !c.is_whitespace()).collect();
        if code.len() != 6 || !code.bytes().all(|b| b.is_ascii_digit()) {
            return Err(AccountError::InvalidTotp);
        }
        let totp = secrets::totp(&secret, &user.username, &self.config.totp_issuer)?;
        let now_step = now.unix_timestamp().max(0) as u64 / TOTP_STEP;
        // One step of clock skew either way.
        let step = [now_step, now_step.saturating_sub(1), now_step + 1]
            .into_iter()
            .find(|s| secrets::constant_time_eq(totp.generate(s * TOTP_STEP).as_bytes(), code.as_bytes()))
            .ok_or(AccountError::InvalidTotp)?;
        Ok(step)
    }

    async fn new_session(&self, user_id: i64, stage: SessionStage, now: OffsetDateTime) -> Result<NewSession, AccountError> {
        let token = random_token();
        let csrf_token = random_token();
        let lifetime = if stage == SessionStage::SignedIn { self.config.session_lifetime } else { self.config.pending_session_lifetime };
        let expires_at = now + lifetime;
        self.store
            .create_session(&SessionRow {
                token_hash: hash_token(&token),
                user_id,
                stage: stage.as_str().into(),
                csrf_token: csrf_token.clone(),
                created_at: now.unix_timestamp(),
                expires_at: expires_at.unix_timestamp(),
            })
            .await?;
        Ok(NewSession { token, csrf_token, stage, expires_at })
    }

    async fn end_session_quietly(&self, token: &str) -> Result<(), AccountError> {
        self.store.delete_session(&hash_token(token)).await?;
        Ok(())
    }

    fn enrolment(&self, username: &str, secret: Vec<u8>) -> Result<TotpEnrolment, AccountError> {
        let totp = secrets::totp(&secret, username, &self.config.totp_issuer)?;
        Ok(TotpEnrolment { secret_base32: totp.get_secret_base32(), otpauth_url: totp.get_url() })
    }

    /// Writes an audit event; blocking I/O (an fsync) runs off the async workers.
    fn record(&self, event: AuditEvent) -> Result<u64, AccountError> {
        let audit = &self.audit;
        Ok(tokio::task::block_in_place(|| audit.record(&event))?)
    }
}

/// The current TOTP code for a base32 secret, for the command line and tests.
pub fn totp_code(secret_base32: &str, at: OffsetDateTime) -> Result<String, AccountError> {
    let secret = totp_rs::Secret::Encoded(secret_base32.to_string()).to_bytes().map_err(|e| AccountError::Internal(format!("{e:?}")))?;
    Ok(secrets::totp(&secret, "x", "x")?.generate(at.unix_timestamp().max(0) as u64))
}

fn user_ref(id: i64) -> String {
    format!("user:{id}")
}

/// The key under which failed logins are counted: a hash of the name as typed.
fn username_key(username: &str) -> String {
    hex::encode(hash_token(&username.trim().to_lowercase()))
}

fn validate_username(name: &str) -> Result<(), AccountError> {
    let ok = (3..=64).contains(&name.len()) && name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-".contains(&b));
    if ok {
        Ok(())
    } else {
        Err(AccountError::InvalidUsername)
    }
}
