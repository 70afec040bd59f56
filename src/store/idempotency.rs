//! SQL of kept answers for `Idempotency-Key` (`idempotency_keys`, migration 0020).

use super::TenantTx;
use crate::error::Result;

/// How long a kept answer replays: a day, as clients' retry windows go.
pub const WINDOW_S: i64 = 86_400;

impl TenantTx {
    /// The request hash and answer kept under `key_hash` since `since`.
    pub async fn kept_answer(&mut self, key_hash: &[u8], since: i64) -> Result<Option<(Vec<u8>, String)>> {
        Ok(sqlx::query_as("SELECT request_hash, answer FROM idempotency_keys WHERE key_hash = $1 AND created_at >= $2")
            .bind(key_hash)
            .bind(since)
            .fetch_optional(self.conn())
            .await?)
    }

    /// Keeps `answer` under `key_hash` (replacing one older than `since`). False when another
    /// call kept one under this key meanwhile: this call must not commit its change.
    pub async fn keep_answer(&mut self, key_hash: &[u8], request_hash: &[u8], answer: &str, now: i64, since: i64) -> Result<bool> {
        let tenant_id = self.tenant_id();
        let done = sqlx::query(
            "INSERT INTO idempotency_keys (tenant_id, key_hash, request_hash, answer, created_at) VALUES ($1, $2, $3, $4, $5)
             ON CONFLICT (tenant_id, key_hash) DO UPDATE SET request_hash = $3, answer = $4, created_at = $5
             WHERE idempotency_keys.created_at < $6",
        )
        .bind(tenant_id)
        .bind(key_hash)
        .bind(request_hash)
        .bind(answer)
        .bind(now)
        .bind(since)
        .execute(self.conn())
        .await?;
        // Kept answers past the window go as new ones arrive (a few per call at most).
        sqlx::query(
            "DELETE FROM idempotency_keys WHERE (tenant_id, key_hash) IN
               (SELECT tenant_id, key_hash FROM idempotency_keys WHERE created_at < $1 LIMIT 16)",
        )
        .bind(since)
        .execute(self.conn())
        .await?;
        Ok(done.rows_affected() == 1)
    }
}
