//! CORS for the wire API, so a browser app on another origin can call the vault with the
//! vendor's SDKs. Credentials travel in `X-Bunker-Token`, never in cookies, so allowing an
//! origin hands it nothing it did not already hold. Only the wire APIs (`/v2/`, and Databunker's
//! v1 routes) get these headers: the portal (cookie sessions) and the operator routes under
//! `/v1/sys/` and `/v1/vault/` never do.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::header::{
    ACCESS_CONTROL_ALLOW_HEADERS, ACCESS_CONTROL_ALLOW_METHODS, ACCESS_CONTROL_ALLOW_ORIGIN, ACCESS_CONTROL_MAX_AGE,
    ACCESS_CONTROL_REQUEST_METHOD, ORIGIN, VARY,
};
use axum::http::{HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::config::CorsOrigins;
use crate::error::Error;

/// The methods and headers the SDKs use.
const METHODS: &str = "GET, POST, PUT, DELETE";
const HEADERS: &str = "x-bunker-token, x-bunker-tenant, content-type";
/// How long a browser may cache a preflight answer, in seconds.
const MAX_AGE: &str = "600";

/// Whether CORS applies to a path.
fn covered(path: &str) -> bool {
    path.starts_with("/v2/") || crate::v1::is_wire_path(path)
}

/// The `Access-Control-Allow-Origin` a request from `origin` gets; `None`: not allowed.
fn allowed(origins: &CorsOrigins, origin: Option<&HeaderValue>) -> Option<HeaderValue> {
    match origins {
        CorsOrigins::Off => None,
        CorsOrigins::Any => Some(HeaderValue::from_static("*")),
        CorsOrigins::List(list) => origin.filter(|o| o.to_str().is_ok_and(|o| list.iter().any(|l| l == o))).cloned(),
    }
}

/// Answers preflights of `/v2/` (204, or 403 for an origin not listed) and adds the allowed
/// origin to every other `/v2/` answer.
pub async fn cors(State(origins): State<Arc<CorsOrigins>>, req: Request, next: Next) -> Response {
    if *origins == CorsOrigins::Off || !covered(req.uri().path()) {
        return next.run(req).await;
    }
    let origin = req.headers().get(ORIGIN).cloned();
    let allow = allowed(&origins, origin.as_ref());
    let preflight = req.method() == Method::OPTIONS && req.headers().contains_key(ACCESS_CONTROL_REQUEST_METHOD);
    let mut res = if preflight {
        match &allow {
            Some(_) => {
                let mut r = StatusCode::NO_CONTENT.into_response();
                let h = r.headers_mut();
                h.insert(ACCESS_CONTROL_ALLOW_METHODS, HeaderValue::from_static(METHODS));
                h.insert(ACCESS_CONTROL_ALLOW_HEADERS, HeaderValue::from_static(HEADERS));
                h.insert(ACCESS_CONTROL_MAX_AGE, HeaderValue::from_static(MAX_AGE));
                r
            }
            None => Error::Forbidden("this origin may not call the API (STRONGROOM_CORS_ORIGINS)".into()).into_response(),
        }
    } else {
        next.run(req).await
    };
    let h = res.headers_mut();
    if let Some(a) = allow {
        h.insert(ACCESS_CONTROL_ALLOW_ORIGIN, a);
    }
    // A listed origin is echoed: caches must keep answers per Origin.
    if matches!(*origins, CorsOrigins::List(_)) {
        h.append(VARY, HeaderValue::from_static("origin"));
    }
    res
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_listed_origins_are_echoed() {
        let list = CorsOrigins::List(vec!["https://app.example.com".into()]);
        let o = |s: &'static str| HeaderValue::from_static(s);
        assert_eq!(allowed(&list, Some(&o("https://app.example.com"))), Some(o("https://app.example.com")));
        assert_eq!(allowed(&list, Some(&o("https://app.example.com.evil.example"))), None);
        assert_eq!(allowed(&list, None), None);
        assert_eq!(allowed(&CorsOrigins::Any, None), Some(o("*")));
        assert!(covered("/v2/UserGet") && !covered("/portal/") && !covered("/v1/sys/unseal"));
    }
}
