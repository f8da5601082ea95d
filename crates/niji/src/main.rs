//! `niji`: the command line. Thin glue over the crates; every command takes the instance
//! folder as `--dir DIR` or from `NIJI_DIR`.

mod anonymize;
mod check;
mod citizen;
mod demo;
mod extract;
mod intake;
mod jobs;
mod logs;
mod review;

use anyhow::{Context, Result};
use clap::{Args, Parser, Subcommand, ValueEnum};
use niji_accounts::{Accounts, AccountsConfig, NewAccount, TotpSetup};
use niji_core::Role;
use niji_instance::{Instance, DIR_ENV};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use time::OffsetDateTime;

#[derive(Parser)]
#[command(name = "niji", version, about = "Niji: the platform for the secondary use of health data (医療等情報の二次利用)")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Args, Clone)]
pub(crate) struct DirArg {
    /// The instance folder.
    #[arg(long, env = DIR_ENV)]
    pub(crate) dir: PathBuf,
}

#[derive(Subcommand)]
enum Command {
    /// Create an instance folder with fresh keys, an empty store and a transparency log.
    Init(DirArg),
    /// Run the server (JSON API under /api/v1 and the portal).
    Serve(ServeArgs),
    /// One command to see Niji: a fresh instance, synthetic data, one account per role, the server.
    Demo(demo::DemoArgs),
    /// Validate data holders' files (FHIR, NDJSON, UKE, CSV) and print what would be rejected and why; stores nothing.
    Check(check::CheckArgs),
    /// Hand in a data holder's files: validate, link, seal identities in the vault, write the encrypted lake, record a dataset version.
    Ingest(intake::IngestArgs),
    /// List the datasets of an instance and their versions.
    Datasets(intake::DatasetsArgs),
    /// List applications (利用申請) with their case, tier, reasons and status.
    Applications(review::ListArgs),
    /// List data permits with their policies.
    Permits(review::ListArgs),
    /// Run a SQL query of a permit: on its dummy data (--dummy: rows, tab-separated) or on real data (--real: only what passes output checking).
    #[command(group(clap::ArgGroup::new("data").required(true).args(["dummy", "real"])))]
    Query {
        #[command(flatten)]
        dir: DirArg,
        #[arg(long)]
        permit: i64,
        /// The researcher running it (user name; must be named on the permit).
        #[arg(long = "as")]
        as_user: String,
        /// Run on the permit's dummy data (rows may be printed).
        #[arg(long)]
        dummy: bool,
        /// Run on the real data (aggregates only, checked before they are printed).
        #[arg(long)]
        real: bool,
        sql: String,
    },
    /// A data holder's side of the consent registry: patients' access credentials, paper choices, bulk imports.
    #[command(subcommand)]
    Citizen(citizen::CitizenCommand),
    /// Anonymized extracts of permits on the anonymized track: request, list, decide, download.
    #[command(subcommand)]
    Extract(extract::ExtractCommand),
    /// List the runs of permits on real data, with the consent registry version each applied (its receipt).
    Runs(citizen::RunsArgs),
    /// Jobs of permits: submit named SQL outputs to run on the real data, list them, sign them off as an output checker.
    #[command(subcommand)]
    Job(jobs::JobCommand),
    /// Releases of jobs approved by two output checkers.
    #[command(subcommand)]
    Release(jobs::ReleaseCommand),
    /// Set up review as an operator: criteria, tariff, consent scopes, accreditations, committees.
    #[command(subcommand)]
    Review(review::ReviewCommand),
    /// Mail the pending notifications of the outbox once (NIJI_SMTP_URL, NIJI_MAIL_FROM); `serve` does it every minute.
    Mail(DirArg),
    /// Anonymize a CSV file (匿名加工): PPC 第34条 rules, then the optimal generalization for a privacy model.
    Anonymize(anonymize::AnonymizeArgs),
    /// Generate deterministic synthetic Japanese health data in data holders' formats.
    Synth(demo::SynthArgs),
    /// The transparency log: signed head, inclusion proofs, full verification.
    #[command(subcommand)]
    Log(LogCommand),
    /// Accounts and roles.
    #[command(subcommand)]
    User(UserCommand),
    /// API tokens for the command line and scripts.
    #[command(subcommand)]
    Token(TokenCommand),
    /// The master key and the data keys it wraps.
    #[command(subcommand)]
    Keys(KeysCommand),
    /// Print the current TOTP code for a secret (for demo accounts without an authenticator app).
    TotpCode {
        #[arg(long)]
        secret: String,
    },
}

#[derive(Args)]
struct ServeArgs {
    #[command(flatten)]
    dir: DirArg,
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1")]
    host: String,
    /// Port (0 picks a free one).
    #[arg(long, default_value_t = 8080)]
    port: u16,
    /// Mark cookies Secure (set when the portal is served over HTTPS).
    #[arg(long)]
    secure_cookies: bool,
    /// Largest data submission accepted through the portal or the API, in MiB.
    #[arg(long, default_value_t = niji_server::DEFAULT_MAX_UPLOAD_BYTES >> 20)]
    max_upload_mb: usize,
}

#[derive(Subcommand)]
enum LogCommand {
    /// Print the newest signed tree head as JSON.
    Head(DirArg),
    /// Print the inclusion proof of one entry as JSON.
    Proof {
        #[command(flatten)]
        dir: DirArg,
        #[arg(long)]
        index: u64,
        /// Tree size to prove against (default: the newest signed head).
        #[arg(long)]
        tree_size: Option<u64>,
    },
    /// Print one entry.
    Show {
        #[command(flatten)]
        dir: DirArg,
        #[arg(long)]
        index: u64,
    },
    /// Re-check every entry and signed head; exit 1 and name the first bad position if any.
    Verify(DirArg),
}

#[derive(Clone, Copy, ValueEnum)]
enum TotpChoice {
    /// Enrol now and print the secret once.
    Now,
    /// The user enrols at first login in the portal.
    FirstLogin,
}

#[derive(Subcommand)]
enum UserCommand {
    /// Create an account (an operator action, recorded in the log).
    Add {
        #[command(flatten)]
        dir: DirArg,
        #[arg(long)]
        username: String,
        #[arg(long)]
        display_name: String,
        /// Role to grant; repeat for several.
        #[arg(long = "role", required = true)]
        roles: Vec<String>,
        #[arg(long)]
        organization: Option<String>,
        /// Kind of organization: academia, company, hospital, insurer, registry, municipality, government, platform.
        #[arg(long, default_value = "academia")]
        organization_kind: String,
        /// Password (at least 12 characters). Read from NIJI_PASSWORD if not given.
        #[arg(long, env = "NIJI_PASSWORD", hide_env_values = true)]
        password: String,
        #[arg(long, value_enum, default_value = "now")]
        totp: TotpChoice,
        /// Mail address for notifications (without one they are shown in the portal only).
        #[arg(long)]
        email: Option<String>,
        /// Print the result as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Grant a role to an existing account.
    Grant {
        #[command(flatten)]
        dir: DirArg,
        #[arg(long)]
        username: String,
        #[arg(long)]
        role: String,
    },
    /// List accounts and their roles.
    List(DirArg),
}

#[derive(Subcommand)]
enum KeysCommand {
    /// Show the master key's fingerprint and source, and check that every data key unwraps.
    Status(DirArg),
    /// Re-wrap every data key under a new master key (generated, or read from a file).
    RotateMaster {
        #[command(flatten)]
        dir: DirArg,
        /// File holding the new master key (64 hex characters); generated when absent.
        #[arg(long)]
        new_key_file: Option<PathBuf>,
    },
}

#[derive(Subcommand)]
enum TokenCommand {
    /// Create an API token for an account; printed once.
    Create {
        #[command(flatten)]
        dir: DirArg,
        #[arg(long)]
        username: String,
        #[arg(long, default_value = "cli")]
        label: String,
    },
}

fn main() -> Result<()> {
    let cli = Cli::parse();
    // Where intakes run, large blocks go back to the system when freed: the intake's per-unit
    // arrays otherwise stay in the heap, fragmented, phase after phase. Before any thread starts.
    if matches!(cli.command, Command::Ingest(_) | Command::Serve(_) | Command::Demo(_)) {
        niji_intake::map_large_allocations();
    }
    use tracing_subscriber::util::SubscriberInitExt;
    let filter = tracing_subscriber::EnvFilter::try_from_env("NIJI_LOG").unwrap_or_else(|_| "info,tower_http=info,sqlx=warn".into());
    // Never the output checking solver's lines (made from persons counts), nor its panics' messages.
    logs::subscriber(filter, std::io::stderr).init();
    logs::hide_solver_panics();
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().context("starting the async runtime")?;
    rt.block_on(run(cli.command))
}

async fn run(command: Command) -> Result<()> {
    match command {
        Command::Init(DirArg { dir }) => {
            let inst = Instance::init(&dir, &cli_actor()).await.with_context(|| format!("creating an instance in {}", dir.display()))?;
            println!("Created a Niji instance in {} (log public key {}).", dir.display(), hex::encode(inst.log().verifying_key().as_bytes()));
            Ok(())
        }
        Command::Serve(args) => {
            let instance = open(&args.dir.dir).await?;
            let analysis = niji_analysis::AnalysisSettings::load(&instance.paths)?;
            serve(
                instance,
                &args.host,
                args.port,
                niji_server::ServerConfig {
                    cookies: niji_server::CookiePolicy { secure: args.secure_cookies },
                    max_upload_bytes: args.max_upload_mb << 20,
                    analysis,
                },
                |_| {},
            )
            .await
        }
        Command::Demo(args) => demo::run(args).await,
        Command::Synth(args) => demo::synth(args),
        Command::Anonymize(args) => anonymize::run(args),
        Command::Check(args) => {
            if !check::run(args)? {
                std::process::exit(1);
            }
            Ok(())
        }
        Command::Ingest(args) => {
            if !intake::ingest(args).await? {
                std::process::exit(1);
            }
            Ok(())
        }
        Command::Datasets(args) => intake::datasets(args).await,
        Command::Applications(args) => review::applications(args).await,
        Command::Permits(args) => review::permits(args).await,
        Command::Review(cmd) => review::review_command(cmd).await,
        Command::Citizen(cmd) => citizen::citizen_command(cmd).await,
        Command::Runs(args) => citizen::runs(args).await,
        Command::Job(cmd) => jobs::job_command(cmd).await,
        Command::Release(cmd) => jobs::release_command(cmd).await,
        Command::Extract(cmd) => extract::extract_command(cmd).await,
        Command::Query { dir, permit, as_user, dummy, real: _, sql } => {
            let instance = open(&dir.dir).await?;
            let user = instance.store.user_by_username(&as_user).await?.with_context(|| format!("--as: no account {as_user:?}"))?;
            if dummy {
                match niji_analysis::dummy::query_dummy(&instance, user.id, permit, &sql).await {
                    Ok(out) => {
                        println!("{}", out.columns.join("\t"));
                        for row in &out.rows {
                            println!("{}", row.join("\t"));
                        }
                        eprintln!("{} rows of dummy data", out.rows.len());
                        return Ok(());
                    }
                    Err(e) => {
                        eprintln!("refused: {e}");
                        std::process::exit(1);
                    }
                }
            }
            let settings = niji_analysis::AnalysisSettings::load(&instance.paths)?;
            match niji_analysis::query_real_with(&instance, &settings, user.id, permit, &sql).await {
                Ok(out) => {
                    println!("{}", out.dimensions.iter().chain(&out.measures).cloned().collect::<Vec<_>>().join("\t"));
                    for (keys, values) in &out.rows {
                        let values = values.iter().map(|v| match v {
                            niji_sdc::Shown::Value(x) => format!("{x}"),
                            niji_sdc::Shown::Suppressed => "秘匿 (suppressed)".to_string(),
                            niji_sdc::Shown::Refused => "不可 (refused)".to_string(),
                        });
                        println!("{}", keys.iter().cloned().chain(values).collect::<Vec<_>>().join("\t"));
                    }
                    eprintln!("{} rows, {} cells suppressed under the {} rules", out.rows.len(), out.suppressed, out.preset);
                    if out.late {
                        eprintln!(
                            "late: the run passed the time its answer was due (fixed from the tables' sizes) and spent one of the permit's stops"
                        );
                    }
                    Ok(())
                }
                Err(e) => {
                    eprintln!("refused: {e}");
                    std::process::exit(1);
                }
            }
        }
        Command::Mail(dir) => {
            let config = niji_mail::MailConfig::from_env().context("set NIJI_SMTP_URL (for example smtp://localhost:25) to mail notifications")?;
            let store = niji_store::Store::open_sqlite(&niji_instance::InstancePaths::new(&dir.dir).metadata_db()).await?;
            let d = niji_mail::deliver_pending(&store, &config).await?;
            println!("{} sent, {} failed", d.sent, d.failed);
            Ok(())
        }
        Command::Log(cmd) => log_command(cmd),
        Command::User(cmd) => user_command(cmd).await,
        Command::Keys(cmd) => keys_command(cmd).await,
        Command::TotpCode { secret } => {
            println!("{}", niji_accounts::totp_code(&secret, OffsetDateTime::now_utc())?);
            Ok(())
        }
        Command::Token(TokenCommand::Create { dir, username, label }) => {
            let instance = open(&dir.dir).await?;
            let accounts = accounts(&instance);
            let user = accounts.user_by_username(&username).await.with_context(|| format!("account {username:?}"))?;
            let token = accounts.create_api_token(user.id, &label, &cli_actor(), OffsetDateTime::now_utc()).await?;
            println!("{token}");
            Ok(())
        }
    }
}

pub(crate) async fn open(dir: &Path) -> Result<Instance> {
    Instance::open(dir).await.with_context(|| format!("opening the instance in {} (is a server already running on it?)", dir.display()))
}

pub(crate) fn accounts(instance: &Instance) -> Accounts {
    Accounts::new(instance.store.clone(), instance.audit_sink(), instance.accounts_key(), AccountsConfig::default())
}

/// Who acts when a command is run on the server's shell.
pub(crate) fn cli_actor() -> String {
    format!("cli:{}", std::env::var("USER").unwrap_or_else(|_| "unknown".into()))
}

/// Runs the server until Ctrl-C; `ready` gets the bound address.
pub(crate) async fn serve(
    instance: Instance,
    host: &str,
    port: u16,
    config: niji_server::ServerConfig,
    ready: impl FnOnce(std::net::SocketAddr),
) -> Result<()> {
    let undone = niji_server::recover_at_start(&instance).await.context("clearing what an interrupted run left")?;
    if undone > 0 {
        eprintln!("Undid {undone} dataset versions an interrupted intake left.");
    }
    let instance = Arc::new(instance);
    let accounts = Arc::new(accounts(&instance));
    let listener = tokio::net::TcpListener::bind((host, port)).await.with_context(|| format!("listening on {host}:{port}"))?;
    let addr = listener.local_addr()?;
    println!("Niji is listening on http://{addr}/  (API: http://{addr}/api/v1/health)");
    ready(addr);
    // Permits past their expiry close (their keys destroyed) within the hour; outcome reminders.
    {
        let instance = instance.clone();
        tokio::spawn(async move {
            let mut every = tokio::time::interval(std::time::Duration::from_secs(3600));
            loop {
                every.tick().await;
                let today = niji_core::today_jst(OffsetDateTime::now_utc());
                match niji_applications::expire_permits(&instance, today).await {
                    Ok(closed) if !closed.is_empty() => tracing::info!(permits = ?closed, "expired permits closed"),
                    Ok(_) => {}
                    Err(e) => tracing::warn!(error = %e, "closing expired permits failed"),
                }
                // Releases three months old: remind the permits' researchers to report outcomes.
                match niji_applications::remind_outcomes(&instance, OffsetDateTime::now_utc()).await {
                    Ok(runs) if !runs.is_empty() => tracing::info!(releases = runs.len(), "outcome reminders queued"),
                    Ok(_) => {}
                    Err(e) => tracing::warn!(error = %e, "queueing outcome reminders failed"),
                }
            }
        });
    }
    // Notifications by mail, when an SMTP server is configured.
    if let Some(mail) = niji_mail::MailConfig::from_env() {
        let store = instance.store.clone();
        tokio::spawn(async move {
            let mut every = tokio::time::interval(std::time::Duration::from_secs(60));
            loop {
                every.tick().await;
                match niji_mail::deliver_pending(&store, &mail).await {
                    Ok(d) if d.sent + d.failed > 0 => tracing::info!(sent = d.sent, failed = d.failed, "outbox delivered"),
                    Ok(_) => {}
                    Err(e) => tracing::warn!(error = %e, "outbox delivery failed"),
                }
            }
        });
    }
    let state = niji_server::AppState::new(instance, accounts, config);
    niji_server::serve(listener, state, async {
        let _ = tokio::signal::ctrl_c().await;
    })
    .await
    .context("serving")
}

fn log_command(cmd: LogCommand) -> Result<()> {
    let log_dir = |dir: &Path| niji_instance::InstancePaths::new(dir).log();
    match cmd {
        LogCommand::Head(DirArg { dir }) => {
            let key = niji_instance::log_verifying_key(&dir)?;
            let reader = niji_log::LogReader::open(&log_dir(&dir))?;
            let head = reader.latest_head().context("the log has no signed head yet")?;
            println!("{}", niji_server::wire::signed_tree_head(head, &key));
        }
        LogCommand::Proof { dir, index, tree_size } => {
            let reader = niji_log::LogReader::open(&log_dir(&dir.dir))?;
            let proof = reader.inclusion_proof(index, tree_size).with_context(|| format!("proof of entry {index}"))?;
            println!("{}", niji_server::wire::inclusion_proof(&proof));
        }
        LogCommand::Show { dir, index } => {
            let reader = niji_log::LogReader::open(&log_dir(&dir.dir))?;
            println!("{}", String::from_utf8_lossy(&reader.entry(index)?));
        }
        LogCommand::Verify(DirArg { dir }) => {
            let key = niji_instance::log_verifying_key(&dir)?;
            let started = std::time::Instant::now();
            let report = niji_log::verify(&log_dir(&dir), &key)?;
            let secs = started.elapsed().as_secs_f64();
            match report.problem {
                None => println!("OK: {} entries and {} signed heads verified in {secs:.3} s.", report.entries, report.heads),
                Some(p) => {
                    let at = p.first_bad_index().map(|i| format!(" First bad position: entry {i}.")).unwrap_or_default();
                    eprintln!("FAILED: {p}.{at} ({} entries before it verified.)", report.entries);
                    std::process::exit(1);
                }
            }
        }
    }
    Ok(())
}

async fn keys_command(cmd: KeysCommand) -> Result<()> {
    use niji_instance::keys::{MasterKey, MasterKeySource};
    match cmd {
        KeysCommand::Status(DirArg { dir }) => {
            let instance = open(&dir).await?;
            let (fingerprint, source) = instance.master_key_info();
            let ids = instance.check_data_keys().await?;
            println!("master key {fingerprint} (from {}); {} data keys, all unwrap", source_name(source), ids.len());
            for id in ids {
                println!("  {id}");
            }
        }
        KeysCommand::RotateMaster { dir, new_key_file } => {
            let mut instance = open(&dir.dir).await?;
            let new = match new_key_file {
                Some(f) => {
                    MasterKey::from_hex(&std::fs::read_to_string(&f).with_context(|| format!("reading {}", f.display()))?, MasterKeySource::File)
                        .with_context(|| format!("{} must hold 64 hex characters", f.display()))?
                }
                None => MasterKey::generate(),
            };
            let (old, source) = instance.master_key_info();
            let new_hex = new.to_hex();
            let n = instance.rotate_master_key(new, &cli_actor()).await?;
            let (now, _) = instance.master_key_info();
            println!("Re-wrapped {n} data keys: master key {old} → {now}.");
            if source == MasterKeySource::Environment {
                println!("Set NIJI_MASTER_KEY={new_hex} before the next start (the old value no longer opens the data keys).");
            }
        }
    }
    Ok(())
}

fn source_name(source: niji_instance::keys::MasterKeySource) -> &'static str {
    match source {
        niji_instance::keys::MasterKeySource::Environment => "NIJI_MASTER_KEY",
        niji_instance::keys::MasterKeySource::File => "keys/master.key",
    }
}

async fn user_command(cmd: UserCommand) -> Result<()> {
    match cmd {
        UserCommand::Add { dir, username, display_name, roles, organization, organization_kind, password, totp, email, json } => {
            let roles = roles.iter().map(|r| r.parse::<Role>()).collect::<Result<Vec<_>, _>>()?;
            let instance = open(&dir.dir).await?;
            let accounts = accounts(&instance);
            let created = accounts
                .create_account(
                    NewAccount {
                        username: username.clone(),
                        display_name,
                        organization: organization.map(|o| (o, organization_kind)),
                        roles,
                        password,
                        totp: match totp {
                            TotpChoice::Now => TotpSetup::EnrolNow,
                            TotpChoice::FirstLogin => TotpSetup::AtFirstLogin,
                        },
                    },
                    &cli_actor(),
                    OffsetDateTime::now_utc(),
                )
                .await
                .with_context(|| format!("creating account {username:?}"))?;
            if let Some(email) = email.as_deref().map(str::trim).filter(|e| !e.is_empty()) {
                if !email.contains('@') || email.chars().any(char::is_whitespace) {
                    anyhow::bail!("--email: not a mail address");
                }
                instance.store.set_user_email(created.user_id, Some(email)).await?;
            }
            let secret = created.totp.as_ref().map(|t| t.secret_base32.clone());
            if json {
                println!(
                    "{}",
                    serde_json::json!({"user_id": created.user_id, "username": username, "totp_secret": secret, "otpauth_url": created.totp.map(|t| t.otpauth_url)})
                );
            } else {
                println!("Created account {username} (id {}).", created.user_id);
                if let Some(s) = secret {
                    println!("TOTP secret (shown once; add it to an authenticator app): {s}");
                }
            }
        }
        UserCommand::Grant { dir, username, role } => {
            let role: Role = role.parse()?;
            let instance = open(&dir.dir).await?;
            let accounts = accounts(&instance);
            let user = accounts.user_by_username(&username).await.with_context(|| format!("account {username:?}"))?;
            accounts.grant_role_from_cli(&cli_actor(), user.id, role, OffsetDateTime::now_utc()).await?;
            println!("Granted {role} to {username}.");
        }
        UserCommand::List(DirArg { dir }) => {
            let instance = open(&dir).await?;
            let accounts = accounts(&instance);
            for row in instance.store.users().await? {
                let u = accounts.user(row.id).await?;
                let roles: Vec<&str> = u.roles.iter().map(|r| r.as_str()).collect();
                println!(
                    "{:>4}  {:<24} {:<20} 2FA:{:<3} {}",
                    u.id,
                    u.username,
                    roles.join(","),
                    if u.totp_enabled { "on" } else { "off" },
                    u.organization.unwrap_or_default()
                );
            }
        }
    }
    Ok(())
}
