//! The data holder's side of the consent registry over HTTP (issue 6): issue a patient's access
//! credential, record a choice the patient made on paper, import a list of choices (CSV, all or
//! nothing). The holder is the account's organization; data holders (and operators, for their
//! own organization) may act. The portal page is `/registry`; the API is under
//! `/api/v1/registry/…` with an API token.
//!
//! Errors are stable codes; an import's problems name line and field with fixed reasons and
//! never quote the file.

use askama::Template;
use axum::extract::rejection::{FormRejection, JsonRejection};
use axum::extract::{DefaultBodyLimit, Multipart, State};
use axum::http::{StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Form, Json, Router};
use niji_accounts::UserSummary;
use niji_consent::{Choice, OptOutScope};
use niji_registry::{ActingAs, Author, HolderActor, ImportProblem, RegistryError};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use utoipa::{OpenApi, ToSchema};

use crate::api::{ApiError, ErrorBody, TokenUser};
use crate::i18n::Lang;
use crate::portal::{constant_time_eq, may_submit, render, MaybeSession, PageContext};
use crate::AppState;

/// Largest opt-out list accepted (about a million lines).
const MAX_IMPORT_BYTES: usize = 64 << 20;

pub(crate) fn routes() -> Router<AppState> {
    Router::new()
        .route("/registry", get(page))
        .route("/registry/credentials", post(issue_form))
        .route("/registry/choices", post(record_form))
        .route("/registry/import", post(import_form).layer(DefaultBodyLimit::max(MAX_IMPORT_BYTES)))
}

pub(crate) fn api_routes() -> Router<AppState> {
    Router::new()
        .route("/registry/credentials", post(issue_api))
        .route("/registry/choices", post(record_api))
        .route("/registry/import", post(import_api).layer(DefaultBodyLimit::max(MAX_IMPORT_BYTES)))
}

#[derive(OpenApi)]
#[openapi(
    paths(issue_api, record_api, import_api),
    components(schemas(CredentialRequest, CredentialBody, ChoiceRequest, EntryBody, ImportBody, ImportRefusedBody, ImportProblemBody))
)]
pub(crate) struct HolderRegistryDoc;

/// The holder an account acts for: its organization, if it may hand in data.
fn holder_of(user: &UserSummary) -> Option<HolderActor> {
    if !may_submit(user) {
        return None;
    }
    user.organization.clone().map(|holder| HolderActor { holder, audit: format!("user:{}", user.id) })
}

// ---------------------------------------------------------------------------------------------
// API.

#[derive(Deserialize, ToSchema)]
pub(crate) struct CredentialRequest {
    /// The holder's patient number, as in its submitted files.
    patient_id: String,
    /// `self` (default), `parent` (of a minor: ends at majority) or `guardian`.
    #[serde(default)]
    acting_as: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub(crate) struct CredentialBody {
    user_id: i64,
    /// Shown once: hand it to the patient (with the sign-in address `/citizen/login`).
    access_code: String,
    acting_as: &'static str,
    /// ISO date; `null`: no end.
    valid_until: Option<String>,
}

/// Issues a patient's access credential for the citizen portal.
#[utoipa::path(post, path = "/api/v1/registry/credentials", security(("bearer" = [])), request_body = CredentialRequest,
    responses((status = 201, body = CredentialBody), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody, description = "no patient with that number at this holder"), (status = 409, body = ErrorBody, description = "a parent's credential for an adult")))]
async fn issue_api(State(state): State<AppState>, TokenUser(user): TokenUser, body: Result<Json<CredentialRequest>, JsonRejection>) -> Response {
    let Some(holder) = holder_of(&user) else { return ApiError::Forbidden.into_response() };
    let Ok(Json(req)) = body else { return ApiError::BadRequest.into_response() };
    let Some(acting_as) = acting_as(req.acting_as.as_deref()) else { return ApiError::BadRequest.into_response() };
    match niji_registry::issue_credential(state.instance(), state.accounts(), &holder, &req.patient_id, acting_as, OffsetDateTime::now_utc()).await {
        Ok(issued) => (
            StatusCode::CREATED,
            Json(CredentialBody {
                user_id: issued.user_id,
                access_code: issued.access_code,
                acting_as: acting_as.code(),
                valid_until: issued.valid_until.map(|d| d.to_string()),
            }),
        )
            .into_response(),
        Err(e) => api_error(e).into_response(),
    }
}

#[derive(Deserialize, ToSchema)]
pub(crate) struct ChoiceRequest {
    patient_id: String,
    /// An opt-out: `all`, `purpose:<category>` or `recipient:<kind>`.
    #[serde(default)]
    opt_out: Option<String>,
    /// The date (YYYY-MM-DD) the notice of 丁寧なオプトアウト was delivered.
    #[serde(default)]
    notice: Option<String>,
    /// The id of an earlier entry (opt-out or consent) to withdraw.
    #[serde(default)]
    withdraw: Option<u64>,
}

#[derive(Serialize, ToSchema)]
pub(crate) struct EntryBody {
    /// The registry entry's id; the choice applies to every run from now on.
    entry: i64,
}

/// Records a choice a patient made on paper (exactly one of `opt_out`, `notice`, `withdraw`).
#[utoipa::path(post, path = "/api/v1/registry/choices", security(("bearer" = [])), request_body = ChoiceRequest,
    responses((status = 201, body = EntryBody), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 409, body = ErrorBody, description = "the choice cannot be recorded (e.g. withdrawing an unknown entry)")))]
async fn record_api(State(state): State<AppState>, TokenUser(user): TokenUser, body: Result<Json<ChoiceRequest>, JsonRejection>) -> Response {
    let Some(holder) = holder_of(&user) else { return ApiError::Forbidden.into_response() };
    let Ok(Json(req)) = body else { return ApiError::BadRequest.into_response() };
    let Some(choice) = choice(&holder.holder, req.opt_out.as_deref(), req.notice.as_deref(), req.withdraw) else {
        return ApiError::BadRequest.into_response();
    };
    let author = Author::Holder { actor: holder, patient_id: req.patient_id };
    match niji_registry::record_choice(state.instance(), &author, choice, OffsetDateTime::now_utc()).await {
        Ok(entry) => (StatusCode::CREATED, Json(EntryBody { entry })).into_response(),
        Err(e) => api_error(e).into_response(),
    }
}

#[derive(Serialize, ToSchema)]
pub(crate) struct ImportBody {
    imported: usize,
}

#[derive(Serialize, ToSchema)]
pub(crate) struct ImportRefusedBody {
    /// Always `bad_request`.
    code: &'static str,
    /// Nothing was imported.
    problems: Vec<ImportProblemBody>,
}

#[derive(Serialize, ToSchema)]
pub(crate) struct ImportProblemBody {
    /// 1 = the header.
    line: u64,
    field: &'static str,
    reason: &'static str,
}

/// Imports a list of choices: CSV in UTF-8 with the header `patient_id,choice,scope,date`
/// (`opt_out` with scope `all` / `purpose:<category>` / `recipient:<kind>`; `notice` with the
/// date delivered). All lines or none.
#[utoipa::path(post, path = "/api/v1/registry/import", security(("bearer" = [])), request_body(content = String, content_type = "text/csv"),
    responses((status = 200, body = ImportBody), (status = 400, body = ImportRefusedBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
async fn import_api(State(state): State<AppState>, TokenUser(user): TokenUser, body: axum::body::Bytes) -> Response {
    let Some(holder) = holder_of(&user) else { return ApiError::Forbidden.into_response() };
    match niji_registry::import_choices(state.instance(), &holder, &body, OffsetDateTime::now_utc()).await {
        Ok(imported) => Json(ImportBody { imported }).into_response(),
        Err(RegistryError::Import(problems)) => {
            (StatusCode::BAD_REQUEST, Json(ImportRefusedBody { code: "bad_request", problems: problem_bodies(&problems) })).into_response()
        }
        Err(e) => api_error(e).into_response(),
    }
}

fn problem_bodies(problems: &[ImportProblem]) -> Vec<ImportProblemBody> {
    problems.iter().map(|p| ImportProblemBody { line: p.line, field: p.field, reason: p.reason }).collect()
}

fn api_error(e: RegistryError) -> ApiError {
    match e {
        RegistryError::UnknownPatient => ApiError::NotFound,
        RegistryError::AlreadyOfAge | RegistryError::Choice(_) | RegistryError::NotTheRecorder => ApiError::Conflict,
        RegistryError::NoBirthDate | RegistryError::Import(_) => ApiError::BadRequest,
        other => {
            tracing::error!(error = %other, "registry step failed");
            ApiError::Internal
        }
    }
}

fn acting_as(code: Option<&str>) -> Option<ActingAs> {
    match code {
        None | Some("") => Some(ActingAs::Person),
        Some(c) => ActingAs::from_code(c),
    }
}

fn choice(holder: &str, opt_out: Option<&str>, notice: Option<&str>, withdraw: Option<u64>) -> Option<Choice> {
    match (opt_out.filter(|s| !s.is_empty()), notice.filter(|s| !s.is_empty()), withdraw) {
        (Some(scope), None, None) => Some(Choice::OptOut { scope: OptOutScope::parse(scope)? }),
        (None, Some(date), None) => Some(Choice::NoticeDelivered {
            holder: holder.to_string(),
            delivered_on: time::Date::parse(date, &time::format_description::well_known::Iso8601::DATE).ok()?,
        }),
        (None, None, Some(entry)) => Some(Choice::Withdraw { entry }),
        _ => None,
    }
}

// ---------------------------------------------------------------------------------------------
// Portal.

struct Text {
    title: &'static str,
    intro: &'static str,
    issue: &'static str,
    patient_id: &'static str,
    acting_as: &'static str,
    acting_self: &'static str,
    acting_parent: &'static str,
    acting_guardian: &'static str,
    issue_button: &'static str,
    issued: &'static str,
    issued_hint: &'static str,
    valid_until: &'static str,
    record: &'static str,
    opt_out: &'static str,
    opt_out_hint: &'static str,
    notice: &'static str,
    withdraw: &'static str,
    record_button: &'static str,
    recorded: &'static str,
    import: &'static str,
    import_hint: &'static str,
    import_button: &'static str,
    imported: &'static str,
    refused: &'static str,
    line: &'static str,
    field: &'static str,
    reason: &'static str,
    err_patient: &'static str,
    err_of_age: &'static str,
    err_choice: &'static str,
    err_bad_request: &'static str,
}

static JA: Text = Text {
    title: "同意・オプトアウトの管理（データ提供者）",
    intro: "患者さんに「わたしのデータ」（/citizen/login）のアクセスコードを発行し、書面で受け付けた選択を記録し、一覧を取り込みます。記録した時点から後のすべての利用に適用されます。",
    issue: "アクセスコードの発行",
    patient_id: "患者番号（提出ファイルの患者ID）",
    acting_as: "使う人",
    acting_self: "本人",
    acting_parent: "親権者（未成年の間）",
    acting_guardian: "後見人等",
    issue_button: "発行する",
    issued: "アクセスコード",
    issued_hint: "このコードは今だけ表示されます。患者さんに生年月日と合わせて使うよう渡してください。",
    valid_until: "有効期限",
    record: "書面で受け付けた選択の記録",
    opt_out: "利用の停止",
    opt_out_hint: "all、purpose:<目的>、recipient:<提供先の種類>",
    notice: "通知日（丁寧なオプトアウト）",
    withdraw: "撤回する記録番号",
    record_button: "記録する",
    recorded: "記録しました。記録番号",
    import: "一覧の取り込み（CSV）",
    import_hint: "UTF-8、見出し行 patient_id,choice,scope,date。1行でも誤りがあれば何も取り込みません。",
    import_button: "取り込む",
    imported: "件を取り込みました。",
    refused: "取り込みませんでした。次の行を直してください。",
    line: "行",
    field: "項目",
    reason: "理由",
    err_patient: "その患者番号はこの提供者のデータにありません。",
    err_of_age: "ご本人はすでに成年です。親権者のコードは発行できません。",
    err_choice: "この選択は記録できません（撤回する記録が無いか、すでに撤回されています）。",
    err_bad_request: "入力を確かめてください。",
};

static EN: Text = Text {
    title: "Consent and opt-outs (data holders)",
    intro: "Issue patients' access codes for “My data” (/citizen/login), record choices made on paper, and import lists. A choice applies to every use from the time it is recorded.",
    issue: "Issue an access code",
    patient_id: "Patient number (as in the submitted files)",
    acting_as: "Used by",
    acting_self: "The patient",
    acting_parent: "A parent (while a minor)",
    acting_guardian: "A guardian",
    issue_button: "Issue",
    issued: "Access code",
    issued_hint: "The code is shown only now. Hand it to the patient, to be used with their birth date.",
    valid_until: "Valid until",
    record: "Record a choice made on paper",
    opt_out: "Stop use",
    opt_out_hint: "all, purpose:<category>, recipient:<kind>",
    notice: "Notice delivered on",
    withdraw: "Withdraw entry number",
    record_button: "Record",
    recorded: "Recorded. Entry",
    import: "Import a list (CSV)",
    import_hint: "UTF-8 with the header patient_id,choice,scope,date. If any line is wrong, nothing is imported.",
    import_button: "Import",
    imported: "choices imported.",
    refused: "Nothing was imported. Please correct these lines.",
    line: "Line",
    field: "Field",
    reason: "Reason",
    err_patient: "No patient with that number in this holder's data.",
    err_of_age: "The patient is of age: no parent's code can be issued.",
    err_choice: "The choice cannot be recorded (no such entry to withdraw, or already withdrawn).",
    err_bad_request: "Please check the form.",
};

#[derive(Template)]
#[template(path = "holder_registry.html")]
struct Page {
    page: PageContext,
    t: &'static Text,
    holder: String,
    message: Option<String>,
    error: Option<&'static str>,
    code: Option<(String, Option<String>)>,
    problems: Vec<ImportProblemBody>,
}

fn text(lang: Lang) -> &'static Text {
    match lang {
        Lang::Ja => &JA,
        Lang::En => &EN,
    }
}

/// The page with what the last step gave.
struct Shown {
    status: StatusCode,
    message: Option<String>,
    error: Option<&'static str>,
    code: Option<(String, Option<String>)>,
    problems: Vec<ImportProblemBody>,
}

impl Shown {
    fn ok() -> Self {
        Shown { status: StatusCode::OK, message: None, error: None, code: None, problems: vec![] }
    }
    fn error(status: StatusCode, error: &'static str) -> Self {
        Shown { status, error: Some(error), ..Shown::ok() }
    }
}

/// The signed-in holder, or the response to give instead.
#[allow(clippy::result_large_err)] // a page guard's early answer, built once per request
fn signed_in_holder(s: &MaybeSession, lang: Lang, uri: &Uri) -> Result<(UserSummary, HolderActor), Response> {
    let Some(sess) = s.signed_in() else { return Err(axum::response::Redirect::to("/login").into_response()) };
    match holder_of(&sess.user) {
        Some(h) => Ok((sess.user.clone(), h)),
        None => Err(crate::portal::error_page(StatusCode::FORBIDDEN, lang, Some(sess), uri, |m| m.err_forbidden)),
    }
}

fn show(s: &MaybeSession, lang: Lang, uri: &Uri, holder: &HolderActor, shown: Shown) -> Response {
    let page = Page {
        page: PageContext::new(lang, s.signed_in(), uri),
        t: text(lang),
        holder: holder.holder.clone(),
        message: shown.message,
        error: shown.error,
        code: shown.code,
        problems: shown.problems,
    };
    (shown.status, render(page)).into_response()
}

async fn page(lang: Lang, s: MaybeSession, uri: Uri) -> Response {
    match signed_in_holder(&s, lang, &uri) {
        Ok((_, holder)) => show(&s, lang, &uri, &holder, Shown::ok()),
        Err(resp) => resp,
    }
}

fn registry_error(t: &'static Text, e: RegistryError) -> Shown {
    match e {
        RegistryError::UnknownPatient => Shown::error(StatusCode::NOT_FOUND, t.err_patient),
        RegistryError::AlreadyOfAge => Shown::error(StatusCode::CONFLICT, t.err_of_age),
        RegistryError::Choice(_) | RegistryError::NotTheRecorder => Shown::error(StatusCode::CONFLICT, t.err_choice),
        RegistryError::NoBirthDate | RegistryError::Import(_) => Shown::error(StatusCode::BAD_REQUEST, t.err_bad_request),
        other => {
            tracing::error!(error = %other, "registry step failed");
            Shown::error(StatusCode::INTERNAL_SERVER_ERROR, t.err_bad_request)
        }
    }
}

#[derive(Deserialize)]
struct IssueForm {
    csrf: String,
    patient_id: String,
    acting_as: String,
}

async fn issue_form(State(state): State<AppState>, lang: Lang, s: MaybeSession, uri: Uri, form: Result<Form<IssueForm>, FormRejection>) -> Response {
    let (_, holder) = match signed_in_holder(&s, lang, &uri) {
        Ok(h) => h,
        Err(resp) => return resp,
    };
    let t = text(lang);
    let csrf = s.signed_in().map(|x| x.csrf_token.clone()).unwrap_or_default();
    let shown = match form {
        Ok(Form(f)) if constant_time_eq(f.csrf.as_bytes(), csrf.as_bytes()) => match acting_as(Some(&f.acting_as)) {
            Some(acting) => {
                match niji_registry::issue_credential(
                    state.instance(),
                    state.accounts(),
                    &holder,
                    f.patient_id.trim(),
                    acting,
                    OffsetDateTime::now_utc(),
                )
                .await
                {
                    Ok(issued) => Shown { code: Some((issued.access_code, issued.valid_until.map(|d| d.to_string()))), ..Shown::ok() },
                    Err(e) => registry_error(t, e),
                }
            }
            None => Shown::error(StatusCode::BAD_REQUEST, t.err_bad_request),
        },
        Ok(_) => Shown::error(StatusCode::FORBIDDEN, t.err_bad_request),
        Err(_) => Shown::error(StatusCode::BAD_REQUEST, t.err_bad_request),
    };
    show(&s, lang, &uri, &holder, shown)
}

#[derive(Deserialize)]
struct RecordForm {
    csrf: String,
    patient_id: String,
    #[serde(default)]
    opt_out: String,
    #[serde(default)]
    notice: String,
    #[serde(default)]
    withdraw: String,
}

async fn record_form(
    State(state): State<AppState>,
    lang: Lang,
    s: MaybeSession,
    uri: Uri,
    form: Result<Form<RecordForm>, FormRejection>,
) -> Response {
    let (_, holder) = match signed_in_holder(&s, lang, &uri) {
        Ok(h) => h,
        Err(resp) => return resp,
    };
    let t = text(lang);
    let csrf = s.signed_in().map(|x| x.csrf_token.clone()).unwrap_or_default();
    let shown = match form {
        Ok(Form(f)) if constant_time_eq(f.csrf.as_bytes(), csrf.as_bytes()) => {
            let withdraw = if f.withdraw.trim().is_empty() { None } else { f.withdraw.trim().parse().ok().or(Some(0)) };
            match choice(&holder.holder, Some(f.opt_out.trim()), Some(f.notice.trim()), withdraw) {
                Some(choice) => {
                    let author = Author::Holder { actor: holder.clone(), patient_id: f.patient_id.trim().to_string() };
                    match niji_registry::record_choice(state.instance(), &author, choice, OffsetDateTime::now_utc()).await {
                        Ok(id) => Shown { message: Some(format!("{} {id}", t.recorded)), ..Shown::ok() },
                        Err(e) => registry_error(t, e),
                    }
                }
                None => Shown::error(StatusCode::BAD_REQUEST, t.err_bad_request),
            }
        }
        Ok(_) => Shown::error(StatusCode::FORBIDDEN, t.err_bad_request),
        Err(_) => Shown::error(StatusCode::BAD_REQUEST, t.err_bad_request),
    };
    show(&s, lang, &uri, &holder, shown)
}

async fn import_form(
    State(state): State<AppState>,
    lang: Lang,
    s: MaybeSession,
    uri: Uri,
    multipart: Result<Multipart, axum::extract::multipart::MultipartRejection>,
) -> Response {
    let (_, holder) = match signed_in_holder(&s, lang, &uri) {
        Ok(h) => h,
        Err(resp) => return resp,
    };
    let t = text(lang);
    let csrf = s.signed_in().map(|x| x.csrf_token.clone()).unwrap_or_default();
    let Ok(mut multipart) = multipart else { return show(&s, lang, &uri, &holder, Shown::error(StatusCode::BAD_REQUEST, t.err_bad_request)) };
    let (mut token, mut file) = (None, None);
    while let Ok(Some(field)) = multipart.next_field().await {
        match field.name() {
            Some("csrf") => token = field.text().await.ok(),
            Some("file") => file = field.bytes().await.ok(),
            _ => {}
        }
    }
    if !token.is_some_and(|tk| constant_time_eq(tk.as_bytes(), csrf.as_bytes())) {
        return show(&s, lang, &uri, &holder, Shown::error(StatusCode::FORBIDDEN, t.err_bad_request));
    }
    let Some(file) = file else { return show(&s, lang, &uri, &holder, Shown::error(StatusCode::BAD_REQUEST, t.err_bad_request)) };
    let shown = match niji_registry::import_choices(state.instance(), &holder, &file, OffsetDateTime::now_utc()).await {
        Ok(n) => Shown { message: Some(format!("{n} {}", t.imported)), ..Shown::ok() },
        Err(RegistryError::Import(problems)) => {
            Shown { status: StatusCode::BAD_REQUEST, error: Some(t.refused), problems: problem_bodies(&problems), ..Shown::ok() }
        }
        Err(e) => registry_error(t, e),
    };
    show(&s, lang, &uri, &holder, shown)
}
