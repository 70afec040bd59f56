//! Outgoing webhooks (the callback outbox, the portal's sign-in codes). With
//! `STRONGROOM_WEBHOOK_SECRET` set, each request carries
//! `X-Strongroom-Signature: t=<unix seconds>,v1=<hex HMAC-SHA-256(secret, "<t>.<body>")>`, so a
//! receiver can tell the vault's requests from anyone else's and refuse stale replays (compare
//! in constant time, and reject a `t` too far from its own clock).

use hmac::{Hmac, Mac};
use sha2::Sha256;

pub const SIGNATURE_HEADER: &str = "X-Strongroom-Signature";

/// The signature header value of `body` sent at `timestamp`.
pub fn signature(secret: &[u8], timestamp: i64, body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).expect("HMAC takes any key length");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    format!("t={timestamp},v1={}", hex::encode(mac.finalize().into_bytes()))
}

/// A JSON POST of `body` to `url`, signed when `secret` is set.
pub fn post(http: &reqwest::Client, url: &str, secret: Option<&[u8]>, body: Vec<u8>) -> reqwest::RequestBuilder {
    let mut req = http.post(url).header(reqwest::header::CONTENT_TYPE, "application/json");
    if let Some(secret) = secret {
        req = req.header(SIGNATURE_HEADER, signature(secret, crate::store::now_secs(), &body));
    }
    req.body(body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_signature_covers_time_and_body() {
        let s = signature(b"k", 1_700_000_000, b"{}");
        assert!(s.starts_with("t=1700000000,v1=") && s.len() == "t=1700000000,v1=".len() + 64);
        assert_ne!(s, signature(b"k", 1_700_000_001, b"{}"));
        assert_ne!(s, signature(b"k", 1_700_000_000, b"{ }"));
        assert_ne!(s, signature(b"j", 1_700_000_000, b"{}"));
    }
}
