//! Rate limits. Invariants: an address that keeps presenting wrong secrets is locked out for a
//! while before any more of them are checked; one credential cannot drain the vault; the unseal
//! ceremony and other share-taking endpoints are throttled per address (tower-governor). Every
//! refusal is a 429 in the API's error shape.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::num::NonZeroU32;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::ConnectInfo;
use axum::http::Request;
use axum::response::{IntoResponse, Response};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use tower_governor::governor::GovernorConfigBuilder;
use tower_governor::key_extractor::KeyExtractor;
use tower_governor::{GovernorError, GovernorLayer};

use crate::error::Error;

/// The client's address as the server saw the connection (connect info for any listener whose
/// addresses are socket addresses, including the draining listener).
#[derive(Debug, Clone, Copy)]
pub struct ClientAddr(pub SocketAddr);

impl axum::extract::connect_info::Connected<axum::serve::IncomingStream<'_, tokio::net::TcpListener>> for ClientAddr {
    fn connect_info(stream: axum::serve::IncomingStream<'_, tokio::net::TcpListener>) -> Self {
        ClientAddr(*stream.remote_addr())
    }
}

/// The peer address (0.0.0.0 when the server runs without connection info).
pub fn peer_ip<T>(req: &Request<T>) -> IpAddr {
    req.extensions().get::<ConnectInfo<ClientAddr>>().map(|c| c.0 .0.ip()).unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED))
}

#[derive(Debug, Clone, Copy)]
pub struct ClientIp;

impl KeyExtractor for ClientIp {
    type Key = IpAddr;

    fn extract<T>(&self, req: &Request<T>) -> Result<IpAddr, GovernorError> {
        Ok(peer_ip(req))
    }
}

fn too_many(e: GovernorError) -> Response {
    match e {
        GovernorError::TooManyRequests { wait_time, .. } => {
            Error::TooManyRequests(format!("too many requests; retry in {wait_time}s")).into_response()
        }
        _ => Error::TooManyRequests("too many requests".into()).into_response(),
    }
}

/// Per-address throttle for endpoints that take key shares (unseal, init, generate-root):
/// `per_second` requests a second, bursts of `burst`.
pub fn share_endpoints_layer(
    per_second: u64,
    burst: u32,
) -> GovernorLayer<ClientIp, governor::middleware::NoOpMiddleware<governor::clock::QuantaInstant>, axum::body::Body> {
    let config = GovernorConfigBuilder::default()
        .key_extractor(ClientIp)
        .per_millisecond((1000 / per_second.max(1)).max(1))
        .burst_size(burst.max(1))
        .finish()
        .expect("valid governor quota");
    GovernorLayer::new(Arc::new(config)).error_handler(too_many)
}

/// Limits on secret verification and per-credential use.
pub struct Limits {
    failures: DefaultKeyedRateLimiter<IpAddr>,
    blocked: Mutex<HashMap<IpAddr, Instant>>,
    block_for: Duration,
    per_credential: DefaultKeyedRateLimiter<String>,
}

impl Limits {
    /// `failures_per_minute` wrong secrets per address before a `block_for` lock-out;
    /// `credential_rps` calls a second per credential (bursts of twice that).
    pub fn new(failures_per_minute: u32, block_for: Duration, credential_rps: u32) -> Limits {
        let f = NonZeroU32::new(failures_per_minute.max(1)).expect("non-zero");
        let c = NonZeroU32::new(credential_rps.max(1)).expect("non-zero");
        let burst = NonZeroU32::new(credential_rps.max(1).saturating_mul(2)).expect("non-zero");
        Limits {
            failures: RateLimiter::keyed(Quota::per_minute(f).allow_burst(f)),
            blocked: Mutex::new(HashMap::new()),
            block_for,
            per_credential: RateLimiter::keyed(Quota::per_second(c).allow_burst(burst)),
        }
    }

    /// 429 while `ip` sits out a lock-out; checked before any secret is verified.
    pub fn check_blocked(&self, ip: IpAddr) -> Result<(), Error> {
        let mut blocked = self.blocked.lock().unwrap_or_else(|p| p.into_inner());
        match blocked.get(&ip) {
            Some(until) if *until > Instant::now() => {
                Err(Error::TooManyRequests("too many failed attempts from this address; try again later".into()))
            }
            Some(_) => {
                blocked.remove(&ip);
                Ok(())
            }
            None => Ok(()),
        }
    }

    /// Counts a wrong secret from `ip`; returns true when this one tipped it into a lock-out.
    pub fn record_failure(&self, ip: IpAddr) -> bool {
        if self.failures.check_key(&ip).is_ok() {
            return false;
        }
        let mut blocked = self.blocked.lock().unwrap_or_else(|p| p.into_inner());
        if blocked.len() > 100_000 {
            let now = Instant::now();
            blocked.retain(|_, until| *until > now);
        }
        blocked.insert(ip, Instant::now() + self.block_for);
        tracing::warn!(%ip, "address locked out after repeated failed authentication");
        true
    }

    /// 429 when the credential (or lease) identified by `key` is over its rate.
    pub fn check_credential(&self, key: &str) -> Result<(), Error> {
        self.per_credential
            .check_key(&key.to_string())
            .map_err(|_| Error::TooManyRequests("rate limit for this credential exceeded".into()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_address_is_locked_out_after_its_quota_of_failures_and_others_are_not() {
        let l = Limits::new(5, Duration::from_secs(60), 1000);
        let (bad, good) = ("10.0.0.1".parse().unwrap(), "10.0.0.2".parse().unwrap());
        let tipped: Vec<bool> = (0..6).map(|_| l.record_failure(bad)).collect();
        assert_eq!(tipped, [false, false, false, false, false, true]);
        assert!(l.check_blocked(bad).is_err());
        assert!(l.check_blocked(good).is_ok());
    }

    #[test]
    fn a_credential_over_its_rate_is_refused() {
        let l = Limits::new(5, Duration::from_secs(60), 3);
        let results: Vec<bool> = (0..10).map(|_| l.check_credential("cred-1").is_ok()).collect();
        assert_eq!(results.iter().filter(|ok| **ok).count(), 6, "burst of twice the rate");
        assert!(l.check_credential("cred-2").is_ok());
    }
}
