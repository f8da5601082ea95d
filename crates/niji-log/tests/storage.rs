//! The log's storage seen from outside: reopening, crashes, tampering, concurrency.

use ed25519_dalek::SigningKey;
use niji_log::{verify, verify_inclusion, LogError, LogReader, Problem, TransparencyLog};
use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Command, Stdio};

fn key() -> SigningKey {
    SigningKey::from_bytes(&[42u8; 32])
}

fn entry(i: u64) -> Vec<u8> {
    format!("{{\"actor\":\"user:{}\",\"action\":\"test.append\",\"n\":{i}}}", i % 7).into_bytes()
}

fn fill(dir: &Path, n: u64) {
    let log = TransparencyLog::open(dir, key()).unwrap();
    for i in 0..n {
        assert_eq!(log.append(&entry(i)).unwrap(), i);
    }
}

/// Checks what `verify` reports for the log in `dir`.
fn check_verify(dir: &Path, entries: u64, problem: Option<Problem>) {
    let report = verify(dir, &key().verifying_key()).unwrap();
    assert_eq!((report.entries, report.problem), (entries, problem));
}

#[test]
fn entries_survive_reopen_and_proofs_verify() {
    let dir = tempfile::tempdir().unwrap();
    fill(dir.path(), 37);
    let log = TransparencyLog::open(dir.path(), key()).unwrap();
    assert_eq!(log.size(), 37);
    let head = log.head();
    assert_eq!(head.tree_size, 37);
    assert!(head.verify(&key().verifying_key()));
    for i in [0u64, 1, 17, 36] {
        assert_eq!(log.entry(i).unwrap(), entry(i));
        let p = log.inclusion_proof(i, None).unwrap();
        assert_eq!(p.root_hash, head.root_hash);
        assert!(verify_inclusion(&niji_log::leaf_hash(&entry(i)), i, p.tree_size, &p.audit_path, &p.root_hash));
    }
    let old = log.inclusion_proof(3, Some(10)).unwrap().root_hash;
    let c = log.consistency_proof(10, 37).unwrap();
    assert!(niji_log::verify_consistency(10, 37, &old, &head.root_hash, &c));
    assert!(matches!(log.entry(37), Err(LogError::NoSuchEntry { index: 37, size: 37 })));
    drop(log);
    check_verify(dir.path(), 37, None);
    let reader = LogReader::open(dir.path()).unwrap();
    assert_eq!(reader.latest_head().unwrap().tree_size, 37);
    assert_eq!(reader.entry(5).unwrap(), entry(5));
}

#[test]
fn a_second_appender_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let _log = TransparencyLog::open(dir.path(), key()).unwrap();
    assert!(matches!(TransparencyLog::open(dir.path(), key()), Err(LogError::Busy(_))));
}

#[test]
fn a_torn_tail_is_cut_and_appends_go_on() {
    for torn in [&[5u8, 0][..], &[40, 0, 0, 0, b'{', b'"'][..], &[3, 0, 0, 0, b'a', b'b', b'c', 1, 2, 3]] {
        let dir = tempfile::tempdir().unwrap();
        fill(dir.path(), 10);
        let mut f = std::fs::OpenOptions::new().append(true).open(dir.path().join("entries.dat")).unwrap();
        f.write_all(torn).unwrap();
        if torn.len() == 10 {
            // a complete-length frame whose hash bytes were never written
            f.write_all(&[0u8; 29]).unwrap();
        }
        drop(f);
        let log = TransparencyLog::open(dir.path(), key()).unwrap();
        assert_eq!(log.size(), 10);
        assert_eq!(log.append(b"after").unwrap(), 10);
        drop(log);
        check_verify(dir.path(), 11, None);
    }
}

#[test]
fn an_altered_byte_is_found_at_its_position() {
    let dir = tempfile::tempdir().unwrap();
    fill(dir.path(), 100);
    let path = dir.path().join("entries.dat");
    let mut bytes = std::fs::read(&path).unwrap();
    let reader = LogReader::open(dir.path()).unwrap();
    let offset_of_42 = (8..bytes.len()).find(|&o| bytes[o..].starts_with(&entry(42)) && bytes[o - 4] as usize == entry(42).len()).unwrap() - 4;
    drop(reader);
    bytes[offset_of_42 + 10] ^= 0x20;
    std::fs::write(&path, &bytes).unwrap();
    check_verify(dir.path(), 42, Some(Problem::EntryAltered { index: 42, byte_offset: offset_of_42 as u64 }));
    assert!(matches!(TransparencyLog::open(dir.path(), key()), Err(LogError::Corrupt(Problem::EntryAltered { index: 42, .. }))));
}

#[test]
fn an_alteration_that_rewrites_the_stored_hash_breaks_the_signed_root() {
    let dir = tempfile::tempdir().unwrap();
    {
        let log = TransparencyLog::open(dir.path(), key()).unwrap();
        for i in 0..50 {
            log.append(&entry(i)).unwrap();
        }
    }
    let path = dir.path().join("entries.dat");
    let mut bytes = std::fs::read(&path).unwrap();
    let e = entry(30);
    let o = (8..bytes.len()).find(|&o| bytes[o..].starts_with(&e) && bytes[o - 4] as usize == e.len()).unwrap();
    let mut forged = e.clone();
    forged[10] = b'9'; // user:2 -> user:9, same length
    bytes[o..o + e.len()].copy_from_slice(&forged);
    bytes[o + e.len()..o + e.len() + 32].copy_from_slice(&niji_log::leaf_hash(&forged));
    std::fs::write(&path, &bytes).unwrap();
    let report = verify(dir.path(), &key().verifying_key()).unwrap();
    match report.problem {
        Some(Problem::HeadRootMismatch { from_index, to_index, .. }) => assert!(from_index <= 30 && 30 < to_index, "{from_index}..{to_index}"),
        other => panic!("expected a root mismatch, got {other:?}"),
    }
}

#[test]
fn deleting_signed_entries_is_detected() {
    let dir = tempfile::tempdir().unwrap();
    fill(dir.path(), 20);
    let path = dir.path().join("entries.dat");
    let len = std::fs::metadata(&path).unwrap().len();
    let last = entry(19).len() as u64 + 36;
    std::fs::OpenOptions::new().write(true).open(&path).unwrap().set_len(len - last).unwrap();
    check_verify(dir.path(), 19, Some(Problem::EntriesMissing { signed_size: 20, found: 19 }));
    assert!(matches!(TransparencyLog::open(dir.path(), key()), Err(LogError::Corrupt(Problem::EntriesMissing { .. }))));
}

#[test]
fn concurrent_appends_get_distinct_indices() {
    let dir = tempfile::tempdir().unwrap();
    let log = TransparencyLog::open(dir.path(), key()).unwrap();
    let mut all: Vec<u64> = std::thread::scope(|s| {
        let hs: Vec<_> = (0..8)
            .map(|t| {
                let log = &log;
                s.spawn(move || (0..200).map(|i| log.append(format!("t{t}-{i}").as_bytes()).unwrap()).collect::<Vec<_>>())
            })
            .collect();
        hs.into_iter().flat_map(|h| h.join().unwrap()).collect()
    });
    all.sort();
    assert_eq!(all, (0..1600).collect::<Vec<_>>());
    drop(log);
    check_verify(dir.path(), 1600, None);
}

const CHILD_ENV: &str = "NIJI_LOG_CRASH_CHILD_DIR";

/// Not a test by itself: the child process of `killed_appender_loses_no_acknowledged_entry`.
#[test]
fn crash_child() {
    let Ok(dir) = std::env::var(CHILD_ENV) else { return };
    let log = TransparencyLog::open(Path::new(&dir), key()).unwrap();
    let log = &log;
    let out = std::sync::Mutex::new(std::io::stdout());
    std::thread::scope(|s| {
        for t in 0..4u64 {
            let out = &out;
            s.spawn(move || loop {
                let n = log.size() * 4 + t;
                let i = log.append(&entry(n)).unwrap();
                writeln!(out.lock().unwrap(), "{i} {n}").unwrap();
            });
        }
    });
}

#[test]
fn killed_appender_loses_no_acknowledged_entry() {
    for round in 0..3 {
        let dir = tempfile::tempdir().unwrap();
        if round > 0 {
            fill(dir.path(), 5);
        }
        let mut child = Command::new(std::env::current_exe().unwrap())
            .args(["--exact", "crash_child", "--nocapture", "--test-threads=1"])
            .env(CHILD_ENV, dir.path())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut acked = Vec::new();
        for line in BufReader::new(child.stdout.take().unwrap()).lines() {
            let line = line.unwrap();
            let mut parts = line.split(' ');
            let (Some(i), Some(n)) = (parts.next(), parts.next()) else { continue };
            let (Ok(i), Ok(n)) = (i.parse::<u64>(), n.parse::<u64>()) else { continue };
            acked.push((i, n));
            if acked.len() == 300 + round * 400 {
                child.kill().unwrap();
                break;
            }
        }
        child.wait().unwrap();
        assert!(!acked.is_empty());
        let log = TransparencyLog::open(dir.path(), key()).expect("a killed log always reopens");
        for &(i, n) in &acked {
            assert_eq!(log.entry(i).unwrap(), entry(n), "acknowledged entry {i} lost or changed");
        }
        drop(log);
        assert_eq!(verify(dir.path(), &key().verifying_key()).unwrap().problem, None);
    }
}
