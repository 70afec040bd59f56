//! Rate limits. Invariants: an address that keeps presenting wrong secrets is locked out for a
//! while, during which its wrong secrets are refused (429) and checked only at a slow rate, while
//! credentials that verify still work from it (behind a load balancer many clients share one
//! address); one credential cannot drain the vault; the unseal ceremony and the other
//! share-taking endpoints are throttled per address (tower-governor). The address is the peer's,
//! or the client a trusted proxy names. Every refusal is a 429 in the API's error shape.

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

/// An address or CIDR block (`10.0.0.0/8`, `2001:db8::/32`, `192.0.2.7`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr {
    net: IpAddr,
    bits: u8,
}

impl std::str::FromStr for Cidr {
    type Err = String;

    fn from_str(s: &str) -> Result<Cidr, String> {
        let (addr, bits) = match s.split_once('/') {
            Some((a, b)) => (a, Some(b)),
            None => (s, None),
        };
        let net: IpAddr = addr.trim().parse().map_err(|_| "not an IP address".to_string())?;
        let max = if net.is_ipv4() { 32 } else { 128 };
        let bits = match bits {
            None => max,
            Some(b) => b.trim().parse::<u8>().ok().filter(|b| *b <= max).ok_or_else(|| format!("prefix length must be 0-{max}"))?,
        };
        Ok(Cidr { net, bits })
    }
}

impl Cidr {
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
            v4 => v4,
        };
        let (a, b, width) = match (self.net, ip) {
            (IpAddr::V4(n), IpAddr::V4(i)) => (u32::from(n) as u128, u32::from(i) as u128, 32),
            (IpAddr::V6(n), IpAddr::V6(i)) => (u128::from(n), u128::from(i), 128),
            _ => return false,
        };
        let shift = width - self.bits as u32;
        shift >= width || (a >> shift) == (b >> shift)
    }
}

/// The client's address: the peer's, unless the peer is one of the `trusted` proxies, in which
/// case the hops they recorded (`Forwarded: for=`, else `X-Forwarded-For`) are walked from the
/// nearest: the first hop that is not itself a trusted proxy is the client. A hop that is not an
/// address (`unknown`, an obfuscated name) ends the walk at the last hop known to be trusted.
pub fn client_ip(peer: IpAddr, headers: &axum::http::HeaderMap, trusted: &[Cidr]) -> IpAddr {
    let is_trusted = |ip: IpAddr| trusted.iter().any(|c| c.contains(ip));
    if !is_trusted(peer) {
        return peer;
    }
    let values = |name: &str| -> Vec<String> {
        headers.get_all(name).iter().filter_map(|v| v.to_str().ok()).flat_map(|v| v.split(',')).map(|x| x.trim().to_string()).collect()
    };
    let forwarded: Vec<String> = values("forwarded")
        .iter()
        .filter_map(|element| {
            element.split(';').find_map(|pair| {
                let (k, v) = pair.split_once('=')?;
                k.trim().eq_ignore_ascii_case("for").then(|| v.trim().to_string())
            })
        })
        .collect();
    let hops = if forwarded.is_empty() { values("x-forwarded-for") } else { forwarded };
    let mut client = peer;
    for hop in hops.iter().rev() {
        match parse_hop(hop) {
            Some(ip) if is_trusted(ip) => client = ip,
            Some(ip) => return ip,
            None => return client,
        }
    }
    client
}

/// `192.0.2.7`, `"192.0.2.7:4711"`, `"[2001:db8::1]:4711"`, `2001:db8::1`.
fn parse_hop(hop: &str) -> Option<IpAddr> {
    let h = hop.trim().trim_matches('"');
    if let Some(rest) = h.strip_prefix('[') {
        return rest.split(']').next()?.parse().ok();
    }
    h.parse().ok().or_else(|| h.rsplit_once(':').and_then(|(a, _)| a.parse::<std::net::Ipv4Addr>().ok().map(IpAddr::V4)))
}

/// Middleware: replaces the connection's address by the client's (see [`client_ip`]) for
/// everything after it: lock-outs, rates, the share throttle, the portal, logs.
pub async fn resolve_client(
    axum::extract::State(trusted): axum::extract::State<Arc<Vec<Cidr>>>,
    mut req: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    if !trusted.is_empty() {
        if let Some(ConnectInfo(ClientAddr(peer))) = req.extensions().get::<ConnectInfo<ClientAddr>>().copied() {
            let ip = client_ip(peer.ip(), req.headers(), &trusted);
            req.extensions_mut().insert(ConnectInfo(ClientAddr(SocketAddr::new(ip, if ip == peer.ip() { peer.port() } else { 0 }))));
        }
    }
    next.run(req).await
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
    /// How many secrets a locked-out address may still have checked (a second).
    locked_checks: DefaultKeyedRateLimiter<IpAddr>,
    /// Fingerprints of secrets that verified recently: served from a locked-out address without
    /// waiting for a check slot, so a neighbour's wrong secrets never lock a working client out.
    known_good: Mutex<HashMap<[u8; 32], Instant>>,
}

/// What a presented secret may do from its address right now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Gate {
    /// Not locked out: check it as usual.
    Open,
    /// The address is locked out but the secret gets checked; a wrong one is refused with 429.
    Locked,
}

/// Remembered good secrets, at most; the oldest go first.
const KNOWN_GOOD_MAX: usize = 100_000;
/// Secrets a locked-out address may still have checked, a second.
pub const LOCKED_CHECKS_PER_S: u32 = 20;
/// How long a secret from a locked-out address waits for its check at most.
const LOCKED_WAIT: Duration = Duration::from_secs(1);

fn locked_out() -> Error {
    Error::TooManyRequests("too many failed attempts from this address; try again later".into())
}

impl Limits {
    /// `failures_per_minute` wrong secrets per address before a `block_for` lock-out;
    /// `credential_rps` calls a second per credential (bursts of twice that).
    pub fn new(failures_per_minute: u32, block_for: Duration, credential_rps: u32) -> Limits {
        let f = NonZeroU32::new(failures_per_minute.max(1)).expect("non-zero");
        let c = NonZeroU32::new(credential_rps.max(1)).expect("non-zero");
        let burst = NonZeroU32::new(credential_rps.max(1).saturating_mul(2)).expect("non-zero");
        let locked = NonZeroU32::new(LOCKED_CHECKS_PER_S).expect("non-zero");
        Limits {
            failures: RateLimiter::keyed(Quota::per_minute(f).allow_burst(f)),
            blocked: Mutex::new(HashMap::new()),
            block_for,
            per_credential: RateLimiter::keyed(Quota::per_second(c).allow_burst(burst)),
            locked_checks: RateLimiter::keyed(Quota::per_second(locked).allow_burst(locked)),
            known_good: Mutex::new(HashMap::new()),
        }
    }

    /// A secret's fingerprint for [`Limits::gate`] and [`Limits::verified`] (never the secret).
    pub fn fingerprint(secret: &str) -> [u8; 32] {
        use sha2::Digest;
        sha2::Sha256::new_with_prefix(b"strongroom-lockout-v1\0").chain_update(secret.as_bytes()).finalize().into()
    }

    fn is_blocked(&self, ip: IpAddr) -> bool {
        let mut blocked = self.blocked.lock().unwrap_or_else(|p| p.into_inner());
        match blocked.get(&ip) {
            Some(until) if *until > Instant::now() => true,
            Some(_) => {
                blocked.remove(&ip);
                false
            }
            None => false,
        }
    }

    /// Decides, before any check, what a secret from `ip` may do. A locked-out address gets
    /// its known-good secrets checked at once and others at [`LOCKED_CHECKS_PER_S`], each waiting
    /// up to [`LOCKED_WAIT`] for its turn (so a valid credential new to the address is slowed,
    /// not refused, unless the address floods); beyond that, 429.
    pub async fn gate(&self, ip: IpAddr, fingerprint: &[u8; 32]) -> Result<Gate, Error> {
        if !self.is_blocked(ip) {
            return Ok(Gate::Open);
        }
        let horizon = self.block_for * 10;
        let known = self.known_good.lock().unwrap_or_else(|p| p.into_inner()).get(fingerprint).is_some_and(|t| t.elapsed() < horizon);
        if known {
            return Ok(Gate::Locked);
        }
        match self.locked_checks.check_key(&ip) {
            Ok(()) => Ok(Gate::Locked),
            Err(not_until) => {
                let wait = not_until.wait_time_from(governor::clock::Clock::now(&governor::clock::QuantaClock::default()));
                if wait > LOCKED_WAIT {
                    return Err(locked_out());
                }
                tokio::time::sleep(wait).await;
                self.locked_checks.check_key(&ip).map(|_| Gate::Locked).map_err(|_| locked_out())
            }
        }
    }

    /// 429 while `ip` sits out a lock-out (for callers that check secrets of their own, such as
    /// the DPO console's sign-in).
    pub fn check_blocked(&self, ip: IpAddr) -> Result<(), Error> {
        if self.is_blocked(ip) {
            Err(locked_out())
        } else {
            Ok(())
        }
    }

    /// Records a secret that verified.
    pub fn verified(&self, fingerprint: [u8; 32]) {
        let mut good = self.known_good.lock().unwrap_or_else(|p| p.into_inner());
        if good.len() >= KNOWN_GOOD_MAX && !good.contains_key(&fingerprint) {
            let horizon = self.block_for * 10;
            good.retain(|_, t| t.elapsed() < horizon);
            if good.len() >= KNOWN_GOOD_MAX {
                good.clear();
            }
        }
        good.insert(fingerprint, Instant::now());
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

    /// The answer to a wrong secret that passed `gate`: 429 when the address is (now) locked
    /// out, else 403.
    pub fn refuse(&self, ip: IpAddr, gate: Gate) -> Error {
        if gate == Gate::Locked || self.record_failure(ip) {
            locked_out()
        } else {
            Error::denied()
        }
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

    #[tokio::test]
    async fn a_locked_out_address_keeps_its_good_secrets_and_is_slowed_for_others() {
        let l = Limits::new(2, Duration::from_secs(60), 1000);
        let ip: IpAddr = "10.0.0.9".parse().unwrap();
        let good = Limits::fingerprint("good");
        l.verified(good);
        while !l.record_failure(ip) {}
        assert_eq!(l.gate(ip, &good).await.unwrap(), Gate::Locked);
        let bad = Limits::fingerprint("bad");
        let started = Instant::now();
        for _ in 0..(LOCKED_CHECKS_PER_S + 10) {
            assert_eq!(l.gate(ip, &bad).await.unwrap(), Gate::Locked, "slowed, not refused");
        }
        assert!(started.elapsed() >= Duration::from_millis(300), "beyond the burst each check waits for its turn");
        for _ in 0..50 {
            assert!(l.gate(ip, &good).await.is_ok(), "a known-good secret is never refused");
        }
        // A flood beyond what the waits absorb is refused.
        let flood = futures_flood(&l, ip, &bad).await;
        assert!(flood > 0, "a flood from a locked-out address gets 429");
        assert!(matches!(l.refuse(ip, Gate::Locked), Error::TooManyRequests(_)));
        assert!(l.gate("10.0.0.10".parse().unwrap(), &bad).await.unwrap() == Gate::Open);
    }

    /// 200 concurrent checks of a wrong secret: how many were refused outright.
    async fn futures_flood(l: &Limits, ip: IpAddr, bad: &[u8; 32]) -> usize {
        futures_util::future::join_all((0..200).map(|_| l.gate(ip, bad))).await.iter().filter(|r| r.is_err()).count()
    }

    #[test]
    fn the_client_is_believed_from_trusted_proxies_only() {
        use axum::http::HeaderMap;
        let trusted: Vec<Cidr> = vec!["10.0.0.0/8".parse().unwrap(), "2001:db8::/32".parse().unwrap()];
        let mut h = HeaderMap::new();
        h.insert("x-forwarded-for", "203.0.113.9, 198.51.100.4, 10.1.2.3".parse().unwrap());
        let lb: IpAddr = "10.0.0.1".parse().unwrap();
        assert_eq!(client_ip(lb, &h, &trusted), "198.51.100.4".parse::<IpAddr>().unwrap(), "nearest untrusted hop");
        let stranger: IpAddr = "192.0.2.1".parse().unwrap();
        assert_eq!(client_ip(stranger, &h, &trusted), stranger, "an untrusted peer's header is ignored");
        assert_eq!(client_ip(lb, &h, &[]), lb);
        let mut f = HeaderMap::new();
        f.insert("forwarded", r#"for=192.0.2.60;proto=https, for="[2001:db8:cafe::17]:4711""#.parse().unwrap());
        assert_eq!(client_ip(lb, &f, &trusted), "192.0.2.60".parse::<IpAddr>().unwrap());
        let mut u = HeaderMap::new();
        u.insert("x-forwarded-for", "unknown, 10.9.9.9".parse().unwrap());
        assert_eq!(client_ip(lb, &u, &trusted), "10.9.9.9".parse::<IpAddr>().unwrap());
        assert!("10.0.0.0/33".parse::<Cidr>().is_err() && "nope".parse::<Cidr>().is_err());
        assert!("0.0.0.0/0".parse::<Cidr>().unwrap().contains("8.8.8.8".parse().unwrap()));
        assert!("::ffff:10.0.0.5".parse::<IpAddr>().map(|ip| trusted[0].contains(ip)).unwrap());
    }

    #[test]
    fn a_credential_over_its_rate_is_refused() {
        let l = Limits::new(5, Duration::from_secs(60), 3);
        let results: Vec<bool> = (0..10).map(|_| l.check_credential("cred-1").is_ok()).collect();
        assert_eq!(results.iter().filter(|ok| **ok).count(), 6, "burst of twice the rate");
        assert!(l.check_credential("cred-2").is_ok());
    }
}
