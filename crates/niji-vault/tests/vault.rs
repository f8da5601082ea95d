//! The identity vault against real SQLite files in a temporary folder.

mod common;

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};

use niji_ingest::dates::Precision;
use niji_ingest::{Date, IdentifierKind, Identity, IdentityItem};
use niji_privacy::LinkBucket;
use niji_privacy::{link, LinkRecord, LinkageConfig, PersonKey, PriorKeys, Pseudonymizer, VaultKey};
use niji_testkit::plaintext::{scan_folder, truth_needles, Patterns};
use niji_vault::{LinkIndexUpdate, LinkMeta, NewIdentity, NewRegistryEntry, Vault, VaultError};

const SEALING: [u8; 32] = [7u8; 32];

fn vault_key() -> VaultKey {
    VaultKey::from_bytes(b"niji-vault test vault key, 32+ bytes long").unwrap()
}

fn path(dir: &Path) -> PathBuf {
    dir.join("vault").join("identities.sqlite")
}

async fn open(dir: &Path) -> Vault {
    std::fs::create_dir_all(dir.join("vault")).unwrap();
    Vault::open(&path(dir), &SEALING, &vault_key()).await.unwrap()
}

fn identity(items: &[(IdentifierKind, &str, &str)]) -> Identity {
    Identity { items: items.iter().map(|&(kind, field, value)| IdentityItem { kind, field: field.into(), value: value.into() }).collect() }
}

fn pk(b: u8) -> PersonKey {
    PersonKey([b; 32])
}

fn sample() -> Vec<(String, Identity, PersonKey)> {
    vec![
        (
            "ehr/Patient.ndjson:1".into(),
            identity(&[
                (IdentifierKind::NameKanji, "Patient.name[0]", "山田 太郎"),
                (IdentifierKind::NameKana, "Patient.name[1]", "ヤマダ タロウ"),
                (IdentifierKind::Phone, "Patient.telecom[0]", "03-1234-5678"),
            ]),
            pk(1),
        ),
        ("ehr/Patient.ndjson:2".into(), identity(&[(IdentifierKind::NameKanji, "Patient.name[0]", "佐藤 花子")]), pk(2)),
        ("ehr/Condition.ndjson:7".into(), identity(&[(IdentifierKind::FreeText, "Condition.note[0]", "夫の鈴木さんも通院中")]), pk(1)),
    ]
}

/// A vault file in `dir` with the migrations before `version` only, as an older release left it.
async fn vault_before(dir: &Path, version: i64) -> sqlx::SqlitePool {
    let file = path(dir);
    std::fs::create_dir_all(file.parent().unwrap()).unwrap();
    let options = sqlx::sqlite::SqliteConnectOptions::new().filename(&file).create_if_missing(true);
    let pool = sqlx::SqlitePool::connect_with(options).await.unwrap();
    migrations_before(version).run(&pool).await.unwrap();
    pool
}

/// The vault's migrations before `version`: what a release before it runs.
fn migrations_before(version: i64) -> sqlx::migrate::Migrator {
    let all = sqlx::migrate!("./migrations/sqlite");
    sqlx::migrate::Migrator { migrations: all.migrations.iter().filter(|m| m.version < version).cloned().collect::<Vec<_>>().into(), ..all }
}

/// Opens the vault file with a plain connection, to tamper with it as an attacker with the file
/// would.
async fn raw(dir: &Path) -> sqlx::SqlitePool {
    sqlx::SqlitePool::connect(&format!("sqlite://{}", path(dir).display())).await.unwrap()
}

/// The registry's file beside the vault's.
fn registry_file(dir: &Path) -> PathBuf {
    niji_vault::registry_path(&path(dir))
}

/// The same for the registry's file.
async fn raw_registry(dir: &Path) -> sqlx::SqlitePool {
    sqlx::SqlitePool::connect(&format!("sqlite://{}", registry_file(dir).display())).await.unwrap()
}

#[tokio::test]
async fn round_trip_counts_and_deletion() {
    let dir = tempfile::tempdir().unwrap();
    let vault = open(dir.path()).await;
    let anchors = vec![(pk(101), pk(1)), (pk(102), pk(2))];
    vault.store_batch("1310000001", "ehr-2024", &sample(), &anchors).await.unwrap();
    vault
        .store_batch(
            "insurer-1",
            "claims-2024",
            &[("claims.uke:4".into(), identity(&[(IdentifierKind::MemberId, "HO", "06131234:12:345:00")]), pk(1))],
            &[(pk(103), pk(1))],
        )
        .await
        .unwrap();

    let one = vault.identities_of(&pk(1)).await.unwrap();
    assert_eq!(one.len(), 3);
    assert_eq!(one[0].record_ref, "ehr/Patient.ndjson:1");
    assert_eq!(one[0].holder, "1310000001");
    assert_eq!(one[0].dataset, "ehr-2024");
    assert_eq!(one[0].identity.items, sample()[0].1.items);
    assert_eq!(one[1].identity.items, sample()[2].1.items);
    assert_eq!((one[2].dataset.as_str(), one[2].record_ref.as_str()), ("claims-2024", "claims.uke:4"));
    assert!(vault.identities_of(&pk(9)).await.unwrap().is_empty());
    assert_eq!(vault.person_count().await.unwrap(), 2);
    assert_eq!(vault.record_count("ehr-2024").await.unwrap(), 3);
    assert_eq!(vault.record_count("claims-2024").await.unwrap(), 1);
    let prior = vault.prior_keys().await.unwrap();
    assert_eq!(prior.len(), 3);
    assert_eq!(prior.get(&pk(102)), Some(&pk(2)));

    // Reopening with the same keys sees everything.
    vault.close().await;
    let vault = open(dir.path()).await;
    assert_eq!(vault.identities_of(&pk(2)).await.unwrap()[0].identity.items, sample()[1].1.items);

    // Deleting a dataset takes its records and anchors along, and nothing else.
    assert_eq!(vault.delete_dataset("ehr-2024").await.unwrap(), 3);
    assert_eq!(vault.record_count("ehr-2024").await.unwrap(), 0);
    assert_eq!(vault.person_count().await.unwrap(), 1);
    assert_eq!(vault.identities_of(&pk(1)).await.unwrap().len(), 1);
    let prior = vault.prior_keys().await.unwrap();
    assert_eq!(prior.len(), 1);
    assert_eq!(prior.get(&pk(103)), Some(&pk(1)));
    vault.close().await;
}

#[tokio::test]
async fn a_failed_batch_leaves_the_vault_unchanged() {
    let dir = tempfile::tempdir().unwrap();
    let vault = open(dir.path()).await;
    vault.store_batch("h", "ds", &sample()[..1], &[(pk(101), pk(1))]).await.unwrap();

    // A duplicate record reference in the middle of the batch (the first record is new).
    let mut batch = vec![("new:1".to_string(), identity(&[(IdentifierKind::NameKanji, "n", "田中 一郎")]), pk(5))];
    batch.push(sample()[0].clone());
    batch.push(("new:2".to_string(), identity(&[(IdentifierKind::NameKanji, "n", "田中 二郎")]), pk(6)));
    let err = vault.store_batch("h", "ds", &batch, &[(pk(105), pk(5)), (pk(101), pk(9))]).await.unwrap_err();
    assert!(matches!(err, VaultError::DuplicateRecord), "{err:?}");
    assert!(!err.to_string().contains("Patient"), "the error does not quote the reference");
    assert_eq!(vault.record_count("ds").await.unwrap(), 1);
    assert_eq!(vault.person_count().await.unwrap(), 1);
    assert!(vault.identities_of(&pk(5)).await.unwrap().is_empty());
    let prior = vault.prior_keys().await.unwrap();
    assert_eq!(prior.len(), 1);
    assert_eq!(prior.get(&pk(101)), Some(&pk(1)), "the anchor was not re-pointed");

    // Twice the same reference within one batch fails too; the same reference in another dataset is fine.
    let twice = vec![batch[0].clone(), batch[0].clone()];
    assert!(matches!(vault.store_batch("h", "ds", &twice, &[]).await, Err(VaultError::DuplicateRecord)));
    assert_eq!(vault.record_count("ds").await.unwrap(), 1);
    vault.store_batch("h", "ds2", &sample()[..1], &[]).await.unwrap();
    assert_eq!(vault.record_count("ds2").await.unwrap(), 1);
    vault.close().await;
}

#[tokio::test]
async fn wrong_keys_are_refused_with_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let vault = open(dir.path()).await;
    vault.store_batch("h", "ds", &sample(), &[]).await.unwrap();
    vault.close().await;

    let err = Vault::open(&path(dir.path()), &[8u8; 32], &vault_key()).await.unwrap_err();
    assert!(matches!(err, VaultError::WrongSealingKey), "{err:?}");
    assert_eq!(err.to_string(), "the vault was created with another sealing key");
    let err = Vault::open(&path(dir.path()), &SEALING, &VaultKey::from_bytes(&[3u8; 32]).unwrap()).await.unwrap_err();
    assert!(matches!(err, VaultError::WrongVaultKey), "{err:?}");

    // Even past the key check (the check row replaced by one made under the wrong key), the
    // sealed identities do not open under another sealing key.
    let other = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(other.path().join("vault")).unwrap();
    Vault::open(&path(other.path()), &[8u8; 32], &vault_key()).await.unwrap().close().await;
    let other_pool = raw(other.path()).await;
    let check: Vec<u8> = sqlx::query_scalar("SELECT sealing_check FROM vault_meta").fetch_one(&other_pool).await.unwrap();
    other_pool.close().await;
    let pool = raw(dir.path()).await;
    sqlx::query("UPDATE vault_meta SET sealing_check = $1").bind(check).execute(&pool).await.unwrap();
    pool.close().await;
    let wrong = Vault::open(&path(dir.path()), &[8u8; 32], &vault_key()).await.unwrap();
    let err = wrong.identities_of(&pk(1)).await.unwrap_err();
    assert!(matches!(err, VaultError::Tampered), "{err:?}");
    wrong.close().await;
}

#[tokio::test]
async fn a_sealed_blob_moved_to_another_row_fails_authentication() {
    let dir = tempfile::tempdir().unwrap();
    let vault = open(dir.path()).await;
    vault.store_batch("h", "ds", &sample(), &[]).await.unwrap();

    let pool = raw(dir.path()).await;
    // Person 2's blob into person 1's first row.
    let blob: Vec<u8> =
        sqlx::query_scalar("SELECT sealed FROM identity_records WHERE person_key = $1").bind(&pk(2).0[..]).fetch_one(&pool).await.unwrap();
    sqlx::query("UPDATE identity_records SET sealed = $1 WHERE id = (SELECT MIN(id) FROM identity_records WHERE person_key = $2)")
        .bind(&blob)
        .bind(&pk(1).0[..])
        .execute(&pool)
        .await
        .unwrap();
    assert!(matches!(vault.identities_of(&pk(1)).await, Err(VaultError::Tampered)));
    // A row re-pointed at another person (in the records, in the persons' index, or in both)
    // fails the same way; untouched rows still open.
    let repoint = |table: &'static str, from: u8, to: u8| {
        let pool = pool.clone();
        async move {
            sqlx::query(&format!("UPDATE {table} SET person_key = $1 WHERE person_key = $2"))
                .bind(&pk(to).0[..])
                .bind(&pk(from).0[..])
                .execute(&pool)
                .await
                .unwrap();
        }
    };
    repoint("identity_records", 2, 3).await;
    assert!(matches!(vault.identities_of(&pk(2)).await, Err(VaultError::Tampered)));
    repoint("person_records", 2, 3).await;
    assert!(matches!(vault.identities_of(&pk(3)).await, Err(VaultError::Tampered)));
    // A row moved to another dataset too.
    repoint("identity_records", 3, 2).await;
    repoint("person_records", 3, 2).await;
    assert_eq!(vault.identities_of(&pk(2)).await.unwrap().len(), 1);
    sqlx::query("UPDATE identity_records SET dataset = 'other' WHERE person_key = $1").bind(&pk(2).0[..]).execute(&pool).await.unwrap();
    assert!(matches!(vault.identities_of(&pk(2)).await, Err(VaultError::Tampered)));
    pool.close().await;
    vault.close().await;
}

fn new_identities(records: &[(String, Identity, PersonKey)], link: Option<LinkMeta>) -> Vec<NewIdentity<'_>> {
    records.iter().map(|(r, i, p)| NewIdentity { record_ref: r, identity: i, person: *p, link }).collect()
}

/// `n` records `prefix:0..n` of person `pk(person)`, each with its own name.
fn numbered(prefix: &str, n: usize, person: u8) -> Vec<(String, Identity, PersonKey)> {
    (0..n).map(|i| (format!("{prefix}:{i}"), identity(&[(IdentifierKind::NameKanji, "n", &format!("名前{i}"))]), pk(person))).collect()
}

#[tokio::test]
async fn a_streaming_batch_commits_every_add_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let vault = open(dir.path()).await;
    let chunks = [numbered("a", 3, 1), numbered("b", 4, 2), numbered("c", 2, 1)];
    let mut batch = vault.begin_batch("h", "ds").await.unwrap();
    for (i, chunk) in chunks.iter().enumerate() {
        let link = (i == 1).then_some(LinkMeta { observed: None });
        batch.add(&new_identities(chunk, link)).await.unwrap();
        // Readers do not see an uncommitted batch.
        assert_eq!(vault.record_count("ds").await.unwrap(), 0);
    }
    batch.add(&[]).await.unwrap();
    assert_eq!(batch.commit(&[(pk(101), pk(1)), (pk(102), pk(2))]).await.unwrap(), 9);

    assert_eq!(vault.record_count("ds").await.unwrap(), 9);
    assert_eq!(vault.datasets().await.unwrap(), vec![("ds".to_string(), 9)]);
    // A dataset with linkable records is counted by them: only person 2's chunk is.
    assert_eq!(vault.persons_in("ds").await.unwrap(), 1);
    let one = vault.identities_of(&pk(1)).await.unwrap();
    let refs: Vec<&str> = one.iter().map(|i| i.record_ref.as_str()).collect();
    assert_eq!(refs, ["a:0", "a:1", "a:2", "c:0", "c:1"]);
    assert_eq!(one[4].identity.items, chunks[2][1].1.items);
    assert_eq!(vault.identities_of(&pk(2)).await.unwrap().len(), 4);
    let prior = vault.prior_keys().await.unwrap();
    assert_eq!((prior.len(), prior.get(&pk(102))), (2, Some(&pk(2))));
    // Only the chunk added with link meta is linkable.
    let linkable = vault.link_records(&["ds".to_string()]).await.unwrap();
    assert_eq!(linkable.len(), 4);
    assert!(linkable.iter().all(|r| r.person == pk(2) && r.holder == "h" && r.observed.is_none()));

    // An empty batch commits nothing, and the vault takes more batches afterwards.
    assert_eq!(vault.begin_batch("h", "ds").await.unwrap().commit(&[]).await.unwrap(), 0);
    vault.store_batch("h", "ds", &numbered("d", 1, 3), &[]).await.unwrap();
    assert_eq!(vault.record_count("ds").await.unwrap(), 10);
    vault.close().await;
}

/// Anchors handed to a batch before its records (what the intake does after linkage) are
/// stored with the batch, the last of an anchor put twice standing; a batch dropped after them
/// stores none.
#[tokio::test]
async fn anchors_put_ahead_of_the_records_commit_with_the_batch() {
    let dir = tempfile::tempdir().unwrap();
    let vault = open(dir.path()).await;
    let mut batch = vault.begin_batch("h", "ds").await.unwrap();
    batch.put_anchors(&[(pk(101), pk(1)), (pk(102), pk(2))]).await.unwrap();
    batch.put_anchors(&[(pk(102), pk(3))]).await.unwrap();
    batch.add(&new_identities(&numbered("a", 2, 1), None)).await.unwrap();
    // Readers do not see them before the commit.
    assert!(vault.prior_keys().await.unwrap().is_empty());
    assert_eq!(batch.commit(&[]).await.unwrap(), 2);
    let prior = vault.prior_keys().await.unwrap();
    assert_eq!((prior.len(), prior.get(&pk(101)), prior.get(&pk(102))), (2, Some(&pk(1)), Some(&pk(3))));

    let mut dropped = vault.begin_batch("h", "other").await.unwrap();
    dropped.put_anchors(&[(pk(104), pk(4))]).await.unwrap();
    drop(dropped);
    assert_eq!(vault.prior_keys().await.unwrap().get(&pk(104)), None);
    vault.close().await;
}

#[tokio::test]
async fn a_dropped_batch_leaves_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let vault = open(dir.path()).await;
    vault.store_batch("h", "old", &sample(), &[(pk(101), pk(1))]).await.unwrap();

    let records = numbered("new", 5, 4);
    let mut batch = vault.begin_batch("h", "new").await.unwrap();
    batch.add(&new_identities(&records[..3], Some(LinkMeta { observed: None }))).await.unwrap();
    batch.add(&new_identities(&records[3..], None)).await.unwrap();
    drop(batch);

    assert_eq!(vault.record_count("new").await.unwrap(), 0);
    assert_eq!(vault.persons_in("new").await.unwrap(), 0);
    assert_eq!(vault.person_count().await.unwrap(), 2);
    assert!(vault.identities_of(&pk(4)).await.unwrap().is_empty());
    assert!(vault.link_records(&["new".to_string()]).await.unwrap().is_empty());
    assert_eq!(vault.datasets().await.unwrap(), vec![("old".to_string(), 3)]);
    let prior = vault.prior_keys().await.unwrap();
    assert_eq!((prior.len(), prior.get(&pk(101))), (1, Some(&pk(1))));

    // The write lock went with it: the same records store fine afterwards.
    let batch = {
        let mut b = vault.begin_batch("h", "new").await.unwrap();
        b.add(&new_identities(&records, None)).await.unwrap();
        b
    };
    assert_eq!(batch.commit(&[(pk(104), pk(4))]).await.unwrap(), 5);
    assert_eq!(vault.record_count("new").await.unwrap(), 5);
    assert_eq!(vault.prior_keys().await.unwrap().len(), 2);
    vault.close().await;
}

#[tokio::test]
async fn a_duplicate_anywhere_in_a_batch_fails_it_at_commit() {
    let dir = tempfile::tempdir().unwrap();
    let vault = open(dir.path()).await;
    vault.store_batch("h", "ds", &sample()[..1], &[(pk(101), pk(1))]).await.unwrap();

    // Within the batch: the second add repeats a reference of the first. References are
    // indexed when the batch commits (sorted), so the commit finds it.
    let records = numbered("r", 4, 5);
    let mut batch = vault.begin_batch("h", "ds").await.unwrap();
    batch.add(&new_identities(&records[..2], None)).await.unwrap();
    batch.add(&new_identities(&records[1..], Some(LinkMeta { observed: None }))).await.unwrap();
    let err = batch.commit(&[(pk(105), pk(5)), (pk(101), pk(9))]).await.unwrap_err();
    assert!(matches!(err, VaultError::DuplicateRecord), "{err:?}");
    assert!(!err.to_string().contains("r:1"), "the error does not quote the reference");
    assert_eq!(vault.record_count("ds").await.unwrap(), 1);
    assert!(vault.identities_of(&pk(5)).await.unwrap().is_empty());
    let prior = vault.prior_keys().await.unwrap();
    assert_eq!((prior.len(), prior.get(&pk(101))), (1, Some(&pk(1))), "the anchor was not re-pointed");

    // Against a record stored by an earlier batch.
    let mut batch = vault.begin_batch("h", "ds").await.unwrap();
    batch.add(&new_identities(&records, None)).await.unwrap();
    batch.add(&new_identities(&sample()[..1], None)).await.unwrap();
    assert!(matches!(batch.commit(&[]).await, Err(VaultError::DuplicateRecord)));
    assert_eq!(vault.record_count("ds").await.unwrap(), 1);
    assert_eq!(vault.person_count().await.unwrap(), 1);

    // A failed batch leaves no lock behind.
    vault.store_batch("h", "ds", &records, &[]).await.unwrap();
    assert_eq!(vault.record_count("ds").await.unwrap(), 5);
    vault.close().await;
}

#[tokio::test]
async fn link_records_read_past_one_page_in_stored_order() {
    let dir = tempfile::tempdir().unwrap();
    let vault = open(dir.path()).await;
    // More than one page (4096 rows) of link records, then another dataset's, some not linkable.
    let (a, b) = (numbered("a", 5000, 1), numbered("b", 3000, 2));
    let mut batch_a = vault.begin_batch("h", "a").await.unwrap();
    let link = Some(LinkMeta { observed: None });
    for chunk in a.chunks(1000) {
        batch_a.add(&new_identities(chunk, link)).await.unwrap();
    }
    batch_a.commit(&[]).await.unwrap();
    vault.store_batch("h", "b", &b[..1000], &[]).await.unwrap();
    let mut batch_b = vault.begin_batch("h", "b").await.unwrap();
    batch_b.add(&new_identities(&b[1000..], link)).await.unwrap();
    batch_b.commit(&[]).await.unwrap();

    let got = vault.link_records(&["b".to_string(), "a".to_string()]).await.unwrap();
    assert_eq!(got.len(), 7000);
    let expected = a.iter().chain(&b[1000..]);
    assert!(got.iter().zip(expected).all(|(g, (_, i, p))| g.person == *p && g.identity.items == i.items));
    assert_eq!(vault.link_records(&["b".to_string()]).await.unwrap().len(), 2000);
    assert_eq!(vault.datasets().await.unwrap(), vec![("a".to_string(), 5000), ("b".to_string(), 3000)]);
    vault.close().await;
}

fn month(year: u16, month: u8) -> Date {
    Date { precision: Precision::Month, ..Date::new(year, month, 1).unwrap() }
}

#[tokio::test]
async fn link_records_round_trip_only_linkable_records_of_the_requested_datasets() {
    let dir = tempfile::tempdir().unwrap();
    let vault = open(dir.path()).await;
    let ho = |n: &str| identity(&[(IdentifierKind::NameKanji, "RE", "山田 太郎"), (IdentifierKind::InsuredNumber, "HO", n)]);
    let claims = [
        ("c.uke:1".to_string(), ho("1234"), pk(1)),
        ("c.uke:2".to_string(), ho("5678"), pk(2)),
        ("c.uke:3".to_string(), ho("9012"), pk(1)),
        ("c.uke:4".to_string(), ho("3456"), pk(3)),
    ];
    let observed = [
        Some(month(2024, 4)),
        Some(Date::new(2023, 12, 31).unwrap()),
        None,
        Some(Date { precision: Precision::Year, ..Date::new(2022, 1, 1).unwrap() }),
    ];
    let mut batch = vault.begin_batch("insurer-1", "claims").await.unwrap();
    for ((r, i, p), o) in claims.iter().zip(observed) {
        batch.add(&[NewIdentity { record_ref: r, identity: i, person: *p, link: Some(LinkMeta { observed: o }) }]).await.unwrap();
    }
    // Not linkable (a Condition's free text), in the same dataset.
    batch.add(&new_identities(&sample()[2..], None)).await.unwrap();
    assert_eq!(batch.commit(&[]).await.unwrap(), 5);
    let mut batch = vault.begin_batch("1310000001", "ehr").await.unwrap();
    batch.add(&new_identities(&sample()[..2], Some(LinkMeta { observed: None }))).await.unwrap();
    batch.commit(&[]).await.unwrap();
    let mut batch = vault.begin_batch("registry", "not-asked").await.unwrap();
    batch.add(&new_identities(&numbered("x", 2, 7), Some(LinkMeta { observed: Some(month(2020, 1)) }))).await.unwrap();
    batch.commit(&[]).await.unwrap();

    let got = vault.link_records(&["ehr".to_string(), "claims".to_string()]).await.unwrap();
    assert_eq!(got.len(), 6);
    for (g, ((_, i, p), o)) in got[..4].iter().zip(claims.iter().zip(observed)) {
        assert_eq!((g.holder.as_str(), g.dataset.as_str()), ("insurer-1", "claims"));
        assert_eq!((g.person, g.observed), (*p, o));
        assert_eq!(g.identity.items, i.items);
    }
    assert_eq!(got[1].observed.unwrap().precision, Precision::Day);
    assert_eq!(got[0].observed.unwrap().precision, Precision::Month);
    for (g, (_, i, p)) in got[4..].iter().zip(&sample()[..2]) {
        assert_eq!((g.holder.as_str(), g.dataset.as_str(), g.person, g.observed), ("1310000001", "ehr", *p, None));
        assert_eq!(g.identity.items, i.items);
    }
    assert_eq!(vault.link_records(&["ehr".to_string()]).await.unwrap().len(), 2);
    assert!(vault.link_records(&[]).await.unwrap().is_empty());
    assert!(vault.link_records(&["nothing".to_string()]).await.unwrap().is_empty());
    // The records read back through `identities_of` as before.
    assert_eq!(vault.identities_of(&pk(1)).await.unwrap().len(), 4);
    let records = vault.link_records(&["not-asked".to_string()]).await.unwrap();
    assert_eq!(records.iter().map(|r| r.observed).collect::<Vec<_>>(), [Some(month(2020, 1)); 2]);

    // A date that would not read back as itself is refused, and fails the batch.
    let mut batch = vault.begin_batch("h", "bad").await.unwrap();
    let odd = Date { precision: Precision::Month, ..Date::new(2024, 4, 15).unwrap() };
    let err = batch.add(&new_identities(&numbered("y", 1, 8), Some(LinkMeta { observed: Some(odd) }))).await.unwrap_err();
    assert!(matches!(err, VaultError::Invalid(_)), "{err:?}");
    assert!(matches!(batch.commit(&[]).await, Err(VaultError::BatchFailed)));

    // The flag and the date are bound to the sealed blob: altering either fails authentication.
    let pool = raw(dir.path()).await;
    sqlx::query("UPDATE identity_records SET observed = '2019-01' WHERE dataset = 'not-asked'").execute(&pool).await.unwrap();
    assert!(matches!(vault.link_records(&["not-asked".to_string()]).await, Err(VaultError::Tampered)));
    assert!(matches!(vault.identities_of(&pk(7)).await, Err(VaultError::Tampered)));
    sqlx::query("UPDATE identity_records SET linkable = FALSE WHERE dataset = 'ehr'").execute(&pool).await.unwrap();
    assert!(matches!(vault.identities_of(&pk(2)).await, Err(VaultError::Tampered)));
    sqlx::query("UPDATE identity_records SET linkable = TRUE WHERE dataset = 'claims' AND observed IS NULL AND linkable = FALSE")
        .execute(&pool)
        .await
        .unwrap();
    assert!(matches!(vault.link_records(&["claims".to_string()]).await, Err(VaultError::Tampered)));
    pool.close().await;
    vault.close().await;
}

#[tokio::test]
async fn persons_in_and_shared_count_distinct_person_keys() {
    let dir = tempfile::tempdir().unwrap();
    let vault = open(dir.path()).await;
    // Dataset a: persons 1 (twice) and 2; dataset b: persons 2 and 3. Person 2 is shared.
    // Persons are counted by their linkable records (the intake stores one per distinct
    // identity): person 1's second record in a is not linkable.
    let (a1, a1_again, a2) = (numbered("a", 1, 1), numbered("a-again", 1, 1), numbered("a2", 1, 2));
    let mut b = numbered("b", 1, 2);
    b.extend(numbered("b3", 2, 3));
    let mut batch = vault.begin_batch("h", "a").await.unwrap();
    batch.add(&new_identities(&a1, Some(LinkMeta { observed: None }))).await.unwrap();
    batch.add(&new_identities(&a1_again, None)).await.unwrap();
    batch.add(&new_identities(&a2, Some(LinkMeta { observed: None }))).await.unwrap();
    batch.commit(&[]).await.unwrap();
    let mut batch = vault.begin_batch("h2", "b").await.unwrap();
    batch.add(&new_identities(&b, Some(LinkMeta { observed: None }))).await.unwrap();
    batch.commit(&[]).await.unwrap();
    let s = |v: &[&str]| v.iter().map(|d| d.to_string()).collect::<Vec<_>>();
    // A dataset without linkable records (stored before the intake marked them, or by
    // `store_batch`) is counted by all its records: persons 4 and 2.
    let mut unlinked = numbered("u", 2, 4);
    unlinked.extend(numbered("u2", 1, 2));
    vault.store_batch("h", "unlinked", &unlinked, &[]).await.unwrap();
    assert_eq!(vault.persons_in("unlinked").await.unwrap(), 2);
    assert_eq!(vault.persons_shared("unlinked", &s(&["a"])).await.unwrap(), 1);
    assert_eq!(vault.persons_shared("a", &s(&["unlinked", "c"])).await.unwrap(), 1);
    assert_eq!(vault.persons_shared("b", &s(&["unlinked", "a"])).await.unwrap(), 1);
    let counts = vault.count_in_datasets(&s(&["a", "unlinked", "b"]), &[pk(2), pk(4), pk(1)]).await.unwrap();
    assert_eq!((counts["a"], counts["unlinked"], counts["b"]), (2, 2, 1));

    assert_eq!(vault.person_count().await.unwrap(), 4);
    assert_eq!((vault.persons_in("a").await.unwrap(), vault.persons_in("b").await.unwrap()), (2, 2));
    assert_eq!(vault.persons_in("c").await.unwrap(), 0);
    assert_eq!(vault.persons_shared("a", &s(&["b"])).await.unwrap(), 1);
    assert_eq!(vault.persons_shared("b", &s(&["a"])).await.unwrap(), 1);
    assert_eq!(vault.persons_shared("a", &s(&["b", "c"])).await.unwrap(), 1);
    assert_eq!(vault.persons_shared("a", &[]).await.unwrap(), 0);
    assert_eq!(vault.persons_shared("a", &s(&["c"])).await.unwrap(), 0);
    assert_eq!(vault.persons_shared("c", &s(&["a", "b"])).await.unwrap(), 0);
    assert_eq!(vault.persons_shared("a", &s(&["a"])).await.unwrap(), 2, "a dataset shares all its persons with itself");
    assert_eq!(vault.datasets().await.unwrap(), vec![("a".to_string(), 3), ("b".to_string(), 3), ("unlinked".to_string(), 3)]);
    vault.delete_dataset("b").await.unwrap();
    assert_eq!(vault.persons_shared("a", &s(&["b"])).await.unwrap(), 0);
    assert_eq!(vault.datasets().await.unwrap(), vec![("a".to_string(), 3), ("unlinked".to_string(), 3)]);
    vault.close().await;
}

fn pseudonymizer() -> Pseudonymizer {
    Pseudonymizer::new(&vault_key())
}

/// Stores one linkage run as one dataset: one batch per holder, streamed in chunks, every record
/// linkable. Returns the indices of `recs` in the order stored.
async fn store_run(vault: &Vault, dataset: &str, recs: &[common::Rec], keys: &[PersonKey], anchors: &[(PersonKey, PersonKey)]) -> Vec<usize> {
    let mut holders: Vec<&str> = recs.iter().map(|r| r.link.holder.as_str()).collect();
    holders.sort();
    holders.dedup();
    let mut order = Vec::new();
    for holder in holders {
        let mine: Vec<usize> = (0..recs.len()).filter(|&i| recs[i].link.holder == holder).collect();
        let mut batch = vault.begin_batch(holder, dataset).await.unwrap();
        for chunk in mine.chunks(97) {
            let chunk: Vec<NewIdentity<'_>> = chunk
                .iter()
                .map(|&i| NewIdentity {
                    record_ref: &recs[i].record_ref,
                    identity: &recs[i].link.identity,
                    person: keys[i],
                    link: Some(LinkMeta { observed: recs[i].link.observed }),
                })
                .collect();
            batch.add(&chunk).await.unwrap();
        }
        assert_eq!(batch.commit(anchors).await.unwrap(), mine.len() as u64);
        order.extend(mine);
    }
    order
}

#[tokio::test]
async fn person_keys_stay_stable_across_two_ingests() {
    let dir = tempfile::tempdir().unwrap();
    let synth = dir.path().join("synth");
    common::generate(&synth, 400);
    let recs = common::ingest(&synth);
    let half = recs.len() / 2;
    let (first, rest) = recs.split_at(half);
    let config = LinkageConfig::default();

    let vault = open(dir.path()).await;
    let links = |r: &[common::Rec]| r.iter().map(|r| r.link.clone()).collect::<Vec<_>>();
    let run1 = link(&links(first), &config, &pseudonymizer(), &PriorKeys::default());
    let order = store_run(&vault, "first", first, &run1.keys.to_vec(), &run1.anchors).await;
    vault.close().await;

    // Later: the vault gives back the anchors, and only the new records are linked.
    let vault = open(dir.path()).await;
    let prior = vault.prior_keys().await.unwrap();
    let anchors: HashSet<PersonKey> = run1.anchors.iter().map(|a| a.0).collect();
    assert_eq!(prior.len(), anchors.len());
    assert!(run1.anchors.iter().all(|(a, p)| prior.get(a) == Some(p)));
    let run2 = link(&links(rest), &config, &pseudonymizer(), &prior);

    // The intake's way: the stored link records come back and are linked again together with
    // the new ones; they keep their person keys.
    let stored = vault.link_records(&["first".to_string()]).await.unwrap();
    assert_eq!(stored.len(), first.len());
    assert!(stored.iter().zip(&order).all(|(s, &i)| s.holder == first[i].link.holder
        && s.observed == first[i].link.observed
        && s.identity.items == first[i].link.identity.items
        && s.person == run1.keys[i]));
    assert!(stored.iter().any(|s| s.observed.is_some()), "claims carry their month");
    let mut again: Vec<LinkRecord> =
        stored.iter().map(|s| LinkRecord { holder: s.holder.clone(), observed: s.observed, identity: s.identity.clone() }).collect();
    again.extend(links(rest));
    let relinked = link(&again, &config, &pseudonymizer(), &prior);
    let kept = stored.iter().zip(relinked.keys.iter()).filter(|(s, k)| s.person == **k).count();
    println!("{kept} of {} re-linked stored records kept their person key", stored.len());
    assert!(kept as f64 >= 0.99 * stored.len() as f64, "{kept} of {}", stored.len());
    let same_new = relinked.keys.iter().skip(stored.len()).zip(run2.keys.iter()).filter(|(a, b)| a == b).count();
    assert!(same_new as f64 >= 0.99 * rest.len() as f64, "{same_new} of {}", rest.len());

    store_run(&vault, "rest", rest, &run2.keys.to_vec(), &run2.anchors).await;
    assert_eq!(vault.persons_shared("rest", &["first".to_string()]).await.unwrap(), {
        let first_keys: HashSet<PersonKey> = run1.keys.iter().copied().collect();
        run2.keys.iter().filter(|k| first_keys.contains(k)).collect::<HashSet<_>>().len() as u64
    });

    // Persons with records in both halves: the new records got the key of the first run.
    let mut first_key: HashMap<u64, PersonKey> = HashMap::new();
    for (r, k) in first.iter().zip(&run1.keys) {
        first_key.entry(r.person).or_insert(*k);
    }
    let (mut spanning, mut same) = (0usize, 0usize);
    for (r, k) in rest.iter().zip(&run2.keys) {
        if let Some(k1) = first_key.get(&r.person) {
            spanning += 1;
            same += usize::from(k1 == k);
        }
    }
    println!("{same} of {spanning} later records of earlier persons kept their person key");
    assert!(spanning > 100, "the split leaves persons on both sides ({spanning})");
    assert!(same as f64 >= 0.99 * spanning as f64, "{same} of {spanning}");

    // Without the prior keys the keys are still deterministic, but the vault's anchors are what
    // makes a person's identities come back together.
    let truth_persons: HashSet<u64> = recs.iter().map(|r| r.person).collect();
    let persons = vault.person_count().await.unwrap();
    println!("{persons} person keys for {} true persons", truth_persons.len());
    assert!(persons as f64 <= truth_persons.len() as f64 * 1.01 && persons as f64 >= truth_persons.len() as f64 * 0.99);
    let (r, k) = rest.iter().zip(&run2.keys).find(|(r, _)| first_key.contains_key(&r.person)).unwrap();
    let ids = vault.identities_of(k).await.unwrap();
    assert!(ids.iter().any(|i| i.dataset == "first") && ids.iter().any(|i| i.dataset == "rest" && i.record_ref == r.record_ref));
    assert_eq!(vault.record_count("first").await.unwrap() + vault.record_count("rest").await.unwrap(), recs.len() as u64);
    vault.close().await;
}

/// Scans the vault folder for the patterns; the number of files read.
fn scan_vault_folder(dir: &Path, patterns: &Patterns) -> usize {
    scan_folder(&dir.join("vault"), patterns).files
}

#[tokio::test]
async fn no_identifying_value_in_the_raw_bytes_of_the_vault_files() {
    let dir = tempfile::tempdir().unwrap();
    let synth = dir.path().join("synth");
    common::generate(&synth, 300);
    let recs = common::ingest(&synth);
    let pats = Patterns::new(&truth_needles(&synth));

    // The test means something: the identities stored do hold the ground truth's values.
    let mut plain = Vec::new();
    for r in &recs {
        for i in &r.link.identity.items {
            plain.extend_from_slice(i.value.as_bytes());
            plain.push(0);
            plain.extend_from_slice(&encoding_rs::SHIFT_JIS.encode(&i.value).0);
            plain.push(0);
        }
    }
    let present = pats.find(&plain).len();
    assert!(present > 1_000, "only {present} ground-truth values in the stored identities");

    let vault = open(dir.path()).await;
    let records: Vec<_> = recs.iter().map(|r| r.link.clone()).collect();
    let linkage = link(&records, &LinkageConfig::default(), &pseudonymizer(), &PriorKeys::default());
    // Every other holder through `store_batch`, the rest streamed through a `VaultBatch` as
    // linkable records with their claim month.
    let mut by_holder: HashMap<&str, Vec<(&common::Rec, PersonKey)>> = HashMap::new();
    for (r, k) in recs.iter().zip(&linkage.keys) {
        by_holder.entry(r.link.holder.as_str()).or_default().push((r, *k));
    }
    let mut holders: Vec<_> = by_holder.into_iter().collect();
    holders.sort_by_key(|h| h.0);
    let mut linkable = 0;
    for (n, (holder, recs)) in holders.iter().enumerate() {
        let dataset = format!("{holder}/2024");
        if n % 2 == 0 {
            let batch: Vec<(String, Identity, PersonKey)> = recs.iter().map(|(r, k)| (r.record_ref.clone(), r.link.identity.clone(), *k)).collect();
            vault.store_batch(holder, &dataset, &batch, &linkage.anchors).await.unwrap();
        } else {
            let mut batch = vault.begin_batch(holder, &dataset).await.unwrap();
            for chunk in recs.chunks(50) {
                let chunk: Vec<NewIdentity<'_>> = chunk
                    .iter()
                    .map(|(r, k)| NewIdentity {
                        record_ref: &r.record_ref,
                        identity: &r.link.identity,
                        person: *k,
                        link: Some(LinkMeta { observed: r.link.observed }),
                    })
                    .collect();
                batch.add(&chunk).await.unwrap();
            }
            linkable += batch.commit(&linkage.anchors).await.unwrap();
        }
    }
    assert!(linkable > 0 && linkable < recs.len() as u64, "{linkable} of {} records linkable", recs.len());
    let datasets: Vec<String> = vault.datasets().await.unwrap().into_iter().map(|d| d.0).collect();
    assert_eq!(vault.link_records(&datasets).await.unwrap().len() as u64, linkable);
    assert!(!vault.identities_of(&linkage.keys[0]).await.unwrap().is_empty());

    // While open (content still in the WAL) and after closing (checkpointed into the file).
    let wal = PathBuf::from(format!("{}-wal", path(dir.path()).display()));
    let wal_open = std::fs::metadata(&wal).map(|m| m.len()).unwrap_or(0);
    assert!(wal_open > 0, "the batches are in the WAL while the vault is open");
    assert!(common::all_files(&dir.path().join("vault")).contains(&wal), "the -wal file is listed for the scan");
    let open_files = scan_vault_folder(dir.path(), &pats);
    assert!(open_files >= 2, "the -wal file is there while open ({open_files} files)");
    vault.close().await;
    let wal_closed = std::fs::metadata(&wal).map(|m| m.len()).unwrap_or(0);
    assert_eq!(wal_closed, 0, "closing checkpoints the WAL into the database file");
    let closed_files = scan_vault_folder(dir.path(), &pats);
    assert!(closed_files >= 1);
    let size = std::fs::metadata(path(dir.path())).unwrap().len();
    println!("WAL {wal_open} bytes while open; scanned {open_files} files while open and {closed_files} after closing; database {size} bytes; {present} values present in the input");
}

#[tokio::test]
async fn registry_entries_are_append_only_sealed_and_bound_to_their_person() {
    let dir = tempfile::tempdir().unwrap();
    let vault = open(dir.path()).await;
    let body = br#"{"choice":{"type":"consent","scope":{"diseases":["C50"]}}}"#;
    let new = |p: u8, decisive: bool| NewRegistryEntry { person: pk(p), recorded_at: 1_000 + p as i64, decisive, body };
    let ids = vault.append_registry_entries(&[new(1, true), new(2, false)]).await.unwrap();
    assert_eq!(vault.registry_version().await.unwrap(), ids[1]);
    assert_eq!(vault.registry_entries_of(&pk(1), ids[1]).await.unwrap()[0].body, body);
    // Runs read only the decisive entries; a version bounds what is read.
    let decisive = vault.decisive_registry_entries(ids[1]).await.unwrap();
    assert_eq!(decisive.iter().map(|e| e.id).collect::<Vec<_>>(), [ids[0]]);
    assert!(vault.decisive_registry_entries(ids[0] - 1).await.unwrap().is_empty());
    vault.close().await;

    let pool = raw_registry(dir.path()).await;
    // The body is sealed: the disease code is not in the file.
    let sealed: Vec<u8> = sqlx::query_scalar("SELECT sealed FROM registry_entries WHERE id = $1").bind(ids[0]).fetch_one(&pool).await.unwrap();
    assert!(!sealed.windows(3).any(|w| w == b"C50"));
    // Nothing is changed or deleted, whoever asks.
    for sql in ["UPDATE registry_entries SET decisive = 0", "DELETE FROM registry_entries", "UPDATE registry_entries SET person_key = zeroblob(32)"] {
        assert!(sqlx::query(sql).execute(&pool).await.is_err(), "{sql}");
    }
    pool.close().await;
    // An entry moved to another person (bypassing the trigger) no longer opens.
    let pool = raw_registry(dir.path()).await;
    sqlx::query("DROP TRIGGER registry_entries_never_updated").execute(&pool).await.unwrap();
    sqlx::query("UPDATE registry_entries SET person_key = $1 WHERE id = $2").bind(&pk(3).0[..]).bind(ids[0]).execute(&pool).await.unwrap();
    pool.close().await;
    let vault = open(dir.path()).await;
    assert!(matches!(vault.registry_entries_of(&pk(3), ids[1]).await, Err(VaultError::Tampered)));
    vault.close().await;
}

/// A person key from a number (more persons than a byte names, to span several query chunks).
fn pk_n(n: u32) -> PersonKey {
    let mut key = [0u8; 32];
    key[..4].copy_from_slice(&n.to_be_bytes());
    key[31] = 0xA5;
    PersonKey(key)
}

#[tokio::test]
async fn count_in_datasets_equals_counting_person_by_person() {
    let dir = tempfile::tempdir().unwrap();
    let vault = open(dir.path()).await;
    // 1,500 persons over four datasets (a deterministic pseudo-random membership, some persons
    // with several records in a dataset, some in none), so counts span several chunks.
    let datasets = ["ds-a@1", "ds-a@2", "ds-b@1", "ds-c@1"];
    let persons: Vec<PersonKey> = (0..1_500).map(pk_n).collect();
    let mut state = 0x2545_f491_4f6c_dd1du64;
    let mut next = || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let mut membership: HashMap<&str, Vec<PersonKey>> = HashMap::new();
    for (d, dataset) in datasets.iter().enumerate() {
        let mut records = Vec::new();
        for (i, person) in persons.iter().enumerate() {
            let r = next();
            if r % (d as u64 + 2) != 0 {
                continue;
            }
            let copies = 1 + (r >> 8) % 2;
            for c in 0..copies {
                records.push((format!("{dataset}:{i}:{c}"), identity(&[(IdentifierKind::NameKanji, "n", "名")]), *person));
            }
            membership.entry(dataset).or_default().push(*person);
        }
        // As the intake stores them: each person's first record linkable, the copies not.
        let (first, copies): (Vec<_>, Vec<_>) = records.into_iter().partition(|(r, _, _)| r.ends_with(":0"));
        let mut batch = vault.begin_batch("h", dataset).await.unwrap();
        batch.add(&new_identities(&first, Some(LinkMeta { observed: None }))).await.unwrap();
        batch.add(&new_identities(&copies, None)).await.unwrap();
        batch.commit(&[]).await.unwrap();
    }
    // The reference: each person's datasets, one person at a time.
    let mut datasets_of = HashMap::new();
    for person in &persons {
        datasets_of.insert(person.0, vault.datasets_of(person).await.unwrap());
    }
    let one_by_one = |asked: &[PersonKey], dataset: &str| -> u64 {
        let unique: HashSet<[u8; 32]> = asked.iter().map(|p| p.0).collect();
        unique.iter().filter(|p| datasets_of.get(*p).is_some_and(|ds| ds.iter().any(|d| d == dataset))).count() as u64
    };
    let all: Vec<String> = datasets.iter().map(|d| d.to_string()).chain(["absent@1".to_string()]).collect();
    let strangers: Vec<PersonKey> = (10_000..10_050).map(pk_n).collect();
    let cases: Vec<(&str, Vec<PersonKey>, Vec<String>)> = vec![
        ("everyone, every dataset", persons.clone(), all.clone()),
        ("every third person", persons.iter().step_by(3).copied().collect(), all.clone()),
        ("one chunk", persons[..150].to_vec(), all[..2].to_vec()),
        ("duplicates and strangers", persons[..900].iter().chain(&persons[400..1_200]).chain(&strangers).copied().collect(), all.clone()),
        ("strangers only", strangers.clone(), all.clone()),
        ("one person", vec![persons[7]], vec![all[3].clone(), all[0].clone()]),
        ("nobody", vec![], all.clone()),
        ("no dataset", persons.clone(), vec![]),
    ];
    for (name, asked, wanted) in cases {
        let counts = vault.count_in_datasets(&wanted, &asked).await.unwrap();
        let expected: HashMap<String, u64> = wanted.iter().map(|d| (d.clone(), one_by_one(&asked, d))).collect();
        assert_eq!(counts, expected, "{name}");
    }
    // Sanity: the reference itself agrees with what was stored.
    for dataset in datasets {
        assert_eq!(one_by_one(&persons, dataset), membership[dataset].len() as u64);
        assert_eq!(vault.persons_in(dataset).await.unwrap(), membership[dataset].len() as u64);
    }
    vault.close().await;
}

/// A vault written before migration 0005 (a UNIQUE reference index and a person index on the
/// records) moves its references and persons to the sorted tables: counts, lookups by person,
/// the duplicate rule and deletion work on it as on a new one.
#[tokio::test]
async fn records_stored_before_the_sorted_lookups_keep_their_references_and_persons() {
    let dir = tempfile::tempdir().unwrap();
    let pool = vault_before(dir.path(), 5).await;
    for (i, person) in [1u8, 1, 2].into_iter().enumerate() {
        sqlx::query(
            "INSERT INTO identity_records (person_key, holder, dataset, record_hash, sealed, linkable) VALUES ($1, 'h', 'old', $2, x'00', $3)",
        )
        .bind(&pk(person).0[..])
        .bind(&pk(50 + i as u8).0[..])
        .bind(i == 0)
        .execute(&pool)
        .await
        .unwrap();
    }
    pool.close().await;

    let vault = open(dir.path()).await;
    let pool = raw(dir.path()).await;
    let count = |sql: &'static str| {
        let pool = pool.clone();
        async move { sqlx::query_scalar::<_, i64>(sql).fetch_one(&pool).await.unwrap() }
    };
    assert_eq!(count("SELECT COUNT(*) FROM record_refs WHERE dataset = 'old'").await, 3);
    assert_eq!(count("SELECT COUNT(*) FROM person_records").await, 3);
    assert_eq!(vault.person_count().await.unwrap(), 2);
    assert_eq!(vault.record_count("old").await.unwrap(), 3);
    assert_eq!(vault.persons_in("old").await.unwrap(), 1, "counted by its linkable record");
    assert_eq!(vault.datasets_of(&pk(1)).await.unwrap(), vec!["old".to_string()]);
    // The reference index still refuses a second copy of a stored reference.
    let again = sqlx::query("INSERT INTO record_refs (dataset, record_hash) VALUES ('old', $1)").bind(&pk(51).0[..]).execute(&pool).await;
    assert!(again.is_err());
    // New records beside the old ones, then the old dataset deleted from all three tables.
    vault.store_batch("h", "new", &sample(), &[]).await.unwrap();
    assert_eq!(vault.identities_of(&pk(2)).await.unwrap_err().to_string(), VaultError::Tampered.to_string(), "the old blob is no seal");
    assert_eq!(vault.delete_dataset("old").await.unwrap(), 3);
    assert_eq!(count("SELECT COUNT(*) FROM record_refs WHERE dataset = 'old'").await, 0);
    assert_eq!(count("SELECT COUNT(*) FROM person_records p JOIN identity_records r ON r.id = p.id WHERE r.dataset = 'old'").await, 0);
    assert_eq!(count("SELECT COUNT(*) FROM person_records").await, count("SELECT COUNT(*) FROM identity_records").await);
    assert_eq!(vault.identities_of(&pk(2)).await.unwrap().len(), 1);
    vault.close().await;
}

/// References and persons are indexed in sorted runs while a batch is fed: a reference repeated
/// in a later run fails the batch there; every record of a batch of several runs is found by
/// its person.
#[tokio::test]
async fn records_are_indexed_in_runs_and_a_repeat_across_runs_fails_the_batch() {
    let dir = tempfile::tempdir().unwrap();
    let vault = open(dir.path()).await;
    let records = numbered("r", 10, 11);
    let mut batch = vault.begin_batch("h", "ds").await.unwrap().with_sorted_run(3);
    for part in records.chunks(4) {
        batch.add(&new_identities(part, None)).await.unwrap();
    }
    assert_eq!(batch.commit(&[]).await.unwrap(), 10);
    let pool = raw(dir.path()).await;
    let indexed: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM person_records").fetch_one(&pool).await.unwrap();
    assert_eq!(indexed, 10);
    assert_eq!(vault.identities_of(&pk(11)).await.unwrap().len(), 10);

    let more = numbered("s", 6, 30);
    let mut batch = vault.begin_batch("h", "ds").await.unwrap().with_sorted_run(3);
    batch.add(&new_identities(&more[..4], None)).await.unwrap();
    // The second run repeats a record of the first.
    let err = batch.add(&new_identities(&more[1..2], None)).await;
    let err = match err {
        Err(e) => e,
        Ok(()) => batch.add(&new_identities(&more[4..], None)).await.unwrap_err(),
    };
    assert!(matches!(err, VaultError::DuplicateRecord), "{err:?}");
    assert_eq!(vault.record_count("ds").await.unwrap(), 10);
    let indexed: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM person_records").fetch_one(&pool).await.unwrap();
    assert_eq!(indexed, 10, "nothing of the failed batch stays");
    vault.close().await;
}

/// A conflict ends SQLite's transaction by itself (OR ROLLBACK); the pool's connection must still
/// come back ready for the next transaction. Failed batches, reads and stores alternate past
/// every connection of the pool, and each store is on disk after reopening.
#[tokio::test]
async fn a_batch_failed_by_a_conflict_leaves_its_connection_usable() {
    let dir = tempfile::tempdir().unwrap();
    let vault = open(dir.path()).await;
    vault.store_batch("h", "ds", &sample()[..1], &[]).await.unwrap();
    for round in 0..6u8 {
        let twice = vec![sample()[0].clone()];
        assert!(matches!(vault.store_batch("h", "ds", &twice, &[]).await, Err(VaultError::DuplicateRecord)));
        // Whichever connection failed reads, then writes.
        for _ in 0..4 {
            vault.link_records(&["ds".to_string()]).await.unwrap();
        }
        for part in 0..4 {
            vault.store_batch("h", "ds", &numbered(&format!("round{round}-{part}"), 2, 40 + round), &[]).await.unwrap();
        }
    }
    vault.close().await;
    let vault = open(dir.path()).await;
    assert_eq!(vault.record_count("ds").await.unwrap(), 1 + 6 * 4 * 2);
    vault.close().await;
}

/// Anchors stored again are re-pointed and become the latest (`prior_keys` prefers the latest
/// across datasets); of an anchor listed twice in one commit the last stays.
#[tokio::test]
async fn anchors_stored_again_are_repointed_and_the_last_listed_wins() {
    let dir = tempfile::tempdir().unwrap();
    let vault = open(dir.path()).await;
    vault.store_batch("h", "one", &sample()[..1], &[(pk(100), pk(1)), (pk(101), pk(1))]).await.unwrap();
    vault.store_batch("h", "two", &sample()[1..2], &[(pk(100), pk(2))]).await.unwrap();
    assert_eq!(vault.prior_keys().await.unwrap().get(&pk(100)), Some(&pk(2)), "the later dataset's");
    // Stored again for the first dataset: now the latest, and listed twice the last stays.
    vault.store_batch("h", "one", &sample()[2..], &[(pk(100), pk(3)), (pk(101), pk(4)), (pk(100), pk(5))]).await.unwrap();
    let prior = vault.prior_keys().await.unwrap();
    assert_eq!((prior.get(&pk(100)), prior.get(&pk(101)), prior.len()), (Some(&pk(5)), Some(&pk(4)), 2));
    let pool = raw(dir.path()).await;
    let rows: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM anchors").fetch_one(&pool).await.unwrap();
    assert_eq!(rows, 3, "one row per anchor and dataset");
    vault.close().await;
}

/// The link index: persons found by bucket and by anchor under their current key, every record
/// of a person read back (stored under an older key too), only the datasets asked for; a batch
/// that does not commit leaves the index as it was; a vault that held linkable records before
/// the index starts incomplete.
#[tokio::test]
async fn the_link_index_finds_persons_by_bucket_anchor_and_joined_key() {
    let dir = tempfile::tempdir().unwrap();
    let vault = open(dir.path()).await;
    assert!(!vault.link_index_complete(1).await.unwrap(), "an empty vault's index has no format yet");
    let (b1, b2) = (LinkBucket([1; 8]), LinkBucket([2; 8]));
    let anchor = pk(90);
    let link = Some(LinkMeta { observed: None });
    let d1 = vec![
        ("r1".to_string(), identity(&[(IdentifierKind::NameKanji, "n", "山田 太郎")]), pk(1)),
        ("r2".to_string(), identity(&[(IdentifierKind::NameKanji, "n", "山田 次郎")]), pk(2)),
    ];
    let mut batch = vault.begin_batch("h", "d1").await.unwrap();
    batch.add(&new_identities(&d1, link)).await.unwrap();
    batch.add(&new_identities(&[("r3".to_string(), identity(&[]), pk(2))], None)).await.unwrap();
    let first = LinkIndexUpdate { buckets: vec![(b1, pk(1)), (b2, pk(2))], complete: Some(1), ..LinkIndexUpdate::default() };
    batch.index_links(&first).await.unwrap();
    batch.commit(&[(anchor, pk(1))]).await.unwrap();

    assert_eq!(vault.persons_reached(&[b1], &[]).await.unwrap(), vec![pk(1)]);
    assert_eq!(vault.persons_reached(&[], &[anchor]).await.unwrap(), vec![pk(1)]);
    assert_eq!(vault.persons_reached(&[LinkBucket([3; 8])], &[pk(91)]).await.unwrap(), vec![]);
    let d1_only = ["d1".to_string()];
    let read = vault.reached_records(&[pk(2)], &d1_only).await.unwrap();
    assert_eq!(read.len(), 1, "only the linkable record");
    assert_eq!((read[0].person, read[0].record.person), (pk(2), pk(2)));

    // A later run joins person 2 to person 1: its record keeps its stored key, and is read back
    // with person 1's.
    let mut batch = vault.begin_batch("h", "d2").await.unwrap();
    batch.add(&new_identities(&[("r4".to_string(), identity(&[(IdentifierKind::NameKanji, "n", "山田 太郎")]), pk(1))], link)).await.unwrap();
    // Its bucket rows come in chunks after the update (as the intake streams them): a row
    // retired and made again stays.
    let joined = LinkIndexUpdate {
        retired: vec![(b1, pk(1)), (b2, pk(2))],
        buckets: Vec::new(),
        stored_keys: vec![pk(1), pk(2)],
        moved: vec![(pk(2), pk(1))],
        complete: None,
    };
    // Rows before the update would be deleted by it again: refused.
    assert!(matches!(batch.add_link_buckets(&[(b1, pk(1))]).await, Err(VaultError::Invalid(_))));
    batch.index_links(&joined).await.unwrap();
    batch.add_link_buckets(&[(b1, pk(1))]).await.unwrap();
    batch.add_link_buckets(&[(b2, pk(1))]).await.unwrap();
    batch.commit(&[]).await.unwrap();
    assert_eq!(vault.persons_reached(&[b1], &[]).await.unwrap(), vec![pk(1)]);
    assert_eq!(vault.persons_reached(&[b2], &[]).await.unwrap(), vec![pk(1)]);
    assert_eq!(vault.current_keys(&[pk(2), pk(1), pk(3)]).await.unwrap(), vec![vec![pk(1)], vec![pk(1)], vec![pk(3)]]);
    let both = ["d1".to_string(), "d2".to_string()];
    let read = vault.reached_records(&[pk(1)], &both).await.unwrap();
    let stored: Vec<PersonKey> = read.iter().map(|r| r.record.person).collect();
    assert_eq!(stored, vec![pk(1), pk(2), pk(1)], "in the order stored");
    assert!(read.iter().all(|r| r.person == pk(1)));
    assert!(read.windows(2).all(|w| w[0].id < w[1].id));
    assert_eq!(vault.reached_records(&[pk(1)], &["d2".to_string()]).await.unwrap().len(), 1);

    // A key stored for two persons (namesakes kept apart, each joined later to someone else)
    // leads to both, and either reads back its records.
    let mut batch = vault.begin_batch("h", "d4").await.unwrap();
    batch.add(&new_identities(&[("r5".to_string(), identity(&[(IdentifierKind::NameKanji, "n", "鈴木 一郎")]), pk(5))], link)).await.unwrap();
    let split = LinkIndexUpdate { stored_keys: vec![pk(5)], moved: vec![(pk(5), pk(6)), (pk(5), pk(7))], ..LinkIndexUpdate::default() };
    batch.index_links(&split).await.unwrap();
    batch.commit(&[]).await.unwrap();
    assert_eq!(vault.current_keys(&[pk(5)]).await.unwrap(), vec![vec![pk(6), pk(7)]]);
    assert_eq!(vault.persons_reached(&[], &[]).await.unwrap(), vec![]);
    let d4 = ["d4".to_string()];
    for person in [pk(6), pk(7)] {
        let read = vault.reached_records(&[person], &d4).await.unwrap();
        assert_eq!(read.iter().map(|r| r.record.person).collect::<Vec<_>>(), vec![pk(5)]);
    }
    // A pair listed twice is a caller's mistake: the batch fails and changes nothing.
    let mut batch = vault.begin_batch("h", "d5").await.unwrap();
    let twice = LinkIndexUpdate { moved: vec![(pk(8), pk(9)), (pk(8), pk(9))], ..LinkIndexUpdate::default() };
    assert!(batch.index_links(&twice).await.is_err());
    assert!(matches!(batch.commit(&[]).await, Err(VaultError::BatchFailed)));
    assert_eq!(vault.current_keys(&[pk(8)]).await.unwrap(), vec![vec![pk(8)]]);

    // A batch that never commits leaves the index as it was.
    let mut batch = vault.begin_batch("h", "d3").await.unwrap();
    let undone = LinkIndexUpdate { retired: vec![(b1, pk(1))], stored_keys: vec![pk(1)], moved: vec![(pk(1), pk(9))], ..LinkIndexUpdate::default() };
    batch.index_links(&undone).await.unwrap();
    drop(batch);
    assert_eq!(vault.current_keys(&[pk(1)]).await.unwrap(), vec![vec![pk(1)]]);
    assert_eq!(vault.persons_reached(&[b1], &[]).await.unwrap(), vec![pk(1)]);
    // Deleting a dataset's linkable records (an undone version) marks the index incomplete: the
    // run that keyed them may have split a person and retired rows that led to all of it.
    assert!(vault.link_index_complete(1).await.unwrap());
    vault.delete_dataset("d4").await.unwrap();
    assert!(!vault.link_index_complete(1).await.unwrap());
    vault.close().await;

    // A vault with linkable records from before the index: incomplete until a run reads all.
    let old = tempfile::tempdir().unwrap();
    let pool = vault_before(old.path(), 6).await;
    sqlx::query("INSERT INTO identity_records (person_key, holder, dataset, record_hash, sealed, linkable) VALUES ($1, 'h', 'old', $2, x'00', 1)")
        .bind(&pk(1).0[..])
        .bind(&pk(2).0[..])
        .execute(&pool)
        .await
        .unwrap();
    pool.close().await;
    let vault = open(old.path()).await;
    assert!(!vault.link_index_complete(1).await.unwrap());
    let mut batch = vault.begin_batch("h", "new").await.unwrap();
    batch.index_links(&LinkIndexUpdate { complete: Some(1), ..LinkIndexUpdate::default() }).await.unwrap();
    batch.commit(&[]).await.unwrap();
    assert!(vault.link_index_complete(1).await.unwrap());
    assert!(!vault.link_index_complete(2).await.unwrap(), "an index of another format is rebuilt");
    vault.close().await;
}

/// An intake's batch holds the vault file's write lock until it commits (minutes for a large
/// submission): the vault opens meanwhile, at once, and reads what was committed before it (a
/// citizen's page, a listing), where opening waited for the lock and failed.
#[tokio::test]
async fn a_vault_opens_and_reads_while_a_batch_holds_it() {
    let dir = tempfile::tempdir().unwrap();
    let vault = open(dir.path()).await;
    vault.store_batch("h", "ds", &sample(), &[(pk(9), pk(1))]).await.unwrap();
    let mut batch = vault.begin_batch("h", "ds2").await.unwrap();
    batch.put_anchors(&[(pk(1), pk(2))]).await.unwrap();
    let started = std::time::Instant::now();
    let other = open(dir.path()).await;
    assert_eq!(other.datasets_of(&pk(1)).await.unwrap(), ["ds"]);
    assert_eq!(other.person_by_anchor(&pk(9)).await.unwrap(), Some(pk(1)));
    other.close().await;
    // Far below the 10 s a writer (and a truncating checkpoint) waits for the lock.
    assert!(started.elapsed() < std::time::Duration::from_secs(5), "opening, reading or closing waited for the batch");
    batch.commit(&[]).await.unwrap();
    vault.close().await;
}

/// An intake's batch holds the vault file's write lock until it commits (minutes for a large
/// submission): a citizen's opt-out and a new subject handle are written meanwhile, through
/// another handle as the server has, at once; the batch commits after them.
#[tokio::test]
async fn the_registry_is_written_while_a_batch_holds_the_vault() {
    let dir = tempfile::tempdir().unwrap();
    let vault = open(dir.path()).await;
    let mut batch = vault.begin_batch("h", "ds").await.unwrap();
    batch.put_anchors(&[(pk(1), pk(2))]).await.unwrap();
    let started = std::time::Instant::now();
    let other = open(dir.path()).await;
    let handle = other.subject_of(&pk(2), "handle-2").await.unwrap();
    let entry = NewRegistryEntry { person: pk(2), recorded_at: 1, decisive: true, body: b"{}" };
    let ids = other.append_registry_entries(&[entry]).await.unwrap();
    other.close().await;
    // Far below the 10 s a writer waits for the vault file's lock.
    assert!(started.elapsed() < std::time::Duration::from_secs(5), "the registry waited for the batch");
    batch.commit(&[]).await.unwrap();
    assert_eq!(vault.person_by_anchor(&pk(1)).await.unwrap(), Some(pk(2)));
    assert_eq!(vault.person_of_subject(&handle).await.unwrap(), Some(pk(2)));
    assert_eq!(vault.registry_entries_of(&pk(2), ids[0]).await.unwrap()[0].body, b"{}");
    vault.close().await;
}

/// A vault file as a release before migration 0007 left it, in `dir`, holding the registry rows
/// (and key checks) of the vault in `from`, each entry's id made [`old_id`] of its id there (ids
/// with gaps, as a move that renumbered them would not keep).
async fn registry_in_the_vault_file(dir: &Path, from: &Path) {
    let pool = vault_before(dir, 7).await;
    let mut conn = pool.acquire().await.unwrap();
    for (name, file) in [("r", registry_file(from)), ("v", path(from))] {
        let attach = format!("ATTACH DATABASE $1 AS {name}");
        sqlx::query(&attach).bind(file.to_string_lossy().into_owned()).execute(&mut *conn).await.unwrap();
    }
    for sql in [
        "INSERT INTO main.subjects SELECT handle, person_key FROM r.subjects",
        "INSERT INTO main.registry_entries SELECT id * 7 + 5, person_key, recorded_at, decisive, sealed FROM r.registry_entries",
        "INSERT INTO main.vault_meta (id, vault_key_check, sealing_check) SELECT id, vault_key_check, sealing_check FROM v.vault_meta",
    ] {
        sqlx::query(sql).execute(&mut *conn).await.unwrap();
    }
    drop(conn);
    pool.close().await;
}

/// The id an entry stored as `id` has in [`registry_in_the_vault_file`]'s vault.
fn old_id(id: i64) -> i64 {
    id * 7 + 5
}

/// A vault made before the registry had its own file (its rows in the vault's tables) opens with
/// every entry and handle, ids and version as they were, read from the registry's file; the
/// vault's tables are gone (no stale copy to come back); opening again moves nothing twice; a
/// release before the move refuses the vault (it would write tables no one reads).
#[tokio::test]
async fn a_registry_kept_in_the_vault_file_moves_to_its_own() {
    let (made, dir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let vault = open(made.path()).await;
    let new = |p: u8| NewRegistryEntry { person: pk(p), recorded_at: 10 + p as i64, decisive: p % 2 == 1, body: b"{\"choice\":1}" };
    let ids = vault.append_registry_entries(&[new(1), new(2), new(3)]).await.unwrap();
    let handle = vault.subject_of(&pk(3), "handle-3").await.unwrap();
    vault.close().await;
    registry_in_the_vault_file(dir.path(), made.path()).await;
    assert!(!registry_file(dir.path()).exists());
    let ids: Vec<i64> = ids.into_iter().map(old_id).collect();

    for round in 0..2 {
        let vault = open(dir.path()).await;
        assert_eq!(vault.registry_version().await.unwrap(), ids[2] + round, "round {round}");
        assert_eq!(vault.decisive_registry_entries(ids[2]).await.unwrap().iter().map(|e| e.id).collect::<Vec<_>>(), [ids[0], ids[2]]);
        assert_eq!(vault.registry_entries_of(&pk(2), ids[2]).await.unwrap()[0].body, b"{\"choice\":1}");
        assert_eq!(vault.person_of_subject(&handle).await.unwrap(), Some(pk(3)));
        // A new entry follows the moved ones.
        let next = vault.append_registry_entries(&[new(4)]).await.unwrap();
        assert_eq!(next[0], ids[2] + 1 + round);
        vault.close().await;
    }
    let pool = raw_registry(dir.path()).await;
    assert_eq!(sqlx::query_scalar::<_, i64>("SELECT COUNT(*) FROM registry_entries").fetch_one(&pool).await.unwrap(), 5);
    pool.close().await;
    assert!(!dir.path().join("vault").join("registry.sqlite.moving").exists());
    let pool = raw(dir.path()).await;
    for table in ["subjects", "registry_entries"] {
        let left: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM sqlite_master WHERE name = $1").bind(table).fetch_one(&pool).await.unwrap();
        assert_eq!(left, 0, "{table} is still in the vault file");
    }
    assert!(matches!(migrations_before(7).run(&pool).await, Err(sqlx::migrate::MigrateError::VersionMissing(7))));
    pool.close().await;
}

/// A new vault in `dir` with one decisive entry of person 5; its ids.
async fn one_entry(dir: &Path) -> Vec<i64> {
    let vault = open(dir).await;
    let entry = NewRegistryEntry { person: pk(5), recorded_at: 1, decisive: true, body: b"{}" };
    let ids = vault.append_registry_entries(&[entry]).await.unwrap();
    vault.close().await;
    ids
}

/// Two processes opening a vault whose registry has not moved yet: both open it, it moves once.
/// One opens on a spawned task, as the server's do (the future must be `Send`).
#[tokio::test]
async fn two_opens_at_once_move_the_registry_once() {
    let (made, dir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let ids = one_entry(made.path()).await;
    registry_in_the_vault_file(dir.path(), made.path()).await;
    let file = path(dir.path());
    let (spawned_file, key) = (file.clone(), vault_key());
    let spawned = tokio::spawn(async move { Vault::open(&spawned_file, &SEALING, &vault_key()).await });
    let b = Vault::open(&file, &SEALING, &key).await.unwrap();
    let a = spawned.await.unwrap().unwrap();
    for v in [&a, &b] {
        assert_eq!(v.registry_entries_of(&pk(5), old_id(ids[0])).await.unwrap().len(), 1);
    }
    a.close().await;
    b.close().await;
}

/// Opening refuses, and changes nothing, where the registry file the vault names is missing or
/// another vault's, or where a registry file lies beside a vault that names none (a vault
/// restored from before the move): an empty registry in its place would drop every opt-out.
#[tokio::test]
async fn a_missing_or_foreign_registry_file_is_refused() {
    let (dir, other) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    one_entry(dir.path()).await;
    open(other.path()).await.close().await;
    let file = path(dir.path());
    let refused = |r: Result<Vault, VaultError>| match r {
        Ok(_) => panic!("opened"),
        Err(e) => e,
    };

    // Missing.
    let kept = dir.path().join("kept.sqlite");
    std::fs::rename(registry_file(dir.path()), &kept).unwrap();
    assert!(matches!(refused(Vault::open(&file, &SEALING, &vault_key()).await), VaultError::RegistryMissing));
    assert!(!registry_file(dir.path()).exists(), "an empty registry was made");
    // Another vault's.
    std::fs::copy(registry_file(other.path()), registry_file(dir.path())).unwrap();
    let foreign = std::fs::read(registry_file(dir.path())).unwrap();
    assert!(matches!(refused(Vault::open(&file, &SEALING, &vault_key()).await), VaultError::RegistryForeign));
    assert_eq!(std::fs::read(registry_file(dir.path())).unwrap(), foreign, "the foreign file was changed");
    std::fs::rename(&kept, registry_file(dir.path())).unwrap();
    assert_eq!(open(dir.path()).await.registry_version().await.unwrap(), 1);

    // A vault from before the move beside the registry it moved to.
    let restored = tempfile::tempdir().unwrap();
    registry_in_the_vault_file(restored.path(), dir.path()).await;
    std::fs::copy(registry_file(dir.path()), registry_file(restored.path())).unwrap();
    let before = std::fs::read(registry_file(restored.path())).unwrap();
    let restored_file = path(restored.path());
    assert!(matches!(refused(Vault::open(&restored_file, &SEALING, &vault_key()).await), VaultError::RegistryForeign));
    assert_eq!(std::fs::read(registry_file(restored.path())).unwrap(), before);

    // A registry's WAL left without its file (set aside by hand): SQLite would replay it into
    // whatever file is put there.
    std::fs::remove_file(registry_file(restored.path())).unwrap();
    let wal = niji_vault::registry_path(&restored_file).with_file_name("registry.sqlite-wal");
    std::fs::write(&wal, b"frames of another file").unwrap();
    assert!(matches!(refused(Vault::open(&restored_file, &SEALING, &vault_key()).await), VaultError::RegistryForeign));
    assert!(!registry_file(restored.path()).exists());
    assert!(!restored.path().join("vault").join("registry.sqlite.moving").exists());
    let pool = raw(restored.path()).await;
    let named: Option<Vec<u8>> = sqlx::query_scalar("SELECT registry_id FROM vault_meta").fetch_one(&pool).await.unwrap();
    assert_eq!(named, None, "the vault changed although its registry was refused");
    pool.close().await;
    std::fs::remove_file(&wal).unwrap();
    assert_eq!(open(restored.path()).await.registry_version().await.unwrap(), old_id(1));
}

/// A move cut short: before the vault's commit (a half-made file beside a vault that names
/// none), the next open makes it again; after it (the file made, not yet renamed), the next open
/// puts it in place.
#[tokio::test]
async fn a_move_cut_short_is_finished_by_the_next_open() {
    let (made, dir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let ids = one_entry(made.path()).await;
    registry_in_the_vault_file(dir.path(), made.path()).await;
    let moving = dir.path().join("vault").join("registry.sqlite.moving");
    std::fs::write(&moving, b"half a file").unwrap();
    std::fs::write(moving.with_file_name("registry.sqlite.moving-journal"), b"half a journal").unwrap();
    let vault = open(dir.path()).await;
    assert_eq!(vault.registry_entries_of(&pk(5), old_id(ids[0])).await.unwrap().len(), 1);
    vault.close().await;
    assert!(!moving.exists());
    assert_eq!(std::fs::read_dir(dir.path().join("vault")).unwrap().count(), 2, "only the vault and its registry are left");

    std::fs::rename(registry_file(dir.path()), &moving).unwrap();
    let vault = open(dir.path()).await;
    assert_eq!(vault.registry_entries_of(&pk(5), old_id(ids[0])).await.unwrap().len(), 1);
    vault.close().await;
    assert!(!moving.exists() && registry_file(dir.path()).exists());

    // Cut between the link and the unlink: the second name goes, the file stays.
    std::fs::hard_link(registry_file(dir.path()), &moving).unwrap();
    let vault = open(dir.path()).await;
    assert_eq!(vault.registry_entries_of(&pk(5), old_id(ids[0])).await.unwrap().len(), 1);
    vault.close().await;
    assert!(!moving.exists() && registry_file(dir.path()).exists());

    // A whole registry file beside a vault that names none (a crash after the vault's commit,
    // then the vault restored from before the move) is set aside, not deleted.
    let restored = tempfile::tempdir().unwrap();
    registry_in_the_vault_file(restored.path(), made.path()).await;
    let whole = restored.path().join("vault").join("registry.sqlite.moving");
    std::fs::copy(registry_file(dir.path()), &whole).unwrap();
    let bytes = std::fs::read(&whole).unwrap();
    open(restored.path()).await.close().await;
    let aside: Vec<_> = std::fs::read_dir(restored.path().join("vault"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.file_name().unwrap().to_string_lossy().starts_with("registry.sqlite.moving."))
        .collect();
    assert_eq!(aside.len(), 1);
    assert_eq!(std::fs::read(&aside[0]).unwrap(), bytes);
}

/// A new vault's registry file is made whole every time: a pool closed its connection after its
/// own close returned, and a move then found the new file's WAL still there (once in four
/// vaults made by the intake bench). Forty new vaults, on a multi-threaded runtime as the
/// server's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_vault_gets_its_registry_file_every_time() {
    for _ in 0..40 {
        let dir = tempfile::tempdir().unwrap();
        let vault = open(dir.path()).await;
        assert_eq!(vault.registry_version().await.unwrap(), 0);
        vault.close().await;
        let names: Vec<String> =
            std::fs::read_dir(dir.path().join("vault")).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
        assert!(names.iter().all(|n| !n.starts_with("registry.sqlite.moving")), "{names:?}");
    }
}
