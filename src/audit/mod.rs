//! The audit trail. Invariants: every API call appends one event, in the same transaction as its
//! change, or, for a call that changed nothing, in a group commit ([`batch`]) that is durable
//! before the call answers; personal data inside an event is encrypted under a per-event key, itself wrapped by
//! the user's key (events about a user: forgetting the user erases them) or the tenant data key;
//! events form a SHA-256 hash chain per tenant whose head is stored, so an edited, inserted or
//! deleted event (including the last one) is found by [`verify`]. The chain covers the encrypted
//! details but not the key wrapping, so keys can be rotated without breaking it.

pub mod batch;

use std::sync::Arc;

use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::error::Result;
use crate::keys::envelope::Key;
use crate::keys::keyring::TenantKeys;
use crate::store::audit::AuditRow;
use crate::store::{now_secs, Db, TenantTx};

pub const GENESIS: [u8; 32] = [0u8; 32];
/// Chains per tenant: concurrent calls of one tenant append to different lanes.
pub const LANES: i32 = 8;
const TABLE: &str = "audit_events";
const KEY_TABLE: &str = crate::keys::labels::AUDIT_KEY;

/// How a call ended, as its event records it. Stored (and hashed into the chain) as its text,
/// which stored chains pin: `ok`, `denied`, `error:<status>`, `unknown identity`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Ok,
    /// Refused before it ran: no or a bad credential, or a role that may not call it.
    Denied,
    /// Ran and failed with this HTTP status; nothing it changed was kept.
    Failed(u16),
    /// A portal sign-in code asked for an identity no record has (no code is sent).
    UnknownIdentity,
}

impl Outcome {
    pub fn text(self) -> std::borrow::Cow<'static, str> {
        match self {
            Outcome::Ok => "ok".into(),
            Outcome::Denied => "denied".into(),
            Outcome::Failed(status) => format!("error:{status}").into(),
            Outcome::UnknownIdentity => "unknown identity".into(),
        }
    }

    /// A stored outcome's kind (`None`: text no version of Strongroom writes).
    pub fn parse(text: &str) -> Option<Outcome> {
        match text {
            "ok" => Some(Outcome::Ok),
            "denied" => Some(Outcome::Denied),
            "unknown identity" => Some(Outcome::UnknownIdentity),
            _ => text.strip_prefix("error:").and_then(|s| s.parse().ok()).map(Outcome::Failed),
        }
    }
}

/// What a call records about itself. `details` is encrypted before storage.
#[derive(Debug, Default, Clone)]
pub struct Draft {
    pub user_token: Option<String>,
    /// The user's key, when the event is about a user: it wraps the event key.
    pub user_key: Option<Arc<Key>>,
    pub details: serde_json::Map<String, Value>,
}

/// The chain hash of an event: SHA-256 over every stored field (length-prefixed) and the
/// previous event's hash.
pub fn chain_hash(tenant_id: i64, e: &AuditRow) -> [u8; 32] {
    let mut h = Sha256::new();
    let mut put = |b: &[u8]| {
        h.update((b.len() as u64).to_be_bytes());
        h.update(b);
    };
    put(b"strongroom-audit-v1");
    put(&tenant_id.to_be_bytes());
    put(&e.lane.to_be_bytes());
    put(&e.seq.to_be_bytes());
    put(e.uuid.as_bytes());
    put(e.event_type.as_bytes());
    match &e.user_token {
        Some(t) => put(t.as_bytes()),
        None => put(b"\xff"),
    }
    put(e.actor.as_bytes());
    put(e.outcome.as_bytes());
    put(&e.created_at.to_be_bytes());
    put(&e.details);
    put(&e.prev_hash);
    h.finalize().into()
}

/// An event sealed under its keys but not yet in a chain: what a call hands to [`chain_into`]
/// directly or, having changed nothing, to the group commit ([`batch`]).
#[derive(Debug)]
pub struct Sealed {
    pub uuid: String,
    event_type: String,
    user_token: Option<String>,
    actor: String,
    outcome: Outcome,
    created_at: i64,
    key_version: Option<i32>,
    event_key: Vec<u8>,
    details: Vec<u8>,
}

/// Encrypts an event's details under a fresh event key, wrapped by the user's key (an event
/// about a user) or the tenant data key.
pub fn seal(keys: &TenantKeys, event_type: &str, actor: &str, outcome: Outcome, draft: Draft) -> Result<Sealed> {
    let uuid = uuid::Uuid::new_v4().to_string();
    let plaintext = serde_json::to_vec(&Value::Object(draft.details))?;
    let event_key = Key::random();
    let details = keys.seal_with(&event_key, TABLE, &uuid, &plaintext);
    let (key_version, event_key) = match &draft.user_key {
        Some(uk) => (None, keys.seal_with(uk, KEY_TABLE, &uuid, event_key.expose())),
        None => {
            let (v, w) = keys.encrypt(KEY_TABLE, &uuid, event_key.expose());
            (Some(v), w)
        }
    };
    Ok(Sealed {
        uuid,
        event_type: event_type.to_string(),
        user_token: draft.user_token,
        actor: actor.to_string(),
        outcome,
        created_at: now_secs(),
        key_version,
        event_key,
        details,
    })
}

/// Appends one event to the tenant's chain inside `tx`; returns the event uuid.
pub async fn append(tx: &mut TenantTx, keys: &TenantKeys, event_type: &str, actor: &str, outcome: Outcome, draft: Draft) -> Result<String> {
    let event = seal(keys, event_type, actor, outcome, draft)?;
    let uuid = event.uuid.clone();
    chain_into(tx, std::slice::from_ref(&event)).await?;
    crate::telemetry::audit_event(tx.tenant_id(), outcome);
    Ok(uuid)
}

/// Appends sealed events, in order, to one chain of `tx`'s tenant: locks a head, links each event
/// to the one before, and inserts them all and moves the head in one statement. The events are
/// durable when `tx` commits.
pub async fn chain_into(tx: &mut TenantTx, events: &[Sealed]) -> Result<()> {
    let (lane, mut seq, mut prev_hash) = tx.lock_audit_head().await?;
    let mut rows = Vec::with_capacity(events.len());
    for e in events {
        seq += 1;
        let mut row = AuditRow {
            id: 0,
            lane,
            seq,
            uuid: e.uuid.clone(),
            event_type: e.event_type.clone(),
            user_token: e.user_token.clone(),
            actor: e.actor.clone(),
            outcome: e.outcome.text().into_owned(),
            created_at: e.created_at,
            key_version: e.key_version,
            event_key: e.event_key.clone(),
            details: e.details.clone(),
            prev_hash,
            hash: Vec::new(),
        };
        row.hash = chain_hash(tx.tenant_id(), &row).to_vec();
        prev_hash = row.hash.clone();
        rows.push(row);
    }
    tx.append_audit(&rows).await?;
    Ok(())
}

/// Decrypts an event's details. `user_key` is the key of the event's user, if that user still
/// exists; `None` comes back for an event whose user was forgotten.
pub fn details(keys: &TenantKeys, row: &AuditRow, user_key: Option<&Key>) -> Result<Option<Value>> {
    let event_key = match (row.key_version, user_key) {
        (Some(v), _) => keys.decrypt(KEY_TABLE, &row.uuid, v, &row.event_key)?,
        (None, Some(uk)) => keys.open_with(uk, KEY_TABLE, &row.uuid, &row.event_key)?,
        (None, None) => return Ok(None),
    };
    let event_key = Key::from_slice(&event_key)?;
    let pt = keys.open_with(&event_key, TABLE, &row.uuid, &row.details)?;
    Ok(Some(serde_json::from_slice(&pt)?))
}

/// Detail keys whose values never hold personal data: identifiers Strongroom itself made
/// (uuids, ids, blind-index references), counts, flags, enumerations, names a tenant admin chose
/// for its own configuration, and our own messages (which never echo a value).
const NON_PERSONAL: &[&str] = &[
    "mode",
    "identity_index",
    "version",
    "count",
    "offset",
    "requested",
    "found",
    "failed",
    "tokens",
    "token",
    "tenantid",
    "tenantname",
    "groupid",
    "roleid",
    "policyid",
    "lease_id",
    "role",
    "credentialid",
    "requestuuid",
    "requesttype",
    "status",
    "fileuuid",
    "size",
    "duplicate",
    "raw",
    "auditeventuuid",
    "sessionuuid",
    "tokenuuid",
    "tokentype",
    "brief",
    "newbrief",
    "agreementstatus",
    "activity",
    "newactivity",
    "changed",
    "revoked",
    "crosstenant",
    "message",
    "appname",
    "unique",
];

/// An event's details as a reader who may not read personal data (an auditor) sees them: every
/// value under a key not in [`NON_PERSONAL`] becomes `"***"` (request_metadata, free-text
/// reasons and anything added later included: a new key is hidden until it is listed), and an
/// `identity` stays only when the lookup was by token.
pub fn redact_personal(details: Value) -> Value {
    let Value::Object(mut fields) = details else { return Value::String("***".into()) };
    let by_token = fields.get("mode").and_then(Value::as_str) == Some("token");
    for (key, value) in fields.iter_mut() {
        let keep = NON_PERSONAL.contains(&key.as_str()) || (key == "identity" && by_token);
        if !keep {
            mask(value);
        }
    }
    Value::Object(fields)
}

/// Replaces every scalar inside `v` by `"***"`, keeping the shape (so an auditor sees that a
/// detail was recorded, and its keys).
fn mask(v: &mut Value) {
    match v {
        Value::Object(o) => o.values_mut().for_each(mask),
        Value::Array(a) => a.iter_mut().for_each(mask),
        Value::Null => {}
        other => *other = Value::String("***".into()),
    }
}

/// A human title of an event type, as Pro's `AuditListUserEvents` rows carry it: the events a
/// data subject most often sees in plain words, any other endpoint name split into words
/// ("LegalBasisUpdate" -> "Legal basis update").
pub fn title(event_type: &str) -> String {
    let known = match event_type {
        "UserCreate" | "UserCreateBulk" => "Personal record created",
        "UserGet" => "Personal record read",
        "UserUpdate" | "UserPatch" => "Personal record changed",
        "UserDelete" => "Personal record deleted",
        "UserExpired" => "Personal record expired",
        "UserListVersions" | "UserGetVersion" => "Record history read",
        "AgreementAccept" => "Consent given",
        "AgreementCancel" => "Consent withdrawn",
        "AgreementGet" | "AgreementListUserAgreements" => "Consents read",
        "PortalSignIn" => "Signed in to the privacy portal",
        "SharedRecordCreate" => "Shared record link created",
        "SharedRecordGet" => "Shared record read",
        "AuditListUserEvents" => "Activity log read",
        _ => "",
    };
    if !known.is_empty() {
        return known.to_string();
    }
    let mut out = String::with_capacity(event_type.len() + 4);
    for (i, c) in event_type.chars().enumerate() {
        if c.is_ascii_uppercase() && i > 0 {
            out.push(' ');
            out.push(c.to_ascii_lowercase());
        } else {
            out.push(c);
        }
    }
    out
}

/// RFC 3339 UTC timestamp of an event.
pub fn timestamp(row: &AuditRow) -> String {
    let t = std::time::UNIX_EPOCH + std::time::Duration::from_secs(row.created_at.max(0) as u64);
    humantime::format_rfc3339_seconds(t).to_string()
}

/// The first problem [`verify`] found in a tenant's chain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Broken {
    pub tenant_id: i64,
    pub lane: i16,
    pub seq: i64,
    pub uuid: Option<String>,
    pub reason: String,
}

impl std::fmt::Display for Broken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "tenant {} lane {} event #{}", self.tenant_id, self.lane, self.seq)?;
        if let Some(u) = &self.uuid {
            write!(f, " ({u})")?;
        }
        write!(f, ": {}", self.reason)
    }
}

#[derive(Debug, Default)]
pub struct VerifyReport {
    pub tenants: usize,
    pub events: u64,
    pub broken: Vec<Broken>,
}

/// Walks every chain of every tenant from the start. Needs no keys: the chain covers ciphertext.
pub async fn verify(db: &Db) -> Result<VerifyReport> {
    let mut report = VerifyReport::default();
    for tenant_id in db.tenant_ids().await? {
        report.tenants += 1;
        let mut tx = db.tenant_tx(tenant_id).await?;
        let heads = tx.audit_heads().await?;
        if heads.is_empty() {
            report.broken.push(Broken { tenant_id, lane: 0, seq: 0, uuid: None, reason: "chain heads missing".into() });
        }
        for (lane, head_seq, head_hash) in heads {
            let (count, broken) = verify_lane(&mut tx, lane, head_seq, &head_hash).await?;
            report.events += count;
            report.broken.extend(broken);
        }
        // An event in a lane that has no head was slipped in.
        let orphans = tx.audit_orphans().await?;
        if orphans > 0 {
            report.broken.push(Broken {
                tenant_id,
                lane: -1,
                seq: 0,
                uuid: None,
                reason: format!("{orphans} events outside every chain (inserted)"),
            });
        }
        tx.rollback().await?;
    }
    Ok(report)
}

/// Walks one lane: consecutive sequence numbers, each linking to the previous hash, each hash
/// matching its content, and the last one matching the stored head.
async fn verify_lane(tx: &mut TenantTx, lane: i16, head_seq: i64, head_hash: &[u8]) -> Result<(u64, Option<Broken>)> {
    let tenant_id = tx.tenant_id();
    let bad = |seq: i64, uuid: Option<&str>, reason: &str| Broken {
        tenant_id,
        lane,
        seq,
        uuid: uuid.map(str::to_string),
        reason: reason.to_string(),
    };
    let (mut last_seq, mut last_hash, mut count) = (0i64, GENESIS.to_vec(), 0u64);
    loop {
        let page = tx.audit_page(lane, last_seq, 1000).await?;
        if page.is_empty() {
            break;
        }
        for e in page {
            count += 1;
            if e.seq != last_seq + 1 {
                return Ok((count, Some(bad(last_seq + 1, None, &format!("event missing (next stored event is #{})", e.seq)))));
            }
            if e.prev_hash != last_hash {
                return Ok((count, Some(bad(e.seq, Some(&e.uuid), "does not link to the previous event (inserted or reordered)"))));
            }
            if chain_hash(tenant_id, &e).as_slice() != e.hash.as_slice() {
                return Ok((count, Some(bad(e.seq, Some(&e.uuid), "content does not match its hash (edited)"))));
            }
            last_seq = e.seq;
            last_hash = e.hash;
        }
    }
    if head_seq == last_seq && head_hash == last_hash.as_slice() {
        Ok((count, None))
    } else if head_seq > last_seq {
        Ok((count, Some(bad(last_seq + 1, None, &format!("events #{}..#{} missing at the end of the chain", last_seq + 1, head_seq)))))
    } else {
        Ok((count, Some(bad(last_seq, None, "chain head does not match the last event"))))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn outcomes_are_the_text_stored_chains_were_hashed_with() {
        let pinned = [
            (Outcome::Ok, "ok"),
            (Outcome::Denied, "denied"),
            (Outcome::Failed(404), "error:404"),
            (Outcome::UnknownIdentity, "unknown identity"),
        ];
        for (outcome, stored) in pinned {
            assert_eq!(outcome.text(), stored);
            assert_eq!(Outcome::parse(stored), Some(outcome));
        }
        assert_eq!(Outcome::parse("error:x"), None);
        assert_eq!(Outcome::parse("fine"), None);
    }

    #[test]
    fn event_titles_are_plain_words() {
        assert_eq!(title("UserGet"), "Personal record read");
        assert_eq!(title("AgreementCancel"), "Consent withdrawn");
        assert_eq!(title("LegalBasisUpdate"), "Legal basis update");
        assert_eq!(title("x"), "x");
    }

    #[test]
    fn an_auditor_sees_no_personal_values_in_event_details() {
        let d = json!({"mode": "email", "identity_index": "ab12", "identity": "ada@example.com", "version": 3,
            "request_metadata": {"purpose": "kyc", "email": "ada@example.com"}, "reason": "asked by Ada Lovelace", "newfield": "x"});
        let r = redact_personal(d);
        assert_eq!(r["mode"], "email");
        assert_eq!(r["identity_index"], "ab12");
        assert_eq!(r["version"], 3);
        assert_eq!(r["identity"], "***");
        assert_eq!(r["request_metadata"], json!({"purpose": "***", "email": "***"}));
        assert_eq!(r["reason"], "***");
        assert_eq!(r["newfield"], "***");
        assert!(!r.to_string().contains("ada@example.com") && !r.to_string().contains("Ada"));
        let t = redact_personal(json!({"mode": "token", "identity": "6f0e1d2c-0000-4000-8000-000000000000"}));
        assert_eq!(t["identity"], "6f0e1d2c-0000-4000-8000-000000000000");
    }
}
