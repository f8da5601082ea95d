//! An instance: one folder holding everything of one Niji installation.
//!
//! ```text
//! DIR/
//!   NIJI_INSTANCE        marker with the layout version
//!   keys/                secrets, mode 0600: log-signing.key (Ed25519 seed), accounts.key
//!   log/                 the transparency log (niji-log)
//!   meta.sqlite          the metadata store (niji-store)
//! ```
//!
//! Invariants: `init` refuses a folder that already holds an instance (it never overwrites
//! keys); the first log entry of every instance is `instance.created`. Keys never leave
//! this crate except as typed handles. No HTTP here.

use ed25519_dalek::SigningKey;
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
    pub fn synth(&self) -> PathBuf {
        self.root.join("synth")
    }
}

/// An open instance: its store, its transparency log and its keys.
pub struct Instance {
    pub paths: InstancePaths,
    pub store: Store,
    log: Arc<TransparencyLog>,
    accounts_key: [u8; 32],
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
        Ok(Self { paths, store, log: Arc::new(log), accounts_key })
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

    #[tokio::test]
    async fn opening_a_plain_folder_says_what_to_do() {
        let dir = tempfile::tempdir().unwrap();
        let err = Instance::open(dir.path()).await.err().unwrap();
        assert!(err.to_string().contains("niji init"), "{err}");
    }
}
