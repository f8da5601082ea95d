//! Wrapped data keys. This module stores and returns opaque wrapped bytes; wrapping and
//! unwrapping happen in `niji-instance`, which holds the master key.

use crate::{conflict_or, Store, StoreError};

#[derive(Clone, Debug, PartialEq, Eq, sqlx::FromRow)]
pub struct DataKeyRow {
    pub id: String,
    pub wrapped: Vec<u8>,
    pub master_fingerprint: String,
    pub created_at: i64,
    pub rewrapped_at: Option<i64>,
}

impl Store {
    pub async fn insert_data_key(&self, id: &str, wrapped: &[u8], master_fingerprint: &str, now: i64) -> Result<(), StoreError> {
        sqlx::query("INSERT INTO data_keys (id, wrapped, master_fingerprint, created_at) VALUES ($1, $2, $3, $4)")
            .bind(id)
            .bind(wrapped)
            .bind(master_fingerprint)
            .bind(now)
            .execute(&self.pool)
            .await
            .map_err(conflict_or("data key"))?;
        Ok(())
    }

    pub async fn data_key(&self, id: &str) -> Result<Option<DataKeyRow>, StoreError> {
        Ok(sqlx::query_as("SELECT id, wrapped, master_fingerprint, created_at, rewrapped_at FROM data_keys WHERE id = $1")
            .bind(id)
            .fetch_optional(&self.pool)
            .await?)
    }

    pub async fn data_keys(&self) -> Result<Vec<DataKeyRow>, StoreError> {
        Ok(sqlx::query_as("SELECT id, wrapped, master_fingerprint, created_at, rewrapped_at FROM data_keys ORDER BY id")
            .fetch_all(&self.pool)
            .await?)
    }

    /// Deletes a data key (crypto-shredding: whatever it encrypted becomes unreadable).
    /// Returns false when no key has this id.
    pub async fn delete_data_key(&self, id: &str) -> Result<bool, StoreError> {
        let done = sqlx::query("DELETE FROM data_keys WHERE id = $1").bind(id).execute(&self.pool).await?;
        Ok(done.rows_affected() == 1)
    }

    /// Replaces the wrapping of every listed key in one transaction: after a master-key
    /// rotation either all keys are wrapped by the new master key or none is.
    pub async fn rewrap_data_keys(&self, rewrapped: &[(String, Vec<u8>)], master_fingerprint: &str, now: i64) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await?;
        for (id, wrapped) in rewrapped {
            let done = sqlx::query("UPDATE data_keys SET wrapped = $1, master_fingerprint = $2, rewrapped_at = $3 WHERE id = $4")
                .bind(wrapped)
                .bind(master_fingerprint)
                .bind(now)
                .bind(id)
                .execute(&mut *tx)
                .await?;
            if done.rows_affected() != 1 {
                return Err(StoreError::NotFound { what: "data key" });
            }
        }
        tx.commit().await?;
        Ok(())
    }
}
