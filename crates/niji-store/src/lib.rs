//! Niji's metadata store: accounts, roles, sessions, wrapped data keys, datasets and their
//! versions, and applications for data use with their review (criteria, tariffs,
//! accreditations, committees, votes, decisions), data permits, deletion certificates and the
//! outbox of messages to send, jobs and releases, and the stops of permits' runs on real data.
//!
//! SQLite embedded by default (one file in the instance folder, WAL mode, foreign keys on,
//! migrations embedded in the binary). Callers see only [`Store`] and its row types: SQL is
//! written with `$n` placeholders and portable types (BIGINT Unix seconds, BOOLEAN, BLOB)
//! so that a PostgreSQL backend can join behind the same methods without rewriting callers.
//!
//! Invariants: no HTTP, no business rules (who may grant a role is decided in
//! `niji-accounts`); secrets arrive here already hashed or sealed. A dataset version is
//! visible only once committed: it is written in state `writing` first and flipped to
//! `committed` in the transaction that stores its tables and problems. Application and permit
//! statuses change by compare-and-set (the caller names the status it expects), so two
//! concurrent transitions cannot both win; complex values (forms, policies, reasons) are JSON
//! text produced by the caller and stored as given.

mod accounts;
mod applications;
mod citizens;
mod datasets;
mod extracts;
mod jobs;
mod keys;
mod register;
mod stops;

pub use accounts::{ApiTokenRow, NewUser, OrganizationRow, RoleGrantRow, SessionRow, UserRow};
pub use applications::{
    AccreditationRow, ApplicationEventRow, ApplicationRow, ApplicationTriage, CommitteeMemberRow, CommitteeRow, ConsentScopeRow,
    DeletionCertificateRow, NewAccreditation, NewApplication, NewApplicationEvent, NewCommitteeMember, NewDeletionCertificate, NewNotification,
    NewPermit, OutboxRow, PermitRow, PublishedVersionRow, ReviewConflictRow, ReviewDecisionRow, ReviewVoteRow,
};
pub use citizens::{AnalysisRunRow, CitizenCredentialRow, NewAnalysisRun, NewCitizenCredential, QueryOutputRow};
pub use datasets::{DatasetRow, DatasetVersionRow, NewDataset, VersionCommit, VersionProblemRow, VersionTableRow};
pub use extracts::{ExtractRow, NewExtract};
pub use jobs::{JobOutputRow, JobRow, NewJobOutput, ReleaseRow, SignoffRow};
pub use keys::DataKeyRow;
pub use register::{NewPermitOutcome, PermitOutcomeRow, RegisterPermitRow, ReviewTimingRow};
pub use stops::{NewClearance, NewRun, StopRow};

/// The permits of the project that permit `$1` belongs to: the permit and the versions amending
/// it or amended by it (each a row of its own, `permits.application_id` in common). What a permit
/// must remember across amendments (releases and answers that differencing compares with, the
/// budget of stops) is selected over these, never over the one row.
pub(crate) const PERMIT_LINEAGE: &str =
    "SELECT l.id FROM permits l WHERE l.application_id = (SELECT c.application_id FROM permits c WHERE c.id = $1)";

use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::SqlitePool;
use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("{what} already exists")]
    Conflict { what: &'static str },
    #[error("{what} not found")]
    NotFound { what: &'static str },
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    #[error("migration failed: {0}")]
    Migration(#[from] sqlx::migrate::MigrateError),
    #[error("stored value is invalid: {0}")]
    Invalid(String),
}

/// The metadata store. Cloning is cheap (a pool handle).
#[derive(Clone, Debug)]
pub struct Store {
    pool: SqlitePool,
}

static SQLITE_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite");

impl Store {
    /// Opens (creating if needed) the SQLite database at `path` and applies pending migrations.
    pub async fn open_sqlite(path: &Path) -> Result<Self, StoreError> {
        let options = SqliteConnectOptions::from_str("sqlite://")?
            .filename(path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full)
            .foreign_keys(true)
            .busy_timeout(Duration::from_secs(10));
        let pool = SqlitePoolOptions::new().max_connections(8).connect_with(options).await?;
        SQLITE_MIGRATIONS.run(&pool).await?;
        Ok(Self { pool })
    }

    /// Number of migrations applied, for the status page.
    pub async fn schema_version(&self) -> Result<i64, StoreError> {
        Ok(sqlx::query_scalar("SELECT COALESCE(MAX(version), 0) FROM _sqlx_migrations WHERE success").fetch_one(&self.pool).await?)
    }

    pub async fn close(&self) {
        self.pool.close().await;
    }
}

/// Maps a unique-constraint violation to [`StoreError::Conflict`].
fn conflict_or(what: &'static str) -> impl FnOnce(sqlx::Error) -> StoreError {
    move |e| match &e {
        sqlx::Error::Database(db) if db.is_unique_violation() => StoreError::Conflict { what },
        _ => StoreError::Database(e),
    }
}
