//! Red-team test of the public dashboard (code added since 3492b39): differencing over time.
//!
//! Attack: anyone may fetch the public dashboard. It is recomputed as soon as the set of persons
//! refusing every use changes, and its released counts are exact (NDB preset: no rounding). A
//! visitor who saves the charts before and after one person's opt-out (a relative, a colleague,
//! the holder's clerk who typed the paper form in — anyone who knows *who* opted out and roughly
//! when) subtracts them: every cell that dropped by 1 is a fact about that person — their age
//! band and sex, prefecture, diagnoses, drugs and months of care, and their presence in the
//! dataset. Expected: no released cell of the public dashboard changes by fewer than 10 persons
//! because of one person's choice (e.g. rounding, or a refresh schedule that batches changes).

mod common;
use common::*;

use axum::http::StatusCode;
use niji_accounts::{Accounts, AccountsConfig};
use niji_consent::{Choice, OptOutScope};
use niji_instance::Instance;
use niji_registry::{Author, HolderActor};
use niji_server::{router, AppState, ServerConfig};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use time::OffsetDateTime;

const CHARTS: [&str; 5] = ["age-sex", "prefecture", "diagnoses", "drugs", "monthly"];

fn files_under(dir: &Path) -> Vec<PathBuf> {
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

/// Patient numbers (the `urn:oid:1.2.392.100495.20.3.51.*` identifier) of the synthetic NDJSON.
fn patient_numbers(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    for f in files_under(dir).into_iter().filter(|f| f.file_name().unwrap() == "Patient.ndjson") {
        for line in std::fs::read_to_string(f).unwrap().lines() {
            let v: serde_json::Value = serde_json::from_str(line).unwrap();
            for id in v["identifier"].as_array().into_iter().flatten() {
                if id["system"].as_str().is_some_and(|s| s.starts_with("urn:oid:1.2.392.100495.20.3.51.")) {
                    out.push(id["value"].as_str().unwrap().to_string());
                }
            }
        }
    }
    out
}

/// Label columns → released count, for every chart of the dataset.
async fn snapshot(router: &axum::Router) -> HashMap<(String, String), String> {
    let mut out = HashMap::new();
    for chart in CHARTS {
        let r = send_to(router, get(&format!("/dashboard/ehr/{chart}.csv"), "")).await;
        assert_eq!(r.status, StatusCode::OK, "{chart}: {}", r.body);
        for line in r.body.trim_start_matches('\u{feff}').lines().skip(1) {
            let (labels, count) = line.rsplit_once(',').unwrap();
            out.insert((chart.to_string(), labels.to_string()), count.to_string());
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread")]
async fn one_opt_out_shows_on_the_public_dashboard_as_a_difference_of_one_person() {
    let dir = tempfile::tempdir().unwrap();
    let synth = dir.path().join("synth");
    let mut config = niji_synth::SynthConfig::new(&synth, 1500);
    config.formats = niji_synth::Formats { fhir_bundles: false, fhir_ndjson: true, uke: false, registry_csv: false };
    niji_synth::generate(&config, &mut |_| {}).unwrap();
    let instance = Arc::new(Instance::init(&dir.path().join("i"), "test").await.unwrap());
    instance.store.create_organization("hospital", "hospital", 0).await.unwrap();
    let submission = niji_intake::Submission {
        holder: "hospital".into(),
        dataset: "ehr".into(),
        description: None,
        files: files_under(&synth.join("ndjson")),
        csv_mapping: None,
        on_reject: niji_intake::OnReject::Quarantine,
        actor: "test".into(),
    };
    let options = niji_intake::IntakeOptions::new(niji_ingest::IngestConfig::new(niji_ingest::Date::new(2026, 11, 21).unwrap()));
    niji_intake::ingest(&instance, submission, &options, Arc::new(niji_intake::NoProgress)).await.unwrap();
    let accounts = Arc::new(Accounts::new(instance.store.clone(), instance.audit_sink(), instance.accounts_key(), AccountsConfig::default()));
    let router = router(AppState::new(instance.clone(), accounts, ServerConfig::default()));

    let before = snapshot(&router).await;
    // One person opts out of every use (a paper form the holder records).
    let holder = HolderActor { holder: "hospital".into(), audit: "test".into() };
    let mut recorded = false;
    for number in patient_numbers(&synth.join("ndjson")) {
        let author = Author::Holder { actor: holder.clone(), patient_id: number };
        if niji_registry::record_choice(&instance, &author, Choice::OptOut { scope: OptOutScope::All }, OffsetDateTime::now_utc()).await.is_ok() {
            recorded = true;
            break;
        }
    }
    assert!(recorded, "no patient of the synthetic data found in the vault");
    let after = snapshot(&router).await;

    let mut isolating = Vec::new();
    for (key, was) in &before {
        let (Some(now), Ok(was)) = (after.get(key), was.parse::<u64>()) else { continue };
        let Ok(now) = now.parse::<u64>() else { continue };
        if (1..10).contains(&was.abs_diff(now)) {
            isolating.push(format!("{} {}: {was} → {now}", key.0, key.1));
        }
    }
    assert!(isolating.is_empty(), "the opted-out person's facts, from two public snapshots: {isolating:#?}");
}
