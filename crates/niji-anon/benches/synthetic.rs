//! A synthetic claims-like table of 1,200,000 rows with 8 quasi-identifiers, k = 5, Loss:
//! the time of the optimal solve (prepare + search), target ≤ 2.5 s (issue 7).
//!
//! The table is generated here, deterministically (a fixed-seed xorshift; same bytes on every
//! run): age (0-105, skewed young-old like a clinic's patients), sex, municipality of
//! residence (1,692 JIS-style codes, 36 per prefecture, skewed towards a few prefectures),
//! prefecture of the institution (mostly the residence's), ICD-10 code (10 subcodes of the
//! first category of each WHO block, skewed), birth year-month (consistent with the age),
//! insurer kind (five kinds, 後期高齢者医療 from 75) and visit date (2023-2024). Hierarchies:
//! the built-in age bands (5/10/20 years, 90+), municipalities (→ prefecture → region),
//! ICD-10 (→ category → block → chapter) and dates (→ month → quarter → year), and small
//! hand-made ones for sex, institution prefecture (→ region), birth year-month (→ year →
//! decade) and insurer kind (→ 被用者保険/地域保険). Lattice: 5·2·4·3·5·4·3·5 = 36,000 nodes;
//! the bottom node has nearly one class per record.
//!
//! Run: `cargo bench -p niji-anon --bench synthetic` (prints a table; `NIJI_BENCH_RUNS` sets
//! the number of timed runs, default 5; the median is shown).

use niji_anon::builtin::{self, AgeBands, DateLevel};
use niji_anon::{
    AnonymizationConfig, Anonymizer, Attribute, AttributeRole, Column, Hierarchy, Metric, ModelSettings, PrivacyModel, SearchStrategy, Table,
};
use std::time::{Duration, Instant};

const ROWS: usize = 1_200_000;

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    /// Skewed towards 0: the smaller of two draws.
    fn skewed(&mut self, n: u64) -> u64 {
        self.below(n).min(self.below(n))
    }
}

const INSURERS: [(&str, &str); 5] = [
    ("協会けんぽ", "被用者保険"),
    ("組合健保", "被用者保険"),
    ("共済組合", "被用者保険"),
    ("国民健康保険", "地域保険"),
    ("後期高齢者医療", "地域保険"),
];

fn generate() -> Table {
    let mut rng = Rng(0x6e69_6a69_2026_1121);
    let blocks: Vec<&str> = builtin::ICD10_BLOCKS.to_vec();
    let mut columns: [Vec<String>; 8] = Default::default();
    for _ in 0..ROWS {
        let age = ((rng.below(106) + rng.below(106) + rng.below(106)) / 3).min(105) as u32;
        let sex = if rng.below(2) == 0 { "M" } else { "F" };
        // Prefecture: a third of the records in the seven largest, the rest spread.
        let pref = if rng.below(3) == 0 { [13, 14, 27, 23, 11, 12, 1][rng.below(7) as usize] } else { 1 + rng.below(47) as u32 };
        let municipality = format!("{pref:02}{:03}", 100 + rng.skewed(36) * 7);
        let institution = if rng.below(10) < 9 { pref } else { 1 + rng.below(47) as u32 };
        let block = blocks[rng.skewed(blocks.len() as u64) as usize];
        let icd = format!("{}.{}", &block[..3], rng.skewed(10));
        let month = 1 + rng.below(12);
        let birth = format!("{:04}-{month:02}", 2024 - age);
        let insurer = if age >= 75 { 4 } else { rng.below(4) as usize };
        let day = rng.below(731) as i64;
        let (y, m, d) = civil(19358 + day); // 2023-01-01 + day
        let visit = format!("{y:04}-{m:02}-{d:02}");
        let values = [age.to_string(), sex.to_owned(), municipality, format!("{institution:02}"), icd, birth, INSURERS[insurer].0.to_owned(), visit];
        for (c, v) in columns.iter_mut().zip(values) {
            c.push(v);
        }
    }
    let names = ["age", "sex", "municipality", "institution_prefecture", "icd10", "birth_month", "insurer", "visit_date"];
    Table::from_columns(names.iter().zip(columns).map(|(n, values)| Column::from_values(*n, values)).collect()).unwrap()
}

/// Days since 1970-01-01 to (year, month, day).
fn civil(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

fn rows_hierarchy(rows: Vec<Vec<String>>) -> Hierarchy {
    Hierarchy::from_rows(rows).unwrap()
}

fn hierarchies(table: &Table) -> Vec<(String, Hierarchy)> {
    let dict = |c: &str| table.column(c).unwrap().dictionary().to_vec();
    let mut out = Vec::new();
    out.push(("age".into(), builtin::age_bands(&AgeBands { min: 0, max: 105, widths: vec![5, 10, 20], top_code: Some(90) }).unwrap()));
    out.push(("sex".into(), rows_hierarchy(vec![vec!["M".into(), "*".into()], vec!["F".into(), "*".into()]])));
    out.push(("municipality".into(), builtin::municipalities(dict("municipality")).unwrap()));
    out.push((
        "institution_prefecture".into(),
        rows_hierarchy((1..=47).map(|p| vec![format!("{p:02}"), builtin::region_of_prefecture(p).unwrap().into(), "*".into()]).collect()),
    ));
    out.push(("icd10".into(), builtin::icd10(dict("icd10")).unwrap()));
    out.push((
        "birth_month".into(),
        rows_hierarchy(dict("birth_month").into_iter().map(|v| vec![v.clone(), v[..4].into(), format!("{}0s", &v[..3]), "*".into()]).collect()),
    ));
    out.push(("insurer".into(), rows_hierarchy(INSURERS.iter().map(|(k, g)| vec![k.to_string(), g.to_string(), "*".into()]).collect())));
    out.push(("visit_date".into(), builtin::dates(dict("visit_date"), &[DateLevel::Month, DateLevel::Quarter, DateLevel::Year]).unwrap()));
    out
}

fn median(mut times: Vec<Duration>) -> Duration {
    times.sort();
    times[times.len() / 2]
}

fn main() {
    let runs: usize = std::env::var("NIJI_BENCH_RUNS").ok().and_then(|v| v.parse().ok()).unwrap_or(5);
    let started = Instant::now();
    let table = generate();
    let hierarchies = hierarchies(&table);
    println!(
        "synthetic: {} rows, 8 quasi-identifiers, generated in {:.1} s; k = 5, metric Loss; median of {runs} runs",
        table.num_rows(),
        started.elapsed().as_secs_f64()
    );
    println!();
    println!("{:<12} {:>10} {:>10} {:>10} {:>8}  result", "suppression", "prepare", "search", "solve", "target");
    for limit in [0.0, 0.05] {
        let config = AnonymizationConfig {
            attributes: hierarchies.iter().map(|(n, h)| Attribute { column: n.clone(), role: AttributeRole::QuasiIdentifying(h.clone()) }).collect(),
            model: ModelSettings { privacy: PrivacyModel::k_anonymity(5), suppression_limit: limit, metric: Metric::Loss, ..Default::default() },
        };
        let (mut prepare, mut search, mut solve) = (Vec::new(), Vec::new(), Vec::new());
        let mut last = None;
        for _ in 0..runs {
            let t0 = Instant::now();
            let anonymizer = Anonymizer::new(&table, &config).unwrap();
            let t1 = Instant::now();
            let outcome = anonymizer.search_with(SearchStrategy::Optimal);
            let t2 = Instant::now();
            prepare.push(t1 - t0);
            search.push(t2 - t1);
            solve.push(t2 - t0);
            last = Some((anonymizer.lattice().size(), outcome));
        }
        let (nodes, outcome) = last.unwrap();
        let best = outcome.optimum.expect("a solution");
        let s = |d: Duration| d.as_secs_f64();
        println!(
            "{:<12} {:>9.3}s {:>9.3}s {:>9.3}s {:>8}  levels {:?}, Loss {:.3}, {} classes, {} suppressed; {} of {} nodes computed ({} from cached snapshots, {} abandoned past n/k classes)",
            format!("{:.0}%", limit * 100.0),
            s(median(prepare)),
            s(median(search)),
            s(median(solve)),
            if limit == 0.0 { "<= 2.5s" } else { "" },
            best.levels,
            best.loss.value,
            best.released_classes,
            best.suppressed_records,
            outcome.stats.classes_computed,
            nodes,
            outcome.stats.rolled_up_from_cache,
            outcome.stats.abandoned,
        );
    }
}
