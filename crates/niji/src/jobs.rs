//! `niji job …` and `niji release get`: jobs of permits on the real data (submitted, listed,
//! signed off by two output checkers), the permits' stops (runs stopped by limits, cleared by an
//! output checker) and the download of a release, on the server's shell.

use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use clap::{Args, Subcommand};
use niji_analysis::jobs::{JobView, SignOff};
use serde_json::{json, Value};

use crate::{open, DirArg};

#[derive(Subcommand)]
pub enum JobCommand {
    /// Submit a job: named SQL outputs run on the real data and checked; prints the checked tables (never raw results).
    Submit {
        #[command(flatten)]
        dir: DirArg,
        #[arg(long)]
        permit: i64,
        /// The researcher submitting it (user name; must be named on the permit).
        #[arg(long = "as")]
        as_user: String,
        /// An output: NAME=SQL (repeat for several outputs).
        #[arg(long = "output", required = true)]
        outputs: Vec<String>,
        #[arg(long)]
        json: bool,
    },
    /// List jobs with their status, outputs and sign-offs.
    List {
        #[command(flatten)]
        dir: DirArg,
        #[arg(long)]
        json: bool,
    },
    /// An output checker approves or rejects a job awaiting review; the second approval releases it.
    #[command(group(clap::ArgGroup::new("verdict").required(true).args(["approve", "reject"])))]
    SignOff {
        #[command(flatten)]
        dir: DirArg,
        #[arg(long)]
        job: i64,
        /// The output checker (user name).
        #[arg(long = "as")]
        as_user: String,
        #[arg(long)]
        approve: bool,
        /// Reject with a reason code (lower-case letters, digits, '_'), e.g. disclosive.
        #[arg(long)]
        reject: Option<String>,
    },
    /// A permit's runs on real data that limits stopped (time, memory, a failure), and how many are left.
    Stops {
        #[command(flatten)]
        dir: DirArg,
        #[arg(long)]
        permit: i64,
        #[arg(long)]
        json: bool,
    },
    /// An output checker not named on the permit clears its stops, so that its runs on real data may go on (logged).
    ClearStops {
        #[command(flatten)]
        dir: DirArg,
        #[arg(long)]
        permit: i64,
        /// The output checker (user name).
        #[arg(long = "as")]
        as_user: String,
        /// A reason code (lower-case letters, digits, '_').
        #[arg(long, default_value = "reviewed")]
        reason: String,
        /// Clear up to this stop (the last one looked at with `niji job stops`); only stops ended by now.
        #[arg(long)]
        through: i64,
    },
}

#[derive(Subcommand)]
pub enum ReleaseCommand {
    /// Download a release: its CSV to --out and its metadata JSON next to it (same name, .json).
    Get(GetArgs),
}

#[derive(Args)]
pub struct GetArgs {
    #[command(flatten)]
    dir: DirArg,
    #[arg(long)]
    release: i64,
    /// A researcher named on the permit, or an operator (user name).
    #[arg(long = "as")]
    as_user: String,
    #[arg(long)]
    out: PathBuf,
}

async fn user_id(instance: &niji_instance::Instance, name: &str) -> Result<i64> {
    Ok(instance.store.user_by_username(name).await?.with_context(|| format!("--as: no account {name:?}"))?.id)
}

fn job_json(j: &JobView) -> Value {
    json!({
        "id": j.id,
        "permit_id": j.permit_id,
        "submitted_by": j.submitted_by,
        "status": j.status,
        "reason": j.reason,
        "created_at": j.created_at,
        "release_id": j.release_id,
        "signoffs": j.signoffs.iter().map(|(c, v, r)| json!({"checker": c, "verdict": v, "reason": r})).collect::<Vec<_>>(),
        "outputs": j.outputs.iter().map(|o| json!({
            "name": o.name,
            "status": o.status,
            "refusal": o.refusal,
            "checked_table": o.checked_table,
            "verdicts": o.verdicts,
            "differencing": o.differencing,
        })).collect::<Vec<_>>(),
    })
}

fn print_job(j: &JobView) {
    let release = j.release_id.map(|r| format!(", release {r}")).unwrap_or_default();
    let reason = j.reason.as_deref().map(|r| format!(" ({r})")).unwrap_or_default();
    println!("job {} (permit {}): {}{reason}{release}", j.id, j.permit_id, j.status);
    for o in &j.outputs {
        let refusal = o.refusal.as_deref().map(|r| format!(": {r}")).unwrap_or_default();
        let by = o
            .differencing
            .as_ref()
            .and_then(|d| d["refused_by"].as_array())
            .filter(|a| !a.is_empty())
            .map(|a| format!(" (earlier release {})", a.iter().filter_map(Value::as_str).collect::<Vec<_>>().join(", ")))
            .unwrap_or_default();
        println!("  output {}: {}{refusal}{by}", o.name, o.status);
        if o.status != "passed" {
            continue;
        }
        let Some(t) = &o.checked_table else { continue };
        let header: Vec<String> = ["dimensions", "measures"]
            .iter()
            .flat_map(|k| t[*k].as_array().cloned().unwrap_or_default())
            .map(|v| v.as_str().unwrap_or_default().to_owned())
            .collect();
        println!("    {}", header.join("\t"));
        for row in t["rows"].as_array().into_iter().flatten() {
            let keys = row["keys"].as_array().into_iter().flatten().map(|k| k.as_str().unwrap_or_default().to_owned());
            let values = row["values"].as_array().into_iter().flatten().map(|v| match v {
                Value::String(s) if s == niji_analysis::jobs::SUPPRESSED => "秘匿 (suppressed)".to_owned(),
                Value::String(s) => s.clone(),
                Value::Number(n) => n.to_string(),
                _ => String::new(),
            });
            println!("    {}", keys.chain(values).collect::<Vec<_>>().join("\t"));
        }
    }
    for (checker, verdict, reason) in &j.signoffs {
        println!("  sign-off user:{checker}: {verdict} ({reason})");
    }
}

pub async fn job_command(cmd: JobCommand) -> Result<()> {
    match cmd {
        JobCommand::Submit { dir, permit, as_user, outputs, json } => {
            let instance = open(&dir.dir).await?;
            let user = user_id(&instance, &as_user).await?;
            let mut pairs = Vec::new();
            for o in outputs {
                let Some((name, sql)) = o.split_once('=') else { bail!("--output takes NAME=SQL") };
                pairs.push((name.trim().to_owned(), sql.to_owned()));
            }
            let job = niji_analysis::jobs::submit_job_with(&instance, &niji_analysis::AnalysisSettings::load(&instance.paths)?, user, permit, &pairs)
                .await
                .context("the job was refused")?;
            if json {
                println!("{}", serde_json::to_string_pretty(&job_json(&job))?);
            } else {
                print_job(&job);
            }
            if job.status != "awaiting_review" {
                std::process::exit(1);
            }
            Ok(())
        }
        JobCommand::List { dir, json } => {
            let instance = open(&dir.dir).await?;
            let jobs = niji_analysis::jobs::list_jobs(&instance).await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&jobs.iter().map(job_json).collect::<Vec<_>>())?);
            } else {
                for j in &jobs {
                    print_job(j);
                }
            }
            Ok(())
        }
        JobCommand::SignOff { dir, job, as_user, approve, reject } => {
            let instance = open(&dir.dir).await?;
            let user = user_id(&instance, &as_user).await?;
            let (approve, reason) = match reject {
                Some(reason) if !approve => (false, reason),
                _ => (true, "approved".to_owned()),
            };
            match niji_analysis::jobs::sign_off(&instance, user, job, approve, &reason).await.context("the sign-off was refused")? {
                SignOff::Recorded { approvals } => {
                    println!("job {job}: approval recorded ({approvals} of {})", niji_analysis::jobs::APPROVALS_NEEDED)
                }
                SignOff::Released { release_id } => println!("job {job}: released as release {release_id}"),
                SignOff::Refused => println!("job {job}: refused"),
            }
            Ok(())
        }
        JobCommand::Stops { dir, permit, json } => {
            let instance = open(&dir.dir).await?;
            let settings = niji_analysis::AnalysisSettings::load(&instance.paths)?;
            let stops = niji_analysis::stops::stops(&instance, &settings, permit).await?;
            if json {
                let list: Vec<Value> = stops
                    .stops
                    .iter()
                    .map(|s| json!({"id": s.id, "user": s.user_id, "kind": s.kind, "reason": s.reason, "sql_sha256": s.code_sha256, "started_at": s.started_at}))
                    .collect();
                let body = json!({"permit": permit, "max_stops": stops.max_stops, "left": stops.left(), "runs_since_clear": stops.runs_since_clear, "stops": list});
                println!("{}", serde_json::to_string_pretty(&body)?);
            } else {
                println!(
                    "permit {permit}: {} of {} stops used, {} left; {} runs on real data since the last clearance",
                    stops.stops.len(),
                    stops.max_stops,
                    stops.left(),
                    stops.runs_since_clear
                );
                for s in &stops.stops {
                    println!("  #{} {} {} by user:{}: {} (sql {})", s.id, s.started_at, s.kind, s.user_id, s.reason, s.code_sha256);
                }
            }
            Ok(())
        }
        JobCommand::ClearStops { dir, permit, as_user, reason, through } => {
            let instance = open(&dir.dir).await?;
            let user = user_id(&instance, &as_user).await?;
            let settings = niji_analysis::AnalysisSettings::load(&instance.paths)?;
            let cleared = niji_analysis::stops::clear_stops(&instance, &settings, user, permit, (through, None), &reason)
                .await
                .context("clearing was refused")?;
            println!("permit {permit}: {cleared} stops cleared");
            Ok(())
        }
    }
}

pub async fn release_command(cmd: ReleaseCommand) -> Result<()> {
    match cmd {
        ReleaseCommand::Get(args) => {
            let instance = open(&args.dir.dir).await?;
            let user = user_id(&instance, &args.as_user).await?;
            let files = niji_analysis::jobs::release_files(&instance, user, args.release).await.context("the download was refused")?;
            let meta = args.out.with_extension("json");
            if meta == args.out {
                bail!("--out names the CSV file (FILE.csv); the metadata goes to FILE.json");
            }
            std::fs::write(&args.out, &files.csv).with_context(|| format!("writing {}", args.out.display()))?;
            std::fs::write(&meta, &files.metadata).with_context(|| format!("writing {}", meta.display()))?;
            println!("{} (sha256 {})", args.out.display(), files.csv_sha256);
            println!("{} (sha256 {})", meta.display(), files.metadata_sha256);
            Ok(())
        }
    }
}
