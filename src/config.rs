//! Configuration: defaults, then a settings file (`--config FILE` or `STRONGROOM_CONFIG`),
//! then `STRONGROOM_*` environment variables (and `DATABASE_URL`), validated at load. The file
//! holds `NAME=VALUE` lines with the environment's names (comments with `#`, values optionally
//! quoted), so a Kubernetes ConfigMap, a systemd EnvironmentFile and the environment all speak
//! the same language; a name the file cannot hold is an error naming its line, not a silent
//! no-op. `Debug` never shows the database password.

use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use anyhow::Context;

/// Default restore window of a soft-deleted user: 30 days.
pub const DEFAULT_RESTORE_WINDOW_S: i64 = 30 * 86_400;

#[derive(Clone)]
pub struct Config {
    pub listen: SocketAddr,
    pub database_url: Option<String>,
    pub db_max_connections: u32,
    pub max_body_bytes: usize,
    /// Auto-unseal source spec (`STRONGROOM_UNSEAL_SOURCE`, see `custody`).
    pub unseal_source: Option<String>,
    /// Tenant key store spec (`STRONGROOM_TENANT_KEYS`, see `custody::tenant_kek`): where each
    /// tenant's key-encryption key lives. `None` (or `database`): database-only custody.
    pub tenant_keys: Option<String>,
    /// How often each instance looks for keys to re-wrap after a rotation.
    pub rewrap_interval_ms: u64,
    /// How often each instance deletes expired rows (`STRONGROOM_SWEEP_INTERVAL_MS`).
    pub sweep_interval_ms: u64,
    /// How long a user soft-deleted by SystemDeleteUserProfiles can be restored before the
    /// sweeper deletes it for good (`STRONGROOM_RESTORE_WINDOW_S`, seconds; default 30 days).
    pub restore_window_s: i64,
    /// Leased role tokens: default and maximum lifetime (seconds).
    pub lease_default_ttl_s: i64,
    pub lease_max_ttl_s: i64,
    /// Where `/metrics` is served (`STRONGROOM_METRICS_LISTEN`); `None`: no metrics listener.
    pub metrics_listen: Option<SocketAddr>,
    /// How long `serve` waits for in-flight requests after SIGTERM before exiting anyway.
    pub shutdown_timeout: Duration,
    /// `STRONGROOM_VAULT_ID`: `serve` refuses a database initialized as another vault.
    pub vault_id: Option<String>,
    /// Wrong secrets an address may present per minute before a lock-out of `lockout_s`.
    pub auth_failures_per_minute: u32,
    pub lockout_s: u64,
    /// Calls a second one credential may make (bursts of twice that).
    pub credential_rps: u32,
    /// Per-address rate (per second, and burst) of the share-taking endpoints (unseal, init,
    /// generate-root).
    pub share_rps: u64,
    pub share_burst: u32,
    /// `STRONGROOM_CALLBACK_URL`: where consent withdrawals, forget-me and profile changes are
    /// POSTed (one URL for all tenants); `None`: no callbacks, and nothing is queued.
    pub callback_url: Option<String>,
    /// `STRONGROOM_OIDC_ALLOW_HTTP`: OIDC trusts may name a plain-http JWKS URL (a dev-mode
    /// OpenBao on loopback); off by default, https only.
    pub oidc_allow_http: bool,
    /// `STRONGROOM_CALLBACK_BACKOFF_MS`: the retry unit; attempt `n` failing waits
    /// `min(2^n, 300)` units (default 1000: seconds).
    pub callback_backoff_ms: u64,
    /// `STRONGROOM_WEBHOOK_SECRET`: signs callbacks and portal notifications (see
    /// `privacy::webhook`); at least 32 characters. Never shown by `Debug`.
    pub webhook_secret: Option<zeroize::Zeroizing<String>>,
    /// `STRONGROOM_PORTAL_NOTIFY_URL`: where the portal POSTs one-time sign-in codes (an email or
    /// SMS gateway); `None`: codes go nowhere (except the demo outbox).
    pub portal_notify_url: Option<String>,
    /// `STRONGROOM_PORTAL_CODE_TTL_S`: how long a sign-in code is valid (default 600).
    pub portal_code_ttl_s: i64,
    /// `STRONGROOM_PORTAL_SESSION_S`: a portal session's longest life (default 3600); it also
    /// ends after `STRONGROOM_PORTAL_IDLE_S` (default 900) without a request.
    pub portal_session_s: i64,
    pub portal_idle_s: i64,
    /// Demo mode only: sign-in codes are also logged and listed on `/portal/demo/outbox`.
    pub portal_demo_outbox: bool,
    /// `STRONGROOM_PORTAL_COOKIE_SECURE` (default true): portal cookies are Secure and
    /// `__Secure-`-prefixed; only a plain-HTTP deployment (the demo) turns this off.
    pub portal_secure_cookies: bool,
    /// `STRONGROOM_HEADER_TIMEOUT_S` / `STRONGROOM_BODY_TIMEOUT_S` (default 30 each): how long a
    /// client may take to send a request's headers, and its body; a slower one is cut off
    /// (headers) or answered 408 (body), so idle sockets cannot pile up.
    pub header_timeout: Duration,
    pub body_timeout: Duration,
    /// `STRONGROOM_TRUSTED_PROXIES`: comma-separated addresses or CIDR blocks of the load
    /// balancers in front of the vault. Only a peer among them is believed when it names the
    /// client in `Forwarded` / `X-Forwarded-For`; without the setting the peer is the client.
    pub trusted_proxies: Vec<crate::auth::ratelimit::Cidr>,
    /// `STRONGROOM_CORS_ORIGINS`: which web origins a browser may call the API from: `*` (the
    /// default, as Databunker does; credentials travel in headers, never cookies, so a foreign
    /// page learns nothing it was not given), a comma-separated list of origins, or `none`.
    pub cors_origins: CorsOrigins,
}

/// The browser origins allowed to call /v2 (see `api::cors`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CorsOrigins {
    Any,
    /// Exact origins, such as `https://app.example.com`.
    List(Vec<String>),
    /// No CORS headers: only same-origin pages and non-browser clients.
    Off,
}

impl std::str::FromStr for CorsOrigins {
    type Err = anyhow::Error;

    fn from_str(v: &str) -> anyhow::Result<CorsOrigins> {
        match v.trim() {
            "" | "*" => return Ok(CorsOrigins::Any),
            "none" | "off" => return Ok(CorsOrigins::Off),
            _ => {}
        }
        let origin = |o: &str| -> anyhow::Result<String> {
            let o = o.trim().trim_end_matches('/').to_ascii_lowercase();
            let rest = o.strip_prefix("https://").or_else(|| o.strip_prefix("http://"));
            match rest {
                Some(host) if !host.is_empty() && !host.contains(['/', '?', '#', ' ', '*']) => Ok(o),
                _ => anyhow::bail!("STRONGROOM_CORS_ORIGINS: {o:?} is not an origin such as https://app.example.com"),
            }
        };
        Ok(CorsOrigins::List(v.split(',').filter(|o| !o.trim().is_empty()).map(origin).collect::<anyhow::Result<_>>()?))
    }
}

impl Default for Config {
    fn default() -> Config {
        Config {
            listen: SocketAddr::from(([127, 0, 0, 1], 3000)),
            database_url: None,
            db_max_connections: 16,
            max_body_bytes: 8 * 1024 * 1024,
            unseal_source: None,
            tenant_keys: None,
            rewrap_interval_ms: 2000,
            sweep_interval_ms: 5000,
            restore_window_s: DEFAULT_RESTORE_WINDOW_S,
            lease_default_ttl_s: 600,
            lease_max_ttl_s: 3600,
            metrics_listen: None,
            shutdown_timeout: Duration::from_secs(30),
            vault_id: None,
            auth_failures_per_minute: 30,
            lockout_s: 60,
            credential_rps: 5000,
            share_rps: 5,
            share_burst: 20,
            callback_url: None,
            oidc_allow_http: false,
            callback_backoff_ms: 1000,
            webhook_secret: None,
            portal_notify_url: None,
            portal_code_ttl_s: 600,
            portal_session_s: 3600,
            portal_idle_s: 900,
            portal_demo_outbox: false,
            portal_secure_cookies: true,
            header_timeout: Duration::from_secs(30),
            body_timeout: Duration::from_secs(30),
            trusted_proxies: Vec::new(),
            cors_origins: CorsOrigins::Any,
        }
    }
}

impl std::fmt::Debug for Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Config")
            .field("listen", &self.listen)
            .field("database_url", &self.database_url.as_deref().map(redact_url))
            .field("db_max_connections", &self.db_max_connections)
            .field("max_body_bytes", &self.max_body_bytes)
            .field("unseal_source", &self.unseal_source)
            .field("tenant_keys", &self.tenant_keys)
            .field("metrics_listen", &self.metrics_listen)
            .field("shutdown_timeout", &self.shutdown_timeout)
            .field("vault_id", &self.vault_id)
            .field("callback_url", &self.callback_url.as_deref().map(redact_url))
            .field("portal_notify_url", &self.portal_notify_url.as_deref().map(redact_url))
            .field("webhook_secret", &self.webhook_secret.as_ref().map(|_| "***"))
            .finish()
    }
}

/// `postgres://user:secret@host/db` -> `postgres://user:***@host/db`.
pub fn redact_url(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(s), Some(at)) if at > s => {
            let creds = &url[s + 3..at];
            match creds.find(':') {
                Some(c) => format!("{}{}:***{}", &url[..s + 3], &creds[..c], &url[at..]),
                None => url.to_string(),
            }
        }
        _ => url.to_string(),
    }
}

/// `NAME=VALUE` lines of a settings file: name -> (line number, value). Blank lines and `#`
/// comments are skipped; `export ` is allowed; one pair of matching quotes around a value goes.
pub fn parse_settings(text: &str, origin: &str) -> anyhow::Result<BTreeMap<String, (usize, String)>> {
    let mut out = BTreeMap::new();
    for (i, raw) in text.lines().enumerate() {
        let line = raw.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let line = line.strip_prefix("export ").unwrap_or(line);
        let (name, value) = line.split_once('=').with_context(|| format!("{origin}:{}: expected NAME=VALUE", i + 1))?;
        let name = name.trim();
        if name.is_empty() || !name.bytes().all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_') {
            anyhow::bail!("{origin}:{}: setting names are upper-case, like the environment's", i + 1);
        }
        let value = value.trim();
        let value = match value.as_bytes() {
            [q @ (b'"' | b'\''), .., e] if q == e && value.len() >= 2 => &value[1..value.len() - 1],
            _ => value,
        };
        if out.insert(name.to_string(), (i + 1, value.to_string())).is_some() {
            anyhow::bail!("{origin}:{}: {name} is set twice", i + 1);
        }
    }
    Ok(out)
}

impl Config {
    pub fn from_env() -> anyhow::Result<Config> {
        Self::from_vars(|k| std::env::var(k).ok())
    }

    /// Defaults, then the settings file `file` (if any), then the environment.
    pub fn load(file: Option<&Path>) -> anyhow::Result<Config> {
        let Some(path) = file else { return Self::from_env() };
        let text = std::fs::read_to_string(path).with_context(|| format!("cannot read the settings file {}", path.display()))?;
        Self::layered(&text, &path.display().to_string(), |k| std::env::var(k).ok())
    }

    /// [`Config::from_vars`] over `env`, falling back to the settings in `file_text`; a setting
    /// the file holds that configuration never reads is an error.
    pub fn layered(file_text: &str, origin: &str, env: impl Fn(&str) -> Option<String>) -> anyhow::Result<Config> {
        let file = parse_settings(file_text, origin)?;
        let known = Self::setting_names();
        if let Some((name, (line, _))) = file.iter().find(|(name, _)| !known.contains(name.as_str())) {
            anyhow::bail!(
                "{origin}:{line}: {name} is not a setting the file can hold (logging and cloud-client settings such as \
                 STRONGROOM_LOG come from the environment)"
            );
        }
        Self::from_vars(|k| env(k).or_else(|| file.get(k).map(|(_, v)| v.clone())))
    }

    /// Every name [`Config::from_vars`] reads.
    pub fn setting_names() -> BTreeSet<String> {
        let asked = RefCell::new(BTreeSet::new());
        let _ = Self::from_vars(|k| {
            asked.borrow_mut().insert(k.to_string());
            None
        });
        asked.into_inner()
    }

    pub fn from_vars(get: impl Fn(&str) -> Option<String>) -> anyhow::Result<Config> {
        let mut c = Config::default();
        let positive = |name: &str| -> anyhow::Result<Option<u64>> {
            match get(name) {
                None => Ok(None),
                Some(v) => v
                    .trim()
                    .parse::<u64>()
                    .ok()
                    .filter(|n| *n > 0)
                    .map(Some)
                    .ok_or_else(|| anyhow::anyhow!("{name} must be a positive integer")),
            }
        };
        if let Some(n) = positive("STRONGROOM_AUTH_FAILURES_PER_MINUTE")? {
            c.auth_failures_per_minute = n.min(u32::MAX as u64) as u32;
        }
        if let Some(n) = positive("STRONGROOM_LOCKOUT_S")? {
            c.lockout_s = n;
        }
        if let Some(n) = positive("STRONGROOM_CREDENTIAL_RPS")? {
            c.credential_rps = n.min(u32::MAX as u64 / 2) as u32;
        }
        if let Some(n) = positive("STRONGROOM_SHARE_RPS")? {
            c.share_rps = n;
        }
        if let Some(n) = positive("STRONGROOM_SHARE_BURST")? {
            c.share_burst = n.min(u32::MAX as u64) as u32;
        }
        if let Some(n) = positive("STRONGROOM_HEADER_TIMEOUT_S")? {
            c.header_timeout = Duration::from_secs(n);
        }
        if let Some(n) = positive("STRONGROOM_BODY_TIMEOUT_S")? {
            c.body_timeout = Duration::from_secs(n);
        }
        if let Some(v) = get("STRONGROOM_TRUSTED_PROXIES") {
            c.trusted_proxies = v
                .split(',')
                .map(str::trim)
                .filter(|p| !p.is_empty())
                .map(|p| p.parse().map_err(|e| anyhow::anyhow!("STRONGROOM_TRUSTED_PROXIES: {p}: {e}")))
                .collect::<anyhow::Result<_>>()?;
        }
        if let Some(v) = get("STRONGROOM_CORS_ORIGINS") {
            c.cors_origins = v.parse()?;
        }
        if let Some(v) = get("STRONGROOM_LISTEN") {
            c.listen = v.parse().map_err(|_| anyhow::anyhow!("STRONGROOM_LISTEN must be host:port"))?;
        }
        c.database_url = get("DATABASE_URL").or_else(|| get("STRONGROOM_DATABASE_URL")).filter(|v| !v.is_empty());
        if let Some(v) = get("STRONGROOM_DB_MAX_CONNECTIONS") {
            c.db_max_connections = v
                .parse()
                .ok()
                .filter(|n| *n > 0)
                .ok_or_else(|| anyhow::anyhow!("STRONGROOM_DB_MAX_CONNECTIONS must be a positive integer"))?;
        }
        if let Some(v) = get("STRONGROOM_MAX_BODY_BYTES") {
            c.max_body_bytes = v
                .parse()
                .ok()
                .filter(|n| *n >= 1024)
                .ok_or_else(|| anyhow::anyhow!("STRONGROOM_MAX_BODY_BYTES must be an integer >= 1024"))?;
        }
        if let Some(v) = get("STRONGROOM_REWRAP_INTERVAL_MS") {
            c.rewrap_interval_ms = v
                .parse()
                .ok()
                .filter(|n| *n >= 10)
                .ok_or_else(|| anyhow::anyhow!("STRONGROOM_REWRAP_INTERVAL_MS must be an integer >= 10"))?;
        }
        if let Some(v) = get("STRONGROOM_SWEEP_INTERVAL_MS") {
            c.sweep_interval_ms = v
                .trim()
                .parse()
                .ok()
                .filter(|n| *n >= 10)
                .ok_or_else(|| anyhow::anyhow!("STRONGROOM_SWEEP_INTERVAL_MS must be an integer >= 10"))?;
        }
        if let Some(n) = positive("STRONGROOM_RESTORE_WINDOW_S")? {
            c.restore_window_s = n.min(i64::MAX as u64) as i64;
        }
        if let Some(v) = get("STRONGROOM_LEASE_MAX_TTL_S") {
            c.lease_max_ttl_s = v
                .parse()
                .ok()
                .filter(|n| *n >= 1)
                .ok_or_else(|| anyhow::anyhow!("STRONGROOM_LEASE_MAX_TTL_S must be a positive integer"))?;
        }
        if let Some(v) = get("STRONGROOM_LEASE_DEFAULT_TTL_S") {
            c.lease_default_ttl_s = v
                .parse()
                .ok()
                .filter(|n| *n >= 1)
                .ok_or_else(|| anyhow::anyhow!("STRONGROOM_LEASE_DEFAULT_TTL_S must be a positive integer"))?;
        }
        c.lease_default_ttl_s = c.lease_default_ttl_s.min(c.lease_max_ttl_s);
        c.unseal_source = get("STRONGROOM_UNSEAL_SOURCE").filter(|v| !v.trim().is_empty());
        c.tenant_keys = get("STRONGROOM_TENANT_KEYS").map(|v| v.trim().to_string()).filter(|v| !v.is_empty());
        if let Some(spec) = &c.tenant_keys {
            let known = ["file:", "aws-secretsmanager:", "vault-kv:"].iter().any(|k| spec.starts_with(k) && spec.len() > k.len());
            if !(known || spec == "database") {
                anyhow::bail!(
                    "STRONGROOM_TENANT_KEYS must be file:<dir>, aws-secretsmanager:<prefix>, vault-kv:<mount>/<prefix> or database"
                );
            }
        }
        if let Some(v) = get("STRONGROOM_METRICS_LISTEN").filter(|v| !v.trim().is_empty()) {
            c.metrics_listen = Some(v.trim().parse().map_err(|_| anyhow::anyhow!("STRONGROOM_METRICS_LISTEN must be host:port"))?);
        }
        if let Some(v) = get("STRONGROOM_SHUTDOWN_TIMEOUT_S") {
            let secs: u64 =
                v.trim().parse().map_err(|_| anyhow::anyhow!("STRONGROOM_SHUTDOWN_TIMEOUT_S must be a whole number of seconds"))?;
            c.shutdown_timeout = Duration::from_secs(secs);
        }
        c.vault_id = get("STRONGROOM_VAULT_ID").map(|v| v.trim().to_string()).filter(|v| !v.is_empty());
        if let Some(v) = get("STRONGROOM_CALLBACK_URL").map(|v| v.trim().to_string()).filter(|v| !v.is_empty()) {
            if !(v.starts_with("http://") || v.starts_with("https://")) {
                anyhow::bail!("STRONGROOM_CALLBACK_URL must be an http:// or https:// URL");
            }
            c.callback_url = Some(v);
        }
        if let Some(v) = get("STRONGROOM_OIDC_ALLOW_HTTP") {
            c.oidc_allow_http = match v.trim() {
                "1" | "true" => true,
                "0" | "false" | "" => false,
                _ => anyhow::bail!("STRONGROOM_OIDC_ALLOW_HTTP must be true or false"),
            };
        }
        if let Some(n) = positive("STRONGROOM_CALLBACK_BACKOFF_MS")? {
            c.callback_backoff_ms = n;
        }
        if let Some(v) = get("STRONGROOM_WEBHOOK_SECRET").map(|v| v.trim().to_string()).filter(|v| !v.is_empty()) {
            if v.len() < 32 {
                anyhow::bail!("STRONGROOM_WEBHOOK_SECRET must be at least 32 characters");
            }
            c.webhook_secret = Some(zeroize::Zeroizing::new(v));
        }
        if let Some(v) = get("STRONGROOM_PORTAL_NOTIFY_URL").map(|v| v.trim().to_string()).filter(|v| !v.is_empty()) {
            if !(v.starts_with("http://") || v.starts_with("https://")) {
                anyhow::bail!("STRONGROOM_PORTAL_NOTIFY_URL must be an http:// or https:// URL");
            }
            c.portal_notify_url = Some(v);
        }
        if let Some(n) = positive("STRONGROOM_PORTAL_CODE_TTL_S")? {
            c.portal_code_ttl_s = n.min(86_400) as i64;
        }
        if let Some(n) = positive("STRONGROOM_PORTAL_SESSION_S")? {
            c.portal_session_s = n.min(86_400) as i64;
        }
        if let Some(n) = positive("STRONGROOM_PORTAL_IDLE_S")? {
            c.portal_idle_s = n.min(86_400) as i64;
        }
        if let Some(v) = get("STRONGROOM_PORTAL_COOKIE_SECURE") {
            c.portal_secure_cookies = match v.trim().to_ascii_lowercase().as_str() {
                "true" | "1" | "yes" => true,
                "false" | "0" | "no" => false,
                _ => anyhow::bail!("STRONGROOM_PORTAL_COOKIE_SECURE must be true or false"),
            };
        }
        Ok(c)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_settings_file_sits_between_defaults_and_the_environment() {
        let file = "# strongroom.conf\nSTRONGROOM_LISTEN=0.0.0.0:8080\nexport STRONGROOM_SWEEP_INTERVAL_MS='750'\n\nSTRONGROOM_PORTAL_NOTIFY_URL=\"https://sms.example/hook\"\n";
        let env = |k: &str| (k == "STRONGROOM_SWEEP_INTERVAL_MS").then(|| "900".to_string());
        let c = Config::layered(file, "strongroom.conf", env).unwrap();
        assert_eq!(c.listen, "0.0.0.0:8080".parse().unwrap(), "from the file");
        assert_eq!(c.sweep_interval_ms, 900, "the environment wins");
        assert_eq!(c.portal_notify_url.as_deref(), Some("https://sms.example/hook"), "quotes stripped");
        assert_eq!(c.lockout_s, Config::default().lockout_s, "defaults below both");
    }

    #[test]
    fn the_webhook_secret_is_long_and_never_shown() {
        let short = Config::from_vars(|k| (k == "STRONGROOM_WEBHOOK_SECRET").then(|| "short".to_string()));
        assert!(short.unwrap_err().to_string().contains("at least 32"));
        let secret = "0123456789abcdef0123456789abcdef-s3cr3t";
        let c = Config::from_vars(|k| (k == "STRONGROOM_WEBHOOK_SECRET").then(|| secret.to_string())).unwrap();
        assert_eq!(c.webhook_secret.as_deref().map(String::as_str), Some(secret));
        assert!(!format!("{c:?}").contains("s3cr3t"));
    }

    #[test]
    fn a_settings_file_is_validated_with_its_line_numbers() {
        let err = |text: &str| Config::layered(text, "f.conf", |_| None).unwrap_err().to_string();
        assert!(err("STRONGROOM_LISTN=1.2.3.4:1\n").starts_with("f.conf:1: STRONGROOM_LISTN is not a setting"));
        assert!(err("\nSTRONGROOM_LOG=debug\n").starts_with("f.conf:2: STRONGROOM_LOG is not a setting"));
        assert!(err("STRONGROOM_LISTEN\n").contains("expected NAME=VALUE"));
        assert!(err("STRONGROOM_LOCKOUT_S=1\nSTRONGROOM_LOCKOUT_S=2\n").contains("set twice"));
        assert!(err("STRONGROOM_LOCKOUT_S=soon\n").contains("STRONGROOM_LOCKOUT_S must be a positive integer"));
        assert!(Config::setting_names().contains("DATABASE_URL"));
    }

    #[test]
    fn debug_redacts_the_database_password() {
        let c = Config::from_vars(|k| (k == "DATABASE_URL").then(|| "postgres://app:hunter2@db:5432/vault".to_string())).unwrap();
        let shown = format!("{c:?}");
        assert!(!shown.contains("hunter2"), "{shown}");
        assert!(shown.contains("postgres://app:***@db:5432/vault"));
    }

    #[test]
    fn bad_values_are_refused_at_load() {
        assert!(Config::from_vars(|k| (k == "STRONGROOM_LISTEN").then(|| "nope".to_string())).is_err());
        assert!(Config::from_vars(|k| (k == "STRONGROOM_MAX_BODY_BYTES").then(|| "12".to_string())).is_err());
        assert!(Config::from_vars(|k| (k == "STRONGROOM_METRICS_LISTEN").then(|| "9102".to_string())).is_err());
        assert!(Config::from_vars(|k| (k == "STRONGROOM_SHUTDOWN_TIMEOUT_S").then(|| "-1".to_string())).is_err());
        assert!(Config::from_vars(|k| (k == "STRONGROOM_SWEEP_INTERVAL_MS").then(|| "5".to_string())).is_err());
        let c = Config::from_vars(|k| (k == "STRONGROOM_SWEEP_INTERVAL_MS").then(|| "250".to_string())).unwrap();
        assert_eq!((c.sweep_interval_ms, Config::default().sweep_interval_ms), (250, 5000));
        assert!(Config::from_vars(|k| (k == "STRONGROOM_RESTORE_WINDOW_S").then(|| "0".to_string())).is_err());
        assert!(Config::from_vars(|k| (k == "STRONGROOM_TENANT_KEYS").then(|| "s3:bucket".to_string())).is_err());
        assert!(Config::from_vars(|k| (k == "STRONGROOM_TENANT_KEYS").then(|| "file:".to_string())).is_err());
        let c = Config::from_vars(|k| (k == "STRONGROOM_TENANT_KEYS").then(|| " vault-kv:secret/strongroom/kek- ".to_string())).unwrap();
        assert_eq!(c.tenant_keys.as_deref(), Some("vault-kv:secret/strongroom/kek-"));
        assert_eq!(Config::from_vars(|_| None).unwrap().tenant_keys, None);
        let c = Config::from_vars(|k| (k == "STRONGROOM_RESTORE_WINDOW_S").then(|| "60".to_string())).unwrap();
        assert_eq!((c.restore_window_s, Config::default().restore_window_s), (60, 30 * 86_400));
    }

    #[test]
    fn operations_settings_load() {
        let c = Config::from_vars(|k| match k {
            "STRONGROOM_METRICS_LISTEN" => Some("0.0.0.0:9102".into()),
            "STRONGROOM_SHUTDOWN_TIMEOUT_S" => Some("5".into()),
            "STRONGROOM_VAULT_ID" => Some(" 7d3c ".into()),
            _ => None,
        })
        .unwrap();
        assert_eq!(c.metrics_listen, Some("0.0.0.0:9102".parse().unwrap()));
        assert_eq!(c.shutdown_timeout, Duration::from_secs(5));
        assert_eq!(c.vault_id.as_deref(), Some("7d3c"));
        let d = Config::from_vars(|_| None).unwrap();
        assert_eq!((d.metrics_listen, d.shutdown_timeout, d.vault_id), (None, Duration::from_secs(30), None));
    }
}
