//! Safe people: a researcher may be named on an application only with a valid accreditation
//! (training with an expiry).
//!
//! An accreditation is valid from `completed_on` to `expires_on`, both days included. A
//! researcher with several accreditations needs one valid on the day checked.

use serde::{Deserialize, Serialize};
use time::Date;

use crate::application::{AccountId, Application};

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Accreditation {
    pub researcher: AccountId,
    pub course: String,
    #[serde(with = "crate::date::iso")]
    pub completed_on: Date,
    #[serde(with = "crate::date::iso")]
    pub expires_on: Date,
}

/// Why a named researcher may not work on the project.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[serde(tag = "code", rename_all = "snake_case")]
pub enum ResearcherProblem {
    #[error("researcher {researcher} has no accreditation")]
    NotAccredited { researcher: AccountId },
    /// The latest accreditation expired on that day.
    #[error("the accreditation of researcher {researcher} has expired")]
    Expired {
        researcher: AccountId,
        #[serde(with = "crate::date::iso")]
        expired_on: Date,
    },
}

impl Accreditation {
    pub fn valid_on(&self, today: Date) -> bool {
        self.completed_on <= today && today <= self.expires_on
    }
}

impl ResearcherProblem {
    pub fn researcher(&self) -> AccountId {
        match self {
            ResearcherProblem::NotAccredited { researcher } | ResearcherProblem::Expired { researcher, .. } => *researcher,
        }
    }
}

/// Every researcher named on the application without an accreditation valid `today`, in the
/// application's order. An accreditation that starts after `today` counts as none.
pub fn check_researchers(application: &Application, accreditations: &[Accreditation], today: Date) -> Result<(), Vec<ResearcherProblem>> {
    let mut problems = Vec::new();
    for named in &application.researchers {
        let researcher = named.account_id;
        let own: Vec<&Accreditation> = accreditations.iter().filter(|a| a.researcher == researcher).collect();
        if own.iter().any(|a| a.valid_on(today)) {
            continue;
        }
        match own.iter().filter(|a| a.expires_on < today).map(|a| a.expires_on).max() {
            Some(expired_on) => problems.push(ResearcherProblem::Expired { researcher, expired_on }),
            None => problems.push(ResearcherProblem::NotAccredited { researcher }),
        }
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(problems)
    }
}
