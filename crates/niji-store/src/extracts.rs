//! Anonymized extracts (issue 7): requested under a permit, approved or rejected by an operator.

use crate::{Store, StoreError};

#[derive(Clone, Debug, PartialEq, sqlx::FromRow)]
pub struct ExtractRow {
    pub id: i64,
    pub permit_id: i64,
    pub requested_by: i64,
    pub dataset: String,
    pub dataset_version: i64,
    pub table_name: String,
    pub config: String,
    /// `awaiting_approval`, `approved` or `rejected`.
    pub status: String,
    /// JSON.
    pub report: String,
    pub file_sha256: String,
    pub rows_out: i64,
    pub run_id: i64,
    pub decided_by: Option<i64>,
    pub decided_at: Option<i64>,
    pub reason: Option<String>,
    pub created_at: i64,
    pub log_index: Option<i64>,
}

pub struct NewExtract<'a> {
    pub permit_id: i64,
    pub requested_by: i64,
    pub dataset: &'a str,
    pub dataset_version: i64,
    pub table_name: &'a str,
    pub config: &'a str,
    pub report: &'a str,
    pub file_sha256: &'a str,
    pub rows_out: i64,
    pub run_id: i64,
}

const COLUMNS: &str = "id, permit_id, requested_by, dataset, dataset_version, table_name, config, status, report, file_sha256, rows_out, run_id, \
     decided_by, decided_at, reason, created_at, log_index";

impl Store {
    /// A new extract, awaiting approval.
    pub async fn insert_extract(&self, e: &NewExtract<'_>, now: i64) -> Result<i64, StoreError> {
        Ok(sqlx::query_scalar(
            "INSERT INTO extracts (permit_id, requested_by, dataset, dataset_version, table_name, config, status, report, file_sha256, rows_out, run_id, created_at)
             VALUES ($1, $2, $3, $4, $5, $6, 'awaiting_approval', $7, $8, $9, $10, $11) RETURNING id",
        )
        .bind(e.permit_id)
        .bind(e.requested_by)
        .bind(e.dataset)
        .bind(e.dataset_version)
        .bind(e.table_name)
        .bind(e.config)
        .bind(e.report)
        .bind(e.file_sha256)
        .bind(e.rows_out)
        .bind(e.run_id)
        .bind(now)
        .fetch_one(&self.pool)
        .await?)
    }

    pub async fn set_extract_log_index(&self, id: i64, log_index: i64) -> Result<(), StoreError> {
        sqlx::query("UPDATE extracts SET log_index = $2 WHERE id = $1").bind(id).bind(log_index).execute(&self.pool).await?;
        Ok(())
    }

    /// Decides an extract awaiting approval (compare-and-set); [`StoreError::NotFound`] when it
    /// is not awaiting approval.
    pub async fn decide_extract(&self, id: i64, status: &str, decided_by: i64, reason: Option<&str>, now: i64) -> Result<(), StoreError> {
        let done = sqlx::query(
            "UPDATE extracts SET status = $2, decided_by = $3, reason = $4, decided_at = $5 WHERE id = $1 AND status = 'awaiting_approval'",
        )
        .bind(id)
        .bind(status)
        .bind(decided_by)
        .bind(reason)
        .bind(now)
        .execute(&self.pool)
        .await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound { what: "extract awaiting approval" });
        }
        Ok(())
    }

    pub async fn extract(&self, id: i64) -> Result<Option<ExtractRow>, StoreError> {
        Ok(sqlx::query_as(&format!("SELECT {COLUMNS} FROM extracts WHERE id = $1")).bind(id).fetch_optional(&self.pool).await?)
    }

    /// Every extract, ordered by id.
    pub async fn extracts(&self) -> Result<Vec<ExtractRow>, StoreError> {
        Ok(sqlx::query_as(&format!("SELECT {COLUMNS} FROM extracts ORDER BY id")).fetch_all(&self.pool).await?)
    }
}
