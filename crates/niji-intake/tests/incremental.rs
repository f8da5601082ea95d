//! Incremental linkage: an intake reads back only the earlier persons its records can reach
//! (`ReadBack::Reached`, the default), and the persons come out as when every earlier record is
//! read back (`ReadBack::Everything`). Two copies of one instance (the same vault keys) take the
//! same submissions, one each way, and every record must be stored under the same key.

use std::collections::HashMap;
use std::path::Path;
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

/// (dataset version, record reference) → the key every record was stored under.
async fn stored_keys(instance: &Instance, tags: &[String]) -> HashMap<(String, String), PersonKey> {
    let (vault, _) = open_vault(instance, "test").await.unwrap();
    let mut stored: Vec<PersonKey> = Vec::new();
    for tag in tags {
        stored.extend(vault.link_records(std::slice::from_ref(tag)).await.unwrap().into_iter().map(|r| r.person));
    }
    stored.sort_unstable();
    stored.dedup();
    let mut out = HashMap::new();
    for key in &stored {
        for r in vault.identities_of(key).await.unwrap() {
            out.insert((r.dataset, r.record_ref), *key);
        }
    }
    vault.close().await;
    out
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &to.join(e.file_name()));
        } else {
            std::fs::copy(e.path(), to.join(e.file_name())).unwrap();
        }
    }
}

/// Two instances with the same keys: one made and closed (its vault keys created), then copied.
async fn twins(a: &Path, b: &Path) -> (Instance, Instance) {
    {
        let first = instance(a).await;
        let (vault, _) = open_vault(&first, "test").await.unwrap();
        vault.close().await;
        first.store.close().await;
    }
    copy_dir(a, b);
    (Instance::open(a).await.unwrap(), Instance::open(b).await.unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reading_back_only_the_persons_reached_links_as_reading_back_everyone() {
    let (dir_a, dir_b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (reached, everything) = twins(dir_a.path(), &dir_b.path().join("instance")).await;
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
        let (ka, kb) = (stored_keys(&reached, &tags).await, stored_keys(&everything, &tags).await);
        assert!(ka.len() > 10, "step {i}");
        assert_eq!(ka, kb, "step {i}");
        println!("step {i} ({dataset}): units held {} reading back the persons reached, {} reading back everyone", r.units_held, e.units_held);
        assert!(r.units_held <= e.units_held, "step {i}");
        held = (r.units_held, e.units_held);
    }
    // The last step (one hospital again) reads back its own patients' persons, not the
    // instance: the claims of everyone else stay sealed.
    assert!(held.0 * 2 < held.1, "{held:?}");
}
