//! Applications and permits in the JSON API (issue 4), for the bearer token's account:
//! `GET/POST /api/v1/applications`, `GET /api/v1/applications/{id}`,
//! `POST /api/v1/applications/{id}/submit` (the triage result), `…/withdraw`, `…/votes`,
//! `…/decision`, `GET /api/v1/permits` and the permits' steps: `POST /api/v1/permits/{id}/suspend`
//! and `/resume` (operators), `/revoke` (operators, with a reason) and `/amend` (the chair: the
//! decision's scope and preset, built with the same [`crate::applications::amendment`]); the
//! operators' review set-up (what `/admin/review` does): `POST /api/v1/review/criteria` and
//! `/review/tariff` (a TOML body), `/review/consent-scopes`, `/review/accreditations`,
//! `/review/committees`, `/review/committees/{id}/members`, `/review/members/{id}/deactivate`,
//! each parsed and run by the very functions of [`crate::admin_review`] the portal's forms use;
//! a refusal is `{"error": {"code", "message", "reason"}}` with a stable `reason`.
//!
//! Operators list every application and permit; researchers their own. An application is
//! visible to its applicant, operators, members of the committee reviewing it and chairs;
//! to anyone else it does not exist (`not_found`). A refused form is `bad_request` with
//! located problems (`{field, reason}`, fixed reason codes, never a value); a step the
//! application's state does not allow is `conflict`.
//!
//! The wire shapes are defined here ([`ApplicationForm`] is both the request body and the
//! `form` of a detail) and mapped from `niji-review`'s types, never serialized straight out.

use crate::api::{ApiError, ErrorBody, TokenUser};
use crate::applications::{
    access, chair_decision, deadline_date, domain_problems, from_code, kind_from_code, purpose_from_code, resolve_researchers, store_failed,
    stored_form, track_from_code, visible_permits, DecisionInput, Problem, Reason, Refusal, ScopeInput,
};
use crate::upload::today_jst;
use crate::AppState;
use axum::extract::rejection::{JsonRejection, PathRejection};
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use niji_accounts::UserSummary;
use niji_applications::Actor;
use niji_core::Role;
use niji_review::{
    Application, ApplicationStatus, Case, LinkagePair, PurposeCategory, Recipient, RecipientKind, RequestedVariable, Software, Tier, Track,
    TriageReason, VariableRef, Vote,
};
use niji_store::{ApplicationRow, Store};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

pub(crate) fn routes() -> Router<AppState> {
    Router::new()
        .route("/applications", get(list_applications).post(create_application))
        .route("/applications/{id}", get(get_application))
        .route("/applications/{id}/submit", post(submit_application))
        .route("/applications/{id}/withdraw", post(withdraw_application))
        .route("/applications/{id}/votes", post(vote_on_application))
        .route("/applications/{id}/decision", post(decide_application))
        .route("/permits", get(list_permits))
        .route("/permits/{id}/suspend", post(suspend_permit))
        .route("/permits/{id}/resume", post(resume_permit))
        .route("/permits/{id}/revoke", post(revoke_permit))
        .route("/permits/{id}/amend", post(amend_permit))
        .route("/review/criteria", post(publish_criteria))
        .route("/review/tariff", post(publish_tariff))
        .route("/review/consent-scopes", post(set_consent_scope))
        .route("/review/accreditations", post(add_accreditation))
        .route("/review/committees", post(create_committee))
        .route("/review/committees/{id}/members", post(add_committee_member))
        .route("/review/members/{id}/deactivate", post(deactivate_committee_member))
}

/// An application form: the body of `POST /api/v1/applications` and the `form` of a detail.
/// Missing fields are empty (and reported as problems when required).
#[derive(Serialize, Deserialize, ToSchema, Default)]
#[serde(default)]
pub(crate) struct ApplicationForm {
    title: String,
    purpose: String,
    /// One of academic_research, treatment_development, drug_and_device_development,
    /// drug_safety, public_health_policy, healthcare_quality, ai_development, other.
    purpose_category: String,
    /// ICD-10 codes or prefixes; empty: not limited to diseases.
    diseases: Vec<String>,
    recipients: Vec<RecipientForm>,
    /// visiting, anonymized_extract or statistics_tables.
    track: String,
    variables: Vec<VariableForm>,
    linkage: Vec<LinkageForm>,
    analysis_plan: String,
    software: Vec<SoftwareForm>,
    /// 1–60.
    duration_months: u32,
    /// Account ids of the researchers (each needs a valid accreditation at submission).
    researchers: Vec<i64>,
    genomic_data: bool,
    rare_disease: bool,
    expected_population: Option<u64>,
}

#[derive(Serialize, Deserialize, ToSchema, Default)]
#[serde(default)]
pub(crate) struct RecipientForm {
    organization: String,
    /// academia, company, hospital, municipality, government or other.
    kind: String,
    similar_regulation: bool,
}

#[derive(Serialize, Deserialize, ToSchema, Default)]
#[serde(default)]
pub(crate) struct VariableForm {
    dataset: String,
    table: String,
    column: String,
    justification: String,
}

#[derive(Serialize, Deserialize, ToSchema, Default)]
#[serde(default)]
pub(crate) struct LinkageForm {
    left: String,
    right: String,
}

#[derive(Serialize, Deserialize, ToSchema, Default)]
#[serde(default)]
pub(crate) struct SoftwareForm {
    name: String,
    version: String,
}

impl ApplicationForm {
    fn from_application(a: &Application) -> Self {
        Self {
            title: a.title.clone(),
            purpose: a.purpose.clone(),
            purpose_category: a.purpose_category.as_str().into(),
            diseases: a.diseases.clone(),
            recipients: a
                .recipients
                .iter()
                .map(|r| RecipientForm {
                    organization: r.organization.clone(),
                    kind: r.kind.as_str().into(),
                    similar_regulation: r.similar_regulation,
                })
                .collect(),
            track: a.track.as_str().into(),
            variables: a
                .variables
                .iter()
                .map(|v| VariableForm {
                    dataset: v.dataset.clone(),
                    table: v.table.clone(),
                    column: v.column.clone(),
                    justification: v.justification.clone(),
                })
                .collect(),
            linkage: a.linkage.iter().map(|p| LinkageForm { left: p.left.clone(), right: p.right.clone() }).collect(),
            analysis_plan: a.analysis_plan.clone(),
            software: a.software.iter().map(|s| SoftwareForm { name: s.name.clone(), version: s.version.clone() }).collect(),
            duration_months: a.duration_months,
            researchers: a.researchers.iter().map(|r| r.account_id).collect(),
            genomic_data: a.genomic_data,
            rare_disease: a.rare_disease,
            expected_population: a.expected_population,
        }
    }

    /// The application, or every problem found (codes parsed, accounts resolved, validated).
    async fn to_application(&self, store: &Store) -> Result<Result<Application, Vec<Problem>>, Refusal> {
        let mut problems = Vec::new();
        let purpose_category = purpose_from_code(&self.purpose_category).unwrap_or_else(|| {
            problems.push(Problem { field: "purpose_category".into(), reason: Reason::UnknownValue });
            PurposeCategory::Other
        });
        let track = track_from_code(&self.track).unwrap_or_else(|| {
            problems.push(Problem { field: "track".into(), reason: Reason::UnknownValue });
            Track::Visiting
        });
        let mut recipients = Vec::new();
        for (i, r) in self.recipients.iter().enumerate() {
            let kind = kind_from_code(&r.kind).unwrap_or_else(|| {
                problems.push(Problem { field: format!("recipients[{i}].kind"), reason: Reason::UnknownValue });
                RecipientKind::Other
            });
            recipients.push(Recipient { organization: r.organization.clone(), kind, similar_regulation: r.similar_regulation });
        }
        let tokens: Vec<String> = self.researchers.iter().map(|id| id.to_string()).collect();
        let researchers = resolve_researchers(store, &tokens, &mut problems).await?;
        if !problems.is_empty() {
            return Ok(Err(problems));
        }
        let application = Application {
            title: self.title.clone(),
            purpose: self.purpose.clone(),
            purpose_category,
            diseases: self.diseases.clone(),
            recipients,
            track,
            variables: self
                .variables
                .iter()
                .map(|v| RequestedVariable {
                    dataset: v.dataset.clone(),
                    table: v.table.clone(),
                    column: v.column.clone(),
                    justification: v.justification.clone(),
                })
                .collect(),
            linkage: self.linkage.iter().map(|p| LinkagePair::new(p.left.clone(), p.right.clone())).collect(),
            analysis_plan: self.analysis_plan.clone(),
            software: self.software.iter().map(|s| Software { name: s.name.clone(), version: s.version.clone() }).collect(),
            duration_months: self.duration_months,
            researchers,
            genomic_data: self.genomic_data,
            rare_disease: self.rare_disease,
            expected_population: self.expected_population,
            cohort: None,
        };
        Ok(match application.validate() {
            Ok(()) => Ok(application),
            Err(p) => Err(domain_problems(p)),
        })
    }
}

/// A triage reason: its stable code and its text in both languages.
#[derive(Serialize, ToSchema)]
pub(crate) struct ReasonBody {
    code: &'static str,
    text_ja: String,
    text_en: String,
}

fn reason_body(r: &TriageReason) -> ReasonBody {
    ReasonBody { code: r.code().as_str(), text_ja: r.text_ja(), text_en: r.text_en() }
}

/// An application with its triage and decision; `form` in the detail only.
#[derive(Serialize, ToSchema)]
pub(crate) struct ApplicationBody {
    id: i64,
    title: String,
    applicant_id: i64,
    /// draft, submitted, notified, under_review, changes_requested, resubmitted, approved,
    /// approved_with_conditions, rejected or withdrawn.
    status: &'static str,
    /// 1–4 once triaged.
    case: Option<u8>,
    case_code: Option<&'static str>,
    /// notification, light, medical_validity, standard or full.
    tier: Option<&'static str>,
    reasons: Vec<ReasonBody>,
    criteria_version: Option<String>,
    fee_yen: Option<i64>,
    /// RFC 3339.
    submitted_at: Option<String>,
    /// YYYY-MM-DD.
    deadline: Option<String>,
    /// The committee's verdict: approve, approve_with_conditions, request_changes or reject.
    decision: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    form: Option<ApplicationForm>,
}

/// The outcome of a submission: triage, fee, deadline and (case 1) the permit issued at once.
#[derive(Serialize, ToSchema)]
pub(crate) struct TriageBody {
    application_id: i64,
    status: &'static str,
    case: u8,
    case_code: &'static str,
    case_label_ja: &'static str,
    case_label_en: &'static str,
    tier: &'static str,
    tier_label_ja: &'static str,
    tier_label_en: &'static str,
    reasons: Vec<ReasonBody>,
    criteria_version: String,
    fee_yen: u64,
    /// YYYY-MM-DD.
    deadline: String,
    permit: Option<i64>,
}

/// `bad_request` with the located problems of a form.
#[derive(Serialize, ToSchema)]
pub(crate) struct InvalidBody {
    error: InvalidDetail,
}

#[derive(Serialize, ToSchema)]
pub(crate) struct InvalidDetail {
    /// Always `bad_request`.
    code: &'static str,
    message: &'static str,
    problems: Vec<FieldProblem>,
}

/// A problem of a form field: its path (`variables[2].justification`) and a fixed reason code.
#[derive(Serialize, ToSchema)]
pub(crate) struct FieldProblem {
    field: String,
    /// required, too_long, not_icd10, duplicate, duration_out_of_range, linkage_to_itself,
    /// linkage_dataset_not_requested, inverted_range, zero_population, control_characters,
    /// unknown_value, unknown_account, not_in_catalog, not_accredited.
    reason: &'static str,
}

fn invalid(problems: &[Problem]) -> Response {
    let problems = problems.iter().map(|p| FieldProblem { field: p.field.clone(), reason: p.reason.code() }).collect();
    (StatusCode::BAD_REQUEST, Json(InvalidBody { error: InvalidDetail { code: "bad_request", message: "the application has problems", problems } }))
        .into_response()
}

fn refusal(r: Refusal) -> Response {
    match r {
        Refusal::Invalid(p) => invalid(&p),
        Refusal::Forbidden | Refusal::NotAMember => ApiError::Forbidden.into_response(),
        Refusal::NotFound => ApiError::NotFound.into_response(),
        Refusal::Transition | Refusal::Vote(_) | Refusal::Decide(_) => ApiError::Conflict.into_response(),
        Refusal::NotSetUp => ApiError::Unavailable.into_response(),
        Refusal::Permit => ApiError::BadRequest.into_response(),
        Refusal::Internal => ApiError::Internal.into_response(),
    }
}

fn body(row: &ApplicationRow, decision: Option<&str>, form: Option<ApplicationForm>) -> Result<ApplicationBody, Refusal> {
    let status = from_code::<ApplicationStatus>(&row.status).ok_or(Refusal::Internal)?;
    let case = row.case_code.as_deref().and_then(from_code::<Case>);
    let reasons: Vec<TriageReason> = match &row.reasons {
        Some(r) => serde_json::from_str(r).map_err(|_| Refusal::Internal)?,
        None => Vec::new(),
    };
    Ok(ApplicationBody {
        id: row.id,
        title: row.title.clone(),
        applicant_id: row.applicant_id,
        status: status.as_str(),
        case: case.map(Case::number),
        case_code: case.map(Case::as_str),
        tier: row.tier.as_deref().and_then(|t| t.parse::<Tier>().ok()).map(Tier::as_str),
        reasons: reasons.iter().map(reason_body).collect(),
        criteria_version: row.criteria_version.clone(),
        fee_yen: row.fee_yen,
        submitted_at: row.submitted_at.map(|t| crate::api::format_ms(t.max(0) as u64 * 1000)),
        deadline: row.deadline_at.and_then(deadline_date).map(|d| d.to_string()),
        decision: decision.and_then(from_code::<Vote>).map(Vote::as_str),
        form,
    })
}

async fn detail(store: &Store, row: &ApplicationRow) -> Result<ApplicationBody, Refusal> {
    let decision = store.review_decision(row.id).await.map_err(store_failed)?.map(|d| d.decision);
    let form = stored_form(row)?;
    body(row, decision.as_deref(), Some(ApplicationForm::from_application(&form)))
}

/// The applications of the token's account (operators: every application), oldest first.
#[utoipa::path(get, path = "/api/v1/applications", security(("bearer" = [])),
    responses((status = 200, body = Vec<ApplicationBody>), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
pub(crate) async fn list_applications(State(state): State<AppState>, TokenUser(user): TokenUser) -> Response {
    let store = &state.instance().store;
    let result = async {
        let rows = if user.has_role(Role::Operator) {
            store.applications().await.map_err(store_failed)?
        } else if user.has_role(Role::Researcher) {
            store.applications_by_applicant(user.id).await.map_err(store_failed)?
        } else {
            return Err(Refusal::Forbidden);
        };
        let mut out = Vec::with_capacity(rows.len());
        for row in &rows {
            let decision = store.review_decision(row.id).await.map_err(store_failed)?.map(|d| d.decision);
            out.push(body(row, decision.as_deref(), None)?);
        }
        Ok(out)
    }
    .await;
    match result {
        Ok(list) => Json(list).into_response(),
        Err(r) => refusal(r),
    }
}

async fn visible_row(store: &Store, user: &UserSummary, id: i64) -> Result<ApplicationRow, Refusal> {
    let row = store.application(id).await.map_err(store_failed)?.ok_or(Refusal::NotFound)?;
    if !access(store, user, &row).await.map_err(store_failed)?.visible() {
        return Err(Refusal::NotFound);
    }
    Ok(row)
}

/// One application with its form.
#[utoipa::path(get, path = "/api/v1/applications/{id}", security(("bearer" = [])), params(("id" = i64, Path, description = "Application id")),
    responses((status = 200, body = ApplicationBody), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub(crate) async fn get_application(State(state): State<AppState>, TokenUser(user): TokenUser, id: Result<Path<i64>, PathRejection>) -> Response {
    let Ok(Path(id)) = id else { return ApiError::NotFound.into_response() };
    let store = &state.instance().store;
    let result = async {
        let row = visible_row(store, &user, id).await?;
        detail(store, &row).await
    }
    .await;
    match result {
        Ok(b) => Json(b).into_response(),
        Err(r) => refusal(r),
    }
}

/// Creates a draft owned by the token's account (a researcher). The form must be complete
/// and valid; whether its variables exist and its researchers are accredited is checked at
/// submission.
#[utoipa::path(post, path = "/api/v1/applications", security(("bearer" = [])), request_body = ApplicationForm,
    responses((status = 201, body = ApplicationBody), (status = 400, body = InvalidBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
pub(crate) async fn create_application(
    State(state): State<AppState>,
    TokenUser(user): TokenUser,
    form: Result<Json<ApplicationForm>, JsonRejection>,
) -> Response {
    // axum's own rejection quotes the input; answer with the stable code instead.
    let Ok(Json(form)) = form else { return ApiError::BadRequest.into_response() };
    if !user.has_role(Role::Researcher) {
        return ApiError::Forbidden.into_response();
    }
    let store = &state.instance().store;
    let result = async {
        let application = match form.to_application(store).await? {
            Ok(a) => a,
            Err(problems) => return Err(Refusal::Invalid(problems)),
        };
        let actor = Actor::load(store, user.id).await.map_err(|e| Refusal::from_workflow(e, None))?;
        let id = niji_applications::create_draft(state.instance(), &actor, &application).await.map_err(|e| Refusal::from_workflow(e, None))?;
        let row = store.application(id).await.map_err(store_failed)?.ok_or(Refusal::Internal)?;
        detail(store, &row).await
    }
    .await;
    match result {
        Ok(b) => (StatusCode::CREATED, Json(b)).into_response(),
        Err(r) => refusal(r),
    }
}

/// Submits a draft of the token's account: validation, catalog and accreditation checks, then
/// triage (case, tier, reasons), fee and deadline. Case 1 is accepted by notification and gets
/// its permit at once.
#[utoipa::path(post, path = "/api/v1/applications/{id}/submit", security(("bearer" = [])), params(("id" = i64, Path, description = "Application id")),
    responses((status = 200, body = TriageBody), (status = 400, body = InvalidBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 409, body = ErrorBody), (status = 503, body = ErrorBody)))]
pub(crate) async fn submit_application(State(state): State<AppState>, TokenUser(user): TokenUser, id: Result<Path<i64>, PathRejection>) -> Response {
    let Ok(Path(id)) = id else { return ApiError::NotFound.into_response() };
    let store = &state.instance().store;
    let result = async {
        let row = visible_row(store, &user, id).await?;
        if row.applicant_id != user.id {
            return Err(Refusal::Forbidden);
        }
        let form = stored_form(&row)?;
        let actor = Actor::load(store, user.id).await.map_err(|e| Refusal::from_workflow(e, None))?;
        niji_applications::submit(state.instance(), &actor, id, today_jst()).await.map_err(|e| Refusal::from_workflow(e, Some(&form)))
    }
    .await;
    match result {
        Ok(s) => {
            let t = &s.triage;
            Json(TriageBody {
                application_id: id,
                status: s.status.as_str(),
                case: t.case.number(),
                case_code: t.case.as_str(),
                case_label_ja: t.case.label_ja(),
                case_label_en: t.case.label_en(),
                tier: t.tier.as_str(),
                tier_label_ja: t.tier.label_ja(),
                tier_label_en: t.tier.label_en(),
                reasons: t.reasons.iter().map(reason_body).collect(),
                criteria_version: t.criteria_version.clone(),
                fee_yen: s.fee_yen,
                deadline: s.deadline.to_string(),
                permit: s.permit,
            })
            .into_response()
        }
        Err(r) => refusal(r),
    }
}

/// The status an application has after a step.
#[derive(Serialize, ToSchema)]
pub(crate) struct StepBody {
    application_id: i64,
    status: &'static str,
    /// The permit an approval issued.
    permit: Option<i64>,
}

async fn step_body(store: &Store, id: i64, permit: Option<i64>) -> Response {
    match store.application(id).await {
        Ok(Some(row)) => match from_code::<ApplicationStatus>(&row.status) {
            Some(status) => Json(StepBody { application_id: id, status: status.as_str(), permit }).into_response(),
            None => ApiError::Internal.into_response(),
        },
        _ => ApiError::Internal.into_response(),
    }
}

/// The applicant withdraws an application that is not decided yet.
#[utoipa::path(post, path = "/api/v1/applications/{id}/withdraw", security(("bearer" = [])), params(("id" = i64, Path)),
    responses((status = 200, body = StepBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub(crate) async fn withdraw_application(
    State(state): State<AppState>,
    TokenUser(user): TokenUser,
    id: Result<Path<i64>, PathRejection>,
) -> Response {
    let Ok(Path(id)) = id else { return ApiError::NotFound.into_response() };
    let store = &state.instance().store;
    let result = async {
        let actor = Actor::load(store, user.id).await.map_err(|e| Refusal::from_workflow(e, None))?;
        niji_applications::withdraw(state.instance(), &actor, id).await.map_err(|e| Refusal::from_workflow(e, None))
    }
    .await;
    match result {
        Ok(()) => step_body(store, id, None).await,
        Err(r) => refusal(r),
    }
}

/// A committee member's vote.
#[derive(Deserialize, ToSchema)]
pub(crate) struct VoteRequest {
    /// approve, approve_with_conditions, request_changes or reject.
    vote: String,
    #[serde(default)]
    opinion: String,
}

/// A member of the reviewing committee votes (once; refused when recused).
#[utoipa::path(post, path = "/api/v1/applications/{id}/votes", security(("bearer" = [])), params(("id" = i64, Path)), request_body = VoteRequest,
    responses((status = 200, body = StepBody), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub(crate) async fn vote_on_application(
    State(state): State<AppState>,
    TokenUser(user): TokenUser,
    id: Result<Path<i64>, PathRejection>,
    body: Result<Json<VoteRequest>, JsonRejection>,
) -> Response {
    let Ok(Path(id)) = id else { return ApiError::NotFound.into_response() };
    let Ok(Json(body)) = body else { return ApiError::BadRequest.into_response() };
    let Some(vote) = from_code::<niji_review::Vote>(&body.vote) else { return ApiError::BadRequest.into_response() };
    let store = &state.instance().store;
    let result = async {
        let actor = Actor::load(store, user.id).await.map_err(|e| Refusal::from_workflow(e, None))?;
        niji_applications::cast_vote(state.instance(), &actor, id, vote, &body.opinion).await.map_err(|e| Refusal::from_workflow(e, None))
    }
    .await;
    match result {
        Ok(()) => step_body(store, id, None).await,
        Err(r) => refusal(r),
    }
}

/// The chair's decision.
#[derive(Deserialize, ToSchema)]
pub(crate) struct DecisionRequest {
    /// approve, approve_with_conditions, request_changes or reject.
    verdict: String,
    /// Conditions of an approval with conditions.
    #[serde(default)]
    conditions: Vec<String>,
    reasons: Vec<String>,
    /// The approved variables and linkage pairs and the output preset (absent: standard).
    #[serde(flatten)]
    scope: ScopeRequest,
    /// A cohort within the application's (ICD-10 codes or prefixes under the application's,
    /// an age range and a period inside its own). Absent: the application's cohort.
    #[serde(default)]
    cohort: Option<CohortRequest>,
    /// Shift every date a researcher sees by one offset per person, up to this many days
    /// (1–366). Absent: no shift.
    #[serde(default)]
    date_shift_days: Option<u32>,
}

/// A cohort restriction.
#[derive(Deserialize, ToSchema)]
pub(crate) struct CohortRequest {
    #[serde(default)]
    diseases: Vec<String>,
    #[serde(default)]
    age_min: Option<u32>,
    #[serde(default)]
    age_max: Option<u32>,
    /// ISO date.
    #[serde(default)]
    period_from: Option<String>,
    /// ISO date.
    #[serde(default)]
    period_to: Option<String>,
}

impl CohortRequest {
    /// The cohort, or the field that is malformed.
    fn filter(self) -> Result<niji_review::CohortFilter, Problem> {
        crate::applications::cohort_from_parts(self.diseases, self.age_min, self.age_max, self.period_from.as_deref(), self.period_to.as_deref())
    }
}

/// What the chair approves of an application's request and the output preset: the decision's
/// fields and the body of a permit's amendment.
#[derive(Deserialize, ToSchema, Default)]
pub(crate) struct ScopeRequest {
    /// The approved variables, a subset of those requested (the permit grants these only).
    /// Absent: every requested variable and linkage pair is approved.
    #[serde(default)]
    variables: Option<Vec<ApprovedVariable>>,
    /// The approved linkage pairs, only with `variables` (absent: no linkage).
    #[serde(default)]
    linkage: Option<Vec<LinkageForm>>,
    /// Output-checking preset: ndb, acro or opensafely (standard = ndb, strict = acro); kept
    /// under its canonical name. Absent: standard for a decision, the permit's for an amendment.
    #[serde(default)]
    output_preset: Option<String>,
}

impl ScopeRequest {
    fn input(self) -> ScopeInput {
        ScopeInput {
            variables: self.variables.map(|list| list.into_iter().map(|v| VariableRef::new(v.dataset, v.table, v.column)).collect()),
            linkage: self.linkage.map(|list| list.into_iter().map(|l| LinkagePair::new(l.left, l.right)).collect()),
            output_preset: self.output_preset,
        }
    }
}

/// A dataset, table and column approved by the chair.
#[derive(Deserialize, ToSchema)]
pub(crate) struct ApprovedVariable {
    dataset: String,
    table: String,
    column: String,
}

/// The chair records the committee's decision; an approval returns its permit.
#[utoipa::path(post, path = "/api/v1/applications/{id}/decision", security(("bearer" = [])), params(("id" = i64, Path)), request_body = DecisionRequest,
    responses((status = 200, body = StepBody), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub(crate) async fn decide_application(
    State(state): State<AppState>,
    TokenUser(user): TokenUser,
    id: Result<Path<i64>, PathRejection>,
    body: Result<Json<DecisionRequest>, JsonRejection>,
) -> Response {
    let Ok(Path(id)) = id else { return ApiError::NotFound.into_response() };
    let Ok(Json(body)) = body else { return ApiError::BadRequest.into_response() };
    let store = &state.instance().store;
    let result = async {
        let cohort = body.cohort.map(CohortRequest::filter).transpose().map_err(|p| Refusal::Invalid(vec![p]))?;
        let decision = chair_decision(DecisionInput {
            cohort,
            date_shift_days: body.date_shift_days,
            verdict: body.verdict,
            conditions: body.conditions,
            reasons: body.reasons,
            scope: body.scope.input(),
        })
        .map_err(Refusal::Invalid)?;
        let actor = Actor::load(store, user.id).await.map_err(|e| Refusal::from_workflow(e, None))?;
        niji_applications::decide(state.instance(), &actor, id, decision, today_jst()).await.map_err(|e| Refusal::from_workflow(e, None))
    }
    .await;
    match result {
        Ok(permit) => step_body(store, id, permit).await,
        Err(r) => refusal(r),
    }
}

/// A permit's policy: what the project may touch, for how long, under which conditions.
#[derive(Serialize, ToSchema)]
pub(crate) struct PermitBody {
    id: i64,
    application_id: i64,
    version: i64,
    /// active, suspended, revoked, expired or superseded.
    status: String,
    /// YYYY-MM-DD, both included.
    starts_on: String,
    expires_on: String,
    track: &'static str,
    purpose_category: &'static str,
    output_preset: String,
    datasets: Vec<DatasetGrantBody>,
    linkage: Vec<LinkageForm>,
    conditions: Vec<String>,
    /// Whether the permit's data key still exists (destroyed when the permit closes).
    key_present: bool,
}

#[derive(Serialize, ToSchema)]
pub(crate) struct DatasetGrantBody {
    dataset: String,
    tables: Vec<TableGrantBody>,
}

#[derive(Serialize, ToSchema)]
pub(crate) struct TableGrantBody {
    table: String,
    columns: Vec<String>,
}

/// The permits of the token's account's applications (operators: every permit).
#[utoipa::path(get, path = "/api/v1/permits", security(("bearer" = [])),
    responses((status = 200, body = Vec<PermitBody>), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
pub(crate) async fn list_permits(State(state): State<AppState>, TokenUser(user): TokenUser) -> Response {
    match visible_permits(&state.instance().store, &user).await {
        Ok(permits) => Json(
            permits
                .into_iter()
                .map(|p| {
                    let policy = p.policy;
                    PermitBody {
                        id: p.id,
                        application_id: p.application_id,
                        version: p.version,
                        status: p.status,
                        starts_on: policy.starts_on.to_string(),
                        expires_on: policy.expires_on.to_string(),
                        track: policy.track.as_str(),
                        purpose_category: policy.purpose_category.as_str(),
                        output_preset: policy.output_preset,
                        datasets: policy
                            .datasets
                            .into_iter()
                            .map(|d| DatasetGrantBody {
                                dataset: d.dataset,
                                tables: d.tables.into_iter().map(|t| TableGrantBody { table: t.table, columns: t.columns }).collect(),
                            })
                            .collect(),
                        linkage: policy.linkage.into_iter().map(|l| LinkageForm { left: l.left, right: l.right }).collect(),
                        conditions: policy.conditions,
                        key_present: p.key_present,
                    }
                })
                .collect::<Vec<_>>(),
        )
        .into_response(),
        Err(r) => refusal(r),
    }
}

/// A permit after a step.
#[derive(Serialize, ToSchema)]
pub(crate) struct PermitStepBody {
    /// The permit the step acted on (for an amendment: the new version).
    permit_id: i64,
    /// active, suspended or revoked.
    status: String,
    /// For an amendment: the version superseded.
    #[serde(skip_serializing_if = "Option::is_none")]
    supersedes: Option<i64>,
    /// For an amendment: the new version's number.
    #[serde(skip_serializing_if = "Option::is_none")]
    version: Option<i64>,
    /// For a revocation or an amendment: the deletion certificate of the destroyed key.
    #[serde(skip_serializing_if = "Option::is_none")]
    certificate: Option<i64>,
}

async fn permit_step_body(store: &Store, permit_id: i64, supersedes: Option<i64>, certificate: Option<i64>) -> Response {
    match store.permit(permit_id).await {
        Ok(Some(p)) => {
            Json(PermitStepBody { permit_id, status: p.status, supersedes, version: supersedes.map(|_| p.version), certificate }).into_response()
        }
        _ => ApiError::Internal.into_response(),
    }
}

async fn api_actor(store: &Store, user: &UserSummary) -> Result<Actor, Refusal> {
    Actor::load(store, user.id).await.map_err(|e| Refusal::from_workflow(e, None))
}

/// An operator suspends an active permit: its workspace may not run; its key is kept.
#[utoipa::path(post, path = "/api/v1/permits/{id}/suspend", security(("bearer" = [])), params(("id" = i64, Path, description = "Permit id")),
    responses((status = 200, body = PermitStepBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 409, body = ErrorBody)))]
pub(crate) async fn suspend_permit(State(state): State<AppState>, TokenUser(user): TokenUser, id: Result<Path<i64>, PathRejection>) -> Response {
    let Ok(Path(id)) = id else { return ApiError::NotFound.into_response() };
    let store = &state.instance().store;
    let result = async {
        let actor = api_actor(store, &user).await?;
        niji_applications::suspend_permit(state.instance(), &actor, id).await.map_err(|e| Refusal::from_workflow(e, None))
    }
    .await;
    match result {
        Ok(()) => permit_step_body(store, id, None, None).await,
        Err(r) => refusal(r),
    }
}

/// An operator lifts a permit's suspension.
#[utoipa::path(post, path = "/api/v1/permits/{id}/resume", security(("bearer" = [])), params(("id" = i64, Path, description = "Permit id")),
    responses((status = 200, body = PermitStepBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 409, body = ErrorBody)))]
pub(crate) async fn resume_permit(State(state): State<AppState>, TokenUser(user): TokenUser, id: Result<Path<i64>, PathRejection>) -> Response {
    let Ok(Path(id)) = id else { return ApiError::NotFound.into_response() };
    let store = &state.instance().store;
    let result = async {
        let actor = api_actor(store, &user).await?;
        niji_applications::resume_permit(state.instance(), &actor, id).await.map_err(|e| Refusal::from_workflow(e, None))
    }
    .await;
    match result {
        Ok(()) => permit_step_body(store, id, None, None).await,
        Err(r) => refusal(r),
    }
}

/// Why a permit is revoked (kept with the deletion certificate, never logged).
#[derive(Deserialize, ToSchema)]
pub(crate) struct RevokeRequest {
    #[serde(default)]
    reason: String,
}

/// Longest reason kept, in characters.
const MAX_REVOKE_REASON_CHARS: usize = 2000;

/// An operator revokes a permit: its key is destroyed and a deletion certificate recorded.
#[utoipa::path(post, path = "/api/v1/permits/{id}/revoke", security(("bearer" = [])), params(("id" = i64, Path, description = "Permit id")),
    request_body = RevokeRequest,
    responses((status = 200, body = PermitStepBody), (status = 400, body = InvalidBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub(crate) async fn revoke_permit(
    State(state): State<AppState>,
    TokenUser(user): TokenUser,
    id: Result<Path<i64>, PathRejection>,
    body: Result<Json<RevokeRequest>, JsonRejection>,
) -> Response {
    let Ok(Path(id)) = id else { return ApiError::NotFound.into_response() };
    let Ok(Json(body)) = body else { return ApiError::BadRequest.into_response() };
    let store = &state.instance().store;
    let reason: String = body.reason.trim().chars().take(MAX_REVOKE_REASON_CHARS).collect();
    let result = async {
        let actor = api_actor(store, &user).await?;
        if reason.is_empty() {
            // Who may revoke is answered before what is missing.
            if !actor.roles.contains(&Role::Operator) {
                return Err(Refusal::Forbidden);
            }
            return Err(Refusal::Invalid(vec![Problem { field: "reason".into(), reason: Reason::Domain(niji_review::ProblemReason::Required) }]));
        }
        niji_applications::revoke_permit(state.instance(), &actor, id, &reason).await.map_err(|e| Refusal::from_workflow(e, None))
    }
    .await;
    match result {
        Ok(certificate) => permit_step_body(store, id, None, Some(certificate)).await,
        Err(r) => refusal(r),
    }
}

/// The chair amends a permit: a new version granting the approved subset of the application's
/// request (absent `variables`: everything requested) under the given preset (absent: the
/// permit's); the old version is superseded, its key destroyed with a deletion certificate.
/// Returns the new permit.
#[utoipa::path(post, path = "/api/v1/permits/{id}/amend", security(("bearer" = [])), params(("id" = i64, Path, description = "Permit id")),
    request_body = ScopeRequest,
    responses((status = 201, body = PermitStepBody), (status = 400, body = InvalidBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub(crate) async fn amend_permit(
    State(state): State<AppState>,
    TokenUser(user): TokenUser,
    id: Result<Path<i64>, PathRejection>,
    body: Result<Json<ScopeRequest>, JsonRejection>,
) -> Response {
    let Ok(Path(id)) = id else { return ApiError::NotFound.into_response() };
    let Ok(Json(body)) = body else { return ApiError::BadRequest.into_response() };
    let store = &state.instance().store;
    let result = async {
        let actor = api_actor(store, &user).await?;
        let (scope, preset) = crate::applications::amendment(body.input()).map_err(Refusal::Invalid)?;
        let new_id = niji_applications::amend_permit(state.instance(), &actor, id, scope, preset, today_jst())
            .await
            .map_err(|e| Refusal::from_workflow(e, None))?;
        let certificate = store.deletion_certificates_for_permit(id).await.map_err(store_failed)?.into_iter().map(|c| c.id).max();
        Ok((new_id, certificate))
    }
    .await;
    match result {
        Ok((new_id, certificate)) => {
            let mut resp = permit_step_body(store, new_id, Some(id), certificate).await;
            if resp.status() == StatusCode::OK {
                *resp.status_mut() = StatusCode::CREATED;
            }
            resp
        }
        Err(r) => refusal(r),
    }
}

// ---------------------------------------------------------------------------------------------
// The operators' review set-up.

use crate::admin_review::{self as setup, MemberInput, Publication, SetupProblem};

/// A refused set-up step: the generic code, a fixed English message, a stable reason and the
/// line, tier or position it names (never what was sent).
#[derive(Serialize, ToSchema)]
pub(crate) struct SetupErrorBody {
    error: SetupErrorDetail,
}

#[derive(Serialize, ToSchema)]
pub(crate) struct SetupErrorDetail {
    /// bad_request, forbidden, not_found, conflict or internal.
    code: &'static str,
    message: String,
    /// malformed, toml_syntax, toml_keys, empty_version, bad_published, unknown_tier,
    /// missing_tier, bad_deadline, deadlines_decrease, min_members, min_external, quorum,
    /// committee_rule, tariff_unknown_tier, tariff_missing_tier, version_exists, no_dataset,
    /// not_icd10, no_account, course_required, bad_completed_on, bad_expires_on,
    /// expiry_before_completion, committee_name_required, committee_exists, no_committee,
    /// member_name_required, unknown_field, unknown_gender, already_member, no_member,
    /// member_not_active, forbidden, internal.
    reason: &'static str,
    /// The TOML line of a syntax error.
    #[serde(skip_serializing_if = "Option::is_none")]
    line: Option<usize>,
    /// The tier a rule names.
    #[serde(skip_serializing_if = "Option::is_none")]
    tier: Option<&'static str>,
    /// The position (1-based) of a disease code that is not ICD-10.
    #[serde(skip_serializing_if = "Option::is_none")]
    position: Option<usize>,
}

fn setup_refusal(p: SetupProblem) -> Response {
    let status = p.status();
    let code = match status {
        StatusCode::FORBIDDEN => "forbidden",
        StatusCode::NOT_FOUND => "not_found",
        StatusCode::CONFLICT => "conflict",
        StatusCode::INTERNAL_SERVER_ERROR => "internal",
        _ => "bad_request",
    };
    let (line, tier, position) = p.detail();
    let message = p.message(crate::i18n::Lang::En);
    (status, Json(SetupErrorBody { error: SetupErrorDetail { code, message, reason: p.code(), line, tier, position } })).into_response()
}

/// The token's account as the acting operator (others: `forbidden`, nothing read).
async fn operator_actor(store: &Store, user: &UserSummary) -> Result<Actor, SetupProblem> {
    if !user.has_role(Role::Operator) {
        return Err(SetupProblem::Forbidden);
    }
    Actor::load(store, user.id).await.map_err(|e| {
        tracing::error!(error = %e, "loading the acting operator failed");
        SetupProblem::Internal
    })
}

/// A published version.
#[derive(Serialize, ToSchema)]
pub(crate) struct PublishedBody {
    version: String,
}

/// An id created by a set-up step.
#[derive(Serialize, ToSchema)]
pub(crate) struct CreatedBody {
    id: i64,
}

async fn publish_toml(
    state: &AppState,
    user: &UserSummary,
    what: Publication,
    body: Result<String, axum::extract::rejection::StringRejection>,
) -> Response {
    let store = &state.instance().store;
    let result = async {
        let actor = operator_actor(store, user).await?;
        let body = body.map_err(|_| SetupProblem::Form)?;
        setup::publish(state, &actor, what, &body).await
    }
    .await;
    match result {
        Ok(version) => (StatusCode::CREATED, Json(PublishedBody { version })).into_response(),
        Err(p) => setup_refusal(p),
    }
}

/// Publishes a new version of the review criteria (審査基準) from a TOML body (as the portal's
/// form takes it). Published versions never change: an existing version is `conflict`.
#[utoipa::path(post, path = "/api/v1/review/criteria", security(("bearer" = [])), request_body(content = String, content_type = "application/toml"),
    responses((status = 201, body = PublishedBody), (status = 400, body = SetupErrorBody), (status = 401, body = ErrorBody), (status = 403, body = SetupErrorBody),
        (status = 409, body = SetupErrorBody)))]
pub(crate) async fn publish_criteria(
    State(state): State<AppState>,
    TokenUser(user): TokenUser,
    body: Result<String, axum::extract::rejection::StringRejection>,
) -> Response {
    publish_toml(&state, &user, Publication::Criteria, body).await
}

/// Publishes a new version of the tariff from a TOML body.
#[utoipa::path(post, path = "/api/v1/review/tariff", security(("bearer" = [])), request_body(content = String, content_type = "application/toml"),
    responses((status = 201, body = PublishedBody), (status = 400, body = SetupErrorBody), (status = 401, body = ErrorBody), (status = 403, body = SetupErrorBody),
        (status = 409, body = SetupErrorBody)))]
pub(crate) async fn publish_tariff(
    State(state): State<AppState>,
    TokenUser(user): TokenUser,
    body: Result<String, axum::extract::rejection::StringRejection>,
) -> Response {
    publish_toml(&state, &user, Publication::Tariff, body).await
}

/// A dataset's consent scope.
#[derive(Deserialize, ToSchema)]
pub(crate) struct ConsentScopeRequest {
    dataset: String,
    /// Purpose codes (every one but `other`).
    #[serde(default)]
    purposes: Vec<String>,
    /// ICD-10 codes or prefixes; empty: any disease.
    #[serde(default)]
    diseases: Vec<String>,
    /// academia, company, hospital, municipality, government or other.
    #[serde(default)]
    recipient_kinds: Vec<String>,
    /// Named recipient organizations.
    #[serde(default)]
    recipients: Vec<String>,
}

/// Records (or replaces) the consent scope a dataset's data was collected under.
#[utoipa::path(post, path = "/api/v1/review/consent-scopes", security(("bearer" = [])), request_body = ConsentScopeRequest,
    responses((status = 204), (status = 400, body = SetupErrorBody), (status = 401, body = ErrorBody), (status = 403, body = SetupErrorBody),
        (status = 404, body = SetupErrorBody)))]
pub(crate) async fn set_consent_scope(
    State(state): State<AppState>,
    TokenUser(user): TokenUser,
    body: Result<Json<ConsentScopeRequest>, JsonRejection>,
) -> Response {
    let store = &state.instance().store;
    let result = async {
        let actor = operator_actor(store, &user).await?;
        let Json(b) = body.map_err(|_| SetupProblem::Form)?;
        let scope = setup::consent_scope(
            b.purposes.iter().map(String::as_str),
            b.recipient_kinds.iter().map(String::as_str),
            b.diseases.iter().map(String::as_str),
            b.recipients.iter().map(String::as_str),
        )?;
        setup::set_consent_scope(&state, &actor, &b.dataset, &scope).await
    }
    .await;
    match result {
        Ok(()) => StatusCode::NO_CONTENT.into_response(),
        Err(p) => setup_refusal(p),
    }
}

/// A researcher's accreditation.
#[derive(Deserialize, ToSchema)]
pub(crate) struct AccreditationRequest {
    /// The researcher's user name.
    username: String,
    course: String,
    /// YYYY-MM-DD.
    completed_on: String,
    /// YYYY-MM-DD, not before `completed_on`.
    expires_on: String,
}

/// Records that a researcher completed a course.
#[utoipa::path(post, path = "/api/v1/review/accreditations", security(("bearer" = [])), request_body = AccreditationRequest,
    responses((status = 201, body = CreatedBody), (status = 400, body = SetupErrorBody), (status = 401, body = ErrorBody), (status = 403, body = SetupErrorBody)))]
pub(crate) async fn add_accreditation(
    State(state): State<AppState>,
    TokenUser(user): TokenUser,
    body: Result<Json<AccreditationRequest>, JsonRejection>,
) -> Response {
    let store = &state.instance().store;
    let result = async {
        let actor = operator_actor(store, &user).await?;
        let Json(b) = body.map_err(|_| SetupProblem::Form)?;
        setup::accredit(&state, &actor, &b.username, &b.course, &b.completed_on, &b.expires_on).await
    }
    .await;
    match result {
        Ok(id) => (StatusCode::CREATED, Json(CreatedBody { id })).into_response(),
        Err(p) => setup_refusal(p),
    }
}

/// A new review committee.
#[derive(Deserialize, ToSchema)]
pub(crate) struct CommitteeRequest {
    name: String,
}

/// Creates a review committee (names are unique).
#[utoipa::path(post, path = "/api/v1/review/committees", security(("bearer" = [])), request_body = CommitteeRequest,
    responses((status = 201, body = CreatedBody), (status = 400, body = SetupErrorBody), (status = 401, body = ErrorBody), (status = 403, body = SetupErrorBody),
        (status = 409, body = SetupErrorBody)))]
pub(crate) async fn create_committee(
    State(state): State<AppState>,
    TokenUser(user): TokenUser,
    body: Result<Json<CommitteeRequest>, JsonRejection>,
) -> Response {
    let store = &state.instance().store;
    let result = async {
        let actor = operator_actor(store, &user).await?;
        let Json(b) = body.map_err(|_| SetupProblem::Form)?;
        setup::create_committee_step(&state, &actor, &b.name).await
    }
    .await;
    match result {
        Ok(id) => (StatusCode::CREATED, Json(CreatedBody { id })).into_response(),
        Err(p) => setup_refusal(p),
    }
}

/// A committee member: an account that votes (its user name) and/or a name, and the attributes
/// the composition rules read.
#[derive(Deserialize, ToSchema)]
pub(crate) struct MemberRequest {
    /// The member's account (reviewer or chair); absent: a member without an account.
    #[serde(default)]
    username: String,
    /// Absent: the account's display name.
    #[serde(default)]
    name: String,
    /// medicine_science, humanities_law or general_public.
    field: String,
    /// female, male or other.
    gender: String,
    #[serde(default)]
    external: bool,
}

/// Adds a member to a committee (one account, one active membership).
#[utoipa::path(post, path = "/api/v1/review/committees/{id}/members", security(("bearer" = [])), params(("id" = i64, Path, description = "Committee id")),
    request_body = MemberRequest,
    responses((status = 201, body = CreatedBody), (status = 400, body = SetupErrorBody), (status = 401, body = ErrorBody), (status = 403, body = SetupErrorBody),
        (status = 404, body = SetupErrorBody), (status = 409, body = SetupErrorBody)))]
pub(crate) async fn add_committee_member(
    State(state): State<AppState>,
    TokenUser(user): TokenUser,
    id: Result<Path<i64>, PathRejection>,
    body: Result<Json<MemberRequest>, JsonRejection>,
) -> Response {
    let store = &state.instance().store;
    let result = async {
        let actor = operator_actor(store, &user).await?;
        let Path(id) = id.map_err(|_| SetupProblem::NoCommittee)?;
        let Json(b) = body.map_err(|_| SetupProblem::Form)?;
        let member = MemberInput { username: &b.username, name: &b.name, field: &b.field, gender: &b.gender, external: b.external };
        setup::add_member_step(&state, &actor, id, member).await
    }
    .await;
    match result {
        Ok(id) => (StatusCode::CREATED, Json(CreatedBody { id })).into_response(),
        Err(p) => setup_refusal(p),
    }
}

/// A deactivated member's committee.
#[derive(Serialize, ToSchema)]
pub(crate) struct DeactivatedBody {
    member_id: i64,
    committee_id: i64,
}

/// Deactivates a committee member (their past votes stay).
#[utoipa::path(post, path = "/api/v1/review/members/{id}/deactivate", security(("bearer" = [])), params(("id" = i64, Path, description = "Member id")),
    responses((status = 200, body = DeactivatedBody), (status = 401, body = ErrorBody), (status = 403, body = SetupErrorBody), (status = 404, body = SetupErrorBody),
        (status = 409, body = SetupErrorBody)))]
pub(crate) async fn deactivate_committee_member(
    State(state): State<AppState>,
    TokenUser(user): TokenUser,
    id: Result<Path<i64>, PathRejection>,
) -> Response {
    let store = &state.instance().store;
    let result = async {
        let actor = operator_actor(store, &user).await?;
        let Path(id) = id.map_err(|_| SetupProblem::NoMember)?;
        setup::deactivate_member_step(&state, &actor, id).await.map(|committee_id| (id, committee_id))
    }
    .await;
    match result {
        Ok((member_id, committee_id)) => Json(DeactivatedBody { member_id, committee_id }).into_response(),
        Err(p) => setup_refusal(p),
    }
}
