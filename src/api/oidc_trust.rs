//! OIDC trusts (our extension, issue 14): a tenant admin (or root) lets applications present
//! identity tokens from a Vault/OpenBao identity engine instead of a Strongroom credential.
//! A trust names the issuer, its JWKS URL, the audience and which value of one claim maps to
//! which working role; verification is `auth::oidc`. A trust is a credential in the lineage
//! sense: made from the caller's credential (revoking that revokes the trust), never granting a
//! role the caller could not create a credential for, and deleted by revoking it.

use std::collections::BTreeMap;

use axum::extract::State;
use axum::routing::post;
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{json, Value};

use super::body::{Body, Metadata, NoArgs};
use super::credentials::only_credentials;
use super::{fields, Call};
use crate::app::AppState;
use crate::auth::{Claimed, Role};
use crate::error::{Error, Result};
use crate::store::oidc::OidcTrust;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/v2/CredentialOidcTrustSet", post(set))
        .route("/v2/CredentialOidcTrustList", post(list))
        .route("/v2/CredentialOidcTrustDelete", post(delete))
}

#[derive(Deserialize)]
struct SetReq {
    #[serde(default)]
    issuer: String,
    #[serde(default)]
    jwksurl: String,
    #[serde(default)]
    audience: String,
    #[serde(default)]
    roleclaim: String,
    #[serde(default)]
    roles: Option<Value>,
    #[serde(default)]
    request_metadata: Metadata,
}

#[derive(Deserialize)]
struct DeleteReq {
    #[serde(default)]
    issuer: String,
    #[serde(default)]
    request_metadata: Metadata,
}

/// Most role mappings one trust holds.
const MAX_ROLES: usize = 32;

/// `value` as an http(s) URL of at most 2048 characters with no credentials in it; plain http
/// only when `http_ok`.
fn url_field(field: &str, value: &str, http_ok: bool) -> Result<String> {
    let v = value.trim();
    let bad = || {
        let schemes = if http_ok { "an http:// or https://" } else { "an https://" };
        Error::bad(format!("{field} must be {schemes} URL"))
    };
    let url = reqwest::Url::parse(v).map_err(|_| bad())?;
    let scheme_ok = url.scheme() == "https" || (http_ok && url.scheme() == "http");
    if v.len() > 2048 || !scheme_ok || url.host_str().is_none() || !url.username().is_empty() || url.password().is_some() {
        return Err(bad());
    }
    Ok(v.to_string())
}

/// A short plain-text field: 1 to `max` visible characters.
fn text_field(field: &str, value: &str, max: usize) -> Result<String> {
    let v = value.trim();
    if v.is_empty() || v.chars().count() > max || v.chars().any(char::is_control) {
        return Err(Error::bad(format!("{field} must be 1 to {max} characters of plain text")));
    }
    Ok(v.to_string())
}

/// The claim-value to role mapping, each role a working role the caller may create a
/// credential for.
fn role_map(caller: &Role, roles: Option<&Value>) -> Result<BTreeMap<String, String>> {
    let shape = || Error::bad(format!("roles must map claim values to roles, e.g. {{\"reader\": \"app-reader\"}}, at most {MAX_ROLES}"));
    let Some(Value::Object(map)) = roles else { return Err(shape()) };
    if map.is_empty() || map.len() > MAX_ROLES {
        return Err(shape());
    }
    let mut out = BTreeMap::new();
    for (value, role) in map {
        let value = text_field("roles: a claim value", value, 128)?;
        let role = role
            .as_str()
            .and_then(|r| Role::parse(r.trim()))
            .filter(|r| Role::WORKING.contains(r))
            .ok_or_else(|| Error::bad(format!("roles: {value:?} must map to one of {}", Role::names(&Role::WORKING))))?;
        if !caller.may_create_credential(&role) {
            return Err(Error::Forbidden(format!("a {caller} credential may not grant {role}")));
        }
        out.insert(value, role.as_str().to_string());
    }
    Ok(out)
}

fn shown(t: &OidcTrust) -> Value {
    json!({
        "credentialid": t.credential_id,
        "issuer": t.issuer,
        "jwksurl": t.jwks_url,
        "audience": t.audience,
        "roleclaim": t.role_claim,
        "roles": t.roles,
        "created": t.created_at,
    })
}

async fn set(State(st): State<AppState>, claimed: Claimed, Body(req): Body<SetReq>) -> Result<Json<Value>> {
    let mut call = Call::open(&st, &claimed, "CredentialOidcTrustSet", req.request_metadata).await?;
    let result = async {
        only_credentials(&call)?;
        let http_ok = st.config().oidc_allow_http;
        let trust = OidcTrust {
            credential_id: 0,
            issuer: url_field("issuer", &req.issuer, true)?,
            jwks_url: url_field("jwksurl", &req.jwksurl, http_ok)?,
            audience: text_field("audience", &req.audience, 256)?,
            role_claim: text_field("roleclaim", &req.roleclaim, 128)?,
            roles: role_map(&call.who.role, req.roles.as_ref())?,
            created_at: 0,
        };
        call.note("issuer", trust.issuer.as_str());
        let caller = call.who.credential_id;
        // Held until commit, as for CredentialCreate: a concurrent revocation of the caller
        // sees the new trust or makes this call fail.
        if !call.tx.hold_live_credential(caller).await? {
            return Err(Error::denied());
        }
        // A new trust for an issuer replaces the old one, and revokes what the old one admitted.
        if let Some(old) = call.tx.oidc_trust(&trust.issuer).await? {
            call.tx.revoke_credential(old.credential_id).await?;
            call.note("replaced", old.credential_id);
        }
        // The trust's credential matches no token: its hash is of a secret nobody keeps.
        let unknowable = zeroize::Zeroizing::new(uuid::Uuid::new_v4().to_string());
        let id = call.tx.insert_credential(&call.ring.credential_hash(&unknowable), "oidc-trust", Some(caller)).await?;
        call.tx.insert_oidc_trust(id, &trust).await?;
        call.note("credentialid", id);
        Ok(fields([("credentialid", id.into()), ("issuer", trust.issuer.into())]))
    }
    .await;
    call.finish(result).await
}

async fn list(State(st): State<AppState>, claimed: Claimed, Body(req): Body<NoArgs>) -> Result<Json<Value>> {
    let mut call = Call::open(&st, &claimed, "CredentialOidcTrustList", req.request_metadata).await?;
    let result = async {
        let trusts = call.tx.oidc_trusts().await?;
        Ok(fields([("total", trusts.len().into()), ("rows", trusts.iter().map(shown).collect::<Vec<_>>().into())]))
    }
    .await;
    call.finish(result).await
}

async fn delete(State(st): State<AppState>, claimed: Claimed, Body(req): Body<DeleteReq>) -> Result<Json<Value>> {
    let mut call = Call::open(&st, &claimed, "CredentialOidcTrustDelete", req.request_metadata).await?;
    let result = async {
        only_credentials(&call)?;
        let issuer = req.issuer.trim();
        call.note("issuer", issuer);
        let trust = call.tx.oidc_trust(issuer).await?.ok_or_else(|| Error::not_found("oidc trust"))?;
        call.tx.revoke_credential(trust.credential_id).await?;
        Ok(fields([("credentialid", trust.credential_id.into())]))
    }
    .await;
    call.finish(result).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_https_unless_allowed_and_carry_no_credentials() {
        assert!(url_field("jwksurl", "https://bao.example/v1/identity/oidc/.well-known/keys", false).is_ok());
        assert!(url_field("jwksurl", "http://127.0.0.1:8200/keys", false).is_err());
        assert!(url_field("jwksurl", "http://127.0.0.1:8200/keys", true).is_ok());
        assert!(url_field("jwksurl", "https://u:p@bao.example/keys", true).is_err());
        assert!(url_field("jwksurl", "file:///etc/passwd", true).is_err());
        assert!(url_field("jwksurl", "keys", true).is_err());
    }

    #[test]
    fn roles_map_to_working_roles_the_caller_may_grant() {
        let ok = role_map(&Role::TenantAdmin, Some(&json!({"reader": "app-reader", "writer": "app-writer"}))).unwrap();
        assert_eq!(ok.get("writer").map(String::as_str), Some("app-writer"));
        assert!(role_map(&Role::TenantAdmin, Some(&json!({"x": "root"}))).is_err());
        assert!(role_map(&Role::TenantAdmin, Some(&json!({"x": "tenant-admin"}))).is_err());
        assert!(role_map(&Role::TenantAdmin, Some(&json!({}))).is_err());
        assert!(role_map(&Role::TenantAdmin, Some(&json!(["app-reader"]))).is_err());
        assert!(role_map(&Role::TenantAdmin, None).is_err());
        assert!(matches!(role_map(&Role::AppWriter, Some(&json!({"x": "app-reader"}))), Err(Error::Forbidden(_))));
    }
}
