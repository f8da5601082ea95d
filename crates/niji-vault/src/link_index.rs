//! The link index (`0006_link_index.sql`): how a linkage run finds the earlier persons its
//! records can reach (`niji_privacy::reach`) without unsealing every linkable record of the
//! instance, and how the run's outcome is written back in its batch.
//!
//! A person is found by a bucket (`link_buckets`) or an anchor (`anchors`), under its current
//! key; records keep the key they were stored under, and `link_clusters` says which current
//! person a stored key now belongs to. Reading a person back reads every linkable record whose
//! stored key belongs to it. Stale rows (a deleted dataset, a batch whose version was undone)
//! only make a run read back more, never less: a run rewrites the rows of every person it read.

use std::collections::{HashMap, HashSet};

use niji_privacy::LinkBucket;
use sqlx::Row;

use crate::{abandon, key_of, LinkableRow, PersonKey, PriorKeys, StoredLinkRecord, Vault, VaultBatch, VaultError};

/// Keys per `IN (…)` list (well under SQLite's 32,766 bound values).
const LOOKUP_CHUNK: usize = 500;

/// One linkable record read back for a linkage run ([`Vault::reached_records`]).
#[derive(Debug, Clone)]
pub struct ReachedRecord {
    /// Its row id: the order records were stored in, which linkage takes for ties.
    pub id: i64,
    /// The current key of the person it belongs to (its stored key is `record.person`).
    pub person: PersonKey,
    pub record: StoredLinkRecord,
}

/// What a linkage run writes to the link index with its batch ([`VaultBatch::index_links`]).
#[derive(Debug, Clone, Default)]
pub struct LinkIndexUpdate {
    /// Bucket rows of the persons the run read back, as they were: deleted first.
    pub retired: Vec<(LinkBucket, PersonKey)>,
    /// Bucket rows of every person of the run, under its key now.
    pub buckets: Vec<(LinkBucket, PersonKey)>,
    /// Every stored key the run read back: its `link_clusters` row is deleted first.
    pub stored_keys: Vec<PersonKey>,
    /// Stored key → current key, where they differ.
    pub moved: Vec<(PersonKey, PersonKey)>,
    /// The run read back every linkable record: the index now covers them all.
    pub complete: bool,
}

impl Vault {
    /// Whether the link index covers every linkable record (else the next run reads back all of
    /// them, and completes it).
    pub async fn link_index_complete(&self) -> Result<bool, VaultError> {
        let row = sqlx::query("SELECT complete FROM link_index WHERE id = 1").fetch_one(&self.pool).await?;
        Ok(row.try_get::<i64, _>("complete")? != 0)
    }

    /// The current keys of the persons that `buckets` and `anchors` reach, sorted.
    pub async fn persons_reached(&self, buckets: &[LinkBucket], anchors: &[PersonKey]) -> Result<Vec<PersonKey>, VaultError> {
        let mut found: HashSet<PersonKey> = HashSet::new();
        for chunk in buckets.chunks(LOOKUP_CHUNK) {
            let mut q = sqlx::QueryBuilder::new("SELECT person_key FROM link_buckets WHERE bucket IN (");
            let mut list = q.separated(", ");
            for b in chunk {
                list.push_bind(&b.0[..]);
            }
            q.push(")");
            for row in q.build().fetch_all(&self.pool).await? {
                found.insert(key_of(row.try_get("person_key")?)?);
            }
        }
        for chunk in anchors.chunks(LOOKUP_CHUNK) {
            let mut q = sqlx::QueryBuilder::new("SELECT person_key FROM anchors WHERE anchor IN (");
            let mut list = q.separated(", ");
            for a in chunk {
                list.push_bind(&a.0[..]);
            }
            q.push(")");
            for row in q.build().fetch_all(&self.pool).await? {
                found.insert(key_of(row.try_get("person_key")?)?);
            }
        }
        // A key found may be one that records were stored under and that now belongs to
        // another person.
        let found: Vec<PersonKey> = found.into_iter().collect();
        let mut out = self.current_keys(&found).await?;
        out.sort_unstable();
        out.dedup();
        Ok(out)
    }

    /// Every linkable record of `persons` (current keys, as [`Vault::persons_reached`] gives
    /// them) in `datasets`, by id, unsealed. Nothing is logged here; the caller decides and
    /// audits who may call it.
    pub async fn reached_records(&self, persons: &[PersonKey], datasets: &[String]) -> Result<Vec<ReachedRecord>, VaultError> {
        if datasets.is_empty() || persons.is_empty() {
            return Ok(Vec::new());
        }
        // Stored key → current key, for the persons and every key now theirs.
        let mut belongs: HashMap<PersonKey, PersonKey> = persons.iter().map(|p| (*p, *p)).collect();
        for chunk in persons.chunks(LOOKUP_CHUNK) {
            let mut q = sqlx::QueryBuilder::new("SELECT stored_key, person_key FROM link_clusters WHERE person_key IN (");
            let mut list = q.separated(", ");
            for k in chunk {
                list.push_bind(&k.0[..]);
            }
            q.push(")");
            for row in q.build().fetch_all(&self.pool).await? {
                belongs.insert(key_of(row.try_get("stored_key")?)?, key_of(row.try_get("person_key")?)?);
            }
        }
        let stored: Vec<PersonKey> = belongs.keys().copied().collect();
        let wanted: HashSet<&str> = datasets.iter().map(String::as_str).collect();
        let mut rows: Vec<(i64, LinkableRow)> = Vec::new();
        for chunk in stored.chunks(LOOKUP_CHUNK) {
            let mut q = sqlx::QueryBuilder::new(
                "SELECT r.id, r.person_key, r.holder, r.dataset, r.record_hash, r.sealed, r.observed FROM person_records p \
                 JOIN identity_records r ON r.id = p.id WHERE r.linkable AND p.person_key IN (",
            );
            let mut list = q.separated(", ");
            for k in chunk {
                list.push_bind(&k.0[..]);
            }
            q.push(")");
            for row in q.build().fetch_all(&self.pool).await? {
                let dataset: String = row.try_get("dataset")?;
                if !wanted.contains(dataset.as_str()) {
                    continue;
                }
                rows.push((
                    row.try_get("id")?,
                    (
                        key_of(row.try_get("person_key")?)?,
                        row.try_get("holder")?,
                        dataset,
                        key_of(row.try_get("record_hash")?)?,
                        row.try_get("sealed")?,
                        row.try_get("observed")?,
                    ),
                ));
            }
        }
        rows.sort_unstable_by_key(|r| r.0);
        rows.dedup_by_key(|r| r.0);
        let ids: Vec<i64> = rows.iter().map(|r| r.0).collect();
        let records = self.unseal_linkable(rows.into_iter().map(|r| r.1).collect()).await?;
        Ok(ids
            .into_iter()
            .zip(records)
            .map(|(id, record)| {
                let person = belongs[&record.person];
                ReachedRecord { id, person, record }
            })
            .collect())
    }

    /// The current key of the person each `stored` key belongs to: itself, unless a later run
    /// joined its person to another.
    pub async fn current_keys(&self, stored: &[PersonKey]) -> Result<Vec<PersonKey>, VaultError> {
        let mut current: HashMap<PersonKey, PersonKey> = HashMap::new();
        for chunk in stored.chunks(LOOKUP_CHUNK) {
            let mut q = sqlx::QueryBuilder::new("SELECT stored_key, person_key FROM link_clusters WHERE stored_key IN (");
            let mut list = q.separated(", ");
            for k in chunk {
                list.push_bind(&k.0[..]);
            }
            q.push(")");
            for row in q.build().fetch_all(&self.pool).await? {
                current.insert(key_of(row.try_get("stored_key")?)?, key_of(row.try_get("person_key")?)?);
            }
        }
        Ok(stored.iter().map(|k| *current.get(k).unwrap_or(k)).collect())
    }

    /// The prior keys of `anchors` only: where two datasets hold an anchor, the one stored last
    /// wins (as [`Vault::prior_keys`]).
    pub async fn prior_keys_of(&self, anchors: &[PersonKey]) -> Result<PriorKeys, VaultError> {
        let mut prior = PriorKeys::default();
        for chunk in anchors.chunks(LOOKUP_CHUNK) {
            let mut q = sqlx::QueryBuilder::new("SELECT anchor, person_key FROM anchors WHERE anchor IN (");
            let mut list = q.separated(", ");
            for a in chunk {
                list.push_bind(&a.0[..]);
            }
            q.push(") ORDER BY rowid");
            for row in q.build().fetch_all(&self.pool).await? {
                prior.insert(key_of(row.try_get("anchor")?)?, key_of(row.try_get("person_key")?)?);
            }
        }
        Ok(prior)
    }
}

impl VaultBatch {
    /// Writes a linkage run's outcome to the link index, in the batch's transaction (it is
    /// stored if and only if the batch commits). On failure the batch is rolled back.
    pub async fn index_links(&mut self, update: &LinkIndexUpdate) -> Result<(), VaultError> {
        let mut tx = self.tx.take().ok_or(VaultError::BatchFailed)?;
        let done: Result<(), sqlx::Error> = async {
            for chunk in update.retired.chunks(LOOKUP_CHUNK) {
                let mut q = sqlx::QueryBuilder::new("DELETE FROM link_buckets WHERE (bucket, person_key) IN (VALUES ");
                let mut list = q.separated(", ");
                for (b, p) in chunk {
                    list.push("(").push_bind_unseparated(&b.0[..]).push_unseparated(", ").push_bind_unseparated(&p.0[..]).push_unseparated(")");
                }
                q.push(")");
                q.build().execute(&mut *tx).await?;
            }
            for chunk in update.stored_keys.chunks(LOOKUP_CHUNK) {
                let mut q = sqlx::QueryBuilder::new("DELETE FROM link_clusters WHERE stored_key IN (");
                let mut list = q.separated(", ");
                for k in chunk {
                    list.push_bind(&k.0[..]);
                }
                q.push(")");
                q.build().execute(&mut *tx).await?;
            }
            // Sorted by bucket (as `cluster_buckets` gives them): the rows go in key order.
            for chunk in update.buckets.chunks(LOOKUP_CHUNK * 4) {
                let mut q = sqlx::QueryBuilder::new("INSERT OR IGNORE INTO link_buckets (bucket, person_key) ");
                q.push_values(chunk, |mut b, (bucket, person)| {
                    b.push_bind(&bucket.0[..]).push_bind(&person.0[..]);
                });
                q.build().execute(&mut *tx).await?;
            }
            for chunk in update.moved.chunks(LOOKUP_CHUNK * 4) {
                let mut q = sqlx::QueryBuilder::new("INSERT OR REPLACE INTO link_clusters (stored_key, person_key) ");
                q.push_values(chunk, |mut b, (stored, person)| {
                    b.push_bind(&stored.0[..]).push_bind(&person.0[..]);
                });
                q.build().execute(&mut *tx).await?;
            }
            if update.complete {
                sqlx::query("UPDATE link_index SET complete = 1 WHERE id = 1").execute(&mut *tx).await?;
            }
            Ok(())
        }
        .await;
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
