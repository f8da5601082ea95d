//! The budget of stops of a permit's runs on real data (issue 5), shared by every version of it.
//!
//! Static checks refuse a query before it reads anything, from its text and the tables' schemas
//! (a run over empty tables), so such a refusal tells nothing about the rows. On the real data a
//! run can still be *stopped*: it runs out of time or memory (its hash tables grow with the rows it
//! reaches, within the join bound), fails or is refused while running, or its answer is refused by
//! differencing. Whether that happens can depend on rare rows, and the researcher sees it. Only
//! two refusals on the real data are not stops: the join-size and group bounds, judged from
//! whole-table statistics before the run, the same whatever rows a query selects.
//!
//! A permit therefore gets [`AnalysisSettings::max_stops`] stops, for all its versions together
//! (an amendment is a permit of its own, with the stops of the versions before it: `niji-store`'s
//! `PERMIT_LINEAGE`), and a job that differencing refuses when it is released spends one too
//! (kind `release`). A place is taken before each
//! run (an interactive query, or each output of a job) and given back when the run ends without
//! a stop; once none is left, nothing more runs on the permit's real data (dummy data stays open)
//! until an output checker named on no version of the permit clears the stops ([`clear_stops`]),
//! which is logged; a clearance covers only the stops the checker was shown (up to the last one,
//! ended before they looked). A run that never ends (the process was killed, perhaps for memory)
//! keeps its place until a checker clears it, once it is older than any run may last.
//!
//! What this bounds: between two clearances, `T` runs with at most `k` stops can tell which of
//! them stopped, at most `log2(Σ_{i≤k} C(T, i))` ≈ `k · log2(T)` bits, so many cheap probes each
//! aimed to stop on one value still learn little per stop, and the checker sees how many runs
//! there were ([`Stops::runs_since_clear`]) before clearing. How long a run takes is not seen:
//! it answers at a time fixed before it starts, and a run that passes it is a stop too
//! ([`crate::pace`]).

use niji_core::{AuditEvent, AuditSink, Role};
use niji_instance::Instance;
use niji_sandbox::{Limits, Refusal, SandboxError};

use crate::pace::{AnswerTime, RunQueue};
use crate::AnalysisError;

/// How a permit's runs on real data are limited.
#[derive(Clone, Debug)]
pub struct AnalysisSettings {
    /// Each run's limits (memory, time, groups, join size).
    pub limits: Limits,
    /// Runs that limits may stop before an output checker must clear them.
    pub max_stops: u32,
    /// When a run's answer comes ([`crate::pace`]).
    pub answer: AnswerTime,
    /// The instance's runs on real data, a few at a time; clones share it.
    pub queue: RunQueue,
}

impl Default for AnalysisSettings {
    fn default() -> Self {
        AnalysisSettings { limits: Limits::default(), max_stops: 5, answer: AnswerTime::default(), queue: RunQueue::default() }
    }
}

impl AnalysisSettings {
    /// Runs started before this (Unix seconds) that never ended were abandoned (their process
    /// died): no run lasts longer than twice its timeout (the query's limit, then a late answer's
    /// grace; reading the tables comes within the first), and ten minutes more.
    fn abandoned_before(&self, now: i64) -> i64 {
        now - 2 * self.limits.timeout.as_secs() as i64 - 600
    }
}

/// A permit's uncleared stops, as the portal shows them (no SQL: only its hash is kept).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Stops {
    pub permit_id: i64,
    /// Each uncleared stop, oldest first, runs in progress included (they hold a place).
    pub stops: Vec<Stop>,
    /// The permit's budget.
    pub max_stops: u32,
    /// Runs on real data (each query, each output of a job) after the last one a clearance was
    /// shown (all if never), those that ended without a stop included: what the stops can be
    /// told apart from.
    pub runs_since_clear: i64,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Stop {
    /// What a checker names to clear up to it.
    pub id: i64,
    pub user_id: i64,
    /// `query`, `job`, or `release` (a job refused by differencing at its release).
    pub kind: String,
    /// `running` (in progress, or abandoned), or the code of what stopped it: `timeout`,
    /// `memory_limit`, `execution`, `internal`, `too_many_rows`, `differencing`, `late` (passed
    /// the time its answer was due, [`crate::pace`]), …
    pub reason: String,
    pub code_sha256: String,
    pub started_at: i64,
    pub ended_at: Option<i64>,
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
    let store = &instance.store;
    let internal = |_| AnalysisError::Internal;
    let rows = store.open_stops(permit_id).await.map_err(internal)?;
    let runs_since_clear = store.runs_since_clear(permit_id).await.map_err(internal)?;
    let stops = rows
        .into_iter()
        .map(|r| Stop {
            id: r.id,
            user_id: r.user_id,
            kind: r.kind,
            reason: r.reason,
            code_sha256: r.code_sha256,
            started_at: r.started_at,
            ended_at: r.ended_at,
        })
        .collect();
    Ok(Stops { permit_id, stops, max_stops: settings.max_stops, runs_since_clear })
}

/// Permits with stops to clear (ended ones, or runs abandoned), and how many each, for the output
/// checkers' queue.
pub async fn permits_with_stops(instance: &Instance, settings: &AnalysisSettings) -> Result<Vec<(i64, u32)>, AnalysisError> {
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let rows = instance.store.permits_with_stops(settings.abandoned_before(now)).await.map_err(|_| AnalysisError::Internal)?;
    Ok(rows.into_iter().map(|(p, n)| (p, n.clamp(0, i64::from(u32::MAX)) as u32)).collect())
}

/// An output checker clears a permit's stops up to `through` (the last stop they were shown)
/// that had ended by `seen_at` (when they looked; `None`: now), with a reason code (e.g.
/// `reviewed`, `legitimate_load`); returns how many were cleared. Runs still in progress keep
/// their place (they are cleared only once abandoned). Logged as `permit.stops_cleared`.
pub async fn clear_stops(
    instance: &Instance,
    settings: &AnalysisSettings,
    checker_user_id: i64,
    permit_id: i64,
    (through, seen_at): (i64, Option<i64>),
    reason: &str,
) -> Result<u64, ClearError> {
    if !crate::jobs::valid_reason(reason) {
        return Err(ClearError::BadReason);
    }
    let store = &instance.store;
    let roles = store.active_roles(checker_user_id).await.map_err(|_| ClearError::Internal)?;
    if !roles.contains(&Role::OutputChecker) {
        return Err(ClearError::NotAChecker);
    }
    store.permit(permit_id).await.map_err(|_| ClearError::Internal)?.ok_or(ClearError::NoPermit)?;
    // The stops of every version are cleared together: a checker named on any version may not.
    if crate::permit::named_on_any_version(store, permit_id, checker_user_id).await.map_err(|_| ClearError::Internal)? {
        return Err(ClearError::Conflicted);
    }
    let now = time::OffsetDateTime::now_utc();
    let seen_at = seen_at.unwrap_or(now.unix_timestamp()).min(now.unix_timestamp());
    let clearance = niji_store::NewClearance {
        permit_id,
        checker_id: checker_user_id,
        through,
        seen_at,
        abandoned_before: settings.abandoned_before(now.unix_timestamp()),
        reason,
        now: now.unix_timestamp(),
    };
    let cleared = store.clear_stops(&clearance).await.map_err(|_| ClearError::Internal)?;
    let event = AuditEvent::new(format!("user:{checker_user_id}"), now, "permit.stops_cleared", format!("permit:{permit_id}"))
        .with_data(serde_json::json!({"cleared": cleared, "through": through, "reason": reason}));
    instance.record(&event).map_err(|_| ClearError::Internal)?;
    Ok(cleared)
}

/// A place taken in a permit's budget for one run.
pub(crate) struct Place(i64);

/// Refuses at once, before anything is read, when the permit's stops are spent (a run taking
/// its place later may still be turned away: [`take_place`] decides).
pub(crate) async fn check_budget(instance: &Instance, settings: &AnalysisSettings, permit_id: i64) -> Result<(), AnalysisError> {
    let open = instance.store.open_stops(permit_id).await.map_err(|_| AnalysisError::Internal)?;
    // Ended stops, and runs abandoned long ago (their process died): those will not end.
    let abandoned_before = settings.abandoned_before(time::OffsetDateTime::now_utc().unix_timestamp());
    let spent = open.iter().filter(|s| s.reason != "running" || s.started_at < abandoned_before).count();
    if spent >= settings.max_stops as usize {
        return Err(AnalysisError::StopsSpent);
    }
    Ok(())
}

/// Takes a place for a run, or refuses it: [`AnalysisError::StopsSpent`] when stops fill the
/// budget, [`AnalysisError::RunsBusy`] when runs in progress take the places left.
pub(crate) async fn take_place(instance: &Instance, settings: &AnalysisSettings, run: &niji_store::NewRun<'_>) -> Result<Place, AnalysisError> {
    match instance.store.reserve_run(run, settings.max_stops).await {
        Ok(Some(id)) => Ok(Place(id)),
        Ok(None) => {
            check_budget(instance, settings, run.permit_id).await?;
            Err(AnalysisError::RunsBusy)
        }
        Err(_) => Err(AnalysisError::Internal),
    }
}

/// What stopped a run on the real data whose static check (over empty tables) passed: any
/// error, except the join-size and group bounds, which come from whole-table statistics before
/// the run and are the same whatever rows it selects.
pub(crate) fn stop_reason(e: &SandboxError) -> Option<&'static str> {
    match e {
        SandboxError::NotAllowed(Refusal::JoinSize | Refusal::TooManyGroups) => None,
        e => Some(crate::jobs::sandbox_code(e)),
    }
}

/// Ends a run: a stop keeps the place, anything else gives it back.
pub(crate) async fn end_run(instance: &Instance, place: Place, stop: Option<&str>) -> Result<(), AnalysisError> {
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    instance.store.end_run(place.0, stop, now).await.map_err(|_| AnalysisError::Internal)
}

/// The stop code of a refusal by differencing (the answer differs from an earlier release by a
/// few persons: whether it does tells about them).
pub(crate) const DIFFERENCING: &str = "differencing";

/// The operator's file of settings (`<instance>/analysis.toml`) could not be used.
#[derive(Debug, thiserror::Error)]
pub enum SettingsError {
    #[error("{file}: {reason}")]
    Unreadable { file: String, reason: String },
    #[error("{file}: `{field}` {reason}")]
    OutOfRange { file: String, field: &'static str, reason: &'static str },
}

/// `<instance>/analysis.toml`: each key optional, defaults otherwise.
#[derive(serde::Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct SettingsFile {
    max_stops: Option<u32>,
    runs_at_once: Option<usize>,
    timeout_seconds: Option<u64>,
    memory_mib: Option<usize>,
    answer_least_seconds: Option<f64>,
    answer_seconds_per_million_rows: Option<f64>,
}

impl AnalysisSettings {
    /// The instance's settings: `<instance>/analysis.toml` over the defaults (a missing file is
    /// the defaults). Every key is optional:
    ///
    /// ```toml
    /// max_stops = 5                          # stops before an output checker must clear them
    /// runs_at_once = 2                       # runs on real data at a time, for the instance
    /// timeout_seconds = 120                  # time limit of one run
    /// memory_mib = 2048                      # memory one run may reserve
    /// answer_least_seconds = 2.0             # the shortest slot of an answer
    /// answer_seconds_per_million_rows = 1.0  # slot per million rows read
    /// ```
    pub fn load(paths: &niji_instance::InstancePaths) -> Result<Self, SettingsError> {
        let path = paths.analysis_settings();
        let file = path.display().to_string();
        let text = match std::fs::read_to_string(&path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(AnalysisSettings::default()),
            Err(e) => return Err(SettingsError::Unreadable { file, reason: e.kind().to_string() }),
        };
        let read: SettingsFile = toml::from_str(&text).map_err(|e| SettingsError::Unreadable { file: file.clone(), reason: e.to_string() })?;
        read.apply(AnalysisSettings::default()).map_err(|(field, reason)| SettingsError::OutOfRange { file, field, reason })
    }
}

impl SettingsFile {
    fn apply(self, mut s: AnalysisSettings) -> Result<AnalysisSettings, (&'static str, &'static str)> {
        if let Some(n) = self.max_stops {
            if n == 0 || n > 1_000 {
                return Err(("max_stops", "must be between 1 and 1000"));
            }
            s.max_stops = n;
        }
        if let Some(n) = self.runs_at_once {
            if n == 0 || n > 64 {
                return Err(("runs_at_once", "must be between 1 and 64"));
            }
            s.queue = RunQueue::new(n);
        }
        if let Some(t) = self.timeout_seconds {
            if t == 0 || t > 86_400 {
                return Err(("timeout_seconds", "must be between 1 and 86400"));
            }
            s.limits.timeout = std::time::Duration::from_secs(t);
        }
        if let Some(m) = self.memory_mib {
            if !(16..=1 << 20).contains(&m) {
                return Err(("memory_mib", "must be between 16 and 1048576"));
            }
            s.limits.memory_bytes = m << 20;
        }
        let seconds = |v: f64, field: &'static str| {
            if v.is_finite() && (0.0..=86_400.0).contains(&v) {
                Ok(std::time::Duration::from_secs_f64(v))
            } else {
                Err((field, "must be a number of seconds between 0 and 86400"))
            }
        };
        if let Some(v) = self.answer_least_seconds {
            s.answer.least = seconds(v, "answer_least_seconds")?;
        }
        if let Some(v) = self.answer_seconds_per_million_rows {
            s.answer.per_million_rows = seconds(v, "answer_seconds_per_million_rows")?;
        }
        // A slot of nothing makes every run late; one of the whole limit makes every run wait it.
        if s.answer.least.is_zero() || s.answer.least >= s.limits.timeout {
            return Err(("answer_least_seconds", "must be more than 0 and less than the time limit"));
        }
        Ok(s)
    }
}

#[cfg(test)]
mod settings_tests {
    use super::*;

    /// Writes `text` as an instance's `analysis.toml` (none for `None`) and loads it.
    fn load(text: Option<&str>) -> Result<AnalysisSettings, String> {
        let dir = tempfile::tempdir().unwrap();
        let paths = niji_instance::InstancePaths::new(dir.path());
        if let Some(text) = text {
            std::fs::write(paths.analysis_settings(), text).unwrap();
        }
        AnalysisSettings::load(&paths).map_err(|e| e.to_string().replace(&dir.path().display().to_string(), "<i>"))
    }

    fn check(text: Option<&str>, expected: Result<(u32, u64, usize, u64, u64), &str>) {
        let got = load(text).map(|s| {
            (
                s.max_stops,
                s.limits.timeout.as_secs(),
                s.limits.memory_bytes >> 20,
                s.answer.least.as_millis() as u64,
                s.answer.per_million_rows.as_millis() as u64,
            )
        });
        match (got, expected) {
            (Ok(got), Ok(expected)) => assert_eq!(got, expected, "{text:?}"),
            (Err(got), Err(expected)) => assert!(got.contains(expected), "{text:?}: {got}"),
            (got, expected) => panic!("{text:?}: {got:?}, expected {expected:?}"),
        }
    }

    #[test]
    fn the_operator_sets_runs_on_real_data_in_the_instance_folder() {
        let defaults = Ok((5, 120, 2048, 2_000, 1_000));
        check(None, defaults);
        check(Some(""), defaults);
        check(Some("max_stops = 3\ntimeout_seconds = 600\nmemory_mib = 8192"), Ok((3, 600, 8192, 2_000, 1_000)));
        check(Some("answer_least_seconds = 2.5\nanswer_seconds_per_million_rows = 0.25"), Ok((5, 120, 2048, 2_500, 250)));
        check(Some("runs_at_once = 4"), defaults);
        // Refused with the file and the field named.
        check(Some("max_stop = 3"), Err("<i>/analysis.toml: TOML parse error at line 1"));
        check(Some("max_stops = -1"), Err("line 1"));
        check(Some("timeout_seconds = 0"), Err("<i>/analysis.toml: `timeout_seconds` must be between 1 and 86400"));
        check(Some("runs_at_once = 0"), Err("`runs_at_once` must be between 1 and 64"));
        check(Some("memory_mib = 1"), Err("`memory_mib` must be between"));
        check(Some("answer_least_seconds = nan"), Err("`answer_least_seconds` must be a number of seconds"));
        check(Some("answer_least_seconds = 0"), Err("`answer_least_seconds` must be more than 0 and less than the time limit"));
        check(Some("answer_least_seconds = 30\ntimeout_seconds = 30"), Err("less than the time limit"));
        check(Some("max_stops = 0"), Err("`max_stops` must be between 1 and 1000"));
        check(Some("answer_seconds_per_million_rows = -1.0"), Err("`answer_seconds_per_million_rows`"));
    }
}
