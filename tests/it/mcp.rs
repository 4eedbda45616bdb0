//! `repowire mcp` with a real MCP client (rmcp) over a child process: two
//! sessions join as peers, one asks, the other answers.

use crate::support::*;
use rmcp::ServiceExt;
use rmcp::model::CallToolRequestParams;
use rmcp::service::{RoleClient, RunningService};
use rmcp::transport::{ConfigureCommandExt, TokioChildProcess};
use serde_json::{Value, json};

pub fn transport(d: &Daemon, name: &str, delivery: &str) -> TokioChildProcess {
    transport_with(d, &["--name", name, "--delivery", delivery])
}

/// `repowire mcp ARGS` (backend claude-code) in the daemon's home.
pub fn transport_with(d: &Daemon, args: &[&str]) -> TokioChildProcess {
    let home = d.home_path().to_path_buf();
    let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
    TokioChildProcess::new(tokio::process::Command::new(BIN).configure(|c| {
        c.env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("REPOWIRE_HOME", &home)
            .args(["mcp", "--backend", "claude-code"])
            .args(&args);
    }))
    .unwrap()
}

/// A session that takes its deliveries with the inbox tool.
pub async fn session(d: &Daemon, name: &str) -> RunningService<RoleClient, ()> {
    ().serve(transport(d, name, "pull"))
        .await
        .expect("mcp session")
}

/// A pull session that joins as `name` itself (not NAME-2), retried while
/// an earlier session of that name is still exiting; with its whoami.
pub async fn session_when_free(d: &Daemon, name: &str) -> (RunningService<RoleClient, ()>, Value) {
    eventually(
        std::time::Duration::from_secs(10),
        "the name is free",
        || async {
            let s = session(d, name).await;
            let (_, me) = call(&s, "whoami", json!({})).await;
            if me["name"] == name {
                return Some((s, me));
            }
            s.cancel().await.unwrap();
            None
        },
    )
    .await
}

/// A client that records the channel events the server pushes; it may
/// introduce itself as Claude Code, and say it reads channel events.
#[derive(Clone)]
pub struct Catcher {
    tx: tokio::sync::mpsc::UnboundedSender<Value>,
    claude: bool,
    channels: bool,
}

impl Catcher {
    pub fn new(tx: tokio::sync::mpsc::UnboundedSender<Value>) -> Self {
        Catcher {
            tx,
            claude: false,
            channels: false,
        }
    }

    /// Claude Code with the channel enabled (`experimental["claude/channel"]`).
    pub fn claude(tx: tokio::sync::mpsc::UnboundedSender<Value>) -> Self {
        Catcher {
            tx,
            claude: true,
            channels: true,
        }
    }

    /// Claude Code that does not say it reads channel events.
    pub fn claude_without_channels(tx: tokio::sync::mpsc::UnboundedSender<Value>) -> Self {
        Catcher {
            tx,
            claude: true,
            channels: false,
        }
    }
}

impl rmcp::ClientHandler for Catcher {
    fn get_info(&self) -> rmcp::model::ClientConfig {
        let mut caps = rmcp::model::ClientCapabilities::default();
        if self.channels {
            let mut e = rmcp::model::ExperimentalCapabilities::new();
            e.insert("claude/channel".into(), serde_json::Map::new());
            caps.experimental = Some(e);
        }
        let who = if self.claude {
            rmcp::model::Implementation::new("claude-code", "2.1.0")
        } else {
            rmcp::model::Implementation::default()
        };
        rmcp::model::ClientConfig::new(caps, who)
    }

    async fn on_custom_notification(
        &self,
        n: rmcp::model::CustomNotification,
        _ctx: rmcp::service::NotificationContext<RoleClient>,
    ) {
        if n.method == "notifications/claude/channel" {
            let _ = self.tx.send(n.params.unwrap_or(Value::Null));
        }
    }
}

/// Call a tool: (is_error, structured content).
pub async fn call<C: rmcp::service::Service<RoleClient>>(
    s: &RunningService<RoleClient, C>,
    tool: &str,
    args: Value,
) -> (bool, Value) {
    let mut p = CallToolRequestParams::new(tool.to_string());
    if let Value::Object(m) = args {
        p = p.with_arguments(m);
    }
    let r = s.call_tool(p).await.expect("tool call");
    (
        r.is_error.unwrap_or(false),
        r.structured_content.unwrap_or(Value::Null),
    )
}

#[tokio::test]
async fn two_sessions_ask_and_answer() {
    let d = Daemon::start(&[]);
    let alice = session(&d, "alice").await;
    let bob = session(&d, "bob").await;
    let tools: Vec<String> = alice
        .list_all_tools()
        .await
        .unwrap()
        .into_iter()
        .map(|t| t.name.to_string())
        .collect();
    for t in [
        "whoami",
        "list_peers",
        "ask",
        "wait_on_ack",
        "answer",
        "ack",
        "notify_peer",
        "broadcast",
        "inbox",
    ] {
        assert!(tools.contains(&t.to_string()), "{t} in {tools:?}");
    }
    let (err, me) = call(&alice, "whoami", json!({})).await;
    assert!(!err);
    assert_eq!(me["name"], "alice");
    assert_eq!(me["backend"], "claude-code");
    let (_, peers) = call(&alice, "list_peers", json!({})).await;
    let names: Vec<&str> = peers["peers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["bob"]);
    // alice asks bob; bob takes his inbox and answers; alice's wait returns it.
    let (err, asked) = call(
        &alice,
        "ask",
        json!({"peer_name": "bob", "query": "which branch?"}),
    )
    .await;
    assert!(!err, "{asked}");
    let id = asked["correlation_id"].as_str().unwrap().to_string();
    let (_, inbox) = call(&bob, "inbox", json!({})).await;
    assert_eq!(inbox["deliveries"][0]["correlation_id"], id.as_str());
    let (err, _) = call(
        &bob,
        "answer",
        json!({"correlation_id": id, "text": "main"}),
    )
    .await;
    assert!(!err);
    let (_, waited) = call(
        &alice,
        "wait_on_ack",
        json!({"correlation_id": id, "timeout_seconds": 5}),
    )
    .await;
    assert_eq!(waited["done"], true);
    assert_eq!(waited["ask"]["answer"], "main");
    // Errors are isError results with the daemon's code.
    let (err, e) = call(&alice, "ask", json!({"peer_name": "nobody", "query": "?"})).await;
    assert!(err);
    assert_eq!(e["code"], "unknown_peer");
    let (err, e) = call(&alice, "notify_peer", json!({"peer_name": "bob"})).await;
    assert!(err, "a missing parameter is refused: {e}");
    // Orchestration, jobs, reviews, schedules.
    let (err, r) = call(&alice, "claim_orchestrator_role", json!({})).await;
    assert!(!err, "{r}");
    let (_, st) = call(&bob, "orchestrator_status", json!({})).await;
    assert_eq!(st["name"], "alice");
    let (err, job) = call(
        &alice,
        "job_create",
        json!({"title": "tidy the logs", "prompt": "rotate them", "assigned_peer": "bob"}),
    )
    .await;
    assert!(!err, "{job}");
    let jid = job["job_id"].as_str().unwrap().to_string();
    let (err, _) = call(
        &bob,
        "job_update",
        json!({"job_id": jid, "state": "running", "progress_note": "on it"}),
    )
    .await;
    assert!(!err);
    call(&bob, "job_update", json!({"job_id": jid, "state": "succeeded", "result_summary": "done", "result_data": {"files": 3}})).await;
    let (_, res) = call(&alice, "job_result", json!({"job_id": jid})).await;
    assert_eq!(res["result_data"]["files"], 3);
    let (_, list) = call(&alice, "job_list", json!({"state": "succeeded"})).await;
    assert_eq!(list["jobs"].as_array().unwrap().len(), 1);
    let (err, e) = call(
        &bob,
        "job_update",
        json!({"job_id": jid, "state": "exploded"}),
    )
    .await;
    assert!(err && e["code"] == "bad_request", "{e}");
    let (err, rr) = call(
        &alice,
        "request_review",
        json!({"ref": "pr-3", "head_sha": "abc123"}),
    )
    .await;
    assert!(!err, "{rr}");
    let (_, q) = call(&bob, "review_queue", json!({})).await;
    assert_eq!(q["queue"][0]["my_action"], "review-needed");
    call(
        &bob,
        "mark_reviewed",
        json!({"pr_url": "pr-3", "verdict": "approve"}),
    )
    .await;
    let (_, q) = call(&bob, "review_queue", json!({})).await;
    assert_eq!(q["queue"][0]["my_action"], "none-needed");
    let (err, s) = call(
        &alice,
        "schedule_self",
        json!({"text": "check CI", "fire_at": "1h"}),
    )
    .await;
    assert!(!err, "{s}");
    let (_, sl) = call(&alice, "schedule_list", json!({})).await;
    assert_eq!(sl["schedules"].as_array().unwrap().len(), 1);
    let (err, _) = call(
        &alice,
        "schedule_delete",
        json!({"schedule_id": s["schedule_id"]}),
    )
    .await;
    assert!(!err);
    let (_, ps) = call(&alice, "persona_status", json!({})).await;
    assert_eq!(ps["persona"], Value::Null);
    alice.cancel().await.unwrap();
    // The session left: alice is offline now; a new session resumes the same peer.
    let admin = d.admin();
    let gone = eventually(std::time::Duration::from_secs(10), "offline", || async {
        let p = admin.describe("alice", None).await.unwrap();
        (p.status.as_str() == "offline").then_some(p)
    })
    .await;
    // (The old process may still be exiting: until it is gone, a new
    // session is alice-2.)
    let (again, me) = session_when_free(&d, "alice").await;
    assert_eq!(me["peer_id"], gone.peer_id.as_str(), "the same identity");
    again.cancel().await.unwrap();
    bob.cancel().await.unwrap();
}

/// The tool list with its schemas is snapshotted (a change must be
/// deliberate), and docs/mcp-tools.md is generated from the same
/// definitions: `REPOWIRE_BLESS=1 cargo test` rewrites it.
#[tokio::test]
async fn tool_list_snapshot_and_generated_reference() {
    let d = Daemon::start(&[]);
    let s = session(&d, "doc").await;
    let mut tools = s.list_all_tools().await.unwrap();
    tools.sort_by(|a, b| a.name.cmp(&b.name));
    let listed: Vec<Value> = tools
        .iter()
        .map(|t| json!({"name": t.name, "description": t.description, "input_schema": t.input_schema}))
        .collect();
    insta::assert_json_snapshot!("mcp_tools", listed);
    // Every tool and every parameter says what it is for.
    for t in &tools {
        assert!(
            t.description.as_deref().is_some_and(|d| d.len() > 20),
            "{} needs a description",
            t.name
        );
        if let Some(props) = t.input_schema.get("properties").and_then(|p| p.as_object()) {
            for (k, v) in props {
                let d = v.get("description").and_then(|d| d.as_str()).unwrap_or("");
                assert!(!d.is_empty(), "{}({k}) needs a description", t.name);
            }
        }
    }
    let mut doc = String::from(
        "# MCP tools\n\n`repowire mcp` serves these tools over stdio (generated from the tool definitions; \
         a test fails when this file is stale: `REPOWIRE_BLESS=1 cargo test` rewrites it). Results are JSON \
         (text and structured content); failures are `isError` results with `{code, message}`. \
         A parameter a tool does not know is refused with `bad_request`, naming the closest known one \
         (it is never silently ignored). The server introduces itself as `repowire` with its version.\n\n\
         ## Aliases\n\nrepowire 0.17's parameter names are accepted where ours differ, so existing prompts \
         keep working (giving both names is refused). A 0.17 parameter with no counterpart here (`job_create`'s \
         `circle` or `kind`, `job_update`'s `attempt_id`, `attachments`, …) is refused as unknown rather than \
         dropped:\n\n| tool | 0.17 name | our name |\n|---|---|---|\n",
    );
    for (tool, old, ours) in repowire::mcp::ALIASES {
        doc.push_str(&format!("| `{tool}` | `{old}` | `{ours}` |\n"));
    }
    for t in &tools {
        doc.push_str(&format!(
            "\n## `{}`\n\n{}\n",
            t.name,
            t.description.as_deref().unwrap_or("")
        ));
        let props = t.input_schema.get("properties").and_then(|p| p.as_object());
        let required: Vec<&str> = t
            .input_schema
            .get("required")
            .and_then(|r| r.as_array())
            .map(|r| r.iter().filter_map(|x| x.as_str()).collect())
            .unwrap_or_default();
        if let Some(props) = props.filter(|p| !p.is_empty()) {
            doc.push_str("\n| parameter | required | description |\n|---|---|---|\n");
            for (k, v) in props {
                let desc = v
                    .get("description")
                    .and_then(|d| d.as_str())
                    .unwrap_or("")
                    .replace('\n', " ");
                doc.push_str(&format!(
                    "| `{k}` | {} | {desc} |\n",
                    if required.contains(&k.as_str()) {
                        "yes"
                    } else {
                        "no"
                    }
                ));
            }
        }
    }
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/docs/mcp-tools.md");
    if std::env::var("REPOWIRE_BLESS").is_ok() {
        std::fs::write(path, &doc).unwrap();
    }
    let on_disk = std::fs::read_to_string(path).unwrap_or_default();
    assert_eq!(
        on_disk, doc,
        "docs/mcp-tools.md is stale: run REPOWIRE_BLESS=1 cargo test"
    );
    s.cancel().await.unwrap();
}

#[tokio::test]
async fn deliveries_are_pushed_as_channel_events() {
    let d = Daemon::start(&[]);
    let alice = session(&d, "alice").await;
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let bob = Catcher::new(tx)
        .serve(transport(&d, "bob", "push"))
        .await
        .unwrap();
    let caps = bob.peer_info().unwrap().capabilities.clone();
    assert!(
        caps.experimental
            .as_ref()
            .is_some_and(|e| e.contains_key("claude/channel")),
        "the server declares the channel capability: {caps:?}"
    );
    let (_, asked) = call(
        &alice,
        "ask",
        json!({"peer_name": "bob", "query": "lunch at noon?"}),
    )
    .await;
    let id = asked["correlation_id"].as_str().unwrap().to_string();
    let ev = tokio::time::timeout(std::time::Duration::from_secs(15), rx.recv())
        .await
        .expect("a pushed event")
        .unwrap();
    assert_eq!(ev["meta"]["kind"], "ask");
    assert_eq!(ev["meta"]["from"], "alice");
    assert_eq!(ev["meta"]["correlation_id"], id.as_str());
    let content = ev["content"].as_str().unwrap();
    assert!(
        content.contains("lunch at noon?") && content.contains(&id),
        "{content}"
    );
    // Emitted once, recorded as pushed and not confirmed: a push is a hint
    // (the inbox tool or a hook confirms it; tests/it/truth.rs).
    let bob_client = d
        .admin()
        .with_identity(Some(d.admin_token()), Some("bob".into()));
    eventually(
        std::time::Duration::from_secs(10),
        "recorded as pushed",
        || async {
            let held = bob_client.peek(10).await.unwrap().deliveries;
            (held.len() == 1 && held[0].pushed).then_some(())
        },
    )
    .await;
    assert!(rx.try_recv().is_err(), "not pushed twice");
    bob.cancel().await.unwrap();
    alice.cancel().await.unwrap();
}

#[tokio::test]
async fn a_daemon_restart_loses_and_doubles_nothing() {
    let mut d = Daemon::start(&[]);
    let alice_t = d.peer_token("alice", None).await;
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let bob = Catcher::new(tx)
        .serve(transport(&d, "bob", "push"))
        .await
        .unwrap();
    // A pull session too: it has no push loop to notice the restart.
    let carl = session(&d, "carl").await;
    // Restart the daemon (kill -9, new port) with bob's session connected.
    d.kill9();
    d.spawn();
    // carl's next tool call follows daemon.json to the new port.
    let (err, me) = call(&carl, "whoami", json!({})).await;
    assert!(!err, "{me}");
    assert_eq!(me["name"], "carl");
    carl.cancel().await.unwrap();
    let alice = d.admin().with_identity(Some(alice_t), None);
    for i in 0..5 {
        alice
            .notify(&repowire::api::NotifyReq {
                to: "bob".into(),
                text: format!("after restart {i}"),
                ..Default::default()
            })
            .await
            .unwrap();
    }
    let mut got = Vec::new();
    while got.len() < 5 {
        let ev = tokio::time::timeout(std::time::Duration::from_secs(20), rx.recv())
            .await
            .expect("pushed after the restart")
            .unwrap();
        got.push(ev["content"].as_str().unwrap().to_string());
    }
    for i in 0..5 {
        assert!(
            got.iter()
                .any(|c| c.contains(&format!("after restart {i}"))),
            "{got:?}"
        );
    }
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    assert!(rx.try_recv().is_err(), "each exactly once");
    bob.cancel().await.unwrap();
}
