//! App data: one encrypted JSON object per user and app name, with its earlier versions.

use sqlx::Row;

use super::{now_secs, TenantTx};
use crate::error::Result;

/// The current (encrypted) app data of one user and app name.
pub struct AppdataRow {
    pub id: i64,
    pub appname: String,
    pub version: i32,
    pub data: Vec<u8>,
    pub digest: String,
    pub updated_at: i64,
}

fn from_row(r: &sqlx::postgres::PgRow) -> AppdataRow {
    AppdataRow { id: r.get(0), appname: r.get(1), version: r.get(2), data: r.get(3), digest: r.get(4), updated_at: r.get(5) }
}

const COLUMNS: &str = "id, appname, version, data, digest, updated_at";

impl TenantTx {
    /// Stores version 1 of a user's app data; `None` when the user already has that app.
    pub async fn insert_appdata(&mut self, user_id: i64, appname: &str, data: &[u8], digest: &str) -> Result<Option<i64>> {
        let tenant = self.tenant_id();
        let id: Option<i64> = sqlx::query_scalar(
            "INSERT INTO appdata (tenant_id, user_id, appname, version, data, digest, created_at, updated_at)
             VALUES ($1, $2, $3, 1, $4, $5, $6, $6) ON CONFLICT DO NOTHING RETURNING id",
        )
        .bind(tenant)
        .bind(user_id)
        .bind(appname)
        .bind(data)
        .bind(digest)
        .bind(now_secs())
        .fetch_optional(self.conn())
        .await?;
        Ok(id)
    }

    /// The current app data; with `lock`, the row stays locked for the rest of the transaction.
    pub async fn appdata(&mut self, user_id: i64, appname: &str, lock: bool) -> Result<Option<AppdataRow>> {
        let sql = format!("SELECT {COLUMNS} FROM appdata WHERE user_id = $1 AND appname = $2{}", if lock { " FOR UPDATE" } else { "" });
        let row = sqlx::query(&sql).bind(user_id).bind(appname).fetch_optional(self.conn()).await?;
        Ok(row.as_ref().map(from_row))
    }

    /// Moves the current data into the history and stores the new one as `old.version + 1`.
    pub async fn replace_appdata(&mut self, old: &AppdataRow, data: &[u8], digest: &str) -> Result<i32> {
        let tenant = self.tenant_id();
        sqlx::query("INSERT INTO appdata_versions (tenant_id, appdata_id, version, data, digest, optime) VALUES ($1, $2, $3, $4, $5, $6)")
            .bind(tenant)
            .bind(old.id)
            .bind(old.version)
            .bind(&old.data)
            .bind(&old.digest)
            .bind(old.updated_at)
            .execute(self.conn())
            .await?;
        let version = old.version + 1;
        sqlx::query("UPDATE appdata SET version = $2, data = $3, digest = $4, updated_at = $5 WHERE id = $1")
            .bind(old.id)
            .bind(version)
            .bind(data)
            .bind(digest)
            .bind(now_secs())
            .execute(self.conn())
            .await?;
        Ok(version)
    }

    /// The ciphertext of an earlier version.
    pub async fn appdata_version(&mut self, appdata_id: i64, version: i32) -> Result<Option<Vec<u8>>> {
        let data = sqlx::query_scalar("SELECT data FROM appdata_versions WHERE appdata_id = $1 AND version = $2")
            .bind(appdata_id)
            .bind(version)
            .fetch_optional(self.conn())
            .await?;
        Ok(data)
    }

    /// `(version, optime, digest)` of every earlier version, oldest first.
    pub async fn appdata_versions(&mut self, appdata_id: i64) -> Result<Vec<(i32, i64, String)>> {
        let rows = sqlx::query("SELECT version, optime, digest FROM appdata_versions WHERE appdata_id = $1 ORDER BY version")
            .bind(appdata_id)
            .fetch_all(self.conn())
            .await?;
        Ok(rows.iter().map(|r| (r.get(0), r.get(1), r.get(2))).collect())
    }

    /// Deletes a user's app data and its versions; false when there was none.
    pub async fn delete_appdata(&mut self, user_id: i64, appname: &str) -> Result<bool> {
        let n = sqlx::query("DELETE FROM appdata WHERE user_id = $1 AND appname = $2")
            .bind(user_id)
            .bind(appname)
            .execute(self.conn())
            .await?
            .rows_affected();
        Ok(n == 1)
    }

    /// The app names a user has data for, sorted.
    pub async fn user_appnames(&mut self, user_id: i64) -> Result<Vec<String>> {
        let names = sqlx::query_scalar("SELECT appname FROM appdata WHERE user_id = $1 ORDER BY appname")
            .bind(user_id)
            .fetch_all(self.conn())
            .await?;
        Ok(names)
    }

    /// Every app name in use in the tenant, sorted.
    pub async fn appnames(&mut self) -> Result<Vec<String>> {
        let names = sqlx::query_scalar("SELECT DISTINCT appname FROM appdata ORDER BY appname").fetch_all(self.conn()).await?;
        Ok(names)
    }
}
