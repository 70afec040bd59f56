//! Short-lived role tokens: HS256 JWTs signed with a key derived from the master key, naming
//! tenant, role and lease. Invariant: a token is accepted only with a valid signature (HS256
//! only; no `none`, no algorithm switching), an unexpired `exp`, the tenant it was minted for,
//! and then a live lease row (checked by the caller), so revocation is immediate fleet-wide.

use jsonwebtoken::{decode, encode, Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};

use crate::keys::keyring::Keyring;

/// The `iss` of the leased role tokens this vault signs.
pub const ISSUER: &str = "strongroom";
const SIGNING_LABEL: &str = "lease-jwt-signing";

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Claims {
    pub iss: String,
    /// Lease id.
    pub sub: String,
    /// Tenant id and name the token is bound to.
    pub tid: i64,
    pub ten: String,
    pub role: String,
    pub iat: i64,
    /// Hard expiry: the lease's maximum TTL. Renewals move the lease row, never past this.
    pub exp: i64,
}

/// Whether a presented credential is shaped like a JWT (three base64url segments).
pub fn looks_like_jwt(token: &str) -> bool {
    token.starts_with("eyJ") && token.split('.').count() == 3
}

pub fn sign(ring: &Keyring, claims: &Claims) -> String {
    let key = ring.derived(SIGNING_LABEL);
    encode(&Header::new(Algorithm::HS256), claims, &EncodingKey::from_secret(key.expose())).expect("HS256 signing of serializable claims")
}

/// Verifies signature, algorithm, issuer and expiry; `None` for anything else.
pub fn verify(ring: &Keyring, token: &str) -> Option<Claims> {
    let key = ring.derived(SIGNING_LABEL);
    let mut v = Validation::new(Algorithm::HS256);
    v.set_issuer(&[ISSUER]);
    v.leeway = 0;
    v.set_required_spec_claims(&["exp", "iss", "sub"]);
    decode::<Claims>(token, &DecodingKey::from_secret(key.expose()), &v).ok().map(|d| d.claims)
}

pub fn claims(lease_id: &str, tenant_id: i64, tenant: &str, role: &str, now: i64, hard_expiry: i64) -> Claims {
    Claims { iss: ISSUER.into(), sub: lease_id.into(), tid: tenant_id, ten: tenant.into(), role: role.into(), iat: now, exp: hard_expiry }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys::envelope::Key;

    fn now() -> i64 {
        crate::store::now_secs()
    }

    #[test]
    fn tokens_verify_only_under_the_same_master_key_and_unaltered() {
        let ring = Keyring::new(Key::random());
        let c = claims("lease-1", 2, "acme", "app-reader", now(), now() + 600);
        let t = sign(&ring, &c);
        assert!(looks_like_jwt(&t));
        assert_eq!(verify(&ring, &t), Some(c.clone()));
        assert_eq!(verify(&Keyring::new(Key::random()), &t), None, "re-signed elsewhere");
        // Change the role in the payload, keep the signature.
        let parts: Vec<&str> = t.split('.').collect();
        let forged = claims("lease-1", 2, "acme", "root", now(), now() + 600);
        let body = base64_url(&serde_json::to_vec(&forged).unwrap());
        assert_eq!(verify(&ring, &format!("{}.{}.{}", parts[0], body, parts[2])), None);
        // alg none.
        let none_header = base64_url(br#"{"alg":"none","typ":"JWT"}"#);
        assert_eq!(verify(&ring, &format!("{none_header}.{}.", parts[1])), None);
        // Expired.
        let old = sign(&ring, &claims("lease-2", 2, "acme", "app-reader", now() - 100, now() - 1));
        assert_eq!(verify(&ring, &old), None);
    }

    fn base64_url(b: &[u8]) -> String {
        const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
        let mut out = String::new();
        for chunk in b.chunks(3) {
            let n = chunk.iter().enumerate().fold(0u32, |acc, (i, &x)| acc | (x as u32) << (16 - 8 * i));
            for i in 0..=chunk.len() {
                out.push(A[(n >> (18 - 6 * i) & 63) as usize] as char);
            }
        }
        out
    }
}
