//! Dates shifted per person when the permit says so: every date of one person moves by the same
//! offset (intervals kept), offsets differ between persons and between permits, and without the
//! setting nothing moves.

mod common;

use common::*;
use niji_review::{DatasetGrant, TableGrant};
use niji_sandbox::arrow::array::{ArrayRef, Date32Array};
use niji_sandbox::{Limits, Workspace};
use std::sync::Arc;

/// Encounters of persons 1, 1, 2, 3 on days 19000, 19010, 19000, 19000 (since 1970).
fn encounters() -> niji_sandbox::GrantedTable {
    let days: ArrayRef = Arc::new(Date32Array::from(vec![19_000, 19_010, 19_000, 19_000]));
    table(NDB, "encounters", &[1, 1, 2, 3], &[("start", days), ("class", strings(&["AMB"; 4]))])
}

/// (person id as hex, start in days) of every row, through the workspace in row mode.
async fn rows(shift: Option<u32>, secret: [u8; 32]) -> Vec<(String, i32)> {
    let mut policy = policy(false);
    policy.datasets = vec![DatasetGrant {
        dataset: NDB.into(),
        tables: vec![TableGrant { table: "encounters".into(), columns: vec!["start".into(), "class".into()] }],
    }];
    policy.date_shift_days = shift;
    let ws = Workspace::open_dummy(vec![encounters()], &policy, secret, Limits::default()).unwrap();
    let out = ws.run("SELECT encode(person_id, 'hex') AS p, CAST(start AS INT) AS d FROM ndb_2024.encounters ORDER BY p, d").await.unwrap();
    out.rows.iter().map(|r| (r[0].to_string(), r[1].to_string().parse().unwrap())).collect()
}

#[tokio::test]
async fn dates_move_by_one_offset_per_person_and_differently_per_permit() {
    let unshifted = rows(None, [7; 32]).await;
    let mut days: Vec<i32> = unshifted.iter().map(|r| r.1).collect();
    days.sort();
    assert_eq!(days, [19_000, 19_000, 19_000, 19_010], "no setting, no shift");

    let shifted = rows(Some(30), [7; 32]).await;
    // The same persons (same secret: same ids), each moved by one offset within 30 days.
    let offset = |p: &str, d0: i32| shifted.iter().filter(|r| r.0 == p).map(|r| r.1 - d0).collect::<Vec<_>>();
    let mut offsets = Vec::new();
    for (p, _) in unshifted.iter().filter(|r| r.1 == 19_000) {
        let o = offset(p, 19_000);
        assert!(o.iter().any(|x| x.abs() <= 30), "{p}: {o:?}");
        offsets.push(o.iter().copied().find(|x| x.abs() <= 30).unwrap());
    }
    // Person 1's interval of 10 days is kept.
    let person1 = &unshifted.iter().find(|r| r.1 == 19_010).unwrap().0;
    let mut d: Vec<i32> = shifted.iter().filter(|r| &r.0 == person1).map(|r| r.1).collect();
    d.sort();
    assert_eq!(d[1] - d[0], 10);
    assert!(offsets.iter().any(|o| *o != offsets[0]), "persons get different offsets: {offsets:?}");
    // Another permit (another secret) shifts differently.
    let other: Vec<i32> = rows(Some(30), [8; 32]).await.iter().map(|r| r.1).collect();
    let mine: Vec<i32> = shifted.iter().map(|r| r.1).collect();
    assert_ne!(other, mine);
}

/// A nanosecond timestamp holds 1677–2262 only: `date_trunc` (which makes one of a date) may read a
/// table's dates moved by up to a century, never a date the query made from text, where a `CASE`
/// could choose one out of range for a rare row and the query would fail only if that row exists.
#[tokio::test]
async fn timestamps_are_made_only_from_a_tables_dates() {
    let mut policy = policy(false);
    policy.datasets = vec![DatasetGrant {
        dataset: NDB.into(),
        tables: vec![TableGrant { table: "encounters".into(), columns: vec!["start".into(), "class".into()] }],
    }];
    let ws = Workspace::open(vec![encounters()], &policy, [7; 32], &Default::default(), Limits::default()).unwrap();
    for sql in [
        "SELECT date_trunc('month', start) AS m, count(*) AS n FROM ndb_2024.encounters GROUP BY 1",
        "SELECT count(*) FROM ndb_2024.encounters WHERE date_trunc('year', start - INTERVAL '30 years') < TIMESTAMP '2000-01-01 00:00:00'",
        "SELECT count(*) FROM (SELECT person_id, start AS s FROM ndb_2024.encounters) WHERE CAST(s AS TIMESTAMP) > TIMESTAMP '2020-01-01 00:00:00'",
        "SELECT avg(start - DATE '2020-01-01') FROM ndb_2024.encounters",
    ] {
        let got = ws.run(sql).await;
        assert!(got.is_ok(), "{sql}: {got:?}");
    }
    for sql in [
        "SELECT count(*) FROM ndb_2024.encounters WHERE date_trunc('month', TRY_CAST(CASE WHEN class = 'IMP' THEN '99999-01-01' ELSE '2000-01-01' END AS DATE)) IS NOT NULL",
        "SELECT count(*) FROM ndb_2024.encounters WHERE CAST(start - INTERVAL '340 years' AS TIMESTAMP) IS NOT NULL",
        "SELECT count(*) FROM ndb_2024.encounters WHERE CAST(start + INTERVAL '90 years' + INTERVAL '90 years' AS TIMESTAMP) IS NOT NULL",
        "SELECT count(*) FROM ndb_2024.encounters WHERE TRY_CAST(CASE WHEN class = 'IMP' THEN '262142-12-31' ELSE '2000-01-01' END AS DATE) + INTERVAL '1 year' IS NOT NULL",
        "SELECT count(*) FROM (SELECT person_id, start - INTERVAL '90 years' AS s FROM ndb_2024.encounters) WHERE CAST(s - INTERVAL '90 years' AS TIMESTAMP) IS NOT NULL",
    ] {
        assert_eq!(ws.run(sql).await.err(), Some(niji_sandbox::SandboxError::NotAllowed(niji_sandbox::Refusal::MayFail)), "{sql}");
    }
}
