//! Datasets handed in by data holders and their versions, with each version's per-table
//! counts and the problems of its quarantined records.
//!
//! A version row is written in state `writing` before anything else of an intake and is
//! flipped to `committed` last, in the same transaction that stores its tables and
//! problems: readers see committed versions only, and recovery lists and deletes the
//! `writing` ones. Which slug, kind or counts are acceptable is decided by the caller.

use crate::{conflict_or, Store, StoreError};

#[derive(Clone, Debug, PartialEq, Eq, sqlx::FromRow)]
pub struct DatasetRow {
    pub id: i64,
    pub name: String,
    pub holder_id: i64,
    pub kind: String,
    pub title_ja: String,
    pub title_en: String,
    pub description_ja: String,
    pub description_en: String,
    pub created_at: i64,
}

pub struct NewDataset<'a> {
    pub name: &'a str,
    pub holder_id: i64,
    pub kind: &'a str,
    pub title_ja: &'a str,
    pub title_en: &'a str,
    pub description_ja: &'a str,
    pub description_en: &'a str,
}

#[derive(Clone, Debug, PartialEq, Eq, sqlx::FromRow)]
pub struct DatasetVersionRow {
    pub id: i64,
    pub dataset_id: i64,
    pub number: i64,
    /// `writing` or `committed`.
    pub state: String,
    pub submitted_by: String,
    pub created_at: i64,
    pub committed_at: Option<i64>,
    pub files: i64,
    pub records_accepted: i64,
    pub records_rejected: i64,
    pub warnings: i64,
    pub persons: i64,
    pub persons_shared: i64,
    pub link_records: i64,
    pub identifier_links: i64,
    pub name_links: i64,
    pub coverage_from: Option<String>,
    pub coverage_to: Option<String>,
    /// Index of the version's `dataset.version.committed` log entry (None until appended).
    pub log_index: Option<i64>,
}

/// Counts of one standard table in a version.
#[derive(Clone, Debug, Default, PartialEq, Eq, sqlx::FromRow)]
pub struct VersionTableRow {
    pub table_name: String,
    /// Stored in column `row_count`.
    #[sqlx(rename = "row_count")]
    pub rows: i64,
    pub persons: i64,
    pub coverage_from: Option<String>,
    pub coverage_to: Option<String>,
}

/// One problem of a quarantined record: where it is and a fixed reason, never a value.
#[derive(Clone, Debug, Default, PartialEq, Eq, sqlx::FromRow)]
pub struct VersionProblemRow {
    pub seq: i64,
    pub severity: String,
    pub file: String,
    pub location: String,
    pub field: String,
    pub reason: String,
}

/// Everything stored when a `writing` version is committed.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct VersionCommit {
    pub version_id: i64,
    pub committed_at: i64,
    pub files: i64,
    pub records_accepted: i64,
    pub records_rejected: i64,
    pub warnings: i64,
    pub persons: i64,
    pub persons_shared: i64,
    pub link_records: i64,
    pub identifier_links: i64,
    pub name_links: i64,
    pub coverage_from: Option<String>,
    pub coverage_to: Option<String>,
    pub tables: Vec<VersionTableRow>,
    pub problems: Vec<VersionProblemRow>,
}

const DATASET_COLUMNS: &str = "id, name, holder_id, kind, title_ja, title_en, description_ja, description_en, created_at";

const VERSION_COLUMNS: &str = "id, dataset_id, number, state, submitted_by, created_at, committed_at, files, records_accepted, records_rejected, \
     warnings, persons, persons_shared, link_records, identifier_links, name_links, coverage_from, coverage_to, log_index";

impl Store {
    pub async fn create_dataset(&self, dataset: &NewDataset<'_>, now: i64) -> Result<i64, StoreError> {
        sqlx::query_scalar(
            "INSERT INTO datasets (name, holder_id, kind, title_ja, title_en, description_ja, description_en, created_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING id",
        )
        .bind(dataset.name)
        .bind(dataset.holder_id)
        .bind(dataset.kind)
        .bind(dataset.title_ja)
        .bind(dataset.title_en)
        .bind(dataset.description_ja)
        .bind(dataset.description_en)
        .bind(now)
        .fetch_one(&self.pool)
        .await
        .map_err(|e| match &e {
            sqlx::Error::Database(db) if db.is_foreign_key_violation() => StoreError::NotFound { what: "organization" },
            _ => conflict_or("dataset")(e),
        })
    }

    pub async fn dataset_by_name(&self, name: &str) -> Result<Option<DatasetRow>, StoreError> {
        Ok(sqlx::query_as(&format!("SELECT {DATASET_COLUMNS} FROM datasets WHERE name = $1")).bind(name).fetch_optional(&self.pool).await?)
    }

    pub async fn dataset(&self, id: i64) -> Result<Option<DatasetRow>, StoreError> {
        Ok(sqlx::query_as(&format!("SELECT {DATASET_COLUMNS} FROM datasets WHERE id = $1")).bind(id).fetch_optional(&self.pool).await?)
    }

    /// All datasets, ordered by name.
    pub async fn datasets(&self) -> Result<Vec<DatasetRow>, StoreError> {
        Ok(sqlx::query_as(&format!("SELECT {DATASET_COLUMNS} FROM datasets ORDER BY name")).fetch_all(&self.pool).await?)
    }

    /// Inserts a version in state `writing`, numbered one above the dataset's highest number
    /// so far (of any state), and returns its id and number. One statement, so two intakes
    /// cannot take the same number (the second would be a [`StoreError::Conflict`]).
    pub async fn begin_dataset_version(&self, dataset_id: i64, submitted_by: &str, now: i64) -> Result<(i64, i64), StoreError> {
        sqlx::query_as(
            "INSERT INTO dataset_versions (dataset_id, number, state, submitted_by, created_at)
             SELECT $1, COALESCE(MAX(number), 0) + 1, 'writing', $2, $3 FROM dataset_versions WHERE dataset_id = $1
             RETURNING id, number",
        )
        .bind(dataset_id)
        .bind(submitted_by)
        .bind(now)
        .fetch_one(&self.pool)
        .await
        .map_err(|e| match &e {
            sqlx::Error::Database(db) if db.is_foreign_key_violation() => StoreError::NotFound { what: "dataset" },
            _ => conflict_or("dataset version")(e),
        })
    }

    /// Stores the version's counts, tables and problems and flips it from `writing` to
    /// `committed`, in one transaction. [`StoreError::NotFound`] when no version with this id
    /// is in state `writing` (never begun, deleted by recovery, or already committed).
    pub async fn commit_dataset_version(&self, commit: &VersionCommit) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await?;
        // The update comes first: it checks the state and takes the write lock at once.
        let done = sqlx::query(
            "UPDATE dataset_versions SET state = 'committed', committed_at = $1, files = $2, records_accepted = $3, records_rejected = $4,
             warnings = $5, persons = $6, persons_shared = $7, link_records = $8, identifier_links = $9, name_links = $10,
             coverage_from = $11, coverage_to = $12
             WHERE id = $13 AND state = 'writing'",
        )
        .bind(commit.committed_at)
        .bind(commit.files)
        .bind(commit.records_accepted)
        .bind(commit.records_rejected)
        .bind(commit.warnings)
        .bind(commit.persons)
        .bind(commit.persons_shared)
        .bind(commit.link_records)
        .bind(commit.identifier_links)
        .bind(commit.name_links)
        .bind(&commit.coverage_from)
        .bind(&commit.coverage_to)
        .bind(commit.version_id)
        .execute(&mut *tx)
        .await?;
        if done.rows_affected() != 1 {
            return Err(StoreError::NotFound { what: "writing dataset version" });
        }
        for t in &commit.tables {
            sqlx::query(
                "INSERT INTO dataset_version_tables (version_id, table_name, row_count, persons, coverage_from, coverage_to)
                 VALUES ($1, $2, $3, $4, $5, $6)",
            )
            .bind(commit.version_id)
            .bind(&t.table_name)
            .bind(t.rows)
            .bind(t.persons)
            .bind(&t.coverage_from)
            .bind(&t.coverage_to)
            .execute(&mut *tx)
            .await
            .map_err(conflict_or("dataset version table"))?;
        }
        for p in &commit.problems {
            sqlx::query(
                "INSERT INTO dataset_version_problems (version_id, seq, severity, file, location, field, reason) VALUES ($1, $2, $3, $4, $5, $6, $7)",
            )
            .bind(commit.version_id)
            .bind(p.seq)
            .bind(&p.severity)
            .bind(&p.file)
            .bind(&p.location)
            .bind(&p.field)
            .bind(&p.reason)
            .execute(&mut *tx)
            .await
            .map_err(conflict_or("dataset version problem"))?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Versions still in state `writing`, oldest first: what an interrupted intake left, for
    /// recovery.
    pub async fn writing_dataset_versions(&self) -> Result<Vec<DatasetVersionRow>, StoreError> {
        Ok(sqlx::query_as(&format!("SELECT {VERSION_COLUMNS} FROM dataset_versions WHERE state = 'writing' ORDER BY id"))
            .fetch_all(&self.pool)
            .await?)
    }

    /// One version by id, whatever its state.
    pub async fn dataset_version(&self, version_id: i64) -> Result<Option<DatasetVersionRow>, StoreError> {
        Ok(sqlx::query_as(&format!("SELECT {VERSION_COLUMNS} FROM dataset_versions WHERE id = $1"))
            .bind(version_id)
            .fetch_optional(&self.pool)
            .await?)
    }

    /// Records the log index of a committed version's `dataset.version.committed` entry.
    pub async fn set_dataset_version_log_index(&self, version_id: i64, log_index: i64) -> Result<(), StoreError> {
        let done = sqlx::query("UPDATE dataset_versions SET log_index = $2 WHERE id = $1 AND state = 'committed' AND log_index IS NULL")
            .bind(version_id)
            .bind(log_index)
            .execute(&self.pool)
            .await?;
        if done.rows_affected() == 1 {
            Ok(())
        } else {
            Err(StoreError::NotFound { what: "unlogged committed dataset version" })
        }
    }

    /// Committed versions whose log entry was not appended (a crash right after the commit).
    pub async fn unlogged_dataset_versions(&self) -> Result<Vec<DatasetVersionRow>, StoreError> {
        Ok(sqlx::query_as(&format!("SELECT {VERSION_COLUMNS} FROM dataset_versions WHERE state = 'committed' AND log_index IS NULL ORDER BY id"))
            .fetch_all(&self.pool)
            .await?)
    }

    /// Deletes a version in state `writing` with its child rows. A committed version is
    /// never deleted here: [`StoreError::NotFound`] when no `writing` version has this id.
    pub async fn delete_dataset_version(&self, version_id: i64) -> Result<(), StoreError> {
        let done = sqlx::query("DELETE FROM dataset_versions WHERE id = $1 AND state = 'writing'").bind(version_id).execute(&self.pool).await?;
        if done.rows_affected() == 1 {
            Ok(())
        } else {
            Err(StoreError::NotFound { what: "writing dataset version" })
        }
    }

    /// The dataset's committed versions, ordered by number.
    pub async fn dataset_versions(&self, dataset_id: i64) -> Result<Vec<DatasetVersionRow>, StoreError> {
        Ok(sqlx::query_as(&format!("SELECT {VERSION_COLUMNS} FROM dataset_versions WHERE dataset_id = $1 AND state = 'committed' ORDER BY number"))
            .bind(dataset_id)
            .fetch_all(&self.pool)
            .await?)
    }

    /// The dataset's committed version with the highest number.
    pub async fn latest_dataset_version(&self, dataset_id: i64) -> Result<Option<DatasetVersionRow>, StoreError> {
        Ok(sqlx::query_as(&format!(
            "SELECT {VERSION_COLUMNS} FROM dataset_versions WHERE dataset_id = $1 AND state = 'committed' ORDER BY number DESC LIMIT 1"
        ))
        .bind(dataset_id)
        .fetch_optional(&self.pool)
        .await?)
    }

    /// The version's tables, ordered by table name.
    pub async fn dataset_version_tables(&self, version_id: i64) -> Result<Vec<VersionTableRow>, StoreError> {
        Ok(sqlx::query_as(
            "SELECT table_name, row_count, persons, coverage_from, coverage_to FROM dataset_version_tables WHERE version_id = $1 ORDER BY table_name",
        )
        .bind(version_id)
        .fetch_all(&self.pool)
        .await?)
    }

    /// The version's first `limit` problems, ordered by `seq`.
    pub async fn dataset_version_problems(&self, version_id: i64, limit: i64) -> Result<Vec<VersionProblemRow>, StoreError> {
        Ok(sqlx::query_as(
            "SELECT seq, severity, file, location, field, reason FROM dataset_version_problems WHERE version_id = $1 ORDER BY seq LIMIT $2",
        )
        .bind(version_id)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?)
    }

    /// (dataset name, version number) of every committed version, ordered by name and number.
    pub async fn committed_dataset_tags(&self) -> Result<Vec<(String, i64)>, StoreError> {
        Ok(sqlx::query_as(
            "SELECT d.name, v.number FROM dataset_versions v JOIN datasets d ON d.id = v.dataset_id
             WHERE v.state = 'committed' ORDER BY d.name, v.number",
        )
        .fetch_all(&self.pool)
        .await?)
    }

    /// The latest committed version of every dataset: (dataset name, number), by name.
    pub async fn latest_committed_versions(&self) -> Result<Vec<(String, i64)>, StoreError> {
        Ok(sqlx::query_as(
            "SELECT d.name, MAX(v.number) FROM dataset_versions v JOIN datasets d ON d.id = v.dataset_id
             WHERE v.state = 'committed' GROUP BY d.name ORDER BY d.name",
        )
        .fetch_all(&self.pool)
        .await?)
    }
}
