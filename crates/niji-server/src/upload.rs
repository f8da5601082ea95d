//! Data holders' submissions over HTTP: the portal's `/datasets/upload` form and the API's
//! `POST /api/v1/datasets/{name}/versions`, both multipart, both run by [`niji_intake::ingest`].
//!
//! The uploaded files are streamed (never held in memory) into a fresh folder
//! `<instance>/uploads/<random>/` (mode 0700), which is removed when the intake ends, whatever
//! its outcome — also when the client goes away, as the intake runs in its own task that owns
//! the folder. The holder is the account's organization; the actor is `user:<id>`. Body size
//! is capped by [`ServerConfig::max_upload_bytes`](crate::ServerConfig).
//!
//! Who may submit: data holders, and operators (for their own organization). An account
//! without an organization, or a dataset of another holder, is refused (`forbidden`).
//!
//! Invariants: responses carry counts, fixed reasons and locations (`file:line:field`) only —
//! never a value from an uploaded file nor an internal error text. File names are reduced to
//! letters, digits, `.`, `-` and `_` before they touch the disk or a report. On the portal the
//! CSRF field must come before any file, so no file of a forged request reaches the disk.

use crate::api::{ApiError, ErrorBody, TokenUser};
use crate::i18n::{Lang, Messages};
use crate::portal::{constant_time_eq, error_page, may_submit, random_token, render, MaybeSession, PageContext};
use crate::AppState;
use askama::Template;
use axum::extract::multipart::{Field, MultipartError, MultipartRejection};
use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::{DefaultBodyLimit, Multipart, Path, Query, State};
use axum::http::{StatusCode, Uri};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use niji_accounts::UserSummary;
use niji_intake::{DatasetDescription, IntakeError, IntakeOptions, NoProgress, OnReject, Outcome, Submission};
use serde::{Deserialize, Serialize};
use std::path::PathBuf;
use std::sync::Arc;
use tokio::io::AsyncWriteExt;
use utoipa::{IntoParams, ToSchema};

pub(crate) fn portal_routes(limit: usize) -> Router<AppState> {
    Router::new().route("/datasets/upload", get(upload_page).post(upload_submit)).layer(DefaultBodyLimit::max(limit))
}

pub(crate) fn api_routes(limit: usize) -> Router<AppState> {
    Router::new().route("/datasets/{name}/versions", post(api_submit)).layer(DefaultBodyLimit::max(limit))
}

/// Problems listed in an API answer.
const API_PROBLEMS: usize = 1000;
/// Problem lines shown on the portal's result page.
const PORTAL_PROBLEMS: usize = 50;
/// Most files in one submission.
const MAX_FILES: usize = 10_000;
/// Longest text field of the form (dataset name, titles, CSRF token, checkbox).
const MAX_TEXT_FIELD: usize = 1024;

/// Why a submission was not run; each maps to a stable API code and a portal message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum SubmitError {
    /// Wrong role, no organization, or the organization is not registered.
    Forbidden,
    NotTheHolder,
    BadName,
    NoFiles,
    BadFile,
    BadRequest,
    TooLarge,
    Internal,
}

impl SubmitError {
    fn api(self) -> ApiError {
        match self {
            SubmitError::Forbidden | SubmitError::NotTheHolder => ApiError::Forbidden,
            SubmitError::BadName | SubmitError::NoFiles | SubmitError::BadFile | SubmitError::BadRequest => ApiError::BadRequest,
            SubmitError::TooLarge => ApiError::PayloadTooLarge,
            SubmitError::Internal => ApiError::Internal,
        }
    }
    fn portal(self, m: &'static Messages) -> (StatusCode, &'static str) {
        match self {
            SubmitError::Forbidden => (StatusCode::FORBIDDEN, m.err_upload_forbidden),
            SubmitError::NotTheHolder => (StatusCode::FORBIDDEN, m.err_not_holder),
            SubmitError::BadName => (StatusCode::BAD_REQUEST, m.err_dataset_name),
            SubmitError::NoFiles => (StatusCode::BAD_REQUEST, m.err_no_files),
            SubmitError::BadFile => (StatusCode::BAD_REQUEST, m.err_bad_file),
            SubmitError::BadRequest => (StatusCode::BAD_REQUEST, m.err_bad_request),
            SubmitError::TooLarge => (StatusCode::PAYLOAD_TOO_LARGE, m.err_too_large),
            SubmitError::Internal => (StatusCode::INTERNAL_SERVER_ERROR, m.err_internal),
        }
    }
}

fn multipart_error(e: MultipartError) -> SubmitError {
    if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
        SubmitError::TooLarge
    } else {
        SubmitError::BadRequest
    }
}

/// A folder of uploaded files, removed on drop.
struct UploadDir(PathBuf);

impl UploadDir {
    fn create(state: &AppState) -> Result<Self, SubmitError> {
        let path = state.instance().paths.root.join("uploads").join(random_token());
        let mut builder = std::fs::DirBuilder::new();
        builder.recursive(true);
        #[cfg(unix)]
        std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
        builder.create(&path).map_err(|e| {
            tracing::error!(error = %e, "creating an upload folder failed");
            SubmitError::Internal
        })?;
        Ok(Self(path))
    }
}

impl Drop for UploadDir {
    fn drop(&mut self) {
        if let Err(e) = std::fs::remove_dir_all(&self.0) {
            if e.kind() != std::io::ErrorKind::NotFound {
                tracing::error!(error = %e, "removing an upload folder failed");
            }
        }
    }
}

/// What a multipart submission carried.
#[derive(Default)]
struct Received {
    csrf: Option<String>,
    dataset: Option<String>,
    title_ja: String,
    title_en: String,
    quarantine: bool,
    files: Vec<PathBuf>,
}

/// A file name safe for the upload folder and for reports: the last path component, with
/// every character but letters, digits, `.`, `-` and `_` replaced by `_`; never hidden or empty.
fn safe_file_name(raw: &str) -> String {
    let last = raw.rsplit(['/', '\\']).next().unwrap_or_default();
    let mut name: String = last.chars().take(120).map(|c| if c.is_alphanumeric() || matches!(c, '.' | '-' | '_') { c } else { '_' }).collect();
    if name.starts_with('.') {
        name.insert(0, '_');
    }
    if name.is_empty() {
        name.push_str("file");
    }
    name
}

async fn read_text(mut field: Field<'_>) -> Result<String, SubmitError> {
    let mut buf = Vec::new();
    while let Some(chunk) = field.chunk().await.map_err(multipart_error)? {
        if buf.len() + chunk.len() > MAX_TEXT_FIELD {
            return Err(SubmitError::BadRequest);
        }
        buf.extend_from_slice(&chunk);
    }
    String::from_utf8(buf).map_err(|_| SubmitError::BadRequest)
}

/// Streams the parts of `mp` into `dir`. With `csrf_expected`, a file before a matching `csrf`
/// field is refused (`Forbidden`) before it is written.
async fn receive(mut mp: Multipart, dir: &UploadDir, csrf_expected: Option<&str>) -> Result<Received, SubmitError> {
    let mut r = Received::default();
    let mut names: std::collections::HashSet<String> = std::collections::HashSet::new();
    while let Some(mut field) = mp.next_field().await.map_err(multipart_error)? {
        let file_name = field.file_name().map(str::to_string);
        let name = field.name().unwrap_or_default().to_string();
        match file_name {
            Some(raw) => {
                if let Some(expected) = csrf_expected {
                    if !r.csrf.as_deref().is_some_and(|c| constant_time_eq(c.as_bytes(), expected.as_bytes())) {
                        return Err(SubmitError::Forbidden);
                    }
                }
                if raw.is_empty() {
                    // An empty file input of a browser form: no file chosen.
                    while field.chunk().await.map_err(multipart_error)?.is_some() {}
                    continue;
                }
                if r.files.len() >= MAX_FILES {
                    return Err(SubmitError::BadRequest);
                }
                let base = safe_file_name(&raw);
                let mut unique = base.clone();
                let mut n = 1;
                while !names.insert(unique.clone()) {
                    n += 1;
                    unique = format!("{n}-{base}");
                }
                let path = dir.0.join(&unique);
                let mut out = tokio::fs::File::create(&path).await.map_err(|e| {
                    tracing::error!(error = %e, "creating an uploaded file failed");
                    SubmitError::Internal
                })?;
                while let Some(chunk) = field.chunk().await.map_err(multipart_error)? {
                    out.write_all(&chunk).await.map_err(|e| {
                        tracing::error!(error = %e, "writing an uploaded file failed");
                        SubmitError::Internal
                    })?;
                }
                out.flush().await.map_err(|_| SubmitError::Internal)?;
                r.files.push(path);
            }
            None => {
                let text = read_text(field).await?;
                match name.as_str() {
                    "csrf" => r.csrf = Some(text),
                    "dataset" => r.dataset = Some(text.trim().to_string()),
                    "title_ja" => r.title_ja = text.trim().to_string(),
                    "title_en" => r.title_en = text.trim().to_string(),
                    "quarantine" => r.quarantine = matches!(text.trim(), "on" | "true" | "1" | "yes"),
                    _ => {}
                }
            }
        }
    }
    Ok(r)
}

/// The checks that need no file: role, organization, name, ownership. Returns the holder.
async fn precheck(state: &AppState, user: &UserSummary, dataset: &str) -> Result<String, SubmitError> {
    if !may_submit(user) {
        return Err(SubmitError::Forbidden);
    }
    let Some(org) = user.organization.clone() else { return Err(SubmitError::Forbidden) };
    if !niji_intake::valid_dataset_name(dataset) {
        return Err(SubmitError::BadName);
    }
    let store = &state.instance().store;
    let internal = |e: niji_store::StoreError| {
        tracing::error!(error = %e, "looking up a dataset or organization failed");
        SubmitError::Internal
    };
    let holder = store.organization_by_name(&org).await.map_err(internal)?.ok_or(SubmitError::Forbidden)?;
    if let Some(d) = store.dataset_by_name(dataset).await.map_err(internal)? {
        if d.holder_id != holder.id {
            return Err(SubmitError::NotTheHolder);
        }
    }
    Ok(org)
}

/// The dataset kind the files' extensions suggest (used when titles are given for a new dataset).
fn kind_of(files: &[PathBuf]) -> &'static str {
    let ext = |p: &PathBuf| p.extension().and_then(|e| e.to_str()).map(str::to_ascii_lowercase).unwrap_or_default();
    let all = |f: &dyn Fn(&str) -> bool| files.iter().all(|p| f(&ext(p)));
    if all(&|e| e == "json" || e == "ndjson") {
        "ehr"
    } else if all(&|e| e == "uke") {
        "claims"
    } else if all(&|e| e == "csv") {
        "registry"
    } else {
        "mixed"
    }
}

/// Today's calendar date in Japan (UTC+9): the intake's "not in the future" checks and the
/// review workflow's submission days, deadlines and permit periods.
pub(crate) fn today_jst() -> time::Date {
    niji_core::today_jst(time::OffsetDateTime::now_utc())
}

/// Today's settings, with the code masters the operator put in the instance's `masters/` (looked
/// at every intake, so that a new master needs no restart; read again only when a file changed).
fn options(paths: &niji_instance::InstancePaths, cache: &niji_ingest::MastersCache) -> Result<IntakeOptions, niji_ingest::MasterError> {
    let today = today_jst();
    let date = niji_ingest::Date::new(today.year() as u16, today.month() as u8, today.day()).expect("today is a calendar date");
    let mut ingest = niji_ingest::IngestConfig::new(date);
    ingest.clins_strict = true;
    let (codes, masters) = cache.load_dir(&paths.masters())?;
    ingest.masters = codes;
    for path in &masters.ignored {
        tracing::warn!(file = %path.display(), "not read as a code master: its name names no code system");
    }
    Ok(IntakeOptions::new(ingest))
}

/// Runs the intake in its own task, which owns (and at its end removes) the upload folder.
async fn run(state: &AppState, user: &UserSummary, holder: String, dataset: String, r: Received, dir: UploadDir) -> Result<Outcome, SubmitError> {
    if r.files.is_empty() {
        return Err(SubmitError::NoFiles);
    }
    let description = (!r.title_ja.is_empty() || !r.title_en.is_empty()).then(|| DatasetDescription {
        kind: kind_of(&r.files).to_string(),
        title_ja: if r.title_ja.is_empty() { dataset.clone() } else { r.title_ja.clone() },
        title_en: if r.title_en.is_empty() { dataset.clone() } else { r.title_en.clone() },
        description_ja: String::new(),
        description_en: String::new(),
    });
    let submission = Submission {
        holder,
        dataset,
        description,
        files: r.files,
        csv_mapping: None,
        on_reject: if r.quarantine { OnReject::Quarantine } else { OnReject::RefuseSubmission },
        actor: format!("user:{}", user.id),
    };
    let instance = state.instance_arc();
    // Reading the masters is file work: off the async workers.
    let masters = state.clone();
    let options = match tokio::task::spawn_blocking(move || options(&masters.instance().paths, masters.masters())).await {
        Ok(Ok(options)) => options,
        Ok(Err(e)) => {
            // An operator's file: the message names it, never its content.
            tracing::error!(error = %e, "cannot load the instance's code masters");
            return Err(SubmitError::Internal);
        }
        Err(e) => {
            tracing::error!(error = %e, "the task loading the code masters failed");
            return Err(SubmitError::Internal);
        }
    };
    let task = tokio::spawn(async move {
        let result = niji_intake::ingest(&instance, submission, &options, Arc::new(NoProgress)).await;
        drop(dir);
        result
    });
    match task.await {
        Ok(Ok(outcome)) => Ok(outcome),
        Ok(Err(e)) => Err(intake_error(e)),
        Err(e) => {
            tracing::error!(error = %e, "the intake task failed");
            Err(SubmitError::Internal)
        }
    }
}

fn intake_error(e: IntakeError) -> SubmitError {
    match e {
        IntakeError::BadDatasetName => SubmitError::BadName,
        IntakeError::NoFiles => SubmitError::NoFiles,
        IntakeError::UnknownHolder(_) => SubmitError::Forbidden,
        IntakeError::NotTheHolder { .. } => SubmitError::NotTheHolder,
        IntakeError::File { .. } | IntakeError::FileChanged { .. } | IntakeError::DuplicateFile(_) => SubmitError::BadFile,
        other => {
            tracing::error!(error = %other, "intake failed");
            SubmitError::Internal
        }
    }
}

// ---------------------------------------------------------------------------------------
// API

#[derive(Deserialize, IntoParams)]
pub(crate) struct SubmitQuery {
    /// Accept the submission without its rejected records, which are quarantined (default false).
    quarantine: Option<bool>,
}

/// The multipart body of a submission.
#[derive(ToSchema)]
#[allow(dead_code)]
pub(crate) struct UploadForm {
    /// The files (FHIR JSON / NDJSON, UKE), each a part with a file name.
    #[schema(value_type = Vec<String>, format = Binary)]
    files: Vec<Vec<u8>>,
    /// Title in Japanese of a new dataset.
    title_ja: Option<String>,
    /// Title in English of a new dataset.
    title_en: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub(crate) struct SubmissionBody {
    /// `committed` or `refused`.
    outcome: &'static str,
    dataset: String,
    /// The new version's number (absent when refused).
    #[serde(skip_serializing_if = "Option::is_none")]
    version: Option<i64>,
    records_accepted: u64,
    /// Rejected records left out by quarantine.
    records_quarantined: u64,
    /// Rejected records (of a refused submission: the reason it was refused).
    records_rejected: u64,
    persons: u64,
    /// Persons of this version also found in other holders' datasets, as the catalog shows counts (rounded to
    /// 10, absent below 10): exact figures about other holders' data are for operators only.
    persons_shared: Option<u64>,
    /// All problems of rejected records (the first 1000 are listed).
    problems_total: u64,
    problems: Vec<ProblemBody>,
}

/// A problem of a rejected record: where it is and a fixed reason, never a value.
#[derive(Serialize, ToSchema)]
pub(crate) struct ProblemBody {
    file: String,
    /// Line number, or `entry N` inside a FHIR Bundle.
    location: String,
    field: String,
    reason: String,
}

fn problems(files: &[niji_ingest::FileReport], limit: usize) -> (u64, Vec<ProblemBody>) {
    let total = files.iter().map(|f| f.rejected.len() as u64).sum();
    let list = files
        .iter()
        .flat_map(|f| {
            f.rejected.iter().map(|p| ProblemBody {
                file: f.file.clone(),
                location: p.location.to_string(),
                field: p.field.clone(),
                reason: p.reason.to_string(),
            })
        })
        .take(limit)
        .collect();
    (total, list)
}

fn submission_body(dataset: &str, outcome: &Outcome) -> SubmissionBody {
    match outcome {
        Outcome::Committed(r) => {
            let (problems_total, problems) = problems(&r.files, API_PROBLEMS);
            SubmissionBody {
                outcome: "committed",
                dataset: r.dataset.clone(),
                version: Some(r.number),
                records_accepted: r.records_accepted,
                records_quarantined: r.records_quarantined,
                records_rejected: r.records_quarantined,
                persons: r.persons,
                persons_shared: niji_core::disclosure::catalog_count(r.persons_shared),
                problems_total,
                problems,
            }
        }
        Outcome::Refused { files, rejected_records } => {
            let (problems_total, problems) = problems(files, API_PROBLEMS);
            SubmissionBody {
                outcome: "refused",
                dataset: dataset.to_string(),
                version: None,
                records_accepted: files.iter().map(|f| f.accepted_total()).sum(),
                records_quarantined: 0,
                records_rejected: *rejected_records,
                persons: 0,
                persons_shared: None,
                problems_total,
                problems,
            }
        }
    }
}

/// Submits files as a new version of dataset `name` (created on first use) for the token's
/// organization. 201 when committed, 422 when refused (nothing stored; the problems say why).
#[utoipa::path(post, path = "/api/v1/datasets/{name}/versions", security(("bearer" = [])),
    params(("name" = String, Path, description = "Dataset name: 1-64 of a-z, 0-9, '-'"), SubmitQuery),
    request_body(content = UploadForm, content_type = "multipart/form-data"),
    responses((status = 201, body = SubmissionBody), (status = 422, body = SubmissionBody), (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 413, body = ErrorBody)))]
pub(crate) async fn api_submit(
    State(state): State<AppState>,
    TokenUser(user): TokenUser,
    name: Result<Path<String>, PathRejection>,
    query: Result<Query<SubmitQuery>, QueryRejection>,
    mp: Result<Multipart, MultipartRejection>,
) -> Response {
    let (Ok(Path(name)), Ok(Query(query))) = (name, query) else { return ApiError::BadRequest.into_response() };
    let result = async {
        let holder = precheck(&state, &user, &name).await?;
        let mp = mp.map_err(|_| SubmitError::BadRequest)?;
        let dir = UploadDir::create(&state)?;
        let mut received = receive(mp, &dir, None).await?;
        received.quarantine = query.quarantine.unwrap_or(false);
        run(&state, &user, holder, name.clone(), received, dir).await
    }
    .await;
    match result {
        Ok(outcome) => {
            let status = if matches!(outcome, Outcome::Committed(_)) { StatusCode::CREATED } else { StatusCode::UNPROCESSABLE_ENTITY };
            (status, Json(submission_body(&name, &outcome))).into_response()
        }
        Err(e) => e.api().into_response(),
    }
}

// ---------------------------------------------------------------------------------------
// Portal

#[derive(Template)]
#[template(path = "upload.html")]
struct UploadPage {
    page: PageContext,
    error: Option<&'static str>,
    organization: String,
    dataset: String,
    title_ja: String,
    title_en: String,
}

struct CommittedView {
    dataset: String,
    version: i64,
    accepted: u64,
    quarantined: u64,
    persons: u64,
    rate: String,
}

struct RefusedView {
    dataset: String,
    rejected_records: u64,
    total: u64,
    lines: Vec<String>,
    more: bool,
}

#[derive(Template)]
#[template(path = "upload_result.html")]
struct UploadResultPage {
    page: PageContext,
    committed: Option<CommittedView>,
    refused: Option<RefusedView>,
}

async fn upload_page(lang: Lang, s: MaybeSession, uri: Uri) -> Response {
    let Some(sess) = s.signed_in() else { return Redirect::to("/login").into_response() };
    let Some(org) = sess.user.organization.clone().filter(|_| may_submit(&sess.user)) else {
        return error_page(StatusCode::FORBIDDEN, lang, Some(sess), &uri, |m| m.err_upload_forbidden);
    };
    render(UploadPage {
        page: PageContext::new(lang, Some(sess), &uri),
        error: None,
        organization: org,
        dataset: String::new(),
        title_ja: String::new(),
        title_en: String::new(),
    })
}

async fn upload_submit(State(state): State<AppState>, lang: Lang, s: MaybeSession, uri: Uri, mp: Result<Multipart, MultipartRejection>) -> Response {
    let Some(sess) = s.signed_in() else { return Redirect::to("/login").into_response() };
    let m = lang.messages();
    let user = &sess.user;
    if !may_submit(user) || user.organization.is_none() {
        return error_page(StatusCode::FORBIDDEN, lang, Some(sess), &uri, |m| m.err_upload_forbidden);
    }
    let mut kept = (String::new(), String::new(), String::new());
    let result = async {
        let mp = mp.map_err(|_| SubmitError::BadRequest)?;
        let dir = UploadDir::create(&state)?;
        let received = receive(mp, &dir, Some(&sess.csrf_token)).await?;
        if !received.csrf.as_deref().is_some_and(|c| constant_time_eq(c.as_bytes(), sess.csrf_token.as_bytes())) {
            return Err(SubmitError::Forbidden);
        }
        let dataset = received.dataset.clone().unwrap_or_default();
        kept = (dataset.chars().take(64).collect(), received.title_ja.chars().take(200).collect(), received.title_en.chars().take(200).collect());
        let holder = precheck(&state, user, &dataset).await?;
        run(&state, user, holder, dataset, received, dir).await
    }
    .await;
    let page = PageContext::new(lang, Some(sess), &uri);
    match result {
        Ok(Outcome::Committed(r)) => render(UploadResultPage {
            page,
            committed: Some(CommittedView {
                dataset: r.dataset.clone(),
                version: r.number,
                accepted: r.records_accepted,
                quarantined: r.records_quarantined,
                persons: r.persons,
                // Rounded like the catalog: the holder learns no small count about others' data.
                rate: crate::catalog::percent(niji_core::disclosure::catalog_count(r.persons_shared).unwrap_or(0) as i64, r.persons as i64),
            }),
            refused: None,
        }),
        Ok(Outcome::Refused { files, rejected_records }) => {
            let total: u64 = files.iter().map(|f| f.rejected.len() as u64).sum();
            let lines: Vec<String> = files.iter().flat_map(|f| f.rejected_lines()).take(PORTAL_PROBLEMS).collect();
            let view = RefusedView { dataset: kept.0.clone(), rejected_records, total, more: total > lines.len() as u64, lines };
            (StatusCode::UNPROCESSABLE_ENTITY, render(UploadResultPage { page, committed: None, refused: Some(view) })).into_response()
        }
        Err(e) => {
            let (status, message) = e.portal(m);
            let (dataset, title_ja, title_en) = kept;
            let organization = user.organization.clone().unwrap_or_default();
            (status, render(UploadPage { page, error: Some(message), organization, dataset, title_ja, title_en })).into_response()
        }
    }
}
