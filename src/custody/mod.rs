//! Key custody outside the database: where the operational wrapping key lives for auto-unseal,
//! and (in [`tenant_kek`]) where tenants' key-encryption keys live for crypto-shredding.
//! Invariants: the wrapping key is only ever held in a [`Key`] (zeroizing, no Debug output),
//! sources are described without key material, and a source that fails leaves the instance
//! sealed with a reason, never half-unsealed.
//!
//! Sources (`STRONGROOM_UNSEAL_SOURCE`):
//! - `file:/path`: hex key in a file (development; written on rotation).
//! - `env:NAME`: hex key in an environment variable (development; read-only).
//! - `aws-secretsmanager:<secret id or ARN>`: SecretString holds the hex key. Region and
//!   credentials from the usual AWS chain (env, IRSA web identity, instance role);
//!   `STRONGROOM_AWS_ENDPOINT_URL` overrides the endpoint.
//! - `vault-kv:<mount>/<path>`: HashiCorp Vault KV v2, field `wrapping_key`. `VAULT_ADDR`, and
//!   `VAULT_TOKEN` or Kubernetes auth (`STRONGROOM_VAULT_K8S_ROLE`, optional
//!   `STRONGROOM_VAULT_K8S_MOUNT`, `STRONGROOM_VAULT_K8S_JWT_PATH`).

pub mod aws;
pub mod rotation;
pub mod tenant_kek;
pub mod vault_kv;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use zeroize::Zeroizing;

use crate::keys::envelope::Key;
use crate::vault::Vault;

#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    #[error("unseal source is misconfigured: {0}")]
    Config(String),
    #[error("unseal source unreachable: {0}")]
    Unreachable(String),
    #[error("unseal source holds no wrapping key: {0}")]
    Missing(String),
    #[error("unseal source holds something that is not a 32-byte hex key")]
    Malformed,
    #[error("unseal source is read-only; install the new wrapping key there yourself")]
    ReadOnly,
}

pub enum Source {
    File(PathBuf),
    Env(String),
    Aws(aws::AwsSecret),
    VaultKv(vault_kv::KvSecret),
}

/// Parses a 64-hex-digit key; whitespace around it is ignored.
pub fn parse_hex_key(text: &str) -> Result<Key, SourceError> {
    let raw = Zeroizing::new(hex::decode(text.trim()).map_err(|_| SourceError::Malformed)?);
    Key::from_slice(&raw).map_err(|_| SourceError::Malformed)
}

pub fn hex_key(key: &Key) -> Zeroizing<String> {
    Zeroizing::new(hex::encode(key.expose()))
}

impl Source {
    /// Builds a source from its spec (see the module doc).
    pub async fn from_spec(spec: &str) -> Result<Source, SourceError> {
        let (kind, rest) = spec.split_once(':').ok_or_else(|| SourceError::Config("expected KIND:LOCATION".into()))?;
        if rest.trim().is_empty() {
            return Err(SourceError::Config("empty location".into()));
        }
        match kind {
            "file" => Ok(Source::File(PathBuf::from(rest))),
            "env" => Ok(Source::Env(rest.to_string())),
            "aws-secretsmanager" => Ok(Source::Aws(aws::AwsSecret::new(rest).await?)),
            "vault-kv" => Ok(Source::VaultKv(vault_kv::KvSecret::from_env(rest)?)),
            other => Err(SourceError::Config(format!("unknown source kind `{other}`"))),
        }
    }

    /// Kind and location, for status and logs. Never key material.
    pub fn describe(&self) -> String {
        match self {
            Source::File(p) => format!("file:{}", p.display()),
            Source::Env(n) => format!("env:{n}"),
            Source::Aws(a) => format!("aws-secretsmanager:{}", a.secret_id()),
            Source::VaultKv(v) => format!("vault-kv:{}", v.location()),
        }
    }

    pub async fn fetch(&self) -> Result<Key, SourceError> {
        match self {
            Source::File(p) => {
                let text = Zeroizing::new(
                    tokio::fs::read_to_string(p).await.map_err(|e| SourceError::Missing(format!("{}: {}", p.display(), e.kind())))?,
                );
                parse_hex_key(&text)
            }
            Source::Env(n) => {
                let text =
                    Zeroizing::new(std::env::var(n).map_err(|_| SourceError::Missing(format!("environment variable {n} is not set")))?);
                parse_hex_key(&text)
            }
            Source::Aws(a) => a.fetch().await,
            Source::VaultKv(v) => v.fetch().await,
        }
    }

    /// Installs a new wrapping key in the source (rotation).
    pub async fn store(&self, key: &Key) -> Result<(), SourceError> {
        match self {
            Source::File(p) => {
                let p = p.clone();
                let text = hex_key(key);
                tokio::task::spawn_blocking(move || {
                    let tmp = p.with_extension("tmp");
                    crate::localpg::write_private_file(&tmp, text.as_bytes()).map_err(|e| SourceError::Unreachable(e.to_string()))?;
                    std::fs::rename(&tmp, &p).map_err(|e| SourceError::Unreachable(e.kind().to_string()))
                })
                .await
                .map_err(|e| SourceError::Unreachable(e.to_string()))?
            }
            Source::Env(_) => Err(SourceError::ReadOnly),
            Source::Aws(a) => a.store(key).await,
            Source::VaultKv(v) => v.store(key).await,
        }
    }
}

/// Keeps trying to unseal `vault` from `source` with exponential backoff (1 s doubling to 60 s)
/// until it is unsealed; records each failure as the seal-status reason.
pub async fn auto_unseal(vault: Arc<Vault>, source: Arc<Source>) {
    let mut delay = Duration::from_secs(1);
    let name = source.describe();
    loop {
        if vault.keyring().is_ok() {
            vault.set_auto_unseal(Some(name.clone()), None);
            return;
        }
        let outcome = match source.fetch().await {
            Ok(key) => vault.unseal_with_wrapping_key(&key).await.map_err(|e| e.public_message()),
            Err(e) => Err(e.to_string()),
        };
        match outcome {
            Ok(()) => {
                vault.set_auto_unseal(Some(name.clone()), None);
                return;
            }
            Err(reason) => {
                tracing::warn!(source = %name, reason = %reason, retry_in_s = delay.as_secs(), "auto-unseal failed; still sealed");
                vault.set_auto_unseal(Some(name.clone()), Some(reason));
            }
        }
        tokio::time::sleep(delay).await;
        delay = (delay * 2).min(Duration::from_secs(60));
    }
}

/// Installs the process-wide TLS crypto provider (ring) used by the HTTP clients. Idempotent.
pub fn install_crypto_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_parse_only_from_64_hex_digits() {
        let k = Key::random();
        assert_eq!(parse_hex_key(&format!(" {}\n", hex_key(&k).as_str())).unwrap().expose(), k.expose());
        assert!(matches!(parse_hex_key("abcd"), Err(SourceError::Malformed)));
        assert!(matches!(parse_hex_key(&"zz".repeat(32)), Err(SourceError::Malformed)));
    }

    #[tokio::test]
    async fn specs_parse_and_describe_without_secrets() {
        assert!(matches!(Source::from_spec("nope").await, Err(SourceError::Config(_))));
        assert!(matches!(Source::from_spec("file:").await, Err(SourceError::Config(_))));
        assert!(matches!(Source::from_spec("ftp:x").await, Err(SourceError::Config(_))));
        assert_eq!(Source::from_spec("env:WK").await.unwrap().describe(), "env:WK");
    }

    #[tokio::test]
    async fn file_sources_round_trip_and_env_sources_are_read_only() {
        let dir = std::env::temp_dir().join(format!("sr-src-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        let src = Source::from_spec(&format!("file:{}", dir.join("wk").display())).await.unwrap();
        assert!(matches!(src.fetch().await, Err(SourceError::Missing(_))));
        let k = Key::random();
        src.store(&k).await.unwrap();
        assert_eq!(src.fetch().await.unwrap().expose(), k.expose());
        let env = Source::from_spec("env:STRONGROOM_TEST_UNSET_VAR").await.unwrap();
        assert!(matches!(env.fetch().await, Err(SourceError::Missing(_))));
        assert!(matches!(env.store(&k).await, Err(SourceError::ReadOnly)));
        std::fs::remove_dir_all(dir).unwrap();
    }
}
