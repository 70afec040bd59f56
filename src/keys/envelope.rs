//! AES-256-GCM envelopes. Invariant: every ciphertext carries a fresh random 96-bit nonce and is
//! bound by associated data to what it is (tenant, table, row, key version), so a blob copied to
//! another place fails to open. Keys live only in zeroizing memory and never print.

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use rand::RngCore;
use zeroize::Zeroizing;

pub const KEY_LEN: usize = 32;
pub const NONCE_LEN: usize = 12;
const TAG_LEN: usize = 16;

/// A 256-bit symmetric key. Wiped on drop; no `Clone` or `Serialize`, and `Debug` is redacted.
pub struct Key(Zeroizing<[u8; KEY_LEN]>);

impl std::fmt::Debug for Key {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Key(<redacted>)")
    }
}

impl Key {
    /// A fresh key from the thread's CSPRNG (`rand`'s ThreadRng: ChaCha12 seeded and
    /// periodically reseeded from the OS), which spares a getrandom syscall per key: a bulk
    /// create makes a key per record.
    pub fn random() -> Key {
        let mut k = Zeroizing::new([0u8; KEY_LEN]);
        rand::thread_rng().fill_bytes(k.as_mut());
        Key(k)
    }

    pub fn from_bytes(bytes: Zeroizing<[u8; KEY_LEN]>) -> Key {
        Key(bytes)
    }

    /// Builds a key from a byte slice that must be exactly 32 bytes long.
    pub fn from_slice(bytes: &[u8]) -> Result<Key, CryptoError> {
        if bytes.len() != KEY_LEN {
            return Err(CryptoError);
        }
        let mut k = Zeroizing::new([0u8; KEY_LEN]);
        k.copy_from_slice(bytes);
        Ok(Key(k))
    }

    pub fn expose(&self) -> &[u8; KEY_LEN] {
        &self.0
    }

    pub fn duplicate(&self) -> Key {
        Key(Zeroizing::new(*self.0))
    }
}

/// Opening failed: wrong key, wrong associated data, or a damaged blob. Deliberately says no more.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("decryption failed")]
pub struct CryptoError;

/// Associated data from labelled parts, each length-prefixed so that no two different part lists
/// encode to the same bytes ("a","bc" vs "ab","c").
pub fn aad(parts: &[&[u8]]) -> Vec<u8> {
    let mut out = Vec::with_capacity(parts.iter().map(|p| p.len() + 4).sum());
    for p in parts {
        out.extend_from_slice(&(p.len() as u32).to_be_bytes());
        out.extend_from_slice(p);
    }
    out
}

/// Encrypts: returns `nonce || ciphertext || tag`.
pub fn seal(key: &Key, aad: &[u8], plaintext: &[u8]) -> Vec<u8> {
    let cipher = Aes256Gcm::new_from_slice(key.expose()).expect("32-byte key");
    let mut nonce = [0u8; NONCE_LEN];
    // Random 96-bit nonces from the same CSPRNG as keys (see `Key::random`).
    rand::thread_rng().fill_bytes(&mut nonce);
    let ct = cipher
        .encrypt(Nonce::from_slice(&nonce), Payload { msg: plaintext, aad })
        .expect("AES-GCM encryption of an in-memory buffer cannot fail");
    let mut out = Vec::with_capacity(NONCE_LEN + ct.len());
    out.extend_from_slice(&nonce);
    out.extend_from_slice(&ct);
    out
}

/// Decrypts a blob made by [`seal`] with the same key and associated data.
pub fn open(key: &Key, aad: &[u8], blob: &[u8]) -> Result<Zeroizing<Vec<u8>>, CryptoError> {
    if blob.len() < NONCE_LEN + TAG_LEN {
        return Err(CryptoError);
    }
    let cipher = Aes256Gcm::new_from_slice(key.expose()).map_err(|_| CryptoError)?;
    let (nonce, ct) = blob.split_at(NONCE_LEN);
    cipher.decrypt(Nonce::from_slice(nonce), Payload { msg: ct, aad }).map(Zeroizing::new).map_err(|_| CryptoError)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_binds_associated_data() {
        let k = Key::random();
        let ad = aad(&[b"t1", b"users", b"row", b"1"]);
        let blob = seal(&k, &ad, b"secret profile");
        assert_eq!(&open(&k, &ad, &blob).unwrap()[..], b"secret profile");
        let other_row = aad(&[b"t1", b"users", b"row2", b"1"]);
        assert_eq!(open(&k, &other_row, &blob), Err(CryptoError));
        assert_eq!(open(&Key::random(), &ad, &blob), Err(CryptoError));
    }

    #[test]
    fn nonces_are_fresh_and_plaintext_is_not_visible() {
        let k = Key::random();
        let a = seal(&k, b"", b"alice@example.com");
        let b = seal(&k, b"", b"alice@example.com");
        assert_ne!(a, b);
        assert!(!a.windows(5).any(|w| w == b"alice"));
    }

    #[test]
    fn tampered_or_short_blobs_fail() {
        let k = Key::random();
        let mut blob = seal(&k, b"x", b"data");
        blob[NONCE_LEN] ^= 1;
        assert!(open(&k, b"x", &blob).is_err());
        assert!(open(&k, b"x", &[0u8; 10]).is_err());
    }

    #[test]
    fn aad_parts_are_unambiguous() {
        assert_ne!(aad(&[b"a", b"bc"]), aad(&[b"ab", b"c"]));
    }
}
