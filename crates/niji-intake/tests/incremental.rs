//! Incremental linkage: an intake reads back only the earlier persons its records can reach
//! (`ReadBack::Reached`, the default), and the persons come out as when every earlier record is
//! read back (`ReadBack::Everything`). Two instances take the same submissions, one each way;
//! their vault keys differ, so the persons are compared as partitions of the records.

use std::collections::HashMap;
use std::sync::Arc;

use niji_instance::Instance;
use niji_intake::{ingest, open_vault, NoProgress, OnReject, Outcome, ReadBack, Submission, VersionReport};
use niji_privacy::PersonKey;

mod common;
use common::*;

async fn committed_reading(instance: &Instance, s: Submission, read_back: ReadBack) -> VersionReport {
    let mut opts = options();
    opts.read_back = read_back;
    match ingest(instance, s, &opts, Arc::new(NoProgress)).await.unwrap() {
        Outcome::Committed(r) => *r,
        Outcome::Refused { .. } => panic!("refused"),
    }
}

/// (dataset version, record reference) → the current key of the person of every record.
async fn persons(instance: &Instance, tags: &[String]) -> HashMap<(String, String), PersonKey> {
    let (vault, _) = open_vault(instance, "test").await.unwrap();
    let mut stored: Vec<PersonKey> = Vec::new();
    for tag in tags {
        stored.extend(vault.link_records(std::slice::from_ref(tag)).await.unwrap().into_iter().map(|r| r.person));
    }
    stored.sort_unstable();
    stored.dedup();
    let current = vault.current_keys(&stored).await.unwrap();
    let mut out = HashMap::new();
    for (key, now) in stored.iter().zip(current) {
        for r in vault.identities_of(key).await.unwrap() {
            out.insert((r.dataset, r.record_ref), now);
        }
    }
    vault.close().await;
    out
}

/// Whether two keyings of the same records make the same partition.
fn same_partition(a: &HashMap<(String, String), PersonKey>, b: &HashMap<(String, String), PersonKey>) -> Result<(), String> {
    if a.len() != b.len() {
        return Err(format!("{} records against {}", a.len(), b.len()));
    }
    let (mut ab, mut ba) = (HashMap::new(), HashMap::new());
    for (record, ka) in a {
        let kb = b.get(record).ok_or_else(|| format!("{record:?} missing"))?;
        if *ab.entry(*ka).or_insert(*kb) != *kb || *ba.entry(*kb).or_insert(*ka) != *ka {
            return Err(format!("{record:?} is with other records"));
        }
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reading_back_only_the_persons_reached_links_as_reading_back_everyone() {
    let (dir_a, dir_b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (reached, everything) = (instance(dir_a.path()).await, instance(dir_b.path()).await);
    let (a, b) = hospitals();
    let fhir_a = files_under(&synth().join("fhir").join(&a));
    let ndjson_b = files_under(&synth().join("ndjson").join(&b));
    let uke = files_under(&synth().join("uke"));
    // The claims split in two halves by file, then the first hospital again: later runs meet
    // persons known from one, two or three earlier versions.
    let (uke_1, uke_2) = uke.split_at(uke.len() / 2);
    let steps: Vec<(&str, &str, Vec<std::path::PathBuf>)> = vec![
        ("hospital-a", "hospital-a-ehr", fhir_a.clone()),
        ("insurer", "insurer-claims", uke_1.to_vec()),
        ("hospital-b", "hospital-b-ehr", ndjson_b),
        ("insurer", "insurer-claims", uke_2.to_vec()),
        ("hospital-a", "hospital-a-ehr", fhir_a),
    ];
    assert!(!uke_1.is_empty() && !uke_2.is_empty());
    let mut tags = Vec::new();
    let mut held = (0, 0);
    for (i, (holder, dataset, files)) in steps.into_iter().enumerate() {
        let r = committed_reading(&reached, submission(holder, dataset, files.clone(), OnReject::RefuseSubmission), ReadBack::Reached).await;
        let e = committed_reading(&everything, submission(holder, dataset, files, OnReject::RefuseSubmission), ReadBack::Everything).await;
        assert_eq!((r.number, r.persons, r.persons_shared), (e.number, e.persons, e.persons_shared), "step {i}");
        tags.push(format!("{dataset}/v{}", r.number));
        let (pa, pb) = (persons(&reached, &tags).await, persons(&everything, &tags).await);
        if let Err(e) = same_partition(&pa, &pb) {
            panic!("step {i}: {e}");
        }
        println!("step {i} ({dataset}): units held {} reading back the persons reached, {} reading back everyone", r.units_held, e.units_held);
        assert!(r.units_held <= e.units_held, "step {i}");
        held = (r.units_held, e.units_held);
    }
    // The last step (one hospital again) reads back its own patients' persons, not the
    // instance: the claims of everyone else stay sealed.
    assert!(held.0 * 2 < held.1, "{held:?}");
}
