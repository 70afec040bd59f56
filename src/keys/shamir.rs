//! Shamir secret sharing of a 32-byte key, byte-wise over GF(2^8) (`vsss_rs::Gf256`).
//!
//! Invariant: a secret split `threshold`-of-`count` is reconstructed bit-exactly
//! from any `threshold` or more distinct shares of that split; fewer than
//! `threshold` shares reveal nothing about it (each byte is an independent
//! polynomial with fresh `OsRng` coefficients). Share values never appear in
//! `Debug` output and are wiped on drop, and so is every intermediate buffer here.
//!
//! Shares carry no threshold and no integrity tag: combining too few shares, or
//! shares of different splits, yields a wrong key rather than an error. Callers
//! must verify the reconstructed key (e.g. against a stored key check value).

use std::convert::Infallible;
use std::fmt;

use rand::rngs::OsRng;
use rand::RngCore;
use vsss_rs::Gf256;
use zeroize::{Zeroize, ZeroizeOnDrop, Zeroizing};

/// Default number of shares needed to reconstruct the key.
pub const THRESHOLD: usize = 2;
/// Default number of shares the key is split into.
pub const SHARES: usize = 3;
/// Length in bytes of the secret being shared (and of each share value).
pub const SECRET_LEN: usize = 32;

/// A share: identifier (1..=255, the x-coordinate) plus value bytes (one per secret byte).
#[derive(Clone, Zeroize, ZeroizeOnDrop)]
pub struct Share {
    id: u8,
    value: Vec<u8>,
}

impl Share {
    /// The share identifier (x-coordinate), 1..=255 for valid shares.
    pub fn id(&self) -> u8 {
        self.id
    }

    /// The share value: one GF(256) element per secret byte.
    pub fn value(&self) -> &[u8] {
        &self.value
    }

    /// Rebuild a share from stored parts. Validation happens in [`combine`].
    pub fn from_parts(id: u8, value: Vec<u8>) -> Share {
        Share { id, value }
    }
}

impl fmt::Debug for Share {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Share").field("id", &self.id).field("value", &"<redacted>").finish()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ShamirError {
    #[error("invalid sharing parameters: threshold {threshold}, count {count} (need 2 <= threshold <= count <= 255)")]
    InvalidParameters { threshold: usize, count: usize },
    #[error("not enough shares: got {got}, need at least 2")]
    NotEnoughShares { got: usize },
    #[error("duplicate share identifier {0}")]
    DuplicateShare(u8),
    #[error("invalid share: {0}")]
    Invalid(&'static str),
    #[error("secret sharing backend error: {0}")]
    Backend(String),
}

/// Adapter: `rand` 0.8 `OsRng` as a `rand_core` 0.10 `CryptoRng` (what vsss-rs 6 takes).
/// Like `OsRng` itself, it panics if the operating system RNG fails.
struct OsRng010;

impl rand_core_010::TryRng for OsRng010 {
    type Error = Infallible;
    fn try_next_u32(&mut self) -> Result<u32, Infallible> {
        Ok(OsRng.next_u32())
    }
    fn try_next_u64(&mut self) -> Result<u64, Infallible> {
        Ok(OsRng.next_u64())
    }
    fn try_fill_bytes(&mut self, dst: &mut [u8]) -> Result<(), Infallible> {
        OsRng.fill_bytes(dst);
        Ok(())
    }
}

impl rand_core_010::TryCryptoRng for OsRng010 {}

/// Split `secret` into `count` shares, any `threshold` of which reconstruct it.
/// Share ids are 1..=count.
pub fn split(secret: &[u8; 32], threshold: usize, count: usize) -> Result<Vec<Share>, ShamirError> {
    if threshold < 2 || count < threshold || count > 255 {
        return Err(ShamirError::InvalidParameters { threshold, count });
    }
    // vsss-rs encodes each share as [id, value...].
    let raw = Zeroizing::new(Gf256::split_array(threshold, count, secret, OsRng010).map_err(|e| ShamirError::Backend(e.to_string()))?);
    raw.iter()
        .map(|s| match s.split_first() {
            Some((&id, value)) if id != 0 && value.len() == SECRET_LEN => Ok(Share { id, value: value.to_vec() }),
            _ => Err(ShamirError::Backend("malformed share from backend".into())),
        })
        .collect()
}

/// Reconstruct the secret from shares of one split. Needs at least `threshold`
/// distinct shares of that split for a correct result (see module doc).
pub fn combine(shares: &[Share]) -> Result<Zeroizing<[u8; 32]>, ShamirError> {
    if shares.len() < 2 {
        return Err(ShamirError::NotEnoughShares { got: shares.len() });
    }
    for (i, s) in shares.iter().enumerate() {
        if s.id == 0 {
            return Err(ShamirError::Invalid("share identifier 0"));
        }
        if s.value.len() != SECRET_LEN {
            return Err(ShamirError::Invalid("share value must be 32 bytes"));
        }
        if shares[..i].iter().any(|p| p.id == s.id) {
            return Err(ShamirError::DuplicateShare(s.id));
        }
    }
    // Unique non-zero u8 ids also bound the count to 255.
    let raw: Zeroizing<Vec<Vec<u8>>> = Zeroizing::new(shares.iter().map(|s| [&[s.id][..], &s.value].concat()).collect());
    let secret = Zeroizing::new(Gf256::combine_array(&*raw).map_err(|e| ShamirError::Backend(e.to_string()))?);
    if secret.len() != SECRET_LEN {
        return Err(ShamirError::Backend("combined secret has wrong length".into()));
    }
    let mut out = Zeroizing::new([0u8; 32]);
    out.copy_from_slice(&secret);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn random_secret() -> [u8; 32] {
        let mut s = [0u8; 32];
        OsRng.fill_bytes(&mut s);
        s
    }

    #[test]
    fn any_two_of_three_and_all_three_reconstruct() {
        let secret = random_secret();
        let shares = split(&secret, THRESHOLD, SHARES).unwrap();
        assert_eq!(shares.len(), 3);
        assert_eq!(shares.iter().map(Share::id).collect::<Vec<_>>(), vec![1, 2, 3]);
        for (a, b) in [(0, 1), (0, 2), (1, 2), (2, 0), (1, 0)] {
            let pair = [shares[a].clone(), shares[b].clone()];
            assert_eq!(*combine(&pair).unwrap(), secret, "pair {a},{b}");
        }
        assert_eq!(*combine(&shares).unwrap(), secret);
    }

    #[test]
    fn single_share_fails() {
        let shares = split(&random_secret(), 2, 3).unwrap();
        assert!(matches!(combine(&shares[..1]), Err(ShamirError::NotEnoughShares { got: 1 })));
        assert!(matches!(combine(&[]), Err(ShamirError::NotEnoughShares { got: 0 })));
    }

    #[test]
    fn shares_from_different_splits_do_not_reconstruct() {
        let (s1, s2) = (random_secret(), random_secret());
        let a = split(&s1, 2, 3).unwrap();
        let b = split(&s2, 2, 3).unwrap();
        let mixed = [a[0].clone(), b[1].clone()];
        let got = combine(&mixed).unwrap();
        assert_ne!(*got, s1);
        assert_ne!(*got, s2);
    }

    #[test]
    fn three_of_five_any_three() {
        let secret = random_secret();
        let shares = split(&secret, 3, 5).unwrap();
        for i in 0..5 {
            for j in i + 1..5 {
                for k in j + 1..5 {
                    let set = [shares[i].clone(), shares[j].clone(), shares[k].clone()];
                    assert_eq!(*combine(&set).unwrap(), secret, "set {i},{j},{k}");
                }
            }
        }
        assert_eq!(*combine(&shares).unwrap(), secret);
        // Below threshold: no error (shares carry no threshold), but not the secret.
        assert_ne!(*combine(&shares[..2]).unwrap(), secret);
    }

    #[test]
    fn random_round_trips() {
        for _ in 0..200 {
            let secret = random_secret();
            let shares = split(&secret, 2, 3).unwrap();
            assert_eq!(*combine(&shares[1..]).unwrap(), secret);
        }
        for edge in [[0u8; 32], [0xff; 32]] {
            let shares = split(&edge, 2, 3).unwrap();
            assert_eq!(*combine(&shares[..2]).unwrap(), edge);
        }
    }

    #[test]
    fn duplicate_ids_rejected() {
        let shares = split(&random_secret(), 2, 3).unwrap();
        let dup = [shares[0].clone(), shares[0].clone()];
        assert!(matches!(combine(&dup), Err(ShamirError::DuplicateShare(1))));
        let forged = [shares[1].clone(), Share::from_parts(2, vec![7; 32])];
        assert!(matches!(combine(&forged), Err(ShamirError::DuplicateShare(2))));
    }

    #[test]
    fn invalid_inputs_rejected() {
        let s = random_secret();
        for (t, n) in [(1, 3), (0, 3), (4, 3), (2, 256)] {
            assert!(matches!(split(&s, t, n), Err(ShamirError::InvalidParameters { .. })));
        }
        let shares = split(&s, 2, 3).unwrap();
        let zero_id = [shares[0].clone(), Share::from_parts(0, vec![1; 32])];
        assert!(matches!(combine(&zero_id), Err(ShamirError::Invalid(_))));
        let short = [shares[0].clone(), Share::from_parts(2, vec![1; 31])];
        assert!(matches!(combine(&short), Err(ShamirError::Invalid(_))));
        let rebuilt = Share::from_parts(shares[2].id(), shares[2].value().to_vec());
        assert_eq!(*combine(&[shares[0].clone(), rebuilt]).unwrap(), s);
    }

    #[test]
    fn debug_redacts_value() {
        let shares = split(&[0xAB; 32], 2, 3).unwrap();
        let dbg = format!("{:?}", shares[0]);
        assert!(dbg.contains("redacted") && dbg.contains("id: 1"), "{dbg}");
        assert!(!dbg.contains(&format!("{:?}", shares[0].value())));
    }
}
