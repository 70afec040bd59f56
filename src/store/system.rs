//! Reads behind the System* and Bulk* listings. The only cross-tenant query (the user count)
//! runs as `strongroom_reader`, the BYPASSRLS role granted SELECT on `users` alone; everything
//! else stays inside one tenant's [`TenantTx`].

use sqlx::Row;

use super::users::UserRow;
use super::{now_secs, Db, TenantTx};
use crate::error::Result;

/// A user counts as absent from its `expires_at` on, whether or not the sweeper has run, and
/// while soft-deleted (`deleted_at` set by SystemDeleteUserProfiles).
const LIVE: &str = "(u.expires_at IS NULL OR u.expires_at > $1) AND u.deleted_at IS NULL";

use super::users::{user_at, USER_COLUMNS_U as USER_COLUMNS};

fn user_from_row(r: &sqlx::postgres::PgRow) -> UserRow {
    user_at(r, 0)
}

/// One audit event as bulk listings show it: `(uuid, event_type, created_at)`.
pub struct AuditSummary {
    pub uuid: String,
    pub event_type: String,
    pub created_at: i64,
}

impl Db {
    /// Users of every tenant, counted as `strongroom_reader` (transaction-local role).
    pub async fn count_all_users(&self) -> Result<i64> {
        let mut tx = self.pool().begin().await?;
        sqlx::query("SET LOCAL ROLE strongroom_reader").execute(&mut *tx).await?;
        let sql = format!("SELECT count(*) FROM users u WHERE {LIVE}");
        let n: i64 = sqlx::query_scalar(&sql).bind(now_secs()).fetch_one(&mut *tx).await?;
        tx.rollback().await?;
        Ok(n)
    }

    pub async fn count_tenants(&self) -> Result<i64> {
        Ok(sqlx::query_scalar("SELECT count(*) FROM tenants").fetch_one(&self.pool()).await?)
    }
}

impl TenantTx {
    /// This tenant's unexpired tokens.
    pub async fn count_live_tokens(&mut self) -> Result<i64> {
        Ok(sqlx::query_scalar("SELECT count(*) FROM tokens WHERE expires_at IS NULL OR expires_at > $1")
            .bind(now_secs())
            .fetch_one(self.conn())
            .await?)
    }

    /// This tenant's unexpired sessions.
    pub async fn count_live_sessions(&mut self) -> Result<i64> {
        Ok(sqlx::query_scalar("SELECT count(*) FROM sessions WHERE expires_at IS NULL OR expires_at > $1")
            .bind(now_secs())
            .fetch_one(self.conn())
            .await?)
    }

    /// A page of the tenant's live users, oldest first, and their total.
    pub async fn list_users(&mut self, offset: i64, limit: i64) -> Result<(i64, Vec<UserRow>)> {
        let now = now_secs();
        let sql = format!("SELECT {USER_COLUMNS} FROM users u WHERE {LIVE} ORDER BY u.id OFFSET $2 LIMIT $3");
        let rows = sqlx::query(&sql).bind(now).bind(offset).bind(limit).fetch_all(self.conn()).await?;
        let total: i64 = sqlx::query_scalar(&format!("SELECT count(*) FROM users u WHERE {LIVE}")).bind(now).fetch_one(self.conn()).await?;
        Ok((total, rows.iter().map(user_from_row).collect()))
    }

    /// A page of a group's live members, by user id, with the name of the role each holds in
    /// the group, and their total; `roles`, when given, keeps only members holding one of them.
    pub async fn list_group_users(
        &mut self,
        group_id: i64,
        roles: Option<&[String]>,
        offset: i64,
        limit: i64,
    ) -> Result<(i64, Vec<(UserRow, Option<String>)>)> {
        let now = now_secs();
        let from = format!(
            "FROM users u JOIN group_members m ON m.tenant_id = u.tenant_id AND m.user_id = u.id
               LEFT JOIN roles r ON r.tenant_id = m.tenant_id AND r.id = m.role_id
              WHERE {LIVE} AND m.group_id = $2 AND ($3::text[] IS NULL OR r.name = ANY($3))"
        );
        let sql = format!("SELECT {USER_COLUMNS}, r.name {from} ORDER BY u.id OFFSET $4 LIMIT $5");
        let rows = sqlx::query(&sql).bind(now).bind(group_id).bind(roles).bind(offset).bind(limit).fetch_all(self.conn()).await?;
        let total: i64 =
            sqlx::query_scalar(&format!("SELECT count(*) {from}")).bind(now).bind(group_id).bind(roles).fetch_one(self.conn()).await?;
        Ok((total, rows.iter().map(|r| (user_from_row(r), r.get::<Option<String>, _>(12))).collect()))
    }

    /// A page of the tenant's audit events, newest first (`id` orders events across the
    /// chain's lanes), and their total.
    pub async fn list_audit_events(&mut self, offset: i64, limit: i64) -> Result<(i64, Vec<AuditSummary>)> {
        let rows = sqlx::query("SELECT uuid, event_type, created_at FROM audit_events ORDER BY id DESC OFFSET $1 LIMIT $2")
            .bind(offset)
            .bind(limit)
            .fetch_all(self.conn())
            .await?;
        let total: i64 = sqlx::query_scalar("SELECT count(*) FROM audit_events").fetch_one(self.conn()).await?;
        Ok((total, rows.iter().map(|r| AuditSummary { uuid: r.get(0), event_type: r.get(1), created_at: r.get(2) }).collect()))
    }

    /// How many audit events name the user.
    pub async fn count_user_audit_events(&mut self, token: &str) -> Result<i64> {
        Ok(sqlx::query_scalar("SELECT count(*) FROM audit_events WHERE user_token = $1").bind(token).fetch_one(self.conn()).await?)
    }
}
