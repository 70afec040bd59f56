//! SystemGetSystemStats, SystemGetUserReport, SystemGetUserHTMLReport, SystemGetUserProfiles,
//! SystemSearchUserProfiles, SystemDeleteUserProfiles, SystemRestoreUserProfile: the main
//! tenant's root only (policy resource "system").
//!
//! SystemDeleteUserProfiles soft-deletes: the user's row stays, absent to every lookup, for the
//! restore window (`STRONGROOM_RESTORE_WINDOW_S`, default 30 days), within which
//! SystemRestoreUserProfile brings it back; the retention sweeper then deletes it for good
//! (`UserPurged`). Its blind-index rows stay too, so the identity stays reserved: creating a
//! user with a soft-deleted user's email (login, phone, custom) is a 409 until the purge, and a
//! restore can never collide. UserDelete (the data subject's erasure) still deletes at once.
//!
//! Cross-tenant lookups go tenant by tenant, each in its own [`TenantTx`] with that tenant's
//! keys: a blind index is keyed per tenant, so the identity is re-indexed for every tenant and
//! looked up through the normal row-level-security path. The BYPASSRLS reader role (SELECT on
//! `users` only) is used just for the user count of the stats; it cannot read `user_index`.

use std::sync::Arc;

use axum::extract::State;
use axum::routing::post;
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{json, Map, Value};

use super::body::{int_or_string, Body, Metadata};
use super::bulk_lists::{all_modes, find_in};
use super::users::find_user;
use super::{fields, Call};
use crate::app::AppState;
use crate::auth::Claimed;
use crate::error::{Error, Result};
use crate::keys::keyring::TenantKeys;
use crate::records::{open_current, open_profile, user_key, Mode};
use crate::store::now_secs;
use crate::store::tenants::Tenant;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/v2/SystemGetSystemStats", post(system_stats))
        .route("/v2/SystemGetUserReport", post(user_report))
        .route("/v2/SystemGetUserHTMLReport", post(user_html_report))
        .route("/v2/SystemGetUserProfiles", post(get_user_profiles))
        .route("/v2/SystemSearchUserProfiles", post(search_user_profiles))
        .route("/v2/SystemDeleteUserProfiles", post(delete_user_profiles))
        .route("/v2/SystemRestoreUserProfile", post(restore_user_profile))
}

#[derive(Deserialize)]
struct StatsReq {
    #[serde(default)]
    request_metadata: Metadata,
}

#[derive(Deserialize)]
struct ReportReq {
    mode: String,
    identity: String,
    #[serde(default)]
    request_metadata: Metadata,
}

#[derive(Deserialize)]
struct ProfilesReq {
    #[serde(default)]
    mode: Option<String>,
    #[serde(default)]
    identity: String,
    #[serde(default)]
    unlockuuid: String,
    #[serde(default, deserialize_with = "int_or_string")]
    tenantid: Option<i64>,
    #[serde(default)]
    tenantname: Option<String>,
    #[serde(default)]
    request_metadata: Metadata,
}

#[derive(Deserialize)]
struct RestoreReq {
    #[serde(default)]
    token: String,
    #[serde(default)]
    unlockuuid: String,
    #[serde(default, deserialize_with = "int_or_string")]
    tenantid: Option<i64>,
    #[serde(default)]
    tenantname: Option<String>,
    #[serde(default)]
    request_metadata: Metadata,
}

async fn all_tenants(st: &AppState) -> Result<Vec<Tenant>> {
    Ok(st.db().list_tenants(0, i64::MAX).await?.1)
}

async fn system_stats(State(st): State<AppState>, claimed: Claimed, Body(req): Body<StatsReq>) -> Result<Json<Value>> {
    let call = Call::open(&st, &claimed, "SystemGetSystemStats", req.request_metadata).await?;
    let result = async {
        let numusers = st.db().count_all_users().await?;
        let numtenants = st.db().count_tenants().await?;
        let (mut numtokens, mut numsessions) = (0i64, 0i64);
        // The reader role has no grant on tokens or sessions: count them tenant by tenant.
        for id in st.db().tenant_ids().await? {
            let mut tx = st.db().tenant_tx(id).await?;
            numtokens += tx.count_live_tokens().await?;
            numsessions += tx.count_live_sessions().await?;
            tx.rollback().await?;
        }
        let stats = json!({"numusers": numusers, "numtenants": numtenants, "numtokens": numtokens, "numsessions": numsessions});
        Ok(fields([("stats", stats)]))
    }
    .await;
    call.finish(result).await
}

/// Everything the vault holds about one user of the caller's tenant (a GDPR access request).
async fn build_report(call: &mut Call, mode: &str, identity: &str) -> Result<Value> {
    let (user, key) = find_user(call, mode, identity).await?;
    let mut profile = open_current(&call.keys, &key, &user)?;
    call.mask_profile(&mut profile).await;
    let mut versions = Vec::new();
    for (v, optime, md5) in call.tx.user_versions(user.id).await? {
        let mut old = match call.tx.user_version(user.id, v).await? {
            Some(row) => open_profile(&call.keys, &key, &user.token, row.version, &row.profile)?,
            None => Value::Null,
        };
        call.mask_profile(&mut old).await;
        versions.push(json!({"version": v, "optime": optime, "md5": md5, "profile": old}));
    }
    versions.push(json!({"version": user.version, "optime": user.updated_at, "md5": user.digest, "profile": profile.clone()}));
    let appnames = call.tx.user_appnames(user.id).await?;
    let sessions = call.tx.user_sessions(user.id).await?.len();
    let now = now_secs();
    let mut agreements = Vec::new();
    for a in call.tx.user_agreements(user.id).await? {
        agreements.push(super::consent::agreement_json(&call.keys, &key, &user.token, &a, now)?);
    }
    let groups = super::groups::grouproles(&mut call.tx, &user).await?;
    let auditevents = call.tx.count_user_audit_events(&user.token).await?;
    Ok(json!({
        "token": user.token,
        "tenantname": call.who.tenant_name,
        "profile": profile,
        "version": user.version,
        "creationtime": user.created_at,
        "lastmodifiedtime": user.updated_at,
        "versions": versions,
        "appnames": appnames,
        "sessions": sessions,
        "agreements": agreements,
        "grouproles": groups,
        "auditevents": auditevents,
    }))
}

async fn user_report(State(st): State<AppState>, claimed: Claimed, Body(req): Body<ReportReq>) -> Result<Json<Value>> {
    let mut call = Call::open(&st, &claimed, "SystemGetUserReport", req.request_metadata).await?;
    let result = build_report(&mut call, &req.mode, &req.identity).await.map(|r| fields([("report", r)]));
    call.finish(result).await
}

async fn user_html_report(State(st): State<AppState>, claimed: Claimed, Body(req): Body<ReportReq>) -> Result<Json<Value>> {
    let mut call = Call::open(&st, &claimed, "SystemGetUserHTMLReport", req.request_metadata).await?;
    let result = build_report(&mut call, &req.mode, &req.identity).await.map(|r| fields([("html", render_html(&r).into())]));
    call.finish(result).await
}

/// HTML-escapes text for element content and quoted attribute values.
pub fn escape_html(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// A JSON value as nested HTML: objects become tables, arrays lists, scalars escaped text.
fn html_value(v: &Value, out: &mut String) {
    match v {
        Value::Object(o) if o.is_empty() => out.push_str("<em>none</em>"),
        Value::Object(o) => {
            out.push_str("<table>");
            for (k, v) in o {
                out.push_str("<tr><th>");
                out.push_str(&escape_html(k));
                out.push_str("</th><td>");
                html_value(v, out);
                out.push_str("</td></tr>");
            }
            out.push_str("</table>");
        }
        Value::Array(a) if a.is_empty() => out.push_str("<em>none</em>"),
        Value::Array(a) => {
            out.push_str("<ul>");
            for v in a {
                out.push_str("<li>");
                html_value(v, out);
                out.push_str("</li>");
            }
            out.push_str("</ul>");
        }
        Value::String(s) => out.push_str(&escape_html(s)),
        Value::Null => out.push_str("<em>null</em>"),
        other => out.push_str(&escape_html(&other.to_string())),
    }
}

/// The report as a self-contained HTML page: no scripts, no external resources.
fn render_html(report: &Value) -> String {
    let mut out = String::from(
        "<!DOCTYPE html><html><head><meta charset=\"utf-8\"><title>Personal data report</title></head><body><h1>Personal data report</h1>",
    );
    let sections = [
        ("Record", &["token", "tenantname", "version", "creationtime", "lastmodifiedtime", "sessions", "auditevents"][..]),
        ("Profile", &["profile"][..]),
        ("Profile versions", &["versions"][..]),
        ("Application data", &["appnames"][..]),
        ("Agreements", &["agreements"][..]),
        ("Groups", &["grouproles"][..]),
    ];
    for (title, keys) in sections {
        out.push_str("<h2>");
        out.push_str(title);
        out.push_str("</h2>");
        let part: Map<String, Value> = keys.iter().map(|k| (k.to_string(), report.get(*k).cloned().unwrap_or(Value::Null))).collect();
        if keys.len() == 1 {
            html_value(&part[keys[0]], &mut out);
        } else {
            html_value(&Value::Object(part), &mut out);
        }
    }
    out.push_str("</body></html>");
    out
}

/// The tenants a cross-tenant operation covers: all, or the one named by id and/or name (404
/// when it does not exist, or when id and name name different tenants).
async fn target_tenants(st: &AppState, id: Option<i64>, name: Option<&str>) -> Result<Vec<Tenant>> {
    let name = name.map(str::trim).filter(|n| !n.is_empty());
    let all = all_tenants(st).await?;
    if id.is_none() && name.is_none() {
        return Ok(all);
    }
    let t = all
        .into_iter()
        .find(|t| id.is_none_or(|i| i == t.id) && name.is_none_or(|n| n == t.name))
        .ok_or_else(|| Error::not_found("tenant"))?;
    Ok(vec![t])
}

/// The modes to try for a System* lookup: the one given (checked against the identity), or
/// a 400 when it is missing, unknown, or `token` where `allow_token` is false.
fn modes_for(call: &Call, mode: Option<&str>, identity: &str, allow_token: bool) -> Result<Vec<Mode>> {
    if identity.trim().is_empty() {
        return Err(Error::bad("identity must not be empty"));
    }
    let Some(mode) = mode else { return Err(Error::bad("missing field `mode`")) };
    let mode = Mode::parse(mode)?;
    match mode {
        Mode::Token if !allow_token => Err(Error::bad("mode must be one of login, email, phone, custom")),
        Mode::Index(m) if call.keys.index(m, identity).is_none() => Err(Error::bad(format!("identity is not a valid {}", m.as_str()))),
        m => Ok(vec![m]),
    }
}

/// The keys of `tx`'s tenant for a cross-tenant operation; `None` for a tenant whose KEK was
/// destroyed (deleted and shredded; its rows linger only in an old database): it holds nothing
/// readable, so it is skipped rather than failing the whole operation.
async fn keys_unless_shredded(st: &AppState, call: &Call, tx: &mut crate::store::TenantTx) -> Result<Option<Arc<TenantKeys>>> {
    match crate::custody::rotation::tenant_keys(st.vault().tenant_keks(), &call.ring, tx).await {
        Ok(keys) => Ok(Some(keys)),
        Err(Error::TenantDeleted) => Ok(None),
        Err(e) => Err(e),
    }
}

/// `[{token, profile, tenantid, tenantname}]` of every user the identity names under one of
/// `modes`, tenant by tenant, each tenant read with its own keys and in its own scope. Each read
/// profile is also audited in its own tenant, bound to its user (`event`), so the data subject's
/// own audit trail shows the main tenant's root reading it.
async fn cross_tenant_profiles(st: &AppState, call: &Call, event: &str, modes: &[Mode], identity: &str) -> Result<Vec<Value>> {
    let mut rows = Vec::new();
    for t in all_tenants(st).await? {
        let mut tx = st.db().tenant_tx(t.id).await?;
        let Some(keys) = keys_unless_shredded(st, call, &mut tx).await? else {
            tx.rollback().await?;
            continue;
        };
        let found = find_in(&mut tx, &keys, modes, identity).await?;
        for u in &found {
            let key = user_key(&keys, u)?;
            let mut profile = open_current(&keys, &key, u)?;
            call.mask_profile(&mut profile).await;
            let mut draft = crate::audit::Draft { user_token: Some(u.token.clone()), user_key: Some(key), ..Default::default() };
            draft.details.insert("crosstenant".into(), true.into());
            crate::audit::append(&mut tx, &keys, event, &call.who.actor(), crate::audit::Outcome::Ok, draft).await?;
            rows.push(json!({"token": u.token, "profile": profile, "tenantid": t.id, "tenantname": t.name}));
        }
        if found.is_empty() {
            tx.rollback().await?;
        } else {
            tx.commit().await?;
        }
    }
    Ok(rows)
}

fn note_found(call: &mut Call, rows: &[Value]) {
    let found: Vec<Value> = rows.iter().map(|r| json!({"token": r["token"], "tenantid": r["tenantid"]})).collect();
    call.note("found", Value::Array(found));
}

async fn get_user_profiles(State(st): State<AppState>, claimed: Claimed, Body(req): Body<ProfilesReq>) -> Result<Json<Value>> {
    let mut call = Call::open(&st, &claimed, "SystemGetUserProfiles", req.request_metadata).await?;
    let result = async {
        call.require_unlock(&req.unlockuuid).await?;
        let modes = modes_for(&call, req.mode.as_deref(), &req.identity, false)?;
        call.note("mode", req.mode.clone().unwrap_or_default());
        let rows = cross_tenant_profiles(&st, &call, "SystemGetUserProfiles", &modes, &req.identity).await?;
        note_found(&mut call, &rows);
        Ok(fields([("total", rows.len().into()), ("rows", Value::Array(rows))]))
    }
    .await;
    call.finish(result).await
}

async fn search_user_profiles(State(st): State<AppState>, claimed: Claimed, Body(req): Body<ProfilesReq>) -> Result<Json<Value>> {
    let mut call = Call::open(&st, &claimed, "SystemSearchUserProfiles", req.request_metadata).await?;
    let result = async {
        call.require_unlock(&req.unlockuuid).await?;
        if req.identity.trim().is_empty() {
            return Err(Error::bad("identity must not be empty"));
        }
        let rows = cross_tenant_profiles(&st, &call, "SystemSearchUserProfiles", &all_modes(), &req.identity).await?;
        note_found(&mut call, &rows);
        Ok(fields([("total", rows.len().into()), ("rows", Value::Array(rows))]))
    }
    .await;
    call.finish(result).await
}

/// Soft-deletes every match, tenant by tenant: each tenant's deletions and an audit event of its
/// own (naming the main tenant's actor) commit together in that tenant. Restorable with
/// SystemRestoreUserProfile for the restore window.
async fn delete_user_profiles(State(st): State<AppState>, claimed: Claimed, Body(req): Body<ProfilesReq>) -> Result<Json<Value>> {
    let mut call = Call::open(&st, &claimed, "SystemDeleteUserProfiles", req.request_metadata).await?;
    let result = async {
        call.require_unlock(&req.unlockuuid).await?;
        let modes = modes_for(&call, req.mode.as_deref(), &req.identity, true)?;
        let tenants = target_tenants(&st, req.tenantid, req.tenantname.as_deref()).await?;
        call.note("mode", req.mode.clone().unwrap_or_default());
        let actor = format!("{}@{}", call.who.actor(), call.who.tenant_name);
        let mut rows = Vec::new();
        let mut failed = Vec::new();
        let now = now_secs();
        let restorable_until = now.saturating_add(st.config().restore_window_s);
        for t in tenants {
            // Each tenant commits on its own; one that fails is reported, not hidden behind an
            // error for the whole call while others' deletions stand.
            let done = async {
                let mut tx = st.db().tenant_tx(t.id).await?;
                let Some(keys) = keys_unless_shredded(&st, &call, &mut tx).await? else {
                    tx.rollback().await?;
                    return Ok(Vec::new());
                };
                let found = find_in(&mut tx, &keys, &modes, &req.identity).await?;
                let mut deleted = Vec::new();
                for u in &found {
                    if tx.soft_delete_user(u.id, now).await? {
                        let mut draft = crate::audit::Draft { user_token: Some(u.token.clone()), ..Default::default() };
                        draft.details.insert("by".into(), actor.clone().into());
                        draft.details.insert("restorable_until".into(), restorable_until.into());
                        crate::audit::append(&mut tx, &keys, "SystemDeleteUserProfiles", &actor, crate::audit::Outcome::Ok, draft).await?;
                        deleted.push(json!({"token": u.token, "tenantid": t.id, "tenantname": t.name}));
                    }
                }
                if deleted.is_empty() {
                    tx.rollback().await?;
                } else {
                    tx.commit().await?;
                }
                Ok::<_, Error>(deleted)
            }
            .await;
            match done {
                Ok(deleted) => rows.extend(deleted),
                Err(e) => {
                    tracing::warn!(tenant = t.id, error = %e, "SystemDeleteUserProfiles: a tenant failed; the others stand");
                    failed.push(json!({"tenantid": t.id, "tenantname": t.name, "status": e.status().as_u16()}));
                }
            }
        }
        note_found(&mut call, &rows);
        if !failed.is_empty() {
            call.note("failed", Value::Array(failed.clone()));
        }
        if rows.is_empty() {
            return Err(if failed.is_empty() {
                Error::not_found("user record")
            } else {
                Error::Unavailable(format!("{} tenant(s) could not be searched; nothing was deleted", failed.len()))
            });
        }
        if !failed.is_empty() {
            return Ok(fields([("total", rows.len().into()), ("rows", Value::Array(rows)), ("failed", Value::Array(failed))]));
        }
        Ok(fields([("total", rows.len().into()), ("rows", Value::Array(rows))]))
    }
    .await;
    call.finish(result).await
}

/// Brings back a user soft-deleted by SystemDeleteUserProfiles within the restore window, in
/// the named tenant (or whichever tenant holds the token): 404 when no tenant holds a
/// soft-deleted user with that token still inside the window (never deleted, deleted for good
/// by UserDelete, expired, or purged). The restore and an audit event naming the main tenant's
/// actor commit together in that tenant.
async fn restore_user_profile(State(st): State<AppState>, claimed: Claimed, Body(req): Body<RestoreReq>) -> Result<Json<Value>> {
    let mut call = Call::open(&st, &claimed, "SystemRestoreUserProfile", req.request_metadata).await?;
    let result = async {
        call.require_unlock(&req.unlockuuid).await?;
        let token = req.token.trim();
        if token.is_empty() {
            return Err(Error::bad("token must not be empty"));
        }
        call.note("token", token);
        let tenants = target_tenants(&st, req.tenantid, req.tenantname.as_deref()).await?;
        let actor = format!("{}@{}", call.who.actor(), call.who.tenant_name);
        let now = now_secs();
        let since = now.saturating_sub(st.config().restore_window_s);
        for t in tenants {
            let mut tx = st.db().tenant_tx(t.id).await?;
            let Some(u) = tx.soft_deleted_user(token, since, now).await? else {
                tx.rollback().await?;
                continue;
            };
            let Some(keys) = keys_unless_shredded(&st, &call, &mut tx).await? else {
                tx.rollback().await?;
                continue;
            };
            let key = user_key(&keys, &u)?;
            let mut profile = open_current(&keys, &key, &u)?;
            if !tx.restore_user(u.id).await? {
                tx.rollback().await?;
                continue;
            }
            let mut draft = crate::audit::Draft { user_token: Some(u.token.clone()), ..Default::default() };
            draft.details.insert("by".into(), actor.clone().into());
            crate::audit::append(&mut tx, &keys, "SystemRestoreUserProfile", &actor, crate::audit::Outcome::Ok, draft).await?;
            tx.commit().await?;
            call.note("tenantid", t.id);
            call.mask_profile(&mut profile).await;
            return Ok(fields([("result", "restored".into()), ("token", u.token.into()), ("profile", profile)]));
        }
        Err(Error::not_found("deleted user record"))
    }
    .await;
    call.finish(result).await
}
