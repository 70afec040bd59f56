//! Time settings of the wire API (`slidingtime`, `finaltime`, `ttl`, `starttime`): a duration
//! such as `45s`, `30min`, `12h`, `30d`, `2w`, `6mo`, `1y`, a plain number of seconds, a unix
//! time (a plain number from 1,000,000,000 on), or a date (`2026-01-01`, UTC midnight) or
//! RFC 3339 time. One parser for every family.
//!
//! `m` is a month (31 days), as Databunker's own code reads it and Pro's docs write retention
//! (`"1m"`): a client that meant minutes then keeps data longer, never loses it early. `min` and
//! `mo` say it unambiguously. Only the Vault plugin's `ttl` follows Go's durations, where `m` is
//! a minute ([`Units::Go`]).

use serde_json::Value;

use crate::error::{Error, Result};

/// Plain numbers from here on are unix times, below it seconds.
pub const UNIX_TIME_FROM: i64 = 1_000_000_000;
/// Latest unix time accepted (the end of year 9999).
pub const MAX_UNIX: i64 = 253_402_300_799;
/// Longest duration accepted (100 years).
pub const MAX_SECS: i64 = 100 * 366 * 86_400;
/// A month, as Databunker counts it.
pub const MONTH_SECS: i64 = 31 * 86_400;

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

/// Which convention a bare `m` follows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Units {
    /// Databunker's (both wire APIs): `m` is a month.
    Databunker,
    /// Go's, as Vault sends a lease TTL: `m` is a minute.
    Go,
}

impl Units {
    fn scale(self, unit: &str) -> Option<i64> {
        Some(match unit {
            "" | "s" | "sec" | "secs" | "second" | "seconds" => 1,
            "m" if self == Units::Go => 60,
            "m" => MONTH_SECS,
            "min" | "mins" | "minute" | "minutes" => 60,
            "h" | "hr" | "hour" | "hours" => 3_600,
            "d" | "day" | "days" => 86_400,
            "w" | "week" | "weeks" => 604_800,
            "mo" | "month" | "months" => MONTH_SECS,
            "y" | "year" | "years" => 365 * 86_400,
            _ => return None,
        })
    }
}

/// Parses a time setting of the wire APIs ([`Units::Databunker`]); absent, null or "" is
/// `None`; zero, negative, fractional or unknown units are a 400 naming `field`.
pub fn parse_when(field: &str, v: &Option<Value>) -> Result<Option<When>> {
    parse_when_in(Units::Databunker, field, v)
}

pub fn parse_when_in(units: Units, field: &str, v: &Option<Value>) -> Result<Option<When>> {
    let month = match units {
        Units::Databunker => "m or mo a 31-day month, min a minute",
        Units::Go => "m or min a minute",
    };
    let bad = || {
        Error::bad(format!(
            "{field} must be a duration such as 30s, 30min, 12h, 30d, 2w, 6mo, 1y ({month}), a number of seconds, a unix time, or a \
             date such as 2026-01-01"
        ))
    };
    let text = match v {
        None | Some(Value::Null) => return Ok(None),
        Some(Value::String(s)) if s.trim().is_empty() => return Ok(None),
        Some(Value::String(s)) => s.trim().to_ascii_lowercase(),
        Some(Value::Number(n)) => n.as_i64().ok_or_else(bad)?.to_string(),
        Some(_) => return Err(bad()),
    };
    if let Some(at) = calendar_time(&text) {
        return if (1..=MAX_UNIX).contains(&at) { Ok(Some(When::At(at))) } else { Err(bad()) };
    }
    let (digits, unit) = match text.find(|c: char| !c.is_ascii_digit()) {
        Some(i) => text.split_at(i),
        None => (text.as_str(), ""),
    };
    let n: i64 = digits.parse().map_err(|_| bad())?;
    if unit.is_empty() && n >= UNIX_TIME_FROM {
        return if n <= MAX_UNIX { Ok(Some(When::At(n))) } else { Err(bad()) };
    }
    let scale = units.scale(unit.trim_start()).ok_or_else(bad)?;
    let secs = n.checked_mul(scale).filter(|s| *s > 0 && *s <= MAX_SECS).ok_or_else(bad)?;
    Ok(Some(When::In(secs)))
}

/// A setting that must be a length of time (a lease TTL, an idle timeout), in seconds.
pub fn parse_duration_in(units: Units, field: &str, v: &Option<Value>) -> Result<Option<i64>> {
    match parse_when_in(units, field, v)? {
        None => Ok(None),
        Some(When::In(secs)) => Ok(Some(secs)),
        Some(When::At(_)) => Err(Error::bad(format!("{field} must be a duration, not a point in time"))),
    }
}

/// A wire-API length of time (`slidingtime`), in seconds.
pub fn parse_duration(field: &str, v: &Option<Value>) -> Result<Option<i64>> {
    parse_duration_in(Units::Databunker, field, v)
}

/// A wire-API deadline (`finaltime`) for something made at `now`, as a unix time that must lie
/// ahead of `now`.
pub fn parse_deadline(field: &str, v: &Option<Value>, now: i64) -> Result<Option<i64>> {
    match parse_when(field, v)?.map(|w| w.resolve(now)) {
        Some(at) if at <= now => Err(Error::bad(format!("{field} is in the past"))),
        at => Ok(at),
    }
}

/// `2026-01-01` (UTC midnight) or an RFC 3339 time in UTC (`Z` or no zone), as a unix time.
/// Other zones are refused rather than guessed at.
fn calendar_time(text: &str) -> Option<i64> {
    let b = text.as_bytes();
    if b.len() < 10 || b[4] != b'-' || b[7] != b'-' {
        return None;
    }
    let upper = text.to_ascii_uppercase();
    let full = if b.len() == 10 { format!("{upper}T00:00:00") } else { upper.trim_end_matches('Z').to_owned() };
    let t = humantime::parse_rfc3339_weak(&full).ok()?;
    i64::try_from(t.duration_since(std::time::UNIX_EPOCH).ok()?.as_secs()).ok()
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
        assert_eq!(when(json!("30min")).unwrap(), Some(When::In(1_800)));
        assert_eq!(when(json!("12m")).unwrap(), Some(When::In(12 * 31 * 86_400)), "m is a month");
        assert_eq!(when(json!("6mo")).unwrap(), Some(When::In(6 * 31 * 86_400)));
        assert_eq!(when(json!("2 days")).unwrap(), Some(When::In(172_800)));
        assert_eq!(parse_when_in(Units::Go, "ttl", &Some(json!("10m"))).unwrap(), Some(When::In(600)));
        assert_eq!(when(json!("2026-01-01")).unwrap(), Some(When::At(1_767_225_600)));
        assert_eq!(when(json!("2026-01-01T00:00:10Z")).unwrap(), Some(When::At(1_767_225_610)));
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
        for bad in [
            json!("h"),
            json!("-5m"),
            json!("0"),
            json!(1.5),
            json!(true),
            json!("9999999999999999d"),
            json!("5x"),
            json!("2026-13-01"),
            json!("2026-01-01T00:00:00+02:00"),
            json!("1m1"),
        ] {
            assert!(when(bad.clone()).is_err(), "{bad}");
        }
    }
}
