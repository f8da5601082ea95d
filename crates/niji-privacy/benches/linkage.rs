//! Linkage quality and speed on `niji synth` data, beside NDB's ID2 baseline computed in the same
//! run, in two holder scopes (see `HolderScope`), with ablations of the rules.
//! `cargo bench -p niji-privacy --bench linkage` (`NIJI_BENCH_PERSONS`, default 20,000; `NIJI_BENCH_YEARS`, default 1; Bundles
//! are left out for speed: NDJSON Patients, UKE claims with their payers and the registry's
//! persons are linked).

use std::time::Instant;

use niji_privacy::{link, LinkageConfig, PriorKeys, Pseudonymizer, VaultKey};
use niji_testkit::{self as eval, HolderScope};

fn main() {
    let persons: u64 = std::env::var("NIJI_BENCH_PERSONS").ok().and_then(|v| v.parse().ok()).unwrap_or(20_000);
    let dir = tempfile::tempdir().unwrap();
    let started = Instant::now();
    let years: i32 = std::env::var("NIJI_BENCH_YEARS").ok().and_then(|v| v.parse().ok()).unwrap_or(1);
    let summary = eval::generate(dir.path(), persons, niji_synth::Formats::BULK, years);
    println!(
        "{persons} persons over {years} year(s) ({} twins, {} namesakes, {} insurance changes), generated in {:.1} s",
        summary.twins,
        summary.namesakes,
        summary.insurance_changes,
        started.elapsed().as_secs_f64()
    );
    let keys = Pseudonymizer::new(&VaultKey::from_bytes(b"niji-privacy bench vault key, 32+ bytes").unwrap());
    for scope in [HolderScope::Hospital, HolderScope::FormatAndHospital] {
        let data = eval::ingest(dir.path(), persons, scope);
        println!("\n== {scope:?}: {} identity records ({} truth rows)", data.records.len(), data.truth_rows);
        assert_eq!(data.records.len(), data.truth_rows, "every truth record ingested once");
        let config = LinkageConfig::default();
        let mut best = f64::MAX;
        let mut out = None;
        for _ in 0..3 {
            let t = Instant::now();
            let o = link(&data.records, &config, &keys, &PriorKeys::default());
            best = best.min(t.elapsed().as_secs_f64());
            out = Some(o);
        }
        let out = out.unwrap();
        let t = Instant::now();
        let id2_labels = eval::baseline_id2(&data.records);
        let id2_time = t.elapsed().as_secs_f64();
        println!("{:?}", out.stats);
        eval::print_row("niji-privacy linkage", &eval::metrics(&out.keys.to_vec(), &data.truth));
        eval::print_row("ID2 (kana+birth+sex, as written)", &eval::metrics(&id2_labels, &data.truth));
        eval::print_row("ID2 normalized", &eval::metrics(&eval::baseline_id2_normalized(&data.records), &data.truth));
        // With an insurer's 資格履歴 file linking old and new member ids (ID5 chaining).
        let mut with_history = data.records.clone();
        let history = eval::history_records(dir.path());
        let h = history.len();
        with_history.extend(history);
        let o = link(&with_history, &config, &keys, &PriorKeys::default());
        eval::print_row(&format!("  with 資格履歴 ({h} rows)"), &eval::metrics(&o.keys.to_vec()[..data.records.len()], &data.truth));
        for (label, config) in [
            ("  without cannot-link constraints", LinkageConfig { cannot_link: false, ..LinkageConfig::default() }),
            ("  without surname-change rule", LinkageConfig { surname_change: false, ..LinkageConfig::default() }),
        ] {
            let o = link(&data.records, &config, &keys, &PriorKeys::default());
            eval::print_row(label, &eval::metrics(&o.keys.to_vec(), &data.truth));
        }
        if std::env::var("NIJI_BENCH_DEBUG").is_ok() {
            eval::print_errors(&data, &out.keys.to_vec(), 10);
        }
        println!(
            "linkage: {:.0} records/s ({:.3} s for {} records, best of 3, normalization and HMAC keys included); ID2 hashing: {:.0} records/s",
            data.records.len() as f64 / best,
            best,
            data.records.len(),
            data.records.len() as f64 / id2_time
        );
    }
}
