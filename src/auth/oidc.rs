//! Identity tokens from a Vault/OpenBao identity engine, for deployments that cannot load the
//! secrets plugin (managed Vault services): an application reads `identity/oidc/token/<role>`
//! and presents the JWT as its `X-Bunker-Token`. Invariant: a token is admitted only by a live
//! trust of the tenant it is presented to, for that trust's exact issuer and audience, signed
//! by a key from that trust's JWKS with an asymmetric algorithm, unexpired, and with a claim
//! the trust maps to a working role; anything else is an invalid credential, told apart only
//! in the log (never with token content).
//!
//! The principal acts with the trust's credential as its lineage root, so revoking it (or
//! deleting the trust) stops every such token at its next request on every instance. Keys are
//! cached per instance for ten minutes and refetched when a token names an unknown key id
//! (a rotation), at most once per five seconds per URL, so forged key ids cannot make the
//! vault hammer the identity provider.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use jsonwebtoken::jwk::{Jwk, JwkSet};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde_json::Value;

use super::{Principal, Role};
use crate::error::{Error, Result};
use crate::store::oidc::OidcTrust;
use crate::store::TenantTx;

/// How long fetched keys are used before they are fetched again.
const KEYS_FRESH: Duration = Duration::from_secs(600);
/// The least time between two fetches of one JWKS URL.
const REFETCH_GAP: Duration = Duration::from_secs(5);
/// The largest JWKS document read.
const MAX_JWKS_BYTES: usize = 256 * 1024;
/// Clock skew tolerated on `exp` and `nbf`.
const LEEWAY_S: u64 = 5;

/// Signature algorithms accepted: asymmetric only (a shared-secret HS* token could be minted by
/// anyone who read the key set, and `none` is not a signature).
const ALGORITHMS: [Algorithm; 9] = [
    Algorithm::RS256,
    Algorithm::RS384,
    Algorithm::RS512,
    Algorithm::PS256,
    Algorithm::PS384,
    Algorithm::PS512,
    Algorithm::ES256,
    Algorithm::ES384,
    Algorithm::EdDSA,
];

struct Fetched {
    keys: JwkSet,
    at: Instant,
}

/// Each instance's cache of identity providers' public keys, by JWKS URL.
pub struct Keys {
    http: reqwest::Client,
    cache: Mutex<HashMap<String, Fetched>>,
}

impl Default for Keys {
    fn default() -> Keys {
        crate::custody::install_crypto_provider();
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(5))
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap_or_default();
        Keys { http, cache: Mutex::new(HashMap::new()) }
    }
}

impl Keys {
    /// The cached key `kid` of `url` while fresh, and whether the set was fetched too recently
    /// to fetch again.
    fn cached(&self, url: &str, kid: &str) -> (Option<Jwk>, bool) {
        let cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
        match cache.get(url) {
            Some(f) => {
                let key = (f.at.elapsed() < KEYS_FRESH).then(|| f.keys.find(kid).cloned()).flatten();
                (key, f.at.elapsed() < REFETCH_GAP)
            }
            None => (None, false),
        }
    }

    /// The key `kid` of the set at `url`: from the cache, else fetched (once per gap).
    async fn key(&self, url: &str, kid: &str) -> Result<Option<Jwk>> {
        let (key, just_fetched) = self.cached(url, kid);
        if key.is_some() || just_fetched {
            return Ok(key);
        }
        let keys = self.fetch(url).await?;
        let key = keys.find(kid).cloned();
        self.cache.lock().unwrap_or_else(|p| p.into_inner()).insert(url.to_string(), Fetched { keys, at: Instant::now() });
        Ok(key)
    }

    async fn fetch(&self, url: &str) -> Result<JwkSet> {
        let unavailable = |why: &str| {
            tracing::warn!(url, why, "identity provider keys unavailable");
            Error::Unavailable("the identity provider's keys could not be fetched; retry shortly".into())
        };
        let mut res = self.http.get(url).send().await.map_err(|_| unavailable("unreachable"))?;
        if !res.status().is_success() {
            return Err(unavailable("not 2xx"));
        }
        let mut body = Vec::new();
        while let Some(chunk) = res.chunk().await.map_err(|_| unavailable("cut"))? {
            body.extend_from_slice(&chunk);
            if body.len() > MAX_JWKS_BYTES {
                return Err(unavailable("too large"));
            }
        }
        serde_json::from_slice(&body).map_err(|_| unavailable("not a JWK set"))
    }
}

/// The `iss` of a JWT, read before any check (to tell our leases from identity tokens, and to
/// find the trust whose keys check it).
pub fn unverified_issuer(token: &str) -> Option<String> {
    use base64::Engine;
    let payload = token.split('.').nth(1)?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(payload).ok()?;
    let claims: Value = serde_json::from_slice(&bytes).ok()?;
    claims.get("iss")?.as_str().map(str::to_string)
}

/// Why a token was refused, for the log only.
fn refused(why: &'static str) -> Result<Option<Principal>> {
    tracing::info!(why, "identity token refused");
    Ok(None)
}

/// Verifies an identity token presented to the tenant of `tx`, whose unverified `iss` is
/// `issuer`; `None` when it is not one a live trust admits (see the module comment).
pub async fn verify(tx: &mut TenantTx, keys: &Keys, tenant_name: &str, token: &str, issuer: &str) -> Result<Option<Principal>> {
    let Some(trust) = tx.oidc_trust(issuer).await? else { return refused("no trust for this issuer") };
    let Ok(header) = jsonwebtoken::decode_header(token) else { return refused("malformed header") };
    if !ALGORITHMS.contains(&header.alg) {
        return refused("algorithm not accepted");
    }
    let Some(kid) = header.kid.as_deref() else { return refused("no key id") };
    let Some(jwk) = keys.key(&trust.jwks_url, kid).await? else { return refused("unknown key id") };
    // The key decides the algorithm family; a key that names its algorithm must match.
    if jwk.common.key_algorithm.is_some_and(|a| format!("{a:?}") != format!("{:?}", header.alg)) {
        return refused("algorithm differs from the key's");
    }
    let Ok(key) = DecodingKey::from_jwk(&jwk) else { return refused("unusable key") };
    let claims = match jsonwebtoken::decode::<Value>(token, &key, &validation(&trust, header.alg)) {
        Ok(d) => d.claims,
        Err(e) => {
            use jsonwebtoken::errors::ErrorKind as K;
            return refused(match e.kind() {
                K::ExpiredSignature => "expired",
                K::ImmatureSignature => "not yet valid",
                K::InvalidAudience => "wrong audience",
                K::InvalidIssuer => "wrong issuer",
                K::InvalidSignature => "bad signature",
                K::MissingRequiredClaim(_) => "missing claim",
                _ => "invalid",
            });
        }
    };
    let Some(role) = mapped_role(&trust, &claims) else { return refused("claim maps to no role") };
    let exp = claims.get("exp").and_then(Value::as_i64);
    Ok(Some(Principal {
        tenant_id: tx.tenant_id(),
        tenant_name: tenant_name.to_string(),
        credential_id: trust.credential_id,
        role,
        lease_id: None,
        self_user: None,
        lineage_root: Some(trust.credential_id),
        lease_max_expires_at: exp,
    }))
}

fn validation(trust: &OidcTrust, alg: Algorithm) -> Validation {
    let mut v = Validation::new(alg);
    v.set_issuer(&[&trust.issuer]);
    v.set_audience(&[&trust.audience]);
    v.set_required_spec_claims(&["exp", "iss", "aud"]);
    v.validate_nbf = true;
    v.leeway = LEEWAY_S;
    v
}

/// The working role the trust maps the token's claim to.
fn mapped_role(trust: &OidcTrust, claims: &Value) -> Option<Role> {
    let value = claims.get(&trust.role_claim)?.as_str()?;
    Role::parse(trust.roles.get(value)?).filter(|r| Role::WORKING.contains(r))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn trust() -> OidcTrust {
        OidcTrust {
            credential_id: 7,
            issuer: "https://bao.example/v1/identity/oidc".into(),
            jwks_url: "https://bao.example/v1/identity/oidc/.well-known/keys".into(),
            audience: "client-1".into(),
            role_claim: "strongroom_role".into(),
            roles: [("reader".to_string(), "app-reader".to_string()), ("boss".to_string(), "root".to_string())].into(),
            created_at: 0,
        }
    }

    #[test]
    fn only_a_mapped_working_role_is_admitted() {
        let t = trust();
        assert_eq!(mapped_role(&t, &json!({"strongroom_role": "reader"})), Some(Role::AppReader));
        assert_eq!(mapped_role(&t, &json!({"strongroom_role": "writer"})), None, "unmapped value");
        assert_eq!(mapped_role(&t, &json!({"strongroom_role": "boss"})), None, "root is never a working role");
        assert_eq!(mapped_role(&t, &json!({"strongroom_role": ["reader"]})), None, "not a string");
        assert_eq!(mapped_role(&t, &json!({})), None);
    }

    #[test]
    fn the_issuer_is_read_from_the_payload() {
        use base64::Engine;
        let enc = |v: Value| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string());
        let token = format!("{}.{}.sig", enc(json!({"alg": "RS256"})), enc(json!({"iss": "https://i.example"})));
        assert_eq!(unverified_issuer(&token).as_deref(), Some("https://i.example"));
        assert_eq!(unverified_issuer("a.b"), None);
        assert!(!ALGORITHMS.contains(&Algorithm::HS256));
    }
}
