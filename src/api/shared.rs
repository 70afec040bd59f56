//! SharedRecordCreate, SharedRecordGet. A shared record is a snapshot, taken at creation, of
//! only the listed top-level fields of a user's profile (or of one app's data, with `appname`),
//! encrypted under the user's key and readable by its uuid until it expires; then it is not
//! found. Deleting the user makes it unreadable and deletes it (cascade).
//!
//! `finaltime` uses the common time syntax (see [`super::when`]); it defaults to one day and may
//! be at most 30 days ahead.

use axum::extract::State;
use axum::routing::post;
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{Map, Value};

use super::appdata::check_appname;
use super::body::{Body, Metadata};
use super::users::find_user;
use super::when::parse_when;
use super::{fields, Call};
use crate::app::AppState;
use crate::auth::Claimed;
use crate::error::{Error, Result};
use crate::keys::envelope::Key;
use crate::keys::keyring::TenantKeys;
use crate::records::{open_current, user_key};
use crate::store::now_secs;

pub fn routes() -> Router<AppState> {
    Router::new().route("/v2/SharedRecordCreate", post(shared_create)).route("/v2/SharedRecordGet", post(shared_get))
}

const TABLE: &str = "shared_records";
/// Lifetime of a shared record when `finaltime` is not given.
pub const DEFAULT_SECS: i64 = 86_400;
/// Longest lifetime a shared record may have.
pub const MAX_SECS: i64 = 30 * 86_400;
const MAX_PARTNER: usize = 256;

#[derive(Deserialize)]
struct CreateReq {
    mode: String,
    identity: String,
    #[serde(default)]
    fields: Option<Value>,
    #[serde(default)]
    partner: Option<String>,
    #[serde(default)]
    appname: Option<String>,
    #[serde(default)]
    finaltime: Option<Value>,
    #[serde(default)]
    request_metadata: Metadata,
}

#[derive(Deserialize)]
struct GetReq {
    recorduuid: String,
    #[serde(default)]
    request_metadata: Metadata,
}

/// The listed field names (comma-separated, or an array of strings); `None`: every field.
fn field_list(v: &Option<Value>) -> Result<Option<Vec<String>>> {
    let bad = || Error::bad("fields must be a comma-separated list of field names");
    let names: Vec<String> = match v {
        None | Some(Value::Null) => return Ok(None),
        Some(Value::String(s)) => s.split(',').map(|f| f.trim().to_string()).filter(|f| !f.is_empty()).collect(),
        Some(Value::Array(a)) => a
            .iter()
            .map(|f| f.as_str().map(|s| s.trim().to_string()).ok_or_else(bad))
            .collect::<Result<Vec<_>>>()?
            .into_iter()
            .filter(|f| !f.is_empty())
            .collect(),
        Some(_) => return Err(bad()),
    };
    Ok((!names.is_empty()).then_some(names))
}

/// Only the listed top-level fields of `source` (all of them when `names` is `None`); a listed
/// field the source lacks is simply absent.
fn pick(source: Value, names: Option<&[String]>) -> Value {
    let Value::Object(mut all) = source else { return Value::Object(Map::new()) };
    match names {
        None => Value::Object(all),
        Some(names) => Value::Object(names.iter().filter_map(|n| all.remove_entry(n.as_str())).collect()),
    }
}

/// When a record made at `now` expires.
fn expires_at(finaltime: &Option<Value>, now: i64) -> Result<i64> {
    let at = match parse_when("finaltime", finaltime)? {
        None => now + DEFAULT_SECS,
        Some(w) => w.resolve(now),
    };
    if at <= now {
        return Err(Error::bad("finaltime is in the past"));
    }
    if at - now > MAX_SECS {
        return Err(Error::bad("finaltime may be at most 30 days ahead"));
    }
    Ok(at)
}

/// A record uuid in canonical form, or 400.
fn check_uuid(s: &str) -> Result<String> {
    uuid::Uuid::parse_str(s.trim()).map(|u| u.hyphenated().to_string()).map_err(|_| Error::bad("recorduuid must be a UUID"))
}

fn row_id(token: &str, uuid: &str) -> String {
    format!("{token}/{uuid}")
}

/// Opens a user's app data, as `api::appdata` sealed it.
fn open_appdata(keys: &TenantKeys, key: &Key, token: &str, appname: &str, version: i32, blob: &[u8]) -> Result<Value> {
    super::appdata::open(keys, key, token, appname, version, blob)
}

async fn shared_create(State(st): State<AppState>, claimed: Claimed, Body(req): Body<CreateReq>) -> Result<Json<Value>> {
    let mut call = Call::open(&st, &claimed, "SharedRecordCreate", req.request_metadata).await?;
    let result = async {
        let names = field_list(&req.fields)?;
        let appname = match req.appname.as_deref().map(str::trim) {
            None | Some("") => None,
            Some(a) => Some(check_appname(a)?),
        };
        let partner = req.partner.as_deref().map(str::trim).unwrap_or("");
        if partner.chars().count() > MAX_PARTNER {
            return Err(Error::bad(format!("partner must be at most {MAX_PARTNER} characters")));
        }
        let now = now_secs();
        let expires = expires_at(&req.finaltime, now)?;
        let (user, key) = find_user(&mut call, &req.mode, &req.identity).await?;
        let snapshot = match appname {
            Some(app) => {
                call.note("appname", app);
                // Sharing app data is reading it: the role must be allowed to.
                if !call.may("users.appdata", "AppdataGet").await {
                    return Err(Error::denied());
                }
                let row = call.tx.appdata(user.id, app, false).await?.ok_or_else(|| Error::not_found("app data"))?;
                pick(open_appdata(&call.keys, &key, &user.token, app, row.version, &row.data)?, names.as_deref())
            }
            None => {
                let mut profile = open_current(&call.keys, &key, &user)?;
                // A tenant-defined role shares no more than it could read.
                call.mask_profile(&mut profile).await;
                pick(profile, names.as_deref())
            }
        };
        let uuid = uuid::Uuid::new_v4().to_string();
        let plain = zeroize::Zeroizing::new(serde_json::to_vec(&snapshot)?);
        let blob = call.keys.seal_with(&key, TABLE, &row_id(&user.token, &uuid), &plain);
        call.tx.delete_expired_shared_records().await?;
        call.tx.insert_shared_record(&uuid, user.id, partner, &blob, expires).await?;
        call.note("recorduuid", uuid.as_str());
        call.note("partner", partner);
        call.note("fields", names.map_or_else(|| "*".to_string(), |n| n.join(",")));
        call.note("expirationtime", expires);
        Ok(fields([("recorduuid", uuid.into())]))
    }
    .await;
    call.finish(result).await
}

async fn shared_get(State(st): State<AppState>, claimed: Claimed, Body(req): Body<GetReq>) -> Result<Json<Value>> {
    let mut call = Call::open(&st, &claimed, "SharedRecordGet", req.request_metadata).await?;
    let result = async {
        let uuid = check_uuid(&req.recorduuid)?;
        call.note("recorduuid", uuid.as_str());
        let rec = call.tx.shared_record(&uuid).await?.ok_or_else(|| Error::not_found("shared record"))?;
        // A user login token reaches only its own records.
        if call.who.self_user.as_deref().is_some_and(|own| own != rec.user.token) {
            return Err(Error::not_found("shared record"));
        }
        let key = user_key(&call.keys, &rec.user)?;
        call.note_user(&rec.user.token, key.clone());
        call.note("partner", rec.partner.as_str());
        let plain = call.keys.open_with(&key, TABLE, &row_id(&rec.user.token, &rec.uuid), &rec.data)?;
        let data: Value = serde_json::from_slice(&plain)?;
        Ok(fields([("data", data), ("expirationtime", rec.expires_at.into())]))
    }
    .await;
    call.finish(result).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn fields_are_listed_and_picked() {
        assert_eq!(field_list(&None).unwrap(), None);
        assert_eq!(field_list(&Some(json!(""))).unwrap(), None);
        assert_eq!(field_list(&Some(json!(" name, email ,"))).unwrap(), Some(vec!["name".to_string(), "email".to_string()]));
        assert_eq!(field_list(&Some(json!(["a"]))).unwrap(), Some(vec!["a".to_string()]));
        assert!(field_list(&Some(json!(5))).is_err());
        let src = json!({"name": "A", "email": "a@x", "ssn": "1"});
        let names = vec!["name".to_string(), "phone".to_string()];
        assert_eq!(pick(src.clone(), Some(&names)), json!({"name": "A"}));
        assert_eq!(pick(src.clone(), None), src);
    }

    #[test]
    fn finaltime_defaults_to_a_day_and_is_capped() {
        assert_eq!(expires_at(&None, 1_000).unwrap(), 1_000 + DEFAULT_SECS);
        assert_eq!(expires_at(&Some(json!("1h")), 1_000).unwrap(), 4_600);
        assert_eq!(expires_at(&Some(json!("30d")), 0).unwrap(), MAX_SECS);
        assert!(expires_at(&Some(json!("31d")), 0).is_err());
        assert!(expires_at(&Some(json!("1500000000")), 1_600_000_000).is_err());
        assert!(expires_at(&Some(json!("bogus")), 0).is_err());
    }
}
