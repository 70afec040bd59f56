//! User records: encrypted current profile, earlier versions, blind indexes.

use sqlx::Row;

use super::groups::{GroupRow, MembershipRow};
use super::{now_secs, TenantTx};
use crate::error::{Error, Result};
use crate::keys::blind::IndexMode;

/// A stored (encrypted) user record.
#[derive(Clone)]
pub struct UserRow {
    pub id: i64,
    pub token: String,
    pub version: i32,
    /// Data-key version wrapping `user_key`.
    pub key_version: i32,
    pub user_key: Vec<u8>,
    pub profile: Vec<u8>,
    pub digest: String,
    pub created_at: i64,
    pub updated_at: i64,
    pub retention: Retention,
    /// The user's groups, when the statement that found the user read them too
    /// ([`TenantTx::user_by_token`], [`TenantTx::user_by_index`]); `None` otherwise.
    pub memberships: Option<Vec<MembershipRow>>,
}

/// A new record ready for storage: already encrypted and indexed by the caller.
pub struct NewUser {
    pub token: String,
    pub key_version: i32,
    pub user_key: Vec<u8>,
    pub profile: Vec<u8>,
    pub digest: String,
    pub indexes: Vec<(IndexMode, [u8; 32])>,
    /// Retention (all `None`: kept until deleted).
    pub retention: Retention,
}

/// A user's retention settings: a sliding expiry of `sliding_secs` (extended on every read,
/// never past `final_at`), a final time, and the resulting `expires_at`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Retention {
    pub sliding_secs: Option<i64>,
    pub final_at: Option<i64>,
    pub expires_at: Option<i64>,
}

impl Retention {
    /// The settings with `expires_at` computed at `now`: the earlier of `now + sliding` and
    /// the final time.
    pub fn new(sliding_secs: Option<i64>, final_at: Option<i64>, now: i64) -> Retention {
        let slid = sliding_secs.map(|s| now.saturating_add(s));
        let expires_at = match (slid, final_at) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        Retention { sliding_secs, final_at, expires_at }
    }
}

/// A user counts as absent from its `expires_at` on, whether or not the sweeper has run, and
/// while soft-deleted (`deleted_at` set by SystemDeleteUserProfiles, until restored or purged).
const LIVE: &str = "(expires_at IS NULL OR expires_at > $2) AND deleted_at IS NULL";

pub struct VersionRow {
    pub version: i32,
    pub profile: Vec<u8>,
    pub digest: String,
    pub optime: i64,
}

const USER_COLUMNS: &str =
    "id, token, version, key_version, user_key, profile, digest, created_at, updated_at, sliding_secs, final_at, expires_at";

/// The `users` columns a [`UserRow`] is read from, qualified with a table alias (`u.id, …`),
/// for queries that join users; read them back with [`user_at`].
pub const USER_COLUMNS_U: &str =
    "u.id, u.token, u.version, u.key_version, u.user_key, u.profile, u.digest, u.created_at, u.updated_at, u.sliding_secs, u.final_at, u.expires_at";

/// A [`UserRow`] from the columns of [`USER_COLUMNS_U`] starting at `at`.
pub fn user_at(r: &sqlx::postgres::PgRow, at: usize) -> UserRow {
    UserRow {
        id: r.get(at),
        token: r.get(at + 1),
        version: r.get(at + 2),
        key_version: r.get(at + 3),
        user_key: r.get(at + 4),
        profile: r.get(at + 5),
        digest: r.get(at + 6),
        created_at: r.get(at + 7),
        updated_at: r.get(at + 8),
        retention: Retention { sliding_secs: r.get(at + 9), final_at: r.get(at + 10), expires_at: r.get(at + 11) },
        memberships: None,
    }
}

fn user_from_row(r: &sqlx::postgres::PgRow) -> UserRow {
    user_at(r, 0)
}

/// The groups of user `u`, as one JSON text column after [`USER_COLUMNS_U`]: a lookup reads a
/// user's memberships in its own statement (UserGet answers them), one round trip fewer than
/// [`TenantTx::user_groups`], whose order and fields it keeps.
const MEMBERSHIPS_OF_U: &str = "(SELECT json_agg(json_build_object('id', g.id, 'name', g.name, 'description', g.description,
        'grouptype', g.grouptype, 'role_id', m.role_id, 'role_name', r.name) ORDER BY g.id)::text
     FROM group_members m
     JOIN groups g ON g.tenant_id = m.tenant_id AND g.id = m.group_id
     LEFT JOIN roles r ON r.tenant_id = m.tenant_id AND r.id = m.role_id
     WHERE m.tenant_id = u.tenant_id AND m.user_id = u.id)";

/// A user found with its memberships (columns [`USER_COLUMNS_U`], then [`MEMBERSHIPS_OF_U`]).
fn located_user(r: &sqlx::postgres::PgRow) -> Result<UserRow> {
    #[derive(serde::Deserialize)]
    struct Member {
        id: i64,
        name: String,
        description: String,
        grouptype: String,
        role_id: Option<i64>,
        role_name: Option<String>,
    }
    let mut user = user_at(r, 0);
    let json: Option<String> = r.get(12);
    let members: Vec<Member> = match json {
        None => Vec::new(),
        Some(text) => serde_json::from_str(&text)?,
    };
    user.memberships = Some(
        members
            .into_iter()
            .map(|m| MembershipRow {
                group: GroupRow { id: m.id, name: m.name, description: m.description, grouptype: m.grouptype },
                role_id: m.role_id,
                role_name: m.role_name,
            })
            .collect(),
    );
    Ok(user)
}

/// The 409 for blind-index entries that did not go in (taken by another user, or twice in one
/// batch): the mode of the first entry missing from `inserted`. PostgreSQL withholds the key
/// of a unique violation on a table with row-level security, so conflicts are found with
/// `ON CONFLICT DO NOTHING` instead; the caller's transaction is rolled back on the error.
fn taken_identity(modes: &[&str], hashes: &[&[u8]], inserted: Vec<(String, Vec<u8>)>) -> Error {
    let mut done: std::collections::HashSet<(String, Vec<u8>)> = inserted.into_iter().collect();
    let taken = modes.iter().zip(hashes).find(|(m, h)| !done.remove(&(m.to_string(), h.to_vec()))).map(|(m, _)| *m).unwrap_or("identity");
    Error::Conflict(format!("duplicate {taken}: another user already has it"))
}

impl TenantTx {
    /// Inserts users and their blind indexes in one statement whatever the batch size; an
    /// identity already taken is a 409 naming its mode (see [`taken_identity`]).
    pub async fn insert_users(&mut self, users: &[NewUser]) -> Result<Vec<i64>> {
        let now = now_secs();
        let tokens: Vec<&str> = users.iter().map(|u| u.token.as_str()).collect();
        let kvs: Vec<i32> = users.iter().map(|u| u.key_version).collect();
        let user_keys: Vec<&[u8]> = users.iter().map(|u| u.user_key.as_slice()).collect();
        let profiles: Vec<&[u8]> = users.iter().map(|u| u.profile.as_slice()).collect();
        let digests: Vec<&str> = users.iter().map(|u| u.digest.as_str()).collect();
        let sliding: Vec<Option<i64>> = users.iter().map(|u| u.retention.sliding_secs).collect();
        let finals: Vec<Option<i64>> = users.iter().map(|u| u.retention.final_at).collect();
        let expiries: Vec<Option<i64>> = users.iter().map(|u| u.retention.expires_at).collect();
        let (mut modes, mut hashes, mut owners) = (Vec::new(), Vec::new(), Vec::new());
        for u in users {
            for (m, h) in &u.indexes {
                modes.push(m.as_str());
                hashes.push(h.as_slice());
                owners.push(u.token.as_str());
            }
        }
        // The index rows find their user by token (unique in the tenant) among the rows the
        // same statement inserted. Each row carries how many index entries went in; only a
        // conflict costs a second statement, to name the mode that was taken.
        let rows: Vec<(i64, String, i64)> = sqlx::query_as(
            "WITH ins AS (
                 INSERT INTO users (tenant_id, token, version, key_version, user_key, profile, digest, created_at, updated_at,
                                    sliding_secs, final_at, expires_at)
                 SELECT $1, t, 1, k, uk, p, d, $7, $7, sl, fa, ea
                 FROM UNNEST($2::text[], $3::int[], $4::bytea[], $5::bytea[], $6::text[], $8::bigint[], $9::bigint[], $10::bigint[])
                      WITH ORDINALITY AS x(t, k, uk, p, d, sl, fa, ea, n)
                 ORDER BY n RETURNING id, token),
             idx AS (
                 INSERT INTO user_index (tenant_id, mode, hash, user_id)
                 SELECT $1, y.m, y.h, ins.id FROM UNNEST($11::text[], $12::bytea[], $13::text[]) AS y(m, h, t) JOIN ins ON ins.token = y.t
                 ON CONFLICT DO NOTHING RETURNING 1)
             SELECT ins.id, ins.token, (SELECT count(*) FROM idx) FROM ins",
        )
        .bind(self.tenant_id())
        .bind(&tokens)
        .bind(&kvs)
        .bind(&user_keys)
        .bind(&profiles)
        .bind(&digests)
        .bind(now)
        .bind(&sliding)
        .bind(&finals)
        .bind(&expiries)
        .bind(&modes)
        .bind(&hashes)
        .bind(&owners)
        .fetch_all(self.conn())
        .await?;
        let indexed = rows.first().map_or(0, |r| r.2);
        if indexed != modes.len() as i64 {
            let inserted: Vec<(String, Vec<u8>)> = sqlx::query_as(
                "SELECT i.mode, i.hash FROM user_index i JOIN users u ON u.tenant_id = i.tenant_id AND u.id = i.user_id
                 JOIN UNNEST($1::text[], $2::bytea[], $3::text[]) AS y(m, h, t) ON i.mode = y.m AND i.hash = y.h AND u.token = y.t",
            )
            .bind(&modes)
            .bind(&hashes)
            .bind(&owners)
            .fetch_all(self.conn())
            .await?;
            return Err(taken_identity(&modes, &hashes, inserted));
        }
        let ids: std::collections::HashMap<String, i64> = rows.into_iter().map(|(id, token, _)| (token, id)).collect();
        tokens
            .iter()
            .map(|t| ids.get(*t).copied().ok_or_else(|| Error::Internal(anyhow::anyhow!("a new user's id was not returned"))))
            .collect()
    }

    /// Inserts blind indexes; an identity already taken is a 409 (see [`taken_identity`]).
    async fn insert_indexes(&mut self, modes: &[&str], hashes: &[&[u8]], owners: &[i64]) -> Result<()> {
        if modes.is_empty() {
            return Ok(());
        }
        let tenant = self.tenant_id();
        let inserted: Vec<(String, Vec<u8>)> = sqlx::query_as(
            "INSERT INTO user_index (tenant_id, mode, hash, user_id) SELECT $1, m, h, u FROM UNNEST($2::text[], $3::bytea[], $4::bigint[]) AS x(m, h, u)
             ON CONFLICT DO NOTHING RETURNING mode, hash",
        )
        .bind(tenant)
        .bind(modes)
        .bind(hashes)
        .bind(owners)
        .fetch_all(self.conn())
        .await?;
        if inserted.len() == modes.len() {
            return Ok(());
        }
        Err(taken_identity(modes, hashes, inserted))
    }

    /// Whether any record of the tenant, live or not, holds `token`.
    pub async fn token_taken(&mut self, token: &str) -> Result<bool> {
        Ok(sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM users WHERE token = $1)").bind(token).fetch_one(self.conn()).await?)
    }

    /// The live user holding `token`, with its memberships.
    pub async fn user_by_token(&mut self, token: &str) -> Result<Option<UserRow>> {
        let sql = format!("SELECT {USER_COLUMNS_U}, {MEMBERSHIPS_OF_U} FROM users u WHERE u.token = $1 AND {LIVE}");
        let row = sqlx::query(&sql).bind(token).bind(now_secs()).fetch_optional(self.conn()).await?;
        row.as_ref().map(located_user).transpose()
    }

    /// The live user a blind index points to, with its memberships.
    pub async fn user_by_index(&mut self, mode: IndexMode, hash: &[u8]) -> Result<Option<UserRow>> {
        let sql = format!(
            "SELECT {USER_COLUMNS_U}, {MEMBERSHIPS_OF_U} FROM users u JOIN user_index i ON i.tenant_id = u.tenant_id AND i.user_id = u.id
             WHERE i.mode = $1 AND i.hash = $3 AND (u.expires_at IS NULL OR u.expires_at > $2) AND u.deleted_at IS NULL"
        );
        let row = sqlx::query(&sql).bind(mode.as_str()).bind(now_secs()).bind(hash).fetch_optional(self.conn()).await?;
        row.as_ref().map(located_user).transpose()
    }

    /// Locks the user's row for the rest of the transaction (read-modify-write of a profile);
    /// `None` once the user is soft-deleted.
    pub async fn lock_user(&mut self, id: i64) -> Result<Option<UserRow>> {
        let sql = format!("SELECT {USER_COLUMNS} FROM users WHERE id = $1 AND deleted_at IS NULL FOR UPDATE");
        let row = sqlx::query(&sql).bind(id).fetch_optional(self.conn()).await?;
        Ok(row.as_ref().map(user_from_row))
    }

    /// Moves the current profile into the version history (the ciphertext moves as is: its
    /// associated data names token and version, not the table) and stores the new one as
    /// `old.version + 1`, replacing the user's blind indexes.
    pub async fn replace_profile(&mut self, old: &UserRow, profile: &[u8], digest: &str, indexes: &[(IndexMode, [u8; 32])]) -> Result<i32> {
        let tenant = self.tenant_id();
        let now = now_secs();
        sqlx::query("INSERT INTO user_versions (tenant_id, user_id, version, profile, digest, optime) VALUES ($1, $2, $3, $4, $5, $6)")
            .bind(tenant)
            .bind(old.id)
            .bind(old.version)
            .bind(&old.profile)
            .bind(&old.digest)
            .bind(old.updated_at)
            .execute(self.conn())
            .await?;
        let new_version = old.version + 1;
        sqlx::query("UPDATE users SET version = $2, profile = $3, digest = $4, updated_at = $5 WHERE id = $1")
            .bind(old.id)
            .bind(new_version)
            .bind(profile)
            .bind(digest)
            .bind(now)
            .execute(self.conn())
            .await?;
        sqlx::query("DELETE FROM user_index WHERE user_id = $1").bind(old.id).execute(self.conn()).await?;
        let modes: Vec<&str> = indexes.iter().map(|(m, _)| m.as_str()).collect();
        let hashes: Vec<&[u8]> = indexes.iter().map(|(_, h)| h.as_slice()).collect();
        let owners = vec![old.id; indexes.len()];
        self.insert_indexes(&modes, &hashes, &owners).await?;
        Ok(new_version)
    }

    pub async fn user_version(&mut self, user_id: i64, version: i32) -> Result<Option<VersionRow>> {
        let row = sqlx::query("SELECT version, profile, digest, optime FROM user_versions WHERE user_id = $1 AND version = $2")
            .bind(user_id)
            .bind(version)
            .fetch_optional(self.conn())
            .await?;
        Ok(row.map(|r| VersionRow { version: r.get(0), profile: r.get(1), digest: r.get(2), optime: r.get(3) }))
    }

    /// `(version, optime, digest)` of every earlier version, oldest first.
    pub async fn user_versions(&mut self, user_id: i64) -> Result<Vec<(i32, i64, String)>> {
        let rows = sqlx::query("SELECT version, optime, digest FROM user_versions WHERE user_id = $1 ORDER BY version")
            .bind(user_id)
            .fetch_all(self.conn())
            .await?;
        Ok(rows.iter().map(|r| (r.get(0), r.get(1), r.get(2))).collect())
    }

    /// Deletes the user; its versions and indexes go with it (ON DELETE CASCADE).
    pub async fn delete_user(&mut self, user_id: i64) -> Result<bool> {
        let n = sqlx::query("DELETE FROM users WHERE id = $1").bind(user_id).execute(self.conn()).await?.rows_affected();
        Ok(n == 1)
    }

    /// Soft-deletes a live user at `now` (SystemDeleteUserProfiles): every lookup treats it as
    /// absent from then on, while its profile, versions, blind indexes (the identity stays
    /// reserved), app data and agreements are kept for a restore. Its sessions and shared
    /// records (access handles, not data) are deleted. False if no live user has that id.
    pub async fn soft_delete_user(&mut self, user_id: i64, now: i64) -> Result<bool> {
        let n = sqlx::query("UPDATE users SET deleted_at = $2 WHERE id = $1 AND deleted_at IS NULL")
            .bind(user_id)
            .bind(now)
            .execute(self.conn())
            .await?
            .rows_affected();
        if n != 1 {
            return Ok(false);
        }
        sqlx::query("DELETE FROM sessions WHERE user_id = $1").bind(user_id).execute(self.conn()).await?;
        sqlx::query("DELETE FROM shared_records WHERE user_id = $1").bind(user_id).execute(self.conn()).await?;
        Ok(true)
    }

    /// The user `token` if it was soft-deleted after `since` and has not expired, locked for
    /// the rest of the transaction.
    pub async fn soft_deleted_user(&mut self, token: &str, since: i64, now: i64) -> Result<Option<UserRow>> {
        let sql = format!(
            "SELECT {USER_COLUMNS} FROM users WHERE token = $1 AND deleted_at IS NOT NULL AND deleted_at > $2
               AND (expires_at IS NULL OR expires_at > $3) FOR UPDATE"
        );
        let row = sqlx::query(&sql).bind(token).bind(since).bind(now).fetch_optional(self.conn()).await?;
        Ok(row.as_ref().map(user_from_row))
    }

    /// Clears a soft delete; true if the user was soft-deleted.
    pub async fn restore_user(&mut self, user_id: i64) -> Result<bool> {
        let n = sqlx::query("UPDATE users SET deleted_at = NULL WHERE id = $1 AND deleted_at IS NOT NULL")
            .bind(user_id)
            .execute(self.conn())
            .await?
            .rows_affected();
        Ok(n == 1)
    }

    /// Extends a live user's sliding expiry to `now + sliding_secs`, never past its final
    /// time (no-op for a user without sliding time, or whose expiry would not move).
    pub async fn touch_user(&mut self, user_id: i64, now: i64) -> Result<()> {
        sqlx::query(
            "UPDATE users SET expires_at = LEAST($2 + sliding_secs, final_at)
             WHERE id = $1 AND sliding_secs IS NOT NULL AND expires_at > $2 AND expires_at < LEAST($2 + sliding_secs, final_at)",
        )
        .bind(user_id)
        .bind(now)
        .execute(self.conn())
        .await?;
        Ok(())
    }

    /// Deletes up to `limit` users expired at `now` that no other transaction holds (several
    /// sweepers never wait on or double-delete each other's rows); returns their tokens. A
    /// user's versions, indexes and everything else hanging off it go with it (ON DELETE
    /// CASCADE).
    pub async fn sweep_users(&mut self, now: i64, limit: i64) -> Result<Vec<String>> {
        let tokens = sqlx::query_scalar(
            "DELETE FROM users WHERE id = ANY(ARRAY(
                 SELECT id FROM users WHERE expires_at IS NOT NULL AND expires_at <= $1
                 ORDER BY expires_at LIMIT $2 FOR UPDATE SKIP LOCKED))
             RETURNING token",
        )
        .bind(now)
        .bind(limit)
        .fetch_all(self.conn())
        .await?;
        Ok(tokens)
    }

    /// Deletes for good up to `limit` users soft-deleted at or before `before` (the restore
    /// window has passed) that no other transaction holds; returns their tokens. Everything
    /// hanging off a user goes with it (ON DELETE CASCADE).
    pub async fn sweep_soft_deleted(&mut self, before: i64, limit: i64) -> Result<Vec<String>> {
        let tokens = sqlx::query_scalar(
            "DELETE FROM users WHERE id = ANY(ARRAY(
                 SELECT id FROM users WHERE deleted_at IS NOT NULL AND deleted_at <= $1
                 ORDER BY deleted_at LIMIT $2 FOR UPDATE SKIP LOCKED))
             RETURNING token",
        )
        .bind(before)
        .bind(limit)
        .fetch_all(self.conn())
        .await?;
        Ok(tokens)
    }
}

#[cfg(test)]
mod tests {
    use super::Retention;

    #[test]
    fn expiry_is_the_earlier_of_sliding_and_final() {
        assert_eq!(Retention::new(None, None, 100).expires_at, None);
        assert_eq!(Retention::new(Some(10), None, 100).expires_at, Some(110));
        assert_eq!(Retention::new(None, Some(150), 100).expires_at, Some(150));
        assert_eq!(Retention::new(Some(10), Some(105), 100).expires_at, Some(105));
        assert_eq!(Retention::new(Some(10), Some(500), 100).expires_at, Some(110));
    }
}
