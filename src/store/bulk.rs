//! Bulk unlock uuids (keyed hashes only).

use super::{now_secs, TenantTx};
use crate::error::Result;

impl TenantTx {
    /// Stores an unlock valid until `expires_at`; expired ones of this tenant are swept here.
    pub async fn insert_unlock(&mut self, hash: &[u8], actor: &str, expires_at: i64) -> Result<()> {
        let tenant = self.tenant_id();
        sqlx::query("DELETE FROM bulk_unlocks WHERE expires_at <= $1").bind(now_secs()).execute(self.conn()).await?;
        sqlx::query("INSERT INTO bulk_unlocks (tenant_id, uuid_hash, actor, expires_at) VALUES ($1, $2, $3, $4)")
            .bind(tenant)
            .bind(hash)
            .bind(actor)
            .bind(expires_at)
            .execute(self.conn())
            .await?;
        Ok(())
    }

    /// Whether an unlock with this hash, taken by `actor`, is live in this tenant.
    pub async fn unlock_is_live(&mut self, hash: &[u8], actor: &str) -> Result<bool> {
        let live: Option<i64> =
            sqlx::query_scalar("SELECT 1::bigint FROM bulk_unlocks WHERE uuid_hash = $1 AND expires_at > $2 AND actor = $3")
                .bind(hash)
                .bind(now_secs())
                .bind(actor)
                .fetch_optional(self.conn())
                .await?;
        Ok(live.is_some())
    }

    /// Deletes up to `limit` bulk unlocks expired at `now` that no other transaction holds
    /// (concurrent sweepers skip each other's rows); returns how many.
    pub async fn sweep_unlocks(&mut self, now: i64, limit: i64) -> Result<u64> {
        let n = sqlx::query(
            "DELETE FROM bulk_unlocks WHERE uuid_hash = ANY(ARRAY(
                 SELECT uuid_hash FROM bulk_unlocks WHERE expires_at <= $1 LIMIT $2 FOR UPDATE SKIP LOCKED))",
        )
        .bind(now)
        .bind(limit)
        .execute(self.conn())
        .await?
        .rows_affected();
        Ok(n)
    }
}
