//! Seal state of this instance: `uninitialized -> sealed -> unsealed` (and back to sealed on
//! `seal` or restart). Invariant: the keyring exists only in the `Unsealed` state; sealing drops
//! it, and partial shares live only inside the `Sealed` state's progress.

use std::sync::{Arc, Mutex};

use zeroize::Zeroizing;

use crate::error::{Error, Result};
use crate::keys::envelope::Key;
use crate::keys::keyring::{self, Keyring};
use crate::keys::unseal::{split_unseal_key, UnsealError, UnsealProgress};
use crate::store::meta::VaultMeta;
use crate::store::Db;

/// Purpose label under which the master key is wrapped by the unseal key.
const UNSEAL_PURPOSE: &str = "unseal";
pub const DEFAULT_TENANT_ID: i64 = 1;

enum State {
    Uninitialized,
    Sealed { meta: VaultMeta, progress: UnsealProgress },
    Unsealed { meta: VaultMeta, keys: Arc<Keyring> },
}

/// What `init` hands out, once.
pub struct InitOutput {
    pub vault_id: String,
    pub root_token: Zeroizing<String>,
    pub shares: Vec<Zeroizing<String>>,
    pub threshold: usize,
}

/// Seal status as reported by `/v1/sys/seal-status` and `/v1/sys/unseal`.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Status {
    pub initialized: bool,
    pub sealed: bool,
    pub t: usize,
    pub n: usize,
    pub progress: usize,
    pub nonce: String,
}

pub struct Vault {
    db: Db,
    state: Mutex<State>,
}

impl Vault {
    /// Loads the vault identity; an initialized vault always starts sealed.
    pub async fn load(db: Db) -> Result<Vault> {
        let state = match db.vault_meta().await? {
            Some(meta) => sealed(meta),
            None => State::Uninitialized,
        };
        Ok(Vault { db, state: Mutex::new(state) })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The keyring, or `Sealed` (503) when this instance holds no keys.
    pub fn keyring(&self) -> Result<Arc<Keyring>> {
        match &*self.lock() {
            State::Unsealed { keys, .. } => Ok(keys.clone()),
            _ => Err(Error::Sealed),
        }
    }

    pub fn status(&self) -> Status {
        match &*self.lock() {
            State::Uninitialized => Status { initialized: false, sealed: true, t: 0, n: 0, progress: 0, nonce: String::new() },
            State::Sealed { meta, progress } => Status {
                initialized: true,
                sealed: true,
                t: meta.threshold as usize,
                n: meta.share_count as usize,
                progress: progress.progress(),
                nonce: progress.nonce().to_string(),
            },
            State::Unsealed { meta, .. } => Status {
                initialized: true,
                sealed: false,
                t: meta.threshold as usize,
                n: meta.share_count as usize,
                progress: 0,
                nonce: String::new(),
            },
        }
    }

    /// Another instance may have initialized the shared database since this one started.
    async fn refresh_if_uninitialized(&self) -> Result<()> {
        if !matches!(*self.lock(), State::Uninitialized) {
            return Ok(());
        }
        if let Some(meta) = self.db.vault_meta().await? {
            let mut st = self.lock();
            if matches!(*st, State::Uninitialized) {
                *st = sealed(meta);
            }
        }
        Ok(())
    }

    pub async fn current_status(&self) -> Result<Status> {
        self.refresh_if_uninitialized().await?;
        Ok(self.status())
    }

    /// Creates the master key, its Shamir-split unseal key, the default tenant's data key and the
    /// root credential. Only once per database; the instance stays sealed afterwards.
    pub async fn init(&self, root_token: Option<&str>, threshold: usize, count: usize) -> Result<InitOutput> {
        self.refresh_if_uninitialized().await?;
        if !matches!(*self.lock(), State::Uninitialized) {
            return Err(Error::Conflict("vault is already initialized".into()));
        }
        if threshold < 2 || count < threshold || count > 255 {
            return Err(Error::bad("need 2 <= threshold <= shares <= 255"));
        }
        let vault_id = uuid::Uuid::new_v4().to_string();
        let master = Key::random();
        let (unseal_key, shares) = split_unseal_key(&vault_id, threshold, count).map_err(|e| Error::Internal(e.into()))?;
        let meta = VaultMeta {
            vault_id: vault_id.clone(),
            threshold: threshold as i32,
            share_count: count as i32,
            mk_by_uk: keyring::wrap_master(&unseal_key, &vault_id, UNSEAL_PURPOSE, &master),
        };
        let ring = Keyring::new(master);
        let root_token = Zeroizing::new(root_token.map(str::to_string).unwrap_or_else(|| uuid::Uuid::new_v4().to_string()));
        let dek = ring.wrap_tenant_key(DEFAULT_TENANT_ID, 1, &Key::random());
        if !self.db.initialize(&meta, &dek, &ring.credential_hash(&root_token)).await? {
            return Err(Error::Conflict("vault is already initialized".into()));
        }
        *self.lock() = sealed(meta);
        Ok(InitOutput { vault_id, root_token, shares, threshold })
    }

    /// Takes one key share. A share of another vault or a malformed one is refused without
    /// losing progress; a combination that does not open the master key resets progress.
    pub async fn unseal(&self, share: &str) -> Result<Status> {
        self.refresh_if_uninitialized().await?;
        let mut st = self.lock();
        let (meta, progress) = match &mut *st {
            State::Uninitialized => return Err(Error::bad("vault is not initialized")),
            State::Unsealed { .. } => {
                drop(st);
                return Ok(self.status());
            }
            State::Sealed { meta, progress } => (meta, progress),
        };
        let unseal_key = match progress.submit(share) {
            Ok(None) => {
                drop(st);
                return Ok(self.status());
            }
            Ok(Some(k)) => k,
            Err(e) => return Err(unseal_error(e)),
        };
        match keyring::unwrap_master(&unseal_key, &meta.vault_id, UNSEAL_PURPOSE, &meta.mk_by_uk) {
            Ok(master) => {
                let meta = meta.clone();
                *st = State::Unsealed { meta, keys: Arc::new(Keyring::new(master)) };
                tracing::info!("vault unsealed");
            }
            Err(_) => {
                tracing::warn!("unseal attempt failed: shares do not combine to this vault's key");
                return Err(unseal_error(UnsealError::WrongCombination));
            }
        }
        drop(st);
        Ok(self.status())
    }

    /// Drops the current unseal progress.
    pub fn reset_progress(&self) -> Status {
        if let State::Sealed { progress, .. } = &mut *self.lock() {
            progress.reset();
        }
        self.status()
    }

    /// Seals this instance: the keyring is dropped (and wiped once in-flight requests finish).
    pub fn seal(&self) {
        let mut st = self.lock();
        let meta = match &*st {
            State::Unsealed { meta, .. } => meta.clone(),
            _ => return,
        };
        *st = sealed(meta);
        tracing::info!("vault sealed");
    }

    pub fn db(&self) -> &Db {
        &self.db
    }
}

fn sealed(meta: VaultMeta) -> State {
    let progress = UnsealProgress::new(&meta.vault_id, meta.threshold as usize);
    State::Sealed { meta, progress }
}

fn unseal_error(e: UnsealError) -> Error {
    Error::BadRequest(e.to_string())
}
