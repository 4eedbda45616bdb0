//! The job records the store hands out and the commands it takes; the wire
//! shapes live in the client crate.

use super::JobState;
use crate::ids::JobId;

/// A job as stored (people by name; the peer ids that decide who may act on
/// it stay inside the store).
#[derive(Debug, Clone, PartialEq)]
pub struct Job {
    pub job_id: JobId,
    pub circle: String,
    pub title: String,
    pub brief: String,
    pub kind: String,
    pub tags: Vec<String>,
    pub priority: i64,
    pub created_by: String,
    pub owner: String,
    pub assignee: Option<String>,
    pub state: JobState,
    pub phase: String,
    pub attempts: i64,
    pub max_attempts: i64,
    pub previous_assignees: Vec<String>,
    pub result_summary: Option<String>,
    pub result_data: Option<serde_json::Value>,
    pub error: Option<String>,
    pub deadline_ms: Option<i64>,
    pub created_at_ms: i64,
    pub updated_at_ms: i64,
    /// A cancel waiting for the assignee to confirm (or the grace period).
    pub cancel_requested_at_ms: Option<i64>,
    pub notes: Vec<JobNote>,
}

/// A note on a job.
#[derive(Debug, Clone, PartialEq)]
pub struct JobNote {
    pub ts_ms: i64,
    /// Who wrote it (a peer name, or `admin`).
    pub by: String,
    pub text: String,
}

/// Create a job.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct NewJob {
    pub title: String,
    pub brief: Option<String>,
    pub kind: Option<String>,
    pub tags: Option<Vec<String>>,
    pub priority: Option<i64>,
    /// Assign straight to this peer (else the persona dispatches it).
    pub assign: Option<String>,
    /// Default: the creator.
    pub owner: Option<String>,
    pub deadline_ms: Option<i64>,
    pub max_attempts: Option<i64>,
    /// Wait this long × the attempt number before a retry.
    pub backoff_ms: Option<i64>,
}

/// Change a job: move it, note it, record its result.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct JobUpdate {
    pub state: Option<JobState>,
    pub phase: Option<String>,
    pub note: Option<String>,
    pub result: Option<String>,
    pub result_data: Option<serde_json::Value>,
    pub error: Option<String>,
}
