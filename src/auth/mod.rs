//! Credential -> principal. Invariants: a credential is bound to one tenant and is found only by
//! its keyed hash inside that tenant's scope, so a token of tenant A is simply unknown in B; the
//! tenant comes from `X-Bunker-Tenant`, else the host's subdomain, else `default`.

pub mod conditions;
pub mod lease;
pub mod oidc;
pub mod policy;
pub mod ratelimit;
pub mod roles;

pub use roles::Role;

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::HeaderMap;
use zeroize::Zeroizing;

use crate::error::{Error, Result};
use crate::keys::keyring::Keyring;
use crate::store::credentials::CredentialRow;
use crate::store::TenantTx;

pub const TOKEN_HEADER: &str = "x-bunker-token";
pub const TENANT_HEADER: &str = "x-bunker-tenant";
pub const DEFAULT_TENANT: &str = "default";

/// What a request claims: a token and a tenant name. Nothing is verified yet.
pub struct Claimed {
    pub token: Option<Zeroizing<String>>,
    pub tenant: String,
    /// The peer address (0.0.0.0 when unknown), for rate limits.
    pub ip: std::net::IpAddr,
    /// `Idempotency-Key` and the body's digest, when the request has one.
    pub idempotency: Option<crate::api::idempotency::Claim>,
}

impl<S: Send + Sync> FromRequestParts<S> for Claimed {
    type Rejection = Error;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self> {
        let mut c = claimed(&parts.headers);
        if let Some(info) = parts.extensions.get::<axum::extract::ConnectInfo<ratelimit::ClientAddr>>() {
            c.ip = info.0 .0.ip();
        }
        c.idempotency = parts.extensions.get::<crate::api::idempotency::Claim>().cloned();
        Ok(c)
    }
}

impl Claimed {
    /// The same claim, aimed at the main tenant (system operations live there).
    pub fn in_main_tenant(self) -> Claimed {
        Claimed { tenant: DEFAULT_TENANT.into(), ..self }
    }
}

pub fn claimed(headers: &HeaderMap) -> Claimed {
    let token = headers
        .get(TOKEN_HEADER)
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .map(|t| Zeroizing::new(t.to_string()));
    let tenant = headers
        .get(TENANT_HEADER)
        .and_then(|v| v.to_str().ok())
        .map(|t| t.trim().to_ascii_lowercase())
        .filter(|t| !t.is_empty())
        .or_else(|| headers.get(axum::http::header::HOST).and_then(|h| h.to_str().ok()).and_then(subdomain))
        .unwrap_or_else(|| DEFAULT_TENANT.to_string());
    Claimed { token, tenant, ip: std::net::IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED), idempotency: None }
}

/// `acme.vault.example.com` -> `acme`, `acme.localhost:3000` -> `acme`; bare hosts and IP
/// addresses name no tenant.
pub fn subdomain(host: &str) -> Option<String> {
    let host = if host.starts_with('[') { return None } else { host.rsplit_once(':').map_or(host, |(h, _)| h) };
    if host.parse::<std::net::IpAddr>().is_ok() {
        return None;
    }
    let labels: Vec<&str> = host.split('.').filter(|l| !l.is_empty()).collect();
    let named = labels.len() >= 3 || (labels.len() == 2 && labels[1].eq_ignore_ascii_case("localhost"));
    (named && labels[0] != "www").then(|| labels[0].to_ascii_lowercase())
}

#[derive(Debug, Clone)]
pub struct Principal {
    pub tenant_id: i64,
    pub tenant_name: String,
    /// The stored credential presented (0 for a lease).
    pub credential_id: i64,
    /// Decided on by the casbin enforcer (`policies/policy.csv`, the tenant's own policies).
    pub role: Role,
    /// Set when the caller presented a leased role token rather than a stored credential.
    pub lease_id: Option<String>,
    /// For a user login token: the only user record it may reach.
    pub self_user: Option<String>,
    /// The credential at the root of this principal's lineage: its own id for a credential, the
    /// minting credential's for a lease (`None`: a portal sign-in). Everything this principal
    /// mints records it, so revoking that credential reaches all of it.
    pub lineage_root: Option<i64>,
    /// For a lease or an identity token: its hard expiry, which nothing it mints may outlive.
    pub lease_max_expires_at: Option<i64>,
}

impl Principal {
    /// The audit actor: role and credential id, never the token.
    pub fn actor(&self) -> String {
        match &self.lease_id {
            Some(l) => format!("{}:lease:{l}", self.role),
            None => format!("{}:{}", self.role, self.credential_id),
        }
    }

    pub fn is_root(&self) -> bool {
        self.role == Role::Root
    }

    /// Whether the caller presented a lease (xtoken, Vault lease, portal session).
    pub fn is_lease(&self) -> bool {
        self.lease_id.is_some()
    }

    /// Whether the caller presented a bearer token with a hard expiry (a lease, or an identity
    /// token from an OIDC trust): it mints only tokens of its own role, none outliving it.
    pub fn is_bounded(&self) -> bool {
        self.is_lease() || self.lease_max_expires_at.is_some()
    }
}

/// Verifies `token` inside the tenant transaction; `None` when it is not a live credential of
/// this tenant. A verification this instance remembers (see [`Verified`]) skips the lookup.
pub async fn verify(tx: &mut TenantTx, ring: &Keyring, verified: &Verified, tenant_name: &str, token: &str) -> Result<Option<Principal>> {
    let hash = ring.credential_hash(token);
    let row = match verified.recall(tx, &hash) {
        Some(row) => row,
        None => {
            let Some(row) = tx.credential_by_hash(&hash).await? else {
                return Ok(None);
            };
            verified.remember(tx, hash, &row);
            row
        }
    };
    let Some(role) = Role::parse(&row.kind).filter(|r| !r.is_tenant_role()) else {
        return Ok(None);
    };
    Ok(Some(Principal {
        tenant_id: tx.tenant_id(),
        tenant_name: tenant_name.to_string(),
        credential_id: row.id,
        role,
        lease_id: None,
        self_user: None,
        lineage_root: Some(row.id),
        lease_max_expires_at: None,
    }))
}

/// Live credentials this instance has found, so that a warm call skips their lookup. Exact
/// across the fleet: an entry counts only while its tenant's credential version (read afresh
/// as every call enters its tenant; bumped in the database, in the same transaction, by any
/// change to a credential row: migration 0024) is still the one it was found at. An entry is
/// made only from a row read at or after that version, so a revocation reaches every instance
/// at its next call. Refusals are not remembered. Keys are the credentials' keyed hashes, as
/// the database keeps them: no token is held.
#[derive(Default)]
pub struct Verified {
    entries: std::sync::Mutex<Remembered>,
}

/// (tenant, keyed hash) -> (the tenant's credential version when found, the row); and the
/// failover epoch they were found in.
#[derive(Default)]
struct Remembered {
    epoch: u64,
    map: std::collections::HashMap<(i64, [u8; 32]), (i64, CredentialRow)>,
}

/// Entries kept at most; past it the map starts over (a flood of distinct live credentials
/// only costs lookups, as without the map).
const VERIFIED_CAP: usize = 8192;

impl Verified {
    /// The entries, forgotten if the database changed hands since they were made: a promoted
    /// replica that was behind (or a restored backup) can count a tenant's credential version
    /// up again to a value already remembered.
    fn entries(&self) -> std::sync::MutexGuard<'_, Remembered> {
        let mut entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        let epoch = crate::store::failover::epoch();
        if entries.epoch != epoch {
            entries.map.clear();
            entries.epoch = epoch;
        }
        entries
    }

    fn recall(&self, tx: &TenantTx, hash: &[u8; 32]) -> Option<CredentialRow> {
        match self.entries().map.get(&(tx.tenant_id(), *hash)) {
            Some((version, row)) if *version == tx.credential_version() => Some(row.clone()),
            _ => None,
        }
    }

    fn remember(&self, tx: &TenantTx, hash: [u8; 32], row: &CredentialRow) {
        // A transaction that found no tenant row has no version to hold an entry to.
        if tx.credential_version() < 0 {
            return;
        }
        let mut entries = self.entries();
        if entries.map.len() >= VERIFIED_CAP {
            entries.map.clear();
        }
        entries.map.insert((tx.tenant_id(), hash), (tx.credential_version(), row.clone()));
    }
}

/// Verifies a leased role token: signature and expiry, the tenant it was minted for, then a live
/// lease row in this tenant whose lineage root is not revoked (revocation and renewal hold on
/// every instance at once).
pub async fn verify_lease(tx: &mut TenantTx, ring: &Keyring, tenant_name: &str, token: &str) -> Result<Option<Principal>> {
    let Some(claims) = lease::verify(ring, token) else {
        return Ok(None);
    };
    let Some(role) = Role::parse(&claims.role) else {
        return Ok(None);
    };
    if claims.tid != tx.tenant_id() {
        return Ok(None);
    }
    let Some(live) = tx.live_lease(&claims.sub).await? else {
        return Ok(None);
    };
    if (role == Role::UserSelf) != live.user_token.is_some() {
        return Ok(None);
    }
    Ok(Some(Principal {
        tenant_id: tx.tenant_id(),
        tenant_name: tenant_name.to_string(),
        credential_id: 0,
        role,
        lease_id: Some(claims.sub),
        self_user: live.user_token,
        lineage_root: live.root_credential_id,
        lease_max_expires_at: Some(live.max_expires_at),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tenant_comes_from_subdomains_but_not_from_bare_hosts_or_ips() {
        assert_eq!(subdomain("acme.vault.example.com").as_deref(), Some("acme"));
        assert_eq!(subdomain("Acme.localhost:3000").as_deref(), Some("acme"));
        assert_eq!(subdomain("localhost:3000"), None);
        assert_eq!(subdomain("example.com"), None);
        assert_eq!(subdomain("127.0.0.1:3000"), None);
        assert_eq!(subdomain("[::1]:3000"), None);
        assert_eq!(subdomain("www.example.com"), None);
    }

    #[test]
    fn header_wins_over_host() {
        let mut h = HeaderMap::new();
        h.insert("host", "acme.example.com".parse().unwrap());
        assert_eq!(claimed(&h).tenant, "acme");
        h.insert(TENANT_HEADER, "Beta".parse().unwrap());
        assert_eq!(claimed(&h).tenant, "beta");
        assert_eq!(claimed(&HeaderMap::new()).tenant, DEFAULT_TENANT);
    }
}
