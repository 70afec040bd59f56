//! Personal records, the domain between the wire adapters (`api/`, `v1/`, the portal) and the
//! store: how a record is named (`Mode`), found, sealed and opened. Invariants: a profile is
//! encrypted and decrypted only here, under its own user's key, bound to the label `users` and
//! to `<token>/<version>` (so a ciphertext moved to another record or version does not open);
//! a user's key is unwrapped only here; a lookup by email, phone, login or custom value leaves
//! in the audit draft only its blind-index reference until the record is found.
//! Nothing here knows HTTP or a call: adapters pass the transaction, keys and audit draft.

use std::sync::Arc;

use serde_json::Value;

use crate::audit::Draft;
use crate::error::{Error, Result};
use crate::keys::blind::IndexMode;
use crate::keys::envelope::Key;
use crate::keys::keyring::TenantKeys;
use crate::store::users::{NewUser, Retention, UserRow};
use crate::store::{now_secs, TenantTx};

/// The associated-data label of profiles. Stored data was sealed with it: changing it is a
/// data migration, not a rename.
const PROFILES: &str = "users";

/// How a request names a user.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Token,
    Index(IndexMode),
}

impl Mode {
    pub fn parse(s: &str) -> Result<Mode> {
        match s.trim().to_ascii_lowercase().as_str() {
            "token" => Ok(Mode::Token),
            "login" => Ok(Mode::Index(IndexMode::Login)),
            "email" => Ok(Mode::Index(IndexMode::Email)),
            "phone" => Ok(Mode::Index(IndexMode::Phone)),
            "custom" => Ok(Mode::Index(IndexMode::Custom)),
            _ => Err(Error::bad("mode must be one of token, login, email, phone, custom")),
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Token => "token",
            Mode::Index(m) => m.as_str(),
        }
    }
}

/// Checks a profile and computes its blind indexes.
pub fn profile_indexes(keys: &TenantKeys, profile: &Value) -> Result<Vec<(IndexMode, [u8; 32])>> {
    let obj = match profile {
        Value::Object(o) if !o.is_empty() => o,
        _ => return Err(Error::bad("profile must be a non-empty JSON object")),
    };
    let mut out = Vec::new();
    for mode in IndexMode::ALL {
        let text = match obj.get(mode.field()) {
            None | Some(Value::Null) => continue,
            Some(Value::String(s)) => s.clone(),
            Some(Value::Number(n)) => n.to_string(),
            Some(_) => return Err(Error::bad(format!("profile field `{}` must be a string", mode.field()))),
        };
        if let Some(h) = keys.index(mode, &text) {
            out.push((mode, h));
        }
    }
    Ok(out)
}

fn row_id(token: &str, version: i32) -> String {
    format!("{token}/{version}")
}

/// Encrypts a profile for `token` at `version` under the user's key: (ciphertext, digest).
pub fn seal_profile(keys: &TenantKeys, user_key: &Key, token: &str, version: i32, profile: &Value) -> Result<(Vec<u8>, String)> {
    let plain = zeroize::Zeroizing::new(serde_json::to_vec(profile)?);
    Ok((keys.seal_with(user_key, PROFILES, &row_id(token, version), &plain), keys.digest_hex(&plain)))
}

/// Decrypts a profile sealed for `token` at `version`.
pub fn open_profile(keys: &TenantKeys, user_key: &Key, token: &str, version: i32, blob: &[u8]) -> Result<Value> {
    let plain = keys.open_with(user_key, PROFILES, &row_id(token, version), blob)?;
    Ok(serde_json::from_slice(&plain)?)
}

/// Decrypts a user's current profile.
pub fn open_current(keys: &TenantKeys, user_key: &Key, user: &UserRow) -> Result<Value> {
    open_profile(keys, user_key, &user.token, user.version, &user.profile)
}

/// Unwraps a stored user's key.
pub fn user_key(keys: &TenantKeys, user: &UserRow) -> Result<Arc<Key>> {
    Ok(Arc::new(keys.unwrap_user_key(&user.token, user.key_version, &user.user_key)?))
}

/// Finds the user named by `mode`/`identity`, or 404. Until it is found the draft knows the
/// identity only as its blind index: a lookup that misses (for example after the user was
/// forgotten) must not leave an email or phone decryptable with the tenant's keys. A token
/// (a random pseudonym) is noted as it is on a miss; on a hit the adapter notes it
/// ([`note_identity`]) once the caller may reach the record, under the user's key then.
pub async fn locate(tx: &mut TenantTx, keys: &TenantKeys, draft: &mut Draft, mode: Mode, identity: &str) -> Result<UserRow> {
    if identity.trim().is_empty() {
        return Err(Error::bad("identity must not be empty"));
    }
    draft.details.insert("mode".into(), mode.as_str().into());
    let found = match mode {
        Mode::Token => tx.user_by_token(identity.trim()).await?,
        Mode::Index(m) => {
            let hash = keys.index(m, identity).ok_or_else(|| Error::bad(format!("identity is not a valid {}", m.as_str())))?;
            draft.details.insert("identity_index".into(), hex::encode(hash).into());
            tx.user_by_index(m, &hash).await?
        }
    };
    match found {
        Some(user) => Ok(user),
        None => {
            note_identity(draft, mode, identity);
            Err(Error::not_found("user record"))
        }
    }
}

/// The identity itself goes into the event only when it is a token: an email, phone, login or
/// custom value stays a blind-index reference, so what an auditor reads never holds a personal
/// identifier.
pub fn note_identity(draft: &mut Draft, mode: Mode, identity: &str) {
    if mode == Mode::Token {
        draft.details.insert("identity".into(), identity.trim().into());
    }
}

/// A read of a user with a sliding expiry extends it (never past its final time); `user`
/// then reports the new expiry.
pub async fn extend_sliding(tx: &mut TenantTx, user: &mut UserRow) -> Result<()> {
    if let Some(sliding) = user.retention.sliding_secs {
        let now = now_secs();
        tx.touch_user(user.id, now).await?;
        let extended = user.retention.final_at.map_or(now + sliding, |f| f.min(now + sliding));
        user.retention.expires_at = user.retention.expires_at.map(|e| e.max(extended));
    }
    Ok(())
}

/// A new user under a fresh random token, and its key.
pub fn new_user(keys: &TenantKeys, profile: &Value, retention: Retention) -> Result<(NewUser, Key)> {
    new_user_with_token(keys, uuid::Uuid::new_v4().to_string(), profile, retention)
}

/// A new user under a given token (UserImport keeps the token a record had elsewhere).
pub fn new_user_with_token(keys: &TenantKeys, token: String, profile: &Value, retention: Retention) -> Result<(NewUser, Key)> {
    let indexes = profile_indexes(keys, profile)?;
    let key = Key::random();
    let (key_version, wrapped) = keys.wrap_user_key(&token, &key);
    let (blob, digest) = seal_profile(keys, &key, &token, 1, profile)?;
    Ok((NewUser { token, key_version, user_key: wrapped, profile: blob, digest, indexes, retention }, key))
}
