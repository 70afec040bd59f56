//! The privacy portal: server-rendered pages under `/portal/` where data subjects sign in with a
//! one-time code and see and control their own record, and where a DPO decides user requests.
//!
//! Invariants:
//! - No script at all, nothing fetched from elsewhere: the CSP is `default-src 'none'` with the
//!   one stylesheet served from the binary; every interpolated value is escaped by `maud`.
//! - No personal data in URLs (identities and profile values travel only in POST bodies) or logs.
//! - Every POST carries a CSRF token: an HMAC, under a key derived from the master key, of the
//!   cookie the browser holds (the session cookie, or a random pre-session cookie); cookies are
//!   HttpOnly, SameSite=Strict and (unless configured off for plain-HTTP demos) Secure with the
//!   `__Secure-` prefix. A foreign `Origin` or a cross-site `Sec-Fetch-Site` is refused too.
//! - The portal has no data access of its own beyond sign-in: it calls the v2 API in-process
//!   with the signed-in person's own lease token (role `user-self` for a data subject, `dpo` for
//!   the console), so the API's casbin policy, own-record checks, masking and audit apply
//!   unchanged. No request parameter names whose data is shown: that comes from the session.

mod dpo;
mod page;
pub mod signin;
pub mod text;
mod user;

use axum::http::header::{self, HeaderMap, HeaderValue};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Extension, Router};
use serde_json::Value;

use crate::app::AppState;
use crate::error::Error;
use crate::keys::keyring::Keyring;
use text::{t, tf, Msg};

pub use signin::Outbox;

pub use crate::api::inprocess::{self, Api, Peer};

pub fn routes(api: Router) -> Router<AppState> {
    Router::new()
        .route("/portal", get(|| async { Redirect::permanent("/portal/") }))
        .route("/portal/", get(signin::start))
        // A reload of the code page is a GET of the form's target: back to the start.
        .route("/portal/signin", post(signin::send_code).get(|| async { Redirect::to("/portal/") }))
        .route("/portal/verify", post(signin::verify).get(|| async { Redirect::to("/portal/") }))
        .route("/portal/signout", post(user::sign_out))
        .route("/portal/demo/outbox", get(signin::outbox))
        .route("/portal/me", get(user::profile))
        .route("/portal/me/profile", post(user::edit_profile))
        .route("/portal/me/apps", get(user::apps))
        .route("/portal/me/consents", get(user::consents))
        .route("/portal/me/consents/withdraw", post(user::withdraw))
        .route("/portal/me/sessions", get(user::sessions))
        .route("/portal/me/activity", get(user::activity))
        .route("/portal/me/export", get(user::export_page).post(user::export))
        .route("/portal/me/forget", get(user::forget_page).post(user::forget))
        .route("/portal/dpo", get(dpo::home))
        .route("/portal/dpo/signin", post(dpo::sign_in))
        .route("/portal/dpo/signout", post(dpo::sign_out))
        .route("/portal/dpo/requests/{uuid}", get(dpo::request))
        .route("/portal/dpo/requests/{uuid}/decide", post(dpo::decide))
        .route("/portal/static/portal.css", get(stylesheet))
        .layer(Extension(Api(api)))
        .layer(axum::middleware::from_fn(text::scoped))
        .layer(axum::middleware::map_response(security_headers))
}

/// Whether a path is the portal's (its unknown addresses and wrong methods get pages too).
pub fn is_portal_path(path: &str) -> bool {
    path == "/portal" || path.starts_with("/portal/")
}

/// The page for an address no route takes (`wrong_method`: the path exists, not for this
/// method): a portal page in the browser's language, with the portal's headers.
pub async fn no_such_page(headers: &HeaderMap, wrong_method: bool) -> Response {
    let fail = text::with_lang(text::Lang::from_headers(headers), async {
        if wrong_method {
            Fail::new(StatusCode::METHOD_NOT_ALLOWED, t(Msg::WrongMethod)).into_response()
        } else {
            Fail::new(StatusCode::NOT_FOUND, t(Msg::NoSuchPage)).into_response()
        }
    });
    security_headers(fail.await).await
}

/// The documents the vault serves at `/docs/<name>`, compiled in (plain Markdown text).
const DOCS: &[(&str, &str)] = &[
    ("README.md", include_str!("../../README.md")),
    ("operations.md", include_str!("../../docs/operations.md")),
    ("vault-plugin.md", include_str!("../../docs/vault-plugin.md")),
];

/// GET /docs/{name}: one of [`DOCS`] as text.
pub async fn doc(axum::extract::Path(name): axum::extract::Path<String>, headers: HeaderMap) -> Response {
    match DOCS.iter().find(|(n, _)| *n == name) {
        Some((_, body)) => {
            security_headers(
                ([(header::CONTENT_TYPE, "text/plain; charset=utf-8"), (header::CACHE_CONTROL, "public, max-age=3600")], *body)
                    .into_response(),
            )
            .await
        }
        None => no_such_page(&headers, false).await,
    }
}

/// GET /: what a browser opening the vault's address sees: where the portal, health and docs are.
pub async fn landing(headers: HeaderMap) -> Response {
    let page = text::with_lang(text::Lang::from_headers(&headers), async {
        let body = maud::html! {
            div.landing {
                p { (t(Msg::LandingIntro)) }
                ul {
                    li { a href="/portal/" { (t(Msg::LandingPortal)) } }
                    li { a href="/v1/sys/health" { (t(Msg::LandingHealth)) } }
                    li { (t(Msg::LandingDocs)) ": "
                        @for (i, (name, _)) in DOCS.iter().enumerate() {
                            @if i > 0 { ", " }
                            a href=(format!("/docs/{name}")) { (name) }
                        }
                    }
                }
            }
        };
        page::render(t(Msg::TitleLanding), None, body)
    });
    security_headers(page.await).await
}

async fn stylesheet() -> Response {
    ([(header::CONTENT_TYPE, "text/css; charset=utf-8"), (header::CACHE_CONTROL, "public, max-age=3600")], page::CSS).into_response()
}

pub(crate) const CSP: &str =
    "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

async fn security_headers(mut res: Response) -> Response {
    let h = res.headers_mut();
    // A page showing its organisation's logo widened `img-src` to that one origin.
    if !h.contains_key(header::CONTENT_SECURITY_POLICY) {
        h.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(CSP));
    }
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    h.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    h.insert("cross-origin-opener-policy", HeaderValue::from_static("same-origin"));
    h.insert("permissions-policy", HeaderValue::from_static("camera=(), microphone=(), geolocation=()"));
    if !h.contains_key(header::CACHE_CONTROL) {
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    res
}

/// A refused or failed portal request, rendered as a page with a status code.
#[derive(Debug)]
pub struct Fail {
    status: StatusCode,
    message: String,
}

impl Fail {
    pub fn new(status: StatusCode, message: impl Into<String>) -> Fail {
        Fail { status, message: message.into() }
    }

    fn forbidden(message: &str) -> Fail {
        Fail::new(StatusCode::FORBIDDEN, message)
    }
}

impl From<Error> for Fail {
    fn from(e: Error) -> Fail {
        let status = e.status();
        let message = match &e {
            Error::Internal(err) => {
                tracing::error!(error = %err, "portal request failed");
                t(Msg::Internal).to_string()
            }
            Error::Sealed => t(Msg::Sealed).to_string(),
            Error::Unavailable(_) => t(Msg::Unavailable).to_string(),
            other => for_status(status, &other.to_string()),
        };
        Fail { status, message }
    }
}

/// The person's words for a refused call: a sentence per status, the vault's own reason only
/// where it is about their input.
fn for_status(status: StatusCode, message: &str) -> String {
    match status {
        StatusCode::BAD_REQUEST | StatusCode::UNPROCESSABLE_ENTITY | StatusCode::PAYLOAD_TOO_LARGE => {
            tf(Msg::ApiBad, &[message.trim_end_matches('.')])
        }
        StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => t(Msg::ApiForbidden).into(),
        StatusCode::NOT_FOUND | StatusCode::GONE => t(Msg::ApiNotFound).into(),
        StatusCode::CONFLICT | StatusCode::PRECONDITION_FAILED => t(Msg::ApiConflict).into(),
        StatusCode::TOO_MANY_REQUESTS => t(Msg::ApiTooMany).into(),
        StatusCode::SERVICE_UNAVAILABLE => t(Msg::Unavailable).into(),
        _ => t(Msg::Internal).into(),
    }
}

impl From<sqlx::Error> for Fail {
    fn from(e: sqlx::Error) -> Fail {
        Fail::from(Error::from(e))
    }
}

impl IntoResponse for Fail {
    fn into_response(self) -> Response {
        let title = t(match self.status {
            StatusCode::TOO_MANY_REQUESTS => Msg::TitleTooMany,
            StatusCode::FORBIDDEN => Msg::TitleNotAllowed,
            StatusCode::NOT_FOUND => Msg::TitleNotFound,
            StatusCode::METHOD_NOT_ALLOWED => Msg::TitleWrongMethod,
            s if s.is_client_error() => Msg::TitleCheckInput,
            _ => Msg::TitleUnavailable,
        });
        let body = maud::html! {
            p role="alert" { (self.message) }
            p { a href="/portal/" { (t(Msg::BackToPortal)) } }
        };
        (self.status, page::render(title, None, body)).into_response()
    }
}

pub type Page = Result<Response, Fail>;

/// Calls a v2 endpoint in-process with `token` in `tenant` (see [`inprocess::call`]).
pub async fn call_api(api: &Api, peer: &Peer, tenant: &str, token: &str, endpoint: &str, body: Value) -> (StatusCode, Value) {
    inprocess::call(api, peer, tenant, Some(token), endpoint, body).await
}

/// The API's answer as a page failure unless it succeeded.
pub fn api_ok((status, v): (StatusCode, Value)) -> Result<Value, Fail> {
    if status.is_success() {
        return Ok(v);
    }
    let message = v.get("message").and_then(Value::as_str).unwrap_or_default();
    Err(Fail::new(status, for_status(status, message)))
}

// ---- cookies and CSRF ----

pub const SESSION_COOKIE: &str = "sr_session";
pub const DPO_COOKIE: &str = "sr_dpo";
pub const PRE_COOKIE: &str = "sr_pre";

/// A cookie's name: with Secure cookies (the default), the `__Secure-` prefix, which browsers
/// accept only on cookies set Secure over HTTPS.
pub fn cookie_name(st: &AppState, base: &str) -> String {
    if st.config().portal_secure_cookies {
        format!("__Secure-{base}")
    } else {
        base.to_string()
    }
}

pub fn cookie<'a>(st: &AppState, headers: &'a HeaderMap, base: &str) -> Option<&'a str> {
    let name = cookie_name(st, base);
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
        .filter(|v| !v.is_empty())
}

/// Cookies are HttpOnly, SameSite=Strict, limited to /portal, and Secure unless
/// `STRONGROOM_PORTAL_COOKIE_SECURE=false` (the demo, served over plain HTTP on loopback).
pub fn set_cookie(st: &AppState, base: &str, value: &str, max_age: i64) -> (header::HeaderName, HeaderValue) {
    let secure = if st.config().portal_secure_cookies { "; Secure" } else { "" };
    let v = format!("{}={value}; Path=/portal; Max-Age={max_age}; HttpOnly; SameSite=Strict{secure}", cookie_name(st, base));
    (header::SET_COOKIE, HeaderValue::from_str(&v).expect("cookie values are URL-safe"))
}

pub fn clear_cookie(st: &AppState, base: &str) -> (header::HeaderName, HeaderValue) {
    set_cookie(st, base, "", 0)
}

/// The CSRF token of forms shown to the holder of cookie value `binding`.
pub fn csrf_token(ring: &Keyring, binding: &str) -> String {
    let key = ring.derived("portal-csrf");
    hex::encode(crate::keys::blind::keyed_digest(&key, "csrf", binding.as_bytes()))
}

/// Refuses a POST whose CSRF field does not match the cookie it is bound to, or that comes from
/// another origin.
pub fn check_csrf(ring: &Keyring, headers: &HeaderMap, binding: Option<&str>, presented: &str) -> Result<(), Fail> {
    use subtle::ConstantTimeEq;
    let cross_site = || Fail::forbidden(t(Msg::CrossSite));
    if headers.get("sec-fetch-site").is_some_and(|v| v.as_bytes() == b"cross-site" || v.as_bytes() == b"same-site") {
        return Err(cross_site());
    }
    // `Origin: null` is what browsers send for our own forms under `Referrer-Policy: no-referrer`,
    // so it cannot be refused; the token and Sec-Fetch-Site still hold.
    if let Some(origin) = headers.get(header::ORIGIN).and_then(|v| v.to_str().ok()).filter(|o| *o != "null") {
        let origin_host = origin.split_once("://").map_or(origin, |(_, h)| h);
        if headers.get(header::HOST).is_none_or(|host| origin_host.as_bytes() != host.as_bytes()) {
            return Err(cross_site());
        }
    }
    let refused = || Fail::forbidden(t(Msg::FormExpired));
    let binding = binding.ok_or_else(refused)?;
    let expected = csrf_token(ring, binding);
    if presented.len() == expected.len() && bool::from(expected.as_bytes().ct_eq(presented.as_bytes())) {
        Ok(())
    } else {
        Err(refused())
    }
}

/// Refuses a sign-in form (before any session) not bound to this browser's pre-session cookie.
pub fn check_pre_form(st: &AppState, ring: &Keyring, headers: &HeaderMap, presented: &str) -> Result<(), Fail> {
    check_csrf(ring, headers, cookie(st, headers, PRE_COOKIE), presented)
}

/// A sign-in page, with the pre-session cookie its forms are bound to when the browser is new.
pub fn with_pre_cookie(st: &AppState, mut res: Response, pre: &str, new: bool) -> Response {
    if new {
        let (k, v) = set_cookie(st, PRE_COOKIE, pre, 3600);
        res.headers_mut().append(k, v);
    }
    res
}

/// A form whose only field is its CSRF token.
#[derive(serde::Deserialize)]
pub struct CsrfForm {
    #[serde(default)]
    pub csrf: String,
}

/// A fresh random cookie value (64 hex digits).
pub fn random_value() -> String {
    let mut b = [0u8; 32];
    rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut b);
    hex::encode(b)
}

/// The pre-session cookie to bind sign-in forms to: the browser's, or a new one to set.
pub fn pre_session(st: &AppState, headers: &HeaderMap) -> (String, bool) {
    match cookie(st, headers, PRE_COOKIE).filter(|v| v.len() == 64 && v.bytes().all(|b| b.is_ascii_hexdigit())) {
        Some(v) => (v.to_string(), false),
        None => (random_value(), true),
    }
}

/// The tenant a browser names through the host's subdomain, if any.
pub fn host_tenant(headers: &HeaderMap) -> Option<String> {
    headers.get(header::HOST).and_then(|h| h.to_str().ok()).and_then(crate::auth::subdomain)
}

/// Names `tenant` as the organisation of this request's pages, with its UI settings (company
/// title, logo, field labels). A tenant that does not exist is named by nothing: the page must
/// not tell whether it exists.
pub async fn name_org(st: &AppState, tenant: &str) {
    match crate::api::ui_conf::public(st, tenant).await {
        Ok(Some(ui)) => {
            text::set_org(text::Org { name: tenant.to_string(), title: ui.company_title, logo: ui.logo_link, labels: ui.field_labels })
        }
        Ok(None) => {}
        Err(e) => tracing::warn!(error = %e, "portal: reading the organisation's UI settings failed"),
    }
}

/// Tenant names as typed in a form: trimmed and lowercased, as the API's header.
pub fn tenant_name(raw: &str) -> Result<String, Fail> {
    let name = raw.trim().to_ascii_lowercase();
    if name.is_empty() || name.len() > 64 || !name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_') {
        return Err(Fail::new(StatusCode::BAD_REQUEST, t(Msg::BadOrganisation)));
    }
    Ok(name)
}
