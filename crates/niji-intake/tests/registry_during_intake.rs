//! A citizen's choice is recorded while an intake holds the vault file's write lock (from its
//! linkage's anchors to its commit: minutes for a large submission). The consent registry has a
//! file of its own beside the vault, so the choice and the citizen's subject handle are written
//! at once; while they shared the vault's file they failed after its 10 s busy timeout. Its own
//! test binary because failpoints are process-wide.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

use niji_intake::{ingest, open_vault, NoProgress, OnReject, Outcome};
use niji_privacy::PersonKey;
use niji_vault::NewRegistryEntry;

mod common;
use common::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_choice_is_recorded_while_an_intake_holds_the_vault() {
    let (a, _) = hospitals();
    let dir = tempfile::tempdir().unwrap();
    let instance = instance(&dir.path().join("instance")).await;
    let files = files_under(&synth().join("ndjson").join(&a));
    let scenario = fail::FailScenario::setup();
    // The write phase stops after its first file, the vault batch open, until the test is done.
    let (reached, release) = (mpsc::channel::<()>(), mpsc::channel::<()>());
    let (reached_tx, release_rx) = (Mutex::new(reached.0), Mutex::new(release.1));
    let stopped = AtomicBool::new(false);
    fail::cfg_callback("intake-writing", move || {
        if !stopped.swap(true, Ordering::SeqCst) {
            reached_tx.lock().unwrap().send(()).unwrap();
            release_rx.lock().unwrap().recv().unwrap();
        }
    })
    .unwrap();
    let (reached_rx, release_tx) = (reached.1, release.0);
    let options = options();
    let intake = ingest(&instance, submission("hospital-a", "held", files, OnReject::RefuseSubmission), &options, Arc::new(NoProgress));
    let citizen = async {
        tokio::task::spawn_blocking(move || reached_rx.recv_timeout(Duration::from_secs(120)).expect("the intake reached its write phase"))
            .await
            .unwrap();
        // The premise: the intake holds the vault file's write lock now.
        let vault_file = instance.paths.vault_db();
        let options = sqlx::sqlite::SqliteConnectOptions::new().filename(&vault_file).busy_timeout(Duration::ZERO);
        let mut raw = <sqlx::SqliteConnection as sqlx::Connection>::connect_with(&options).await.unwrap();
        let locked = sqlx::query("BEGIN IMMEDIATE").execute(&mut raw).await;
        assert!(locked.is_err(), "the intake did not hold the vault's write lock");
        let _ = sqlx::Connection::close(raw).await;

        let started = Instant::now();
        let (vault, _) = open_vault(&instance, "citizen:1").await.unwrap();
        let person = PersonKey([42; 32]);
        let handle = vault.subject_of(&person, "handle-42").await.unwrap();
        let entry = NewRegistryEntry { person, recorded_at: 1, decisive: true, body: br#"{"choice":"opt-out"}"# };
        let ids = vault.append_registry_entries(&[entry]).await.unwrap();
        vault.close().await;
        let took = started.elapsed();
        release_tx.send(()).unwrap();
        (handle, ids[0], took)
    };
    let (outcome, (handle, id, took)) = tokio::join!(intake, citizen);
    fail::remove("intake-writing");
    scenario.teardown();
    assert!(matches!(outcome.unwrap(), Outcome::Committed(_)), "the intake commits after the choice");
    // Far below the 10 s the vault file's busy timeout waits.
    assert!(took < Duration::from_secs(5), "the choice waited {took:?} for the intake");
    let (vault, _) = open_vault(&instance, "citizen:1").await.unwrap();
    assert_eq!(vault.person_of_subject(&handle).await.unwrap(), Some(PersonKey([42; 32])));
    assert_eq!(vault.registry_entries_of(&PersonKey([42; 32]), id).await.unwrap()[0].body, br#"{"choice":"opt-out"}"#);
    assert!(!vault.datasets().await.unwrap().is_empty(), "the intake's records are in the vault");
    vault.close().await;
}
