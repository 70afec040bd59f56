//! UserCreate, UserGet, UserUpdate, UserPatch, UserDelete, UserDeleteBulk, UserCreateBulk,
//! UserListVersions.

use std::sync::Arc;

use axum::extract::State;
use axum::routing::post;
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{json, Map, Value};

use super::body::{int_or_string, Body, Metadata};
use super::groups::Membership;
use super::when::{parse_deadline, parse_duration};
use super::{fields, Call};
use crate::app::AppState;
use crate::auth::Claimed;
use crate::error::{Error, Result};
use crate::keys::blind::IndexMode;
use crate::keys::envelope::Key;
use crate::records::{self, new_user, new_user_with_token, open_current, open_profile, profile_indexes, seal_profile, user_key, Mode};
use crate::store::now_secs;
use crate::store::users::{Retention, UserRow};

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/v2/UserCreate", post(user_create))
        .route("/v2/UserCreateBulk", post(user_create_bulk))
        .route("/v2/UserGet", post(user_get))
        .route("/v2/UserUpdate", post(user_update))
        .route("/v2/UserPatch", post(user_patch))
        .route("/v2/UserDelete", post(user_delete))
        .route("/v2/UserDeleteBulk", post(user_delete_bulk))
        .route("/v2/UserImport", post(user_import))
        .route("/v2/UserListVersions", post(user_list_versions))
}

/// Most records a single UserCreateBulk may carry.
pub const MAX_BULK: usize = 10_000;

/// Group membership and retention options of a new user.
#[derive(Deserialize, Default)]
struct Later {
    #[serde(default)]
    groupname: Option<Value>,
    #[serde(default)]
    groupid: Option<Value>,
    #[serde(default)]
    rolename: Option<Value>,
    #[serde(default)]
    roleid: Option<Value>,
    #[serde(default)]
    slidingtime: Option<Value>,
    #[serde(default)]
    finaltime: Option<Value>,
}

impl Later {
    /// The retention asked for at `now`, each setting falling back to `outer`'s (a bulk
    /// request's own). `slidingtime` must be a duration; `finaltime` must lie in the future.
    fn retention(&self, outer: Option<&Later>, now: i64) -> Result<Retention> {
        let pick = |own: &Option<Value>, outer_v: Option<&Option<Value>>| -> Option<Value> {
            match own {
                Some(v) if !v.is_null() && v != "" => Some(v.clone()),
                _ => outer_v.cloned().flatten(),
            }
        };
        let sliding = parse_duration("slidingtime", &pick(&self.slidingtime, outer.map(|o| &o.slidingtime)))?;
        let final_at = parse_deadline("finaltime", &pick(&self.finaltime, outer.map(|o| &o.finaltime)), now)?;
        Ok(Retention::new(sliding, final_at, now))
    }

    /// The group (and optional tenant role) to put the new user in.
    fn membership(&self) -> Result<Option<Membership>> {
        super::groups::requested(&self.groupid, &self.groupname, &self.roleid, &self.rolename)
    }
}

/// Looks up a membership once per distinct request (404 for an unknown group or role).
async fn resolve_membership(
    call: &mut Call,
    cache: &mut Vec<(Membership, (i64, Option<i64>))>,
    m: &Membership,
) -> Result<(i64, Option<i64>)> {
    if let Some((_, ids)) = cache.iter().find(|(k, _)| k == m) {
        return Ok(*ids);
    }
    let (group, role) = super::groups::resolve(&mut call.tx, m).await?;
    let ids = (group.id, role.map(|r| r.id));
    cache.push((m.clone(), ids));
    Ok(ids)
}

#[derive(Deserialize)]
struct CreateReq {
    profile: Value,
    #[serde(flatten)]
    later: Later,
    #[serde(default)]
    request_metadata: Metadata,
}

#[derive(Deserialize)]
struct BulkRecord {
    profile: Value,
    #[serde(flatten)]
    later: Later,
}

#[derive(Deserialize)]
struct BulkReq {
    records: Vec<BulkRecord>,
    #[serde(flatten)]
    later: Later,
    #[serde(default)]
    request_metadata: Metadata,
}

#[derive(Deserialize)]
struct LookupReq {
    mode: String,
    identity: String,
    #[serde(default, deserialize_with = "int_or_string")]
    version: Option<i64>,
    #[serde(default)]
    request_metadata: Metadata,
}

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

/// Finds the user named by `mode`/`identity` in the call's tenant, or 404 (see
/// [`records::locate`]), checks the call may reach it, and extends a sliding expiry.
/// Returns the row and the user's unwrapped key; the call's audit event is bound to the user.
pub async fn find_user(call: &mut Call, mode: &str, identity: &str) -> Result<(UserRow, Arc<Key>)> {
    let mode = Mode::parse(mode)?;
    let mut user = records::locate(&mut call.tx, &call.keys, &mut call.audit, mode, identity).await?;
    // A user token reaches its own record, and another only through a group-relative allow
    // that holds for it (any other is simply not found); group-relative rules also decide here
    // for a role whose static rules did not allow the call.
    let key = user_key(&call.keys, &user)?;
    let profile = match super::relations::reads_target_fields(&call.relative.grants) {
        true => Some(records::open_current(&call.keys, &key, &user)?),
        false => None,
    };
    super::relations::check_record(call, user.id, &user.token, profile.as_ref()).await?;
    records::note_identity(&mut call.audit, mode, identity);
    records::extend_sliding(&mut call.tx, &mut user).await?;
    call.note_user(&user.token, key.clone());
    Ok((user, key))
}

async fn user_create(State(st): State<AppState>, claimed: Claimed, Body(req): Body<CreateReq>) -> Result<Json<Value>> {
    let mut call = Call::open(&st, &claimed, "UserCreate", req.request_metadata).await?;
    let result = async {
        let retention = req.later.retention(None, now_secs())?;
        let membership = match req.later.membership()? {
            Some(m) => Some(resolve_membership(&mut call, &mut Vec::new(), &m).await?),
            None => None,
        };
        let (user, key) = new_user(&call.keys, &req.profile, retention)?;
        let ids = call.tx.insert_users(std::slice::from_ref(&user)).await?;
        if let Some((group_id, role_id)) = membership {
            call.tx.add_group_members(&[(group_id, ids[0], role_id)]).await?;
            call.note("groupid", group_id);
        }
        call.note_user(&user.token, Arc::new(key));
        Ok(fields([("token", user.token.into())]))
    }
    .await;
    call.finish(result).await
}

#[derive(Deserialize)]
struct ImportReq {
    token: String,
    profile: Value,
    #[serde(flatten)]
    later: Later,
    #[serde(default)]
    request_metadata: Metadata,
}

/// Our extension for `strongroom import`: creates a user under the token it had in another
/// vault, so the application tables holding that token stay valid. A token this tenant already
/// has (live, expired or soft-deleted) is left as it is and answered `"imported": false`, so a
/// rerun copies nothing twice. Only roles granted UserImport (tenant-admin, root) may call it.
async fn user_import(State(st): State<AppState>, claimed: Claimed, Body(req): Body<ImportReq>) -> Result<Json<Value>> {
    let mut call = Call::open(&st, &claimed, "UserImport", req.request_metadata).await?;
    let result = async {
        let token = uuid::Uuid::try_parse(req.token.trim())
            .map(|u| u.hyphenated().to_string())
            .map_err(|_| Error::bad("token must be a UUID (the record's token in the source vault)"))?;
        if call.tx.token_taken(&token).await? {
            call.note("token", token.as_str());
            return Ok(fields([("token", token.into()), ("imported", false.into())]));
        }
        let retention = req.later.retention(None, now_secs())?;
        let (user, key) = new_user_with_token(&call.keys, token, &req.profile, retention)?;
        call.tx.insert_users(std::slice::from_ref(&user)).await?;
        call.note_user(&user.token, Arc::new(key));
        Ok(fields([("token", user.token.into()), ("imported", true.into())]))
    }
    .await;
    call.finish(result).await
}

async fn user_create_bulk(State(st): State<AppState>, claimed: Claimed, Body(req): Body<BulkReq>) -> Result<Json<Value>> {
    let mut call = Call::open(&st, &claimed, "UserCreateBulk", req.request_metadata).await?;
    let result = async {
        let now = now_secs();
        req.later.retention(None, now)?;
        if req.records.is_empty() || req.records.len() > MAX_BULK {
            return Err(Error::bad(format!("records must hold 1 to {MAX_BULK} entries")));
        }
        let mut users = Vec::with_capacity(req.records.len());
        // A record's own group overrides the request's.
        let shared = req.later.membership()?;
        let mut cache = Vec::new();
        let mut memberships = Vec::with_capacity(req.records.len());
        for (i, r) in req.records.iter().enumerate() {
            let retention = r.later.retention(Some(&req.later), now).map_err(|e| match e {
                Error::BadRequest(m) => Error::bad(format!("records[{i}]: {m}")),
                other => other,
            })?;
            memberships.push(match r.later.membership()?.or_else(|| shared.clone()) {
                Some(m) => Some(resolve_membership(&mut call, &mut cache, &m).await?),
                None => None,
            });
            let (user, _key) = new_user(&call.keys, &r.profile, retention).map_err(|e| match e {
                Error::BadRequest(m) => Error::bad(format!("records[{i}]: {m}")),
                other => other,
            })?;
            users.push(user);
        }
        let ids = call.tx.insert_users(&users).await?;
        let members: Vec<(i64, i64, Option<i64>)> =
            ids.iter().zip(&memberships).filter_map(|(user_id, m)| m.map(|(g, r)| (g, *user_id, r))).collect();
        if !members.is_empty() {
            call.tx.add_group_members(&members).await?;
        }
        call.note("count", users.len());
        let created: Vec<Value> = users.iter().zip(&req.records).map(|(u, r)| json!({"token": u.token, "profile": r.profile})).collect();
        Ok(fields([("created", Value::Array(created))]))
    }
    .await;
    call.finish(result).await
}

async fn user_get(State(st): State<AppState>, claimed: Claimed, Body(req): Body<LookupReq>) -> Result<Json<Value>> {
    let mut call = Call::open(&st, &claimed, "UserGet", req.request_metadata).await?;
    let result = async {
        let (user, key) = find_user(&mut call, &req.mode, &req.identity).await?;
        let (version, profile) = match req.version {
            None => (user.version, open_current(&call.keys, &key, &user)?),
            Some(v) if v == user.version as i64 => (user.version, open_current(&call.keys, &key, &user)?),
            Some(v) if v >= 1 && v < user.version as i64 => {
                let old = call.tx.user_version(user.id, v as i32).await?.ok_or_else(|| Error::not_found("version"))?;
                (old.version, open_profile(&call.keys, &key, &user.token, old.version, &old.profile)?)
            }
            Some(_) => return Err(Error::not_found("version")),
        };
        call.note("version", version);
        let mut profile = profile;
        call.mask_profile(&mut profile).await;
        let grouproles = super::groups::grouproles(&mut call.tx, &user).await?;
        // As extended by find_user for a sliding expiry.
        let retention = user.retention;
        Ok(fields([
            ("token", user.token.into()),
            ("profile", profile),
            ("version", version.into()),
            ("finaltime", retention.final_at.unwrap_or(0).into()),
            ("slidingtime", retention.sliding_secs.unwrap_or(0).into()),
            ("expirationtime", retention.expires_at.unwrap_or(0).into()),
            ("grouproles", grouproles),
        ]))
    }
    .await;
    call.finish(result).await
}

/// Where a profile change comes from: the direct endpoints, or a user request (tried when it is
/// filed, applied when the DPO approves it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChangeOrigin {
    Direct,
    Request,
}

/// Read-modify-write of a profile under a row lock; `change` returns the new profile. A change
/// that leaves the profile as it was stores no new version.
async fn change_profile(
    call: &mut Call,
    origin: ChangeOrigin,
    mode: &str,
    identity: &str,
    change: impl FnOnce(&mut Value) -> Result<()>,
) -> Result<Map<String, Value>> {
    let (found, key) = find_user(call, mode, identity).await?;
    let user = call.tx.lock_user(found.id).await?.ok_or_else(|| Error::not_found("user record"))?;
    let current = open_current(&call.keys, &key, &user)?;
    let mut next = current.clone();
    change(&mut next)?;
    // A data subject's own token never moves its account: email, phone, login and custom change
    // only through a request the DPO approves, whatever the tenant's self-service policy grants.
    if origin == ChangeOrigin::Direct
        && call.who.self_user.is_some()
        && IndexMode::ALL.iter().any(|m| current.get(m.field()) != next.get(m.field()))
    {
        return Err(Error::Forbidden(
            "changes to email, phone, login or custom go through a request to the DPO (UserUpdateRequest, UserPatchRequest)".into(),
        ));
    }
    if next == current {
        call.note("version", user.version);
        return Ok(Map::new());
    }
    let indexes = profile_indexes(&call.keys, &next)?;
    let (blob, digest) = seal_profile(&call.keys, &key, &user.token, user.version + 1, &next)?;
    let version = call.tx.replace_profile(&user, &blob, &digest, &indexes).await?;
    call.note("version", version);
    call.callback(crate::privacy::callbacks::Event::ProfileChange, Some(&user.token), Value::Null).await?;
    Ok(Map::new())
}

async fn user_update(State(st): State<AppState>, claimed: Claimed, Body(req): Body<UpdateReq>) -> Result<Json<Value>> {
    let mut call = Call::open(&st, &claimed, "UserUpdate", req.request_metadata).await?;
    let result = update_core(&mut call, ChangeOrigin::Direct, &req.mode, &req.identity, &req.profile).await;
    call.finish(result).await
}

/// The body of UserUpdate (also applied by an approved UserUpdateRequest).
pub(crate) async fn update_core(
    call: &mut Call,
    origin: ChangeOrigin,
    mode: &str,
    identity: &str,
    profile: &Value,
) -> Result<Map<String, Value>> {
    if !matches!(profile, Value::Object(o) if !o.is_empty()) {
        return Err(Error::bad("profile must be a non-empty JSON object"));
    }
    // RFC 7396 merge, as Databunker does: sent fields replace, null removes, others stay.
    change_profile(call, origin, mode, identity, |p| {
        json_patch::merge(p, profile);
        Ok(())
    })
    .await
}

async fn user_patch(State(st): State<AppState>, claimed: Claimed, Body(req): Body<PatchReq>) -> Result<Json<Value>> {
    let mut call = Call::open(&st, &claimed, "UserPatch", req.request_metadata).await?;
    let result = patch_core(&mut call, ChangeOrigin::Direct, &req.mode, &req.identity, &req.patch).await;
    call.finish(result).await
}

/// The body of UserPatch (also applied by an approved UserPatchRequest).
pub(crate) async fn patch_core(
    call: &mut Call,
    origin: ChangeOrigin,
    mode: &str,
    identity: &str,
    patch: &json_patch::Patch,
) -> Result<Map<String, Value>> {
    if patch.0.is_empty() {
        return Err(Error::bad("patch must hold at least one operation"));
    }
    change_profile(call, origin, mode, identity, |p| {
        json_patch::patch(p, &patch.0).map_err(|e| Error::bad(format!("patch operation {} failed: {}", e.operation, e.kind)))
    })
    .await
}

async fn user_delete(State(st): State<AppState>, claimed: Claimed, Body(req): Body<LookupReq>) -> Result<Json<Value>> {
    let mut call = Call::open(&st, &claimed, "UserDelete", req.request_metadata).await?;
    let result = delete_core(&mut call, &req.mode, &req.identity).await;
    call.finish(result).await
}

#[derive(Deserialize)]
struct DeleteBulkReq {
    #[serde(default)]
    users: Option<Vec<Lookup>>,
    #[serde(default)]
    request_metadata: Metadata,
}

#[derive(Deserialize)]
struct Lookup {
    mode: String,
    identity: String,
}

/// Forgets every user the lookups name, in one transaction: all or, on an error, none. A
/// lookup that finds no one is counted, not refused (the record may already be gone). The
/// event is bound to no single user (it would be shredded with that user's key); it lists the
/// forgotten tokens, which are no longer personal data once their records are gone.
async fn user_delete_bulk(State(st): State<AppState>, claimed: Claimed, Body(req): Body<DeleteBulkReq>) -> Result<Json<Value>> {
    let mut call = Call::open(&st, &claimed, "UserDeleteBulk", req.request_metadata).await?;
    let result = async {
        let lookups = req.users.as_deref().ok_or_else(|| Error::bad("missing field `users`"))?;
        if lookups.is_empty() || lookups.len() > MAX_DELETE_BULK {
            return Err(Error::bad(format!("users must hold 1 to {MAX_DELETE_BULK} entries")));
        }
        let modes = lookups.iter().map(|l| Mode::parse(&l.mode)).collect::<Result<Vec<_>>>()?;
        let mut tokens = Vec::new();
        let mut notfound = 0;
        for (l, mode) in lookups.iter().zip(modes) {
            let found = super::bulk_lists::find_in(&mut call.tx, &call.keys, &[mode], &l.identity).await?;
            if found.is_empty() {
                notfound += 1;
            }
            for user in found {
                if call.tx.delete_user(user.id).await? {
                    call.callback(crate::privacy::callbacks::Event::ForgetMe, Some(&user.token), Value::Null).await?;
                    tokens.push(Value::from(user.token));
                }
            }
        }
        call.note("requested", lookups.len());
        call.note("count", tokens.len());
        call.note("tokens", Value::Array(tokens.clone()));
        Ok(fields([("deleted_count", tokens.len().into()), ("notfound", notfound.into())]))
    }
    .await;
    call.finish(result).await
}

/// Most lookups a single UserDeleteBulk may carry.
const MAX_DELETE_BULK: usize = 1_000;

/// The body of UserDelete (also applied by an approved UserDeleteRequest).
pub(crate) async fn delete_core(call: &mut Call, mode: &str, identity: &str) -> Result<Map<String, Value>> {
    let user = match find_user(call, mode, identity).await {
        Ok((user, _)) => user,
        // The right to be forgotten also reaches a record an operator soft-deleted (kept for
        // SystemRestoreUserProfile): forgetting it must not wait for the restore window.
        Err(Error::NotFound(m)) if Mode::parse(mode)? == Mode::Token => {
            let now = now_secs();
            match call.tx.soft_deleted_user(identity.trim(), 0, now).await? {
                Some(user) => {
                    call.note_user(&user.token, user_key(&call.keys, &user)?);
                    user
                }
                None => return Err(Error::NotFound(m)),
            }
        }
        Err(e) => return Err(e),
    };
    if !call.tx.delete_user(user.id).await? {
        return Err(Error::not_found("user record"));
    }
    call.callback(crate::privacy::callbacks::Event::ForgetMe, Some(&user.token), Value::Null).await?;
    Ok(Map::new())
}

async fn user_list_versions(State(st): State<AppState>, claimed: Claimed, Body(req): Body<LookupReq>) -> Result<Json<Value>> {
    let mut call = Call::open(&st, &claimed, "UserListVersions", req.request_metadata).await?;
    let result = async {
        let (user, _) = find_user(&mut call, &req.mode, &req.identity).await?;
        let mut versions: Vec<Value> =
            call.tx.user_versions(user.id).await?.into_iter().map(|(v, t, d)| json!({"version": v, "optime": t, "md5": d})).collect();
        versions.push(json!({"version": user.version, "optime": user.updated_at, "md5": user.digest}));
        Ok(fields([("versions", Value::Array(versions))]))
    }
    .await;
    call.finish(result).await
}
