//! The data permit (データ利用許可): what an accepted application may touch, compiled into a
//! policy that the analysis environment enforces.
//!
//! [`PermitPolicy::grant`] derives the policy from the application and the [`ApprovedScope`]:
//! the subset of the requested variables and linkage pairs that the committee (or, for a
//! notification, the secretariat) approved, with its conditions. Anything approved that was not
//! requested is refused, and so is a permit longer than the requested duration.
//! [`PermitPolicy::amend`] derives the next version (変更) from an amended application.
//!
//! Invariants: a policy made by `grant`/`amend` allows exactly the approved columns (so never a
//! column that was not requested); datasets, tables and columns are sorted and unique, so the
//! same inputs give the same policy (and the same JSON). Names compare exactly. The permit is
//! active from `starts_on` to `expires_on`, both included, where `expires_on` is the day before
//! `starts_on` plus `months` calendar months.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};
use time::Date;

use crate::application::{
    Application, ApplicationProblem, CohortFilter, LinkagePair, NamedResearcher, PurposeCategory, Recipient, Track, VariableRef,
};

/// What was approved of an application.
#[derive(Clone, Debug, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct ApprovedScope {
    pub variables: Vec<VariableRef>,
    pub linkage: Vec<LinkagePair>,
    /// Conditions of approval, copied into the permit.
    pub conditions: Vec<String>,
    /// A cohort narrower than the application's (or a first one when it asked for none);
    /// `None`: the application's cohort.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cohort: Option<CohortFilter>,
}

/// When and how the permit applies.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PermitTerms {
    #[serde(with = "crate::date::iso")]
    pub starts_on: Date,
    /// At most the application's duration.
    pub months: u32,
    /// Disclosure-control preset of output checking (e.g. `standard`, `strict`): lower-case
    /// letters, digits, `_` and `-`, at most 32 characters.
    pub output_preset: String,
    /// Shift every date per person by up to this many days (1–366); `None`: no shift.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub date_shift_days: Option<u32>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PermitPolicy {
    pub application_id: i64,
    /// 1 when granted, +1 per amendment.
    pub version: u32,
    pub datasets: Vec<DatasetGrant>,
    pub cohort: Option<CohortFilter>,
    pub purpose: String,
    pub purpose_category: PurposeCategory,
    pub recipients: Vec<Recipient>,
    pub researchers: Vec<NamedResearcher>,
    pub linkage: Vec<LinkagePair>,
    pub track: Track,
    pub output_preset: String,
    #[serde(with = "crate::date::iso")]
    pub starts_on: Date,
    #[serde(with = "crate::date::iso")]
    pub expires_on: Date,
    pub conditions: Vec<String>,
    /// When set, every date a researcher sees is shifted by the same offset per person, drawn in
    /// `[-days, +days]` from the permit's own key: intervals within a person are kept, calendar
    /// dates are not, and two permits shift differently.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub date_shift_days: Option<u32>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DatasetGrant {
    pub dataset: String,
    pub tables: Vec<TableGrant>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TableGrant {
    pub table: String,
    pub columns: Vec<String>,
}

/// Why a permit cannot be derived; located by index into the approved scope, never by value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PermitError {
    #[error("the application is not valid: {} problem(s)", .0.len())]
    InvalidApplication(Vec<ApplicationProblem>),
    #[error("nothing was approved")]
    NothingApproved,
    #[error("approved variable {index} was not requested")]
    VariableNotRequested { index: usize },
    #[error("approved linkage {index} was not requested")]
    LinkageNotRequested { index: usize },
    #[error("approved linkage {index} links a dataset with no approved variable")]
    LinkageDatasetNotApproved { index: usize },
    #[error("approved condition {index} is empty")]
    EmptyCondition { index: usize },
    #[error("a permit must last at least one month")]
    ZeroMonths,
    #[error("the permit lasts {months} months; the application asked for {requested}")]
    LongerThanRequested { months: u32, requested: u32 },
    #[error("the output preset must be 1–32 lower-case letters, digits, '_' or '-'")]
    BadPreset,
    #[error("no further amendment is possible")]
    VersionOverflow,
    #[error("the approved cohort is not valid: {0}")]
    BadCohort(&'static str),
    #[error("the approved cohort is wider than the application's: {0}")]
    WiderCohort(&'static str),
    #[error("a date shift must be 1 to 366 days")]
    BadDateShift,
}

impl PermitPolicy {
    /// Version 1 of the permit of application `application_id`.
    pub fn grant(application_id: i64, application: &Application, approved: &ApprovedScope, terms: &PermitTerms) -> Result<PermitPolicy, PermitError> {
        derive(application_id, 1, application, approved, terms)
    }

    /// The next version, from the amended application and what was approved of it.
    pub fn amend(&self, application: &Application, approved: &ApprovedScope, terms: &PermitTerms) -> Result<PermitPolicy, PermitError> {
        let version = self.version.checked_add(1).ok_or(PermitError::VersionOverflow)?;
        derive(self.application_id, version, application, approved, terms)
    }

    /// Whether the account is one of the permit's named researchers.
    pub fn names(&self, account_id: i64) -> bool {
        self.researchers.iter().any(|r| r.account_id == account_id)
    }

    pub fn allows_dataset(&self, dataset: &str) -> bool {
        self.datasets.iter().any(|d| d.dataset == dataset)
    }

    pub fn allows_table(&self, dataset: &str, table: &str) -> bool {
        self.datasets.iter().filter(|d| d.dataset == dataset).flat_map(|d| &d.tables).any(|t| t.table == table)
    }

    pub fn allows_column(&self, dataset: &str, table: &str, column: &str) -> bool {
        self.datasets
            .iter()
            .filter(|d| d.dataset == dataset)
            .flat_map(|d| &d.tables)
            .filter(|t| t.table == table)
            .any(|t| t.columns.iter().any(|c| c == column))
    }

    /// Whether linking these two datasets is allowed (either order).
    pub fn allows_linkage(&self, a: &str, b: &str) -> bool {
        self.linkage.iter().any(|p| p.links(a, b))
    }

    /// Whether the permit is in force on `date` (both ends included).
    pub fn active_on(&self, date: Date) -> bool {
        self.starts_on <= date && date <= self.expires_on
    }

    /// Every allowed column, sorted.
    pub fn columns(&self) -> Vec<VariableRef> {
        self.datasets
            .iter()
            .flat_map(|d| d.tables.iter().flat_map(move |t| t.columns.iter().map(move |c| VariableRef::new(&d.dataset, &t.table, c))))
            .collect()
    }
}

/// A valid cohort, within the application's (when it asked for one): its diseases each under one
/// of the application's, its age range and period inside the application's.
fn check_cohort(c: &CohortFilter, asked: Option<&CohortFilter>) -> Result<(), PermitError> {
    if c.diseases.iter().any(|d| crate::disease::normalize(d).is_none()) {
        return Err(PermitError::BadCohort("diseases"));
    }
    if c.age.is_some_and(|a| a.min > a.max) {
        return Err(PermitError::BadCohort("age"));
    }
    if c.period.is_some_and(|p| p.from > p.to) {
        return Err(PermitError::BadCohort("period"));
    }
    let Some(a) = asked else { return Ok(()) };
    if !a.diseases.is_empty() && (c.diseases.is_empty() || !c.diseases.iter().all(|d| a.diseases.iter().any(|x| crate::disease::covers(x, d)))) {
        return Err(PermitError::WiderCohort("diseases"));
    }
    if let Some(aa) = a.age {
        if !c.age.is_some_and(|ca| ca.min >= aa.min && ca.max <= aa.max) {
            return Err(PermitError::WiderCohort("age"));
        }
    }
    if let Some(ap) = a.period {
        if !c.period.is_some_and(|cp| cp.from >= ap.from && cp.to <= ap.to) {
            return Err(PermitError::WiderCohort("period"));
        }
    }
    Ok(())
}

fn derive(
    application_id: i64,
    version: u32,
    application: &Application,
    approved: &ApprovedScope,
    terms: &PermitTerms,
) -> Result<PermitPolicy, PermitError> {
    application.validate().map_err(PermitError::InvalidApplication)?;
    if approved.variables.is_empty() {
        return Err(PermitError::NothingApproved);
    }
    let mut grants: BTreeMap<&str, BTreeMap<&str, BTreeSet<&str>>> = BTreeMap::new();
    for (index, v) in approved.variables.iter().enumerate() {
        if !application.requests(&v.dataset, &v.table, &v.column) {
            return Err(PermitError::VariableNotRequested { index });
        }
        grants.entry(&v.dataset).or_default().entry(&v.table).or_default().insert(&v.column);
    }
    let mut linkage: BTreeSet<(&str, &str)> = BTreeSet::new();
    for (index, pair) in approved.linkage.iter().enumerate() {
        if !application.linkage.contains(pair) {
            return Err(PermitError::LinkageNotRequested { index });
        }
        if !grants.contains_key(pair.left.as_str()) || !grants.contains_key(pair.right.as_str()) {
            return Err(PermitError::LinkageDatasetNotApproved { index });
        }
        linkage.insert(pair.key());
    }
    let cohort = match &approved.cohort {
        None => application.cohort.clone(),
        Some(c) => {
            check_cohort(c, application.cohort.as_ref())?;
            Some(c.clone())
        }
    };
    if terms.date_shift_days.is_some_and(|d| !(1..=366).contains(&d)) {
        return Err(PermitError::BadDateShift);
    }
    if let Some(index) = approved.conditions.iter().position(|c| c.trim().is_empty()) {
        return Err(PermitError::EmptyCondition { index });
    }
    if terms.months == 0 {
        return Err(PermitError::ZeroMonths);
    }
    if terms.months > application.duration_months {
        return Err(PermitError::LongerThanRequested { months: terms.months, requested: application.duration_months });
    }
    let preset = &terms.output_preset;
    if preset.is_empty() || preset.len() > 32 || !preset.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-') {
        return Err(PermitError::BadPreset);
    }
    let end = crate::date::add_months(terms.starts_on, terms.months);
    let expires_on = if end == Date::MAX { Date::MAX } else { end.previous_day().unwrap_or(terms.starts_on) };

    Ok(PermitPolicy {
        application_id,
        version,
        datasets: grants
            .into_iter()
            .map(|(dataset, tables)| DatasetGrant {
                dataset: dataset.to_owned(),
                tables: tables
                    .into_iter()
                    .map(|(table, columns)| TableGrant { table: table.to_owned(), columns: columns.into_iter().map(str::to_owned).collect() })
                    .collect(),
            })
            .collect(),
        cohort,
        purpose: application.purpose.clone(),
        purpose_category: application.purpose_category,
        recipients: application.recipients.clone(),
        researchers: application.researchers.clone(),
        linkage: linkage.into_iter().map(|(a, b)| LinkagePair::new(a, b)).collect(),
        track: application.track,
        output_preset: preset.clone(),
        starts_on: terms.starts_on,
        expires_on,
        conditions: approved.conditions.clone(),
        date_shift_days: terms.date_shift_days,
    })
}
