//! Peers, circles, roles and the orchestrator-claim decision.

use super::error::{Error, ErrorCode, Result};
use super::ids::PeerId;

mod record;
pub use record::{Claimed, Peer, PeerUpdate, Registration};

pub const DEFAULT_CIRCLE: &str = "default";
pub const MAX_NAME_LEN: usize = 64;

/// Check a peer or circle name: `[A-Za-z0-9._-]{1,64}`.
///
/// ```
/// use repowire_core::peer::validate_name;
/// assert!(validate_name("peer name", "build-bot.2").is_ok());
/// let e = validate_name("peer name", "no spaces").unwrap_err();
/// assert_eq!(e.code.as_str(), "invalid_name");
/// ```
pub fn validate_name(what: &str, name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name.len() <= MAX_NAME_LEN
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
    if ok {
        Ok(())
    } else {
        Err(Error::new(
            ErrorCode::InvalidName,
            format!("invalid {what} {name:?}: use 1-64 of A-Z a-z 0-9 . _ -"),
        ))
    }
}

/// Split `name@circle` (the circle part is optional).
///
/// ```
/// use repowire_core::peer::split_address;
/// assert_eq!(split_address("bob@ops"), ("bob", Some("ops")));
/// assert_eq!(split_address("bob"), ("bob", None));
/// ```
pub fn split_address(addr: &str) -> (&str, Option<&str>) {
    match addr.split_once('@') {
        Some((n, c)) => (n, Some(c)),
        None => (addr, None),
    }
}

macro_rules! str_enum {
    ($(#[$m:meta])* $name:ident { $($variant:ident => $s:literal),+ $(,)? }) => {
        $(#[$m])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
        #[serde(rename_all = "snake_case")]
        pub enum $name { $($variant),+ }

        impl $name {
            pub const ALL: &'static [$name] = &[$($name::$variant),+];
            pub fn as_str(self) -> &'static str {
                match self { $($name::$variant => $s),+ }
            }
            pub fn parse(s: &str) -> $crate::error::Result<Self> {
                match s {
                    $($s => Ok($name::$variant),)+
                    _ => Err($crate::error::Error::bad_request(format!(
                        "invalid {} {:?}: expected one of {}",
                        stringify!($name).to_lowercase(),
                        s,
                        [$($s),+].join(", ")
                    ))),
                }
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}
pub(crate) use str_enum;

str_enum!(
    /// What a peer is in its circle.
    Role { Agent => "agent", Orchestrator => "orchestrator", Service => "service", Human => "human" }
);

str_enum!(
    /// What a peer says of itself (a ghost is computed, not stored).
    Status { Online => "online", Busy => "busy", Idle => "idle", Offline => "offline" }
);

/// Check a delivery route a peer records: one of the registry's
/// recordable routes (`pull`, `channel`; see [`crate::delivery::Route`]).
pub fn validate_route(route: &str) -> Result<()> {
    crate::delivery::DeliveryRoute::parse_recordable(route).map(|_| ())
}

/// A peer is stale (a ghost, if its status is not `offline`) when its last
/// heartbeat is older than `stale_after_ms`.
pub fn is_stale(last_seen_ms: i64, now_ms: i64, stale_after_ms: i64) -> bool {
    now_ms - last_seen_ms > stale_after_ms
}

/// Whether the peer can take deliveries now (otherwise they queue).
pub fn is_reachable(status: Status, last_seen_ms: i64, now_ms: i64, stale_after_ms: i64) -> bool {
    status != Status::Offline && !is_stale(last_seen_ms, now_ms, stale_after_ms)
}

/// The current orchestrator of a circle as the claim decision sees it.
#[derive(Debug, Clone)]
pub struct Holder {
    pub peer_id: PeerId,
    pub name: String,
    pub last_seen_ms: i64,
    pub status: Status,
}

/// Outcome of a claim that is allowed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Claim {
    /// Nobody holds it (or the claimant already does).
    Free,
    /// The holder is stale or offline and is demoted.
    TakeOverStale(PeerId),
    /// `force`: the live holder is demoted.
    TakeOverForced(PeerId),
}

/// Decide an orchestrator claim by `claimant` in a circle with `holder`.
pub fn decide_claim(
    claimant_id: &PeerId,
    holder: Option<&Holder>,
    force: bool,
    now_ms: i64,
    stale_after_ms: i64,
) -> Result<Claim> {
    let Some(h) = holder else {
        return Ok(Claim::Free);
    };
    if h.peer_id == *claimant_id {
        return Ok(Claim::Free);
    }
    if !is_reachable(h.status, h.last_seen_ms, now_ms, stale_after_ms) {
        return Ok(Claim::TakeOverStale(h.peer_id.clone()));
    }
    if force {
        return Ok(Claim::TakeOverForced(h.peer_id.clone()));
    }
    Err(Error::new(
        ErrorCode::RoleHeld,
        format!(
            "the orchestrator role is held by {:?} (seen {} s ago); use --force to take it",
            h.name,
            (now_ms - h.last_seen_ms).max(0) / 1000
        ),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        for ok in ["a", "bob", "A.b_c-9", &"x".repeat(64)] {
            validate_name("name", ok).unwrap();
        }
        for bad in ["", "a b", "é", "a/b", "a@b", &"x".repeat(65)] {
            let e = validate_name("name", bad).unwrap_err();
            assert_eq!(e.code, ErrorCode::InvalidName, "{bad}");
        }
        assert_eq!(split_address("bob@ops"), ("bob", Some("ops")));
        assert_eq!(split_address("bob"), ("bob", None));
    }

    #[test]
    fn enums_parse() {
        assert_eq!(Role::parse("human").unwrap(), Role::Human);
        assert_eq!(Status::parse("busy").unwrap().as_str(), "busy");
        assert!(Role::parse("boss").unwrap_err().message.contains("agent"));
    }

    fn id(s: &str) -> PeerId {
        PeerId::trusted(s.into())
    }

    fn holder(last_seen: i64, status: Status) -> Holder {
        Holder {
            peer_id: id("peer-h"),
            name: "h".into(),
            last_seen_ms: last_seen,
            status,
        }
    }

    #[test]
    fn claims() {
        let now = 1_000_000;
        assert_eq!(
            decide_claim(&id("me"), None, false, now, 120_000),
            Ok(Claim::Free)
        );
        let live = holder(now - 1_000, Status::Online);
        let e = decide_claim(&id("me"), Some(&live), false, now, 120_000).unwrap_err();
        assert_eq!(e.code, ErrorCode::RoleHeld);
        assert_eq!(
            decide_claim(&id("me"), Some(&live), true, now, 120_000),
            Ok(Claim::TakeOverForced(id("peer-h")))
        );
        assert_eq!(
            decide_claim(&id("peer-h"), Some(&live), false, now, 120_000),
            Ok(Claim::Free)
        );
        let stale = holder(now - 200_000, Status::Online);
        assert_eq!(
            decide_claim(&id("me"), Some(&stale), false, now, 120_000),
            Ok(Claim::TakeOverStale(id("peer-h")))
        );
        let off = holder(now, Status::Offline);
        assert!(matches!(
            decide_claim(&id("me"), Some(&off), false, now, 120_000),
            Ok(Claim::TakeOverStale(_))
        ));
    }
}
