//! Whole `repowire mcp` sessions: the raw stdout of a full session is
//! nothing but JSON-RPC, and deliveries that were in flight when the daemon
//! died arrive exactly once.

use crate::mcp::{Catcher, call, transport};
use crate::support::*;
use rmcp::ServiceExt;
use serde_json::{Value, json};
use std::collections::HashMap;
use std::process::Stdio;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};

/// Drive a session by hand over raw stdio (initialize, list, calls that
/// succeed and fail, a pushed message, end of input) with debug logging on,
/// and check every byte on stdout belongs to a JSON-RPC message.
#[tokio::test]
async fn stdout_carries_only_json_rpc_across_a_session() {
    let d = Daemon::start(&[]);
    let alice = d.peer("alice", None).await;
    let mut child = tokio::process::Command::new(BIN)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("REPOWIRE_HOME", d.home_path())
        .env("RUST_LOG", "debug")
        .args(["mcp", "--name", "pure", "--delivery", "push"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let mut stderr = child.stderr.take().unwrap();
    let stderr_task = tokio::spawn(async move {
        let mut s = String::new();
        let _ = stderr.read_to_string(&mut s).await;
        s
    });
    let mut send = async move |v: Value| {
        let mut line = v.to_string();
        line.push('\n');
        stdin.write_all(line.as_bytes()).await.unwrap();
        stdin.flush().await.unwrap();
    };
    let mut lines: Vec<String> = Vec::new();
    let mut by_id: HashMap<i64, Value> = HashMap::new();
    let mut channel: Vec<Value> = Vec::new();
    // Read until `want` holds, keeping every raw line.
    macro_rules! read_until {
        ($want:expr) => {
            tokio::time::timeout(Duration::from_secs(20), async {
                while !$want(&by_id, &channel) {
                    let mut line = String::new();
                    let n = stdout.read_line(&mut line).await.unwrap();
                    assert!(n > 0, "stdout ended early; lines so far: {lines:?}");
                    let v: Value = serde_json::from_str(line.trim_end())
                        .unwrap_or_else(|e| panic!("not JSON on stdout ({e}): {line:?}"));
                    if let Some(id) = v["id"].as_i64() {
                        by_id.insert(id, v.clone());
                    }
                    if v["method"] == "notifications/claude/channel" {
                        channel.push(v.clone());
                    }
                    lines.push(line);
                }
            })
            .await
            .expect("the session answers")
        };
    }
    send(
        json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
        "protocolVersion": "2025-11-25", "capabilities": {},
        "clientInfo": {"name": "raw", "version": "0"}}}),
    )
    .await;
    read_until!(|m: &HashMap<i64, Value>, _: &Vec<Value>| m.contains_key(&1));
    send(json!({"jsonrpc": "2.0", "method": "notifications/initialized"})).await;
    send(json!({"jsonrpc": "2.0", "id": 2, "method": "tools/list"})).await;
    let call = |id: i64, name: &str, args: Value| {
        json!({"jsonrpc": "2.0", "id": id, "method": "tools/call",
               "params": {"name": name, "arguments": args}})
    };
    send(call(3, "whoami", json!({}))).await;
    send(call(4, "ask", json!({"peer_name": "nobody", "query": "?"}))).await;
    send(call(5, "notify_peer", json!({"peer_name": "alice"}))).await;
    send(call(6, "no_such_tool", json!({}))).await;
    send(call(
        7,
        "notify_peer",
        json!({"peer_name": "alice", "message": "hi"}),
    ))
    .await;
    alice
        .notify(&repowire::api::NotifyReq {
            to: "pure".into(),
            text: "pushed to you".into(),
            ..Default::default()
        })
        .await
        .unwrap();
    read_until!(
        |m: &HashMap<i64, Value>, c: &Vec<Value>| (2..=7).all(|i| m.contains_key(&i))
            && !c.is_empty()
    );
    // End of input ends the session; read stdout to its end.
    drop(send);
    let mut rest = String::new();
    stdout.read_to_string(&mut rest).await.unwrap();
    lines.extend(rest.lines().map(|l| format!("{l}\n")));
    let status = tokio::time::timeout(Duration::from_secs(10), child.wait())
        .await
        .expect("the session exits at end of input")
        .unwrap();
    assert!(status.success(), "{status:?}");
    for line in &lines {
        let v: Value = serde_json::from_str(line.trim_end())
            .unwrap_or_else(|e| panic!("not JSON-RPC on stdout ({e}): {line:?}"));
        assert_eq!(v["jsonrpc"], "2.0", "{line}");
        assert!(line.ends_with('\n') && line.matches('\n').count() == 1);
    }
    assert!(by_id[&2]["result"]["tools"].as_array().unwrap().len() > 30);
    assert_eq!(by_id[&3]["result"]["structuredContent"]["name"], "pure");
    // The same result as JSON text, for clients that read only content.
    let text: Value =
        serde_json::from_str(by_id[&3]["result"]["content"][0]["text"].as_str().unwrap()).unwrap();
    assert_eq!(text, by_id[&3]["result"]["structuredContent"]);
    for (id, code) in [(4, "unknown_peer"), (5, "bad_request")] {
        let r = &by_id[&id]["result"];
        assert_eq!(r["isError"], true, "{r}");
        assert_eq!(r["structuredContent"]["code"], code, "{r}");
    }
    assert!(
        by_id[&6].get("error").is_some() || by_id[&6]["result"]["isError"] == true,
        "an unknown tool is refused: {}",
        by_id[&6]
    );
    assert_ne!(by_id[&7]["result"]["isError"], true, "{}", by_id[&7]);
    assert!(
        channel[0]["params"]["content"]
            .as_str()
            .unwrap()
            .contains("pushed to you")
    );
    // The peer token (kept under <home>/mcp/) is in no output.
    let token_file = d.home_path().join("mcp/default@pure.token");
    let token = std::fs::read_to_string(&token_file).unwrap();
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(&token_file).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600, "the token file is private");
    assert!(token.trim().len() > 20);
    assert!(
        lines.iter().all(|l| !l.contains(token.trim())),
        "token on stdout"
    );
    // Logging was on, and it went to stderr (without the token).
    let logs = stderr_task.await.unwrap();
    assert!(!logs.contains(token.trim()), "token in the logs");
    assert!(
        logs.contains("DEBUG") || logs.contains("debug"),
        "debug logs on stderr: {logs:?}"
    );
}

/// Deliveries in flight when the daemon dies: bob's session is frozen
/// (SIGSTOP) while notes arrive, so the daemon hands some to its pending
/// long poll and keeps the rest; the daemon is killed -9 and restarted on
/// another port; bob resumes. Each note appears exactly once, also after
/// the leases of the lost hand-outs have expired.
#[tokio::test]
async fn deliveries_in_flight_at_a_daemon_crash_arrive_exactly_once() {
    let mut d = Daemon::start(&["--lease", "2s", "--manual-clock"]);
    let alice_t = d.peer_token("alice", None).await;
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let t = transport(&d, "bob", "push");
    let pid = t.id().expect("pid").to_string();
    let bob = Catcher::new(tx).serve(t).await.unwrap();
    let admin = d.admin();
    eventually(Duration::from_secs(10), "bob online", || async {
        let p = admin.describe("bob", None).await.ok()?;
        (p.route == "channel").then_some(())
    })
    .await;
    // A first note proves bob's push loop runs; let it settle back into its
    // long poll, then freeze it.
    d.admin()
        .with_identity(Some(alice_t.clone()), None)
        .notify(&repowire::api::NotifyReq {
            to: "bob".into(),
            text: "warm-up".into(),
            ..Default::default()
        })
        .await
        .unwrap();
    let first = tokio::time::timeout(Duration::from_secs(15), rx.recv())
        .await
        .expect("the warm-up is pushed")
        .unwrap();
    assert!(first["content"].as_str().unwrap().contains("warm-up"));
    let signal = |sig: &str| {
        let ok = std::process::Command::new("kill")
            .args([sig, &pid])
            .status()
            .unwrap()
            .success();
        assert!(ok, "kill {sig} {pid}");
    };
    let alice = d.admin().with_identity(Some(alice_t.clone()), None);
    let note = |i: usize| repowire::api::NotifyReq {
        to: "bob".into(),
        text: format!("note {i}"),
        ..Default::default()
    };
    let bob_view = d
        .admin()
        .with_identity(Some(d.admin_token()), Some("bob".into()));
    let leased = async || {
        for _ in 0..20 {
            let held = bob_view.peek(20).await.unwrap().deliveries;
            // Leased to the stream and not yet pushed (a pushed one stays
            // leased, its lease ended, until something confirms it).
            if held
                .iter()
                .any(|d| d.state.as_str() == "leased" && !d.pushed)
            {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        false
    };
    // Freeze bob while its long poll is open, so the next note is handed to
    // a session that cannot take it (tried again if the poll was not open).
    let mut sent = 0;
    let mut in_flight = false;
    for _ in 0..10 {
        tokio::time::sleep(Duration::from_millis(300)).await;
        signal("-STOP");
        alice.notify(&note(sent)).await.unwrap();
        sent += 1;
        if leased().await {
            in_flight = true;
            break;
        }
        signal("-CONT");
    }
    assert!(in_flight, "a note was handed to the frozen session");
    while sent < 8 {
        alice.notify(&note(sent)).await.unwrap();
        sent += 1;
    }
    d.kill9();
    d.spawn();
    signal("-CONT");
    let alice = d.admin().with_identity(Some(alice_t), None);
    for i in sent..sent + 3 {
        alice.notify(&note(i)).await.unwrap();
    }
    let total = sent + 3;
    let mut seen: HashMap<String, usize> = HashMap::new();
    let collect = |ev: Value, seen: &mut HashMap<String, usize>| {
        let c = ev["content"].as_str().unwrap().to_string();
        let text = c.rsplit(": ").next().unwrap().to_string();
        *seen.entry(text).or_default() += 1;
    };
    while seen.len() < total {
        let ev = tokio::time::timeout(Duration::from_secs(20), rx.recv())
            .await
            .unwrap_or_else(|_| panic!("only {seen:?} arrived"))
            .unwrap();
        collect(ev, &mut seen);
    }
    // Past every lease of the hand-outs lost in the crash (the clock moves,
    // bob's stream looks again at once): nothing again, however long we
    // give a duplicate to arrive.
    d.advance_clock(2_001).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    while let Ok(ev) = rx.try_recv() {
        collect(ev, &mut seen);
    }
    for i in 0..total {
        assert_eq!(seen.get(&format!("note {i}")), Some(&1), "{seen:?}");
    }
    // A push is a hint: every note (and the warm-up) is recorded as pushed
    // and waits, unconfirmed, for the inbox tool or a hook.
    let bob_view = d
        .admin()
        .with_identity(Some(d.admin_token()), Some("bob".into()));
    eventually(
        Duration::from_secs(10),
        "all recorded as pushed",
        || async {
            let held = bob_view.peek(20).await.unwrap().deliveries;
            (held.len() == total + 1 && held.iter().all(|d| d.pushed)).then_some(())
        },
    )
    .await;
    bob.cancel().await.unwrap();
}

/// Every kind of message reaches a pushing session as a channel event with
/// the id to act on: a job dispatch (job_id), a review request, a scheduled
/// note, a persona's check-in, a reply (correlation_id). An orchestrator
/// session gets its persona's identity text (`NAME.md`) at start.
#[tokio::test]
async fn every_kind_is_pushed_and_the_orchestrator_gets_its_identity() {
    let d = Daemon::start(&[]);
    let dir = d.home_path().join("personas");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("nudger.lua"),
        r#"--[[ nudger: every review to bob; check-ins nudge bob. ]]
function review(item, mesh)
  return route.assign("bob")
end
function checkin(ctx, mesh)
  return { route.notify("bob", "check-in: " .. ctx.args.topic) }
end
"#,
    )
    .unwrap();
    std::fs::write(
        dir.join("nudger.md"),
        "You are Nudger: small batches, short notes.",
    )
    .unwrap();
    d.cli(&[
        "orchestrator",
        "persona",
        "use",
        "nudger",
        "--circle",
        "default",
    ])
    .ok();
    let olga: rmcp::service::RunningService<rmcp::service::RoleClient, ()> = ()
        .serve(crate::mcp::transport_with(
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
    let info = olga.peer_info().unwrap();
    let instructions = info.instructions.clone().unwrap_or_default();
    assert!(
        instructions.contains("You are Nudger"),
        "the orchestrator's identity: {instructions}"
    );
    assert_eq!(
        call(&olga, "whoami", json!({})).await.1["role"],
        "orchestrator"
    );
    let alice = crate::mcp::session(&d, "alice").await;
    let plain = alice
        .peer_info()
        .unwrap()
        .instructions
        .clone()
        .unwrap_or_default();
    assert!(!plain.contains("Nudger"), "only the orchestrator: {plain}");
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let bob = Catcher::new(tx)
        .serve(transport(&d, "bob", "push"))
        .await
        .unwrap();

    let job = call(
        &olga,
        "job_create",
        json!({"title": "bump deps", "assigned_peer": "bob"}),
    )
    .await
    .1;
    let jid = job["job_id"].as_str().unwrap().to_string();
    let (err, r) = call(
        &alice,
        "request_review",
        json!({"ref": "pr-77", "head_sha": "c0ffee"}),
    )
    .await;
    assert!(!err, "{r}");
    call(
        &alice,
        "schedule_create",
        json!({"to_peer": "bob", "text": "stand up", "fire_at": "1s"}),
    )
    .await;
    let (err, r) = call(
        &olga,
        "schedule_self",
        json!({"text": "{\"topic\": \"deps\"}", "fire_at": "1s", "kind": "checkin"}),
    )
    .await;
    assert!(!err, "{r}");
    let (err, asked) = call(
        &bob,
        "ask",
        json!({"peer_name": "alice", "query": "lunch?"}),
    )
    .await;
    assert!(!err, "{asked}");
    let qid = asked["correlation_id"].as_str().unwrap().to_string();
    call(
        &alice,
        "answer",
        json!({"correlation_id": qid, "text": "at one"}),
    )
    .await;

    let mut events: Vec<Value> = Vec::new();
    let has = |evs: &[Value], f: &dyn Fn(&Value) -> bool| evs.iter().any(f);
    let text = |e: &Value| e["content"].as_str().unwrap_or_default().to_string();
    let dispatch = |e: &Value| e["meta"]["job_id"] == jid.as_str() && e["meta"]["kind"] == "ask";
    let review = |e: &Value| text(e).contains("pr-77");
    let scheduled = |e: &Value| text(e).contains("stand up") && e["meta"]["from"] == "alice";
    let checkin = |e: &Value| text(e).contains("check-in: deps");
    let reply = |e: &Value| {
        e["meta"]["kind"] == "reply"
            && e["meta"]["correlation_id"] == qid.as_str()
            && text(e).contains("at one")
    };
    let all: [&dyn Fn(&Value) -> bool; 5] = [&dispatch, &review, &scheduled, &checkin, &reply];
    tokio::time::timeout(Duration::from_secs(20), async {
        while !all.iter().all(|f| has(&events, f)) {
            events.push(rx.recv().await.unwrap());
        }
    })
    .await
    .unwrap_or_else(|_| panic!("not every kind arrived: {events:#?}"));
    let d_ev = events.iter().find(|e| dispatch(e)).unwrap();
    let content = text(d_ev);
    assert!(
        content.contains("olga") && content.contains(&jid) && content.contains("correlation_id"),
        "who, what and the id to answer with: {content}"
    );
    // bob answers the dispatch; the reply to olga names the job too.
    let did = d_ev["meta"]["correlation_id"].as_str().unwrap().to_string();
    let (err, r) = call(
        &bob,
        "answer",
        json!({"correlation_id": did, "text": "on it"}),
    )
    .await;
    assert!(!err, "{r}");
    assert_eq!(r["job_id"], jid.as_str(), "the ask names its job: {r}");
    let inbox = call(&olga, "inbox", json!({})).await.1;
    let reply = inbox["deliveries"]
        .as_array()
        .unwrap()
        .iter()
        .find(|x| x["kind"] == "reply" && x["correlation_id"] == did.as_str())
        .unwrap_or_else(|| panic!("a reply: {inbox}"));
    assert_eq!(reply["job_id"], jid.as_str(), "{reply}");
    let ids: Vec<&str> = events
        .iter()
        .map(|e| e["meta"]["delivery_id"].as_str().unwrap())
        .collect();
    let mut uniq = ids.clone();
    uniq.sort();
    uniq.dedup();
    assert_eq!(uniq.len(), ids.len(), "each once");
    for s in [olga, alice] {
        s.cancel().await.unwrap();
    }
    bob.cancel().await.unwrap();
}

/// Without --name the peer is named by REPOWIRE_PEER, else by the working
/// directory (made a valid name); the backend is read off the environment.
#[tokio::test]
async fn the_name_comes_from_the_env_or_the_directory() {
    use rmcp::transport::{ConfigureCommandExt, TokioChildProcess};
    let d = Daemon::start(&[]);
    let work = tempfile::tempdir().unwrap();
    let repo = work.path().join("my repo!");
    std::fs::create_dir_all(&repo).unwrap();
    let start = |env: Vec<(&'static str, &'static str)>| {
        let (home, repo) = (d.home_path().to_path_buf(), repo.clone());
        TokioChildProcess::new(tokio::process::Command::new(BIN).configure(move |c| {
            c.env_clear()
                .env("PATH", std::env::var("PATH").unwrap_or_default())
                .env("REPOWIRE_HOME", &home)
                .envs(env.iter().copied())
                .current_dir(&repo)
                .args(["mcp", "--delivery", "pull"]);
        }))
        .unwrap()
    };
    let s = ()
        .serve(start(vec![
            ("REPOWIRE_PEER", "docs-bot"),
            ("CODEX_HOME", "/x"),
        ]))
        .await
        .unwrap();
    let me = call(&s, "whoami", json!({})).await.1;
    assert_eq!(
        (me["name"].as_str(), me["backend"].as_str()),
        (Some("docs-bot"), Some("codex"))
    );
    s.cancel().await.unwrap();
    let s = ().serve(start(vec![("CLAUDECODE", "1")])).await.unwrap();
    let me = call(&s, "whoami", json!({})).await.1;
    assert_eq!(me["name"], "my-repo-");
    assert_eq!(me["backend"], "claude-code");
    assert!(
        me["project_path"].as_str().unwrap().ends_with("my repo!"),
        "{me}"
    );
    s.cancel().await.unwrap();
}

/// By default (`--delivery auto`) only a client that says it reads channel
/// events (`experimental["claude/channel"]`) gets pushes; any other, even
/// one named Claude Code, keeps its messages for the inbox tool. A push is
/// a hint: the inbox tool still shows a pushed delivery, marked, and
/// confirms it. What was shown can be read again (inbox recent).
#[tokio::test]
async fn auto_delivery_pushes_only_to_a_channel_client() {
    let d = Daemon::start(&[]);
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let cc = Catcher::claude(tx)
        .serve(crate::mcp::transport_with(&d, &["--name", "cc"]))
        .await
        .unwrap();
    let (tx_other, mut rx_other) = tokio::sync::mpsc::unbounded_channel();
    let other = Catcher::claude_without_channels(tx_other)
        .serve(crate::mcp::transport_with(&d, &["--name", "cx"]))
        .await
        .unwrap();
    let admin = d.admin();
    eventually(Duration::from_secs(10), "cc's route", || async {
        let p = admin.describe("cc", None).await.ok()?;
        (p.route == "channel").then_some(())
    })
    .await;
    assert_eq!(admin.describe("cx", None).await.unwrap().route, "pull");
    // cc asks cx; cx follows it up with a question back (reply_to).
    let (_, q) = call(
        &cc,
        "ask",
        json!({"peer_name": "cx", "query": "which env?"}),
    )
    .await;
    let qid = q["correlation_id"].as_str().unwrap().to_string();
    let inbox = call(&other, "inbox", json!({})).await.1;
    assert_eq!(
        inbox["deliveries"][0]["correlation_id"],
        qid.as_str(),
        "{inbox}"
    );
    let (err, back) = call(
        &other,
        "ask",
        json!({"peer_name": "cc", "query": "prod or staging?", "reply_to": qid}),
    )
    .await;
    assert!(!err, "{back}");
    let ev = tokio::time::timeout(Duration::from_secs(15), rx.recv())
        .await
        .expect("pushed to claude code")
        .unwrap();
    assert_eq!(ev["meta"]["reply_to"], qid.as_str(), "{ev}");
    assert!(
        ev["meta"]
            .as_object()
            .unwrap()
            .values()
            .all(|v| v.is_string()),
        "meta values are strings: {ev}"
    );
    assert!(ev["content"].as_str().unwrap().contains(&qid), "{ev}");
    // Pushed, never confirmed: once recorded as pushed, the inbox shows it,
    // marked, and confirms it; then it has nothing new, but recent shows it.
    let cc_view = admin.with_identity(Some(d.admin_token()), Some("cc".into()));
    eventually(Duration::from_secs(10), "recorded as pushed", || async {
        let held = cc_view.peek(10).await.unwrap().deliveries;
        (held.len() == 1 && held[0].pushed).then_some(())
    })
    .await;
    let again = call(&cc, "inbox", json!({})).await.1;
    let shown = &again["deliveries"][0];
    assert_eq!(shown["delivery_id"], ev["meta"]["delivery_id"], "{again}");
    assert_eq!(shown["pushed"], true, "{again}");
    assert_eq!(shown["note"], "pushed live earlier, unconfirmed", "{again}");
    assert_eq!(again["confirmed"], true, "{again}");
    assert!(cc_view.peek(10).await.unwrap().deliveries.is_empty());
    let empty = call(&cc, "inbox", json!({})).await.1;
    assert_eq!(empty["deliveries"], json!([]), "{empty}");
    let recent = call(&cc, "inbox", json!({"recent": true})).await.1;
    assert_eq!(
        recent["deliveries"][0]["delivery_id"], ev["meta"]["delivery_id"],
        "{recent}"
    );
    // The other client got no push: its note waits in the inbox.
    call(
        &cc,
        "notify_peer",
        json!({"peer_name": "cx", "message": "fyi"}),
    )
    .await;
    let got = call(&other, "inbox", json!({})).await.1;
    assert_eq!(got["deliveries"][0]["text"], "fyi", "{got}");
    assert!(rx_other.try_recv().is_err(), "nothing pushed to cx");
    other.cancel().await.unwrap();
    cc.cancel().await.unwrap();
}

/// Two live sessions never share a peer: the second one with the same name
/// joins as NAME-2 (its own inbox); once the first is gone, the name is free.
#[tokio::test]
async fn a_second_live_session_with_the_same_name_gets_its_own_peer() {
    let d = Daemon::start(&[]);
    let one = crate::mcp::session(&d, "twin").await;
    let two = crate::mcp::session(&d, "twin").await;
    let a = call(&one, "whoami", json!({})).await.1;
    let b = call(&two, "whoami", json!({})).await.1;
    assert_eq!(a["name"], "twin");
    assert_eq!(b["name"], "twin-2");
    assert_ne!(a["peer_id"], b["peer_id"]);
    call(
        &two,
        "notify_peer",
        json!({"peer_name": "twin", "message": "hello twin"}),
    )
    .await;
    let got = call(&one, "inbox", json!({})).await.1;
    assert_eq!(got["deliveries"][0]["text"], "hello twin", "{got}");
    one.cancel().await.unwrap();
    let again = crate::mcp::session_when_free(&d, "twin").await;
    assert_eq!(again.1["peer_id"], a["peer_id"], "resumed, same peer");
    again.0.cancel().await.unwrap();
    two.cancel().await.unwrap();
}
