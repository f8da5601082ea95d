//! Helpers shared by the intake tests: a synthetic population generated once per test binary,
//! instances with the three demo holders, submissions and snapshots of an instance's state.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::sync::Arc;

use niji_ingest::{Date, IngestConfig};
use niji_instance::Instance;
use niji_intake::{ingest, list_datasets, open_vault, IntakeOptions, NoProgress, OnReject, Outcome, Submission, VersionReport};

pub const SHARED: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../../shared/datasets");

pub fn options() -> IntakeOptions {
    let mut ingest = IngestConfig::new(Date::new(2026, 11, 21).unwrap());
    // `niji synth` writes CLINS-conformant lab and drug codings; keep the strict rules.
    ingest.clins_strict = true;
    IntakeOptions::new(ingest)
}

pub fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.push(p);
            }
        }
    }
    out.sort();
    out
}

/// The synthetic population shared by the tests of this file (generated once).
pub fn synth() -> &'static Path {
    static DIR: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    DIR.get_or_init(|| {
        let dir = niji_testkit::process_temp_dir("niji-intake-synth");
        niji_synth::generate(&niji_synth::SynthConfig::new(&dir, 400), &mut |_| {}).unwrap();
        dir
    })
}

/// The two facilities with the most Bundles: "hospital A" and "hospital B".
pub fn hospitals() -> (String, String) {
    let mut by_size: Vec<(usize, String)> = std::fs::read_dir(synth().join("fhir"))
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            (std::fs::read_dir(e.path()).unwrap().count(), e.file_name().to_string_lossy().into_owned())
        })
        .collect();
    by_size.sort_by(|a, b| b.cmp(a));
    (by_size[0].1.clone(), by_size[1].1.clone())
}

pub async fn instance(dir: &Path) -> Instance {
    let instance = Instance::init(dir, "test").await.unwrap();
    for (name, kind) in [("hospital-a", "hospital"), ("hospital-b", "hospital"), ("insurer", "insurer")] {
        instance.store.create_organization(name, kind, 0).await.unwrap();
    }
    instance
}

pub fn submission(holder: &str, dataset: &str, files: Vec<PathBuf>, on_reject: OnReject) -> Submission {
    Submission { holder: holder.into(), dataset: dataset.into(), description: None, files, csv_mapping: None, on_reject, actor: "user:1".into() }
}

pub async fn committed(instance: &Instance, s: Submission) -> VersionReport {
    match ingest(instance, s, &options(), Arc::new(NoProgress)).await.unwrap() {
        Outcome::Committed(r) => *r,
        Outcome::Refused { files, .. } => panic!("refused: {:?}", files.iter().flat_map(|f| f.rejected_lines()).take(5).collect::<Vec<_>>()),
    }
}

/// Everything of an instance that an intake may change, for before/after comparisons.
pub async fn state(instance: &Instance) -> (usize, Vec<String>, Vec<(String, u64)>, Vec<String>) {
    let datasets = list_datasets(&instance.store).await.unwrap();
    let versions = datasets.iter().map(|d| d.versions.len()).sum();
    let lake = if instance.paths.lake().exists() {
        files_under(&instance.paths.lake()).into_iter().filter(|p| !p.ends_with("INTAKE.lock")).map(|p| p.display().to_string()).collect()
    } else {
        Vec::new()
    };
    let (vault, _) = open_vault(instance, "test").await.unwrap();
    let counts = vault.datasets().await.unwrap();
    vault.close().await;
    let names = datasets.iter().map(|d| d.dataset.name.clone()).collect();
    (versions, lake, counts, names)
}
