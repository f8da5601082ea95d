//! The datasets of an instance with their committed versions, for `niji datasets`, the catalog
//! and the operator's pages.

use niji_instance::Instance;
use niji_store::{DatasetRow, DatasetVersionRow, Store, StoreError, VersionTableRow};

use crate::{open_vault, version_tag, IntakeError};

/// One dataset with its holder's name and its committed versions (oldest first).
#[derive(Debug, Clone)]
pub struct DatasetEntry {
    pub dataset: DatasetRow,
    pub holder: String,
    pub versions: Vec<VersionEntry>,
}

impl DatasetEntry {
    pub fn latest(&self) -> Option<&VersionEntry> {
        self.versions.last()
    }
}

/// One committed version with its per-table figures.
#[derive(Debug, Clone)]
pub struct VersionEntry {
    pub version: DatasetVersionRow,
    pub tables: Vec<VersionTableRow>,
}

/// Every dataset, by name.
pub async fn list_datasets(store: &Store) -> Result<Vec<DatasetEntry>, StoreError> {
    let mut out = Vec::new();
    for dataset in store.datasets().await? {
        let holder = store.organization(dataset.holder_id).await?.map(|o| o.name).unwrap_or_default();
        let mut versions = Vec::new();
        for version in store.dataset_versions(dataset.id).await? {
            let tables = store.dataset_version_tables(version.id).await?;
            versions.push(VersionEntry { version, tables });
        }
        out.push(DatasetEntry { dataset, holder, versions });
    }
    Ok(out)
}

/// Linkage of a dataset's latest version as it stands now: its persons, and how many of them
/// also have records in the latest version of any other dataset. (The figures stored with a
/// version are those at its commit; datasets handed in later raise the share.) `None` when the
/// dataset has no committed version.
pub async fn current_linkage(instance: &Instance, dataset: &str) -> Result<Option<(u64, u64)>, IntakeError> {
    let latest = instance.store.latest_committed_versions().await?;
    let Some(&(_, number)) = latest.iter().find(|(d, _)| d == dataset) else { return Ok(None) };
    let others: Vec<String> = latest.iter().filter(|(d, _)| d.as_str() != dataset).map(|(d, n)| version_tag(d, *n)).collect();
    let tag = version_tag(dataset, number);
    let (vault, _) = open_vault(instance, "system:catalog").await?;
    let figures = async { Ok::<_, IntakeError>((vault.persons_in(&tag).await?, vault.persons_shared(&tag, &others).await?)) }.await;
    vault.close().await;
    Ok(Some(figures?))
}
