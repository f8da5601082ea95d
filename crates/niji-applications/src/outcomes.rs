//! Outcomes of permits (issue 6): the researchers named on a permit report what came of it
//! (papers, products, reports), and are reminded to once a release is three months old.
//!
//! Only a researcher named on the permit reports; the report is validated (a known kind, a
//! title of 1–300 characters, a DOI or an http(s) URL, a publication date not in the future)
//! and logged as `outcome.reported` with ids only — never the title.

use niji_core::Role;
use niji_instance::Instance;
use niji_review::PermitPolicy;
use niji_store::{NewNotification, NewPermitOutcome};
use time::{Date, OffsetDateTime};

use crate::{from_json, log, Actor, WorkflowError};

/// The kinds of outcome.
pub const OUTCOME_KINDS: [&str; 4] = ["paper", "product", "report", "other"];
/// Longest title, in characters.
pub const MAX_OUTCOME_TITLE_CHARS: usize = 300;
/// Longest reference (DOI or URL), in characters.
pub const MAX_OUTCOME_REFERENCE_CHARS: usize = 2000;
/// A release's users are reminded to report outcomes this many days after it.
pub const OUTCOME_REMINDER_DAYS: i64 = 91;

/// An outcome as a researcher reports it.
#[derive(Debug, Clone)]
pub struct NewOutcome {
    /// One of [`OUTCOME_KINDS`].
    pub kind: String,
    pub title: String,
    /// A DOI (`10.1234/abc`) or an `http://` / `https://` URL.
    pub reference: String,
    pub published_on: Date,
}

/// Why a reported outcome was refused: the field and a fixed reason, never the value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutcomeProblem {
    /// The kind is not one of [`OUTCOME_KINDS`].
    UnknownKind,
    TitleRequired,
    TitleTooLong,
    /// The title or reference holds control characters.
    ControlCharacters {
        field: &'static str,
    },
    /// The reference is neither a DOI nor an http(s) URL.
    NotDoiOrUrl,
    PublishedInFuture,
}

impl OutcomeProblem {
    /// The field the problem is at.
    pub fn field(self) -> &'static str {
        match self {
            OutcomeProblem::UnknownKind => "kind",
            OutcomeProblem::TitleRequired | OutcomeProblem::TitleTooLong => "title",
            OutcomeProblem::ControlCharacters { field } => field,
            OutcomeProblem::NotDoiOrUrl => "reference",
            OutcomeProblem::PublishedInFuture => "published_on",
        }
    }

    /// A stable code.
    pub fn code(self) -> &'static str {
        match self {
            OutcomeProblem::UnknownKind => "unknown_value",
            OutcomeProblem::TitleRequired => "required",
            OutcomeProblem::TitleTooLong => "too_long",
            OutcomeProblem::ControlCharacters { .. } => "control_characters",
            OutcomeProblem::NotDoiOrUrl => "not_doi_or_url",
            OutcomeProblem::PublishedInFuture => "in_future",
        }
    }
}

/// Checks an outcome (trimmed title and reference); every problem found.
pub fn validate_outcome(o: &NewOutcome, today: Date) -> Result<(), Vec<OutcomeProblem>> {
    let mut problems = Vec::new();
    if !OUTCOME_KINDS.contains(&o.kind.as_str()) {
        problems.push(OutcomeProblem::UnknownKind);
    }
    let title = o.title.trim();
    if title.is_empty() {
        problems.push(OutcomeProblem::TitleRequired);
    } else if title.chars().count() > MAX_OUTCOME_TITLE_CHARS {
        problems.push(OutcomeProblem::TitleTooLong);
    } else if title.chars().any(char::is_control) {
        problems.push(OutcomeProblem::ControlCharacters { field: "title" });
    }
    let reference = o.reference.trim();
    if reference.chars().any(char::is_control) {
        problems.push(OutcomeProblem::ControlCharacters { field: "reference" });
    } else if !(is_doi(reference) || is_web_url(reference)) {
        problems.push(OutcomeProblem::NotDoiOrUrl);
    }
    if o.published_on > today {
        problems.push(OutcomeProblem::PublishedInFuture);
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(problems)
    }
}

/// A DOI: `10.` then a registrant code of digits (dot-separated parts), `/`, and a suffix
/// without spaces.
pub fn is_doi(s: &str) -> bool {
    let Some(rest) = s.strip_prefix("10.") else { return false };
    let Some((registrant, suffix)) = rest.split_once('/') else { return false };
    let registrant_ok = registrant.split('.').all(|part| !part.is_empty() && part.bytes().all(|b| b.is_ascii_digit()))
        && registrant.len() >= 4
        && registrant.len() <= 64;
    registrant_ok && !suffix.is_empty() && s.len() <= MAX_OUTCOME_REFERENCE_CHARS && !suffix.chars().any(char::is_whitespace)
}

/// An `http://` or `https://` URL with a host and no spaces.
pub fn is_web_url(s: &str) -> bool {
    let lower = s.to_ascii_lowercase();
    let Some(rest) = lower.strip_prefix("https://").or_else(|| lower.strip_prefix("http://")) else { return false };
    let host = rest.split(['/', '?', '#']).next().unwrap_or("");
    let host = host.rsplit_once('@').map_or(host, |(_, h)| h);
    let host_ok = !host.is_empty()
        && host.split(':').next().is_some_and(|h| !h.is_empty() && h.chars().all(|c| c.is_alphanumeric() || matches!(c, '.' | '-' | '[' | ']')));
    host_ok && s.len() <= MAX_OUTCOME_REFERENCE_CHARS && !s.chars().any(char::is_whitespace)
}

/// A researcher named on the permit reports an outcome. Returns the outcome's id.
pub async fn report_outcome(instance: &Instance, actor: &Actor, permit_id: i64, outcome: &NewOutcome, today: Date) -> Result<i64, WorkflowError> {
    actor.require(Role::Researcher)?;
    let permit = instance.store.permit(permit_id).await?.ok_or(WorkflowError::NotFound("permit"))?;
    let policy: PermitPolicy = from_json(&permit.policy, "permit policy")?;
    if !policy.names(actor.user_id) {
        return Err(WorkflowError::NotNamedOnPermit);
    }
    validate_outcome(outcome, today).map_err(WorkflowError::Outcome)?;
    let id = instance
        .store
        .insert_permit_outcome(
            &NewPermitOutcome {
                permit_id,
                kind: &outcome.kind,
                title: outcome.title.trim(),
                reference: outcome.reference.trim(),
                published_on: &outcome.published_on.to_string(),
                reported_by: actor.user_id,
            },
            OffsetDateTime::now_utc().unix_timestamp(),
        )
        .await?;
    let index = log(instance, actor, "outcome.reported", format!("permit:{permit_id}"), serde_json::json!({"outcome": id}))?;
    instance.store.set_permit_outcome_log_index(id, index as i64).await?;
    Ok(id)
}

/// Reminds the researchers named on a permit to report outcomes once a release of the permit
/// is [`OUTCOME_REMINDER_DAYS`] old, unless an outcome was reported for the permit since that
/// release. Each release is reminded of once; the due releases of one permit share one
/// notification (Japanese and English) per researcher. Returns the ids of the runs reminded of.
pub async fn remind_outcomes(instance: &Instance, now: OffsetDateTime) -> Result<Vec<i64>, WorkflowError> {
    let store = &instance.store;
    let now_ts = now.unix_timestamp();
    let outcomes = store.permit_outcomes().await?;
    // Due releases by permit, oldest first.
    let mut due: Vec<(i64, Vec<niji_store::AnalysisRunRow>)> = Vec::new();
    for run in store.released_runs().await? {
        if run.outcome_reminder_at.is_some() || now_ts - run.finished_at < OUTCOME_REMINDER_DAYS * 86_400 {
            continue;
        }
        if outcomes.iter().any(|o| o.permit_id == run.permit_id && o.reported_at >= run.finished_at) {
            continue;
        }
        match due.iter_mut().find(|(p, _)| *p == run.permit_id) {
            Some((_, runs)) => runs.push(run),
            None => due.push((run.permit_id, vec![run])),
        }
    }
    let mut reminded = Vec::new();
    for (permit_id, runs) in due {
        let Some(permit) = store.permit(permit_id).await? else { continue };
        let policy: PermitPolicy = from_json(&permit.policy, "permit policy")?;
        let mut marked = Vec::new();
        for run in &runs {
            // Once only: a run another pass marked meanwhile is skipped.
            if store.mark_outcome_reminder(run.id, now_ts).await? {
                marked.push(run);
            }
        }
        let Some(first) = marked.first() else { continue };
        let released_on = OffsetDateTime::from_unix_timestamp(first.finished_at).map(|t| niji_core::today_jst(t).to_string()).unwrap_or_default();
        let body = format!(
            "許可 {permit_id} の集計結果の公表（{released_on}、ほか {more} 件）から3か月が経ちました。\
             論文・製品・報告書などの成果があれば、ポータルの「データ利用許可」または API（POST /api/v1/permits/{permit_id}/outcomes）で報告してください。\
             成果は公開の透明性登録簿に掲載されます。\n\
             Three months have passed since results of permit {permit_id} were released ({released_on}, and {more} more). \
             Please report any outcomes (papers, products, reports) on the portal's Data permits page or through the API \
             (POST /api/v1/permits/{permit_id}/outcomes). Outcomes appear on the public transparency register.",
            more = marked.len() - 1,
        );
        for r in &policy.researchers {
            let address = store.user_email(r.account_id).await?.unwrap_or_default();
            store
                .enqueue_notification(
                    &NewNotification {
                        user_id: Some(r.account_id),
                        address: &address,
                        subject: "成果の報告のお願い / Please report outcomes",
                        body: &body,
                    },
                    now_ts,
                )
                .await?;
        }
        reminded.extend(marked.iter().map(|r| r.id));
    }
    Ok(reminded)
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::date;

    fn outcome(kind: &str, title: &str, reference: &str, published_on: Date) -> NewOutcome {
        NewOutcome { kind: kind.into(), title: title.into(), reference: reference.into(), published_on }
    }

    #[test]
    fn references_are_dois_or_web_urls() {
        for ok in
            ["10.1000/xyz123", "10.1038/s41586-020-2649-2", "10.1000.10/abc(1)", "https://example.org/paper", "http://a.jp", "HTTPS://Example.org"]
        {
            assert!(is_doi(ok) || is_web_url(ok), "{ok}");
        }
        for bad in
            ["10.12/x", "10.1000/", "10.abcd/x", "doi 10.1000/x", "ftp://example.org", "https://", "https:///x", "javascript:alert(1)", "10.1000/a b"]
        {
            assert!(!is_doi(bad) && !is_web_url(bad), "{bad}");
        }
    }

    #[test]
    fn outcomes_are_validated_with_located_problems() {
        let today = date!(2027 - 03 - 01);
        assert!(validate_outcome(&outcome("paper", "糖尿病の研究", "10.1000/x", today), today).is_ok());
        let e = validate_outcome(&outcome("poster", " ", "nope", date!(2027 - 03 - 02)), today).unwrap_err();
        assert_eq!(
            e,
            vec![OutcomeProblem::UnknownKind, OutcomeProblem::TitleRequired, OutcomeProblem::NotDoiOrUrl, OutcomeProblem::PublishedInFuture]
        );
        let long = "あ".repeat(301);
        assert_eq!(validate_outcome(&outcome("other", &long, "https://x.jp", today), today).unwrap_err(), vec![OutcomeProblem::TitleTooLong]);
        assert!(validate_outcome(&outcome("other", &"あ".repeat(300), "https://x.jp", today), today).is_ok());
        let e = validate_outcome(&outcome("report", "a\u{7}b", "https://x.jp", today), today).unwrap_err();
        assert_eq!((e[0].field(), e[0].code()), ("title", "control_characters"));
    }
}
