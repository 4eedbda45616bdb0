//! Time as integer Unix milliseconds, and humantime durations.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Now, in Unix milliseconds.
pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// Parse a duration like `5s`, `10m`, `1h 30m` (humantime form).
///
/// ```
/// use repowire_core::time::parse_duration;
/// assert_eq!(parse_duration("10m").unwrap().as_secs(), 600);
/// assert!(parse_duration("soon").is_err());
/// ```
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    humantime::parse_duration(s.trim())
        .map_err(|e| format!("invalid duration {s:?}: {e} (use forms like 5s, 10m, 2h)"))
}

/// Unix ms as RFC 3339 UTC with milliseconds, for humans.
pub fn fmt_ms(ms: i64) -> String {
    let t = UNIX_EPOCH + Duration::from_millis(ms.max(0) as u64);
    humantime::format_rfc3339_millis(t).to_string()
}

/// A short age like `3s`, `4m`, `2h`, `5d`.
pub fn fmt_age(ms: i64) -> String {
    let s = (ms.max(0) / 1000) as u64;
    match s {
        0..60 => format!("{s}s"),
        60..3600 => format!("{}m", s / 60),
        3600..86400 => format!("{}h", s / 3600),
        _ => format!("{}d", s / 86400),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse_and_refuse() {
        assert_eq!(parse_duration("5s").unwrap(), Duration::from_secs(5));
        assert_eq!(parse_duration("10m").unwrap(), Duration::from_secs(600));
        assert!(parse_duration("soon").unwrap_err().contains("soon"));
    }

    #[test]
    fn formats() {
        assert_eq!(fmt_ms(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(fmt_age(59_999), "59s");
        assert_eq!(fmt_age(120_000), "2m");
        assert_eq!(fmt_age(7_200_000), "2h");
        assert!(now_ms() > 1_700_000_000_000);
    }
}
