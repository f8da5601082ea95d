//! `niji extract …`: anonymized extracts of permits on the anonymized track (issue 7) from the
//! server's shell — request (researcher), list, decide (operator), download (researcher).

use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use clap::Subcommand;
use time::OffsetDateTime;

use crate::{open, DirArg};

#[derive(Subcommand)]
pub enum ExtractCommand {
    /// Produce an anonymized extract of one granted table with an anonymization configuration (the format of `niji anonymize`, builtin hierarchies only); it then awaits an operator's approval.
    Request {
        #[command(flatten)]
        dir: DirArg,
        #[arg(long)]
        permit: i64,
        /// The researcher asking (user name; must be named on the permit).
        #[arg(long = "as")]
        as_user: String,
        #[arg(long)]
        dataset: String,
        #[arg(long)]
        table: String,
        #[arg(long)]
        config: PathBuf,
        /// Also write the report (JSON) here.
        #[arg(long)]
        report: Option<PathBuf>,
    },
    /// List extracts with their status, rows and hash.
    List {
        #[command(flatten)]
        dir: DirArg,
        #[arg(long)]
        json: bool,
    },
    /// Approve or reject an extract awaiting approval (an operator who did not request it).
    Decide {
        #[command(flatten)]
        dir: DirArg,
        #[arg(long)]
        id: i64,
        #[arg(long = "as")]
        as_user: String,
        #[arg(long, group = "verdict")]
        approve: bool,
        /// Reject with a short reason code (e.g. risk_too_high).
        #[arg(long, group = "verdict")]
        reject: Option<String>,
    },
    /// Write an approved extract's CSV (a researcher named on the permit).
    Download {
        #[command(flatten)]
        dir: DirArg,
        #[arg(long)]
        id: i64,
        #[arg(long = "as")]
        as_user: String,
        #[arg(long)]
        out: PathBuf,
    },
}

pub async fn extract_command(cmd: ExtractCommand) -> Result<()> {
    let now = OffsetDateTime::now_utc();
    match cmd {
        ExtractCommand::Request { dir, permit, as_user, dataset, table, config, report } => {
            let instance = open(&dir.dir).await?;
            let user = user_id(&instance, &as_user).await?;
            let text = std::fs::read_to_string(&config).with_context(|| format!("reading {}", config.display()))?;
            let e = niji_extracts::request_extract(&instance, user, permit, &dataset, &table, &text, now)
                .await
                .map_err(|e| anyhow::anyhow!("refused: {e}"))?;
            if let Some(path) = report {
                std::fs::write(&path, serde_json::to_string_pretty(&e.report)? + "\n").with_context(|| format!("writing {}", path.display()))?;
            }
            println!(
                "extract {} of {dataset}.{table}: {} rows, k = {}, sha256 {}; it awaits an operator's approval (niji extract decide --id {})",
                e.id, e.rows_out, e.report["check"]["k"], e.sha256, e.id
            );
            Ok(())
        }
        ExtractCommand::List { dir, json } => {
            let store = niji_store::Store::open_sqlite(&niji_instance::InstancePaths::new(&dir.dir).metadata_db()).await?;
            let rows = store.extracts().await?;
            if json {
                let list: Vec<serde_json::Value> = rows
                    .iter()
                    .map(|e| {
                        serde_json::json!({"id": e.id, "permit_id": e.permit_id, "dataset": e.dataset, "version": e.dataset_version, "table": e.table_name,
                            "status": e.status, "rows": e.rows_out, "sha256": e.file_sha256, "run_id": e.run_id, "reason": e.reason,
                            "report": serde_json::from_str::<serde_json::Value>(&e.report).unwrap_or_default()})
                    })
                    .collect();
                println!("{}", serde_json::to_string_pretty(&list)?);
            } else {
                println!("{:>4} {:>6} {:<28} {:<18} {:>7}  sha256", "id", "permit", "table", "status", "rows");
                for e in &rows {
                    let table = format!("{}/v{}/{}", e.dataset, e.dataset_version, e.table_name);
                    println!("{:>4} {:>6} {:<28} {:<18} {:>7}  {}", e.id, e.permit_id, table, e.status, e.rows_out, e.file_sha256);
                }
            }
            Ok(())
        }
        ExtractCommand::Decide { dir, id, as_user, approve, reject } => {
            if !approve && reject.is_none() {
                bail!("give --approve or --reject REASON");
            }
            let instance = open(&dir.dir).await?;
            let user = user_id(&instance, &as_user).await?;
            niji_extracts::decide_extract(&instance, user, id, approve, reject.as_deref(), now).await.map_err(|e| anyhow::anyhow!("refused: {e}"))?;
            println!("extract {id} {}", if approve { "approved" } else { "rejected" });
            Ok(())
        }
        ExtractCommand::Download { dir, id, as_user, out } => {
            let instance = open(&dir.dir).await?;
            let user = user_id(&instance, &as_user).await?;
            let bytes = niji_extracts::download_extract(&instance, user, id, now).await.map_err(|e| anyhow::anyhow!("refused: {e}"))?;
            std::fs::write(&out, &bytes).with_context(|| format!("writing {}", out.display()))?;
            println!("extract {id} written to {} ({} bytes)", out.display(), bytes.len());
            Ok(())
        }
    }
}

async fn user_id(instance: &niji_instance::Instance, name: &str) -> Result<i64> {
    Ok(instance.store.user_by_username(name).await?.with_context(|| format!("--as: no account {name:?}"))?.id)
}
