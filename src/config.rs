//! Configuration: defaults, then `STRONGROOM_*` environment variables (and `DATABASE_URL`),
//! validated at load. `Debug` never shows the database password.

use std::net::SocketAddr;

#[derive(Clone)]
pub struct Config {
    pub listen: SocketAddr,
    pub database_url: Option<String>,
    pub db_max_connections: u32,
    pub max_body_bytes: usize,
    /// Auto-unseal source spec (`STRONGROOM_UNSEAL_SOURCE`, see `custody`).
    pub unseal_source: Option<String>,
    /// How often each instance looks for keys to re-wrap after a rotation.
    pub rewrap_interval_ms: u64,
}

impl Default for Config {
    fn default() -> Config {
        Config {
            listen: SocketAddr::from(([127, 0, 0, 1], 3000)),
            database_url: None,
            db_max_connections: 16,
            max_body_bytes: 8 * 1024 * 1024,
            unseal_source: None,
            rewrap_interval_ms: 2000,
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

impl Config {
    pub fn from_env() -> anyhow::Result<Config> {
        Self::from_vars(|k| std::env::var(k).ok())
    }

    pub fn from_vars(get: impl Fn(&str) -> Option<String>) -> anyhow::Result<Config> {
        let mut c = Config::default();
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
            c.rewrap_interval_ms = v.parse().ok().filter(|n| *n >= 10).ok_or_else(|| anyhow::anyhow!("STRONGROOM_REWRAP_INTERVAL_MS must be an integer >= 10"))?;
        }
        c.unseal_source = get("STRONGROOM_UNSEAL_SOURCE").filter(|v| !v.trim().is_empty());
        Ok(c)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
    }
}
