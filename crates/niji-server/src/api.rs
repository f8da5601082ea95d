//! The JSON API under `/api/v1`: health, the caller's account, the transparency log's
//! signed head and inclusion proofs, and the OpenAPI document describing them together with
//! the catalog (`crate::jsonld`) and data submissions (`crate::upload`).
//!
//! Errors are `{"error": {"code": "...", "message": "..."}}` with stable codes
//! (`unauthorized`, `forbidden`, `not_found`, `bad_request`, `conflict`, `payload_too_large`,
//! `unavailable`, `internal`); messages are fixed English text, never internal detail or input.
//! A refused application form is a `bad_request` that also lists located problems
//! (`crate::applications_api`).

use crate::AppState;
use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::{FromRequestParts, Path, Query, State};
use axum::http::request::Parts;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use niji_accounts::UserSummary;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use utoipa::{IntoParams, OpenApi, ToSchema};

pub(crate) fn routes() -> Router<AppState> {
    Router::new()
        .route("/health", get(health))
        .route("/openapi.json", get(openapi))
        .route("/me", get(me))
        .route("/log/head", get(log_head))
        .route("/log/proof/{index}", get(log_proof))
        .route("/log/consistency", get(log_consistency))
        .fallback(|| async { ApiError::NotFound })
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Niji API",
        description = "Secondary use of health data: accounts, the transparency log, the data catalog, data submissions, applications and data permits."
    ),
    paths(
        health,
        me,
        log_head,
        log_proof,
        log_consistency,
        crate::jsonld::catalog_list,
        crate::jsonld::catalog_dataset,
        crate::upload::api_submit,
        crate::applications_api::list_applications,
        crate::applications_api::create_application,
        crate::applications_api::get_application,
        crate::applications_api::submit_application,
        crate::applications_api::withdraw_application,
        crate::applications_api::vote_on_application,
        crate::applications_api::decide_application,
        crate::applications_api::list_permits,
        crate::applications_api::suspend_permit,
        crate::applications_api::resume_permit,
        crate::applications_api::revoke_permit,
        crate::applications_api::amend_permit,
        crate::applications_api::publish_criteria,
        crate::applications_api::publish_tariff,
        crate::applications_api::set_consent_scope,
        crate::applications_api::add_accreditation,
        crate::applications_api::create_committee,
        crate::applications_api::add_committee_member,
        crate::applications_api::deactivate_committee_member
    ),
    components(schemas(
        Health,
        Me,
        SignedTreeHeadBody,
        InclusionProofBody,
        ConsistencyProofBody,
        ErrorBody,
        ErrorDetail,
        crate::jsonld::CatalogList,
        crate::jsonld::CatalogItem,
        crate::upload::SubmissionBody,
        crate::upload::ProblemBody,
        crate::applications_api::ApplicationForm,
        crate::applications_api::StepBody,
        crate::applications_api::VoteRequest,
        crate::applications_api::DecisionRequest,
        crate::applications_api::RecipientForm,
        crate::applications_api::VariableForm,
        crate::applications_api::LinkageForm,
        crate::applications_api::SoftwareForm,
        crate::applications_api::ApplicationBody,
        crate::applications_api::ReasonBody,
        crate::applications_api::TriageBody,
        crate::applications_api::InvalidBody,
        crate::applications_api::InvalidDetail,
        crate::applications_api::FieldProblem,
        crate::applications_api::PermitBody,
        crate::applications_api::DatasetGrantBody,
        crate::applications_api::TableGrantBody,
        crate::applications_api::ScopeRequest,
        crate::applications_api::PermitStepBody,
        crate::applications_api::RevokeRequest,
        crate::applications_api::SetupErrorBody,
        crate::applications_api::SetupErrorDetail,
        crate::applications_api::PublishedBody,
        crate::applications_api::CreatedBody,
        crate::applications_api::ConsentScopeRequest,
        crate::applications_api::AccreditationRequest,
        crate::applications_api::CommitteeRequest,
        crate::applications_api::MemberRequest,
        crate::applications_api::DeactivatedBody
    ))
)]
struct ApiDoc;

/// The OpenAPI document as JSON.
pub fn openapi_json() -> String {
    let mut doc = ApiDoc::openapi();
    doc.merge(crate::register::RegisterDoc::openapi());
    doc.merge(crate::holder_registry::HolderRegistryDoc::openapi());
    doc.merge(crate::extracts::ExtractsDoc::openapi());
    doc.merge(crate::workspace_api::WorkspaceDoc::openapi());
    doc.to_pretty_json().expect("the OpenAPI document serializes")
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ApiError {
    Unauthorized,
    Forbidden,
    NotFound,
    BadRequest,
    /// The resource's state does not allow the step (e.g. submitting a withdrawn application).
    Conflict,
    PayloadTooLarge,
    /// Something the step needs is not set up yet (review criteria, tariff, committee).
    Unavailable,
    Internal,
}

#[derive(Serialize, ToSchema)]
pub(crate) struct ErrorBody {
    error: ErrorDetail,
}

#[derive(Serialize, ToSchema)]
pub(crate) struct ErrorDetail {
    /// Stable machine-readable code: unauthorized, forbidden, not_found, bad_request, conflict,
    /// payload_too_large, unavailable, internal.
    code: &'static str,
    message: &'static str,
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, code, message) = match self {
            ApiError::Unauthorized => (StatusCode::UNAUTHORIZED, "unauthorized", "a valid API token is required"),
            ApiError::Forbidden => (StatusCode::FORBIDDEN, "forbidden", "the account may not do this"),
            ApiError::NotFound => (StatusCode::NOT_FOUND, "not_found", "no such resource"),
            ApiError::BadRequest => (StatusCode::BAD_REQUEST, "bad_request", "the request is malformed or out of range"),
            ApiError::Conflict => (StatusCode::CONFLICT, "conflict", "the resource's current state does not allow this step"),
            ApiError::Unavailable => (StatusCode::SERVICE_UNAVAILABLE, "unavailable", "the review is not set up yet"),
            ApiError::PayloadTooLarge => (StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large", "the request body is larger than allowed"),
            ApiError::Internal => (StatusCode::INTERNAL_SERVER_ERROR, "internal", "internal error"),
        };
        (status, Json(ErrorBody { error: ErrorDetail { code, message } })).into_response()
    }
}

#[derive(Serialize, ToSchema)]
pub(crate) struct Health {
    status: &'static str,
    version: &'static str,
    log_size: u64,
}

/// Liveness and the log's size.
#[utoipa::path(get, path = "/api/v1/health", responses((status = 200, body = Health)))]
async fn health(State(state): State<AppState>) -> Json<Health> {
    Json(Health { status: "ok", version: env!("CARGO_PKG_VERSION"), log_size: state.instance().log().size() })
}

async fn openapi() -> Response {
    ([(header::CONTENT_TYPE, "application/json")], openapi_json()).into_response()
}

/// A caller authenticated by `Authorization: Bearer <API token>`.
pub(crate) struct TokenUser(pub(crate) UserSummary);

impl FromRequestParts<AppState> for TokenUser {
    type Rejection = ApiError;
    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        let token = parts
            .headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .ok_or(ApiError::Unauthorized)?;
        state.accounts().authenticate_api_token(token.trim(), OffsetDateTime::now_utc()).await.map(TokenUser).map_err(|_| ApiError::Unauthorized)
    }
}

#[derive(Serialize, ToSchema)]
pub(crate) struct Me {
    id: i64,
    username: String,
    display_name: String,
    organization: Option<String>,
    roles: Vec<&'static str>,
    two_factor_enabled: bool,
}

/// The account behind the API token.
#[utoipa::path(get, path = "/api/v1/me", security(("bearer" = [])), responses((status = 200, body = Me), (status = 401, body = ErrorBody)))]
async fn me(TokenUser(u): TokenUser) -> Json<Me> {
    Json(Me {
        id: u.id,
        username: u.username,
        display_name: u.display_name,
        organization: u.organization,
        roles: u.roles.iter().map(|r| r.as_str()).collect(),
        two_factor_enabled: u.totp_enabled,
    })
}

#[derive(Serialize, ToSchema)]
pub(crate) struct SignedTreeHeadBody {
    tree_size: u64,
    /// Milliseconds since the Unix epoch.
    timestamp: u64,
    timestamp_utc: String,
    /// Hex SHA-256 root (RFC 6962 MTH).
    root_hash: String,
    /// Hex Ed25519 signature over RFC 6962's TreeHeadSignature structure.
    signature: String,
    /// Hex of the exact bytes signed.
    signed_message: String,
    /// Hex Ed25519 public key of the log.
    public_key: String,
}

/// The newest signed tree head of the transparency log.
#[utoipa::path(get, path = "/api/v1/log/head", responses((status = 200, body = SignedTreeHeadBody)))]
async fn log_head(State(state): State<AppState>) -> Json<SignedTreeHeadBody> {
    let log = state.instance().log();
    Json(head_body(&log.head(), &log.verifying_key()))
}

pub(crate) fn head_body(h: &niji_log::SignedTreeHead, key: &niji_instance::ed25519_dalek::VerifyingKey) -> SignedTreeHeadBody {
    SignedTreeHeadBody {
        tree_size: h.tree_size,
        timestamp: h.timestamp_ms,
        timestamp_utc: format_ms(h.timestamp_ms),
        root_hash: hex::encode(h.root_hash),
        signature: hex::encode(h.signature),
        signed_message: hex::encode(h.signed_message()),
        public_key: hex::encode(key.as_bytes()),
    }
}

#[derive(Serialize, ToSchema)]
pub(crate) struct InclusionProofBody {
    leaf_index: u64,
    tree_size: u64,
    /// Hex SHA-256(0x00 ‖ entry).
    leaf_hash: String,
    /// Hex sibling hashes from the leaf up.
    audit_path: Vec<String>,
    root_hash: String,
}

#[derive(Deserialize, IntoParams)]
struct ProofQuery {
    /// Tree size to prove against; defaults to the newest signed head.
    tree_size: Option<u64>,
}

/// Inclusion proof of log entry `index` (RFC 6962 audit path).
#[utoipa::path(get, path = "/api/v1/log/proof/{index}", params(("index" = u64, Path, description = "Entry index, from 0"), ProofQuery),
    responses((status = 200, body = InclusionProofBody), (status = 400, body = ErrorBody)))]
async fn log_proof(
    State(state): State<AppState>,
    index: Result<Path<u64>, PathRejection>,
    query: Result<Query<ProofQuery>, QueryRejection>,
) -> Result<Json<InclusionProofBody>, ApiError> {
    // axum's own rejections quote the input; answer with our stable code instead.
    let (Ok(Path(index)), Ok(Query(q))) = (index, query) else { return Err(ApiError::BadRequest) };
    let p = state.instance().log().inclusion_proof(index, q.tree_size).map_err(|e| match e {
        niji_log::LogError::Proof(_) | niji_log::LogError::NoSuchEntry { .. } => ApiError::BadRequest,
        _ => ApiError::Internal,
    })?;
    Ok(Json(proof_body(&p)))
}

pub(crate) fn proof_body(p: &niji_log::InclusionProof) -> InclusionProofBody {
    InclusionProofBody {
        leaf_index: p.leaf_index,
        tree_size: p.tree_size,
        leaf_hash: hex::encode(p.leaf_hash),
        audit_path: p.audit_path.iter().map(hex::encode).collect(),
        root_hash: hex::encode(p.root_hash),
    }
}

pub(crate) fn format_ms(ms: u64) -> String {
    OffsetDateTime::from_unix_timestamp_nanos(ms as i128 * 1_000_000)
        .ok()
        .and_then(|t| t.format(&time::format_description::well_known::Rfc3339).ok())
        .unwrap_or_default()
}

#[derive(Deserialize, IntoParams)]
struct ConsistencyQuery {
    /// The older tree size.
    first: u64,
    /// The newer tree size (default: the newest signed head).
    second: Option<u64>,
}

#[derive(Serialize, ToSchema)]
pub(crate) struct ConsistencyProofBody {
    first: u64,
    second: u64,
    /// Hex hashes (RFC 6962 §2.1.2 PROOF(m, D[n])).
    consistency_path: Vec<String>,
}

/// Proof that the log of `first` entries is a prefix of the log of `second` entries:
/// what a witness holding an older signed head checks before trusting a newer one.
#[utoipa::path(get, path = "/api/v1/log/consistency", params(ConsistencyQuery),
    responses((status = 200, body = ConsistencyProofBody), (status = 400, body = ErrorBody)))]
async fn log_consistency(
    State(state): State<AppState>,
    query: Result<Query<ConsistencyQuery>, QueryRejection>,
) -> Result<Json<ConsistencyProofBody>, ApiError> {
    let Ok(Query(q)) = query else { return Err(ApiError::BadRequest) };
    let log = state.instance().log();
    let second = q.second.unwrap_or_else(|| log.head().tree_size);
    let path = log.consistency_proof(q.first, second).map_err(|_| ApiError::BadRequest)?;
    Ok(Json(ConsistencyProofBody { first: q.first, second, consistency_path: path.iter().map(hex::encode).collect() }))
}
