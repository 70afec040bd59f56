//! FileCreate, FileGet, FileListUserFiles, FileReplaceTags, FileDelete and BulkListFilesByTag.
//! A file's content, name, type and tags are encrypted under the owning user's key; a keyed
//! digest of the content detects duplicates per user, and keyed hashes of the tags serve tag
//! filters. Files may expire (`slidingtime`, `finaltime`); expired files are never returned.

use axum::extract::State;
use axum::http::{header, HeaderValue};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::Router;
use base64::Engine;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::body::{Body, Metadata};
use super::users::find_user;
use super::when::{parse_deadline, parse_duration};
use super::{fields, Call};
use crate::app::AppState;
use crate::auth::Claimed;
use crate::error::{Error, Result};
use crate::keys::envelope::Key;
use crate::keys::keyring::TenantKeys;
use crate::store::files::{FileRow, NewFile};
use crate::store::now_secs;
use crate::store::sessions::Expiry;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/v2/FileCreate", post(file_create))
        .route("/v2/FileGet", post(file_get))
        .route("/v2/FileListUserFiles", post(file_list_user_files))
        .route("/v2/FileReplaceTags", post(file_replace_tags))
        .route("/v2/FileDelete", post(file_delete))
        .route("/v2/BulkListFilesByTag", post(bulk_list_files_by_tag))
}

const TABLE: &str = "files";
/// Largest file accepted (decoded).
pub const MAX_FILE_BYTES: usize = 5 * 1024 * 1024;
const DEFAULT_MIMETYPE: &str = "application/octet-stream";

#[derive(Deserialize)]
struct CreateReq {
    mode: String,
    identity: String,
    filename: String,
    filedata: String,
    #[serde(default)]
    mimetype: Option<String>,
    #[serde(default)]
    tags: Option<Value>,
    #[serde(default)]
    slidingtime: Option<Value>,
    #[serde(default)]
    finaltime: Option<Value>,
    #[serde(default)]
    request_metadata: Metadata,
}

#[derive(Deserialize)]
struct GetReq {
    mode: String,
    identity: String,
    #[serde(default)]
    fileuuid: Option<String>,
    #[serde(default)]
    filename: Option<String>,
    #[serde(default)]
    raw: bool,
    #[serde(default)]
    request_metadata: Metadata,
}

#[derive(Deserialize)]
struct ListReq {
    mode: String,
    identity: String,
    #[serde(default)]
    tag: Option<String>,
    #[serde(default)]
    request_metadata: Metadata,
}

#[derive(Deserialize)]
struct TagsReq {
    mode: String,
    identity: String,
    fileuuid: String,
    #[serde(default)]
    tags: Option<Value>,
    #[serde(default)]
    request_metadata: Metadata,
}

#[derive(Deserialize)]
struct ByTagReq {
    #[serde(default)]
    unlockuuid: String,
    #[serde(default)]
    tag: String,
    #[serde(default, deserialize_with = "super::body::int_or_string")]
    offset: Option<i64>,
    #[serde(default, deserialize_with = "super::body::int_or_string")]
    limit: Option<i64>,
    #[serde(default)]
    request_metadata: Metadata,
}

#[derive(Deserialize)]
struct DeleteReq {
    mode: String,
    identity: String,
    fileuuid: String,
    #[serde(default)]
    request_metadata: Metadata,
}

/// The encrypted part of a file's description.
#[derive(Serialize, Deserialize)]
struct Meta {
    filename: String,
    mimetype: String,
    /// Absent in files stored before tags existed.
    #[serde(default)]
    tags: Vec<String>,
}

/// Most tags a file carries.
const MAX_TAGS: usize = 16;

/// A file's tag set as Pro takes it: a list or a comma-separated string; lowercased and
/// de-duplicated (first occurrence kept); each `[a-z0-9][a-z0-9._-]{0,49}`; at most 16.
/// Absent, null or empty is no tags.
fn check_tags(v: Option<&Value>) -> Result<Vec<String>> {
    let bad = || {
        Error::bad(format!("tags must be a list (or comma-separated string) of at most {MAX_TAGS} tags, each 1-50 of a-z, 0-9, '.', '_', '-', starting with a letter or digit"))
    };
    let raw: Vec<String> = match v {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::String(s)) => s.split(',').map(str::to_string).collect(),
        Some(Value::Array(a)) => a.iter().map(|t| t.as_str().map(str::to_string).ok_or_else(bad)).collect::<Result<_>>()?,
        Some(_) => return Err(bad()),
    };
    let mut tags: Vec<String> = Vec::new();
    for t in raw {
        let t = t.trim().to_ascii_lowercase();
        if t.is_empty() && v.is_some_and(Value::is_string) {
            continue;
        }
        let b = t.as_bytes();
        let ok = (1..=50).contains(&b.len())
            && b[0].is_ascii_alphanumeric()
            && b.iter().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, b'.' | b'_' | b'-'));
        if !ok {
            return Err(bad());
        }
        if !tags.contains(&t) {
            tags.push(t);
        }
    }
    if tags.len() > MAX_TAGS {
        return Err(bad());
    }
    Ok(tags)
}

/// The keyed hash a tag is found by (never the tag itself).
fn tag_hash(keys: &TenantKeys, tag: &str) -> String {
    keys.digest_hex(format!("file-tag\0{tag}").as_bytes())
}

fn tag_hashes(keys: &TenantKeys, tags: &[String]) -> Vec<String> {
    tags.iter().map(|t| tag_hash(keys, t)).collect()
}

/// A tag filter: one tag (a comma is not a list separator here, as in Pro).
fn check_tag(tag: &str) -> Result<String> {
    match check_tags(Some(&Value::Array(vec![Value::String(tag.to_string())])))?.pop() {
        Some(t) if !tag.contains(',') => Ok(t),
        _ => Err(Error::bad("tag must be a single tag")),
    }
}

/// A file's listing entry (FileListUserFiles, BulkListFilesByTag).
fn listed(f: &FileRow, meta: Meta) -> Value {
    json!({
        "fileuuid": f.uuid,
        "filename": meta.filename,
        "mimetype": meta.mimetype,
        "size": f.size,
        "tags": meta.tags,
        "doublehash": f.digest,
        "creationtime": f.created_at,
    })
}

/// A file name: 1 to 255 characters, no '/' and no NUL.
fn check_filename(name: &str) -> Result<&str> {
    if (1..=255).contains(&name.chars().count()) && !name.contains(['/', '\0']) {
        Ok(name)
    } else {
        Err(Error::bad("filename must be 1 to 255 characters without '/' or NUL"))
    }
}

/// A MIME type usable as a Content-Type; absent or empty is application/octet-stream.
fn check_mimetype(m: Option<&str>) -> Result<String> {
    let m = m.map(str::trim).filter(|m| !m.is_empty()).unwrap_or(DEFAULT_MIMETYPE);
    let ok = m.len() <= 255 && m.contains('/') && m.bytes().all(|b| (0x20..0x7f).contains(&b)) && HeaderValue::from_str(m).is_ok();
    if ok {
        Ok(m.to_string())
    } else {
        Err(Error::bad("mimetype must be a MIME type such as text/plain"))
    }
}

fn check_uuid(s: &str) -> Result<String> {
    uuid::Uuid::parse_str(s.trim()).map(|u| u.hyphenated().to_string()).map_err(|_| Error::bad("fileuuid must be a UUID"))
}

fn too_large() -> Error {
    Error::bad(format!("file too large: the limit is {MAX_FILE_BYTES} bytes"))
}

/// Decodes standard or url-safe base64, padded or not; whitespace (line breaks) is ignored.
fn decode(data: &str) -> Result<Vec<u8>> {
    use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD};
    let text: String = data.chars().filter(|c| !c.is_ascii_whitespace()).collect();
    // Cheap refusal before decoding: 4 characters per 3 bytes.
    if text.len() > MAX_FILE_BYTES.div_ceil(3) * 4 {
        return Err(too_large());
    }
    let bytes = [STANDARD, URL_SAFE, STANDARD_NO_PAD, URL_SAFE_NO_PAD]
        .iter()
        .find_map(|e| e.decode(&text).ok())
        .ok_or_else(|| Error::bad("filedata must be base64"))?;
    if bytes.len() > MAX_FILE_BYTES {
        return Err(too_large());
    }
    Ok(bytes)
}

fn requested_expiry(sliding: &Option<Value>, finaltime: &Option<Value>, now: i64) -> Result<Expiry> {
    let sliding_secs = parse_duration("slidingtime", sliding)?;
    let final_at = parse_deadline("finaltime", finaltime, now)?;
    Ok(Expiry { sliding_secs, final_at })
}

fn row_id(token: &str, uuid: &str) -> String {
    format!("{token}/{uuid}")
}

fn meta_row_id(token: &str, uuid: &str) -> String {
    format!("{token}/{uuid}/meta")
}

fn name_hash(keys: &TenantKeys, filename: &str) -> String {
    keys.digest_hex(format!("file-name\0{filename}").as_bytes())
}

fn open_meta(keys: &TenantKeys, key: &Key, token: &str, f: &FileRow) -> Result<Meta> {
    let plain = keys.open_with(key, TABLE, &meta_row_id(token, &f.uuid), &f.meta)?;
    Ok(serde_json::from_slice(&plain)?)
}

async fn file_create(State(st): State<AppState>, claimed: Claimed, Body(req): Body<CreateReq>) -> Result<axum::Json<Value>> {
    let mut call = Call::open(&st, &claimed, "FileCreate", req.request_metadata).await?;
    let result = async {
        let filename = check_filename(&req.filename)?;
        let mimetype = check_mimetype(req.mimetype.as_deref())?;
        let tags = check_tags(req.tags.as_ref())?;
        let content = zeroize::Zeroizing::new(decode(&req.filedata)?);
        let expiry = requested_expiry(&req.slidingtime, &req.finaltime, now_secs())?;
        let (user, key) = find_user(&mut call, &req.mode, &req.identity).await?;
        let uuid = uuid::Uuid::new_v4().to_string();
        let hashes = tag_hashes(&call.keys, &tags);
        let meta = serde_json::to_vec(&Meta { filename: filename.to_string(), mimetype, tags })?;
        let file = NewFile {
            uuid: &uuid,
            meta: &call.keys.seal_with(&key, TABLE, &meta_row_id(&user.token, &uuid), &meta),
            name_hash: &name_hash(&call.keys, filename),
            data: &call.keys.seal_with(&key, TABLE, &row_id(&user.token, &uuid), &content),
            digest: &call.keys.digest_hex(&content),
            size: content.len() as i64,
            expiry,
            tag_hashes: &hashes,
        };
        let (fileuuid, duplicate) = match call.tx.insert_file(user.id, &file).await? {
            Ok(()) => (uuid, false),
            Err(existing) => {
                call.tx.tighten_expiry(crate::store::Expiring::Files, &existing, &expiry, now_secs()).await?;
                (existing, true)
            }
        };
        call.note("fileuuid", fileuuid.as_str());
        call.note("size", content.len());
        call.note("duplicate", duplicate);
        Ok(fields([("token", user.token.into()), ("fileuuid", fileuuid.into()), ("duplicate", duplicate.into())]))
    }
    .await;
    call.finish(result).await
}

async fn file_get(State(st): State<AppState>, claimed: Claimed, Body(req): Body<GetReq>) -> Result<Response> {
    let mut call = Call::open(&st, &claimed, "FileGet", req.request_metadata).await?;
    let raw = req.raw;
    let result = async {
        let uuid = req.fileuuid.as_deref().filter(|s| !s.trim().is_empty()).map(check_uuid).transpose()?;
        let filename = req.filename.as_deref().filter(|s| !s.is_empty()).map(check_filename).transpose()?;
        if uuid.is_none() && filename.is_none() {
            return Err(Error::bad("fileuuid or filename is required"));
        }
        let (user, key) = find_user(&mut call, &req.mode, &req.identity).await?;
        let found = match (&uuid, filename) {
            (Some(uuid), _) => call.tx.file_by_uuid(user.id, uuid).await?,
            (None, Some(name)) => call.tx.file_by_name(user.id, &name_hash(&call.keys, name)).await?,
            (None, None) => None,
        };
        let file = found.ok_or_else(|| Error::not_found("file"))?;
        let meta = open_meta(&call.keys, &key, &user.token, &file)?;
        if filename.is_some_and(|n| n != meta.filename) {
            return Err(Error::not_found("file"));
        }
        let content = call.keys.open_with(&key, TABLE, &row_id(&user.token, &file.uuid), &file.data)?;
        call.tx.touch_file(&file.uuid, Expiry { sliding_secs: file.sliding_secs, final_at: file.final_at }).await?;
        call.note("fileuuid", file.uuid.as_str());
        call.note("size", file.size);
        call.note("raw", raw);
        let mut out = fields([
            ("token", user.token.into()),
            ("fileuuid", file.uuid.into()),
            ("filename", meta.filename.into()),
            ("mimetype", meta.mimetype.clone().into()),
            ("size", file.size.into()),
            ("tags", meta.tags.clone().into()),
        ]);
        let bytes = content.to_vec();
        if !raw {
            out.insert("filedata".into(), base64::engine::general_purpose::STANDARD.encode(&bytes).into());
        }
        Ok((out, bytes, meta.mimetype))
    }
    .await;
    let (result, payload) = match result {
        Ok((out, bytes, mime)) => (Ok(out), Some((bytes, mime))),
        Err(e) => (Err(e), None),
    };
    let json = call.finish(result).await?;
    match payload {
        Some((bytes, mime)) if raw => {
            let ctype = HeaderValue::from_str(&mime).unwrap_or(HeaderValue::from_static(DEFAULT_MIMETYPE));
            let headers = [
                (header::CONTENT_TYPE, ctype),
                (header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff")),
                (header::CONTENT_DISPOSITION, HeaderValue::from_static("attachment")),
                (header::CACHE_CONTROL, HeaderValue::from_static("no-store")),
            ];
            Ok((headers, bytes).into_response())
        }
        _ => Ok(json.into_response()),
    }
}

async fn file_list_user_files(State(st): State<AppState>, claimed: Claimed, Body(req): Body<ListReq>) -> Result<axum::Json<Value>> {
    let mut call = Call::open(&st, &claimed, "FileListUserFiles", req.request_metadata).await?;
    let result = async {
        let tag = req.tag.as_deref().filter(|t| !t.trim().is_empty()).map(check_tag).transpose()?;
        let (user, key) = find_user(&mut call, &req.mode, &req.identity).await?;
        let hash = tag.map(|t| tag_hash(&call.keys, &t));
        let mut files = Vec::new();
        for f in call.tx.user_files(user.id, hash.as_deref()).await? {
            let meta = open_meta(&call.keys, &key, &user.token, &f)?;
            files.push(listed(&f, meta));
        }
        call.note("count", files.len());
        Ok(fields([("token", user.token.into()), ("files", Value::Array(files))]))
    }
    .await;
    call.finish(result).await
}

async fn file_replace_tags(State(st): State<AppState>, claimed: Claimed, Body(req): Body<TagsReq>) -> Result<axum::Json<Value>> {
    let mut call = Call::open(&st, &claimed, "FileReplaceTags", req.request_metadata).await?;
    let result = async {
        let uuid = check_uuid(&req.fileuuid)?;
        if req.tags.is_none() {
            return Err(Error::bad("missing field `tags` (an empty list removes every tag)"));
        }
        let tags = check_tags(req.tags.as_ref())?;
        let (user, key) = find_user(&mut call, &req.mode, &req.identity).await?;
        call.note("fileuuid", uuid.as_str());
        call.note("count", tags.len());
        let file = call.tx.file_by_uuid(user.id, &uuid).await?.ok_or_else(|| Error::not_found("file"))?;
        let mut meta = open_meta(&call.keys, &key, &user.token, &file)?;
        meta.tags = tags;
        let sealed = call.keys.seal_with(&key, TABLE, &meta_row_id(&user.token, &uuid), &serde_json::to_vec(&meta)?);
        if !call.tx.replace_file_tags(user.id, &uuid, &sealed, &tag_hashes(&call.keys, &meta.tags)).await? {
            return Err(Error::not_found("file"));
        }
        Ok(fields([("token", user.token.into()), ("fileuuid", uuid.into()), ("tags", meta.tags.into())]))
    }
    .await;
    call.finish(result).await
}

/// Files carrying a tag across the tenant's users (a bulk listing: it needs an unlock).
async fn bulk_list_files_by_tag(State(st): State<AppState>, claimed: Claimed, Body(req): Body<ByTagReq>) -> Result<axum::Json<Value>> {
    let mut call = Call::open(&st, &claimed, "BulkListFilesByTag", req.request_metadata).await?;
    let result = async {
        call.require_unlock(&req.unlockuuid).await?;
        if req.tag.trim().is_empty() {
            return Err(Error::bad("missing field `tag`"));
        }
        let tag = check_tag(&req.tag)?;
        let (offset, limit) = super::audit::page(req.offset, req.limit)?;
        let (total, found) = call.tx.files_by_tag(&tag_hash(&call.keys, &tag), offset, limit).await?;
        let mut rows = Vec::with_capacity(found.len());
        let mut tokens = Vec::with_capacity(found.len());
        for (f, user) in found {
            let key = crate::records::user_key(&call.keys, &user)?;
            let mut row = listed(&f, open_meta(&call.keys, &key, &user.token, &f)?);
            row["token"] = user.token.clone().into();
            tokens.push(Value::from(user.token));
            rows.push(row);
        }
        call.note("offset", offset);
        call.note("count", rows.len());
        call.note("tokens", Value::Array(tokens));
        Ok(fields([("total", total.into()), ("rows", Value::Array(rows))]))
    }
    .await;
    call.finish(result).await
}

async fn file_delete(State(st): State<AppState>, claimed: Claimed, Body(req): Body<DeleteReq>) -> Result<axum::Json<Value>> {
    let mut call = Call::open(&st, &claimed, "FileDelete", req.request_metadata).await?;
    let result = async {
        let uuid = check_uuid(&req.fileuuid)?;
        let (user, _) = find_user(&mut call, &req.mode, &req.identity).await?;
        call.note("fileuuid", uuid.as_str());
        if !call.tx.delete_file(user.id, &uuid).await? {
            return Err(Error::not_found("file"));
        }
        Ok(fields([("token", user.token.into())]))
    }
    .await;
    call.finish(result).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_types_and_base64_are_checked() {
        for ok in ["a", "report 2024.pdf", &"x".repeat(255), "ünïcode.txt"] {
            assert!(check_filename(ok).is_ok(), "{ok}");
        }
        for bad in ["", "a/b", "a\0b", &"x".repeat(256)] {
            assert!(check_filename(bad).is_err(), "{bad:?}");
        }
        assert_eq!(check_mimetype(None).unwrap(), DEFAULT_MIMETYPE);
        assert_eq!(check_mimetype(Some("text/plain; charset=utf-8")).unwrap(), "text/plain; charset=utf-8");
        assert!(check_mimetype(Some("text\nplain")).is_err());
        assert!(check_mimetype(Some("plain")).is_err());
        assert_eq!(decode("aGk/Pw==").unwrap(), b"hi??");
        assert_eq!(decode("aGk_Pw").unwrap(), b"hi??");
        assert_eq!(decode("").unwrap(), b"");
        assert!(decode("!!!").is_err());
        assert!(decode(&"A".repeat(MAX_FILE_BYTES / 3 * 4 + 8)).is_err());
    }
}
