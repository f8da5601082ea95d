//! `niji demo` and `niji synth`.

use crate::{accounts, cli_actor, serve};
use anyhow::{bail, Context, Result};
use clap::Args;
use niji_accounts::{NewAccount, TotpSetup};
use niji_core::Role;
use niji_instance::{Instance, InstancePaths};
use std::path::PathBuf;
use time::OffsetDateTime;

#[derive(Args)]
pub struct DemoArgs {
    /// Instance folder for the demo (recreated on every run).
    #[arg(long, default_value = "niji-demo")]
    dir: PathBuf,
    /// Port (0 picks a free one).
    #[arg(long, default_value_t = 8080)]
    port: u16,
    /// Synthetic persons to generate.
    #[arg(long, default_value_t = 2_000)]
    persons: u64,
    #[arg(long, default_value_t = 1)]
    seed: u64,
}

#[derive(Args)]
pub struct SynthArgs {
    /// Number of persons.
    #[arg(long)]
    persons: u64,
    /// Seed: the same seed gives the same files, byte for byte.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Output folder (created; must be empty or absent).
    #[arg(long)]
    out: PathBuf,
    /// Which formats to write.
    #[arg(long, value_enum, default_value = "all")]
    formats: FormatChoice,
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum FormatChoice {
    /// CLINS Bundles per patient and hospital, FHIR NDJSON, UKE claims, registry CSV.
    All,
    /// Everything but the per-patient Bundle files (for large runs).
    Bulk,
}

/// Marks an instance folder as made by `niji demo`, so that a rerun may replace it.
const DEMO_MARKER: &str = "DEMO";

const DEMO_ACCOUNTS: [(&str, &str, Role, &str, &str); 7] = [
    ("demo.operator", "運用 太郎", Role::Operator, "Niji 運用事務局", "platform"),
    ("demo.holder", "提供 花子", Role::DataHolder, "さくら市立病院", "hospital"),
    ("demo.researcher", "研究 一郎", Role::Researcher, "東都大学 医学部", "academia"),
    ("demo.reviewer", "審査 明美", Role::Reviewer, "審査委員会", "review_body"),
    ("demo.chair", "委員長 誠", Role::CommitteeChair, "審査委員会", "review_body"),
    ("demo.checker", "確認 健", Role::OutputChecker, "Niji 運用事務局", "platform"),
    ("demo.citizen", "本人 さくら", Role::Citizen, "", ""),
];

pub async fn run(args: DemoArgs) -> Result<()> {
    let paths = InstancePaths::new(&args.dir);
    if args.dir.exists() {
        if paths.root.join(DEMO_MARKER).exists() {
            std::fs::remove_dir_all(&args.dir).with_context(|| format!("removing the previous demo in {}", args.dir.display()))?;
        } else if std::fs::read_dir(&args.dir)?.next().is_some() {
            bail!("{} exists and is not a demo instance; choose another --dir", args.dir.display());
        }
    }
    let instance = Instance::init(&args.dir, &cli_actor()).await?;
    std::fs::write(paths.root.join(DEMO_MARKER), "made by `niji demo`; replaced on the next run\n")?;

    println!("Generating {} synthetic persons (seed {}) into {} …", args.persons, args.seed, paths.synth().display());
    let summary = generate(args.persons, args.seed, paths.synth(), niji_synth::Formats::ALL)?;
    println!("{summary}");

    let accounts = accounts(&instance);
    let now = OffsetDateTime::now_utc();
    println!("\nDemo accounts (passwords and TOTP secrets are shown only now):");
    println!("{:<17} {:<16} {:<24} TOTP secret", "user name", "role", "password");
    for (username, name, role, org, kind) in DEMO_ACCOUNTS {
        let password = random_password();
        let created = accounts
            .create_account(
                NewAccount {
                    username: username.into(),
                    display_name: name.into(),
                    organization: (!org.is_empty()).then(|| (org.to_string(), kind.to_string())),
                    roles: vec![role],
                    password: password.clone(),
                    totp: if role.requires_two_factor() { TotpSetup::EnrolNow } else { TotpSetup::AtFirstLogin },
                },
                &cli_actor(),
                now,
            )
            .await?;
        let secret = created.totp.map(|t| t.secret_base32).unwrap_or_else(|| "(none: citizens may add 2FA)".into());
        println!("{username:<17} {:<16} {password:<24} {secret}", role.as_str());
    }
    println!("\nA current code for a secret: niji totp-code --secret SECRET");
    let dir = args.dir.clone();
    serve(instance, "127.0.0.1", args.port, niji_server::ServerConfig::default(), move |addr| {
        println!("Open http://{addr}/login in a browser. Instance folder: {}. Stop with Ctrl-C.", dir.display());
    })
    .await
}

pub fn synth(args: SynthArgs) -> Result<()> {
    let formats = match args.formats {
        FormatChoice::All => niji_synth::Formats::ALL,
        FormatChoice::Bulk => niji_synth::Formats::BULK,
    };
    let summary = generate(args.persons, args.seed, args.out, formats)?;
    println!("{summary}");
    Ok(())
}

fn generate(persons: u64, seed: u64, out: PathBuf, formats: niji_synth::Formats) -> Result<String> {
    let mut config = niji_synth::SynthConfig::new(out.clone(), persons);
    config.seed = seed;
    config.formats = formats;
    let mut last = std::time::Instant::now();
    let summary = niji_synth::generate(&config, &mut |p: niji_synth::Progress| {
        if last.elapsed().as_millis() >= 500 {
            eprint!("\r  {} / {} persons, {:.1} MB written", p.persons_done, p.persons_total, p.bytes_written as f64 / 1e6);
            last = std::time::Instant::now();
        }
    })
    .with_context(|| format!("generating synthetic data into {}", out.display()))?;
    eprintln!("\r  {persons} / {persons} persons{:30}", "");
    let r = &summary.records;
    Ok(format!(
        "{} persons ({} deaths, {} insurance changes, {} twins, {} namesakes) in {:.2} s, {:.0} persons/s\n\
         {} patients; {} FHIR bundles ({} resources); {} NDJSON resources; {} UKE claims; {} registry persons, {} events\n\
         {} files, {:.1} MB in {} (ground truth in truth/)",
        summary.persons,
        summary.deaths,
        summary.insurance_changes,
        summary.twins,
        summary.namesakes,
        summary.elapsed.as_secs_f64(),
        summary.persons_per_second(),
        r.patients,
        r.fhir_bundles,
        r.fhir_bundle_resources,
        r.ndjson_resources,
        r.uke_claims,
        r.registry_persons,
        r.registry_events,
        summary.files,
        summary.bytes as f64 / 1e6,
        out.display()
    ))
}

fn random_password() -> String {
    use rand::Rng;
    const ALPHABET: &[u8] = b"abcdefghijkmnpqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789";
    let mut rng = rand::rngs::OsRng;
    (0..16).map(|_| ALPHABET[rng.gen_range(0..ALPHABET.len())] as char).collect()
}
