//! Asks: tracked questions that must be closed. The state machine lives here.
//!
//! ```text
//! queued ─deliver─> delivered ─pickup─> picked_up ─answer─> answered ─close─> closed
//!    └──────────────────┴──────────────────┴── ack ─────────────────────────> closed
//!    any open state ─> expired | canceled | failed
//! ```
//!
//! `answer` stores the answer (`answered`) and closes the ask in the same
//! transaction: the reply is on its way to the asker, nothing is left to do.

use super::error::{Error, ErrorCode, Result};
use super::peer::str_enum;

mod record;
pub use record::{Ask, AskManyEntry, AskManyResult, AskManySent, AskSent, NewAsk, NewAskMany};

str_enum!(
    /// Where an ask is in its life.
    AskState {
        Queued => "queued",
        Delivered => "delivered",
        PickedUp => "picked_up",
        Answered => "answered",
        Closed => "closed",
        Expired => "expired",
        Canceled => "canceled",
        Failed => "failed",
    }
);

impl AskState {
    /// Closed, expired, canceled or failed: nothing more will happen.
    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            Self::Closed | Self::Expired | Self::Canceled | Self::Failed
        )
    }
}

/// Things that move an ask.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AskAction {
    /// The recipient's consumer confirmed the delivery.
    Deliver,
    /// The recipient says it is working on it.
    Pickup,
    /// The recipient closes it without an answer text.
    Ack,
    /// The recipient answers.
    Answer,
    /// An answered ask is closed (in the same transaction as the answer).
    Close,
    /// The asker withdraws it.
    Cancel,
    /// Its timeout passed.
    Expire,
    /// The recipient is gone.
    Fail,
}

impl AskAction {
    /// The states this action may start from: the `WHERE state IN (…)` of its
    /// compare-and-swap.
    pub fn allowed_from(self) -> &'static [AskState] {
        use AskState::*;
        match self {
            Self::Deliver => &[Queued],
            Self::Pickup => &[Queued, Delivered],
            Self::Close => &[Answered],
            Self::Ack | Self::Answer | Self::Cancel | Self::Expire | Self::Fail => {
                &[Queued, Delivered, PickedUp]
            }
        }
    }

    /// The state the action leaves the ask in.
    pub fn target(self) -> AskState {
        match self {
            Self::Deliver => AskState::Delivered,
            Self::Pickup => AskState::PickedUp,
            Self::Ack | Self::Close => AskState::Closed,
            Self::Answer => AskState::Answered,
            Self::Cancel => AskState::Canceled,
            Self::Expire => AskState::Expired,
            Self::Fail => AskState::Failed,
        }
    }

    fn verb(self) -> &'static str {
        match self {
            Self::Deliver => "deliver",
            Self::Pickup => "pick up",
            Self::Ack => "ack",
            Self::Answer => "answer",
            Self::Close => "close",
            Self::Cancel => "cancel",
            Self::Expire => "expire",
            Self::Fail => "fail",
        }
    }

    /// Apply to `from`, or say why not.
    pub fn apply(self, id: &str, from: AskState) -> Result<AskState> {
        if self.allowed_from().contains(&from) {
            Ok(self.target())
        } else {
            Err(Error::new(
                ErrorCode::InvalidState,
                format!("cannot {} ask {id}: it is {from}", self.verb()),
            ))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use AskState::*;

    #[test]
    fn happy_path_and_refusals() {
        let s = AskAction::Deliver.apply("a", Queued).unwrap();
        let s = AskAction::Pickup.apply("a", s).unwrap();
        assert_eq!(s, PickedUp);
        let s = AskAction::Answer.apply("a", s).unwrap();
        assert_eq!(s, Answered);
        assert_eq!(AskAction::Close.apply("a", s).unwrap(), Closed);
        assert!(
            AskAction::Close.apply("a", PickedUp).is_err(),
            "only answered asks close"
        );
        let e = AskAction::Answer.apply("a", Closed).unwrap_err();
        assert_eq!(e.code, ErrorCode::InvalidState);
        assert!(e.message.contains("closed"));
        assert!(AskAction::Deliver.apply("a", Delivered).is_err());
        assert!(AskAction::Pickup.apply("a", PickedUp).is_err());
    }

    #[test]
    fn terminal_states_accept_nothing() {
        let actions = [
            AskAction::Deliver,
            AskAction::Pickup,
            AskAction::Ack,
            AskAction::Answer,
            AskAction::Close,
            AskAction::Cancel,
            AskAction::Expire,
            AskAction::Fail,
        ];
        for st in AskState::ALL.iter().filter(|s| s.is_terminal()) {
            for a in actions {
                assert!(a.apply("x", *st).is_err(), "{a:?} from {st}");
            }
        }
        for a in actions.into_iter().filter(|a| *a != AskAction::Close) {
            assert!(!a.allowed_from().contains(&Answered), "{a:?}");
        }
    }
}
