//! Output checking of a 1,000,000-row table (3 dimensions of 100 values each, a count and a
//! sum with contributions) under every ACRO rule (threshold 10, zeros disclosive, N-K
//! dominance n = 2 k = 0.9, p-percent p = 0.1) including secondary suppression; target
//! ≤ 0.2 s in release mode (issue 5). ACRO's own check of such a table takes about 4.6 s.
//!
//! The table is generated here, deterministically (a fixed-seed xorshift): persons per cell
//! skewed towards small counts (about 10% of the cells below 10, 0.5% empty), contributions
//! of a few hundred units per person with random largest contributions.
//!
//! Run: `cargo bench -p niji-sdc --bench sdc` (`NIJI_BENCH_RUNS` sets the number of timed
//! runs, default 5; the median is shown; `NIJI_BENCH_SHUFFLE=1` shuffles the rows, the worst
//! case for key interning, which reuses the previous row's code when keys repeat;
//! `NIJI_BENCH_SHAPE=2d` makes the table two dimensions of 1,000 values each, where every
//! suppressed cell is also put on a cycle of suppressed cells; `NIJI_BENCH_SMALL=P` makes P% of
//! the cells small, 0 to 9 persons (a row of none is left out as empty), instead of about 10%
//! from the skew).

use niji_sdc::{check, Cell, Measure, Preset, Rules, Table};
use std::time::{Duration, Instant};

const SIDE: usize = 100;
const TARGET: f64 = 0.2;
const ACRO_SECONDS: f64 = 4.6;

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
}

fn generate(two_way: bool, small_percent: Option<u64>) -> Table {
    let mut rng = Rng(0x6e69_6a69_5344_4331);
    let (dimensions, side): (&[&str], usize) =
        if two_way { (&["institution", "diagnosis"], 1_000) } else { (&["prefecture", "age_band", "diagnosis"], SIDE) };
    let mut table = Table::new(dimensions.iter().copied(), vec![Measure::count("persons"), Measure::sum("cost")]);
    let prefectures: Vec<String> = (0..side).map(|i| format!("P{i:03}")).collect();
    let ages: Vec<String> = if two_way { vec![String::new()] } else { (0..side).map(|i| format!("A{i:02}")).collect() };
    let codes: Vec<String> = (0..side).map(|i| format!("I{i:03}")).collect();
    table.rows.reserve(1_000_000);
    for p in &prefectures {
        for a in &ages {
            for c in &codes {
                let persons = match small_percent {
                    None => rng.below(200).min(rng.below(200)),
                    Some(percent) if rng.below(100) < percent => rng.below(10),
                    Some(_) => 10 + rng.below(190),
                };
                let sum = if persons == 0 {
                    Cell::new(0.0, 0).with_contributions([0.0, 0.0], 0.0)
                } else {
                    let first = 50.0 + rng.below(2_000) as f64;
                    let second = if persons > 1 { first.min(50.0 + rng.below(500) as f64) } else { 0.0 };
                    let rest = persons.saturating_sub(2) as f64 * (20.0 + rng.below(200) as f64);
                    let total = first + second + rest;
                    Cell::new(total, persons).with_contributions([first, second], total)
                };
                let keys: Vec<&str> = if two_way { vec![p.as_str(), c.as_str()] } else { vec![p.as_str(), a.as_str(), c.as_str()] };
                table.push(keys, vec![Cell::count(persons), sum]);
            }
        }
    }
    table
}

/// The same rows in random order, rebuilt so that each row's keys and cells are allocated
/// in row order (as a table built from a query's output is).
fn shuffle(table: Table) -> Table {
    let mut rng = Rng(0x5348_5546_464c_4521);
    let mut order: Vec<usize> = (0..table.rows.len()).collect();
    for i in (1..order.len()).rev() {
        order.swap(i, rng.below(i as u64 + 1) as usize);
    }
    let mut shuffled = Table::new(table.dimensions.clone(), table.measures.clone());
    shuffled.rows.reserve(order.len());
    for i in order {
        shuffled.push(table.rows[i].keys.iter().map(String::as_str), table.rows[i].cells.clone());
    }
    shuffled
}

fn main() {
    let runs: usize = std::env::var("NIJI_BENCH_RUNS").ok().and_then(|s| s.parse().ok()).unwrap_or(5).max(1);
    let started = Instant::now();
    let small = std::env::var("NIJI_BENCH_SMALL").ok().and_then(|s| s.parse().ok());
    let mut table = generate(std::env::var("NIJI_BENCH_SHAPE").as_deref() == Ok("2d"), small);
    if std::env::var_os("NIJI_BENCH_SHUFFLE").is_some() {
        table = shuffle(table);
    }
    println!("generated {} rows × {} measures in {:.2} s", table.rows.len(), table.measures.len(), started.elapsed().as_secs_f64());
    let rules = Rules::preset(Preset::Acro);
    let mut times: Vec<Duration> = Vec::with_capacity(runs);
    let mut last = None;
    for _ in 0..runs {
        let t = Instant::now();
        let checked = check(&table, &rules).expect("check");
        times.push(t.elapsed());
        last = Some(checked);
    }
    times.sort();
    let median = times[runs / 2].as_secs_f64();
    let s = last.expect("one run").summary;
    println!("cells {}: released {}, primary {}, secondary {}, refused {}", s.cells, s.released, s.primary, s.secondary, s.refused);
    println!(
        "check (ACRO rules + secondary suppression), median of {runs}: {median:.3} s; {:.2}× the {TARGET} s target; {:.1}× faster than ACRO's ~{ACRO_SECONDS} s",
        median / TARGET,
        ACRO_SECONDS / median
    );
}
