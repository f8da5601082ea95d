//! A file changed between the two passes (validation, then writing) must fail the intake, file
//! by file: pass 2 finds each record's person by counting the records pass 1 met, so a file
//! that lost a Patient while another gained one would otherwise shift records onto other
//! persons' keys with every total still equal. Its own test binary because failpoints are
//! process-wide.

use std::sync::Arc;

use niji_intake::{ingest, IntakeError, NoProgress, OnReject};

mod common;
use common::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_changed_between_the_passes_fails_the_intake_even_when_totals_match() {
    let (_, b) = hospitals();
    let patients = std::fs::read_to_string(synth().join("ndjson").join(&b).join("Patient.ndjson")).unwrap();
    let lines: Vec<&str> = patients.lines().collect();
    assert!(lines.len() >= 6, "{} patients", lines.len());
    let dir = tempfile::tempdir().unwrap();
    let (first, second) = (dir.path().join("export/a/Patient.ndjson"), dir.path().join("export/b/Patient.ndjson"));
    for (path, part) in [(&first, &lines[..3]), (&second, &lines[3..6])] {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, part.join("\n") + "\n").unwrap();
    }
    let instance = instance(&dir.path().join("instance")).await;
    // A first version from the same files, so that the failed second one has a state to leave
    // as it was.
    committed(&instance, submission("hospital-b", "changed", vec![first.clone(), second.clone()], OnReject::RefuseSubmission)).await;
    let before = state(&instance).await;

    // After validation: the first file loses its last Patient, the second gains one.
    let scenario = fail::FailScenario::setup();
    let (a, b2) = (first.clone(), second.clone());
    let (shorter, longer) = (lines[..2].join("\n") + "\n", lines[3..7.min(lines.len())].join("\n") + "\n");
    fail::cfg_callback("intake-after-begin", move || {
        std::fs::write(&a, &shorter).unwrap();
        std::fs::write(&b2, &longer).unwrap();
    })
    .unwrap();
    let out =
        ingest(&instance, submission("hospital-b", "changed", vec![first, second], OnReject::RefuseSubmission), &options(), Arc::new(NoProgress))
            .await;
    fail::remove("intake-after-begin");
    scenario.teardown();
    match out {
        Err(IntakeError::FileChanged { file }) => assert_eq!(file, "a/Patient.ndjson"),
        other => panic!("expected the first file named as changed, got {other:?}"),
    }
    assert_eq!(state(&instance).await, before, "nothing of the intake is left");
}
