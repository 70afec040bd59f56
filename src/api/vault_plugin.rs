//! The HashiCorp Vault plugin endpoint (design page): a secrets-engine plugin holding a
//! `vault-plugin` credential reads creds (mint), renews and revokes leases. Tokens are JWTs
//! bound to a lease row; see `auth::lease`. The contract a plugin follows: docs/vault-plugin.md.

use axum::extract::State;
use axum::routing::post;
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::Value;

use super::body::{Body, Metadata};
use super::{fields, Call};
use crate::app::AppState;
use crate::auth::{lease, Claimed};
use crate::error::{Error, Result};
use crate::store::now_secs;

pub fn routes() -> Router<AppState> {
    Router::new().route("/v1/vault/creds", post(creds)).route("/v1/vault/renew", post(renew)).route("/v1/vault/revoke", post(revoke))
}

/// Roles a lease may carry: the working roles, never an administrator's.
pub const LEASABLE: &[&str] = &["dpo", "auditor", "app-writer", "app-reader"];

/// A TTL as Vault sends it: seconds (number or string) or a duration string ("10m", "1h").
pub fn parse_ttl(v: &Option<Value>) -> Result<Option<i64>> {
    match super::when::parse_when("ttl", v)? {
        None => Ok(None),
        Some(super::when::When::In(secs)) => Ok(Some(secs)),
        Some(super::when::When::At(_)) => Err(Error::bad("ttl must be a duration, not a point in time")),
    }
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

/// Mints a lease for `role` in the call's tenant (`user`: the record a user-self token is bound
/// to); returns the token, the lease id and its duration.
/// With `sliding`, the lease is an idle timeout: it lives `sliding` seconds past its last use,
/// never past its `ttl`.
pub async fn mint(
    call: &mut Call,
    st: &AppState,
    role: &str,
    ttl: Option<i64>,
    sliding: Option<i64>,
    user: Option<&str>,
) -> Result<(String, String, i64)> {
    let custom = role.starts_with(crate::auth::policy::CUSTOM_PREFIX);
    if role == "user-self" && user.is_none() || role != "user-self" && !custom && !LEASABLE.contains(&role) {
        return Err(Error::bad(format!("role must be one of {}", LEASABLE.join(", "))));
    }
    let cfg = st.config();
    let now = now_secs();
    let duration = ttl.unwrap_or(cfg.lease_default_ttl_s).min(cfg.lease_max_ttl_s);
    let hard = now + cfg.lease_max_ttl_s;
    let lease_id = uuid::Uuid::new_v4().to_string();
    let credential = (call.who.credential_id > 0).then_some(call.who.credential_id);
    let (expires, cap) = match sliding {
        None => (now + duration, hard),
        Some(idle) => (now + idle.min(duration), now + duration),
    };
    call.tx.insert_lease(&lease_id, role, credential, user, expires, cap, sliding).await?;
    call.note("lease_id", lease_id.as_str());
    call.note("role", role);
    let token = lease::sign(&call.ring, &lease::claims(&lease_id, call.who.tenant_id, &call.who.tenant_name, role, now, hard));
    Ok((token, lease_id, duration))
}

async fn creds(State(st): State<AppState>, claimed: Claimed, Body(req): Body<CredsReq>) -> Result<Json<Value>> {
    let mut call = Call::open(&st, &claimed, "VaultCreds", req.request_metadata).await?;
    let mut token = None;
    let result = async {
        let ttl = parse_ttl(&req.ttl)?;
        let (t, lease_id, duration) = mint(&mut call, &st, req.role.trim(), ttl, None, None).await?;
        token = Some(t);
        Ok(fields([("lease_id", lease_id.into()), ("lease_duration", duration.into()), ("renewable", true.into())]))
    }
    .await;
    call.finish_revealing(result, "token", token).await
}

async fn renew(State(st): State<AppState>, claimed: Claimed, Body(req): Body<RenewReq>) -> Result<Json<Value>> {
    let mut call = Call::open(&st, &claimed, "VaultRenew", req.request_metadata).await?;
    let result = async {
        call.note("lease_id", req.lease_id.as_str());
        let increment = parse_ttl(&req.increment)?.unwrap_or(st.config().lease_default_ttl_s);
        let lease = call.tx.lease(req.lease_id.trim()).await?.ok_or_else(|| Error::not_found("lease"))?;
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
        if call.tx.lease(req.lease_id.trim()).await?.is_none() {
            return Err(Error::not_found("lease"));
        }
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
