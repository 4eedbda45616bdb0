//! Schedules: when a future delivery fires. Parsing of `fire_at` (a delay or
//! a time) and cron expressions (5 fields, `@hourly`, `@daily`, `@weekly`) in
//! a time zone, and the next-fire computation. Pure.

use super::error::{Error, Result};
use super::peer::str_enum;
use chrono::{TimeZone, Utc};
use std::str::FromStr;

mod record;
pub use record::{NewSchedule, Schedule};

str_enum!(
    /// What a schedule delivers when it fires.
    ScheduleKind { Notify => "notify", Ask => "ask", Job => "job", Checkin => "checkin" }
);

str_enum!(
    /// What happens to fires missed while the daemon was down.
    MissedPolicy { FireOnce => "fire_once", Skip => "skip" }
);

/// `10m`, `2h` (from `now_ms`) or an RFC 3339 time, as Unix ms.
pub fn parse_when(s: &str, now_ms: i64) -> Result<i64> {
    if let Ok(d) = super::time::parse_duration(s) {
        let ms = i64::try_from(d.as_millis()).map_err(|_| Error::bad_request("delay too large"))?;
        return Ok(now_ms.saturating_add(ms));
    }
    let t = humantime::parse_rfc3339_weak(s).map_err(|_| {
        Error::bad_request(format!(
            "{s:?} is neither a delay (90s, 10m, 2h) nor a time (2026-11-24T09:00:00Z)"
        ))
    })?;
    let ms = t
        .duration_since(std::time::UNIX_EPOCH)
        .map_err(|_| Error::bad_request("a time before 1970"))?
        .as_millis();
    i64::try_from(ms).map_err(|_| Error::bad_request("time too far away"))
}

/// A time zone by IANA name (`Europe/Berlin`) or `UTC`.
pub fn parse_tz(tz: &str) -> Result<chrono_tz::Tz> {
    chrono_tz::Tz::from_str(tz).map_err(|_| {
        Error::bad_request(format!(
            "unknown time zone {tz:?} (use an IANA name like Europe/Berlin, or UTC)"
        ))
    })
}

/// Check a cron expression (5 fields or @hourly/@daily/@weekly). croner
/// also takes a seconds and a year field by default; both are refused, so a
/// schedule fires at most once a minute (a peer token may create schedules).
pub fn parse_cron(expr: &str) -> Result<croner::Cron> {
    use croner::parser::{CronParser, Seconds, Year};
    CronParser::builder()
        .seconds(Seconds::Disallowed)
        .year(Year::Disallowed)
        .build()
        .parse(expr.trim())
        .map_err(|e| Error::bad_request(format!("invalid cron expression {expr:?}: {e}")))
}

/// The first fire of `expr` in `tz` strictly after `after_ms`.
pub fn next_cron(expr: &str, tz: &str, after_ms: i64) -> Result<i64> {
    let cron = parse_cron(expr)?;
    let zone = parse_tz(tz)?;
    let start = Utc
        .timestamp_millis_opt(after_ms)
        .single()
        .ok_or_else(|| Error::bad_request("time out of range"))?
        .with_timezone(&zone);
    let next = cron
        .find_next_occurrence(&start, false)
        .map_err(|e| Error::bad_request(format!("{expr:?} never fires again: {e}")))?;
    Ok(next.timestamp_millis())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn when_and_cron() {
        let now = 1_795_510_800_000; // 2026-11-24T09:00:00Z
        assert_eq!(parse_when("90s", now).unwrap(), now + 90_000);
        assert_eq!(
            parse_when("2026-11-24T10:00:00Z", now).unwrap(),
            now + 3_600_000
        );
        assert!(parse_when("soonish", now).is_err());
        assert_eq!(next_cron("@hourly", "UTC", now).unwrap(), now + 3_600_000);
        assert_eq!(
            next_cron("30 9 * * *", "UTC", now).unwrap(),
            now + 1_800_000
        );
        // 09:30 in Berlin (UTC+1 in November) is 08:30 UTC: the next one is tomorrow.
        assert_eq!(
            next_cron("30 9 * * *", "Europe/Berlin", now).unwrap(),
            now - 1_800_000 + 86_400_000
        );
        assert!(next_cron("61 * * * *", "UTC", now).is_err());
        // Five fields only: no seconds, no year (croner takes both by default).
        for six in [
            "* * * * * *",
            "0 0 0 * * *",
            "* * * * * * *",
            "0 0 1 1 * 2030",
        ] {
            assert!(parse_cron(six).is_err(), "{six}");
        }
        assert!(parse_cron("@yearly").is_ok() && parse_cron("0 9 * * MON-FRI").is_ok());
        assert!(next_cron("@daily", "Mars/Base", now).is_err());
        // Strictly after: monotonic.
        let a = next_cron("*/5 * * * *", "UTC", now).unwrap();
        assert!(a > now && next_cron("*/5 * * * *", "UTC", a).unwrap() > a);
    }
}
