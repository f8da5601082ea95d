//! Crashes at each step of writing a version (failpoints that panic, leaving the state a killed
//! process would leave), then a restart: recovery must leave no trace of the version. Its own
//! test binary because failpoints are process-wide.

use std::sync::Arc;

use niji_instance::Instance;
use niji_intake::{ingest, list_datasets, recover, IntakeError, NoProgress, OnReject, Outcome};

mod common;
use common::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crash_at_any_step_leaves_no_partial_version() {
    let (a, _) = hospitals();
    let files = files_under(&synth().join("fhir").join(&a));
    let scenario = fail::FailScenario::setup();
    for point in ["intake-after-begin", "intake-writing", "intake-after-vault-commit", "intake-after-lake-commit"] {
        let dir = tempfile::tempdir().unwrap();
        let instance = Arc::new(instance(dir.path()).await);
        committed(&instance, submission("hospital-a", "first", files.clone(), OnReject::RefuseSubmission)).await;
        let before = state(&instance).await;
        fail::cfg(point, "panic").unwrap();
        let crashed = {
            let instance = instance.clone();
            let files = files.clone();
            tokio::spawn(async move {
                ingest(&instance, submission("hospital-a", "second", files, OnReject::RefuseSubmission), &options(), Arc::new(NoProgress)).await
            })
            .await
        };
        fail::remove(point);
        assert!(crashed.is_err(), "{point}: the intake did not crash");
        let Ok(instance) = Arc::try_unwrap(instance) else { panic!("instance still shared") };
        drop(instance);

        // Restart: reopen the instance, recover.
        let instance = Instance::open(dir.path()).await.unwrap();
        let undone = recover(&instance, "test").await.unwrap();
        assert_eq!(undone, 1, "{point}");
        let after = state(&instance).await;
        // The dataset row of "second" may remain (without versions); nothing else may.
        assert_eq!((after.0, &after.1, &after.2), (before.0, &before.1, &before.2), "{point}: leftovers after recovery");
        let report = committed(&instance, submission("hospital-a", "second", files.clone(), OnReject::RefuseSubmission)).await;
        assert_eq!(report.number, 1, "{point}");
    }
    // A crash after the metadata commit but before the log entry: recovery writes the entry.
    let dir = tempfile::tempdir().unwrap();
    let instance = Arc::new(instance(dir.path()).await);
    fail::cfg("intake-after-metadata-commit", "panic").unwrap();
    let crashed = {
        let instance = instance.clone();
        let files = files.clone();
        tokio::spawn(async move {
            ingest(&instance, submission("hospital-a", "first", files, OnReject::RefuseSubmission), &options(), Arc::new(NoProgress)).await
        })
        .await
    };
    fail::remove("intake-after-metadata-commit");
    assert!(crashed.is_err());
    let Ok(instance) = Arc::try_unwrap(instance) else { panic!("instance still shared") };
    drop(instance);
    let instance = Instance::open(dir.path()).await.unwrap();
    let size = instance.log().size();
    assert_eq!(recover(&instance, "test").await.unwrap(), 0);
    assert_eq!(instance.log().size(), size + 1, "the committed version's entry is appended on recovery");
    let listed = list_datasets(&instance.store).await.unwrap();
    assert_eq!(listed[0].versions.len(), 1);
    assert!(listed[0].versions[0].version.log_index.is_some());
    scenario.teardown();
}

/// A scratch file that fails (a full disk when units go out, a read error when they or the
/// persons' keys come back),
/// or the vault failing while linkage's anchors or the bucket rows stream into the batch (a
/// chunk not stored), fails the intake with that error and changes nothing: linkage made from
/// units that did not come back is never used, and a producer whose chunks have nowhere to go
/// runs to its end. The next intake goes through.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_scratch_file_or_vault_fails_the_intake_and_changes_nothing() {
    // The claims of 400 persons: a few hundred units, many scratch pages when none is held. The
    // second version reads the first's persons back: its index update retires rows first.
    let files = files_under(&synth().join("uke"));
    let scenario = fail::FailScenario::setup();
    let dir = tempfile::tempdir().unwrap();
    let instance = instance(dir.path()).await;
    committed(&instance, submission("insurer", "claims", files.clone(), OnReject::RefuseSubmission)).await;
    let before = state(&instance).await;
    let mut opts = options();
    opts.units_held_bytes = 0;
    let io: fn(&IntakeError) -> bool = |e| matches!(e, IntakeError::Io(_));
    let vault: fn(&IntakeError) -> bool = |e| matches!(e, IntakeError::Vault(_));
    for (point, says, kind) in [
        ("intake-scratch-write", "no space left", io),
        ("intake-scratch-read", "could not be read", io),
        // The units of the first version's persons, read back from the vault (reaching,
        // bucketing and adding them to the run read their pages).
        ("intake-read-back-write", "no space left", io),
        ("intake-read-back-read", "could not be read", io),
        // Linkage handing a cluster's key to its page; the clusters' keys read back to number
        // the persons; the persons' keys read back after linkage and for the bucket rows, and
        // in pass 2.
        ("intake-cluster-keys-write", "key could not be written", io),
        ("intake-cluster-keys-read", "key could not be read", io),
        ("intake-person-keys-read", "key could not be read", io),
        ("intake-bucket-keys-read", "key could not be read", io),
        ("intake-pass2-keys-read", "key could not be read", io),
        // Each unit's person number and dates sealed for pass 2, and read back there.
        ("intake-units-sealing", "person and dates could not be written", io),
        ("intake-pass2-units-read", "person and dates could not be read", io),
        ("intake-storing-anchors", "anchors not stored", vault),
        ("intake-storing-buckets", "bucket rows not stored", vault),
    ] {
        let failed = failing_intake(&instance, &files, &opts, point).await;
        assert!(kind(&failed) && failed.to_string().contains(says), "{point}: {failed}");
        assert_eq!(state(&instance).await, before, "{point}: the failed intake left something");
    }
    let report =
        match ingest(&instance, submission("insurer", "claims", files, OnReject::RefuseSubmission), &opts, Arc::new(NoProgress)).await.unwrap() {
            Outcome::Committed(r) => r,
            Outcome::Refused { .. } => panic!("refused"),
        };
    assert_eq!(report.number, 2);
    scenario.teardown();
}

/// An intake of the insurer's claims with failpoint `point` returning its error: the error.
async fn failing_intake(instance: &Instance, files: &[std::path::PathBuf], options: &niji_intake::IntakeOptions, point: &str) -> IntakeError {
    fail::cfg(point, "return").unwrap();
    let failed = ingest(instance, submission("insurer", "claims", files.to_vec(), OnReject::RefuseSubmission), options, Arc::new(NoProgress)).await;
    fail::remove(point);
    match failed {
        Err(e) => e,
        Ok(_) => panic!("{point}: the intake did not fail"),
    }
}
