//! Datasets and their versions against a real SQLite file.

use niji_store::{NewDataset, Store, StoreError, VersionCommit, VersionProblemRow, VersionTableRow};

async fn store() -> (tempfile::TempDir, Store, i64) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open_sqlite(&dir.path().join("meta.sqlite")).await.unwrap();
    let holder = store.create_organization("Hospital A", "holder", 1).await.unwrap();
    (dir, store, holder)
}

fn new_dataset(name: &str, holder_id: i64) -> NewDataset<'_> {
    NewDataset { name, holder_id, kind: "ehr", title_ja: "電子カルテ", title_en: "EHR", description_ja: "説明", description_en: "Description" }
}

fn commit_of(version_id: i64) -> VersionCommit {
    VersionCommit {
        version_id,
        committed_at: 50,
        files: 2,
        records_accepted: 100,
        records_rejected: 3,
        warnings: 4,
        persons: 10,
        persons_shared: 5,
        link_records: 12,
        identifier_links: 9,
        name_links: 3,
        coverage_from: Some("2020-01-01".into()),
        coverage_to: Some("2023-12-31".into()),
        tables: vec![
            VersionTableRow { table_name: "visits".into(), rows: 60, persons: 10, coverage_from: Some("2020-01-01".into()), coverage_to: None },
            VersionTableRow { table_name: "persons".into(), rows: 10, persons: 10, coverage_from: None, coverage_to: None },
        ],
        problems: (1..=3)
            .map(|seq| VersionProblemRow {
                seq,
                severity: "error".into(),
                file: "visits.csv".into(),
                location: format!("line {}", seq + 1),
                field: "date".into(),
                reason: "not a date".into(),
            })
            .collect(),
    }
}

#[tokio::test]
async fn datasets_are_listed_by_name_and_a_duplicate_name_is_a_conflict() {
    let (_d, s, holder) = store().await;
    let b = s.create_dataset(&new_dataset("b-claims", holder), 5).await.unwrap();
    let a = s.create_dataset(&new_dataset("a-ehr", holder), 6).await.unwrap();
    let again = s.create_dataset(&new_dataset("a-ehr", holder), 7).await;
    assert!(matches!(again, Err(StoreError::Conflict { what: "dataset" })));
    let names: Vec<_> = s.datasets().await.unwrap().into_iter().map(|d| (d.id, d.name)).collect();
    assert_eq!(names, vec![(a, "a-ehr".to_string()), (b, "b-claims".to_string())]);
    let row = s.dataset_by_name("a-ehr").await.unwrap().unwrap();
    assert_eq!((row.holder_id, row.kind.as_str(), row.title_ja.as_str(), row.created_at), (holder, "ehr", "電子カルテ", 6));
    assert_eq!(s.dataset(a).await.unwrap(), Some(row));
    assert_eq!(s.dataset_by_name("nope").await.unwrap(), None);
    assert!(matches!(s.create_dataset(&new_dataset("c", 999), 1).await, Err(StoreError::NotFound { what: "organization" })));
}

#[tokio::test]
async fn versions_are_numbered_per_dataset() {
    let (_d, s, holder) = store().await;
    let a = s.create_dataset(&new_dataset("a", holder), 1).await.unwrap();
    let b = s.create_dataset(&new_dataset("b", holder), 1).await.unwrap();
    let (a1, n) = s.begin_dataset_version(a, "user:3", 10).await.unwrap();
    assert_eq!(n, 1);
    assert_eq!(s.begin_dataset_version(b, "user:3", 10).await.unwrap().1, 1);
    let (a2, n) = s.begin_dataset_version(a, "user:3", 11).await.unwrap();
    assert_eq!(n, 2);
    assert_ne!(a1, a2);
    assert!(matches!(s.begin_dataset_version(999, "user:3", 10).await, Err(StoreError::NotFound { what: "dataset" })));
}

#[tokio::test]
async fn a_commit_flips_the_state_and_stores_tables_and_problems() {
    let (_d, s, holder) = store().await;
    let a = s.create_dataset(&new_dataset("a", holder), 1).await.unwrap();
    let (v, _) = s.begin_dataset_version(a, "user:3", 10).await.unwrap();
    let commit = commit_of(v);
    s.commit_dataset_version(&commit).await.unwrap();

    let row = s.latest_dataset_version(a).await.unwrap().unwrap();
    assert_eq!((row.id, row.number, row.state.as_str(), row.submitted_by.as_str()), (v, 1, "committed", "user:3"));
    assert_eq!((row.created_at, row.committed_at), (10, Some(50)));
    assert_eq!((row.files, row.records_accepted, row.records_rejected, row.warnings, row.persons, row.persons_shared), (2, 100, 3, 4, 10, 5));
    assert_eq!((row.link_records, row.identifier_links, row.name_links), (12, 9, 3));
    assert_eq!((row.coverage_from.as_deref(), row.coverage_to.as_deref()), (Some("2020-01-01"), Some("2023-12-31")));
    assert_eq!(s.dataset_versions(a).await.unwrap(), vec![row]);

    let mut tables = commit.tables.clone();
    tables.sort_by(|x, y| x.table_name.cmp(&y.table_name));
    assert_eq!(s.dataset_version_tables(v).await.unwrap(), tables);
    assert_eq!(s.dataset_version_problems(v, 100).await.unwrap(), commit.problems);
    assert_eq!(s.dataset_version_problems(v, 2).await.unwrap(), commit.problems[..2]);
    assert!(s.writing_dataset_versions().await.unwrap().is_empty());
    assert_eq!(s.committed_dataset_tags().await.unwrap(), vec![("a".to_string(), 1)]);
}

#[tokio::test]
async fn a_writing_version_is_invisible_to_readers_and_listed_for_recovery() {
    let (_d, s, holder) = store().await;
    let a = s.create_dataset(&new_dataset("a", holder), 1).await.unwrap();
    let (v1, _) = s.begin_dataset_version(a, "user:3", 10).await.unwrap();
    s.commit_dataset_version(&commit_of(v1)).await.unwrap();
    let (v2, n2) = s.begin_dataset_version(a, "user:4", 20).await.unwrap();
    assert_eq!(n2, 2);

    assert_eq!(s.dataset_versions(a).await.unwrap().iter().map(|r| r.id).collect::<Vec<_>>(), vec![v1]);
    assert_eq!(s.latest_dataset_version(a).await.unwrap().unwrap().id, v1);
    assert_eq!(s.committed_dataset_tags().await.unwrap(), vec![("a".to_string(), 1)]);
    let writing = s.writing_dataset_versions().await.unwrap();
    assert_eq!(writing.len(), 1);
    assert_eq!((writing[0].id, writing[0].number, writing[0].state.as_str(), writing[0].committed_at), (v2, 2, "writing", None));

    let b = s.create_dataset(&new_dataset("b", holder), 1).await.unwrap();
    s.begin_dataset_version(b, "user:3", 30).await.unwrap();
    assert_eq!(s.latest_dataset_version(b).await.unwrap(), None);
    assert!(s.dataset_versions(b).await.unwrap().is_empty());
}

#[tokio::test]
async fn deleting_a_writing_version_removes_it_and_its_children() {
    let (_d, s, holder) = store().await;
    let a = s.create_dataset(&new_dataset("a", holder), 1).await.unwrap();
    let (v, _) = s.begin_dataset_version(a, "user:3", 10).await.unwrap();
    s.delete_dataset_version(v).await.unwrap();
    assert!(s.writing_dataset_versions().await.unwrap().is_empty());
    assert!(matches!(s.delete_dataset_version(v).await, Err(StoreError::NotFound { .. })));
    // Committing what recovery deleted fails and leaves nothing behind.
    assert!(matches!(s.commit_dataset_version(&commit_of(v)).await, Err(StoreError::NotFound { what: "writing dataset version" })));
    assert!(s.dataset_version_tables(v).await.unwrap().is_empty());
    assert!(s.dataset_version_problems(v, 100).await.unwrap().is_empty());
    // The number of a deleted version is given again.
    assert_eq!(s.begin_dataset_version(a, "user:3", 11).await.unwrap().1, 1);
}

#[tokio::test]
async fn a_failed_commit_leaves_the_version_writing_and_without_children() {
    let (_d, s, holder) = store().await;
    let a = s.create_dataset(&new_dataset("a", holder), 1).await.unwrap();
    let (v, _) = s.begin_dataset_version(a, "user:3", 10).await.unwrap();
    let mut bad = commit_of(v);
    bad.tables.push(bad.tables[0].clone());
    assert!(matches!(s.commit_dataset_version(&bad).await, Err(StoreError::Conflict { what: "dataset version table" })));
    assert_eq!(s.writing_dataset_versions().await.unwrap().len(), 1);
    assert!(s.dataset_versions(a).await.unwrap().is_empty());
    assert!(s.dataset_version_tables(v).await.unwrap().is_empty());
    assert!(s.dataset_version_problems(v, 100).await.unwrap().is_empty());
    s.commit_dataset_version(&commit_of(v)).await.unwrap();
}

#[tokio::test]
async fn deleting_a_writing_version_cascades_to_child_rows() {
    // Through the store, children are written only with the flip to 'committed'; put some
    // under a 'writing' version directly, as a half-done intake on another backend might.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("meta.sqlite");
    let s = Store::open_sqlite(&path).await.unwrap();
    let holder = s.create_organization("Hospital A", "holder", 1).await.unwrap();
    let a = s.create_dataset(&new_dataset("a", holder), 1).await.unwrap();
    let (v, _) = s.begin_dataset_version(a, "user:3", 10).await.unwrap();
    let options = sqlx::sqlite::SqliteConnectOptions::new().filename(&path).foreign_keys(true);
    let raw = sqlx::SqlitePool::connect_with(options).await.unwrap();
    sqlx::query("INSERT INTO dataset_version_tables (version_id, table_name, row_count, persons) VALUES ($1, 'visits', 1, 1)")
        .bind(v)
        .execute(&raw)
        .await
        .unwrap();
    sqlx::query(
        "INSERT INTO dataset_version_problems (version_id, seq, severity, file, location, field, reason) VALUES ($1, 1, 'e', 'f', 'l', 'd', 'r')",
    )
    .bind(v)
    .execute(&raw)
    .await
    .unwrap();
    assert_eq!(s.dataset_version_tables(v).await.unwrap().len(), 1);
    s.delete_dataset_version(v).await.unwrap();
    let left: i64 = sqlx::query_scalar(
        "SELECT (SELECT COUNT(*) FROM dataset_version_tables) + (SELECT COUNT(*) FROM dataset_version_problems) + (SELECT COUNT(*) FROM dataset_versions)",
    )
    .fetch_one(&raw)
    .await
    .unwrap();
    assert_eq!(left, 0);
}

#[tokio::test]
async fn a_committed_version_cannot_be_committed_again_or_deleted() {
    let (_d, s, holder) = store().await;
    let a = s.create_dataset(&new_dataset("a", holder), 1).await.unwrap();
    let (v, _) = s.begin_dataset_version(a, "user:3", 10).await.unwrap();
    s.commit_dataset_version(&commit_of(v)).await.unwrap();
    let mut again = commit_of(v);
    again.records_accepted = 1;
    again.tables.clear();
    again.problems.clear();
    assert!(matches!(s.commit_dataset_version(&again).await, Err(StoreError::NotFound { what: "writing dataset version" })));
    assert!(matches!(s.delete_dataset_version(v).await, Err(StoreError::NotFound { what: "writing dataset version" })));
    let row = s.latest_dataset_version(a).await.unwrap().unwrap();
    assert_eq!((row.id, row.records_accepted), (v, 100));
    assert_eq!(s.dataset_version_tables(v).await.unwrap().len(), 2);
    assert_eq!(s.dataset_version_problems(v, 100).await.unwrap().len(), 3);
    assert!(matches!(s.commit_dataset_version(&commit_of(999)).await, Err(StoreError::NotFound { .. })));
}
