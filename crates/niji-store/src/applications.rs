//! Applications for data use, the review body, data permits and the outbox (issue 4):
//! datasets' consent scopes, published review criteria and tariffs, researchers'
//! accreditations, committees and their members, applications with their events, review
//! conflicts, votes and decisions, permits with their deletion certificates, and messages to
//! send.
//!
//! Complex values (an application's form, a permit's policy, triage and decision reasons, a
//! consent scope) are JSON text produced by the caller and stored as given. Which statuses
//! exist and which transitions are legal is decided by the caller: the store offers
//! compare-and-set status updates ([`Store::set_application_status`],
//! [`Store::set_permit_status`]) so that of two concurrent transitions from the same status
//! only one wins, and makes each method atomic.

use crate::{conflict_or, Store, StoreError, PERMIT_LINEAGE};

/// What the data subjects of a dataset consented to.
#[derive(Clone, Debug, PartialEq, Eq, sqlx::FromRow)]
pub struct ConsentScopeRow {
    pub dataset_id: i64,
    /// JSON, as given by the caller.
    pub scope: String,
    pub updated_by: String,
    pub updated_at: i64,
}

/// One published version of the review criteria or of the tariff.
#[derive(Clone, Debug, PartialEq, Eq, sqlx::FromRow)]
pub struct PublishedVersionRow {
    pub version: String,
    /// ISO date.
    pub published_on: String,
    /// The text as published (TOML).
    pub body: String,
    pub recorded_at: i64,
}

#[derive(Clone, Debug, PartialEq, Eq, sqlx::FromRow)]
pub struct AccreditationRow {
    pub id: i64,
    pub user_id: i64,
    pub course: String,
    /// ISO date.
    pub completed_on: String,
    /// ISO date.
    pub expires_on: String,
    pub recorded_by: String,
    pub recorded_at: i64,
}

pub struct NewAccreditation<'a> {
    pub user_id: i64,
    pub course: &'a str,
    pub completed_on: &'a str,
    pub expires_on: &'a str,
    pub recorded_by: &'a str,
}

#[derive(Clone, Debug, PartialEq, Eq, sqlx::FromRow)]
pub struct CommitteeRow {
    pub id: i64,
    pub name: String,
    pub created_at: i64,
}

#[derive(Clone, Debug, PartialEq, Eq, sqlx::FromRow)]
pub struct CommitteeMemberRow {
    pub id: i64,
    pub committee_id: i64,
    /// None for a member without an account.
    pub user_id: Option<i64>,
    pub display_name: String,
    pub field: String,
    pub external: bool,
    pub gender: String,
    pub active: bool,
    pub added_at: i64,
    pub deactivated_at: Option<i64>,
}

pub struct NewCommitteeMember<'a> {
    pub committee_id: i64,
    pub user_id: Option<i64>,
    pub display_name: &'a str,
    pub field: &'a str,
    pub external: bool,
    pub gender: &'a str,
}

#[derive(Clone, Debug, PartialEq, Eq, sqlx::FromRow)]
pub struct ApplicationRow {
    pub id: i64,
    pub applicant_id: i64,
    pub organization_id: Option<i64>,
    pub title: String,
    pub status: String,
    /// JSON, as given by the caller.
    pub form: String,
    pub case_code: Option<String>,
    pub tier: Option<String>,
    /// JSON, as given by the caller.
    pub reasons: Option<String>,
    pub criteria_version: Option<String>,
    pub fee_yen: Option<i64>,
    pub committee_id: Option<i64>,
    pub submitted_at: Option<i64>,
    pub deadline_at: Option<i64>,
    pub decided_at: Option<i64>,
    pub created_at: i64,
    pub updated_at: i64,
}

pub struct NewApplication<'a> {
    pub applicant_id: i64,
    pub organization_id: Option<i64>,
    pub title: &'a str,
    /// JSON.
    pub form: &'a str,
}

/// The outcome of an application's triage, stored by [`Store::record_triage`].
pub struct ApplicationTriage<'a> {
    pub case_code: &'a str,
    pub tier: &'a str,
    /// JSON.
    pub reasons: &'a str,
    pub criteria_version: &'a str,
    pub fee_yen: i64,
    pub deadline_at: Option<i64>,
    pub committee_id: Option<i64>,
    pub submitted_at: i64,
}

#[derive(Clone, Debug, PartialEq, Eq, sqlx::FromRow)]
pub struct ApplicationEventRow {
    pub id: i64,
    pub application_id: i64,
    pub at: i64,
    pub actor: String,
    pub kind: String,
    pub note: String,
    pub log_index: Option<i64>,
}

pub struct NewApplicationEvent<'a> {
    pub at: i64,
    pub actor: &'a str,
    pub kind: &'a str,
    pub note: &'a str,
    pub log_index: Option<i64>,
}

#[derive(Clone, Debug, PartialEq, Eq, sqlx::FromRow)]
pub struct ReviewConflictRow {
    pub application_id: i64,
    pub member_id: i64,
    pub declared_at: i64,
}

/// A member's vote on an application; also what [`Store::cast_review_vote`] stores.
#[derive(Clone, Debug, PartialEq, Eq, sqlx::FromRow)]
pub struct ReviewVoteRow {
    pub application_id: i64,
    pub member_id: i64,
    pub vote: String,
    pub opinion: String,
    pub cast_at: i64,
}

/// The review decision on an application; also what [`Store::record_review_decision`] stores.
#[derive(Clone, Debug, PartialEq, Eq, sqlx::FromRow)]
pub struct ReviewDecisionRow {
    pub application_id: i64,
    pub decision: String,
    /// JSON, as given by the caller.
    pub reasons: String,
    pub criteria_version: String,
    pub votes_for: i64,
    pub votes_total: i64,
    pub decided_by: String,
    pub decided_at: i64,
}

#[derive(Clone, Debug, PartialEq, Eq, sqlx::FromRow)]
pub struct PermitRow {
    pub id: i64,
    pub application_id: i64,
    /// 1, 2, ... per application.
    pub version: i64,
    /// `active`, `suspended`, `revoked`, `expired` or `superseded`.
    pub status: String,
    /// JSON, as given by the caller.
    pub policy: String,
    /// ISO date.
    pub starts_on: String,
    /// ISO date.
    pub expires_on: String,
    /// Id of the permit's data key (which may since have been destroyed).
    pub key_id: String,
    pub created_at: i64,
    pub changed_at: i64,
    /// Log index of the permit's issuance entry (`permit.issued` or `permit.amended`).
    pub log_index: Option<i64>,
}

pub struct NewPermit<'a> {
    pub application_id: i64,
    /// Initial status, usually `active`.
    pub status: &'a str,
    /// JSON.
    pub policy: &'a str,
    pub starts_on: &'a str,
    pub expires_on: &'a str,
    pub key_id: &'a str,
}

#[derive(Clone, Debug, PartialEq, Eq, sqlx::FromRow)]
pub struct DeletionCertificateRow {
    pub id: i64,
    pub permit_id: i64,
    pub key_id: String,
    pub reason: String,
    pub destroyed_at: i64,
    pub log_index: Option<i64>,
}

pub struct NewDeletionCertificate<'a> {
    pub permit_id: i64,
    pub key_id: &'a str,
    pub reason: &'a str,
    pub destroyed_at: i64,
    pub log_index: Option<i64>,
}

/// A message to send (e-mail) and, once sent, a notification shown in the portal.
#[derive(Clone, Debug, PartialEq, Eq, sqlx::FromRow)]
pub struct OutboxRow {
    pub id: i64,
    pub user_id: Option<i64>,
    pub address: String,
    pub subject: String,
    pub body: String,
    pub created_at: i64,
    pub sent_at: Option<i64>,
    /// Sending attempts so far, failed or not.
    pub attempts: i64,
    pub last_error: Option<String>,
}

pub struct NewNotification<'a> {
    pub user_id: Option<i64>,
    pub address: &'a str,
    pub subject: &'a str,
    pub body: &'a str,
}

const PUBLISHED_COLUMNS: &str = "version, published_on, body, recorded_at";

const ACCREDITATION_COLUMNS: &str = "id, user_id, course, completed_on, expires_on, recorded_by, recorded_at";

const MEMBER_COLUMNS: &str = "id, committee_id, user_id, display_name, field, external, gender, active, added_at, deactivated_at";

const APPLICATION_COLUMNS: &str = "id, applicant_id, organization_id, title, status, form, case_code, tier, reasons, criteria_version, fee_yen, \
     committee_id, submitted_at, deadline_at, decided_at, created_at, updated_at";

const EVENT_COLUMNS: &str = "id, application_id, at, actor, kind, note, log_index";

const DECISION_COLUMNS: &str = "application_id, decision, reasons, criteria_version, votes_for, votes_total, decided_by, decided_at";

const PERMIT_COLUMNS: &str = "id, application_id, version, status, policy, starts_on, expires_on, key_id, created_at, changed_at, log_index";

const CERTIFICATE_COLUMNS: &str = "id, permit_id, key_id, reason, destroyed_at, log_index";

const OUTBOX_COLUMNS: &str = "id, user_id, address, subject, body, created_at, sent_at, attempts, last_error";

/// Maps a foreign-key violation to [`StoreError::NotFound`] (`missing`) and a unique-constraint
/// violation to [`StoreError::Conflict`] (`what`).
fn missing_or(missing: &'static str, what: &'static str) -> impl FnOnce(sqlx::Error) -> StoreError {
    move |e| match &e {
        sqlx::Error::Database(db) if db.is_foreign_key_violation() => StoreError::NotFound { what: missing },
        _ => conflict_or(what)(e),
    }
}

fn expect_one(rows: u64, what: &'static str) -> Result<(), StoreError> {
    if rows == 1 {
        Ok(())
    } else {
        Err(StoreError::NotFound { what })
    }
}

impl Store {
    // ----- Consent scopes -----

    /// Sets the dataset's consent scope (JSON), replacing any earlier one.
    /// [`StoreError::NotFound`] when the dataset does not exist.
    pub async fn set_dataset_consent_scope(&self, dataset_id: i64, scope: &str, updated_by: &str, now: i64) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO dataset_consent_scopes (dataset_id, scope, updated_by, updated_at) VALUES ($1, $2, $3, $4)
             ON CONFLICT (dataset_id) DO UPDATE SET scope = excluded.scope, updated_by = excluded.updated_by, updated_at = excluded.updated_at",
        )
        .bind(dataset_id)
        .bind(scope)
        .bind(updated_by)
        .bind(now)
        .execute(&self.pool)
        .await
        .map_err(missing_or("dataset", "consent scope"))?;
        Ok(())
    }

    /// The dataset's consent scope, if one was set.
    pub async fn dataset_consent_scope(&self, dataset_id: i64) -> Result<Option<ConsentScopeRow>, StoreError> {
        Ok(sqlx::query_as("SELECT dataset_id, scope, updated_by, updated_at FROM dataset_consent_scopes WHERE dataset_id = $1")
            .bind(dataset_id)
            .fetch_optional(&self.pool)
            .await?)
    }

    // ----- Review criteria and tariffs -----

    async fn insert_published(
        &self,
        table: &str,
        what: &'static str,
        version: &str,
        published_on: &str,
        body: &str,
        now: i64,
    ) -> Result<(), StoreError> {
        sqlx::query(&format!("INSERT INTO {table} (version, published_on, body, recorded_at) VALUES ($1, $2, $3, $4)"))
            .bind(version)
            .bind(published_on)
            .bind(body)
            .bind(now)
            .execute(&self.pool)
            .await
            .map_err(conflict_or(what))?;
        Ok(())
    }

    async fn published(&self, table: &str, version: &str) -> Result<Option<PublishedVersionRow>, StoreError> {
        Ok(sqlx::query_as(&format!("SELECT {PUBLISHED_COLUMNS} FROM {table} WHERE version = $1")).bind(version).fetch_optional(&self.pool).await?)
    }

    async fn published_all(&self, table: &str) -> Result<Vec<PublishedVersionRow>, StoreError> {
        Ok(sqlx::query_as(&format!("SELECT {PUBLISHED_COLUMNS} FROM {table} ORDER BY published_on, recorded_at, version"))
            .fetch_all(&self.pool)
            .await?)
    }

    async fn published_latest(&self, table: &str) -> Result<Option<PublishedVersionRow>, StoreError> {
        Ok(sqlx::query_as(&format!("SELECT {PUBLISHED_COLUMNS} FROM {table} ORDER BY published_on DESC, recorded_at DESC, version DESC LIMIT 1"))
            .fetch_optional(&self.pool)
            .await?)
    }

    /// Records a published version of the review criteria. Published criteria are never
    /// edited: [`StoreError::Conflict`] when the version exists.
    pub async fn insert_review_criteria(&self, version: &str, published_on: &str, body: &str, now: i64) -> Result<(), StoreError> {
        self.insert_published("review_criteria", "review criteria version", version, published_on, body, now).await
    }

    /// One version of the review criteria.
    pub async fn review_criteria(&self, version: &str) -> Result<Option<PublishedVersionRow>, StoreError> {
        self.published("review_criteria", version).await
    }

    /// Every version of the review criteria, oldest first (by `published_on`, then `recorded_at`).
    pub async fn review_criteria_versions(&self) -> Result<Vec<PublishedVersionRow>, StoreError> {
        self.published_all("review_criteria").await
    }

    /// The review criteria in force: the latest `published_on`, then the latest `recorded_at`.
    pub async fn latest_review_criteria(&self) -> Result<Option<PublishedVersionRow>, StoreError> {
        self.published_latest("review_criteria").await
    }

    /// Records a published version of the tariff. [`StoreError::Conflict`] when the version
    /// exists.
    pub async fn insert_tariff(&self, version: &str, published_on: &str, body: &str, now: i64) -> Result<(), StoreError> {
        self.insert_published("tariffs", "tariff version", version, published_on, body, now).await
    }

    /// One version of the tariff.
    pub async fn tariff(&self, version: &str) -> Result<Option<PublishedVersionRow>, StoreError> {
        self.published("tariffs", version).await
    }

    /// Every version of the tariff, oldest first (by `published_on`, then `recorded_at`).
    pub async fn tariffs(&self) -> Result<Vec<PublishedVersionRow>, StoreError> {
        self.published_all("tariffs").await
    }

    /// The tariff in force: the latest `published_on`, then the latest `recorded_at`.
    pub async fn latest_tariff(&self) -> Result<Option<PublishedVersionRow>, StoreError> {
        self.published_latest("tariffs").await
    }

    // ----- Accreditations -----

    /// Records a completed course. [`StoreError::NotFound`] when the user does not exist.
    pub async fn add_accreditation(&self, a: &NewAccreditation<'_>, now: i64) -> Result<i64, StoreError> {
        sqlx::query_scalar(
            "INSERT INTO accreditations (user_id, course, completed_on, expires_on, recorded_by, recorded_at)
             VALUES ($1, $2, $3, $4, $5, $6) RETURNING id",
        )
        .bind(a.user_id)
        .bind(a.course)
        .bind(a.completed_on)
        .bind(a.expires_on)
        .bind(a.recorded_by)
        .bind(now)
        .fetch_one(&self.pool)
        .await
        .map_err(missing_or("user", "accreditation"))
    }

    /// The user's accreditations, ordered by `completed_on` then id.
    pub async fn accreditations_for_user(&self, user_id: i64) -> Result<Vec<AccreditationRow>, StoreError> {
        Ok(sqlx::query_as(&format!("SELECT {ACCREDITATION_COLUMNS} FROM accreditations WHERE user_id = $1 ORDER BY completed_on, id"))
            .bind(user_id)
            .fetch_all(&self.pool)
            .await?)
    }

    /// Every accreditation, ordered by id.
    pub async fn accreditations(&self) -> Result<Vec<AccreditationRow>, StoreError> {
        Ok(sqlx::query_as(&format!("SELECT {ACCREDITATION_COLUMNS} FROM accreditations ORDER BY id")).fetch_all(&self.pool).await?)
    }

    // ----- Committees -----

    /// Creates a committee. [`StoreError::Conflict`] when the name is taken.
    pub async fn create_committee(&self, name: &str, now: i64) -> Result<i64, StoreError> {
        sqlx::query_scalar("INSERT INTO committees (name, created_at) VALUES ($1, $2) RETURNING id")
            .bind(name)
            .bind(now)
            .fetch_one(&self.pool)
            .await
            .map_err(conflict_or("committee"))
    }

    /// One committee by id.
    pub async fn committee(&self, id: i64) -> Result<Option<CommitteeRow>, StoreError> {
        Ok(sqlx::query_as("SELECT id, name, created_at FROM committees WHERE id = $1").bind(id).fetch_optional(&self.pool).await?)
    }

    /// Every committee, ordered by name.
    pub async fn committees(&self) -> Result<Vec<CommitteeRow>, StoreError> {
        Ok(sqlx::query_as("SELECT id, name, created_at FROM committees ORDER BY name").fetch_all(&self.pool).await?)
    }

    /// Adds an active member to a committee. [`StoreError::NotFound`] when the committee (or
    /// the user, if given) does not exist.
    pub async fn add_committee_member(&self, m: &NewCommitteeMember<'_>, now: i64) -> Result<i64, StoreError> {
        sqlx::query_scalar(
            "INSERT INTO committee_members (committee_id, user_id, display_name, field, external, gender, active, added_at)
             VALUES ($1, $2, $3, $4, $5, $6, TRUE, $7) RETURNING id",
        )
        .bind(m.committee_id)
        .bind(m.user_id)
        .bind(m.display_name)
        .bind(m.field)
        .bind(m.external)
        .bind(m.gender)
        .bind(now)
        .fetch_one(&self.pool)
        .await
        .map_err(missing_or("committee or user", "committee member"))
    }

    /// One committee member by id, active or not.
    pub async fn committee_member(&self, id: i64) -> Result<Option<CommitteeMemberRow>, StoreError> {
        Ok(sqlx::query_as(&format!("SELECT {MEMBER_COLUMNS} FROM committee_members WHERE id = $1")).bind(id).fetch_optional(&self.pool).await?)
    }

    /// Deactivates a member (members are never deleted). [`StoreError::NotFound`] when no
    /// active member has this id.
    pub async fn deactivate_committee_member(&self, id: i64, now: i64) -> Result<(), StoreError> {
        let done = sqlx::query("UPDATE committee_members SET active = FALSE, deactivated_at = $2 WHERE id = $1 AND active")
            .bind(id)
            .bind(now)
            .execute(&self.pool)
            .await?;
        expect_one(done.rows_affected(), "active committee member")
    }

    /// The committee's members, active or not, ordered by id.
    pub async fn committee_members(&self, committee_id: i64) -> Result<Vec<CommitteeMemberRow>, StoreError> {
        Ok(sqlx::query_as(&format!("SELECT {MEMBER_COLUMNS} FROM committee_members WHERE committee_id = $1 ORDER BY id"))
            .bind(committee_id)
            .fetch_all(&self.pool)
            .await?)
    }

    /// The committee's active members, ordered by id.
    pub async fn active_committee_members(&self, committee_id: i64) -> Result<Vec<CommitteeMemberRow>, StoreError> {
        Ok(sqlx::query_as(&format!("SELECT {MEMBER_COLUMNS} FROM committee_members WHERE committee_id = $1 AND active ORDER BY id"))
            .bind(committee_id)
            .fetch_all(&self.pool)
            .await?)
    }

    // ----- Applications -----

    /// Creates an application in status `draft`. [`StoreError::NotFound`] when the applicant
    /// (or the organization, if given) does not exist.
    pub async fn create_application(&self, a: &NewApplication<'_>, now: i64) -> Result<i64, StoreError> {
        sqlx::query_scalar(
            "INSERT INTO applications (applicant_id, organization_id, title, status, form, created_at, updated_at)
             VALUES ($1, $2, $3, 'draft', $4, $5, $5) RETURNING id",
        )
        .bind(a.applicant_id)
        .bind(a.organization_id)
        .bind(a.title)
        .bind(a.form)
        .bind(now)
        .fetch_one(&self.pool)
        .await
        .map_err(missing_or("user or organization", "application"))
    }

    /// Replaces the application's title and form (JSON), whatever its status: whether it may
    /// still be edited is the caller's check. [`StoreError::NotFound`] when the id is unknown.
    pub async fn update_application_form(&self, id: i64, title: &str, form: &str, now: i64) -> Result<(), StoreError> {
        let done = sqlx::query("UPDATE applications SET title = $2, form = $3, updated_at = $4 WHERE id = $1")
            .bind(id)
            .bind(title)
            .bind(form)
            .bind(now)
            .execute(&self.pool)
            .await?;
        expect_one(done.rows_affected(), "application")
    }

    /// Compare-and-set of the application's status: sets `new_status` only if the status is
    /// still `expected_status`, so that of two concurrent transitions only one wins.
    /// [`StoreError::NotFound`] (`application in that status`) when the application does not
    /// exist or its status differs; nothing is changed then.
    pub async fn set_application_status(&self, id: i64, expected_status: &str, new_status: &str, now: i64) -> Result<(), StoreError> {
        let done = sqlx::query("UPDATE applications SET status = $3, updated_at = $4 WHERE id = $1 AND status = $2")
            .bind(id)
            .bind(expected_status)
            .bind(new_status)
            .bind(now)
            .execute(&self.pool)
            .await?;
        expect_one(done.rows_affected(), "application in that status")
    }

    /// [`Store::set_application_status`] and [`Store::append_application_event`] in one
    /// transaction: either the status changed and the event is recorded, or neither. Returns
    /// the event's id.
    pub async fn transition_application(
        &self,
        id: i64,
        expected_status: &str,
        new_status: &str,
        event: &NewApplicationEvent<'_>,
        now: i64,
    ) -> Result<i64, StoreError> {
        let mut tx = self.pool.begin().await?;
        // The update comes first: it checks the status and takes the write lock at once.
        let done = sqlx::query("UPDATE applications SET status = $3, updated_at = $4 WHERE id = $1 AND status = $2")
            .bind(id)
            .bind(expected_status)
            .bind(new_status)
            .bind(now)
            .execute(&mut *tx)
            .await?;
        expect_one(done.rows_affected(), "application in that status")?;
        let event_id = sqlx::query_scalar(
            "INSERT INTO application_events (application_id, at, actor, kind, note, log_index) VALUES ($1, $2, $3, $4, $5, $6) RETURNING id",
        )
        .bind(id)
        .bind(event.at)
        .bind(event.actor)
        .bind(event.kind)
        .bind(event.note)
        .bind(event.log_index)
        .fetch_one(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(event_id)
    }

    /// Stores the outcome of triage (case code, tier, reasons, criteria version, fee,
    /// deadline, committee, submission time), whatever the application's status.
    /// [`StoreError::NotFound`] when the application (or the committee, if given) does not
    /// exist.
    pub async fn record_triage(&self, id: i64, triage: &ApplicationTriage<'_>, now: i64) -> Result<(), StoreError> {
        let done = sqlx::query(
            "UPDATE applications SET case_code = $2, tier = $3, reasons = $4, criteria_version = $5, fee_yen = $6, deadline_at = $7,
             committee_id = $8, submitted_at = $9, updated_at = $10
             WHERE id = $1",
        )
        .bind(id)
        .bind(triage.case_code)
        .bind(triage.tier)
        .bind(triage.reasons)
        .bind(triage.criteria_version)
        .bind(triage.fee_yen)
        .bind(triage.deadline_at)
        .bind(triage.committee_id)
        .bind(triage.submitted_at)
        .bind(now)
        .execute(&self.pool)
        .await
        .map_err(missing_or("committee", "application"))?;
        expect_one(done.rows_affected(), "application")
    }

    /// One application by id.
    pub async fn application(&self, id: i64) -> Result<Option<ApplicationRow>, StoreError> {
        Ok(sqlx::query_as(&format!("SELECT {APPLICATION_COLUMNS} FROM applications WHERE id = $1")).bind(id).fetch_optional(&self.pool).await?)
    }

    /// Every application, ordered by id.
    pub async fn applications(&self) -> Result<Vec<ApplicationRow>, StoreError> {
        Ok(sqlx::query_as(&format!("SELECT {APPLICATION_COLUMNS} FROM applications ORDER BY id")).fetch_all(&self.pool).await?)
    }

    /// The applicant's applications, ordered by id.
    pub async fn applications_by_applicant(&self, applicant_id: i64) -> Result<Vec<ApplicationRow>, StoreError> {
        Ok(sqlx::query_as(&format!("SELECT {APPLICATION_COLUMNS} FROM applications WHERE applicant_id = $1 ORDER BY id"))
            .bind(applicant_id)
            .fetch_all(&self.pool)
            .await?)
    }

    /// The applications in this status, ordered by id.
    pub async fn applications_by_status(&self, status: &str) -> Result<Vec<ApplicationRow>, StoreError> {
        Ok(sqlx::query_as(&format!("SELECT {APPLICATION_COLUMNS} FROM applications WHERE status = $1 ORDER BY id"))
            .bind(status)
            .fetch_all(&self.pool)
            .await?)
    }

    /// Appends an event to the application's history and returns its id.
    /// [`StoreError::NotFound`] when the application does not exist.
    pub async fn append_application_event(&self, application_id: i64, event: &NewApplicationEvent<'_>) -> Result<i64, StoreError> {
        sqlx::query_scalar(
            "INSERT INTO application_events (application_id, at, actor, kind, note, log_index) VALUES ($1, $2, $3, $4, $5, $6) RETURNING id",
        )
        .bind(application_id)
        .bind(event.at)
        .bind(event.actor)
        .bind(event.kind)
        .bind(event.note)
        .bind(event.log_index)
        .fetch_one(&self.pool)
        .await
        .map_err(missing_or("application", "application event"))
    }

    /// The application's events, ordered by id.
    pub async fn application_events(&self, application_id: i64) -> Result<Vec<ApplicationEventRow>, StoreError> {
        Ok(sqlx::query_as(&format!("SELECT {EVENT_COLUMNS} FROM application_events WHERE application_id = $1 ORDER BY id"))
            .bind(application_id)
            .fetch_all(&self.pool)
            .await?)
    }

    /// Records the transparency-log index of an event appended without one.
    /// [`StoreError::NotFound`] when no event with this id lacks a log index.
    pub async fn set_application_event_log_index(&self, event_id: i64, log_index: i64) -> Result<(), StoreError> {
        let done = sqlx::query("UPDATE application_events SET log_index = $2 WHERE id = $1 AND log_index IS NULL")
            .bind(event_id)
            .bind(log_index)
            .execute(&self.pool)
            .await?;
        expect_one(done.rows_affected(), "unlogged application event")
    }

    // ----- Review -----

    /// Records that a member declared a conflict of interest on an application.
    /// [`StoreError::Conflict`] when already declared; [`StoreError::NotFound`] when the
    /// application or the member does not exist.
    pub async fn declare_review_conflict(&self, application_id: i64, member_id: i64, now: i64) -> Result<(), StoreError> {
        sqlx::query("INSERT INTO review_conflicts (application_id, member_id, declared_at) VALUES ($1, $2, $3)")
            .bind(application_id)
            .bind(member_id)
            .bind(now)
            .execute(&self.pool)
            .await
            .map_err(missing_or("application or committee member", "review conflict"))?;
        Ok(())
    }

    /// The conflicts declared on an application, ordered by member id.
    pub async fn review_conflicts(&self, application_id: i64) -> Result<Vec<ReviewConflictRow>, StoreError> {
        Ok(sqlx::query_as("SELECT application_id, member_id, declared_at FROM review_conflicts WHERE application_id = $1 ORDER BY member_id")
            .bind(application_id)
            .fetch_all(&self.pool)
            .await?)
    }

    /// Records a member's vote. A vote is never changed: [`StoreError::Conflict`] when the
    /// member already voted on the application; [`StoreError::NotFound`] when the application
    /// or the member does not exist.
    pub async fn cast_review_vote(&self, vote: &ReviewVoteRow) -> Result<(), StoreError> {
        sqlx::query("INSERT INTO review_votes (application_id, member_id, vote, opinion, cast_at) VALUES ($1, $2, $3, $4, $5)")
            .bind(vote.application_id)
            .bind(vote.member_id)
            .bind(&vote.vote)
            .bind(&vote.opinion)
            .bind(vote.cast_at)
            .execute(&self.pool)
            .await
            .map_err(missing_or("application or committee member", "review vote"))?;
        Ok(())
    }

    /// The votes on an application, ordered by member id.
    pub async fn review_votes(&self, application_id: i64) -> Result<Vec<ReviewVoteRow>, StoreError> {
        Ok(sqlx::query_as("SELECT application_id, member_id, vote, opinion, cast_at FROM review_votes WHERE application_id = $1 ORDER BY member_id")
            .bind(application_id)
            .fetch_all(&self.pool)
            .await?)
    }

    /// Records the decision on an application and sets the application's `decided_at`, in one
    /// transaction. [`StoreError::Conflict`] when a decision exists (it is never replaced);
    /// [`StoreError::NotFound`] when the application does not exist.
    pub async fn record_review_decision(&self, d: &ReviewDecisionRow) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await?;
        sqlx::query(&format!("INSERT INTO review_decisions ({DECISION_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)"))
            .bind(d.application_id)
            .bind(&d.decision)
            .bind(&d.reasons)
            .bind(&d.criteria_version)
            .bind(d.votes_for)
            .bind(d.votes_total)
            .bind(&d.decided_by)
            .bind(d.decided_at)
            .execute(&mut *tx)
            .await
            .map_err(missing_or("application", "review decision"))?;
        sqlx::query("UPDATE applications SET decided_at = $2, updated_at = $2 WHERE id = $1")
            .bind(d.application_id)
            .bind(d.decided_at)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Starts a new review round of a resubmitted application, in one transaction: every vote
    /// and the decision of the previous round are copied into the application's events (kind
    /// `review.vote_archived` / `review.decision_archived`, the note holding member, vote and
    /// opinion, or decision and reasons) and removed, so that members vote again. Declared
    /// conflicts stay. Returns the number of votes archived.
    pub async fn archive_review_round(&self, application_id: i64, actor: &str, now: i64) -> Result<u64, StoreError> {
        let mut tx = self.pool.begin().await?;
        let votes = sqlx::query(
            "INSERT INTO application_events (application_id, at, actor, kind, note)
             SELECT application_id, $2, $3, 'review.vote_archived', member_id || ' ' || vote || ' ' || opinion
             FROM review_votes WHERE application_id = $1 ORDER BY member_id",
        )
        .bind(application_id)
        .bind(now)
        .bind(actor)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        sqlx::query(
            "INSERT INTO application_events (application_id, at, actor, kind, note)
             SELECT application_id, $2, $3, 'review.decision_archived', decision || ' ' || reasons
             FROM review_decisions WHERE application_id = $1",
        )
        .bind(application_id)
        .bind(now)
        .bind(actor)
        .execute(&mut *tx)
        .await?;
        sqlx::query("DELETE FROM review_votes WHERE application_id = $1").bind(application_id).execute(&mut *tx).await?;
        sqlx::query("DELETE FROM review_decisions WHERE application_id = $1").bind(application_id).execute(&mut *tx).await?;
        sqlx::query("UPDATE applications SET decided_at = NULL, updated_at = $2 WHERE id = $1")
            .bind(application_id)
            .bind(now)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(votes)
    }

    /// The decision on an application, if one was recorded.
    pub async fn review_decision(&self, application_id: i64) -> Result<Option<ReviewDecisionRow>, StoreError> {
        Ok(sqlx::query_as(&format!("SELECT {DECISION_COLUMNS} FROM review_decisions WHERE application_id = $1"))
            .bind(application_id)
            .fetch_optional(&self.pool)
            .await?)
    }

    // ----- Permits -----

    /// Inserts a permit numbered one above the application's highest permit version so far
    /// and returns its id and version. One statement, so two permits cannot take the same
    /// version (the second would be a [`StoreError::Conflict`]). [`StoreError::NotFound`]
    /// when the application does not exist.
    pub async fn create_permit(&self, p: &NewPermit<'_>, now: i64) -> Result<(i64, i64), StoreError> {
        sqlx::query_as(
            "INSERT INTO permits (application_id, version, status, policy, starts_on, expires_on, key_id, created_at, changed_at)
             SELECT $1, COALESCE(MAX(version), 0) + 1, $2, $3, $4, $5, $6, $7, $7 FROM permits WHERE application_id = $1
             RETURNING id, version",
        )
        .bind(p.application_id)
        .bind(p.status)
        .bind(p.policy)
        .bind(p.starts_on)
        .bind(p.expires_on)
        .bind(p.key_id)
        .bind(now)
        .fetch_one(&self.pool)
        .await
        .map_err(missing_or("application", "permit version"))
    }

    /// Sets permit `old_id` from `expected_status` to `superseded` and creates the new permit
    /// (as [`Store::create_permit`]), in one transaction; returns the new id and version.
    /// [`StoreError::NotFound`] (`permit in that status`) when the old permit's status
    /// differs; nothing is changed then.
    pub async fn supersede_permit(&self, old_id: i64, expected_status: &str, p: &NewPermit<'_>, now: i64) -> Result<(i64, i64), StoreError> {
        let mut tx = self.pool.begin().await?;
        let done = sqlx::query("UPDATE permits SET status = 'superseded', changed_at = $3 WHERE id = $1 AND status = $2")
            .bind(old_id)
            .bind(expected_status)
            .bind(now)
            .execute(&mut *tx)
            .await?;
        expect_one(done.rows_affected(), "permit in that status")?;
        let created = sqlx::query_as(
            "INSERT INTO permits (application_id, version, status, policy, starts_on, expires_on, key_id, created_at, changed_at)
             SELECT $1, COALESCE(MAX(version), 0) + 1, $2, $3, $4, $5, $6, $7, $7 FROM permits WHERE application_id = $1
             RETURNING id, version",
        )
        .bind(p.application_id)
        .bind(p.status)
        .bind(p.policy)
        .bind(p.starts_on)
        .bind(p.expires_on)
        .bind(p.key_id)
        .bind(now)
        .fetch_one(&mut *tx)
        .await
        .map_err(missing_or("application", "permit version"))?;
        tx.commit().await?;
        Ok(created)
    }

    /// One permit by id.
    pub async fn permit(&self, id: i64) -> Result<Option<PermitRow>, StoreError> {
        Ok(sqlx::query_as(&format!("SELECT {PERMIT_COLUMNS} FROM permits WHERE id = $1")).bind(id).fetch_optional(&self.pool).await?)
    }

    /// The permit `id` and every other version of its project ([`crate::PERMIT_LINEAGE`]),
    /// ordered by id; empty when there is no such permit.
    pub async fn permit_versions(&self, id: i64) -> Result<Vec<PermitRow>, StoreError> {
        Ok(sqlx::query_as(&format!("SELECT {PERMIT_COLUMNS} FROM permits WHERE id IN ({PERMIT_LINEAGE}) ORDER BY id"))
            .bind(id)
            .fetch_all(&self.pool)
            .await?)
    }

    /// Every permit, ordered by id.
    pub async fn permits(&self) -> Result<Vec<PermitRow>, StoreError> {
        Ok(sqlx::query_as(&format!("SELECT {PERMIT_COLUMNS} FROM permits ORDER BY id")).fetch_all(&self.pool).await?)
    }

    /// The application's permits, ordered by version.
    pub async fn permits_for_application(&self, application_id: i64) -> Result<Vec<PermitRow>, StoreError> {
        Ok(sqlx::query_as(&format!("SELECT {PERMIT_COLUMNS} FROM permits WHERE application_id = $1 ORDER BY version"))
            .bind(application_id)
            .fetch_all(&self.pool)
            .await?)
    }

    /// The permits in status `active`, ordered by id (whether their dates are current is the
    /// caller's check).
    pub async fn active_permits(&self) -> Result<Vec<PermitRow>, StoreError> {
        Ok(sqlx::query_as(&format!("SELECT {PERMIT_COLUMNS} FROM permits WHERE status = 'active' ORDER BY id")).fetch_all(&self.pool).await?)
    }

    /// Compare-and-set of the permit's status: sets `new_status` only if the status is still
    /// `expected_status`. [`StoreError::NotFound`] (`permit in that status`) when the permit
    /// does not exist or its status differs; nothing is changed then.
    pub async fn set_permit_status(&self, id: i64, expected_status: &str, new_status: &str, now: i64) -> Result<(), StoreError> {
        let done = sqlx::query("UPDATE permits SET status = $3, changed_at = $4 WHERE id = $1 AND status = $2")
            .bind(id)
            .bind(expected_status)
            .bind(new_status)
            .bind(now)
            .execute(&self.pool)
            .await?;
        expect_one(done.rows_affected(), "permit in that status")
    }

    // ----- Deletion certificates -----

    /// Records a deletion certificate and returns its id. [`StoreError::NotFound`] when the
    /// permit does not exist.
    pub async fn insert_deletion_certificate(&self, c: &NewDeletionCertificate<'_>) -> Result<i64, StoreError> {
        sqlx::query_scalar(
            "INSERT INTO deletion_certificates (permit_id, key_id, reason, destroyed_at, log_index) VALUES ($1, $2, $3, $4, $5) RETURNING id",
        )
        .bind(c.permit_id)
        .bind(c.key_id)
        .bind(c.reason)
        .bind(c.destroyed_at)
        .bind(c.log_index)
        .fetch_one(&self.pool)
        .await
        .map_err(missing_or("permit", "deletion certificate"))
    }

    /// Deletes data key `c.key_id` (crypto-shredding) and records the deletion certificate, in
    /// one transaction: a certificate exists exactly when the key is gone. Returns the
    /// certificate's id. [`StoreError::NotFound`] when the key or the permit does not exist;
    /// nothing is changed then.
    pub async fn destroy_data_key_with_certificate(&self, c: &NewDeletionCertificate<'_>) -> Result<i64, StoreError> {
        let mut tx = self.pool.begin().await?;
        let done = sqlx::query("DELETE FROM data_keys WHERE id = $1").bind(c.key_id).execute(&mut *tx).await?;
        expect_one(done.rows_affected(), "data key")?;
        let id = sqlx::query_scalar(
            "INSERT INTO deletion_certificates (permit_id, key_id, reason, destroyed_at, log_index) VALUES ($1, $2, $3, $4, $5) RETURNING id",
        )
        .bind(c.permit_id)
        .bind(c.key_id)
        .bind(c.reason)
        .bind(c.destroyed_at)
        .bind(c.log_index)
        .fetch_one(&mut *tx)
        .await
        .map_err(missing_or("permit", "deletion certificate"))?;
        tx.commit().await?;
        Ok(id)
    }

    /// The permit's deletion certificates, ordered by id.
    pub async fn deletion_certificates_for_permit(&self, permit_id: i64) -> Result<Vec<DeletionCertificateRow>, StoreError> {
        Ok(sqlx::query_as(&format!("SELECT {CERTIFICATE_COLUMNS} FROM deletion_certificates WHERE permit_id = $1 ORDER BY id"))
            .bind(permit_id)
            .fetch_all(&self.pool)
            .await?)
    }

    /// Every deletion certificate, ordered by id.
    pub async fn deletion_certificates(&self) -> Result<Vec<DeletionCertificateRow>, StoreError> {
        Ok(sqlx::query_as(&format!("SELECT {CERTIFICATE_COLUMNS} FROM deletion_certificates ORDER BY id")).fetch_all(&self.pool).await?)
    }

    /// Records the transparency-log index of a certificate stored without one.
    /// [`StoreError::NotFound`] when no certificate with this id lacks a log index.
    pub async fn set_deletion_certificate_log_index(&self, id: i64, log_index: i64) -> Result<(), StoreError> {
        let done = sqlx::query("UPDATE deletion_certificates SET log_index = $2 WHERE id = $1 AND log_index IS NULL")
            .bind(id)
            .bind(log_index)
            .execute(&self.pool)
            .await?;
        expect_one(done.rows_affected(), "unlogged deletion certificate")
    }

    // ----- Outbox -----

    /// Queues a message to send and returns its id. [`StoreError::NotFound`] when the user
    /// (if given) does not exist.
    pub async fn enqueue_notification(&self, n: &NewNotification<'_>, now: i64) -> Result<i64, StoreError> {
        sqlx::query_scalar("INSERT INTO outbox (user_id, address, subject, body, created_at) VALUES ($1, $2, $3, $4, $5) RETURNING id")
            .bind(n.user_id)
            .bind(n.address)
            .bind(n.subject)
            .bind(n.body)
            .bind(now)
            .fetch_one(&self.pool)
            .await
            .map_err(missing_or("user", "notification"))
    }

    /// Up to `limit` unsent messages with fewer than `max_attempts` attempts, oldest first.
    pub async fn pending_notifications(&self, max_attempts: i64, limit: i64) -> Result<Vec<OutboxRow>, StoreError> {
        Ok(sqlx::query_as(&format!("SELECT {OUTBOX_COLUMNS} FROM outbox WHERE sent_at IS NULL AND attempts < $1 ORDER BY id LIMIT $2"))
            .bind(max_attempts)
            .bind(limit)
            .fetch_all(&self.pool)
            .await?)
    }

    /// Unsent messages with an address (to mail), fewer than `max_attempts` tries, oldest first.
    pub async fn pending_mail(&self, max_attempts: i64, limit: i64) -> Result<Vec<OutboxRow>, StoreError> {
        Ok(sqlx::query_as(&format!(
            "SELECT {OUTBOX_COLUMNS} FROM outbox WHERE sent_at IS NULL AND address <> '' AND attempts < $1 ORDER BY id LIMIT $2"
        ))
        .bind(max_attempts)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?)
    }

    /// Marks a message sent (counting the attempt). [`StoreError::NotFound`] when no unsent
    /// message has this id.
    pub async fn mark_notification_sent(&self, id: i64, now: i64) -> Result<(), StoreError> {
        let done = sqlx::query("UPDATE outbox SET sent_at = $2, attempts = attempts + 1 WHERE id = $1 AND sent_at IS NULL")
            .bind(id)
            .bind(now)
            .execute(&self.pool)
            .await?;
        expect_one(done.rows_affected(), "unsent notification")
    }

    /// Records a failed sending attempt: one more attempt and its error. The message stays
    /// pending. [`StoreError::NotFound`] when no unsent message has this id.
    pub async fn record_notification_failure(&self, id: i64, error: &str) -> Result<(), StoreError> {
        let done = sqlx::query("UPDATE outbox SET attempts = attempts + 1, last_error = $2 WHERE id = $1 AND sent_at IS NULL")
            .bind(id)
            .bind(error)
            .execute(&self.pool)
            .await?;
        expect_one(done.rows_affected(), "unsent notification")
    }

    /// The user's latest `limit` messages, sent or not, newest first (the portal's
    /// notifications).
    pub async fn notifications_for_user(&self, user_id: i64, limit: i64) -> Result<Vec<OutboxRow>, StoreError> {
        Ok(sqlx::query_as(&format!("SELECT {OUTBOX_COLUMNS} FROM outbox WHERE user_id = $1 ORDER BY id DESC LIMIT $2"))
            .bind(user_id)
            .bind(limit)
            .fetch_all(&self.pool)
            .await?)
    }
}
