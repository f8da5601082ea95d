//! Rows and queries for organizations, users, role grants, sessions, API tokens and
//! failed-login records.

use crate::{conflict_or, Store, StoreError};
use niji_core::Role;

#[derive(Clone, Debug, PartialEq, Eq, sqlx::FromRow)]
pub struct OrganizationRow {
    pub id: i64,
    pub name: String,
    pub kind: String,
    pub created_at: i64,
}

#[derive(Clone, Debug, PartialEq, Eq, sqlx::FromRow)]
pub struct UserRow {
    pub id: i64,
    pub username: String,
    pub display_name: String,
    pub organization_id: Option<i64>,
    pub password_hash: String,
    pub totp_secret: Option<Vec<u8>>,
    pub totp_enabled: bool,
    pub totp_last_step: Option<i64>,
    /// Sealed secret of an enrolment not yet confirmed.
    pub totp_pending_secret: Option<Vec<u8>>,
    pub disabled: bool,
    pub created_at: i64,
}

pub struct NewUser<'a> {
    pub username: &'a str,
    pub display_name: &'a str,
    pub organization_id: Option<i64>,
    pub password_hash: &'a str,
    /// Sealed TOTP secret, when the account is created already enrolled.
    pub totp_secret: Option<&'a [u8]>,
    pub created_at: i64,
}

#[derive(Clone, Debug, PartialEq, Eq, sqlx::FromRow)]
pub struct RoleGrantRow {
    pub id: i64,
    pub user_id: i64,
    pub role: String,
    pub granted_by: String,
    pub granted_at: i64,
    pub revoked_by: Option<String>,
    pub revoked_at: Option<i64>,
}

#[derive(Clone, Debug, PartialEq, Eq, sqlx::FromRow)]
pub struct SessionRow {
    pub token_hash: Vec<u8>,
    pub user_id: i64,
    pub stage: String,
    pub csrf_token: String,
    pub created_at: i64,
    pub expires_at: i64,
}

#[derive(Clone, Debug, PartialEq, Eq, sqlx::FromRow)]
pub struct ApiTokenRow {
    pub id: i64,
    pub user_id: i64,
    pub token_hash: Vec<u8>,
    pub label: String,
    pub created_at: i64,
    pub expires_at: Option<i64>,
    pub revoked_at: Option<i64>,
}

const USER_COLUMNS: &str =
    "id, username, display_name, organization_id, password_hash, totp_secret, totp_enabled, totp_last_step, totp_pending_secret, disabled, created_at";

impl Store {
    pub async fn create_organization(&self, name: &str, kind: &str, now: i64) -> Result<i64, StoreError> {
        sqlx::query_scalar("INSERT INTO organizations (name, kind, created_at) VALUES ($1, $2, $3) RETURNING id")
            .bind(name)
            .bind(kind)
            .bind(now)
            .fetch_one(&self.pool)
            .await
            .map_err(conflict_or("organization"))
    }

    pub async fn organization_by_name(&self, name: &str) -> Result<Option<OrganizationRow>, StoreError> {
        Ok(sqlx::query_as("SELECT id, name, kind, created_at FROM organizations WHERE name = $1").bind(name).fetch_optional(&self.pool).await?)
    }

    pub async fn organization(&self, id: i64) -> Result<Option<OrganizationRow>, StoreError> {
        Ok(sqlx::query_as("SELECT id, name, kind, created_at FROM organizations WHERE id = $1").bind(id).fetch_optional(&self.pool).await?)
    }

    /// Creates a user and grants `roles` in one transaction: either all of it exists
    /// afterwards or none of it does.
    pub async fn create_user_with_roles(&self, user: &NewUser<'_>, roles: &[Role], granted_by: &str) -> Result<i64, StoreError> {
        let mut tx = self.pool.begin().await?;
        let id: i64 = sqlx::query_scalar(
            "INSERT INTO users (username, display_name, organization_id, password_hash, totp_secret, totp_enabled, created_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING id",
        )
        .bind(user.username)
        .bind(user.display_name)
        .bind(user.organization_id)
        .bind(user.password_hash)
        .bind(user.totp_secret)
        .bind(user.totp_secret.is_some())
        .bind(user.created_at)
        .fetch_one(&mut *tx)
        .await
        .map_err(conflict_or("user"))?;
        for role in roles {
            sqlx::query("INSERT INTO role_grants (user_id, role, granted_by, granted_at) VALUES ($1, $2, $3, $4)")
                .bind(id)
                .bind(role.as_str())
                .bind(granted_by)
                .bind(user.created_at)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(id)
    }

    /// Sets (or clears) the address a user's notifications are mailed to.
    pub async fn set_user_email(&self, user_id: i64, email: Option<&str>) -> Result<(), StoreError> {
        let done = sqlx::query("UPDATE users SET email = $2 WHERE id = $1").bind(user_id).bind(email).execute(&self.pool).await?;
        if done.rows_affected() == 1 {
            Ok(())
        } else {
            Err(StoreError::NotFound { what: "user" })
        }
    }

    /// The address a user's notifications are mailed to, if any.
    pub async fn user_email(&self, user_id: i64) -> Result<Option<String>, StoreError> {
        let email: Option<Option<String>> =
            sqlx::query_scalar("SELECT email FROM users WHERE id = $1").bind(user_id).fetch_optional(&self.pool).await?;
        Ok(email.flatten())
    }

    pub async fn user_by_username(&self, username: &str) -> Result<Option<UserRow>, StoreError> {
        Ok(sqlx::query_as(&format!("SELECT {USER_COLUMNS} FROM users WHERE username = $1")).bind(username).fetch_optional(&self.pool).await?)
    }

    pub async fn user(&self, id: i64) -> Result<Option<UserRow>, StoreError> {
        Ok(sqlx::query_as(&format!("SELECT {USER_COLUMNS} FROM users WHERE id = $1")).bind(id).fetch_optional(&self.pool).await?)
    }

    pub async fn users(&self) -> Result<Vec<UserRow>, StoreError> {
        Ok(sqlx::query_as(&format!("SELECT {USER_COLUMNS} FROM users ORDER BY id")).fetch_all(&self.pool).await?)
    }

    pub async fn count_users(&self) -> Result<i64, StoreError> {
        Ok(sqlx::query_scalar("SELECT COUNT(*) FROM users").fetch_one(&self.pool).await?)
    }

    /// Stores a sealed TOTP secret that is not yet confirmed (enrolment in progress). The
    /// active secret, if any, stays in force.
    pub async fn set_pending_totp_secret(&self, user_id: i64, sealed: &[u8]) -> Result<(), StoreError> {
        let done = sqlx::query("UPDATE users SET totp_pending_secret = $1 WHERE id = $2").bind(sealed).bind(user_id).execute(&self.pool).await?;
        expect_one(done.rows_affected(), "user")
    }

    /// Makes the pending secret the active one, with `step` as its first used time step.
    pub async fn activate_pending_totp(&self, user_id: i64, step: i64) -> Result<(), StoreError> {
        let done = sqlx::query(
            "UPDATE users SET totp_secret = totp_pending_secret, totp_pending_secret = NULL, totp_enabled = TRUE, totp_last_step = $1
             WHERE id = $2 AND totp_pending_secret IS NOT NULL",
        )
        .bind(step)
        .bind(user_id)
        .execute(&self.pool)
        .await?;
        expect_one(done.rows_affected(), "user with a pending TOTP secret")
    }

    /// Records that TOTP time step `step` was used, only if it is newer than every step
    /// used before. Returns false when the step (or a later one) was already used: a
    /// replayed code. Atomic, so two concurrent logins cannot both use one code.
    pub async fn claim_totp_step(&self, user_id: i64, step: i64) -> Result<bool, StoreError> {
        let done = sqlx::query("UPDATE users SET totp_last_step = $1 WHERE id = $2 AND (totp_last_step IS NULL OR totp_last_step < $1)")
            .bind(step)
            .bind(user_id)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected() == 1)
    }

    pub async fn active_roles(&self, user_id: i64) -> Result<Vec<Role>, StoreError> {
        let names: Vec<String> = sqlx::query_scalar("SELECT DISTINCT role FROM role_grants WHERE user_id = $1 AND revoked_at IS NULL ORDER BY role")
            .bind(user_id)
            .fetch_all(&self.pool)
            .await?;
        let mut roles = names.iter().map(|n| n.parse::<Role>().map_err(|e| StoreError::Invalid(e.to_string()))).collect::<Result<Vec<_>, _>>()?;
        roles.sort();
        Ok(roles)
    }

    pub async fn role_grants(&self, user_id: i64) -> Result<Vec<RoleGrantRow>, StoreError> {
        Ok(sqlx::query_as("SELECT id, user_id, role, granted_by, granted_at, revoked_by, revoked_at FROM role_grants WHERE user_id = $1 ORDER BY id")
            .bind(user_id)
            .fetch_all(&self.pool)
            .await?)
    }

    pub async fn grant_role(&self, user_id: i64, role: Role, granted_by: &str, now: i64) -> Result<i64, StoreError> {
        sqlx::query_scalar("INSERT INTO role_grants (user_id, role, granted_by, granted_at) VALUES ($1, $2, $3, $4) RETURNING id")
            .bind(user_id)
            .bind(role.as_str())
            .bind(granted_by)
            .bind(now)
            .fetch_one(&self.pool)
            .await
            .map_err(|e| match &e {
                sqlx::Error::Database(db) if db.is_foreign_key_violation() => StoreError::NotFound { what: "user" },
                _ => StoreError::Database(e),
            })
    }

    /// Marks every active grant of `role` to the user revoked; returns how many were.
    pub async fn revoke_role(&self, user_id: i64, role: Role, revoked_by: &str, now: i64) -> Result<u64, StoreError> {
        let done = sqlx::query("UPDATE role_grants SET revoked_by = $1, revoked_at = $2 WHERE user_id = $3 AND role = $4 AND revoked_at IS NULL")
            .bind(revoked_by)
            .bind(now)
            .bind(user_id)
            .bind(role.as_str())
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected())
    }

    pub async fn create_session(&self, s: &SessionRow) -> Result<(), StoreError> {
        sqlx::query("INSERT INTO sessions (token_hash, user_id, stage, csrf_token, created_at, expires_at) VALUES ($1, $2, $3, $4, $5, $6)")
            .bind(&s.token_hash)
            .bind(s.user_id)
            .bind(&s.stage)
            .bind(&s.csrf_token)
            .bind(s.created_at)
            .bind(s.expires_at)
            .execute(&self.pool)
            .await
            .map_err(conflict_or("session"))?;
        Ok(())
    }

    /// The session with this token hash, if it has not expired at `now`.
    pub async fn live_session(&self, token_hash: &[u8], now: i64) -> Result<Option<SessionRow>, StoreError> {
        Ok(sqlx::query_as(
            "SELECT token_hash, user_id, stage, csrf_token, created_at, expires_at FROM sessions WHERE token_hash = $1 AND expires_at > $2",
        )
        .bind(token_hash)
        .bind(now)
        .fetch_optional(&self.pool)
        .await?)
    }

    pub async fn delete_session(&self, token_hash: &[u8]) -> Result<bool, StoreError> {
        let done = sqlx::query("DELETE FROM sessions WHERE token_hash = $1").bind(token_hash).execute(&self.pool).await?;
        Ok(done.rows_affected() == 1)
    }

    pub async fn delete_expired_sessions(&self, now: i64) -> Result<u64, StoreError> {
        Ok(sqlx::query("DELETE FROM sessions WHERE expires_at <= $1").bind(now).execute(&self.pool).await?.rows_affected())
    }

    pub async fn create_api_token(&self, user_id: i64, token_hash: &[u8], label: &str, now: i64, expires_at: Option<i64>) -> Result<i64, StoreError> {
        sqlx::query_scalar("INSERT INTO api_tokens (user_id, token_hash, label, created_at, expires_at) VALUES ($1, $2, $3, $4, $5) RETURNING id")
            .bind(user_id)
            .bind(token_hash)
            .bind(label)
            .bind(now)
            .bind(expires_at)
            .fetch_one(&self.pool)
            .await
            .map_err(conflict_or("api token"))
    }

    /// The live (not revoked, not expired) API token with this hash.
    pub async fn live_api_token(&self, token_hash: &[u8], now: i64) -> Result<Option<ApiTokenRow>, StoreError> {
        Ok(sqlx::query_as(
            "SELECT id, user_id, token_hash, label, created_at, expires_at, revoked_at FROM api_tokens
             WHERE token_hash = $1 AND revoked_at IS NULL AND (expires_at IS NULL OR expires_at > $2)",
        )
        .bind(token_hash)
        .bind(now)
        .fetch_optional(&self.pool)
        .await?)
    }

    pub async fn record_login_failure(&self, username_key: &str, at: i64) -> Result<(), StoreError> {
        sqlx::query("INSERT INTO login_failures (username_key, at) VALUES ($1, $2)").bind(username_key).bind(at).execute(&self.pool).await?;
        Ok(())
    }

    pub async fn login_failures_since(&self, username_key: &str, since: i64) -> Result<i64, StoreError> {
        Ok(sqlx::query_scalar("SELECT COUNT(*) FROM login_failures WHERE username_key = $1 AND at >= $2")
            .bind(username_key)
            .bind(since)
            .fetch_one(&self.pool)
            .await?)
    }

    pub async fn clear_login_failures(&self, username_key: &str) -> Result<(), StoreError> {
        sqlx::query("DELETE FROM login_failures WHERE username_key = $1").bind(username_key).execute(&self.pool).await?;
        Ok(())
    }
}

fn expect_one(rows: u64, what: &'static str) -> Result<(), StoreError> {
    if rows == 1 {
        Ok(())
    } else {
        Err(StoreError::NotFound { what })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn store() -> (tempfile::TempDir, Store) {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open_sqlite(&dir.path().join("meta.sqlite")).await.unwrap();
        (dir, store)
    }

    fn new_user<'a>(name: &'a str) -> NewUser<'a> {
        NewUser { username: name, display_name: "表示名", organization_id: None, password_hash: "$argon2id$x", totp_secret: None, created_at: 1 }
    }

    #[tokio::test]
    async fn a_duplicate_user_is_a_conflict_and_leaves_no_roles_behind() {
        let (_d, s) = store().await;
        let id = s.create_user_with_roles(&new_user("alice"), &[Role::Researcher], "system").await.unwrap();
        let again = s.create_user_with_roles(&new_user("alice"), &[Role::Operator], "system").await;
        assert!(matches!(again, Err(StoreError::Conflict { what: "user" })));
        assert_eq!(s.active_roles(id).await.unwrap(), vec![Role::Researcher]);
        assert_eq!(s.count_users().await.unwrap(), 1);
    }

    #[tokio::test]
    async fn a_totp_step_is_claimed_once() {
        let (_d, s) = store().await;
        let id = s.create_user_with_roles(&new_user("bob"), &[], "system").await.unwrap();
        assert!(s.claim_totp_step(id, 100).await.unwrap());
        assert!(!s.claim_totp_step(id, 100).await.unwrap());
        assert!(!s.claim_totp_step(id, 99).await.unwrap());
        assert!(s.claim_totp_step(id, 101).await.unwrap());
    }

    #[tokio::test]
    async fn revoked_roles_stay_on_record() {
        let (_d, s) = store().await;
        let id = s.create_user_with_roles(&new_user("carol"), &[Role::Reviewer, Role::OutputChecker], "system").await.unwrap();
        assert_eq!(s.revoke_role(id, Role::Reviewer, "user:1", 5).await.unwrap(), 1);
        assert_eq!(s.active_roles(id).await.unwrap(), vec![Role::OutputChecker]);
        let grants = s.role_grants(id).await.unwrap();
        assert_eq!(grants.len(), 2);
        assert_eq!(grants[0].revoked_by.as_deref(), Some("user:1"));
        assert!(matches!(s.grant_role(999, Role::Operator, "x", 1).await, Err(StoreError::NotFound { .. })));
    }

    #[tokio::test]
    async fn sessions_expire_and_reopening_keeps_data() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("meta.sqlite");
        {
            let s = Store::open_sqlite(&path).await.unwrap();
            let id = s.create_user_with_roles(&new_user("dan"), &[], "system").await.unwrap();
            let row =
                SessionRow { token_hash: vec![1; 32], user_id: id, stage: "full".into(), csrf_token: "c".into(), created_at: 10, expires_at: 20 };
            s.create_session(&row).await.unwrap();
            assert_eq!(s.live_session(&[1; 32], 19).await.unwrap(), Some(row));
            assert_eq!(s.live_session(&[1; 32], 20).await.unwrap(), None);
            s.close().await;
        }
        let s = Store::open_sqlite(&path).await.unwrap();
        assert_eq!(s.count_users().await.unwrap(), 1);
        assert_eq!(s.schema_version().await.unwrap(), 11);
        assert_eq!(s.delete_expired_sessions(20).await.unwrap(), 1);
    }
}
