//! Adult, k = 5, Loss: warm time of the optimal search at 0% and 5% suppression, next to
//! ARX's published figures (DESIGN.md, "Measuring") and to a baseline run in this process:
//! exhaustive evaluation of all 4,320 nodes from the records, without pruning or roll-up.
//!
//! Run: `cargo bench -p niji-anon --bench adult` (prints a table; `NIJI_BENCH_RUNS` sets the
//! number of timed runs, default 21). Times are medians of warm runs; "prepare" is
//! `Anonymizer::new` (encoding through the hierarchies, bottom classes, metric tables) and
//! "solve" is prepare + search, which is what ARX's figure covers.

#[path = "../tests/common/mod.rs"]
mod common;

use common::{adult_config, load_adult};
use niji_anon::{Anonymizer, Metric, SearchStrategy};
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
}
