//! Shared records: an encrypted snapshot of some of a user's fields, readable by uuid until it
//! expires. An expired record is never returned, whether or not it has been deleted yet.

use sqlx::Row;

use super::users::UserRow;
use super::{now_secs, TenantTx};
use crate::error::Result;

/// A live shared record and the user it belongs to.
pub struct SharedRow {
    pub uuid: String,
    pub partner: String,
    pub data: Vec<u8>,
    pub expires_at: i64,
    pub user: UserRow,
}

impl TenantTx {
    pub async fn insert_shared_record(&mut self, uuid: &str, user_id: i64, partner: &str, data: &[u8], expires_at: i64) -> Result<()> {
        let tenant = self.tenant_id();
        sqlx::query(
            "INSERT INTO shared_records (tenant_id, uuid, user_id, partner, data, expires_at, created_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(tenant)
        .bind(uuid)
        .bind(user_id)
        .bind(partner)
        .bind(data)
        .bind(expires_at)
        .bind(now_secs())
        .execute(self.conn())
        .await?;
        Ok(())
    }

    /// The shared record `uuid` if it has not expired.
    pub async fn shared_record(&mut self, uuid: &str) -> Result<Option<SharedRow>> {
        let row = sqlx::query(
            "SELECT s.uuid, s.partner, s.data, s.expires_at, u.id, u.token, u.version, u.key_version, u.user_key, u.profile,
                    u.digest, u.created_at, u.updated_at, u.sliding_secs, u.final_at, u.expires_at
             FROM shared_records s JOIN users u ON u.tenant_id = s.tenant_id AND u.id = s.user_id
             WHERE s.uuid = $1 AND s.expires_at > $2 AND (u.expires_at IS NULL OR u.expires_at > $2) AND u.deleted_at IS NULL",
        )
        .bind(uuid)
        .bind(now_secs())
        .fetch_optional(self.conn())
        .await?;
        Ok(row.map(|r| SharedRow {
            uuid: r.get(0),
            partner: r.get(1),
            data: r.get(2),
            expires_at: r.get(3),
            user: super::users::user_at(&r, 4),
        }))
    }

    /// Deletes the tenant's expired shared records.
    pub async fn delete_expired_shared_records(&mut self) -> Result<u64> {
        let n =
            sqlx::query("DELETE FROM shared_records WHERE expires_at <= $1").bind(now_secs()).execute(self.conn()).await?.rows_affected();
        Ok(n)
    }

    /// Deletes up to `limit` shared records expired at `now` that no other transaction holds
    /// (concurrent sweepers skip each other's rows); returns how many.
    pub async fn sweep_shared_records(&mut self, now: i64, limit: i64) -> Result<u64> {
        let n = sqlx::query(
            "DELETE FROM shared_records WHERE uuid = ANY(ARRAY(
                 SELECT uuid FROM shared_records WHERE expires_at <= $1 LIMIT $2 FOR UPDATE SKIP LOCKED))",
        )
        .bind(now)
        .bind(limit)
        .execute(self.conn())
        .await?
        .rows_affected();
        Ok(n)
    }
}
