//! The consent scope of a dataset: what its persons agreed to (or were told, under 丁寧な
//! オプトアウト) — purposes, diseases and recipients. Triage compares an application with it.
//!
//! Recipients are covered by kind (`company` covers every company) or by name (the organization
//! as the consent names it; compared after trimming, otherwise exactly).

use serde::{Deserialize, Serialize};

use crate::application::{PurposeCategory, Recipient, RecipientKind};

#[derive(Clone, Debug, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct ConsentScope {
    /// Purpose categories consented to. [`PurposeCategory::Other`] here covers nothing.
    pub purposes: Vec<PurposeCategory>,
    /// ICD-10 prefixes; empty = any disease.
    pub diseases: Vec<String>,
    /// Kinds of recipients consented to (every organization of that kind).
    pub recipient_kinds: Vec<RecipientKind>,
    /// Organizations named in the consent.
    pub recipients: Vec<String>,
}

impl ConsentScope {
    /// Whether the purpose category is within the consent.
    pub fn covers_purpose(&self, purpose: PurposeCategory) -> bool {
        purpose != PurposeCategory::Other && self.purposes.contains(&purpose)
    }

    /// Whether the recipient is within the consent, by kind or by name.
    pub fn covers_recipient(&self, recipient: &Recipient) -> bool {
        self.recipient_kinds.contains(&recipient.kind) || self.recipients.iter().any(|name| name.trim() == recipient.organization.trim())
    }
}
