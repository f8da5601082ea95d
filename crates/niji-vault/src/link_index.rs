//! The link index (`0006_link_index.sql`): how a linkage run finds the earlier persons its
//! records can reach (`niji_privacy::reach`) without unsealing every linkable record of the
//! instance, and how the run's outcome is written back in its batch.
//!
//! A person is found by a bucket (`link_buckets`) or an anchor (`anchors`), under its current
//! key; records keep the key they were stored under, and `link_clusters` says which current
//! person a stored key now belongs to. Reading a person back reads every linkable record whose
//! stored key belongs to it. A run rewrites the rows of every person it read. Deleting a
//! dataset's linkable records (an undone version included) marks the index incomplete: the run
//! that keyed them may have split a person and retired the rows that led to the whole of it, so
//! the next run reads back everything once and rebuilds the index.

use std::collections::{HashMap, HashSet};

use niji_privacy::LinkBucket;
use sqlx::Row;

use crate::{key_of, linkable_row, LinkableRow, PersonKey, PriorKeys, StoredLinkRecord, Vault, VaultBatch, VaultError};

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
    /// Bucket rows of every person of the run, under its key now (or none here, and all of them
    /// after, in chunks: [`VaultBatch::add_link_buckets`]).
    pub buckets: Vec<(LinkBucket, PersonKey)>,
    /// Every stored key the run read back: its `link_clusters` row is deleted first.
    pub stored_keys: Vec<PersonKey>,
    /// Stored key → current key, where they differ (sorted, without repeats; a stored key may
    /// be listed with several persons).
    pub moved: Vec<(PersonKey, PersonKey)>,
    /// The run read back every linkable record: the index now covers them all, in this format
    /// (`niji_privacy::LINK_INDEX_FORMAT`).
    pub complete: Option<u32>,
}

impl Vault {
    /// Whether the link index covers every linkable record in `format` (else the next run reads
    /// back all of them, and completes it).
    pub async fn link_index_complete(&self, format: u32) -> Result<bool, VaultError> {
        let row = sqlx::query("SELECT complete, format FROM link_index WHERE id = 1").fetch_one(&self.pool).await?;
        Ok(row.try_get::<i64, _>("complete")? != 0 && row.try_get::<Option<i64>, _>("format")? == Some(i64::from(format)))
    }

    /// The current keys of the persons that `buckets` and `anchors` reach, sorted.
    pub async fn persons_reached(&self, buckets: &[LinkBucket], anchors: &[PersonKey]) -> Result<Vec<PersonKey>, VaultError> {
        let mut found: HashSet<PersonKey> = HashSet::new();
        let buckets: Vec<&[u8]> = buckets.iter().map(|b| &b.0[..]).collect();
        let anchors: Vec<&[u8]> = anchors.iter().map(|a| &a.0[..]).collect();
        for (head, keys) in
            [("SELECT person_key FROM link_buckets WHERE bucket IN (", buckets), ("SELECT person_key FROM anchors WHERE anchor IN (", anchors)]
        {
            self.select_in(head, ")", &keys, |row| {
                found.insert(key_of(row.try_get("person_key")?)?);
                Ok(())
            })
            .await?;
        }
        // A key found may be one that records were stored under and that now belongs to
        // other persons: the key and each of them.
        let found: Vec<PersonKey> = found.into_iter().collect();
        let mut out: Vec<PersonKey> = self.current_keys(&found).await?.into_iter().flatten().collect();
        out.extend(found);
        out.sort_unstable();
        out.dedup();
        Ok(out)
    }

    /// Every linkable record of `persons` (current keys, as [`Vault::persons_reached`] gives
    /// them) in `datasets`, by id, unsealed: the records stored under each person's key and under
    /// every key now theirs (records of a key shared with another person come along). Each comes
    /// with one of the persons its stored key now belongs to. Nothing is logged here; the caller
    /// decides and audits who may call it.
    pub async fn reached_records(&self, persons: &[PersonKey], datasets: &[String]) -> Result<Vec<ReachedRecord>, VaultError> {
        if datasets.is_empty() || persons.is_empty() {
            return Ok(Vec::new());
        }
        // The stored keys whose records belong to the persons.
        let mut stored: HashSet<PersonKey> = persons.iter().copied().collect();
        let keys: Vec<&[u8]> = persons.iter().map(|p| &p.0[..]).collect();
        self.select_in("SELECT stored_key FROM link_clusters WHERE person_key IN (", ")", &keys, |row| {
            stored.insert(key_of(row.try_get("stored_key")?)?);
            Ok(())
        })
        .await?;
        let stored: Vec<PersonKey> = stored.into_iter().collect();
        let current: HashMap<PersonKey, PersonKey> =
            stored.iter().copied().zip(self.current_keys(&stored).await?.into_iter().map(|c| c[0])).collect();
        // Through the index of linkable records by dataset and person.
        let mut rows: Vec<(i64, LinkableRow)> = Vec::new();
        for datasets in datasets.chunks(LOOKUP_CHUNK) {
            for chunk in stored.chunks(LOOKUP_CHUNK) {
                let mut q = sqlx::QueryBuilder::new(
                    "SELECT id, person_key, holder, dataset, record_hash, sealed, observed FROM identity_records \
                     WHERE linkable AND dataset IN (",
                );
                let mut list = q.separated(", ");
                for d in datasets {
                    list.push_bind(d.as_str());
                }
                q.push(") AND person_key IN (");
                let mut list = q.separated(", ");
                for k in chunk {
                    list.push_bind(&k.0[..]);
                }
                q.push(")");
                for row in q.build().fetch_all(&self.pool).await? {
                    rows.push((row.try_get("id")?, linkable_row(&row)?));
                }
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
                let person = current[&record.person];
                ReachedRecord { id, person, record }
            })
            .collect())
    }

    /// The current keys of the persons each `stored` key's records belong to: itself, unless a
    /// later run joined its person to others (ascending).
    pub async fn current_keys(&self, stored: &[PersonKey]) -> Result<Vec<Vec<PersonKey>>, VaultError> {
        let mut current: HashMap<PersonKey, Vec<PersonKey>> = HashMap::new();
        let keys: Vec<&[u8]> = stored.iter().map(|k| &k.0[..]).collect();
        self.select_in("SELECT stored_key, person_key FROM link_clusters WHERE stored_key IN (", ")", &keys, |row| {
            current.entry(key_of(row.try_get("stored_key")?)?).or_default().push(key_of(row.try_get("person_key")?)?);
            Ok(())
        })
        .await?;
        Ok(stored
            .iter()
            .map(|k| {
                let mut c = current.remove(k).unwrap_or_else(|| vec![*k]);
                c.sort_unstable();
                c
            })
            .collect())
    }

    /// The prior keys of `anchors` only: where two datasets hold an anchor, the one stored last
    /// wins (as [`Vault::prior_keys`]).
    pub async fn prior_keys_of(&self, anchors: &[PersonKey]) -> Result<PriorKeys, VaultError> {
        let mut prior = PriorKeys::default();
        let keys: Vec<&[u8]> = anchors.iter().map(|a| &a.0[..]).collect();
        // Every row of one anchor is in the same chunk: the last by rowid wins.
        self.select_in("SELECT anchor, person_key FROM anchors WHERE anchor IN (", ") ORDER BY rowid", &keys, |row| {
            prior.insert(key_of(row.try_get("anchor")?)?, key_of(row.try_get("person_key")?)?);
            Ok(())
        })
        .await?;
        Ok(prior)
    }
}

impl Vault {
    /// Runs `head (keys…) tail` over `keys` a chunk at a time (`head` ends inside `IN (`), giving
    /// each row to `each`.
    async fn select_in(
        &self,
        head: &str,
        tail: &str,
        keys: &[&[u8]],
        mut each: impl FnMut(&sqlx::sqlite::SqliteRow) -> Result<(), VaultError>,
    ) -> Result<(), VaultError> {
        for chunk in keys.chunks(LOOKUP_CHUNK) {
            let mut q = sqlx::QueryBuilder::new(head);
            let mut list = q.separated(", ");
            for k in chunk {
                list.push_bind(*k);
            }
            q.push(tail);
            for row in q.build().fetch_all(&self.pool).await? {
                each(&row)?;
            }
        }
        Ok(())
    }
}

impl VaultBatch {
    /// Writes a linkage run's outcome to the link index, in the batch's transaction (it is
    /// stored if and only if the batch commits). On failure the batch is rolled back.
    pub async fn index_links(&mut self, update: &LinkIndexUpdate) -> Result<(), VaultError> {
        let mut tx = self.tx.take().ok_or(VaultError::BatchFailed)?;
        let done = write_links(&mut tx, update).await;
        self.links_indexed = done.is_ok();
        self.end_step(tx, done).await
    }

    /// Adds bucket rows of persons of the run after [`VaultBatch::index_links`] (whose
    /// `buckets` may then be empty): the rows it retires are deleted by then, so a row retired
    /// and made again stays. Lets a caller hand over rows as they are made
    /// (`niji_privacy::cluster_buckets_streaming`) instead of holding them all. On failure the
    /// batch is rolled back.
    pub async fn add_link_buckets(&mut self, rows: &[(LinkBucket, PersonKey)]) -> Result<(), VaultError> {
        // Before it, its deletes would take these rows away again.
        if !self.links_indexed {
            return Err(VaultError::Invalid("bucket rows added before the link index update"));
        }
        let mut tx = self.tx.take().ok_or(VaultError::BatchFailed)?;
        let done = insert_buckets(&mut tx, rows).await;
        self.end_step(tx, done).await
    }
}

/// Rows into `link_buckets`, each chunk in one statement (rows sorted by bucket, as
/// `niji_privacy::cluster_buckets` gives them and each chunk of `cluster_buckets_streaming` is,
/// go in key order).
async fn insert_buckets(tx: &mut sqlx::Transaction<'static, sqlx::Sqlite>, rows: &[(LinkBucket, PersonKey)]) -> Result<(), sqlx::Error> {
    for chunk in rows.chunks(LOOKUP_CHUNK * 4) {
        let mut q = sqlx::QueryBuilder::new("INSERT OR IGNORE INTO link_buckets (bucket, person_key) ");
        q.push_values(chunk, |mut b, (bucket, person)| {
            b.push_bind(&bucket.0[..]).push_bind(&person.0[..]);
        });
        q.build().execute(&mut **tx).await?;
    }
    Ok(())
}

async fn write_links(tx: &mut sqlx::Transaction<'static, sqlx::Sqlite>, update: &LinkIndexUpdate) -> Result<(), sqlx::Error> {
    // A run that read back every record rebuilds the index from nothing (rows of an
    // older format included).
    let (retired, stored_keys) = if update.complete.is_some() {
        sqlx::query("DELETE FROM link_buckets").execute(&mut **tx).await?;
        sqlx::query("DELETE FROM link_clusters").execute(&mut **tx).await?;
        (&[][..], &[][..])
    } else {
        (&update.retired[..], &update.stored_keys[..])
    };
    // Row by row, each a search of the primary key (SQLite's OR of indexed terms).
    for chunk in retired.chunks(LOOKUP_CHUNK / 2) {
        let mut q = sqlx::QueryBuilder::new("DELETE FROM link_buckets WHERE ");
        let mut list = q.separated(" OR ");
        for (b, p) in chunk {
            list.push("(bucket = ")
                .push_bind_unseparated(&b.0[..])
                .push_unseparated(" AND person_key = ")
                .push_bind_unseparated(&p.0[..])
                .push_unseparated(")");
        }
        q.build().execute(&mut **tx).await?;
    }
    for chunk in stored_keys.chunks(LOOKUP_CHUNK) {
        let mut q = sqlx::QueryBuilder::new("DELETE FROM link_clusters WHERE stored_key IN (");
        let mut list = q.separated(", ");
        for k in chunk {
            list.push_bind(&k.0[..]);
        }
        q.push(")");
        q.build().execute(&mut **tx).await?;
    }
    insert_buckets(tx, &update.buckets).await?;
    for chunk in update.moved.chunks(LOOKUP_CHUNK * 4) {
        // Listed once each (the caller's pairs are sorted and without repeats) after the
        // deletes above: a conflict is a caller's mistake, and fails the batch.
        let mut q = sqlx::QueryBuilder::new("INSERT OR ROLLBACK INTO link_clusters (stored_key, person_key) ");
        q.push_values(chunk, |mut b, (stored, person)| {
            b.push_bind(&stored.0[..]).push_bind(&person.0[..]);
        });
        q.build().execute(&mut **tx).await?;
    }
    if let Some(format) = update.complete {
        sqlx::query("UPDATE link_index SET complete = 1, format = $1 WHERE id = 1").bind(i64::from(format)).execute(&mut **tx).await?;
    }
    Ok(())
}
