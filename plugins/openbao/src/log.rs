//! Lines on stderr in hclog's JSON shape, which the host's go-plugin client re-logs at the given
//! level under the plugin's name. Never a credential, a token or a storage value.

use std::time::SystemTime;

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

/// hclog's time layout, `2006-01-02T15:04:05.000000Z07:00`, in UTC: RFC 3339 with microseconds.
fn timestamp(t: SystemTime) -> String {
    humantime::format_rfc3339_micros(t).to_string()
}

#[cfg(test)]
mod tests {
    use std::time::UNIX_EPOCH;

    use super::*;

    #[test]
    fn timestamps_follow_hclogs_layout() {
        let t = UNIX_EPOCH + std::time::Duration::from_micros(1_796_639_025_123_456);
        assert_eq!(timestamp(t), "2026-12-07T10:23:45.123456Z");
        assert_eq!(timestamp(UNIX_EPOCH + std::time::Duration::from_secs(951_782_400)), "2000-02-29T00:00:00.000000Z");
    }
}
