//! Shared by the tests and the benchmark: finds and loads the Adult benchmark data set
//! (`shared/datasets/adult`, beside the repository) with ARX's hierarchies.
#![allow(dead_code)]

use niji_anon::{AnonymizationConfig, Attribute, AttributeRole, Hierarchy, Metric, ModelSettings, PrivacyModel, Table};
use std::path::PathBuf;

/// ARX's eight quasi-identifiers for Adult (lattice of 4,320 nodes), in the order levels are
/// reported.
pub const ADULT_QIS: [&str; 8] = ["age", "education", "marital-status", "native-country", "race", "salary-class", "sex", "workclass"];

/// The folder holding `adult.csv`, found by walking up from the crate folder to a folder
/// that has `shared/datasets/adult` (the repository's sibling `shared/`).
pub fn adult_dir() -> PathBuf {
    let start = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    for dir in start.ancestors() {
        let candidate = dir.join("shared").join("datasets").join("adult");
        if candidate.join("adult.csv").is_file() {
            return candidate;
        }
    }
    panic!("shared/datasets/adult not found above {}", start.display());
}

/// The Adult table (all nine columns) and the hierarchy of each quasi-identifier.
pub fn load_adult() -> (Table, Vec<(String, Hierarchy)>) {
    let dir = adult_dir();
    let text = std::fs::read_to_string(dir.join("adult.csv")).unwrap();
    let mut lines = text.lines();
    let header: Vec<&str> = lines.next().unwrap().split(';').collect();
    let rows: Vec<Vec<&str>> = lines.filter(|l| !l.is_empty()).map(|l| l.split(';').collect()).collect();
    let table = Table::from_rows(&header, rows).unwrap();
    let hierarchies = ADULT_QIS
        .iter()
        .map(|q| {
            let text = std::fs::read_to_string(dir.join(format!("adult_hierarchy_{q}.csv"))).unwrap();
            (q.to_string(), Hierarchy::parse(&text, ';').unwrap())
        })
        .collect();
    (table, hierarchies)
}

/// ARX's Adult set-up: the eight quasi-identifiers, occupation insensitive.
pub fn adult_config(hierarchies: &[(String, Hierarchy)], k: u32, suppression_limit: f64, metric: Metric) -> AnonymizationConfig {
    let mut attributes: Vec<Attribute> =
        hierarchies.iter().map(|(name, h)| Attribute { column: name.clone(), role: AttributeRole::QuasiIdentifying(h.clone()) }).collect();
    attributes.push(Attribute { column: "occupation".into(), role: AttributeRole::Insensitive });
    AnonymizationConfig {
        attributes,
        model: ModelSettings { privacy: PrivacyModel::k_anonymity(k), suppression_limit, metric, ..Default::default() },
    }
}
