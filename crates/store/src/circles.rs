//! Circles, the isolation boundary, as the store enforces it.
//!
//! Two rules, each in one place so no request field or route can slip past:
//! - every peer a request names (a message target, a job's owner or
//!   assignee, a review's author or reviewer, a schedule's target, a
//!   check-in's recipient, a queue to read) is resolved by
//!   [`resolve_within`]: inside the circle of whoever acts, or refused
//!   `cross_circle`, before any lookup, so the refusal says nothing about
//!   who exists elsewhere. Only an explicit admin bypass (notify, ask,
//!   ask-many, broadcast) looks into another circle;
//! - a peer acting on an object by id (a job, a schedule, an ask) that lives
//!   in another circle is refused `cross_circle` by [`same_circle`], before
//!   the object's own permission rules are asked.
//!
//! Names never resolve across circles here: a bare name means the caller's
//! circle. (`peers::resolve` with no circle still does, for the admin.)

use super::Store;
use super::peers::{Lookup, shared_by_name};
use repowire_core::error::{Error, ErrorCode, Result};
use repowire_core::peer::Peer;
use repowire_core::peer::{split_address, validate_name};
use std::sync::Arc;

/// The `cross_circle` refusal.
pub(super) fn refused(message: String) -> Error {
    Error::new(ErrorCode::CrossCircle, message)
}

/// Resolve `NAME` or `NAME@CIRCLE` for someone in circle `home` (`who`
/// names them in the error). `circle` is a circle the request names beside
/// the address (a `circle` field); `@CIRCLE` in the address wins over it.
/// Any circle but `home` is `cross_circle` unless `bypass`.
pub(super) fn resolve_within(
    c: &impl Lookup,
    home: &str,
    who: &str,
    addr: &str,
    circle: Option<&str>,
    bypass: bool,
) -> Result<Arc<Peer>> {
    let (name, at) = split_address(addr);
    validate_name("peer name", name)?;
    let named = at.or(circle).unwrap_or(home);
    validate_name("circle", named)?;
    if named != home && !bypass {
        return Err(refused(format!(
            "{addr:?} names circle {named:?}, but {who} is in circle {home:?}: a request names only peers of its own circle (an admin may cross where a command offers --cross-circle)"
        )));
    }
    shared_by_name(c, named, name)?.ok_or_else(|| {
        Error::new(
            ErrorCode::UnknownPeer,
            format!("no peer named {name:?} in circle {named:?}"),
        )
    })
}

/// [`resolve_within`] the circle of `caller`.
pub(super) fn resolve_for(
    c: &impl Lookup,
    caller: &Peer,
    addr: &str,
    circle: Option<&str>,
    bypass: bool,
) -> Result<Arc<Peer>> {
    resolve_within(c, &caller.circle, &caller.name, addr, circle, bypass)
}

impl Store {
    /// Resolve a peer named by `caller`'s request inside `caller`'s circle
    /// (see [`resolve_within`]; never a bypass).
    pub fn resolve_peer_for(
        &self,
        caller: &Peer,
        addr: &str,
        circle: Option<&str>,
    ) -> Result<Peer> {
        self.read(|c| resolve_for(c, caller, addr, circle, false).map(Arc::unwrap_or_clone))
    }
}
