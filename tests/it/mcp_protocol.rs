//! Protocol fidelity of `repowire mcp`, with a real rmcp client over a child
//! process: how the server names itself, unknown and 0.17 parameter names,
//! the backend taken from the client's name, `inbox` with `recent`, and
//! plain (uncoloured) logs when stderr is not a terminal. (Other clients —
//! the MCP Inspector, the Python SDK on protocol 2026-07-28: `mcp_clients.rs`.)

use crate::mcp::{call, session};
use crate::mcp_tools::{fails, works};
use crate::support::*;
use rmcp::ServiceExt;
use rmcp::transport::{ConfigureCommandExt, TokioChildProcess};
use serde_json::json;

/// A client that introduces itself by `name`.
#[derive(Clone)]
struct Named(&'static str);

impl rmcp::ClientHandler for Named {
    fn get_info(&self) -> rmcp::model::ClientConfig {
        rmcp::model::ClientConfig::new(
            Default::default(),
            rmcp::model::Implementation::new(self.0, "1.0.0"),
        )
    }
}

/// `repowire mcp --name NAME --delivery pull ARGS` with `env` (and nothing
/// else from the test's environment).
fn bare(d: &Daemon, name: &str, args: &[&str], env: &[(&str, &str)]) -> TokioChildProcess {
    let home = d.home_path().to_path_buf();
    let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
    let env: Vec<(String, String)> = env
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let name = name.to_string();
    TokioChildProcess::new(tokio::process::Command::new(BIN).configure(move |c| {
        c.env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("REPOWIRE_HOME", &home)
            .envs(env.iter().map(|(k, v)| (k, v)))
            .args(["mcp", "--name", &name, "--delivery", "pull"])
            .args(&args);
    }))
    .unwrap()
}

#[tokio::test]
async fn the_server_is_repowire_with_its_version() {
    let d = Daemon::start(&[]);
    let s = session(&d, "alice").await;
    let info = s.peer_info().expect("initialize result");
    let me = info.server_info.clone().expect("serverInfo");
    assert_eq!(me.name, "repowire");
    assert_eq!(me.version, env!("CARGO_PKG_VERSION"));
    assert_eq!(me.title.as_deref(), Some("repowire mesh"));
    s.cancel().await.unwrap();
}

/// A misspelled parameter is refused on every tool (naming the closest
/// known one) instead of being dropped; repowire 0.17's names work.
#[tokio::test]
async fn unknown_parameters_are_refused_and_0_17_names_accepted() {
    let d = Daemon::start(&[]);
    let alice = session(&d, "alice").await;
    let _bob = d.peer("bob", None).await;
    let _carol = d.peer("carol", Some("ops")).await;

    // `cirle` would have sent to the default circle.
    let (err, v) = call(
        &alice,
        "notify_peer",
        json!({"peer_name": "bob", "message": "hi", "cirle": "ops"}),
    )
    .await;
    assert!(err, "{v}");
    assert_eq!(v["code"], "bad_request");
    let m = v["message"].as_str().unwrap();
    assert!(
        m.contains("`cirle`") && m.contains("did you mean `circle`"),
        "{m}"
    );
    // Every tool, with or without parameters of its own.
    let tools = alice.list_all_tools().await.unwrap();
    assert!(tools.len() > 30);
    for t in &tools {
        let code = fails(&alice, &t.name, json!({"no_such_parameter": 1})).await;
        assert_eq!(code, "bad_request", "{}", t.name);
    }
    assert!(
        tools
            .iter()
            .all(|t| t.input_schema.get("additionalProperties") == Some(&json!(false))),
        "the schemas say so too"
    );
    let v = call(&alice, "whoami", json!({"verbose": true})).await.1;
    assert!(
        v["message"].as_str().unwrap().contains("no parameters"),
        "{v}"
    );
    // Nothing was sent by the refused calls.
    let bob_inbox = d.cli(&["--as", "bob", "--json", "peer", "inbox", "--peek"]);
    assert_eq!(bob_inbox.ok().json().as_array().map(Vec::len), Some(0));

    // repowire 0.17's names: assigned_peer_id, owner_peer_id.
    let job = works(
        &alice,
        "job_create",
        json!({"title": "old prompt", "assigned_peer_id": "bob", "owner_peer_id": "alice"}),
    )
    .await;
    let jid = job["job_id"].as_str().unwrap().to_string();
    let st = works(&alice, "job_status", json!({"job_id": jid})).await;
    assert_eq!(st["assignee"], "bob", "{st}");
    let mine = works(&alice, "job_list", json!({"owner_peer_id": "alice"})).await;
    assert_eq!(mine["jobs"].as_array().unwrap().len(), 1, "{mine}");
    let none = works(&alice, "job_list", json!({"owner_peer_id": "bob"})).await;
    assert_eq!(none["jobs"].as_array().unwrap().len(), 0, "{none}");
    // Both names at once is ambiguous.
    let code = fails(
        &alice,
        "job_create",
        json!({"title": "t", "assigned_peer": "bob", "assigned_peer_id": "bob"}),
    )
    .await;
    assert_eq!(code, "bad_request");
    // result_data is a JSON object (what the schema says).
    let code = fails(
        &alice,
        "job_update",
        json!({"job_id": jid, "result_data": [1, 2]}),
    )
    .await;
    assert_eq!(code, "bad_request");
    // A mistyped value is echoed cut to 200 characters, as at the HTTP edge
    // (rmcp's decode error quotes the whole value: a 100 KB reply).
    for args in [
        json!({"title": "t", "max_attempts": "x".repeat(100_000)}),
        json!({"title": "t", "tags": "y".repeat(100_000)}),
    ] {
        let (err, v) = call(&alice, "job_create", args).await;
        assert!(err && v["code"] == "bad_request", "{v}");
        let m = v["message"].as_str().unwrap();
        assert!(
            m.len() < 1000 && m.contains("more chars"),
            "{} bytes",
            m.len()
        );
    }
    alice.cancel().await.unwrap();
}

/// The backend is the client's own name (`clientInfo.name`) before any
/// environment guess; `--backend` is kept; an SDK's default name says
/// nothing.
#[tokio::test]
async fn the_backend_comes_from_the_client_name() {
    let d = Daemon::start(&[]);
    let backend = |s: serde_json::Value| s["backend"].as_str().unwrap_or("").to_string();
    // Codex gives its servers no CODEX_HOME; Claude Code's variable is set
    // in this (made-up) environment, and the name still wins.
    let s = Named("codex-mcp-client")
        .serve(bare(&d, "cx", &[], &[("CLAUDECODE", "1")]))
        .await
        .unwrap();
    assert_eq!(backend(call(&s, "whoami", json!({})).await.1), "codex");
    s.cancel().await.unwrap();
    let s = Named("claude-code")
        .serve(bare(&d, "cc", &[], &[]))
        .await
        .unwrap();
    assert_eq!(
        backend(call(&s, "whoami", json!({})).await.1),
        "claude-code"
    );
    s.cancel().await.unwrap();
    let s = Named("Zed Agent")
        .serve(bare(&d, "zed", &[], &[]))
        .await
        .unwrap();
    assert_eq!(backend(call(&s, "whoami", json!({})).await.1), "zed-agent");
    s.cancel().await.unwrap();
    let s = Named("codex-mcp-client")
        .serve(bare(&d, "fixed", &["--backend", "gemini"], &[]))
        .await
        .unwrap();
    assert_eq!(backend(call(&s, "whoami", json!({})).await.1), "gemini");
    s.cancel().await.unwrap();
    let s = Named("rmcp")
        .serve(bare(&d, "env", &[], &[("CODEX_HOME", "/x")]))
        .await
        .unwrap();
    assert_eq!(backend(call(&s, "whoami", json!({})).await.1), "codex");
    s.cancel().await.unwrap();
}

/// `inbox` with `recent` shows what was taken as it is now: confirmed.
#[tokio::test]
async fn inbox_recent_shows_confirmed_deliveries_as_delivered() {
    let d = Daemon::start(&[]);
    let bob = session(&d, "bob").await;
    let alice = d.peer("alice", None).await;
    alice
        .notify(&repowire::api::NotifyReq {
            to: "bob".into(),
            text: "the build is green".into(),
            ..Default::default()
        })
        .await
        .unwrap();
    let taken = works(&bob, "inbox", json!({})).await;
    assert_eq!(taken["confirmed"], true, "{taken}");
    assert_eq!(taken["deliveries"].as_array().unwrap().len(), 1, "{taken}");
    let recent = works(&bob, "inbox", json!({"recent": true})).await;
    let d0 = &recent["deliveries"][0];
    assert_eq!(d0["text"], "the build is green", "{recent}");
    assert_eq!(d0["state"], "delivered", "{recent}");
    assert!(d0["lease_until_ms"].is_null(), "{recent}");
    bob.cancel().await.unwrap();
}

/// Logs on a stderr that is not a terminal (an MCP client's pipe, a log
/// file) carry no ANSI colour codes.
#[test]
fn logs_are_plain_when_stderr_is_not_a_terminal() {
    let d = Daemon::start(&[]);
    // A session whose client goes away at once, with debug logs.
    let out = std::process::Command::new(BIN)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("REPOWIRE_HOME", d.home_path())
        .env("RUST_LOG", "debug")
        .args(["mcp", "--name", "logger", "--delivery", "pull"])
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("DEBUG"), "debug logs expected: {err}");
    assert!(!err.contains('\u{1b}'), "ANSI escape in: {err:?}");
}

/// The input schemas keep to the portable subset, whichever checker reads
/// them: one `type` per property (no `[X, "null"]`), no integer `format`s
/// (`uint64`, `int64`: not JSON Schema formats), and every property typed.
#[tokio::test]
async fn the_schemas_are_portable() {
    fn walk(tool: &str, at: &str, v: &serde_json::Value) {
        let Some(o) = v.as_object() else { return };
        if let Some(t) = o.get("type") {
            assert!(t.is_string(), "{tool} {at}: type {t}");
        }
        if let Some(f) = o.get("format").and_then(|f| f.as_str()) {
            assert!(!f.contains("int"), "{tool} {at}: format {f}");
        }
        if let Some(props) = o.get("properties").and_then(|p| p.as_object()) {
            for (k, p) in props {
                assert!(p.get("type").is_some(), "{tool} {at}.{k} has no type: {p}");
            }
        }
        for (k, child) in o {
            walk(tool, &format!("{at}.{k}"), child);
        }
    }
    let d = Daemon::start(&[]);
    let s = session(&d, "alice").await;
    for t in s.list_all_tools().await.unwrap() {
        walk(
            &t.name,
            "inputSchema",
            &serde_json::Value::Object((*t.input_schema).clone()),
        );
    }
    s.cancel().await.unwrap();
}
