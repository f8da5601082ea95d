//! A permit's interactive aggregate query on real data (issue 5): the permit's granted tables are
//! read from the encrypted lake (latest committed version of each dataset), handed to
//! `niji-sandbox` with a secret derived from the permit's own data key, and the result goes
//! through `niji-sdc` with the permit's output preset before anything is shown. Every query —
//! refused or answered — is logged with the SQL's hash, never its text.
//!
//! Invariants: raw results never leave this crate (only the checked table does); a closed permit
//! (revoked, expired, superseded: its key destroyed) can never run, and its key is never
//! re-created here; errors are fixed texts.

pub mod dashboard;
pub mod dummy;
pub mod jobs;
pub mod pace;
mod permit;
pub mod stops;

use niji_core::{AuditEvent, AuditSink};
use niji_instance::Instance;
pub use niji_sandbox::Limits;
use niji_sandbox::Workspace;
use niji_sdc::{Preset, Rules, Shown};
pub use pace::{AnswerTime, RunQueue};
use sha2::{Digest, Sha256};
pub use stops::AnalysisSettings;

/// What the researcher sees: the checked table.
#[derive(Debug, Clone)]
pub struct CheckedOutput {
    pub dimensions: Vec<String>,
    pub measures: Vec<String>,
    pub rows: Vec<(Vec<String>, Vec<Shown>)>,
    pub suppressed: usize,
    pub preset: String,
    /// The run passed its slot and answered at the time limit and a grace, spending one of the permit's
    /// stops ([`pace`]).
    pub late: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum AnalysisError {
    #[error("permit not found")]
    NoPermit,
    #[error("the permit is not active")]
    Closed,
    #[error("the account is not named on the permit")]
    NotNamed,
    #[error("the permit's track does not allow queries on real data")]
    WrongTrack,
    #[error("a granted dataset has no committed version")]
    NoData,
    #[error("the query was refused: {0}")]
    Refused(niji_sandbox::SandboxError),
    /// The run on the real data was stopped by this (a limit, a failure or a refusal while
    /// running): it spent one of the permit's stops.
    #[error("the run on the real data was stopped ({0}); this spent one of the permit's stops")]
    Stopped(niji_sandbox::SandboxError),
    #[error("the output could not be checked")]
    Unchecked,
    /// The output's table has more dimensions (text columns) than the permit's output rules allow
    /// (the NDB preset: three); judged before the run.
    #[error("the output has more dimensions than the output rules allow")]
    TooManyDimensions,
    #[error("the answer would differ from an earlier release by too few persons (differencing); this spent one of the permit's stops")]
    Differencing,
    #[error("limits stopped too many of the permit's runs; an output checker must clear them first")]
    StopsSpent,
    #[error("other runs of the permit on real data are in progress; try again when they end")]
    RunsBusy,
    #[error("internal error")]
    Internal,
}

/// Runs `sql` for `user_id` under permit `permit_id` and returns the checked output.
///
/// The consent registry is asked at run time: persons whose choices exclude this permit's use
/// (purpose, recipients, diseases) are dropped from every table before the query runs. A query
/// that reached the data is recorded as an analysis run with the datasets it read and the
/// registry version it applied (the receipt), and its log entry names the run.
///
/// The query is first checked over the schemas alone (empty tables). A run on the real data that
/// is then stopped (time, memory, a failure or refusal while running: [`AnalysisError::Stopped`])
/// or refused by differencing spends one of the permit's stops (see [`stops`]); with none left,
/// the query is refused with [`AnalysisError::StopsSpent`] before it reads anything.
pub async fn query_real(instance: &Instance, user_id: i64, permit_id: i64, sql: &str) -> Result<CheckedOutput, AnalysisError> {
    query_real_with(instance, &AnalysisSettings::default(), user_id, permit_id, sql).await
}

/// [`query_real`] with other limits.
pub async fn query_real_with(
    instance: &Instance,
    settings: &AnalysisSettings,
    user_id: i64,
    permit_id: i64,
    sql: &str,
) -> Result<CheckedOutput, AnalysisError> {
    let started = time::OffsetDateTime::now_utc();
    let mut receipt = None;
    let sql_sha256 = hex::encode(Sha256::digest(sql.as_bytes()));
    let result = run(instance, settings, user_id, permit_id, (sql, &sql_sha256), started, &mut receipt).await;
    let outcome = match &result {
        Ok(out) => serde_json::json!({"outcome": "answered", "rows": out.rows.len(), "suppressed": out.suppressed, "preset": out.preset}),
        Err(e) => serde_json::json!({"outcome": "refused", "reason": e.to_string()}),
    };
    let mut data = outcome;
    data["sql_sha256"] = sql_sha256.clone().into();
    let mut run_id = None;
    if let Some(r) = receipt {
        let r: Receipt = r;
        let datasets = serde_json::to_string(&r.datasets).map_err(|_| AnalysisError::Internal)?;
        let id = instance
            .store
            .insert_analysis_run(&niji_store::NewAnalysisRun {
                permit_id,
                user_id,
                kind: "query",
                code_sha256: &sql_sha256,
                outcome: if result.is_ok() { "released" } else { "refused" },
                registry_version: r.registry_version,
                excluded_persons: r.excluded as i64,
                datasets: &datasets,
                started_at: started.unix_timestamp(),
                finished_at: time::OffsetDateTime::now_utc().unix_timestamp(),
            })
            .await
            .map_err(|_| AnalysisError::Internal)?;
        data["run"] = id.into();
        data["registry_version"] = r.registry_version.into();
        run_id = Some(id);
    }
    let event =
        AuditEvent::new(format!("user:{user_id}"), time::OffsetDateTime::now_utc(), "analysis.query", format!("permit:{permit_id}")).with_data(data);
    let index = instance.record(&event).map_err(|_| AnalysisError::Internal)?;
    if let Some(id) = run_id {
        instance.store.set_analysis_run_log_index(id, index as i64).await.map_err(|_| AnalysisError::Internal)?;
    }
    result
}

/// What a run that reached the data applied.
pub(crate) struct Receipt {
    pub(crate) datasets: Vec<niji_registry::RunDataset>,
    pub(crate) registry_version: i64,
    pub(crate) excluded: usize,
}

async fn run(
    instance: &Instance,
    settings: &AnalysisSettings,
    user_id: i64,
    permit_id: i64,
    (sql, sql_sha256): (&str, &str),
    started: time::OffsetDateTime,
    receipt: &mut Option<Receipt>,
) -> Result<CheckedOutput, AnalysisError> {
    let context = permit::permit_context(instance, user_id, permit_id).await?;
    // The static check, over the schemas alone (empty tables): its refusals tell nothing about the
    // rows, and nothing is read or spent.
    let empty = permit::empty_workspace(&context, settings.limits)?;
    let shape = empty.run(sql).await.map_err(AnalysisError::Refused)?;
    if permit::shape_refusal(&shape, &context.policy).is_some() {
        return Err(AnalysisError::TooManyDimensions);
    }
    let scans = empty.scans(sql).await.map_err(AnalysisError::Refused)?;
    drop(empty);
    // The run's turn first (waiting holds no place of the permit's budget), then a place. The
    // turn is held until the answer: given back when the run ended, it would let the next run
    // start at a time that tells this one's.
    let _turn = settings.queue.turn().await;
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let new_run = niji_store::NewRun { permit_id, user_id, kind: "query", code_sha256: sql_sha256, started_at: now };
    let place = stops::take_place(instance, settings, &new_run).await?;
    // The answer comes at a time fixed now, before anything is read, from the committed sizes of
    // the tables it reads and scans ([`pace`]); whatever follows is held until then.
    let result = async {
        let committed = permit::committed_rows(instance, &context.policy).await?;
        let slot = settings.answer.slot(committed.of_run(&scans), settings.limits.timeout);
        Ok::<_, AnalysisError>((pace::Pace::start(slot, settings.limits.timeout), committed.versions))
    }
    .await;
    let (pace, versions) = match result {
        Ok(x) => x,
        Err(e) => {
            stops::end_run(instance, place, None).await?;
            return Err(e);
        }
    };
    let mut stop = None;
    let result = run_in_place(instance, settings, (permit_id, &versions), context, (sql, pace.deadline()), started, receipt, &mut stop).await;
    if pace.answer().await && stop.is_none() {
        stop = Some(pace::LATE);
    }
    stops::end_run(instance, place, stop).await?;
    result.map(|out| CheckedOutput { late: stop == Some(pace::LATE), ..out })
}

async fn run_in_place(
    instance: &Instance,
    settings: &AnalysisSettings,
    (permit_id, versions): (i64, &[(String, i64)]),
    context: permit::PermitContext,
    (sql, deadline): (&str, std::time::Instant),
    started: time::OffsetDateTime,
    receipt: &mut Option<Receipt>,
    stop: &mut Option<&'static str>,
) -> Result<CheckedOutput, AnalysisError> {
    let permit::PermitContext { policy, secret } = context;
    // The granted tables, from each dataset's latest committed version.
    // and the consent registry, asked now: who this use must exclude.
    let (tables, excluded, read) = permit::read_real(instance, &policy, Some(versions), started).await?;
    let cohort = jobs::cohort_key(sql, Some((policy.version, &read)));
    *receipt = Some(read);
    let workspace = Workspace::open(tables, &policy, secret, &excluded, settings.limits).map_err(AnalysisError::Refused)?;
    drop(excluded);
    answer(instance, (permit_id, &cohort), &policy, &workspace, (sql, deadline), stop).await
}

/// Runs the query on the real data and checks its output.
async fn answer(
    instance: &Instance,
    (permit_id, cohort): (i64, &str),
    policy: &niji_review::PermitPolicy,
    workspace: &Workspace,
    (sql, deadline): (&str, std::time::Instant),
    stop: &mut Option<&'static str>,
) -> Result<CheckedOutput, AnalysisError> {
    // Only what the run on the real data says can be a stop: reading, opening and output
    // checking do not depend on the rows the query selects.
    let ran = workspace.run_until(sql, deadline).await;
    *stop = ran.as_ref().err().and_then(stops::stop_reason);
    let result = ran.map_err(|e| if stop.is_some() { AnalysisError::Stopped(e) } else { AnalysisError::Refused(e) })?;

    // Output checking: text columns are dimensions, numeric columns measures; every cell counts
    // the persons behind its row.
    let table = permit::to_table(&result);
    let dimensions = table.dimensions.clone();
    let measures = table.measures.clone();
    let preset: Preset = policy.output_preset.parse().unwrap_or(Preset::Ndb);
    // Differencing: the answer is compared with every earlier release of the permit's project
    // (jobs' releases and earlier answers, amended versions' too), by the values of its keys; under
    // the lock, until the answer is stored, so that two answers at once see each other.
    let comparing = jobs::COMPARING.lock().await;
    let earlier = jobs::earlier_releases(instance, permit_id).await?;
    let checked = jobs::check_output(&table, &result, &Rules::preset(preset), &earlier).map_err(|_| AnalysisError::Unchecked)?;
    if !jobs::refused_by(&checked, &table).is_empty() {
        *stop = Some(stops::DIFFERENCING);
        return Err(AnalysisError::Differencing);
    }
    // Rules on the whole table (e.g. the NDB preset's three-axis limit) refuse it, as for jobs.
    if !checked.table_reasons.is_empty() {
        return Err(AnalysisError::Unchecked);
    }
    let released = checked.released_table(&table);
    let suppressed = released.rows.iter().flat_map(|r| &r.values).filter(|v| !matches!(v, Shown::Value(_))).count();
    // What later differencing compares with (never shown).
    let published = jobs::published_persons(&table, Some(&checked)).to_string();
    instance
        .store
        .insert_query_output(permit_id, cohort, table.dimensions.len() as i64, &published, time::OffsetDateTime::now_utc().unix_timestamp())
        .await
        .map_err(|_| AnalysisError::Internal)?;
    drop(comparing);
    Ok(CheckedOutput {
        dimensions,
        measures: measures.into_iter().map(|m| m.name).collect(),
        rows: released.rows.into_iter().map(|r| (r.keys, r.values)).collect(),
        suppressed,
        preset: preset.name().to_string(),
        late: false,
    })
}
