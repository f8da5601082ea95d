//! Review criteria (審査基準) as versioned data: review tiers and their deadlines, the related
//! disease rule, the escalations and the committee composition rule.
//!
//! The criteria are a published TOML document (default: `criteria/2026.1.toml`, embedded as
//! [`DEFAULT_CRITERIA_TOML`]), parsed and validated by [`Criteria::from_toml`]. The five tiers
//! are fixed in code, lightest first ([`Tier::ALL`]); their deadlines are data. Validation
//! refuses unknown or missing tiers, negative deadlines, deadlines that shrink as the tier
//! deepens, unknown keys and an impossible committee rule.
//!
//! Deadlines are calendar days (no holiday calendar is assumed).

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use time::Date;

use crate::committee::CompositionRule;
use crate::disease::RelatedDiseaseRule;

/// The criteria Niji ships: version 2026.1.
pub const DEFAULT_CRITERIA_TOML: &str = include_str!("../criteria/2026.1.toml");

/// Review depth, lightest first (the derived order is the order of strictness).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Tier {
    /// 届出: notification only, no review.
    Notification,
    /// 簡易審査.
    Light,
    /// 医学的妥当性の審査.
    MedicalValidity,
    /// 通常審査.
    Standard,
    /// 本審査 by the full committee.
    Full,
}

/// Published, versioned review criteria.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Criteria {
    pub version: String,
    pub published: Date,
    /// Deadline in calendar days per tier, in [`Tier::ALL`] order.
    deadlines: [u32; 5],
    pub related_disease: RelatedDiseaseRule,
    pub escalations: Escalations,
    pub committee: CompositionRule,
}

/// Which escalations apply; each raises the tier one step.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Escalations {
    pub linkage: bool,
    pub rare_disease: bool,
    pub genomic_data: bool,
    pub company_on_visiting: bool,
    /// An expected population below this many persons escalates; absent = never.
    pub small_population_below: Option<u64>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CriteriaError {
    #[error("criteria are not valid TOML or do not have the expected keys: {0}")]
    Toml(String),
    #[error("criteria version is empty")]
    EmptyVersion,
    #[error("criteria `published` must be a local date (YYYY-MM-DD)")]
    BadPublished,
    #[error("unknown tier {0:?}; tiers: notification, light, medical_validity, standard, full")]
    UnknownTier(String),
    #[error("tier {} has no deadline", .0.as_str())]
    MissingTier(Tier),
    #[error("tier {} has a negative or too large deadline", .0.as_str())]
    BadDeadline(Tier),
    #[error("tier {} has a shorter deadline than a lighter tier", .0.as_str())]
    DeadlinesDecrease(Tier),
    #[error("committee rule: {0}")]
    Committee(&'static str),
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown tier; tiers: notification, light, medical_validity, standard, full")]
pub struct TierParseError;

impl Tier {
    pub const ALL: [Tier; 5] = [Tier::Notification, Tier::Light, Tier::MedicalValidity, Tier::Standard, Tier::Full];

    /// Stable identifier used in storage, TOML and the API.
    pub fn as_str(self) -> &'static str {
        match self {
            Tier::Notification => "notification",
            Tier::Light => "light",
            Tier::MedicalValidity => "medical_validity",
            Tier::Standard => "standard",
            Tier::Full => "full",
        }
    }

    pub fn label_ja(self) -> &'static str {
        match self {
            Tier::Notification => "届出",
            Tier::Light => "簡易審査",
            Tier::MedicalValidity => "医学的妥当性の審査",
            Tier::Standard => "通常審査",
            Tier::Full => "本審査",
        }
    }

    pub fn label_en(self) -> &'static str {
        match self {
            Tier::Notification => "notification",
            Tier::Light => "light review",
            Tier::MedicalValidity => "review of medical validity",
            Tier::Standard => "standard review",
            Tier::Full => "full review",
        }
    }

    /// One step deeper, capped at [`Tier::Full`].
    pub fn raised(self) -> Tier {
        Tier::ALL[(self.index() + 1).min(Tier::ALL.len() - 1)]
    }

    fn index(self) -> usize {
        self as usize
    }
}

impl fmt::Display for Tier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Tier {
    type Err = TierParseError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Tier::ALL.into_iter().find(|t| t.as_str() == s).ok_or(TierParseError)
    }
}

impl Criteria {
    /// The criteria Niji ships ([`DEFAULT_CRITERIA_TOML`]).
    pub fn builtin() -> Criteria {
        Criteria::from_toml(DEFAULT_CRITERIA_TOML).expect("the embedded criteria are valid (tested)")
    }

    /// Parses and validates a criteria document.
    pub fn from_toml(text: &str) -> Result<Criteria, CriteriaError> {
        let raw: RawCriteria = toml::from_str(text).map_err(|e| CriteriaError::Toml(e.message().to_owned()))?;
        if raw.version.trim().is_empty() {
            return Err(CriteriaError::EmptyVersion);
        }
        let published = crate::date::from_toml(&raw.published).ok_or(CriteriaError::BadPublished)?;
        if let Some(name) = raw.tiers.keys().find(|name| name.parse::<Tier>().is_err()) {
            return Err(CriteriaError::UnknownTier(name.clone()));
        }
        let mut deadlines = [0u32; 5];
        for tier in Tier::ALL {
            let days = raw.tiers.get(tier.as_str()).ok_or(CriteriaError::MissingTier(tier))?.deadline_days;
            deadlines[tier.index()] = u32::try_from(days).map_err(|_| CriteriaError::BadDeadline(tier))?;
            if tier.index() > 0 && deadlines[tier.index()] < deadlines[tier.index() - 1] {
                return Err(CriteriaError::DeadlinesDecrease(tier));
            }
        }
        raw.committee.validate().map_err(CriteriaError::Committee)?;
        Ok(Criteria {
            version: raw.version,
            published,
            deadlines,
            related_disease: raw.related_disease.rule,
            escalations: raw.escalations,
            committee: raw.committee,
        })
    }

    /// The criteria as a TOML document that [`Criteria::from_toml`] reads back equal.
    pub fn to_toml(&self) -> String {
        let raw = RawCriteria {
            version: self.version.clone(),
            published: crate::date::to_toml(self.published),
            tiers: Tier::ALL.iter().map(|t| (t.as_str().to_owned(), RawTier { deadline_days: i64::from(self.deadline_days(*t)) })).collect(),
            related_disease: RawRelated { rule: self.related_disease },
            escalations: self.escalations.clone(),
            committee: self.committee.clone(),
        };
        toml::to_string(&raw).expect("criteria serialize to TOML")
    }

    /// Review deadline of the tier, in calendar days.
    pub fn deadline_days(&self, tier: Tier) -> u32 {
        self.deadlines[tier.index()]
    }

    /// Sets the deadline of a tier (for building criteria in code and tests); the result must
    /// still grow with the tier, otherwise the criteria are left unchanged and an error returned.
    pub fn with_deadline(mut self, tier: Tier, days: u32) -> Result<Criteria, CriteriaError> {
        self.deadlines[tier.index()] = days;
        for t in Tier::ALL.into_iter().skip(1) {
            if self.deadlines[t.index()] < self.deadlines[t.index() - 1] {
                return Err(CriteriaError::DeadlinesDecrease(t));
            }
        }
        Ok(self)
    }
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCriteria {
    version: String,
    published: toml::value::Datetime,
    tiers: BTreeMap<String, RawTier>,
    related_disease: RawRelated,
    escalations: Escalations,
    committee: CompositionRule,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTier {
    deadline_days: i64,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRelated {
    rule: RelatedDiseaseRule,
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::date;

    #[test]
    fn builtin_criteria_have_the_published_defaults() {
        let c = Criteria::builtin();
        assert_eq!(c.version, "2026.1");
        assert_eq!(c.published, date!(2026 - 04 - 01));
        let days: Vec<u32> = Tier::ALL.iter().map(|t| c.deadline_days(*t)).collect();
        assert_eq!(days, [0, 7, 14, 30, 90]);
        assert_eq!(c.related_disease, RelatedDiseaseRule::SameBlock);
        assert_eq!(c.committee.min_members, 5);
        assert_eq!(c.escalations.small_population_below, Some(1000));
    }

    #[test]
    fn tiers_raise_one_step_capped() {
        assert_eq!(Tier::Notification.raised(), Tier::Light);
        assert_eq!(Tier::Light.raised(), Tier::MedicalValidity);
        assert_eq!(Tier::Standard.raised(), Tier::Full);
        assert_eq!(Tier::Full.raised(), Tier::Full);
        for t in Tier::ALL {
            assert_eq!(t.as_str().parse::<Tier>(), Ok(t));
        }
    }
}
