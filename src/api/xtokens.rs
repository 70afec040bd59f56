//! XTokenCreateForRole and XTokenCreateForUser: short-lived tokens on the same leases as the
//! Vault plugin endpoint. A role xtoken carries a working role; a user xtoken (role user-self)
//! reaches its own record only and can neither update nor delete it directly.

use axum::extract::State;
use axum::routing::post;
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::Value;

use super::body::{Body, Metadata};
use super::vault_plugin::mint;
use super::when::parse_duration;
use super::{fields, Call};
use crate::app::AppState;
use crate::auth::roles::MintPurpose;
use crate::auth::Claimed;
use crate::auth::Role;
use crate::error::{Error, Result};

pub fn routes() -> Router<AppState> {
    Router::new().route("/v2/XTokenCreateForRole", post(for_role)).route("/v2/XTokenCreateForUser", post(for_user))
}

#[derive(Deserialize)]
struct RoleReq {
    #[serde(default)]
    roleid: Option<Value>,
    #[serde(default)]
    rolename: Option<String>,
    #[serde(default)]
    finaltime: Option<Value>,
    #[serde(default)]
    slidingtime: Option<Value>,
    #[serde(default)]
    request_metadata: Metadata,
}

#[derive(Deserialize)]
struct UserReq {
    mode: String,
    identity: String,
    #[serde(default)]
    finaltime: Option<Value>,
    #[serde(default)]
    slidingtime: Option<Value>,
    #[serde(default)]
    request_metadata: Metadata,
}

async fn for_role(State(st): State<AppState>, claimed: Claimed, Body(req): Body<RoleReq>) -> Result<Json<Value>> {
    let mut call = Call::open(&st, &claimed, "XTokenCreateForRole", req.request_metadata).await?;
    let mut token = None;
    let result = async {
        let idle = parse_duration("slidingtime", &req.slidingtime)?;
        let roleid = match &req.roleid {
            None | Some(Value::Null) => None,
            Some(Value::Number(n)) => Some(n.as_i64().ok_or_else(|| Error::bad("roleid must be an integer"))?),
            Some(Value::String(s)) => Some(s.trim().parse().map_err(|_| Error::bad("roleid must be an integer"))?),
            Some(_) => return Err(Error::bad("roleid must be an integer")),
        };
        let rolename = req.rolename.as_deref().map(str::trim).filter(|r| !r.is_empty());
        // A tenant-defined role (by id or name) wins over a built-in name.
        let role = match call.tx.find_role(roleid, rolename).await? {
            Some(r) => Role::tenant(&r.name),
            None if roleid.is_some() => return Err(Error::not_found("role")),
            None => {
                let name = rolename.ok_or_else(|| Error::bad("give roleid or rolename"))?;
                Role::parse(name).ok_or_else(|| Error::bad("no such role in this tenant"))?
            }
        };
        let m = mint(&mut call, &st, &role, MintPurpose::RoleXToken, parse_duration("finaltime", &req.finaltime)?, idle, None).await?;
        token = Some(m.token);
        Ok(fields([("lease_id", m.lease_id.into()), ("ttl", m.duration.into())]))
    }
    .await;
    call.finish_revealing(result, "xtoken", token).await
}

async fn for_user(State(st): State<AppState>, claimed: Claimed, Body(req): Body<UserReq>) -> Result<Json<Value>> {
    let mut call = Call::open(&st, &claimed, "XTokenCreateForUser", req.request_metadata).await?;
    let mut token = None;
    let result = async {
        let idle = parse_duration("slidingtime", &req.slidingtime)?;
        let (user, _) = super::users::find_user(&mut call, &req.mode, &req.identity).await?;
        let m = mint(
            &mut call,
            &st,
            &Role::UserSelf,
            MintPurpose::UserXToken,
            parse_duration("finaltime", &req.finaltime)?,
            idle,
            Some(&user.token),
        )
        .await?;
        token = Some(m.token);
        Ok(fields([("lease_id", m.lease_id.into()), ("ttl", m.duration.into()), ("token", user.token.into())]))
    }
    .await;
    call.finish_revealing(result, "xtoken", token).await
}
