//! The vault side of the benchmark: an HTTP client speaking the v2 API to the server process
//! (init, unseal, tenants, pre-load) and the operations the load generator times.

use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context};
/// Request and response bodies: `bytes::Bytes` (cheap to clone; axum re-exports the crate).
use bytes::Bytes;
use reqwest::header::{HeaderMap, HeaderValue, CONTENT_TYPE};
use serde_json::{json, Value};

use super::profile::ProfileGen;

/// A keep-alive client bound to one server, credential and tenant. Cheap to clone.
#[derive(Clone)]
pub struct Vault {
    http: reqwest::Client,
    base: Arc<str>,
    token: Arc<str>,
    tenant: Option<Arc<str>>,
}

/// One pre-loaded user: its token and email.
#[derive(Clone)]
pub struct Loaded {
    pub token: String,
    pub email: String,
}

fn client() -> anyhow::Result<reqwest::Client> {
    Ok(reqwest::Client::builder().pool_max_idle_per_host(64).tcp_nodelay(true).timeout(Duration::from_secs(300)).build()?)
}

impl Vault {
    /// Initializes the fresh vault and unseals it with two of its three shares.
    pub async fn init_and_unseal(base: &str) -> anyhow::Result<Vault> {
        let http = client()?;
        let init: Value = http.post(format!("{base}/v1/sys/init")).json(&json!({})).send().await?.error_for_status()?.json().await?;
        let root = init["root_token"].as_str().context("init answered no root_token")?.to_string();
        let keys: Vec<String> =
            init["keys"].as_array().context("init answered no keys")?.iter().filter_map(|k| k.as_str().map(str::to_string)).collect();
        if keys.len() < 2 {
            bail!("init answered fewer than 2 key shares");
        }
        let mut sealed = true;
        for k in &keys[..2] {
            let s: Value =
                http.post(format!("{base}/v1/sys/unseal")).json(&json!({ "key": k })).send().await?.error_for_status()?.json().await?;
            sealed = s["sealed"].as_bool().unwrap_or(true);
        }
        if sealed {
            bail!("the vault is still sealed after two shares");
        }
        Ok(Vault { http, base: base.into(), token: root.into(), tenant: None })
    }

    /// POST /v2/<endpoint> with a ready body; the answer's bytes, or an error unless 200.
    pub async fn post(&self, endpoint: &str, body: Bytes) -> anyhow::Result<Bytes> {
        let mut headers = HeaderMap::new();
        headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        headers.insert("x-bunker-token", HeaderValue::from_str(&self.token)?);
        if let Some(t) = &self.tenant {
            headers.insert("x-bunker-tenant", HeaderValue::from_str(t)?);
        }
        let resp = self.http.post(format!("{}/v2/{endpoint}", self.base)).headers(headers).body(body).send().await?;
        let status = resp.status();
        let bytes = resp.bytes().await?;
        if status != reqwest::StatusCode::OK {
            bail!("{endpoint}: HTTP {status}: {}", String::from_utf8_lossy(&bytes[..bytes.len().min(300)]));
        }
        Ok(bytes)
    }

    pub async fn post_json(&self, endpoint: &str, body: &Value) -> anyhow::Result<Value> {
        let bytes = self.post(endpoint, serde_json::to_vec(body)?.into()).await?;
        Ok(serde_json::from_slice(&bytes)?)
    }

    /// Creates a tenant as root; a client for its admin credential.
    pub async fn tenant(&self, name: &str) -> anyhow::Result<Vault> {
        let r = self.post_json("TenantCreate", &json!({"tenantname": name, "tenantorg": format!("{name} benchmark")})).await?;
        let xtoken = r["xtoken"].as_str().context("TenantCreate answered no xtoken")?;
        Ok(Vault { http: self.http.clone(), base: self.base.clone(), token: xtoken.into(), tenant: Some(name.into()) })
    }

    /// Adds `count` small-profile users through UserCreateBulk (1,000 a request, 2 at a time);
    /// returns them in creation order.
    pub async fn preload(&self, gen: &mut ProfileGen, count: usize) -> anyhow::Result<Vec<Loaded>> {
        let mut out = Vec::with_capacity(count);
        let mut pending: Vec<tokio::task::JoinHandle<anyhow::Result<Vec<Loaded>>>> = Vec::new();
        let mut left = count;
        while left > 0 || !pending.is_empty() {
            while left > 0 && pending.len() < 2 {
                let n = left.min(1000);
                left -= n;
                let profiles: Vec<Value> = (0..n).map(|_| gen.small()).collect();
                let emails: Vec<String> = profiles.iter().map(|p| p["email"].as_str().unwrap_or_default().to_string()).collect();
                let body = bulk_body(&profiles)?;
                let v = self.clone();
                pending.push(tokio::spawn(async move {
                    let r: Value = serde_json::from_slice(&v.post("UserCreateBulk", body).await?)?;
                    let created = r["created"].as_array().context("UserCreateBulk answered no `created`")?;
                    if created.len() != emails.len() {
                        bail!("UserCreateBulk created {} of {}", created.len(), emails.len());
                    }
                    Ok(created
                        .iter()
                        .zip(emails)
                        .map(|(c, email)| Loaded { token: c["token"].as_str().unwrap_or_default().to_string(), email })
                        .collect())
                }));
            }
            let first = pending.remove(0);
            out.extend(first.await??);
        }
        Ok(out)
    }
}

/// `{"records":[{"profile":...},...]}` as bytes.
pub fn bulk_body(profiles: &[Value]) -> anyhow::Result<Bytes> {
    let records: Vec<Value> = profiles.iter().map(|p| json!({ "profile": p })).collect();
    Ok(serde_json::to_vec(&json!({ "records": records }))?.into())
}

/// `{"profile":...}` as bytes.
pub fn create_body(profile: &Value) -> anyhow::Result<Bytes> {
    Ok(serde_json::to_vec(&json!({ "profile": profile }))?.into())
}

/// `{"mode":...,"identity":...}` as bytes.
pub fn get_body(mode: &str, identity: &str) -> Bytes {
    serde_json::to_vec(&json!({ "mode": mode, "identity": identity })).unwrap_or_default().into()
}
