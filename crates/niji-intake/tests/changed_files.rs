//! A file changed between the two passes (validation, then writing) must fail the intake, file
//! by file: pass 2 finds each record's person by counting the records pass 1 met, so a file
//! that lost a Patient while another gained one would otherwise shift records onto other
//! persons' keys with every total still equal. Its own test binary because failpoints are
//! process-wide.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use niji_intake::{ingest, IntakeError, NoProgress, OnReject};

mod common;
use common::*;

/// `lines` as NDJSON, the last line padded with spaces (valid JSON) to `size` bytes.
fn padded(lines: &[&str], size: usize) -> String {
    let mut text = lines.join("\n");
    let room = size.checked_sub(text.len() + 1).expect("room for the lines");
    text.push_str(&" ".repeat(room));
    text.push('\n');
    text
}

/// Rewrites a file keeping its size and modification time.
fn rewrite_in_place(path: &Path, text: &str) {
    let before = std::fs::metadata(path).unwrap();
    assert_eq!(before.len() as usize, text.len());
    std::fs::write(path, text).unwrap();
    std::fs::File::options().write(true).open(path).unwrap().set_modified(before.modified().unwrap()).unwrap();
}

/// A change made to the two files after pass 1.
type Edit = dyn Fn(&PathBuf, &PathBuf) + Send + Sync;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_changed_between_the_passes_fails_the_intake_even_when_totals_match() {
    let (_, b) = hospitals();
    let patients = std::fs::read_to_string(synth().join("ndjson").join(&b).join("Patient.ndjson")).unwrap();
    let lines: Vec<&str> = patients.lines().collect();
    assert!(lines.len() >= 7, "{} patients", lines.len());
    let size = lines[..7].iter().map(|l| l.len() + 1).sum::<usize>() + 16;
    let dir = tempfile::tempdir().unwrap();
    let (first, second) = (dir.path().join("export/a/Patient.ndjson"), dir.path().join("export/b/Patient.ndjson"));
    let write_originals = || {
        for (path, part) in [(&first, &lines[..3]), (&second, &lines[3..6])] {
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, padded(part, size)).unwrap();
        }
    };
    write_originals();
    let instance = instance(&dir.path().join("instance")).await;
    // A first version from the same files, so that the failed ones have a state to leave as it was.
    committed(&instance, submission("hospital-b", "changed", vec![first.clone(), second.clone()], OnReject::RefuseSubmission)).await;
    let before = state(&instance).await;
    let scenario = fail::FailScenario::setup();
    let changed = |edit: Box<Edit>| {
        let (a, b) = (first.clone(), second.clone());
        fail::cfg_callback("intake-after-begin", move || edit(&a, &b)).unwrap();
    };
    let options = options();
    let run = || {
        ingest(
            &instance,
            submission("hospital-b", "changed", vec![first.clone(), second.clone()], OnReject::RefuseSubmission),
            &options,
            Arc::new(NoProgress),
        )
    };
    let expect_changed = |out: Result<niji_intake::Outcome, IntakeError>| match out {
        Err(IntakeError::FileChanged { file }) => assert_eq!(file, "a/Patient.ndjson"),
        other => panic!("expected the first file named as changed, got {other:?}"),
    };

    // After validation the first file loses its last Patient and the second gains one, sizes
    // and times kept: the records' counts tell.
    let (shorter, longer) = (padded(&lines[..2], size), padded(&lines[3..7], size));
    changed(Box::new(move |a, b| {
        rewrite_in_place(a, &shorter);
        rewrite_in_place(b, &longer);
    }));
    expect_changed(run().await);
    fail::remove("intake-after-begin");
    assert_eq!(state(&instance).await, before, "nothing of the intake is left");

    // Two Patients swapped in place: same counts, but the file was written after it was listed.
    write_originals();
    let swapped = padded(&[lines[1], lines[0], lines[2]], size);
    changed(Box::new(move |a, _| std::fs::write(a, &swapped).unwrap()));
    expect_changed(run().await);
    fail::remove("intake-after-begin");
    scenario.teardown();
    assert_eq!(state(&instance).await, before, "nothing of the intake is left");
}
