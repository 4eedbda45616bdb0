//! A session's life: claim its peer name, serve MCP on stdio (with or
//! without a daemon: see `link`), join the mesh, keep the heartbeat, push,
//! and mark the peer offline however the session ends — end of input, a
//! broken pipe, or a signal (Claude Code stops servers with SIGINT, Codex
//! with SIGTERM). Only kill -9 leaves the peer online; the daemon flags it a
//! ghost once its heartbeat is older than the stale window.

use super::Mesh;
use super::link::{Link, Plan};
use crate::api::RegisterReq;
use crate::client::ClientError;
use std::time::Duration;

/// How deliveries reach the session (`--delivery`): a mode that picks a
/// delivery route (`core::delivery`, docs/delivery-routes.md).
pub use crate::core::delivery::DeliveryMode as Delivery;

/// How `repowire mcp` joins the mesh.
pub struct Join {
    /// How deliveries reach the session.
    pub delivery: Delivery,
    pub name: String,
    pub circle: Option<String>,
    pub backend: Option<String>,
    /// The backend was given (`--backend`): the client's name does not
    /// override it (else `clientInfo.name` does, see `hello.rs`).
    pub backend_fixed: bool,
    pub role: Option<crate::core::peer::Role>,
    pub project_path: Option<String>,
    /// The agent client session this server belongs to (`--client`): its
    /// peer is the one its hooks use, named and kept by
    /// [`crate::sessions`] (so no name is claimed here).
    pub session: Option<crate::sessions::Want>,
    /// The session runs in a tmux pane and `--delivery auto`: the route is
    /// that pane (`tmux:<server>:<pane>`), whatever the client says about
    /// channels (the daemon types deliveries into the pane).
    pub tmux_route: Option<String>,
}

/// How long leaving may take: Claude Code sends SIGINT, then SIGTERM 0.1 s
/// later and SIGKILL 0.4 s after that (measured with Claude Code 2.1.197);
/// the offline mark is sent first and normally takes milliseconds.
const LEAVE_WITHIN: Duration = Duration::from_secs(3);

/// Serve MCP on stdio as this session's peer until the client goes away:
/// end of input, a broken pipe, or a signal (SIGINT, SIGTERM, SIGHUP,
/// SIGQUIT); then
/// mark the peer offline. The handshake never waits for a daemon: without
/// one, the session joins the mesh as soon as one answers.
pub async fn serve(
    home: &crate::home::Home,
    url_flag: Option<&str>,
    join: Join,
) -> anyhow::Result<()> {
    use anyhow::Context;
    use rmcp::ServiceExt;
    // First, so that a client stopping the session at any point is heard.
    let mut stop = Stop::listen().context("while installing signal handlers")?;
    let circle = join
        .circle
        .clone()
        .unwrap_or_else(|| crate::core::peer::DEFAULT_CIRCLE.into());
    let dir = home.dir.join("mcp");
    crate::home::private_dir(&dir).context("while creating <home>/mcp")?;
    // One live session per peer: a second session with the same name (two
    // agents in one repo, or one fixed --name in a shared config) becomes
    // NAME-2, NAME-3, … instead of sharing the first one's inbox.
    let (name, _held) = if join.session.is_some() {
        (join.name.clone(), None)
    } else {
        tokio::select! {
            r = claim_name(&dir, &circle, &join.name) => { let (n, h) = r?; (n, Some(h)) },
            _ = stop.recv() => return Ok(()),
        }
    };
    if name != join.name {
        tracing::warn!(
            "another live session is peer {:?}: this one joins as {name:?}",
            join.name
        );
    }
    let mut req = RegisterReq {
        name: name.clone(),
        circle: join.circle.clone(),
        backend: join.backend.clone(),
        role: join.role,
        project_path: join.project_path.clone(),
        // auto: the route is known after the client's hello (None keeps
        // what a resumed peer had).
        route: join
            .tmux_route
            .clone()
            .or_else(|| join.delivery.fixed().map(|r| r.as_str().into())),
        ..Default::default()
    };
    crate::sessions::claim_or_drop(&mut req);
    let link = Link::new(Plan {
        locate: crate::sessions::Daemon {
            home: home.clone(),
            url: url_flag.map(str::to_string),
        },
        req: req.clone(),
        token_file: dir.join(format!("{circle}@{name}.token")),
        session: join.session.clone(),
    });
    // Join now if a daemon answers: the orchestrator's instructions carry
    // its persona's identity text, and a refusal (the role held, say) ends
    // the session with the reason before the handshake.
    let joining = link.join();
    tokio::pin!(joining);
    let identity = tokio::select! {
        r = &mut joining => match r {
            Ok(j) => match j.peer.role {
                crate::core::peer::Role::Orchestrator => j
                    .client
                    .persona_status(None)
                    .await
                    .ok()
                    .and_then(|s| s.identity),
                _ => None,
            },
            Err(e @ ClientError::Api(_)) => {
                anyhow::bail!("{}", link.explain(&e).1)
            }
            Err(e) => {
                tracing::warn!("{}", link.explain(&e).1);
                None
            }
        },
        _ = stop.recv() => {
            // A registration in flight lands first, then is undone.
            let _ = tokio::time::timeout(LEAVE_WITHIN, joining).await;
            return leave(&link, None).await;
        }
    };
    let seen = super::push::Shared::default();
    // What the client says about itself (backend, channels), recorded in
    // the peer's row once joined.
    let hello = std::sync::Arc::new(super::hello::Hello::new(
        link.clone(),
        join.delivery,
        join.backend_fixed,
        join.tmux_route.is_some(),
        req,
        seen.clone(),
    ));
    let mesh = Mesh::new(link.clone(), identity, seen, hello.clone());
    let server = tokio::select! {
        s = mesh.serve(rmcp::transport::stdio()) => {
            match s {
                Ok(s) => s,
                Err(e) => {
                    leave(&link, None).await?;
                    return Err(e).context("while starting the MCP session");
                }
            }
        }
        _ = stop.recv() => return stopped(leave(&link, None).await),
    };
    // The backend and (auto) the push route follow what the client says;
    // recorded now if the session has joined, else when it does.
    hello
        .started(server.peer().peer_info().as_deref(), server.peer())
        .await;
    tracing::debug!("session started");
    let (quit, quitting) = tokio::sync::oneshot::channel::<()>();
    let member = tokio::spawn(membership(link.clone(), Membership { hello }, quitting));
    let signalled = tokio::select! {
        _ = server.waiting() => false,
        _ = stop.recv() => true,
    };
    let left = leave(&link, Some((quit, member))).await;
    if signalled {
        stopped(left)
    } else {
        // The session itself ended well; a peer left online is flagged a
        // ghost by the daemon later.
        if let Err(e) = left {
            tracing::warn!("{e:#}");
        }
        Ok(())
    }
}

/// After a signal: exit now. The runtime cannot end by itself while a
/// blocking read of stdin is pending (a client that sends a signal keeps
/// the pipe open), and the client kills what is still there soon after.
fn stopped(left: anyhow::Result<()>) -> anyhow::Result<()> {
    if let Err(e) = &left {
        tracing::warn!("{e:#}");
    }
    std::process::exit(0)
}

/// Leave the mesh: stop the membership task (a request it has in flight,
/// a heartbeat or a join, lands first), then mark the peer offline.
async fn leave(
    link: &Link,
    member: Option<(
        tokio::sync::oneshot::Sender<()>,
        tokio::task::JoinHandle<()>,
    )>,
) -> anyhow::Result<()> {
    let work = async {
        if let Some((quit, task)) = member {
            let _ = quit.send(());
            let _ = task.await;
        }
        let Some(j) = link.joined() else {
            return Ok(()); // never joined: nothing to mark
        };
        let offline = crate::api::HeartbeatReq {
            status: Some(crate::core::peer::Status::Offline),
        };
        j.client
            .heartbeat(&offline)
            .await
            .map(|_| ())
            .map_err(|e| anyhow::anyhow!("could not mark the peer offline: {e}"))
    };
    tokio::time::timeout(LEAVE_WITHIN, work)
        .await
        .unwrap_or_else(|_| Err(anyhow::anyhow!("could not mark the peer offline in time")))
}

/// The signals that end a session. Repeats are absorbed, so leaving is
/// not cut short by the SIGTERM that follows a SIGINT.
struct Stop {
    int: tokio::signal::unix::Signal,
    term: tokio::signal::unix::Signal,
    hup: tokio::signal::unix::Signal,
    /// `Ctrl-\` in the agent's terminal reaches the whole foreground process
    /// group, this server included; by default it would die without leaving.
    quit: tokio::signal::unix::Signal,
}

impl Stop {
    fn listen() -> std::io::Result<Self> {
        use tokio::signal::unix::{SignalKind, signal};
        Ok(Self {
            int: signal(SignalKind::interrupt())?,
            term: signal(SignalKind::terminate())?,
            hup: signal(SignalKind::hangup())?,
            quit: signal(SignalKind::quit())?,
        })
    }

    async fn recv(&mut self) {
        tokio::select! {
            _ = self.int.recv() => tracing::debug!("SIGINT"),
            _ = self.term.recv() => tracing::debug!("SIGTERM"),
            _ = self.hup.recv() => tracing::debug!("SIGHUP"),
            _ = self.quit.recv() => tracing::debug!("SIGQUIT"),
        }
    }
}

/// What the session does once it has joined.
struct Membership {
    /// What the client's hello told about the peer (its backend from
    /// `clientInfo.name`, the delivery route for `--delivery auto`) and the
    /// pusher: recorded and started once joined — also by a session that
    /// joins late. Stopped when the membership ends.
    hello: std::sync::Arc<super::hello::Hello>,
}

/// Join (at once if a tool call asks, else retrying), then record what the
/// client's hello told, push, and beat, until told to quit. It stops only
/// between requests, so nothing it sent can land after the offline mark.
async fn membership(link: Link, then: Membership, quit: tokio::sync::oneshot::Receiver<()>) {
    member(&link, &then, quit).await;
    then.hello.stop().await;
}

async fn member(link: &Link, then: &Membership, mut quit: tokio::sync::oneshot::Receiver<()>) {
    let mut wait = Duration::from_millis(250);
    // The session's start said why it could not join (a daemon not
    // answering); a new reason is said again.
    let mut said = crate::core::ErrorCode::DaemonUnreachable
        .as_str()
        .to_string();
    while link.joined().is_none() {
        tokio::select! {
            _ = link.nudged_or(wait) => {}
            _ = &mut quit => return,
        }
        match link.join().await {
            Ok(j) => tracing::info!("joined the mesh as {}", j.peer.name),
            Err(e) => {
                let (code, why) = link.explain(&e);
                if code != said {
                    tracing::warn!("{why} (retrying)");
                    said = code;
                } else {
                    tracing::debug!("{why}");
                }
                wait = (wait * 2).min(Duration::from_secs(2));
            }
        }
    }
    then.hello.joined().await;
    loop {
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_secs(20)) => {}
            _ = &mut quit => break,
        }
        // (A daemon that moved is followed by the client itself.)
        let _ = link.heartbeat(&Default::default()).await;
    }
}

/// Lock `<circle>@<name>.lock` under `dir` for this process's life (the OS
/// drops the lock when the process ends, crash or not); if a live session
/// holds it, try `name-2`, `name-3`, ….
async fn claim_name(
    dir: &std::path::Path,
    circle: &str,
    name: &str,
) -> anyhow::Result<(String, std::fs::File)> {
    use anyhow::Context;
    // A session restarting (a client reconnecting) may overlap the old
    // process's last moments: wait a little for the name itself first.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(3);
    for i in 1..=99 {
        let candidate = if i == 1 {
            name.to_string()
        } else {
            format!("{name}-{i}")
        };
        let path = dir.join(format!("{circle}@{candidate}.lock"));
        let f = crate::home::private_file()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .with_context(|| format!("while opening {}", path.display()))?;
        loop {
            match f.try_lock() {
                Ok(()) => return Ok((candidate, f)),
                Err(std::fs::TryLockError::WouldBlock)
                    if i == 1 && tokio::time::Instant::now() < deadline =>
                {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                Err(std::fs::TryLockError::WouldBlock) => break,
                Err(std::fs::TryLockError::Error(e)) => {
                    return Err(e).with_context(|| format!("while locking {}", path.display()));
                }
            }
        }
    }
    anyhow::bail!("99 live sessions already use the name {name:?} in circle {circle:?}")
}

pub(super) fn write_private(path: &std::path::Path, token: &str) -> anyhow::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)?;
    f.write_all(token.as_bytes())?;
    Ok(())
}
