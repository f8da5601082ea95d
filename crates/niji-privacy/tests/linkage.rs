//! Linkage measured against `niji synth`'s ground truth (2,000 persons over 2023–2024, every format), with the
//! targets of issue 3 asserted in both holder scopes, and the stability of person keys when
//! records arrive later.

use niji_privacy::{link, LinkageConfig, PersonKey, PriorKeys, Pseudonymizer, VaultKey};
use niji_testkit::{self as eval, HolderScope};

fn keys() -> Pseudonymizer {
    Pseudonymizer::new(&VaultKey::from_bytes(b"niji-privacy test vault key, 32+ bytes long").unwrap())
}

#[test]
fn linkage_meets_targets_on_synthetic_population() {
    let dir = tempfile::tempdir().unwrap();
    let summary = eval::generate(dir.path(), 2_000, niji_synth::Formats::ALL, 2);
    for scope in [HolderScope::Hospital, HolderScope::FormatAndHospital] {
        let data = eval::ingest(dir.path(), 2_000, scope);
        assert_eq!(data.records.len(), data.truth_rows, "every truth record ingested once");
        println!(
            "{scope:?}: {} records of {} persons ({} twins, {} namesakes, {} insurance changes)",
            data.records.len(),
            data.persons,
            summary.twins,
            summary.namesakes,
            summary.insurance_changes
        );
        let out = link(&data.records, &LinkageConfig::default(), &keys(), &PriorKeys::default());
        println!("{:?}", out.stats);
        let ours = eval::metrics(&out.keys, &data.truth);
        let id2 = eval::metrics(&eval::baseline_id2(&data.records), &data.truth);
        eval::print_row("niji-privacy linkage", &ours);
        eval::print_row("ID2 (kana+birth+sex, as written)", &id2);
        eval::print_row("ID2 normalized", &eval::metrics(&eval::baseline_id2_normalized(&data.records), &data.truth));
        assert!(ours.precision >= 0.995, "{scope:?} precision {}", ours.precision);
        assert!(ours.recall >= 0.99, "{scope:?} recall {}", ours.recall);
        assert!(ours.recall > id2.recall);

        // Keys stay when more records arrive later: link the first half, keep its anchors, link
        // all of them with those anchors as prior keys.
        let half = data.records.len() / 2;
        let first = link(&data.records[..half], &LinkageConfig::default(), &keys(), &PriorKeys::default());
        let prior: PriorKeys = first.anchors.iter().copied().collect();
        let all = link(&data.records, &LinkageConfig::default(), &keys(), &prior);
        let changed = (0..half).filter(|&i| all.keys[i] != first.keys[i]).count();
        println!("keys changed for {changed} of {half} earlier records");
        assert!(changed as f64 / half as f64 <= 0.005, "{changed} keys changed");

        // Another vault key gives unrelated person keys.
        let other = Pseudonymizer::new(&VaultKey::from_bytes(&[9u8; 32]).unwrap());
        let out2 = link(&data.records[..200], &LinkageConfig::default(), &other, &PriorKeys::default());
        let set: std::collections::HashSet<PersonKey> = out.keys.iter().copied().collect();
        assert!(out2.keys.iter().all(|k| !set.contains(k)));
    }
}
