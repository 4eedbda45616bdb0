//! Agent sessions in tmux windows (issue 13): spawn → the session registers
//! → kill; who may spawn; the per-circle cap; a session that never
//! registers; `peer attach`. Real tmux: each test runs its own private
//! server (`-L repowire-test-…`), killed when the test ends, and a scripted
//! agent (`sh agent.sh`) that registers with the identity the daemon handed
//! its window and then reads lines.

use crate::support::*;
use repowire::api::{JobCreateReq, KillReq, SpawnReq};
use repowire::core::ErrorCode;
use repowire::core::job::JobState;
use repowire::core::peer::Status;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(20);

/// A private tmux server, killed on drop.
struct Tmux {
    name: String,
    /// Where the test's files live: agent.sh, its log, project dirs.
    dir: tempfile::TempDir,
}

impl Tmux {
    /// A fresh server name, or `None` when tmux is not installed.
    fn new() -> Option<Tmux> {
        let ok = Command::new("tmux")
            .arg("-V")
            .output()
            .is_ok_and(|o| o.status.success());
        if !ok {
            // CI installs tmux (.ci/run): there a missing one is a failure.
            assert!(
                std::env::var_os("CI").is_none(),
                "tmux is not installed (CI=true: .ci/run installs it)"
            );
            eprintln!("tmux is not installed: skipping");
            return None;
        }
        let dir = tempfile::tempdir().unwrap();
        let name = format!(
            "repowire-test-{}-{}",
            std::process::id(),
            dir.path().file_name().unwrap().to_string_lossy()
        );
        Some(Tmux { name, dir })
    }

    /// Run tmux on this server, with the environment the test daemon has.
    fn run(&self, args: &[&str]) -> Output {
        Command::new("tmux")
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .args(["-L", &self.name])
            .args(args)
            .stdin(Stdio::null())
            .output()
            .unwrap()
    }

    /// The live pane ids of the server.
    fn panes(&self) -> Vec<String> {
        let o = self.run(&["list-panes", "-a", "-F", "#{pane_id}"]);
        String::from_utf8_lossy(&o.stdout)
            .lines()
            .map(str::to_string)
            .collect()
    }

    /// A project directory `name` (created).
    fn project(&self, name: &str) -> PathBuf {
        let p = self.dir.path().join(name);
        std::fs::create_dir_all(&p).unwrap();
        p
    }

    /// The scripted agent: it registers (resuming the peer the daemon made
    /// with the token in its environment) and logs every line it reads.
    fn agent(&self) -> String {
        let script = self.dir.path().join("agent.sh");
        let log = self.dir.path().join("agent.log");
        std::fs::write(
            &script,
            format!(
                "#!/bin/sh\n\
                 if {bin} peer register >>{log} 2>&1; then echo \"registered $REPOWIRE_PEER\" >>{log};\n\
                 else echo \"register failed $REPOWIRE_PEER\" >>{log}; fi\n\
                 while IFS= read -r line; do echo \"got: $line\" >>{log}; done\n",
                bin = BIN,
                log = log.display()
            ),
        )
        .unwrap();
        format!("sh {}", script.display())
    }

    /// A scripted worker: it registers, then for each job ask typed into
    /// its pane (`[repowire ask from … ask-…] Job job-…: …`) answers the
    /// ask, runs the job and reports it done, logging what it did.
    fn worker(&self) -> PathBuf {
        let script = self.dir.path().join("worker.sh");
        let log = self.dir.path().join("worker.log");
        std::fs::write(
            &script,
            format!(
                r#"#!/bin/sh
{bin} peer register >>{log} 2>&1 || echo "register failed" >>{log}
while IFS= read -r line; do
  echo "got: $line" >>{log}
  case "$line" in
    "[repowire ask from "*)
      ask=$(printf '%s' "$line" | sed -n 's/^\[repowire ask from [^ ]* \(ask-[^]]*\)\].*/\1/p')
      job=$(printf '%s' "$line" | sed -n 's/.*Job \(job-[A-Za-z0-9]*\):.*/\1/p')
      [ -n "$ask" ] && {bin} peer answer "$ask" "on it" >>{log} 2>&1
      if [ -n "$job" ]; then
        {bin} jobs update "$job" --state running >>{log} 2>&1
        {bin} jobs update "$job" --state succeeded --result "done by $REPOWIRE_PEER" >>{log} 2>&1 && echo "did $job" >>{log}
      fi;;
  esac
done
"#,
                bin = BIN,
                log = log.display()
            ),
        )
        .unwrap();
        script
    }

    /// The daemon flags that put spawns on this server.
    fn flags<'a>(&'a self, more: &[&'a str]) -> Vec<&'a str> {
        let mut f = vec!["--tmux-server", self.name.as_str()];
        f.extend(more);
        f
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = self.run(&["kill-server"]);
        // tmux leaves its socket file behind (where tmux puts it without
        // TMUX_TMPDIR, which `run` clears): take it away too.
        use std::os::unix::fs::MetadataExt;
        if let Ok(m) = std::fs::metadata(self.dir.path()) {
            let _ = std::fs::remove_file(format!("/tmp/tmux-{}/{}", m.uid(), self.name));
        }
    }
}

fn spawn_req(path: &Path, command: Option<&str>) -> SpawnReq {
    SpawnReq {
        path: path.to_str().unwrap().into(),
        backend: command.map(|_| "shell".into()),
        command: command.map(str::to_string),
        ..Default::default()
    }
}

/// Activate the persona `spawner` (source `lua`) in the daemon's home; a
/// peer `owner` to create jobs with.
async fn use_spawner(d: &Daemon, lua: &str) -> repowire::client::Client {
    std::fs::create_dir_all(d.home_path().join("personas")).unwrap();
    std::fs::write(d.home_path().join("personas/spawner.lua"), lua).unwrap();
    d.cli(&["orchestrator", "persona", "use", "spawner"]).ok();
    d.peer("owner", None).await
}

/// A job whose brief is the directory `dir` and whose one tag is `tag`.
fn job_in(title: &str, dir: &Path, tag: &str) -> JobCreateReq {
    JobCreateReq {
        title: title.into(),
        brief: Some(dir.to_str().unwrap().into()),
        tags: Some(vec![tag.into()]),
        ..Default::default()
    }
}

/// The events of `kind` about peer `name`.
async fn events_of(d: &Daemon, kind: &str, name: &str) -> Vec<Value> {
    d.admin()
        .events(Some(0), None, None)
        .await
        .unwrap()
        .events
        .into_iter()
        .filter(|e| e.kind == kind && e.payload["name"] == name)
        .map(|e| e.payload)
        .collect()
}

async fn status_of(d: &Daemon, name: &str, circle: Option<&str>) -> Status {
    d.admin().describe(name, circle).await.unwrap().status
}

/// Spawn → the peer registers from its window (online, routed to its
/// pane) → kill: the pane closes, the peer goes offline, and the job it
/// was running goes back to the queue.
#[tokio::test]
async fn a_spawned_session_registers_and_a_kill_ends_it() {
    let Some(t) = Tmux::new() else { return };
    let d = Daemon::start(&t.flags(&[]));
    let agent = t.agent();
    let dir = t.project("my app");
    let r = d.cli(&[
        "peer",
        "spawn",
        dir.to_str().unwrap(),
        "--backend",
        "shell",
        "--command",
        &agent,
        "--json",
    ]);
    let s = r.ok().json();
    assert_eq!(s["peer"]["name"], "my-app", "named after the directory");
    assert_eq!(s["peer"]["circle"], "default");
    assert_eq!(
        s["session"], "default",
        "the session is named after the circle"
    );
    let pane = s["pane"].as_str().unwrap().to_string();
    let socket = s["server"].as_str().unwrap().to_string();
    assert!(pane.starts_with('%') && socket.ends_with(&t.name), "{s}");
    assert_eq!(
        s["attach"],
        format!("tmux -S {socket} attach-session -t {pane}")
    );
    assert!(
        !r.stdout.contains("REPOWIRE_PEER_TOKEN") && !r.stdout.contains("token"),
        "the token never leaves: {}",
        r.stdout
    );
    assert!(t.panes().contains(&pane), "{:?}", t.panes());
    // The session registers with the identity it was handed.
    eventually(WAIT, "the spawned session registers", || async {
        (status_of(&d, "my-app", None).await == Status::Online).then_some(())
    })
    .await;
    let p = d.admin().describe("my-app", None).await.unwrap();
    assert_eq!(p.route, format!("tmux:{socket}:{pane}"));
    assert_eq!(p.project_path, dir.to_str().unwrap());
    assert_eq!(p.backend, "shell");
    let spawned = events_of(&d, "peer_spawned", "my-app").await;
    assert_eq!(spawned.len(), 1, "{spawned:?}");
    assert_eq!(spawned[0]["by"], "admin");
    // A second spawn of the same directory gets the next free name, in a
    // new window of the same session.
    let s2 = d
        .admin()
        .spawn_peer(&spawn_req(&dir, Some(&agent)))
        .await
        .unwrap();
    assert_eq!(s2.peer.name, "my-app-2");
    assert_eq!(s2.session, "default");
    eventually(WAIT, "the second registers", || async {
        (status_of(&d, "my-app-2", None).await == Status::Online).then_some(())
    })
    .await;
    // It takes a job; then it is killed.
    let admin = d.admin();
    let olga = d.peer("olga", None).await;
    let job = olga
        .create_job(&JobCreateReq {
            title: "build it".into(),
            assign: Some("my-app".into()),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(job.state, JobState::Dispatched);
    let as_app =
        repowire::client::Client::new(&d.url, Some(d.admin_token()), Some("my-app".into()));
    let running = repowire::api::JobUpdateReq {
        state: Some(JobState::Running),
        ..Default::default()
    };
    let job = as_app.update_job(&job.job_id, &running).await.unwrap();
    assert_eq!(job.state, JobState::Running);
    let k = d.cli(&["peer", "kill", "my-app", "--json"]).ok().json();
    assert_eq!(k["pane_killed"], true, "{k}");
    assert_eq!(k["peer"]["status"], "offline");
    eventually(WAIT, "the pane is gone", || async {
        (!t.panes().contains(&pane)).then_some(())
    })
    .await;
    assert!(t.panes().contains(&s2.pane), "the other window stays");
    let gone = events_of(&d, "peer_gone", "my-app").await;
    assert_eq!(gone.len(), 1, "{gone:?}");
    assert_eq!(gone[0]["why"], "killed by admin");
    let back = eventually(WAIT, "the job goes back to the queue", || async {
        let j = olga.job(&job.job_id).await.unwrap();
        (j.state == JobState::Queued).then_some(j)
    })
    .await;
    assert_eq!(back.error.as_deref(), Some("executor_lost"));
    // Killing it again: nothing left to close, and still offline.
    let again = admin
        .kill_peer(&KillReq {
            name: "my-app".into(),
            circle: None,
        })
        .await
        .unwrap();
    assert!(!again.pane_killed);
    assert_eq!(again.peer.status, Status::Offline);
    assert_eq!(
        events_of(&d, "peer_gone", "my-app").await.len(),
        1,
        "gone once"
    );
    // Bad input is refused, and names what to do.
    for (req, says) in [
        (
            spawn_req(Path::new("relative/dir"), Some("true")),
            "not absolute",
        ),
        (spawn_req(&dir.join("nope"), Some("true")), "cannot be used"),
        (
            SpawnReq {
                backend: Some("shell".into()),
                ..spawn_req(&dir, None)
            },
            "pass a command",
        ),
        (
            SpawnReq {
                backend: Some("gemini".into()),
                ..spawn_req(&dir, None)
            },
            "unknown backend",
        ),
    ] {
        match admin.spawn_peer(&req).await {
            Err(repowire::client::ClientError::Api(e)) => {
                assert_eq!(e.code, ErrorCode::BadRequest, "{req:?}");
                assert!(e.message.contains(says), "{req:?}: {}", e.message);
            }
            other => panic!("{req:?}: {other:?}"),
        }
    }
}

/// The circle's orchestrator may spawn into its circle (a configured
/// backend only) and kill there; a plain peer may not; no peer names the
/// command; the first note reaches the new peer from the spawner.
#[tokio::test]
async fn only_the_orchestrator_or_the_admin_spawns() {
    let Some(t) = Tmux::new() else { return };
    let backend = format!("agent={}", t.agent());
    let d = Daemon::start(&t.flags(&["--spawn-command", &backend]));
    let dir = t.project("svc");
    let olga = d.peer("olga", Some("ops")).await;
    olga.claim_orchestrator(false).await.unwrap();
    let bob = d.peer("bob", Some("ops")).await;
    let req = SpawnReq {
        backend: Some("agent".into()),
        message: Some("start with the parser".into()),
        ..spawn_req(&dir, None)
    };
    assert_eq!(code_of(bob.spawn_peer(&req).await), ErrorCode::Forbidden);
    let with_command = SpawnReq {
        command: Some("sh -c 'echo pwned'".into()),
        ..req.clone()
    };
    assert_eq!(
        code_of(olga.spawn_peer(&with_command).await),
        ErrorCode::Forbidden
    );
    let elsewhere = SpawnReq {
        circle: Some("default".into()),
        ..req.clone()
    };
    assert_eq!(
        code_of(olga.spawn_peer(&elsewhere).await),
        ErrorCode::CrossCircle
    );
    let s = olga.spawn_peer(&req).await.unwrap();
    assert_eq!((s.peer.circle.as_str(), s.session.as_str()), ("ops", "ops"));
    eventually(WAIT, "it registers", || async {
        (status_of(&d, "svc", Some("ops")).await == Status::Online).then_some(())
    })
    .await;
    // Offline until it registered (the answer may come after it did).
    if s.peer.status != Status::Offline {
        assert!(!events_of(&d, "peer_resumed", "svc").await.is_empty());
    }
    let spawned = events_of(&d, "peer_spawned", "svc").await;
    assert_eq!(spawned[0]["by"], "olga");
    let noted = d
        .admin()
        .events(Some(0), None, Some("ops"))
        .await
        .unwrap()
        .events
        .into_iter()
        .any(|e| {
            e.kind == "delivery_queued" && e.payload["to"] == "svc" && e.payload["from"] == "olga"
        });
    assert!(noted, "the message is a note from olga to the new peer");
    let kill = KillReq {
        name: "svc".into(),
        circle: None,
    };
    assert_eq!(code_of(bob.kill_peer(&kill).await), ErrorCode::Forbidden);
    // Another circle's peer is out of reach, by name or by id.
    let other = d.peer("orla", None).await;
    other.claim_orchestrator(false).await.unwrap();
    let by_name = KillReq {
        name: "svc@ops".into(),
        circle: None,
    };
    assert_eq!(
        code_of(other.kill_peer(&by_name).await),
        ErrorCode::CrossCircle
    );
    let by_id = KillReq {
        name: s.peer.peer_id.clone(),
        circle: None,
    };
    assert_eq!(
        code_of(other.kill_peer(&by_id).await),
        ErrorCode::CrossCircle
    );
    // 0.17's field name works too.
    let k: Value = reqwest::Client::new()
        .post(format!("{}/v1/peers/kill", d.url))
        .bearer_auth(d.admin_token())
        .json(&serde_json::json!({"peer_identifier": "svc", "circle": "ops"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(k["pane_killed"], true, "{k}");
    assert!(!t.panes().contains(&s.pane));
}

/// At most --max-spawns-per-circle live spawns; a killed one frees its place.
#[tokio::test]
async fn the_cap_counts_live_spawns() {
    let Some(t) = Tmux::new() else { return };
    let d = Daemon::start(&t.flags(&["--max-spawns-per-circle", "1"]));
    let agent = t.agent();
    let dir = t.project("app");
    let admin = d.admin();
    let first = admin
        .spawn_peer(&spawn_req(&dir, Some(&agent)))
        .await
        .unwrap();
    let r = d.cli(&["peer", "spawn", dir.to_str().unwrap(), "--command", &agent]);
    r.fails(1, "spawn_limit");
    assert!(r.stderr.contains("kill one first"), "{}", r.stderr);
    // Another circle has its own count.
    let ops = SpawnReq {
        circle: Some("ops".into()),
        ..spawn_req(&dir, Some(&agent))
    };
    let in_ops = admin.spawn_peer(&ops).await.unwrap();
    assert_eq!(in_ops.peer.name, "app");
    admin
        .kill_peer(&KillReq {
            name: first.peer.name.clone(),
            circle: None,
        })
        .await
        .unwrap();
    let again = admin
        .spawn_peer(&spawn_req(&dir, Some(&agent)))
        .await
        .unwrap();
    assert_eq!(again.peer.name, "app-2", "the killed peer keeps its name");
}

/// A session that never registers is given up after --spawn-timeout: a
/// `peer_spawn_failed` event, its pane killed, the peer offline. A window
/// whose command ends at once is given up sooner.
#[tokio::test]
async fn a_session_that_never_registers_is_given_up() {
    let Some(t) = Tmux::new() else { return };
    let d = Daemon::start(&t.flags(&["--spawn-timeout", "3s"]));
    let dir = t.project("quiet");
    let admin = d.admin();
    let s = admin
        .spawn_peer(&spawn_req(&dir, Some("sleep 600")))
        .await
        .unwrap();
    assert!(t.panes().contains(&s.pane));
    let failed = eventually(WAIT, "peer_spawn_failed", || async {
        events_of(&d, "peer_spawn_failed", "quiet").await.pop()
    })
    .await;
    assert_eq!(
        failed["why"],
        "never registered within 3s (--spawn-timeout)"
    );
    // Its pane is closed right after the failure is recorded.
    eventually(WAIT, "its pane killed", || async {
        (!t.panes().contains(&s.pane)).then_some(())
    })
    .await;
    assert_eq!(status_of(&d, "quiet", None).await, Status::Offline);
    // A command that ends at once: its window closes and the spawn fails
    // without waiting for the timeout.
    let fast = admin
        .spawn_peer(&SpawnReq {
            name: Some("fast".into()),
            ..spawn_req(&dir, Some("true"))
        })
        .await
        .unwrap();
    let failed = eventually(Duration::from_millis(2900), "the fast failure", || async {
        events_of(&d, "peer_spawn_failed", "fast").await.pop()
    })
    .await;
    assert!(
        failed["why"].as_str().unwrap().contains("window closed"),
        "{failed}"
    );
    assert!(!t.panes().contains(&fast.pane));
    // tmux that cannot run leaves nothing behind.
    drop(d);
    let d = Daemon::start(&t.flags(&["--tmux-bin", "/nonexistent/tmux"]));
    let e = d
        .admin()
        .spawn_peer(&spawn_req(&dir, Some("true")))
        .await
        .unwrap_err();
    let e = match e {
        repowire::client::ClientError::Api(e) => e,
        other => panic!("{other:?}"),
    };
    assert_eq!(e.code, ErrorCode::TmuxFailed);
    assert!(e.message.contains("/nonexistent/tmux"), "{}", e.message);
    assert!(d.admin().list_peers(None).await.unwrap().is_empty());
    assert_eq!(events_of(&d, "peer_spawn_failed", "quiet").await.len(), 1);
}

/// `peer attach` prints a tmux command that shows the pane (run here
/// against the real server), `switch-client` from inside that server, and
/// a clear refusal for a peer without a pane.
#[tokio::test]
async fn attach_prints_a_command_that_works() {
    let Some(t) = Tmux::new() else { return };
    let d = Daemon::start(&t.flags(&[]));
    let s = d
        .admin()
        .spawn_peer(&spawn_req(&t.project("web"), Some("sleep 600")))
        .await
        .unwrap();
    let out = d
        .cli(&["peer", "attach", "web"])
        .ok()
        .stdout
        .trim()
        .to_string();
    assert_eq!(out, s.attach);
    let words: Vec<&str> = out.split(' ').collect();
    assert_eq!(words[..2], ["tmux", "-S"]);
    assert_eq!(words[3..], ["attach-session", "-t", s.pane.as_str()]);
    let socket = words[2];
    // The target names the pane on that server.
    let shown = Command::new("tmux")
        .args(["-S", socket, "display-message", "-p", "-t", &s.pane])
        .arg("#{pane_id} #{window_name} #{session_name}")
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&shown.stdout).trim(),
        format!("{} web default", s.pane)
    );
    // And the printed command attaches a client to it (in a pseudo-terminal).
    let script = Command::new("script")
        .args(["-qec", &out, "/dev/null"])
        .env("TERM", "xterm")
        .env_remove("TMUX")
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn();
    if let Ok(mut child) = script {
        let on = eventually(WAIT, "a client on the pane", || async {
            let o = t.run(&["list-clients", "-F", "#{pane_id}"]);
            let l = String::from_utf8_lossy(&o.stdout).to_string();
            (!l.trim().is_empty()).then_some(l)
        })
        .await;
        assert_eq!(on.trim(), s.pane);
        let _ = child.kill();
        let _ = child.wait();
    }
    // From inside the same tmux server: switch-client.
    let inside = format!("{socket},1,0");
    let r = d.cli_env(&["peer", "attach", "web", "--json"], &[("TMUX", &inside)]);
    let j = r.ok().json();
    assert_eq!(
        j["command"],
        format!("tmux -S {socket} switch-client -t {}", s.pane)
    );
    assert_eq!(j["pane"], s.pane.as_str());
    // A peer without a pane.
    d.peer("plain", None).await;
    let r = d.cli(&["peer", "attach", "plain"]);
    r.fails(1, "not_found");
    assert!(r.stderr.contains("no tmux pane"), "{}", r.stderr);
}

/// The MCP tools: an orchestrator session spawns with `spawn_peer` and
/// kills with `kill_peer` (0.17's names and parameters); `profile` is
/// refused with a clear error; an agent session may not spawn.
#[tokio::test]
async fn the_mcp_tools_spawn_and_kill() {
    use crate::mcp::{call, session, transport_with};
    use crate::mcp_tools::fails;
    use rmcp::ServiceExt;
    let Some(t) = Tmux::new() else { return };
    let backend = format!("agent={}", t.agent());
    let d = Daemon::start(&t.flags(&["--spawn-command", &backend]));
    let dir = t.project("tool");
    let path = dir.to_str().unwrap();
    let agent = session(&d, "ann").await;
    let olga = ()
        .serve(transport_with(
            &d,
            &[
                "--name",
                "olga",
                "--role",
                "orchestrator",
                "--delivery",
                "pull",
            ],
        ))
        .await
        .unwrap();
    let args = serde_json::json!({"path": path, "backend": "agent"});
    assert_eq!(fails(&agent, "spawn_peer", args.clone()).await, "forbidden");
    let profiled = serde_json::json!({"path": path, "backend": "agent", "profile": "fast"});
    let (err, e) = call(&olga, "spawn_peer", profiled).await;
    assert!(err && e["code"] == "bad_request", "{e}");
    assert!(
        e["message"]
            .as_str()
            .unwrap()
            .contains("profiles are not supported"),
        "{e}"
    );
    let (err, s) = call(&olga, "spawn_peer", args).await;
    assert!(!err, "{s}");
    assert_eq!(s["peer"]["name"], "tool");
    let pane = s["pane"].as_str().unwrap().to_string();
    eventually(WAIT, "it registers", || async {
        (status_of(&d, "tool", None).await == Status::Online).then_some(())
    })
    .await;
    let (err, k) = call(
        &olga,
        "kill_peer",
        serde_json::json!({"peer_identifier": "tool"}),
    )
    .await;
    assert!(!err, "{k}");
    assert_eq!(k["pane_killed"], true);
    assert_eq!(k["peer"]["status"], "offline");
    assert!(!t.panes().contains(&pane));
    agent.cancel().await.unwrap();
    olga.cancel().await.unwrap();
}

/// Issue 13 point 4: a persona's `dispatch` returns `route.spawn{…}` when no
/// peer fits; the daemon starts the worker in tmux (a `peer_spawned` event
/// naming the job), the worker registers, the job is assigned to it, the
/// dispatch ask is typed into its pane, and the worker gets the job done.
/// A spawn the daemon refuses at once (an unknown backend) is recorded on
/// the job and the job stays queued.
#[tokio::test]
async fn a_persona_spawns_a_worker_that_gets_the_job_done() {
    let Some(t) = Tmux::new() else { return };
    let worker = t.worker();
    let cmd = format!("worker=sh {}", worker.display());
    let d = Daemon::start(&t.flags(&[
        "--spawn-command",
        &cmd,
        "--tmux-check-every",
        "300ms",
        "--tmux-quiet",
        "100ms",
    ]));
    let dir = t.project("svc");
    let owner = use_spawner(
        &d,
        r#"-- Assign to an online agent carrying the job's first tag; when none
-- fits, start a worker for it (the job's brief names the directory).
function dispatch(job, mesh)
  local tag = job.tags[1]
  for _, p in ipairs(mesh.peers({ status = "online", role = "agent", tag = tag })) do
    return route.assign(p.name)
  end
  if job.brief == "" then return route.defer("1m", "no directory to spawn in") end
  return route.spawn{ path = job.brief, backend = tag, name = "w-" .. tag }
end
"#,
    )
    .await;
    let job = owner
        .create_job(&job_in("build the service", &dir, "worker"))
        .await
        .unwrap();
    let id = job.job_id.clone();
    let spawned = eventually(WAIT, "the persona's spawn", || async {
        let e = events_of(&d, "peer_spawned", "w-worker").await;
        (!e.is_empty()).then_some(e)
    })
    .await;
    assert_eq!(spawned[0]["job"], id.as_str(), "{spawned:?}");
    assert_eq!(spawned[0]["backend"], "worker");
    assert!(
        spawned[0]["by"].as_str().unwrap().contains("spawner"),
        "{spawned:?}"
    );
    let done = eventually(WAIT, "the job done by the spawned worker", || async {
        let j = owner.job(&id).await.unwrap();
        (j.state == JobState::Succeeded).then_some(j)
    })
    .await;
    assert_eq!(done.assignee.as_deref(), Some("w-worker"));
    assert_eq!(done.result_summary.as_deref(), Some("done by w-worker"));
    // The worker logs it once its `jobs update` returned: after the state.
    eventually(WAIT, "the worker's log of it", || async {
        let log = std::fs::read_to_string(t.dir.path().join("worker.log")).unwrap();
        log.contains(&format!("did {id}")).then_some(())
    })
    .await;
    let w = d.admin().describe("w-worker", None).await.unwrap();
    assert!(w.route.starts_with("tmux:"), "{}", w.route);

    // A backend the operator did not configure: refused at once, recorded
    // on the job, which stays queued (held a minute before the next try).
    let job2 = owner
        .create_job(&job_in("needs a gpu", &dir, "gpu"))
        .await
        .unwrap();
    let failed = eventually(WAIT, "the refused spawn recorded", || async {
        let e = d.admin().events(Some(0), None, None).await.unwrap().events;
        e.into_iter()
            .find(|e| e.kind == "peer_spawn_failed" && e.subject == job2.job_id)
    })
    .await;
    assert!(
        failed.payload["why"].as_str().unwrap().contains("gpu"),
        "{:?}",
        failed.payload
    );
    assert_eq!(
        owner.job(&job2.job_id).await.unwrap().state,
        JobState::Queued
    );
}

/// What a spawn hands its session stays between the daemon and that
/// session: the token is in a file only the user can read, never in a
/// command line (`ps`), in the tmux session's environment (which windows
/// opened there later would inherit) or in the window's own environment;
/// a kill revokes it and removes the file.
#[tokio::test]
async fn a_spawned_sessions_token_stays_out_of_sight_and_dies_with_it() {
    let Some(t) = Tmux::new() else { return };
    let d = Daemon::start(&t.flags(&[]));
    let dir = t.project("quiet");
    let s = d
        .admin()
        .spawn_peer(&spawn_req(&dir, Some("sleep 600")))
        .await
        .unwrap();
    let file = d.home_path().join("spawn").join(&s.peer.peer_id);
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(&file).unwrap().permissions().mode() & 0o777,
        0o600
    );
    let token = std::fs::read_to_string(&file).unwrap();
    assert!(token.starts_with("rw_"), "{token}");
    let me = repowire::client::Client::new(&d.url, Some(token.clone()), None);
    assert_eq!(
        me.whoami().await.unwrap().name,
        "quiet",
        "the file's token works"
    );
    for p in std::fs::read_dir("/proc").unwrap().flatten() {
        let cmdline = std::fs::read(p.path().join("cmdline")).unwrap_or_default();
        assert!(
            !String::from_utf8_lossy(&cmdline).contains(&token),
            "the token is in the command line of {}",
            p.path().display()
        );
    }
    let session_env = t.run(&["show-environment", "-t", "=default"]);
    let session_env = String::from_utf8_lossy(&session_env.stdout);
    assert!(!session_env.contains("REPOWIRE"), "{session_env}");
    let pid = t.run(&["display-message", "-p", "-t", &s.pane, "#{pane_pid}"]);
    let pid = String::from_utf8_lossy(&pid.stdout).trim().to_string();
    let environ = std::fs::read(format!("/proc/{pid}/environ")).unwrap();
    let environ = String::from_utf8_lossy(&environ);
    assert!(
        environ.contains(&format!("REPOWIRE_PEER_TOKEN_FILE={}", file.display())),
        "{environ}"
    );
    assert!(
        !environ.contains(&token),
        "the token is in the window's environment"
    );

    d.cli(&["peer", "kill", "quiet"]).ok();
    assert!(!file.exists(), "the token file outlived the kill");
    let e = me.whoami().await.unwrap_err();
    assert_eq!(e.code(), Some(ErrorCode::Unauthorized), "{e}");
}

/// A project path is handed to tmux as itself: `#(…)` and `#{…}` in it are
/// neither run nor expanded (tmux expands formats in a start directory), and
/// a server given by path must be a tmux socket that exists: any other
/// file is refused and left as it was.
#[tokio::test]
async fn a_spawns_path_and_server_reach_tmux_as_given() {
    let Some(t) = Tmux::new() else { return };
    let d = Daemon::start(&t.flags(&[]));
    let dir = t.project("p#(touch ran)#{pane_id}##");
    let s = d
        .admin()
        .spawn_peer(&spawn_req(&dir, Some("sleep 600")))
        .await
        .unwrap();
    let cwd = t.run(&[
        "display-message",
        "-p",
        "-t",
        &s.pane,
        "#{pane_current_path}",
    ]);
    assert_eq!(
        String::from_utf8_lossy(&cwd.stdout).trim(),
        dir.to_str().unwrap()
    );
    assert_eq!(
        d.admin()
            .describe(&s.peer.name, None)
            .await
            .unwrap()
            .project_path,
        dir.to_str().unwrap()
    );

    let keep = t.dir.path().join("state.db");
    std::fs::write(&keep, "precious").unwrap();
    for server in [keep.clone(), t.dir.path().join("no-socket")] {
        let e = d
            .admin()
            .spawn_peer(&SpawnReq {
                server: Some(server.to_str().unwrap().into()),
                ..spawn_req(&dir, Some("sleep 600"))
            })
            .await
            .unwrap_err();
        assert_eq!(e.code(), Some(ErrorCode::BadRequest), "{e}");
    }
    assert_eq!(std::fs::read_to_string(&keep).unwrap(), "precious");
    assert!(!t.dir.path().join("no-socket").exists());
}

/// A worker a persona spawned that never registers is reported
/// (`peer_spawn_failed` naming the job), its window closed, and the job is
/// routed again: meanwhile a peer that fits came online, and gets it.
#[tokio::test]
async fn a_spawned_worker_that_never_registers_hands_its_job_back() {
    let Some(t) = Tmux::new() else { return };
    let d = Daemon::start(&t.flags(&[
        "--spawn-command",
        "sleeper=sleep 600",
        "--spawn-timeout",
        "3s",
    ]));
    let dir = t.project("svc");
    let owner = use_spawner(
        &d,
        r#"function dispatch(job, mesh)
  for _, p in ipairs(mesh.peers({ status = "online", role = "agent", tag = "x" })) do
    return route.assign(p.name)
  end
  return route.spawn{ path = job.brief, backend = "sleeper", name = "w" }
end
"#,
    )
    .await;
    let job = owner
        .create_job(&job_in("needs x", &dir, "x"))
        .await
        .unwrap();
    let spawned = eventually(WAIT, "the persona's spawn", || async {
        events_of(&d, "peer_spawned", "w").await.pop()
    })
    .await;
    assert_eq!(spawned["job"], job.job_id.as_str());
    let route = d.admin().describe("w", None).await.unwrap().route;
    let pane = route.rsplit(':').next().unwrap().to_string();
    assert!(t.panes().contains(&pane), "{route}: {:?}", t.panes());
    // A peer that fits comes online while the job waits for its worker.
    d.admin()
        .register(&repowire::api::RegisterReq {
            name: "helper".into(),
            tags: Some(vec!["x".into()]),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(owner.job(&job.job_id).await.unwrap().assignee, None);
    let failed = eventually(WAIT, "the spawn given up", || async {
        events_of(&d, "peer_spawn_failed", "w").await.pop()
    })
    .await;
    assert_eq!(failed["job"], job.job_id.as_str(), "{failed}");
    assert_eq!(
        failed["why"],
        "never registered within 3s (--spawn-timeout)"
    );
    let j = eventually(WAIT, "the job routed again", || async {
        let j = owner.job(&job.job_id).await.unwrap();
        (j.assignee.as_deref() == Some("helper")).then_some(j)
    })
    .await;
    assert_eq!(j.state, JobState::Dispatched);
    eventually(WAIT, "the worker's window closed", || async {
        (!t.panes().contains(&pane)).then_some(())
    })
    .await;
}
