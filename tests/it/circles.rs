//! Circles isolate asks, notes and broadcasts; admin may bypass explicitly.

use crate::support::*;
use repowire::api::{AskManyReq, AskReq, BroadcastReq, LeaseReq, NotifyReq};
use repowire::core::ErrorCode;

#[tokio::test]
async fn cross_circle_refused_and_admin_bypass_works() {
    let d = Daemon::start(&[]);
    let alice = d.peer("alice", Some("red")).await;
    let bob = d.peer("bob", Some("blue")).await;
    let carol = d.peer("carol", Some("red")).await;

    let ask = |to: &str, circle: Option<&str>, bypass: bool| AskReq {
        to: to.into(),
        circle: circle.map(str::to_string),
        text: "hi".into(),
        bypass_circle: bypass,
        ..Default::default()
    };
    assert_eq!(
        code_of(alice.ask(&ask("bob", Some("blue"), false)).await),
        ErrorCode::CrossCircle
    );
    assert_eq!(
        code_of(alice.ask(&ask("bob@blue", None, false)).await),
        ErrorCode::CrossCircle
    );
    // By default names resolve in the sender's own circle.
    assert_eq!(
        code_of(alice.ask(&ask("bob", None, false)).await),
        ErrorCode::UnknownPeer
    );
    let n = NotifyReq {
        to: "bob@blue".into(),
        text: "note".into(),
        ..Default::default()
    };
    assert_eq!(code_of(alice.notify(&n).await), ErrorCode::CrossCircle);
    let many = AskManyReq {
        to: vec!["carol".into(), "bob@blue".into()],
        text: "q".into(),
        ..Default::default()
    };
    assert_eq!(code_of(alice.ask_many(&many).await), ErrorCode::CrossCircle);
    // A peer token may not ask for a bypass.
    assert_eq!(
        code_of(alice.ask(&ask("bob@blue", None, true)).await),
        ErrorCode::Forbidden
    );
    // The refused ask-many left nothing behind for carol.
    assert!(carol.peek(10).await.unwrap().deliveries.is_empty());

    // Broadcast stays in the circle.
    let b = alice.broadcast("red team only").await.unwrap();
    assert_eq!(b.deliveries.len(), 1);
    assert_eq!(b.deliveries[0].to, "carol");
    assert!(bob.peek(10).await.unwrap().deliveries.is_empty());
    assert_eq!(
        carol.peek(10).await.unwrap().deliveries[0].text,
        "red team only"
    );

    // Admin acting as alice, with the explicit bypass.
    let admin_as_alice = d
        .admin()
        .with_identity(Some(d.admin_token()), Some("alice@red".into()));
    let r = admin_as_alice
        .ask(&ask("bob@blue", None, true))
        .await
        .unwrap();
    assert_eq!(r.ask.from, "alice");
    assert_eq!(r.ask.circle, "blue");
    let got = bob.lease(&LeaseReq::default()).await.unwrap().deliveries;
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].from_circle.as_deref(), Some("red"));
    // Without the flag the admin is refused too.
    assert_eq!(
        code_of(admin_as_alice.ask(&ask("bob@blue", None, false)).await),
        ErrorCode::CrossCircle
    );

    // CLI: refused with the code, then bypassed.
    d.cli(&["--as", "alice", "peer", "notify", "bob@blue", "psst"])
        .fails(1, "cross_circle");
    d.cli(&[
        "--as",
        "alice",
        "peer",
        "notify",
        "bob@blue",
        "psst",
        "--cross-circle",
    ])
    .ok();
    // Peers only list their own circle.
    let names: Vec<String> = alice
        .list_peers(None)
        .await
        .unwrap()
        .into_iter()
        .map(|p| p.name)
        .collect();
    assert_eq!(names, ["alice", "carol"]);
    assert_eq!(
        code_of(alice.list_peers(Some("blue")).await),
        ErrorCode::CrossCircle
    );
}

#[tokio::test]
async fn reads_stay_inside_the_circle_and_broadcast_bypass_is_admin_only() {
    let d = Daemon::start(&[]);
    let alice = d.peer("alice", Some("red")).await;
    let bob = d.peer("bob", Some("blue")).await;
    let bea = d.peer("bea", Some("blue")).await;
    bob.claim_orchestrator(false).await.unwrap();
    let id = bob
        .ask(&AskReq {
            to: "bea".into(),
            text: "secret-plan-quokka?".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .ask
        .correlation_id;
    bea.answer(&id, "answer-zebra").await.unwrap();

    // alice (red) cannot look into blue: status, events, trace, the ask itself.
    assert_eq!(
        code_of(alice.orchestrator_status(Some("blue")).await),
        ErrorCode::CrossCircle
    );
    assert!(
        !alice.orchestrator_status(None).await.unwrap().present,
        "red has no orchestrator"
    );
    assert_eq!(
        code_of(alice.events(None, None, Some("blue")).await),
        ErrorCode::CrossCircle
    );
    let seen = alice.events(Some(0), None, None).await.unwrap().events;
    assert!(
        seen.iter().all(|e| e.circle.as_deref() == Some("red")),
        "{seen:?}"
    );
    assert_eq!(code_of(alice.trace(&id).await), ErrorCode::CrossCircle);
    assert_eq!(code_of(alice.get_ask(&id).await), ErrorCode::CrossCircle);
    // Inside the circle, events name what happened but carry no message bodies.
    let t = bob.trace(&id).await.unwrap();
    let dump = serde_json::to_string(&t).unwrap();
    assert!(dump.contains("ask_answered"));
    assert!(
        !dump.contains("zebra") && !dump.contains("quokka"),
        "{dump}"
    );
    // --tail counts within the caller's circle.
    let tail = bea.events(None, Some(2), None).await.unwrap().events;
    assert_eq!(tail.len(), 2);

    // Broadcast to another circle: refused, even as admin without the flag.
    let to_blue = |bypass| BroadcastReq {
        text: "hello blue".into(),
        circle: Some("blue".into()),
        bypass_circle: bypass,
    };
    assert_eq!(
        code_of(alice.broadcast_to(&to_blue(false)).await),
        ErrorCode::CrossCircle
    );
    assert_eq!(
        code_of(alice.broadcast_to(&to_blue(true)).await),
        ErrorCode::Forbidden
    );
    let admin_as_alice = d
        .admin()
        .with_identity(Some(d.admin_token()), Some("alice@red".into()));
    assert_eq!(
        code_of(admin_as_alice.broadcast_to(&to_blue(false)).await),
        ErrorCode::CrossCircle
    );
    let r = admin_as_alice.broadcast_to(&to_blue(true)).await.unwrap();
    assert_eq!(r.circle, "blue");
    assert_eq!(r.deliveries.len(), 2);
    d.cli(&[
        "--as",
        "alice@red",
        "peer",
        "broadcast",
        "x",
        "--circle",
        "blue",
    ])
    .fails(1, "cross_circle");
    d.cli(&[
        "--as",
        "alice@red",
        "peer",
        "broadcast",
        "x",
        "--circle",
        "blue",
        "--cross-circle",
    ])
    .ok();
}
