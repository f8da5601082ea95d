//! Applications, review and permits in the portal (issue 4), run by `niji-applications`:
//!
//! - researchers: `/applications` (their applications and notifications), `/applications/new`
//!   and `POST /applications` (a draft), `/applications/{id}` (the application, its triage,
//!   history and decision, with Submit / Withdraw / Resubmit / Edit), `/applications/{id}/edit`;
//! - committee members on `/applications/{id}`: declare a conflict, vote with an opinion, see
//!   every opinion and the tally; the chair records the decision (verdict, reasons, conditions,
//!   the approved part of the requested variables and linkage, the output preset), built by
//!   [`chair_decision`] exactly as the API's `POST /api/v1/applications/{id}/decision` builds it;
//! - the secretariat (operators) and committee members: `/review/queue`;
//! - `/permits`: operators see every permit with suspend / resume / revoke forms; chairs every
//!   permit with an amendment form (the approved part of the request and the preset, built with
//!   [`amendment`] exactly as the API's `POST /api/v1/permits/{id}/amend` builds it);
//!   researchers their own.
//!
//! The form is one page with a fixed number of recipient rows ([`RECIPIENT_ROWS`]) and text
//! areas for lists: variables one per line as `dataset.table.column: justification`, linkage
//! pairs one per line (`a b`), software one per line (`name version`); researchers are user
//! names or account numbers (user names are resolved to accounts). A draft is saved only when
//! the form parses and [`niji_review::Application::validate`] finds nothing: problems are
//! shown at their fields with fixed texts (the form is kept, never quoted in a message).
//!
//! Who may do what is decided by `niji-applications`; this module decides only what a page
//! shows: an application is visible to its applicant, operators, members of the committee
//! reviewing it and chairs — to anyone else it does not exist (404).

use crate::i18n::{AppText, Lang};
use crate::portal::{constant_time_eq, error_page, may_review, render, MaybeSession, PageContext};
use crate::upload::today_jst;
use crate::AppState;
use askama::Template;
use axum::extract::rejection::{FormRejection, PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::{StatusCode, Uri};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Form, Router};
use niji_accounts::{Session, UserSummary};
use niji_applications::{Actor, ChairDecision, WorkflowError};
use niji_core::Role;
use niji_review::{
    Application, ApplicationStatus, ApprovedScope, Case, CompositionProblem, DecideError, Field, Gender, LinkagePair, NamedResearcher, PermitError,
    ProblemReason, PurposeCategory, Recipient, RecipientKind, RequestedVariable, Software, Tier, Track, TriageReason, VariableRef, Vote, VoteError,
};
use niji_store::{ApplicationRow, Store, StoreError};
use serde::de::DeserializeOwned;
use serde::Deserialize;

pub(crate) fn routes() -> Router<AppState> {
    Router::new()
        .route("/applications", get(list_page).post(create_submit))
        .route("/applications/new", get(new_page))
        .route("/applications/{id}", get(detail_page))
        .route("/applications/{id}/edit", get(edit_page).post(edit_submit))
        .route("/applications/{id}/submit", post(submit_action))
        .route("/applications/{id}/resubmit", post(resubmit_action))
        .route("/applications/{id}/withdraw", post(withdraw_action))
        .route("/applications/{id}/conflict", post(conflict_action))
        .route("/applications/{id}/vote", post(vote_action))
        .route("/applications/{id}/decide", post(decide_action))
        .route("/review/queue", get(queue_page))
        .route("/permits", get(permits_page))
        .route("/permits/{id}/revoke", post(revoke_action))
        .route("/permits/{id}/suspend", post(suspend_action))
        .route("/permits/{id}/resume", post(resume_action))
        .route("/permits/{id}/amend", post(amend_action))
}

/// Recipient rows of the form.
pub(crate) const RECIPIENT_ROWS: usize = 3;
/// Notifications shown on `/applications`.
const NOTIFICATIONS: i64 = 20;
/// Longest text field accepted from the form, in characters (the domain's limits are lower;
/// this only bounds what is kept for re-display).
const MAX_FIELD_CHARS: usize = 40_000;

pub(crate) const TRACKS: [Track; 3] = [Track::Visiting, Track::AnonymizedExtract, Track::StatisticsTables];
pub(crate) const VOTES: [Vote; 4] = [Vote::Approve, Vote::ApproveWithConditions, Vote::RequestChanges, Vote::Reject];

// ---------------------------------------------------------------------------------------
// Problems, shared with the API.

/// A located problem of a form: a field path and a fixed reason, never the value.
#[derive(Debug, Clone)]
pub(crate) struct Problem {
    pub field: String,
    pub reason: Reason,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Reason {
    Domain(ProblemReason),
    /// A line or value not in the expected format.
    Format,
    UnknownAccount,
    /// Not one of the choices (a code).
    UnknownValue,
    NotNumber,
    /// A requested variable that is not in the catalog (at submission).
    NotInCatalog,
    /// A named researcher without a valid accreditation (at submission).
    NotAccredited,
    /// An approved variable or linkage pair that the application did not request.
    NotRequested,
    /// An approved linkage pair with a dataset of which no variable is approved.
    LinkageNotApproved,
}

impl Reason {
    /// Stable code (the API's `reason`).
    pub(crate) fn code(self) -> &'static str {
        match self {
            Reason::Domain(r) => match r {
                ProblemReason::Required => "required",
                ProblemReason::TooLong => "too_long",
                ProblemReason::NotIcd10 => "not_icd10",
                ProblemReason::Duplicate => "duplicate",
                ProblemReason::DurationOutOfRange => "duration_out_of_range",
                ProblemReason::LinkageToItself => "linkage_to_itself",
                ProblemReason::LinkageDatasetNotRequested => "linkage_dataset_not_requested",
                ProblemReason::InvertedRange => "inverted_range",
                ProblemReason::ZeroPopulation => "zero_population",
                ProblemReason::ControlCharacters => "control_characters",
            },
            Reason::Format => "format",
            Reason::UnknownAccount => "unknown_account",
            Reason::UnknownValue => "unknown_value",
            Reason::NotNumber => "not_a_number",
            Reason::NotInCatalog => "not_in_catalog",
            Reason::NotAccredited => "not_accredited",
            Reason::NotRequested => "not_requested",
            Reason::LinkageNotApproved => "linkage_dataset_not_approved",
        }
    }

    pub(crate) fn text(self, lang: Lang) -> &'static str {
        let a = lang.apps();
        match self {
            Reason::Domain(r) => pick(lang, r.text_ja(), r.text_en()),
            Reason::Format => a.reason_format,
            Reason::UnknownAccount => a.reason_unknown_account,
            Reason::UnknownValue => a.reason_unknown_value,
            Reason::NotNumber => a.reason_not_number,
            Reason::NotInCatalog => a.reason_not_in_catalog,
            Reason::NotAccredited => a.reason_not_accredited,
            Reason::NotRequested => a.reason_not_requested,
            Reason::LinkageNotApproved => a.reason_linkage_not_approved,
        }
    }
}

/// The domain's validation problems as located problems.
pub(crate) fn domain_problems(problems: Vec<niji_review::ApplicationProblem>) -> Vec<Problem> {
    problems.into_iter().map(|p| Problem { field: p.field, reason: Reason::Domain(p.reason) }).collect()
}

/// Why a workflow step was refused, as the portal and the API tell it.
#[derive(Debug)]
pub(crate) enum Refusal {
    Forbidden,
    NotFound,
    Invalid(Vec<Problem>),
    Transition,
    NotSetUp,
    NotAMember,
    Vote(VoteError),
    Decide(DecideError),
    Permit,
    Internal,
}

impl Refusal {
    /// `form` locates problems of named researchers (by their index in the form).
    pub(crate) fn from_workflow(e: WorkflowError, form: Option<&Application>) -> Self {
        match e {
            WorkflowError::Forbidden(_) => Refusal::Forbidden,
            WorkflowError::NotTheApplicant | WorkflowError::NotFound(_) => Refusal::NotFound,
            WorkflowError::Invalid(p) => Refusal::Invalid(domain_problems(p)),
            WorkflowError::Researchers(list) => Refusal::Invalid(
                list.iter()
                    .map(|p| {
                        let index = form.and_then(|f| f.researchers.iter().position(|r| r.account_id == p.researcher()));
                        let field = index.map(|i| format!("researchers[{i}]")).unwrap_or_else(|| "researchers".to_string());
                        Problem { field, reason: Reason::NotAccredited }
                    })
                    .collect(),
            ),
            WorkflowError::UnknownVariable { index } => {
                Refusal::Invalid(vec![Problem { field: format!("variables[{index}]"), reason: Reason::NotInCatalog }])
            }
            WorkflowError::Transition { .. } => Refusal::Transition,
            WorkflowError::NoCriteria | WorkflowError::NoTariff | WorkflowError::NoCommittee => Refusal::NotSetUp,
            WorkflowError::NotAMember | WorkflowError::Vote(VoteError::NotAMember) => Refusal::NotAMember,
            WorkflowError::Vote(v) => Refusal::Vote(v),
            WorkflowError::Decide(d) => Refusal::Decide(d),
            WorkflowError::Permit(p) => match scope_problem(&p) {
                Some(problem) => Refusal::Invalid(vec![problem]),
                None => Refusal::Permit,
            },
            other => {
                tracing::error!(error = %other, "application workflow failed");
                Refusal::Internal
            }
        }
    }

    /// Status and message for the portal (fixed texts; counts and labels only).
    fn portal(&self, lang: Lang) -> (StatusCode, String) {
        let a = lang.apps();
        let m = lang.messages();
        match self {
            Refusal::Forbidden => (StatusCode::FORBIDDEN, a.err_role.to_string()),
            Refusal::NotFound => (StatusCode::NOT_FOUND, a.err_not_found.to_string()),
            Refusal::Invalid(_) => (StatusCode::BAD_REQUEST, a.err_invalid.to_string()),
            Refusal::Transition => (StatusCode::CONFLICT, a.err_transition.to_string()),
            Refusal::NotSetUp => (StatusCode::SERVICE_UNAVAILABLE, a.err_not_set_up.to_string()),
            Refusal::NotAMember => (StatusCode::FORBIDDEN, a.err_not_member.to_string()),
            Refusal::Vote(VoteError::Recused) => (StatusCode::CONFLICT, a.err_recused.to_string()),
            Refusal::Vote(_) => (StatusCode::CONFLICT, a.err_already_voted.to_string()),
            Refusal::Decide(d) => (StatusCode::CONFLICT, decide_message(lang, d)),
            Refusal::Permit => (StatusCode::BAD_REQUEST, a.err_permit.to_string()),
            Refusal::Internal => (StatusCode::INTERNAL_SERVER_ERROR, m.err_internal.to_string()),
        }
    }
}

/// A permit refused for what the chair approved, located in the decision's fields (the index is
/// into the approved list); `None` for problems of the application or the terms.
fn scope_problem(e: &PermitError) -> Option<Problem> {
    let (field, reason) = match e {
        PermitError::NothingApproved => ("variables".to_string(), Reason::Domain(ProblemReason::Required)),
        PermitError::VariableNotRequested { index } => (format!("variables[{index}]"), Reason::NotRequested),
        PermitError::LinkageNotRequested { index } => (format!("linkage[{index}]"), Reason::NotRequested),
        PermitError::LinkageDatasetNotApproved { index } => (format!("linkage[{index}]"), Reason::LinkageNotApproved),
        PermitError::EmptyCondition { index } => (format!("conditions[{index}]"), Reason::Domain(ProblemReason::Required)),
        PermitError::BadPreset => ("output_preset".to_string(), Reason::UnknownValue),
        PermitError::BadCohort("diseases") => ("cohort.diseases".to_string(), Reason::Domain(ProblemReason::NotIcd10)),
        PermitError::BadCohort(part) => (format!("cohort.{part}"), Reason::Domain(ProblemReason::InvertedRange)),
        PermitError::WiderCohort(part) => (format!("cohort.{part}"), Reason::NotRequested),
        PermitError::BadDateShift => ("date_shift_days".to_string(), Reason::UnknownValue),
        _ => return None,
    };
    Some(Problem { field, reason })
}

// ---------------------------------------------------------------------------------------
// The chair's decision, shared with the API: both build it with [`chair_decision`].

/// What the chair submitted, as the portal's form and the API's body carry it (unchecked).
pub(crate) struct DecisionInput {
    /// `approve`, `approve_with_conditions`, `request_changes` or `reject`.
    pub verdict: String,
    pub conditions: Vec<String>,
    pub reasons: Vec<String>,
    /// The approved variables and linkage and the output preset.
    pub scope: ScopeInput,
    /// A cohort within the application's; `None`: the application's.
    pub cohort: Option<niji_review::CohortFilter>,
    /// Shift every date per person by up to this many days; `None`: no shift.
    pub date_shift_days: Option<u32>,
}

/// A cohort restriction from its parts (the portal's fields and the API's body): ages both or
/// neither, ISO dates both or neither; the rest (codes, ranges, narrowing) is checked when the
/// permit is derived.
pub(crate) fn cohort_from_parts(
    diseases: Vec<String>,
    age_min: Option<u32>,
    age_max: Option<u32>,
    from: Option<&str>,
    to: Option<&str>,
) -> Result<niji_review::CohortFilter, Problem> {
    let date = |s: &str| time::Date::parse(s, &time::format_description::well_known::Iso8601::DATE).ok();
    let age = match (age_min, age_max) {
        (None, None) => None,
        (Some(min), Some(max)) => Some(niji_review::AgeRange { min, max }),
        _ => return Err(Problem { field: "cohort.age".into(), reason: Reason::Domain(ProblemReason::Required) }),
    };
    let period = match (from, to) {
        (None, None) => None,
        (Some(f), Some(t)) => match (date(f), date(t)) {
            (Some(from), Some(to)) => Some(niji_review::Period { from, to }),
            _ => return Err(Problem { field: "cohort.period".into(), reason: Reason::Format }),
        },
        _ => return Err(Problem { field: "cohort.period".into(), reason: Reason::Domain(ProblemReason::Required) }),
    };
    Ok(niji_review::CohortFilter { diseases, age, period })
}

/// The output-checking presets a decision may choose, by canonical name.
pub(crate) fn preset_names() -> impl Iterator<Item = &'static str> {
    niji_sdc::Preset::ALL.into_iter().map(niji_sdc::Preset::name)
}

/// What is approved of an application's request and under which output preset, as the chair's
/// decision and a permit's amendment carry it (the portal's check boxes, the API's body);
/// unchecked.
#[derive(Default)]
pub(crate) struct ScopeInput {
    /// The approved variables; `None` approves every requested variable and linkage pair.
    pub variables: Option<Vec<VariableRef>>,
    /// The approved linkage pairs, only with `variables` (absent: none).
    pub linkage: Option<Vec<LinkagePair>>,
    /// An output-checking preset of `niji-sdc` (`ndb`, `acro`, `opensafely`, or the aliases
    /// `standard` and `strict`), kept under its canonical name; `None` or blank: the default
    /// (for an amendment: the permit's preset).
    pub output_preset: Option<String>,
}

/// The approved scope (`None`: everything requested) and the canonical preset name, with the
/// problems found pushed to `problems` (located, fixed reasons). Whether the approved variables
/// were requested is checked by the workflow when it derives the permit; [`scope_problem`]
/// locates those problems the same way. Shared by the decision and the amendment.
pub(crate) fn approved_scope(input: ScopeInput, problems: &mut Vec<Problem>) -> (Option<ApprovedScope>, Option<String>) {
    let output_preset = match input.output_preset.as_deref().map(str::trim).filter(|p| !p.is_empty()) {
        None => None,
        Some(name) => match name.parse::<niji_sdc::Preset>() {
            Ok(preset) => Some(preset.name().to_string()),
            Err(_) => {
                problems.push(Problem { field: "output_preset".into(), reason: Reason::UnknownValue });
                None
            }
        },
    };
    let scope = match (input.variables, input.linkage) {
        (None, None) => None,
        (None, Some(_)) => {
            problems.push(Problem { field: "variables".into(), reason: Reason::Domain(ProblemReason::Required) });
            None
        }
        (Some(variables), linkage) => Some(ApprovedScope { variables, linkage: linkage.unwrap_or_default(), conditions: Vec::new(), cohort: None }),
    };
    (scope, output_preset)
}

/// A permit's amendment (the chair): the approved scope (`None`: everything the application
/// requests) and the preset (`None`: the permit's), or every problem found.
pub(crate) fn amendment(input: ScopeInput) -> Result<(Option<ApprovedScope>, Option<String>), Vec<Problem>> {
    let mut problems = Vec::new();
    let out = approved_scope(input, &mut problems);
    if problems.is_empty() {
        Ok(out)
    } else {
        Err(problems)
    }
}

/// The chair's decision from what was submitted, or every problem found (located, fixed
/// reasons, never a value). Blank conditions and reasons are dropped. Whether the approved
/// variables were requested is checked by the workflow when it derives the permit (before
/// anything is stored); [`Refusal::from_workflow`] locates those problems the same way.
pub(crate) fn chair_decision(input: DecisionInput) -> Result<ChairDecision, Vec<Problem>> {
    let mut problems = Vec::new();
    let verdict = from_code::<Vote>(input.verdict.trim());
    if verdict.is_none() {
        problems.push(Problem { field: "verdict".into(), reason: Reason::UnknownValue });
    }
    let (scope, output_preset) = approved_scope(input.scope, &mut problems);
    let texts = |list: Vec<String>| list.iter().map(|t| t.trim()).filter(|t| !t.is_empty()).map(str::to_string).collect::<Vec<_>>();
    match verdict {
        Some(verdict) if problems.is_empty() => Ok(ChairDecision {
            verdict,
            conditions: texts(input.conditions),
            reasons: texts(input.reasons),
            scope,
            output_preset,
            cohort: input.cohort,
            date_shift_days: input.date_shift_days,
        }),
        _ => Err(problems),
    }
}

/// A refused decision in words: composition problems and quorum with their counts.
fn decide_message(lang: Lang, e: &DecideError) -> String {
    let a = lang.apps();
    match e {
        DecideError::Composition(problems) => {
            let mut out = a.err_composition.to_string();
            for p in problems {
                out.push(' ');
                out.push_str(&match p {
                    CompositionProblem::TooFewMembers { present, required } => {
                        a.err_too_few_members.replace("{present}", &present.to_string()).replace("{required}", &required.to_string())
                    }
                    CompositionProblem::TooFewExternal { present, required } => {
                        a.err_too_few_external.replace("{present}", &present.to_string()).replace("{required}", &required.to_string())
                    }
                    CompositionProblem::MissingField { field } => a.err_missing_field.replace("{field}", field_label(lang, *field)),
                    CompositionProblem::MissingGender { gender } => a.err_missing_gender.replace("{gender}", gender_label(lang, *gender)),
                });
            }
            out
        }
        DecideError::NoQuorum { cast, required } => a.err_no_quorum.replace("{cast}", &cast.to_string()).replace("{required}", &required.to_string()),
        DecideError::NoReasons => a.err_no_reasons.to_string(),
        DecideError::NoConditions => a.err_no_conditions.to_string(),
        DecideError::UnexpectedConditions => a.err_unexpected_conditions.to_string(),
    }
}

// ---------------------------------------------------------------------------------------
// Labels and helpers.

pub(crate) fn pick(lang: Lang, ja: &'static str, en: &'static str) -> &'static str {
    match lang {
        Lang::Ja => ja,
        Lang::En => en,
    }
}

fn status_label(lang: Lang, s: ApplicationStatus) -> &'static str {
    pick(lang, s.label_ja(), s.label_en())
}

fn case_label(lang: Lang, c: Case) -> String {
    format!("{}: {}", c.number(), pick(lang, c.label_ja(), c.label_en()))
}

fn tier_label(lang: Lang, t: Tier) -> &'static str {
    pick(lang, t.label_ja(), t.label_en())
}

fn vote_label(lang: Lang, v: Vote) -> &'static str {
    pick(lang, v.label_ja(), v.label_en())
}

fn field_label(lang: Lang, f: Field) -> &'static str {
    pick(lang, f.label_ja(), f.label_en())
}

fn gender_label(lang: Lang, g: Gender) -> &'static str {
    let a = lang.apps();
    match g {
        Gender::Female => a.gender_female,
        Gender::Male => a.gender_male,
        Gender::Other => a.gender_other,
    }
}

pub(crate) fn reason_text(lang: Lang, r: &TriageReason) -> String {
    match lang {
        Lang::Ja => r.text_ja(),
        Lang::En => r.text_en(),
    }
}

pub(crate) fn permit_status_label(a: &AppText, status: &str) -> &'static str {
    match status {
        "active" => a.permit_active,
        "suspended" => a.permit_suspended,
        "revoked" => a.permit_revoked,
        "expired" => a.permit_expired,
        _ => a.permit_other,
    }
}

fn preset_label(a: &AppText, name: &str) -> &'static str {
    match name {
        "ndb" => a.preset_ndb,
        "acro" => a.preset_acro,
        _ => a.preset_opensafely,
    }
}

fn event_label(a: &AppText, kind: &str) -> &'static str {
    match kind {
        "application.created" => a.ev_created,
        "application.submitted" => a.ev_submitted,
        "application.triaged" => a.ev_triaged,
        "application.resubmitted" => a.ev_resubmitted,
        "application.withdrawn" => a.ev_withdrawn,
        "review.conflict_declared" => a.ev_conflict,
        "review.vote_cast" => a.ev_vote,
        "review.decided" => a.ev_decided,
        _ => "—",
    }
}

/// A unit enum from its snake_case code (its serde name).
pub(crate) fn from_code<T: DeserializeOwned>(code: &str) -> Option<T> {
    serde_json::from_value(serde_json::Value::String(code.to_string())).ok()
}

pub(crate) fn purpose_from_code(code: &str) -> Option<PurposeCategory> {
    PurposeCategory::ALL.into_iter().find(|p| p.as_str() == code)
}

pub(crate) fn kind_from_code(code: &str) -> Option<RecipientKind> {
    RecipientKind::ALL.into_iter().find(|k| k.as_str() == code)
}

pub(crate) fn track_from_code(code: &str) -> Option<Track> {
    TRACKS.into_iter().find(|t| t.as_str() == code)
}

/// A Unix time as `YYYY-MM-DD HH:MM` in Japan (UTC+9).
pub(crate) fn jst(ts: i64) -> String {
    match time::OffsetDateTime::from_unix_timestamp(ts) {
        Ok(t) => {
            let t = t + time::Duration::hours(9);
            format!("{:04}-{:02}-{:02} {:02}:{:02}", t.year(), u8::from(t.month()), t.day(), t.hour(), t.minute())
        }
        Err(_) => String::new(),
    }
}

/// The deadline day stored as midnight UTC of that day.
pub(crate) fn deadline_date(ts: i64) -> Option<time::Date> {
    time::OffsetDateTime::from_unix_timestamp(ts).ok().map(|t| t.date())
}

fn internal<E: std::fmt::Display>(what: &'static str) -> impl FnOnce(E) -> Refusal {
    move |e| {
        tracing::error!(error = %e, "{what} failed");
        Refusal::Internal
    }
}

pub(crate) fn store_failed(e: StoreError) -> Refusal {
    tracing::error!(error = %e, "reading applications failed");
    Refusal::Internal
}

/// How the viewer relates to an application.
pub(crate) struct Access {
    pub owner: bool,
    pub operator: bool,
    /// The viewer's member id in the committee reviewing the application.
    pub member: Option<i64>,
    pub chair: bool,
}

impl Access {
    pub(crate) fn visible(&self) -> bool {
        self.owner || self.operator || self.member.is_some() || self.chair
    }
}

pub(crate) async fn access(store: &Store, user: &UserSummary, row: &ApplicationRow) -> Result<Access, StoreError> {
    let member = match row.committee_id {
        Some(c) => store.active_committee_members(c).await?.into_iter().find(|m| m.user_id == Some(user.id)).map(|m| m.id),
        None => None,
    };
    Ok(Access {
        owner: row.applicant_id == user.id && user.has_role(Role::Researcher),
        operator: user.has_role(Role::Operator),
        member,
        chair: user.has_role(Role::CommitteeChair),
    })
}

/// The stored form of an application.
pub(crate) fn stored_form(row: &ApplicationRow) -> Result<Application, Refusal> {
    serde_json::from_str(&row.form).map_err(internal("reading an application form"))
}

/// Named researchers from user names or account numbers (`field` locates problems).
pub(crate) async fn resolve_researchers(store: &Store, tokens: &[String], problems: &mut Vec<Problem>) -> Result<Vec<NamedResearcher>, Refusal> {
    let mut out = Vec::new();
    for (i, token) in tokens.iter().enumerate() {
        let user = match token.parse::<i64>() {
            Ok(id) => store.user(id).await.map_err(store_failed)?,
            Err(_) => store.user_by_username(token).await.map_err(store_failed)?,
        };
        // Only researchers can be named: any other account answers as unknown, so the form
        // cannot be used to look up staff names or which account ids exist.
        let user = match user {
            Some(u) if store.active_roles(u.id).await.map_err(store_failed)?.contains(&niji_core::Role::Researcher) => Some(u),
            _ => None,
        };
        match user {
            Some(u) => {
                let display_name = if u.display_name.trim().is_empty() { u.username.clone() } else { u.display_name.clone() };
                out.push(NamedResearcher { account_id: u.id, display_name });
            }
            None => problems.push(Problem { field: format!("researchers[{i}]"), reason: Reason::UnknownAccount }),
        }
    }
    Ok(out)
}

// ---------------------------------------------------------------------------------------
// The form.

/// A submitted urlencoded form, as pairs (repeated names and check boxes).
struct Fields(Vec<(String, String)>);

impl Fields {
    fn get(&self, name: &str) -> String {
        self.0.iter().find(|(k, _)| k == name).map(|(_, v)| v.chars().take(MAX_FIELD_CHARS).collect()).unwrap_or_default()
    }
    /// Every value of a repeated field (checkboxes), in order.
    fn all<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> {
        self.0.iter().filter(move |(k, _)| k == name).map(|(_, v)| v.as_str())
    }
    fn on(&self, name: &str) -> bool {
        self.0.iter().any(|(k, v)| k == name && matches!(v.as_str(), "on" | "true" | "1" | "yes"))
    }
    fn csrf_ok(&self, session: &Session) -> bool {
        self.0.iter().find(|(k, _)| k == "csrf").is_some_and(|(_, v)| constant_time_eq(v.as_bytes(), session.csrf_token.as_bytes()))
    }
}

#[derive(Clone, Default)]
struct RecipientInput {
    organization: String,
    kind: String,
    similar: bool,
}

/// What the form holds, as typed (kept when the form is shown again).
#[derive(Clone, Default)]
struct FormInput {
    title: String,
    purpose: String,
    purpose_category: String,
    diseases: String,
    recipients: Vec<RecipientInput>,
    track: String,
    variables: String,
    linkage: String,
    analysis_plan: String,
    software: String,
    duration_months: String,
    researchers: String,
    genomic_data: bool,
    rare_disease: bool,
    expected_population: String,
}

fn split_list(s: &str) -> Vec<String> {
    s.split(|c: char| c == ',' || c == '、' || c == '，' || c.is_whitespace()).filter(|t| !t.is_empty()).map(str::to_string).collect()
}

fn lines(s: &str) -> impl Iterator<Item = &str> {
    s.lines().map(str::trim).filter(|l| !l.is_empty())
}

impl FormInput {
    fn blank(username: &str) -> Self {
        Self {
            recipients: vec![RecipientInput::default(); RECIPIENT_ROWS],
            purpose_category: PurposeCategory::AcademicResearch.as_str().into(),
            track: Track::Visiting.as_str().into(),
            duration_months: "12".into(),
            researchers: username.to_string(),
            ..Self::default()
        }
    }

    fn from_fields(f: &Fields) -> Self {
        Self {
            title: f.get("title"),
            purpose: f.get("purpose"),
            purpose_category: f.get("purpose_category"),
            diseases: f.get("diseases"),
            recipients: (0..RECIPIENT_ROWS)
                .map(|i| RecipientInput {
                    organization: f.get(&format!("recipient{i}_organization")),
                    kind: f.get(&format!("recipient{i}_kind")),
                    similar: f.on(&format!("recipient{i}_similar")),
                })
                .collect(),
            track: f.get("track"),
            variables: f.get("variables"),
            linkage: f.get("linkage"),
            analysis_plan: f.get("analysis_plan"),
            software: f.get("software"),
            duration_months: f.get("duration_months"),
            researchers: f.get("researchers"),
            genomic_data: f.on("genomic_data"),
            rare_disease: f.on("rare_disease"),
            expected_population: f.get("expected_population"),
        }
    }

    async fn from_application(store: &Store, a: &Application) -> Result<Self, Refusal> {
        let mut recipients: Vec<RecipientInput> = a
            .recipients
            .iter()
            .map(|r| RecipientInput { organization: r.organization.clone(), kind: r.kind.as_str().into(), similar: r.similar_regulation })
            .collect();
        while recipients.len() < RECIPIENT_ROWS {
            recipients.push(RecipientInput::default());
        }
        let mut researchers = Vec::new();
        for r in &a.researchers {
            match store.user(r.account_id).await.map_err(store_failed)? {
                Some(u) => researchers.push(u.username),
                None => researchers.push(r.account_id.to_string()),
            }
        }
        Ok(Self {
            title: a.title.clone(),
            purpose: a.purpose.clone(),
            purpose_category: a.purpose_category.as_str().into(),
            diseases: a.diseases.join(" "),
            recipients,
            track: a.track.as_str().into(),
            variables: a
                .variables
                .iter()
                .map(|v| format!("{}.{}.{}: {}", v.dataset, v.table, v.column, v.justification))
                .collect::<Vec<_>>()
                .join("\n"),
            linkage: a.linkage.iter().map(|p| format!("{} {}", p.left, p.right)).collect::<Vec<_>>().join("\n"),
            analysis_plan: a.analysis_plan.clone(),
            software: a.software.iter().map(|s| format!("{} {}", s.name, s.version).trim().to_string()).collect::<Vec<_>>().join("\n"),
            duration_months: a.duration_months.to_string(),
            researchers: researchers.join(" "),
            genomic_data: a.genomic_data,
            rare_disease: a.rare_disease,
            expected_population: a.expected_population.map(|n| n.to_string()).unwrap_or_default(),
        })
    }

    /// The application, or every problem found; `cohort` is carried over (not on the form).
    async fn to_application(&self, store: &Store, cohort: Option<niji_review::CohortFilter>) -> Result<Result<Application, Vec<Problem>>, Refusal> {
        let mut problems = Vec::new();
        let mut bad = |field: String, reason: Reason| problems.push(Problem { field, reason });
        let purpose_category = purpose_from_code(&self.purpose_category).unwrap_or_else(|| {
            bad("purpose_category".into(), Reason::UnknownValue);
            PurposeCategory::Other
        });
        let track = track_from_code(&self.track).unwrap_or_else(|| {
            bad("track".into(), Reason::UnknownValue);
            Track::Visiting
        });
        let mut recipients = Vec::new();
        for r in self.recipients.iter().filter(|r| !r.organization.trim().is_empty()) {
            let i = recipients.len();
            let kind = kind_from_code(&r.kind).unwrap_or_else(|| {
                bad(format!("recipients[{i}].kind"), Reason::UnknownValue);
                RecipientKind::Other
            });
            recipients.push(Recipient { organization: r.organization.trim().to_string(), kind, similar_regulation: r.similar });
        }
        let mut variables = Vec::new();
        for (i, line) in lines(&self.variables).enumerate() {
            let (name, justification) = line.split_once([':', '：']).unwrap_or((line, ""));
            let parts: Vec<&str> = name.trim().split('.').map(str::trim).collect();
            match parts.as_slice() {
                [d, t, c] if !d.is_empty() && !t.is_empty() && !c.is_empty() => variables.push(RequestedVariable {
                    dataset: d.to_string(),
                    table: t.to_string(),
                    column: c.to_string(),
                    justification: justification.trim().to_string(),
                }),
                _ => bad(format!("variables[{i}]"), Reason::Format),
            }
        }
        let mut linkage = Vec::new();
        for (i, line) in lines(&self.linkage).enumerate() {
            match split_list(line).as_slice() {
                [l, r] => linkage.push(LinkagePair::new(l.clone(), r.clone())),
                _ => bad(format!("linkage[{i}]"), Reason::Format),
            }
        }
        let software = lines(&self.software)
            .map(|l| match l.rsplit_once(char::is_whitespace) {
                Some((name, version)) => Software { name: name.trim().to_string(), version: version.trim().to_string() },
                None => Software { name: l.to_string(), version: String::new() },
            })
            .collect();
        let duration_months = match self.duration_months.trim() {
            "" => 0,
            d => d.parse::<u32>().unwrap_or_else(|_| {
                bad("duration_months".into(), Reason::NotNumber);
                0
            }),
        };
        let expected_population = match self.expected_population.trim() {
            "" => None,
            n => n.parse::<u64>().map(Some).unwrap_or_else(|_| {
                bad("expected_population".into(), Reason::NotNumber);
                None
            }),
        };
        let researchers = resolve_researchers(store, &split_list(&self.researchers), &mut problems).await?;
        if !problems.is_empty() {
            return Ok(Err(problems));
        }
        let application = Application {
            title: self.title.trim().to_string(),
            purpose: self.purpose.trim().to_string(),
            purpose_category,
            diseases: split_list(&self.diseases),
            recipients,
            track,
            variables,
            linkage,
            analysis_plan: self.analysis_plan.trim().to_string(),
            software,
            duration_months,
            researchers,
            genomic_data: self.genomic_data,
            rare_disease: self.rare_disease,
            expected_population,
            cohort,
        };
        Ok(match application.validate() {
            Ok(()) => Ok(application),
            Err(p) => Err(domain_problems(p)),
        })
    }
}

struct ProblemView {
    key: String,
    field: String,
    text: &'static str,
}

/// Problems shown at their fields (by the first segment of the field path).
struct Problems(Vec<ProblemView>);

impl Problems {
    fn new(lang: Lang, problems: &[Problem]) -> Self {
        Self(
            problems
                .iter()
                .map(|p| ProblemView {
                    key: p.field.split(['[', '.']).next().unwrap_or_default().to_string(),
                    field: p.field.clone(),
                    text: p.reason.text(lang),
                })
                .collect(),
        )
    }
    fn of(&self, key: &str) -> Vec<&ProblemView> {
        self.0.iter().filter(|p| p.key == key).collect()
    }
    fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
    fn all(&self) -> &[ProblemView] {
        &self.0
    }
}

struct Choice {
    value: &'static str,
    label: &'static str,
}

struct CatalogHint {
    dataset: String,
    tables: Vec<(String, String)>,
}

#[derive(Template)]
#[template(path = "application_form.html")]
struct FormPage {
    page: PageContext,
    heading: &'static str,
    action: String,
    input: FormInput,
    problems: Problems,
    purposes: Vec<Choice>,
    kinds: Vec<Choice>,
    tracks: Vec<Choice>,
    catalog: Vec<CatalogHint>,
}

async fn form_page(state: &AppState, lang: Lang, sess: &Session, uri: &Uri, action: String, input: FormInput, problems: &[Problem]) -> FormPage {
    let a = lang.apps();
    // Every dataset with a committed version; its tables with rows, or (none known) every
    // standard table of the catalog.
    let catalog = crate::catalog::load(state)
        .await
        .unwrap_or_default()
        .iter()
        .filter_map(|entry| {
            let latest = entry.latest()?;
            let columns = |doc: &niji_lake::catalog::TableDoc| doc.columns.iter().map(|c| c.name).collect::<Vec<_>>().join(", ");
            let mut tables: Vec<(String, String)> =
                crate::catalog::tables_of(latest).into_iter().map(|(doc, _)| (doc.name.to_string(), columns(doc))).collect();
            if tables.is_empty() {
                tables = niji_lake::catalog::tables().iter().map(|doc| (doc.name.to_string(), columns(doc))).collect();
            }
            Some(CatalogHint { dataset: entry.dataset.name.clone(), tables })
        })
        .collect();
    FormPage {
        page: PageContext::new(lang, Some(sess), uri),
        heading: if action == "/applications" { a.form_new } else { a.form_edit },
        action,
        input,
        problems: Problems::new(lang, problems),
        purposes: PurposeCategory::ALL.iter().map(|p| Choice { value: p.as_str(), label: pick(lang, p.label_ja(), p.label_en()) }).collect(),
        kinds: RecipientKind::ALL.iter().map(|k| Choice { value: k.as_str(), label: pick(lang, k.label_ja(), k.label_en()) }).collect(),
        tracks: TRACKS.iter().map(|t| Choice { value: t.as_str(), label: pick(lang, t.label_ja(), t.label_en()) }).collect(),
        catalog,
    }
}

// ---------------------------------------------------------------------------------------
// Applicant pages.

struct ListRow {
    id: i64,
    title: String,
    status: &'static str,
    status_code: &'static str,
    case: String,
    tier: String,
    deadline: String,
    fee: String,
}

struct NoteRow {
    at: String,
    subject: String,
}

#[derive(Template)]
#[template(path = "applications.html")]
struct ListPage {
    page: PageContext,
    rows: Vec<ListRow>,
    notifications: Vec<NoteRow>,
}

fn signed_in_researcher<'a>(lang: Lang, s: &'a MaybeSession, uri: &Uri) -> Result<&'a Session, Box<Response>> {
    let Some(sess) = s.signed_in() else { return Err(Box::new(Redirect::to("/login").into_response())) };
    if !sess.user.has_role(Role::Researcher) {
        return Err(Box::new(message_page(StatusCode::FORBIDDEN, lang, Some(sess), uri, lang.apps().err_apply_forbidden.to_string())));
    }
    Ok(sess)
}

#[derive(Template)]
#[template(path = "error.html")]
struct MessagePage {
    page: PageContext,
    message: String,
}

fn message_page(status: StatusCode, lang: Lang, sess: Option<&Session>, uri: &Uri, message: String) -> Response {
    (status, render(MessagePage { page: PageContext::new(lang, sess, uri), message })).into_response()
}

fn refusal_page(lang: Lang, sess: &Session, uri: &Uri, r: &Refusal) -> Response {
    let (status, message) = r.portal(lang);
    (status, render(MessagePage { page: PageContext::new(lang, Some(sess), uri), message })).into_response()
}

async fn list_page(State(state): State<AppState>, lang: Lang, s: MaybeSession, uri: Uri) -> Response {
    let sess = match signed_in_researcher(lang, &s, &uri) {
        Ok(sess) => sess,
        Err(resp) => return *resp,
    };
    let store = &state.instance().store;
    let loaded = async {
        let apps = store.applications_by_applicant(sess.user.id).await?;
        let notes = store.notifications_for_user(sess.user.id, NOTIFICATIONS).await?;
        Ok::<_, StoreError>((apps, notes))
    }
    .await;
    let (apps, notes) = match loaded {
        Ok(x) => x,
        Err(e) => return refusal_page(lang, sess, &uri, &store_failed(e)),
    };
    let rows = apps
        .into_iter()
        .map(|r| {
            let status = from_code::<ApplicationStatus>(&r.status).unwrap_or(ApplicationStatus::Draft);
            ListRow {
                id: r.id,
                title: r.title,
                status: status_label(lang, status),
                status_code: status.as_str(),
                case: r.case_code.as_deref().and_then(from_code::<Case>).map(|c| case_label(lang, c)).unwrap_or_else(|| "—".into()),
                tier: r.tier.as_deref().and_then(|t| t.parse::<Tier>().ok()).map(|t| tier_label(lang, t).to_string()).unwrap_or_else(|| "—".into()),
                deadline: r.deadline_at.and_then(deadline_date).map(|d| d.to_string()).unwrap_or_else(|| "—".into()),
                fee: r.fee_yen.map(|f| f.to_string()).unwrap_or_else(|| "—".into()),
            }
        })
        .collect();
    let notifications = notes.into_iter().map(|n| NoteRow { at: jst(n.created_at), subject: n.subject }).collect();
    render(ListPage { page: PageContext::new(lang, Some(sess), &uri), rows, notifications })
}

async fn new_page(State(state): State<AppState>, lang: Lang, s: MaybeSession, uri: Uri) -> Response {
    let sess = match signed_in_researcher(lang, &s, &uri) {
        Ok(sess) => sess,
        Err(resp) => return *resp,
    };
    render(form_page(&state, lang, sess, &uri, "/applications".into(), FormInput::blank(&sess.user.username), &[]).await)
}

async fn create_submit(
    State(state): State<AppState>,
    lang: Lang,
    s: MaybeSession,
    uri: Uri,
    form: Result<Form<Vec<(String, String)>>, FormRejection>,
) -> Response {
    let sess = match signed_in_researcher(lang, &s, &uri) {
        Ok(sess) => sess,
        Err(resp) => return *resp,
    };
    let Ok(Form(pairs)) = form else { return error_page(StatusCode::BAD_REQUEST, lang, Some(sess), &uri, |m| m.err_bad_request) };
    let fields = Fields(pairs);
    if !fields.csrf_ok(sess) {
        return error_page(StatusCode::FORBIDDEN, lang, Some(sess), &uri, |m| m.err_bad_request);
    }
    let input = FormInput::from_fields(&fields);
    let store = &state.instance().store;
    let application = match input.to_application(store, None).await {
        Ok(Ok(a)) => a,
        Ok(Err(problems)) => {
            return (StatusCode::BAD_REQUEST, render(form_page(&state, lang, sess, &uri, "/applications".into(), input, &problems).await))
                .into_response()
        }
        Err(r) => return refusal_page(lang, sess, &uri, &r),
    };
    let result = async {
        let actor = Actor::load(store, sess.user.id).await?;
        niji_applications::create_draft(state.instance(), &actor, &application).await
    }
    .await;
    match result {
        Ok(id) => Redirect::to(&format!("/applications/{id}?done=saved")).into_response(),
        Err(e) => refusal_page(lang, sess, &uri, &Refusal::from_workflow(e, Some(&application))),
    }
}

async fn edit_page(State(state): State<AppState>, lang: Lang, s: MaybeSession, uri: Uri, id: Result<Path<i64>, PathRejection>) -> Response {
    let sess = match signed_in_researcher(lang, &s, &uri) {
        Ok(sess) => sess,
        Err(resp) => return *resp,
    };
    let Ok(Path(id)) = id else { return refusal_page(lang, sess, &uri, &Refusal::NotFound) };
    let store = &state.instance().store;
    let result = async {
        let row = store.application(id).await.map_err(store_failed)?.filter(|r| r.applicant_id == sess.user.id).ok_or(Refusal::NotFound)?;
        let form = stored_form(&row)?;
        FormInput::from_application(store, &form).await
    }
    .await;
    match result {
        Ok(input) => render(form_page(&state, lang, sess, &uri, format!("/applications/{id}/edit"), input, &[]).await),
        Err(r) => refusal_page(lang, sess, &uri, &r),
    }
}

async fn edit_submit(
    State(state): State<AppState>,
    lang: Lang,
    s: MaybeSession,
    uri: Uri,
    id: Result<Path<i64>, PathRejection>,
    form: Result<Form<Vec<(String, String)>>, FormRejection>,
) -> Response {
    let sess = match signed_in_researcher(lang, &s, &uri) {
        Ok(sess) => sess,
        Err(resp) => return *resp,
    };
    let (Ok(Path(id)), Ok(Form(pairs))) = (id, form) else {
        return error_page(StatusCode::BAD_REQUEST, lang, Some(sess), &uri, |m| m.err_bad_request);
    };
    let fields = Fields(pairs);
    if !fields.csrf_ok(sess) {
        return error_page(StatusCode::FORBIDDEN, lang, Some(sess), &uri, |m| m.err_bad_request);
    }
    let store = &state.instance().store;
    let row = match store.application(id).await {
        Ok(Some(row)) if row.applicant_id == sess.user.id => row,
        Ok(_) => return refusal_page(lang, sess, &uri, &Refusal::NotFound),
        Err(e) => return refusal_page(lang, sess, &uri, &store_failed(e)),
    };
    let cohort = stored_form(&row).ok().and_then(|f| f.cohort);
    let input = FormInput::from_fields(&fields);
    let application = match input.to_application(store, cohort).await {
        Ok(Ok(a)) => a,
        Ok(Err(problems)) => {
            return (StatusCode::BAD_REQUEST, render(form_page(&state, lang, sess, &uri, format!("/applications/{id}/edit"), input, &problems).await))
                .into_response()
        }
        Err(r) => return refusal_page(lang, sess, &uri, &r),
    };
    let result = async {
        let actor = Actor::load(store, sess.user.id).await?;
        niji_applications::update_draft(state.instance(), &actor, id, &application).await
    }
    .await;
    match result {
        Ok(()) => Redirect::to(&format!("/applications/{id}?done=saved")).into_response(),
        Err(e) => refusal_page(lang, sess, &uri, &Refusal::from_workflow(e, Some(&application))),
    }
}

// ---------------------------------------------------------------------------------------
// The application page.

struct FormView {
    purpose: String,
    purpose_category: &'static str,
    diseases: String,
    recipients: Vec<String>,
    track: &'static str,
    variables: Vec<(String, String)>,
    linkage: Vec<String>,
    analysis_plan: String,
    software: Vec<String>,
    duration_months: u32,
    researchers: Vec<String>,
    genomic_data: &'static str,
    rare_disease: &'static str,
    expected_population: String,
}

struct EventView {
    at: String,
    event: &'static str,
    note: String,
}

struct BallotView {
    member: String,
    vote: &'static str,
    opinion: String,
}

struct ReviewView {
    /// The viewer is an active member of the committee.
    member: bool,
    recused: bool,
    voted: bool,
    ballots: Vec<BallotView>,
    tally: Vec<(&'static str, usize)>,
    recused_members: Vec<String>,
}

#[derive(Template)]
#[template(path = "application.html")]
struct DetailPage {
    page: PageContext,
    id: i64,
    title: String,
    status: &'static str,
    status_code: &'static str,
    case: String,
    tier: String,
    reasons: Vec<String>,
    criteria_version: String,
    fee: String,
    deadline: String,
    form: FormView,
    events: Vec<EventView>,
    decision: Option<(&'static str, Vec<String>)>,
    permits: Vec<i64>,
    notice: Option<&'static str>,
    error: Option<String>,
    problems: Problems,
    can_edit: bool,
    can_submit: bool,
    can_resubmit: bool,
    can_withdraw: bool,
    review_open: bool,
    review: Option<ReviewView>,
    can_decide: bool,
    votes: Vec<Choice>,
    /// The chair's form: requested linkage pairs as (value `a b`, label) and the presets.
    decide_linkage: Vec<(String, String)>,
    presets: Vec<Choice>,
}

#[derive(Deserialize)]
struct DoneQuery {
    done: Option<String>,
}

fn notice_for(a: &'static AppText, done: &str) -> Option<&'static str> {
    Some(match done {
        "saved" => a.saved,
        "submitted" => a.submitted,
        "withdrawn" => a.withdrawn,
        "permit" => a.permit_issued,
        "conflict" => a.conflict_declared,
        "voted" => a.vote_cast,
        "decided" => a.decided,
        _ => return None,
    })
}

/// What an action page shows beyond the application.
#[derive(Default)]
struct Flash {
    notice: Option<&'static str>,
    error: Option<String>,
    problems: Vec<Problem>,
}

async fn detail_page(
    State(state): State<AppState>,
    lang: Lang,
    s: MaybeSession,
    uri: Uri,
    id: Result<Path<i64>, PathRejection>,
    q: Result<Query<DoneQuery>, QueryRejection>,
) -> Response {
    let Some(sess) = s.signed_in() else { return Redirect::to("/login").into_response() };
    let Ok(Path(id)) = id else { return refusal_page(lang, sess, &uri, &Refusal::NotFound) };
    let notice = q.ok().and_then(|Query(q)| q.done).and_then(|d| notice_for(lang.apps(), &d));
    detail(&state, lang, sess, &uri, id, Flash { notice, ..Flash::default() }, StatusCode::OK).await
}

async fn detail(state: &AppState, lang: Lang, sess: &Session, uri: &Uri, id: i64, flash: Flash, status: StatusCode) -> Response {
    match build_detail(state, lang, sess, uri, id, flash).await {
        Ok(page) => (status, render(page)).into_response(),
        Err(r) => refusal_page(lang, sess, uri, &r),
    }
}

async fn build_detail(state: &AppState, lang: Lang, sess: &Session, uri: &Uri, id: i64, flash: Flash) -> Result<DetailPage, Refusal> {
    let a = lang.apps();
    let store = &state.instance().store;
    let row = store.application(id).await.map_err(store_failed)?.ok_or(Refusal::NotFound)?;
    let acc = access(store, &sess.user, &row).await.map_err(store_failed)?;
    if !acc.visible() {
        return Err(Refusal::NotFound);
    }
    let form = stored_form(&row)?;
    let status = from_code::<ApplicationStatus>(&row.status).ok_or(Refusal::Internal)?;
    let reasons: Vec<TriageReason> = match &row.reasons {
        Some(r) => serde_json::from_str(r).map_err(internal("reading triage reasons"))?,
        None => Vec::new(),
    };
    let events = store.application_events(id).await.map_err(store_failed)?;
    let decision = match store.review_decision(id).await.map_err(store_failed)? {
        Some(d) => {
            let verdict = from_code::<Vote>(&d.decision).ok_or(Refusal::Internal)?;
            let reasons: Vec<String> = serde_json::from_str(&d.reasons).map_err(internal("reading decision reasons"))?;
            Some((vote_label(lang, verdict), reasons))
        }
        None => None,
    };
    let permits = store.permits_for_application(id).await.map_err(store_failed)?.into_iter().map(|p| p.id).collect();
    let review_open = status == ApplicationStatus::UnderReview;
    let review = match (row.committee_id, acc.member.is_some() || acc.chair) {
        (Some(committee), true) => {
            let members = store.committee_members(committee).await.map_err(store_failed)?;
            let name = |member: i64| members.iter().find(|m| m.id == member).map(|m| m.display_name.clone()).unwrap_or_else(|| member.to_string());
            let conflicts = store.review_conflicts(id).await.map_err(store_failed)?;
            let votes = store.review_votes(id).await.map_err(store_failed)?;
            let mut ballots = Vec::new();
            let mut tally = [0usize; 4];
            for v in &votes {
                let vote = from_code::<Vote>(&v.vote).ok_or(Refusal::Internal)?;
                tally[VOTES.iter().position(|x| *x == vote).unwrap_or(0)] += 1;
                ballots.push(BallotView { member: name(v.member_id), vote: vote_label(lang, vote), opinion: v.opinion.clone() });
            }
            Some(ReviewView {
                member: acc.member.is_some(),
                recused: acc.member.is_some_and(|m| conflicts.iter().any(|c| c.member_id == m)),
                voted: acc.member.is_some_and(|m| votes.iter().any(|v| v.member_id == m)),
                ballots,
                tally: VOTES.iter().zip(tally).map(|(v, n)| (vote_label(lang, *v), n)).collect(),
                recused_members: conflicts.iter().map(|c| name(c.member_id)).collect(),
            })
        }
        _ => None,
    };
    let yes_no = |b: bool| if b { a.yes } else { a.no };
    let form_view = FormView {
        purpose: form.purpose.clone(),
        purpose_category: pick(lang, form.purpose_category.label_ja(), form.purpose_category.label_en()),
        diseases: if form.diseases.is_empty() { "—".into() } else { form.diseases.join(", ") },
        recipients: form
            .recipients
            .iter()
            .map(|r| {
                let similar = if r.similar_regulation { format!(" / {}", a.similar_short) } else { String::new() };
                format!("{} ({}{similar})", r.organization, pick(lang, r.kind.label_ja(), r.kind.label_en()))
            })
            .collect(),
        track: pick(lang, form.track.label_ja(), form.track.label_en()),
        variables: form.variables.iter().map(|v| (format!("{}.{}.{}", v.dataset, v.table, v.column), v.justification.clone())).collect(),
        linkage: form.linkage.iter().map(|p| format!("{} ⟷ {}", p.left, p.right)).collect(),
        analysis_plan: form.analysis_plan.clone(),
        software: form.software.iter().map(|s| format!("{} {}", s.name, s.version).trim().to_string()).collect(),
        duration_months: form.duration_months,
        researchers: form.researchers.iter().map(|r| format!("{} (#{})", r.display_name, r.account_id)).collect(),
        genomic_data: yes_no(form.genomic_data),
        rare_disease: yes_no(form.rare_disease),
        expected_population: form.expected_population.map(|n| n.to_string()).unwrap_or_else(|| "—".into()),
    };
    let editable = matches!(status, ApplicationStatus::Draft | ApplicationStatus::ChangesRequested);
    Ok(DetailPage {
        page: PageContext::new(lang, Some(sess), uri),
        id,
        title: row.title.clone(),
        status: status_label(lang, status),
        status_code: status.as_str(),
        case: row.case_code.as_deref().and_then(from_code::<Case>).map(|c| case_label(lang, c)).unwrap_or_else(|| "—".into()),
        tier: row.tier.as_deref().and_then(|t| t.parse::<Tier>().ok()).map(|t| tier_label(lang, t).to_string()).unwrap_or_else(|| "—".into()),
        reasons: reasons.iter().map(|r| reason_text(lang, r)).collect(),
        criteria_version: row.criteria_version.clone().unwrap_or_else(|| "—".into()),
        fee: row.fee_yen.map(|f| f.to_string()).unwrap_or_else(|| "—".into()),
        deadline: row.deadline_at.and_then(deadline_date).map(|d| d.to_string()).unwrap_or_else(|| "—".into()),
        form: form_view,
        events: events.iter().map(|e| EventView { at: jst(e.at), event: event_label(a, &e.kind), note: e.note.clone() }).collect(),
        decision,
        permits,
        notice: flash.notice,
        error: flash.error,
        problems: Problems::new(lang, &flash.problems),
        can_edit: acc.owner && editable,
        can_submit: acc.owner && status == ApplicationStatus::Draft,
        can_resubmit: acc.owner && status == ApplicationStatus::ChangesRequested,
        can_withdraw: acc.owner && !status.is_final(),
        review_open,
        review,
        can_decide: acc.chair && review_open,
        votes: VOTES.iter().map(|v| Choice { value: v.as_str(), label: vote_label(lang, *v) }).collect(),
        decide_linkage: form.linkage.iter().map(|p| (format!("{} {}", p.left, p.right), format!("{} ⟷ {}", p.left, p.right))).collect(),
        presets: preset_names().map(|name| Choice { value: name, label: preset_label(a, name) }).collect(),
    })
}

/// The session and fields of an action form on `/applications/{id}/…`, CSRF checked.
async fn action_prelude(
    lang: Lang,
    s: &MaybeSession,
    uri: &Uri,
    id: Result<Path<i64>, PathRejection>,
    form: Result<Form<Vec<(String, String)>>, FormRejection>,
) -> Result<(i64, Fields), Response> {
    let Some(sess) = s.signed_in() else { return Err(Redirect::to("/login").into_response()) };
    let (Ok(Path(id)), Ok(Form(pairs))) = (id, form) else {
        return Err(error_page(StatusCode::BAD_REQUEST, lang, Some(sess), uri, |m| m.err_bad_request));
    };
    let fields = Fields(pairs);
    if !fields.csrf_ok(sess) {
        return Err(error_page(StatusCode::FORBIDDEN, lang, Some(sess), uri, |m| m.err_bad_request));
    }
    Ok((id, fields))
}

/// After an action: to the application page with a notice, or the page again with the refusal.
async fn after_action(state: &AppState, lang: Lang, sess: &Session, uri: &Uri, id: i64, result: Result<&'static str, Refusal>) -> Response {
    match result {
        Ok(done) => Redirect::to(&format!("/applications/{id}?done={done}")).into_response(),
        Err(Refusal::NotFound) => refusal_page(lang, sess, uri, &Refusal::NotFound),
        Err(r) => {
            let (status, message) = r.portal(lang);
            let problems = match r {
                Refusal::Invalid(p) => p,
                _ => Vec::new(),
            };
            detail(state, lang, sess, uri, id, Flash { notice: None, error: Some(message), problems }, status).await
        }
    }
}

async fn load_actor(state: &AppState, sess: &Session) -> Result<Actor, Refusal> {
    Actor::load(&state.instance().store, sess.user.id).await.map_err(|e| Refusal::from_workflow(e, None))
}

/// Maps a workflow error, locating researcher problems in the stored form.
async fn refused(state: &AppState, id: i64, e: WorkflowError) -> Refusal {
    let form = match &e {
        WorkflowError::Researchers(_) => state.instance().store.application(id).await.ok().flatten().and_then(|r| stored_form(&r).ok()),
        _ => None,
    };
    Refusal::from_workflow(e, form.as_ref())
}

/// The application page's buttons share one shape: CSRF and id checked, the actor loaded, one
/// workflow step, then the page again with the step's outcome.
async fn button(
    state: AppState,
    lang: Lang,
    s: MaybeSession,
    uri: Uri,
    id: Result<Path<i64>, PathRejection>,
    form: Result<Form<Vec<(String, String)>>, FormRejection>,
    step: impl AsyncFnOnce(&AppState, &Actor, i64) -> Result<&'static str, Refusal>,
) -> Response {
    let (id, _) = match action_prelude(lang, &s, &uri, id, form).await {
        Ok(x) => x,
        Err(resp) => return resp,
    };
    let sess = s.signed_in().expect("checked");
    let result = async {
        let actor = load_actor(&state, sess).await?;
        step(&state, &actor, id).await
    }
    .await;
    after_action(&state, lang, sess, &uri, id, result).await
}

type IdPath = Result<Path<i64>, PathRejection>;
type ButtonForm = Result<Form<Vec<(String, String)>>, FormRejection>;

async fn submit_action(State(state): State<AppState>, lang: Lang, s: MaybeSession, uri: Uri, id: IdPath, form: ButtonForm) -> Response {
    button(state, lang, s, uri, id, form, async |state, actor, id| match niji_applications::submit(state.instance(), actor, id, today_jst()).await {
        Ok(s) => Ok(if s.permit.is_some() { "permit" } else { "submitted" }),
        Err(e) => Err(refused(state, id, e).await),
    })
    .await
}

async fn resubmit_action(State(state): State<AppState>, lang: Lang, s: MaybeSession, uri: Uri, id: IdPath, form: ButtonForm) -> Response {
    button(state, lang, s, uri, id, form, async |state, actor, id| {
        match niji_applications::resubmit(state.instance(), actor, id, today_jst()).await {
            Ok(_) => Ok("submitted"),
            Err(e) => Err(refused(state, id, e).await),
        }
    })
    .await
}

async fn withdraw_action(State(state): State<AppState>, lang: Lang, s: MaybeSession, uri: Uri, id: IdPath, form: ButtonForm) -> Response {
    button(state, lang, s, uri, id, form, async |state, actor, id| {
        niji_applications::withdraw(state.instance(), actor, id).await.map(|()| "withdrawn").map_err(|e| Refusal::from_workflow(e, None))
    })
    .await
}

async fn conflict_action(State(state): State<AppState>, lang: Lang, s: MaybeSession, uri: Uri, id: IdPath, form: ButtonForm) -> Response {
    button(state, lang, s, uri, id, form, async |state, actor, id| {
        niji_applications::declare_conflict(state.instance(), actor, id).await.map(|()| "conflict").map_err(|e| Refusal::from_workflow(e, None))
    })
    .await
}

async fn vote_action(
    State(state): State<AppState>,
    lang: Lang,
    s: MaybeSession,
    uri: Uri,
    id: Result<Path<i64>, PathRejection>,
    form: Result<Form<Vec<(String, String)>>, FormRejection>,
) -> Response {
    let (id, fields) = match action_prelude(lang, &s, &uri, id, form).await {
        Ok(x) => x,
        Err(resp) => return resp,
    };
    let sess = s.signed_in().expect("checked");
    let Some(vote) = VOTES.into_iter().find(|v| v.as_str() == fields.get("vote")) else {
        return error_page(StatusCode::BAD_REQUEST, lang, Some(sess), &uri, |m| m.err_bad_request);
    };
    let opinion = fields.get("opinion").trim().to_string();
    let result = async {
        let actor = load_actor(&state, sess).await?;
        niji_applications::cast_vote(state.instance(), &actor, id, vote, &opinion)
            .await
            .map(|()| "voted")
            .map_err(|e| Refusal::from_workflow(e, None))
    }
    .await;
    after_action(&state, lang, sess, &uri, id, result).await
}

async fn decide_action(
    State(state): State<AppState>,
    lang: Lang,
    s: MaybeSession,
    uri: Uri,
    id: Result<Path<i64>, PathRejection>,
    form: Result<Form<Vec<(String, String)>>, FormRejection>,
) -> Response {
    let (id, fields) = match action_prelude(lang, &s, &uri, id, form).await {
        Ok(x) => x,
        Err(resp) => return resp,
    };
    let sess = s.signed_in().expect("checked");
    let result = async {
        let decision = decision_from_form(&fields).map_err(Refusal::Invalid)?;
        let actor = load_actor(&state, sess).await?;
        match niji_applications::decide(state.instance(), &actor, id, decision, today_jst()).await {
            Ok(Some(_)) => Ok("permit"),
            Ok(None) => Ok("decided"),
            Err(e) => Err(Refusal::from_workflow(e, None)),
        }
    }
    .await;
    match result {
        // The decision's own problems, under the decision's message (not the application's).
        Err(Refusal::Invalid(problems)) => {
            let flash = Flash { notice: None, error: Some(lang.apps().err_decision_invalid.to_string()), problems };
            detail(&state, lang, sess, &uri, id, flash, StatusCode::BAD_REQUEST).await
        }
        other => after_action(&state, lang, sess, &uri, id, other).await,
    }
}

/// The chair's form as a decision. With `scope=explicit` (the form's checkboxes) the checked
/// variables (`dataset.table.column`) and linkage pairs (`a b`) are what is approved; without
/// it everything requested is.
fn decision_from_form(fields: &Fields) -> Result<ChairDecision, Vec<Problem>> {
    let mut problems = Vec::new();
    let scope = scope_from_form(fields, &mut problems);
    let list = |name: &str| lines(&fields.get(name)).map(str::to_string).collect::<Vec<_>>();
    let number = |name: &str, field: &str, problems: &mut Vec<Problem>| -> Option<u32> {
        let v = fields.get(name);
        let v = v.trim();
        if v.is_empty() {
            return None;
        }
        v.parse().map_err(|_| problems.push(Problem { field: field.into(), reason: Reason::NotNumber })).ok()
    };
    let diseases: Vec<String> =
        fields.get("cohort_diseases").split([',', '、', ' ']).map(|d| d.trim().to_string()).filter(|d| !d.is_empty()).collect();
    let (age_min, age_max) = (number("cohort_age_min", "cohort.age", &mut problems), number("cohort_age_max", "cohort.age", &mut problems));
    let (from, to) = (fields.get("cohort_from"), fields.get("cohort_to"));
    let (from, to) = (Some(from.trim()).filter(|s| !s.is_empty()), Some(to.trim()).filter(|s| !s.is_empty()));
    let cohort = if diseases.is_empty() && age_min.is_none() && age_max.is_none() && from.is_none() && to.is_none() {
        None
    } else {
        cohort_from_parts(diseases, age_min, age_max, from, to).map_err(|p| problems.push(p)).ok()
    };
    let date_shift_days = number("date_shift_days", "date_shift_days", &mut problems);
    let input =
        DecisionInput { verdict: fields.get("verdict"), conditions: list("conditions"), reasons: list("reasons"), scope, cohort, date_shift_days };
    match chair_decision(input) {
        Ok(decision) if problems.is_empty() => Ok(decision),
        Ok(_) => Err(problems),
        Err(more) => {
            problems.extend(more);
            Err(problems)
        }
    }
}

/// The approved part of the request and the preset from a form's check boxes (the chair's
/// decision and the amendment share them): with `scope=explicit` the checked variables
/// (`dataset.table.column`) and linkage pairs (`a b`) are what is approved; without it
/// everything requested is.
fn scope_from_form(fields: &Fields, problems: &mut Vec<Problem>) -> ScopeInput {
    let explicit = fields.get("scope") == "explicit";
    let variables: Vec<VariableRef> = fields
        .all("variable")
        .enumerate()
        .filter_map(|(i, v)| match v.split('.').collect::<Vec<_>>()[..] {
            [d, t, c] if !d.is_empty() && !t.is_empty() && !c.is_empty() => Some(VariableRef::new(d, t, c)),
            _ => {
                problems.push(Problem { field: format!("variables[{i}]"), reason: Reason::Format });
                None
            }
        })
        .collect();
    let linkage: Vec<LinkagePair> = fields
        .all("linkage")
        .enumerate()
        .filter_map(|(i, l)| match l.trim().split_once(char::is_whitespace) {
            Some((a, b)) if !b.trim().is_empty() => Some(LinkagePair::new(a, b.trim())),
            _ => {
                problems.push(Problem { field: format!("linkage[{i}]"), reason: Reason::Format });
                None
            }
        })
        .collect();
    ScopeInput { variables: explicit.then_some(variables), linkage: explicit.then_some(linkage), output_preset: Some(fields.get("output_preset")) }
}

// ---------------------------------------------------------------------------------------
// The review queue.

struct QueueRow {
    id: i64,
    title: String,
    case: String,
    deadline: String,
    days_left: String,
    overdue: bool,
    committee: String,
}

struct TierGroup {
    tier: &'static str,
    tier_code: &'static str,
    rows: Vec<QueueRow>,
}

#[derive(Template)]
#[template(path = "review_queue.html")]
struct QueuePage {
    page: PageContext,
    groups: Vec<TierGroup>,
    counts: Vec<(&'static str, &'static str, usize)>,
}

async fn queue_page(State(state): State<AppState>, lang: Lang, s: MaybeSession, uri: Uri) -> Response {
    let Some(sess) = s.signed_in() else { return Redirect::to("/login").into_response() };
    if !may_review(&sess.user) {
        return message_page(StatusCode::FORBIDDEN, lang, Some(sess), &uri, lang.apps().err_review_forbidden.to_string());
    }
    match build_queue(&state, lang, sess, &uri).await {
        Ok(page) => render(page),
        Err(r) => refusal_page(lang, sess, &uri, &r),
    }
}

async fn build_queue(state: &AppState, lang: Lang, sess: &Session, uri: &Uri) -> Result<QueuePage, Refusal> {
    let store = &state.instance().store;
    let rows = store.applications().await.map_err(store_failed)?;
    let committees = store.committees().await.map_err(store_failed)?;
    // Operators see every application; reviewers and chairs those of their committees.
    let operator = sess.user.has_role(Role::Operator);
    let mut mine = Vec::new();
    for c in &committees {
        if store.active_committee_members(c.id).await.map_err(store_failed)?.iter().any(|m| m.user_id == Some(sess.user.id)) {
            mine.push(c.id);
        }
    }
    let today = today_jst();
    let mut counts: Vec<(&'static str, &'static str, usize)> =
        ApplicationStatus::ALL.iter().map(|s| (s.as_str(), status_label(lang, *s), 0usize)).collect();
    let mut groups: Vec<TierGroup> = Vec::new();
    let mut queued: Vec<(Tier, Option<time::Date>, QueueRow)> = Vec::new();
    for row in rows {
        let visible = operator || sess.user.has_role(Role::CommitteeChair) || row.committee_id.is_some_and(|c| mine.contains(&c));
        if !visible {
            continue;
        }
        if let Some(c) = counts.iter_mut().find(|c| c.0 == row.status) {
            c.2 += 1;
        }
        if row.status != ApplicationStatus::UnderReview.as_str() {
            continue;
        }
        let Some(tier) = row.tier.as_deref().and_then(|t| t.parse::<Tier>().ok()) else { continue };
        let deadline = row.deadline_at.and_then(deadline_date);
        let days = deadline.map(|d| (d - today).whole_days());
        queued.push((
            tier,
            deadline,
            QueueRow {
                id: row.id,
                title: row.title,
                case: row.case_code.as_deref().and_then(from_code::<Case>).map(|c| case_label(lang, c)).unwrap_or_else(|| "—".into()),
                deadline: deadline.map(|d| d.to_string()).unwrap_or_else(|| "—".into()),
                days_left: days.map(|d| d.to_string()).unwrap_or_else(|| "—".into()),
                overdue: days.is_some_and(|d| d < 0),
                committee: row.committee_id.and_then(|c| committees.iter().find(|x| x.id == c)).map(|c| c.name.clone()).unwrap_or_default(),
            },
        ));
    }
    // Deepest review first; within a tier, the nearest deadline first.
    queued.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)).then(a.2.id.cmp(&b.2.id)));
    for (tier, _, row) in queued {
        match groups.last_mut() {
            Some(g) if g.tier_code == tier.as_str() => g.rows.push(row),
            _ => groups.push(TierGroup { tier: tier_label(lang, tier), tier_code: tier.as_str(), rows: vec![row] }),
        }
    }
    Ok(QueuePage { page: PageContext::new(lang, Some(sess), uri), groups, counts })
}

// ---------------------------------------------------------------------------------------
// Permits.

struct PermitCard {
    id: i64,
    application_id: i64,
    version: i64,
    status: &'static str,
    status_code: String,
    period: String,
    preset: String,
    track: &'static str,
    conditions: Vec<String>,
    grants: Vec<String>,
    linkage: Vec<String>,
    key: &'static str,
    open: bool,
    /// The viewer is a researcher named on the permit (reports outcomes).
    can_report: bool,
    /// The chair's amendment form (open permits, chairs only).
    amend: Option<AmendForm>,
}

/// The chair's amendment form of a permit: the application's requested variables and linkage
/// pairs (checked: granted now) and the presets (selected: the permit's).
struct AmendForm {
    /// (value `dataset.table.column`, checked)
    variables: Vec<(String, bool)>,
    /// (value `a b`, label, checked)
    linkage: Vec<(String, String, bool)>,
    /// (value, label, selected)
    presets: Vec<(&'static str, &'static str, bool)>,
}

struct CertificateView {
    id: i64,
    permit_id: i64,
    key_id: String,
    destroyed_at: String,
    log_index: String,
}

#[derive(Template)]
#[template(path = "permits.html")]
struct PermitsPage {
    page: PageContext,
    permits: Vec<PermitCard>,
    r: &'static crate::i18n::RegisterText,
    can_revoke: bool,
    /// Operators suspend and resume.
    can_suspend: bool,
    notice: Option<String>,
    certificate: Option<CertificateView>,
    error: Option<String>,
    problems: Problems,
}

/// The permits an account may see: operators and chairs all, researchers those of their
/// applications.
pub(crate) async fn visible_permits(store: &Store, user: &UserSummary) -> Result<Vec<niji_applications::PermitView>, Refusal> {
    let all = niji_applications::list_permits(store).await.map_err(|e| Refusal::from_workflow(e, None))?;
    if user.has_role(Role::Operator) || user.has_role(Role::CommitteeChair) {
        return Ok(all);
    }
    if !user.has_role(Role::Researcher) {
        return Err(Refusal::Forbidden);
    }
    let own: Vec<i64> = store.applications_by_applicant(user.id).await.map_err(store_failed)?.iter().map(|a| a.id).collect();
    Ok(all.into_iter().filter(|p| own.contains(&p.application_id)).collect())
}

/// What a permit action leaves on `/permits` beyond the list.
#[derive(Default)]
struct PermitFlash {
    notice: Option<String>,
    certificate: Option<CertificateView>,
    error: Option<String>,
    problems: Vec<Problem>,
}

async fn amend_form(store: &Store, lang: Lang, p: &niji_applications::PermitView) -> Result<AmendForm, Refusal> {
    let row = store.application(p.application_id).await.map_err(store_failed)?.ok_or(Refusal::Internal)?;
    let form = stored_form(&row)?;
    let granted = p.policy.columns();
    let a = lang.apps();
    Ok(AmendForm {
        variables: form
            .variables
            .iter()
            .map(|v| {
                let checked = granted.iter().any(|g| g.dataset == v.dataset && g.table == v.table && g.column == v.column);
                (format!("{}.{}.{}", v.dataset, v.table, v.column), checked)
            })
            .collect(),
        linkage: form
            .linkage
            .iter()
            .map(|l| (format!("{} {}", l.left, l.right), format!("{} ⟷ {}", l.left, l.right), p.policy.linkage.contains(l)))
            .collect(),
        presets: preset_names().map(|name| (name, preset_label(a, name), name == p.policy.output_preset)).collect(),
    })
}

async fn permits_view(state: &AppState, lang: Lang, sess: &Session, uri: &Uri, flash: PermitFlash, status: StatusCode) -> Response {
    let a = lang.apps();
    let store = &state.instance().store;
    let permits = match visible_permits(store, &sess.user).await {
        Ok(p) => p,
        Err(Refusal::Forbidden) => return message_page(StatusCode::FORBIDDEN, lang, Some(sess), uri, a.err_permits_forbidden.to_string()),
        Err(r) => return refusal_page(lang, sess, uri, &r),
    };
    let chair = sess.user.has_role(Role::CommitteeChair);
    let mut cards = Vec::with_capacity(permits.len());
    for p in permits {
        let open = matches!(p.status.as_str(), "active" | "suspended");
        let amend = if chair && open {
            match amend_form(store, lang, &p).await {
                Ok(f) => Some(f),
                Err(r) => return refusal_page(lang, sess, uri, &r),
            }
        } else {
            None
        };
        let policy = &p.policy;
        cards.push(PermitCard {
            id: p.id,
            application_id: p.application_id,
            version: p.version,
            status: permit_status_label(a, &p.status),
            open,
            can_report: sess.user.has_role(Role::Researcher) && policy.names(sess.user.id),
            status_code: p.status.clone(),
            period: format!("{} – {}", policy.starts_on, policy.expires_on),
            preset: policy.output_preset.clone(),
            track: pick(lang, policy.track.label_ja(), policy.track.label_en()),
            conditions: policy.conditions.clone(),
            grants: policy
                .datasets
                .iter()
                .flat_map(|d| d.tables.iter().map(move |t| format!("{}.{}: {}", d.dataset, t.table, t.columns.join(", "))))
                .collect(),
            linkage: policy.linkage.iter().map(|l| format!("{} ⟷ {}", l.left, l.right)).collect(),
            key: if p.key_present { a.key_present } else { a.key_destroyed },
            amend,
        });
    }
    let page = PermitsPage {
        page: PageContext::new(lang, Some(sess), uri),
        permits: cards,
        r: lang.register(),
        can_revoke: sess.user.has_role(Role::Operator),
        can_suspend: sess.user.has_role(Role::Operator),
        notice: flash.notice,
        certificate: flash.certificate,
        error: flash.error,
        problems: Problems::new(lang, &flash.problems),
    };
    (status, render(page)).into_response()
}

async fn permits_page(State(state): State<AppState>, lang: Lang, s: MaybeSession, uri: Uri) -> Response {
    let Some(sess) = s.signed_in() else { return Redirect::to("/login").into_response() };
    permits_view(&state, lang, sess, &uri, PermitFlash::default(), StatusCode::OK).await
}

/// A refused permit action in the portal's words (fixed texts).
fn permit_refusal(lang: Lang, r: &Refusal) -> (StatusCode, String) {
    let a = lang.apps();
    match r {
        Refusal::Transition => (StatusCode::CONFLICT, a.err_permit_state.to_string()),
        Refusal::Invalid(_) | Refusal::Permit => (StatusCode::BAD_REQUEST, a.err_amend_invalid.to_string()),
        Refusal::NotFound => (StatusCode::NOT_FOUND, a.err_not_found.to_string()),
        other => other.portal(lang),
    }
}

/// After a permit action: `/permits` with what it did, or with the refusal (nothing changed).
async fn after_permit_action(state: &AppState, lang: Lang, sess: &Session, uri: &Uri, result: Result<PermitFlash, Refusal>) -> Response {
    match result {
        Ok(flash) => permits_view(state, lang, sess, uri, flash, StatusCode::OK).await,
        Err(Refusal::Forbidden) => message_page(StatusCode::FORBIDDEN, lang, Some(sess), uri, lang.apps().err_role.to_string()),
        Err(r) => {
            let (status, message) = permit_refusal(lang, &r);
            let problems = match r {
                Refusal::Invalid(p) => p,
                _ => Vec::new(),
            };
            permits_view(state, lang, sess, uri, PermitFlash { error: Some(message), problems, ..PermitFlash::default() }, status).await
        }
    }
}

/// The deletion certificate of a permit, for the page.
async fn certificate_view(store: &Store, permit_id: i64, certificate: Option<i64>) -> Result<Option<CertificateView>, Refusal> {
    let rows = store.deletion_certificates_for_permit(permit_id).await.map_err(store_failed)?;
    let row = match certificate {
        Some(id) => rows.into_iter().find(|c| c.id == id),
        None => rows.into_iter().max_by_key(|c| c.id),
    };
    Ok(row.map(|c| CertificateView {
        id: c.id,
        permit_id: c.permit_id,
        key_id: c.key_id,
        destroyed_at: jst(c.destroyed_at),
        log_index: c.log_index.map(|i| i.to_string()).unwrap_or_else(|| "—".into()),
    }))
}

async fn revoke_action(State(state): State<AppState>, lang: Lang, s: MaybeSession, uri: Uri, id: IdPath, form: ButtonForm) -> Response {
    let (permit_id, fields) = match action_prelude(lang, &s, &uri, id, form).await {
        Ok(x) => x,
        Err(resp) => return resp,
    };
    let sess = s.signed_in().expect("checked");
    let reason = fields.get("reason").trim().chars().take(2000).collect::<String>();
    let result = async {
        let actor = load_actor(&state, sess).await?;
        if reason.is_empty() {
            // Who may revoke is answered before what is missing.
            if !actor.roles.contains(&Role::Operator) {
                return Err(Refusal::Forbidden);
            }
            return Err(Refusal::Invalid(vec![Problem { field: "reason".into(), reason: Reason::Domain(ProblemReason::Required) }]));
        }
        let certificate =
            niji_applications::revoke_permit(state.instance(), &actor, permit_id, &reason).await.map_err(|e| Refusal::from_workflow(e, None))?;
        let certificate = certificate_view(&state.instance().store, permit_id, Some(certificate)).await?;
        Ok(PermitFlash { notice: Some(lang.apps().revoked.to_string()), certificate, ..PermitFlash::default() })
    }
    .await;
    match result {
        Err(Refusal::Invalid(problems)) => {
            let flash = PermitFlash { error: Some(lang.apps().err_revoke_reason.to_string()), problems, ..PermitFlash::default() };
            permits_view(&state, lang, sess, &uri, flash, StatusCode::BAD_REQUEST).await
        }
        other => after_permit_action(&state, lang, sess, &uri, other).await,
    }
}

async fn suspend_action(State(state): State<AppState>, lang: Lang, s: MaybeSession, uri: Uri, id: IdPath, form: ButtonForm) -> Response {
    permit_status_action(state, lang, s, uri, id, form, true).await
}

async fn resume_action(State(state): State<AppState>, lang: Lang, s: MaybeSession, uri: Uri, id: IdPath, form: ButtonForm) -> Response {
    permit_status_action(state, lang, s, uri, id, form, false).await
}

/// Suspends (`suspend`) or resumes a permit (operators).
async fn permit_status_action(state: AppState, lang: Lang, s: MaybeSession, uri: Uri, id: IdPath, form: ButtonForm, suspend: bool) -> Response {
    let (permit_id, _) = match action_prelude(lang, &s, &uri, id, form).await {
        Ok(x) => x,
        Err(resp) => return resp,
    };
    let sess = s.signed_in().expect("checked");
    let a = lang.apps();
    let result = async {
        let actor = load_actor(&state, sess).await?;
        let step = if suspend {
            niji_applications::suspend_permit(state.instance(), &actor, permit_id).await
        } else {
            niji_applications::resume_permit(state.instance(), &actor, permit_id).await
        };
        step.map_err(|e| Refusal::from_workflow(e, None))?;
        let notice = if suspend { a.permit_suspended_done } else { a.permit_resumed_done };
        Ok(PermitFlash { notice: Some(notice.to_string()), ..PermitFlash::default() })
    }
    .await;
    after_permit_action(&state, lang, sess, &uri, result).await
}

/// The chair amends a permit: a new version granting the checked variables and linkage pairs
/// (a subset of the application's request) under the chosen preset; the old version's key is
/// destroyed with a deletion certificate.
async fn amend_action(State(state): State<AppState>, lang: Lang, s: MaybeSession, uri: Uri, id: IdPath, form: ButtonForm) -> Response {
    let (permit_id, fields) = match action_prelude(lang, &s, &uri, id, form).await {
        Ok(x) => x,
        Err(resp) => return resp,
    };
    let sess = s.signed_in().expect("checked");
    let result = async {
        let actor = load_actor(&state, sess).await?;
        let mut problems = Vec::new();
        let input = scope_from_form(&fields, &mut problems);
        let (scope, preset) = match amendment(input) {
            Ok(x) if problems.is_empty() => x,
            Ok(_) => return Err(Refusal::Invalid(problems)),
            Err(more) => {
                problems.extend(more);
                return Err(Refusal::Invalid(problems));
            }
        };
        let new_id = niji_applications::amend_permit(state.instance(), &actor, permit_id, scope, preset, today_jst())
            .await
            .map_err(|e| Refusal::from_workflow(e, None))?;
        let certificate = certificate_view(&state.instance().store, permit_id, None).await?;
        let notice = lang.apps().permit_amended_done.replace("{id}", &new_id.to_string());
        Ok(PermitFlash { notice: Some(notice), certificate, ..PermitFlash::default() })
    }
    .await;
    after_permit_action(&state, lang, sess, &uri, result).await
}
