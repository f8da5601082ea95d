//! Sealed scratch pages: where the intake keeps linkage's units (normalized names, birth dates,
//! insurance and patient numbers) that do not fit the memory it allows them
//! ([`crate::IntakeOptions::units_held_bytes`]), as `niji_privacy::PageStore`.
//!
//! Each page is sealed with ChaCha20-Poly1305 under a key made for this file alone, held only in
//! this process's memory and never written: the file is unreadable once the intake ends, however
//! it ends. The page's number is its nonce (never reused under one key: after a failed write the
//! store takes nothing more) and its associated data,
//! so a page moved within the file does not open. The file is unnamed (`O_TMPFILE` where the
//! system has it) and lives in the instance folder, not the system's temporary folder (often a
//! memory file system, which would hold the same bytes in RAM).

use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::path::Path;

use chacha20poly1305::aead::{AeadInPlace, KeyInit, OsRng};
use chacha20poly1305::{ChaCha20Poly1305, Nonce};
use niji_privacy::{PageStore, UnitSet, UnitStorage};

/// An empty set of linkage units whose pages past `held_bytes` go to a new sealed scratch file
/// in `folder`.
pub(crate) fn unit_set(folder: &Path, held_bytes: usize) -> io::Result<UnitSet> {
    Ok(UnitSet::with_storage(UnitStorage { store: Box::new(SealedPages::new(folder)?), held_bytes }))
}

/// [`unit_set`] for the units read back from the vault (`crate::read_back`), under failpoints
/// of its own: the crash test fails its pages and no other set's.
pub(crate) fn read_back_set(folder: &Path, held_bytes: usize) -> io::Result<UnitSet> {
    let pages = SealedPages { failpoints: READ_BACK_FAILPOINTS, ..SealedPages::new(folder)? };
    Ok(UnitSet::with_storage(UnitStorage { store: Box::new(pages), held_bytes }))
}

/// The failpoints of a store's writes and reads, and what its pages hold, for a failed read's
/// error (read only where `fail`'s failpoints are compiled in: the tests). The crash tests fail
/// each store on its own.
#[derive(Clone, Copy)]
#[allow(dead_code)]
pub(crate) struct Failpoints {
    pub(crate) write: &'static str,
    pub(crate) read: &'static str,
    pub(crate) what: &'static str,
}

const SCRATCH_FAILPOINTS: Failpoints = Failpoints { write: "intake-scratch-write", read: "intake-scratch-read", what: "a scratch page" };
const READ_BACK_FAILPOINTS: Failpoints =
    Failpoints { write: "intake-read-back-write", read: "intake-read-back-read", what: "a scratch page of units read back" };

/// Pages sealed into an unnamed file, one after another.
pub(crate) struct SealedPages {
    file: File,
    cipher: ChaCha20Poly1305,
    /// Per page: where it ends in the file (it starts where the one before ends; 8 bytes a
    /// page: under 1% of the 1 KiB pages of units a first pass writes).
    ends: Vec<u64>,
    buffer: Vec<u8>,
    /// A write failed: nothing more is taken (the next page would be sealed under the same
    /// number, at the same place, where the failed write may have left part of the last).
    failed: bool,
    pub(crate) failpoints: Failpoints,
}

impl SealedPages {
    /// An empty store in a new unnamed file in `folder`, under a new random key.
    pub(crate) fn new(folder: &Path) -> io::Result<SealedPages> {
        Ok(SealedPages {
            file: tempfile::tempfile_in(folder)?,
            cipher: ChaCha20Poly1305::new(&ChaCha20Poly1305::generate_key(&mut OsRng)),
            ends: Vec::new(),
            buffer: Vec::new(),
            failed: false,
            failpoints: SCRATCH_FAILPOINTS,
        })
    }
}

#[cfg(test)]
impl SealedPages {
    /// The file's bytes as they are on disk.
    pub(crate) fn raw_bytes(&self) -> Vec<u8> {
        let mut raw = vec![0u8; self.end() as usize];
        self.file.read_exact_at(&mut raw, 0).unwrap();
        raw
    }

    /// Flips one bit of the file at `at`, as a disk or another process might.
    pub(crate) fn flip(&self, at: u64) {
        let mut byte = [0u8];
        self.file.read_exact_at(&mut byte, at).unwrap();
        self.file.write_all_at(&[byte[0] ^ 1], at).unwrap();
    }
}

impl SealedPages {
    /// Where the next page goes: the end of the last.
    fn end(&self) -> u64 {
        self.ends.last().copied().unwrap_or(0)
    }
}

/// The nonce and associated data of page `id`.
fn nonce_of(id: u64) -> (Nonce, [u8; 8]) {
    let mut nonce = [0u8; 12];
    nonce[..8].copy_from_slice(&id.to_le_bytes());
    (nonce.into(), id.to_le_bytes())
}

impl PageStore for SealedPages {
    fn put(&mut self, page: &[u8]) -> io::Result<u64> {
        if self.failed {
            return Err(io::Error::other("the scratch file failed earlier"));
        }
        fail::fail_point!(self.failpoints.write, |_| Err(io::Error::other("no space left for scratch pages (failpoint)")));
        let id = self.ends.len() as u64;
        let (nonce, aad) = nonce_of(id);
        self.buffer.clear();
        self.buffer.extend_from_slice(page);
        self.cipher.encrypt_in_place(&nonce, &aad, &mut self.buffer).map_err(|_| io::Error::other("a scratch page could not be sealed"))?;
        let end = self.end();
        if let Err(e) = self.file.write_all_at(&self.buffer, end) {
            self.failed = true;
            return Err(e);
        }
        self.ends.push(end + self.buffer.len() as u64);
        Ok(id)
    }

    fn get(&self, id: u64, out: &mut Vec<u8>) -> io::Result<()> {
        fail::fail_point!(self.failpoints.read, |_| Err(io::Error::other(format!("{} could not be read back (failpoint)", self.failpoints.what))));
        let never = || io::Error::other("a scratch page that was never written");
        let id_at = usize::try_from(id).map_err(|_| never())?;
        let end = *self.ends.get(id_at).ok_or_else(never)?;
        let at = if id_at == 0 { 0 } else { self.ends[id_at - 1] };
        out.clear();
        out.resize((end - at) as usize, 0);
        self.file.read_exact_at(out, at)?;
        let (nonce, aad) = nonce_of(id);
        self.cipher
            .decrypt_in_place(&nonce, &aad, out)
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidData, "a scratch page does not open: the file changed under the intake"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pages_come_back_as_put_and_nothing_readable_is_on_disk() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = SealedPages::new(dir.path()).unwrap();
        let pages: Vec<Vec<u8>> = (0..50u32).map(|i| format!("ヤマダタロウ 06132013 {i} ").repeat(1 + i as usize % 7).into_bytes()).collect();
        let ids: Vec<u64> = pages.iter().map(|p| store.put(p).unwrap()).collect();
        let mut out = Vec::new();
        for (id, page) in ids.iter().zip(&pages).rev() {
            store.get(*id, &mut out).unwrap();
            assert_eq!(&out, page);
        }
        // The file: no name in any folder, no byte of a page in the clear.
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
        let raw = store.raw_bytes();
        for needle in ["ヤマダ".as_bytes(), b"06132013"] {
            assert!(!raw.windows(needle.len()).any(|w| w == needle));
        }
        // A page changed on disk, or moved to another's place, does not open.
        store.flip(store.ends[2]);
        assert_eq!(store.get(3, &mut out).unwrap_err().kind(), io::ErrorKind::InvalidData);
        // Page 4 where page 5 lies.
        (store.ends[3], store.ends[4]) = (store.ends[4], store.ends[5]);
        assert!(store.get(4, &mut out).is_err());
        assert!(store.get(999, &mut out).is_err());
        // After a failed write nothing more is taken: no page number is sealed twice.
        let read_only = std::fs::OpenOptions::new().read(true).open(dir.path()).unwrap();
        let kept = std::mem::replace(&mut store.file, read_only);
        assert!(store.put(b"next").is_err());
        store.file = kept;
        assert!(store.put(b"next").unwrap_err().to_string().contains("failed earlier"));
        assert_eq!(store.ends.len(), pages.len());
    }
}
