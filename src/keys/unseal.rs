//! Share encoding and unseal progress. Invariant: partial shares live only inside an
//! [`UnsealProgress`], in zeroizing memory, and are dropped on completion, reset or failure.
//!
//! A share's text form is hex of `version(1) || vault fingerprint(4) || id(1) || value(32)`. The
//! fingerprint is public (a hash of the vault id) and lets a share of another vault be told
//! apart at once, instead of surfacing as a failed combination.

use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

use super::envelope::Key;
use super::shamir::{self, Share};

const SHARE_FORMAT: u8 = 1;
const VALUE_LEN: usize = 32;
const ENCODED_LEN: usize = 1 + 4 + 1 + VALUE_LEN;

pub type Fingerprint = [u8; 4];

pub fn vault_fingerprint(vault_id: &str) -> Fingerprint {
    let d = Sha256::digest(vault_id.as_bytes());
    [d[0], d[1], d[2], d[3]]
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UnsealError {
    #[error("malformed key share")]
    Malformed,
    #[error("key share belongs to a different vault or to an earlier set of shares")]
    OtherVault,
    #[error("key shares do not combine to this vault's unseal key; progress reset")]
    WrongCombination,
}

pub fn encode_share(fp: &Fingerprint, share: &Share) -> Zeroizing<String> {
    let mut raw = Zeroizing::new(Vec::with_capacity(ENCODED_LEN));
    raw.push(SHARE_FORMAT);
    raw.extend_from_slice(fp);
    raw.push(share.id());
    raw.extend_from_slice(share.value());
    Zeroizing::new(hex::encode(&raw[..]))
}

pub fn decode_share(text: &str) -> Result<(Fingerprint, Share), UnsealError> {
    let raw = Zeroizing::new(hex::decode(text.trim()).map_err(|_| UnsealError::Malformed)?);
    if raw.len() != ENCODED_LEN || raw[0] != SHARE_FORMAT || raw[5] == 0 {
        return Err(UnsealError::Malformed);
    }
    let fp = [raw[1], raw[2], raw[3], raw[4]];
    Ok((fp, Share::from_parts(raw[5], raw[6..].to_vec())))
}

/// Splits a fresh unseal key into text shares for the vault `vault_id`.
pub fn split_unseal_key(vault_id: &str, threshold: usize, count: usize) -> Result<(Key, Vec<Zeroizing<String>>), shamir::ShamirError> {
    let uk = Key::random();
    let fp = vault_fingerprint(vault_id);
    let shares = shamir::split(uk.expose(), threshold, count)?;
    Ok((uk, shares.iter().map(|s| encode_share(&fp, s)).collect()))
}

/// Shares received so far in one unseal attempt.
pub struct UnsealProgress {
    fingerprint: Fingerprint,
    threshold: usize,
    shares: Vec<Share>,
    nonce: String,
}

impl UnsealProgress {
    pub fn new(vault_id: &str, threshold: usize) -> UnsealProgress {
        UnsealProgress { fingerprint: vault_fingerprint(vault_id), threshold, shares: Vec::new(), nonce: uuid::Uuid::new_v4().to_string() }
    }

    pub fn progress(&self) -> usize {
        self.shares.len()
    }

    pub fn threshold(&self) -> usize {
        self.threshold
    }

    /// Identifies this attempt; a new one starts after completion or reset.
    pub fn nonce(&self) -> &str {
        &self.nonce
    }

    pub fn reset(&mut self) {
        self.shares.clear();
        self.nonce = uuid::Uuid::new_v4().to_string();
    }

    /// Adds a share. Returns the combined unseal key once the threshold is reached (progress is
    /// then cleared); a share already given does not count twice. A malformed or foreign share
    /// is refused without touching the progress made so far.
    pub fn submit(&mut self, text: &str) -> Result<Option<Key>, UnsealError> {
        let (fp, share) = decode_share(text)?;
        if fp != self.fingerprint {
            return Err(UnsealError::OtherVault);
        }
        if let Some(existing) = self.shares.iter().find(|s| s.id() == share.id()) {
            let same: bool = subtle::ConstantTimeEq::ct_eq(existing.value(), share.value()).into();
            if !same {
                // Same slot, different value: cannot both be right; start over.
                self.reset();
                return Err(UnsealError::WrongCombination);
            }
            return Ok(None);
        }
        self.shares.push(share);
        if self.shares.len() < self.threshold {
            return Ok(None);
        }
        let combined = shamir::combine(&self.shares);
        self.reset();
        match combined {
            Ok(bytes) => Ok(Some(Key::from_bytes(bytes))),
            Err(_) => Err(UnsealError::WrongCombination),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn any_two_shares_rebuild_the_unseal_key() {
        let (uk, shares) = split_unseal_key("v1", 2, 3).unwrap();
        for (a, b) in [(0, 1), (0, 2), (1, 2)] {
            let mut p = UnsealProgress::new("v1", 2);
            assert!(p.submit(&shares[a]).unwrap().is_none());
            assert_eq!(p.progress(), 1);
            let key = p.submit(&shares[b]).unwrap().expect("threshold reached");
            assert_eq!(key.expose(), uk.expose());
            assert_eq!(p.progress(), 0);
        }
    }

    #[test]
    fn a_repeated_share_does_not_count_twice() {
        let (_, shares) = split_unseal_key("v1", 2, 3).unwrap();
        let mut p = UnsealProgress::new("v1", 2);
        assert!(p.submit(&shares[0]).unwrap().is_none());
        assert!(p.submit(&shares[0]).unwrap().is_none());
        assert_eq!(p.progress(), 1);
    }

    #[test]
    fn foreign_and_malformed_shares_are_refused_without_losing_progress() {
        let (_, mine) = split_unseal_key("v1", 2, 3).unwrap();
        let (_, theirs) = split_unseal_key("v2", 2, 3).unwrap();
        let mut p = UnsealProgress::new("v1", 2);
        p.submit(&mine[0]).unwrap();
        assert_eq!(p.submit(&theirs[1]).unwrap_err(), UnsealError::OtherVault);
        assert_eq!(p.submit("zz").unwrap_err(), UnsealError::Malformed);
        assert_eq!(p.submit(&mine[1][..20]).unwrap_err(), UnsealError::Malformed);
        assert_eq!(p.progress(), 1);
    }

    #[test]
    fn shares_of_two_splits_of_the_same_vault_do_not_give_either_key() {
        let (uk1, a) = split_unseal_key("v1", 2, 3).unwrap();
        let (uk2, b) = split_unseal_key("v1", 2, 3).unwrap();
        let mut p = UnsealProgress::new("v1", 2);
        p.submit(&a[0]).unwrap();
        if let Ok(Some(k)) = p.submit(&b[1]) {
            assert_ne!(k.expose(), uk1.expose());
            assert_ne!(k.expose(), uk2.expose());
        }
    }
}
