//! TenantCreate, TenantGet, TenantUpdate, TenantListTenants, and our extension TenantDelete
//! (not in the Databunker Pro contract): the root credential of the main tenant manages the
//! tenant directory; a tenant admin may read its own tenant.
//!
//! Invariants: with a tenant key store configured, a tenant row is committed only after its
//! key-encryption key (KEK) is in the store; a deletion destroys the KEK *before* deleting any
//! row (a store failure deletes nothing), so once TenantDelete answers, no copy of the
//! database, backups included, opens the tenant's rows. A tenant without a KEK (created before
//! a store was configured, or without one) is deleted too, and the answer says `"shredded":
//! false`: backups taken earlier still open with the master key.

use axum::extract::State;
use axum::routing::post;
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{json, Map, Value};

use super::body::{int_or_string, Body, Metadata};
use super::{fields, Call};
use crate::app::AppState;
use crate::auth::Claimed;
use crate::custody::tenant_kek;
use crate::error::{Error, Result};
use crate::keys::envelope::Key;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/v2/TenantCreate", post(tenant_create))
        .route("/v2/TenantGet", post(tenant_get))
        .route("/v2/TenantUpdate", post(tenant_update))
        .route("/v2/TenantListTenants", post(tenant_list))
        .route("/v2/TenantDelete", post(tenant_delete))
}

#[derive(Deserialize)]
struct CreateReq {
    tenantname: String,
    tenantorg: String,
    #[serde(default)]
    email: Option<String>,
    #[serde(default)]
    request_metadata: Metadata,
}

#[derive(Deserialize)]
struct GetReq {
    #[serde(default, deserialize_with = "int_or_string")]
    tenantid: Option<i64>,
    #[serde(default)]
    request_metadata: Metadata,
}

#[derive(Deserialize)]
struct UpdateReq {
    #[serde(default, deserialize_with = "int_or_string")]
    tenantid: Option<i64>,
    #[serde(default)]
    tenantname: Option<String>,
    #[serde(default)]
    tenantorg: Option<String>,
    #[serde(default)]
    email: Option<String>,
    #[serde(default)]
    request_metadata: Metadata,
}

#[derive(Deserialize)]
struct ListReq {
    #[serde(default, deserialize_with = "int_or_string")]
    offset: Option<i64>,
    #[serde(default, deserialize_with = "int_or_string")]
    limit: Option<i64>,
    #[serde(default)]
    request_metadata: Metadata,
}

/// Tenant names double as subdomains: lowercase letters, digits and inner hyphens, 1-63 long.
pub fn valid_tenant_name(name: &str) -> bool {
    let ok_chars = name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
    ok_chars && !name.is_empty() && name.len() <= 63 && !name.starts_with('-') && !name.ends_with('-')
}

fn check_name(name: &str) -> Result<()> {
    if valid_tenant_name(name) {
        Ok(())
    } else {
        Err(Error::bad("tenantname must be 1-63 lowercase letters, digits or inner hyphens"))
    }
}

fn check_text(field: &str, value: &str) -> Result<()> {
    if value.trim().is_empty() || value.len() > 256 {
        return Err(Error::bad(format!("{field} must be 1-256 characters")));
    }
    Ok(())
}

fn required_id(id: Option<i64>) -> Result<i64> {
    match id {
        Some(id) if id > 0 => Ok(id),
        Some(_) => Err(Error::bad("tenantid must be a positive integer")),
        None => Err(Error::bad("missing field `tenantid`")),
    }
}

async fn tenant_create(State(st): State<AppState>, claimed: Claimed, Body(req): Body<CreateReq>) -> Result<Json<Value>> {
    let mut call = Call::open(&st, &claimed, "TenantCreate", req.request_metadata).await?;
    let result = async {
        check_name(&req.tenantname)?;
        check_text("tenantorg", &req.tenantorg)?;
        if let Some(e) = &req.email {
            check_text("email", e)?;
        }
        call.note("tenantname", req.tenantname.as_str());
        let xtoken = zeroize::Zeroizing::new(uuid::Uuid::new_v4().to_string());
        let admin_hash = call.ring.credential_hash(&xtoken);
        let ring = call.ring.clone();
        // The KEK goes to the store first: no tenant row ever names a KEK the store lacks.
        let keks = st.vault().tenant_keks();
        let kek = tenant_kek::mint(keks).await?;
        let created = call
            .tx
            .create_tenant(
                &req.tenantname,
                req.tenantorg.trim(),
                req.email.as_deref().map(str::trim),
                kek.as_ref().map(|(id, _)| id.as_str()),
                |id| ring.wrap_tenant_key(id, kek.as_ref().map(|(_, k)| k), 1, &Key::random()),
                &admin_hash,
            )
            .await;
        let id = match created {
            Ok(id) => id,
            Err(e) => {
                if let Some((kek_id, _)) = &kek {
                    tenant_kek::discard(keks, kek_id).await;
                }
                return Err(e);
            }
        };
        call.note("tenantid", id);
        Ok(fields([("tenantid", id.into()), ("xtoken", xtoken.as_str().into())]))
    }
    .await;
    call.finish(result).await
}

#[derive(Deserialize)]
struct DeleteReq {
    #[serde(default, deserialize_with = "int_or_string")]
    tenantid: Option<i64>,
    /// The operator confirms that the tenant's KEK is already gone (a backup restored after the
    /// tenant was shredded): its rows may be deleted although the store does not hold the KEK.
    #[serde(default)]
    kekabsent: bool,
    #[serde(default)]
    request_metadata: Metadata,
}

/// TenantDelete (our extension): root of the main tenant only; never the main tenant. Locks the
/// tenant row, destroys the tenant's KEK in the store (503 and nothing deleted when that
/// fails), deletes every row of the tenant and its directory row, and audits `TenantDelete` in
/// the main tenant, all in one transaction; then drops this instance's cached keys. Other
/// instances resolve the tenant per request, so they stop serving it at once; their cached keys
/// are dropped by the re-wrap loop.
async fn tenant_delete(State(st): State<AppState>, claimed: Claimed, Body(req): Body<DeleteReq>) -> Result<Json<Value>> {
    let mut call = Call::open(&st, &claimed, "TenantDelete", req.request_metadata).await?;
    let ring = call.ring.clone();
    let mut deleted = None;
    let result = async {
        // The policy allows only root in the main tenant; say it here too, whatever a tenant's
        // own roles and policies might grant.
        if !call.who.is_root() || call.who.tenant_id != crate::vault::DEFAULT_TENANT_ID || call.who.lease_id.is_some() {
            return Err(Error::denied());
        }
        let id = required_id(req.tenantid)?;
        call.note("tenantid", id);
        if id == crate::vault::DEFAULT_TENANT_ID {
            return Err(Error::bad("the main tenant cannot be deleted"));
        }
        // 1. The tombstone, committed on its own: from here no instance serves the tenant. On a
        //    first attempt the KEK must be where the store says: an "absent" KEK then means a
        //    misaddressed store (wrong prefix, mount or directory), not a shredded tenant.
        let store = st.vault().tenant_keks();
        let confirmed_absent = req.kekabsent;
        let begun = st
            .db()
            .begin_tenant_deletion(id, |kek_id, already| async move {
                match (&kek_id, already) {
                    (Some(kek_id), false) => match store.get(kek_id).await {
                        Ok(Some(_)) => Ok(()),
                        Ok(None) if confirmed_absent => Ok(()),
                        Ok(None) => Err(Error::Conflict(
                            "the tenant's KEK is not in the configured tenant key store: either this is the wrong store (nothing was \
                             deleted), or the tenant was shredded before this backup was restored (repeat with \"kekabsent\": true)"
                                .into(),
                        )),
                        Err(e) => {
                            tracing::warn!(tenant = id, store = %store.describe(), error = %e, "TenantDelete: tenant key store unreachable");
                            Err(Error::Unavailable("tenant key store unavailable; the tenant was not deleted".into()))
                        }
                    },
                    _ => Ok(()),
                }
            })
            .await?;
        let Some((kek_id, _)) = begun else {
            return Err(Error::not_found("tenant"));
        };
        ring.forget_tenant(id);
        // 2. The KEK, destroyed first: from here the tenant's rows open nowhere, backups included.
        let shredded = match &kek_id {
            Some(kek_id) => {
                if let Err(e) = store.destroy(kek_id).await {
                    tracing::warn!(tenant = id, store = %store.describe(), error = %e, "TenantDelete: could not destroy the tenant KEK");
                    return Err(Error::Unavailable(
                        "tenant key store unavailable: the tenant is out of service but its KEK may not be destroyed; retry TenantDelete".into(),
                    ));
                }
                true
            }
            None => false,
        };
        // 3. The rows.
        call.tx.lock_tenant(id).await?.ok_or_else(|| Error::not_found("tenant"))?;
        let rows = call.tx.delete_tenant(id).await?;
        call.note("shredded", shredded);
        deleted = Some((id, shredded, rows));
        let mut out = fields([("tenantid", id.into()), ("shredded", shredded.into())]);
        if !shredded {
            out.insert(
                "message".into(),
                "tenant deleted; it had no key in the tenant key store, so backups taken before now still open with the master key".into(),
            );
        }
        Ok(out)
    }
    .await;
    let answer = call.finish(result).await;
    if let (Ok(_), Some((id, shredded, rows))) = (&answer, deleted) {
        ring.forget_tenant(id);
        if shredded {
            tracing::info!(tenant = id, rows, "tenant deleted and crypto-shredded: its KEK is destroyed");
        } else {
            tracing::warn!(
                tenant = id,
                rows,
                "tenant deleted, but it had database-only key custody: backups taken before now still open with the master key"
            );
        }
    }
    answer
}

async fn tenant_get(State(st): State<AppState>, claimed: Claimed, Body(req): Body<GetReq>) -> Result<Json<Value>> {
    let mut call = Call::open(&st, &claimed, "TenantGet", req.request_metadata).await?;
    let result = async {
        let id = required_id(req.tenantid)?;
        call.note("tenantid", id);
        // A tenant admin sees its own tenant only; any other id is simply not found.
        if !call.who.is_root() && id != call.who.tenant_id {
            return Err(Error::not_found("tenant"));
        }
        let t = st.db().tenant(id).await?.ok_or_else(|| Error::not_found("tenant"))?;
        Ok(fields([("tenantid", t.id.into()), ("tenantname", t.name.into()), ("tenantorg", t.org.into()), ("email", t.email.into())]))
    }
    .await;
    call.finish(result).await
}

async fn tenant_update(State(st): State<AppState>, claimed: Claimed, Body(req): Body<UpdateReq>) -> Result<Json<Value>> {
    let mut call = Call::open(&st, &claimed, "TenantUpdate", req.request_metadata).await?;
    let result = async {
        let id = required_id(req.tenantid)?;
        call.note("tenantid", id);
        if req.tenantname.is_none() && req.tenantorg.is_none() && req.email.is_none() {
            return Err(Error::bad("nothing to update: give tenantname, tenantorg or email"));
        }
        if let Some(n) = &req.tenantname {
            check_name(n)?;
            if id == crate::vault::DEFAULT_TENANT_ID && n != crate::auth::DEFAULT_TENANT {
                return Err(Error::bad("the main tenant cannot be renamed"));
            }
        }
        if let Some(o) = &req.tenantorg {
            check_text("tenantorg", o)?;
        }
        if let Some(e) = &req.email {
            check_text("email", e)?;
        }
        if !call
            .tx
            .update_tenant(id, req.tenantname.as_deref(), req.tenantorg.as_deref().map(str::trim), req.email.as_deref().map(str::trim))
            .await?
        {
            return Err(Error::not_found("tenant"));
        }
        Ok(Map::new())
    }
    .await;
    call.finish(result).await
}

async fn tenant_list(State(st): State<AppState>, claimed: Claimed, Body(req): Body<ListReq>) -> Result<Json<Value>> {
    let call = Call::open(&st, &claimed, "TenantListTenants", req.request_metadata).await?;
    let result = async {
        let (offset, limit) = super::audit::page(req.offset, req.limit)?;
        let (total, tenants) = st.db().list_tenants(offset, limit).await?;
        let rows: Vec<Value> = tenants.into_iter().map(|t| json!({"tenantid": t.id, "tenantname": t.name, "tenantorg": t.org})).collect();
        Ok(fields([("total", total.into()), ("rows", Value::Array(rows))]))
    }
    .await;
    call.finish(result).await
}

#[cfg(test)]
mod tests {
    #[test]
    fn tenant_names_are_subdomain_safe() {
        for ok in ["acme", "a", "acme-eu-1", "x1"] {
            assert!(super::valid_tenant_name(ok), "{ok}");
        }
        for bad in ["", "Acme", "-a", "a-", "a.b", "a b", "ünï", &"a".repeat(64)] {
            assert!(!super::valid_tenant_name(bad), "{bad}");
        }
    }
}
