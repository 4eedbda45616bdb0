//! The mesh tools called through a real `repowire mcp` child process against
//! a real daemon, with their error paths: unknown peers, other circles, bad
//! ids, missing or bad parameters (the work tools: `mcp_work.rs`; the happy
//! paths of the core flows: `mcp.rs`). Also the helpers those modules share.

use crate::mcp::{call, session, transport_with};
use crate::support::*;
use rmcp::ServiceExt;
use rmcp::service::{RoleClient, RunningService, Service};
use serde_json::{Value, json};

/// Call a tool that must fail; returns its error code.
pub async fn fails<C: Service<RoleClient>>(
    s: &RunningService<RoleClient, C>,
    tool: &str,
    args: Value,
) -> String {
    let (err, v) = call(s, tool, args.clone()).await;
    assert!(err, "{tool}({args}) should fail, got {v}");
    v["code"].as_str().unwrap_or_default().to_string()
}

/// Each call (tool, arguments, code) must fail with its code.
pub async fn refuses<C: Service<RoleClient>>(
    s: &RunningService<RoleClient, C>,
    cases: impl IntoIterator<Item = (&str, Value, &str)>,
) {
    for (tool, args, code) in cases {
        assert_eq!(fails(s, tool, args.clone()).await, code, "{tool}({args})");
    }
}

/// Call a tool that must succeed; returns its structured result.
pub async fn works<C: Service<RoleClient>>(
    s: &RunningService<RoleClient, C>,
    tool: &str,
    args: Value,
) -> Value {
    let (err, v) = call(s, tool, args.clone()).await;
    assert!(!err, "{tool}({args}) failed: {v}");
    v
}

fn names(v: &Value) -> Vec<String> {
    v["peers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap().to_string())
        .collect()
}

#[tokio::test]
async fn mesh_tools_and_their_errors() {
    let d = Daemon::start(&[]);
    let alice = session(&d, "alice").await;
    let bob = session(&d, "bob").await;
    let carol: RunningService<RoleClient, ()> = ()
        .serve(transport_with(
            &d,
            &["--name", "carol", "--circle", "ops", "--delivery", "pull"],
        ))
        .await
        .unwrap();
    // A peer that went offline.
    let dave = d.peer("dave", None).await;
    dave.heartbeat(&repowire::api::HeartbeatReq {
        status: Some(repowire::core::peer::Status::Offline),
    })
    .await
    .unwrap();

    // whoami, set_description, list_peers (self, offline, circle).
    let me = works(&carol, "whoami", json!({})).await;
    assert_eq!(
        (me["name"].as_str(), me["circle"].as_str()),
        (Some("carol"), Some("ops"))
    );
    assert_eq!(me["route"], "pull");
    works(&bob, "set_description", json!({"description": "fixing CI"})).await;
    let peers = works(&alice, "list_peers", json!({})).await;
    assert_eq!(names(&peers), ["bob"]);
    assert_eq!(peers["peers"][0]["description"], "fixing CI");
    let all = works(
        &alice,
        "list_peers",
        json!({"show_offline": true, "include_self": true}),
    )
    .await;
    assert_eq!(names(&all), ["alice", "bob", "dave"]);
    let mine = works(&alice, "list_peers", json!({"circle": "default"})).await;
    assert_eq!(names(&mine), ["bob"]);
    refuses(
        &alice,
        [
            ("list_peers", json!({"circle": "ops"}), "cross_circle"),
            ("list_peers", json!({"show_offline": "yes"}), "bad_request"),
        ],
    )
    .await;
    assert_eq!(
        fails(&bob, "set_description", json!({})).await,
        "bad_request"
    );

    // ask: unknown peer, other circle, bad reply_to, missing query.
    refuses(
        &alice,
        [
            (
                "ask",
                json!({"peer_name": "nobody", "query": "?"}),
                "unknown_peer",
            ),
            (
                "ask",
                json!({"peer_name": "carol", "query": "?", "circle": "ops"}),
                "cross_circle",
            ),
            (
                "ask",
                json!({"peer_name": "carol@ops", "query": "?"}),
                "cross_circle",
            ),
            ("ask", json!({"peer_name": "bob"}), "bad_request"),
            (
                "ask",
                json!({"peer_name": "bob", "query": "?", "reply_to": "ask-nope"}),
                "unknown_ask",
            ),
        ],
    )
    .await;
    // A follow-up: bob asks alice back about her question.
    let q = works(
        &alice,
        "ask",
        json!({"peer_name": "bob", "query": "which port?"}),
    )
    .await;
    let qid = q["correlation_id"].as_str().unwrap().to_string();
    let back = works(
        &bob,
        "ask",
        json!({"peer_name": "alice", "query": "for staging or prod?", "reply_to": qid}),
    )
    .await;
    assert_eq!(back["reply_to"], qid.as_str());
    let bid = back["correlation_id"].as_str().unwrap().to_string();
    // Dave was not part of alice's ask: he cannot follow it up.
    let dave_s = d.cli(&[
        "--as",
        "dave",
        "peer",
        "ask",
        "bob",
        "hm",
        "--reply-to",
        &qid,
    ]);
    dave_s.fails(1, "forbidden");

    // wait_on_ack: bad id; a short wait that times out.
    assert_eq!(
        fails(&alice, "wait_on_ack", json!({"correlation_id": "ask-nope"})).await,
        "unknown_ask"
    );
    let w = works(
        &alice,
        "wait_on_ack",
        json!({"correlation_id": qid, "timeout_seconds": 1}),
    )
    .await;
    assert_eq!(w["done"], false);

    // ask with wait_seconds: the answer in the same call (bob answers while
    // alice's call waits), or the ask still open when the wait ends.
    let waited = json!({"peer_name": "bob", "query": "up?", "wait_seconds": 20});
    let bob_answers = async {
        loop {
            let v = d.open_asks_to("bob");
            let up = v.as_array().unwrap().iter().find(|a| a["text"] == "up?");
            if let Some(id) = up.and_then(|a| a["correlation_id"].as_str()) {
                works(&bob, "answer", json!({"correlation_id": id, "text": "yes"})).await;
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(25)).await;
        }
    };
    let (a, ()) = tokio::join!(works(&alice, "ask", waited), bob_answers);
    assert_eq!(
        (a["done"].as_bool(), a["answer"].as_str()),
        (Some(true), Some("yes")),
        "{a}"
    );
    assert_eq!(a["state"], "closed");
    let a = works(
        &alice,
        "ask",
        json!({"peer_name": "bob", "query": "still up?", "wait_seconds": 1}),
    )
    .await;
    assert_eq!(
        (a["done"].as_bool(), a["state"].as_str()),
        (Some(false), Some("queued")),
        "{a}"
    );
    assert!(a["correlation_id"].as_str().unwrap().starts_with("ask-"));
    let still = a["correlation_id"].as_str().unwrap();
    d.cli(&["--as", "alice", "peer", "cancel", still]).ok();

    // answer, ack, decline, and their errors.
    let inbox = works(&alice, "inbox", json!({"limit": 1})).await;
    assert_eq!(inbox["deliveries"].as_array().unwrap().len(), 1);
    assert_eq!(inbox["deliveries"][0]["correlation_id"], bid.as_str());
    works(
        &alice,
        "answer",
        json!({"correlation_id": bid, "text": "staging"}),
    )
    .await;
    refuses(
        &alice,
        [
            (
                "answer",
                json!({"correlation_id": bid, "text": "again"}),
                "invalid_state",
            ),
            (
                "answer",
                json!({"correlation_id": "ask-nope", "text": "x"}),
                "unknown_ask",
            ),
            // only the recipient answers
            (
                "answer",
                json!({"correlation_id": qid, "text": "own"}),
                "forbidden",
            ),
        ],
    )
    .await;
    assert_eq!(
        fails(&bob, "decline", json!({"correlation_id": qid})).await,
        "bad_request",
        "decline needs a reason"
    );
    works(
        &bob,
        "decline",
        json!({"correlation_id": qid, "reason": "not my repo"}),
    )
    .await;
    let w = works(
        &alice,
        "wait_on_ack",
        json!({"correlation_id": qid, "timeout_seconds": 5}),
    )
    .await;
    assert_eq!(w["done"], true);
    assert_eq!(w["ask"]["state"], "closed");
    assert!(
        w["ask"]["ack_message"]
            .as_str()
            .unwrap()
            .contains("not my repo"),
        "{w}"
    );
    let q2 = works(
        &alice,
        "ask",
        json!({"peer_name": "bob", "query": "seen the logs?"}),
    )
    .await;
    let q2id = q2["correlation_id"].as_str().unwrap().to_string();
    works(
        &bob,
        "ack",
        json!({"correlation_id": q2id, "message": "looking"}),
    )
    .await;
    refuses(
        &bob,
        [
            ("ack", json!({"correlation_id": q2id}), "invalid_state"),
            ("ack", json!({"correlation_id": "nonsense"}), "unknown_ask"),
        ],
    )
    .await;

    // notify_peer and broadcast.
    works(
        &alice,
        "notify_peer",
        json!({"peer_name": "bob", "message": "deploy done"}),
    )
    .await;
    refuses(
        &alice,
        [
            (
                "notify_peer",
                json!({"peer_name": "carol", "message": "x", "circle": "ops"}),
                "cross_circle",
            ),
            (
                "notify_peer",
                json!({"peer_name": "zed", "message": "x"}),
                "unknown_peer",
            ),
        ],
    )
    .await;
    let b = works(&alice, "broadcast", json!({"message": "freeze at 5"})).await;
    assert_eq!(b["deliveries"].as_array().map(|r| r.len()), Some(2), "{b}");
    assert_eq!(fails(&alice, "broadcast", json!({})).await, "bad_request");
    let texts: Vec<String> = works(&bob, "inbox", json!({})).await["deliveries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["text"].as_str().unwrap().to_string())
        .collect();
    assert!(texts.iter().any(|t| t == "deploy done"), "{texts:?}");
    assert!(texts.iter().any(|t| t == "freeze at 5"), "{texts:?}");
    assert!(
        works(&carol, "inbox", json!({})).await["deliveries"]
            .as_array()
            .unwrap()
            .is_empty(),
        "a broadcast stays in its circle"
    );

    // ask_many and ask_many_result.
    let many = works(
        &alice,
        "ask_many",
        json!({"peer_names": ["bob", "dave"], "query": "free today?", "timeout_seconds": 60}),
    )
    .await;
    let parent = many["parent_id"].as_str().unwrap().to_string();
    let to_bob = many["asks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["ask"]["to"] == "bob")
        .unwrap()["ask"]["correlation_id"]
        .clone();
    works(
        &bob,
        "answer",
        json!({"correlation_id": to_bob, "text": "yes"}),
    )
    .await;
    let res = works(&alice, "ask_many_result", json!({"parent_id": parent})).await;
    assert_eq!(
        res.to_string().matches("\"answer\":\"yes\"").count(),
        1,
        "{res}"
    );
    refuses(
        &alice,
        [
            (
                "ask_many",
                json!({"peer_names": ["bob", "carol@ops"], "query": "?"}),
                "cross_circle",
            ),
            (
                "ask_many",
                json!({"peer_names": [], "query": "?"}),
                "bad_request",
            ),
            (
                "ask_many_result",
                json!({"parent_id": "grp-nope"}),
                "not_found",
            ),
        ],
    )
    .await;
    assert_eq!(
        fails(&bob, "ask_many_result", json!({"parent_id": parent})).await,
        "forbidden",
        "only the asker reads the result"
    );
    for s in [alice, bob, carol] {
        s.cancel().await.unwrap();
    }
}
