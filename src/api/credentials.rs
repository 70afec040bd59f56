//! Credentials for the built-in roles: a tenant admin (or root) mints a token for an application
//! or an officer of its own tenant, shown once and stored only as a keyed hash; and revokes it.

use axum::extract::State;
use axum::routing::post;
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::Value;
use zeroize::Zeroizing;

use super::body::{int_or_string, Body, Metadata};
use super::{fields, Call};
use crate::app::AppState;
use crate::auth::{Claimed, Role};
use crate::error::{Error, Result};

pub fn routes() -> Router<AppState> {
    Router::new().route("/v1/credentials/create", post(create)).route("/v1/credentials/revoke", post(revoke))
}

#[derive(Deserialize)]
struct CreateReq {
    role: String,
    #[serde(default)]
    request_metadata: Metadata,
}

#[derive(Deserialize)]
struct RevokeReq {
    #[serde(default, deserialize_with = "int_or_string")]
    credentialid: Option<i64>,
    #[serde(default)]
    request_metadata: Metadata,
}

async fn create(State(st): State<AppState>, claimed: Claimed, Body(req): Body<CreateReq>) -> Result<Json<Value>> {
    let mut call = Call::open(&st, &claimed, "CredentialCreate", req.request_metadata).await?;
    let mut token = None;
    let result = async {
        let role = Role::parse(req.role.trim())
            .filter(|r| Role::CREDENTIAL_KINDS.contains(r))
            .ok_or_else(|| Error::bad(format!("role must be one of {}", Role::names(&Role::CREDENTIAL_KINDS))))?;
        let caller = call.who.credential_id;
        only_credentials(&call)?;
        if !call.who.role.may_create_credential(&role) {
            return Err(Error::Forbidden(format!("a {} credential may not create a {role} credential", call.who.role)));
        }
        // Held until commit: a concurrent revocation of the caller either sees the new
        // credential (and revokes it too) or makes this call fail.
        if !call.tx.hold_live_credential(caller).await? {
            return Err(Error::denied());
        }
        call.note("role", role.as_str());
        let t = Zeroizing::new(uuid::Uuid::new_v4().to_string());
        let id = call.tx.insert_credential(&call.ring.credential_hash(&t), role.as_str(), Some(caller)).await?;
        call.note("credentialid", id);
        token = Some(t);
        Ok(fields([("credentialid", id.into()), ("role", role.as_str().into())]))
    }
    .await;
    call.finish_revealing(result, "token", token.map(|t| t.to_string())).await
}

async fn revoke(State(st): State<AppState>, claimed: Claimed, Body(req): Body<RevokeReq>) -> Result<Json<Value>> {
    let mut call = Call::open(&st, &claimed, "CredentialRevoke", req.request_metadata).await?;
    let result = async {
        let id = req.credentialid.filter(|i| *i > 0).ok_or_else(|| Error::bad("credentialid must be a positive integer"))?;
        call.note("credentialid", id);
        only_credentials(&call)?;
        if id == call.who.credential_id {
            return Err(Error::bad("a credential cannot revoke itself"));
        }
        if !call.tx.revoke_credential(id).await? {
            return Err(Error::not_found("credential"));
        }
        Ok(serde_json::Map::new())
    }
    .await;
    call.finish(result).await
}

/// Credentials are created and revoked with credentials only: never with a lease (an xtoken, a
/// Vault lease, a portal session), which would outlive its own expiry through what it created.
pub(super) fn only_credentials(call: &Call) -> Result<()> {
    if call.who.is_bounded() {
        return Err(Error::Forbidden("credentials are created and revoked with a credential, not a leased or identity token".into()));
    }
    Ok(())
}
