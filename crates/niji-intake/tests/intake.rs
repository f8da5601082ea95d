//! End-to-end intake on a real instance (SQLite store, vault, encrypted lake, transparency log):
//! synthetic data from two hospitals and an insurer, refused and quarantined submissions, bad
//! requests. Crashes are in `crash.rs` (failpoints are process-wide).

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::sync::Arc;

use niji_ingest::Reason;
use niji_intake::{ingest, list_datasets, open_vault, NoProgress, OnReject, Outcome, Submission};
use niji_privacy::PersonKey;

mod common;
use common::*;

/// (file relative to the synth folder, line or 0 for a Bundle) → true person.
fn truth() -> HashMap<(String, u64), u64> {
    let text = std::fs::read_to_string(synth().join("truth/records.csv")).unwrap();
    text.lines()
        .skip(1)
        .map(|l| {
            let f: Vec<&str> = l.split(',').collect();
            ((f[1].to_string(), f[3].parse().unwrap_or(0)), f[4].parse().unwrap())
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_hospitals_and_an_insurer_link_to_the_same_persons() {
    let dir = tempfile::tempdir().unwrap();
    let instance = instance(dir.path()).await;
    let (a, b) = hospitals();
    let ehr_a =
        committed(&instance, submission("hospital-a", "hospital-a-ehr", files_under(&synth().join("fhir").join(&a)), OnReject::RefuseSubmission))
            .await;
    let ehr_b =
        committed(&instance, submission("hospital-b", "hospital-b-ehr", files_under(&synth().join("ndjson").join(&b)), OnReject::RefuseSubmission))
            .await;
    let claims = committed(&instance, submission("insurer", "insurer-claims", files_under(&synth().join("uke")), OnReject::RefuseSubmission)).await;

    assert_eq!(ehr_a.number, 1);
    assert_eq!(ehr_a.records_quarantined, 0);
    assert!(ehr_a.persons > 5 && ehr_b.persons > 5 && claims.persons > 50, "{} {} {}", ehr_a.persons, ehr_b.persons, claims.persons);
    // Hospitals' patients are also in the claims: the insurer's dataset links to them.
    assert!(claims.persons_shared > 0 && claims.persons_shared <= claims.persons);
    assert!(ehr_b.persons_shared <= ehr_b.persons);
    assert_eq!(claims.tables.iter().find(|t| t.table_name == "claims").unwrap().rows as u64, claims.units);
    // A patient's monthly claims carry one identity: linkage holds it once, next to the units of
    // the two hospitals' versions (one a Patient each).
    let earlier_units = ehr_a.units + ehr_b.units;
    assert!(claims.units_held < earlier_units + claims.units / 2, "{} units held for {} + {}", claims.units_held, earlier_units, claims.units);
    assert!(claims.coverage.is_some() && ehr_a.coverage.is_some());

    // The catalog lists the three datasets with their single committed version.
    let listed = list_datasets(&instance.store).await.unwrap();
    let names: Vec<&str> = listed.iter().map(|d| d.dataset.name.as_str()).collect();
    assert_eq!(names, ["hospital-a-ehr", "hospital-b-ehr", "insurer-claims"]);
    assert_eq!(listed[2].dataset.kind, "claims");
    assert_eq!(listed[0].holder, "hospital-a");
    assert_eq!(listed[2].latest().unwrap().version.persons as u64, claims.persons);

    // Person keys through the real vault: every linkage unit's key against the ground truth.
    let truth = truth();
    let (vault, _) = open_vault(&instance, "test").await.unwrap();
    let mut keys: Vec<PersonKey> = Vec::new();
    for (dataset, n) in [("hospital-a-ehr", 1), ("hospital-b-ehr", 1), ("insurer-claims", 1)] {
        let tag = format!("{dataset}/v{n}");
        let linkable = vault.link_records(&[tag]).await.unwrap();
        if dataset == "insurer-claims" {
            // Later intakes read back one record per distinct identity of the version, not
            // every monthly claim; every person has one.
            assert!(linkable.len() as u64 >= claims.persons && (linkable.len() as u64) < claims.units / 2, "{} of {}", linkable.len(), claims.units);
        }
        keys.extend(linkable.into_iter().map(|r| r.person));
    }
    let keys: HashSet<PersonKey> = keys.into_iter().collect();
    let prefixes = [format!("fhir/{a}/"), format!("ndjson/{b}/"), "uke/".to_string()];
    let mut by_key: Vec<(PersonKey, u64)> = Vec::new();
    for key in &keys {
        for stored in vault.identities_of(key).await.unwrap() {
            let (file, loc) = stored.record_ref.rsplit_once(':').unwrap();
            let prefix = match stored.dataset.as_str() {
                "hospital-a-ehr/v1" => &prefixes[0],
                "hospital-b-ehr/v1" => &prefixes[1],
                _ => &prefixes[2],
            };
            let line = if loc.starts_with("entry") { 0 } else { loc.parse().unwrap() };
            if let Some(&person) = truth.get(&(format!("{prefix}{file}"), line)) {
                by_key.push((*key, person));
            }
        }
    }
    vault.close().await;
    assert!(by_key.len() > 300, "{} units matched to the truth", by_key.len());
    let (precision, recall) = pair_metrics(&by_key);
    println!("intake linkage over vault: {} units, precision {precision:.4}, recall {recall:.4}", by_key.len());
    assert!(precision >= 0.995 && recall >= 0.99, "precision {precision} recall {recall}");

    // Lake: readable with the version's key only through the instance; claims keyed by the
    // same person keys as the vault.
    let key = instance.data_key("lake:insurer-claims/v1", "test").await.unwrap();
    let batches = niji_lake::read_table(&instance.paths.lake().join("insurer-claims/v1"), "claims", &niji_lake::LakeKey(key.0)).unwrap();
    let rows: usize = batches.iter().map(|b| b.num_rows()).sum();
    assert_eq!(rows as u64, claims.units);
    // Ages at each event, from the birth dates only the vault holds: present and plausible.
    let age_index = batches[0].schema().index_of("age").unwrap();
    let ages: Vec<i32> = batches
        .iter()
        .flat_map(|b| {
            let a = b.column(age_index).as_any().downcast_ref::<arrow_array::Int32Array>().unwrap().clone();
            a.iter().flatten().collect::<Vec<_>>()
        })
        .collect();
    assert_eq!(ages.len(), rows, "every claim has an age");
    assert!(ages.iter().all(|a| (0..=110).contains(a)), "{ages:?}");

    // A second version of a dataset keeps the persons' keys.
    let again = committed(&instance, submission("insurer", "insurer-claims", files_under(&synth().join("uke")), OnReject::RefuseSubmission)).await;
    assert_eq!(again.number, 2);
    assert_eq!(again.rekeyed_units, 0);
    assert_eq!(again.persons, claims.persons);
    // Linked against the first version's one record per identity, the same records get the
    // same keys.
    let (vault, _) = open_vault(&instance, "test").await.unwrap();
    let keys_of = |tag: &'static str| {
        let vault = &vault;
        async move { vault.link_records(&[tag.to_string()]).await.unwrap().into_iter().map(|r| r.person).collect::<Vec<_>>() }
    };
    let (first, second) = (keys_of("insurer-claims/v1").await, keys_of("insurer-claims/v2").await);
    assert!(!first.is_empty());
    assert_eq!(first, second);
    vault.close().await;
}

/// Pairwise precision and recall of predicted keys against true persons.
fn pair_metrics(units: &[(PersonKey, u64)]) -> (f64, f64) {
    let mut by_pair: HashMap<(PersonKey, u64), u64> = HashMap::new();
    let mut by_key: HashMap<PersonKey, u64> = HashMap::new();
    let mut by_person: HashMap<u64, u64> = HashMap::new();
    for &(k, p) in units {
        *by_pair.entry((k, p)).or_default() += 1;
        *by_key.entry(k).or_default() += 1;
        *by_person.entry(p).or_default() += 1;
    }
    let pairs = |n: u64| n * n.saturating_sub(1) / 2;
    let tp: u64 = by_pair.values().map(|&n| pairs(n)).sum();
    let predicted: u64 = by_key.values().map(|&n| pairs(n)).sum();
    let actual: u64 = by_person.values().map(|&n| pairs(n)).sum();
    (tp as f64 / predicted.max(1) as f64, tp as f64 / actual.max(1) as f64)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rejected_record_refuses_the_whole_submission_and_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let instance = instance(dir.path()).await;
    let (a, _) = hospitals();
    committed(&instance, submission("hospital-a", "hospital-a-ehr", files_under(&synth().join("fhir").join(&a)), OnReject::RefuseSubmission)).await;
    let before = state(&instance).await;
    let log_before = instance.log().size();

    // A good Bundle of hospital A, and a CLINS example that must be rejected.
    let mut files = files_under(&synth().join("fhir").join(&a));
    files.truncate(3);
    let bad = PathBuf::from(SHARED).join("clins/MedicationRequest-ErrorExample-JP-MedReq-ExtEye-Total1.json");
    files.push(bad);
    let out =
        ingest(&instance, submission("hospital-a", "hospital-a-ehr", files.clone(), OnReject::RefuseSubmission), &options(), Arc::new(NoProgress))
            .await
            .unwrap();
    let Outcome::Refused { files: reports, rejected_records } = out else { panic!("accepted a submission with a rejected record") };
    assert!(rejected_records >= 1);
    let lines: Vec<String> = reports.iter().flat_map(|r| r.rejected_lines()).collect();
    assert!(lines.iter().any(|l| l.ends_with("/clins/MedicationRequest-ErrorExample-JP-MedReq-ExtEye-Total1.json:entry 0:MedicationRequest.medicationCodeableConcept.coding: JP_MedicationRequest_eCS needs a YJ code, a 一般名処方コード or the 標準コードなし marker")), "{lines:?}");
    assert_eq!(state(&instance).await, before, "a refused submission changed the instance");
    assert_eq!(instance.log().size(), log_before + 1, "the refusal is logged, nothing else");

    // The same files, quarantine accepted: a version without the rejected records. With a
    // 一般名処方マスタ loaded, the version's log entry names it and its count of codes.
    let mut with_master = options();
    with_master.ingest.masters.insert(niji_ingest::CodeSystem::GeneralDrugName, "1124030F2ZZZ");
    let out =
        ingest(&instance, submission("hospital-a", "hospital-a-ehr", files, OnReject::Quarantine), &with_master, Arc::new(NoProgress)).await.unwrap();
    let log = niji_log::LogReader::open(&instance.paths.log()).unwrap();
    let last: serde_json::Value = serde_json::from_slice(&log.entry(log.size() - 1).unwrap()).unwrap();
    assert_eq!(last["action"], "dataset.version.committed");
    assert_eq!(last["data"]["masters"], serde_json::json!({"GeneralDrugName": 1}));
    let Outcome::Committed(report) = out else { panic!("quarantine refused") };
    assert_eq!(report.number, 2);
    assert_eq!(report.records_quarantined, rejected_records);
    let listed = list_datasets(&instance.store).await.unwrap();
    let v2 = &listed[0].versions[1].version;
    assert_eq!(v2.records_rejected as u64, rejected_records);
    let problems = instance.store.dataset_version_problems(v2.id, 100).await.unwrap();
    assert!(
        problems.iter().any(|p| p.severity == "error" && p.file.ends_with("MedicationRequest-ErrorExample-JP-MedReq-ExtEye-Total1.json")),
        "{problems:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resources_whose_patient_is_not_submitted_are_rejected_with_their_line() {
    let dir = tempfile::tempdir().unwrap();
    let instance = instance(dir.path()).await;
    let (_, b) = hospitals();
    // Conditions without the Patient file.
    let files = vec![synth().join("ndjson").join(&b).join("Condition.ndjson")];
    let out = ingest(&instance, submission("hospital-b", "conditions-only", files, OnReject::RefuseSubmission), &options(), Arc::new(NoProgress))
        .await
        .unwrap();
    let Outcome::Refused { files, rejected_records } = out else { panic!("accepted orphans") };
    let conditions = std::fs::read_to_string(synth().join("ndjson").join(&b).join("Condition.ndjson")).unwrap().lines().count() as u64;
    assert_eq!(rejected_records, conditions);
    assert_eq!(files[0].rejected[0].reason, Reason::UnresolvedSubject);
    assert_eq!(
        files[0].format(&files[0].rejected[0]),
        "Condition.ndjson:1:Condition.subject: subject does not refer to a Patient of this submission"
    );
    assert!(list_datasets(&instance.store).await.unwrap().is_empty(), "a refused first submission creates no dataset");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_requests_are_refused_before_anything_happens() {
    let dir = tempfile::tempdir().unwrap();
    let instance = instance(dir.path()).await;
    let (a, _) = hospitals();
    let files = files_under(&synth().join("fhir").join(&a));
    let check = |s: Submission, expected: &'static str| {
        let instance = &instance;
        async move {
            let e = ingest(instance, s, &options(), Arc::new(NoProgress)).await.unwrap_err();
            assert!(e.to_string().ends_with(expected), "{e} does not end with {expected}");
        }
    };
    check(
        submission("hospital-a", "Bad Name", files.clone(), OnReject::RefuseSubmission),
        "dataset name must be 1-64 characters of a-z, 0-9 and '-', starting with a letter or digit",
    )
    .await;
    check(submission("nobody", "x", files.clone(), OnReject::RefuseSubmission), "organization \"nobody\" is not registered").await;
    check(submission("hospital-a", "x", vec![], OnReject::RefuseSubmission), "no files given").await;
    check(
        submission("hospital-a", "x", vec![PathBuf::from(SHARED).join("README.md")], OnReject::RefuseSubmission),
        "README.md: unknown file format (expected .json, .ndjson, .uke or .csv)",
    )
    .await;
    committed(&instance, submission("hospital-a", "owned", files.clone(), OnReject::RefuseSubmission)).await;
    check(submission("hospital-b", "owned", files, OnReject::RefuseSubmission), "dataset \"owned\" belongs to another holder").await;
}
