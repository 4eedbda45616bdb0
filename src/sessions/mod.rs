//! Agent client sessions and their peers: one peer per session, shared by
//! the session's hooks (`repowire hook`) and its MCP server
//! (`repowire mcp --client …`).
//!
//! A session is known by the client's session id (hooks read it on stdin;
//! Claude Code also hands it to MCP servers as `CLAUDE_CODE_SESSION_ID`)
//! and by the client process that runs it ([`process::client`]): Codex
//! starts MCP servers without a session id, and Claude Code's `/clear`
//! starts a new session id in the same process, under the same MCP server.
//!
//! Each session has a record in `<home>/sessions/` (0600: it holds the
//! peer's token): the peer's name, circle and token, its session ids and
//! process. Records are read and written under one lock
//! (`<home>/sessions/.lock`), so a hook and a server starting together
//! register one peer. Names come from the project directory, made unique
//! per live session (`app`, `app-2`, …): two sessions in one repository
//! never share an inbox. A session that ended (its `session-end` hook ran,
//! or its client process is gone) leaves its name and inbox to the next
//! session of that project.

pub mod process;

use crate::api::{PeerInfo, RegisterReq};
use crate::client::{Client, ClientError};
use crate::core::ErrorCode;
use crate::home::Home;
use crate::wiring;
use anyhow::Context;
use process::Proc;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// A session's record (`<home>/sessions/<file>.json`).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Record {
    pub client: String,
    /// The client's session ids, oldest first (a `/clear` adds one).
    #[serde(default)]
    pub sids: Vec<String>,
    #[serde(default)]
    pub process: Option<Proc>,
    pub name: String,
    pub circle: String,
    #[serde(default)]
    pub token: Option<String>,
    #[serde(default)]
    pub peer_id: Option<String>,
    /// `session-end` ran.
    #[serde(default)]
    pub ended: bool,
    /// Stops blocked in a row by deliveries (reset by a user prompt).
    #[serde(default)]
    pub stop_blocks: u32,
    #[serde(default)]
    pub updated_ms: i64,
    /// The record's file name (not stored).
    #[serde(skip)]
    file: String,
}

impl Record {
    /// A session not joined yet.
    pub fn new(client: wiring::Client, process: Option<Proc>, circle: &str) -> Record {
        Record {
            client: client.as_str().into(),
            sids: Vec::new(),
            process,
            name: String::new(),
            circle: circle.into(),
            token: None,
            peer_id: None,
            ended: false,
            stop_blocks: 0,
            updated_ms: 0,
            file: String::new(),
        }
    }

    /// The session may still act: not ended, and its client process (when
    /// known) still runs.
    pub fn live(&self) -> bool {
        !self.ended && self.process.is_none_or(|p| p.alive())
    }
}

/// Who is joining: what the hook or server knows of its session.
#[derive(Debug, Clone)]
pub struct Want {
    pub client: wiring::Client,
    /// The client's session id, when known.
    pub sid: Option<String>,
    /// SessionStart's `source` (`startup`, `resume`, `clear`, `compact`,
    /// Codex `fork`): `resume`, `clear` and `compact` continue the
    /// process's session.
    pub source: Option<String>,
    /// The client process ([`process::client`]).
    pub process: Option<Proc>,
    /// The project directory (the name comes from it).
    pub project: Option<PathBuf>,
    /// A base name instead of the project's (`REPOWIRE_PEER`).
    pub name: Option<String>,
    pub circle: Option<String>,
    pub role: Option<crate::core::peer::Role>,
    /// A delivery route to record on the peer.
    pub route: Option<String>,
}

/// A session's peer, joined.
pub struct Joined {
    /// A client acting as the peer.
    pub client: Client,
    pub peer: PeerInfo,
    pub record: Record,
}

/// Where a daemon is and how to reach it as the admin: `url` is the
/// `--url` given, else `REPOWIRE_URL`, else what `daemon.json` says now (so
/// a restarted daemon is followed, an explicit one never left); the admin
/// client re-reads it when the daemon does not answer, with the admin token
/// as the home has it now (none before its first daemon started).
#[derive(Clone)]
pub struct Daemon {
    pub home: Home,
    pub url: Option<String>,
}

impl Daemon {
    pub fn url(&self) -> String {
        self.home.daemon_url(self.url.as_deref())
    }

    pub fn admin(&self) -> Client {
        let me = self.clone();
        Client::new(&self.url(), self.home.read_token(), None)
            .following(std::sync::Arc::new(move || me.url()))
    }
}

/// The tmux route of the pane this process runs in (`$TMUX` names the
/// server, `$TMUX_PANE` the pane), if it runs inside tmux: what an agent
/// session records, so the daemon types its deliveries into that pane.
pub fn tmux_route() -> Option<String> {
    let tmux = std::env::var("TMUX").ok();
    let pane = std::env::var("TMUX_PANE").ok();
    match crate::core::tmux::PaneAddr::from_env(tmux.as_deref(), pane.as_deref())? {
        Ok(a) => Some(a.route()),
        Err(e) => {
            tracing::debug!("not recording a tmux route: {}", e.message);
            None
        }
    }
}

/// Claim the pane of a tmux route for one registration: set the pane option
/// `@repowire_claim_<h>` (`h` from the claim's hash) with this process's own
/// access to that tmux server, for the daemon to find there before it
/// records the route (the daemon's `tmux::claim`). `Ok(None)` for a route
/// that is not tmux.
pub fn claim_pane(route: Option<&str>) -> Result<Option<String>, String> {
    use crate::core::tmux::{PREFIX, new_claim};
    let Some(route) = route.filter(|r| r.starts_with(PREFIX)) else {
        return Ok(None);
    };
    let claim = new_claim();
    pane_option(route, &claim, true)?;
    Ok(Some(claim))
}

/// Take back a claim a registration did not use (it failed before the
/// daemon read it).
pub fn release_claim(route: Option<&str>, claim: Option<&str>) {
    if let (Some(route), Some(claim)) = (route, claim)
        && let Err(e) = pane_option(route, claim, false)
    {
        tracing::debug!("could not take back a tmux claim: {e}");
    }
}

/// Set (or unset) a claim's pane option. The command goes in on stdin
/// (`source-file -`), not as arguments: a command line is readable by
/// every user of the machine.
fn pane_option(route: &str, claim: &str, set: bool) -> Result<(), String> {
    use crate::core::tmux::{PaneAddr, claim_option};
    let addr = PaneAddr::parse(route).map_err(|e| e.message)?;
    let option = claim_option(claim).map_err(|e| e.message)?;
    let mut child = std::process::Command::new("tmux")
        .args(addr.server_args())
        .args(["source-file", "-"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .map_err(|e| format!("could not run tmux: {e}"))?;
    if let Some(mut stdin) = child.stdin.take() {
        use std::io::Write;
        // Pane ids and the option name are plain tokens: nothing to quote.
        let line = match set {
            true => format!("set-option -p -t {} {option} 1", addr.pane),
            false => format!("set-option -p -u -t {} {option}", addr.pane),
        };
        writeln!(stdin, "{line}").map_err(|e| format!("could not talk to tmux: {e}"))?;
    }
    let out = child
        .wait_with_output()
        .map_err(|e| format!("could not run tmux: {e}"))?;
    if !out.status.success() {
        let err = String::from_utf8_lossy(&out.stderr);
        return Err(format!(
            "tmux could not mark pane {} on server {}: {}",
            addr.pane,
            addr.server,
            err.lines().next().unwrap_or("").trim()
        ));
    }
    Ok(())
}

/// A session's own registration: claim its tmux route's pane, or register
/// without the route when that cannot be done.
pub fn claim_or_drop(req: &mut RegisterReq) {
    match claim_pane(req.route.as_deref()) {
        Ok(c) => req.tmux_claim = c,
        Err(e) => {
            tracing::warn!("not recording the tmux route: {e}");
            req.route = None;
            req.tmux_claim = None;
        }
    }
}

/// The peer token the environment gives: `REPOWIRE_PEER_TOKEN`, else the
/// contents of the file `REPOWIRE_PEER_TOKEN_FILE` names (what `repowire
/// peer spawn` hands a session: the token never shows in a command line or
/// in tmux's environment).
pub fn env_peer_token() -> Option<String> {
    let var = |k: &str| std::env::var(k).ok().filter(|s| !s.is_empty());
    var("REPOWIRE_PEER_TOKEN").or_else(|| {
        let t = std::fs::read_to_string(var("REPOWIRE_PEER_TOKEN_FILE")?).ok()?;
        Some(t.trim().to_string()).filter(|t| !t.is_empty())
    })
}

/// The peer a session was started for (`repowire peer spawn` hands the new
/// session its peer's name and circle as `REPOWIRE_PEER`, `REPOWIRE_CIRCLE`
/// and its token as [`env_peer_token`] reads it): a new session record
/// resumes that peer instead of registering another.
fn spawned_peer() -> Option<(String, Option<String>, String)> {
    let var = |k: &str| std::env::var(k).ok().filter(|s| !s.is_empty());
    Some((
        var("REPOWIRE_PEER")?,
        var("REPOWIRE_CIRCLE"),
        env_peer_token()?,
    ))
}

/// Refuse a session id that cannot name a file (clients send UUIDs).
pub fn check_sid(sid: &str) -> Result<(), String> {
    let ok = !sid.is_empty()
        && sid.len() <= 128
        && sid
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "._-".contains(c))
        && !sid.starts_with('.');
    if ok {
        Ok(())
    } else {
        Err(format!(
            "session id {:?} is not 1-128 characters of A-Z a-z 0-9 . _ -",
            sid.chars().take(64).collect::<String>()
        ))
    }
}

/// The peer name a project directory gives (`[A-Za-z0-9._-]`).
pub fn base_name(want: &Want) -> String {
    let raw = want
        .name
        .clone()
        .or_else(|| {
            want.project
                .as_deref()
                .and_then(Path::file_name)
                .map(|n| n.to_string_lossy().into_owned())
        })
        .unwrap_or_default();
    let mut s: String = raw
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "._-".contains(c) {
                c
            } else {
                '-'
            }
        })
        .take(48)
        .collect();
    s = s.trim_matches(['-', '.']).to_string();
    if s.is_empty() { "agent".into() } else { s }
}

/// A lock file (0600), created when missing.
fn open_lock(path: &Path) -> anyhow::Result<std::fs::File> {
    crate::home::private_file()
        .create(true)
        .truncate(false)
        .write(true)
        .open(path)
        .with_context(|| format!("while opening {}", path.display()))
}

/// The sessions directory and its lock.
pub struct Sessions {
    dir: PathBuf,
}

/// Records older than this that ended are removed.
const KEEP_ENDED_MS: i64 = 7 * 24 * 3600 * 1000;

impl Sessions {
    pub fn new(home: &Home) -> Self {
        Self {
            dir: home.dir.join("sessions"),
        }
    }

    /// Hold the sessions lock (a few seconds at most to get it).
    pub async fn lock(&self) -> anyhow::Result<std::fs::File> {
        crate::home::private_dir(&self.dir)
            .with_context(|| format!("while creating {}", self.dir.display()))?;
        let path = self.dir.join(".lock");
        let f = open_lock(&path)?;
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        loop {
            match f.try_lock() {
                Ok(()) => return Ok(f),
                Err(std::fs::TryLockError::WouldBlock)
                    if tokio::time::Instant::now() < deadline =>
                {
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
                Err(std::fs::TryLockError::WouldBlock) => {
                    anyhow::bail!("{} stayed locked for 5 s", path.display())
                }
                Err(std::fs::TryLockError::Error(e)) => {
                    return Err(e).with_context(|| format!("while locking {}", path.display()));
                }
            }
        }
    }

    /// Every record (unreadable ones are skipped with a warning).
    pub fn load(&self) -> Vec<Record> {
        let Ok(rd) = std::fs::read_dir(&self.dir) else {
            return Vec::new();
        };
        let mut out = Vec::new();
        for e in rd.flatten() {
            let file = e.file_name().to_string_lossy().into_owned();
            if !file.ends_with(".json") || file.starts_with('.') {
                continue;
            }
            match std::fs::read(e.path())
                .map_err(anyhow::Error::from)
                .and_then(|b| Ok(serde_json::from_slice::<Record>(&b)?))
            {
                Ok(mut r) => {
                    r.file = file;
                    out.push(r);
                }
                Err(e) => tracing::debug!("skipping session record {file}: {e}"),
            }
        }
        out
    }

    /// Write a record (atomically, 0600).
    pub fn save(&self, r: &mut Record) -> anyhow::Result<()> {
        if r.file.is_empty() {
            let key = r
                .sids
                .first()
                .cloned()
                .or_else(|| r.process.map(|p| p.key()))
                .unwrap_or_else(|| format!("n{}", crate::core::time::now_ms()));
            r.file = format!("{}-{key}.json", r.client);
        }
        r.updated_ms = crate::core::time::now_ms();
        let path = self.dir.join(&r.file);
        let tmp = self.dir.join(format!(".{}.tmp", r.file));
        crate::home::write_private(&tmp, &serde_json::to_vec_pretty(r)?)
            .with_context(|| format!("while writing {}", tmp.display()))?;
        std::fs::rename(&tmp, &path)
            .with_context(|| format!("while writing {}", path.display()))?;
        Ok(())
    }

    /// Hold the waiter lock of `r`'s session (`None`: another waiter
    /// holds it).
    pub fn waiter(&self, r: &Record) -> anyhow::Result<Option<std::fs::File>> {
        let path = self.dir.join(format!(".{}.wait", r.file));
        let f = open_lock(&path)?;
        match f.try_lock() {
            Ok(()) => Ok(Some(f)),
            Err(std::fs::TryLockError::WouldBlock) => Ok(None),
            Err(std::fs::TryLockError::Error(e)) => {
                Err(e).with_context(|| format!("while locking {}", path.display()))
            }
        }
    }

    pub fn remove(&self, r: &Record) {
        if !r.file.is_empty() {
            let _ = std::fs::remove_file(self.dir.join(&r.file));
            let _ = std::fs::remove_file(self.dir.join(format!(".{}.wait", r.file)));
        }
    }

    /// Drop records of sessions long over.
    fn prune(&self, records: &mut Vec<Record>) {
        let now = crate::core::time::now_ms();
        records.retain(|r| {
            let keep = r.live() || now - r.updated_ms < KEEP_ENDED_MS;
            if !keep {
                self.remove(r);
            }
            keep
        });
    }
}

/// The record of this session, if there is one: by session id; else, by
/// the client process, when the session continues in it (no session id
/// yet, or SessionStart says it resumed, cleared or compacted).
pub fn find<'a>(records: &'a [Record], want: &Want) -> Option<&'a Record> {
    let client = want.client.as_str();
    let mine = |r: &&Record| r.client == client;
    if let Some(sid) = &want.sid
        && let Some(r) = records
            .iter()
            .filter(mine)
            .find(|r| r.sids.iter().any(|s| s == sid))
    {
        return Some(r);
    }
    let p = want.process?;
    // `fork` (Codex) starts a new session from an old one: not a
    // continuation.
    let continues = want.sid.is_none()
        || matches!(want.source.as_deref(), Some("resume" | "clear" | "compact"));
    let mut found = records
        .iter()
        .filter(mine)
        .filter(|r| r.process == Some(p) && !r.ended)
        .filter(|r| continues || r.sids.is_empty());
    // One process may hold several sessions (Codex's app-server threads):
    // with more than one candidate, guessing could hand one session
    // another's inbox, so none is taken.
    match (found.next(), found.next()) {
        (Some(r), None) => Some(r),
        _ => None,
    }
}

/// Join the mesh as this session's peer: the record found (resumed with
/// its token) or a new one (a name free among live sessions, registered).
pub async fn join(d: &Daemon, want: &Want) -> Result<Joined, ClientError> {
    if d.home.read_token().is_none() {
        return Err(ClientError::Unreachable {
            url: d.url(),
            reason: "no daemon has started in this home yet".into(),
        });
    }
    let sessions = Sessions::new(&d.home);
    let _lock = sessions.lock().await.map_err(other)?;
    let mut records = sessions.load();
    sessions.prune(&mut records);
    let admin = d.admin();
    let mut rec = match find(&records, want) {
        Some(r) => r.clone(),
        None => match spawned_peer() {
            // A spawned session: its peer exists already, resumed below.
            Some((name, circle, token)) => {
                let circle = want.circle.clone().or(circle);
                let mut r = Record::new(
                    want.client,
                    want.process,
                    circle
                        .as_deref()
                        .unwrap_or(crate::core::peer::DEFAULT_CIRCLE),
                );
                r.name = name;
                r.token = Some(token);
                r
            }
            None => Record::new(
                want.client,
                want.process,
                want.circle
                    .as_deref()
                    .unwrap_or(crate::core::peer::DEFAULT_CIRCLE),
            ),
        },
    };
    if let Some(sid) = &want.sid
        && !rec.sids.contains(sid)
    {
        rec.sids.push(sid.clone());
    }
    if want.process.is_some() {
        rec.process = want.process;
    }
    rec.ended = false;
    let base = base_name(want);
    let mut req = RegisterReq {
        name: rec.name.clone(),
        circle: Some(rec.circle.clone()),
        backend: Some(want.client.backend().into()),
        role: want.role,
        project_path: want.project.as_ref().map(|p| p.display().to_string()),
        route: want.route.clone(),
        ..Default::default()
    };
    claim_or_drop(&mut req);
    // Resume with the token kept; a daemon that no longer knows it (a new
    // state.db) gets a new registration.
    if let Some(t) = rec.token.clone() {
        let me = admin.with_identity(Some(t), None);
        match me.register(&req).await {
            Ok(r) => return finish(&sessions, rec, me, r.peer),
            Err(e) if e.code() == Some(ErrorCode::Unauthorized) => rec.token = None,
            Err(e) => return Err(e),
        }
    }
    let taken: Vec<String> = records
        .iter()
        .filter(|r| r.live() && r.circle == rec.circle && r.file != rec.file)
        .map(|r| r.name.clone())
        .collect();
    for i in 1..=99u32 {
        let name = if i == 1 {
            base.clone()
        } else {
            format!("{base}-{i}")
        };
        if taken.contains(&name) {
            continue;
        }
        req.name = name.clone();
        match admin.register(&req).await {
            Ok(r) => {
                let t = r
                    .token
                    .ok_or_else(|| ClientError::Other("the daemon issued no token".into()))?;
                rec.name = name;
                rec.token = Some(t.clone());
                return finish(&sessions, rec, admin.with_identity(Some(t), None), r.peer);
            }
            Err(e) if e.code() == Some(ErrorCode::NameTaken) => {
                // An ended session of ours left this peer: take it over
                // (its inbox is this project's).
                let Some(old) = records
                    .iter()
                    .find(|r| !r.live() && r.circle == rec.circle && r.name == name)
                    .filter(|r| r.token.is_some())
                else {
                    continue;
                };
                let me = admin.with_identity(old.token.clone(), None);
                match me.register(&req).await {
                    Ok(r) => {
                        sessions.remove(old);
                        rec.name = name;
                        rec.token = old.token.clone();
                        return finish(&sessions, rec, me, r.peer);
                    }
                    Err(e) if e.code() == Some(ErrorCode::Unauthorized) => continue,
                    Err(e) => return Err(e),
                }
            }
            Err(e) => return Err(e),
        }
    }
    Err(ClientError::Other(format!(
        "99 live sessions already use the name {base:?} in circle {:?}",
        rec.circle
    )))
}

fn finish(
    sessions: &Sessions,
    mut rec: Record,
    client: Client,
    peer: PeerInfo,
) -> Result<Joined, ClientError> {
    rec.name = peer.name.clone();
    rec.peer_id = Some(peer.peer_id.clone());
    sessions.save(&mut rec).map_err(other)?;
    Ok(Joined {
        client,
        peer,
        record: rec,
    })
}

/// The session's record, if it has one (no daemon needed).
pub async fn lookup(home: &Home, want: &Want) -> anyhow::Result<Option<Record>> {
    let sessions = Sessions::new(home);
    let _lock = sessions.lock().await?;
    Ok(find(&sessions.load(), want).cloned())
}

/// Change the session's record under the lock (`None`: it has none).
pub async fn update(
    home: &Home,
    want: &Want,
    change: impl FnOnce(&mut Record),
) -> anyhow::Result<Option<Record>> {
    let sessions = Sessions::new(home);
    let _lock = sessions.lock().await?;
    let records = sessions.load();
    let Some(mut r) = find(&records, want).cloned() else {
        return Ok(None);
    };
    change(&mut r);
    sessions.save(&mut r)?;
    Ok(Some(r))
}

fn other(e: impl std::fmt::Display) -> ClientError {
    ClientError::Other(format!("{e:#}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(sids: &[&str], p: Proc, name: &str) -> Record {
        Record {
            sids: sids.iter().map(|s| s.to_string()).collect(),
            name: name.into(),
            ..Record::new(wiring::Client::Codex, Some(p), "default")
        }
    }

    fn want(sid: Option<&str>, source: Option<&str>, p: Proc) -> Want {
        Want {
            client: wiring::Client::Codex,
            sid: sid.map(str::to_string),
            source: source.map(str::to_string),
            process: Some(p),
            project: None,
            name: None,
            circle: None,
            role: None,
            route: None,
        }
    }

    #[test]
    fn a_process_with_several_sessions_is_not_guessed() {
        let p = Proc {
            pid: 4242,
            start: 7,
        };
        let one = [rec(&["a"], p, "svc")];
        // No session id (a Codex MCP server): the process's one session.
        assert_eq!(find(&one, &want(None, None, p)).unwrap().name, "svc");
        // A new session id that starts up is a new session.
        assert!(find(&one, &want(Some("b"), Some("startup"), p)).is_none());
        assert!(find(&one, &want(Some("b"), Some("fork"), p)).is_none());
        // … unless it continues one (`/clear`, resume, compact).
        assert_eq!(
            find(&one, &want(Some("c"), Some("clear"), p)).unwrap().name,
            "svc"
        );
        // Two sessions in one process: by id, yes; by process, no guess.
        let two = [rec(&["a"], p, "svc"), rec(&["b"], p, "svc-2")];
        assert_eq!(find(&two, &want(Some("b"), None, p)).unwrap().name, "svc-2");
        assert!(find(&two, &want(None, None, p)).is_none());
        assert!(find(&two, &want(Some("c"), Some("resume"), p)).is_none());
    }
}
