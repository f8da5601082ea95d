//! The dummy-data workspace ([`QueryMode::Rows`]): rows may come back, every other hardening stays.
//! Red-team attempts in this mode must fail exactly as in the aggregate mode.

mod common;

use std::collections::HashSet;

use common::*;
use niji_sandbox::{Limits, QueryMode, Refusal, SandboxError, Workspace};

use SandboxError::*;

fn dummy_with(limits: Limits) -> Workspace {
    Workspace::open_dummy(vec![claim_lines(), patients(), kaigo_claims()], &policy(false), [9; 32], limits).expect("open")
}

fn dummy() -> Workspace {
    dummy_with(Limits::default())
}

async fn refused(ws: &Workspace, sql: &str, expected: SandboxError) {
    assert_eq!(ws.run(sql).await.err(), Some(expected), "{sql}");
    let text = expected.to_string();
    for word in ["passwd", "secret_xyz", "Alice", "claim_lines", "quantity"] {
        assert!(!text.contains(word), "{text}");
    }
}

fn na(r: Refusal) -> SandboxError {
    NotAllowed(r)
}

#[tokio::test]
async fn rows_come_back_with_granted_columns_only() {
    let ws = dummy();
    assert_eq!(ws.mode(), QueryMode::Rows);
    let out = ws.run("SELECT * FROM claim_lines").await.unwrap();
    assert_eq!(out.columns, ["person_id", "kind", "code", "points"]);
    assert_eq!(out.rows.len(), 8);
    assert!(out.persons.is_empty());
    let out = ws.run("SELECT code, points FROM claim_lines ORDER BY points LIMIT 5").await.unwrap();
    assert_eq!(out.rows.len(), 5);
    // Person ids of dummy persons are shown (and join across tables).
    let out = ws.run("SELECT c.code, p.sex FROM claim_lines c JOIN patients p ON c.person_id = p.person_id").await.unwrap();
    assert_eq!(out.rows.len(), 8);
    // Aggregates still work, without a persons count.
    let out = ws.run("SELECT code, count(*) FROM claim_lines GROUP BY code").await.unwrap();
    assert_eq!(out.rows.len(), 4);
    assert!(out.persons.is_empty());
}

#[tokio::test]
async fn the_aggregate_workspace_still_refuses_rows() {
    let ws = workspace();
    assert_eq!(ws.mode(), QueryMode::Aggregates);
    assert_eq!(ws.run("SELECT code FROM claim_lines").await.err(), Some(NotAggregate));
    let real = Workspace::open(vec![claim_lines()], &policy(false), [9; 32], &HashSet::new(), Limits::default()).unwrap();
    assert_eq!(real.run("SELECT * FROM claim_lines").await.err(), Some(PersonIdInOutput));
}

#[tokio::test]
async fn dummy_mode_refuses_files_ddl_dml_copy_explain_and_probing() {
    let ws = dummy();
    refused(&ws, "SELECT * FROM read_parquet('/etc/passwd')", UnknownName).await;
    refused(&ws, "SELECT * FROM read_csv('/etc/passwd')", UnknownName).await;
    refused(&ws, "SELECT * FROM '/etc/passwd'", UnknownName).await;
    refused(&ws, "SELECT * FROM 'https://example.org/x.csv'", UnknownName).await;
    refused(&ws, "CREATE EXTERNAL TABLE p (a VARCHAR) STORED AS CSV LOCATION '/etc/passwd'", na(Refusal::Ddl)).await;
    refused(&ws, "COPY (SELECT code FROM claim_lines) TO '/tmp/niji-dummy-exfil.csv'", na(Refusal::Copy)).await;
    refused(&ws, "COPY claim_lines TO '/tmp/niji-dummy-exfil.parquet' STORED AS PARQUET", na(Refusal::Copy)).await;
    assert!(!std::path::Path::new("/tmp/niji-dummy-exfil.csv").exists());
    assert!(!std::path::Path::new("/tmp/niji-dummy-exfil.parquet").exists());
    refused(&ws, "CREATE TABLE x AS SELECT code FROM claim_lines", na(Refusal::Ddl)).await;
    refused(&ws, "CREATE VIEW v AS SELECT code FROM claim_lines", na(Refusal::Ddl)).await;
    refused(&ws, "DROP TABLE x", na(Refusal::Ddl)).await;
    refused(&ws, "DROP TABLE claim_lines", na(Refusal::Ddl)).await;
    refused(&ws, "INSERT INTO claim_lines (code) VALUES ('X')", na(Refusal::Dml)).await;
    refused(&ws, "DELETE FROM claim_lines", na(Refusal::Dml)).await;
    refused(&ws, "SELECT code INTO t2 FROM claim_lines", na(Refusal::Ddl)).await;
    refused(&ws, "SET datafusion.execution.target_partitions = 1", na(Refusal::Statement)).await;
    refused(&ws, "SHOW TABLES", na(Refusal::Statement)).await;
    refused(&ws, "EXPLAIN SELECT * FROM claim_lines", na(Refusal::Explain)).await;
    refused(&ws, "EXPLAIN ANALYZE SELECT * FROM claim_lines", na(Refusal::Explain)).await;
    refused(&ws, "DESCRIBE claim_lines", na(Refusal::Explain)).await;
    refused(&ws, "SELECT * FROM information_schema.tables", UnknownName).await;
    refused(&ws, "SELECT * FROM datafusion.public.claim_lines", UnknownName).await;
    refused(&ws, "SELECT * FROM claim_lines; DROP TABLE claim_lines", Parse).await;
    // Not granted: a table, a column, the lake's person key.
    refused(&ws, "SELECT * FROM conditions", UnknownName).await;
    refused(&ws, "SELECT quantity FROM claim_lines", UnknownName).await;
    refused(&ws, "SELECT person_key FROM claim_lines", UnknownName).await;
    refused(&ws, "WITH RECURSIVE r(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM r) SELECT n FROM r", na(Refusal::RecursiveQuery)).await;
    // Linkage the permit does not allow.
    refused(&ws, "SELECT k.sex FROM kaigo_2024.claims k JOIN ndb_2024.patients p ON k.person_id = p.person_id", na(Refusal::Linkage)).await;
    // The tables are still there.
    assert_eq!(ws.run("SELECT * FROM claim_lines").await.unwrap().rows.len(), 8);
}

#[tokio::test]
async fn dummy_mode_keeps_limits_and_scrubbed_errors() {
    let ws = dummy_with(Limits { max_rows: 5, ..Limits::default() });
    refused(&ws, "SELECT * FROM claim_lines", na(Refusal::TooManyRows)).await;
    assert_eq!(ws.run("SELECT * FROM claim_lines LIMIT 5").await.unwrap().rows.len(), 5);
    let ws = dummy_with(Limits { max_sql_chars: 50, ..Limits::default() });
    refused(&ws, &format!("SELECT * FROM claim_lines WHERE code = '{}'", "x".repeat(100)), TooLong).await;
    // A cast that can fail is refused as on the real data (its error would quote the cell,
    // `Alice`, and whether it fails is a bit of the data); TRY_CAST runs.
    let ws = dummy();
    refused(&ws, "SELECT CAST(code AS INT) FROM claim_lines", na(Refusal::MayFail)).await;
    let out = ws.run("SELECT TRY_CAST(code AS INT) AS n FROM claim_lines").await.unwrap();
    assert!(out.rows.iter().all(|r| r[0].is_null()), "{:?}", out.rows);
}
