//! Properties of the registry's decisions over arbitrary (not necessarily valid) entry lists.

use niji_consent::{
    decide, majority_date, state_at, Actor, Choice, ConsentScope, ConsentState, Decision, Entry, ExclusionReason, OptOutScope, PurposeCategory,
    RecipientKind, Use,
};
use proptest::prelude::*;
use time::macros::{date, datetime};
use time::{Date, Duration, Month, OffsetDateTime};

const BASE: OffsetDateTime = datetime!(2026-01-01 00:00 UTC);
/// Entries and uses fall within this many minutes after `BASE` (about 120 days).
const SPAN: i64 = 120 * 24 * 60;
const DISEASES: [&str; 6] = ["E11", "E11.9", "I20", "I21", "C50", "J45"];

fn minutes(m: i64) -> OffsetDateTime {
    BASE + Duration::minutes(m)
}

fn purpose() -> impl Strategy<Value = PurposeCategory> {
    prop::sample::select(PurposeCategory::ALL.to_vec())
}

fn recipient() -> impl Strategy<Value = RecipientKind> {
    prop::sample::select(RecipientKind::ALL.to_vec())
}

fn diseases() -> impl Strategy<Value = Vec<String>> {
    prop::collection::vec(prop::sample::select(DISEASES.to_vec()).prop_map(String::from), 0..3)
}

fn actor() -> impl Strategy<Value = Actor> {
    prop_oneof![
        Just(Actor::Person),
        (0i64..200).prop_map(|days| Actor::Parent { until: date!(2026 - 01 - 01) + Duration::days(days) }),
        Just(Actor::Guardian),
        Just(Actor::Holder { holder: "h".into() }),
    ]
}

fn opt_out_scope() -> impl Strategy<Value = OptOutScope> {
    prop_oneof![Just(OptOutScope::All), purpose().prop_map(OptOutScope::Purpose), recipient().prop_map(OptOutScope::Recipient)]
}

/// A choice; a withdrawal names an id in `1..=max_id`.
fn choice(max_id: u64) -> impl Strategy<Value = Choice> {
    prop_oneof![
        1 => Just(Choice::NoticeDelivered { holder: "h".into(), delivered_on: date!(2026 - 01 - 01) }),
        3 => opt_out_scope().prop_map(|scope| Choice::OptOut { scope }),
        3 => (prop::collection::vec(purpose(), 1..4), prop::collection::vec(recipient(), 1..4), diseases())
            .prop_map(|(purposes, recipients, diseases)| Choice::Consent { scope: ConsentScope { purposes, recipients, diseases } }),
        3 => (1..=max_id.max(1)).prop_map(|entry| Choice::Withdraw { entry }),
    ]
}

/// Up to 12 entries with ids 1..=n (in that order, times arbitrary).
fn entries() -> impl Strategy<Value = Vec<Entry>> {
    prop::collection::vec((0..SPAN, actor(), choice(12)), 0..12).prop_map(|raw| {
        raw.into_iter().enumerate().map(|(i, (at, actor, choice))| Entry { id: i as u64 + 1, recorded_at: minutes(at), actor, choice }).collect()
    })
}

fn a_use(at: impl Strategy<Value = i64>) -> impl Strategy<Value = Use> {
    (purpose(), prop::collection::vec(recipient(), 0..3), diseases(), at).prop_map(|(purpose, recipients, diseases, at)| Use {
        purpose,
        recipients,
        diseases,
        at: minutes(at),
    })
}

/// An id no entry has and no withdrawal names (so a new opt-out stays active).
fn next_id(entries: &[Entry]) -> u64 {
    let named = entries.iter().map(|e| match e.choice {
        Choice::Withdraw { entry } => entry.max(e.id),
        _ => e.id,
    });
    named.max().unwrap_or(0) + 1
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    /// (a) An entry recorded at t never changes the decision for a use before t.
    #[test]
    fn an_entry_never_changes_earlier_decisions(
        entries in entries(),
        t in 1..SPAN,
        actor in actor(),
        choice in choice(13),
        uses in prop::collection::vec(a_use(0..SPAN), 1..8),
    ) {
        let mut after = entries.clone();
        after.push(Entry { id: next_id(&entries), recorded_at: minutes(t), actor, choice });
        for use_ in uses.iter().filter(|u| u.at < minutes(t)) {
            prop_assert_eq!(decide(&after, use_), decide(&entries, use_));
        }
    }

    /// (b) An active opt-out of everything recorded at t excludes every use at or after t.
    #[test]
    fn an_active_opt_out_all_excludes_every_later_use(
        entries in entries(),
        t in 0..SPAN,
        actor in actor(),
        use_ in a_use(0..SPAN),
    ) {
        let mut entries = entries;
        entries.push(Entry { id: next_id(&entries), recorded_at: minutes(t), actor, choice: Choice::OptOut { scope: OptOutScope::All } });
        let use_ = Use { at: use_.at.max(minutes(t)), ..use_ };
        let decision = decide(&entries, &use_);
        prop_assert!(matches!(decision, Decision::Excluded(ExclusionReason::OptedOut { .. })), "{:?}", decision);
    }

    /// (c) Adding an opt-out never turns an exclusion into an inclusion.
    #[test]
    fn an_opt_out_never_includes(
        entries in entries(),
        t in 0..SPAN,
        actor in actor(),
        scope in opt_out_scope(),
        uses in prop::collection::vec(a_use(0..SPAN), 1..8),
    ) {
        let mut after = entries.clone();
        after.push(Entry { id: next_id(&entries), recorded_at: minutes(t), actor, choice: Choice::OptOut { scope } });
        for use_ in &uses {
            if !decide(&entries, use_).is_included() {
                prop_assert!(!decide(&after, use_).is_included());
            }
        }
    }

    /// The order of the slice does not matter.
    #[test]
    fn order_of_entries_does_not_matter(entries in entries(), seed in any::<u64>(), use_ in a_use(0..SPAN)) {
        let mut shuffled = entries.clone();
        // A deterministic permutation from the seed.
        let n = shuffled.len();
        for i in (1..n).rev() {
            let j = (seed.rotate_left(i as u32) % (i as u64 + 1)) as usize;
            shuffled.swap(i, j);
        }
        prop_assert_eq!(decide(&shuffled, &use_), decide(&entries, &use_));
        prop_assert_eq!(state_at(&shuffled, use_.at), state_at(&entries, use_.at));
    }

    /// What the citizen sees agrees with the decisions.
    #[test]
    fn state_agrees_with_decide(entries in entries(), use_ in a_use(0..SPAN)) {
        let state = state_at(&entries, use_.at);
        let decision = decide(&entries, &use_);
        let refuses_all = state.opt_outs.iter().any(|o| o.scope == OptOutScope::All)
            || matches!(state.consent, ConsentState::Withdrawn { .. } | ConsentState::Lapsed { .. });
        if refuses_all {
            prop_assert!(!decision.is_included());
        }
        if state.opt_outs.iter().any(|o| o.scope.refuses(&use_)) {
            prop_assert!(matches!(decision, Decision::Excluded(ExclusionReason::OptedOut { .. })), "{:?}", decision);
        } else {
            match &state.consent {
                ConsentState::NotGiven => prop_assert_eq!(decision, Decision::Included),
                ConsentState::InForce { consent, .. } => prop_assert_eq!(decision.is_included(), consent.scope.mismatch(&use_).is_none()),
                _ => {}
            }
        }
    }

    /// Entries survive a JSON round trip unchanged.
    #[test]
    fn json_round_trip(entries in entries()) {
        let json = serde_json::to_string(&entries).unwrap();
        let back: Vec<Entry> = serde_json::from_str(&json).unwrap();
        prop_assert_eq!(back, entries);
    }

    /// (d) Majority is the same day 18 years later, or 1 March for a birthday on 29 February.
    #[test]
    fn majority_is_eighteen_years_later(year in 1900i32..2200, ordinal in 1u16..=366) {
        let Ok(birth) = Date::from_ordinal_date(year, ordinal) else { return Ok(()) };
        let majority = majority_date(birth);
        prop_assert_eq!(majority.year(), year + 18);
        if (birth.month(), birth.day()) == (Month::February, 29) {
            prop_assert_eq!((majority.month(), majority.day()), (Month::March, 1));
        } else {
            prop_assert_eq!((majority.month(), majority.day()), (birth.month(), birth.day()));
        }
        // Under 18 the day before, 18 on the day.
        let age = |on: Date| {
            let years = on.year() - birth.year();
            if (on.month(), on.day()) < (birth.month(), birth.day()) { years - 1 } else { years }
        };
        prop_assert_eq!(age(majority), 18);
        prop_assert_eq!(age(majority.previous_day().unwrap()), 17);
    }
}
