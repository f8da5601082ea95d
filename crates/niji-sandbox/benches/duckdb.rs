//! A cohort-and-aggregate query suite over synthetic claim lines: the permit's workspace (policy
//! checks, per-permit re-keying and the persons count of every output row) beside DuckDB on the same
//! Parquet files.
//!
//! `scripts/bench-analysis-duckdb [claim lines] [runs]` (default 10,000,000 lines, 5 runs) builds
//! this bench, installs the `duckdb` Python package into a venv and passes its interpreter in
//! `NIJI_BENCH_PYTHON`. Without it the bench prints the workspace's figures only.
//!
//! The data (written once per size under `$HOME/.cache/niji-bench-data`): 1 person per 10 claim
//! lines on average, lines grouped by person in the order a claim file lists them, person keys as
//! the lake holds them (32 random-looking bytes), skewed drug and procedure codes, conditions with
//! ICD-10 codes (about 8% of persons with E11, 15% with I10), patients with sex, birth month and
//! prefecture; each claim line names its facility (3,000 of them; a person's usual one for four
//! lines in five), not granted, so that under the NDB rules each cell's institutions are counted
//! from the hidden column as in a real permit. Every table has the lake's full schema (unused
//! columns null).
//!
//! Both sides hold the tables in memory before the queries are timed (the workspace decrypts the
//! lake into memory; DuckDB loads the files into tables); load times are printed apart. Each query's
//! time is the median of `runs` runs after a warm-up; both use the machine's cores.
//!
//! Beside them, plain DataFusion over the same in-memory batches (no policy, no re-keying, no persons
//! count), run interleaved with the workspace: the policy's overhead on each query of the suite.

use std::collections::HashSet;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use datafusion::arrow::array::{new_null_array, ArrayRef, Date32Array, FixedSizeBinaryArray, Int32Array, Int64Array, StringArray};
use datafusion::arrow::datatypes::{Field, Schema};
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::datasource::MemTable;
use datafusion::prelude::SessionContext;
use niji_review::application::{PurposeCategory, Track};
use niji_review::{DatasetGrant, PermitPolicy, TableGrant};
use niji_sandbox::{GrantedTable, Limits, Workspace};
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use parquet::arrow::ArrowWriter;

/// The suite: `(name, SQL)` with the workspace's names; DuckDB runs the same text with `person_id`
/// read as the lake's `person_key`.
const QUERIES: &[(&str, &str)] = &[
    ("lines and points by code", "SELECT code, count(*) AS lines, sum(points) AS points FROM claim_lines GROUP BY code"),
    (
        "drugs of a diabetes cohort",
        "SELECT code, count(*) AS lines FROM claim_lines WHERE kind = 'drug' AND person_id IN (SELECT person_id FROM conditions WHERE code LIKE 'E11%') GROUP BY code",
    ),
    (
        "points by sex and birth decade",
        "SELECT p.sex, substr(p.birth_year_month, 1, 3) AS decade, count(*) AS lines, sum(c.points) AS points FROM claim_lines c JOIN patients p ON c.person_id = p.person_id GROUP BY p.sex, substr(p.birth_year_month, 1, 3)",
    ),
    (
        "hypertension cohort by prefecture",
        "SELECT prefecture, count(*) AS persons FROM patients WHERE person_id IN (SELECT person_id FROM conditions WHERE code LIKE 'I10%') GROUP BY prefecture",
    ),
    ("costly lines by kind", "SELECT kind, avg(points) AS mean_points, count(*) AS lines FROM claim_lines WHERE points > 1000 GROUP BY kind"),
    (
        "persons by number of lines",
        "SELECT n, count(*) AS persons FROM (SELECT person_id, count(*) AS n FROM claim_lines GROUP BY person_id) GROUP BY n",
    ),
];

const DATASET: &str = "ndb-bench";
const DRUG_CODES: u64 = 3_000;
const PROCEDURE_CODES: u64 = 1_500;

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    /// Skewed towards small values (the square of a uniform draw).
    fn skewed(&mut self, n: u64) -> u64 {
        let u = (self.next() >> 11) as f64 / (1u64 << 53) as f64;
        ((u * u) * n as f64) as u64
    }
}

/// Facilities the claim lines come from.
const FACILITIES: u64 = 3_000;

fn person_key(person: u64) -> [u8; 32] {
    let mut rng = Rng(person.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1);
    let mut key = [0u8; 32];
    for chunk in key.chunks_mut(8) {
        chunk.copy_from_slice(&rng.next().to_le_bytes());
    }
    key
}

fn batch(table: &str, columns: Vec<(&str, ArrayRef)>, rows: usize) -> RecordBatch {
    let schema = niji_lake::table_schema(table).expect("a lake table");
    let arrays = schema
        .fields()
        .iter()
        .map(|f| columns.iter().find(|(n, _)| n == f.name()).map(|(_, a)| a.clone()).unwrap_or_else(|| new_null_array(f.data_type(), rows)))
        .collect();
    RecordBatch::try_new(schema, arrays).expect("batch")
}

/// Writes the three tables for `lines` claim lines; returns the folder.
fn generate(lines: usize) -> PathBuf {
    let home = std::env::var_os("HOME").map(PathBuf::from).unwrap_or_else(std::env::temp_dir);
    let dir = home.join(".cache/niji-bench-data").join(format!("claims-v2-{lines}"));
    if dir.join("done").exists() {
        return dir;
    }
    std::fs::create_dir_all(&dir).expect("bench data folder");
    eprintln!("writing {lines} claim lines to {}", dir.display());
    let mut rng = Rng(0x5EED_1234_ABCD_0001);
    let open = |name: &str| {
        let schema = niji_lake::table_schema(name).expect("a lake table");
        ArrowWriter::try_new(File::create(dir.join(format!("{name}.parquet"))).expect("create"), schema, None).expect("writer")
    };
    let (mut w_lines, mut w_patients, mut w_conditions) = (open("claim_lines"), open("patients"), open("conditions"));
    let icd = ["E11", "I10", "J45", "K21", "M54", "F32", "E78", "N18", "C50", "G47"];
    let mut written = 0usize;
    let mut person = 0u64;
    while written < lines {
        let (mut keys, mut kinds, mut codes, mut points, mut claims) = (Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new());
        let mut facilities = Vec::new();
        let (mut p_keys, mut sexes, mut births, mut prefectures) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
        let (mut c_keys, mut c_codes, mut onsets) = (Vec::new(), Vec::new(), Vec::new());
        while keys.len() < 65_536 && written < lines {
            let key = person_key(person);
            let n = (1 + rng.below(19) as usize).min(lines - written);
            // A person's usual facility, another for one line in five (3,000 facilities).
            let usual = rng.below(FACILITIES);
            for _ in 0..n {
                let facility = if rng.below(5) == 0 { rng.below(FACILITIES) } else { usual };
                facilities.push(format!("{:07}", 1_000_000 + facility));
                keys.push(key);
                let drug = rng.below(10) < 6;
                kinds.push(if drug { "drug" } else { "procedure" });
                codes.push(if drug { format!("6{:08}", rng.skewed(DRUG_CODES)) } else { format!("1{:08}", rng.skewed(PROCEDURE_CODES)) });
                points.push(if drug { rng.below(300) as i64 } else { 50 + rng.skewed(5_000) as i64 });
                claims.push(person as i64);
            }
            written += n;
            p_keys.push(key);
            sexes.push(if rng.below(2) == 0 { "male" } else { "female" });
            births.push(format!("{}-{:02}", 1930 + rng.below(90), 1 + rng.below(12)));
            prefectures.push(1 + rng.below(47) as i32);
            let e11 = rng.below(100) < 8;
            let i10 = rng.below(100) < 15;
            let others: Vec<bool> = icd.iter().map(|_| rng.below(100) < 4).collect();
            let has = |i: usize, c: &str| match c {
                "E11" => e11,
                "I10" => i10,
                _ => others[i],
            };
            let codes_of_person: Vec<&str> = icd.iter().enumerate().filter(|(i, c)| has(*i, c)).map(|(_, c)| *c).collect();
            for code in codes_of_person {
                c_keys.push(key);
                c_codes.push(format!("{code}{}", rng.below(10)));
                onsets.push(18_000 + rng.below(2_000) as i32);
            }
            person += 1;
        }
        let n = keys.len();
        let key_array = |k: &[[u8; 32]]| Arc::new(FixedSizeBinaryArray::try_from_iter(k.iter()).expect("keys")) as ArrayRef;
        w_lines
            .write(&batch(
                "claim_lines",
                vec![
                    ("person_key", key_array(&keys)),
                    ("claim", Arc::new(Int64Array::from(claims))),
                    ("kind", Arc::new(StringArray::from(kinds))),
                    ("code_system", Arc::new(StringArray::from(vec!["receipt"; n]))),
                    ("code", Arc::new(StringArray::from(codes))),
                    ("points", Arc::new(Int64Array::from(points))),
                    ("facility_code", Arc::new(StringArray::from(facilities))),
                ],
                n,
            ))
            .expect("write claim lines");
        let np = p_keys.len();
        w_patients
            .write(&batch(
                "patients",
                vec![
                    ("person_key", key_array(&p_keys)),
                    ("sex", Arc::new(StringArray::from(sexes))),
                    ("birth_year_month", Arc::new(StringArray::from(births))),
                    ("prefecture", Arc::new(Int32Array::from(prefectures))),
                ],
                np,
            ))
            .expect("write patients");
        let nc = c_keys.len();
        w_conditions
            .write(&batch(
                "conditions",
                vec![
                    ("person_key", key_array(&c_keys)),
                    ("code_system", Arc::new(StringArray::from(vec!["icd10"; nc]))),
                    ("code", Arc::new(StringArray::from(c_codes))),
                    ("onset", Arc::new(Date32Array::from(onsets))),
                ],
                nc,
            ))
            .expect("write conditions");
        if written % (1 << 20) < 65_536 {
            eprintln!("  {written} lines, {person} persons");
        }
    }
    eprintln!();
    for w in [w_lines, w_patients, w_conditions] {
        w.close().expect("close parquet");
    }
    std::fs::write(dir.join("done"), b"").expect("marker");
    dir
}

fn read(dir: &Path, table: &str) -> GrantedTable {
    let file = File::open(dir.join(format!("{table}.parquet"))).expect("open parquet");
    let reader = ParquetRecordBatchReaderBuilder::try_new(file).expect("parquet").with_batch_size(8192).build().expect("reader");
    let batches: Vec<RecordBatch> = reader.map(|b| b.expect("batch")).collect();
    GrantedTable { dataset: DATASET.into(), table: table.into(), schema: niji_lake::table_schema(table).expect("schema"), batches }
}

fn policy() -> PermitPolicy {
    let grant = |table: &str, columns: &[&str]| TableGrant { table: table.into(), columns: columns.iter().map(|c| c.to_string()).collect() };
    PermitPolicy {
        application_id: 1,
        version: 1,
        datasets: vec![DatasetGrant {
            dataset: DATASET.into(),
            tables: vec![
                grant("claim_lines", &["kind", "code", "points"]),
                grant("patients", &["sex", "birth_year_month", "prefecture"]),
                grant("conditions", &["code", "onset"]),
            ],
        }],
        cohort: None,
        purpose: "bench".into(),
        purpose_category: PurposeCategory::AcademicResearch,
        recipients: vec![],
        researchers: vec![],
        linkage: vec![],
        track: Track::Visiting,
        output_preset: "standard".into(),
        starts_on: time::macros::date!(2026 - 01 - 01),
        expires_on: time::macros::date!(2026 - 12 - 31),
        conditions: vec![],
        date_shift_days: None,
    }
}

/// DuckDB's times in seconds: the load, then each query's median, as printed by the script.
fn duckdb(dir: &Path, runs: usize, threads: usize) -> Option<(f64, Vec<f64>)> {
    let python = std::env::var_os("NIJI_BENCH_PYTHON")?;
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("benches/duckdb_suite.py");
    let queries: Vec<String> = QUERIES.iter().map(|(_, q)| q.replace("person_id", "person_key")).collect();
    let output = Command::new(python).arg(script).arg(dir).arg(runs.to_string()).arg(threads.to_string()).args(&queries).output().ok()?;
    if !output.status.success() {
        eprintln!("duckdb suite failed: {}", String::from_utf8_lossy(&output.stderr));
        return None;
    }
    let text = String::from_utf8(output.stdout).ok()?;
    let mut numbers = text.split_whitespace().map(|n| n.parse::<f64>());
    let load = numbers.next()?.ok()?;
    let times: Result<Vec<f64>, _> = numbers.collect();
    times.ok().filter(|t| t.len() == QUERIES.len()).map(|t| (load, t))
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).filter(|a| !a.starts_with('-')).collect();
    let lines: usize = args.first().and_then(|a| a.parse().ok()).unwrap_or(10_000_000);
    let runs: usize = args.get(1).and_then(|a| a.parse().ok()).unwrap_or(5).max(1);
    let threads = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
    let dir = generate(lines);

    let start = Instant::now();
    let tables: Vec<GrantedTable> = ["claim_lines", "patients", "conditions"].iter().map(|t| read(&dir, t)).collect();
    let read_time = start.elapsed();
    let start = Instant::now();
    let limits = Limits { memory_bytes: 8 << 30, timeout: Duration::from_secs(600), ..Limits::default() };
    // Plain DataFusion over the same batches (`person_key` named `person_id`, so the same SQL runs),
    // dealt into as many partitions as the workspace uses: the policy's overhead per query.
    let plain = SessionContext::new();
    for t in &tables {
        let mut fields: Vec<Field> = t.schema.fields().iter().map(|f| f.as_ref().clone()).collect();
        for f in fields.iter_mut().filter(|f| f.name() == "person_key") {
            *f = f.clone().with_name("person_id");
        }
        let schema = Arc::new(Schema::new(fields));
        let mut parts = vec![Vec::new(); threads];
        for (i, b) in t.batches.iter().enumerate() {
            parts[i % threads].push(RecordBatch::try_new(schema.clone(), b.columns().to_vec()).expect("same columns"));
        }
        plain.register_table(t.table.as_str(), Arc::new(MemTable::try_new(schema, parts).expect("table"))).expect("register");
    }
    let ws = Workspace::open(tables, &policy(), [7; 32], &HashSet::new(), limits).expect("open workspace");
    let open_time = start.elapsed();

    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("runtime");
    let mut ours = Vec::new();
    let mut plain_times = Vec::new();
    for (name, sql) in QUERIES {
        let mut times = Vec::with_capacity(runs);
        let mut plain_runs = Vec::with_capacity(runs);
        let mut rows = 0;
        let recounts = ws.persons_recounts();
        runtime.block_on(async {
            rows = ws.run(sql).await.unwrap_or_else(|e| panic!("{name}: {e}")).rows.len();
            plain.sql(sql).await.expect("plan").collect().await.expect("plain query");
            // Interleaved, so that a slower moment of the machine weighs on both alike.
            for _ in 0..runs {
                let start = Instant::now();
                plain.sql(sql).await.expect("plan").collect().await.expect("plain query");
                plain_runs.push(start.elapsed().as_secs_f64());
                let start = Instant::now();
                ws.run(sql).await.expect("query");
                times.push(start.elapsed().as_secs_f64());
            }
        });
        times.sort_by(f64::total_cmp);
        plain_runs.sort_by(f64::total_cmp);
        let recounted = ws.persons_recounts() > recounts;
        ours.push((times[runs / 2], rows, recounted));
        plain_times.push(plain_runs[runs / 2]);
    }

    let peer = duckdb(&dir, runs, threads);
    println!("claim lines {lines}, {threads} threads, median of {runs} runs; data in {}", dir.display());
    println!("load: workspace read {:.2} s + open (re-key, sort) {:.2} s", read_time.as_secs_f64(), open_time.as_secs_f64());
    match &peer {
        Some((load, _)) => println!("load: DuckDB CREATE TABLE … read_parquet {load:.2} s"),
        None => println!("DuckDB: not run (set NIJI_BENCH_PYTHON to a Python with duckdb; scripts/bench-analysis-duckdb does)"),
    }
    println!(
        "{:<50} {:>6} {:>11} {:>11} {:>8} {:>11} {:>7}",
        "query (\"exact count\": the fast persons count gave way)", "rows", "workspace", "DataFusion", "overhead", "DuckDB", "ratio"
    );
    let mut ratios = Vec::new();
    let mut overheads = Vec::new();
    for (i, (name, _)) in QUERIES.iter().enumerate() {
        let (t, rows, recounted) = ours[i];
        let name = if recounted { format!("{name} (exact count)") } else { name.to_string() };
        let overhead = t / plain_times[i];
        overheads.push(overhead);
        let head = format!("{name:<50} {rows:>6} {:>8.1} ms {:>8.1} ms {overhead:>7.2}×", t * 1e3, plain_times[i] * 1e3);
        match &peer {
            Some((_, theirs)) => {
                ratios.push(t / theirs[i]);
                println!("{head} {:>8.1} ms {:>6.2}×", theirs[i] * 1e3, t / theirs[i]);
            }
            None => println!("{head} {:>11} {:>7}", "–", "–"),
        }
    }
    let geomean = |r: &[f64]| (r.iter().map(|r| r.ln()).sum::<f64>() / r.len() as f64).exp();
    let total_plain: f64 = plain_times.iter().sum();
    let total_ours: f64 = ours.iter().map(|(t, _, _)| t).sum();
    println!(
        "policy overhead: workspace {:.1} ms, plain DataFusion {:.1} ms on the same batches, ratio {:.2}× (geometric mean {:.2}×; target ≤ 1.10×)",
        total_ours * 1e3,
        total_plain * 1e3,
        total_ours / total_plain,
        geomean(&overheads)
    );
    if !ratios.is_empty() {
        let geomean = geomean(&ratios);
        let total_theirs: f64 = peer.as_ref().map(|(_, t)| t.iter().sum()).unwrap_or(0.0);
        println!(
            "suite total: workspace {:.1} ms, DuckDB {:.1} ms, ratio {:.2}× (geometric mean of ratios {geomean:.2}×; goal ≤ 1.5×)",
            total_ours * 1e3,
            total_theirs * 1e3,
            total_ours / total_theirs
        );
    }
}
