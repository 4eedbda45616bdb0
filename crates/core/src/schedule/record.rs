//! The schedule records the store hands out and the command it takes; the
//! wire shapes live in the client crate.

use super::{MissedPolicy, ScheduleKind};
use crate::ids::ScheduleId;

/// A schedule as stored (people by name).
#[derive(Debug, Clone, PartialEq)]
pub struct Schedule {
    pub schedule_id: ScheduleId,
    pub circle: String,
    pub owner: String,
    pub to: String,
    pub kind: ScheduleKind,
    pub text: String,
    pub persona: Option<String>,
    pub fire_at_ms: Option<i64>,
    pub cron: Option<String>,
    pub tz: String,
    pub missed: MissedPolicy,
    pub next_fire_ms: Option<i64>,
    pub last_fired_ms: Option<i64>,
    pub fire_count: i64,
    pub failures: i64,
    pub last_outcome: Option<String>,
    pub last_error: Option<String>,
    pub enabled: bool,
    pub created_at_ms: i64,
}

/// Create a schedule.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct NewSchedule {
    /// A peer name (or NAME@CIRCLE), or `self`.
    pub to: String,
    pub circle: Option<String>,
    /// Default `notify`.
    pub kind: Option<ScheduleKind>,
    pub text: String,
    /// One-shot: a delay (`10m`) or a time (RFC 3339).
    pub fire_at: Option<String>,
    /// Recurring: 5-field cron or @hourly/@daily/@weekly.
    pub cron: Option<String>,
    pub tz: Option<String>,
    pub missed: Option<MissedPolicy>,
    /// `checkin`: the persona (or check-in script file) to run.
    pub persona: Option<String>,
}
