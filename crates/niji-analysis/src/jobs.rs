//! Jobs and their release (issue 5): a job is one or more named SQL outputs written against the
//! dummy data, run on the real data and checked; two different output checkers then approve it
//! before its checked tables leave as a release (a CSV file and a metadata JSON whose hashes go
//! into the transparency log).
//!
//! Submitting ([`submit_job`]):
//! 1. the permit and the researcher are checked as for [`crate::query_real`];
//! 2. static check: every output is planned and checked by the sandbox over the granted tables'
//!    schemas with no rows; if one is refused, nothing reads the real data and the job is refused;
//! 3. the granted tables are read from the lake and the consent registry is asked once for the
//!    whole job (one receipt: an `analysis_runs` row of kind `job`);
//! 4. each output runs in the sandbox (memory and time limits), is checked with the permit's
//!    output preset and compared with every earlier release and answer of the permit and its
//!    other versions, and with the job's
//!    earlier outputs (differencing, `niji-sdc`): an output whose difference with one of them
//!    isolates fewer persons than the threshold is refused with that release named;
//! 5. the job ends `awaiting_review` (every output passed) or `refused` (`failed` when it could
//!    not run: no data, an internal error, or the server running it in the background stopped,
//!    [`recover_interrupted`]).
//!
//! Signing off ([`sign_off`]): an account with the output-checker role that neither submitted the
//! job nor is named on the permit approves or rejects it (a reason code, never free text). A
//! rejection refuses the job; the second approval by a different checker releases it: the outputs
//! are compared once more with the releases made since the job ran, then the CSV (UTF-8 with a
//! BOM, a header, one `output` column then every output's columns) and the metadata JSON are
//! written to `<instance>/releases/<release id>/` and their SHA-256 hashes logged
//! (`release.published`). [`release_files`] hands them to researchers named on the permit and to
//! operators, each download logged.
//!
//! Invariants: raw results are never stored or shown, only checked tables (suppressed cells
//! marked); the store keeps the SQL's hash, never its text; log entries carry ids, codes and
//! hashes only; errors are fixed texts.

use std::collections::HashSet;
use std::path::PathBuf;

use niji_core::{AuditEvent, AuditSink, Role};
use niji_instance::Instance;
use niji_review::PermitPolicy;
use niji_sandbox::{SandboxError, Workspace};
use niji_sdc::{Cell, CellRef, Checked, Measure, Outcome, Preset, Reason, Release, ReleaseRow, Rules, Shown, Table};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use crate::permit::{permit_context, to_table, PermitContext};
use crate::{AnalysisError, AnalysisSettings};

/// The most outputs one job may have.
pub const MAX_OUTPUTS: usize = 20;
/// Different approving checkers a release needs.
pub const APPROVALS_NEEDED: usize = 2;
/// The refusal of an output not run because the permit has no stop left (see [`crate::stops`]).
pub const STOPS_SPENT: &str = "stops_spent";
/// The refusal of an output not run because other runs of the permit held the places left.
pub const RUNS_BUSY: &str = "runs_busy";
/// What a suppressed cell shows in a release's CSV.
pub const SUPPRESSED: &str = "suppressed";

#[derive(Debug, thiserror::Error)]
pub enum JobError {
    #[error(transparent)]
    Analysis(#[from] AnalysisError),
    #[error("a job needs 1 to 20 outputs with distinct names of 1 to 64 letters, digits, '_' or '-'")]
    BadOutputs,
    #[error("job not found")]
    NoJob,
    #[error("release not found")]
    NoRelease,
    #[error("this needs the output checker role")]
    NotAChecker,
    #[error("the submitter and the researchers named on the permit cannot check its outputs")]
    Conflicted,
    #[error("the job is not awaiting review")]
    NotAwaiting,
    #[error("this checker has already signed off this job")]
    AlreadySigned,
    #[error("the reason must be a code of 1 to 32 lower-case letters, digits or '_'")]
    BadReason,
    #[error("only researchers named on the permit and operators may download its releases")]
    NotAllowed,
    #[error("the release's files are missing or do not match their published hashes")]
    Tampered,
    #[error("the permit is not active")]
    PermitClosed,
    #[error("internal error")]
    Internal,
}

/// A job as its researcher and the output checkers see it.
#[derive(Debug, Clone)]
pub struct JobView {
    pub id: i64,
    pub permit_id: i64,
    pub submitted_by: i64,
    /// `checking`, `awaiting_review`, `released`, `refused` or `failed`.
    pub status: String,
    pub reason: Option<String>,
    pub created_at: i64,
    pub outputs: Vec<OutputView>,
    /// Checker ids with their verdict (`approve` / `reject`) and reason code.
    pub signoffs: Vec<(i64, String, String)>,
    pub release_id: Option<i64>,
}

/// One output of a job.
#[derive(Debug, Clone)]
pub struct OutputView {
    pub name: String,
    /// `passed`, `refused` or `not_run`.
    pub status: String,
    /// A fixed code when refused (a sandbox refusal, `differencing`, `too_many_dimensions`…).
    pub refusal: Option<String>,
    /// The checked table (JSON: dimensions, measures, rows of keys and values, a suppressed cell
    /// being the string `suppressed`); `None` when it did not run.
    pub checked_table: Option<Value>,
    /// The cells not released as they are, with reason codes and texts (for checkers).
    pub verdicts: Option<Value>,
    /// The releases compared and the one that refused the output, if any.
    pub differencing: Option<Value>,
}

/// What a sign-off did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SignOff {
    /// Recorded; the job still waits for approvals (how many it has).
    Recorded { approvals: usize },
    /// The second approval: the job was released.
    Released { release_id: i64 },
    /// Rejected by this checker, or refused by differencing with a release made meanwhile.
    Refused,
}

/// A release's files, for download.
#[derive(Debug, Clone)]
pub struct ReleaseFiles {
    pub file_name: String,
    pub csv: Vec<u8>,
    pub metadata: Vec<u8>,
    pub csv_sha256: String,
    pub metadata_sha256: String,
}

fn now_ts() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp()
}

fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

fn log(instance: &Instance, actor: String, action: &str, object: String, data: Value) -> Result<u64, JobError> {
    let event = AuditEvent::new(actor, time::OffsetDateTime::now_utc(), action, object).with_data(data);
    instance.record(&event).map_err(|_| JobError::Internal)
}

fn internal<E>(_: E) -> JobError {
    JobError::Internal
}

/// The folder of a release's files.
pub fn release_dir(instance: &Instance, release_id: i64) -> PathBuf {
    instance.paths.root.join("releases").join(release_id.to_string())
}

// -- submitting -------------------------------------------------------------------------------

/// A stable code for a sandbox refusal (`parse`, `not_aggregate`, `person_id_in_output`, a
/// [`niji_sandbox::Refusal`] code…): what a job output's `refusal` holds and what the server's API
/// answers, never DataFusion's text.
pub fn sandbox_code(e: &SandboxError) -> &'static str {
    match e {
        SandboxError::Parse => "parse",
        SandboxError::UnknownName => "unknown_name",
        SandboxError::NotAllowed(r) => r.code(),
        SandboxError::NotAggregate => "not_aggregate",
        SandboxError::PersonIdInOutput => "person_id_in_output",
        SandboxError::TooLong => "too_long",
        SandboxError::Timeout => "timeout",
        SandboxError::MemoryLimit => "memory_limit",
        SandboxError::Execution => "execution",
        SandboxError::Internal => "internal",
    }
}

fn valid_name(name: &str) -> bool {
    (1..=64).contains(&name.len()) && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

/// The cohort key of an output: the hash of its SQL with whitespace collapsed and ASCII letters
/// lower-cased, and of what decided which persons its rows could hold (`reached`: the permit's
/// version, each dataset version read and the consent registry's version applied).
///
/// Stored with each output and answer as a record of what it was computed over (differencing
/// compares every earlier release whatever its key: the same SQL after an amended permit, a new
/// dataset version or an opt-out holds other persons). An output that never ran (`reached` is
/// `None`) is keyed by its SQL alone; it is never released.
pub(crate) fn cohort_key(sql: &str, reached: Option<(u32, &crate::Receipt)>) -> String {
    let normal = sql.split_whitespace().collect::<Vec<_>>().join(" ").to_ascii_lowercase();
    let mut key = normal.trim_end_matches(';').trim().to_owned();
    if let Some((permit_version, receipt)) = reached {
        let mut datasets: Vec<_> = receipt.datasets.iter().map(|d| (d.dataset.as_str(), d.version)).collect();
        datasets.sort_unstable();
        // After a NUL, which no SQL text the workspace accepts holds.
        key.push_str(&format!("\0permit-version={permit_version};registry={};", receipt.registry_version));
        for (dataset, version) in datasets {
            key.push_str(&format!("{}={version};", dataset.len()));
            key.push_str(dataset);
        }
    }
    sha256_hex(key.as_bytes())
}

/// An output as checked, before it is stored.
struct Outcome1 {
    name: String,
    sql_sha256: String,
    cohort_key: String,
    status: &'static str,
    refusal: Option<String>,
    checked_table: Option<String>,
    verdicts: Option<String>,
    differencing: Option<String>,
    published_persons: Option<String>,
}

impl Outcome1 {
    fn new(name: &str, sql: &str, status: &'static str, refusal: Option<String>) -> Self {
        Outcome1 {
            name: name.to_owned(),
            sql_sha256: sha256_hex(sql.as_bytes()),
            cohort_key: cohort_key(sql, None),
            status,
            refusal,
            checked_table: None,
            verdicts: None,
            differencing: None,
            published_persons: None,
        }
    }

    fn as_new(&self) -> niji_store::NewJobOutput<'_> {
        niji_store::NewJobOutput {
            name: &self.name,
            sql_sha256: &self.sql_sha256,
            cohort_key: &self.cohort_key,
            status: self.status,
            refusal: self.refusal.as_deref(),
            checked_table: self.checked_table.as_deref(),
            verdicts: self.verdicts.as_deref(),
            differencing: self.differencing.as_deref(),
            published_persons: self.published_persons.as_deref(),
        }
    }
}

/// Submits a job: `outputs` are `(name, sql)` pairs. Returns the job as stored (its status says
/// whether it awaits review or was refused). Errors before the job exists (outputs malformed, the
/// permit or researcher refused) are returned as errors and logged.
///
/// Each output's run takes a place in the permit's budget of stops (see [`crate::stops`]): an
/// output whose run on the real data is stopped (any error after the static check passed, but
/// the join-size and group bounds) spends it, and once none is left the outputs not yet run are
/// refused with `stops_spent` (`runs_busy` when runs in progress hold the places left).
pub async fn submit_job(instance: &Instance, user_id: i64, permit_id: i64, outputs: &[(String, String)]) -> Result<JobView, JobError> {
    submit_job_with(instance, &AnalysisSettings::default(), user_id, permit_id, outputs).await
}

/// [`submit_job`] with other limits.
pub async fn submit_job_with(
    instance: &Instance,
    settings: &AnalysisSettings,
    user_id: i64,
    permit_id: i64,
    outputs: &[(String, String)],
) -> Result<JobView, JobError> {
    let started = start_job(instance, user_id, permit_id, outputs).await?;
    run_started(instance, settings, started).await
}

/// A job recorded (status `checking`) whose outputs have not run yet: [`run_started`] runs them.
pub struct StartedJob {
    job_id: i64,
    user_id: i64,
    permit_id: i64,
    ctx: PermitContext,
    outputs: Vec<(String, String)>,
    code_sha256: String,
}

impl StartedJob {
    pub fn job_id(&self) -> i64 {
        self.job_id
    }
}

/// Jobs left `checking` by a process that ended mid-run (a server runs jobs in the background)
/// are finished as `failed` (`interrupted`), each logged; nothing of theirs was released. The
/// runs on real data that process had in progress (queries and jobs' outputs) end as stops
/// `interrupted`, which an output checker may clear at once. To be called when a server starts,
/// before it serves: the transparency log's lock, held by every process that opens the instance,
/// keeps any other from running meanwhile. Returns how many jobs.
pub async fn recover_interrupted(instance: &Instance) -> Result<usize, JobError> {
    let store = &instance.store;
    let mut n = 0;
    for job in store.jobs_in("checking").await.map_err(internal)? {
        fail_checking(instance, job.id, job.permit_id, "system:startup", "interrupted").await?;
        n += 1;
    }
    store.end_interrupted_runs(now_ts()).await.map_err(internal)?;
    Ok(n)
}

/// Finishes a job still `checking` as `failed` with `reason`, logged; `false` when it had
/// finished already.
async fn fail_checking(instance: &Instance, job_id: i64, permit_id: i64, actor: &str, reason: &str) -> Result<bool, JobError> {
    let store = &instance.store;
    match store.finish_job(job_id, "failed", Some(reason), None, &[], now_ts()).await {
        Ok(()) => {}
        Err(niji_store::StoreError::NotFound { .. }) => return Ok(false),
        Err(e) => return Err(internal(e)),
    }
    let data = json!({"job": job_id, "outcome": "failed", "reason": reason});
    let index = log(instance, actor.to_owned(), "job.submitted", format!("permit:{permit_id}"), data)?;
    store.set_job_log_index(job_id, index as i64).await.map_err(internal)?;
    Ok(true)
}

/// Finishes a started job whose run could not record its end (an error, or its task panicked)
/// as `failed` (`internal`), if it is still `checking`. For the server's background tasks.
pub async fn fail_unfinished(instance: &Instance, job_id: i64) -> Result<bool, JobError> {
    let job = instance.store.job(job_id).await.map_err(internal)?.ok_or(JobError::Internal)?;
    fail_checking(instance, job_id, job.permit_id, "system:jobs", "internal").await
}

/// The first half of [`submit_job`]: checks the outputs' form and the permit and researcher,
/// and records the job (`checking`), without running anything; errors before the job exists are
/// returned (and logged) as by [`submit_job`]. A server answers with the job at once and runs
/// it in the background with [`run_started`].
pub async fn start_job(instance: &Instance, user_id: i64, permit_id: i64, outputs: &[(String, String)]) -> Result<StartedJob, JobError> {
    let actor = format!("user:{user_id}");
    let mut names = HashSet::new();
    if outputs.is_empty() || outputs.len() > MAX_OUTPUTS || !outputs.iter().all(|(n, _)| valid_name(n) && names.insert(n.as_str())) {
        return Err(JobError::BadOutputs);
    }
    let mut code = Sha256::new();
    for (name, sql) in outputs {
        code.update(name.as_bytes());
        code.update([0]);
        code.update(sql.as_bytes());
        code.update([0]);
    }
    let code_sha256 = hex::encode(code.finalize());
    let ctx = match permit_context(instance, user_id, permit_id).await {
        Ok(ctx) => ctx,
        Err(e) => {
            log(
                instance,
                actor,
                "job.submitted",
                format!("permit:{permit_id}"),
                json!({"outcome": "refused", "reason": e.to_string(), "code_sha256": code_sha256}),
            )?;
            return Err(e.into());
        }
    };
    let job_id = instance.store.insert_job(permit_id, user_id, &code_sha256, now_ts()).await.map_err(internal)?;
    Ok(StartedJob { job_id, user_id, permit_id, ctx, outputs: outputs.to_vec(), code_sha256 })
}

/// The second half of [`submit_job`]: runs a started job's outputs and records how it ended.
pub async fn run_started(instance: &Instance, settings: &AnalysisSettings, started: StartedJob) -> Result<JobView, JobError> {
    let StartedJob { job_id, user_id, permit_id, ctx, outputs, code_sha256 } = started;
    let outputs = &outputs[..];
    let actor = format!("user:{user_id}");
    let store = &instance.store;
    match run_job(instance, settings, (user_id, permit_id, job_id), &ctx, outputs).await {
        Ok(ran) => {
            let (status, reason) = match ran.outputs.iter().find(|o| o.status == "refused") {
                Some(o) => ("refused", o.refusal.clone()),
                None => ("awaiting_review", None),
            };
            let mut run_id = None;
            if let Some(r) = &ran.receipt {
                let datasets = serde_json::to_string(&r.reached.datasets).map_err(internal)?;
                let id = store
                    .insert_analysis_run(&niji_store::NewAnalysisRun {
                        permit_id,
                        user_id,
                        kind: "job",
                        code_sha256: &code_sha256,
                        outcome: if status == "refused" { "refused" } else { "pending" },
                        registry_version: r.reached.registry_version,
                        excluded_persons: r.reached.excluded as i64,
                        datasets: &datasets,
                        started_at: r.started,
                        finished_at: now_ts(),
                    })
                    .await
                    .map_err(internal)?;
                run_id = Some(id);
            }
            let new: Vec<niji_store::NewJobOutput> = ran.outputs.iter().map(Outcome1::as_new).collect();
            store.finish_job(job_id, status, reason.as_deref(), run_id, &new, now_ts()).await.map_err(internal)?;
            let refused: Vec<Value> =
                ran.outputs.iter().filter(|o| o.status == "refused").map(|o| json!({"output": o.name, "reason": o.refusal})).collect();
            let mut data = json!({
                "job": job_id,
                "outcome": status,
                "outputs": outputs.len(),
                "code_sha256": code_sha256,
                "refused": refused,
            });
            if let (Some(id), Some(r)) = (run_id, &ran.receipt) {
                data["run"] = id.into();
                data["registry_version"] = r.reached.registry_version.into();
            }
            let index = log(instance, actor, "job.submitted", format!("permit:{permit_id}"), data)?;
            store.set_job_log_index(job_id, index as i64).await.map_err(internal)?;
            if let Some(id) = run_id {
                store.set_analysis_run_log_index(id, index as i64).await.map_err(internal)?;
            }
        }
        Err(e) => {
            // An internal failure (or missing data): the job failed, nothing was released.
            let code = match &e {
                AnalysisError::NoData => "no_data",
                _ => "internal",
            };
            store.finish_job(job_id, "failed", Some(code), None, &[], now_ts()).await.map_err(internal)?;
            let index =
                log(instance, actor, "job.submitted", format!("permit:{permit_id}"), json!({"job": job_id, "outcome": "failed", "reason": code}))?;
            store.set_job_log_index(job_id, index as i64).await.map_err(internal)?;
        }
    }
    job_view(instance, job_id).await
}

/// A job's receipt: what its run applied, and when it started (Unix seconds).
struct JobReceipt {
    reached: crate::Receipt,
    started: i64,
}

struct Ran {
    outputs: Vec<Outcome1>,
    /// `None` when nothing reached the data (the static check refused an output).
    receipt: Option<JobReceipt>,
}

async fn run_job(
    instance: &Instance,
    settings: &AnalysisSettings,
    (user_id, permit_id, job_id): (i64, i64, i64),
    ctx: &PermitContext,
    outputs: &[(String, String)],
) -> Result<Ran, AnalysisError> {
    let limits = settings.limits;
    // 1. Static check over the schemas alone: nothing reads the real data unless all pass.
    let empty = crate::permit::empty_workspace(ctx, limits)?;
    let mut statics = Vec::with_capacity(outputs.len());
    let mut scans = Vec::with_capacity(outputs.len());
    for (_, sql) in outputs {
        let checked = match empty.run(sql).await {
            // A whole-table rule its shape breaks (too many dimensions) refuses it here too.
            Ok(shape) => match crate::permit::shape_refusal(&shape, &ctx.policy) {
                Some(code) => Err(code),
                None => empty.scans(sql).await.map(|s| scans.push(s)).map_err(|e| sandbox_code(&e)),
            },
            Err(e) => Err(sandbox_code(&e)),
        };
        statics.push(checked.err());
    }
    drop(empty);
    if statics.iter().any(Option::is_some) {
        let outputs = outputs
            .iter()
            .zip(&statics)
            .map(|((name, sql), code)| match code {
                Some(code) => Outcome1::new(name, sql, "refused", Some((*code).to_owned())),
                None => Outcome1::new(name, sql, "not_run", None),
            })
            .collect();
        return Ok(Ran { outputs, receipt: None });
    }

    // With no stop left, nothing reads the real data (each output still takes its own place below,
    // since concurrent runs may take the last ones meanwhile).
    match crate::stops::check_budget(instance, settings, permit_id).await {
        Ok(()) => {}
        Err(AnalysisError::StopsSpent) => {
            let outputs = outputs.iter().map(|(name, sql)| Outcome1::new(name, sql, "refused", Some(STOPS_SPENT.to_owned()))).collect();
            return Ok(Ran { outputs, receipt: None });
        }
        Err(e) => return Err(e),
    }

    // 2. The instance's turn (for the whole job: its tables stay in memory), the real data, and
    // the consent registry asked once for the whole job.
    let _turn = settings.queue.turn().await;
    // Each output answers at a time fixed before it runs ([`crate::pace`]); the first one's slot
    // starts now and covers reading and opening the tables too.
    let committed = crate::permit::committed_rows(instance, &ctx.policy).await?;
    let slot = |rows: u64| settings.answer.slot(rows, limits.timeout);
    let first = crate::pace::Pace::start(slot(committed.of_run(&scans[0])), limits.timeout);
    let opened = async {
        let started = time::OffsetDateTime::now_utc();
        let (tables, excluded, reached) = crate::permit::read_real(instance, &ctx.policy, Some(&committed.versions), started).await?;
        let receipt = JobReceipt { reached, started: started.unix_timestamp() };
        let workspace = Workspace::open(tables, &ctx.policy, ctx.secret, &excluded, limits).map_err(AnalysisError::Refused)?;
        drop(excluded);
        let earlier = earlier_releases(instance, permit_id).await?;
        Ok::<_, AnalysisError>((receipt, workspace, earlier))
    }
    .await;
    // Reading and opening take times that depend on the data: whatever ends the first output's
    // slot early is held until it ends.
    let (receipt, workspace, mut earlier) = match opened {
        Ok(opened) => opened,
        Err(e) => {
            first.answer().await;
            return Err(e);
        }
    };
    let mut first_pace = Some(first);

    // 3. Each output: run, check, compare with the permit's releases and the job's earlier outputs.
    let preset: Preset = ctx.policy.output_preset.parse().unwrap_or(Preset::Ndb);
    let rules = Rules::preset(preset);
    let mut done = Vec::with_capacity(outputs.len());
    for ((name, sql), scans) in outputs.iter().zip(&scans) {
        let covers_reading = first_pace.is_some();
        let pace = first_pace.take().unwrap_or_else(|| crate::pace::Pace::start(slot(committed.of_scans(scans)), limits.timeout));
        let new_run = niji_store::NewRun { permit_id, user_id, kind: "job", code_sha256: &sha256_hex(sql.as_bytes()), started_at: now_ts() };
        let place = match crate::stops::take_place(instance, settings, &new_run).await {
            Ok(place) => place,
            Err(e) => {
                if covers_reading {
                    pace.answer().await;
                }
                match e {
                    AnalysisError::StopsSpent => done.push(Outcome1::new(name, sql, "refused", Some(STOPS_SPENT.to_owned()))),
                    AnalysisError::RunsBusy => done.push(Outcome1::new(name, sql, "refused", Some(RUNS_BUSY.to_owned()))),
                    e => return Err(e),
                }
                continue;
            }
        };
        let ran = workspace.run_until(sql, pace.deadline()).await;
        let (out, mut stop) = match ran {
            Err(e) => {
                let stop = crate::stops::stop_reason(&e);
                (Outcome1::new(name, sql, "refused", Some(sandbox_code(&e).to_owned())), stop)
            }
            Ok(result) => {
                let cohort = cohort_key(sql, Some((ctx.policy.version, &receipt.reached)));
                let out = check_one((name, sql), (job_id, cohort), &result, &rules, &mut earlier);
                // A refusal by differencing tells about the few persons the difference isolates.
                let stop = (out.refusal.as_deref() == Some(crate::stops::DIFFERENCING)).then_some(crate::stops::DIFFERENCING);
                (out, stop)
            }
        };
        // A late output keeps its outcome; its stop (`late`) is in the permit's list.
        if pace.answer().await && stop.is_none() {
            stop = Some(crate::pace::LATE);
        }
        crate::stops::end_run(instance, place, stop).await?;
        done.push(out);
    }
    Ok(Ran { outputs: done, receipt: Some(receipt) })
}

/// Checks one output's result: output rules, then differencing against `earlier` (to which a
/// passing output is added, so that the job's later outputs are compared with it too).
fn check_one(
    (name, sql): (&str, &str),
    (job_id, cohort): (i64, String),
    result: &niji_sandbox::AggregateResult,
    rules: &Rules,
    earlier: &mut Vec<Release>,
) -> Outcome1 {
    let mut out = Outcome1 { cohort_key: cohort, ..Outcome1::new(name, sql, "passed", None) };
    let table = to_table(result);
    let compared: Vec<&str> = earlier.iter().map(|r| r.id.as_str()).collect();
    let checked = if table.measures.is_empty() {
        None
    } else {
        match check_output(&table, result, rules, earlier) {
            Ok(c) => Some(c),
            Err(_) => {
                out.status = "refused";
                out.refusal = Some("unchecked".into());
                return out;
            }
        }
    };
    let (refused_by, table_reasons) = match &checked {
        Some(c) => (refused_by(c, &table), c.table_reasons.iter().map(|r| r.code()).collect::<Vec<_>>()),
        None => (Vec::new(), Vec::new()),
    };
    if checked.as_ref().is_some_and(|c| !c.passes()) {
        out.status = "refused";
        out.refusal =
            Some(if !refused_by.is_empty() { crate::stops::DIFFERENCING.into() } else { table_reasons.first().copied().unwrap_or("refused").into() });
    }
    out.differencing = Some(json!({"compared": compared, "refused_by": refused_by}).to_string());
    out.checked_table = Some(checked_table_json(&table, checked.as_ref()).to_string());
    out.verdicts = Some(verdicts_json(&table, checked.as_ref(), &table_reasons).to_string());
    if out.status == "passed" {
        let published = published_persons(&table, checked.as_ref());
        out.published_persons = Some(published.to_string());
        if let Some(c) = &checked {
            earlier.push(Release::from_checked(format!("job-{job_id}:{name}"), &positional(&table), c));
        }
    }
    out
}

/// The releases named in a checked table's differencing refusals.
pub(crate) fn refused_by(checked: &Checked, table: &Table) -> Vec<String> {
    let mut names: Vec<String> = Vec::new();
    for r in 0..table.rows.len() {
        if checked.is_released(r) {
            continue;
        }
        for v in checked.row_verdicts(r) {
            for reason in &v.reasons {
                if let niji_sdc::Reason::Differencing { earlier_release, .. } | niji_sdc::Reason::RevealsWithheld { earlier_release } = reason {
                    if !names.contains(earlier_release) {
                        names.push(earlier_release.clone());
                    }
                }
            }
        }
    }
    names
}

fn shown_json(s: Shown) -> Value {
    match s {
        Shown::Value(x) if x.is_finite() => json!(x),
        Shown::Value(_) => Value::Null,
        Shown::Suppressed => json!(SUPPRESSED),
        Shown::Refused => json!("refused"),
    }
}

/// The released table: keys, and per cell its released value or a marker.
fn checked_table_json(table: &Table, checked: Option<&Checked>) -> Value {
    let rows: Vec<Value> = match checked {
        Some(c) => c
            .released_table(table)
            .rows
            .into_iter()
            .map(|r| json!({"keys": r.keys, "values": r.values.into_iter().map(shown_json).collect::<Vec<_>>()}))
            .collect(),
        None => Vec::new(),
    };
    json!({
        "dimensions": table.dimensions,
        "measures": table.measures.iter().map(|m| m.name.clone()).collect::<Vec<_>>(),
        "rows": rows,
    })
}

/// The cells not released as they are, with their reasons (codes and texts), and a summary; rows
/// numbered as in the released table, whose left-out rows ([`Checked::shows_keys`]) appear
/// nowhere.
fn verdicts_json(table: &Table, checked: Option<&Checked>, table_reasons: &[&str]) -> Value {
    let Some(c) = checked else { return json!({"cells": [], "table_reasons": table_reasons}) };
    let mut cells = Vec::new();
    let shown: Vec<usize> = c.shown_order(table);
    // Each row's place in the released table (`None`: left out).
    let mut place: Vec<Option<usize>> = vec![None; table.rows.len()];
    for (p, &row) in shown.iter().enumerate() {
        place[row] = Some(p);
    }
    for (r, &row) in shown.iter().enumerate() {
        if c.is_released(row) {
            continue;
        }
        for (m, v) in c.row_verdicts(row).iter().enumerate() {
            let outcome = match v.outcome {
                Outcome::Released => "released",
                Outcome::Suppressed => "suppressed",
                Outcome::Refused => "refused",
            };
            let reasons: Vec<Value> = v
                .reasons
                .iter()
                .map(|x| match x {
                    // Named by its place in the released table, or not at all when left out.
                    Reason::SecondarySuppression { because_of } => match place.get(because_of.row).copied().flatten() {
                        Some(row) => {
                            let x = Reason::SecondarySuppression { because_of: CellRef { row, measure: because_of.measure } };
                            json!({"code": x.code(), "ja": x.text_ja(), "en": x.text_en()})
                        }
                        None => json!({
                            "code": x.code(),
                            "ja": "表から除いた行の秘匿セルを合計から逆算できないよう、二次秘匿します",
                            "en": "suppressed so that a suppressed cell of a row left out of the table cannot be recomputed from totals",
                        }),
                    },
                    x => json!({"code": x.code(), "ja": x.text_ja(), "en": x.text_en()}),
                })
                .collect();
            cells.push(json!({"row": r, "measure": m, "outcome": outcome, "reasons": reasons}));
        }
    }
    let s = c.summary;
    json!({
        "cells": cells,
        "table_reasons": table_reasons,
        "summary": {"cells": s.cells, "released": s.released, "primary": s.primary, "secondary": s.secondary, "refused": s.refused, "rounded": s.rounded},
    })
}

/// The persons of the released rows and the samples of their shown cells, and the samples of
/// the cells of the rows withheld (what later differencing compares with; never shown):
/// `{"rows": [...], "withheld": [...]}`. (Stored before withheld cells were kept: the array of
/// rows alone.)
pub(crate) fn published_persons(table: &Table, checked: Option<&Checked>) -> Value {
    let Some(c) = checked else { return json!({"rows": [], "withheld": []}) };
    let rows: Vec<Value> = table
        .rows
        .iter()
        .enumerate()
        .filter(|(r, _)| c.is_released(*r) && c.shows_keys(*r))
        .map(|(r, row)| {
            // The samples of the cells shown: what later outputs' cells are compared with.
            let cells: Vec<Value> = row
                .cells
                .iter()
                .enumerate()
                .map(|(j, cell)| match &cell.sample {
                    Some(s) if c.verdict(r, j).outcome == niji_sdc::Outcome::Released => json!({"persons": s.persons, "smallest": s.smallest}),
                    _ => Value::Null,
                })
                .collect();
            json!({"keys": row.keys, "persons": row.persons(), "cells": cells})
        })
        .collect();
    let withheld: Vec<Value> =
        niji_sdc::differencing::withheld_samples(table, c).map(|s| json!({"persons": s.persons, "smallest": s.smallest})).collect();
    json!({"rows": rows, "withheld": withheld})
}

/// What [`published_persons`] stored, read back: the published rows and the withheld cells'
/// samples.
fn stored_persons(stored: Option<&str>) -> Result<(Vec<ReleaseRow>, Vec<niji_sdc::CellSample>), AnalysisError> {
    let published: Value = serde_json::from_str(stored.unwrap_or("[]")).map_err(|_| AnalysisError::Internal)?;
    let (rows, withheld) = match &published {
        Value::Array(rows) => (Some(rows), None),
        other => (other["rows"].as_array(), other["withheld"].as_array()),
    };
    let rows = rows.into_iter().flatten().map(release_row).collect();
    let withheld = withheld.into_iter().flatten().filter_map(cell_sample).collect();
    Ok((rows, withheld))
}

fn cell_sample(c: &Value) -> Option<niji_sdc::CellSample> {
    Some(niji_sdc::CellSample { persons: c["persons"].as_u64()?, smallest: serde_json::from_value(c["smallest"].clone()).ok()? })
}

/// A published row as stored by [`published_persons`] (rows stored before samples were kept
/// have none).
fn release_row(r: &Value) -> ReleaseRow {
    let cells = r["cells"].as_array().map(|cells| cells.iter().map(cell_sample).collect()).unwrap_or_default();
    ReleaseRow { keys: serde_json::from_value(r["keys"].clone()).unwrap_or_default(), persons: r["persons"].as_u64().unwrap_or(0), cells }
}

/// A sandbox result's table checked against the rules and the permit's earlier releases, then
/// the query's `LIMIT … OFFSET …` kept of the rows shown.
pub(crate) fn check_output(
    table: &Table,
    result: &niji_sandbox::AggregateResult,
    rules: &Rules,
    earlier: &[Release],
) -> Result<Checked, niji_sdc::SdcError> {
    let table = positional(table);
    let mut checked = niji_sdc::check_against_earlier(&table, rules, earlier)?;
    if let Some(w) = result.window {
        checked.keep_window(&table, w.skip, w.fetch);
    }
    Ok(checked)
}

/// Differencing compares tables by their dimensions' values, not their names: renaming a column
/// (`sex AS s`) must not hide a pair whose difference isolates a few persons.
pub(crate) fn positional(table: &Table) -> Table {
    let mut t = table.clone();
    t.dimensions = positional_names(t.dimensions.len());
    t
}

fn positional_names(n: usize) -> Vec<String> {
    (0..n).map(|i| format!("dimension_{i}")).collect()
}

/// The permit's earlier releases as the differencing rules remember them: one per released output,
/// named `release-<id>` (with `:<output>` when the release holds several outputs).
/// Interactive answers shown to the researcher count as releases too (`answer-<id>`).
pub(crate) async fn earlier_releases(instance: &Instance, permit_id: i64) -> Result<Vec<Release>, AnalysisError> {
    let rows = instance.store.released_outputs(permit_id).await.map_err(|_| AnalysisError::Internal)?;
    let mut releases = Vec::with_capacity(rows.len());
    for (release_id, o) in &rows {
        let several = rows.iter().filter(|(id, _)| id == release_id).count() > 1;
        let id = if several { format!("release-{release_id}:{}", o.name) } else { format!("release-{release_id}") };
        releases.push(stored_release(id, o)?);
    }
    for a in instance.store.query_outputs(permit_id).await.map_err(|_| AnalysisError::Internal)? {
        let (rows, withheld) = stored_persons(Some(&a.published_persons))?;
        releases.push(Release { id: format!("answer-{}", a.id), dimensions: positional_names(a.dimensions as usize), rows, withheld });
    }
    Ok(releases)
}

fn stored_release(id: String, o: &niji_store::JobOutputRow) -> Result<Release, AnalysisError> {
    let table: Value = serde_json::from_str(o.checked_table.as_deref().unwrap_or("{}")).map_err(|_| AnalysisError::Internal)?;
    let named: Vec<String> = serde_json::from_value(table["dimensions"].clone()).unwrap_or_default();
    let dimensions = positional_names(named.len());
    let (rows, withheld) = stored_persons(o.published_persons.as_deref())?;
    Ok(Release { id, dimensions, rows, withheld })
}

// -- listing ----------------------------------------------------------------------------------

/// One job with its outputs, sign-offs and release.
pub async fn job_view(instance: &Instance, job_id: i64) -> Result<JobView, JobError> {
    let store = &instance.store;
    let job = store.job(job_id).await.map_err(internal)?.ok_or(JobError::NoJob)?;
    let parse = |s: &Option<String>| s.as_deref().and_then(|s| serde_json::from_str::<Value>(s).ok());
    let outputs = store
        .job_outputs(job_id)
        .await
        .map_err(internal)?
        .into_iter()
        .map(|o| OutputView {
            checked_table: parse(&o.checked_table),
            verdicts: parse(&o.verdicts),
            differencing: parse(&o.differencing),
            name: o.name,
            status: o.status,
            refusal: o.refusal,
        })
        .collect();
    let signoffs = store.signoffs(job_id).await.map_err(internal)?.into_iter().map(|s| (s.checker_id, s.verdict, s.reason)).collect();
    let release_id = store.releases().await.map_err(internal)?.into_iter().find(|r| r.job_id == job_id).map(|r| r.id);
    Ok(JobView {
        id: job.id,
        permit_id: job.permit_id,
        submitted_by: job.submitted_by,
        status: job.status,
        reason: job.reason,
        created_at: job.created_at,
        outputs,
        signoffs,
        release_id,
    })
}

/// Every job, oldest first.
pub async fn list_jobs(instance: &Instance) -> Result<Vec<JobView>, JobError> {
    let mut views = Vec::new();
    for job in instance.store.jobs().await.map_err(internal)? {
        views.push(job_view(instance, job.id).await?);
    }
    Ok(views)
}

// -- signing off ------------------------------------------------------------------------------

pub(crate) fn valid_reason(reason: &str) -> bool {
    (1..=32).contains(&reason.len()) && reason.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
}

/// An output checker's verdict on a job awaiting review. `reason` is a code (lower-case letters,
/// digits, `_`), e.g. `approved`, `disclosive`, `not_needed`.
pub async fn sign_off(instance: &Instance, checker_user_id: i64, job_id: i64, approve: bool, reason: &str) -> Result<SignOff, JobError> {
    if !valid_reason(reason) {
        return Err(JobError::BadReason);
    }
    let store = &instance.store;
    store.user(checker_user_id).await.map_err(internal)?.ok_or(JobError::NotAChecker)?;
    let roles = store.active_roles(checker_user_id).await.map_err(internal)?;
    if !roles.contains(&Role::OutputChecker) {
        return Err(JobError::NotAChecker);
    }
    let job = store.job(job_id).await.map_err(internal)?.ok_or(JobError::NoJob)?;
    let permit = store.permit(job.permit_id).await.map_err(internal)?.ok_or(JobError::Internal)?;
    let policy: PermitPolicy = serde_json::from_str(&permit.policy).map_err(internal)?;
    let named = crate::permit::named_on_any_version(store, job.permit_id, checker_user_id).await.map_err(internal)?;
    if job.submitted_by == checker_user_id || named {
        return Err(JobError::Conflicted);
    }
    // Nothing is released under a permit that is no longer active (revoked, suspended, expired:
    // its key destroyed or its use stopped).
    if permit.status != "active" || instance.existing_data_key(&permit.key_id).await.map_err(internal)?.is_none() {
        return Err(JobError::PermitClosed);
    }
    let verdict = if approve { "approve" } else { "reject" };
    let signoff = store.insert_signoff(job_id, checker_user_id, verdict, reason, now_ts()).await.map_err(|e| match e {
        niji_store::StoreError::NotFound { .. } => JobError::NotAwaiting,
        niji_store::StoreError::Conflict { .. } => JobError::AlreadySigned,
        _ => JobError::Internal,
    })?;
    let actor = format!("user:{checker_user_id}");
    let index = log(instance, actor.clone(), "job.signed_off", format!("job:{job_id}"), json!({"verdict": verdict, "reason": reason}))?;
    store.set_signoff_log_index(signoff, index as i64).await.map_err(internal)?;

    if !approve {
        if store.set_job_status(job_id, "awaiting_review", "refused", Some("rejected"), now_ts()).await.map_err(internal)? {
            if let Some(run) = job.run_id {
                store.set_analysis_run_outcome(run, "refused").await.map_err(internal)?;
            }
            log(instance, actor, "job.refused", format!("job:{job_id}"), json!({"permit": job.permit_id, "reason": "rejected"}))?;
        }
        return Ok(SignOff::Refused);
    }
    let approvers: Vec<i64> =
        store.signoffs(job_id).await.map_err(internal)?.into_iter().filter(|s| s.verdict == "approve").map(|s| s.checker_id).collect();
    if approvers.len() < APPROVALS_NEEDED {
        return Ok(SignOff::Recorded { approvals: approvers.len() });
    }
    release(instance, &actor, &job, &policy, &approvers).await
}

/// Held from reading a permit's earlier releases and answers until what is compared with them is
/// stored (an interactive answer, a release's row): two answers checked at once would otherwise
/// each be compared without the other. One per process; no other process runs beside the server
/// (the transparency log's lock).
pub(crate) static COMPARING: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Releases a job with enough approvals: a last differencing check, then the files, the log entry
/// and the release row.
async fn release(instance: &Instance, actor: &str, job: &niji_store::JobRow, policy: &PermitPolicy, approvers: &[i64]) -> Result<SignOff, JobError> {
    let store = &instance.store;
    let outputs = store.job_outputs(job.id).await.map_err(internal)?;
    let preset: Preset = policy.output_preset.parse().unwrap_or(Preset::Ndb);
    let rules = Rules::preset(preset);

    // Releases made since the job ran: its released rows are compared with them once more.
    let comparing = COMPARING.lock().await;
    let earlier = earlier_releases(instance, job.permit_id).await?;
    let mut refused_by = Vec::new();
    let samples = niji_sdc::differencing::EarlierSamples::of(&earlier);
    for o in &outputs {
        let mine = stored_release(String::new(), o)?;
        // A cell it suppressed to protect another, shown since it ran.
        if let Some(index) = samples.shown_before(&mine.withheld) {
            refused_by.push(earlier[index].id.clone());
        }
        if mine.rows.is_empty() {
            continue;
        }
        let table: Value = serde_json::from_str(o.checked_table.as_deref().unwrap_or("{}")).map_err(internal)?;
        let measures: Vec<String> = serde_json::from_value(table["measures"].clone()).unwrap_or_default();
        if measures.is_empty() {
            continue;
        }
        // The rows' persons, and the samples of the cells shown (compared with the earlier cells).
        let sampled = mine.rows.iter().map(|r| r.cells.len()).max().unwrap_or(0);
        let mut columns = vec![Measure::count("persons")];
        columns.extend((0..sampled).map(|j| Measure::count(format!("cell_{j}"))));
        let mut t = Table::new(mine.dimensions.clone(), columns);
        for row in &mine.rows {
            let mut cells = vec![Cell::count(row.persons)];
            cells.extend((0..sampled).map(|j| match row.cells.get(j).cloned().flatten() {
                Some(s) => Cell::count(s.persons.min(row.persons)).with_sample(s),
                None => Cell::count(0),
            }));
            t.push(row.keys.clone(), cells);
        }
        // Only differencing is asked of this check: no other rule may hold a row back from it
        // (the zeros standing for cells not sampled included).
        let mut relaxed = rules.clone();
        relaxed.max_dimensions = None;
        relaxed.zeros_disclosive = false;
        let checked = niji_sdc::check_against_earlier(&t, &relaxed, &earlier).map_err(internal)?;
        refused_by.extend(self::refused_by(&checked, &t));
    }
    if !refused_by.is_empty() {
        if store.set_job_status(job.id, "awaiting_review", "refused", Some("differencing"), now_ts()).await.map_err(internal)? {
            if let Some(run) = job.run_id {
                store.set_analysis_run_outcome(run, "refused").await.map_err(internal)?;
            }
            // The researcher sees the job refused, for what its rows are: a stop of the permit.
            let stop = niji_store::NewRun {
                permit_id: job.permit_id,
                user_id: job.submitted_by,
                kind: "release",
                code_sha256: &job.code_sha256,
                started_at: now_ts(),
            };
            store.record_stop(&stop, crate::stops::DIFFERENCING).await.map_err(internal)?;
            log(
                instance,
                actor.to_owned(),
                "job.refused",
                format!("job:{}", job.id),
                json!({"permit": job.permit_id, "reason": "differencing", "refused_by": refused_by}),
            )?;
        }
        return Ok(SignOff::Refused);
    }

    let now = time::OffsetDateTime::now_utc();
    let begun = store.begin_release(job.id, job.permit_id, now.unix_timestamp()).await.map_err(internal)?;
    drop(comparing);
    let Some(release_id) = begun else {
        return Err(JobError::NotAwaiting);
    };
    let file_name = format!("release-{release_id}.csv");
    let csv = release_csv(&outputs)?;
    let csv_sha256 = sha256_hex(&csv);
    let run = match job.run_id {
        Some(id) => store.analysis_runs().await.map_err(internal)?.into_iter().find(|r| r.id == id),
        None => None,
    };
    let output_meta: Vec<Value> = outputs
        .iter()
        .map(|o| {
            let table: Value = o.checked_table.as_deref().and_then(|s| serde_json::from_str(s).ok()).unwrap_or(Value::Null);
            let suppressed = table["rows"]
                .as_array()
                .map(|rows| rows.iter().flat_map(|r| r["values"].as_array().cloned().unwrap_or_default()).filter(|v| *v == SUPPRESSED).count())
                .unwrap_or(0);
            json!({
                "name": o.name,
                "sql_sha256": o.sql_sha256,
                "dimensions": table["dimensions"],
                "measures": table["measures"],
                "rows": table["rows"].as_array().map_or(0, Vec::len),
                "suppressed_cells": suppressed,
            })
        })
        .collect();
    let metadata = json!({
        "release": release_id,
        "permit": job.permit_id,
        "application": policy.application_id,
        "permit_version": policy.version,
        "job": job.id,
        "code_sha256": job.code_sha256,
        "output_preset": preset.name(),
        "registry_version": run.as_ref().map(|r| r.registry_version),
        "datasets": run.as_ref().and_then(|r| serde_json::from_str::<Value>(&r.datasets).ok()),
        "outputs": output_meta,
        "approved_by": approvers.iter().map(|id| format!("user:{id}")).collect::<Vec<_>>(),
        "released_at": now.format(&time::format_description::well_known::Rfc3339).map_err(internal)?,
        "csv": {"file": file_name, "sha256": csv_sha256, "encoding": "UTF-8 with BOM", "suppressed_marker": SUPPRESSED},
    });
    let metadata = serde_json::to_vec_pretty(&metadata).map_err(internal)?;
    let metadata_sha256 = sha256_hex(&metadata);
    let dir = release_dir(instance, release_id);
    write_files(&dir, &file_name, &csv, &metadata).map_err(internal)?;
    let index = log(
        instance,
        actor.to_owned(),
        "release.published",
        format!("release:{release_id}"),
        json!({"permit": job.permit_id, "job": job.id, "csv_sha256": csv_sha256, "metadata_sha256": metadata_sha256}),
    )?;
    store.complete_release(release_id, &file_name, &csv_sha256, &metadata_sha256, index as i64).await.map_err(internal)?;
    if let Some(run) = job.run_id {
        store.set_analysis_run_outcome(run, "released").await.map_err(internal)?;
    }
    Ok(SignOff::Released { release_id })
}

fn write_files(dir: &std::path::Path, file_name: &str, csv: &[u8], metadata: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    std::fs::create_dir_all(dir)?;
    for (name, bytes) in [(file_name, csv), ("metadata.json", metadata)] {
        let tmp = dir.join(format!(".{name}.tmp"));
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        std::fs::rename(&tmp, dir.join(name))?;
    }
    std::fs::File::open(dir)?.sync_all()
}

/// One CSV for every output of a job: UTF-8 with a BOM; the header is `output` then every
/// column of every output (first appearance order); a row fills its own output's columns.
fn release_csv(outputs: &[niji_store::JobOutputRow]) -> Result<Vec<u8>, JobError> {
    let mut header: Vec<String> = vec!["output".into()];
    let mut tables = Vec::new();
    for o in outputs {
        let table: Value = serde_json::from_str(o.checked_table.as_deref().unwrap_or("{}")).map_err(internal)?;
        let columns: Vec<String> =
            ["dimensions", "measures"].iter().flat_map(|k| serde_json::from_value::<Vec<String>>(table[*k].clone()).unwrap_or_default()).collect();
        for c in &columns {
            if !header.contains(c) {
                header.push(c.clone());
            }
        }
        tables.push((o.name.clone(), columns, table));
    }
    let mut out = String::from("\u{feff}");
    out.push_str(&header.iter().map(|h| csv_field(h)).collect::<Vec<_>>().join(","));
    out.push_str("\r\n");
    for (name, columns, table) in &tables {
        for row in table["rows"].as_array().into_iter().flatten() {
            let mut line = vec![String::new(); header.len()];
            line[0] = csv_field(name);
            let cells = row["keys"].as_array().into_iter().flatten().map(|k| csv_field(k.as_str().unwrap_or("")));
            let values = row["values"].as_array().into_iter().flatten().map(value_field);
            for (column, text) in columns.iter().zip(cells.chain(values)) {
                if let Some(i) = header.iter().position(|h| h == column) {
                    line[i] = text;
                }
            }
            out.push_str(&line.join(","));
            out.push_str("\r\n");
        }
    }
    Ok(out.into_bytes())
}

fn value_field(v: &Value) -> String {
    match v {
        Value::Number(n) => match n.as_f64() {
            Some(x) if x.fract() == 0.0 && x.abs() < 1e15 => format!("{}", x as i64),
            _ => n.to_string(),
        },
        Value::String(s) => csv_field(s),
        _ => String::new(),
    }
}

/// Quotes a field when needed; a text that a spreadsheet would take for a formula gets a `'`.
fn csv_field(s: &str) -> String {
    let s = if s.starts_with(['=', '+', '-', '@', '\t', '\r']) && s.parse::<f64>().is_err() { format!("'{s}") } else { s.to_owned() };
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s
    }
}

// -- downloading ------------------------------------------------------------------------------

/// A release's files for `user_id`: researchers named on the permit and operators only. The files
/// must match the hashes published in the log. Every download (and refusal) is logged.
pub async fn release_files(instance: &Instance, user_id: i64, release_id: i64) -> Result<ReleaseFiles, JobError> {
    let store = &instance.store;
    let actor = format!("user:{user_id}");
    let object = format!("release:{release_id}");
    let release = store.release(release_id).await.map_err(internal)?.ok_or(JobError::NoRelease)?;
    let (Some(csv_sha256), Some(metadata_sha256)) = (release.csv_sha256.clone(), release.metadata_sha256.clone()) else {
        return Err(JobError::NoRelease);
    };
    let permit = store.permit(release.permit_id).await.map_err(internal)?.ok_or(JobError::Internal)?;
    let policy: PermitPolicy = serde_json::from_str(&permit.policy).map_err(internal)?;
    let roles = store.active_roles(user_id).await.map_err(internal)?;
    // Researchers download while the permit is active; operators (for the record) at any time.
    let named = policy.names(user_id) && roles.contains(&Role::Researcher) && permit.status == "active";
    if !named && !roles.contains(&Role::Operator) {
        log(instance, actor, "release.download_refused", object, json!({"permit": release.permit_id}))?;
        return Err(JobError::NotAllowed);
    }
    let dir = release_dir(instance, release_id);
    let csv = std::fs::read(dir.join(&release.file_name)).map_err(|_| JobError::Tampered)?;
    let metadata = std::fs::read(dir.join("metadata.json")).map_err(|_| JobError::Tampered)?;
    if sha256_hex(&csv) != csv_sha256 || sha256_hex(&metadata) != metadata_sha256 {
        return Err(JobError::Tampered);
    }
    log(instance, actor, "release.downloaded", object, json!({"permit": release.permit_id, "csv_sha256": csv_sha256}))?;
    Ok(ReleaseFiles { file_name: release.file_name, csv, metadata, csv_sha256, metadata_sha256 })
}

#[cfg(test)]
mod tests {
    use super::*;
    use niji_sdc::{CellSample, Measure, Preset};

    /// What differencing remembers of a checked output survives the store: the published rows'
    /// samples and the withheld cells' samples; an output stored before withheld cells were kept
    /// (an array of rows) still reads.
    #[test]
    fn published_persons_read_back_as_stored() {
        let sample = |first: u32, n: u32| CellSample { persons: n as u64, smallest: (first..first + n.min(16)).collect() };
        let mut t = Table::new(["prefecture"], vec![Measure::count("persons")]);
        t.push(["鳥取県"], vec![Cell::count(4).with_sample(sample(0, 4))]);
        t.push(["島根県"], vec![Cell::count(30).with_sample(sample(100, 30))]);
        t.push(["岡山県"], vec![Cell::count(60).with_sample(sample(200, 60))]);
        t.push(["*"], vec![Cell::count(94).with_sample(sample(0, 94))]);
        let checked = niji_sdc::check(&t, &Rules::preset(Preset::Ndb)).unwrap();
        let expected = Release::from_checked("x", &t, &checked);
        assert_eq!(expected.withheld.len(), (0..4).filter(|&r| checked.protects(r)).count());
        assert!(!expected.withheld.is_empty());
        let stored = published_persons(&t, Some(&checked)).to_string();
        let (rows, withheld) = stored_persons(Some(&stored)).unwrap();
        assert_eq!((rows, withheld), (expected.rows.clone(), expected.withheld.clone()));
        let old = serde_json::to_string(&published_persons(&t, Some(&checked))["rows"]).unwrap();
        let (rows, withheld) = stored_persons(Some(&old)).unwrap();
        assert_eq!((rows, withheld.len()), (expected.rows, 0));
        assert!(stored_persons(Some("not json")).is_err());
    }
}
