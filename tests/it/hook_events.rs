//! `repowire hook <event> --client claude|codex` as the real binary, fed
//! the inputs each client sends (tests/it/fixtures/hooks/, named by client
//! and version), against a real daemon: every Codex output validated
//! against the output schema shipped in Codex 0.171.0, every Claude Code
//! output of the shape it reads; a stop with pending deliveries blocks
//! once and confirms (and is bounded); a channel push alone leaves the
//! delivery unconfirmed and the next hook shows it marked; two sessions in
//! one repository get two inboxes; the MCP server and the hooks of one
//! session are one peer; no daemon, bad input: exit 0 and one line.

use crate::mcp::Catcher;
use crate::support::*;
use repowire::api::NotifyReq;
use repowire::core::peer::Status;
use rmcp::ServiceExt;
use rmcp::transport::ConfigureCommandExt;
use serde_json::Value;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

const CODEX: &str = "codex-0.171.0";
const CLAUDE: &str = "claude-2.1.197";

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/it/fixtures/hooks")
}

/// A client's input for `event`, with this session id and directory.
fn input(client: &str, event: &str, sid: &str, cwd: &Path) -> Value {
    let path = fixtures().join(client).join(format!("{event}.json"));
    let mut v: Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    v["session_id"] = sid.into();
    v["cwd"] = cwd.display().to_string().into();
    v
}

/// A finished hook: exit code, stdout, stderr.
struct Hooked {
    code: i32,
    stdout: String,
    stderr: String,
}

impl Hooked {
    fn json(&self) -> Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("hook stdout is not JSON ({e}): {}", self.stdout))
    }
    /// Exit 0, nothing on stdout.
    fn quiet(&self) -> &Self {
        assert_eq!(self.code, 0, "{}", self.stderr);
        assert_eq!(self.stdout, "", "stderr: {}", self.stderr);
        self
    }
}

/// Run `repowire hook EVENT --client CLIENT` with `stdin` as the client
/// would (extra env: `env`).
fn hook_env(home: &Path, event: &str, client: &str, stdin: &[u8], env: &[(&str, &str)]) -> Hooked {
    let mut c = Command::new(BIN);
    c.env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("REPOWIRE_HOME", home)
        .args(["hook", event, "--client", client])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (k, v) in env {
        c.env(k, v);
    }
    let mut child = c.spawn().unwrap();
    child.stdin.take().unwrap().write_all(stdin).unwrap();
    let out = child.wait_with_output().unwrap();
    Hooked {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).trim_end().to_string(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// Claude Code's event names → the fixture client dir.
fn client_dir(client: &str) -> &'static str {
    if client == "codex" { CODEX } else { CLAUDE }
}

/// Run a hook with the fixture input of `client` for `event`.
fn hook(home: &Path, client: &str, event: &str, sid: &str, cwd: &Path) -> Hooked {
    let fixture = if event == "wait" && client == "codex" {
        "stop"
    } else {
        event
    };
    let v = input(client_dir(client), fixture, sid, cwd);
    let h = hook_env(home, event, client, v.to_string().as_bytes(), &[]);
    if client == "codex" && !h.stdout.is_empty() {
        let schema = load_schema(&format!("{event}.command.output.json"));
        let out = h.json();
        if let Err(e) = validate(&schema, &schema, &out, "$") {
            panic!("codex {event} output breaks its schema: {e}\n{out:#}");
        }
    }
    h
}

fn load_schema(name: &str) -> Value {
    let p = fixtures().join(CODEX).join("schemas").join(name);
    serde_json::from_slice(&std::fs::read(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display())))
        .unwrap()
}

/// Check `v` against the JSON-schema subset Codex's hook schemas use:
/// type (one or a list), const, enum, properties, required,
/// additionalProperties false, $ref to #/definitions, allOf, `true`.
fn validate(root: &Value, s: &Value, v: &Value, at: &str) -> Result<(), String> {
    if s == &Value::Bool(true) {
        return Ok(());
    }
    if let Some(r) = s["$ref"].as_str() {
        let name = r
            .strip_prefix("#/definitions/")
            .ok_or(format!("{at}: ref {r}"))?;
        return validate(root, &root["definitions"][name], v, at);
    }
    for sub in s["allOf"].as_array().into_iter().flatten() {
        // A `default: null` beside allOf lets the field be null.
        if v.is_null() && s.get("default") == Some(&Value::Null) {
            return Ok(());
        }
        validate(root, sub, v, at)?;
    }
    if let Some(t) = s.get("type") {
        let types: Vec<&str> = match t {
            Value::String(t) => vec![t.as_str()],
            Value::Array(a) => a.iter().filter_map(Value::as_str).collect(),
            _ => vec![],
        };
        let is = |t: &str| match t {
            "string" => v.is_string(),
            "boolean" => v.is_boolean(),
            "object" => v.is_object(),
            "array" => v.is_array(),
            "null" => v.is_null(),
            "integer" => v.is_i64() || v.is_u64(),
            "number" => v.is_number(),
            _ => false,
        };
        let nullable_default = v.is_null() && s.get("default") == Some(&Value::Null);
        if !types.iter().any(|t| is(t)) && !nullable_default {
            return Err(format!("{at}: {v} is not {types:?}"));
        }
    }
    if let Some(c) = s.get("const")
        && c != v
    {
        return Err(format!("{at}: {v} is not the const {c}"));
    }
    if let Some(e) = s["enum"].as_array()
        && !e.contains(v)
    {
        return Err(format!("{at}: {v} is not one of {e:?}"));
    }
    if let Some(o) = v.as_object() {
        let props = s["properties"].as_object();
        for req in s["required"].as_array().into_iter().flatten() {
            let k = req.as_str().unwrap();
            if !o.contains_key(k) {
                return Err(format!("{at}: missing required {k}"));
            }
        }
        for (k, x) in o {
            match props.and_then(|p| p.get(k)) {
                Some(ps) => validate(root, ps, x, &format!("{at}.{k}"))?,
                None if s["additionalProperties"] == Value::Bool(false) => {
                    return Err(format!("{at}: property {k} is not allowed"));
                }
                None => {}
            }
        }
    }
    Ok(())
}

fn project(root: &Path, name: &str) -> PathBuf {
    let p = root.join(name);
    std::fs::create_dir_all(&p).unwrap();
    p
}

fn note(to: &str, text: &str) -> NotifyReq {
    NotifyReq {
        to: to.into(),
        text: text.into(),
        ..Default::default()
    }
}

/// The kinds (and routes) of a delivery's trace.
async fn trace(d: &Daemon, id: &str) -> Vec<(String, Option<String>)> {
    d.admin()
        .trace(id)
        .await
        .unwrap()
        .events
        .into_iter()
        .map(|e| (e.kind, e.payload["route"].as_str().map(str::to_string)))
        .collect()
}

async fn confirmed_by_hook(d: &Daemon, id: &str) -> bool {
    let t = trace(d, id).await;
    t.iter()
        .any(|(k, r)| k == "delivery_leased" && r.as_deref() == Some("hook"))
        && t.iter().any(|(k, _)| k == "delivery_confirmed")
}

#[test]
fn codex_fixtures_are_what_codex_0_171_0_accepts() {
    for event in [
        "session-start",
        "user-prompt-submit",
        "pre-tool-use",
        "stop",
        "session-end",
    ] {
        let schema = load_schema(&format!("{event}.command.input.json"));
        let v = input(CODEX, event, "s", Path::new("/x"));
        validate(&schema, &schema, &v, "$").unwrap_or_else(|e| panic!("{event}: {e}"));
        // The checker can fail: a stray field is refused.
        let mut bad = v.clone();
        bad["not_a_field"] = 1.into();
        assert!(validate(&schema, &schema, &bad, "$").is_err(), "{event}");
    }
}

/// Every event of both clients, start to end, on the fixtures: outputs of
/// the accepted shapes, the peer's status following the session.
#[tokio::test]
async fn every_hook_of_both_clients_answers_in_the_shape_the_client_reads() {
    let d = Daemon::start(&[]);
    let h = d.home_path();
    let root = tempfile::tempdir().unwrap();
    let admin = d.admin();
    let bob = d.peer("bob", None).await;
    for (client, backend) in [("claude", "claude-code"), ("codex", "codex")] {
        let dir = project(root.path(), &format!("app-{client}"));
        let name = format!("app-{client}");
        let sid = format!("sid-{client}-1");
        // session-start: joins; who it is, as context.
        let r = hook(h, client, "session-start", &sid, &dir);
        assert_eq!(r.code, 0, "{}", r.stderr);
        let out = r.json();
        let ctx = out["hookSpecificOutput"]["additionalContext"]
            .as_str()
            .unwrap();
        assert_eq!(out["hookSpecificOutput"]["hookEventName"], "SessionStart");
        assert!(
            ctx.contains(&format!(
                "peer \"{name}\" in circle \"default\" (role agent)"
            )),
            "{ctx}"
        );
        assert_eq!(out.as_object().unwrap().len(), 1, "{out}");
        let me = admin.describe(&name, None).await.unwrap();
        assert_eq!(me.backend, backend);
        assert_eq!(me.status, Status::Online);
        // user-prompt-submit: busy; nothing pending, nothing printed.
        hook(h, client, "user-prompt-submit", &sid, &dir).quiet();
        assert_eq!(
            admin.describe(&name, None).await.unwrap().status,
            Status::Busy
        );
        // … and with a note pending, it is the context.
        let id = bob
            .notify(&note(&name, "rebase on main"))
            .await
            .unwrap()
            .delivery_id;
        let r = hook(h, client, "user-prompt-submit", &sid, &dir);
        let out = r.json();
        assert_eq!(
            out["hookSpecificOutput"]["hookEventName"],
            "UserPromptSubmit"
        );
        let ctx = out["hookSpecificOutput"]["additionalContext"]
            .as_str()
            .unwrap();
        assert!(
            ctx.contains("[note ") && ctx.contains("from bob]\nrebase on main"),
            "{ctx}"
        );
        assert!(
            confirmed_by_hook(&d, &id).await,
            "{:?}",
            trace(&d, &id).await
        );
        // pre-tool-use: busy, silent.
        hook(h, client, "pre-tool-use", &sid, &dir).quiet();
        // stop with nothing pending: idle, silent.
        hook(h, client, "stop", &sid, &dir).quiet();
        assert_eq!(
            admin.describe(&name, None).await.unwrap().status,
            Status::Idle
        );
        if client == "claude" {
            hook(h, client, "user-prompt-submit", &sid, &dir).quiet();
            // An idle-prompt notification: idle.
            hook(h, client, "notification", &sid, &dir).quiet();
            assert_eq!(
                admin.describe(&name, None).await.unwrap().status,
                Status::Idle
            );
        }
        // session-end: offline.
        hook(h, client, "session-end", &sid, &dir).quiet();
        assert_eq!(
            admin.describe(&name, None).await.unwrap().status,
            Status::Offline
        );
    }
}

#[tokio::test]
async fn a_stop_with_pending_deliveries_blocks_once_confirms_and_is_bounded() {
    let d = Daemon::start(&[]);
    let h = d.home_path();
    let root = tempfile::tempdir().unwrap();
    let dir = project(root.path(), "svc");
    let bob = d.peer("bob", None).await;
    for client in ["claude", "codex"] {
        let sid = format!("stop-{client}");
        let r = hook(h, client, "session-start", &sid, &dir);
        let ctx = r.json()["hookSpecificOutput"]["additionalContext"]
            .as_str()
            .unwrap()
            .to_string();
        let name = if client == "claude" { "svc" } else { "svc-2" };
        assert!(ctx.contains(&format!("peer \"{name}\"")), "{ctx}");
        let ask = bob
            .ask(&repowire::api::AskReq {
                to: name.into(),
                text: "is the migration safe?".into(),
                ..Default::default()
            })
            .await
            .unwrap();
        let r = hook(h, client, "stop", &sid, &dir);
        assert_eq!(r.code, 0);
        let out = r.json();
        assert_eq!(out["decision"], "block", "{out}");
        let reason = out["reason"].as_str().unwrap();
        assert!(reason.contains("is the migration safe?"), "{reason}");
        assert!(
            reason.contains("answer"),
            "an ask says how to close it: {reason}"
        );
        // Confirmed: the next stop has nothing to show and lets it stop.
        let delivery = ask.delivery_id;
        assert!(
            confirmed_by_hook(&d, &delivery).await,
            "{:?}",
            trace(&d, &delivery).await
        );
        hook(h, client, "stop", &sid, &dir).quiet();

        // Bounded: a new note before every stop blocks 3 stops in a row,
        // then one goes through (saying so); a prompt starts the count again.
        for i in 0..3 {
            bob.notify(&note(name, &format!("n{i}"))).await.unwrap();
            let r = hook(h, client, "stop", &sid, &dir);
            assert_eq!(r.json()["decision"], "block", "stop {i}");
        }
        bob.notify(&note(name, "n3")).await.unwrap();
        let r = hook(h, client, "stop", &sid, &dir);
        r.quiet();
        assert!(r.stderr.contains("3 stops in a row"), "{}", r.stderr);
        // The note that was let wait is shown by the next prompt.
        let r = hook(h, client, "user-prompt-submit", &sid, &dir);
        let ctx = r.json()["hookSpecificOutput"]["additionalContext"]
            .as_str()
            .unwrap()
            .to_string();
        assert!(ctx.contains("n3"), "{ctx}");
        bob.notify(&note(name, "n4")).await.unwrap();
        assert_eq!(
            hook(h, client, "stop", &sid, &dir).json()["decision"],
            "block"
        );
    }
}

/// Two sessions in one repository: two peers, two inboxes.
#[tokio::test]
async fn two_sessions_in_one_repository_get_separate_inboxes() {
    let d = Daemon::start(&[]);
    let h = d.home_path();
    let root = tempfile::tempdir().unwrap();
    let dir = project(root.path(), "repo");
    let bob = d.peer("bob", None).await;
    let one = hook(h, "claude", "session-start", "first", &dir);
    let two = hook(h, "claude", "session-start", "second", &dir);
    let ctx = |r: &Hooked| {
        r.json()["hookSpecificOutput"]["additionalContext"]
            .as_str()
            .unwrap()
            .to_string()
    };
    assert!(ctx(&one).contains("peer \"repo\""), "{}", ctx(&one));
    assert!(ctx(&two).contains("peer \"repo-2\""), "{}", ctx(&two));
    bob.notify(&note("repo-2", "for the second only"))
        .await
        .unwrap();
    hook(h, "claude", "user-prompt-submit", "first", &dir).quiet();
    let r = hook(h, "claude", "user-prompt-submit", "second", &dir);
    assert!(ctx(&r).contains("for the second only"));
    // A restarted first session (its id again) is still "repo".
    let again = hook(h, "claude", "session-start", "first", &dir);
    assert!(ctx(&again).contains("peer \"repo\""), "{}", ctx(&again));
    // The first one ends; a new session in the repo takes over its name
    // and inbox, not the second one's.
    hook(h, "claude", "session-end", "first", &dir).quiet();
    bob.notify(&note("repo", "left for whoever works here next"))
        .await
        .unwrap();
    let third = hook(h, "claude", "session-start", "third", &dir);
    assert!(ctx(&third).contains("peer \"repo\""), "{}", ctx(&third));
    assert!(
        ctx(&third).contains("left for whoever works here next"),
        "{}",
        ctx(&third)
    );
}

/// Claude Code's `/clear` ends a session id, not the session: the peer
/// stays, and the new id continues it.
#[tokio::test]
async fn clear_keeps_the_peer_and_the_new_session_id_continues_it() {
    let d = Daemon::start(&[]);
    let h = d.home_path();
    let root = tempfile::tempdir().unwrap();
    let dir = project(root.path(), "web");
    hook(h, "claude", "session-start", "before-clear", &dir);
    let mut end = input(CLAUDE, "session-end", "before-clear", &dir);
    end["reason"] = "clear".into();
    hook_env(h, "session-end", "claude", end.to_string().as_bytes(), &[]).quiet();
    assert_ne!(
        d.admin().describe("web", None).await.unwrap().status,
        Status::Offline
    );
    let mut start = input(CLAUDE, "session-start", "after-clear", &dir);
    start["source"] = "clear".into();
    let r = hook_env(
        h,
        "session-start",
        "claude",
        start.to_string().as_bytes(),
        &[],
    );
    let ctx = r.json()["hookSpecificOutput"]["additionalContext"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(ctx.contains("peer \"web\""), "{ctx}");
    let peers = d.admin().list_peers(None).await.unwrap();
    assert_eq!(
        peers.iter().filter(|p| p.name.starts_with("web")).count(),
        1
    );
}

/// The MCP server of a Claude Code session (`--client claude`, the session
/// id in CLAUDE_CODE_SESSION_ID as Claude Code sets it) and its hooks are
/// one peer; a channel push to it is a hint: unconfirmed until the next
/// hook shows it, marked as pushed.
#[tokio::test]
async fn a_channel_push_alone_leaves_it_unconfirmed_and_the_next_hook_shows_it() {
    let d = Daemon::start(&[]);
    let h = d.home_path();
    let root = tempfile::tempdir().unwrap();
    let dir = project(root.path(), "api");
    let sid = "5b1f0d2e-push";
    let r = hook(h, "claude", "session-start", sid, &dir);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let transport = {
        let home = h.to_path_buf();
        let dir = dir.clone();
        rmcp::transport::TokioChildProcess::new(tokio::process::Command::new(BIN).configure(|c| {
            c.env_clear()
                .env("PATH", std::env::var("PATH").unwrap_or_default())
                .env("REPOWIRE_HOME", &home)
                .env("CLAUDE_CODE_SESSION_ID", sid)
                .current_dir(&dir)
                .args(["mcp", "--client", "claude", "--delivery", "push"]);
        }))
        .unwrap()
    };
    let session = Catcher::claude(tx).serve(transport).await.unwrap();
    // The server joined as the hooks' peer (a second one would be api-2).
    eventually(Duration::from_secs(10), "the server joined", || async {
        let p = d.admin().describe("api", None).await.ok()?;
        (p.route == "channel").then_some(())
    })
    .await;
    let peers = d.admin().list_peers(None).await.unwrap();
    assert_eq!(
        peers.iter().filter(|p| p.name.starts_with("api")).count(),
        1,
        "{peers:?}"
    );

    let bob = d.peer("bob", None).await;
    let id = bob
        .notify(&note("api", "pushed live"))
        .await
        .unwrap()
        .delivery_id;
    let ev = tokio::time::timeout(Duration::from_secs(15), rx.recv())
        .await
        .expect("a channel event")
        .unwrap();
    assert_eq!(ev["meta"]["delivery_id"], id.as_str(), "{ev}");
    let me = d
        .admin()
        .with_identity(Some(d.admin_token()), Some("api".into()));
    eventually(Duration::from_secs(10), "recorded as pushed", || async {
        let held = me.peek(10).await.unwrap().deliveries;
        held.iter()
            .any(|x| x.delivery_id == id && x.pushed)
            .then_some(())
    })
    .await;
    assert!(
        !trace(&d, &id)
            .await
            .iter()
            .any(|(k, _)| k == "delivery_confirmed")
    );
    // The next hook shows it, marked, and confirms it.
    let r = hook(h, "claude", "user-prompt-submit", sid, &dir);
    let ctx = r.json()["hookSpecificOutput"]["additionalContext"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        ctx.contains("pushed live") && ctx.contains("already pushed live as a channel event"),
        "{ctx}"
    );
    assert!(
        confirmed_by_hook(&d, &id).await,
        "{:?}",
        trace(&d, &id).await
    );
    // Shown at most once by hooks.
    hook(h, "claude", "user-prompt-submit", sid, &dir).quiet();
    session.cancel().await.unwrap();
}

/// The background waiter wakes an idle session: exit 2 with the delivery
/// on stderr, confirmed; one waiter per session.
#[tokio::test]
async fn the_waiter_wakes_an_idle_session_with_a_delivery() {
    let d = Daemon::start(&[]);
    let h = d.home_path().to_path_buf();
    let root = tempfile::tempdir().unwrap();
    let dir = project(root.path(), "cli");
    hook(&h, "claude", "session-start", "w1", &dir);
    hook(&h, "claude", "stop", "w1", &dir).quiet();
    let start = |h: PathBuf, dir: PathBuf| {
        std::thread::spawn(move || hook(&h, "claude", "wait", "w1", &dir))
    };
    let waiter = start(h.clone(), dir.clone());
    // The second waiter for the session leaves it to the first.
    std::thread::sleep(Duration::from_millis(300));
    let second = start(h.clone(), dir.clone()).join().unwrap();
    second.quiet();
    assert_eq!(second.stderr, "");
    assert!(!waiter.is_finished(), "the first waiter waits");
    let bob = d.peer("bob", None).await;
    let id = bob
        .notify(&note("cli", "wake up: CI is red"))
        .await
        .unwrap()
        .delivery_id;
    let woke = tokio::task::spawn_blocking(move || waiter.join().unwrap())
        .await
        .unwrap();
    assert_eq!(woke.code, 2, "{}", woke.stderr);
    assert_eq!(woke.stdout, "");
    assert!(
        woke.stderr.contains("wake up: CI is red"),
        "{}",
        woke.stderr
    );
    assert!(confirmed_by_hook(&d, &id).await);
    // Busy (the user typed): a waiter ends at once without taking anything.
    hook(&h, "claude", "user-prompt-submit", "w1", &dir).quiet();
    let r = hook(&h, "claude", "wait", "w1", &dir);
    r.quiet();
}

/// No daemon (none ever started, or stopped): every hook exits 0, prints
/// nothing, and says so in one line. Bad input likewise.
#[tokio::test]
async fn without_a_daemon_or_with_bad_input_a_hook_exits_0_with_one_line() {
    let never = tempfile::tempdir().unwrap();
    let mut stopped = Daemon::start(&[]);
    let root = tempfile::tempdir().unwrap();
    let dir = project(root.path(), "x");
    hook(stopped.home_path(), "claude", "session-start", "s", &dir);
    stopped.signal_and_wait("-TERM");
    for home in [never.path(), stopped.home_path()] {
        for client in ["claude", "codex"] {
            for event in [
                "session-start",
                "user-prompt-submit",
                "pre-tool-use",
                "stop",
                "session-end",
                "wait",
            ] {
                if client == "codex" && event == "wait" {
                    continue;
                }
                let r = hook(home, client, event, "s", &dir);
                assert_eq!(r.code, 0, "{client} {event}: {}", r.stderr);
                assert_eq!(r.stdout, "", "{client} {event}");
                // Ending or waiting for a session never started: nothing
                // to do, nothing to say.
                // (The stopped home's claude session ended just before its
                // `wait`.)
                let known = home == stopped.home_path() && client == "claude" && event != "wait";
                if matches!(event, "session-end" | "wait") && !known {
                    assert_eq!(r.stderr, "", "{client} {event}");
                    continue;
                }
                assert_eq!(
                    r.stderr.lines().count(),
                    1,
                    "{client} {event}: {}",
                    r.stderr
                );
                assert!(
                    r.stderr.contains("no repowire daemon answers"),
                    "{client} {event}: {}",
                    r.stderr
                );
            }
        }
    }
    let h = never.path();
    for (event, client, stdin) in [
        ("stop", "claude", &b"not json"[..]),
        ("stop", "claude", &b"[1]"[..]),
        ("bogus", "claude", &b"{}"[..]),
        ("stop", "nope", &b"{}"[..]),
    ] {
        let r = hook_env(h, event, client, stdin, &[]);
        assert_eq!(r.code, 0, "{event} {client}");
        assert_eq!(r.stdout, "");
        assert_eq!(r.stderr.lines().count(), 1, "{}", r.stderr);
        assert!(r.stderr.contains("nothing done"), "{}", r.stderr);
    }
}
