//! Jobs of permits (named SQL outputs run on the real data and checked), the output checkers'
//! sign-offs and the releases they allow (issue 5).
//!
//! A job is inserted as `checking` before anything runs and finished by compare-and-set with its
//! outputs in one transaction; sign-offs are accepted only while the job is `awaiting_review`
//! and once per checker; a release row is inserted in the transaction that flips the job from
//! `awaiting_review` to `released`, so that two concurrent approvals cannot release twice.

use crate::{conflict_or, Store, StoreError, PERMIT_LINEAGE};

#[derive(Clone, Debug, PartialEq, Eq, sqlx::FromRow)]
pub struct JobRow {
    pub id: i64,
    pub permit_id: i64,
    pub submitted_by: i64,
    /// `checking`, `awaiting_review`, `released`, `refused` or `failed`.
    pub status: String,
    pub code_sha256: String,
    /// A fixed code when refused or failed.
    pub reason: Option<String>,
    pub created_at: i64,
    pub finished_at: Option<i64>,
    pub run_id: Option<i64>,
    pub log_index: Option<i64>,
}

#[derive(Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct JobOutputRow {
    pub job_id: i64,
    pub position: i64,
    pub name: String,
    pub sql_sha256: String,
    pub cohort_key: String,
    /// `passed`, `refused` or `not_run`.
    pub status: String,
    pub refusal: Option<String>,
    /// JSON: the checked table (released values, suppressed cells marked).
    pub checked_table: Option<String>,
    /// JSON: per-cell verdicts.
    pub verdicts: Option<String>,
    /// JSON: the differencing verdict.
    pub differencing: Option<String>,
    /// JSON `{"rows": [{"keys", "persons", "cells"}], "withheld": [...]}`: persons of the released
    /// rows, samples of their shown cells' persons and of the cells withheld to protect others
    /// (per-permit ids; for differencing only, never shown; older rows hold the array of rows).
    pub published_persons: Option<String>,
}

/// Without `published_persons`: per-permit ids never reach a log, not even a debug one.
impl std::fmt::Debug for JobOutputRow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JobOutputRow")
            .field("job_id", &self.job_id)
            .field("position", &self.position)
            .field("name", &self.name)
            .field("sql_sha256", &self.sql_sha256)
            .field("status", &self.status)
            .field("refusal", &self.refusal)
            .finish_non_exhaustive()
    }
}

pub struct NewJobOutput<'a> {
    pub name: &'a str,
    pub sql_sha256: &'a str,
    pub cohort_key: &'a str,
    pub status: &'a str,
    pub refusal: Option<&'a str>,
    pub checked_table: Option<&'a str>,
    pub verdicts: Option<&'a str>,
    pub differencing: Option<&'a str>,
    pub published_persons: Option<&'a str>,
}

#[derive(Clone, Debug, PartialEq, Eq, sqlx::FromRow)]
pub struct SignoffRow {
    pub id: i64,
    pub job_id: i64,
    pub checker_id: i64,
    /// `approve` or `reject`.
    pub verdict: String,
    pub reason: String,
    pub signed_at: i64,
    pub log_index: Option<i64>,
}

#[derive(Clone, Debug, PartialEq, Eq, sqlx::FromRow)]
pub struct ReleaseRow {
    pub id: i64,
    pub job_id: i64,
    pub permit_id: i64,
    /// The CSV's file name under `releases/<id>/` (empty until written).
    pub file_name: String,
    pub csv_sha256: Option<String>,
    pub metadata_sha256: Option<String>,
    pub log_index: Option<i64>,
    pub released_at: i64,
}

const JOB_COLUMNS: &str = "id, permit_id, submitted_by, status, code_sha256, reason, created_at, finished_at, run_id, log_index";
const OUTPUT_COLUMNS: &str =
    "job_id, position, name, sql_sha256, cohort_key, status, refusal, checked_table, verdicts, differencing, published_persons";
const SIGNOFF_COLUMNS: &str = "id, job_id, checker_id, verdict, reason, signed_at, log_index";
const RELEASE_COLUMNS: &str = "id, job_id, permit_id, file_name, csv_sha256, metadata_sha256, log_index, released_at";

impl Store {
    /// Inserts a job in status `checking`; returns its id.
    pub async fn insert_job(&self, permit_id: i64, submitted_by: i64, code_sha256: &str, now: i64) -> Result<i64, StoreError> {
        Ok(sqlx::query_scalar(
            "INSERT INTO jobs (permit_id, submitted_by, status, code_sha256, created_at) VALUES ($1, $2, 'checking', $3, $4) RETURNING id",
        )
        .bind(permit_id)
        .bind(submitted_by)
        .bind(code_sha256)
        .bind(now)
        .fetch_one(&self.pool)
        .await?)
    }

    /// Finishes a `checking` job: its status (`awaiting_review`, `refused` or `failed`), reason,
    /// run and outputs, in one transaction. [`StoreError::NotFound`] when the job is not
    /// `checking`.
    pub async fn finish_job(
        &self,
        id: i64,
        status: &str,
        reason: Option<&str>,
        run_id: Option<i64>,
        outputs: &[NewJobOutput<'_>],
        now: i64,
    ) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await?;
        let done = sqlx::query("UPDATE jobs SET status = $2, reason = $3, run_id = $4, finished_at = $5 WHERE id = $1 AND status = 'checking'")
            .bind(id)
            .bind(status)
            .bind(reason)
            .bind(run_id)
            .bind(now)
            .execute(&mut *tx)
            .await?;
        if done.rows_affected() != 1 {
            return Err(StoreError::NotFound { what: "checking job" });
        }
        for (position, o) in outputs.iter().enumerate() {
            sqlx::query(
                "INSERT INTO job_outputs (job_id, position, name, sql_sha256, cohort_key, status, refusal, checked_table, verdicts, differencing, published_persons)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
            )
            .bind(id)
            .bind(position as i64)
            .bind(o.name)
            .bind(o.sql_sha256)
            .bind(o.cohort_key)
            .bind(o.status)
            .bind(o.refusal)
            .bind(o.checked_table)
            .bind(o.verdicts)
            .bind(o.differencing)
            .bind(o.published_persons)
            .execute(&mut *tx)
            .await
            .map_err(conflict_or("job output name"))?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Compare-and-set of a job's status (with a reason code); false when the job was not in
    /// `expected`.
    pub async fn set_job_status(&self, id: i64, expected: &str, status: &str, reason: Option<&str>, now: i64) -> Result<bool, StoreError> {
        let done = sqlx::query("UPDATE jobs SET status = $3, reason = $4, finished_at = $5 WHERE id = $1 AND status = $2")
            .bind(id)
            .bind(expected)
            .bind(status)
            .bind(reason)
            .bind(now)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected() == 1)
    }

    pub async fn set_job_log_index(&self, id: i64, log_index: i64) -> Result<(), StoreError> {
        sqlx::query("UPDATE jobs SET log_index = $2 WHERE id = $1").bind(id).bind(log_index).execute(&self.pool).await?;
        Ok(())
    }

    pub async fn job(&self, id: i64) -> Result<Option<JobRow>, StoreError> {
        Ok(sqlx::query_as(&format!("SELECT {JOB_COLUMNS} FROM jobs WHERE id = $1")).bind(id).fetch_optional(&self.pool).await?)
    }

    /// Every job, ordered by id.
    pub async fn jobs(&self) -> Result<Vec<JobRow>, StoreError> {
        Ok(sqlx::query_as(&format!("SELECT {JOB_COLUMNS} FROM jobs ORDER BY id")).fetch_all(&self.pool).await?)
    }

    /// The jobs in `status` (e.g. `checking`), ordered by id.
    pub async fn jobs_in(&self, status: &str) -> Result<Vec<JobRow>, StoreError> {
        Ok(sqlx::query_as(&format!("SELECT {JOB_COLUMNS} FROM jobs WHERE status = $1 ORDER BY id")).bind(status).fetch_all(&self.pool).await?)
    }

    /// A job's outputs in the order they were submitted.
    pub async fn job_outputs(&self, job_id: i64) -> Result<Vec<JobOutputRow>, StoreError> {
        Ok(sqlx::query_as(&format!("SELECT {OUTPUT_COLUMNS} FROM job_outputs WHERE job_id = $1 ORDER BY position"))
            .bind(job_id)
            .fetch_all(&self.pool)
            .await?)
    }

    /// The outputs of the released jobs of a permit and its earlier versions, each with its
    /// release id, ordered by release id and position.
    pub async fn released_outputs(&self, permit_id: i64) -> Result<Vec<(i64, JobOutputRow)>, StoreError> {
        let columns: String = OUTPUT_COLUMNS.split(", ").map(|c| format!("o.{c}")).collect::<Vec<_>>().join(", ");
        let rows: Vec<ReleasedOutput> = sqlx::query_as(&format!(
            "SELECT r.id AS release_id, {columns} FROM releases r JOIN job_outputs o ON o.job_id = r.job_id
             WHERE r.permit_id IN ({PERMIT_LINEAGE}) AND o.status = 'passed' ORDER BY r.id, o.position"
        ))
        .bind(permit_id)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.into_iter().map(|r| (r.release_id, r.output)).collect())
    }

    /// Records a checker's verdict on a job that is `awaiting_review`.
    /// [`StoreError::NotFound`] when the job is not awaiting review; [`StoreError::Conflict`]
    /// when the checker already signed it.
    pub async fn insert_signoff(&self, job_id: i64, checker_id: i64, verdict: &str, reason: &str, now: i64) -> Result<i64, StoreError> {
        let mut tx = self.pool.begin().await?;
        // A write first: it checks the status and takes the write lock at once.
        let done = sqlx::query("UPDATE jobs SET status = status WHERE id = $1 AND status = 'awaiting_review'").bind(job_id).execute(&mut *tx).await?;
        if done.rows_affected() != 1 {
            return Err(StoreError::NotFound { what: "job awaiting review" });
        }
        let id = sqlx::query_scalar(
            "INSERT INTO release_signoffs (job_id, checker_id, verdict, reason, signed_at) VALUES ($1, $2, $3, $4, $5) RETURNING id",
        )
        .bind(job_id)
        .bind(checker_id)
        .bind(verdict)
        .bind(reason)
        .bind(now)
        .fetch_one(&mut *tx)
        .await
        .map_err(conflict_or("sign-off of this checker"))?;
        tx.commit().await?;
        Ok(id)
    }

    pub async fn set_signoff_log_index(&self, id: i64, log_index: i64) -> Result<(), StoreError> {
        sqlx::query("UPDATE release_signoffs SET log_index = $2 WHERE id = $1").bind(id).bind(log_index).execute(&self.pool).await?;
        Ok(())
    }

    /// A job's sign-offs, ordered by id.
    pub async fn signoffs(&self, job_id: i64) -> Result<Vec<SignoffRow>, StoreError> {
        Ok(sqlx::query_as(&format!("SELECT {SIGNOFF_COLUMNS} FROM release_signoffs WHERE job_id = $1 ORDER BY id"))
            .bind(job_id)
            .fetch_all(&self.pool)
            .await?)
    }

    /// Flips a job from `awaiting_review` to `released` and inserts its release row (without
    /// files yet), in one transaction; `None` when the job was no longer awaiting review.
    pub async fn begin_release(&self, job_id: i64, permit_id: i64, now: i64) -> Result<Option<i64>, StoreError> {
        let mut tx = self.pool.begin().await?;
        let done = sqlx::query("UPDATE jobs SET status = 'released', finished_at = $2 WHERE id = $1 AND status = 'awaiting_review'")
            .bind(job_id)
            .bind(now)
            .execute(&mut *tx)
            .await?;
        if done.rows_affected() != 1 {
            return Ok(None);
        }
        let id = sqlx::query_scalar("INSERT INTO releases (job_id, permit_id, file_name, released_at) VALUES ($1, $2, '', $3) RETURNING id")
            .bind(job_id)
            .bind(permit_id)
            .bind(now)
            .fetch_one(&mut *tx)
            .await
            .map_err(conflict_or("release of this job"))?;
        tx.commit().await?;
        Ok(Some(id))
    }

    /// Records a release's files and the log entry that published their hashes.
    pub async fn complete_release(
        &self,
        id: i64,
        file_name: &str,
        csv_sha256: &str,
        metadata_sha256: &str,
        log_index: i64,
    ) -> Result<(), StoreError> {
        let done = sqlx::query("UPDATE releases SET file_name = $2, csv_sha256 = $3, metadata_sha256 = $4, log_index = $5 WHERE id = $1")
            .bind(id)
            .bind(file_name)
            .bind(csv_sha256)
            .bind(metadata_sha256)
            .bind(log_index)
            .execute(&self.pool)
            .await?;
        if done.rows_affected() != 1 {
            return Err(StoreError::NotFound { what: "release" });
        }
        Ok(())
    }

    pub async fn release(&self, id: i64) -> Result<Option<ReleaseRow>, StoreError> {
        Ok(sqlx::query_as(&format!("SELECT {RELEASE_COLUMNS} FROM releases WHERE id = $1")).bind(id).fetch_optional(&self.pool).await?)
    }

    /// Every release, ordered by id.
    pub async fn releases(&self) -> Result<Vec<ReleaseRow>, StoreError> {
        Ok(sqlx::query_as(&format!("SELECT {RELEASE_COLUMNS} FROM releases ORDER BY id")).fetch_all(&self.pool).await?)
    }

    /// Sets an analysis run's outcome (a job's run is `pending` until its review ends).
    pub async fn set_analysis_run_outcome(&self, id: i64, outcome: &str) -> Result<(), StoreError> {
        sqlx::query("UPDATE analysis_runs SET outcome = $2 WHERE id = $1").bind(id).bind(outcome).execute(&self.pool).await?;
        Ok(())
    }
}

#[derive(sqlx::FromRow)]
struct ReleasedOutput {
    release_id: i64,
    #[sqlx(flatten)]
    output: JobOutputRow,
}
