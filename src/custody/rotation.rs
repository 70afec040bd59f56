//! Tenant data-key rotation without downtime. A rotation adds a new data-key version and makes
//! it current for the whole fleet at once (every request reads the tenant's current version);
//! a background pass in every instance then re-wraps the small per-user and per-event keys still
//! under older versions, in batches, and retires a version once nothing refers to it.
//!
//! Every data-key version is wrapped under the tenant's own wrapping key: master key ‖ KEK for a
//! tenant with a key-encryption key in the tenant key store (fetched from there), the master key
//! for a database-only tenant. Loading a tenant's keys on a cache miss goes through
//! [`tenant_keys`], the one place that asks the store.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use super::tenant_kek::{self, TenantKekStore};
use crate::error::{Error, Result};
use crate::keys::envelope::Key;
use crate::keys::keyring::{Keyring, TenantKeys};
// One spelling of each label this module re-wraps (`keys::labels`).
use crate::keys::labels::{AUDIT_KEY, SESSIONS, TOKEN_BASE, TOKEN_RECORD};
use crate::store::{Db, TenantTx};
use crate::vault::Vault;

/// Rows re-wrapped per table in one pass (one transaction).
pub const BATCH: i64 = 500;

/// The tenant's keys, reloaded when the cached set is older than the tenant's current version.
/// A reload fetches the tenant's KEK from `keks` (503 when unreachable, 404 "tenant has been
/// deleted" when destroyed).
pub async fn tenant_keys(keks: &TenantKekStore, ring: &Keyring, tx: &mut TenantTx) -> Result<Arc<TenantKeys>> {
    if let Some(k) = ring.tenant(tx.tenant_id()) {
        if k.current_version() == tx.key_version() {
            return Ok(k);
        }
    }
    let kek = tenant_kek::for_tenant(keks, tx).await?;
    let wrapped = tx.wrapped_data_keys().await?;
    Ok(ring.load_tenant(tx.tenant_id(), kek.as_ref(), &wrapped)?)
}

/// Adds a new data-key version for `tenant_id`, wrapped under the tenant's own wrapping key, and
/// makes it current. Returns the version.
pub async fn rotate(db: &Db, keks: &TenantKekStore, ring: &Keyring, tenant_id: i64) -> Result<i32> {
    let mut tx = db.tenant_tx(tenant_id).await?;
    let kek = tenant_kek::for_tenant(keks, &tx).await?;
    let version = tx.rotate_data_key(|v| ring.wrap_tenant_key(tenant_id, kek.as_ref(), v, &Key::random())).await?;
    tx.commit().await?;
    ring.forget_tenant(tenant_id);
    tracing::info!(tenant = tenant_id, version, "tenant data key rotated");
    Ok(version)
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct Progress {
    pub tenantid: i64,
    pub current_version: i32,
    pub versions: Vec<i32>,
    pub pending_users: i64,
    pub pending_events: i64,
}

pub async fn progress(db: &Db, tenant_id: i64) -> Result<Progress> {
    let mut tx = db.tenant_tx(tenant_id).await?;
    let current = tx.key_version();
    let versions = tx.data_key_versions().await?;
    let (pending_users, pending_events) = if versions.len() > 1 { tx.rewrap_backlog(current).await? } else { (0, 0) };
    tx.rollback().await?;
    Ok(Progress { tenantid: tenant_id, current_version: current, versions, pending_users, pending_events })
}

/// One pass for one tenant: re-wraps up to [`BATCH`] user keys and [`BATCH`] event keys, or
/// retires the old versions when nothing is left. Returns how many rows it re-wrapped.
pub async fn rewrap_pass(db: &Db, keks: &TenantKekStore, ring: &Keyring, tenant_id: i64) -> Result<usize> {
    let (users, events) = rewrap_pass_counted(db, keks, ring, tenant_id).await?;
    Ok(users + events)
}

/// [`rewrap_pass`], counting user keys apart from event keys and tokens (progress metrics).
async fn rewrap_pass_counted(db: &Db, keks: &TenantKekStore, ring: &Keyring, tenant_id: i64) -> Result<(usize, usize)> {
    let mut tx = db.tenant_tx(tenant_id).await?;
    if tx.data_key_versions().await?.len() <= 1 {
        tx.rollback().await?;
        return Ok((0, 0));
    }
    let current = tx.key_version();
    let keys = tenant_keys(keks, ring, &mut tx).await?;
    let users = tx.users_to_rewrap(current, BATCH).await?;
    let mut rewrapped = Vec::with_capacity(users.len());
    for u in &users {
        let k = keys.unwrap_user_key(&u.row, u.key_version, &u.wrapped)?;
        rewrapped.push((u.id, keys.wrap_user_key(&u.row, &k).1));
    }
    if !rewrapped.is_empty() {
        tx.set_user_keys(current, &rewrapped).await?;
    }
    let events = tx.events_to_rewrap(current, BATCH).await?;
    let mut events_done = Vec::with_capacity(events.len());
    for e in &events {
        let k = keys.decrypt(AUDIT_KEY, &e.row, e.key_version, &e.wrapped)?;
        events_done.push((e.id, keys.encrypt(AUDIT_KEY, &e.row, &k).1));
    }
    if !events_done.is_empty() {
        tx.set_event_keys(current, &events_done).await?;
    }
    // Tokens keep their record and value under the data key itself: re-encrypt those.
    let tokens = tx.tokens_to_rewrap(current, BATCH).await?;
    let mut tokens_done = Vec::with_capacity(tokens.len());
    for (uuid, version, record, base) in &tokens {
        let record = keys.decrypt(TOKEN_RECORD, uuid, *version, record)?;
        let base = keys.decrypt(TOKEN_BASE, uuid, *version, base)?;
        tokens_done.push((uuid.clone(), keys.encrypt(TOKEN_RECORD, uuid, &record).1, keys.encrypt(TOKEN_BASE, uuid, &base).1));
    }
    if !tokens_done.is_empty() {
        tx.set_token_blobs(current, &tokens_done).await?;
    }
    // So do sessions of no user.
    let sessions = tx.sessions_to_rewrap(current, BATCH).await?;
    let mut sessions_done = Vec::with_capacity(sessions.len());
    for (uuid, version, data) in &sessions {
        let row = crate::store::sessions::unowned_row_id(uuid);
        let plain = keys.decrypt(SESSIONS, &row, *version, data)?;
        sessions_done.push((uuid.clone(), keys.encrypt(SESSIONS, &row, &plain).1));
    }
    if !sessions_done.is_empty() {
        tx.set_session_blobs(current, &sessions_done).await?;
    }
    let done = rewrapped.len() + events_done.len() + tokens_done.len() + sessions_done.len();
    if done == 0 {
        let retired = tx.retire_data_keys(current).await?;
        if retired > 0 {
            tracing::info!(tenant = tenant_id, retired, current, "old tenant data-key versions retired");
        }
    }
    tx.commit().await?;
    Ok((rewrapped.len(), events_done.len() + tokens_done.len() + sessions_done.len()))
}

/// Runs re-wrap passes over every tenant every `interval` while this instance is unsealed.
/// The backlog (`strongroom_rewrap_pending`) is measured once when a tenant turns out to have
/// work, then counted down pass by pass, so progress costs no extra scans. Each round also drops
/// the cached keys of tenants that no longer exist (deleted, possibly by another instance).
pub async fn rewrap_loop(vault: Arc<Vault>, interval: Duration) {
    let mut pending: HashMap<i64, (i64, i64)> = HashMap::new();
    let publish = |p: &HashMap<i64, (i64, i64)>| {
        crate::telemetry::rewrap_pending(p.values().map(|v| v.0).sum(), p.values().map(|v| v.1).sum());
    };
    loop {
        tokio::time::sleep(interval).await;
        let Ok(ring) = vault.keyring() else { continue };
        let tenants = match vault.db().tenant_ids().await {
            Ok(t) => t,
            Err(e) => {
                tracing::warn!(error = %e, "re-wrap: could not list tenants");
                continue;
            }
        };
        pending.retain(|t, _| tenants.contains(t));
        let dropped = ring.retain_tenants(&tenants);
        if dropped > 0 {
            tracing::info!(dropped, "dropped the cached keys of deleted tenants");
        }
        for &tenant in &tenants {
            let mut measured = false;
            loop {
                match rewrap_pass_counted(vault.db(), vault.tenant_keks(), &ring, tenant).await {
                    Ok((0, 0)) => {
                        if pending.remove(&tenant).is_some() {
                            publish(&pending);
                        }
                        break;
                    }
                    Ok((users, events)) => {
                        tracing::debug!(tenant, users, events, "re-wrapped keys");
                        crate::telemetry::rewrap_rows((users + events) as u64);
                        if !measured {
                            measured = true;
                            if let Ok(p) = progress(vault.db(), tenant).await {
                                pending.insert(tenant, (p.pending_users, p.pending_events));
                            }
                        } else if let Some(left) = pending.get_mut(&tenant) {
                            *left = ((left.0 - users as i64).max(0), (left.1 - events as i64).max(0));
                        }
                        publish(&pending);
                    }
                    Err(Error::TenantDeleted) => {
                        tracing::debug!(tenant, "re-wrap: the tenant's KEK is destroyed; nothing to do");
                        break;
                    }
                    Err(e) => {
                        tracing::warn!(tenant, error = %e, "re-wrap pass failed; will retry");
                        break;
                    }
                }
            }
        }
    }
}
