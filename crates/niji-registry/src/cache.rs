//! The registry's decisive entries, read and unsealed once per registry version and kept for the
//! process, per instance (keyed by the vault file's path).
//!
//! Every query, dummy query and job asks [`crate::exclusions`], and the public dashboard and
//! register ask [`crate::refusing_everything`] and [`crate::opt_out_counts`] on every request.
//! Without this each of them opened the vault (two data keys unwrapped, migrations checked, the
//! key check) and unsealed every decisive entry. Now a call asks the vault handle kept here for
//! the registry's version (`SELECT MAX(id)`, one query); when it equals the version the kept
//! entries were read at, they answer. Otherwise the entries are read again at the new version
//! (the registry is append-only, so the version names its content): a new entry is seen by the
//! very next call.
//!
//! What is kept: person keys (as the vault and the lake hold them) and the entries' actors and
//! choices, never an identity. The device and inode of the vault file and of its registry file
//! are checked on every call, so a vault or registry replaced (restored, re-created) under the
//! same path is opened afresh, never answered from a handle on the old file.
//!
//! For the public register, the counts per committed dataset version are kept too: a committed
//! version's identity records never change (a version is committed only after its vault rows
//! are written, and only `writing` versions are ever undone), so its number of persons is read
//! once, and its number of refusing persons once per set of refusing persons.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};

use niji_consent::Entry;
use niji_instance::Instance;
use niji_vault::Vault;

use crate::RegistryError;

/// Instances kept at most (a server has one; tests and tools may open several).
const MAX_INSTANCES: usize = 16;

/// The decisive entries at one registry version, by person key, each person's oldest first.
pub(crate) struct Snapshot {
    pub version: i64,
    pub by_person: HashMap<[u8; 32], Vec<Entry>>,
}

/// A read of the registry: the kept vault handle (the caller must not close it: other calls use
/// it) and the decisive entries at the registry's current version.
pub(crate) struct Kept {
    pub vault: Vault,
    pub snapshot: Arc<Snapshot>,
    path: PathBuf,
    file: Files,
}

/// The public register's counts, per dataset version tag.
#[derive(Clone, Default)]
pub(crate) struct Counts {
    /// Persons with identity records in a committed version.
    pub persons: HashMap<String, u64>,
    /// The refusing persons the `refused` counts were made for.
    pub refusing: Arc<HashSet<[u8; 32]>>,
    /// How many of `refusing` have identity records in a committed version.
    pub refused: HashMap<String, u64>,
}

struct Slot {
    vault: Vault,
    file: Files,
    snapshot: Arc<Snapshot>,
    counts: Counts,
    /// Times the entries were read and unsealed (tests check that a hit reads nothing).
    loads: u64,
    used: u64,
}

#[derive(Default)]
struct Cache {
    slots: HashMap<PathBuf, Slot>,
    tick: u64,
}

fn cache() -> &'static Mutex<Cache> {
    static CACHE: OnceLock<Mutex<Cache>> = OnceLock::new();
    CACHE.get_or_init(Mutex::default)
}

fn lock() -> std::sync::MutexGuard<'static, Cache> {
    // A panic while holding the lock leaves nothing half-written that matters: slots are
    // replaced whole.
    cache().lock().unwrap_or_else(|e| e.into_inner())
}

/// The file's identity (device, inode), to notice a vault replaced under the same path.
#[derive(Clone, Copy, PartialEq, Eq)]
struct FileId(u64, u64);

/// The vault file's identity and its registry file's (`None` before the vault first opened
/// made it): either replaced, the kept handle is not used.
#[derive(Clone, Copy, PartialEq, Eq)]
struct Files {
    vault: FileId,
    registry: Option<FileId>,
}

/// The identities of the vault file at `path` and of its registry file (`None` without a vault).
fn files(path: &Path) -> Option<Files> {
    Some(Files { vault: file_id(path)?, registry: file_id(&niji_vault::registry_path(path)) })
}

fn file_id(path: &Path) -> Option<FileId> {
    let meta = std::fs::metadata(path).ok()?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        Some(FileId(meta.dev(), meta.ino()))
    }
    #[cfg(not(unix))]
    {
        let _ = meta;
        Some(FileId(0, 0))
    }
}

fn vault_path(instance: &Instance) -> PathBuf {
    instance.paths.vault_db()
}

/// The registry's decisive entries at its current version, and a vault handle to count with;
/// `None` when the instance has no vault (reading never creates it or its keys).
pub(crate) async fn snapshot(instance: &Instance) -> Result<Option<Kept>, RegistryError> {
    let path = vault_path(instance);
    let Some(file) = files(&path) else {
        lock().slots.remove(&path);
        return Ok(None);
    };
    let kept = {
        let mut cache = lock();
        cache.tick += 1;
        let tick = cache.tick;
        match cache.slots.get_mut(&path) {
            Some(slot) if slot.file == file => {
                slot.used = tick;
                Some((slot.vault.clone(), slot.snapshot.clone()))
            }
            Some(_) => {
                cache.slots.remove(&path);
                None
            }
            None => None,
        }
    };
    if let Some((vault, snapshot)) = kept {
        match vault.registry_version().await {
            Ok(version) if version == snapshot.version => return Ok(Some(Kept { vault, snapshot, path, file })),
            Ok(version) => {
                let fresh = Arc::new(Snapshot { version, by_person: crate::decisive_entries(&vault, version).await? });
                keep(&path, file, &vault, &fresh, false);
                return Ok(Some(Kept { vault, snapshot: fresh, path, file }));
            }
            // The kept handle failed (closed, or the file went away): open afresh below.
            Err(_) => {
                lock().slots.remove(&path);
            }
        }
    }
    let Some(vault) = crate::existing_vault(instance).await? else { return Ok(None) };
    let loaded = async {
        let version = vault.registry_version().await?;
        Ok::<_, RegistryError>(Arc::new(Snapshot { version, by_person: crate::decisive_entries(&vault, version).await? }))
    }
    .await;
    let snapshot = match loaded {
        Ok(s) => s,
        Err(e) => {
            vault.close().await;
            return Err(e);
        }
    };
    // The file opened may differ from the one stat'ed above (replaced in between): key the slot
    // by the file as it is now; a later call notices any difference.
    let file = files(&path).unwrap_or(file);
    if keep(&path, file, &vault, &snapshot, true) {
        Ok(Some(Kept { vault, snapshot, path, file }))
    } else {
        // Another call kept a handle on the same file meanwhile: use it and close this one.
        let kept = lock().slots.get(&path).map(|s| s.vault.clone());
        vault.close().await;
        match kept {
            Some(kept) => Ok(Some(Kept { vault: kept, snapshot, path, file })),
            None => Err(RegistryError::Storage),
        }
    }
}

/// Keeps `snapshot` (and, for a newly opened vault, the handle) unless a newer one is kept
/// already. Returns whether `vault` is the handle now kept.
fn keep(path: &Path, file: Files, vault: &Vault, snapshot: &Arc<Snapshot>, opened: bool) -> bool {
    let mut cache = lock();
    cache.tick += 1;
    let tick = cache.tick;
    match cache.slots.get_mut(path) {
        Some(slot) if slot.file == file => {
            if snapshot.version > slot.snapshot.version {
                slot.snapshot = snapshot.clone();
                slot.loads += 1;
            }
            slot.used = tick;
            !opened
        }
        _ => {
            if !cache.slots.contains_key(path) && cache.slots.len() >= MAX_INSTANCES {
                if let Some(oldest) = cache.slots.iter().min_by_key(|(_, s)| s.used).map(|(p, _)| p.clone()) {
                    cache.slots.remove(&oldest);
                }
            }
            let slot = Slot { vault: vault.clone(), file, snapshot: snapshot.clone(), counts: Counts::default(), loads: 1, used: tick };
            cache.slots.insert(path.to_path_buf(), slot);
            true
        }
    }
}

/// The public register's counts kept for the vault file read (empty when none are).
pub(crate) fn counts(kept: &Kept) -> Counts {
    lock().slots.get(&kept.path).filter(|s| s.file == kept.file).map(|s| s.counts.clone()).unwrap_or_default()
}

/// Keeps the public register's counts, made over the vault file read.
pub(crate) fn keep_counts(kept: &Kept, counts: Counts) {
    if let Some(slot) = lock().slots.get_mut(&kept.path).filter(|s| s.file == kept.file) {
        slot.counts = counts;
    }
}

/// How many times the instance's entries were read and unsealed by this process (0 when none
/// are kept). For tests.
pub fn reads(instance: &Instance) -> u64 {
    lock().slots.get(&vault_path(instance)).map_or(0, |s| s.loads)
}

/// Forgets what is kept for the instance: the next call reads the vault afresh. For tests.
pub fn forget(instance: &Instance) {
    lock().slots.remove(&vault_path(instance));
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What a kept handle is compared by: a registry file replaced under its name (a restore),
    /// made where there was none (the move), or gone, changes it, as a replaced vault file does;
    /// the same files leave it equal.
    #[test]
    fn a_replaced_vault_or_registry_file_changes_the_files_compared() {
        let dir = tempfile::tempdir().unwrap();
        let vault = dir.path().join("identities.sqlite");
        let registry = niji_vault::registry_path(&vault);
        assert!(files(&vault).is_none(), "no vault, nothing to compare");
        std::fs::write(&vault, b"v").unwrap();
        let before_move = files(&vault).unwrap();
        std::fs::write(&registry, b"r").unwrap();
        let moved = files(&vault).unwrap();
        assert!(moved != before_move, "the registry file made by the move");
        assert!(files(&vault).unwrap() == moved, "the same files");
        // Restored from a backup: a new file under the same name.
        let restored = dir.path().join("restored");
        std::fs::write(&restored, b"r").unwrap();
        std::fs::rename(&restored, &registry).unwrap();
        let after_restore = files(&vault).unwrap();
        assert!(after_restore != moved, "a registry file replaced under its name");
        std::fs::remove_file(&registry).unwrap();
        assert!(files(&vault).unwrap() != after_restore, "a registry file gone");
        let new_vault = dir.path().join("new");
        std::fs::write(&new_vault, b"v").unwrap();
        let kept = files(&vault).unwrap();
        std::fs::rename(&new_vault, &vault).unwrap();
        assert!(files(&vault).unwrap() != kept, "a vault file replaced under its name");
    }
}
