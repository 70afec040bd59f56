//! v1 user requests, audit, passwordless login and the status/sys routes, over the v2
//! UserRequest*, Audit*, UserPrelogin/UserLogin and System* endpoints.

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;
use serde_json::{json, Value};

use super::{ok, text, uuid_arg, Answer, Ctx, Fail, Paging, V1Body, V1Path, V1Query, Who};
use crate::app::AppState;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/v1/status", get(status))
        .route("/v1/status/", get(status))
        .route("/v1/sys/backup", get(backup))
        .route("/v1/sys/configuration", get(configuration))
        .route("/v1/sys/uiconfiguration", get(ui_configuration))
        .route("/v1/sys/cookiesettings", get(cookie_settings))
        .route("/v1/metrics", get(crate::api::system::metrics))
        .route("/v1/request/{request}", get(request_get).post(request_approve).delete(request_cancel))
        .route("/v1/requests/{mode}/{identity}", get(request_list))
        .route("/v1/requests", get(request_list_all))
        .route("/v1/audit/admin", get(audit_all))
        .route("/v1/audit/list/{token}", get(audit_list))
        .route("/v1/audit/get/{atoken}", get(audit_get))
        .route("/v1/prelogin/{mode}/{identity}/{code}/{captcha}", get(prelogin))
        .route("/v1/login/{mode}/{identity}/{tmp}", get(login))
        .route("/v1/captcha/{code}", get(captcha))
}

// ---- status and sys ----

async fn status(State(st): State<AppState>) -> Answer {
    if st.db().ping().await {
        text("OK")
    } else {
        Ok((StatusCode::INTERNAL_SERVER_ERROR, [(header::CONTENT_TYPE, "text/plain; charset=utf-8")], "error").into_response())
    }
}

/// The main tenant's root only, like Databunker's admin routes.
async fn admin(ctx: &Ctx) -> Result<(), Fail> {
    ctx.call("SystemGetSystemStats", json!({})).await.map(|_| ())
}

/// Databunker answers an empty 200 here on every backend, which looks like a backup and is not.
async fn backup(ctx: Ctx) -> Answer {
    admin(&ctx).await?;
    Err(Fail::v1("not a backup: back up the PostgreSQL database (ciphertext only) as docs/operations.md \"Backups\" describes"))
}

/// The settings a v1 client may want to know, in Databunker's section names; no secret, address,
/// token or key is part of it.
async fn configuration(State(st): State<AppState>, ctx: Ctx) -> Answer {
    admin(&ctx).await?;
    let c = st.config();
    ok(json!({"configuration": {
        "Generic": {
            "CreateUserWithoutAccessToken": false,
            "ListUsers": true,
            "DisableAudit": false,
        },
        "Policy": {
            "MaxSessionRetentionPeriod": "1h",
        },
        "Server": {
            "MaxBodyBytes": c.max_body_bytes,
            "Callbacks": c.callback_url.is_some(),
        },
        "Vault": "strongroom",
    }}))
}

async fn ui_configuration(State(st): State<AppState>, ctx: Ctx) -> Answer {
    let ui = crate::api::ui_conf::public(&st, ctx.tenant()).await?.ok_or(Fail::Denied)?;
    ok(json!({"ui": ui}))
}

/// Go marshals an empty script list as null when cookie-popup bases exist.
async fn cookie_settings(State(st): State<AppState>, ctx: Ctx) -> Answer {
    let ui = crate::api::ui_conf::public(&st, ctx.tenant()).await?.ok_or(Fail::Denied)?;
    let (rows, scripts) = crate::api::consent::cookie_settings(&st, ctx.tenant()).await?.unwrap_or_default();
    let scripts: Vec<Value> = scripts.into_iter().map(|(script, briefs)| json!({"script": script, "briefs": briefs})).collect();
    let scripts = if scripts.is_empty() && !rows.is_empty() { Value::Null } else { Value::Array(scripts) };
    ok(json!({"ui": ui, "rows": rows, "scripts": scripts}))
}

// ---- user requests ----

/// A v2 request in Databunker's fields and words.
fn request_v1(r: &Value) -> Value {
    let action = match r["requesttype"].as_str() {
        Some("update" | "patch") => "change-profile",
        Some("delete") => "forget-me",
        Some("appdata-update") => "change-app-data",
        Some("agreement-cancel") => "agreement-withdraw",
        _ => "other",
    };
    json!({
        "rtoken": r["requestuuid"], "token": r["token"], "action": action, "status": request_status(&r["status"]),
        "when": r["creationtime"], "reason": r["reason"],
    })
}

/// Databunker's request statuses: `open`, `approved`, `canceled`.
fn request_status(v2: &Value) -> &'static str {
    match v2.as_str() {
        Some("approved") => "approved",
        Some("cancelled") => "canceled",
        _ => "open",
    }
}

async fn request_get(ctx: Ctx, V1Path(request): V1Path<String>) -> Answer {
    let request = uuid_arg(&request)?;
    let v = ctx.call("UserRequestGet", json!({ "requestuuid": request })).await?;
    let r = &v["request"];
    let mut out = request_v1(r);
    // `status` is the answer's own; the request's moves to `requeststatus`.
    out["requeststatus"] = out["status"].take();
    out.as_object_mut().map(|o| o.remove("status"));
    out["change"] = r["change"].clone();
    if let Some(app) = r["change"].get("appname") {
        out["app"] = app.clone();
    }
    if let Some(token) = r["token"].as_str() {
        if let Ok(user) = ctx.call("UserGet", json!({"mode": "token", "identity": token})).await {
            out["original"] = user["profile"].clone();
        }
    }
    ok(out)
}

fn reason(body: &V1Body) -> Result<Value, Fail> {
    let m = body.object()?.unwrap_or_default();
    Ok(super::string_field(&m, "reason").map_or(Value::Null, Value::String))
}

/// A decision on a request that is no longer open: Databunker's `wrong status`.
fn decided(e: Fail) -> Fail {
    match e {
        Fail::Error(_, m) if m.contains("not open") || m.contains("already") => Fail::v1(format!("wrong status: {m}")),
        other => other,
    }
}

async fn request_approve(ctx: Ctx, V1Path(request): V1Path<String>, body: V1Body) -> Answer {
    let request = uuid_arg(&request)?;
    ctx.call("UserRequestApprove", json!({"requestuuid": request, "reason": reason(&body)?})).await.map_err(decided)?;
    ok(json!({}))
}

async fn request_cancel(ctx: Ctx, V1Path(request): V1Path<String>, body: V1Body) -> Answer {
    let request = uuid_arg(&request)?;
    ctx.call("UserRequestCancel", json!({"requestuuid": request, "reason": reason(&body)?})).await.map_err(decided)?;
    ok(json!({}))
}

/// Go marshals a user's empty request list as null.
async fn request_list(ctx: Ctx, V1Path((mode, identity)): V1Path<(String, String)>, V1Query(p): V1Query<Paging>) -> Answer {
    let who = Who::parse(&mode, &identity)?;
    let (offset, limit) = p.get();
    let v = ctx.call("UserRequestListUserRequests", who.body(json!({"offset": offset, "limit": limit}))).await?;
    let rows: Vec<Value> = v["rows"].as_array().cloned().unwrap_or_default().iter().map(request_v1).collect();
    let total = v.get("total").cloned().unwrap_or_else(|| rows.len().into());
    ok(json!({"total": total, "rows": if rows.is_empty() { Value::Null } else { Value::Array(rows) }}))
}

/// All requests with `status` (default `open`), newest first.
async fn request_list_all(ctx: Ctx, V1Query(p): V1Query<Paging>) -> Answer {
    let (offset, limit) = p.get();
    let wanted = p.status.clone().unwrap_or_else(|| "open".into());
    let unlock = ctx.call("BulkListUnlock", json!({})).await?;
    // Filtered here, so page through everything the bulk listing gives.
    let mut all = Vec::new();
    let mut from = 0;
    loop {
        let v = ctx.call("BulkListAllUserRequests", json!({"unlockuuid": unlock["unlockuuid"], "offset": from, "limit": 100})).await?;
        let page = v["rows"].as_array().cloned().unwrap_or_default();
        let n = page.len();
        all.extend(page.into_iter().filter(|r| request_status(&r["status"]) == wanted));
        if n < 100 {
            break;
        }
        from += 100;
    }
    let total = all.len();
    let rows: Vec<Value> = all.iter().skip(offset as usize).take(limit as usize).map(request_v1).collect();
    ok(json!({"total": total, "rows": rows}))
}

// ---- audit ----

/// A v2 audit row in Databunker's list fields (details blanked, `more` set).
fn event_v1(e: &Value) -> Value {
    let action = e["eventtype"].as_str().unwrap_or_default();
    json!({"atoken": e["auditeventuuid"], "title": crate::audit::title(action), "action": action, "when": unix(&e["timestamp"]), "more": true})
}

/// Databunker's times are unix seconds; v2 audit times are RFC 3339.
fn unix(t: &Value) -> Value {
    t.as_str()
        .and_then(|s| humantime::parse_rfc3339(s).ok())
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map_or(Value::Null, |d| d.as_secs().into())
}

async fn audit_all(ctx: Ctx, V1Query(p): V1Query<Paging>) -> Answer {
    let (offset, limit) = p.get();
    let unlock = ctx.call("BulkListUnlock", json!({})).await?;
    let v = ctx.call("BulkListAllAuditEvents", json!({"unlockuuid": unlock["unlockuuid"], "offset": offset, "limit": limit})).await?;
    let rows: Vec<Value> = v["rows"].as_array().cloned().unwrap_or_default().iter().map(event_v1).collect();
    let total = v.get("total").cloned().unwrap_or_else(|| rows.len().into());
    ok(json!({"total": total, "rows": rows}))
}

async fn audit_list(ctx: Ctx, V1Path(token): V1Path<String>, V1Query(p): V1Query<Paging>) -> Answer {
    let who = Who::parse("token", &token)?;
    let (offset, limit) = p.get();
    let v = ctx.call("AuditListUserEvents", who.body(json!({"offset": offset, "limit": limit}))).await?;
    let rows: Vec<Value> = v["rows"].as_array().cloned().unwrap_or_default().iter().map(event_v1).collect();
    let total = v.get("total").cloned().unwrap_or_else(|| rows.len().into());
    ok(json!({"total": total, "rows": rows}))
}

async fn audit_get(ctx: Ctx, V1Path(atoken): V1Path<String>) -> Answer {
    let atoken = uuid_arg(&atoken)?;
    let v = ctx.call("AuditGetEvent", json!({ "auditeventuuid": atoken })).await?;
    let details = v["details"].clone();
    ok(json!({"event": {
        "atoken": atoken, "action": v["eventtype"], "title": crate::audit::title(v["eventtype"].as_str().unwrap_or_default()),
        "when": unix(&v["timestamp"]),
        "before": details.get("before").cloned().unwrap_or(Value::Null),
        "after": details.get("after").cloned().unwrap_or(Value::Null),
        "debug": details,
    }}))
}

// ---- passwordless login ----

/// Sends a one-time code when the captcha holds. The answer is the same whether or not anyone
/// has that email or phone (Databunker tells an unknown email apart with a 403).
async fn prelogin(ctx: Ctx, V1Path((mode, identity, code, captcha)): V1Path<(String, String, String, String)>) -> Answer {
    if mode != "email" && mode != "phone" {
        return Err(Fail::v1("bad mode"));
    }
    let who = Who::parse(&mode, &identity)?;
    match ctx.raw("UserPrelogin", who.body(json!({"code": code, "captchacode": captcha}))).await {
        (StatusCode::BAD_REQUEST, v) if v["message"].as_str().is_some_and(|m| m.starts_with("captcha-error")) => Ok((
            [(header::CONTENT_TYPE, "application/json; charset=utf-8")],
            json!({"status": "error", "result": "captcha-error"}).to_string(),
        )
            .into_response()),
        other => {
            super::from_v2(other)?;
            ok(json!({"result": "done"}))
        }
    }
}

/// The code for a lease of the person's own (role `user-self`): the xtoken Databunker calls a
/// login xtoken.
async fn login(ctx: Ctx, V1Path((mode, identity, tmp)): V1Path<(String, String, String)>) -> Answer {
    if mode != "email" && mode != "phone" {
        return Err(Fail::v1("bad mode"));
    }
    let who = Who::parse(&mode, &identity)?;
    let v = ctx.call("UserLogin", who.body(json!({ "smscode": tmp }))).await.map_err(|e| match e {
        // Databunker says no more than this about a wrong, used or expired code.
        Fail::Denied | Fail::Error(StatusCode::BAD_REQUEST | StatusCode::METHOD_NOT_ALLOWED, _) => Fail::v1("internal error"),
        other => other,
    })?;
    ok(json!({"xtoken": v["xtoken"], "token": v["token"]}))
}

/// The captcha image of a code from CaptchaCreate (an SVG, where Databunker draws a PNG).
async fn captcha(State(st): State<AppState>, ctx: Ctx, V1Path(code): V1Path<String>) -> Answer {
    let svg = crate::api::login::captcha_image(&st, ctx.tenant(), &code).map_err(|_| Fail::v1("bad code"))?;
    Ok(([(header::CONTENT_TYPE, "image/svg+xml"), (header::CACHE_CONTROL, "no-store")], svg).into_response())
}
