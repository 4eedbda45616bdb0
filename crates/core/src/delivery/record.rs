//! The delivery records the store hands out and the message commands it
//! takes; the wire shapes live in the client crate.

use super::{DeliveryKind, DeliveryState};
use crate::ids::{AskId, DeliveryId, JobId};

/// A delivery as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct Delivery {
    pub delivery_id: DeliveryId,
    pub seq: i64,
    pub kind: DeliveryKind,
    /// The sender's name (None: the daemon).
    pub from: Option<String>,
    pub from_circle: Option<String>,
    /// The ask it carries or is about.
    pub correlation_id: Option<AskId>,
    pub text: String,
    pub state: DeliveryState,
    pub attempts: i64,
    pub created_at_ms: i64,
    pub lease_until_ms: Option<i64>,
    /// The job it is about (a dispatch, a cancel request, a job's end).
    pub job_id: Option<JobId>,
    /// For an ask: the earlier ask it follows up.
    pub reply_to: Option<AskId>,
    /// When a channel push last sent it into the session as a live hint
    /// (`POST /v1/inbox/pushed`); it stays unconfirmed until something that
    /// puts it in front of the agent confirms it.
    pub pushed_at_ms: Option<i64>,
}

/// A one-way message to one peer.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct NewNotify {
    /// `NAME` or `NAME@CIRCLE`.
    pub to: String,
    pub circle: Option<String>,
    pub text: String,
}

/// A message queued for one peer.
#[derive(Debug, Clone, PartialEq)]
pub struct Notified {
    pub delivery_id: DeliveryId,
    /// The recipient's name and circle.
    pub to: String,
    pub circle: String,
    pub queued_offline: bool,
}

/// A message to every peer of a circle but the sender.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct NewBroadcast {
    pub text: String,
    /// Default: the sender's circle.
    pub circle: Option<String>,
}

/// A broadcast sent.
#[derive(Debug, Clone, PartialEq)]
pub struct Broadcasted {
    pub circle: String,
    pub deliveries: Vec<Notified>,
    /// Peers whose inbox was full: they got nothing.
    pub skipped_inbox_full: Vec<String>,
}
