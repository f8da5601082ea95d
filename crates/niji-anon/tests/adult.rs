//! Acceptance test on Adult against ARX's published results (k = 5, Loss), and the
//! optimal search against the exhaustive one.

mod common;

use common::{adult_config, load_adult, ADULT_QIS};
use niji_anon::{Anonymizer, Metric, SearchStrategy};

/// ARX's published result for one configuration.
struct Expected {
    suppression_limit: f64,
    levels: [u32; 8],
    loss: f64,
    classes: Option<u64>,
    suppressed: u64,
}

fn check(expected: Expected) {
    let (table, hierarchies) = load_adult();
    let config = adult_config(&hierarchies, 5, expected.suppression_limit, Metric::Loss);
    let anonymizer = Anonymizer::new(&table, &config).unwrap();
    assert_eq!(anonymizer.quasi_identifiers(), ADULT_QIS);
    assert_eq!(anonymizer.lattice().size(), 4320);
    let outcome = anonymizer.search();
    let best = outcome.optimum.expect("a 5-anonymous node exists");
    assert_eq!(best.levels, expected.levels, "levels");
    assert_eq!(format!("{:.3}", best.loss.value), format!("{:.3}", expected.loss), "Loss {}", best.loss.value);
    if let Some(classes) = expected.classes {
        assert_eq!(best.released_classes, classes, "classes");
    }
    assert_eq!(best.suppressed_records, expected.suppressed, "suppressed records");
    assert!(best.anonymous);

    // The release really is 5-anonymous and suppresses what the evaluation says.
    let release = anonymizer.release(&best.levels).unwrap();
    assert_eq!(release.table.num_rows() as u64, 30162 - expected.suppressed);
    assert!(release.risk_after.prosecutor.highest <= 0.2, "{:?}", release.risk_after);
    assert_eq!(release.risk_before.records, 30162);
    assert_eq!(release.suppressed_rows.len() as u64, expected.suppressed);
}

#[test]
fn adult_k5_no_suppression_matches_arx() {
    check(Expected { suppression_limit: 0.0, levels: [4, 3, 2, 2, 1, 0, 0, 0], loss: 0.542, classes: Some(26), suppressed: 0 });
}

#[test]
fn adult_k5_five_percent_suppression_matches_arx() {
    check(Expected { suppression_limit: 0.05, levels: [3, 2, 0, 1, 0, 0, 0, 1], loss: 0.170, classes: None, suppressed: 1346 });
}

/// Every node evaluated on its own (roll-up from the bottom classes, no tagging, no pruning):
/// 60 of the 4,320 nodes are 5-anonymous and the search's node is the cheapest of them. (The
/// benchmark also compares with the exhaustive search from the records, in release mode.)
#[test]
fn adult_optimal_equals_exhaustive_and_counts_60_anonymous_nodes() {
    let (table, hierarchies) = load_adult();
    let config = adult_config(&hierarchies, 5, 0.0, Metric::Loss);
    let anonymizer = Anonymizer::new(&table, &config).unwrap();
    let optimal = anonymizer.search_with(SearchStrategy::Optimal).optimum.unwrap();
    let lattice = anonymizer.lattice().clone();
    let mut anonymous = 0;
    let mut best: Option<(f64, u32, u32)> = None;
    for node in 0..lattice.size() {
        let e = anonymizer.evaluate(&lattice.levels(node)).unwrap();
        if e.anonymous {
            anonymous += 1;
            let key = (e.loss.value, lattice.height(node), node);
            if best.is_none_or(|b| key.0 < b.0 || (key.0 == b.0 && (key.1, key.2) < (b.1, b.2))) {
                best = Some(key);
            }
        }
    }
    assert_eq!(anonymous, 60);
    let (loss, _, node) = best.unwrap();
    assert_eq!(lattice.levels(node), optimal.levels);
    assert_eq!(loss, optimal.loss.value);
}

/// The sweep of all 4,320 nodes by roll-up: exactly 60 are 5-anonymous without suppression,
/// the cheapest of them is the search's optimum, and spot checks agree with evaluation from
/// the records.
#[test]
fn adult_sweep_finds_60_anonymous_nodes_and_the_optimum() {
    let (table, hierarchies) = load_adult();
    let config = adult_config(&hierarchies, 5, 0.0, Metric::Loss);
    let anonymizer = Anonymizer::new(&table, &config).unwrap();
    let all = anonymizer.evaluate_all();
    assert_eq!(all.len(), 4320);
    let anonymous: Vec<_> = all.iter().filter(|e| e.anonymous).collect();
    assert_eq!(anonymous.len(), 60);
    let best =
        anonymous.iter().min_by(|a, b| a.loss.value.total_cmp(&b.loss.value).then(a.levels.iter().sum::<u32>().cmp(&b.levels.iter().sum()))).unwrap();
    assert_eq!(best.levels, [4, 3, 2, 2, 1, 0, 0, 0]);
    assert_eq!(Some(*best), anonymizer.search().optimum.as_ref());
    for node in [0usize, 1, 77, 1234, 2999, 4319] {
        assert_eq!(all[node], anonymizer.evaluate_from_records(&all[node].levels).unwrap(), "node {node}");
    }
}
