//! Seal state of this instance: `uninitialized -> sealed -> unsealed` (and back to sealed on
//! `seal` or restart). Invariant: the keyring exists only in the `Unsealed` state; sealing drops
//! it, and partial shares live only inside the `Sealed` state's progress.
//!
//! The master key comes back either from a quorum of Shamir shares (the ceremony, always
//! possible) or from an operational wrapping key held in a secret manager (auto-unseal).

use std::sync::{Arc, Mutex};

use zeroize::Zeroizing;

use crate::custody::tenant_kek::TenantKekStore;
use crate::error::{Error, Result};
use crate::keys::envelope::Key;
use crate::keys::keyring::{self, Keyring};
use crate::keys::shamir;
use crate::keys::unseal::{decode_share, split_unseal_key, vault_fingerprint, UnsealError, UnsealProgress};
use crate::store::meta::VaultMeta;
use crate::store::Db;

/// Purpose label under which the master key is wrapped by the unseal key.
const UNSEAL_PURPOSE: &str = "unseal";
/// Purpose label under which the master key is wrapped by the operational wrapping key.
const WRAPPING_PURPOSE: &str = "wrapping";
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
    /// Why this instance is still sealed when an auto-unseal source is configured.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// The configured auto-unseal source (kind and location, never key material).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub auto_unseal: Option<String>,
}

pub struct Vault {
    db: Db,
    state: Mutex<State>,
    auto: Mutex<(Option<String>, Option<String>)>,
    /// Where tenants' key-encryption keys live (`STRONGROOM_TENANT_KEYS`).
    keks: TenantKekStore,
}

/// The id a share set is fingerprinted with: a rekey starts a new set.
fn share_set(meta: &VaultMeta) -> String {
    format!("{}/{}", meta.vault_id, meta.share_generation)
}

impl Vault {
    /// Loads the vault identity; an initialized vault always starts sealed. `keks` is where
    /// tenants' key-encryption keys live.
    pub async fn load(db: Db, keks: TenantKekStore) -> Result<Vault> {
        let state = match db.vault_meta().await? {
            Some(meta) => sealed(meta),
            None => State::Uninitialized,
        };
        Ok(Vault { db, state: Mutex::new(state), auto: Mutex::new((None, None)), keks })
    }

    /// The tenant key store (`Database` when none is configured).
    pub fn tenant_keks(&self) -> &TenantKekStore {
        &self.keks
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
        let (auto_unseal, reason) = self.auto.lock().unwrap_or_else(|p| p.into_inner()).clone();
        let base = Status { initialized: true, sealed: true, t: 0, n: 0, progress: 0, nonce: String::new(), reason: None, auto_unseal };
        match &*self.lock() {
            State::Uninitialized => Status { initialized: false, reason, ..base },
            State::Sealed { meta, progress } => Status {
                t: meta.threshold as usize,
                n: meta.share_count as usize,
                progress: progress.progress(),
                nonce: progress.nonce().to_string(),
                reason,
                ..base
            },
            State::Unsealed { meta, .. } => Status { sealed: false, t: meta.threshold as usize, n: meta.share_count as usize, ..base },
        }
    }

    /// Records the auto-unseal source and, while sealed, why it has not unsealed yet.
    pub fn set_auto_unseal(&self, source: Option<String>, reason: Option<String>) {
        *self.auto.lock().unwrap_or_else(|p| p.into_inner()) = (source, reason);
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
    /// root credential. Only once per database; the instance stays sealed afterwards. With a
    /// tenant key store, the default tenant's KEK is put there first (503 and nothing
    /// initialized when the store cannot take it).
    pub async fn init(&self, root_token: Option<&str>, threshold: usize, count: usize) -> Result<InitOutput> {
        self.refresh_if_uninitialized().await?;
        if !matches!(*self.lock(), State::Uninitialized) {
            return Err(Error::Conflict("vault is already initialized".into()));
        }
        check_shape(threshold, count)?;
        let vault_id = uuid::Uuid::new_v4().to_string();
        let master = Key::random();
        let mut meta = VaultMeta {
            vault_id: vault_id.clone(),
            threshold: threshold as i32,
            share_count: count as i32,
            share_generation: 1,
            mk_by_uk: Vec::new(),
            mk_by_wk: None,
        };
        let (unseal_key, shares) = split_unseal_key(&share_set(&meta), threshold, count).map_err(|e| Error::Internal(e.into()))?;
        meta.mk_by_uk = keyring::wrap_master(&unseal_key, &vault_id, UNSEAL_PURPOSE, &master);
        let ring = Keyring::new(master);
        let root_token = Zeroizing::new(root_token.map(str::to_string).unwrap_or_else(|| uuid::Uuid::new_v4().to_string()));
        let kek = crate::custody::tenant_kek::mint(&self.keks).await?;
        let dek = ring.wrap_tenant_key(DEFAULT_TENANT_ID, kek.as_ref().map(|(_, k)| k), 1, &Key::random());
        let kek_id = kek.as_ref().map(|(id, _)| id.as_str());
        if !self.db.initialize(&meta, kek_id, &dek, &ring.credential_hash(&root_token)).await? {
            if let Some(id) = kek_id {
                crate::custody::tenant_kek::discard(&self.keks, id).await;
            }
            return Err(Error::Conflict("vault is already initialized".into()));
        }
        *self.lock() = sealed(meta);
        Ok(InitOutput { vault_id, root_token, shares, threshold })
    }

    /// Takes one key share. A share of another vault or a malformed one is refused without
    /// losing progress; a combination that does not open the master key resets progress.
    pub async fn unseal(&self, share: &str) -> Result<Status> {
        let was_sealed = self.keyring().is_err();
        let result = self.unseal_share(share).await;
        crate::telemetry::unseal_attempt("shares", attempt_result(was_sealed, result.as_ref().map(|s| s.sealed)));
        result
    }

    async fn unseal_share(&self, share: &str) -> Result<Status> {
        self.refresh_if_uninitialized().await?;
        if matches!(*self.lock(), State::Uninitialized) {
            return Err(Error::bad("vault is not initialized"));
        }
        match self.submit(share) {
            Err(UnsealError::OtherVault) => {
                // Perhaps another instance rekeyed: pick up the current share set and try again.
                if let Some(meta) = self.db.vault_meta().await? {
                    let mut st = self.lock();
                    if let State::Sealed { meta: old, .. } = &*st {
                        if old.share_generation != meta.share_generation {
                            *st = sealed(meta);
                        }
                    }
                }
                self.submit(share).map_err(unseal_error)?;
            }
            other => other.map_err(unseal_error)?,
        }
        Ok(self.status())
    }

    fn submit(&self, share: &str) -> std::result::Result<(), UnsealError> {
        let mut st = self.lock();
        let next = match &mut *st {
            State::Uninitialized | State::Unsealed { .. } => None,
            State::Sealed { meta, progress } => match progress.submit(share)? {
                None => None,
                Some(unseal_key) => match keyring::unwrap_master(&unseal_key, &meta.vault_id, UNSEAL_PURPOSE, &meta.mk_by_uk) {
                    Ok(master) => Some(State::Unsealed { meta: meta.clone(), keys: Arc::new(Keyring::new(master)) }),
                    Err(_) => {
                        tracing::warn!("unseal attempt failed: shares do not combine to this vault's key");
                        return Err(UnsealError::WrongCombination);
                    }
                },
            },
        };
        if let Some(next) = next {
            *st = next;
            tracing::info!("vault unsealed with key shares");
        }
        Ok(())
    }

    /// Unseals with the operational wrapping key (auto-unseal). Re-reads the vault identity so a
    /// wrapping key minted by another instance is seen.
    pub async fn unseal_with_wrapping_key(&self, wrapping_key: &Key) -> Result<()> {
        let was_sealed = self.keyring().is_err();
        let result = self.unseal_wrapped(wrapping_key).await;
        crate::telemetry::unseal_attempt("wrapping_key", attempt_result(was_sealed, result.as_ref().map(|_| false)));
        result
    }

    async fn unseal_wrapped(&self, wrapping_key: &Key) -> Result<()> {
        let Some(meta) = self.db.vault_meta().await? else {
            return Err(Error::bad("vault is not initialized"));
        };
        let Some(blob) = meta.mk_by_wk.clone() else {
            return Err(Error::bad("no wrapping key has been generated for this vault (SystemGenerateWrappingKey)"));
        };
        let master = keyring::unwrap_master(wrapping_key, &meta.vault_id, WRAPPING_PURPOSE, &blob)
            .map_err(|_| Error::bad("the wrapping key from the source does not open this vault's master key"))?;
        let mut st = self.lock();
        if !matches!(*st, State::Unsealed { .. }) {
            *st = State::Unsealed { meta, keys: Arc::new(Keyring::new(master)) };
            tracing::info!("vault unsealed with the operational wrapping key");
        }
        Ok(())
    }

    /// Rebuilds the unseal key from `shares` (at least the threshold; every share given must be
    /// consistent) and checks that it opens this running vault's master key.
    fn verify_shares(&self, shares: &[&str]) -> Result<(VaultMeta, Arc<Keyring>, Key)> {
        let (meta, ring) = match &*self.lock() {
            State::Unsealed { meta, keys } => (meta.clone(), keys.clone()),
            _ => return Err(Error::Sealed),
        };
        let fp = vault_fingerprint(&share_set(&meta));
        let mut parts = Vec::new();
        for s in shares.iter().filter(|s| !s.trim().is_empty()) {
            let (share_fp, share) = decode_share(s).map_err(unseal_error)?;
            if share_fp != fp {
                return Err(unseal_error(UnsealError::OtherVault));
            }
            parts.push(share);
        }
        if parts.len() < meta.threshold as usize {
            return Err(Error::bad(format!("at least {} key shares are needed", meta.threshold)));
        }
        let uk = Key::from_bytes(shamir::combine(&parts).map_err(|_| unseal_error(UnsealError::Malformed))?);
        let master = keyring::unwrap_master(&uk, &meta.vault_id, UNSEAL_PURPOSE, &meta.mk_by_uk)
            .map_err(|_| unseal_error(UnsealError::WrongCombination))?;
        if !ring.master_matches(&master) {
            return Err(unseal_error(UnsealError::WrongCombination));
        }
        Ok((meta, ring, uk))
    }

    /// SystemGenerateWrappingKey: proves custody with key shares, mints a new operational
    /// wrapping key, installs it in `source` first (when one is configured), then re-wraps the
    /// master key under it. The previous wrapping key stops working.
    pub async fn generate_wrapping_key(&self, shares: &[&str], source: Option<&crate::custody::Source>) -> Result<Key> {
        let (meta, ring, _uk) = self.verify_shares(shares)?;
        let wk = Key::random();
        let blob = ring.wrap_master_under(&wk, &meta.vault_id, WRAPPING_PURPOSE);
        if let Some(src) = source {
            src.store(&wk).await.map_err(|e| Error::Unavailable(e.to_string()))?;
        }
        self.db.set_wrapping(&blob).await?;
        if let State::Unsealed { meta, .. } = &mut *self.lock() {
            meta.mk_by_wk = Some(blob);
        }
        tracing::info!("new operational wrapping key generated");
        Ok(wk)
    }

    /// Proves custody with a quorum of shares (for generating a new root token). Returns the
    /// running keyring.
    pub fn prove_custody(&self, shares: &[&str]) -> Result<Arc<Keyring>> {
        Ok(self.verify_shares(shares)?.1)
    }

    /// Share rekey: from a quorum of current shares, a new unseal key split `threshold` of
    /// `count`. Master key and data are untouched; the old shares stop working.
    pub async fn rekey(&self, shares: &[&str], threshold: usize, count: usize) -> Result<Vec<Zeroizing<String>>> {
        check_shape(threshold, count)?;
        let (mut meta, ring, _uk) = self.verify_shares(shares)?;
        let old_blob = meta.mk_by_uk.clone();
        meta.share_generation += 1;
        meta.threshold = threshold as i32;
        meta.share_count = count as i32;
        let (new_uk, new_shares) = split_unseal_key(&share_set(&meta), threshold, count).map_err(|e| Error::Internal(e.into()))?;
        meta.mk_by_uk = ring.wrap_master_under(&new_uk, &meta.vault_id, UNSEAL_PURPOSE);
        if !self.db.rekey(&old_blob, meta.threshold, meta.share_count, meta.share_generation, &meta.mk_by_uk).await? {
            return Err(Error::Conflict("another rekey changed the shares first; retry with the new shares".into()));
        }
        if let State::Unsealed { meta: m, .. } = &mut *self.lock() {
            *m = meta;
        }
        tracing::info!(threshold, count, "unseal key rekeyed; previous shares retired");
        Ok(new_shares)
    }

    /// Drops the current unseal progress.
    pub fn reset_progress(&self) -> Status {
        if let State::Sealed { progress, .. } = &mut *self.lock() {
            progress.reset();
        }
        self.status()
    }

    /// Seals this instance: the keyring is dropped (and wiped once in-flight requests finish).
    /// The vault identity is re-read so shares minted by a rekey elsewhere are expected.
    pub async fn seal(&self) -> Result<()> {
        let meta = self.db.vault_meta().await?;
        let mut st = self.lock();
        if let (State::Unsealed { .. }, Some(meta)) = (&*st, meta) {
            *st = sealed(meta);
            tracing::info!("vault sealed");
        }
        Ok(())
    }

    /// Seals without asking the database, at shutdown: the keyring is dropped here and its keys
    /// are wiped as soon as nothing else holds it.
    pub fn seal_for_shutdown(&self) {
        let mut st = self.lock();
        if let State::Unsealed { meta, .. } = &*st {
            let meta = meta.clone();
            *st = sealed(meta);
            tracing::info!("vault sealed for shutdown");
        }
    }

    pub fn db(&self) -> &Db {
        &self.db
    }
}

/// The `result` label of an unseal attempt, from whether the vault was sealed before and, on
/// success, whether it still is.
fn attempt_result(was_sealed: bool, outcome: std::result::Result<bool, &Error>) -> &'static str {
    match outcome {
        Ok(_) if !was_sealed => "already_unsealed",
        Ok(true) => "accepted",
        Ok(false) => "unsealed",
        Err(Error::BadRequest(_)) => "rejected",
        Err(_) => "error",
    }
}

fn check_shape(threshold: usize, count: usize) -> Result<()> {
    if threshold < 2 || count < threshold || count > 255 {
        return Err(Error::bad("need 2 <= threshold <= shares <= 255"));
    }
    Ok(())
}

fn sealed(meta: VaultMeta) -> State {
    let progress = UnsealProgress::new(&share_set(&meta), meta.threshold as usize);
    State::Sealed { meta, progress }
}

fn unseal_error(e: UnsealError) -> Error {
    Error::BadRequest(e.to_string())
}
