//! Time settings of the wire API (`slidingtime`, `finaltime`, `ttl`, `starttime`): a duration
//! such as `45s`, `30m`, `12h`, `30d`, `2w`, `1y`, a plain number of seconds, or a unix time (a
//! plain number from 1,000,000,000 on). One parser for every family.

use serde_json::Value;

use crate::error::{Error, Result};

/// Plain numbers from here on are unix times, below it seconds.
pub const UNIX_TIME_FROM: i64 = 1_000_000_000;
/// Latest unix time accepted (the end of year 9999).
pub const MAX_UNIX: i64 = 253_402_300_799;
/// Longest duration accepted (100 years).
pub const MAX_SECS: i64 = 100 * 366 * 86_400;

/// A time setting: a duration from now, or a point in time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum When {
    In(i64),
    At(i64),
}

impl When {
    /// The unix time this setting names, counted from `now` for a duration.
    pub fn resolve(self, now: i64) -> i64 {
        match self {
            When::In(secs) => now + secs,
            When::At(t) => t,
        }
    }
}

/// Parses a time setting; absent, null or "" is `None`; zero, negative, fractional or unknown
/// units are a 400 naming `field`.
pub fn parse_when(field: &str, v: &Option<Value>) -> Result<Option<When>> {
    let bad = || Error::bad(format!("{field} must be a duration such as 30m, 1h, 30d, 1y, a number of seconds, or a unix time"));
    let text = match v {
        None | Some(Value::Null) => return Ok(None),
        Some(Value::String(s)) if s.trim().is_empty() => return Ok(None),
        Some(Value::String(s)) => s.trim().to_ascii_lowercase(),
        Some(Value::Number(n)) => n.as_i64().ok_or_else(bad)?.to_string(),
        Some(_) => return Err(bad()),
    };
    let (digits, unit) = match text.find(|c: char| !c.is_ascii_digit()) {
        Some(i) => text.split_at(i),
        None => (text.as_str(), ""),
    };
    let n: i64 = digits.parse().map_err(|_| bad())?;
    let scale = match unit {
        "" if n >= UNIX_TIME_FROM => return if n <= MAX_UNIX { Ok(Some(When::At(n))) } else { Err(bad()) },
        "" | "s" => 1,
        "m" => 60,
        "h" => 3_600,
        "d" => 86_400,
        "w" => 604_800,
        "y" => 365 * 86_400,
        _ => return Err(bad()),
    };
    let secs = n.checked_mul(scale).filter(|s| *s > 0 && *s <= MAX_SECS).ok_or_else(bad)?;
    Ok(Some(When::In(secs)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn when(v: Value) -> Result<Option<When>> {
        parse_when("slidingtime", &Some(v))
    }

    #[test]
    fn durations_seconds_and_unix_times_parse() {
        assert_eq!(when(json!("30m")).unwrap(), Some(When::In(1_800)));
        assert_eq!(when(json!("1h")).unwrap(), Some(When::In(3_600)));
        assert_eq!(when(json!("1D")).unwrap(), Some(When::In(86_400)));
        assert_eq!(when(json!("2w")).unwrap(), Some(When::In(1_209_600)));
        assert_eq!(when(json!("1y")).unwrap(), Some(When::In(31_536_000)));
        assert_eq!(when(json!("3600")).unwrap(), Some(When::In(3_600)));
        assert_eq!(when(json!(45)).unwrap(), Some(When::In(45)));
        assert_eq!(when(json!("2000000000")).unwrap(), Some(When::At(2_000_000_000)));
        assert_eq!(When::In(10).resolve(100), 110);
        assert_eq!(when(json!("")).unwrap(), None);
        assert_eq!(when(Value::Null).unwrap(), None);
        for bad in [json!("h"), json!("-5m"), json!("0"), json!(1.5), json!(true), json!("9999999999999999d"), json!("5x")] {
            assert!(when(bad.clone()).is_err(), "{bad}");
        }
    }
}
