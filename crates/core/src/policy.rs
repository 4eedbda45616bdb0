//! The daemon's tunable limits and intervals, as plain data.
//!
//! Set from `repowire daemon` flags (each also has a `REPOWIRE_*` env var);
//! the defaults below are the documented ones.

/// Limits and intervals, all in milliseconds or counts.
#[derive(Debug, Clone)]
pub struct Policy {
    /// A peer with no heartbeat for this long is stale (a ghost if not offline).
    pub stale_after_ms: i64,
    /// An ask not picked up after this long is re-delivered once as a reminder.
    pub reminder_after_ms: i64,
    /// Default ask timeout.
    pub ask_timeout_ms: i64,
    /// Largest message text, in bytes.
    pub max_message_bytes: usize,
    /// Most undelivered messages one peer may have waiting.
    pub max_pending_per_peer: i64,
    /// How long a handed-out delivery stays leased before it is handed out again.
    pub lease_ms: i64,
    /// Broadcasts one sender may make per minute.
    pub broadcast_per_minute: u32,
    /// Most targets of one ask-many.
    pub max_fanout: usize,
    /// Events older than this are deleted.
    pub event_max_age_ms: i64,
    /// At most this many events are kept (oldest go first).
    pub event_max_count: i64,
    /// Finished asks and delivered/dropped deliveries older than this are deleted.
    pub done_max_age_ms: i64,
    /// A cancel of a job in progress waits this long for the assignee to confirm.
    pub cancel_grace_ms: i64,
    /// A schedule fire this late counts as missed (the daemon was down).
    pub missed_after_ms: i64,
    /// First retry delay of a failed schedule fire (doubles, at most 5 min).
    pub schedule_retry_ms: i64,
    /// A plain fire (a note or a reminder to oneself) is written this long
    /// before it is due, invisible until then, so that many fires due at
    /// one instant cost that instant no write (0: fire each when due).
    pub schedule_arm_ahead_ms: i64,
}

impl Default for Policy {
    fn default() -> Self {
        Self {
            stale_after_ms: 120_000,
            reminder_after_ms: 600_000,
            ask_timeout_ms: 3_600_000,
            max_message_bytes: 64 * 1024,
            max_pending_per_peer: 10_000,
            lease_ms: 30_000,
            broadcast_per_minute: 30,
            max_fanout: 64,
            event_max_age_ms: 7 * 86_400_000,
            event_max_count: 100_000,
            done_max_age_ms: 7 * 86_400_000,
            cancel_grace_ms: 60_000,
            missed_after_ms: 60_000,
            schedule_retry_ms: 5_000,
            schedule_arm_ahead_ms: 2_000,
        }
    }
}

impl Policy {
    /// Check a message text against the size limit.
    pub fn check_text(&self, what: &str, text: &str) -> super::error::Result<()> {
        if text.len() > self.max_message_bytes {
            return Err(super::error::Error::bad_request(format!(
                "{what} is {} bytes, over the limit of {} bytes (max_message_bytes)",
                text.len(),
                self.max_message_bytes
            )));
        }
        if text.trim().is_empty() {
            return Err(super::error::Error::bad_request(format!("{what} is empty")));
        }
        Ok(())
    }
}
