//! `/v1/sys/*`: init, unseal, seal, seal-status, health. Reachable while sealed. Shares are
//! never logged; partial progress lives only in memory (see `vault`).

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{json, Map, Value};
use zeroize::Zeroizing;

use super::body::{Body, Metadata, NoArgs};
use super::Call;
use crate::app::AppState;
use crate::auth::Claimed;
use crate::error::{Error, Result};

pub fn routes(config: &crate::config::Config) -> Router<AppState> {
    // Endpoints that take (or hand out) key shares are throttled per address, alike: one
    // bucket per address over all of them, so a guesser cannot spread its tries.
    let share_taking = Router::new()
        .route("/v1/sys/init", post(init))
        .route("/v1/sys/unseal", post(unseal))
        .route("/v1/sys/generate-root", post(generate_root))
        .route("/v1/sys/rekey", post(rekey))
        .layer(crate::auth::ratelimit::share_endpoints_layer(config.share_rps, config.share_burst));
    Router::new()
        .merge(share_taking)
        .route("/v1/sys/seal-status", get(seal_status))
        .route("/v1/sys/seal", post(seal))
        .route("/v1/sys/health", get(health))
        .route("/v1/sys/root-token/rotate", post(rotate_root))
        .route("/v1/sys/root-token/revoke", post(revoke_root))
        .route("/v1/sys/rotate-tenant-key", post(rotate_tenant_key))
        .route("/v1/sys/tenant-key-status", post(tenant_key_status))
}

#[derive(Deserialize)]
struct InitReq {
    #[serde(default)]
    secret_shares: Option<usize>,
    #[serde(default)]
    secret_threshold: Option<usize>,
}

async fn init(State(st): State<AppState>, Body(req): Body<InitReq>) -> Result<Json<Value>> {
    let out = st.vault().init(None, req.secret_threshold.unwrap_or(2), req.secret_shares.unwrap_or(3)).await?;
    let keys: Vec<&str> = out.shares.iter().map(|s| s.as_str()).collect();
    Ok(Json(json!({
        "status": "ok",
        "vault_id": out.vault_id,
        "root_token": out.root_token.as_str(),
        "keys": keys,
        "threshold": out.threshold,
    })))
}

#[derive(Deserialize)]
struct UnsealReq {
    #[serde(default)]
    key: Option<Zeroizing<String>>,
    #[serde(default)]
    reset: bool,
}

fn status_json(s: crate::vault::Status) -> Json<Value> {
    let mut v = serde_json::to_value(s).unwrap_or_default();
    v["status"] = "ok".into();
    Json(v)
}

async fn unseal(State(st): State<AppState>, Body(req): Body<UnsealReq>) -> Result<Json<Value>> {
    if req.reset {
        return Ok(status_json(st.vault().reset_progress()));
    }
    let key = req.key.ok_or_else(|| Error::bad("missing field `key` (or `reset`: true)"))?;
    Ok(status_json(st.vault().unseal(&key).await?))
}

async fn seal_status(State(st): State<AppState>) -> Result<Json<Value>> {
    Ok(status_json(st.vault().current_status().await?))
}

/// Root only; audited in the main tenant before the keys go.
async fn seal(State(st): State<AppState>, claimed: Claimed, Body(req): Body<NoArgs>) -> Result<Json<Value>> {
    let claimed = claimed.in_main_tenant();
    let call = Call::open(&st, &claimed, "SystemSeal", req.request_metadata).await?;
    let allowed: Result<Map<String, Value>> = Ok(Map::new());
    let ok = allowed.is_ok();
    let out = call.finish(allowed).await?;
    if ok {
        st.vault().seal().await?;
    }
    Ok(out)
}

/// 200 when unsealed and the database answers; 503 when sealed or the database is down; 501
/// when not initialized (as Vault does).
async fn health(State(st): State<AppState>) -> Response {
    let s = st.vault().status();
    let db_up = st.db().ping().await;
    let code = if !s.initialized {
        StatusCode::NOT_IMPLEMENTED
    } else if s.sealed || !db_up {
        StatusCode::SERVICE_UNAVAILABLE
    } else {
        StatusCode::OK
    };
    let body = json!({
        "status": if code == StatusCode::OK { "ok" } else { "error" },
        "message": if !s.initialized { "vault is not initialized" } else if s.sealed { "vault is sealed" } else if !db_up { "no writable database answers" } else { "ready" },
        "initialized": s.initialized,
        "sealed": s.sealed,
        "database": if db_up { "up" } else { "down" },
        "tenant_key_store": st.tenant_key_store_state(),
        "version": env!("CARGO_PKG_VERSION"),
    });
    (code, Json(body)).into_response()
}

#[derive(Deserialize)]
struct RekeyReq {
    keys: Vec<Zeroizing<String>>,
    #[serde(default)]
    secret_shares: Option<usize>,
    #[serde(default)]
    secret_threshold: Option<usize>,
    #[serde(default)]
    request_metadata: Metadata,
}

/// Share rekey (root only): a quorum of current shares in, a new set of shares out, once.
async fn rekey(State(st): State<AppState>, claimed: Claimed, Body(req): Body<RekeyReq>) -> Result<Json<Value>> {
    let claimed = claimed.in_main_tenant();
    let mut call = Call::open(&st, &claimed, "SystemRekey", req.request_metadata).await?;
    let (threshold, count) = (req.secret_threshold.unwrap_or(2), req.secret_shares.unwrap_or(3));
    call.note("threshold", threshold);
    call.note("shares", count);
    let result = async {
        let keys: Vec<&str> = req.keys.iter().map(|k| k.as_str()).collect();
        st.vault().rekey(&keys, threshold, count).await
    }
    .await;
    let (outcome, shares) = match result {
        Ok(shares) => (Ok(Map::new()), shares),
        Err(e) => (Err(e), Vec::new()),
    };
    let _audited = call.finish(outcome).await?;
    let keys: Vec<&str> = shares.iter().map(|s| s.as_str()).collect();
    Ok(Json(json!({"status": "ok", "keys": keys, "threshold": threshold})))
}

#[derive(Deserialize)]
struct TenantKeyReq {
    #[serde(default, deserialize_with = "super::body::int_or_string")]
    tenantid: Option<i64>,
    #[serde(default)]
    request_metadata: Metadata,
}

/// Opens the call of a tenant-key endpoint for the tenant it names. With `exclusive` (a
/// rotation), it first takes the tenant's rotation lock in the call's own transaction, so that
/// a concurrent rotation is 409 at once instead of holding a second pooled connection while it
/// waits (eight at once exhausted a pool of eight).
async fn tenant_key_call(
    st: &AppState,
    claimed: Claimed,
    endpoint: &'static str,
    req: TenantKeyReq,
    exclusive: bool,
) -> Result<(Call, i64)> {
    let claimed = claimed.in_main_tenant();
    let mut call = Call::open(st, &claimed, endpoint, req.request_metadata).await?;
    let checked = async {
        let id = req.tenantid.filter(|i| *i > 0).ok_or_else(|| Error::bad("tenantid must be a positive integer"))?;
        if exclusive && !call.tx.try_lock_rotation(id).await? {
            return Err(Error::Conflict("a key rotation of this tenant is in progress; retry when it is done".into()));
        }
        st.db().tenant(id).await?.ok_or_else(|| Error::not_found("tenant"))?;
        Ok(id)
    }
    .await;
    match checked {
        Ok(id) => {
            call.note("tenantid", id);
            Ok((call, id))
        }
        Err(e) => Err(call.finish(Err(e)).await.unwrap_err()),
    }
}

/// Root only: a new data-key version for a tenant, current for new writes at once; older keys
/// are re-wrapped in the background.
async fn rotate_tenant_key(State(st): State<AppState>, claimed: Claimed, Body(req): Body<TenantKeyReq>) -> Result<Json<Value>> {
    let (mut call, id) = tenant_key_call(&st, claimed, "SystemRotateTenantKey", req, true).await?;
    let result = async {
        let version = crate::custody::rotation::rotate(st.db(), st.vault().tenant_keks(), &call.ring, id).await?;
        call.note("version", version);
        Ok(super::fields([("tenantid", id.into()), ("version", version.into())]))
    }
    .await;
    call.finish(result).await
}

/// Root only: a tenant's data-key versions and how many keys still wait for re-wrapping.
async fn tenant_key_status(State(st): State<AppState>, claimed: Claimed, Body(req): Body<TenantKeyReq>) -> Result<Json<Value>> {
    let (call, id) = tenant_key_call(&st, claimed, "SystemTenantKeyStatus", req, false).await?;
    let result = async {
        let p = crate::custody::rotation::progress(st.db(), id).await?;
        match serde_json::to_value(p)? {
            Value::Object(m) => Ok(m),
            _ => Err(Error::Internal(anyhow::anyhow!("progress is not an object"))),
        }
    }
    .await;
    call.finish(result).await
}

/// Root only: a new root token replaces the presented one (and any other live root token).
async fn rotate_root(State(st): State<AppState>, claimed: Claimed, Body(req): Body<NoArgs>) -> Result<Json<Value>> {
    let claimed = claimed.in_main_tenant();
    let mut call = Call::open(&st, &claimed, "SystemRotateRoot", req.request_metadata).await?;
    let token = Zeroizing::new(uuid::Uuid::new_v4().to_string());
    let result = async {
        let hash = call.ring.credential_hash(&token);
        let id = call.tx.replace_root(&hash).await?;
        call.note("credentialid", id);
        Ok(Map::new())
    }
    .await;
    let _audited = call.finish(result).await?;
    Ok(Json(json!({"status": "ok", "root_token": token.as_str()})))
}

/// Root only: revokes the presented root token. A new one can be made with a quorum of key
/// shares (`/v1/sys/generate-root`).
async fn revoke_root(State(st): State<AppState>, claimed: Claimed, Body(req): Body<NoArgs>) -> Result<Json<Value>> {
    let claimed = claimed.in_main_tenant();
    let mut call = Call::open(&st, &claimed, "SystemRevokeRoot", req.request_metadata).await?;
    let result = async {
        let id = call.who.credential_id;
        if !call.tx.revoke_root(id).await? {
            return Err(Error::bad("only a stored root token can be revoked"));
        }
        Ok(Map::new())
    }
    .await;
    call.finish(result).await
}

#[derive(Deserialize)]
struct GenerateRootReq {
    keys: Vec<Zeroizing<String>>,
}

/// Recovery: a quorum of key shares proves custody and yields a new root token (all others
/// revoked). Needs no credential, like the unseal ceremony; audited in the main tenant.
async fn generate_root(State(st): State<AppState>, Body(req): Body<GenerateRootReq>) -> Result<Json<Value>> {
    let keys: Vec<&str> = req.keys.iter().map(|k| k.as_str()).collect();
    let ring = st.vault().prove_custody(&keys)?;
    let token = Zeroizing::new(uuid::Uuid::new_v4().to_string());
    let mut tx = st.db().tenant_tx(crate::vault::DEFAULT_TENANT_ID).await?;
    let keys_t = crate::custody::rotation::tenant_keys(st.vault().tenant_keks(), &ring, &mut tx).await?;
    let id = tx.replace_root(&ring.credential_hash(&token)).await?;
    let mut draft = crate::audit::Draft::default();
    draft.details.insert("credentialid".into(), id.into());
    crate::audit::append(&mut tx, &keys_t, "SystemGenerateRoot", "key-shares", crate::audit::Outcome::Ok, draft).await?;
    tx.commit().await?;
    tracing::warn!("a new root token was generated from key shares");
    Ok(Json(json!({"status": "ok", "root_token": token.as_str()})))
}
