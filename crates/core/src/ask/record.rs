//! The ask records the store hands out and the commands it takes. The wire
//! shapes (`api::AskInfo`, `api::AskReq`, …) live in the client crate and
//! convert from and to these.

use super::AskState;
use crate::ids::{AskGroupId, AskId, DeliveryId, JobId, PeerId};

/// An ask as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct Ask {
    pub correlation_id: AskId,
    pub parent_id: Option<AskGroupId>,
    /// The asker's name.
    pub from: String,
    pub from_peer_id: PeerId,
    /// The recipient's name.
    pub to: String,
    pub to_peer_id: PeerId,
    pub circle: String,
    pub text: String,
    pub state: AskState,
    pub answer: Option<String>,
    pub ack_message: Option<String>,
    pub created_at_ms: i64,
    pub updated_at_ms: i64,
    pub expires_at_ms: i64,
    pub reminded_at_ms: Option<i64>,
    pub closed_at_ms: Option<i64>,
    /// The ask this one follows up.
    pub reply_to: Option<AskId>,
    /// The job this ask dispatches.
    pub job_id: Option<JobId>,
}

/// Ask one peer.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct NewAsk {
    /// `NAME` or `NAME@CIRCLE`.
    pub to: String,
    /// The target's circle (default: the sender's).
    pub circle: Option<String>,
    pub text: String,
    pub timeout_ms: Option<u64>,
    /// The ask this one follows up (the sender must be a party to it).
    pub reply_to: Option<AskId>,
}

/// An ask just created, and its first delivery.
#[derive(Debug, Clone, PartialEq)]
pub struct AskSent {
    pub ask: Ask,
    pub delivery_id: DeliveryId,
    /// The recipient is offline or stale: the ask waits in its inbox.
    pub queued_offline: bool,
}

/// Ask several peers the same question (an ask group).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct NewAskMany {
    pub to: Vec<String>,
    pub circle: Option<String>,
    pub text: String,
    pub timeout_ms: Option<u64>,
}

/// An ask group just created.
#[derive(Debug, Clone, PartialEq)]
pub struct AskManySent {
    pub parent_id: AskGroupId,
    pub asks: Vec<AskSent>,
}

/// One recipient's line of an ask group's result.
#[derive(Debug, Clone, PartialEq)]
pub struct AskManyEntry {
    pub peer: String,
    pub correlation_id: AskId,
    pub state: AskState,
    pub answer: Option<String>,
}

/// Who answered what in an ask group, and who is still open.
#[derive(Debug, Clone, PartialEq)]
pub struct AskManyResult {
    pub parent_id: AskGroupId,
    pub text: String,
    pub entries: Vec<AskManyEntry>,
    /// Names whose ask is not yet terminal.
    pub open: Vec<String>,
    pub done: bool,
}
