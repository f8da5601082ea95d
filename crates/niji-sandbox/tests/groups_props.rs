//! Property test of the bound on an aggregate's output rows (`groups.rs`): whatever the query,
//! the rows it makes never pass the bound the workspace computed before running it. A query past
//! its bound would reach the run-time row limit only when the rows it selects exist: the
//! existence oracle the bound closes.
//!
//! Random queries over three tables of varied values: plain columns, prefixes, months, years and
//! calendar fields of dates, CASE of constants, arithmetic and text functions of several
//! columns; joins on persons, on other columns and outer, and self-joins (two or three keys of one
//! scan are bounded by the tuples they hold together); filters that pin columns; grouping
//! sets, ROLLUP and CUBE; per-person counts grouped again. Each is run with no limit on groups
//! and its rows compared with the bound.

mod common;

use std::sync::Arc;

use common::*;
use niji_review::{DatasetGrant, TableGrant};
use niji_sandbox::arrow::array::{ArrayRef, Date32Array};
use niji_sandbox::{Limits, Workspace};
use proptest::prelude::*;

fn workspace() -> Workspace {
    let n = 90;
    let persons: Vec<u8> = (0..n).map(|i| (i * 7 % 23) as u8 + 1).collect();
    let codes: Vec<String> = (0..n).map(|i| format!("{}{:02}", ["A", "B", "C", "E", "I"][i % 5], (i * 13) % 37)).collect();
    let codes: Vec<&str> = codes.iter().map(String::as_str).collect();
    let points: Vec<i64> = (0..n as i64).map(|i| (i * 37) % 251).collect();
    let kinds: Vec<&str> = (0..n).map(|i| ["drug", "procedure", "material"][i % 3]).collect();
    let lines = table(NDB, "claim_lines", &persons, &[("code", strings(&codes)), ("points", ints(&points)), ("kind", strings(&kinds))]);
    let people: Vec<u8> = (1..=23).collect();
    let sexes: Vec<&str> = (0..23).map(|i| ["male", "female"][i % 2]).collect();
    let born: Vec<String> = (0..23).map(|i| format!("19{}-{:02}", 40 + i * 3 % 50, i % 12 + 1)).collect();
    let born: Vec<&str> = born.iter().map(String::as_str).collect();
    let patients = table(NDB, "patients", &people, &[("sex", strings(&sexes)), ("birth_year_month", strings(&born))]);
    // Onsets over about two years, some on the same day.
    let onset: ArrayRef = Arc::new(Date32Array::from((0..n as i32).map(|i| 19_000 + (i * 29) % 700).collect::<Vec<i32>>()));
    let conditions = table(NDB, "conditions", &persons, &[("code", strings(&codes)), ("onset", onset)]);
    let mut policy = policy(false);
    policy.datasets = vec![DatasetGrant {
        dataset: NDB.into(),
        tables: vec![
            TableGrant { table: "claim_lines".into(), columns: ["code", "points", "kind"].map(String::from).to_vec() },
            TableGrant { table: "patients".into(), columns: ["sex", "birth_year_month"].map(String::from).to_vec() },
            TableGrant { table: "conditions".into(), columns: ["code", "onset"].map(String::from).to_vec() },
        ],
    }];
    let limits = Limits { max_groups: u64::MAX, ..Limits::default() };
    Workspace::open(vec![lines, patients, conditions], &policy, [5; 32], &Default::default(), limits).expect("open")
}

/// The FROM clauses, the aliases they bind, and the alias whose person id a per-person count
/// groups by.
const FROMS: &[(&str, &str)] = &[
    ("claim_lines a", "a"),
    ("conditions c", "c"),
    ("claim_lines a JOIN patients p ON a.person_id = p.person_id", "ap"),
    ("conditions c JOIN patients p ON c.person_id = p.person_id", "cp"),
    ("claim_lines a JOIN patients p ON a.kind <> p.sex", "ap"),
    ("patients p LEFT JOIN conditions c ON p.person_id = c.person_id", "pc"),
    ("claim_lines a JOIN conditions c ON a.person_id = c.person_id", "ac"),
    ("claim_lines a FULL JOIN conditions c ON a.person_id = c.person_id AND a.code = c.code", "ac"),
    // Self-joins: pairs of one table's columns from two rows are not the table's pairs.
    ("claim_lines a JOIN claim_lines b ON a.person_id = b.person_id", "ab"),
    ("claim_lines a LEFT JOIN claim_lines b ON a.person_id = b.person_id AND a.points < b.points", "ab"),
    ("conditions c JOIN conditions d ON c.person_id = d.person_id", "cd"),
];

/// Grouping keys, each with the aliases it needs.
const KEYS: &[(&str, &str)] = &[
    ("a.code", "a"),
    ("a.points", "a"),
    ("a.kind", "a"),
    ("substr(a.code, 1, 1)", "a"),
    ("left(a.code, 2)", "a"),
    ("a.points / 50", "a"),
    ("CASE WHEN a.points < 100 THEN 'low' WHEN a.points < 200 THEN 'mid' ELSE 'high' END", "a"),
    ("CASE WHEN a.code LIKE 'A%' THEN a.kind ELSE 'other' END", "a"),
    ("p.sex", "p"),
    ("p.birth_year_month", "p"),
    ("substr(p.birth_year_month, 1, 3)", "p"),
    ("concat(p.sex, '-', substr(p.birth_year_month, 1, 4))", "p"),
    ("c.code", "c"),
    ("c.onset", "c"),
    ("date_trunc('week', c.onset)", "c"),
    ("date_trunc('month', c.onset)", "c"),
    ("date_trunc('quarter', c.onset)", "c"),
    ("date_trunc('year', c.onset)", "c"),
    ("date_part('year', c.onset)", "c"),
    ("date_part('month', c.onset)", "c"),
    ("date_part('dow', c.onset)", "c"),
    ("date_part('day', c.onset)", "c"),
    ("coalesce(c.code, 'none')", "c"),
    ("b.code", "b"),
    ("b.kind", "b"),
    ("left(b.code, 2)", "b"),
    ("d.code", "d"),
    ("date_trunc('month', d.onset)", "d"),
    ("'k'", ""),
];

/// Conditions, each with the aliases it needs.
const FILTERS: &[(&str, &str)] = &[
    ("", ""),
    ("a.code = 'A00'", "a"),
    ("a.code IN ('A00', 'B13', 'C26', 'E02')", "a"),
    ("a.kind = 'drug' OR a.kind = 'material'", "a"),
    ("a.points > 120", "a"),
    ("c.code LIKE 'I%'", "c"),
    ("c.onset >= DATE '2022-01-01'", "c"),
    ("p.sex = 'female'", "p"),
];

fn query(from: usize, keys: &[usize], filter: usize, form: usize) -> Option<String> {
    let (from, aliases) = FROMS[from % FROMS.len()];
    let usable = |needs: &str| needs.chars().all(|c| aliases.contains(c));
    let keys: Vec<&str> = keys.iter().map(|k| KEYS[k % KEYS.len()]).filter(|(_, needs)| usable(needs)).map(|(k, _)| k).collect();
    let (filter, needs) = FILTERS[filter % FILTERS.len()];
    let filter = if usable(needs) && !filter.is_empty() { format!(" WHERE {filter}") } else { String::new() };
    if keys.is_empty() {
        return None;
    }
    let list = keys.join(", ");
    let outputs: Vec<String> = keys.iter().enumerate().map(|(i, k)| format!("{k} AS k{i}")).collect();
    let outputs = outputs.join(", ");
    Some(match form % 7 {
        0 | 1 => format!("SELECT {outputs}, count(*) AS n FROM {from}{filter} GROUP BY {list}"),
        2 => format!("SELECT {outputs}, count(*) AS n FROM {from}{filter} GROUP BY ROLLUP ({list})"),
        3 => format!("SELECT {outputs}, count(*) AS n FROM {from}{filter} GROUP BY CUBE ({list})"),
        4 => {
            let sets: Vec<String> = keys.iter().map(|k| format!("({k})")).collect();
            format!("SELECT {outputs}, count(*) AS n FROM {from}{filter} GROUP BY GROUPING SETS ({}, ())", sets.join(", "))
        }
        // What a review found: grouping sets' rows leave out the other sets' columns, so
        // `(day, null)` rows grouped again are not the table's pairs.
        5 => {
            let sets: Vec<String> = keys.iter().map(|k| format!("({k})")).collect();
            let names: Vec<String> = (0..keys.len()).map(|i| format!("k{i}")).collect();
            format!(
                "SELECT DISTINCT {} FROM (SELECT {outputs}, count(*) AS n FROM {from}{filter} GROUP BY GROUPING SETS ({}, ())) t",
                names.join(", "),
                sets.join(", ")
            )
        }
        _ => {
            let person = format!("{}.person_id", &aliases[..1]);
            format!("SELECT n, count(*) AS m FROM (SELECT {person}, count(*) AS n FROM {from}{filter} GROUP BY {person}) t GROUP BY n")
        }
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 400, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn no_query_makes_more_rows_than_its_bound(
        from in 0usize..64,
        keys in prop::collection::vec(0usize..256, 1..4),
        filter in 0usize..64,
        form in 0usize..64,
    ) {
        let Some(sql) = query(from, &keys, filter, form) else { return Ok(()) };
        let ws = workspace();
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        let bound = runtime.block_on(ws.output_bound(&sql));
        let got = runtime.block_on(ws.run(&sql));
        if let (Ok(bound), Ok(out)) = (&bound, &got) {
            // The rows the query as written makes: a DISTINCT that runs also keeps apart rows
            // whose hidden persons counts differ (two null keys of a grouping set), and the bound
            // of that plan is checked apart when it runs; `output_bound` bounds the query's own.
            let distinct: std::collections::HashSet<String> = out.rows.iter().map(|r| format!("{r:?}")).collect();
            prop_assert!(distinct.len() as u128 <= *bound, "{sql}: {} rows, bound {bound}", distinct.len());
            prop_assert!(*bound >= 1, "{sql}");
        }
    }
}

/// What CI's draw found: DISTINCT over a grouping set of an outer join's column runs with the
/// hidden persons counts, which keep the two null keys (the join's and the total's) apart; the
/// query's own rows stay within its bound.
#[test]
fn a_distinct_over_grouping_sets_keeps_within_the_bound_of_its_own_rows() {
    let ws = workspace();
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let sql = "SELECT DISTINCT k0 FROM (SELECT b.kind AS k0, count(*) AS n FROM claim_lines a LEFT JOIN claim_lines b \
               ON a.person_id = b.person_id AND a.points < b.points GROUP BY GROUPING SETS ((b.kind), ())) t";
    let bound = runtime.block_on(ws.output_bound(sql)).unwrap();
    let out = runtime.block_on(ws.run(sql)).unwrap();
    let distinct: std::collections::HashSet<String> = out.rows.iter().map(|r| format!("{r:?}")).collect();
    assert!(distinct.len() as u128 <= bound, "{} distinct rows, bound {bound}", distinct.len());
}

/// What a review found: a cast that changes the text (a number read from the text and written
/// back) reached the prefix count of the column it came from. Zero-padded codes have one
/// three-character prefix; the numbers written back have hundreds.
#[test]
fn prefixes_are_counted_only_of_a_tables_own_text() {
    let n = 300;
    let persons: Vec<u8> = (0..n).map(|i| (i % 20) as u8 + 1).collect();
    let codes: Vec<String> = (0..n).map(|i| format!("{:06}", i * 7)).collect();
    let codes: Vec<&str> = codes.iter().map(String::as_str).collect();
    let lines = table(NDB, "claim_lines", &persons, &[("code", strings(&codes))]);
    let mut policy = policy(false);
    policy.datasets =
        vec![DatasetGrant { dataset: NDB.into(), tables: vec![TableGrant { table: "claim_lines".into(), columns: vec!["code".into()] }] }];
    let limits = Limits { max_groups: u64::MAX, ..Limits::default() };
    let ws = Workspace::open(vec![lines], &policy, [5; 32], &Default::default(), limits).expect("open");
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    for sql in [
        "SELECT left(y, 3) AS p, count(*) FROM (SELECT person_id, TRY_CAST(code AS BIGINT) AS y FROM claim_lines \
         UNION ALL SELECT person_id, code FROM claim_lines) t GROUP BY 1",
        "SELECT left(code, 3) AS p, count(*) FROM claim_lines GROUP BY 1",
    ] {
        let bound = runtime.block_on(ws.output_bound(sql)).unwrap_or_else(|e| panic!("{sql}: {e:?}"));
        match runtime.block_on(ws.run(sql)) {
            Ok(out) => assert!(out.rows.len() as u128 <= bound, "{sql}: {} rows, bound {bound}", out.rows.len()),
            Err(e) => panic!("{sql}: {e:?}"),
        }
    }
}
