//! Files: encrypted content per user, with its encrypted name and type, a keyed content digest
//! for duplicate detection, and an optional expiry (expired files are never returned).

use sqlx::Row;

use super::sessions::Expiry;
use super::users::{user_at, UserRow, USER_COLUMNS_U};
use super::{now_secs, TenantTx};
use crate::error::Result;

/// One stored file (ciphertexts as stored).
pub struct FileRow {
    pub uuid: String,
    pub meta: Vec<u8>,
    pub data: Vec<u8>,
    pub digest: String,
    pub size: i64,
    pub sliding_secs: Option<i64>,
    pub final_at: Option<i64>,
    pub created_at: i64,
}

/// A new file, sealed by the caller.
pub struct NewFile<'a> {
    pub uuid: &'a str,
    pub meta: &'a [u8],
    pub name_hash: &'a str,
    pub data: &'a [u8],
    pub digest: &'a str,
    pub size: i64,
    pub expiry: Expiry,
    /// Keyed hashes of the file's tags.
    pub tag_hashes: &'a [String],
}

const LIVE: &str = "(expires_at IS NULL OR expires_at > $2)";
const COLUMNS: &str = "uuid, meta, data, digest, size, sliding_secs, final_at, created_at";
/// [`COLUMNS`] without the content, for listings.
const LISTED: &str = "uuid, meta, ''::bytea, digest, size, sliding_secs, final_at, created_at";

fn from_row(r: &sqlx::postgres::PgRow) -> FileRow {
    FileRow {
        uuid: r.get(0),
        meta: r.get(1),
        data: r.get(2),
        digest: r.get(3),
        size: r.get(4),
        sliding_secs: r.get(5),
        final_at: r.get(6),
        created_at: r.get(7),
    }
}

impl TenantTx {
    /// Stores a file; `Err(existing uuid)` when the user already has a live file with the same
    /// content digest (an expired one is dropped first).
    pub async fn insert_file(&mut self, user_id: i64, f: &NewFile<'_>) -> Result<std::result::Result<(), String>> {
        let tenant = self.tenant_id();
        let now = now_secs();
        sqlx::query("DELETE FROM files WHERE user_id = $1 AND digest = $2 AND expires_at IS NOT NULL AND expires_at <= $3")
            .bind(user_id)
            .bind(f.digest)
            .bind(now)
            .execute(self.conn())
            .await?;
        let inserted = sqlx::query(
            "INSERT INTO files (tenant_id, uuid, user_id, meta, name_hash, data, digest, size, sliding_secs, final_at, expires_at, created_at, tag_hashes)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13) ON CONFLICT (tenant_id, user_id, digest) DO NOTHING",
        )
        .bind(tenant)
        .bind(f.uuid)
        .bind(user_id)
        .bind(f.meta)
        .bind(f.name_hash)
        .bind(f.data)
        .bind(f.digest)
        .bind(f.size)
        .bind(f.expiry.sliding_secs)
        .bind(f.expiry.final_at)
        .bind(f.expiry.expires_at(now))
        .bind(now)
        .bind(f.tag_hashes)
        .execute(self.conn())
        .await?
        .rows_affected();
        if inserted == 1 {
            return Ok(Ok(()));
        }
        let existing: String = sqlx::query_scalar("SELECT uuid FROM files WHERE user_id = $1 AND digest = $2")
            .bind(user_id)
            .bind(f.digest)
            .fetch_one(self.conn())
            .await?;
        Ok(Err(existing))
    }

    /// A live file of the user by uuid.
    pub async fn file_by_uuid(&mut self, user_id: i64, uuid: &str) -> Result<Option<FileRow>> {
        let sql = format!("SELECT {COLUMNS} FROM files WHERE user_id = $1 AND {LIVE} AND uuid = $3");
        let row = sqlx::query(&sql).bind(user_id).bind(now_secs()).bind(uuid).fetch_optional(self.conn()).await?;
        Ok(row.as_ref().map(from_row))
    }

    /// The newest live file of the user with this (hashed) name.
    pub async fn file_by_name(&mut self, user_id: i64, name_hash: &str) -> Result<Option<FileRow>> {
        let sql =
            format!("SELECT {COLUMNS} FROM files WHERE user_id = $1 AND {LIVE} AND name_hash = $3 ORDER BY created_at DESC, uuid LIMIT 1");
        let row = sqlx::query(&sql).bind(user_id).bind(now_secs()).bind(name_hash).fetch_optional(self.conn()).await?;
        Ok(row.as_ref().map(from_row))
    }

    /// Every live file of the user, oldest first, or only those carrying the tag of
    /// `tag_hash` (content left out).
    pub async fn user_files(&mut self, user_id: i64, tag_hash: Option<&str>) -> Result<Vec<FileRow>> {
        let sql = format!(
            "SELECT {LISTED} FROM files WHERE user_id = $1 AND {LIVE} AND ($3::text IS NULL OR $3 = ANY(tag_hashes)) ORDER BY created_at, uuid"
        );
        let rows = sqlx::query(&sql).bind(user_id).bind(now_secs()).bind(tag_hash).fetch_all(self.conn()).await?;
        Ok(rows.iter().map(from_row).collect())
    }

    /// A page of the tenant's live files carrying the tag of `tag_hash`, with their live owners,
    /// oldest first (content left out), and how many there are in all.
    pub async fn files_by_tag(&mut self, tag_hash: &str, offset: i64, limit: i64) -> Result<(i64, Vec<(FileRow, UserRow)>)> {
        let from = "FROM files f JOIN users u ON u.tenant_id = f.tenant_id AND u.id = f.user_id
             WHERE $1 = ANY(f.tag_hashes) AND (f.expires_at IS NULL OR f.expires_at > $2)
               AND u.deleted_at IS NULL AND (u.expires_at IS NULL OR u.expires_at > $2)";
        let now = now_secs();
        let total: i64 = sqlx::query_scalar(&format!("SELECT count(*) {from}")).bind(tag_hash).bind(now).fetch_one(self.conn()).await?;
        let sql = format!(
            "SELECT f.uuid, f.meta, ''::bytea, f.digest, f.size, f.sliding_secs, f.final_at, f.created_at, {USER_COLUMNS_U} {from}
             ORDER BY f.created_at, f.uuid OFFSET $3 LIMIT $4"
        );
        let rows = sqlx::query(&sql).bind(tag_hash).bind(now).bind(offset).bind(limit).fetch_all(self.conn()).await?;
        Ok((total, rows.iter().map(|r| (from_row(r), user_at(r, 8))).collect()))
    }

    /// Replaces a live file's meta (which carries its tags) and tag hashes; false when there is
    /// no such file.
    pub async fn replace_file_tags(&mut self, user_id: i64, uuid: &str, meta: &[u8], tag_hashes: &[String]) -> Result<bool> {
        let n = sqlx::query(&format!("UPDATE files SET meta = $4, tag_hashes = $5 WHERE user_id = $1 AND {LIVE} AND uuid = $3"))
            .bind(user_id)
            .bind(now_secs())
            .bind(uuid)
            .bind(meta)
            .bind(tag_hashes)
            .execute(self.conn())
            .await?
            .rows_affected();
        Ok(n == 1)
    }

    /// Extends a sliding expiry after an access.
    pub async fn touch_file(&mut self, uuid: &str, expiry: Expiry) -> Result<()> {
        if expiry.sliding_secs.is_none() {
            return Ok(());
        }
        sqlx::query("UPDATE files SET expires_at = $2 WHERE uuid = $1")
            .bind(uuid)
            .bind(expiry.expires_at(now_secs()))
            .execute(self.conn())
            .await?;
        Ok(())
    }

    /// Deletes a live file of the user; false when there was none.
    pub async fn delete_file(&mut self, user_id: i64, uuid: &str) -> Result<bool> {
        let n = sqlx::query("DELETE FROM files WHERE user_id = $1 AND uuid = $2 AND (expires_at IS NULL OR expires_at > $3)")
            .bind(user_id)
            .bind(uuid)
            .bind(now_secs())
            .execute(self.conn())
            .await?
            .rows_affected();
        Ok(n == 1)
    }

    /// Deletes up to `limit` files past their expiry (SKIP LOCKED: instances never collide).
    pub async fn sweep_files(&mut self, now: i64, limit: i64) -> Result<u64> {
        Ok(sqlx::query(
            "DELETE FROM files WHERE uuid = ANY(ARRAY(
                 SELECT uuid FROM files WHERE expires_at <= $1 LIMIT $2 FOR UPDATE SKIP LOCKED))",
        )
        .bind(now)
        .bind(limit)
        .execute(self.conn())
        .await?
        .rows_affected())
    }
}
