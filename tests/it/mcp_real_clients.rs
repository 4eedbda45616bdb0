//! The session's lifecycle under the real agent clients (protocol
//! fidelity against other MCP clients is in `mcp_clients`): Claude Code
//! (`claude mcp list` / `claude mcp get` health-check each configured
//! server: start it, initialize, list tools, then stop it with SIGINT,
//! SIGTERM 0.1 s later and SIGKILL 0.4 s after that) and Codex (`codex exec` starts its servers
//! before it reaches for a model; stopped, it sends SIGTERM and closes
//! stdin). Neither reaches a model API here: Codex is pointed at a dead
//! loopback provider. Each client runs with a temporary HOME (and
//! CODEX_HOME), so nothing touches the real one.
//!
//! The clients are installed by .ci/run (`npm install -g
//! @anthropic-ai/claude-code @openai/codex`); without them these tests are
//! skipped, except under CI=true, where they fail.

use crate::mcp_lifecycle::{name_is_free, signal, status_of};
use crate::support::*;
use repowire::core::peer::Status;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

/// The client's path, or None (skip) outside CI; under CI=true a missing
/// client fails the test.
fn client(name: &str) -> Option<PathBuf> {
    let found = std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default())
        .map(|d| d.join(name))
        .find(|p| p.is_file());
    if found.is_none() {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "{name} is not installed (.ci/run installs it with npm)"
        );
        eprintln!("skipped: {name} is not installed");
    }
    found
}

/// A client's world: a temporary HOME and a project directory to run in.
struct World {
    home: tempfile::TempDir,
    project: PathBuf,
}

impl World {
    fn new() -> Self {
        let home = tempfile::tempdir().unwrap();
        let project = home.path().join("project");
        std::fs::create_dir_all(&project).unwrap();
        World { home, project }
    }

    /// `bin ARGS` in the project, with only this world's environment.
    fn command(&self, bin: &Path, args: &[&str]) -> Command {
        let mut c = Command::new(bin);
        c.env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("HOME", self.home.path())
            .env("CODEX_HOME", self.home.path().join(".codex"))
            // No update checks, telemetry or error reports.
            .env("DISABLE_AUTOUPDATER", "1")
            .env("CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC", "1")
            .current_dir(&self.project)
            .args(args)
            .stdin(Stdio::null());
        c
    }

    /// Run to the end (a generous guard against a hang); (ok, stdout+stderr).
    fn run(&self, bin: &Path, args: &[&str]) -> (bool, String) {
        let mut child = self
            .command(bin, args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let (mut out, mut err) = (child.stdout.take().unwrap(), child.stderr.take().unwrap());
        let reader = std::thread::spawn(move || {
            use std::io::Read;
            let mut s = String::new();
            let _ = out.read_to_string(&mut s);
            let _ = err.read_to_string(&mut s);
            s
        });
        let st = wait_timeout(&mut child, Duration::from_secs(120)).unwrap_or_else(|| {
            let _ = child.kill();
            panic!("{} {args:?} hung", bin.display())
        });
        (st.success(), reader.join().unwrap())
    }
}

/// `repowire --home HOME mcp --name NAME`, as a client's server command.
fn server(home: &Path, name: &str) -> Vec<String> {
    [
        BIN,
        "--home",
        &home.display().to_string(),
        "mcp",
        "--name",
        name,
    ]
    .map(str::to_string)
    .to_vec()
}

fn claude_add(w: &World, claude: &Path, entry: &str, cmd: &[String]) {
    let mut args = vec!["mcp", "add", "-s", "user", entry, "--"];
    args.extend(cmd.iter().map(String::as_str));
    let (ok, out) = w.run(claude, &args);
    assert!(ok, "claude mcp add: {out}");
}

/// `claude mcp get` before any daemon runs: connected (the handshake does
/// not need one). Then with a daemon, `claude mcp list` and `claude mcp
/// get`: connected, and afterwards the session's peer is offline, not a
/// ghost, and its name lock is free.
#[tokio::test]
async fn claude_health_checks_leave_no_peer_online() {
    let Some(claude) = client("claude") else {
        return;
    };
    let w = World::new();
    let home = tempfile::tempdir().unwrap();
    claude_add(&w, &claude, "rw", &server(home.path(), "hc"));
    let (ok, out) = w.run(&claude, &["mcp", "get", "rw"]);
    assert!(ok && out.contains("Connected"), "no daemon yet: {out}");
    assert!(name_is_free(home.path(), "hc"));
    let mut d = Daemon {
        home,
        url: String::new(),
        child: None,
        args: vec![],
    };
    d.spawn();
    for args in [&["mcp", "list"][..], &["mcp", "get", "rw"][..]] {
        let (ok, out) = w.run(&claude, args);
        assert!(ok && out.contains("Connected"), "{args:?}: {out}");
        assert_eq!(
            status_of(&d, "hc").await,
            (Status::Offline, false),
            "after claude {args:?}"
        );
        assert!(name_is_free(d.home_path(), "hc"), "after claude {args:?}");
    }
}

/// Two servers with the same --name, health-checked at once by one
/// `claude mcp list`: they join as hc and hc-2, and both are offline
/// afterwards with their names free.
#[tokio::test]
async fn two_concurrent_claude_health_checks_leave_no_peer_online() {
    let Some(claude) = client("claude") else {
        return;
    };
    let d = Daemon::start(&[]);
    let w = World::new();
    claude_add(&w, &claude, "rw", &server(d.home_path(), "hc"));
    claude_add(&w, &claude, "rw-twin", &server(d.home_path(), "hc"));
    let (ok, out) = w.run(&claude, &["mcp", "list"]);
    assert!(ok, "{out}");
    assert_eq!(out.matches("Connected").count(), 2, "{out}");
    for name in ["hc", "hc-2"] {
        assert_eq!(
            status_of(&d, name).await,
            (Status::Offline, false),
            "{name}"
        );
        assert!(name_is_free(d.home_path(), name), "{name}");
    }
}

/// Codex: a session (`codex exec`) joins; SIGTERM to codex ends it (codex
/// closes the server's stdin) and the peer goes offline; a second session
/// whose codex process is killed with -9 (its server sees end of input)
/// goes offline too. (Codex 0.171 ignores SIGINT while it waits for the
/// network, so Ctrl-C is not what stops it here.)
#[tokio::test]
async fn codex_sessions_leave_no_peer_online() {
    let Some(codex) = client("codex") else {
        return;
    };
    let d = Daemon::start(&[]);
    let w = World::new();
    let codex_home = w.home.path().join(".codex");
    let _reaper = Reaper(codex_home.clone());
    std::fs::create_dir_all(&codex_home).unwrap();
    // A model provider nobody answers on loopback: codex waits for it.
    std::fs::write(
        codex_home.join("config.toml"),
        "model_provider = \"dead\"\ncheck_for_update_on_startup = false\n\
         [model_providers.dead]\nname = \"dead\"\nbase_url = \"http://127.0.0.1:9/v1\"\n\
         wire_api = \"responses\"\n[analytics]\nenabled = false\n",
    )
    .unwrap();
    let mut add = vec!["mcp", "add", "rw", "--"];
    let cmd = server(d.home_path(), "cx");
    add.extend(cmd.iter().map(String::as_str));
    let (ok, out) = w.run(&codex, &add);
    assert!(ok, "codex mcp add: {out}");
    let start = || {
        w.command(&codex, &["exec", "--skip-git-repo-check", "say hi"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap()
    };
    let d = &d;
    let online = || async move {
        eventually(Duration::from_secs(60), "codex's session joins", || async {
            let p = d.admin().describe("cx", None).await.ok()?;
            (p.status == Status::Online).then_some(())
        })
        .await
    };
    let offline = |why: &'static str| async move {
        eventually(Duration::from_secs(30), why, || async {
            (status_of(d, "cx").await == (Status::Offline, false)).then_some(())
        })
        .await
    };
    let mut cx = start();
    online().await;
    signal(cx.id(), "TERM");
    offline("offline after SIGTERM to codex").await;
    wait_timeout(&mut cx, Duration::from_secs(30)).expect("codex exits");
    let mut cx = start();
    online().await;
    let server_pid = mcp_pid(d.home_path()).expect("the server's process");
    signal(parent_of(server_pid), "KILL");
    offline("offline after kill -9 of codex").await;
    let _ = cx.kill();
    let _ = cx.wait();
    assert!(name_is_free(d.home_path(), "cx"));
}

/// Kills (-9) what a test's codex left running: every process whose
/// environment names this test's own CODEX_HOME.
struct Reaper(PathBuf);

impl Drop for Reaper {
    fn drop(&mut self) {
        let mark = format!("CODEX_HOME={}", self.0.display());
        for e in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
            let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else {
                continue;
            };
            let env = std::fs::read(e.path().join("environ")).unwrap_or_default();
            if env.split(|b| *b == 0).any(|v| v == mark.as_bytes()) {
                let _ = Command::new("kill").args(["-9", &pid.to_string()]).status();
            }
        }
    }
}

/// The pid of the `repowire mcp` serving `home`.
fn mcp_pid(home: &Path) -> Option<u32> {
    let want = home.display().to_string();
    std::fs::read_dir("/proc").ok()?.flatten().find_map(|e| {
        let pid: u32 = e.file_name().to_str()?.parse().ok()?;
        let cmd = std::fs::read(e.path().join("cmdline")).ok()?;
        let args: Vec<&[u8]> = cmd.split(|b| *b == 0).collect();
        let has = |s: &str| args.contains(&s.as_bytes());
        (has(&want) && has("mcp") && has(BIN)).then_some(pid)
    })
}

fn parent_of(pid: u32) -> u32 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    // pid (comm) state ppid …; comm may hold spaces, so read after ')'.
    let rest = &stat[stat.rfind(')').unwrap() + 2..];
    rest.split(' ').nth(1).unwrap().parse().unwrap()
}
