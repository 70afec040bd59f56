//! Lease rows behind role tokens.

use sqlx::Row;

use super::{now_secs, TenantTx};
use crate::error::Result;

#[derive(Debug, Clone)]
pub struct Lease {
    pub lease_id: String,
    pub role: String,
    pub expires_at: i64,
    pub max_expires_at: i64,
    pub revoked: bool,
}

impl TenantTx {
    #[allow(clippy::too_many_arguments)]
    pub async fn insert_lease(
        &mut self,
        lease_id: &str,
        role: &str,
        credential_id: Option<i64>,
        user_token: Option<&str>,
        expires_at: i64,
        max_expires_at: i64,
    ) -> Result<()> {
        let tenant = self.tenant_id();
        sqlx::query(
            "INSERT INTO leases (tenant_id, lease_id, role, credential_id, user_token, issued_at, expires_at, max_expires_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
            .bind(tenant)
            .bind(lease_id)
            .bind(role)
            .bind(credential_id)
            .bind(user_token)
            .bind(now_secs())
            .bind(expires_at)
            .bind(max_expires_at)
            .execute(self.conn())
            .await?;
        Ok(())
    }

    pub async fn lease(&mut self, lease_id: &str) -> Result<Option<Lease>> {
        let row = sqlx::query(
            "SELECT lease_id, role, expires_at, max_expires_at, revoked_at IS NOT NULL FROM leases WHERE lease_id = $1 FOR UPDATE",
        )
        .bind(lease_id)
        .fetch_optional(self.conn())
        .await?;
        Ok(row.map(|r| Lease { lease_id: r.get(0), role: r.get(1), expires_at: r.get(2), max_expires_at: r.get(3), revoked: r.get(4) }))
    }

    /// A live lease (not revoked, not expired): `Some(user_token)` (the record a user token is
    /// bound to, if any); `None` when it is not live.
    pub async fn live_lease(&mut self, lease_id: &str) -> Result<Option<Option<String>>> {
        let row: Option<(Option<String>,)> =
            sqlx::query_as("SELECT user_token FROM leases WHERE lease_id = $1 AND revoked_at IS NULL AND expires_at > $2")
                .bind(lease_id)
                .bind(now_secs())
                .fetch_optional(self.conn())
                .await?;
        Ok(row.map(|r| r.0))
    }

    pub async fn extend_lease(&mut self, lease_id: &str, expires_at: i64) -> Result<()> {
        sqlx::query("UPDATE leases SET expires_at = $2 WHERE lease_id = $1").bind(lease_id).bind(expires_at).execute(self.conn()).await?;
        Ok(())
    }

    pub async fn revoke_lease(&mut self, lease_id: &str) -> Result<bool> {
        let n = sqlx::query("UPDATE leases SET revoked_at = $2 WHERE lease_id = $1 AND revoked_at IS NULL")
            .bind(lease_id)
            .bind(now_secs())
            .execute(self.conn())
            .await?
            .rows_affected();
        Ok(n == 1)
    }

    /// Deletes up to `limit` leases that expired at or before `before` (the sweeper passes a
    /// day back: a lease row outlives its token by a day) and that no other transaction holds
    /// (concurrent sweepers skip each other's rows); returns how many.
    pub async fn sweep_leases(&mut self, before: i64, limit: i64) -> Result<u64> {
        let n = sqlx::query(
            "DELETE FROM leases WHERE lease_id = ANY(ARRAY(
                 SELECT lease_id FROM leases WHERE expires_at <= $1 LIMIT $2 FOR UPDATE SKIP LOCKED))",
        )
        .bind(before)
        .bind(limit)
        .execute(self.conn())
        .await?
        .rows_affected();
        Ok(n)
    }
}
