//! Joining the mesh: register (or resume) the session's peer, keep its
//! heartbeat, serve MCP on stdio, and mark the peer offline at the end.

use super::Mesh;
use crate::api::RegisterReq;
use crate::client::Client;
use std::time::Duration;

/// How deliveries reach the session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Delivery {
    /// Channel events (Claude Code), and the `inbox` tool.
    Push,
    /// The `inbox` tool only.
    Pull,
    /// Push when the client says it is Claude Code, else pull: a client that
    /// ignores channel events must not have its messages confirmed unseen.
    Auto,
}

impl Delivery {
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "push" => Some(Self::Push),
            "pull" => Some(Self::Pull),
            "auto" => Some(Self::Auto),
            _ => None,
        }
    }
}

/// Where the daemon is: the `--url` given, else `REPOWIRE_URL`, else what
/// `daemon.json` says now (so a restarted daemon is followed, an explicit
/// one never left).
#[derive(Clone)]
struct Locate {
    home: crate::home::Home,
    flag: Option<String>,
}

impl Locate {
    fn url(&self) -> String {
        self.home.daemon_url(self.flag.as_deref())
    }
}

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
}

/// Register (or resume) this session's peer and serve MCP on stdio until
/// the client goes away; then mark the peer offline.
pub async fn serve(
    home: &crate::home::Home,
    url_flag: Option<&str>,
    join: Join,
) -> anyhow::Result<()> {
    use anyhow::Context;
    use rmcp::ServiceExt;
    let locate = Locate {
        home: home.clone(),
        flag: url_flag.map(str::to_string),
    };
    let follow = locate.clone();
    let admin = Client::new(&locate.url(), home.read_token(), None)
        .following(std::sync::Arc::new(move || follow.url()));
    admin.health().await.map_err(|e| {
        anyhow::anyhow!(
            "{e}. repowire mcp needs a running daemon: start one with `repowire daemon start`"
        )
    })?;
    // The peer token stays in this process and in <home>/mcp/, never in tool output.
    let circle = join
        .circle
        .clone()
        .unwrap_or_else(|| crate::core::peer::DEFAULT_CIRCLE.into());
    let dir = home.dir.join("mcp");
    crate::home::private_dir(&dir).context("while creating <home>/mcp")?;
    // One live session per peer: a second session with the same name (two
    // agents in one repo, or one fixed --name in a shared config) becomes
    // NAME-2, NAME-3, … instead of sharing the first one's inbox.
    let (name, _held) = claim_name(&dir, &circle, &join.name).await?;
    if name != join.name {
        tracing::warn!(
            "another live session is peer {:?}: this one joins as {name:?}",
            join.name
        );
    }
    let token_file = dir.join(format!("{circle}@{name}.token"));
    let req = RegisterReq {
        name: name.clone(),
        circle: join.circle.clone(),
        backend: join.backend.clone(),
        role: join.role,
        project_path: join.project_path.clone(),
        // auto: the route is known after the client's hello (None keeps
        // what a resumed peer had).
        route: match join.delivery {
            Delivery::Push => Some("channel".into()),
            Delivery::Pull => Some("pull".into()),
            Delivery::Auto => None,
        },
        ..Default::default()
    };
    let saved = std::fs::read_to_string(&token_file)
        .ok()
        .map(|t| t.trim().to_string());
    let token = match saved {
        Some(t) => {
            let me = admin.with_identity(Some(t.clone()), None);
            me.register(&req)
                .await
                .context("while resuming this session's peer")?;
            t
        }
        None => {
            let r = admin
                .register(&req)
                .await
                .context("while registering this session's peer")?;
            let t = r.token.context("the daemon issued no token")?;
            write_private(&token_file, &t)?;
            t
        }
    };
    let client = admin.with_identity(Some(token), None);
    let beat = client.clone();
    let (stop_beat, mut stopped) = tokio::sync::oneshot::channel::<()>();
    let heart = tokio::spawn(async move {
        loop {
            // Stop only between beats: a beat in flight lands before the
            // offline one below.
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_secs(20)) => {}
                _ = &mut stopped => return,
            }
            // (A daemon that moved is followed by the client itself.)
            let _ = beat.heartbeat(&Default::default()).await;
        }
    });
    // The orchestrator gets its persona's identity text at session start.
    let me = client
        .whoami()
        .await
        .context("while reading this session's peer")?;
    let identity = match me.role {
        crate::core::peer::Role::Orchestrator => client
            .persona_status(None)
            .await
            .ok()
            .and_then(|s| s.identity),
        _ => None,
    };
    let seen = super::push::Shared::default();
    let hello = std::sync::Arc::new(super::hello::Hello::new(
        client.clone(),
        join.delivery,
        join.backend_fixed,
        req,
        seen.clone(),
    ));
    let server = Mesh::new(client.clone(), me.peer_id, identity, seen, hello.clone())
        .serve(rmcp::transport::stdio())
        .await
        .context("while starting the MCP session")?;
    // The backend and (auto) the push route follow what the client says.
    hello
        .started(server.peer().peer_info().as_deref(), server.peer())
        .await;
    tracing::debug!("session started");
    let _ = server.waiting().await;
    let _ = stop_beat.send(());
    let _ = heart.await;
    hello.stop().await;
    let offline = crate::api::HeartbeatReq {
        status: Some(crate::core::peer::Status::Offline),
    };
    let _ = client.heartbeat(&offline).await;
    Ok(())
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

fn write_private(path: &std::path::Path, token: &str) -> anyhow::Result<()> {
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
