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
    /// Serializes sign-in steps for one identity until the transaction ends, so concurrent
    /// requests cannot all pass a count before any of them inserts.
    pub async fn lock_identity(&mut self, identity_index: &[u8]) -> Result<()> {
        let key = format!("portal/{}/{}", self.tenant_id(), hex::encode(identity_index));
        sqlx::query("SELECT pg_advisory_xact_lock(hashtextextended($1, 0))").bind(key).execute(self.conn()).await?;
        Ok(())
    }

    /// Challenges created since `since` for `identity_index`: (from `requester`, from anyone).
    pub async fn recent_challenges(&mut self, identity_index: &[u8], requester: &[u8], since: i64) -> Result<(i64, i64)> {
        let row: (i64, i64) = sqlx::query_as(
            "SELECT count(*) FILTER (WHERE requester = $2), count(*) FROM portal_codes WHERE identity_index = $1 AND created_at >= $3",
        )
        .bind(identity_index)
        .bind(requester)
        .bind(since)
        .fetch_one(self.conn())
        .await?;
        Ok(row)
    }

    /// Wrong codes entered for `user_token` since `since`, over all its challenges.
    pub async fn failed_tries(&mut self, user_token: &str, since: i64) -> Result<i64> {
        Ok(sqlx::query_scalar(
            "SELECT COALESCE(sum(tries - CASE WHEN used THEN 1 ELSE 0 END), 0)::bigint FROM portal_codes
             WHERE user_token = $1 AND created_at >= $2",
        )
        .bind(user_token)
        .bind(since)
        .fetch_one(self.conn())
        .await?)
    }

    #[allow(clippy::too_many_arguments)]
    pub async fn insert_challenge(
        &mut self,
        challenge: &str,
        identity_index: &[u8],
        requester: &[u8],
        user_token: Option<&str>,
        code_hash: &[u8],
        expires_at: i64,
        now: i64,
    ) -> Result<()> {
        let tenant = self.tenant_id();
        sqlx::query(
            "INSERT INTO portal_codes (tenant_id, challenge, identity_index, requester, user_token, code_hash, expires_at, created_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind(tenant)
        .bind(challenge)
        .bind(identity_index)
        .bind(requester)
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

    /// The newest challenge of an identity that can still be used (the wire API's UserLogin
    /// names the identity, not the challenge).
    pub async fn latest_challenge(&mut self, identity_index: &[u8], now: i64) -> Result<Option<String>> {
        Ok(sqlx::query_scalar(
            "SELECT challenge FROM portal_codes WHERE identity_index = $1 AND NOT used AND expires_at > $2
             ORDER BY created_at DESC, challenge LIMIT 1",
        )
        .bind(identity_index)
        .bind(now)
        .fetch_optional(self.conn())
        .await?)
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

    /// Deletes challenges created before `before`.
    pub async fn sweep_challenges(&mut self, before: i64) -> Result<u64> {
        Ok(sqlx::query("DELETE FROM portal_codes WHERE created_at < $1").bind(before).execute(self.conn()).await?.rows_affected())
    }
}
