//! Strongroom's plugin endpoints (`/v1/vault/creds|renew|revoke`, docs/vault-plugin.md), called
//! with the mount's `vault-plugin` credential. Nothing here logs or returns the credential or a
//! minted token except `Creds::token`, which goes to OpenBao's response and nowhere else.

use std::time::Duration;

use serde::Deserialize;
use serde_json::{json, Value};
use zeroize::Zeroizing;

use crate::config::Config;

pub struct Strongroom {
    http: reqwest::Client,
    url: String,
    tenant: String,
    token: Zeroizing<String>,
}

/// Why a call did not succeed.
#[derive(Debug)]
pub enum Failure {
    /// Strongroom answered 4xx; its message (never a secret) is passed on with the status.
    Refused { status: u16, message: String },
    /// Unreachable, a 5xx, or an answer that is not Strongroom's.
    Unavailable(String),
}

/// A lease just minted.
#[derive(Deserialize)]
pub struct Creds {
    pub token: Zeroizing<String>,
    pub lease_id: String,
    pub lease_duration: i64,
    pub max_lease_duration: i64,
    pub renewable: bool,
}

/// A lease renewed.
#[derive(Deserialize)]
pub struct Renewed {
    pub lease_duration: i64,
    pub max_lease_duration: i64,
    pub renewable: bool,
}

impl Strongroom {
    pub fn new(config: &Config) -> Result<Strongroom, String> {
        let mut builder = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(5))
            .timeout(Duration::from_secs(15))
            // A redirect could carry the credential elsewhere.
            .redirect(reqwest::redirect::Policy::none())
            // The plugin inherits OpenBao's whole environment; a proxy set there for OpenBao
            // is not a place to send the credential.
            .no_proxy();
        if let Some(pem) = &config.ca_cert {
            let cert = reqwest::Certificate::from_pem(pem.as_bytes()).map_err(|_| "ca_cert is not a PEM certificate".to_string())?;
            builder = builder.add_root_certificate(cert);
        }
        let http = builder.build().map_err(|e| format!("cannot build the HTTP client: {e}"))?;
        Ok(Strongroom { http, url: config.url.clone(), tenant: config.tenant.clone(), token: config.token.clone() })
    }

    async fn call(&self, path: &str, body: Value) -> Result<Value, Failure> {
        let answer = self
            .http
            .post(format!("{}{path}", self.url))
            .header("X-Bunker-Token", self.token.as_str())
            .header("X-Bunker-Tenant", &self.tenant)
            .json(&body)
            .send()
            .await
            // without_url: the error names the failure, not where (the URL is config, not secret,
            // but one rule for every message is simpler to audit).
            .map_err(|e| Failure::Unavailable(format!("Strongroom unreachable: {}", e.without_url())))?;
        let status = answer.status();
        let body: Value = answer.json().await.unwrap_or(Value::Null);
        if status.is_success() {
            return Ok(body);
        }
        let message = body["message"].as_str().unwrap_or("no message").chars().take(300).collect::<String>();
        if status.is_client_error() {
            Err(Failure::Refused { status: status.as_u16(), message })
        } else {
            Err(Failure::Unavailable(format!("Strongroom answered {}: {message}", status.as_u16())))
        }
    }

    fn parse<T: for<'de> Deserialize<'de>>(value: Value) -> Result<T, Failure> {
        serde_json::from_value(value).map_err(|_| Failure::Unavailable("Strongroom's answer lacks the lease fields".into()))
    }

    /// Mints a lease for `role`, for `ttl_s` seconds (Strongroom's default when None).
    pub async fn creds(&self, role: &str, ttl_s: Option<i64>) -> Result<Creds, Failure> {
        let mut body = json!({"role": role});
        if let Some(ttl) = ttl_s {
            body["ttl"] = json!(ttl);
        }
        Self::parse(self.call("/v1/vault/creds", body).await?)
    }

    pub async fn renew(&self, lease_id: &str, increment_s: Option<i64>) -> Result<Renewed, Failure> {
        let mut body = json!({"lease_id": lease_id});
        if let Some(inc) = increment_s {
            body["increment"] = json!(inc);
        }
        Self::parse(self.call("/v1/vault/renew", body).await?)
    }

    /// Revokes a lease minted with this same credential. Done also when Strongroom no longer
    /// knows the lease (404), or refuses the credential itself (401/403: revoked, or its tenant
    /// gone, which revoked every lease minted from it): revoking is idempotent, since OpenBao's
    /// expiration manager retries a failed revoke and unmount waits for it.
    pub async fn revoke(&self, lease_id: &str) -> Result<(), Failure> {
        match self.call("/v1/vault/revoke", json!({"lease_id": lease_id})).await {
            Ok(_) | Err(Failure::Refused { status: 401 | 403 | 404, .. }) => Ok(()),
            Err(e) => Err(e),
        }
    }
}
