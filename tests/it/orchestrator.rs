//! The orchestrator role: one holder per circle, stale takeover, force, status.

use crate::support::*;
use repowire::api::{HeartbeatReq, LeaseReq, RegisterReq};
use repowire::core::ErrorCode;
use repowire::core::delivery::DeliveryKind;
use repowire::core::peer::Role;

#[tokio::test]
async fn claim_refuse_force_release_and_status() {
    let d = Daemon::start(&[]);
    let alice = d.peer("alice", None).await;
    let bob = d.peer("bob", None).await;
    let other = d.peer("olga", Some("ops")).await;

    let st = d.cli(&["orchestrator", "status", "--json"]);
    assert_eq!(st.ok().json()["present"], false);

    let r = alice.claim_orchestrator(false).await.unwrap();
    assert_eq!(r.holder.role, Role::Orchestrator);
    assert_eq!(r.previous, None);
    // Claiming again is a no-op success.
    alice.claim_orchestrator(false).await.unwrap();
    assert_eq!(
        code_of(bob.claim_orchestrator(false).await),
        ErrorCode::RoleHeld
    );
    // Another circle has its own role.
    other.claim_orchestrator(false).await.unwrap();

    let st = d.cli(&["orchestrator", "status", "--circle", "default", "--json"]);
    let v = st.ok().json();
    assert_eq!(v["present"], true);
    assert_eq!(v["name"], "alice");
    assert!(v["peer_id"].as_str().unwrap().starts_with("peer-"));
    assert_eq!(v["stale"], false);
    assert_eq!(v["stale_after_s"], 120);
    assert!(v["last_seen_ms"].as_i64().unwrap() > 0);
    let text = d.cli(&["orchestrator", "status"]);
    assert!(text.ok().stdout.contains("alice"));

    // CLI: refused, then forced; the old holder is demoted and told.
    d.cli(&["--as", "bob", "peer", "claim-role", "orchestrator"])
        .fails(1, "role_held");
    let forced = d.cli(&[
        "--as",
        "bob",
        "peer",
        "claim-role",
        "orchestrator",
        "--force",
        "--json",
    ]);
    let v = forced.ok().json();
    assert_eq!(v["previous"], "alice");
    assert_eq!(v["takeover"], "forced");
    assert_eq!(alice.whoami().await.unwrap().role, Role::Agent);
    let note = alice.lease(&LeaseReq::default()).await.unwrap().deliveries;
    assert_eq!(note.len(), 1);
    assert_eq!(note[0].kind, DeliveryKind::System);
    assert!(note[0].text.contains("bob"), "{}", note[0].text);

    // Release; then releasing again is an invalid state.
    bob.release_orchestrator().await.unwrap();
    assert_eq!(
        code_of(bob.release_orchestrator().await),
        ErrorCode::InvalidState
    );
    let st = bob.orchestrator_status(None).await.unwrap();
    assert!(!st.present);
    d.cli(&["--as", "alice", "peer", "claim-role", "orchestrator"])
        .ok();
    d.cli(&["--as", "alice", "peer", "release-role"]).ok();

    // Registering straight into the role obeys the same rule.
    alice.claim_orchestrator(false).await.unwrap();
    let r = d
        .admin()
        .register(&RegisterReq {
            name: "dave".into(),
            role: Some(Role::Orchestrator),
            ..Default::default()
        })
        .await;
    assert_eq!(code_of(r), ErrorCode::RoleHeld);
    assert!(
        d.admin().describe("dave", None).await.is_err(),
        "a refused registration leaves no peer"
    );
}

#[tokio::test]
async fn stale_holder_is_taken_over() {
    let d = Daemon::start(&["--stale-after", "10m", "--manual-clock"]);
    let alice = d.peer("alice", None).await;
    let bob = d.peer("bob", None).await;
    alice.claim_orchestrator(false).await.unwrap();
    assert_eq!(
        code_of(bob.claim_orchestrator(false).await),
        ErrorCode::RoleHeld
    );
    d.advance_clock(10 * 60_000 + 1).await;
    bob.heartbeat(&HeartbeatReq::default()).await.unwrap();
    let st = bob.orchestrator_status(None).await.unwrap();
    assert!(st.present && st.stale, "the quiet holder shows as stale");
    let r = bob.claim_orchestrator(false).await.unwrap();
    assert_eq!(r.previous.as_deref(), Some("alice"));
    assert_eq!(r.takeover.as_deref(), Some("stale"));
    let st = bob.orchestrator_status(None).await.unwrap();
    assert_eq!(st.name.as_deref(), Some("bob"));
    // An offline holder is also free to take over.
    bob.heartbeat(&HeartbeatReq {
        status: Some(repowire::core::peer::Status::Offline),
    })
    .await
    .unwrap();
    alice.heartbeat(&HeartbeatReq::default()).await.unwrap();
    let r = alice.claim_orchestrator(false).await.unwrap();
    assert_eq!(r.takeover.as_deref(), Some("stale"));
}
