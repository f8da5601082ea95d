//! The review committee (審査委員会): composition, recusal, votes and the decision.
//!
//! Composition is checked on the members who are *not* recused: at least `min_members`, every
//! required field (medicine/natural science, humanities/social science/law, general public),
//! at least `min_external` external members and every required gender (both sexes).
//!
//! A [`Deliberation`] is a value: members declare conflicts (recusal) and cast votes with an
//! opinion. Refused (errors, nothing changes): a vote by a non-member, by a recused member, and a
//! second vote by the same member (a vote is final: to change one, the secretariat starts a new
//! deliberation, so that the record never hides a changed vote). A conflict declared after
//! voting withdraws that vote (recusal wins). [`Deliberation::decide`] succeeds only when the
//! composition holds for the non-recused members and the votes cast reach the quorum (a fraction
//! of the non-recused members, rounded up); the [`Decision`] records the criteria version, the
//! tally, the recused members, the reasons and any conditions.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use crate::application::AccountId;
use crate::criteria::Criteria;

/// A member's id (their account id).
pub type MemberId = AccountId;

/// Field of expertise or standpoint.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Field {
    /// 医学・医療・自然科学.
    MedicineScience,
    /// 倫理学・法律学その他の人文・社会科学.
    HumanitiesLaw,
    /// 一般の立場 (speaks for patients and the public).
    GeneralPublic,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Gender {
    Female,
    Male,
    Other,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Member {
    pub id: MemberId,
    pub field: Field,
    /// Not affiliated with the operator of the platform (外部委員).
    pub external: bool,
    pub gender: Gender,
}

/// How a committee must be composed (part of the criteria).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CompositionRule {
    pub min_members: usize,
    pub required_fields: Vec<Field>,
    pub min_external: usize,
    pub required_genders: Vec<Gender>,
    /// Votes needed, as a fraction of the non-recused members (rounded up).
    pub quorum: Quorum,
}

/// A fraction `numerator/denominator` in (0, 1].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Quorum {
    pub numerator: u32,
    pub denominator: u32,
}

/// Why a committee cannot decide as composed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[serde(tag = "code", rename_all = "snake_case")]
pub enum CompositionProblem {
    #[error("{present} non-recused members; at least {required} are required")]
    TooFewMembers { present: usize, required: usize },
    #[error("no non-recused member from a required field")]
    MissingField { field: Field },
    #[error("{present} non-recused external members; at least {required} are required")]
    TooFewExternal { present: usize, required: usize },
    #[error("no non-recused member of a required gender")]
    MissingGender { gender: Gender },
}

/// A member's vote.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Vote {
    Approve,
    ApproveWithConditions,
    RequestChanges,
    Reject,
}

/// A vote cast, with the member's opinion.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ballot {
    pub member: MemberId,
    pub vote: Vote,
    pub opinion: String,
}

/// The votes cast, by kind.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct VoteTally {
    pub approve: usize,
    pub approve_with_conditions: usize,
    pub request_changes: usize,
    pub reject: usize,
}

/// A committee deliberating on one application.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Deliberation {
    criteria_version: String,
    rule: CompositionRule,
    members: Vec<Member>,
    recused: BTreeSet<MemberId>,
    ballots: BTreeMap<MemberId, Ballot>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VoteError {
    #[error("not a member of this committee")]
    NotAMember,
    #[error("the member is recused for a conflict of interest and cannot vote")]
    Recused,
    #[error("the member has already voted; a vote cannot be replaced")]
    AlreadyVoted,
}

/// The committee's decision.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Decision {
    pub verdict: Vote,
    /// Conditions of an [`Vote::ApproveWithConditions`] verdict (empty otherwise).
    pub conditions: Vec<String>,
    pub reasons: Vec<String>,
    pub criteria_version: String,
    pub tally: VoteTally,
    /// Non-recused members (the base of the quorum).
    pub eligible_members: usize,
    pub recused: Vec<MemberId>,
    pub ballots: Vec<Ballot>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecideError {
    #[error("the committee is not validly composed: {} problem(s)", .0.len())]
    Composition(Vec<CompositionProblem>),
    #[error("quorum not met: {cast} votes cast, {required} required")]
    NoQuorum { cast: usize, required: usize },
    #[error("a decision must give at least one non-empty reason")]
    NoReasons,
    #[error("approval with conditions must state at least one non-empty condition")]
    NoConditions,
    #[error("only approval with conditions carries conditions")]
    UnexpectedConditions,
}

/// Checks the composition of the members who are not recused.
pub fn check_composition(members: &[Member], recused: &[MemberId], rule: &CompositionRule) -> Result<(), Vec<CompositionProblem>> {
    let present: Vec<&Member> = members.iter().filter(|m| !recused.contains(&m.id)).collect();
    let mut problems = Vec::new();
    if present.len() < rule.min_members {
        problems.push(CompositionProblem::TooFewMembers { present: present.len(), required: rule.min_members });
    }
    for field in &rule.required_fields {
        if !present.iter().any(|m| m.field == *field) {
            problems.push(CompositionProblem::MissingField { field: *field });
        }
    }
    let external = present.iter().filter(|m| m.external).count();
    if external < rule.min_external {
        problems.push(CompositionProblem::TooFewExternal { present: external, required: rule.min_external });
    }
    for gender in &rule.required_genders {
        if !present.iter().any(|m| m.gender == *gender) {
            problems.push(CompositionProblem::MissingGender { gender: *gender });
        }
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(problems)
    }
}

impl Field {
    pub fn as_str(self) -> &'static str {
        match self {
            Field::MedicineScience => "medicine_science",
            Field::HumanitiesLaw => "humanities_law",
            Field::GeneralPublic => "general_public",
        }
    }

    pub fn label_ja(self) -> &'static str {
        match self {
            Field::MedicineScience => "医学・医療・自然科学",
            Field::HumanitiesLaw => "人文・社会科学・法律",
            Field::GeneralPublic => "一般の立場",
        }
    }

    pub fn label_en(self) -> &'static str {
        match self {
            Field::MedicineScience => "medicine / natural science",
            Field::HumanitiesLaw => "humanities / social science / law",
            Field::GeneralPublic => "general public",
        }
    }
}

impl Vote {
    pub fn as_str(self) -> &'static str {
        match self {
            Vote::Approve => "approve",
            Vote::ApproveWithConditions => "approve_with_conditions",
            Vote::RequestChanges => "request_changes",
            Vote::Reject => "reject",
        }
    }

    pub fn label_ja(self) -> &'static str {
        match self {
            Vote::Approve => "承認",
            Vote::ApproveWithConditions => "条件付き承認",
            Vote::RequestChanges => "修正の上再審査",
            Vote::Reject => "不承認",
        }
    }

    pub fn label_en(self) -> &'static str {
        match self {
            Vote::Approve => "approve",
            Vote::ApproveWithConditions => "approve with conditions",
            Vote::RequestChanges => "request changes",
            Vote::Reject => "reject",
        }
    }
}

impl Quorum {
    /// Votes needed out of `eligible` members: `ceil(eligible × numerator / denominator)`.
    pub fn required(self, eligible: usize) -> usize {
        let (n, d) = (self.numerator as usize, self.denominator.max(1) as usize);
        eligible.saturating_mul(n).div_ceil(d)
    }
}

impl CompositionRule {
    pub(crate) fn validate(&self) -> Result<(), &'static str> {
        if self.min_members == 0 {
            return Err("min_members must be at least 1");
        }
        if self.min_external > self.min_members {
            return Err("min_external cannot exceed min_members");
        }
        if self.quorum.denominator == 0 || self.quorum.numerator == 0 || self.quorum.numerator > self.quorum.denominator {
            return Err("quorum must be a fraction in (0, 1]");
        }
        Ok(())
    }
}

impl Deliberation {
    /// A deliberation of these members under the criteria's composition rule.
    pub fn new(members: Vec<Member>, criteria: &Criteria) -> Deliberation {
        Deliberation {
            criteria_version: criteria.version.clone(),
            rule: criteria.committee.clone(),
            members,
            recused: BTreeSet::new(),
            ballots: BTreeMap::new(),
        }
    }

    pub fn members(&self) -> &[Member] {
        &self.members
    }

    pub fn criteria_version(&self) -> &str {
        &self.criteria_version
    }

    pub fn recused(&self) -> Vec<MemberId> {
        self.recused.iter().copied().collect()
    }

    /// Ballots cast so far, by member id.
    pub fn ballots(&self) -> Vec<Ballot> {
        self.ballots.values().cloned().collect()
    }

    /// Records a member's conflict of interest; a vote already cast is withdrawn.
    pub fn declare_conflict(&mut self, member: MemberId) -> Result<(), VoteError> {
        if !self.is_member(member) {
            return Err(VoteError::NotAMember);
        }
        self.recused.insert(member);
        self.ballots.remove(&member);
        Ok(())
    }

    /// Casts a member's vote (once).
    pub fn cast(&mut self, member: MemberId, vote: Vote, opinion: impl Into<String>) -> Result<(), VoteError> {
        if !self.is_member(member) {
            return Err(VoteError::NotAMember);
        }
        if self.recused.contains(&member) {
            return Err(VoteError::Recused);
        }
        if self.ballots.contains_key(&member) {
            return Err(VoteError::AlreadyVoted);
        }
        self.ballots.insert(member, Ballot { member, vote, opinion: opinion.into() });
        Ok(())
    }

    /// The votes cast so far.
    pub fn tally(&self) -> VoteTally {
        let mut t = VoteTally::default();
        for b in self.ballots.values() {
            match b.vote {
                Vote::Approve => t.approve += 1,
                Vote::ApproveWithConditions => t.approve_with_conditions += 1,
                Vote::RequestChanges => t.request_changes += 1,
                Vote::Reject => t.reject += 1,
            }
        }
        t
    }

    /// The committee's decision, when it is validly composed and quorate. `conditions` only
    /// with [`Vote::ApproveWithConditions`] (and then at least one); at least one reason.
    pub fn decide(&self, verdict: Vote, conditions: Vec<String>, reasons: Vec<String>) -> Result<Decision, DecideError> {
        let recused = self.recused();
        check_composition(&self.members, &recused, &self.rule).map_err(DecideError::Composition)?;
        let eligible = self.members.iter().filter(|m| !self.recused.contains(&m.id)).count();
        let required = self.rule.quorum.required(eligible);
        if self.ballots.len() < required {
            return Err(DecideError::NoQuorum { cast: self.ballots.len(), required });
        }
        if reasons.is_empty() || reasons.iter().any(|r| r.trim().is_empty()) {
            return Err(DecideError::NoReasons);
        }
        match verdict {
            Vote::ApproveWithConditions if conditions.is_empty() || conditions.iter().any(|c| c.trim().is_empty()) => {
                return Err(DecideError::NoConditions)
            }
            Vote::Approve | Vote::RequestChanges | Vote::Reject if !conditions.is_empty() => return Err(DecideError::UnexpectedConditions),
            _ => {}
        }
        Ok(Decision {
            verdict,
            conditions,
            reasons,
            criteria_version: self.criteria_version.clone(),
            tally: self.tally(),
            eligible_members: eligible,
            recused,
            ballots: self.ballots(),
        })
    }

    fn is_member(&self, member: MemberId) -> bool {
        self.members.iter().any(|m| m.id == member)
    }
}

impl VoteTally {
    pub fn total(&self) -> usize {
        self.approve + self.approve_with_conditions + self.request_changes + self.reject
    }
}
