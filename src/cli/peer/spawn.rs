//! `peer spawn`, `peer kill` and `peer attach`: agent sessions in tmux
//! windows. The daemon starts and stops them; these only translate the
//! command line (a relative path, the tmux this runs in) and render.

use super::super::{CmdResult, Ctx, Failure};
use crate::api::*;
use crate::client::Client;
use crate::core::ErrorCode;
use crate::core::tmux::{PREFIX, PaneAddr, attach_command, socket_from_env};
use clap::Args;
use serde::Serialize;

#[derive(Debug, Args)]
pub struct SpawnArgs {
    /// The project directory the session starts in (relative to here).
    path: std::path::PathBuf,
    /// What runs: claude-code, codex, another backend the daemon's
    /// --spawn-command configures, or shell (runs --command) [default:
    /// shell with --command, else claude-code].
    #[arg(long)]
    backend: Option<String>,
    /// The peer's name [default: the directory's name, made unique: app, app-2, …].
    #[arg(long)]
    name: Option<String>,
    /// The circle to spawn into [default: yours; the admin's: default].
    /// Its tmux session is named after it.
    #[arg(long)]
    circle: Option<String>,
    /// Admin only (a peer token is refused): the command the window runs
    /// instead of the backend's.
    #[arg(long)]
    command: Option<String>,
    /// The tmux server: a socket name (-L) or path (-S) [default: the tmux
    /// this runs in, else the daemon's --tmux-server].
    #[arg(long)]
    server: Option<String>,
    /// A first note to the new peer (its task), from you.
    #[arg(long)]
    message: Option<String>,
}

/// The socket of the tmux server this command runs in, if any.
fn inside_tmux() -> Option<String> {
    let env = std::env::var("TMUX").ok();
    socket_from_env(env.as_deref()).map(str::to_string)
}

pub(super) async fn spawn(ctx: &Ctx, c: &Client, a: SpawnArgs) -> CmdResult {
    let path = std::path::absolute(&a.path)
        .map_err(|e| Failure::usage(format!("cannot use {}: {e}", a.path.display())))?;
    let path = path
        .to_str()
        .ok_or_else(|| Failure::usage(format!("{} is not UTF-8", path.display())))?
        .to_string();
    let req = SpawnReq {
        path,
        backend: a.backend,
        name: a.name,
        circle: a.circle,
        command: a.command,
        server: a.server.or_else(inside_tmux),
        message: a.message,
    };
    let r = c.spawn_peer(&req).await?;
    ctx.out(&r, |r| {
        format!(
            "spawned {} in circle {} (backend {}): offline until its session registers\n  \
             pane {} of tmux session {} on {}\n  look at it: {}",
            r.peer.name, r.peer.circle, r.peer.backend, r.pane, r.session, r.server, r.attach
        )
    });
    Ok(())
}

pub(super) async fn kill(ctx: &Ctx, c: &Client, name: String, circle: Option<String>) -> CmdResult {
    let r = c.kill_peer(&KillReq { name, circle }).await?;
    ctx.out(&r, |r| {
        let pane = if r.pane_killed {
            "its tmux pane is closed"
        } else if r.peer.route.starts_with(PREFIX) {
            "its tmux pane was already gone"
        } else {
            "it had no tmux pane"
        };
        format!(
            "killed {} ({pane}); it is {} now",
            r.peer.name, r.peer.status
        )
    });
    Ok(())
}

/// What `peer attach --json` prints.
#[derive(Serialize)]
struct Attach {
    peer: String,
    circle: String,
    server: String,
    pane: String,
    command: String,
}

pub(super) async fn attach(
    ctx: &Ctx,
    c: &Client,
    name: String,
    circle: Option<String>,
) -> CmdResult {
    let p = c.describe(&name, circle.as_deref()).await?;
    if !p.route.starts_with(PREFIX) {
        return Err(Failure::new(
            ErrorCode::NotFound,
            format!(
                "{} has no tmux pane to attach to: its delivery route is {:?} (a peer spawned with `repowire peer spawn`, or registered inside tmux, has one)",
                p.name, p.route
            ),
        ));
    }
    let addr = PaneAddr::parse(&p.route).map_err(|e| Failure::new(e.code, e.message))?;
    let out = Attach {
        command: attach_command(&addr, inside_tmux().as_deref()),
        peer: p.name,
        circle: p.circle,
        server: addr.server,
        pane: addr.pane,
    };
    ctx.out(&out, |a| a.command.clone());
    Ok(())
}
