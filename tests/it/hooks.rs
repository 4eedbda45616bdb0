//! `repowire hook <event> --client claude|codex` as the clients run it: a
//! process fed the client's JSON on stdin (tests/it/fixtures/hooks, named
//! by client and version), whose stdout must be exactly what that client
//! accepts — for Codex, checked against the output schemas Codex 0.171.0
//! ships; for Claude Code, the exact key shape it reads. Each test starts
//! its own daemon; what the hooks did is read back from the daemon (peers,
//! statuses, delivery traces).

use crate::mcp::{Catcher, call};
use crate::support::*;
use repowire::api::NotifyReq;
use repowire::client::Client;
use rmcp::ServiceExt;
use rmcp::transport::{ConfigureCommandExt, TokioChildProcess};
use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};
use tokio::io::AsyncWriteExt;

const CLAUDE_DIR: &str = "claude-2.1.197";
const CODEX_DIR: &str = "codex-0.171.0";

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/it/fixtures/hooks")
}

fn read_json(p: &Path) -> Value {
    let s = std::fs::read_to_string(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
    serde_json::from_str(&s).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

// ---------------------------------------------------------------------------
// A JSON-schema checker for the subset the Codex hook schemas use.
// ---------------------------------------------------------------------------

/// Where `v` breaks `schema` (empty: it validates). `root` holds the
/// `definitions` that `$ref`s name. A keyword this checker does not know
/// is itself an error, so a schema it cannot read never passes silently.
fn schema_errors(root: &Value, schema: &Value, v: &Value) -> Vec<String> {
    let mut errs = Vec::new();
    check(root, schema, v, "$", &mut errs);
    errs
}

fn type_ok(t: &str, v: &Value) -> bool {
    match t {
        "object" => v.is_object(),
        "string" => v.is_string(),
        "boolean" => v.is_boolean(),
        "null" => v.is_null(),
        "array" => v.is_array(),
        "number" => v.is_number(),
        "integer" => v.is_i64() || v.is_u64(),
        other => panic!("schema type {other:?} not supported by this checker"),
    }
}

fn check(root: &Value, schema: &Value, v: &Value, at: &str, errs: &mut Vec<String>) {
    let o = match schema {
        Value::Bool(true) => return,
        Value::Bool(false) => {
            errs.push(format!("{at}: no value allowed"));
            return;
        }
        Value::Object(o) => o,
        other => panic!("{at}: a schema is an object or a boolean, not {other}"),
    };
    for k in o.keys() {
        let known = [
            "$schema",
            "title",
            "description",
            "default",
            "definitions",
            "type",
            "properties",
            "required",
            "additionalProperties",
            "const",
            "enum",
            "$ref",
            "allOf",
        ];
        assert!(
            known.contains(&k.as_str()),
            "{at}: schema keyword {k:?} not supported by this checker"
        );
    }
    if let Some(r) = o.get("$ref") {
        let r = r.as_str().unwrap();
        let name = r
            .strip_prefix("#/definitions/")
            .unwrap_or_else(|| panic!("{at}: $ref {r:?} is not #/definitions/…"));
        let target = root["definitions"]
            .get(name)
            .unwrap_or_else(|| panic!("{at}: $ref {r:?} names no definition"));
        check(root, target, v, at, errs);
    }
    if let Some(all) = o.get("allOf") {
        for s in all.as_array().unwrap() {
            check(root, s, v, at, errs);
        }
    }
    if let Some(t) = o.get("type") {
        let ok = match t {
            Value::String(t) => type_ok(t, v),
            Value::Array(ts) => ts.iter().any(|t| type_ok(t.as_str().unwrap(), v)),
            other => panic!("{at}: type {other}"),
        };
        if !ok {
            errs.push(format!("{at}: {v} is not of type {t}"));
            return;
        }
    }
    if let Some(c) = o.get("const")
        && c != v
    {
        errs.push(format!("{at}: {v} is not the constant {c}"));
    }
    if let Some(e) = o.get("enum")
        && !e.as_array().unwrap().contains(v)
    {
        errs.push(format!("{at}: {v} is not one of {e}"));
    }
    let Value::Object(obj) = v else {
        return;
    };
    let props = o.get("properties").and_then(Value::as_object);
    if let Some(req) = o.get("required") {
        for k in req.as_array().unwrap() {
            let k = k.as_str().unwrap();
            if !obj.contains_key(k) {
                errs.push(format!("{at}: required property {k:?} is missing"));
            }
        }
    }
    for (k, val) in obj {
        match props.and_then(|p| p.get(k)) {
            Some(s) => check(root, s, val, &format!("{at}.{k}"), errs),
            None => match o.get("additionalProperties") {
                None | Some(Value::Bool(true)) => {}
                Some(Value::Bool(false)) => {
                    errs.push(format!("{at}: property {k:?} is not allowed"))
                }
                Some(s) => check(root, s, val, &format!("{at}.{k}"), errs),
            },
        }
    }
}

/// A Codex 0.171.0 schema: `<event>.command.<input|output>.json`.
fn codex_schema(event: &str, dir: &str) -> Option<Value> {
    let p = fixtures()
        .join(CODEX_DIR)
        .join("schemas")
        .join(format!("{event}.command.{dir}.json"));
    p.exists().then(|| read_json(&p))
}

fn assert_valid(schema: &Value, v: &Value, what: &str) {
    let errs = schema_errors(schema, schema, v);
    assert!(
        errs.is_empty(),
        "{what} breaks its schema: {errs:#?}\n{v:#}"
    );
}

// ---------------------------------------------------------------------------
// Running hooks.
// ---------------------------------------------------------------------------

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Agent {
    Claude,
    Codex,
}

impl Agent {
    fn arg(self) -> &'static str {
        match self {
            Agent::Claude => "claude",
            Agent::Codex => "codex",
        }
    }

    fn dir(self) -> &'static str {
        match self {
            Agent::Claude => CLAUDE_DIR,
            Agent::Codex => CODEX_DIR,
        }
    }

    fn backend(self) -> &'static str {
        match self {
            Agent::Claude => "claude-code",
            Agent::Codex => "codex",
        }
    }

    /// The events `repowire setup` wires for this client.
    fn events(self) -> &'static [&'static str] {
        match self {
            Agent::Claude => &[
                "session-start",
                "user-prompt-submit",
                "pre-tool-use",
                "notification",
                "stop",
                "wait",
                "session-end",
            ],
            Agent::Codex => &[
                "session-start",
                "user-prompt-submit",
                "pre-tool-use",
                "stop",
                "session-end",
            ],
        }
    }

    /// Seconds the client gives the hook (what `repowire setup` writes).
    fn timeout_s(self, event: &str) -> u64 {
        match (self, event) {
            (Agent::Claude, "wait") => 3600,
            (Agent::Codex, "session-end") => 3,
            (_, "pre-tool-use" | "notification" | "session-end") => 5,
            _ => 10,
        }
    }
}

/// The client's hook input for `event`, with this session's id and
/// directory. A Codex input is checked against Codex's own input schema.
fn input(agent: Agent, event: &str, sid: &str, cwd: &Path) -> Value {
    let mut v = read_json(&fixtures().join(agent.dir()).join(format!("{event}.json")));
    v["session_id"] = json!(sid);
    v["cwd"] = json!(cwd.display().to_string());
    if agent == Agent::Codex {
        let schema = codex_schema(event, "input").expect("an input schema");
        assert_valid(&schema, &v, &format!("codex {event} input"));
    }
    v
}

/// A finished hook process.
#[derive(Debug)]
struct Out {
    code: i32,
    stdout: String,
    stderr: String,
}

impl Out {
    fn json(&self) -> Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("stdout is not JSON ({e}): {self:?}"))
    }

    /// Exit 0, nothing on stdout.
    fn silent(&self) -> &Self {
        assert_eq!(self.code, 0, "{self:?}");
        assert_eq!(self.stdout, "", "{self:?}");
        self
    }

    /// Exactly one line on stderr; returned.
    fn one_line(&self) -> &str {
        assert!(
            self.stderr.ends_with('\n') && self.stderr.lines().count() == 1,
            "expected exactly one line on stderr: {self:?}"
        );
        self.stderr.trim_end()
    }
}

fn hook_command(
    home: &Path,
    event: &str,
    client: &str,
    env: &[(&str, &str)],
) -> tokio::process::Command {
    let mut c = cli_command(home, &["hook", event, "--client", client], env);
    c.stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut c = tokio::process::Command::from(c);
    c.kill_on_drop(true);
    c
}

/// Start `repowire hook EVENT --client CLIENT` with `stdin` written and
/// closed.
async fn spawn_hook(home: &Path, event: &str, client: &str, stdin: &[u8]) -> tokio::process::Child {
    spawn_hook_env(home, event, client, stdin, &[]).await
}

async fn spawn_hook_env(
    home: &Path,
    event: &str,
    client: &str,
    stdin: &[u8],
    env: &[(&str, &str)],
) -> tokio::process::Child {
    let mut child = hook_command(home, event, client, env)
        .spawn()
        .expect("spawn hook");
    let mut si = child.stdin.take().unwrap();
    // A hook that refuses its arguments may exit before it reads stdin.
    if let Err(e) = si.write_all(stdin).await {
        assert_eq!(e.kind(), std::io::ErrorKind::BrokenPipe, "{e}");
    }
    drop(si);
    child
}

async fn finish(child: tokio::process::Child, within: Duration) -> Out {
    let o = tokio::time::timeout(within, child.wait_with_output())
        .await
        .unwrap_or_else(|_| panic!("the hook did not end within {within:?}"))
        .unwrap();
    Out {
        code: o.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
    }
}

async fn run_raw(home: &Path, event: &str, client: &str, stdin: &[u8]) -> Out {
    finish(
        spawn_hook(home, event, client, stdin).await,
        Duration::from_secs(30),
    )
    .await
}

/// What a client accepts on stdout for `event`: for Codex, its output
/// schema (no schema: nothing); for Claude Code, the exact shapes it reads.
fn check_output(agent: Agent, event: &str, stdout: &str) {
    if stdout.is_empty() {
        return;
    }
    assert!(
        stdout.ends_with('\n') && stdout.lines().count() == 1,
        "one JSON line: {stdout:?}"
    );
    let v: Value = serde_json::from_str(stdout)
        .unwrap_or_else(|e| panic!("{agent:?} {event} stdout is not JSON ({e}): {stdout}"));
    match agent {
        Agent::Codex => {
            let schema = codex_schema(event, "output")
                .unwrap_or_else(|| panic!("codex {event} takes no output, got {stdout}"));
            assert_valid(&schema, &v, &format!("codex {event} output"));
        }
        Agent::Claude => {
            let o = v.as_object().unwrap();
            match event {
                "session-start" | "user-prompt-submit" => {
                    let name = if event == "session-start" {
                        "SessionStart"
                    } else {
                        "UserPromptSubmit"
                    };
                    let keys: Vec<&str> = o.keys().map(String::as_str).collect();
                    assert_eq!(keys, ["hookSpecificOutput"], "{v}");
                    let h = o["hookSpecificOutput"].as_object().unwrap();
                    let mut keys: Vec<&str> = h.keys().map(String::as_str).collect();
                    keys.sort();
                    assert_eq!(keys, ["additionalContext", "hookEventName"], "{v}");
                    assert_eq!(h["hookEventName"], name, "{v}");
                    assert!(h["additionalContext"].is_string(), "{v}");
                }
                "stop" => {
                    let mut keys: Vec<&str> = o.keys().map(String::as_str).collect();
                    keys.sort();
                    assert_eq!(keys, ["decision", "reason"], "{v}");
                    assert_eq!(o["decision"], "block", "{v}");
                    assert!(o["reason"].is_string(), "{v}");
                }
                _ => panic!("claude {event} takes no output, got {stdout}"),
            }
        }
    }
}

/// One client session: its id and project directory, in a daemon's home.
struct Session {
    home: PathBuf,
    agent: Agent,
    sid: String,
    cwd: PathBuf,
}

impl Session {
    fn new(d: &Daemon, agent: Agent, sid: &str, cwd: &Path) -> Self {
        Session {
            home: d.home_path().to_path_buf(),
            agent,
            sid: sid.into(),
            cwd: cwd.to_path_buf(),
        }
    }

    fn input(&self, event: &str) -> Value {
        input(self.agent, event, &self.sid, &self.cwd)
    }

    /// Run `event` with the fixture input; its stdout checked against what
    /// the client accepts.
    async fn run(&self, event: &str) -> Out {
        self.run_input(event, self.input(event)).await
    }

    /// Run `event` with the fixture input changed by `f`.
    async fn run_with(&self, event: &str, f: impl FnOnce(&mut Value)) -> Out {
        let mut v = self.input(event);
        f(&mut v);
        if self.agent == Agent::Codex {
            let schema = codex_schema(event, "input").unwrap();
            assert_valid(&schema, &v, &format!("codex {event} input"));
        }
        self.run_input(event, v).await
    }

    async fn run_input(&self, event: &str, v: Value) -> Out {
        let out = run_raw(
            &self.home,
            event,
            self.agent.arg(),
            v.to_string().as_bytes(),
        )
        .await;
        check_output(self.agent, event, &out.stdout);
        out
    }

    async fn spawn(&self, event: &str) -> tokio::process::Child {
        spawn_hook(
            &self.home,
            event,
            self.agent.arg(),
            self.input(event).to_string().as_bytes(),
        )
        .await
    }
}

/// The `additionalContext` of a hook's output for `event_name`.
fn context(out: &Out, event_name: &str) -> String {
    assert_eq!(out.code, 0, "{out:?}");
    let v = out.json();
    assert_eq!(v["hookSpecificOutput"]["hookEventName"], event_name, "{v}");
    v["hookSpecificOutput"]["additionalContext"]
        .as_str()
        .unwrap_or_else(|| panic!("no additionalContext: {v}"))
        .to_string()
}

/// The `reason` of a blocking stop.
fn block_reason(out: &Out) -> String {
    assert_eq!(out.code, 0, "{out:?}");
    let v = out.json();
    assert_eq!(v["decision"], "block", "{v}");
    v["reason"].as_str().unwrap().to_string()
}

/// A project directory named `myapp` (the peer's name comes from it).
fn project() -> (tempfile::TempDir, PathBuf) {
    let t = tempfile::tempdir().unwrap();
    let p = t.path().join("myapp");
    std::fs::create_dir(&p).unwrap();
    (t, p)
}

fn note(to: &str, text: &str) -> NotifyReq {
    NotifyReq {
        to: to.into(),
        text: text.into(),
        ..Default::default()
    }
}

/// The admin acting as `name`.
fn as_peer(d: &Daemon, name: &str) -> Client {
    d.admin()
        .with_identity(Some(d.admin_token()), Some(name.into()))
}

async fn status(d: &Daemon, name: &str) -> String {
    d.admin()
        .describe(name, None)
        .await
        .unwrap()
        .status
        .as_str()
        .to_string()
}

/// Names of the peers whose name starts with `prefix`.
async fn peers_named(d: &Daemon, prefix: &str) -> Vec<String> {
    let mut names: Vec<String> = d
        .admin()
        .list_peers(None)
        .await
        .unwrap()
        .into_iter()
        .map(|p| p.name)
        .filter(|n| n.starts_with(prefix))
        .collect();
    names.sort();
    names
}

/// The kinds and routes of a delivery's trace, in order.
async fn trace(d: &Daemon, id: &str) -> Vec<(String, Option<String>)> {
    d.admin()
        .trace(id)
        .await
        .unwrap()
        .events
        .into_iter()
        .map(|e| {
            let route = e.payload["route"].as_str().map(str::to_string);
            (e.kind, route)
        })
        .collect()
}

/// `id` was leased on the hook route and confirmed, and `to` no longer
/// holds it.
async fn assert_confirmed_by_hook(d: &Daemon, to: &str, id: &str) {
    let t = trace(d, id).await;
    assert!(
        t.iter()
            .any(|(k, r)| k == "delivery_leased" && r.as_deref() == Some("hook")),
        "no hook lease: {t:?}"
    );
    assert_eq!(
        t.last().map(|(k, _)| k.as_str()),
        Some("delivery_confirmed"),
        "{t:?}"
    );
    let open: Vec<String> = as_peer(d, to)
        .peek(50)
        .await
        .unwrap()
        .deliveries
        .into_iter()
        .map(|d| d.delivery_id)
        .collect();
    assert!(!open.contains(&id.to_string()), "{id} still open: {open:?}");
}

/// `id` is still open for `to`, unconfirmed.
async fn assert_open(d: &Daemon, to: &str, id: &str) {
    let held = as_peer(d, to).peek(50).await.unwrap().deliveries;
    let it = held
        .iter()
        .find(|x| x.delivery_id == id)
        .unwrap_or_else(|| panic!("{id} is not open: {held:?}"));
    assert_ne!(it.state.as_str(), "delivered", "{it:?}");
    let t = trace(d, id).await;
    assert!(
        !t.iter().any(|(k, _)| k == "delivery_confirmed"),
        "confirmed: {t:?}"
    );
}

const SID_A: &str = "6f1c2a3b-4d5e-4f60-8a7b-9c0d1e2f3a4b";
const SID_B: &str = "0a9b8c7d-6e5f-4a3b-9c2d-1e0f9a8b7c6d";

// ---------------------------------------------------------------------------
// The fixtures and the checker themselves.
// ---------------------------------------------------------------------------

#[test]
fn codex_fixtures_validate_against_the_schemas_codex_ships() {
    for event in Agent::Codex.events() {
        let v = read_json(&fixtures().join(CODEX_DIR).join(format!("{event}.json")));
        let schema = codex_schema(event, "input").expect("an input schema");
        assert_valid(&schema, &v, &format!("{CODEX_DIR}/{event}.json"));
    }
    // Claude Code's fixtures carry the base fields and their event's name.
    for (event, name) in [
        ("session-start", "SessionStart"),
        ("user-prompt-submit", "UserPromptSubmit"),
        ("pre-tool-use", "PreToolUse"),
        ("notification", "Notification"),
        ("stop", "Stop"),
        ("wait", "Stop"),
        ("session-end", "SessionEnd"),
    ] {
        let v = read_json(&fixtures().join(CLAUDE_DIR).join(format!("{event}.json")));
        for k in ["session_id", "transcript_path", "cwd"] {
            assert!(v[k].is_string(), "{event}: {k}: {v}");
        }
        assert_eq!(v["hook_event_name"], name, "{event}");
    }
}

#[test]
fn the_schema_checker_rejects_what_codex_would() {
    let schema = codex_schema("stop", "input").unwrap();
    let good = read_json(&fixtures().join(CODEX_DIR).join("stop.json"));
    assert!(schema_errors(&schema, &schema, &good).is_empty());
    let broken = |f: &dyn Fn(&mut Value)| {
        let mut v = good.clone();
        f(&mut v);
        schema_errors(&schema, &schema, &v)
    };
    let e = broken(&|v| {
        v.as_object_mut().unwrap().remove("turn_id");
    });
    assert!(
        e.iter().any(|e| e.contains("\"turn_id\" is missing")),
        "{e:?}"
    );
    let e = broken(&|v| v["extra"] = json!(1));
    assert!(
        e.iter().any(|e| e.contains("\"extra\" is not allowed")),
        "{e:?}"
    );
    let e = broken(&|v| v["hook_event_name"] = json!("Start"));
    assert!(e.iter().any(|e| e.contains("constant")), "{e:?}");
    let e = broken(&|v| v["permission_mode"] = json!("yolo"));
    assert!(e.iter().any(|e| e.contains("one of")), "{e:?}");
    let e = broken(&|v| v["transcript_path"] = json!(3));
    assert!(e.iter().any(|e| e.contains("$.transcript_path")), "{e:?}");
    assert!(broken(&|v| v["transcript_path"] = json!("/t.jsonl")).is_empty());
    // Outputs: `allOf` + `$ref` into definitions, nested objects closed.
    let out = codex_schema("session-start", "output").unwrap();
    let ok =
        json!({"hookSpecificOutput": {"hookEventName": "SessionStart", "additionalContext": "x"}});
    assert!(schema_errors(&out, &out, &ok).is_empty());
    let bad = json!({"hookSpecificOutput": {"hookEventName": "UserPromptSubmit", "additionalContext": "x"}});
    assert!(!schema_errors(&out, &out, &bad).is_empty());
    let bad = json!({"hookSpecificOutput": {"hookEventName": "SessionStart", "extra": "x"}});
    assert!(!schema_errors(&out, &out, &bad).is_empty());
    let stop = codex_schema("stop", "output").unwrap();
    assert!(schema_errors(&stop, &stop, &json!({"decision": "block", "reason": "r"})).is_empty());
    assert!(!schema_errors(&stop, &stop, &json!({"decision": "approve"})).is_empty());
    assert!(
        !schema_errors(
            &stop,
            &stop,
            &json!({"hookSpecificOutput": {"hookEventName": "Stop"}})
        )
        .is_empty()
    );
}

// ---------------------------------------------------------------------------
// 1. session-start and user-prompt-submit.
// ---------------------------------------------------------------------------

async fn session_start_joins_and_shows_pending_notes(agent: Agent) {
    let d = Daemon::start(&[]);
    let (_t, dir) = project();
    let alice = d.peer("alice", None).await;
    let s = Session::new(&d, agent, SID_A, &dir);

    let out = s.run("session-start").await;
    let ctx = context(&out, "SessionStart");
    assert!(
        ctx.contains("peer \"myapp\"") && ctx.contains("circle \"default\""),
        "{ctx}"
    );
    let me = d.admin().describe("myapp", None).await.unwrap();
    assert_eq!(me.backend, agent.backend(), "{me:?}");
    assert_eq!(me.status.as_str(), "online", "{me:?}");
    assert!(me.project_path.ends_with("myapp"), "{}", me.project_path);
    assert_eq!(peers_named(&d, "myapp").await, ["myapp"]);

    // Nothing pending: a prompt adds nothing, and the peer is busy.
    s.run("user-prompt-submit").await.silent();
    assert_eq!(status(&d, "myapp").await, "busy");

    // A note sent meanwhile shows with the next prompt, once.
    let id = alice
        .notify(&note("myapp", "NOTE-prompt please rebase on main"))
        .await
        .unwrap()
        .delivery_id;
    let ctx = context(&s.run("user-prompt-submit").await, "UserPromptSubmit");
    assert!(ctx.contains("NOTE-prompt please rebase on main"), "{ctx}");
    assert!(ctx.contains("from alice") && ctx.contains(&id), "{ctx}");
    assert_confirmed_by_hook(&d, "myapp", &id).await;
    s.run("user-prompt-submit").await.silent();

    // A note sent before a session starts shows in its SessionStart
    // context: the session ends, a note is queued, the next session of the
    // project takes over the peer and its inbox.
    s.run("session-end").await.silent();
    assert_eq!(status(&d, "myapp").await, "offline");
    let id = alice
        .notify(&note("myapp", "NOTE-away the build is red"))
        .await
        .unwrap()
        .delivery_id;
    let s2 = Session::new(&d, agent, SID_B, &dir);
    let ctx = context(&s2.run("session-start").await, "SessionStart");
    assert!(ctx.contains("peer \"myapp\""), "{ctx}");
    assert!(ctx.contains("NOTE-away the build is red"), "{ctx}");
    assert_confirmed_by_hook(&d, "myapp", &id).await;
    assert_eq!(peers_named(&d, "myapp").await, ["myapp"]);
    assert_eq!(status(&d, "myapp").await, "online");
}

#[tokio::test]
async fn claude_session_start_joins_and_shows_pending_notes() {
    session_start_joins_and_shows_pending_notes(Agent::Claude).await;
}

#[tokio::test]
async fn codex_session_start_joins_and_shows_pending_notes() {
    session_start_joins_and_shows_pending_notes(Agent::Codex).await;
}

#[tokio::test]
async fn pre_tool_use_is_busy_and_an_idle_notification_is_idle() {
    let d = Daemon::start(&[]);
    let (_t, dir) = project();
    for (agent, sid) in [(Agent::Claude, SID_A), (Agent::Codex, SID_B)] {
        let s = Session::new(&d, agent, sid, &dir);
        let out = s.run("session-start").await;
        let name = if agent == Agent::Claude {
            "myapp"
        } else {
            "myapp-2"
        };
        assert!(
            context(&out, "SessionStart").contains(&format!("peer \"{name}\"")),
            "{out:?}"
        );
        s.run("pre-tool-use").await.silent();
        assert_eq!(status(&d, name).await, "busy", "{agent:?}");
        if agent == Agent::Claude {
            // A notification that is not the idle prompt changes nothing.
            s.run_with("notification", |v| {
                v["notification_type"] = json!("permission_prompt");
                v["message"] = json!("Claude needs your permission to use Bash");
            })
            .await
            .silent();
            assert_eq!(status(&d, name).await, "busy");
            s.run("notification").await.silent();
            assert_eq!(status(&d, name).await, "idle");
        }
    }
}

// ---------------------------------------------------------------------------
// 2. stop.
// ---------------------------------------------------------------------------

async fn stop_with_pending_blocks_once_and_confirms(agent: Agent) {
    let d = Daemon::start(&[]);
    let (_t, dir) = project();
    let alice = d.peer("alice", None).await;
    let s = Session::new(&d, agent, SID_A, &dir);
    context(&s.run("session-start").await, "SessionStart");
    s.run("user-prompt-submit").await.silent();

    let id = alice
        .notify(&note("myapp", "NOTE-stop run the migrations too"))
        .await
        .unwrap()
        .delivery_id;
    let out = s.run("stop").await;
    let reason = block_reason(&out);
    assert!(
        reason.contains("NOTE-stop run the migrations too"),
        "{reason}"
    );
    assert!(reason.contains(&id), "{reason}");
    assert_confirmed_by_hook(&d, "myapp", &id).await;
    assert_eq!(status(&d, "myapp").await, "busy");

    // Shown once: the next stop has nothing, lets the session stop, and
    // the peer is idle.
    let out = s.run("stop").await;
    out.silent();
    assert_eq!(out.stderr, "", "{out:?}");
    assert_eq!(status(&d, "myapp").await, "idle");
}

#[tokio::test]
async fn claude_stop_with_pending_blocks_once_and_confirms() {
    stop_with_pending_blocks_once_and_confirms(Agent::Claude).await;
}

#[tokio::test]
async fn codex_stop_with_pending_blocks_once_and_confirms() {
    stop_with_pending_blocks_once_and_confirms(Agent::Codex).await;
}

async fn stops_block_at_most_three_times_in_a_row(agent: Agent) {
    let max = repowire::hook::MAX_STOP_BLOCKS;
    assert_eq!(max, 3);
    let d = Daemon::start(&[]);
    let (_t, dir) = project();
    let alice = d.peer("alice", None).await;
    let s = Session::new(&d, agent, SID_A, &dir);
    context(&s.run("session-start").await, "SessionStart");

    // A new note before each stop: the first three block, the fourth goes
    // through (saying why on stderr) and leaves its note pending.
    let mut n = 0;
    let mut send = async || {
        n += 1;
        let text = format!("NOTE-loop-{n}");
        let id = alice
            .notify(&note("myapp", &text))
            .await
            .unwrap()
            .delivery_id;
        (text, id)
    };
    for i in 1..=max {
        let (text, id) = send().await;
        let reason = block_reason(&s.run("stop").await);
        assert!(reason.contains(&text), "stop {i}: {reason}");
        assert_confirmed_by_hook(&d, "myapp", &id).await;
    }
    let (text, id) = send().await;
    let out = s.run("stop").await;
    out.silent();
    assert!(out.one_line().contains("stops in a row"), "{out:?}");
    assert_open(&d, "myapp", &id).await;
    assert_eq!(status(&d, "myapp").await, "idle");

    // The next prompt shows what was left, and starts the count again.
    let ctx = context(&s.run("user-prompt-submit").await, "UserPromptSubmit");
    assert!(ctx.contains(&text), "{ctx}");
    assert_confirmed_by_hook(&d, "myapp", &id).await;

    // Two blocked stops, then a prompt: the count starts again, so three
    // more stops block (without the reset the second would go through).
    for i in 1..=2 {
        let (text, _) = send().await;
        let reason = block_reason(&s.run("stop").await);
        assert!(
            reason.contains(&text),
            "stop {i} before the prompt: {reason}"
        );
    }
    s.run("user-prompt-submit").await.silent();
    for i in 1..=max {
        let (text, _) = send().await;
        let out = s.run("stop").await;
        assert!(
            !out.stdout.is_empty(),
            "stop {i} after the prompt went through: {out:?}"
        );
        assert!(block_reason(&out).contains(&text), "{out:?}");
    }
    let (_, id) = send().await;
    s.run("stop").await.silent();
    assert_open(&d, "myapp", &id).await;
}

#[tokio::test]
async fn claude_stops_block_at_most_three_times_in_a_row_and_a_prompt_resets_the_count() {
    stops_block_at_most_three_times_in_a_row(Agent::Claude).await;
}

#[tokio::test]
async fn codex_stops_block_at_most_three_times_in_a_row_and_a_prompt_resets_the_count() {
    stops_block_at_most_three_times_in_a_row(Agent::Codex).await;
}

// ---------------------------------------------------------------------------
// 3. A channel push is a hint; the next hook shows it and confirms it.
// ---------------------------------------------------------------------------

/// `repowire mcp --client CLIENT ARGS` in `dir`, as a client session
/// (env `CLAUDE_CODE_SESSION_ID` where `sid` is given).
fn mcp_transport(
    d: &Daemon,
    client: &str,
    dir: &Path,
    sid: Option<&str>,
    args: &[&str],
) -> TokioChildProcess {
    let home = d.home_path().to_path_buf();
    let dir = dir.to_path_buf();
    let client = client.to_string();
    let sid = sid.map(str::to_string);
    let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
    TokioChildProcess::new(tokio::process::Command::new(BIN).configure(move |c| {
        c.env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("REPOWIRE_HOME", &home)
            .current_dir(&dir)
            .args(["mcp", "--client", &client])
            .args(&args);
        if let Some(sid) = &sid {
            c.env("CLAUDE_CODE_SESSION_ID", sid);
        }
    }))
    .unwrap()
}

#[tokio::test]
async fn a_channel_push_alone_is_unconfirmed_and_the_next_hook_shows_it_marked_pushed() {
    let d = Daemon::start(&[]);
    let (_t, dir) = project();
    let alice = d.peer("alice", None).await;
    // The session's MCP server (Claude Code with channels) and its hooks.
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let server = Catcher::claude(tx)
        .serve(mcp_transport(
            &d,
            "claude",
            &dir,
            Some(SID_A),
            &["--delivery", "push"],
        ))
        .await
        .unwrap();
    let s = Session::new(&d, Agent::Claude, SID_A, &dir);
    let ctx = context(&s.run("session-start").await, "SessionStart");
    assert!(ctx.contains("peer \"myapp\""), "{ctx}");
    assert_eq!(peers_named(&d, "myapp").await, ["myapp"]);
    eventually(Duration::from_secs(10), "myapp pushes", || async {
        let p = d.admin().describe("myapp", None).await.ok()?;
        (p.route == "channel").then_some(())
    })
    .await;

    let id = alice
        .notify(&note("myapp", "NOTE-push deploy is frozen"))
        .await
        .unwrap()
        .delivery_id;
    let ev = tokio::time::timeout(Duration::from_secs(15), rx.recv())
        .await
        .expect("a channel event")
        .unwrap();
    assert_eq!(ev["meta"]["delivery_id"], id.as_str(), "{ev}");
    eventually(Duration::from_secs(10), "recorded as pushed", || async {
        let held = as_peer(&d, "myapp").peek(10).await.unwrap().deliveries;
        held.iter()
            .any(|x| x.delivery_id == id && x.pushed)
            .then_some(())
    })
    .await;
    assert_open(&d, "myapp", &id).await;

    // The next hook shows it, marked, and confirms it.
    let ctx = context(&s.run("user-prompt-submit").await, "UserPromptSubmit");
    assert!(ctx.contains("NOTE-push deploy is frozen"), "{ctx}");
    assert!(
        ctx.contains("already pushed live as a channel event"),
        "{ctx}"
    );
    assert_confirmed_by_hook(&d, "myapp", &id).await;
    let t = trace(&d, &id).await;
    let k = |k: &str, r: Option<&str>| (k.to_string(), r.map(str::to_string));
    assert_eq!(
        t,
        [
            k("delivery_queued", None),
            k("delivery_leased", Some("stream")),
            k("delivery_pushed", None),
            k("delivery_leased", Some("hook")),
            k("delivery_confirmed", None),
        ],
        "{t:?}"
    );
    // Shown once by hooks.
    s.run("stop").await.silent();
    assert_eq!(peers_named(&d, "myapp").await, ["myapp"]);
    server.cancel().await.unwrap();
}

// ---------------------------------------------------------------------------
// 4. Two sessions in one repository.
// ---------------------------------------------------------------------------

#[tokio::test]
async fn two_sessions_in_one_repository_are_two_peers_with_their_own_inboxes() {
    let d = Daemon::start(&[]);
    let (_t, dir) = project();
    let alice = d.peer("alice", None).await;
    let one = Session::new(&d, Agent::Claude, SID_A, &dir);
    let two = Session::new(&d, Agent::Claude, SID_B, &dir);
    let c1 = context(&one.run("session-start").await, "SessionStart");
    let c2 = context(&two.run("session-start").await, "SessionStart");
    assert!(c1.contains("peer \"myapp\""), "{c1}");
    assert!(c2.contains("peer \"myapp-2\""), "{c2}");
    assert_eq!(peers_named(&d, "myapp").await, ["myapp", "myapp-2"]);

    let id2 = alice
        .notify(&note("myapp-2", "NOTE-for-two"))
        .await
        .unwrap()
        .delivery_id;
    one.run("user-prompt-submit").await.silent();
    let ctx = context(&two.run("user-prompt-submit").await, "UserPromptSubmit");
    assert!(
        ctx.contains("NOTE-for-two") && ctx.contains("(myapp-2)"),
        "{ctx}"
    );
    assert_confirmed_by_hook(&d, "myapp-2", &id2).await;

    let id1 = alice
        .notify(&note("myapp", "NOTE-for-one"))
        .await
        .unwrap()
        .delivery_id;
    two.run("stop").await.silent();
    let reason = block_reason(&one.run("stop").await);
    assert!(reason.contains("NOTE-for-one"), "{reason}");
    assert!(!reason.contains("NOTE-for-two"), "{reason}");
    assert_confirmed_by_hook(&d, "myapp", &id1).await;
    // The second session stays myapp-2 on its later hooks.
    assert_eq!(status(&d, "myapp-2").await, "idle");
    assert_eq!(status(&d, "myapp").await, "busy");
}

#[tokio::test]
async fn names_follow_claude_project_dir_and_repowire_peer() {
    let d = Daemon::start(&[]);
    let t = tempfile::tempdir().unwrap();
    let proj = t.path().join("webshop");
    let sub = proj.join("crates").join("api");
    std::fs::create_dir_all(&sub).unwrap();
    let proj_s = proj.display().to_string();
    let start = async |agent: Agent, sid: &str, env: &[(&str, &str)]| {
        let v = input(agent, "session-start", sid, &sub);
        let out = finish(
            spawn_hook_env(
                d.home_path(),
                "session-start",
                agent.arg(),
                v.to_string().as_bytes(),
                env,
            )
            .await,
            Duration::from_secs(30),
        )
        .await;
        check_output(agent, "session-start", &out.stdout);
        context(&out, "SessionStart")
    };
    // Claude Code: the project is CLAUDE_PROJECT_DIR, not the cwd.
    let ctx = start(Agent::Claude, "sid-1", &[("CLAUDE_PROJECT_DIR", &proj_s)]).await;
    assert!(ctx.contains("peer \"webshop\""), "{ctx}");
    assert!(
        d.admin()
            .describe("webshop", None)
            .await
            .unwrap()
            .project_path
            .ends_with("webshop")
    );
    // Codex has no such variable: its cwd names it.
    let ctx = start(Agent::Codex, "sid-2", &[("CLAUDE_PROJECT_DIR", &proj_s)]).await;
    assert!(ctx.contains("peer \"api\""), "{ctx}");
    // REPOWIRE_PEER overrides the base name (still unique per session).
    let ctx = start(Agent::Claude, "sid-3", &[("REPOWIRE_PEER", "reviewer")]).await;
    assert!(ctx.contains("peer \"reviewer\""), "{ctx}");
    let ctx = start(Agent::Codex, "sid-4", &[("REPOWIRE_PEER", "reviewer")]).await;
    assert!(ctx.contains("peer \"reviewer-2\""), "{ctx}");
}

// ---------------------------------------------------------------------------
// 5. Hooks and the MCP server of one session are one peer.
// ---------------------------------------------------------------------------

async fn hooks_and_mcp_server_are_one_peer(agent: Agent, hook_first: bool) {
    let d = Daemon::start(&[]);
    let (_t, dir) = project();
    let s = Session::new(&d, agent, SID_A, &dir);
    // Codex starts its MCP servers without a session id: the two meet on
    // the client process (here: this test process, their common parent).
    let sid = (agent == Agent::Claude).then_some(SID_A);
    let mut ctx = None;
    if hook_first {
        ctx = Some(context(&s.run("session-start").await, "SessionStart"));
    }
    let server =
        ().serve(mcp_transport(&d, agent.arg(), &dir, sid, &[]))
            .await
            .expect("mcp session");
    let ctx = match ctx {
        Some(c) => c,
        None => context(&s.run("session-start").await, "SessionStart"),
    };
    let (err, me) = call(&server, "whoami", json!({})).await;
    assert!(!err, "{me}");
    let name = me["name"].as_str().unwrap().to_string();
    assert_eq!(name, "myapp", "{me}");
    assert!(ctx.contains(&format!("peer \"{name}\"")), "{ctx}");
    assert_eq!(peers_named(&d, "myapp").await, ["myapp"]);
    let p = d.admin().describe("myapp", None).await.unwrap();
    assert_eq!(p.backend, agent.backend(), "{p:?}");

    // A note to it is one inbox: the hook shows it, the inbox tool then
    // has nothing more.
    let alice = d.peer("alice", None).await;
    let id = alice
        .notify(&note("myapp", "NOTE-one-peer"))
        .await
        .unwrap()
        .delivery_id;
    let ctx = context(&s.run("user-prompt-submit").await, "UserPromptSubmit");
    assert!(ctx.contains("NOTE-one-peer"), "{ctx}");
    assert_confirmed_by_hook(&d, "myapp", &id).await;
    let (err, inbox) = call(&server, "inbox", json!({})).await;
    assert!(!err, "{inbox}");
    assert!(!inbox.to_string().contains("NOTE-one-peer"), "{inbox}");
    server.cancel().await.unwrap();
}

#[tokio::test]
async fn claude_hooks_and_mcp_server_of_one_session_are_one_peer() {
    hooks_and_mcp_server_are_one_peer(Agent::Claude, false).await;
}

#[tokio::test]
async fn claude_hooks_and_mcp_server_are_one_peer_when_the_hook_runs_first() {
    hooks_and_mcp_server_are_one_peer(Agent::Claude, true).await;
}

#[tokio::test]
async fn codex_hooks_and_mcp_server_of_one_session_are_one_peer() {
    hooks_and_mcp_server_are_one_peer(Agent::Codex, false).await;
}

// ---------------------------------------------------------------------------
// 6. No daemon.
// ---------------------------------------------------------------------------

/// Every event of both clients: exit 0 within the client's timeout,
/// nothing on stdout, one line on stderr saying no daemon answers — except,
/// in a home where no session ever started (`fresh`), ending or waiting
/// for one: nothing to do and nothing to say.
async fn every_event_says_no_daemon(home: &Path, dir: &Path, fresh: bool) {
    let mut wrong = Vec::new();
    for agent in [Agent::Claude, Agent::Codex] {
        let sid = if agent == Agent::Claude { SID_A } else { SID_B };
        for event in agent.events() {
            let v = input(agent, event, sid, dir);
            let started = Instant::now();
            let child = spawn_hook(home, event, agent.arg(), v.to_string().as_bytes()).await;
            let out = finish(child, Duration::from_secs(30)).await;
            let took = started.elapsed();
            let quiet = fresh && matches!(*event, "session-end" | "wait");
            let said = if quiet {
                out.stderr.is_empty()
            } else {
                out.stderr.ends_with('\n')
                    && out.stderr.lines().count() == 1
                    && out.stderr.contains("no repowire daemon answers")
            };
            let ok = took < Duration::from_secs(agent.timeout_s(event))
                && out.code == 0
                && out.stdout.is_empty()
                && said;
            if !ok {
                wrong.push(format!("{agent:?} {event} ({took:?}): {out:?}"));
            }
        }
    }
    assert!(
        wrong.is_empty(),
        "expected exit 0 within the client's timeout, empty stdout and one stderr line \
saying no daemon answers:\n{}",
        wrong.join("\n")
    );
}

#[tokio::test]
async fn without_a_daemon_ever_every_event_exits_0_with_one_line() {
    let home = tempfile::tempdir().unwrap();
    let (_t, dir) = project();
    every_event_says_no_daemon(home.path(), &dir, true).await;
    assert!(
        !home.path().join("sessions").exists()
            || std::fs::read_dir(home.path().join("sessions"))
                .unwrap()
                .flatten()
                .all(|e| !e.file_name().to_string_lossy().ends_with(".json")),
        "no session was recorded without a daemon"
    );
}

#[tokio::test]
async fn with_the_daemon_stopped_every_event_exits_0_with_one_line() {
    let mut d = Daemon::start(&[]);
    let (_t, dir) = project();
    for (agent, sid) in [(Agent::Claude, SID_A), (Agent::Codex, SID_B)] {
        let s = Session::new(&d, agent, sid, &dir);
        context(&s.run("session-start").await, "SessionStart");
        s.run("stop").await.silent();
    }
    d.signal_and_wait("-TERM");
    every_event_says_no_daemon(d.home_path(), &dir, false).await;
}

// ---------------------------------------------------------------------------
// 7. Bad input.
// ---------------------------------------------------------------------------

#[tokio::test]
async fn bad_input_an_unknown_event_or_client_exit_0_with_one_line() {
    let d = Daemon::start(&[]);
    let (_t, dir) = project();
    let home = d.home_path();
    for event in Agent::Claude.events() {
        let out = run_raw(home, event, "claude", b"not json").await;
        out.silent();
        assert!(out.one_line().contains("not JSON"), "{event}: {out:?}");
    }
    let out = run_raw(home, "stop", "codex", b"[1, 2]").await;
    out.silent();
    assert!(out.one_line().contains("not a JSON object"), "{out:?}");

    let good = input(Agent::Claude, "session-start", SID_A, &dir).to_string();
    let out = run_raw(home, "bogus", "claude", good.as_bytes()).await;
    out.silent();
    assert!(
        out.one_line().contains("unknown event \"bogus\""),
        "{out:?}"
    );
    let out = run_raw(home, "session-start", "nope", good.as_bytes()).await;
    out.silent();
    assert!(
        out.one_line().contains("unknown client \"nope\""),
        "{out:?}"
    );
    // None of it joined anything.
    assert_eq!(peers_named(&d, "myapp").await, Vec::<String>::new());
}

// ---------------------------------------------------------------------------
// 8. session-end.
// ---------------------------------------------------------------------------

#[tokio::test]
async fn session_end_takes_the_peer_offline() {
    let d = Daemon::start(&[]);
    let cases = [
        (Agent::Claude, "prompt_input_exit"),
        (Agent::Claude, "other"),
        (Agent::Codex, "other"),
    ];
    for (i, (agent, reason)) in cases.into_iter().enumerate() {
        let t = tempfile::tempdir().unwrap();
        let dir = t.path().join(format!("app{i}"));
        std::fs::create_dir(&dir).unwrap();
        let name = format!("app{i}");
        let s = Session::new(&d, agent, &format!("sess-end-{i}"), &dir);
        context(&s.run("session-start").await, "SessionStart");
        assert_eq!(status(&d, &name).await, "online");
        let out = s
            .run_with("session-end", |v| v["reason"] = json!(reason))
            .await;
        out.silent();
        assert_eq!(out.stderr, "", "{out:?}");
        assert_eq!(status(&d, &name).await, "offline", "{agent:?} {reason}");
    }
}

#[tokio::test]
async fn a_clear_keeps_the_peer_for_the_next_session_id_of_the_same_process() {
    let d = Daemon::start(&[]);
    let (_t, dir) = project();
    let alice = d.peer("alice", None).await;
    let s = Session::new(&d, Agent::Claude, SID_A, &dir);
    context(&s.run("session-start").await, "SessionStart");
    s.run("user-prompt-submit").await.silent();

    // `/clear`: SessionEnd (reason clear) for the old id, then SessionStart
    // (source clear) with a new id, in the same client process.
    let out = s
        .run_with("session-end", |v| v["reason"] = json!("clear"))
        .await;
    out.silent();
    assert_eq!(status(&d, "myapp").await, "busy", "a clear is not an end");
    let id = alice
        .notify(&note("myapp", "NOTE-after-clear"))
        .await
        .unwrap()
        .delivery_id;
    let s2 = Session::new(&d, Agent::Claude, SID_B, &dir);
    let ctx = context(
        &s2.run_with("session-start", |v| v["source"] = json!("clear"))
            .await,
        "SessionStart",
    );
    assert!(ctx.contains("peer \"myapp\""), "{ctx}");
    assert!(ctx.contains("NOTE-after-clear"), "{ctx}");
    assert_confirmed_by_hook(&d, "myapp", &id).await;
    assert_eq!(peers_named(&d, "myapp").await, ["myapp"]);
    // The new id's hooks act as the same peer.
    s2.run("stop").await.silent();
    assert_eq!(status(&d, "myapp").await, "idle");
    // A real end under the new id takes it offline.
    s2.run("session-end").await.silent();
    assert_eq!(status(&d, "myapp").await, "offline");
}

// ---------------------------------------------------------------------------
// 9. wait (Claude Code asyncRewake).
// ---------------------------------------------------------------------------

/// `pid` holds a flock on the file at `path` (per /proc/locks).
fn holds_flock(pid: u32, path: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    let Ok(ino) = std::fs::metadata(path).map(|m| m.ino()) else {
        return false;
    };
    std::fs::read_to_string("/proc/locks")
        .unwrap()
        .lines()
        .any(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            f.get(1) == Some(&"FLOCK")
                && f.get(4) == Some(&pid.to_string().as_str())
                && f.get(5)
                    .and_then(|d| d.rsplit(':').next())
                    .is_some_and(|i| i == ino.to_string())
        })
}

#[tokio::test]
async fn wait_wakes_an_idle_session_with_a_note_and_only_one_waits() {
    let d = Daemon::start(&[]);
    let (_t, dir) = project();
    let alice = d.peer("alice", None).await;
    let s = Session::new(&d, Agent::Claude, SID_A, &dir);
    context(&s.run("session-start").await, "SessionStart");
    s.run("stop").await.silent();
    assert_eq!(status(&d, "myapp").await, "idle");

    let waiter = s.spawn("wait").await;
    let pid = waiter.id().unwrap();
    // It holds the session's waiter lock.
    let sessions = d.home_path().join("sessions");
    eventually(Duration::from_secs(30), "the waiter's lock", || async {
        std::fs::read_dir(&sessions)
            .ok()?
            .flatten()
            .map(|e| e.path())
            .find(|p| p.to_string_lossy().ends_with(".wait") && holds_flock(pid, p))
    })
    .await;

    // A second waiter for the same session leaves it to the first.
    let second = s.run("wait").await;
    second.silent();
    assert_eq!(second.stderr, "", "{second:?}");

    let id = alice
        .notify(&note("myapp", "NOTE-wake review my PR"))
        .await
        .unwrap()
        .delivery_id;
    let out = finish(waiter, Duration::from_secs(30)).await;
    assert_eq!(out.code, 2, "{out:?}");
    assert_eq!(out.stdout, "", "{out:?}");
    assert!(out.stderr.contains("NOTE-wake review my PR"), "{out:?}");
    assert!(out.stderr.contains("(myapp)"), "{out:?}");
    assert_confirmed_by_hook(&d, "myapp", &id).await;
}

#[tokio::test]
async fn wait_ends_quietly_when_the_session_works_again() {
    let d = Daemon::start(&[]);
    let (_t, dir) = project();
    let alice = d.peer("alice", None).await;
    let s = Session::new(&d, Agent::Claude, SID_A, &dir);
    context(&s.run("session-start").await, "SessionStart");
    // Busy (a prompt runs): the waiter has nothing to wake.
    s.run("user-prompt-submit").await.silent();
    let out = s.run("wait").await;
    out.silent();
    assert_eq!(out.stderr, "", "{out:?}");
    // Nothing was taken: a note sent now waits for the session's hooks.
    let id = alice
        .notify(&note("myapp", "NOTE-not-for-wait"))
        .await
        .unwrap()
        .delivery_id;
    assert_open(&d, "myapp", &id).await;
    // A session with no record (no session-start ran) has no waiter.
    let other = Session::new(&d, Agent::Claude, SID_B, &dir);
    let out = other.run("wait").await;
    out.silent();
    assert_open(&d, "myapp", &id).await;
}

/// A hook command line this binary does not parse (an older or newer
/// setup's) still exits 0 with one line: clap's usage exit 2 would be
/// "block" to Claude Code.
#[test]
fn a_hook_command_line_it_cannot_parse_exits_0_with_one_line() {
    let home = tempfile::tempdir().unwrap();
    for args in [
        &["hook", "stop", "--client", "claude", "--bogus"][..],
        &["hook"][..],
        &["--home", "/nonexistent", "hook", "--nope"][..],
    ] {
        let out = std::process::Command::new(BIN)
            .env_clear()
            .env("REPOWIRE_HOME", home.path())
            .args(args)
            .stdin(std::process::Stdio::null())
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(0), "{args:?}");
        assert!(out.stdout.is_empty(), "{args:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(err.lines().count(), 1, "{args:?}: {err}");
        assert!(err.contains("nothing done"), "{err}");
    }
    // Other commands keep clap's usage exit.
    let out = std::process::Command::new(BIN)
        .args(["peer", "--bogus"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
}

/// A session id that cannot be one is refused (one line, nothing done),
/// not ignored: the hook would otherwise guess the session from its
/// process and could act as another session's peer.
#[tokio::test]
async fn a_session_id_that_cannot_be_one_is_refused() {
    let d = Daemon::start(&[]);
    let (_t, dir) = project();
    let s = Session::new(&d, Agent::Claude, SID_A, &dir);
    context(&s.run("session-start").await, "SessionStart");
    let bob = d.peer("bob", None).await;
    let name = peers_named(&d, "")
        .await
        .into_iter()
        .find(|n| n != "bob")
        .unwrap();
    bob.notify(&note(&name, "for session A only"))
        .await
        .unwrap();
    let bad = Session::new(&d, Agent::Claude, "../../etc/x", &dir);
    let out = bad.run("user-prompt-submit").await;
    assert_eq!(out.code, 0);
    assert_eq!(out.stdout, "", "{out:?}");
    assert!(out.stderr.contains("session id"), "{out:?}");
    assert_eq!(out.stderr.lines().count(), 1);
    // A's note is still A's.
    let ctx = context(&s.run("user-prompt-submit").await, "UserPromptSubmit");
    assert!(ctx.contains("for session A only"), "{ctx}");
}

/// A long message is shown whole: what a hook confirms is what it showed.
#[tokio::test]
async fn a_long_message_is_shown_whole() {
    let d = Daemon::start(&[]);
    let (_t, dir) = project();
    let s = Session::new(&d, Agent::Codex, SID_B, &dir);
    context(&s.run("session-start").await, "SessionStart");
    let name = peers_named(&d, "").await.into_iter().next().unwrap();
    let long = format!("{}END", "é".repeat(30_000));
    d.peer("bob", None)
        .await
        .notify(&note(&name, &long))
        .await
        .unwrap();
    let ctx = context(&s.run("user-prompt-submit").await, "UserPromptSubmit");
    assert!(ctx.contains(&long), "cut: {} bytes", ctx.len());
}
