//! The consent and opt-out registry's storage (issue 6): subject handles (how a citizen's
//! credential names a person without holding a person key) and the append-only registry entries
//! keyed by person key. Entry bodies are opaque bytes to the vault (the caller's JSON), sealed
//! and bound to the person key and the time recorded, so an entry moved to another person fails
//! to open. The registry's version is its last entry id: a run that records the version it
//! applied can be replayed exactly.
//!
//! No business rules here: who may record what, and what an entry means, is decided by the
//! caller (`niji-registry`, with `niji-consent`).

use std::collections::HashMap;

use sqlx::Row;

use crate::{key_of, placeholders, PersonKey, Vault, VaultError};

/// One stored registry entry, unsealed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RegistryEntry {
    pub id: i64,
    pub person: PersonKey,
    /// Unix time in nanoseconds.
    pub recorded_at: i64,
    /// Whether the entry can change who a use includes.
    pub decisive: bool,
    pub body: Vec<u8>,
}

/// A new entry: the person, the time (Unix nanoseconds) and the caller's body.
pub struct NewRegistryEntry<'a> {
    pub person: PersonKey,
    pub recorded_at: i64,
    /// Whether the entry can change who a use includes (the caller knows; a notice cannot).
    pub decisive: bool,
    pub body: &'a [u8],
}

impl Vault {
    /// The person key of an anchor (a keyed hash as `niji_privacy::Linkage::anchors` makes
    /// them), from any dataset.
    pub async fn person_by_anchor(&self, anchor: &PersonKey) -> Result<Option<PersonKey>, VaultError> {
        let row: Option<Vec<u8>> = sqlx::query_scalar("SELECT person_key FROM anchors WHERE anchor = $1 ORDER BY rowid DESC LIMIT 1")
            .bind(&anchor.0[..])
            .fetch_optional(&self.pool)
            .await?;
        row.map(key_of).transpose()
    }

    /// The person's subject handle; `new_handle` is stored when the person has none yet.
    pub async fn subject_of(&self, person: &PersonKey, new_handle: &str) -> Result<String, VaultError> {
        sqlx::query("INSERT OR IGNORE INTO subjects (handle, person_key) VALUES ($1, $2)")
            .bind(new_handle)
            .bind(&person.0[..])
            .execute(&self.pool)
            .await?;
        Ok(sqlx::query_scalar("SELECT handle FROM subjects WHERE person_key = $1").bind(&person.0[..]).fetch_one(&self.pool).await?)
    }

    /// The person a subject handle names.
    pub async fn person_of_subject(&self, handle: &str) -> Result<Option<PersonKey>, VaultError> {
        let row: Option<Vec<u8>> =
            sqlx::query_scalar("SELECT person_key FROM subjects WHERE handle = $1").bind(handle).fetch_optional(&self.pool).await?;
        row.map(key_of).transpose()
    }

    /// The datasets holding at least one identity record of the person, ordered.
    pub async fn datasets_of(&self, person: &PersonKey) -> Result<Vec<String>, VaultError> {
        Ok(sqlx::query_scalar(
            "SELECT DISTINCT r.dataset FROM person_records p JOIN identity_records r ON r.id = p.id WHERE p.person_key = $1 ORDER BY r.dataset",
        )
        .bind(&person.0[..])
        .fetch_all(&self.pool)
        .await?)
    }

    /// Appends entries in one transaction (all or none); returns their ids in order.
    pub async fn append_registry_entries(&self, entries: &[NewRegistryEntry<'_>]) -> Result<Vec<i64>, VaultError> {
        let mut tx = self.pool.begin().await?;
        let mut ids = Vec::with_capacity(entries.len());
        for e in entries {
            let sealed = self.seal_raw(e.body, &registry_aad(&e.person, e.recorded_at, e.decisive));
            let id: i64 =
                sqlx::query_scalar("INSERT INTO registry_entries (person_key, recorded_at, decisive, sealed) VALUES ($1, $2, $3, $4) RETURNING id")
                    .bind(&e.person.0[..])
                    .bind(e.recorded_at)
                    .bind(e.decisive)
                    .bind(&sealed)
                    .fetch_one(&mut *tx)
                    .await?;
            ids.push(id);
        }
        tx.commit().await?;
        Ok(ids)
    }

    /// The registry's version: its last entry id (0 when empty).
    pub async fn registry_version(&self) -> Result<i64, VaultError> {
        Ok(sqlx::query_scalar("SELECT COALESCE(MAX(id), 0) FROM registry_entries").fetch_one(&self.pool).await?)
    }

    /// One person's entries with ids up to `version`, in id order.
    pub async fn registry_entries_of(&self, person: &PersonKey, version: i64) -> Result<Vec<RegistryEntry>, VaultError> {
        let rows =
            sqlx::query("SELECT id, person_key, recorded_at, decisive, sealed FROM registry_entries WHERE person_key = $1 AND id <= $2 ORDER BY id")
                .bind(&person.0[..])
                .bind(version)
                .fetch_all(&self.pool)
                .await?;
        rows.into_iter().map(|r| self.open_entry(r)).collect()
    }

    /// Every decisive entry with an id up to `version`, in id order (the registry as a run applies
    /// it: notices, which decide nothing, are not read).
    pub async fn decisive_registry_entries(&self, version: i64) -> Result<Vec<RegistryEntry>, VaultError> {
        let rows = sqlx::query("SELECT id, person_key, recorded_at, decisive, sealed FROM registry_entries WHERE decisive AND id <= $1 ORDER BY id")
            .bind(version)
            .fetch_all(&self.pool)
            .await?;
        rows.into_iter().map(|r| self.open_entry(r)).collect()
    }

    /// Per dataset of `datasets`: how many distinct persons among `persons` have an identity
    /// record in it, counted as in [`Vault::persons_in`] (every dataset asked for is in the
    /// map, 0 when none do). Persons listed twice count once. Looked up by person key (on the
    /// `(dataset, person_key)` index of linkable records where a dataset has them),
    /// nothing unsealed; one read transaction (a consistent snapshot), one query per chunk of
    /// persons (bound parameters, kept well under SQLite's variable limit) for all datasets.
    pub async fn count_in_datasets(&self, datasets: &[String], persons: &[PersonKey]) -> Result<HashMap<String, u64>, VaultError> {
        /// Persons and datasets bound per query: at most 2 × 400 variables (SQLite's limit is
        /// 999 before 3.32, 32,766 since).
        const CHUNK: usize = 400;
        let mut out: HashMap<String, u64> = datasets.iter().map(|d| (d.clone(), 0)).collect();
        if datasets.is_empty() || persons.is_empty() {
            return Ok(out);
        }
        let mut unique: Vec<&[u8; 32]> = persons.iter().map(|p| &p.0).collect();
        unique.sort_unstable();
        unique.dedup();
        let wanted: Vec<&String> = {
            let mut d: Vec<&String> = datasets.iter().collect();
            d.sort_unstable();
            d.dedup();
            d
        };
        let mut tx = self.pool.begin().await?;
        let (linked, unlinked) = crate::split_by_linkable(&mut tx, &wanted).await?;
        // Linkable records by their (dataset, person) index; datasets without them through the
        // persons' records.
        for (group, linkable) in [(&linked, true), (&unlinked, false)] {
            for names in group.chunks(CHUNK) {
                for keys in unique.chunks(CHUNK) {
                    // The chunks of persons are disjoint, so per-chunk distinct counts add up.
                    let (names_at, keys_at) = (placeholders(1, names.len()), placeholders(1 + names.len(), keys.len()));
                    let sql = if linkable {
                        format!(
                            "SELECT dataset, COUNT(DISTINCT person_key) AS n FROM identity_records \
                             WHERE linkable AND dataset IN ({names_at}) AND person_key IN ({keys_at}) GROUP BY dataset"
                        )
                    } else {
                        format!(
                            "SELECT r.dataset AS dataset, COUNT(DISTINCT p.person_key) AS n FROM person_records p \
                             CROSS JOIN identity_records r ON r.id = p.id WHERE r.dataset IN ({names_at}) AND p.person_key IN ({keys_at}) GROUP BY r.dataset"
                        )
                    };
                    let mut query = sqlx::query(&sql);
                    for name in names {
                        query = query.bind(name.as_str());
                    }
                    for key in keys {
                        query = query.bind(&key[..]);
                    }
                    for row in query.fetch_all(&mut *tx).await? {
                        let dataset: String = row.try_get("dataset")?;
                        let n: i64 = row.try_get("n")?;
                        *out.entry(dataset).or_insert(0) += n as u64;
                    }
                }
            }
        }
        tx.commit().await?;
        Ok(out)
    }

    fn open_entry(&self, row: sqlx::sqlite::SqliteRow) -> Result<RegistryEntry, VaultError> {
        let person = key_of(row.try_get("person_key")?)?;
        let recorded_at: i64 = row.try_get("recorded_at")?;
        let decisive: bool = row.try_get("decisive")?;
        let sealed: Vec<u8> = row.try_get("sealed")?;
        let body = self.open_raw(&sealed, &registry_aad(&person, recorded_at, decisive)).ok_or(VaultError::Tampered)?;
        Ok(RegistryEntry { id: row.try_get("id")?, person, recorded_at, decisive, body })
    }
}

fn registry_aad(person: &PersonKey, recorded_at: i64, decisive: bool) -> Vec<u8> {
    let mut aad = b"niji-vault/v1/registry\0".to_vec();
    aad.extend_from_slice(&person.0);
    aad.extend_from_slice(&recorded_at.to_be_bytes());
    aad.push(u8::from(decisive));
    aad
}
