//! A permit's analysis workspace in the JSON API (issue 5), what `crate::workspace` does in the
//! portal and through the very same `niji-analysis` functions:
//! `POST /api/v1/permits/{id}/queries` (`{"sql", "data": "dummy"|"real"}`: dummy rows, or the
//! checked aggregate with suppressed cells marked), `POST/GET /api/v1/permits/{id}/jobs`,
//! `GET /api/v1/jobs/{id}`, `POST /api/v1/jobs/{id}/signoffs` (output checkers),
//! `GET /api/v1/permits/{id}/stops` and `DELETE /api/v1/permits/{id}/stops?reason=…` (the permit's
//! budget of runs stopped by limits, cleared by an output checker: `niji_analysis::stops`),
//! `GET /api/v1/releases/{id}` (the release's metadata JSON) and `GET /api/v1/releases/{id}/file`
//! (its CSV; every download logged by `niji_analysis::jobs::release_files`).
//!
//! Callers: an API token (`Authorization: Bearer`), or a signed-in portal session cookie whose
//! state-changing requests carry the session's CSRF token in `X-CSRF-Token` (a missing or wrong
//! token is `forbidden`/`csrf` before anything runs or is recorded).
//!
//! Who sees what follows the portal: the queries, the job list and the job summaries are for the
//! researchers named on the permit (a job's summary holds its statuses and refusal codes, never a
//! table); the checked tables, per-cell verdicts and differencing of a job awaiting review only
//! for an output checker allowed to sign it (not its submitter, not named on the permit: the
//! `/checks` rule, [`crate::workspace::conflicted`]).
//!
//! A refusal is `{"error": {"code", "message", "reason"}}`: a generic `code`, a fixed English
//! message and a stable `reason` from the table of [`WsError`]; a refused query's reason is the
//! sandbox's fixed refusal code (`niji_analysis::jobs::sandbox_code`), never DataFusion's text or
//! the SQL.

use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::extract::{FromRequestParts, Path, Query, State};
use axum::http::request::Parts;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use niji_accounts::UserSummary;
use niji_analysis::jobs::{JobError, JobView, OutputView, SignOff};
use niji_analysis::AnalysisError;
use niji_core::Role;
use niji_sandbox::SandboxError;
use niji_sdc::Shown;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::{IntoParams, OpenApi, ToSchema};

use crate::api::TokenUser;
use crate::portal::{constant_time_eq, MaybeSession};
use crate::workspace::{conflicted, named_on, permit_jobs, researcher_permit, strings, Access};
use crate::AppState;

/// The header carrying a cookie session's CSRF token.
pub(crate) const CSRF_HEADER: &str = "x-csrf-token";

pub(crate) fn api_routes() -> Router<AppState> {
    Router::new()
        .route("/permits/{id}/queries", post(query_api))
        .route("/permits/{id}/jobs", get(list_jobs_api).post(submit_job_api))
        .route("/permits/{id}/stops", get(stops_api).delete(clear_stops_api))
        .route("/jobs/{id}", get(job_api))
        .route("/jobs/{id}/signoffs", post(signoff_api))
        .route("/releases/{id}", get(release_metadata_api))
        .route("/releases/{id}/file", get(release_file_api))
}

#[derive(OpenApi)]
#[openapi(
    paths(query_api, submit_job_api, list_jobs_api, stops_api, clear_stops_api, job_api, signoff_api, release_metadata_api, release_file_api),
    components(schemas(
        QueryRequest,
        QueryResult,
        DummyResult,
        CheckedResult,
        CheckedRow,
        JobRequest,
        OutputRequest,
        JobBody,
        JobSummary,
        OutputSummary,
        JobDetail,
        OutputDetail,
        CheckedTable,
        VerdictsBody,
        VerdictCell,
        VerdictReason,
        VerdictSummary,
        DifferencingBody,
        SignoffEntry,
        SignoffRequest,
        SignoffBody,
        StopsBody,
        StopEntry,
        ClearStopsBody,
        WsErrorBody,
        WsErrorDetail
    ))
)]
pub(crate) struct WorkspaceDoc;

// ---------------------------------------------------------------------------------------------
// Errors: one table of status, code, reason and message.

/// Every refusal of this API; [`WsError::parts`] is the whole table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum WsError {
    Unauthorized,
    Csrf,
    Malformed,
    NoPermit,
    NoJob,
    NoRelease,
    NotNamed,
    Forbidden,
    NotAChecker,
    Conflicted,
    DownloadNotAllowed,
    PermitClosed,
    WrongTrack,
    NoData,
    NotAwaiting,
    AlreadySigned,
    BadOutputs,
    BadReason,
    Unchecked,
    TooManyDimensions,
    Differencing,
    StopsSpent,
    RunsBusy,
    /// A run on the real data stopped by what the code names (it spent a stop).
    Stopped(&'static str),
    /// A query refused by the sandbox, with its fixed code.
    Refused(&'static str),
    Tampered,
    Internal,
}

impl WsError {
    /// (status, generic code, stable reason, fixed English message).
    fn parts(self) -> (StatusCode, &'static str, &'static str, &'static str) {
        use StatusCode as S;
        match self {
            WsError::Unauthorized => (S::UNAUTHORIZED, "unauthorized", "unauthorized", "an API token or a signed-in session is required"),
            WsError::Csrf => (S::FORBIDDEN, "forbidden", "csrf", "the session's CSRF token is missing or wrong"),
            WsError::Malformed => (S::BAD_REQUEST, "bad_request", "malformed", "the request is malformed"),
            WsError::NoPermit => (S::NOT_FOUND, "not_found", "no_permit", "permit not found"),
            WsError::NoJob => (S::NOT_FOUND, "not_found", "no_job", "job not found"),
            WsError::NoRelease => (S::NOT_FOUND, "not_found", "no_release", "release not found"),
            WsError::NotNamed => (S::FORBIDDEN, "forbidden", "not_named", "the account is not a researcher named on the permit"),
            WsError::Forbidden => (S::FORBIDDEN, "forbidden", "forbidden", "the account may not see this job"),
            WsError::NotAChecker => (S::FORBIDDEN, "forbidden", "not_a_checker", "this needs the output checker role"),
            WsError::Conflicted => {
                (S::FORBIDDEN, "forbidden", "conflicted", "the submitter and the researchers named on the permit cannot check its outputs")
            }
            WsError::DownloadNotAllowed => {
                (S::FORBIDDEN, "forbidden", "not_allowed", "only researchers named on the permit and operators may download its releases")
            }
            WsError::PermitClosed => (S::CONFLICT, "conflict", "permit_closed", "the permit is not active"),
            WsError::WrongTrack => (S::CONFLICT, "conflict", "wrong_track", "the permit's track does not allow queries on the real data"),
            WsError::NoData => (S::CONFLICT, "conflict", "no_data", "a granted dataset has no committed version"),
            WsError::NotAwaiting => (S::CONFLICT, "conflict", "not_awaiting", "the job is not awaiting review"),
            WsError::AlreadySigned => (S::CONFLICT, "conflict", "already_signed", "this checker has already signed off this job"),
            WsError::BadOutputs => (
                S::BAD_REQUEST,
                "bad_request",
                "bad_outputs",
                "a job needs 1 to 20 outputs with distinct names of 1 to 64 letters, digits, '_' or '-'",
            ),
            WsError::BadReason => {
                (S::BAD_REQUEST, "bad_request", "bad_reason", "the reason must be a code of 1 to 32 lower-case letters, digits or '_'")
            }
            WsError::Unchecked => (S::UNPROCESSABLE_ENTITY, "query_refused", "unchecked", "the output could not be checked"),
            WsError::TooManyDimensions => (
                S::UNPROCESSABLE_ENTITY,
                "query_refused",
                "too_many_dimensions",
                "the output has more dimensions (text columns) than the permit's output rules allow",
            ),
            WsError::Differencing => (
                S::UNPROCESSABLE_ENTITY,
                "query_refused",
                "differencing",
                "the answer's difference with an earlier release would single out a few persons",
            ),
            WsError::StopsSpent => (
                S::CONFLICT,
                "conflict",
                "stops_spent",
                "limits stopped too many of the permit's runs on real data; an output checker must clear them first",
            ),
            WsError::RunsBusy => (
                S::CONFLICT,
                "conflict",
                "runs_busy",
                "other runs of the permit on real data are in progress and hold the stops left; try again when they end",
            ),
            WsError::Refused(code) => (S::BAD_REQUEST, "query_refused", code, "the query was refused"),
            WsError::Stopped(code) => {
                (S::UNPROCESSABLE_ENTITY, "query_stopped", code, "the run on the real data was stopped; this spent one of the permit's stops")
            }
            WsError::Tampered => (S::INTERNAL_SERVER_ERROR, "internal", "tampered", "the release's files do not match their published hashes"),
            WsError::Internal => (S::INTERNAL_SERVER_ERROR, "internal", "internal", "internal error"),
        }
    }
}

#[derive(Serialize, ToSchema)]
pub(crate) struct WsErrorBody {
    error: WsErrorDetail,
}

#[derive(Serialize, ToSchema)]
pub(crate) struct WsErrorDetail {
    /// unauthorized, forbidden, not_found, bad_request, conflict, query_refused, query_stopped
    /// (a run on the real data stopped: it spent one of the permit's stops) or internal.
    code: &'static str,
    message: &'static str,
    /// unauthorized, csrf, malformed, no_permit, no_job, no_release, not_named, forbidden,
    /// not_a_checker, conflicted, not_allowed, permit_closed, wrong_track, no_data, not_awaiting,
    /// already_signed, bad_outputs, bad_reason, unchecked, too_many_dimensions, differencing, stops_spent, runs_busy, tampered, internal, or a
    /// sandbox refusal code (parse, unknown_name, not_aggregate, person_id_in_output, too_long,
    /// timeout, memory_limit, execution, statement, ddl, …).
    reason: &'static str,
}

impl IntoResponse for WsError {
    fn into_response(self) -> Response {
        let (status, code, reason, message) = self.parts();
        (status, Json(WsErrorBody { error: WsErrorDetail { code, message, reason } })).into_response()
    }
}

impl From<Access> for WsError {
    fn from(a: Access) -> Self {
        match a {
            Access::NotFound => WsError::NoPermit,
            Access::Forbidden => WsError::NotNamed,
            Access::Internal => WsError::Internal,
        }
    }
}

impl From<&AnalysisError> for WsError {
    fn from(e: &AnalysisError) -> Self {
        match e {
            AnalysisError::NoPermit => WsError::NoPermit,
            AnalysisError::Closed => WsError::PermitClosed,
            AnalysisError::NotNamed => WsError::NotNamed,
            AnalysisError::WrongTrack => WsError::WrongTrack,
            AnalysisError::NoData => WsError::NoData,
            AnalysisError::Unchecked => WsError::Unchecked,
            AnalysisError::TooManyDimensions => WsError::TooManyDimensions,
            AnalysisError::Differencing => WsError::Differencing,
            AnalysisError::StopsSpent => WsError::StopsSpent,
            AnalysisError::RunsBusy => WsError::RunsBusy,
            AnalysisError::Refused(SandboxError::Internal) | AnalysisError::Internal => {
                tracing::error!("analysis failed");
                WsError::Internal
            }
            AnalysisError::Refused(r) => WsError::Refused(niji_analysis::jobs::sandbox_code(r)),
            AnalysisError::Stopped(SandboxError::Internal) => {
                tracing::error!("analysis failed while running");
                WsError::Stopped("internal")
            }
            AnalysisError::Stopped(r) => WsError::Stopped(niji_analysis::jobs::sandbox_code(r)),
        }
    }
}

impl From<&JobError> for WsError {
    fn from(e: &JobError) -> Self {
        match e {
            JobError::Analysis(a) => a.into(),
            JobError::BadOutputs => WsError::BadOutputs,
            JobError::NoJob => WsError::NoJob,
            JobError::NoRelease => WsError::NoRelease,
            JobError::NotAChecker => WsError::NotAChecker,
            JobError::Conflicted => WsError::Conflicted,
            JobError::NotAwaiting => WsError::NotAwaiting,
            JobError::AlreadySigned => WsError::AlreadySigned,
            JobError::BadReason => WsError::BadReason,
            JobError::NotAllowed => WsError::DownloadNotAllowed,
            JobError::PermitClosed => WsError::PermitClosed,
            JobError::Tampered => {
                tracing::error!("a release's files do not match their published hashes");
                WsError::Tampered
            }
            JobError::Internal => {
                tracing::error!("job step failed");
                WsError::Internal
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The caller.

/// The account behind an API token, or behind a signed-in session cookie (whose unsafe requests
/// must carry the session's CSRF token in `X-CSRF-Token`).
pub(crate) struct Caller(UserSummary);

impl FromRequestParts<AppState> for Caller {
    type Rejection = Response;
    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        if parts.headers.contains_key(header::AUTHORIZATION) {
            return TokenUser::from_request_parts(parts, state)
                .await
                .map(|TokenUser(u)| Caller(u))
                .map_err(|_| WsError::Unauthorized.into_response());
        }
        let session = MaybeSession::from_request_parts(parts, state).await?;
        let Some(sess) = session.signed_in() else { return Err(WsError::Unauthorized.into_response()) };
        if !parts.method.is_safe() {
            let sent = parts.headers.get(CSRF_HEADER).and_then(|v| v.to_str().ok());
            if !sent.is_some_and(|c| constant_time_eq(c.as_bytes(), sess.csrf_token.as_bytes())) {
                return Err(WsError::Csrf.into_response());
            }
        }
        Ok(Caller(sess.user.clone()))
    }
}

fn path_id(p: Result<Path<i64>, PathRejection>) -> Result<i64, WsError> {
    p.map(|Path(id)| id).map_err(|_| WsError::Malformed)
}

fn rfc3339(ts: i64) -> String {
    crate::api::format_ms(u64::try_from(ts).unwrap_or(0).saturating_mul(1000))
}

// ---------------------------------------------------------------------------------------------
// Queries.

#[derive(Deserialize, ToSchema)]
pub(crate) struct QueryRequest {
    sql: String,
    /// `dummy` (the permit's dummy data: rows) or `real` (an aggregate, checked).
    data: String,
}

/// The answer of a query: rows of dummy data, or the checked aggregate of the real data.
#[derive(Serialize, ToSchema)]
#[serde(untagged)]
pub(crate) enum QueryResult {
    Dummy(DummyResult),
    Real(CheckedResult),
}

#[derive(Serialize, ToSchema)]
pub(crate) struct DummyResult {
    /// `dummy`.
    data: &'static str,
    columns: Vec<String>,
    rows: Vec<Vec<String>>,
}

#[derive(Serialize, ToSchema)]
pub(crate) struct CheckedResult {
    /// `real`.
    data: &'static str,
    /// The output rules applied (e.g. `ndb`).
    preset: String,
    dimensions: Vec<String>,
    measures: Vec<String>,
    rows: Vec<CheckedRow>,
    /// Cells withheld (suppressed or refused).
    suppressed: usize,
    /// The run passed the time its answer was due (fixed from the tables' sizes before it ran), so
    /// it answered at the time limit and a grace and spent one of the permit's stops.
    late: bool,
}

/// A row of a checked table: its keys, and per measure the released number or a marker
/// (`suppressed`, `refused`).
#[derive(Serialize, ToSchema)]
pub(crate) struct CheckedRow {
    keys: Vec<String>,
    #[schema(value_type = Vec<Object>)]
    values: Vec<Value>,
}

fn shown(v: &Shown) -> Value {
    match v {
        Shown::Value(x) => serde_json::Number::from_f64(*x).map(Value::Number).unwrap_or(Value::Null),
        Shown::Suppressed => Value::from(niji_analysis::jobs::SUPPRESSED),
        Shown::Refused => Value::from("refused"),
    }
}

/// Runs SQL on the permit's dummy data (rows) or its real data (the checked aggregate only).
#[utoipa::path(post, path = "/api/v1/permits/{id}/queries", security(("bearer" = [])), params(("id" = i64, Path)), request_body = QueryRequest,
    responses((status = 200, body = QueryResult), (status = 400, body = WsErrorBody, description = "malformed, or refused by the sandbox (reason: its code)"),
        (status = 401, body = WsErrorBody), (status = 403, body = WsErrorBody), (status = 404, body = WsErrorBody), (status = 409, body = WsErrorBody),
        (status = 422, body = WsErrorBody, description = "refused by output checking (differencing, unchecked)")))]
async fn query_api(
    State(state): State<AppState>,
    Caller(user): Caller,
    id: Result<Path<i64>, PathRejection>,
    body: Result<Json<QueryRequest>, JsonRejection>,
) -> Result<Json<QueryResult>, WsError> {
    let id = path_id(id)?;
    let Ok(Json(req)) = body else { return Err(WsError::Malformed) };
    let real = match req.data.as_str() {
        "dummy" => false,
        "real" => true,
        _ => return Err(WsError::Malformed),
    };
    researcher_permit(&state, &user, id).await?;
    if !real {
        let out = niji_analysis::dummy::query_dummy(state.instance(), user.id, id, &req.sql).await.map_err(|e| WsError::from(&e))?;
        return Ok(Json(QueryResult::Dummy(DummyResult { data: "dummy", columns: out.columns, rows: out.rows })));
    }
    let out = detached_query(&state, user.id, id, req.sql).await.map_err(|e| WsError::from(&e))?;
    Ok(Json(QueryResult::Real(CheckedResult {
        data: "real",
        preset: out.preset,
        dimensions: out.dimensions,
        measures: out.measures,
        rows: out.rows.iter().map(|(keys, values)| CheckedRow { keys: keys.clone(), values: values.iter().map(shown).collect() }).collect(),
        suppressed: out.suppressed,
        late: out.late,
    })))
}

/// Runs a query on the real data in a task of its own (for the portal too), so that a client
/// going away mid-run does not drop it between taking a place in the permit's stops and giving
/// it back (a dropped run would count as a stop).
pub(crate) async fn detached_query(
    state: &AppState,
    user_id: i64,
    permit_id: i64,
    sql: String,
) -> Result<niji_analysis::CheckedOutput, AnalysisError> {
    let (instance, settings) = (state.instance_arc(), state.analysis().clone());
    tokio::spawn(async move { niji_analysis::query_real_with(&instance, &settings, user_id, permit_id, &sql).await })
        .await
        .unwrap_or(Err(AnalysisError::Internal))
}

/// Records a job (`checking`) and runs it in a task of its own, answering at once with the job
/// as recorded: a job runs for as long as its outputs' slots on the real data, longer than a
/// request should wait. Errors before the job exists (outputs malformed, permit, researcher) are
/// returned.
pub(crate) async fn background_job(state: &AppState, user_id: i64, permit_id: i64, outputs: Vec<(String, String)>) -> Result<JobView, JobError> {
    let started = niji_analysis::jobs::start_job(state.instance(), user_id, permit_id, &outputs).await?;
    let job_id = started.job_id();
    // The job as recorded (`checking`), read before it runs.
    let view = niji_analysis::jobs::job_view(state.instance(), job_id).await?;
    let (instance, settings) = (state.instance_arc(), state.analysis().clone());
    tokio::spawn(async move {
        let run = {
            let instance = instance.clone();
            tokio::spawn(async move { niji_analysis::jobs::run_started(&instance, &settings, started).await })
        };
        // A run that could not record its end (an error, a panic) leaves no job `checking`. The
        // error's fixed text is logged, never a panic's message (it could quote a value).
        let failure = match run.await {
            Ok(Ok(_)) => return,
            Ok(Err(e)) => e.to_string(),
            Err(e) if e.is_panic() => "the job's task panicked".to_owned(),
            Err(_) => "the job's task was cancelled".to_owned(),
        };
        tracing::error!(job = job_id, error = %failure, "a job could not be recorded as finished");
        if let Err(e) = niji_analysis::jobs::fail_unfinished(&instance, job_id).await {
            tracing::error!(job = job_id, error = %e, "a job could not be marked as failed");
        }
    });
    Ok(view)
}

// ---------------------------------------------------------------------------------------------
// Jobs.

#[derive(Deserialize, ToSchema)]
pub(crate) struct JobRequest {
    outputs: Vec<OutputRequest>,
}

#[derive(Deserialize, ToSchema)]
pub(crate) struct OutputRequest {
    /// 1–64 letters, digits, `_` or `-`, distinct within the job.
    name: String,
    sql: String,
}

/// A job as the researchers named on its permit see it: statuses and codes, never a table.
#[derive(Serialize, ToSchema)]
pub(crate) struct JobSummary {
    id: i64,
    permit_id: i64,
    /// checking, awaiting_review, released, refused or failed.
    status: String,
    /// A code when refused or failed (e.g. `differencing`, `rejected`).
    reason: Option<String>,
    created_at: String,
    outputs: Vec<OutputSummary>,
    approvals: usize,
    release_id: Option<i64>,
}

#[derive(Serialize, ToSchema)]
pub(crate) struct OutputSummary {
    name: String,
    /// passed, refused or not_run.
    status: String,
    /// A fixed code when refused.
    refusal: Option<String>,
}

/// A job awaiting review as an output checker allowed to sign it sees it.
#[derive(Serialize, ToSchema)]
pub(crate) struct JobDetail {
    id: i64,
    permit_id: i64,
    submitted_by: i64,
    status: String,
    reason: Option<String>,
    created_at: String,
    outputs: Vec<OutputDetail>,
    signoffs: Vec<SignoffEntry>,
}

#[derive(Serialize, ToSchema)]
pub(crate) struct OutputDetail {
    name: String,
    status: String,
    refusal: Option<String>,
    table: Option<CheckedTable>,
    verdicts: Option<VerdictsBody>,
    differencing: Option<DifferencingBody>,
}

#[derive(Serialize, ToSchema)]
pub(crate) struct CheckedTable {
    dimensions: Vec<String>,
    measures: Vec<String>,
    rows: Vec<CheckedRow>,
}

#[derive(Serialize, ToSchema)]
pub(crate) struct VerdictsBody {
    /// The cells not released as they are.
    cells: Vec<VerdictCell>,
    table_reasons: Vec<String>,
    summary: Option<VerdictSummary>,
}

#[derive(Serialize, ToSchema)]
pub(crate) struct VerdictCell {
    /// The row's index in the checked table, and its keys.
    row: u64,
    keys: Vec<String>,
    measure: String,
    /// released, suppressed or refused.
    outcome: String,
    reasons: Vec<VerdictReason>,
}

#[derive(Serialize, ToSchema)]
pub(crate) struct VerdictReason {
    code: String,
    ja: String,
    en: String,
}

#[derive(Serialize, ToSchema)]
pub(crate) struct VerdictSummary {
    cells: u64,
    released: u64,
    primary: u64,
    secondary: u64,
    refused: u64,
    rounded: u64,
}

#[derive(Serialize, ToSchema)]
pub(crate) struct DifferencingBody {
    compared: Vec<String>,
    refused_by: Vec<String>,
}

#[derive(Serialize, ToSchema)]
pub(crate) struct SignoffEntry {
    checker_id: i64,
    /// approve or reject.
    verdict: String,
    reason: String,
}

/// A job: the checker's detail (`submitted_by`, tables, verdicts, sign-offs) or the researchers'
/// summary.
#[derive(Serialize, ToSchema)]
#[serde(untagged)]
pub(crate) enum JobBody {
    Checker(JobDetail),
    Researcher(JobSummary),
}

fn summary(v: &JobView) -> JobSummary {
    JobSummary {
        id: v.id,
        permit_id: v.permit_id,
        status: v.status.clone(),
        reason: v.reason.clone(),
        created_at: rfc3339(v.created_at),
        outputs: v.outputs.iter().map(|o| OutputSummary { name: o.name.clone(), status: o.status.clone(), refusal: o.refusal.clone() }).collect(),
        approvals: v.signoffs.iter().filter(|(_, verdict, _)| verdict == "approve").count(),
        release_id: v.release_id,
    }
}

/// A stored checked table's cell: a number, null, or a marker (as the `/checks` page reads it).
fn stored_cell(v: &Value) -> Value {
    match v {
        Value::Number(_) | Value::Null => v.clone(),
        Value::String(s) if s == niji_analysis::jobs::SUPPRESSED => v.clone(),
        _ => Value::from("refused"),
    }
}

fn output_detail(o: &OutputView) -> OutputDetail {
    let table = o.checked_table.as_ref().map(|t| CheckedTable {
        dimensions: strings(&t["dimensions"]),
        measures: strings(&t["measures"]),
        rows: t["rows"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|r| CheckedRow { keys: strings(&r["keys"]), values: r["values"].as_array().into_iter().flatten().map(stored_cell).collect() })
            .collect(),
    });
    let verdicts = o.verdicts.as_ref().map(|v| {
        let cells = v["cells"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|c| {
                let row = c["row"].as_u64().unwrap_or(0);
                let measure = c["measure"].as_u64().unwrap_or(0) as usize;
                VerdictCell {
                    row,
                    keys: table.as_ref().and_then(|t| t.rows.get(row as usize)).map(|r| r.keys.clone()).unwrap_or_default(),
                    measure: table.as_ref().and_then(|t| t.measures.get(measure)).cloned().unwrap_or_default(),
                    outcome: c["outcome"].as_str().unwrap_or("released").to_string(),
                    reasons: c["reasons"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .map(|x| VerdictReason {
                            code: x["code"].as_str().unwrap_or("").to_string(),
                            ja: x["ja"].as_str().unwrap_or("").to_string(),
                            en: x["en"].as_str().unwrap_or("").to_string(),
                        })
                        .collect(),
                }
            })
            .collect();
        let s = &v["summary"];
        let n = |k: &str| s[k].as_u64().unwrap_or(0);
        VerdictsBody {
            cells,
            table_reasons: strings(&v["table_reasons"]),
            summary: s.is_object().then(|| VerdictSummary {
                cells: n("cells"),
                released: n("released"),
                primary: n("primary"),
                secondary: n("secondary"),
                refused: n("refused"),
                rounded: n("rounded"),
            }),
        }
    });
    OutputDetail {
        name: o.name.clone(),
        status: o.status.clone(),
        refusal: o.refusal.clone(),
        table,
        verdicts,
        differencing: o.differencing.as_ref().map(|d| DifferencingBody { compared: strings(&d["compared"]), refused_by: strings(&d["refused_by"]) }),
    }
}

fn detail(v: &JobView) -> JobDetail {
    JobDetail {
        id: v.id,
        permit_id: v.permit_id,
        submitted_by: v.submitted_by,
        status: v.status.clone(),
        reason: v.reason.clone(),
        created_at: rfc3339(v.created_at),
        outputs: v.outputs.iter().map(output_detail).collect(),
        signoffs: v
            .signoffs
            .iter()
            .map(|(checker, verdict, reason)| SignoffEntry { checker_id: *checker, verdict: verdict.clone(), reason: reason.clone() })
            .collect(),
    }
}

/// Submits a job (named aggregate outputs run together on the real data). It is answered at once
/// with the job as recorded (`checking`) and runs in the background; `GET /api/v1/jobs/{id}` then
/// shows it awaiting the output checkers' review, refused, or failed.
#[utoipa::path(post, path = "/api/v1/permits/{id}/jobs", security(("bearer" = [])), params(("id" = i64, Path)), request_body = JobRequest,
    responses((status = 202, body = JobSummary), (status = 400, body = WsErrorBody), (status = 401, body = WsErrorBody), (status = 403, body = WsErrorBody),
        (status = 404, body = WsErrorBody), (status = 409, body = WsErrorBody)))]
async fn submit_job_api(
    State(state): State<AppState>,
    Caller(user): Caller,
    id: Result<Path<i64>, PathRejection>,
    body: Result<Json<JobRequest>, JsonRejection>,
) -> Result<Response, WsError> {
    let id = path_id(id)?;
    let Ok(Json(req)) = body else { return Err(WsError::Malformed) };
    researcher_permit(&state, &user, id).await?;
    let outputs: Vec<(String, String)> = req.outputs.into_iter().map(|o| (o.name.trim().to_string(), o.sql.trim().to_string())).collect();
    let job = background_job(&state, user.id, id, outputs).await.map_err(|e| WsError::from(&e))?;
    Ok((StatusCode::ACCEPTED, Json(summary(&job))).into_response())
}

#[derive(Serialize, ToSchema)]
pub(crate) struct StopsBody {
    permit: i64,
    /// Stops a permit may have before an output checker must clear them.
    max_stops: u32,
    left: u32,
    /// Runs on the real data since the stops were last cleared, those that did not stop included.
    runs_since_clear: i64,
    /// Uncleared stops, oldest first (runs in progress hold a place too).
    stops: Vec<StopEntry>,
}

#[derive(Serialize, ToSchema)]
pub(crate) struct StopEntry {
    /// What `through` names when clearing.
    id: i64,
    /// query, job, or release (a job refused by differencing when two checkers approved it).
    kind: String,
    /// running (in progress or abandoned), or what stopped it: timeout, memory_limit, execution,
    /// internal, too_many_rows, …
    reason: String,
    /// Hex SHA-256 of the SQL (its text is not kept).
    sql_sha256: String,
    started_at: String,
}

/// The permit's stops on real data: runs that a limit (time, memory) or a failure stopped, each
/// of which may tell a bit about a few rows. With none left, nothing more runs on the real data
/// until an output checker clears them. For the researchers named on the permit and for output
/// checkers not named on it.
#[utoipa::path(get, path = "/api/v1/permits/{id}/stops", security(("bearer" = [])), params(("id" = i64, Path)),
    responses((status = 200, body = StopsBody), (status = 401, body = WsErrorBody), (status = 403, body = WsErrorBody), (status = 404, body = WsErrorBody)))]
async fn stops_api(State(state): State<AppState>, Caller(user): Caller, id: Result<Path<i64>, PathRejection>) -> Result<Json<StopsBody>, WsError> {
    let id = path_id(id)?;
    match researcher_permit(&state, &user, id).await {
        Ok(_) => {}
        Err(Access::Forbidden) if user.has_role(Role::OutputChecker) && !named_on(&state.instance().store, user.id, id).await => {}
        Err(a) => return Err(a.into()),
    }
    let s = niji_analysis::stops::stops(state.instance(), state.analysis(), id).await.map_err(|e| WsError::from(&e))?;
    Ok(Json(StopsBody {
        permit: id,
        max_stops: s.max_stops,
        left: s.left(),
        runs_since_clear: s.runs_since_clear,
        stops: s
            .stops
            .into_iter()
            .map(|x| StopEntry { id: x.id, kind: x.kind, reason: x.reason, sql_sha256: x.code_sha256, started_at: rfc3339(x.started_at) })
            .collect(),
    }))
}

#[derive(Serialize, ToSchema)]
pub(crate) struct ClearStopsBody {
    permit: i64,
    cleared: u64,
}

#[derive(Deserialize, ToSchema, IntoParams)]
pub(crate) struct ClearStopsQuery {
    /// A code of lower-case letters, digits and `_` (default `reviewed`).
    #[serde(default)]
    reason: String,
    /// Clear up to this stop's id (the last one looked at); required. Only stops that ended
    /// before the request are cleared.
    through: Option<i64>,
}

/// An output checker not named on the permit clears its stops (logged as
/// `permit.stops_cleared`), so that its runs on real data may go on.
#[utoipa::path(delete, path = "/api/v1/permits/{id}/stops", security(("bearer" = [])), params(("id" = i64, Path), ClearStopsQuery),
    responses((status = 200, body = ClearStopsBody), (status = 400, body = WsErrorBody), (status = 401, body = WsErrorBody), (status = 403, body = WsErrorBody),
        (status = 404, body = WsErrorBody)))]
async fn clear_stops_api(
    State(state): State<AppState>,
    Caller(user): Caller,
    id: Result<Path<i64>, PathRejection>,
    query: Result<Query<ClearStopsQuery>, QueryRejection>,
) -> Result<Json<ClearStopsBody>, WsError> {
    use niji_analysis::stops::ClearError as E;
    let id = path_id(id)?;
    let Ok(Query(q)) = query else { return Err(WsError::Malformed) };
    let Some(through) = q.through else { return Err(WsError::Malformed) };
    let reason = if q.reason.trim().is_empty() { "reviewed" } else { q.reason.trim() };
    let cleared =
        niji_analysis::stops::clear_stops(state.instance(), state.analysis(), user.id, id, (through, None), reason).await.map_err(|e| match e {
            E::NoPermit => WsError::NoPermit,
            E::NotAChecker => WsError::NotAChecker,
            E::Conflicted => WsError::Conflicted,
            E::BadReason => WsError::BadReason,
            E::Internal => {
                tracing::error!("clearing stops failed");
                WsError::Internal
            }
        })?;
    Ok(Json(ClearStopsBody { permit: id, cleared }))
}

/// The permit's jobs, newest first (researchers named on the permit).
#[utoipa::path(get, path = "/api/v1/permits/{id}/jobs", security(("bearer" = [])), params(("id" = i64, Path)),
    responses((status = 200, body = Vec<JobSummary>), (status = 401, body = WsErrorBody), (status = 403, body = WsErrorBody), (status = 404, body = WsErrorBody)))]
async fn list_jobs_api(
    State(state): State<AppState>,
    Caller(user): Caller,
    id: Result<Path<i64>, PathRejection>,
) -> Result<Json<Vec<JobSummary>>, WsError> {
    let id = path_id(id)?;
    researcher_permit(&state, &user, id).await?;
    let jobs = permit_jobs(state.instance(), id).await.map_err(|e| WsError::from(&e))?;
    Ok(Json(jobs.iter().map(summary).collect()))
}

/// A job: for an output checker allowed to sign it while it awaits review, its checked tables,
/// per-cell verdicts, differencing and sign-offs; for the researchers named on its permit (and
/// other checkers allowed to sign it), its summary.
#[utoipa::path(get, path = "/api/v1/jobs/{id}", security(("bearer" = [])), params(("id" = i64, Path)),
    responses((status = 200, body = JobBody), (status = 401, body = WsErrorBody), (status = 403, body = WsErrorBody), (status = 404, body = WsErrorBody)))]
async fn job_api(State(state): State<AppState>, Caller(user): Caller, id: Result<Path<i64>, PathRejection>) -> Result<Json<JobBody>, WsError> {
    let id = path_id(id)?;
    let job = niji_analysis::jobs::job_view(state.instance(), id).await.map_err(|e| WsError::from(&e))?;
    let checker = user.has_role(Role::OutputChecker) && !conflicted(&state.instance().store, user.id, job.permit_id, job.submitted_by).await;
    if checker && job.status == "awaiting_review" {
        return Ok(Json(JobBody::Checker(detail(&job))));
    }
    match researcher_permit(&state, &user, job.permit_id).await {
        Ok(_) => Ok(Json(JobBody::Researcher(summary(&job)))),
        Err(_) if checker => Ok(Json(JobBody::Researcher(summary(&job)))),
        Err(Access::Internal) => Err(WsError::Internal),
        Err(_) => Err(WsError::Forbidden),
    }
}

#[derive(Deserialize, ToSchema)]
pub(crate) struct SignoffRequest {
    /// approve or reject.
    verdict: String,
    /// A code of lower-case letters, digits and `_` (default `approved` when approving).
    #[serde(default)]
    reason: String,
}

#[derive(Serialize, ToSchema)]
pub(crate) struct SignoffBody {
    job: i64,
    /// recorded (awaiting more approvals), released, or refused (rejected, or refused by
    /// differencing with a release made meanwhile).
    outcome: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    approvals: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    release_id: Option<i64>,
}

/// An output checker approves or rejects a job awaiting review (two different checkers release
/// it; neither its submitter nor a researcher named on its permit may sign; the permit active).
#[utoipa::path(post, path = "/api/v1/jobs/{id}/signoffs", security(("bearer" = [])), params(("id" = i64, Path)), request_body = SignoffRequest,
    responses((status = 201, body = SignoffBody), (status = 400, body = WsErrorBody), (status = 401, body = WsErrorBody), (status = 403, body = WsErrorBody),
        (status = 404, body = WsErrorBody), (status = 409, body = WsErrorBody)))]
async fn signoff_api(
    State(state): State<AppState>,
    Caller(user): Caller,
    id: Result<Path<i64>, PathRejection>,
    body: Result<Json<SignoffRequest>, JsonRejection>,
) -> Result<Response, WsError> {
    let id = path_id(id)?;
    let Ok(Json(req)) = body else { return Err(WsError::Malformed) };
    let approve = match req.verdict.as_str() {
        "approve" => true,
        "reject" => false,
        _ => return Err(WsError::Malformed),
    };
    let reason = if approve && req.reason.trim().is_empty() { "approved" } else { req.reason.trim() };
    let done = niji_analysis::jobs::sign_off(state.instance(), user.id, id, approve, reason).await.map_err(|e| WsError::from(&e))?;
    let body = match done {
        SignOff::Recorded { approvals } => SignoffBody { job: id, outcome: "recorded", approvals: Some(approvals), release_id: None },
        SignOff::Released { release_id } => SignoffBody { job: id, outcome: "released", approvals: None, release_id: Some(release_id) },
        SignOff::Refused => SignoffBody { job: id, outcome: "refused", approvals: None, release_id: None },
    };
    Ok((StatusCode::CREATED, Json(body)).into_response())
}

// ---------------------------------------------------------------------------------------------
// Releases.

async fn release(state: &AppState, user: &UserSummary, id: Result<Path<i64>, PathRejection>, metadata: bool) -> Result<Response, WsError> {
    let id = path_id(id)?;
    let files = niji_analysis::jobs::release_files(state.instance(), user.id, id).await.map_err(|e| WsError::from(&e))?;
    if metadata {
        return Ok(([(header::CONTENT_TYPE, "application/json".to_string())], files.metadata).into_response());
    }
    let name: String = files.file_name.chars().filter(|c| c.is_ascii_alphanumeric() || "-_.".contains(*c)).collect();
    Ok((
        [(header::CONTENT_TYPE, "text/csv; charset=utf-8".to_string()), (header::CONTENT_DISPOSITION, format!("attachment; filename=\"{name}\""))],
        files.csv,
    )
        .into_response())
}

/// A release's metadata JSON, byte for byte as published (its SHA-256 is in `release.published`).
/// Researchers named on the permit (while it is active) and operators; every download is logged.
#[utoipa::path(get, path = "/api/v1/releases/{id}", security(("bearer" = [])), params(("id" = i64, Path)),
    responses((status = 200, description = "the release's metadata", content_type = "application/json"), (status = 401, body = WsErrorBody),
        (status = 403, body = WsErrorBody), (status = 404, body = WsErrorBody)))]
async fn release_metadata_api(
    State(state): State<AppState>,
    Caller(user): Caller,
    id: Result<Path<i64>, PathRejection>,
) -> Result<Response, WsError> {
    release(&state, &user, id, true).await
}

/// A release's CSV (UTF-8 with BOM), byte for byte as published; the same rule and logging as the
/// metadata.
#[utoipa::path(get, path = "/api/v1/releases/{id}/file", security(("bearer" = [])), params(("id" = i64, Path)),
    responses((status = 200, description = "UTF-8 CSV with BOM", content_type = "text/csv"), (status = 401, body = WsErrorBody),
        (status = 403, body = WsErrorBody), (status = 404, body = WsErrorBody)))]
async fn release_file_api(State(state): State<AppState>, Caller(user): Caller, id: Result<Path<i64>, PathRejection>) -> Result<Response, WsError> {
    release(&state, &user, id, false).await
}
