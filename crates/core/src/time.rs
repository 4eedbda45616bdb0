//! Time as integer Unix milliseconds, humantime durations, and the [`Clock`]
//! every deadline in the store and daemon is measured against.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Where "now" comes from: the system clock, or (tests only) a clock that can
/// be moved forward, so a test crosses a threshold (a lease, a stale
/// heartbeat, an ask's expiry) by advancing it instead of sleeping.
///
/// A cheap `Clone` handle: every clone sees the same time.
///
/// ```
/// use repowire_core::time::Clock;
/// let c = Clock::fixed(1_000);
/// let seen_by_store = c.clone();
/// c.advance(500);
/// assert_eq!(seen_by_store.now_ms(), 1_500);
/// ```
#[derive(Debug, Clone, Default)]
pub struct Clock(Option<Arc<Manual>>);

#[derive(Debug)]
struct Manual {
    /// `None`: follows the system clock (plus the offset); `Some`: stands still.
    frozen_at: Option<i64>,
    offset_ms: AtomicI64,
}

impl Clock {
    /// The system clock (what the daemon runs on).
    pub fn system() -> Self {
        Self(None)
    }

    /// The system clock plus whatever [`Clock::advance`] added: time still
    /// passes (so a real daemon keeps working), and a test can jump ahead.
    pub fn manual() -> Self {
        Self(Some(Arc::new(Manual {
            frozen_at: None,
            offset_ms: AtomicI64::new(0),
        })))
    }

    /// A clock that stands at `at_ms` until advanced (for unit tests).
    pub fn fixed(at_ms: i64) -> Self {
        Self(Some(Arc::new(Manual {
            frozen_at: Some(at_ms),
            offset_ms: AtomicI64::new(0),
        })))
    }

    /// Whether this clock can be advanced.
    pub fn is_manual(&self) -> bool {
        self.0.is_some()
    }

    /// Now, in Unix milliseconds.
    pub fn now_ms(&self) -> i64 {
        match &self.0 {
            None => now_ms(),
            Some(m) => m.frozen_at.unwrap_or_else(now_ms) + m.offset_ms.load(Ordering::SeqCst),
        }
    }

    /// Move a manual clock forward by `ms` (never backward); returns the new
    /// now. The system clock cannot be moved: it is returned unchanged.
    pub fn advance(&self, ms: i64) -> i64 {
        if let Some(m) = &self.0 {
            m.offset_ms.fetch_add(ms.max(0), Ordering::SeqCst);
        }
        self.now_ms()
    }
}

/// Now, in Unix milliseconds, from the system clock. Outside core, take the
/// time from the [`Clock`] handed in (the store's, the daemon's) instead.
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

    #[test]
    fn clocks_advance_only_when_manual_and_only_forward() {
        let sys = Clock::system();
        assert!(!sys.is_manual());
        let before = now_ms();
        assert!(
            sys.advance(60_000) < before + 60_000,
            "the system clock does not move"
        );
        let m = Clock::manual();
        let other = m.clone();
        let jumped = m.advance(3_600_000);
        assert!(jumped >= before + 3_600_000);
        assert!(other.now_ms() >= jumped, "clones share the time");
        let f = Clock::fixed(10);
        assert_eq!(f.advance(-5), 10, "never backward");
        assert_eq!(f.advance(5), 15);
    }
}
