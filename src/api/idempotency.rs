//! `Idempotency-Key` on creating calls: a client that retries (after a 503, a timeout, a cut
//! connection) with the same key within a day gets the first call's answer instead of a second
//! record or a 409, and learns the token it missed.
//!
//! Invariants: the answer is kept in the same transaction as the change (a committed change
//! always has its answer; a rolled-back one never does), and is replayed only to the same
//! caller (the key is hashed with the credential or lease and the endpoint, under the tenant's
//! keys) for the same body (its SHA-256; another body under the key is 409), after the same
//! authorization as a first call. Endpoints whose answer holds a secret (credentials, xtokens,
//! shared-record links) do not take a key: a kept answer must never be one.

use axum::body::Body;
use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use sha2::{Digest, Sha256};

use crate::auth::Principal;
use crate::error::{Error, Result};
use crate::keys::keyring::TenantKeys;
use crate::store::idempotency::WINDOW_S;
use crate::store::{now_secs, TenantTx};

pub const HEADER: &str = "idempotency-key";
/// Set on an answer that is a kept one.
pub const REPLAYED_HEADER: &str = "idempotent-replayed";

/// The endpoints that take a key: they create, and answer only references.
pub const ENDPOINTS: &[&str] = &[
    "UserCreate",
    "UserCreateBulk",
    "TokenCreate",
    "TokenCreateBulk",
    "AppdataCreate",
    "AgreementAccept",
    "GroupCreate",
    "FileCreate",
    "LegalBasisCreate",
    "ProcessingActivityCreate",
    "UserUpdateRequest",
    "UserPatchRequest",
    "UserDeleteRequest",
    "AppdataUpdateRequest",
    "AgreementCancelRequest",
];

/// A request's key and the digest of its body.
#[derive(Clone, Debug)]
pub struct Claim {
    pub key: String,
    pub digest: [u8; 32],
}

/// A first call under a key: what [`keep`] stores with its answer.
pub struct Pending {
    key_hash: [u8; 32],
    digest: [u8; 32],
}

/// Middleware: a request with `Idempotency-Key` has its body hashed (and its key checked)
/// before the handler reads it.
pub async fn digest(State(limit): State<usize>, req: Request, next: Next) -> Response {
    let Some(raw) = req.headers().get(HEADER) else { return next.run(req).await };
    let key = match raw.to_str().ok().filter(|k| !k.is_empty() && k.len() <= 255 && k.bytes().all(|b| b.is_ascii_graphic())) {
        Some(k) => k.to_string(),
        None => return Error::bad("Idempotency-Key must be 1 to 255 visible ASCII characters").into_response(),
    };
    let (mut parts, body) = req.into_parts();
    let bytes = match axum::body::to_bytes(body, limit).await {
        Ok(b) => b,
        Err(_) => return Error::PayloadTooLarge.into_response(),
    };
    parts.extensions.insert(Claim { key, digest: Sha256::digest(&bytes).into() });
    next.run(Request::from_parts(parts, Body::from(bytes))).await
}

/// For an authorized call with a key: the kept answer to replay (`Err(Error::Replayed)`), a
/// refusal, or what to keep once it succeeds.
pub async fn admit(tx: &mut TenantTx, keys: &TenantKeys, who: &Principal, endpoint: &str, claim: &Claim) -> Result<Pending> {
    if !ENDPOINTS.contains(&endpoint) {
        return Err(Error::bad(format!(
            "{endpoint} does not take an Idempotency-Key (creating calls whose answer holds no secret do: {})",
            ENDPOINTS.join(", ")
        )));
    }
    let key_hash = keys.keyed("idempotency-key", format!("{}\n{endpoint}\n{}", who.actor(), claim.key).as_bytes());
    if let Some((digest, answer)) = tx.kept_answer(&key_hash, now_secs() - WINDOW_S).await? {
        if digest.as_slice() != claim.digest.as_slice() {
            return Err(Error::Conflict("this Idempotency-Key was used for a different request".into()));
        }
        return Err(Error::Replayed(answer));
    }
    Ok(Pending { key_hash, digest: claim.digest })
}

/// Keeps a first call's answer with its change; `Err(Conflict)` when a concurrent call with the
/// same key got there first (this call's change must then roll back).
pub async fn keep(tx: &mut TenantTx, pending: &Pending, answer: &serde_json::Value) -> Result<()> {
    let now = now_secs();
    if tx.keep_answer(&pending.key_hash, &pending.digest, &answer.to_string(), now, now - WINDOW_S).await? {
        Ok(())
    } else {
        Err(Error::Conflict("a request with this Idempotency-Key completed meanwhile; retry to get its answer".into()))
    }
}
