//! The v2 API called in-process, for the surfaces built on it (the portal, the v1 wire API):
//! every call goes through the same router, so credentials, casbin, masking, rate limits and
//! audit apply exactly as to an HTTP client.

use std::net::SocketAddr;

use axum::extract::{FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{header, StatusCode};
use axum::Router;
use serde_json::Value;
use tower::ServiceExt;

use crate::auth::ratelimit::ClientAddr;

/// The in-process v2 router (with its state).
#[derive(Clone)]
pub struct Api(pub Router);

/// The caller's address, for rate limits and lock-outs.
pub struct Peer(pub Option<SocketAddr>);

impl<S: Send + Sync> FromRequestParts<S> for Peer {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Peer, Self::Rejection> {
        Ok(Peer(parts.extensions.get::<axum::extract::ConnectInfo<ClientAddr>>().map(|c| c.0 .0)))
    }
}

impl Peer {
    pub fn ip(&self) -> std::net::IpAddr {
        self.0.map_or(std::net::IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED), |a| a.ip())
    }
}

/// Calls a v2 endpoint in-process with `token` (none: anonymous) in `tenant`; the caller's
/// address goes along so lock-outs and rates apply as to any client. Returns the status and the
/// JSON answer.
pub async fn call(api: &Api, peer: &Peer, tenant: &str, token: Option<&str>, endpoint: &str, body: Value) -> (StatusCode, Value) {
    let mut req = Request::post(format!("/v2/{endpoint}"))
        .header(header::CONTENT_TYPE, "application/json")
        .header(crate::auth::TENANT_HEADER, tenant);
    if let Some(token) = token {
        req = req.header(crate::auth::TOKEN_HEADER, token);
    }
    let mut req = req.body(axum::body::Body::from(body.to_string())).unwrap_or_default();
    if let Some(addr) = peer.0 {
        req.extensions_mut().insert(axum::extract::ConnectInfo(ClientAddr(addr)));
    }
    let res = match api.0.clone().oneshot(req).await {
        Ok(r) => r,
        Err(never) => match never {},
    };
    let status = res.status();
    let bytes = axum::body::to_bytes(res.into_body(), 64 * 1024 * 1024).await.unwrap_or_default();
    (status, serde_json::from_slice(&bytes).unwrap_or(Value::Null))
}
