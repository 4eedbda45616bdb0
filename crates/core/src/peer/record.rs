//! The peer records the store hands out and the commands it takes; the wire
//! shapes (`api::PeerInfo`, `api::RegisterReq`, …) live in the client crate.

use super::{Role, Status, is_reachable, is_stale};
use crate::ids::PeerId;

/// A peer as stored (without its token hash).
#[derive(Debug, Clone, PartialEq)]
pub struct Peer {
    pub id: PeerId,
    pub name: String,
    pub circle: String,
    pub role: Role,
    pub backend: String,
    pub project_path: String,
    pub tags: Vec<String>,
    pub description: String,
    pub status: Status,
    pub route: String,
    pub created_ms: i64,
    pub last_seen_ms: i64,
}

impl Peer {
    /// Not seen for `stale_after_ms` at `now`.
    pub fn stale(&self, now: i64, stale_after_ms: i64) -> bool {
        is_stale(self.last_seen_ms, now, stale_after_ms)
    }

    /// Stale while its status still claims it is there.
    pub fn ghost(&self, now: i64, stale_after_ms: i64) -> bool {
        self.stale(now, stale_after_ms) && self.status != Status::Offline
    }

    pub fn reachable(&self, now: i64, stale_after_ms: i64) -> bool {
        is_reachable(self.status, self.last_seen_ms, now, stale_after_ms)
    }
}

/// Register a new peer, or resume one.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Registration {
    pub name: String,
    pub circle: Option<String>,
    pub role: Option<Role>,
    pub backend: Option<String>,
    pub project_path: Option<String>,
    pub tags: Option<Vec<String>>,
    pub description: Option<String>,
    pub route: Option<String>,
}

/// Change what a peer says about itself.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PeerUpdate {
    pub description: Option<String>,
    pub tags: Option<Vec<String>>,
}

/// The orchestrator role claimed.
#[derive(Debug, Clone, PartialEq)]
pub struct Claimed {
    pub circle: String,
    pub holder: Peer,
    /// The demoted holder's name, if the role was taken over.
    pub previous: Option<String>,
    /// `stale` or `forced` when the role was taken over.
    pub takeover: Option<String>,
    /// When (the transaction's clock), for the holder's age.
    pub at_ms: i64,
}
