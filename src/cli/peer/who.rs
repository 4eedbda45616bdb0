//! `peer register`, `list`, `whoami`, `describe`, `set-description`,
//! `heartbeat`, `unregister`, `prune` and the orchestrator role.

use super::super::{CmdResult, Ctx, Failure, term, text_arg};
use super::parse_role;
use crate::api::*;
use crate::client::Client;
use crate::core::peer::{Role, Status};
use crate::core::time::{fmt_age, fmt_ms};
use clap::Args;
use std::time::Duration;

#[derive(Debug, Args)]
pub struct RegisterArgs {
    /// The peer's name, unique in its circle [env: REPOWIRE_PEER].
    name: Option<String>,
    #[arg(long)]
    circle: Option<String>,
    #[arg(long, value_parser = parse_role)]
    role: Option<Role>,
    /// Agent kind: claude-code, codex, gemini, opencode, shell…
    #[arg(long)]
    backend: Option<String>,
    #[arg(long)]
    project_path: Option<String>,
    /// A tag (repeatable).
    #[arg(long = "tag")]
    tags: Vec<String>,
    #[arg(long)]
    description: Option<String>,
    /// Delivery route: `pull` (default), `channel` (pushed by `repowire mcp`),
    /// `hook`, or `tmux` — the daemon types deliveries into this tmux pane
    /// (`$TMUX`, `$TMUX_PANE`) when it is idle; `tmux:<server>:<pane>` names
    /// another pane. Only for a pane whose program reads lines as messages
    /// (an agent, a script): never a shell prompt.
    #[arg(long)]
    route: Option<String>,
}

pub(super) async fn register(ctx: &Ctx, c: &Client, a: RegisterArgs) -> CmdResult {
    let RegisterArgs {
        name,
        circle,
        role,
        backend,
        project_path,
        tags,
        description,
        route,
    } = a;
    let name = name
        .or_else(|| {
            std::env::var("REPOWIRE_PEER")
                .ok()
                .filter(|s| !s.is_empty())
        })
        .ok_or_else(|| Failure::usage("give a NAME (or set REPOWIRE_PEER)"))?;
    if ctx.as_peer.is_some() {
        return Err(Failure::usage(
            "register does not take --as: it uses the admin token, or your own peer token to resume",
        ));
    }
    let route = match route.as_deref() {
        Some("tmux") => Some(crate::sessions::tmux_route().ok_or_else(|| {
            Failure::usage(
                "--route tmux needs to run inside tmux ($TMUX and $TMUX_PANE); name a pane with --route tmux:<server>:<pane>",
            )
        })?),
        _ => route,
    };
    let req = RegisterReq {
        name,
        circle,
        role,
        backend,
        project_path,
        tags: (!tags.is_empty()).then_some(tags),
        description,
        tmux_claim: crate::sessions::claim_pane(route.as_deref())
            .map_err(|e| Failure::new(crate::core::ErrorCode::TmuxFailed, e))?,
        route,
    };
    let r = match c.register(&req).await {
        Ok(r) => r,
        Err(e) => {
            crate::sessions::release_claim(req.route.as_deref(), req.tmux_claim.as_deref());
            return Err(e.into());
        }
    };
    ctx.out(&r, |r| {
        let mut s = format!(
            "{} {} (circle {}, role {}, id {})",
            if r.resumed { "resumed" } else { "registered" },
            r.peer.name,
            r.peer.circle,
            r.peer.role,
            r.peer.peer_id
        );
        if let Some(t) = &r.token {
            s.push_str(&format!(
                "\nact as this peer with:\n  export REPOWIRE_PEER={}\n  export REPOWIRE_PEER_TOKEN={t}",
                r.peer.name
            ));
        }
        s
    });
    Ok(())
}

pub(super) async fn list(ctx: &Ctx, c: &Client, circle: Option<String>) -> CmdResult {
    let peers = c.list_peers(circle.as_deref()).await?;
    ctx.out(&peers, |ps| {
        if ps.is_empty() {
            return "no peers".into();
        }
        ps.iter().map(peer_line).collect::<Vec<_>>().join("\n")
    });
    Ok(())
}

pub(super) async fn whoami(ctx: &Ctx, c: &Client) -> CmdResult {
    let p = c.whoami().await?;
    ctx.out(&p, peer_detail);
    Ok(())
}

pub(super) async fn describe(
    ctx: &Ctx,
    c: &Client,
    name: &str,
    circle: Option<String>,
) -> CmdResult {
    let p = c.describe(name, circle.as_deref()).await?;
    ctx.out(&p, peer_detail);
    Ok(())
}

pub(super) async fn set_description(ctx: &Ctx, c: &Client, text: String) -> CmdResult {
    let req = UpdatePeerReq {
        description: Some(text_arg(text)?),
        tags: None,
    };
    let p = c.update_me(&req).await?;
    ctx.out(&p, |p| {
        format!("{}: {}", p.name, term::body(&p.description))
    });
    Ok(())
}

pub(super) async fn heartbeat(ctx: &Ctx, c: &Client, status: Option<Status>) -> CmdResult {
    let p = c.heartbeat(&HeartbeatReq { status }).await?;
    ctx.out(&p, |p| format!("{} is {}", p.name, p.status));
    Ok(())
}

/// The named peer with the admin token, else the caller itself.
pub(super) async fn unregister(
    ctx: &Ctx,
    c: &Client,
    name: Option<String>,
    circle: Option<String>,
) -> CmdResult {
    let p = match name {
        Some(n) => ctx.admin_client().unregister(&n, circle.as_deref()).await?,
        None => c.unregister_me().await?,
    };
    ctx.out(&p, |p| {
        format!("unregistered {} (circle {})", p.name, p.circle)
    });
    Ok(())
}

pub(super) async fn prune(
    ctx: &Ctx,
    older_than: Option<Duration>,
    circle: Option<String>,
) -> CmdResult {
    let req = PruneReq {
        older_than_ms: older_than.map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX)),
        circle,
    };
    let r = ctx.admin_client().prune(&req).await?;
    ctx.out(&r, |r| {
        if r.pruned.is_empty() {
            "nothing to prune".into()
        } else {
            r.pruned
                .iter()
                .map(|p| {
                    format!(
                        "pruned {} (circle {}, seen {} ago)",
                        p.name,
                        p.circle,
                        fmt_age(p.last_seen_age_s * 1000)
                    )
                })
                .collect::<Vec<_>>()
                .join("\n")
        }
    });
    Ok(())
}

pub(super) async fn claim_role(ctx: &Ctx, c: &Client, force: bool) -> CmdResult {
    let r = c.claim_orchestrator(force).await?;
    ctx.out(&r, |r| match (&r.previous, &r.takeover) {
        (Some(p), Some(how)) => format!(
            "{} is now the orchestrator of {} (took over from {p}: {how})",
            r.holder.name, r.circle
        ),
        _ => format!("{} is now the orchestrator of {}", r.holder.name, r.circle),
    });
    Ok(())
}

pub(super) async fn release_role(ctx: &Ctx, c: &Client) -> CmdResult {
    let p = c.release_orchestrator().await?;
    ctx.out(&p, |p| {
        format!("{} released the orchestrator role of {}", p.name, p.circle)
    });
    Ok(())
}

pub fn peer_line(p: &PeerInfo) -> String {
    let mark = if p.ghost {
        " [ghost]"
    } else if p.stale {
        " [stale]"
    } else {
        ""
    };
    format!(
        "{:<20} {:<12} {:<12} {:<8}{mark} seen {:>4} ago  {} {}",
        p.name,
        p.circle,
        p.role.as_str(),
        p.status.as_str(),
        fmt_age(p.last_seen_age_s * 1000),
        term::field(&p.backend),
        term::field(&p.description)
    )
}

fn peer_detail(p: &PeerInfo) -> String {
    format!(
        "name:        {}\ncircle:      {}\npeer id:     {}\nrole:        {}\nstatus:      {}{}\nbackend:     {}\nproject:     {}\ntags:        {}\nroute:       {}\ndescription: {}\nlast seen:   {} ({} ago)",
        p.name,
        p.circle,
        p.peer_id,
        p.role,
        p.status,
        if p.ghost {
            " (ghost: no heartbeat)"
        } else if p.stale {
            " (stale)"
        } else {
            ""
        },
        term::field(&p.backend),
        term::field(&p.project_path),
        term::field(&p.tags.join(", ")),
        p.route,
        term::body(&p.description),
        fmt_ms(p.last_seen_ms),
        fmt_age(p.last_seen_age_s * 1000)
    )
}
