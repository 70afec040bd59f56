//! User requests and DPO approval: UserUpdateRequest, UserPatchRequest, UserDeleteRequest,
//! AppdataUpdateRequest, AgreementCancelRequest file a change to one user's data; UserRequestGet,
//! UserRequestApprove, UserRequestCancel, UserRequestListUserRequests and BulkListAllUserRequests
//! read and decide them.
//!
//! Filing checks the change exactly as the direct call would, by running that call's own code
//! inside a savepoint and undoing it; the change is then stored sealed under the user's key.
//! Approval runs the same code for real in the approving transaction, so a change that no longer
//! applies (say, a duplicate email) fails the approval and leaves the request pending. A request
//! is decided once; it goes with its user.

use std::sync::Arc;

use axum::extract::State;
use axum::routing::post;
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{json, Map, Value};

use super::audit::page;
use super::body::UserLookup as UserReq;
use super::body::{int_or_string, Body, Metadata};
use super::users::{find_user, ChangeOrigin};
use super::{fields, Call};
use crate::app::AppState;
use crate::auth::Claimed;
use crate::error::{Error, Result};
use crate::keys::envelope::Key;
use crate::store::requests::{RequestRow, RequestSummary};
use crate::store::users::UserRow;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/v2/UserUpdateRequest", post(file_update))
        .route("/v2/UserPatchRequest", post(file_patch))
        .route("/v2/UserDeleteRequest", post(file_delete))
        .route("/v2/AppdataUpdateRequest", post(file_appdata_update))
        .route("/v2/AgreementCancelRequest", post(file_agreement_cancel))
        .route("/v2/UserRequestGet", post(request_get))
        .route("/v2/UserRequestApprove", post(request_approve))
        .route("/v2/UserRequestCancel", post(request_cancel))
        .route("/v2/UserRequestListUserRequests", post(request_list_user))
        .route("/v2/BulkListAllUserRequests", post(request_list_all))
}

/// Table names in the additional data of the sealed change and reason.
const CHANGES: &str = "user_requests";
const REASONS: &str = "user_requests.reason";
/// The savepoint a filing's trial run is undone to.
const TRIAL: &str = "request_trial";
/// Longest decision reason.
const MAX_REASON: usize = 4096;

/// What a request asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Update,
    Patch,
    Delete,
    AppdataUpdate,
    AgreementCancel,
}

impl Kind {
    fn as_str(self) -> &'static str {
        match self {
            Kind::Update => "update",
            Kind::Patch => "patch",
            Kind::Delete => "delete",
            Kind::AppdataUpdate => "appdata-update",
            Kind::AgreementCancel => "agreement-cancel",
        }
    }

    fn parse(s: &str) -> Result<Kind> {
        Ok(match s {
            "update" => Kind::Update,
            "patch" => Kind::Patch,
            "delete" => Kind::Delete,
            "appdata-update" => Kind::AppdataUpdate,
            "agreement-cancel" => Kind::AgreementCancel,
            other => return Err(Error::Internal(anyhow::anyhow!("stored request of unknown type {other}"))),
        })
    }
}

// ---------------------------------------------------------------- request bodies

#[derive(Deserialize)]
struct UpdateReq {
    mode: String,
    identity: String,
    profile: Value,
    #[serde(default)]
    request_metadata: Metadata,
}

#[derive(Deserialize)]
struct PatchReq {
    mode: String,
    identity: String,
    patch: json_patch::Patch,
    #[serde(default)]
    request_metadata: Metadata,
}

#[derive(Deserialize)]
struct AppdataReq {
    mode: String,
    identity: String,
    appname: String,
    appdata: Value,
    #[serde(default)]
    request_metadata: Metadata,
}

#[derive(Deserialize)]
struct AgreementReq {
    mode: String,
    identity: String,
    brief: String,
    #[serde(default)]
    request_metadata: Metadata,
}

#[derive(Deserialize)]
struct UuidReq {
    requestuuid: String,
    #[serde(default)]
    request_metadata: Metadata,
}

#[derive(Deserialize)]
struct DecideReq {
    requestuuid: String,
    #[serde(default)]
    reason: Option<String>,
    #[serde(default)]
    request_metadata: Metadata,
}

#[derive(Deserialize)]
struct ListReq {
    mode: String,
    identity: String,
    #[serde(default, deserialize_with = "int_or_string")]
    offset: Option<i64>,
    #[serde(default, deserialize_with = "int_or_string")]
    limit: Option<i64>,
    #[serde(default)]
    request_metadata: Metadata,
}

#[derive(Deserialize)]
struct BulkReq {
    #[serde(default)]
    unlockuuid: String,
    #[serde(default, deserialize_with = "int_or_string")]
    offset: Option<i64>,
    #[serde(default, deserialize_with = "int_or_string")]
    limit: Option<i64>,
    #[serde(default)]
    request_metadata: Metadata,
}

// ---------------------------------------------------------------- applying a change

fn text(change: &Value, field: &str) -> Result<String> {
    change[field].as_str().map(str::to_string).ok_or_else(|| Error::Internal(anyhow::anyhow!("stored request lacks `{field}`")))
}

/// Runs the direct call's own code for `change` on the user named by `mode`/`identity`.
async fn apply(call: &mut Call, kind: Kind, mode: &str, identity: &str, change: &Value) -> Result<Map<String, Value>> {
    match kind {
        Kind::Update => super::users::update_core(call, ChangeOrigin::Request, mode, identity, &change["profile"]).await,
        Kind::Patch => {
            let patch: json_patch::Patch = serde_json::from_value(change["patch"].clone())?;
            super::users::patch_core(call, ChangeOrigin::Request, mode, identity, &patch).await
        }
        Kind::Delete => super::users::delete_core(call, mode, identity).await,
        Kind::AppdataUpdate => super::appdata::update_core(call, mode, identity, &text(change, "appname")?, &change["appdata"]).await,
        Kind::AgreementCancel => super::consent::agreement_cancel_core(call, mode, identity, &text(change, "brief")?).await,
    }
}

fn seal(call: &Call, key: &Key, table: &str, uuid: &str, value: &Value) -> Result<Vec<u8>> {
    let plain = zeroize::Zeroizing::new(serde_json::to_vec(value)?);
    Ok(call.keys.seal_with(key, table, uuid, &plain))
}

fn open(call: &Call, key: &Key, table: &str, uuid: &str, blob: &[u8]) -> Result<Value> {
    let plain = call.keys.open_with(key, table, uuid, blob)?;
    Ok(serde_json::from_slice(&plain)?)
}

/// Files `change` for the user named by `mode`/`identity`: the user must exist (404) and the
/// change must pass the direct call's checks (400, 404, 409), tried and undone here.
async fn file(call: &mut Call, kind: Kind, mode: &str, identity: &str, change: Value) -> Result<Map<String, Value>> {
    call.tx.savepoint(TRIAL).await?;
    let tried = apply(call, kind, mode, identity, &change).await;
    call.tx.rollback_to(TRIAL).await?;
    tried?;
    // The trial's version number was never stored.
    call.audit.details.remove("version");
    let (user, key) = find_user(call, mode, identity).await?;
    let mut change = change;
    if matches!(kind, Kind::Update | Kind::Patch) {
        // The profile version the change was filed against: approving it later applies it only
        // to the record the approver can still see (see `decide`).
        change["version"] = user.version.into();
    }
    let uuid = uuid::Uuid::new_v4().to_string();
    let blob = seal(call, &key, CHANGES, &uuid, &change)?;
    let actor = call.who.actor();
    call.tx.insert_request(&uuid, user.id, kind.as_str(), &blob, &actor).await?;
    call.note("requestuuid", uuid.as_str());
    call.note("requesttype", kind.as_str());
    Ok(fields([("requestuuid", uuid.into())]))
}

async fn file_update(State(st): State<AppState>, claimed: Claimed, Body(req): Body<UpdateReq>) -> Result<Json<Value>> {
    let mut call = Call::open(&st, &claimed, "UserUpdateRequest", req.request_metadata).await?;
    let result = file(&mut call, Kind::Update, &req.mode, &req.identity, json!({"profile": req.profile})).await;
    call.finish(result).await
}

async fn file_patch(State(st): State<AppState>, claimed: Claimed, Body(req): Body<PatchReq>) -> Result<Json<Value>> {
    let mut call = Call::open(&st, &claimed, "UserPatchRequest", req.request_metadata).await?;
    let result = async {
        let patch = serde_json::to_value(&req.patch)?;
        file(&mut call, Kind::Patch, &req.mode, &req.identity, json!({"patch": patch})).await
    }
    .await;
    call.finish(result).await
}

async fn file_delete(State(st): State<AppState>, claimed: Claimed, Body(req): Body<UserReq>) -> Result<Json<Value>> {
    let mut call = Call::open(&st, &claimed, "UserDeleteRequest", req.request_metadata).await?;
    let result = file(&mut call, Kind::Delete, &req.mode, &req.identity, json!({})).await;
    call.finish(result).await
}

async fn file_appdata_update(State(st): State<AppState>, claimed: Claimed, Body(req): Body<AppdataReq>) -> Result<Json<Value>> {
    let mut call = Call::open(&st, &claimed, "AppdataUpdateRequest", req.request_metadata).await?;
    let change = json!({"appname": req.appname, "appdata": req.appdata});
    let result = file(&mut call, Kind::AppdataUpdate, &req.mode, &req.identity, change).await;
    call.finish(result).await
}

async fn file_agreement_cancel(State(st): State<AppState>, claimed: Claimed, Body(req): Body<AgreementReq>) -> Result<Json<Value>> {
    let mut call = Call::open(&st, &claimed, "AgreementCancelRequest", req.request_metadata).await?;
    let result = file(&mut call, Kind::AgreementCancel, &req.mode, &req.identity, json!({"brief": req.brief})).await;
    call.finish(result).await
}

// ---------------------------------------------------------------- reading and deciding

/// The request `uuid` of this tenant with its user and the user's key, or 404. The call's audit
/// event is bound to the user.
async fn find_request(call: &mut Call, uuid: &str, lock: bool) -> Result<(RequestRow, UserRow, Arc<Key>)> {
    let uuid = uuid.trim();
    if uuid.is_empty() {
        return Err(Error::bad("requestuuid must not be empty"));
    }
    call.note("requestuuid", uuid);
    let row = call.tx.request(uuid, lock).await?.ok_or_else(|| Error::not_found("request"))?;
    let (user, key) = find_user(call, "token", &row.token).await?;
    call.note("requesttype", row.kind.as_str());
    Ok((row, user, key))
}

fn check_reason(reason: &Option<String>) -> Result<()> {
    match reason {
        Some(r) if r.len() > MAX_REASON => Err(Error::bad(format!("reason must be at most {MAX_REASON} bytes"))),
        _ => Ok(()),
    }
}

async fn request_get(State(st): State<AppState>, claimed: Claimed, Body(req): Body<UuidReq>) -> Result<Json<Value>> {
    let mut call = Call::open(&st, &claimed, "UserRequestGet", req.request_metadata).await?;
    let result = async {
        let (row, _, key) = find_request(&mut call, &req.requestuuid, false).await?;
        let mut change = open(&call, &key, CHANGES, &row.uuid, &row.change)?;
        // The record version a profile change was filed against, shown beside the change.
        let filed_version = change.as_object_mut().and_then(|o| o.remove("version")).unwrap_or(Value::Null);
        let reason = match &row.reason {
            Some(blob) => open(&call, &key, REASONS, &row.uuid, blob)?,
            None => Value::Null,
        };
        let request = json!({
            "requestuuid": row.uuid,
            "requesttype": row.kind,
            "status": row.status,
            "token": row.token,
            "change": change,
            "version": filed_version,
            "creationtime": row.created_at,
            "filedby": row.filed_by,
            "reason": reason,
            "decidedby": row.decided_by,
            "decisiontime": row.decided_at,
        });
        Ok(fields([("request", request)]))
    }
    .await;
    call.finish(result).await
}

/// Approves (`apply`) or cancels a pending request: 409 once decided. An approval that fails to
/// apply fails the call, so nothing of it stays and the request remains pending.
async fn decide(call: &mut Call, req: &DecideReq, approve: bool) -> Result<Map<String, Value>> {
    check_reason(&req.reason)?;
    let (row, user, key) = find_request(call, &req.requestuuid, true).await?;
    if let Some(r) = &req.reason {
        call.note("reason", r.as_str());
    }
    if row.status != "pending" {
        return Err(Error::Conflict(format!("request is already {}", row.status)));
    }
    let reason = req.reason.as_ref().map(|r| seal(call, &key, REASONS, &row.uuid, &Value::String(r.clone()))).transpose()?;
    let actor = call.who.actor();
    let status = if approve { "approved" } else { "cancelled" };
    if !call.tx.decide_request(&row.uuid, status, &actor, reason.as_deref()).await? {
        return Err(Error::Conflict("request is already decided".into()));
    }
    if approve {
        let change = open(call, &key, CHANGES, &row.uuid, &row.change)?;
        if let Some(filed) = change.get("version").and_then(Value::as_i64) {
            if filed != i64::from(user.version) {
                return Err(Error::Conflict(format!(
                    "the record changed since this request was filed (version {filed}, now {}): cancel it and file it again",
                    user.version
                )));
            }
        }
        apply(call, Kind::parse(&row.kind)?, "token", &user.token, &change).await?;
    }
    call.note("status", status);
    Ok(Map::new())
}

async fn request_approve(State(st): State<AppState>, claimed: Claimed, Body(req): Body<DecideReq>) -> Result<Json<Value>> {
    let mut call = Call::open(&st, &claimed, "UserRequestApprove", req.request_metadata.clone()).await?;
    let result = decide(&mut call, &req, true).await;
    call.finish(result).await
}

async fn request_cancel(State(st): State<AppState>, claimed: Claimed, Body(req): Body<DecideReq>) -> Result<Json<Value>> {
    let mut call = Call::open(&st, &claimed, "UserRequestCancel", req.request_metadata.clone()).await?;
    let result = decide(&mut call, &req, false).await;
    call.finish(result).await
}

fn summaries(rows: Vec<RequestSummary>, with_token: bool) -> Value {
    Value::Array(
        rows.into_iter()
            .map(|r| {
                let mut v = json!({"requestuuid": r.uuid, "requesttype": r.kind, "status": r.status, "creationtime": r.created_at});
                if with_token {
                    v["token"] = r.token.into();
                }
                v
            })
            .collect(),
    )
}

async fn request_list_user(State(st): State<AppState>, claimed: Claimed, Body(req): Body<ListReq>) -> Result<Json<Value>> {
    let mut call = Call::open(&st, &claimed, "UserRequestListUserRequests", req.request_metadata).await?;
    let result = async {
        let (offset, limit) = page(req.offset, req.limit)?;
        let (user, _) = find_user(&mut call, &req.mode, &req.identity).await?;
        let (total, rows) = call.tx.user_requests(user.id, offset, limit).await?;
        call.note("count", rows.len());
        Ok(fields([("total", total.into()), ("rows", summaries(rows, false))]))
    }
    .await;
    call.finish(result).await
}

async fn request_list_all(State(st): State<AppState>, claimed: Claimed, Body(req): Body<BulkReq>) -> Result<Json<Value>> {
    let mut call = Call::open(&st, &claimed, "BulkListAllUserRequests", req.request_metadata).await?;
    let result = async {
        call.require_unlock(&req.unlockuuid).await?;
        let (offset, limit) = page(req.offset, req.limit)?;
        let (total, rows) = call.tx.all_requests(offset, limit).await?;
        call.note("count", rows.len());
        Ok(fields([("total", total.into()), ("rows", summaries(rows, true))]))
    }
    .await;
    call.finish(result).await
}
