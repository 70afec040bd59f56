//! Credentials of a tenant, found by keyed hash only.

use sqlx::Row;

use super::TenantTx;
use crate::error::Result;

#[derive(Debug, Clone)]
pub struct CredentialRow {
    pub id: i64,
    pub kind: String,
}

impl TenantTx {
    pub async fn credential_by_hash(&mut self, hash: &[u8]) -> Result<Option<CredentialRow>> {
        let row = sqlx::query("SELECT id, kind FROM credentials WHERE token_hash = $1 AND revoked_at IS NULL")
            .bind(hash)
            .fetch_optional(self.conn())
            .await?;
        Ok(row.map(|r| CredentialRow { id: r.get(0), kind: r.get(1) }))
    }
}

impl TenantTx {
    /// Stores a new credential (keyed hash only); returns its id.
    pub async fn insert_credential(&mut self, hash: &[u8], kind: &str) -> Result<i64> {
        let tenant = self.tenant_id();
        let id =
            sqlx::query_scalar("INSERT INTO credentials (tenant_id, token_hash, kind, created_at) VALUES ($1, $2, $3, $4) RETURNING id")
                .bind(tenant)
                .bind(hash)
                .bind(kind)
                .bind(super::now_secs())
                .fetch_one(self.conn())
                .await?;
        Ok(id)
    }

    /// Revokes a live credential other than root; `false` when there is no such credential.
    pub async fn revoke_credential(&mut self, id: i64) -> Result<bool> {
        let n = sqlx::query("UPDATE credentials SET revoked_at = $2 WHERE id = $1 AND revoked_at IS NULL AND kind <> 'root'")
            .bind(id)
            .bind(super::now_secs())
            .execute(self.conn())
            .await?
            .rows_affected();
        if n == 1 {
            // What the credential minted (xtokens, Vault leases, portal console sessions) dies with it.
            sqlx::query("UPDATE leases SET revoked_at = $2 WHERE credential_id = $1 AND revoked_at IS NULL")
                .bind(id)
                .bind(super::now_secs())
                .execute(self.conn())
                .await?;
        }
        Ok(n == 1)
    }
}

impl TenantTx {
    /// Replaces every live root credential with one new one (rotation, or recovery through
    /// generate-root); returns the new credential id.
    pub async fn replace_root(&mut self, hash: &[u8]) -> Result<i64> {
        sqlx::query("UPDATE credentials SET revoked_at = $1 WHERE kind = 'root' AND revoked_at IS NULL")
            .bind(super::now_secs())
            .execute(self.conn())
            .await?;
        self.insert_credential(hash, "root").await
    }

    /// Revokes a root credential (the caller's own).
    pub async fn revoke_root(&mut self, id: i64) -> Result<bool> {
        let n = sqlx::query("UPDATE credentials SET revoked_at = $2 WHERE id = $1 AND kind = 'root' AND revoked_at IS NULL")
            .bind(id)
            .bind(super::now_secs())
            .execute(self.conn())
            .await?
            .rows_affected();
        Ok(n == 1)
    }
}
