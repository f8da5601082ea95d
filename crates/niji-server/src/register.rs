//! The public transparency register (issue 6) and outcome reports:
//!
//! - `GET /register`: every permit (purpose, recipient organizations, datasets, period,
//!   status, review tier and decision time), the results released under it, the outcomes its
//!   researchers reported, and statistics (days to decision per tier, releases per month);
//! - `GET /api/v1/register`: the same as JSON, each entry with its transparency-log index and
//!   its inclusion proof (the JSON `niji log proof` prints) against the signed head the
//!   document carries; `GET /api/v1/register.csv`: one row per permit (UTF-8 with BOM);
//! - `POST /api/v1/permits/{id}/outcomes` (API token) and `POST /permits/{id}/outcomes` (the
//!   form on `/permits`): a researcher named on the permit reports an outcome, run by
//!   `niji_applications::report_outcome`.
//!
//! Invariants: the register is public, so it shows organizations only — never a researcher's
//! name, user name or account id, and no count of persons. Log entries are proved by their
//! leaf hash, not served: their `actor` names an account.

use crate::api::{format_ms, head_body, proof_body, ApiError, ErrorBody, InclusionProofBody, SignedTreeHeadBody, TokenUser};
use crate::applications::{from_code, jst, pick};
use crate::i18n::{Lang, RegisterText};
use crate::portal::{constant_time_eq, render, MaybeSession, PageContext};
use crate::upload::today_jst;
use crate::AppState;
use askama::Template;
use axum::extract::rejection::{FormRejection, JsonRejection, PathRejection};
use axum::extract::{Path, State};
use axum::http::{header, StatusCode, Uri};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Form, Json, Router};
use niji_applications::{Actor, NewOutcome, OutcomeProblem, WorkflowError};
use niji_core::AuditEvent;
use niji_review::{Case, PermitPolicy, Tier};
use serde::{Deserialize, Serialize};
use utoipa::{OpenApi, ToSchema};

/// The portal's routes.
pub(crate) fn routes() -> Router<AppState> {
    Router::new().route("/register", get(register_page)).route("/permits/{id}/outcomes", post(report_form))
}

/// The API's routes (nested under `/api/v1`).
pub(crate) fn api_routes() -> Router<AppState> {
    Router::new().route("/register", get(register_json)).route("/register.csv", get(register_csv)).route("/permits/{id}/outcomes", post(report_api))
}

/// The register's part of the OpenAPI document (merged into `crate::api`'s).
#[derive(OpenApi)]
#[openapi(
    paths(register_json, register_csv, report_api),
    components(schemas(
        RegisterBody,
        RegisterPermitBody,
        RegisterReleaseBody,
        RegisterOutcomeBody,
        ReleasedDatasetBody,
        LogEntryBody,
        StatisticsBody,
        TierDaysBody,
        MonthCountBody,
        OutcomeRequest,
        OutcomeBody,
        OutcomeInvalidBody,
        OutcomeInvalidDetail,
        OutcomeProblemBody
    ))
)]
pub(crate) struct RegisterDoc;

// ---------------------------------------------------------------------------------------
// The register as read from the store.

const SECONDS_PER_DAY: f64 = 86_400.0;

struct PermitEntry {
    id: i64,
    application_id: i64,
    version: i64,
    status: String,
    policy: PermitPolicy,
    tier: Option<Tier>,
    case: Option<Case>,
    submitted_at: Option<i64>,
    /// The decision: the chair's, or the acceptance of a notification (its first permit).
    decided_at: Option<i64>,
    issued_at: i64,
    log_index: Option<i64>,
}

impl PermitEntry {
    fn decision_days(&self) -> Option<f64> {
        Some(days(self.submitted_at?, self.decided_at?))
    }
    fn organizations(&self) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        for r in &self.policy.recipients {
            if !out.contains(&r.organization) {
                out.push(r.organization.clone());
            }
        }
        out
    }
    fn datasets(&self) -> Vec<String> {
        self.policy.datasets.iter().map(|d| d.dataset.clone()).collect()
    }
}

struct ReleaseEntry {
    id: i64,
    permit_id: i64,
    kind: String,
    released_at: i64,
    datasets: Vec<ReleasedDatasetBody>,
    log_index: Option<i64>,
}

struct OutcomeEntry {
    id: i64,
    permit_id: i64,
    kind: String,
    title: String,
    reference: String,
    published_on: String,
    reported_at: i64,
    log_index: Option<i64>,
}

struct Register {
    permits: Vec<PermitEntry>,
    releases: Vec<ReleaseEntry>,
    outcomes: Vec<OutcomeEntry>,
    stats: StatisticsBody,
}

fn days(from: i64, to: i64) -> f64 {
    ((to - from).max(0) as f64) / SECONDS_PER_DAY
}

/// One decimal.
fn round1(x: f64) -> f64 {
    (x * 10.0).round() / 10.0
}

/// The median of sorted values (the mean of the middle two for an even count).
fn median(sorted: &[f64]) -> f64 {
    let n = sorted.len();
    if n % 2 == 1 {
        sorted[n / 2]
    } else {
        (sorted[n / 2 - 1] + sorted[n / 2]) / 2.0
    }
}

/// The nearest-rank percentile `p` (0–100) of sorted values.
fn percentile(sorted: &[f64], p: f64) -> f64 {
    let rank = ((p / 100.0) * sorted.len() as f64).ceil().max(1.0) as usize;
    sorted[rank.min(sorted.len()) - 1]
}

/// `YYYY-MM` of a Unix time in Japan.
fn month_jst(ts: i64) -> String {
    jst(ts).get(..7).unwrap_or_default().to_string()
}

async fn load(state: &AppState) -> Result<Register, ApiError> {
    let store = &state.instance().store;
    let failed = |e: niji_store::StoreError| {
        tracing::error!(error = %e, "reading the register failed");
        ApiError::Internal
    };
    let mut permits = Vec::new();
    for row in store.register_permits().await.map_err(failed)? {
        let Ok(policy) = serde_json::from_str::<PermitPolicy>(&row.policy) else {
            tracing::error!(permit = row.id, "a stored permit policy is unreadable");
            return Err(ApiError::Internal);
        };
        permits.push(PermitEntry {
            id: row.id,
            application_id: row.application_id,
            version: row.version,
            status: row.status,
            policy,
            tier: row.tier.as_deref().and_then(|t| t.parse::<Tier>().ok()),
            case: row.case_code.as_deref().and_then(from_code::<Case>),
            submitted_at: row.submitted_at,
            decided_at: row.decided_at,
            issued_at: row.created_at,
            log_index: row.log_index,
        });
    }
    // A notification has no decision row: it is decided when its first permit is issued.
    let timings = store.review_timings().await.map_err(failed)?;
    for p in &mut permits {
        if p.decided_at.is_none() {
            p.decided_at = timings.iter().find(|t| t.application_id == p.application_id).and_then(|t| t.first_permit_at);
        }
    }
    let releases: Vec<ReleaseEntry> = store
        .released_runs()
        .await
        .map_err(failed)?
        .into_iter()
        .map(|r| ReleaseEntry {
            id: r.id,
            permit_id: r.permit_id,
            kind: r.kind,
            released_at: r.finished_at,
            datasets: serde_json::from_str(&r.datasets).unwrap_or_default(),
            log_index: r.log_index,
        })
        .collect();
    let outcomes = store
        .permit_outcomes()
        .await
        .map_err(failed)?
        .into_iter()
        .map(|o| OutcomeEntry {
            id: o.id,
            permit_id: o.permit_id,
            kind: o.kind,
            title: o.title,
            reference: o.reference,
            published_on: o.published_on,
            reported_at: o.reported_at,
            log_index: o.log_index,
        })
        .collect();

    // Statistics: days from submission to decision per tier, over every decided application.
    let mut by_tier: Vec<(Tier, Vec<f64>)> = Tier::ALL.iter().map(|t| (*t, Vec::new())).collect();
    let mut on_time: Vec<(Tier, usize)> = Tier::ALL.iter().map(|t| (*t, 0)).collect();
    let mut all = Vec::new();
    for t in &timings {
        let (Some(submitted), Some(decided)) = (t.submitted_at, t.decided_at.or(t.first_permit_at)) else { continue };
        let d = days(submitted, decided);
        all.push(d);
        let tier = t.tier.as_deref().and_then(|x| x.parse::<Tier>().ok());
        if let Some((_, v)) = tier.and_then(|tier| by_tier.iter_mut().find(|(k, _)| *k == tier)) {
            v.push(d);
        }
        // The deadline is a date (stored as its midnight UTC): on time means decided before that
        // day ends in Japan (15:00 UTC). A notification without one is decided at submission.
        if let Some(tier) = tier {
            if t.deadline_at.is_none_or(|deadline| decided < deadline + 15 * 3600) {
                if let Some((_, n)) = on_time.iter_mut().find(|(k, _)| *k == tier) {
                    *n += 1;
                }
            }
        }
    }
    let sorted = |mut v: Vec<f64>| {
        v.sort_by(|a, b| a.total_cmp(b));
        v
    };
    let decision_days_by_tier = by_tier
        .into_iter()
        .filter(|(_, v)| !v.is_empty())
        .map(|(tier, v)| {
            let v = sorted(v);
            let within_deadline = on_time.iter().find(|(k, _)| *k == tier).map_or(0, |(_, n)| *n);
            TierDaysBody {
                tier: tier.as_str(),
                decisions: v.len(),
                within_deadline,
                median_days: round1(median(&v)),
                p90_days: round1(percentile(&v, 90.0)),
            }
        })
        .collect();
    let all = sorted(all);
    let mut releases_by_month: Vec<MonthCountBody> = Vec::new();
    for r in &releases {
        let month = month_jst(r.released_at);
        match releases_by_month.iter_mut().find(|m| m.month == month) {
            Some(m) => m.releases += 1,
            None => releases_by_month.push(MonthCountBody { month, releases: 1 }),
        }
    }
    releases_by_month.sort_by(|a, b| a.month.cmp(&b.month));
    // Output release times: from a job's submission to its release (two checkers signed).
    let jobs = store.jobs().await.map_err(failed)?;
    let mut release_hours: Vec<f64> = store
        .releases()
        .await
        .map_err(failed)?
        .iter()
        .filter(|r| r.csv_sha256.is_some())
        .filter_map(|r| jobs.iter().find(|j| j.id == r.job_id).map(|j| (r.released_at - j.created_at).max(0) as f64 / 3600.0))
        .collect();
    release_hours.sort_by(|a, b| a.total_cmp(b));
    let stats = StatisticsBody {
        job_releases: release_hours.len(),
        median_release_hours: (!release_hours.is_empty()).then(|| round1(median(&release_hours))),
        p90_release_hours: (!release_hours.is_empty()).then(|| round1(percentile(&release_hours, 90.0))),
        decision_days_by_tier,
        decisions: all.len(),
        median_decision_days: (!all.is_empty()).then(|| round1(median(&all))),
        releases_by_month,
        opt_outs_by_dataset: opt_outs(state).await?,
    };
    Ok(Register { permits, releases, outcomes, stats })
}

// ---------------------------------------------------------------------------------------
// JSON.

/// The public transparency register with inclusion proofs.
#[derive(Serialize, ToSchema)]
pub(crate) struct RegisterBody {
    /// RFC 3339, UTC.
    generated_at: String,
    /// The signed tree head every `proof` in this document is against (`tree_size`,
    /// `root_hash`); check its signature with the log's public key.
    signed_head: SignedTreeHeadBody,
    permits: Vec<RegisterPermitBody>,
    releases: Vec<RegisterReleaseBody>,
    outcomes: Vec<RegisterOutcomeBody>,
    statistics: StatisticsBody,
}

/// What a log entry records, read from the log (its `actor` is left out: it names an account).
/// The entry itself is proved by `proof.leaf_hash`.
#[derive(Serialize, ToSchema)]
pub(crate) struct LogEntryBody {
    /// E.g. `permit.issued`, `outcome.reported`.
    action: String,
    /// E.g. `permit:3`.
    object: String,
    /// RFC 3339, UTC.
    time: String,
}

/// A data permit (one version).
#[derive(Serialize, ToSchema)]
pub(crate) struct RegisterPermitBody {
    id: i64,
    application_id: i64,
    /// 1 when granted, +1 per amendment.
    version: i64,
    /// active, suspended, revoked, expired or superseded.
    status: String,
    /// notification, light, medical_validity, standard or full.
    tier: Option<&'static str>,
    /// Triage case, 1–4.
    case: Option<u8>,
    /// The purpose in the applicant's words.
    purpose: String,
    purpose_category: &'static str,
    recipient_organizations: Vec<String>,
    datasets: Vec<String>,
    /// YYYY-MM-DD, both included.
    starts_on: String,
    expires_on: String,
    /// RFC 3339, UTC.
    submitted_at: Option<String>,
    /// RFC 3339, UTC: the committee's decision, or the acceptance of a notification.
    decided_at: Option<String>,
    decision_days: Option<f64>,
    /// RFC 3339, UTC: when this version was issued.
    issued_at: String,
    /// Index of the `permit.issued` (or `permit.amended`) log entry.
    log_index: Option<u64>,
    /// Inclusion proof of that entry against `signed_head`, as `GET /api/v1/log/proof/{index}`
    /// and `niji log proof` give it.
    proof: Option<InclusionProofBody>,
    log_entry: Option<LogEntryBody>,
}

#[derive(Serialize, Deserialize, ToSchema, Default, Clone)]
pub(crate) struct ReleasedDatasetBody {
    dataset: String,
    version: i64,
}

/// A checked result released under a permit.
#[derive(Serialize, ToSchema)]
pub(crate) struct RegisterReleaseBody {
    id: i64,
    permit_id: i64,
    /// query.
    kind: String,
    /// RFC 3339, UTC.
    released_at: String,
    datasets: Vec<ReleasedDatasetBody>,
    log_index: Option<u64>,
    proof: Option<InclusionProofBody>,
    log_entry: Option<LogEntryBody>,
}

/// An outcome reported for a permit.
#[derive(Serialize, ToSchema)]
pub(crate) struct RegisterOutcomeBody {
    id: i64,
    permit_id: i64,
    /// paper, product, report or other.
    kind: String,
    title: String,
    /// A DOI or an http(s) URL.
    reference: String,
    /// YYYY-MM-DD.
    published_on: String,
    /// RFC 3339, UTC.
    reported_at: String,
    /// Index of the `outcome.reported` log entry.
    log_index: Option<u64>,
    proof: Option<InclusionProofBody>,
    log_entry: Option<LogEntryBody>,
}

/// Public statistics.
#[derive(Serialize, ToSchema)]
pub(crate) struct StatisticsBody {
    /// Days from submission to decision per review tier (tiers with a decision only).
    decision_days_by_tier: Vec<TierDaysBody>,
    /// Decided applications, all tiers.
    decisions: usize,
    /// Median days from submission to decision, all tiers.
    median_decision_days: Option<f64>,
    /// Released results per month (JST), oldest first.
    releases_by_month: Vec<MonthCountBody>,
    /// Jobs released after output checking (two checkers), and the hours from a job's
    /// submission to its release: median and nearest-rank 90th percentile.
    job_releases: usize,
    median_release_hours: Option<f64>,
    p90_release_hours: Option<f64>,
    /// Per dataset (latest version): persons, and persons who refuse every use (an opt-out of
    /// all uses, or a consent withdrawn or lapsed). Counts are rounded to 10 and suppressed
    /// below 10 like the catalog's; the rate is given only when both counts are shown.
    opt_outs_by_dataset: Vec<OptOutBody>,
}

#[derive(Serialize, ToSchema)]
pub(crate) struct OptOutBody {
    dataset: String,
    /// Rounded to 10; `null` when under 10.
    persons: Option<u64>,
    /// Rounded to 10; `null` when under 10.
    refusing_every_use: Option<u64>,
    /// Percent, from the rounded counts; `null` when either count is suppressed.
    rate_percent: Option<f64>,
}

/// The opt-out statistic, from the consent registry now.
async fn opt_outs(state: &AppState) -> Result<Vec<OptOutBody>, ApiError> {
    let counts = niji_registry::opt_out_counts(state.instance(), time::OffsetDateTime::now_utc()).await.map_err(|e| {
        tracing::error!(error = %e, "opt-out counts failed");
        ApiError::Internal
    })?;
    Ok(counts
        .into_iter()
        .map(|(dataset, persons, refusing)| {
            let (persons, refusing_every_use) = (niji_core::disclosure::catalog_count(persons), niji_core::disclosure::catalog_count(refusing));
            let rate_percent = match (persons, refusing_every_use) {
                (Some(p), Some(r)) if p > 0 => Some((r as f64 * 1000.0 / p as f64).round() / 10.0),
                _ => None,
            };
            OptOutBody { dataset, persons, refusing_every_use, rate_percent }
        })
        .collect())
}

#[derive(Serialize, ToSchema)]
pub(crate) struct TierDaysBody {
    tier: &'static str,
    decisions: usize,
    /// Decisions made by the review deadline set at submission (notifications, decided at
    /// submission, count as on time).
    within_deadline: usize,
    median_days: f64,
    /// Nearest-rank 90th percentile.
    p90_days: f64,
}

#[derive(Serialize, ToSchema)]
pub(crate) struct MonthCountBody {
    /// YYYY-MM.
    month: String,
    releases: usize,
}

fn rfc3339(ts: i64) -> String {
    format_ms(ts.max(0) as u64 * 1000)
}

/// The register as JSON, each entry with its inclusion proof against the current signed head.
#[utoipa::path(get, path = "/api/v1/register", responses((status = 200, body = RegisterBody), (status = 500, body = ErrorBody)))]
pub(crate) async fn register_json(State(state): State<AppState>) -> Response {
    let register = match load(&state).await {
        Ok(r) => r,
        Err(e) => return e.into_response(),
    };
    let log = state.instance().log();
    // One head for the whole document: proofs are asked for at its size, whatever is appended
    // meanwhile.
    let head = log.head();
    let proved = |index: Option<i64>| -> (Option<u64>, Option<InclusionProofBody>, Option<LogEntryBody>) {
        let Some(index) = index.and_then(|i| u64::try_from(i).ok()) else { return (None, None, None) };
        let proof = log.inclusion_proof(index, Some(head.tree_size)).ok().map(|p| proof_body(&p));
        let entry = log.entry(index).ok().and_then(|bytes| AuditEvent::from_bytes(&bytes).ok()).map(|e| LogEntryBody {
            action: e.action,
            object: e.object,
            time: e.time.format(&time::format_description::well_known::Rfc3339).unwrap_or_default(),
        });
        (Some(index), proof, entry)
    };
    let permits = register
        .permits
        .iter()
        .map(|p| {
            let (log_index, proof, log_entry) = proved(p.log_index);
            RegisterPermitBody {
                id: p.id,
                application_id: p.application_id,
                version: p.version,
                status: p.status.clone(),
                tier: p.tier.map(Tier::as_str),
                case: p.case.map(Case::number),
                purpose: p.policy.purpose.clone(),
                purpose_category: p.policy.purpose_category.as_str(),
                recipient_organizations: p.organizations(),
                datasets: p.datasets(),
                starts_on: p.policy.starts_on.to_string(),
                expires_on: p.policy.expires_on.to_string(),
                submitted_at: p.submitted_at.map(rfc3339),
                decided_at: p.decided_at.map(rfc3339),
                decision_days: p.decision_days().map(round1),
                issued_at: rfc3339(p.issued_at),
                log_index,
                proof,
                log_entry,
            }
        })
        .collect();
    let releases = register
        .releases
        .iter()
        .map(|r| {
            let (log_index, proof, log_entry) = proved(r.log_index);
            RegisterReleaseBody {
                id: r.id,
                permit_id: r.permit_id,
                kind: r.kind.clone(),
                released_at: rfc3339(r.released_at),
                datasets: r.datasets.clone(),
                log_index,
                proof,
                log_entry,
            }
        })
        .collect();
    let outcomes = register
        .outcomes
        .iter()
        .map(|o| {
            let (log_index, proof, log_entry) = proved(o.log_index);
            RegisterOutcomeBody {
                id: o.id,
                permit_id: o.permit_id,
                kind: o.kind.clone(),
                title: o.title.clone(),
                reference: o.reference.clone(),
                published_on: o.published_on.clone(),
                reported_at: rfc3339(o.reported_at),
                log_index,
                proof,
                log_entry,
            }
        })
        .collect();
    let body = RegisterBody {
        generated_at: rfc3339(time::OffsetDateTime::now_utc().unix_timestamp()),
        signed_head: head_body(&head, &log.verifying_key()),
        permits,
        releases,
        outcomes,
        statistics: register.stats,
    };
    ([(header::CACHE_CONTROL, "no-cache")], Json(body)).into_response()
}

// ---------------------------------------------------------------------------------------
// CSV.

/// The register CSV's header, one name per field of a row.
const CSV_HEADER: &str = "permit_id,application_id,version,status,tier,case,purpose_category,purpose,recipient_organizations,datasets,\
starts_on,expires_on,submitted_at,decided_at,decision_days,issued_at,releases,outcomes,log_index";

/// The register as CSV: one row per permit, UTF-8 with a byte order mark, an English header.
#[utoipa::path(get, path = "/api/v1/register.csv",
    responses((status = 200, description = "UTF-8 with BOM; one row per permit: permit_id, application_id, version, status, tier, case, \
purpose_category, purpose, recipient_organizations, datasets (both `; `-separated), starts_on, expires_on, submitted_at, decided_at, \
decision_days, issued_at, releases, outcomes, log_index", content_type = "text/csv"), (status = 500, body = ErrorBody)))]
pub(crate) async fn register_csv(State(state): State<AppState>) -> Response {
    let register = match load(&state).await {
        Ok(r) => r,
        Err(e) => return e.into_response(),
    };
    let mut out = String::from("\u{feff}");
    out.push_str(CSV_HEADER);
    out.push_str("\r\n");
    for p in &register.permits {
        let releases = register.releases.iter().filter(|r| r.permit_id == p.id).count();
        let outcomes = register.outcomes.iter().filter(|o| o.permit_id == p.id).count();
        let fields = [
            p.id.to_string(),
            p.application_id.to_string(),
            p.version.to_string(),
            crate::csv::field(&p.status),
            p.tier.map(Tier::as_str).unwrap_or_default().to_string(),
            p.case.map(|c| c.number().to_string()).unwrap_or_default(),
            p.policy.purpose_category.as_str().to_string(),
            crate::csv::text(&p.policy.purpose),
            crate::csv::text(&p.organizations().join("; ")),
            crate::csv::text(&p.datasets().join("; ")),
            p.policy.starts_on.to_string(),
            p.policy.expires_on.to_string(),
            p.submitted_at.map(rfc3339).unwrap_or_default(),
            p.decided_at.map(rfc3339).unwrap_or_default(),
            p.decision_days().map(|d| round1(d).to_string()).unwrap_or_default(),
            rfc3339(p.issued_at),
            releases.to_string(),
            outcomes.to_string(),
            p.log_index.map(|i| i.to_string()).unwrap_or_default(),
        ];
        out.push_str(&fields.join(","));
        out.push_str("\r\n");
    }
    (
        [
            (header::CONTENT_TYPE, "text/csv; charset=utf-8"),
            (header::CONTENT_DISPOSITION, "attachment; filename=\"niji-register.csv\""),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        out,
    )
        .into_response()
}

// ---------------------------------------------------------------------------------------
// The page.

struct PermitView {
    id: i64,
    application_id: i64,
    version: i64,
    status: &'static str,
    status_code: String,
    purpose: String,
    purpose_category: &'static str,
    organizations: String,
    datasets: String,
    period: String,
    tier: String,
    case: String,
    submitted_at: String,
    decided_at: String,
    decision_days: String,
    issued_at: String,
    log_index: Option<i64>,
    releases: Vec<ReleaseView>,
    outcomes: Vec<OutcomeView>,
}

struct ReleaseView {
    kind: String,
    released_at: String,
    datasets: String,
    log_index: Option<i64>,
}

struct OutcomeView {
    kind: &'static str,
    title: String,
    reference: String,
    /// Where the reference points (a DOI resolves at doi.org).
    href: String,
    published_on: String,
    log_index: Option<i64>,
}

struct TierRow {
    tier: &'static str,
    decisions: usize,
    within_deadline: usize,
    median: String,
    p90: String,
}

#[derive(Template)]
#[template(path = "register.html")]
struct RegisterPage {
    page: PageContext,
    r: &'static RegisterText,
    tree_size: u64,
    root_hash: String,
    permits: Vec<PermitView>,
    tiers: Vec<TierRow>,
    median_days: String,
    months: Vec<(String, usize)>,
    /// Jobs released; median and 90th-percentile hours from submission to release.
    release_times: (usize, String, String),
    /// Dataset, persons, persons refusing every use, rate (shown texts; "<10" when suppressed).
    opt_outs: Vec<(String, String, String, String)>,
}

fn status_label(r: &RegisterText, status: &str) -> &'static str {
    match status {
        "active" => r.status_active,
        "suspended" => r.status_suspended,
        "revoked" => r.status_revoked,
        "expired" => r.status_expired,
        _ => r.status_superseded,
    }
}

fn outcome_kind_label(r: &RegisterText, kind: &str) -> &'static str {
    match kind {
        "paper" => r.kind_paper,
        "product" => r.kind_product,
        "report" => r.kind_report,
        _ => r.kind_other,
    }
}

fn reference_href(reference: &str) -> String {
    if niji_applications::is_doi(reference) {
        format!("https://doi.org/{reference}")
    } else if niji_applications::is_web_url(reference) {
        reference.to_string()
    } else {
        String::new()
    }
}

fn number(x: f64) -> String {
    format!("{x:.1}")
}

async fn register_page(State(state): State<AppState>, lang: Lang, s: MaybeSession, uri: Uri) -> Response {
    let register = match load(&state).await {
        Ok(r) => r,
        Err(_) => return crate::portal::error_page(StatusCode::INTERNAL_SERVER_ERROR, lang, s.signed_in(), &uri, |m| m.err_internal),
    };
    let r = lang.register();
    let head = state.instance().log().head();
    let permits = register
        .permits
        .iter()
        .rev()
        .map(|p| PermitView {
            id: p.id,
            application_id: p.application_id,
            version: p.version,
            status: status_label(r, &p.status),
            status_code: p.status.clone(),
            purpose: p.policy.purpose.clone(),
            purpose_category: pick(lang, p.policy.purpose_category.label_ja(), p.policy.purpose_category.label_en()),
            organizations: p.organizations().join("、"),
            datasets: p.datasets().join(", "),
            period: format!("{} – {}", p.policy.starts_on, p.policy.expires_on),
            tier: p.tier.map(|t| pick(lang, t.label_ja(), t.label_en()).to_string()).unwrap_or_default(),
            case: p.case.map(|c| format!("{}: {}", c.number(), pick(lang, c.label_ja(), c.label_en()))).unwrap_or_default(),
            submitted_at: p.submitted_at.map(jst).unwrap_or_default(),
            decided_at: p.decided_at.map(jst).unwrap_or_default(),
            decision_days: p.decision_days().map(number).unwrap_or_default(),
            issued_at: jst(p.issued_at),
            log_index: p.log_index,
            releases: register
                .releases
                .iter()
                .filter(|x| x.permit_id == p.id)
                .map(|x| ReleaseView {
                    kind: if x.kind == "query" { r.kind_query.to_string() } else { x.kind.clone() },
                    released_at: jst(x.released_at),
                    datasets: x.datasets.iter().map(|d| format!("{} v{}", d.dataset, d.version)).collect::<Vec<_>>().join(", "),
                    log_index: x.log_index,
                })
                .collect(),
            outcomes: register
                .outcomes
                .iter()
                .filter(|o| o.permit_id == p.id)
                .map(|o| OutcomeView {
                    kind: outcome_kind_label(r, &o.kind),
                    title: o.title.clone(),
                    reference: o.reference.clone(),
                    href: reference_href(&o.reference),
                    published_on: o.published_on.clone(),
                    log_index: o.log_index,
                })
                .collect(),
        })
        .collect();
    let tiers = register
        .stats
        .decision_days_by_tier
        .iter()
        .map(|t| {
            let tier = t.tier.parse::<Tier>().map(|x| pick(lang, x.label_ja(), x.label_en())).unwrap_or(t.tier);
            TierRow { tier, decisions: t.decisions, within_deadline: t.within_deadline, median: number(t.median_days), p90: number(t.p90_days) }
        })
        .collect();
    let page = RegisterPage {
        page: PageContext::new(lang, s.signed_in(), &uri),
        r,
        tree_size: head.tree_size,
        root_hash: hex::encode(head.root_hash),
        permits,
        tiers,
        median_days: register.stats.median_decision_days.map(number).unwrap_or_default(),
        months: register.stats.releases_by_month.iter().map(|m| (m.month.clone(), m.releases)).collect(),
        release_times: (
            register.stats.job_releases,
            register.stats.median_release_hours.map(number).unwrap_or_else(|| "—".into()),
            register.stats.p90_release_hours.map(number).unwrap_or_else(|| "—".into()),
        ),
        opt_outs: register
            .stats
            .opt_outs_by_dataset
            .iter()
            .map(|o| {
                let shown = |n: Option<u64>| n.map(|n| n.to_string()).unwrap_or_else(|| "<10".into());
                let rate = o.rate_percent.map(|r| format!("{r:.1}%")).unwrap_or_else(|| "—".into());
                (o.dataset.clone(), shown(o.persons), shown(o.refusing_every_use), rate)
            })
            .collect(),
    };
    render(page)
}

// ---------------------------------------------------------------------------------------
// Reporting outcomes.

/// An outcome of a permit.
#[derive(Deserialize, ToSchema)]
pub(crate) struct OutcomeRequest {
    /// paper, product, report or other.
    kind: String,
    /// 1–300 characters.
    title: String,
    /// A DOI (`10.1234/abc`) or an http(s) URL.
    reference: String,
    /// YYYY-MM-DD, not in the future.
    published_on: String,
}

/// A reported outcome.
#[derive(Serialize, ToSchema)]
pub(crate) struct OutcomeBody {
    id: i64,
    permit_id: i64,
    kind: String,
    title: String,
    reference: String,
    published_on: String,
    /// Index of the `outcome.reported` log entry.
    log_index: Option<i64>,
}

#[derive(Serialize, ToSchema)]
pub(crate) struct OutcomeInvalidBody {
    error: OutcomeInvalidDetail,
}

#[derive(Serialize, ToSchema)]
pub(crate) struct OutcomeInvalidDetail {
    /// bad_request.
    code: &'static str,
    message: &'static str,
    problems: Vec<OutcomeProblemBody>,
}

#[derive(Serialize, ToSchema)]
pub(crate) struct OutcomeProblemBody {
    /// kind, title, reference or published_on.
    field: &'static str,
    /// unknown_value, required, too_long, control_characters, not_doi_or_url, in_future, format.
    reason: &'static str,
}

/// Why a report was refused, for the API and the portal.
enum Refused {
    Problems(Vec<(&'static str, &'static str)>),
    Forbidden,
    NotNamed,
    NotFound,
    Internal,
}

fn refused(e: WorkflowError) -> Refused {
    match e {
        WorkflowError::Outcome(problems) => Refused::Problems(problems.iter().map(|p: &OutcomeProblem| (p.field(), p.code())).collect()),
        WorkflowError::NotNamedOnPermit => Refused::NotNamed,
        WorkflowError::Forbidden(_) => Refused::Forbidden,
        WorkflowError::NotFound(_) => Refused::NotFound,
        other => {
            tracing::error!(error = %other, "reporting an outcome failed");
            Refused::Internal
        }
    }
}

/// Parses the date and runs the workflow; returns the outcome's id.
async fn report(
    state: &AppState,
    user_id: i64,
    permit_id: i64,
    kind: &str,
    title: &str,
    reference: &str,
    published_on: &str,
) -> Result<i64, Refused> {
    let format = time::macros::format_description!("[year]-[month]-[day]");
    let Ok(published_on) = time::Date::parse(published_on.trim(), &format) else {
        return Err(Refused::Problems(vec![("published_on", "format")]));
    };
    let outcome = NewOutcome { kind: kind.trim().to_string(), title: title.to_string(), reference: reference.to_string(), published_on };
    let actor = Actor::load(&state.instance().store, user_id).await.map_err(refused)?;
    niji_applications::report_outcome(state.instance(), &actor, permit_id, &outcome, today_jst()).await.map_err(refused)
}

/// A researcher named on the permit reports an outcome (a paper, a product, a report). It is
/// published on the register; the log records its id only.
#[utoipa::path(post, path = "/api/v1/permits/{id}/outcomes", security(("bearer" = [])), params(("id" = i64, Path)), request_body = OutcomeRequest,
    responses((status = 201, body = OutcomeBody), (status = 400, body = OutcomeInvalidBody), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody, description = "the account is not a researcher named on the permit"), (status = 404, body = ErrorBody)))]
pub(crate) async fn report_api(
    State(state): State<AppState>,
    TokenUser(user): TokenUser,
    id: Result<Path<i64>, PathRejection>,
    body: Result<Json<OutcomeRequest>, JsonRejection>,
) -> Response {
    let Ok(Path(permit_id)) = id else { return ApiError::NotFound.into_response() };
    let Ok(Json(body)) = body else { return ApiError::BadRequest.into_response() };
    match report(&state, user.id, permit_id, &body.kind, &body.title, &body.reference, &body.published_on).await {
        Ok(outcome) => {
            let row = match state.instance().store.permit_outcomes_for(permit_id).await {
                Ok(rows) => rows.into_iter().find(|o| o.id == outcome),
                Err(e) => {
                    tracing::error!(error = %e, "reading an outcome failed");
                    None
                }
            };
            let Some(o) = row else { return ApiError::Internal.into_response() };
            let body = OutcomeBody {
                id: o.id,
                permit_id: o.permit_id,
                kind: o.kind,
                title: o.title,
                reference: o.reference,
                published_on: o.published_on,
                log_index: o.log_index,
            };
            (StatusCode::CREATED, Json(body)).into_response()
        }
        Err(Refused::Problems(problems)) => {
            let problems = problems.into_iter().map(|(field, reason)| OutcomeProblemBody { field, reason }).collect();
            let detail = OutcomeInvalidDetail { code: "bad_request", message: "the outcome has problems", problems };
            (StatusCode::BAD_REQUEST, Json(OutcomeInvalidBody { error: detail })).into_response()
        }
        Err(Refused::Forbidden | Refused::NotNamed) => ApiError::Forbidden.into_response(),
        Err(Refused::NotFound) => ApiError::NotFound.into_response(),
        Err(Refused::Internal) => ApiError::Internal.into_response(),
    }
}

#[derive(Template)]
#[template(path = "register_outcome.html")]
struct OutcomeResultPage {
    page: PageContext,
    r: &'static RegisterText,
    ok: bool,
    message: &'static str,
    problems: Vec<(&'static str, &'static str)>,
}

fn problem_text(r: &RegisterText, reason: &str) -> &'static str {
    match reason {
        "unknown_value" => r.problem_unknown_value,
        "required" => r.problem_required,
        "too_long" => r.problem_too_long,
        "control_characters" => r.problem_control,
        "not_doi_or_url" => r.problem_doi_or_url,
        "in_future" => r.problem_in_future,
        _ => r.problem_format,
    }
}

fn field_label(r: &RegisterText, field: &str) -> &'static str {
    match field {
        "kind" => r.outcome_kind,
        "title" => r.outcome_title,
        "reference" => r.reference,
        _ => r.published_on,
    }
}

/// The form on `/permits`: a researcher named on the permit reports an outcome.
async fn report_form(
    State(state): State<AppState>,
    lang: Lang,
    s: MaybeSession,
    uri: Uri,
    id: Result<Path<i64>, PathRejection>,
    form: Result<Form<Vec<(String, String)>>, FormRejection>,
) -> Response {
    let Some(sess) = s.signed_in() else { return Redirect::to("/login").into_response() };
    let (Ok(Path(permit_id)), Ok(Form(fields))) = (id, form) else {
        return crate::portal::error_page(StatusCode::BAD_REQUEST, lang, Some(sess), &uri, |m| m.err_bad_request);
    };
    let get = |name: &str| fields.iter().find(|(k, _)| k == name).map(|(_, v)| v.chars().take(4000).collect::<String>()).unwrap_or_default();
    if !constant_time_eq(get("csrf").as_bytes(), sess.csrf_token.as_bytes()) {
        return crate::portal::error_page(StatusCode::FORBIDDEN, lang, Some(sess), &uri, |m| m.err_session);
    }
    let r = lang.register();
    let result = report(&state, sess.user.id, permit_id, &get("kind"), &get("title"), &get("reference"), &get("published_on")).await;
    let (status, ok, message, problems) = match result {
        Ok(_) => (StatusCode::OK, true, r.reported, Vec::new()),
        Err(Refused::Problems(p)) => {
            (StatusCode::BAD_REQUEST, false, r.err_invalid, p.into_iter().map(|(f, reason)| (field_label(r, f), problem_text(r, reason))).collect())
        }
        Err(Refused::Forbidden | Refused::NotNamed) => (StatusCode::FORBIDDEN, false, r.err_not_named, Vec::new()),
        Err(Refused::NotFound) => (StatusCode::NOT_FOUND, false, r.err_not_found, Vec::new()),
        Err(Refused::Internal) => (StatusCode::INTERNAL_SERVER_ERROR, false, lang.messages().err_internal, Vec::new()),
    };
    let page = OutcomeResultPage { page: PageContext::new(lang, Some(sess), &uri), r, ok, message, problems };
    (status, render(page)).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn medians_and_percentiles() {
        assert_eq!(median(&[1.0, 2.0, 3.0]), 2.0);
        assert_eq!(median(&[1.0, 2.0, 3.0, 10.0]), 2.5);
        let v: Vec<f64> = (1..=10).map(f64::from).collect();
        assert_eq!(percentile(&v, 90.0), 9.0);
        assert_eq!(percentile(&[4.0], 90.0), 4.0);
    }

    #[test]
    fn csv_fields_are_quoted_and_never_formulas() {
        assert_eq!(crate::csv::text("a, \"b\""), "\"a, \"\"b\"\"\"");
        assert_eq!(crate::csv::text("=HYPERLINK(1)"), "'=HYPERLINK(1)");
        assert_eq!(crate::csv::text("東都大学"), "東都大学");
    }
}
