//! BulkListUnlock, and the unlock check every bulk or search endpoint makes first: a fresh
//! (60-second), tenant-bound uuid, stored only as a keyed hash.

use axum::extract::State;
use axum::routing::post;
use axum::{Json, Router};
use serde_json::Value;

use super::body::{Body, NoArgs};
use super::Call;
use crate::app::AppState;
use crate::auth::Claimed;
use crate::error::{Error, Result};
use crate::store::now_secs;

/// How long an unlock uuid stays valid.
pub const UNLOCK_SECS: i64 = 60;

pub fn routes() -> Router<AppState> {
    Router::new().route("/v2/BulkListUnlock", post(unlock))
}

fn unlock_hash(call: &Call, uuid: &str) -> [u8; 32] {
    call.ring.credential_hash(&format!("bulk-unlock:{}:{}", call.who.tenant_id, uuid.trim()))
}

impl Call {
    /// 403 unless `unlockuuid` is a live unlock of this tenant taken by this same credential (or
    /// lease): an unlock is a deliberate act of one caller, not a pass for anyone who sees it.
    /// Bulk and search endpoints call this before anything else.
    pub async fn require_unlock(&mut self, unlockuuid: &str) -> Result<()> {
        if unlockuuid.trim().is_empty() {
            return Err(Error::bad("missing field `unlockuuid` (get one from BulkListUnlock)"));
        }
        let hash = unlock_hash(self, unlockuuid);
        let actor = self.who.actor();
        if !self.tx.unlock_is_live(&hash, &actor).await? {
            return Err(Error::Forbidden("unlock uuid is unknown, expired, of another tenant or of another caller".into()));
        }
        Ok(())
    }
}

async fn unlock(State(st): State<AppState>, claimed: Claimed, Body(req): Body<NoArgs>) -> Result<Json<Value>> {
    let mut call = Call::open(&st, &claimed, "BulkListUnlock", req.request_metadata).await?;
    let uuid = uuid::Uuid::new_v4().to_string();
    let result = async {
        let hash = unlock_hash(&call, &uuid);
        let actor = call.who.actor();
        call.tx.insert_unlock(&hash, &actor, now_secs() + UNLOCK_SECS).await?;
        Ok(super::fields([("ttl", UNLOCK_SECS.into())]))
    }
    .await;
    call.finish_revealing(result, "unlockuuid", Some(uuid)).await
}
