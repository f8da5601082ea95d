//! The two largest single-person contributions behind every sum and mean cell, for the dominance
//! and p-percent rules: equal to a computation by hand from the rows, whatever the data; given for
//! columns computed from a sum or mean; unknown (`None`) when the exact persons count had to run.

mod common;

use std::collections::{BTreeMap, HashSet};

use common::*;
use niji_sandbox::{Contributions, Limits, Scalar, Workspace};
use proptest::prelude::*;

fn open(lines: &[(u8, u8, i64)], excluded: &[u8]) -> Workspace {
    open_under(lines, excluded, "acro")
}

/// A workspace whose permit has the output rules `preset`.
fn open_under(lines: &[(u8, u8, i64)], excluded: &[u8], preset: &str) -> Workspace {
    let persons: Vec<u8> = lines.iter().map(|l| l.0).collect();
    let codes: Vec<String> = lines.iter().map(|l| format!("C{}", l.1)).collect();
    let codes: Vec<&str> = codes.iter().map(String::as_str).collect();
    let points: Vec<i64> = lines.iter().map(|l| l.2).collect();
    let kinds: Vec<&str> = lines.iter().map(|_| "drug").collect();
    let claim_lines = table(NDB, "claim_lines", &persons, &[("code", strings(&codes)), ("points", ints(&points)), ("kind", strings(&kinds))]);
    let excluded: HashSet<[u8; 32]> = excluded.iter().map(|p| key(*p)).collect();
    let mut policy = policy(false);
    policy.output_preset = preset.into();
    // Patients 1 to 3 only: lines of others find no patient in an outer join.
    let patients = table(NDB, "patients", &[1, 2, 3], &[("sex", strings(&["male", "female", "male"]))]);
    Workspace::open(vec![claim_lines, patients], &policy, [5; 32], &excluded, Limits::default()).expect("open")
}

/// By hand: per code, each person's sum of points, then the two largest and the total.
fn by_hand(lines: &[(u8, u8, i64)], excluded: &[u8]) -> BTreeMap<String, Contributions> {
    let mut sums: BTreeMap<String, BTreeMap<u8, f64>> = BTreeMap::new();
    for &(person, code, points) in lines.iter().filter(|l| !excluded.contains(&l.0)) {
        *sums.entry(format!("C{code}")).or_default().entry(person).or_default() += points as f64;
    }
    sums.into_iter()
        .map(|(code, persons)| {
            let mut v: Vec<f64> = persons.values().copied().collect();
            v.sort_by(|a, b| b.partial_cmp(a).unwrap());
            let total = v.iter().sum();
            (code, Contributions { largest: v[0], second: v.get(1).copied().unwrap_or(0.0), total })
        })
        .collect()
}

fn code(v: &Scalar) -> String {
    match v {
        Scalar::Utf8(Some(s)) | Scalar::Utf8View(Some(s)) => s.clone(),
        other => other.to_string(),
    }
}

fn run(ws: &Workspace, sql: &str) -> niji_sandbox::AggregateResult {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    runtime.block_on(ws.run(sql)).unwrap_or_else(|e| panic!("{sql}: {e}"))
}

fn check(lines: &[(u8, u8, i64)], excluded: &[u8]) {
    let ws = open(lines, excluded);
    let want = by_hand(lines, excluded);
    for sql in [
        "SELECT code, sum(points) AS s, count(*) AS n FROM claim_lines GROUP BY code",
        // A mean: its contributions are those of the sum behind it; a computed column keeps them.
        "SELECT code, count(*) AS n, round(avg(points) * 2, 1) AS a FROM claim_lines GROUP BY code ORDER BY code",
    ] {
        let r = run(&ws, sql);
        let magnitude_column = r.magnitude.iter().position(|m| *m).expect("a magnitude column");
        assert_eq!(r.magnitude.iter().filter(|m| **m).count(), 1, "{sql}: {:?}", r.magnitude);
        assert!(!r.magnitude[0], "the code is no magnitude");
        let got: BTreeMap<String, Contributions> =
            r.rows.iter().zip(&r.contributions).map(|(row, c)| (code(&row[0]), c[magnitude_column].expect("computed in the fast mode"))).collect();
        assert_eq!(got, want, "{sql}");
        assert!(r.contributions.iter().all(|c| c[0].is_none()));
    }
}

#[test]
fn one_person_who_dominates_a_cell_shows_in_it() {
    // C1: person 1 gives 900 + 50, persons 2 and 3 give 10 each; C2: three persons alike.
    let lines = [(1, 1, 900), (2, 1, 10), (1, 1, 50), (3, 1, 10), (4, 2, 30), (5, 2, 30), (6, 2, 30)];
    check(&lines, &[]);
    check(&lines, &[1]);
    let ws = open(&lines, &[]);
    let r = run(&ws, "SELECT sum(points) AS s FROM claim_lines WHERE code = 'C1'");
    assert_eq!(r.contributions[0][0], Some(Contributions { largest: 950.0, second: 10.0, total: 970.0 }));
}

#[test]
fn a_column_computed_from_two_sums_is_held_to_the_stricter() {
    // C1: ten persons give 10 each and person 1 also 500. The first sum's largest is person 1's
    // 510 of 600; the second (points over 100) is person 1's 500 alone.
    let mut lines: Vec<(u8, u8, i64)> = (1..=10).map(|p| (p, 1, 10)).collect();
    lines.push((1, 1, 500));
    let ws = open(&lines, &[]);
    let r = run(&ws, "SELECT code, sum(points) + sum(CASE WHEN points > 100 THEN points ELSE 0 END) AS mixed FROM claim_lines GROUP BY code");
    assert_eq!(r.magnitude, [false, true]);
    let c = r.contributions[0][1].expect("both sums computed");
    // Largest of either (person 1: 510 in the first sum), second of either (10), smaller total (500).
    assert_eq!(c, Contributions { largest: 510.0, second: 10.0, total: 500.0 });
}

#[test]
fn every_value_shown_is_a_magnitude() {
    let lines: Vec<(u8, u8, i64)> = (1..=12).map(|p| (p, 1 + p % 2, 10 * i64::from(p))).collect();
    let ws = open(&lines, &[]);
    // Percentiles, medians, deviations show values too; their contributions are not computed.
    let r = run(
        &ws,
        "SELECT code, approx_percentile_cont(points, 0.75) AS hi, median(points) AS mid, stddev(points) AS d, count(*) AS n FROM claim_lines GROUP BY code",
    );
    assert_eq!(r.magnitude, [false, true, true, true, false]);
    assert!(r.contributions.iter().all(|c| c.iter().all(Option::is_none)));
    // A sum shown as text is still one.
    let r = run(&ws, "SELECT code, CAST(sum(points) AS VARCHAR) AS s FROM claim_lines GROUP BY code");
    assert_eq!(r.magnitude, [false, true]);
    assert!(r.contributions.iter().all(|c| c[1].is_some()));
    // ROLLUP: the sum column after the grouping columns and the grouping id.
    let r = run(&ws, "SELECT code, sum(points) AS s FROM claim_lines GROUP BY ROLLUP(code)");
    assert_eq!(r.magnitude, [false, true]);
}

#[test]
fn rows_without_a_person_leave_the_contributions_unknown() {
    // Lines of persons 4 to 9 have no patient: in a right join their rows have no patient id.
    let lines: Vec<(u8, u8, i64)> = (1..=9).map(|p| (p, 1, 10)).collect();
    let ws = open(&lines, &[]);
    let r = run(&ws, "SELECT sum(c.points) AS s FROM patients p RIGHT JOIN claim_lines c ON p.person_id = c.person_id");
    assert_eq!(r.magnitude, [true]);
    assert_eq!(r.contributions[0][0], None);
}

#[test]
fn rules_without_dominance_get_no_magnitudes() {
    // The NDB and OpenSAFELY rules do not look at contributions: sums stay plain measures (under
    // OpenSAFELY a sum of a 0/1 flag is a count, and is rounded as one).
    let lines = [(1, 1, 900), (2, 1, 10)];
    // An unknown name is read as NDB, as the output check reads it.
    for preset in ["ndb", "standard", "opensafely", "no-such-preset"] {
        let r = run(&open_under(&lines, &[], preset), "SELECT code, sum(points) AS s FROM claim_lines GROUP BY code");
        assert_eq!(r.magnitude, [false, false], "{preset}");
        assert!(r.contributions.iter().all(|c| c.iter().all(Option::is_none)));
    }
}

#[test]
fn contributions_are_unknown_when_the_exact_count_runs() {
    let lines: Vec<(u8, u8, i64)> = (0..200u32).map(|i| ((i * 7 % 30) as u8, (i % 3) as u8, i as i64)).collect();
    let ws = open(&lines, &[]);
    // Grouped by person below: the plan breaks the persons' order.
    let r =
        run(&ws, "SELECT n, sum(s) AS total FROM (SELECT person_id, count(*) AS n, sum(points) AS s FROM claim_lines GROUP BY person_id) GROUP BY n");
    assert_eq!(r.magnitude, [false, true]);
    assert!(r.contributions.iter().all(|c| c.iter().all(Option::is_none)));
    // A union with itself: the fast count gives way after a try; nothing half-computed is kept.
    let r = run(&ws, "SELECT code, sum(points) AS s FROM (SELECT person_id, code, points FROM claim_lines UNION ALL SELECT person_id, code, points FROM claim_lines) GROUP BY code");
    assert_eq!(ws.persons_recounts(), 1);
    assert!(r.contributions.iter().all(|c| c.iter().all(Option::is_none)));
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    #[test]
    fn equal_the_persons_sums_by_hand(
        lines in prop::collection::vec((0u8..40, 0u8..5, 0i64..1000), 1..300),
        excluded in prop::collection::vec(0u8..40, 0..4),
    ) {
        let kept = lines.iter().any(|l| !excluded.contains(&l.0));
        prop_assume!(kept);
        check(&lines, &excluded);
    }
}
