//! What one read of the registry costs: `exclusions` (every real and dummy query), the public
//! dashboard's `refusing_everything` and the public register's `opt_out_counts`, per call, over
//! an instance of `NIJI_BENCH_PERSONS` (default 5,000) patients of one holder, every one of them
//! with a notice and most with a decisive choice (recorded through the public `import_choices`).
//!
//! `cargo bench -p niji-registry --bench registry`
//!
//! Each function is called once cold (the first read after the last entry) and then
//! `NIJI_BENCH_CALLS` times (default 50) with the registry unchanged; then one entry is appended
//! and the next call is timed again (the first read after a change).

use std::cell::Cell;
use std::fmt::Write as _;
use std::sync::Arc;
use std::time::{Duration, Instant};

use niji_consent::{Choice, OptOutScope, Use};
use niji_instance::Instance;
use niji_registry::{Author, HolderActor};
use niji_review::{PurposeCategory, RecipientKind};
use time::OffsetDateTime;

const HOLDER: &str = "ベンチ病院";

fn env(name: &str, default: usize) -> usize {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

fn main() {
    let persons = env("NIJI_BENCH_PERSONS", 5_000);
    let calls = env("NIJI_BENCH_CALLS", 50).max(1);
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    rt.block_on(run(persons, calls));
}

async fn run(persons: usize, calls: usize) {
    let tmp = tempfile::tempdir().unwrap();
    let started = Instant::now();
    let instance = setup(tmp.path(), persons).await;
    println!("set-up: {persons} persons, registry version {} ({:.1?})", version(&instance).await, started.elapsed());

    let now = OffsetDateTime::now_utc();
    let use_ = Use { purpose: PurposeCategory::DrugAndDeviceDevelopment, recipients: vec![RecipientKind::Company], diseases: vec![], at: now };
    let (excluded, refusing, counted) = (Cell::new(0), Cell::new(0), Cell::new(0));
    let mut next = (100_001 + persons.saturating_sub(100)) as u64;
    let (i, u, e, r, c) = (&instance, &use_, &excluded, &refusing, &counted);
    let exclusions = time_calls(i, &mut next, calls, move || async move {
        e.set(niji_registry::exclusions(i, u).await.unwrap().0.len());
    })
    .await;
    let dashboard = time_calls(i, &mut next, calls, move || async move {
        r.set(niji_registry::refusing_everything(i, now).await.unwrap().len());
    })
    .await;
    let register = time_calls(i, &mut next, calls, move || async move {
        c.set(niji_registry::opt_out_counts(i, now).await.unwrap()[0].2);
    })
    .await;
    let (excluded, refusing, counted) = (excluded.get(), refusing.get(), counted.get());
    println!("answers: exclusions {excluded}, refusing_everything {refusing}, opt_out_counts refused {counted}");
    let mut table = String::new();
    writeln!(table, "{:<22} {:>12} {:>14} {:>18}", "function", "first call", "per call", "first after entry").unwrap();
    for (name, (first, per, after)) in [("exclusions", exclusions), ("refusing_everything", dashboard), ("opt_out_counts", register)] {
        writeln!(table, "{name:<22} {:>12} {:>14} {:>18}", ms(first), ms(per), ms(after)).unwrap();
    }
    print!("{table}");
    drop(instance);
    drop(tmp);
}

/// (first call, mean of the next `calls`, first call after one more decisive entry).
async fn time_calls<F, Fut>(instance: &Instance, next: &mut u64, calls: usize, mut f: F) -> (Duration, Duration, Duration)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    let t = Instant::now();
    f().await;
    let first = t.elapsed();
    let t = Instant::now();
    for _ in 0..calls {
        f().await;
    }
    let per = t.elapsed() / calls as u32;
    // One more decisive entry, for a patient without one.
    let author = Author::Holder { actor: holder(), patient_id: format!("{next}") };
    niji_registry::record_choice(instance, &author, Choice::OptOut { scope: OptOutScope::All }, OffsetDateTime::now_utc()).await.unwrap();
    *next += 1;
    let t = Instant::now();
    f().await;
    (first, per, t.elapsed())
}

fn ms(d: Duration) -> String {
    format!("{:.3} ms", d.as_secs_f64() * 1e3)
}

fn holder() -> HolderActor {
    HolderActor { holder: HOLDER.into(), audit: "bench".into() }
}

async fn version(instance: &Instance) -> i64 {
    let use_ = Use { purpose: PurposeCategory::PublicHealthPolicy, recipients: vec![], diseases: vec![], at: OffsetDateTime::now_utc() };
    niji_registry::exclusions(instance, &use_).await.unwrap().1
}

/// An instance with `persons` patients (numbers 100001…) and their choices: every patient a
/// notice; one in four an opt-out of all uses, one in four of a purpose, one in four of a kind of
/// recipient; the last 100 patients no decisive choice (for `append_one`).
async fn setup(dir: &std::path::Path, persons: usize) -> Instance {
    let root = dir.join("i");
    let instance = Instance::init(&root, "bench").await.unwrap();
    instance.store.create_organization(HOLDER, "hospital", 0).await.unwrap();
    let files = dir.join("export");
    std::fs::create_dir_all(&files).unwrap();
    let mut ndjson = String::new();
    for i in 0..persons {
        let number = 100_001 + i;
        writeln!(
            ndjson,
            r#"{{"resourceType":"Patient","id":"p{i}","identifier":[{{"system":"urn:oid:1.2.392.100495.20.3.51.11234567890","value":"{number}"}}],"name":[{{"text":"患者 {i}"}}],"gender":"{}","birthDate":"19{:02}-0{}-1{}"}}"#,
            if i % 2 == 0 { "male" } else { "female" },
            i % 90 + 10,
            i % 9 + 1,
            i % 10,
        )
        .unwrap();
    }
    std::fs::write(files.join("Patient.ndjson"), ndjson).unwrap();
    let submission = niji_intake::Submission {
        holder: HOLDER.into(),
        dataset: "bench-ehr".into(),
        description: None,
        files: vec![files.join("Patient.ndjson")],
        csv_mapping: None,
        on_reject: niji_intake::OnReject::RefuseSubmission,
        actor: "user:1".into(),
    };
    let options = niji_intake::IntakeOptions::new(niji_ingest::IngestConfig::new(niji_ingest::Date::new(2026, 11, 21).unwrap()));
    match niji_intake::ingest(&instance, submission, &options, Arc::new(niji_intake::NoProgress)).await.unwrap() {
        niji_intake::Outcome::Committed(_) => {}
        niji_intake::Outcome::Refused { .. } => panic!("refused"),
    }
    let decided = persons.saturating_sub(100);
    let mut csv = String::from("patient_id,choice,scope,date\n");
    for i in 0..persons {
        writeln!(csv, "{},notice,,2026-04-01", 100_001 + i).unwrap();
    }
    for i in 0..decided {
        let scope = match i % 4 {
            0 => "all",
            1 => "purpose:drug_and_device_development",
            2 => "recipient:company",
            _ => continue,
        };
        writeln!(csv, "{},opt_out,{scope},", 100_001 + i).unwrap();
    }
    niji_registry::import_choices(&instance, &holder(), csv.as_bytes(), OffsetDateTime::now_utc()).await.unwrap();
    instance
}
