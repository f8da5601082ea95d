//! What the workspace answers: aggregates with the persons behind each row.

mod common;

use std::collections::HashSet;

use common::*;
use niji_sandbox::{Limits, Scalar, Workspace};

fn text(v: &Scalar) -> String {
    match v {
        Scalar::Utf8(Some(s)) | Scalar::Utf8View(Some(s)) | Scalar::LargeUtf8(Some(s)) => s.clone(),
        other => other.to_string(),
    }
}

fn int(v: &Scalar) -> i64 {
    match v {
        Scalar::Int64(Some(n)) => *n,
        other => panic!("not an Int64: {other:?}"),
    }
}

#[tokio::test]
async fn group_by_gives_rows_with_persons_counts() {
    let ws = workspace();
    let r = ws.run("SELECT code, count(*) AS n, sum(points) AS points FROM claim_lines GROUP BY code ORDER BY code").await.unwrap();
    assert_eq!(r.columns, ["code", "n", "points"]);
    let rows: Vec<(String, i64, i64, u64)> = r.rows.iter().zip(&r.persons).map(|(row, p)| (text(&row[0]), int(&row[1]), int(&row[2]), *p)).collect();
    // By hand: A rows of persons 1,1,2,3; B of 3,4; C of 5; Alice of 6.
    assert_eq!(rows, [("A".into(), 4, 100, 3), ("Alice".into(), 1, 80, 1), ("B".into(), 2, 110, 2), ("C".into(), 1, 70, 1)]);
}

#[tokio::test]
async fn qualified_names_having_ordering_and_global_aggregates_work() {
    let ws = workspace();
    let r = ws.run("SELECT count(*) FROM ndb_2024.claim_lines").await.unwrap();
    assert_eq!((int(&r.rows[0][0]), r.persons[0]), (8, 6));
    let r = ws.run("SELECT code FROM claim_lines GROUP BY code HAVING count(*) > 1 ORDER BY code DESC").await.unwrap();
    assert_eq!(r.rows.iter().map(|r| text(&r[0])).collect::<Vec<_>>(), ["B", "A"]);
    assert_eq!(r.persons, [2, 3]);
    let r = ws.run("SELECT count(DISTINCT person_id) AS persons FROM claim_lines").await.unwrap();
    assert_eq!((int(&r.rows[0][0]), r.persons[0]), (6, 6));
}

#[tokio::test]
async fn opted_out_persons_are_excluded() {
    let ws = workspace_with(false, &[1, 3], Limits::default());
    let r = ws.run("SELECT code, count(*) FROM claim_lines GROUP BY code ORDER BY code").await.unwrap();
    let rows: Vec<(String, i64, u64)> = r.rows.iter().zip(&r.persons).map(|(row, p)| (text(&row[0]), int(&row[1]), *p)).collect();
    // A keeps person 2's row only; B keeps person 4's.
    assert_eq!(rows, [("A".into(), 1, 1), ("Alice".into(), 1, 1), ("B".into(), 1, 1), ("C".into(), 1, 1)]);
    let r = ws.run("SELECT count(*) FROM patients").await.unwrap();
    assert_eq!((int(&r.rows[0][0]), r.persons[0]), (4, 4));
}

#[tokio::test]
async fn per_person_histograms_and_person_joins_are_counted() {
    let ws = workspace();
    // How many persons have n lines: n=1 → persons 2,4,5,6; n=2 → persons 1,3.
    let r = ws
        .run("SELECT n, count(*) AS persons FROM (SELECT person_id, count(*) AS n FROM claim_lines GROUP BY person_id) GROUP BY n ORDER BY n")
        .await
        .unwrap();
    assert_eq!(r.rows.iter().map(|r| (int(&r[0]), int(&r[1]))).collect::<Vec<_>>(), [(1, 4), (2, 2)]);
    assert_eq!(r.persons, [4, 2]);
    // Join within a dataset on the person.
    let r = ws
        .run(
            "SELECT p.sex, count(*) FROM claim_lines c JOIN patients p ON c.person_id = p.person_id WHERE c.code = 'A' GROUP BY p.sex ORDER BY p.sex",
        )
        .await
        .unwrap();
    assert_eq!(r.rows.iter().map(|r| (text(&r[0]), int(&r[1]))).collect::<Vec<_>>(), [("female".into(), 2), ("male".into(), 2)]);
    assert_eq!(r.persons, [2, 1]);
    // A cohort through IN (SELECT person_id …).
    let r = ws
        .run("SELECT sex, count(*) FROM patients WHERE person_id IN (SELECT person_id FROM claim_lines WHERE code = 'B') GROUP BY sex ORDER BY sex")
        .await
        .unwrap();
    assert_eq!(r.rows.iter().map(|r| (text(&r[0]), int(&r[1]))).collect::<Vec<_>>(), [("female".into(), 1), ("male".into(), 1)]);
    assert_eq!(r.persons, [1, 1]);
}

#[tokio::test]
async fn linkage_allowed_by_the_permit_runs() {
    let ws = workspace_with(true, &[], Limits::default());
    let r = ws
        .run("SELECT k.sex, count(*) FROM kaigo_2024.claims k JOIN ndb_2024.claim_lines c ON k.person_id = c.person_id GROUP BY k.sex ORDER BY k.sex")
        .await
        .unwrap();
    assert_eq!(r.rows.iter().map(|r| (text(&r[0]), int(&r[1]))).collect::<Vec<_>>(), [("female".into(), 3), ("male".into(), 2)]);
    assert_eq!(r.persons, [2, 1]);
}

#[tokio::test]
async fn only_granted_columns_are_registered_and_tables_are_named_by_dataset() {
    let ws = workspace();
    let mut tables = ws.tables();
    tables.sort();
    assert_eq!(
        tables,
        [
            ("kaigo_2024".into(), "claims".into(), KAIGO.into()),
            ("ndb_2024".into(), "claim_lines".into(), NDB.into()),
            ("ndb_2024".into(), "patients".into(), NDB.into()),
        ]
    );
}

#[test]
fn a_table_the_permit_does_not_grant_is_refused_at_open() {
    let mut t = claim_lines();
    t.table = "conditions".into();
    t.schema = niji_lake::table_schema("conditions").unwrap();
    t.batches.clear();
    let r = Workspace::open(vec![t], &policy(false), [1; 32], &HashSet::new(), Limits::default());
    assert_eq!(r.err(), Some(niji_sandbox::SandboxError::NotAllowed(niji_sandbox::Refusal::TableNotGranted)));
}

#[tokio::test]
async fn two_permits_give_the_same_person_different_ids() {
    // The same counts in both, but the ids cannot be compared from SQL (they never leave), so the
    // re-keying is checked on the prepared data through the public helper.
    let keys: Vec<[u8; 32]> = (1..=6).map(key).collect();
    let ids = |secret: u8| niji_sandbox::person_ids(&[secret; 32], &keys).unwrap();
    let (a, b) = (ids(1)[0], ids(2)[0]);
    assert_ne!(a, b);
    assert_eq!(a, ids(1)[0]);
    assert_ne!(a, ids(1)[1]);
    // And the workspace uses exactly that id: a cohort filtered on permit A's id of person 1 finds it.
    let ws = Workspace::open(vec![patients()], &policy(false), [1; 32], &HashSet::new(), Limits::default()).unwrap();
    let hex_a: String = a.iter().map(|b| format!("{b:02x}")).collect();
    let hex_b: String = b.iter().map(|b| format!("{b:02x}")).collect();
    let q = |h: &str| format!("SELECT count(*) FROM patients WHERE person_id = arrow_cast(X'{h}', 'FixedSizeBinary(4)')");
    let found = ws.run(&q(&hex_a)).await.unwrap();
    let other = ws.run(&q(&hex_b)).await.unwrap();
    assert_eq!((int(&found.rows[0][0]), int(&other.rows[0][0])), (1, 0));
}

/// A join on something other than the person pairs one person's rows with everyone's: a row
/// then stands for a person on each side, and a cell counts the fewer of them. Only person 5 has
/// code C; every line is of kind `drug`, so each of person 5's lines meets all eight lines of six
/// persons.
#[tokio::test]
async fn a_join_not_on_the_person_counts_the_side_with_fewer_persons() {
    let ws = workspace();
    for sql in [
        "SELECT count(*) FROM claim_lines a JOIN claim_lines b ON a.kind = b.kind WHERE a.code = 'C'",
        "SELECT count(*) FROM claim_lines a JOIN claim_lines b ON a.kind = b.kind WHERE b.code = 'C'",
        "SELECT sum(a.points) FROM claim_lines a JOIN claim_lines b ON a.kind = b.kind WHERE a.code = 'C'",
        "SELECT avg(b.points) FROM claim_lines a JOIN claim_lines b ON a.kind = b.kind WHERE a.code = 'C'",
    ] {
        let r = ws.run(sql).await.unwrap_or_else(|e| panic!("{sql}: {e:?}"));
        assert_eq!(r.persons, [1], "{sql}");
        assert!(r.cell_persons[0].iter().all(|&n| n <= 1), "{sql}: {:?}", r.cell_persons);
    }
    // Grouped by the other side's column: each group still holds only person 5's rows on one side.
    let r = ws
        .run("SELECT b.code, count(*) FROM claim_lines a JOIN claim_lines b ON a.kind = b.kind WHERE a.code = 'C' GROUP BY b.code ORDER BY b.code")
        .await
        .unwrap();
    assert_eq!(r.rows.len(), 4);
    assert!(r.persons.iter().all(|&n| n == 1), "{:?}", r.persons);
    // Both sides many: the group of code A pairs persons 1, 2, 3 with persons 1, 2, 3.
    let r = ws.run("SELECT a.code, count(*) FROM claim_lines a JOIN claim_lines b ON a.code = b.code GROUP BY a.code ORDER BY a.code").await.unwrap();
    assert_eq!(r.rows.iter().map(|r| (text(&r[0]), int(&r[1]))).collect::<Vec<_>>()[0], ("A".into(), 16));
    assert_eq!(r.persons[0], 3);
}

/// The tables a query's scans read, from which its answer's time is fixed: once per scan,
/// whatever its conditions select.
#[tokio::test]
async fn scans_name_each_table_read_whatever_the_conditions() {
    let ws = workspace();
    let check = |sql: &'static str, expected: &'static [&'static str]| {
        let ws = &ws;
        async move {
            let mut got: Vec<String> = ws.scans(sql).await.unwrap_or_else(|e| panic!("{sql}: {e:?}")).into_iter().map(|(_, t)| t).collect();
            got.sort();
            assert_eq!(got, expected, "{sql}");
        }
    };
    check("SELECT code, count(*) FROM claim_lines GROUP BY code", &["claim_lines"]).await;
    check("SELECT code, count(*) FROM claim_lines WHERE code = 'nothing' GROUP BY code", &["claim_lines"]).await;
    check("SELECT count(*) FROM patients", &["patients"]).await;
    check("SELECT p.sex, count(*) FROM claim_lines c JOIN patients p ON c.person_id = p.person_id GROUP BY p.sex", &["claim_lines", "patients"])
        .await;
    check("SELECT count(*) FROM claim_lines a JOIN claim_lines b ON a.person_id = b.person_id", &["claim_lines", "claim_lines"]).await;
    check(
        "SELECT sex, count(*) FROM patients WHERE person_id IN (SELECT person_id FROM claim_lines WHERE code = 'A') GROUP BY sex",
        &["claim_lines", "patients"],
    )
    .await;
    check(
        "SELECT kind, count(*) FROM (SELECT * FROM claim_lines UNION ALL SELECT * FROM claim_lines) GROUP BY kind",
        &["claim_lines", "claim_lines"],
    )
    .await;
    check("WITH c AS (SELECT * FROM claim_lines) SELECT count(*) FROM c a JOIN c b ON a.person_id = b.person_id", &["claim_lines", "claim_lines"])
        .await;
    assert_eq!(ws.scans("SELECT count(*) FROM patients").await.unwrap()[0].0, NDB, "the dataset, not its SQL schema");
    // What the workspace refuses to run, it refuses to measure too.
    assert!(ws.scans("DROP TABLE patients").await.is_err());
    assert!(ws.scans(&"(".repeat(200)).await.is_err());
}
