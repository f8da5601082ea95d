//! End-to-end intake throughput and peak memory (issue 3): parse + validate, linkage, identities
//! sealed into the SQLite vault, content written to the encrypted Parquet lake, commit — on
//! synthetic FHIR NDJSON and UKE files.
//!
//! `cargo bench -p niji-intake --bench intake`
//!
//! - `NIJI_BENCH_PERSONS` (default 20,000): persons of the large run; its figures are the
//!   throughput figures.
//! - `NIJI_BENCH_PERSONS_SMALL` (default a quarter of that): persons of the small run, measured
//!   only to show how peak memory grows with the input.
//! - `NIJI_BENCH_ONLY=uke` or `ndjson`: one format only (UKE alone takes about 1.5 GB of disk
//!   per million persons, NDJSON about 17 GB).
//! - `NIJI_BENCH_AGAIN=1`: after each intake, the same files again as the dataset's next
//!   version, linked against the first: the cost of a holder's next submission. Then every
//!   50th file as a new dataset, twice: reading back only the persons it reaches, and reading
//!   back every earlier record (the link phase's time, records read back and peak memory).
//! - `NIJI_BENCH_UNITS_HELD=BYTES`: linkage units kept in memory before they go to the sealed
//!   scratch file (default `niji_intake::UNITS_HELD_BYTES`; a large value keeps them all in
//!   memory, though still in the 1 KiB pages of a list with a store).
//! - `NIJI_BENCH_HEAP=1`: also count the bytes the Rust code holds allocated (live heap) and
//!   print each phase's peak of them beside its peak RSS (the rest is SQLite's own allocations,
//!   its page caches among them, the allocator's free memory not given back, the binary's pages
//!   and mapped files such as SQLite's WAL index). Off by default: every allocation then updates
//!   two shared counters, which slows the intake.
//!
//! Targets: ≥ 50,000 FHIR NDJSON resources/s and ≥ 200,000 UKE lines/s end to end, and peak
//! memory under 1 GiB whatever the input size.
//!
//! Peak RSS is per process, so every measurement (one format at one size) runs in a child
//! process: the bench re-executes itself with `NIJI_BENCH_JOB` set. The child first times a
//! parse-only pass over the files (`niji_ingest::ingest_path` with an empty sink) as the
//! baseline, then makes a fresh instance, submits every file of the format as one submission
//! and prints its figures, with the per-phase timings and memory reported through [`Progress`].
//! The parent prints the tables. Everything generated is deleted at the end.
//!
//! To profile one job by hand (the binary is the one `cargo bench --no-run` names):
//!
//! ```text
//! NIJI_BENCH_JOB=synth NIJI_BENCH_DATA=/tmp/d NIJI_BENCH_PERSONS=20000 $BIN
//! NIJI_BENCH_JOB=ndjson NIJI_BENCH_DATA=/tmp/d NIJI_BENCH_WORK=/tmp perf record -g $BIN
//! ```

use std::alloc::{GlobalAlloc, Layout, System};
use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicIsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use niji_ingest::{ingest_path, Date, IngestConfig};
use niji_instance::Instance;
use niji_intake::{ingest, IntakeOptions, OnReject, Outcome, Phase, Progress, ReadBack, Submission};

const NDJSON_TARGET: f64 = 50_000.0;
const UKE_TARGET: f64 = 200_000.0;
const GIB_MB: f64 = 1024.0;

/// The two kinds of job a child runs.
#[derive(Clone, Copy)]
enum Job {
    Ndjson,
    Uke,
}

impl Job {
    fn name(self) -> &'static str {
        match self {
            Job::Ndjson => "ndjson",
            Job::Uke => "uke",
        }
    }

    fn parse(s: &str) -> Self {
        match s {
            "ndjson" => Job::Ndjson,
            "uke" => Job::Uke,
            _ => panic!("unknown job {s:?}"),
        }
    }

    /// Folder under the synthetic data, file extension, holder, unit of the figures, target.
    fn spec(self) -> (&'static str, &'static str, &'static str, &'static str, f64) {
        match self {
            Job::Ndjson => ("ndjson", "ndjson", "hospitals", "resources", NDJSON_TARGET),
            Job::Uke => ("uke", "uke", "insurer", "lines", UKE_TARGET),
        }
    }
}

/// The system allocator, counting the bytes allocated and not yet freed while
/// [`HEAP_COUNTED`] (`NIJI_BENCH_HEAP`), and their peak since [`reset_peak`].
struct Counting;

#[global_allocator]
static ALLOCATOR: Counting = Counting;

static HEAP_COUNTED: AtomicBool = AtomicBool::new(false);
/// Bytes allocated and not freed since counting began (below zero if blocks allocated before
/// it were freed after).
static HEAP_LIVE: AtomicIsize = AtomicIsize::new(0);
static HEAP_PEAK: AtomicIsize = AtomicIsize::new(0);

fn heap_grew(bytes: usize) {
    if HEAP_COUNTED.load(Ordering::Relaxed) {
        let bytes = bytes as isize;
        let live = HEAP_LIVE.fetch_add(bytes, Ordering::Relaxed) + bytes;
        if live > HEAP_PEAK.load(Ordering::Relaxed) {
            HEAP_PEAK.fetch_max(live, Ordering::Relaxed);
        }
    }
}

fn heap_shrank(bytes: usize) {
    if HEAP_COUNTED.load(Ordering::Relaxed) {
        HEAP_LIVE.fetch_sub(bytes as isize, Ordering::Relaxed);
    }
}

// SAFETY: every call is passed on to the system allocator unchanged; the counters only read
// the sizes.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            heap_grew(layout.size());
        }
        p
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        let p = unsafe { System.alloc_zeroed(layout) };
        if !p.is_null() {
            heap_grew(layout.size());
        }
        p
    }

    unsafe fn dealloc(&self, p: *mut u8, layout: Layout) {
        unsafe { System.dealloc(p, layout) };
        heap_shrank(layout.size());
    }

    unsafe fn realloc(&self, p: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let q = unsafe { System.realloc(p, layout, new_size) };
        if !q.is_null() {
            if new_size >= layout.size() {
                heap_grew(new_size - layout.size());
            } else {
                heap_shrank(layout.size() - new_size);
            }
        }
        q
    }
}

/// Peak live heap since the last [`reset_peak`], in MB (0 when not counted).
/// What a child does first: what the binary does at start, and counting the live heap where
/// `NIJI_BENCH_HEAP` asks for it.
fn start_as_the_binary_does() {
    niji_intake::map_large_allocations();
    HEAP_COUNTED.store(std::env::var_os("NIJI_BENCH_HEAP").is_some(), Ordering::Relaxed);
}

/// A phase's live heap peak for its line of figures (nothing when the heap is not counted).
fn heap_note(p: &PhaseFigures) -> String {
    if HEAP_COUNTED.load(Ordering::Relaxed) {
        format!(", live heap peak {:.0} MB", p.heap_peak_mb)
    } else {
        String::new()
    }
}

fn heap_peak_mb() -> f64 {
    if !HEAP_COUNTED.load(Ordering::Relaxed) {
        return 0.0;
    }
    HEAP_PEAK.load(Ordering::Relaxed).max(0) as f64 / (1024.0 * 1024.0)
}

fn main() {
    match std::env::var("NIJI_BENCH_JOB").as_deref() {
        // For profiling one job by hand: generate the data once, then run the job under `perf`.
        Ok("synth") => {
            let data = PathBuf::from(std::env::var("NIJI_BENCH_DATA").unwrap());
            generate(&data, env_u64("NIJI_BENCH_PERSONS").unwrap_or(20_000));
        }
        Ok("few") => few(),
        Ok(job) => child(Job::parse(job)),
        Err(_) => parent(),
    }
}

/// The jobs `NIJI_BENCH_ONLY` selects (both by default).
fn jobs() -> Vec<Job> {
    match std::env::var("NIJI_BENCH_ONLY").as_deref() {
        Ok(only) => vec![Job::parse(only)],
        Err(_) => vec![Job::Ndjson, Job::Uke],
    }
}

fn generate(data: &Path, persons: u64) {
    let mut config = niji_synth::SynthConfig::new(data, persons);
    let jobs = jobs();
    config.formats = niji_synth::Formats {
        fhir_bundles: false,
        fhir_ndjson: jobs.iter().any(|j| matches!(j, Job::Ndjson)),
        uke: jobs.iter().any(|j| matches!(j, Job::Uke)),
        registry_csv: false,
    };
    niji_synth::generate(&config, &mut |_| {}).unwrap();
}

// ---------------------------------------------------------------------------------------------
// Parent: generates the data, runs the children, prints the tables.

fn env_u64(name: &str) -> Option<u64> {
    std::env::var(name).ok().and_then(|v| v.replace(['_', ','], "").parse().ok())
}

fn parent() {
    let large = env_u64("NIJI_BENCH_PERSONS").unwrap_or(20_000);
    let small = env_u64("NIJI_BENCH_PERSONS_SMALL").unwrap_or((large / 4).max(1_000));
    let root = tempfile::Builder::new().prefix("niji-intake-bench-").tempdir().unwrap();
    println!("niji-intake end-to-end bench: {small} and {large} persons, data under {}", root.path().display());

    let mut results: Vec<(u64, Job, Figures)> = Vec::new();
    let mut sizes = vec![small, large];
    sizes.dedup();
    for &persons in &sizes {
        let data = root.path().join(format!("synth-{persons}"));
        let started = Instant::now();
        generate(&data, persons);
        println!(
            "\n== {persons} persons: synthetic data {:.1} MB generated in {:.1} s",
            dir_bytes(&data) as f64 / 1e6,
            started.elapsed().as_secs_f64()
        );
        for job in jobs() {
            let figures = run_child(job, &data, root.path());
            results.push((persons, job, figures));
        }
        // Keep the disk use down: only one size's data at a time.
        std::fs::remove_dir_all(&data).unwrap();
    }

    println!("\n== Throughput, end to end (parse+validate, link, vault, encrypted lake, commit) at {large} persons");
    println!("{:<8} {:>12} {:>9} {:>12} {:>8} {:>12} {:>10}", "format", "count", "e2e s", "e2e /s", "target", "parse-only/s", "e2e/parse");
    for (persons, job, f) in &results {
        if *persons != large {
            continue;
        }
        let (_, _, _, unit, target) = job.spec();
        let rate = f.count as f64 / f.seconds;
        let parse_rate = f.parse_count as f64 / f.parse_seconds;
        println!(
            "{:<8} {:>12} {:>9.2} {:>12.0} {:>7.2}x {:>12.0} {:>9.2}x   ({unit}; target {:.0}/s {})",
            job.name(),
            f.count,
            f.seconds,
            rate,
            rate / target,
            parse_rate,
            rate / parse_rate,
            target,
            if rate >= target { "MET" } else { "MISSED" }
        );
    }

    println!("\n== Phase timings (s) and memory at the end of each phase (VmRSS MB / peak VmHWM within the phase MB)");
    println!("{:<8} {:>8} {:>22} {:>22} {:>22} {:>22} {:>8}", "job", "persons", "validate", "link", "write", "commit", "other");
    for (persons, job, f) in &results {
        let cell = |p: &str| match f.phases.get(p) {
            Some(ph) => format!("{:.2} ({:.0}/{:.0})", ph.seconds, ph.rss_mb, ph.peak_mb),
            None => "-".into(),
        };
        let other = f.seconds - f.phases.values().map(|p| p.seconds).sum::<f64>();
        println!(
            "{:<8} {:>8} {:>22} {:>22} {:>22} {:>22} {:>8.2}",
            job.name(),
            persons,
            cell("validate"),
            cell("link"),
            cell("write"),
            cell("commit"),
            other
        );
    }

    println!("\n== Peak memory (VmHWM of the child process)");
    println!(
        "{:<8} {:>8} {:>12} {:>10} {:>10} {:>10} {:>12} {:>12} {:>12}",
        "job", "persons", "count", "units", "held", "input MB", "before MB", "intake MB", "parse-only MB"
    );
    for (persons, job, f) in &results {
        println!(
            "{:<8} {:>8} {:>12} {:>10} {:>10} {:>10.1} {:>12.0} {:>12.0} {:>12.0}",
            job.name(),
            persons,
            f.count,
            f.units,
            f.units_held,
            f.input_bytes as f64 / 1e6,
            f.before_mb,
            f.peak_mb,
            f.parse_peak_mb
        );
    }
    if sizes.len() == 2 {
        println!(
            "\nWhat each phase holds: validate = the scan state (each distinct linkage unit once, a unit number per record that \
             carries a person, patient references); held = the distinct units; link = that plus the linkage records and linkage's own indexes; write and commit = \
             the vault batch in flight, the lake's buffers (up to one row group per table) and what the allocator keeps."
        );
        for job in jobs() {
            let of = |n: u64| results.iter().find(|(p, j, _)| *p == n && j.name() == job.name()).map(|(_, _, f)| f).unwrap();
            let (a, b) = (of(small), of(large));
            let per_1000 = (b.peak_mb - a.peak_mb) / (large - small) as f64 * 1000.0;
            let per_unit_kb = (b.peak_mb - a.peak_mb) * 1024.0 / (b.units as f64 - a.units as f64).max(1.0);
            let fixed = a.peak_mb - per_1000 * small as f64 / 1000.0;
            let phase_growth = |p: &str| {
                let pa = a.phases.get(p).map_or(0.0, |x| x.peak_mb);
                let pb = b.phases.get(p).map_or(0.0, |x| x.peak_mb);
                (pb - pa) / (large - small) as f64 * 1000.0
            };
            let growing =
                ["validate", "link", "write", "commit"].iter().map(|p| format!("{p} {:+.1}", phase_growth(p))).collect::<Vec<_>>().join(", ");
            print!(
                "{}: peak {:.0} MB at {small} persons, {:.0} MB at {large}: {:+.1} MB per 1,000 persons ({:+.2} KB per linkage unit), about {:.0} MB fixed. Per-phase peak growth per 1,000 persons: {growing}. ",
                job.name(),
                a.peak_mb,
                b.peak_mb,
                per_1000,
                per_unit_kb,
                fixed
            );
            if per_1000 > 0.5 {
                let limit = (GIB_MB - fixed) / per_1000 * 1000.0;
                println!("Memory GROWS with the input (not fully streaming): 1 GiB would be reached at about {limit:.0} persons.");
            } else {
                println!("Memory does not grow measurably with the input.");
            }
        }
    }
    // `root` is dropped here: the synthetic data and every instance go with it.
}

/// Runs one job in a child process and collects its figures; echoes its human-readable output.
fn run_child(job: Job, data: &Path, work: &Path) -> Figures {
    let mut child = Command::new(std::env::current_exe().unwrap())
        .env("NIJI_BENCH_JOB", job.name())
        .env("NIJI_BENCH_DATA", data)
        .env("NIJI_BENCH_WORK", work)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let mut figures = None;
    for line in BufReader::new(child.stdout.take().unwrap()).lines() {
        let line = line.unwrap();
        match line.strip_prefix("@figures ") {
            Some(json) => figures = Some(Figures::from_json(json)),
            None => println!("  {line}"),
        }
    }
    let status = child.wait().unwrap();
    assert!(status.success(), "job {} failed: {status}", job.name());
    figures.expect("the child prints its figures")
}

// ---------------------------------------------------------------------------------------------
// Figures passed from a child to the parent.

#[derive(Default)]
struct PhaseFigures {
    seconds: f64,
    /// VmRSS at the end of the phase.
    rss_mb: f64,
    /// VmHWM within the phase (reset at its start when the kernel allows it).
    peak_mb: f64,
    /// Peak live heap within the phase (`NIJI_BENCH_HEAP`; 0 when not counted).
    heap_peak_mb: f64,
}

#[derive(Default)]
struct Figures {
    count: u64,
    seconds: f64,
    units: u64,
    units_held: u64,
    input_bytes: u64,
    before_mb: f64,
    peak_mb: f64,
    parse_count: u64,
    parse_seconds: f64,
    parse_peak_mb: f64,
    phases: BTreeMap<String, PhaseFigures>,
}

impl Figures {
    fn to_json(&self) -> String {
        let phases: serde_json::Map<String, serde_json::Value> = self
            .phases
            .iter()
            .map(|(k, p)| {
                (k.clone(), serde_json::json!({"seconds": p.seconds, "rss_mb": p.rss_mb, "peak_mb": p.peak_mb, "heap_peak_mb": p.heap_peak_mb}))
            })
            .collect();
        serde_json::json!({
            "count": self.count, "seconds": self.seconds, "units": self.units, "units_held": self.units_held, "input_bytes": self.input_bytes,
            "before_mb": self.before_mb, "peak_mb": self.peak_mb,
            "parse_count": self.parse_count, "parse_seconds": self.parse_seconds, "parse_peak_mb": self.parse_peak_mb,
            "phases": phases,
        })
        .to_string()
    }

    fn from_json(s: &str) -> Self {
        let v: serde_json::Value = serde_json::from_str(s).unwrap();
        let f = |k: &str| v[k].as_f64().unwrap();
        let u = |k: &str| v[k].as_u64().unwrap();
        let phases = v["phases"]
            .as_object()
            .unwrap()
            .iter()
            .map(|(k, p)| {
                let g = |n: &str| p[n].as_f64().unwrap();
                (k.clone(), PhaseFigures { seconds: g("seconds"), rss_mb: g("rss_mb"), peak_mb: g("peak_mb"), heap_peak_mb: g("heap_peak_mb") })
            })
            .collect();
        Figures {
            count: u("count"),
            seconds: f("seconds"),
            units: u("units"),
            units_held: u("units_held"),
            input_bytes: u("input_bytes"),
            before_mb: f("before_mb"),
            peak_mb: f("peak_mb"),
            parse_count: u("parse_count"),
            parse_seconds: f("parse_seconds"),
            parse_peak_mb: f("parse_peak_mb"),
            phases,
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Child: the parse-only baseline, then one submission into a fresh instance.

fn child(job: Job) {
    start_as_the_binary_does();
    let data = PathBuf::from(std::env::var("NIJI_BENCH_DATA").unwrap());
    let work = PathBuf::from(std::env::var("NIJI_BENCH_WORK").unwrap());
    let (_, _, holder, unit, target) = job.spec();
    let paths = job_files(&data, job);
    let input_bytes: u64 = paths.iter().map(|p| std::fs::metadata(p).unwrap().len()).sum();
    let lines: u64 = paths.iter().map(|p| count_lines(p)).sum();
    let mut figures = Figures { input_bytes, ..Figures::default() };

    let ingest_config = ingest_config();
    let options = IntakeOptions { units_held_bytes: units_held(), ..IntakeOptions::new(ingest_config.clone()) };

    // Parse-only baseline over the same files in the same process, first, so that its peak
    // memory is not the allocator's leftovers of the intake.
    let started = Instant::now();
    let mut accepted = 0u64;
    for p in &paths {
        let report = ingest_path(p, &ingest_config, None, &mut |r| {
            std::hint::black_box(&r);
        })
        .unwrap();
        accepted += report.accepted_total();
    }
    figures.parse_seconds = started.elapsed().as_secs_f64();
    figures.parse_count = match job {
        Job::Ndjson => accepted,
        Job::Uke => lines,
    };
    figures.parse_peak_mb = vm_kb("VmHWM") as f64 / 1024.0;

    let instance_dir = tempfile::Builder::new().prefix("instance-").tempdir_in(&work).unwrap();
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let progress = Arc::new(Phases::default());
    runtime.block_on(async {
        let instance = Instance::init(instance_dir.path(), "bench").await.unwrap();
        instance.store.create_organization(holder, if job.name() == "uke" { "insurer" } else { "hospital" }, 0).await.unwrap();
        reset_peak();
        figures.before_mb = vm_kb("VmHWM") as f64 / 1024.0;
        let submission = submission(job, &paths);
        let started = Instant::now();
        let outcome = ingest(&instance, submission, &options, progress.clone()).await.unwrap();
        figures.seconds = started.elapsed().as_secs_f64();
        let report = match outcome {
            Outcome::Committed(r) => r,
            Outcome::Refused { .. } => unreachable!("quarantine never refuses"),
        };
        figures.units = report.units;
        figures.units_held = report.units_held;
        figures.count = match job {
            Job::Ndjson => report.records_accepted,
            Job::Uke => lines,
        };
        println!(
            "{}: {} files, {:.1} MB: {} records accepted, {} quarantined, {} warnings, {} linkage units ({} distinct), {} persons; {} {unit} end to end in {:.2} s = {:.0} {unit}/s ({:.2}x the {:.0}/s target, {:.1} MB/s)",
            job.name(),
            paths.len(),
            input_bytes as f64 / 1e6,
            report.records_accepted,
            report.records_quarantined,
            report.warnings,
            report.units,
            report.units_held,
            report.persons,
            figures.count,
            figures.seconds,
            figures.count as f64 / figures.seconds,
            figures.count as f64 / figures.seconds / target,
            target,
            input_bytes as f64 / 1e6 / figures.seconds,
        );
        let lake = dir_bytes(&instance.paths.lake());
        let vault = dir_bytes(&instance.paths.vault());
        println!("{}: lake {:.1} MB, vault {:.1} MB on disk", job.name(), lake as f64 / 1e6, vault as f64 / 1e6);
        figures.peak_mb = progress.overall_peak_mb().max(vm_kb("VmHWM") as f64 / 1024.0);
        if std::env::var_os("NIJI_BENCH_AGAIN").is_some() {
            again(&instance, job, &paths, &options).await;
        }
        instance.store.close().await;
    });
    drop(runtime);
    if std::env::var_os("NIJI_BENCH_AGAIN").is_some() {
        small_after(instance_dir.path(), &data, job);
    }
    let mut timeline = Vec::new();
    for (phase, p) in progress.figures() {
        let heap = heap_note(&p);
        timeline.push(format!("{phase} {:.2} s (RSS {:.0} MB, peak {:.0} MB{heap})", p.seconds, p.rss_mb, p.peak_mb));
        figures.phases.insert(phase, p);
    }
    println!("{}: phases: {}", job.name(), timeline.join(", "));
    // `NIJI_BENCH_KEEP`: the instance stays (for a profiler run of `NIJI_BENCH_JOB=few` on it).
    if std::env::var_os("NIJI_BENCH_KEEP").is_some() {
        println!("{}: instance kept at {}", job.name(), instance_dir.keep().display());
    } else {
        drop(instance_dir);
    }

    println!(
        "{}: parse-only {} {unit} in {:.2} s = {:.0} {unit}/s; end to end is {:.2}x parse-only; peak RSS {:.0} MB intake, {:.0} MB parse-only",
        job.name(),
        figures.parse_count,
        figures.parse_seconds,
        figures.parse_count as f64 / figures.parse_seconds,
        (figures.count as f64 / figures.seconds) / (figures.parse_count as f64 / figures.parse_seconds),
        figures.peak_mb,
        figures.parse_peak_mb
    );
    println!("@figures {}", figures.to_json());
}

/// Every file of the job as one submission of the job's holder, rejects quarantined.
fn submission(job: Job, paths: &[PathBuf]) -> Submission {
    let (_, _, holder, _, _) = job.spec();
    Submission {
        holder: holder.into(),
        dataset: format!("bench-{}", job.name()),
        description: None,
        files: paths.to_vec(),
        csv_mapping: None,
        on_reject: OnReject::Quarantine,
        actor: "cli:bench".into(),
    }
}

/// `NIJI_BENCH_AGAIN`: the same files once more as the dataset's next version, linked against
/// the first (a holder's next submission reads back the linkable records of every committed
/// version). Not part of the figures above.
async fn again(instance: &Instance, job: Job, paths: &[PathBuf], options: &IntakeOptions) {
    let progress = Arc::new(Phases::default());
    let submission = submission(job, paths);
    let started = Instant::now();
    let Outcome::Committed(report) = ingest(instance, submission, options, progress.clone()).await.unwrap() else {
        unreachable!("quarantine never refuses")
    };
    let seconds = started.elapsed().as_secs_f64();
    let link = progress.figures().into_iter().find(|(p, _)| p == "link").map_or(0.0, |(_, f)| f.seconds);
    println!(
        "{}: again as version {}: {:.2} s end to end, link phase {:.2} s ({} earlier records read back and linked with {} units of this version, {} distinct held), {} rekeyed; peak RSS of the process so far {:.0} MB",
        job.name(),
        report.number,
        seconds,
        link,
        report.link.records as u64 - report.units,
        report.units,
        report.units_held,
        report.rekeyed_units,
        vm_kb("VmHWM") as f64 / 1024.0
    );
}

/// `NIJI_BENCH_AGAIN`, then: a small submission (every 50th file) into the instance, as two
/// new datasets, each in a process of its own (`NIJI_BENCH_JOB=few`, so that its peak memory is
/// its own): first reading back only the persons it reaches (the default), then every earlier
/// record (`ReadBack::Everything`, what every intake did before the vault's link index).
fn small_after(instance: &Path, data: &Path, job: Job) {
    let mut figures = Vec::new();
    for read in ["reached", "everything"] {
        let output = Command::new(std::env::current_exe().unwrap())
            .env("NIJI_BENCH_JOB", "few")
            .env("NIJI_BENCH_FEW_OF", job.name())
            .env("NIJI_BENCH_READ", read)
            .env("NIJI_BENCH_INSTANCE", instance)
            .env("NIJI_BENCH_DATA", data)
            .stderr(Stdio::inherit())
            .output()
            .unwrap();
        assert!(output.status.success(), "the small submission failed");
        for line in String::from_utf8(output.stdout).unwrap().lines() {
            match line.strip_prefix("@few ") {
                Some(f) => {
                    let v: Vec<f64> = f.split(' ').map(|x| x.parse().unwrap()).collect();
                    figures.push((v[0], v[1], v[2]));
                }
                None => println!("{line}"),
            }
        }
    }
    let ((link_r, read_r, peak_r), (link_e, read_e, peak_e)) = (figures[0], figures[1]);
    println!(
        "{}: the small submission read back {:.1}x fewer earlier records, linked {:.2}x as fast and peaked at {:.2}x the memory of reading back everyone",
        job.name(),
        read_e / read_r.max(1.0),
        link_e / link_r.max(1e-9),
        peak_r / peak_e,
    );
}

/// The intake settings of every job: `niji synth` writes CLINS-conformant lab and drug codings,
/// so the strict rules stay on.
fn ingest_config() -> IngestConfig {
    let mut config = IngestConfig::new(Date::new(2026, 11, 21).unwrap());
    config.clins_strict = true;
    config
}

/// Every file of `job` under the synthetic data, sorted.
fn job_files(data: &Path, job: Job) -> Vec<PathBuf> {
    let (folder, ext, _, _, _) = job.spec();
    let mut paths = Vec::new();
    files(&data.join(folder), ext, &mut paths);
    paths.sort();
    paths
}

/// The child of [`small_after`]: opens the instance, submits every 50th file as a new dataset.
fn few() {
    start_as_the_binary_does();
    let job = Job::parse(&std::env::var("NIJI_BENCH_FEW_OF").unwrap());
    let data = PathBuf::from(std::env::var("NIJI_BENCH_DATA").unwrap());
    let instance_dir = PathBuf::from(std::env::var("NIJI_BENCH_INSTANCE").unwrap());
    let name = std::env::var("NIJI_BENCH_READ").unwrap();
    let read_back = if name == "reached" { ReadBack::Reached } else { ReadBack::Everything };
    let paths = job_files(&data, job);
    let total = paths.len();
    let few: Vec<PathBuf> = paths.into_iter().step_by(50).collect();
    let options = IntakeOptions { read_back, units_held_bytes: units_held(), ..IntakeOptions::new(ingest_config()) };
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    runtime.block_on(async {
        let instance = Instance::open(&instance_dir).await.unwrap();
        let before = vm_kb("VmHWM") as f64 / 1024.0;
        let progress = Arc::new(Phases::default());
        let mut submission = submission(job, &few);
        submission.dataset = format!("bench-{}-few-{name}", job.name());
        let started = Instant::now();
        let Outcome::Committed(report) = ingest(&instance, submission, &options, progress.clone()).await.unwrap() else {
            unreachable!("quarantine never refuses")
        };
        let seconds = started.elapsed().as_secs_f64();
        let peak = progress.overall_peak_mb().max(vm_kb("VmHWM") as f64 / 1024.0);
        let phases = progress.figures();
        let (link, link_peak) = phases.iter().find(|(p, _)| *p == "link").map_or((0.0, 0.0), |(_, f)| (f.seconds, f.peak_mb));
        let read = report.link.records as u64 - report.units;
        println!(
            "  {}: {} of {total} files ({} records, {} linkage units, {} persons) as a new dataset, reading back {name}: {:.2} s end to end, link phase {:.2} s, {} earlier records read back; peak {:.0} MB (link phase {:.0} MB; {:.0} MB after opening)",
            job.name(),
            few.len(),
            report.records_accepted,
            report.units,
            report.persons,
            seconds,
            link,
            read,
            peak,
            link_peak,
            before,
        );
        let timeline: Vec<String> = phases
            .iter()
            .map(|(phase, p)| {
                let heap = heap_note(p);
                format!("{phase} {:.2} s (peak {:.0} MB{heap})", p.seconds, p.peak_mb)
            })
            .collect();
        println!("  {}: phases: {}", job.name(), timeline.join(", "));
        println!("@few {link} {read} {peak}");
        instance.store.close().await;
    });
}

/// Progress that records when each phase starts and ends, and memory at its end.
#[derive(Default)]
struct Phases {
    inner: Mutex<PhasesInner>,
}

#[derive(Default)]
struct PhasesInner {
    started: BTreeMap<&'static str, Instant>,
    done: Vec<(&'static str, PhaseFigures)>,
    /// Peak before the first reset (initialization).
    overall_peak_kb: u64,
}

fn phase_name(phase: Phase) -> &'static str {
    match phase {
        Phase::Validate => "validate",
        Phase::Link => "link",
        Phase::Write => "write",
        Phase::Commit => "commit",
    }
}

impl Progress for Phases {
    fn start(&self, phase: Phase, _: Option<u64>) {
        let mut inner = self.inner.lock().unwrap();
        inner.overall_peak_kb = inner.overall_peak_kb.max(vm_kb("VmHWM"));
        reset_peak();
        inner.started.insert(phase_name(phase), Instant::now());
    }

    fn advance(&self, _: u64) {}

    fn finish(&self, phase: Phase) {
        let now = Instant::now();
        let mut inner = self.inner.lock().unwrap();
        let name = phase_name(phase);
        let Some(started) = inner.started.get(name).copied() else { return };
        let peak = vm_kb("VmHWM");
        inner.overall_peak_kb = inner.overall_peak_kb.max(peak);
        let figures = PhaseFigures {
            seconds: (now - started).as_secs_f64(),
            rss_mb: vm_kb("VmRSS") as f64 / 1024.0,
            peak_mb: peak as f64 / 1024.0,
            heap_peak_mb: heap_peak_mb(),
        };
        inner.done.push((name, figures));
    }
}

impl Phases {
    fn figures(&self) -> Vec<(String, PhaseFigures)> {
        std::mem::take(&mut self.inner.lock().unwrap().done).into_iter().map(|(n, f)| (n.to_string(), f)).collect()
    }

    fn overall_peak_mb(&self) -> f64 {
        self.inner.lock().unwrap().overall_peak_kb as f64 / 1024.0
    }
}

// ---------------------------------------------------------------------------------------------
// Helpers.

/// A field of `/proc/self/status` in kB (0 where there is no procfs).
fn vm_kb(field: &str) -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status.lines().find_map(|l| l.strip_prefix(field)?.strip_prefix(':')?.trim().strip_suffix("kB")?.trim().parse().ok()).unwrap_or(0)
}

/// Resets VmHWM to the current RSS (Linux: `5` to `/proc/self/clear_refs`; ignored elsewhere),
/// and the live heap's peak to what is live now.
fn reset_peak() {
    let _ = std::fs::write("/proc/self/clear_refs", "5");
    HEAP_PEAK.store(HEAP_LIVE.load(Ordering::Relaxed), Ordering::Relaxed);
}

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

/// Lines of a file (a last line without a newline counts).
fn count_lines(path: &Path) -> u64 {
    let mut file = std::fs::File::open(path).unwrap();
    let mut buf = vec![0u8; 1 << 16];
    let (mut lines, mut last) = (0u64, b'\n');
    loop {
        let n = file.read(&mut buf).unwrap();
        if n == 0 {
            break;
        }
        lines += buf[..n].iter().filter(|&&b| b == b'\n').count() as u64;
        last = buf[n - 1];
    }
    lines + u64::from(last != b'\n')
}

fn dir_bytes(dir: &Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(dir) else { return 0 };
    entries
        .map(|e| {
            let e = e.unwrap();
            let m = e.metadata().unwrap();
            if m.is_dir() {
                dir_bytes(&e.path())
            } else {
                m.len()
            }
        })
        .sum()
}

/// `NIJI_BENCH_UNITS_HELD`, or the intake's default.
fn units_held() -> usize {
    env_u64("NIJI_BENCH_UNITS_HELD").map_or(niji_intake::UNITS_HELD_BYTES, |b| b as usize)
}
