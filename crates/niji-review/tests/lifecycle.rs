//! The application lifecycle: every allowed transition, refused ones, and deadlines.

use niji_review::ApplicationEvent as E;
use niji_review::ApplicationStatus as S;
use niji_review::*;
use time::macros::date;

fn check(from: S, event: E, expected: Result<S, ()>) {
    assert_eq!(from.apply(event).map_err(|_| ()), expected, "{from:?} + {event:?}");
}

const NOTIFY: E = E::Triaged { tier: Tier::Notification };

#[test]
fn every_allowed_transition() {
    check(S::Draft, E::Submit, Ok(S::Submitted));
    check(S::Submitted, NOTIFY, Ok(S::Notified));
    for tier in [Tier::Light, Tier::MedicalValidity, Tier::Standard, Tier::Full] {
        check(S::Submitted, E::Triaged { tier }, Ok(S::UnderReview));
    }
    check(S::UnderReview, E::Decided { verdict: Vote::Approve }, Ok(S::Approved));
    check(S::UnderReview, E::Decided { verdict: Vote::ApproveWithConditions }, Ok(S::ApprovedWithConditions));
    check(S::UnderReview, E::Decided { verdict: Vote::RequestChanges }, Ok(S::ChangesRequested));
    check(S::UnderReview, E::Decided { verdict: Vote::Reject }, Ok(S::Rejected));
    check(S::ChangesRequested, E::Resubmit, Ok(S::Resubmitted));
    check(S::Resubmitted, E::ReopenReview, Ok(S::UnderReview));
    for from in [S::Draft, S::Submitted, S::UnderReview, S::ChangesRequested, S::Resubmitted] {
        check(from, E::Withdraw, Ok(S::Withdrawn));
    }
}

#[test]
fn refused_transitions() {
    check(S::Draft, NOTIFY, Err(()));
    check(S::Draft, E::Decided { verdict: Vote::Approve }, Err(()));
    check(S::Submitted, E::Submit, Err(()));
    check(S::Submitted, E::Decided { verdict: Vote::Approve }, Err(()));
    check(S::UnderReview, E::Resubmit, Err(()));
    check(S::ChangesRequested, E::Decided { verdict: Vote::Approve }, Err(()));
    check(S::Resubmitted, E::Decided { verdict: Vote::Approve }, Err(()));
    for from in [S::Notified, S::Approved, S::ApprovedWithConditions, S::Rejected, S::Withdrawn] {
        assert!(from.is_final());
        check(from, E::Withdraw, Err(()));
        check(from, E::Submit, Err(()));
    }
    let e = S::Rejected.apply(E::Resubmit).unwrap_err();
    assert_eq!(e, TransitionError { from: S::Rejected, event: E::Resubmit });
    assert_eq!(e.to_string(), "event resubmit is not allowed in state rejected");
}

#[test]
fn only_final_states_accept_nothing_and_a_whole_path_works() {
    for s in S::ALL {
        let any_ok =
            [E::Submit, NOTIFY, E::Triaged { tier: Tier::Full }, E::Decided { verdict: Vote::Approve }, E::Resubmit, E::ReopenReview, E::Withdraw]
                .into_iter()
                .any(|e| s.apply(e).is_ok());
        assert_eq!(any_ok, !s.is_final(), "{s:?}");
    }
    let path = [
        E::Submit,
        E::Triaged { tier: Tier::Standard },
        E::Decided { verdict: Vote::RequestChanges },
        E::Resubmit,
        E::ReopenReview,
        E::Decided { verdict: Vote::ApproveWithConditions },
    ];
    let end = path.into_iter().try_fold(S::Draft, S::apply).unwrap();
    assert_eq!(end, S::ApprovedWithConditions);
    assert!(end.is_accepted());
    let json = serde_json::to_string(&E::Triaged { tier: Tier::Light }).unwrap();
    assert_eq!(json, r#"{"event":"triaged","tier":"light"}"#);
}

#[test]
fn deadlines_follow_the_criteria_in_calendar_days() {
    let c = Criteria::builtin();
    let submitted = date!(2026 - 12 - 25);
    assert_eq!(deadline(submitted, Tier::Notification, &c), submitted);
    assert_eq!(deadline(submitted, Tier::Light, &c), date!(2027 - 01 - 01));
    assert_eq!(deadline(submitted, Tier::MedicalValidity, &c), date!(2027 - 01 - 08));
    assert_eq!(deadline(submitted, Tier::Standard, &c), date!(2027 - 01 - 24));
    assert_eq!(deadline(submitted, Tier::Full, &c), date!(2027 - 03 - 25));
    let c = c.with_deadline(Tier::Light, 3).unwrap();
    assert_eq!(deadline(submitted, Tier::Light, &c), date!(2026 - 12 - 28));
}
