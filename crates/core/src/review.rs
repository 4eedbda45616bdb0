//! Reviews: a ref (a PR URL or any string) at a head sha, the reviewers it
//! was routed to, and what each still has to do. The records the store hands
//! out and the commands it takes; the wire shapes live in the client crate.

use crate::ids::ReviewId;

/// One reviewer's standing on a review.
#[derive(Debug, Clone, PartialEq)]
pub struct ReviewerState {
    pub reviewer: String,
    pub last_reviewed_sha: Option<String>,
    pub verdict: Option<String>,
    pub notes: Option<String>,
    pub my_action: String,
}

/// A review as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct Review {
    pub review_id: ReviewId,
    pub reference: String,
    pub circle: String,
    pub title: String,
    pub head_sha: String,
    pub author: String,
    pub requested_by: String,
    pub tags: Vec<String>,
    /// `open` or `closed`.
    pub state: String,
    pub reviewers: Vec<ReviewerState>,
    pub created_at_ms: i64,
    pub updated_at_ms: i64,
}

/// One line of a peer's review queue.
#[derive(Debug, Clone, PartialEq)]
pub struct QueueEntry {
    pub reference: String,
    pub title: String,
    pub head_sha: String,
    pub author: String,
    pub last_reviewed_sha: Option<String>,
    pub verdict: Option<String>,
    /// `review-needed`, `re-review-suggested`, `none-needed` or `closed`.
    pub my_action: String,
}

/// Ask for a review.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct NewReview {
    pub reference: String,
    pub head_sha: String,
    pub title: Option<String>,
    /// Default: the caller.
    pub author: Option<String>,
    pub tags: Option<Vec<String>>,
}

/// Name a review and say what changed: a new head (update), a sha reviewed
/// with a verdict (mark).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ReviewRef {
    pub reference: String,
    pub sha: Option<String>,
    pub verdict: Option<String>,
    pub notes: Option<String>,
}
