//! Peers and the orchestrator role: register, read, update, heartbeat,
//! remove, prune, claim and release.

use crate::DaemonHandle;
use crate::auth::Caller;
use crate::policy::{self, Action, Target};
use crate::tmux::claim;
use repowire_client::api::{
    ClaimResp, OrchestratorStatus, PeerInfo, PruneResp, RegisterReq, RegisterResp, UpdatePeerReq,
};
use repowire_core::error::Error;
use repowire_core::peer::{Peer, Status};

/// A peer as the API shows it (online or stale, now).
pub fn info(h: &DaemonHandle, p: &Peer) -> PeerInfo {
    PeerInfo::of(p, h.clock.now_ms(), h.store.policy.stale_after_ms)
}

/// Register a new peer (admin token) or resume one (its own token). A tmux
/// route is recorded only once its pane showed the registration's claim
/// (`tmux::claim`), and the pane is then bound to the peer.
pub async fn register(
    h: &DaemonHandle,
    c: &Caller,
    mut req: RegisterReq,
) -> Result<RegisterResp, Error> {
    policy::authorize(c, Action::Register, Target::none())?;
    let claim = req.tmux_claim.take();
    let pane = match req.route.as_deref() {
        Some(r) if r.starts_with(repowire_core::tmux::PREFIX) => {
            Some(claim::verify(h, r, claim.as_deref()).await?)
        }
        _ => None,
    };
    let (row, token, resumed) = h.store.register(req.into(), c.viewer())?;
    if let Some(v) = &pane {
        // The pane is marked only for a peer that is committed.
        h.store.land_deferred()?;
        claim::bind(h, v, &row.id).await;
    }
    Ok(RegisterResp {
        peer: info(h, &row),
        token,
        resumed,
    })
}

/// The peers of the caller's circle (the admin: any, or all).
pub fn list(h: &DaemonHandle, c: &Caller, circle: Option<String>) -> Result<Vec<PeerInfo>, Error> {
    let circle = policy::read_scope(c, circle)?;
    let rows = h.store.list_peers(circle.as_deref())?;
    Ok(rows.iter().map(|p| info(h, p)).collect())
}

pub fn whoami(h: &DaemonHandle, c: &Caller) -> Result<PeerInfo, Error> {
    Ok(info(h, c.me()?))
}

/// Resolve a peer the caller names in a read (`?peer=`, a path name): a
/// peer token resolves inside its own circle only (another circle is
/// `cross_circle`, see `store::circles`); the admin, also acting as a peer,
/// reads any circle. Writes resolve names in the store, as the acting peer.
pub fn resolve_visible(
    h: &DaemonHandle,
    c: &Caller,
    addr: &str,
    circle: Option<&str>,
) -> Result<Peer, Error> {
    match c.viewer() {
        Some(me) => h.store.resolve_peer_for(me, addr, circle),
        None => h.store.resolve_peer(addr, circle),
    }
}

/// A peer named in the caller's circle (the admin: any circle).
pub fn describe(
    h: &DaemonHandle,
    c: &Caller,
    name: &str,
    circle: Option<&str>,
) -> Result<PeerInfo, Error> {
    let p = resolve_visible(h, c, name, circle)?;
    Ok(info(h, &p))
}

pub fn update_me(h: &DaemonHandle, c: &Caller, req: UpdatePeerReq) -> Result<PeerInfo, Error> {
    let row = h.store.update_peer(&c.me()?.id, req.into())?;
    Ok(info(h, &row))
}

pub fn heartbeat(h: &DaemonHandle, c: &Caller, status: Option<Status>) -> Result<PeerInfo, Error> {
    let row = h.store.heartbeat(&c.me()?.id, status)?;
    Ok(info(h, &row))
}

pub fn unregister_me(h: &DaemonHandle, c: &Caller) -> Result<PeerInfo, Error> {
    let row = h.store.unregister(&c.me()?.id)?;
    Ok(info(h, &row))
}

/// Remove another peer: the admin only.
pub fn unregister_named(
    h: &DaemonHandle,
    c: &Caller,
    name: &str,
    circle: Option<&str>,
) -> Result<PeerInfo, Error> {
    policy::authorize(c, Action::Administer, Target::none())?;
    let p = h.store.resolve_peer(name, circle)?;
    let row = h.store.unregister(&p.id)?;
    Ok(info(h, &row))
}

/// Remove peers quiet for longer than `older_than_ms`: the admin only.
pub fn prune(
    h: &DaemonHandle,
    c: &Caller,
    older_than_ms: Option<i64>,
    circle: Option<&str>,
) -> Result<PruneResp, Error> {
    policy::authorize(c, Action::Administer, Target::none())?;
    let older = older_than_ms.unwrap_or(h.store.policy.stale_after_ms);
    if older < 0 {
        return Err(Error::bad_request("older_than_ms must not be negative"));
    }
    // Without an age given, peers whose pane is gone go too.
    let rows = h.store.prune(older, circle, older_than_ms.is_none())?;
    Ok(PruneResp {
        pruned: rows.iter().map(|p| info(h, p)).collect(),
    })
}

pub fn claim(h: &DaemonHandle, c: &Caller, force: bool) -> Result<ClaimResp, Error> {
    let claimed = h.store.claim_orchestrator(&c.me()?.id, force)?;
    Ok(ClaimResp::of(claimed, h.store.policy.stale_after_ms))
}

pub fn release(h: &DaemonHandle, c: &Caller) -> Result<PeerInfo, Error> {
    let row = h.store.release_orchestrator(&c.me()?.id)?;
    Ok(info(h, &row))
}

/// Who holds the orchestrator role of a circle (asked, else the caller's,
/// else the default), and its persona.
pub fn orchestrator_status(
    h: &DaemonHandle,
    c: &Caller,
    circle: Option<String>,
) -> Result<OrchestratorStatus, Error> {
    let circle = policy::read_scope(c, circle)?
        .or_else(|| c.me().ok().map(|p| p.circle.clone()))
        .unwrap_or_else(|| repowire_core::peer::DEFAULT_CIRCLE.to_string());
    repowire_core::peer::validate_name("circle", &circle)?;
    let stale_after = h.store.policy.stale_after_ms;
    let holder = h.store.orchestrator(&circle)?;
    let now = h.clock.now_ms();
    Ok(OrchestratorStatus {
        present: holder.is_some(),
        stale: holder
            .as_ref()
            .is_some_and(|p| !p.reachable(now, stale_after)),
        name: holder.as_ref().map(|p| p.name.clone()),
        peer_id: holder.as_ref().map(|p| p.id.to_string()),
        last_seen_ms: holder.as_ref().map(|p| p.last_seen_ms),
        last_seen_age_s: holder
            .as_ref()
            .map(|p| (now - p.last_seen_ms).max(0) / 1000),
        stale_after_s: stale_after / 1000,
        persona: h
            .store
            .active_persona(&circle)?
            .map(|n| h.personas.brief(&circle, &n)),
        circle,
    })
}
