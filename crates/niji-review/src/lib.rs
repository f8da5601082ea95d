//! Niji's safe projects: the application (利用申請), triage against the consent scopes of the
//! datasets (the seed's four cases), the published review criteria (審査基準), the review
//! committee with recusal and votes, the application's lifecycle and deadlines, researcher
//! accreditation, the tariff and the data permit that an approval compiles into.
//!
//! The pieces:
//! - [`application`]: the one form for every dataset and its located validation.
//! - [`consent`]: a dataset's consent scope; [`disease`]: ICD-10 prefixes and related diseases.
//! - [`criteria`]: versioned criteria as TOML (tiers and deadlines, related-disease rule,
//!   escalations, committee composition), default `criteria/2026.1.toml`.
//! - [`triage`]: case, tier and reasons (Japanese and English) of an application.
//! - [`committee`]: composition, [`Deliberation`] (recusal, votes), [`Decision`].
//! - [`lifecycle`]: [`ApplicationStatus`] as a state machine and [`deadline`].
//! - [`accreditation`]: who may be named on a project.
//! - [`tariff`]: published fees, default `tariff/2026.1.toml`, and [`estimate`].
//! - [`permit`]: [`PermitPolicy`], what an approved project may touch.
//!
//! Invariants: pure code — no I/O, no clock reads (`today`/`now` are arguments), no randomness;
//! the same inputs give the same outputs. Validation problems are located (field path or index)
//! with fixed texts and never echo what was typed. Errors are [`thiserror`] enums. Applications,
//! triage results, decisions and permits derive serde for storage as JSON by the caller; dates
//! are stored as `YYYY-MM-DD`.

pub mod accreditation;
pub mod application;
pub mod committee;
pub mod consent;
pub mod criteria;
pub mod date;
pub mod disease;
pub mod lifecycle;
pub mod permit;
pub mod tariff;
pub mod triage;

pub use accreditation::{check_researchers, Accreditation, ResearcherProblem};
pub use application::{
    AccountId, AgeRange, Application, ApplicationProblem, CohortFilter, LinkagePair, NamedResearcher, Period, ProblemReason, PurposeCategory,
    Recipient, RecipientKind, RequestedVariable, Software, Track, VariableRef,
};
pub use committee::{
    check_composition, Ballot, CompositionProblem, CompositionRule, DecideError, Decision, Deliberation, Field, Gender, Member, MemberId, Quorum,
    Vote, VoteError, VoteTally,
};
pub use consent::ConsentScope;
pub use criteria::{Criteria, CriteriaError, Escalations, Tier, TierParseError, DEFAULT_CRITERIA_TOML};
pub use disease::{DiseaseRelation, RelatedDiseaseRule};
pub use lifecycle::{deadline, ApplicationEvent, ApplicationStatus, TransitionError};
pub use permit::{ApprovedScope, DatasetGrant, PermitError, PermitPolicy, PermitTerms, TableGrant};
pub use tariff::{estimate, FeeEstimate, FeeLine, Tariff, TariffError, DEFAULT_TARIFF_TOML};
pub use triage::{triage, Case, ReasonCode, Triage, TriageReason};
