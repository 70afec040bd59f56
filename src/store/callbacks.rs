//! The callback outbox: rows written in the same tenant transaction as the change they report,
//! claimed in batches by the dispatcher (`privacy::callbacks`). Times here are milliseconds.

use sqlx::Row;

use super::TenantTx;
use crate::error::Result;

/// Rows claimed per batch.
pub const CLAIM_BATCH: i64 = 50;

/// One claimed outbox row.
#[derive(Debug, Clone)]
pub struct Pending {
    pub id: i64,
    pub event: String,
    pub payload: String,
    /// Failed attempts so far.
    pub attempts: i32,
}

pub fn now_ms() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or(0)
}

impl TenantTx {
    /// Queues a callback, due at once. Commits (or rolls back) with the caller's transaction.
    pub async fn enqueue_callback(&mut self, event: &str, user_token: Option<&str>, payload: &serde_json::Value) -> Result<()> {
        let now = now_ms();
        let tenant = self.tenant_id();
        sqlx::query(
            "INSERT INTO callback_outbox (tenant_id, event, user_token, payload, next_at, created_at)
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(tenant)
        .bind(event)
        .bind(user_token)
        .bind(payload.to_string())
        .bind(now)
        .bind(now / 1000)
        .execute(self.conn())
        .await?;
        Ok(())
    }

    /// Claims up to [`CLAIM_BATCH`] due rows (`next_at <= now`): they are taken with
    /// `FOR UPDATE SKIP LOCKED` and pushed to `now + lease_ms`, so once this transaction
    /// commits no other instance claims them while they are being sent. A dispatcher that dies
    /// mid-batch leaves them to be claimed again when the lease runs out.
    pub async fn claim_callbacks(&mut self, now: i64, lease_ms: i64) -> Result<Vec<Pending>> {
        let rows = sqlx::query(
            "UPDATE callback_outbox o SET next_at = $2
             FROM (SELECT tenant_id, id FROM callback_outbox WHERE next_at <= $1 AND dead_at IS NULL
                   ORDER BY next_at, id LIMIT $3 FOR UPDATE SKIP LOCKED) due
             WHERE o.tenant_id = due.tenant_id AND o.id = due.id
             RETURNING o.id, o.event, o.payload, o.attempts",
        )
        .bind(now)
        .bind(now.saturating_add(lease_ms))
        .bind(CLAIM_BATCH)
        .fetch_all(self.conn())
        .await?;
        let mut out: Vec<Pending> =
            rows.iter().map(|r| Pending { id: r.get(0), event: r.get(1), payload: r.get(2), attempts: r.get(3) }).collect();
        out.sort_by_key(|p| p.id);
        Ok(out)
    }

    /// Removes a delivered (or abandoned) callback.
    pub async fn delete_callback(&mut self, id: i64) -> Result<()> {
        sqlx::query("DELETE FROM callback_outbox WHERE id = $1").bind(id).execute(self.conn()).await?;
        Ok(())
    }

    /// Keeps a callback that failed its last attempt as a dead letter (never claimed again).
    pub async fn bury_callback(&mut self, id: i64, now_ms: i64) -> Result<()> {
        sqlx::query("UPDATE callback_outbox SET attempts = attempts + 1, dead_at = $2 WHERE id = $1")
            .bind(id)
            .bind(now_ms)
            .execute(self.conn())
            .await?;
        Ok(())
    }

    /// Records a failed attempt: `attempts + 1`, due again at `next_at`.
    pub async fn retry_callback(&mut self, id: i64, next_at: i64) -> Result<()> {
        sqlx::query("UPDATE callback_outbox SET attempts = attempts + 1, next_at = $2 WHERE id = $1")
            .bind(id)
            .bind(next_at)
            .execute(self.conn())
            .await?;
        Ok(())
    }
}
