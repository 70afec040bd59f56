//! v1 users, user apps, sessions and shared records, over the v2 User*, Appdata*, Session* and
//! SharedRecord* endpoints.

use axum::extract::State;
use axum::routing::{get, post};
use axum::Router;
use serde_json::{json, Map, Value};

use super::{duration_secs, ok, request_created, string_field, uuid_arg, Answer, Change, Ctx, Fail, Paging, V1Body, V1Path, V1Query, Who};
use crate::api::expiration::LinkAction;
use crate::app::AppState;
use crate::store::now_secs;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/v1/user", post(user_create))
        .route("/v1/users", post(user_list))
        .route("/v1/user/{mode}/{identity}", get(user_get).put(user_change).delete(user_delete))
        .route("/v1/userapp/{mode}/{identity}/{appname}", post(app_create).get(app_get).put(app_change).delete(app_delete))
        .route("/v1/userapp/{mode}/{identity}", get(app_list))
        .route("/v1/userapps", get(app_names))
        .route("/v1/session/{session}", get(session_get).post(session_create).delete(session_delete))
        .route("/v1/sessions/{mode}/{identity}", get(session_list))
        .route("/v1/sharedrecord/{mode}/{identity}", post(shared_create))
        .route("/v1/get/{record}", get(shared_get))
        .route("/v1/exp/start/{mode}/{identity}", post(exp_start))
        .route("/v1/exp/status/{mode}/{identity}", get(exp_status))
        .route("/v1/exp/cancel/{mode}/{identity}", axum::routing::delete(exp_cancel))
        .route("/v1/exp/retain/{exptoken}", get(exp_retain))
        .route("/v1/exp/delete/{exptoken}", get(exp_delete))
}

/// The fields Databunker indexes a record by.
const INDEXES: [&str; 4] = ["login", "email", "phone", "custom"];

/// The user token of `who` (v1 answers carry it even when the lookup was by another index).
async fn token_of(ctx: &Ctx, who: &Who) -> Result<String, Fail> {
    if who.mode == super::Mode::Token {
        return Ok(who.identity.clone());
    }
    let v = ctx.call("UserGet", who.body(json!({}))).await?;
    Ok(v["token"].as_str().unwrap_or_default().to_string())
}

// ---- users ----

async fn user_create(ctx: Ctx, body: V1Body) -> Answer {
    let profile = body.required("empty request body")?;
    if !INDEXES.iter().any(|k| string_field(&profile, k).is_some()) {
        return Err(Fail::v1("failed to create user, all user lookup fields are missing"));
    }
    let v = ctx.call("UserCreate", json!({ "profile": profile })).await?;
    ok(json!({"token": v["token"]}))
}

/// Databunker lists users only with `generic.list_users`; here the v2 bulk-listing rights decide.
async fn user_list(ctx: Ctx, V1Query(p): V1Query<Paging>) -> Answer {
    let (offset, limit) = p.get();
    let unlock = ctx.call("BulkListUnlock", json!({})).await?;
    let v = ctx.call("BulkListAllUsers", json!({"unlockuuid": unlock["unlockuuid"], "offset": offset, "limit": limit})).await?;
    // Databunker's Go marshals the decrypted profile bytes, so `private` is base64 of its JSON.
    let rows: Vec<Value> = rows(&v)
        .iter()
        .map(|r| {
            use base64::Engine;
            let private = base64::engine::general_purpose::STANDARD.encode(r["profile"].to_string());
            json!({"token": r["token"], "private": private})
        })
        .collect();
    ok(json!({"total": v["total"], "rows": rows}))
}

fn rows(v: &Value) -> Vec<Value> {
    v["rows"].as_array().cloned().unwrap_or_default()
}

async fn user_get(ctx: Ctx, V1Path((mode, identity)): V1Path<(String, String)>) -> Answer {
    let who = Who::parse(&mode, &identity)?;
    let v = ctx.call("UserGet", who.body(json!({}))).await?;
    ok(json!({"token": v["token"], "data": v["profile"]}))
}

async fn user_change(ctx: Ctx, V1Path((mode, identity)): V1Path<(String, String)>, body: V1Body) -> Answer {
    let who = Who::parse(&mode, &identity)?;
    let done = match body.change()? {
        Change::Merge(profile) => ctx.direct_or_request("UserUpdate", "UserUpdateRequest", who.body(json!({ "profile": profile }))).await,
        Change::Patch(patch) => ctx.direct_or_request("UserPatch", "UserPatchRequest", who.body(json!({ "patch": patch }))).await,
    };
    // Databunker's answer when the new index value belongs to another user.
    let done = done.map_err(|e| match e {
        Fail::Error(_, m) if m.starts_with("duplicate index") => Fail::v1("record not found"),
        other => other,
    })?;
    match done {
        Some(rtoken) => request_created(rtoken),
        None => ok(json!({"token": token_of(&ctx, &who).await?})),
    }
}

async fn user_delete(ctx: Ctx, V1Path((mode, identity)): V1Path<(String, String)>) -> Answer {
    let who = Who::parse(&mode, &identity)?;
    match ctx.direct_or_request("UserDelete", "UserDeleteRequest", who.body(json!({}))).await {
        Ok(Some(rtoken)) => request_created(rtoken),
        // Forgetting someone already gone is done, as in Databunker.
        Ok(None) => ok(json!({"result": "done"})),
        Err(Fail::Error(_, m)) if m == "not found" => ok(json!({"result": "done"})),
        Err(e) => Err(e),
    }
}

// ---- user apps ----

/// Databunker's app names: a letter, then letters, digits and `_` (lower-cased).
fn appname(s: &str) -> Result<String, Fail> {
    let s = s.trim().to_lowercase();
    let valid = s.len() >= 2
        && s.len() <= 30
        && s.starts_with(|c: char| c.is_ascii_lowercase())
        && s.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-');
    if valid {
        Ok(s)
    } else {
        Err(Fail::v1("bad appname"))
    }
}

/// The RFC 7386 merge patch that turns `old` into `new` (a replacement, expressed as a merge).
fn replacing(old: &Value, new: &Value) -> Value {
    match (old, new) {
        (Value::Object(o), Value::Object(n)) => {
            let mut patch = Map::new();
            for k in o.keys().filter(|k| !n.contains_key(*k)) {
                patch.insert(k.clone(), Value::Null);
            }
            for (k, v) in n {
                patch.insert(k.clone(), o.get(k).map_or_else(|| v.clone(), |old| replacing(old, v)));
            }
            Value::Object(patch)
        }
        (_, n) => n.clone(),
    }
}

/// Replaces the app record `app` of `who` with `data`, creating it when there is none.
async fn put_app(ctx: &Ctx, who: &Who, app: &str, data: Value) -> Result<(), Fail> {
    let create = who.body(json!({"appname": app, "appdata": data}));
    match ctx.raw("AppdataCreate", create).await {
        (axum::http::StatusCode::CONFLICT, _) => {
            let old = ctx.call("AppdataGet", who.body(json!({ "appname": app }))).await?;
            let patch = replacing(&old["appdata"], &data);
            ctx.call("AppdataUpdate", who.body(json!({"appname": app, "appdata": patch}))).await.map(|_| ())
        }
        other => super::from_v2(other).map(|_| ()),
    }
}

async fn app_create(ctx: Ctx, V1Path((mode, identity, app)): V1Path<(String, String, String)>, body: V1Body) -> Answer {
    let who = Who::parse(&mode, &identity)?;
    let app = appname(&app)?;
    let data = body.required("empty body")?;
    put_app(&ctx, &who, &app, Value::Object(data)).await?;
    ok(json!({"token": token_of(&ctx, &who).await?}))
}

async fn app_get(ctx: Ctx, V1Path((mode, identity, app)): V1Path<(String, String, String)>) -> Answer {
    let who = Who::parse(&mode, &identity)?;
    let app = appname(&app)?;
    let v = ctx.call("AppdataGet", who.body(json!({ "appname": app }))).await?;
    ok(json!({"token": v["token"], "data": v["appdata"]}))
}

async fn app_change(ctx: Ctx, V1Path((mode, identity, app)): V1Path<(String, String, String)>, body: V1Body) -> Answer {
    let who = Who::parse(&mode, &identity)?;
    let app = appname(&app)?;
    let merge = match body.change()? {
        Change::Merge(m) => m,
        Change::Patch(p) => {
            // v2 app data takes merges only: apply the operations to the current record here
            // and send the difference.
            let old = ctx.call("AppdataGet", who.body(json!({ "appname": app }))).await?;
            let mut next = old["appdata"].clone();
            let patch: json_patch::Patch = serde_json::from_value(p).map_err(|_| Fail::v1("failed to decode request body"))?;
            json_patch::patch(&mut next, &patch).map_err(|_| Fail::v1("failed to decode request body"))?;
            replacing(&old["appdata"], &next)
        }
    };
    match ctx.direct_or_request("AppdataUpdate", "AppdataUpdateRequest", who.body(json!({"appname": app, "appdata": merge}))).await? {
        Some(rtoken) => request_created(rtoken),
        None => ok(json!({"token": token_of(&ctx, &who).await?})),
    }
}

async fn app_delete(ctx: Ctx, V1Path((mode, identity, app)): V1Path<(String, String, String)>) -> Answer {
    let who = Who::parse(&mode, &identity)?;
    let app = appname(&app)?;
    let token = token_of(&ctx, &who).await?;
    ctx.call("AppdataDelete", who.body(json!({ "appname": app }))).await?;
    ok(json!({ "token": token }))
}

async fn app_list(ctx: Ctx, V1Path((mode, identity)): V1Path<(String, String)>) -> Answer {
    let who = Who::parse(&mode, &identity)?;
    let token = token_of(&ctx, &who).await?;
    let v = ctx.call("AppdataListUserAppNames", who.body(json!({}))).await?;
    ok(json!({"token": token, "apps": v["apps"].as_array().cloned().unwrap_or_default()}))
}

/// Databunker marshals an empty app list as `null`.
async fn app_names(ctx: Ctx) -> Answer {
    let v = ctx.call("AppdataListAppNames", json!({})).await?;
    let apps = v["apps"].as_array().filter(|a| !a.is_empty()).map_or(Value::Null, |a| Value::Array(a.clone()));
    ok(json!({ "apps": apps }))
}

// ---- sessions ----

/// Databunker's cap on session lifetimes (`policy.max_session_retention_period`, default 1h).
const SESSION_MAX_SECS: i64 = 3600;

async fn session_create(ctx: Ctx, V1Path(session): V1Path<String>, body: V1Body) -> Answer {
    let session = uuid_arg(&session)?;
    let data = body.required("empty body")?;
    let secs = data.get("expiration").and_then(|e| duration_secs(e, now_secs())).map_or(SESSION_MAX_SECS, |s| s.min(SESSION_MAX_SECS));
    let mut req = json!({"sessionuuid": session, "sessiondata": data, "finaltime": secs.to_string()});
    // The owner: the first index field present, else `token`; none, or an unknown one: no owner.
    let owner = INDEXES.iter().chain(["token"].iter()).find_map(|k| string_field(&data, k).map(|v| (*k, v)));
    if let Some((mode, identity)) = &owner {
        req["mode"] = (*mode).into();
        req["identity"] = identity.clone().into();
    }
    match ctx.raw("SessionUpsert", req.clone()).await {
        (axum::http::StatusCode::NOT_FOUND, _) if owner.is_some() => {
            req.as_object_mut().map(|m| (m.remove("mode"), m.remove("identity")));
            ctx.call("SessionUpsert", req).await?;
        }
        other => {
            super::from_v2(other)?;
        }
    }
    ok(json!({ "session": session }))
}

/// `@databunker/session-store` matches the message `not found` of a missing session.
async fn session_get(ctx: Ctx, V1Path(session): V1Path<String>) -> Answer {
    let session = uuid_arg(&session).map_err(|_| Fail::v1("not found"))?;
    let v = ctx.call("SessionGet", json!({ "sessionuuid": session })).await?;
    ok(json!({"session": session, "when": v["when"], "data": v["sessiondata"]}))
}

/// Deleting a session that is not there is done, as in Databunker.
async fn session_delete(ctx: Ctx, V1Path(session): V1Path<String>) -> Answer {
    let session = uuid_arg(&session)?;
    match ctx.call("SessionDelete", json!({ "sessionuuid": session })).await {
        Ok(_) => ok(json!({})),
        Err(Fail::Error(_, m)) if m == "not found" => ok(json!({})),
        Err(e) => Err(e),
    }
}

async fn session_list(ctx: Ctx, V1Path((mode, identity)): V1Path<(String, String)>) -> Answer {
    let who = Who::parse(&mode, &identity)?;
    let v = ctx.call("SessionListUserSessions", who.body(json!({}))).await?;
    let rows: Vec<Value> =
        rows(&v).iter().map(|r| json!({"when": r["when"], "session": r["sessionuuid"], "data": r["sessiondata"]})).collect();
    ok(json!({"total": rows.len(), "rows": rows}))
}

// ---- shared records ----

async fn shared_create(ctx: Ctx, V1Path((mode, identity)): V1Path<(String, String)>, body: V1Body) -> Answer {
    let who = Who::parse(&mode, &identity)?;
    let b = body.object()?.unwrap_or_default();
    if string_field(&b, "session").is_some() {
        return Err(Fail::v1("sharing a session is not supported: share the user record or an app record"));
    }
    let mut req = who.body(json!({}));
    for (v1, v2) in [("fields", "fields"), ("partner", "partner"), ("app", "appname")] {
        if let Some(v) = string_field(&b, v1) {
            req[v2] = v.into();
        }
    }
    if let Some(secs) = b.get("expiration").and_then(|e| duration_secs(e, now_secs())) {
        req["finaltime"] = secs.to_string().into();
    }
    let v = ctx.call("SharedRecordCreate", req).await?;
    ok(json!({"record": v["recorduuid"]}))
}

/// Databunker answers an unknown or expired record with a plain 403.
async fn shared_get(ctx: Ctx, V1Path(record): V1Path<String>) -> Answer {
    let record = uuid_arg(&record).map_err(|_| Fail::Denied)?;
    let v = ctx.call("SharedRecordGet", json!({ "recorduuid": record })).await.map_err(|e| match e {
        Fail::Error(_, m) if m == "not found" => Fail::Denied,
        other => other,
    })?;
    let mut out = json!({"data": v["data"]});
    if let Some(app) = v.get("appname").filter(|a| a.is_string()) {
        out["app"] = app.clone();
    }
    ok(out)
}

// ---- the expiration flow ----

/// Starts the flow: the record goes after `expiration` (Databunker's units, capped at a month)
/// unless the person follows the "keep" link first.
async fn exp_start(ctx: Ctx, V1Path((mode, identity)): V1Path<(String, String)>, body: V1Body) -> Answer {
    let who = Who::parse(&mode, &identity)?;
    let b = body.object()?.unwrap_or_default();
    let mut req = who.body(json!({}));
    if let Some(secs) = b.get("expiration").and_then(|e| duration_secs(e, now_secs())) {
        req["expiration"] = secs.to_string().into();
    }
    let v = ctx.call("UserExpirationStart", req).await?;
    ok(json!({"exptoken": v["exptoken"]}))
}

async fn exp_status(ctx: Ctx, V1Path((mode, identity)): V1Path<(String, String)>) -> Answer {
    let who = Who::parse(&mode, &identity)?;
    let v = ctx.call("UserExpirationGet", who.body(json!({}))).await?;
    ok(json!({"exptime": v["exptime"], "expstatus": v["expstatus"], "exptoken": v["exptoken"]}))
}

async fn exp_cancel(ctx: Ctx, V1Path((mode, identity)): V1Path<(String, String)>) -> Answer {
    let who = Who::parse(&mode, &identity)?;
    ctx.call("UserExpirationCancel", who.body(json!({}))).await?;
    ok(json!({}))
}

async fn exp_link(st: &AppState, ctx: &Ctx, exptoken: &str, action: LinkAction) -> Answer {
    match crate::api::expiration::follow_link(st, ctx.tenant(), exptoken, action).await {
        Ok(()) => super::text("OK"),
        Err(e) => Err(e.into()),
    }
}

async fn exp_retain(State(st): State<AppState>, ctx: Ctx, V1Path(exptoken): V1Path<String>) -> Answer {
    exp_link(&st, &ctx, &exptoken, LinkAction::Retain).await
}

async fn exp_delete(State(st): State<AppState>, ctx: Ctx, V1Path(exptoken): V1Path<String>) -> Answer {
    exp_link(&st, &ctx, &exptoken, LinkAction::Delete).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_replacement_is_a_merge_that_removes_what_is_gone() {
        let old = json!({"a": 1, "b": {"c": 2, "d": 3}, "e": 4});
        let new = json!({"a": 5, "b": {"c": 2}});
        let mut merged = old.clone();
        json_patch::merge(&mut merged, &replacing(&old, &new));
        assert_eq!(merged, new);
    }
}
