//! The portal's pages: home, login with the second factor, TOTP enrolment, account,
//! status, language switch and logout; and what every page shares (the layout's
//! [`PageContext`], the session extractor, rendering and error pages) for the catalog and
//! upload pages of their own modules.

use crate::cookies::{self, CookiePolicy};
use crate::i18n::{Lang, Messages, LANG_COOKIE};
use crate::AppState;
use askama::Template;
use axum::extract::rejection::{FormRejection, PathRejection, QueryRejection};
use axum::extract::{FromRequestParts, Path, Query, State};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, StatusCode, Uri};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Form, Router};
use niji_accounts::{AccountError, NewSession, Session, SessionStage};
use serde::Deserialize;
use time::OffsetDateTime;

pub(crate) fn routes() -> Router<AppState> {
    Router::new()
        .route("/", get(home))
        .route("/login", get(login_page).post(login_submit))
        .route("/login/totp", get(totp_page).post(totp_submit))
        .route("/account", get(account_page))
        .route("/account/2fa", get(enrol_page).post(enrol_submit))
        .route("/logout", post(logout))
        .route("/status", get(status_page))
        .route("/admin/users", get(admin_users_page))
        .route("/admin/users/roles", post(admin_change_role))
        .route("/lang/{code}", get(switch_language))
        .route("/static/niji.css", get(stylesheet))
        .fallback(not_found)
}

/// What every page's layout needs.
pub(crate) struct PageContext {
    pub m: &'static Messages,
    pub lang: &'static str,
    pub other_lang: &'static str,
    pub user: Option<String>,
    pub csrf: String,
    pub path: String,
    pub is_operator: bool,
    /// Data holders and operators see the link to the upload page.
    pub can_upload: bool,
    /// Text of the application, review and permit pages.
    pub a: &'static crate::i18n::AppText,
    /// Researchers see the link to their applications.
    pub can_apply: bool,
    /// Operators (the secretariat), reviewers and chairs see the review queue.
    pub can_review: bool,
    /// Operators and researchers see the permits.
    pub can_see_permits: bool,
    /// Output checkers see their queue.
    pub can_check: bool,
}

impl PageContext {
    pub(crate) fn new(lang: Lang, session: Option<&Session>, uri: &Uri) -> Self {
        let signed_in = session.filter(|s| s.stage == SessionStage::SignedIn);
        Self {
            m: lang.messages(),
            lang: lang.code(),
            other_lang: if lang == Lang::Ja { "en" } else { "ja" },
            user: signed_in.map(|s| s.user.username.clone()),
            csrf: signed_in.map(|s| s.csrf_token.clone()).unwrap_or_default(),
            path: uri.path().to_string(),
            is_operator: signed_in.is_some_and(|s| s.user.has_role(niji_core::Role::Operator)),
            can_upload: signed_in.is_some_and(|s| may_submit(&s.user)),
            a: lang.apps(),
            can_apply: signed_in.is_some_and(|s| s.user.has_role(niji_core::Role::Researcher)),
            can_review: signed_in.is_some_and(|s| may_review(&s.user)),
            can_see_permits: signed_in.is_some_and(|s| s.user.has_role(niji_core::Role::Operator) || s.user.has_role(niji_core::Role::Researcher)),
            can_check: signed_in.is_some_and(|s| s.user.has_role(niji_core::Role::OutputChecker)),
        }
    }
}

/// The session behind the request's cookie, if any is live.
pub(crate) struct MaybeSession {
    token: Option<String>,
    session: Option<Session>,
}

impl FromRequestParts<AppState> for MaybeSession {
    type Rejection = Response;
    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        let Some(token) = cookies::get(&parts.headers, cookies::SESSION) else { return Ok(Self { token: None, session: None }) };
        let session = state.accounts().session(&token, OffsetDateTime::now_utc()).await.map_err(|e| {
            tracing::error!(error = %e, "session lookup failed");
            StatusCode::INTERNAL_SERVER_ERROR.into_response()
        })?;
        Ok(Self { token: Some(token), session })
    }
}

/// Whether an account may submit data: data holders, and operators on their behalf.
pub(crate) fn may_submit(user: &niji_accounts::UserSummary) -> bool {
    user.has_role(niji_core::Role::DataHolder) || user.has_role(niji_core::Role::Operator)
}

/// Whether an account sees the review queue: operators (the secretariat), reviewers and chairs.
pub(crate) fn may_review(user: &niji_accounts::UserSummary) -> bool {
    use niji_core::Role;
    user.has_role(Role::Operator) || user.has_role(Role::Reviewer) || user.has_role(Role::CommitteeChair)
}

impl MaybeSession {
    pub(crate) fn signed_in(&self) -> Option<&Session> {
        self.session.as_ref().filter(|s| s.stage == SessionStage::SignedIn)
    }
}

#[derive(Template)]
#[template(path = "home.html")]
struct HomePage {
    page: PageContext,
}

#[derive(Template)]
#[template(path = "login.html")]
struct LoginPage {
    page: PageContext,
    error: Option<&'static str>,
    form_csrf: String,
    username: String,
}

#[derive(Template)]
#[template(path = "totp.html")]
struct TotpPage {
    page: PageContext,
    error: Option<&'static str>,
    form_csrf: String,
}

#[derive(Template)]
#[template(path = "enrol.html")]
struct EnrolPage {
    page: PageContext,
    error: Option<&'static str>,
    form_csrf: String,
    secret: String,
    qr_svg: String,
}

#[derive(Template)]
#[template(path = "account.html")]
struct AccountPage {
    page: PageContext,
    username: String,
    display_name: String,
    organization: String,
    roles: Vec<&'static str>,
    two_factor: &'static str,
}

#[derive(Template)]
#[template(path = "status.html")]
struct StatusPage {
    page: PageContext,
    version: &'static str,
    uptime_secs: u64,
    log_size: u64,
    log_root: String,
    log_signed_at: String,
    schema_version: i64,
    accounts: i64,
}

#[derive(Template)]
#[template(path = "admin_users.html")]
struct AdminUsersPage {
    page: PageContext,
    notice: Option<&'static str>,
    error: Option<&'static str>,
    users: Vec<AdminUserRow>,
    roles: Vec<(&'static str, &'static str)>,
}

struct AdminUserRow {
    id: i64,
    username: String,
    display_name: String,
    organization: String,
    roles: String,
    two_factor: &'static str,
}

#[derive(Template)]
#[template(path = "error.html")]
struct ErrorPage {
    page: PageContext,
    message: &'static str,
}

pub(crate) fn render(t: impl Template) -> Response {
    match t.render() {
        Ok(html) => Html(html).into_response(),
        Err(e) => {
            tracing::error!(error = %e, "template failed");
            (StatusCode::INTERNAL_SERVER_ERROR, "internal error").into_response()
        }
    }
}

pub(crate) fn error_page(status: StatusCode, lang: Lang, session: Option<&Session>, uri: &Uri, pick: fn(&Messages) -> &'static str) -> Response {
    let m = lang.messages();
    (status, render(ErrorPage { page: PageContext::new(lang, session, uri), message: pick(m) })).into_response()
}

async fn home(lang: Lang, s: MaybeSession, uri: Uri) -> Response {
    render(HomePage { page: PageContext::new(lang, s.signed_in(), &uri) })
}

async fn not_found(lang: Lang, s: MaybeSession, uri: Uri) -> Response {
    error_page(StatusCode::NOT_FOUND, lang, s.signed_in(), &uri, |m| m.err_not_found)
}

async fn stylesheet() -> Response {
    ([(header::CONTENT_TYPE, "text/css; charset=utf-8"), (header::CACHE_CONTROL, "public, max-age=3600")], include_str!("../static/niji.css"))
        .into_response()
}

#[derive(Deserialize)]
struct NextQuery {
    next: Option<String>,
}

async fn switch_language(
    State(state): State<AppState>,
    code: Result<Path<String>, PathRejection>,
    q: Result<Query<NextQuery>, QueryRejection>,
) -> Response {
    let lang = code.ok().and_then(|Path(c)| Lang::parse(&c)).unwrap_or(Lang::Ja);
    let q = q.map(|Query(q)| q).unwrap_or(NextQuery { next: None });
    // Only local paths: never an open redirect.
    let next = q.next.filter(|n| n.starts_with('/') && !n.starts_with("//") && !n.contains('\\')).unwrap_or_else(|| "/".into());
    let mut resp = Redirect::to(&next).into_response();
    resp.headers_mut().append(header::SET_COOKIE, state.cookies().set(LANG_COOKIE, lang.code(), Some(365 * 24 * 3600)));
    resp
}

async fn login_page(State(state): State<AppState>, lang: Lang, s: MaybeSession, uri: Uri) -> Response {
    if s.signed_in().is_some() {
        return Redirect::to("/account").into_response();
    }
    login_form(&state, lang, &uri, None, String::new(), StatusCode::OK)
}

fn login_form(state: &AppState, lang: Lang, uri: &Uri, error: Option<&'static str>, username: String, status: StatusCode) -> Response {
    let form_csrf = random_token();
    let mut resp =
        (status, render(LoginPage { page: PageContext::new(lang, None, uri), error, form_csrf: form_csrf.clone(), username })).into_response();
    resp.headers_mut().append(header::SET_COOKIE, state.cookies().set(cookies::LOGIN_CSRF, &form_csrf, None));
    resp
}

#[derive(Deserialize)]
struct LoginForm {
    csrf: String,
    username: String,
    password: String,
}

async fn login_submit(
    State(state): State<AppState>,
    lang: Lang,
    uri: Uri,
    headers: HeaderMap,
    form: Result<Form<LoginForm>, FormRejection>,
) -> Response {
    let m = lang.messages();
    let Ok(Form(form)) = form else {
        return login_form(&state, lang, &uri, Some(m.err_bad_request), String::new(), StatusCode::BAD_REQUEST);
    };
    let expected = cookies::get(&headers, cookies::LOGIN_CSRF);
    if !expected.is_some_and(|e| constant_time_eq(e.as_bytes(), form.csrf.as_bytes())) {
        return login_form(&state, lang, &uri, Some(m.err_bad_request), String::new(), StatusCode::FORBIDDEN);
    }
    let username = form.username.trim().to_string();
    match state.accounts().login_with_password(&username, &form.password, OffsetDateTime::now_utc()).await {
        Ok(session) => {
            let to = match session.stage {
                SessionStage::AwaitingTotp => "/login/totp",
                SessionStage::AwaitingEnrolment => "/account/2fa",
                SessionStage::SignedIn => "/account",
            };
            with_session(Redirect::to(to).into_response(), state.cookies(), &session)
        }
        Err(e) => {
            let (status, msg) = account_error(&e, m);
            login_form(&state, lang, &uri, Some(msg), username.chars().take(64).collect(), status)
        }
    }
}

async fn totp_page(lang: Lang, s: MaybeSession, uri: Uri) -> Response {
    match &s.session {
        Some(sess) if sess.stage == SessionStage::AwaitingTotp => {
            render(TotpPage { page: PageContext::new(lang, None, &uri), error: None, form_csrf: sess.csrf_token.clone() })
        }
        Some(sess) if sess.stage == SessionStage::SignedIn => Redirect::to("/account").into_response(),
        _ => Redirect::to("/login").into_response(),
    }
}

#[derive(Deserialize)]
struct CodeForm {
    csrf: String,
    code: String,
}

async fn totp_submit(State(state): State<AppState>, lang: Lang, s: MaybeSession, uri: Uri, form: Result<Form<CodeForm>, FormRejection>) -> Response {
    let m = lang.messages();
    let (Some(token), Some(sess)) = (&s.token, &s.session) else { return Redirect::to("/login").into_response() };
    let error = |status: StatusCode, msg: &'static str| {
        (status, render(TotpPage { page: PageContext::new(lang, None, &uri), error: Some(msg), form_csrf: sess.csrf_token.clone() })).into_response()
    };
    let Ok(Form(form)) = form else { return error(StatusCode::BAD_REQUEST, m.err_bad_request) };
    if !constant_time_eq(form.csrf.as_bytes(), sess.csrf_token.as_bytes()) {
        return error(StatusCode::FORBIDDEN, m.err_bad_request);
    }
    match state.accounts().complete_totp_login(token, &form.code, OffsetDateTime::now_utc()).await {
        Ok(new) => with_session(Redirect::to("/account").into_response(), state.cookies(), &new),
        Err(AccountError::NoSession) | Err(AccountError::Throttled { .. }) => {
            let mut resp = login_form(&state, lang, &uri, Some(m.err_session), String::new(), StatusCode::UNAUTHORIZED);
            resp.headers_mut().append(header::SET_COOKIE, state.cookies().clear(cookies::SESSION));
            resp
        }
        Err(e) => {
            let (status, msg) = account_error(&e, m);
            error(status, msg)
        }
    }
}

async fn enrol_page(State(state): State<AppState>, lang: Lang, s: MaybeSession, uri: Uri) -> Response {
    enrolment_form(&state, lang, &s, &uri, None, StatusCode::OK).await
}

/// Shows a fresh secret: each visit, and each wrong code, starts enrolment over, so a
/// secret that was seen but not confirmed is never activated.
async fn enrolment_form(state: &AppState, lang: Lang, s: &MaybeSession, uri: &Uri, error: Option<&'static str>, status: StatusCode) -> Response {
    let Some(sess) = s.session.as_ref().filter(|x| x.stage != SessionStage::AwaitingTotp) else { return Redirect::to("/login").into_response() };
    match state.accounts().begin_totp_enrolment(sess.user.id, OffsetDateTime::now_utc()).await {
        Ok(enrolment) => (
            status,
            render(EnrolPage {
                page: PageContext::new(lang, s.signed_in(), uri),
                error,
                form_csrf: sess.csrf_token.clone(),
                qr_svg: qr_svg(&enrolment.otpauth_url),
                secret: enrolment.secret_base32,
            }),
        )
            .into_response(),
        Err(e) => {
            tracing::error!(error = %e, "enrolment failed");
            error_page(StatusCode::INTERNAL_SERVER_ERROR, lang, s.signed_in(), uri, |m| m.err_internal)
        }
    }
}

async fn enrol_submit(State(state): State<AppState>, lang: Lang, s: MaybeSession, uri: Uri, form: Result<Form<CodeForm>, FormRejection>) -> Response {
    let m = lang.messages();
    let (Some(token), Some(sess)) = (&s.token, s.session.as_ref().filter(|x| x.stage != SessionStage::AwaitingTotp)) else {
        return Redirect::to("/login").into_response();
    };
    let Ok(Form(form)) = form else { return error_page(StatusCode::BAD_REQUEST, lang, s.signed_in(), &uri, |m| m.err_bad_request) };
    if !constant_time_eq(form.csrf.as_bytes(), sess.csrf_token.as_bytes()) {
        return error_page(StatusCode::FORBIDDEN, lang, s.signed_in(), &uri, |m| m.err_bad_request);
    }
    match state.accounts().confirm_totp_enrolment(token, &form.code, OffsetDateTime::now_utc()).await {
        Ok(new) => with_session(Redirect::to("/account").into_response(), state.cookies(), &new),
        Err(e) => {
            let (status, msg) = account_error(&e, m);
            enrolment_form(&state, lang, &s, &uri, Some(msg), status).await
        }
    }
}

async fn account_page(lang: Lang, s: MaybeSession, uri: Uri) -> Response {
    let Some(sess) = s.signed_in() else { return Redirect::to("/login").into_response() };
    let m = lang.messages();
    let u = &sess.user;
    render(AccountPage {
        page: PageContext::new(lang, Some(sess), &uri),
        username: u.username.clone(),
        display_name: u.display_name.clone(),
        organization: u.organization.clone().unwrap_or_else(|| m.none.to_string()),
        roles: u.roles.iter().map(|r| lang.role_label(*r)).collect(),
        two_factor: if u.totp_enabled { m.enabled } else { m.not_enabled },
    })
}

#[derive(Deserialize)]
struct CsrfForm {
    csrf: String,
}

async fn logout(State(state): State<AppState>, lang: Lang, s: MaybeSession, uri: Uri, form: Result<Form<CsrfForm>, FormRejection>) -> Response {
    let (Some(token), Some(sess)) = (&s.token, &s.session) else { return Redirect::to("/").into_response() };
    let Ok(Form(form)) = form else { return error_page(StatusCode::BAD_REQUEST, lang, s.signed_in(), &uri, |m| m.err_bad_request) };
    if !constant_time_eq(form.csrf.as_bytes(), sess.csrf_token.as_bytes()) {
        return error_page(StatusCode::FORBIDDEN, lang, s.signed_in(), &uri, |m| m.err_bad_request);
    }
    if let Err(e) = state.accounts().logout(token, OffsetDateTime::now_utc()).await {
        tracing::error!(error = %e, "logout failed");
        return error_page(StatusCode::INTERNAL_SERVER_ERROR, lang, s.signed_in(), &uri, |m| m.err_internal);
    }
    let mut resp = Redirect::to("/").into_response();
    resp.headers_mut().append(header::SET_COOKIE, state.cookies().clear(cookies::SESSION));
    resp
}

async fn status_page(State(state): State<AppState>, lang: Lang, s: MaybeSession, uri: Uri) -> Response {
    let head = state.instance().log().head();
    let store = &state.instance().store;
    let (schema_version, accounts) = match (store.schema_version().await, store.count_users().await) {
        (Ok(v), Ok(n)) => (v, n),
        _ => return error_page(StatusCode::INTERNAL_SERVER_ERROR, lang, s.signed_in(), &uri, |m| m.err_internal),
    };
    render(StatusPage {
        page: PageContext::new(lang, s.signed_in(), &uri),
        version: env!("CARGO_PKG_VERSION"),
        uptime_secs: state.inner.started.elapsed().as_secs(),
        log_size: head.tree_size,
        log_root: hex::encode(head.root_hash),
        log_signed_at: crate::api::format_ms(head.timestamp_ms),
        schema_version,
        accounts,
    })
}

fn with_session(mut resp: Response, policy: CookiePolicy, session: &NewSession) -> Response {
    let max_age = (session.expires_at - OffsetDateTime::now_utc()).whole_seconds().max(0);
    resp.headers_mut().append(header::SET_COOKIE, policy.set(cookies::SESSION, &session.token, Some(max_age)));
    resp.headers_mut().append(header::SET_COOKIE, policy.clear(cookies::LOGIN_CSRF));
    resp
}

/// HTTP status and the translated message for an account error; never internal text.
fn account_error(e: &AccountError, m: &'static Messages) -> (StatusCode, &'static str) {
    match e {
        AccountError::InvalidCredentials => (StatusCode::UNAUTHORIZED, m.err_invalid_credentials),
        AccountError::Throttled { .. } => (StatusCode::TOO_MANY_REQUESTS, m.err_throttled),
        AccountError::InvalidTotp | AccountError::TotpNotEnrolled => (StatusCode::UNAUTHORIZED, m.err_invalid_totp),
        AccountError::ReplayedTotp => (StatusCode::UNAUTHORIZED, m.err_replayed_totp),
        AccountError::NoSession => (StatusCode::UNAUTHORIZED, m.err_session),
        other => {
            tracing::error!(error = %other, "account operation failed");
            (StatusCode::INTERNAL_SERVER_ERROR, m.err_internal)
        }
    }
}

fn qr_svg(url: &str) -> String {
    match qrcode::QrCode::new(url.as_bytes()) {
        Ok(code) => code.render::<qrcode::render::svg::Color>().min_dimensions(200, 200).build(),
        Err(_) => String::new(),
    }
}

pub(crate) fn random_token() -> String {
    use rand::RngCore;
    let mut b = [0u8; 24];
    rand::rngs::OsRng.fill_bytes(&mut b);
    hex::encode(b)
}

pub(crate) fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

async fn admin_users_page(State(state): State<AppState>, lang: Lang, s: MaybeSession, uri: Uri) -> Response {
    admin_users(&state, lang, &s, &uri, None, None, StatusCode::OK).await
}

async fn admin_users(
    state: &AppState,
    lang: Lang,
    s: &MaybeSession,
    uri: &Uri,
    notice: Option<&'static str>,
    error: Option<&'static str>,
    status: StatusCode,
) -> Response {
    let Some(sess) = s.signed_in() else { return Redirect::to("/login").into_response() };
    if !sess.user.has_role(niji_core::Role::Operator) {
        return error_page(StatusCode::FORBIDDEN, lang, Some(sess), uri, |m| m.err_forbidden);
    }
    let m = lang.messages();
    let rows = match state.instance().store.users().await {
        Ok(rows) => rows,
        Err(e) => {
            tracing::error!(error = %e, "listing users failed");
            return error_page(StatusCode::INTERNAL_SERVER_ERROR, lang, Some(sess), uri, |m| m.err_internal);
        }
    };
    let mut users = Vec::with_capacity(rows.len());
    for row in rows {
        let Ok(u) = state.accounts().user(row.id).await else { continue };
        users.push(AdminUserRow {
            id: u.id,
            username: u.username,
            display_name: u.display_name,
            organization: u.organization.unwrap_or_default(),
            roles: u.roles.iter().map(|r| lang.role_label(*r)).collect::<Vec<_>>().join("、"),
            two_factor: if u.totp_enabled { m.enabled } else { m.not_enabled },
        });
    }
    let roles = niji_core::Role::ALL.iter().map(|r| (r.as_str(), lang.role_label(*r))).collect();
    (status, render(AdminUsersPage { page: PageContext::new(lang, Some(sess), uri), notice, error, users, roles })).into_response()
}

#[derive(Deserialize)]
struct RoleChangeForm {
    csrf: String,
    user_id: i64,
    role: String,
    change: String,
}

async fn admin_change_role(
    State(state): State<AppState>,
    lang: Lang,
    s: MaybeSession,
    uri: Uri,
    form: Result<Form<RoleChangeForm>, FormRejection>,
) -> Response {
    let Some(sess) = s.signed_in() else { return Redirect::to("/login").into_response() };
    let Ok(Form(form)) = form else {
        return admin_users(&state, lang, &s, &uri, None, Some(lang.messages().err_bad_request), StatusCode::BAD_REQUEST).await;
    };
    if !constant_time_eq(form.csrf.as_bytes(), sess.csrf_token.as_bytes()) {
        return error_page(StatusCode::FORBIDDEN, lang, Some(sess), &uri, |m| m.err_bad_request);
    }
    let m = lang.messages();
    let Ok(role) = form.role.parse::<niji_core::Role>() else {
        return admin_users(&state, lang, &s, &uri, None, Some(m.err_no_such_grant), StatusCode::BAD_REQUEST).await;
    };
    let now = OffsetDateTime::now_utc();
    let (result, done) = match form.change.as_str() {
        "grant" => (state.accounts().grant_role(&sess.user, form.user_id, role, now).await, m.admin_granted),
        "revoke" => (state.accounts().revoke_role(&sess.user, form.user_id, role, now).await, m.admin_revoked),
        _ => return admin_users(&state, lang, &s, &uri, None, Some(m.err_bad_request), StatusCode::BAD_REQUEST).await,
    };
    match result {
        Ok(()) => admin_users(&state, lang, &s, &uri, Some(done), None, StatusCode::OK).await,
        Err(AccountError::Forbidden(_)) => error_page(StatusCode::FORBIDDEN, lang, Some(sess), &uri, |m| m.err_forbidden),
        Err(AccountError::NoSuchUser) => admin_users(&state, lang, &s, &uri, None, Some(m.err_no_such_grant), StatusCode::NOT_FOUND).await,
        Err(e) => {
            let (status, msg) = account_error(&e, m);
            admin_users(&state, lang, &s, &uri, None, Some(msg), status).await
        }
    }
}
