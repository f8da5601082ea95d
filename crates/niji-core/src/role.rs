//! The roles people hold in Niji. Every staff role requires two-factor authentication
//! (3省2ガイドライン 第6.0版); citizens may opt in.

use std::fmt;
use std::str::FromStr;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Role {
    /// Platform staff: keys, users, accreditation, retention, incidents.
    Operator,
    /// 医療機関, 学会 registry, 保険者, public DB operator handing in data.
    DataHolder,
    /// 利活用者: applies for access and analyses data.
    Researcher,
    /// Member of the review body (審査体).
    Reviewer,
    /// Chair of the review committee.
    CommitteeChair,
    /// Checks outputs before release.
    OutputChecker,
    /// 本人 or a guardian (代諾者).
    Citizen,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown role {0:?}; known roles: operator, data_holder, researcher, reviewer, committee_chair, output_checker, citizen")]
pub struct RoleParseError(pub String);

impl Role {
    pub const ALL: [Role; 7] =
        [Role::Operator, Role::DataHolder, Role::Researcher, Role::Reviewer, Role::CommitteeChair, Role::OutputChecker, Role::Citizen];

    /// Stable identifier used in storage, logs and the API.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Operator => "operator",
            Role::DataHolder => "data_holder",
            Role::Researcher => "researcher",
            Role::Reviewer => "reviewer",
            Role::CommitteeChair => "committee_chair",
            Role::OutputChecker => "output_checker",
            Role::Citizen => "citizen",
        }
    }

    /// Whether holding this role makes two-factor authentication mandatory.
    pub fn requires_two_factor(self) -> bool {
        !matches!(self, Role::Citizen)
    }

    pub fn label_ja(self) -> &'static str {
        match self {
            Role::Operator => "運用者",
            Role::DataHolder => "データ提供者",
            Role::Researcher => "利活用者（研究者）",
            Role::Reviewer => "審査委員",
            Role::CommitteeChair => "審査委員長",
            Role::OutputChecker => "成果物確認者",
            Role::Citizen => "本人・代諾者",
        }
    }

    pub fn label_en(self) -> &'static str {
        match self {
            Role::Operator => "Operator",
            Role::DataHolder => "Data holder",
            Role::Researcher => "Researcher",
            Role::Reviewer => "Reviewer",
            Role::CommitteeChair => "Committee chair",
            Role::OutputChecker => "Output checker",
            Role::Citizen => "Citizen",
        }
    }
}

impl FromStr for Role {
    type Err = RoleParseError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Role::ALL.into_iter().find(|r| r.as_str() == s).ok_or_else(|| RoleParseError(s.to_string()))
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_role_round_trips_and_unknown_is_rejected() {
        for r in Role::ALL {
            assert_eq!(r.as_str().parse::<Role>(), Ok(r));
        }
        assert_eq!("admin".parse::<Role>(), Err(RoleParseError("admin".into())));
        assert!(Role::ALL.iter().filter(|r| !r.requires_two_factor()).eq([&Role::Citizen]));
    }
}
