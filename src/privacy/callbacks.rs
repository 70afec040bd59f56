//! Callbacks: consent withdrawals, forget-me, profile changes and users removed by the retention
//! sweeper are reported to the URL in
//! `STRONGROOM_CALLBACK_URL` through a transactional outbox. The API call queues a row
//! ([`enqueue`]) in its own transaction, so a change that rolls back sends nothing, and never
//! waits for the receiver. Every instance runs a dispatcher ([`dispatch_loop`]): every
//! [`INTERVAL`], for every tenant, it claims a batch of due rows (`FOR UPDATE SKIP LOCKED`, see
//! `TenantTx::claim_callbacks`) and POSTs each payload as JSON with an `X-Strongroom-Event`
//! header. A 2xx deletes the row; anything else retries after `min(2^attempts, 300)` backoff
//! units (a second by default); after [`MAX_ATTEMPTS`] the row stays as a dead letter
//! (`dead_at` set, never claimed again, counted in `strongroom_callback_dead_letters_total`) so an
//! undelivered erasure notice is never silently lost.
//!
//! Payloads hold no personal data: the event, the tenant name, the user token, the time and,
//! for consent withdrawals, the brief. AgreementRevokeAll sends one callback per legal basis
//! (`brief` and `revoked`, the number of agreements withdrawn, no user token), not one per user.

use std::time::Duration;

use serde_json::{json, Value};

use crate::error::Result;
use crate::store::callbacks::{now_ms, Pending};
use crate::store::{now_secs, Db, TenantTx};

/// How often the dispatcher looks for due callbacks.
pub const INTERVAL: Duration = Duration::from_millis(500);
/// Per-request timeout of a callback POST.
pub const TIMEOUT: Duration = Duration::from_secs(5);
/// Attempts after which a callback is given up.
pub const MAX_ATTEMPTS: i32 = 10;
/// How long a claimed batch stays invisible to other dispatchers (a batch of 50 at 5 s each).
const LEASE: Duration = Duration::from_secs(300);

/// What a callback reports. Its text is the wire's `event` field and `X-Strongroom-Event`
/// header, which receivers match.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Event {
    ProfileChange,
    ForgetMe,
    ConsentWithdrawal,
    /// Sent by the retention sweeper for a user removed at its final time.
    UserExpired,
    /// Sent by the retention sweeper for a user removed after its restore window.
    UserPurged,
}

impl Event {
    pub fn as_str(self) -> &'static str {
        match self {
            Event::ProfileChange => "profile-change",
            Event::ForgetMe => "forget-me",
            Event::ConsentWithdrawal => "consent-withdrawal",
            Event::UserExpired => "user-expired",
            Event::UserPurged => "user-purged",
        }
    }
}

/// A callback's JSON: event, tenant name, user token, time, and `extra`'s fields (no PII).
pub fn payload(event: Event, tenant: &str, user_token: Option<&str>, extra: Value) -> Value {
    let mut payload = json!({
        "event": event.as_str(),
        "tenant": tenant,
        "token": user_token,
        "time": now_secs(),
    });
    if let (Some(p), Value::Object(e)) = (payload.as_object_mut(), extra) {
        p.extend(e);
    }
    payload
}

/// Queues `event` for `user_token` in `tx`, the transaction of the change it reports (so a
/// change that rolls back sends nothing); `extra` (an object) is merged into the payload.
pub async fn enqueue(tx: &mut TenantTx, tenant_name: &str, event: Event, user_token: Option<&str>, extra: Value) -> Result<()> {
    let payload = payload(event, tenant_name, user_token, extra);
    tx.enqueue_callback(event.as_str(), user_token, &payload).await
}

/// The wait after the `attempts`-th failure: `min(2^attempts, 300)` units.
pub fn backoff(attempts: i32, unit: Duration) -> Duration {
    let factor = 1u32.checked_shl(attempts.clamp(0, 31) as u32).unwrap_or(u32::MAX).min(300);
    unit * factor
}

/// Where callbacks go, and the secret that signs them (see `privacy::webhook`).
#[derive(Clone)]
pub struct Target {
    pub url: String,
    pub secret: Option<zeroize::Zeroizing<String>>,
}

/// Delivers one payload; `Err` names why it was not.
async fn deliver(http: &reqwest::Client, to: &Target, p: &Pending) -> std::result::Result<(), String> {
    let secret = to.secret.as_ref().map(|s| s.as_bytes());
    let resp = super::webhook::post(http, &to.url, secret, p.payload.clone().into_bytes())
        .header("X-Strongroom-Event", &p.event)
        .send()
        .await
        .map_err(|e| e.without_url().to_string())?;
    if resp.status().is_success() {
        Ok(())
    } else {
        Err(format!("status {}", resp.status().as_u16()))
    }
}

/// One batch of one tenant; returns how many were claimed.
async fn dispatch_batch(db: &Db, http: &reqwest::Client, to: &Target, unit: Duration, tenant_id: i64) -> Result<usize> {
    let mut tx = db.tenant_tx(tenant_id).await?;
    let claimed = tx.claim_callbacks(now_ms(), LEASE.as_millis() as i64).await?;
    tx.commit().await?;
    for p in &claimed {
        let outcome = deliver(http, to, p).await;
        let mut tx = db.tenant_tx(tenant_id).await?;
        match outcome {
            Ok(()) => tx.delete_callback(p.id).await?,
            Err(why) if p.attempts + 1 >= MAX_ATTEMPTS => {
                tracing::warn!(
                    tenant = tenant_id, id = p.id, event = %p.event, attempts = p.attempts + 1, error = %why,
                    "callback given up: kept as a dead letter (callback_outbox.dead_at)"
                );
                tx.bury_callback(p.id, now_ms()).await?;
                crate::telemetry::callback_dead_letter(tenant_id);
            }
            Err(why) => {
                let wait = backoff(p.attempts + 1, unit);
                tracing::debug!(tenant = tenant_id, id = p.id, event = %p.event, error = %why, retry_in_ms = wait.as_millis() as u64, "callback failed");
                tx.retry_callback(p.id, now_ms() + wait.as_millis() as i64).await?;
            }
        }
        tx.commit().await?;
    }
    Ok(claimed.len())
}

/// One pass over every tenant: claims batches until none is full. Errors of one tenant are
/// logged and do not stop the others.
pub async fn dispatch_all(db: &Db, http: &reqwest::Client, to: &Target, unit: Duration) -> Result<()> {
    for tenant in db.tenant_ids().await? {
        loop {
            match dispatch_batch(db, http, to, unit, tenant).await {
                Ok(n) if n as i64 >= crate::store::callbacks::CLAIM_BATCH => continue,
                Ok(_) => break,
                Err(e) => {
                    tracing::warn!(tenant, error = %e, "callback dispatch failed; will retry");
                    break;
                }
            }
        }
    }
    Ok(())
}

/// Runs [`dispatch_all`] every [`INTERVAL`].
pub async fn dispatch_loop(db: Db, to: Target, unit: Duration) {
    crate::custody::install_crypto_provider();
    let http = match reqwest::Client::builder().timeout(TIMEOUT).build() {
        Ok(c) => c,
        Err(e) => {
            tracing::error!(error = %e, "callbacks disabled: could not build the HTTP client");
            return;
        }
    };
    loop {
        tokio::time::sleep(INTERVAL).await;
        if let Err(e) = dispatch_all(&db, &http, &to, unit).await {
            tracing::warn!(error = %e, "callback dispatch: could not list tenants");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_300_units() {
        let s = Duration::from_secs(1);
        assert_eq!(backoff(1, s), Duration::from_secs(2));
        assert_eq!(backoff(4, s), Duration::from_secs(16));
        assert_eq!(backoff(9, s), Duration::from_secs(300));
        assert_eq!(backoff(40, s), Duration::from_secs(300));
    }
}
