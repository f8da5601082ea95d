//! The consent and opt-out registry's storage (issue 6): subject handles (how a citizen's
//! credential names a person without holding a person key) and the append-only registry entries
//! keyed by person key. Entry bodies are opaque bytes to the vault (the caller's JSON), sealed
//! and bound to the person key and the time recorded, so an entry moved to another person fails
//! to open. The registry's version is its last entry id: a run that records the version it
//! applied can be replayed exactly.
//!
//! Subject handles and entries live in a file of their own beside the vault's
//! ([`crate::registry_path`], migrations in `migrations/registry/`): an intake's batch holds the
//! vault file's write lock until it commits (minutes for a large submission), and an opt-out
//! written meanwhile failed after the busy timeout. Person lookups (anchors, a person's datasets,
//! counts) still read the vault. The two files name each other through a random registry id
//! (the vault's `vault_meta.registry_id`, the registry's `registry_meta`); a vault refuses a
//! registry file that is missing or not its own rather than start an empty registry, which would
//! silently drop every opt-out.
//!
//! A vault without a registry file (new, or made before the registry moved out) gets one in
//! [`open_registry`]: under the vault's write lock, the rows of its old tables are copied, ids and
//! all (a version recorded by a run still names the same entries), into a file beside it
//! ([`MOVING_FILE`], durable before the vault changes), then the vault names that file and drops
//! the old tables in one transaction, and the file is linked into place. A crash before the
//! vault's commit leaves the vault as it was (the next open makes the file again, setting a
//! whole one aside, never deleting it); after it, the next open puts the file in place. Nothing
//! is ever written over an existing registry file, nor beside a WAL or journal left by one.
//!
//! No business rules here: who may record what, and what an entry means, is decided by the
//! caller (`niji-registry`, with `niji-consent`).

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use chacha20poly1305::aead::{AeadCore, OsRng};
use chacha20poly1305::XChaCha20Poly1305;
use sqlx::sqlite::{SqliteConnectOptions, SqliteConnection, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{Connection, Row, SqlitePool};

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
            .execute(&self.registry)
            .await?;
        Ok(sqlx::query_scalar("SELECT handle FROM subjects WHERE person_key = $1").bind(&person.0[..]).fetch_one(&self.registry).await?)
    }

    /// The person a subject handle names.
    pub async fn person_of_subject(&self, handle: &str) -> Result<Option<PersonKey>, VaultError> {
        let row: Option<Vec<u8>> =
            sqlx::query_scalar("SELECT person_key FROM subjects WHERE handle = $1").bind(handle).fetch_optional(&self.registry).await?;
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
        let mut tx = self.registry.begin().await?;
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
        Ok(sqlx::query_scalar("SELECT COALESCE(MAX(id), 0) FROM registry_entries").fetch_one(&self.registry).await?)
    }

    /// One person's entries with ids up to `version`, in id order.
    pub async fn registry_entries_of(&self, person: &PersonKey, version: i64) -> Result<Vec<RegistryEntry>, VaultError> {
        let rows =
            sqlx::query("SELECT id, person_key, recorded_at, decisive, sealed FROM registry_entries WHERE person_key = $1 AND id <= $2 ORDER BY id")
                .bind(&person.0[..])
                .bind(version)
                .fetch_all(&self.registry)
                .await?;
        rows.into_iter().map(|r| self.open_entry(r)).collect()
    }

    /// Every decisive entry with an id up to `version`, in id order (the registry as a run applies
    /// it: notices, which decide nothing, are not read).
    pub async fn decisive_registry_entries(&self, version: i64) -> Result<Vec<RegistryEntry>, VaultError> {
        let rows = sqlx::query("SELECT id, person_key, recorded_at, decisive, sealed FROM registry_entries WHERE decisive AND id <= $1 ORDER BY id")
            .bind(version)
            .fetch_all(&self.registry)
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

/// The registry file while it is made, beside the vault's; linked to [`crate::REGISTRY_FILE`]
/// (and unlinked here) once the vault names it.
const MOVING_FILE: &str = "registry.sqlite.moving";

static REGISTRY_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/registry");

/// Opens the registry file beside the vault file `vault_file` for the vault whose pool is
/// `vault` (its keys checked), making it first when the vault names none. Refuses a missing file
/// the vault names ([`VaultError::RegistryMissing`]) and a file that names another vault, or
/// none ([`VaultError::RegistryForeign`]).
pub(crate) async fn open_registry(vault: &SqlitePool, vault_file: &Path, options: SqliteConnectOptions) -> Result<SqlitePool, VaultError> {
    let path = crate::registry_path(vault_file);
    let named: Option<Vec<u8>> = sqlx::query_scalar("SELECT registry_id FROM vault_meta WHERE id = 1").fetch_one(vault).await?;
    let id = match named {
        Some(id) => id,
        None => move_out(vault, vault_file, &path).await?,
    };
    put_in_place(&path, &id).await?;
    // Small: entries are read once per registry version and kept by the caller. No journal mode
    // is set: the registry file is made in WAL mode and stays so, and a foreign file is not
    // switched before its id is read.
    let options = options.filename(&path).create_if_missing(false).pragma("cache_size", "-2048");
    let pool = SqlitePoolOptions::new().max_connections(2).connect_with(options).await?;
    let checked = async {
        // Read before any migration runs: a foreign file is not changed.
        if registry_id_in(&mut *pool.acquire().await?).await?.as_deref() != Some(&id[..]) {
            return Err(VaultError::RegistryForeign);
        }
        crate::migrate(&REGISTRY_MIGRATIONS, &pool).await
    }
    .await;
    match checked {
        Ok(()) => Ok(pool),
        Err(e) => {
            pool.close().await;
            Err(e)
        }
    }
}

/// The registry id a registry file holds (`None`: not a registry file, or made half-way).
async fn registry_id_in(conn: &mut SqliteConnection) -> Result<Option<Vec<u8>>, VaultError> {
    let has_meta: i64 =
        sqlx::query_scalar("SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND name = 'registry_meta'").fetch_one(&mut *conn).await?;
    if has_meta == 0 {
        return Ok(None);
    }
    Ok(sqlx::query_scalar("SELECT registry_id FROM registry_meta WHERE id = 1").fetch_optional(&mut *conn).await?)
}

/// The registry id of the SQLite file at `file`, read on a connection of its own that sets no
/// journal mode (it never switches a file to or from WAL; as any connection, it replays a WAL
/// or rolls back a journal it finds beside the file, and its last close checkpoints the WAL).
async fn id_of_file(file: &Path) -> Result<Option<Vec<u8>>, VaultError> {
    let options = SqliteConnectOptions::new().filename(file).create_if_missing(false);
    let mut conn = SqliteConnection::connect_with(&options).await?;
    let id = registry_id_in(&mut conn).await;
    let _ = conn.close().await;
    id
}

/// Makes the vault's registry file and moves the vault's registry rows into it, under the
/// vault's write lock (two processes opening one vault at once move it once; no registry row
/// is written meanwhile). Returns the registry id the vault now names.
async fn move_out(vault: &SqlitePool, vault_file: &Path, path: &Path) -> Result<Vec<u8>, VaultError> {
    // Out of the pool: the transaction is begun and ended by hand.
    let mut conn = vault.acquire().await?.detach();
    let moved = async {
        sqlx::query("BEGIN IMMEDIATE").execute(&mut conn).await?;
        let moved = move_locked(&mut conn, vault_file, path).await;
        let ended = sqlx::query(if moved.is_ok() { "COMMIT" } else { "ROLLBACK" }).execute(&mut conn).await;
        let id = moved?;
        ended?;
        Ok::<_, VaultError>(id)
    }
    .await;
    let _ = conn.close().await;
    moved
}

/// [`move_out`]'s work inside the vault's write transaction.
async fn move_locked(conn: &mut SqliteConnection, vault_file: &Path, path: &Path) -> Result<Vec<u8>, VaultError> {
    let named: Option<Vec<u8>> = sqlx::query_scalar("SELECT registry_id FROM vault_meta WHERE id = 1").fetch_one(&mut *conn).await?;
    if let Some(id) = named {
        // Another process moved it meanwhile.
        return Ok(id);
    }
    // A registry file (or its WAL or journal) beside a vault that names none is never
    // overwritten: it may hold the only record of opt-outs (a vault restored from before its
    // registry moved out, beside the registry it moved to).
    if exists(path)? {
        return Err(VaultError::RegistryForeign);
    }
    refuse_leftovers(path)?;
    let moving = moving_path(path);
    clear_moving(&moving).await?;
    let id = XChaCha20Poly1305::generate_nonce(&mut OsRng)[..16].to_vec();
    // WAL, as the registry is used, so that opening it never has to change its journal mode
    // (which needs an exclusive lock that the busy timeout does not wait for); the last close
    // below checkpoints the WAL into the file and removes it, so the file is put in place whole.
    let options = SqliteConnectOptions::new()
        .filename(&moving)
        .create_if_missing(true)
        .journal_mode(SqliteJournalMode::Wal)
        .synchronous(SqliteSynchronous::Full);
    // One connection, closed before the file is looked at: a pool closes a connection handed
    // back late (a transaction's) after its own close returned, and the WAL was then still
    // there (seen once in the intake bench).
    let mut registry = SqliteConnection::connect_with(&options).await?;
    let copied = copy_rows(vault_file, &mut registry, &id).await;
    let closed = registry.close().await;
    copied?;
    closed?;
    // The last connection's close checkpointed the WAL into the file and removed it.
    if exists(&with_suffix(&moving, "-wal"))? {
        return Err(VaultError::Invalid("the new registry file kept a WAL"));
    }
    same_owner_as(&moving, vault_file);
    // The file and its name on disk before the vault names it: after the commit below the
    // vault's own rows are gone.
    sync_folder(&moving)?;
    sqlx::query("UPDATE vault_meta SET registry_id = $1 WHERE id = 1").bind(&id).execute(&mut *conn).await?;
    sqlx::query("DROP TABLE registry_entries").execute(&mut *conn).await?;
    sqlx::query("DROP TABLE subjects").execute(&mut *conn).await?;
    Ok(id)
}

/// Removes what an earlier move cut short left at `moving`: a half-made file goes; a whole one
/// (it holds a registry id) is set aside as `registry.sqlite.moving.<id in hex>`, never
/// deleted, since a vault restored from a backup after a crash that followed the vault's commit
/// would otherwise lose the only copy of its entries.
async fn clear_moving(moving: &Path) -> Result<(), VaultError> {
    if exists(moving)? {
        // A file that cannot be read is neither kept nor deleted: the error is the answer.
        let held = match id_of_file(moving).await {
            Ok(held) => held,
            // SQLITE_NOTADB: what a crash in the middle of making it can leave.
            Err(VaultError::Database(sqlx::Error::Database(e))) if e.code().as_deref() == Some("26") => None,
            Err(e) => return Err(e),
        };
        if let Some(id) = held {
            let hex: String = id.iter().map(|b| format!("{b:02x}")).collect();
            let aside = with_suffix(moving, &format!(".{hex}"));
            std::fs::rename(moving, aside).map_err(VaultError::RegistryFile)?;
        }
    }
    for leftover in [moving.to_path_buf(), with_suffix(moving, "-wal"), with_suffix(moving, "-shm"), with_suffix(moving, "-journal")] {
        match std::fs::remove_file(&leftover) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(VaultError::RegistryFile(e)),
        }
    }
    Ok(())
}

/// The registry file's tables made, and the vault's registry rows copied into them, ids and
/// all, in one transaction of the new file. The vault is read through the new file's connection
/// (attached): the caller holds the vault's write lock, so what it reads is what the vault holds.
async fn copy_rows(vault_file: &Path, registry: &mut SqliteConnection, id: &[u8]) -> Result<(), VaultError> {
    // `run_direct`: `run` on a bare connection makes a future that is not `Send`.
    REGISTRY_MIGRATIONS.run_direct(&mut *registry).await?;
    let vault_file = vault_file.to_str().ok_or(VaultError::Invalid("the vault's path is not UTF-8"))?;
    sqlx::query("ATTACH DATABASE $1 AS vault").bind(vault_file).execute(&mut *registry).await?;
    let copied = async {
        let mut tx = registry.begin().await?;
        sqlx::query("INSERT INTO registry_meta (id, registry_id) VALUES (1, $1)").bind(id).execute(&mut *tx).await?;
        sqlx::query("INSERT INTO main.subjects (handle, person_key) SELECT handle, person_key FROM vault.subjects ORDER BY rowid")
            .execute(&mut *tx)
            .await?;
        sqlx::query(
            "INSERT INTO main.registry_entries (id, person_key, recorded_at, decisive, sealed) \
             SELECT id, person_key, recorded_at, decisive, sealed FROM vault.registry_entries ORDER BY id",
        )
        .execute(&mut *tx)
        .await?;
        tx.commit().await
    }
    .await;
    let detached = sqlx::query("DETACH DATABASE vault").execute(&mut *registry).await;
    copied?;
    detached?;
    Ok(())
}

/// Puts a registry file made by [`move_out`] in place where the vault names it but it is not
/// there yet (a crash right after the vault's commit, or another process finishing first).
async fn put_in_place(path: &Path, id: &[u8]) -> Result<(), VaultError> {
    let moving = moving_path(path);
    if exists(path)? {
        // A crash between the link and the unlink below leaves `moving` as a second name of the
        // registry file: it goes (only that name, the same file).
        if same_file(path, &moving) {
            unlink_moving(&moving)?;
            sync_folder(path)?;
        }
        return Ok(());
    }
    // Another process may put it in place meanwhile: then `moving` is gone and `path` there.
    let held = match exists(&moving)? {
        true => id_of_file(&moving).await,
        false => Ok(None),
    };
    let held = match held {
        Ok(held) => held,
        Err(_) if exists(path)? => return Ok(()),
        Err(e) => return Err(e),
    };
    if held.as_deref() != Some(id) {
        return if exists(path)? { Ok(()) } else { Err(VaultError::RegistryMissing) };
    }
    if let Err(e) = refuse_leftovers(path) {
        // What looked left over may be the WAL of the file another process just put in place.
        return if exists(path)? { Ok(()) } else { Err(e) };
    }
    // A link and then an unlink, not a rename: a link never replaces a file that appeared at
    // `path` meanwhile (whatever is there is checked by its id next). Where the folder has no
    // hard links, a rename (nothing else ever makes `path` but this same file).
    match std::fs::hard_link(&moving, path) {
        Ok(()) => unlink_moving(&moving)?,
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => return Ok(()),
        Err(e) if matches!(e.kind(), std::io::ErrorKind::Unsupported | std::io::ErrorKind::PermissionDenied) && !exists(path)? => {
            std::fs::rename(&moving, path).map_err(VaultError::RegistryFile)?
        }
        Err(e) => return if exists(path)? { Ok(()) } else { Err(VaultError::RegistryFile(e)) },
    }
    sync_folder(path)
}

fn unlink_moving(moving: &Path) -> Result<(), VaultError> {
    match std::fs::remove_file(moving) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(VaultError::RegistryFile(e)),
    }
}

/// Whether two paths name the same file (device and inode); false where either is missing.
fn same_file(a: &Path, b: &Path) -> bool {
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        match (std::fs::metadata(a), std::fs::metadata(b)) {
            (Ok(a), Ok(b)) => a.dev() == b.dev() && a.ino() == b.ino(),
            _ => false,
        }
    }
    #[cfg(not(unix))]
    {
        let _ = (a, b);
        false
    }
}

/// Refuses a WAL or rollback journal with content beside a registry file that is not there
/// ([`VaultError::RegistryForeign`]): SQLite would replay it into the file put there (nothing
/// ties a WAL to one database file). A shared-memory file is left alone: SQLite rebuilds a stale
/// one, and one in use belongs to a file another process just put in place.
fn refuse_leftovers(path: &Path) -> Result<(), VaultError> {
    for suffix in ["-wal", "-journal"] {
        match std::fs::metadata(with_suffix(path, suffix)) {
            Ok(meta) if meta.len() > 0 => return Err(VaultError::RegistryForeign),
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(VaultError::RegistryFile(e)),
        }
    }
    Ok(())
}

/// Gives the new registry file the vault file's permissions, and (where this process may, as
/// root does) its owner: the first process to open a vault after an upgrade may be an
/// operator's command, and the server must still write opt-outs. Best effort: the file works
/// for this process either way.
fn same_owner_as(file: &Path, vault_file: &Path) {
    let Ok(meta) = std::fs::metadata(vault_file) else { return };
    let _ = std::fs::set_permissions(file, meta.permissions());
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        // Group first, then owner: one call for both fails as a whole where the owner cannot be
        // given away (any user but root), and the group may still be.
        let _ = std::os::unix::fs::chown(file, None, Some(meta.gid()));
        let _ = std::os::unix::fs::chown(file, Some(meta.uid()), None);
    }
}

fn exists(path: &Path) -> Result<bool, VaultError> {
    path.try_exists().map_err(VaultError::RegistryFile)
}

fn moving_path(path: &Path) -> PathBuf {
    path.with_file_name(MOVING_FILE)
}

fn with_suffix(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(suffix);
    PathBuf::from(name)
}

/// Makes a file's creation or rename in its folder durable.
fn sync_folder(file: &Path) -> Result<(), VaultError> {
    let folder = file.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    std::fs::File::open(folder).and_then(|f| f.sync_all()).map_err(VaultError::RegistryFile)
}
