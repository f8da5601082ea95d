//! The application, review and permit workflow (issue 4): `niji-review`'s rules applied to the
//! metadata store of an instance, with every step in the transparency log and a notification in
//! the outbox for the applicant.
//!
//! The steps, each a function taking the acting account ([`Actor`]):
//! - operators publish review criteria and a tariff (versioned, never edited), record consent
//!   scopes of datasets, accreditations of researchers, committees and their members;
//! - a researcher drafts an application ([`create_draft`], [`update_draft`]) and [`submit`]s it:
//!   the form is validated, every requested variable must exist in the catalog, every named
//!   researcher must hold a valid accreditation; then triage places it in one of the four cases
//!   with a tier, reasons, the criteria version, a fee estimate and a deadline. Case 1 (within
//!   the consent) is accepted by notification (届出) and gets its permit at once; every other
//!   case goes to the committee;
//! - committee members declare conflicts and vote ([`declare_conflict`], [`cast_vote`]); the
//!   chair records the decision ([`decide`]), which `niji-review` allows only with a valid
//!   composition of non-recused members and a quorum; an approval issues a permit;
//! - the applicant answers a request for changes ([`resubmit`]) or [`withdraw`]s;
//! - the researchers named on a permit report its outcomes ([`report_outcome`]) and are
//!   reminded to three months after a release ([`remind_outcomes`]);
//! - permits are suspended and resumed ([`suspend_permit`], [`resume_permit`]), amended into a
//!   new version ([`amend_permit`]), revoked ([`revoke_permit`]) or expire ([`expire_permits`]):
//!   a closed or superseded version's data key is destroyed (crypto-shredding) and a deletion
//!   certificate recorded.
//!
//! Invariants:
//! - Who may act is decided here (roles and ownership), not in the server.
//! - Every state change is a compare-and-set in the store (two concurrent actions cannot both
//!   win) and is appended to the transparency log; the event row records the log index.
//! - A permit grants only what the application requested and the decision approved
//!   (`PermitPolicy::grant`); its key ([`permit_key_id`]) exists exactly while it is active or
//!   suspended.
//! - Log entries carry ids, codes and counts — never the text of a purpose, an opinion or a
//!   reason.

mod listing;
mod outcomes;

pub use listing::{list_applications, list_permits, ApplicationView, PermitView};
pub use outcomes::{
    is_doi, is_web_url, remind_outcomes, report_outcome, validate_outcome, NewOutcome, OutcomeProblem, MAX_OUTCOME_TITLE_CHARS, OUTCOME_KINDS,
    OUTCOME_REMINDER_DAYS,
};

use niji_core::{AuditEvent, AuditSink, Role};
use niji_instance::{Instance, InstanceError};
use niji_review::{
    ApplicationEvent, ApplicationProblem, ApplicationStatus, ApprovedScope, ConsentScope, Criteria, DecideError, Deliberation, Member, PermitError,
    PermitPolicy, PermitTerms, ResearcherProblem, Tariff, Triage, Vote, VoteError,
};
use niji_store::{NewApplication, NewApplicationEvent, NewDeletionCertificate, NewNotification, NewPermit, Store, StoreError};
use serde::{de::DeserializeOwned, Serialize};
use time::{Date, OffsetDateTime};

pub use niji_review::Application;

/// Who acts: an account and its active roles.
#[derive(Debug, Clone)]
pub struct Actor {
    pub user_id: i64,
    pub roles: Vec<Role>,
}

impl Actor {
    /// Loads the account's active roles.
    pub async fn load(store: &Store, user_id: i64) -> Result<Self, WorkflowError> {
        store.user(user_id).await?.ok_or(WorkflowError::NotFound("user"))?;
        Ok(Self { user_id, roles: store.active_roles(user_id).await? })
    }

    fn audit(&self) -> String {
        format!("user:{}", self.user_id)
    }

    fn require(&self, role: Role) -> Result<(), WorkflowError> {
        if self.roles.contains(&role) {
            Ok(())
        } else {
            Err(WorkflowError::Forbidden(role.as_str()))
        }
    }
}

/// Why a step was refused. Messages are fixed texts with ids and codes, never a form's text.
#[derive(Debug, thiserror::Error)]
pub enum WorkflowError {
    #[error("this needs the role {0}")]
    Forbidden(&'static str),
    #[error("only the applicant may do this")]
    NotTheApplicant,
    #[error("{0} not found")]
    NotFound(&'static str),
    #[error("the application has {} problems", .0.len())]
    Invalid(Vec<ApplicationProblem>),
    #[error("named researchers without a valid accreditation: {}", .0.len())]
    Researchers(Vec<ResearcherProblem>),
    #[error("requested variable {index} is not in the catalog")]
    UnknownVariable { index: usize },
    #[error("the application is {from}; this step is not possible")]
    Transition { from: &'static str },
    #[error("no review criteria are published")]
    NoCriteria,
    #[error("review criteria: {0}")]
    Criteria(niji_review::CriteriaError),
    #[error("tariff: {0}")]
    Tariff(niji_review::TariffError),
    #[error(transparent)]
    BadInput(#[from] InputProblem),
    #[error("no tariff is published")]
    NoTariff,
    #[error("no review committee exists")]
    NoCommittee,
    #[error("the account is not a member of the committee reviewing this application")]
    NotAMember,
    #[error(transparent)]
    Vote(#[from] VoteError),
    #[error(transparent)]
    Decide(#[from] DecideError),
    #[error(transparent)]
    Permit(#[from] PermitError),
    #[error("stored {0} is unreadable")]
    Corrupt(&'static str),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Instance(#[from] InstanceError),
    #[error("the audit log refused an entry: {0}")]
    Audit(String),
    #[error("only a researcher named on the permit may do this")]
    NotNamedOnPermit,
    #[error("the outcome has {} problems", .0.len())]
    Outcome(Vec<OutcomeProblem>),
}

/// What was wrong with an operator's set-up input (a fixed variant per rule, so that callers
/// pick their message by variant, never by text).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum InputProblem {
    #[error("an accreditation needs a course and an expiry after its completion")]
    Accreditation,
    #[error("a committee needs a name")]
    CommitteeName,
    #[error("a committee member needs a name")]
    MemberName,
    #[error("the account is already an active member of this committee")]
    AlreadyMember,
    #[error("the member is not active")]
    MemberNotActive,
}

/// The outcome of a submission or resubmission.
#[derive(Debug, Clone)]
pub struct Submitted {
    pub status: ApplicationStatus,
    pub triage: Triage,
    pub fee_yen: u64,
    pub deadline: Date,
    /// The permit issued at once (case 1, notification only).
    pub permit: Option<i64>,
}

/// Publishes the built-in criteria and tariff unless some are published (a fresh instance).
pub async fn publish_defaults(instance: &Instance, actor: &Actor) -> Result<(), WorkflowError> {
    actor.require(Role::Operator)?;
    let store = &instance.store;
    if store.latest_review_criteria().await?.is_none() {
        let c = Criteria::builtin();
        store.insert_review_criteria(&c.version, &c.published.to_string(), niji_review::DEFAULT_CRITERIA_TOML, now()).await?;
        log(instance, actor, "review.criteria.published", format!("criteria:{}", c.version), serde_json::json!({}))?;
    }
    if store.latest_tariff().await?.is_none() {
        let t = Tariff::builtin();
        store.insert_tariff(&t.version, &t.published.to_string(), niji_review::DEFAULT_TARIFF_TOML, now()).await?;
        log(instance, actor, "review.tariff.published", format!("tariff:{}", t.version), serde_json::json!({}))?;
    }
    Ok(())
}

/// Publishes a new version of the review criteria (審査基準). Versions are never edited: a
/// version that exists is refused. Returns the version.
pub async fn publish_criteria(instance: &Instance, actor: &Actor, toml_text: &str) -> Result<String, WorkflowError> {
    actor.require(Role::Operator)?;
    let c = Criteria::from_toml(toml_text).map_err(WorkflowError::Criteria)?;
    instance.store.insert_review_criteria(&c.version, &c.published.to_string(), toml_text, now()).await?;
    log(instance, actor, "review.criteria.published", format!("criteria:{}", c.version), serde_json::json!({}))?;
    Ok(c.version)
}

/// Publishes a new version of the tariff. Returns the version.
pub async fn publish_tariff(instance: &Instance, actor: &Actor, toml_text: &str) -> Result<String, WorkflowError> {
    actor.require(Role::Operator)?;
    let t = Tariff::from_toml(toml_text).map_err(WorkflowError::Tariff)?;
    instance.store.insert_tariff(&t.version, &t.published.to_string(), toml_text, now()).await?;
    log(instance, actor, "review.tariff.published", format!("tariff:{}", t.version), serde_json::json!({}))?;
    Ok(t.version)
}

/// Records that a researcher completed a course (valid from `completed_on` to `expires_on`).
pub async fn add_accreditation(
    instance: &Instance,
    actor: &Actor,
    researcher: i64,
    course: &str,
    completed_on: Date,
    expires_on: Date,
) -> Result<i64, WorkflowError> {
    actor.require(Role::Operator)?;
    if course.trim().is_empty() || expires_on < completed_on {
        return Err(WorkflowError::BadInput(InputProblem::Accreditation));
    }
    let id = instance
        .store
        .add_accreditation(
            &niji_store::NewAccreditation {
                user_id: researcher,
                course: course.trim(),
                completed_on: &completed_on.to_string(),
                expires_on: &expires_on.to_string(),
                recorded_by: &actor.audit(),
            },
            now(),
        )
        .await?;
    log(
        instance,
        actor,
        "accreditation.recorded",
        format!("user:{researcher}"),
        serde_json::json!({"accreditation": id, "expires_on": expires_on.to_string()}),
    )?;
    Ok(id)
}

/// Creates a review committee.
pub async fn create_committee(instance: &Instance, actor: &Actor, name: &str) -> Result<i64, WorkflowError> {
    actor.require(Role::Operator)?;
    if name.trim().is_empty() {
        return Err(WorkflowError::BadInput(InputProblem::CommitteeName));
    }
    let id = instance.store.create_committee(name.trim(), now()).await?;
    log(instance, actor, "committee.created", format!("committee:{id}"), serde_json::json!({}))?;
    Ok(id)
}

/// A member of a committee: the account that votes (if any) and the attributes its
/// composition rules read.
#[derive(Debug, Clone)]
pub struct NewMember {
    pub user_id: Option<i64>,
    pub display_name: String,
    pub field: niji_review::Field,
    pub external: bool,
    pub gender: niji_review::Gender,
}

/// Adds a member to a committee. Refused without a name, or when the account is already an
/// active member of it (one account, one vote).
pub async fn add_committee_member(instance: &Instance, actor: &Actor, committee_id: i64, m: &NewMember) -> Result<i64, WorkflowError> {
    actor.require(Role::Operator)?;
    instance.store.committee(committee_id).await?.ok_or(WorkflowError::NotFound("committee"))?;
    if m.display_name.trim().is_empty() {
        return Err(WorkflowError::BadInput(InputProblem::MemberName));
    }
    if let Some(user) = m.user_id {
        if instance.store.active_committee_members(committee_id).await?.iter().any(|x| x.user_id == Some(user)) {
            return Err(WorkflowError::BadInput(InputProblem::AlreadyMember));
        }
    }
    let id = instance
        .store
        .add_committee_member(
            &niji_store::NewCommitteeMember {
                committee_id,
                user_id: m.user_id,
                display_name: m.display_name.trim(),
                field: &code(&m.field),
                external: m.external,
                gender: &code(&m.gender),
            },
            now(),
        )
        .await?;
    log(
        instance,
        actor,
        "committee.member_added",
        format!("committee:{committee_id}"),
        serde_json::json!({"member": id, "field": code(&m.field), "external": m.external}),
    )?;
    Ok(id)
}

/// Deactivates a committee member (members are never deleted: their past votes stay). Returns
/// the member's committee. Refused when the member is not active.
pub async fn deactivate_committee_member(instance: &Instance, actor: &Actor, member_id: i64) -> Result<i64, WorkflowError> {
    actor.require(Role::Operator)?;
    let member = instance.store.committee_member(member_id).await?.ok_or(WorkflowError::NotFound("committee member"))?;
    if !member.active {
        return Err(WorkflowError::BadInput(InputProblem::MemberNotActive));
    }
    instance.store.deactivate_committee_member(member_id, now()).await?;
    log(instance, actor, "committee.member_deactivated", format!("committee:{}", member.committee_id), serde_json::json!({"member": member_id}))?;
    Ok(member.committee_id)
}

/// Records (or replaces) the consent scope a dataset's data was collected under.
pub async fn set_consent_scope(instance: &Instance, actor: &Actor, dataset: &str, scope: &ConsentScope) -> Result<(), WorkflowError> {
    actor.require(Role::Operator)?;
    let d = instance.store.dataset_by_name(dataset).await?.ok_or(WorkflowError::NotFound("dataset"))?;
    instance.store.set_dataset_consent_scope(d.id, &to_json(scope), &actor.audit(), now()).await?;
    log(instance, actor, "dataset.consent_scope.set", format!("dataset:{dataset}"), serde_json::json!({}))?;
    Ok(())
}

/// Creates a draft owned by the actor (a researcher).
pub async fn create_draft(instance: &Instance, actor: &Actor, form: &Application) -> Result<i64, WorkflowError> {
    actor.require(Role::Researcher)?;
    let user = instance.store.user(actor.user_id).await?.ok_or(WorkflowError::NotFound("user"))?;
    let id = instance
        .store
        .create_application(
            &NewApplication { applicant_id: actor.user_id, organization_id: user.organization_id, title: &form.title, form: &to_json(form) },
            now(),
        )
        .await?;
    event(instance, actor, id, "application.created", serde_json::json!({})).await?;
    Ok(id)
}

/// Replaces the form of a draft (or of an application whose changes were requested).
pub async fn update_draft(instance: &Instance, actor: &Actor, id: i64, form: &Application) -> Result<(), WorkflowError> {
    let row = owned(instance, actor, id).await?;
    let status = status_of(&row.status)?;
    if !matches!(status, ApplicationStatus::Draft | ApplicationStatus::ChangesRequested) {
        return Err(WorkflowError::Transition { from: status.as_str() });
    }
    instance.store.update_application_form(id, &form.title, &to_json(form), now()).await?;
    Ok(())
}

/// Submits a draft: validation, catalog and accreditation checks, triage, fee, deadline.
pub async fn submit(instance: &Instance, actor: &Actor, id: i64, today: Date) -> Result<Submitted, WorkflowError> {
    let row = owned(instance, actor, id).await?;
    let from = status_of(&row.status)?;
    let submitted = from.apply(ApplicationEvent::Submit).map_err(|_| WorkflowError::Transition { from: from.as_str() })?;
    let form: Application = from_json(&row.form, "application form")?;
    check_form(instance, &form, today).await?;
    transition(instance, actor, id, from, submitted, "application.submitted").await?;
    triage_and_route(instance, actor, id, &form, submitted, today).await
}

/// Resubmits after a request for changes (the form may have been updated meanwhile).
pub async fn resubmit(instance: &Instance, actor: &Actor, id: i64, today: Date) -> Result<Submitted, WorkflowError> {
    let row = owned(instance, actor, id).await?;
    let from = status_of(&row.status)?;
    let resubmitted = from.apply(ApplicationEvent::Resubmit).map_err(|_| WorkflowError::Transition { from: from.as_str() })?;
    let form: Application = from_json(&row.form, "application form")?;
    check_form(instance, &form, today).await?;
    transition(instance, actor, id, from, resubmitted, "application.resubmitted").await?;
    // A new round: the committee reviews the changed application afresh (the previous round's
    // votes and decision stay in the history and the log).
    let archived = instance.store.archive_review_round(id, &actor.audit(), now()).await?;
    log(instance, actor, "review.round_started", format!("application:{id}"), serde_json::json!({"archived_votes": archived}))?;
    triage_and_route(instance, actor, id, &form, resubmitted, today).await
}

/// Withdraws an application that is not decided yet.
pub async fn withdraw(instance: &Instance, actor: &Actor, id: i64) -> Result<(), WorkflowError> {
    let row = owned(instance, actor, id).await?;
    let from = status_of(&row.status)?;
    let to = from.apply(ApplicationEvent::Withdraw).map_err(|_| WorkflowError::Transition { from: from.as_str() })?;
    transition(instance, actor, id, from, to, "application.withdrawn").await?;
    notify(instance, row.applicant_id, id, "取り下げました / Withdrawn").await
}

/// A committee member declares a conflict of interest: recused from this application.
pub async fn declare_conflict(instance: &Instance, actor: &Actor, id: i64) -> Result<(), WorkflowError> {
    actor.require(Role::Reviewer).or_else(|_| actor.require(Role::CommitteeChair))?;
    let (row, member) = member_for(instance, actor, id).await?;
    let mut deliberation = deliberation(instance, &row).await?;
    deliberation.declare_conflict(member)?;
    instance.store.declare_review_conflict(id, member, now()).await?;
    event(instance, actor, id, "review.conflict_declared", serde_json::json!({"member": member})).await
}

/// A committee member votes, with an opinion. Refused for a recused member, a non-member, a
/// second vote, or an application not under review.
pub async fn cast_vote(instance: &Instance, actor: &Actor, id: i64, vote: Vote, opinion: &str) -> Result<(), WorkflowError> {
    actor.require(Role::Reviewer).or_else(|_| actor.require(Role::CommitteeChair))?;
    let (row, member) = member_for(instance, actor, id).await?;
    let status = status_of(&row.status)?;
    if status != ApplicationStatus::UnderReview {
        return Err(WorkflowError::Transition { from: status.as_str() });
    }
    let mut deliberation = deliberation(instance, &row).await?;
    deliberation.cast(member, vote, opinion)?;
    instance
        .store
        .cast_review_vote(&niji_store::ReviewVoteRow {
            application_id: id,
            member_id: member,
            vote: code(&vote),
            opinion: opinion.to_string(),
            cast_at: now(),
        })
        .await?;
    event(instance, actor, id, "review.vote_cast", serde_json::json!({"member": member, "vote": code(&vote)})).await
}

/// What the chair records for the committee.
#[derive(Debug, Clone)]
pub struct ChairDecision {
    pub verdict: Vote,
    /// Conditions of an approval with conditions (they go into the permit).
    pub conditions: Vec<String>,
    pub reasons: Vec<String>,
    /// What is approved; `None` approves every requested variable and linkage.
    pub scope: Option<ApprovedScope>,
    /// Output-checking preset of the permit (`standard` unless given).
    pub output_preset: Option<String>,
    /// A cohort within the application's (`None`: the application's).
    pub cohort: Option<niji_review::CohortFilter>,
    /// Shift every date per person by up to this many days (`None`: no shift).
    pub date_shift_days: Option<u32>,
}

impl ChairDecision {
    /// A decision with reasons and nothing else (no conditions, everything requested approved).
    pub fn new(verdict: Vote, reasons: Vec<String>) -> Self {
        Self { verdict, conditions: Vec::new(), reasons, scope: None, output_preset: None, cohort: None, date_shift_days: None }
    }
}

/// The chair records the committee's decision. Approval issues a permit (returned).
pub async fn decide(instance: &Instance, actor: &Actor, id: i64, decision: ChairDecision, today: Date) -> Result<Option<i64>, WorkflowError> {
    let ChairDecision { verdict, conditions, reasons, scope, output_preset, cohort, date_shift_days } = decision;
    actor.require(Role::CommitteeChair)?;
    let row = instance.store.application(id).await?.ok_or(WorkflowError::NotFound("application"))?;
    let from = status_of(&row.status)?;
    let to = from.apply(ApplicationEvent::Decided { verdict }).map_err(|_| WorkflowError::Transition { from: from.as_str() })?;
    let deliberation = deliberation(instance, &row).await?;
    let decision = deliberation.decide(verdict, conditions.clone(), reasons)?;
    let form: Application = from_json(&row.form, "application form")?;
    // The permit is derived before anything is stored: an approval that cannot become a permit
    // (something approved that was not requested) changes nothing.
    let policy = match verdict {
        Vote::Approve | Vote::ApproveWithConditions => {
            let mut scope = scope.unwrap_or_else(|| everything_requested(&form));
            scope.conditions = conditions;
            if cohort.is_some() {
                scope.cohort = cohort;
            }
            let terms = PermitTerms {
                starts_on: today,
                months: form.duration_months,
                output_preset: output_preset.unwrap_or_else(|| "standard".to_string()),
                date_shift_days,
            };
            Some(PermitPolicy::grant(id, &form, &scope, &terms)?)
        }
        _ => None,
    };
    instance
        .store
        .record_review_decision(&niji_store::ReviewDecisionRow {
            application_id: id,
            decision: code(&verdict),
            reasons: to_json(&decision.reasons),
            criteria_version: decision.criteria_version.clone(),
            votes_for: (decision.tally.approve + decision.tally.approve_with_conditions) as i64,
            votes_total: decision.tally.total() as i64,
            decided_by: actor.audit(),
            decided_at: now(),
        })
        .await?;
    transition(instance, actor, id, from, to, "review.decided").await?;
    notify(instance, row.applicant_id, id, "審査結果が出ました / A decision was made").await?;
    match policy {
        Some(policy) => Ok(Some(issue_permit(instance, actor, id, &policy).await?)),
        None => Ok(None),
    }
}

/// Revokes a permit: status `revoked`, its key destroyed, a deletion certificate recorded.
pub async fn revoke_permit(instance: &Instance, actor: &Actor, permit_id: i64, reason: &str) -> Result<i64, WorkflowError> {
    actor.require(Role::Operator)?;
    let permit = instance.store.permit(permit_id).await?.ok_or(WorkflowError::NotFound("permit"))?;
    if !matches!(permit.status.as_str(), "active" | "suspended") {
        return Err(WorkflowError::Transition { from: "closed" });
    }
    instance.store.set_permit_status(permit_id, &permit.status, "revoked", now()).await?;
    log(instance, actor, "permit.revoked", format!("permit:{permit_id}"), serde_json::json!({"application": permit.application_id}))?;
    shred(instance, &actor.audit(), &permit, reason).await
}

/// Suspends an active permit (its workspace may not run; its key is kept).
pub async fn suspend_permit(instance: &Instance, actor: &Actor, permit_id: i64) -> Result<(), WorkflowError> {
    set_permit_status(instance, actor, permit_id, "active", "suspended", "permit.suspended").await
}

/// Lifts a suspension.
pub async fn resume_permit(instance: &Instance, actor: &Actor, permit_id: i64) -> Result<(), WorkflowError> {
    set_permit_status(instance, actor, permit_id, "suspended", "active", "permit.resumed").await
}

async fn set_permit_status(instance: &Instance, actor: &Actor, permit_id: i64, from: &str, to: &str, action: &str) -> Result<(), WorkflowError> {
    actor.require(Role::Operator)?;
    let permit = instance.store.permit(permit_id).await?.ok_or(WorkflowError::NotFound("permit"))?;
    instance.store.set_permit_status(permit_id, from, to, now()).await.map_err(|e| match e {
        StoreError::NotFound { .. } => WorkflowError::Transition { from: "another status" },
        other => other.into(),
    })?;
    log(instance, actor, action, format!("permit:{permit_id}"), serde_json::json!({"application": permit.application_id}))?;
    Ok(())
}

/// Amends a permit (the chair, after the committee agreed to a change): a new version from the
/// application's current form and what is approved now; the old version is superseded and its
/// key destroyed with a deletion certificate. Returns the new permit's id.
pub async fn amend_permit(
    instance: &Instance,
    actor: &Actor,
    permit_id: i64,
    scope: Option<ApprovedScope>,
    output_preset: Option<String>,
    today: Date,
) -> Result<i64, WorkflowError> {
    actor.require(Role::CommitteeChair)?;
    let old = instance.store.permit(permit_id).await?.ok_or(WorkflowError::NotFound("permit"))?;
    if !matches!(old.status.as_str(), "active" | "suspended") {
        return Err(WorkflowError::Transition { from: "closed" });
    }
    let policy: PermitPolicy = from_json(&old.policy, "permit policy")?;
    let row = instance.store.application(old.application_id).await?.ok_or(WorkflowError::NotFound("application"))?;
    let form: Application = from_json(&row.form, "application form")?;
    let mut scope = scope.unwrap_or_else(|| everything_requested(&form));
    scope.conditions = policy.conditions.clone();
    if scope.cohort.is_none() {
        scope.cohort = policy.cohort.clone();
    }
    let terms = PermitTerms {
        starts_on: today,
        months: form.duration_months,
        output_preset: output_preset.unwrap_or_else(|| policy.output_preset.clone()),
        date_shift_days: policy.date_shift_days,
    };
    let amended = policy.amend(&form, &scope, &terms)?;
    let key_id = permit_key_id(old.application_id, amended.version);
    let (new_id, version) = instance
        .store
        .supersede_permit(
            permit_id,
            &old.status,
            &NewPermit {
                application_id: old.application_id,
                status: "active",
                policy: &to_json(&amended),
                starts_on: &amended.starts_on.to_string(),
                expires_on: &amended.expires_on.to_string(),
                key_id: &key_id,
            },
            now(),
        )
        .await
        .map_err(|e| match e {
            StoreError::NotFound { .. } => WorkflowError::Transition { from: "another status" },
            other => other.into(),
        })?;
    instance.data_key(&key_id, &actor.audit()).await?;
    let index = log(
        instance,
        actor,
        "permit.amended",
        format!("permit:{new_id}"),
        serde_json::json!({"application": old.application_id, "version": version, "supersedes": permit_id, "columns": amended.columns().len(), "key": key_id}),
    )?;
    instance.store.set_permit_log_index(new_id, index as i64).await?;
    shred(instance, &actor.audit(), &old, "superseded").await?;
    Ok(new_id)
}

/// Closes every active or suspended permit whose expiry is before `today`; returns their ids.
pub async fn expire_permits(instance: &Instance, today: Date) -> Result<Vec<i64>, WorkflowError> {
    let mut closed = Vec::new();
    for permit in instance.store.permits().await? {
        if !matches!(permit.status.as_str(), "active" | "suspended") {
            continue;
        }
        let policy: PermitPolicy = from_json(&permit.policy, "permit policy")?;
        if policy.expires_on >= today {
            continue;
        }
        instance.store.set_permit_status(permit.id, &permit.status, "expired", now()).await?;
        let event = AuditEvent::new("system:expiry", OffsetDateTime::now_utc(), "permit.expired", format!("permit:{}", permit.id));
        instance.record(&event).map_err(|e| WorkflowError::Audit(e.to_string()))?;
        shred(instance, "system:expiry", &permit, "expired").await?;
        closed.push(permit.id);
    }
    Ok(closed)
}

/// The data key of a permit version (`permit:application-<id>-v<version>`): it encrypts what
/// the permit's workspace keeps and is destroyed when the permit closes.
pub fn permit_key_id(application_id: i64, version: u32) -> String {
    format!("permit:application-{application_id}-v{version}")
}

// -- internals ------------------------------------------------------------------------------

async fn check_form(instance: &Instance, form: &Application, today: Date) -> Result<(), WorkflowError> {
    form.validate().map_err(WorkflowError::Invalid)?;
    // Every requested variable exists: a committed dataset, a standard table, a column of it.
    let datasets = instance.store.committed_dataset_tags().await?;
    for (index, v) in form.variables.iter().enumerate() {
        let known = datasets.iter().any(|(d, _)| *d == v.dataset)
            && niji_lake::catalog::table(&v.table).is_some_and(|t| t.columns.iter().any(|c| c.name == v.column));
        if !known {
            return Err(WorkflowError::UnknownVariable { index });
        }
    }
    let mut accreditations = Vec::new();
    for r in &form.researchers {
        for a in instance.store.accreditations_for_user(r.account_id).await? {
            let (Ok(completed_on), Ok(expires_on)) = (parse_date(&a.completed_on), parse_date(&a.expires_on)) else {
                return Err(WorkflowError::Corrupt("accreditation"));
            };
            accreditations.push(niji_review::Accreditation { researcher: a.user_id, course: a.course, completed_on, expires_on });
        }
    }
    niji_review::check_researchers(form, &accreditations, today).map_err(WorkflowError::Researchers)
}

async fn triage_and_route(
    instance: &Instance,
    actor: &Actor,
    id: i64,
    form: &Application,
    from: ApplicationStatus,
    today: Date,
) -> Result<Submitted, WorkflowError> {
    let store = &instance.store;
    let criteria_row = store.latest_review_criteria().await?.ok_or(WorkflowError::NoCriteria)?;
    let criteria = Criteria::from_toml(&criteria_row.body).map_err(|_| WorkflowError::Corrupt("review criteria"))?;
    let tariff_row = store.latest_tariff().await?.ok_or(WorkflowError::NoTariff)?;
    let tariff = Tariff::from_toml(&tariff_row.body).map_err(|_| WorkflowError::Corrupt("tariff"))?;
    let mut scopes: Vec<(String, ConsentScope)> = Vec::new();
    for name in form.datasets() {
        if let Some(d) = store.dataset_by_name(&name).await? {
            if let Some(s) = store.dataset_consent_scope(d.id).await? {
                scopes.push((name, from_json(&s.scope, "consent scope")?));
            }
        }
    }
    let refs: Vec<(&str, &ConsentScope)> = scopes.iter().map(|(n, s)| (n.as_str(), s)).collect();
    let triage = niji_review::triage(form, &refs, &criteria);
    let fee = niji_review::estimate(form, &tariff, triage.tier);
    let deadline = niji_review::deadline(today, triage.tier, &criteria);
    // A resubmission goes back to the committee whatever its new tier; a first submission is
    // routed by its tier (notification or review).
    let event = if from == ApplicationStatus::Resubmitted { ApplicationEvent::ReopenReview } else { ApplicationEvent::Triaged { tier: triage.tier } };
    let to = from.apply(event).map_err(|_| WorkflowError::Transition { from: from.as_str() })?;
    let committee = if to == ApplicationStatus::UnderReview {
        Some(store.committees().await?.first().map(|c| c.id).ok_or(WorkflowError::NoCommittee)?)
    } else {
        None
    };
    let deadline_at = deadline.midnight().assume_utc().unix_timestamp();
    store
        .record_triage(
            id,
            &niji_store::ApplicationTriage {
                case_code: triage.case.as_str(),
                tier: triage.tier.as_str(),
                reasons: &to_json(&triage.reasons),
                criteria_version: &triage.criteria_version,
                fee_yen: fee.total_yen as i64,
                deadline_at: Some(deadline_at),
                committee_id: committee,
                submitted_at: now(),
            },
            now(),
        )
        .await?;
    let reason_codes: Vec<&str> = triage.reasons.iter().map(|r| r.code().as_str()).collect();
    transition_with(
        instance,
        actor,
        id,
        from,
        to,
        "application.triaged",
        serde_json::json!({"case": triage.case.number(), "tier": triage.tier.as_str(), "reasons": reason_codes, "criteria": triage.criteria_version}),
    )
    .await?;
    let applicant = store.application(id).await?.ok_or(WorkflowError::NotFound("application"))?.applicant_id;
    notify(instance, applicant, id, "受け付けました / Received and triaged").await?;
    let permit = if to == ApplicationStatus::Notified {
        let terms = PermitTerms { starts_on: today, months: form.duration_months, output_preset: "standard".to_string(), date_shift_days: None };
        let policy = PermitPolicy::grant(id, form, &everything_requested(form), &terms)?;
        Some(issue_permit(instance, actor, id, &policy).await?)
    } else {
        None
    };
    Ok(Submitted { status: to, triage, fee_yen: fee.total_yen, deadline, permit })
}

fn everything_requested(form: &Application) -> ApprovedScope {
    ApprovedScope {
        variables: form.variables.iter().map(|v| v.to_ref()).collect(),
        linkage: form.linkage.clone(),
        conditions: Vec::new(),
        cohort: None,
    }
}

/// Stores a permit and creates its data key; both logged.
async fn issue_permit(instance: &Instance, actor: &Actor, application_id: i64, policy: &PermitPolicy) -> Result<i64, WorkflowError> {
    let key_id = permit_key_id(application_id, policy.version);
    let (permit_id, version) = instance
        .store
        .create_permit(
            &NewPermit {
                application_id,
                status: "active",
                policy: &to_json(policy),
                starts_on: &policy.starts_on.to_string(),
                expires_on: &policy.expires_on.to_string(),
                key_id: &key_id,
            },
            now(),
        )
        .await?;
    instance.data_key(&key_id, &actor.audit()).await?;
    let columns = policy.columns().len();
    let index = log(
        instance,
        actor,
        "permit.issued",
        format!("permit:{permit_id}"),
        serde_json::json!({"application": application_id, "version": version, "datasets": policy.datasets.len(), "columns": columns,
            "starts_on": policy.starts_on.to_string(), "expires_on": policy.expires_on.to_string(), "key": key_id}),
    )?;
    // The public register proves each permit by this entry.
    instance.store.set_permit_log_index(permit_id, index as i64).await?;
    Ok(permit_id)
}

/// Destroys a closed permit's key and records the deletion certificate (both logged).
async fn shred(instance: &Instance, actor: &str, permit: &niji_store::PermitRow, reason: &str) -> Result<i64, WorkflowError> {
    let at = now();
    let certificate = instance
        .store
        .destroy_data_key_with_certificate(&NewDeletionCertificate {
            permit_id: permit.id,
            key_id: &permit.key_id,
            reason,
            destroyed_at: at,
            log_index: None,
        })
        .await?;
    let event = AuditEvent::new(actor, OffsetDateTime::now_utc(), "permit.key_destroyed", format!("permit:{}", permit.id))
        .with_data(serde_json::json!({"key": permit.key_id, "certificate": certificate}));
    let index = instance.record(&event).map_err(|e| WorkflowError::Audit(e.to_string()))?;
    instance.store.set_deletion_certificate_log_index(certificate, index as i64).await?;
    Ok(certificate)
}

/// The application, if the actor is its applicant.
async fn owned(instance: &Instance, actor: &Actor, id: i64) -> Result<niji_store::ApplicationRow, WorkflowError> {
    actor.require(Role::Researcher)?;
    let row = instance.store.application(id).await?.ok_or(WorkflowError::NotFound("application"))?;
    if row.applicant_id != actor.user_id {
        return Err(WorkflowError::NotTheApplicant);
    }
    Ok(row)
}

/// The application and the actor's member id in the committee that reviews it.
async fn member_for(instance: &Instance, actor: &Actor, id: i64) -> Result<(niji_store::ApplicationRow, i64), WorkflowError> {
    let row = instance.store.application(id).await?.ok_or(WorkflowError::NotFound("application"))?;
    let committee = row.committee_id.ok_or(WorkflowError::NotAMember)?;
    let member = instance
        .store
        .active_committee_members(committee)
        .await?
        .into_iter()
        .find(|m| m.user_id == Some(actor.user_id))
        .ok_or(WorkflowError::NotAMember)?;
    Ok((row, member.id))
}

/// The committee's deliberation on an application as stored: members, conflicts, votes.
async fn deliberation(instance: &Instance, row: &niji_store::ApplicationRow) -> Result<Deliberation, WorkflowError> {
    let committee = row.committee_id.ok_or(WorkflowError::NoCommittee)?;
    let version = row.criteria_version.as_deref().ok_or(WorkflowError::Corrupt("application triage"))?;
    let criteria_row = instance.store.review_criteria(version).await?.ok_or(WorkflowError::Corrupt("review criteria"))?;
    let criteria = Criteria::from_toml(&criteria_row.body).map_err(|_| WorkflowError::Corrupt("review criteria"))?;
    let mut members = Vec::new();
    for m in instance.store.active_committee_members(committee).await? {
        members.push(Member {
            id: m.id,
            field: from_code(&m.field, "committee member")?,
            external: m.external,
            gender: from_code(&m.gender, "committee member")?,
        });
    }
    let mut d = Deliberation::new(members, &criteria);
    for c in instance.store.review_conflicts(row.id).await? {
        d.declare_conflict(c.member_id).map_err(|_| WorkflowError::Corrupt("review conflict"))?;
    }
    for v in instance.store.review_votes(row.id).await? {
        d.cast(v.member_id, from_code(&v.vote, "review vote")?, v.opinion).map_err(|_| WorkflowError::Corrupt("review vote"))?;
    }
    Ok(d)
}

async fn transition(
    instance: &Instance,
    actor: &Actor,
    id: i64,
    from: ApplicationStatus,
    to: ApplicationStatus,
    kind: &str,
) -> Result<(), WorkflowError> {
    transition_with(instance, actor, id, from, to, kind, serde_json::json!({})).await
}

/// Compare-and-set of the status with its event row, then the log entry, whose index goes
/// into the event row.
async fn transition_with(
    instance: &Instance,
    actor: &Actor,
    id: i64,
    from: ApplicationStatus,
    to: ApplicationStatus,
    kind: &str,
    data: serde_json::Value,
) -> Result<(), WorkflowError> {
    let note = format!("{} → {}", code(&from), code(&to));
    let event_id = instance
        .store
        .transition_application(
            id,
            &code(&from),
            &code(&to),
            &NewApplicationEvent { at: now(), actor: &actor.audit(), kind, note: &note, log_index: None },
            now(),
        )
        .await
        .map_err(|e| match e {
            StoreError::NotFound { .. } => WorkflowError::Transition { from: from.as_str() },
            other => other.into(),
        })?;
    let mut data = data;
    data["from"] = code(&from).into();
    data["to"] = code(&to).into();
    let index = log(instance, actor, kind, format!("application:{id}"), data)?;
    instance.store.set_application_event_log_index(event_id, index as i64).await?;
    Ok(())
}

/// An event without a status change (conflicts, votes), logged.
async fn event(instance: &Instance, actor: &Actor, id: i64, kind: &str, data: serde_json::Value) -> Result<(), WorkflowError> {
    let event_id = instance
        .store
        .append_application_event(id, &NewApplicationEvent { at: now(), actor: &actor.audit(), kind, note: "", log_index: None })
        .await?;
    let index = log(instance, actor, kind, format!("application:{id}"), data)?;
    instance.store.set_application_event_log_index(event_id, index as i64).await?;
    Ok(())
}

/// A notification for the applicant in the outbox (delivered by mail where configured; shown
/// in the portal).
async fn notify(instance: &Instance, user_id: i64, application_id: i64, subject: &str) -> Result<(), WorkflowError> {
    let body =
        format!("申請 {application_id} の状況が変わりました。ポータルで確認してください。\nApplication {application_id} changed; see the portal.");
    // Without an address the notification is shown in the portal only.
    let address = instance.store.user_email(user_id).await?.unwrap_or_default();
    instance.store.enqueue_notification(&NewNotification { user_id: Some(user_id), address: &address, subject, body: &body }, now()).await?;
    Ok(())
}

fn log(instance: &Instance, actor: &Actor, action: &str, object: String, data: serde_json::Value) -> Result<u64, WorkflowError> {
    let event = AuditEvent::new(actor.audit(), OffsetDateTime::now_utc(), action, object).with_data(data);
    instance.record(&event).map_err(|e| WorkflowError::Audit(e.to_string()))
}

fn now() -> i64 {
    OffsetDateTime::now_utc().unix_timestamp()
}

fn status_of(s: &str) -> Result<ApplicationStatus, WorkflowError> {
    from_code(s, "application status")
}

fn parse_date(s: &str) -> Result<Date, time::error::Parse> {
    Date::parse(s, &time::macros::format_description!("[year]-[month]-[day]"))
}

fn to_json<T: Serialize + ?Sized>(value: &T) -> String {
    serde_json::to_string(value).expect("domain values serialize")
}

fn from_json<T: DeserializeOwned>(text: &str, what: &'static str) -> Result<T, WorkflowError> {
    serde_json::from_str(text).map_err(|_| WorkflowError::Corrupt(what))
}

/// The snake_case code of a unit enum (its serde name).
fn code<T: Serialize>(value: &T) -> String {
    match serde_json::to_value(value) {
        Ok(serde_json::Value::String(s)) => s,
        _ => unreachable!("codes are unit variants"),
    }
}

fn from_code<T: DeserializeOwned>(s: &str, what: &'static str) -> Result<T, WorkflowError> {
    serde_json::from_value(serde_json::Value::String(s.to_string())).map_err(|_| WorkflowError::Corrupt(what))
}
