//! The datasets of an instance with their committed versions, for `niji datasets`, the catalog
//! and the operator's pages.

use niji_store::{DatasetRow, DatasetVersionRow, Store, StoreError, VersionTableRow};

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
