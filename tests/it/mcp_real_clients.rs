//! The session's lifecycle under the real agent clients (protocol
//! fidelity against other MCP clients is in `mcp_clients`): Claude Code
//! (`claude mcp list` / `claude mcp get` health-check each configured
//! server: start it, initialize, list tools, then stop it with SIGINT,
//! SIGTERM 0.1 s later and SIGKILL 0.4 s after that) and Codex (`codex
//! exec` starts its servers before it reaches for a model; stopped, it
//! sends SIGTERM and closes stdin). Neither reaches a model API here: Codex
//! is pointed at a dead loopback provider. Each client runs with a
//! temporary HOME (and CODEX_HOME), so nothing touches the real one.
//!
//! Both clients look hosts up by themselves all the same (Claude Code
//! `api.anthropic.com`, Codex `chatgpt.com` and `api.github.com`), so each
//! test runs the client, its server and the daemon in a private network
//! namespace with only loopback (`unshare --net`, as root; commands join
//! it with `nsenter --net`): the lookups fail there (`ENETUNREACH`) and
//! nothing leaves the machine. The test process itself stays outside and
//! checks the daemon with the CLI run inside.
//!
//! The clients are installed by .ci/run (`npm install -g
//! @anthropic-ai/claude-code @openai/codex`); without them, or without a
//! way to make a network namespace (root, `unshare`, `ip`), these tests are
//! skipped, except under CI=true, where they fail.

use crate::mcp_lifecycle::{name_is_free, signal};
use crate::support::*;
use repowire::core::peer::Status;
use std::io::BufRead;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// The client's path, or None (skip) outside CI; under CI=true a missing
/// client fails the test.
pub(crate) fn client(name: &str) -> Option<PathBuf> {
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

/// Skip (None) outside CI, fail under CI=true.
fn skip<T>(why: &str) -> Option<T> {
    assert!(std::env::var("CI").as_deref() != Ok("true"), "{why}");
    eprintln!("skipped: {why}");
    None
}

/// A private network namespace with only loopback (up), held by a `sleep`
/// of its own (killed on drop; a daemon started in it keeps it too).
pub(crate) struct Net {
    holder: Child,
}

impl Net {
    /// None (skipped) where no namespace can be made, outside CI.
    pub(crate) fn new() -> Option<Self> {
        let held = Command::new("unshare")
            .args(["--net", "--", "sh", "-c"])
            .arg("ip link set lo up && echo up && exec sleep infinity")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn();
        let mut holder = match held {
            Ok(h) => h,
            Err(e) => return skip(&format!("no unshare: {e}")),
        };
        // Ready once loopback is up (a daemon could not listen before).
        let mut line = String::new();
        let _ = std::io::BufReader::new(holder.stdout.take().unwrap()).read_line(&mut line);
        if line.trim() != "up" {
            let _ = holder.kill();
            let _ = holder.wait();
            return skip("no private network namespace (needs root, unshare and ip)");
        }
        Some(Net { holder })
    }

    /// `bin`, to run in the namespace: `nsenter` enters it, then execs
    /// `bin` (the pid is the command's own).
    pub(crate) fn command(&self, bin: &Path) -> Command {
        let mut c = Command::new("nsenter");
        c.arg(format!("--net=/proc/{}/ns/net", self.holder.id()))
            .arg("--")
            .arg(bin);
        c
    }

    /// Start a daemon in the namespace on `home`.
    pub(crate) fn daemon(&self, home: tempfile::TempDir) -> Daemon {
        let child = self
            .command(Path::new(BIN))
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("RUST_LOG", "warn")
            .arg("--home")
            .arg(home.path())
            .args([
                "daemon",
                "run",
                "--listen",
                "127.0.0.1:0",
                "--tick",
                "100ms",
            ])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn the daemon in the namespace");
        let pid = child.id();
        let mut d = Daemon {
            home,
            url: String::new(),
            child: Some(child),
            args: vec![],
        };
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        while d.url.is_empty() {
            if let Ok(s) = std::fs::read_to_string(d.home_path().join("daemon.json"))
                && let Ok(v) = serde_json::from_str::<serde_json::Value>(&s)
                && v["pid"].as_u64() == Some(pid as u64)
            {
                d.url = v["url"].as_str().unwrap().to_string();
            }
            assert!(std::time::Instant::now() < deadline, "daemon did not start");
            if let Some(st) = d.child.as_mut().unwrap().try_wait().unwrap() {
                panic!("daemon exited at start: {st}");
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        d
    }

    /// `peer describe NAME` of a daemon in the namespace, by the CLI run
    /// inside: (status, ghost), or None while there is no such peer.
    pub(crate) fn describe(&self, d: &Daemon, name: &str) -> Option<(Status, bool)> {
        let out = self
            .command(Path::new(BIN))
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .arg("--home")
            .arg(d.home_path())
            .args(["--json", "peer", "describe", name])
            .stdin(Stdio::null())
            .output()
            .unwrap();
        if !out.status.success() {
            return None;
        }
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        let status = serde_json::from_value(v["status"].clone()).unwrap();
        Some((status, v["ghost"].as_bool().unwrap()))
    }

    /// The peer's status as the daemon has it now (the peer must exist).
    pub(crate) fn status_of(&self, d: &Daemon, name: &str) -> (Status, bool) {
        self.describe(d, name).expect("the peer exists")
    }
}

impl Drop for Net {
    fn drop(&mut self) {
        let _ = self.holder.kill();
        let _ = self.holder.wait();
    }
}

/// A client's world: a temporary HOME and a project directory to run in,
/// and the network namespace its commands run in.
pub(crate) struct World {
    pub(crate) home: tempfile::TempDir,
    pub(crate) project: PathBuf,
    pub(crate) net: Net,
}

impl World {
    /// None: skipped (no namespace, outside CI).
    pub(crate) fn new() -> Option<Self> {
        let net = Net::new()?;
        let home = tempfile::tempdir().unwrap();
        let project = home.path().join("project");
        std::fs::create_dir_all(&project).unwrap();
        // The namespace is its own: loopback is all it has.
        let w = World { home, project, net };
        let (ok, links) = w.run(Path::new("ip"), &["-o", "link", "show"]);
        assert!(ok, "{links}");
        assert_eq!(links.lines().count(), 1, "only loopback: {links}");
        assert!(links.contains(": lo:"), "{links}");
        Some(w)
    }

    /// `bin ARGS` in the project and the namespace, with only this world's
    /// environment.
    pub(crate) fn command(&self, bin: &Path, args: &[&str]) -> Command {
        let mut c = self.net.command(bin);
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
    pub(crate) fn run(&self, bin: &Path, args: &[&str]) -> (bool, String) {
        self.run_env(bin, args, &[], None)
    }

    /// [`World::run`] with extra environment, and `input` written to stdin
    /// (then closed).
    pub(crate) fn run_env(
        &self,
        bin: &Path,
        args: &[&str],
        env: &[(&str, &str)],
        input: Option<&str>,
    ) -> (bool, String) {
        let mut cmd = self.command(bin, args);
        for (k, v) in env {
            cmd.env(k, v);
        }
        if input.is_some() {
            cmd.stdin(Stdio::piped());
        }
        let mut child = cmd
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        if let Some(text) = input {
            use std::io::Write;
            let mut stdin = child.stdin.take().unwrap();
            stdin.write_all(text.as_bytes()).unwrap();
        }
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
    let Some(w) = World::new() else {
        return;
    };
    let home = tempfile::tempdir().unwrap();
    claude_add(&w, &claude, "rw", &server(home.path(), "hc"));
    let (ok, out) = w.run(&claude, &["mcp", "get", "rw"]);
    assert!(ok && out.contains("Connected"), "no daemon yet: {out}");
    assert!(name_is_free(home.path(), "hc"));
    let d = w.net.daemon(home);
    for args in [&["mcp", "list"][..], &["mcp", "get", "rw"][..]] {
        let (ok, out) = w.run(&claude, args);
        assert!(ok && out.contains("Connected"), "{args:?}: {out}");
        assert_eq!(
            w.net.status_of(&d, "hc"),
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
    let Some(w) = World::new() else {
        return;
    };
    let d = w.net.daemon(tempfile::tempdir().unwrap());
    claude_add(&w, &claude, "rw", &server(d.home_path(), "hc"));
    claude_add(&w, &claude, "rw-twin", &server(d.home_path(), "hc"));
    let (ok, out) = w.run(&claude, &["mcp", "list"]);
    assert!(ok, "{out}");
    assert_eq!(out.matches("Connected").count(), 2, "{out}");
    for name in ["hc", "hc-2"] {
        assert_eq!(
            w.net.status_of(&d, name),
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
    let Some(w) = World::new() else {
        return;
    };
    let d = w.net.daemon(tempfile::tempdir().unwrap());
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
    let (d, net) = (&d, &w.net);
    let online = || async move {
        eventually(Duration::from_secs(60), "codex's session joins", || async {
            (net.describe(d, "cx")?.0 == Status::Online).then_some(())
        })
        .await
    };
    let offline = |why: &'static str| async move {
        eventually(Duration::from_secs(30), why, || async {
            (net.describe(d, "cx")? == (Status::Offline, false)).then_some(())
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
