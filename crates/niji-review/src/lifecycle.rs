//! The application's lifecycle as a pure state machine, and review deadlines.
//!
//! ```text
//! Draft ─Submit─▶ Submitted ─Triaged(notification)─▶ Notified (accepted by 届出)
//!                     └──────Triaged(other tier)───▶ UnderReview ─Decided(approve)──────────────▶ Approved
//!                                                     ▲   │       ─Decided(approve_with_conditions)▶ ApprovedWithConditions
//!                                    ReopenReview     │   │       ─Decided(reject)───────────────▶ Rejected
//!                              Resubmitted ◀─Resubmit─ ChangesRequested ◀─Decided(request_changes)┘
//! Withdraw: from every non-final state to Withdrawn.
//! ```
//! Final: Notified, Approved, ApprovedWithConditions, Rejected, Withdrawn. A refused event
//! changes nothing ([`TransitionError`]). Deadlines count calendar days from the day of
//! submission (or resubmission: the caller passes that day).

use serde::{Deserialize, Serialize};
use time::Date;

use crate::committee::Vote;
use crate::criteria::{Criteria, Tier};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ApplicationStatus {
    Draft,
    Submitted,
    /// Accepted by notification (case 1, no review).
    Notified,
    UnderReview,
    ChangesRequested,
    Resubmitted,
    Approved,
    ApprovedWithConditions,
    Rejected,
    Withdrawn,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum ApplicationEvent {
    Submit,
    /// Triage done: notification → Notified, any other tier → UnderReview.
    Triaged {
        tier: Tier,
    },
    /// The committee decided.
    Decided {
        verdict: Vote,
    },
    Resubmit,
    /// A resubmitted application goes back to the committee.
    ReopenReview,
    Withdraw,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("event {} is not allowed in state {}", .event.as_str(), .from.as_str())]
pub struct TransitionError {
    pub from: ApplicationStatus,
    pub event: ApplicationEvent,
}

impl ApplicationStatus {
    pub const ALL: [ApplicationStatus; 10] = [
        ApplicationStatus::Draft,
        ApplicationStatus::Submitted,
        ApplicationStatus::Notified,
        ApplicationStatus::UnderReview,
        ApplicationStatus::ChangesRequested,
        ApplicationStatus::Resubmitted,
        ApplicationStatus::Approved,
        ApplicationStatus::ApprovedWithConditions,
        ApplicationStatus::Rejected,
        ApplicationStatus::Withdrawn,
    ];

    /// The state after `event`, or the refusal.
    pub fn apply(self, event: ApplicationEvent) -> Result<ApplicationStatus, TransitionError> {
        use ApplicationEvent as E;
        use ApplicationStatus as S;
        let next = match (self, event) {
            (S::Draft, E::Submit) => S::Submitted,
            (S::Submitted, E::Triaged { tier: Tier::Notification }) => S::Notified,
            (S::Submitted, E::Triaged { .. }) => S::UnderReview,
            (S::UnderReview, E::Decided { verdict: Vote::Approve }) => S::Approved,
            (S::UnderReview, E::Decided { verdict: Vote::ApproveWithConditions }) => S::ApprovedWithConditions,
            (S::UnderReview, E::Decided { verdict: Vote::RequestChanges }) => S::ChangesRequested,
            (S::UnderReview, E::Decided { verdict: Vote::Reject }) => S::Rejected,
            (S::ChangesRequested, E::Resubmit) => S::Resubmitted,
            (S::Resubmitted, E::ReopenReview) => S::UnderReview,
            (from, E::Withdraw) if !from.is_final() => S::Withdrawn,
            (from, event) => return Err(TransitionError { from, event }),
        };
        Ok(next)
    }

    /// No event leaves a final state.
    pub fn is_final(self) -> bool {
        matches!(self, Self::Notified | Self::Approved | Self::ApprovedWithConditions | Self::Rejected | Self::Withdrawn)
    }

    /// Whether data may be used under this state (a permit can be granted).
    pub fn is_accepted(self) -> bool {
        matches!(self, Self::Notified | Self::Approved | Self::ApprovedWithConditions)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Draft => "draft",
            Self::Submitted => "submitted",
            Self::Notified => "notified",
            Self::UnderReview => "under_review",
            Self::ChangesRequested => "changes_requested",
            Self::Resubmitted => "resubmitted",
            Self::Approved => "approved",
            Self::ApprovedWithConditions => "approved_with_conditions",
            Self::Rejected => "rejected",
            Self::Withdrawn => "withdrawn",
        }
    }

    pub fn label_ja(self) -> &'static str {
        match self {
            Self::Draft => "下書き",
            Self::Submitted => "提出済み",
            Self::Notified => "届出受理",
            Self::UnderReview => "審査中",
            Self::ChangesRequested => "修正依頼",
            Self::Resubmitted => "再提出済み",
            Self::Approved => "承認",
            Self::ApprovedWithConditions => "条件付き承認",
            Self::Rejected => "不承認",
            Self::Withdrawn => "取下げ",
        }
    }

    pub fn label_en(self) -> &'static str {
        match self {
            Self::Draft => "draft",
            Self::Submitted => "submitted",
            Self::Notified => "accepted by notification",
            Self::UnderReview => "under review",
            Self::ChangesRequested => "changes requested",
            Self::Resubmitted => "resubmitted",
            Self::Approved => "approved",
            Self::ApprovedWithConditions => "approved with conditions",
            Self::Rejected => "rejected",
            Self::Withdrawn => "withdrawn",
        }
    }
}

impl ApplicationEvent {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Submit => "submit",
            Self::Triaged { .. } => "triaged",
            Self::Decided { .. } => "decided",
            Self::Resubmit => "resubmit",
            Self::ReopenReview => "reopen_review",
            Self::Withdraw => "withdraw",
        }
    }
}

/// The day by which a review of `tier` is due: `submitted_on` plus the tier's deadline in
/// calendar days (saturating at the last representable date).
pub fn deadline(submitted_on: Date, tier: Tier, criteria: &Criteria) -> Date {
    crate::date::add_days(submitted_on, criteria.deadline_days(tier))
}
