//! Format-preserving tokenization: TokenCreate, TokenGet, TokenDelete, TokenCreateBulk, and the
//! bulk endpoints BulkListTokens and BulkDeleteTokens (which need a fresh unlock uuid first).
//!
//! - `creditcard`: the record is 12 to 19 digits (spaces and dashes are stripped) passing the
//!   Luhn check. Its token is a Luhn-valid 16-digit number that keeps the original's first digit
//!   (the major industry identifier, so the token still reads as the same kind of card) and is
//!   random otherwise; it never equals the original.
//! - `email`: the record must look like an address. Its token is 16 random lowercase letters and
//!   digits at the reserved domain `tokens.invalid` (RFC 2606), so a token can never reach a real
//!   mailbox and leaks nothing of the original domain.
//!
//! The original and the token value are stored encrypted under the tenant data key; a token is
//! found by its uuid or by a keyed hash of its value, and `unique` tokens by a keyed hash of the
//! normalized original (card: digits; email: trimmed, lowercased). A `unique` request for a
//! record that already has a live unique token returns that token as it is (its expiry stays).
//! Audit events name the token uuid and type only, never the record or the token value.

use axum::extract::State;
use axum::routing::post;
use axum::{Json, Router};
use rand::Rng;
use serde::Deserialize;
use serde_json::{json, Map, Value};

use super::body::{Body, Metadata};
use super::when::{parse_deadline, parse_duration};
use super::{fields, Call};
use crate::app::AppState;
use crate::auth::Claimed;
use crate::error::{Error, Result};
use crate::keys::blind::keyed_digest;
use crate::keys::envelope::Key;
use crate::store::now_secs;
use crate::store::sessions::Expiry;
use crate::store::tokens::{NewToken, TokenRow};

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/v2/TokenCreate", post(token_create))
        .route("/v2/TokenGet", post(token_get))
        .route("/v2/TokenDelete", post(token_delete))
        .route("/v2/TokenCreateBulk", post(token_create_bulk))
        .route("/v2/BulkListTokens", post(bulk_list_tokens))
        .route("/v2/BulkDeleteTokens", post(bulk_delete_tokens))
}

/// Most records or tokens one bulk call may name.
pub const MAX_BULK: usize = 1_000;
/// The reserved domain of email tokens.
pub const EMAIL_TOKEN_DOMAIN: &str = "tokens.invalid";
const TABLE_RECORD: &str = crate::keys::labels::TOKEN_RECORD;
const TABLE_BASE: &str = crate::keys::labels::TOKEN_BASE;
/// Attempts at a token value not yet taken in the tenant before giving up.
const MINT_ATTEMPTS: usize = 8;

#[derive(Deserialize)]
struct CreateReq {
    tokentype: String,
    record: String,
    #[serde(default)]
    unique: Option<bool>,
    #[serde(default)]
    slidingtime: Option<Value>,
    #[serde(default)]
    finaltime: Option<Value>,
    #[serde(default)]
    request_metadata: Metadata,
}

#[derive(Deserialize)]
struct BulkRecord {
    tokentype: String,
    record: String,
}

#[derive(Deserialize)]
struct CreateBulkReq {
    records: Vec<BulkRecord>,
    #[serde(default)]
    unique: Option<bool>,
    #[serde(default)]
    slidingtime: Option<Value>,
    #[serde(default)]
    finaltime: Option<Value>,
    #[serde(default)]
    request_metadata: Metadata,
}

#[derive(Deserialize)]
struct TokenReq {
    token: String,
    #[serde(default)]
    request_metadata: Metadata,
}

#[derive(Deserialize)]
struct BulkTokensReq {
    #[serde(default)]
    unlockuuid: String,
    tokens: Vec<String>,
    #[serde(default)]
    request_metadata: Metadata,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    CreditCard,
    Email,
}

impl Kind {
    fn parse(s: &str) -> Result<Kind> {
        match s.trim().to_ascii_lowercase().as_str() {
            "creditcard" => Ok(Kind::CreditCard),
            "email" => Ok(Kind::Email),
            _ => Err(Error::bad("tokentype must be creditcard or email")),
        }
    }

    fn as_str(self) -> &'static str {
        match self {
            Kind::CreditCard => "creditcard",
            Kind::Email => "email",
        }
    }

    /// The record as stored: card digits only; an email trimmed. 400 when it does not fit.
    fn normalize(self, record: &str) -> Result<String> {
        match self {
            Kind::CreditCard => card_digits(record),
            Kind::Email => check_email(record),
        }
    }

    /// The form `unique` compares (and hashes).
    fn unique_form(self, normalized: &str) -> String {
        match self {
            Kind::CreditCard => normalized.to_string(),
            Kind::Email => normalized.to_lowercase(),
        }
    }

    /// A fresh random token value for a normalized record; never the record itself.
    fn mint(self, normalized: &str) -> String {
        let mut rng = rand::thread_rng();
        loop {
            let token = match self {
                Kind::CreditCard => {
                    let first = normalized.as_bytes()[0] - b'0';
                    let mut digits = Vec::with_capacity(16);
                    digits.push(first);
                    digits.extend((0..14).map(|_| rng.gen_range(0..10u8)));
                    digits.push(luhn_check_digit(&digits));
                    digits.iter().map(|d| char::from(b'0' + d)).collect::<String>()
                }
                Kind::Email => {
                    const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
                    let local: String = (0..16).map(|_| char::from(ALPHABET[rng.gen_range(0..ALPHABET.len())])).collect();
                    format!("{local}@{EMAIL_TOKEN_DOMAIN}")
                }
            };
            if !token.eq_ignore_ascii_case(normalized) {
                return token;
            }
        }
    }
}

/// Whether a string of digits passes the Luhn check.
pub fn luhn_valid(digits: &str) -> bool {
    let bytes = digits.as_bytes();
    if bytes.is_empty() || !bytes.iter().all(u8::is_ascii_digit) {
        return false;
    }
    let values: Vec<u8> = bytes.iter().map(|b| b - b'0').collect();
    luhn_sum(&values, 1).is_multiple_of(10)
}

/// The Luhn check digit to append to `payload` (digit values 0-9).
fn luhn_check_digit(payload: &[u8]) -> u8 {
    // Once appended, the check digit is position 0 from the right, so the payload's last digit
    // is doubled.
    ((10 - luhn_sum(payload, 0) % 10) % 10) as u8
}

/// Luhn sum of digit values, doubling every second digit from the right starting at position
/// `first_doubled` (0 = the rightmost).
fn luhn_sum(values: &[u8], first_doubled: usize) -> u32 {
    values
        .iter()
        .rev()
        .enumerate()
        .map(|(i, &d)| {
            let d = u32::from(d);
            if i % 2 == first_doubled % 2 {
                let x = d * 2;
                if x > 9 {
                    x - 9
                } else {
                    x
                }
            } else {
                d
            }
        })
        .sum()
}

/// A card number's digits: 12 to 19 of them (spaces and dashes allowed between), Luhn-valid.
fn card_digits(record: &str) -> Result<String> {
    let bad = || Error::bad("record must be a credit card number: 12 to 19 digits passing the Luhn check");
    let record = record.trim();
    if record.len() > 64 || !record.chars().all(|c| c.is_ascii_digit() || c == ' ' || c == '-') {
        return Err(bad());
    }
    let digits: String = record.chars().filter(char::is_ascii_digit).collect();
    if !(12..=19).contains(&digits.len()) || !luhn_valid(&digits) {
        return Err(bad());
    }
    Ok(digits)
}

/// A plausible email address (trimmed): one `@`, a local part of up to 64 characters, a domain
/// of dot-separated labels, no whitespace or control characters, at most 254 characters.
fn check_email(record: &str) -> Result<String> {
    let bad = || Error::bad("record must be an email address");
    let email = record.trim();
    if email.is_empty() || email.len() > 254 || email.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(bad());
    }
    let (local, domain) = email.split_once('@').ok_or_else(bad)?;
    if local.is_empty()
        || local.len() > 64
        || domain.contains('@')
        || local.contains(['<', '>', '(', ')', ',', ';', ':', '\\', '"', '[', ']'])
    {
        return Err(bad());
    }
    let labels: Vec<&str> = domain.split('.').collect();
    let label_ok = |l: &&str| {
        !l.is_empty() && l.len() <= 63 && !l.starts_with('-') && !l.ends_with('-') && l.chars().all(|c| c.is_alphanumeric() || c == '-')
    };
    if labels.len() < 2 || !labels.iter().all(label_ok) {
        return Err(bad());
    }
    Ok(email.to_string())
}

/// A token value in the form it was hashed in: a card token's digits, an email token lowercased.
fn token_form(token: &str) -> String {
    let t = token.trim();
    if t.chars().any(|c| c.is_ascii_digit()) && t.chars().all(|c| c.is_ascii_digit() || c == ' ' || c == '-') {
        t.chars().filter(char::is_ascii_digit).collect()
    } else {
        t.to_lowercase()
    }
}

/// The expiry a request asks for (none: the token lives until deleted).
fn requested_expiry(sliding: &Option<Value>, finaltime: &Option<Value>, now: i64) -> Result<Expiry> {
    let sliding_secs = parse_duration("slidingtime", sliding)?;
    let final_at = parse_deadline("finaltime", finaltime, now)?;
    Ok(Expiry { sliding_secs, final_at })
}

/// The tenant's keys, whose token-lookup key (keyed hashes of token values and of unique
/// records) is derived with the tenant's KEK when it has one, so a shredded tenant's tokens
/// cannot be tested against guessed emails or card numbers in an old backup.
fn lookup_keys(call: &Call) -> std::sync::Arc<crate::keys::keyring::TenantKeys> {
    call.keys.clone()
}

fn token_hash(key: &Key, token: &str) -> Vec<u8> {
    keyed_digest(key, "token-value", token_form(token).as_bytes()).to_vec()
}

fn record_hash(key: &Key, kind: Kind, normalized: &str) -> Vec<u8> {
    keyed_digest(key, &format!("token-record:{}", kind.as_str()), kind.unique_form(normalized).as_bytes()).to_vec()
}

/// A token as returned: uuid, value, type and original, decrypted.
struct Opened {
    uuid: String,
    tokenbase: String,
    tokentype: String,
    record: String,
}

fn open(call: &Call, row: TokenRow) -> Result<Opened> {
    let text = |table: &str, blob: &[u8]| -> Result<String> {
        let plain = call.keys.decrypt(table, &row.uuid, row.key_version, blob)?;
        String::from_utf8(plain.to_vec()).map_err(|e| Error::Internal(e.into()))
    };
    let record = text(TABLE_RECORD, &row.record)?;
    let tokenbase = text(TABLE_BASE, &row.tokenbase)?;
    Ok(Opened { uuid: row.uuid, tokenbase, tokentype: row.tokentype, record })
}

/// Stores a new token for a normalized record, or with `unique` returns the record's live
/// unique token. Returns (uuid, token value).
/// A token [`create_one`] gave: a new one, or (`existing`) the live unique token already held
/// for the record.
struct Minted {
    uuid: String,
    tokenbase: String,
    existing: bool,
}

async fn create_one(call: &mut Call, key: &Key, kind: Kind, record: &str, unique: bool, expiry: Expiry, now: i64) -> Result<Minted> {
    let rhash = unique.then(|| record_hash(key, kind, record));
    if let Some(h) = &rhash {
        call.tx.delete_expired_token_of_record(h, now).await?;
        if let Some(row) = call.tx.token_by_record(h, now).await? {
            let o = open(call, row)?;
            call.tx.tighten_expiry(crate::store::Expiring::Tokens, &o.uuid, &expiry, now).await?;
            return Ok(Minted { uuid: o.uuid, tokenbase: o.tokenbase, existing: true });
        }
    }
    for _ in 0..MINT_ATTEMPTS {
        let tokenbase = kind.mint(record);
        let thash = token_hash(key, &tokenbase);
        let uuid = uuid::Uuid::new_v4().to_string();
        let (key_version, record_blob) = call.keys.encrypt(TABLE_RECORD, &uuid, record.as_bytes());
        let (base_version, base_blob) = call.keys.encrypt(TABLE_BASE, &uuid, tokenbase.as_bytes());
        debug_assert_eq!(key_version, base_version);
        let new = NewToken {
            uuid: &uuid,
            tokentype: kind.as_str(),
            token_hash: &thash,
            record_hash: rhash.as_deref(),
            key_version,
            record: &record_blob,
            tokenbase: &base_blob,
            expiry,
        };
        if call.tx.insert_token(&new, now).await? {
            return Ok(Minted { uuid, tokenbase, existing: false });
        }
        // Taken: either a concurrent unique token for the same record (use it) or, rarely, a
        // token value already in use (mint another).
        if let Some(h) = &rhash {
            if let Some(row) = call.tx.token_by_record(h, now).await? {
                let o = open(call, row)?;
                return Ok(Minted { uuid: o.uuid, tokenbase: o.tokenbase, existing: true });
            }
        }
    }
    Err(Error::Internal(anyhow::anyhow!("no free token value after {MINT_ATTEMPTS} attempts")))
}

/// Splits token references into uuids and keyed hashes of token values. 400 on an empty one.
fn refs(key: &Key, tokens: &[String], field: &str) -> Result<(Vec<String>, Vec<Vec<u8>>)> {
    let (mut uuids, mut hashes) = (Vec::new(), Vec::new());
    for (i, t) in tokens.iter().enumerate() {
        let t = t.trim();
        if t.is_empty() {
            return Err(Error::bad(format!("{field}[{i}] must not be empty")));
        }
        match uuid::Uuid::try_parse(t) {
            Ok(u) => uuids.push(u.hyphenated().to_string()),
            Err(_) => hashes.push(token_hash(key, t)),
        }
    }
    Ok((uuids, hashes))
}

/// The live token named by `token` (its value or its uuid).
async fn find(call: &mut Call, key: &Key, token: &str, now: i64) -> Result<TokenRow> {
    let token = token.trim();
    if token.is_empty() {
        return Err(Error::bad("token must not be empty"));
    }
    let row = match uuid::Uuid::try_parse(token) {
        Ok(u) => call.tx.token_by_uuid(&u.hyphenated().to_string(), now).await?,
        Err(_) => call.tx.token_by_hash(&token_hash(key, token), now).await?,
    };
    row.ok_or_else(|| Error::not_found("token"))
}

async fn token_create(State(st): State<AppState>, claimed: Claimed, Body(req): Body<CreateReq>) -> Result<Json<Value>> {
    let mut call = Call::open(&st, &claimed, "TokenCreate", req.request_metadata).await?;
    let result = async {
        let kind = Kind::parse(&req.tokentype)?;
        call.note("tokentype", kind.as_str());
        let record = zeroize::Zeroizing::new(kind.normalize(&req.record)?);
        let now = now_secs();
        let expiry = requested_expiry(&req.slidingtime, &req.finaltime, now)?;
        let keys = lookup_keys(&call);
        let key = keys.token_index_key();
        let Minted { uuid, tokenbase, .. } = create_one(&mut call, key, kind, &record, req.unique.unwrap_or(false), expiry, now).await?;
        call.note("tokenuuid", uuid.as_str());
        Ok(fields([("tokenbase", tokenbase.into()), ("tokenuuid", uuid.into())]))
    }
    .await;
    call.finish(result).await
}

async fn token_get(State(st): State<AppState>, claimed: Claimed, Body(req): Body<TokenReq>) -> Result<Json<Value>> {
    let mut call = Call::open(&st, &claimed, "TokenGet", req.request_metadata).await?;
    let result = async {
        let now = now_secs();
        let keys = lookup_keys(&call);
        let key = keys.token_index_key();
        let row = find(&mut call, key, &req.token, now).await?;
        call.tx.touch_token(&row.uuid, row.expiry(), now).await?;
        let o = open(&call, row)?;
        call.note("tokenuuid", o.uuid.as_str());
        call.note("tokentype", o.tokentype.as_str());
        Ok(fields([("record", o.record.into()), ("tokentype", o.tokentype.into()), ("tokenuuid", o.uuid.into())]))
    }
    .await;
    call.finish(result).await
}

async fn token_delete(State(st): State<AppState>, claimed: Claimed, Body(req): Body<TokenReq>) -> Result<Json<Value>> {
    let mut call = Call::open(&st, &claimed, "TokenDelete", req.request_metadata).await?;
    let result = async {
        let now = now_secs();
        let keys = lookup_keys(&call);
        let key = keys.token_index_key();
        let row = find(&mut call, key, &req.token, now).await?;
        call.note("tokenuuid", row.uuid.as_str());
        call.note("tokentype", row.tokentype.as_str());
        call.tx.delete_tokens(std::slice::from_ref(&row.uuid), &[], now).await?;
        Ok(Map::new())
    }
    .await;
    call.finish(result).await
}

async fn token_create_bulk(State(st): State<AppState>, claimed: Claimed, Body(req): Body<CreateBulkReq>) -> Result<Json<Value>> {
    let mut call = Call::open(&st, &claimed, "TokenCreateBulk", req.request_metadata).await?;
    let result = async {
        if req.records.is_empty() || req.records.len() > MAX_BULK {
            return Err(Error::bad(format!("records must hold 1 to {MAX_BULK} entries")));
        }
        let now = now_secs();
        let expiry = requested_expiry(&req.slidingtime, &req.finaltime, now)?;
        // Every record is checked before anything is stored: one bad record stores nothing.
        let mut checked = Vec::with_capacity(req.records.len());
        for (i, r) in req.records.iter().enumerate() {
            let kind = Kind::parse(&r.tokentype).map_err(|e| Error::bad(format!("records[{i}]: {e}")))?;
            let record = zeroize::Zeroizing::new(kind.normalize(&r.record).map_err(|e| Error::bad(format!("records[{i}]: {e}")))?);
            checked.push((kind, record));
        }
        let keys = lookup_keys(&call);
        let key = keys.token_index_key();
        let unique = req.unique.unwrap_or(false);
        let mut created = Vec::with_capacity(checked.len());
        let mut uuids = Vec::with_capacity(checked.len());
        let mut duplicates = 0;
        for (kind, record) in &checked {
            let m = create_one(&mut call, key, *kind, record, unique, expiry, now).await?;
            duplicates += usize::from(m.existing);
            uuids.push(Value::from(m.uuid.as_str()));
            created.push(json!({"tokenbase": m.tokenbase, "tokenuuid": m.uuid, "record": record.as_str(), "duplicate": m.existing}));
        }
        call.note("count", created.len());
        call.note("tokenuuids", Value::Array(uuids));
        // Pro's summary: with `unique`, a record already tokenized answers its existing token
        // (a duplicate, counted apart); a bad record refuses the whole request, so errors is 0.
        let total = created.len();
        Ok(fields([
            ("num", total.into()),
            ("created", Value::Array(created)),
            ("summary", json!({"total": total, "created": total - duplicates, "duplicates": duplicates, "errors": 0})),
        ]))
    }
    .await;
    call.finish(result).await
}

fn check_bulk(tokens: &[String]) -> Result<()> {
    if tokens.is_empty() || tokens.len() > MAX_BULK {
        return Err(Error::bad(format!("tokens must hold 1 to {MAX_BULK} entries")));
    }
    Ok(())
}

async fn bulk_list_tokens(State(st): State<AppState>, claimed: Claimed, Body(req): Body<BulkTokensReq>) -> Result<Json<Value>> {
    let mut call = Call::open(&st, &claimed, "BulkListTokens", req.request_metadata).await?;
    let result = async {
        call.require_unlock(&req.unlockuuid).await?;
        check_bulk(&req.tokens)?;
        let now = now_secs();
        let keys = lookup_keys(&call);
        let key = keys.token_index_key();
        let (uuids, hashes) = refs(key, &req.tokens, "tokens")?;
        let found = call.tx.tokens_by_refs(&uuids, &hashes, now).await?;
        let mut rows = Vec::with_capacity(found.len());
        for row in found {
            let o = open(&call, row)?;
            rows.push(json!({"tokenuuid": o.uuid, "tokenbase": o.tokenbase, "record": o.record, "tokentype": o.tokentype}));
        }
        call.note("count", rows.len());
        call.note("tokenuuids", rows.iter().map(|r| r["tokenuuid"].clone()).collect::<Vec<Value>>());
        Ok(fields([("total", rows.len().into()), ("rows", Value::Array(rows))]))
    }
    .await;
    call.finish(result).await
}

async fn bulk_delete_tokens(State(st): State<AppState>, claimed: Claimed, Body(req): Body<BulkTokensReq>) -> Result<Json<Value>> {
    let mut call = Call::open(&st, &claimed, "BulkDeleteTokens", req.request_metadata).await?;
    let result = async {
        call.require_unlock(&req.unlockuuid).await?;
        check_bulk(&req.tokens)?;
        let now = now_secs();
        let keys = lookup_keys(&call);
        let key = keys.token_index_key();
        let (uuids, hashes) = refs(key, &req.tokens, "tokens")?;
        let deleted = call.tx.delete_tokens(&uuids, &hashes, now).await?;
        call.note("deleted", deleted);
        call.note("requested", uuids.clone());
        Ok(fields([("deleted", deleted.into())]))
    }
    .await;
    call.finish(result).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn luhn_accepts_known_numbers_and_check_digits_agree() {
        for ok in ["4111111111111111", "5500005555555559", "378282246310005", "6011111111111117", "79927398713"] {
            assert!(luhn_valid(ok), "{ok}");
        }
        for bad in ["4111111111111112", "", "12a4"] {
            assert!(!luhn_valid(bad), "{bad}");
        }
        let payload: Vec<u8> = "7992739871".bytes().map(|b| b - b'0').collect();
        assert_eq!(luhn_check_digit(&payload), 3);
    }

    #[test]
    fn card_tokens_are_luhn_valid_16_digits_keeping_the_first_digit() {
        let card = card_digits("4111-1111 1111-1111").unwrap();
        assert_eq!(card, "4111111111111111");
        for _ in 0..200 {
            let t = Kind::CreditCard.mint(&card);
            assert_eq!(t.len(), 16);
            assert!(luhn_valid(&t), "{t}");
            assert!(t.starts_with('4'));
            assert_ne!(t, card);
        }
        for bad in ["4111111111111112", "41111111111", "4111 1111 1111 1111 1111", "4111x111111111111", ""] {
            assert!(card_digits(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn emails_are_checked_and_email_tokens_look_like_emails() {
        for ok in ["ada@example.com", " Ada.Lovelace+x@mail.example.org ", "a@b.co"] {
            assert!(check_email(ok).is_ok(), "{ok}");
        }
        for bad in ["", "ada", "ada@", "@example.com", "ada@example", "a b@example.com", "a@b@c.com", "ada@-x.com", "ada@exa..com"] {
            assert!(check_email(bad).is_err(), "{bad}");
        }
        let t = Kind::Email.mint("ada@example.com");
        assert!(check_email(&t).is_ok(), "{t}");
        assert!(t.ends_with("@tokens.invalid"));
        assert_eq!(token_form(&t.to_uppercase()), t);
        assert_eq!(token_form(" 4111-1111 1111 1111 "), "4111111111111111");
    }

    #[test]
    fn unknown_token_types_are_refused() {
        assert!(Kind::parse("ssn").is_err());
        assert_eq!(Kind::parse("CreditCard").unwrap(), Kind::CreditCard);
    }
}
