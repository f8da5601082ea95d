//! A data holder's submission, end to end (issue 3): every file is validated, the identity half
//! of each record is linked to a person and sealed in the identity vault, the content half is
//! written to the encrypted lake under that person's key, and the metadata store records the new
//! dataset version — or, if anything is wrong, nothing changes.
//!
//! # The flow of [`ingest`]
//!
//! 1. **Validate** (pass 1, nothing written): every file is parsed (`niji-ingest`). The records
//!    that carry a person — FHIR Patients, UKE claims (RE, with their HO/KO/SN payers), CSV rows
//!    with identifiers, and resources whose subject is given by identifier only — become
//!    *linkage units*; every other record must reach one (a FHIR resource's `subject` must name a
//!    Patient of the same submission — `urn:` references in the same file, `Patient/<id>` in the
//!    same folder, the unit of one export — a UKE line belongs to its RE). A record that does not is
//!    rejected with [`Reason::UnresolvedSubject`](niji_ingest::Reason::UnresolvedSubject). If any
//!    record is rejected and the holder did not choose [`OnReject::Quarantine`], the submission
//!    is refused ([`Outcome::Refused`]) and only the refusal is logged.
//! 2. **Link**: the units are linked together with the earlier persons they can reach
//!    (`niji-privacy`, with the vault's prior anchors so that known persons keep their keys):
//!    round by round, the buckets (block × name ending) and anchors of the units and of the
//!    persons read back so far are looked up in the vault's link index, and every linkable
//!    record of each person found is read back, until a round finds no one new
//!    ([`ReadBack::Reached`]; the keys come out as when every earlier record is read back,
//!    which a vault whose index is not complete yet does once). The vault batch begins before
//!    linkage runs: the anchors go into it in chunks as linkage makes them, the buckets and
//!    joined keys right after, before any record (the same transaction: a refused or killed
//!    intake stores none of them), and each is freed once stored.
//! 3. **Write** (pass 2): the files are parsed again; each accepted record's identity goes to one
//!    vault transaction, its content to a lake staging folder under a fresh per-version data key.
//! 4. **Commit**: the version row is created in state `writing` before step 3; then the vault
//!    transaction commits and the lake folder is renamed into place (side by side), and only
//!    then the version row flips to `committed` with its counts; the commit is logged.
//!
//! # Recovery
//!
//! A version exists only when its metadata row is `committed`. [`recover`] (run at the start of
//! every intake, under the intake lock) undoes whatever a crash left: for every `writing` row it
//! deletes the version's vault records and anchors, its lake folder and staging folders, then the
//! row. A killed intake therefore leaves no partial version, whichever step it died in.
//!
//! # Invariants
//!
//! - Identifiers reach only the vault. The lake gets `Content` (which cannot hold them by
//!   construction) and person keys; the metadata store gets counts, fixed reasons and locations.
//! - Organization and Practitioner resources' names are not kept at all (they are not the
//!   patients' identities and nothing downstream needs them). A resource's subject reference
//!   becomes its person key and its own ids (`Resource.id`, `fullUrl`, business identifiers) stay
//!   with the holder: a resource gets a vault row only for what else it names (narrative, free
//!   text, other parties). Linkage units always get one.
//! - One intake at a time per instance ([`InstancePaths::intake_lock`](niji_instance::InstancePaths::intake_lock)).
//! - No HTTP, no terminal: progress goes through [`Progress`].
//!
//! Memory: content is streamed (bounded by the lake's buffers and the vault's page cache); what
//! grows with the input is the linkage state — each distinct identity once as a
//! [`niji_privacy::LinkUnit`] (normalized names and ids, fingerprints; a patient's monthly claims
//! at one hospital are one unit, [`niji_privacy::UnitSet`]), a unit number per record that carries
//! a person (pass 2 finds its unit by counting, in the same order; kept in an unnamed temporary
//! file in the instance folder, `scan::UnitNumbers`, as it grows with the records), patient references, and
//! linkage's own indexes. Files are put together in file order as soon as every earlier file is
//! in (a slow first file keeps the later ones' units waiting, each file's units already merged
//! within it); pass 2 refuses a file whose size or modification time differs from when it was
//! listed, and checks each file's records and units against pass 1's (`FileChanged`). The records whose Patient is missing are located by
//! reading those files again, only when there are some. Measured with
//! `NIJI_BENCH_ONLY=uke NIJI_BENCH_PERSONS=1000000 NIJI_BENCH_PERSONS_SMALL=300000 cargo bench -p niji-intake`
//! (session 19): 146–176 MB peak for 24.6 million UKE lines (2.68 million claims, 384,822
//! distinct units; session 18: 256 MB), 369 MB for 73.9 million (3 million persons, 1,155,622
//! units, in the link phase: the units, about 190 bytes each with their spans and dates as
//! they were then, linkage's indexes and the keys; 340 MB since the unit numbers wait on disk,
//! session 20),
//! 116 MB for 7.4 million. Units are packed (`UnitList`) and, past
//! [`IntakeOptions::units_held_bytes`] (and past 1 MB of a file's own while it is scanned),
//! wait in a sealed scratch file (`scratch`), read back by 1 KiB page (session 21: 3M persons
//! peak 245 MB in the link phase, validate 136 MB, 235,121 lines/s; 1M persons 152 MB,
//! 267,292 lines/s; the link phase is slower by the pages read back: 8 → 10 s at 1M). The
//! anchors go to the vault batch as linkage makes them, the bucket rows after them, in chunks as
//! they are made; keys come back per person with a number per unit (`UnitKeys`), which the lake
//! counts persons by (session 22: 3M persons peak 183 MB in the link phase, write 179, commit
//! 120; 1M persons 115–118 MB). Each unit's end and first record lie in its page, clusters are
//! chains, and a set taken as it was keeps no list of its unit numbers (session 24: 3M persons
//! link 174 → 154 MB, write 174 → 169, the peak now; 1M persons link 96 → 85, write 112–113).
//! For pass 2 the persons' keys go to sealed scratch pages and the units' dates are packed
//! (`per_unit`; session 26: 3M persons write 152 → 121 MiB, link 115 the next peak; 1M persons
//! write 104–106 → 96, at the same lines a second). Linkage hands each cluster's key to sealed
//! pages as it makes it, the persons are numbered from there (`per_unit::ClusterKeys`), and the
//! first pass finds identical units through shards that split as they fill (session 28: 3M
//! persons link 114 → 96 MiB, validate 109 → 84, write 122 → 121, the peak; 1M persons link
//! 77 → 70, validate 50 → 45). That index keeps 12 bytes an entry in sorted segments, the units'
//! per-unit and per-page arrays are packed and grow in chunks, identifier links are made in
//! passes over a share of the fingerprints each, blocks by a counting sort, and pass 2 reads
//! each unit's person number and dates from sealed pages (`per_unit`) instead of holding them
//! (session 29: 3M persons write 120 → 108 MiB, still the peak, link 96 → 87, validate 82 → 62;
//! growth from 1M persons 24, 27 and 25 bytes a distinct unit, where it was 35, 35 and 53).
//! Earlier versions' units
//! are read back only for the persons the submission reaches (step 2), not for the whole instance (5 of those 240 files as a new
//! dataset of an instance that holds them twice: 243,878 earlier records read back and a
//! 490 MB peak, against 830,564 and 1,355 MB reading back everyone; `NIJI_BENCH_AGAIN=1`), and are reduced the same way as the
//! vault unseals them, into a set of their own that holds identical units once, with 4-byte
//! numbers for their keys (`read_back`; session 30: 365,718 records read back, link phase
//! 288–356 → 181–199 MB, its live Rust heap 173 → 109 MB, with SQLite's heap held near 32 MiB);
//! only the first record of each distinct unit of a version is stored as
//! linkable (with the unit's earliest observation date), so later intakes unseal one record per
//! identity, not every monthly claim: the clusters come out as if they read them all (the
//! records left out are identical identifying units), and a record with nothing identifying
//! keeps the key it was stored under (`UnitSet::push_stored`). `LinkStats::records` and
//! `rekeyed_units` count the records read back.

mod listing;
mod per_unit;
mod read_back;
mod scan;
mod scratch;
mod write;

pub use listing::{current_linkage, list_datasets, DatasetEntry, VersionEntry};

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use niji_core::{AuditEvent, AuditSink};
use niji_ingest::{CsvMapping, FileReport, IngestConfig, IngestError};
use niji_instance::{Instance, InstanceError};
use niji_lake::{LakeError, LakeKey, LakeOptions};
use niji_privacy::{LinkStats, LinkageConfig, PersonKey, Pseudonymizer, VaultKey};
use niji_store::{StoreError, VersionCommit, VersionProblemRow, VersionTableRow};
use niji_vault::{Vault, VaultError};

/// Data key sealing the vault's identity records.
pub const VAULT_SEALING_KEY: &str = "vault:sealing";
/// Data key of the vault's keyed hashes and of person keys (the linkage secret).
pub const VAULT_HASH_KEY: &str = "vault:hash";

/// The data key id of one lake version (`lake:<dataset>/v<n>`).
pub fn lake_key_id(tag: &str) -> String {
    format!("lake:{tag}")
}

/// The name of one version in the vault and the lake: `<dataset>/v<number>`.
pub fn version_tag(dataset: &str, number: i64) -> String {
    format!("{dataset}/v{number}")
}

/// One submission of a data holder.
#[derive(Debug, Clone)]
pub struct Submission {
    /// The holder organization's registered name.
    pub holder: String,
    /// Dataset name: 1–64 of `a-z`, `0-9`, `-`, starting with a letter or digit.
    pub dataset: String,
    /// Titles and descriptions if the dataset is new (defaults to its name).
    pub description: Option<DatasetDescription>,
    pub files: Vec<PathBuf>,
    /// Needed when a file is CSV.
    pub csv_mapping: Option<CsvMapping>,
    pub on_reject: OnReject,
    /// Who submits, as an audit actor (`user:3`, `cli:alice`).
    pub actor: String,
}

/// What to do with a submission that has rejected records.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnReject {
    /// Store nothing; report every problem (the default).
    RefuseSubmission,
    /// The holder accepts the submission without the rejected records; they are listed with the
    /// version (locations and reasons only).
    Quarantine,
}

/// How a new dataset is described in the catalog.
#[derive(Debug, Clone)]
pub struct DatasetDescription {
    /// `ehr`, `claims`, `registry` or `mixed`; empty: from the submitted formats.
    pub kind: String,
    pub title_ja: String,
    pub title_en: String,
    pub description_ja: String,
    pub description_en: String,
}

/// Settings of an intake.
#[derive(Debug, Clone)]
pub struct IntakeOptions {
    pub ingest: IngestConfig,
    pub linkage: LinkageConfig,
    pub lake: LakeOptions,
    pub read_back: ReadBack,
    /// Bytes of linkage units (normalized identities, ~170 bytes a distinct one) kept in memory
    /// per set of units (the submission's, the records read back, the run's: up to three at
    /// once while the run's set is filled); the rest go to a sealed scratch file in the instance
    /// folder as they come, and are read back from it (`scratch`).
    pub units_held_bytes: usize,
}

/// [`IntakeOptions::units_held_bytes`] by default.
pub const UNITS_HELD_BYTES: usize = 16 << 20;

impl IntakeOptions {
    pub fn new(ingest: IngestConfig) -> Self {
        Self {
            ingest,
            linkage: LinkageConfig::default(),
            lake: LakeOptions::default(),
            read_back: ReadBack::default(),
            units_held_bytes: UNITS_HELD_BYTES,
        }
    }
}

/// Which earlier records a linkage run reads back from the vault.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum ReadBack {
    /// Only the persons this submission's records can reach (`niji_privacy::reach`, through the
    /// vault's link index), so that an intake's memory and time grow with the submission and
    /// the persons it touches, not with the instance. The keys come out as with `Everything`.
    #[default]
    Reached,
    /// Every linkable record of every committed version (what a vault whose link index is not
    /// complete yet gets, once; kept to compare against).
    Everything,
}

/// The steps an intake reports progress for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// Pass 1: parsing and validating (total: bytes of all files).
    Validate,
    /// Linking identities (no total).
    Link,
    /// Pass 2: vault and lake (total: accepted records).
    Write,
    /// Committing vault, lake and metadata (no total).
    Commit,
}

/// Receives progress; the command line draws a bar from it.
pub trait Progress: Send + Sync {
    fn start(&self, phase: Phase, total: Option<u64>);
    fn advance(&self, n: u64);
    fn finish(&self, phase: Phase);
}

/// No progress output.
pub struct NoProgress;

impl Progress for NoProgress {
    fn start(&self, _: Phase, _: Option<u64>) {}
    fn advance(&self, _: u64) {}
    fn finish(&self, _: Phase) {}
}

/// What became of a submission.
#[derive(Debug)]
pub enum Outcome {
    Committed(Box<VersionReport>),
    /// Rejected records and no quarantine: nothing was stored.
    Refused {
        files: Vec<FileReport>,
        rejected_records: u64,
    },
}

/// A committed version, with the figures the holder and the operator see.
#[derive(Debug, Clone)]
pub struct VersionReport {
    pub dataset: String,
    pub number: i64,
    pub files: Vec<FileReport>,
    pub records_accepted: u64,
    /// Rejected records left out because the holder chose quarantine.
    pub records_quarantined: u64,
    pub warnings: u64,
    /// Linkage over this submission's units and every unit already in the vault.
    pub link: LinkStats,
    /// Linkage units of this submission (records that carry a person).
    pub units: u64,
    /// Distinct units linkage held in memory: this submission's and earlier versions', each
    /// distinct identity once.
    pub units_held: u64,
    /// Distinct persons of this version.
    pub persons: u64,
    /// Persons of this version who also appear in another dataset.
    pub persons_shared: u64,
    /// Earlier units whose person key would now be different (two known persons merged); their
    /// stored rows keep the old key.
    pub rekeyed_units: u64,
    pub tables: Vec<VersionTableRow>,
    pub coverage: Option<(String, String)>,
    pub seconds: f64,
}

impl VersionReport {
    /// Share of this version's persons found in another dataset (the operator's linkage rate).
    pub fn linkage_rate(&self) -> f64 {
        if self.persons == 0 {
            0.0
        } else {
            self.persons_shared as f64 / self.persons as f64
        }
    }
}

/// Why an intake stopped. Messages name files and fields, never values.
#[derive(Debug, thiserror::Error)]
pub enum IntakeError {
    #[error("dataset name must be 1-64 characters of a-z, 0-9 and '-', starting with a letter or digit")]
    BadDatasetName,
    #[error("no files given")]
    NoFiles,
    #[error("organization {0:?} is not registered")]
    UnknownHolder(String),
    #[error("dataset {dataset:?} belongs to another holder")]
    NotTheHolder { dataset: String },
    #[error("{file}: {source}")]
    File { file: String, source: IngestError },
    #[error("{file}: the file changed while it was being ingested")]
    FileChanged { file: String },
    #[error("two files are named {0:?}; give files with distinct paths")]
    DuplicateFile(String),
    #[error("the intake lock could not be taken: {0}")]
    Lock(std::io::Error),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Instance(#[from] InstanceError),
    #[error(transparent)]
    Vault(#[from] VaultError),
    #[error(transparent)]
    Lake(#[from] LakeError),
    #[error("the audit log refused an entry: {0}")]
    Audit(String),
    #[error("{0}")]
    Io(#[from] std::io::Error),
}

/// Checks a dataset name.
pub fn valid_dataset_name(name: &str) -> bool {
    !name.is_empty() && name.len() <= 64 && name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-') && !name.starts_with('-')
}

/// Runs one submission; see the module docs. Needs a multi-threaded Tokio runtime.
pub async fn ingest(
    instance: &Instance,
    submission: Submission,
    options: &IntakeOptions,
    progress: Arc<dyn Progress>,
) -> Result<Outcome, IntakeError> {
    let started = Instant::now();
    if !valid_dataset_name(&submission.dataset) {
        return Err(IntakeError::BadDatasetName);
    }
    if submission.files.is_empty() {
        return Err(IntakeError::NoFiles);
    }
    let store = &instance.store;
    let holder = store.organization_by_name(&submission.holder).await?.ok_or_else(|| IntakeError::UnknownHolder(submission.holder.clone()))?;
    let existing = store.dataset_by_name(&submission.dataset).await?;
    if let Some(d) = &existing {
        if d.holder_id != holder.id {
            return Err(IntakeError::NotTheHolder { dataset: submission.dataset.clone() });
        }
    }
    let files = scan::SubmittedFile::list(&submission.files)?;

    // Pass 1: validate; nothing is written.
    let scan = {
        let files = files.clone();
        let ingest = options.ingest.clone();
        let mapping = submission.csv_mapping.clone();
        let holder = submission.holder.clone();
        let progress = progress.clone();
        let scratch = scan::Scratch { folder: instance.paths.root.clone(), units_held_bytes: options.units_held_bytes };
        tokio::task::spawn_blocking(move || scan::scan(&files, &holder, &ingest, mapping.as_ref(), &*progress, &scratch))
            .await
            .expect("scan does not panic")?
    };
    let rejected_records: u64 = scan.reports.iter().map(|r| r.rejected_records).sum();
    if rejected_records > 0 && submission.on_reject == OnReject::RefuseSubmission {
        let event = AuditEvent::new(&submission.actor, now(), "dataset.submission.refused", format!("dataset:{}", submission.dataset)).with_data(
            serde_json::json!({"holder": holder.id, "files": files.len(), "rejected_records": rejected_records, "accepted_records": scan.accepted()}),
        );
        instance.record(&event).map_err(|e| IntakeError::Audit(e.to_string()))?;
        return Ok(Outcome::Refused { files: scan.reports, rejected_records });
    }

    // From here on state changes, under the intake lock.
    let _lock = IntakeLock::take(instance).await?;
    recover_locked(instance, &submission.actor).await?;
    let dataset_id = match existing {
        Some(d) => d.id,
        None => {
            let mut d = submission.description.clone().unwrap_or_else(|| DatasetDescription {
                kind: scan.kind().to_string(),
                title_ja: submission.dataset.clone(),
                title_en: submission.dataset.clone(),
                description_ja: String::new(),
                description_en: String::new(),
            });
            if d.kind.is_empty() {
                d.kind = scan.kind().to_string();
            }
            let id = store
                .create_dataset(
                    &niji_store::NewDataset {
                        name: &submission.dataset,
                        holder_id: holder.id,
                        kind: &d.kind,
                        title_ja: &d.title_ja,
                        title_en: &d.title_en,
                        description_ja: &d.description_ja,
                        description_en: &d.description_en,
                    },
                    now().unix_timestamp(),
                )
                .await?;
            let event = AuditEvent::new(&submission.actor, now(), "dataset.created", format!("dataset:{}", submission.dataset))
                .with_data(serde_json::json!({"holder": holder.id, "kind": d.kind}));
            instance.record(&event).map_err(|e| IntakeError::Audit(e.to_string()))?;
            id
        }
    };
    let (version_id, number) = store.begin_dataset_version(dataset_id, &submission.actor, now().unix_timestamp()).await?;
    let tag = version_tag(&submission.dataset, number);
    fail::fail_point!("intake-after-begin");
    match write_version(instance, &submission, options, &progress, scan, &files, version_id, number, &tag).await {
        Ok(mut report) => {
            report.seconds = started.elapsed().as_secs_f64();
            Ok(Outcome::Committed(Box::new(report)))
        }
        Err(e) => {
            // Undo now rather than at the next start; a crash here is undone by `recover`.
            undo_version(instance, version_id, &tag).await?;
            Err(e)
        }
    }
}

/// Runs `make` on a blocking thread; each chunk it gives its sink comes out of the receiver as it
/// is made (two wait at most), so that what `make` produces in chunks (linkage's anchors, bucket
/// rows) is never held whole. A receiver dropped early makes `make` drop the chunks after (the
/// intake failed and stops: they have nowhere to go).
fn make_in_chunks<T: Send + 'static, R: Send + 'static>(
    make: impl FnOnce(&mut dyn FnMut(Vec<T>)) -> R + Send + 'static,
) -> (tokio::sync::mpsc::Receiver<Vec<T>>, tokio::task::JoinHandle<R>) {
    let (tx, rx) = tokio::sync::mpsc::channel::<Vec<T>>(2);
    let making = tokio::task::spawn_blocking(move || {
        make(&mut |chunk| {
            let _ = tx.blocking_send(chunk);
        })
    });
    (rx, making)
}

/// Chunks stored while a producer makes them: the failpoint a crash test sets (a chunk not
/// stored) and what its error says.
type ChunkStep = (&'static str, &'static str);
const ANCHOR_CHUNKS: ChunkStep = ("intake-storing-anchors", "anchors not stored (failpoint)");
const BUCKET_ROW_CHUNKS: ChunkStep = ("intake-storing-buckets", "bucket rows not stored (failpoint)");

/// A step of a vault batch that stores one chunk.
type StoreChunk<'a> = std::pin::Pin<Box<dyn std::future::Future<Output = Result<(), niji_vault::VaultError>> + Send + 'a>>;

/// Stores each chunk that comes out of `chunks` into the batch with `store`, until one fails:
/// then the receiver is dropped (the producer drops the chunks after) and the error returned.
/// `step` names it for the crash tests.
async fn store_chunks<T: Send>(
    batch: &mut niji_vault::VaultBatch,
    mut chunks: tokio::sync::mpsc::Receiver<Vec<T>>,
    // Read only where failpoints are compiled in (the crash tests).
    #[allow(unused_variables)] step: ChunkStep,
    store: for<'a> fn(&'a mut niji_vault::VaultBatch, &'a [T]) -> StoreChunk<'a>,
) -> Result<(), niji_vault::VaultError> {
    while let Some(chunk) = chunks.recv().await {
        fail::fail_point!(step.0, |_| Err(niji_vault::VaultError::Invalid(step.1)));
        store(batch, &chunk).await?;
    }
    Ok(())
}

/// Undoes every version a crashed intake left in state `writing`; returns how many. Takes the
/// intake lock, so it waits for a running intake.
pub async fn recover(instance: &Instance, actor: &str) -> Result<usize, IntakeError> {
    let _lock = IntakeLock::take(instance).await?;
    recover_locked(instance, actor).await
}

/// Opens the instance's vault with its keys (created on first use).
pub async fn open_vault(instance: &Instance, actor: &str) -> Result<(Vault, Pseudonymizer), IntakeError> {
    let sealing = instance.data_key(VAULT_SEALING_KEY, actor).await?;
    let hash = instance.data_key(VAULT_HASH_KEY, actor).await?;
    let vault_key = VaultKey::from_bytes(&hash.0).expect("a data key is 32 bytes");
    std::fs::create_dir_all(instance.paths.vault())?;
    let vault = Vault::open(&instance.paths.vault_db(), &sealing.0, &vault_key).await?;
    Ok((vault, Pseudonymizer::new(&vault_key)))
}

#[allow(clippy::too_many_arguments)]
async fn write_version(
    instance: &Instance,
    submission: &Submission,
    options: &IntakeOptions,
    progress: &Arc<dyn Progress>,
    mut scan: scan::Scan,
    files: &[scan::SubmittedFile],
    version_id: i64,
    number: i64,
    tag: &str,
) -> Result<VersionReport, IntakeError> {
    let store = &instance.store;
    let (vault, pseudonymizer) = open_vault(instance, &submission.actor).await?;
    let result = async {
        // Link this submission's units with every unit already known.
        progress.start(Phase::Link, None);
        let committed: Vec<String> = store.committed_dataset_tags().await?.into_iter().map(|(d, n)| version_tag(&d, n)).collect();
        // Earlier records are reduced to linkage units as they are unsealed (each distinct
        // identity held once), and this submission's units are appended after them (linkage
        // takes them in order of arrival).
        let unit_count = scan.unit_of.len() as u64;
        let index_complete = vault.link_index_complete(niji_privacy::LINK_INDEX_FORMAT).await?;
        // The units read back go to a set of their own (identical ones once), its pages past
        // the held bytes to a sealed scratch file.
        let read_set = scratch::read_back_set(&instance.paths.root, options.units_held_bytes)?;
        let mut read = if options.read_back == ReadBack::Reached && index_complete {
            let submitted = std::mem::take(&mut scan.units);
            let (read, submitted) = read_back::read_reached(&vault, &committed, submitted, &pseudonymizer, read_set).await?;
            scan.units = submitted;
            read
        } else {
            read_back::read_everything(&vault, &committed, read_set).await?
        };
        // The index rows of the persons read back, as they were: the run rewrites them (a run
        // that completes the index deletes every row instead).
        let (mut read, retired) = if index_complete {
            let current = match read.current.take() {
                Some(current) => current,
                None => read_back::current_keys_of(&vault, &read.stored).await?,
            };
            let hasher = pseudonymizer.clone();
            tokio::task::spawn_blocking(move || {
                let retired = niji_privacy::cluster_buckets(&read.units(), &current.into_unit_keys(), &hasher);
                (read, retired)
            })
            .await
            .expect("bucketing does not panic")
        } else {
            (read, Vec::new())
        };
        let prior = match read.anchors.as_ref() {
            Some(anchors) => vault.prior_keys_of(anchors).await?,
            None => vault.prior_keys().await?,
        };
        // What is not needed any more goes now, not at the end of the intake.
        read.anchors = None;
        // The units read back in the order stored (a run over every record meets them so); the
        // read set goes once the run's holds them. With nothing read back, the submission's set
        // (its units in their scratch file already) becomes the run's as it is.
        let mut units = if read.unit_of.is_empty() {
            niji_privacy::UnitSet::default()
        } else {
            scratch::unit_set(&instance.paths.root, options.units_held_bytes)?
        };
        // Per record read back, in the order added: its unit in the run.
        let run_unit_of: Vec<u32> = units.push_stored_units(&read.units(), |i| read.stored.key(i), read.order.as_deref());
        // And the number of the key it was stored under, in the same order.
        let (numbers, stored_keys_by_number) = std::mem::take(&mut read.stored).into_parts();
        let stored_number: Vec<u32> = match read.order.take() {
            Some(order) => order.iter().map(|&i| numbers[i as usize]).collect(),
            None => numbers,
        };
        // A page of the units read back not written to scratch, or not read from there (by
        // reaching, bucketing or here): they read as empty units. Stop before linking.
        if let Some(e) = read.set.store_error() {
            return Err(e.into());
        }
        drop(read);
        let submitted = std::mem::take(&mut scan.units);
        let mut observed = per_unit::UnitDates::with_capacity(submitted.len());
        (0..submitted.len()).for_each(|i| observed.push(submitted.units().observed(i)));
        let moved = units.append(submitted);
        units.close();
        // A scratch page not written, or not read back while reaching: stop before linking.
        if let Some(e) = units.store_error() {
            return Err(e.into());
        }
        for u in scan.patient_refs.values_mut() {
            *u = moved.of(*u as usize);
        }
        // Per unit, the earliest date this submission's records of it were observed: stored
        // with the unit's first record, the only one of them that later intakes read back
        // (the others would make the same unit again; see `UnitSet`).
        let mut link_observed = per_unit::UnitDates::none(units.len());
        for (s, u) in moved.iter().enumerate() {
            link_observed.set(u as usize, observed.get(s));
        }
        scan.unit_in_run = moved;
        drop(observed);
        // The first pass's digest index, freed by `close`, lies in the allocator's heap (arrays
        // of a few hundred KB each): back to the system before linkage allocates its own.
        return_freed_memory();
        let units_held = units.len() as u64;
        let mut linkage_config = options.linkage.clone();
        linkage_config.run_scope = tag.to_string();
        // The vault batch begins here (its write lock is taken by its first write): linkage
        // hands its anchors over in chunks as it makes them, and they go into the batch at once
        // instead of being held (64 bytes each, several a person: 67 MB at a million persons).
        let mut batch = vault.begin_batch(&submission.holder, tag).await?;
        let hasher = pseudonymizer.clone();
        // Each cluster's key goes to sealed scratch pages as linkage makes it (32 bytes a
        // cluster, the most linkage held at its end), and the persons are numbered from there.
        let scratch_folder = instance.paths.root.clone();
        let mut cluster_keys = per_unit::ClusterKeys::new(&scratch_folder)?;
        let (chunks, linking) = make_in_chunks(move |sink| {
            let clustered =
                niji_privacy::link_clusters_streaming(&units, &linkage_config, &hasher, &prior, sink, &mut |k, all| cluster_keys.push(k, all));
            let persons = cluster_keys.into_persons(&scratch_folder, clustered.cluster_of, clustered.clusters);
            (clustered.stats, persons, units)
        });
        let stored_anchors = store_chunks(&mut batch, chunks, ANCHOR_CHUNKS, |b, c| Box::pin(b.put_anchors(c))).await;
        let (mut link_stats, persons, units) = linking.await.expect("linkage does not panic");
        stored_anchors?;
        // Units the scratch file did not give back read as empty: nothing made from them is used.
        if let Some(e) = units.store_error() {
            return Err(e.into());
        }
        let mut persons = persons?;
        link_stats.persons = persons.persons();
        // Earlier records whose unit's key is now another than the one they were stored under.
        let mut rekeyed_units = 0u64;
        // Per stored key read back, the persons its records belong to now (this run's records
        // stored under the same key among them), listed where that is not the key alone: a key
        // that keeps some of its records stays a person the index leads to.
        let mut finals: std::collections::BTreeMap<PersonKey, std::collections::BTreeSet<PersonKey>> = Default::default();
        for (&u, &n) in run_unit_of.iter().zip(&stored_number) {
            let k = stored_keys_by_number[n as usize];
            let (now, _) = persons.of(u as usize)?;
            rekeyed_units += u64::from(now != k);
            finals.entry(k).or_default().insert(now);
        }
        // The units this submission's records stand for (some may be earlier units they are
        // identical to, met again here: a set ignores them). Nothing read back: no key to ask.
        if !finals.is_empty() {
            for u in scan.unit_in_run.iter() {
                let (key, _) = persons.of(u as usize)?;
                if let Some(f) = finals.get_mut(&key) {
                    f.insert(key);
                }
            }
        }
        let moved_keys: Vec<(PersonKey, PersonKey)> =
            finals.iter().filter(|(k, f)| !(f.len() == 1 && f.contains(k))).flat_map(|(k, f)| f.iter().map(move |p| (*k, *p))).collect();
        // Every key read back is one of `finals`' (sorted).
        let stored_keys: Vec<PersonKey> = finals.keys().copied().collect();
        drop(finals);
        drop((run_unit_of, stored_number, stored_keys_by_number));
        return_freed_memory();

        // Pass 2: vault rows through a channel into one transaction, lake rows to staging.
        let lake_dir = instance.paths.lake();
        let final_dir = version_dir(&instance.paths, &submission.dataset, number);
        let staging = lake_dir.join(format!("{}{}-v{number}", niji_lake::STAGING_PREFIX, submission.dataset));
        let lake_key = LakeKey(instance.data_key(&lake_key_id(tag), &submission.actor).await?.0);
        // The link index rows go into the batch before pass 2 too (held until the commit, they
        // were tens of MB through the write and commit phases at a million persons): first what
        // the run retires and moves, then each person's bucket rows, handed over in chunks as
        // they are made (held whole, they were the largest thing after linkage).
        let index_update = niji_vault::LinkIndexUpdate {
            retired,
            buckets: Vec::new(),
            stored_keys,
            moved: moved_keys,
            complete: (!index_complete).then_some(niji_privacy::LINK_INDEX_FORMAT),
        };
        batch.index_links(&index_update).await?;
        drop(index_update);
        let hasher = pseudonymizer.clone();
        let scratch_folder = instance.paths.root.clone();
        let (chunks, bucketing) = make_in_chunks(move |sink| -> std::io::Result<_> {
            // The persons' keys are read back in order of person number by the rows, and unit
            // by unit by pass 2.
            persons.begin_reading("intake-bucket-keys-read");
            let (of_unit, key_pages) = persons.by_person();
            let person_count = key_pages.len();
            let by_person = niji_privacy::UnitPersons { of_unit, persons: person_count, key_of_person: &mut |p| key_pages.of(p) };
            niji_privacy::cluster_buckets_streaming(units.units(), by_person, &hasher, sink)?;
            // Full birth dates per unit, for the lake's `age` at each event (the dates themselves
            // stay in the vault): made here, after the link peak, from the units' last reading.
            let mut births = per_unit::UnitDates::with_capacity(units.len());
            units.units().for_each(|_, u| births.push(u.birth_date().and_then(|b| niji_ingest::dates::parse_iso(b).ok())));
            let units_error = units.store_error();
            drop(units);
            // Each unit's person number and dates go to sealed pages: pass 2 holds a bit a unit,
            // no more (not when a unit could not be read back: the intake stops).
            if units_error.is_none() {
                persons.seal_units(&scratch_folder, births, link_observed, "intake-pass2-units-read")?;
            }
            Ok((persons, units_error))
        });
        let stored_rows = store_chunks(&mut batch, chunks, BUCKET_ROW_CHUNKS, |b, c| Box::pin(b.add_link_buckets(c))).await;
        let bucketed = bucketing.await.expect("bucketing does not panic");
        stored_rows?;
        // A key page not read back: the rows handed over are incomplete, and the batch is
        // abandoned with the intake.
        let (mut persons, units_error) = bucketed?;
        // Rows made from units the scratch file did not give back are in the batch, which is
        // then abandoned with the intake.
        if let Some(e) = units_error {
            return Err(e.into());
        }
        persons.begin_reading("intake-pass2-keys-read");
        return_freed_memory();
        progress.finish(Phase::Link);
        let (tx, mut rx) = tokio::sync::mpsc::channel::<Vec<niji_vault::SealedIdentity>>(4);
        let sealer = batch.sealer();
        let writer = {
            let scan = Arc::new(scan);
            let files = files.to_vec();
            let ingest = options.ingest.clone();
            let mapping = submission.csv_mapping.clone();
            let lake_options = options.lake;
            let progress = progress.clone();
            let staging = staging.clone();
            tokio::task::spawn_blocking(move || {
                let out =
                    write::write(&scan, &files, &mut persons, &ingest, mapping.as_ref(), &staging, &lake_key, lake_options, &*progress, sealer, tx);
                (out, scan)
            })
        };
        // On a vault error, stop the writer (closing the channel) and wait for it before undoing.
        let mut vault_error = None;
        while let Some(rows) = rx.recv().await {
            if vault_error.is_some() {
                continue;
            }
            if let Err(e) = batch.add_sealed(&rows).await {
                vault_error = Some(e);
                rx.close();
            }
        }
        let (written, scan) = writer.await.expect("writer does not panic");
        if let Some(e) = vault_error {
            return Err(e.into());
        }
        let written = written?;
        // The write's own memory (the page caches of the persons' keys and of the units' numbers
        // and dates, the lake's buffers) is freed: back to the system before the commit's.
        return_freed_memory();
        progress.finish(Phase::Write);

        progress.start(Phase::Commit, None);
        // Vault and lake commit side by side (each fsyncs its own files); the version exists
        // only once the metadata row flips after both, and recovery undoes either alone.
        let lake_commit = {
            let (staging, final_dir) = (staging.clone(), final_dir.clone());
            tokio::task::spawn_blocking(move || -> Result<(), IntakeError> {
                std::fs::create_dir_all(final_dir.parent().expect("a version folder has a parent"))?;
                niji_lake::commit(&staging, &final_dir)?;
                Ok(())
            })
        };
        let vault_committed = batch.commit(&[]).await;
        let lake_committed = lake_commit.await.expect("the lake commit does not panic");
        vault_committed?;
        fail::fail_point!("intake-after-vault-commit");
        lake_committed?;
        fail::fail_point!("intake-after-lake-commit");

        let others: Vec<String> = latest_tags_except(store, &submission.dataset).await?;
        let persons = vault.persons_in(tag).await?;
        let persons_shared = vault.persons_shared(tag, &others).await?;
        let scan = Arc::try_unwrap(scan).unwrap_or_else(|_| unreachable!("the writer has ended"));
        let reports = scan.reports;
        let quarantined: u64 = reports.iter().map(|r| r.rejected_records).sum();
        let warnings: u64 = reports.iter().map(|r| r.warnings.len() as u64).sum();
        let accepted: u64 = reports.iter().map(|r| r.accepted_total()).sum();
        let tables: Vec<VersionTableRow> = niji_lake::TABLES
            .iter()
            .map(|t| {
                let s = written.summary.table(t).copied().unwrap_or_default();
                VersionTableRow {
                    table_name: t.to_string(),
                    rows: s.rows as i64,
                    persons: s.persons as i64,
                    coverage_from: s.first.map(|d| d.to_string()),
                    coverage_to: s.last.map(|d| d.to_string()),
                }
            })
            .collect();
        let coverage = written.summary.coverage().map(|(a, b)| (a.to_string(), b.to_string()));
        let mut problems = Vec::new();
        for r in &reports {
            for (severity, list) in [("error", &r.rejected), ("warning", &r.warnings)] {
                for p in list.iter() {
                    problems.push(VersionProblemRow {
                        seq: problems.len() as i64,
                        severity: severity.to_string(),
                        file: r.file.clone(),
                        location: p.location.to_string(),
                        field: p.field.clone(),
                        reason: p.reason.to_string(),
                    });
                }
            }
        }
        let committed_at = now().unix_timestamp();
        store
            .commit_dataset_version(&VersionCommit {
                version_id,
                committed_at,
                files: files.len() as i64,
                records_accepted: accepted as i64,
                records_rejected: quarantined as i64,
                warnings: warnings as i64,
                persons: persons as i64,
                persons_shared: persons_shared as i64,
                link_records: unit_count as i64,
                identifier_links: link_stats.identifier_links as i64,
                name_links: (link_stats.name_links + link_stats.surname_change_links) as i64,
                coverage_from: coverage.as_ref().map(|c| c.0.clone()),
                coverage_to: coverage.as_ref().map(|c| c.1.clone()),
                tables: tables.clone(),
                problems,
            })
            .await?;
        fail::fail_point!("intake-after-metadata-commit");
        log_committed(instance, version_id, tag, Some(&options.ingest.masters)).await?;
        progress.finish(Phase::Commit);
        Ok(VersionReport {
            dataset: submission.dataset.clone(),
            number,
            files: reports,
            records_accepted: accepted,
            records_quarantined: quarantined,
            warnings,
            link: link_stats,
            units: unit_count,
            units_held,
            persons,
            persons_shared,
            rekeyed_units,
            tables,
            coverage,
            seconds: 0.0,
        })
    }
    .await;
    vault.close().await;
    result
}

/// The latest committed version tag of every dataset but `except`.
async fn latest_tags_except(store: &niji_store::Store, except: &str) -> Result<Vec<String>, IntakeError> {
    Ok(store.latest_committed_versions().await?.into_iter().filter(|(d, _)| d != except).map(|(d, n)| version_tag(&d, n)).collect())
}

/// The folder of one lake version: `<instance>/lake/<dataset>/v<number>`.
pub fn version_dir(paths: &niji_instance::InstancePaths, dataset: &str, number: i64) -> PathBuf {
    paths.lake().join(dataset).join(format!("v{number}"))
}

/// Appends `dataset.version.committed` for a committed version and records the entry's index
/// beside it, with the code masters its codes were checked against (system and number of codes;
/// `null` when recovery appends it). A crash between the metadata commit and this leaves the
/// index empty; recovery appends the entry then, so every committed version is in the log.
async fn log_committed(instance: &Instance, version_id: i64, tag: &str, masters: Option<&niji_ingest::CodeMasters>) -> Result<(), IntakeError> {
    let v = instance.store.dataset_version(version_id).await?.ok_or(StoreError::NotFound { what: "dataset version" })?;
    let event = AuditEvent::new(&v.submitted_by, now(), "dataset.version.committed", format!("dataset:{tag}")).with_data(serde_json::json!({
        "files": v.files,
        "records_accepted": v.records_accepted,
        "records_quarantined": v.records_rejected,
        "persons": v.persons,
        "persons_shared": v.persons_shared,
        "lake_key": lake_key_id(tag),
        "masters": masters.map(|m| m.summary().into_iter().map(|(system, codes)| (system.to_string(), serde_json::json!(codes))).collect::<serde_json::Map<_, _>>()),
    }));
    let index = instance.record(&event).map_err(|e| IntakeError::Audit(e.to_string()))?;
    instance.store.set_dataset_version_log_index(version_id, index as i64).await?;
    Ok(())
}

async fn recover_locked(instance: &Instance, actor: &str) -> Result<usize, IntakeError> {
    for v in instance.store.unlogged_dataset_versions().await? {
        let dataset = instance.store.dataset(v.dataset_id).await?.ok_or(StoreError::NotFound { what: "dataset" })?;
        log_committed(instance, v.id, &version_tag(&dataset.name, v.number), None).await?;
    }
    let writing = instance.store.writing_dataset_versions().await?;
    for v in &writing {
        let dataset = instance.store.dataset(v.dataset_id).await?.ok_or(StoreError::NotFound { what: "dataset" })?;
        let tag = version_tag(&dataset.name, v.number);
        undo_version(instance, v.id, &tag).await?;
        let event = AuditEvent::new(actor, now(), "dataset.version.abandoned", format!("dataset:{tag}"));
        instance.record(&event).map_err(|e| IntakeError::Audit(e.to_string()))?;
    }
    if instance.paths.lake().exists() {
        niji_lake::recover(&instance.paths.lake())?;
    }
    Ok(writing.len())
}

/// Removes what a `writing` version left in the vault and the lake, then its row.
async fn undo_version(instance: &Instance, version_id: i64, tag: &str) -> Result<(), IntakeError> {
    let (vault, _) = open_vault(instance, "system:recovery").await?;
    let deleted = vault.delete_dataset(tag).await;
    vault.close().await;
    deleted?;
    let (dataset, version) = tag.rsplit_once('/').expect("tags have a slash");
    let lake = instance.paths.lake();
    let final_dir = lake.join(dataset).join(version);
    if final_dir.exists() {
        std::fs::remove_dir_all(&final_dir)?;
    }
    let staging = lake.join(format!("{}{dataset}-{version}", niji_lake::STAGING_PREFIX));
    if staging.exists() {
        std::fs::remove_dir_all(&staging)?;
    }
    instance.store.delete_dataset_version(version_id).await?;
    Ok(())
}

/// An exclusive lock on `lake/INTAKE.lock`, released on drop.
struct IntakeLock(#[allow(dead_code)] std::fs::File);

impl IntakeLock {
    async fn take(instance: &Instance) -> Result<Self, IntakeError> {
        let path = instance.paths.intake_lock();
        tokio::task::spawn_blocking(move || {
            std::fs::create_dir_all(path.parent().expect("the lock is inside lake/")).map_err(IntakeError::Lock)?;
            let file = std::fs::OpenOptions::new().create(true).truncate(false).write(true).open(&path).map_err(IntakeError::Lock)?;
            file.lock().map_err(IntakeError::Lock)?;
            Ok(IntakeLock(file))
        })
        .await
        .expect("locking does not panic")
    }
}

/// Gives each allocation of [`LARGE_ALLOCATION`] or more a mapping of its own, handed back to the
/// system when it is freed. glibc otherwise raises that threshold (up to 32 MiB) each time such
/// a block is freed, and the intake's per-unit arrays, made and freed phase after phase, then
/// come from the heap and leave it fragmented: the link phase's peak grew 80 bytes of RSS a
/// distinct unit (96 in an earlier session's runs), and 52 with this (UKE bench, from 1M to 3M
/// persons). Process-wide and for good: the binary calls it at start for the commands that run
/// intakes (`ingest`, `serve`, `demo`), and so does the intake bench, to measure what the binary
/// does; nothing is changed where the operator set glibc's own threshold (`GLIBC_TUNABLES`). Large blocks then cost a mapping each: the
/// output checking bench runs 6–9% slower with it; the DataFusion overhead bench, unchanged.
pub fn map_large_allocations() {
    if std::env::var("GLIBC_TUNABLES").is_ok_and(|t| t.contains("mmap_threshold")) {
        return;
    }
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: `mallopt` only sets the allocator's threshold; no memory is touched.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, LARGE_ALLOCATION as libc::c_int);
    }
}

/// Allocations given a mapping of their own ([`map_large_allocations`]): 1 MiB.
pub const LARGE_ALLOCATION: usize = 1 << 20;

/// Hands memory the allocator keeps after large frees back to the system (glibc keeps freed
/// pages in each thread's arena; after linkage, the units and prior keys are hundreds of MB at a
/// million persons), so that the next phase's allocations do not add to it.
pub(crate) fn return_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: `malloc_trim` only releases free memory of the allocator's own arenas.
    unsafe {
        libc::malloc_trim(0);
    }
}

fn now() -> time::OffsetDateTime {
    time::OffsetDateTime::now_utc()
}

/// The display name of a submitted file (its path relative to the files' common folder).
/// Files without a common folder below the root keep their full path.
pub(crate) fn display_name(path: &Path, base: &Path) -> String {
    let relative = if base.parent().is_none() { path } else { path.strip_prefix(base).unwrap_or(path) };
    relative.to_string_lossy().replace('\\', "/")
}
