//! Portal sign-in challenges (`portal_codes`). Only keyed hashes are stored: the identity as its
//! blind index, the code as an HMAC bound to the challenge id.

use sqlx::Row;

use super::TenantTx;
use crate::error::Result;

pub struct Challenge {
    pub user_token: Option<String>,
    pub code_hash: Vec<u8>,
    pub tries: i32,
    pub used: bool,
    pub expires_at: i64,
}

impl TenantTx {
    /// Challenges created for `identity_index` since `since` (for the per-identity rate limit).
    pub async fn recent_challenges(&mut self, identity_index: &[u8], since: i64) -> Result<i64> {
        Ok(sqlx::query_scalar("SELECT count(*) FROM portal_codes WHERE identity_index = $1 AND created_at >= $2")
            .bind(identity_index)
            .bind(since)
            .fetch_one(self.conn())
            .await?)
    }

    #[allow(clippy::too_many_arguments)]
    pub async fn insert_challenge(
        &mut self,
        challenge: &str,
        identity_index: &[u8],
        user_token: Option<&str>,
        code_hash: &[u8],
        expires_at: i64,
        now: i64,
    ) -> Result<()> {
        let tenant = self.tenant_id();
        sqlx::query(
            "INSERT INTO portal_codes (tenant_id, challenge, identity_index, user_token, code_hash, expires_at, created_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(tenant)
        .bind(challenge)
        .bind(identity_index)
        .bind(user_token)
        .bind(code_hash)
        .bind(expires_at)
        .bind(now)
        .execute(self.conn())
        .await?;
        Ok(())
    }

    /// The challenge, locked for this transaction (concurrent tries of one code serialize).
    pub async fn lock_challenge(&mut self, challenge: &str) -> Result<Option<Challenge>> {
        let row = sqlx::query("SELECT user_token, code_hash, tries, used, expires_at FROM portal_codes WHERE challenge = $1 FOR UPDATE")
            .bind(challenge)
            .fetch_optional(self.conn())
            .await?;
        Ok(row.map(|r| Challenge { user_token: r.get(0), code_hash: r.get(1), tries: r.get(2), used: r.get(3), expires_at: r.get(4) }))
    }

    /// Counts one try; with `used`, the challenge can never be used again.
    pub async fn record_try(&mut self, challenge: &str, used: bool) -> Result<()> {
        sqlx::query("UPDATE portal_codes SET tries = tries + 1, used = used OR $2 WHERE challenge = $1")
            .bind(challenge)
            .bind(used)
            .execute(self.conn())
            .await?;
        Ok(())
    }

    /// Deletes challenges that expired before `before`.
    pub async fn sweep_challenges(&mut self, before: i64) -> Result<u64> {
        Ok(sqlx::query("DELETE FROM portal_codes WHERE expires_at < $1").bind(before).execute(self.conn()).await?.rows_affected())
    }
}
