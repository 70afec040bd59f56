//! Finding the writable database, and leaving one that stopped being it.
//!
//! Measured against pg_auto_failover and Aurora: after a failover the pooled connections stay
//! on the old primary, now a read-only standby (or are cut), and without help every call fails
//! until a restart. So:
//! - `DATABASE_URL` may name several hosts in libpq's form
//!   (`postgres://u@h1:5432,h2:5432/db?target_session_attrs=read-write`), which sqlx alone
//!   refuses; they are tried in order.
//! - Each host is probed with `transaction_read_only` (not `pg_is_in_recovery()`: a promoted
//!   node stays read-only for about a second) and a read-only node is skipped when the target
//!   is `read-write`; the pool is built on the first acceptable host.
//! - Errors that failover causes (read-only transaction 25006, admin/crash shutdown 57P01-57P03,
//!   connection exceptions 08xxx, I/O, pool timeouts) are answered 503 with `Retry-After`, and
//!   bump a process-wide epoch: the next use of each pool replaces it with a fresh one on the
//!   writable host (probing the hosts with backoff), so connections left on the old primary are
//!   dropped instead of failing call after call. The epoch is process-wide because errors are
//!   converted far from the pool that raised them; replacing a healthy pool costs only fresh
//!   connections.

use std::str::FromStr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{ConnectOptions, Connection, PgConnection, PgPool};

static EPOCH: AtomicU64 = AtomicU64::new(0);

/// Woken at every [`suspect_writer`]: callers still waiting on the old writer give up then.
static MOVED: tokio::sync::Notify = tokio::sync::Notify::const_new();

/// What a connection must be (libpq's `target_session_attrs`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Attrs {
    /// Only a writable primary (the default here: the vault writes audit on every call).
    #[default]
    ReadWrite,
    /// Whatever answers first.
    Any,
}

/// The hosts a URL names, in order, and what a connection must be.
#[derive(Debug, Clone)]
pub struct Target {
    pub hosts: Vec<PgConnectOptions>,
    pub attrs: Attrs,
}

impl Target {
    /// Parses a PostgreSQL URL, single-host or libpq multi-host (`h1:p1,h2:p2`).
    pub fn parse(url: &str) -> Result<Target, sqlx::Error> {
        let bad = |m: &str| sqlx::Error::Configuration(m.to_string().into());
        let (scheme, rest) = url.split_once("://").ok_or_else(|| bad("DATABASE_URL must start with postgres://"))?;
        let (authority, tail) = match rest.find(['/', '?']) {
            Some(i) => rest.split_at(i),
            None => (rest, ""),
        };
        let (userinfo, hostlist) = match authority.rsplit_once('@') {
            Some((u, h)) => (Some(u), h),
            None => (None, authority),
        };
        // target_session_attrs is ours to honour (sqlx does not know it).
        let (path, query) = tail.split_once('?').unwrap_or((tail, ""));
        let mut attrs = Attrs::ReadWrite;
        let mut kept = Vec::new();
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            match pair.split_once('=') {
                Some(("target_session_attrs", v)) => {
                    attrs = match v {
                        "read-write" | "primary" => Attrs::ReadWrite,
                        "any" | "prefer-standby" | "read-only" | "standby" => Attrs::Any,
                        _ => return Err(bad("target_session_attrs must be read-write, primary, any or prefer-standby")),
                    }
                }
                _ => kept.push(pair),
            }
        }
        let query = if kept.is_empty() { String::new() } else { format!("?{}", kept.join("&")) };
        let user = userinfo.map(|u| format!("{u}@")).unwrap_or_default();
        let hosts = hostlist
            .split(',')
            .map(|h| PgConnectOptions::from_str(&format!("{scheme}://{user}{h}{path}{query}")))
            .collect::<Result<Vec<_>, _>>()?;
        if hosts.is_empty() {
            return Err(bad("DATABASE_URL names no host"));
        }
        Ok(Target { hosts, attrs })
    }
}

/// A node refused for `read-write`: its transactions are read-only (a standby, or a primary
/// being demoted or just promoted).
#[derive(Debug)]
pub struct ReadOnlyNode;

impl std::fmt::Display for ReadOnlyNode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("the database is read-only (a standby)")
    }
}

impl std::error::Error for ReadOnlyNode {}

/// Whether an error is one failover causes: the database is unreachable, shutting down or
/// read-only, rather than refusing this request.
pub fn is_failover(e: &sqlx::Error) -> bool {
    match e {
        sqlx::Error::Io(_) | sqlx::Error::Tls(_) | sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed => true,
        sqlx::Error::Configuration(e) => e.is::<ReadOnlyNode>(),
        sqlx::Error::Database(db) => {
            db.code().is_some_and(|c| matches!(c.as_ref(), "25006" | "57P01" | "57P02" | "57P03") || c.starts_with("08"))
        }
        _ => false,
    }
}

/// Notes a failover error: every pool is replaced at its next use.
pub fn note(e: &sqlx::Error) {
    if is_failover(e) {
        suspect_writer();
    }
}

/// The writer may have moved (a failover error, or a health check that found the database
/// read-only): every pool is replaced at its next use.
pub fn suspect_writer() {
    EPOCH.fetch_add(1, Ordering::Relaxed);
    MOVED.notify_waiters();
}

/// Resolves once the epoch is past `seen` (a failover error was seen somewhere since).
pub async fn moved_since(seen: u64) {
    loop {
        let woken = MOVED.notified();
        tokio::pin!(woken);
        woken.as_mut().enable();
        if epoch() != seen {
            return;
        }
        woken.await;
    }
}

pub fn epoch() -> u64 {
    EPOCH.load(Ordering::Relaxed)
}

/// Whether a connection may serve `attrs`: for read-write, its transactions are not read-only.
async fn acceptable(conn: &mut PgConnection, attrs: Attrs) -> Result<(), sqlx::Error> {
    if attrs == Attrs::ReadWrite {
        let ro: String = sqlx::query_scalar("SELECT current_setting('transaction_read_only')").fetch_one(&mut *conn).await?;
        if ro == "on" {
            return Err(sqlx::Error::Configuration(Box::new(ReadOnlyNode)));
        }
    }
    Ok(())
}

/// The first host of `target` that answers and is acceptable.
pub async fn writable_host(target: &Target) -> Result<PgConnectOptions, sqlx::Error> {
    let mut last = None;
    for opts in &target.hosts {
        let probe = async {
            let mut conn = opts.connect().await?;
            let ok = acceptable(&mut conn, target.attrs).await;
            let _ = conn.close().await;
            ok
        };
        match tokio::time::timeout(Duration::from_secs(5), probe).await {
            Ok(Ok(())) => return Ok(opts.clone()),
            Ok(Err(e)) => last = Some(e),
            Err(_) => last = Some(sqlx::Error::PoolTimedOut),
        }
    }
    Err(last.unwrap_or(sqlx::Error::PoolTimedOut))
}

/// A pool on `opts`, the host [`writable_host`] chose. Lazy: connections open on first use.
///
/// Its connections are not checked one by one (sqlx retries a failed `after_connect` until the
/// acquire timeout, so a standby would cost every caller 10 s instead of an immediate 503):
/// a node that turns read-only under the pool fails the call's first write with 25006, which
/// is a failover error, and the pool is replaced.
pub fn pool_on(opts: PgConnectOptions, max_connections: u32) -> PgPool {
    PgPoolOptions::new()
        .max_connections(max_connections)
        .acquire_timeout(Duration::from_secs(5))
        .connect_lazy_with(opts.application_name("strongroom"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn multi_host_urls_name_every_host_in_order() {
        let t = Target::parse("postgres://app:pw@h1:5561,h2:5562/vault?target_session_attrs=read-write&sslmode=disable").unwrap();
        assert_eq!(t.attrs, Attrs::ReadWrite);
        let hosts: Vec<(String, u16)> = t.hosts.iter().map(|o| (o.get_host().to_string(), o.get_port())).collect();
        assert_eq!(hosts, [("h1".to_string(), 5561), ("h2".to_string(), 5562)]);
        assert!(t.hosts.iter().all(|o| o.get_database() == Some("vault") && o.get_username() == "app"));
        let one = Target::parse("postgres://u@localhost/db").unwrap();
        assert_eq!((one.hosts.len(), one.attrs), (1, Attrs::ReadWrite));
        assert_eq!(Target::parse("postgres://u@a,b/db?target_session_attrs=any").unwrap().attrs, Attrs::Any);
        assert!(Target::parse("postgres://u@a/db?target_session_attrs=sometimes").is_err());
        assert!(Target::parse("h1:5432").is_err());
    }

    #[test]
    fn failover_errors_are_told_from_refusals() {
        assert!(is_failover(&sqlx::Error::PoolTimedOut));
        assert!(is_failover(&sqlx::Error::Io(std::io::Error::other("reset"))));
        assert!(is_failover(&sqlx::Error::Configuration(Box::new(ReadOnlyNode))));
        assert!(!is_failover(&sqlx::Error::Configuration("bad url".into())));
        assert!(!is_failover(&sqlx::Error::RowNotFound));
    }
}
