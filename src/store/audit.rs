//! Audit rows. Appends take the tenant's chain head with `FOR UPDATE`, so appends of one tenant
//! are serialized and the chain never forks; the lock is held only until the caller commits.

use sqlx::Row;

use super::TenantTx;
use crate::error::Result;

/// One stored audit event, as hashed into the chain.
#[derive(Debug, Clone)]
pub struct AuditRow {
    /// Orders events across lanes (assigned by the database; not part of the chain).
    pub id: i64,
    pub lane: i16,
    pub seq: i64,
    pub uuid: String,
    pub event_type: String,
    pub user_token: Option<String>,
    pub actor: String,
    pub outcome: String,
    pub created_at: i64,
    /// Data-key version wrapping `event_key`; `None` when the user's key wraps it.
    pub key_version: Option<i32>,
    pub event_key: Vec<u8>,
    pub details: Vec<u8>,
    pub prev_hash: Vec<u8>,
    pub hash: Vec<u8>,
}

const COLUMNS: &str =
    "id, lane, seq, uuid, event_type, user_token, actor, outcome, created_at, key_version, event_key, details, prev_hash, hash";

fn from_row(r: &sqlx::postgres::PgRow) -> AuditRow {
    AuditRow {
        id: r.get(0),
        lane: r.get(1),
        seq: r.get(2),
        uuid: r.get(3),
        event_type: r.get(4),
        user_token: r.get(5),
        actor: r.get(6),
        outcome: r.get(7),
        created_at: r.get(8),
        key_version: r.get(9),
        event_key: r.get(10),
        details: r.get(11),
        prev_hash: r.get(12),
        hash: r.get(13),
    }
}

impl TenantTx {
    /// Locks a chain head `(lane, seq, hash)`: the lowest lane no other transaction holds, or,
    /// when all are busy, waits for one picked at random.
    pub async fn lock_audit_head(&mut self) -> Result<(i16, i64, Vec<u8>)> {
        let free = sqlx::query("SELECT lane, seq, hash FROM audit_heads ORDER BY lane LIMIT 1 FOR UPDATE SKIP LOCKED")
            .fetch_optional(self.conn())
            .await?;
        let row = match free {
            Some(r) => r,
            None => {
                let lane = (rand::random::<u16>() % crate::audit::LANES as u16) as i16;
                sqlx::query("SELECT lane, seq, hash FROM audit_heads WHERE lane = $1 FOR UPDATE").bind(lane).fetch_one(self.conn()).await?
            }
        };
        Ok((row.get(0), row.get(1), row.get(2)))
    }

    /// Events in a lane that has no head (cannot happen through the vault).
    pub async fn audit_orphans(&mut self) -> Result<i64> {
        Ok(sqlx::query_scalar("SELECT count(*) FROM audit_events e WHERE NOT EXISTS (SELECT 1 FROM audit_heads h WHERE h.lane = e.lane)")
            .fetch_one(self.conn())
            .await?)
    }

    /// Every chain head `(lane, seq, hash)` of this tenant.
    pub async fn audit_heads(&mut self) -> Result<Vec<(i16, i64, Vec<u8>)>> {
        let rows = sqlx::query("SELECT lane, seq, hash FROM audit_heads ORDER BY lane").fetch_all(self.conn()).await?;
        Ok(rows.iter().map(|r| (r.get(0), r.get(1), r.get(2))).collect())
    }

    /// Inserts events that continue one lane's chain, in order, and moves the head to the last,
    /// in one statement (`id` follows their order).
    pub async fn append_audit(&mut self, events: &[AuditRow]) -> Result<()> {
        let Some(last) = events.last() else { return Ok(()) };
        let text = |f: fn(&AuditRow) -> &str| events.iter().map(f).collect::<Vec<&str>>();
        let bytes = |f: fn(&AuditRow) -> &[u8]| events.iter().map(f).collect::<Vec<&[u8]>>();
        sqlx::query(
            "WITH ins AS (
                INSERT INTO audit_events (tenant_id, lane, seq, uuid, event_type, user_token, actor, outcome, created_at, key_version, event_key, details, prev_hash, hash)
                SELECT $1, $2, e.seq, e.uuid, e.event_type, e.user_token, e.actor, e.outcome, e.created_at, e.key_version, e.event_key, e.details, e.prev_hash, e.hash
                FROM UNNEST($3::bigint[], $4::text[], $5::text[], $6::text[], $7::text[], $8::text[], $9::bigint[], $10::integer[], $11::bytea[], $12::bytea[], $13::bytea[], $14::bytea[])
                     WITH ORDINALITY AS e (seq, uuid, event_type, user_token, actor, outcome, created_at, key_version, event_key, details, prev_hash, hash, n)
                ORDER BY e.n)
             UPDATE audit_heads SET seq = $15, hash = $16 WHERE tenant_id = $1 AND lane = $2",
        )
        .bind(self.tenant_id())
        .bind(last.lane)
        .bind(events.iter().map(|e| e.seq).collect::<Vec<_>>())
        .bind(text(|e| &e.uuid))
        .bind(text(|e| &e.event_type))
        .bind(events.iter().map(|e| e.user_token.as_deref()).collect::<Vec<Option<&str>>>())
        .bind(text(|e| &e.actor))
        .bind(text(|e| &e.outcome))
        .bind(events.iter().map(|e| e.created_at).collect::<Vec<_>>())
        .bind(events.iter().map(|e| e.key_version).collect::<Vec<_>>())
        .bind(bytes(|e| &e.event_key))
        .bind(bytes(|e| &e.details))
        .bind(bytes(|e| &e.prev_hash))
        .bind(bytes(|e| &e.hash))
        .bind(last.seq)
        .bind(&last.hash)
        .execute(self.conn())
        .await?;
        Ok(())
    }

    /// Events of `lane` after `after_seq` in chain order, at most `limit`.
    pub async fn audit_page(&mut self, lane: i16, after_seq: i64, limit: i64) -> Result<Vec<AuditRow>> {
        let sql = format!("SELECT {COLUMNS} FROM audit_events WHERE lane = $1 AND seq > $2 ORDER BY seq LIMIT $3");
        let rows = sqlx::query(&sql).bind(lane).bind(after_seq).bind(limit).fetch_all(self.conn()).await?;
        Ok(rows.iter().map(from_row).collect())
    }

    /// A user's events, newest first, and their total count.
    pub async fn audit_for_user(&mut self, token: &str, offset: i64, limit: i64) -> Result<(i64, Vec<AuditRow>)> {
        let sql = format!("SELECT {COLUMNS} FROM audit_events WHERE user_token = $1 ORDER BY id DESC OFFSET $2 LIMIT $3");
        let rows = sqlx::query(&sql).bind(token).bind(offset).bind(limit).fetch_all(self.conn()).await?;
        let total: i64 =
            sqlx::query_scalar("SELECT count(*) FROM audit_events WHERE user_token = $1").bind(token).fetch_one(self.conn()).await?;
        Ok((total, rows.iter().map(from_row).collect()))
    }

    pub async fn audit_by_uuid(&mut self, uuid: &str) -> Result<Option<AuditRow>> {
        let sql = format!("SELECT {COLUMNS} FROM audit_events WHERE uuid = $1");
        let row = sqlx::query(&sql).bind(uuid).fetch_optional(self.conn()).await?;
        Ok(row.as_ref().map(from_row))
    }
}
