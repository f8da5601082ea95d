//! Journalist and marketer risk against a population (identification) table.

use niji_anon::engine::{anonymize, AnonymizationConfig, Attribute, AttributeRole};
use niji_anon::{Hierarchy, ModelSettings, PrivacyModel, Table};

fn sample() -> Table {
    let mut rows = Vec::new();
    for i in 0..60u32 {
        let age = 20 + (i % 6) * 10;
        let sex = if i % 2 == 0 { "M" } else { "F" };
        rows.push(vec![age.to_string(), sex.to_string(), format!("d{}", i % 3)]);
    }
    Table::from_rows(&["age", "sex", "diagnosis"], rows).unwrap()
}

fn config(population: Option<Table>) -> AnonymizationConfig {
    let ages: String = (0..6).map(|i| format!("{0};{1}-{2};*\n", 20 + i * 10, if i < 3 { 20 } else { 50 }, if i < 3 { 49 } else { 79 })).collect();
    AnonymizationConfig {
        attributes: vec![
            Attribute { column: "age".into(), role: AttributeRole::QuasiIdentifying(Hierarchy::parse(&ages, ';').unwrap()) },
            Attribute { column: "sex".into(), role: AttributeRole::QuasiIdentifying(Hierarchy::parse("M;*\nF;*\n", ';').unwrap()) },
            Attribute { column: "diagnosis".into(), role: AttributeRole::Insensitive },
        ],
        model: ModelSettings { privacy: PrivacyModel::k_anonymity(5), population, ..Default::default() },
    }
}

#[test]
fn without_a_population_the_data_is_its_own_and_journalist_equals_prosecutor() {
    let (release, _) = anonymize(&sample(), &config(None)).unwrap();
    assert_eq!(release.risk_after.journalist, release.risk_after.prosecutor);
    assert_eq!(release.risk_before.journalist, release.risk_before.prosecutor);
}

#[test]
fn a_population_four_times_the_sample_quarters_the_journalist_risk() {
    let s = sample();
    let rows: Vec<Vec<String>> = (0..4).flat_map(|_| (0..s.num_rows()).map(|r| s.row(r).iter().map(|v| v.to_string()).collect::<Vec<_>>())).collect();
    // Rows with values outside the hierarchies match no class (counted nowhere).
    let mut rows = rows;
    rows.push(vec!["130".into(), "X".into(), "d0".into()]);
    let population = Table::from_rows(&["age", "sex", "diagnosis"], rows).unwrap();
    let (release, _) = anonymize(&s, &config(Some(population))).unwrap();
    let (p, j) = (&release.risk_after.prosecutor, &release.risk_after.journalist);
    assert!((j.highest - p.highest / 4.0).abs() < 1e-12, "{} vs {}", j.highest, p.highest);
    assert!((j.average - p.average / 4.0).abs() < 1e-12);
    // The marketer's expected share of re-identified records: classes / (4 n).
    let classes = release.risk_after.classes as f64;
    assert!((release.risk_after.marketer - classes / (4.0 * 60.0)).abs() < 1e-12, "{}", release.risk_after.marketer);
    let (p, j) = (&release.risk_before.prosecutor, &release.risk_before.journalist);
    assert!((j.highest - p.highest / 4.0).abs() < 1e-12);
}

#[test]
fn a_population_without_a_quasi_identifier_is_refused() {
    let population = Table::from_rows(&["age"], vec![vec!["20".to_string()]]).unwrap();
    let e = anonymize(&sample(), &config(Some(population))).unwrap_err();
    assert!(e.to_string().contains("population table has no column \"sex\""), "{e}");
}
