//! The institutions behind each row and cell (NDB's rule: no cell of fewer than three medical
//! institutions), counted from `facility_code` under rules that count them, and the queries that
//! would leave them behind refused.

mod common;

use std::collections::HashSet;
use std::sync::Arc;

use common::{strings, table, NDB};
use niji_review::{DatasetGrant, TableGrant};
use niji_sandbox::arrow::array::{ArrayRef, Int32Array};
use niji_sandbox::{AggregateResult, Limits, Refusal, SandboxError, Scalar, Workspace};

/// 40 persons with one claim each, one more for persons 1–5: prefecture 13 has the facilities
/// F1 (persons 1–10), F2 (11–20) and F3 (21–25), prefecture 27 only F4 (26–40).
fn claims() -> niji_sandbox::GrantedTable {
    let mut persons: Vec<u8> = (1..=40).collect();
    persons.extend(1..=5);
    persons.sort_unstable();
    let facility = |p: u8| match p {
        1..=10 => "F1",
        11..=20 => "F2",
        21..=25 => "F3",
        _ => "F4",
    };
    let codes: Vec<&str> = persons.iter().map(|&p| facility(p)).collect();
    let prefectures: Vec<i32> = persons.iter().map(|&p| if p <= 25 { 13 } else { 27 }).collect();
    let sexes: Vec<&str> = persons.iter().map(|&p| if p % 2 == 0 { "male" } else { "female" }).collect();
    table(
        NDB,
        "claims",
        &persons,
        &[("facility_code", strings(&codes)), ("facility_prefecture", Arc::new(Int32Array::from(prefectures)) as ArrayRef), ("sex", strings(&sexes))],
    )
}

/// One claim line per person 1–40, code `A`.
fn claim_lines() -> niji_sandbox::GrantedTable {
    let persons: Vec<u8> = (1..=40).collect();
    table(NDB, "claim_lines", &persons, &[("code", strings(&vec!["A"; 40]))])
}

fn workspace(preset: &str, granted: &[&str]) -> Workspace {
    let mut policy = common::policy(false);
    let grant = |table: &str, columns: &[&str]| TableGrant { table: table.into(), columns: columns.iter().map(|c| c.to_string()).collect() };
    policy.datasets = vec![DatasetGrant { dataset: NDB.into(), tables: vec![grant("claims", granted), grant("claim_lines", &["code"])] }];
    policy.output_preset = preset.into();
    Workspace::open(vec![claims(), claim_lines()], &policy, [9; 32], &HashSet::new(), Limits::default()).expect("open")
}

fn ndb() -> Workspace {
    workspace("ndb", &["facility_code", "facility_prefecture", "sex"])
}

async fn run(ws: &Workspace, sql: &str) -> AggregateResult {
    ws.run(sql).await.unwrap_or_else(|e| panic!("{sql}: {e:?}"))
}

/// Runs `sql` (rows ordered by their first column) and compares, per row, its first column, the
/// row's institutions and each column's.
async fn check(ws: &Workspace, sql: &str, expected: &[(i64, Option<u64>, &[Option<u64>])]) {
    let r = run(ws, sql).await;
    let got: Vec<(i64, Option<u64>, Vec<Option<u64>>)> = r
        .rows
        .iter()
        .enumerate()
        .map(|(i, row)| {
            let first = match &row[0] {
                Scalar::Int32(Some(v)) => i64::from(*v),
                Scalar::Int64(Some(v)) => *v,
                other => panic!("{sql}: first column {other:?}"),
            };
            (first, r.institutions[i], r.cell_institutions[i].clone())
        })
        .collect();
    let expected: Vec<(i64, Option<u64>, Vec<Option<u64>>)> = expected.iter().map(|(k, n, cells)| (*k, *n, cells.to_vec())).collect();
    assert_eq!(got, expected, "{sql}");
}

#[tokio::test]
async fn each_row_and_cell_counts_its_institutions() {
    let ws = ndb();
    // Prefecture 13 has three facilities, 27 one.
    check(
        &ws,
        "SELECT facility_prefecture, count(*) AS n FROM claims GROUP BY facility_prefecture ORDER BY facility_prefecture",
        &[(13, Some(3), &[Some(3), Some(3)]), (27, Some(1), &[Some(1), Some(1)])],
    )
    .await;
    // A conditional count: the institutions of its rows.
    check(
        &ws,
        "SELECT facility_prefecture, count(*) AS n, count(*) FILTER (WHERE facility_code NOT IN ('F1', 'F2')) AS rare \
         FROM claims GROUP BY facility_prefecture ORDER BY facility_prefecture",
        &[(13, Some(3), &[Some(3), Some(3), Some(1)]), (27, Some(1), &[Some(1), Some(1), Some(1)])],
    )
    .await;
    // Grouped by the granted code: the output is the query's own (nothing added above the
    // aggregate), each row one institution.
    let r = run(&ws, "SELECT facility_code AS f, count(*) AS n FROM claims GROUP BY facility_code ORDER BY 1").await;
    assert_eq!((r.columns.clone(), r.institutions.clone()), (vec!["f".to_owned(), "n".to_owned()], vec![Some(1); 4]));
    let r = run(&ws, "SELECT DISTINCT n FROM (SELECT facility_prefecture, count(*) AS n FROM claims GROUP BY 1)").await;
    assert_eq!(r.columns, ["n"]);
    // The whole table, and a count taken over a join with claim lines (its rows name facilities
    // through the claims).
    check(&ws, "SELECT count(DISTINCT person_id) AS n, 0 AS z FROM claims", &[(40, Some(4), &[Some(4), Some(4)])]).await;
    check(
        &ws,
        "SELECT c.facility_prefecture, count(*) AS n FROM claims c JOIN claim_lines l ON c.person_id = l.person_id \
         WHERE c.facility_code <> 'F3' GROUP BY c.facility_prefecture ORDER BY 1",
        &[(13, Some(2), &[Some(2), Some(2)]), (27, Some(1), &[Some(1), Some(1)])],
    )
    .await;
    // Through a subquery that keeps the column.
    check(
        &ws,
        "SELECT p, count(*) AS n FROM (SELECT person_id, facility_code, facility_prefecture AS p FROM claims WHERE sex = 'male') \
         GROUP BY p ORDER BY p",
        &[(13, Some(3), &[Some(3), Some(3)]), (27, Some(1), &[Some(1), Some(1)])],
    )
    .await;
}

#[tokio::test]
async fn subqueries_that_drop_the_code_still_carry_it() {
    let ws = ndb();
    // A subquery or CTE selecting other columns: its rows' codes are carried up.
    let by_prefecture: &[(i64, Option<u64>, &[Option<u64>])] = &[(13, Some(3), &[Some(3), Some(3)]), (27, Some(1), &[Some(1), Some(1)])];
    check(&ws, "SELECT p, count(*) FROM (SELECT person_id, facility_prefecture AS p FROM claims) GROUP BY p ORDER BY p", by_prefecture).await;
    check(
        &ws,
        "WITH c AS (SELECT person_id, facility_prefecture FROM claims) SELECT facility_prefecture, count(*) FROM c GROUP BY 1 ORDER BY 1",
        by_prefecture,
    )
    .await;
    // A join whose claims side keeps only the person, chosen by facility: counted on that side.
    check(
        &ws,
        "SELECT count(DISTINCT l.person_id) AS n, 0 AS z FROM claim_lines l \
         JOIN (SELECT person_id FROM claims WHERE facility_code = 'F1') c ON c.person_id = l.person_id",
        &[(10, Some(1), &[Some(1), Some(1)])],
    )
    .await;
    // A CTE used twice, one reference keeping the code and the other not: both counted, the
    // fewest kept.
    check(
        &ws,
        "WITH c AS (SELECT person_id, facility_code, facility_prefecture FROM claims) SELECT a.facility_prefecture, count(DISTINCT a.person_id) \
         FROM c a JOIN (SELECT person_id FROM c WHERE facility_code = 'F1') b ON a.person_id = b.person_id GROUP BY 1",
        &[(13, Some(1), &[Some(1), Some(1)])],
    )
    .await;
    // The code made into another value: the rows' own codes still counted.
    let r = run(&ws, "SELECT f, count(*) FROM (SELECT person_id, lower(facility_code) AS f FROM claims) GROUP BY f").await;
    assert_eq!(r.institutions, [Some(1); 4]);
}

#[tokio::test]
async fn a_query_that_leaves_the_institutions_behind_is_refused() {
    let ws = ndb();
    let refused = SandboxError::NotAllowed(Refusal::InstitutionsNotCountable);
    for sql in [
        // Claims choosing persons by their institution in a subquery: the cell's rows (claim
        // lines, or all the claims of one facility's patients) are not the claims that chose them.
        "SELECT code, count(*) FROM claim_lines WHERE person_id IN (SELECT person_id FROM claims WHERE facility_code = 'F1') GROUP BY code",
        "SELECT count(DISTINCT person_id) FROM claims WHERE person_id IN (SELECT person_id FROM claims WHERE facility_code = 'F1')",
        "SELECT count(DISTINCT person_id) FROM claims WHERE person_id NOT IN (SELECT person_id FROM claims WHERE facility_code <> 'F1')",
        // A window flagging one facility's patients.
        "SELECT count(DISTINCT person_id) FROM (SELECT person_id, facility_code, \
         max(CASE WHEN facility_code = 'F1' THEN 1 ELSE 0 END) OVER (PARTITION BY person_id) AS at_f FROM claims) WHERE at_f = 1",
        // The same under a nested aggregate or a DISTINCT, whose rows carry no code up.
        "SELECT n, count(*) FROM (SELECT person_id, count(*) AS n FROM claims WHERE facility_code = 'F1' GROUP BY person_id) GROUP BY n",
        "SELECT count(*) FROM (SELECT DISTINCT person_id, sex FROM claims WHERE facility_code = 'F1')",
    ] {
        assert_eq!(ws.run(sql).await.err(), Some(refused.clone()), "{sql}");
    }
    // Choosing persons by other columns there is answered (a cohort), the cells counting the
    // institutions of the rows counted; a nested aggregate grouped by the code carries it.
    let r = run(
        &ws,
        "SELECT facility_prefecture, count(*) FROM claims WHERE person_id IN (SELECT person_id FROM claims WHERE sex = 'male') GROUP BY 1 ORDER BY 1",
    )
    .await;
    assert_eq!(r.institutions, [Some(3), Some(1)]);
    let r = run(&ws, "SELECT n, count(*) FROM (SELECT person_id, facility_code, count(*) AS n FROM claims GROUP BY person_id, facility_code) GROUP BY n ORDER BY n").await;
    assert_eq!(r.institutions, [Some(4), Some(1)]);
    let r = run(&ws, "SELECT n, count(*) FROM (SELECT person_id, count(*) AS n FROM claims GROUP BY person_id) GROUP BY n ORDER BY n").await;
    assert_eq!(r.rows.len(), 2);
    assert!(r.institutions.iter().all(Option::is_none), "{:?}", r.institutions);
    // Rows whose code is null (these claim lines) count no institution: answered, the rule not
    // applied; a cohort of claims as a join, counted.
    let r = run(&ws, "SELECT code, count(*) FROM claim_lines WHERE person_id IN (SELECT person_id FROM claim_lines WHERE code = 'A') GROUP BY code")
        .await;
    assert!(r.institutions.iter().chain(r.cell_institutions.iter().flatten()).all(Option::is_none));
    let r = run(
        &ws,
        "SELECT l.code, count(DISTINCT l.person_id) FROM claim_lines l JOIN claims c ON c.person_id = l.person_id \
         WHERE c.facility_code = 'F1' GROUP BY l.code",
    )
    .await;
    assert_eq!(r.cell_institutions, [vec![Some(1), Some(1)]]);
}

#[tokio::test]
async fn a_permit_without_the_code_counts_it_hidden_and_cannot_read_it() {
    let ws = workspace("ndb", &["facility_prefecture", "sex"]);
    let by_prefecture: &[(i64, Option<u64>, &[Option<u64>])] = &[(13, Some(3), &[Some(3), Some(3)]), (27, Some(1), &[Some(1), Some(1)])];
    check(&ws, "SELECT facility_prefecture, count(*) FROM claims GROUP BY 1 ORDER BY 1", by_prefecture).await;
    check(&ws, "SELECT facility_prefecture, count(*) FROM (SELECT * FROM claims) GROUP BY 1 ORDER BY 1", by_prefecture).await;
    // The hidden column is no name the query can use, nor does `*` bring it.
    for sql in [
        "SELECT facility_code, count(*) FROM claims GROUP BY facility_code",
        "SELECT __niji_institution, count(*) FROM claims GROUP BY 1",
        "SELECT count(*) FROM claims WHERE __niji_institution = 'F1'",
        "SELECT c.__niji_institution_1, count(*) FROM (SELECT person_id, sex FROM claims) c GROUP BY 1",
    ] {
        assert_eq!(ws.run(sql).await.err(), Some(SandboxError::UnknownName), "{sql}");
    }
    // The rows and values are the query's own: the carried code adds a column, never a row.
    let r = run(&ws, "SELECT count(DISTINCT person_id) AS n, count(*) AS m FROM (SELECT * FROM claims)").await;
    assert_eq!(
        (r.columns.clone(), r.rows[0].clone()),
        (vec!["n".to_owned(), "m".to_owned()], vec![Scalar::Int64(Some(40)), Scalar::Int64(Some(45))])
    );
    // A DISTINCT cannot carry it (a column more would change its rows): its rows count no
    // institution, and they are the query's own (persons 1–5 have two identical claims).
    let r = run(&ws, "SELECT count(*) AS n, 0 AS z FROM (SELECT DISTINCT * FROM claims)").await;
    assert_eq!((r.rows[0][0].clone(), r.institutions.clone()), (Scalar::Int64(Some(40)), vec![]));
    // A dummy workspace has no hidden column: `*` shows the granted columns only.
    let dummy = niji_sandbox::Workspace::open_dummy(
        vec![claims()],
        &{
            let mut p = common::policy(false);
            p.datasets = vec![DatasetGrant { dataset: NDB.into(), tables: vec![TableGrant { table: "claims".into(), columns: vec!["sex".into()] }] }];
            p
        },
        [9; 32],
        Limits::default(),
    )
    .expect("dummy");
    let r = dummy.run("SELECT * FROM claims LIMIT 1").await.expect("dummy rows");
    assert_eq!(r.columns, ["person_id", "sex"]);
}

#[tokio::test]
async fn institutions_are_counted_only_under_rules_that_count_them() {
    let sql = "SELECT p, count(*) FROM (SELECT person_id, facility_prefecture AS p FROM claims WHERE person_id IN (SELECT person_id FROM claims)) GROUP BY p";
    // ACRO counts no institutions: nothing counted, nothing refused.
    let acro = workspace("acro", &["facility_code", "facility_prefecture", "sex"]);
    let r = run(&acro, sql).await;
    assert_eq!(r.rows.len(), 2);
    assert!(r.institutions.is_empty() && r.cell_institutions.is_empty());
}
