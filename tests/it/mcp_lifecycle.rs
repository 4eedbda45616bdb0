//! How a `repowire mcp` session ends and begins, driven by a real rmcp
//! client over the process's own pipes: every way it ends marks its peer
//! offline and frees its name; kill -9 is left to ghost detection; and a
//! session started before any daemon completes its handshake, answers
//! `daemon_unreachable` with the command that starts one, and joins the
//! mesh as soon as one answers.

use crate::mcp::{Catcher, call};
use crate::support::*;
use repowire::core::peer::Status;
use rmcp::ServiceExt;
use rmcp::service::{RoleClient, RunningService};
use serde_json::{Value, json};
use std::path::Path;
use std::process::Stdio;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

/// `repowire mcp --backend claude-code --name NAME ARGS` in `home`, its
/// pipes left to the caller.
pub fn spawn_mcp(home: &Path, name: &str, args: &[&str]) -> tokio::process::Child {
    let mut all = vec!["--backend", "claude-code", "--name", name];
    all.extend(args);
    spawn_mcp_with(home, &all)
}

/// `repowire mcp ARGS` in `home` (nothing else from the test's
/// environment), its pipes left to the caller.
pub fn spawn_mcp_with(home: &Path, args: &[&str]) -> tokio::process::Child {
    tokio::process::Command::new(BIN)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("REPOWIRE_HOME", home)
        .env("RUST_LOG", "warn")
        .arg("mcp")
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .spawn()
        .expect("spawn repowire mcp")
}

/// A session whose process the test holds (to signal it).
pub struct Session<C: rmcp::service::Service<RoleClient> = ()> {
    pub child: tokio::process::Child,
    pub client: RunningService<RoleClient, C>,
}

/// Start a session and complete the MCP handshake with `handler`.
pub async fn session_with<C: rmcp::service::Service<RoleClient>>(
    home: &Path,
    name: &str,
    args: &[&str],
    handler: C,
) -> Session<C> {
    let mut child = spawn_mcp(home, name, args);
    let io = (child.stdout.take().unwrap(), child.stdin.take().unwrap());
    let client = tokio::time::timeout(Duration::from_secs(30), handler.serve(io))
        .await
        .expect("the handshake must not hang")
        .expect("the handshake succeeds");
    Session { child, client }
}

/// Send `sig` (INT, TERM, HUP, KILL) to a process.
pub fn signal(pid: u32, sig: &str) {
    let st = std::process::Command::new("kill")
        .args([&format!("-{sig}"), &pid.to_string()])
        .status()
        .unwrap();
    assert!(st.success(), "kill -{sig} {pid}");
}

pub async fn exits(child: &mut tokio::process::Child, what: &str) -> std::process::ExitStatus {
    tokio::time::timeout(Duration::from_secs(20), child.wait())
        .await
        .unwrap_or_else(|_| panic!("the session exits after {what}"))
        .unwrap()
}

/// The peer's status as the daemon has it now.
pub async fn status_of(d: &Daemon, name: &str) -> (Status, bool) {
    let p = d
        .admin()
        .describe(name, None)
        .await
        .expect("the peer exists");
    (p.status, p.ghost)
}

/// Is the per-name lock under <home>/mcp/ free (no live session holds it)?
pub fn name_is_free(home: &Path, name: &str) -> bool {
    let f = std::fs::OpenOptions::new()
        .write(true)
        .open(home.join("mcp").join(format!("default@{name}.lock")))
        .expect("the session made its lock file");
    f.try_lock().is_ok()
}

/// SIGINT (how Claude Code stops a server), SIGTERM (Codex), SIGHUP, SIGQUIT
/// (`Ctrl-\` in the agent's terminal reaches its whole process group), end of
/// input, and the client's end of both pipes closing (the client process
/// died): each marks the peer offline before the process exits, never a
/// ghost, and frees the name.
#[tokio::test]
async fn every_way_a_session_ends_marks_its_peer_offline() {
    let d = Daemon::start(&[]);
    for way in ["INT", "TERM", "HUP", "QUIT", "client-gone"] {
        let name = format!("end-{}", way.to_lowercase());
        let mut s = session_with(d.home_path(), &name, &["--delivery", "pull"], ()).await;
        let (err, me) = call(&s.client, "whoami", json!({})).await;
        assert!(!err, "{me}");
        assert_eq!(status_of(&d, &name).await.0, Status::Online);
        assert!(!name_is_free(d.home_path(), &name), "held while live");
        match way {
            "client-gone" => {
                let _ = s.client.cancel().await;
            }
            sig => signal(s.child.id().unwrap(), sig),
        }
        let st = exits(&mut s.child, way).await;
        assert!(st.success(), "{way}: {st:?}");
        assert_eq!(
            status_of(&d, &name).await,
            (Status::Offline, false),
            "{way}: the peer is offline as soon as the session is gone"
        );
        assert!(name_is_free(d.home_path(), &name), "{way}: name freed");
    }
}

/// End of input alone (the client closed the server's stdin but still
/// reads its stdout): the session ends and the peer goes offline.
#[tokio::test]
async fn end_of_input_marks_the_peer_offline() {
    let d = Daemon::start(&[]);
    let mut child = spawn_mcp(d.home_path(), "eof", &["--delivery", "pull"]);
    let mut stdin = child.stdin.take().unwrap();
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let hello = json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
        "protocolVersion": "2025-11-25", "capabilities": {},
        "clientInfo": {"name": "raw", "version": "0"}}});
    stdin
        .write_all(format!("{hello}\n").as_bytes())
        .await
        .unwrap();
    let mut line = String::new();
    tokio::time::timeout(Duration::from_secs(30), stdout.read_line(&mut line))
        .await
        .expect("initialize answered")
        .unwrap();
    let v: Value = serde_json::from_str(&line).unwrap();
    assert_eq!(v["id"], 1, "{v}");
    stdin
        .write_all(b"{\"jsonrpc\":\"2.0\",\"method\":\"notifications/initialized\"}\n")
        .await
        .unwrap();
    assert_eq!(status_of(&d, "eof").await.0, Status::Online);
    drop(stdin);
    let st = exits(&mut child, "end of input").await;
    assert!(st.success(), "{st:?}");
    assert_eq!(status_of(&d, "eof").await, (Status::Offline, false));
    assert!(name_is_free(d.home_path(), "eof"));
    drop(stdout);
}

/// kill -9 gives the session no chance to say anything: its peer stays
/// online until its heartbeat is older than the daemon's stale window, and
/// is then flagged a ghost; its name is free at once (the OS drops the
/// lock), and the next session of that name resumes the same peer.
#[tokio::test]
async fn kill_9_is_left_to_ghost_detection() {
    let d = Daemon::start(&["--stale-after", "2s"]);
    let mut s = session_with(d.home_path(), "crashy", &["--delivery", "pull"], ()).await;
    let me = call(&s.client, "whoami", json!({})).await.1;
    signal(s.child.id().unwrap(), "KILL");
    exits(&mut s.child, "kill -9").await;
    assert!(name_is_free(d.home_path(), "crashy"));
    assert_eq!(status_of(&d, "crashy").await, (Status::Online, false));
    eventually(Duration::from_secs(30), "the ghost flag", || async {
        let (st, ghost) = status_of(&d, "crashy").await;
        (ghost && st == Status::Online).then_some(())
    })
    .await;
    let again = session_with(d.home_path(), "crashy", &["--delivery", "pull"], ()).await;
    let back = call(&again.client, "whoami", json!({})).await.1;
    assert_eq!(back["peer_id"], me["peer_id"], "resumed: {back}");
    assert_eq!(status_of(&d, "crashy").await, (Status::Online, false));
    again.client.cancel().await.unwrap();
}

/// Started before any daemon: the handshake completes, every tool answers
/// `daemon_unreachable` with the command that starts the home's daemon;
/// once a daemon runs there, a session joins without a restart — at once
/// when a tool is called, by itself otherwise — and gets its pushes.
#[tokio::test]
async fn a_session_without_a_daemon_joins_when_one_starts() {
    let home = tempfile::tempdir().unwrap();
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let eager = session_with(home.path(), "eager", &["--delivery", "pull"], ()).await;
    let mut quiet = session_with(
        home.path(),
        "quiet",
        &["--delivery", "push"],
        Catcher::claude(tx),
    )
    .await;
    assert!(eager.client.list_all_tools().await.unwrap().len() > 30);
    for (tool, args) in [
        ("whoami", json!({})),
        (
            "notify_peer",
            json!({"peer_name": "quiet", "message": "hi"}),
        ),
        ("inbox", json!({})),
    ] {
        let (err, e) = call(&eager.client, tool, args).await;
        assert!(err, "{tool}: {e}");
        assert_eq!(e["code"], "daemon_unreachable", "{tool}: {e}");
        let fix = format!("repowire --home {} daemon start", home.path().display());
        assert!(e["message"].as_str().unwrap().contains(&fix), "{e}");
    }
    assert!(quiet.child.try_wait().unwrap().is_none(), "still serving");
    // A daemon starts in that home (on a port of its own).
    let mut d = Daemon {
        home,
        url: String::new(),
        child: None,
        args: vec![],
    };
    d.spawn();
    // A tool call joins at once.
    let (err, me) = call(&eager.client, "whoami", json!({})).await;
    assert!(!err, "{me}");
    assert_eq!(me["name"], "eager");
    // The other session joins by itself, and is online.
    let admin = d.admin();
    eventually(Duration::from_secs(20), "quiet joins", || async {
        let p = admin.describe("quiet", None).await.ok()?;
        (p.status == Status::Online).then_some(())
    })
    .await;
    let (err, sent) = call(
        &eager.client,
        "notify_peer",
        json!({"peer_name": "quiet", "message": "you are in"}),
    )
    .await;
    assert!(!err, "{sent}");
    let ev = tokio::time::timeout(Duration::from_secs(20), rx.recv())
        .await
        .expect("pushed to the session that joined late")
        .unwrap();
    assert!(
        ev["content"].as_str().unwrap().contains("you are in"),
        "{ev}"
    );
    assert_eq!(ev["meta"]["from"], "eager", "{ev}");
    // It ends like any other session.
    signal(quiet.child.id().unwrap(), "INT");
    exits(&mut quiet.child, "SIGINT").await;
    assert_eq!(status_of(&d, "quiet").await, (Status::Offline, false));
    // A daemon that goes away later: the same code, the same advice.
    d.kill9();
    let (err, e) = call(&eager.client, "whoami", json!({})).await;
    assert!(err, "{e}");
    assert_eq!(e["code"], "daemon_unreachable", "{e}");
    assert!(
        e["message"]
            .as_str()
            .unwrap()
            .contains("repowire daemon start"),
        "{e}"
    );
    eager.client.cancel().await.unwrap();
}

/// What the client says about itself holds for a session that joins late:
/// before any daemon, a misspelled parameter is refused as `bad_request`
/// (a refusal needs no daemon) while a good call, an 0.17 alias too,
/// answers `daemon_unreachable`; once a daemon starts, the peer's backend
/// is the client's name (no `--backend` given) and its route the channel
/// its capabilities asked for (`--delivery auto`), and deliveries are
/// pushed.
#[tokio::test]
async fn what_the_client_said_holds_once_a_late_session_joins() {
    let home = tempfile::tempdir().unwrap();
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let mut child = spawn_mcp_with(home.path(), &["--name", "late", "--delivery", "auto"]);
    let io = (child.stdout.take().unwrap(), child.stdin.take().unwrap());
    let late = tokio::time::timeout(Duration::from_secs(30), Catcher::claude(tx).serve(io))
        .await
        .expect("the handshake must not hang")
        .expect("the handshake succeeds");
    let (err, e) = call(&late, "whoami", json!({"verbose": true})).await;
    assert!(err, "{e}");
    assert_eq!(e["code"], "bad_request", "{e}");
    assert!(e["message"].as_str().unwrap().contains("verbose"), "{e}");
    for (tool, args) in [
        ("whoami", json!({})),
        ("job_list", json!({"owner_peer_id": "x"})),
    ] {
        let (err, e) = call(&late, tool, args).await;
        assert!(err, "{tool}: {e}");
        assert_eq!(e["code"], "daemon_unreachable", "{tool}: {e}");
    }
    let mut d = Daemon {
        home,
        url: String::new(),
        child: None,
        args: vec![],
    };
    d.spawn();
    let admin = d.admin();
    // Joined by itself (no tool call), with what the client said recorded.
    let me = eventually(Duration::from_secs(20), "late joins", || async {
        let p = admin.describe("late", None).await.ok()?;
        (p.status == Status::Online && p.route == "channel").then_some(p)
    })
    .await;
    assert_eq!(me.backend, "claude-code", "from clientInfo.name");
    let other = session_with(d.home_path(), "other", &["--delivery", "pull"], ()).await;
    let (err, sent) = call(
        &other.client,
        "notify_peer",
        json!({"peer_name": "late", "message": "pushed late"}),
    )
    .await;
    assert!(!err, "{sent}");
    let ev = tokio::time::timeout(Duration::from_secs(20), rx.recv())
        .await
        .expect("pushed to the session that joined late")
        .unwrap();
    assert!(
        ev["content"].as_str().unwrap().contains("pushed late"),
        "{ev}"
    );
    late.cancel().await.unwrap();
    exits(&mut child, "the client going away").await;
    assert_eq!(status_of(&d, "late").await, (Status::Offline, false));
    other.client.cancel().await.unwrap();
}

/// A session stopped before it ever reached a daemon exits cleanly and
/// leaves nothing behind but its (free) name lock.
#[tokio::test]
async fn a_session_that_never_joined_stops_cleanly() {
    let home = tempfile::tempdir().unwrap();
    let mut s = session_with(home.path(), "never", &[], ()).await;
    signal(s.child.id().unwrap(), "INT");
    let st = exits(&mut s.child, "SIGINT").await;
    assert!(st.success(), "{st:?}");
    assert!(name_is_free(home.path(), "never"));
    assert!(!home.path().join("mcp/default@never.token").exists());
}
