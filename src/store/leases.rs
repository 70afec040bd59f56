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
        sliding_secs: Option<i64>,
    ) -> Result<()> {
        let tenant = self.tenant_id();
        sqlx::query(
            "INSERT INTO leases (tenant_id, lease_id, role, credential_id, user_token, issued_at, expires_at, max_expires_at, sliding_secs)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
        )
        .bind(tenant)
        .bind(lease_id)
        .bind(role)
        .bind(credential_id)
        .bind(user_token)
        .bind(now_secs())
        .bind(expires_at)
        .bind(max_expires_at)
        .bind(sliding_secs)
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
        let now = now_secs();
        let row: Option<(Option<String>, Option<i64>)> =
            sqlx::query_as("SELECT user_token, sliding_secs FROM leases WHERE lease_id = $1 AND revoked_at IS NULL AND expires_at > $2")
                .bind(lease_id)
                .bind(now)
                .fetch_optional(self.conn())
                .await?;
        let Some((user_token, sliding)) = row else { return Ok(None) };
        if sliding.is_some() {
            // Idle timeout: this use keeps the lease alive for another sliding period.
            sqlx::query("UPDATE leases SET expires_at = LEAST($2 + sliding_secs, max_expires_at) WHERE lease_id = $1 AND expires_at < LEAST($2 + sliding_secs, max_expires_at)")
                .bind(lease_id)
                .bind(now)
                .execute(self.conn())
                .await?;
        }
        Ok(Some(user_token))
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
