//! The consent and opt-out registry over an instance (issue 6): `niji-consent`'s rules applied to
//! the identity vault (where the entries live, keyed by person key) and the metadata store (where
//! citizens' credentials live, naming a person only by a vault subject handle).
//!
//! - **Credentials**: a data holder issues an access code for one of its patients (found through
//!   the vault's anchor of the holder's patient number); the citizen signs in with the code and
//!   their birth date (the password is the code's secret bound to the birth date, so neither
//!   alone opens the account). A parent's credential ends at the ward's majority; a guardian's
//!   (後見人) has no end. Citizen accounts are ordinary accounts with the `citizen` role, so
//!   sessions, throttling, optional TOTP and the audit trail are the accounts crate's.
//! - **Choices**: recorded by the citizen (or their parent or guardian) through their own
//!   credential, or by the holder for a paper choice, one at a time or as a bulk import that is
//!   all or nothing. Every entry is appended (nothing is overwritten) and logged by id and code.
//! - **Exclusions**: [`exclusions`] reads the registry at its current version and returns the
//!   persons a use must exclude with that version (the run's receipt).
//! - **Reads are kept** (`cache`): the decisive entries are unsealed once per registry version
//!   and kept for the process per instance; [`exclusions`], [`refusing_everything`] and
//!   [`opt_out_counts`] ask the vault only for the version (`SELECT MAX(id)`) while it has not
//!   changed, and see a new entry at the very next call.
//! - **What a citizen sees**: [`citizen_view`] — their choices, the state in force, and the permits
//!   whose runs actually included them (derived from the runs' datasets and registry versions).
//!
//! Invariants: a citizen reaches only the person of their own credential (no function takes a
//! person or subject from the citizen); no person key or subject handle leaves this crate;
//! log entries carry ids and codes only; errors are fixed texts that never quote input.

use std::collections::{BTreeMap, HashMap, HashSet};

use niji_accounts::{Accounts, NewAccount, NewSession, TotpSetup};
use niji_consent::{Actor, Choice, Decision, Entry, State, Use};
use niji_core::{AuditEvent, AuditSink, Role};
use niji_instance::Instance;
use niji_privacy::{Domain, PersonKey};
use niji_review::PermitPolicy;
use niji_store::NewCitizenCredential;
use niji_vault::{NewRegistryEntry, Vault};
use rand::Rng;
use time::{Date, OffsetDateTime, UtcOffset};

mod cache;
pub mod import;

pub use import::{import_choices, ImportProblem};

/// What this process keeps of an instance's registry (for tests and benches).
#[doc(hidden)]
pub mod kept {
    pub use crate::cache::{forget, reads};
}

/// Who a credential lets act.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ActingAs {
    /// 本人.
    Person,
    /// 親権者 of a minor: ends at the ward's majority.
    Parent,
    /// 後見人等 of a ward: no end.
    Guardian,
}

impl ActingAs {
    pub fn code(self) -> &'static str {
        match self {
            ActingAs::Person => "self",
            ActingAs::Parent => "parent",
            ActingAs::Guardian => "guardian",
        }
    }

    pub fn from_code(s: &str) -> Option<Self> {
        match s {
            "self" => Some(ActingAs::Person),
            "parent" => Some(ActingAs::Parent),
            "guardian" => Some(ActingAs::Guardian),
            _ => None,
        }
    }
}

/// The data holder issuing a credential or recording a paper choice.
#[derive(Clone, Debug)]
pub struct HolderActor {
    /// The holder id (the holder's organization name, as its datasets carry it).
    pub holder: String,
    /// Who acts, for the log (`user:<id>` or `cli`).
    pub audit: String,
}

/// A credential just issued: the access code is shown once (printed for the patient) and never
/// stored.
#[derive(Clone, Debug)]
pub struct IssuedCredential {
    pub user_id: i64,
    pub access_code: String,
    pub valid_until: Option<Date>,
}

/// Who records a choice.
#[derive(Clone, Debug)]
pub enum Author {
    /// A signed-in citizen account (the person, a parent or a guardian).
    Citizen { user_id: i64 },
    /// A holder recording a paper choice of one of its patients.
    Holder { actor: HolderActor, patient_id: String },
}

#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    #[error("no patient with that number at this holder")]
    UnknownPatient,
    #[error("the patient's birth date is not on record")]
    NoBirthDate,
    #[error("the ward is already of age")]
    AlreadyOfAge,
    #[error("the access code or birth date is wrong")]
    InvalidCredentials,
    #[error("too many failed attempts; try again later")]
    Throttled,
    #[error("the credential has ended")]
    CredentialEnded,
    #[error("the account is not a citizen's")]
    NotACitizen,
    #[error("the choice was refused: {0}")]
    Choice(#[from] niji_consent::ChoiceError),
    #[error("the file was refused")]
    Import(Vec<ImportProblem>),
    #[error("a holder withdraws only the paper entries it recorded")]
    NotTheRecorder,
    #[error("storage failed")]
    Storage,
}

impl From<niji_store::StoreError> for RegistryError {
    fn from(_: niji_store::StoreError) -> Self {
        RegistryError::Storage
    }
}

/// Callers (and citizens) see only [`RegistryError::Storage`]; the operator's log says why (the
/// vault's and the intake's texts are fixed: no identifier, no stored value), for instance that
/// the registry file beside the vault is missing.
impl From<niji_vault::VaultError> for RegistryError {
    fn from(e: niji_vault::VaultError) -> Self {
        tracing::error!(target: "niji::registry", error = %e, "the consent registry's storage failed");
        RegistryError::Storage
    }
}

impl From<niji_intake::IntakeError> for RegistryError {
    fn from(e: niji_intake::IntakeError) -> Self {
        tracing::error!(target: "niji::registry", error = %e, "the consent registry's storage failed");
        RegistryError::Storage
    }
}

/// Issues an access credential for the holder's patient `patient_id`, acting as `acting_as`.
/// Logged as `citizen.credential_issued` (ids and codes only).
pub async fn issue_credential(
    instance: &Instance,
    accounts: &Accounts,
    issuer: &HolderActor,
    patient_id: &str,
    acting_as: ActingAs,
    now: OffsetDateTime,
) -> Result<IssuedCredential, RegistryError> {
    let (vault, person) = patient(instance, &issuer.audit, &issuer.holder, patient_id).await?;
    let birth = birth_date(&vault, &person).await?.ok_or(RegistryError::NoBirthDate)?;
    let valid_until = match acting_as {
        ActingAs::Parent => {
            let majority = niji_consent::majority_date(birth);
            if today(now) >= majority {
                return Err(RegistryError::AlreadyOfAge);
            }
            Some(majority)
        }
        ActingAs::Person | ActingAs::Guardian => None,
    };
    let subject = vault.subject_of(&person, &random_text(26)).await?;
    let code = random_text(20).to_uppercase();
    let (id_part, secret) = code.split_at(8);
    let created = accounts
        .create_account(
            NewAccount {
                username: username_of(id_part),
                display_name: format!("citizen ({})", acting_as.code()),
                organization: None,
                roles: vec![Role::Citizen],
                password: password_of(secret, birth),
                totp: TotpSetup::AtFirstLogin,
            },
            &issuer.audit,
            now,
        )
        .await;
    let created = match created {
        Ok(c) => c,
        Err(_) => {
            vault.close().await;
            return Err(RegistryError::Storage);
        }
    };
    let until = valid_until.map(|d| d.to_string());
    // The account and the credential row are two writes (the accounts crate creates the one,
    // the store the other): when the second (or the log entry) fails, the account is undone —
    // its citizen role revoked, and the credential too if it was written — so that a failure
    // leaves no citizen account without its credential. Its access code was never shown, so
    // nobody can sign in with it either way.
    let inserted = instance
        .store
        .insert_citizen_credential(
            &NewCitizenCredential {
                user_id: created.user_id,
                subject: &subject,
                holder: &issuer.holder,
                acting_as: acting_as.code(),
                valid_until: until.as_deref(),
                issued_by: &issuer.audit,
            },
            now.unix_timestamp(),
        )
        .await
        .map_err(RegistryError::from);
    let logged = match inserted {
        Ok(()) => log(
            instance,
            &issuer.audit,
            now,
            "citizen.credential_issued",
            format!("user:{}", created.user_id),
            serde_json::json!({"holder": issuer.holder, "acting_as": acting_as.code()}),
        )
        .map(|_| ())
        .map_err(|e| (e, true)),
        Err(e) => Err((e, false)),
    };
    vault.close().await;
    if let Err((e, credential_written)) = logged {
        undo_account(instance, created.user_id, credential_written, &issuer.audit, now).await;
        return Err(e);
    }
    let grouped: Vec<&str> = code.as_bytes().chunks(4).map(|c| std::str::from_utf8(c).expect("ascii")).collect();
    Ok(IssuedCredential { user_id: created.user_id, access_code: grouped.join("-"), valid_until })
}

/// Undoes a citizen account whose credential could not be completed: its credential (if
/// written) revoked and its citizen role revoked, so that it reaches nothing. Best effort: the
/// caller returns the first error whatever happens here.
async fn undo_account(instance: &Instance, user_id: i64, credential_written: bool, audit: &str, now: OffsetDateTime) {
    if credential_written {
        let _ = instance.store.revoke_citizen_credential(user_id, now.unix_timestamp()).await;
    }
    let _ = instance.store.revoke_role(user_id, Role::Citizen, audit, now.unix_timestamp()).await;
}

/// Signs a citizen in with an access code (spaces, dashes and case ignored) and a birth date
/// (ISO, or any form `niji-privacy` normalizes, 和暦 included). Throttling, the optional second
/// factor and the log are the accounts crate's.
pub async fn sign_in(
    instance: &Instance,
    accounts: &Accounts,
    access_code: &str,
    birth_date: &str,
    now: OffsetDateTime,
) -> Result<NewSession, RegistryError> {
    let code: String = access_code.chars().filter(|c| c.is_ascii_alphanumeric()).collect::<String>().to_uppercase();
    let birth = niji_privacy::normalize::birth_date(birth_date).ok().and_then(|b| parse_date(&b));
    let (Some(birth), 20) = (birth, code.len()) else {
        return Err(RegistryError::InvalidCredentials);
    };
    let (id_part, secret) = code.split_at(8);
    let username = username_of(id_part);
    // The secret and birth date are checked first (throttled and logged by the accounts crate),
    // so that nobody without them learns whether a code exists or has ended.
    let session = accounts.login_with_password(&username, &password_of(secret, birth), now).await.map_err(|e| match e {
        niji_accounts::AccountError::Throttled { .. } => RegistryError::Throttled,
        _ => RegistryError::InvalidCredentials,
    })?;
    let user = accounts.user_by_username(&username).await.map_err(|_| RegistryError::InvalidCredentials)?;
    let credential = instance.store.citizen_credential(user.id).await?;
    if let Err(e) = credential.ok_or(RegistryError::NotACitizen).and_then(|c| credential_in_force(&c, now)) {
        accounts.logout(&session.token, now).await.map_err(|_| RegistryError::Storage)?;
        return Err(e);
    }
    Ok(session)
}

/// Records one choice. A citizen records for the person of their own credential; a holder for
/// its patient. Validated against the person's entries (`niji_consent::validate`), appended,
/// logged as `registry.choice` with the entry id, the choice's code and the actor's kind.
pub async fn record_choice(instance: &Instance, author: &Author, choice: Choice, now: OffsetDateTime) -> Result<i64, RegistryError> {
    let (vault, person, actor, audit) = match author {
        Author::Citizen { user_id } => {
            let (vault, person, credential) = citizen_person(instance, *user_id, now).await?;
            let actor = match ActingAs::from_code(&credential.acting_as) {
                Some(ActingAs::Person) => Actor::Person,
                Some(ActingAs::Parent) => {
                    Actor::Parent { until: credential.valid_until.as_deref().and_then(parse_date).ok_or(RegistryError::Storage)? }
                }
                Some(ActingAs::Guardian) => Actor::Guardian,
                None => return Err(RegistryError::Storage),
            };
            (vault, person, actor, format!("user:{user_id}"))
        }
        Author::Holder { actor, patient_id } => {
            let (vault, person) = patient(instance, &actor.audit, &actor.holder, patient_id).await?;
            (vault, person, Actor::Holder { holder: actor.holder.clone() }, actor.audit.clone())
        }
    };
    let version = vault.registry_version().await?;
    let entries = entries_of(&vault, &person, version).await?;
    niji_consent::validate(&entries, &actor, &choice, now)?;
    // A holder withdraws only the paper entries it recorded itself; a person's own choices (or
    // their parent's or guardian's) are theirs to withdraw.
    if let (Actor::Holder { holder }, Choice::Withdraw { entry }) = (&actor, &choice) {
        let target = entries.iter().find(|e| e.id == *entry);
        if !target.is_some_and(|e| matches!(&e.actor, Actor::Holder { holder: h } if h == holder)) {
            vault.close().await;
            return Err(RegistryError::NotTheRecorder);
        }
    }
    let body = body_of(&actor, &choice);
    let decisive = is_decisive(&choice);
    let ids = vault.append_registry_entries(&[NewRegistryEntry { person, recorded_at: nanos(now), decisive, body: &body }]).await?;
    vault.close().await;
    let id = ids[0];
    log(instance, &audit, now, "registry.choice", format!("registry:{id}"), serde_json::json!({"choice": choice.code(), "actor": actor.code()}))?;
    Ok(id)
}

/// The persons a use must exclude, from the registry at its current version, and that version
/// (the receipt a run records). The read is not logged here: the caller records the run with the
/// version as its receipt.
///
/// The entries are unsealed once per registry version (see the crate's `cache`): a call at an
/// unchanged version costs one query.
pub async fn exclusions(instance: &Instance, use_: &Use) -> Result<(HashSet<[u8; 32]>, i64), RegistryError> {
    let Some(kept) = cache::snapshot(instance).await? else { return Ok((HashSet::new(), 0)) };
    let excluded = kept
        .snapshot
        .by_person
        .iter()
        .filter(|(_, entries)| matches!(niji_consent::decide(entries, use_), Decision::Excluded(_)))
        .map(|(person, _)| *person)
        .collect();
    Ok((excluded, kept.snapshot.version))
}

/// The use a permit's run at `at` makes, as the registry judges it.
pub fn use_of(policy: &PermitPolicy, at: OffsetDateTime) -> Use {
    let mut recipients: Vec<_> = policy.recipients.iter().map(|r| r.kind).collect();
    recipients.sort_by_key(|k| format!("{k:?}"));
    recipients.dedup();
    Use { purpose: policy.purpose_category, recipients, diseases: policy.cohort.as_ref().map(|c| c.diseases.clone()).unwrap_or_default(), at }
}

/// What a citizen sees on their page.
#[derive(Clone, Debug)]
pub struct CitizenView {
    pub acting_as: ActingAs,
    pub holder: String,
    pub valid_until: Option<Date>,
    /// The person's entries, oldest first.
    pub entries: Vec<Entry>,
    /// The choices in force now.
    pub state: State,
    /// Permits whose runs included the person, by permit id.
    pub uses: Vec<PermitUse>,
}

/// One permit whose runs included the person.
#[derive(Clone, Debug)]
pub struct PermitUse {
    pub permit_id: i64,
    pub purpose: String,
    pub purpose_category: niji_review::PurposeCategory,
    pub organizations: Vec<String>,
    pub first_at: OffsetDateTime,
    pub last_at: OffsetDateTime,
    pub runs: u32,
}

/// The page of the citizen signed in as `user_id`: only the person of their own credential.
pub async fn citizen_view(instance: &Instance, user_id: i64, now: OffsetDateTime) -> Result<CitizenView, RegistryError> {
    let (vault, person, credential) = citizen_person(instance, user_id, now).await?;
    let version = vault.registry_version().await?;
    let entries = entries_of(&vault, &person, version).await?;
    let datasets: HashSet<String> = vault.datasets_of(&person).await?.into_iter().collect();
    vault.close().await;
    let state = niji_consent::state_at(&entries, now);

    let mut uses: BTreeMap<i64, PermitUse> = BTreeMap::new();
    let mut policies: HashMap<i64, Option<PermitPolicy>> = HashMap::new();
    for run in instance.store.analysis_runs().await? {
        let read: Vec<RunDataset> = serde_json::from_str(&run.datasets).unwrap_or_default();
        if !read.iter().any(|d| datasets.contains(&niji_intake::version_tag(&d.dataset, d.version))) {
            continue;
        }
        let policy = match policies.entry(run.permit_id) {
            std::collections::hash_map::Entry::Occupied(e) => e.into_mut(),
            std::collections::hash_map::Entry::Vacant(e) => {
                e.insert(instance.store.permit(run.permit_id).await?.and_then(|p| serde_json::from_str::<PermitPolicy>(&p.policy).ok()))
            }
        };
        let Some(policy) = policy.as_ref() else { continue };
        let at = OffsetDateTime::from_unix_timestamp(run.started_at).map_err(|_| RegistryError::Storage)?;
        let applied: Vec<Entry> = entries.iter().filter(|e| e.id as i64 <= run.registry_version).cloned().collect();
        if matches!(niji_consent::decide(&applied, &use_of(policy, at)), Decision::Excluded(_)) {
            continue;
        }
        let entry = uses.entry(run.permit_id).or_insert_with(|| PermitUse {
            permit_id: run.permit_id,
            purpose: policy.purpose.clone(),
            purpose_category: policy.purpose_category,
            organizations: policy.recipients.iter().map(|r| r.organization.clone()).collect(),
            first_at: at,
            last_at: at,
            runs: 0,
        });
        entry.first_at = entry.first_at.min(at);
        entry.last_at = entry.last_at.max(at);
        entry.runs += 1;
    }
    Ok(CitizenView {
        acting_as: ActingAs::from_code(&credential.acting_as).ok_or(RegistryError::Storage)?,
        holder: credential.holder,
        valid_until: credential.valid_until.as_deref().and_then(parse_date),
        entries,
        state,
        uses: uses.into_values().collect(),
    })
}

/// The persons who refuse every use now (an opt-out of all uses, or a consent withdrawn or
/// lapsed): left out even of the public dashboard's aggregates. Public pages call this; their
/// reads are not logged.
pub async fn refusing_everything(instance: &Instance, now: OffsetDateTime) -> Result<HashSet<[u8; 32]>, RegistryError> {
    let Some(kept) = cache::snapshot(instance).await? else { return Ok(HashSet::new()) };
    Ok(refusing_at(&kept.snapshot, now))
}

/// The persons of a snapshot who refuse every use at `now` (a consent lapses with time, so this
/// is worked out per call from the kept entries).
fn refusing_at(snapshot: &cache::Snapshot, now: OffsetDateTime) -> HashSet<[u8; 32]> {
    snapshot.by_person.iter().filter(|(_, entries)| refuses_everything(&niji_consent::state_at(entries, now))).map(|(p, _)| *p).collect()
}

/// Per dataset (its latest committed version): persons with identity records, and how many of them refuse every use now.
/// Exact figures: the caller rounds them for the public (`niji_core::disclosure::catalog_count`).
/// A public page calls this; its reads are not logged.
pub async fn opt_out_counts(instance: &Instance, now: OffsetDateTime) -> Result<Vec<(String, u64, u64)>, RegistryError> {
    // A public page asks for this: it reads the vault if there is one and never creates its keys.
    let Some(kept) = cache::snapshot(instance).await? else {
        return Ok(instance.store.latest_committed_versions().await?.into_iter().map(|(dataset, _)| (dataset, 0, 0)).collect());
    };
    let refusing = refusing_at(&kept.snapshot, now);
    // Counts of a committed version are kept (its identity records never change): its persons
    // once, its refusing persons once per set of refusing persons. So a page view reads the
    // version and the list of datasets, and counts only what it has not counted before.
    let mut counts = cache::counts(&kept);
    if *counts.refusing != refusing {
        counts.refusing = std::sync::Arc::new(refusing);
        counts.refused.clear();
    }
    let versions: Vec<(String, String)> = instance
        .store
        .latest_committed_versions()
        .await?
        .into_iter()
        .map(|(dataset, number)| {
            let tag = niji_intake::version_tag(&dataset, number);
            (dataset, tag)
        })
        .collect();
    // The refusing persons of every version not counted yet, in one vault call (one query per
    // chunk of persons for all versions together, not one per person and version).
    let uncounted: Vec<String> = versions.iter().filter(|(_, tag)| !counts.refused.contains_key(tag)).map(|(_, tag)| tag.clone()).collect();
    if !uncounted.is_empty() {
        let keys: Vec<PersonKey> = counts.refusing.iter().map(|p| PersonKey(*p)).collect();
        counts.refused.extend(kept.vault.count_in_datasets(&uncounted, &keys).await?);
    }
    let mut out = Vec::new();
    for (dataset, tag) in versions {
        let persons = match counts.persons.get(&tag) {
            Some(n) => *n,
            None => {
                let n = kept.vault.persons_in(&tag).await?;
                counts.persons.insert(tag.clone(), n);
                n
            }
        };
        let refused = counts.refused.get(&tag).copied().unwrap_or(0);
        out.push((dataset, persons, refused));
    }
    cache::keep_counts(&kept, counts);
    Ok(out)
}

/// Whether the state refuses every use: an opt-out of all uses, or a consent withdrawn or lapsed.
pub fn refuses_everything(state: &State) -> bool {
    state.opt_outs.iter().any(|o| o.scope == niji_consent::OptOutScope::All)
        || matches!(state.consent, niji_consent::ConsentState::Withdrawn { .. } | niji_consent::ConsentState::Lapsed { .. })
}

/// One dataset version a run read (the JSON of `analysis_runs.datasets`).
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub struct RunDataset {
    pub dataset: String,
    pub version: i64,
}

// ---------------------------------------------------------------------------------------------

/// The stored body of an entry: its actor and choice (id and time are the row's).
#[derive(serde::Serialize, serde::Deserialize)]
struct Body {
    actor: Actor,
    choice: Choice,
}

/// Whether a choice can change who a use includes (a notice cannot).
fn is_decisive(choice: &Choice) -> bool {
    !matches!(choice, Choice::NoticeDelivered { .. })
}

fn body_of(actor: &Actor, choice: &Choice) -> Vec<u8> {
    serde_json::to_vec(&Body { actor: actor.clone(), choice: choice.clone() }).expect("entries serialize")
}

fn entry_of(e: niji_vault::RegistryEntry) -> Result<Entry, RegistryError> {
    let body: Body = serde_json::from_slice(&e.body).map_err(|_| RegistryError::Storage)?;
    let recorded_at = OffsetDateTime::from_unix_timestamp_nanos(i128::from(e.recorded_at)).map_err(|_| RegistryError::Storage)?;
    Ok(Entry { id: e.id as u64, recorded_at, actor: body.actor, choice: body.choice })
}

async fn entries_of(vault: &Vault, person: &PersonKey, version: i64) -> Result<Vec<Entry>, RegistryError> {
    vault.registry_entries_of(person, version).await?.into_iter().map(entry_of).collect()
}

async fn decisive_entries(vault: &Vault, version: i64) -> Result<HashMap<[u8; 32], Vec<Entry>>, RegistryError> {
    let mut by_person: HashMap<[u8; 32], Vec<Entry>> = HashMap::new();
    for e in vault.decisive_registry_entries(version).await? {
        let person = e.person.0;
        by_person.entry(person).or_default().push(entry_of(e)?);
    }
    Ok(by_person)
}

/// The vault, if the instance has one (reading the registry never creates the vault's keys).
async fn existing_vault(instance: &Instance) -> Result<Option<Vault>, RegistryError> {
    let sealing = instance.existing_data_key(niji_intake::VAULT_SEALING_KEY).await.map_err(|_| RegistryError::Storage)?;
    let hash = instance.existing_data_key(niji_intake::VAULT_HASH_KEY).await.map_err(|_| RegistryError::Storage)?;
    let (Some(sealing), Some(hash)) = (sealing, hash) else { return Ok(None) };
    let vault_key = niji_privacy::VaultKey::from_bytes(&hash.0).map_err(|_| RegistryError::Storage)?;
    let path = instance.paths.vault_db();
    if !path.exists() {
        return Ok(None);
    }
    Ok(Some(Vault::open(&path, &sealing.0, &vault_key).await?))
}

/// The holder's patient, through the vault's anchor of the holder's patient number.
async fn patient(instance: &Instance, audit: &str, holder: &str, patient_id: &str) -> Result<(Vault, PersonKey), RegistryError> {
    let number = niji_privacy::normalize::insured_number(patient_id);
    if number.is_empty() {
        return Err(RegistryError::UnknownPatient);
    }
    let (vault, pseudonymizer) = niji_intake::open_vault(instance, audit).await?;
    let anchor = pseudonymizer.keyed(Domain::Anchor, &["local", holder, &number]);
    match vault.person_by_anchor(&anchor).await? {
        Some(person) => Ok((vault, person)),
        None => {
            vault.close().await;
            Err(RegistryError::UnknownPatient)
        }
    }
}

/// The credential of a citizen account, in force, and its person.
async fn citizen_person(
    instance: &Instance,
    user_id: i64,
    now: OffsetDateTime,
) -> Result<(Vault, PersonKey, niji_store::CitizenCredentialRow), RegistryError> {
    let roles = instance.store.active_roles(user_id).await?;
    if !roles.contains(&Role::Citizen) {
        return Err(RegistryError::NotACitizen);
    }
    let credential = instance.store.citizen_credential(user_id).await?.ok_or(RegistryError::NotACitizen)?;
    credential_in_force(&credential, now)?;
    let (vault, _) = niji_intake::open_vault(instance, &format!("user:{user_id}")).await?;
    let person = vault.person_of_subject(&credential.subject).await?.ok_or(RegistryError::Storage)?;
    Ok((vault, person, credential))
}

fn credential_in_force(c: &niji_store::CitizenCredentialRow, now: OffsetDateTime) -> Result<(), RegistryError> {
    if c.revoked_at.is_some() {
        return Err(RegistryError::CredentialEnded);
    }
    if let Some(until) = c.valid_until.as_deref().and_then(parse_date) {
        if today(now) >= until {
            return Err(RegistryError::CredentialEnded);
        }
    }
    Ok(())
}

/// The person's birth date from their identity records (the first that parses).
async fn birth_date(vault: &Vault, person: &PersonKey) -> Result<Option<Date>, RegistryError> {
    for record in vault.identities_of(person).await? {
        for v in record.identity.values(niji_ingest::IdentifierKind::BirthDate) {
            if let Some(d) = niji_privacy::normalize::birth_date(v).ok().and_then(|b| parse_date(&b)) {
                return Ok(Some(d));
            }
        }
    }
    Ok(None)
}

fn username_of(id_part: &str) -> String {
    format!("citizen-{}", id_part.to_lowercase())
}

fn password_of(secret: &str, birth: Date) -> String {
    format!("{}/{birth}", secret.to_uppercase())
}

/// Random text over an alphabet without look-alike characters (no 0/O, 1/I/L, U).
fn random_text(len: usize) -> String {
    const ALPHABET: &[u8] = b"23456789abcdefghjkmnpqrstvwxyz";
    let mut rng = rand::rngs::OsRng;
    (0..len).map(|_| ALPHABET[rng.gen_range(0..ALPHABET.len())] as char).collect()
}

fn parse_date(s: &str) -> Option<Date> {
    Date::parse(s, &time::format_description::well_known::Iso8601::DATE).ok()
}

fn today(now: OffsetDateTime) -> Date {
    now.to_offset(UtcOffset::from_hms(9, 0, 0).expect("JST")).date()
}

fn nanos(t: OffsetDateTime) -> i64 {
    t.unix_timestamp_nanos() as i64
}

fn log(instance: &Instance, actor: &str, now: OffsetDateTime, action: &str, object: String, data: serde_json::Value) -> Result<u64, RegistryError> {
    instance.record(&AuditEvent::new(actor, now, action, object).with_data(data)).map_err(|_| RegistryError::Storage)
}
