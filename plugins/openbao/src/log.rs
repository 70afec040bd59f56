//! Lines on stderr in hclog's JSON shape, which the host's go-plugin client re-logs at the given
//! level under the plugin's name. Never a credential, a token or a storage value.

use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::json;

#[derive(Clone, Copy)]
pub enum Level {
    Info,
    Warn,
    Error,
}

pub fn line(level: Level, message: &str) {
    let level = match level {
        Level::Info => "info",
        Level::Warn => "warn",
        Level::Error => "error",
    };
    eprintln!("{}", json!({"@level": level, "@message": message, "@module": "strongroom", "@timestamp": timestamp(SystemTime::now())}));
}

/// hclog's time layout, `2006-01-02T15:04:05.000000Z07:00`, in UTC.
fn timestamp(t: SystemTime) -> String {
    let d = t.duration_since(UNIX_EPOCH).unwrap_or_default();
    let (days, secs) = ((d.as_secs() / 86_400) as i64, d.as_secs() % 86_400);
    // Howard Hinnant's days-to-civil.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!("{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:06}Z", secs / 3600, secs % 3600 / 60, secs % 60, d.subsec_micros())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_follow_hclogs_layout() {
        let t = UNIX_EPOCH + std::time::Duration::from_micros(1_796_639_025_123_456);
        assert_eq!(timestamp(t), "2026-12-07T10:23:45.123456Z");
        assert_eq!(timestamp(UNIX_EPOCH + std::time::Duration::from_secs(951_782_400)), "2000-02-29T00:00:00.000000Z");
    }
}
