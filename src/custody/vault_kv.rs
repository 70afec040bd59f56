//! HashiCorp Vault KV v2 as a wrapping-key source (field `wrapping_key`), via vaultrs. Token auth
//! (`VAULT_TOKEN`) or Kubernetes auth (service-account JWT exchanged at login). The connection
//! ([`VaultConn`]) is shared with the tenant KEK store (`tenant_kek`).

use std::collections::HashMap;

use vaultrs::client::{Client, VaultClient, VaultClientSettingsBuilder};
use zeroize::Zeroizing;

use super::{hex_key, parse_hex_key, SourceError};
use crate::keys::envelope::Key;

const FIELD: &str = "wrapping_key";
const DEFAULT_JWT_PATH: &str = "/var/run/secrets/kubernetes.io/serviceaccount/token";

enum Auth {
    Token(Zeroizing<String>),
    Kubernetes { mount: String, role: String, jwt_path: String },
}

/// Where Vault is and how to log in to it: `VAULT_ADDR`, and `VAULT_TOKEN` or Kubernetes auth
/// (`STRONGROOM_VAULT_K8S_ROLE`, optional `STRONGROOM_VAULT_K8S_MOUNT`,
/// `STRONGROOM_VAULT_K8S_JWT_PATH`). Shared by the wrapping-key source and the tenant KEK store.
pub struct VaultConn {
    address: String,
    auth: Auth,
}

pub struct KvSecret {
    conn: VaultConn,
    mount: String,
    path: String,
}

/// Maps a vaultrs error: 404 is [`SourceError::Missing`], anything else unreachable (with the
/// HTTP status when Vault answered). Never the response body.
pub(super) fn unreachable(e: vaultrs::error::ClientError) -> SourceError {
    match e {
        vaultrs::error::ClientError::APIError { code: 404, .. } => SourceError::Missing("no such KV secret".into()),
        vaultrs::error::ClientError::APIError { code, .. } => SourceError::Unreachable(format!("Vault answered HTTP {code}")),
        vaultrs::error::ClientError::RestClientError { source: rustify::errors::ClientError::ServerResponseError { code, .. } } => {
            SourceError::Unreachable(format!("Vault answered HTTP {code}"))
        }
        _ => SourceError::Unreachable("could not reach Vault".into()),
    }
}

/// Splits `<mount>/<rest>`; both parts must be non-empty.
pub(super) fn split_location(location: &str) -> Option<(&str, &str)> {
    location.split_once('/').filter(|(m, p)| !m.is_empty() && !p.is_empty())
}

impl VaultConn {
    pub fn from_env() -> Result<VaultConn, SourceError> {
        let address = std::env::var("VAULT_ADDR").map_err(|_| SourceError::Config("VAULT_ADDR is not set".into()))?;
        let auth = match (std::env::var("STRONGROOM_VAULT_K8S_ROLE"), std::env::var("VAULT_TOKEN")) {
            (Ok(role), _) if !role.is_empty() => Auth::Kubernetes {
                mount: std::env::var("STRONGROOM_VAULT_K8S_MOUNT").unwrap_or_else(|_| "kubernetes".into()),
                role,
                jwt_path: std::env::var("STRONGROOM_VAULT_K8S_JWT_PATH").unwrap_or_else(|_| DEFAULT_JWT_PATH.into()),
            },
            (_, Ok(token)) if !token.is_empty() => Auth::Token(Zeroizing::new(token)),
            _ => return Err(SourceError::Config("set VAULT_TOKEN or STRONGROOM_VAULT_K8S_ROLE".into())),
        };
        Ok(VaultConn { address, auth })
    }

    /// A logged-in client (a Kubernetes login happens on every call: the token is not kept).
    pub async fn client(&self) -> Result<VaultClient, SourceError> {
        super::install_crypto_provider();
        let token = match &self.auth {
            Auth::Token(t) => t.clone(),
            Auth::Kubernetes { .. } => Zeroizing::new(String::new()),
        };
        let settings = VaultClientSettingsBuilder::default()
            .address(&self.address)
            .token(token.as_str())
            .timeout(Some(std::time::Duration::from_secs(10)))
            .build()
            .map_err(|e| SourceError::Config(e.to_string()))?;
        let mut client = VaultClient::new(settings).map_err(|e| SourceError::Config(e.to_string()))?;
        if let Auth::Kubernetes { mount, role, jwt_path } = &self.auth {
            let jwt = Zeroizing::new(
                tokio::fs::read_to_string(jwt_path).await.map_err(|e| SourceError::Config(format!("{jwt_path}: {}", e.kind())))?,
            );
            let info = vaultrs::auth::kubernetes::login(&client, mount, role, jwt.trim()).await.map_err(unreachable)?;
            client.set_token(&info.client_token);
        }
        Ok(client)
    }
}

impl KvSecret {
    /// `location` is `<mount>/<path>`; the rest comes from the environment.
    pub fn from_env(location: &str) -> Result<KvSecret, SourceError> {
        let (mount, path) = split_location(location).ok_or_else(|| SourceError::Config("vault-kv needs MOUNT/PATH".into()))?;
        Ok(KvSecret { conn: VaultConn::from_env()?, mount: mount.to_string(), path: path.to_string() })
    }

    pub fn location(&self) -> String {
        format!("{}/{}", self.mount, self.path)
    }

    async fn client(&self) -> Result<VaultClient, SourceError> {
        self.conn.client().await
    }

    pub async fn fetch(&self) -> Result<Key, SourceError> {
        let client = self.client().await?;
        let data: HashMap<String, String> = vaultrs::kv2::read(&client, &self.mount, &self.path).await.map_err(unreachable)?;
        let text = Zeroizing::new(data.get(FIELD).cloned().ok_or_else(|| SourceError::Missing(format!("secret has no `{FIELD}` field")))?);
        parse_hex_key(&text)
    }

    pub async fn store(&self, key: &Key) -> Result<(), SourceError> {
        let client = self.client().await?;
        let text = hex_key(key);
        let data = HashMap::from([(FIELD, text.as_str())]);
        vaultrs::kv2::set(&client, &self.mount, &self.path, &data).await.map_err(unreachable)?;
        Ok(())
    }
}
