//! Crash-safe storage of the log in a folder:
//!
//! - `entries.dat`: magic `NIJILOG\x01`, then one frame per entry:
//!   `length (u32 LE) ‖ entry bytes ‖ leaf hash (32 bytes)`. The stored leaf hash lets
//!   `verify` name the first altered entry; the signed heads catch an alteration that also
//!   rewrote the stored hash.
//! - `heads.dat`: magic `NIJISTH\x01`, then fixed-size signed tree heads, one per commit.
//! - `LOCK`: held exclusively by the one process that appends.
//!
//! Appends use group commit: callers queue frames, one of them (the leader) writes
//! everything queued in one `write` and one `fdatasync`, then wakes all whose entries it
//! made durable. A write or sync failure poisons the log: nothing more is acknowledged
//! until it is reopened (which cuts any torn tail).

use crate::head::{self, SignedTreeHead};
use crate::merkle::{leaf_hash, Hash, ProofError, Tree};
use ed25519_dalek::{SigningKey, VerifyingKey};
use std::fs::{File, OpenOptions};
use std::io::{self, BufReader, Read, Seek, SeekFrom, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::{Condvar, Mutex, RwLock};
use std::time::{SystemTime, UNIX_EPOCH};

const ENTRIES_MAGIC: &[u8; 8] = b"NIJILOG\x01";
const HEADS_MAGIC: &[u8; 8] = b"NIJISTH\x01";
/// Largest entry accepted; audit events are a few hundred bytes.
pub const MAX_ENTRY_LEN: usize = 1 << 20;

#[derive(Debug, thiserror::Error)]
pub enum LogError {
    #[error("I/O error on {path}: {source}")]
    Io { path: PathBuf, source: io::Error },
    #[error("the log in {0} is open for appending by another process")]
    Busy(PathBuf),
    #[error("the log is damaged or was altered: {0}")]
    Corrupt(Problem),
    #[error("entry of {0} bytes is larger than the limit of {MAX_ENTRY_LEN} bytes")]
    EntryTooLarge(usize),
    #[error("no entry at index {index}; the log has {size} entries")]
    NoSuchEntry { index: u64, size: u64 },
    #[error(transparent)]
    Proof(#[from] ProofError),
    #[error("an earlier write failed ({0}); reopen the log to recover")]
    Poisoned(String),
}

/// What `verify` or `open` found wrong, with the position.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Problem {
    /// The file does not start with the expected magic bytes.
    BadMagic { file: &'static str },
    /// An entry's bytes no longer match its stored leaf hash.
    EntryAltered { index: u64, byte_offset: u64 },
    /// A frame's length field is impossible.
    MalformedFrame { index: u64, byte_offset: u64 },
    /// The last frame is incomplete: residue of a crash during an append, never acknowledged.
    TornTail { index: u64, byte_offset: u64 },
    /// A signed head's signature does not verify.
    HeadSignature { head: u64, tree_size: u64 },
    /// The entries no longer hash to a signed root: something in `from_index..to_index`
    /// was changed together with its stored hash.
    HeadRootMismatch { tree_size: u64, from_index: u64, to_index: u64 },
    /// A signed head covers more entries than the file holds: entries were deleted.
    EntriesMissing { signed_size: u64, found: u64 },
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Problem::BadMagic { file } => write!(f, "{file} does not start with the log's magic bytes"),
            Problem::EntryAltered { index, byte_offset } => write!(f, "entry {index} (byte {byte_offset}) does not match its leaf hash"),
            Problem::MalformedFrame { index, byte_offset } => write!(f, "entry {index} (byte {byte_offset}) has an impossible length"),
            Problem::TornTail { index, byte_offset } => {
                write!(f, "entry {index} (byte {byte_offset}) is incomplete (an append interrupted by a crash)")
            }
            Problem::HeadSignature { head, tree_size } => write!(f, "signed head #{head} (size {tree_size}) has a bad signature"),
            Problem::HeadRootMismatch { tree_size, from_index, to_index } => {
                write!(f, "entries no longer match the signed head of size {tree_size}: an entry in {from_index}..{to_index} was changed")
            }
            Problem::EntriesMissing { signed_size, found } => write!(f, "a signed head covers {signed_size} entries but only {found} are present"),
        }
    }
}

impl Problem {
    /// The first entry index the problem concerns, if it concerns entries.
    pub fn first_bad_index(&self) -> Option<u64> {
        match self {
            Problem::EntryAltered { index, .. } | Problem::MalformedFrame { index, .. } | Problem::TornTail { index, .. } => Some(*index),
            Problem::HeadRootMismatch { from_index, .. } => Some(*from_index),
            Problem::EntriesMissing { found, .. } => Some(*found),
            Problem::BadMagic { .. } => Some(0),
            Problem::HeadSignature { .. } => None,
        }
    }
}

/// The outcome of [`verify`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifyReport {
    pub entries: u64,
    pub heads: u64,
    pub latest_head: Option<SignedTreeHead>,
    pub problem: Option<Problem>,
}

/// An inclusion proof of one entry in a signed tree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InclusionProof {
    pub leaf_index: u64,
    pub tree_size: u64,
    pub leaf_hash: Hash,
    /// Sibling hashes from the leaf up.
    pub audit_path: Vec<Hash>,
    pub root_hash: Hash,
}

/// A log open for appending. Cheap to share between threads (`&self` everywhere).
pub struct TransparencyLog {
    dir: PathBuf,
    key: SigningKey,
    _lock: File,
    reader: File,
    writer: Mutex<Writer>,
    queue: Mutex<Queue>,
    flushed: Condvar,
    index: RwLock<Index>,
}

struct Writer {
    entries: File,
    heads: File,
}

#[derive(Default)]
struct Queue {
    frames: Vec<u8>,
    hashes: Vec<Hash>,
    /// Index the next queued entry will get.
    next_index: u64,
    /// Entries below this index are durable.
    durable: u64,
    flushing: bool,
    poisoned: Option<String>,
}

struct Index {
    tree: Tree,
    /// Byte offset of each entry's frame.
    offsets: Vec<u64>,
    end_offset: u64,
    latest_head: Option<SignedTreeHead>,
}

impl TransparencyLog {
    /// Opens the log in `dir`, creating it if absent. Cuts a torn tail left by a crash;
    /// refuses a log whose signed part was altered or truncated.
    pub fn open(dir: &Path, key: SigningKey) -> Result<Self, LogError> {
        std::fs::create_dir_all(dir).map_err(io_at(dir))?;
        let lock_path = dir.join("LOCK");
        let lock = OpenOptions::new().create(true).truncate(false).write(true).open(&lock_path).map_err(io_at(&lock_path))?;
        match lock.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => return Err(LogError::Busy(dir.to_path_buf())),
            Err(std::fs::TryLockError::Error(e)) => return Err(LogError::Io { path: lock_path, source: e }),
        }
        let entries_path = dir.join("entries.dat");
        let heads_path = dir.join("heads.dat");
        let mut entries = open_with_magic(&entries_path, ENTRIES_MAGIC)?;
        let mut heads_file = open_with_magic(&heads_path, HEADS_MAGIC)?;

        let heads = read_heads(&heads_path)?;
        let scan = scan_entries(&entries_path)?;
        let signed_size = heads.iter().map(|h| h.tree_size).max().unwrap_or(0);
        match scan.problem {
            None => {}
            Some(Problem::TornTail { index, .. }) if index >= signed_size => {}
            // A complete last frame whose hash fails, past everything signed: the crash
            // tore the frame's content, not its length.
            Some(Problem::EntryAltered { index, .. }) if index >= signed_size && scan.frame_ends_file => {}
            Some(p) => return Err(LogError::Corrupt(p)),
        }
        if scan.tree.size() < signed_size {
            return Err(LogError::Corrupt(Problem::EntriesMissing { signed_size, found: scan.tree.size() }));
        }
        if let Some(p) = check_heads(&scan.tree, &heads, &key.verifying_key()) {
            return Err(LogError::Corrupt(p));
        }
        entries.set_len(scan.valid_end).map_err(io_at(&entries_path))?;
        entries.sync_all().map_err(io_at(&entries_path))?;
        entries.seek(SeekFrom::End(0)).map_err(io_at(&entries_path))?;
        let heads_len = HEADS_MAGIC.len() as u64 + heads.len() as u64 * head::ENCODED_LEN as u64;
        heads_file.set_len(heads_len).map_err(io_at(&heads_path))?;
        heads_file.seek(SeekFrom::End(0)).map_err(io_at(&heads_path))?;

        let mut latest_head = heads.last().cloned();
        let size = scan.tree.size();
        if latest_head.as_ref().map(|h| h.tree_size) != Some(size) {
            let h = SignedTreeHead::sign(&key, size, now_ms(), scan.tree.root());
            heads_file.write_all(&h.encode()).map_err(io_at(&heads_path))?;
            heads_file.sync_data().map_err(io_at(&heads_path))?;
            latest_head = Some(h);
        }
        let reader = File::open(&entries_path).map_err(io_at(&entries_path))?;
        Ok(Self {
            dir: dir.to_path_buf(),
            key,
            _lock: lock,
            reader,
            writer: Mutex::new(Writer { entries, heads: heads_file }),
            queue: Mutex::new(Queue { next_index: size, durable: size, ..Queue::default() }),
            flushed: Condvar::new(),
            index: RwLock::new(Index { tree: scan.tree, offsets: scan.offsets, end_offset: scan.valid_end, latest_head }),
        })
    }

    /// Appends one entry and returns its index once it is durable.
    pub fn append(&self, entry: &[u8]) -> Result<u64, LogError> {
        self.append_batch(&[entry]).map(|r| r.start)
    }

    /// Appends entries in order and returns their index range once all are durable.
    /// Concurrent callers are committed together (group commit).
    pub fn append_batch(&self, entries: &[&[u8]]) -> Result<std::ops::Range<u64>, LogError> {
        for e in entries {
            if e.len() > MAX_ENTRY_LEN {
                return Err(LogError::EntryTooLarge(e.len()));
            }
        }
        let mut q = self.queue.lock().unwrap();
        if let Some(msg) = &q.poisoned {
            return Err(LogError::Poisoned(msg.clone()));
        }
        let first = q.next_index;
        for e in entries {
            let h = leaf_hash(e);
            q.frames.extend_from_slice(&(e.len() as u32).to_le_bytes());
            q.frames.extend_from_slice(e);
            q.frames.extend_from_slice(&h);
            q.hashes.push(h);
            q.next_index += 1;
        }
        let last = q.next_index;
        loop {
            if q.durable >= last {
                return Ok(first..last);
            }
            if let Some(msg) = &q.poisoned {
                return Err(LogError::Poisoned(msg.clone()));
            }
            if q.flushing {
                q = self.flushed.wait(q).unwrap();
                continue;
            }
            q.flushing = true;
            let frames = std::mem::take(&mut q.frames);
            let hashes = std::mem::take(&mut q.hashes);
            let upto = q.next_index;
            drop(q);
            let result = self.commit(&frames, hashes);
            q = self.queue.lock().unwrap();
            q.flushing = false;
            match result {
                Ok(()) => q.durable = upto,
                Err(e) => q.poisoned = Some(e.to_string()),
            }
            self.flushed.notify_all();
        }
    }

    /// Writes and syncs one group of frames, then extends the tree and signs a head.
    fn commit(&self, frames: &[u8], hashes: Vec<Hash>) -> Result<(), LogError> {
        let mut w = self.writer.lock().unwrap();
        let entries_path = self.dir.join("entries.dat");
        w.entries.write_all(frames).map_err(io_at(&entries_path))?;
        w.entries.sync_data().map_err(io_at(&entries_path))?;
        let mut idx = self.index.write().unwrap();
        let mut offset = idx.end_offset;
        for h in hashes {
            idx.offsets.push(offset);
            let len = u32::from_le_bytes(frames[(offset - idx.end_offset) as usize..][..4].try_into().unwrap()) as u64;
            offset += 4 + len + 32;
            idx.tree.push(h);
        }
        idx.end_offset = offset;
        let head = SignedTreeHead::sign(&self.key, idx.tree.size(), now_ms(), idx.tree.root());
        // Heads are re-signed on open, so they need no sync of their own: a lost head costs nothing.
        w.heads.write_all(&head.encode()).map_err(io_at(&self.dir.join("heads.dat")))?;
        idx.latest_head = Some(head);
        Ok(())
    }

    pub fn size(&self) -> u64 {
        self.index.read().unwrap().tree.size()
    }

    /// The newest signed tree head.
    pub fn head(&self) -> SignedTreeHead {
        self.index.read().unwrap().latest_head.clone().expect("open always signs a head")
    }

    pub fn verifying_key(&self) -> VerifyingKey {
        self.key.verifying_key()
    }

    /// The bytes of entry `index`.
    pub fn entry(&self, index: u64) -> Result<Vec<u8>, LogError> {
        let (offset, size) = {
            let idx = self.index.read().unwrap();
            let size = idx.tree.size();
            match idx.offsets.get(index as usize) {
                Some(&o) => (o, size),
                None => return Err(LogError::NoSuchEntry { index, size }),
            }
        };
        let _ = size;
        read_entry_at(&self.reader, &self.dir.join("entries.dat"), offset)
    }

    /// Inclusion proof of entry `index` in the tree of `tree_size` entries (default: the
    /// newest signed head).
    pub fn inclusion_proof(&self, index: u64, tree_size: Option<u64>) -> Result<InclusionProof, LogError> {
        let idx = self.index.read().unwrap();
        let size = tree_size.unwrap_or_else(|| idx.latest_head.as_ref().map_or(0, |h| h.tree_size));
        proof_from(&idx.tree, index, size)
    }

    pub fn consistency_proof(&self, old_size: u64, new_size: u64) -> Result<Vec<Hash>, LogError> {
        Ok(self.index.read().unwrap().tree.consistency_proof(old_size, new_size)?)
    }
}

/// A read-only view of a log that another process may be appending to. It sees the
/// entries complete when it was opened and never changes the files.
pub struct LogReader {
    path: PathBuf,
    file: File,
    tree: Tree,
    offsets: Vec<u64>,
    heads: Vec<SignedTreeHead>,
}

impl LogReader {
    pub fn open(dir: &Path) -> Result<Self, LogError> {
        let entries_path = dir.join("entries.dat");
        let heads = read_heads(&dir.join("heads.dat"))?;
        let scan = scan_entries(&entries_path)?;
        let signed = heads.last().map_or(0, |h| h.tree_size);
        match scan.problem {
            Some(Problem::TornTail { index, .. }) | Some(Problem::EntryAltered { index, .. }) if index >= signed => {}
            Some(p) => return Err(LogError::Corrupt(p)),
            None => {}
        }
        let file = File::open(&entries_path).map_err(io_at(&entries_path))?;
        Ok(Self { path: entries_path, file, tree: scan.tree, offsets: scan.offsets, heads })
    }

    pub fn size(&self) -> u64 {
        self.tree.size()
    }

    pub fn latest_head(&self) -> Option<&SignedTreeHead> {
        self.heads.last()
    }

    pub fn entry(&self, index: u64) -> Result<Vec<u8>, LogError> {
        let &offset = self.offsets.get(index as usize).ok_or(LogError::NoSuchEntry { index, size: self.size() })?;
        read_entry_at(&self.file, &self.path, offset)
    }

    /// Inclusion proof against the tree of `tree_size` entries (default: the newest
    /// signed head, whose signature the verifier can check).
    pub fn inclusion_proof(&self, index: u64, tree_size: Option<u64>) -> Result<InclusionProof, LogError> {
        let size = tree_size.unwrap_or_else(|| self.latest_head().map_or(0, |h| h.tree_size));
        if index >= size && index < self.size() {
            return Err(LogError::Proof(ProofError::IndexBeyondSize { index, size }));
        }
        proof_from(&self.tree, index, size)
    }

    pub fn consistency_proof(&self, old_size: u64, new_size: u64) -> Result<Vec<Hash>, LogError> {
        Ok(self.tree.consistency_proof(old_size, new_size)?)
    }
}

/// Re-checks the whole log in `dir`: every entry against its stored hash, every signed
/// head's signature and root, and that no signed entry is missing. Stops at the first
/// problem and reports its position.
pub fn verify(dir: &Path, key: &VerifyingKey) -> Result<VerifyReport, LogError> {
    let heads = read_heads(&dir.join("heads.dat"))?;
    let scan = scan_entries(&dir.join("entries.dat"))?;
    let signed_size = heads.iter().map(|h| h.tree_size).max().unwrap_or(0);
    let problem = scan
        .problem
        .clone()
        .or_else(|| (scan.tree.size() < signed_size).then_some(Problem::EntriesMissing { signed_size, found: scan.tree.size() }))
        .or_else(|| check_heads(&scan.tree, &heads, key));
    Ok(VerifyReport { entries: scan.tree.size(), heads: heads.len() as u64, latest_head: heads.last().cloned(), problem })
}

fn proof_from(tree: &Tree, index: u64, size: u64) -> Result<InclusionProof, LogError> {
    let audit_path = tree.inclusion_proof(index, size)?;
    Ok(InclusionProof {
        leaf_index: index,
        tree_size: size,
        leaf_hash: tree.leaf(index).expect("index checked by inclusion_proof"),
        audit_path,
        root_hash: tree.root_at(size)?,
    })
}

/// Checks each head's signature and root against the entries; heads must not shrink.
fn check_heads(tree: &Tree, heads: &[SignedTreeHead], key: &VerifyingKey) -> Option<Problem> {
    let mut prev_size = 0;
    for (i, h) in heads.iter().enumerate() {
        if !h.verify(key) {
            return Some(Problem::HeadSignature { head: i as u64, tree_size: h.tree_size });
        }
        if h.tree_size > tree.size() {
            return Some(Problem::EntriesMissing { signed_size: h.tree_size, found: tree.size() });
        }
        if tree.root_at(h.tree_size).ok() != Some(h.root_hash) {
            return Some(Problem::HeadRootMismatch { tree_size: h.tree_size, from_index: prev_size.min(h.tree_size), to_index: h.tree_size });
        }
        prev_size = prev_size.max(h.tree_size);
    }
    None
}

struct Scan {
    tree: Tree,
    offsets: Vec<u64>,
    /// End of the last good frame.
    valid_end: u64,
    problem: Option<Problem>,
    /// Whether the frame that caused `problem` ends exactly at the end of the file.
    frame_ends_file: bool,
}

fn scan_entries(path: &Path) -> Result<Scan, LogError> {
    let file = match File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            return Ok(Scan { tree: Tree::new(), offsets: Vec::new(), valid_end: 0, problem: None, frame_ends_file: false })
        }
        Err(e) => return Err(LogError::Io { path: path.to_path_buf(), source: e }),
    };
    let file_len = file.metadata().map_err(io_at(path))?.len();
    let mut r = BufReader::with_capacity(1 << 20, file);
    let mut magic = [0u8; 8];
    let mut scan = Scan { tree: Tree::new(), offsets: Vec::new(), valid_end: 0, problem: None, frame_ends_file: false };
    if file_len < 8 {
        // A crash while creating the file: nothing was ever acknowledged.
        scan.problem = (file_len > 0).then_some(Problem::TornTail { index: 0, byte_offset: 0 });
        return Ok(scan);
    }
    r.read_exact(&mut magic).map_err(io_at(path))?;
    if &magic != ENTRIES_MAGIC {
        scan.problem = Some(Problem::BadMagic { file: "entries.dat" });
        return Ok(scan);
    }
    let mut offset = 8u64;
    scan.valid_end = offset;
    let mut buf = Vec::new();
    loop {
        let index = scan.tree.size();
        if offset == file_len {
            break;
        }
        if file_len - offset < 4 {
            scan.problem = Some(Problem::TornTail { index, byte_offset: offset });
            break;
        }
        let mut len_bytes = [0u8; 4];
        r.read_exact(&mut len_bytes).map_err(io_at(path))?;
        let len = u32::from_le_bytes(len_bytes) as u64;
        let frame_end = offset + 4 + len + 32;
        if len as usize > MAX_ENTRY_LEN {
            scan.problem = Some(if frame_end > file_len {
                Problem::TornTail { index, byte_offset: offset }
            } else {
                Problem::MalformedFrame { index, byte_offset: offset }
            });
            break;
        }
        if frame_end > file_len {
            scan.problem = Some(Problem::TornTail { index, byte_offset: offset });
            break;
        }
        buf.resize(len as usize + 32, 0);
        r.read_exact(&mut buf).map_err(io_at(path))?;
        let (entry, stored) = buf.split_at(len as usize);
        let h = leaf_hash(entry);
        if h.as_slice() != stored {
            scan.problem = Some(Problem::EntryAltered { index, byte_offset: offset });
            scan.frame_ends_file = frame_end == file_len;
            break;
        }
        scan.offsets.push(offset);
        scan.tree.push(h);
        offset = frame_end;
        scan.valid_end = offset;
    }
    Ok(scan)
}

fn read_heads(path: &Path) -> Result<Vec<SignedTreeHead>, LogError> {
    let bytes = match std::fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(LogError::Io { path: path.to_path_buf(), source: e }),
    };
    if bytes.len() < 8 {
        return Ok(Vec::new());
    }
    if &bytes[..8] != HEADS_MAGIC {
        return Err(LogError::Corrupt(Problem::BadMagic { file: "heads.dat" }));
    }
    // A partial record at the end is a torn write of a head that was never relied on.
    Ok(bytes[8..].chunks_exact(head::ENCODED_LEN).map(|c| SignedTreeHead::decode(c.try_into().unwrap())).collect())
}

fn open_with_magic(path: &Path, magic: &[u8; 8]) -> Result<File, LogError> {
    let mut f = OpenOptions::new().read(true).write(true).create(true).truncate(false).open(path).map_err(io_at(path))?;
    let len = f.metadata().map_err(io_at(path))?.len();
    if len < 8 {
        f.set_len(0).map_err(io_at(path))?;
        f.write_all(magic).map_err(io_at(path))?;
        f.sync_all().map_err(io_at(path))?;
        if let Some(parent) = path.parent() {
            // Make the new file's directory entry durable too.
            File::open(parent).and_then(|d| d.sync_all()).map_err(io_at(parent))?;
        }
    }
    Ok(f)
}

fn read_entry_at(file: &File, path: &Path, offset: u64) -> Result<Vec<u8>, LogError> {
    let mut len = [0u8; 4];
    file.read_exact_at(&mut len, offset).map_err(io_at(path))?;
    let mut buf = vec![0u8; u32::from_le_bytes(len) as usize];
    file.read_exact_at(&mut buf, offset + 4).map_err(io_at(path))?;
    Ok(buf)
}

fn io_at(path: &Path) -> impl Fn(io::Error) -> LogError + '_ {
    move |source| LogError::Io { path: path.to_path_buf(), source }
}

fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}
