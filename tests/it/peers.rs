//! Peers: register, list, whoami, describe, resume, tokens, names, ghosts, prune.

use crate::support::*;
use repowire::api::{HeartbeatReq, RegisterReq, UpdatePeerReq};
use repowire::client::Client;
use repowire::core::ErrorCode;
use repowire::core::peer::Status;
use std::time::Duration;

#[test]
fn register_list_whoami_describe_unregister_via_cli() {
    let d = Daemon::start(&[]);
    let r = d.cli(&[
        "peer",
        "register",
        "alice",
        "--backend",
        "claude-code",
        "--tag",
        "rust",
        "--tag",
        "api",
        "--description",
        "backend work",
        "--project-path",
        "/src/app",
        "--json",
    ]);
    r.ok();
    let v = r.json();
    assert_eq!(v["peer"]["name"], "alice");
    assert_eq!(v["peer"]["circle"], "default");
    assert_eq!(v["peer"]["role"], "agent");
    assert_eq!(v["peer"]["tags"], serde_json::json!(["rust", "api"]));
    assert!(v["peer"]["peer_id"].as_str().unwrap().starts_with("peer-"));
    let token = v["token"].as_str().unwrap().to_string();
    assert_eq!(v["resumed"], false);

    // Human output tells the user how to act as the peer.
    let r = d.cli(&["peer", "register", "bob"]);
    r.ok();
    assert!(
        r.stdout.contains("export REPOWIRE_PEER_TOKEN=rw_"),
        "{}",
        r.stdout
    );

    assert_eq!(d.peer_names(), ["alice", "bob"]);
    let text = d.cli(&["peer", "list"]);
    assert!(text.ok().stdout.contains("alice") && text.stdout.contains("claude-code"));

    let me = d.cli_env(
        &["peer", "whoami", "--json"],
        &[("REPOWIRE_PEER_TOKEN", &token)],
    );
    assert_eq!(me.ok().json()["name"], "alice");
    // The admin acting as a peer.
    let me = d.cli(&["--as", "bob", "peer", "whoami", "--json"]);
    assert_eq!(me.ok().json()["name"], "bob");
    // Admin without --as has no peer identity.
    d.cli(&["peer", "whoami"]).fails(1, "identity_required");

    let desc = d.cli(&["peer", "describe", "alice"]);
    assert!(desc.ok().stdout.contains("backend work") && desc.stdout.contains("/src/app"));
    d.cli(&["peer", "describe", "nobody"])
        .fails(1, "unknown_peer");

    let set = d.cli_env(
        &["peer", "set-description", "now on the parser", "--json"],
        &[("REPOWIRE_PEER_TOKEN", &token)],
    );
    assert_eq!(set.ok().json()["description"], "now on the parser");

    d.cli_env(&["peer", "unregister"], &[("REPOWIRE_PEER_TOKEN", &token)])
        .ok();
    // The token is dead with the peer.
    d.cli_env(&["peer", "whoami"], &[("REPOWIRE_PEER_TOKEN", &token)])
        .fails(1, "unauthorized");
    d.cli(&["peer", "unregister", "bob"]).ok();
    let list = d.cli(&["peer", "list", "--json"]);
    assert_eq!(list.ok().json(), serde_json::json!([]));
}

#[tokio::test]
async fn names_are_checked_and_kept_as_given() {
    let d = Daemon::start(&[]);
    let admin = d.admin();
    for bad in [
        "",
        "has space",
        "slash/name",
        "ünïcode",
        "at@sign",
        &"x".repeat(65),
    ] {
        let r = admin
            .register(&RegisterReq {
                name: bad.into(),
                ..Default::default()
            })
            .await;
        assert_eq!(code_of(r), ErrorCode::InvalidName, "{bad:?}");
    }
    let r = admin
        .register(&RegisterReq {
            name: "ok".into(),
            circle: Some("bad circle".into()),
            ..Default::default()
        })
        .await;
    assert_eq!(code_of(r), ErrorCode::InvalidName);
    let name = "Mixed.Case_name-1";
    let r = admin
        .register(&RegisterReq {
            name: name.into(),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(r.peer.name, name);
    let long = "y".repeat(64);
    admin
        .register(&RegisterReq {
            name: long.clone(),
            ..Default::default()
        })
        .await
        .unwrap();
    // Same name, same circle: taken. Same name, other circle: fine.
    let r = admin
        .register(&RegisterReq {
            name: name.into(),
            ..Default::default()
        })
        .await;
    assert_eq!(code_of(r), ErrorCode::NameTaken);
    admin
        .register(&RegisterReq {
            name: name.into(),
            circle: Some("ops".into()),
            ..Default::default()
        })
        .await
        .unwrap();
    // CLI says the same.
    d.cli(&["peer", "register", "bad name"])
        .fails(1, "invalid_name");
}

#[tokio::test]
async fn resume_with_own_token_keeps_identity_other_tokens_refused() {
    let d = Daemon::start(&[]);
    let admin = d.admin();
    let first = admin
        .register(&RegisterReq {
            name: "alice".into(),
            backend: Some("codex".into()),
            ..Default::default()
        })
        .await
        .unwrap();
    let token = first.token.clone().unwrap();
    let alice = Client::new(&d.url, Some(token.clone()), None);
    alice
        .heartbeat(&HeartbeatReq {
            status: Some(Status::Offline),
        })
        .await
        .unwrap();

    let again = alice
        .register(&RegisterReq {
            name: "alice".into(),
            description: Some("back".into()),
            ..Default::default()
        })
        .await
        .unwrap();
    assert!(again.resumed);
    assert_eq!(again.peer.peer_id, first.peer.peer_id, "same identity");
    assert_eq!(again.token, None, "the token is not re-issued");
    assert_eq!(again.peer.status, Status::Online);
    assert_eq!(again.peer.backend, "codex", "unchanged fields are kept");
    assert_eq!(again.peer.description, "back");

    // Another peer's token cannot take alice's name, nor register new names.
    let bob = d.peer("bob", None).await;
    let r = bob
        .register(&RegisterReq {
            name: "alice".into(),
            ..Default::default()
        })
        .await;
    assert_eq!(code_of(r), ErrorCode::Forbidden);
    let r = bob
        .register(&RegisterReq {
            name: "carol".into(),
            ..Default::default()
        })
        .await;
    assert_eq!(code_of(r), ErrorCode::Forbidden);
    // A made-up token is refused outright.
    let fake = Client::new(&d.url, Some("rw_0000".into()), None);
    let r = fake
        .register(&RegisterReq {
            name: "alice".into(),
            ..Default::default()
        })
        .await;
    assert_eq!(code_of(r), ErrorCode::Unauthorized);
    // The CLI resumes through REPOWIRE_PEER + REPOWIRE_PEER_TOKEN.
    let r = d.cli_env(
        &["peer", "register", "--json"],
        &[("REPOWIRE_PEER", "alice"), ("REPOWIRE_PEER_TOKEN", &token)],
    );
    let v = r.ok().json();
    assert_eq!(v["resumed"], true);
    assert_eq!(v["peer"]["peer_id"], first.peer.peer_id.as_str());
}

#[tokio::test]
async fn heartbeat_ghosts_and_prune() {
    let d = Daemon::start(&["--stale-after", "10m", "--manual-clock"]);
    let alice = d.peer("alice", None).await;
    let bob = d.peer("bob", None).await;
    let p = bob
        .heartbeat(&HeartbeatReq {
            status: Some(Status::Busy),
        })
        .await
        .unwrap();
    assert_eq!(p.status, Status::Busy);
    assert!(!p.stale);
    // alice goes quiet while "online" (bob does not): a ghost, flagged by the
    // background task.
    let admin = d.admin();
    d.advance_clock(6 * 60_000).await;
    bob.heartbeat(&HeartbeatReq::default()).await.unwrap();
    d.advance_clock(6 * 60_000).await;
    eventually(Duration::from_secs(10), "alice to be a ghost", || async {
        bob.heartbeat(&HeartbeatReq::default()).await.unwrap();
        let peers = admin.list_peers(None).await.unwrap();
        let a = peers.iter().find(|p| p.name == "alice").unwrap();
        let b = peers.iter().find(|p| p.name == "bob").unwrap();
        let ev = admin.events(Some(0), None, None).await.unwrap().events;
        let flagged = ev
            .iter()
            .any(|e| e.kind == "peer_ghost" && e.payload["name"] == "alice");
        (a.ghost && a.stale && !b.stale && flagged).then_some(())
    })
    .await;
    let ev = admin.events(Some(0), None, None).await.unwrap().events;
    assert!(
        !ev.iter()
            .any(|e| e.kind == "peer_ghost" && e.payload["name"] == "bob"),
        "a peer that keeps its heartbeat is never flagged"
    );
    let text = d.cli(&["peer", "list"]);
    assert!(
        text.ok()
            .stdout
            .lines()
            .any(|l| l.contains("alice") && l.contains("[ghost]")),
        "{}",
        text.stdout
    );
    // A heartbeat brings it back.
    alice.heartbeat(&HeartbeatReq::default()).await.unwrap();
    let me = alice.whoami().await.unwrap();
    assert!(!me.ghost);

    // Prune removes only the stale ones (admin only).
    d.advance_clock(10 * 60_000 + 1).await;
    bob.heartbeat(&HeartbeatReq::default()).await.unwrap();
    let r = bob.prune(&Default::default()).await;
    assert_eq!(code_of(r), ErrorCode::Forbidden);
    let out = d.cli(&["peer", "prune", "--json"]);
    let pruned: Vec<String> = out.ok().json()["pruned"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(pruned, ["alice"]);
    let names: Vec<String> = admin
        .list_peers(None)
        .await
        .unwrap()
        .into_iter()
        .map(|p| p.name)
        .collect();
    assert_eq!(names, ["bob"]);
}

#[tokio::test]
async fn update_tags_and_description_limits() {
    let d = Daemon::start(&["--max-message-bytes", "100"]);
    let alice = d.peer("alice", None).await;
    let p = alice
        .update_me(&UpdatePeerReq {
            description: Some("short".into()),
            tags: Some(vec!["a".into(), "b".into()]),
        })
        .await
        .unwrap();
    assert_eq!(p.tags, ["a", "b"]);
    let r = alice
        .update_me(&UpdatePeerReq {
            description: Some("x".repeat(101)),
            tags: None,
        })
        .await;
    assert_eq!(code_of(r), ErrorCode::BadRequest);
    let r = alice
        .update_me(&UpdatePeerReq {
            description: None,
            tags: Some(vec!["bad tag".into()]),
        })
        .await;
    assert_eq!(code_of(r), ErrorCode::InvalidName);
    assert_eq!(
        alice.whoami().await.unwrap().description,
        "short",
        "refused updates change nothing"
    );
}

#[tokio::test]
async fn resume_in_another_circle_and_role_comes_back_after_orchestrating() {
    let d = Daemon::start(&[]);
    let r = d
        .admin()
        .register(&RegisterReq {
            name: "svc".into(),
            circle: Some("ops".into()),
            role: Some(repowire::core::peer::Role::Service),
            ..Default::default()
        })
        .await
        .unwrap();
    let token = r.token.unwrap();
    // Resuming with the token needs no --circle.
    let again = d.cli_env(
        &["peer", "register", "--json"],
        &[("REPOWIRE_PEER", "svc"), ("REPOWIRE_PEER_TOKEN", &token)],
    );
    let v = again.ok().json();
    assert_eq!(v["resumed"], true);
    assert_eq!(v["peer"]["circle"], "ops");
    let svc = Client::new(&d.url, Some(token), None);
    svc.claim_orchestrator(false).await.unwrap();
    let p = svc.release_orchestrator().await.unwrap();
    assert_eq!(
        p.role,
        repowire::core::peer::Role::Service,
        "back to the role it had"
    );
    // Admin-only commands use the admin token even inside a peer's environment.
    let pt = d.peer_token("agent1", Some("ops")).await;
    d.cli_env(&["doctor", "--json"], &[("REPOWIRE_PEER_TOKEN", &pt)])
        .ok();
}
