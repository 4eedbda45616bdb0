//! Jobs: durable tracked work. The state machine lives here.
//!
//! ```text
//! queued ─dispatch─> dispatched ─start─> running ─succeed─> succeeded
//!   │                   │                  ├─fail────> failed
//!   │                   │                  └─time out─> timed_out
//!   └───────────────────┴─── cancel ──> canceled     (requeue: dispatched|running → queued)
//! ```

use super::error::{Error, ErrorCode, Result};
use super::peer::str_enum;

mod record;
pub use record::{Job, JobNote, JobUpdate, NewJob};

str_enum!(
    /// Where a job is in its life.
    JobState {
        Queued => "queued",
        Dispatched => "dispatched",
        Running => "running",
        Succeeded => "succeeded",
        Failed => "failed",
        Canceled => "canceled",
        TimedOut => "timed_out",
    }
);

impl JobState {
    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            Self::Succeeded | Self::Failed | Self::Canceled | Self::TimedOut
        )
    }
}

/// Things that move a job.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JobAction {
    Dispatch,
    Start,
    Succeed,
    Fail,
    Cancel,
    TimeOut,
    /// Back to the queue for another attempt (executor lost, or retry).
    Requeue,
}

impl JobAction {
    /// The `WHERE state IN (…)` of the action's compare-and-swap.
    pub fn allowed_from(self) -> &'static [JobState] {
        use JobState::*;
        match self {
            Self::Dispatch => &[Queued],
            Self::Start => &[Dispatched],
            Self::Succeed | Self::Fail => &[Dispatched, Running],
            Self::Cancel | Self::TimeOut => &[Queued, Dispatched, Running],
            Self::Requeue => &[Dispatched, Running, Failed, TimedOut, Canceled],
        }
    }

    pub fn target(self) -> JobState {
        match self {
            Self::Dispatch => JobState::Dispatched,
            Self::Start => JobState::Running,
            Self::Succeed => JobState::Succeeded,
            Self::Fail => JobState::Failed,
            Self::Cancel => JobState::Canceled,
            Self::TimeOut => JobState::TimedOut,
            Self::Requeue => JobState::Queued,
        }
    }

    /// Apply to `from`, or say why not (`invalid_state`).
    pub fn apply(self, id: &str, from: JobState) -> Result<JobState> {
        if self.allowed_from().contains(&from) {
            Ok(self.target())
        } else {
            Err(Error::new(
                ErrorCode::InvalidState,
                format!(
                    "job {id} is {from}: it cannot become {} from there",
                    self.target()
                ),
            ))
        }
    }

    /// The action an update to `state` asks for.
    pub fn to_reach(state: JobState) -> Result<Self> {
        Ok(match state {
            JobState::Running => Self::Start,
            JobState::Succeeded => Self::Succeed,
            JobState::Failed => Self::Fail,
            JobState::Canceled => Self::Cancel,
            other => {
                return Err(Error::bad_request(format!(
                    "a job cannot be updated to {other}: use running, succeeded, failed or canceled"
                )));
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use JobState::*;

    #[test]
    fn transitions() {
        assert_eq!(JobAction::Dispatch.apply("j", Queued).unwrap(), Dispatched);
        assert_eq!(JobAction::Start.apply("j", Dispatched).unwrap(), Running);
        assert_eq!(JobAction::Succeed.apply("j", Running).unwrap(), Succeeded);
        assert_eq!(
            JobAction::Dispatch.apply("j", Running).unwrap_err().code,
            ErrorCode::InvalidState
        );
        for t in JobState::ALL.iter().filter(|s| s.is_terminal()) {
            for a in [
                JobAction::Dispatch,
                JobAction::Start,
                JobAction::Succeed,
                JobAction::Fail,
                JobAction::Cancel,
                JobAction::TimeOut,
            ] {
                assert!(a.apply("j", *t).is_err(), "{a:?} from {t}");
            }
        }
        assert!(JobAction::to_reach(Queued).is_err());
        assert_eq!(JobAction::to_reach(Running).unwrap(), JobAction::Start);
    }
}
