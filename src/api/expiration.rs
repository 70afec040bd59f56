//! Databunker's expiration flow, as our extensions UserExpirationStart, UserExpirationGet and
//! UserExpirationCancel, plus the two public links a person gets (`retain`, `delete`), which the
//! v1 routes `/v1/exp/*` serve.
//!
//! Starting sets the user's final time to the deadline, so the deletion is the retention
//! sweeper's (with its audit event and `user-expired` callback), and reads treat the record as
//! gone from then on whether or not the sweeper ran. Retaining or cancelling puts back the
//! retention the flow replaced. The links are single-purpose: an exptoken names one user's flow
//! in one tenant, stops working once retained or cancelled, and does nothing else.

use axum::extract::State;
use axum::routing::post;
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{Map, Value};

use super::body::{Body, Metadata, UserLookup};
use super::users::find_user;
use super::when::parse_duration;
use super::{fields, Call};
use crate::app::AppState;
use crate::audit::Draft;
use crate::auth::Claimed;
use crate::error::{Error, Result};
use crate::store::expirations::ExpStatus;
use crate::store::now_secs;
use crate::store::users::Retention;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/v2/UserExpirationStart", post(start))
        .route("/v2/UserExpirationGet", post(get))
        .route("/v2/UserExpirationCancel", post(cancel))
}

/// Databunker's default cap on a user's retention (`policy.max_user_retention_period`, `1m`:
/// one 31-day month); a longer or absent expiration is this.
pub const MAX_EXPIRATION_S: i64 = 31 * 86_400;

#[derive(Deserialize)]
struct StartReq {
    mode: String,
    identity: String,
    /// How long the person has to answer (a duration); capped at [`MAX_EXPIRATION_S`].
    #[serde(default)]
    expiration: Option<Value>,
    #[serde(default)]
    request_metadata: Metadata,
}

async fn start(State(st): State<AppState>, claimed: Claimed, Body(req): Body<StartReq>) -> Result<Json<Value>> {
    let mut call = Call::open(&st, &claimed, "UserExpirationStart", req.request_metadata).await?;
    let result = async {
        let secs = parse_duration("expiration", &req.expiration)?.filter(|s| *s > 0).map_or(MAX_EXPIRATION_S, |s| s.min(MAX_EXPIRATION_S));
        let (user, _) = find_user(&mut call, &req.mode, &req.identity).await?;
        let now = now_secs();
        // A restart keeps the retention from before the first start.
        let prior = match call.tx.expiration(user.id, now).await? {
            Some(e) if e.status == ExpStatus::Wait => e.prior,
            _ => user.retention,
        };
        let endtime = now + secs;
        let exptoken = uuid::Uuid::new_v4().to_string();
        call.tx.start_expiration(user.id, &exptoken, endtime, &prior, now).await?;
        call.tx.set_retention(user.id, &Retention::new(None, Some(endtime), now)).await?;
        call.note("exptime", endtime);
        Ok(fields([("exptoken", exptoken.into()), ("exptime", endtime.into())]))
    }
    .await;
    call.finish(result).await
}

async fn get(State(st): State<AppState>, claimed: Claimed, Body(req): Body<UserLookup>) -> Result<Json<Value>> {
    let mut call = Call::open(&st, &claimed, "UserExpirationGet", req.request_metadata).await?;
    let result = async {
        let (user, _) = find_user(&mut call, &req.mode, &req.identity).await?;
        let e = call.tx.expiration(user.id, now_secs()).await?;
        Ok(match e {
            Some(e) => fields([
                ("exptime", e.endtime.into()),
                ("expstatus", e.status.as_str().into()),
                ("exptoken", e.exptoken.unwrap_or_default().into()),
            ]),
            None => fields([("exptime", 0.into()), ("expstatus", "".into()), ("exptoken", "".into())]),
        })
    }
    .await;
    call.finish(result).await
}

async fn cancel(State(st): State<AppState>, claimed: Claimed, Body(req): Body<UserLookup>) -> Result<Json<Value>> {
    let mut call = Call::open(&st, &claimed, "UserExpirationCancel", req.request_metadata).await?;
    let result = async {
        let (user, _) = find_user(&mut call, &req.mode, &req.identity).await?;
        if let Some(e) = call.tx.expiration(user.id, now_secs()).await? {
            if e.status == ExpStatus::Wait {
                call.tx.set_retention(user.id, &e.prior).await?;
            }
            call.tx.delete_expiration(user.id).await?;
        }
        Ok(Map::new())
    }
    .await;
    call.finish(result).await
}

/// What a person's link asks for.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum LinkAction {
    /// "Keep my data": the deadline goes, the earlier retention comes back.
    Retain,
    /// "Delete now": the record is gone at once (the sweeper removes it on this call).
    Delete,
}

impl LinkAction {
    fn event(self) -> &'static str {
        match self {
            LinkAction::Retain => "UserExpirationRetain",
            LinkAction::Delete => "UserExpirationDelete",
        }
    }
}

/// Follows a person's link in `tenant`. No credential: the exptoken is the capability, good
/// for one user's flow while it waits. Audited as the link's, in the user's trail.
/// `Err(NotFound)` for an unknown, used or foreign exptoken.
pub async fn follow_link(st: &AppState, tenant: &str, exptoken: &str, action: LinkAction) -> Result<()> {
    let exptoken = uuid::Uuid::parse_str(exptoken.trim()).map_err(|_| Error::not_found("expiration link"))?.hyphenated().to_string();
    let ring = st.vault().keyring()?;
    let Some(mut tx) = st.db().tenant_tx_by_name(tenant).await? else { return Err(Error::not_found("expiration link")) };
    let now = now_secs();
    let flow = tx.expiration_by_token(&exptoken, now).await?.filter(|e| e.status == ExpStatus::Wait);
    let Some(flow) = flow else {
        tx.rollback().await?;
        return Err(Error::not_found("expiration link"));
    };
    let Some(user) = tx.lock_user(flow.user_id).await? else {
        tx.rollback().await?;
        return Err(Error::not_found("expiration link"));
    };
    let keys = crate::custody::rotation::tenant_keys(st.vault().tenant_keks(), &ring, &mut tx).await?;
    match action {
        LinkAction::Retain => {
            tx.set_retention(user.id, &flow.prior).await?;
            tx.set_expiration_status(user.id, ExpStatus::Retain, now).await?;
        }
        LinkAction::Delete => {
            // Absent from now on; the sweep below deletes it with its event and callback.
            tx.set_retention(user.id, &Retention::new(None, Some(now), now)).await?;
            tx.set_expiration_status(user.id, ExpStatus::Expired, now).await?;
        }
    }
    let mut details = Map::new();
    details.insert("token".into(), user.token.clone().into());
    let draft = Draft { user_token: Some(user.token.clone()), user_key: Some(crate::records::user_key(&keys, &user)?), details };
    crate::audit::append(&mut tx, &keys, action.event(), "expiration-link", crate::audit::Outcome::Ok, draft).await?;
    let tenant_id = tx.tenant_id();
    tx.commit().await?;
    if action == LinkAction::Delete {
        let policy = crate::privacy::sweeper::Policy {
            restore_window_s: st.config().restore_window_s,
            callbacks: st.config().callback_url.is_some(),
        };
        if let Err(e) = crate::privacy::sweeper::sweep_tenant(st.db(), st.vault().tenant_keks(), &ring, tenant_id, now, policy).await {
            // Already unreadable; the next regular sweep deletes it.
            tracing::warn!(error = %e, "deleting an expired user at once failed; the sweeper will");
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn link_events_are_named() {
        use serde_json::json;
        assert_eq!(LinkAction::Retain.event(), "UserExpirationRetain");
        assert_eq!(json!(LinkAction::Delete.event()), json!("UserExpirationDelete"));
    }
}
