//! What every run of a permit on its data shares (interactive queries, dummy data, jobs): the
//! permit's checks (active, Visiting track, the researcher named, its key still there) and
//! reading its granted tables from the lake.

use niji_core::Role;
use niji_instance::Instance;
use niji_review::PermitPolicy;
use niji_sandbox::GrantedTable;
use sha2::{Digest, Sha256};

use crate::AnalysisError;

/// A permit a researcher may run on the real data: its policy and the workspace secret.
pub(crate) struct PermitContext {
    pub(crate) policy: PermitPolicy,
    /// The per-permit secret person ids are re-keyed with.
    pub(crate) secret: [u8; 32],
}

/// The checks every run of a permit on its data makes: an active permit of the Visiting track naming the
/// researcher, with its key.
pub(crate) async fn permit_context(instance: &Instance, user_id: i64, permit_id: i64) -> Result<PermitContext, AnalysisError> {
    let store = &instance.store;
    let permit = store.permit(permit_id).await.map_err(|_| AnalysisError::Internal)?.ok_or(AnalysisError::NoPermit)?;
    if permit.status != "active" {
        return Err(AnalysisError::Closed);
    }
    let policy: PermitPolicy = serde_json::from_str(&permit.policy).map_err(|_| AnalysisError::Internal)?;
    if !policy.active_on(niji_core::today_jst(time::OffsetDateTime::now_utc())) {
        return Err(AnalysisError::Closed);
    }
    let roles = store.active_roles(user_id).await.map_err(|_| AnalysisError::Internal)?;
    if !policy.researchers.iter().any(|r| r.account_id == user_id) || !roles.contains(&Role::Researcher) {
        return Err(AnalysisError::NotNamed);
    }
    if policy.track != niji_review::Track::Visiting {
        return Err(AnalysisError::WrongTrack);
    }
    // The permit's key must still exist; it is looked up, never created.
    let key = instance.existing_data_key(&permit.key_id).await.map_err(|_| AnalysisError::Internal)?.ok_or(AnalysisError::Closed)?;
    let secret: [u8; 32] = Sha256::new().chain_update(b"niji-analysis:person-ids\0").chain_update(key.0).finalize().into();
    Ok(PermitContext { policy, secret })
}

/// The granted tables with their schemas and no rows (for the static check).
pub(crate) fn empty_tables(policy: &PermitPolicy) -> Result<Vec<GrantedTable>, AnalysisError> {
    let mut tables = Vec::new();
    for grant in &policy.datasets {
        for t in &grant.tables {
            let schema = niji_lake::table_schema(&t.table).ok_or(AnalysisError::Internal)?;
            tables.push(GrantedTable { dataset: grant.dataset.clone(), table: t.table.clone(), schema, batches: Vec::new() });
        }
    }
    Ok(tables)
}

/// The granted tables from each dataset's latest committed version, and what was read.
pub(crate) async fn read_tables(
    instance: &Instance,
    policy: &PermitPolicy,
) -> Result<(Vec<GrantedTable>, Vec<niji_registry::RunDataset>), AnalysisError> {
    let store = &instance.store;
    let latest = store.latest_committed_versions().await.map_err(|_| AnalysisError::Internal)?;
    let mut tables = Vec::new();
    let mut read = Vec::new();
    for grant in &policy.datasets {
        let &(_, number) = latest.iter().find(|(d, _)| *d == grant.dataset).ok_or(AnalysisError::NoData)?;
        read.push(niji_registry::RunDataset { dataset: grant.dataset.clone(), version: number });
        let key_id = niji_intake::lake_key_id(&niji_intake::version_tag(&grant.dataset, number));
        let lake_key =
            niji_lake::LakeKey(instance.existing_data_key(&key_id).await.map_err(|_| AnalysisError::Internal)?.ok_or(AnalysisError::NoData)?.0);
        let dir = niji_intake::version_dir(&instance.paths, &grant.dataset, number);
        for t in &grant.tables {
            let (dir, key, table) = (dir.clone(), lake_key.clone(), t.table.clone());
            let batches = tokio::task::spawn_blocking(move || niji_lake::read_table(&dir, &table, &key))
                .await
                .map_err(|_| AnalysisError::Internal)?
                .map_err(|_| AnalysisError::Internal)?;
            let schema = niji_lake::table_schema(&t.table).ok_or(AnalysisError::Internal)?;
            tables.push(GrantedTable { dataset: grant.dataset.clone(), table: t.table.clone(), schema, batches });
        }
    }
    Ok((tables, read))
}
