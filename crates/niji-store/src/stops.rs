//! Runs of permits on real data and their stops (issue 5): a run that ran out of time or
//! memory, failed while running or was refused by differencing. Each may tell something about
//! the rows it reached, so a permit gets a budget of stops, and an output checker clears them
//! before more run.
//!
//! A place in the budget is taken before the run starts ([`Store::reserve_run`]), by one
//! statement that counts and inserts, so that two concurrent runs cannot both take the last
//! place. A run that ends without a stop gives its place back ([`Store::end_run`] with `None`:
//! its row stays as `ok`, so that checkers can be told how many runs there were); one that never
//! ends keeps it until a checker clears it, which they can only once it is older than any run
//! may last.
//!
//! The budget belongs to the project, not to one version of its permit: an amended permit (a new
//! row, [`crate::PERMIT_LINEAGE`]) keeps the stops of the versions before it, and clearing them on
//! the current version clears them all.

use crate::{Store, StoreError, PERMIT_LINEAGE};

/// What a run is, for its place in the budget.
pub struct NewRun<'a> {
    pub permit_id: i64,
    pub user_id: i64,
    /// `query`, `job`, or `release` (recorded by [`Store::record_stop`]).
    pub kind: &'a str,
    pub code_sha256: &'a str,
    pub started_at: i64,
}

#[derive(Clone, Debug, PartialEq, Eq, sqlx::FromRow)]
pub struct StopRow {
    pub id: i64,
    pub permit_id: i64,
    pub user_id: i64,
    pub kind: String,
    pub code_sha256: String,
    /// `running` (not ended: in progress, or the process died), or the code of what stopped it.
    pub reason: String,
    pub started_at: i64,
    pub ended_at: Option<i64>,
    pub cleared_by: Option<i64>,
    pub cleared_at: Option<i64>,
}

/// A checker's clearance of a permit's stops.
pub struct NewClearance<'a> {
    pub permit_id: i64,
    pub checker_id: i64,
    /// The last run (row id) the checker was shown.
    pub through: i64,
    /// Only stops that had ended by this second (when the checker looked) are cleared.
    pub seen_at: i64,
    /// Runs started before this that never ended were abandoned, and are cleared too.
    pub abandoned_before: i64,
    pub reason: &'a str,
    pub now: i64,
}

impl Store {
    /// Takes a place in the permit's budget of `max_stops` uncleared stops (runs in progress
    /// count too). `None` when none is left: the run must not start.
    pub async fn reserve_run(&self, run: &NewRun<'_>, max_stops: u32) -> Result<Option<i64>, StoreError> {
        Ok(sqlx::query_scalar(&format!(
            "INSERT INTO permit_stops (permit_id, user_id, kind, code_sha256, reason, started_at)
             SELECT $1, $2, $3, $4, 'running', $5
             WHERE (SELECT count(*) FROM permit_stops WHERE permit_id IN ({PERMIT_LINEAGE}) AND cleared_at IS NULL AND reason <> 'ok') < $6
             RETURNING id"
        ))
        .bind(run.permit_id)
        .bind(run.user_id)
        .bind(run.kind)
        .bind(run.code_sha256)
        .bind(run.started_at)
        .bind(i64::from(max_stops))
        .fetch_optional(&self.pool)
        .await?)
    }

    /// Records a stop that no run reserved a place for: a refusal that comes later than the run
    /// and tells about its rows (a job refused by differencing when it is released). Counted even
    /// past the budget: it has already been seen.
    pub async fn record_stop(&self, run: &NewRun<'_>, reason: &str) -> Result<i64, StoreError> {
        Ok(sqlx::query_scalar(
            "INSERT INTO permit_stops (permit_id, user_id, kind, code_sha256, reason, started_at, ended_at)
             VALUES ($1, $2, $3, $4, $5, $6, $6) RETURNING id",
        )
        .bind(run.permit_id)
        .bind(run.user_id)
        .bind(run.kind)
        .bind(run.code_sha256)
        .bind(reason)
        .bind(run.started_at)
        .fetch_one(&self.pool)
        .await?)
    }

    /// Ends every run still in progress as a stop `interrupted` (their process died); for a
    /// process starting when no other may run (it holds the transparency log's lock). Returns how
    /// many.
    pub async fn end_interrupted_runs(&self, now: i64) -> Result<u64, StoreError> {
        Ok(sqlx::query("UPDATE permit_stops SET reason = 'interrupted', ended_at = $1 WHERE reason = 'running'")
            .bind(now)
            .execute(&self.pool)
            .await?
            .rows_affected())
    }

    /// Ends a reserved run: `Some(reason)` keeps it as a stop (uncleared, even if a clearance
    /// passed over it meanwhile), `None` gives its place back (the row stays as `ok`).
    pub async fn end_run(&self, reservation: i64, stop: Option<&str>, now: i64) -> Result<(), StoreError> {
        let done = sqlx::query(
            "UPDATE permit_stops SET reason = $2, ended_at = $3, cleared_by = NULL, cleared_at = NULL WHERE id = $1 AND reason = 'running'",
        )
        .bind(reservation)
        .bind(stop.unwrap_or("ok"))
        .bind(now)
        .execute(&self.pool)
        .await?
        .rows_affected();
        if done != 1 {
            return Err(StoreError::NotFound { what: "run in progress" });
        }
        Ok(())
    }

    /// The stops not yet cleared of the permit and its earlier versions (runs in progress
    /// included), oldest first.
    pub async fn open_stops(&self, permit_id: i64) -> Result<Vec<StopRow>, StoreError> {
        Ok(sqlx::query_as(&format!(
            "SELECT id, permit_id, user_id, kind, code_sha256, reason, started_at, ended_at, cleared_by, cleared_at
             FROM permit_stops WHERE permit_id IN ({PERMIT_LINEAGE}) AND cleared_at IS NULL AND reason <> 'ok' ORDER BY id"
        ))
        .bind(permit_id)
        .fetch_all(&self.pool)
        .await?)
    }

    /// Permits with uncleared stops, and how many each: runs that ended with a stop, and runs
    /// started before `abandoned_before` that never ended (not those still in progress). The
    /// stops of an amended permit's earlier versions count under its latest version.
    pub async fn permits_with_stops(&self, abandoned_before: i64) -> Result<Vec<(i64, i64)>, StoreError> {
        Ok(sqlx::query_as(
            "SELECT (SELECT max(l.id) FROM permits l WHERE l.application_id = p.application_id) AS latest, count(*)
             FROM permit_stops s JOIN permits p ON p.id = s.permit_id
             WHERE s.cleared_at IS NULL AND s.reason <> 'ok' AND (s.reason <> 'running' OR s.started_at < $1)
             GROUP BY p.application_id ORDER BY latest",
        )
        .bind(abandoned_before)
        .fetch_all(&self.pool)
        .await?)
    }

    /// Clears the stops of the permit and its earlier versions that the checker saw (up to
    /// `through`, ended before `seen_at`) and runs abandoned long ago, and records the clearance;
    /// returns how many were cleared. Runs still in progress keep their place.
    pub async fn clear_stops(&self, c: &NewClearance<'_>) -> Result<u64, StoreError> {
        let mut tx = self.pool.begin().await?;
        let cleared = sqlx::query(&format!(
            "UPDATE permit_stops SET cleared_by = $2, cleared_at = $3
             WHERE permit_id IN ({PERMIT_LINEAGE}) AND cleared_at IS NULL AND reason <> 'ok' AND id <= $4
               AND ((reason <> 'running' AND ended_at <= $5) OR (reason = 'running' AND started_at < $6))"
        ))
        .bind(c.permit_id)
        .bind(c.checker_id)
        .bind(c.now)
        .bind(c.through)
        .bind(c.seen_at)
        .bind(c.abandoned_before)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        // The last run the checker could have been shown: no further than the runs that exist.
        sqlx::query(&format!(
            "INSERT INTO stop_clearances (permit_id, checker_id, through, reason, cleared, at)
             VALUES ($1, $2, min($3, (SELECT coalesce(max(id), 0) FROM permit_stops WHERE permit_id IN ({PERMIT_LINEAGE}))), $4, $5, $6)"
        ))
        .bind(c.permit_id)
        .bind(c.checker_id)
        .bind(c.through)
        .bind(c.reason)
        .bind(cleared as i64)
        .bind(c.now)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(cleared)
    }

    /// The runs on real data of the permit and its earlier versions (each query, each output of a
    /// job) after the last run a clearance was shown (all of them if never cleared).
    pub async fn runs_since_clear(&self, permit_id: i64) -> Result<i64, StoreError> {
        Ok(sqlx::query_scalar(&format!(
            "SELECT count(*) FROM permit_stops WHERE permit_id IN ({PERMIT_LINEAGE})
             AND id > (SELECT coalesce(max(through), 0) FROM stop_clearances WHERE permit_id IN ({PERMIT_LINEAGE}))"
        ))
        .bind(permit_id)
        .fetch_one(&self.pool)
        .await?)
    }
}
