//! Sessions: encrypted session data bound to a user, with optional sliding and final expiry.
//! An expired session is never returned, whether or not it has been deleted yet.

use sqlx::Row;

use super::users::UserRow;
use super::{now_secs, TenantTx};
use crate::error::Result;

/// A stored session and the user it belongs to.
pub struct SessionRow {
    pub uuid: String,
    pub data: Vec<u8>,
    pub sliding_secs: Option<i64>,
    pub final_at: Option<i64>,
    pub user: UserRow,
}

/// When a session expires: `expires_at` derived from the two settings at `now`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Expiry {
    pub sliding_secs: Option<i64>,
    pub final_at: Option<i64>,
}

impl Expiry {
    /// The expiry time after an access at `now` (`None`: never).
    pub fn expires_at(&self, now: i64) -> Option<i64> {
        match (self.sliding_secs.map(|s| now.saturating_add(s)), self.final_at) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }
}

const LIVE: &str = "(s.expires_at IS NULL OR s.expires_at > $2)";

fn from_row(r: &sqlx::postgres::PgRow) -> SessionRow {
    SessionRow { uuid: r.get(0), data: r.get(1), sliding_secs: r.get(2), final_at: r.get(3), user: super::users::user_at(r, 4) }
}

const COLUMNS: &str = "s.uuid, s.data, s.sliding_secs, s.final_at, u.id, u.token, u.version, u.key_version, u.user_key, u.profile, \
                       u.digest, u.created_at, u.updated_at, u.sliding_secs, u.final_at, u.expires_at";

impl TenantTx {
    /// Deletes the tenant's expired sessions.
    pub async fn delete_expired_sessions(&mut self) -> Result<u64> {
        let n = sqlx::query("DELETE FROM sessions WHERE expires_at IS NOT NULL AND expires_at <= $1")
            .bind(now_secs())
            .execute(self.conn())
            .await?
            .rows_affected();
        Ok(n)
    }

    /// A live session and its user; with `lock`, the session row stays locked.
    pub async fn session(&mut self, uuid: &str, lock: bool) -> Result<Option<SessionRow>> {
        let sql = format!(
            "SELECT {COLUMNS} FROM sessions s JOIN users u ON u.tenant_id = s.tenant_id AND u.id = s.user_id
             WHERE s.uuid = $1 AND {LIVE} AND (u.expires_at IS NULL OR u.expires_at > $2) AND u.deleted_at IS NULL{}",
            if lock { " FOR UPDATE OF s" } else { "" }
        );
        let row = sqlx::query(&sql).bind(uuid).bind(now_secs()).fetch_optional(self.conn()).await?;
        Ok(row.as_ref().map(from_row))
    }

    /// Stores a new session; false when one with this uuid already exists.
    pub async fn insert_session(&mut self, uuid: &str, user_id: i64, data: &[u8], expiry: Expiry) -> Result<bool> {
        let now = now_secs();
        let tenant = self.tenant_id();
        let n = sqlx::query(
            "INSERT INTO sessions (tenant_id, uuid, user_id, data, sliding_secs, final_at, expires_at, created_at, updated_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $8) ON CONFLICT DO NOTHING",
        )
        .bind(tenant)
        .bind(uuid)
        .bind(user_id)
        .bind(data)
        .bind(expiry.sliding_secs)
        .bind(expiry.final_at)
        .bind(expiry.expires_at(now))
        .bind(now)
        .execute(self.conn())
        .await?
        .rows_affected();
        Ok(n == 1)
    }

    /// Replaces a session's data and expiry settings.
    pub async fn update_session(&mut self, uuid: &str, data: &[u8], expiry: Expiry) -> Result<()> {
        let now = now_secs();
        sqlx::query("UPDATE sessions SET data = $2, sliding_secs = $3, final_at = $4, expires_at = $5, updated_at = $6 WHERE uuid = $1")
            .bind(uuid)
            .bind(data)
            .bind(expiry.sliding_secs)
            .bind(expiry.final_at)
            .bind(expiry.expires_at(now))
            .bind(now)
            .execute(self.conn())
            .await?;
        Ok(())
    }

    /// An access: a sliding session's expiry moves forward (never past its final time).
    pub async fn touch_session(&mut self, uuid: &str, expiry: Expiry) -> Result<()> {
        if expiry.sliding_secs.is_none() {
            return Ok(());
        }
        sqlx::query("UPDATE sessions SET expires_at = $2 WHERE uuid = $1")
            .bind(uuid)
            .bind(expiry.expires_at(now_secs()))
            .execute(self.conn())
            .await?;
        Ok(())
    }

    /// Deletes a live session; false when there was none.
    pub async fn delete_session(&mut self, uuid: &str) -> Result<bool> {
        let n = sqlx::query("DELETE FROM sessions s WHERE s.uuid = $1 AND (s.expires_at IS NULL OR s.expires_at > $2)")
            .bind(uuid)
            .bind(now_secs())
            .execute(self.conn())
            .await?
            .rows_affected();
        Ok(n == 1)
    }

    /// A user's live sessions, oldest first: `(uuid, data)`.
    pub async fn user_sessions(&mut self, user_id: i64) -> Result<Vec<(String, Vec<u8>)>> {
        let sql = format!("SELECT s.uuid, s.data FROM sessions s WHERE s.user_id = $1 AND {LIVE} ORDER BY s.created_at, s.uuid");
        let rows = sqlx::query(&sql).bind(user_id).bind(now_secs()).fetch_all(self.conn()).await?;
        Ok(rows.iter().map(|r| (r.get(0), r.get(1))).collect())
    }

    /// Deletes up to `limit` sessions expired at `now` that no other transaction holds
    /// (concurrent sweepers skip each other's rows); returns how many.
    pub async fn sweep_sessions(&mut self, now: i64, limit: i64) -> Result<u64> {
        let n = sqlx::query(
            "DELETE FROM sessions WHERE uuid = ANY(ARRAY(
                 SELECT uuid FROM sessions WHERE expires_at IS NOT NULL AND expires_at <= $1 LIMIT $2 FOR UPDATE SKIP LOCKED))",
        )
        .bind(now)
        .bind(limit)
        .execute(self.conn())
        .await?
        .rows_affected();
        Ok(n)
    }
}
