//! Niji's per-person consent and opt-out registry (issue 6), as domain logic: the choices a
//! person (or a parent, a guardian, or a data holder on their behalf) records, whether a given use
//! of data includes the person, and the state shown on the citizen's page.
//!
//! A person's registry is an append-only list of [`Entry`]s, each a [`Choice`] made by an
//! [`Actor`] at `recorded_at`. The caller stores the entries (serde, JSON) and passes them in;
//! [`validate`] says whether a new choice may be appended, [`decide`] whether a [`Use`] includes
//! the person, [`state_at`] what the person sees.
//!
//! # Semantics
//!
//! 1. **Prospective effect (将来効).** [`decide`] and [`state_at`] consider only entries with
//!    `recorded_at <= at` (the use's time). An entry never changes a decision for a use before it
//!    was recorded; an entry recorded at `t` already governs a use at `t`.
//! 2. **Opt-out.** An opt-out that is active (not withdrawn at the use's time) excludes the person
//!    from a use when its scope is [`OptOutScope::All`], `Purpose(c)` with `c` the use's purpose,
//!    or `Recipient(k)` with `k` among the use's recipient kinds. Opt-outs are checked first.
//! 3. **Consent in force.** The latest [`Choice::Consent`] (by `recorded_at`, then `id`) is in
//!    force, unless a later withdrawal ended a consent (see 4). A use is within the consent only
//!    if its purpose is among the consent's purposes ([`PurposeCategory::Other`] is never within,
//!    as in `niji_review::ConsentScope`), every recipient kind of the use is among the consent's,
//!    and, when the consent lists diseases, every disease of the use is covered by one of the
//!    consent's ICD-10 prefixes (`niji_review::disease::covers`: case-insensitive, the dot
//!    ignored). A use with no diseases is not within a consent limited to diseases. A use outside
//!    the consent in force excludes the person: an explicit scope is respected.
//! 4. **Withdrawing a consent is a refusal.** From the withdrawal on, the person is excluded from
//!    every use until a consent newer than the withdrawal is recorded (which is then in force).
//!    This holds for the withdrawal of any consent, even one a newer consent had replaced: the
//!    newest consent event (a consent, or the withdrawal of one) decides.
//! 5. **Withdrawing an opt-out** ends that opt-out only.
//! 6. **Parents' consent lapses at majority.** A consent recorded by [`Actor::Parent`] lapses on
//!    `until` (the ward's majority, see [`majority_date`]): the use's date in Japan time (UTC+9,
//!    [`japan_date`]) on or after `until` means lapsed. A lapsed consent counts like a withdrawn
//!    one (excluded from every use) until a newer consent is recorded. Opt-outs (and
//!    withdrawals) made by a parent do not lapse: refusals stay until changed.
//! 7. **Notices** ([`Choice::NoticeDelivered`], 丁寧なオプトアウト) never change a decision; they
//!    are shown to the person.
//! 8. **No entries: included** (the opt-out model of 次世代医療基盤法).
//!
//! A withdrawal counts only for an opt-out or a consent that comes before it in
//! (`recorded_at`, `id`) order, and only once; other withdrawals are ignored by [`decide`] (and
//! refused by [`validate`]). The order of the slice does not matter; ids are expected to be unique
//! within a person's entries (the caller's store assigns them).
//!
//! # Invariants
//!
//! Pure code: no I/O, no clock reads (every time is an argument), no randomness; the same entries
//! give the same answers whatever their order in the slice. Adding an opt-out never turns an
//! exclusion into an inclusion. Errors are a [`thiserror`] enum with fixed English messages that
//! never quote input. Every enum has a stable `code()` equal to its serde tag (`snake_case`);
//! dates serialize as `YYYY-MM-DD`, instants as RFC 3339.

use std::collections::BTreeMap;

pub use niji_review::{PurposeCategory, RecipientKind};
use serde::{Deserialize, Serialize};
use time::{Date, Month, OffsetDateTime, UtcOffset};

/// Japan Standard Time (UTC+9), in which a parent's authority ends.
pub const JST: UtcOffset = match UtcOffset::from_hms(9, 0, 0) {
    Ok(offset) => offset,
    Err(_) => panic!("UTC+9 is a valid offset"),
};

/// What an opt-out refuses.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OptOutScope {
    /// Every use.
    All,
    /// Every use for this purpose category.
    Purpose(PurposeCategory),
    /// Every use that provides data to this kind of recipient.
    Recipient(RecipientKind),
}

/// What an explicit consent covers.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConsentScope {
    /// Purpose categories consented to (non-empty; [`PurposeCategory::Other`] covers nothing).
    pub purposes: Vec<PurposeCategory>,
    /// Kinds of recipients consented to (non-empty).
    pub recipients: Vec<RecipientKind>,
    /// ICD-10 codes or prefixes (`E11`, `E11.9`); empty = no restriction by disease.
    #[serde(default)]
    pub diseases: Vec<String>,
}

/// A choice recorded in a person's registry.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Choice {
    /// A data holder delivered the notice of 丁寧なオプトアウト (shown only; decides nothing).
    NoticeDelivered {
        holder: String,
        #[serde(with = "niji_review::date::iso")]
        delivered_on: Date,
    },
    /// A refusal (オプトアウト, 提供停止の求め).
    OptOut { scope: OptOutScope },
    /// An explicit consent with its scope; replaces any earlier consent.
    Consent { scope: ConsentScope },
    /// Ends an earlier opt-out or consent of the same person (by its entry id).
    Withdraw { entry: u64 },
}

/// Who recorded a choice.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Actor {
    /// The person themself.
    Person,
    /// A parent (親権者, 代諾) of a minor, until the ward's majority date.
    Parent {
        #[serde(with = "niji_review::date::iso")]
        until: Date,
    },
    /// A guardian (成年後見人); no end date.
    Guardian,
    /// A data holder recording a choice made on paper, or delivering a notice.
    Holder { holder: String },
}

/// One entry of a person's registry.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    /// Unique within the person's entries (assigned by the caller's store).
    pub id: u64,
    #[serde(with = "time::serde::rfc3339")]
    pub recorded_at: OffsetDateTime,
    pub actor: Actor,
    pub choice: Choice,
}

/// A use of the person's data: an extract, a run, a release.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Use {
    pub purpose: PurposeCategory,
    /// Kinds of the recipients the data reaches.
    pub recipients: Vec<RecipientKind>,
    /// ICD-10 codes or prefixes the use is about; empty = not limited to diseases.
    #[serde(default)]
    pub diseases: Vec<String>,
    /// When the use happens (entries recorded after it are not considered).
    #[serde(with = "time::serde::rfc3339")]
    pub at: OffsetDateTime,
}

/// Whether a use includes the person.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Decision {
    Included,
    Excluded(ExclusionReason),
}

/// Why a use excludes the person.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "reason", rename_all = "snake_case")]
pub enum ExclusionReason {
    /// An active opt-out (the first in order) refuses the use.
    OptedOut { entry: u64 },
    /// A consent was withdrawn and no newer consent was recorded.
    ConsentWithdrawn { consent: u64, withdrawal: u64 },
    /// The consent in force was given by a parent whose authority has ended.
    ConsentLapsed { consent: u64 },
    /// The use is outside the consent in force.
    OutsideConsent { consent: u64, aspect: ConsentAspect },
}

/// The first part of a consent's scope that a use does not fit (checked in this order).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ConsentAspect {
    Purpose,
    Recipient,
    Disease,
}

/// What the person sees on their page at a given time.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct State {
    /// Notices delivered, in order.
    pub notices: Vec<Notice>,
    /// Opt-outs not withdrawn, in order.
    pub opt_outs: Vec<ActiveOptOut>,
    pub consent: ConsentState,
}

/// A notice of 丁寧なオプトアウト delivered by a holder.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Notice {
    pub entry: u64,
    pub holder: String,
    #[serde(with = "niji_review::date::iso")]
    pub delivered_on: Date,
    #[serde(with = "time::serde::rfc3339")]
    pub recorded_at: OffsetDateTime,
}

/// An opt-out in effect.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ActiveOptOut {
    pub entry: u64,
    pub scope: OptOutScope,
    #[serde(with = "time::serde::rfc3339")]
    pub since: OffsetDateTime,
    pub actor: Actor,
}

/// A consent as recorded.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct GivenConsent {
    pub entry: u64,
    pub scope: ConsentScope,
    #[serde(with = "time::serde::rfc3339")]
    pub since: OffsetDateTime,
    pub actor: Actor,
}

/// Where the person's explicit consent stands.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum ConsentState {
    /// No consent recorded: the opt-out model applies.
    NotGiven,
    /// This consent is in force; a parent's lapses on `lapses_on`.
    InForce {
        consent: GivenConsent,
        #[serde(with = "niji_review::date::iso_option")]
        lapses_on: Option<Date>,
    },
    /// The consent was withdrawn: refusal of every use until a newer consent.
    Withdrawn {
        consent: GivenConsent,
        withdrawal: u64,
        #[serde(with = "time::serde::rfc3339")]
        withdrawn_at: OffsetDateTime,
        withdrawn_by: Actor,
    },
    /// A parent's consent lapsed at the ward's majority: refusal of every use until a newer consent.
    Lapsed {
        consent: GivenConsent,
        #[serde(with = "niji_review::date::iso")]
        lapsed_on: Date,
    },
}

/// Why a choice may not be recorded. Messages are fixed and never quote input.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ChoiceError {
    #[error("the entry to withdraw does not exist")]
    UnknownEntry,
    #[error("the entry to withdraw was recorded after this choice")]
    EntryAfterChoice,
    #[error("only an opt-out or a consent can be withdrawn")]
    NotWithdrawable,
    #[error("the entry was already withdrawn")]
    AlreadyWithdrawn,
    #[error("a consent must name at least one purpose")]
    EmptyPurposes,
    #[error("a consent must name at least one kind of recipient")]
    EmptyRecipients,
    #[error("diseases[{index}] is not an ICD-10 code or prefix (a letter, two digits, optionally more)")]
    BadDiseaseCode { index: usize },
    #[error("a parent can no longer act: the ward has reached majority")]
    GuardianEnded,
    #[error("only a data holder can record the delivery of a notice")]
    NoticeNotFromHolder,
    #[error("the data holder is not named")]
    EmptyHolder,
}

/// Whether the use includes the person, considering only entries recorded at or before
/// `use_.at` (see the crate documentation for the rules).
pub fn decide(entries: &[Entry], use_: &Use) -> Decision {
    let summary = summarize(entries, use_.at);
    if let Some(opt_out) = summary.opt_outs.iter().find(|(_, scope)| scope.refuses(use_)) {
        return Decision::Excluded(ExclusionReason::OptedOut { entry: opt_out.0.id });
    }
    match summary.consent {
        Status::NotGiven => Decision::Included,
        Status::InForce(entry, scope) => match scope.mismatch(use_) {
            None => Decision::Included,
            Some(aspect) => Decision::Excluded(ExclusionReason::OutsideConsent { consent: entry.id, aspect }),
        },
        Status::Withdrawn { consent, withdrawal } => {
            Decision::Excluded(ExclusionReason::ConsentWithdrawn { consent: consent.0.id, withdrawal: withdrawal.id })
        }
        Status::Lapsed { consent, .. } => Decision::Excluded(ExclusionReason::ConsentLapsed { consent: consent.0.id }),
    }
}

/// The person's registry as it stands at `at` (entries recorded at or before `at`).
pub fn state_at(entries: &[Entry], at: OffsetDateTime) -> State {
    let summary = summarize(entries, at);
    let given = |(entry, scope): (&Entry, &ConsentScope)| GivenConsent {
        entry: entry.id,
        scope: scope.clone(),
        since: entry.recorded_at,
        actor: entry.actor.clone(),
    };
    let consent = match summary.consent {
        Status::NotGiven => ConsentState::NotGiven,
        Status::InForce(entry, scope) => {
            let lapses_on = match entry.actor {
                Actor::Parent { until } => Some(until),
                _ => None,
            };
            ConsentState::InForce { consent: given((entry, scope)), lapses_on }
        }
        Status::Withdrawn { consent, withdrawal } => ConsentState::Withdrawn {
            consent: given(consent),
            withdrawal: withdrawal.id,
            withdrawn_at: withdrawal.recorded_at,
            withdrawn_by: withdrawal.actor.clone(),
        },
        Status::Lapsed { consent, on } => ConsentState::Lapsed { consent: given(consent), lapsed_on: on },
    };
    State {
        notices: summary
            .notices
            .iter()
            .filter_map(|entry| match &entry.choice {
                Choice::NoticeDelivered { holder, delivered_on } => {
                    Some(Notice { entry: entry.id, holder: holder.clone(), delivered_on: *delivered_on, recorded_at: entry.recorded_at })
                }
                _ => None,
            })
            .collect(),
        opt_outs: summary
            .opt_outs
            .iter()
            .map(|(entry, scope)| ActiveOptOut { entry: entry.id, scope: **scope, since: entry.recorded_at, actor: entry.actor.clone() })
            .collect(),
        consent,
    }
}

/// Whether `actor` may record `choice` at `at`, given the person's existing entries.
pub fn validate(entries: &[Entry], actor: &Actor, choice: &Choice, at: OffsetDateTime) -> Result<(), ChoiceError> {
    match actor {
        Actor::Parent { until } if japan_date(at) >= *until => return Err(ChoiceError::GuardianEnded),
        Actor::Holder { holder } if holder.trim().is_empty() => return Err(ChoiceError::EmptyHolder),
        _ => {}
    }
    match choice {
        Choice::NoticeDelivered { holder, .. } => {
            if !matches!(actor, Actor::Holder { .. }) {
                return Err(ChoiceError::NoticeNotFromHolder);
            }
            if holder.trim().is_empty() {
                return Err(ChoiceError::EmptyHolder);
            }
            Ok(())
        }
        Choice::OptOut { .. } => Ok(()),
        Choice::Consent { scope } => {
            if scope.purposes.is_empty() {
                return Err(ChoiceError::EmptyPurposes);
            }
            if scope.recipients.is_empty() {
                return Err(ChoiceError::EmptyRecipients);
            }
            match scope.diseases.iter().position(|code| !is_icd10_code(code)) {
                Some(index) => Err(ChoiceError::BadDiseaseCode { index }),
                None => Ok(()),
            }
        }
        Choice::Withdraw { entry: target } => {
            let entry = entries.iter().find(|entry| entry.id == *target).ok_or(ChoiceError::UnknownEntry)?;
            if entry.recorded_at > at {
                return Err(ChoiceError::EntryAfterChoice);
            }
            if !matches!(entry.choice, Choice::OptOut { .. } | Choice::Consent { .. }) {
                return Err(ChoiceError::NotWithdrawable);
            }
            if entries.iter().any(|other| matches!(other.choice, Choice::Withdraw { entry } if entry == *target)) {
                return Err(ChoiceError::AlreadyWithdrawn);
            }
            Ok(())
        }
    }
}

/// The date of majority of a person born on `birth`: the 18th birthday (民法第4条); a person
/// born on 29 February comes of age on 1 March. Saturates at [`Date::MAX`].
pub fn majority_date(birth: Date) -> Date {
    let Some(year) = birth.year().checked_add(18) else { return Date::MAX };
    match Date::from_calendar_date(year, birth.month(), birth.day()) {
        Ok(date) => date,
        Err(_) => Date::from_calendar_date(year, Month::March, 1).unwrap_or(Date::MAX),
    }
}

/// The calendar date of `at` in Japan (UTC+9); [`Date::MAX`] past the end of the calendar.
pub fn japan_date(at: OffsetDateTime) -> Date {
    at.checked_to_offset(JST).map_or(Date::MAX, OffsetDateTime::date)
}

/// Whether `code` is an ICD-10 code or prefix as a consent may name it: a letter and two digits,
/// optionally followed by more (`E11`, `E11.9`, `E119`); case-insensitive.
pub fn is_icd10_code(code: &str) -> bool {
    niji_review::disease::normalize(code).is_some_and(|normalized| normalized.len() >= 3)
}

impl OptOutScope {
    /// The scope as holders and the command line write it: `all`, `purpose:<category>` or
    /// `recipient:<kind>` (the codes of `niji-review`); `None` when it is none of these.
    pub fn parse(text: &str) -> Option<OptOutScope> {
        fn code<T: serde::de::DeserializeOwned>(c: &str) -> Option<T> {
            serde_json::from_value(serde_json::Value::String(c.to_string())).ok()
        }
        match text.trim().split_once(':') {
            None if text.trim() == "all" => Some(OptOutScope::All),
            Some(("purpose", c)) => code(c).map(OptOutScope::Purpose),
            Some(("recipient", c)) => code(c).map(OptOutScope::Recipient),
            _ => None,
        }
    }

    /// Stable identifier (the serde tag).
    pub fn code(&self) -> &'static str {
        match self {
            OptOutScope::All => "all",
            OptOutScope::Purpose(_) => "purpose",
            OptOutScope::Recipient(_) => "recipient",
        }
    }

    /// Whether this opt-out refuses the use.
    pub fn refuses(&self, use_: &Use) -> bool {
        match self {
            OptOutScope::All => true,
            OptOutScope::Purpose(purpose) => *purpose == use_.purpose,
            OptOutScope::Recipient(kind) => use_.recipients.contains(kind),
        }
    }
}

impl ConsentScope {
    /// The first aspect (purpose, recipient, disease) in which the use falls outside this scope;
    /// `None` when the use is within it.
    pub fn mismatch(&self, use_: &Use) -> Option<ConsentAspect> {
        if use_.purpose == PurposeCategory::Other || !self.purposes.contains(&use_.purpose) {
            return Some(ConsentAspect::Purpose);
        }
        if !use_.recipients.iter().all(|kind| self.recipients.contains(kind)) {
            return Some(ConsentAspect::Recipient);
        }
        let diseases_ok = self.diseases.is_empty()
            || (!use_.diseases.is_empty()
                && use_.diseases.iter().all(|disease| self.diseases.iter().any(|prefix| niji_review::disease::covers(prefix, disease))));
        if !diseases_ok {
            return Some(ConsentAspect::Disease);
        }
        None
    }
}

impl Choice {
    /// Stable identifier (the serde tag).
    pub fn code(&self) -> &'static str {
        match self {
            Choice::NoticeDelivered { .. } => "notice_delivered",
            Choice::OptOut { .. } => "opt_out",
            Choice::Consent { .. } => "consent",
            Choice::Withdraw { .. } => "withdraw",
        }
    }
}

impl Actor {
    /// Stable identifier (the serde tag).
    pub fn code(&self) -> &'static str {
        match self {
            Actor::Person => "person",
            Actor::Parent { .. } => "parent",
            Actor::Guardian => "guardian",
            Actor::Holder { .. } => "holder",
        }
    }
}

impl Decision {
    /// Stable identifier (the serde tag).
    pub fn code(&self) -> &'static str {
        match self {
            Decision::Included => "included",
            Decision::Excluded(_) => "excluded",
        }
    }

    pub fn is_included(&self) -> bool {
        matches!(self, Decision::Included)
    }
}

impl ExclusionReason {
    /// Stable identifier (the serde tag).
    pub fn code(&self) -> &'static str {
        match self {
            ExclusionReason::OptedOut { .. } => "opted_out",
            ExclusionReason::ConsentWithdrawn { .. } => "consent_withdrawn",
            ExclusionReason::ConsentLapsed { .. } => "consent_lapsed",
            ExclusionReason::OutsideConsent { .. } => "outside_consent",
        }
    }
}

impl ConsentAspect {
    /// Stable identifier (the serde tag).
    pub fn code(&self) -> &'static str {
        match self {
            ConsentAspect::Purpose => "purpose",
            ConsentAspect::Recipient => "recipient",
            ConsentAspect::Disease => "disease",
        }
    }
}

impl ConsentState {
    /// Stable identifier (the serde tag).
    pub fn code(&self) -> &'static str {
        match self {
            ConsentState::NotGiven => "not_given",
            ConsentState::InForce { .. } => "in_force",
            ConsentState::Withdrawn { .. } => "withdrawn",
            ConsentState::Lapsed { .. } => "lapsed",
        }
    }
}

impl ChoiceError {
    /// Stable identifier.
    pub fn code(&self) -> &'static str {
        match self {
            ChoiceError::UnknownEntry => "unknown_entry",
            ChoiceError::EntryAfterChoice => "entry_after_choice",
            ChoiceError::NotWithdrawable => "not_withdrawable",
            ChoiceError::AlreadyWithdrawn => "already_withdrawn",
            ChoiceError::EmptyPurposes => "empty_purposes",
            ChoiceError::EmptyRecipients => "empty_recipients",
            ChoiceError::BadDiseaseCode { .. } => "bad_disease_code",
            ChoiceError::GuardianEnded => "guardian_ended",
            ChoiceError::NoticeNotFromHolder => "notice_not_from_holder",
            ChoiceError::EmptyHolder => "empty_holder",
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The one evaluation both `decide` and `state_at` use.

/// The registry at one instant.
struct Summary<'a> {
    notices: Vec<&'a Entry>,
    /// Active opt-outs, in order.
    opt_outs: Vec<(&'a Entry, &'a OptOutScope)>,
    consent: Status<'a>,
}

enum Status<'a> {
    NotGiven,
    InForce(&'a Entry, &'a ConsentScope),
    Withdrawn { consent: (&'a Entry, &'a ConsentScope), withdrawal: &'a Entry },
    Lapsed { consent: (&'a Entry, &'a ConsentScope), on: Date },
}

fn order(entry: &Entry) -> (OffsetDateTime, u64) {
    (entry.recorded_at, entry.id)
}

fn summarize(entries: &[Entry], at: OffsetDateTime) -> Summary<'_> {
    let mut visible: Vec<&Entry> = entries.iter().filter(|entry| entry.recorded_at <= at).collect();
    visible.sort_by_key(|entry| order(entry));
    let mut by_id: BTreeMap<u64, &Entry> = BTreeMap::new();
    for entry in &visible {
        by_id.entry(entry.id).or_insert(entry);
    }

    // Walk in order: the newest consent event (a consent, or the withdrawal of one) decides.
    let mut withdrawn: BTreeMap<u64, &Entry> = BTreeMap::new();
    let mut consent = Status::NotGiven;
    for &entry in &visible {
        match &entry.choice {
            Choice::Consent { scope } => consent = Status::InForce(entry, scope),
            Choice::Withdraw { entry: target } => {
                let Some(&target_entry) = by_id.get(target) else { continue };
                if order(target_entry) >= order(entry) || withdrawn.contains_key(target) {
                    continue;
                }
                match &target_entry.choice {
                    Choice::OptOut { .. } => {
                        withdrawn.insert(*target, entry);
                    }
                    Choice::Consent { scope } => {
                        withdrawn.insert(*target, entry);
                        consent = Status::Withdrawn { consent: (target_entry, scope), withdrawal: entry };
                    }
                    Choice::NoticeDelivered { .. } | Choice::Withdraw { .. } => {}
                }
            }
            Choice::NoticeDelivered { .. } | Choice::OptOut { .. } => {}
        }
    }
    if let Status::InForce(entry, scope) = consent {
        if let Actor::Parent { until } = entry.actor {
            if japan_date(at) >= until {
                consent = Status::Lapsed { consent: (entry, scope), on: until };
            }
        }
    }

    Summary {
        notices: visible.iter().copied().filter(|entry| matches!(entry.choice, Choice::NoticeDelivered { .. })).collect(),
        opt_outs: visible
            .iter()
            .filter_map(|entry| match &entry.choice {
                Choice::OptOut { scope } if !withdrawn.contains_key(&entry.id) => Some((*entry, scope)),
                _ => None,
            })
            .collect(),
        consent,
    }
}

#[cfg(test)]
mod tests;
