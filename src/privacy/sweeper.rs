//! The retention sweeper. Every instance runs one: every interval, for every tenant, it deletes
//! expired rows in batches of [`BATCH`], each batch in its own tenant transaction. Batches take
//! their rows with `FOR UPDATE SKIP LOCKED`, so instances sweeping at once never wait on each
//! other nor delete (or audit) a row twice. Reads already treat an expired row as absent; the
//! sweeper only makes it physically gone.
//!
//! Deleting a user cascades to everything hanging off it (versions, indexes, app data,
//! sessions, agreements, requests, memberships, shared records) and appends a `UserExpired`
//! audit event per user in the same transaction. The events are wrapped by the tenant data key
//! (the user's key is gone with the row) and note only the user's token.
//!
//! Users soft-deleted by SystemDeleteUserProfiles are deleted for good the same way once their
//! restore window has passed, each with a `UserPurged` event. With callbacks configured, each
//! removed user also queues a `user-expired` (or `user-purged`) callback in the same
//! transaction, so the applications holding its token learn it is gone.

use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;

use crate::audit::Draft;
use crate::custody::tenant_kek::TenantKekStore;
use crate::error::Result;
use crate::keys::keyring::Keyring;
use crate::store::{now_secs, Db};
use crate::vault::Vault;

/// What a sweep does beyond deleting: how long soft-deleted users stay restorable, and whether
/// removed users are reported through the callback outbox.
#[derive(Debug, Clone, Copy)]
pub struct Policy {
    pub restore_window_s: i64,
    pub callbacks: bool,
}

/// Rows deleted per table in one transaction.
pub const BATCH: i64 = 500;
/// Leases are kept this long past their expiry (seconds): a lease id in a log still resolves.
pub const LEASE_GRACE_S: i64 = 86_400;
/// Audit event type of a user deleted by retention.
pub const USER_EXPIRED: &str = "UserExpired";
/// Audit event type of a soft-deleted user deleted for good after its restore window.
pub const USER_PURGED: &str = "UserPurged";
/// Audit actor of the sweeper's events.
pub const ACTOR: &str = "system:retention";

/// What one pass deleted, per kind.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Swept {
    pub users: u64,
    pub sessions: u64,
    pub tokens: u64,
    pub shared_records: u64,
    pub files: u64,
    pub unlocks: u64,
    pub leases: u64,
}

impl Swept {
    pub fn total(&self) -> u64 {
        self.users + self.sessions + self.tokens + self.shared_records + self.files + self.unlocks + self.leases
    }

    fn add(&mut self, o: Swept) {
        self.users += o.users;
        for kind in Kind::ALL {
            *self.count(kind) += o.of(kind);
        }
    }

    fn count(&mut self, kind: Kind) -> &mut u64 {
        match kind {
            Kind::Sessions => &mut self.sessions,
            Kind::Tokens => &mut self.tokens,
            Kind::SharedRecords => &mut self.shared_records,
            Kind::Files => &mut self.files,
            Kind::Unlocks => &mut self.unlocks,
            Kind::Leases => &mut self.leases,
        }
    }

    fn of(&self, kind: Kind) -> u64 {
        let mut copy = *self;
        *copy.count(kind)
    }
}

/// Which users a batch deletes: expired at `now`, or soft-deleted at or before a time.
#[derive(Debug, Clone, Copy)]
enum UserSweep {
    Expired(i64),
    SoftDeletedBefore(i64),
}

/// One batch of expired (or soft-deleted past their window) users of one tenant: deleted, each
/// with its `UserExpired` (or `UserPurged`) event, in one transaction. Returns how many.
async fn sweep_users_batch(
    db: &Db,
    keks: &TenantKekStore,
    ring: &Keyring,
    tenant_id: i64,
    which: UserSweep,
    callbacks: bool,
) -> Result<u64> {
    let mut tx = db.tenant_tx(tenant_id).await?;
    // Rows (and the cascade's locks) first, the audit chain last: the sweeper then never holds
    // the chain head while waiting for a row an API call holds.
    let (tokens, event, callback) = match which {
        UserSweep::Expired(now) => (tx.sweep_users(now, BATCH).await?, USER_EXPIRED, crate::privacy::callbacks::Event::UserExpired),
        UserSweep::SoftDeletedBefore(before) => {
            (tx.sweep_soft_deleted(before, BATCH).await?, USER_PURGED, crate::privacy::callbacks::Event::UserPurged)
        }
    };
    if tokens.is_empty() {
        tx.rollback().await?;
        return Ok(0);
    }
    let keys = crate::custody::rotation::tenant_keys(keks, ring, &mut tx).await?;
    for token in &tokens {
        let mut details = serde_json::Map::new();
        details.insert("token".into(), Value::String(token.clone()));
        let draft = Draft { user_token: Some(token.clone()), user_key: None, details };
        crate::audit::append(&mut tx, &keys, event, ACTOR, crate::audit::Outcome::Ok, draft).await?;
    }
    if callbacks {
        let tenant = db.tenant(tenant_id).await?.map(|t| t.name).unwrap_or_default();
        for token in &tokens {
            crate::privacy::callbacks::enqueue(&mut tx, &tenant, callback, Some(token), Value::Null).await?;
        }
    }
    tx.commit().await?;
    Ok(tokens.len() as u64)
}

/// The tables other than users, each swept the same way: one batch in one transaction.
#[derive(Debug, Clone, Copy)]
enum Kind {
    Sessions,
    Tokens,
    SharedRecords,
    Files,
    Unlocks,
    Leases,
}

impl Kind {
    const ALL: [Kind; 6] = [Kind::Sessions, Kind::Tokens, Kind::SharedRecords, Kind::Files, Kind::Unlocks, Kind::Leases];

    fn label(self) -> &'static str {
        match self {
            Kind::Sessions => "sessions",
            Kind::Tokens => "tokens",
            Kind::SharedRecords => "shared_records",
            Kind::Files => "files",
            Kind::Unlocks => "unlocks",
            Kind::Leases => "leases",
        }
    }
}

/// Deletes one batch of `kind`; returns (deleted, whether more may be left).
async fn sweep_batch(db: &Db, tenant_id: i64, kind: Kind, now: i64) -> Result<(u64, bool)> {
    let mut tx = db.tenant_tx(tenant_id).await?;
    let (n, batched) = match kind {
        Kind::Sessions => (tx.sweep_sessions(now, BATCH).await?, true),
        // Tokens keep their existing (unbatched) sweep: one statement takes them all.
        Kind::Tokens => (tx.sweep_tokens(now).await?, false),
        Kind::SharedRecords => (tx.sweep_shared_records(now, BATCH).await?, true),
        Kind::Files => (tx.sweep_files(now, BATCH).await?, true),
        Kind::Unlocks => (tx.sweep_unlocks(now, BATCH).await?, true),
        Kind::Leases => (tx.sweep_leases(now - LEASE_GRACE_S, BATCH).await?, true),
    };
    tx.commit().await?;
    Ok((n, batched && n as i64 >= BATCH))
}

/// Sweeps one tenant until nothing expired at `now`, and no user soft-deleted more than
/// `policy.restore_window_s` before it, is left (or a batch fails).
pub async fn sweep_tenant(db: &Db, keks: &TenantKekStore, ring: &Keyring, tenant_id: i64, now: i64, policy: Policy) -> Result<Swept> {
    let mut swept = Swept::default();
    for which in [UserSweep::Expired(now), UserSweep::SoftDeletedBefore(now.saturating_sub(policy.restore_window_s))] {
        loop {
            let n = sweep_users_batch(db, keks, ring, tenant_id, which, policy.callbacks).await?;
            swept.users += n;
            if (n as i64) < BATCH {
                break;
            }
        }
    }
    for kind in Kind::ALL {
        loop {
            let (n, more) = sweep_batch(db, tenant_id, kind, now).await?;
            *swept.count(kind) += n;
            if !more {
                break;
            }
        }
    }
    Ok(swept)
}

/// One pass over every tenant (needs the keyring: user deletions are audited). Errors of one
/// tenant are logged and do not stop the others.
pub async fn sweep_all(db: &Db, keks: &TenantKekStore, ring: &Keyring, policy: Policy) -> Result<Swept> {
    let now = now_secs();
    let mut total = Swept::default();
    for tenant in db.tenant_ids().await? {
        match sweep_tenant(db, keks, ring, tenant, now, policy).await {
            Ok(s) => {
                if s.total() > 0 {
                    tracing::debug!(tenant, ?s, "retention sweep");
                }
                total.add(s);
            }
            // A shredded tenant's rows (in a restored backup) can no longer be audited or read.
            Err(crate::error::Error::TenantDeleted) => tracing::debug!(tenant, "retention sweep: tenant KEK destroyed; skipped"),
            Err(e) => tracing::warn!(tenant, error = %e, "retention sweep failed; will retry"),
        }
    }
    Ok(total)
}

fn publish(s: &Swept) {
    crate::telemetry::sweeper_deleted("users", s.users);
    for kind in Kind::ALL {
        crate::telemetry::sweeper_deleted(kind.label(), s.of(kind));
    }
}

/// Runs [`sweep_all`] every `interval` while this instance is unsealed.
pub async fn sweep_loop(vault: Arc<Vault>, interval: Duration, policy: Policy) {
    loop {
        tokio::time::sleep(interval).await;
        let Ok(ring) = vault.keyring() else { continue };
        match sweep_all(vault.db(), vault.tenant_keks(), &ring, policy).await {
            Ok(s) => publish(&s),
            Err(e) => tracing::warn!(error = %e, "retention sweep: could not list tenants"),
        }
    }
}
