//! Sessions: encrypted session data, bound to a user (under the user's key) or to no one (under
//! the tenant's data key), with optional sliding and final expiry. An expired session is never
//! returned, whether or not it has been deleted yet.

use sqlx::Row;

use super::users::UserRow;
use super::{now_secs, TenantTx};
use crate::error::Result;

/// A stored session and whose it is.
pub struct SessionRow {
    pub uuid: String,
    pub data: Vec<u8>,
    pub sliding_secs: Option<i64>,
    pub final_at: Option<i64>,
    pub owner: SessionOwner,
    /// When the session was last written (Databunker's `when`).
    pub updated_at: i64,
}

/// Whose key a session's data is encrypted under.
pub enum SessionOwner {
    User(Box<UserRow>),
    /// No user: the tenant's data key of this version.
    Tenant {
        key_version: i32,
    },
}

impl SessionRow {
    pub fn user(&self) -> Option<&UserRow> {
        match &self.owner {
            SessionOwner::User(u) => Some(u),
            SessionOwner::Tenant { .. } => None,
        }
    }
}

/// The associated-data row of a session of no user (a user's session binds the user's token
/// too); shared by the API and data-key rotation.
pub fn unowned_row_id(uuid: &str) -> String {
    format!("-/{uuid}")
}

/// Whose a new session is.
#[derive(Debug, Clone, Copy)]
pub enum NewOwner {
    User(i64),
    Tenant { key_version: i32 },
}

impl NewOwner {
    /// `(user_id, key_version)`: exactly one is set.
    fn columns(self) -> (Option<i64>, Option<i32>) {
        match self {
            NewOwner::User(id) => (Some(id), None),
            NewOwner::Tenant { key_version } => (None, Some(key_version)),
        }
    }
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
    let owner = match r.get::<Option<i32>, _>(4) {
        Some(key_version) => SessionOwner::Tenant { key_version },
        None => SessionOwner::User(Box::new(super::users::user_at(r, 5))),
    };
    SessionRow { uuid: r.get(0), data: r.get(1), sliding_secs: r.get(2), final_at: r.get(3), owner, updated_at: r.get(17) }
}

const COLUMNS: &str = "s.uuid, s.data, s.sliding_secs, s.final_at, s.key_version, u.id, u.token, u.version, u.key_version, u.user_key, \
                       u.profile, u.digest, u.created_at, u.updated_at, u.sliding_secs, u.final_at, u.expires_at, s.updated_at";

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
            "SELECT {COLUMNS} FROM sessions s LEFT JOIN users u ON u.tenant_id = s.tenant_id AND u.id = s.user_id
             WHERE s.uuid = $1 AND {LIVE}
               AND (s.user_id IS NULL OR ((u.expires_at IS NULL OR u.expires_at > $2) AND u.deleted_at IS NULL)){}",
            if lock { " FOR UPDATE OF s" } else { "" }
        );
        let row = sqlx::query(&sql).bind(uuid).bind(now_secs()).fetch_optional(self.conn()).await?;
        Ok(row.as_ref().map(from_row))
    }

    /// Stores a new session of a user (`user_id`) or of no one (data under the tenant data key
    /// `key_version`); false when one with this uuid already exists.
    pub async fn insert_session(&mut self, uuid: &str, owner: NewOwner, data: &[u8], expiry: Expiry) -> Result<bool> {
        let now = now_secs();
        let tenant = self.tenant_id();
        let (user_id, key_version) = owner.columns();
        let n = sqlx::query(
            "INSERT INTO sessions (tenant_id, uuid, user_id, data, sliding_secs, final_at, expires_at, created_at, updated_at, key_version)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $8, $9) ON CONFLICT DO NOTHING",
        )
        .bind(tenant)
        .bind(uuid)
        .bind(user_id)
        .bind(data)
        .bind(expiry.sliding_secs)
        .bind(expiry.final_at)
        .bind(expiry.expires_at(now))
        .bind(now)
        .bind(key_version)
        .execute(self.conn())
        .await?
        .rows_affected();
        Ok(n == 1)
    }

    /// Replaces a session's data, holder (a session of no user may move to a user) and expiry
    /// settings.
    pub async fn update_session(&mut self, uuid: &str, data: &[u8], owner: NewOwner, expiry: Expiry) -> Result<()> {
        let now = now_secs();
        let (user_id, key_version) = owner.columns();
        sqlx::query(
            "UPDATE sessions SET data = $2, sliding_secs = $3, final_at = $4, expires_at = $5, updated_at = $6, user_id = $7,
                 key_version = $8
             WHERE uuid = $1",
        )
        .bind(uuid)
        .bind(data)
        .bind(expiry.sliding_secs)
        .bind(expiry.final_at)
        .bind(expiry.expires_at(now))
        .bind(now)
        .bind(user_id)
        .bind(key_version)
        .execute(self.conn())
        .await?;
        Ok(())
    }

    /// Sessions of no user still encrypted under a data key older than `current`:
    /// `(uuid, key_version, data)`.
    pub async fn sessions_to_rewrap(&mut self, current: i32, limit: i64) -> Result<Vec<(String, i32, Vec<u8>)>> {
        let rows = sqlx::query(
            "SELECT uuid, key_version, data FROM sessions WHERE key_version < $1 ORDER BY uuid LIMIT $2 FOR UPDATE SKIP LOCKED",
        )
        .bind(current)
        .bind(limit)
        .fetch_all(self.conn())
        .await?;
        Ok(rows.iter().map(|r| (r.get(0), r.get(1), r.get(2))).collect())
    }

    /// Stores re-encrypted session data `(uuid, data)` under data key `version`.
    pub async fn set_session_blobs(&mut self, version: i32, rows: &[(String, Vec<u8>)]) -> Result<()> {
        let uuids: Vec<&str> = rows.iter().map(|r| r.0.as_str()).collect();
        let blobs: Vec<&[u8]> = rows.iter().map(|r| r.1.as_slice()).collect();
        sqlx::query(
            "UPDATE sessions s SET key_version = $1, data = x.d FROM UNNEST($2::text[], $3::bytea[]) AS x(u, d) WHERE s.uuid = x.u",
        )
        .bind(version)
        .bind(&uuids)
        .bind(&blobs)
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
    pub async fn user_sessions(&mut self, user_id: i64) -> Result<Vec<(String, Vec<u8>, i64)>> {
        let sql =
            format!("SELECT s.uuid, s.data, s.updated_at FROM sessions s WHERE s.user_id = $1 AND {LIVE} ORDER BY s.created_at, s.uuid");
        let rows = sqlx::query(&sql).bind(user_id).bind(now_secs()).fetch_all(self.conn()).await?;
        Ok(rows.iter().map(|r| (r.get(0), r.get(1), r.get(2))).collect())
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
