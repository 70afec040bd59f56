//! Tenant data-key rotation: new versions, and the rows whose small keys still need re-wrapping
//! (users' keys and audit events' keys; the records themselves never move). Batches take row
//! locks with SKIP LOCKED, so several instances re-wrap side by side without double work.

use sqlx::Row;

use super::{now_secs, TenantTx};
use crate::error::Result;

/// A row whose key is wrapped by an older data-key version.
pub struct Pending {
    pub id: i64,
    /// Associated-data row name (user token, or audit event uuid).
    pub row: String,
    pub key_version: i32,
    pub wrapped: Vec<u8>,
}

impl TenantTx {
    /// Takes, for the rest of this transaction, the fleet-wide lock that lets one rotation of
    /// tenant `tenant_id` run at a time; `false` when another transaction holds it. Taken in the
    /// calling request's own transaction before the rotation opens another, so concurrent
    /// rotations are turned away before they hold a second pooled connection each.
    pub async fn try_lock_rotation(&mut self, tenant_id: i64) -> Result<bool> {
        Ok(sqlx::query_scalar("SELECT pg_try_advisory_xact_lock(hashtextextended('strongroom:rotate-tenant-key', $1))")
            .bind(tenant_id)
            .fetch_one(self.conn())
            .await?)
    }

    /// Adds data-key version `max + 1` (wrapped by `wrap`, given the version) and makes it the
    /// tenant's current version. Returns the new version.
    /// A concurrent rotation that got past [`TenantTx::try_lock_rotation`]'s check (called from
    /// elsewhere) still cannot store a duplicate version: that is 409.
    pub async fn rotate_data_key(&mut self, wrap: impl FnOnce(i32) -> Vec<u8>) -> Result<i32> {
        let tenant = self.tenant_id();
        let next: i32 = sqlx::query_scalar("SELECT COALESCE(max(version), 0) + 1 FROM tenant_keys").fetch_one(self.conn()).await?;
        sqlx::query("INSERT INTO tenant_keys (tenant_id, version, wrapped, created_at) VALUES ($1, $2, $3, $4)")
            .bind(tenant)
            .bind(next)
            .bind(wrap(next))
            .bind(now_secs())
            .execute(self.conn())
            .await
            .map_err(|e| {
                crate::error::on_constraint(
                    e,
                    &[("tenant_keys_pkey", "a key rotation of this tenant is in progress; retry when it is done")],
                )
            })?;
        self.as_directory(async |c| {
            sqlx::query("UPDATE tenants SET key_version = $2, updated_at = $3 WHERE id = $1")
                .bind(tenant)
                .bind(next)
                .bind(now_secs())
                .execute(c)
                .await
        })
        .await?;
        self.key_version = next;
        Ok(next)
    }

    pub async fn users_to_rewrap(&mut self, current: i32, limit: i64) -> Result<Vec<Pending>> {
        let rows = sqlx::query(
            "SELECT id, token, key_version, user_key FROM users WHERE key_version < $1 ORDER BY id LIMIT $2 FOR UPDATE SKIP LOCKED",
        )
        .bind(current)
        .bind(limit)
        .fetch_all(self.conn())
        .await?;
        Ok(rows.iter().map(|r| Pending { id: r.get(0), row: r.get(1), key_version: r.get(2), wrapped: r.get(3) }).collect())
    }

    pub async fn events_to_rewrap(&mut self, current: i32, limit: i64) -> Result<Vec<Pending>> {
        let rows = sqlx::query(
            "SELECT id, uuid, key_version, event_key FROM audit_events WHERE key_version < $1 ORDER BY id LIMIT $2 FOR UPDATE SKIP LOCKED",
        )
        .bind(current)
        .bind(limit)
        .fetch_all(self.conn())
        .await?;
        Ok(rows.iter().map(|r| Pending { id: r.get(0), row: r.get(1), key_version: r.get(2), wrapped: r.get(3) }).collect())
    }

    /// Stores re-wrapped user keys `(id, wrapped)` under `version`.
    pub async fn set_user_keys(&mut self, version: i32, rows: &[(i64, Vec<u8>)]) -> Result<()> {
        let ids: Vec<i64> = rows.iter().map(|r| r.0).collect();
        let keys: Vec<&[u8]> = rows.iter().map(|r| r.1.as_slice()).collect();
        sqlx::query(
            "UPDATE users u SET key_version = $1, user_key = x.k FROM UNNEST($2::bigint[], $3::bytea[]) AS x(i, k) WHERE u.id = x.i",
        )
        .bind(version)
        .bind(&ids)
        .bind(&keys)
        .execute(self.conn())
        .await?;
        Ok(())
    }

    /// Stores re-wrapped audit event keys `(id, wrapped)` under `version`.
    pub async fn set_event_keys(&mut self, version: i32, rows: &[(i64, Vec<u8>)]) -> Result<()> {
        let seqs: Vec<i64> = rows.iter().map(|r| r.0).collect();
        let keys: Vec<&[u8]> = rows.iter().map(|r| r.1.as_slice()).collect();
        sqlx::query("UPDATE audit_events e SET key_version = $1, event_key = x.k FROM UNNEST($2::bigint[], $3::bytea[]) AS x(s, k) WHERE e.id = x.s")
            .bind(version)
            .bind(&seqs)
            .bind(&keys)
            .execute(self.conn())
            .await?;
        Ok(())
    }

    /// Tokens whose record and token value are still encrypted under an older data key:
    /// `(uuid, key_version, record, tokenbase)`.
    pub async fn tokens_to_rewrap(&mut self, current: i32, limit: i64) -> Result<Vec<(String, i32, Vec<u8>, Vec<u8>)>> {
        let rows = sqlx::query(
            "SELECT uuid, key_version, record, tokenbase FROM tokens WHERE key_version < $1 ORDER BY uuid LIMIT $2 FOR UPDATE SKIP LOCKED",
        )
        .bind(current)
        .bind(limit)
        .fetch_all(self.conn())
        .await?;
        Ok(rows.iter().map(|r| (r.get(0), r.get(1), r.get(2), r.get(3))).collect())
    }

    /// Stores re-encrypted tokens `(uuid, record, tokenbase)` under `version`.
    pub async fn set_token_blobs(&mut self, version: i32, rows: &[(String, Vec<u8>, Vec<u8>)]) -> Result<()> {
        let uuids: Vec<&str> = rows.iter().map(|r| r.0.as_str()).collect();
        let records: Vec<&[u8]> = rows.iter().map(|r| r.1.as_slice()).collect();
        let bases: Vec<&[u8]> = rows.iter().map(|r| r.2.as_slice()).collect();
        sqlx::query(
            "UPDATE tokens t SET key_version = $1, record = x.r, tokenbase = x.b FROM UNNEST($2::text[], $3::bytea[], $4::bytea[]) AS x(u, r, b) WHERE t.uuid = x.u",
        )
        .bind(version)
        .bind(&uuids)
        .bind(&records)
        .bind(&bases)
        .execute(self.conn())
        .await?;
        Ok(())
    }

    /// `(users, audit events and tokens)` still under a data-key version older than `current`.
    pub async fn rewrap_backlog(&mut self, current: i32) -> Result<(i64, i64)> {
        let users: i64 =
            sqlx::query_scalar("SELECT count(*) FROM users WHERE key_version < $1").bind(current).fetch_one(self.conn()).await?;
        // Audit events and tokens together: both are re-encrypted in the same passes.
        let events: i64 = sqlx::query_scalar(
            "SELECT (SELECT count(*) FROM audit_events WHERE key_version < $1) + (SELECT count(*) FROM tokens WHERE key_version < $1)
                  + (SELECT count(*) FROM sessions WHERE key_version < $1)",
        )
        .bind(current)
        .fetch_one(self.conn())
        .await?;
        Ok((users, events))
    }

    /// Deletes data-key versions older than `current` that nothing references any more. The
    /// foreign keys make this safe against a concurrent write under an old version: such a
    /// delete fails and is retried on the next pass.
    pub async fn retire_data_keys(&mut self, current: i32) -> Result<u64> {
        sqlx::query("SAVEPOINT retire").execute(self.conn()).await?;
        match sqlx::query("DELETE FROM tenant_keys WHERE version < $1").bind(current).execute(self.conn()).await {
            Ok(r) => {
                sqlx::query("RELEASE SAVEPOINT retire").execute(self.conn()).await?;
                Ok(r.rows_affected())
            }
            Err(sqlx::Error::Database(e)) if e.is_foreign_key_violation() => {
                sqlx::query("ROLLBACK TO SAVEPOINT retire").execute(self.conn()).await?;
                Ok(0)
            }
            Err(e) => Err(e.into()),
        }
    }

    /// Data-key versions present for this tenant.
    pub async fn data_key_versions(&mut self) -> Result<Vec<i32>> {
        Ok(sqlx::query_scalar("SELECT version FROM tenant_keys ORDER BY version").fetch_all(self.conn()).await?)
    }
}
