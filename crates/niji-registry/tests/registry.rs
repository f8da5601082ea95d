//! The registry over a real instance: a holder's patients ingested through the intake, access
//! credentials issued and used, choices recorded, exclusions read at run time.

use std::sync::Arc;

use niji_accounts::{Accounts, AccountsConfig};
use niji_consent::{Choice, ConsentScope, OptOutScope, Use};
use niji_instance::Instance;
use niji_registry::{import_choices, ActingAs, Author, HolderActor, RegistryError};
use niji_review::{PurposeCategory, RecipientKind};
use time::macros::datetime;
use time::OffsetDateTime;

const HOLDER: &str = "テスト病院";

/// Three patients of one hospital: two adults and a child born 2015-06-10.
const PATIENTS: &str = r#"{"resourceType":"Patient","id":"a","identifier":[{"system":"urn:oid:1.2.392.100495.20.3.51.11234567890","value":"1001"}],"name":[{"text":"山田 太郎"}],"gender":"male","birthDate":"1980-04-01"}
{"resourceType":"Patient","id":"b","identifier":[{"system":"urn:oid:1.2.392.100495.20.3.51.11234567890","value":"1002"}],"name":[{"text":"佐藤 花子"}],"gender":"female","birthDate":"1975-11-30"}
{"resourceType":"Patient","id":"c","identifier":[{"system":"urn:oid:1.2.392.100495.20.3.51.11234567890","value":"1003"}],"name":[{"text":"鈴木 翔"}],"gender":"male","birthDate":"2015-06-10"}
"#;

struct World {
    _tmp: tempfile::TempDir,
    instance: Instance,
    accounts: Accounts,
    holder: HolderActor,
}

async fn world() -> World {
    let tmp = tempfile::tempdir().unwrap();
    let instance = Instance::init(&tmp.path().join("i"), "test").await.unwrap();
    instance.store.create_organization(HOLDER, "hospital", 0).await.unwrap();
    let files = tmp.path().join("export");
    std::fs::create_dir_all(&files).unwrap();
    std::fs::write(files.join("Patient.ndjson"), PATIENTS).unwrap();
    let submission = niji_intake::Submission {
        holder: HOLDER.into(),
        dataset: "test-ehr".into(),
        description: None,
        files: vec![files.join("Patient.ndjson")],
        csv_mapping: None,
        on_reject: niji_intake::OnReject::RefuseSubmission,
        actor: "user:1".into(),
    };
    let options = niji_intake::IntakeOptions::new(niji_ingest::IngestConfig::new(niji_ingest::Date::new(2026, 11, 21).unwrap()));
    match niji_intake::ingest(&instance, submission, &options, Arc::new(niji_intake::NoProgress)).await.unwrap() {
        niji_intake::Outcome::Committed(_) => {}
        niji_intake::Outcome::Refused { files, .. } => panic!("refused: {:?}", files.iter().flat_map(|f| f.rejected_lines()).collect::<Vec<_>>()),
    }
    let accounts = Accounts::new(instance.store.clone(), instance.audit_sink(), instance.accounts_key(), AccountsConfig::default());
    World { _tmp: tmp, instance, accounts, holder: HolderActor { holder: HOLDER.into(), audit: "user:1".into() } }
}

fn drug_use(at: OffsetDateTime) -> Use {
    Use { purpose: PurposeCategory::DrugAndDeviceDevelopment, recipients: vec![RecipientKind::Company], diseases: vec![], at }
}

async fn excluded_count(w: &World, use_: &Use) -> (usize, i64) {
    let (set, version) = niji_registry::exclusions(&w.instance, use_).await.unwrap();
    (set.len(), version)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_citizen_signs_in_with_code_and_birth_date_and_an_opt_out_applies_from_then_on() {
    let w = world().await;
    let t0 = datetime!(2026-11-22 01:00 UTC);
    let issued = niji_registry::issue_credential(&w.instance, &w.accounts, &w.holder, "1001", ActingAs::Person, t0).await.unwrap();
    assert_eq!(issued.access_code.len(), 24, "five groups of four: {}", issued.access_code);
    assert_eq!(issued.valid_until, None);

    // The code alone, or with another birth date, opens nothing; with the birth date (any
    // form, 和暦 included) it does.
    for birth in ["1980-04-02", "", "1001"] {
        assert!(matches!(
            niji_registry::sign_in(&w.instance, &w.accounts, &issued.access_code, birth, t0).await,
            Err(RegistryError::InvalidCredentials)
        ));
    }
    let lower = issued.access_code.to_lowercase().replace('-', " ");
    for birth in ["1980-04-01", "昭和55年4月1日"] {
        let session = niji_registry::sign_in(&w.instance, &w.accounts, &lower, birth, t0).await.unwrap();
        assert_eq!(session.stage, niji_accounts::SessionStage::SignedIn, "2FA is optional for citizens");
    }
    // A citizen who adds an authenticator app is asked for its code from then on.
    let session = niji_registry::sign_in(&w.instance, &w.accounts, &issued.access_code, "1980-04-01", t0).await.unwrap();
    let enrolment = w.accounts.begin_totp_enrolment(issued.user_id, t0).await.unwrap();
    let code = niji_accounts::totp_code(&enrolment.secret_base32, t0).unwrap();
    w.accounts.confirm_totp_enrolment(&session.token, &code, t0).await.unwrap();
    let session = niji_registry::sign_in(&w.instance, &w.accounts, &issued.access_code, "1980-04-01", t0).await.unwrap();
    assert_eq!(session.stage, niji_accounts::SessionStage::AwaitingTotp);

    // Unknown patients, and other holders' numbers, are refused.
    let other = HolderActor { holder: "別の病院".into(), audit: "user:1".into() };
    assert!(matches!(
        niji_registry::issue_credential(&w.instance, &w.accounts, &other, "1001", ActingAs::Person, t0).await,
        Err(RegistryError::UnknownPatient)
    ));
    assert!(matches!(
        niji_registry::issue_credential(&w.instance, &w.accounts, &w.holder, "9999", ActingAs::Person, t0).await,
        Err(RegistryError::UnknownPatient)
    ));

    assert_eq!(excluded_count(&w, &drug_use(t0)).await, (0, 0));
    let t1 = datetime!(2026-11-22 02:00 UTC);
    let author = Author::Citizen { user_id: issued.user_id };
    let id = niji_registry::record_choice(&w.instance, &author, Choice::OptOut { scope: OptOutScope::All }, t1).await.unwrap();
    // A use at t1 or later excludes the person; a use before t1 (yesterday's release) did not.
    assert_eq!(excluded_count(&w, &drug_use(t1)).await, (1, id));
    assert_eq!(excluded_count(&w, &drug_use(t0)).await, (0, id));

    let view = niji_registry::citizen_view(&w.instance, issued.user_id, t1).await.unwrap();
    assert_eq!(view.entries.len(), 1);
    assert!(niji_registry::refuses_everything(&view.state));

    // Withdrawing the opt-out includes the person again, from then on only.
    let t2 = datetime!(2026-11-22 03:00 UTC);
    niji_registry::record_choice(&w.instance, &author, Choice::Withdraw { entry: id as u64 }, t2).await.unwrap();
    assert_eq!(excluded_count(&w, &drug_use(t2)).await.0, 0);
    assert_eq!(excluded_count(&w, &drug_use(t1)).await.0, 1, "the opt-out still covers the time it was in force");

    // The log names entries by id and code only.
    let log = niji_log::LogReader::open(&w.instance.paths.log()).unwrap();
    let entries: Vec<String> = (0..log.size()).map(|i| String::from_utf8(log.entry(i).unwrap()).unwrap()).collect();
    assert!(entries.iter().any(|e| e.contains("registry.choice") && e.contains("opt_out")));
    // Hashes and ids in hex (16 characters or more) are left out first: "1001" turns up in one
    // now and then; so is the entry's time (its nanoseconds are the clock's, and held "1980"
    // once in a CI run).
    let without_hashes = |e: &str| -> String {
        let e = match serde_json::from_str::<serde_json::Value>(e) {
            Ok(serde_json::Value::Object(mut fields)) => {
                fields.remove("time");
                serde_json::Value::Object(fields).to_string()
            }
            _ => e.to_string(),
        };
        e.split(|c: char| !c.is_ascii_alphanumeric())
            .filter(|t| !(t.len() >= 16 && t.chars().all(|c| c.is_ascii_hexdigit())))
            .collect::<Vec<_>>()
            .join(" ")
    };
    assert!(entries.iter().map(|e| without_hashes(e)).all(|e| !e.contains("1980") && !e.contains("1001")));
    assert!(entries.iter().all(|e| !e.contains(&issued.access_code[10..])));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_parents_consent_works_for_a_minor_and_ends_at_majority() {
    let w = world().await;
    let now = datetime!(2026-11-22 01:00 UTC);
    // An adult has no parent credential.
    assert!(matches!(
        niji_registry::issue_credential(&w.instance, &w.accounts, &w.holder, "1001", ActingAs::Parent, now).await,
        Err(RegistryError::AlreadyOfAge)
    ));
    let parent = niji_registry::issue_credential(&w.instance, &w.accounts, &w.holder, "1003", ActingAs::Parent, now).await.unwrap();
    assert_eq!(parent.valid_until, Some(time::macros::date!(2033 - 06 - 10)));
    let author = Author::Citizen { user_id: parent.user_id };
    let scope =
        ConsentScope { purposes: vec![PurposeCategory::AcademicResearch], recipients: vec![RecipientKind::Academia], diseases: vec!["J45".into()] };
    niji_registry::record_choice(&w.instance, &author, Choice::Consent { scope }, now).await.unwrap();
    let asthma =
        |at| Use { purpose: PurposeCategory::AcademicResearch, recipients: vec![RecipientKind::Academia], diseases: vec!["J45.0".into()], at };
    assert_eq!(excluded_count(&w, &asthma(now)).await.0, 0, "within the parent's consent");
    assert_eq!(excluded_count(&w, &drug_use(now)).await.0, 1, "outside it");
    // At majority the parent's consent lapses and the parent's credential stops working.
    let adult = datetime!(2033-06-10 00:00 +09:00);
    assert_eq!(excluded_count(&w, &asthma(adult)).await.0, 1);
    assert_eq!(excluded_count(&w, &asthma(datetime!(2033-06-09 23:59 +09:00))).await.0, 0);
    assert!(matches!(
        niji_registry::sign_in(&w.instance, &w.accounts, &parent.access_code, "2015-06-10", adult).await,
        Err(RegistryError::CredentialEnded)
    ));
    assert!(matches!(
        niji_registry::record_choice(&w.instance, &author, Choice::OptOut { scope: OptOutScope::All }, adult).await,
        Err(RegistryError::CredentialEnded)
    ));
    // The person's own credential then gives their own consent.
    let own = niji_registry::issue_credential(&w.instance, &w.accounts, &w.holder, "1003", ActingAs::Person, adult).await.unwrap();
    let scope = ConsentScope { purposes: vec![PurposeCategory::AcademicResearch], recipients: vec![RecipientKind::Academia], diseases: vec![] };
    niji_registry::record_choice(&w.instance, &Author::Citizen { user_id: own.user_id }, Choice::Consent { scope }, adult).await.unwrap();
    assert_eq!(excluded_count(&w, &asthma(adult + time::Duration::minutes(1))).await.0, 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_citizen_reaches_only_their_own_entries() {
    let w = world().await;
    let now = datetime!(2026-11-22 01:00 UTC);
    let a = niji_registry::issue_credential(&w.instance, &w.accounts, &w.holder, "1001", ActingAs::Person, now).await.unwrap();
    let b = niji_registry::issue_credential(&w.instance, &w.accounts, &w.holder, "1002", ActingAs::Person, now).await.unwrap();
    let b_entry = niji_registry::record_choice(&w.instance, &Author::Citizen { user_id: b.user_id }, Choice::OptOut { scope: OptOutScope::All }, now)
        .await
        .unwrap();
    // A cannot withdraw B's entry: it is not among A's entries.
    let later = now + time::Duration::minutes(5);
    assert!(matches!(
        niji_registry::record_choice(&w.instance, &Author::Citizen { user_id: a.user_id }, Choice::Withdraw { entry: b_entry as u64 }, later).await,
        Err(RegistryError::Choice(niji_consent::ChoiceError::UnknownEntry))
    ));
    let view_a = niji_registry::citizen_view(&w.instance, a.user_id, later).await.unwrap();
    assert!(view_a.entries.is_empty());
    let view_b = niji_registry::citizen_view(&w.instance, b.user_id, later).await.unwrap();
    assert_eq!(view_b.entries.len(), 1);
    assert!(niji_registry::refuses_everything(&view_b.state));
    // A staff account is not a citizen.
    let staff = w
        .accounts
        .create_account(
            niji_accounts::NewAccount {
                username: "researcher".into(),
                display_name: "R".into(),
                organization: None,
                roles: vec![niji_core::Role::Researcher],
                password: "correct horse battery".into(),
                totp: niji_accounts::TotpSetup::AtFirstLogin,
            },
            "test",
            now,
        )
        .await
        .unwrap();
    assert!(matches!(niji_registry::citizen_view(&w.instance, staff.user_id, later).await, Err(RegistryError::NotACitizen)));
    assert!(matches!(
        niji_registry::record_choice(&w.instance, &Author::Citizen { user_id: staff.user_id }, Choice::OptOut { scope: OptOutScope::All }, later)
            .await,
        Err(RegistryError::NotACitizen)
    ));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_bulk_import_is_all_or_nothing_and_names_the_line() {
    let w = world().await;
    let now = datetime!(2026-11-22 01:00 UTC);
    let bad = "patient_id,choice,scope,date\n1001,notice,,2026-04-01\n1002,opt_out,purpose:drug_and_device_development,\n9999,opt_out,all,\n1003,opt_out,everything,\n";
    match import_choices(&w.instance, &w.holder, bad.as_bytes(), now).await {
        Err(RegistryError::Import(problems)) => {
            let at: Vec<(u64, &str)> = problems.iter().map(|p| (p.line, p.field)).collect();
            assert_eq!(at, [(5, "scope")], "parse problems first");
        }
        other => panic!("{other:?}"),
    }
    let unknown = "patient_id,choice,scope,date\n1001,notice,,2026-04-01\n9999,opt_out,all,\n";
    match import_choices(&w.instance, &w.holder, unknown.as_bytes(), now).await {
        Err(RegistryError::Import(problems)) => assert_eq!(problems.iter().map(|p| (p.line, p.field)).collect::<Vec<_>>(), [(3, "patient_id")]),
        other => panic!("{other:?}"),
    }
    assert!(matches!(import_choices(&w.instance, &w.holder, b"id,what\n1,2\n", now).await, Err(RegistryError::Import(_))));
    // Nothing was written by the refused files.
    assert_eq!(excluded_count(&w, &drug_use(now)).await, (0, 0));

    let good = "\u{feff}patient_id,choice,scope,date\n1001,notice,,2026-04-01\n1002,notice,,2026-04-01\n1002,opt_out,purpose:drug_and_device_development,2026-10-30\n1003,opt_out,recipient:company,\n";
    assert_eq!(import_choices(&w.instance, &w.holder, good.as_bytes(), now).await.unwrap(), 4);
    assert_eq!(excluded_count(&w, &drug_use(now)).await.0, 2, "1002 by purpose, 1003 by recipient kind");
    let counts = niji_registry::opt_out_counts(&w.instance, now).await.unwrap();
    assert_eq!(counts, [("test-ehr".to_string(), 3, 0)], "nobody refused every use");
}

/// Runs `sql` on the metadata store through a connection of its own (a trigger that makes a
/// step fail).
async fn execute(instance: &Instance, sql: &str) {
    use sqlx::Connection;
    let mut c = sqlx::SqliteConnection::connect(&format!("sqlite://{}", instance.paths.metadata_db().display())).await.unwrap();
    sqlx::query(sql).execute(&mut c).await.unwrap();
    c.close().await.unwrap();
}

/// Accounts holding the citizen role without a credential in force.
async fn citizens_without_credential(w: &World) -> Vec<i64> {
    let mut out = Vec::new();
    for user in w.instance.store.users().await.unwrap() {
        let citizen = w.instance.store.active_roles(user.id).await.unwrap().contains(&niji_core::Role::Citizen);
        let credential = w.instance.store.citizen_credential(user.id).await.unwrap();
        if citizen && credential.is_none_or(|c| c.revoked_at.is_some()) {
            out.push(user.id);
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread")]
async fn a_credential_that_cannot_be_stored_leaves_no_citizen_account() {
    let w = world().await;
    let t0 = datetime!(2026-11-22 01:00 UTC);
    execute(
        &w.instance,
        "CREATE TRIGGER refuse_credentials BEFORE INSERT ON citizen_credentials BEGIN SELECT RAISE(ABORT, 'refused by the test'); END",
    )
    .await;
    let e = niji_registry::issue_credential(&w.instance, &w.accounts, &w.holder, "1001", ActingAs::Person, t0).await.unwrap_err();
    assert!(matches!(e, RegistryError::Storage), "{e}");
    assert_eq!(citizens_without_credential(&w).await, Vec::<i64>::new());

    execute(&w.instance, "DROP TRIGGER refuse_credentials").await;
    let issued = niji_registry::issue_credential(&w.instance, &w.accounts, &w.holder, "1001", ActingAs::Person, t0).await.unwrap();
    assert!(niji_registry::sign_in(&w.instance, &w.accounts, &issued.access_code, "1980-04-01", t0).await.is_ok());
    assert_eq!(citizens_without_credential(&w).await, Vec::<i64>::new());
}

/// Everything the three reads answer for a few uses and times, to compare a kept read with a
/// fresh one.
async fn answers(w: &World, times: &[OffsetDateTime]) -> Vec<String> {
    let mut out = Vec::new();
    for &at in times {
        for use_ in [
            drug_use(at),
            Use { purpose: PurposeCategory::AcademicResearch, recipients: vec![], diseases: vec![], at },
            Use { purpose: PurposeCategory::PublicHealthPolicy, recipients: vec![RecipientKind::Company], diseases: vec![], at },
        ] {
            let (set, version) = niji_registry::exclusions(&w.instance, &use_).await.unwrap();
            let mut set: Vec<_> = set.into_iter().collect();
            set.sort();
            out.push(format!("exclusions {at} {use_:?}: {set:?} at {version}"));
        }
        let mut refusing: Vec<_> = niji_registry::refusing_everything(&w.instance, at).await.unwrap().into_iter().collect();
        refusing.sort();
        out.push(format!("refusing {at}: {refusing:?}"));
        out.push(format!("counts {at}: {:?}", niji_registry::opt_out_counts(&w.instance, at).await.unwrap()));
    }
    out
}

#[tokio::test(flavor = "multi_thread")]
async fn the_next_read_sees_a_new_entry_and_an_unchanged_registry_is_not_read_again() {
    let w = world().await;
    let at = |hour: i64| datetime!(2026-11-22 00:00 UTC) + time::Duration::hours(hour);
    let holder = |patient: &str| Author::Holder { actor: w.holder.clone(), patient_id: patient.into() };
    let counts = |refused: u64| vec![("test-ehr".to_string(), 3, refused)];

    assert_eq!(excluded_count(&w, &drug_use(at(1))).await, (0, 0));
    let reads = niji_registry::kept::reads(&w.instance);
    assert_eq!(reads, 1, "the first call reads the registry");
    for _ in 0..3 {
        assert_eq!(excluded_count(&w, &drug_use(at(1))).await, (0, 0));
        assert!(niji_registry::refusing_everything(&w.instance, at(1)).await.unwrap().is_empty());
        assert_eq!(niji_registry::opt_out_counts(&w.instance, at(1)).await.unwrap(), counts(0));
    }
    assert_eq!(niji_registry::kept::reads(&w.instance), reads, "an unchanged registry is not read again");

    // An opt-out is seen by the very next call of each read.
    let id = niji_registry::record_choice(&w.instance, &holder("1001"), Choice::OptOut { scope: OptOutScope::All }, at(2)).await.unwrap();
    assert_eq!(excluded_count(&w, &drug_use(at(3))).await, (1, id));
    assert_eq!(niji_registry::kept::reads(&w.instance), reads + 1);
    assert_eq!(niji_registry::refusing_everything(&w.instance, at(3)).await.unwrap().len(), 1);
    assert_eq!(niji_registry::opt_out_counts(&w.instance, at(3)).await.unwrap(), counts(1));
    assert_eq!(excluded_count(&w, &drug_use(at(1))).await, (0, id), "not before it was recorded");
    assert_eq!(niji_registry::kept::reads(&w.instance), reads + 1, "read once for the new entry");

    // So is its withdrawal: the person is included again by the next call.
    let withdrawal = niji_registry::record_choice(&w.instance, &holder("1001"), Choice::Withdraw { entry: id as u64 }, at(4)).await.unwrap();
    assert_eq!(excluded_count(&w, &drug_use(at(5))).await, (0, withdrawal));
    assert!(niji_registry::refusing_everything(&w.instance, at(5)).await.unwrap().is_empty());
    assert_eq!(niji_registry::opt_out_counts(&w.instance, at(5)).await.unwrap(), counts(0));
    assert_eq!(excluded_count(&w, &drug_use(at(3))).await, (1, withdrawal), "the opt-out still covers its time");

    // The public register's kept counts follow the refusing persons at the time asked, too.
    assert_eq!(niji_registry::opt_out_counts(&w.instance, at(3)).await.unwrap(), counts(1));
    assert_eq!(niji_registry::opt_out_counts(&w.instance, at(5)).await.unwrap(), counts(0));

    // The other decisive choices: each seen by the next call.
    let purpose = Choice::OptOut { scope: OptOutScope::Purpose(PurposeCategory::DrugAndDeviceDevelopment) };
    let e = niji_registry::record_choice(&w.instance, &holder("1002"), purpose, at(6)).await.unwrap();
    assert_eq!(excluded_count(&w, &drug_use(at(7))).await, (1, e));
    let e =
        niji_registry::record_choice(&w.instance, &holder("1003"), Choice::OptOut { scope: OptOutScope::Recipient(RecipientKind::Company) }, at(8))
            .await
            .unwrap();
    assert_eq!(excluded_count(&w, &drug_use(at(9))).await, (2, e));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_kept_read_answers_as_a_fresh_read() {
    let w = world().await;
    let at = |hour: i64| datetime!(2026-11-22 00:00 UTC) + time::Duration::hours(hour);
    let holder = |patient: &str| Author::Holder { actor: w.holder.clone(), patient_id: patient.into() };
    let all = niji_registry::record_choice(&w.instance, &holder("1001"), Choice::OptOut { scope: OptOutScope::All }, at(1)).await.unwrap();
    let purpose = Choice::OptOut { scope: OptOutScope::Purpose(PurposeCategory::DrugAndDeviceDevelopment) };
    niji_registry::record_choice(&w.instance, &holder("1002"), purpose, at(2)).await.unwrap();
    niji_registry::record_choice(&w.instance, &holder("1003"), Choice::OptOut { scope: OptOutScope::Recipient(RecipientKind::Company) }, at(3))
        .await
        .unwrap();
    niji_registry::record_choice(&w.instance, &holder("1001"), Choice::Withdraw { entry: all as u64 }, at(4)).await.unwrap();
    let times = [at(0), at(1), at(2), at(3), at(4), at(5)];

    niji_registry::kept::forget(&w.instance);
    let fresh = answers(&w, &times[..1]).await;
    assert_eq!(niji_registry::kept::reads(&w.instance), 1);
    let first = answers(&w, &times).await;
    let kept = answers(&w, &times).await;
    assert_eq!(niji_registry::kept::reads(&w.instance), 1, "every later call was answered from the kept entries");
    assert_eq!(first[..fresh.len()], fresh[..]);
    assert_eq!(kept, first);
    // Each time, asked of a registry read afresh, answers the same.
    for (i, &t) in times.iter().enumerate() {
        niji_registry::kept::forget(&w.instance);
        let fresh = answers(&w, &[t]).await;
        let per = fresh.len();
        assert_eq!(fresh[..], kept[i * per..(i + 1) * per], "at {t}");
    }
}

/// The registry file beside the vault gone (a backup restored without it): a choice is refused
/// with the plain storage error, nothing is recorded in its place (no empty registry), and the
/// operator's log says why, without the patient's number.
#[tokio::test(flavor = "multi_thread")]
async fn a_missing_registry_file_refuses_choices_and_the_log_says_why() {
    let w = world().await;
    let at = datetime!(2026-11-22 00:00 UTC);
    let holder = Author::Holder { actor: w.holder.clone(), patient_id: "1001".into() };
    niji_registry::record_choice(&w.instance, &holder, Choice::OptOut { scope: OptOutScope::All }, at).await.unwrap();
    niji_registry::kept::forget(&w.instance);
    let registry = niji_vault::registry_path(&w.instance.paths.vault_db());
    let aside = registry.with_file_name("registry-aside.sqlite");
    std::fs::rename(&registry, &aside).unwrap();

    let lines = niji_testkit::logs::Captured::default();
    let writer = lines.clone();
    let subscriber = tracing_subscriber::fmt().with_writer(move || writer.clone()).with_ansi(false).finish();
    let refused = {
        let _guard = tracing::subscriber::set_default(subscriber);
        niji_registry::record_choice(&w.instance, &holder, Choice::OptOut { scope: OptOutScope::All }, at).await
    };
    assert!(matches!(refused, Err(RegistryError::Storage)), "{refused:?}");
    assert!(!registry.exists(), "an empty registry was made in its place");
    let log = lines.text();
    assert!(log.contains("the consent registry file beside the vault is missing"), "{log}");
    assert!(!log.contains("1001"), "{log}");

    // Put back, the registry answers with the choice made before.
    std::fs::rename(&aside, &registry).unwrap();
    let (excluded, _) = niji_registry::exclusions(&w.instance, &drug_use(at + time::Duration::hours(1))).await.unwrap();
    assert_eq!(excluded.len(), 1);
}
