//! Applications and permits as the secretariat, the command line and the portal list them.

use niji_review::{ApplicationStatus, PermitPolicy, TriageReason};
use niji_store::Store;

use crate::{from_code, from_json, WorkflowError};

/// One application with its triage and decision.
#[derive(Debug, Clone)]
pub struct ApplicationView {
    pub id: i64,
    pub title: String,
    pub applicant_id: i64,
    pub status: ApplicationStatus,
    /// 1–4 once triaged.
    pub case: Option<u8>,
    pub tier: Option<String>,
    pub reasons: Vec<TriageReason>,
    pub criteria_version: Option<String>,
    pub fee_yen: Option<i64>,
    pub submitted_at: Option<i64>,
    pub deadline_at: Option<i64>,
    pub decided_at: Option<i64>,
    pub decision: Option<String>,
}

/// One permit with its policy and whether its key still exists.
#[derive(Debug, Clone)]
pub struct PermitView {
    pub id: i64,
    pub application_id: i64,
    pub version: i64,
    pub status: String,
    pub policy: PermitPolicy,
    pub key_id: String,
    pub key_present: bool,
}

const CASES: [&str; 4] = ["within_consent", "disease_beyond_consent", "new_recipient", "different_purpose"];

/// Every application, oldest first.
pub async fn list_applications(store: &Store) -> Result<Vec<ApplicationView>, WorkflowError> {
    let mut out = Vec::new();
    for row in store.applications().await? {
        let reasons = match &row.reasons {
            Some(r) => from_json(r, "triage reasons")?,
            None => Vec::new(),
        };
        let decision = store.review_decision(row.id).await?.map(|d| d.decision);
        out.push(ApplicationView {
            id: row.id,
            title: row.title,
            applicant_id: row.applicant_id,
            status: from_code(&row.status, "application status")?,
            case: row.case_code.as_deref().and_then(|c| CASES.iter().position(|k| *k == c)).map(|i| i as u8 + 1),
            tier: row.tier,
            reasons,
            criteria_version: row.criteria_version,
            fee_yen: row.fee_yen,
            submitted_at: row.submitted_at,
            deadline_at: row.deadline_at,
            decided_at: row.decided_at,
            decision,
        });
    }
    Ok(out)
}

/// Every permit, by id.
pub async fn list_permits(store: &Store) -> Result<Vec<PermitView>, WorkflowError> {
    let mut out = Vec::new();
    for row in store.permits().await? {
        let key_present = store.data_key(&row.key_id).await?.is_some();
        out.push(PermitView {
            id: row.id,
            application_id: row.application_id,
            version: row.version,
            status: row.status,
            policy: from_json(&row.policy, "permit policy")?,
            key_id: row.key_id,
            key_present,
        });
    }
    Ok(out)
}
