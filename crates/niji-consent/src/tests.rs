use time::macros::{date, datetime};

use super::*;
use ConsentAspect as Aspect;
use ExclusionReason as Why;
use PurposeCategory as P;
use RecipientKind as R;

// ---- builders ------------------------------------------------------------------------------

fn entry(id: u64, recorded_at: OffsetDateTime, actor: Actor, choice: Choice) -> Entry {
    Entry { id, recorded_at, actor, choice }
}

fn by_person(id: u64, recorded_at: OffsetDateTime, choice: Choice) -> Entry {
    entry(id, recorded_at, Actor::Person, choice)
}

fn opt_out(scope: OptOutScope) -> Choice {
    Choice::OptOut { scope }
}

fn consent(purposes: &[P], recipients: &[R], diseases: &[&str]) -> Choice {
    Choice::Consent {
        scope: ConsentScope {
            purposes: purposes.to_vec(),
            recipients: recipients.to_vec(),
            diseases: diseases.iter().map(|d| d.to_string()).collect(),
        },
    }
}

fn withdraw(entry: u64) -> Choice {
    Choice::Withdraw { entry }
}

fn notice() -> Choice {
    Choice::NoticeDelivered { holder: "holder-a".into(), delivered_on: date!(2026 - 03 - 01) }
}

fn holder() -> Actor {
    Actor::Holder { holder: "holder-a".into() }
}

/// A use for academic research by academia, no disease, at `at`.
fn use_at(at: OffsetDateTime) -> Use {
    Use { purpose: P::AcademicResearch, recipients: vec![R::Academia], diseases: vec![], at }
}

fn use_for(at: OffsetDateTime, purpose: P, recipients: &[R], diseases: &[&str]) -> Use {
    Use { purpose, recipients: recipients.to_vec(), diseases: diseases.iter().map(|d| d.to_string()).collect(), at }
}

const IN: Decision = Decision::Included;

fn out(reason: ExclusionReason) -> Decision {
    Decision::Excluded(reason)
}

#[track_caller]
fn check(name: &str, entries: &[Entry], use_: &Use, expected: Decision) {
    let got = decide(entries, use_);
    assert_eq!(got, expected, "case `{name}` (use at {})", use_.at);
    // The order of the slice never matters.
    let mut reversed = entries.to_vec();
    reversed.reverse();
    assert_eq!(decide(&reversed, use_), expected, "case `{name}` reversed");
}

// ---- decide: the scenario table ------------------------------------------------------------

#[test]
fn decide_scenarios() {
    let d = |day: u8| datetime!(2026-04-01 03:00 UTC).replace_day(day).unwrap();

    let opt_out_all = vec![by_person(1, datetime!(2026-04-10 12:00 UTC), opt_out(OptOutScope::All))];
    let opt_out_purpose = vec![by_person(1, d(1), opt_out(OptOutScope::Purpose(P::DrugAndDeviceDevelopment)))];
    let opt_out_recipient = vec![by_person(1, d(1), opt_out(OptOutScope::Recipient(R::Company)))];
    let opt_out_then_withdrawn = vec![by_person(1, d(1), opt_out(OptOutScope::All)), by_person(2, d(20), withdraw(1))];
    let two_opt_outs_one_withdrawn = vec![
        by_person(1, d(1), opt_out(OptOutScope::All)),
        by_person(2, d(2), opt_out(OptOutScope::Recipient(R::Company))),
        by_person(3, d(3), withdraw(1)),
    ];
    let consent_withdrawn = vec![
        by_person(1, d(1), consent(&[P::AcademicResearch, P::TreatmentDevelopment], &[R::Academia, R::Hospital], &[])),
        by_person(2, d(10), withdraw(1)),
    ];
    let consent_again = {
        let mut entries = consent_withdrawn.clone();
        entries.push(by_person(3, d(20), consent(&[P::DrugSafety], &[R::Company], &[])));
        entries
    };
    let diseases = vec![by_person(1, d(1), consent(&[P::AcademicResearch], &[R::Academia], &["E11", "I20"]))];
    let replaced = vec![
        by_person(1, d(1), consent(&[P::AcademicResearch, P::DrugSafety], &[R::Academia, R::Company], &[])),
        by_person(2, d(5), consent(&[P::AcademicResearch], &[R::Academia], &[])),
    ];
    let superseded_withdrawn = {
        let mut entries = replaced.clone();
        entries.push(by_person(3, d(8), withdraw(1)));
        entries
    };
    let opt_out_beats_consent = vec![
        by_person(1, d(1), consent(&[P::AcademicResearch, P::DrugSafety], &[R::Academia], &[])),
        by_person(2, d(2), opt_out(OptOutScope::Purpose(P::DrugSafety))),
    ];
    let notice_only = vec![entry(1, d(1), holder(), notice())];
    let other_purpose = vec![by_person(1, d(1), consent(&[P::Other, P::AcademicResearch], &[R::Academia], &[]))];
    // Withdrawals that do not count: of a notice, of a later entry, of an unknown id, twice.
    let odd_withdrawals = vec![
        entry(1, d(1), holder(), notice()),
        by_person(2, d(2), withdraw(1)),
        by_person(3, d(3), withdraw(4)),
        by_person(4, d(4), opt_out(OptOutScope::All)),
        by_person(5, d(5), withdraw(99)),
    ];
    let withdrawn_twice = vec![
        by_person(1, d(1), consent(&[P::AcademicResearch], &[R::Academia], &[])),
        by_person(2, d(2), withdraw(1)),
        by_person(3, d(3), consent(&[P::AcademicResearch], &[R::Academia], &[])),
        by_person(4, d(4), withdraw(1)),
    ];
    // The same instant: the id decides the order.
    let same_instant = vec![by_person(7, d(3), opt_out(OptOutScope::All)), by_person(8, d(3), withdraw(7))];

    let cases: Vec<(&str, &[Entry], Use, Decision)> = vec![
        // 8. No entries: the opt-out model includes the person.
        ("no entries", &[], use_at(d(5)), IN),
        // 7. A notice decides nothing.
        ("notice only", &notice_only, use_at(d(5)), IN),
        // 1 + 2. An opt-out today excludes a use today, not one yesterday or a minute before.
        ("opt-out: same instant", &opt_out_all, use_at(datetime!(2026-04-10 12:00 UTC)), out(Why::OptedOut { entry: 1 })),
        ("opt-out: later today", &opt_out_all, use_at(datetime!(2026-04-10 23:00 UTC)), out(Why::OptedOut { entry: 1 })),
        ("opt-out: a minute before", &opt_out_all, use_at(datetime!(2026-04-10 11:59 UTC)), IN),
        ("opt-out: yesterday", &opt_out_all, use_at(datetime!(2026-04-09 12:00 UTC)), IN),
        ("opt-out: a year later", &opt_out_all, use_at(datetime!(2027-04-10 12:00 UTC)), out(Why::OptedOut { entry: 1 })),
        // 2. By purpose and by recipient.
        (
            "opt-out by purpose: that purpose",
            &opt_out_purpose,
            use_for(d(2), P::DrugAndDeviceDevelopment, &[R::Academia], &[]),
            out(Why::OptedOut { entry: 1 }),
        ),
        ("opt-out by purpose: another purpose", &opt_out_purpose, use_for(d(2), P::AcademicResearch, &[R::Company], &[]), IN),
        (
            "opt-out by recipient: among the recipients",
            &opt_out_recipient,
            use_for(d(2), P::AcademicResearch, &[R::Academia, R::Company], &[]),
            out(Why::OptedOut { entry: 1 }),
        ),
        ("opt-out by recipient: not among them", &opt_out_recipient, use_for(d(2), P::DrugSafety, &[R::Academia, R::Hospital], &[]), IN),
        // 5. Withdrawing an opt-out restores inclusion from then on.
        ("withdrawn opt-out: before withdrawal", &opt_out_then_withdrawn, use_at(d(15)), out(Why::OptedOut { entry: 1 })),
        ("withdrawn opt-out: at withdrawal", &opt_out_then_withdrawn, use_at(d(20)), IN),
        ("withdrawn opt-out: after", &opt_out_then_withdrawn, use_at(d(25)), IN),
        ("withdrawing one opt-out leaves the other", &two_opt_outs_one_withdrawn, use_for(d(4), P::AcademicResearch, &[R::Company], &[]), {
            out(Why::OptedOut { entry: 2 })
        }),
        ("withdrawing one opt-out: the rest is included", &two_opt_outs_one_withdrawn, use_at(d(4)), IN),
        ("same instant: the later id withdraws", &same_instant, use_at(d(3)), IN),
        // 3. Within and outside the consent in force.
        ("consent: within", &consent_withdrawn, use_for(d(5), P::TreatmentDevelopment, &[R::Academia, R::Hospital], &[]), IN),
        (
            "consent: other purpose",
            &consent_withdrawn,
            use_for(d(5), P::DrugSafety, &[R::Academia], &[]),
            out(Why::OutsideConsent { consent: 1, aspect: Aspect::Purpose }),
        ),
        (
            "consent: other recipient",
            &consent_withdrawn,
            use_for(d(5), P::AcademicResearch, &[R::Academia, R::Company], &[]),
            out(Why::OutsideConsent { consent: 1, aspect: Aspect::Recipient }),
        ),
        (
            "consent: purpose Other is never within",
            &other_purpose,
            use_for(d(2), P::Other, &[R::Academia], &[]),
            out(Why::OutsideConsent { consent: 1, aspect: Aspect::Purpose }),
        ),
        // 4. A withdrawn consent is never retroactive, and refuses everything from then on.
        ("withdrawn consent: the day before", &consent_withdrawn, use_at(d(9)), IN),
        ("withdrawn consent: at withdrawal", &consent_withdrawn, use_at(d(10)), out(Why::ConsentWithdrawn { consent: 1, withdrawal: 2 })),
        (
            "withdrawn consent: any use after",
            &consent_withdrawn,
            use_for(d(30), P::PublicHealthPolicy, &[R::Government], &[]),
            out(Why::ConsentWithdrawn { consent: 1, withdrawal: 2 }),
        ),
        // A new consent after a withdrawal is in force from when it was recorded.
        ("new consent: between", &consent_again, use_for(d(15), P::DrugSafety, &[R::Company], &[]), {
            out(Why::ConsentWithdrawn { consent: 1, withdrawal: 2 })
        }),
        ("new consent: within it", &consent_again, use_for(d(20), P::DrugSafety, &[R::Company], &[]), IN),
        (
            "new consent: the old scope does not come back",
            &consent_again,
            use_at(d(21)),
            out(Why::OutsideConsent { consent: 3, aspect: Aspect::Purpose }),
        ),
        ("new consent: before the withdrawal the old one held", &consent_again, use_at(d(5)), IN),
        // The latest consent replaces earlier ones.
        ("replaced: old scope before", &replaced, use_for(d(3), P::DrugSafety, &[R::Company], &[]), IN),
        (
            "replaced: old scope after",
            &replaced,
            use_for(d(6), P::DrugSafety, &[R::Company], &[]),
            out(Why::OutsideConsent { consent: 2, aspect: Aspect::Purpose }),
        ),
        ("replaced: new scope", &replaced, use_at(d(6)), IN),
        // Withdrawing any consent is a refusal, even a replaced one.
        ("superseded withdrawn: before", &superseded_withdrawn, use_at(d(7)), IN),
        ("superseded withdrawn: after", &superseded_withdrawn, use_at(d(8)), out(Why::ConsentWithdrawn { consent: 1, withdrawal: 3 })),
        // A second withdrawal of the same consent counts for nothing.
        ("withdrawn twice: the second is ignored", &withdrawn_twice, use_at(d(5)), IN),
        // 2 before 3: an opt-out excludes even within a consent.
        ("opt-out beats consent", &opt_out_beats_consent, use_for(d(3), P::DrugSafety, &[R::Academia], &[]), out(Why::OptedOut { entry: 2 })),
        ("opt-out beats consent: other purpose still within", &opt_out_beats_consent, use_at(d(3)), IN),
        // Withdrawals of a notice, of a later entry, of an unknown id do not count.
        ("odd withdrawals", &odd_withdrawals, use_at(d(3)), IN),
        ("odd withdrawals: the later opt-out stands", &odd_withdrawals, use_at(d(6)), out(Why::OptedOut { entry: 4 })),
        // Disease prefixes.
        ("diseases: covered code", &diseases, use_for(d(2), P::AcademicResearch, &[R::Academia], &["E11.9"]), IN),
        ("diseases: without the dot", &diseases, use_for(d(2), P::AcademicResearch, &[R::Academia], &["E119"]), IN),
        ("diseases: lower case", &diseases, use_for(d(2), P::AcademicResearch, &[R::Academia], &["e11.2"]), IN),
        ("diseases: all covered", &diseases, use_for(d(2), P::AcademicResearch, &[R::Academia], &["E11", "I20.0"]), IN),
        (
            "diseases: one not covered",
            &diseases,
            use_for(d(2), P::AcademicResearch, &[R::Academia], &["E11", "I21"]),
            out(Why::OutsideConsent { consent: 1, aspect: Aspect::Disease }),
        ),
        (
            "diseases: a related disease is not covered",
            &diseases,
            use_for(d(2), P::AcademicResearch, &[R::Academia], &["E10"]),
            out(Why::OutsideConsent { consent: 1, aspect: Aspect::Disease }),
        ),
        (
            "diseases: a broader prefix is not covered",
            &diseases,
            use_for(d(2), P::AcademicResearch, &[R::Academia], &["E1"]),
            out(Why::OutsideConsent { consent: 1, aspect: Aspect::Disease }),
        ),
        (
            "diseases: a use without diseases is outside a limited consent",
            &diseases,
            use_at(d(2)),
            out(Why::OutsideConsent { consent: 1, aspect: Aspect::Disease }),
        ),
        ("diseases: an unlimited consent covers any", &consent_withdrawn, use_for(d(2), P::AcademicResearch, &[R::Academia], &["C50"]), IN),
    ];
    for (name, entries, use_, expected) in &cases {
        check(name, entries, use_, *expected);
    }
}

#[test]
fn parent_consent_lapses_at_majority() {
    let until = majority_date(date!(2010 - 05 - 15));
    assert_eq!(until, date!(2028 - 05 - 15));
    let parent = Actor::Parent { until };
    let minor = vec![entry(1, datetime!(2026-04-01 00:00 UTC), parent.clone(), consent(&[P::AcademicResearch], &[R::Academia], &[]))];
    let own = {
        let mut entries = minor.clone();
        entries.push(by_person(2, datetime!(2028-06-01 00:00 UTC), consent(&[P::AcademicResearch], &[R::Academia], &[])));
        entries
    };
    let parent_opt_out = vec![entry(1, datetime!(2026-04-01 00:00 UTC), parent.clone(), opt_out(OptOutScope::All))];
    let guardian = vec![entry(1, datetime!(2026-04-01 00:00 UTC), Actor::Guardian, consent(&[P::AcademicResearch], &[R::Academia], &[]))];
    let lapsed = out(Why::ConsentLapsed { consent: 1 });

    let cases: Vec<(&str, &[Entry], Use, Decision)> = vec![
        ("minor: within", &minor, use_at(datetime!(2027-01-01 00:00 UTC)), IN),
        (
            "minor: outside",
            &minor,
            use_for(datetime!(2027-01-01 00:00 UTC), P::DrugSafety, &[R::Academia], &[]),
            out(Why::OutsideConsent { consent: 1, aspect: Aspect::Purpose }),
        ),
        // The last second of 14 May in Japan, then midnight of 15 May in Japan (15:00 UTC the day before).
        ("minor: last second before majority (JST)", &minor, use_at(datetime!(2028-05-14 14:59:59 UTC)), IN),
        ("minor: majority at midnight JST", &minor, use_at(datetime!(2028-05-14 15:00 UTC)), lapsed),
        ("minor: long after", &minor, use_at(datetime!(2035-01-01 00:00 UTC)), lapsed),
        ("own consent: before it, lapsed", &own, use_at(datetime!(2028-05-20 00:00 UTC)), lapsed),
        ("own consent: in force", &own, use_at(datetime!(2028-06-01 00:00 UTC)), IN),
        ("parent opt-out does not lapse", &parent_opt_out, use_at(datetime!(2040-01-01 00:00 UTC)), out(Why::OptedOut { entry: 1 })),
        ("guardian consent does not lapse", &guardian, use_at(datetime!(2060-01-01 00:00 UTC)), IN),
    ];
    for (name, entries, use_, expected) in &cases {
        check(name, entries, use_, *expected);
    }
}

// ---- state_at --------------------------------------------------------------------------------

#[test]
fn state_for_the_citizen() {
    let until = date!(2028 - 05 - 15);
    let entries = vec![
        entry(1, datetime!(2026-03-02 00:00 UTC), holder(), notice()),
        entry(2, datetime!(2026-04-01 00:00 UTC), Actor::Parent { until }, consent(&[P::AcademicResearch], &[R::Academia], &["E11"])),
        by_person(3, datetime!(2026-05-01 00:00 UTC), opt_out(OptOutScope::Recipient(R::Company))),
        by_person(4, datetime!(2026-05-02 00:00 UTC), opt_out(OptOutScope::All)),
        by_person(5, datetime!(2026-05-03 00:00 UTC), withdraw(4)),
        entry(6, datetime!(2026-06-01 00:00 UTC), holder(), withdraw(2)),
    ];

    let empty = state_at(&entries, datetime!(2026-01-01 00:00 UTC));
    assert_eq!(empty, State { notices: vec![], opt_outs: vec![], consent: ConsentState::NotGiven });

    let given = GivenConsent {
        entry: 2,
        scope: ConsentScope { purposes: vec![P::AcademicResearch], recipients: vec![R::Academia], diseases: vec!["E11".into()] },
        since: datetime!(2026-04-01 00:00 UTC),
        actor: Actor::Parent { until },
    };
    let may = state_at(&entries, datetime!(2026-05-10 00:00 UTC));
    assert_eq!(
        may.notices,
        vec![Notice { entry: 1, holder: "holder-a".into(), delivered_on: date!(2026 - 03 - 01), recorded_at: datetime!(2026-03-02 00:00 UTC) }]
    );
    assert_eq!(
        may.opt_outs,
        vec![ActiveOptOut { entry: 3, scope: OptOutScope::Recipient(R::Company), since: datetime!(2026-05-01 00:00 UTC), actor: Actor::Person }]
    );
    assert_eq!(may.consent, ConsentState::InForce { consent: given.clone(), lapses_on: Some(until) });
    assert_eq!(may.consent.code(), "in_force");

    let june = state_at(&entries, datetime!(2026-06-01 00:00 UTC));
    assert_eq!(
        june.consent,
        ConsentState::Withdrawn { consent: given.clone(), withdrawal: 6, withdrawn_at: datetime!(2026-06-01 00:00 UTC), withdrawn_by: holder() }
    );

    // Without the withdrawal, the parent's consent lapses.
    let later = state_at(&entries[..5], datetime!(2028-05-15 00:00 +09:00));
    assert_eq!(later.consent, ConsentState::Lapsed { consent: given, lapsed_on: until });
    assert_eq!(later.consent.code(), "lapsed");
}

// ---- validate --------------------------------------------------------------------------------

#[test]
fn validate_choices() {
    let now = datetime!(2026-06-01 00:00 UTC);
    let entries = vec![
        entry(1, datetime!(2026-03-02 00:00 UTC), holder(), notice()),
        by_person(2, datetime!(2026-04-01 00:00 UTC), consent(&[P::AcademicResearch], &[R::Academia], &[])),
        by_person(3, datetime!(2026-05-01 00:00 UTC), opt_out(OptOutScope::All)),
        by_person(4, datetime!(2026-05-02 00:00 UTC), withdraw(3)),
        by_person(5, datetime!(2026-07-01 00:00 UTC), opt_out(OptOutScope::All)),
    ];
    let parent = Actor::Parent { until: date!(2026 - 06 - 02) };
    let ok: Result<(), ChoiceError> = Ok(());
    let cases: Vec<(&str, Actor, Choice, OffsetDateTime, Result<(), ChoiceError>)> = vec![
        ("withdraw a consent", Actor::Person, withdraw(2), now, ok.clone()),
        ("withdraw by a holder (paper)", holder(), withdraw(2), now, ok.clone()),
        ("withdraw an unknown id", Actor::Person, withdraw(42), now, Err(ChoiceError::UnknownEntry)),
        ("withdraw a later entry", Actor::Person, withdraw(5), now, Err(ChoiceError::EntryAfterChoice)),
        ("withdraw a notice", Actor::Person, withdraw(1), now, Err(ChoiceError::NotWithdrawable)),
        ("withdraw a withdrawal", Actor::Person, withdraw(4), now, Err(ChoiceError::NotWithdrawable)),
        ("withdraw twice", Actor::Person, withdraw(3), now, Err(ChoiceError::AlreadyWithdrawn)),
        ("opt-out", Actor::Person, opt_out(OptOutScope::Purpose(P::AiDevelopment)), now, ok.clone()),
        ("consent", Actor::Guardian, consent(&[P::DrugSafety], &[R::Company, R::Hospital], &["E11", "e11.9", "I200", "C50X"]), now, ok.clone()),
        ("consent without purpose", Actor::Person, consent(&[], &[R::Company], &[]), now, Err(ChoiceError::EmptyPurposes)),
        ("consent without recipient", Actor::Person, consent(&[P::DrugSafety], &[], &[]), now, Err(ChoiceError::EmptyRecipients)),
        ("consent: a letter only", Actor::Person, consent(&[P::DrugSafety], &[R::Company], &["E11", "E"]), now, {
            Err(ChoiceError::BadDiseaseCode { index: 1 })
        }),
        ("consent: one digit", Actor::Person, consent(&[P::DrugSafety], &[R::Company], &["E1"]), now, Err(ChoiceError::BadDiseaseCode { index: 0 })),
        ("consent: not a code", Actor::Person, consent(&[P::DrugSafety], &[R::Company], &["糖尿病"]), now, {
            Err(ChoiceError::BadDiseaseCode { index: 0 })
        }),
        ("consent: empty code", Actor::Person, consent(&[P::DrugSafety], &[R::Company], &[""]), now, Err(ChoiceError::BadDiseaseCode { index: 0 })),
        (
            "consent: digit first",
            Actor::Person,
            consent(&[P::DrugSafety], &[R::Company], &["11E"]),
            now,
            Err(ChoiceError::BadDiseaseCode { index: 0 }),
        ),
        ("parent before majority", parent.clone(), consent(&[P::DrugSafety], &[R::Company], &[]), now, ok.clone()),
        // 2026-06-01 15:00 UTC is 2026-06-02 00:00 in Japan.
        ("parent at majority (JST)", parent.clone(), opt_out(OptOutScope::All), datetime!(2026-06-01 15:00 UTC), Err(ChoiceError::GuardianEnded)),
        ("parent after majority", parent.clone(), withdraw(2), datetime!(2027-01-01 00:00 UTC), Err(ChoiceError::GuardianEnded)),
        ("notice by a holder", holder(), notice(), now, ok.clone()),
        ("notice by the person", Actor::Person, notice(), now, Err(ChoiceError::NoticeNotFromHolder)),
        ("notice by a guardian", Actor::Guardian, notice(), now, Err(ChoiceError::NoticeNotFromHolder)),
        (
            "notice without holder",
            holder(),
            Choice::NoticeDelivered { holder: " ".into(), delivered_on: date!(2026 - 03 - 01) },
            now,
            Err(ChoiceError::EmptyHolder),
        ),
        ("holder actor without name", Actor::Holder { holder: String::new() }, withdraw(2), now, Err(ChoiceError::EmptyHolder)),
    ];
    for (name, actor, choice, at, expected) in cases {
        assert_eq!(validate(&entries, &actor, &choice, at), expected, "case `{name}`");
    }
}

#[test]
fn error_messages_are_fixed() {
    let error =
        validate(&[], &Actor::Person, &consent(&[P::DrugSafety], &[R::Company], &["<script>糖尿病"]), datetime!(2026-01-01 00:00 UTC)).unwrap_err();
    let text = error.to_string();
    assert!(!text.contains("script") && !text.contains('糖'), "{text}");
    assert_eq!(error.code(), "bad_disease_code");
}

// ---- majority_date ---------------------------------------------------------------------------

#[test]
fn majority_dates() {
    for (birth, majority) in [
        (date!(2010 - 05 - 15), date!(2028 - 05 - 15)),
        (date!(2008 - 02 - 29), date!(2026 - 03 - 01)),
        (date!(2008 - 02 - 28), date!(2026 - 02 - 28)),
        (date!(2008 - 03 - 01), date!(2026 - 03 - 01)),
        (date!(1999 - 12 - 31), date!(2017 - 12 - 31)),
        (date!(2000 - 01 - 01), date!(2018 - 01 - 01)),
    ] {
        assert_eq!(majority_date(birth), majority, "born {birth}");
    }
    assert_eq!(majority_date(Date::MAX), Date::MAX);
}

#[test]
fn japan_dates() {
    assert_eq!(japan_date(datetime!(2026-04-30 14:59:59 UTC)), date!(2026 - 04 - 30));
    assert_eq!(japan_date(datetime!(2026-04-30 15:00 UTC)), date!(2026 - 05 - 01));
    assert_eq!(japan_date(datetime!(2026-05-01 00:00 +09:00)), date!(2026 - 05 - 01));
}

// ---- serde and codes -------------------------------------------------------------------------

#[test]
fn entries_as_json() {
    let entries = vec![
        entry(1, datetime!(2026-03-02 00:00 UTC), holder(), notice()),
        entry(
            2,
            datetime!(2026-04-01 09:30 +09:00),
            Actor::Parent { until: date!(2028 - 05 - 15) },
            consent(&[P::AcademicResearch], &[R::Academia], &["E11"]),
        ),
        by_person(3, datetime!(2026-05-01 00:00 UTC), opt_out(OptOutScope::All)),
        entry(4, datetime!(2026-05-02 00:00 UTC), Actor::Guardian, opt_out(OptOutScope::Purpose(P::DrugSafety))),
        by_person(5, datetime!(2026-05-03 00:00 UTC), opt_out(OptOutScope::Recipient(R::Company))),
        by_person(6, datetime!(2026-05-04 00:00 UTC), withdraw(3)),
    ];
    let json = serde_json::to_string(&entries).unwrap();
    assert_eq!(
        json,
        concat!(
            r#"[{"id":1,"recorded_at":"2026-03-02T00:00:00Z","actor":{"type":"holder","holder":"holder-a"},"#,
            r#""choice":{"type":"notice_delivered","holder":"holder-a","delivered_on":"2026-03-01"}},"#,
            r#"{"id":2,"recorded_at":"2026-04-01T09:30:00+09:00","actor":{"type":"parent","until":"2028-05-15"},"#,
            r#""choice":{"type":"consent","scope":{"purposes":["academic_research"],"recipients":["academia"],"diseases":["E11"]}}},"#,
            r#"{"id":3,"recorded_at":"2026-05-01T00:00:00Z","actor":{"type":"person"},"choice":{"type":"opt_out","scope":"all"}},"#,
            r#"{"id":4,"recorded_at":"2026-05-02T00:00:00Z","actor":{"type":"guardian"},"#,
            r#""choice":{"type":"opt_out","scope":{"purpose":"drug_safety"}}},"#,
            r#"{"id":5,"recorded_at":"2026-05-03T00:00:00Z","actor":{"type":"person"},"#,
            r#""choice":{"type":"opt_out","scope":{"recipient":"company"}}},"#,
            r#"{"id":6,"recorded_at":"2026-05-04T00:00:00Z","actor":{"type":"person"},"choice":{"type":"withdraw","entry":3}}]"#
        )
    );
    let back: Vec<Entry> = serde_json::from_str(&json).unwrap();
    assert_eq!(back, entries);

    // Codes are the serde tags.
    for e in &entries {
        let value = serde_json::to_value(e).unwrap();
        assert_eq!(value["choice"]["type"], e.choice.code());
        assert_eq!(value["actor"]["type"], e.actor.code());
        if let Choice::OptOut { scope } = &e.choice {
            let tag = match &value["choice"]["scope"] {
                serde_json::Value::String(s) => s.clone(),
                serde_json::Value::Object(map) => map.keys().next().unwrap().clone(),
                other => panic!("unexpected {other}"),
            };
            assert_eq!(tag, scope.code());
        }
    }

    // Decisions and states serialize with their codes too.
    let decision = out(Why::OutsideConsent { consent: 2, aspect: Aspect::Disease });
    assert_eq!(serde_json::to_string(&decision).unwrap(), r#"{"excluded":{"reason":"outside_consent","consent":2,"aspect":"disease"}}"#);
    assert_eq!(serde_json::to_string(&IN).unwrap(), r#""included""#);
    let state = state_at(&entries, datetime!(2026-06-01 00:00 UTC));
    let value = serde_json::to_value(&state).unwrap();
    assert_eq!(value["consent"]["status"], state.consent.code());
    assert_eq!(value["consent"]["lapses_on"], "2028-05-15");
    assert_eq!(serde_json::from_value::<State>(value).unwrap(), state);
    for reason in [
        Why::OptedOut { entry: 1 },
        Why::ConsentWithdrawn { consent: 1, withdrawal: 2 },
        Why::ConsentLapsed { consent: 1 },
        Why::OutsideConsent { consent: 1, aspect: Aspect::Purpose },
    ] {
        assert_eq!(serde_json::to_value(reason).unwrap()["reason"], reason.code());
    }
}

#[test]
fn opt_out_scopes_parse_from_their_written_form() {
    let check = |text: &str, expected: Option<OptOutScope>| assert_eq!(OptOutScope::parse(text), expected, "{text}");
    check("all", Some(OptOutScope::All));
    check(" all ", Some(OptOutScope::All));
    check("purpose:drug_and_device_development", Some(OptOutScope::Purpose(PurposeCategory::DrugAndDeviceDevelopment)));
    check("recipient:company", Some(OptOutScope::Recipient(RecipientKind::Company)));
    check("purpose:company", None);
    check("recipient:", None);
    check("everything", None);
}
