//! The unsealed key hierarchy held in memory. Invariant: the master key and everything derived
//! from it live only here, in zeroizing memory; dropping the keyring (on seal) wipes them all.
//! Nothing in this module is `Debug`, `Clone` or serializable.
//!
//! A tenant's keys come in two custodies, fixed when the tenant is created:
//! - **database only** (no tenant key-encryption key, KEK): its data keys are wrapped by the
//!   master key and its index and digest keys are derived from the master key alone, so a
//!   database backup plus the master key (the shares) opens everything. Tenants created before
//!   or without a tenant key store keep exactly this derivation.
//! - **with a KEK held outside the database** (`custody::tenant_kek`): its wrapping, index and
//!   digest keys are all derived from master key ‖ KEK, so once the KEK is destroyed nothing of
//!   the tenant opens or can be probed (blind indexes) from any backup, shares or not.
//!
//! The KEK is always an argument here: this module does no I/O.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, RwLock};

use hkdf::Hkdf;
use sha2::Sha256;
use zeroize::Zeroizing;

use super::blind::{self, IndexMode};
use super::envelope::{self, aad, CryptoError, Key, KEY_LEN};

/// HKDF-SHA-256 of the master key for a purpose label.
fn derive(master: &Key, label: &str) -> Key {
    expand(master.expose(), label)
}

/// HKDF-SHA-256 of master key ‖ tenant KEK for a purpose label: needs both keys.
fn derive_with_kek(master: &Key, kek: &Key, label: &str) -> Key {
    let mut ikm = Zeroizing::new([0u8; 2 * KEY_LEN]);
    ikm[..KEY_LEN].copy_from_slice(master.expose());
    ikm[KEY_LEN..].copy_from_slice(kek.expose());
    expand(ikm.as_ref(), label)
}

fn expand(ikm: &[u8], label: &str) -> Key {
    let hk = Hkdf::<Sha256>::new(Some(b"strongroom/v1"), ikm);
    let mut out = Zeroizing::new([0u8; KEY_LEN]);
    hk.expand(label.as_bytes(), out.as_mut()).expect("32 bytes is a valid HKDF length");
    Key::from_bytes(out)
}

fn master_aad(vault_id: &str, purpose: &str) -> Vec<u8> {
    aad(&[b"strongroom-master-key", vault_id.as_bytes(), purpose.as_bytes()])
}

/// Wraps the master key under a key-encryption key (the unseal key, or later a wrapping key).
pub fn wrap_master(kek: &Key, vault_id: &str, purpose: &str, master: &Key) -> Vec<u8> {
    envelope::seal(kek, &master_aad(vault_id, purpose), master.expose())
}

/// Unwraps the master key; fails when `kek` is not the key it was wrapped under.
pub fn unwrap_master(kek: &Key, vault_id: &str, purpose: &str, blob: &[u8]) -> Result<Key, CryptoError> {
    let pt = envelope::open(kek, &master_aad(vault_id, purpose), blob)?;
    Key::from_slice(&pt)
}

/// The keys of one tenant: every data-key version still in use, and its index/digest keys.
pub struct TenantKeys {
    tenant_id: i64,
    current: i32,
    deks: BTreeMap<i32, Key>,
    index: Key,
    digest: Key,
    /// Keyed hashes of tokenization values and unique token records.
    token_index: Key,
}

impl TenantKeys {
    pub fn tenant_id(&self) -> i64 {
        self.tenant_id
    }

    pub fn current_version(&self) -> i32 {
        self.current
    }

    fn record_aad(&self, table: &str, row: &str, version: i32) -> Vec<u8> {
        aad(&[self.tenant_id.to_string().as_bytes(), table.as_bytes(), row.as_bytes(), version.to_string().as_bytes()])
    }

    /// Encrypts a record for `table`/`row` under the current data key; returns (key version, blob).
    pub fn encrypt(&self, table: &str, row: &str, plaintext: &[u8]) -> (i32, Vec<u8>) {
        let key = &self.deks[&self.current];
        (self.current, envelope::seal(key, &self.record_aad(table, row, self.current), plaintext))
    }

    pub fn decrypt(&self, table: &str, row: &str, version: i32, blob: &[u8]) -> Result<Zeroizing<Vec<u8>>, CryptoError> {
        let key = self.deks.get(&version).ok_or(CryptoError)?;
        envelope::open(key, &self.record_aad(table, row, version), blob)
    }

    /// Wraps a per-user key under the current data key; returns (data-key version, blob).
    pub fn wrap_user_key(&self, token: &str, user_key: &Key) -> (i32, Vec<u8>) {
        self.encrypt("user-key", token, user_key.expose())
    }

    pub fn unwrap_user_key(&self, token: &str, version: i32, blob: &[u8]) -> Result<Key, CryptoError> {
        Key::from_slice(&self.decrypt("user-key", token, version, blob)?)
    }

    fn keyed_aad(&self, table: &str, row: &str) -> Vec<u8> {
        aad(&[self.tenant_id.to_string().as_bytes(), table.as_bytes(), row.as_bytes()])
    }

    /// Encrypts under a record-level key (a user's or an event's), bound to this tenant,
    /// `table` and `row`.
    pub fn seal_with(&self, key: &Key, table: &str, row: &str, plaintext: &[u8]) -> Vec<u8> {
        envelope::seal(key, &self.keyed_aad(table, row), plaintext)
    }

    pub fn open_with(&self, key: &Key, table: &str, row: &str, blob: &[u8]) -> Result<Zeroizing<Vec<u8>>, CryptoError> {
        envelope::open(key, &self.keyed_aad(table, row), blob)
    }

    /// Blind index for a lookup identity, `None` when the value normalizes to nothing.
    pub fn index(&self, mode: IndexMode, value: &str) -> Option<[u8; 32]> {
        blind::index(&self.index, mode, value)
    }

    /// A keyed 128-bit digest in hex (the wire API's `md5` field): tells versions apart without
    /// being a guessable plain hash of personal data.
    pub fn digest_hex(&self, data: &[u8]) -> String {
        hex::encode(&blind::keyed_digest(&self.digest, "version-digest", data)[..16])
    }

    /// A keyed hash for `purpose` under this tenant's digest key (so, for a tenant with a KEK,
    /// unguessable once the KEK is destroyed): for values stored in tenant rows that must be
    /// comparable but not readable, such as a requester's network.
    pub fn keyed(&self, purpose: &str, data: &[u8]) -> [u8; 32] {
        blind::keyed_digest(&self.digest, purpose, data)
    }

    /// The key of token lookups (tokenization values and unique records).
    pub fn token_index_key(&self) -> &Key {
        &self.token_index
    }
}

/// The unsealed key hierarchy: master key, derived service keys, and a cache of tenant keys.
pub struct Keyring {
    master: Key,
    credentials: Key,
    tenants: RwLock<HashMap<i64, Arc<TenantKeys>>>,
}

impl Keyring {
    pub fn new(master: Key) -> Keyring {
        let credentials = derive(&master, "credential-hash");
        Keyring { master, credentials, tenants: RwLock::new(HashMap::new()) }
    }

    /// Keyed hash under which a credential (root/tenant/role token) is stored and looked up.
    pub fn credential_hash(&self, token: &str) -> [u8; 32] {
        blind::keyed_digest(&self.credentials, "credential", token.as_bytes())
    }

    fn dek_aad(tenant_id: i64, version: i32) -> Vec<u8> {
        aad(&[b"tenant-data-key", tenant_id.to_string().as_bytes(), version.to_string().as_bytes()])
    }

    /// The key a tenant's data keys are wrapped under: the master key itself for a tenant
    /// without a KEK (the original scheme), else HKDF(master ‖ KEK) bound to the tenant id.
    fn tenant_wrapping(&self, tenant_id: i64, kek: Option<&Key>) -> Key {
        match kek {
            None => self.master.duplicate(),
            Some(kek) => derive_with_kek(&self.master, kek, &format!("tenant-wrap:{tenant_id}")),
        }
    }

    /// Wraps a tenant data key for storage: under the master key when `kek` is `None`, else
    /// under the tenant's wrapping key (master key ‖ KEK).
    pub fn wrap_tenant_key(&self, tenant_id: i64, kek: Option<&Key>, version: i32, dek: &Key) -> Vec<u8> {
        envelope::seal(&self.tenant_wrapping(tenant_id, kek), &Self::dek_aad(tenant_id, version), dek.expose())
    }

    /// The cached keys of a tenant, if loaded.
    pub fn tenant(&self, tenant_id: i64) -> Option<Arc<TenantKeys>> {
        self.tenants.read().expect("keyring lock").get(&tenant_id).cloned()
    }

    /// Unwraps a tenant's stored data keys `(version, wrapped)` and caches them. `kek` is the
    /// tenant's key-encryption key when it has one (`None`: database-only custody); a missing or
    /// wrong KEK fails like a wrong master key.
    pub fn load_tenant(&self, tenant_id: i64, kek: Option<&Key>, wrapped: &[(i32, Vec<u8>)]) -> Result<Arc<TenantKeys>, CryptoError> {
        let wrapping = self.tenant_wrapping(tenant_id, kek);
        let mut deks = BTreeMap::new();
        for (version, blob) in wrapped {
            let pt = envelope::open(&wrapping, &Self::dek_aad(tenant_id, *version), blob)?;
            deks.insert(*version, Key::from_slice(&pt)?);
        }
        let current = *deks.keys().next_back().ok_or(CryptoError)?;
        // Every key that makes a stored, guessable value checkable (blind indexes, digests, token
        // lookups) depends on the KEK when there is one.
        let tenant_key = |label: String| match kek {
            None => derive(&self.master, &label),
            Some(kek) => derive_with_kek(&self.master, kek, &label),
        };
        let index = tenant_key(format!("tenant-index:{tenant_id}"));
        let digest = tenant_key(format!("tenant-digest:{tenant_id}"));
        let token_index = tenant_key(format!("tenant-token-index:{tenant_id}"));
        let keys = Arc::new(TenantKeys { tenant_id, current, deks, index, digest, token_index });
        self.tenants.write().expect("keyring lock").insert(tenant_id, keys.clone());
        Ok(keys)
    }

    /// Drops a tenant's cached keys (after rotation or deletion).
    pub fn forget_tenant(&self, tenant_id: i64) {
        self.tenants.write().expect("keyring lock").remove(&tenant_id);
    }

    /// Drops the cached keys of every tenant not in `live` (tenants deleted, possibly by
    /// another instance). Returns how many were dropped.
    pub fn retain_tenants(&self, live: &[i64]) -> usize {
        let mut tenants = self.tenants.write().expect("keyring lock");
        let before = tenants.len();
        tenants.retain(|id, _| live.contains(id));
        before - tenants.len()
    }

    /// Whether `candidate` is this keyring's master key (constant time).
    pub fn master_matches(&self, candidate: &Key) -> bool {
        use subtle::ConstantTimeEq;
        self.master.expose().ct_eq(candidate.expose()).into()
    }

    /// This keyring's master key wrapped under `kek` (see [`wrap_master`]).
    pub fn wrap_master_under(&self, kek: &Key, vault_id: &str, purpose: &str) -> Vec<u8> {
        wrap_master(kek, vault_id, purpose, &self.master)
    }

    /// A key derived from the master key for a named purpose (e.g. signing role tokens).
    pub fn derived(&self, label: &str) -> Key {
        derive(&self.master, label)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn master_key_wrap_needs_the_right_key_and_vault() {
        let (mk, uk) = (Key::random(), Key::random());
        let blob = wrap_master(&uk, "vault-a", "unseal", &mk);
        assert_eq!(unwrap_master(&uk, "vault-a", "unseal", &blob).unwrap().expose(), mk.expose());
        assert!(unwrap_master(&Key::random(), "vault-a", "unseal", &blob).is_err());
        assert!(unwrap_master(&uk, "vault-b", "unseal", &blob).is_err());
    }

    #[test]
    fn tenant_records_are_bound_to_tenant_row_and_version() {
        let ring = Keyring::new(Key::random());
        let dek = Key::random();
        let t1 = ring.load_tenant(1, None, &[(1, ring.wrap_tenant_key(1, None, 1, &dek))]).unwrap();
        let t2 = ring.load_tenant(2, None, &[(1, ring.wrap_tenant_key(2, None, 1, &dek))]).unwrap();
        let (v, blob) = t1.encrypt("users", "tok", b"{\"name\":\"Ada\"}");
        assert_eq!(&t1.decrypt("users", "tok", v, &blob).unwrap()[..], b"{\"name\":\"Ada\"}");
        // Same data key, other tenant: the associated data still refuses it.
        assert!(t2.decrypt("users", "tok", v, &blob).is_err());
        assert!(t1.decrypt("users", "other", v, &blob).is_err());
        assert!(t1.decrypt("user_versions", "tok", v, &blob).is_err());
    }

    #[test]
    fn user_keys_wrap_under_the_data_key_and_records_bind_to_tenant_and_row() {
        let ring = Keyring::new(Key::random());
        let t1 = ring.load_tenant(1, None, &[(1, ring.wrap_tenant_key(1, None, 1, &Key::random()))]).unwrap();
        let t2 = ring.load_tenant(2, None, &[(1, ring.wrap_tenant_key(2, None, 1, &Key::random()))]).unwrap();
        let uk = Key::random();
        let (v, wrapped) = t1.wrap_user_key("tok", &uk);
        assert_eq!(t1.unwrap_user_key("tok", v, &wrapped).unwrap().expose(), uk.expose());
        assert!(t1.unwrap_user_key("other", v, &wrapped).is_err());
        assert!(t2.unwrap_user_key("tok", v, &wrapped).is_err());
        let blob = t1.seal_with(&uk, "users", "tok/1", b"profile");
        assert_eq!(&t1.open_with(&uk, "users", "tok/1", &blob).unwrap()[..], b"profile");
        assert!(t1.open_with(&uk, "users", "tok/2", &blob).is_err());
        assert!(t2.open_with(&uk, "users", "tok/1", &blob).is_err());
    }

    #[test]
    fn a_wrapped_key_moved_to_another_tenant_does_not_load() {
        let ring = Keyring::new(Key::random());
        let wrapped = ring.wrap_tenant_key(1, None, 1, &Key::random());
        assert!(ring.load_tenant(2, None, &[(1, wrapped)]).is_err());
    }

    #[test]
    fn index_and_credential_keys_are_tenant_and_keyring_specific() {
        let ring = Keyring::new(Key::random());
        let t1 = ring.load_tenant(1, None, &[(1, ring.wrap_tenant_key(1, None, 1, &Key::random()))]).unwrap();
        let t2 = ring.load_tenant(2, None, &[(1, ring.wrap_tenant_key(2, None, 1, &Key::random()))]).unwrap();
        assert_ne!(t1.index(IndexMode::Email, "a@b.c"), t2.index(IndexMode::Email, "a@b.c"));
        assert_ne!(ring.credential_hash("DEMO"), Keyring::new(Key::random()).credential_hash("DEMO"));
        assert_eq!(t1.digest_hex(b"x").len(), 32);
    }

    #[test]
    fn a_tenant_with_a_kek_loads_only_with_that_kek() {
        let ring = Keyring::new(Key::random());
        let (kek, dek) = (Key::random(), Key::random());
        let wrapped = [(1, ring.wrap_tenant_key(7, Some(&kek), 1, &dek)), (2, ring.wrap_tenant_key(7, Some(&kek), 2, &Key::random()))];
        let t = ring.load_tenant(7, Some(&kek), &wrapped).unwrap();
        assert_eq!(t.current_version(), 2);
        let (v, blob) = t.encrypt("users", "tok", b"x");
        // Missing KEK (the master key alone, as a backup plus the shares would have), a wrong
        // KEK, or the right KEK for another tenant id: refused.
        assert!(ring.load_tenant(7, None, &wrapped).is_err());
        assert!(ring.load_tenant(7, Some(&Key::random()), &wrapped).is_err());
        assert!(ring.load_tenant(8, Some(&kek), &wrapped).is_err());
        // The same master key and KEK in a new keyring (another instance) open it.
        let again = ring.load_tenant(7, Some(&kek), &wrapped).unwrap();
        assert_eq!(&again.decrypt("users", "tok", v, &blob).unwrap()[..], b"x");
        // A database-only wrapping does not load as a KEK tenant either.
        let legacy = [(1, ring.wrap_tenant_key(7, None, 1, &dek))];
        assert!(ring.load_tenant(7, Some(&kek), &legacy).is_err());
        assert!(ring.load_tenant(7, None, &legacy).is_ok());
    }

    #[test]
    fn index_and_digest_keys_depend_on_the_kek() {
        let master = Key::random();
        let ring = Keyring::new(master.duplicate());
        let (kek, dek) = (Key::random(), Key::random());
        let plain = ring.load_tenant(3, None, &[(1, ring.wrap_tenant_key(3, None, 1, &dek))]).unwrap();
        let with = ring.load_tenant(3, Some(&kek), &[(1, ring.wrap_tenant_key(3, Some(&kek), 1, &dek))]).unwrap();
        let other = ring.load_tenant(3, Some(&Key::random()), &[(1, ring.wrap_tenant_key(3, Some(&Key::random()), 1, &dek))]);
        assert!(other.is_err(), "a KEK other than the wrapping one does not load");
        let other_kek = Key::random();
        let other = ring.load_tenant(3, Some(&other_kek), &[(1, ring.wrap_tenant_key(3, Some(&other_kek), 1, &dek))]).unwrap();
        let email = |t: &TenantKeys| t.index(IndexMode::Email, "ada@example.com");
        assert_ne!(email(&plain), email(&with));
        assert_ne!(email(&with), email(&other));
        assert_ne!(plain.digest_hex(b"v1"), with.digest_hex(b"v1"));
        // Database-only tenants keep exactly the original derivation from the master key.
        assert_eq!(email(&plain), blind::index(&derive(&master, "tenant-index:3"), IndexMode::Email, "ada@example.com"));
        // And a KEK tenant's keys are stable for the same master key and KEK.
        let ring2 = Keyring::new(master);
        let with2 = ring2.load_tenant(3, Some(&kek), &[(1, ring2.wrap_tenant_key(3, Some(&kek), 1, &dek))]).unwrap();
        assert_eq!(email(&with), email(&with2));
        assert_eq!(with.digest_hex(b"v1"), with2.digest_hex(b"v1"));
        // Token lookups and other keyed hashes follow the same rule.
        let tok = |t: &TenantKeys| blind::keyed_digest(t.token_index_key(), "token-value", b"4111111111111111");
        assert_ne!(tok(&plain), tok(&with));
        assert_eq!(tok(&with), tok(&with2));
        assert_eq!(tok(&plain), blind::keyed_digest(&derive(&ring2.master, "tenant-token-index:3"), "token-value", b"4111111111111111"));
        assert_ne!(plain.keyed("portal-requester", b"10.0.0.1"), with.keyed("portal-requester", b"10.0.0.1"));
    }

    #[test]
    fn keys_of_tenants_that_are_gone_are_dropped() {
        let ring = Keyring::new(Key::random());
        for id in [1, 2, 3] {
            ring.load_tenant(id, None, &[(1, ring.wrap_tenant_key(id, None, 1, &Key::random()))]).unwrap();
        }
        assert_eq!(ring.retain_tenants(&[1, 3]), 1);
        assert!(ring.tenant(2).is_none() && ring.tenant(1).is_some() && ring.tenant(3).is_some());
    }
}
