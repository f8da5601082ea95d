//! The identity vault: the separate store of the split-file model (issue 3) that holds the
//! identity half of ingested records (`niji_ingest::Identity`: names, kana, insurance and
//! patient numbers, phones, addresses, free text), encrypted at rest and looked up only by
//! keyed hashes. The lake holds person keys only; the way back from a person key to a name
//! goes through here.
//!
//! Storage: its own SQLite file (the caller passes the path, e.g. `DIR/vault/identities.sqlite`),
//! WAL, `synchronous = FULL`, foreign keys on, migrations embedded from `migrations/sqlite`; the
//! consent registry in a second file beside it ([`registry_path`], migrations from
//! `migrations/registry`: see the `registry` module).
//!
//! Keys come from the caller, never the master key:
//! - a 32-byte **sealing key** (the instance's data key `vault:sealing`), used with
//!   XChaCha20-Poly1305 and a random 24-byte nonce per record;
//! - the **vault key** ([`VaultKey`]), used for keyed hashes (HMAC-SHA256 through
//!   [`Pseudonymizer`]) of record references and of a key-check label.
//!
//! Tables (see `migrations/sqlite/`):
//! - `vault_meta` — one row: a keyed hash of a fixed label under the vault key and a fixed label
//!   sealed under the sealing key. [`Vault::open`] refuses other keys
//!   ([`VaultError::WrongVaultKey`], [`VaultError::WrongSealingKey`]) rather than mixing
//!   pseudonyms or blobs of two keys in one file. Since migration 0007 it also holds the
//!   registry id of the vault's registry file (NULL until the registry moved out).
//! - `anchors` — anchor (keyed hash of a member id, patient number or 受給者番号, as
//!   `niji_privacy::Linkage::anchors`) → person key, per dataset. [`Vault::prior_keys`] turns
//!   them into the `PriorKeys` of the next linkage run, so person keys stay stable.
//! - `identity_records` — person key, holder id, dataset id, `record_hash` = keyed hash of
//!   (dataset, record reference), `sealed` = nonce ‖ XChaCha20-Poly1305 of a compact
//!   serialization of the record reference and the `Identity` items, and (migration 0002)
//!   `linkable` (the record is read back by later linkage runs: the intake marks one FHIR
//!   Patient, UKE claim or registry row per distinct identity of a version)
//!   and `observed` (the claim month its insurance numbers were valid, an ISO date at the date's
//!   precision, or NULL; not identifying). The associated data binds the person key, the record
//!   hash, the dataset and the holder, so a blob moved to another row (or a row re-pointed at
//!   another person) fails authentication ([`VaultError::Tampered`]). For a row with link meta
//!   it binds `linkable` and `observed` too (a choice, not a necessity: neither is identifying,
//!   but flipping the flag would silently drop records from, or add them to, later linkage
//!   runs, and altering the month would change which insurance number linkage prefers). Rows
//!   without link meta — all rows written before migration 0002 — keep the original associated
//!   data, so they open unchanged. The cost: changing a row's link meta means re-sealing it,
//!   not a plain `UPDATE`. Its indexes (migration 0005) only grow at their end (dataset and
//!   id; linkable rows by dataset and person).
//! - `record_refs` — (dataset, record hash), unique: a record reference is stored once per
//!   dataset ([`VaultError::DuplicateRecord`]). `person_records` — (person key, record id): a
//!   person's records. Both are filled when a batch commits, sorted by key, so that each of
//!   their pages is written once: as random-key indexes of `identity_records` they took a
//!   random page for every inserted row, most of a large submission's time.
//!
//! Writing: [`Vault::begin_batch`] starts a [`VaultBatch`], one transaction fed in chunks with
//! [`VaultBatch::add`] (records sealed chunk by chunk, so millions of records never sit in memory
//! at once) and finished by [`VaultBatch::commit`] with the run's anchors (or handed them
//! earlier, [`VaultBatch::put_anchors`], with its link index rows, [`VaultBatch::index_links`]
//! and then its bucket rows in chunks, [`VaultBatch::add_link_buckets`]: the intake does all of
//! it before its records so as not to hold them); dropping it rolls it back,
//! and a failed `add` rolls it back at once; a reference stored twice fails the commit.
//! [`Vault::store_batch`] is the one-call form (records not linkable) over the same insert path.
//!
//! Reading: [`Vault::identities_of`] (one person's records), [`Vault::link_records`] (the
//! linkable records of some datasets, unsealed, for the intake to re-link new records against),
//! [`Vault::prior_keys`], and counts: [`Vault::person_count`], [`Vault::record_count`],
//! [`Vault::persons_in`], [`Vault::persons_shared`] (the operator's linkage rate),
//! [`Vault::datasets`] (the catalog).
//!
//! Invariants:
//! - Nothing identifying in the clear, in any column or index: only keyed hashes, person keys,
//!   sealed blobs, holder and dataset ids (chosen by the operator, not taken from the data),
//!   the linkable flag, claim months and counts. The record reference (it may name a file) is
//!   sealed too; only its keyed hash is a column.
//! - A batch ([`VaultBatch`], [`Vault::store_batch`]) is one transaction: a batch that fails (for
//!   instance a record reference already stored for the dataset), or is dropped uncommitted,
//!   leaves the vault as it was.
//! - Errors never quote stored or submitted values; nothing here logs.
//! - No clock reads and no business rules: who may read identities is decided by the caller.

mod link_index;
mod registry;

pub use link_index::{LinkIndexUpdate, ReachedRecord};
pub use registry::{NewRegistryEntry, RegistryEntry};

use std::path::Path;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use chacha20poly1305::aead::{Aead, AeadCore, AeadInPlace, KeyInit, OsRng, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use niji_ingest::{Date, IdentifierKind, Identity, IdentityItem};
use niji_privacy::{Domain, PersonKey, PriorKeys, Pseudonymizer, VaultKey};
use sqlx::sqlite::{SqliteConnectOptions, SqliteConnection, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{Row, Sqlite, SqlitePool, Transaction};

/// What went wrong. Messages are fixed texts: no identifier, record reference or key appears.
#[derive(Debug, thiserror::Error)]
pub enum VaultError {
    #[error("the vault was created with another sealing key")]
    WrongSealingKey,
    #[error("the vault was created with another vault key")]
    WrongVaultKey,
    #[error("a sealed identity failed authentication (wrong key, or moved or altered)")]
    Tampered,
    #[error("a record reference is already stored for this dataset")]
    DuplicateRecord,
    /// A [`VaultBatch`] whose earlier step failed (or was cancelled) was used again: the batch
    /// was rolled back and nothing of it is stored.
    #[error("an earlier step of this batch failed; the batch was rolled back")]
    BatchFailed,
    #[error("stored value is invalid: {0}")]
    Invalid(&'static str),
    #[error("vault database error: {0}")]
    Database(#[from] sqlx::Error),
    #[error("vault migration failed: {0}")]
    Migration(#[from] sqlx::migrate::MigrateError),
    /// The vault names a registry file ([`registry_path`]) that is not there: opt-outs and
    /// consents would be lost, so the vault is not opened (restore the file from a backup).
    #[error("the consent registry file beside the vault is missing")]
    RegistryMissing,
    /// The registry file beside the vault is not the one the vault names (another instance's,
    /// or a vault restored from before its registry moved out): neither is used or changed.
    #[error("the consent registry file beside the vault belongs to another vault")]
    RegistryForeign,
    #[error("the consent registry file could not be put in place: {0}")]
    RegistryFile(#[source] std::io::Error),
}

/// The consent registry's file for the vault at `vault`: `registry.sqlite` in the same folder.
pub fn registry_path(vault: &Path) -> std::path::PathBuf {
    vault.with_file_name(REGISTRY_FILE)
}

/// The consent registry's file name, beside the vault's.
pub const REGISTRY_FILE: &str = "registry.sqlite";

/// One identity record read back from the vault.
#[derive(Clone)]
pub struct StoredIdentity {
    pub holder: String,
    pub dataset: String,
    /// The record reference given to [`Vault::store_batch`] or [`VaultBatch::add`] (e.g. `file:line`).
    pub record_ref: String,
    pub identity: Identity,
}

/// One identity record to store with [`VaultBatch::add`].
#[derive(Clone, Copy)]
pub struct NewIdentity<'a> {
    /// Where the record came from (e.g. `file:line`); unique per dataset, stored sealed.
    pub record_ref: &'a str,
    pub identity: &'a Identity,
    pub person: PersonKey,
    /// `Some` for a record that later linkage runs read back ([`Vault::link_records`]): a
    /// FHIR Patient, a UKE claim, a registry row — the intake marks one record per distinct
    /// identity of a version (a patient's monthly claims: the first), with the earliest date
    /// its numbers were observed.
    pub link: Option<LinkMeta>,
}

// The record reference is kept sealed (a file name may name a patient) and the identity's own
// `Debug` shows kinds and lengths only: `Debug` (panics, logs) shows no value of either.
impl std::fmt::Debug for StoredIdentity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoredIdentity")
            .field("holder", &self.holder)
            .field("dataset", &self.dataset)
            .field("record_ref_len", &self.record_ref.len())
            .field("identity", &self.identity)
            .finish()
    }
}

impl std::fmt::Debug for NewIdentity<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NewIdentity")
            .field("record_ref_len", &self.record_ref.len())
            .field("identity", self.identity)
            .field("link", &self.link)
            .finish_non_exhaustive()
    }
}

/// What a linkable record carries besides its identity (none of it identifying).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LinkMeta {
    /// The claim month a record's insurance numbers were valid, if known (as
    /// `niji_privacy::LinkRecord::observed`). Stored as an ISO date at the date's precision.
    pub observed: Option<Date>,
}

/// One linkable record read back by [`Vault::link_records`], unsealed: what the intake turns
/// into a `niji_privacy::LinkRecord` (with the person key it was given) to re-link.
#[derive(Debug, Clone)]
pub struct StoredLinkRecord {
    pub holder: String,
    pub dataset: String,
    pub observed: Option<Date>,
    pub identity: Identity,
    pub person: PersonKey,
}

/// The identity vault. Cloning is cheap (a pool handle and the keys).
#[derive(Clone)]
pub struct Vault {
    pool: SqlitePool,
    /// The consent registry's own file beside the vault's ([`registry_path`]): its writes never
    /// wait for an intake's batch, which holds the vault file's write lock until it commits.
    registry: SqlitePool,
    cipher: XChaCha20Poly1305,
    hasher: Pseudonymizer,
}

impl std::fmt::Debug for Vault {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Vault(..)")
    }
}

impl Vault {
    /// Opens (creating if needed) the vault at `path`, applies pending migrations and checks
    /// that `sealing_key` and `vault_key` are the keys the vault was created with; then opens
    /// the registry file beside it ([`registry_path`]), which must be the one the vault names
    /// ([`VaultError::RegistryMissing`], [`VaultError::RegistryForeign`]). A vault that has no
    /// registry file yet (a new vault, or one made before the registry had a file of its own)
    /// gets one here, with the rows of its registry tables moved into it.
    pub async fn open(path: &Path, sealing_key: &[u8; 32], vault_key: &VaultKey) -> Result<Self, VaultError> {
        // What the vault's and the registry's connections share; the journal mode is the
        // vault's alone (WAL is kept in the file: the registry's is made so, and is not switched).
        let options = SqliteConnectOptions::from_str("sqlite://")?
            .filename(path)
            .synchronous(SqliteSynchronous::Full)
            .foreign_keys(true)
            .pragma("secure_delete", "ON")
            // 16 MiB of page cache per connection (of 4): each keeps its own, so the same pages
            // read by turns were held up to four times. With 64 MiB a connection, page caches
            // were 287 of the 430 MB heap peak of a second 300k-person UKE version (heaptrack);
            // at 16 MiB its whole peak RSS fell from 558 to 367 MB, a first intake's from 246 to
            // 156 MB at the same lines a second, and a small submission's from 310 to 164 MB
            // (5.0 s to 6.2 s: the pages come from the OS's cache instead).
            .pragma("cache_size", "-16384")
            // And 32 MiB of SQLite's heap in all (a process-wide limit: SQLite recycles pages of
            // any connection's cache past it instead of allocating). The pool hands its
            // connections out by turns, so a small submission's read-back queries filled all
            // four caches with the same pages: 80 MB. With it, that submission's link phase
            // peaked at 198 MB of RSS instead of 320 (UKE bench, 365,718 records read back); a
            // first intake's peaks and speed did not change (one connection writes its batch;
            // 198,000–199,000 lines/s against 187,000–213,000, alternated). Being process-wide,
            // it holds the metadata store's connections too, once a vault has been opened.
            .pragma("soft_heap_limit", "33554432")
            // Temporary files on disk (SQLite's temp folder, `SQLITE_TMPDIR`): the sorts that
            // index a batch (`VaultBatch::commit`) spill there past the cache instead of
            // growing in memory (in memory, 2.7 million records took 490 MB more), and so do
            // large counts. They hold record hashes, person keys, anchors, dataset ids and
            // record ids, never an identity or a sealed record. The batch's record inserts are
            // OR ROLLBACK and the anchors are deleted, then inserted OR ROLLBACK, so a batch
            // writes no statement journal (page images, about 40% of a batch's time when they
            // were kept).
            .pragma("temp_store", "FILE")
            // A batch's pages all go to the WAL until it commits: gigabytes for a large
            // submission. Closing truncates the WAL, but only where no reader is in a
            // transaction at that moment (it does not wait, see `close`); the server keeps
            // handles open for months. With a size limit the WAL is cut back to 64 MiB the next
            // time it restarts after a checkpoint, instead of keeping its largest size for good.
            .pragma("journal_size_limit", "67108864")
            .busy_timeout(Duration::from_secs(10));
        let vault_options = options.clone().create_if_missing(true).journal_mode(SqliteJournalMode::Wal);
        let pool = SqlitePoolOptions::new().max_connections(4).connect_with(vault_options).await?;
        let (cipher, hasher) = (XChaCha20Poly1305::new(sealing_key.into()), Pseudonymizer::new(vault_key));
        let opened = async {
            migrate(&MIGRATIONS, &pool).await?;
            check_keys(&pool, &cipher, &hasher).await?;
            registry::open_registry(&pool, path, options).await
        }
        .await;
        match opened {
            Ok(registry) => Ok(Self { pool, registry, cipher, hasher }),
            Err(e) => {
                pool.close().await;
                Err(e)
            }
        }
    }

    /// Stores one batch of identity records of `dataset` (submitted by `holder`) with the anchors
    /// of the linkage run that keyed them, in one transaction: all or nothing. A record
    /// reference already stored for the dataset fails the batch with
    /// [`VaultError::DuplicateRecord`]. An anchor already known for the dataset is re-pointed
    /// at the new person key. The records are not linkable (see [`VaultBatch::add`]).
    ///
    /// A thin wrapper over [`Vault::begin_batch`], [`VaultBatch::add`] and [`VaultBatch::commit`].
    pub async fn store_batch(
        &self,
        holder: &str,
        dataset: &str,
        records: &[(String, Identity, PersonKey)],
        anchors: &[(PersonKey, PersonKey)],
    ) -> Result<(), VaultError> {
        let records: Vec<NewIdentity<'_>> =
            records.iter().map(|(record_ref, identity, person)| NewIdentity { record_ref, identity, person: *person, link: None }).collect();
        let mut batch = self.begin_batch(holder, dataset).await?;
        batch.add(&records).await?;
        batch.commit(anchors).await?;
        Ok(())
    }

    /// Starts one all-or-nothing batch of identity records of `dataset` (submitted by `holder`),
    /// to be fed in chunks with [`VaultBatch::add`] and finished with [`VaultBatch::commit`];
    /// dropping it without committing rolls it back.
    ///
    /// The batch holds one connection of the vault's pool (4 connections) and, from its first
    /// insert on, SQLite's write lock: other writers wait (up to the busy timeout) until it
    /// commits or rolls back; readers see the vault as it was before the batch.
    pub async fn begin_batch(&self, holder: &str, dataset: &str) -> Result<VaultBatch, VaultError> {
        // `BEGIN` is deferred: the write lock is taken by the first insert, not here.
        let tx = self.pool.begin().await?;
        Ok(VaultBatch {
            vault: self.clone(),
            tx: Some(tx),
            holder: holder.to_owned(),
            dataset: dataset.to_owned(),
            records: 0,
            unindexed_from: None,
            unindexed: 0,
            sorted_run: SORTED_RUN,
            links_indexed: false,
        })
    }

    /// Every stored anchor → person key, to pass to the next `niji_privacy::link` run. Where
    /// two datasets hold the same anchor, the one stored last wins.
    pub async fn prior_keys(&self) -> Result<PriorKeys, VaultError> {
        // A page of rows at a time, in one read transaction: the whole table's rows held at once
        // (each value copied by the driver) were the largest part of a full read-back's heap
        // peak, 144 of 381 MB for 268k earlier records (heaptrack).
        const PAGE: i64 = 16_384;
        let mut tx = self.pool.begin().await?;
        let mut prior = PriorKeys::default();
        let mut after = 0i64;
        loop {
            let rows = sqlx::query("SELECT rowid, anchor, person_key FROM anchors WHERE rowid > $1 ORDER BY rowid LIMIT $2")
                .bind(after)
                .bind(PAGE)
                .fetch_all(&mut *tx)
                .await?;
            let Some(last) = rows.last() else { break };
            after = last.try_get("rowid")?;
            for row in &rows {
                prior.insert(key_of(row.try_get("anchor")?)?, key_of(row.try_get("person_key")?)?);
            }
        }
        tx.commit().await?;
        Ok(prior)
    }

    /// The unsealed identity records of one person, in the order stored. Nothing is logged
    /// here; the caller decides and audits who may call it.
    pub async fn identities_of(&self, person: &PersonKey) -> Result<Vec<StoredIdentity>, VaultError> {
        let rows = sqlx::query(
            "SELECT r.person_key, r.holder, r.dataset, r.record_hash, r.sealed, r.linkable, r.observed FROM person_records p \
                 JOIN identity_records r ON r.id = p.id WHERE p.person_key = $1 ORDER BY r.id",
        )
        .bind(&person.0[..])
        .fetch_all(&self.pool)
        .await?;
        let mut out = Vec::with_capacity(rows.len());
        for row in rows {
            // The persons' index and the record must agree (the seal binds the record's).
            if key_of(row.try_get("person_key")?)? != *person {
                return Err(VaultError::Tampered);
            }
            let holder: String = row.try_get("holder")?;
            let dataset: String = row.try_get("dataset")?;
            let record_hash = key_of(row.try_get("record_hash")?)?;
            let sealed: Vec<u8> = row.try_get("sealed")?;
            let linkable: bool = row.try_get("linkable")?;
            let observed: Option<String> = row.try_get("observed")?;
            let at = RowBinding { person, record_hash: &record_hash, holder: &holder, dataset: &dataset, linkable, observed: observed.as_deref() };
            let (record_ref, identity) = self.unseal(&at, &sealed)?;
            out.push(StoredIdentity { holder, dataset, record_ref, identity });
        }
        Ok(out)
    }

    /// Number of distinct person keys with at least one identity record.
    pub async fn person_count(&self) -> Result<u64, VaultError> {
        let n: i64 = sqlx::query_scalar("SELECT COUNT(DISTINCT person_key) FROM person_records").fetch_one(&self.pool).await?;
        Ok(n as u64)
    }

    /// Number of identity records of `dataset`.
    pub async fn record_count(&self, dataset: &str) -> Result<u64, VaultError> {
        let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM identity_records WHERE dataset = $1").bind(dataset).fetch_one(&self.pool).await?;
        Ok(n as u64)
    }

    /// The unsealed linkable records (written by [`VaultBatch::add`] with a [`LinkMeta`]) of
    /// `datasets`, in the order stored, for the next linkage run to link new records against.
    /// Records of other datasets and records stored without link meta are left out. Read in
    /// pages inside one read transaction: a consistent snapshot, without holding every sealed
    /// row and every unsealed record in memory at once. Nothing is logged here; the caller
    /// decides and audits who may call it.
    pub async fn link_records(&self, datasets: &[String]) -> Result<Vec<StoredLinkRecord>, VaultError> {
        let mut out = Vec::new();
        let mut pages = self.link_pages(datasets).await?;
        while let Some(page) = pages.next().await? {
            out.extend(page);
        }
        Ok(out)
    }

    /// [`Vault::link_records`] a page (up to 4,096 records) at a time, all from one read
    /// transaction: a caller that keeps less than the records (linkage keeps a
    /// `niji_privacy::LinkUnit`) never holds all identities at once, and may await work on a page
    /// off the async runtime (normalizing names) before reading the next.
    pub async fn link_pages(&self, datasets: &[String]) -> Result<LinkPages<'_>, VaultError> {
        let sql = format!(
            "SELECT id, person_key, holder, dataset, record_hash, sealed, observed FROM identity_records \
             WHERE linkable AND id > $1 AND dataset IN ({}) ORDER BY id LIMIT {LINK_PAGE}",
            placeholders(2, datasets.len())
        );
        let tx = if datasets.is_empty() { None } else { Some(self.pool.begin().await?) };
        Ok(LinkPages { vault: self, tx, sql, datasets: datasets.to_vec(), after: 0 })
    }

    /// Number of distinct person keys with an identity record in `dataset`. A dataset with
    /// linkable records is counted by those alone (the intake marks one per distinct identity of
    /// a version, so every person of it has one, and only those are indexed by dataset and
    /// person); one without any (stored before the intake marked them, or by
    /// [`Vault::store_batch`]) by all its records.
    pub async fn persons_in(&self, dataset: &str) -> Result<u64, VaultError> {
        let mut tx = self.pool.begin().await?;
        let filter = if has_linkable(&mut tx, dataset).await? { " AND linkable" } else { "" };
        let sql = format!("SELECT COUNT(DISTINCT person_key) FROM identity_records WHERE dataset = $1{filter}");
        let n: i64 = sqlx::query_scalar(&sql).bind(dataset).fetch_one(&mut *tx).await?;
        tx.commit().await?;
        Ok(n as u64)
    }

    /// Number of distinct person keys with a record in `dataset` that also have one in at least
    /// one of `others` (0 if `others` is empty), each dataset counted as in
    /// [`Vault::persons_in`]. A dataset listed in `others` counts as any other: listing
    /// `dataset` itself makes every person of it count.
    pub async fn persons_shared(&self, dataset: &str, others: &[String]) -> Result<u64, VaultError> {
        if others.is_empty() {
            return Ok(0);
        }
        let mut tx = self.pool.begin().await?;
        let filter = if has_linkable(&mut tx, dataset).await? { " AND linkable" } else { "" };
        let (linked, unlinked) = split_by_linkable(&mut tx, others).await?;
        let mut branches = Vec::new();
        let mut next = 2;
        for (group, group_filter) in [(&linked, " AND linkable"), (&unlinked, "")] {
            if !group.is_empty() {
                branches
                    .push(format!("SELECT person_key FROM identity_records WHERE dataset IN ({}){group_filter}", placeholders(next, group.len())));
                next += group.len();
            }
        }
        let sql = format!(
            "SELECT COUNT(*) FROM (SELECT person_key FROM identity_records WHERE dataset = $1{filter} \
             INTERSECT SELECT person_key FROM ({}))",
            branches.join(" UNION ALL ")
        );
        let mut query = sqlx::query_scalar(&sql).bind(dataset);
        for other in linked.iter().chain(&unlinked) {
            query = query.bind(other);
        }
        let n: i64 = query.fetch_one(&mut *tx).await?;
        tx.commit().await?;
        Ok(n as u64)
    }

    /// Every dataset with at least one identity record, with its number of records, ordered by
    /// dataset id. (A dataset with anchors but no records is not listed.)
    pub async fn datasets(&self) -> Result<Vec<(String, u64)>, VaultError> {
        let rows = sqlx::query("SELECT dataset, COUNT(*) AS n FROM identity_records GROUP BY dataset ORDER BY dataset").fetch_all(&self.pool).await?;
        rows.into_iter().map(|row| Ok((row.try_get("dataset")?, row.try_get::<i64, _>("n")? as u64))).collect()
    }

    /// Deletes every identity record and anchor of `dataset` (when its use ends), in one
    /// transaction; returns the number of identity records deleted. `secure_delete` is on, so
    /// SQLite overwrites the deleted (sealed) content in the database pages.
    pub async fn delete_dataset(&self, dataset: &str) -> Result<u64, VaultError> {
        let mut tx = self.pool.begin().await?;
        sqlx::query("DELETE FROM person_records WHERE (person_key, id) IN (SELECT person_key, id FROM identity_records WHERE dataset = $1)")
            .bind(dataset)
            .execute(&mut *tx)
            .await?;
        sqlx::query("DELETE FROM record_refs WHERE dataset = $1").bind(dataset).execute(&mut *tx).await?;
        // The link index was written by the run that keyed these records: where that run split
        // a person, the rows it retired are not there to lead back to the whole person any
        // more. The next run reads back every record once and rebuilds it.
        let linkable: i64 =
            sqlx::query_scalar("SELECT COUNT(*) FROM identity_records WHERE dataset = $1 AND linkable").bind(dataset).fetch_one(&mut *tx).await?;
        if linkable > 0 {
            sqlx::query("UPDATE link_index SET complete = 0 WHERE id = 1").execute(&mut *tx).await?;
        }
        let n = sqlx::query("DELETE FROM identity_records WHERE dataset = $1").bind(dataset).execute(&mut *tx).await?.rows_affected();
        sqlx::query("DELETE FROM anchors WHERE dataset = $1").bind(dataset).execute(&mut *tx).await?;
        tx.commit().await?;
        Ok(n)
    }

    /// Checkpoints the WAL into the database file (truncating the WAL) and closes the pool.
    /// Other handles of this vault stop working.
    pub async fn close(&self) {
        for pool in [&self.pool, &self.registry] {
            // Best effort: a failing checkpoint leaves the content in the WAL, where SQLite's
            // own checkpoint on the last close (or the next open) moves it. Without waiting:
            // another handle's batch (an intake) may hold the write lock for minutes, and a
            // truncating checkpoint waits for it as long as the busy timeout lets it.
            if let Ok(conn) = pool.acquire().await {
                // Out of the pool: no other handle gets a connection that does not wait.
                let mut conn = conn.detach();
                let _ = sqlx::query("PRAGMA busy_timeout = 0").execute(&mut conn).await;
                let _ = sqlx::query("PRAGMA wal_checkpoint(TRUNCATE)").execute(&mut conn).await;
                let _ = sqlx::Connection::close(conn).await;
            }
            pool.close().await;
        }
    }
}

/// A linkable record's columns, as read: person key, holder, dataset, record hash, sealed
/// identity, observed.
type LinkableRow = (PersonKey, String, String, PersonKey, Vec<u8>, Option<String>);

/// A linkable record's columns from a row that selected them by name.
fn linkable_row(row: &sqlx::sqlite::SqliteRow) -> Result<LinkableRow, VaultError> {
    Ok((
        key_of(row.try_get("person_key")?)?,
        row.try_get("holder")?,
        row.try_get("dataset")?,
        key_of(row.try_get("record_hash")?)?,
        row.try_get("sealed")?,
        row.try_get("observed")?,
    ))
}

impl Vault {
    /// Unseals linkable records off the async runtime (an AEAD open per record).
    async fn unseal_linkable(&self, rows: Vec<LinkableRow>) -> Result<Vec<StoredLinkRecord>, VaultError> {
        let vault = self.clone();
        tokio::task::spawn_blocking(move || {
            rows.into_iter()
                .map(|(person, holder, dataset, record_hash, sealed, observed)| {
                    let at = RowBinding {
                        person: &person,
                        record_hash: &record_hash,
                        holder: &holder,
                        dataset: &dataset,
                        linkable: true,
                        observed: observed.as_deref(),
                    };
                    let (_, identity) = vault.unseal(&at, &sealed)?;
                    // Parsed only once authenticated: the associated data binds the column's text.
                    let observed = observed.as_deref().map(parse_observed).transpose()?;
                    Ok(StoredLinkRecord { holder, dataset, observed, identity, person })
                })
                .collect::<Result<Vec<_>, VaultError>>()
        })
        .await
        .map_err(|_| VaultError::Invalid("unsealing linkable records stopped"))?
    }
}

/// Records per page of [`Vault::link_pages`].
const LINK_PAGE: i64 = 4096;

/// The pages of [`Vault::link_pages`]; [`LinkPages::next`] until `None`.
pub struct LinkPages<'a> {
    vault: &'a Vault,
    /// `None` once every page was read (or there was nothing to read).
    tx: Option<Transaction<'static, Sqlite>>,
    sql: String,
    datasets: Vec<String>,
    after: i64,
}

impl LinkPages<'_> {
    /// The next page of unsealed records, or `None` after the last one.
    pub async fn next(&mut self) -> Result<Option<Vec<StoredLinkRecord>>, VaultError> {
        let Some(tx) = self.tx.as_mut() else { return Ok(None) };
        let mut query = sqlx::query(&self.sql).bind(self.after);
        for dataset in &self.datasets {
            query = query.bind(dataset);
        }
        let rows = query.fetch_all(&mut **tx).await?;
        let full = rows.len() as i64 == LINK_PAGE;
        // The columns are read here; the unsealing (an AEAD open per record) runs off the async
        // runtime, on a blocking thread.
        let mut sealed_rows = Vec::with_capacity(rows.len());
        for row in rows {
            self.after = row.try_get("id")?;
            sealed_rows.push(linkable_row(&row)?);
        }
        let page = self.vault.unseal_linkable(sealed_rows).await?;
        if !full {
            if let Some(tx) = self.tx.take() {
                tx.rollback().await?;
            }
        }
        Ok(if page.is_empty() { None } else { Some(page) })
    }
}

/// One all-or-nothing batch of identity records of one dataset, from [`Vault::begin_batch`]:
/// records are sealed and inserted chunk by chunk ([`VaultBatch::add`]), so a batch of millions
/// of records needs memory for one chunk only, and become visible together at
/// [`VaultBatch::commit`]. Dropping the batch without committing rolls it back. After a failed
/// (or cancelled) `add` the batch is rolled back at once: further `add` and `commit` calls fail
/// with [`VaultError::BatchFailed`].
pub struct VaultBatch {
    vault: Vault,
    /// `None` once a step failed (the transaction was rolled back) or was cancelled mid-way.
    tx: Option<Transaction<'static, Sqlite>>,
    holder: String,
    dataset: String,
    records: u64,
    /// The id of the batch's first record not yet in `record_refs` and `person_records`: the
    /// write lock is held from the first insert to the commit, so every record from it on is
    /// the batch's.
    unindexed_from: Option<i64>,
    /// Records inserted since then.
    unindexed: usize,
    /// Records indexed at a time ([`SORTED_RUN`]).
    sorted_run: usize,
    /// [`VaultBatch::index_links`] ran: bucket rows may follow ([`VaultBatch::add_link_buckets`]).
    links_indexed: bool,
}

/// Seals identity records for one batch (holder and dataset) without touching the database:
/// cheap to clone, `Send`, for a producer thread. See [`VaultBatch::sealer`].
#[derive(Clone)]
pub struct Sealer {
    cipher: XChaCha20Poly1305,
    hasher: Pseudonymizer,
    // Shared with every row sealed (a reference count, not two strings per row).
    holder: Arc<str>,
    dataset: Arc<str>,
}

impl std::fmt::Debug for Sealer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sealer").finish_non_exhaustive()
    }
}

/// A record sealed by a [`Sealer`], ready for [`VaultBatch::add_sealed`]. Holds no identifying
/// value in the clear.
#[derive(Clone)]
pub struct SealedIdentity {
    person: PersonKey,
    record_hash: PersonKey,
    linkable: bool,
    observed: Option<String>,
    sealed: Vec<u8>,
    holder: Arc<str>,
    dataset: Arc<str>,
}

impl std::fmt::Debug for SealedIdentity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SealedIdentity").finish_non_exhaustive()
    }
}

impl Sealer {
    /// Seals one record (an observed date that is not a calendar date: [`VaultError::Invalid`]).
    pub fn seal(&self, r: &NewIdentity<'_>) -> Result<SealedIdentity, VaultError> {
        let record_hash = self.hasher.keyed(Domain::LocalId, &[RECORD_LABEL, &self.dataset, r.record_ref]);
        let observed = match r.link {
            Some(LinkMeta { observed: Some(date) }) => Some(observed_text(date)?),
            _ => None,
        };
        let at = RowBinding {
            person: &r.person,
            record_hash: &record_hash,
            holder: &self.holder,
            dataset: &self.dataset,
            linkable: r.link.is_some(),
            observed: observed.as_deref(),
        };
        // Serialized straight after the nonce and encrypted in place: one buffer per record.
        let size = capacity_hint(r.record_ref, r.identity);
        let sealed = seal_encoded(&self.cipher, &at.aad(), size, |out| encode_into(out, r.record_ref, r.identity));
        Ok(SealedIdentity {
            person: r.person,
            record_hash,
            linkable: r.link.is_some(),
            observed,
            sealed,
            holder: self.holder.clone(),
            dataset: self.dataset.clone(),
        })
    }
}

impl std::fmt::Debug for VaultBatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VaultBatch").field("records", &self.records).field("failed", &self.tx.is_none()).finish_non_exhaustive()
    }
}

impl VaultBatch {
    /// Seals and inserts `records` (an empty slice is fine). An observed date that is not a
    /// calendar date fails with [`VaultError::Invalid`]; any failure rolls the whole batch back.
    /// A record reference stored twice for the dataset fails with
    /// [`VaultError::DuplicateRecord`] when the records are indexed: here once every
    /// 16,777,216 records, else at [`commit`](Self::commit).
    pub async fn add(&mut self, records: &[NewIdentity<'_>]) -> Result<(), VaultError> {
        let sealer = self.sealer();
        let rows = match records.iter().map(|r| sealer.seal(r)).collect::<Result<Vec<_>, _>>() {
            Ok(rows) => rows,
            Err(e) => {
                // Any failure ends the batch.
                if let Some(tx) = self.tx.take() {
                    abandon(tx).await;
                }
                return Err(e);
            }
        };
        self.add_sealed(&rows).await
    }

    /// A [`Sealer`] for this batch, to seal records on another thread (sealing is the CPU part
    /// of [`add`](Self::add); SQLite's part runs on its own worker thread meanwhile).
    pub fn sealer(&self) -> Sealer {
        Sealer {
            cipher: self.vault.cipher.clone(),
            hasher: self.vault.hasher.clone(),
            holder: Arc::from(self.holder.as_str()),
            dataset: Arc::from(self.dataset.as_str()),
        }
    }

    /// Inserts records sealed by this batch's [`Sealer`]. Rows sealed for another holder or
    /// dataset are refused ([`VaultError::Invalid`]); otherwise as [`add`](Self::add).
    pub async fn add_sealed(&mut self, rows: &[SealedIdentity]) -> Result<(), VaultError> {
        // Taken out for the duration: if this future is dropped mid-way the transaction goes
        // with it (rolled back) and the batch stays failed, never half-added.
        let mut tx = self.tx.take().ok_or(VaultError::BatchFailed)?;
        let (holder, dataset) = (self.holder.clone(), self.dataset.clone());
        let (holder, dataset) = (holder.as_str(), dataset.as_str());
        if rows.iter().any(|r| &*r.holder != holder || &*r.dataset != dataset) {
            abandon(tx).await;
            return Err(VaultError::Invalid("a record was sealed for another batch"));
        }
        // Multi-row statements: one round trip to SQLite's worker per chunk, not per row.
        // OR ROLLBACK: a conflict ends the whole transaction (the batch fails as a whole
        // anyway), so SQLite keeps no statement journal for each multi-row statement —
        // measured: a fifth of the time of a batch.
        for chunk in rows.chunks(INSERT_CHUNK) {
            let mut q = sqlx::QueryBuilder::new(
                "INSERT OR ROLLBACK INTO identity_records (person_key, holder, dataset, record_hash, sealed, linkable, observed) ",
            );
            q.push_values(chunk, |mut b, r| {
                b.push_bind(&r.person.0[..])
                    .push_bind(holder)
                    .push_bind(dataset)
                    .push_bind(&r.record_hash.0[..])
                    .push_bind(r.sealed.as_slice())
                    .push_bind(r.linkable)
                    .push_bind(r.observed.as_deref());
            });
            let done = match q.build().execute(&mut *tx).await {
                Ok(done) => done,
                Err(e) => {
                    // A failed statement leaves the transaction open in SQLite: end it here, so
                    // that what this batch inserted before can never be committed.
                    abandon(tx).await;
                    return Err(VaultError::Database(e));
                }
            };
            if self.unindexed_from.is_none() {
                // One statement's rows take consecutive ids after the largest, and the batch
                // holds the write lock from here on.
                self.unindexed_from = Some(done.last_insert_rowid() - chunk.len() as i64 + 1);
            }
            self.unindexed += chunk.len();
            if self.unindexed >= self.sorted_run {
                if let Err(e) = self.index_sorted(&mut tx).await {
                    abandon(tx).await;
                    return Err(e);
                }
            }
        }
        self.records += rows.len() as u64;
        self.tx = Some(tx);
        Ok(())
    }

    /// Indexes records by reference and person every `n` records instead of [`SORTED_RUN`] (for
    /// tests of the runs).
    #[doc(hidden)]
    pub fn with_sorted_run(mut self, n: usize) -> Self {
        self.sorted_run = n.max(1);
        self
    }

    /// Indexes the records inserted since the last run by reference and by person, each sorted
    /// by key. A reference already stored fails with [`VaultError::DuplicateRecord`].
    ///
    /// OR ROLLBACK, as for the records: a conflict ends the transaction, so SQLite keeps no
    /// statement journal of every page a run touches.
    async fn index_sorted(&mut self, tx: &mut Transaction<'static, Sqlite>) -> Result<(), VaultError> {
        let Some(from) = self.unindexed_from.filter(|_| self.unindexed > 0) else { return Ok(()) };
        let refs = sqlx::query(
            "INSERT OR ROLLBACK INTO record_refs (dataset, record_hash) \
             SELECT dataset, record_hash FROM identity_records WHERE id >= $1 ORDER BY dataset, record_hash",
        )
        .bind(from)
        .execute(&mut **tx)
        .await;
        let refs = match refs {
            Ok(done) => done.rows_affected(),
            Err(sqlx::Error::Database(db)) if db.is_unique_violation() => return Err(VaultError::DuplicateRecord),
            Err(e) => return Err(VaultError::Database(e)),
        };
        let persons = sqlx::query("INSERT OR ROLLBACK INTO person_records (person_key, id) SELECT person_key, id FROM identity_records WHERE id >= $1 ORDER BY person_key, id")
            .bind(from)
            .execute(&mut **tx)
            .await?
            .rows_affected();
        // Every record from `from` on is the batch's (ids are the largest plus one while it holds
        // the write lock): anything else means another writer or a changed schema.
        if refs != self.unindexed as u64 || persons != self.unindexed as u64 {
            return Err(VaultError::Invalid("the batch's records were not where it wrote them"));
        }
        self.unindexed_from = Some(from + self.unindexed as i64);
        self.unindexed = 0;
        Ok(())
    }

    /// Stores the anchors of the linkage run that keyed the records (an anchor already known
    /// for the dataset is re-pointed at the new person key) and commits the batch; returns the
    /// number of records stored. A record reference already stored for the dataset (by an
    /// earlier batch, or twice in this one) fails with [`VaultError::DuplicateRecord`]. On
    /// failure nothing of the batch is stored.
    ///
    /// The batch's references and persons are indexed here, sorted, each index page written
    /// once (`0005_sorted_lookups.sql`).
    pub async fn commit(mut self, anchors: &[(PersonKey, PersonKey)]) -> Result<u64, VaultError> {
        self.put_anchors(anchors).await?;
        let mut tx = self.tx.take().ok_or(VaultError::BatchFailed)?;
        if let Err(e) = self.index_sorted(&mut tx).await {
            abandon(tx).await;
            return Err(e);
        }
        tx.commit().await?;
        Ok(self.records)
    }

    /// Stores the anchors of the linkage run in the batch, as [`VaultBatch::commit`] does, ahead
    /// of the commit, in as many calls as it likes (of an anchor given twice, in one call or
    /// two, the last stays): a caller that has them before its records (the intake, in chunks
    /// as linkage makes them) hands them over and frees them instead of holding them. On failure the
    /// batch is abandoned (nothing of it is stored; a later call fails with
    /// [`VaultError::BatchFailed`]).
    pub async fn put_anchors(&mut self, anchors: &[(PersonKey, PersonKey)]) -> Result<(), VaultError> {
        if anchors.is_empty() {
            return if self.tx.is_some() { Ok(()) } else { Err(VaultError::BatchFailed) };
        }
        let mut tx = self.tx.take().ok_or(VaultError::BatchFailed)?;
        // An anchor already stored for the dataset is deleted and inserted again: the row gets a
        // new rowid, which `prior_keys` orders by. Of an anchor listed twice the last stays, in
        // its place. (Not `INSERT OR REPLACE`: a statement that can abort half-way keeps a
        // journal of the pages it changes, in a temporary file.)
        // Positions sorted by anchor, then position: of equal anchors the last is kept (4 bytes
        // and a bit an anchor, where a map from anchor to position took about 35 at a million).
        let mut order: Vec<u32> = (0..anchors.len() as u32).collect();
        order.sort_unstable_by_key(|&i| (anchors[i as usize].0, i));
        let mut dropped = vec![false; anchors.len()];
        for pair in order.windows(2) {
            if anchors[pair[0] as usize].0 == anchors[pair[1] as usize].0 {
                dropped[pair[0] as usize] = true;
            }
        }
        drop(order);
        let kept: Vec<&(PersonKey, PersonKey)> = anchors.iter().zip(&dropped).filter(|(_, &d)| !d).map(|(a, _)| a).collect();
        drop(dropped);
        let done = write_anchors(&mut tx, &self.dataset, &kept).await;
        self.end_step(tx, done).await
    }

    /// Gives the transaction back to the batch after a step that went through, or abandons it
    /// (nothing of the batch is stored) after one that failed.
    async fn end_step(&mut self, tx: Transaction<'static, Sqlite>, done: Result<(), sqlx::Error>) -> Result<(), VaultError> {
        match done {
            Ok(()) => {
                self.tx = Some(tx);
                Ok(())
            }
            Err(e) => {
                abandon(tx).await;
                Err(VaultError::Database(e))
            }
        }
    }
}

/// Each anchor of `kept` (one row per anchor) deleted for the dataset and inserted again.
async fn write_anchors(tx: &mut Transaction<'static, Sqlite>, dataset: &str, kept: &[&(PersonKey, PersonKey)]) -> Result<(), sqlx::Error> {
    for chunk in kept.chunks(INSERT_CHUNK) {
        let mut gone = sqlx::QueryBuilder::new("DELETE FROM anchors WHERE dataset = ");
        gone.push_bind(dataset).push(" AND anchor IN (");
        let mut list = gone.separated(", ");
        for (anchor, _) in chunk {
            list.push_bind(&anchor.0[..]);
        }
        gone.push(")");
        gone.build().execute(&mut **tx).await?;
        let mut add = sqlx::QueryBuilder::new("INSERT OR ROLLBACK INTO anchors (anchor, dataset, person_key) ");
        add.push_values(chunk, |mut b, (anchor, person)| {
            b.push_bind(&anchor.0[..]).push_bind(dataset).push_bind(&person.0[..]);
        });
        add.build().execute(&mut **tx).await?;
    }
    Ok(())
}

/// Ends a batch's transaction after a failure. A conflict under OR ROLLBACK has ended it in
/// SQLite already, and sqlx counts a transaction as ended only when its `ROLLBACK` succeeds: left
/// at that, the pool's connection would open the next transaction as a savepoint inside none,
/// and a later `ROLLBACK TO` would leave it open (the next batch committed on it was lost when
/// the vault closed). So a transaction is begun first (refused harmlessly where one is still
/// open) and then rolled back.
async fn abandon(mut tx: Transaction<'static, Sqlite>) {
    let _ = sqlx::query("BEGIN").execute(&mut *tx).await;
    let _ = tx.rollback().await;
}

static MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite");

/// Label sealed in `vault_meta.sealing_check` and hashed in `vault_meta.vault_key_check`.
const KEY_CHECK: &str = "niji-vault/v1/key-check";
/// First part of the keyed hash of a record reference (domain separation inside
/// `Domain::LocalId`, whose other users never pass this label).
const RECORD_LABEL: &str = "niji-vault/v1/record";
/// Version byte of the sealed serialization written now: 2 (lengths as LEB128, the field names
/// of [`FIELD_NAMES`] as one byte). Identities sealed as 1 (lengths of 2 and 4 bytes, every
/// field name spelled out) are still read.
const FORMAT: u8 = 2;
const FORMAT_1: u8 = 1;

/// Field names the intake gives identity items most often (a UKE claim's RE, HO, KO and SN
/// items and its free-text records, a FHIR Patient's), stored as their index + 1 in one byte:
/// spelled out they were about half of a sealed claim (a UKE claim is ~9 items whose names,
/// `RE.36(カタカナ氏名)` and the like, run to 12–25 bytes each). Sealed identities refer to them
/// by index: append only, never reorder or remove.
const FIELD_NAMES: &[&str] = &[
    "RE.4(氏名)",
    "RE.36(カタカナ氏名)",
    "RE.13(カルテ番号)",
    "RE.6(生年月日)",
    "RE.5(男女区分)",
    "HO.1(保険者番号)",
    "HO.2(記号)",
    "HO.3(番号)",
    "KO.1(公費負担者番号)",
    "KO.2(受給者番号)",
    "SN.3(保険者番号等)",
    "SN.4(記号)",
    "SN.5(番号)",
    "SN.6(枝番)",
    "SN.7(受給者番号)",
    "SY.5(傷病名称)",
    "SY.7(補足コメント)",
    "CO.4(文字データ)",
    "IR.6(医療機関名称)",
    "IR.9(電話番号)",
    "Bundle.entry.fullUrl",
    "Patient.id",
    "Patient.gender",
    "Patient.birthDate",
    "Patient.text.div",
    "Patient.telecom",
    "Patient.identifier[0]",
    "Patient.identifier[1]",
    "Patient.identifier[0].value",
    "Patient.identifier[0].value#insurer",
    "Patient.identifier[0].value#symbol",
    "Patient.identifier[0].value#number",
    "Patient.identifier[0].value#branch",
    "Patient.identifier[1].value",
    "Patient.identifier[1].value#insurer",
    "Patient.identifier[1].value#symbol",
    "Patient.identifier[1].value#number",
    "Patient.identifier[1].value#branch",
    "Patient.name[0].text",
    "Patient.name[0].family",
    "Patient.name[0].given",
    "Patient.name[1].text",
    "Patient.name[1].family",
    "Patient.name[1].given",
    "Patient.address.text",
    "Patient.address.line",
    "Patient.address.city",
    "Patient.address.district",
    "Patient.address.state",
    "Patient.address.postalCode",
];

/// The one-byte code of a field name of [`FIELD_NAMES`] (0: spelled out).
fn field_code(field: &str) -> u8 {
    static CODES: std::sync::OnceLock<std::collections::HashMap<&'static str, u8>> = std::sync::OnceLock::new();
    let codes = CODES.get_or_init(|| FIELD_NAMES.iter().enumerate().map(|(i, f)| (*f, u8::try_from(i + 1).expect("at most 255 names"))).collect());
    codes.get(field).copied().unwrap_or(0)
}
/// Records a batch indexes by reference and by person at a time, sorted by SQLite (spilling to
/// temporary files past its cache, so memory stays bounded): each index page is written once a
/// run, not once a record. One run for all but the largest batches: at 2.7 million records it
/// was 215k UKE lines/s end to end, against 191k with runs of 262,144.
const SORTED_RUN: usize = 1 << 24;

/// Rows per multi-row INSERT (7 bound values each: well under SQLite's 32,766).
const INSERT_CHUNK: usize = 4_000;
const NONCE: usize = 24;
/// Poly1305 tag length.
const TAG: usize = 16;

/// Runs `migrator`'s pending migrations, again where a run failed, as long as another
/// process may have applied one meanwhile: SQLite's migrator takes no lock, so two processes
/// opening the vault at once after an upgrade both read the same list of applied migrations,
/// and the one whose migration waited for the other's write lock fails on what the other made
/// (a column added twice). By then the other has committed that migration, and the next run
/// finds it applied. A run fails at most once per migration that way.
pub(crate) async fn migrate(migrator: &sqlx::migrate::Migrator, pool: &SqlitePool) -> Result<(), VaultError> {
    let mut tries = migrator.iter().count();
    loop {
        match migrator.run(pool).await {
            Ok(()) => return Ok(()),
            Err(e) if tries == 0 => return Err(e.into()),
            Err(_) => tries -= 1,
        }
    }
}

/// Refuses a vault created with other keys (writing the key checks into a new vault).
async fn check_keys(pool: &SqlitePool, cipher: &XChaCha20Poly1305, hasher: &Pseudonymizer) -> Result<(), VaultError> {
    let key_check = hasher.keyed(Domain::LocalId, &[KEY_CHECK]);
    // Written once, when the vault is new: an INSERT takes SQLite's write lock even when it
    // inserts nothing, and an intake's batch holds that lock for minutes, so a vault opened
    // to read (a citizen's page, a listing) only reads.
    let select = "SELECT vault_key_check, sealing_check FROM vault_meta WHERE id = 1";
    let row = match sqlx::query(select).fetch_optional(pool).await? {
        Some(row) => row,
        None => {
            let sealed_check = seal_with(cipher, KEY_CHECK.as_bytes(), KEY_CHECK.as_bytes());
            sqlx::query("INSERT OR IGNORE INTO vault_meta (id, vault_key_check, sealing_check) VALUES (1, $1, $2)")
                .bind(&key_check.0[..])
                .bind(&sealed_check)
                .execute(pool)
                .await?;
            sqlx::query(select).fetch_one(pool).await?
        }
    };
    let stored_key_check: Vec<u8> = row.try_get("vault_key_check")?;
    let stored_sealed: Vec<u8> = row.try_get("sealing_check")?;
    match open_with(cipher, &stored_sealed, KEY_CHECK.as_bytes()) {
        Some(plain) if plain == KEY_CHECK.as_bytes() => {}
        _ => return Err(VaultError::WrongSealingKey),
    }
    if stored_key_check != key_check.0 {
        return Err(VaultError::WrongVaultKey);
    }
    Ok(())
}

impl Vault {
    fn unseal(&self, at: &RowBinding<'_>, sealed: &[u8]) -> Result<(String, Identity), VaultError> {
        let plain = self.open_raw(sealed, &at.aad()).ok_or(VaultError::Tampered)?;
        decode(&plain)
    }

    /// nonce ‖ ciphertext ‖ tag.
    fn seal_raw(&self, plain: &[u8], aad: &[u8]) -> Vec<u8> {
        seal_with(&self.cipher, plain, aad)
    }

    fn open_raw(&self, sealed: &[u8], aad: &[u8]) -> Option<Vec<u8>> {
        open_with(&self.cipher, sealed, aad)
    }
}

/// The columns of an `identity_records` row that its sealed blob is bound to.
struct RowBinding<'a> {
    person: &'a PersonKey,
    record_hash: &'a PersonKey,
    holder: &'a str,
    dataset: &'a str,
    linkable: bool,
    /// The `observed` column's text.
    observed: Option<&'a str>,
}

impl RowBinding<'_> {
    /// Associated data of a sealed identity: label, person key, record hash, dataset, holder
    /// (the strings length-prefixed). For a row with link meta (`linkable`, or an `observed`
    /// date) it goes on with a link label, the flag, and the date's text (a presence byte, then
    /// length-prefixed), so flipping the flag or altering the date fails authentication. Rows
    /// without link meta — every row written before migration 0002 — keep the original layout.
    fn aad(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(128 + self.holder.len() + self.dataset.len());
        out.extend_from_slice(b"niji-vault/v1/identity\0");
        out.extend_from_slice(&self.person.0);
        out.extend_from_slice(&self.record_hash.0);
        for s in [self.dataset, self.holder] {
            put_str32(&mut out, s);
        }
        if self.linkable || self.observed.is_some() {
            out.extend_from_slice(b"niji-vault/v1/link\0");
            out.push(u8::from(self.linkable));
            out.push(u8::from(self.observed.is_some()));
            put_str32(&mut out, self.observed.unwrap_or(""));
        }
        out
    }
}

/// `$first, $first+1, …` (`n` placeholders).
/// Whether `dataset` has linkable records: then its persons are counted by those (see
/// [`Vault::persons_in`]).
async fn has_linkable(conn: &mut SqliteConnection, dataset: &str) -> Result<bool, VaultError> {
    Ok(sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM identity_records WHERE dataset = $1 AND linkable)").bind(dataset).fetch_one(conn).await?)
}

/// `datasets` split into those with linkable records and those without, read on `conn` (the
/// caller's snapshot).
pub(crate) async fn split_by_linkable<S: AsRef<str>>(conn: &mut SqliteConnection, datasets: &[S]) -> Result<(Vec<String>, Vec<String>), VaultError> {
    let (mut linked, mut unlinked) = (Vec::new(), Vec::new());
    for d in datasets.iter().map(AsRef::as_ref) {
        if has_linkable(conn, d).await? {
            linked.push(d.to_string())
        } else {
            unlinked.push(d.to_string())
        }
    }
    Ok((linked, unlinked))
}

fn placeholders(first: usize, n: usize) -> String {
    (first..first + n).map(|i| format!("${i}")).collect::<Vec<_>>().join(", ")
}

/// The plaintext of nonce ‖ ciphertext ‖ tag, or `None` when it fails authentication.
fn open_with(cipher: &XChaCha20Poly1305, sealed: &[u8], aad: &[u8]) -> Option<Vec<u8>> {
    if sealed.len() < NONCE + TAG {
        return None;
    }
    let (nonce, ct) = sealed.split_at(NONCE);
    cipher.decrypt(XNonce::from_slice(nonce), Payload { msg: ct, aad }).ok()
}

/// nonce ‖ ciphertext ‖ tag, with a fresh random nonce.
fn seal_with(cipher: &XChaCha20Poly1305, plain: &[u8], aad: &[u8]) -> Vec<u8> {
    seal_encoded(cipher, aad, plain.len(), |out| out.extend_from_slice(plain))
}

/// As [`seal_with`], with the plaintext written by `write` right after the nonce into the output
/// buffer and encrypted there in place (the same bytes as `Aead::encrypt`: ciphertext ‖ tag).
fn seal_encoded(cipher: &XChaCha20Poly1305, aad: &[u8], size: usize, write: impl FnOnce(&mut Vec<u8>)) -> Vec<u8> {
    let nonce = XChaCha20Poly1305::generate_nonce(&mut OsRng);
    let mut out = Vec::with_capacity(NONCE + size + TAG);
    out.extend_from_slice(&nonce);
    write(&mut out);
    let tag = cipher.encrypt_in_place_detached(&nonce, aad, &mut out[NONCE..]).expect("XChaCha20-Poly1305 sealing does not fail");
    out.extend_from_slice(&tag);
    out
}

/// The `observed` column's text of a date: ISO at the date's precision (`YYYY-MM-DD`, `YYYY-MM`,
/// `YYYY`). A date that would not read back as itself is refused.
fn observed_text(date: Date) -> Result<String, VaultError> {
    let text = date.to_string();
    match niji_ingest::dates::parse_iso(&text) {
        Ok(back) if back == date => Ok(text),
        _ => Err(VaultError::Invalid("an observed date is not a calendar date")),
    }
}

fn parse_observed(text: &str) -> Result<Date, VaultError> {
    niji_ingest::dates::parse_iso(text).map_err(|_| VaultError::Invalid("a stored observed date is not an ISO date"))
}

fn key_of(bytes: Vec<u8>) -> Result<PersonKey, VaultError> {
    Ok(PersonKey(bytes.try_into().map_err(|_| VaultError::Invalid("a stored key is not 32 bytes"))?))
}

/// Compact serialization ([`FORMAT`] 2): version byte; record reference (length, bytes); item
/// count; per item: kind (u8), field (one byte: its index + 1 in [`FIELD_NAMES`], or 0 followed
/// by length and bytes), value (length, bytes). Lengths and the count are LEB128.
#[cfg(test)]
fn encode(record_ref: &str, identity: &Identity) -> Vec<u8> {
    let mut out = Vec::with_capacity(encoded_len(record_ref, identity));
    encode_into(&mut out, record_ref, identity);
    out
}

/// [`encode`], appended to `out`.
fn encode_into(out: &mut Vec<u8>, record_ref: &str, identity: &Identity) {
    out.push(FORMAT);
    put_text(out, record_ref);
    put_varint(out, identity.items.len());
    for item in &identity.items {
        out.push(kind_code(item.kind));
        let code = field_code(&item.field);
        out.push(code);
        if code == 0 {
            put_text(out, &item.field);
        }
        put_text(out, &item.value);
    }
}

/// The buffer a record is sealed in: [`encode`]'s length if every field name is in
/// [`FIELD_NAMES`] and every length takes its longest form (no table lookups: sealing looks each
/// name up once, while writing it; a name spelled out grows the buffer once).
fn capacity_hint(record_ref: &str, identity: &Identity) -> usize {
    1 + 5 + record_ref.len() + 5 + identity.items.iter().map(|i| 2 + 5 + i.value.len()).sum::<usize>()
}

/// The length of [`encode`]'s output.
#[cfg(test)]
fn encoded_len(record_ref: &str, identity: &Identity) -> usize {
    let text = |n: usize| varint_len(n) + n;
    let items: usize = identity.items.iter().map(|i| 2 + if field_code(&i.field) == 0 { text(i.field.len()) } else { 0 } + text(i.value.len())).sum();
    1 + text(record_ref.len()) + varint_len(identity.items.len()) + items
}

/// Bytes of `n` as LEB128.
#[cfg(test)]
fn varint_len(n: usize) -> usize {
    (usize::BITS - n.leading_zeros()).div_ceil(7).max(1) as usize
}

fn put_varint(out: &mut Vec<u8>, mut n: usize) {
    while n >= 0x80 {
        out.push((n as u8 & 0x7f) | 0x80);
        n >>= 7;
    }
    out.push(n as u8);
}

/// A string with a 4-byte big-endian length (the associated data's layout, which must not change).
fn put_str32(out: &mut Vec<u8>, s: &str) {
    out.extend_from_slice(&(s.len() as u32).to_be_bytes());
    out.extend_from_slice(s.as_bytes());
}

fn put_text(out: &mut Vec<u8>, s: &str) {
    put_varint(out, s.len());
    out.extend_from_slice(s.as_bytes());
}

fn decode(bytes: &[u8]) -> Result<(String, Identity), VaultError> {
    const BAD: VaultError = VaultError::Invalid("sealed identity has an unknown layout");
    let mut r = Reader { bytes, pos: 0 };
    let format = r.take(1).ok_or(BAD)?[0];
    let (record_ref, count) = match format {
        FORMAT => (r.text().ok_or(BAD)?, r.varint().ok_or(BAD)?),
        FORMAT_1 => (r.string(4).ok_or(BAD)?, r.len(4).ok_or(BAD)?),
        _ => return Err(BAD),
    };
    let mut items = Vec::with_capacity(count.min(1024));
    for _ in 0..count {
        let kind = kind_from_code(r.take(1).ok_or(BAD)?[0]).ok_or(BAD)?;
        let (field, value) = if format == FORMAT {
            let field = match r.take(1).ok_or(BAD)?[0] {
                0 => r.text().ok_or(BAD)?,
                code => FIELD_NAMES.get(usize::from(code) - 1).ok_or(BAD)?.to_string(),
            };
            (field, r.text().ok_or(BAD)?)
        } else {
            (r.string(2).ok_or(BAD)?, r.string(4).ok_or(BAD)?)
        };
        items.push(IdentityItem { kind, field, value });
    }
    if r.pos != bytes.len() {
        return Err(BAD);
    }
    Ok((record_ref, Identity { items }))
}

struct Reader<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let end = self.pos.checked_add(n)?;
        let out = self.bytes.get(self.pos..end)?;
        self.pos = end;
        Some(out)
    }

    fn len(&mut self, width: usize) -> Option<usize> {
        let b = self.take(width)?;
        Some(b.iter().fold(0usize, |acc, &x| (acc << 8) | x as usize))
    }

    fn string(&mut self, width: usize) -> Option<String> {
        let n = self.len(width)?;
        String::from_utf8(self.take(n)?.to_vec()).ok()
    }

    /// A LEB128 length (at most five bytes: lengths of a sealed identity fit in 32 bits).
    fn varint(&mut self) -> Option<usize> {
        let mut n = 0usize;
        for shift in (0..35).step_by(7) {
            let b = self.take(1)?[0];
            n |= usize::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                return Some(n);
            }
        }
        None
    }

    fn text(&mut self) -> Option<String> {
        let n = self.varint()?;
        String::from_utf8(self.take(n)?.to_vec()).ok()
    }
}

/// Stable one-byte codes of identifier kinds (never reorder; append new kinds).
fn kind_code(kind: IdentifierKind) -> u8 {
    use IdentifierKind::*;
    match kind {
        NameKanji => 1,
        NameKana => 2,
        BirthDate => 3,
        Sex => 4,
        InsurerNumber => 5,
        InsuredSymbol => 6,
        InsuredNumber => 7,
        BranchNumber => 8,
        PatientId => 9,
        MyNumber => 10,
        Phone => 11,
        Address => 12,
        PostalCode => 13,
        FreeText => 14,
        MemberId => 15,
        Narrative => 16,
        PublicExpenseRecipient => 17,
        SubjectReference => 18,
        RecordIdentifier => 19,
        OtherPartyIdentifier => 20,
    }
}

fn kind_from_code(code: u8) -> Option<IdentifierKind> {
    use IdentifierKind::*;
    Some(match code {
        1 => NameKanji,
        2 => NameKana,
        3 => BirthDate,
        4 => Sex,
        5 => InsurerNumber,
        6 => InsuredSymbol,
        7 => InsuredNumber,
        8 => BranchNumber,
        9 => PatientId,
        10 => MyNumber,
        11 => Phone,
        12 => Address,
        13 => PostalCode,
        14 => FreeText,
        15 => MemberId,
        16 => Narrative,
        17 => PublicExpenseRecipient,
        18 => SubjectReference,
        19 => RecordIdentifier,
        20 => OtherPartyIdentifier,
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `Debug` of what the vault hands out and takes in shows neither the record reference (a
    /// file may be named after its patient) nor an identity's values.
    #[test]
    fn debug_shows_no_reference_and_no_value() {
        let identity = Identity { items: vec![IdentityItem { kind: IdentifierKind::NameKanji, field: "name".into(), value: "山田太郎".into() }] };
        let stored =
            StoredIdentity { holder: "H1".into(), dataset: "d".into(), record_ref: "山田太郎さん.json:3".into(), identity: identity.clone() };
        let new = NewIdentity { record_ref: "山田太郎さん.json:3", identity: &identity, person: PersonKey([7; 32]), link: None };
        let shown = format!("{stored:?} {new:?}");
        assert!(shown.contains("record_ref_len") && shown.contains("H1"), "{shown}");
        assert!(!shown.contains("山田") && !shown.contains(".json"), "{shown}");
    }

    #[test]
    fn serialization_round_trips_every_kind() {
        let items: Vec<IdentityItem> =
            (1..=20u8).map(|c| IdentityItem { kind: kind_from_code(c).unwrap(), field: format!("f{c}"), value: format!("値{c}") }).collect();
        for item in &items {
            assert_eq!(kind_from_code(kind_code(item.kind)), Some(item.kind));
        }
        let bytes = encode("a.ndjson:3", &Identity { items: items.clone() });
        let (r, id) = decode(&bytes).unwrap();
        assert_eq!(r, "a.ndjson:3");
        assert_eq!(id.items, items);
        assert!(decode(&bytes[..bytes.len() - 1]).is_err());
        assert!(kind_from_code(0).is_none() && kind_from_code(21).is_none());
    }

    /// The layout of [`FORMAT_1`], as identities sealed before session 18 hold it.
    fn encode_format_1(record_ref: &str, identity: &Identity) -> Vec<u8> {
        let mut out = vec![FORMAT_1];
        out.extend_from_slice(&(record_ref.len() as u32).to_be_bytes());
        out.extend_from_slice(record_ref.as_bytes());
        out.extend_from_slice(&(identity.items.len() as u32).to_be_bytes());
        for item in &identity.items {
            out.push(kind_code(item.kind));
            out.extend_from_slice(&(item.field.len() as u16).to_be_bytes());
            out.extend_from_slice(item.field.as_bytes());
            out.extend_from_slice(&(item.value.len() as u32).to_be_bytes());
            out.extend_from_slice(item.value.as_bytes());
        }
        out
    }

    fn claim() -> Identity {
        let item = |kind, field: &str, value: &str| IdentityItem { kind, field: field.into(), value: value.into() };
        use IdentifierKind::*;
        Identity {
            items: vec![
                item(NameKanji, "RE.4(氏名)", "山田　太郎"),
                item(NameKana, "RE.36(カタカナ氏名)", "ヤマダ　タロウ"),
                item(PatientId, "RE.13(カルテ番号)", "001"),
                item(BirthDate, "RE.6(生年月日)", "19911031"),
                item(Sex, "RE.5(男女区分)", "1"),
                item(InsurerNumber, "HO.1(保険者番号)", "01010016"),
                item(InsuredSymbol, "HO.2(記号)", "１"),
                item(InsuredNumber, "HO.3(番号)", "１"),
                // A name not in the table is spelled out; a long value needs a longer length.
                item(FreeText, "XX.9(その他)", &"長".repeat(100)),
            ],
        }
    }

    #[test]
    fn common_field_names_take_one_byte_and_older_identities_still_read() {
        let id = claim();
        let now = encode("r/202110.UKE:2", &id);
        let before = encode_format_1("r/202110.UKE:2", &id);
        for bytes in [&now, &before] {
            let (record_ref, back) = decode(bytes).unwrap();
            assert_eq!((record_ref.as_str(), &back.items), ("r/202110.UKE:2", &id.items));
        }
        // 8 names of the table: 9–24 bytes each spelled out, and 4 + 2 length bytes per item.
        assert!(now.len() + 150 < before.len(), "{} vs {}", now.len(), before.len());
        assert_eq!(encoded_len("r/202110.UKE:2", &id), now.len());
        for n in [0, 1, 127, 128, 16_383, 16_384, u32::MAX as usize] {
            let mut out = Vec::new();
            put_varint(&mut out, n);
            assert_eq!((out.len(), Reader { bytes: &out, pos: 0 }.varint()), (varint_len(n), Some(n)));
        }
        // Every cut is refused, as are a field code past the table and a length that never ends.
        for end in 0..now.len() {
            assert!(decode(&now[..end]).is_err(), "cut at {end}");
        }
        let mut past =
            encode("r", &Identity { items: vec![IdentityItem { kind: IdentifierKind::Sex, field: "Patient.gender".into(), value: "1".into() }] });
        let code = past.len() - 3;
        assert_eq!(usize::from(past[code]), FIELD_NAMES.iter().position(|f| *f == "Patient.gender").unwrap() + 1);
        past[code] = FIELD_NAMES.len() as u8 + 1;
        assert!(decode(&past).is_err());
        assert!(decode(&[FORMAT, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01]).is_err());
        assert!(decode(&[3, 0, 0]).is_err());
        // The table has no repeats and fits a byte.
        let distinct: std::collections::HashSet<&str> = FIELD_NAMES.iter().copied().collect();
        assert!(distinct.len() == FIELD_NAMES.len() && FIELD_NAMES.len() < 256);
    }

    /// Every field name the intake gives the identity items of the UKE sample's claims, and of
    /// the Patients of the CLINS examples, is in the table (a renamed field in `niji-ingest`
    /// would quietly double a record's size).
    #[test]
    fn the_samples_name_only_fields_of_the_table() {
        let datasets = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/datasets");
        let config = niji_ingest::IngestConfig::new(niji_ingest::Date::new(2026, 11, 21).unwrap());
        let mut paths = vec![datasets.join("uke/RECEIPTC_GAIRAI_SAMPLE.UKE")];
        for entry in std::fs::read_dir(datasets.join("clins")).unwrap() {
            let path = entry.unwrap().path();
            if path.extension().is_some_and(|e| e == "json") && !path.to_string_lossy().contains("ErrorExample") {
                paths.push(path);
            }
        }
        let mut fields = std::collections::BTreeSet::new();
        for path in &paths {
            niji_ingest::ingest_path(path, &config, None, &mut |r| {
                if matches!(
                    r.content.body,
                    niji_ingest::ContentBody::Patient(_) | niji_ingest::ContentBody::Claim(_) | niji_ingest::ContentBody::ClaimPayer(_)
                ) {
                    fields.extend(r.identity.items.iter().map(|i| i.field.clone()));
                }
            })
            .unwrap();
        }
        assert!(fields.iter().any(|f| f.starts_with("RE.")) && fields.iter().any(|f| f.starts_with("Patient.name")), "{fields:?}");
        let missing: Vec<&String> = fields.iter().filter(|f| field_code(f) == 0).collect();
        assert!(missing.is_empty(), "{missing:?}");
    }
}
