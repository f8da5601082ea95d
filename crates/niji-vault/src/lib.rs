//! The identity vault: the separate store of the split-file model (issue 3) that holds the
//! identity half of ingested records (`niji_ingest::Identity`: names, kana, insurance and
//! patient numbers, phones, addresses, free text), encrypted at rest and looked up only by
//! keyed hashes. The lake holds person keys only; the way back from a person key to a name
//! goes through here.
//!
//! Storage: its own SQLite file (the caller passes the path, e.g. `DIR/vault/identities.sqlite`),
//! WAL, `synchronous = FULL`, foreign keys on, migrations embedded from `migrations/sqlite`.
//!
//! Keys come from the caller, never the master key:
//! - a 32-byte **sealing key** (the instance's data key `vault:sealing`), used with
//!   XChaCha20-Poly1305 and a random 24-byte nonce per record;
//! - the **vault key** ([`VaultKey`]), used for keyed hashes (HMAC-SHA256 through
//!   [`Pseudonymizer`]) of record references and of a key-check label.
//!
//! Tables (see `migrations/sqlite/0001_vault.sql`):
//! - `vault_meta` — one row: a keyed hash of a fixed label under the vault key and a fixed label
//!   sealed under the sealing key. [`Vault::open`] refuses other keys
//!   ([`VaultError::WrongVaultKey`], [`VaultError::WrongSealingKey`]) rather than mixing
//!   pseudonyms or blobs of two keys in one file.
//! - `anchors` — anchor (keyed hash of a member id, patient number or 受給者番号, as
//!   `niji_privacy::Linkage::anchors`) → person key, per dataset. [`Vault::prior_keys`] turns
//!   them into the `PriorKeys` of the next linkage run, so person keys stay stable.
//! - `identity_records` — person key, holder id, dataset id, `record_hash` = keyed hash of
//!   (dataset, record reference), and `sealed` = nonce ‖ XChaCha20-Poly1305 of a compact
//!   serialization of the record reference and the `Identity` items. The associated data binds
//!   the person key, the record hash, the dataset and the holder, so a blob moved to another
//!   row (or a row re-pointed at another person) fails authentication
//!   ([`VaultError::Tampered`]).
//!
//! Invariants:
//! - Nothing identifying in the clear, in any column or index: only keyed hashes, person keys,
//!   sealed blobs, holder and dataset ids (chosen by the operator, not taken from the data) and
//!   counts. The record reference (it may name a file) is sealed too; only its keyed hash is a
//!   column.
//! - [`Vault::store_batch`] is one transaction: a batch that fails (for instance a record
//!   reference already stored for the dataset) leaves the vault as it was.
//! - Errors never quote stored or submitted values; nothing here logs.
//! - No clock reads and no business rules: who may read identities is decided by the caller.

use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use chacha20poly1305::aead::{Aead, AeadCore, KeyInit, OsRng, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use niji_ingest::{IdentifierKind, Identity, IdentityItem};
use niji_privacy::{Domain, PersonKey, PriorKeys, Pseudonymizer, VaultKey};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{Row, SqlitePool};

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
    #[error("stored value is invalid: {0}")]
    Invalid(&'static str),
    #[error("vault database error: {0}")]
    Database(#[from] sqlx::Error),
    #[error("vault migration failed: {0}")]
    Migration(#[from] sqlx::migrate::MigrateError),
}

/// One identity record read back from the vault.
#[derive(Debug, Clone)]
pub struct StoredIdentity {
    pub holder: String,
    pub dataset: String,
    /// The record reference given to [`Vault::store_batch`] (e.g. `file:line`).
    pub record_ref: String,
    pub identity: Identity,
}

/// The identity vault. Cloning is cheap (a pool handle and the keys).
#[derive(Clone)]
pub struct Vault {
    pool: SqlitePool,
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
    /// that `sealing_key` and `vault_key` are the keys the vault was created with.
    pub async fn open(path: &Path, sealing_key: &[u8; 32], vault_key: &VaultKey) -> Result<Self, VaultError> {
        let options = SqliteConnectOptions::from_str("sqlite://")?
            .filename(path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full)
            .foreign_keys(true)
            .pragma("secure_delete", "ON")
            .busy_timeout(Duration::from_secs(10));
        let pool = SqlitePoolOptions::new().max_connections(4).connect_with(options).await?;
        MIGRATIONS.run(&pool).await?;
        let vault = Self { pool, cipher: XChaCha20Poly1305::new(sealing_key.into()), hasher: Pseudonymizer::new(vault_key) };
        if let Err(e) = vault.check_keys().await {
            vault.pool.close().await;
            return Err(e);
        }
        Ok(vault)
    }

    /// Stores one batch of identity records of `dataset` (submitted by `holder`) with the anchors
    /// of the linkage run that keyed them, in one transaction: all or nothing. A record
    /// reference already stored for the dataset fails the batch with
    /// [`VaultError::DuplicateRecord`]. An anchor already known for the dataset is re-pointed
    /// at the new person key.
    pub async fn store_batch(
        &self,
        holder: &str,
        dataset: &str,
        records: &[(String, Identity, PersonKey)],
        anchors: &[(PersonKey, PersonKey)],
    ) -> Result<(), VaultError> {
        // Seal outside the transaction: it is the slow part and needs no lock.
        let rows: Vec<(PersonKey, PersonKey, Vec<u8>)> = records
            .iter()
            .map(|(record_ref, identity, person)| {
                let record_hash = self.record_hash(dataset, record_ref);
                let sealed = self.seal(person, &record_hash, holder, dataset, record_ref, identity);
                (*person, record_hash, sealed)
            })
            .collect();
        let mut tx = self.pool.begin().await?;
        for (person, record_hash, sealed) in &rows {
            sqlx::query("INSERT INTO identity_records (person_key, holder, dataset, record_hash, sealed) VALUES ($1, $2, $3, $4, $5)")
                .bind(&person.0[..])
                .bind(holder)
                .bind(dataset)
                .bind(&record_hash.0[..])
                .bind(sealed)
                .execute(&mut *tx)
                .await
                .map_err(|e| match &e {
                    sqlx::Error::Database(db) if db.is_unique_violation() => VaultError::DuplicateRecord,
                    _ => VaultError::Database(e),
                })?;
        }
        for (anchor, person) in anchors {
            // REPLACE deletes and inserts: the row gets a new rowid, which `prior_keys` orders by.
            sqlx::query("INSERT OR REPLACE INTO anchors (anchor, dataset, person_key) VALUES ($1, $2, $3)")
                .bind(&anchor.0[..])
                .bind(dataset)
                .bind(&person.0[..])
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Every stored anchor → person key, to pass to the next `niji_privacy::link` run. Where
    /// two datasets hold the same anchor, the one stored last wins.
    pub async fn prior_keys(&self) -> Result<PriorKeys, VaultError> {
        let rows = sqlx::query("SELECT anchor, person_key FROM anchors ORDER BY rowid").fetch_all(&self.pool).await?;
        let mut prior = PriorKeys::default();
        for row in rows {
            prior.insert(key_of(row.try_get("anchor")?)?, key_of(row.try_get("person_key")?)?);
        }
        Ok(prior)
    }

    /// The unsealed identity records of one person, in the order stored. Nothing is logged
    /// here; the caller decides and audits who may call it.
    pub async fn identities_of(&self, person: &PersonKey) -> Result<Vec<StoredIdentity>, VaultError> {
        let rows = sqlx::query("SELECT holder, dataset, record_hash, sealed FROM identity_records WHERE person_key = $1 ORDER BY id")
            .bind(&person.0[..])
            .fetch_all(&self.pool)
            .await?;
        let mut out = Vec::with_capacity(rows.len());
        for row in rows {
            let holder: String = row.try_get("holder")?;
            let dataset: String = row.try_get("dataset")?;
            let record_hash = key_of(row.try_get("record_hash")?)?;
            let sealed: Vec<u8> = row.try_get("sealed")?;
            let (record_ref, identity) = self.unseal(person, &record_hash, &holder, &dataset, &sealed)?;
            out.push(StoredIdentity { holder, dataset, record_ref, identity });
        }
        Ok(out)
    }

    /// Number of distinct person keys with at least one identity record.
    pub async fn person_count(&self) -> Result<u64, VaultError> {
        let n: i64 = sqlx::query_scalar("SELECT COUNT(DISTINCT person_key) FROM identity_records").fetch_one(&self.pool).await?;
        Ok(n as u64)
    }

    /// Number of identity records of `dataset`.
    pub async fn record_count(&self, dataset: &str) -> Result<u64, VaultError> {
        let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM identity_records WHERE dataset = $1").bind(dataset).fetch_one(&self.pool).await?;
        Ok(n as u64)
    }

    /// Deletes every identity record and anchor of `dataset` (when its use ends), in one
    /// transaction; returns the number of identity records deleted. `secure_delete` is on, so
    /// SQLite overwrites the deleted (sealed) content in the database pages.
    pub async fn delete_dataset(&self, dataset: &str) -> Result<u64, VaultError> {
        let mut tx = self.pool.begin().await?;
        let n = sqlx::query("DELETE FROM identity_records WHERE dataset = $1").bind(dataset).execute(&mut *tx).await?.rows_affected();
        sqlx::query("DELETE FROM anchors WHERE dataset = $1").bind(dataset).execute(&mut *tx).await?;
        tx.commit().await?;
        Ok(n)
    }

    /// Checkpoints the WAL into the database file (truncating the WAL) and closes the pool.
    /// Other handles of this vault stop working.
    pub async fn close(&self) {
        // Best effort: a failing checkpoint leaves the content in the WAL, where SQLite's own
        // checkpoint on the last close (or the next open) moves it.
        let _ = sqlx::query("PRAGMA wal_checkpoint(TRUNCATE)").execute(&self.pool).await;
        self.pool.close().await;
    }
}

static MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite");

/// Label sealed in `vault_meta.sealing_check` and hashed in `vault_meta.vault_key_check`.
const KEY_CHECK: &str = "niji-vault/v1/key-check";
/// First part of the keyed hash of a record reference (domain separation inside
/// `Domain::LocalId`, whose other users never pass this label).
const RECORD_LABEL: &str = "niji-vault/v1/record";
/// Version byte of the sealed serialization.
const FORMAT: u8 = 1;
const NONCE: usize = 24;

impl Vault {
    async fn check_keys(&self) -> Result<(), VaultError> {
        let key_check = self.hasher.keyed(Domain::LocalId, &[KEY_CHECK]);
        let sealed_check = self.seal_raw(KEY_CHECK.as_bytes(), KEY_CHECK.as_bytes());
        sqlx::query("INSERT OR IGNORE INTO vault_meta (id, vault_key_check, sealing_check) VALUES (1, $1, $2)")
            .bind(&key_check.0[..])
            .bind(&sealed_check)
            .execute(&self.pool)
            .await?;
        let row = sqlx::query("SELECT vault_key_check, sealing_check FROM vault_meta WHERE id = 1").fetch_one(&self.pool).await?;
        let stored_key_check: Vec<u8> = row.try_get("vault_key_check")?;
        let stored_sealed: Vec<u8> = row.try_get("sealing_check")?;
        match self.open_raw(&stored_sealed, KEY_CHECK.as_bytes()) {
            Some(plain) if plain == KEY_CHECK.as_bytes() => {}
            _ => return Err(VaultError::WrongSealingKey),
        }
        if stored_key_check != key_check.0 {
            return Err(VaultError::WrongVaultKey);
        }
        Ok(())
    }

    fn record_hash(&self, dataset: &str, record_ref: &str) -> PersonKey {
        self.hasher.keyed(Domain::LocalId, &[RECORD_LABEL, dataset, record_ref])
    }

    fn seal(&self, person: &PersonKey, record_hash: &PersonKey, holder: &str, dataset: &str, record_ref: &str, identity: &Identity) -> Vec<u8> {
        let plain = encode(record_ref, identity);
        self.seal_raw(&plain, &aad(person, record_hash, holder, dataset))
    }

    fn unseal(
        &self,
        person: &PersonKey,
        record_hash: &PersonKey,
        holder: &str,
        dataset: &str,
        sealed: &[u8],
    ) -> Result<(String, Identity), VaultError> {
        let plain = self.open_raw(sealed, &aad(person, record_hash, holder, dataset)).ok_or(VaultError::Tampered)?;
        decode(&plain)
    }

    /// nonce ‖ ciphertext ‖ tag.
    fn seal_raw(&self, plain: &[u8], aad: &[u8]) -> Vec<u8> {
        let nonce = XChaCha20Poly1305::generate_nonce(&mut OsRng);
        let mut out = nonce.to_vec();
        out.extend(self.cipher.encrypt(&nonce, Payload { msg: plain, aad }).expect("XChaCha20-Poly1305 sealing does not fail"));
        out
    }

    fn open_raw(&self, sealed: &[u8], aad: &[u8]) -> Option<Vec<u8>> {
        if sealed.len() < NONCE + 16 {
            return None;
        }
        let (nonce, ct) = sealed.split_at(NONCE);
        self.cipher.decrypt(XNonce::from_slice(nonce), Payload { msg: ct, aad }).ok()
    }
}

/// Associated data of a sealed identity: label, person key, record hash, dataset, holder
/// (the strings length-prefixed).
fn aad(person: &PersonKey, record_hash: &PersonKey, holder: &str, dataset: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(96 + holder.len() + dataset.len());
    out.extend_from_slice(b"niji-vault/v1/identity\0");
    out.extend_from_slice(&person.0);
    out.extend_from_slice(&record_hash.0);
    for s in [dataset, holder] {
        out.extend_from_slice(&(s.len() as u32).to_be_bytes());
        out.extend_from_slice(s.as_bytes());
    }
    out
}

fn key_of(bytes: Vec<u8>) -> Result<PersonKey, VaultError> {
    Ok(PersonKey(bytes.try_into().map_err(|_| VaultError::Invalid("a stored key is not 32 bytes"))?))
}

/// Compact serialization: version byte; record reference (u32 length, bytes); item count (u32);
/// per item: kind (u8), field (u16 length, bytes), value (u32 length, bytes). Big-endian.
fn encode(record_ref: &str, identity: &Identity) -> Vec<u8> {
    let size = 9 + record_ref.len() + identity.items.iter().map(|i| 7 + i.field.len() + i.value.len()).sum::<usize>();
    let mut out = Vec::with_capacity(size);
    out.push(FORMAT);
    put_str32(&mut out, record_ref);
    out.extend_from_slice(&(identity.items.len() as u32).to_be_bytes());
    for item in &identity.items {
        out.push(kind_code(item.kind));
        let field = &item.field.as_bytes()[..item.field.len().min(u16::MAX as usize)];
        out.extend_from_slice(&(field.len() as u16).to_be_bytes());
        out.extend_from_slice(field);
        put_str32(&mut out, &item.value);
    }
    out
}

fn put_str32(out: &mut Vec<u8>, s: &str) {
    out.extend_from_slice(&(s.len() as u32).to_be_bytes());
    out.extend_from_slice(s.as_bytes());
}

fn decode(bytes: &[u8]) -> Result<(String, Identity), VaultError> {
    const BAD: VaultError = VaultError::Invalid("sealed identity has an unknown layout");
    let mut r = Reader { bytes, pos: 0 };
    if r.take(1).ok_or(BAD)?[0] != FORMAT {
        return Err(BAD);
    }
    let record_ref = r.string(4).ok_or(BAD)?;
    let count = r.len(4).ok_or(BAD)?;
    let mut items = Vec::with_capacity(count.min(1024));
    for _ in 0..count {
        let kind = kind_from_code(r.take(1).ok_or(BAD)?[0]).ok_or(BAD)?;
        let field = r.string(2).ok_or(BAD)?;
        let value = r.string(4).ok_or(BAD)?;
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
}
