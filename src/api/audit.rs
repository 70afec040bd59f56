//! AuditListUserEvents, AuditGetEvent.

use axum::extract::State;
use axum::routing::post;
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{json, Value};

use super::body::{int_or_string, Body, Metadata};
use super::{fields, Call};
use crate::app::AppState;
use crate::auth::Claimed;
use crate::error::{Error, Result};

pub fn routes() -> Router<AppState> {
    Router::new().route("/v2/AuditListUserEvents", post(list_user_events)).route("/v2/AuditGetEvent", post(get_event))
}

pub const DEFAULT_LIMIT: i64 = 10;
pub const MAX_LIMIT: i64 = 1000;

/// Validated `(offset, limit)` of a listing.
pub fn page(offset: Option<i64>, limit: Option<i64>) -> Result<(i64, i64)> {
    let offset = offset.unwrap_or(0);
    // Above the cap is capped, not refused, as Pro does: a client asking for "everything"
    // pages through instead of failing.
    let limit = match limit {
        None | Some(0) => DEFAULT_LIMIT,
        Some(l) => l.min(MAX_LIMIT),
    };
    if offset < 0 || !(1..=MAX_LIMIT).contains(&limit) {
        return Err(Error::bad(format!("offset must be >= 0 and limit 1-{MAX_LIMIT}")));
    }
    Ok((offset, limit))
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
struct GetReq {
    auditeventuuid: String,
    #[serde(default)]
    request_metadata: Metadata,
}

async fn list_user_events(State(st): State<AppState>, claimed: Claimed, Body(req): Body<ListReq>) -> Result<Json<Value>> {
    let mut call = Call::open(&st, &claimed, "AuditListUserEvents", req.request_metadata).await?;
    let result = async {
        let (offset, limit) = page(req.offset, req.limit)?;
        let (user, _) = super::users::find_user(&mut call, &req.mode, &req.identity).await?;
        let (total, events) = call.tx.audit_for_user(&user.token, offset, limit).await?;
        let rows: Vec<Value> = events
            .iter()
            .map(|e| {
                json!({"auditeventuuid": e.uuid, "eventtype": e.event_type, "title": crate::audit::title(&e.event_type),
                       "timestamp": crate::audit::timestamp(e), "outcome": e.outcome, "actor": e.actor})
            })
            .collect();
        Ok(fields([("total", total.into()), ("rows", Value::Array(rows))]))
    }
    .await;
    call.finish(result).await
}

async fn get_event(State(st): State<AppState>, claimed: Claimed, Body(req): Body<GetReq>) -> Result<Json<Value>> {
    let mut call = Call::open(&st, &claimed, "AuditGetEvent", req.request_metadata).await?;
    let result = async {
        let id = req.auditeventuuid.trim();
        if id.is_empty() {
            return Err(Error::bad("auditeventuuid must not be empty"));
        }
        call.note("auditeventuuid", id);
        let event = call.tx.audit_by_uuid(id).await?.ok_or_else(|| Error::not_found("audit event"))?;
        // Details about a user open with that user's key; a forgotten user's are gone for good.
        let user_key = match &event.user_token {
            Some(t) if event.key_version.is_none() => match call.tx.user_by_token(t).await? {
                Some(u) => Some(crate::records::user_key(&call.keys, &u)?),
                None => None,
            },
            _ => None,
        };
        let details = crate::audit::details(&call.keys, &event, user_key.as_deref())?;
        let erased = details.is_none();
        // A role that may not read records (the auditor) reads the trail without personal values.
        let details = match details {
            Some(d) if !call.may("users.profile", "UserGet").await => Some(crate::audit::redact_personal(d)),
            other => other,
        };
        Ok(fields([
            ("auditeventuuid", event.uuid.clone().into()),
            ("eventtype", event.event_type.clone().into()),
            ("timestamp", crate::audit::timestamp(&event).into()),
            ("outcome", event.outcome.clone().into()),
            ("actor", event.actor.clone().into()),
            ("token", event.user_token.clone().into()),
            ("details", details.unwrap_or(Value::Null)),
            ("erased", erased.into()),
        ]))
    }
    .await;
    call.finish(result).await
}
