//! Starting and stopping agent sessions in tmux windows: [`spawn`] (for
//! `peer spawn`, the MCP `spawn_peer` and a persona's `route.spawn`),
//! [`kill`], and the [`watch`]er that follows a spawned session until it
//! registers, assigning it the job it was started for, or gives up on it.
//!
//! A spawn registers its peer first (offline, in the store), then opens a
//! window named after the peer in the tmux session named after the circle
//! (created if missing), in the project directory, running the backend's
//! command with the peer's identity in its environment (`REPOWIRE_HOME`,
//! `REPOWIRE_URL`, `REPOWIRE_PEER`, `REPOWIRE_CIRCLE`, and
//! `REPOWIRE_PEER_TOKEN_FILE`: a file only the daemon's user can read,
//! removed once the session ends). The session joins by resuming
//! with that token (`repowire peer register`,
//! or `repowire mcp`), which sets it online. The pane is marked with the
//! peer's id (pane option `@repowire_peer`), so a kill never closes a pane
//! that a restarted server has given to someone else. A kill revokes the
//! peer's token.
//!
//! Who may spawn or kill is decided before (`service::spawn`); the rows and
//! the cap are the store's (`spawns.rs`).

use super::cmd::TmuxError;
use crate::DaemonHandle;
use repowire_core::error::{Error, ErrorCode};
use repowire_core::ids::{JobId, PeerId};
use repowire_core::limits::PATH_BYTES;
use repowire_core::peer::{Peer, Status, validate_name};
use repowire_core::time::fmt_age;
use repowire_core::tmux::{PaneAddr, attach_command};
use repowire_store::{NewSpawn, SpawnRow, SpawnState};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The backend that runs the command given with the spawn.
pub const SHELL: &str = "shell";
/// How often the watcher looks at open spawns when nothing woke it.
const TICK: Duration = Duration::from_secs(1);
/// A pending window is looked for only after this long (tmux has it by then).
const GRACE_MS: i64 = 1_000;
/// A spawn still starting after this long was cut short (a daemon restart).
const STARTING_MS: i64 = 30_000;

/// What to start.
#[derive(Debug, Clone)]
pub struct SpawnSpec {
    /// The project directory: absolute, existing.
    pub path: PathBuf,
    /// A configured backend (`--spawn-command`; `claude-code`, `codex` by
    /// default), or `shell` with a `command`.
    pub backend: String,
    /// The peer's name; default: the directory's name, made unique.
    pub name: Option<String>,
    pub circle: String,
    /// What the window runs instead of the backend's command.
    pub command: Option<String>,
    /// The tmux server (socket name or path); default `--tmux-server`.
    pub server: Option<String>,
    /// A first note to the new peer, from `by`.
    pub message: Option<String>,
    /// Who asked: a peer name, `admin`, a persona.
    pub by: String,
    /// The job the session is started for: assigned to it once it registers.
    pub job: Option<JobId>,
}

/// A started session.
#[derive(Debug, Clone)]
pub struct Spawned {
    /// Its peer: offline until the session registers.
    pub peer: Peer,
    pub pane: String,
    /// The server's socket path.
    pub server: String,
    /// The tmux session holding its window.
    pub session: String,
    /// A command line that shows the pane.
    pub attach: String,
}

/// A killed session.
#[derive(Debug, Clone)]
pub struct Killed {
    pub peer: Peer,
    /// Whether a pane was closed (false: there was none, it was gone, or
    /// it belongs to another peer now).
    pub pane_killed: bool,
}

/// What a valid spec resolves to.
#[derive(Debug, Clone, PartialEq)]
struct Plan {
    path: String,
    command: String,
    server: String,
    session: String,
    base: String,
}

/// The tmux session of a circle: the circle's name, `.` made `_` (tmux
/// reads a dot in a target as a window separator and renames it so).
pub fn session_name(circle: &str) -> String {
    circle.replace('.', "_")
}

/// A peer name from a directory: its last component with every character
/// outside `[A-Za-z0-9._-]` made `-`, at most 64; `agent` when nothing is left.
pub fn base_name(path: &Path) -> String {
    let raw = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let clean: String = raw
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "._-".contains(c) {
                c
            } else {
                '-'
            }
        })
        .take(repowire_core::peer::MAX_NAME_LEN)
        .collect();
    let clean = clean.trim_matches('-');
    if clean.is_empty() || clean.chars().all(|c| c == '.') {
        "agent".into()
    } else {
        clean.to_string()
    }
}

/// Check a spec against the configuration and the file system.
fn plan(
    cfg: &super::TmuxConfig,
    policy: &repowire_core::policy::Policy,
    s: &SpawnSpec,
) -> Result<Plan, Error> {
    let shown = s.path.display();
    if !s.path.is_absolute() {
        return Err(Error::bad_request(format!(
            "the path {shown:?} is not absolute: give the project directory's full path"
        )));
    }
    let path = s
        .path
        .to_str()
        .filter(|p| p.len() <= PATH_BYTES && !p.chars().any(char::is_control))
        .ok_or_else(|| {
            Error::bad_request(format!(
                "the path {shown:?} is not usable: UTF-8, without control characters, at most {PATH_BYTES} bytes"
            ))
        })?;
    match std::fs::metadata(&s.path) {
        Ok(m) if m.is_dir() => {}
        Ok(_) => {
            return Err(Error::bad_request(format!(
                "{shown:?} is not a directory: a session starts in a project directory"
            )));
        }
        Err(e) => {
            return Err(Error::bad_request(format!(
                "{shown:?} cannot be used as the project directory: {e}"
            )));
        }
    }
    validate_name("circle", &s.circle)?;
    if let Some(n) = &s.name {
        validate_name("peer name", n)?;
    }
    let configured = cfg.spawn_commands.get(&s.backend);
    let command = match (&s.command, configured) {
        (Some(c), _) => c.clone(),
        (None, Some(c)) => c.clone(),
        (None, None) if s.backend == SHELL => {
            return Err(Error::bad_request(
                "backend shell runs the command you give: pass a command (--command CMD)",
            ));
        }
        (None, None) => {
            let known: Vec<&str> = cfg.spawn_commands.keys().map(String::as_str).collect();
            return Err(Error::bad_request(format!(
                "unknown backend {:?}: the configured ones are {} (the daemon's --spawn-command BACKEND=COMMAND adds one), or shell with a command",
                s.backend,
                known.join(", ")
            )));
        }
    };
    if s.command.is_some() && configured.is_none() && s.backend != SHELL {
        validate_name("backend", &s.backend)?;
    }
    if command.trim().is_empty() || command.chars().any(|c| c.is_control() && c != '\t') {
        return Err(Error::bad_request(
            "the command is empty or holds control characters: give one line",
        ));
    }
    policy.check_text("command", &command)?;
    let server = s.server.clone().unwrap_or_else(|| cfg.server.clone());
    super::socket::check_server(&server)?;
    if let Some(m) = &s.message {
        policy.check_text("message", m)?;
    }
    Ok(Plan {
        path: path.to_string(),
        command,
        server,
        session: session_name(&s.circle),
        base: base_name(&s.path),
    })
}

/// Start an agent session for a new peer (see the module's doc). Errors:
/// `bad_request` (path, backend, command, server), `invalid_name`,
/// `name_taken`, `spawn_limit`, `tmux_failed` (nothing is left behind).
pub async fn spawn(h: &DaemonHandle, spec: SpawnSpec) -> Result<Spawned, Error> {
    let p = plan(&h.tmux, &h.store.policy, &spec)?;
    let new = NewSpawn {
        name: spec.name.as_deref(),
        base: &p.base,
        circle: &spec.circle,
        backend: &spec.backend,
        path: &p.path,
        server: &p.server,
        session: &p.session,
        by: &spec.by,
        job: spec.job.as_ref(),
        max_live: h.tmux.max_spawns_per_circle,
    };
    let (peer, token, row) = h.store.begin_spawn(&new)?;
    let token_file = match write_token(h, &peer.id, &token) {
        Ok(f) => f,
        Err(e) => {
            let why = format!("could not write its token file: {e}");
            if let Err(e2) = h.store.spawn_aborted(row.id, &why) {
                tracing::error!(peer = %peer.name, error = %e2, "recording a failed spawn failed");
            }
            return Err(Error::internal(format!("spawning {}: {why}", peer.name)));
        }
    };
    let env = [
        ("REPOWIRE_HOME", h.home.dir.to_string_lossy().into_owned()),
        ("REPOWIRE_URL", h.url.clone()),
        ("REPOWIRE_PEER", peer.name.clone()),
        ("REPOWIRE_CIRCLE", peer.circle.clone()),
        (TOKEN_FILE_VAR, token_file.to_string_lossy().into_owned()),
    ];
    let (addr, pid) = match open_window(h, &p, &peer.name, &env).await {
        Ok(a) => a,
        Err(e) => {
            forget_token(h, &peer.id);
            let why = format!("tmux could not start its window: {e}");
            if let Err(e2) = h.store.spawn_aborted(row.id, &why) {
                tracing::error!(peer = %peer.name, error = %e2, "recording a failed spawn failed");
            }
            return Err(Error::new(
                ErrorCode::TmuxFailed,
                format!(
                    "could not start {} on tmux server {}: {e}",
                    peer.name, p.server
                ),
            ));
        }
    };
    // Bound from the start, with the foreground the window's command has.
    let fg = pid.and_then(super::cmd::foreground_group);
    if let Err(e) = super::claim::mark(h, &addr, &peer.id, fg, None).await {
        tracing::warn!(pane = %addr.pane, error = %e, "marking a spawned pane failed");
    }
    let peer = match h
        .store
        .spawn_started(row.id, &addr, spec.message.as_deref())
    {
        Ok(peer) => peer,
        Err(e) => {
            close_pane(h, &addr, None).await;
            forget_token(h, &peer.id);
            let _ = h
                .store
                .spawn_aborted(row.id, &format!("recording it failed: {e}"));
            return Err(e);
        }
    };
    tracing::info!(peer = %peer.name, circle = %peer.circle, pane = %addr.pane, "spawned");
    Ok(Spawned {
        attach: attach_command(&addr, None),
        peer,
        pane: addr.pane,
        server: addr.server,
        session: p.session,
    })
}

/// The environment variable naming a spawned session's token file.
pub const TOKEN_FILE_VAR: &str = "REPOWIRE_PEER_TOKEN_FILE";

/// Where a spawned session's token is kept for it: `<home>/spawn/<peer id>`,
/// readable by the daemon's user only (as the home's admin token is),
/// removed when the spawn fails, the session is killed or its pane is gone.
/// The token itself never shows in a command line or in tmux's environment.
fn token_path(h: &DaemonHandle, peer: &PeerId) -> PathBuf {
    h.home.dir.join("spawn").join(peer.as_str())
}

fn write_token(h: &DaemonHandle, peer: &PeerId, token: &str) -> std::io::Result<PathBuf> {
    use std::io::Write;
    use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
    let path = token_path(h, peer);
    if let Some(dir) = path.parent() {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)?;
    }
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&path)?;
    f.write_all(token.as_bytes())?;
    Ok(path)
}

pub(crate) fn forget_token(h: &DaemonHandle, peer: &PeerId) {
    let path = token_path(h, peer);
    if let Err(e) = std::fs::remove_file(&path)
        && e.kind() != std::io::ErrorKind::NotFound
    {
        tracing::warn!(path = %path.display(), error = %e, "removing a spawn's token file failed");
    }
}

/// `s` as tmux reads it after expanding formats (`-c` is expanded: a
/// `#(…)` in a path would run a command): every `#` doubled.
fn literal_format(s: &str) -> String {
    s.replace('#', "##")
}

/// Open the window: a new session named after the circle when there is
/// none yet, else a new window in it. Its pane's address. `env` is the
/// window's own: a new session's environment is cleared of it again, so
/// windows opened there later do not inherit the peer.
async fn open_window(
    h: &DaemonHandle,
    p: &Plan,
    name: &str,
    env: &[(&str, String)],
) -> Result<(PaneAddr, Option<u32>), TmuxError> {
    let dir = literal_format(&p.path);
    let pairs: Vec<String> = env.iter().map(|(k, v)| format!("{k}={v}")).collect();
    let mut rest: Vec<&str> = vec!["-n", name, "-c", &dir];
    for e in &pairs {
        rest.extend(["-e", e.as_str()]);
    }
    rest.extend([
        "-P",
        "-F",
        "#{pane_id} #{pane_pid} #{socket_path}",
        &p.command,
    ]);
    let exact = format!("={}", p.session);
    let target = format!("={}:", p.session);
    let window = || {
        let mut a = vec!["new-window", "-d", "-t", &target];
        a.extend(&rest);
        a
    };
    let have = h
        .tmux_cmd
        .run(&p.server, &["has-session", "-t", &exact])
        .await
        .is_ok();
    let out = if have {
        h.tmux_cmd.run(&p.server, &window()).await?
    } else {
        let mut a = vec!["new-session", "-d", "-s", &p.session];
        a.extend(&rest);
        for (k, _) in env {
            a.extend([";", "set-environment", "-u", "-t", &exact, k]);
        }
        match h.tmux_cmd.run(&p.server, &a).await {
            Ok(o) => o,
            // Another spawn made the session meanwhile.
            Err(e) if e.0.contains("duplicate session") => {
                h.tmux_cmd.run(&p.server, &window()).await?
            }
            Err(e) => return Err(e),
        }
    };
    let line = out.lines().next().unwrap_or("").trim();
    let mut f = line.splitn(3, ' ');
    let (Some(pane), Some(pid), Some(socket)) = (f.next(), f.next(), f.next()) else {
        return Err(TmuxError(format!("unexpected answer from tmux: {line:?}")));
    };
    let addr = PaneAddr::new(socket, pane).map_err(|e| TmuxError(e.message))?;
    Ok((addr, pid.parse().ok()))
}

/// Close a pane if it is bound to `peer` (`None`: whatever it is); whether
/// tmux did it.
async fn close_pane(h: &DaemonHandle, a: &PaneAddr, peer: Option<&PeerId>) -> bool {
    match h.tmux_cmd.kill_pane(a, peer.map(PeerId::as_str)).await {
        Ok(()) => true,
        Err(e) => {
            tracing::debug!(pane = %a.pane, error = %e, "kill-pane");
            false
        }
    }
}

/// Whether the pane is there and may be closed for `peer`: present and not
/// marked as another peer's. `Err`: tmux could not be asked.
async fn pane_is_theirs(h: &DaemonHandle, a: &PaneAddr, peer: &Peer) -> Result<bool, Error> {
    let tmux_err = |e: TmuxError| {
        Error::new(
            ErrorCode::TmuxFailed,
            format!(
                "could not ask tmux server {} about {}: {e}",
                a.server, a.pane
            ),
        )
    };
    let panes = h.tmux_cmd.panes(&a.server).await.map_err(tmux_err)?;
    Ok(panes.get(&a.pane).is_some_and(|m| m == peer.id.as_str()))
}

/// Kill the session of peer `name` of `circle` (see [`kill_peer`]).
pub async fn kill(h: &DaemonHandle, by: &str, name: &str, circle: &str) -> Result<Killed, Error> {
    validate_name("peer name", name)?;
    let peer = h.store.resolve_peer(name, Some(circle))?;
    kill_peer(h, by, &peer).await
}

/// Kill a peer's session: its pane is closed if its route is tmux (a pane
/// already gone is fine), and the peer goes offline with `peer_gone`
/// ("killed by `by`"); its running jobs then follow the executor-lost rule.
/// A spawn that had not registered yet fails, and its job is routed again.
pub async fn kill_peer(h: &DaemonHandle, by: &str, peer: &Peer) -> Result<Killed, Error> {
    let addr = peer
        .route
        .starts_with(repowire_core::tmux::PREFIX)
        .then(|| PaneAddr::parse(&peer.route))
        .transpose()?;
    let close = match &addr {
        Some(a) => pane_is_theirs(h, a, peer).await?,
        None => false,
    };
    let why = format!("killed by {by}");
    let jobs = h.store.spawns_ended(&peer.id, &why)?;
    h.store.mark_gone(&peer.id, &why)?;
    h.store.revoke_token(&peer.id)?;
    forget_token(h, &peer.id);
    let pane_killed = match (&addr, close) {
        (Some(a), true) => close_pane(h, a, Some(&peer.id)).await,
        _ => false,
    };
    redispatch(h, jobs).await;
    let peer = h
        .store
        .peer_by_id(&peer.id)?
        .unwrap_or_else(|| peer.clone());
    tracing::info!(peer = %peer.name, %by, pane_killed, "killed");
    Ok(Killed { peer, pane_killed })
}

/// Route jobs again that waited for a spawn that will not come.
async fn redispatch(h: &DaemonHandle, jobs: Vec<JobId>) {
    for id in jobs {
        let hh = h.clone();
        let done =
            tokio::task::spawn_blocking(move || crate::service::jobs::dispatch(&hh, &id, false))
                .await;
        if let Ok(Err(e)) = done {
            tracing::debug!(error = %e, "routing a job again after a spawn failed");
        }
    }
}

/// Follow open spawns until the daemon stops: woken by peers registering
/// or resuming, and every second.
pub async fn watch(h: DaemonHandle) {
    let mut tick = tokio::time::interval(TICK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    // Made once: a new one per turn subscribes and registers again.
    let stopping = h.stopping();
    tokio::pin!(stopping);
    loop {
        // Woken once for every commit since the last look with a peer
        // resumed, moved status or spawned (not once per event).
        tokio::select! {
            _ = &mut stopping => return,
            _ = tick.tick() => {}
            _ = h.store.spawn_news().notified() => {}
        }
        look(&h).await;
    }
}

/// One look at every open spawn: registered (its peer is not offline),
/// timed out (`--spawn-timeout`), or its window already closed.
async fn look(h: &DaemonHandle) {
    let open = match h.store.open_spawns() {
        Ok(o) => o,
        Err(e) => {
            tracing::warn!(error = %e, "spawn watcher: reading spawns failed");
            return;
        }
    };
    if open.is_empty() {
        return;
    }
    let now = h.clock.now_ms();
    let timeout = h.tmux.spawn_timeout.as_millis() as i64;
    let mut panes: HashMap<String, Option<HashMap<String, String>>> = HashMap::new();
    for s in open {
        let live = s.peer_status.is_some_and(|st| st != Status::Offline);
        let age = now - s.created_ms;
        // A spawn still `starting` is in `spawn` (tmux calls have their own
        // deadline): it is judged only well after that, e.g. after a
        // daemon restart cut it short.
        let stuck = s.state == SpawnState::Starting && age >= timeout.max(STARTING_MS);
        if live && (s.state == SpawnState::Pending || stuck) {
            match h.store.spawn_registered(s.id) {
                Ok(Some(job)) => tracing::info!(peer = %s.name, job, "spawned session registered"),
                Ok(None) => {}
                Err(e) => tracing::warn!(peer = %s.name, error = %e, "spawn watcher"),
            }
            continue;
        }
        let why = if s.peer_status.is_none() {
            "its peer was removed before it registered".to_string()
        } else if (s.state == SpawnState::Pending && age >= timeout) || stuck {
            format!(
                "never registered within {} (--spawn-timeout)",
                fmt_age(timeout)
            )
        } else if s.state == SpawnState::Pending
            && age >= GRACE_MS
            && let Some(pane) = &s.pane
            && !pane_listed(h, &mut panes, &s.server, pane).await
        {
            "its window closed before it registered (did its command start?)".to_string()
        } else {
            continue;
        };
        fail(h, &s, &why).await;
    }
}

/// Whether `pane` is among the server's live panes (asked once per look;
/// a server that cannot be asked counts as holding it).
async fn pane_listed(
    h: &DaemonHandle,
    cache: &mut HashMap<String, Option<HashMap<String, String>>>,
    server: &str,
    pane: &str,
) -> bool {
    if !cache.contains_key(server) {
        let live = h.tmux_cmd.panes(server).await.ok();
        cache.insert(server.to_string(), live);
    }
    cache
        .get(server)
        .and_then(|l| l.as_ref())
        .is_none_or(|l| l.contains_key(pane))
}

/// Give up on a spawn: close its pane, record why, route its job again.
async fn fail(h: &DaemonHandle, s: &SpawnRow, why: &str) {
    let failed = match h.store.spawn_failed(s.id, why) {
        Ok(Some(f)) => f,
        Ok(None) => return,
        Err(e) => {
            tracing::warn!(peer = %s.name, error = %e, "spawn watcher: recording a failure failed");
            return;
        }
    };
    tracing::info!(peer = %s.name, %why, "spawn failed");
    forget_token(h, &s.peer_id);
    // Closed only if still bound to its peer: tmux checks the mark in the
    // same command that kills.
    if let Some(pane) = &failed.pane
        && let Ok(a) = PaneAddr::new(&failed.server, pane)
    {
        close_pane(h, &a, Some(&s.peer_id)).await;
    }
    redispatch(h, failed.job.into_iter().collect()).await;
}

#[cfg(test)]
#[path = "spawn_tests.rs"]
mod tests;
