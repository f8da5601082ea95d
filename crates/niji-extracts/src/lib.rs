//! Anonymized extracts (匿名加工情報, issue 7): a permit on the anonymized track produces an
//! extract of one granted table, an operator approves it after reading its report, and then a
//! researcher named on the permit downloads it. Every step is in the transparency log.
//!
//! - **Request** ([`request_extract`]): the permit must be active, on the anonymized track, and
//!   name the requester; the table and its columns must be granted. The table is read from the
//!   dataset's latest committed lake version with the granted columns only; the consent registry
//!   is asked at run time and the persons it excludes are dropped (the run is recorded as an
//!   `analysis_runs` row of kind `extract`, its receipt), and the permit's cohort applied (its
//!   persons, from the extract's dataset, and their rows in its period and age range). The person key becomes a per-permit
//!   `person_id` (HMAC under the permit's key), which the configuration may use for date
//!   shifting and which is always dropped as a linking code. The configuration is the format of
//!   `niji anonymize` (`niji-anon-config`) with builtin hierarchies only; every column needs a
//!   role and k is at least 2. The PPC 第34条 pipeline runs, the released table is checked from
//!   the table alone (k, l, t), and the CSV is sealed (XChaCha20-Poly1305 under a key derived
//!   from the permit's key: when the permit ends and its key is destroyed, the file is unreadable).
//! - **Decision** ([`decide_extract`]): an operator who did not request it approves or rejects.
//! - **Download** ([`download_extract`]): approved extracts, researchers named on the permit, the
//!   permit still active; the bytes are checked against the hash logged at the request.
//!
//! Invariants: nothing leaves before an operator's approval — not even the report's exact
//! counts, which only an operator who did not request the extract sees ([`sees_full_report`];
//! everyone else gets [`researcher_view`]); the sealed file takes its final name only after its
//! row is committed; errors are fixed texts (a
//! configuration's error names its fields, never a cell value); log entries hold ids, codes and
//! hashes only.

use std::collections::HashSet;
use std::path::PathBuf;

use arrow_array::{Array, BooleanArray, Date32Array, FixedSizeBinaryArray, Float64Array, Int32Array, Int64Array, RecordBatch, StringArray};
use chacha20poly1305::aead::{Aead, AeadCore, KeyInit, OsRng, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use hmac::{Hmac, Mac};
use niji_anon::{check_release, ppc, GroundDistance, LDiversityVariant, SensitiveSpec};
use niji_anon_config::{CheckReport, FileConfig, FileSource, Report};
use niji_core::{AuditEvent, AuditSink, Role};
use niji_instance::Instance;
use niji_review::{PermitPolicy, Track};
use sha2::{Digest, Sha256};
use time::OffsetDateTime;

/// The column the person key becomes.
pub const PERSON_COLUMN: &str = "person_id";

/// What a request produced.
#[derive(Clone, Debug)]
pub struct ExtractSummary {
    pub id: i64,
    pub rows_out: u64,
    pub sha256: String,
    /// The JSON report.
    pub report: serde_json::Value,
}

#[derive(Debug, thiserror::Error)]
pub enum ExtractError {
    #[error("permit not found")]
    NoPermit,
    #[error("the permit is not active")]
    Closed,
    #[error("the account is not named on the permit")]
    NotNamed,
    #[error("the permit is not on the anonymized track")]
    WrongTrack,
    #[error("the table is not granted by the permit")]
    NotGranted,
    #[error("the dataset has no committed version")]
    NoData,
    #[error("the configuration cannot be used: {0}")]
    Config(String),
    #[error("the anonymization failed: {0}")]
    Anonymization(&'static str),
    #[error("extract not found")]
    NotFound,
    #[error("only an operator who did not request the extract decides it")]
    NotADecider,
    #[error("the extract is not awaiting approval")]
    AlreadyDecided,
    #[error("the extract is not approved")]
    NotApproved,
    #[error("the extract's file does not match its logged hash")]
    Tampered,
    #[error("internal error")]
    Internal,
}

/// Requests an extract of `dataset`.`table` under `permit_id` with the anonymization
/// configuration `config_toml`; returns it awaiting approval.
pub async fn request_extract(
    instance: &Instance,
    user_id: i64,
    permit_id: i64,
    dataset: &str,
    table: &str,
    config_toml: &str,
    now: OffsetDateTime,
) -> Result<ExtractSummary, ExtractError> {
    let store = &instance.store;
    let (permit, policy, key) = active_permit(instance, permit_id, now).await?;
    let _ = permit;
    named(instance, &policy, user_id).await?;
    if policy.track != Track::AnonymizedExtract {
        return Err(ExtractError::WrongTrack);
    }
    let grant = policy
        .datasets
        .iter()
        .find(|d| d.dataset == dataset)
        .and_then(|d| d.tables.iter().find(|t| t.table == table))
        .ok_or(ExtractError::NotGranted)?;
    let file: FileConfig = niji_anon_config::parse(config_toml).map_err(|e| ExtractError::Config(e.0))?;
    let shift_key = derive(&key, b"niji-extracts:date-shift");
    let (mut config, date_key) = file.resolve(&PlatformFiles { key: shift_key.to_vec() }).map_err(|e| ExtractError::Config(e.0))?;
    check_config(&file, &config, &grant.columns)?;
    if !config.columns.iter().any(|c| c.column == PERSON_COLUMN) {
        config.columns.push(ppc::PpcColumn { column: PERSON_COLUMN.into(), role: ppc::PpcRole::LinkingCode });
    }

    // The table, as the registry allows it now.
    let latest = store.latest_committed_versions().await.map_err(internal)?;
    let &(_, version) = latest.iter().find(|(d, _)| d == dataset).ok_or(ExtractError::NoData)?;
    let key_id = niji_intake::lake_key_id(&niji_intake::version_tag(dataset, version));
    let lake_key = niji_lake::LakeKey(instance.existing_data_key(&key_id).await.map_err(internal)?.ok_or(ExtractError::NoData)?.0);
    let dir = niji_intake::version_dir(&instance.paths, dataset, version);
    let read = |name: String| {
        let (dir, key) = (dir.clone(), lake_key.clone());
        async move { tokio::task::spawn_blocking(move || niji_lake::read_table(&dir, &name, &key)).await.map_err(internal)?.map_err(internal) }
    };
    let mut batches = read(table.to_string()).await?;
    // The permit's cohort: its persons (from this dataset), and their in-scope rows.
    let spec = cohort_spec(&policy);
    if !spec.is_empty() {
        let mut others = Vec::new();
        for needed in niji_lake::cohort::needed_tables(&spec).into_iter().filter(|n| *n != table) {
            others.push((needed, read(needed.to_string()).await?));
        }
        let all: Vec<(&str, &[RecordBatch])> =
            std::iter::once((table, batches.as_slice())).chain(others.iter().map(|(n, b)| (*n, b.as_slice()))).collect();
        let persons = niji_lake::cohort::cohort_persons(&spec, &all).map_err(internal)?;
        let snapshot = batches.clone();
        let all: Vec<(&str, &[RecordBatch])> =
            std::iter::once((table, snapshot.as_slice())).chain(others.iter().map(|(n, b)| (*n, b.as_slice()))).collect();
        batches = niji_lake::cohort::restrict(&spec, table, batches, &persons, &all).map_err(internal)?;
    }
    let use_ = niji_registry::use_of(&policy, now);
    let (excluded, registry_version) = niji_registry::exclusions(instance, &use_).await.map_err(internal)?;
    let person_secret = derive(&key, b"niji-extracts:person-ids");
    let input = to_table(&batches, &grant.columns, &excluded, &person_secret)?;
    // The run is recorded with its receipt whatever happens next: released when the extract is
    // produced, refused when the anonymization fails (it read the data either way).
    let record_run = |outcome: &'static str| {
        let datasets = serde_json::json!([{"dataset": dataset, "version": version}]).to_string();
        let code = hex::encode(Sha256::digest(config_toml.as_bytes()));
        let excluded = excluded.len() as i64;
        async move {
            store
                .insert_analysis_run(&niji_store::NewAnalysisRun {
                    permit_id,
                    user_id,
                    kind: "extract",
                    code_sha256: &code,
                    outcome,
                    registry_version,
                    excluded_persons: excluded,
                    datasets: &datasets,
                    started_at: now.unix_timestamp(),
                    finished_at: OffsetDateTime::now_utc().unix_timestamp(),
                })
                .await
                .map_err(internal)
        }
    };

    // The PPC pipeline, then what the released table achieves, measured from it alone.
    let started = std::time::Instant::now();
    let outcome = match ppc::run(&input, &config, date_key.as_deref()) {
        Ok(o) => o,
        // The engine's text names columns and rows, and a hierarchy error can quote a value: it
        // stays here, the caller gets a fixed reason.
        Err(_) => {
            record_run("refused").await?;
            return Err(ExtractError::Anonymization(
                "the PPC pipeline refused the table (a value outside its hierarchy, or a rule that cannot apply)",
            ));
        }
    };
    let elapsed_ms = started.elapsed().as_secs_f64() * 1e3;
    let qis: Vec<&str> = outcome.report.generalization.iter().map(|g| g.column.as_str()).collect();
    let specs: Vec<SensitiveSpec> = file
        .attributes
        .iter()
        .filter(|a| a.role == "sensitive")
        .map(|a| SensitiveSpec {
            column: a.column.clone(),
            recursive_l: config.model.privacy.l_diversity.iter().find_map(|l| match l.variant {
                LDiversityVariant::Recursive { l: value, .. } if l.attribute == a.column => Some(value),
                _ => None,
            }),
            hierarchy: config.model.privacy.t_closeness.iter().find_map(|t| match &t.distance {
                GroundDistance::Hierarchical(h) if t.attribute == a.column => Some(h.clone()),
                _ => None,
            }),
        })
        .collect();
    let started = std::time::Instant::now();
    let properties = match check_release(&outcome.table, &qis, &specs) {
        Ok(p) => p,
        Err(_) => {
            record_run("refused").await?;
            return Err(ExtractError::Anonymization("the released table could not be checked"));
        }
    };
    if outcome.table.num_rows() > 0 && properties.k < file.privacy.k {
        record_run("refused").await?;
        return Err(ExtractError::Anonymization("the released table does not reach k"));
    }
    let check = CheckReport::new(&properties, started.elapsed().as_secs_f64() * 1e3);
    let report = Report::new(format!("{dataset}/v{version}/{table}"), "extract.csv".into(), &file, &outcome.report, elapsed_ms, check);
    let report = serde_json::to_value(&report).map_err(internal)?;

    // The CSV, sealed under the permit's key, written under a temporary name first: it takes
    // its final name only once its row is committed, and is removed if the row is not, so that
    // a failure leaves neither a file without a row nor a row without a file.
    let mut csv = b"\xef\xbb\xbf".to_vec();
    csv.extend(niji_anon_config::table_to_csv(&outcome.table, b','));
    let sha256 = hex::encode(Sha256::digest(&csv));
    let path = file_path(instance, permit_id, &sha256);
    std::fs::create_dir_all(path.parent().expect("a folder")).map_err(internal)?;
    let sealed = seal(&key, permit_id, &sha256, &csv);
    let staged = Staged::write(&path, &sealed).map_err(internal)?;
    let rows_out = outcome.table.num_rows() as u64;
    let run_id = record_run("released").await?;
    let inserted = store
        .insert_extract(
            &niji_store::NewExtract {
                permit_id,
                requested_by: user_id,
                dataset,
                dataset_version: version,
                table_name: table,
                config: config_toml,
                report: &report.to_string(),
                file_sha256: &sha256,
                rows_out: rows_out as i64,
                run_id,
            },
            now.unix_timestamp(),
        )
        .await;
    // On an error the staged file is dropped (removed); on success it takes its final name.
    let id = inserted.map_err(internal)?;
    staged.commit().map_err(internal)?;
    let index = log(
        instance,
        &format!("user:{user_id}"),
        now,
        "extract.requested",
        format!("extract:{id}"),
        serde_json::json!({"permit": permit_id, "run": run_id, "registry_version": registry_version, "sha256": sha256, "rows": rows_out, "k": properties.k}),
    )?;
    store.set_extract_log_index(id, index as i64).await.map_err(internal)?;
    Ok(ExtractSummary { id, rows_out, sha256, report })
}

/// An operator (not the requester) approves or rejects an extract awaiting approval.
/// `reason` is a short code (e.g. `risk_too_high`), kept and logged when rejecting.
pub async fn decide_extract(
    instance: &Instance,
    user_id: i64,
    extract_id: i64,
    approve: bool,
    reason: Option<&str>,
    now: OffsetDateTime,
) -> Result<(), ExtractError> {
    let store = &instance.store;
    let extract = store.extract(extract_id).await.map_err(internal)?.ok_or(ExtractError::NotFound)?;
    let roles = store.active_roles(user_id).await.map_err(internal)?;
    let permit = store.permit(extract.permit_id).await.map_err(internal)?.ok_or(ExtractError::NotFound)?;
    let policy: PermitPolicy = serde_json::from_str(&permit.policy).map_err(internal)?;
    if !sees_full_report(&extract, &policy, user_id, &roles) {
        return Err(ExtractError::NotADecider);
    }
    let reason = reason.map(|r| r.chars().filter(|c| c.is_ascii_alphanumeric() || *c == '_').take(40).collect::<String>());
    let status = if approve { "approved" } else { "rejected" };
    store.decide_extract(extract_id, status, user_id, reason.as_deref().filter(|_| !approve), now.unix_timestamp()).await.map_err(|e| match e {
        niji_store::StoreError::NotFound { .. } => ExtractError::AlreadyDecided,
        other => internal(other),
    })?;
    let mut data = serde_json::json!({"permit": extract.permit_id, "sha256": extract.file_sha256});
    if !approve {
        data["reason"] = reason.unwrap_or_default().into();
    }
    log(
        instance,
        &format!("user:{user_id}"),
        now,
        if approve { "extract.approved" } else { "extract.rejected" },
        format!("extract:{extract_id}"),
        data,
    )?;
    Ok(())
}

/// The bytes of an approved extract (CSV, UTF-8 with BOM) for a researcher named on its permit.
/// Each download is logged.
pub async fn download_extract(instance: &Instance, user_id: i64, extract_id: i64, now: OffsetDateTime) -> Result<Vec<u8>, ExtractError> {
    let extract = instance.store.extract(extract_id).await.map_err(internal)?.ok_or(ExtractError::NotFound)?;
    let (_, policy, key) = active_permit(instance, extract.permit_id, now).await?;
    named(instance, &policy, user_id).await?;
    if extract.status != "approved" {
        return Err(ExtractError::NotApproved);
    }
    let sealed = std::fs::read(file_path(instance, extract.permit_id, &extract.file_sha256)).map_err(internal)?;
    let csv = open(&key, extract.permit_id, &extract.file_sha256, &sealed).ok_or(ExtractError::Tampered)?;
    if hex::encode(Sha256::digest(&csv)) != extract.file_sha256 {
        return Err(ExtractError::Tampered);
    }
    log(
        instance,
        &format!("user:{user_id}"),
        now,
        "extract.downloaded",
        format!("extract:{extract_id}"),
        serde_json::json!({"permit": extract.permit_id, "sha256": extract.file_sha256}),
    )?;
    Ok(csv)
}

/// Whether `user_id` (holding `roles`) may decide an extract, and so sees its full report: an
/// operator who neither requested it nor is named on its permit (`policy`) — the output checkers'
/// conflict rule. Everyone else — the requester and the researchers on the permit included, even
/// when they are also operators — sees [`ResearcherView`] only.
pub fn sees_full_report(extract: &niji_store::ExtractRow, policy: &PermitPolicy, user_id: i64, roles: &[Role]) -> bool {
    roles.contains(&Role::Operator) && extract.requested_by != user_id && !policy.names(user_id)
}

/// What someone who does not decide an extract may see of it. A whitelist: before approval and
/// after rejection, the status, the configuration sent and the released rows rounded as the
/// catalog rounds counts (`niji_core::disclosure::catalog_count`); once approved, also the
/// released table's own figures ([`ReleasedReport`]). Never the input's counts, the suppressed
/// records or the risk before anonymization.
#[derive(Clone, Debug, PartialEq)]
pub struct ResearcherView {
    pub id: i64,
    pub permit_id: i64,
    pub dataset: String,
    pub dataset_version: i64,
    pub table: String,
    /// `awaiting_approval`, `approved` or `rejected`.
    pub status: String,
    /// The anonymization configuration (TOML) as it was sent.
    pub config: String,
    /// The released table's rows rounded to 10; `None` below 10.
    pub rows_rounded: Option<u64>,
    /// Only once approved.
    pub released: Option<ReleasedReport>,
}

/// The figures of an approved extract's released table (what its recipients can count in the
/// file itself).
#[derive(Clone, Debug, PartialEq)]
pub struct ReleasedReport {
    pub rows: u64,
    /// hex SHA-256 of the CSV, as logged.
    pub sha256: String,
    /// The smallest class of the released table.
    pub k: Option<u64>,
    pub classes: Option<u64>,
    /// Per quasi-identifier: column, level, highest level.
    pub generalization: Vec<(String, u64, u64)>,
    /// Metric and value.
    pub information_loss: Option<(String, f64)>,
    /// Highest prosecutor risk of the released table.
    pub risk_after: Option<f64>,
    /// Rule, column, reason.
    pub rules: Vec<(String, String, String)>,
}

/// The [`ResearcherView`] of an extract.
pub fn researcher_view(extract: &niji_store::ExtractRow) -> ResearcherView {
    let released = (extract.status == "approved").then(|| {
        let report: serde_json::Value = serde_json::from_str(&extract.report).unwrap_or_default();
        let text = |v: &serde_json::Value| v.as_str().unwrap_or_default().to_string();
        ReleasedReport {
            rows: extract.rows_out.max(0) as u64,
            sha256: extract.file_sha256.clone(),
            k: report["check"]["k"].as_u64(),
            classes: report["check"]["classes"].as_u64(),
            generalization: report["generalization"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|g| (text(&g["column"]), g["level"].as_u64().unwrap_or(0), g["max_level"].as_u64().unwrap_or(0)))
                .collect(),
            information_loss: report["information_loss"]["value"].as_f64().map(|v| (text(&report["information_loss"]["metric"]), v)),
            risk_after: report["risk_after"]["prosecutor"]["highest"].as_f64(),
            rules: report["rules"].as_array().into_iter().flatten().map(|r| (text(&r["rule"]), text(&r["column"]), text(&r["reason"]))).collect(),
        }
    });
    ResearcherView {
        id: extract.id,
        permit_id: extract.permit_id,
        dataset: extract.dataset.clone(),
        dataset_version: extract.dataset_version,
        table: extract.table_name.clone(),
        status: extract.status.clone(),
        config: extract.config.clone(),
        rows_rounded: niji_core::disclosure::catalog_count(extract.rows_out.max(0) as u64),
        released,
    }
}

// ---------------------------------------------------------------------------------------------

/// The permit's cohort in the lake's terms.
fn cohort_spec(policy: &PermitPolicy) -> niji_lake::cohort::CohortSpec {
    match &policy.cohort {
        None => niji_lake::cohort::CohortSpec::default(),
        Some(c) => niji_lake::cohort::CohortSpec {
            diseases: c.diseases.clone(),
            age: c.age.map(|a| (a.min, a.max)),
            period: c.period.map(|p| (p.from, p.to)),
        },
    }
}

/// Hierarchy files are not read inside the platform; the date-shift key is the permit's.
struct PlatformFiles {
    key: Vec<u8>,
}

impl FileSource for PlatformFiles {
    fn hierarchy(&self, _path: &std::path::Path) -> Result<String, String> {
        Err("hierarchy files cannot be used in an extract; use a builtin hierarchy (age-bands, dates, municipalities, icd10)".into())
    }

    fn date_shift_key(&self, _env: Option<&str>, _file: Option<&std::path::Path>) -> Result<Vec<u8>, String> {
        Ok(self.key.clone())
    }
}

/// Every granted column needs a role; the person id is always a linking code (dropped); k ≥ 2.
fn check_config(file: &FileConfig, config: &ppc::PpcConfig, granted: &[String]) -> Result<(), ExtractError> {
    if file.privacy.k < 2 {
        return Err(ExtractError::Config("privacy.k must be at least 2".into()));
    }
    for c in granted.iter().filter(|c| *c != "person_key") {
        if !config.columns.iter().any(|x| &x.column == c) {
            return Err(ExtractError::Config(format!("column {c:?} has no role; give every extracted column a role")));
        }
    }
    for c in &config.columns {
        let known = c.column == PERSON_COLUMN || granted.iter().any(|g| g == &c.column && g != "person_key");
        if !known {
            return Err(ExtractError::Config(format!("column {:?} is not in the extracted table", c.column)));
        }
        if c.column == PERSON_COLUMN && !matches!(c.role, ppc::PpcRole::LinkingCode) {
            return Err(ExtractError::Config(format!("{PERSON_COLUMN} must have the role linking-code")));
        }
    }
    Ok(())
}

/// The granted columns of the batches as a string table, the person key re-keyed to a
/// per-permit `person_id` (always added, as a linking code, when the configuration does not name
/// it), excluded persons' rows dropped.
fn to_table(batches: &[RecordBatch], granted: &[String], excluded: &HashSet<[u8; 32]>, secret: &[u8; 32]) -> Result<niji_anon::Table, ExtractError> {
    let columns: Vec<&String> = granted.iter().filter(|c| *c != "person_key").collect();
    let mut header: Vec<String> = vec![PERSON_COLUMN.to_string()];
    header.extend(columns.iter().map(|c| c.to_string()));
    let mut builder = niji_anon::TableBuilder::new(&header).map_err(|_| ExtractError::Anonymization("the granted columns do not form a table"))?;
    for batch in batches {
        let persons =
            batch.column_by_name("person_key").and_then(|c| c.as_any().downcast_ref::<FixedSizeBinaryArray>()).ok_or(ExtractError::Internal)?;
        let arrays: Vec<&dyn Array> =
            columns.iter().map(|c| batch.column_by_name(c).map(|a| a.as_ref()).ok_or(ExtractError::NotGranted)).collect::<Result<_, _>>()?;
        for row in 0..batch.num_rows() {
            let key = persons.value(row);
            if <&[u8; 32]>::try_from(key).map(|k| excluded.contains(k)).unwrap_or(true) {
                continue;
            }
            let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(secret).expect("any key length");
            mac.update(key);
            let mut values = vec![hex::encode(&mac.finalize().into_bytes()[..16])];
            values.extend(arrays.iter().map(|a| cell(*a, row)));
            let refs: Vec<&str> = values.iter().map(String::as_str).collect();
            builder.push_row(&refs).map_err(|_| ExtractError::Anonymization("a row does not fit the table"))?;
        }
    }
    Ok(builder.finish())
}

/// One cell as text: ISO dates, plain numbers, `true`/`false`, empty for null.
fn cell(array: &dyn Array, row: usize) -> String {
    if array.is_null(row) {
        return String::new();
    }
    let any = array.as_any();
    if let Some(a) = any.downcast_ref::<StringArray>() {
        a.value(row).to_string()
    } else if let Some(a) = any.downcast_ref::<Int32Array>() {
        a.value(row).to_string()
    } else if let Some(a) = any.downcast_ref::<Int64Array>() {
        a.value(row).to_string()
    } else if let Some(a) = any.downcast_ref::<Float64Array>() {
        a.value(row).to_string()
    } else if let Some(a) = any.downcast_ref::<BooleanArray>() {
        a.value(row).to_string()
    } else if let Some(a) = any.downcast_ref::<Date32Array>() {
        let epoch = time::Date::from_calendar_date(1970, time::Month::January, 1).expect("a date");
        (epoch + time::Duration::days(i64::from(a.value(row)))).to_string()
    } else {
        String::new()
    }
}

async fn active_permit(
    instance: &Instance,
    permit_id: i64,
    now: OffsetDateTime,
) -> Result<(niji_store::PermitRow, PermitPolicy, [u8; 32]), ExtractError> {
    let permit = instance.store.permit(permit_id).await.map_err(internal)?.ok_or(ExtractError::NoPermit)?;
    if permit.status != "active" {
        return Err(ExtractError::Closed);
    }
    let policy: PermitPolicy = serde_json::from_str(&permit.policy).map_err(internal)?;
    if !policy.active_on(niji_core::today_jst(now)) {
        return Err(ExtractError::Closed);
    }
    let key = instance.existing_data_key(&permit.key_id).await.map_err(internal)?.ok_or(ExtractError::Closed)?;
    Ok((permit, policy, key.0))
}

async fn named(instance: &Instance, policy: &PermitPolicy, user_id: i64) -> Result<(), ExtractError> {
    let roles = instance.store.active_roles(user_id).await.map_err(internal)?;
    if !policy.names(user_id) || !roles.contains(&Role::Researcher) {
        return Err(ExtractError::NotNamed);
    }
    Ok(())
}

fn derive(key: &[u8; 32], label: &[u8]) -> [u8; 32] {
    Sha256::new().chain_update(label).chain_update([0]).chain_update(key).finalize().into()
}

fn file_path(instance: &Instance, permit_id: i64, sha256: &str) -> PathBuf {
    instance.paths.root.join("extracts").join(permit_id.to_string()).join(format!("{sha256}.csv.sealed"))
}

fn aad(permit_id: i64, sha256: &str) -> Vec<u8> {
    format!("niji-extracts/v1:{permit_id}:{sha256}").into_bytes()
}

fn seal(key: &[u8; 32], permit_id: i64, sha256: &str, plain: &[u8]) -> Vec<u8> {
    let cipher = XChaCha20Poly1305::new(&derive(key, b"niji-extracts:file").into());
    let nonce = XChaCha20Poly1305::generate_nonce(&mut OsRng);
    let mut out = nonce.to_vec();
    out.extend(cipher.encrypt(&nonce, Payload { msg: plain, aad: &aad(permit_id, sha256) }).expect("sealing in memory"));
    out
}

fn open(key: &[u8; 32], permit_id: i64, sha256: &str, sealed: &[u8]) -> Option<Vec<u8>> {
    if sealed.len() < 24 + 16 {
        return None;
    }
    let (nonce, ct) = sealed.split_at(24);
    let cipher = XChaCha20Poly1305::new(&derive(key, b"niji-extracts:file").into());
    cipher.decrypt(XNonce::from_slice(nonce), Payload { msg: ct, aad: &aad(permit_id, sha256) }).ok()
}

/// A sealed file written durably under a temporary name of its own (so that two requests of the
/// same table never share it): [`Staged::commit`] renames it to its final name; dropped
/// uncommitted (the row was not inserted, or the task ended), it is removed.
struct Staged {
    tmp: PathBuf,
    path: PathBuf,
    committed: bool,
}

impl Staged {
    fn write(path: &std::path::Path, bytes: &[u8]) -> std::io::Result<Staged> {
        use std::io::Write;
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("extract");
        let tmp = path.with_file_name(format!(".{name}.{}.partial", hex::encode(rand_bytes())));
        let staged = Staged { tmp, path: path.to_path_buf(), committed: false };
        let mut f = std::fs::OpenOptions::new().write(true).create_new(true).open(&staged.tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        Ok(staged)
    }

    fn commit(mut self) -> std::io::Result<()> {
        std::fs::rename(&self.tmp, &self.path)?;
        self.committed = true;
        if let Some(dir) = self.path.parent() {
            std::fs::File::open(dir)?.sync_all()?;
        }
        Ok(())
    }
}

impl Drop for Staged {
    fn drop(&mut self) {
        if !self.committed {
            let _ = std::fs::remove_file(&self.tmp);
        }
    }
}

fn rand_bytes() -> [u8; 8] {
    let nonce = XChaCha20Poly1305::generate_nonce(&mut OsRng);
    let mut out = [0u8; 8];
    out.copy_from_slice(&nonce[..8]);
    out
}

fn log(instance: &Instance, actor: &str, now: OffsetDateTime, action: &str, object: String, data: serde_json::Value) -> Result<u64, ExtractError> {
    instance.record(&AuditEvent::new(actor, now, action, object).with_data(data)).map_err(internal)
}

fn internal<E>(_: E) -> ExtractError {
    ExtractError::Internal
}
