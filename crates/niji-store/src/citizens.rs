//! Citizens' credentials (which person's data an account reaches, named by a vault subject
//! handle) and the analysis runs that used data, with the consent registry version each applied.

use crate::{Store, StoreError, PERMIT_LINEAGE};

#[derive(Clone, Debug, PartialEq, Eq, sqlx::FromRow)]
pub struct CitizenCredentialRow {
    pub user_id: i64,
    /// The vault's subject handle of the person the credential reaches.
    pub subject: String,
    pub holder: String,
    /// `self`, `parent` or `guardian`.
    pub acting_as: String,
    /// ISO date; the credential signs in only before it. `None`: no end.
    pub valid_until: Option<String>,
    pub issued_by: String,
    pub issued_at: i64,
    pub revoked_at: Option<i64>,
}

pub struct NewCitizenCredential<'a> {
    pub user_id: i64,
    pub subject: &'a str,
    pub holder: &'a str,
    pub acting_as: &'a str,
    pub valid_until: Option<&'a str>,
    pub issued_by: &'a str,
}

#[derive(Clone, Debug, PartialEq, Eq, sqlx::FromRow)]
pub struct AnalysisRunRow {
    pub id: i64,
    pub permit_id: i64,
    pub user_id: i64,
    /// `query` (later `job`, `extract`, `dummy_refresh`).
    pub kind: String,
    pub code_sha256: String,
    /// `released` or `refused`.
    pub outcome: String,
    /// The consent registry version the run applied (its receipt).
    pub registry_version: i64,
    pub excluded_persons: i64,
    /// JSON `[{"dataset": "...", "version": n}]`.
    pub datasets: String,
    pub started_at: i64,
    pub finished_at: i64,
    pub log_index: Option<i64>,
    pub outcome_reminder_at: Option<i64>,
}

pub struct NewAnalysisRun<'a> {
    pub permit_id: i64,
    pub user_id: i64,
    pub kind: &'a str,
    pub code_sha256: &'a str,
    pub outcome: &'a str,
    pub registry_version: i64,
    pub excluded_persons: i64,
    pub datasets: &'a str,
    pub started_at: i64,
    pub finished_at: i64,
}

const RUN_COLUMNS: &str = "id, permit_id, user_id, kind, code_sha256, outcome, registry_version, excluded_persons, datasets, \
     started_at, finished_at, log_index, outcome_reminder_at";
const CREDENTIAL_COLUMNS: &str = "user_id, subject, holder, acting_as, valid_until, issued_by, issued_at, revoked_at";

impl Store {
    pub async fn insert_citizen_credential(&self, c: &NewCitizenCredential<'_>, now: i64) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO citizen_credentials (user_id, subject, holder, acting_as, valid_until, issued_by, issued_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(c.user_id)
        .bind(c.subject)
        .bind(c.holder)
        .bind(c.acting_as)
        .bind(c.valid_until)
        .bind(c.issued_by)
        .bind(now)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    pub async fn citizen_credential(&self, user_id: i64) -> Result<Option<CitizenCredentialRow>, StoreError> {
        Ok(sqlx::query_as(&format!("SELECT {CREDENTIAL_COLUMNS} FROM citizen_credentials WHERE user_id = $1"))
            .bind(user_id)
            .fetch_optional(&self.pool)
            .await?)
    }

    /// The credentials that reach one subject, ordered by user id.
    pub async fn citizen_credentials_for(&self, subject: &str) -> Result<Vec<CitizenCredentialRow>, StoreError> {
        Ok(sqlx::query_as(&format!("SELECT {CREDENTIAL_COLUMNS} FROM citizen_credentials WHERE subject = $1 ORDER BY user_id"))
            .bind(subject)
            .fetch_all(&self.pool)
            .await?)
    }

    pub async fn revoke_citizen_credential(&self, user_id: i64, now: i64) -> Result<(), StoreError> {
        let done = sqlx::query("UPDATE citizen_credentials SET revoked_at = $2 WHERE user_id = $1 AND revoked_at IS NULL")
            .bind(user_id)
            .bind(now)
            .execute(&self.pool)
            .await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound { what: "active citizen credential" });
        }
        Ok(())
    }

    pub async fn insert_analysis_run(&self, r: &NewAnalysisRun<'_>) -> Result<i64, StoreError> {
        Ok(sqlx::query_scalar(
            "INSERT INTO analysis_runs (permit_id, user_id, kind, code_sha256, outcome, registry_version, excluded_persons, datasets, started_at, finished_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) RETURNING id",
        )
        .bind(r.permit_id)
        .bind(r.user_id)
        .bind(r.kind)
        .bind(r.code_sha256)
        .bind(r.outcome)
        .bind(r.registry_version)
        .bind(r.excluded_persons)
        .bind(r.datasets)
        .bind(r.started_at)
        .bind(r.finished_at)
        .fetch_one(&self.pool)
        .await?)
    }

    pub async fn set_analysis_run_log_index(&self, id: i64, log_index: i64) -> Result<(), StoreError> {
        sqlx::query("UPDATE analysis_runs SET log_index = $2 WHERE id = $1").bind(id).bind(log_index).execute(&self.pool).await?;
        Ok(())
    }

    /// Every run, ordered by id.
    pub async fn analysis_runs(&self) -> Result<Vec<AnalysisRunRow>, StoreError> {
        Ok(sqlx::query_as(&format!("SELECT {RUN_COLUMNS} FROM analysis_runs ORDER BY id")).fetch_all(&self.pool).await?)
    }

    /// Released runs (checked outputs or extracts given to a permit's users; not dummy-data
    /// refreshes), ordered by id.
    pub async fn released_runs(&self) -> Result<Vec<AnalysisRunRow>, StoreError> {
        Ok(sqlx::query_as(&format!("SELECT {RUN_COLUMNS} FROM analysis_runs WHERE outcome = 'released' AND kind <> 'dummy_refresh' ORDER BY id"))
            .fetch_all(&self.pool)
            .await?)
    }

    /// Records that the users of a release were reminded to report outcomes (once: a second call
    /// changes nothing and returns false).
    pub async fn mark_outcome_reminder(&self, run_id: i64, now: i64) -> Result<bool, StoreError> {
        let done = sqlx::query("UPDATE analysis_runs SET outcome_reminder_at = $2 WHERE id = $1 AND outcome_reminder_at IS NULL")
            .bind(run_id)
            .bind(now)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected() == 1)
    }
}

/// What differencing keeps of an interactive answer.
#[derive(Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct QueryOutputRow {
    pub id: i64,
    pub permit_id: i64,
    pub cohort_key: String,
    pub dimensions: i64,
    /// JSON, as `JobOutputRow::published_persons` (per-permit ids: never shown or logged).
    pub published_persons: String,
    pub created_at: i64,
}

/// Without `published_persons`: per-permit ids never reach a log, not even a debug one.
impl std::fmt::Debug for QueryOutputRow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("QueryOutputRow")
            .field("id", &self.id)
            .field("permit_id", &self.permit_id)
            .field("dimensions", &self.dimensions)
            .field("created_at", &self.created_at)
            .finish_non_exhaustive()
    }
}

impl Store {
    pub async fn insert_query_output(
        &self,
        permit_id: i64,
        cohort_key: &str,
        dimensions: i64,
        published_persons: &str,
        now: i64,
    ) -> Result<i64, StoreError> {
        Ok(sqlx::query_scalar(
            "INSERT INTO query_outputs (permit_id, cohort_key, dimensions, published_persons, created_at) VALUES ($1, $2, $3, $4, $5) RETURNING id",
        )
        .bind(permit_id)
        .bind(cohort_key)
        .bind(dimensions)
        .bind(published_persons)
        .bind(now)
        .fetch_one(&self.pool)
        .await?)
    }

    /// The interactive answers of a permit and its earlier versions, oldest first.
    pub async fn query_outputs(&self, permit_id: i64) -> Result<Vec<QueryOutputRow>, StoreError> {
        Ok(sqlx::query_as(&format!(
            "SELECT id, permit_id, cohort_key, dimensions, published_persons, created_at FROM query_outputs
             WHERE permit_id IN ({PERMIT_LINEAGE}) ORDER BY id"
        ))
        .bind(permit_id)
        .fetch_all(&self.pool)
        .await?)
    }
}
