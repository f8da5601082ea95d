//! The public transparency register (issue 6): the log index of each permit's issuance, the
//! outcomes a permit's users report (papers, products, reports), and the joined read the
//! register is built from.

use crate::{Store, StoreError};

/// An outcome reported for a permit.
#[derive(Clone, Debug, PartialEq, Eq, sqlx::FromRow)]
pub struct PermitOutcomeRow {
    pub id: i64,
    pub permit_id: i64,
    /// `paper`, `product`, `report` or `other`.
    pub kind: String,
    pub title: String,
    /// A DOI or a URL.
    pub reference: String,
    /// ISO date.
    pub published_on: String,
    pub reported_by: i64,
    pub reported_at: i64,
    pub log_index: Option<i64>,
}

pub struct NewPermitOutcome<'a> {
    pub permit_id: i64,
    pub kind: &'a str,
    pub title: &'a str,
    pub reference: &'a str,
    pub published_on: &'a str,
    pub reported_by: i64,
}

/// A permit with what the register shows of its application: tier, case and the times of
/// submission and decision (no applicant, no form).
#[derive(Clone, Debug, PartialEq, Eq, sqlx::FromRow)]
pub struct RegisterPermitRow {
    pub id: i64,
    pub application_id: i64,
    pub version: i64,
    pub status: String,
    /// JSON, as stored.
    pub policy: String,
    pub starts_on: String,
    pub expires_on: String,
    /// When this permit version was issued.
    pub created_at: i64,
    pub log_index: Option<i64>,
    pub tier: Option<String>,
    pub case_code: Option<String>,
    pub submitted_at: Option<i64>,
    pub decided_at: Option<i64>,
}

/// The timing of one application's review, for the register's statistics.
#[derive(Clone, Debug, PartialEq, Eq, sqlx::FromRow)]
pub struct ReviewTimingRow {
    pub application_id: i64,
    pub status: String,
    pub tier: Option<String>,
    pub submitted_at: Option<i64>,
    pub decided_at: Option<i64>,
    /// When the application's first permit was issued (a notification has no decision row).
    pub first_permit_at: Option<i64>,
    /// The review deadline set at submission.
    pub deadline_at: Option<i64>,
}

const OUTCOME_COLUMNS: &str = "id, permit_id, kind, title, reference, published_on, reported_by, reported_at, log_index";

impl Store {
    /// Records the log index of the permit's issuance entry.
    pub async fn set_permit_log_index(&self, id: i64, log_index: i64) -> Result<(), StoreError> {
        let done = sqlx::query("UPDATE permits SET log_index = $2 WHERE id = $1").bind(id).bind(log_index).execute(&self.pool).await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound { what: "permit" });
        }
        Ok(())
    }

    /// Records an outcome and returns its id. [`StoreError::NotFound`] when the permit or the
    /// account does not exist.
    pub async fn insert_permit_outcome(&self, o: &NewPermitOutcome<'_>, now: i64) -> Result<i64, StoreError> {
        sqlx::query_scalar(
            "INSERT INTO permit_outcomes (permit_id, kind, title, reference, published_on, reported_by, reported_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING id",
        )
        .bind(o.permit_id)
        .bind(o.kind)
        .bind(o.title)
        .bind(o.reference)
        .bind(o.published_on)
        .bind(o.reported_by)
        .bind(now)
        .fetch_one(&self.pool)
        .await
        .map_err(|e| match &e {
            sqlx::Error::Database(db) if db.is_foreign_key_violation() => StoreError::NotFound { what: "permit" },
            _ => StoreError::Database(e),
        })
    }

    pub async fn set_permit_outcome_log_index(&self, id: i64, log_index: i64) -> Result<(), StoreError> {
        sqlx::query("UPDATE permit_outcomes SET log_index = $2 WHERE id = $1").bind(id).bind(log_index).execute(&self.pool).await?;
        Ok(())
    }

    /// Every reported outcome, ordered by id.
    pub async fn permit_outcomes(&self) -> Result<Vec<PermitOutcomeRow>, StoreError> {
        Ok(sqlx::query_as(&format!("SELECT {OUTCOME_COLUMNS} FROM permit_outcomes ORDER BY id")).fetch_all(&self.pool).await?)
    }

    /// The outcomes of one permit, ordered by id.
    pub async fn permit_outcomes_for(&self, permit_id: i64) -> Result<Vec<PermitOutcomeRow>, StoreError> {
        Ok(sqlx::query_as(&format!("SELECT {OUTCOME_COLUMNS} FROM permit_outcomes WHERE permit_id = $1 ORDER BY id"))
            .bind(permit_id)
            .fetch_all(&self.pool)
            .await?)
    }

    /// Every permit with its application's tier, case and review times, ordered by id.
    pub async fn register_permits(&self) -> Result<Vec<RegisterPermitRow>, StoreError> {
        Ok(sqlx::query_as(
            "SELECT p.id, p.application_id, p.version, p.status, p.policy, p.starts_on, p.expires_on, p.created_at, p.log_index,
                    a.tier, a.case_code, a.submitted_at, a.decided_at
             FROM permits p JOIN applications a ON a.id = p.application_id
             ORDER BY p.id",
        )
        .fetch_all(&self.pool)
        .await?)
    }

    /// The review times of every submitted application, ordered by id.
    pub async fn review_timings(&self) -> Result<Vec<ReviewTimingRow>, StoreError> {
        Ok(sqlx::query_as(
            "SELECT a.id AS application_id, a.status, a.tier, a.submitted_at, a.decided_at,
                    (SELECT MIN(p.created_at) FROM permits p WHERE p.application_id = a.id) AS first_permit_at, a.deadline_at
             FROM applications a WHERE a.submitted_at IS NOT NULL
             ORDER BY a.id",
        )
        .fetch_all(&self.pool)
        .await?)
    }
}
