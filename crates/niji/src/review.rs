//! `niji applications` and `niji permits`: the review workflow's state for scripts and operators
//! (text or JSON), and the demo's review data (one application per case of the seed).

use anyhow::{Context, Result};
use clap::Args;
use niji_applications::{ApplicationView, PermitView};
use serde::Serialize;

use crate::DirArg;

#[derive(Args)]
pub struct ListArgs {
    #[command(flatten)]
    dir: DirArg,
    /// Print JSON.
    #[arg(long)]
    json: bool,
}

async fn store(dir: &DirArg) -> Result<niji_store::Store> {
    niji_store::Store::open_sqlite(&niji_instance::InstancePaths::new(&dir.dir).metadata_db())
        .await
        .with_context(|| format!("opening the metadata store of {}", dir.dir.display()))
}

/// `niji applications --json`: one element per application.
#[derive(Serialize)]
struct ApplicationJson {
    id: i64,
    title: String,
    applicant: String,
    status: String,
    status_ja: &'static str,
    case: Option<u8>,
    tier: Option<String>,
    reasons: Vec<ReasonJson>,
    criteria_version: Option<String>,
    fee_yen: Option<i64>,
    submitted_at: Option<String>,
    deadline: Option<String>,
    decided_at: Option<String>,
    decision: Option<String>,
}

#[derive(Serialize)]
struct ReasonJson {
    code: &'static str,
    text_ja: String,
    text_en: String,
}

fn rfc3339(t: Option<i64>) -> Option<String> {
    t.and_then(|t| time::OffsetDateTime::from_unix_timestamp(t).ok()).and_then(|t| t.format(&time::format_description::well_known::Rfc3339).ok())
}

fn application_json(a: ApplicationView, applicant: String) -> ApplicationJson {
    ApplicationJson {
        id: a.id,
        title: a.title,
        applicant,
        status: a.status.as_str().to_string(),
        status_ja: a.status.label_ja(),
        case: a.case,
        tier: a.tier,
        reasons: a.reasons.iter().map(|r| ReasonJson { code: r.code().as_str(), text_ja: r.text_ja(), text_en: r.text_en() }).collect(),
        criteria_version: a.criteria_version,
        fee_yen: a.fee_yen,
        submitted_at: rfc3339(a.submitted_at),
        deadline: rfc3339(a.deadline_at).map(|d| d[..10].to_string()),
        decided_at: rfc3339(a.decided_at),
        decision: a.decision,
    }
}

pub async fn applications(args: ListArgs) -> Result<()> {
    let store = store(&args.dir).await?;
    let mut out = Vec::new();
    for a in niji_applications::list_applications(&store).await? {
        let applicant = store.user(a.applicant_id).await?.map(|u| u.username).unwrap_or_default();
        out.push(application_json(a, applicant));
    }
    if args.json {
        println!("{}", serde_json::to_string_pretty(&out)?);
        return Ok(());
    }
    if out.is_empty() {
        println!("No applications yet.");
    }
    for a in &out {
        println!(
            "#{} {} [{}] case {} tier {} fee ¥{} deadline {} — {}",
            a.id,
            a.status_ja,
            a.status,
            a.case.map_or("-".into(), |c| c.to_string()),
            a.tier.as_deref().unwrap_or("-"),
            a.fee_yen.unwrap_or(0),
            a.deadline.as_deref().unwrap_or("-"),
            a.title
        );
        for r in &a.reasons {
            println!("    {}", r.text_ja);
        }
    }
    Ok(())
}

/// `niji permits --json`: each permit's policy.
#[derive(Serialize)]
struct PermitJson {
    id: i64,
    application_id: i64,
    version: i64,
    status: String,
    key_id: String,
    key_present: bool,
    purpose_category: &'static str,
    track: &'static str,
    datasets: Vec<GrantJson>,
    linkage: Vec<[String; 2]>,
    recipients: Vec<String>,
    researchers: Vec<i64>,
    output_preset: String,
    starts_on: String,
    expires_on: String,
    conditions: Vec<String>,
}

#[derive(Serialize)]
struct GrantJson {
    dataset: String,
    tables: Vec<TableJson>,
}

#[derive(Serialize)]
struct TableJson {
    table: String,
    columns: Vec<String>,
}

fn permit_json(p: PermitView) -> PermitJson {
    let policy = p.policy;
    PermitJson {
        id: p.id,
        application_id: p.application_id,
        version: p.version,
        status: p.status,
        key_id: p.key_id,
        key_present: p.key_present,
        purpose_category: policy.purpose_category.as_str(),
        track: policy.track.as_str(),
        datasets: policy
            .datasets
            .into_iter()
            .map(|d| GrantJson {
                dataset: d.dataset,
                tables: d.tables.into_iter().map(|t| TableJson { table: t.table, columns: t.columns }).collect(),
            })
            .collect(),
        linkage: policy.linkage.into_iter().map(|l| [l.left, l.right]).collect(),
        recipients: policy.recipients.into_iter().map(|r| r.organization).collect(),
        researchers: policy.researchers.into_iter().map(|r| r.account_id).collect(),
        output_preset: policy.output_preset,
        starts_on: policy.starts_on.to_string(),
        expires_on: policy.expires_on.to_string(),
        conditions: policy.conditions,
    }
}

pub async fn permits(args: ListArgs) -> Result<()> {
    let store = store(&args.dir).await?;
    let out: Vec<PermitJson> = niji_applications::list_permits(&store).await?.into_iter().map(permit_json).collect();
    if args.json {
        println!("{}", serde_json::to_string_pretty(&out)?);
        return Ok(());
    }
    if out.is_empty() {
        println!("No permits yet.");
    }
    for p in &out {
        let columns: usize = p.datasets.iter().flat_map(|d| &d.tables).map(|t| t.columns.len()).sum();
        println!(
            "permit {} (application #{}, v{}) {}: {} datasets, {} columns, {} – {}, preset {}{}",
            p.id,
            p.application_id,
            p.version,
            p.status,
            p.datasets.len(),
            columns,
            p.starts_on,
            p.expires_on,
            p.output_preset,
            if p.key_present { "" } else { ", key destroyed" }
        );
    }
    Ok(())
}

/// The demo's review state: criteria and tariff, consent scopes of its three datasets, an
/// accredited researcher, a committee of six (the demo chair and reviewer plus four members
/// whose accounts are not printed), and one application per case of the seed — notified with a
/// permit, waiting for votes, approved with conditions, changes requested.
pub async fn seed_demo(
    instance: &niji_instance::Instance,
    accounts: &niji_accounts::Accounts,
    operator: i64,
    researcher: i64,
    chair: i64,
    reviewer: i64,
) -> Result<()> {
    use niji_applications::{Actor, ChairDecision};
    use niji_review::*;
    let store = &instance.store;
    let today = crate::intake::today();
    let today = time::Date::from_calendar_date(today.year as i32, time::Month::try_from(today.month).expect("a month"), today.day).expect("a date");
    let ops = Actor::load(store, operator).await?;
    niji_applications::publish_defaults(instance, &ops).await?;
    let scope = |purposes: Vec<PurposeCategory>, diseases: &[&str], kinds: Vec<RecipientKind>| ConsentScope {
        purposes,
        diseases: diseases.iter().map(|d| d.to_string()).collect(),
        recipient_kinds: kinds,
        recipients: vec![],
    };
    use PurposeCategory as P;
    use RecipientKind as K;
    niji_applications::set_consent_scope(
        instance,
        &ops,
        "sakura-ehr",
        &scope(vec![P::AcademicResearch, P::TreatmentDevelopment], &["E11", "I10", "E78"], vec![K::Academia, K::Hospital]),
    )
    .await?;
    niji_applications::set_consent_scope(instance, &ops, "minato-ehr", &scope(vec![P::AcademicResearch], &[], vec![K::Academia])).await?;
    niji_applications::set_consent_scope(
        instance,
        &ops,
        "kyokai-claims",
        &scope(vec![P::AcademicResearch, P::PublicHealthPolicy], &[], vec![K::Academia, K::Municipality, K::Government]),
    )
    .await?;
    let iso = |d: time::Date| d.to_string();
    store
        .add_accreditation(
            &niji_store::NewAccreditation {
                user_id: researcher,
                course: "研究倫理・個人情報保護 e-ラーニング",
                completed_on: &iso(today - time::Duration::days(30)),
                expires_on: &iso(today + time::Duration::days(335)),
                recorded_by: "demo",
            },
            0,
        )
        .await?;

    // The committee: six members meeting every rule of the criteria.
    let committee = store.create_committee("Niji 審査委員会", 0).await?;
    let mut members = vec![(chair, "medicine_science", true, "male"), (reviewer, "humanities_law", true, "female")];
    for (i, (field, external, gender)) in [
        ("medicine_science", false, "female"),
        ("humanities_law", false, "male"),
        ("general_public", true, "female"),
        ("general_public", false, "male"),
    ]
    .into_iter()
    .enumerate()
    {
        let created = accounts
            .create_account(
                niji_accounts::NewAccount {
                    username: format!("committee.member{}", i + 1),
                    display_name: format!("審査委員 {}", i + 1),
                    organization: Some(("審査委員会".into(), "review_body".into())),
                    roles: vec![niji_core::Role::Reviewer],
                    password: {
                        use rand::Rng;
                        let bytes: [u8; 24] = rand::rngs::OsRng.gen();
                        hex::encode(bytes)
                    },
                    totp: niji_accounts::TotpSetup::AtFirstLogin,
                },
                &crate::cli_actor(),
                time::OffsetDateTime::now_utc(),
            )
            .await?;
        members.push((created.user_id, field, external, gender));
    }
    for (user, field, external, gender) in &members {
        let name = store.user(*user).await?.map(|u| u.display_name).unwrap_or_default();
        store
            .add_committee_member(
                &niji_store::NewCommitteeMember {
                    committee_id: committee,
                    user_id: Some(*user),
                    display_name: &name,
                    field,
                    external: *external,
                    gender,
                },
                0,
            )
            .await?;
    }
    let mut voters = Vec::new();
    for (user, ..) in &members {
        voters.push(Actor::load(store, *user).await?);
    }

    // The applications.
    let res = Actor::load(store, researcher).await?;
    let display = store.user(researcher).await?.map(|u| u.display_name).unwrap_or_default();
    let var = |dataset: &str, table: &str, column: &str, why: &str| RequestedVariable {
        dataset: dataset.into(),
        table: table.into(),
        column: column.into(),
        justification: why.into(),
    };
    let base = Application {
        title: String::new(),
        purpose: String::new(),
        purpose_category: P::AcademicResearch,
        diseases: vec!["E11".into()],
        recipients: vec![Recipient { organization: "東都大学 医学部".into(), kind: K::Academia, similar_regulation: true }],
        track: Track::Visiting,
        variables: vec![
            var("sakura-ehr", "conditions", "code", "対象疾患の特定"),
            var("sakura-ehr", "medications", "code", "治療薬の切替えの把握"),
            var("sakura-ehr", "lab_results", "value", "HbA1c の推移"),
        ],
        linkage: vec![],
        analysis_plan: "治療薬切替え前後の HbA1c を混合効果モデルで比較する。".into(),
        software: vec![Software { name: "R".into(), version: "4.4".into() }],
        duration_months: 12,
        researchers: vec![NamedResearcher { account_id: researcher, display_name: display }],
        genomic_data: false,
        rare_disease: false,
        expected_population: Some(20_000),
        cohort: None,
    };
    let mut forms = Vec::new();
    // Case 1: within the consent.
    let mut a = base.clone();
    a.title = "2型糖尿病患者における治療薬切替えと HbA1c の推移".into();
    a.purpose = "2型糖尿病の治療方法の改善に資するため、治療薬の切替えと血糖管理の関係を明らかにする。".into();
    forms.push(a);
    // Case 2: a related disease (1型糖尿病, same ICD-10 block as the consented E11).
    let mut a = base.clone();
    a.title = "1型糖尿病の治療経過に関する記述研究".into();
    a.purpose = "1型糖尿病患者のインスリン治療と合併症の経過を記述する。".into();
    a.diseases = vec!["E10".into()];
    forms.push(a);
    // Case 3: the same purpose, a new recipient under similar regulation.
    let mut a = base.clone();
    a.title = "市の糖尿病重症化予防事業の効果検証".into();
    a.purpose = "2型糖尿病の重症化予防事業の対象者選定基準を改善する。".into();
    a.recipients = vec![Recipient { organization: "さくら市 健康福祉部".into(), kind: K::Municipality, similar_regulation: true }];
    forms.push(a);
    // Case 4: a different purpose and recipient, linking two datasets.
    let mut a = base.clone();
    a.title = "新規糖尿病治療薬の市販後処方実態の把握".into();
    a.purpose = "新薬の開発のため、既存治療薬の処方実態と医療費を把握する。".into();
    a.purpose_category = P::DrugAndDeviceDevelopment;
    a.recipients = vec![Recipient { organization: "株式会社ニジ製薬".into(), kind: K::Company, similar_regulation: false }];
    a.variables.push(var("kyokai-claims", "claim_lines", "points", "医療費の把握"));
    a.linkage = vec![LinkagePair::new("sakura-ehr", "kyokai-claims")];
    forms.push(a);

    for (i, form) in forms.iter().enumerate() {
        let id = niji_applications::create_draft(instance, &res, form).await?;
        let submitted = niji_applications::submit(instance, &res, id, today).await?;
        match i {
            // Case 2: two opinions so far; waiting for the others.
            1 => {
                for v in &voters[..2] {
                    niji_applications::cast_vote(instance, v, id, Vote::Approve, "医学的に妥当と考える。").await?;
                }
            }
            // Case 3: approved with conditions.
            2 => {
                for v in &voters[..5] {
                    niji_applications::cast_vote(instance, v, id, Vote::ApproveWithConditions, "市への提供は集計値に限るべき。").await?;
                }
                let decision = ChairDecision {
                    verdict: Vote::ApproveWithConditions,
                    conditions: vec!["市への報告は集計表に限り、10未満のセルは秘匿する。".into()],
                    reasons: vec!["同一目的で、提供先は同等の規律に服する。".into()],
                    scope: None,
                    output_preset: Some("strict".into()),
                    cohort: None,
                    // Dates the researchers see move by up to 30 days per person.
                    date_shift_days: Some(30),
                };
                niji_applications::decide(instance, &voters[0], id, decision, today).await?;
            }
            // Case 4: changes requested.
            3 => {
                for v in &voters[1..6] {
                    niji_applications::cast_vote(instance, v, id, Vote::RequestChanges, "企業への提供の必要性と最小化の説明が不足。").await?;
                }
                let decision =
                    ChairDecision::new(Vote::RequestChanges, vec!["利用目的が同意の範囲外であり、変数の最小化の説明が不足している。".into()]);
                niji_applications::decide(instance, &voters[0], id, decision, today).await?;
            }
            _ => {}
        }
        let status = store.application(id).await?.map(|a| a.status).unwrap_or_default();
        println!(
            "  #{id} case {} ({}), tier {}: {} → {status}",
            submitted.triage.case.number(),
            submitted.triage.case.label_ja(),
            submitted.triage.tier.label_ja(),
            form.title
        );
    }
    Ok(())
}

/// The demo's finished job: after the permits and the consent registry exist, `researcher`
/// submits one aggregate output under the first permit (application 1), and two different output
/// checkers (`checker` and a second one created here, like the committee members) approve it, so
/// that the workspace shows a job and a release.
pub async fn seed_demo_job(instance: &niji_instance::Instance, accounts: &niji_accounts::Accounts, researcher: i64, checker: i64) -> Result<()> {
    use niji_analysis::jobs::{sign_off, submit_job, SignOff};
    let permit = niji_applications::list_permits(&instance.store)
        .await?
        .into_iter()
        .find(|p| p.application_id == 1)
        .context("the demo has no permit for application 1")?;
    let second = accounts
        .create_account(
            niji_accounts::NewAccount {
                username: "output.checker2".into(),
                display_name: "出力確認者 2".into(),
                organization: Some(("Niji 運用事務局".into(), "platform".into())),
                roles: vec![niji_core::Role::OutputChecker],
                password: {
                    use rand::Rng;
                    let bytes: [u8; 24] = rand::rngs::OsRng.gen();
                    hex::encode(bytes)
                },
                totp: niji_accounts::TotpSetup::AtFirstLogin,
            },
            &crate::cli_actor(),
            time::OffsetDateTime::now_utc(),
        )
        .await?
        .user_id;
    // By ICD-10 chapter: a hospital's few dozen patients spread over many codes, and a row of
    // fewer than 10 persons is left out of a release, key and all.
    let outputs = [(
        "conditions_by_chapter".to_string(),
        "SELECT substr(code, 1, 1) AS chapter, count(*) AS n FROM sakura_ehr.conditions GROUP BY chapter ORDER BY chapter".to_string(),
    )];
    let job = submit_job(instance, researcher, permit.id, &outputs).await.map_err(|e| anyhow::anyhow!("demo job: {e}"))?;
    if job.status != "awaiting_review" {
        anyhow::bail!("the demo job was {} ({})", job.status, job.reason.unwrap_or_default());
    }
    let mut released = None;
    for who in [checker, second] {
        if let SignOff::Released { release_id } =
            sign_off(instance, who, job.id, true, "approved").await.map_err(|e| anyhow::anyhow!("demo sign-off: {e}"))?
        {
            released = Some(release_id);
        }
    }
    let release = released.context("the demo job was not released")?;
    println!(
        "Analysis workspace (/permits/{}/workspace): job #{} (1 output) approved by demo.checker and output.checker2 → release #{release}",
        permit.id, job.id
    );
    Ok(())
}

/// `niji review …`: an operator sets up review (criteria, tariff, consent scopes, accreditations,
/// committees). Each command acts as an operator account (`--as`), and is logged.
#[derive(clap::Subcommand)]
pub enum ReviewCommand {
    /// Publish the built-in review criteria and tariff unless some are published.
    Defaults(AsOperator),
    /// Publish a new version of the review criteria (審査基準) from a TOML file (see crates/niji-review/criteria/).
    Criteria {
        #[command(flatten)]
        op: AsOperator,
        file: std::path::PathBuf,
    },
    /// Publish a new version of the tariff from a TOML file (see crates/niji-review/tariff/).
    Tariff {
        #[command(flatten)]
        op: AsOperator,
        file: std::path::PathBuf,
    },
    /// Record the consent scope a dataset's data was collected under.
    Consent {
        #[command(flatten)]
        op: AsOperator,
        #[arg(long)]
        dataset: String,
        /// Purpose categories, comma-separated (academic_research, treatment_development, drug_and_device_development, drug_safety, public_health_policy, healthcare_quality, ai_development).
        #[arg(long, value_delimiter = ',')]
        purposes: Vec<String>,
        /// ICD-10 codes or prefixes, comma-separated (none: any disease).
        #[arg(long, value_delimiter = ',')]
        diseases: Vec<String>,
        /// Recipient kinds, comma-separated (academia, company, hospital, municipality, government, other).
        #[arg(long, value_delimiter = ',')]
        recipient_kinds: Vec<String>,
        /// Named recipients, comma-separated.
        #[arg(long, value_delimiter = ',')]
        recipients: Vec<String>,
    },
    /// Record a researcher's completed course (accreditation).
    Accredit {
        #[command(flatten)]
        op: AsOperator,
        /// The researcher's user name.
        #[arg(long)]
        user: String,
        #[arg(long)]
        course: String,
        /// YYYY-MM-DD
        #[arg(long)]
        completed: String,
        /// YYYY-MM-DD
        #[arg(long)]
        expires: String,
    },
    /// Create a review committee.
    Committee {
        #[command(flatten)]
        op: AsOperator,
        #[arg(long)]
        name: String,
    },
    /// Add a member to a committee.
    Member {
        #[command(flatten)]
        op: AsOperator,
        /// The committee's name.
        #[arg(long)]
        committee: String,
        /// The member's account (user name), if the member votes in the portal.
        #[arg(long)]
        user: Option<String>,
        /// Display name (default: the account's).
        #[arg(long)]
        name: Option<String>,
        /// medicine_science, humanities_law or general_public.
        #[arg(long)]
        field: String,
        /// From outside the operating organization.
        #[arg(long)]
        external: bool,
        /// female, male or other.
        #[arg(long)]
        gender: String,
    },
}

#[derive(Args)]
pub struct AsOperator {
    #[command(flatten)]
    dir: DirArg,
    /// The operator account acting (user name).
    #[arg(long = "as")]
    as_user: String,
}

fn parse_code<T: serde::de::DeserializeOwned>(what: &str, s: &str) -> Result<T> {
    serde_json::from_value(serde_json::Value::String(s.trim().to_string())).with_context(|| format!("{what}: {s:?} is not one of the known values"))
}

fn parse_day(what: &str, s: &str) -> Result<time::Date> {
    time::Date::parse(s, &time::macros::format_description!("[year]-[month]-[day]")).with_context(|| format!("{what}: expected YYYY-MM-DD"))
}

pub async fn review_command(cmd: ReviewCommand) -> Result<()> {
    use niji_applications as w;
    let op = match &cmd {
        ReviewCommand::Defaults(op)
        | ReviewCommand::Criteria { op, .. }
        | ReviewCommand::Tariff { op, .. }
        | ReviewCommand::Consent { op, .. }
        | ReviewCommand::Accredit { op, .. }
        | ReviewCommand::Committee { op, .. }
        | ReviewCommand::Member { op, .. } => op,
    };
    let instance = crate::open(&op.dir.dir).await?;
    let user = instance.store.user_by_username(&op.as_user).await?.with_context(|| format!("--as: no account {:?}", op.as_user))?;
    let actor = w::Actor::load(&instance.store, user.id).await?;
    let user_id = |name: &str| {
        let store = instance.store.clone();
        let name = name.to_string();
        async move { store.user_by_username(&name).await?.map(|u| u.id).with_context(|| format!("no account {name:?}")) }
    };
    match cmd {
        ReviewCommand::Defaults(_) => {
            w::publish_defaults(&instance, &actor).await?;
            println!("Review criteria and tariff are published.");
        }
        ReviewCommand::Criteria { file, .. } => {
            let text = std::fs::read_to_string(&file).with_context(|| format!("reading {}", file.display()))?;
            println!("Published review criteria {}.", w::publish_criteria(&instance, &actor, &text).await?);
        }
        ReviewCommand::Tariff { file, .. } => {
            let text = std::fs::read_to_string(&file).with_context(|| format!("reading {}", file.display()))?;
            println!("Published tariff {}.", w::publish_tariff(&instance, &actor, &text).await?);
        }
        ReviewCommand::Consent { dataset, purposes, diseases, recipient_kinds, recipients, .. } => {
            let scope = niji_review::ConsentScope {
                purposes: purposes.iter().filter(|p| !p.trim().is_empty()).map(|p| parse_code("--purposes", p)).collect::<Result<_>>()?,
                diseases: diseases.into_iter().map(|d| d.trim().to_string()).filter(|d| !d.is_empty()).collect(),
                recipient_kinds: recipient_kinds
                    .iter()
                    .filter(|k| !k.trim().is_empty())
                    .map(|k| parse_code("--recipient-kinds", k))
                    .collect::<Result<_>>()?,
                recipients: recipients.into_iter().map(|r| r.trim().to_string()).filter(|r| !r.is_empty()).collect(),
            };
            w::set_consent_scope(&instance, &actor, &dataset, &scope).await?;
            println!("Consent scope of {dataset} recorded.");
        }
        ReviewCommand::Accredit { user, course, completed, expires, .. } => {
            let researcher = user_id(&user).await?;
            let id = w::add_accreditation(
                &instance,
                &actor,
                researcher,
                &course,
                parse_day("--completed", &completed)?,
                parse_day("--expires", &expires)?,
            )
            .await?;
            println!("Accreditation {id} recorded for {user}.");
        }
        ReviewCommand::Committee { name, .. } => {
            println!("Committee {} created.", w::create_committee(&instance, &actor, &name).await?);
        }
        ReviewCommand::Member { committee, user, name, field, external, gender, .. } => {
            let committee_id = instance
                .store
                .committees()
                .await?
                .into_iter()
                .find(|c| c.name == committee)
                .map(|c| c.id)
                .with_context(|| format!("--committee: no committee {committee:?}"))?;
            let (user_id, default_name) = match &user {
                Some(u) => {
                    let row = instance.store.user_by_username(u).await?.with_context(|| format!("--user: no account {u:?}"))?;
                    (Some(row.id), row.display_name)
                }
                None => (None, String::new()),
            };
            let display_name = name.unwrap_or(default_name);
            if display_name.trim().is_empty() {
                anyhow::bail!("--name: a member without an account needs a name");
            }
            let member =
                w::NewMember { user_id, display_name, field: parse_code("--field", &field)?, external, gender: parse_code("--gender", &gender)? };
            println!("Member {} added to {committee}.", w::add_committee_member(&instance, &actor, committee_id, &member).await?);
        }
    }
    Ok(())
}
