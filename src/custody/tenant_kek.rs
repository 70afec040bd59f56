//! Tenant key-encryption keys (KEKs) held outside the database, so that deleting a tenant can
//! destroy its key material for good, in backups taken before too (crypto-shredding).
//!
//! Each tenant created while a store is configured gets a random 256-bit KEK, named by a random
//! UUID (`tenants.kek_id`); the keyring derives the tenant's wrapping, index and digest keys from
//! master key ‖ KEK (`keys::keyring`). The store is `STRONGROOM_TENANT_KEYS`:
//! - `file:<dir>`: one file `<dir>/<kek-id>.key` per KEK (hex, mode 0600; the directory is
//!   created 0700). Development and demo only: the keys sit on the same machine.
//! - `aws-secretsmanager:<name-prefix>`: one secret `<prefix><kek-id>` per KEK (SecretString is
//!   the hex key); destroyed with `ForceDeleteWithoutRecovery`. Region, credentials and
//!   `STRONGROOM_AWS_ENDPOINT_URL` as for the unseal source; new secrets are encrypted under
//!   the KMS key `STRONGROOM_TENANT_KEYS_KMS_KEY_ID` when set (else the account's default).
//! - `vault-kv:<mount>/<prefix>`: one KV v2 secret `<prefix><kek-id>` per KEK (field `kek`);
//!   destroyed by deleting its metadata, which removes every version. Address and auth as for
//!   the unseal source.
//! - unset or `database`: no external KEK; tenants keep database-only custody and deleting one
//!   cannot make backups taken earlier unreadable.
//!
//! Invariants: a KEK is only ever held in a [`Key`] (and its hex form in [`Zeroizing`] memory);
//! errors and descriptions name the store, never key material, and not KEK ids either; `get`
//! tells a KEK that is absent (`Ok(None)`: destroyed, the tenant is gone) from a store that
//! cannot be asked (`Err`); `destroy` of an absent KEK succeeds, so a deletion can be retried.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use aws_sdk_secretsmanager::error::SdkError;
use zeroize::Zeroizing;

use super::vault_kv::VaultConn;
use super::{hex_key, parse_hex_key, SourceError};
use crate::error::Error;
use crate::keys::envelope::Key;
use crate::store::TenantTx;

/// Field of a Vault KV secret holding a tenant KEK.
const VAULT_FIELD: &str = "kek";

#[derive(Debug, thiserror::Error)]
pub enum KekError {
    #[error("tenant key store is misconfigured: {0}")]
    Config(String),
    #[error("tenant key store unreachable: {0}")]
    Unreachable(String),
    #[error("tenant key store holds something that is not a 32-byte hex key")]
    Malformed,
}

impl From<SourceError> for KekError {
    fn from(e: SourceError) -> KekError {
        match e {
            SourceError::Config(m) => KekError::Config(m),
            SourceError::Malformed => KekError::Malformed,
            SourceError::Unreachable(m) | SourceError::Missing(m) => KekError::Unreachable(m),
            SourceError::ReadOnly => KekError::Config("read-only".into()),
        }
    }
}

pub enum TenantKekStore {
    /// No external KEKs: database-only custody.
    Database,
    File(PathBuf),
    Aws {
        client: aws_sdk_secretsmanager::Client,
        prefix: String,
        kms_key_id: Option<String>,
    },
    VaultKv {
        conn: VaultConn,
        mount: String,
        prefix: String,
    },
}

/// A new, random KEK id (a UUID; it names the KEK in the store and carries no secret).
pub fn new_kek_id() -> String {
    uuid::Uuid::new_v4().to_string()
}

/// A KEK id read from the database, checked to be a UUID before it names a file or a secret.
fn checked(kek_id: &str) -> Result<String, KekError> {
    uuid::Uuid::parse_str(kek_id)
        .map(|u| u.hyphenated().to_string())
        .map_err(|_| KekError::Config("malformed KEK id in the tenant row".into()))
}

impl TenantKekStore {
    /// Builds the store from `STRONGROOM_TENANT_KEYS` (see the module doc); `None` or
    /// `database` is database-only custody. A file store's directory is created here (0700).
    pub async fn from_spec(spec: Option<&str>) -> Result<TenantKekStore, KekError> {
        let spec = spec.map(str::trim).filter(|s| !s.is_empty());
        let Some(spec) = spec.filter(|s| *s != "database") else {
            return Ok(TenantKekStore::Database);
        };
        let (kind, rest) = spec.split_once(':').ok_or_else(|| KekError::Config("expected KIND:LOCATION or `database`".into()))?;
        if rest.trim().is_empty() {
            return Err(KekError::Config("empty location".into()));
        }
        match kind {
            "file" => {
                let dir = PathBuf::from(rest);
                create_private_dir(&dir).map_err(|e| KekError::Config(format!("{}: {}", dir.display(), e.kind())))?;
                Ok(TenantKekStore::File(dir))
            }
            "aws-secretsmanager" => Ok(TenantKekStore::Aws {
                client: super::aws::client().await.map_err(KekError::Config)?,
                prefix: rest.to_string(),
                kms_key_id: std::env::var("STRONGROOM_TENANT_KEYS_KMS_KEY_ID").ok().map(|k| k.trim().to_string()).filter(|k| !k.is_empty()),
            }),
            "vault-kv" => {
                let (mount, prefix) =
                    super::vault_kv::split_location(rest).ok_or_else(|| KekError::Config("vault-kv needs MOUNT/PREFIX".into()))?;
                Ok(TenantKekStore::VaultKv { conn: VaultConn::from_env()?, mount: mount.to_string(), prefix: prefix.to_string() })
            }
            other => Err(KekError::Config(format!("unknown tenant key store kind `{other}`"))),
        }
    }

    /// Whether tenants get a KEK outside the database (and can be crypto-shredded).
    pub fn is_external(&self) -> bool {
        !matches!(self, TenantKekStore::Database)
    }

    /// Kind and location, for logs. Never key material or KEK ids.
    pub fn describe(&self) -> String {
        match self {
            TenantKekStore::Database => "database".into(),
            TenantKekStore::File(d) => format!("file:{}", d.display()),
            TenantKekStore::Aws { prefix, .. } => format!("aws-secretsmanager:{prefix}"),
            TenantKekStore::VaultKv { mount, prefix, .. } => format!("vault-kv:{mount}/{prefix}"),
        }
    }

    /// The KEK named `kek_id`; `Ok(None)` when the store answers that it does not hold it
    /// (destroyed). A database-only store holds no KEKs and says so as an error: a tenant with
    /// a KEK cannot be served without its store.
    pub async fn get(&self, kek_id: &str) -> Result<Option<Key>, KekError> {
        let id = checked(kek_id)?;
        match self {
            TenantKekStore::Database => Err(no_store()),
            TenantKekStore::File(dir) => {
                let path = file_path(dir, &id);
                match tokio::fs::read_to_string(&path).await {
                    Ok(text) => Ok(Some(parse_hex_key(&Zeroizing::new(text))?)),
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
                    Err(e) => Err(KekError::Unreachable(format!("{}: {}", dir.display(), e.kind()))),
                }
            }
            TenantKekStore::Aws { client, prefix, .. } => {
                match client.get_secret_value().secret_id(format!("{prefix}{id}")).send().await {
                    Ok(out) => {
                        let text = Zeroizing::new(out.secret_string().ok_or(KekError::Malformed)?.to_string());
                        Ok(Some(parse_hex_key(&text)?))
                    }
                    Err(SdkError::ServiceError(s)) if s.err().is_resource_not_found_exception() => Ok(None),
                    // A secret force-deleted a moment ago may still answer "marked for deletion".
                    Err(SdkError::ServiceError(s))
                        if s.err().is_invalid_request_exception()
                            && s.err().meta().message().is_some_and(|m| m.to_ascii_lowercase().contains("delet")) =>
                    {
                        Ok(None)
                    }
                    Err(e) => Err(KekError::Unreachable(super::aws::describe_error(&e))),
                }
            }
            TenantKekStore::VaultKv { conn, mount, prefix } => {
                let client = conn.client().await?;
                let read: Result<HashMap<String, Zeroizing<String>>, _> =
                    vaultrs::kv2::read(&client, mount, &format!("{prefix}{id}")).await;
                match read {
                    Ok(data) => Ok(Some(parse_hex_key(data.get(VAULT_FIELD).ok_or(KekError::Malformed)?)?)),
                    Err(vaultrs::error::ClientError::APIError { code: 404, .. }) => Ok(None),
                    Err(e) => Err(super::vault_kv::unreachable(e).into()),
                }
            }
        }
    }

    /// Stores a new KEK under `kek_id`. Only returns once the store holds it (for a file: synced
    /// to disk), because the tenant row naming it is committed right after.
    pub async fn put(&self, kek_id: &str, kek: &Key) -> Result<(), KekError> {
        let id = checked(kek_id)?;
        let text = hex_key(kek);
        match self {
            TenantKekStore::Database => Err(no_store()),
            TenantKekStore::File(dir) => {
                let dir = dir.clone();
                tokio::task::spawn_blocking(move || write_kek_file(&dir, &id, &text))
                    .await
                    .map_err(|_| KekError::Unreachable("file store task failed".into()))?
            }
            TenantKekStore::Aws { client, prefix, kms_key_id } => {
                client
                    .create_secret()
                    .name(format!("{prefix}{id}"))
                    .set_kms_key_id(kms_key_id.clone())
                    .secret_string(text.as_str())
                    .send()
                    .await
                    .map_err(|e| KekError::Unreachable(super::aws::describe_error(&e)))?;
                Ok(())
            }
            TenantKekStore::VaultKv { conn, mount, prefix } => {
                let client = conn.client().await?;
                let data = HashMap::from([(VAULT_FIELD, text.as_str())]);
                vaultrs::kv2::set(&client, mount, &format!("{prefix}{id}"), &data).await.map_err(super::vault_kv::unreachable)?;
                Ok(())
            }
        }
    }

    /// Destroys the KEK named `kek_id` for good (every version of it). Absent already: `Ok`.
    pub async fn destroy(&self, kek_id: &str) -> Result<(), KekError> {
        let id = checked(kek_id)?;
        match self {
            TenantKekStore::Database => Err(no_store()),
            TenantKekStore::File(dir) => {
                let dir = dir.clone();
                tokio::task::spawn_blocking(move || destroy_kek_file(&dir, &id))
                    .await
                    .map_err(|_| KekError::Unreachable("file store task failed".into()))?
            }
            TenantKekStore::Aws { client, prefix, .. } => {
                match client.delete_secret().secret_id(format!("{prefix}{id}")).force_delete_without_recovery(true).send().await {
                    Ok(_) => Ok(()),
                    Err(SdkError::ServiceError(s)) if s.err().is_resource_not_found_exception() => Ok(()),
                    Err(e) => Err(KekError::Unreachable(super::aws::describe_error(&e))),
                }
            }
            TenantKekStore::VaultKv { conn, mount, prefix } => {
                let client = conn.client().await?;
                match vaultrs::kv2::delete_metadata(&client, mount, &format!("{prefix}{id}")).await {
                    Ok(()) | Err(vaultrs::error::ClientError::APIError { code: 404, .. }) => Ok(()),
                    Err(e) => Err(super::vault_kv::unreachable(e).into()),
                }
            }
        }
    }
}

/// Mints a KEK for a new tenant and puts it in `store`; `None` for database-only custody. The
/// caller commits the tenant row naming it afterwards. 503 when the store cannot take it.
pub async fn mint(store: &TenantKekStore) -> Result<Option<(String, Key)>, Error> {
    if !store.is_external() {
        return Ok(None);
    }
    let (id, kek) = (new_kek_id(), Key::random());
    if let Err(e) = store.put(&id, &kek).await {
        tracing::warn!(store = %store.describe(), error = %e, "could not store a new tenant KEK");
        return Err(Error::Unavailable("tenant key store unavailable; nothing was created".into()));
    }
    Ok(Some((id, kek)))
}

/// Best effort: destroys a KEK minted for a tenant whose row was never written (so that it does
/// not linger). A failure is only logged: an orphaned KEK names no tenant and opens nothing.
pub async fn discard(store: &TenantKekStore, kek_id: &str) {
    if let Err(e) = store.destroy(kek_id).await {
        tracing::warn!(store = %store.describe(), error = %e, "could not remove the KEK of a tenant that was not created");
    }
}

/// The KEK of the transaction's tenant (`None`: database-only custody), for loading its keys.
/// 503 "tenant keys unavailable" when the store cannot be asked; 404 "tenant has been deleted"
/// when the store no longer holds it (the tenant was shredded; this database is older).
pub async fn for_tenant(store: &TenantKekStore, tx: &TenantTx) -> Result<Option<Key>, Error> {
    let Some(kek_id) = tx.kek_id() else { return Ok(None) };
    match store.get(kek_id).await {
        Ok(Some(kek)) => Ok(Some(kek)),
        Ok(None) => Err(Error::TenantDeleted),
        Err(e) => {
            tracing::warn!(tenant = tx.tenant_id(), store = %store.describe(), error = %e, "tenant KEK unavailable");
            Err(Error::Unavailable("tenant keys unavailable".into()))
        }
    }
}

fn no_store() -> KekError {
    KekError::Config("this tenant's key lives in a tenant key store, but STRONGROOM_TENANT_KEYS is not set".into())
}

fn file_path(dir: &Path, id: &str) -> PathBuf {
    dir.join(format!("{id}.key"))
}

fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
    std::fs::DirBuilder::new().recursive(true).mode(0o700).create(dir)?;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
}

fn io_error(dir: &Path, e: std::io::Error) -> KekError {
    KekError::Unreachable(format!("{}: {}", dir.display(), e.kind()))
}

/// Writes `<id>.key` (0600) through a temporary file, syncing the file and the directory, so
/// the KEK is on disk before the tenant row naming it commits.
fn write_kek_file(dir: &Path, id: &str, text: &str) -> Result<(), KekError> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let tmp = dir.join(format!("{id}.tmp"));
    let write = || -> std::io::Result<()> {
        let mut f = std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(&tmp)?;
        f.write_all(text.as_bytes())?;
        f.sync_all()?;
        std::fs::rename(&tmp, file_path(dir, id))?;
        std::fs::File::open(dir)?.sync_all()
    };
    write().map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        io_error(dir, e)
    })
}

/// Overwrites `<id>.key` with zeros, syncs, unlinks it and syncs the directory. The overwrite is
/// best effort (journaling and copy-on-write filesystems and SSDs may keep old blocks): the file
/// store is for development.
fn destroy_kek_file(dir: &Path, id: &str) -> Result<(), KekError> {
    use std::io::Write;
    let path = file_path(dir, id);
    let len = match std::fs::metadata(&path) {
        Ok(m) => m.len() as usize,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(io_error(dir, e)),
    };
    let run = || -> std::io::Result<()> {
        let mut f = std::fs::OpenOptions::new().write(true).open(&path)?;
        f.write_all(&vec![0u8; len])?;
        f.sync_all()?;
        drop(f);
        std::fs::remove_file(&path)?;
        std::fs::File::open(dir)?.sync_all()
    };
    match run() {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        other => other.map_err(|e| io_error(dir, e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn specs_parse_and_describe_without_secrets() {
        assert!(matches!(TenantKekStore::from_spec(None).await, Ok(TenantKekStore::Database)));
        assert!(matches!(TenantKekStore::from_spec(Some(" database ")).await, Ok(TenantKekStore::Database)));
        assert!(matches!(TenantKekStore::from_spec(Some("file:")).await, Err(KekError::Config(_))));
        assert!(matches!(TenantKekStore::from_spec(Some("carrier-pigeon:x")).await, Err(KekError::Config(_))));
        assert!(matches!(TenantKekStore::from_spec(Some("nope")).await, Err(KekError::Config(_))));
        assert!(!TenantKekStore::Database.is_external());
    }

    #[tokio::test]
    async fn a_file_store_puts_gets_and_destroys_with_private_modes() {
        use std::os::unix::fs::PermissionsExt;
        let dir = std::env::temp_dir().join(format!("sr-kek-{}", uuid::Uuid::new_v4().simple())).join("keks");
        let store = TenantKekStore::from_spec(Some(&format!("file:{}", dir.display()))).await.unwrap();
        assert!(store.is_external());
        assert_eq!(std::fs::metadata(&dir).unwrap().permissions().mode() & 0o777, 0o700);
        let (id, kek) = (new_kek_id(), Key::random());
        assert!(store.get(&id).await.unwrap().is_none());
        store.put(&id, &kek).await.unwrap();
        let file = dir.join(format!("{id}.key"));
        assert_eq!(std::fs::metadata(&file).unwrap().permissions().mode() & 0o777, 0o600);
        assert_eq!(store.get(&id).await.unwrap().unwrap().expose(), kek.expose());
        store.destroy(&id).await.unwrap();
        assert!(!file.exists());
        assert!(store.get(&id).await.unwrap().is_none());
        store.destroy(&id).await.unwrap();
        // Ids that are not UUIDs never name a file.
        assert!(matches!(store.get("../../etc/passwd").await, Err(KekError::Config(_))));
        std::fs::remove_dir_all(dir.parent().unwrap()).unwrap();
    }

    #[tokio::test]
    async fn a_database_only_store_holds_no_keks() {
        let id = new_kek_id();
        assert!(matches!(TenantKekStore::Database.get(&id).await, Err(KekError::Config(_))));
        assert!(matches!(TenantKekStore::Database.destroy(&id).await, Err(KekError::Config(_))));
    }
}
