//! SessionUpsert, SessionGet, SessionDelete, SessionListUserSessions. A session belongs to a
//! user (named by optional `mode`/`identity` on SessionUpsert, required when the session is
//! new, as Databunker Pro does); its data is encrypted under that user's key. An expired
//! session is not found, whether or not it has been deleted yet.

use axum::extract::State;
use axum::routing::post;
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{json, Map, Value};

use super::body::UserLookup as UserReq;
use super::body::{Body, Metadata};
use super::users::{find_user, user_key};
use super::when::{parse_when, When};
use super::{fields, Call};
use crate::app::AppState;
use crate::auth::Claimed;
use crate::error::{Error, Result};
use crate::keys::envelope::Key;
use crate::keys::keyring::TenantKeys;
use crate::store::now_secs;
use crate::store::sessions::{Expiry, SessionRow};

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/v2/SessionUpsert", post(session_upsert))
        .route("/v2/SessionGet", post(session_get))
        .route("/v2/SessionDelete", post(session_delete))
        .route("/v2/SessionListUserSessions", post(session_list_user_sessions))
}

const TABLE: &str = "sessions";

#[derive(Deserialize)]
struct UpsertReq {
    sessionuuid: String,
    sessiondata: Value,
    #[serde(default)]
    slidingtime: Option<Value>,
    #[serde(default)]
    finaltime: Option<Value>,
    #[serde(default)]
    mode: Option<String>,
    #[serde(default)]
    identity: Option<String>,
    #[serde(default)]
    request_metadata: Metadata,
}

#[derive(Deserialize)]
struct UuidReq {
    sessionuuid: String,
    #[serde(default)]
    request_metadata: Metadata,
}

/// The expiry settings a request asks for, or `None` when it names neither.
fn requested_expiry(sliding: &Option<Value>, finaltime: &Option<Value>, now: i64) -> Result<Option<Expiry>> {
    let sliding = parse_when("slidingtime", sliding)?;
    let finaltime = parse_when("finaltime", finaltime)?;
    if sliding.is_none() && finaltime.is_none() {
        return Ok(None);
    }
    let sliding_secs = match sliding {
        None => None,
        Some(When::In(s)) => Some(s),
        Some(When::At(_)) => return Err(Error::bad("slidingtime must be a duration, not a point in time")),
    };
    let final_at = match finaltime {
        None => None,
        Some(When::In(s)) => Some(now + s),
        Some(When::At(t)) if t > now => Some(t),
        Some(When::At(_)) => return Err(Error::bad("finaltime is in the past")),
    };
    Ok(Some(Expiry { sliding_secs, final_at }))
}

/// A session uuid in canonical form, or 400.
fn check_uuid(s: &str) -> Result<String> {
    uuid::Uuid::parse_str(s.trim()).map(|u| u.hyphenated().to_string()).map_err(|_| Error::bad("sessionuuid must be a UUID"))
}

fn row_id(token: &str, uuid: &str) -> String {
    format!("{token}/{uuid}")
}

fn seal(keys: &TenantKeys, key: &Key, token: &str, uuid: &str, data: &Value) -> Result<Vec<u8>> {
    let plain = zeroize::Zeroizing::new(serde_json::to_vec(data)?);
    Ok(keys.seal_with(key, TABLE, &row_id(token, uuid), &plain))
}

fn open(keys: &TenantKeys, key: &Key, token: &str, uuid: &str, blob: &[u8]) -> Result<Value> {
    let plain = keys.open_with(key, TABLE, &row_id(token, uuid), blob)?;
    Ok(serde_json::from_slice(&plain)?)
}

/// The live session `uuid` with its user's key, or 404; the call's audit event is bound to the
/// user. A user login token reaches only its own sessions.
async fn find_session(call: &mut Call, uuid: &str, lock: bool) -> Result<(SessionRow, std::sync::Arc<Key>)> {
    call.note("sessionuuid", uuid);
    let session = call.tx.session(uuid, lock).await?.ok_or_else(|| Error::not_found("session"))?;
    if call.who.self_user.as_deref().is_some_and(|own| own != session.user.token) {
        return Err(Error::not_found("session"));
    }
    let key = user_key(&call.keys, &session.user)?;
    call.note_user(&session.user.token, key.clone());
    Ok((session, key))
}

async fn session_upsert(State(st): State<AppState>, claimed: Claimed, Body(req): Body<UpsertReq>) -> Result<Json<Value>> {
    let mut call = Call::open(&st, &claimed, "SessionUpsert", req.request_metadata).await?;
    let result = async {
        let uuid = check_uuid(&req.sessionuuid)?;
        if !req.sessiondata.is_object() {
            return Err(Error::bad("sessiondata must be a JSON object"));
        }
        let now = now_secs();
        let asked = requested_expiry(&req.slidingtime, &req.finaltime, now)?;
        let named = match (req.mode.as_deref(), req.identity.as_deref()) {
            (None, None) => None,
            (Some(m), Some(i)) => Some((m, i)),
            _ => return Err(Error::bad("mode and identity go together")),
        };
        call.tx.delete_expired_sessions().await?;
        let existing = match call.tx.session(&uuid, true).await? {
            Some(s) => Some(find_session_owner(&mut call, s)?),
            None => None,
        };
        match existing {
            Some((session, key)) => {
                call.note("sessionuuid", uuid.as_str());
                if let Some((mode, identity)) = named {
                    let (user, _) = find_user(&mut call, mode, identity).await?;
                    if user.id != session.user.id {
                        // The refusal is recorded against the session's owner.
                        call.note_user(&session.user.token, key.clone());
                        return Err(Error::Conflict("session belongs to another user".into()));
                    }
                }
                let expiry = asked.unwrap_or(Expiry { sliding_secs: session.sliding_secs, final_at: session.final_at });
                let blob = seal(&call.keys, &key, &session.user.token, &uuid, &req.sessiondata)?;
                call.tx.update_session(&uuid, &blob, expiry).await?;
            }
            None => {
                let Some((mode, identity)) = named else {
                    return Err(Error::bad("mode and identity are required to create a session"));
                };
                let (user, key) = find_user(&mut call, mode, identity).await?;
                call.note("sessionuuid", uuid.as_str());
                let blob = seal(&call.keys, &key, &user.token, &uuid, &req.sessiondata)?;
                if !call.tx.insert_session(&uuid, user.id, &blob, asked.unwrap_or_default()).await? {
                    return Err(Error::Conflict("session was created concurrently; retry".into()));
                }
            }
        }
        Ok(Map::new())
    }
    .await;
    call.finish(result).await
}

/// Checks a found session against a user login token and binds the audit event to its owner.
fn find_session_owner(call: &mut Call, session: SessionRow) -> Result<(SessionRow, std::sync::Arc<Key>)> {
    if call.who.self_user.as_deref().is_some_and(|own| own != session.user.token) {
        return Err(Error::Conflict("session belongs to another user".into()));
    }
    let key = user_key(&call.keys, &session.user)?;
    call.note_user(&session.user.token, key.clone());
    Ok((session, key))
}

async fn session_get(State(st): State<AppState>, claimed: Claimed, Body(req): Body<UuidReq>) -> Result<Json<Value>> {
    let mut call = Call::open(&st, &claimed, "SessionGet", req.request_metadata).await?;
    let result = async {
        let uuid = check_uuid(&req.sessionuuid)?;
        let (session, key) = find_session(&mut call, &uuid, false).await?;
        let data = open(&call.keys, &key, &session.user.token, &uuid, &session.data)?;
        call.tx.touch_session(&uuid, Expiry { sliding_secs: session.sliding_secs, final_at: session.final_at }).await?;
        Ok(fields([("sessionuuid", uuid.into()), ("sessiondata", data)]))
    }
    .await;
    call.finish(result).await
}

async fn session_delete(State(st): State<AppState>, claimed: Claimed, Body(req): Body<UuidReq>) -> Result<Json<Value>> {
    let mut call = Call::open(&st, &claimed, "SessionDelete", req.request_metadata).await?;
    let result = async {
        let uuid = check_uuid(&req.sessionuuid)?;
        find_session(&mut call, &uuid, true).await?;
        if !call.tx.delete_session(&uuid).await? {
            return Err(Error::not_found("session"));
        }
        Ok(Map::new())
    }
    .await;
    call.finish(result).await
}

async fn session_list_user_sessions(State(st): State<AppState>, claimed: Claimed, Body(req): Body<UserReq>) -> Result<Json<Value>> {
    let mut call = Call::open(&st, &claimed, "SessionListUserSessions", req.request_metadata).await?;
    let result = async {
        let (user, key) = find_user(&mut call, &req.mode, &req.identity).await?;
        call.tx.delete_expired_sessions().await?;
        let mut rows = Vec::new();
        for (uuid, blob) in call.tx.user_sessions(user.id).await? {
            let data = open(&call.keys, &key, &user.token, &uuid, &blob)?;
            rows.push(json!({"sessionuuid": uuid, "sessiondata": data}));
        }
        call.note("count", rows.len());
        Ok(fields([("rows", Value::Array(rows))]))
    }
    .await;
    call.finish(result).await
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn expiry_is_the_earlier_of_sliding_and_final() {
        let now = 1_700_000_000;
        let e = requested_expiry(&Some(json!("1h")), &Some(json!("30m")), now).unwrap().unwrap();
        assert_eq!(e.expires_at(now), Some(now + 1_800));
        let e = requested_expiry(&Some(json!("1h")), &None, now).unwrap().unwrap();
        assert_eq!(e.expires_at(now), Some(now + 3_600));
        assert!(requested_expiry(&None, &None, now).unwrap().is_none());
        assert!(requested_expiry(&None, &Some(json!(now - 10)), now).is_err());
        assert!(requested_expiry(&Some(json!(now + 10)), &None, now).is_err());
    }
}
