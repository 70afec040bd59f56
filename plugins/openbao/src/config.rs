//! The mount's configuration: where Strongroom is, which tenant, and the tenant's `vault-plugin`
//! credential. It lives in OpenBao's storage under `config` (seal-wrapped, see `SpecialPaths`),
//! never in mount options, and a read of `config` never shows the credential.

use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};
use zeroize::Zeroizing;

/// The storage key, relative to the mount.
pub const STORAGE_KEY: &str = "config";

/// Where replaced and deleted configs are kept (`retired/<fingerprint>`), so that leases minted
/// under them can still be renewed and revoked with the credential that minted them: Strongroom
/// lets a credential manage only the leases of its own lineage.
pub const RETIRED_PREFIX: &str = "retired/";

/// How long a retired config is kept. Strongroom caps every lease (`STRONGROOM_LEASE_MAX_TTL_S`,
/// an hour by default), so by then every lease it minted has ended in Strongroom.
pub const RETIRED_KEEP_S: i64 = 7 * 24 * 3600;

#[derive(Clone, Serialize, Deserialize)]
pub struct Config {
    /// Strongroom's base URL, e.g. `https://vault.example:3000`.
    pub url: String,
    pub tenant: String,
    /// The `vault-plugin` credential; zeroized when dropped.
    pub token: Zeroizing<String>,
    /// A PEM CA certificate to trust for `url`, besides the system roots.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_cert: Option<String>,
    /// Plain http to a host other than loopback: the credential would cross the network in
    /// clear, so it takes this explicit choice (an in-cluster address behind a NetworkPolicy).
    #[serde(default)]
    pub allow_http: bool,
}

/// A config no longer current, kept for the leases minted under it.
#[derive(Serialize, Deserialize)]
pub struct Retired {
    pub config: Config,
    pub retired_at: i64,
}

impl std::fmt::Debug for Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Config").field("url", &self.url).field("tenant", &self.tenant).finish_non_exhaustive()
    }
}

impl Config {
    /// A write of `config`: the fields given replace the stored ones (`previous`, on an update);
    /// the result must be complete and valid.
    pub fn written(previous: Option<&Config>, data: &Map<String, Value>) -> Result<Config, String> {
        for key in data.keys() {
            if !matches!(key.as_str(), "url" | "tenant" | "token" | "ca_cert" | "allow_http") {
                return Err(format!("unknown field {key:?}: config takes url, tenant, token, ca_cert and allow_http"));
            }
        }
        let field = |name: &str| -> Result<Option<String>, String> {
            match data.get(name) {
                None | Some(Value::Null) => Ok(None),
                Some(Value::String(s)) => Ok(Some(s.clone())),
                Some(_) => Err(format!("{name} must be a string")),
            }
        };
        let url = field("url")?.or_else(|| previous.map(|p| p.url.clone())).ok_or("url is required")?;
        let tenant = field("tenant")?.or_else(|| previous.map(|p| p.tenant.clone())).ok_or("tenant is required")?;
        let token = match field("token")? {
            Some(t) => Zeroizing::new(t),
            None => previous.map(|p| p.token.clone()).ok_or("token is required")?,
        };
        let ca_cert = match field("ca_cert")? {
            Some(c) if c.trim().is_empty() => None,
            Some(c) => Some(c),
            None => previous.and_then(|p| p.ca_cert.clone()),
        };
        let allow_http = match data.get("allow_http") {
            None | Some(Value::Null) => previous.is_some_and(|p| p.allow_http),
            Some(Value::Bool(b)) => *b,
            Some(Value::String(s)) if s == "true" || s == "false" => s == "true",
            Some(_) => return Err("allow_http must be true or false".into()),
        };
        let config = Config { url: url.trim_end_matches('/').to_string(), tenant, token, ca_cert, allow_http };
        config.validate()?;
        Ok(config)
    }

    fn validate(&self) -> Result<(), String> {
        let parsed = reqwest::Url::parse(&self.url).map_err(|_| "url is not a URL".to_string())?;
        if !matches!(parsed.scheme(), "http" | "https") || parsed.host_str().is_none() {
            return Err("url must be http(s)://host[:port]".into());
        }
        if !parsed.username().is_empty() || parsed.password().is_some() || parsed.query().is_some() || parsed.fragment().is_some() {
            return Err("url must not carry credentials, a query or a fragment".into());
        }
        let loopback = match parsed.host() {
            Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
            Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
            Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
            None => false,
        };
        if parsed.scheme() == "http" && !loopback && !self.allow_http {
            return Err("url is plain http to another host: the credential would cross the network in clear; use https, or set allow_http=true for a trusted in-cluster address".into());
        }
        if self.tenant.is_empty() || self.tenant.len() > 128 || self.tenant.chars().any(|c| c.is_control() || c.is_whitespace()) {
            return Err("tenant must be a tenant name".into());
        }
        if self.token.is_empty() || self.token.len() > 4096 || !self.token.bytes().all(|b| b.is_ascii_graphic()) {
            return Err("token must be a Strongroom credential".into());
        }
        if let Some(pem) = &self.ca_cert {
            use rustls::pki_types::{pem::PemObject, CertificateDer};
            let certs: Result<Vec<_>, _> = CertificateDer::pem_slice_iter(pem.as_bytes()).collect();
            if !certs.is_ok_and(|c| !c.is_empty()) {
                return Err("ca_cert must be a PEM certificate".into());
            }
        }
        Ok(())
    }

    /// What a read of `config` shows: everything but the credential.
    pub fn shown(&self) -> Value {
        json!({"url": self.url, "tenant": self.tenant, "token_set": true, "ca_cert": self.ca_cert.as_deref().unwrap_or(""), "allow_http": self.allow_http})
    }

    /// Names this exact config (where, which tenant, which credential) without revealing the
    /// credential: the first 64 bits of a SHA-256. Each lease records the fingerprint it was
    /// minted under, to be renewed and revoked with the same credential.
    pub fn fingerprint(&self) -> String {
        let mut input = Vec::with_capacity(self.url.len() + self.tenant.len() + self.token.len() + 2);
        for part in [self.url.as_bytes(), self.tenant.as_bytes(), self.token.as_bytes()] {
            input.extend_from_slice(part);
            input.push(0);
        }
        let mut hex = crate::install::sha256_hex(&input);
        zeroize::Zeroize::zeroize(&mut input);
        hex.truncate(16);
        hex
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn data(v: Value) -> Map<String, Value> {
        v.as_object().unwrap().clone()
    }

    #[test]
    fn a_complete_write_is_kept_and_its_read_hides_the_token() {
        let c = Config::written(None, &data(json!({"url": "http://127.0.0.1:3000/", "tenant": "acme", "token": "s3cret"}))).unwrap();
        assert_eq!(c.url, "http://127.0.0.1:3000");
        let shown = c.shown().to_string();
        assert!(!shown.contains("s3cret") && shown.contains("acme"));
        assert!(!format!("{c:?}").contains("s3cret"));
    }

    #[test]
    fn plain_http_is_for_loopback_or_an_explicit_choice() {
        for url in ["http://127.0.0.1:3000", "http://[::1]:3000", "http://localhost:3000", "https://a.example"] {
            assert!(Config::written(None, &data(json!({"url": url, "tenant": "acme", "token": "t"}))).is_ok(), "{url}");
        }
        let c = Config::written(None, &data(json!({"url": "http://sr.ns.svc:3000", "tenant": "acme", "token": "t", "allow_http": true})))
            .unwrap();
        assert!(c.allow_http);
        assert!(Config::written(Some(&c), &data(json!({"token": "t2"}))).unwrap().allow_http, "kept on update");
    }

    #[test]
    fn the_fingerprint_names_url_tenant_and_credential_and_reveals_none() {
        let c = Config::written(None, &data(json!({"url": "https://a.example", "tenant": "acme", "token": "t1"}))).unwrap();
        let other_token = Config::written(Some(&c), &data(json!({"token": "t2"}))).unwrap();
        let other_tenant = Config::written(Some(&c), &data(json!({"tenant": "acme2"}))).unwrap();
        let same = Config::written(Some(&c), &data(json!({"ca_cert": ""}))).unwrap();
        assert_eq!(c.fingerprint().len(), 16);
        assert_eq!(c.fingerprint(), same.fingerprint());
        assert_ne!(c.fingerprint(), other_token.fingerprint());
        assert_ne!(c.fingerprint(), other_tenant.fingerprint());
    }

    #[test]
    fn an_update_keeps_what_it_does_not_name() {
        let c = Config::written(None, &data(json!({"url": "https://a.example", "tenant": "acme", "token": "t1"}))).unwrap();
        let u = Config::written(Some(&c), &data(json!({"token": "t2"}))).unwrap();
        assert_eq!((u.url.as_str(), u.tenant.as_str(), u.token.as_str()), ("https://a.example", "acme", "t2"));
    }

    #[test]
    fn bad_writes_are_refused_with_a_reason() {
        for (bad, why) in [
            (json!({"tenant": "acme", "token": "t"}), "url is required"),
            (json!({"url": "ftp://a", "tenant": "acme", "token": "t"}), "http(s)"),
            (json!({"url": "http://strongroom.internal:3000", "tenant": "acme", "token": "t"}), "in clear"),
            (json!({"url": "https://a.example", "tenant": "acme", "token": "t", "allow_http": "yes"}), "true or false"),
            (json!({"url": "https://u:p@a.example", "tenant": "acme", "token": "t"}), "credentials"),
            (json!({"url": "https://a.example", "tenant": "", "token": "t"}), "tenant"),
            (json!({"url": "https://a.example", "tenant": "acme", "token": "a b"}), "token"),
            (json!({"url": "https://a.example", "tenant": "acme", "token": 5}), "string"),
            (json!({"url": "https://a.example", "tenant": "acme", "token": "t", "ca_cert": "nope"}), "PEM"),
            (json!({"url": "https://a.example", "tenant": "acme", "token": "t", "password": "x"}), "unknown field"),
        ] {
            let err = Config::written(None, &data(bad.clone())).unwrap_err();
            assert!(err.contains(why), "{bad}: {err}");
            assert!(!err.contains("u:p"));
        }
    }
}
