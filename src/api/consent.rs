//! Consent: LegalBasis*, Agreement*, ProcessingActivity*.
//!
//! A legal basis is named by its `brief` (a lowercase slug); a user's agreement to it records
//! status and times in the clear and its personal fields (agreementmethod, referencecode,
//! lastmodifiedby) sealed under the user's key, so they die with the user. A withdrawn agreement
//! stays on record with the time of withdrawal. A required legal basis (`requiredflag`) cannot be
//! withdrawn, neither by one user (AgreementCancel) nor for all (AgreementRevokeAll). A legal
//! basis with agreements still in force cannot be deleted. AgreementCancelRequest belongs to the
//! user-request family and is not served here.

use super::body::bool_or_string;
use axum::extract::State;
use axum::routing::post;
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{json, Map, Value};

use super::body::UserLookup as UserReq;
use super::body::{Body, Metadata, NoArgs};
use super::users::find_user;
use super::{fields, Call};
use crate::app::AppState;
use crate::auth::Claimed;
use crate::error::{Error, Result};
use crate::keys::envelope::Key;
use crate::keys::keyring::TenantKeys;
use crate::store::consent::{ActivityFields, AgreementRow, BasisFields, BasisRow, NewAgreement};
use crate::store::now_secs;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/v2/LegalBasisCreate", post(legal_basis_create))
        .route("/v2/LegalBasisUpdate", post(legal_basis_update))
        .route("/v2/LegalBasisDelete", post(legal_basis_delete))
        .route("/v2/LegalBasisListAgreements", post(legal_basis_list))
        .route("/v2/AgreementAccept", post(agreement_accept))
        .route("/v2/AgreementGet", post(agreement_get))
        .route("/v2/AgreementListUserAgreements", post(agreement_list_user))
        .route("/v2/AgreementCancel", post(agreement_cancel))
        .route("/v2/AgreementRevokeAll", post(agreement_revoke_all))
        .route("/v2/ProcessingActivityCreate", post(activity_create))
        .route("/v2/ProcessingActivityUpdate", post(activity_update))
        .route("/v2/ProcessingActivityDelete", post(activity_delete))
        .route("/v2/ProcessingActivityLinkLegalBasis", post(activity_link))
        .route("/v2/ProcessingActivityUnlinkLegalBasis", post(activity_unlink))
        .route("/v2/ProcessingActivityListActivities", post(activity_list))
}

/// Table name in the additional data of sealed agreement fields.
const AGREEMENTS: &str = "agreements";
/// Longest free-text field (descriptions, scripts, reference codes).
const MAX_TEXT: usize = 4096;

// ---------------------------------------------------------------- request bodies

#[derive(Deserialize)]
struct BasisCreateReq {
    brief: String,
    #[serde(default)]
    status: Option<String>,
    #[serde(default)]
    module: Option<String>,
    #[serde(default)]
    fulldesc: Option<String>,
    #[serde(default)]
    shortdesc: Option<String>,
    #[serde(default)]
    basistype: Option<String>,
    #[serde(default)]
    requiredmsg: Option<String>,
    #[serde(default, deserialize_with = "bool_or_string")]
    requiredflag: Option<bool>,
    #[serde(default)]
    request_metadata: Metadata,
}

#[derive(Deserialize)]
struct BasisUpdateReq {
    brief: String,
    /// The new name; absent or empty keeps the current one (the SDKs send it only to rename).
    #[serde(default)]
    newbrief: Option<String>,
    #[serde(default)]
    status: Option<String>,
    #[serde(default)]
    module: Option<String>,
    #[serde(default)]
    fulldesc: Option<String>,
    #[serde(default)]
    shortdesc: Option<String>,
    #[serde(default)]
    basistype: Option<String>,
    #[serde(default)]
    requiredmsg: Option<String>,
    #[serde(default, deserialize_with = "bool_or_string")]
    requiredflag: Option<bool>,
    #[serde(default)]
    request_metadata: Metadata,
}

#[derive(Deserialize)]
struct BriefReq {
    brief: String,
    #[serde(default)]
    request_metadata: Metadata,
}

#[derive(Deserialize)]
struct AcceptReq {
    mode: String,
    identity: String,
    brief: String,
    #[serde(default)]
    agreementmethod: Option<String>,
    #[serde(default)]
    referencecode: Option<String>,
    #[serde(default)]
    starttime: Option<Value>,
    #[serde(default)]
    finaltime: Option<Value>,
    #[serde(default)]
    status: Option<String>,
    #[serde(default)]
    lastmodifiedby: Option<String>,
    #[serde(default)]
    request_metadata: Metadata,
}

#[derive(Deserialize)]
struct UserBriefReq {
    mode: String,
    identity: String,
    brief: String,
    #[serde(default)]
    request_metadata: Metadata,
}

#[derive(Deserialize)]
struct ActivityCreateReq {
    activity: String,
    #[serde(default)]
    title: Option<String>,
    #[serde(default)]
    script: Option<String>,
    #[serde(default)]
    fulldesc: Option<String>,
    #[serde(default)]
    applicableto: Option<String>,
    #[serde(default)]
    request_metadata: Metadata,
}

#[derive(Deserialize)]
struct ActivityUpdateReq {
    activity: String,
    /// The new name; absent or empty keeps the current one.
    #[serde(default)]
    newactivity: Option<String>,
    #[serde(default)]
    title: Option<String>,
    #[serde(default)]
    script: Option<String>,
    #[serde(default)]
    fulldesc: Option<String>,
    #[serde(default)]
    applicableto: Option<String>,
    #[serde(default)]
    request_metadata: Metadata,
}

#[derive(Deserialize)]
struct ActivityReq {
    activity: String,
    #[serde(default)]
    request_metadata: Metadata,
}

#[derive(Deserialize)]
struct LinkReq {
    activity: String,
    brief: String,
    #[serde(default)]
    request_metadata: Metadata,
}

// ---------------------------------------------------------------- validation

/// A brief or activity name: trimmed, lowercased, 1-64 of `[a-z0-9_-]`.
fn slug(field: &str, raw: &str) -> Result<String> {
    let s = raw.trim().to_ascii_lowercase();
    let ok = !s.is_empty() && s.len() <= 64 && s.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-');
    if ok {
        Ok(s)
    } else {
        Err(Error::bad(format!("{field} must be 1-64 characters of a-z, 0-9, _ or -")))
    }
}

/// An optional free-text field, bounded in length.
fn text(field: &str, value: Option<&String>) -> Result<Option<String>> {
    match value {
        Some(v) if v.chars().count() > MAX_TEXT => Err(Error::bad(format!("{field} must be at most {MAX_TEXT} characters"))),
        Some(v) => Ok(Some(v.clone())),
        None => Ok(None),
    }
}

fn basis_status(value: Option<&String>) -> Result<Option<String>> {
    match value.map(|s| s.trim().to_ascii_lowercase()) {
        None => Ok(None),
        Some(s) if s.is_empty() => Ok(None),
        Some(s) if s == "active" || s == "inactive" => Ok(Some(s)),
        Some(_) => Err(Error::bad("status must be active or inactive")),
    }
}

fn agreement_status(value: Option<&String>) -> Result<String> {
    match value.map(|s| s.trim().to_ascii_lowercase()) {
        None => Ok("active".into()),
        Some(s) if s.is_empty() => Ok("active".into()),
        Some(s) if s == "pending" || s == "active" || s == "expired" => Ok(s),
        Some(_) => Err(Error::bad("status must be pending, active or expired")),
    }
}

/// A time field (see `api::when`); 0 means none, as Databunker clients send it.
fn time_field(field: &str, value: Option<&Value>, now: i64) -> Result<Option<i64>> {
    if matches!(value, Some(v) if v == &Value::from(0) || v.as_str().is_some_and(|s| s.trim() == "0")) {
        return Ok(None);
    }
    Ok(super::when::parse_when(field, &value.cloned())?.map(|w| w.resolve(now)))
}

// ---------------------------------------------------------------- public reads

/// What a cookie banner shows, public like the banner itself (Databunker's cookiesettings): the
/// active legal bases of module `cookie-popup`, and the scripts of the processing activities
/// linked to them, each with those briefs. `None`: no such tenant.
pub async fn cookie_settings(st: &AppState, tenant: &str) -> Result<Option<(Vec<Value>, Vec<(String, Vec<String>)>)>> {
    let Some(mut tx) = st.db().tenant_tx_by_name(tenant).await? else { return Ok(None) };
    let bases: Vec<BasisRow> =
        tx.legal_bases().await?.into_iter().filter(|b| b.fields.module == "cookie-popup" && b.fields.status == "active").collect();
    let mut scripts = Vec::new();
    for a in tx.activities().await? {
        let briefs: Vec<String> = a.briefs.iter().filter(|b| bases.iter().any(|x| &x.fields.brief == *b)).cloned().collect();
        if !briefs.is_empty() && !a.fields.script.is_empty() {
            scripts.push((a.fields.script.clone(), briefs));
        }
    }
    tx.commit().await?;
    Ok(Some((bases.iter().map(basis_json).collect(), scripts)))
}

// ---------------------------------------------------------------- shaping

fn basis_json(b: &BasisRow) -> Value {
    let f = &b.fields;
    json!({
        "brief": f.brief,
        "status": f.status,
        "module": f.module,
        "fulldesc": f.fulldesc,
        "shortdesc": f.shortdesc,
        "basistype": f.basistype,
        "requiredmsg": f.requiredmsg,
        "requiredflag": f.requiredflag,
        "creationtime": b.created_at,
        "lastmodifiedtime": b.updated_at,
    })
}

/// Additional data binding sealed agreement fields to their user and legal basis (by id, so a
/// rename of the brief does not orphan them).
fn agreement_row_id(token: &str, basis_id: i64) -> String {
    format!("{token}/{basis_id}")
}

fn seal_personal(keys: &TenantKeys, user_key: &Key, token: &str, basis_id: i64, personal: &Value) -> Result<Vec<u8>> {
    let plain = zeroize::Zeroizing::new(serde_json::to_vec(personal)?);
    Ok(keys.seal_with(user_key, AGREEMENTS, &agreement_row_id(token, basis_id), &plain))
}

/// The agreement as clients see it; "expired" is computed from finaltime at `now`.
pub(super) fn agreement_json(keys: &TenantKeys, user_key: &Key, token: &str, a: &AgreementRow, now: i64) -> Result<Value> {
    let plain = keys.open_with(user_key, AGREEMENTS, &agreement_row_id(token, a.basis_id), &a.personal)?;
    let personal: Value = serde_json::from_slice(&plain)?;
    let in_force = a.status == "active" || a.status == "pending";
    let status = if in_force && a.finaltime != 0 && a.finaltime <= now { "expired" } else { a.status.as_str() };
    let field = |name: &str| personal.get(name).cloned().unwrap_or_else(|| Value::String(String::new()));
    Ok(json!({
        "token": token,
        "brief": a.brief,
        "status": status,
        "agreementmethod": field("agreementmethod"),
        "referencecode": field("referencecode"),
        "lastmodifiedby": field("lastmodifiedby"),
        "starttime": a.starttime,
        "finaltime": a.finaltime,
        "withdrawntime": a.withdrawn_at.unwrap_or(0),
        "creationtime": a.created_at,
        "lastmodifiedtime": a.updated_at,
    }))
}

fn activity_json(f: &ActivityFields, created: i64, updated: i64, briefs: &[String]) -> Value {
    json!({
        "activity": f.activity,
        "title": f.title,
        "script": f.script,
        "fulldesc": f.fulldesc,
        "applicableto": f.applicableto,
        "legalbases": briefs,
        "creationtime": created,
        "lastmodifiedtime": updated,
    })
}

async fn basis_or_404(call: &mut Call, brief: &str, lock: Lock) -> Result<BasisRow> {
    let found = match lock {
        Lock::None => call.tx.legal_basis(brief).await?,
        Lock::Share => call.tx.lock_legal_basis(brief, false).await?,
        Lock::Exclusive => call.tx.lock_legal_basis(brief, true).await?,
    };
    found.ok_or_else(|| Error::not_found("legal basis"))
}

#[derive(Clone, Copy)]
enum Lock {
    None,
    Share,
    Exclusive,
}

fn required_message(b: &BasisRow) -> String {
    if b.fields.requiredmsg.trim().is_empty() {
        format!("legal basis {} is required and cannot be withdrawn", b.fields.brief)
    } else {
        b.fields.requiredmsg.clone()
    }
}

// ---------------------------------------------------------------- legal bases

async fn legal_basis_create(State(st): State<AppState>, claimed: Claimed, Body(req): Body<BasisCreateReq>) -> Result<Json<Value>> {
    let mut call = Call::open(&st, &claimed, "LegalBasisCreate", req.request_metadata).await?;
    let result = async {
        let brief = slug("brief", &req.brief)?;
        call.note("brief", brief.as_str());
        let f = BasisFields {
            brief,
            status: basis_status(req.status.as_ref())?.unwrap_or_else(|| "active".into()),
            module: text("module", req.module.as_ref())?.unwrap_or_default(),
            fulldesc: text("fulldesc", req.fulldesc.as_ref())?.unwrap_or_default(),
            shortdesc: text("shortdesc", req.shortdesc.as_ref())?.unwrap_or_default(),
            basistype: text("basistype", req.basistype.as_ref())?.unwrap_or_default(),
            requiredmsg: text("requiredmsg", req.requiredmsg.as_ref())?.unwrap_or_default(),
            requiredflag: req.requiredflag.unwrap_or(false),
        };
        call.tx.insert_legal_basis(&f).await?;
        Ok(Map::new())
    }
    .await;
    call.finish(result).await
}

async fn legal_basis_update(State(st): State<AppState>, claimed: Claimed, Body(req): Body<BasisUpdateReq>) -> Result<Json<Value>> {
    let mut call = Call::open(&st, &claimed, "LegalBasisUpdate", req.request_metadata).await?;
    let result = async {
        let brief = slug("brief", &req.brief)?;
        let newbrief = match req.newbrief.as_deref().filter(|n| !n.is_empty()) {
            Some(n) => slug("newbrief", n)?,
            None => brief.clone(),
        };
        call.note("brief", brief.as_str());
        call.note("newbrief", newbrief.as_str());
        let current = basis_or_404(&mut call, &brief, Lock::Exclusive).await?;
        let mut f = current.fields.clone();
        f.brief = newbrief;
        if let Some(s) = basis_status(req.status.as_ref())? {
            f.status = s;
        }
        let set = |slot: &mut String, name: &str, v: Option<&String>| -> Result<()> {
            if let Some(v) = text(name, v)? {
                *slot = v;
            }
            Ok(())
        };
        set(&mut f.module, "module", req.module.as_ref())?;
        set(&mut f.fulldesc, "fulldesc", req.fulldesc.as_ref())?;
        set(&mut f.shortdesc, "shortdesc", req.shortdesc.as_ref())?;
        set(&mut f.basistype, "basistype", req.basistype.as_ref())?;
        set(&mut f.requiredmsg, "requiredmsg", req.requiredmsg.as_ref())?;
        if let Some(r) = req.requiredflag {
            f.requiredflag = r;
        }
        if !call.tx.update_legal_basis(current.id, &f).await? {
            return Err(Error::not_found("legal basis"));
        }
        Ok(Map::new())
    }
    .await;
    call.finish(result).await
}

async fn legal_basis_delete(State(st): State<AppState>, claimed: Claimed, Body(req): Body<BriefReq>) -> Result<Json<Value>> {
    let mut call = Call::open(&st, &claimed, "LegalBasisDelete", req.request_metadata).await?;
    let result = async {
        let brief = slug("brief", &req.brief)?;
        call.note("brief", brief.as_str());
        let basis = basis_or_404(&mut call, &brief, Lock::Exclusive).await?;
        let live = call.tx.live_agreements(basis.id, now_secs()).await?;
        if live > 0 {
            return Err(Error::Conflict(format!(
                "legal basis {brief} still has {live} agreement(s) in force; withdraw them (AgreementRevokeAll) before deleting it"
            )));
        }
        if !call.tx.delete_legal_basis(basis.id).await? {
            return Err(Error::not_found("legal basis"));
        }
        Ok(Map::new())
    }
    .await;
    call.finish(result).await
}

async fn legal_basis_list(State(st): State<AppState>, claimed: Claimed, Body(req): Body<NoArgs>) -> Result<Json<Value>> {
    let mut call = Call::open(&st, &claimed, "LegalBasisListAgreements", req.request_metadata).await?;
    let result = async {
        let rows: Vec<Value> = call.tx.legal_bases().await?.iter().map(basis_json).collect();
        call.note("count", rows.len());
        Ok(fields([("total", rows.len().into()), ("rows", Value::Array(rows))]))
    }
    .await;
    call.finish(result).await
}

// ---------------------------------------------------------------- agreements

async fn agreement_accept(State(st): State<AppState>, claimed: Claimed, Body(req): Body<AcceptReq>) -> Result<Json<Value>> {
    let mut call = Call::open(&st, &claimed, "AgreementAccept", req.request_metadata).await?;
    let result = async {
        let brief = slug("brief", &req.brief)?;
        call.note("brief", brief.as_str());
        let status = agreement_status(req.status.as_ref())?;
        let now = now_secs();
        let starttime = time_field("starttime", req.starttime.as_ref(), now)?.unwrap_or(now);
        let finaltime = time_field("finaltime", req.finaltime.as_ref(), now)?.unwrap_or(0);
        if finaltime != 0 && finaltime <= starttime {
            return Err(Error::bad("finaltime must be after starttime"));
        }
        let personal = json!({
            "agreementmethod": text("agreementmethod", req.agreementmethod.as_ref())?.unwrap_or_default(),
            "referencecode": text("referencecode", req.referencecode.as_ref())?.unwrap_or_default(),
            "lastmodifiedby": text("lastmodifiedby", req.lastmodifiedby.as_ref())?.unwrap_or_default(),
        });
        let (user, key) = find_user(&mut call, &req.mode, &req.identity).await?;
        // A shared lock: the basis cannot be deleted or changed under this acceptance.
        let basis = basis_or_404(&mut call, &brief, Lock::Share).await?;
        if basis.fields.status != "active" {
            return Err(Error::bad(format!("legal basis {brief} is inactive and cannot be accepted")));
        }
        let sealed = seal_personal(&call.keys, &key, &user.token, basis.id, &personal)?;
        call.tx
            .upsert_agreement(&NewAgreement {
                user_id: user.id,
                basis_id: basis.id,
                status: &status,
                starttime,
                finaltime,
                personal: &sealed,
            })
            .await?;
        call.note("agreementstatus", status.as_str());
        Ok(Map::new())
    }
    .await;
    call.finish(result).await
}

async fn agreement_get(State(st): State<AppState>, claimed: Claimed, Body(req): Body<UserBriefReq>) -> Result<Json<Value>> {
    let mut call = Call::open(&st, &claimed, "AgreementGet", req.request_metadata).await?;
    let result = async {
        let brief = slug("brief", &req.brief)?;
        call.note("brief", brief.as_str());
        let (user, key) = find_user(&mut call, &req.mode, &req.identity).await?;
        let basis = basis_or_404(&mut call, &brief, Lock::None).await?;
        let a = call.tx.agreement(user.id, basis.id).await?.ok_or_else(|| Error::not_found("agreement"))?;
        let agreement = agreement_json(&call.keys, &key, &user.token, &a, now_secs())?;
        Ok(fields([("agreement", agreement)]))
    }
    .await;
    call.finish(result).await
}

async fn agreement_list_user(State(st): State<AppState>, claimed: Claimed, Body(req): Body<UserReq>) -> Result<Json<Value>> {
    let mut call = Call::open(&st, &claimed, "AgreementListUserAgreements", req.request_metadata).await?;
    let result = async {
        let (user, key) = find_user(&mut call, &req.mode, &req.identity).await?;
        let now = now_secs();
        let rows = call
            .tx
            .user_agreements(user.id)
            .await?
            .iter()
            .map(|a| agreement_json(&call.keys, &key, &user.token, a, now))
            .collect::<Result<Vec<Value>>>()?;
        call.note("count", rows.len());
        Ok(fields([("total", rows.len().into()), ("rows", Value::Array(rows))]))
    }
    .await;
    call.finish(result).await
}

async fn agreement_cancel(State(st): State<AppState>, claimed: Claimed, Body(req): Body<UserBriefReq>) -> Result<Json<Value>> {
    let mut call = Call::open(&st, &claimed, "AgreementCancel", req.request_metadata).await?;
    let result = agreement_cancel_core(&mut call, &req.mode, &req.identity, &req.brief).await;
    call.finish(result).await
}

/// The body of AgreementCancel (also applied by an approved AgreementCancelRequest).
pub(crate) async fn agreement_cancel_core(call: &mut Call, mode: &str, identity: &str, brief: &str) -> Result<Map<String, Value>> {
    let brief = slug("brief", brief)?;
    call.note("brief", brief.as_str());
    let (user, _) = find_user(call, mode, identity).await?;
    let basis = basis_or_404(call, &brief, Lock::Share).await?;
    if call.tx.agreement(user.id, basis.id).await?.is_none() {
        return Err(Error::not_found("agreement"));
    }
    if basis.fields.requiredflag {
        return Err(Error::bad(required_message(&basis)));
    }
    if !call.tx.withdraw_agreement(user.id, basis.id, now_secs()).await? {
        return Err(Error::not_found("agreement"));
    }
    let extra = serde_json::json!({ "brief": brief });
    call.callback(crate::privacy::callbacks::Event::ConsentWithdrawal, Some(&user.token), extra).await?;
    Ok(Map::new())
}

async fn agreement_revoke_all(State(st): State<AppState>, claimed: Claimed, Body(req): Body<BriefReq>) -> Result<Json<Value>> {
    let mut call = Call::open(&st, &claimed, "AgreementRevokeAll", req.request_metadata).await?;
    let result = async {
        let brief = slug("brief", &req.brief)?;
        call.note("brief", brief.as_str());
        let basis = basis_or_404(&mut call, &brief, Lock::Exclusive).await?;
        if basis.fields.requiredflag {
            return Err(Error::bad(format!("{} (legal basis is required; clear requiredflag first)", required_message(&basis))));
        }
        let revoked = call.tx.withdraw_all(basis.id, now_secs()).await?;
        call.note("revoked", revoked);
        if revoked > 0 {
            let extra = serde_json::json!({ "brief": brief, "revoked": revoked });
            call.callback(crate::privacy::callbacks::Event::ConsentWithdrawal, None, extra).await?;
        }
        Ok(fields([("revoked", revoked.into())]))
    }
    .await;
    call.finish(result).await
}

// ---------------------------------------------------------------- processing activities

async fn activity_create(State(st): State<AppState>, claimed: Claimed, Body(req): Body<ActivityCreateReq>) -> Result<Json<Value>> {
    let mut call = Call::open(&st, &claimed, "ProcessingActivityCreate", req.request_metadata).await?;
    let result = async {
        let activity = slug("activity", &req.activity)?;
        call.note("activity", activity.as_str());
        let f = ActivityFields {
            activity,
            title: text("title", req.title.as_ref())?.unwrap_or_default(),
            script: text("script", req.script.as_ref())?.unwrap_or_default(),
            fulldesc: text("fulldesc", req.fulldesc.as_ref())?.unwrap_or_default(),
            applicableto: text("applicableto", req.applicableto.as_ref())?.unwrap_or_default(),
        };
        call.tx.insert_activity(&f).await?;
        Ok(Map::new())
    }
    .await;
    call.finish(result).await
}

async fn activity_update(State(st): State<AppState>, claimed: Claimed, Body(req): Body<ActivityUpdateReq>) -> Result<Json<Value>> {
    let mut call = Call::open(&st, &claimed, "ProcessingActivityUpdate", req.request_metadata).await?;
    let result = async {
        let activity = slug("activity", &req.activity)?;
        let newactivity = match req.newactivity.as_deref().filter(|n| !n.is_empty()) {
            Some(n) => slug("newactivity", n)?,
            None => activity.clone(),
        };
        call.note("activity", activity.as_str());
        call.note("newactivity", newactivity.as_str());
        let current = call.tx.activity(&activity).await?.ok_or_else(|| Error::not_found("processing activity"))?;
        let mut f = current.fields.clone();
        f.activity = newactivity;
        let set = |slot: &mut String, name: &str, v: Option<&String>| -> Result<()> {
            if let Some(v) = text(name, v)? {
                *slot = v;
            }
            Ok(())
        };
        set(&mut f.title, "title", req.title.as_ref())?;
        set(&mut f.script, "script", req.script.as_ref())?;
        set(&mut f.fulldesc, "fulldesc", req.fulldesc.as_ref())?;
        set(&mut f.applicableto, "applicableto", req.applicableto.as_ref())?;
        if !call.tx.update_activity(current.id, &f).await? {
            return Err(Error::not_found("processing activity"));
        }
        Ok(Map::new())
    }
    .await;
    call.finish(result).await
}

async fn activity_delete(State(st): State<AppState>, claimed: Claimed, Body(req): Body<ActivityReq>) -> Result<Json<Value>> {
    let mut call = Call::open(&st, &claimed, "ProcessingActivityDelete", req.request_metadata).await?;
    let result = async {
        let activity = slug("activity", &req.activity)?;
        call.note("activity", activity.as_str());
        let current = call.tx.activity(&activity).await?.ok_or_else(|| Error::not_found("processing activity"))?;
        if !call.tx.delete_activity(current.id).await? {
            return Err(Error::not_found("processing activity"));
        }
        Ok(Map::new())
    }
    .await;
    call.finish(result).await
}

/// Resolves both ends of a link: (activity id, basis id), 404 naming the missing one.
async fn link_ends(call: &mut Call, activity: &str, brief: &str) -> Result<(i64, i64)> {
    let activity = slug("activity", activity)?;
    let brief = slug("brief", brief)?;
    call.note("activity", activity.as_str());
    call.note("brief", brief.as_str());
    let a = call.tx.activity(&activity).await?.ok_or_else(|| Error::not_found("processing activity"))?;
    let b = basis_or_404(call, &brief, Lock::Share).await?;
    Ok((a.id, b.id))
}

async fn activity_link(State(st): State<AppState>, claimed: Claimed, Body(req): Body<LinkReq>) -> Result<Json<Value>> {
    let mut call = Call::open(&st, &claimed, "ProcessingActivityLinkLegalBasis", req.request_metadata).await?;
    let result = async {
        let (activity_id, basis_id) = link_ends(&mut call, &req.activity, &req.brief).await?;
        let created = call.tx.link_activity(activity_id, basis_id).await?;
        call.note("changed", created);
        Ok(Map::new())
    }
    .await;
    call.finish(result).await
}

async fn activity_unlink(State(st): State<AppState>, claimed: Claimed, Body(req): Body<LinkReq>) -> Result<Json<Value>> {
    let mut call = Call::open(&st, &claimed, "ProcessingActivityUnlinkLegalBasis", req.request_metadata).await?;
    let result = async {
        let (activity_id, basis_id) = link_ends(&mut call, &req.activity, &req.brief).await?;
        let removed = call.tx.unlink_activity(activity_id, basis_id).await?;
        call.note("changed", removed);
        Ok(Map::new())
    }
    .await;
    call.finish(result).await
}

async fn activity_list(State(st): State<AppState>, claimed: Claimed, Body(req): Body<NoArgs>) -> Result<Json<Value>> {
    let mut call = Call::open(&st, &claimed, "ProcessingActivityListActivities", req.request_metadata).await?;
    let result = async {
        let rows: Vec<Value> =
            call.tx.activities().await?.iter().map(|a| activity_json(&a.fields, a.created_at, a.updated_at, &a.briefs)).collect();
        call.note("count", rows.len());
        Ok(fields([("total", rows.len().into()), ("rows", Value::Array(rows))]))
    }
    .await;
    call.finish(result).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slugs_are_lowercased_and_bounded() {
        assert_eq!(slug("brief", " Marketing_EMAIL-1 ").unwrap(), "marketing_email-1");
        for bad in ["", "  ", "a b", "a.b", "ünï", &"a".repeat(65)] {
            assert!(slug("brief", bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn times_are_unix_seconds_or_durations() {
        let now = 1_700_000_000;
        let t = |v: Value| time_field("finaltime", Some(&v), now);
        assert_eq!(t(json!(1_800_000_000)).unwrap(), Some(1_800_000_000));
        assert_eq!(t(json!("1800000000")).unwrap(), Some(1_800_000_000));
        assert_eq!(t(json!("30d")).unwrap(), Some(now + 30 * 86_400));
        assert_eq!(t(json!("1y")).unwrap(), Some(now + 365 * 86_400));
        assert_eq!(t(json!("10min")).unwrap(), Some(now + 600));
        assert_eq!(t(json!("1m")).unwrap(), Some(now + 31 * 86_400), "m is a month");
        assert_eq!(t(json!("")).unwrap(), None);
        assert_eq!(t(json!(0)).unwrap(), None);
        assert_eq!(time_field("finaltime", None, now).unwrap(), None);
        for bad in [json!(-5), json!("d"), json!("5x"), json!("-1d"), json!(1.5), json!(true), json!("99999999999999999y")] {
            assert!(t(bad.clone()).is_err(), "{bad}");
        }
    }
}
