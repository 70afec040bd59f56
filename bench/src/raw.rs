//! Raw-SQL baselines on the same PostgreSQL, in a database of their own: tables shaped like the
//! vault's `users` and `user_index` (same columns, primary keys, unique and secondary indexes
//! and foreign key; no row-level security, no audit), filled with equally sized rows that are
//! really encrypted (AES-256-GCM via `keys::envelope`) and blind-indexed (HMAC), through sqlx.

use std::time::Duration;

use serde_json::Value;
use sqlx::postgres::PgPoolOptions;
use sqlx::{Executor, PgPool};

use strongroom::keys::blind::{self, IndexMode};
use strongroom::keys::envelope::{self, Key};

const TENANT: i64 = 1;

const SCHEMA: &str = "
CREATE TABLE raw_users (
    tenant_id   bigint  NOT NULL,
    id          bigserial,
    token       text    NOT NULL,
    version     integer NOT NULL,
    key_version integer NOT NULL,
    user_key    bytea   NOT NULL,
    profile     bytea   NOT NULL,
    digest      text    NOT NULL,
    created_at  bigint  NOT NULL,
    updated_at  bigint  NOT NULL,
    sliding_secs bigint,
    final_at    bigint,
    expires_at  bigint,
    deleted_at  bigint,
    PRIMARY KEY (tenant_id, id),
    CONSTRAINT raw_users_token_key UNIQUE (tenant_id, token)
);
CREATE TABLE raw_user_index (
    tenant_id bigint NOT NULL,
    mode      text   NOT NULL CHECK (mode IN ('login', 'email', 'phone', 'custom')),
    hash      bytea  NOT NULL,
    user_id   bigint NOT NULL,
    PRIMARY KEY (tenant_id, mode, hash),
    FOREIGN KEY (tenant_id, user_id) REFERENCES raw_users (tenant_id, id) ON DELETE CASCADE
);
CREATE INDEX raw_user_index_user ON raw_user_index (tenant_id, user_id);
CREATE INDEX raw_users_expiry ON raw_users (tenant_id, expires_at) WHERE expires_at IS NOT NULL;
CREATE INDEX raw_users_soft_deleted ON raw_users (tenant_id, deleted_at) WHERE deleted_at IS NOT NULL;
-- The vault's storage for ciphertext (migration 0023): no compression attempt, to stay fair.
ALTER TABLE raw_users ALTER COLUMN user_key SET STORAGE EXTERNAL, ALTER COLUMN profile SET STORAGE EXTERNAL;
ALTER TABLE raw_user_index ALTER COLUMN hash SET STORAGE EXTERNAL;
";

/// One row ready to insert, built before the clock starts.
pub struct RawRow {
    pub token: String,
    pub user_key: Vec<u8>,
    pub profile: Vec<u8>,
    pub digest: String,
    pub indexes: Vec<(&'static str, Vec<u8>)>,
}

/// The baseline database: a pool of `clients` connections and this run's keys.
pub struct Raw {
    pub pool: PgPool,
    data_key: Key,
    index_key: Key,
}

impl Raw {
    pub async fn setup(url: &str, clients: u32) -> anyhow::Result<Raw> {
        let pool =
            PgPoolOptions::new().max_connections(clients).acquire_timeout(Duration::from_secs(30)).connect_with(super::quiet(url)?).await?;
        pool.execute(SCHEMA).await?;
        Ok(Raw { pool, data_key: Key::random(), index_key: Key::random() })
    }

    /// Encrypts and indexes a profile as the vault does: a random per-user key wrapped by the
    /// data key, the profile's JSON bytes sealed under the user key (same associated-data
    /// shape), the same blind-index and digest sizes.
    pub fn row(&self, profile: &Value) -> RawRow {
        let token = uuid::Uuid::new_v4().to_string();
        let tenant = TENANT.to_string();
        let user_key = Key::random();
        let wrapped =
            envelope::seal(&self.data_key, &envelope::aad(&[tenant.as_bytes(), b"user-key", token.as_bytes(), b"1"]), user_key.expose());
        let plain = serde_json::to_vec(profile).unwrap_or_default();
        let blob = envelope::seal(&user_key, &envelope::aad(&[tenant.as_bytes(), b"users", format!("{token}/1").as_bytes()]), &plain);
        let digest = hex::encode(&blind::keyed_digest(&self.index_key, "version-digest", &plain)[..16]);
        let mut indexes = Vec::new();
        for mode in IndexMode::ALL {
            if let Some(h) = profile.get(mode.field()).and_then(Value::as_str).and_then(|v| blind::index(&self.index_key, mode, v)) {
                indexes.push((mode.as_str(), h.to_vec()));
            }
        }
        RawRow { token, user_key: wrapped, profile: blob, digest, indexes }
    }

    /// Blind index of an identity under this run's key (for point selects by hash).
    pub fn index(&self, mode: IndexMode, value: &str) -> Vec<u8> {
        blind::index(&self.index_key, mode, value).map(|h| h.to_vec()).unwrap_or_default()
    }
}

fn now() -> i64 {
    strongroom::store::now_secs()
}

/// Single-row insert: the user row and its index rows in one transaction.
pub async fn insert_one(pool: &PgPool, r: &RawRow) -> anyhow::Result<()> {
    let mut tx = pool.begin().await?;
    let id: i64 = sqlx::query_scalar(
        "INSERT INTO raw_users (tenant_id, token, version, key_version, user_key, profile, digest, created_at, updated_at)
         VALUES ($1, $2, 1, 1, $3, $4, $5, $6, $6) RETURNING id",
    )
    .bind(TENANT)
    .bind(&r.token)
    .bind(&r.user_key)
    .bind(&r.profile)
    .bind(&r.digest)
    .bind(now())
    .fetch_one(&mut *tx)
    .await?;
    let modes: Vec<&str> = r.indexes.iter().map(|(m, _)| *m).collect();
    let hashes: Vec<&[u8]> = r.indexes.iter().map(|(_, h)| h.as_slice()).collect();
    sqlx::query(
        "INSERT INTO raw_user_index (tenant_id, mode, hash, user_id) SELECT $1, m, h, $4 FROM UNNEST($2::text[], $3::bytea[]) AS x(m, h)",
    )
    .bind(TENANT)
    .bind(&modes)
    .bind(&hashes)
    .bind(id)
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(())
}

/// Multi-row insert of a batch (UNNEST, as `store::users` does) and its index rows, one transaction.
pub async fn insert_many(pool: &PgPool, rows: &[RawRow]) -> anyhow::Result<()> {
    let mut tx = pool.begin().await?;
    let tokens: Vec<&str> = rows.iter().map(|r| r.token.as_str()).collect();
    let kvs: Vec<i32> = vec![1; rows.len()];
    let user_keys: Vec<&[u8]> = rows.iter().map(|r| r.user_key.as_slice()).collect();
    let profiles: Vec<&[u8]> = rows.iter().map(|r| r.profile.as_slice()).collect();
    let digests: Vec<&str> = rows.iter().map(|r| r.digest.as_str()).collect();
    let ids: Vec<i64> = sqlx::query_scalar(
        "INSERT INTO raw_users (tenant_id, token, version, key_version, user_key, profile, digest, created_at, updated_at)
         SELECT $1, t, 1, k, uk, p, d, $7, $7
         FROM UNNEST($2::text[], $3::int[], $4::bytea[], $5::bytea[], $6::text[]) WITH ORDINALITY AS x(t, k, uk, p, d, n)
         ORDER BY n RETURNING id",
    )
    .bind(TENANT)
    .bind(&tokens)
    .bind(&kvs)
    .bind(&user_keys)
    .bind(&profiles)
    .bind(&digests)
    .bind(now())
    .fetch_all(&mut *tx)
    .await?;
    let (mut modes, mut hashes, mut owners) = (Vec::new(), Vec::new(), Vec::new());
    for (r, id) in rows.iter().zip(&ids) {
        for (m, h) in &r.indexes {
            modes.push(*m);
            hashes.push(h.as_slice());
            owners.push(*id);
        }
    }
    sqlx::query(
        "INSERT INTO raw_user_index (tenant_id, mode, hash, user_id) SELECT $1, m, h, u FROM UNNEST($2::text[], $3::bytea[], $4::bigint[]) AS x(m, h, u)",
    )
    .bind(TENANT)
    .bind(&modes)
    .bind(&hashes)
    .bind(&owners)
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(())
}

const COLUMNS: &str = "u.id, u.token, u.version, u.key_version, u.user_key, u.profile, u.digest, u.created_at, u.updated_at, u.sliding_secs, u.final_at, u.expires_at";

/// Indexed point select of the whole row by token.
pub async fn select_by_token(pool: &PgPool, token: &str) -> anyhow::Result<()> {
    let sql = format!("SELECT {COLUMNS} FROM raw_users u WHERE u.tenant_id = $1 AND u.token = $2");
    let row = sqlx::query(&sql).bind(TENANT).bind(token).fetch_optional(pool).await?;
    anyhow::ensure!(row.is_some(), "raw row not found by token");
    Ok(())
}

/// Indexed point select of the whole row through its blind index (the vault's join).
pub async fn select_by_hash(pool: &PgPool, mode: &str, hash: &[u8]) -> anyhow::Result<()> {
    let sql = format!(
        "SELECT {COLUMNS} FROM raw_users u JOIN raw_user_index i ON i.tenant_id = u.tenant_id AND i.user_id = u.id
         WHERE i.tenant_id = $1 AND i.mode = $2 AND i.hash = $3"
    );
    let row = sqlx::query(&sql).bind(TENANT).bind(mode).bind(hash).fetch_optional(pool).await?;
    anyhow::ensure!(row.is_some(), "raw row not found by index");
    Ok(())
}

/// Token of an existing raw row, for point selects: `(token, email)` of the rows inserted.
pub fn identities(rows: &[RawRow], profiles: &[Value]) -> Vec<(String, String)> {
    rows.iter().zip(profiles).map(|(r, p)| (r.token.clone(), p["email"].as_str().unwrap_or_default().to_string())).collect()
}

/// Columns `(name, type)` of a table, in order, for comparing the baseline's shape with the vault's.
pub async fn columns(pool: &PgPool, table: &str) -> anyhow::Result<Vec<(String, String)>> {
    Ok(sqlx::query_as(
        "SELECT column_name::text, data_type::text FROM information_schema.columns
         WHERE table_schema = 'public' AND table_name = $1 ORDER BY ordinal_position",
    )
    .bind(table)
    .fetch_all(pool)
    .await?)
}
