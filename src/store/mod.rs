//! The only module with SQL. Invariant: tenant tables are reached only through a [`TenantTx`],
//! a transaction whose role is `strongroom_tenant` (no BYPASSRLS) and whose transaction-local
//! `strongroom.tenant_id` scopes every row-level-security policy to one tenant. Nothing here
//! formats values into SQL text: every value is a bind parameter.

pub mod appdata;
pub mod audit;
pub mod bulk;
pub mod callbacks;
pub mod cluster_roles;
pub mod consent;
pub mod credentials;
pub mod expirations;
pub mod failover;
pub mod files;
pub mod groups;
pub mod idempotency;
pub mod keys;
pub mod leases;
pub mod meta;
pub mod migrate;
pub mod oidc;
pub mod portal;
pub mod relations;
pub mod requests;
pub mod roles;
pub mod sessions;
pub mod shared;
pub mod system;
pub mod tenants;
pub mod tokens;
pub mod users;

use std::time::Duration;

use sqlx::{PgConnection, PgPool, Postgres, Transaction};

use crate::error::Result;

/// The connection pool, on the writable database (see [`failover`]). Cheap to clone.
#[derive(Clone)]
pub struct Db {
    inner: std::sync::Arc<DbInner>,
}

struct DbInner {
    pool: std::sync::RwLock<PgPool>,
    /// The hosts to find the writable one among; `None` for a pool handed in (tests).
    target: Option<failover::Target>,
    max_connections: u32,
    /// The failover epoch this pool was built for.
    seen: std::sync::atomic::AtomicU64,
    /// Held while probing; when the last probe ended and whether it found a writable host
    /// (probes at most every 500 ms).
    refresh: tokio::sync::Mutex<Option<(std::time::Instant, bool)>>,
}

impl Db {
    pub async fn connect(url: &str, max_connections: u32) -> Result<Db, sqlx::Error> {
        let target = failover::Target::parse(url)?;
        let opts = failover::writable_host(&target).await?;
        let pool = failover::pool_on(opts, max_connections);
        Ok(Db::build(pool, Some(target), max_connections))
    }

    pub fn from_pool(pool: PgPool) -> Db {
        let max = pool.options().get_max_connections();
        Db::build(pool, None, max)
    }

    fn build(pool: PgPool, target: Option<failover::Target>, max_connections: u32) -> Db {
        Db {
            inner: std::sync::Arc::new(DbInner {
                pool: std::sync::RwLock::new(pool),
                target,
                max_connections,
                seen: std::sync::atomic::AtomicU64::new(failover::epoch()),
                refresh: tokio::sync::Mutex::new(None),
            }),
        }
    }

    /// Applies every migration not yet applied (see [`migrate`]).
    pub async fn migrate(&self) -> anyhow::Result<()> {
        migrate::run(&self.pool()).await
    }

    /// Pool for tables outside tenant scope (vault_meta, tenants). Not for tenant tables.
    pub(crate) fn pool(&self) -> PgPool {
        self.inner.pool.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// The pool, first replaced by one on the writable host when a failover error was seen
    /// since it was built. One caller probes while the others wait for its finding; while no
    /// host is writable, callers hear so at once (a probe at most every 500 ms) instead of each
    /// waiting out the pool's acquire timeout on a dead host.
    async fn live_pool(&self) -> Result<PgPool, sqlx::Error> {
        use std::sync::atomic::Ordering;
        let Some(target) = &self.inner.target else { return Ok(self.pool()) };
        let epoch = failover::epoch();
        if self.inner.seen.load(Ordering::Relaxed) == epoch {
            return Ok(self.pool());
        }
        let mut last = self.inner.refresh.lock().await;
        if self.inner.seen.load(Ordering::Relaxed) >= epoch {
            return Ok(self.pool());
        }
        match *last {
            Some((at, found)) if at.elapsed() < Duration::from_millis(500) => {
                if !found {
                    return Err(sqlx::Error::Configuration(Box::new(failover::ReadOnlyNode)));
                }
                // Stragglers of the old pool since the last probe: the pool is already new.
                self.inner.seen.store(epoch, Ordering::Relaxed);
                return Ok(self.pool());
            }
            _ => {}
        }
        let probed = failover::writable_host(target).await;
        *last = Some((std::time::Instant::now(), probed.is_ok()));
        match probed {
            Ok(opts) => {
                let fresh = failover::pool_on(opts, self.inner.max_connections);
                let old = std::mem::replace(&mut *self.inner.pool.write().unwrap_or_else(|p| p.into_inner()), fresh);
                self.inner.seen.store(epoch, Ordering::Relaxed);
                tracing::warn!("database: a failover error was seen; connections now go to the writable host");
                tokio::spawn(async move { old.close().await });
                Ok(self.pool())
            }
            Err(e) => {
                tracing::warn!(error = %e, "database: no writable host answers yet");
                Err(e)
            }
        }
    }

    /// Runs `open`, a transaction's begin and first statement, on the live pool. A failover
    /// error there (a pooled connection the old primary dropped, a pool still on a dead node)
    /// is retried once on a fresh connection: nothing has run yet, so the retry cannot repeat
    /// anything. A caller still waiting for a connection when another call sees the writer
    /// move gives up waiting then (the pool would retry a dead node until its acquire timeout)
    /// and takes the retry.
    async fn opening<T, F>(&self, open: F) -> Result<T, sqlx::Error>
    where
        F: Fn(PgPool) -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<T, sqlx::Error>> + Send>>,
    {
        let seen = failover::epoch();
        let first = tokio::select! {
            r = open(self.live_pool().await?) => r,
            _ = failover::moved_since(seen) => Err(sqlx::Error::PoolTimedOut),
        };
        match first {
            Err(e) if failover::is_failover(&e) => {
                if failover::epoch() == seen {
                    failover::suspect_writer();
                }
                open(self.live_pool().await?).await
            }
            other => other,
        }
    }

    /// Opens a transaction scoped to `tenant_id`. The tenant row is read and the scope entered
    /// in one statement (one round trip per call saved: this runs on every request).
    pub async fn tenant_tx(&self, tenant_id: i64) -> Result<TenantTx, sqlx::Error> {
        let (mut tx, row) = self.entering("WHERE id = $1", tenant_id).await?;
        let entry = match row {
            Some(entry) => entry,
            None => {
                enter_tenant(&mut tx, tenant_id).await?;
                TenantEntry { id: tenant_id, key_version: 1, policy_version: 0, kek_id: None, credential_version: NO_CREDENTIAL_VERSION }
            }
        };
        Ok(entry.scope(tx))
    }

    /// Opens a transaction scoped to the tenant called `name`; `None` when no such tenant (or
    /// when it is being deleted: every request of every instance stops at once).
    pub async fn tenant_tx_by_name(&self, name: &str) -> Result<Option<TenantTx>, sqlx::Error> {
        let (tx, row) = self.entering("WHERE name = $1 AND shredding_at IS NULL", name.to_string()).await?;
        Ok(row.map(|entry| entry.scope(tx)))
    }

    /// Begins a transaction and, in one statement, reads the tenant row `filter` selects and
    /// enters its scope (nothing is entered when no row matches).
    async fn entering<T>(&self, filter: &'static str, key: T) -> Result<(Transaction<'static, Postgres>, Option<TenantEntry>), sqlx::Error>
    where
        T: for<'q> sqlx::Encode<'q, Postgres> + sqlx::Type<Postgres> + Clone + Send + Sync + 'static,
    {
        self.opening(move |pool| {
            let key = key.clone();
            Box::pin(async move {
                let mut tx = pool.begin().await?;
                let row = sqlx::query(&format!("SELECT {TENANT_ENTRY}, {ENTER_SCOPE} FROM tenants {filter}"))
                    .bind(key)
                    .fetch_optional(&mut *tx)
                    .await?;
                let entry = row.as_ref().map(TenantEntry::from_row).transpose()?;
                Ok((tx, entry))
            })
        })
        .await
    }

    /// Whether a writable database answers (a read-only one is a failover under way).
    pub async fn ping(&self) -> bool {
        let got = match self.live_pool().await {
            Ok(pool) => sqlx::query_scalar::<_, String>("SELECT current_setting('transaction_read_only')").fetch_one(&pool).await,
            Err(e) => Err(e),
        };
        match got {
            Ok(ro) if ro == "off" => true,
            Ok(_) => {
                failover::suspect_writer();
                false
            }
            Err(e) => {
                failover::note(&e);
                false
            }
        }
    }

    pub async fn close(&self) {
        self.pool().close().await
    }
}

/// Select-list items that enter the row's tenant scope (the same two transaction-local settings
/// as [`enter_tenant`]), for statements that read the tenant row anyway. The tenants table is
/// read with the owner's rights checked at the statement's start; the role switch applies from
/// the next statement on.
const ENTER_SCOPE: &str = "set_config('strongroom.tenant_id', id::text, true), set_config('role', 'strongroom_tenant', true)";

async fn enter_tenant(tx: &mut Transaction<'static, Postgres>, tenant_id: i64) -> Result<(), sqlx::Error> {
    // Both settings are transaction-local: a pooled connection never carries them further.
    sqlx::query("SELECT set_config('role', 'strongroom_tenant', true), set_config('strongroom.tenant_id', $1, true)")
        .bind(tenant_id.to_string())
        .execute(&mut **tx)
        .await?;
    Ok(())
}

/// A transaction inside one tenant's row-level-security scope: the only door to tenant tables.
pub struct TenantTx {
    tx: Transaction<'static, Postgres>,
    tenant_id: i64,
    key_version: i32,
    policy_version: i32,
    kek_id: Option<String>,
    credential_version: i64,
}

/// What a tenant transaction reads of its tenant row as it begins (by name: [`TENANT_ENTRY`]).
struct TenantEntry {
    id: i64,
    key_version: i32,
    policy_version: i32,
    kek_id: Option<String>,
    credential_version: i64,
}

const TENANT_ENTRY: &str = "id, key_version, policy_version, kek_id, credential_version";

impl TenantEntry {
    fn from_row(r: &sqlx::postgres::PgRow) -> Result<TenantEntry, sqlx::Error> {
        use sqlx::Row;
        Ok(TenantEntry {
            id: r.try_get("id")?,
            key_version: r.try_get("key_version")?,
            policy_version: r.try_get("policy_version")?,
            kek_id: r.try_get("kek_id")?,
            credential_version: r.try_get("credential_version")?,
        })
    }

    fn scope(self, tx: Transaction<'static, Postgres>) -> TenantTx {
        TenantTx {
            tx,
            tenant_id: self.id,
            key_version: self.key_version,
            policy_version: self.policy_version,
            kek_id: self.kek_id,
            credential_version: self.credential_version,
        }
    }
}

/// The credential version of a transaction whose tenant row was not found: matches nothing
/// remembered (versions count up from 0).
const NO_CREDENTIAL_VERSION: i64 = -1;

impl TenantTx {
    pub fn tenant_id(&self) -> i64 {
        self.tenant_id
    }

    /// The tenant's policy version (0: no custom roles or policies) as read at begin.
    pub fn policy_version(&self) -> i32 {
        self.policy_version
    }

    /// The tenant's current data-key version as read when the transaction began.
    pub fn key_version(&self) -> i32 {
        self.key_version
    }

    /// The tenant's count of credential changes, as read when the transaction began (migration
    /// 0024): what a remembered credential verification must match.
    pub fn credential_version(&self) -> i64 {
        self.credential_version
    }

    /// The name of the tenant's key-encryption key in the tenant key store (`None`: the tenant
    /// has database-only custody), as read when the transaction began.
    pub fn kek_id(&self) -> Option<&str> {
        self.kek_id.as_deref()
    }

    /// The raw connection, still inside the tenant's scope (for store functions and tests).
    pub fn conn(&mut self) -> &mut PgConnection {
        &mut self.tx
    }

    /// Makes this transaction's statements give up waiting for a lock after `wait`.
    pub async fn limit_lock_wait(&mut self, wait: std::time::Duration) -> Result<(), sqlx::Error> {
        sqlx::query("SELECT set_config('lock_timeout', $1, true)").bind(format!("{}ms", wait.as_millis())).execute(&mut *self.tx).await?;
        Ok(())
    }

    /// Whether this transaction has changed nothing so far: PostgreSQL assigns a transaction id
    /// at the first write (or row lock), so its absence is exact, whatever code ran.
    pub async fn wrote_nothing(&mut self) -> Result<bool, sqlx::Error> {
        sqlx::query_scalar("SELECT txid_current_if_assigned() IS NULL").fetch_one(&mut *self.tx).await
    }

    /// Steps out of the tenant role to the migration owner for the tenant directory (`tenants`
    /// is not a tenant table), runs `op`, and steps back into this transaction's tenant scope.
    /// The only way store code leaves the tenant role. The scope is re-entered whatever `op`
    /// returns; when `op` failed in PostgreSQL the transaction is aborted, so nothing can run
    /// outside the scope either way.
    pub(crate) async fn as_directory<T, E: From<sqlx::Error>>(
        &mut self,
        op: impl AsyncFnOnce(&mut PgConnection) -> Result<T, E>,
    ) -> Result<T, E> {
        sqlx::query("RESET ROLE").execute(&mut *self.tx).await?;
        let out = op(&mut self.tx).await;
        let back = enter_tenant(&mut self.tx, self.tenant_id).await;
        let out = out?;
        back?;
        Ok(out)
    }

    pub async fn commit(self) -> Result<(), sqlx::Error> {
        self.tx.commit().await
    }

    pub async fn rollback(self) -> Result<(), sqlx::Error> {
        self.tx.rollback().await
    }

    /// Ends a transaction that wrote nothing without waiting for its ROLLBACK: sqlx queues the
    /// ROLLBACK as the transaction drops, and the pool sends it with the check it makes of every
    /// released connection, before anyone else can take the connection. One round trip fewer,
    /// and that one off the answer's path.
    pub fn discard(self) {
        drop(self.tx);
    }
}

/// Tables whose rows carry `final_at`/`expires_at` and can be handed back again by a repeated
/// request (a unique token, a duplicate file).
#[derive(Debug, Clone, Copy)]
pub enum Expiring {
    Tokens,
    Files,
}

impl TenantTx {
    /// Shortens the life of row `uuid` of `table` to a newly requested expiry when that is
    /// earlier: a repeated request that gets back the existing row never keeps it longer than it
    /// asked for.
    pub async fn tighten_expiry(&mut self, table: Expiring, uuid: &str, expiry: &sessions::Expiry, now: i64) -> crate::error::Result<()> {
        let (final_at, expires_at) = (expiry.final_at, expiry.expires_at(now));
        if final_at.is_none() && expires_at.is_none() {
            return Ok(());
        }
        // The table name comes from this closed set, never from input.
        let table = match table {
            Expiring::Tokens => "tokens",
            Expiring::Files => "files",
        };
        let sql = format!(
            "UPDATE {table} SET
                final_at = CASE WHEN $2::bigint IS NULL THEN final_at ELSE LEAST(COALESCE(final_at, $2), $2) END,
                expires_at = CASE WHEN $3::bigint IS NULL THEN expires_at ELSE LEAST(COALESCE(expires_at, $3), $3) END
              WHERE uuid = $1"
        );
        sqlx::query(&sql).bind(uuid).bind(final_at).bind(expires_at).execute(self.conn()).await?;
        Ok(())
    }
}

pub fn now_secs() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs() as i64).unwrap_or(0)
}
