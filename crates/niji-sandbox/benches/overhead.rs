//! Overhead of the workspace against plain DataFusion on the same in-memory data.
//!
//! `cargo bench -p niji-sandbox --bench overhead` (optional arguments: rows, runs). Prints the median
//! time of the same GROUP BY query through a plain `SessionContext` over a `MemTable`, through the
//! workspace with its policy checks only (`run_checks_only`), and through `Workspace::run` (checks
//! plus the persons count of every output row), and through a workspace under the ACRO rules
//! (also the two largest contributions behind the sum), in interleaved rounds, and the ratios.
//! `NIJI_BENCH_PROFILE=persons` (or `contributions`, `checks`) runs that variant alone, 200 times, for `perf record`.
//! Under the NDB rules (the "standard" workspace) each cell's institutions are counted too, from
//! the claim lines' facility codes (3,000 facilities; not granted, so counted from the hidden
//! column as in a real permit).
//! `NIJI_BENCH_QUERY=table1` measures a "Table 1" row instead: six conditional counts and sums by
//! code, whose cells also count the persons where each two of them differ (fifteen pairs).

use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use datafusion::arrow::array::{ArrayRef, FixedSizeBinaryArray, Int64Array, StringArray};
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::datasource::MemTable;
use datafusion::prelude::SessionContext;
use niji_review::application::{PurposeCategory, Track};
use niji_review::{DatasetGrant, PermitPolicy, TableGrant};
use niji_sandbox::{GrantedTable, Limits, Workspace};

const GROUP_BY: &str = "SELECT code, count(*) AS n, sum(points) AS points FROM claim_lines GROUP BY code";

const TABLE1: &str = "SELECT code, count(*) FILTER (WHERE points < 1000) AS a, count(*) FILTER (WHERE points < 2000) AS b, \
     count(*) FILTER (WHERE points >= 4000) AS c, sum(CASE WHEN points < 500 THEN 1 ELSE 0 END) AS d, \
     sum(points) FILTER (WHERE points BETWEEN 1000 AND 3000) AS e, avg(points) FILTER (WHERE points > 100) AS f \
     FROM claim_lines GROUP BY code";

fn data(rows: usize) -> (Arc<datafusion::arrow::datatypes::Schema>, Vec<RecordBatch>) {
    let schema = niji_lake::table_schema("claim_lines").unwrap();
    let batch_rows = 8192;
    let mut batches = Vec::new();
    let mut state: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let mut done = 0;
    while done < rows {
        let n = batch_rows.min(rows - done);
        let mut keys = Vec::with_capacity(n);
        let mut codes = Vec::with_capacity(n);
        let mut points = Vec::with_capacity(n);
        let mut facilities = Vec::with_capacity(n);
        for _ in 0..n {
            let person = next() % 200_000;
            let mut key = [0u8; 32];
            key[..8].copy_from_slice(&person.to_le_bytes());
            keys.push(key);
            codes.push(format!("{:09}", 100_000_000 + next() % 2_000));
            points.push((next() % 5_000) as i64);
            // 3,000 facilities; a person's usual one for four lines in five.
            let facility = if next() % 5 == 0 { next() % 3_000 } else { person % 3_000 };
            facilities.push(format!("{:07}", 1_000_000 + facility));
        }
        let columns: Vec<ArrayRef> = schema
            .fields()
            .iter()
            .map(|f| match f.name().as_str() {
                "person_key" => Arc::new(FixedSizeBinaryArray::try_from_iter(keys.iter()).unwrap()) as ArrayRef,
                "code" => Arc::new(StringArray::from(codes.clone())) as ArrayRef,
                "points" => Arc::new(Int64Array::from(points.clone())) as ArrayRef,
                "kind" => Arc::new(StringArray::from(vec!["drug"; n])) as ArrayRef,
                "facility_code" => Arc::new(StringArray::from(facilities.clone())) as ArrayRef,
                _ => datafusion::arrow::array::new_null_array(f.data_type(), n),
            })
            .collect();
        batches.push(RecordBatch::try_new(schema.clone(), columns).unwrap());
        done += n;
    }
    (schema, batches)
}

fn policy(output_preset: &str) -> PermitPolicy {
    PermitPolicy {
        application_id: 1,
        version: 1,
        datasets: vec![DatasetGrant {
            dataset: "ndb-2024".into(),
            tables: vec![TableGrant { table: "claim_lines".into(), columns: vec!["code".into(), "kind".into(), "points".into()] }],
        }],
        cohort: None,
        purpose: "bench".into(),
        purpose_category: PurposeCategory::AcademicResearch,
        recipients: vec![],
        researchers: vec![],
        linkage: vec![],
        track: Track::Visiting,
        output_preset: output_preset.into(),
        starts_on: time::macros::date!(2026 - 01 - 01),
        expires_on: time::macros::date!(2026 - 12 - 31),
        conditions: vec![],
        date_shift_days: None,
    }
}

fn median(mut times: Vec<Duration>) -> Duration {
    times.sort();
    times[times.len() / 2]
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).filter(|a| !a.starts_with('-')).collect();
    let rows: usize = args.first().and_then(|a| a.parse().ok()).unwrap_or(2_000_000);
    let runs: usize = args.get(1).and_then(|a| a.parse().ok()).unwrap_or(31);
    let query = match std::env::var("NIJI_BENCH_QUERY").as_deref() {
        Ok("table1") => TABLE1,
        _ => GROUP_BY,
    };
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    runtime.block_on(async {
        let (schema, batches) = data(rows);
        let partitions = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);

        let start = Instant::now();
        let table = GrantedTable { dataset: "ndb-2024".into(), table: "claim_lines".into(), schema: schema.clone(), batches: batches.clone() };
        let ws = Workspace::open(vec![table.clone()], &policy("standard"), [7; 32], &HashSet::new(), Limits::default()).unwrap();
        let open = start.elapsed();
        // The first grouping by a column counts its distinct values once (`groups.rs`).
        let start = Instant::now();
        ws.run_checks_only(query).await.unwrap();
        let first = start.elapsed();
        // Under the ACRO rules (dominance, p-percent) the sum's two largest contributions too.
        let acro = Workspace::open(vec![table], &policy("acro"), [7; 32], &HashSet::new(), Limits::default()).unwrap();

        // Plain DataFusion over the same rows, dealt into the same number of partitions.
        let mut parts = vec![Vec::new(); partitions];
        for (i, b) in batches.into_iter().enumerate() {
            parts[i % partitions].push(b);
        }
        let ctx = SessionContext::new();
        ctx.register_table("claim_lines", Arc::new(MemTable::try_new(schema, parts).unwrap())).unwrap();

        // For a profiler (`perf record`): one variant only, 200 times, nothing printed.
        if let Ok(variant) = std::env::var("NIJI_BENCH_PROFILE") {
            for _ in 0..200 {
                match variant.as_str() {
                    "persons" => ws.run(query).await.map(|_| ()).unwrap(),
                    "contributions" => acro.run(query).await.map(|_| ()).unwrap(),
                    _ => ws.run_checks_only(query).await.map(|_| ()).unwrap(),
                }
            }
            return;
        }
        // Interleaved rounds (plain, checks, persons), so that a slower moment of the machine
        // weighs on all three alike; one warm-up round first.
        let (mut plain, mut checks, mut persons, mut contributions) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
        for round in 0..=runs {
            let start = Instant::now();
            let n: usize = ctx.sql(query).await.unwrap().collect().await.unwrap().iter().map(|b| b.num_rows()).sum();
            let t_plain = start.elapsed();
            let start = Instant::now();
            let m = ws.run_checks_only(query).await.unwrap();
            let t_checks = start.elapsed();
            let start = Instant::now();
            let k = ws.run(query).await.unwrap().rows.len();
            let t_persons = start.elapsed();
            let start = Instant::now();
            let with_contributions = acro.run(query).await.unwrap();
            let t_contributions = start.elapsed();
            assert!(n > 0 && n == m && m == k && k == with_contributions.rows.len());
            if query == GROUP_BY {
                assert!(with_contributions.contributions.iter().all(|c| c[2].is_some()), "contributions of every sum cell");
            }
            if round > 0 {
                plain.push(t_plain);
                checks.push(t_checks);
                persons.push(t_persons);
                contributions.push(t_contributions);
            }
        }
        assert_eq!(ws.persons_recounts(), 0, "the fast persons count served every run");
        let (plain, checks, persons, contributions) = (median(plain), median(checks), median(persons), median(contributions));

        let ms = |d: Duration| d.as_secs_f64() * 1e3;
        println!("rows {rows}, {partitions} partitions, median of {runs} interleaved rounds, query: {query}");
        println!("open (re-key {rows} rows, register)   {:>9.1} ms", ms(open));
        println!("first query (counts code's values)    {:>9.1} ms", ms(first));
        println!("plain DataFusion                      {:>9.1} ms", ms(plain));
        println!("workspace, policy checks only         {:>9.1} ms   ratio {:.3}", ms(checks), ms(checks) / ms(plain));
        println!("workspace, checks + persons count     {:>9.1} ms   ratio {:.3}", ms(persons), ms(persons) / ms(plain));
        println!("  + contributions (ACRO rules)        {:>9.1} ms   ratio {:.3}", ms(contributions), ms(contributions) / ms(plain));
    });
}
