//! Adult, k = 5, Loss: warm time of the optimal search at 0% and 5% suppression, next to
//! ARX's published figures (DESIGN.md, "Measuring") and to a baseline run in this process:
//! exhaustive evaluation of all 4,320 nodes from the records, without pruning or roll-up.
//! Then the sweep of all 4,320 nodes by roll-up (`evaluate_all`) beside that record-by-record
//! baseline, and the check of a release (k, l, t with `check_release`) beside pycanon's
//! published ~52 s.
//!
//! Run: `cargo bench -p niji-anon --bench adult` (prints a table; `NIJI_BENCH_RUNS` sets the
//! number of timed runs, default 21). Times are medians of warm runs; "prepare" is
//! `Anonymizer::new` (encoding through the hierarchies, bottom classes, metric tables) and
//! "solve" is prepare + search, which is what ARX's figure covers.

#[path = "../tests/common/mod.rs"]
mod common;

use common::{adult_config, load_adult};
use niji_anon::{check_release, Anonymizer, Hierarchy, Metric, SearchStrategy, SensitiveSpec};
use std::time::{Duration, Instant};

fn median(mut times: Vec<Duration>) -> Duration {
    times.sort();
    times[times.len() / 2]
}

fn time<T>(runs: usize, mut f: impl FnMut() -> T) -> (Duration, T) {
    let mut last = f(); // warm-up
    let mut times = Vec::with_capacity(runs);
    for _ in 0..runs {
        let start = Instant::now();
        last = f();
        times.push(start.elapsed());
    }
    (median(times), last)
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn main() {
    let runs: usize = std::env::var("NIJI_BENCH_RUNS").ok().and_then(|v| v.parse().ok()).unwrap_or(21);
    let (table, hierarchies) = load_adult();
    println!("Adult: {} rows, 8 quasi-identifiers, k = 5, metric Loss; median of {runs} warm runs", table.num_rows());
    println!();
    println!(
        "{:<12} {:>10} {:>10} {:>10} {:>14} {:>16} {:>12} {:>9}  result",
        "suppression", "prepare", "search", "solve", "ARX (ms)", "solve / ARX", "exhaustive", "speed-up"
    );
    // ARX 3.9.2 on a 2-core machine (DESIGN.md): 26-34 ms at 0%, ~300 ms at 5%.
    for (limit, arx_low, arx_high) in [(0.0, 26.0, 34.0), (0.05, 300.0, 300.0)] {
        let config = adult_config(&hierarchies, 5, limit, Metric::Loss);
        let (prepare, _) = time(runs, || Anonymizer::new(&table, &config).unwrap());
        let anonymizer = Anonymizer::new(&table, &config).unwrap();
        let (search, outcome) = time(runs, || anonymizer.search_with(SearchStrategy::Optimal));
        let (solve, _) = time(runs, || Anonymizer::new(&table, &config).unwrap().search_with(SearchStrategy::Optimal));
        let (exhaustive, baseline) = time(runs.min(5), || anonymizer.search_with(SearchStrategy::Exhaustive));
        let best = outcome.optimum.expect("solution");
        assert_eq!(Some(&best), baseline.optimum.as_ref(), "optimal and exhaustive disagree");
        let arx = if arx_low == arx_high { format!("~{arx_low:.0}") } else { format!("{arx_low:.0}-{arx_high:.0}") };
        let ratio = if arx_low == arx_high {
            format!("{:.3}", ms(solve) / arx_low)
        } else {
            format!("{:.3}-{:.3}", ms(solve) / arx_high, ms(solve) / arx_low)
        };
        println!(
            "{:<12} {:>8.2}ms {:>8.2}ms {:>8.2}ms {:>14} {:>16} {:>10.1}ms {:>8.0}x  levels {:?}, Loss {:.3}, {} classes, {} suppressed; {} of 4320 nodes computed, {} anonymous nodes",
            format!("{:.0}%", limit * 100.0),
            ms(prepare),
            ms(search),
            ms(solve),
            arx,
            ratio,
            ms(exhaustive),
            ms(exhaustive) / ms(search),
            best.levels,
            best.loss.value,
            best.released_classes,
            best.suppressed_records,
            outcome.stats.classes_computed,
            baseline.stats.anonymous_found,
        );
    }
    println!();
    println!("solve / ARX < 1 means faster than ARX's published figure; speed-up = exhaustive / search.");

    // The sweep of every node by roll-up from a predecessor, beside the record-by-record
    // baseline (Exhaustive regroups the records for each node).
    println!();
    let config = adult_config(&hierarchies, 5, 0.0, Metric::Loss);
    let anonymizer = Anonymizer::new(&table, &config).unwrap();
    let (sweep, all) = time(runs.min(11), || anonymizer.evaluate_all());
    let (records, baseline) = time(runs.min(3), || anonymizer.search_with(SearchStrategy::Exhaustive));
    let anonymous = all.iter().filter(|e| e.anonymous).count();
    assert_eq!(anonymous as u64, baseline.stats.anonymous_found);
    let rolled: u64 = all.iter().map(|e| e.classes).sum();
    println!(
        "sweep of all {} nodes (k, classes, suppression, Loss of each): {:.1} ms by roll-up (target <= 300 ms), {:.1} ms from the records ({:.0}x); {} anonymous nodes; {} classes in all",
        all.len(),
        ms(sweep),
        ms(records),
        ms(records) / ms(sweep),
        anonymous,
        rolled
    );

    // Checking a release: k, distinct/entropy/recursive l and t (equal and hierarchical) of
    // occupation in the 5-anonymous optimum, measured from the released table alone.
    let release =
        anonymizer.release(&all.iter().filter(|e| e.anonymous).min_by(|a, b| a.loss.value.total_cmp(&b.loss.value)).unwrap().levels).unwrap();
    let occupation = Hierarchy::parse(&std::fs::read_to_string(common::adult_dir().join("adult_hierarchy_occupation.csv")).unwrap(), ';').unwrap();
    let spec = [SensitiveSpec { column: "occupation".into(), recursive_l: Some(2), hierarchy: Some(occupation) }];
    let (check, properties) = time(runs, || check_release(&release.table, &common::ADULT_QIS, &spec).unwrap());
    let s = &properties.sensitive[0];
    println!(
        "check of the released table ({} rows, {} classes): {:.2} ms (target <= 500 ms; pycanon ~52,000 ms, ratio {:.5}): k {}, distinct l {}, entropy l {:.2}, recursive c for l=2 {:.2}, t equal {:.3}, t hierarchical {:.3}",
        properties.records,
        properties.classes,
        ms(check),
        ms(check) / 52_000.0,
        properties.k,
        s.distinct_l,
        s.entropy_l,
        s.recursive_c.unwrap().1,
        s.t_equal,
        s.t_hierarchical.unwrap()
    );
    // The worst case for a checker: the input itself (every quasi-identifier at level 0).
    let (check, properties) = time(runs, || check_release(&table, &common::ADULT_QIS, &spec).unwrap());
    let s = &properties.sensitive[0];
    println!(
        "check of the input as released ({} rows, {} classes): {:.2} ms: k {}, distinct l {}, t equal {:.3}, t hierarchical {:.3}",
        properties.records,
        properties.classes,
        ms(check),
        properties.k,
        s.distinct_l,
        s.t_equal,
        s.t_hierarchical.unwrap()
    );
}
