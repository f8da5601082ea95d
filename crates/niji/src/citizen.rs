//! `niji citizen …` and `niji runs`: a data holder's side of the consent registry on the
//! server's shell (issue 6) — access credentials for patients, choices made on paper, bulk
//! imports of opt-out lists — and the operator's list of analysis runs with their receipts.

use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use clap::{Args, Subcommand, ValueEnum};
use niji_consent::{Choice, OptOutScope};
use niji_registry::{ActingAs, Author, HolderActor, RegistryError};
use time::OffsetDateTime;

use crate::{accounts, cli_actor, open, DirArg};

#[derive(Subcommand)]
pub enum CitizenCommand {
    /// Issue an access credential (access code + the patient's birth date) for a holder's patient; the code is printed once.
    Issue {
        #[command(flatten)]
        dir: DirArg,
        #[command(flatten)]
        patient: PatientArgs,
        /// Who will use it: the patient, a parent of a minor (ends at majority), or a guardian.
        #[arg(long, value_enum, default_value = "self")]
        acting_as: ActingAsArg,
        #[arg(long)]
        json: bool,
    },
    /// Record a choice the patient made on paper: an opt-out, a delivered notice, or the withdrawal of an earlier entry.
    Record {
        #[command(flatten)]
        dir: DirArg,
        #[command(flatten)]
        patient: PatientArgs,
        /// Opt-out: `all`, `purpose:<category>` or `recipient:<kind>`.
        #[arg(long, group = "choice")]
        opt_out: Option<String>,
        /// The date (YYYY-MM-DD) the notice of 丁寧なオプトアウト was delivered.
        #[arg(long, group = "choice")]
        notice: Option<String>,
        /// Withdraw the registry entry with this id (an earlier opt-out or consent).
        #[arg(long, group = "choice")]
        withdraw: Option<u64>,
    },
    /// Import a holder's list of choices (CSV: patient_id,choice,scope,date); all lines or none.
    Import {
        #[command(flatten)]
        dir: DirArg,
        /// The data holder (its organization name, as its datasets carry it).
        #[arg(long)]
        holder: String,
        file: PathBuf,
    },
}

#[derive(Args)]
pub struct PatientArgs {
    /// The data holder (its organization name, as its datasets carry it).
    #[arg(long)]
    holder: String,
    /// The holder's patient number (as in its submitted files).
    #[arg(long)]
    patient_id: String,
}

#[derive(Clone, Copy, ValueEnum)]
pub enum ActingAsArg {
    #[value(name = "self")]
    Person,
    Parent,
    Guardian,
}

pub async fn citizen_command(cmd: CitizenCommand) -> Result<()> {
    let now = OffsetDateTime::now_utc();
    match cmd {
        CitizenCommand::Issue { dir, patient, acting_as, json } => {
            let instance = open(&dir.dir).await?;
            let accounts = accounts(&instance);
            let acting_as = match acting_as {
                ActingAsArg::Person => ActingAs::Person,
                ActingAsArg::Parent => ActingAs::Parent,
                ActingAsArg::Guardian => ActingAs::Guardian,
            };
            let issuer = HolderActor { holder: patient.holder.clone(), audit: cli_actor() };
            let issued =
                niji_registry::issue_credential(&instance, &accounts, &issuer, &patient.patient_id, acting_as, now).await.map_err(explain)?;
            let until = issued.valid_until.map(|d| d.to_string());
            if json {
                println!(
                    "{}",
                    serde_json::json!({"user_id": issued.user_id, "access_code": issued.access_code, "acting_as": acting_as.code(), "valid_until": until})
                );
            } else {
                println!("アクセスコード / access code: {}", issued.access_code);
                println!("本人の生年月日と合わせて /citizen/login で使います。The citizen signs in at /citizen/login with this code and the patient's birth date.");
                if let Some(until) = until {
                    println!("有効期限 / valid until: {until}");
                }
            }
            Ok(())
        }
        CitizenCommand::Record { dir, patient, opt_out, notice, withdraw } => {
            let choice = match (opt_out, notice, withdraw) {
                (Some(scope), None, None) => Choice::OptOut { scope: parse_scope(&scope)? },
                (None, Some(date), None) => Choice::NoticeDelivered {
                    holder: patient.holder.clone(),
                    delivered_on: time::Date::parse(&date, &time::format_description::well_known::Iso8601::DATE)
                        .with_context(|| format!("--notice {date:?}: not a date (YYYY-MM-DD)"))?,
                },
                (None, None, Some(entry)) => Choice::Withdraw { entry },
                _ => bail!("give one of --opt-out, --notice or --withdraw"),
            };
            let instance = open(&dir.dir).await?;
            let author = Author::Holder { actor: HolderActor { holder: patient.holder, audit: cli_actor() }, patient_id: patient.patient_id };
            let id = niji_registry::record_choice(&instance, &author, choice, now).await.map_err(explain)?;
            println!("registry entry {id} recorded; it applies to every run from now on");
            Ok(())
        }
        CitizenCommand::Import { dir, holder, file } => {
            let bytes = std::fs::read(&file).with_context(|| format!("reading {}", file.display()))?;
            let instance = open(&dir.dir).await?;
            let actor = HolderActor { holder, audit: cli_actor() };
            match niji_registry::import_choices(&instance, &actor, &bytes, now).await {
                Ok(n) => {
                    println!("{n} choices imported from {}; they apply to every run from now on", file.display());
                    Ok(())
                }
                Err(RegistryError::Import(problems)) => {
                    for p in &problems {
                        eprintln!("{}:{}:{}: {}", file.display(), p.line, p.field, p.reason);
                    }
                    bail!("{} refused ({} problems); nothing was imported", file.display(), problems.len())
                }
                Err(e) => Err(explain(e)),
            }
        }
    }
}

#[derive(Args)]
pub struct RunsArgs {
    #[command(flatten)]
    dir: DirArg,
    #[arg(long)]
    json: bool,
}

/// `niji runs`: every run of a permit on real data, with the consent registry version it applied.
pub async fn runs(args: RunsArgs) -> Result<()> {
    let store = niji_store::Store::open_sqlite(&niji_instance::InstancePaths::new(&args.dir.dir).metadata_db()).await?;
    let runs = store.analysis_runs().await?;
    if args.json {
        let rows: Vec<serde_json::Value> = runs
            .iter()
            .map(|r| {
                serde_json::json!({
                    "id": r.id, "permit_id": r.permit_id, "user_id": r.user_id, "kind": r.kind, "outcome": r.outcome,
                    "code_sha256": r.code_sha256, "registry_version": r.registry_version, "excluded_persons": r.excluded_persons,
                    "datasets": serde_json::from_str::<serde_json::Value>(&r.datasets).unwrap_or_default(),
                    "started_at": r.started_at, "finished_at": r.finished_at, "log_index": r.log_index,
                })
            })
            .collect();
        println!("{}", serde_json::to_string_pretty(&rows)?);
    } else {
        println!("{:>5} {:>6} {:<6} {:<9} {:>8} {:>8}  started (UTC)", "run", "permit", "kind", "outcome", "registry", "excluded");
        for r in &runs {
            let at = OffsetDateTime::from_unix_timestamp(r.started_at).map(|t| t.to_string()).unwrap_or_default();
            println!("{:>5} {:>6} {:<6} {:<9} {:>8} {:>8}  {at}", r.id, r.permit_id, r.kind, r.outcome, r.registry_version, r.excluded_persons);
        }
    }
    Ok(())
}

fn parse_scope(s: &str) -> Result<OptOutScope> {
    OptOutScope::parse(s).with_context(|| match s.split_once(':') {
        Some(("purpose", c)) => format!("--opt-out: unknown purpose category {c:?}"),
        Some(("recipient", c)) => format!("--opt-out: unknown recipient kind {c:?}"),
        _ => "--opt-out must be all, purpose:<category> or recipient:<kind>".to_string(),
    })
}

fn explain(e: RegistryError) -> anyhow::Error {
    anyhow::anyhow!("{e}")
}
