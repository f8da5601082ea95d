//! An instance: one folder holding everything of one Niji installation.
//!
//! ```text
//! DIR/
//!   NIJI_INSTANCE        marker with the layout version
//!   keys/                secrets, mode 0600: log-signing.key (Ed25519 seed), accounts.key,
//!                        master.key (unless NIJI_MASTER_KEY holds it; see [`keys`])
//!   log/                 the transparency log (niji-log)
//!   meta.sqlite          the metadata store (niji-store)
//! ```
//!
//! Invariants: `init` refuses a folder that already holds an instance (it never overwrites
//! keys); the first log entry of every instance is `instance.created`. Keys never leave
//! this crate except as typed handles. No HTTP here.

pub mod keys;

use ed25519_dalek::SigningKey;
use keys::{DataKey, KeyError, MasterKey, MasterKeySource, MASTER_KEY_ENV};
use niji_core::{AuditError, AuditEvent, AuditSink};
use niji_log::TransparencyLog;
use niji_store::Store;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

pub use ed25519_dalek;

const MARKER: &str = "NIJI_INSTANCE";
const LAYOUT_VERSION: &str = "niji-instance 1\n";
/// Environment variable naming the instance folder when `--dir` is not given.
pub const DIR_ENV: &str = "NIJI_DIR";

#[derive(Debug, thiserror::Error)]
pub enum InstanceError {
    #[error("{0} already holds a Niji instance; refusing to overwrite it")]
    AlreadyExists(PathBuf),
    #[error("{0} is not a Niji instance (no {MARKER} file); create one with `niji init --dir {0}`")]
    NotAnInstance(PathBuf),
    #[error("key file {path} is damaged: {reason}")]
    BadKey { path: PathBuf, reason: String },
    #[error("I/O error on {path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error(transparent)]
    Log(#[from] niji_log::LogError),
    #[error(transparent)]
    Store(#[from] niji_store::StoreError),
    #[error(transparent)]
    Audit(#[from] AuditError),
    #[error(transparent)]
    Key(#[from] KeyError),
}

/// The paths of an instance folder.
#[derive(Clone, Debug)]
pub struct InstancePaths {
    pub root: PathBuf,
}

impl InstancePaths {
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self { root: root.into() }
    }
    pub fn marker(&self) -> PathBuf {
        self.root.join(MARKER)
    }
    pub fn keys(&self) -> PathBuf {
        self.root.join("keys")
    }
    pub fn log(&self) -> PathBuf {
        self.root.join("log")
    }
    pub fn metadata_db(&self) -> PathBuf {
        self.root.join("meta.sqlite")
    }
    pub fn log_signing_key(&self) -> PathBuf {
        self.keys().join("log-signing.key")
    }
    pub fn accounts_key(&self) -> PathBuf {
        self.keys().join("accounts.key")
    }
    pub fn master_key(&self) -> PathBuf {
        self.keys().join("master.key")
    }
    /// The operator's settings of runs on real data (`niji-analysis`); defaults when absent.
    pub fn analysis_settings(&self) -> PathBuf {
        self.root.join("analysis.toml")
    }
    /// The encrypted lake: one folder per dataset, one per version inside it.
    pub fn lake(&self) -> PathBuf {
        self.root.join("lake")
    }
    /// The identity vault's folder (its own SQLite file, apart from the metadata store).
    pub fn vault(&self) -> PathBuf {
        self.root.join("vault")
    }
    /// The identity vault's SQLite file.
    pub fn vault_db(&self) -> PathBuf {
        self.vault().join("identities.sqlite")
    }
    /// Code masters the intake checks codes against (`niji_ingest::CodeMasters::load_dir`): files
    /// the operator puts here, named after their code system (`general-drug-name.csv`, …).
    pub fn masters(&self) -> PathBuf {
        self.root.join("masters")
    }

    /// Held while an intake writes, so that one intake never recovers another's work.
    pub fn intake_lock(&self) -> PathBuf {
        self.root.join("lake").join("INTAKE.lock")
    }
}

/// An open instance: its store, its transparency log and its keys.
pub struct Instance {
    pub paths: InstancePaths,
    pub store: Store,
    log: Arc<TransparencyLog>,
    accounts_key: [u8; 32],
    master: MasterKey,
}

impl Instance {
    /// Creates a new instance in `dir` (which may exist but must not hold an instance):
    /// fresh keys, an empty store, and a log whose first entry is `instance.created`.
    pub async fn init(dir: &Path, actor: &str) -> Result<Self, InstanceError> {
        let paths = InstancePaths::new(dir);
        if paths.marker().exists() {
            return Err(InstanceError::AlreadyExists(dir.to_path_buf()));
        }
        create_dir(&paths.keys())?;
        let mut seed = [0u8; 32];
        rand::Rng::fill(&mut rand::rngs::OsRng, &mut seed);
        write_secret(&paths.log_signing_key(), &seed)?;
        let mut accounts = [0u8; 32];
        rand::Rng::fill(&mut rand::rngs::OsRng, &mut accounts);
        write_secret(&paths.accounts_key(), &accounts)?;
        if std::env::var_os(MASTER_KEY_ENV).is_none() {
            let master = MasterKey::generate();
            write_text_secret(&paths.master_key(), &master.to_hex())?;
        }
        let instance = Self::open_unchecked(paths.clone()).await?;
        let event = AuditEvent::new(actor, time::OffsetDateTime::now_utc(), "instance.created", "instance")
            .with_data(serde_json::json!({"log_public_key": hex::encode(instance.log.verifying_key().as_bytes())}));
        instance.record(&event)?;
        // The marker goes last: a crash before this point leaves a folder `init` can redo.
        std::fs::write(paths.marker(), LAYOUT_VERSION).map_err(io_at(&paths.marker()))?;
        Ok(instance)
    }

    /// Opens an existing instance for reading and appending.
    pub async fn open(dir: &Path) -> Result<Self, InstanceError> {
        let paths = InstancePaths::new(dir);
        if !paths.marker().exists() {
            return Err(InstanceError::NotAnInstance(dir.to_path_buf()));
        }
        Self::open_unchecked(paths).await
    }

    async fn open_unchecked(paths: InstancePaths) -> Result<Self, InstanceError> {
        let signing = SigningKey::from_bytes(&read_secret(&paths.log_signing_key())?);
        let accounts_key = read_secret(&paths.accounts_key())?;
        let log_dir = paths.log();
        let log = tokio::task::spawn_blocking(move || TransparencyLog::open(&log_dir, signing)).await.expect("log open does not panic")?;
        let store = Store::open_sqlite(&paths.metadata_db()).await?;
        let master = MasterKey::load(&paths.master_key())?;
        Ok(Self { paths, store, log: Arc::new(log), accounts_key, master })
    }

    /// Fingerprint and source of the master key in use.
    pub fn master_key_info(&self) -> (String, MasterKeySource) {
        (self.master.fingerprint(), self.master.source)
    }

    /// The data key `id` if it exists; never creates one (a destroyed key stays destroyed).
    pub async fn existing_data_key(&self, id: &str) -> Result<Option<DataKey>, InstanceError> {
        match self.store.data_key(id).await? {
            Some(row) => Ok(Some(self.unwrap_row(&row)?)),
            None => Ok(None),
        }
    }

    /// The data key `id` (for example `dataset:ehr/v3`), created and recorded on first use.
    pub async fn data_key(&self, id: &str, actor: &str) -> Result<DataKey, InstanceError> {
        if let Some(key) = self.existing_data_key(id).await? {
            return Ok(key);
        }
        let key = DataKey::generate();
        let now = time::OffsetDateTime::now_utc();
        self.store.insert_data_key(id, &self.master.wrap(id, &key), &self.master.fingerprint(), now.unix_timestamp()).await?;
        self.record(&AuditEvent::new(actor, now, "key.data.created", format!("data-key:{id}")))?;
        Ok(key)
    }

    /// Checks that every stored data key unwraps under the master key in use; returns their ids.
    pub async fn check_data_keys(&self) -> Result<Vec<String>, InstanceError> {
        let rows = self.store.data_keys().await?;
        for row in &rows {
            self.unwrap_row(row)?;
        }
        Ok(rows.into_iter().map(|r| r.id).collect())
    }

    /// Re-wraps every data key under `new` in one transaction and, when the master key is
    /// kept in `keys/master.key`, replaces that file. The new key is first written beside it as
    /// `master.key.new`, so that a crash between the two steps loses no key. With the key in
    /// `NIJI_MASTER_KEY`, the operator sets the new value before the next start.
    pub async fn rotate_master_key(&mut self, new: MasterKey, actor: &str) -> Result<usize, InstanceError> {
        let rows = self.store.data_keys().await?;
        let mut rewrapped = Vec::with_capacity(rows.len());
        for row in &rows {
            let key = self.unwrap_row(row)?;
            rewrapped.push((row.id.clone(), new.wrap(&row.id, &key)));
        }
        let staged = self.paths.keys().join("master.key.new");
        if self.master.source == MasterKeySource::File {
            write_text_secret(&staged, &new.to_hex())?;
        }
        let now = time::OffsetDateTime::now_utc();
        self.store.rewrap_data_keys(&rewrapped, &new.fingerprint(), now.unix_timestamp()).await?;
        if self.master.source == MasterKeySource::File {
            std::fs::rename(&staged, self.paths.master_key()).map_err(io_at(&staged))?;
        }
        let old = self.master.fingerprint();
        self.master = new.with_source(self.master.source);
        self.record(&AuditEvent::new(actor, now, "key.master.rotated", "instance").with_data(serde_json::json!({
            "from": old, "to": self.master.fingerprint(), "data_keys": rows.len()
        })))?;
        Ok(rows.len())
    }

    fn unwrap_row(&self, row: &niji_store::DataKeyRow) -> Result<DataKey, KeyError> {
        let given = self.master.fingerprint();
        if row.master_fingerprint != given {
            return Err(KeyError::WrongMasterKey { id: row.id.clone(), wrapped_by: row.master_fingerprint.clone(), given });
        }
        self.master.unwrap(&row.id, &row.wrapped)
    }

    pub fn log(&self) -> &Arc<TransparencyLog> {
        &self.log
    }

    /// The key that seals account secrets (TOTP seeds) at rest.
    pub fn accounts_key(&self) -> &[u8; 32] {
        &self.accounts_key
    }

    /// An audit sink writing to this instance's log, to hand to other components.
    pub fn audit_sink(&self) -> Arc<dyn AuditSink> {
        Arc::new(LogSink(self.log.clone()))
    }
}

impl AuditSink for Instance {
    fn record(&self, event: &AuditEvent) -> Result<u64, AuditError> {
        LogSink(self.log.clone()).record(event)
    }
}

/// Reads the log's public key of an instance without opening it for appending (for
/// `niji log verify` while a server holds the log).
pub fn log_verifying_key(dir: &Path) -> Result<ed25519_dalek::VerifyingKey, InstanceError> {
    let paths = InstancePaths::new(dir);
    if !paths.marker().exists() {
        return Err(InstanceError::NotAnInstance(dir.to_path_buf()));
    }
    Ok(SigningKey::from_bytes(&read_secret(&paths.log_signing_key())?).verifying_key())
}

struct LogSink(Arc<TransparencyLog>);

impl AuditSink for LogSink {
    fn record(&self, event: &AuditEvent) -> Result<u64, AuditError> {
        self.0.append(&event.canonical_bytes()).map_err(|e| AuditError(e.to_string()))
    }
}

fn create_dir(path: &Path) -> Result<(), InstanceError> {
    std::fs::create_dir_all(path).map_err(io_at(path))?;
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o700)).map_err(io_at(path))
}

fn write_secret(path: &Path, key: &[u8; 32]) -> Result<(), InstanceError> {
    let mut f = std::fs::OpenOptions::new().write(true).create(true).truncate(true).mode(0o600).open(path).map_err(io_at(path))?;
    f.write_all(format!("{}\n", hex::encode(key)).as_bytes()).map_err(io_at(path))?;
    f.sync_all().map_err(io_at(path))
}

fn write_text_secret(path: &Path, text: &str) -> Result<(), InstanceError> {
    let mut f = std::fs::OpenOptions::new().write(true).create(true).truncate(true).mode(0o600).open(path).map_err(io_at(path))?;
    f.write_all(format!("{text}\n").as_bytes()).map_err(io_at(path))?;
    f.sync_all().map_err(io_at(path))
}

fn read_secret(path: &Path) -> Result<[u8; 32], InstanceError> {
    let text = std::fs::read_to_string(path).map_err(io_at(path))?;
    let bytes = hex::decode(text.trim()).map_err(|e| InstanceError::BadKey { path: path.to_path_buf(), reason: e.to_string() })?;
    bytes.try_into().map_err(|_| InstanceError::BadKey { path: path.to_path_buf(), reason: "expected 32 bytes in hex".into() })
}

fn io_at(path: &Path) -> impl Fn(std::io::Error) -> InstanceError + '_ {
    move |source| InstanceError::Io { path: path.to_path_buf(), source }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn init_creates_keys_and_a_first_entry_and_refuses_to_overwrite() {
        let dir = tempfile::tempdir().unwrap();
        let inst = Instance::init(dir.path(), "cli:test").await.unwrap();
        assert_eq!(inst.log().size(), 1);
        let first = AuditEvent::from_bytes(&inst.log().entry(0).unwrap()).unwrap();
        assert_eq!(first.action, "instance.created");
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(inst.paths.log_signing_key()).unwrap().permissions().mode();
        assert_eq!(mode & 0o077, 0, "key readable by others: {mode:o}");
        let key_before = std::fs::read(inst.paths.log_signing_key()).unwrap();
        drop(inst);
        assert!(matches!(Instance::init(dir.path(), "cli:test").await, Err(InstanceError::AlreadyExists(_))));
        assert_eq!(std::fs::read(InstancePaths::new(dir.path()).log_signing_key()).unwrap(), key_before);
        let inst = Instance::open(dir.path()).await.unwrap();
        assert_eq!(inst.log().size(), 1);
        assert_eq!(log_verifying_key(dir.path()).unwrap(), inst.log().verifying_key());
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn data_keys_are_wrapped_survive_rotation_and_name_a_wrong_master_key() {
        let dir = tempfile::tempdir().unwrap();
        let mut inst = Instance::init(dir.path(), "cli:test").await.unwrap();
        let a = inst.data_key("dataset:ehr/v1", "cli:test").await.unwrap();
        let b = inst.data_key("vault:identities", "cli:test").await.unwrap();
        assert_ne!(a, b);
        assert_eq!(inst.data_key("dataset:ehr/v1", "cli:test").await.unwrap(), a, "a key is created once");
        let old_master = std::fs::read_to_string(inst.paths.master_key()).unwrap();

        let new = MasterKey::generate();
        let new_fingerprint = new.fingerprint();
        assert_eq!(inst.rotate_master_key(new, "cli:test").await.unwrap(), 2);
        assert_eq!(inst.master_key_info().0, new_fingerprint);
        assert_eq!(inst.data_key("dataset:ehr/v1", "cli:test").await.unwrap(), a, "rotation keeps the data keys");
        assert!(!inst.paths.keys().join("master.key.new").exists());
        let path = inst.paths.master_key();
        drop(inst);

        // Reopened with the rotated key file: every key unwraps.
        let inst = Instance::open(dir.path()).await.unwrap();
        assert_eq!(inst.check_data_keys().await.unwrap(), vec!["dataset:ehr/v1".to_string(), "vault:identities".to_string()]);
        assert_eq!(inst.data_key("vault:identities", "cli:test").await.unwrap(), b);
        drop(inst);

        // The old master key is refused by name, not with a decryption failure.
        std::fs::write(&path, old_master).unwrap();
        let inst = Instance::open(dir.path()).await.unwrap();
        let err = inst.check_data_keys().await.unwrap_err().to_string();
        assert!(err.contains("wrapped by master key") && err.contains(&new_fingerprint), "{err}");

        // No data key and no master key sits in the clear anywhere outside keys/ (database,
        // its WAL, the log).
        let master_bytes = ::hex::decode(std::fs::read_to_string(&path).unwrap().trim()).unwrap();
        let mut scanned = 0;
        for name in ["meta.sqlite", "meta.sqlite-wal", "log/entries.dat", "log/heads.dat"] {
            let Ok(bytes) = std::fs::read(dir.path().join(name)) else { continue };
            scanned += 1;
            for needle in [a.0.as_slice(), b.0.as_slice(), master_bytes.as_slice()] {
                assert!(!bytes.windows(32).any(|w| w == needle), "key bytes in {name}");
            }
        }
        assert!(scanned >= 3);
        let actions: Vec<String> = (0..inst.log().size()).map(|i| AuditEvent::from_bytes(&inst.log().entry(i).unwrap()).unwrap().action).collect();
        assert_eq!(actions.iter().filter(|a| *a == "key.data.created").count(), 2);
        assert!(actions.contains(&"key.master.rotated".to_string()));
    }

    #[tokio::test]
    async fn opening_a_plain_folder_says_what_to_do() {
        let dir = tempfile::tempdir().unwrap();
        let err = Instance::open(dir.path()).await.err().unwrap();
        assert!(err.to_string().contains("niji init"), "{err}");
    }
}
