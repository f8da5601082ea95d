//! Transparency log benchmarks, printing figures and ratios against a baseline run in the
//! same process (absolute times on these shared machines are noisy; ratios are stable).
//!
//! - appends: many concurrent writers with group commit, against one writer that waits for
//!   its own fsync per entry (what a log without group commit does).
//! - verify: re-checking a 1,000,000-entry log, against hashing the same bytes once.
//!
//! Run: `cargo bench -p niji-log` (NIJI_BENCH_VERIFY_ENTRIES to change the log size).

use ed25519_dalek::SigningKey;
use niji_log::{verify, TransparencyLog};
use sha2::{Digest, Sha256};
use std::time::{Duration, Instant};

fn event(i: u64) -> Vec<u8> {
    format!(
        r#"{{"actor":"user:{}","time":"2026-11-21T10:00:{:02}Z","action":"query.run","object":"permit:{}","data":{{"dataset":"ehr-2026","tables":["conditions","medications"],"rows_returned":0}}}}"#,
        i % 500,
        i % 60,
        i % 40
    )
    .into_bytes()
}

fn main() {
    let key = SigningKey::from_bytes(&[1u8; 32]);

    // Baseline: one writer, one fsync per entry, for about two seconds.
    let dir = tempfile::tempdir().unwrap();
    let log = TransparencyLog::open(dir.path(), key.clone()).unwrap();
    let start = Instant::now();
    let mut n = 0u64;
    while start.elapsed() < Duration::from_secs(2) {
        log.append(&event(n)).unwrap();
        n += 1;
    }
    let single = n as f64 / start.elapsed().as_secs_f64();
    drop(log);

    for writers in [64u64, 256] {
        let dir = tempfile::tempdir().unwrap();
        let log = TransparencyLog::open(dir.path(), key.clone()).unwrap();
        let per_writer = 200_000 / writers;
        let start = Instant::now();
        std::thread::scope(|s| {
            for w in 0..writers {
                let log = &log;
                s.spawn(move || {
                    for i in 0..per_writer {
                        log.append(&event(w * per_writer + i)).unwrap();
                    }
                });
            }
        });
        let secs = start.elapsed().as_secs_f64();
        let rate = (writers * per_writer) as f64 / secs;
        println!(
            "append  {writers:>3} concurrent writers, group commit: {:>9.0} appends/s  (baseline, one writer with an fsync each: {single:.0}/s; ratio {:.1}x; target 50,000/s)",
            rate,
            rate / single
        );
    }

    // Verify a large log.
    let entries: u64 = std::env::var("NIJI_BENCH_VERIFY_ENTRIES").ok().and_then(|v| v.parse().ok()).unwrap_or(1_000_000);
    let dir = tempfile::tempdir().unwrap();
    {
        let log = TransparencyLog::open(dir.path(), key.clone()).unwrap();
        let mut i = 0;
        while i < entries {
            let batch: Vec<Vec<u8>> = (i..(i + 10_000).min(entries)).map(event).collect();
            let refs: Vec<&[u8]> = batch.iter().map(|b| b.as_slice()).collect();
            log.append_batch(&refs).unwrap();
            i += batch.len() as u64;
        }
    }
    let bytes = std::fs::read(dir.path().join("entries.dat")).unwrap();
    let start = Instant::now();
    let digest = Sha256::digest(&bytes);
    let hash_once = start.elapsed().as_secs_f64();
    std::hint::black_box(digest);
    let start = Instant::now();
    let report = verify(dir.path(), &key.verifying_key()).unwrap();
    let secs = start.elapsed().as_secs_f64();
    assert_eq!((report.entries, report.problem), (entries, None));
    println!(
        "verify  {entries} entries ({:.0} MB) and {} signed heads: {secs:.3} s  (baseline, one SHA-256 pass over the file: {hash_once:.3} s; ratio {:.1}x; target ≤ 2 s for 1,000,000)",
        bytes.len() as f64 / 1e6,
        report.heads,
        secs / hash_once
    );
}
