//! A real Codex CLI session runs the hooks `repowire setup` wrote, end to
//! end: Codex 0.171.0 (`codex exec`) talks to a stand-in Responses API on
//! loopback (tests/it/fixtures/hooks/mock_responses.py, which logs every
//! request the model would get), inside a private network namespace as in
//! `mcp_real_clients`. The test reads what reached "the model":
//! SessionStart's identity context, and a note sent mid-turn that the Stop
//! hook put in front of the agent by blocking the stop. The delivery is
//! confirmed by the hook route, the session's MCP server and its hooks were
//! one peer, and the peer is offline once the session ends.

use crate::mcp_real_clients::{World, client};
use crate::support::*;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

/// `repowire --home HOME --json ARGS` inside the world's namespace.
fn rw_json(w: &World, home: &Path, args: &[&str]) -> Value {
    let mut all = vec!["--home", home.to_str().unwrap(), "--json"];
    all.extend_from_slice(args);
    let (ok, out) = w.run(Path::new(BIN), &all);
    assert!(ok, "repowire {args:?}: {out}");
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("{args:?} ({e}): {out}"))
}

/// A daemon in the world's namespace with `bob` registered, and the
/// stand-in model API `script` (tests/it/fixtures/hooks/) running there:
/// (daemon, its home, the request log, the API process, its port).
fn stage(w: &World, script: &str, extra: &[&str]) -> (Daemon, PathBuf, PathBuf, Child, String) {
    let d = w.net.daemon(tempfile::tempdir().unwrap());
    let dh = d.home_path().to_path_buf();
    rw_json(w, &dh, &["peer", "register", "bob"]);
    let log = w.home.path().join("requests.log");
    let portfile = w.home.path().join("port");
    let on_first = format!(
        "{BIN} --home '{}' --as bob --json peer notify project 'NOTE-e2e-7 please rebase'",
        dh.display()
    );
    let api = w
        .net
        .command(Path::new("python3"))
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .arg(
            Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("tests/it/fixtures/hooks")
                .join(script),
        )
        .arg(&portfile)
        .arg(&log)
        .arg(&on_first)
        .args(extra)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("python3 runs the stand-in model API");
    let deadline = Instant::now() + Duration::from_secs(20);
    let port = loop {
        if let Ok(p) = std::fs::read_to_string(&portfile) {
            break p;
        }
        assert!(Instant::now() < deadline, "the stand-in API did not start");
        std::thread::sleep(Duration::from_millis(20));
    };
    (d, dh, log, api, port)
}

#[test]
fn codex_exec_runs_the_hooks_setup_wrote_and_a_stop_shows_a_pending_note() {
    let Some(codex) = client("codex") else {
        return;
    };
    let Some(w) = World::new() else {
        return;
    };
    // The daemon, bob, and the stand-in model API, which has bob send the
    // session's peer (named after the project directory) a note on the
    // first request of the conversation.
    let (d, dh, log, mut api, port) = stage(&w, "mock_responses.py", &[]);
    // The user's Codex config names that provider; setup merges into it.
    let codex_home = w.home.path().join(".codex");
    std::fs::create_dir_all(&codex_home).unwrap();
    std::fs::write(
        codex_home.join("config.toml"),
        format!(
            "# a model on loopback\nmodel = \"mock-model\"\nmodel_provider = \"mock\"\n\n\
[model_providers.mock]\nname = \"mock\"\nbase_url = \"http://127.0.0.1:{port}/v1\"\n\
wire_api = \"responses\"\nrequires_openai_auth = false\n"
        ),
    )
    .unwrap();
    let out = w
        .command(Path::new(BIN), &["setup", "--codex"])
        .env("REPOWIRE_HOME", &dh)
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");

    let (ok, out) = w.run(&codex, &["exec", "--skip-git-repo-check", "say hi"]);
    let _ = api.kill();
    let _ = api.wait();
    assert!(ok, "codex exec: {out}");
    assert!(out.contains("done-reply"), "{out}");

    check_the_session(&w, &d, &dh, &log, "codex");
}

/// The same session under Claude Code 2.1.197 in print mode, against a
/// stand-in Messages API on loopback
/// (tests/it/fixtures/hooks/mock_messages.py, which logs the requests of
/// the main conversation apart from side requests). `repowire setup
/// --claude` writes `~/.claude.json` (the MCP server) and
/// `~/.claude/settings.json` (the hooks); Claude Code runs hooks in print
/// mode, starts the MCP server with CLAUDE_CODE_SESSION_ID, and a Stop
/// hook's `{"decision":"block","reason":…}` comes back to the model as a
/// user message "Stop hook feedback: <reason>" that stays in the
/// conversation (Claude Code also flags every blocked stop with a "Stop
/// hook error occurred" notification; that is its UI, not a failure).
///
/// The prompt goes in as `--input-format stream-json` (then a plain
/// `claude -p "say hi"` runs too): with a prompt argument Claude Code runs
/// `asyncRewake` hooks in the foreground. Its hook runner backgrounds one only when
/// `e.async || e.asyncRewake && (!Cr() || wIt())`, where `Cr()` is "not
/// interactive" (`-p`/`--print`, or stdout not a TTY) and `wIt()` is
/// `hasStreamingInput`, set from `typeof prompt !== "string"` — true only
/// for stream-json input. So under `claude -p "…"` the Stop event waits
/// for `repowire hook wait` (timeout 3600 s), which, once the final stop
/// leaves the peer idle with nothing pending, long-polls for up to 50
/// minutes — the run would not end, so `hook wait` reads Claude Code's
/// command line and ends at once there. With stream-json input the waiter
/// runs in the background and the run ends as soon as the turn does.
#[test]
fn claude_print_mode_runs_the_hooks_setup_wrote_and_a_stop_shows_a_pending_note() {
    let Some(claude) = client("claude") else {
        return;
    };
    let Some(w) = World::new() else {
        return;
    };
    let (d, dh, _log, mut api, port) = stage(&w, "mock_messages.py", &["say hi"]);
    let out = w
        .command(Path::new(BIN), &["setup", "--claude"])
        .env("REPOWIRE_HOME", &dh)
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let settings = std::fs::read_to_string(w.home.path().join(".claude/settings.json")).unwrap();
    assert!(settings.contains("asyncRewake"), "{settings}");

    let base = format!("http://127.0.0.1:{port}");
    let (ok, out) = w.run_env(
        &claude,
        &[
            "-p",
            "--input-format",
            "stream-json",
            "--output-format",
            "stream-json",
            "--verbose",
        ],
        &[
            ("ANTHROPIC_BASE_URL", &base),
            ("ANTHROPIC_API_KEY", "sk-test"),
        ],
        Some("{\"type\":\"user\",\"message\":{\"role\":\"user\",\"content\":\"say hi\"}}\n"),
    );
    assert!(ok, "claude -p: {out}");
    let result = out
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .find(|v| v["type"] == "result")
        .unwrap_or_else(|| panic!("no result: {out}"));
    assert_eq!(result["subtype"], "success", "{result}");
    assert_eq!(result["result"], "done-reply", "{result}");

    check_the_session(
        &w,
        &d,
        &dh,
        &w.home.path().join("requests.log.main"),
        "claude-code",
    );
    // Plain `claude -p "…"` runs the waiter in the foreground: it must end
    // at once there (else the run would wait for it, up to its timeout).
    let (plain_ok, plain) = w.run_env(
        &claude,
        &["-p", "say hi"],
        &[
            ("ANTHROPIC_BASE_URL", &base),
            ("ANTHROPIC_API_KEY", "sk-test"),
        ],
        None,
    );
    let _ = api.kill();
    let _ = api.wait();
    assert!(
        plain_ok && plain.contains("done-reply"),
        "claude -p \"say hi\": {plain}"
    );
}

/// What a session run under a real client must show: the model got the
/// SessionStart identity first and the note (sent on the first request)
/// after a blocked stop, once; the note was confirmed through the hook
/// route; the session's MCP server and hooks were one peer, with this
/// backend, offline now.
fn check_the_session(w: &World, d: &Daemon, dh: &Path, requests_log: &Path, backend: &str) {
    // What the model was sent: the identity first, the note after a stop.
    let requests: Vec<String> = std::fs::read_to_string(requests_log)
        .unwrap()
        .lines()
        .map(str::to_string)
        .collect();
    assert!(
        requests.len() >= 2,
        "one turn, then one more for the note: {requests:?}"
    );
    assert!(
        requests[0].contains("this session is peer") && requests[0].contains("project"),
        "SessionStart context missing from the first request: {}",
        requests[0]
    );
    assert!(
        !requests[0].contains("NOTE-e2e-7"),
        "the note was sent after it"
    );
    let with_note = requests
        .iter()
        .position(|r| r.contains("NOTE-e2e-7 please rebase"))
        .unwrap_or_else(|| panic!("the note never reached the model: {requests:?}"));
    assert!(with_note >= 1);
    assert_eq!(
        requests.iter().filter(|r| r.contains("NOTE-e2e-7")).count(),
        requests.len() - with_note,
        "shown once, then kept in the conversation"
    );

    // Confirmed through the hook route.
    let sent: Value = serde_json::from_str(
        &std::fs::read_to_string(w.home.path().join("requests.log.first")).unwrap(),
    )
    .unwrap();
    let id = sent["delivery_id"].as_str().unwrap();
    let trace = rw_json(w, dh, &["trace", id]);
    let kinds: Vec<(String, Value)> = trace["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["kind"].as_str().unwrap().to_string(),
                e["payload"].clone(),
            )
        })
        .collect();
    assert!(
        kinds
            .iter()
            .any(|(k, p)| k == "delivery_leased" && p["route"] == "hook"),
        "{kinds:?}"
    );
    assert!(
        kinds.iter().any(|(k, _)| k == "delivery_confirmed"),
        "{kinds:?}"
    );

    // One peer for the session (its MCP server and its hooks), offline now.
    let peers = rw_json(w, dh, &["peer", "list"]);
    let names: Vec<&str> = peers
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names.iter().filter(|n| n.starts_with("project")).count(),
        1,
        "{peers:#}"
    );
    let me = peers
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == "project")
        .unwrap();
    assert_eq!(me["backend"], backend, "{me}");
    let deadline = Instant::now() + Duration::from_secs(15);
    while w.net.status_of(d, "project").0 != repowire::core::peer::Status::Offline {
        assert!(
            Instant::now() < deadline,
            "the ended session's peer is not offline"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}
