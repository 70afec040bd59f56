//! SessionUpsert, SessionGet, SessionDelete, SessionListUserSessions. A session belongs to a
//! user named by optional `mode`/`identity` on SessionUpsert (its data then under that user's
//! key, forgotten with the user), or to no one, as a web framework's session store writes it
//! before sign-in (its data then under the tenant's data key). An expired session is not
//! found, whether or not it has been deleted yet.

use std::sync::Arc;

use axum::extract::State;
use axum::routing::post;
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{json, Map, Value};

use super::body::UserLookup as UserReq;
use super::body::{Body, Metadata};
use super::users::find_user;
use super::when::{parse_deadline, parse_duration};
use super::{fields, Call};
use crate::app::AppState;
use crate::auth::Claimed;
use crate::error::{Error, Result};
use crate::keys::envelope::Key;
use crate::keys::keyring::TenantKeys;
use crate::records::user_key;
use crate::store::now_secs;
use crate::store::sessions::{unowned_row_id, Expiry, NewOwner, SessionOwner, SessionRow};
use crate::store::users::UserRow;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/v2/SessionUpsert", post(session_upsert))
        .route("/v2/SessionGet", post(session_get))
        .route("/v2/SessionDelete", post(session_delete))
        .route("/v2/SessionListUserSessions", post(session_list_user_sessions))
}

const TABLE: &str = crate::keys::labels::SESSIONS;

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
    let sliding_secs = parse_duration("slidingtime", sliding)?;
    let final_at = parse_deadline("finaltime", finaltime, now)?;
    if sliding_secs.is_none() && final_at.is_none() {
        return Ok(None);
    }
    Ok(Some(Expiry { sliding_secs, final_at }))
}

/// A session uuid in canonical form, or 400.
fn check_uuid(s: &str) -> Result<String> {
    uuid::Uuid::parse_str(s.trim()).map(|u| u.hyphenated().to_string()).map_err(|_| Error::bad("sessionuuid must be a UUID"))
}

fn row_id(token: &str, uuid: &str) -> String {
    format!("{token}/{uuid}")
}

/// Whose key a session's data goes under.
enum Holder {
    User(Box<UserRow>, Arc<Key>),
    /// A session that names no user: the tenant's data key.
    Nobody,
}

impl Holder {
    fn seal(&self, keys: &TenantKeys, uuid: &str, data: &Value) -> Result<(Vec<u8>, NewOwner)> {
        let plain = zeroize::Zeroizing::new(serde_json::to_vec(data)?);
        Ok(match self {
            Holder::User(user, key) => (keys.seal_with(key, TABLE, &row_id(&user.token, uuid), &plain), NewOwner::User(user.id)),
            Holder::Nobody => {
                let (key_version, blob) = keys.encrypt(TABLE, &unowned_row_id(uuid), &plain);
                (blob, NewOwner::Tenant { key_version })
            }
        })
    }

    fn user_id(&self) -> Option<i64> {
        match self {
            Holder::User(u, _) => Some(u.id),
            Holder::Nobody => None,
        }
    }
}

fn open(keys: &TenantKeys, holder: &Holder, session: &SessionRow) -> Result<Value> {
    let plain = match (holder, &session.owner) {
        (Holder::User(user, key), _) => keys.open_with(key, TABLE, &row_id(&user.token, &session.uuid), &session.data)?,
        (Holder::Nobody, SessionOwner::Tenant { key_version }) => {
            keys.decrypt(TABLE, &unowned_row_id(&session.uuid), *key_version, &session.data)?
        }
        (Holder::Nobody, SessionOwner::User(_)) => return Err(Error::Internal(anyhow::anyhow!("session holder mismatch"))),
    };
    Ok(serde_json::from_slice(&plain)?)
}

/// Who holds a found session, checked against the caller: a user login token reaches only its
/// own sessions (`refusal` otherwise); the call's audit event is bound to the owning user.
fn holder_of(call: &mut Call, session: &SessionRow, refusal: impl FnOnce() -> Error) -> Result<Holder> {
    let Some(user) = session.user() else {
        return if call.who.self_user.is_some() { Err(refusal()) } else { Ok(Holder::Nobody) };
    };
    if call.who.self_user.as_deref().is_some_and(|own| own != user.token) {
        return Err(refusal());
    }
    let key = user_key(&call.keys, user)?;
    call.note_user(&user.token, key.clone());
    Ok(Holder::User(Box::new(user.clone()), key))
}

/// The live session `uuid` and its holder, or 404.
async fn find_session(call: &mut Call, uuid: &str, lock: bool) -> Result<(SessionRow, Holder)> {
    call.note("sessionuuid", uuid);
    let session = call.tx.session(uuid, lock).await?.ok_or_else(|| Error::not_found("session"))?;
    let holder = holder_of(call, &session, || Error::not_found("session"))?;
    Ok((session, holder))
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
        // A user token's sessions are its own, named or not.
        let own = call.who.self_user.clone();
        let named = match (req.mode.as_deref(), req.identity.as_deref(), own.as_deref()) {
            (None, None, None) => None,
            (None, None, Some(own)) => Some(("token", own)),
            (Some(m), Some(i), _) => Some((m, i)),
            _ => return Err(Error::bad("mode and identity go together")),
        };
        let named = match named {
            Some((mode, identity)) => {
                let (user, key) = find_user(&mut call, mode, identity).await?;
                Some(Holder::User(Box::new(user), key))
            }
            None => None,
        };
        call.tx.delete_expired_sessions().await?;
        call.note("sessionuuid", uuid.as_str());
        let existing = call.tx.session(&uuid, true).await?;
        match existing {
            Some(session) => {
                let holder = holder_of(&mut call, &session, || Error::Conflict("session belongs to another user".into()))?;
                // Naming a user keeps a user's session where it is, and moves a session of no
                // one (made before sign-in) to that user; another user's is refused.
                let holder = match (holder, named) {
                    (Holder::User(..), Some(n)) if n.user_id() != session.user().map(|u| u.id) => {
                        return Err(Error::Conflict("session belongs to another user".into()));
                    }
                    (_, Some(n)) => n,
                    (h, None) => h,
                };
                let expiry = asked.unwrap_or(Expiry { sliding_secs: session.sliding_secs, final_at: session.final_at });
                let (blob, owner) = holder.seal(&call.keys, &uuid, &req.sessiondata)?;
                call.tx.update_session(&uuid, &blob, owner, expiry).await?;
            }
            None => {
                let holder = named.unwrap_or(Holder::Nobody);
                let (blob, owner) = holder.seal(&call.keys, &uuid, &req.sessiondata)?;
                if !call.tx.insert_session(&uuid, owner, &blob, asked.unwrap_or_default()).await? {
                    return Err(Error::Conflict("session was created concurrently; retry".into()));
                }
            }
        }
        Ok(Map::new())
    }
    .await;
    call.finish(result).await
}

async fn session_get(State(st): State<AppState>, claimed: Claimed, Body(req): Body<UuidReq>) -> Result<Json<Value>> {
    let mut call = Call::open(&st, &claimed, "SessionGet", req.request_metadata).await?;
    let result = async {
        let uuid = check_uuid(&req.sessionuuid)?;
        let (session, holder) = find_session(&mut call, &uuid, false).await?;
        let data = open(&call.keys, &holder, &session)?;
        call.tx.touch_session(&uuid, Expiry { sliding_secs: session.sliding_secs, final_at: session.final_at }).await?;
        Ok(fields([("sessionuuid", uuid.into()), ("sessiondata", data), ("when", session.updated_at.into())]))
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
        for (uuid, blob, when) in call.tx.user_sessions(user.id).await? {
            let plain = call.keys.open_with(&key, TABLE, &row_id(&user.token, &uuid), &blob)?;
            let data: Value = serde_json::from_slice(&plain)?;
            rows.push(json!({"sessionuuid": uuid, "sessiondata": data, "when": when}));
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
        let e = requested_expiry(&Some(json!("1h")), &Some(json!("30min")), now).unwrap().unwrap();
        assert_eq!(e.expires_at(now), Some(now + 1_800));
        let e = requested_expiry(&Some(json!("1h")), &None, now).unwrap().unwrap();
        assert_eq!(e.expires_at(now), Some(now + 3_600));
        assert!(requested_expiry(&None, &None, now).unwrap().is_none());
        assert!(requested_expiry(&None, &Some(json!(now - 10)), now).is_err());
        assert!(requested_expiry(&Some(json!(now + 10)), &None, now).is_err());
    }
}
