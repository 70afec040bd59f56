//! The associated-data table labels that more than one module seals or opens with: one
//! spelling each. A ciphertext is bound to its label, so if the sealing and the opening side
//! ever spelled it differently, stored data would stop decrypting. The test below pins each
//! label to the text stored data was written with: changing one is a data migration, not a
//! rename.
//!
//! (Labels used by one module only stay there; issue 18 plans one enum of record kinds for all.)

/// App data, under the user's key (`api::appdata`; read by `api::shared` for snapshots).
pub const APPDATA: &str = "appdata";
/// A token's record and its token base, under tenant data keys (`api::tokens`; re-wrapped by
/// `custody::rotation`).
pub const TOKEN_RECORD: &str = "tokens";
pub const TOKEN_BASE: &str = "tokens-base";
/// A session of no user, under tenant data keys (`api::sessions`; re-wrapped by rotation).
pub const SESSIONS: &str = "sessions";
/// An audit event's key, under tenant data keys (`audit`; re-wrapped by rotation).
pub const AUDIT_KEY: &str = "audit-key";

#[cfg(test)]
mod tests {
    #[test]
    fn labels_are_what_stored_data_was_sealed_with() {
        let pinned = [
            (super::APPDATA, "appdata"),
            (super::TOKEN_RECORD, "tokens"),
            (super::TOKEN_BASE, "tokens-base"),
            (super::SESSIONS, "sessions"),
            (super::AUDIT_KEY, "audit-key"),
        ];
        for (label, stored) in pinned {
            assert_eq!(label, stored);
        }
    }
}
