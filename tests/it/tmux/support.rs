//! The harness of the tmux tests: a private tmux server per test, the
//! scripted agent in its pane, and the reads the tests share.

use crate::support::*;
pub use repowire::api::{AskReq, NotifyReq, RegisterReq};
pub use repowire::client::Client;
pub use repowire::core::delivery::DeliveryKind;
pub use repowire::core::tmux::typed_line;
pub use serde_json::Value;
pub use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicUsize, Ordering};
pub use std::time::{Duration, Instant};

/// The bound issue 13 sets: a peer whose pane is gone is offline within this.
pub const GONE_WITHIN: Duration = Duration::from_secs(10);

pub fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/it/fixtures/tmux")
        .join(name)
}

/// A program from PATH.
pub fn which(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .map(|d| d.join(name))
        .find(|p| p.is_file())
}

/// The real tmux, from PATH. Missing tmux fails the test (never a skip).
pub fn tmux_bin() -> PathBuf {
    which("tmux").expect("tmux is not installed: these tests need real tmux (.ci/run installs it)")
}

/// The command of a pane that only reads: `fixtures/tmux/logger.sh`
/// appends each line typed into it to `log`.
pub fn logger_cmd(log: &Path) -> String {
    [
        "sh",
        fixture("logger.sh").to_str().unwrap(),
        log.to_str().unwrap(),
    ]
    .map(sh_quote)
    .join(" ")
}

/// An executable `tmux` in `dir` that runs `fixtures/tmux/<script>` with
/// the real tmux as `$REAL` and `env` exported: a stand-in to hand the
/// daemon (`--tmux-bin`) or to put first in a CLI's PATH.
pub fn tmux_stand_in(dir: &Path, script: &str, env: &[(&str, String)]) -> PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let mut sh = format!(
        "#!/bin/sh\nREAL={}\nexport REAL\n",
        sh_quote(tmux_bin().to_str().unwrap())
    );
    for (k, v) in env {
        sh.push_str(&format!("{k}={}\nexport {k}\n", sh_quote(v)));
    }
    sh.push_str(&format!(
        "exec sh {} \"$@\"\n",
        sh_quote(fixture(script).to_str().unwrap())
    ));
    let path = dir.join("tmux");
    std::fs::write(&path, sh).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    path
}

/// Quote for the shell tmux runs a window's command with.
pub fn sh_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

/// A private tmux server: `tmux -L <name>`, with one placeholder window so
/// that killing an agent's pane does not end the server. Killed on drop.
pub struct Server {
    pub name: String,
    /// Its socket file: tmux leaves it behind when the server ends.
    pub socket: PathBuf,
}

impl Server {
    pub fn start() -> Server {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .subsec_nanos();
        let mut s = Server {
            name: format!(
                "rw-{}-{}-{nanos:x}",
                std::process::id(),
                NEXT.fetch_add(1, Ordering::Relaxed)
            ),
            socket: PathBuf::new(),
        };
        s.boot();
        s.socket = PathBuf::from(s.socket());
        s
    }

    /// Run `tmux -L <name> <args>` with a clean environment (no $TMUX of
    /// whoever runs the tests, nothing of theirs in the panes).
    pub fn run(&self, args: &[&str]) -> Output {
        Command::new(tmux_bin())
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .arg("-L")
            .arg(&self.name)
            .args(args)
            .stdin(std::process::Stdio::null())
            .output()
            .expect("run tmux")
    }

    pub fn ok(&self, args: &[&str]) -> String {
        let o = self.run(args);
        assert!(
            o.status.success(),
            "tmux {args:?}: {}\n{}",
            o.status,
            String::from_utf8_lossy(&o.stderr)
        );
        String::from_utf8_lossy(&o.stdout).trim_end().to_string()
    }

    /// Open a window running `cmd`; its pane id.
    pub fn window(&self, cmd: &str) -> String {
        let pane = self.ok(&["new-window", "-d", "-P", "-F", "#{pane_id}", cmd]);
        assert!(pane.starts_with('%'), "{pane:?}");
        pane
    }

    pub fn field(&self, pane: &str, format: &str) -> String {
        self.ok(&["display-message", "-p", "-t", pane, format])
    }

    /// The socket path, as `$TMUX` names it inside the server's panes.
    pub fn socket(&self) -> String {
        self.ok(&["display-message", "-p", "-t", "t:", "#{socket_path}"])
    }

    /// Claim `pane` for one registration, as `repowire` does from inside
    /// tmux: the claim to send as `RegisterReq.tmux_claim`.
    pub fn claim(&self, pane: &str) -> String {
        let c = repowire::core::tmux::new_claim();
        let opt = repowire::core::tmux::claim_option(&c).unwrap();
        self.ok(&["set-option", "-p", "-t", pane, &opt, "1"]);
        c
    }

    /// Kill the server and start it again under the same name: pane ids
    /// start over, so a new pane may get a recorded pane's id.
    pub fn restart(&self) {
        let _ = self.run(&["kill-server"]);
        // The old server takes a moment to go: a client meeting it then is
        // told "server exited unexpectedly".
        let t0 = Instant::now();
        while self.run(&["has-session"]).status.success() && t0.elapsed() < Duration::from_secs(5) {
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = std::fs::remove_file(&self.socket);
        self.boot();
    }

    /// Start the server with its placeholder session `t` (no config file).
    fn boot(&self) {
        self.ok(&[
            "-f",
            "/dev/null",
            "new-session",
            "-d",
            "-s",
            "t",
            "-x",
            "200",
            "-y",
            "50",
            "sleep 3600",
        ]);
    }

    pub fn kill(&self) {
        let _ = self.run(&["kill-server"]);
        let _ = std::fs::remove_file(&self.socket);
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill();
    }
}

/// The scripted agent in its own pane, registered by itself.
pub struct Agent {
    pub dir: tempfile::TempDir,
    pub pane: String,
    pub token: String,
    pub peer_id: String,
    pub route: String,
}

impl Agent {
    /// Start `agent.sh` in a new window and wait for it to register.
    pub async fn start(srv: &Server, d: &Daemon, name: &str) -> Agent {
        let dir = tempfile::tempdir().unwrap();
        // Run the script's sh under the name `agent`: the pane's command
        // is then an agent's, not a shell's (a carrier may rightly refuse to
        // type into a shell prompt).
        let sh = dir.path().join("agent");
        std::os::unix::fs::symlink(which("sh").expect("sh"), &sh).unwrap();
        let cmd = [
            sh.to_str().unwrap(),
            fixture("agent.sh").to_str().unwrap(),
            BIN,
            d.home_path().to_str().unwrap(),
            name,
            dir.path().to_str().unwrap(),
        ]
        .map(sh_quote)
        .join(" ");
        let pane = srv.window(&cmd);
        let p = dir.path().to_path_buf();
        let reg = eventually(Duration::from_secs(20), "the agent to register", || {
            let p = p.clone();
            async move {
                if p.join("register.failed").exists() {
                    panic!(
                        "the agent's `peer register` failed: {}",
                        std::fs::read_to_string(p.join("register.err")).unwrap_or_default()
                    );
                }
                let s = std::fs::read_to_string(p.join("register.json")).ok()?;
                Some(serde_json::from_str::<Value>(&s).expect("register --json"))
            }
        })
        .await;
        Agent {
            dir,
            pane,
            token: reg["token"].as_str().expect("a token").to_string(),
            peer_id: reg["peer"]["peer_id"].as_str().unwrap().to_string(),
            route: reg["peer"]["route"].as_str().unwrap().to_string(),
        }
    }

    pub fn env(&self) -> [(&str, &str); 1] {
        [("REPOWIRE_PEER_TOKEN", self.token.as_str())]
    }

    pub fn path(&self, f: &str) -> PathBuf {
        self.dir.path().join(f)
    }

    /// The lines the agent read, in order (complete lines only).
    pub fn log(&self) -> Vec<String> {
        read_lines(&self.path("log"))
    }

    pub async fn wait_lines(&self, n: usize, t: Duration) -> Vec<String> {
        eventually(t, &format!("{n} line(s) typed into the pane"), || async {
            let l = self.log();
            (l.len() >= n).then_some(l)
        })
        .await
    }
}

pub fn read_lines(p: &Path) -> Vec<String> {
    let s = std::fs::read(p).unwrap_or_default();
    let s = String::from_utf8(s).expect("the log is UTF-8");
    let done = s.rfind('\n').map(|i| &s[..i + 1]).unwrap_or("");
    done.lines().map(str::to_string).collect()
}

/// A pull-routed peer registered with the CLI outside tmux; its token.
pub fn cli_peer(d: &Daemon, name: &str) -> String {
    let v = d.cli(&["peer", "register", name, "--json"]).ok().json();
    assert_eq!(v["peer"]["route"], "pull", "outside tmux: {v}");
    v["token"].as_str().unwrap().to_string()
}

/// `repowire trace ID --json`: (kind, payload) in order.
pub fn trace(d: &Daemon, id: &str) -> Vec<(String, Value)> {
    d.cli(&["trace", id, "--json"]).ok().json()["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| (e["kind"].as_str().unwrap().to_string(), e.clone()))
        .collect()
}

pub fn kinds(t: &[(String, Value)]) -> Vec<&str> {
    t.iter().map(|(k, _)| k.as_str()).collect()
}

/// The delivery was leased by the tmux route, then confirmed once, and no
/// other route carried it.
pub fn assert_carried_by_tmux(d: &Daemon, dl: &str) {
    let t = trace(d, dl);
    let leased: Vec<usize> = (0..t.len())
        .filter(|&i| t[i].0 == "delivery_leased")
        .collect();
    assert!(!leased.is_empty(), "{dl} never leased: {:?}", kinds(&t));
    for &i in &leased {
        assert_eq!(
            t[i].1["payload"]["route"], "tmux",
            "{dl} leased by another route: {}",
            t[i].1
        );
    }
    let confirmed: Vec<usize> = (0..t.len())
        .filter(|&i| t[i].0 == "delivery_confirmed")
        .collect();
    assert_eq!(confirmed.len(), 1, "{dl}: {:?}", kinds(&t));
    assert!(
        confirmed[0] > leased[0],
        "{dl} confirmed before it was leased: {:?}",
        kinds(&t)
    );
}

pub fn confirmed(d: &Daemon, dl: &str) -> bool {
    trace(d, dl).iter().any(|(k, _)| k == "delivery_confirmed")
}

pub fn peer_json(d: &Daemon, name: &str) -> Value {
    let all = d.cli(&["peer", "list", "--json"]).ok().json();
    all.as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == name)
        .unwrap_or_else(|| panic!("{name} not listed: {all}"))
        .clone()
}

pub async fn note(alice: &Client, text: &str) -> String {
    alice
        .notify(&NotifyReq {
            to: "bob".into(),
            text: text.into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .delivery_id
}

pub fn note_line(dl: &str, text: &str) -> String {
    typed_line(DeliveryKind::Notify, dl, Some("alice"), None, text).line
}

/// How long it took `name` to be listed offline, polling from `t0`.
pub async fn offline_after(d: &Daemon, name: &str, t0: Instant) -> Duration {
    eventually(
        Duration::from_secs(30),
        &format!("{name} to be offline"),
        || async { (peer_json(d, name)["status"] == "offline").then(|| t0.elapsed()) },
    )
    .await
}

pub fn has_event(d: &Daemon, id: &str, kind: &str) -> bool {
    trace(d, id).iter().any(|(k, _)| k == kind)
}
