//! The budget of stops of a permit's runs on real data (issue 5).
//!
//! Static checks refuse a query before it runs, from its text and the tables' shapes and sizes, so
//! a refusal of theirs tells nothing about the rows a query selects. A run can still be *stopped*
//! by a limit: it runs out of time or memory (its hash tables grow with the rows it reaches, within
//! the join bound), or fails while running. Whether that happens can depend on rare rows, and the
//! researcher sees it, so each stop may tell one bit that output checking never sees.
//!
//! A permit therefore gets [`AnalysisSettings::max_stops`] stops. A place is taken before each
//! run (an interactive query, or each output of a job) and given back when the run ends without
//! a stop; once none is left, nothing more runs on the permit's real data (dummy data stays open)
//! until an output checker who is not named on the permit clears the stops ([`clear_stops`]),
//! which is logged. A run that never ends (the process was killed, perhaps for memory) keeps its
//! place. The number of bits a permit can draw from stops between two reviews is thus at most
//! `max_stops`, and each clearance is a named person's logged decision.

use niji_core::{AuditEvent, AuditSink, Role};
use niji_instance::Instance;
use niji_review::PermitPolicy;
use niji_sandbox::{Limits, SandboxError};

use crate::AnalysisError;

/// How a permit's runs on real data are limited.
#[derive(Clone, Copy, Debug)]
pub struct AnalysisSettings {
    /// Each run's limits (memory, time, groups, join size).
    pub limits: Limits,
    /// Runs that limits may stop before an output checker must clear them.
    pub max_stops: u32,
}

impl Default for AnalysisSettings {
    fn default() -> Self {
        AnalysisSettings { limits: Limits::default(), max_stops: 5 }
    }
}

/// A permit's uncleared stops, as the portal shows them (no SQL: only its hash is kept).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Stops {
    pub permit_id: i64,
    /// Each uncleared stop, oldest first.
    pub stops: Vec<Stop>,
    /// The permit's budget.
    pub max_stops: u32,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Stop {
    pub user_id: i64,
    /// `query` or `job`.
    pub kind: String,
    /// `running` (in progress, or interrupted), `timeout`, `memory_limit`, `execution`, `internal`.
    pub reason: String,
    pub code_sha256: String,
    pub started_at: i64,
}

impl Stops {
    /// Places left in the budget.
    pub fn left(&self) -> u32 {
        self.max_stops.saturating_sub(self.stops.len() as u32)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ClearError {
    #[error("permit not found")]
    NoPermit,
    #[error("only an output checker may clear stops")]
    NotAChecker,
    #[error("a checker named on the permit cannot clear its stops")]
    Conflicted,
    #[error("a reason is a code of 1 to 32 lower-case letters, digits or '_'")]
    BadReason,
    #[error("internal error")]
    Internal,
}

/// The permit's uncleared stops.
pub async fn stops(instance: &Instance, settings: &AnalysisSettings, permit_id: i64) -> Result<Stops, AnalysisError> {
    let rows = instance.store.open_stops(permit_id).await.map_err(|_| AnalysisError::Internal)?;
    let stops = rows
        .into_iter()
        .map(|r| Stop { user_id: r.user_id, kind: r.kind, reason: r.reason, code_sha256: r.code_sha256, started_at: r.started_at })
        .collect();
    Ok(Stops { permit_id, stops, max_stops: settings.max_stops })
}

/// Permits with uncleared stops and how many each, for the output checkers' queue.
pub async fn permits_with_stops(instance: &Instance) -> Result<Vec<(i64, u32)>, AnalysisError> {
    let rows = instance.store.permits_with_stops().await.map_err(|_| AnalysisError::Internal)?;
    Ok(rows.into_iter().map(|(p, n)| (p, n.clamp(0, i64::from(u32::MAX)) as u32)).collect())
}

/// An output checker clears a permit's stops, with a reason code (e.g. `reviewed`,
/// `legitimate_load`); returns how many were cleared. Logged as `permit.stops_cleared`.
pub async fn clear_stops(instance: &Instance, checker_user_id: i64, permit_id: i64, reason: &str) -> Result<u64, ClearError> {
    if !crate::jobs::valid_reason(reason) {
        return Err(ClearError::BadReason);
    }
    let store = &instance.store;
    let roles = store.active_roles(checker_user_id).await.map_err(|_| ClearError::Internal)?;
    if !roles.contains(&Role::OutputChecker) {
        return Err(ClearError::NotAChecker);
    }
    let permit = store.permit(permit_id).await.map_err(|_| ClearError::Internal)?.ok_or(ClearError::NoPermit)?;
    let policy: PermitPolicy = serde_json::from_str(&permit.policy).map_err(|_| ClearError::Internal)?;
    if policy.names(checker_user_id) {
        return Err(ClearError::Conflicted);
    }
    let now = time::OffsetDateTime::now_utc();
    let cleared = store.clear_stops(permit_id, checker_user_id, now.unix_timestamp()).await.map_err(|_| ClearError::Internal)?;
    let event = AuditEvent::new(format!("user:{checker_user_id}"), now, "permit.stops_cleared", format!("permit:{permit_id}"))
        .with_data(serde_json::json!({"cleared": cleared, "reason": reason}));
    instance.record(&event).map_err(|_| ClearError::Internal)?;
    Ok(cleared)
}

/// A place taken in a permit's budget for one run.
pub(crate) struct Place(i64);

/// Takes a place for a run, or refuses it with [`AnalysisError::StopsSpent`].
pub(crate) async fn take_place(instance: &Instance, settings: &AnalysisSettings, run: &niji_store::NewRun<'_>) -> Result<Place, AnalysisError> {
    match instance.store.reserve_run(run, settings.max_stops).await {
        Ok(Some(id)) => Ok(Place(id)),
        Ok(None) => Err(AnalysisError::StopsSpent),
        Err(_) => Err(AnalysisError::Internal),
    }
}

/// What stopped a run, if a limit did: the sandbox's errors while running. Static refusals
/// (`NotAllowed`, `Parse`, …) are not stops: they do not depend on the rows.
pub(crate) fn stop_reason(e: &SandboxError) -> Option<&'static str> {
    match e {
        SandboxError::Timeout => Some("timeout"),
        SandboxError::MemoryLimit => Some("memory_limit"),
        SandboxError::Execution => Some("execution"),
        SandboxError::Internal => Some("internal"),
        SandboxError::Parse
        | SandboxError::UnknownName
        | SandboxError::NotAllowed(_)
        | SandboxError::NotAggregate
        | SandboxError::PersonIdInOutput
        | SandboxError::TooLong => None,
    }
}

/// Ends a run: a stop keeps the place, anything else gives it back.
pub(crate) async fn end_run(instance: &Instance, place: Place, stop: Option<&str>) -> Result<(), AnalysisError> {
    instance.store.end_run(place.0, stop).await.map_err(|_| AnalysisError::Internal)
}
