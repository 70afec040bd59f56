//! The HashiCorp Vault plugin endpoint (design page): a secrets-engine plugin holding a
//! `vault-plugin` credential reads creds (mint), renews and revokes leases. Tokens are JWTs
//! bound to a lease row; see `auth::lease`. The contract a plugin follows: docs/vault-plugin.md.

use axum::extract::State;
use axum::routing::post;
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::Value;

use super::body::{Body, Metadata};
use super::when::{parse_duration_in, Units};
use super::{fields, Call};
use crate::app::AppState;
use crate::auth::roles::{check_lease_mint, MintPurpose, MintRequest, TenantRoleStatus, MANAGEMENT_RESOURCES};
use crate::auth::{lease, Claimed, Role};
use crate::error::{Error, Result};
use crate::store::now_secs;

pub fn routes() -> Router<AppState> {
    Router::new().route("/v1/vault/creds", post(creds)).route("/v1/vault/renew", post(renew)).route("/v1/vault/revoke", post(revoke))
}

/// A TTL as Vault sends it: seconds (number or string) or a Go duration string ("10m" is ten
/// minutes, "1h").
pub fn parse_ttl(v: &Option<Value>) -> Result<Option<i64>> {
    parse_duration_in(Units::Go, "ttl", v)
}

#[derive(Deserialize)]
struct CredsReq {
    role: String,
    #[serde(default)]
    ttl: Option<Value>,
    #[serde(default)]
    request_metadata: Metadata,
}

#[derive(Deserialize)]
struct RenewReq {
    lease_id: String,
    #[serde(default)]
    increment: Option<Value>,
    #[serde(default)]
    request_metadata: Metadata,
}

#[derive(Deserialize)]
struct RevokeReq {
    lease_id: String,
    #[serde(default)]
    request_metadata: Metadata,
}

/// A lease just minted: the token (shown once), its lease id, how long it lives now and its
/// hard cap, both in seconds from now.
pub struct Minted {
    pub token: String,
    pub lease_id: String,
    pub duration: i64,
    pub max_duration: i64,
}

/// What a tenant role is, for the mint rules of `auth::roles`.
async fn tenant_role_status(call: &mut Call, role: &Role) -> Result<Option<TenantRoleStatus>> {
    let Some(name) = role.tenant_name() else { return Ok(None) };
    let Some(row) = call.tx.find_role(None, Some(name)).await? else { return Ok(Some(TenantRoleStatus::Missing)) };
    let manages = call.tx.allowed_resources(role.as_str()).await?.iter().any(|obj| grants_management(obj));
    Ok(Some(TenantRoleStatus::Exists { mintable: row.mintable, manages }))
}

/// Whether a rule's resource pattern (casbin keyMatch: `*` matches any tail) reaches one of the
/// management resources.
fn grants_management(pattern: &str) -> bool {
    MANAGEMENT_RESOURCES.iter().any(|res| match pattern.find('*') {
        Some(i) => res.starts_with(&pattern[..i]),
        None => pattern == *res,
    })
}

/// Mints a lease of `target` for `purpose` in the call's tenant (`user`: the record a user-self
/// token is bound to), after the rules of `auth::roles::check_lease_mint`. The new lease joins
/// the caller's lineage (its root credential, and the caller's own lease as parent), whose row
/// is held for the rest of the call so that a concurrent revocation either sees the new lease or
/// makes this mint fail; it never outlives the caller's own lease.
///
/// With `sliding`, the lease is an idle timeout: it lives `sliding` seconds past its last use,
/// never past its `ttl`.
pub async fn mint(
    call: &mut Call,
    st: &AppState,
    target: &Role,
    purpose: MintPurpose,
    ttl: Option<i64>,
    sliding: Option<i64>,
    user: Option<&str>,
) -> Result<Minted> {
    let status = tenant_role_status(call, target).await?;
    check_lease_mint(&MintRequest { caller: &call.who.role, caller_is_lease: call.who.is_bounded(), target, purpose }, status)?;
    if purpose == MintPurpose::UserXToken && user.is_none() {
        return Err(Error::bad("user tokens are minted for a user record only"));
    }
    let revoked = || Error::Forbidden("access denied: the token was revoked".into());
    // An identity token's own expiry bounds what it mints, as a parent lease's does.
    let mut cap = call.who.lease_max_expires_at;
    if let Some(parent) = call.who.lease_id.clone() {
        let live = call.tx.hold_live_lease(&parent).await?.ok_or_else(revoked)?;
        cap = Some(cap.map_or(live.max_expires_at, |c| c.min(live.max_expires_at)));
    }
    if let Some(root) = call.who.lineage_root {
        if !call.tx.hold_live_credential(root).await? {
            return Err(revoked());
        }
    }
    let cfg = st.config();
    let now = now_secs();
    let hard = cap.map_or(now + cfg.lease_max_ttl_s, |c| c.min(now + cfg.lease_max_ttl_s));
    if hard <= now {
        return Err(revoked());
    }
    let duration = ttl.unwrap_or(cfg.lease_default_ttl_s).min(hard - now);
    let lease_id = uuid::Uuid::new_v4().to_string();
    let minted_by_credential = (!call.who.is_lease()).then_some(call.who.credential_id);
    let (expires, idle_cap) = match sliding {
        None => (now + duration, hard),
        Some(idle) => (now + idle.min(duration), now + duration),
    };
    call.tx.insert_lease(&lease_id, target.as_str(), minted_by_credential, user, expires, idle_cap, sliding).await?;
    if let Some(parent) = &call.who.lease_id {
        call.tx.set_lease_parent(&lease_id, parent, call.who.lineage_root).await?;
    }
    call.note("lease_id", lease_id.as_str());
    call.note("role", target.as_str());
    let token = lease::sign(&call.ring, &lease::claims(&lease_id, call.who.tenant_id, &call.who.tenant_name, target.as_str(), now, hard));
    Ok(Minted { token, lease_id, duration, max_duration: idle_cap - now })
}

/// The lease `lease_id` if the caller may manage it: one in the caller's own lineage (minted
/// from its credential, or from what that minted), or any lease for root.
async fn own_lease(call: &mut Call, lease_id: &str) -> Result<crate::store::leases::Lease> {
    let lease = call.tx.lease(lease_id).await?.ok_or_else(|| Error::not_found("lease"))?;
    if !call.who.is_root() && (lease.root_credential_id.is_none() || lease.root_credential_id != call.who.lineage_root) {
        return Err(Error::not_found("lease"));
    }
    Ok(lease)
}

async fn creds(State(st): State<AppState>, claimed: Claimed, Body(req): Body<CredsReq>) -> Result<Json<Value>> {
    let mut call = Call::open(&st, &claimed, "VaultCreds", req.request_metadata).await?;
    let mut token = None;
    let result = async {
        let ttl = parse_ttl(&req.ttl)?;
        let role = Role::parse(req.role.trim())
            .ok_or_else(|| Error::bad(format!("role must be one of {} or a tenant role role:<name>", Role::names(&Role::WORKING))))?;
        let m = mint(&mut call, &st, &role, MintPurpose::Vault, ttl, None, None).await?;
        token = Some(m.token);
        Ok(fields([
            ("lease_id", m.lease_id.into()),
            ("lease_duration", m.duration.into()),
            ("max_lease_duration", m.max_duration.into()),
            ("renewable", (m.duration < m.max_duration).into()),
        ]))
    }
    .await;
    call.finish_revealing(result, "token", token).await
}

async fn renew(State(st): State<AppState>, claimed: Claimed, Body(req): Body<RenewReq>) -> Result<Json<Value>> {
    let mut call = Call::open(&st, &claimed, "VaultRenew", req.request_metadata).await?;
    let result = async {
        call.note("lease_id", req.lease_id.as_str());
        let increment = parse_ttl(&req.increment)?.unwrap_or(st.config().lease_default_ttl_s);
        let lease = own_lease(&mut call, req.lease_id.trim()).await?;
        let now = now_secs();
        if lease.revoked || lease.expires_at <= now {
            return Err(Error::bad("lease is expired or revoked"));
        }
        // Never past the lease's maximum TTL, however often it is renewed.
        let expires = (now + increment).min(lease.max_expires_at);
        call.tx.extend_lease(&lease.lease_id, expires).await?;
        Ok(fields([
            ("lease_id", lease.lease_id.into()),
            ("lease_duration", (expires - now).into()),
            ("max_lease_duration", (lease.max_expires_at - now).into()),
            ("renewable", (expires < lease.max_expires_at).into()),
        ]))
    }
    .await;
    call.finish(result).await
}

async fn revoke(State(st): State<AppState>, claimed: Claimed, Body(req): Body<RevokeReq>) -> Result<Json<Value>> {
    let mut call = Call::open(&st, &claimed, "VaultRevoke", req.request_metadata).await?;
    let result = async {
        call.note("lease_id", req.lease_id.as_str());
        own_lease(&mut call, req.lease_id.trim()).await?;
        call.tx.revoke_lease(req.lease_id.trim()).await?;
        Ok(serde_json::Map::new())
    }
    .await;
    call.finish(result).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn management_rights_are_found_through_wildcards() {
        for p in ["*", "credentials", "cred*", "polic*", "system", "vault", "tenants"] {
            assert!(grants_management(p), "{p}");
        }
        for p in ["users.*", "users.profile.email", "consent", "sessions", "tokens", "audit"] {
            assert!(!grants_management(p), "{p}");
        }
    }

    #[test]
    fn ttls_parse_like_vault_sends_them() {
        assert_eq!(parse_ttl(&Some(json!(600))).unwrap(), Some(600));
        assert_eq!(parse_ttl(&Some(json!("600"))).unwrap(), Some(600));
        assert_eq!(parse_ttl(&Some(json!("10m"))).unwrap(), Some(600));
        assert_eq!(parse_ttl(&Some(json!("1h"))).unwrap(), Some(3600));
        assert_eq!(parse_ttl(&None).unwrap(), None);
        assert!(parse_ttl(&Some(json!(0))).is_err());
        assert!(parse_ttl(&Some(json!("soon"))).is_err());
        assert!(parse_ttl(&Some(json!([1]))).is_err());
    }
}
