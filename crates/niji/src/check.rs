//! `niji check`: validates data holders' files before submission and prints, per file, what
//! would be accepted and every rejected record as `file:line:field: reason`. Nothing is
//! stored; the reasons never quote a value from the files.

use anyhow::{Context, Result};
use clap::Args;
use niji_ingest::{ingest_path, CsvMapping, Date, IngestConfig, MastersLoaded};
use std::io::IsTerminal;
use std::path::{Path, PathBuf};

#[derive(Args)]
pub struct CheckArgs {
    /// Files or folders (searched for .json, .ndjson, .uke and .csv files).
    #[arg(required = true)]
    paths: Vec<PathBuf>,
    /// Mapping for CSV files (TOML; see crates/niji-ingest/src/csv_map.rs).
    #[arg(long)]
    mapping: Option<PathBuf>,
    /// Accept FHIR that follows JP Core but not the CLINS-only rules (local lab codes,
    /// 標準コードなし markers).
    #[arg(long)]
    lenient: bool,
    /// Print warnings too.
    #[arg(long)]
    warnings: bool,
    /// Check codes against the masters in this folder (files named after their code system,
    /// such as general-drug-name.csv; an instance keeps its own in DIR/masters).
    #[arg(long, value_name = "FOLDER")]
    masters: Option<PathBuf>,
}

/// Says on standard error which code masters were loaded (when `list_loaded`) and which files of
/// the folder were not read as one.
pub(crate) fn print_masters(masters: &MastersLoaded, list_loaded: bool) {
    if list_loaded {
        for (path, master) in &masters.loaded {
            eprintln!("Code master {}: {master}", path.display());
        }
    }
    for path in &masters.ignored {
        eprintln!("warning: {} is not read as a code master: its name names no code system (general-drug-name.csv, yj.csv, …)", path.display());
    }
}

/// Rejected records listed per file before the rest are only counted.
const MAX_LINES_PER_FILE: usize = 20;

/// Returns whether every file was accepted whole.
pub fn run(args: CheckArgs) -> Result<bool> {
    let mapping = match &args.mapping {
        Some(p) => Some(
            CsvMapping::from_toml(&std::fs::read_to_string(p).with_context(|| format!("reading {}", p.display()))?)
                .with_context(|| format!("mapping {}", p.display()))?,
        ),
        None => None,
    };
    let today = time::OffsetDateTime::now_utc().date();
    let mut config = IngestConfig::new(Date::new(today.year() as u16, today.month() as u8, today.day()).expect("today is a date"));
    config.clins_strict = !args.lenient;
    if let Some(dir) = &args.masters {
        if !dir.is_dir() {
            anyhow::bail!("{} is not a folder of code masters", dir.display());
        }
        let masters = config.masters.load_dir(dir).with_context(|| format!("loading the code masters in {}", dir.display()))?;
        print_masters(&masters, true);
    }
    let mut files = Vec::new();
    for p in &args.paths {
        collect(p, &mut files).with_context(|| format!("reading {}", p.display()))?;
    }
    files.sort();
    let (mut accepted, mut rejected, mut failed_files) = (0u64, 0u64, 0usize);
    let progress = files.len() > 20 && std::io::stderr().is_terminal();
    for (i, f) in files.iter().enumerate() {
        if progress {
            eprint!("\r  {}/{} files", i + 1, files.len());
        }
        match ingest_path(f, &config, mapping.as_ref(), &mut |_| {}) {
            Ok(report) => {
                accepted += report.accepted_total();
                rejected += report.rejected_records;
                if report.rejected_records > 0 || (args.warnings && !report.warnings.is_empty()) {
                    eprint!("\r");
                    println!("{}: {} accepted, {} rejected", f.display(), report.accepted_total(), report.rejected_records);
                    let lines = report.rejected_lines();
                    for l in lines.iter().take(MAX_LINES_PER_FILE) {
                        println!("  reject   {l}");
                    }
                    if lines.len() > MAX_LINES_PER_FILE {
                        println!("  … and {} more rejected records", lines.len() - MAX_LINES_PER_FILE);
                    }
                    if args.warnings {
                        for l in report.warning_lines() {
                            println!("  warning  {l}");
                        }
                    }
                }
            }
            Err(e) => {
                failed_files += 1;
                eprint!("\r");
                println!("{}: not read: {e}", f.display());
            }
        }
    }
    if progress {
        eprintln!();
    }
    println!("{} files: {accepted} records accepted, {rejected} rejected, {failed_files} files not read.", files.len());
    Ok(rejected == 0 && failed_files == 0)
}

pub(crate) fn collect(path: &Path, out: &mut Vec<PathBuf>) -> std::io::Result<()> {
    if path.is_dir() {
        for entry in std::fs::read_dir(path)? {
            let p = entry?.path();
            let known =
                p.extension().and_then(|e| e.to_str()).is_some_and(|e| ["json", "ndjson", "uke", "csv"].contains(&e.to_ascii_lowercase().as_str()));
            if p.is_dir() {
                collect(&p, out)?;
            } else if known {
                out.push(p);
            }
        }
    } else {
        out.push(path.to_path_buf());
    }
    Ok(())
}
