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
