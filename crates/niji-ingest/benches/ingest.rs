//! Throughput of parse + validate + split (no storage, no encryption) on synthetic data:
//! FHIR NDJSON resources per second and UKE lines per second.
//!
//! `cargo bench -p niji-ingest --bench ingest` (set `NIJI_BENCH_PERSONS`, default 2000).
//! Targets of issue 3: ≥ 50,000 resources/s and ≥ 200,000 lines/s.

use std::path::{Path, PathBuf};
use std::time::Instant;

use niji_ingest::{ingest_path, Date, IngestConfig};

fn files(dir: &Path, ext: &str, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            files(&p, ext, out);
        } else if p.extension().and_then(|e| e.to_str()).is_some_and(|e| e.eq_ignore_ascii_case(ext)) {
            out.push(p);
        }
    }
}

fn main() {
    let persons: u64 = std::env::var("NIJI_BENCH_PERSONS").ok().and_then(|v| v.parse().ok()).unwrap_or(2000);
    let dir = tempfile::tempdir().unwrap();
    niji_synth::generate(&niji_synth::SynthConfig::new(dir.path(), persons), &mut |_| {}).unwrap();
    let config = IngestConfig::new(Date::new(2030, 1, 1).unwrap());

    for (label, ext, unit) in [("FHIR NDJSON", "ndjson", "resources"), ("UKE", "uke", "lines")] {
        let mut paths = Vec::new();
        files(dir.path(), ext, &mut paths);
        let bytes: u64 = paths.iter().map(|p| std::fs::metadata(p).unwrap().len()).sum();
        let mut best = f64::MAX;
        let mut count = 0u64;
        for _ in 0..3 {
            let started = Instant::now();
            count = 0;
            let mut records = 0u64;
            for p in &paths {
                let report = ingest_path(p, &config, None, &mut |r| {
                    std::hint::black_box(&r);
                    records += 1;
                })
                .unwrap();
                assert_eq!(report.rejected_records, 0, "{}", report.rejected_lines().join("\n"));
                count += report.accepted_total() + report.skipped;
            }
            best = best.min(started.elapsed().as_secs_f64());
            std::hint::black_box(records);
        }
        println!(
            "{label}: {count} {unit} ({:.1} MB) in {:.3} s = {:.0} {unit}/s ({:.1} MB/s)",
            bytes as f64 / 1e6,
            best,
            count as f64 / best,
            bytes as f64 / 1e6 / best
        );
    }
}
