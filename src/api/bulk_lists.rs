//! BulkListUsers, BulkListAllUsers, BulkListGroupUsers, BulkListAllAuditEvents, UserSearch: the
//! listings of one tenant. Each checks a live unlock uuid first and masks every profile it
//! returns for the caller's role.

use axum::extract::State;
use axum::routing::post;
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{json, Value};

use super::body::{int_or_string, Body, Metadata};
use super::users::MAX_BULK;
use super::{fields, Call};
use crate::app::AppState;
use crate::auth::Claimed;
use crate::error::{Error, Result};
use crate::keys::blind::IndexMode;
use crate::keys::keyring::TenantKeys;
use crate::records::{open_current, user_key, Mode};
use crate::store::users::UserRow;
use crate::store::TenantTx;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/v2/BulkListUsers", post(list_users))
        .route("/v2/BulkListAllUsers", post(list_all_users))
        .route("/v2/BulkListGroupUsers", post(list_group_users))
        .route("/v2/BulkListAllAuditEvents", post(list_all_audit_events))
        .route("/v2/UserSearch", post(user_search))
}

#[derive(Deserialize)]
struct Lookup {
    mode: String,
    identity: String,
}

#[derive(Deserialize)]
struct ListUsersReq {
    #[serde(default)]
    unlockuuid: String,
    #[serde(default)]
    users: Option<Vec<Lookup>>,
    #[serde(default)]
    request_metadata: Metadata,
}

#[derive(Deserialize)]
struct PageReq {
    #[serde(default)]
    unlockuuid: String,
    #[serde(default, deserialize_with = "int_or_string")]
    offset: Option<i64>,
    #[serde(default, deserialize_with = "int_or_string")]
    limit: Option<i64>,
    #[serde(default)]
    groupid: Option<Value>,
    #[serde(default)]
    groupname: Option<Value>,
    #[serde(default)]
    request_metadata: Metadata,
}

#[derive(Deserialize)]
struct SearchReq {
    #[serde(default)]
    unlockuuid: String,
    #[serde(default)]
    identity: String,
    #[serde(default)]
    request_metadata: Metadata,
}

/// A user as bulk listings show it (UserGet's shape), its profile masked for the caller.
async fn user_json(call: &mut Call, user: &UserRow) -> Result<Value> {
    let key = user_key(&call.keys, user)?;
    let mut profile = open_current(&call.keys, &key, user)?;
    call.mask_profile(&mut profile).await;
    let grouproles = super::groups::grouproles(&mut call.tx, user).await?;
    let r = user.retention;
    Ok(json!({
        "token": user.token,
        "profile": profile,
        "version": user.version,
        "finaltime": r.final_at.unwrap_or(0),
        "slidingtime": r.sliding_secs.unwrap_or(0),
        "expirationtime": r.expires_at.unwrap_or(0),
        "grouproles": grouproles,
    }))
}

/// Every user of `tx`'s tenant that `identity` names under one of `modes`, each once, in the
/// order found. An identity that is no valid value of a mode matches nothing under it.
pub(super) async fn find_in(tx: &mut TenantTx, keys: &TenantKeys, modes: &[Mode], identity: &str) -> Result<Vec<UserRow>> {
    let identity = identity.trim();
    let mut found: Vec<UserRow> = Vec::new();
    if identity.is_empty() {
        return Ok(found);
    }
    for mode in modes {
        let user = match mode {
            Mode::Token => tx.user_by_token(identity).await?,
            Mode::Index(m) => match keys.index(*m, identity) {
                Some(hash) => tx.user_by_index(*m, &hash).await?,
                None => None,
            },
        };
        if let Some(u) = user {
            if !found.iter().any(|f| f.id == u.id) {
                found.push(u);
            }
        }
    }
    Ok(found)
}

/// Every lookup mode: a token, then each blind-index mode.
pub(super) fn all_modes() -> Vec<Mode> {
    std::iter::once(Mode::Token).chain(IndexMode::ALL.into_iter().map(Mode::Index)).collect()
}

/// Records whose profiles a bulk call returned (their tokens, not their data): the audit event
/// then says exactly whose data left the vault.
fn note_returned(call: &mut Call, rows: &[Value]) {
    let tokens: Vec<Value> = rows.iter().map(|r| r["token"].clone()).collect();
    call.note("tokens", Value::Array(tokens));
}

async fn list_users(State(st): State<AppState>, claimed: Claimed, Body(req): Body<ListUsersReq>) -> Result<Json<Value>> {
    let mut call = Call::open(&st, &claimed, "BulkListUsers", req.request_metadata).await?;
    let result = async {
        call.require_unlock(&req.unlockuuid).await?;
        let lookups = req.users.as_deref().ok_or_else(|| Error::bad("missing field `users`"))?;
        if lookups.is_empty() || lookups.len() > MAX_BULK {
            return Err(Error::bad(format!("users must hold 1 to {MAX_BULK} entries")));
        }
        let modes = lookups.iter().map(|l| Mode::parse(&l.mode)).collect::<Result<Vec<_>>>()?;
        let mut seen = std::collections::HashSet::new();
        let mut rows = Vec::new();
        for (l, mode) in lookups.iter().zip(modes) {
            for user in find_in(&mut call.tx, &call.keys, &[mode], &l.identity).await? {
                if seen.insert(user.id) {
                    rows.push(user_json(&mut call, &user).await?);
                }
            }
        }
        call.note("requested", lookups.len());
        call.note("found", rows.len());
        note_returned(&mut call, &rows);
        Ok(fields([("total", rows.len().into()), ("rows", Value::Array(rows))]))
    }
    .await;
    call.finish(result).await
}

async fn list_all_users(State(st): State<AppState>, claimed: Claimed, Body(req): Body<PageReq>) -> Result<Json<Value>> {
    let mut call = Call::open(&st, &claimed, "BulkListAllUsers", req.request_metadata).await?;
    let result = async {
        call.require_unlock(&req.unlockuuid).await?;
        let (offset, limit) = super::audit::page(req.offset, req.limit)?;
        let (total, users) = call.tx.list_users(offset, limit).await?;
        let mut rows = Vec::with_capacity(users.len());
        for u in &users {
            rows.push(user_json(&mut call, u).await?);
        }
        call.note("offset", offset);
        call.note("count", rows.len());
        note_returned(&mut call, &rows);
        Ok(fields([("total", total.into()), ("rows", Value::Array(rows))]))
    }
    .await;
    call.finish(result).await
}

async fn list_group_users(State(st): State<AppState>, claimed: Claimed, Body(req): Body<PageReq>) -> Result<Json<Value>> {
    let mut call = Call::open(&st, &claimed, "BulkListGroupUsers", req.request_metadata).await?;
    let result = async {
        call.require_unlock(&req.unlockuuid).await?;
        let (offset, limit) = super::audit::page(req.offset, req.limit)?;
        let membership = super::groups::requested(&req.groupid, &req.groupname, &None, &None)?
            .ok_or_else(|| Error::bad("groupid or groupname is required"))?;
        let (group, _) = super::groups::resolve(&mut call.tx, &membership).await?;
        // Let through by a group-relative rule, the caller sees the members holding the roles
        // it names, with what it grants of each.
        let seen = super::relations::check_group(&mut call, group.id).await?;
        let roles: Option<Vec<String>> = seen.as_ref().map(|s| s.keys().cloned().collect());
        let (total, users) = call.tx.list_group_users(group.id, roles.as_deref(), offset, limit).await?;
        let mut rows = Vec::with_capacity(users.len());
        for (u, rolename) in &users {
            let key = user_key(&call.keys, u)?;
            let mut profile = open_current(&call.keys, &key, u)?;
            match (&seen, rolename) {
                (Some(seen), Some(role)) => super::relations::apply_views(&mut profile, seen.get(role).map_or(&[][..], Vec::as_slice)),
                _ => call.mask_profile(&mut profile).await,
            }
            rows.push(json!({"token": u.token, "profile": profile, "rolename": rolename}));
        }
        call.note("groupid", group.id);
        call.note("count", rows.len());
        note_returned(&mut call, &rows);
        Ok(fields([("total", total.into()), ("rows", Value::Array(rows))]))
    }
    .await;
    call.finish(result).await
}

async fn list_all_audit_events(State(st): State<AppState>, claimed: Claimed, Body(req): Body<PageReq>) -> Result<Json<Value>> {
    let mut call = Call::open(&st, &claimed, "BulkListAllAuditEvents", req.request_metadata).await?;
    let result = async {
        call.require_unlock(&req.unlockuuid).await?;
        let (offset, limit) = super::audit::page(req.offset, req.limit)?;
        let (total, events) = call.tx.list_audit_events(offset, limit).await?;
        let rows: Vec<Value> = events
            .iter()
            .map(|e| {
                let t = std::time::UNIX_EPOCH + std::time::Duration::from_secs(e.created_at.max(0) as u64);
                json!({"auditeventuuid": e.uuid, "eventtype": e.event_type, "timestamp": humantime::format_rfc3339_seconds(t).to_string(), "more": false})
            })
            .collect();
        call.note("offset", offset);
        call.note("count", rows.len());
        Ok(fields([("total", total.into()), ("rows", Value::Array(rows))]))
    }
    .await;
    call.finish(result).await
}

async fn user_search(State(st): State<AppState>, claimed: Claimed, Body(req): Body<SearchReq>) -> Result<Json<Value>> {
    let mut call = Call::open(&st, &claimed, "UserSearch", req.request_metadata).await?;
    let result = async {
        call.require_unlock(&req.unlockuuid).await?;
        if req.identity.trim().is_empty() {
            return Err(Error::bad("identity must not be empty"));
        }
        let users = find_in(&mut call.tx, &call.keys, &all_modes(), &req.identity).await?;
        let mut rows = Vec::with_capacity(users.len());
        for u in &users {
            rows.push(user_json(&mut call, u).await?);
        }
        call.note("found", rows.len());
        note_returned(&mut call, &rows);
        Ok(fields([("total", rows.len().into()), ("rows", Value::Array(rows))]))
    }
    .await;
    call.finish(result).await
}
