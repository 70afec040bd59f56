//! Format-preserving tokens: the original and the token value are stored encrypted under the
//! tenant data key; they are found by keyed hashes only. An expired token is never returned,
//! whether or not it has been deleted yet.

use sqlx::Row;

use super::sessions::Expiry;
use super::TenantTx;
use crate::error::Result;

/// A stored token (ciphertexts as stored).
pub struct TokenRow {
    pub uuid: String,
    pub tokentype: String,
    pub key_version: i32,
    pub record: Vec<u8>,
    pub tokenbase: Vec<u8>,
    pub sliding_secs: Option<i64>,
    pub final_at: Option<i64>,
}

impl TokenRow {
    pub fn expiry(&self) -> Expiry {
        Expiry { sliding_secs: self.sliding_secs, final_at: self.final_at }
    }
}

/// A token to store.
pub struct NewToken<'a> {
    pub uuid: &'a str,
    pub tokentype: &'a str,
    pub token_hash: &'a [u8],
    /// Set for `unique` tokens only.
    pub record_hash: Option<&'a [u8]>,
    pub key_version: i32,
    pub record: &'a [u8],
    pub tokenbase: &'a [u8],
    pub expiry: Expiry,
}

const COLUMNS: &str = "uuid, tokentype, key_version, record, tokenbase, sliding_secs, final_at";
const LIVE: &str = "(expires_at IS NULL OR expires_at > $2)";

fn from_row(r: &sqlx::postgres::PgRow) -> TokenRow {
    TokenRow {
        uuid: r.get(0),
        tokentype: r.get(1),
        key_version: r.get(2),
        record: r.get(3),
        tokenbase: r.get(4),
        sliding_secs: r.get(5),
        final_at: r.get(6),
    }
}

impl TenantTx {
    /// Stores a token; `false` when its token hash or record hash is already taken (nothing is
    /// stored then, and the transaction stays usable).
    pub async fn insert_token(&mut self, t: &NewToken<'_>, now: i64) -> Result<bool> {
        let tenant = self.tenant_id();
        let n = sqlx::query(
            "INSERT INTO tokens (tenant_id, uuid, tokentype, token_hash, record_hash, key_version, record, tokenbase,
                                 sliding_secs, final_at, expires_at, created_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12) ON CONFLICT DO NOTHING",
        )
        .bind(tenant)
        .bind(t.uuid)
        .bind(t.tokentype)
        .bind(t.token_hash)
        .bind(t.record_hash)
        .bind(t.key_version)
        .bind(t.record)
        .bind(t.tokenbase)
        .bind(t.expiry.sliding_secs)
        .bind(t.expiry.final_at)
        .bind(t.expiry.expires_at(now))
        .bind(now)
        .execute(self.conn())
        .await?;
        Ok(n.rows_affected() == 1)
    }

    /// The live token with this uuid.
    pub async fn token_by_uuid(&mut self, uuid: &str, now: i64) -> Result<Option<TokenRow>> {
        let sql = format!("SELECT {COLUMNS} FROM tokens WHERE uuid = $1 AND {LIVE}");
        let row = sqlx::query(&sql).bind(uuid).bind(now).fetch_optional(self.conn()).await?;
        Ok(row.as_ref().map(from_row))
    }

    /// The live token whose value has this keyed hash.
    pub async fn token_by_hash(&mut self, token_hash: &[u8], now: i64) -> Result<Option<TokenRow>> {
        let sql = format!("SELECT {COLUMNS} FROM tokens WHERE token_hash = $1 AND {LIVE}");
        let row = sqlx::query(&sql).bind(token_hash).bind(now).fetch_optional(self.conn()).await?;
        Ok(row.as_ref().map(from_row))
    }

    /// The live unique token for a record (by the record's keyed hash).
    pub async fn token_by_record(&mut self, record_hash: &[u8], now: i64) -> Result<Option<TokenRow>> {
        let sql = format!("SELECT {COLUMNS} FROM tokens WHERE record_hash = $1 AND {LIVE}");
        let row = sqlx::query(&sql).bind(record_hash).bind(now).fetch_optional(self.conn()).await?;
        Ok(row.as_ref().map(from_row))
    }

    /// Deletes an expired unique token of this record, so a new one can take its place.
    pub async fn delete_expired_token_of_record(&mut self, record_hash: &[u8], now: i64) -> Result<()> {
        sqlx::query("DELETE FROM tokens WHERE record_hash = $1 AND expires_at IS NOT NULL AND expires_at <= $2")
            .bind(record_hash)
            .bind(now)
            .execute(self.conn())
            .await?;
        Ok(())
    }

    /// An access: a sliding token's expiry moves forward (never past its final time).
    pub async fn touch_token(&mut self, uuid: &str, expiry: Expiry, now: i64) -> Result<()> {
        if expiry.sliding_secs.is_none() {
            return Ok(());
        }
        sqlx::query("UPDATE tokens SET expires_at = $2 WHERE uuid = $1")
            .bind(uuid)
            .bind(expiry.expires_at(now))
            .execute(self.conn())
            .await?;
        Ok(())
    }

    /// The live tokens named by uuid or by token hash, each once, oldest first.
    pub async fn tokens_by_refs(&mut self, uuids: &[String], hashes: &[Vec<u8>], now: i64) -> Result<Vec<TokenRow>> {
        let sql =
            format!("SELECT {COLUMNS} FROM tokens WHERE (uuid = ANY($1) OR token_hash = ANY($3)) AND {LIVE} ORDER BY created_at, uuid");
        let rows = sqlx::query(&sql).bind(uuids).bind(now).bind(hashes).fetch_all(self.conn()).await?;
        Ok(rows.iter().map(from_row).collect())
    }

    /// Deletes the live tokens named by uuid or token hash; returns how many.
    pub async fn delete_tokens(&mut self, uuids: &[String], hashes: &[Vec<u8>], now: i64) -> Result<u64> {
        let sql = format!("DELETE FROM tokens WHERE (uuid = ANY($1) OR token_hash = ANY($3)) AND {LIVE}");
        let n = sqlx::query(&sql).bind(uuids).bind(now).bind(hashes).execute(self.conn()).await?;
        Ok(n.rows_affected())
    }

    /// Deletes this tenant's expired tokens (for a sweeper); returns how many.
    pub async fn sweep_tokens(&mut self, now: i64) -> Result<u64> {
        let n = sqlx::query("DELETE FROM tokens WHERE expires_at IS NOT NULL AND expires_at <= $1").bind(now).execute(self.conn()).await?;
        Ok(n.rows_affected())
    }
}
