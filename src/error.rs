//! The one API error type. Invariant: what reaches a client is a fixed, generic message for
//! anything internal; causes (SQL, crypto) are logged, never echoed, and never contain PII.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{0}")]
    BadRequest(String),
    #[error("{0}")]
    Forbidden(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Conflict(String),
    #[error("{0}")]
    NotImplemented(String),
    #[error("{0}")]
    TooManyRequests(String),
    #[error("request body is too large")]
    PayloadTooLarge,
    #[error("request body not received in time")]
    RequestTimeout,
    /// A known path asked with a method it does not take (the router adds `Allow`).
    #[error("method not allowed")]
    MethodNotAllowed,
    /// The tenant's key-encryption key is gone from the tenant key store: it was deleted (and
    /// shredded), and this database (a backup, or a deletion that did not finish) still has rows.
    #[error("tenant has been deleted")]
    TenantDeleted,
    #[error("vault is sealed")]
    Sealed,
    #[error("{0}")]
    Unavailable(String),
    #[error("internal error")]
    Internal(#[source] anyhow::Error),
    /// Not a failure: the kept answer (JSON text) of an earlier call under the same
    /// `Idempotency-Key`, answered again (see `api::idempotency`).
    #[error("replayed")]
    Replayed(String),
}

impl Error {
    pub fn bad(msg: impl Into<String>) -> Error {
        Error::BadRequest(msg.into())
    }

    pub fn not_found(what: &str) -> Error {
        Error::NotFound(format!("{what} not found"))
    }

    pub fn denied() -> Error {
        Error::Forbidden("access denied".into())
    }

    pub fn status(&self) -> StatusCode {
        match self {
            Error::BadRequest(_) => StatusCode::BAD_REQUEST,
            Error::Forbidden(_) => StatusCode::FORBIDDEN,
            Error::NotFound(_) | Error::TenantDeleted => StatusCode::NOT_FOUND,
            Error::Conflict(_) => StatusCode::CONFLICT,
            Error::NotImplemented(_) => StatusCode::NOT_IMPLEMENTED,
            Error::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            Error::RequestTimeout => StatusCode::REQUEST_TIMEOUT,
            Error::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            Error::TooManyRequests(_) => StatusCode::TOO_MANY_REQUESTS,
            Error::Sealed | Error::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            Error::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
            Error::Replayed(_) => StatusCode::OK,
        }
    }

    /// The message a client sees.
    pub fn public_message(&self) -> String {
        self.to_string()
    }
}

impl From<sqlx::Error> for Error {
    fn from(e: sqlx::Error) -> Error {
        // Text PostgreSQL cannot store (U+0000 in text or jsonb) is bad input wherever it came
        // from (a form field, a path): request bodies are refused earlier, naming the field.
        if let sqlx::Error::Database(db) = &e {
            if matches!(db.code().as_deref(), Some("22021") | Some("22P05")) {
                return Error::bad("input contains a character that cannot be stored (NUL, \\u0000)");
            }
        }
        if crate::store::failover::is_failover(&e) {
            crate::store::failover::suspect_writer();
            tracing::warn!(error = %e, "database unavailable or read-only");
            return Error::Unavailable(DATABASE_UNAVAILABLE.into());
        }
        Error::Internal(e.into())
    }
}

impl From<crate::keys::envelope::CryptoError> for Error {
    fn from(e: crate::keys::envelope::CryptoError) -> Error {
        Error::Internal(e.into())
    }
}

impl From<serde_json::Error> for Error {
    fn from(e: serde_json::Error) -> Error {
        // Only ever raised for our own (de)serialisation of stored data; never echo content.
        Error::Internal(anyhow::anyhow!("json: {:?}", e.classify()))
    }
}

/// Maps a unique-constraint violation on one of `names` to 409 with `message`; anything else
/// stays an internal error.
pub fn on_constraint(e: sqlx::Error, names: &[(&str, &str)]) -> Error {
    if let sqlx::Error::Database(db) = &e {
        if let Some(c) = db.constraint() {
            if let Some((_, msg)) = names.iter().find(|(n, _)| *n == c) {
                return Error::Conflict((*msg).to_string());
            }
        }
    }
    e.into()
}

/// What a call hears while the database is away or read-only (a failover under way).
pub const DATABASE_UNAVAILABLE: &str = "the database is unavailable or read-only (a failover may be under way); retry shortly";

/// Seconds a client should wait before retrying a 503.
pub const RETRY_AFTER_S: &str = "2";

impl IntoResponse for Error {
    fn into_response(self) -> Response {
        if let Error::Internal(cause) = &self {
            tracing::error!(error = %format!("{cause:#}"), "internal error");
        }
        if let Error::Replayed(answer) = self {
            let h = [
                (axum::http::header::CONTENT_TYPE, "application/json"),
                (axum::http::HeaderName::from_static(crate::api::idempotency::REPLAYED_HEADER), "true"),
            ];
            return (StatusCode::OK, h, answer).into_response();
        }
        let body = json!({"status": "error", "message": self.public_message()});
        let mut res = (self.status(), Json(body)).into_response();
        if let Error::Unavailable(_) = self {
            res.headers_mut().insert(axum::http::header::RETRY_AFTER, axum::http::HeaderValue::from_static(RETRY_AFTER_S));
        }
        res
    }
}
