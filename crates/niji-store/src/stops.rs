//! Stops of a permit's runs on real data (issue 5): a run that ran out of time or memory, or
//! failed while running. Each may tell a bit about the rows it reached, so a permit gets a budget
//! of them, and an output checker clears them before more run.
//!
//! A place in the budget is taken before the run starts ([`Store::reserve_run`]), by one
//! statement that counts and inserts, so that two concurrent runs cannot both take the last
//! place. A run that ends without a stop gives its place back ([`Store::end_run`] with `None`);
//! one that never ends keeps it until a checker clears it, which they can only once it is older
//! than any run may last.

use crate::{Store, StoreError};

/// What a run is, for its place in the budget.
pub struct NewRun<'a> {
    pub permit_id: i64,
    pub user_id: i64,
    /// `query` or `job`.
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
    /// `running` (not ended: in progress, or the process died), `timeout`, `memory_limit`,
    /// `execution` or `internal`.
    pub reason: String,
    pub started_at: i64,
    pub cleared_by: Option<i64>,
    pub cleared_at: Option<i64>,
}

impl Store {
    /// Takes a place in the permit's budget of `max_stops` uncleared stops (runs in progress
    /// count too). `None` when none is left: the run must not start.
    pub async fn reserve_run(&self, run: &NewRun<'_>, max_stops: u32) -> Result<Option<i64>, StoreError> {
        Ok(sqlx::query_scalar(
            "INSERT INTO permit_stops (permit_id, user_id, kind, code_sha256, reason, started_at)
             SELECT $1, $2, $3, $4, 'running', $5
             WHERE (SELECT count(*) FROM permit_stops WHERE permit_id = $1 AND cleared_at IS NULL) < $6
             RETURNING id",
        )
        .bind(run.permit_id)
        .bind(run.user_id)
        .bind(run.kind)
        .bind(run.code_sha256)
        .bind(run.started_at)
        .bind(i64::from(max_stops))
        .fetch_optional(&self.pool)
        .await?)
    }

    /// Ends a reserved run: `Some(reason)` keeps it as a stop (uncleared, even if a clearance
    /// passed over it meanwhile), `None` gives its place back.
    pub async fn end_run(&self, reservation: i64, stop: Option<&str>) -> Result<(), StoreError> {
        let done = match stop {
            Some(reason) => {
                sqlx::query("UPDATE permit_stops SET reason = $2, cleared_by = NULL, cleared_at = NULL WHERE id = $1 AND reason = 'running'")
                    .bind(reservation)
                    .bind(reason)
                    .execute(&self.pool)
                    .await?
                    .rows_affected()
            }
            None => sqlx::query("DELETE FROM permit_stops WHERE id = $1 AND reason = 'running'")
                .bind(reservation)
                .execute(&self.pool)
                .await?
                .rows_affected(),
        };
        if done != 1 {
            return Err(StoreError::NotFound { what: "run in progress" });
        }
        Ok(())
    }

    /// The permit's stops not yet cleared (runs in progress included), oldest first.
    pub async fn open_stops(&self, permit_id: i64) -> Result<Vec<StopRow>, StoreError> {
        Ok(sqlx::query_as(
            "SELECT id, permit_id, user_id, kind, code_sha256, reason, started_at, cleared_by, cleared_at
             FROM permit_stops WHERE permit_id = $1 AND cleared_at IS NULL ORDER BY id",
        )
        .bind(permit_id)
        .fetch_all(&self.pool)
        .await?)
    }

    /// Permits with uncleared stops, and how many each: runs that ended with a stop, and runs
    /// started before `abandoned_before` that never ended (not those still in progress).
    pub async fn permits_with_stops(&self, abandoned_before: i64) -> Result<Vec<(i64, i64)>, StoreError> {
        Ok(sqlx::query_as(
            "SELECT permit_id, count(*) FROM permit_stops
             WHERE cleared_at IS NULL AND (reason <> 'running' OR started_at < $1) GROUP BY permit_id ORDER BY permit_id",
        )
        .bind(abandoned_before)
        .fetch_all(&self.pool)
        .await?)
    }

    /// Clears the permit's stops up to `through` (the last one the checker saw); returns how
    /// many. Runs still in progress keep their place: only those started before `abandoned_before`
    /// (longer ago than any run may last: their process died) are cleared with the stops.
    pub async fn clear_stops(&self, permit_id: i64, checker_id: i64, through: i64, abandoned_before: i64, now: i64) -> Result<u64, StoreError> {
        Ok(sqlx::query(
            "UPDATE permit_stops SET cleared_by = $2, cleared_at = $3,
                 runs_through = (SELECT coalesce(max(id), 0) FROM analysis_runs WHERE permit_id = $1)
             WHERE permit_id = $1 AND cleared_at IS NULL AND id <= $4 AND (reason <> 'running' OR started_at < $5)",
        )
        .bind(permit_id)
        .bind(checker_id)
        .bind(now)
        .bind(through)
        .bind(abandoned_before)
        .execute(&self.pool)
        .await?
        .rows_affected())
    }

    /// Runs of the permit on real data (`analysis_runs`) recorded since its stops were last
    /// cleared (all of them if never).
    pub async fn runs_since_clear(&self, permit_id: i64) -> Result<i64, StoreError> {
        Ok(sqlx::query_scalar(
            "SELECT count(*) FROM analysis_runs WHERE permit_id = $1
             AND id > (SELECT coalesce(max(runs_through), 0) FROM permit_stops WHERE permit_id = $1)",
        )
        .bind(permit_id)
        .fetch_one(&self.pool)
        .await?)
    }
}
