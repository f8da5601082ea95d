//! Anonymized extracts over HTTP (issue 7): researchers named on a permit of the anonymized
//! track request an extract (API), operators read its report and approve or reject it (portal
//! and API), researchers download it once approved (portal and API). The work is
//! `niji-extracts`'s; this module maps its errors to stable codes.

use askama::Template;
use axum::extract::rejection::{FormRejection, JsonRejection};
use axum::extract::{Path, State};
use axum::http::{header, StatusCode, Uri};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Form, Json, Router};
use niji_accounts::UserSummary;
use niji_core::Role;
use niji_extracts::ExtractError;
use niji_review::PermitPolicy;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use time::OffsetDateTime;
use utoipa::{OpenApi, ToSchema};

use crate::api::{ApiError, ErrorBody, TokenUser};
use crate::i18n::Lang;
use crate::portal::{constant_time_eq, render, MaybeSession, PageContext};
use crate::AppState;

pub(crate) fn routes() -> Router<AppState> {
    Router::new()
        .route("/extracts", get(list_page))
        .route("/extracts/{id}", get(detail_page))
        .route("/extracts/{id}/decision", post(decide_form))
        .route("/extracts/{id}/file", get(file_portal))
}

pub(crate) fn api_routes() -> Router<AppState> {
    Router::new()
        .route("/permits/{id}/extracts", post(request_api))
        .route("/extracts/{id}", get(show_api))
        .route("/extracts/{id}/decision", post(decide_api))
        .route("/extracts/{id}/file", get(file_api))
}

#[derive(OpenApi)]
#[openapi(
    paths(request_api, show_api, decide_api, file_api),
    components(schemas(
        ExtractRequest,
        ExtractView,
        ExtractBody,
        ResearcherExtractBody,
        ReleasedBody,
        LevelBody,
        LossBody,
        RuleBody,
        DecisionRequest
    ))
)]
pub(crate) struct ExtractsDoc;

#[derive(Deserialize, ToSchema)]
pub(crate) struct ExtractRequest {
    dataset: String,
    table: String,
    /// The anonymization configuration (TOML, the format of `niji anonymize`; builtin hierarchies only).
    config: String,
}

/// An extract as its reader may see it: the full report for an operator who did not request
/// it, the researcher's whitelist for everyone else.
#[derive(Serialize, ToSchema)]
#[serde(untagged)]
pub(crate) enum ExtractView {
    Full(ExtractBody),
    Researcher(ResearcherExtractBody),
}

/// An extract as an operator who did not request it sees it (to decide it).
#[derive(Serialize, ToSchema)]
pub(crate) struct ExtractBody {
    id: i64,
    permit_id: i64,
    dataset: String,
    dataset_version: i64,
    table: String,
    /// `awaiting_approval`, `approved` or `rejected`.
    status: String,
    rows: i64,
    /// hex SHA-256 of the CSV, as logged.
    sha256: String,
    /// The anonymization report: risk before and after, information loss, levels, rules, and
    /// the k, l and t the released table achieves.
    #[schema(value_type = Object)]
    report: serde_json::Value,
}

/// An extract as the researchers on its permit (the requester included) and anyone else not
/// deciding it see it. Built field by field from `niji_extracts::ResearcherView`: before
/// approval and after rejection no exact count, no risk and no level, only the status, the
/// configuration sent and the rows rounded as the catalog rounds them.
#[derive(Serialize, ToSchema)]
pub(crate) struct ResearcherExtractBody {
    id: i64,
    permit_id: i64,
    dataset: String,
    dataset_version: i64,
    table: String,
    /// `awaiting_approval`, `approved` or `rejected`.
    status: String,
    /// The anonymization configuration (TOML) as it was sent.
    config: String,
    /// The released rows rounded to 10; null below 10.
    rows_rounded: Option<u64>,
    /// The released table's figures, once approved; null before.
    released: Option<ReleasedBody>,
}

/// An approved extract's released table.
#[derive(Serialize, ToSchema)]
pub(crate) struct ReleasedBody {
    rows: u64,
    /// hex SHA-256 of the CSV, as logged.
    sha256: String,
    k: Option<u64>,
    classes: Option<u64>,
    generalization: Vec<LevelBody>,
    information_loss: Option<LossBody>,
    /// Highest prosecutor risk of the released table.
    risk_after: Option<f64>,
    rules: Vec<RuleBody>,
}

#[derive(Serialize, ToSchema)]
pub(crate) struct LevelBody {
    column: String,
    level: u64,
    max_level: u64,
}

#[derive(Serialize, ToSchema)]
pub(crate) struct LossBody {
    metric: String,
    value: f64,
}

#[derive(Serialize, ToSchema)]
pub(crate) struct RuleBody {
    rule: String,
    column: String,
    reason: String,
}

impl From<niji_extracts::ResearcherView> for ResearcherExtractBody {
    fn from(v: niji_extracts::ResearcherView) -> Self {
        ResearcherExtractBody {
            id: v.id,
            permit_id: v.permit_id,
            dataset: v.dataset,
            dataset_version: v.dataset_version,
            table: v.table,
            status: v.status,
            config: v.config,
            rows_rounded: v.rows_rounded,
            released: v.released.map(|r| ReleasedBody {
                rows: r.rows,
                sha256: r.sha256,
                k: r.k,
                classes: r.classes,
                generalization: r.generalization.into_iter().map(|(column, level, max_level)| LevelBody { column, level, max_level }).collect(),
                information_loss: r.information_loss.map(|(metric, value)| LossBody { metric, value }),
                risk_after: r.risk_after,
                rules: r.rules.into_iter().map(|(rule, column, reason)| RuleBody { rule, column, reason }).collect(),
            }),
        }
    }
}

#[derive(Deserialize, ToSchema)]
pub(crate) struct DecisionRequest {
    approve: bool,
    /// A short reason code when rejecting (letters, digits, `_`).
    #[serde(default)]
    reason: Option<String>,
}

fn api_error(e: ExtractError) -> ApiError {
    match e {
        ExtractError::NoPermit | ExtractError::NotFound => ApiError::NotFound,
        ExtractError::NotNamed | ExtractError::NotADecider => ApiError::Forbidden,
        ExtractError::Closed | ExtractError::WrongTrack | ExtractError::AlreadyDecided | ExtractError::NotApproved => ApiError::Conflict,
        ExtractError::NotGranted | ExtractError::Config(_) | ExtractError::Anonymization(_) | ExtractError::NoData => ApiError::BadRequest,
        ExtractError::Tampered | ExtractError::Internal => {
            tracing::error!(error = %e, "extract step failed");
            ApiError::Internal
        }
    }
}

/// Requests an anonymized extract of a granted table; it then awaits an operator's approval.
#[utoipa::path(post, path = "/api/v1/permits/{id}/extracts", security(("bearer" = [])), params(("id" = i64, Path)), request_body = ExtractRequest,
    responses((status = 201, body = ResearcherExtractBody), (status = 400, body = ErrorBody, description = "table not granted, or the configuration cannot be used"),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody, description = "the permit is closed or not on the anonymized track")))]
async fn request_api(
    State(state): State<AppState>,
    TokenUser(user): TokenUser,
    Path(permit): Path<i64>,
    body: Result<Json<ExtractRequest>, JsonRejection>,
) -> Response {
    let Ok(Json(req)) = body else { return ApiError::BadRequest.into_response() };
    match niji_extracts::request_extract(state.instance(), user.id, permit, &req.dataset, &req.table, &req.config, OffsetDateTime::now_utc()).await {
        Ok(e) => match extract_view(&state, &user, e.id).await {
            Ok(body) => (StatusCode::CREATED, Json(body)).into_response(),
            Err(e) => e.into_response(),
        },
        Err(e) => api_error(e).into_response(),
    }
}

/// An extract: with its full report for an operator who did not request it; for the researchers
/// named on its permit, the status, the configuration and rounded rows until it is approved.
#[utoipa::path(get, path = "/api/v1/extracts/{id}", security(("bearer" = [])), params(("id" = i64, Path)),
    responses((status = 200, body = ExtractView), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn show_api(State(state): State<AppState>, TokenUser(user): TokenUser, Path(id): Path<i64>) -> Response {
    match may_see(&state, &user, id).await {
        Ok(()) => match extract_view(&state, &user, id).await {
            Ok(body) => Json(body).into_response(),
            Err(e) => e.into_response(),
        },
        Err(e) => e.into_response(),
    }
}

/// An operator who did not request it approves or rejects an extract.
#[utoipa::path(post, path = "/api/v1/extracts/{id}/decision", security(("bearer" = [])), params(("id" = i64, Path)), request_body = DecisionRequest,
    responses((status = 200, body = ExtractView), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
async fn decide_api(
    State(state): State<AppState>,
    TokenUser(user): TokenUser,
    Path(id): Path<i64>,
    body: Result<Json<DecisionRequest>, JsonRejection>,
) -> Response {
    let Ok(Json(req)) = body else { return ApiError::BadRequest.into_response() };
    match niji_extracts::decide_extract(state.instance(), user.id, id, req.approve, req.reason.as_deref(), OffsetDateTime::now_utc()).await {
        Ok(()) => match extract_view(&state, &user, id).await {
            Ok(body) => Json(body).into_response(),
            Err(e) => e.into_response(),
        },
        Err(e) => api_error(e).into_response(),
    }
}

/// The approved extract's CSV (researchers named on the permit).
#[utoipa::path(get, path = "/api/v1/extracts/{id}/file", security(("bearer" = [])), params(("id" = i64, Path)),
    responses((status = 200, description = "UTF-8 CSV with BOM", content_type = "text/csv"), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 409, body = ErrorBody, description = "not approved, or the permit is closed")))]
async fn file_api(State(state): State<AppState>, TokenUser(user): TokenUser, Path(id): Path<i64>) -> Response {
    match niji_extracts::download_extract(state.instance(), user.id, id, OffsetDateTime::now_utc()).await {
        Ok(bytes) => csv_response(id, bytes),
        Err(e) => api_error(e).into_response(),
    }
}

fn csv_response(id: i64, bytes: Vec<u8>) -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/csv; charset=utf-8".to_string()),
            (header::CONTENT_DISPOSITION, format!("attachment; filename=\"extract-{id}.csv\"")),
        ],
        bytes,
    )
        .into_response()
}

/// The extract as `user` may see it (the caller has checked that they may see it at all).
async fn extract_view(state: &AppState, user: &UserSummary, id: i64) -> Result<ExtractView, ApiError> {
    let e = state.instance().store.extract(id).await.map_err(|_| ApiError::Internal)?.ok_or(ApiError::NotFound)?;
    let policy = policy_of(state, e.permit_id).await?;
    if !niji_extracts::sees_full_report(&e, &policy, user.id, &user.roles) {
        return Ok(ExtractView::Researcher(niji_extracts::researcher_view(&e).into()));
    }
    Ok(ExtractView::Full(ExtractBody {
        id: e.id,
        permit_id: e.permit_id,
        dataset: e.dataset,
        dataset_version: e.dataset_version,
        table: e.table_name,
        status: e.status,
        rows: e.rows_out,
        sha256: e.file_sha256,
        report: serde_json::from_str(&e.report).unwrap_or_default(),
    }))
}

/// Operators see every extract; researchers those of permits naming them.
async fn may_see(state: &AppState, user: &UserSummary, id: i64) -> Result<(), ApiError> {
    let store = &state.instance().store;
    let e = store.extract(id).await.map_err(|_| ApiError::Internal)?.ok_or(ApiError::NotFound)?;
    if user.has_role(Role::Operator) || named_on(state, user, e.permit_id).await? {
        Ok(())
    } else {
        Err(ApiError::Forbidden)
    }
}

async fn named_on(state: &AppState, user: &UserSummary, permit_id: i64) -> Result<bool, ApiError> {
    Ok(named(user, &policy_of(state, permit_id).await?))
}

/// A researcher named on the permit.
fn named(user: &UserSummary, policy: &PermitPolicy) -> bool {
    user.has_role(Role::Researcher) && policy.names(user.id)
}

/// The policy of an extract's permit (who is named on it decides who may see the full report).
async fn policy_of(state: &AppState, permit_id: i64) -> Result<PermitPolicy, ApiError> {
    let permit = state.instance().store.permit(permit_id).await.map_err(|_| ApiError::Internal)?.ok_or(ApiError::NotFound)?;
    serde_json::from_str(&permit.policy).map_err(|_| ApiError::Internal)
}

// ---------------------------------------------------------------------------------------------
// Portal.

struct Text {
    title: &'static str,
    intro: &'static str,
    none: &'static str,
    id: &'static str,
    permit: &'static str,
    table: &'static str,
    status: &'static str,
    rows: &'static str,
    awaiting: &'static str,
    approved: &'static str,
    rejected: &'static str,
    report: &'static str,
    k: &'static str,
    risk_before: &'static str,
    risk_after: &'static str,
    suppressed: &'static str,
    loss: &'static str,
    levels: &'static str,
    rules: &'static str,
    approve: &'static str,
    reject: &'static str,
    reason: &'static str,
    download: &'static str,
    err: &'static str,
    config: &'static str,
    about: &'static str,
    fewer_than_ten: &'static str,
    report_withheld: &'static str,
}

static JA: Text = Text {
    title: "匿名加工情報の提供",
    intro: "匿名加工の許可に基づく抽出物。運用者が報告書を確認して承認したものだけを、許可に記載された研究者がダウンロードできます。",
    none: "抽出物はありません。",
    id: "番号",
    permit: "許可",
    table: "テーブル",
    status: "状態",
    rows: "行数",
    awaiting: "承認待ち",
    approved: "承認済み",
    rejected: "却下",
    report: "加工の報告書",
    k: "達成した k（最小の同値クラス）",
    risk_before: "再識別リスク（加工前・最大）",
    risk_after: "再識別リスク（加工後・最大）",
    suppressed: "削除したレコード",
    loss: "情報損失",
    levels: "一般化の水準",
    rules: "適用した規則",
    approve: "承認する",
    reject: "却下する",
    reason: "却下の理由コード",
    download: "CSV をダウンロード",
    err: "この操作はできません。",
    config: "加工の設定",
    about: "約",
    fewer_than_ten: "10未満",
    report_withheld: "加工の報告書（件数・リスク・一般化の水準）は、運用者が提供を承認した後に表示されます。",
};

static EN: Text = Text {
    title: "Anonymized extracts",
    intro: "Extracts under permits on the anonymized track. Only those an operator approved after reading the report can be downloaded, by the researchers named on the permit.",
    none: "No extracts.",
    id: "No.",
    permit: "Permit",
    table: "Table",
    status: "Status",
    rows: "Rows",
    awaiting: "Awaiting approval",
    approved: "Approved",
    rejected: "Rejected",
    report: "Anonymization report",
    k: "k reached (smallest class)",
    risk_before: "Re-identification risk before (highest)",
    risk_after: "Re-identification risk after (highest)",
    suppressed: "Records suppressed",
    loss: "Information loss",
    levels: "Generalization levels",
    rules: "Rules applied",
    approve: "Approve",
    reject: "Reject",
    reason: "Reason code",
    download: "Download CSV",
    err: "This is not possible.",
    config: "Anonymization configuration",
    about: "about",
    fewer_than_ten: "fewer than 10",
    report_withheld: "The anonymization report (counts, risks, generalization levels) is shown once an operator has approved the release.",
};

fn text(lang: Lang) -> &'static Text {
    match lang {
        Lang::Ja => &JA,
        Lang::En => &EN,
    }
}

struct Row {
    id: i64,
    permit: i64,
    table: String,
    status: &'static str,
    /// Exact for an operator who did not request the extract and once approved; else rounded.
    rows: String,
}

/// The report as the page shows it. `risk_before` and `suppressed` describe the table before
/// anonymization: only for an operator who did not request the extract.
struct ReportView {
    k: String,
    risk_before: Option<String>,
    risk_after: String,
    suppressed: Option<String>,
    loss: String,
    levels: Vec<(String, String)>,
    rules: Vec<(String, String, String)>,
}

#[derive(Template)]
#[template(path = "extracts.html")]
struct ListPage {
    page: PageContext,
    t: &'static Text,
    rows: Vec<Row>,
}

#[derive(Template)]
#[template(path = "extract.html")]
struct DetailPage {
    page: PageContext,
    t: &'static Text,
    row: Row,
    sha256: Option<String>,
    config: String,
    /// `None`: withheld (not approved, and the reader does not decide it).
    report: Option<ReportView>,
    can_decide: bool,
    can_download: bool,
    error: Option<&'static str>,
}

fn status_label(t: &'static Text, s: &str) -> &'static str {
    match s {
        "approved" => t.approved,
        "rejected" => t.rejected,
        _ => t.awaiting,
    }
}

/// The row as `user` may see it: the exact rows for an operator who did not request the
/// extract, else those of `niji_extracts::researcher_view` (exact once approved, rounded before).
fn row_of(t: &'static Text, e: &niji_store::ExtractRow, policy: &PermitPolicy, user: &UserSummary) -> Row {
    let rows = if niji_extracts::sees_full_report(e, policy, user.id, &user.roles) {
        e.rows_out.to_string()
    } else {
        let view = niji_extracts::researcher_view(e);
        match (view.released, view.rows_rounded) {
            (Some(r), _) => r.rows.to_string(),
            (None, Some(n)) => format!("{} {n}", t.about),
            (None, None) => t.fewer_than_ten.to_string(),
        }
    };
    Row {
        id: e.id,
        permit: e.permit_id,
        table: format!("{}/v{}/{}", e.dataset, e.dataset_version, e.table_name),
        status: status_label(t, &e.status),
        rows,
    }
}

fn number(v: Option<f64>) -> String {
    v.map(|x| format!("{x:.3}")).unwrap_or_else(|| "—".into())
}

/// The full report, for an operator who did not request the extract.
fn full_report(report: &serde_json::Value) -> ReportView {
    ReportView {
        k: report["check"]["k"].to_string(),
        risk_before: Some(number(report["risk_before"]["prosecutor"]["highest"].as_f64())),
        risk_after: number(report["risk_after"]["prosecutor"]["highest"].as_f64()),
        suppressed: Some(report["suppressed_records"].to_string()),
        loss: format!("{} {}", report["information_loss"]["metric"].as_str().unwrap_or(""), number(report["information_loss"]["value"].as_f64())),
        levels: report["generalization"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|g| (g["column"].as_str().unwrap_or("").to_string(), format!("{} / {}", g["level"], g["max_level"])))
            .collect(),
        rules: report["rules"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|r| {
                (
                    r["rule"].as_str().unwrap_or("").to_string(),
                    r["column"].as_str().unwrap_or("").to_string(),
                    r["reason"].as_str().unwrap_or("").to_string(),
                )
            })
            .collect(),
    }
}

/// The released table's figures of an approved extract, for its researchers.
fn released_report(r: niji_extracts::ReleasedReport) -> ReportView {
    ReportView {
        k: r.k.map(|k| k.to_string()).unwrap_or_else(|| "—".into()),
        risk_before: None,
        risk_after: number(r.risk_after),
        suppressed: None,
        loss: r.information_loss.map(|(m, v)| format!("{m} {}", number(Some(v)))).unwrap_or_default(),
        levels: r.generalization.into_iter().map(|(c, l, m)| (c, format!("{l} / {m}"))).collect(),
        rules: r.rules,
    }
}

/// The signed-in operator or researcher, or the response to give instead.
#[allow(clippy::result_large_err)] // a page guard's early answer, built once per request
fn staff(s: &MaybeSession, lang: Lang, uri: &Uri) -> Result<UserSummary, Response> {
    match s.signed_in() {
        None => Err(Redirect::to("/login").into_response()),
        Some(sess) if sess.user.has_role(Role::Operator) || sess.user.has_role(Role::Researcher) => Ok(sess.user.clone()),
        Some(sess) => Err(crate::portal::error_page(StatusCode::FORBIDDEN, lang, Some(sess), uri, |m| m.err_forbidden)),
    }
}

async fn list_page(State(state): State<AppState>, lang: Lang, s: MaybeSession, uri: Uri) -> Response {
    let user = match staff(&s, lang, &uri) {
        Ok(u) => u,
        Err(r) => return r,
    };
    let t = text(lang);
    let Ok(all) = state.instance().store.extracts().await else {
        return crate::portal::error_page(StatusCode::INTERNAL_SERVER_ERROR, lang, s.signed_in(), &uri, |m| m.err_internal);
    };
    let mut rows = Vec::new();
    // Each permit's policy read once, however many extracts it has.
    let mut policies: HashMap<i64, PermitPolicy> = HashMap::new();
    for e in &all {
        if let std::collections::hash_map::Entry::Vacant(slot) = policies.entry(e.permit_id) {
            let Ok(policy) = policy_of(&state, e.permit_id).await else { continue };
            slot.insert(policy);
        }
        let policy = &policies[&e.permit_id];
        if user.has_role(Role::Operator) || named(&user, policy) {
            rows.push(row_of(t, e, policy, &user));
        }
    }
    render(ListPage { page: PageContext::new(lang, s.signed_in(), &uri), t, rows })
}

async fn detail(state: &AppState, lang: Lang, s: &MaybeSession, uri: &Uri, id: i64, error: Option<&'static str>, status: StatusCode) -> Response {
    let user = match staff(s, lang, uri) {
        Ok(u) => u,
        Err(r) => return r,
    };
    let t = text(lang);
    match may_see(state, &user, id).await {
        Ok(()) => {}
        Err(ApiError::NotFound) => return crate::portal::error_page(StatusCode::NOT_FOUND, lang, s.signed_in(), uri, |m| m.err_not_found),
        Err(_) => return crate::portal::error_page(StatusCode::FORBIDDEN, lang, s.signed_in(), uri, |m| m.err_forbidden),
    }
    let Ok(Some(e)) = state.instance().store.extract(id).await else {
        return crate::portal::error_page(StatusCode::NOT_FOUND, lang, s.signed_in(), uri, |m| m.err_not_found);
    };
    let Ok(policy) = policy_of(state, e.permit_id).await else {
        return crate::portal::error_page(StatusCode::NOT_FOUND, lang, s.signed_in(), uri, |m| m.err_not_found);
    };
    let (sha256, report) = if niji_extracts::sees_full_report(&e, &policy, user.id, &user.roles) {
        (Some(e.file_sha256.clone()), Some(full_report(&serde_json::from_str(&e.report).unwrap_or_default())))
    } else {
        match niji_extracts::researcher_view(&e).released {
            Some(r) => (Some(r.sha256.clone()), Some(released_report(r))),
            None => (None, None),
        }
    };
    let page = DetailPage {
        page: PageContext::new(lang, s.signed_in(), uri),
        t,
        row: row_of(t, &e, &policy, &user),
        sha256,
        config: e.config.clone(),
        report,
        can_decide: user.has_role(Role::Operator) && e.requested_by != user.id && e.status == "awaiting_approval",
        can_download: e.status == "approved" && named_on(state, &user, e.permit_id).await.unwrap_or(false),
        error,
    };
    (status, render(page)).into_response()
}

async fn detail_page(State(state): State<AppState>, lang: Lang, s: MaybeSession, uri: Uri, Path(id): Path<i64>) -> Response {
    detail(&state, lang, &s, &uri, id, None, StatusCode::OK).await
}

#[derive(Deserialize)]
struct DecisionForm {
    csrf: String,
    verdict: String,
    #[serde(default)]
    reason: String,
}

async fn decide_form(
    State(state): State<AppState>,
    lang: Lang,
    s: MaybeSession,
    uri: Uri,
    Path(id): Path<i64>,
    form: Result<Form<DecisionForm>, FormRejection>,
) -> Response {
    let Some(sess) = s.signed_in() else { return Redirect::to("/login").into_response() };
    let t = text(lang);
    let Ok(Form(f)) = form else { return detail(&state, lang, &s, &uri, id, Some(t.err), StatusCode::BAD_REQUEST).await };
    if !constant_time_eq(f.csrf.as_bytes(), sess.csrf_token.as_bytes()) {
        return detail(&state, lang, &s, &uri, id, Some(t.err), StatusCode::FORBIDDEN).await;
    }
    let approve = f.verdict == "approve";
    let reason = (!approve).then_some(f.reason.as_str());
    match niji_extracts::decide_extract(state.instance(), sess.user.id, id, approve, reason, OffsetDateTime::now_utc()).await {
        Ok(()) => Redirect::to(&format!("/extracts/{id}")).into_response(),
        Err(e) => {
            let status = match api_error(e) {
                ApiError::Forbidden => StatusCode::FORBIDDEN,
                ApiError::NotFound => StatusCode::NOT_FOUND,
                _ => StatusCode::CONFLICT,
            };
            detail(&state, lang, &s, &uri, id, Some(t.err), status).await
        }
    }
}

async fn file_portal(State(state): State<AppState>, lang: Lang, s: MaybeSession, uri: Uri, Path(id): Path<i64>) -> Response {
    let Some(sess) = s.signed_in() else { return Redirect::to("/login").into_response() };
    match niji_extracts::download_extract(state.instance(), sess.user.id, id, OffsetDateTime::now_utc()).await {
        Ok(bytes) => csv_response(id, bytes),
        Err(e) => {
            let status = match api_error(e) {
                ApiError::Forbidden => StatusCode::FORBIDDEN,
                ApiError::NotFound => StatusCode::NOT_FOUND,
                _ => StatusCode::CONFLICT,
            };
            detail(&state, lang, &s, &uri, id, Some(text(lang).err), status).await
        }
    }
}
