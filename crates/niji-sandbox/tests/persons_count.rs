//! The persons count of every output row equals `count(DISTINCT person_id)` of the same rows,
//! whatever the data and the query's shape: the fast count by ascending ids when the order holds, the
//! exact count when a join, a nested aggregate or a repartition breaks it (see `src/persons.rs`).
//! And a cell of a conditional aggregate (`CASE`, `FILTER`, nulls, zeros in a sum) counts only the
//! persons whose rows give it a value: `count(DISTINCT person_id)` of the rows meeting the condition.

mod common;

use std::collections::{BTreeMap, HashSet};

use common::*;
use niji_sandbox::{Limits, Scalar, Workspace};
use proptest::prelude::*;

/// Query shapes as `(with persons, reference)`: the reference computes `count(DISTINCT person_id)`
/// of the same rows as a value. `{}` is replaced by a code filter.
const SHAPES: &[(&str, &str)] = &[
    (
        "SELECT code, count(*) AS n FROM claim_lines WHERE {} GROUP BY code",
        "SELECT code, count(DISTINCT person_id) AS p FROM claim_lines WHERE {} GROUP BY code",
    ),
    (
        "SELECT count(*) AS n FROM claim_lines WHERE {}",
        "SELECT 'all' AS code, count(DISTINCT person_id) AS p FROM claim_lines WHERE {}",
    ),
    (
        "SELECT kind AS code, sum(points) AS s FROM claim_lines WHERE {} GROUP BY kind",
        "SELECT kind AS code, count(DISTINCT person_id) AS p FROM claim_lines WHERE {} GROUP BY kind",
    ),
    (
        "SELECT c.code, p.sex, count(*) AS n FROM claim_lines c JOIN patients p ON c.person_id = p.person_id WHERE {} GROUP BY c.code, p.sex",
        "SELECT c.code || '/' || p.sex AS code, count(DISTINCT c.person_id) AS p FROM claim_lines c JOIN patients p ON c.person_id = p.person_id WHERE {} GROUP BY c.code, p.sex",
    ),
    (
        "SELECT code, count(*) AS n FROM claim_lines WHERE {} AND person_id IN (SELECT person_id FROM patients WHERE sex = 'female') GROUP BY code",
        "SELECT code, count(DISTINCT person_id) AS p FROM claim_lines WHERE {} AND person_id IN (SELECT person_id FROM patients WHERE sex = 'female') GROUP BY code",
    ),
    (
        "SELECT n, count(*) AS persons FROM (SELECT person_id, count(*) AS n FROM claim_lines WHERE {} GROUP BY person_id) GROUP BY n",
        "SELECT CAST(n AS VARCHAR) AS code, count(DISTINCT person_id) AS p FROM (SELECT person_id, count(*) AS n FROM claim_lines WHERE {} GROUP BY person_id) GROUP BY n",
    ),
    (
        "SELECT code, count(*) AS n FROM claim_lines WHERE {} GROUP BY code HAVING count(*) > 1 ORDER BY code",
        "SELECT code, count(DISTINCT person_id) AS p FROM claim_lines WHERE {} GROUP BY code HAVING count(*) > 1 ORDER BY code",
    ),
];

fn text(v: &Scalar) -> String {
    match v {
        Scalar::Utf8(Some(s)) | Scalar::Utf8View(Some(s)) | Scalar::LargeUtf8(Some(s)) => s.clone(),
        other => other.to_string(),
    }
}

fn int(v: &Scalar) -> u64 {
    match v {
        Scalar::Int64(Some(n)) => *n as u64,
        other => panic!("not a count: {other:?}"),
    }
}

fn open(lines: &[(u8, u8, i64)], patients_of: &[(u8, bool)], excluded: &[u8]) -> Workspace {
    let persons: Vec<u8> = lines.iter().map(|l| l.0).collect();
    let codes: Vec<String> = lines.iter().map(|l| format!("C{}", l.1)).collect();
    let codes: Vec<&str> = codes.iter().map(String::as_str).collect();
    let points: Vec<i64> = lines.iter().map(|l| l.2).collect();
    let kinds: Vec<&str> = lines.iter().map(|l| if l.2 % 2 == 0 { "drug" } else { "procedure" }).collect();
    let claim_lines = table(NDB, "claim_lines", &persons, &[("code", strings(&codes)), ("points", ints(&points)), ("kind", strings(&kinds))]);
    let ids: Vec<u8> = patients_of.iter().map(|p| p.0).collect();
    let sexes: Vec<&str> = patients_of.iter().map(|p| if p.1 { "female" } else { "male" }).collect();
    let patients = table(NDB, "patients", &ids, &[("sex", strings(&sexes))]);
    let excluded: HashSet<[u8; 32]> = excluded.iter().map(|p| key(*p)).collect();
    Workspace::open(vec![claim_lines, patients], &policy(false), [3; 32], &excluded, Limits::default()).expect("open")
}

/// Output rows keyed by their first column (and the second, for the join's two keys).
async fn with_persons(ws: &Workspace, sql: &str) -> BTreeMap<String, u64> {
    let r = ws.run(sql).await.unwrap_or_else(|e| panic!("{sql}: {e}"));
    r.rows
        .iter()
        .zip(&r.persons)
        .map(|(row, p)| {
            let key = if sql.contains("p.sex, count") { format!("{}/{}", text(&row[0]), text(&row[1])) } else { text(&row[0]) };
            let key = if sql.starts_with("SELECT count(*)") { "all".to_owned() } else { key };
            (key, *p)
        })
        .collect()
}

async fn reference(ws: &Workspace, sql: &str) -> BTreeMap<String, u64> {
    let r = ws.run(sql).await.unwrap_or_else(|e| panic!("{sql}: {e}"));
    r.rows.iter().map(|row| (text(&row[0]), int(&row[1]))).collect()
}

fn check(lines: &[(u8, u8, i64)], patients_of: &[(u8, bool)], excluded: &[u8], filter: &str) -> Workspace {
    let ws = open(lines, patients_of, excluded);
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    runtime.block_on(async {
        for (counted, exact) in SHAPES {
            let counted = counted.replace("{}", filter);
            let exact = exact.replace("{}", filter);
            let got = with_persons(&ws, &counted).await;
            let want = reference(&ws, &exact).await;
            // Rows with no persons (an aggregate over no rows) count 0.
            let want: BTreeMap<String, u64> = if got.len() == 1 && want.is_empty() { got.keys().map(|k| (k.clone(), 0)).collect() } else { want };
            assert_eq!(got, want, "{counted}");
        }
    });
    ws
}

#[test]
fn by_hand() {
    // Person 1: C1 twice, C2; person 2: C1; person 3: C2, C3; person 9 only in patients.
    let lines = [(1, 1, 10), (1, 1, 20), (2, 1, 30), (1, 2, 40), (3, 2, 50), (3, 3, 60)];
    let patients_of = [(1, true), (2, false), (3, true), (9, false)];
    check(&lines, &patients_of, &[], "true");
    check(&lines, &patients_of, &[2], "code <> 'C3'");
    check(&lines, &patients_of, &[], "false");
}

#[test]
fn the_fast_count_serves_scans_and_cohort_joins_without_a_recount() {
    let lines: Vec<(u8, u8, i64)> = (0..400u32).map(|i| ((i * 7 % 50) as u8, (i % 5) as u8, i as i64)).collect();
    let ws = open(&lines, &[(1, true)], &[]);
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    runtime.block_on(async {
        for sql in ["SELECT code, count(*) AS n FROM claim_lines GROUP BY code", "SELECT count(*) AS n FROM claim_lines WHERE points > 10"] {
            ws.run(sql).await.unwrap();
        }
        assert_eq!(ws.persons_recounts(), 0, "a scan and a filter keep the order");
        // Grouped by person first: the exact count is chosen from the plan, without a failed try.
        ws.run("SELECT n, count(*) AS persons FROM (SELECT person_id, count(*) AS n FROM claim_lines GROUP BY person_id) GROUP BY n").await.unwrap();
        assert_eq!(ws.persons_recounts(), 0);
        // A cohort join keeps the order (the cohort is the hash table, the lines stream through).
        ws.run("SELECT code, count(*) AS n FROM claim_lines WHERE person_id IN (SELECT person_id FROM patients WHERE sex = 'female') GROUP BY code").await.unwrap();
        assert_eq!(ws.persons_recounts(), 0);
        // A union puts the same persons in two partitions: the partial states' id ranges overlap,
        // the fast count gives way, and the exact one counts each person once.
        let union = "SELECT code, count(*) AS n FROM (SELECT person_id, code FROM claim_lines UNION ALL SELECT person_id, code FROM claim_lines) GROUP BY code";
        let both = ws.run(union).await.unwrap();
        let once = ws.run("SELECT code, count(*) AS n FROM claim_lines GROUP BY code").await.unwrap();
        assert_eq!(ws.persons_recounts(), 1);
        let by_code = |r: &niji_sandbox::AggregateResult| -> BTreeMap<String, u64> { r.rows.iter().zip(&r.persons).map(|(row, p)| (text(&row[0]), *p)).collect() };
        assert_eq!(by_code(&both), by_code(&once));
    });
}

/// How a condition bears on a cell (as `check::Bearing`): the persons giving a value (none
/// makes a zero), or a part of the rows (counted unless empty).
#[derive(Clone, Copy)]
enum Bears {
    Value,
    Part,
}
use Bears::{Part, Value};

/// Conditional aggregates: column 1 of the output is the aggregate whose cells' persons are
/// checked, against `count(DISTINCT person_id)` of the rows meeting each listed condition
/// (`{}` is replaced by a code filter; `FROM` is `claim_lines` unless the shape says `rows:`).
/// A cell counts the fewest of its row's persons, its value conditions' and its non-empty
/// parts'.
const CONDITIONAL: &[(&str, &[(&str, Bears)])] = &[
    (
        "SELECT code, sum(CASE WHEN points < 30 THEN points END) AS s FROM claim_lines WHERE {} GROUP BY code",
        &[("points < 30 AND points <> 0", Value), ("points < 30", Part), ("points >= 30", Part)],
    ),
    (
        // A filler in the ELSE branch no longer makes every row one that gives the sum a value.
        "SELECT code, sum(CASE WHEN points < 30 THEN points ELSE 1000 END) AS s FROM claim_lines WHERE {} GROUP BY code",
        &[("((points < 30 AND points <> 0) OR points >= 30)", Value), ("points < 30", Part), ("points >= 30", Part), ("points < 30 AND points <> 0", Part)],
    ),
    (
        // A negative zero is no value either.
        "SELECT code, sum(CASE WHEN points < 30 THEN points * 1.5 ELSE -0.0 END) AS s FROM claim_lines WHERE {} GROUP BY code",
        &[("points < 30 AND points <> 0", Value), ("points < 30", Part), ("points >= 30", Part)],
    ),
    (
        "SELECT code, avg(points) FILTER (WHERE kind = 'drug') AS m FROM claim_lines WHERE {} GROUP BY code",
        &[("kind = 'drug' AND points <> 0", Value), ("kind <> 'drug'", Part), ("points <> 0", Part)],
    ),
    (
        "SELECT code, count(CASE WHEN kind = 'drug' THEN 1 END) AS n FROM claim_lines WHERE {} GROUP BY code",
        &[("kind = 'drug'", Value), ("kind = 'drug'", Part), ("kind <> 'drug'", Part)],
    ),
    (
        // The complement of a FILTER: count(*) minus it is the other rows' count.
        "SELECT code, count(*) - count(*) FILTER (WHERE points % 3 <> 0) AS d FROM claim_lines WHERE {} GROUP BY code",
        &[("points % 3 <> 0", Value), ("points % 3 = 0", Part)],
    ),
    (
        // A boolean as a number: either side.
        "SELECT code, sum(CAST(points > 70 AS INT)) AS n FROM claim_lines WHERE {} GROUP BY code",
        &[("points > 70", Value), ("points > 70", Part), ("points <= 70", Part)],
    ),
    (
        // An offset hides zeros from the sum's own check, not from the column's.
        "SELECT code, sum(points + 1) - count(*) AS s FROM claim_lines WHERE {} GROUP BY code",
        &[("points <> 0", Part)],
    ),
    (
        // Grouped by person first: counted exactly (`count(DISTINCT)`), not in order.
        "SELECT kind AS code, sum(CASE WHEN n > 1 THEN n END) AS s FROM (SELECT person_id, kind, count(*) AS n FROM claim_lines WHERE {} GROUP BY person_id, kind) GROUP BY kind",
        &[("rows: n > 1", Value), ("rows: n > 1", Part), ("rows: n <= 1", Part)],
    ),
];

/// Every [`CONDITIONAL`] shape: the aggregate's cells count what its conditions give, the key
/// column's cells the row's persons.
fn check_conditional(lines: &[(u8, u8, i64)], filter: &str) {
    let ws = open(lines, &[(1, true)], &[]);
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    runtime.block_on(async {
        for (output, conditions) in CONDITIONAL {
            let output = output.replace("{}", filter);
            let r = ws.run(&output).await.unwrap_or_else(|e| panic!("{output}: {e}"));
            let mut counts = Vec::new();
            for (condition, bears) in *conditions {
                let sql = match condition.strip_prefix("rows: ") {
                    Some(c) => format!(
                        "SELECT kind AS code, count(DISTINCT person_id) AS p FROM (SELECT person_id, kind, count(*) AS n FROM claim_lines WHERE {filter} GROUP BY person_id, kind) WHERE {c} GROUP BY kind"
                    ),
                    None => format!("SELECT code, count(DISTINCT person_id) AS p FROM claim_lines WHERE {filter} AND {condition} GROUP BY code"),
                };
                counts.push((reference(&ws, &sql).await, *bears));
            }
            for ((row, cells), row_persons) in r.rows.iter().zip(&r.cell_persons).zip(&r.persons) {
                let key = text(&row[0]);
                assert_eq!(cells[0], *row_persons, "{output}: key column of {key}");
                let want = counts.iter().fold(*row_persons, |cell, (count, bears)| {
                    let p = count.get(&key).copied().unwrap_or(0);
                    match bears {
                        Value => cell.min(p),
                        Part if p == 0 => cell,
                        Part => cell.min(p),
                    }
                });
                assert_eq!(cells[1], want, "{output}: row {key}");
            }
        }
    });
}

#[test]
fn conditional_aggregates_count_the_persons_that_give_them_values() {
    // Person 1: C1 (10, 20), C2 (40); person 2: C1 (30); person 3: C2 (0, 50), C3 (60, 90).
    let lines = [(1, 1, 10), (1, 1, 20), (2, 1, 30), (1, 2, 40), (3, 2, 0), (3, 2, 50), (3, 3, 60), (3, 3, 90)];
    check_conditional(&lines, "true");
    check_conditional(&lines, "code <> 'C3'");
}

/// A "Table 1" of twelve conditional columns (`count(*) FILTER (WHERE points < T)`) by code:
/// each cell counts the fewest persons of its condition, of its complement and of every
/// difference with another column (a part with no one left aside), as computed here from the
/// rows. Twelve conditions and 66 differences: the counts by condition (`src/by_condition.rs`)
/// take them in two aggregates of at most 64 outputs, so this also checks that each hidden
/// column reads its own output.
fn check_wide_table(lines: &[(u8, u8, i64)]) {
    let thresholds: Vec<i64> = (0..12).map(|i| 8 * i + 4).collect();
    let columns: Vec<String> = thresholds.iter().enumerate().map(|(i, t)| format!("count(*) FILTER (WHERE points < {t}) AS c{i}")).collect();
    let sql = format!("SELECT code, {} FROM claim_lines GROUP BY code", columns.join(", "));
    let ws = open(lines, &[(1, true)], &[]);
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let r = runtime.block_on(ws.run(&sql)).unwrap_or_else(|e| panic!("{sql}: {e}"));
    assert_eq!(ws.persons_recounts(), 0, "counted in person order");
    assert!(!r.rows.is_empty());
    for (row, cells) in r.rows.iter().zip(&r.cell_persons) {
        let code = text(&row[0]);
        let rows: Vec<&(u8, u8, i64)> = lines.iter().filter(|l| format!("C{}", l.1) == code).collect();
        let persons = |keep: &dyn Fn(i64) -> bool| rows.iter().filter(|l| keep(l.2)).map(|l| l.0).collect::<HashSet<_>>().len() as u64;
        let all = persons(&|_| true);
        assert_eq!(cells[0], all, "{code}: key column");
        for (i, &t) in thresholds.iter().enumerate() {
            let mut want = all.min(persons(&|p| p < t));
            let parts =
                std::iter::once(persons(&|p| p >= t)).chain(thresholds.iter().filter(|&&u| u != t).map(|&u| persons(&|p| (p < t) != (p < u))));
            for part in parts.filter(|&n| n > 0) {
                want = want.min(part);
            }
            assert_eq!(cells[1 + i], want, "{code}: column c{i} (points < {t})");
        }
        // Each column's sample is of its value condition's persons: as many as it has, up to 16,
        // and the persons below a threshold are
        // among those below a higher one, so a smaller column's ids that are not past a larger
        // one's full sample are in it.
        let samples = &r.cell_samples[r.rows.iter().position(|x| text(&x[0]) == code).unwrap()];
        for (i, &t) in thresholds.iter().enumerate() {
            let s = samples[1 + i].as_ref().expect("an aggregated column has a sample");
            assert_eq!(s.persons, persons(&|p| p < t), "{code}: c{i}'s sampled persons");
            assert_eq!(s.smallest.len() as u64, s.persons.min(16), "{code}: c{i}'s sample");
            assert!(s.smallest.windows(2).all(|w| w[0] < w[1]));
            for (j, &u) in thresholds.iter().enumerate().skip(i + 1) {
                let larger = samples[1 + j].as_ref().unwrap();
                let bar = if larger.smallest.len() == 16 { larger.smallest[15] } else { u32::MAX };
                for id in s.smallest.iter().filter(|&&id| id <= bar) {
                    assert!(larger.smallest.contains(id), "{code}: c{i} (< {t}) in c{j} (< {u})");
                }
            }
        }
    }
}

#[test]
fn a_wide_table_counts_each_cell_its_fewest_persons() {
    // Code 1: persons 1–9 at 10 apart (each pair of columns apart by one or no person); code 2:
    // three persons below 4 and one at 95.
    let mut lines: Vec<(u8, u8, i64)> = (1..=9).map(|p| (p, 1, i64::from(p) * 10)).collect();
    lines.extend([(10, 2, 1), (11, 2, 2), (12, 2, 3), (13, 2, 95), (10, 2, 50)]);
    check_wide_table(&lines);
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 32, ..ProptestConfig::default() })]

    #[test]
    fn wide_tables_count_each_cell_its_fewest_persons(lines in prop::collection::vec((0u8..40, 0u8..3, 0i64..100), 1..300)) {
        check_wide_table(&lines);
    }

    #[test]
    fn equals_count_distinct(
        lines in prop::collection::vec((0u8..40, 0u8..6, 0i64..100), 1..300),
        female in prop::collection::vec(any::<bool>(), 40),
        excluded in prop::collection::vec(0u8..40, 0..4),
        filter in prop::sample::select(vec!["true", "points < 50", "code IN ('C1', 'C2')", "points % 3 = 0"]),
    ) {
        let patients_of: Vec<(u8, bool)> = (0u8..40).filter(|p| p % 7 != 3).map(|p| (p, female[p as usize])).collect();
        check(&lines, &patients_of, &excluded, filter);
    }

    #[test]
    fn conditional_persons_equal_count_distinct(
        lines in prop::collection::vec((0u8..40, 0u8..6, 0i64..100), 1..300),
        filter in prop::sample::select(vec!["true", "points < 50", "code IN ('C1', 'C2')"]),
    ) {
        check_conditional(&lines, filter);
    }
}
