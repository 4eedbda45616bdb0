//! Spawning and killing agent sessions for API callers: which circle, who
//! may ([`Action::Spawn`]: the circle's orchestrator or the admin;
//! [`Action::SpawnCommand`]: naming the command, the admin only), then one
//! call into [`crate::tmux::spawn`]. A persona's `route.spawn` calls that
//! module directly, as the daemon's own decision.

use crate::DaemonHandle;
use crate::auth::Caller;
use crate::policy::{self, Action, Target};
use crate::service::peers::info;
use crate::tmux::spawn::{self as tmux_spawn, SHELL, SpawnSpec};
use repowire_client::api::{KillReq, KillResp, SpawnReq, SpawnResp};
use repowire_core::error::{Error, ErrorCode};
use repowire_core::ids::{IdKind, PeerId};
use repowire_core::peer::{DEFAULT_CIRCLE, split_address};

/// The backend a spawn runs when none is named.
const DEFAULT_BACKEND: &str = "claude-code";

/// Who the caller is in events and messages.
fn by(c: &Caller) -> String {
    c.me()
        .map(|p| p.name.clone())
        .unwrap_or_else(|_| "admin".into())
}

/// The circle asked for, else the caller's, else `default`.
fn circle_of(c: &Caller, asked: Option<String>) -> String {
    asked
        .or_else(|| c.me().ok().map(|p| p.circle.clone()))
        .unwrap_or_else(|| DEFAULT_CIRCLE.to_string())
}

/// Start an agent session for a new peer in a tmux window.
pub async fn spawn(h: &DaemonHandle, c: &Caller, req: SpawnReq) -> Result<SpawnResp, Error> {
    let circle = circle_of(c, req.circle);
    repowire_core::peer::validate_name("circle", &circle)?;
    policy::authorize(c, Action::Spawn, Target::circle(&circle))?;
    if req.command.is_some() {
        policy::authorize(c, Action::SpawnCommand, Target::circle(&circle))?;
    }
    let backend = req.backend.unwrap_or_else(|| {
        if req.command.is_some() {
            SHELL
        } else {
            DEFAULT_BACKEND
        }
        .to_string()
    });
    let spec = SpawnSpec {
        path: req.path.into(),
        backend,
        name: req.name,
        circle,
        command: req.command,
        server: req.server,
        message: req.message,
        by: by(c),
        job: None,
    };
    let s = tmux_spawn::spawn(h, spec).await?;
    Ok(SpawnResp {
        peer: info(h, &s.peer),
        pane: s.pane,
        server: s.server,
        session: s.session,
        attach: s.attach,
    })
}

/// Kill a peer's session: the peer is named (`NAME`, `NAME@CIRCLE`) or
/// given by id, and must be in the caller's circle (the admin: any).
pub async fn kill(h: &DaemonHandle, c: &Caller, req: KillReq) -> Result<KillResp, Error> {
    let peer = if IdKind::of(&req.name) == Some(IdKind::Peer) {
        let id = PeerId::parse(&req.name)?;
        h.store
            .peer_by_id(&id)?
            .ok_or_else(|| Error::new(ErrorCode::UnknownPeer, format!("no peer {}", req.name)))?
    } else {
        let (name, at) = split_address(&req.name);
        let circle = circle_of(c, at.map(str::to_string).or(req.circle.clone()));
        repowire_core::peer::validate_name("circle", &circle)?;
        // Authorized before the lookup: another circle is refused whether
        // or not such a peer exists there.
        policy::authorize(c, Action::Spawn, Target::circle(&circle))?;
        h.store.resolve_peer(name, Some(&circle))?
    };
    if let Some(asked) = &req.circle
        && *asked != peer.circle
    {
        return Err(Error::new(
            ErrorCode::UnknownPeer,
            format!("no peer {} in circle {asked:?}", req.name),
        ));
    }
    policy::authorize(c, Action::Spawn, Target::circle(&peer.circle))?;
    let k = tmux_spawn::kill_peer(h, &by(c), &peer).await?;
    Ok(KillResp {
        peer: info(h, &k.peer),
        pane_killed: k.pane_killed,
    })
}
