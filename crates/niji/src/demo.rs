//! `niji demo` and `niji synth`.

use crate::{accounts, cli_actor, serve};
use anyhow::{bail, Context, Result};
use clap::Args;
use niji_accounts::{NewAccount, TotpSetup};
use niji_core::Role;
use niji_instance::{Instance, InstancePaths};
use std::path::{Path, PathBuf};
use std::sync::Arc;
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
    // The holders' files live beside the instance, not in it: the instance folder holds nothing
    // identifying in the clear, and tests scan it byte by byte.
    let holder_files = holder_files_dir(&args.dir);
    if holder_files.exists() {
        if holder_files.join(DEMO_MARKER).exists() {
            std::fs::remove_dir_all(&holder_files).with_context(|| format!("removing {}", holder_files.display()))?;
        } else {
            bail!("{} exists and was not made by `niji demo`; choose another --dir", holder_files.display());
        }
    }
    let instance = Instance::init(&args.dir, &cli_actor()).await?;
    std::fs::write(paths.root.join(DEMO_MARKER), "made by `niji demo`; replaced on the next run\n")?;

    println!("Generating {} synthetic persons (seed {}) into {} …", args.persons, args.seed, holder_files.display());
    let summary = generate(args.persons, args.seed, holder_files.clone(), niji_synth::Formats::ALL)?;
    std::fs::write(holder_files.join(DEMO_MARKER), "made by `niji demo`; replaced on the next run\n")?;
    println!("{summary}");

    let accounts = accounts(&instance);
    let now = OffsetDateTime::now_utc();
    println!("\nDemo accounts (passwords and TOTP secrets are shown only now):");
    println!("{:<17} {:<16} {:<24} TOTP secret", "user name", "role", "password");
    let mut ids = std::collections::HashMap::new();
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
        ids.insert(username, created.user_id);
        let secret = created.totp.map(|t| t.secret_base32).unwrap_or_else(|| "(none: citizens may add 2FA)".into());
        println!("{username:<17} {:<16} {password:<24} {secret}", role.as_str());
    }
    println!("\nA current code for a secret: niji totp-code --secret SECRET");

    println!("\nIngesting the holders' files (two hospitals' EHR exports and an insurer's claims) …");
    let datasets = demo_datasets(&holder_files)?;
    let sakura_files = datasets[0].files.clone();
    for d in datasets {
        crate::intake::ensure_holder(&instance, d.holder, d.holder_kind, &cli_actor()).await?;
        let submission = niji_intake::Submission {
            holder: d.holder.into(),
            dataset: d.name.into(),
            description: Some(niji_intake::DatasetDescription {
                kind: String::new(),
                title_ja: d.title_ja.into(),
                title_en: d.title_en.into(),
                description_ja: d.description_ja.into(),
                description_en: d.description_en.into(),
            }),
            files: d.files,
            csv_mapping: None,
            on_reject: niji_intake::OnReject::RefuseSubmission,
            actor: cli_actor(),
        };
        let options = niji_intake::IntakeOptions::new(niji_ingest::IngestConfig::new(crate::intake::today()));
        match niji_intake::ingest(&instance, submission, &options, Arc::new(crate::intake::Bar::default())).await? {
            niji_intake::Outcome::Committed(report) => crate::intake::print_committed(&report),
            niji_intake::Outcome::Refused { rejected_records, .. } => {
                bail!("the demo's {} files were refused ({rejected_records} rejected records)", d.name)
            }
        }
    }

    println!("\nApplications (one per case of the seed; committee of six with demo.chair and demo.reviewer) …");
    let member = |name: &str| ids[name];
    crate::review::seed_demo(&instance, &accounts, member("demo.operator"), member("demo.researcher"), member("demo.chair"), member("demo.reviewer"))
        .await?;
    seed_registry(&instance, &accounts, &holder_files, &sakura_files, now).await?;
    crate::review::seed_demo_job(&instance, &accounts, member("demo.researcher"), member("demo.checker")).await?;
    let dir = args.dir.clone();
    let config =
        niji_server::ServerConfig { analysis: niji_analysis::AnalysisSettings::load(&instance.paths)?, ..niji_server::ServerConfig::default() };
    serve(instance, "127.0.0.1", args.port, config, move |addr| {
        println!("Open http://{addr}/login in a browser. Instance folder: {}. Stop with Ctrl-C.", dir.display());
    })
    .await
}

/// The consent registry of the demo: さくら市立病院 imports the notices it delivered to every
/// patient (丁寧なオプトアウト) and the paper opt-outs of a few (every 40th refuses provision to
/// companies), and issues one access credential for the citizen portal.
async fn seed_registry(
    instance: &Instance,
    accounts: &niji_accounts::Accounts,
    holder_files: &Path,
    sakura_files: &[PathBuf],
    now: OffsetDateTime,
) -> Result<()> {
    const HOLDER: &str = "さくら市立病院";
    let mut patients = Vec::new();
    for file in sakura_files.iter().filter(|f| f.extension().is_some_and(|e| e == "json")) {
        let bundle: serde_json::Value = serde_json::from_slice(&std::fs::read(file)?).with_context(|| format!("reading {}", file.display()))?;
        for entry in bundle["entry"].as_array().into_iter().flatten() {
            let r = &entry["resource"];
            if r["resourceType"] != "Patient" {
                continue;
            }
            let local = r["identifier"].as_array().into_iter().flatten().find(|i| i["system"].as_str().is_some_and(|s| s.starts_with("urn:oid:")));
            if let (Some(id), Some(birth)) = (local.and_then(|i| i["value"].as_str()), r["birthDate"].as_str()) {
                patients.push((id.to_string(), birth.to_string()));
            }
        }
    }
    patients.sort();
    patients.dedup();
    let delivered = (now - time::Duration::days(30)).date();
    let mut csv = String::from("patient_id,choice,scope,date\n");
    for (i, (id, _)) in patients.iter().enumerate() {
        csv.push_str(&format!("{id},notice,,{delivered}\n"));
        if i % 40 == 39 {
            csv.push_str(&format!("{id},opt_out,recipient:company,{delivered}\n"));
        }
    }
    let folder = holder_files.join("registry");
    std::fs::create_dir_all(&folder)?;
    std::fs::write(folder.join("sakura-notices.csv"), &csv)?;
    let holder = niji_registry::HolderActor { holder: HOLDER.into(), audit: cli_actor() };
    let n = niji_registry::import_choices(instance, &holder, csv.as_bytes(), now).await.map_err(|e| anyhow::anyhow!("registry import: {e}"))?;
    println!("\nConsent registry: {HOLDER} imported {n} notices and paper opt-outs ({}).", folder.join("sakura-notices.csv").display());
    let adult = patients.iter().find(|(_, birth)| birth.as_str() < "2000-01-01").context("the demo hospital has no adult patient")?;
    let issued = niji_registry::issue_credential(instance, accounts, &holder, &adult.0, niji_registry::ActingAs::Person, now)
        .await
        .map_err(|e| anyhow::anyhow!("citizen credential: {e}"))?;
    println!("Citizen portal (/citizen/login): access code {} with birth date {} (patient {} of {HOLDER})", issued.access_code, adult.1, adult.0);
    Ok(())
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

/// Where `niji demo` writes the synthetic holders' files: beside the instance folder.
pub fn holder_files_dir(instance_dir: &Path) -> PathBuf {
    let mut name = instance_dir.file_name().map(|n| n.to_os_string()).unwrap_or_else(|| "niji-demo".into());
    name.push("-holder-files");
    instance_dir.with_file_name(name)
}

struct DemoDataset {
    name: &'static str,
    holder: &'static str,
    holder_kind: &'static str,
    title_ja: &'static str,
    title_en: &'static str,
    description_ja: &'static str,
    description_en: &'static str,
    files: Vec<PathBuf>,
}

/// Hospital A hands in CLINS Bundles, hospital B a FHIR Bulk Data export (NDJSON), the insurer
/// every hospital's UKE claims. A and B are the two facilities with the most patients.
fn demo_datasets(holder_files: &Path) -> Result<Vec<DemoDataset>> {
    let mut facilities: Vec<(usize, PathBuf)> = Vec::new();
    for e in std::fs::read_dir(holder_files.join("fhir"))? {
        let p = e?.path();
        facilities.push((std::fs::read_dir(&p)?.count(), p));
    }
    facilities.sort_by(|a, b| b.cmp(a));
    if facilities.len() < 2 {
        bail!("the synthetic population has fewer than two hospitals; use more --persons");
    }
    let hospital_b = holder_files.join("ndjson").join(facilities[1].1.file_name().expect("a facility folder"));
    let files = |dir: &Path| -> Result<Vec<PathBuf>> {
        let mut out = Vec::new();
        crate::check::collect(dir, &mut out)?;
        out.sort();
        Ok(out)
    };
    Ok(vec![
        DemoDataset {
            name: "sakura-ehr",
            holder: "さくら市立病院",
            holder_kind: "hospital",
            title_ja: "さくら市立病院 電子カルテ（CLINS）",
            title_en: "Sakura City Hospital EHR (CLINS)",
            description_ja: "電子カルテ情報共有サービス（CLINS）形式の診療情報：患者、受診、傷病名、処方、検体検査結果、アレルギー。合成データ。",
            description_en: "Clinical records in the CLINS format: patients, encounters, conditions, prescriptions, lab results, allergies. Synthetic data.",
            files: files(&facilities[0].1)?,
        },
        DemoDataset {
            name: "minato-ehr",
            holder: "みなと総合病院",
            holder_kind: "hospital",
            title_ja: "みなと総合病院 電子カルテ（FHIR Bulk Data）",
            title_en: "Minato General Hospital EHR (FHIR Bulk Data)",
            description_ja: "FHIR Bulk Data（NDJSON）で提供された診療情報。合成データ。",
            description_en: "Clinical records handed in as a FHIR Bulk Data export (NDJSON). Synthetic data.",
            files: files(&hospital_b)?,
        },
        DemoDataset {
            name: "kyokai-claims",
            holder: "協会けんぽ 東京支部",
            holder_kind: "insurer",
            title_ja: "医科レセプト（レセプト電算処理システム）",
            title_en: "Medical claims (UKE receipt files)",
            description_ja: "保険者に届いた医科レセプト：レセプト、傷病名、診療行為・医薬品・特定器材・コメントの明細。合成データ。",
            description_en: "Medical claims as received by the insurer: claims, diagnoses, and lines for procedures, drugs, materials and comments. Synthetic data.",
            files: files(&holder_files.join("uke"))?,
        },
    ])
}
