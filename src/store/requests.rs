//! User requests: a change to a user's data held pending until it is approved or cancelled.
//! The change and the decision's reason are stored sealed (the API seals them under the user's
//! key); kind, status, times and actors are in the clear.

use sqlx::Row;

use super::{now_secs, TenantTx};
use crate::error::Result;

/// One stored request, with its user's token.
pub struct RequestRow {
    pub uuid: String,
    pub user_id: i64,
    pub token: String,
    pub kind: String,
    pub change: Vec<u8>,
    pub status: String,
    pub filed_by: String,
    pub created_at: i64,
    pub reason: Option<Vec<u8>>,
    pub decided_by: Option<String>,
    pub decided_at: Option<i64>,
}

/// A line of a request listing.
pub struct RequestSummary {
    pub uuid: String,
    pub token: String,
    pub kind: String,
    pub status: String,
    pub created_at: i64,
}

const COLUMNS: &str =
    "r.uuid, r.user_id, u.token, r.kind, r.change, r.status, r.filed_by, r.created_at, r.reason, r.decided_by, r.decided_at";

fn from_row(r: &sqlx::postgres::PgRow) -> RequestRow {
    RequestRow {
        uuid: r.get(0),
        user_id: r.get(1),
        token: r.get(2),
        kind: r.get(3),
        change: r.get(4),
        status: r.get(5),
        filed_by: r.get(6),
        created_at: r.get(7),
        reason: r.get(8),
        decided_by: r.get(9),
        decided_at: r.get(10),
    }
}

fn summary(r: &sqlx::postgres::PgRow) -> RequestSummary {
    RequestSummary { uuid: r.get(0), token: r.get(1), kind: r.get(2), status: r.get(3), created_at: r.get(4) }
}

impl TenantTx {
    /// Files a pending request.
    pub async fn insert_request(&mut self, uuid: &str, user_id: i64, kind: &str, change: &[u8], filed_by: &str) -> Result<()> {
        let tenant = self.tenant_id();
        sqlx::query(
            "INSERT INTO user_requests (tenant_id, uuid, user_id, kind, change, status, filed_by, created_at)
             VALUES ($1, $2, $3, $4, $5, 'pending', $6, $7)",
        )
        .bind(tenant)
        .bind(uuid)
        .bind(user_id)
        .bind(kind)
        .bind(change)
        .bind(filed_by)
        .bind(now_secs())
        .execute(self.conn())
        .await?;
        Ok(())
    }

    /// One request of this tenant; with `lock`, it stays locked for the rest of the transaction.
    pub async fn request(&mut self, uuid: &str, lock: bool) -> Result<Option<RequestRow>> {
        let sql = format!(
            "SELECT {COLUMNS} FROM user_requests r JOIN users u ON u.id = r.user_id WHERE r.uuid = $1{}",
            if lock { " FOR UPDATE OF r" } else { "" }
        );
        let row = sqlx::query(&sql).bind(uuid).fetch_optional(self.conn()).await?;
        Ok(row.as_ref().map(from_row))
    }

    /// Decides a pending request; false when it was no longer pending.
    pub async fn decide_request(&mut self, uuid: &str, status: &str, decided_by: &str, reason: Option<&[u8]>) -> Result<bool> {
        let n = sqlx::query(
            "UPDATE user_requests SET status = $2, decided_by = $3, decided_at = $4, reason = $5
             WHERE uuid = $1 AND status = 'pending'",
        )
        .bind(uuid)
        .bind(status)
        .bind(decided_by)
        .bind(now_secs())
        .bind(reason)
        .execute(self.conn())
        .await?
        .rows_affected();
        Ok(n == 1)
    }

    /// One user's requests, newest first: (total, page).
    pub async fn user_requests(&mut self, user_id: i64, offset: i64, limit: i64) -> Result<(i64, Vec<RequestSummary>)> {
        let total: i64 =
            sqlx::query_scalar("SELECT count(*) FROM user_requests WHERE user_id = $1").bind(user_id).fetch_one(self.conn()).await?;
        let rows = sqlx::query(
            "SELECT r.uuid, u.token, r.kind, r.status, r.created_at FROM user_requests r JOIN users u ON u.id = r.user_id
             WHERE r.user_id = $1 ORDER BY r.created_at DESC, r.uuid OFFSET $2 LIMIT $3",
        )
        .bind(user_id)
        .bind(offset)
        .bind(limit)
        .fetch_all(self.conn())
        .await?;
        Ok((total, rows.iter().map(summary).collect()))
    }

    /// All of this tenant's requests of users that are not expired or soft-deleted, newest
    /// first: (total, page).
    pub async fn all_requests(&mut self, offset: i64, limit: i64) -> Result<(i64, Vec<RequestSummary>)> {
        const LIVE_USER: &str = "(u.expires_at IS NULL OR u.expires_at > $1) AND u.deleted_at IS NULL";
        let now = now_secs();
        let total: i64 =
            sqlx::query_scalar(&format!("SELECT count(*) FROM user_requests r JOIN users u ON u.id = r.user_id WHERE {LIVE_USER}"))
                .bind(now)
                .fetch_one(self.conn())
                .await?;
        let rows = sqlx::query(&format!(
            "SELECT r.uuid, u.token, r.kind, r.status, r.created_at FROM user_requests r JOIN users u ON u.id = r.user_id
             WHERE {LIVE_USER} ORDER BY r.created_at DESC, r.uuid OFFSET $2 LIMIT $3"
        ))
        .bind(now)
        .bind(offset)
        .bind(limit)
        .fetch_all(self.conn())
        .await?;
        Ok((total, rows.iter().map(summary).collect()))
    }

    /// Opens a savepoint: what follows can be undone by [`TenantTx::rollback_to`].
    pub async fn savepoint(&mut self, name: &str) -> Result<()> {
        sqlx::query(&format!("SAVEPOINT {name}")).execute(self.conn()).await?;
        Ok(())
    }

    /// Undoes everything since the savepoint `name` (also after a failed statement).
    pub async fn rollback_to(&mut self, name: &str) -> Result<()> {
        sqlx::query(&format!("ROLLBACK TO SAVEPOINT {name}")).execute(self.conn()).await?;
        sqlx::query(&format!("RELEASE SAVEPOINT {name}")).execute(self.conn()).await?;
        Ok(())
    }
}
