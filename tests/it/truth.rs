//! Delivery truth (issue 12): a delivery is confirmed only by what puts it
//! in front of the agent. A channel push (a real `repowire mcp` session and
//! a real MCP client) is a hint: recorded as pushed, never confirmed, never
//! pushed twice; the inbox (pull) and a hook (route `hook`) still hand it
//! out, marked `pushed`, and their confirmation settles it.

use crate::mcp::{Catcher, transport};
use crate::support::*;
use repowire::api::{LeaseReq, NotifyReq};
use repowire::client::Client;
use repowire::core::ErrorCode;
use repowire::core::delivery::DeliveryRoute;
use rmcp::ServiceExt;
use serde_json::{Value, json};
use std::time::Duration;

fn note(to: &str, text: &str) -> NotifyReq {
    NotifyReq {
        to: to.into(),
        text: text.into(),
        ..Default::default()
    }
}

/// The text of a channel event (`"<kind> from <who>: <text>"`).
fn pushed_text(ev: &Value) -> String {
    let c = ev["content"].as_str().unwrap();
    c.rsplit(": ").next().unwrap().to_string()
}

async fn next_push(rx: &mut tokio::sync::mpsc::UnboundedReceiver<Value>) -> Value {
    tokio::time::timeout(Duration::from_secs(15), rx.recv())
        .await
        .expect("a channel event")
        .unwrap()
}

/// The kinds and routes of a delivery's trace, in order.
async fn trace(admin: &Client, id: &str) -> Vec<(String, Option<String>)> {
    admin
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

#[tokio::test]
async fn a_channel_push_is_a_hint_that_pull_and_hooks_still_show() {
    let d = Daemon::start(&["--lease", "2s", "--manual-clock"]);
    let alice = d.peer("alice", None).await;
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let bob = Catcher::new(tx)
        .serve(transport(&d, "bob", "push"))
        .await
        .unwrap();
    let admin = d.admin();
    let bob_view = admin.with_identity(Some(d.admin_token()), Some("bob".into()));
    eventually(Duration::from_secs(10), "bob pushes", || async {
        let p = admin.describe("bob", None).await.ok()?;
        (p.route == "channel").then_some(())
    })
    .await;

    // Pushed live, recorded as pushed, not confirmed.
    let one = alice.notify(&note("bob", "one")).await.unwrap().delivery_id;
    let ev = next_push(&mut rx).await;
    assert_eq!(ev["meta"]["delivery_id"], one.as_str(), "{ev}");
    eventually(Duration::from_secs(10), "recorded as pushed", || async {
        let held = bob_view.peek(10).await.unwrap().deliveries;
        (held.len() == 1 && held[0].pushed).then_some(())
    })
    .await;
    let held = bob_view.peek(10).await.unwrap().deliveries;
    assert_eq!(held[0].delivery_id, one);
    assert!(held[0].pushed_at_ms.is_some(), "{held:?}");
    assert_ne!(
        held[0].state.as_str(),
        "delivered",
        "a push confirms nothing"
    );

    // Past the stream's lease: the stream does not push it again. The next
    // note is the next channel event (the stream hands out in order, so a
    // second push of `one` would come first).
    d.advance_clock(2_001).await;
    alice.notify(&note("bob", "two")).await.unwrap();
    let ev = next_push(&mut rx).await;
    assert_eq!(pushed_text(&ev), "two", "one is not pushed twice: {ev}");

    // The inbox (pull) still hands it out, marked.
    let pulled = bob_view
        .lease(&LeaseReq {
            max: Some(1),
            ..Default::default()
        })
        .await
        .unwrap()
        .deliveries;
    assert_eq!(pulled.len(), 1);
    assert_eq!(pulled[0].delivery_id, one);
    assert!(pulled[0].pushed, "{pulled:?}");
    // Not confirmed (its taker died, say): after its lease, a hook takes it.
    d.advance_clock(2_001).await;
    let hooked = bob_view
        .lease_via(
            DeliveryRoute::Hook,
            &LeaseReq {
                max: Some(1),
                ..Default::default()
            },
        )
        .await
        .unwrap()
        .deliveries;
    assert_eq!(hooked.len(), 1);
    assert_eq!(hooked[0].delivery_id, one);
    assert!(hooked[0].pushed, "{hooked:?}");
    // The hook printed it and confirms it: delivered.
    assert_eq!(
        bob_view.confirm(vec![one.clone()]).await.unwrap().confirmed,
        1
    );
    let open: Vec<String> = bob_view
        .peek(10)
        .await
        .unwrap()
        .deliveries
        .into_iter()
        .map(|d| d.delivery_id)
        .collect();
    assert!(!open.contains(&one), "{open:?}");

    // The trace tells the story, with the route of each lease.
    let kinds = trace(&admin, &one).await;
    let s = |k: &str, r: Option<&str>| (k.to_string(), r.map(str::to_string));
    assert_eq!(
        kinds,
        [
            s("delivery_queued", None),
            s("delivery_leased", Some("stream")),
            s("delivery_pushed", None),
            s("delivery_leased", Some("pull")),
            s("delivery_leased", Some("hook")),
            s("delivery_confirmed", None),
        ],
        "{kinds:?}"
    );
    bob.cancel().await.unwrap();
}

#[tokio::test]
async fn lease_routes_and_pushed_ids_are_checked() {
    let d = Daemon::start(&[]);
    let alice = d.peer("alice", None).await;
    let bob = d.peer("bob", None).await;
    let carol = d.peer("carol", None).await;
    let id = alice.notify(&note("bob", "hi")).await.unwrap().delivery_id;

    // A lease names pull or hook; anything else is a coded error.
    let raw = |body: Value| {
        let url = format!("{}/v1/inbox/lease", d.url);
        let token = d.admin_token();
        async move {
            let r = reqwest::Client::new()
                .post(url)
                .bearer_auth(token)
                .header("x-repowire-as", "bob")
                .json(&body)
                .send()
                .await
                .unwrap();
            (r.status().as_u16(), r.json::<Value>().await.unwrap())
        }
    };
    for bad in ["tmux", "PULL", ""] {
        let (status, body) = raw(json!({"route": bad})).await;
        assert_eq!(
            (status, body["code"].as_str()),
            (400, Some("bad_request")),
            "{bad}: {body}"
        );
    }
    for bad in [DeliveryRoute::Stream, DeliveryRoute::Channel] {
        let e = bob.lease_via(bad, &LeaseReq::default()).await;
        assert_eq!(code_of(e), ErrorCode::BadRequest, "{bad}");
    }
    let (status, body) = raw(json!({"route": "hook", "max": 1})).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["deliveries"][0]["delivery_id"], id.as_str(), "{body}");
    assert_eq!(body["deliveries"][0]["pushed"], false, "{body}");

    // Pushed: only the caller's own deliveries, by well-formed ids.
    assert_eq!(
        code_of(bob.pushed(vec!["not-an-id".into()]).await),
        ErrorCode::BadRequest
    );
    let e = carol.pushed(vec![id.clone()]).await;
    assert_eq!(code_of(e), ErrorCode::NotFound, "not carol's");
    let unknown = "dlv-01M8S1WX5BN552BDAQNJB732GD".to_string();
    let e = bob.pushed(vec![id.clone(), unknown]).await;
    assert_eq!(code_of(e), ErrorCode::NotFound, "unknown");
    let held = bob.peek(10).await.unwrap().deliveries;
    assert!(!held[0].pushed, "a refused call records nothing");
    // Bob's own leased delivery is recorded once; a second time is skipped.
    assert_eq!(bob.pushed(vec![id.clone()]).await.unwrap().pushed, 1);
    assert_eq!(bob.pushed(vec![id.clone()]).await.unwrap().pushed, 0);
    let held = bob.peek(10).await.unwrap().deliveries;
    assert!(held[0].pushed, "{held:?}");
    // Its lease ended at once: the inbox takes it now.
    let got = bob.lease(&LeaseReq::default()).await.unwrap().deliveries;
    assert_eq!(got.len(), 1, "{got:?}");
    assert!(got[0].pushed);
    assert_eq!(bob.confirm(vec![id.clone()]).await.unwrap().confirmed, 1);
    // A confirmed one is skipped.
    assert_eq!(bob.pushed(vec![id]).await.unwrap().pushed, 0);
}
