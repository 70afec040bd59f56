//! Blind lookup indexes and keyed digests. Invariant: an index value is HMAC-SHA-256 under a
//! per-tenant key over `mode:normalized value`, never a plain hash, so the database alone cannot
//! confirm a guessed email or phone number.

use hmac::{Hmac, Mac};
use sha2::Sha256;

use super::envelope::Key;

type HmacSha256 = Hmac<Sha256>;

/// The lookup modes of the wire API that are backed by a blind index (`token` is looked up
/// directly by its random value).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IndexMode {
    Login,
    Email,
    Phone,
    Custom,
}

impl IndexMode {
    pub const ALL: [IndexMode; 4] = [IndexMode::Login, IndexMode::Email, IndexMode::Phone, IndexMode::Custom];

    pub fn as_str(self) -> &'static str {
        match self {
            IndexMode::Login => "login",
            IndexMode::Email => "email",
            IndexMode::Phone => "phone",
            IndexMode::Custom => "custom",
        }
    }

    /// The profile field that feeds this index.
    pub fn field(self) -> &'static str {
        self.as_str()
    }

    /// Canonical form of an identity for this mode; `None` when nothing is left to index.
    pub fn normalize(self, value: &str) -> Option<String> {
        let v = match self {
            IndexMode::Email => value.trim().to_lowercase(),
            IndexMode::Phone => value.chars().filter(|c| c.is_ascii_digit()).collect(),
            IndexMode::Login | IndexMode::Custom => value.trim().to_string(),
        };
        (!v.is_empty()).then_some(v)
    }
}

/// HMAC-SHA-256 of `label:value` under `key`.
pub fn keyed_digest(key: &Key, label: &str, value: &[u8]) -> [u8; 32] {
    let mut mac = HmacSha256::new_from_slice(key.expose()).expect("HMAC takes any key length");
    mac.update(label.as_bytes());
    mac.update(b":");
    mac.update(value);
    mac.finalize().into_bytes().into()
}

/// The blind index of an identity, or `None` when the value normalizes to nothing.
pub fn index(key: &Key, mode: IndexMode, value: &str) -> Option<[u8; 32]> {
    mode.normalize(value).map(|n| keyed_digest(key, mode.as_str(), n.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn email_and_phone_are_normalized_before_hashing() {
        let k = Key::random();
        assert_eq!(index(&k, IndexMode::Email, " Alice@Example.COM "), index(&k, IndexMode::Email, "alice@example.com"));
        assert_eq!(index(&k, IndexMode::Phone, "+1 (555) 010-0"), index(&k, IndexMode::Phone, "15550100"));
        assert_ne!(index(&k, IndexMode::Login, "Alice"), index(&k, IndexMode::Login, "alice"));
    }

    #[test]
    fn indexes_differ_by_key_and_mode() {
        let (a, b) = (Key::random(), Key::random());
        assert_ne!(index(&a, IndexMode::Login, "x"), index(&b, IndexMode::Login, "x"));
        assert_ne!(index(&a, IndexMode::Login, "x"), index(&a, IndexMode::Custom, "x"));
    }

    #[test]
    fn empty_values_are_not_indexed() {
        let k = Key::random();
        assert_eq!(index(&k, IndexMode::Phone, "no digits"), None);
        assert_eq!(index(&k, IndexMode::Email, "   "), None);
    }
}
