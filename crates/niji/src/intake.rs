//! `niji ingest` (a holder's submission through `niji-intake`, with a progress bar) and
//! `niji datasets` (the datasets of an instance and their versions, as text or JSON).

use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use anyhow::{bail, Context, Result};
use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};
use niji_ingest::{CsvMapping, Date, IngestConfig};
use niji_instance::Instance;
use niji_intake::{DatasetDescription, IntakeOptions, OnReject, Outcome, Phase, Submission, VersionReport};
use serde::Serialize;

use crate::{check, cli_actor, DirArg};

#[derive(Args)]
pub struct IngestArgs {
    #[command(flatten)]
    dir: DirArg,
    /// The data holder (a registered organization's name).
    #[arg(long)]
    holder: String,
    /// Register the holder organization first, with this kind (hospital, insurer, registry, …).
    #[arg(long, value_name = "KIND")]
    register_holder: Option<String>,
    /// Dataset name (a-z, 0-9, '-'); a new name creates the dataset, an existing one gets a new version.
    #[arg(long)]
    dataset: String,
    /// Files or folders (searched for .json, .ndjson, .uke and .csv files).
    #[arg(required = true)]
    paths: Vec<PathBuf>,
    /// Mapping for CSV files (TOML; see crates/niji-ingest/src/csv_map.rs).
    #[arg(long)]
    mapping: Option<PathBuf>,
    /// Accept the submission without its rejected records (they are listed with the version).
    #[arg(long)]
    quarantine: bool,
    /// Accept FHIR that follows JP Core but not the CLINS-only rules.
    #[arg(long)]
    lenient: bool,
    /// Catalog title (Japanese) of a new dataset.
    #[arg(long)]
    title_ja: Option<String>,
    /// Catalog title (English) of a new dataset.
    #[arg(long)]
    title_en: Option<String>,
    /// Print the result as JSON.
    #[arg(long)]
    json: bool,
}

#[derive(Args)]
pub struct DatasetsArgs {
    #[command(flatten)]
    dir: DirArg,
    /// Print JSON.
    #[arg(long)]
    json: bool,
}

/// Rejected records listed per file before the rest are only counted.
const MAX_LINES_PER_FILE: usize = 20;

/// Returns whether a version was committed.
pub async fn ingest(args: IngestArgs) -> Result<bool> {
    let instance = Instance::open(&args.dir.dir).await.with_context(|| format!("opening the instance in {}", args.dir.dir.display()))?;
    let actor = cli_actor();
    if let Some(kind) = &args.register_holder {
        ensure_holder(&instance, &args.holder, kind, &actor).await?;
    }
    let outcome = run_ingest(&instance, &args, actor, !args.json).await?;
    match outcome {
        Outcome::Committed(report) => {
            if args.json {
                println!("{}", serde_json::to_string_pretty(&IngestJson::committed(&report))?);
            } else {
                print_files(&report.files);
                print_committed(&report);
            }
            Ok(true)
        }
        Outcome::Refused { files, rejected_records } => {
            if args.json {
                println!("{}", serde_json::to_string_pretty(&IngestJson::refused(&files, rejected_records))?);
            } else {
                print_files(&files);
                println!(
                    "Refused: {rejected_records} rejected records; nothing was stored. Correct the files, or pass --quarantine to store the submission without them."
                );
            }
            Ok(false)
        }
    }
}

/// Runs one intake with a progress bar on standard error (when `bar`).
pub(crate) async fn run_ingest(instance: &Instance, args: &IngestArgs, actor: String, bar: bool) -> Result<Outcome> {
    let mut files = Vec::new();
    for p in &args.paths {
        check::collect(p, &mut files).with_context(|| format!("reading {}", p.display()))?;
    }
    files.sort();
    if files.is_empty() {
        bail!("no .json, .ndjson, .uke or .csv files in the given paths");
    }
    let mapping = match &args.mapping {
        Some(p) => Some(
            CsvMapping::from_toml(&std::fs::read_to_string(p).with_context(|| format!("reading {}", p.display()))?)
                .with_context(|| format!("mapping {}", p.display()))?,
        ),
        None => None,
    };
    let description = (args.title_ja.is_some() || args.title_en.is_some()).then(|| DatasetDescription {
        kind: String::new(),
        title_ja: args.title_ja.clone().or(args.title_en.clone()).unwrap_or_default(),
        title_en: args.title_en.clone().or(args.title_ja.clone()).unwrap_or_default(),
        description_ja: String::new(),
        description_en: String::new(),
    });
    let submission = Submission {
        holder: args.holder.clone(),
        dataset: args.dataset.clone(),
        description,
        files,
        csv_mapping: mapping,
        on_reject: if args.quarantine { OnReject::Quarantine } else { OnReject::RefuseSubmission },
        actor,
    };
    let mut ingest = IngestConfig::new(today());
    ingest.clins_strict = !args.lenient;
    let masters_dir = instance.paths.masters();
    let masters = ingest.masters.load_dir(&masters_dir).with_context(|| format!("loading the code masters in {}", masters_dir.display()))?;
    check::print_masters(&masters, bar);
    let options = IntakeOptions::new(ingest);
    let progress: Arc<dyn niji_intake::Progress> = if bar { Arc::new(Bar::default()) } else { Arc::new(niji_intake::NoProgress) };
    Ok(niji_intake::ingest(instance, submission, &options, progress).await?)
}

/// Registers the organization `name` unless it exists (logged).
pub(crate) async fn ensure_holder(instance: &Instance, name: &str, kind: &str, actor: &str) -> Result<()> {
    if instance.store.organization_by_name(name).await?.is_none() {
        let now = time::OffsetDateTime::now_utc();
        let id = instance.store.create_organization(name, kind, now.unix_timestamp()).await?;
        let event =
            niji_core::AuditEvent::new(actor, now, "organization.created", format!("organization:{id}")).with_data(serde_json::json!({"kind": kind}));
        niji_core::AuditSink::record(instance, &event).map_err(|e| anyhow::anyhow!("audit log: {e}"))?;
    }
    Ok(())
}

/// Today in Japan, as the server's intake and review use it.
pub(crate) fn today() -> Date {
    let today = niji_core::today_jst(time::OffsetDateTime::now_utc());
    Date::new(today.year() as u16, today.month() as u8, today.day()).expect("today is a date")
}

fn print_files(files: &[niji_ingest::FileReport]) {
    for report in files {
        if report.rejected_records == 0 {
            continue;
        }
        println!("{}: {} accepted, {} rejected", report.file, report.accepted_total(), report.rejected_records);
        let lines = report.rejected_lines();
        for l in lines.iter().take(MAX_LINES_PER_FILE) {
            println!("  reject   {l}");
        }
        if lines.len() > MAX_LINES_PER_FILE {
            println!("  … and {} more problems", lines.len() - MAX_LINES_PER_FILE);
        }
    }
}

pub(crate) fn print_committed(r: &VersionReport) {
    println!(
        "{} version {} committed in {:.1} s: {} files, {} records accepted, {} quarantined, {} warnings.",
        r.dataset,
        r.number,
        r.seconds,
        r.files.len(),
        r.records_accepted,
        r.records_quarantined,
        r.warnings
    );
    println!(
        "  persons {} (linkage units {}), also in other datasets {} ({:.1}%); coverage {}",
        r.persons,
        r.units,
        r.persons_shared,
        100.0 * r.linkage_rate(),
        r.coverage.as_ref().map(|(a, b)| format!("{a} – {b}")).unwrap_or_else(|| "none".into())
    );
    let tables: Vec<String> = r.tables.iter().filter(|t| t.rows > 0).map(|t| format!("{} {}", t.table_name, t.rows)).collect();
    println!("  rows: {}", tables.join(", "));
}

/// The progress bar: a byte bar while validating, a record bar while writing.
#[derive(Default)]
pub(crate) struct Bar(Mutex<Option<ProgressBar>>);

impl niji_intake::Progress for Bar {
    fn start(&self, phase: Phase, total: Option<u64>) {
        let (bar, template) = match (phase, total) {
            (Phase::Validate, Some(t)) => (ProgressBar::new(t), "validating {bar:30} {bytes}/{total_bytes} {bytes_per_sec} eta {eta}"),
            (Phase::Write, Some(t)) => (ProgressBar::new(t), "writing    {bar:30} {human_pos}/{human_len} records {per_sec} eta {eta}"),
            (Phase::Link, _) => (ProgressBar::new_spinner(), "linking    {spinner} {elapsed}"),
            _ => (ProgressBar::new_spinner(), "committing {spinner} {elapsed}"),
        };
        bar.set_style(ProgressStyle::with_template(template).expect("templates are valid"));
        bar.enable_steady_tick(std::time::Duration::from_millis(200));
        *self.0.lock().expect("progress lock") = Some(bar);
    }
    fn advance(&self, n: u64) {
        if let Some(b) = &*self.0.lock().expect("progress lock") {
            b.inc(n);
        }
    }
    fn finish(&self, _: Phase) {
        if let Some(b) = self.0.lock().expect("progress lock").take() {
            b.finish_and_clear();
        }
    }
}

/// `niji ingest --json`.
#[derive(Serialize)]
struct IngestJson {
    outcome: &'static str,
    dataset: Option<String>,
    version: Option<i64>,
    records_accepted: u64,
    records_rejected: u64,
    persons: Option<u64>,
    persons_shared: Option<u64>,
    problems: Vec<ProblemJson>,
}

#[derive(Serialize)]
struct ProblemJson {
    file: String,
    location: String,
    field: String,
    reason: String,
}

impl IngestJson {
    fn problems(files: &[niji_ingest::FileReport]) -> Vec<ProblemJson> {
        files
            .iter()
            .flat_map(|f| {
                f.rejected.iter().map(|p| ProblemJson {
                    file: f.file.clone(),
                    location: p.location.to_string(),
                    field: p.field.clone(),
                    reason: p.reason.to_string(),
                })
            })
            .collect()
    }
    fn committed(r: &VersionReport) -> Self {
        Self {
            outcome: "committed",
            dataset: Some(r.dataset.clone()),
            version: Some(r.number),
            records_accepted: r.records_accepted,
            records_rejected: r.records_quarantined,
            persons: Some(r.persons),
            persons_shared: Some(r.persons_shared),
            problems: Self::problems(&r.files),
        }
    }
    fn refused(files: &[niji_ingest::FileReport], rejected: u64) -> Self {
        Self {
            outcome: "refused",
            dataset: None,
            version: None,
            records_accepted: files.iter().map(|f| f.accepted_total()).sum(),
            records_rejected: rejected,
            persons: None,
            persons_shared: None,
            problems: Self::problems(files),
        }
    }
}

/// `niji datasets --json`: one element per dataset.
#[derive(Serialize)]
struct DatasetJson {
    name: String,
    holder: String,
    kind: String,
    title_ja: String,
    title_en: String,
    versions: Vec<VersionJson>,
}

#[derive(Serialize)]
struct VersionJson {
    number: i64,
    committed_at: String,
    submitted_by: String,
    files: i64,
    records_accepted: i64,
    records_quarantined: i64,
    warnings: i64,
    persons: i64,
    persons_shared: i64,
    linkage_rate: f64,
    coverage_from: Option<String>,
    coverage_to: Option<String>,
    tables: Vec<TableJson>,
}

#[derive(Serialize)]
struct TableJson {
    name: String,
    rows: i64,
    persons: i64,
}

pub async fn datasets(args: DatasetsArgs) -> Result<()> {
    let store = niji_store::Store::open_sqlite(&niji_instance::InstancePaths::new(&args.dir.dir).metadata_db())
        .await
        .with_context(|| format!("opening the metadata store of {}", args.dir.dir.display()))?;
    let list = niji_intake::list_datasets(&store).await?;
    let json: Vec<DatasetJson> = list
        .into_iter()
        .map(|d| DatasetJson {
            name: d.dataset.name,
            holder: d.holder,
            kind: d.dataset.kind,
            title_ja: d.dataset.title_ja,
            title_en: d.dataset.title_en,
            versions: d
                .versions
                .into_iter()
                .map(|v| {
                    let mut tables: Vec<TableJson> =
                        v.tables.into_iter().map(|t| TableJson { name: t.table_name, rows: t.rows, persons: t.persons }).collect();
                    tables.sort_by_key(|t| niji_lake::TABLES.iter().position(|n| *n == t.name));
                    let r = v.version;
                    VersionJson {
                        number: r.number,
                        committed_at: r
                            .committed_at
                            .and_then(|t| time::OffsetDateTime::from_unix_timestamp(t).ok())
                            .and_then(|t| t.format(&time::format_description::well_known::Rfc3339).ok())
                            .unwrap_or_default(),
                        submitted_by: r.submitted_by,
                        files: r.files,
                        records_accepted: r.records_accepted,
                        records_quarantined: r.records_rejected,
                        warnings: r.warnings,
                        persons: r.persons,
                        persons_shared: r.persons_shared,
                        linkage_rate: if r.persons > 0 { r.persons_shared as f64 / r.persons as f64 } else { 0.0 },
                        coverage_from: r.coverage_from,
                        coverage_to: r.coverage_to,
                        tables,
                    }
                })
                .collect(),
        })
        .collect();
    if args.json {
        println!("{}", serde_json::to_string_pretty(&json)?);
        return Ok(());
    }
    if json.is_empty() {
        println!("No datasets yet: add one with `niji ingest`.");
    }
    for d in &json {
        println!("{} ({}, holder {}): {}", d.name, d.kind, d.holder, d.title_ja);
        for v in &d.versions {
            println!(
                "  v{} {}: {} records, {} quarantined, {} persons, {:.1}% also elsewhere, {} – {}",
                v.number,
                v.committed_at,
                v.records_accepted,
                v.records_quarantined,
                v.persons,
                100.0 * v.linkage_rate,
                v.coverage_from.as_deref().unwrap_or("?"),
                v.coverage_to.as_deref().unwrap_or("?")
            );
        }
    }
    Ok(())
}
