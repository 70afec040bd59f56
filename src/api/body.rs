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
            } else if timed_out(&r) {
                Error::RequestTimeout
            } else {
                Error::bad("could not read request body")
            }
        })?;
        parse(&bytes).map(Body)
    }
}

/// Whether reading the body failed because the client did not send it in time (the body
/// timeout of `app::router`).
fn timed_out(r: &axum::extract::rejection::BytesRejection) -> bool {
    let mut cause: Option<&(dyn std::error::Error + 'static)> = Some(r);
    while let Some(e) = cause {
        if e.is::<tower_http::timeout::TimeoutError>() {
            return true;
        }
        cause = e.source();
    }
    false
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
    // JSON is UTF-8 (RFC 8259); serde_json would not check a value it skips (an unknown field).
    let text = std::str::from_utf8(bytes).map_err(|_| Error::bad("request body is not valid UTF-8"))?;
    reject_nul(bytes)?;
    let mut de = serde_json::Deserializer::from_str(text);
    let value = serde_path_to_error::deserialize(&mut de).map_err(|e| describe(&e))?;
    // Anything after the object (a second value, a stray brace) makes the whole body malformed.
    de.end().map_err(|e| Error::bad(format!("malformed JSON body at line {} column {}", e.line(), e.column())))?;
    Ok(value)
}

/// How deep a body may nest (serde_json's own limit for what it parses; applied here to the
/// parts it would skip, too).
pub const MAX_DEPTH: usize = 128;

/// What one pass over a body's bytes finds: nesting deeper than [`MAX_DEPTH`], and whether a
/// string holds the escape `\\u0000` (raw control bytes are not valid JSON, so a NUL can only
/// arrive escaped).
fn scan(bytes: &[u8]) -> (bool, bool) {
    let (mut depth, mut in_string, mut escaped, mut nul) = (0usize, false, false, false);
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        if in_string {
            if escaped {
                escaped = false;
                if b == b'u' && bytes[i + 1..].starts_with(b"0000") {
                    nul = true;
                }
            } else if b == b'\\' {
                escaped = true;
            } else if b == b'"' {
                in_string = false;
            }
        } else {
            match b {
                b'"' => in_string = true,
                b'{' | b'[' => {
                    depth += 1;
                    if depth > MAX_DEPTH {
                        return (true, nul);
                    }
                }
                b'}' | b']' => depth = depth.saturating_sub(1),
                _ => {}
            }
        }
        i += 1;
    }
    (false, nul)
}

/// PostgreSQL cannot store the character U+0000 in text or jsonb: a body holding one outside
/// the parts that are only ever stored encrypted (see [`OPAQUE`]) is refused, naming the field
/// (or key) that holds it; so is a body nested deeper than [`MAX_DEPTH`]. Only a body that holds
/// the escape is parsed again to find where.
pub fn reject_nul(bytes: &[u8]) -> Result<(), Error> {
    let (too_deep, nul) = scan(bytes);
    if too_deep {
        return Err(Error::bad(format!("request body is nested too deeply (more than {MAX_DEPTH} levels)")));
    }
    if !nul {
        return Ok(());
    }
    let Ok(v) = serde_json::from_slice::<Value>(bytes) else { return Ok(()) };
    let mut found = Vec::new();
    nul_paths(&v, &mut Vec::new(), &mut found);
    match found.into_iter().find(|p| !is_opaque(p)) {
        Some(path) => Err(Error::bad(format!("field `{}` contains a NUL character (\\u0000), which cannot be stored", render(&path)))),
        None => Ok(()),
    }
}

/// One step of a path into a body.
#[derive(Debug, Clone, PartialEq)]
enum Step {
    Key(String),
    Index(usize),
}

/// Fields whose content is only ever stored encrypted (profiles, app data, session data, patch
/// values): a NUL there is data like any other character and round-trips exactly.
const OPAQUE: &[&[&str]] = &[&["profile"], &["appdata"], &["sessiondata"], &["records", "#", "profile"], &["patch", "#", "value"]];

fn is_opaque(path: &[Step]) -> bool {
    OPAQUE.iter().any(|prefix| {
        path.len() >= prefix.len()
            && prefix.iter().zip(path).all(|(want, step)| match step {
                Step::Key(k) => k == want,
                Step::Index(_) => *want == "#",
            })
    })
}

fn render(path: &[Step]) -> String {
    let mut out = String::new();
    for step in path {
        match step {
            Step::Key(k) => {
                if !out.is_empty() {
                    out.push('.');
                }
                out.push_str(&k.replace('\0', "\\u0000"));
            }
            Step::Index(i) => out.push_str(&format!("[{i}]")),
        }
    }
    out
}

/// Every path to a string holding U+0000, and to a key holding one (the key's own path).
fn nul_paths(v: &Value, here: &mut Vec<Step>, out: &mut Vec<Vec<Step>>) {
    match v {
        Value::String(s) if s.contains('\0') => out.push(here.clone()),
        Value::Array(a) => {
            for (i, x) in a.iter().enumerate() {
                here.push(Step::Index(i));
                nul_paths(x, here, out);
                here.pop();
            }
        }
        Value::Object(o) => {
            for (k, x) in o {
                here.push(Step::Key(k.clone()));
                if k.contains('\0') {
                    // A key is a step of its own: a NUL in a profile's key is data too.
                    out.push(here.clone());
                }
                nul_paths(x, here, out);
                here.pop();
            }
        }
        _ => {}
    }
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

/// A boolean that some clients send as a string ("true") or a number (1).
pub fn bool_or_string<'de, D: Deserializer<'de>>(d: D) -> Result<Option<bool>, D::Error> {
    match Option::<Value>::deserialize(d)? {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Bool(b)) => Ok(Some(b)),
        Some(Value::Number(n)) if n.as_i64() == Some(0) => Ok(Some(false)),
        Some(Value::Number(n)) if n.as_i64() == Some(1) => Ok(Some(true)),
        Some(Value::String(s)) => match s.trim().to_ascii_lowercase().as_str() {
            "" => Ok(None),
            "true" | "1" | "yes" => Ok(Some(true)),
            "false" | "0" | "no" => Ok(Some(false)),
            _ => Err(serde::de::Error::custom("expected a boolean")),
        },
        Some(_) => Err(serde::de::Error::custom("expected a boolean")),
    }
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
    fn a_nul_character_is_refused_naming_its_field_but_kept_inside_encrypted_data() {
        assert_eq!(msg(parse(br#"{"mode":"a\u0000b"}"#)), "field `mode` contains a NUL character (\\u0000), which cannot be stored");
        let m = parse::<Value>(br#"{"records":[{"profile":{"a":"\u0000"},"groupname":"g\u0000"}]}"#).unwrap_err().to_string();
        assert_eq!(m, "field `records[0].groupname` contains a NUL character (\\u0000), which cannot be stored");
        let m = parse::<Value>(br#"{"pro\u0000file":1}"#).unwrap_err().to_string();
        assert!(m.contains("field `pro\\u0000file`"), "{m}");
        // Inside what is stored only encrypted, NUL is data.
        let v: Value = parse(
            br#"{"mode":"token","profile":{"name":"a\u0000b","k\u0000":[1,"\u0000"]},"patch":[{"op":"add","path":"/x","value":"\u0000"}]}"#,
        )
        .unwrap();
        assert_eq!(v["profile"]["name"], "a\0b");
        // `\\u0000` is a backslash followed by the text u0000: storable.
        let v: Value = parse(br#"{"mode":"a\\u0000b"}"#).unwrap();
        assert_eq!(v["mode"], "a\\u0000b");
        // Deeper than serde_json parses, even where nothing reads it.
        let deep = format!(r#"{{"ignored":{}{}}}"#, "[".repeat(129), "]".repeat(129));
        assert!(parse::<Value>(deep.as_bytes()).unwrap_err().to_string().contains("nested too deeply"));
        let fine = format!(r#"{{"ok":{}{}}}"#, "[".repeat(100), "]".repeat(100));
        assert!(parse::<Value>(fine.as_bytes()).is_ok());
        // Two escaped backslashes, then a real escape: refused.
        assert!(parse::<Value>(br#"{"mode":"a\\\\\u0000b"}"#).unwrap_err().to_string().contains("NUL"));
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
