//! Committee composition, recusal, votes, quorum and decisions.

mod common;

use common::*;
use niji_review::*;

fn rule() -> CompositionRule {
    Criteria::builtin().committee
}

fn all_vote(d: &mut Deliberation, ids: &[i64], vote: Vote) {
    for id in ids {
        d.cast(*id, vote, "意見なし").unwrap();
    }
}

fn reasons() -> Vec<String> {
    vec!["研究計画は妥当であり、必要最小限の項目に限られている".into()]
}

#[test]
fn a_valid_committee_decides() {
    let mut d = Deliberation::new(committee(), &Criteria::builtin());
    all_vote(&mut d, &[1, 2, 3, 4], Vote::Approve);
    let decision = d.decide(Vote::Approve, vec![], reasons()).unwrap();
    assert_eq!(decision.criteria_version, "2026.1");
    assert_eq!(decision.tally, VoteTally { approve: 4, ..VoteTally::default() });
    assert_eq!(decision.eligible_members, 6);
    assert_eq!(decision.reasons, reasons());
    assert_eq!(decision.ballots.len(), 4);
    assert_eq!(ApplicationStatus::UnderReview.apply(ApplicationEvent::Decided { verdict: decision.verdict }), Ok(ApplicationStatus::Approved));
}

#[test]
fn composition_problems_are_all_reported() {
    assert_eq!(check_composition(&committee(), &[], &rule()), Ok(()));

    let no_public: Vec<Member> = committee().into_iter().filter(|m| m.field != Field::GeneralPublic).collect();
    let problems = check_composition(&no_public, &[], &rule()).unwrap_err();
    assert_eq!(
        problems,
        [CompositionProblem::TooFewMembers { present: 4, required: 5 }, CompositionProblem::MissingField { field: Field::GeneralPublic }]
    );

    let one_gender: Vec<Member> = committee().into_iter().map(|m| Member { gender: Gender::Male, ..m }).collect();
    assert_eq!(check_composition(&one_gender, &[], &rule()).unwrap_err(), [CompositionProblem::MissingGender { gender: Gender::Female }]);

    let internal: Vec<Member> = committee().into_iter().map(|m| Member { external: m.id == 2, ..m }).collect();
    assert_eq!(check_composition(&internal, &[], &rule()).unwrap_err(), [CompositionProblem::TooFewExternal { present: 1, required: 2 }]);

    // Recusal counts: recusing both general-public members leaves none.
    assert_eq!(
        check_composition(&committee(), &[5, 6], &rule()).unwrap_err(),
        [CompositionProblem::TooFewMembers { present: 4, required: 5 }, CompositionProblem::MissingField { field: Field::GeneralPublic }]
    );
}

#[test]
fn a_committee_without_a_general_public_member_cannot_decide() {
    let mut members = committee();
    for m in &mut members {
        if m.field == Field::GeneralPublic {
            m.field = Field::MedicineScience;
        }
    }
    let mut d = Deliberation::new(members, &Criteria::builtin());
    all_vote(&mut d, &[1, 2, 3, 4, 5, 6], Vote::Approve);
    assert_eq!(
        d.decide(Vote::Approve, vec![], reasons()),
        Err(DecideError::Composition(vec![CompositionProblem::MissingField { field: Field::GeneralPublic }]))
    );
}

#[test]
fn fewer_than_five_non_recused_members_cannot_decide() {
    let mut d = Deliberation::new(committee(), &Criteria::builtin());
    d.declare_conflict(4).unwrap();
    d.declare_conflict(1).unwrap();
    all_vote(&mut d, &[2, 3, 5, 6], Vote::Approve);
    match d.decide(Vote::Approve, vec![], reasons()) {
        Err(DecideError::Composition(p)) => assert!(p.contains(&CompositionProblem::TooFewMembers { present: 4, required: 5 }), "{p:?}"),
        other => panic!("{other:?}"),
    }
}

#[test]
fn one_gender_only_cannot_decide() {
    let members: Vec<Member> = committee().into_iter().map(|m| Member { gender: Gender::Female, ..m }).collect();
    let mut d = Deliberation::new(members, &Criteria::builtin());
    all_vote(&mut d, &[1, 2, 3, 4, 5, 6], Vote::Approve);
    assert_eq!(
        d.decide(Vote::Approve, vec![], reasons()),
        Err(DecideError::Composition(vec![CompositionProblem::MissingGender { gender: Gender::Male }]))
    );
}

#[test]
fn recused_members_and_non_members_cannot_vote_and_votes_are_final() {
    let mut d = Deliberation::new(committee(), &Criteria::builtin());
    d.declare_conflict(3).unwrap();
    assert_eq!(d.cast(3, Vote::Approve, "賛成"), Err(VoteError::Recused));
    assert_eq!(d.cast(99, Vote::Approve, "賛成"), Err(VoteError::NotAMember));
    assert_eq!(d.declare_conflict(99), Err(VoteError::NotAMember));
    d.cast(1, Vote::Reject, "反対").unwrap();
    assert_eq!(d.cast(1, Vote::Approve, "やはり賛成"), Err(VoteError::AlreadyVoted));
    assert_eq!(d.tally(), VoteTally { reject: 1, ..VoteTally::default() });
    // A conflict declared after voting withdraws the vote.
    d.declare_conflict(1).unwrap();
    assert_eq!(d.tally().total(), 0);
    assert_eq!(d.recused(), [1, 3]);
}

#[test]
fn quorum_not_met_cannot_decide() {
    // 6 eligible × 2/3 = 4 votes needed.
    let mut d = Deliberation::new(committee(), &Criteria::builtin());
    all_vote(&mut d, &[1, 2, 3], Vote::Approve);
    assert_eq!(d.decide(Vote::Approve, vec![], reasons()), Err(DecideError::NoQuorum { cast: 3, required: 4 }));
    d.cast(5, Vote::RequestChanges, "対象期間の根拠を示すこと").unwrap();
    let decision = d.decide(Vote::Approve, vec![], reasons()).unwrap();
    assert_eq!(decision.tally, VoteTally { approve: 3, request_changes: 1, ..VoteTally::default() });

    // One recused: 5 eligible × 2/3 → 4 (rounded up).
    assert_eq!(rule().quorum.required(5), 4);
    assert_eq!(rule().quorum.required(6), 4);
    assert_eq!(rule().quorum.required(7), 5);
}

#[test]
fn decisions_need_reasons_and_conditions_match_the_verdict() {
    let mut d = Deliberation::new(committee(), &Criteria::builtin());
    all_vote(&mut d, &[1, 2, 3, 4], Vote::ApproveWithConditions);
    assert_eq!(d.decide(Vote::Approve, vec![], vec![]), Err(DecideError::NoReasons));
    assert_eq!(d.decide(Vote::Approve, vec![], vec![" ".into()]), Err(DecideError::NoReasons));
    assert_eq!(d.decide(Vote::ApproveWithConditions, vec![], reasons()), Err(DecideError::NoConditions));
    assert_eq!(d.decide(Vote::Reject, vec!["x".into()], reasons()), Err(DecideError::UnexpectedConditions));
    let decision = d.decide(Vote::ApproveWithConditions, vec!["成果物は公表前に確認を受けること".into()], reasons()).unwrap();
    assert_eq!(decision.conditions.len(), 1);
    let json = serde_json::to_string(&decision).unwrap();
    assert_eq!(serde_json::from_str::<Decision>(&json).unwrap(), decision);
}
