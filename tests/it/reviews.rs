//! Reviews: routing through the persona (never the author), the queue and
//! its actions, re-review on a new head, verdicts told to the author, close,
//! and reading a head sha from a real git repository.

use crate::support::*;
use repowire::api::{HeartbeatReq, RegisterReq, ReviewRefReq, ReviewRequestReq};
use repowire::client::Client;
use repowire::core::ErrorCode;
use repowire::core::delivery::DeliveryKind;
use repowire::core::peer::Status;
use std::process::Command;
use std::time::Duration;

async fn peer_on(d: &Daemon, name: &str, backend: &str) -> Client {
    let r = d
        .admin()
        .register(&RegisterReq {
            name: name.into(),
            backend: Some(backend.into()),
            ..Default::default()
        })
        .await
        .unwrap();
    Client::new(&d.url, r.token, None)
}

#[tokio::test]
async fn request_queue_mark_update_close() {
    let d = Daemon::start(&[]);
    let alice = peer_on(&d, "alice", "codex").await;
    let bob = peer_on(&d, "bob", "claude-code").await;
    let carol = peer_on(&d, "carol", "gemini").await;
    let dan = peer_on(&d, "dan", "codex").await;
    d.cli(&["orchestrator", "persona", "use", "cross_review"])
        .ok();
    let r = alice
        .request_review(&ReviewRequestReq {
            reference: "https://example.test/pr/7".into(),
            head_sha: "abc123".into(),
            tags: Some(vec!["risky".into()]),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(r.route.route, "fanout");
    let mut names: Vec<&str> = r
        .review
        .reviewers
        .iter()
        .map(|x| x.reviewer.as_str())
        .collect();
    names.sort();
    assert_eq!(
        names,
        ["bob", "carol"],
        "two reviewers, never the author nor its backend"
    );
    for p in [&bob, &carol] {
        let q = p.review_queue(None).await.unwrap();
        assert_eq!(q[0].my_action, "review-needed");
        let told = p.peek(10).await.unwrap().deliveries;
        assert!(told.iter().any(|x| x.text.contains("pr/7")), "{told:?}");
    }
    assert!(dan.review_queue(None).await.unwrap().is_empty());
    // A non-reviewer cannot mark; a reviewer can, and the author is told.
    let mark = |v: &str| ReviewRefReq {
        reference: "https://example.test/pr/7".into(),
        verdict: Some(v.into()),
        notes: Some("lgtm".into()),
        ..Default::default()
    };
    assert_eq!(
        code_of(dan.mark_review(&mark("approve")).await),
        ErrorCode::Forbidden
    );
    assert_eq!(
        code_of(bob.mark_review(&mark("meh")).await),
        ErrorCode::BadRequest
    );
    bob.mark_review(&mark("approve")).await.unwrap();
    assert_eq!(
        bob.review_queue(None).await.unwrap()[0].my_action,
        "none-needed"
    );
    let told = alice.peek(10).await.unwrap().deliveries;
    assert!(
        told.iter()
            .any(|x| x.kind == DeliveryKind::System && x.text.contains("approve")),
        "{told:?}"
    );
    // The author pushes: bob is asked to look again.
    d.cli(&[
        "--as",
        "alice",
        "review",
        "update",
        "https://example.test/pr/7",
        "--sha",
        "def456",
    ])
    .ok();
    assert_eq!(
        bob.review_queue(None).await.unwrap()[0].my_action,
        "re-review-suggested"
    );
    assert_eq!(
        carol.review_queue(None).await.unwrap()[0].my_action,
        "review-needed"
    );
    let q = d
        .cli(&["--as", "bob", "review", "queue", "--json"])
        .ok()
        .json();
    assert_eq!(q[0]["my_action"], "re-review-suggested");
    // Only the author, the requester or the orchestrator moves or closes it.
    d.cli(&[
        "--as",
        "dan",
        "review",
        "close",
        "https://example.test/pr/7",
    ])
    .fails(1, "forbidden");
    d.cli(&[
        "--as",
        "dan",
        "review",
        "update",
        "https://example.test/pr/7",
        "--sha",
        "fff000",
    ])
    .fails(1, "forbidden");
    d.cli(&[
        "--as",
        "alice",
        "review",
        "close",
        "https://example.test/pr/7",
    ])
    .ok();
    assert_eq!(
        carol.review_queue(None).await.unwrap()[0].my_action,
        "closed"
    );
    d.cli(&[
        "--as",
        "alice",
        "review",
        "update",
        "https://example.test/pr/7",
        "--sha",
        "0000",
    ])
    .fails(1, "invalid_state");
    d.cli(&["--as", "alice", "review", "request", "x"])
        .fails(2, "usage");
    let tr = d.cli(&["trace", &r.review.review_id]);
    assert!(tr.ok().stdout.contains("review_marked"));
}

#[tokio::test]
async fn the_author_is_never_the_reviewer_and_waiting_items_get_routed() {
    let d = Daemon::start(&[]);
    let alice = peer_on(&d, "alice", "codex").await;
    let bob = peer_on(&d, "bob", "codex").await;
    bob.heartbeat(&HeartbeatReq {
        status: Some(Status::Offline),
    })
    .await
    .unwrap();
    // Only the author is around: no reviewer yet, never the author.
    let r = alice
        .request_review(&ReviewRequestReq {
            reference: "fix-1".into(),
            head_sha: "aaa111".into(),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(r.route.route, "defer");
    assert!(r.review.reviewers.is_empty());
    bob.heartbeat(&HeartbeatReq {
        status: Some(Status::Online),
    })
    .await
    .unwrap();
    let r = eventually(Duration::from_secs(10), "routing", || async {
        let r = alice.review("fix-1").await.unwrap();
        (!r.reviewers.is_empty()).then_some(r)
    })
    .await;
    assert_eq!(r.reviewers[0].reviewer, "bob");
}

#[test]
fn the_head_sha_comes_from_git() {
    let d = Daemon::start(&[]);
    d.cli(&["peer", "register", "alice"]).ok();
    d.cli(&["peer", "register", "bob"]).ok();
    let repo = tmp_path();
    let git = |args: &[&str]| {
        let out = Command::new("git")
            .arg("-C")
            .arg(&repo)
            .args(["-c", "user.name=t", "-c", "user.email=t@example.test"])
            .args(args)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "git {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    };
    git(&["init", "-q", "-b", "main"]);
    std::fs::write(repo.join("a.txt"), "one").unwrap();
    git(&["add", "a.txt"]);
    git(&["commit", "-q", "-m", "one"]);
    git(&["checkout", "-q", "-b", "feature"]);
    std::fs::write(repo.join("a.txt"), "two").unwrap();
    git(&["commit", "-q", "-am", "two"]);
    let sha = git(&["rev-parse", "feature"]);
    let r = d.cli(&[
        "--as",
        "alice",
        "review",
        "request",
        "feature",
        "--repo",
        repo.to_str().unwrap(),
        "--json",
    ]);
    let v = r.ok().json();
    assert_eq!(v["review"]["head_sha"], sha.as_str());
    assert_eq!(v["review"]["reviewers"][0]["reviewer"], "bob");
    d.cli(&[
        "--as",
        "alice",
        "review",
        "request",
        "nope",
        "--repo",
        repo.to_str().unwrap(),
    ])
    .fails(1, "git");
}
