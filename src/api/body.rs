//! JSON request bodies. Invariant: every malformed body is answered in the API's error shape,
//! and error messages name the offending field but never echo its value (it may be PII).

use axum::body::Bytes;
use axum::extract::{FromRequest, Request};
use serde::de::{DeserializeOwned, Deserializer};
use serde::Deserialize;
use serde_json::Value;

use crate::error::Error;

/// A JSON body; an empty body reads as `{}` (clients send none for argument-less calls).
pub struct Body<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for Body<T> {
    type Rejection = Error;

    async fn from_request(req: Request, state: &S) -> Result<Self, Error> {
        let bytes = Bytes::from_request(req, state).await.map_err(|r| {
            if r.status() == axum::http::StatusCode::PAYLOAD_TOO_LARGE {
                Error::PayloadTooLarge
            } else {
                Error::bad("could not read request body")
            }
        })?;
        parse(&bytes).map(Body)
    }
}

pub fn parse<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, Error> {
    let first = bytes.iter().find(|b| !b.is_ascii_whitespace());
    let bytes: &[u8] = match first {
        None => b"{}",
        Some(b'{') => bytes,
        Some(b'[') | Some(b'"') | Some(b't') | Some(b'f') | Some(b'n') | Some(b'-') | Some(b'0'..=b'9') => {
            return Err(Error::bad("request body must be a JSON object"))
        }
        Some(_) => bytes,
    };
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let value = serde_path_to_error::deserialize(&mut de).map_err(|e| describe(&e))?;
    // Anything after the object (a second value, a stray brace) makes the whole body malformed.
    de.end().map_err(|e| Error::bad(format!("malformed JSON body at line {} column {}", e.line(), e.column())))?;
    Ok(value)
}

fn describe(e: &serde_path_to_error::Error<serde_json::Error>) -> Error {
    let inner = e.inner();
    match inner.classify() {
        serde_json::error::Category::Syntax | serde_json::error::Category::Eof | serde_json::error::Category::Io => {
            Error::bad(format!("malformed JSON body at line {} column {}", inner.line(), inner.column()))
        }
        serde_json::error::Category::Data => {
            let msg = inner.to_string();
            let path = e.path().to_string();
            if let Some(rest) = msg.strip_prefix("missing field ") {
                let field = rest.split(" at line").next().unwrap_or(rest);
                Error::bad(format!("missing field {field}"))
            } else if let Some(rest) = msg.strip_prefix("duplicate field ") {
                let field = rest.split(" at line").next().unwrap_or(rest);
                Error::bad(format!("duplicate field {field}"))
            } else if path == "." {
                Error::bad("request body must be a JSON object")
            } else {
                Error::bad(format!("invalid value for field `{path}`"))
            }
        }
    }
}

/// `request_metadata`: a free-form object recorded in the audit trail.
#[derive(Debug, Default, Clone)]
pub struct Metadata(pub Option<Value>);

impl<'de> Deserialize<'de> for Metadata {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        match Option::<Value>::deserialize(d)? {
            None | Some(Value::Null) => Ok(Metadata(None)),
            Some(v @ Value::Object(_)) => Ok(Metadata(Some(v))),
            Some(_) => Err(serde::de::Error::custom("request_metadata must be an object")),
        }
    }
}

/// A request naming one user, and nothing else (`{mode, identity}`).
#[derive(Deserialize)]
pub struct UserLookup {
    pub mode: String,
    pub identity: String,
    #[serde(default)]
    pub request_metadata: Metadata,
}

/// A request with no arguments of its own.
#[derive(Deserialize)]
pub struct NoArgs {
    #[serde(default)]
    pub request_metadata: Metadata,
}

/// An integer that some clients send as a JSON string ("5").
pub fn int_or_string<'de, D: Deserializer<'de>>(d: D) -> Result<Option<i64>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum IntOrString {
        Int(i64),
        Str(String),
    }
    match Option::<IntOrString>::deserialize(d)? {
        None => Ok(None),
        Some(IntOrString::Int(i)) => Ok(Some(i)),
        Some(IntOrString::Str(s)) if s.trim().is_empty() => Ok(None),
        Some(IntOrString::Str(s)) => s.trim().parse().map(Some).map_err(|_| serde::de::Error::custom("expected an integer")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Deserialize, Debug)]
    #[allow(dead_code)]
    struct Req {
        mode: String,
        #[serde(default, deserialize_with = "int_or_string")]
        version: Option<i64>,
        #[serde(default)]
        request_metadata: Metadata,
    }

    fn msg(r: Result<Req, Error>) -> String {
        r.unwrap_err().to_string()
    }

    #[test]
    fn bad_bodies_get_field_level_messages_without_values() {
        assert_eq!(msg(parse(b"{\"mode\":")), "malformed JSON body at line 1 column 8");
        assert_eq!(msg(parse(b"{}")), "missing field `mode`");
        assert_eq!(msg(parse(b"")), "missing field `mode`");
        let m = msg(parse(b"{\"mode\": 5}"));
        assert_eq!(m, "invalid value for field `mode`");
        let m = msg(parse(b"{\"mode\":\"x\",\"version\":\"secret-value\"}"));
        assert!(!m.contains("secret-value"), "{m}");
        assert_eq!(msg(parse(b"[1,2]")), "request body must be a JSON object");
        assert!(msg(parse(b"{\"mode\":\"x\",\"request_metadata\":3}")).contains("request_metadata"));
    }

    #[test]
    fn integers_may_arrive_as_strings() {
        let r: Req = parse(b"{\"mode\":\"x\",\"version\":\"7\"}").unwrap();
        assert_eq!(r.version, Some(7));
        let r: Req = parse(b"{\"mode\":\"x\",\"version\":3,\"request_metadata\":{\"purpose\":\"kyc\"}}").unwrap();
        assert_eq!(r.version, Some(3));
        assert!(r.request_metadata.0.is_some());
    }
}
