//! Generation speed: 20,000 people written to a temporary folder, in the bulk formats
//! (NDJSON, UKE, registry CSV, truth) and with the per-patient FHIR Bundle files as well,
//! and 100,000 people in the bulk formats (where creating the ~400 files weighs less).
//! Criterion reports persons per second as throughput; each run also prints its own
//! figure and the volume written. Between runs (not timed) the folder is removed and the
//! page cache flushed (`sync`), so that one run's disk writeback does not slow the next.
//!
//! The folder is made under the system's temporary directory, or under
//! `NIJI_SYNTH_BENCH_DIR` if set (for example `/dev/shm` to leave the disk out).
//! `NIJI_SYNTH_BENCH_PAUSE_SECS` adds an untimed pause after each run: ext4 is slow to
//! create files for a few seconds after many were deleted, which otherwise makes later
//! runs slower than earlier ones.

use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use niji_synth::{generate, Formats, SynthConfig};

fn run(persons: u64, formats: Formats, label: &str) -> Duration {
    let dir = match std::env::var_os("NIJI_SYNTH_BENCH_DIR") {
        Some(base) => tempfile::tempdir_in(base),
        None => tempfile::tempdir(),
    }
    .expect("temp dir");
    let mut config = SynthConfig::new(dir.path().join("out"), persons);
    config.formats = formats;
    let started = Instant::now();
    let summary = generate(&config, &mut |_| {}).expect("generate");
    let elapsed = started.elapsed();
    drop(dir);
    // Best effort: without `sync` the runs are still timed, only noisier.
    let _ = std::process::Command::new("sync").status();
    if let Some(pause) = std::env::var("NIJI_SYNTH_BENCH_PAUSE_SECS").ok().and_then(|s| s.parse().ok()) {
        std::thread::sleep(Duration::from_secs_f64(pause));
    }
    println!(
        "{label}: {:.0} persons/s ({} files, {:.0} MB, {:.1} KB per person)",
        persons as f64 / elapsed.as_secs_f64(),
        summary.files,
        summary.bytes as f64 / 1e6,
        summary.bytes as f64 / 1e3 / persons as f64,
    );
    elapsed
}

fn synth(c: &mut Criterion) {
    let mut group = c.benchmark_group("synth");
    group.sample_size(10).measurement_time(Duration::from_secs(10));
    for (name, persons, formats) in
        [("bulk_20k", 20_000, Formats::BULK), ("bulk_100k", 100_000, Formats::BULK), ("all_with_bundles_20k", 20_000, Formats::ALL)]
    {
        group.throughput(Throughput::Elements(persons));
        group.bench_function(name, |b| b.iter_custom(|iters| (0..iters).map(|_| run(persons, formats, name)).sum()));
    }
    group.finish();
}

criterion_group!(benches, synth);
criterion_main!(benches);
