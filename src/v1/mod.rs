//! Databunker's open-source v1 REST API (`../shared/contract/v1-endpoints.md`), served on the
//! same vault as v2. A wire adapter only: each route parses Databunker's path, body and modes,
//! calls the v2 endpoints in-process with the caller's own `X-Bunker-Token` and tenant (so the
//! credential check, casbin, masking, retention, callbacks and audit are the v2 ones), and maps
//! the answer back to Databunker's shapes and status codes. No business logic lives here.
//!
//! Where Databunker is unsafe this adapter is deliberately different (README, "The v1 API"):
//! nothing is looked up before the credential is checked, consents need a credential whatever
//! the mode, a configuration dump holds no secrets, and `/v1/sys/backup` says how to back up
//! instead of answering an empty 200.

mod consent;
mod oversight;
mod records;

use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::header::{self, HeaderMap, HeaderValue};
use axum::http::request::Parts;
use axum::http::{Method, StatusCode, Uri};
use axum::response::{IntoResponse, Redirect, Response};
use axum::{Extension, Router};
use serde_json::{json, Map, Value};

use crate::api::inprocess::{self, Api, Peer};
use crate::app::AppState;

pub fn routes(api: Router) -> Router<AppState> {
    Router::new()
        .merge(records::routes())
        .merge(consent::routes())
        .merge(oversight::routes())
        .layer(Extension(Api(api)))
        .layer(axum::middleware::map_response(security_headers))
}

/// Whether `path` belongs to the v1 wire API (for CORS and the v1 error shape); the operator
/// routes under `/v1/sys/` and the Vault plugin's `/v1/vault/` are not part of it.
pub fn is_wire_path(path: &str) -> bool {
    const SYS: [&str; 4] = ["/v1/sys/backup", "/v1/sys/configuration", "/v1/sys/uiconfiguration", "/v1/sys/cookiesettings"];
    path.starts_with("/v1/") && !path.starts_with("/v1/vault/") && (!path.starts_with("/v1/sys/") || SYS.contains(&path))
}

/// An unknown v1 route. Databunker redirects a trailing slash (301 for GET, 307 otherwise, which
/// `@databunker/store` relies on when it posts to `/v1/user/`); anything else is its 404.
pub async fn fallback(method: Method, uri: Uri) -> Response {
    let path = uri.path();
    if path.len() > 4 && path.ends_with('/') {
        let mut to = path.trim_end_matches('/').to_string();
        if let Some(q) = uri.query() {
            to = format!("{to}?{q}");
        }
        if method != Method::GET {
            return Redirect::temporary(&to).into_response();
        }
        // Go's 301 (axum's permanent redirect is a 308).
        return match HeaderValue::from_str(&to) {
            Ok(loc) => (StatusCode::MOVED_PERMANENTLY, [(header::LOCATION, loc)]).into_response(),
            Err(_) => (StatusCode::NOT_FOUND, axum::Json(json!({"status": "error", "message": "endpoint is missing"}))).into_response(),
        };
    }
    (StatusCode::NOT_FOUND, axum::Json(json!({"status": "error", "message": "endpoint is missing"}))).into_response()
}

/// Databunker's middleware headers on every v1 answer.
async fn security_headers(mut res: Response) -> Response {
    let h = res.headers_mut();
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("SAMEORIGIN"));
    h.insert(header::STRICT_TRANSPORT_SECURITY, HeaderValue::from_static("max-age=63072000; includeSubDomains"));
    h.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    h.insert(header::X_XSS_PROTECTION, HeaderValue::from_static("1; mode=block"));
    if !h.contains_key(header::CONTENT_SECURITY_POLICY) {
        h.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static("default-src 'none'; frame-ancestors 'self'"));
    }
    res
}

// ---- answers ----

/// A v1 failure, in Databunker's shapes.
#[derive(Debug)]
pub enum Fail {
    /// A missing or refused credential: 403 with the plain text `Access denied`.
    Denied,
    /// `{"status":"error","message":...}` with a status (Databunker's 405 for nearly all).
    Error(StatusCode, String),
}

impl Fail {
    /// Databunker's usual error: 405 with `message`.
    pub fn v1(message: impl Into<String>) -> Fail {
        Fail::Error(StatusCode::METHOD_NOT_ALLOWED, message.into())
    }
}

impl IntoResponse for Fail {
    fn into_response(self) -> Response {
        match self {
            Fail::Denied => (StatusCode::FORBIDDEN, [(header::CONTENT_TYPE, "text/plain; charset=utf-8")], "Access denied").into_response(),
            Fail::Error(status, message) => {
                let body = json!({"status": "error", "message": message}).to_string();
                (status, [(header::CONTENT_TYPE, "application/json; charset=utf-8")], body).into_response()
            }
        }
    }
}

pub type Answer = Result<Response, Fail>;

/// `{"status":"ok", ...fields}`.
pub fn ok(fields: Value) -> Answer {
    let mut body = Map::new();
    body.insert("status".into(), "ok".into());
    if let Value::Object(f) = fields {
        body.extend(f);
    }
    Ok(([(header::CONTENT_TYPE, "application/json; charset=utf-8")], Value::Object(body).to_string()).into_response())
}

/// A plain-text 200 (`OK` of the expiration links, `/v1/status`).
pub fn text(body: &'static str) -> Answer {
    Ok(([(header::CONTENT_TYPE, "text/plain; charset=utf-8")], body).into_response())
}

/// Maps a v2 answer to the v1 result: refused credentials are Databunker's `Access denied`,
/// missing things its `not found`, and other refusals its 405 with the v2 message.
fn from_v2((status, body): (StatusCode, Value)) -> Result<Value, Fail> {
    if status.is_success() {
        return Ok(body);
    }
    let message = body.get("message").and_then(Value::as_str).unwrap_or("internal error").to_string();
    Err(match status {
        StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => Fail::Denied,
        StatusCode::NOT_FOUND => Fail::v1("not found"),
        StatusCode::CONFLICT => match message.strip_prefix("duplicate ").and_then(|m| m.split_once(':')) {
            Some((index, _)) => Fail::v1(format!("duplicate index: {index}")),
            None => Fail::v1(message),
        },
        StatusCode::BAD_REQUEST => Fail::v1(message),
        // Throttling, a sealed vault, an oversized body and server faults keep their status.
        other => Fail::Error(other, message),
    })
}

/// An error of the domain code that some v1 routes call directly (public reads and links), in
/// the same v1 words as a v2 answer with that status; server faults are logged, never shown.
impl From<crate::error::Error> for Fail {
    fn from(e: crate::error::Error) -> Fail {
        let status = e.status();
        let message = if status.is_server_error() {
            tracing::error!(error = %e, "v1 call failed");
            "internal error".to_string()
        } else {
            e.public_message()
        };
        match from_v2((status, json!({ "message": message }))) {
            Err(f) => f,
            Ok(_) => Fail::Error(status, "internal error".into()),
        }
    }
}

// ---- the caller ----

/// One v1 request's caller: its credential and tenant (as v2 resolves them), its address and
/// the in-process v2 API it acts through.
pub struct Ctx {
    api: Api,
    peer: Peer,
    tenant: String,
    token: Option<String>,
}

impl<S: Send + Sync> FromRequestParts<S> for Ctx {
    type Rejection = Fail;

    async fn from_request_parts(parts: &mut Parts, s: &S) -> Result<Ctx, Fail> {
        let Extension(api) = Extension::<Api>::from_request_parts(parts, s).await.map_err(|_| Fail::v1("internal error"))?;
        let Ok(peer) = Peer::from_request_parts(parts, s).await;
        let claimed = crate::auth::claimed(&parts.headers);
        let token = claimed.token.as_ref().map(|t| t.as_str().to_string());
        Ok(Ctx { api, peer, tenant: claimed.tenant, token })
    }
}

impl Ctx {
    /// Calls v2 `endpoint` with this caller's credential.
    pub async fn call(&self, endpoint: &str, body: Value) -> Result<Value, Fail> {
        from_v2(self.raw(endpoint, body).await)
    }

    /// As [`Ctx::call`], without mapping the answer.
    pub async fn raw(&self, endpoint: &str, body: Value) -> (StatusCode, Value) {
        inprocess::call(&self.api, &self.peer, &self.tenant, self.token.as_deref(), endpoint, body).await
    }

    /// The tenant the call acts in.
    pub fn tenant(&self) -> &str {
        &self.tenant
    }

    /// Whether the caller sent a credential at all.
    pub fn has_token(&self) -> bool {
        self.token.is_some()
    }

    /// Calls `direct`; when the caller may not (a data subject's own token), files the change as a
    /// user request through `request` instead, as Databunker does for login xtokens. Answers
    /// `None` when done directly, else the request's uuid.
    pub async fn direct_or_request(&self, direct: &str, request: &str, body: Value) -> Result<Option<String>, Fail> {
        match self.raw(direct, body.clone()).await {
            (StatusCode::FORBIDDEN, _) if self.has_token() => {
                let v = self.call(request, body).await?;
                Ok(Some(v["requestuuid"].as_str().unwrap_or_default().to_string()))
            }
            other => from_v2(other).map(|_| None),
        }
    }
}

/// A change filed as a request: Databunker's `request-created` answer.
pub fn request_created(rtoken: String) -> Answer {
    ok(json!({"result": "request-created", "rtoken": rtoken}))
}

// ---- path and query ----

/// Path parameters; an undecodable one (invalid UTF-8, say) is a v1 error, not axum's text.
pub struct V1Path<T>(pub T);

impl<S: Send + Sync, T: serde::de::DeserializeOwned + Send> FromRequestParts<S> for V1Path<T> {
    type Rejection = Fail;

    async fn from_request_parts(parts: &mut Parts, s: &S) -> Result<Self, Fail> {
        match axum::extract::Path::<T>::from_request_parts(parts, s).await {
            Ok(axum::extract::Path(t)) => Ok(V1Path(t)),
            Err(_) => Err(Fail::v1("bad request path")),
        }
    }
}

/// Query parameters, as [`V1Path`].
pub struct V1Query<T>(pub T);

impl<S: Send + Sync, T: serde::de::DeserializeOwned + Send> FromRequestParts<S> for V1Query<T> {
    type Rejection = Fail;

    async fn from_request_parts(parts: &mut Parts, s: &S) -> Result<Self, Fail> {
        match axum::extract::Query::<T>::from_request_parts(parts, s).await {
            Ok(axum::extract::Query(t)) => Ok(V1Query(t)),
            Err(_) => Err(Fail::v1("bad query")),
        }
    }
}

// ---- modes, identities, durations ----

/// A lookup mode of a v1 path: the records domain's, spelled exactly (v1 is case-sensitive,
/// and answers Databunker's `bad mode`).
pub use crate::records::Mode;

fn parse_mode(s: &str) -> Result<Mode, Fail> {
    match s {
        "token" | "login" | "email" | "phone" | "custom" => Mode::parse(s).map_err(|_| Fail::v1("bad mode")),
        _ => Err(Fail::v1("bad mode")),
    }
}

/// A record named by a v1 path: `/:mode/:identity`, checked as Databunker checks it.
pub struct Who {
    pub mode: Mode,
    pub identity: String,
}

impl Who {
    pub fn parse(mode: &str, identity: &str) -> Result<Who, Fail> {
        let mode = parse_mode(mode)?;
        let identity = match mode {
            Mode::Token => uuid_arg(identity)?,
            Mode::Index(crate::keys::blind::IndexMode::Email) => identity.trim().to_lowercase(),
            _ => identity.trim().to_string(),
        };
        Ok(Who { mode, identity })
    }

    /// The v2 `mode`/`identity` pair, plus `extra` fields.
    pub fn body(&self, extra: Value) -> Value {
        let mut b = Map::new();
        b.insert("mode".into(), self.mode.as_str().into());
        b.insert("identity".into(), self.identity.clone().into());
        if let Value::Object(e) = extra {
            b.extend(e);
        }
        Value::Object(b)
    }
}

/// A uuid path segment, or Databunker's `bad uuid`.
pub fn uuid_arg(s: &str) -> Result<String, Fail> {
    match uuid::Uuid::parse_str(s) {
        Ok(u) if s.len() == 36 => Ok(u.hyphenated().to_string()),
        _ => Err(Fail::v1("bad uuid")),
    }
}

/// A Databunker duration (`^([0-9]+)([mhds])?$`, `m` a month of 31 days) in seconds; anything
/// else counts as absent. A number above `now` is an absolute unix time, returned as the
/// seconds from now.
pub fn duration_secs(v: &Value, now: i64) -> Option<i64> {
    let s = match v {
        Value::String(s) => s.trim().to_string(),
        Value::Number(n) => n.as_i64()?.to_string(),
        _ => return None,
    };
    let (digits, unit) = match s.char_indices().last() {
        Some((i, c)) if c.is_ascii_alphabetic() => (&s[..i], Some(c)),
        _ => (s.as_str(), None),
    };
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let n: i64 = digits.parse().ok()?;
    let secs = match unit {
        None | Some('s') => n,
        Some('h') => n.checked_mul(3600)?,
        Some('d') => n.checked_mul(86_400)?,
        Some('m') => n.checked_mul(31 * 86_400)?,
        Some(_) => return None,
    };
    if unit.is_none() && secs > now {
        return Some(secs - now);
    }
    (secs > 0).then_some(secs)
}

/// Paging query parameters (`offset`, `limit`; default limit 10, at most 100).
#[derive(serde::Deserialize, Default)]
pub struct Paging {
    #[serde(default)]
    offset: Option<String>,
    #[serde(default)]
    limit: Option<String>,
    #[serde(default)]
    pub status: Option<String>,
}

impl Paging {
    /// `(offset, limit)`; non-numbers count as absent (Databunker's `Atoi`).
    pub fn get(&self) -> (i64, i64) {
        let num = |s: &Option<String>| s.as_deref().and_then(|s| s.trim().parse::<i64>().ok());
        let offset = num(&self.offset).filter(|o| *o >= 0).unwrap_or(0);
        let limit = num(&self.limit).filter(|l| *l > 0).unwrap_or(10).min(100);
        (offset, limit)
    }
}

// ---- bodies ----

/// A request body as Databunker reads it: JSON (also when labelled XML), or a form (first value
/// per key). `None`: empty (fewer than 3 characters, or no Content-Type).
pub struct V1Body {
    pub content_type: Kind,
    pub text: Option<String>,
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Kind {
    Json,
    Form,
    Missing,
    Other,
}

impl<S: Send + Sync> FromRequest<S> for V1Body {
    type Rejection = Response;

    async fn from_request(req: Request, s: &S) -> Result<V1Body, Response> {
        let kind = content_kind(req.headers());
        let bytes = Bytes::from_request(req, s).await.map_err(IntoResponse::into_response)?;
        let text = String::from_utf8(bytes.to_vec()).map_err(|_| Fail::v1("failed to decode request body").into_response())?;
        if text.contains('\0') {
            return Err(Fail::v1("failed to decode request body").into_response());
        }
        let text = (text.trim().len() >= 3).then_some(text);
        Ok(V1Body { content_type: kind, text })
    }
}

fn content_kind(h: &HeaderMap) -> Kind {
    let Some(ct) = h.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()) else { return Kind::Missing };
    let ct = ct.split(';').next().unwrap_or("").trim().to_ascii_lowercase();
    match ct.as_str() {
        "application/json" | "application/xml" | "text/xml" => Kind::Json,
        "application/x-www-form-urlencoded" => Kind::Form,
        _ => Kind::Other,
    }
}

impl V1Body {
    /// The body as an object (`GetJSONPostMap`); `None` when empty.
    pub fn object(&self) -> Result<Option<Map<String, Value>>, Fail> {
        let Some(text) = &self.text else { return Ok(None) };
        let bad = || Fail::v1("failed to decode request body");
        match self.content_type {
            Kind::Missing => Ok(None),
            Kind::Json => match serde_json::from_str::<Value>(text) {
                Ok(Value::Object(m)) => Ok(Some(m)),
                _ => Err(bad()),
            },
            Kind::Form => {
                if text.trim_start().starts_with('{') {
                    return Err(bad());
                }
                let pairs: Vec<(String, String)> = serde_urlencoded::from_str(text.trim()).map_err(|_| bad())?;
                let mut m = Map::new();
                for (k, v) in pairs {
                    m.entry(k).or_insert(Value::String(v));
                }
                Ok(Some(m))
            }
            Kind::Other => Err(bad()),
        }
    }

    /// The body as an object, or `empty` when there is none.
    pub fn required(&self, empty: &str) -> Result<Map<String, Value>, Fail> {
        self.object()?.ok_or_else(|| Fail::v1(empty))
    }

    /// A PUT body: a merge patch (starts with `{`) or an RFC 6902 patch (anything else).
    pub fn change(&self) -> Result<Change, Fail> {
        if !matches!(self.content_type, Kind::Json | Kind::Form) {
            return Err(Fail::v1("failed to decode request body"));
        }
        let Some(text) = &self.text else { return Err(Fail::v1("empty body")) };
        if text.trim_start().starts_with('{') || self.content_type == Kind::Form {
            return Ok(Change::Merge(Value::Object(self.required("empty body")?)));
        }
        let patch: json_patch::Patch = serde_json::from_str(text).map_err(|_| Fail::v1("failed to decode request body"))?;
        Ok(Change::Patch(serde_json::to_value(patch).unwrap_or_default()))
    }
}

/// What a PUT asks for.
pub enum Change {
    /// RFC 7386: fields replace, `null` removes, objects merge.
    Merge(Value),
    /// RFC 6902 operations.
    Patch(Value),
}

/// A value of a body field as a string (Databunker's `GetStringValue`: numbers become their
/// integer string).
pub fn string_field(m: &Map<String, Value>, key: &str) -> Option<String> {
    match m.get(key)? {
        Value::String(s) if !s.trim().is_empty() => Some(s.trim().to_string()),
        Value::Number(n) => Some(n.as_f64().map_or_else(|| n.to_string(), |f| format!("{}", f as i64))),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_follow_databunker() {
        let now = 1_700_000_000;
        assert_eq!(duration_secs(&json!("1m"), now), Some(31 * 86_400));
        assert_eq!(duration_secs(&json!("2h"), now), Some(7200));
        assert_eq!(duration_secs(&json!("3d"), now), Some(3 * 86_400));
        assert_eq!(duration_secs(&json!("10s"), now), Some(10));
        assert_eq!(duration_secs(&json!("10"), now), Some(10));
        assert_eq!(duration_secs(&json!(5), now), Some(5));
        assert_eq!(duration_secs(&json!(now + 60), now), Some(60));
        for bad in ["1w", "10min", "", "m", "-1", "99999999999999999999d"] {
            assert_eq!(duration_secs(&json!(bad), now), None, "{bad}");
        }
    }

    #[test]
    fn wire_paths_exclude_operator_routes() {
        assert!(is_wire_path("/v1/user") && is_wire_path("/v1/sys/uiconfiguration"));
        assert!(!is_wire_path("/v1/sys/unseal") && !is_wire_path("/v1/vault/creds") && !is_wire_path("/v2/UserGet"));
    }

    #[test]
    fn identities_are_checked_per_mode() {
        assert!(matches!(Who::parse("nick", "x"), Err(Fail::Error(_, m)) if m == "bad mode"));
        assert!(matches!(Who::parse("token", "abc"), Err(Fail::Error(_, m)) if m == "bad uuid"));
        assert_eq!(Who::parse("email", " Ada@Example.COM ").unwrap().identity, "ada@example.com");
    }
}
