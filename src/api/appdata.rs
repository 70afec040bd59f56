//! AppdataCreate, AppdataGet, AppdataUpdate, AppdataDelete, AppdataListVersions,
//! AppdataListUserAppNames, AppdataListAppNames. App data is a JSON object per user and app
//! name, encrypted under the user's key and versioned like profiles. AppdataUpdateRequest
//! belongs to the DPO-request family and is not routed here (the fallback answers 501).

use axum::extract::State;
use axum::routing::post;
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{json, Map, Value};

use super::body::{int_or_string, Body, Metadata};
use super::body::{NoArgs as TenantReq, UserLookup as UserReq};
use super::users::find_user;
use super::{fields, Call};
use crate::app::AppState;
use crate::auth::Claimed;
use crate::error::{Error, Result};
use crate::keys::envelope::Key;
use crate::keys::keyring::TenantKeys;
use crate::store::appdata::AppdataRow;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/v2/AppdataCreate", post(appdata_create))
        .route("/v2/AppdataGet", post(appdata_get))
        .route("/v2/AppdataUpdate", post(appdata_update))
        .route("/v2/AppdataDelete", post(appdata_delete))
        .route("/v2/AppdataListVersions", post(appdata_list_versions))
        .route("/v2/AppdataListUserAppNames", post(appdata_list_user_app_names))
        .route("/v2/AppdataListAppNames", post(appdata_list_app_names))
}

const TABLE: &str = crate::keys::labels::APPDATA;

#[derive(Deserialize)]
struct WriteReq {
    mode: String,
    identity: String,
    appname: String,
    appdata: Value,
    #[serde(default)]
    request_metadata: Metadata,
}

#[derive(Deserialize)]
struct AppReq {
    mode: String,
    identity: String,
    appname: String,
    #[serde(default, deserialize_with = "int_or_string")]
    version: Option<i64>,
    #[serde(default)]
    request_metadata: Metadata,
}

/// Checks an app name: 1 to 64 characters of `[A-Za-z0-9_.-]`.
pub fn check_appname(name: &str) -> Result<&str> {
    let ok = (1..=64).contains(&name.len()) && name.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'));
    if ok {
        Ok(name)
    } else {
        Err(Error::bad("appname must be 1 to 64 characters of A-Z a-z 0-9 _ . -"))
    }
}

fn check_object(appdata: &Value) -> Result<()> {
    match appdata {
        Value::Object(o) if !o.is_empty() => Ok(()),
        _ => Err(Error::bad("appdata must be a non-empty JSON object")),
    }
}

fn row_id(token: &str, appname: &str, version: i32) -> String {
    format!("{token}/{appname}/{version}")
}

/// Encrypts app data under the user's key: (ciphertext, digest).
fn seal(keys: &TenantKeys, key: &Key, token: &str, appname: &str, version: i32, data: &Value) -> Result<(Vec<u8>, String)> {
    let plain = zeroize::Zeroizing::new(serde_json::to_vec(data)?);
    Ok((keys.seal_with(key, TABLE, &row_id(token, appname, version), &plain), keys.digest_hex(&plain)))
}

/// Opens app data sealed by [`seal`] (also for shared-record snapshots).
pub(crate) fn open(keys: &TenantKeys, key: &Key, token: &str, appname: &str, version: i32, blob: &[u8]) -> Result<Value> {
    let plain = keys.open_with(key, TABLE, &row_id(token, appname, version), blob)?;
    Ok(serde_json::from_slice(&plain)?)
}

/// The user's current app data for `appname`, or 404.
async fn find_app(call: &mut Call, user_id: i64, appname: &str, lock: bool) -> Result<AppdataRow> {
    call.tx.appdata(user_id, appname, lock).await?.ok_or_else(|| Error::not_found("app data"))
}

async fn appdata_create(State(st): State<AppState>, claimed: Claimed, Body(req): Body<WriteReq>) -> Result<Json<Value>> {
    let mut call = Call::open(&st, &claimed, "AppdataCreate", req.request_metadata).await?;
    let result = async {
        let appname = check_appname(&req.appname)?;
        check_object(&req.appdata)?;
        let (user, key) = find_user(&mut call, &req.mode, &req.identity).await?;
        call.note("appname", appname);
        let (blob, digest) = seal(&call.keys, &key, &user.token, appname, 1, &req.appdata)?;
        if call.tx.insert_appdata(user.id, appname, &blob, &digest).await?.is_none() {
            return Err(Error::Conflict("app data for this appname already exists; use AppdataUpdate".into()));
        }
        call.note("version", 1);
        Ok(Map::new())
    }
    .await;
    call.finish(result).await
}

async fn appdata_get(State(st): State<AppState>, claimed: Claimed, Body(req): Body<AppReq>) -> Result<Json<Value>> {
    let mut call = Call::open(&st, &claimed, "AppdataGet", req.request_metadata).await?;
    let result = async {
        let appname = check_appname(&req.appname)?;
        let (user, key) = find_user(&mut call, &req.mode, &req.identity).await?;
        call.note("appname", appname);
        let app = find_app(&mut call, user.id, appname, false).await?;
        let version = match req.version {
            None => app.version,
            Some(v) if v >= 1 && v <= app.version as i64 => v as i32,
            Some(_) => return Err(Error::not_found("version")),
        };
        let blob = if version == app.version {
            app.data
        } else {
            call.tx.appdata_version(app.id, version).await?.ok_or_else(|| Error::not_found("version"))?
        };
        let data = open(&call.keys, &key, &user.token, appname, version, &blob)?;
        call.note("version", version);
        Ok(fields([("token", user.token.into()), ("appname", appname.into()), ("appdata", data), ("version", version.into())]))
    }
    .await;
    call.finish(result).await
}

async fn appdata_update(State(st): State<AppState>, claimed: Claimed, Body(req): Body<WriteReq>) -> Result<Json<Value>> {
    let mut call = Call::open(&st, &claimed, "AppdataUpdate", req.request_metadata).await?;
    let result = update_core(&mut call, &req.mode, &req.identity, &req.appname, &req.appdata).await;
    call.finish(result).await
}

/// The body of AppdataUpdate (also applied by an approved AppdataUpdateRequest).
pub(crate) async fn update_core(call: &mut Call, mode: &str, identity: &str, appname: &str, appdata: &Value) -> Result<Map<String, Value>> {
    let appname = check_appname(appname)?;
    check_object(appdata)?;
    let (user, key) = find_user(call, mode, identity).await?;
    call.note("appname", appname);
    let app = find_app(call, user.id, appname, true).await?;
    let current = open(&call.keys, &key, &user.token, appname, app.version, &app.data)?;
    // RFC 7396 merge, as for profiles: sent fields replace, null removes, others stay.
    let mut next = current.clone();
    json_patch::merge(&mut next, appdata);
    if next == current {
        call.note("version", app.version);
        return Ok(Map::new());
    }
    if next.as_object().is_none_or(|o| o.is_empty()) {
        return Err(Error::bad("appdata would become empty; use AppdataDelete"));
    }
    let (blob, digest) = seal(&call.keys, &key, &user.token, appname, app.version + 1, &next)?;
    let version = call.tx.replace_appdata(&app, &blob, &digest).await?;
    call.note("version", version);
    Ok(Map::new())
}

async fn appdata_delete(State(st): State<AppState>, claimed: Claimed, Body(req): Body<AppReq>) -> Result<Json<Value>> {
    let mut call = Call::open(&st, &claimed, "AppdataDelete", req.request_metadata).await?;
    let result = async {
        let appname = check_appname(&req.appname)?;
        let (user, _) = find_user(&mut call, &req.mode, &req.identity).await?;
        call.note("appname", appname);
        if !call.tx.delete_appdata(user.id, appname).await? {
            return Err(Error::not_found("app data"));
        }
        Ok(Map::new())
    }
    .await;
    call.finish(result).await
}

async fn appdata_list_versions(State(st): State<AppState>, claimed: Claimed, Body(req): Body<AppReq>) -> Result<Json<Value>> {
    let mut call = Call::open(&st, &claimed, "AppdataListVersions", req.request_metadata).await?;
    let result = async {
        let appname = check_appname(&req.appname)?;
        let (user, _) = find_user(&mut call, &req.mode, &req.identity).await?;
        call.note("appname", appname);
        let app = find_app(&mut call, user.id, appname, false).await?;
        let mut versions: Vec<Value> =
            call.tx.appdata_versions(app.id).await?.into_iter().map(|(v, t, d)| json!({"version": v, "optime": t, "md5": d})).collect();
        versions.push(json!({"version": app.version, "optime": app.updated_at, "md5": app.digest}));
        Ok(fields([("versions", Value::Array(versions))]))
    }
    .await;
    call.finish(result).await
}

async fn appdata_list_user_app_names(State(st): State<AppState>, claimed: Claimed, Body(req): Body<UserReq>) -> Result<Json<Value>> {
    let mut call = Call::open(&st, &claimed, "AppdataListUserAppNames", req.request_metadata).await?;
    let result = async {
        let (user, _) = find_user(&mut call, &req.mode, &req.identity).await?;
        let apps = call.tx.user_appnames(user.id).await?;
        call.note("count", apps.len());
        Ok(fields([("apps", apps.into())]))
    }
    .await;
    call.finish(result).await
}

async fn appdata_list_app_names(State(st): State<AppState>, claimed: Claimed, Body(req): Body<TenantReq>) -> Result<Json<Value>> {
    let mut call = Call::open(&st, &claimed, "AppdataListAppNames", req.request_metadata).await?;
    let result = async {
        // A user login token may see its own record only, never the tenant's app names.
        if call.who.self_user.is_some() {
            return Err(Error::denied());
        }
        let apps = call.tx.appnames().await?;
        call.note("count", apps.len());
        Ok(fields([("apps", apps.into())]))
    }
    .await;
    call.finish(result).await
}

#[cfg(test)]
mod tests {
    use super::check_appname;

    #[test]
    fn appnames_are_short_and_plain() {
        for ok in ["shop", "a", "my-app_v1.2", &"x".repeat(64)] {
            assert!(check_appname(ok).is_ok(), "{ok}");
        }
        for bad in ["", "a b", "a/b", "ä", &"x".repeat(65), "x;drop"] {
            assert!(check_appname(bad).is_err(), "{bad}");
        }
    }
}
